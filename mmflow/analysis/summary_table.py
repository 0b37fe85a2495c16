"""The per-instrument summary table, shared by the chunked engine and the single-plan path."""

from __future__ import annotations

import polars as pl

__all__ = ["SUMMARY_COLUMNS", "summary_table"]

SUMMARY_COLUMNS = (
    "venue",
    "symbol",
    "trades",
    "volume",
    "buy_volume",
    "sell_volume",
    "unknown_volume",
    "vwap",
    "net_flow",
    "ofi",
    "mm_inventory",
    "inventory_max",
    "inventory_min",
    "inventory_half_life",
    "price_pressure",
    "quote_skew",
    "withdrawing_share",
    "liquidity_state",
    "start",
    "end",
)


def summary_table(
    flow: pl.LazyFrame,
    bars: pl.LazyFrame,
    inventory: pl.LazyFrame,
    phased: pl.LazyFrame,
    episodes: pl.LazyFrame,
    areas: pl.LazyFrame,
    instrument: list[str],
    has_quotes: bool,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Join the per-instrument summary and the inventory paths (shared by both analysis paths).

    ``flow`` is the flow summary; the OFI total, the ``inventory`` summary, the current phase,
    the last episode and the value ``areas`` are joined to it, in ``SUMMARY_COLUMNS`` order.
    """
    totals = bars.group_by(instrument).agg(
        (
            pl.when(pl.col("ofi").is_not_null().any()).then(pl.col("ofi").sum())
            if has_quotes
            else pl.lit(None, pl.Float64)
        ).alias("ofi")
    )
    current = phased.group_by(instrument).agg(
        pl.col("phase").drop_nulls().last().alias("phase"),
        pl.col("inventory_side").filter(pl.col("phase").is_not_null()).last(),
        pl.col("distribution_score").drop_nulls().last().alias("distribution_score"),
    )
    last_episode = (
        episodes.sort("end")
        .group_by(instrument)
        .agg(
            pl.col("phase").last().alias("last_episode"),
            pl.col("inventory_side").last().alias("last_episode_side"),
            pl.col("start").last().alias("last_episode_start"),
            pl.col("end").last().alias("last_episode_end"),
        )
    )
    summary = flow
    for part in (totals, inventory):
        summary = summary.join(part, on=instrument, how="left", nulls_equal=True)
    present = summary.collect_schema().names()
    summary = summary.select(*(c for c in SUMMARY_COLUMNS if c in present))
    for part in (current, last_episode, areas):
        summary = summary.join(part, on=instrument, how="left", nulls_equal=True)
    summary = summary.sort(instrument, nulls_last=True)
    paths = (
        bars.group_by(instrument)
        .agg(pl.col("mm_inventory").alias("inventory_path"))
        .sort(instrument, nulls_last=True)
    )
    return summary, paths
