"""The TAQ cleaning rules (P, T and Q) and their shared constants; see :mod:`mmflow.clean`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Final

import polars as pl

from mmflow.errors import ParameterError
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    CONDITIONS,
    CORRECTION,
    EXCHANGE,
    PRICE,
    SIZE,
    SYMBOL,
    TS,
    VENUE,
)

__all__ = [
    "DATE",
    "DROPPED_SCHEMA",
    "MAD_SCALE",
    "MARKET_CLOSE",
    "MARKET_OPEN",
    "MAX_DEVIATIONS",
    "MAX_SPREAD_MULTIPLE",
    "NEW_YORK",
    "OUTLIER_WINDOW",
    "QUOTE_RULES",
    "ROWS_DROPPED",
    "RULE",
    "RULE_DESCRIPTIONS",
    "TRADE_COUNT",
    "TRADE_RULES",
    "VALID_CONDITIONS",
    "Cleaned",
    "CleanedTAQ",
    "Step",
    "drop_abnormal_conditions",
    "drop_corrected_trades",
    "drop_large_spreads",
    "drop_mid_quote_outliers",
    "drop_negative_spreads",
    "drop_outside_hours",
    "drop_trades_outside_quotes",
    "drop_zero_prices",
    "exchange_column",
    "excluded_median",
    "keep_single_exchange",
    "merge_same_timestamp_quotes",
    "merge_same_timestamp_trades",
    "new_york_date",
]

NEW_YORK: Final = "America/New_York"
MARKET_OPEN: Final = time(9, 30)
MARKET_CLOSE: Final = time(16, 0)
VALID_CONDITIONS: Final = ("", "@", "E", "@E", "F", "FI", "@F", "@FI", "I", "@I")
"""Sale conditions T2 keeps (R highfrequency ``tradesCondition`` default ``validConds``)."""
MAX_SPREAD_MULTIPLE: Final = 50.0
OUTLIER_WINDOW: Final = 50
MAX_DEVIATIONS: Final = 10.0
MAD_SCALE: Final = 1.4826
"""R ``mad``'s constant: makes the median absolute deviation estimate σ for normal data."""

TRADE_COUNT: Final = "trade_count"
"""Column the cleaned trades carry: how many raw trades each row stands for (T3)."""
DATE: Final = "date"
RULE: Final = "rule"
ROWS_DROPPED: Final = "rows_dropped"
DROPPED_SCHEMA: Final = pl.Schema(
    {SYMBOL: pl.String(), DATE: pl.Date(), RULE: pl.String(), ROWS_DROPPED: pl.Int64()}
)
"""Schema of :attr:`Cleaned.dropped`: one row per symbol, New York date and applied rule."""

TRADE_RULES: Final = ("P2", "P1", "P3", "T1", "T2", "T3", "T4")
"""Trade rules in the order they are applied."""
QUOTE_RULES: Final = ("P2", "P1", "P3", "Q2", "Q3", "Q1", "Q4")
"""Quote rules in the order they are applied."""
RULE_DESCRIPTIONS: Final = {
    "P1": "outside 09:30-16:00 New York time",
    "P2": "zero or missing price, bid or ask",
    "P3": "not the selected exchange of the symbol-day",
    "T1": "corrected or cancelled (correction indicator not 0)",
    "T2": "abnormal sale condition",
    "T3": "same-timestamp trades merged into one",
    "T4": "price beyond the prevailing quote by more than the spread",
    "Q1": "same-timestamp quotes merged into one",
    "Q2": "ask not above bid (negative or zero spread)",
    "Q3": "spread more than 50 x the day's median spread",
    "Q4": "mid-quote outlier (more than 10 MADs from the rolling median)",
}
"""One line per rule, for reports (``mmflow inspect``)."""

_TMP = "__mmflow_clean_"
_DAY = _TMP + "day"
_ROWS = _TMP + "rows"
_BEFORE = _TMP + "before"
_AFTER = _TMP + "after"
_ORDER = _TMP + "order"
_VOLUME = _TMP + "volume"
_SPREAD = _TMP + "spread"
_MEDIAN = _TMP + "median"
_MID = _TMP + "mid"
_QUOTE_TS = _TMP + "quote_ts"
_QUOTE_BID = _TMP + "quote_bid"
_QUOTE_ASK = _TMP + "quote_ask"

Step = Callable[[pl.LazyFrame], pl.LazyFrame]


@dataclass(frozen=True)
class Cleaned:
    """The result of a cleaning run: what was kept and what each rule removed.

    Attributes
    ----------
    frame
        The kept rows (lazy), canonical columns in canonical order, sorted by ``ts`` (stable);
        cleaned trades also carry ``trade_count`` (``UInt32``, 1 unless T3 merged rows).
    dropped
        Long table :data:`DROPPED_SCHEMA` — ``symbol, date, rule, rows_dropped`` — one row per
        symbol, New York date and applied rule (zero counts included), in application order.
    applied
        The rules that ran, in order.
    skipped
        Requested rules that could not run because the data lacks what they need.
    """

    frame: pl.LazyFrame
    dropped: pl.LazyFrame
    applied: tuple[str, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class CleanedTAQ:
    """Cleaned trades and quotes from :func:`clean_taq` (``None`` where none were given)."""

    trades: Cleaned | None
    quotes: Cleaned | None


# --- helpers -------------------------------------------------------------------------------


def new_york_date() -> pl.Expr:
    """Return the New York calendar date of ``ts`` (the "day" of every per-day rule)."""
    return pl.col(TS).dt.convert_time_zone(NEW_YORK).dt.date()


def _names(frame: pl.LazyFrame) -> list[str]:
    return frame.collect_schema().names()


def _is_trades(frame: pl.LazyFrame) -> bool:
    return PRICE in _names(frame)


def _selection(exchanges: str | Sequence[str]) -> list[str] | None:
    """None for ``"auto"``, else the list of exchange codes to keep."""
    if isinstance(exchanges, str):
        return None if exchanges.lower() == "auto" else [exchanges]
    chosen = list(exchanges)
    if not chosen:
        msg = "exchanges must be 'auto' or at least one exchange code, was an empty list"
        raise ParameterError(msg)
    return chosen


# --- P rules (trades and quotes) -------------------------------------------------------------


def drop_outside_hours(
    frame: pl.LazyFrame, *, open_time: time = MARKET_OPEN, close_time: time = MARKET_CLOSE
) -> pl.LazyFrame:
    """P1: keep rows stamped between ``open_time`` and ``close_time`` New York time (inclusive).

    Parameters
    ----------
    frame
        Canonical trades or quotes.
    open_time, close_time
        The session, New York wall-clock time (default 09:30 and 16:00).

    Returns
    -------
    pl.LazyFrame
        The rows inside the session; rows without a timestamp are dropped.

    Raises
    ------
    ParameterError
        When ``open_time`` is not before ``close_time``.
    """
    if open_time >= close_time:
        msg = f"open_time must be before close_time, was {open_time} and {close_time}"
        raise ParameterError(msg)
    local = pl.col(TS).dt.convert_time_zone(NEW_YORK).dt.time()
    return frame.filter(local.is_between(open_time, close_time, closed="both"))


def drop_zero_prices(frame: pl.LazyFrame) -> pl.LazyFrame:
    """P2: drop trades with price 0, or quotes with bid or ask 0; a null price counts as 0.

    Parameters
    ----------
    frame
        Canonical trades (judged on ``price``) or quotes (on ``bid_price`` and ``ask_price``).

    Returns
    -------
    pl.LazyFrame
        The rows with non-zero prices.
    """
    if _is_trades(frame):
        return frame.filter(pl.col(PRICE).fill_null(0) != 0)
    return frame.filter(
        (pl.col(BID_PRICE).fill_null(0) != 0) & (pl.col(ASK_PRICE).fill_null(0) != 0)
    )


def exchange_column(names: Sequence[str]) -> str | None:
    """Return the column holding the reporting exchange, or ``None`` when there is none.

    ``exchange``, else ``venue`` (older frames held the exchange code there).
    """
    if EXCHANGE in names:
        return EXCHANGE
    return VENUE if VENUE in names else None


def keep_single_exchange(
    frame: pl.LazyFrame, exchanges: str | Sequence[str] = "auto"
) -> pl.LazyFrame:
    """P3: keep one exchange per symbol-day.

    Parameters
    ----------
    frame
        Canonical trades or quotes with an ``exchange`` column (or, in older frames, the
        exchange code in ``venue``).
    exchanges
        ``"auto"``: per symbol and New York date, the venue with the largest volume (trades:
        summed ``size``; quotes: summed ``bid_size + ask_size``); ties keep every tied venue.
        Otherwise an exchange code or a list of codes to keep (e.g. ``["N"]``).

    Returns
    -------
    pl.LazyFrame
        The rows of the selected exchange(s).
    """
    chosen = _selection(exchanges)
    column = exchange_column(_names(frame)) or EXCHANGE
    if chosen is not None:
        return frame.filter(pl.col(column).is_in(chosen))
    if _is_trades(frame):
        volume = pl.col(SIZE).fill_null(0)
    else:
        volume = pl.col(BID_SIZE).fill_null(0) + pl.col(ASK_SIZE).fill_null(0)
    names = _names(frame)
    return (
        frame.with_columns(new_york_date().alias(_DAY))
        .with_columns(volume.sum().over(SYMBOL, _DAY, column).alias(_VOLUME))
        .filter(pl.col(_VOLUME) == pl.col(_VOLUME).max().over(SYMBOL, _DAY))
        .select(names)
    )


# --- T rules -------------------------------------------------------------------------------


def drop_corrected_trades(frame: pl.LazyFrame) -> pl.LazyFrame:
    """T1: keep trades whose ``correction`` is ``0`` / ``00`` (or missing: regular).

    Parameters
    ----------
    frame
        Canonical trades with a ``correction`` column (TAQ ``TR_CORR``).

    Returns
    -------
    pl.LazyFrame
        The uncorrected trades.
    """
    regular = pl.col(CORRECTION).str.strip_chars().str.contains(r"^0*$")
    return frame.filter(regular.fill_null(True))


def drop_abnormal_conditions(
    frame: pl.LazyFrame, *, valid: Iterable[str] = VALID_CONDITIONS
) -> pl.LazyFrame:
    """T2: keep trades whose sale condition is one of ``valid`` (missing counts as ``''``).

    Parameters
    ----------
    frame
        Canonical trades with a ``conditions`` column (codes with spaces removed).
    valid
        The conditions to keep; default highfrequency's ``validConds``.

    Returns
    -------
    pl.LazyFrame
        The trades with a regular sale condition.
    """
    condition = pl.col(CONDITIONS).fill_null("").str.strip_chars()
    return frame.filter(condition.is_in(list(valid)))


def merge_same_timestamp_trades(frame: pl.LazyFrame) -> pl.LazyFrame:
    """T3: merge trades with the same ``symbol`` and ``ts`` into one row.

    The merged row has the median price, the summed size, ``trade_count`` = the number of raw
    trades it stands for, the common ``aggressor_side`` (0 if they differ) and the other
    columns of the last trade.

    Parameters
    ----------
    frame
        Canonical trades (``trade_count`` is summed when present).

    Returns
    -------
    pl.LazyFrame
        One row per symbol and timestamp, in order of first appearance.
    """
    names = _names(frame)
    count = pl.col(TRADE_COUNT).sum() if TRADE_COUNT in names else pl.len()
    side = pl.col(AGGRESSOR_SIDE)
    fixed = {SYMBOL, TS, PRICE, SIZE, AGGRESSOR_SIDE, TRADE_COUNT}
    merged = frame.group_by(SYMBOL, TS, maintain_order=True).agg(
        pl.col(PRICE).median(),
        pl.col(SIZE).sum(),
        pl.when(side.n_unique() == 1).then(side.first()).otherwise(pl.lit(0, dtype=pl.Int8)),
        count.cast(pl.UInt32).alias(TRADE_COUNT),
        *(pl.col(name).last() for name in names if name not in fixed),
    )
    return merged.select(*names, *([] if TRADE_COUNT in names else [TRADE_COUNT]))


def drop_trades_outside_quotes(trades: pl.LazyFrame, quotes: pl.LazyFrame) -> pl.LazyFrame:
    """T4: drop trades priced above ask + spread or below bid − spread of the prevailing quote.

    The prevailing quote is the latest quote of the same symbol and New York day stamped strictly
    before the trade (``join_asof``, exact matches excluded: a quote at the trade's instant
    usually already reflects it). Pass cleaned quotes (:func:`clean_taq_quotes`), as
    highfrequency's ``tradesCleanupUsingQuotes`` asks.

    Parameters
    ----------
    trades
        Canonical trades.
    quotes
        Canonical quotes.

    Returns
    -------
    pl.LazyFrame
        The trades within the band, and those without a prevailing two-sided quote, sorted by
        ``ts`` (stable).
    """
    names = _names(trades)
    prevailing = quotes.select(
        pl.col(SYMBOL),
        new_york_date().alias(_DAY),
        pl.col(TS).alias(_QUOTE_TS),
        pl.col(BID_PRICE).alias(_QUOTE_BID),
        pl.col(ASK_PRICE).alias(_QUOTE_ASK),
    ).sort(_QUOTE_TS, maintain_order=True)
    bid, ask, price = pl.col(_QUOTE_BID), pl.col(_QUOTE_ASK), pl.col(PRICE)
    spread = ask - bid
    inside = (price <= ask + spread) & (price >= bid - spread)
    return (
        trades.with_columns(new_york_date().alias(_DAY))
        .sort(TS, maintain_order=True)
        .join_asof(
            prevailing,
            left_on=TS,
            right_on=_QUOTE_TS,
            by=[SYMBOL, _DAY],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .filter(inside.fill_null(True))
        .select(names)
    )


# --- Q rules -------------------------------------------------------------------------------


def drop_negative_spreads(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Q2: keep quotes whose ask is above the bid (drops negative and zero spreads).

    Parameters
    ----------
    frame
        Canonical quotes.

    Returns
    -------
    pl.LazyFrame
        The quotes with a positive spread, and one-sided quotes (not judged here).
    """
    return frame.filter((pl.col(ASK_PRICE) > pl.col(BID_PRICE)).fill_null(True))


def drop_large_spreads(
    frame: pl.LazyFrame, *, max_multiple: float = MAX_SPREAD_MULTIPLE
) -> pl.LazyFrame:
    """Q3: drop quotes whose spread exceeds ``max_multiple`` × the median spread of the day.

    Parameters
    ----------
    frame
        Canonical quotes.
    max_multiple
        The multiple of the symbol-day's median spread above which a quote is dropped (50).

    Returns
    -------
    pl.LazyFrame
        The quotes with a plausible spread; one-sided quotes and days whose median spread is
        not positive are not judged.
    """
    names = _names(frame)
    spread = pl.col(_SPREAD)
    median = pl.col(_MEDIAN)
    too_wide = (median > 0) & (spread > max_multiple * median)
    return (
        frame.with_columns(
            (pl.col(ASK_PRICE) - pl.col(BID_PRICE)).alias(_SPREAD), new_york_date().alias(_DAY)
        )
        .with_columns(spread.median().over(SYMBOL, _DAY).alias(_MEDIAN))
        .filter(~too_wide.fill_null(False))
        .select(names)
    )


def merge_same_timestamp_quotes(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Q1: merge quotes with the same ``symbol`` and ``ts``: median bid, median ask, summed sizes.

    Other columns come from the last quote. A side that is empty in every merged quote stays
    empty (null price and size).

    Parameters
    ----------
    frame
        Canonical quotes.

    Returns
    -------
    pl.LazyFrame
        One row per symbol and timestamp, in order of first appearance.
    """
    names = _names(frame)

    def side(price: str, size: str) -> list[pl.Expr]:
        median = pl.col(price).median()
        total = pl.when(median.is_null()).then(None).otherwise(pl.col(size).sum())
        return [median, total.alias(size)]

    fixed = {SYMBOL, TS, BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE}
    return (
        frame.group_by(SYMBOL, TS, maintain_order=True)
        .agg(
            *side(BID_PRICE, BID_SIZE),
            *side(ASK_PRICE, ASK_SIZE),
            *(pl.col(name).last() for name in names if name not in fixed),
        )
        .select(names)
    )


def _remaining(x: pl.Expr, low: pl.Expr, high: pl.Expr) -> pl.Expr:
    """Order statistic j of a sorted sample once one copy of ``x`` is removed from it.

    ``low`` and ``high`` are order statistics j and j + 1 of the sample that still holds ``x``:
    if ``x`` lies above ``low`` it sits after position j and j is unchanged; otherwise a copy at
    or before j is removed and j moves up to ``high``.
    """
    return pl.when(x > low).then(low).otherwise(high)


def excluded_median(x: pl.Expr, window: int, group: Sequence[str]) -> pl.Expr:
    """Median of the ``window`` neighbours of each row in its group, excluding the row itself.

    The neighbours are the ``window / 2`` rows before and after; at a group's ends the window is
    shifted to keep ``window`` rows of the group; a group of ``window`` rows or fewer uses all its
    other rows; a group of one row gives null. Computed exactly from rolling order statistics of
    the ``window + 1`` rows centred on the row (no Python per row).

    Parameters
    ----------
    x
        The values (no nulls), in the order that defines "neighbour".
    window
        An even number of neighbours.
    group
        The columns the windows must not cross.

    Returns
    -------
    pl.Expr
        The median, per row.
    """
    half = window // 2
    size = window + 1

    def rolling(j: int) -> pl.Expr:
        # Order statistic j (0-based) of the `size` rows centred on each row; the first and last
        # `half` rows of a group reuse the nearest complete window.
        statistic = x.rolling_quantile(
            j / window, "nearest", window_size=size, min_samples=size, center=True
        )
        return statistic.forward_fill().backward_fill().over(group)

    large = (
        _remaining(x, rolling(half - 1), rolling(half))
        + _remaining(x, rolling(half), rolling(half + 1))
    ) / 2

    n = pl.len()

    def whole(index: pl.Expr) -> pl.Expr:
        return x.sort().get(index.clip(0, n - 1)).over(group)

    # The others number n − 1: their median sits at 0-based positions (n−2)//2 and (n−1)//2.
    low, high = (n - 2) // 2, (n - 1) // 2
    small = (
        _remaining(x, whole(low), whole(low + 1)) + _remaining(x, whole(high), whole(high + 1))
    ) / 2
    rows = n.over(group)
    return pl.when(rows >= size).then(large).when(rows >= 2).then(small).otherwise(None)


def drop_mid_quote_outliers(
    frame: pl.LazyFrame,
    *,
    window: int = OUTLIER_WINDOW,
    max_deviations: float = MAX_DEVIATIONS,
) -> pl.LazyFrame:
    """Q4: drop quotes whose mid-quote is far from the median of the surrounding quotes.

    A quote goes when ``|mid − m| > max_deviations × MAD`` where ``m`` is the median mid-quote of
    the ``window`` surrounding quotes of its symbol-day excluding itself
    (:func:`excluded_median`) and MAD = 1.4826 × median ``|mid − median(mid)|`` over the
    symbol-day (R ``mad``; highfrequency ``rmOutliersQuotes``, ``type = "standard"``).
    Barndorff-Nielsen et al. (2009) state the rule with the mean absolute deviation; the median
    absolute deviation is used here because it is not inflated by the outliers themselves.

    Parameters
    ----------
    frame
        Canonical quotes.
    window
        The number of surrounding quotes (even; 50).
    max_deviations
        How many MADs a mid-quote may deviate (10).

    Returns
    -------
    pl.LazyFrame
        The quotes that are not outliers, sorted by ``ts`` (stable). Quotes without a mid-quote
        and days whose MAD is zero are not judged.

    Raises
    ------
    ParameterError
        When ``window`` is not a positive even number.
    """
    if window <= 0 or window % 2:
        msg = f"window must be a positive even number of quotes, was {window}"
        raise ParameterError(msg)
    names = _names(frame)
    group = [SYMBOL, _DAY]
    mid = pl.col(_MID)
    prepared = frame.sort(TS, maintain_order=True).with_columns(
        ((pl.col(BID_PRICE) + pl.col(ASK_PRICE)) / 2).alias(_MID), new_york_date().alias(_DAY)
    )
    judged = prepared.filter(mid.is_not_null())
    mad = MAD_SCALE * (mid - mid.median()).abs().median().over(group)
    deviation = (mid - excluded_median(mid, window, group)).abs()
    outlier = (mad > 0) & (deviation > max_deviations * mad)
    kept = judged.filter(~outlier.fill_null(False)).select(names)
    unjudged = prepared.filter(mid.is_null()).select(names)
    return pl.concat([kept, unjudged]).sort(TS, maintain_order=True)
