"""What ``mmflow plot`` draws: market bars with phases and both kinds of episode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import polars as pl

from mmflow.analysis.inventory import inventory_report
from mmflow.analysis.market import market_bars
from mmflow.analysis.options import BarOptions, Selection, Signing
from mmflow.metrics.flow import bar_keys
from mmflow.metrics.phase_episodes import phase_episodes
from mmflow.metrics.phases import PhaseParameters, phase_bars
from mmflow.schema import TS

__all__ = [
    "Chart",
    "chart",
]


@dataclass(frozen=True)
class Chart:
    """The tables ``mmflow plot`` draws, from one run over the inputs.

    Attributes
    ----------
    bars
        Every column of :func:`market_bars` plus the phase columns of
        :func:`mmflow.metrics.phases.phase_bars` (``phase``, ``inventory_side``,
        ``distribution_score``, …), sorted by instrument and time.
    episodes
        Accumulation and distribution episodes
        (:func:`mmflow.metrics.phase_episodes.phase_episodes`):
        ``symbol, [session,] phase, inventory_side, start, end, …``.
    withdrawals
        Liquidity-withdrawal episodes (:func:`mmflow.metrics.inventory.withdrawal_episodes`):
        ``symbol, start, end, bars, spread_ratio, depth_ratio``.
    has_quotes
        Whether quote-based columns (OFI, spread, depth, liquidity state) could be computed.
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped.
    """

    bars: pl.LazyFrame
    episodes: pl.LazyFrame
    withdrawals: pl.LazyFrame
    has_quotes: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None


def chart(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    parameters: PhaseParameters | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None = None,
) -> Chart:
    """Compute what a chart shows: the market bars with their phases and both kinds of episode.

    The bars are those of :func:`market_bars`, labelled by the causal phase rule exactly as
    :func:`phases` labels them (same parameters, same labels); the phase episodes are those of
    ``mmflow phases --episodes`` and the withdrawal episodes those of ``mmflow inventory --table
    episodes``. ``materialize`` works as in :func:`analyze`: the bars and signed trades are
    computed once, early, and reused.

    Parameters
    ----------
    trades, quotes
        Canonical trades and (optionally) quotes.
    options
        Bar length and metric windows.
    parameters
        The phase rule.
    signing
        How trades are signed.
    selection
        Symbols, time window, clock, session and cleaning.
    materialize
        How to collect the bars and signed trades early.

    Returns
    -------
    Chart
        Lazy tables; nothing is read until they are collected.
    """
    options = options or BarOptions()
    parameters = parameters or PhaseParameters()
    market = market_bars(trades, quotes, options=options, signing=signing, selection=selection)
    keys = bar_keys(market.bars)
    bars, signed = market.bars, market.signed
    if materialize is not None:  # bars and trades are read several times below
        bars, signed = (frame.lazy() for frame in materialize([bars, signed]))
    phased = phase_bars(bars, signed, parameters=parameters)
    episodes = phase_episodes(phased, every=options.every, trades=signed, parameters=parameters)
    _, withdrawals = inventory_report(replace(market, bars=bars), options)
    record = {**market.parameters, **{f"phase_{k}": v for k, v in asdict(parameters).items()}}
    return Chart(
        phased.sort(*keys, TS),
        episodes,
        withdrawals,
        market.has_quotes,
        record,
        market.dropped,
    )
