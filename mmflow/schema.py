"""The canonical trade and quote schema, declared once.

Every reader casts its vendor columns to these names and types and selects them in this order;
everything downstream relies on them. The names and types are the public contract of
``product.md``: add columns, rename none.

Examples
--------
>>> import polars as pl
>>> from mmflow.schema import TRADES, conform
>>> raw = pl.LazyFrame(
...     {"ts": [0], "symbol": ["X"], "price": [1], "size": [2], "aggressor_side": [1], "x": [0]}
... )
>>> conform(raw.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))), TRADES).collect_schema()
... # doctest: +NORMALIZE_WHITESPACE
Schema([('ts', Datetime(time_unit='ns', time_zone='UTC')),
        ('symbol', String),
        ('price', Float64),
        ('size', Float64),
        ('aggressor_side', Int8)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from mmflow.errors import SchemaError

__all__ = [
    "AGGRESSOR_SIDE",
    "ASK_PRICE",
    "ASK_SIZE",
    "ASOF_VENUE",
    "BID_PRICE",
    "BID_SIZE",
    "BUY",
    "CLOSE",
    "CONDITIONS",
    "CORRECTION",
    "EXCHANGE",
    "ISO_NS",
    "MID_CLOSE",
    "MID_PRICE",
    "MM_INVENTORY",
    "NET_FLOW",
    "PRICE",
    "QUOTES",
    "SCHEMA_VERSION",
    "SELL",
    "SESSION",
    "SIGN_METHOD",
    "SIZE",
    "SPREAD",
    "SYMBOL",
    "TIMESTAMP",
    "TRADES",
    "TRADE_ID",
    "TRADE_SIGN",
    "TS",
    "TS_EVENT",
    "UNKNOWN",
    "VENUE",
    "Column",
    "TableSchema",
    "asof_keys",
    "conform",
    "instrument_keys",
    "require",
]

SCHEMA_VERSION: Final = 1

# Column names. Code uses these constants; tests use the literal strings to check the spelling.
TS: Final = "ts"
TS_EVENT: Final = "ts_event"
SYMBOL: Final = "symbol"
VENUE: Final = "venue"
EXCHANGE: Final = "exchange"
PRICE: Final = "price"
SIZE: Final = "size"
AGGRESSOR_SIDE: Final = "aggressor_side"
TRADE_ID: Final = "trade_id"
CONDITIONS: Final = "conditions"
CORRECTION: Final = "correction"
BID_PRICE: Final = "bid_price"
BID_SIZE: Final = "bid_size"
ASK_PRICE: Final = "ask_price"
ASK_SIZE: Final = "ask_size"

# Derived per trade.
TRADE_SIGN: Final = "trade_sign"
SIGN_METHOD: Final = "sign_method"
MID_PRICE: Final = "mid_price"
SPREAD: Final = "spread"

# Per bar (columns several metrics read and write).
SESSION: Final = "session"
"""Optional column: bars and cumulative series restart for each (instrument, session)."""
NET_FLOW: Final = "net_flow"
CLOSE: Final = "close"
MID_CLOSE: Final = "mid_close"
MM_INVENTORY: Final = "mm_inventory"

TIMESTAMP: Final = pl.Datetime("ns", "UTC")
ISO_NS: Final = "%Y-%m-%dT%H:%M:%S%.9fZ"
"""How mmflow writes times as text: ISO-8601, UTC, nanoseconds (lexically sortable)."""

BUY: Final = 1
SELL: Final = -1
UNKNOWN: Final = 0


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, dtype and whether every frame must have it."""

    name: str
    dtype: pl.DataType
    required: bool


@dataclass(frozen=True)
class TableSchema:
    """A canonical table: its name (``trades`` or ``quotes``) and its columns in order."""

    name: str
    columns: tuple[Column, ...]

    @property
    def required(self) -> list[str]:
        """Names of the columns every frame of this table must have."""
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        """Names of all columns, required and optional, in canonical order."""
        return [c.name for c in self.columns]

    def dtype(self, name: str) -> pl.DataType:
        """Return the canonical dtype of column ``name``."""
        for column in self.columns:
            if column.name == name:
                return column.dtype
        msg = f"{name} is not a column of the canonical {self.name} schema"
        raise KeyError(msg)


_BBO = (
    Column(BID_PRICE, pl.Float64(), required=False),
    Column(BID_SIZE, pl.Float64(), required=False),
    Column(ASK_PRICE, pl.Float64(), required=False),
    Column(ASK_SIZE, pl.Float64(), required=False),
)

TRADES: Final = TableSchema(
    "trades",
    (
        Column(TS, TIMESTAMP, required=True),
        Column(TS_EVENT, TIMESTAMP, required=False),
        Column(SYMBOL, pl.String(), required=True),
        Column(VENUE, pl.String(), required=False),
        Column(EXCHANGE, pl.String(), required=False),
        Column(PRICE, pl.Float64(), required=True),
        Column(SIZE, pl.Float64(), required=True),
        Column(AGGRESSOR_SIDE, pl.Int8(), required=True),
        Column(TRADE_ID, pl.String(), required=False),
        *_BBO,
        Column(CONDITIONS, pl.String(), required=False),
        Column(CORRECTION, pl.String(), required=False),
    ),
)

QUOTES: Final = TableSchema(
    "quotes",
    (
        Column(TS, TIMESTAMP, required=True),
        Column(TS_EVENT, TIMESTAMP, required=False),
        Column(SYMBOL, pl.String(), required=True),
        Column(VENUE, pl.String(), required=False),
        Column(EXCHANGE, pl.String(), required=False),
        Column(BID_PRICE, pl.Float64(), required=True),
        Column(BID_SIZE, pl.Float64(), required=True),
        Column(ASK_PRICE, pl.Float64(), required=True),
        Column(ASK_SIZE, pl.Float64(), required=True),
        Column(CONDITIONS, pl.String(), required=False),
    ),
)


def instrument_keys(frame: pl.LazyFrame | pl.DataFrame | Sequence[str]) -> list[str]:
    """Return the columns that name an instrument: ``venue, symbol`` (``symbol`` without venue).

    An instrument is ``(venue, symbol)``: Binance spot and USD-M ``BTCUSDT`` are two instruments.
    ``venue`` is the market the rows come from (a consolidated feed such as TAQ or a Polygon SIP
    leaves it null and keeps the reporting exchange in ``exchange``); a null venue is one value
    of its own. Every metric groups by these keys; with polars joins pass ``nulls_equal=True``,
    and for as-of joins use :func:`asof_keys` (as-of joins never match a null key).

    Parameters
    ----------
    frame
        A frame, or its column names.

    Returns
    -------
    list[str]
        ``["venue", "symbol"]`` or ``["symbol"]``.

    Examples
    --------
    >>> instrument_keys(["ts", "venue", "symbol"])
    ['venue', 'symbol']
    >>> instrument_keys(["ts", "symbol"])
    ['symbol']
    """
    if isinstance(frame, pl.LazyFrame):
        names: Sequence[str] = frame.collect_schema().names()
    elif isinstance(frame, pl.DataFrame):
        names = frame.columns
    else:
        names = frame
    return [VENUE, SYMBOL] if VENUE in names else [SYMBOL]


ASOF_VENUE: Final = "_asof_venue"
"""Temporary as-of join key: ``venue`` with null as the empty string (as-of joins skip nulls)."""


def asof_keys(
    left: pl.LazyFrame, right: pl.LazyFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame, list[str]]:
    """Prepare two frames for ``join_asof(by=...)`` on the instrument.

    When either side has ``venue``, both get :data:`ASOF_VENUE` (the venue, null as ``""``; a
    side without ``venue`` counts as null venue), so rows of a null venue match each other and
    never another venue. Drop :data:`ASOF_VENUE` from the result.

    Returns
    -------
    tuple[pl.LazyFrame, pl.LazyFrame, list[str]]
        The two frames and the ``by`` keys.
    """
    left_names = left.collect_schema().names()
    right_names = right.collect_schema().names()
    if VENUE not in left_names and VENUE not in right_names:
        return left, right, [SYMBOL]

    def keyed(frame: pl.LazyFrame, names: list[str]) -> pl.LazyFrame:
        venue = pl.col(VENUE).fill_null("") if VENUE in names else pl.lit("")
        return frame.with_columns(venue.alias(ASOF_VENUE))

    return keyed(left, left_names), keyed(right, right_names), [ASOF_VENUE, SYMBOL]


def conform(
    lf: pl.LazyFrame, table: TableSchema, *, what: str | None = None, keep: Sequence[str] = ()
) -> pl.LazyFrame:
    """Cast ``lf`` to the canonical ``table`` schema and select its columns in canonical order.

    Required columns must be present; optional columns are kept when present and left out
    otherwise. Columns that are not part of the schema are dropped. Casts are strict, so a value
    that does not fit fails loudly at collection instead of turning into a silent null.

    Parameters
    ----------
    lf
        A frame whose columns already carry canonical names.
    table
        :data:`TRADES` or :data:`QUOTES`.
    what
        Where the frame came from (a file name), for the error message.
    keep
        Further columns to keep after the canonical ones (e.g. the source file of a grouped
        read, :mod:`mmflow.io.many`).

    Returns
    -------
    pl.LazyFrame
        The conformed frame; no rows are read.

    Raises
    ------
    SchemaError
        When a required column is missing.
    """
    present = lf.collect_schema()
    missing = [name for name in table.required if name not in present]
    if missing:
        found = ", ".join(present.names()) or "no columns"
        msg = (
            f"missing {table.name} column(s) {', '.join(missing)}; found {found} "
            "(map columns with {column_map} or choose {format})"
        )
        raise SchemaError(msg, path=what, parameters=("column_map", "format"))
    selected = [c for c in table.columns if c.name in present]
    return lf.select(
        *(
            pl.col(c.name)
            if present[c.name] == c.dtype
            else pl.col(c.name).cast(c.dtype, strict=True)
            for c in selected
        ),
        *keep,
    )


def require(lf: pl.LazyFrame, table: TableSchema, *, what: str) -> pl.LazyFrame:
    """Check that ``lf`` already has the canonical columns of ``table`` with the right dtypes.

    Validation reads the schema only (``collect_schema``), never rows.

    Parameters
    ----------
    lf
        The frame to check.
    table
        :data:`TRADES` or :data:`QUOTES`.
    what
        What the frame is, for the error message.

    Returns
    -------
    pl.LazyFrame
        ``lf`` unchanged.

    Raises
    ------
    SchemaError
        When a required column is missing or any canonical column has another dtype.
    """
    present = lf.collect_schema()
    missing = [name for name in table.required if name not in present]
    if missing:
        msg = (
            f"{what} is missing column(s) {', '.join(missing)}; found {', '.join(present.names())}"
        )
        raise SchemaError(msg)
    wrong = [
        f"{c.name} is {present[c.name]}, expected {c.dtype}"
        for c in table.columns
        if c.name in present and present[c.name] != c.dtype
    ]
    if wrong:
        msg = f"{what}: {'; '.join(wrong)}"
        raise SchemaError(msg)
    return lf
