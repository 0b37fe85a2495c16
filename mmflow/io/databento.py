"""Databento readers: DBN binary files (``dbn``) and Databento's CSV encoding (``databento-csv``).

Both formats carry the same records, and both readers give the same canonical frames for the same
records (the tests read every DBN fixture and its CSV transcoding and compare them whole).

Clocks
    ``ts`` is ``ts_recv`` (Databento's capture time, the DBN index clock); ``ts_event`` is the
    matching-engine time, null when it is ``UNDEF_TIMESTAMP`` (bbo-1s intervals without a trade).
Trades
    Only records with ``action == 'T'``. ``side`` is the aggressor: ``B`` → +1 (buyer-initiated),
    ``A`` → −1 (seller-initiated), ``N`` → 0 (not reported by the venue; never a sell). MBO fill
    records (``F``, the *resting* order's side) are not trades and are excluded; so are the
    start-of-day snapshot adds, which are book records. ``trade_id`` is the venue ``sequence``.
    Prices are fixed-point integers × 10⁻⁹; sizes are contracts or shares.
Pre-trade BBO (tbbo, mbp-1, mbp-10)
    A trade record's level 0 (``bid_px_00``…) is the book the trade executed against, i.e. the
    best bid/ask just before it; it goes to ``bid_price``/``bid_size``/``ask_price``/``ask_size``.
Quotes
    mbp-1 and mbp-10: one row per book record (actions ``A``/``C``/``M``/``R``) with the level-0
    book after that record; bbo-1s / bbo-1m: one row per interval (``ts`` = interval end). An
    empty side (``UNDEF_PRICE``) has a null price and a null size.
Symbol
    DBN: the file's symbology metadata, joined on ``instrument_id`` and the UTC date of
    ``ts_recv`` (mapping intervals end exclusively), exactly as Databento's own CSV encoder does.
    CSV: the ``symbol`` column (written by Databento's ``map_symbols`` option). Where neither
    gives one, ``--symbol`` if given, else the ``instrument_id`` as text.
Venue
    Not set: a DBN file names its dataset, but a CSV only has the numeric ``publisher_id``, and the
    two readers must agree.

Schema
    ``dbn`` knows the schema from the file's metadata: ``trades`` and ``mbo`` → trades; ``tbbo``
    → trades with their pre-trade BBO; ``mbp-1`` / ``mbp-10`` → trades with BBO **and** quotes;
    ``bbo-1s`` / ``bbo-1m`` → quotes. ``databento-csv`` is scanned lazily and decides from the
    header alone: a file with ``action`` and ``bid_px_00`` columns (tbbo, mbp-1 and mbp-10 share
    them) yields trades with BBO **and** quotes (the quotes of a tbbo file are simply empty), one
    without ``action`` (bbo-1s/1m) yields quotes, one without level columns (trades, mbo) trades.
    CSV files written with ``pretty_ts`` (ISO 8601 timestamps) or ``pretty_px`` (decimal prices)
    are recognised from their first rows.

DBN reading is eager: the whole file is decompressed and decoded in memory (zero-copy through
numpy, no Python objects per record) and the reader returns ``.lazy()`` frames over it. It needs the
optional ``dbn`` extra (``databento-dbn`` and numpy), imported only when a DBN file is read. CSV
reading needs nothing extra and stays lazy.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final, Literal

import polars as pl

from mmflow.errors import MissingDependencyError, ReaderError
from mmflow.io._common import (
    check_columns,
    epoch_to_datetime,
    require_text,
    scan_csv,
    side_from_text,
)
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
    conform,
)

__all__ = [
    "FORMATS",
    "UNDEF_PRICE",
    "UNDEF_TIMESTAMP",
    "Layout",
    "read_csv",
    "read_dbn",
]

Layout = Literal["trades", "tbbo", "mbp", "bbo"]
"""What a file's records give: trades; trades with pre-trade BBO; trades with BBO and book
quotes; interval quotes."""

UNDEF_PRICE: Final = 2**63 - 1
UNDEF_TIMESTAMP: Final = 2**64 - 1
_FIXED: Final = pl.Decimal(38, 9)
_PRICE_DIVISOR: Final = pl.lit(10**9, dtype=pl.Decimal(38, 0))

_DBN_MAGIC: Final = b"DBN"
_CSV_KEY: Final = ("ts_recv", "ts_event", "rtype", "publisher_id", "instrument_id")
_CSV_KEY_NO_RECV: Final = ("ts_event", "rtype", "publisher_id", "instrument_id")

# Databento field names (the CSV header and the DBN record fields are the same).
_TS_RECV: Final = "ts_recv"
_TS_EVENT: Final = "ts_event"
_INSTRUMENT_ID: Final = "instrument_id"
_ACTION: Final = "action"
_SIDE: Final = "side"
_PRICE: Final = "price"
_SIZE: Final = "size"
_SEQUENCE: Final = "sequence"
_BID_PX: Final = "bid_px_00"
_ASK_PX: Final = "ask_px_00"
_BID_SZ: Final = "bid_sz_00"
_ASK_SZ: Final = "ask_sz_00"
_SYMBOL: Final = "symbol"
_DATE: Final = "__date"

_TRADE_ACTION: Final = "T"
_BOOK_ACTIONS: Final = ("A", "C", "M", "R")

_TIMESTAMP_FIELDS: Final = (_TS_RECV, _TS_EVENT)
_PRICE_FIELDS: Final = (_PRICE, _BID_PX, _ASK_PX)
_TRADE_FIELDS: Final = (_ACTION, _SIDE, _PRICE, _SIZE, _SEQUENCE)
_LEVEL_FIELDS: Final = (_BID_PX, _ASK_PX, _BID_SZ, _ASK_SZ)

# Which fields each layout reads.
_NEEDED: Final[dict[Layout, tuple[str, ...]]] = {
    "trades": (_TS_RECV, _TS_EVENT, _INSTRUMENT_ID, *_TRADE_FIELDS),
    "tbbo": (_TS_RECV, _TS_EVENT, _INSTRUMENT_ID, *_TRADE_FIELDS, *_LEVEL_FIELDS),
    "mbp": (_TS_RECV, _TS_EVENT, _INSTRUMENT_ID, *_TRADE_FIELDS, *_LEVEL_FIELDS),
    "bbo": (_TS_RECV, _TS_EVENT, _INSTRUMENT_ID, *_LEVEL_FIELDS),
}
_WHAT: Final[dict[Layout, str]] = {
    "trades": "Databento trades",
    "tbbo": "Databento tbbo",
    "mbp": "Databento tbbo/mbp-1/mbp-10",
    "bbo": "Databento bbo-1s/bbo-1m",
}
# DBN schema → (record class name in databento_dbn.v3, layout).
_DBN_SCHEMAS: Final[dict[str, tuple[str, Layout]]] = {
    "trades": ("TradeMsg", "trades"),
    "mbo": ("MBOMsg", "trades"),
    "tbbo": ("MBP1Msg", "tbbo"),
    "mbp-1": ("MBP1Msg", "mbp"),
    "mbp-10": ("MBP10Msg", "mbp"),
    "bbo-1s": ("BBOMsg", "bbo"),
    "bbo-1m": ("BBOMsg", "bbo"),
}
_DBN_INSTALL_HINT: Final = (
    "reading DBN files needs the optional 'dbn' extra: pip install 'mmflow[dbn]' "
    "(or convert to CSV)"
)


# --- shared mapping -----------------------------------------------------------------------------


def _timestamp(name: str, *, pretty: bool, strict: bool = True) -> pl.Expr:
    """``UNDEF_TIMESTAMP`` → null, then ns since the epoch (or ISO 8601 text) → ``ts`` dtype.

    ISO text that does not parse fails the query (``strict``), else gives null.
    """
    if pretty:
        # Databento writes "2020-12-28T00:00:00.246821748Z"; UNDEF is an empty field (null).
        return pl.col(name).str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="ns", time_zone="UTC", strict=strict
        )
    raw = pl.col(name)
    return epoch_to_datetime(pl.when(raw != UNDEF_TIMESTAMP).then(raw), unit="ns")


def _price(name: str, *, pretty: bool) -> pl.Expr:
    """``UNDEF_PRICE`` → null, then fixed-point × 10⁻⁹ (or decimal text) → Float64.

    The scaling goes through an exact decimal so that the float is the one nearest the true
    price, the same float a decimal text parses to (3702.75, not 3702.7500000000005):
    polars divides a float column by a scalar by multiplying with its reciprocal, which is
    off by one unit in the last place for about 40 % of prices.
    """
    if pretty:
        return pl.col(name).cast(pl.Float64)
    raw = pl.col(name)
    fixed = pl.when(raw != UNDEF_PRICE).then(raw).cast(_FIXED) / _PRICE_DIVISOR
    return fixed.cast(pl.Float64)


def _symbol(options: ReadOptions, *, has_column: bool) -> pl.Expr:
    """Return the mapped raw symbol, else ``--symbol``, else the instrument id as text."""
    fallback = (
        pl.lit(options.symbol, dtype=pl.String)
        if options.symbol is not None
        else pl.col(_INSTRUMENT_ID).cast(pl.String)
    )
    if not has_column:
        return fallback
    return pl.col(_SYMBOL).cast(pl.String).fill_null(fallback)


def _frames(
    lf: pl.LazyFrame,
    layout: Layout,
    *,
    symbol: pl.Expr,
    pretty_ts: bool,
    pretty_px: bool,
    what: str,
    parsed_ts: bool = False,
) -> Frames:
    """Map Databento records (vendor field names) to canonical trades and/or quotes.

    ``parsed_ts``: the reader already parsed ``ts_recv``/``ts_event`` into datetimes.
    """
    columns: list[pl.Expr] = [
        (pl.col(_TS_RECV) if parsed_ts else _timestamp(_TS_RECV, pretty=pretty_ts)).alias(TS),
        (pl.col(_TS_EVENT) if parsed_ts else _timestamp(_TS_EVENT, pretty=pretty_ts)).alias(
            TS_EVENT
        ),
        symbol.alias(SYMBOL),
    ]
    if layout != "bbo":
        columns += [
            pl.col(_ACTION).cast(pl.String),
            _price(_PRICE, pretty=pretty_px).alias(PRICE),
            pl.col(_SIZE).cast(pl.Float64).alias(SIZE),
            side_from_text(_SIDE, buy=["B"], sell=["A"]).alias(AGGRESSOR_SIDE),
            pl.col(_SEQUENCE).cast(pl.String).alias(TRADE_ID),
        ]
    if layout != "trades":
        bid = _price(_BID_PX, pretty=pretty_px)
        ask = _price(_ASK_PX, pretty=pretty_px)
        columns += [
            bid.alias(BID_PRICE),
            pl.when(bid.is_not_null()).then(pl.col(_BID_SZ).cast(pl.Float64)).alias(BID_SIZE),
            ask.alias(ASK_PRICE),
            pl.when(ask.is_not_null()).then(pl.col(_ASK_SZ).cast(pl.Float64)).alias(ASK_SIZE),
        ]
    records = lf.select(columns)
    if layout == "bbo":
        return Frames(quotes=conform(records, QUOTES, what=what))
    trades = conform(records.filter(pl.col(_ACTION) == _TRADE_ACTION), TRADES, what=what)
    if layout != "mbp":
        return Frames(trades=trades)
    quotes = conform(records.filter(pl.col(_ACTION).is_in(_BOOK_ACTIONS)), QUOTES, what=what)
    return Frames(trades=trades, quotes=quotes)


# --- Databento CSV ------------------------------------------------------------------------------


def _sniff_csv(info: Sniff) -> bool:
    header = info.header
    return tuple(header[: len(_CSV_KEY)]) == _CSV_KEY or (
        tuple(header[: len(_CSV_KEY_NO_RECV)]) == _CSV_KEY_NO_RECV
    )


def _csv_layout(source: Source, header: list[str]) -> Layout:
    """Tell the layout from the header: tbbo, mbp-1 and mbp-10 share their level-0 columns."""
    has_levels = _BID_PX in header
    if _ACTION in header:
        return "mbp" if has_levels else "trades"
    if has_levels:
        return "bbo"
    msg = (
        f"Databento CSV without an {_ACTION} or {_BID_PX} column holds neither trades nor quotes "
        f"(found {', '.join(header)}); export the trades, tbbo, mbp-1, mbp-10 or bbo-1s schema"
    )
    raise ReaderError(msg, path=source.display)


def _csv_encoding(lines: list[str], header: list[str]) -> tuple[bool, bool]:
    """Return (pretty_ts, pretty_px) judged from the first data rows.

    Raw encoding writes integers everywhere, UNDEF included; ``pretty_ts`` writes ISO 8601 text
    and ``pretty_px`` decimals with a point, with an empty field for UNDEF.
    """
    rows = [row for row in csv.reader(lines[1:]) if len(row) == len(header)]
    ts_at = [header.index(name) for name in _TIMESTAMP_FIELDS if name in header]
    px_at = [header.index(name) for name in _PRICE_FIELDS if name in header]
    ts_cells = [row[i] for row in rows for i in ts_at]
    px_cells = [row[i] for row in rows for i in px_at]
    pretty_ts = any(cell and not cell.strip().isdigit() for cell in ts_cells)
    pretty_px = any(not cell.strip() or "." in cell for cell in px_cells)
    return pretty_ts, pretty_px


def read_csv(source: Source, options: ReadOptions) -> Frames:
    """Read a Databento CSV file (any of trades, tbbo, mbp-1, mbp-10, bbo-1s, bbo-1m) lazily.

    Parameters
    ----------
    source
        The file; ``.csv``, ``.csv.gz`` and ``.csv.zst`` are read the same way.
    options
        ``symbol`` fills rows whose ``symbol`` column is empty.

    Returns
    -------
    Frames
        Trades (with the pre-trade BBO when the file has level columns) and, for files with
        level columns, quotes from the book records (empty for tbbo); quotes only for bbo files.

    Raises
    ------
    ReaderError
        When the file is empty, lacks a column the schema needs, or holds neither trades nor
        quotes (ohlcv, definition, statistics, …).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "trades.csv"
    >>> _ = path.write_text(
    ...     "ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,depth,price,size,"
    ...     "flags,ts_in_delta,sequence,symbol\\n"
    ...     "1609113600246821748,1609113600246507011,0,1,5482,T,B,0,3702750000000,1,0,0,1,ESH1\\n"
    ...     "1609113600350920632,1609113600350718341,0,1,5482,T,A,0,3702500000000,2,0,0,2,ESH1\\n"
    ... )
    >>> trades = read_csv(Source(path, str(path)), ReadOptions()).trades
    >>> df = trades.collect()
    >>> df["price"].to_list(), df["size"].to_list(), df["aggressor_side"].to_list()
    ([3702.75, 3702.5], [1.0, 2.0], [1, -1])
    >>> df["ts"].dt.epoch("ns")[0], df["trade_id"][0]  # ts = ts_recv, nanoseconds
    (1609113600246821748, '1')
    """
    lines = require_text(source)
    header = [cell.strip() for cell in next(csv.reader(lines[:1]))]
    layout = _csv_layout(source, header)
    pretty_ts, pretty_px = _csv_encoding(lines, header)
    ts_dtype: pl.DataType = pl.String() if pretty_ts else pl.UInt64()
    px_dtype: pl.DataType = pl.Float64() if pretty_px else pl.Int64()
    dtypes: dict[str, pl.DataType] = {
        _TS_RECV: ts_dtype,
        _TS_EVENT: ts_dtype,
        _INSTRUMENT_ID: pl.UInt32(),
        _ACTION: pl.String(),
        _SIDE: pl.String(),
        _PRICE: px_dtype,
        _SIZE: pl.UInt32(),
        _SEQUENCE: pl.UInt32(),
        _BID_PX: px_dtype,
        _ASK_PX: px_dtype,
        _BID_SZ: pl.UInt32(),
        _ASK_SZ: pl.UInt32(),
        _SYMBOL: pl.String(),
    }
    overrides = {name: dtype for name, dtype in dtypes.items() if name in header}
    # ISO times are parsed here: a row whose time text does not parse is set aside and counted
    parsed = (
        {
            _PARSED_PREFIX + name: (
                _timestamp(name, pretty=True, strict=False),
                pl.col(name).str.strip_chars().fill_null("") != "",
            )
            for name in (_TS_RECV, _TS_EVENT)
        }
        if pretty_ts
        else None
    )
    lf = scan_csv(source, schema_overrides=overrides, infer_schema=False, parsed=parsed)
    check_columns(source, lf, _NEEDED[layout], _WHAT[layout])
    if pretty_ts:
        lf = lf.with_columns(
            pl.col(_PARSED_PREFIX + name).alias(name) for name in (_TS_RECV, _TS_EVENT)
        )
    return _frames(
        lf,
        layout,
        symbol=_symbol(options, has_column=_SYMBOL in header),
        pretty_ts=pretty_ts,
        pretty_px=pretty_px,
        what=source.display,
        parsed_ts=pretty_ts,
    )


_PARSED_PREFIX: Final = "__mmflow_parsed_"


# --- DBN ----------------------------------------------------------------------------------------


def _sniff_dbn(info: Sniff) -> bool:
    return info.magic.startswith(_DBN_MAGIC)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _symbol_intervals(
    mappings: dict[str, list[dict[str, object]]], *, by_id_key: bool
) -> pl.LazyFrame:
    """Expand the metadata's symbol mappings into one row per (instrument_id, UTC date).

    ``mappings`` is ``{requested symbol: [{start_date, end_date, symbol}]}``; with instrument-id
    output symbology the interval ``symbol`` is the instrument id and the key the raw symbol,
    with instrument-id input the other way round. End dates are exclusive. When two mappings
    cover the same id and date, the later one wins, as in Databento's encoder.
    """
    ids: list[str] = []
    names: list[str] = []
    starts: list[object] = []
    ends: list[object] = []
    for key, intervals in mappings.items():
        for interval in intervals:
            value = str(interval["symbol"])
            ids.append(key if by_id_key else value)
            names.append(value if by_id_key else key)
            starts.append(interval["start_date"])
            ends.append(interval["end_date"])
    table = pl.LazyFrame(
        {_INSTRUMENT_ID: ids, _SYMBOL: names, "start": starts, "end": ends},
        schema={_INSTRUMENT_ID: pl.String, _SYMBOL: pl.String, "start": pl.Date, "end": pl.Date},
    )
    return (
        table.filter(pl.col(_SYMBOL) != "", pl.col(_INSTRUMENT_ID).str.contains(r"^\d+$"))
        .select(
            pl.col(_INSTRUMENT_ID).cast(pl.UInt32),
            pl.col(_SYMBOL),
            pl.date_ranges("start", "end", closed="left").alias(_DATE),
        )
        .explode(_DATE)
        .drop_nulls(_DATE)
        .unique([_INSTRUMENT_ID, _DATE], keep="last", maintain_order=True)
    )


def read_dbn(source: Source, options: ReadOptions) -> Frames:
    """Read a DBN file (``.dbn`` or ``.dbn.zst``, DBN version 1, 2 or 3).

    The whole file is decoded in memory; the frames returned are lazy views of the result.

    Parameters
    ----------
    source
        The file; zstd compression is undone by :class:`Source`.
    options
        ``symbol`` names instruments the metadata does not map.

    Returns
    -------
    Frames
        By the schema in the file's metadata: trades (trades, mbo), trades with the pre-trade BBO
        (tbbo), trades with BBO and quotes (mbp-1, mbp-10), or quotes (bbo-1s, bbo-1m).

    Raises
    ------
    MissingDependencyError
        When the optional ``dbn`` extra (``databento-dbn``, numpy) is not installed.
    ReaderError
        When the file is empty, not DBN, corrupt, or of a schema without trades or quotes.
    """
    try:
        import numpy as np
        from databento_dbn import v3
    except ImportError as exc:
        raise MissingDependencyError(_DBN_INSTALL_HINT, path=source.display) from exc

    raw = source.read_bytes()
    if not raw:
        msg = "file is empty (no DBN metadata and no records); check the download"
        raise ReaderError(msg, path=source.display)
    if not raw.startswith(_DBN_MAGIC):
        msg = f"not a DBN file (starts with {raw[:4]!r}, expected b'DBN'); choose another --format"
        raise ReaderError(msg, path=source.display)
    buffer, meta_end, meta = _transcoded(raw, source)

    schema = meta.schema
    if schema not in _DBN_SCHEMAS:
        msg = (
            f"DBN schema {schema or 'mixed'} holds no trades or quotes mmflow reads; "
            f"use one of {', '.join(_DBN_SCHEMAS)}"
        )
        raise ReaderError(msg, path=source.display)
    class_name, layout = _DBN_SCHEMAS[schema]
    fields: list[tuple[str, str]] = list(getattr(v3, class_name)._dtypes)
    if meta.ts_out:
        fields.append(("ts_out", "u8"))
    dtype = np.dtype(fields)
    body = buffer[meta_end:]
    records = np.frombuffer(body[: len(body) - len(body) % dtype.itemsize], dtype=dtype)
    if len(body) % dtype.itemsize or not np.all(records["length"] == dtype.itemsize // 4):
        msg = (
            f"DBN {schema} file holds records of another size than {schema} records "
            "(mixed record types are not supported); the file is corrupt or truncated"
        )
        raise ReaderError(msg, path=source.display)

    lf, mapped = _with_symbols(pl.from_numpy(records).lazy(), meta)
    return _frames(
        lf,
        layout,
        symbol=_symbol(options, has_column=mapped),
        pretty_ts=False,
        pretty_px=False,
        what=source.display,
    )


def _transcoded(raw: bytes, source: Source) -> tuple[bytes, int, Any]:
    """Re-encode a DBN file as DBN v3; return the bytes, where the metadata ends, the metadata.

    Raises
    ------
    ReaderError
        When the file does not decode or ends in the middle of a record.
    """
    import databento_dbn as dbn

    out = io.BytesIO()
    try:
        # Re-encoding as DBN v3 normalises v1/v2 files. (The databento-dbn stubs annotate enum
        # members with their value types, str/int, hence the ignores.)
        transcoder = dbn.Transcoder(
            out,
            dbn.Encoding.DBN,  # type: ignore[arg-type]
            dbn.Compression.NONE,  # type: ignore[arg-type]
            upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3,  # type: ignore[arg-type]
        )
        transcoder.write(raw)
        transcoder.flush()
        leftover = len(transcoder.buffer())
        buffer = out.getvalue()
        meta_end = int.from_bytes(buffer[4:8], "little") + 8
        meta = dbn.Metadata.decode(buffer[:meta_end])
    except (dbn.DBNError, ValueError) as exc:
        msg = (
            f"cannot decode DBN ({_one_line(exc)}); the file is corrupt or truncated, "
            "re-download it"
        )
        raise ReaderError(msg, path=source.display) from exc
    if leftover:
        msg = (
            f"DBN file ends in the middle of a record ({leftover} bytes left over); "
            "it is truncated, re-download it"
        )
        raise ReaderError(msg, path=source.display)

    return buffer, meta_end, meta


def _with_symbols(lf: pl.LazyFrame, meta: Any) -> tuple[pl.LazyFrame, bool]:
    """Join each record's symbol from the metadata's instrument-id mappings, when it has them."""
    mapped = False
    if meta.mappings:
        stype_out = meta.stype_out.name if meta.stype_out is not None else ""
        stype_in = meta.stype_in.name if meta.stype_in is not None else ""
        if "INSTRUMENT_ID" in (stype_in, stype_out):
            by_id_key = stype_in == "INSTRUMENT_ID"
            intervals = _symbol_intervals(
                {k: [dict(i) for i in v] for k, v in meta.mappings.items()}, by_id_key=by_id_key
            )
            date = epoch_to_datetime(
                pl.when(pl.col(_TS_RECV) != UNDEF_TIMESTAMP).then(pl.col(_TS_RECV)), unit="ns"
            ).dt.date()
            lf = (
                lf.with_columns(date.alias(_DATE))
                .join(intervals, on=[_INSTRUMENT_ID, _DATE], how="left", maintain_order="left")
                .drop(_DATE)
            )
            mapped = True
    return lf, mapped


FORMATS: tuple[Format, ...] = (
    Format(
        name="dbn",
        description="Databento DBN binary (.dbn, .dbn.zst): trades, tbbo, mbp-1, mbp-10, bbo, mbo",
        read=read_dbn,
        sniff=_sniff_dbn,
        # prices are signed fixed-point: CME calendar spreads trade at or below zero
        negative_prices=True,
    ),
    Format(
        name="databento-csv",
        description="Databento CSV (ts_recv,ts_event,rtype,...): trades, tbbo, mbp-1/10, bbo",
        read=read_csv,
        sniff=_sniff_csv,
        negative_prices=True,
    ),
)
