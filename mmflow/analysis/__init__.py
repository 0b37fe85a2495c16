"""The analyses the commands run, each one lazy plan built from canonical frames.

One module per concern: :mod:`~mmflow.analysis.options` (what to select, how to sign, bar
windows), :mod:`~mmflow.analysis.prepare` (re-clocking, filters, cleaning),
:mod:`~mmflow.analysis.market` (the per-bar engine) and one module per analysis with its result
type (:mod:`~mmflow.analysis.summary`, :mod:`~mmflow.analysis.signing`,
:mod:`~mmflow.analysis.volume_profile`, :mod:`~mmflow.analysis.phase_labels`,
:mod:`~mmflow.analysis.inventory`, :mod:`~mmflow.analysis.chart_data`). Reading inputs is in
:mod:`mmflow.io` (:mod:`mmflow.io.assemble`), text for people in :mod:`mmflow.render.messages`.
The command-line layer calls one function here per command and collects the result once.
"""

from __future__ import annotations

from mmflow.analysis.chart_data import Chart, chart
from mmflow.analysis.inventory import inventory_evaluation, inventory_report
from mmflow.analysis.market import (
    COST_COLUMNS,
    FLOW_COLUMNS,
    INVENTORY_COLUMNS,
    QUOTE_BAR_COLUMNS,
    Market,
    bar_table,
    market_bars,
    quote_checks,
)
from mmflow.analysis.options import (
    BYTES_PER_BAR,
    MAX_QUOTE_AGE,
    MIN_ROWS,
    BarOptions,
    Clock,
    Selection,
    Session,
    Signing,
    check_durations,
    check_windows,
    default_max_rows,
    parameters_of,
)
from mmflow.analysis.phase_labels import Phases, phases
from mmflow.analysis.prepare import (
    instrument_columns,
    prepare,
    prepare_market,
    selection_account,
    selection_rules,
    with_venue,
)
from mmflow.analysis.signing import Classification, classify, evaluate
from mmflow.analysis.summary import SUMMARY_COLUMNS, Analysis, analyze
from mmflow.analysis.volume_profile import Profile, profile

__all__ = [
    "BYTES_PER_BAR",
    "COST_COLUMNS",
    "FLOW_COLUMNS",
    "INVENTORY_COLUMNS",
    "MAX_QUOTE_AGE",
    "MIN_ROWS",
    "QUOTE_BAR_COLUMNS",
    "SUMMARY_COLUMNS",
    "Analysis",
    "BarOptions",
    "Chart",
    "Classification",
    "Clock",
    "Market",
    "Phases",
    "Profile",
    "Selection",
    "Session",
    "Signing",
    "analyze",
    "bar_table",
    "chart",
    "check_durations",
    "check_windows",
    "classify",
    "default_max_rows",
    "evaluate",
    "instrument_columns",
    "inventory_evaluation",
    "inventory_report",
    "market_bars",
    "parameters_of",
    "phases",
    "prepare",
    "prepare_market",
    "profile",
    "quote_checks",
    "selection_account",
    "selection_rules",
    "with_venue",
]
