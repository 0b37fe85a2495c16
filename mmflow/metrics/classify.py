"""Trade signing: who initiated each trade.

The vendor's ``aggressor_side`` is used where it is known; otherwise the sign is inferred. Inference
never overwrites ``aggressor_side``: the sign used downstream is the separate ``trade_sign`` column,
and ``sign_method`` says where each sign came from (metrics.md §b.0–b.1).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from mmflow.schema import AGGRESSOR_SIDE, PRICE, SIGN_METHOD, SYMBOL, TRADE_SIGN

SignMethod = Literal["auto", "vendor", "tick"]
"""Signing methods available to :func:`sign_trades`."""


def _expr(value: str | pl.Expr) -> pl.Expr:
    return pl.col(value) if isinstance(value, str) else value


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
    change = _expr(price).diff().sign()
    return pl.when(change != 0).then(change).forward_fill().fill_null(0).cast(pl.Int8)


def sign_trades(trades: pl.LazyFrame, *, method: SignMethod = "auto") -> pl.LazyFrame:
    """Add ``trade_sign`` and ``sign_method`` to canonical trades.

    ``auto`` uses the vendor side where it is known (non-zero) and the tick rule elsewhere;
    ``vendor`` uses only the vendor side (unknown stays 0); ``tick`` ignores the vendor side.
    The tick rule runs per symbol, on trades in the frame's order (sort by ``ts`` first).

    Parameters
    ----------
    trades
        Canonical trades, time-ordered.
    method
        ``auto``, ``vendor`` or ``tick``.

    Returns
    -------
    pl.LazyFrame
        ``trades`` with ``trade_sign`` (Int8) and ``sign_method`` (String: ``vendor``, ``tick``,
        or ``none`` where no method gave a sign).

    Examples
    --------
    >>> import polars as pl
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 3,
    ...         "price": [1.0, 2.0, 2.0],
    ...         "aggressor_side": pl.Series([0, 0, -1], dtype=pl.Int8),
    ...     }
    ... )
    >>> sign_trades(trades).collect()[["trade_sign", "sign_method"]].rows()
    [(0, 'none'), (1, 'tick'), (-1, 'vendor')]
    """
    vendor = pl.col(AGGRESSOR_SIDE)
    tick = tick_rule(PRICE).over(SYMBOL)
    sign: pl.Expr
    source: pl.Expr
    if method == "vendor":
        sign = vendor
        source = pl.when(vendor != 0).then(pl.lit("vendor"))
    elif method == "tick":
        sign = tick
        source = pl.when(tick != 0).then(pl.lit("tick"))
    else:
        sign = pl.when(vendor != 0).then(vendor).otherwise(tick)
        source = pl.when(vendor != 0).then(pl.lit("vendor")).when(tick != 0).then(pl.lit("tick"))
    return trades.with_columns(
        sign.cast(pl.Int8).alias(TRADE_SIGN),
        source.otherwise(pl.lit("none")).alias(SIGN_METHOD),
    )
