"""Matching each trade to the quote that prevailed before it.

The prevailing quote is the latest quote of the same symbol **strictly before** the trade on the
alignment clock (product.md: a quote stamped at the same instant usually already reflects the
trade; on real files strict matching scores 99.8 % against the vendor side where at-or-before
scores 78 %). ``match="at-or-before"`` includes same-instant quotes and ``lag`` uses older quotes
(Lee & Ready 1991 used 5 s for 1988 NYSE data; Bessembinder 2003 finds no lag best for
classification of modern data). Trades that carry their own pre-trade best bid and offer
(Databento tbbo / mbp-1, Sierra exports) keep it.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from mmflow.metrics.classify import quote_is_usable
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    MID_PRICE,
    SPREAD,
    TS,
    asof_keys,
)

__all__ = [
    "QUOTE_SOURCE",
    "QUOTE_STALE",
    "QUOTE_USABLE",
    "QuoteMatch",
    "attach_prevailing",
    "attach_quotes",
]

QuoteMatch = Literal["strict", "at-or-before"]
"""How a trade is matched to quotes: latest quote strictly before it, or at or before it."""

QUOTE_SOURCE = "quote_source"
"""Per trade: ``trade`` (its own pre-trade BBO), ``quotes`` (matched quote) or null (none)."""
QUOTE_USABLE = "quote_usable"
"""Per trade: both sides present and bid < ask, so the quote test may use it."""
QUOTE_STALE = "quote_stale"
"""Per trade: a quote preceded it but was older than the maximum quote age, so none is used."""

_BBO = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)
_MATCHED = {name: f"_matched_{name}" for name in _BBO}
_KEY = "_quote_key"
_MATCHED_TS = "_matched_ts"


def _negative(duration: str) -> str:
    text = duration.strip()
    return text[1:] if text.startswith("-") else f"-{text}"


def attach_quotes(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    *,
    match: QuoteMatch = "strict",
    lag: str = "0s",
    max_age: str | None = None,
) -> pl.LazyFrame:
    """Add the prevailing best bid and offer to every trade, with ``mid_price`` and ``spread``.

    Parameters
    ----------
    trades
        Canonical trades sorted by ``ts``. Rows that carry their own pre-trade BBO keep it.
    quotes
        Canonical quotes sorted by ``ts`` (``None``: only the trades' own BBO is used).
    match
        ``strict`` (default): the latest quote with quote.ts < trade.ts − lag;
        ``at-or-before``: quote.ts ≤ trade.ts − lag.
    lag
        A polars duration (``0s``, ``50ms``, ``1s``): use quotes at least this much older.
    max_age
        A polars duration: a matched quote older than this at the trade counts as missing
        (``quote_stale`` is true); ``None``: no limit. A trade's own BBO is never stale.

    Returns
    -------
    pl.LazyFrame
        ``trades`` with ``bid_price, bid_size, ask_price, ask_size`` (null where no quote
        prevails), ``mid_price`` = (B + A)/2 and ``spread`` = A − B (null unless the quote is
        usable), ``quote_source``, ``quote_usable`` and ``quote_stale``. Quotes match within
        the instrument (``venue, symbol``; see :func:`mmflow.schema.asof_keys`): a quote never
        prevails for a trade of another venue.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> t = pl.LazyFrame(
    ...     {"ts": [datetime(2024, 1, 1, 0, 0, 1)], "symbol": ["X"], "price": [10.1]}
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> q = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 1)],
    ...         "symbol": ["X", "X"],
    ...         "bid_price": [10.0, 10.1],
    ...         "bid_size": [1.0, 1.0],
    ...         "ask_price": [10.2, 10.3],
    ...         "ask_size": [1.0, 1.0],
    ...     }
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> attach_quotes(t, q).collect()[["bid_price", "ask_price", "mid_price"]].row(0)
    (10.0, 10.2, 10.1)
    """
    if quotes is not None:
        key = pl.col(TS) if lag in ("0", "0s", "") else pl.col(TS).dt.offset_by(_negative(lag))
        oldest = None if max_age is None else pl.col(TS).dt.offset_by(_negative(max_age))
        return attach_prevailing(trades, quotes, key=key, oldest=oldest, match=match)
    names = trades.collect_schema().names()
    own = all(name in names for name in _BBO)
    out = trades if own else trades.with_columns(pl.lit(None, pl.Float64).alias(n) for n in _BBO)
    own_bbo = pl.col(BID_PRICE).is_not_null() | pl.col(ASK_PRICE).is_not_null()
    out = out.with_columns(
        pl.when(own_bbo).then(pl.lit("trade")).otherwise(None).alias(QUOTE_SOURCE),
        pl.lit(value=False).alias(QUOTE_STALE),
    )
    return _with_usable(out)


def attach_prevailing(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame,
    *,
    key: pl.Expr,
    oldest: pl.Expr | None,
    match: QuoteMatch = "strict",
    by_instrument: bool = True,
) -> pl.LazyFrame:
    """Join each trade to the latest quote at ``key`` and choose its quote (:func:`attach_quotes`).

    Parameters
    ----------
    trades, quotes
        As for :func:`attach_quotes` (``quotes`` not ``None``).
    key
        The time each trade is matched at: ``ts``, or ``ts`` minus the lag.
    oldest
        The earliest ``ts`` a matched quote may have (``ts`` minus the maximum quote age); an
        older match counts as missing (``quote_stale``). ``None``: no limit.
    match
        ``strict`` (quotes strictly before ``key``) or ``at-or-before``.
    by_instrument
        Join by the instrument keys (venue, symbol). ``False`` when trades and quotes hold one
        instrument, as in an engine chunk: the join without ``by`` keys is 3–4× cheaper.

    Returns
    -------
    pl.LazyFrame
        The trades with ``bid_price, bid_size, ask_price, ask_size`` (their own pre-trade BBO
        where they carry one, else the match), ``quote_source``, ``quote_stale``,
        ``quote_usable``, ``mid_price`` and ``spread``.
    """
    names = trades.collect_schema().names()
    left = trades.with_columns(key.alias(_KEY))
    if by_instrument:
        left, right, by = asof_keys(left, quotes)
    else:
        right, by = quotes, []
    right = right.select(
        pl.col(TS).alias(_KEY),
        pl.col(TS).alias(_MATCHED_TS),
        *by,
        *(pl.col(n).alias(_MATCHED[n]) for n in _BBO),
    )
    joined = left.join_asof(
        right,
        on=_KEY,
        by=by or None,
        strategy="backward",
        allow_exact_matches=match == "at-or-before",
        check_sortedness=False,
    ).drop(_KEY, *(c for c in by if c not in names))
    stale = (
        pl.lit(value=False)
        if oldest is None
        else pl.col(_MATCHED_TS).is_not_null() & (pl.col(_MATCHED_TS) < oldest)
    )
    own = all(name in names for name in _BBO)
    return _with_usable(_resolve_matched(joined, stale, own=own))


def _with_usable(out: pl.LazyFrame) -> pl.LazyFrame:
    usable = quote_is_usable()
    return out.with_columns(
        usable.alias(QUOTE_USABLE),
        pl.when(usable).then((pl.col(BID_PRICE) + pl.col(ASK_PRICE)) / 2).alias(MID_PRICE),
        pl.when(usable).then(pl.col(ASK_PRICE) - pl.col(BID_PRICE)).alias(SPREAD),
    )


def _resolve_matched(joined: pl.LazyFrame, stale: pl.Expr, *, own: bool) -> pl.LazyFrame:
    """Choose each trade's quote after the as-of join: its own pre-trade BBO, else the match.

    ``joined`` holds the trades with the matched quote in the ``_MATCHED`` columns and its time
    in ``_MATCHED_TS``; ``stale`` is true where that match is older than the age limit (the
    match is then dropped). Adds ``quote_source`` and ``quote_stale`` and fills the BBO
    columns.
    """
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
    return (
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
