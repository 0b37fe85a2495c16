"""One-call Python API: read files and run an analysis in one function call.

Every function takes file paths (files, folders, globs; any format ``mmflow`` reads) or canonical
polars frames, reads them, runs one analysis and returns collected polars frames in a small
typed result. The command line runs the same library functions.

Examples
--------
>>> import mmflow
>>> result = mmflow.analyze(
...     "sample_data/simulated/trades.parquet",
...     quotes="sample_data/simulated/quotes.parquet",
...     bar="1m",
... )
>>> result.summary.select("symbol", "trades", "liquidity_state").rows()
[('SIMA', 25001, 'providing')]
>>> result.bars.height
360
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from mmflow.analysis import FLOW_COLUMNS, INVENTORY_COLUMNS, bar_table, inventory_report
from mmflow.analysis import analyze as analyze_plan
from mmflow.analysis import classify as classify_plan
from mmflow.analysis import phases as phases_plan
from mmflow.analysis import profile as profile_plan
from mmflow.api_run import Input, Plan, Started, read_inputs, run_call
from mmflow.io import ReadOptions
from mmflow.io.assemble import account_of, collect, collect_accounts
from mmflow.metrics.profile import ValueAreaMethod
from mmflow.render.messages import signing_warnings
from mmflow.results import (
    Analysis,
    Classification,
    Data,
    Flow,
    Inventory,
    Phases,
    Profile,
    Result,
)

__all__ = [
    "Analysis",
    "Classification",
    "Data",
    "Flow",
    "Inventory",
    "Phases",
    "Profile",
    "Result",
    "analyze",
    "classify",
    "flow",
    "inventory",
    "phases",
    "profile",
    "read",
]

_MARKER = """    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`)."""
_COMMON_DOC = """
    trades
        Trade files, folders or globs (any format ``mmflow`` reads; a folder may hold quotes
        too), or a canonical trades frame.
    quotes
        Quote files or a canonical quotes frame (signing, OFI, spreads, liquidity), or ``None``.
    bar
        Bar length as a polars duration (``"1s"``, ``"5m"``, ``"1h"``).
    method
        Trade signing: ``auto`` (vendor side, else Lee-Ready, else tick), ``vendor``, ``tick``,
        ``reverse-tick``, ``quote``, ``lee-ready``, ``emo``, ``clnv``, ``depth`` or ``bvc``.
    symbols, venues
        Keep only these symbols / venues (``None``: all).
    start, end
        Keep trades and quotes in ``[start, end)`` (timezone-aware datetimes).
"""


def read(
    trades: Input,
    quotes: Input | None = None,
    *,
    format: str = "auto",
    quotes_format: str = "auto",
    tz: str | None = None,
    skip_bad_rows: bool = False,
) -> Data:
    """Read trade and quote files into canonical polars frames.

    Parameters
    ----------
    trades
        Files, folders or globs (a folder may hold both trades and quotes).
    quotes
        Further quote files, or ``None``.
    format, quotes_format
        A reader name (``mmflow formats``) or ``auto`` (detected per file).
    tz
        Time zone of local times in formats that do not document theirs.
    skip_bad_rows
        Drop and count rows that do not parse instead of raising.

    Returns
    -------
    Data
        ``trades`` and ``quotes`` (``None`` when the inputs hold none) in the canonical schema.

    Examples
    --------
    >>> import mmflow
    >>> data = mmflow.read("sample_data/binance/")
    >>> data.trades.columns[:4], data.quotes.height > 0
    (['ts', 'ts_event', 'symbol', 'venue'], True)
    """
    inputs = read_inputs(trades, quotes, format, quotes_format, ReadOptions(tz=tz))
    account_of(collect_accounts(inputs.loaded)).raise_for_bad_rows(skip=skip_bad_rows)
    plans = [plan for plan in (inputs.trades, inputs.quotes) if plan is not None]
    frames = iter(collect(plans, inputs.loaded))
    return Data(
        warnings=tuple(inputs.notes),
        trades=next(frames) if inputs.trades is not None else None,
        quotes=next(frames) if inputs.quotes is not None else None,
    )


def analyze(trades: Input, quotes: Input | None = None, **arguments: Any) -> Analysis:
    """Sign trades, build bars and summarise flow, OFI, inventory and phases per instrument.

    What ``mmflow analyze`` computes, returned as polars frames.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        Also ``clock`` (``recv``/``event``), ``clean`` (``"taq"``), ``format``, ``tz``,
        ``skip_bad_rows``, ``max_bars``.

    Returns
    -------
    Analysis
        ``summary`` (one row per instrument), ``bars`` (every metric per bar), ``mix`` (how
        trades were signed), ``warnings``, ``parameters`` and the row ``account``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.analyze(
    ...     "sample_data/simulated/trades.parquet",
    ...     quotes="sample_data/simulated/quotes.parquet",
    ...     bar="1m",
    ... )
    >>> result.bars.height, result.summary["phase"].to_list()
    (360, ['neutral'])
    >>> result.summary["last_episode"].to_list()
    ['distribution']
    """
    return run_call(Analysis, trades, quotes, arguments, _analysis)


def _analysis(run: Started) -> Plan:
    plan = analyze_plan(run.trades, run.inputs.quotes, **run.planned(), materialize=run.collect)
    tables = {"summary": plan.summary, "bars": plan.bars, "mix": plan.mix}
    return Plan(tables, plan.parameters, plan.dropped, plan.checks)


def flow(trades: Input, quotes: Input | None = None, **arguments: Any) -> Flow:
    """Order flow per instrument and bar: what ``mmflow flow`` computes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Flow
        ``bars``: volume split, net flow, CVD, OFI, VPIN, impact and costs per bar.

    Examples
    --------
    >>> import mmflow
    >>> bars = mmflow.flow("sample_data/simulated/trades.parquet", bar="1h").bars
    >>> bars.select("ts", "volume").head(2).rows()[0][0].isoformat()
    '2024-01-02T00:00:00+00:00'
    """
    return run_call(Flow, trades, quotes, arguments, _flow)


def _flow(run: Started) -> Plan:
    market = run.market()
    bars = bar_table(market, FLOW_COLUMNS)
    return Plan({"bars": bars}, market.parameters, market.dropped, market.checks)


def inventory(trades: Input, quotes: Input | None = None, **arguments: Any) -> Inventory:
    """Market-maker inventory per bar, its summary and liquidity-withdrawal episodes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Inventory
        ``bars``, ``summary`` (one row per instrument) and withdrawal ``episodes``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.inventory(
    ...     "sample_data/simulated/trades.parquet", quotes="sample_data/simulated/quotes.parquet"
    ... )
    >>> result.summary["liquidity_state"].to_list()
    ['providing']
    """
    return run_call(Inventory, trades, quotes, arguments, _inventory)


def _inventory(run: Started) -> Plan:
    market = run.market()
    summary, episodes = inventory_report(market, run.options)
    tables = {
        "bars": bar_table(market, INVENTORY_COLUMNS),
        "summary": summary,
        "episodes": episodes,
    }
    return Plan(tables, market.parameters, market.dropped, market.checks)


def phases(trades: Input, quotes: Input | None = None, **arguments: Any) -> Phases:
    """Label accumulation and distribution per bar (causally) and list the episodes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Phases
        ``bars`` (phase, inventory side, distribution score per bar), ``episodes`` and the
        event ``study`` of returns after distribution episodes.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.phases(
    ...     "sample_data/simulated/trades.parquet", quotes="sample_data/simulated/quotes.parquet"
    ... )
    >>> sorted(result.episodes["phase"].unique().to_list())
    ['accumulation', 'distribution']
    """
    return run_call(Phases, trades, quotes, arguments, _phases)


def _phases(run: Started) -> Plan:
    plan = phases_plan(run.trades, run.inputs.quotes, **run.planned(), materialize=run.collect)
    tables = {"bars": plan.bars, "episodes": plan.episodes, "study": plan.study}
    return Plan(tables, plan.parameters)


def profile(
    trades: Input,
    quotes: Input | None = None,
    *,
    bin_size: float | None = None,
    share: float = 0.7,
    value_area: ValueAreaMethod = "two-row",
    footprint: bool = False,
    **arguments: Any,
) -> Profile:
    """Volume at price, point of control and value area per instrument (``mmflow profile``).

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    bin_size
        Price bin width (``None``: the instrument's tick, from its prices).
    share
        Share of volume in the value area.
    value_area
        ``two-row`` (CBOT) or ``one-row`` expansion from the point of control.
    footprint
        Also compute the per-bar footprint (bid/ask volume per bar and level).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Profile
        ``levels``, ``value_areas`` (``poc, value_area_low, value_area_high, …``) and, when
        asked, ``footprint``.

    Examples
    --------
    >>> import mmflow
    >>> areas = mmflow.profile("sample_data/simulated/trades.parquet").value_areas
    >>> row = areas.row(0, named=True)
    >>> row["value_area_low"] <= row["poc"] <= row["value_area_high"]
    True
    """
    chosen = {"bin_size": bin_size, "share": share, "method": value_area}
    return run_call(Profile, trades, quotes, arguments, partial(_profile, footprint, chosen))


def _profile(footprint: bool, chosen: dict[str, Any], run: Started) -> Plan:
    plan = profile_plan(
        run.trades,
        run.inputs.quotes,
        **chosen,
        every=run.options.every if footprint else None,
        signing=run.signing,
        selection=run.selection,
        max_levels=run.options.max_bars,
    )
    tables = {"levels": plan.levels, "value_areas": plan.value_areas}
    if plan.footprint is not None:
        tables["footprint"] = plan.footprint
    return Plan(tables, plan.parameters)


def classify(trades: Input, quotes: Input | None = None, **arguments: Any) -> Classification:
    """Sign every trade and count how each was signed (``mmflow classify``).

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Classification
        ``trades`` (each with ``trade_sign`` and ``sign_method``; per bar for ``bvc``), the
        method ``mix`` and per-instrument ``diagnostics``; signing problems in ``warnings``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.classify("sample_data/simulated/trades.parquet", method="tick")
    >>> result.trades["trade_sign"].is_in([-1, 0, 1]).all()
    True
    """
    result = run_call(Classification, trades, quotes, arguments, _classification)
    notes = (*result.warnings, *signing_warnings(result.diagnostics))
    return replace(result, warnings=notes)


def _classification(run: Started) -> Plan:
    plan = classify_plan(
        run.trades,
        run.inputs.quotes,
        signing=run.signing,
        every=run.options.every,
        selection=run.selection,
        max_bars=run.options.max_bars,
    )
    tables = {"trades": plan.trades, "mix": plan.mix, "diagnostics": plan.diagnostics}
    return Plan(tables, plan.parameters, plan.dropped, plan.checks)


for _function in (analyze, flow, inventory, phases, profile, classify):
    if _function.__doc__:
        _function.__doc__ = _function.__doc__.replace(_MARKER, _COMMON_DOC.strip("\n"))
