"""Price rows shared by the volume profile and the footprint (metrics.md §b.10).

A price P falls in row k = ⌊P / b + ε · max(|P / b|, 1)⌋ of bin size b, labelled k · b; without
a bin size, b is the group's inferred tick. See :mod:`mmflow.metrics.profile` for the rules.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Final

import polars as pl

from mmflow.errors import ParameterError, SizeLimitError
from mmflow.schema import PRICE, SIZE, TRADE_SIGN

__all__ = [
    "BIN",
    "EDGE_TOLERANCE",
    "LEVEL_DIGITS",
    "LOWEST_PRICE",
    "PRICE_LEVEL",
    "PRICE_NOISE",
    "ROW",
    "TICK_DIGITS",
    "check_positive",
    "level_table",
    "with_rows",
]

PRICE_LEVEL: Final = "price_level"

EDGE_TOLERANCE: Final = 1e-9
"""Relative ε of the row formula: a price this close (in bins, relative to max(1, P / b)) below
a row edge is put in the row above the edge."""
PRICE_NOISE: Final = 1e-9
"""Price gaps at most this fraction of the group's largest |price| are float noise, not a tick."""
TICK_DIGITS: Final = 8
"""Significant digits an inferred tick is rounded to."""
LEVEL_DIGITS: Final = 15
"""Significant digits a row label k · b is rounded to."""

ROW: Final = "_row"
"""Working column: the row index k of a trade's price."""
BIN: Final = "_bin_size"
"""Working column: the bin size b of the trade's group (null: a single distinct price)."""
LOWEST_PRICE: Final = "_min_price"
"""Working column: the group's lowest price (the label of a group without a tick)."""
_RANGE: Final = "_price_range_rows"


def check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    """Raise :class:`ParameterError` unless ``value`` is None or a finite number > 0 (≥ 0)."""
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        msg = f"{name} must be a finite number {bound}, was {value!r}"
        raise ParameterError(msg)


def _inferred_tick(price: pl.Expr) -> pl.Expr:
    """Return the aggregation: smallest gap between distinct prices above the noise floor."""
    gaps = price.unique().sort().diff()
    noise = PRICE_NOISE * price.abs().max()
    return gaps.filter(gaps > noise).min().round_sig_figs(TICK_DIGITS)


def with_rows(
    trades: pl.LazyFrame, *, tick_keys: list[str], bin_size: float | None
) -> pl.LazyFrame:
    """Drop trades without a finite price; add the row index, the bin size and the lowest price."""
    priced = trades.filter(pl.col(PRICE).is_finite())
    if bin_size is None:
        price = pl.col(PRICE)
        stats = priced.group_by(tick_keys).agg(
            _inferred_tick(price).alias(BIN), price.min().alias(LOWEST_PRICE)
        )
        priced = priced.join(stats, on=tick_keys, how="left", nulls_equal=True)
    else:
        priced = priced.with_columns(
            pl.lit(float(bin_size), pl.Float64).alias(BIN),
            pl.lit(None, pl.Float64).alias(LOWEST_PRICE),
        )
    q = pl.col(PRICE) / pl.col(BIN)
    row = (
        (q + EDGE_TOLERANCE * pl.max_horizontal(q.abs(), pl.lit(1.0)))
        .floor()
        .cast(pl.Int64, strict=False)  # beyond Int64: null, and the size guard stops the run
    )
    return priced.with_columns(
        pl.when(pl.col(BIN).is_null()).then(pl.lit(0, pl.Int64)).otherwise(row).alias(ROW)
    )


def _check_levels(spans: pl.DataFrame, *, limit: int, bin_size: float | None) -> pl.DataFrame:
    """Raise :class:`SizeLimitError` when ``spans`` would make more than ``limit`` rows."""
    if spans.height == 0:
        return spans
    estimate = spans.select((pl.col(_RANGE).fill_null(0.0).fill_nan(0.0) + 1).sum()).item()
    if not math.isfinite(estimate) or estimate > limit:
        parameter = "bin_size"
        raise SizeLimitError(
            parameter,
            "the inferred tick" if bin_size is None else bin_size,
            int(min(estimate, 1e18)),
            limit,
            "price levels",
            "use a larger price bin",
        )
    return spans


def level_table(
    binned: pl.LazyFrame,
    keys: list[str],
    *,
    max_levels: int | None = None,
    bin_size: float | None = None,
    trade_counts: str | None = None,
) -> pl.LazyFrame:
    """Aggregate binned trades per (keys, row) and fill the rows between each group's extremes.

    With ``max_levels``, the number of rows is estimated from each group's lowest and highest
    row (a small aggregate) and checked before any row is made. ``trade_counts`` names a
    column holding how many trades each input row stands for (pre-aggregated rows, such as the
    engine's level table); ``None``: every row is one trade.
    """
    size = pl.col(SIZE).cast(pl.Float64)
    sign = pl.col(TRADE_SIGN)
    counts = binned.group_by(*keys, ROW).agg(
        size.sum().alias("volume"),
        size.filter(sign == 1).sum().alias("buy_volume"),
        size.filter(sign == -1).sum().alias("sell_volume"),
        (pl.len() if trade_counts is None else pl.col(trade_counts).cast(pl.Int64).sum())
        .cast(pl.UInt32)
        .alias("trades"),
    )
    spans = binned.group_by(keys).agg(
        pl.col(ROW).min().alias("_first"),
        pl.col(ROW).max().alias("_last"),
        pl.col(BIN).first(),
        pl.col(LOWEST_PRICE).first(),
        ((pl.col(PRICE).max() - pl.col(PRICE).min()) / pl.col(BIN).first()).alias(_RANGE),
    )
    if max_levels is not None:
        spans = spans.map_batches(partial(_check_levels, limit=max_levels, bin_size=bin_size))
    grid = spans.select(
        *keys,
        pl.int_ranges("_first", pl.col("_last") + 1, dtype=pl.Int64).alias(ROW),
        BIN,
        LOWEST_PRICE,
    ).explode(ROW)
    volumes = ("volume", "buy_volume", "sell_volume")
    level = (pl.col(ROW).cast(pl.Float64) * pl.col(BIN)).round_sig_figs(LEVEL_DIGITS)
    return grid.join(counts, on=[*keys, ROW], how="left", nulls_equal=True).with_columns(
        pl.when(pl.col(BIN).is_null())
        .then(pl.col(LOWEST_PRICE))
        .otherwise(level)
        .alias(PRICE_LEVEL),
        pl.col(volumes).fill_null(0.0),
        pl.col("trades").fill_null(0),
    )
