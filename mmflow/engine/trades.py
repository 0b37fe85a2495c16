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

from collections.abc import Sequence

import polars as pl

from mmflow.engine.state import NS_PER_DAY, Chunk, EngineSettings, TradePartials, TradeState
from mmflow.errors import ParameterError
from mmflow.metrics.bvc import Distribution, bulk_volume_classification
from mmflow.metrics.classify import (
    clnv,
    depth_rule,
    emo,
    lee_ready,
    quote_is_usable,
    quote_rule,
    tick_rule,
)
from mmflow.metrics.impact import (
    COSTS,
    EFFECTIVE_SPREAD,
    FUTURE_MID_MISSING,
    FUTURE_MID_PRICE,
    PRICE_IMPACT,
    REALIZED_SPREAD,
    ROLL_SPREAD,
    ROLL_TOLERANCE,
)
from mmflow.metrics.quotes import QUOTE_SOURCE, QUOTE_STALE, QUOTE_USABLE, attach_quotes
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
    SPREAD,
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
_GROUP = "_group"
_AFTER_LAST = "_after_last_quote"
_STALE_FUTURE = "_stale_future_quote"
_PIECE_COLUMNS = (BUCKET, TS, "volume", "buy_volume", "sell_volume", "completes")
_KEY = "_quote_key"
_MATCHED_TS = "_matched_ts"
_BBO = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)
_MATCHED = {name: f"_matched_{name}" for name in _BBO}
_HORIZON = "_horizon_ts"
_FUTURE_TS = "_future_ts"
_KEPT = frozenset(
    (
        TS,
        PRICE,
        SIZE,
        TRADE_SIGN,
        SIGN_METHOD,
        QUOTE_STALE,
        _CARRIED,
        _END,
        _BAR,
        _BUY,
        _SELL,
        _UNKNOWN,
        _NOTIONAL,
        _SIGNED,
        _PAIRED,
        "_a",
        "_b",
        "_ab",
        "_aa",
        "_bb",
        "_abs_price",
        _AFTER_LAST,
        _STALE_FUTURE,
        *(f"_{name}_{part}" for name in COSTS for part in ("weighted", "weight")),
    )
)
"""The per-trade columns the chunk's tables read."""


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


def _negative(duration: str) -> str:
    text = duration.strip()
    return text[1:] if text.startswith("-") else f"-{text}"


def _attach(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, settings: EngineSettings
) -> pl.LazyFrame:
    """Add the prevailing quote as :func:`mmflow.metrics.quotes.attach_quotes` does.

    The chunk holds one instrument, so the as-of join needs no ``by`` keys (3–4× cheaper);
    every step after the join is attach_quotes' own. Without quotes, attach_quotes itself.
    """
    signing = settings.signing
    age = signing.max_quote_age
    if quotes is None:
        return attach_quotes(trades, None, match=signing.match, lag=signing.lag, max_age=age)
    names = trades.collect_schema().names()
    own = all(name in names for name in _BBO)
    lag = signing.lag
    key = pl.col(TS) if lag in ("0", "0s", "") else pl.col(TS).dt.offset_by(_negative(lag))
    right = quotes.select(
        pl.col(TS).alias(_KEY),
        pl.col(TS).alias(_MATCHED_TS),
        *(pl.col(n).alias(_MATCHED[n]) for n in _BBO),
    )
    joined = (
        trades.with_columns(key.alias(_KEY))
        .join_asof(
            right,
            on=_KEY,
            strategy="backward",
            allow_exact_matches=signing.match == "at-or-before",
            check_sortedness=False,
        )
        .drop(_KEY)
    )
    stale = (
        pl.lit(value=False)
        if age is None
        else pl.col(_MATCHED_TS).is_not_null()
        & (pl.col(_MATCHED_TS) < pl.col(TS).dt.offset_by(_negative(age)))
    )
    joined = joined.with_columns(stale.alias(QUOTE_STALE)).with_columns(
        pl.when(~pl.col(QUOTE_STALE)).then(pl.col(_MATCHED[n])).alias(_MATCHED[n]) for n in _BBO
    )
    has_own = (
        pl.col(BID_PRICE).is_not_null() | pl.col(ASK_PRICE).is_not_null()
        if own
        else pl.lit(value=False)
    )
    matched = pl.col(_MATCHED[BID_PRICE]).is_not_null() | pl.col(_MATCHED[ASK_PRICE]).is_not_null()
    source = pl.when(has_own).then(pl.lit("trade")).when(matched).then(pl.lit("quotes"))
    out = (
        joined.with_columns(
            source.otherwise(None).alias(QUOTE_SOURCE),
            (pl.col(QUOTE_STALE) & ~has_own).alias(QUOTE_STALE),
        )
        .with_columns(
            (
                pl.when(has_own).then(pl.col(n)).otherwise(pl.col(_MATCHED[n]))
                if own
                else pl.col(_MATCHED[n])
            ).alias(n)
            for n in _BBO
        )
        .drop(*_MATCHED.values(), _MATCHED_TS)
    )
    usable = quote_is_usable()
    return out.with_columns(
        usable.alias(QUOTE_USABLE),
        pl.when(usable).then((pl.col(BID_PRICE) + pl.col(ASK_PRICE)) / 2).alias(MID_PRICE),
        pl.when(usable).then(pl.col(ASK_PRICE) - pl.col(BID_PRICE)).alias(SPREAD),
    )


def _signed(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, chunk: Chunk, settings: EngineSettings
) -> pl.LazyFrame:
    """Sign the chunk's trades; keeps the carried tick direction (:func:`_carried_tick`)."""
    method = settings.signing.method
    carried = _carried_tick(*_tick_state(chunk, settings)).alias(_CARRIED)
    if method == "bvc":
        signed = trades.with_columns(
            carried, pl.lit(0, pl.Int8).alias(TRADE_SIGN), pl.lit("bvc").alias(SIGN_METHOD)
        )
    else:
        if method in (*QUOTE_METHODS, "auto"):
            trades = _attach(trades, quotes, settings)
        sign, source = chunk_sign_expressions(method, _tick(pl.col(_CARRIED)))
        signed = trades.with_columns(carried).with_columns(
            sign.cast(pl.Int8).alias(TRADE_SIGN), source.cast(SIGN_METHODS).alias(SIGN_METHOD)
        )
    if quotes is not None and MID_PRICE not in signed.collect_schema().names():
        signed = _attach(signed, quotes, settings)
    return signed


def sign_chunk(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    chunk: Chunk,
    settings: EngineSettings,
) -> pl.LazyFrame:
    """Sign one chunk's trades as :func:`mmflow.analysis.market.market_bars` signs the whole input.

    Adds ``trade_sign`` and ``sign_method`` and, when there are quotes, the prevailing quote
    (``bid_price … ask_size, mid_price, spread, quote_source, quote_usable, quote_stale``).
    With sessions, every session of a chunk is whole, so the tick rule restarts per session
    and the inbound tick state is not used (a session never continues from an earlier chunk).
    """
    return _signed(trades, quotes, chunk, settings).drop(_CARRIED)


def _costs(
    signed: pl.LazyFrame, quotes: pl.LazyFrame, settings: EngineSettings, last_quote: int
) -> pl.LazyFrame:
    """Add trade costs as :func:`mmflow.metrics.impact.trade_costs` does, for one instrument.

    ES = 2D(P − M), RS = 2D(P − M_{t+Δ}), PI = 2D(M_{t+Δ} − M) (trade_costs' docstring;
    Huang & Stoll 1996; metrics.md §b.7). One as-of join without ``by`` keys; the instrument's
    last quote time is a number (``last_quote``, ns) instead of a per-instrument join.
    """
    options, signing = settings.options, settings.signing
    horizon = options.horizon.strip()
    delta = "0s" if horizon == "0" else horizon
    age = signing.max_quote_age
    key = pl.col(TS) if delta == "0s" else pl.col(TS).dt.offset_by(delta)
    later = quotes.filter(quote_is_usable()).select(
        pl.col(TS).alias(_HORIZON),
        pl.col(TS).alias(_FUTURE_TS),
        ((pl.col(BID_PRICE) + pl.col(ASK_PRICE)) / 2).alias(FUTURE_MID_PRICE),
    )
    joined = signed.with_columns(key.alias(_HORIZON)).join_asof(
        later,
        on=_HORIZON,
        strategy="backward",
        allow_exact_matches=True,
        check_sortedness=False,
    )
    after_last = pl.col(_HORIZON).dt.cast_time_unit("ns").dt.epoch("ns") > last_quote
    stale = (
        pl.lit(value=False)
        if age is None
        else pl.col(_FUTURE_TS) < pl.col(_HORIZON).dt.offset_by(f"-{age.strip()}")
    )
    missing = (
        pl.when(pl.col(FUTURE_MID_PRICE).is_null())
        .then(None)
        .when(after_last)
        .then(pl.lit("after_last_quote"))
        .when(stale)
        .then(pl.lit("stale"))
    )
    joined = (
        joined.with_columns(missing.alias(FUTURE_MID_MISSING))
        .with_columns(
            pl.when(pl.col(FUTURE_MID_MISSING).is_null())
            .then(pl.col(FUTURE_MID_PRICE))
            .alias(FUTURE_MID_PRICE)
        )
        .drop(_HORIZON, _FUTURE_TS)
    )
    d = pl.col(TRADE_SIGN).cast(pl.Float64)
    p = pl.col(PRICE).cast(pl.Float64)
    m = pl.col(MID_PRICE).cast(pl.Float64)
    later_mid = pl.col(FUTURE_MID_PRICE)
    signed_trade = (d == 1) | (d == -1)
    costs = {
        EFFECTIVE_SPREAD: 2 * d * (p - m),
        REALIZED_SPREAD: 2 * d * (p - later_mid),
        PRICE_IMPACT: 2 * d * (later_mid - m),
    }
    known = {EFFECTIVE_SPREAD: signed_trade, REALIZED_SPREAD: signed_trade & m.is_not_null()}
    return joined.with_columns(
        pl.when(known.get(name, signed_trade)).then(value).alias(name)
        for name, value in costs.items()
    )


# --------------------------------------------------------------------------------------------
# Quotes a chunk needs


def quote_window(
    quotes: pl.LazyFrame, chunk: Chunk, settings: EngineSettings
) -> tuple[pl.LazyFrame, int | None]:
    """Select from an instrument's time-ordered quotes what :func:`trade_partials` needs.

    Every quote with ``start − lag ≤ ts < end + horizon``, preceded by the last quote before
    ``start − lag`` and the last usable one before it (when they differ). Those two are looked
    for in the day before ``start − lag`` first; only when that day lacks one is everything
    earlier read (the first chunk of an instrument, or a day without usable quotes). Without a
    lag the engine takes them from the census state instead.

    Returns
    -------
    tuple[pl.LazyFrame, int | None]
        The quotes, and the instrument's last quote time (ns; ``None`` without quotes) for
        ``last_quote_ts``: ``chunk.last_quote_ts`` when the census set it, else read.
    """
    ns = pl.col(TS).dt.cast_time_unit("ns").dt.epoch("ns")
    before = chunk.start - settings.lag_ns
    recent = quotes.filter((ns < before) & (ns >= before - NS_PER_DAY)).collect()
    prevailing = recent.tail(1)
    usable = recent.filter(quote_is_usable()).tail(1)
    if prevailing.height == 0 or usable.height == 0:
        earlier = quotes.filter(ns < before - NS_PER_DAY)
        if prevailing.height == 0:
            prevailing = earlier.tail(1).collect()
        if usable.height == 0:
            usable = earlier.filter(quote_is_usable()).tail(1).collect()
    # the usable quote is never later than the prevailing one; a row found twice is kept once
    head = pl.concat([usable, prevailing]).unique(maintain_order=True)
    window = quotes.filter(chunk.time_filter(before=settings.lag_ns, after=settings.horizon_ns))
    last = chunk.last_quote_ts
    if last is None:
        found = quotes.select(ns.max()).collect().item()
        last = None if found is None else int(found)
    return pl.concat([head.lazy(), window]), last


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
            price.abs().alias("_abs_price"),
        ],
        # products as columns: plain sums per bar stay on polars' fast aggregation path
        [
            (pl.col("_a") * pl.col("_b")).alias("_ab"),
            (pl.col("_a") * pl.col("_a")).alias("_aa"),
            (pl.col("_b") * pl.col("_b")).alias("_bb"),
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
    piece = pl.col(_PIECE)
    sign = pl.col(TRADE_SIGN)
    return (
        frame.lazy()
        .filter(size > 0, size.is_finite())
        .select(
            TS,
            pl.col(_END),
            (pl.col(_END) - size).alias(_START),
            sign.cast(pl.Int8).fill_null(0).alias(TRADE_SIGN),
        )
        .with_columns(
            _snap(pl.col(_START) / v).alias(_PS),
            _snap(pl.col(_END) / v).alias(_PE),
        )
        .with_columns(
            pl.int_ranges(
                pl.col(_PS).floor().cast(pl.Int64), pl.col(_PE).ceil().cast(pl.Int64)
            ).alias(BUCKET)
        )
        .explode(BUCKET)
        .filter(pl.col(BUCKET).is_not_null())
        .select(
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
        .select(list(schema))
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
    options = settings.options
    keys = list(settings.keys)
    bar_keys = settings.bar_keys
    # Check order (cheap) and sort only what is not in time order (stable, as prepare sorts).
    if not trades[TS].is_sorted():
        trades = trades.sort(TS, maintain_order=True)
    if quotes is not None and not quotes[TS].is_sorted():
        quotes = quotes.sort(TS, maintain_order=True)
    has_quotes = quotes is not None and settings.has_quotes
    quotes_lazy = quotes.lazy() if quotes is not None and has_quotes else None
    signed = _signed(trades.lazy(), quotes_lazy, chunk, settings)
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
    # One instrument: group by the bar alone (the instrument columns are constants added
    # back), on polars' sorted-key path: the trades are in time order, so bar starts (and
    # sessions, which start with time) never decrease.
    instrument = [
        pl.lit(chunk.venue if k == "venue" else chunk.symbol, schema[k]).alias(k) for k in keys
    ]
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
    bars = _finish_bars(per_bar, bar_keys, has_quotes)
    sessions = [SESSION] if settings.session else []
    levels = (
        frame.lazy()
        .filter(pl.col(PRICE).is_finite())
        .group_by(*sessions, _BAR, PRICE, TRADE_SIGN)
        .agg(
            pl.col(SIZE).sum().cast(pl.Float64).alias(SIZE),
            pl.len().cast(pl.UInt32).alias("trades"),
        )
        .with_columns(instrument)
        .select(
            *bar_keys,
            pl.col(_BAR).alias(TS),
            PRICE,
            pl.col(TRADE_SIGN).cast(pl.Int8),
            SIZE,
            "trades",
        )
        .sort(*sessions, TS, PRICE, TRADE_SIGN, nulls_last=True)
    )
    mix = (
        frame.lazy()
        .group_by(SIGN_METHOD)
        .agg(pl.len().cast(pl.UInt32).alias("trades"), pl.col(SIZE).sum().alias("volume"))
        .select(*instrument, pl.col(SIGN_METHOD).cast(pl.String), "trades", "volume")
        .sort(SIGN_METHOD, nulls_last=True)
    )
    zero = pl.lit(0, pl.UInt32)

    def count(name: str, present: bool) -> pl.Expr:
        return pl.col(name).sum().cast(pl.UInt32) if present else zero

    checks = frame.lazy().select(
        *instrument,
        pl.len().cast(pl.UInt32).alias("trades"),
        count(QUOTE_STALE, stale).alias("stale_quote"),
        count(_AFTER_LAST, has_quotes).alias("after_last_quote"),
        count(_STALE_FUTURE, has_quotes).alias("stale_future_quote"),
    )
    pieces = _bucket_pieces(frame, chunk.bucket_volume).with_columns(instrument)
    pieces = pieces.select(*keys, *(c for c in _PIECE_COLUMNS if c not in keys))
    bars_frame, levels_frame, mix_frame, checks_frame, pieces_frame = pl.collect_all(
        [bars, levels, mix, checks, pieces]
    )
    inbound = chunk.trade_state.cumulative_volume
    cumulative = inbound if frame.height == 0 else float(frame[_END][-1])
    last_price, direction = _outbound_tick(frame, chunk.trade_state)
    state = TradeState(
        last_price=last_price,
        last_direction=direction,
        cumulative_volume=cumulative,
        trades=chunk.trade_state.trades + frame.height,
    )
    return TradePartials(bars_frame, levels_frame, pieces_frame, mix_frame, checks_frame, state)


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
