"""Binance public-data archive CSV files (data.binance.vision): trades, aggTrades, bookTicker.

Layouts (formats.md §1), comma separated, one CSV per daily or monthly ``.zip``:

* spot ``trades``: no header, ``id,price,qty,quote_qty,time,is_buyer_maker,is_best_match``,
  booleans ``True``/``False``;
* USD-M futures ``trades``: ``id,price,qty,quote_qty,time,is_buyer_maker``; COIN-M futures
  ``trades``: ``id,price,qty,base_qty,time,is_buyer_maker`` (``qty`` in contracts); a header from
  2022-08-11 on, none before;
* spot ``aggTrades``: no header, ``agg_trade_id,price,qty,first_trade_id,last_trade_id,time,
  is_buyer_maker,is_best_match``; futures ``aggTrades``: ``agg_trade_id,price,quantity,
  first_trade_id,last_trade_id,transact_time,is_buyer_maker``, header or not;
* futures ``bookTicker``: ``update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,
  transaction_time,event_time``.

Mapping to the canonical schema:

* ``ts`` = ``ts_event`` = the trade's ``time`` / ``transact_time`` (bookTicker:
  ``transaction_time``), an epoch count whose unit is taken from its magnitude (milliseconds;
  microseconds in spot files from 2025-01-01). Binance publishes no receive time.
* ``aggressor_side``: ``is_buyer_maker`` true (any case) ⇒ the buyer rested ⇒ −1
  (seller-initiated); false ⇒ +1 (buyer-initiated); anything else ⇒ 0.
* ``size`` = ``qty`` / ``quantity``: base asset for spot and USD-M, contracts for COIN-M.
* ``trade_id`` = ``id`` / ``agg_trade_id`` as text.
* ``symbol``: ``--symbol``, else the file name (``BTCUSDT-trades-2024-07-19.csv``).
* ``venue``: ``binance-spot`` / ``binance-um`` / ``binance-cm`` from a ``/spot/``,
  ``/futures/um/`` or ``/futures/cm/`` folder in the path; otherwise from the content: spot
  layouts (headerless 7-column trades or 8-column aggTrades, capitalised ``True``/``False``) ⇒
  spot; a ``base_qty`` column or a ``…_PERP`` symbol ⇒ COIN-M; any other futures layout ⇒ USD-M.

Detection (formats.md §1.9, §9.7): the archive's file name first, then the headerless layout
(column count and where the booleans are), then the exact header lines above.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

from mmflow.errors import ReaderError
from mmflow.io._common import check_columns, epoch_to_datetime, parse_bool, require_text, scan_csv
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
    "BOOKTICKER",
    "CM_TRADES",
    "FORMATS",
    "FUTURES_AGGTRADES",
    "NAME_PATTERN",
    "SPOT_AGGTRADES",
    "SPOT_TRADES",
    "UM_TRADES",
    "Kind",
    "Market",
    "canonical_trades",
    "content_kind",
    "file_values",
    "read_aggtrades",
    "read_bookticker",
    "read_trades",
    "trade_layout",
]

Kind = Literal["trades", "aggtrades", "bookticker"]
Market = Literal["spot", "futures"]

NAME_PATTERN: Final = re.compile(
    r"^(?P<sym>[A-Z0-9_]+)-(?P<kind>trades|aggTrades|bookTicker)-(?P<date>\d{4}-\d{2}(-\d{2})?)"
)
_NAME_KINDS: Final[dict[str, Kind]] = {
    "trades": "trades",
    "aggTrades": "aggtrades",
    "bookTicker": "bookticker",
}

SPOT_TRADES: Final = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
UM_TRADES: Final = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker")
CM_TRADES: Final = ("id", "price", "qty", "base_qty", "time", "is_buyer_maker")
SPOT_AGGTRADES: Final = (
    "agg_trade_id",
    "price",
    "qty",
    "first_trade_id",
    "last_trade_id",
    "time",
    "is_buyer_maker",
    "is_best_match",
)
FUTURES_AGGTRADES: Final = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)
BOOKTICKER: Final = (
    "update_id",
    "best_bid_price",
    "best_bid_qty",
    "best_ask_price",
    "best_ask_qty",
    "transaction_time",
    "event_time",
)


@dataclass(frozen=True)
class _Layout:
    """One archive CSV layout: what it holds, for which market, its columns and value pattern.

    ``pattern`` has one letter per column: ``i`` integer, ``n`` number, ``b`` boolean text.
    """

    kind: Kind
    market: Market
    columns: tuple[str, ...]
    pattern: str


_LAYOUTS: Final = (
    _Layout("trades", "spot", SPOT_TRADES, "innnibb"),
    _Layout("trades", "futures", UM_TRADES, "innnib"),
    _Layout("aggtrades", "spot", SPOT_AGGTRADES, "inniiibb"),
    _Layout("aggtrades", "futures", FUTURES_AGGTRADES, "inniiib"),
    _Layout("bookticker", "futures", BOOKTICKER, "innnnii"),
)
# Headers the archive writes (only futures files have one); a header is matched exactly.
_HEADERS: Final[dict[tuple[str, ...], Kind]] = {
    UM_TRADES: "trades",
    CM_TRADES: "trades",
    FUTURES_AGGTRADES: "aggtrades",
    BOOKTICKER: "bookticker",
}
# Headerless detection leaves bookTicker out: seven plain numbers say too little on their own.
_SNIFFED_HEADERLESS: Final = tuple(layout for layout in _LAYOUTS if layout.kind != "bookticker")

# Canonical trade field → the vendor column names that carry it, in preference order.
_TRADE_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "id": ("id", "agg_trade_id"),
    "price": ("price",),
    "qty": ("qty", "quantity"),
    "time": ("time", "transact_time"),
    "is_buyer_maker": ("is_buyer_maker",),
}
_TRADE_DTYPES: Final[dict[str, pl.DataType]] = {
    "id": pl.String(),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "time": pl.Int64(),
    "is_buyer_maker": pl.String(),
}
_BOOK_DTYPES: Final[dict[str, pl.DataType]] = {
    "best_bid_price": pl.Float64(),
    "best_bid_qty": pl.Float64(),
    "best_ask_price": pl.Float64(),
    "best_ask_qty": pl.Float64(),
    "transaction_time": pl.Int64(),
    "event_time": pl.Int64(),
}

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BOOLEANS: Final = ("true", "false")


def _cells(line: str) -> list[str]:
    return [cell.strip().strip('"') for cell in line.split(",")]


def _matches(cells: list[str], pattern: str) -> bool:
    if len(cells) != len(pattern):
        return False
    for cell, letter in zip(cells, pattern, strict=True):
        if letter == "i" and not _INTEGER.match(cell):
            return False
        if letter == "n" and not _NUMBER.match(cell):
            return False
        if letter == "b" and cell.lower() not in _BOOLEANS:
            return False
    return True


def _has_header(lines: list[str] | tuple[str, ...]) -> bool:
    """Say whether the first line is a header: its first field is not a number."""
    return not _NUMBER.match(_cells(lines[0])[0])


def _headerless_layout(
    lines: list[str] | tuple[str, ...], layouts: tuple[_Layout, ...] = _LAYOUTS
) -> _Layout | None:
    """Return the layout every given (headerless) line matches, if exactly one does."""
    rows = [_cells(line) for line in lines]
    found = [layout for layout in layouts if all(_matches(r, layout.pattern) for r in rows)]
    return found[0] if len(found) == 1 else None


def _name_kind(name: str) -> Kind | None:
    match = NAME_PATTERN.match(name)
    return _NAME_KINDS[match["kind"]] if match else None


def content_kind(lines: list[str] | tuple[str, ...]) -> Kind | None:
    """Tell a Binance archive CSV's kind from its first lines, or ``None``.

    A headerless file is recognised by its column count and where its booleans are (spot
    ``trades`` has booleans in fields 6 and 7, futures ``aggTrades`` a timestamp in field 6 and
    its only boolean in field 7); a file with a header by the exact header line.

    Examples
    --------
    >>> content_kind(["173525189,11343.67,0.467,5297.49,1596240000519,true"])
    'trades'
    >>> content_kind(["1715206948,29223.0,0.639,3643221425,3643221428,1682899200101,false"])
    'aggtrades'
    """
    if not lines:
        return None
    if not _has_header(lines):
        layout = _headerless_layout(lines, _SNIFFED_HEADERLESS)
        return layout.kind if layout else None
    return _HEADERS.get(tuple(cell.lower() for cell in _cells(lines[0])))


def _kind(info: Sniff) -> Kind | None:
    if info.magic and not info.lines:
        return None  # binary content (say, parquet keeping the archive's name) is not ours
    return _name_kind(info.name) or content_kind(info.lines)


def _sniff_trades(info: Sniff) -> bool:
    return _kind(info) == "trades"


def _sniff_aggtrades(info: Sniff) -> bool:
    return _kind(info) == "aggtrades"


def _sniff_bookticker(info: Sniff) -> bool:
    return _kind(info) == "bookticker"


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _Plan:
    """How to scan one file: header or not, the column names, and the market its layout implies."""

    has_header: bool
    columns: tuple[str, ...]
    market: Market | None


_FORMAT_NAMES: Final[dict[Kind, str]] = {
    "trades": "binance-trades",
    "aggtrades": "binance-aggtrades",
    "bookticker": "binance-bookticker",
}


def _plan(source: Source, lines: list[str], kind: Kind) -> _Plan:
    """Decide how to scan ``source`` as ``kind`` from its first lines."""
    if _has_header(lines):
        columns = tuple(cell.lower() for cell in _cells(lines[0]))
        market: Market | None = "futures" if columns in _HEADERS else None
        return _Plan(has_header=True, columns=columns, market=market)
    layout = _headerless_layout(lines)
    if layout is None:
        # Not a clean match (odd values in the first rows): fall back on the column count.
        count = len(_cells(lines[0]))
        candidates = [lay for lay in _LAYOUTS if lay.kind == kind and len(lay.columns) == count]
        if not candidates:
            expected = " or ".join(str(len(lay.columns)) for lay in _LAYOUTS if lay.kind == kind)
            msg = (
                f"headerless file has {count} columns, a Binance {kind} file has {expected} "
                "(is this the right --format?)"
            )
            raise ReaderError(msg, path=source.display)
        layout = candidates[0]
    if layout.kind != kind:
        msg = (
            f"the rows look like Binance {layout.market} {layout.kind}, not {kind}; "
            f"use --format {_FORMAT_NAMES[layout.kind]}"
        )
        raise ReaderError(msg, path=source.display)
    return _Plan(has_header=False, columns=layout.columns, market=layout.market)


def _symbol(source: Source, options: ReadOptions) -> str:
    match = NAME_PATTERN.match(source.name)
    if match is None and options.symbol:
        return options.symbol
    if match is None:
        msg = (
            f"cannot tell the symbol: file name {source.name!r} is not like "
            "SYMBOL-trades-YYYY-MM-DD.csv; pass --symbol"
        )
        raise ReaderError(msg, path=source.display)
    return match["sym"]


def _venue(source: Source, plan: _Plan, lines: list[str], symbol: str) -> str:
    """Return ``binance-spot``, ``binance-um`` or ``binance-cm`` for a file.

    The archive's folder decides (``/spot/``, ``/futures/um/``, ``/futures/cm/`` anywhere in the
    path as typed or resolved). Otherwise: a spot layout or capitalised ``True``/``False`` ⇒ spot;
    a ``base_qty`` column or a ``…_PERP`` symbol ⇒ COIN-M; anything else ⇒ USD-M.
    """
    paths = ("/" + Path(source.display).as_posix(), source.path.resolve().as_posix())
    for folder, name in (("/spot/", "spot"), ("/futures/um/", "um"), ("/futures/cm/", "cm")):
        if any(folder in p for p in paths):
            return f"binance-{name}"
    capitalised = any(c in ("True", "False") for row in lines for c in _cells(row))
    if plan.market == "spot" or capitalised:
        return "binance-spot"
    if "base_qty" in plan.columns or symbol.endswith("_PERP"):
        return "binance-cm"
    return "binance-um"


def _scan(source: Source, plan: _Plan, dtypes: dict[str, pl.DataType]) -> pl.LazyFrame:
    overrides = {name: dtype for name, dtype in dtypes.items() if name in plan.columns}
    return scan_csv(
        source,
        has_header=plan.has_header,
        new_columns=plan.columns,
        schema_overrides=overrides,
        infer_schema=False,
    )


def trade_layout(
    source: Source, kind: Kind
) -> tuple[_Plan, dict[str, str], dict[str, pl.DataType]]:
    """How to read a ``trades`` or ``aggtrades`` file: its plan, vendor column per field, types.

    Raises
    ------
    ReaderError
        For an empty file or a layout that does not fit ``kind``.
    """
    plan = _plan(source, require_text(source), kind)
    # Each canonical field comes from the first of its vendor names the file has.
    chosen = {
        field: next((a for a in aliases if a in plan.columns), aliases[0])
        for field, aliases in _TRADE_ALIASES.items()
    }
    dtypes = {chosen[field]: dtype for field, dtype in _TRADE_DTYPES.items()}
    return plan, chosen, dtypes


def file_values(source: Source, options: ReadOptions, plan: _Plan) -> tuple[str, str]:
    """Return the symbol and venue of a file (from its name, folder and first lines)."""
    symbol = _symbol(source, options)
    return symbol, _venue(source, plan, require_text(source), symbol)


def canonical_trades(
    lf: pl.LazyFrame,
    chosen: dict[str, str],
    symbol: pl.Expr,
    venue: pl.Expr,
    *,
    what: str,
    keep: Sequence[str] = (),
) -> pl.LazyFrame:
    """Turn scanned Binance trades (vendor columns ``chosen``) into canonical trades."""
    buyer_maker = parse_bool(chosen["is_buyer_maker"])
    ts = epoch_to_datetime(chosen["time"])
    trades = lf.select(
        ts.alias(TS),
        ts.alias(TS_EVENT),
        symbol.cast(pl.String).alias(SYMBOL),
        venue.cast(pl.String).alias(VENUE),
        pl.col(chosen["price"]).alias(PRICE),
        pl.col(chosen["qty"]).alias(SIZE),
        pl.when(buyer_maker)
        .then(pl.lit(-1, dtype=pl.Int8))
        .when(~buyer_maker)
        .then(pl.lit(1, dtype=pl.Int8))
        .otherwise(pl.lit(0, dtype=pl.Int8))
        .alias(AGGRESSOR_SIDE),
        pl.col(chosen["id"]).cast(pl.String).alias(TRADE_ID),
        *keep,
    )
    return conform(trades, TRADES, what=what, keep=keep)


def _read_trades(source: Source, options: ReadOptions, kind: Kind) -> Frames:
    require_text(source)
    symbol = _symbol(source, options)
    plan, chosen, dtypes = trade_layout(source, kind)
    lf = _scan(source, plan, dtypes)
    check_columns(source, lf, list(chosen.values()), f"Binance {kind}")
    venue = _venue(source, plan, require_text(source), symbol)
    trades = canonical_trades(
        lf, chosen, pl.lit(symbol, dtype=pl.String), pl.lit(venue), what=source.display
    )
    return Frames(trades=trades)


def read_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a Binance spot, USD-M or COIN-M ``trades`` file into canonical trades.

    Parameters
    ----------
    source
        The file (plain, gzip, zstd, or a zip holding one CSV).
    options
        ``symbol`` names the file when its name carries no symbol.

    Returns
    -------
    Frames
        Lazy canonical trades; ``quotes`` is ``None``.

    Raises
    ------
    ReaderError
        For an empty file, an unknown layout, a missing column or no symbol.
    """
    return _read_trades(source, options, "trades")


def read_aggtrades(source: Source, options: ReadOptions) -> Frames:
    """Read a Binance spot or futures ``aggTrades`` file into canonical trades.

    One row per aggregate trade (all fills of one taker order at one price); ``trade_id`` is the
    aggregate id.

    Parameters
    ----------
    source
        The file (plain, gzip, zstd, or a zip holding one CSV).
    options
        ``symbol`` names the file when its name carries no symbol.

    Returns
    -------
    Frames
        Lazy canonical trades; ``quotes`` is ``None``.

    Raises
    ------
    ReaderError
        For an empty file, an unknown layout, a missing column or no symbol.
    """
    return _read_trades(source, options, "aggtrades")


def read_bookticker(source: Source, options: ReadOptions) -> Frames:
    """Read a Binance futures ``bookTicker`` file into canonical quotes.

    ``ts`` = ``ts_event`` = ``transaction_time`` (matching-engine time); ``event_time`` (push
    time) is dropped.

    Parameters
    ----------
    source
        The file (plain, gzip, zstd, or a zip holding one CSV).
    options
        ``symbol`` names the file when its name carries no symbol.

    Returns
    -------
    Frames
        Lazy canonical quotes; ``trades`` is ``None``.

    Raises
    ------
    ReaderError
        For an empty file, an unknown layout, a missing column or no symbol.
    """
    lines = require_text(source)
    symbol = _symbol(source, options)
    plan = _plan(source, lines, "bookticker")
    lf = _scan(source, plan, _BOOK_DTYPES)
    needed = [name for name in BOOKTICKER if name not in ("update_id", "event_time")]
    check_columns(source, lf, needed, "Binance bookTicker")
    ts = epoch_to_datetime("transaction_time")
    quotes = lf.select(
        ts.alias(TS),
        ts.alias(TS_EVENT),
        pl.lit(symbol, dtype=pl.String).alias(SYMBOL),
        pl.lit(_venue(source, plan, lines, symbol)).alias(VENUE),
        pl.col("best_bid_price").alias(BID_PRICE),
        pl.col("best_bid_qty").alias(BID_SIZE),
        pl.col("best_ask_price").alias(ASK_PRICE),
        pl.col("best_ask_qty").alias(ASK_SIZE),
    )
    return Frames(quotes=conform(quotes, QUOTES, what=source.display))


FORMATS: tuple[Format, ...] = (
    Format(
        "binance-trades",
        "Binance public-data trades CSV (spot, USD-M, COIN-M; header or not)",
        read_trades,
        _sniff_trades,
    ),
    Format(
        "binance-aggtrades",
        "Binance public-data aggTrades CSV (spot, futures; header or not)",
        read_aggtrades,
        _sniff_aggtrades,
    ),
    Format(
        "binance-bookticker",
        "Binance public-data futures bookTicker CSV (best bid/ask quotes)",
        read_bookticker,
        _sniff_bookticker,
    ),
)
