"""Trade signing: who initiated each trade.

The vendor's ``aggressor_side`` is used where it is known; otherwise the sign is inferred. Inference
never overwrites ``aggressor_side``: the sign used downstream is the separate ``trade_sign`` column,
and ``sign_method`` says where each sign came from (metrics.md §b.0–b.1).

The classifiers are pure expression builders returning ``Int8`` in {−1, 0, +1} (+1 buyer-initiated,
−1 seller-initiated, 0 unknown): :func:`tick_rule`, :func:`reverse_tick_rule`, :func:`quote_rule`,
:func:`lee_ready`, :func:`emo`, :func:`clnv` and :func:`depth_rule`. The quote-based ones use a
quote only where :func:`quote_is_usable` (both sides present, finite, bid < ask) and fall back to
a tick sign elsewhere. Price comparisons against quote levels treat prices closer than
10⁻¹² × max(|bid|, |ask|) as equal, so that decimal prices stored as binary floats land exactly on
the midpoint, the quotes and the CLNV 30 %/70 % boundaries (float(10.07) is not exactly
10.00 + 0.7 × (10.10 − 10.00)). Like :func:`tick_rule`, each sign expression keeps the name of
its ``price`` input, so alias it when selecting several.
"""

from __future__ import annotations

import polars as pl

from mmflow.metrics._common import as_expr
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    PRICE,
)

__all__ = [
    "clnv",
    "depth_rule",
    "emo",
    "lee_ready",
    "quote_is_usable",
    "quote_rule",
    "reverse_tick_rule",
    "tick_rule",
]


def tick_rule(price: str | pl.Expr = PRICE) -> pl.Expr:
    """Sign trades by the tick rule (Lee & Ready 1991, *J. Finance* 46(2):733-746).

    D_t = +1 if P_t > P_{t-1}; −1 if P_t < P_{t-1}; if P_t = P_{t-1}, the sign of the last
    non-zero price change (zero-uptick = buy, zero-downtick = sell). The first trade, and every
    trade before the first price change, is unknown (0) — metrics.md §b.1 recommends NA over the
    "first trade is a buy" convention of some peers (§14 item 2).

    Apply it per symbol with ``.over("symbol")`` on trades in time order.

    Parameters
    ----------
    price
        Trade price column or expression.

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    >>> import polars as pl
    >>> prices = pl.DataFrame({"price": [10.00, 10.01, 10.01, 10.00, 10.00, 10.02]})
    >>> prices.select(tick_rule())["price"].to_list()
    [0, 1, 1, -1, -1, 1]
    """
    change = as_expr(price).diff().sign()
    return pl.when(change != 0).then(change).forward_fill().fill_null(0).cast(pl.Int8)


_RELATIVE_TOLERANCE = 1e-12
"""Prices closer than this fraction of max(|bid|, |ask|) compare equal (module docstring)."""


def _tolerance(bid: pl.Expr, ask: pl.Expr) -> pl.Expr:
    return pl.max_horizontal(bid.abs(), ask.abs()) * _RELATIVE_TOLERANCE


def _quoted(price: pl.Expr, bid: pl.Expr, ask: pl.Expr) -> pl.Expr:
    """Whether the quote test may run: a usable quote and a finite trade price."""
    return quote_is_usable(bid, ask) & price.is_finite().fill_null(value=False)


def _fallback(tick: pl.Expr | None, price: str | pl.Expr) -> pl.Expr:
    return (tick_rule(price) if tick is None else tick).cast(pl.Int8).fill_null(0)


def _named(result: pl.Expr, price: str | pl.Expr) -> pl.Expr:
    """Name ``result`` after the price, as :func:`tick_rule` is."""
    name = as_expr(price).meta.output_name(raise_if_undetermined=False)
    return result if name is None else result.alias(name)


def _sign(buy: pl.Expr, sell: pl.Expr, otherwise: pl.Expr | int = 0) -> pl.Expr:
    """+1 where ``buy``, else −1 where ``sell``, else ``otherwise``, as Int8 (never null)."""
    fallback = pl.lit(otherwise, pl.Int8) if isinstance(otherwise, int) else otherwise
    return (
        pl.when(buy)
        .then(pl.lit(1, pl.Int8))
        .when(sell)
        .then(pl.lit(-1, pl.Int8))
        .otherwise(fallback)
        .cast(pl.Int8)
        .fill_null(0)
    )


def reverse_tick_rule(price: str | pl.Expr = PRICE) -> pl.Expr:
    """Sign trades by the reverse tick rule: compare with the next differing price.

    D_t = +1 if P_t > P_{t+1}; −1 if P_t < P_{t+1}; if P_t = P_{t+1}, the sign against the next
    price that differs from P_t. Trades with no later differing price are unknown (0).
    (Hasbrouck 1988, *J. Financial Economics* 22(2):229-252, p. 241; Lee & Ready 1991,
    *J. Finance* 46(2):733-746, pp. 735-736.)

    **Look-ahead:** the sign of trade t depends on later trades, so it is not known at time t
    (KarelZe/tclf#72); use it for after-the-fact classification only, never as a signal.

    It is the tick rule run backwards in time: ``reverse_tick_rule(p)`` equals
    ``tick_rule`` of the reversed prices, reversed. Apply it per symbol with ``.over("symbol")``
    on trades in time order.

    Parameters
    ----------
    price
        Trade price column or expression.

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    >>> import polars as pl
    >>> prices = pl.DataFrame({"price": [10.00, 10.01, 10.01, 10.00, 10.00, 10.02]})
    >>> prices.select(reverse_tick_rule())["price"].to_list()
    [-1, 1, 1, -1, -1, 0]
    """
    change = as_expr(price).diff(-1).sign()
    return pl.when(change != 0).then(change).backward_fill().fill_null(0).cast(pl.Int8)


def quote_is_usable(bid: str | pl.Expr = BID_PRICE, ask: str | pl.Expr = ASK_PRICE) -> pl.Expr:
    """Return whether a quote may be used by the quote-based rules.

    True when both sides are present and finite and bid < ask. Crossed (bid > ask), locked
    (bid = ask, including spreads narrower than the price tolerance of the module docstring) and
    one-sided quotes are not used: the rules fall back to the tick sign for trades facing them.

    Parameters
    ----------
    bid, ask
        Prevailing best bid and ask price columns or expressions.

    Returns
    -------
    pl.Expr
        ``Boolean``, never null.

    Examples
    --------
    >>> import polars as pl
    >>> quotes = pl.DataFrame(
    ...     {"bid_price": [1.0, 2.0, 2.0, None, 1.0], "ask_price": [2.0, 2.0, 1.0, 2.0, None]}
    ... )
    >>> quotes.select(quote_is_usable().alias("usable"))["usable"].to_list()
    [True, False, False, False, False]
    """
    b, a = as_expr(bid), as_expr(ask)
    return (b.is_finite() & a.is_finite() & ((a - b) > _tolerance(b, a))).fill_null(value=False)


def quote_rule(
    price: str | pl.Expr = PRICE,
    bid: str | pl.Expr = BID_PRICE,
    ask: str | pl.Expr = ASK_PRICE,
) -> pl.Expr:
    """Sign trades by the quote rule: above the midpoint is a buy, below it a sell.

    With M = (B + A)/2 computed as B + 0.5 (A − B): D = +1 if P > M, −1 if P < M, and 0 (unknown)
    at the midpoint or where the quote is not usable (:func:`quote_is_usable`).
    (Harris 1989, "A day-end transaction price anomaly", *J. Financial and Quantitative Analysis*
    24(1):29-45, p. 41, as attributed by tclf docs/rules.md.)

    Parameters
    ----------
    price
        Trade price column or expression.
    bid, ask
        Prevailing best bid and ask (the quote in force before the trade).

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    >>> import polars as pl
    >>> trades = pl.DataFrame(
    ...     {"price": [10.08, 10.02, 10.05, 10.08], "bid_price": [10.0, 10.0, 10.0, None]}
    ... ).with_columns(ask_price=pl.lit(10.10))
    >>> trades.with_columns(quote=quote_rule())
    shape: (4, 4)
    ┌───────┬───────────┬───────────┬───────┐
    │ price ┆ bid_price ┆ ask_price ┆ quote │
    │ ---   ┆ ---       ┆ ---       ┆ ---   │
    │ f64   ┆ f64       ┆ f64       ┆ i8    │
    ╞═══════╪═══════════╪═══════════╪═══════╡
    │ 10.08 ┆ 10.0      ┆ 10.1      ┆ 1     │
    │ 10.02 ┆ 10.0      ┆ 10.1      ┆ -1    │
    │ 10.05 ┆ 10.0      ┆ 10.1      ┆ 0     │
    │ 10.08 ┆ null      ┆ 10.1      ┆ 0     │
    └───────┴───────────┴───────────┴───────┘
    """
    p, b, a = as_expr(price), as_expr(bid), as_expr(ask)
    quoted = _quoted(p, b, a)
    tol = _tolerance(b, a)
    deviation = p - (b + 0.5 * (a - b))
    return _named(_sign(quoted & (deviation > tol), quoted & (deviation < -tol)), price)


def lee_ready(
    price: str | pl.Expr = PRICE,
    bid: str | pl.Expr = BID_PRICE,
    ask: str | pl.Expr = ASK_PRICE,
    *,
    tick: pl.Expr | None = None,
) -> pl.Expr:
    """Sign trades by the Lee-Ready algorithm: the quote rule, else the tick rule.

    D = +1 if P > M, −1 if P < M; at the midpoint, or without a usable quote, D = the tick sign.
    (Lee & Ready 1991, "Inferring trade direction from intraday data", *J. Finance*
    46(2):733-746, p. 745.) Any quote lag (Lee & Ready used quotes ≥ 5 s old) is applied when
    the quote is matched to the trade, not here.

    Parameters
    ----------
    price
        Trade price column or expression.
    bid, ask
        Prevailing best bid and ask.
    tick
        Fallback sign; default ``tick_rule(price)`` over the whole frame. With several symbols
        pass ``tick=tick_rule().over("symbol")`` (or apply the whole expression with ``.over``).

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}; 0 only where the quote rule and the fallback both give 0.

    Examples
    --------
    metrics.md §b.1: B = 10.00, A = 10.10, each trade after one at 10.06. The first trade has
    no previous trade (tick 0) but is above the midpoint; 10.05 is at the midpoint and takes
    the tick sign (−1 against 10.06); 10.12 is outside the quotes and above the midpoint.

    >>> import polars as pl
    >>> trades = pl.DataFrame(
    ...     {
    ...         "price": [10.06, 10.08, 10.06, 10.02, 10.06, 10.05, 10.06, 10.12],
    ...         "bid_price": 10.00,
    ...         "ask_price": 10.10,
    ...     }
    ... )
    >>> trades.with_columns(lr=lee_ready())
    shape: (8, 4)
    ┌───────┬───────────┬───────────┬─────┐
    │ price ┆ bid_price ┆ ask_price ┆ lr  │
    │ ---   ┆ ---       ┆ ---       ┆ --- │
    │ f64   ┆ f64       ┆ f64       ┆ i8  │
    ╞═══════╪═══════════╪═══════════╪═════╡
    │ 10.06 ┆ 10.0      ┆ 10.1      ┆ 1   │
    │ 10.08 ┆ 10.0      ┆ 10.1      ┆ 1   │
    │ 10.06 ┆ 10.0      ┆ 10.1      ┆ 1   │
    │ 10.02 ┆ 10.0      ┆ 10.1      ┆ -1  │
    │ 10.06 ┆ 10.0      ┆ 10.1      ┆ 1   │
    │ 10.05 ┆ 10.0      ┆ 10.1      ┆ -1  │
    │ 10.06 ┆ 10.0      ┆ 10.1      ┆ 1   │
    │ 10.12 ┆ 10.0      ┆ 10.1      ┆ 1   │
    └───────┴───────────┴───────────┴─────┘
    """
    q = quote_rule(price, bid, ask)
    return _named(pl.when(q != 0).then(q).otherwise(_fallback(tick, price)).cast(pl.Int8), price)


def emo(
    price: str | pl.Expr = PRICE,
    bid: str | pl.Expr = BID_PRICE,
    ask: str | pl.Expr = ASK_PRICE,
    *,
    tick: pl.Expr | None = None,
) -> pl.Expr:
    """Sign trades by the EMO rule: at the ask a buy, at the bid a sell, otherwise the tick rule.

    D = +1 if P = A; −1 if P = B; otherwise (inside or outside the quotes, or no usable quote)
    the tick sign. (Ellis, Michaely & O'Hara 2000, "The accuracy of trade classification rules:
    evidence from Nasdaq", *J. Financial and Quantitative Analysis* 35(4):529-551, pp. 535-536.)

    Parameters
    ----------
    price
        Trade price column or expression.
    bid, ask
        Prevailing best bid and ask.
    tick
        Fallback sign; default ``tick_rule(price)``; pass ``tick_rule().over("symbol")`` for
        several symbols.

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    >>> import polars as pl
    >>> trades = pl.DataFrame(
    ...     {"price": [10.06, 10.10, 10.08, 10.00, 10.12], "bid_price": 10.0, "ask_price": 10.1}
    ... )
    >>> trades.select(emo())["price"].to_list()
    [0, 1, -1, -1, 1]
    """
    p, b, a = as_expr(price), as_expr(bid), as_expr(ask)
    quoted = _quoted(p, b, a)
    tol = _tolerance(b, a)
    at_ask = quoted & ((p - a).abs() <= tol)
    at_bid = quoted & ((p - b).abs() <= tol)
    return _named(_sign(at_ask, at_bid, _fallback(tick, price)), price)


def clnv(
    price: str | pl.Expr = PRICE,
    bid: str | pl.Expr = BID_PRICE,
    ask: str | pl.Expr = ASK_PRICE,
    *,
    tick: pl.Expr | None = None,
) -> pl.Expr:
    """Sign trades by the CLNV rule: the quote rule near the quotes, the tick rule in between.

    D = +1 if P ∈ (0.3B + 0.7A, A]; −1 if P ∈ [B, 0.7B + 0.3A); otherwise (the middle 40 % of
    the spread, outside the quotes, or no usable quote) the tick sign. The thresholds are
    computed as B + 0.7 (A − B) and B + 0.3 (A − B); a price on a threshold (within the module's
    tolerance) goes to the tick rule, a price on a quote to the quote.
    (Chakrabarty, Li, Nguyen & Van Ness 2007, "Trade classification algorithms for electronic
    communications network trades", *J. Banking & Finance* 31(12):3806-3821, pp. 3811-3812.)

    Parameters
    ----------
    price
        Trade price column or expression.
    bid, ask
        Prevailing best bid and ask.
    tick
        Fallback sign; default ``tick_rule(price)``; pass ``tick_rule().over("symbol")`` for
        several symbols.

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    B = 10.00, A = 10.10: 10.08 is in the top 30 %, 10.07 on its boundary, 10.12 outside.

    >>> import polars as pl
    >>> trades = pl.DataFrame(
    ...     {"price": [10.06, 10.08, 10.07, 10.12, 10.02], "bid_price": 10.0, "ask_price": 10.1}
    ... )
    >>> trades.select(clnv())["price"].to_list()
    [0, 1, -1, 1, -1]
    """
    p, b, a = as_expr(price), as_expr(bid), as_expr(ask)
    quoted = _quoted(p, b, a)
    tol = _tolerance(b, a)
    spread = a - b
    upper = b + 0.7 * spread
    lower = b + 0.3 * spread
    buy = quoted & (p > upper + tol) & (p <= a + tol)
    sell = quoted & (p >= b - tol) & (p < lower - tol)
    return _named(_sign(buy, sell, _fallback(tick, price)), price)


def _unknown_nan(value: pl.Expr) -> pl.Expr:
    """``value`` with NaN as null, so comparisons treat it as missing, not as the largest number."""
    return pl.when(value.is_nan()).then(None).otherwise(value)


def depth_rule(
    price: str | pl.Expr = PRICE,
    bid: str | pl.Expr = BID_PRICE,
    ask: str | pl.Expr = ASK_PRICE,
    bid_size: str | pl.Expr = BID_SIZE,
    ask_size: str | pl.Expr = ASK_SIZE,
    *,
    tick: pl.Expr | None = None,
) -> pl.Expr:
    """Sign trades by the quote rule, at the midpoint by the quoted depth, else the tick rule.

    D = +1 if P > M, −1 if P < M; at the midpoint, +1 if q^A > q^B and −1 if q^A < q^B;
    otherwise (equal or missing sizes at the midpoint — a NaN size counts as missing — or no
    usable quote) the tick sign.
    The depth step is as metrics.md §b.1 and tclf docs/rules.md state it (Grauer, Schuster &
    Uhrig-Homburg 2023, "Option trade classification", SSRN working paper 4098475, pp. 14-15).

    Parameters
    ----------
    price
        Trade price column or expression.
    bid, ask
        Prevailing best bid and ask.
    bid_size, ask_size
        Sizes quoted at the best bid and ask.
    tick
        Fallback sign; default ``tick_rule(price)``; pass ``tick_rule().over("symbol")`` for
        several symbols.

    Returns
    -------
    pl.Expr
        ``Int8`` in {−1, 0, +1}.

    Examples
    --------
    >>> import polars as pl
    >>> trades = pl.DataFrame(
    ...     {
    ...         "price": [10.06, 10.05, 10.05, 10.05],
    ...         "bid_price": 10.0,
    ...         "ask_price": 10.1,
    ...         "bid_size": [1.0, 1.0, 5.0, 3.0],
    ...         "ask_size": [1.0, 5.0, 1.0, 3.0],
    ...     }
    ... )
    >>> trades.select(depth_rule())["price"].to_list()
    [1, 1, -1, -1]
    """
    p, b, a = as_expr(price), as_expr(bid), as_expr(ask)
    # A NaN size is as unknown as a missing one (polars orders NaN above every number, so
    # ``NaN > 3`` would otherwise be true and sign the trade).
    qb, qa = (_unknown_nan(as_expr(size)) for size in (bid_size, ask_size))
    quoted = _quoted(p, b, a)
    tol = _tolerance(b, a)
    at_mid = quoted & ((p - (b + 0.5 * (a - b))).abs() <= tol)
    q = quote_rule(p, b, a)
    depth = _sign(at_mid & (qa > qb), at_mid & (qa < qb), _fallback(tick, price))
    return _named(pl.when(q != 0).then(q).otherwise(depth).cast(pl.Int8), price)
