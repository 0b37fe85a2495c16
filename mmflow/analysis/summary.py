"""The main analysis (``mmflow analyze``): per-bar table and one summary row per instrument."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import polars as pl

from mmflow.analysis.market import Market, market_bars
from mmflow.analysis.options import BarOptions, Selection, Signing, check_windows
from mmflow.analysis.prepare import instrument_columns
from mmflow.analysis.summary_table import SUMMARY_COLUMNS, summary_table
from mmflow.metrics.flow import bar_keys, flow_summary, summary_from_bars
from mmflow.metrics.inventory import inventory_summary
from mmflow.metrics.phase_episodes import phase_episodes
from mmflow.metrics.phases import PhaseParameters, phase_bars
from mmflow.metrics.profile import value_area, volume_profile
from mmflow.schema import TS, instrument_keys

__all__ = [
    "SUMMARY_COLUMNS",
    "Analysis",
    "analyze",
]


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`: lazy tables plus the parameters that produced them.

    Attributes
    ----------
    summary
        One row per instrument (``venue, symbol``).
    bars
        One row per instrument and bar.
    mix
        How many trades each signing rule signed, per instrument.
    parameters
        Every parameter, for file metadata and reproducibility.
    dropped
        With cleaning: ``symbol, date, rule, rows_dropped, table`` (no row is lost silently).
    paths
        ``venue, symbol, inventory_path``: the bar-by-bar inventory, for a sparkline.
    checks
        With quotes: what the quotes could not be used for (:func:`quote_checks`).
    """

    summary: pl.LazyFrame
    bars: pl.LazyFrame
    mix: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    paths: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None


def analyze(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    every: str = "1m",
    options: BarOptions | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    phase_parameters: PhaseParameters | None = None,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None = None,
    chunked: bool = True,
) -> Analysis:
    """Run the main analysis: everything per bar, and one summary row per instrument.

    Parameters
    ----------
    trades
        Canonical trades (any order; several files may be concatenated).
    quotes
        Canonical quotes (for quote-based signing, OFI, spreads and liquidity), or ``None``.
    every
        Bar length (polars duration string), used when ``options`` is not given.
    options
        Bar length and metric windows.
    signing
        Signing method and quote matching (``auto`` by default).
    selection
        Symbols, time window, clock, session and cleaning.
    phase_parameters
        The distribution-phase rule (causal labels).
    materialize
        How to collect the bar table early (the command line passes its error-naming
        collector). Without it the whole analysis is one lazy plan, which recomputes the bars
        for each summary; with it the bars are computed once, which is much faster on large
        inputs. Not used when the chunked engine runs (it computes each table once).
    chunked
        Use the chunked engine where it applies (see :func:`mmflow.analysis.market.market_bars`).

    Returns
    -------
    Analysis
        Lazy summary and bar tables; nothing is read until they are collected. The summary
        adds the current ``phase`` and ``distribution_score``, the last episode and the POC and
        value area; the bars add the phase columns.
    """
    options = options or BarOptions(every=every)
    phase_parameters = phase_parameters or PhaseParameters(lookback=options.lookback)
    check_windows(options, phase_parameters)
    market = market_bars(
        trades, quotes, options=options, signing=signing, selection=selection, chunked=chunked
    )
    if market.engine is not None:  # every table already computed once, by the engine
        return _engine_analysis(market, market.engine, phase_parameters, materialize)
    return _single_plan_analysis(market, options, signing, phase_parameters, materialize)


def _engine_analysis(
    market: Market,
    engine: Any,
    phase_parameters: PhaseParameters,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None,
) -> Analysis:
    """Build the analysis from the chunked engine's tables (each computed once)."""
    from mmflow.engine.market import engine_analysis

    analysis = engine_analysis(market, engine, phase_parameters)
    if materialize is not None and analysis.paths is not None:
        # The tables are computed; the caller's collector still reports its stage.
        tables = materialize([analysis.summary, analysis.bars, analysis.paths])
        analysis = replace(
            analysis,
            summary=tables[0].lazy(),
            bars=tables[1].lazy(),
            paths=tables[2].lazy(),
        )
    return analysis


def _single_plan_analysis(
    market: Market,
    options: BarOptions,
    signing: Signing | None,
    phase_parameters: PhaseParameters,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None,
) -> Analysis:
    """Build the analysis as one lazy plan over the signed trades (the reference path)."""
    signing = signing or Signing()
    if signing.method == "bvc":
        flow = summary_from_bars(market.bars, market.signed)
    else:
        flow = flow_summary(market.signed)
    instrument = instrument_keys(market.signed)
    areas = value_area(volume_profile(market.signed, by=instrument), by=instrument).select(
        *instrument, "poc", "value_area_low", "value_area_high"
    )
    bars, signed = market.bars, market.signed
    if materialize is not None:
        # Everything below reads the bars (and the signed trades) several times: compute them
        # and the trade-level summaries in one pass over the inputs, then reuse the results.
        frames = materialize([bars, flow, areas, signed])
        bars, flow, areas, signed = (frame.lazy() for frame in frames)
    inventory = inventory_summary(bars, every=options.every, horizon=options.pressure_horizon)
    phased = phase_bars(bars, signed, parameters=phase_parameters)
    episodes = phase_episodes(
        phased, every=options.every, trades=signed, parameters=phase_parameters
    )
    summary, paths = summary_table(
        flow, bars, inventory, phased, episodes, areas, instrument, market.has_quotes
    )
    parameters = {
        **market.parameters,
        **{f"phase_{k}": v for k, v in asdict(phase_parameters).items()},
    }
    phased = phased.sort(*bar_keys(market.bars), TS, nulls_last=True)
    return Analysis(
        instrument_columns(summary),
        instrument_columns(phased),
        instrument_columns(market.mix),
        parameters,
        market.dropped,
        instrument_columns(paths),
        market.checks,
    )
