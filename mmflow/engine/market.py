"""The engine behind ``market_bars`` and ``analyze``: prepared inputs in, today's objects out.

:func:`engine_market` runs the chunked engine on prepared trades and quotes and returns the
:class:`mmflow.analysis.market.Market` today's ``market_bars`` returns (its tables computed once,
eagerly, wrapped as lazy frames); ``Market.signed`` is the level table as pseudo-trades
(:func:`mmflow.engine.finish.pseudo_trades`: what phases and profiles need from trades), and
``Market.engine`` the run, so :func:`engine_analysis` builds ``analyze``'s result from the same
tables (the flow summary from the bars, phases and value areas from the levels).

:func:`engine_applies` says when the engine runs: every signing method but ``reverse-tick``
(its sign looks ahead past a chunk's end), with trades; ``bvc``'s per-bar split runs in the
finish (:func:`mmflow.engine.trades.apply_bvc`); with ``--session`` a chunk holds whole
sessions. Other runs take the single-plan path.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import polars as pl

from mmflow.engine.census import UntimedRowsError
from mmflow.engine.chunks import default_memory_limit
from mmflow.engine.finish import finish_analysis, pseudo_trades
from mmflow.engine.run import EngineRun, make_settings, run_engine
from mmflow.schema import SESSION, VENUE, instrument_keys

if TYPE_CHECKING:
    from mmflow.analysis.market import Market
    from mmflow.analysis.options import BarOptions, Signing
    from mmflow.analysis.summary import Analysis
    from mmflow.metrics.phases import PhaseParameters

__all__ = ["engine_analysis", "engine_applies", "engine_market"]


def engine_applies(trades: pl.LazyFrame, quotes: pl.LazyFrame | None, signing: Signing) -> bool:
    """Whether the chunked engine computes this run (module docstring)."""
    return signing.method != "reverse-tick"


def _same_venue_columns(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """Give quotes the venue column when trades have one (and the reverse)."""
    if quotes is None:
        return trades, None
    in_trades = VENUE in trades.collect_schema().names()
    in_quotes = VENUE in quotes.collect_schema().names()
    venue = pl.lit(None, pl.String).alias(VENUE)
    if in_trades and not in_quotes:
        quotes = quotes.with_columns(venue)
    elif in_quotes and not in_trades:
        trades = trades.with_columns(venue)
    return trades, quotes


def engine_market(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    *,
    options: BarOptions,
    signing: Signing,
    parameters: dict[str, Any],
    dropped: pl.LazyFrame | None,
    memory_limit: int | None = None,
) -> Market | None:
    """Run the engine on prepared inputs; ``None`` (today's single plan) without trades.

    Also ``None`` when a trade or quote has a null ``ts`` (the command line's readers drop and
    count such rows first; library callers may pass them): it belongs to no chunk.

    Parameters
    ----------
    trades, quotes
        Prepared canonical trades and quotes (:func:`mmflow.analysis.prepare.prepare_market`).
    options, signing
        Bars and signing.
    parameters
        The run's parameters (``memory_limit`` is added).
    dropped
        The cleaning counts, passed through.
    memory_limit
        Bytes a chunk may use; default :func:`mmflow.engine.chunks.default_memory_limit`.
    """
    from mmflow.analysis.market import Market

    trades, quotes = _same_venue_columns(trades, quotes)
    limit = memory_limit if memory_limit is not None else default_memory_limit()
    settings = make_settings(
        options,
        signing,
        keys=instrument_keys(trades),
        session=SESSION in trades.collect_schema().names(),
        has_quotes=quotes is not None,
        memory_limit=limit,
    )
    try:
        run = run_engine(trades, quotes, settings)
    except UntimedRowsError:
        # a row without a time fits no chunk; the single plan keeps it (null bar). The
        # census finds it (its counts group by time), so no pass of its own checks for it.
        return None
    finished = run.finished
    if finished is None:
        return None
    return Market(
        finished.bars.lazy(),
        pseudo_trades(finished.levels),
        finished.mix.lazy(),
        quotes is not None,
        {**parameters, "memory_limit": limit, "chunks": len(run.plan.chunks)},
        dropped,
        finished.checks.lazy() if finished.checks is not None else None,
        engine=run,
    )


def engine_analysis(market: Market, run: EngineRun, phase_parameters: PhaseParameters) -> Analysis:
    """Build :func:`mmflow.analysis.summary.analyze`'s result from an engine run's tables."""
    from mmflow.analysis.prepare import instrument_columns
    from mmflow.analysis.summary import Analysis

    settings = run.settings
    assert run.finished is not None
    result = finish_analysis(run.finished, settings, run.spans, phase_parameters)
    parameters = {
        **market.parameters,
        **{f"phase_{k}": v for k, v in asdict(phase_parameters).items()},
    }
    return Analysis(
        instrument_columns(result.summary.lazy()),
        instrument_columns(result.bars.lazy()),
        instrument_columns(market.mix),
        parameters,
        market.dropped,
        instrument_columns(result.paths.lazy()),
        market.checks,
    )
