"""The per-quote book expressions shared by the whole-input and the engine's quote bars.

:func:`mmflow.metrics.ofi.quote_bars` (all quotes at once) and the engine's chunked
:func:`mmflow.engine.quotes.quote_partials` classify each quote, compute its order-flow
imbalance event and its standing state with these expressions, so the two cannot drift apart.

* A quote is **empty** when a side's price or size is null, **crossed** when both sides are
  present and bid > ask, **valid** otherwise (metrics.md §b.3).
* The OFI event (Cont, Kukanov & Stoikov 2014, *J. Financial Econometrics* 12(1):47-88)
  e_n = 1{Pᴮ_n ≥ Pᴮ_{n−1}} qᴮ_n − 1{Pᴮ_n ≤ Pᴮ_{n−1}} qᴮ_{n−1} − 1{Pᴬ_n ≤ Pᴬ_{n−1}} qᴬ_n
  + 1{Pᴬ_n ≥ Pᴬ_{n−1}} qᴬ_{n−1}, n − 1 the previous valid quote.
* The standing state of metrics.md §12.2: weight (1 while a valid quote stands), imbalance
  weight (1 while a valid quote with depth > 0 stands), spread Pᴬ − Pᴮ, depth qᴮ + qᴬ and
  quote imbalance (qᴮ − qᴬ) / (qᴮ + qᴬ).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

__all__ = ["Sides", "book_flags", "ofi_event", "standing_states"]

Sides = tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]
"""Bid price, bid size, ask price, ask size (NaN already turned into null)."""


def book_flags(sides: Sides) -> tuple[pl.Expr, pl.Expr]:
    """Return ``(empty, crossed)`` for each quote; valid is ``~empty & ~crossed``.

    Examples
    --------
    >>> frame = pl.DataFrame({"b": [1.0, 2.0, None], "q": [1.0, 1.0, 1.0], "a": [2.0, 1.0, 2.0]})
    >>> empty, crossed = book_flags((pl.col("b"), pl.col("q"), pl.col("a"), pl.col("q")))
    >>> frame.select(empty.alias("empty"), crossed.alias("crossed")).rows()
    [(False, False), (False, True), (True, False)]
    """
    empty = pl.any_horizontal(side.is_null() for side in sides)
    bid, _, ask, _ = sides
    return empty, ~empty & (bid > ask)


def ofi_event(sides: Sides, previous: Sides) -> pl.Expr:
    """Return the OFI event e_n of each quote against ``previous`` (the n − 1 quote's sides).

    Examples
    --------
    The bid rises (its new size counts) and the ask is unchanged (e = qᴮ_n + qᴬ_{n−1} − qᴬ_n):

    >>> now = (pl.lit(10.01), pl.lit(3.0), pl.lit(10.02), pl.lit(8.0))
    >>> before = (pl.lit(10.00), pl.lit(15.0), pl.lit(10.02), pl.lit(8.0))
    >>> pl.select(ofi_event(now, before)).item()
    3.0
    """
    bid, bid_size, ask, ask_size = sides
    previous_bid, previous_bid_size, previous_ask, previous_ask_size = previous
    return (
        pl.when(bid >= previous_bid).then(bid_size).otherwise(0.0)
        - pl.when(bid <= previous_bid).then(previous_bid_size).otherwise(0.0)
        - pl.when(ask <= previous_ask).then(ask_size).otherwise(0.0)
        + pl.when(ask >= previous_ask).then(previous_ask_size).otherwise(0.0)
    )


def standing_states(sides: Sides, standing: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> list[pl.Expr]:
    """Return the five standing states (not aliased), each passed through ``standing``.

    ``standing(value, none)`` is the caller's rule for which quote's value stands on a row
    (``none`` while no valid quote stands). In order: weight and imbalance weight (Int64),
    spread, depth and quote imbalance (Float64).

    Examples
    --------
    >>> sides = (pl.lit(10.0), pl.lit(3.0), pl.lit(10.5), pl.lit(1.0))
    >>> states = standing_states(sides, lambda value, none: value)
    >>> pl.select(state.alias(str(i)) for i, state in enumerate(states)).row(0)
    (1, 1, 0.5, 4.0, 0.5)
    """
    bid, bid_size, ask, ask_size = sides
    depth = bid_size + ask_size
    positive = depth > 0
    one, nothing = pl.lit(1, pl.Int64), pl.lit(0, pl.Int64)
    zero = pl.lit(0.0, pl.Float64)
    imbalance = pl.when(positive).then((bid_size - ask_size) / depth).otherwise(zero)
    return [
        standing(one, nothing),
        standing(pl.when(positive).then(one).otherwise(nothing), nothing),
        standing(ask - bid, zero),
        standing(depth, zero),
        standing(imbalance, zero),
    ]
