"""The engine's trade pass: one chunk's trades → bar, level, bucket, mix and check tables.

:func:`trade_partials` runs, for ONE instrument's chunk ``[start, end)`` (see
:class:`mmflow.engine.state.Chunk`), what today's whole-input functions do on all rows, and
returns small tables whose concatenation over an instrument's chunks equals the whole run:

1. **Signing** (:func:`mmflow.metrics.signing.sign_trades`): the prevailing quote by one as-of
   join (:func:`mmflow.metrics.quotes.attach_quotes`), the quote-based rule, and the tick rule
   started from the inbound :class:`~mmflow.engine.state.TradeState` (the last clean price and
   the last non-zero tick direction), so the chunk's first trades sign as in a whole run.
   ``bvc`` leaves every trade unsigned here: its buy/sell split is a per-bar function of the
   price change across bars and σ over all bars (:func:`apply_bvc`, run in the finish).
2. **Trade costs** (:func:`mmflow.metrics.impact.trade_costs`): one as-of join for the mid at
   ``t + horizon`` on the chunk's quotes, which reach ``horizon`` past ``end`` (the future-mid
   overlap).
3. **Per-trade products, then ONE** ``group_by`` on the truncated timestamp that yields, per
   bar, the flow columns of :func:`mmflow.metrics.flow.flow_bars`, the size-weighted cost sums
   of :func:`mmflow.metrics.impact.cost_bars` and the pair sums of
   :func:`mmflow.metrics.impact.roll_spread` (Roll compares only trades of the same bar, so it
   needs nothing from the previous chunk).
4. ``levels`` (volume per bar × price × side), VPIN bucket pieces with global bucket indices
   (positions continue from the inbound cumulative volume), the method mix and the quote-check
   counts, each one small ``group_by`` of the same per-trade frame.

Exactness: the running sum that places trades in VPIN buckets continues the inbound cumulative
volume as the first term of the chunk's ``cum_sum`` (a left fold), so positions are bit-equal
to the whole run's when the inbound volume is the whole run's running sum. Per-bar sums run over
the bar's own rows in time order, as the whole run's do.

What ``quotes`` must hold for results equal to a whole run (the caller reads them; see
:func:`quote_window`): the quotes of this instrument only (the as-of joins have no ``by``
keys), every one with ``start − lag ≤ ts < end + horizon``, preceded by the last quote before
``start − lag`` (the prevailing quote) and, when that one is not usable (crossed, locked,
one-sided), by the last usable quote before it (the future mid of a trade whose horizon window
holds no usable quote). Whether ``t + horizon`` lies after the instrument's last quote
(``after_last_quote``) needs that quote's time: ``last_quote_ts`` or ``chunk.last_quote_ts``
(else the last quote given counts as the instrument's last).

Not here: ``reverse-tick`` (it looks ahead past the chunk: :class:`ParameterError`), the BVC
split (:func:`apply_bvc`, in the finish) and the merge of bucket pieces (:func:`merge_buckets`).
"""

from __future__ import annotations

import polars as pl

from mmflow.engine.buckets import _bucket_pieces, _running_volume, merge_buckets
from mmflow.engine.signing import (
    _AFTER_LAST,
    _BAR,
    _BUY,
    _CARRIED,
    _CHANGE,
    _END,
    _GROUP,
    _KEPT,
    _LAG,
    _NOTIONAL,
    _PAIRED,
    _PIECE_COLUMNS,
    _SELL,
    _SIGNED,
    _STALE_FUTURE,
    _UNKNOWN,
    SESSION,
    _clean_price,
    _costs,
    _signed,
    quote_window,
    sign_chunk,
)
from mmflow.engine.state import Chunk, EngineSettings, TradePartials, TradeState
from mmflow.metrics.bvc import Distribution
from mmflow.metrics.flow import BAR_FLOW_COLUMNS, split_by_bvc
from mmflow.metrics.impact import (
    COSTS,
    FUTURE_MID_MISSING,
    ROLL_SPREAD,
    ROLL_TOLERANCE,
)
from mmflow.metrics.quotes import QUOTE_STALE
from mmflow.schema import (
    PRICE,
    SIGN_METHOD,
    SIZE,
    TRADE_SIGN,
    TS,
)

__all__ = [
    "BAR_COLUMNS",
    "apply_bvc",
    "merge_buckets",
    "quote_window",
    "sign_chunk",
    "trade_partials",
]


FLOW_COLUMNS = BAR_FLOW_COLUMNS
"""The columns of :func:`mmflow.metrics.flow.flow_bars` after the keys and ``ts``."""
COST_COLUMNS = COSTS
"""The cost columns today's bars carry (size-weighted means per bar)."""
BAR_COLUMNS = (*FLOW_COLUMNS, *COST_COLUMNS, ROLL_SPREAD)
"""The columns of :attr:`TradePartials.bars` after the bar keys and ``ts``."""

# --------------------------------------------------------------------------------------------
# Per-bar aggregation (one group_by)


def _bar_aggregations(has_quotes: bool) -> list[pl.Expr]:
    """Return flow_bars + cost_bars + roll_spread aggregations over per-trade columns."""
    price = pl.col(PRICE)
    size = pl.col(SIZE)
    out = [
        price.first().alias("open"),
        price.max().alias("high"),
        price.min().alias("low"),
        price.last().alias("close"),
        pl.len().alias("trades"),
        size.sum().alias("volume"),
        pl.col(_BUY).sum().alias("buy_volume"),
        pl.col(_SELL).sum().alias("sell_volume"),
        pl.col(_UNKNOWN).sum().alias("unknown_volume"),
        pl.col(_NOTIONAL).sum().alias(_NOTIONAL),
        pl.col(_SIGNED).sum().alias("net_flow"),
        # Roll: pair sums (roll_spread's sums)
        pl.col(_PAIRED).sum().cast(pl.Float64).alias("_m"),
        pl.col("_a").sum().alias("_sa"),
        pl.col("_b").sum().alias("_sb"),
        pl.col("_ab").sum().alias("_sab"),
        pl.col("_aa").sum().alias("_saa"),
        pl.col("_bb").sum().alias("_sbb"),
        pl.col("_abs_price").mean().alias("_level"),
    ]
    if has_quotes:
        for name in COSTS:
            out += [
                pl.col(f"_{name}_weighted").sum(),
                pl.col(f"_{name}_weight").sum(),
            ]
    return out


def _per_trade(every: str, has_quotes: bool) -> list[pl.Expr]:
    """Per-trade products the bar aggregation sums (no group filters: polars' fast path)."""
    sign = pl.col(TRADE_SIGN)
    size = pl.col(SIZE)
    out = [
        pl.when(sign == 1).then(size).alias(_BUY),
        pl.when(sign == -1).then(size).alias(_SELL),
        pl.when(sign == 0).then(size).alias(_UNKNOWN),
        (pl.col(PRICE) * size).alias(_NOTIONAL),
        (sign.cast(pl.Float64) * size).alias(_SIGNED),
    ]
    if has_quotes:
        weight = pl.when(size.cast(pl.Float64) > 0).then(size.cast(pl.Float64)).otherwise(0.0)
        for name in COSTS:
            x = pl.col(name)
            known = x.is_finite().fill_null(value=False)
            out += [
                pl.when(known).then(x * weight).alias(f"_{name}_weighted"),
                pl.when(known).then(weight).alias(f"_{name}_weight"),
            ]
    return out


def _roll_columns(groups: list[str]) -> list[list[pl.Expr]]:
    """roll_spread's per-trade steps: Δp within a bar, its lag, and whether both are finite.

    Each step reads the columns of the steps before it (the bar's first trade, Δp) instead of
    re-evaluating their expressions.
    """
    price = pl.col("_roll_price")
    first = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in groups)
    change = pl.col(_CHANGE)
    return [
        [pl.col(PRICE).cast(pl.Float64).alias("_roll_price"), first.alias(_FIRST)],
        [pl.when(~pl.col(_FIRST)).then(price.diff()).alias(_CHANGE)],
        [
            pl.when(~pl.col(_FIRST)).then(change.shift(1)).alias(_LAG),
            (change.is_finite() & change.shift(1).is_finite()).alias(_PAIRED),
        ],
        [
            pl.when(pl.col(_PAIRED)).then(change).alias("_a"),
            pl.when(pl.col(_PAIRED)).then(pl.col(_LAG)).alias("_b"),
            price.abs().alias("_abs_price"),
        ],
        # products as columns: plain sums per bar stay on polars' fast aggregation path
        [
            (pl.col("_a") * pl.col("_b")).alias("_ab"),
            (pl.col("_a") * pl.col("_a")).alias("_aa"),
            (pl.col("_b") * pl.col("_b")).alias("_bb"),
        ],
    ]


_FIRST = "_first_of_bar"


def _roll_spread() -> pl.Expr:
    """Return Roll's spread from the bar's pair sums, as :func:`roll_spread` finishes it."""
    m = pl.col("_m")
    cov = (pl.col("_sab") - pl.col("_sa") * pl.col("_sb") / m) / (m - 1.0)
    var_a = (pl.col("_saa") - pl.col("_sa") ** 2 / m) / (m - 1.0)
    var_b = (pl.col("_sbb") - pl.col("_sb") ** 2 / m) / (m - 1.0)
    scale = (var_a.clip(lower_bound=0.0) * var_b.clip(lower_bound=0.0)).sqrt()
    floor = 0.5 * ROLL_TOLERANCE * pl.col("_level")
    negative = (cov < -ROLL_TOLERANCE * scale) & (-cov > floor * floor)
    return pl.when((m >= 2) & negative).then(2.0 * (-cov).sqrt()).alias(ROLL_SPREAD)


def _finish_bars(per_bar: pl.LazyFrame, bar_keys: list[str], has_quotes: bool) -> pl.LazyFrame:
    volume = pl.col("volume")
    costs: list[pl.Expr]
    if has_quotes:
        costs = [
            pl.when(pl.col(f"_{name}_weight") > 0)
            .then(pl.col(f"_{name}_weighted") / pl.col(f"_{name}_weight"))
            .alias(name)
            for name in COSTS
        ]
    else:
        costs = [pl.lit(None, pl.Float64).alias(name) for name in COSTS]
    return per_bar.select(
        *bar_keys,
        pl.col(_BAR).alias(TS),
        "open",
        "high",
        "low",
        "close",
        pl.when(volume > 0).then(pl.col(_NOTIONAL) / volume).otherwise(None).alias("vwap"),
        "volume",
        "trades",
        pl.col("buy_volume").fill_null(0.0),
        pl.col("sell_volume").fill_null(0.0),
        pl.col("unknown_volume").fill_null(0.0),
        "net_flow",
        pl.when(volume > 0).then(pl.col("net_flow") / volume).alias("trade_imbalance"),
        *costs,
        _roll_spread(),
    )


# --------------------------------------------------------------------------------------------
# The chunk's trade pass


def _outbound_tick(frame: pl.DataFrame, state: TradeState) -> tuple[float | None, int]:
    """Return the last clean price and the last non-zero tick direction after the chunk."""
    if frame.height == 0:
        return state.last_price, state.last_direction
    last = frame.select(
        _clean_price().drop_nulls().last().alias(PRICE), pl.col(_CARRIED).last()
    ).row(0)
    price = state.last_price if last[0] is None else float(last[0])
    return price, int(last[1] or 0)


def _last_ns(quotes: pl.DataFrame) -> int:
    """Return the latest quote time in ns (−1 without quotes)."""
    last = quotes.select(pl.col(TS).dt.cast_time_unit("ns").dt.epoch("ns").max()).item()
    return -1 if last is None else int(last)


def _per_trade_frame(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    chunk: Chunk,
    settings: EngineSettings,
    *,
    last_quote_ts: int | None,
) -> tuple[pl.DataFrame, pl.Schema, bool, bool]:
    """Sign, cost and prepare the chunk's per-trade frame (its memory peak).

    Returns the frame (only the columns the tables read), the plan's schema, whether the run
    has quotes and whether the signed trades carry ``quote_stale``.
    """
    options = settings.options
    bar_keys = settings.bar_keys
    # Check order (cheap) and sort only what is not in time order (stable, as prepare sorts).
    if not trades[TS].is_sorted():
        trades = trades.sort(TS, maintain_order=True)
    if quotes is not None and not quotes[TS].is_sorted():
        quotes = quotes.sort(TS, maintain_order=True)
    has_quotes = quotes is not None and settings.has_quotes
    quotes_lazy = quotes.lazy() if quotes is not None and has_quotes else None
    # The bar start before the as-of joins: on their many-chunked output dt.truncate costs ~8×
    signed = _signed(
        trades.lazy().with_columns(pl.col(TS).dt.truncate(options.every).alias(_BAR)),
        quotes_lazy,
        chunk,
        settings,
    )
    stale = QUOTE_STALE in signed.collect_schema().names()
    if quotes_lazy is not None:
        assert quotes is not None
        last = _last_ns(quotes)
        given = chunk.last_quote_ts if last_quote_ts is None else last_quote_ts
        if given is not None:
            last = max(last, given)
        signed = _costs(signed, quotes_lazy, settings, last)
    groups = [*bar_keys, _BAR] if settings.session else [_BAR]
    plan = signed.with_columns(
        _running_volume(chunk.trade_state.cumulative_volume).alias(_END),
        *_per_trade(options.every, has_quotes),
    )
    for step in _roll_columns(groups):
        plan = plan.with_columns(step)
    schema = plan.collect_schema()
    if has_quotes:
        missing = pl.col(FUTURE_MID_MISSING)
        plan = plan.with_columns(
            (missing == "after_last_quote").fill_null(value=False).alias(_AFTER_LAST),
            (missing == "stale").fill_null(value=False).alias(_STALE_FUTURE),
        )
    # Keep only what the tables below read (the per-trade frame is the chunk's memory peak).
    frame = plan.select(
        c
        for c in plan.collect_schema().names()
        if c in _KEPT or (c == SESSION and settings.session)
    ).collect()
    return frame, schema, has_quotes, stale


def _bar_table(
    frame: pl.DataFrame, instrument: list[pl.Expr], settings: EngineSettings, has_quotes: bool
) -> pl.LazyFrame:
    """Return the chunk's bars: one ``group_by`` of the per-trade frame on the bar."""
    # Group by the bar alone, on polars' sorted-key path: the trades are in time order, so bar
    # starts (and sessions, which start with time) never decrease.
    if settings.session:
        grouped = frame.lazy().with_columns(pl.struct(SESSION, _BAR).rle_id().alias(_GROUP))
        firsts = [pl.col(SESSION).first(), pl.col(_BAR).first()]
    else:
        grouped = frame.lazy().with_columns(pl.col(_BAR).alias(_GROUP))
        firsts = [pl.col(_BAR).first()]
    per_bar = (
        grouped.set_sorted(_GROUP)
        .group_by(_GROUP, maintain_order=True)
        .agg(*firsts, *_bar_aggregations(has_quotes))
        .with_columns(instrument)
    )
    return _finish_bars(per_bar, settings.bar_keys, has_quotes)


def _level_table(
    frame: pl.DataFrame, instrument: list[pl.Expr], settings: EngineSettings
) -> pl.LazyFrame:
    """Return the chunk's levels: volume and trades per bar × price × side."""
    sessions = [SESSION] if settings.session else []
    return (
        frame.lazy()
        .filter(pl.col(PRICE).is_finite())
        .group_by(*sessions, _BAR, PRICE, TRADE_SIGN)
        .agg(
            pl.col(SIZE).sum().cast(pl.Float64).alias(SIZE),
            pl.len().cast(pl.UInt32).alias("trades"),
        )
        .with_columns(instrument)
        .select(
            *settings.bar_keys,
            pl.col(_BAR).alias(TS),
            PRICE,
            pl.col(TRADE_SIGN).cast(pl.Int8),
            SIZE,
            "trades",
        )
        .sort(*sessions, TS, PRICE, TRADE_SIGN, nulls_last=True)
    )


def _mix_table(frame: pl.DataFrame, instrument: list[pl.Expr]) -> pl.LazyFrame:
    """Return the chunk's method mix: trades and volume per signing method."""
    return (
        frame.lazy()
        .group_by(SIGN_METHOD)
        .agg(pl.len().cast(pl.UInt32).alias("trades"), pl.col(SIZE).sum().alias("volume"))
        .select(*instrument, pl.col(SIGN_METHOD).cast(pl.String), "trades", "volume")
        .sort(SIGN_METHOD, nulls_last=True)
    )


def _check_table(
    frame: pl.DataFrame, instrument: list[pl.Expr], *, stale: bool, has_quotes: bool
) -> pl.LazyFrame:
    """Return the chunk's quote-check counts (one row)."""
    zero = pl.lit(0, pl.UInt32)

    def count(name: str, present: bool) -> pl.Expr:
        return pl.col(name).sum().cast(pl.UInt32) if present else zero

    return frame.lazy().select(
        *instrument,
        pl.len().cast(pl.UInt32).alias("trades"),
        count(QUOTE_STALE, stale).alias("stale_quote"),
        count(_AFTER_LAST, has_quotes).alias("after_last_quote"),
        count(_STALE_FUTURE, has_quotes).alias("stale_future_quote"),
    )


def _outbound_state(frame: pl.DataFrame, inbound: TradeState) -> TradeState:
    """Return the trade state after the chunk (tick state, cumulative volume, trade count)."""
    cumulative = inbound.cumulative_volume if frame.height == 0 else float(frame[_END][-1])
    last_price, direction = _outbound_tick(frame, inbound)
    return TradeState(
        last_price=last_price,
        last_direction=direction,
        cumulative_volume=cumulative,
        trades=inbound.trades + frame.height,
    )


def trade_partials(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    chunk: Chunk,
    settings: EngineSettings,
    *,
    last_quote_ts: int | None = None,
) -> TradePartials:
    """Compute one chunk's trade tables: bars, levels, bucket pieces, mix, checks and state.

    Parameters
    ----------
    trades
        The instrument's prepared trades in the chunk (``start ≤ ts < end``, or its sessions),
        sorted by ``ts``.
    quotes
        The instrument's prepared quotes for the chunk (module docstring; :func:`quote_window`),
        sorted by ``ts``, or ``None`` when the run has no quotes.
    chunk
        The instrument, range and inbound state (tick state, cumulative volume, bucket volume).
    settings
        The run's settings.
    last_quote_ts
        The instrument's last quote time (ns) over the whole run, for ``after_last_quote``;
        ``None``: ``chunk.last_quote_ts``, else the last quote in ``quotes``.

    Returns
    -------
    TradePartials
        Small tables; see :class:`mmflow.engine.state.TradePartials`.

    Raises
    ------
    ParameterError
        For ``reverse-tick`` (it looks ahead past the chunk).
    """
    keys = list(settings.keys)
    frame, schema, has_quotes, stale = _per_trade_frame(
        trades, quotes, chunk, settings, last_quote_ts=last_quote_ts
    )
    # One instrument: the instrument columns are constants added back to each table.
    instrument = [
        pl.lit(chunk.venue if k == "venue" else chunk.symbol, schema[k]).alias(k) for k in keys
    ]
    bars = _bar_table(frame, instrument, settings, has_quotes)
    levels = _level_table(frame, instrument, settings)
    mix = _mix_table(frame, instrument)
    checks = _check_table(frame, instrument, stale=stale, has_quotes=has_quotes)
    pieces = _bucket_pieces(frame, chunk.bucket_volume).with_columns(instrument)
    pieces = pieces.select(*keys, *(c for c in _PIECE_COLUMNS if c not in keys))
    bars_frame, levels_frame, mix_frame, checks_frame, pieces_frame = pl.collect_all(
        [bars, levels, mix, checks, pieces]
    )
    state = _outbound_state(frame, chunk.trade_state)
    return TradePartials(bars_frame, levels_frame, pieces_frame, mix_frame, checks_frame, state)


def apply_bvc(
    bars: pl.LazyFrame, *, distribution: Distribution = "normal", dof: float | None = None
) -> pl.LazyFrame:
    """Split the bars' volume by bulk volume classification, as :func:`bvc_flow_bars` does.

    Run in the finish on the instrument's whole (gridded, time-ordered) bar table: the split
    uses each bar's close change and σ over all bars. ``trade_sign`` is not used.
    """
    return split_by_bvc(bars, distribution=distribution, dof=dof)
