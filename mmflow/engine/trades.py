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
:func:`quote_window`): every quote of the instrument with ``start − lag ≤ ts < end + horizon``,
preceded by the last quote before ``start − lag`` (the prevailing quote) and, when that one is
not usable (crossed, locked, one-sided), by the last usable quote before it (the future mid of
a trade whose horizon window holds no usable quote). Whether ``t + horizon`` lies after the
instrument's last quote (``after_last_quote``) needs that quote's time: pass ``last_quote_ts``
(else the last quote given counts as the instrument's last).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmflow.engine.state import Chunk, EngineSettings, TradePartials, TradeState
from mmflow.errors import ParameterError
from mmflow.metrics.bvc import Distribution, bulk_volume_classification
from mmflow.metrics.classify import clnv, depth_rule, emo, lee_ready, quote_rule, tick_rule
from mmflow.metrics.impact import (
    COSTS,
    FUTURE_MID_MISSING,
    ROLL_SPREAD,
    ROLL_TOLERANCE,
    trade_costs,
)
from mmflow.metrics.quotes import QUOTE_STALE, QUOTE_USABLE, attach_quotes
from mmflow.metrics.signing import QUOTE_METHODS, SIGN_METHODS, Method, label
from mmflow.metrics.vpin import BUCKET, POSITION_TOLERANCE
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    MID_PRICE,
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

SESSION = "session"

FLOW_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "vwap",
    "volume",
    "trades",
    "buy_volume",
    "sell_volume",
    "unknown_volume",
    "net_flow",
    "trade_imbalance",
)
"""The columns of :func:`mmflow.metrics.flow.flow_bars` after the keys and ``ts``."""
COST_COLUMNS = COSTS
"""The cost columns today's bars carry (size-weighted means per bar)."""
BAR_COLUMNS = (*FLOW_COLUMNS, *COST_COLUMNS, ROLL_SPREAD)
"""The columns of :attr:`TradePartials.bars` after the bar keys and ``ts``."""

COMPLETES = "completes"
_BAR = "_bar"
_CHANGE = "_change"
_LAG = "_lag"
_PAIRED = "_paired"
_WEIGHT = "_weight"
_BUY = "_buy"
_SELL = "_sell"
_UNKNOWN = "_unknown"
_NOTIONAL = "_notional"
_SIGNED = "_signed"
_START = "_start"
_END = "_end"
_PS = "_start_position"
_PE = "_end_position"
_PIECE = "_piece"
_CARRIED = "_carried_tick"


# --------------------------------------------------------------------------------------------
# Signing with carried tick state


def _clean_price() -> pl.Expr:
    """Prices with NaN as null (as :mod:`mmflow.metrics.signing` cleans them)."""
    return pl.col(PRICE).fill_nan(None)


def _carried_tick(state: TradeState | None, over: Sequence[str]) -> pl.Expr:
    """Tick rule (Lee & Ready 1991) continued from ``state``; ``over``: restart per group.

    Equals ``signing._tick`` on the whole input: D_t is the sign of P_t − P_{t−1} on the
    forward-filled clean price, a zero change repeats the last non-zero one, a trade with no
    clean price is 0 (:func:`_tick`). The inbound state supplies P_{t−1} for the chunk's first
    trade (the last clean price before the chunk) and the last non-zero direction for leading
    zero ticks.
    """
    price = _clean_price()
    if state is None:
        carried = tick_rule(price.forward_fill())
        carried = carried.over(over) if over else carried
    else:
        filled = price.forward_fill()
        previous = filled.shift(1)
        if state.last_price is not None:
            last = pl.lit(float(state.last_price), pl.Float64)
            filled = filled.fill_null(last)
            previous = filled.shift(1, fill_value=last)
        change = (filled - previous).sign()
        carried = (
            pl.when(change != 0)
            .then(change)
            .forward_fill()
            .fill_null(pl.lit(int(state.last_direction), pl.Int8))
            .cast(pl.Int8)
        )
    return carried


def _tick(carried: pl.Expr) -> pl.Expr:
    """Return the tick sign: the carried direction, 0 for a trade without a clean price."""
    return pl.when(_clean_price().is_null()).then(pl.lit(0, pl.Int8)).otherwise(carried)


def _masked(name: str) -> pl.Expr:
    return pl.when(pl.col(QUOTE_USABLE)).then(pl.col(name))


def _primary(method: Method) -> pl.Expr:
    """Return a method's quote-based part alone (0 where it does not decide), as signing does."""
    zero = pl.lit(0, pl.Int8)
    price, bid, ask = _clean_price(), _masked(BID_PRICE), _masked(ASK_PRICE)
    if method == "quote":
        return quote_rule(price, bid, ask)
    if method in ("lee-ready", "auto"):
        return lee_ready(price, bid, ask, tick=zero)
    if method == "emo":
        return emo(price, bid, ask, tick=zero)
    if method == "clnv":
        return clnv(price, bid, ask, tick=zero)
    return depth_rule(price, bid, ask, _masked(BID_SIZE), _masked(ASK_SIZE), tick=zero)


def chunk_sign_expressions(method: Method, tick: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Return (``trade_sign``, ``sign_method``) for ``method`` with the given tick expression.

    The same rule as :func:`mmflow.metrics.signing.sign_expressions`, with the tick rule
    replaced by one continued from the inbound state.
    """
    vendor = pl.col(AGGRESSOR_SIDE)
    none = pl.lit("none")
    if method == "vendor":
        return vendor, pl.when(vendor != 0).then(pl.lit("vendor")).otherwise(none)
    if method == "tick":
        return tick, pl.when(tick != 0).then(pl.lit("tick")).otherwise(none)
    if method == "reverse-tick":
        msg = (
            "the reverse tick rule looks ahead past the chunk; it is not available in the chunked"
            " engine (use --method tick, or a quote-based method)"
        )
        raise ParameterError(msg)
    if method == "bvc":
        msg = "bvc classifies volume per bar, not single trades; use it for bars (--bar)"
        raise ParameterError(msg)
    primary = _primary(method)
    by_rule = label("lee-ready" if method == "auto" else method)
    if method == "quote":
        return primary, pl.when(primary != 0).then(pl.lit(by_rule)).otherwise(none)
    sign = pl.when(primary != 0).then(primary).otherwise(tick)
    source = (
        pl.when(primary != 0)
        .then(pl.lit(by_rule))
        .when(tick != 0)
        .then(pl.lit("tick"))
        .otherwise(none)
    )
    if method == "auto":
        sign = pl.when(vendor != 0).then(vendor).otherwise(sign)
        source = pl.when(vendor != 0).then(pl.lit("vendor")).otherwise(source)
    return sign.cast(pl.Int8), source


def _tick_state(chunk: Chunk, settings: EngineSettings) -> tuple[TradeState | None, list[str]]:
    """Return the inbound tick state and restart groups (sessions are whole in a chunk)."""
    return (None, [SESSION]) if settings.session else (chunk.trade_state, [])


def sign_chunk(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    chunk: Chunk,
    settings: EngineSettings,
) -> pl.LazyFrame:
    """Sign one chunk's trades as :func:`mmflow.pipeline.market_bars` signs the whole input.

    Adds ``trade_sign`` and ``sign_method`` and, when there are quotes, the prevailing quote
    (``bid_price … ask_size, mid_price, spread, quote_source, quote_usable, quote_stale``).
    With sessions, every session of a chunk is whole, so the tick rule restarts per session
    and the inbound tick state is not used (a session never continues from an earlier chunk).
    """
    signing = settings.signing
    method = signing.method
    age = signing.max_quote_age
    if method == "bvc":
        signed = trades.with_columns(
            pl.lit(0, pl.Int8).alias(TRADE_SIGN), pl.lit("bvc").alias(SIGN_METHOD)
        )
    else:
        if method in (*QUOTE_METHODS, "auto"):
            trades = attach_quotes(
                trades, quotes, match=signing.match, lag=signing.lag, max_age=age
            )
        tick = _tick(pl.col(_CARRIED))
        sign, source = chunk_sign_expressions(method, tick)
        signed = trades.with_columns(_carried_tick(*_tick_state(chunk, settings)).alias(_CARRIED))
        signed = signed.with_columns(
            sign.cast(pl.Int8).alias(TRADE_SIGN), source.cast(SIGN_METHODS).alias(SIGN_METHOD)
        ).drop(_CARRIED)
    if quotes is not None and MID_PRICE not in signed.collect_schema().names():
        signed = attach_quotes(signed, quotes, match=signing.match, lag=signing.lag, max_age=age)
    return signed


# --------------------------------------------------------------------------------------------
# Quotes a chunk needs


def quote_window(
    quotes: pl.LazyFrame, chunk: Chunk, settings: EngineSettings
) -> tuple[pl.LazyFrame, int | None]:
    """Select from an instrument's time-ordered quotes what :func:`trade_partials` needs.

    Every quote with ``start − lag ≤ ts < end + horizon``, preceded by the last quote before
    ``start − lag`` and the last usable one before it (when they differ). Reads everything
    before the chunk once, so it suits tests and in-memory inputs; the engine builds the same
    rows from the census state instead.

    Returns
    -------
    tuple[pl.LazyFrame, int | None]
        The quotes, and the instrument's last quote time (ns; ``None`` without quotes) for
        ``last_quote_ts``.
    """
    from mmflow.metrics.classify import quote_is_usable

    ns = pl.col(TS).dt.cast_time_unit("ns").dt.epoch("ns")
    before = chunk.start - settings.lag_ns
    numbered = quotes.with_row_index("_row")
    earlier = numbered.filter(ns < before)
    head = (
        pl.concat([earlier.filter(quote_is_usable()).tail(1), earlier.tail(1)])
        .unique(subset="_row", keep="first")
        .sort("_row")
    )
    window = numbered.filter(chunk.time_filter(before=settings.lag_ns, after=settings.horizon_ns))
    last = quotes.select(ns.max()).collect().item()
    return pl.concat([head, window]).drop("_row"), None if last is None else int(last)


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
        (pl.col("_a") * pl.col("_b")).sum().alias("_sab"),
        (pl.col("_a") * pl.col("_a")).sum().alias("_saa"),
        (pl.col("_b") * pl.col("_b")).sum().alias("_sbb"),
        pl.col("_roll_price").abs().mean().alias("_level"),
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
        pl.col(TS).dt.truncate(every).alias(_BAR),
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
    """roll_spread's per-trade steps: Δp within a bar, its lag, and whether both are finite."""
    price = pl.col("_roll_price")
    first = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in groups)
    change = pl.when(~first).then(price.diff())
    paired = change.is_finite() & change.shift(1).is_finite()
    return [
        [pl.col(PRICE).cast(pl.Float64).alias("_roll_price")],
        [change.alias(_CHANGE)],
        [
            pl.when(~first).then(pl.col(_CHANGE).shift(1)).alias(_LAG),
            paired.alias(_PAIRED),
        ],
        [
            pl.when(pl.col(_PAIRED)).then(pl.col(_CHANGE)).alias("_a"),
            pl.when(pl.col(_PAIRED)).then(pl.col(_LAG)).alias("_b"),
        ],
    ]


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
# VPIN bucket pieces


def _snap(position: pl.Expr) -> pl.Expr:
    nearest = position.round()
    close = (position - nearest).abs() <= POSITION_TOLERANCE * pl.max_horizontal(
        pl.lit(1.0), position.abs()
    )
    return pl.when(close).then(nearest).otherwise(position)


def _bucket_pieces(
    signed: pl.DataFrame, keys: list[str], offset: float, bucket_volume: float | None
) -> tuple[pl.DataFrame, float]:
    """VPIN bucket pieces (global indices) and the cumulative volume after the chunk.

    As :func:`mmflow.metrics.vpin.vpin_buckets`: trades with a finite size > 0 occupy
    [C_t − V_t, C_t) of the instrument's running volume C, continued from ``offset``; a trade
    overlapping several buckets is split. ``completes`` marks pieces whose trade reaches the
    bucket's end (the whole run's ``complete`` = some piece completes).
    """
    size = pl.col(SIZE).cast(pl.Float64)
    base = (
        signed.lazy()
        .select(
            pl.col(TS),
            *keys,
            size.alias(SIZE),
            pl.col(TRADE_SIGN).cast(pl.Int8).fill_null(0).alias(TRADE_SIGN),
        )
        .filter(pl.col(SIZE) > 0, pl.col(SIZE).is_finite())
    )
    # The whole run's running sum is a left fold over the instrument's trades: continue it by
    # folding the inbound volume into the first term, so C_t is bit-equal.
    first = pl.int_range(pl.len()) == 0
    cumulative = pl.when(first).then(pl.col(SIZE) + offset).otherwise(pl.col(SIZE)).cum_sum()
    schema: dict[str, pl.DataType] = {
        **{k: signed.schema[k] for k in keys},
        BUCKET: pl.Int64(),
        TS: signed.schema[TS],
        "volume": pl.Float64(),
        "buy_volume": pl.Float64(),
        "sell_volume": pl.Float64(),
        COMPLETES: pl.Boolean(),
    }
    if bucket_volume is None:
        total = base.select(pl.col(SIZE).sum()).collect().item()
        return pl.DataFrame(schema=schema), offset + float(total or 0.0)
    v = float(bucket_volume)
    positioned = (
        base.with_columns(cumulative.alias(_END))
        .with_columns((pl.col(_END) - pl.col(SIZE)).alias(_START))
        .with_columns(
            _snap(pl.col(_START) / v).alias(_PS),
            _snap(pl.col(_END) / v).alias(_PE),
        )
        .collect()
    )
    after = offset if positioned.height == 0 else float(positioned[_END][-1])
    piece = pl.col(_PIECE)
    sign = pl.col(TRADE_SIGN)
    pieces = (
        positioned.lazy()
        .with_columns(
            pl.int_ranges(
                pl.col(_PS).floor().cast(pl.Int64), pl.col(_PE).ceil().cast(pl.Int64)
            ).alias(BUCKET)
        )
        .explode(BUCKET)
        .filter(pl.col(BUCKET).is_not_null())
        .select(
            *keys,
            BUCKET,
            TS,
            _PE,
            (
                pl.min_horizontal(pl.col(_END), (pl.col(BUCKET) + 1) * v)
                - pl.max_horizontal(pl.col(_START), pl.col(BUCKET) * v)
            )
            .clip(lower_bound=0.0)
            .alias(_PIECE),
            sign,
        )
        .with_columns(
            pl.when(sign == 1).then(piece).alias("_buy"),
            pl.when(sign == -1).then(piece).alias("_sell"),
        )
        .group_by(*keys, BUCKET, maintain_order=True)
        .agg(
            pl.col(TS).max(),
            piece.sum().alias("volume"),
            pl.col("_buy").sum().alias("buy_volume"),
            pl.col("_sell").sum().alias("sell_volume"),
            (pl.col(_PE).max() >= (pl.col(BUCKET).first() + 1).cast(pl.Float64)).alias(COMPLETES),
        )
        .select(list(schema))
        .collect()
    )
    return pieces, after


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


def _sentinel(quotes: pl.DataFrame, chunk: Chunk, keys: list[str], ts: int) -> pl.DataFrame:
    """Return a quote with no top of book at the instrument's last quote time.

    Only the time of the instrument's last quote matters to ``trade_costs`` beyond the window
    (``after_last_quote``); no trade's as-of join reaches past ``end + horizon``, and a quote
    without prices is never usable.
    """
    values = {"venue": chunk.venue, "symbol": chunk.symbol}
    return pl.DataFrame(
        [
            pl.Series(TS, [ts], pl.Int64).cast(pl.Datetime("ns", "UTC")).cast(quotes.schema[TS]),
            *(pl.Series(name, [values.get(name)], quotes.schema[name]) for name in keys),
        ]
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
        ``None``: the last quote in ``quotes``.

    Returns
    -------
    TradePartials
        Small tables; see :class:`mmflow.engine.state.TradePartials`.

    Raises
    ------
    ParameterError
        For ``reverse-tick`` (it looks ahead past the chunk).
    """
    options, signing = settings.options, settings.signing
    keys = list(settings.keys)
    bar_keys = settings.bar_keys
    has_quotes = quotes is not None and settings.has_quotes
    quotes_lazy = quotes.lazy() if quotes is not None and has_quotes else None
    signed = sign_chunk(trades.lazy(), quotes_lazy, chunk, settings)
    stale = QUOTE_STALE in signed.collect_schema().names()
    if quotes_lazy is not None:
        assert quotes is not None
        if last_quote_ts is not None and last_quote_ts > _last_ns(quotes):
            quotes_lazy = pl.concat(
                [quotes_lazy, _sentinel(quotes, chunk, keys, last_quote_ts).lazy()],
                how="diagonal_relaxed",
            )
        signed = trade_costs(
            signed, quotes_lazy, horizon=options.horizon, max_quote_age=signing.max_quote_age
        )
    groups = [*bar_keys, _BAR] if settings.session else [_BAR]
    plan = signed.with_columns(
        _carried_tick(*_tick_state(chunk, settings)).alias(_CARRIED),
        *_per_trade(options.every, has_quotes),
    )
    for step in _roll_columns(groups):
        plan = plan.with_columns(step)
    frame = plan.collect()
    per_bar = (
        frame.lazy()
        .group_by(*bar_keys, _BAR, maintain_order=True)
        .agg(_bar_aggregations(has_quotes))
    )
    bars = _finish_bars(per_bar, bar_keys, has_quotes).sort(*bar_keys, TS, nulls_last=True)
    levels = (
        frame.lazy()
        .filter(pl.col(PRICE).is_finite())
        .group_by(*bar_keys, _BAR, PRICE, TRADE_SIGN)
        .agg(
            pl.col(SIZE).sum().cast(pl.Float64).alias(SIZE),
            pl.len().cast(pl.UInt32).alias("trades"),
        )
        .select(
            *bar_keys,
            pl.col(_BAR).alias(TS),
            PRICE,
            pl.col(TRADE_SIGN).cast(pl.Int8),
            SIZE,
            "trades",
        )
        .sort(*bar_keys, TS, PRICE, TRADE_SIGN, nulls_last=True)
    )
    mix = (
        frame.lazy()
        .group_by(*keys, SIGN_METHOD)
        .agg(pl.len().cast(pl.UInt32).alias("trades"), pl.col(SIZE).sum().alias("volume"))
        .with_columns(pl.col(SIGN_METHOD).cast(pl.String))
        .sort(*keys, SIGN_METHOD, nulls_last=True)
    )
    zero = pl.lit(0, pl.UInt32)
    missing = pl.col(FUTURE_MID_MISSING) if has_quotes else None
    checks = frame.lazy().select(
        *(
            pl.lit(chunk.venue if k == "venue" else chunk.symbol, frame.schema[k]).alias(k)
            for k in keys
        ),
        pl.len().cast(pl.UInt32).alias("trades"),
        (pl.col(QUOTE_STALE).sum().cast(pl.UInt32) if stale else zero).alias("stale_quote"),
        (
            (missing == "after_last_quote").sum().cast(pl.UInt32) if missing is not None else zero
        ).alias("after_last_quote"),
        ((missing == "stale").sum().cast(pl.UInt32) if missing is not None else zero).alias(
            "stale_future_quote"
        ),
    )
    bars_frame, levels_frame, mix_frame, checks_frame = pl.collect_all([bars, levels, mix, checks])
    pieces, cumulative = _bucket_pieces(
        frame, keys, chunk.trade_state.cumulative_volume, chunk.bucket_volume
    )
    last_price, direction = _outbound_tick(frame, chunk.trade_state)
    state = TradeState(
        last_price=last_price,
        last_direction=direction,
        cumulative_volume=cumulative,
        trades=chunk.trade_state.trades + frame.height,
    )
    return TradePartials(bars_frame, levels_frame, pieces, mix_frame, checks_frame, state)


def apply_bvc(
    bars: pl.LazyFrame, *, distribution: Distribution = "normal", dof: float | None = None
) -> pl.LazyFrame:
    """Split the bars' volume by bulk volume classification, as :func:`bvc_flow_bars` does.

    Run in the finish on the instrument's whole (gridded, time-ordered) bar table: the split
    uses each bar's close change and σ over all bars. ``trade_sign`` is not used.
    """
    from mmflow.schema import instrument_keys

    classified = bulk_volume_classification(
        bars,
        price="close",
        volume="volume",
        by=instrument_keys(bars),
        distribution=distribution,
        dof=dof,
    )
    buy = pl.col("bvc_buy_volume").fill_null(0.0)
    sell = pl.col("bvc_sell_volume").fill_null(0.0)
    return classified.with_columns(
        buy.alias("buy_volume"),
        sell.alias("sell_volume"),
        (pl.col("volume") - buy - sell).alias("unknown_volume"),
        (buy - sell).alias("net_flow"),
        pl.when(pl.col("volume") > 0)
        .then((buy - sell) / pl.col("volume"))
        .alias("trade_imbalance"),
    ).drop("bvc_buy_volume", "bvc_sell_volume")
