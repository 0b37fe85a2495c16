"""Files already in (or mapped to) the canonical column names: CSV, parquet, NDJSON, Arrow IPC.

A CSV in any other layout is read with ``--map canonical=column,...``, e.g.
``--map ts=time,price=px,size=qty,aggressor_side=side``. Timestamps may be ISO-8601 text, integer
epoch counts (unit by magnitude), or datetimes (naive ones are taken as UTC). ``aggressor_side``
may be numeric (its sign is used) or text (``buy``/``sell``, ``b``/``s``); without it every trade
is unknown (0). Without ``symbol`` the symbol is ``--symbol`` or the file name's stem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from mmflow.errors import ReaderError, SchemaError
from mmflow.io._common import epoch_to_datetime, scan_csv, side_from_text
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source, partition_symbol
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    CONDITIONS,
    CORRECTION,
    PRICE,
    QUOTES,
    SIZE,
    SYMBOL,
    TIMESTAMP,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    VENUE,
    conform,
)

__all__ = [
    "FORMATS",
    "canonicalize",
    "read_arrow",
    "read_csv",
    "read_ndjson",
    "read_parquet",
]

_BUY_TEXT = ("buy", "b", "bid", "+1", "1")
_SELL_TEXT = ("sell", "s", "ask", "a", "-1")
_PARQUET_MAGIC = b"PAR1"
_ARROW_MAGIC = b"ARROW1"


def _stem(source: Source) -> str:
    name = source.name
    for _ in range(3):
        name = Path(name).stem if Path(name).suffix else name
    return name


def _timestamp(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            column = column.dt.replace_time_zone("UTC")
        return column.dt.convert_time_zone("UTC").cast(TIMESTAMP)
    if isinstance(dtype, pl.Date):
        return column.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    if dtype.is_integer():
        return epoch_to_datetime(column)
    if dtype.is_float():
        # Fractional epoch counts (e.g. seconds 1721347200.123456): scale to microseconds by
        # magnitude before rounding, so the fraction survives; float64 holds no finer digits.
        micros = (
            pl.when(column.abs() >= 1e17)
            .then(column / 1_000)
            .when(column.abs() >= 1e14)
            .then(column)
            .when(column.abs() >= 1e11)
            .then(column * 1_000)
            .otherwise(column * 1_000_000)
        )
        return epoch_to_datetime(micros.round(0), unit="us")
    text = column.cast(pl.String).str.strip_chars()
    return text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=True)


def _side(dtype: pl.DataType, source: Source) -> pl.Expr:
    column = pl.col(AGGRESSOR_SIDE)
    if dtype.is_numeric():
        return column.sign().fill_null(0).fill_nan(0).cast(pl.Int8)
    if dtype == pl.Boolean:
        msg = "aggressor_side is boolean; map a buy/sell or +1/-1 column instead"
        raise SchemaError(msg, path=source.display)
    return side_from_text(column, buy=_BUY_TEXT, sell=_SELL_TEXT)


def canonicalize(
    lf: pl.LazyFrame, source: Source, options: ReadOptions, *, keep: Sequence[str] = ()
) -> Frames:
    """Turn a frame with canonical (or ``--map``-ped) names into canonical trades or quotes.

    Parameters
    ----------
    lf
        The raw frame.
    source
        Where it came from (for messages and the default symbol).
    options
        ``column_map`` (canonical → file column) and ``symbol``.
    keep
        Further columns to keep (the source file column of a grouped read).

    Returns
    -------
    Frames
        Trades when the file has ``price`` and ``size``; else quotes when it has ``bid_price`` and
        ``ask_price``.
    """
    try:
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = f"cannot read the file ({reason}); is this the right --format?"
        raise ReaderError(msg, path=source.display) from exc
    rename = {}
    for canonical, column in options.column_map.items():
        if column not in schema:
            msg = (
                f"--map {canonical}={column}: no column {column!r}; "
                f"found {', '.join(schema.names())}"
            )
            raise ReaderError(msg, path=source.display)
        rename[column] = canonical
    if rename:
        lf = lf.drop([c for c in rename.values() if c in schema and c not in rename]).rename(rename)
        schema = lf.collect_schema()
    if TS not in schema:
        msg = (
            f"no timestamp column 'ts'; found {', '.join(schema.names())} "
            "(map one with --map ts=COLUMN)"
        )
        raise ReaderError(msg, path=source.display)
    # a timestamp already canonical is left as it is, so filters on it reach the scan
    fixes = [] if schema[TS] == TIMESTAMP else [_timestamp(TS, schema[TS]).alias(TS)]
    if TS_EVENT in schema:
        fixes.append(_timestamp(TS_EVENT, schema[TS_EVENT]).alias(TS_EVENT))
    if SYMBOL not in schema:
        # an mmflow dataset keeps the symbol in its hive path: …/symbol=BTC%2FUSDT/date=…/
        symbol = partition_symbol(source.path) or options.symbol or _stem(source)
        fixes.append(pl.lit(symbol, dtype=pl.String).alias(SYMBOL))
    if PRICE in schema and SIZE in schema:
        if AGGRESSOR_SIDE in schema:
            fixes.append(_side(schema[AGGRESSOR_SIDE], source).alias(AGGRESSOR_SIDE))
        else:
            fixes.append(pl.lit(0, dtype=pl.Int8).alias(AGGRESSOR_SIDE))
        return Frames(
            trades=conform(lf.with_columns(fixes), TRADES, what=source.display, keep=keep)
        )
    if BID_PRICE in schema and ASK_PRICE in schema:
        return Frames(
            quotes=conform(lf.with_columns(fixes), QUOTES, what=source.display, keep=keep)
        )
    msg = (
        f"neither trades (price, size) nor quotes (bid_price, ask_price); found "
        f"{', '.join(schema.names())} (map columns with --map canonical=column)"
    )
    raise ReaderError(msg, path=source.display)


_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")


def _column_types(source: Source, options: ReadOptions) -> dict[str, pl.DataType]:
    """Choose each column's type: numbers for canonical prices and sizes, inferred elsewhere.

    The types come from the column names and the first 10,000 rows; a timestamp column inferred
    as text whose first value is a number is an epoch count (junk further down must not turn
    the whole column into text). Cells that do not fit their type are unparseable rows.
    """
    file_name = {
        canonical: options.column_map.get(canonical, canonical)
        for canonical in TRADES.names + QUOTES.names
    }
    text = {file_name[c] for c in (SYMBOL, VENUE, TRADE_ID, CONDITIONS, CORRECTION)}
    try:
        inferred = pl.scan_csv(
            source.scan_path(),
            infer_schema_length=10_000,
            schema_overrides=dict.fromkeys(text, pl.String()),
        ).collect_schema()
    except (pl.exceptions.PolarsError, OSError):
        # the scan itself reports what is wrong with the file
        return {}
    types: dict[str, pl.DataType] = {
        name: dtype for name, dtype in inferred.items() if name not in text and dtype != pl.String()
    }
    for canonical in (PRICE, SIZE, BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE):
        if file_name[canonical] in inferred:
            types[file_name[canonical]] = pl.Float64()
    for canonical in (TS, TS_EVENT):
        name = file_name[canonical]
        if inferred.get(name) == pl.String():
            first = _first_value(source, list(inferred.names()).index(name))
            if first is not None and _INTEGER.match(first):
                types[name] = pl.Int64()
            elif first is not None and _NUMBER.match(first):
                types[name] = pl.Float64()
    return types


def _first_value(source: Source, position: int) -> str | None:
    lines = source.lines(2)
    if len(lines) < 2:
        return None
    cells = lines[1].split(",")
    return cells[position].strip().strip('"') if position < len(cells) else None


def read_csv(source: Source, options: ReadOptions) -> Frames:
    """Read a comma-separated file with canonical or mapped column names."""
    lf = scan_csv(source, schema_overrides=_column_types(source, options), infer_schema=False)
    return canonicalize(lf, source, options)


def _require_content(source: Source) -> Path:
    """Return the path to scan, or raise a one-line error for an empty file."""
    if not source.head(1):
        msg = "file is empty (no header and no rows); check the download"
        raise ReaderError(msg, path=source.display)
    return source.scan_path()


def read_parquet(source: Source, options: ReadOptions) -> Frames:
    """Read a parquet file with canonical column names (for example one mmflow wrote).

    A file of a converted dataset (``…/symbol=BTC%2FUSDT/date=…/trades.parquet``, no ``symbol``
    column inside) takes its symbol from the path as a hive partition column rather than a
    literal, so a filter on ``symbol`` (a chunk of the engine, ``--symbol``) skips the file
    without reading it (:func:`_partitioned_scan`).
    """
    path = _require_content(source)
    return canonicalize(_partitioned_scan(path), source, options)


def _partitioned_scan(path: Path) -> pl.LazyFrame:
    """Scan ``path``; with a ``symbol=`` folder and no ``symbol`` column, symbol from the path.

    The other ``key=value`` folders of the path are not columns (as before); when polars does
    not read the path's partitions as expected, the plain scan is returned (the reader then
    adds the symbol as a literal).
    """
    scan = pl.scan_parquet(path)
    if partition_symbol(path) is None:
        return scan
    try:
        names = scan.collect_schema().names()
        keys = [part.split("=", 1)[0] for part in path.parts[:-1] if "=" in part]
        if SYMBOL in names or any(key in names for key in keys) or len(set(keys)) != len(keys):
            return scan
        hive = pl.scan_parquet(
            path, hive_partitioning=True, hive_schema=dict.fromkeys(keys, pl.String())
        )
        partitioned = hive.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError):
        return scan
    if SYMBOL not in partitioned:
        return scan
    return hive.select([*names, SYMBOL])


def read_ndjson(source: Source, options: ReadOptions) -> Frames:
    """Read newline-delimited JSON objects with canonical keys."""
    return canonicalize(pl.scan_ndjson(_require_content(source)), source, options)


def read_arrow(source: Source, options: ReadOptions) -> Frames:
    """Read an Arrow IPC (Feather v2) file with canonical column names."""
    return canonicalize(pl.scan_ipc(_require_content(source)), source, options)


def _canonical_header(columns: list[str]) -> bool:
    names = set(columns)
    return TS in names and ({PRICE, SIZE} <= names or {BID_PRICE, ASK_PRICE} <= names)


def _sniff_csv(info: Sniff) -> bool:
    return _canonical_header(info.header)


def _sniff_ndjson(info: Sniff) -> bool:
    if not info.lines or not info.lines[0].lstrip().startswith("{"):
        return False
    keys = [part.split(":")[0].strip().strip('"{ ') for part in info.lines[0].split(",")]
    return _canonical_header(keys)


FORMATS = (
    Format(
        "parquet",
        "parquet with canonical column names",
        read_parquet,
        lambda info: info.magic.startswith(_PARQUET_MAGIC),
    ),
    Format(
        "arrow",
        "Arrow IPC / Feather v2 with canonical column names",
        read_arrow,
        lambda info: info.magic.startswith(_ARROW_MAGIC),
    ),
    Format("ndjson", "newline-delimited JSON with canonical keys", read_ndjson, _sniff_ndjson),
    Format(
        "generic",
        "CSV with canonical column names, or any CSV with --map canonical=column,...",
        read_csv,
        _sniff_csv,
    ),
)
