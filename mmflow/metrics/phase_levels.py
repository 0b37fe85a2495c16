"""Price levels traded over the last W bars or in an episode, and how dispersed the volume is.

Per bar (:func:`_with_levels`): ``price_levels`` and ``level_dispersion`` over the bar's last
W bars from running sums of per-level ±volume events in exact integer units
(:func:`level_windows`: O(level rows), no bar × window expansion). Per episode
(:mod:`mmflow.metrics.phase_episodes`): the same from the episode's level rows
(:func:`_level_volumes`, :func:`_dispersion`).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from mmflow.metrics._common import require_names
from mmflow.metrics.phase_columns import (
    _IDX,
    _LEVEL,
    _VOLUME,
    LEVEL_DISPERSION,
    PRICE_LEVELS,
)
from mmflow.schema import (
    ASOF_VENUE,
    PRICE,
    SESSION,
    SIZE,
    SYMBOL,
    TS,
    VENUE,
    asof_keys,
    instrument_keys,
)

__all__: list[str] = []


def _level_volumes(
    bars: pl.LazyFrame,
    trades: pl.LazyFrame | None,
    keys: list[str],
    *,
    position: str | None = None,
) -> pl.LazyFrame | None:
    """Volume per traded price level and bar: ``keys, _idx, level, volume``.

    From ``trades`` (each assigned to the latest bar of its symbol starting at or before it);
    without trades from the bar's distinct open/high/low/close, each holding an equal share of
    the bar's volume. ``None`` when neither is available. With ``position`` (a column of
    ``bars`` that tells the bars of all series apart), the bar is that column instead of
    ``keys, _idx``.
    """
    bar = [position] if position is not None else [*keys, _IDX]
    schema = bars.collect_schema()
    names = schema.names()
    if trades is not None:
        require_names(
            trades.collect_schema().names(),
            (TS, SYMBOL, PRICE, SIZE),
            what="trades",
            hint="pass canonical trades with ts, symbol, price, size",
        )
        grid = bars.select(*dict.fromkeys([*keys, TS, _IDX, *bar])).sort(TS)
        size = pl.col(SIZE).cast(pl.Float64)
        price = pl.col(PRICE).cast(pl.Float64)
        ids = instrument_keys(names)
        prints = (
            trades.with_columns(
                *(
                    []
                    if VENUE in trades.collect_schema().names() or VENUE not in ids
                    else [pl.lit(None, pl.String).alias(VENUE)]
                )
            )
            .select(
                pl.col(TS).cast(schema[TS]),
                *ids[:-1],
                pl.col(SYMBOL).cast(schema[SYMBOL]),
                price.alias(_LEVEL),
                size.alias(_VOLUME),
            )
            .filter((pl.col(_VOLUME) > 0) & pl.col(_LEVEL).is_finite())
            .sort(TS)
        )
        if SESSION in keys:
            grid = grid.rename({SESSION: "_ph_session"})
        left, right, by = asof_keys(prints, grid)
        matched = left.join_asof(
            right.drop(*(k for k in ids if k not in by)),
            on=TS,
            by=by,
            strategy="backward",
            check_sortedness=False,
        ).drop(ASOF_VENUE, strict=False)
        if SESSION in keys:
            matched = matched.rename({"_ph_session": SESSION})
        return (
            matched.filter(pl.col(_IDX).is_not_null())
            .group_by(*bar, _LEVEL)
            .agg(pl.col(_VOLUME).sum())
        )
    shape = [c for c in ("open", "high", "low", "close") if c in names]
    if not shape or "volume" not in names:
        return None
    values = pl.concat_list([pl.col(c).cast(pl.Float64) for c in shape])
    unique = values.list.drop_nulls().list.unique()
    return (
        bars.select(*bar, unique.alias(_LEVEL), pl.col("volume").cast(pl.Float64))
        .filter(pl.col("volume") > 0)
        .with_columns((pl.col("volume") / pl.col(_LEVEL).list.len()).alias(_VOLUME))
        .explode(_LEVEL)
        .filter(pl.col(_LEVEL).is_not_null() & pl.col(_LEVEL).is_finite())
        .select(*bar, _LEVEL, _VOLUME)
    )


def _dispersion(volume: pl.Expr) -> list[pl.Expr]:
    """``price_levels`` and ``level_dispersion`` = 1 − Σ (v_l / V)² of per-level volumes."""
    total = volume.sum()
    concentration = (volume * volume).sum() / (total * total)
    return [
        pl.len().cast(pl.UInt32).alias(PRICE_LEVELS),
        pl.when(total > 0)
        .then(pl.max_horizontal(1.0 - concentration, pl.lit(0.0)))
        .alias(LEVEL_DISPERSION),
    ]


LEVEL_BLOCK_BARS: Final = 4096
"""Bars per block of the level windows (at least ``window``; see :func:`level_windows`)."""

_POSITION = "_ph_position"
_BLOCK = "_ph_block"
_TIME = "_ph_time"
_UNITS = "_ph_units"
_COUNT = "_ph_count"
_SQUARES = "_ph_squares"
_INVALID = "_ph_invalid"
_PRESENT = "_ph_present"
_SCALE_BITS = 60
"""A block's volume is scaled to at most 2^60 units: window sums fit Int64, their squares Int128."""


def _with_positions(bars: pl.LazyFrame, keys: list[str], window: int, block: int) -> pl.LazyFrame:
    """Add ``_ph_position``: the bars of all series numbered on one line.

    Series r (in key order) starts at r · stride, stride a multiple of ``block`` at least
    the longest series + W − 1 bars, so block b = position // block holds bars of one series
    only (its bars k with k // block fixed) and a window never reaches into the next series.
    The level rows then carry one integer instead of the series' keys. (Window expressions
    on ``bars`` itself: a second consumer of the phase plan would compute it twice.)
    """
    longest = pl.len().over(keys).max()
    stride = (longest + (window + block - 2)) // block * block
    series = pl.struct(keys).rank("dense").cast(pl.Int64) - 1
    return bars.with_columns((series * stride + pl.col(_IDX)).alias(_POSITION))


def _in_blocks(levels: pl.LazyFrame, window: int, block: int) -> pl.LazyFrame:
    """Each level row once per block of ``block`` bars that its window reaches (bars i … i+W−1).

    A block holds its own rows and the rows of the W − 1 bars before it, so every bar's window
    is inside its block: ``1 + ⌈(W − 1) / block⌉`` copies of a row at most.
    """
    first = pl.col(_POSITION) // block
    last = (pl.col(_POSITION) + (window - 1)) // block
    copies = [levels.with_columns(first.alias(_BLOCK))]
    copies.extend(
        levels.filter(last >= first + step).with_columns((first + step).alias(_BLOCK))
        for step in range(1, (window + block - 2) // block + 1)
    )
    return pl.concat(copies, how="vertical") if len(copies) > 1 else copies[0]


def _scaled(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Add the volume in integer units: v · 2^s rounded, 2^s per block so its total is ≤ 2^60.

    Multiplying by a power of two is exact in floating point, so volumes that are multiples of
    2^-s (whole lots, for any block below 2^60 lots) are exact; others are rounded by at most
    half a unit, 2^-61 of the block's volume. A volume that is not finite (possible only from
    library callers: the readers drop such rows) has 0 units and is marked in ``_ph_invalid``.
    """
    finite = pl.col(_VOLUME).is_finite()
    volume = pl.when(finite).then(pl.col(_VOLUME)).otherwise(0.0)
    total = volume.sum().over(_BLOCK)
    bits = (pl.lit(float(_SCALE_BITS)) - total.log(2).ceil()).clip(-1000.0, 1000.0)
    units = (volume * pl.lit(2.0).pow(bits)).round().cast(pl.Int64)
    return rows.with_columns(units.alias(_UNITS), (~finite).cast(pl.Int8).alias(_INVALID))


def level_windows(levels: pl.LazyFrame, window: int, *, block_bars: int) -> pl.LazyFrame:
    """Return the running per-bar sums of the level windows, at the bars where a window changes.

    ``levels``: ``_ph_position`` (the bar, numbered by :func:`_with_positions`), ``_ph_level``
    and ``_ph_volume``, any number of rows per bar and level. For bar k and level l let
    V_l(k) = Σ v_{l,i} over the level rows of bars k−W < i ≤ k (W = ``window``). Each row
    (bar i, level l, volume v) adds v to V_l at bar i and removes it at bar i + W, so per
    level, in bar order, V_l and the number of its rows in the window n_l are running sums of
    those ±v and ±1 events; a bar's totals change only at events:

        S₁(k) = Σ_l V_l(k),   S₂(k) = Σ_l V_l(k)²,   N(k) = #{l : n_l(k) > 0},

    with Δ(V_l²) = dv·(2·V_l − dv) at each event. Rows and events are O(level rows): no bar ×
    window expansion. The sums are exact integers (:func:`_scaled`: Int64 units, Int128
    squares), so running sums do not drift and a level that left the window counts as absent
    by its row count, never by a float test. Bars are taken in blocks of ``block_bars`` (each
    with the W − 1 bars before it; the scale is per block, so a rounding unit is relative to
    the block's volume, not the series').

    Returns
    -------
    pl.LazyFrame
        ``_ph_block, _ph_time`` (the bar's position) and S₁, S₂, N after the bar's events
        (``_ph_units``, ``_ph_squares``, ``_ph_count``; ``_ph_invalid``: rows with a volume
        that is not finite); a bar between two rows of its block carries the earlier row's
        values.
    """
    rows = _scaled(_in_blocks(levels, window, block_bars))
    ends = (pl.col(_BLOCK) + 1) * block_bars
    entries = rows.select(
        _BLOCK,
        _LEVEL,
        pl.col(_POSITION).alias(_TIME),
        _UNITS,
        pl.lit(1, pl.Int8).alias(_COUNT),
        _INVALID,
    )
    exits = rows.select(
        _BLOCK,
        _LEVEL,
        (pl.col(_POSITION) + window).alias(_TIME),
        -pl.col(_UNITS),
        pl.lit(-1, pl.Int8).alias(_COUNT),
        -pl.col(_INVALID),
    )
    # Sorted by time only (an integer sort: cheap); the running sums follow each level's own
    # events in time order. Two events of one level at one bar (an entry and an exit) may come
    # in either order: Δ(V²) and the change of presence add up to the same bar total.
    events = pl.concat([entries, exits]).sort(_TIME)
    level = [_BLOCK, _LEVEL]
    held = pl.col(_UNITS).cum_sum().over(level)
    count = pl.col(_COUNT).cast(pl.Int64).cum_sum().over(level)
    step = pl.col(_UNITS).cast(pl.Int128)
    squares = step * (2 * held.cast(pl.Int128) - step)
    present = (count > 0).cast(pl.Int64) - (count - pl.col(_COUNT) > 0).cast(pl.Int64)
    changes = (
        events.with_columns(squares.alias(_SQUARES), present.alias(_PRESENT))
        .filter(pl.col(_TIME) < ends)
        .group_by(_BLOCK, pl.max_horizontal(_TIME, pl.col(_BLOCK) * block_bars).alias(_TIME))
        .agg(pl.col(_UNITS, _SQUARES, _PRESENT).sum(), pl.col(_INVALID).cast(pl.Int64).sum())
        .sort(_BLOCK, _TIME)
    )
    return changes.select(
        _BLOCK,
        _TIME,
        pl.col(_UNITS, _SQUARES, _INVALID).cum_sum().over(_BLOCK),
        pl.col(_PRESENT).cum_sum().over(_BLOCK).alias(_COUNT),
    )


def _with_levels(
    bars: pl.LazyFrame,
    trades: pl.LazyFrame | None,
    keys: list[str],
    window: int,
    *,
    block_bars: int | None = None,
) -> pl.LazyFrame:
    """Add ``price_levels`` and ``level_dispersion`` over the last ``window`` bars.

    ``price_levels`` = N(k), ``level_dispersion`` = 1 − S₂/S₁² (1 − the Herfindahl index of
    the window's volume across levels, Herfindahl 1950; null when S₁ = 0) from
    :func:`level_windows`.
    """
    block = max(window, LEVEL_BLOCK_BARS) if block_bars is None else block_bars
    bars = _with_positions(bars, keys, window, block)
    levels = _level_volumes(bars, trades, keys, position=_POSITION)
    if levels is None:
        return bars.drop(_POSITION).with_columns(
            pl.lit(None, pl.UInt32).alias(PRICE_LEVELS),
            pl.lit(None, pl.Float64).alias(LEVEL_DISPERSION),
        )
    sums = level_windows(levels, window, block_bars=block).rename({_TIME: _POSITION})
    joined = bars.with_columns((pl.col(_POSITION) // block).alias(_BLOCK)).join(
        sums, on=[_BLOCK, _POSITION], how="left", maintain_order="left"
    )
    carried = pl.col(_UNITS, _SQUARES, _COUNT, _INVALID).forward_fill().over(_BLOCK)
    # 1 − S₂/S₁² = (S₁² − S₂)/S₁² with the numerator exact (Σ_{l≠m} V_l·V_m ≥ 0): one
    # rounding, and exactly 0 for a single level.
    total = pl.col(_UNITS).cast(pl.Int128)
    squared = total * total
    spread = (squared - pl.col(_SQUARES)).cast(pl.Float64) / squared.cast(pl.Float64)
    return (
        joined.with_columns(carried)
        .with_columns(
            pl.col(_COUNT).fill_null(0).cast(pl.UInt32).alias(PRICE_LEVELS),
            # a window with a NaN or infinite volume: 0.0, as the float sums always gave
            pl.when(pl.col(_INVALID) > 0)
            .then(0.0)
            .when(total > 0)
            .then(spread)
            .alias(LEVEL_DISPERSION),
        )
        .drop(_POSITION, _BLOCK, _UNITS, _SQUARES, _COUNT, _INVALID)
    )
