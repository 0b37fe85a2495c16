"""Price levels an inventory episode trades at, and how dispersed its volume is across them."""

from __future__ import annotations

import polars as pl

from mmflow.metrics._common import require_names
from mmflow.metrics.phase_columns import (
    _IDX,
    _LEVEL,
    _TARGET,
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
    bars: pl.LazyFrame, trades: pl.LazyFrame | None, keys: list[str]
) -> pl.LazyFrame | None:
    """Volume per traded price level and bar: ``keys, _idx, level, volume``.

    From ``trades`` (each assigned to the latest bar of its symbol starting at or before it);
    without trades from the bar's distinct open/high/low/close, each holding an equal share of
    the bar's volume. ``None`` when neither is available.
    """
    schema = bars.collect_schema()
    names = schema.names()
    if trades is not None:
        require_names(
            trades.collect_schema().names(),
            (TS, SYMBOL, PRICE, SIZE),
            what="trades",
            hint="pass canonical trades with ts, symbol, price, size",
        )
        grid = bars.select(*keys, TS, _IDX).sort(TS)
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
            .group_by(*keys, _IDX, _LEVEL)
            .agg(pl.col(_VOLUME).sum())
        )
    shape = [c for c in ("open", "high", "low", "close") if c in names]
    if not shape or "volume" not in names:
        return None
    values = pl.concat_list([pl.col(c).cast(pl.Float64) for c in shape])
    unique = values.list.drop_nulls().list.unique()
    return (
        bars.select(*keys, _IDX, unique.alias(_LEVEL), pl.col("volume").cast(pl.Float64))
        .filter(pl.col("volume") > 0)
        .with_columns((pl.col("volume") / pl.col(_LEVEL).list.len()).alias(_VOLUME))
        .explode(_LEVEL)
        .filter(pl.col(_LEVEL).is_not_null() & pl.col(_LEVEL).is_finite())
        .select(*keys, _IDX, _LEVEL, _VOLUME)
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


def _with_levels(
    bars: pl.LazyFrame, trades: pl.LazyFrame | None, keys: list[str], window: int
) -> pl.LazyFrame:
    levels = _level_volumes(bars, trades, keys)
    if levels is None:
        return bars.with_columns(
            pl.lit(None, pl.UInt32).alias(PRICE_LEVELS),
            pl.lit(None, pl.Float64).alias(LEVEL_DISPERSION),
        )
    windows = (
        levels.with_columns(pl.int_ranges(_IDX, pl.col(_IDX) + window).alias(_TARGET))
        .explode(_TARGET)
        .group_by(*keys, _TARGET, _LEVEL)
        .agg(pl.col(_VOLUME).sum())
        .group_by(*keys, _TARGET)
        .agg(*_dispersion(pl.col(_VOLUME)))
        .rename({_TARGET: _IDX})
    )
    return bars.join(
        windows, on=[*keys, _IDX], how="left", maintain_order="left", nulls_equal=True
    ).with_columns(pl.col(PRICE_LEVELS).fill_null(0))
