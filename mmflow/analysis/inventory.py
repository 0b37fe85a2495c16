"""Market-maker inventory (``mmflow inventory``): summary, withdrawal episodes, event study."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmflow.analysis.market import Market
from mmflow.analysis.options import BarOptions
from mmflow.analysis.prepare import instrument_columns
from mmflow.metrics.event_study import DEFAULT_HORIZONS, withdrawal_volatility_study
from mmflow.metrics.inventory import inventory_summary, withdrawal_episodes

__all__ = [
    "inventory_evaluation",
    "inventory_report",
]


def inventory_report(market: Market, options: BarOptions) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Return the per-symbol inventory summary and the withdrawal episodes of ``market``."""
    summary = inventory_summary(market.bars, every=options.every, horizon=options.pressure_horizon)
    episodes = withdrawal_episodes(market.bars, every=options.every)
    return instrument_columns(summary), instrument_columns(episodes)


def inventory_evaluation(
    market: Market,
    options: BarOptions,
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    placebo_seed: int = 0,
    placebo_ratio: int = 1,
) -> pl.LazyFrame:
    """Return the event study of realised volatility after the withdrawal episodes of ``market``.

    See :func:`mmflow.metrics.event_study.withdrawal_volatility_study`.
    """
    episodes = withdrawal_episodes(market.bars, every=options.every)
    return withdrawal_volatility_study(
        market.bars,
        episodes,
        horizons=horizons,
        placebo_seed=placebo_seed,
        placebo_ratio=placebo_ratio,
    )
