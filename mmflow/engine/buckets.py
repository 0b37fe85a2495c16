"""The engine's VPIN bucket pieces: place one chunk's trades in global volume buckets.

Split out of :mod:`mmflow.engine.trades` (which re-exports :func:`merge_buckets`): the
running volume continues the inbound cumulative volume (a left fold, so positions equal the
whole run's), each trade is cut into pieces at bucket edges, and :func:`merge_buckets` sums
the pieces of all chunks into whole buckets.
"""

from __future__ import annotations

import polars as pl

from mmflow.engine.signing import (
    _END,
    _PE,
    _PIECE,
    _PS,
    _START,
    COMPLETES,
)
from mmflow.metrics.vpin import BUCKET, POSITION_TOLERANCE
from mmflow.schema import (
    SIZE,
    TRADE_SIGN,
    TS,
)

__all__ = ["merge_buckets"]


# --------------------------------------------------------------------------------------------
# VPIN bucket pieces


def _snap(position: pl.Expr) -> pl.Expr:
    nearest = position.round()
    close = (position - nearest).abs() <= POSITION_TOLERANCE * pl.max_horizontal(
        pl.lit(1.0), position.abs()
    )
    return pl.when(close).then(nearest).otherwise(position)


def _running_volume(offset: float) -> pl.Expr:
    """Return C_t, the instrument's running volume of bucket-filling trades, per trade.

    As :func:`mmflow.metrics.vpin.vpin_buckets` sums it: a left fold over the sizes that are
    finite and > 0, continued from the inbound ``offset`` (folded into the first term, so C_t
    is bit-equal to the whole run's). Other trades add +0.0, which leaves every sum unchanged.
    """
    size = pl.col(SIZE).cast(pl.Float64)
    fills = pl.when((size > 0) & size.is_finite()).then(size).otherwise(0.0)
    first = pl.int_range(pl.len()) == 0
    return pl.when(first).then(fills + offset).otherwise(fills).cum_sum()


def _bucket_pieces(frame: pl.DataFrame, bucket_volume: float | None) -> pl.LazyFrame:
    """Return the VPIN bucket pieces (global indices) of the chunk's trades.

    As :func:`mmflow.metrics.vpin.vpin_buckets`: a trade with a finite size > 0 occupies
    [C_t − V_t, C_t) of the running volume (``frame``'s :func:`_running_volume` column); one
    overlapping several buckets is split. ``completes`` marks pieces whose trade reaches the
    bucket's end (the whole run's ``complete`` = some piece completes it).
    """
    size = pl.col(SIZE).cast(pl.Float64)
    schema: dict[str, pl.DataType] = {
        BUCKET: pl.Int64(),
        TS: frame.schema[TS],
        "volume": pl.Float64(),
        "buy_volume": pl.Float64(),
        "sell_volume": pl.Float64(),
        COMPLETES: pl.Boolean(),
    }
    if bucket_volume is None:
        return pl.LazyFrame(schema=schema)
    v = float(bucket_volume)
    positioned = (
        frame.lazy()
        .filter(size > 0, size.is_finite())
        .select(
            TS,
            pl.col(_END),
            (pl.col(_END) - size).alias(_START),
            pl.col(TRADE_SIGN).cast(pl.Int8).fill_null(0).alias(TRADE_SIGN),
        )
        .with_columns(
            _snap(pl.col(_START) / v).alias(_PS),
            _snap(pl.col(_END) / v).alias(_PE),
        )
        .with_columns(
            pl.col(_PS).floor().cast(pl.Int64).alias(BUCKET),
            pl.col(_PE).ceil().cast(pl.Int64).alias(_STOP),
        )
    )
    # A trade fills buckets [floor(P_s), ceil(P_e)). Nearly all lie inside one bucket (a bucket
    # holds ADV / buckets_per_day): those are summed per bucket as they are; only the few that
    # cross a bucket edge are cut into one piece per bucket (int_ranges + explode over every
    # trade cost ~3x the rest). The two per-bucket tables are then added.
    width = pl.col(_STOP) - pl.col(BUCKET)
    whole = _piece_sums(
        positioned.filter(width == 1).with_columns(size_of_piece(pl.col(BUCKET), v))
    )
    crossing = _piece_sums(
        positioned.filter(width > 1)
        .with_columns(pl.int_ranges(BUCKET, _STOP).alias(BUCKET))
        .explode(BUCKET)
        .with_columns(size_of_piece(pl.col(BUCKET), v))
    )
    return (
        pl.concat([whole, crossing])
        .group_by(BUCKET)
        .agg(
            pl.col(TS).max(),
            pl.col("volume").sum(),
            pl.col("buy_volume").sum(),
            pl.col("sell_volume").sum(),
            pl.col(COMPLETES).any(),
        )
        .sort(BUCKET)
        .select(list(schema))
    )


_STOP = "_stop_bucket"


def size_of_piece(bucket: pl.Expr, v: float) -> pl.Expr:
    """Return the volume of a trade's piece in ``bucket``.

    min(C_t, (k + 1)·V) − max(C_t − V_t, k·V), at least 0, for bucket k of volume V.
    """
    return (
        (
            pl.min_horizontal(pl.col(_END), (bucket + 1) * v)
            - pl.max_horizontal(pl.col(_START), bucket * v)
        )
        .clip(lower_bound=0.0)
        .alias(_PIECE)
    )


def _piece_sums(pieces: pl.LazyFrame) -> pl.LazyFrame:
    """Sum pieces (in time order, so buckets never decrease) per bucket."""
    piece, sign = pl.col(_PIECE), pl.col(TRADE_SIGN)
    return (
        pieces.with_columns(
            pl.when(sign == 1).then(piece).alias("_buy"),
            pl.when(sign == -1).then(piece).alias("_sell"),
            (pl.col(_PE) >= (pl.col(BUCKET) + 1).cast(pl.Float64)).alias(COMPLETES),
        )
        .set_sorted(BUCKET)  # trades in time order fill buckets in order
        .group_by(BUCKET, maintain_order=True)
        .agg(
            pl.col(TS).max(),
            piece.sum().alias("volume"),
            pl.col("_buy").sum().alias("buy_volume"),
            pl.col("_sell").sum().alias("sell_volume"),
            pl.col(COMPLETES).any(),
        )
    )


def merge_buckets(pieces: pl.DataFrame | pl.LazyFrame, *, window: int) -> pl.LazyFrame:
    """Merge bucket pieces of all chunks into :func:`mmflow.metrics.vpin.vpin_buckets`'s table.

    Pieces of one bucket (split by a chunk edge) are summed; ``ts`` is the latest piece's;
    a bucket is complete when one of its pieces completes it. Only complete buckets are kept
    (as ``vpin_buckets`` does without ``include_partial``).

    Returns
    -------
    pl.LazyFrame
        ``keys…, bucket, ts, volume, buy_volume, sell_volume, vpin, complete``.
    """
    from mmflow.metrics.vpin import COMPLETE, VPIN
    from mmflow.schema import instrument_keys

    lazy = pieces.lazy()
    keys = instrument_keys(lazy)
    buckets = (
        lazy.group_by(*keys, BUCKET)
        .agg(
            pl.col(TS).max(),
            pl.col("volume").sum(),
            pl.col("buy_volume").sum(),
            pl.col("sell_volume").sum(),
            pl.col(COMPLETES).any().alias(COMPLETE),
        )
        .sort(*keys, BUCKET, nulls_last=True)
    )
    imbalance = (pl.col("sell_volume") - pl.col("buy_volume")).abs()
    vpin = (
        imbalance.rolling_sum(window_size=window).over(keys)
        / pl.col("volume").rolling_sum(window_size=window).over(keys)
    ).alias(VPIN)
    return (
        buckets.with_columns(vpin)
        .select(*keys, BUCKET, TS, "volume", "buy_volume", "sell_volume", VPIN, COMPLETE)
        .filter(pl.col(COMPLETE))
    )
