"""The engine's per-trade plan for one chunk: signing with carried tick state, trade costs.

Split out of :mod:`mmflow.engine.trades` (which re-exports :func:`sign_chunk` and
:func:`quote_window`): the quote as-of join and the quote-based rule, the tick rule started
from the inbound :class:`~mmflow.engine.state.TradeState`, the future-mid join for the trade
costs, and the per-trade column names the chunk's tables read. See the module docstring of
:mod:`mmflow.engine.trades` for what a chunk's quotes must hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmflow.engine.state import NS_PER_DAY, Chunk, EngineSettings, TradeState
from mmflow.errors import ParameterError
from mmflow.metrics.classify import (
    quote_is_usable,
    tick_rule,
)
from mmflow.metrics.impact import (
    COSTS,
    FUTURE_MID_PRICE,
    future_mid_costs,
)
from mmflow.metrics.quotes import (
    QUOTE_STALE,
    attach_prevailing,
    attach_quotes,
)
from mmflow.metrics.signing import QUOTE_METHODS, with_signs
from mmflow.metrics.vpin import BUCKET
from mmflow.schema import (
    ASK_PRICE,
    BID_PRICE,
    MID_PRICE,
    PRICE,
    SIGN_METHOD,
    SIZE,
    TRADE_SIGN,
    TS,
)

__all__ = ["quote_window", "sign_chunk"]

SESSION = "session"


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


def _tick_state(chunk: Chunk, settings: EngineSettings) -> tuple[TradeState | None, list[str]]:
    """Return the inbound tick state and restart groups (sessions are whole in a chunk)."""
    return (None, [SESSION]) if settings.session else (chunk.trade_state, [])


def _negative(duration: str) -> str:
    text = duration.strip()
    return text[1:] if text.startswith("-") else f"-{text}"


def _offset(column: str, nanoseconds: int, duration: str, schema: pl.Schema) -> pl.Expr:
    """Return ``column`` + ``nanoseconds`` (``duration``: the same as text, for other units).

    On nanosecond times (the canonical schema) a plain addition of a duration: ``dt.offset_by``
    parses its text and walks the time zone per row (~0.1 CPU-s per 2.5 M rows), for the same
    values in UTC (the durations are fixed lengths: :func:`mmflow.durations.duration_nanoseconds`).
    """
    dtype = schema[column]
    if (
        isinstance(dtype, pl.Datetime)
        and dtype.time_unit == "ns"
        and dtype.time_zone in (None, "UTC")
    ):
        return pl.col(column) + pl.duration(nanoseconds=nanoseconds)
    return pl.col(column).dt.offset_by(duration)


def _age_ns(settings: EngineSettings) -> int:
    assert settings.max_quote_age_ns is not None
    return settings.max_quote_age_ns


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
    schema = trades.collect_schema()
    lag = signing.lag
    key = (
        pl.col(TS)
        if lag in ("0", "0s", "")
        else _offset(TS, -settings.lag_ns, _negative(lag), schema)
    )
    oldest = None if age is None else _offset(TS, -_age_ns(settings), _negative(age), schema)
    return attach_prevailing(
        trades, quotes, key=key, oldest=oldest, match=signing.match, by_instrument=False
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
        if method == "reverse-tick":
            msg = (
                "the reverse tick rule looks ahead past the chunk; it is not available in the"
                " chunked engine (use --method tick, or a quote-based method)"
            )
            raise ParameterError(msg)
        if method in (*QUOTE_METHODS, "auto"):
            trades = _attach(trades, quotes, settings)
        # metrics.signing's rule (one implementation), with the tick rule continued from the
        # inbound state
        signed = with_signs(trades.with_columns(carried), method, tick=_tick(pl.col(_CARRIED)))
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
    schema = signed.collect_schema()
    key = pl.col(TS) if delta == "0s" else _offset(TS, settings.horizon_ns, delta, schema)
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
        else pl.col(_FUTURE_TS)
        < _offset(_HORIZON, -_age_ns(settings), f"-{age.strip()}", joined.collect_schema())
    )
    return future_mid_costs(joined, after_last=after_last, stale=stale).drop(_HORIZON, _FUTURE_TS)


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
