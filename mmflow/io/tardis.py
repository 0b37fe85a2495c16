"""Tardis.dev downloadable CSV files: ``trades``, ``quotes``/``book_ticker``, book snapshots.

Tardis ships one gzip CSV per exchange, data type, day and symbol, always with a header row
(formats.md §2). Every file carries two clocks in microseconds since the epoch: ``timestamp`` (the
exchange's time) and ``local_timestamp`` (when Tardis received the message). Files are split and
ordered by ``local_timestamp``, which therefore becomes the canonical ``ts``; ``timestamp`` becomes
``ts_event`` and is not guaranteed to be monotone (the pipeline sorts; this reader does not).
Units are taken from each value's magnitude, so ns-sized test files read correctly too.

Columns are read by name, never by position: the quote layout is
``ask_amount,ask_price,bid_price,bid_amount`` (ask first). ``exchange`` becomes ``venue`` and
``symbol`` the symbol (``--symbol`` fills empty cells). In ``trades`` the ``side`` column is the
taker (aggressor) side: ``buy`` → +1, ``sell`` → −1, ``unknown`` or empty → 0. In ``liquidations``
it is the side of the forced liquidation order, which is the taker of that trade: ``buy`` (a short
was liquidated) → +1, ``sell`` → −1. An empty cell is a value not provided: an empty ``id`` gives a
null ``trade_id`` and an empty quote side gives null price and size.

Detection is by the exact header. ``trades`` and ``liquidations`` share their header, so a file is
taken as liquidations only when its name contains ``_liquidations_`` (the Tardis client names files
``{exchange}_{data_type}_{YYYY-MM-DD}_{symbol}.csv.gz``). A file named in that pattern is also
accepted when its header has the needed columns in another order or with extra columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import polars as pl

from mmflow.io._common import check_columns, epoch_to_datetime, scan_csv, side_from_text
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    PRICE,
    QUOTES,
    SIZE,
    SYMBOL,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    VENUE,
    conform,
)

__all__ = [
    "FORMATS",
    "QUOTES_HEADER",
    "TRADES_HEADER",
    "TRADE_TYPES",
    "canonical_trades",
    "read_book_snapshot",
    "read_liquidations",
    "read_quotes",
    "read_trades",
]

# Vendor column names; they never leave this module.
_EXCHANGE = "exchange"
_SYMBOL = "symbol"
_TIMESTAMP = "timestamp"
_LOCAL_TIMESTAMP = "local_timestamp"
_ID = "id"
_SIDE = "side"
_PRICE = "price"
_AMOUNT = "amount"
_ASK_AMOUNT = "ask_amount"
_ASK_PRICE = "ask_price"
_BID_PRICE = "bid_price"
_BID_AMOUNT = "bid_amount"
_BOOK_ASK_PRICE = "asks[0].price"
_BOOK_ASK_AMOUNT = "asks[0].amount"
_BOOK_BID_PRICE = "bids[0].price"
_BOOK_BID_AMOUNT = "bids[0].amount"

_PREFIX = (_EXCHANGE, _SYMBOL, _TIMESTAMP, _LOCAL_TIMESTAMP)
TRADES_HEADER = (*_PREFIX, _ID, _SIDE, _PRICE, _AMOUNT)
"""The exact ``trades`` (and ``liquidations``) header."""
QUOTES_HEADER = (*_PREFIX, _ASK_AMOUNT, _ASK_PRICE, _BID_PRICE, _BID_AMOUNT)
"""The exact ``quotes`` / ``book_ticker`` header (ask before bid)."""
_SNAPSHOT_NEEDED = (*_PREFIX, _BOOK_ASK_PRICE, _BOOK_ASK_AMOUNT, _BOOK_BID_PRICE, _BOOK_BID_AMOUNT)

_INTEGER_COLUMNS = (_TIMESTAMP, _LOCAL_TIMESTAMP)
_BUY = ("buy",)
_SELL = ("sell",)

# The Tardis client's default file name: {exchange}_{data_type}_{YYYY-MM-DD}_{symbol}.csv
_FILE_NAME = re.compile(
    r"^(?P<exchange>[a-z0-9-]+)_(?P<data_type>[a-z0-9_]+?)_\d{4}-\d{2}-\d{2}_.+\.csv$",
    re.IGNORECASE,
)
_TRADES_TYPE = re.compile(r"^trades$")
_QUOTES_TYPE = re.compile(r"^(quotes|book_ticker)$")
_SNAPSHOT_TYPE = re.compile(r"^book_snapshot_\d+$")
_LIQUIDATIONS_MARK = "_liquidations_"


def _data_type(name: str) -> str | None:
    """Return the data type from a Tardis client file name, or None for other names.

    Examples
    --------
    >>> _data_type("binance-futures_book_snapshot_25_2020-09-01_BTCUSDT.csv")
    'book_snapshot_25'
    >>> _data_type("bitmex_trades_XBTUSD.csv") is None
    True
    """
    match = _FILE_NAME.match(name)
    return match["data_type"].lower() if match else None


def _named_with(info: Sniff, data_type: re.Pattern[str], needed: Sequence[str]) -> bool:
    """Whether the name's data type matches ``data_type`` and the header has every ``needed``."""
    named = _data_type(info.name)
    if named is None or not data_type.match(named):
        return False
    return set(needed) <= set(info.header)


def _is_liquidations_name(name: str) -> bool:
    return _LIQUIDATIONS_MARK in name.lower()


def _sniff_trades(info: Sniff) -> bool:
    if _is_liquidations_name(info.name):
        return False
    return tuple(info.header) == TRADES_HEADER or _named_with(info, _TRADES_TYPE, TRADES_HEADER)


def _sniff_liquidations(info: Sniff) -> bool:
    if not _is_liquidations_name(info.name):
        return False
    return tuple(info.header) == TRADES_HEADER or set(TRADES_HEADER) <= set(info.header)


def _sniff_quotes(info: Sniff) -> bool:
    return tuple(info.header) == QUOTES_HEADER or _named_with(info, _QUOTES_TYPE, QUOTES_HEADER)


def _is_snapshot_header(header: Sequence[str]) -> bool:
    """Whether ``header`` is the prefix followed by ``asks[i]``/``bids[i]`` levels 0..N-1.

    Examples
    --------
    >>> _is_snapshot_header(list(_SNAPSHOT_NEEDED))
    True
    >>> _is_snapshot_header(list(_PREFIX))
    False
    """
    if tuple(header[: len(_PREFIX)]) != _PREFIX:
        return False
    levels = header[len(_PREFIX) :]
    if not levels or len(levels) % 4:
        return False
    expected = [
        f"{side}[{i}].{field}"
        for i in range(len(levels) // 4)
        for side in ("asks", "bids")
        for field in ("price", "amount")
    ]
    return list(levels) == expected


def _sniff_snapshot(info: Sniff) -> bool:
    return _is_snapshot_header(info.header) or _named_with(info, _SNAPSHOT_TYPE, _SNAPSHOT_NEEDED)


def _scan(source: Source, needed: Sequence[str], floats: Sequence[str], what: str) -> pl.LazyFrame:
    """Scan ``source`` with every column as text except the clocks and ``floats``.

    Reading unused columns as text means a later row can never break type inference.
    """
    overrides: dict[str, pl.DataType] = {name: pl.Int64() for name in _INTEGER_COLUMNS}
    overrides.update({name: pl.Float64() for name in floats})
    lf = scan_csv(source, infer_schema=False, schema_overrides=overrides)
    check_columns(source, lf, needed, what)
    return lf


def _common(options: ReadOptions) -> list[pl.Expr]:
    """Clocks, symbol and venue, shared by every Tardis data type."""
    symbol = pl.col(_SYMBOL)
    if options.symbol:
        symbol = symbol.fill_null(pl.lit(options.symbol, dtype=pl.String))
    return [
        epoch_to_datetime(_LOCAL_TIMESTAMP).alias(TS),
        epoch_to_datetime(_TIMESTAMP).alias(TS_EVENT),
        symbol.alias(SYMBOL),
        pl.col(_EXCHANGE).alias(VENUE),
    ]


TRADE_TYPES: Final[dict[str, pl.DataType]] = {
    **{name: pl.Int64() for name in _INTEGER_COLUMNS},
    _PRICE: pl.Float64(),
    _AMOUNT: pl.Float64(),
}
"""The typed columns of a ``trades`` (or ``liquidations``) file; every other one is text."""


def canonical_trades(
    lf: pl.LazyFrame, options: ReadOptions, *, what: str, keep: Sequence[str] = ()
) -> pl.LazyFrame:
    """Turn scanned Tardis trade rows (vendor columns, :data:`TRADE_TYPES`) into canonical ones."""
    canonical = lf.select(
        *_common(options),
        pl.col(_PRICE).alias(PRICE),
        pl.col(_AMOUNT).alias(SIZE),
        side_from_text(_SIDE, buy=_BUY, sell=_SELL).alias(AGGRESSOR_SIDE),
        pl.col(_ID).alias(TRADE_ID),
        *keep,
    )
    return conform(canonical, TRADES, what=what, keep=keep)


def _read_trade_rows(source: Source, options: ReadOptions, what: str) -> Frames:
    lf = _scan(source, TRADES_HEADER, (_PRICE, _AMOUNT), what)
    return Frames(trades=canonical_trades(lf, options, what=source.display))


def read_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a Tardis ``trades`` file into canonical trades.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``symbol`` cells.

    Returns
    -------
    Frames
        ``trades`` only: ``ts`` = ``local_timestamp``, ``ts_event`` = ``timestamp``,
        ``venue`` = ``exchange``, ``trade_id`` = ``id`` (text), ``aggressor_side`` from the taker
        ``side`` (``buy`` +1, ``sell`` −1, ``unknown``/empty 0).

    Raises
    ------
    ReaderError
        When the file is empty or lacks a trades column.
    """
    return _read_trade_rows(source, options, "Tardis trades")


def read_liquidations(source: Source, options: ReadOptions) -> Frames:
    """Read a Tardis ``liquidations`` file into canonical trades.

    ``side`` is the liquidation order's side, the taker of the forced trade: ``buy`` (a short was
    liquidated) → +1, ``sell`` (a long was liquidated) → −1. Everything else is as
    :func:`read_trades`.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``symbol`` cells.

    Returns
    -------
    Frames
        ``trades`` only.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a liquidations column.
    """
    return _read_trade_rows(source, options, "Tardis liquidations")


def _read_top_of_book(
    source: Source, options: ReadOptions, columns: tuple[str, str, str, str], what: str
) -> Frames:
    """Read quotes from the four vendor columns bid price, bid size, ask price, ask size."""
    bid_price, bid_size, ask_price, ask_size = columns
    lf = _scan(source, (*_PREFIX, *columns), columns, what)
    canonical = lf.select(
        *_common(options),
        pl.col(bid_price).alias(BID_PRICE),
        pl.col(bid_size).alias(BID_SIZE),
        pl.col(ask_price).alias(ASK_PRICE),
        pl.col(ask_size).alias(ASK_SIZE),
    )
    return Frames(quotes=conform(canonical, QUOTES, what=source.display))


def read_quotes(source: Source, options: ReadOptions) -> Frames:
    """Read a Tardis ``quotes`` or ``book_ticker`` file into canonical quotes.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``symbol`` cells.

    Returns
    -------
    Frames
        ``quotes`` only, columns read by name (the file has ask before bid); an empty side's
        price and size are null.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a quotes column.
    """
    columns = (_BID_PRICE, _BID_AMOUNT, _ASK_PRICE, _ASK_AMOUNT)
    return _read_top_of_book(source, options, columns, "Tardis quotes")


def read_book_snapshot(source: Source, options: ReadOptions) -> Frames:
    """Read level 0 of a Tardis ``book_snapshot_5`` / ``book_snapshot_25`` file as quotes.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` fills empty ``symbol`` cells.

    Returns
    -------
    Frames
        ``quotes`` only, from ``bids[0]`` and ``asks[0]``; deeper levels are ignored and an empty
        level 0 side is null.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a level-0 column.
    """
    columns = (_BOOK_BID_PRICE, _BOOK_BID_AMOUNT, _BOOK_ASK_PRICE, _BOOK_ASK_AMOUNT)
    return _read_top_of_book(source, options, columns, "Tardis book snapshot")


FORMATS: tuple[Format, ...] = (
    Format(
        "tardis-trades",
        "Tardis.dev trades CSV (exchange,symbol,timestamp,local_timestamp,id,side,price,amount)",
        read_trades,
        _sniff_trades,
    ),
    Format(
        "tardis-quotes",
        "Tardis.dev quotes / book_ticker CSV (ask_amount,ask_price,bid_price,bid_amount)",
        read_quotes,
        _sniff_quotes,
    ),
    Format(
        "tardis-book-snapshot",
        "Tardis.dev book_snapshot_5 / book_snapshot_25 CSV, level 0 as quotes",
        read_book_snapshot,
        _sniff_snapshot,
    ),
    Format(
        "tardis-liquidations",
        "Tardis.dev liquidations CSV (trades layout; file name must contain _liquidations_)",
        read_liquidations,
        _sniff_liquidations,
    ),
)
