"""Polygon.io / Massive flat files: stocks ``trades_v1`` and ``quotes_v1``, crypto ``trades_v1``.

Flat files are gzip CSVs with a header, one file per date holding every ticker, sorted by ticker
(formats.md §6), under keys such as ``us_stocks_sip/trades_v1/YYYY/MM/YYYY-MM-DD.csv.gz``. Times
are integer nanoseconds since the epoch, UTC (units are still taken from each value's magnitude,
so hand-made µs or ms files read correctly too).

Stocks trades and quotes carry two clocks: ``sip_timestamp`` (when the SIP received the
message; always set) becomes the canonical ``ts``, and ``participant_timestamp`` (when the
exchange or TRF generated it) becomes ``ts_event``, ``0`` meaning absent (null). Crypto trades
have only ``participant_timestamp``, which is both ``ts`` and ``ts_event``.

``ticker`` is the symbol (``--symbol`` only fills empty cells); ``exchange`` (Polygon's integer
exchange id) is kept as text in ``exchange``. Polygon's SIP trades and quotes are consolidated
across exchanges, so they have no ``venue``: the instrument is the ticker, and every quote
signs its trades. Trades keep their raw ``conditions`` (comma-separated
Polygon condition ids, e.g. ``12,37``) and, for stocks, ``correction`` as text. ``size`` is read
as Float64: since 2026 stock trades may be fractional (``4.000000``).

Stock trades carry no aggressor: ``aggressor_side`` is 0 (inferred downstream). Crypto trades
do: the condition list containing ``2`` (buyside) gives +1 and ``1`` (sellside) gives −1. The
list is split into whole numbers, so ``12`` counts as neither; a list holding both ``1`` and
``2`` is contradictory and gives 0, as does an empty list or any other condition.

Stocks quotes are NBBO updates: a side whose price or size is 0 (or empty) is empty, and both
its price and size become null. Sizes are in **round lots** ("a bid size of 2 means 200
shares"), multiplied by :data:`ROUND_LOT` so quote and trade sizes share a unit; ``read_quotes``
takes another multiplier through its ``round_lot`` keyword. Quotes have no single exchange (the
bid and ask exchanges differ), so they have no ``exchange`` column; ``conditions`` is kept as text.

Detection is by header: the exact published header, or one with extra columns (companion
columns may be added) that still holds every published column in the published order.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmflow.io._common import check_columns, epoch_to_datetime, scan_csv
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source
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
    QUOTES,
    SIZE,
    SYMBOL,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    conform,
)

__all__ = [
    "CRYPTO_TRADES_HEADER",
    "FORMATS",
    "QUOTES_HEADER",
    "ROUND_LOT",
    "TRADES_HEADER",
    "crypto_findings",
    "crypto_side",
    "quotes_findings",
    "read_crypto_trades",
    "read_quotes",
    "read_trades",
    "trades_findings",
]

ROUND_LOT = 100
"""Shares per round lot: stocks ``quotes_v1`` sizes are multiplied by this (formats.md §6.2)."""

# Vendor column names; they never leave this module.
_TICKER = "ticker"
_CONDITIONS = "conditions"
_CORRECTION = "correction"
_EXCHANGE = "exchange"
_ID = "id"
_PARTICIPANT_TIMESTAMP = "participant_timestamp"
_PRICE = "price"
_SEQUENCE_NUMBER = "sequence_number"
_SIP_TIMESTAMP = "sip_timestamp"
_SIZE = "size"
_TAPE = "tape"
_TRF_ID = "trf_id"
_TRF_TIMESTAMP = "trf_timestamp"
_ASK_EXCHANGE = "ask_exchange"
_ASK_PRICE = "ask_price"
_ASK_SIZE = "ask_size"
_BID_EXCHANGE = "bid_exchange"
_BID_PRICE = "bid_price"
_BID_SIZE = "bid_size"
_INDICATORS = "indicators"

TRADES_HEADER = (
    _TICKER,
    _CONDITIONS,
    _CORRECTION,
    _EXCHANGE,
    _ID,
    _PARTICIPANT_TIMESTAMP,
    _PRICE,
    _SEQUENCE_NUMBER,
    _SIP_TIMESTAMP,
    _SIZE,
    _TAPE,
    _TRF_ID,
    _TRF_TIMESTAMP,
)
"""The published stocks ``trades_v1`` header."""
QUOTES_HEADER = (
    _TICKER,
    _ASK_EXCHANGE,
    _ASK_PRICE,
    _ASK_SIZE,
    _BID_EXCHANGE,
    _BID_PRICE,
    _BID_SIZE,
    _CONDITIONS,
    _INDICATORS,
    _PARTICIPANT_TIMESTAMP,
    _SEQUENCE_NUMBER,
    _SIP_TIMESTAMP,
    _TAPE,
    _TRF_TIMESTAMP,
)
"""The published stocks ``quotes_v1`` header."""
CRYPTO_TRADES_HEADER = (
    _TICKER,
    _CONDITIONS,
    _EXCHANGE,
    _ID,
    _PARTICIPANT_TIMESTAMP,
    _PRICE,
    _SIZE,
)
"""The published crypto ``trades_v1`` header."""

# The columns each reader uses (a file may lack the others).
_TRADES_NEEDED = (
    _TICKER,
    _CONDITIONS,
    _CORRECTION,
    _EXCHANGE,
    _ID,
    _PARTICIPANT_TIMESTAMP,
    _PRICE,
    _SIP_TIMESTAMP,
    _SIZE,
)
_QUOTES_NEEDED = (
    _TICKER,
    _ASK_PRICE,
    _ASK_SIZE,
    _BID_PRICE,
    _BID_SIZE,
    _CONDITIONS,
    _PARTICIPANT_TIMESTAMP,
    _SIP_TIMESTAMP,
)
_CRYPTO_NEEDED = CRYPTO_TRADES_HEADER
# Columns only stocks files have: a header with one of them is not a crypto file.
_STOCKS_ONLY = (_CORRECTION, _SIP_TIMESTAMP)

_CRYPTO_BUYSIDE = 2
_CRYPTO_SELLSIDE = 1


def _holds_in_order(header: Sequence[str], signature: Sequence[str]) -> bool:
    """Whether every column of ``signature`` is in ``header``, in the same relative order.

    Examples
    --------
    >>> _holds_in_order(["a", "x", "b", "c"], ["a", "b", "c"])
    True
    >>> _holds_in_order(["b", "a", "c"], ["a", "b", "c"])
    False
    """
    columns = iter(header)
    return all(name in columns for name in signature)


def _sniff_trades(info: Sniff) -> bool:
    return _holds_in_order(info.header, TRADES_HEADER)


def _sniff_quotes(info: Sniff) -> bool:
    return _holds_in_order(info.header, QUOTES_HEADER)


def _sniff_crypto_trades(info: Sniff) -> bool:
    header = info.header
    if any(name in header for name in _STOCKS_ONLY):
        return False
    return _holds_in_order(header, CRYPTO_TRADES_HEADER)


def _scan(
    source: Source,
    needed: Sequence[str],
    integers: Sequence[str],
    floats: Sequence[str],
    what: str,
) -> pl.LazyFrame:
    """Scan ``source`` with every column as text except ``integers`` and ``floats``.

    Reading unused columns as text means a later row can never break type inference.
    """
    overrides: dict[str, pl.DataType] = {name: pl.Int64() for name in integers}
    overrides.update({name: pl.Float64() for name in floats})
    lf = scan_csv(source, infer_schema=False, schema_overrides=overrides)
    check_columns(source, lf, needed, what)
    return lf


def _symbol(options: ReadOptions) -> pl.Expr:
    ticker = pl.col(_TICKER)
    if options.symbol:
        ticker = ticker.fill_null(pl.lit(options.symbol, dtype=pl.String))
    return ticker.alias(SYMBOL)


def _optional_time(column: str) -> pl.Expr:
    """Convert a nanosecond clock column to a timestamp, ``0`` meaning absent (null)."""
    t = pl.col(column)
    return epoch_to_datetime(pl.when(t != 0).then(t))


def _count_set(column: str) -> pl.Expr:
    """Count the rows whose text code column holds something other than nothing or ``0``."""
    text = pl.col(column).str.strip_chars().str.strip_chars_start("0")
    return (text.fill_null("") != "").sum()


def crypto_side(conditions: str | pl.Expr) -> pl.Expr:
    """Map a Polygon crypto ``conditions`` list to ``aggressor_side`` (+1, −1, 0).

    The text is split into whole numbers: containing ``2`` (buyside) gives +1, ``1`` (sellside)
    −1; both, neither, or an empty list give 0. ``12`` is condition twelve, not 1 and 2.

    Parameters
    ----------
    conditions
        Column name or text expression, e.g. ``"2"`` or ``"1,37"``.

    Returns
    -------
    pl.Expr
        Int8 side, named like ``conditions`` when that is a column name.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"c": ["1", "2", "12", "1,2", "37,2", "", None]})
    >>> df.select(crypto_side("c"))["c"].to_list()
    [-1, 1, 0, 0, 1, 0, 0]
    """
    text = pl.col(conditions) if isinstance(conditions, str) else conditions
    codes = text.cast(pl.String).str.extract_all(r"\d+").list.eval(pl.element().cast(pl.Int64))
    buy = codes.list.contains(_CRYPTO_BUYSIDE).fill_null(value=False)
    sell = codes.list.contains(_CRYPTO_SELLSIDE).fill_null(value=False)
    side = (
        pl.when(buy & ~sell)
        .then(pl.lit(1, dtype=pl.Int8))
        .when(sell & ~buy)
        .then(pl.lit(-1, dtype=pl.Int8))
        .otherwise(pl.lit(0, dtype=pl.Int8))
    )
    return side.alias(conditions) if isinstance(conditions, str) else side


def read_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a Polygon / Massive stocks ``trades_v1`` flat file into canonical trades.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``ticker`` cells.

    Returns
    -------
    Frames
        ``trades`` only: ``ts`` = ``sip_timestamp``, ``ts_event`` = ``participant_timestamp``
        (0 → null), ``symbol`` = ``ticker``, ``exchange`` = ``exchange`` id, ``trade_id`` = ``id``,
        ``size`` Float64, ``aggressor_side`` 0 (no vendor side), ``conditions`` and
        ``correction`` as text.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a trades column.
    """
    lf = _scan(
        source,
        _TRADES_NEEDED,
        (_SIP_TIMESTAMP, _PARTICIPANT_TIMESTAMP),
        (_PRICE, _SIZE),
        "Polygon stocks trades",
    )
    canonical = lf.select(
        epoch_to_datetime(_SIP_TIMESTAMP).alias(TS),
        _optional_time(_PARTICIPANT_TIMESTAMP).alias(TS_EVENT),
        _symbol(options),
        pl.col(_EXCHANGE).alias(EXCHANGE),
        pl.col(_PRICE).alias(PRICE),
        pl.col(_SIZE).alias(SIZE),
        pl.lit(0, dtype=pl.Int8).alias(AGGRESSOR_SIDE),
        pl.col(_ID).alias(TRADE_ID),
        pl.col(_CONDITIONS).alias(CONDITIONS),
        pl.col(_CORRECTION).alias(CORRECTION),
    )
    return Frames(trades=conform(canonical, TRADES, what=source.display))


def _side_present(price: str, size: str) -> pl.Expr:
    """Whether a quote side is set: price and size both present and non-zero."""
    return (pl.col(price) != 0).fill_null(value=False) & (pl.col(size) != 0).fill_null(value=False)


def read_quotes(source: Source, options: ReadOptions, *, round_lot: float = ROUND_LOT) -> Frames:
    """Read a Polygon / Massive stocks ``quotes_v1`` flat file into canonical quotes.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``ticker`` cells.
    round_lot
        Shares per round lot; the file's sizes are multiplied by it (default :data:`ROUND_LOT`).

    Returns
    -------
    Frames
        ``quotes`` only: ``ts`` = ``sip_timestamp``, ``ts_event`` = ``participant_timestamp``
        (0 → null), ``symbol`` = ``ticker``, sizes in shares; a side with price or size 0 is
        empty (price and size null); ``conditions`` as text; no ``venue``.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a quotes column.
    """
    lot = options.round_lot if options.round_lot is not None else round_lot
    lf = _scan(
        source,
        _QUOTES_NEEDED,
        (_SIP_TIMESTAMP, _PARTICIPANT_TIMESTAMP),
        (_BID_PRICE, _BID_SIZE, _ASK_PRICE, _ASK_SIZE),
        "Polygon stocks quotes",
    )
    bid = _side_present(_BID_PRICE, _BID_SIZE)
    ask = _side_present(_ASK_PRICE, _ASK_SIZE)
    canonical = lf.select(
        epoch_to_datetime(_SIP_TIMESTAMP).alias(TS),
        _optional_time(_PARTICIPANT_TIMESTAMP).alias(TS_EVENT),
        _symbol(options),
        pl.when(bid).then(pl.col(_BID_PRICE)).alias(BID_PRICE),
        pl.when(bid).then(pl.col(_BID_SIZE) * lot).alias(BID_SIZE),
        pl.when(ask).then(pl.col(_ASK_PRICE)).alias(ASK_PRICE),
        pl.when(ask).then(pl.col(_ASK_SIZE) * lot).alias(ASK_SIZE),
        pl.col(_CONDITIONS).alias(CONDITIONS),
    )
    return Frames(quotes=conform(canonical, QUOTES, what=source.display))


def read_crypto_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a Polygon / Massive crypto ``trades_v1`` flat file into canonical trades.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``ticker`` cells.

    Returns
    -------
    Frames
        ``trades`` only: ``ts`` = ``ts_event`` = ``participant_timestamp``, ``symbol`` =
        ``ticker`` (e.g. ``X:BTC-USD``), ``exchange`` = ``exchange`` id, ``trade_id`` = ``id``,
        ``aggressor_side`` from :func:`crypto_side` (``2`` buyside +1, ``1`` sellside −1),
        ``conditions`` as text.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a crypto trades column.
    """
    lf = _scan(
        source, _CRYPTO_NEEDED, (_PARTICIPANT_TIMESTAMP,), (_PRICE, _SIZE), "Polygon crypto trades"
    )
    clock = epoch_to_datetime(_PARTICIPANT_TIMESTAMP)
    canonical = lf.select(
        clock.alias(TS),
        clock.alias(TS_EVENT),
        _symbol(options),
        pl.col(_EXCHANGE).alias(EXCHANGE),
        pl.col(_PRICE).alias(PRICE),
        pl.col(_SIZE).alias(SIZE),
        crypto_side(_CONDITIONS).alias(AGGRESSOR_SIDE),
        pl.col(_ID).alias(TRADE_ID),
        pl.col(_CONDITIONS).alias(CONDITIONS),
    )
    return Frames(trades=conform(canonical, TRADES, what=source.display))


def _count_lines(counts: dict[str, int], texts: dict[str, str]) -> list[str]:
    return [texts[key].format(n=f"{n:,}") for key, n in counts.items() if n]


def trades_findings(source: Source, options: ReadOptions) -> list[str]:
    """Count corrected trades (``correction`` ≠ 0) and off-exchange trades (``trf_id`` ≠ 0).

    Parameters
    ----------
    source
        A stocks ``trades_v1`` file.
    options
        Unused; part of the findings contract.

    Returns
    -------
    list[str]
        One line per non-zero count.
    """
    lf = scan_csv(source, infer_schema=False)
    present = lf.collect_schema().names()
    counts: dict[str, pl.Expr] = {}
    if _CORRECTION in present:
        counts["corrected"] = _count_set(_CORRECTION)
    if _TRF_ID in present:
        counts["off_exchange"] = _count_set(_TRF_ID)
    if not counts:
        return []
    row = lf.select(**counts).collect().row(0, named=True)
    return _count_lines(
        row,
        {
            "corrected": "{n} corrected trades (correction ≠ 0)",
            "off_exchange": "{n} off-exchange trades reported to a FINRA TRF (trf_id ≠ 0)",
        },
    )


def quotes_findings(source: Source, options: ReadOptions) -> list[str]:
    """Count one-sided and empty quotes (a side with price or size 0).

    Parameters
    ----------
    source
        A stocks ``quotes_v1`` file.
    options
        ``symbol`` as for :func:`read_quotes`.

    Returns
    -------
    list[str]
        One line per non-zero count.
    """
    quotes = read_quotes(source, options).quotes
    assert quotes is not None
    bid = pl.col(BID_PRICE).is_null()
    ask = pl.col(ASK_PRICE).is_null()
    row = (
        quotes.select(one_sided=(bid ^ ask).sum(), empty=(bid & ask).sum())
        .collect()
        .row(0, named=True)
    )
    return _count_lines(
        row,
        {
            "one_sided": "{n} one-sided quotes (one side has price or size 0)",
            "empty": "{n} empty quotes (both sides have price or size 0)",
        },
    )


def crypto_findings(source: Source, options: ReadOptions) -> list[str]:
    """Count crypto trades whose conditions say both buyside and sellside (side 0).

    Parameters
    ----------
    source
        A crypto ``trades_v1`` file.
    options
        Unused; part of the findings contract.

    Returns
    -------
    list[str]
        One line when there are such trades.
    """
    lf = scan_csv(source, infer_schema=False)
    if _CONDITIONS not in lf.collect_schema().names():
        return []
    codes = pl.col(_CONDITIONS).str.extract_all(r"\d+").list.eval(pl.element().cast(pl.Int64))
    both = codes.list.contains(_CRYPTO_BUYSIDE) & codes.list.contains(_CRYPTO_SELLSIDE)
    row = lf.select(both=both.fill_null(value=False).sum()).collect().row(0, named=True)
    return _count_lines(
        row, {"both": "{n} trades with both buyside (2) and sellside (1) conditions (side 0)"}
    )


FORMATS: tuple[Format, ...] = (
    Format(
        "polygon-trades",
        "Polygon/Massive stocks trades_v1 flat file (ticker,conditions,correction,exchange,id,...)",
        read_trades,
        _sniff_trades,
        findings=trades_findings,
    ),
    Format(
        "polygon-quotes",
        "Polygon/Massive stocks quotes_v1 flat file (NBBO; sizes in round lots × 100)",
        read_quotes,
        _sniff_quotes,
        findings=quotes_findings,
    ),
    Format(
        "polygon-crypto-trades",
        "Polygon/Massive crypto trades_v1 flat file (ticker,conditions,exchange,id,...)",
        read_crypto_trades,
        _sniff_crypto_trades,
        findings=crypto_findings,
    ),
)
