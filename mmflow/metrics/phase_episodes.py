"""Accumulation and distribution episodes from per-bar phase labels (metrics.md §12.5)."""

from __future__ import annotations

import polars as pl

from mmflow.metrics._common import require_names
from mmflow.metrics.phase_columns import (
    _IDX,
    _LEVEL,
    _P,
    _VOLUME,
    ABSORPTION_LAMBDA,
    ABSORPTION_RATIO,
    ACCUMULATION,
    DISTRIBUTION,
    EPISODE_COLUMNS,
    INVENTORY_SIDE,
    LEVEL_DISPERSION,
    LONG,
    PHASE,
    PRICE_LEVELS,
)
from mmflow.metrics.phase_levels import _dispersion, _level_volumes
from mmflow.metrics.phase_parameters import PhaseParameters
from mmflow.metrics.phases import _keys, _names, _price
from mmflow.schema import CLOSE, MID_CLOSE, MM_INVENTORY, NET_FLOW, SYMBOL, TS, VENUE

__all__ = ["phase_episodes"]


def _check_every(every: str) -> str:
    from mmflow.durations import duration_seconds

    duration_seconds(every)
    return every.strip()


def phase_episodes(
    phased: pl.LazyFrame,
    *,
    every: str,
    trades: pl.LazyFrame | None = None,
    parameters: PhaseParameters = PhaseParameters(),
) -> pl.LazyFrame:
    """Group labelled bars into accumulation and distribution episodes (metrics.md §12.5).

    An episode is a maximal run of bars of one symbol (and session) with the same ``phase``
    and ``inventory_side``, bridging gaps of at most g = ``parameters.gap`` bars with another
    label, kept when it spans at least m = ``parameters.min_bars`` bars. Neutral and unlabelled
    bars form no episodes. For an episode over bars k₀…k₁, with I and P as in
    :func:`phase_bars`:

    * ``start`` = ts of bar k₀, ``end`` = ts of bar k₁ + ``every``; ``bars`` = k₁ − k₀ + 1 (gap
      bars included);
    * ``inventory_start`` = I at ``start`` (I_{k₀} + F_{k₀}, the inventory before bar k₀),
      ``inventory_end`` = I_{k₁}, ``unloaded`` = |inventory_start| − |inventory_end|;
    * ``vwap`` = Σ vwap·volume / Σ volume over the bars (null without volume);
    * ``price_levels`` and ``level_dispersion`` (1 − Herfindahl index of volume across price
      levels) over the episode, from ``trades`` when given, else approximated from the bars'
      open/high/low/close as in :func:`phase_bars`;
    * ``price_change`` = P_{k₁} − P_{k₀−1} (null for an episode starting at the first bar);
      ``absorption_ratio`` = price_change / (λ̂·Σ F) with λ̂ = ``absorption_lambda`` of bar
      k₀ − 1 (the impact before the episode; null when λ̂ ≤ 0 or Σ F = 0);
    * ``forward_return`` = ln(P_{k₁+h} / P_{k₁}), h = ``parameters.horizon`` (null past the
      data or the session, or when a price is ≤ 0); ``reversal`` (distribution only): the
      forward return is negative after long inventory, positive after short.

    Parameters
    ----------
    phased
        Output of :func:`phase_bars`, in time order within each symbol.
    every
        The bar length (polars duration), to close the last bar.
    trades
        Canonical trades for exact price levels (else the bar approximation).
    parameters
        ``gap``, ``min_bars`` and ``horizon`` are used.

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,]`` and :data:`EPISODE_COLUMNS`, sorted by symbol and start.

    Raises
    ------
    ParameterError
        If ``every`` is not a fixed-length duration.
    SchemaError
        If a column of :func:`phase_bars` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> labels = ["neutral"] + ["distribution"] * 3 + ["neutral"] * 2 + ["distribution"] * 2
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(8)],
    ...         "net_flow": [0.0, 30, 30, 30, 5, 5, 30, 30],
    ...         "mid_close": [10.0, 10.0, 9.99, 9.99, 9.98, 9.98, 9.97, 9.96],
    ...         "mm_inventory": [200.0, 170, 140, 110, 105, 100, 70, 40],
    ...         "absorption_lambda": 1e-3,
    ...         "phase": labels,
    ...         "inventory_side": "long",
    ...     }
    ... )
    >>> phase_episodes(phased, every="1m", parameters=PhaseParameters(horizon=1)).select(
    ...     "phase", "start", "bars", "inventory_start", "unloaded", "price_change"
    ... ).with_columns(pl.col("price_change").round(4)).collect()
    shape: (1, 6)
    ┌──────────────┬─────────────────────┬──────┬─────────────────┬──────────┬──────────────┐
    │ phase        ┆ start               ┆ bars ┆ inventory_start ┆ unloaded ┆ price_change │
    │ ---          ┆ ---                 ┆ ---  ┆ ---             ┆ ---      ┆ ---          │
    │ str          ┆ datetime[μs]        ┆ u32  ┆ f64             ┆ f64      ┆ f64          │
    ╞══════════════╪═════════════════════╪══════╪═════════════════╪══════════╪══════════════╡
    │ distribution ┆ 2024-01-02 00:01:00 ┆ 7    ┆ 200.0           ┆ 160.0    ┆ -0.04        │
    └──────────────┴─────────────────────┴──────┴─────────────────┴──────────┴──────────────┘
    """
    step = _check_every(every)
    p = parameters
    names = _names(phased)
    require_names(
        names,
        (SYMBOL, TS, NET_FLOW, MM_INVENTORY, PHASE, INVENTORY_SIDE),
        what="phased bars",
        hint="run mmflow.metrics.phases.phase_bars first",
    )
    keys = _keys(names)
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    volume = pl.col("volume").cast(pl.Float64).fill_null(0.0) if "volume" in names else None
    vwap_volume = (
        (pl.col("vwap").cast(pl.Float64) * volume).fill_null(0.0)
        if volume is not None and "vwap" in names
        else None
    )
    lam = (
        pl.col(ABSORPTION_LAMBDA).cast(pl.Float64)
        if ABSORPTION_LAMBDA in names
        else pl.lit(None, pl.Float64)
    )
    has_price = MID_CLOSE in names or CLOSE in names
    price = _price(names, keys) if has_price else pl.lit(None, pl.Float64)
    bars = phased.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias(_IDX),
        price.alias(_P),
    ).with_columns(
        flow.cum_sum().over(keys).alias("_ph_cum_flow"),
        (volume if volume is not None else pl.lit(0.0)).cum_sum().over(keys).alias("_ph_cum_v"),
        (vwap_volume if vwap_volume is not None else pl.lit(0.0))
        .cum_sum()
        .over(keys)
        .alias("_ph_cum_pv"),
        pl.col(_P).shift(1).over(keys).alias("_ph_price_before"),
        lam.shift(1).over(keys).alias("_ph_lambda_before"),
        (pl.col(MM_INVENTORY).cast(pl.Float64) + flow).alias("_ph_inventory_before"),
        pl.col(_P).shift(-p.horizon).over(keys).alias("_ph_price_later"),
    )
    label = [*keys, PHASE, INVENTORY_SIDE]
    runs = _runs(bars, label, gap=p.gap, min_bars=p.min_bars)
    first = bars.select(
        *keys,
        pl.col(_IDX).alias("_ph_first"),
        pl.col(TS).alias("start"),
        pl.col("_ph_inventory_before").alias("inventory_start"),
        "_ph_price_before",
        "_ph_lambda_before",
        (pl.col("_ph_cum_flow") - flow).alias("_ph_flow0"),
        (pl.col("_ph_cum_v") - (volume if volume is not None else 0.0)).alias("_ph_v0"),
        (pl.col("_ph_cum_pv") - (vwap_volume if vwap_volume is not None else 0.0)).alias("_ph_pv0"),
    )
    last = bars.select(
        *keys,
        pl.col(_IDX).alias("_ph_last"),
        pl.col(TS).dt.offset_by(step).alias("end"),
        pl.col(MM_INVENTORY).cast(pl.Float64).alias("inventory_end"),
        pl.col(_P).alias("_ph_price_end"),
        "_ph_price_later",
        "_ph_cum_flow",
        "_ph_cum_v",
        "_ph_cum_pv",
    )
    episodes = runs.join(first, on=[*keys, "_ph_first"], how="left", nulls_equal=True).join(
        last, on=[*keys, "_ph_last"], how="left", nulls_equal=True
    )
    episodes = _with_outcomes(episodes)
    episodes = _with_price_levels(episodes, bars, trades, keys)
    return episodes.select(*keys, *EPISODE_COLUMNS).sort(*keys, "start")


def _runs(bars: pl.LazyFrame, label: list[str], *, gap: int, min_bars: int) -> pl.LazyFrame:
    """Find runs of bars with one label, split where more than ``gap`` bars separate two.

    Returns ``label…, _ph_ep, _ph_first, _ph_last, bars`` for runs of at least ``min_bars``.
    """
    labelled = bars.filter(
        pl.col(PHASE).is_in([ACCUMULATION, DISTRIBUTION]) & pl.col(INVENTORY_SIDE).is_not_null()
    ).select(*label, _IDX)
    step_gap = pl.col(_IDX) - pl.col(_IDX).shift(1).over(label) - 1
    runs = (
        labelled.sort(*label, _IDX)
        .with_columns((step_gap > gap).fill_null(value=True).cum_sum().over(label).alias("_ph_ep"))
        .group_by(*label, "_ph_ep")
        .agg(pl.col(_IDX).min().alias("_ph_first"), pl.col(_IDX).max().alias("_ph_last"))
        .with_columns((pl.col("_ph_last") - pl.col("_ph_first") + 1).alias("bars"))
        .filter(pl.col("bars") >= min_bars)
    )
    return runs


def _with_outcomes(episodes: pl.LazyFrame) -> pl.LazyFrame:
    """Add what happened in each episode: unloaded, VWAP, price change, absorption, reversal."""
    total_flow = pl.col("_ph_cum_flow") - pl.col("_ph_flow0")
    total_volume = pl.col("_ph_cum_v") - pl.col("_ph_v0")
    change = pl.col("_ph_price_end") - pl.col("_ph_price_before")
    lam_before = pl.col("_ph_lambda_before")
    later, end_price = pl.col("_ph_price_later"), pl.col("_ph_price_end")
    forward = pl.when((later > 0) & (end_price > 0)).then((later / end_price).log())
    reversal = (
        pl.when(pl.col(PHASE) != DISTRIBUTION)
        .then(pl.lit(None, pl.Boolean))
        .when(pl.col(INVENTORY_SIDE) == LONG)
        .then(forward < 0)
        .otherwise(forward > 0)
    )
    return episodes.with_columns(
        (pl.col("inventory_start").abs() - pl.col("inventory_end").abs()).alias("unloaded"),
        pl.when(total_volume > 0)
        .then((pl.col("_ph_cum_pv") - pl.col("_ph_pv0")) / total_volume)
        .alias("vwap"),
        change.alias("price_change"),
        pl.when((lam_before > 0) & (total_flow != 0))
        .then(change / (lam_before * total_flow))
        .alias(ABSORPTION_RATIO),
        forward.alias("forward_return"),
        reversal.alias("reversal"),
        pl.col("bars").cast(pl.UInt32),
    )


def _with_price_levels(
    episodes: pl.LazyFrame, bars: pl.LazyFrame, trades: pl.LazyFrame | None, keys: list[str]
) -> pl.LazyFrame:
    """Add how many price levels each episode traded at and how dispersed its volume was."""
    label = [*keys, PHASE, INVENTORY_SIDE]
    levels = _level_volumes(bars, trades, keys)
    if levels is None:
        episodes = episodes.with_columns(
            pl.lit(None, pl.UInt32).alias(PRICE_LEVELS),
            pl.lit(None, pl.Float64).alias(LEVEL_DISPERSION),
        )
    else:
        spans = episodes.select(*label, "_ph_first", "_ph_last")
        ids = [*label, "_ph_first"]
        on_keys = [pl.col(k) == pl.col(f"{k}_ph") for k in keys]
        if VENUE in keys:  # join_where never matches null keys: null venue as "" meanwhile
            levels = levels.with_columns(pl.col(VENUE).fill_null(""))
            spans = spans.with_columns(pl.col(VENUE).fill_null(""))
        inside = (
            levels.join_where(
                spans.rename({k: f"{k}_ph" for k in keys}),
                *on_keys,
                pl.col(_IDX) >= pl.col("_ph_first"),
                pl.col(_IDX) <= pl.col("_ph_last"),
            )
            .drop(keys)
            .rename({f"{k}_ph": k for k in keys})
            .group_by(*ids, _LEVEL)
            .agg(pl.col(_VOLUME).sum())
            .group_by(ids)
            .agg(*_dispersion(pl.col(_VOLUME)))
        )
        if VENUE in keys:
            inside = inside.with_columns(
                pl.when(pl.col(VENUE) != "").then(pl.col(VENUE)).alias(VENUE)
            )
        episodes = episodes.join(inside, on=ids, how="left", nulls_equal=True).with_columns(
            pl.col(PRICE_LEVELS).fill_null(0)
        )
    return episodes
