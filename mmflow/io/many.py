"""Reading many small files fast: one parse per group of files that share a layout.

Reading a folder of thousands of tiny daily files one plan per file costs milliseconds of
planning and scheduling per file. Here the small files (up to :data:`SMALL_FILE` bytes) that
share a reader and an identical layout (same detected format, same header line, same kind of
value in each cell of the first row, uncompressed) are read together: their text is joined in
memory and parsed once (or, for files with quotes or odd line ends, read with one multi-file
``scan_csv``), with a column naming each row's file. The checks
(:func:`mmflow.io.checks.check_table`) run once per group and everything is collected once; rows
and row account are then split by file, so every file keeps its own frames and its exact account
(rows read = used + dropped, by reason, per file), as if read alone. Values a reader takes from
the file's name or folder (the symbol of a generic CSV without a ``symbol`` column; a Binance
file's symbol and venue) are mapped per file. Groups are read in runs of at most
:data:`GROUP_BYTES` bytes, so memory stays bounded.

A group whose read fails (a ragged line, a cell that does not parse) is read again in halves,
down to :data:`SMALLEST` files, which are left to the per-file path (:func:`mmflow.io.read_source`):
the error names the file at fault exactly as before. Files holding repeated header lines or
unparseable rows are read on their own too, so their account names the first bad line.

Generic CSV, Binance ``trades``/``aggTrades`` and Tardis ``trades``/``liquidations`` CSV files
are grouped (uncompressed only: Tardis ships gzip, so its files are grouped once unpacked); every
other format keeps the per-file path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from mmflow.errors import MmflowError
from mmflow.io import Loaded, Tables, binance, detect, generic, read_now, tardis
from mmflow.io._common import _repeated_header
from mmflow.io.checks import check_table
from mmflow.io.formats import Format, Frames, ReadOptions
from mmflow.io.source import Source, partition_symbol
from mmflow.schema import SYMBOL, TRADES, TableSchema

__all__ = [
    "FILE",
    "GROUPED",
    "GROUP_BYTES",
    "MANY",
    "SMALLEST",
    "SMALL_FILE",
    "accounts_in_order",
    "joined",
    "layout_key",
    "read_grouped",
]

MANY: Final = 32
"""Beyond this many files a run reads groups of same-layout files with one scan each (up to it,
every file keeps its own lazy scan, so big files stream)."""

SMALL_FILE: Final = 1 << 20
"""Only files up to this many bytes are grouped (1 MiB)."""
GROUP_BYTES: Final = 64 << 20
"""A group is read in runs of files totalling at most this many bytes (64 MiB): its text and
parsed rows are held in memory at once."""

FILE: Final = "__mmflow_file"
"""The column of a grouped scan naming the file each row came from."""

_BINANCE_KINDS: Final[dict[str, binance.Kind]] = {
    "binance-trades": "trades",
    "binance-aggtrades": "aggtrades",
}
_TARDIS_TRADES: Final = ("tardis-trades", "tardis-liquidations")
GROUPED: Final = ("generic", *_BINANCE_KINDS, *_TARDIS_TRADES)
"""The formats whose files are read in groups."""

_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")

Key = tuple[str, str, tuple[str, ...]]
"""A layout: format name, header line, kind of value in each cell of the first data row."""


def _cell_kind(cell: str) -> str:
    text = cell.strip().strip('"')
    if not text:
        return "empty"
    if _INTEGER.match(text):
        return "integer"
    if _NUMBER.match(text):
        return "number"
    return "text"


def layout_key(source: Source, fmt: Format, options: ReadOptions) -> Key | None:
    """Return the layout ``source`` shares with other files, or ``None`` to read it alone.

    Only uncompressed CSV files of the generic, Binance and Tardis trade layouts are grouped.
    For generic CSV the kinds of the first row's cells stand in for the column types a per-file
    read infers (an integer epoch against ISO text); Binance and Tardis columns have fixed types.

    Raises
    ------
    MmflowError
        When the file cannot be read as ``fmt`` (its own read says why).
    """
    if fmt.name not in GROUPED or source.compression != "none":
        return None
    if source.path.stat().st_size > SMALL_FILE:
        return None  # big files stream on their own; their per-file cost is negligible
    if source.path.suffix.lower() not in (".csv", ".txt", ""):
        return None
    lines = source.lines(2)
    if not lines:
        return None
    if fmt.name in _BINANCE_KINDS:
        plan, _, _ = binance.trade_layout(source, _BINANCE_KINDS[fmt.name])
        binance.file_values(source, options, plan)  # a file without a symbol is read alone
        header = lines[0] if plan.has_header else ""
        return (fmt.name, header, (*plan.columns, str(plan.has_header), str(plan.market)))
    if fmt.name in _TARDIS_TRADES:  # fixed column types
        return (fmt.name, lines[0], ())
    first = tuple(_cell_kind(cell) for cell in lines[1].split(",")) if len(lines) > 1 else ()
    return (fmt.name, lines[0], first)


def read_grouped(
    sources: Sequence[Source],
    fmt: str,
    options: ReadOptions,
    *,
    formats: dict[str, Format],
) -> dict[int, Loaded]:
    """Read the groupable ``sources`` in groups; return what was read, by position.

    Parameters
    ----------
    sources
        Every source of the run.
    fmt
        ``auto`` or a format name (as ``--format``).
    options
        Symbol override, column map, plausibility limits.
    formats
        The format registry (:data:`mmflow.io.FORMATS`).

    Returns
    -------
    dict[int, Loaded]
        Position in ``sources`` → the file, read (``in_memory``); positions left out are for
        the caller to read one by one (other formats, undetectable files, single files, the
        files of a group that failed or that hold flawed lines).
    """
    groups: dict[Key, list[int]] = {}
    sizes: dict[int, int] = {}
    for position, source in enumerate(sources):
        try:
            key = layout_key(source, _format_of(source, fmt, options, formats), options)
            sizes[position] = source.path.stat().st_size
        except (MmflowError, OSError):
            continue  # the per-file read raises or skips it, as it does today
        if key is not None:
            groups.setdefault(key, []).append(position)
    read: dict[int, Loaded] = {}
    for key, positions in groups.items():
        for chunk in _chunks(positions, sizes):
            if len(chunk) < 2:
                continue
            members = [sources[p] for p in chunk]
            done = _read_halving(members, formats[key[0]], options)
            for position, source in zip(chunk, members, strict=True):
                if source.display in done:
                    read[position] = done[source.display]
    return read


def _chunks(positions: Sequence[int], sizes: dict[int, int]) -> list[list[int]]:
    """Cut a group into runs of at most :data:`GROUP_BYTES` bytes (memory stays bounded)."""
    chunks: list[list[int]] = [[]]
    total = 0
    for position in positions:
        if chunks[-1] and total + sizes[position] > GROUP_BYTES:
            chunks.append([])
            total = 0
        chunks[-1].append(position)
        total += sizes[position]
    return chunks


def _format_of(
    source: Source, fmt: str, options: ReadOptions, formats: dict[str, Format]
) -> Format:
    if fmt != "auto":
        return formats[fmt]
    return formats["generic"] if options.column_map else detect(source)


SMALLEST: Final = 16
"""A failed group is split in halves down to this many files; smaller ones are read alone."""


def _read_halving(
    members: Sequence[Source], fmt: Format, options: ReadOptions
) -> dict[str, Loaded]:
    """Read ``members`` as one group; if that fails, each half likewise.

    The culprit ends up in a small group that is read file by file (naming it), so one broken
    file does not send thousands of others down the per-file path.
    """
    done = _read_group(members, fmt, options)
    if done is not None:
        return done
    if len(members) <= SMALLEST:
        return {}
    middle = len(members) // 2
    return _read_halving(members[:middle], fmt, options) | _read_halving(
        members[middle:], fmt, options
    )


@dataclass(frozen=True)
class _Layout:
    """How a group's files are read: column names, typed columns, header, canonical frames."""

    names: list[str]
    typed: dict[str, pl.DataType]
    has_header: bool
    canonical: Callable[[pl.LazyFrame, dict[str, Source]], Frames]


def _layout(first: Source, fmt: Format, options: ReadOptions) -> _Layout:
    """Return a group's layout, from its first file, as that format's reader reads a file."""
    if fmt.name in _BINANCE_KINDS:
        kind = _BINANCE_KINDS[fmt.name]
        plan, chosen, dtypes = binance.trade_layout(first, kind)
        names = list(plan.columns)
        if any(column not in names for column in chosen.values()):
            msg = "missing columns"  # the file's own read names them
            raise MmflowError(msg)

        def binance_trades(rows: pl.LazyFrame, by_path: dict[str, Source]) -> Frames:
            values = {path: binance.file_values(s, options, plan) for path, s in by_path.items()}
            symbol, venue = (
                pl.col(FILE).replace_strict(
                    {path: pair[index] for path, pair in values.items()}, return_dtype=pl.String
                )
                for index in (0, 1)
            )
            trades = binance.canonical_trades(
                rows, chosen, symbol, venue, what=first.display, keep=[FILE]
            )
            return Frames(trades=trades)

        typed = {n: t for n, t in dtypes.items() if n in names and t != pl.String()}
        return _Layout(names, typed, plan.has_header, binance_trades)
    names = pl.scan_csv(first.scan_path(), infer_schema=False).collect_schema().names()
    if fmt.name in _TARDIS_TRADES:
        if any(column not in names for column in tardis.TRADES_HEADER):
            msg = "missing columns"  # the file's own read names them
            raise MmflowError(msg)

        def tardis_trades(rows: pl.LazyFrame, by_path: dict[str, Source]) -> Frames:
            del by_path  # symbol and venue are columns of the file
            return Frames(
                trades=tardis.canonical_trades(rows, options, what=first.display, keep=[FILE])
            )

        typed = {n: t for n, t in tardis.TRADE_TYPES.items() if n in names}
        return _Layout(names, typed, True, tardis_trades)
    types = generic._column_types(first, options)

    def generic_frames(rows: pl.LazyFrame, by_path: dict[str, Source]) -> Frames:
        frames = generic.canonicalize(rows, first, options, keep=[FILE])
        if SYMBOL in names:
            return frames
        symbols = {
            path: partition_symbol(s.path) or options.symbol or generic._stem(s)
            for path, s in by_path.items()
        }
        symbol = pl.col(FILE).replace_strict(symbols, return_dtype=pl.String).alias(SYMBOL)
        return Frames(
            None if frames.trades is None else frames.trades.with_columns(symbol),
            None if frames.quotes is None else frames.quotes.with_columns(symbol),
            frames.notes,
        )

    typed = {n: t for n, t in types.items() if n in names and t != pl.String()}
    return _Layout(names, typed, True, generic_frames)


def _read_group(
    members: Sequence[Source], fmt: Format, options: ReadOptions
) -> dict[str, Loaded] | None:
    """Read a group of same-layout generic CSV files with one scan; ``None`` when that fails.

    Returns the files read, by display name; files with repeated headers or unparseable rows
    are left out (read alone, their account names the first bad line).
    """
    first = members[0]
    by_path = {str(s.scan_path()): s for s in members}
    if len(by_path) != len(members):
        return None  # a file given twice: read alone, as today
    try:
        layout = _layout(first, fmt, options)
        names, typed = layout.names, layout.typed
        scan = _text_rows(list(by_path), dict.fromkeys(names, pl.String()), layout.has_header)
        repeat = (
            _repeated_header(first.lines(1)[0], names, ",")
            if layout.has_header
            else pl.lit(value=False)
        )
        temporary = {n: f"__mmflow_typed_{n}" for n in typed}
        converted = scan.lazy().with_columns(
            pl.col(n).cast(t, strict=False).alias(temporary[n]) for n, t in typed.items()
        )
        bad = (
            ~repeat
            & pl.any_horizontal(
                pl.col(n).is_not_null() & pl.col(temporary[n]).is_null() for n in typed
            )
            if typed
            else pl.lit(value=False)
        )
        rows = converted.filter(~repeat & ~bad).select(
            *(pl.col(temporary[n]).alias(n) if n in typed else pl.col(n) for n in names), FILE
        )
        frames = layout.canonical(rows, by_path)
        table, lf = (
            ("trades", frames.trades) if frames.trades is not None else ("quotes", frames.quotes)
        )
        assert lf is not None
        kept, account = check_table(
            lf,
            table=table,
            file=first.display,
            limits=options.limits,
            negative_prices=fmt.negative_prices,
            by=FILE,
        )
        flawed = converted.filter(repeat | bad).select(pl.col(FILE).unique())
        rows_df, account_df, flawed_df = pl.collect_all([kept, account, flawed])
    except (MmflowError, pl.exceptions.PolarsError, OSError):
        return None
    skip = set(flawed_df[FILE].to_list())
    by_file = rows_df.partition_by(FILE, as_dict=True, include_key=False)
    displays = {path: source.display for path, source in by_path.items()}
    accounts = account_df.with_columns(
        pl.col("file").replace_strict(displays, return_dtype=pl.String)
    ).partition_by("file", as_dict=True)
    empty_rows = rows_df.clear().drop(FILE)
    empty_account = account_df.clear()
    read: dict[str, Loaded] = {}
    for path, source in by_path.items():
        if path in skip:
            continue
        part = by_file.get((path,), empty_rows)
        own = accounts.get((source.display,), empty_account)
        tables = Tables(part, None, own) if table == "trades" else Tables(None, part, own)
        read[source.display] = read_now(source, fmt, tables, frames.notes)
    return read


def joined(inputs: Sequence[Loaded], table: TableSchema) -> list[pl.LazyFrame]:
    """Return the ``table`` frames of ``inputs`` in order, each run of read files as one frame.

    Thousands of in-memory frames are concatenated in memory (milliseconds) instead of in a
    lazy plan with one node per file (whose planning cost grows with the number of files).
    Columns of a concatenation follow the canonical order, then any others.
    """
    frames: list[pl.LazyFrame] = []
    run: list[pl.DataFrame] = []
    for item in inputs:
        if item.tables is not None:
            df = item.tables.trades if table is TRADES else item.tables.quotes
            if df is not None:
                run.append(df)
            continue
        lf = item.frames.trades if table is TRADES else item.frames.quotes
        if lf is not None:
            frames += [_concatenated(run, table).lazy()] if run else []
            run = []
            frames.append(lf)
    frames += [_concatenated(run, table).lazy()] if run else []
    return frames


def _concatenated(frames: Sequence[pl.DataFrame], table: TableSchema) -> pl.DataFrame:
    if len(frames) == 1:
        return frames[0]
    combined = pl.concat(frames, how="diagonal_relaxed")
    names = combined.columns
    return combined.select(
        [n for n in table.names if n in names] + [n for n in names if n not in table.names]
    )


def accounts_in_order(
    inputs: Sequence[Loaded], collected: dict[int, pl.DataFrame]
) -> list[pl.DataFrame]:
    """Return every input's row account in input order, as one frame (none when there are none).

    ``collected`` holds the accounts of inputs not read into memory, by ``id`` of the input.
    """
    frames = [
        item.tables.account if item.tables is not None else collected.get(id(item))
        for item in inputs
    ]
    present = [frame for frame in frames if frame is not None]
    return [pl.concat(present, how="vertical_relaxed")] if present else []


def _text_rows(
    paths: Sequence[str], schema: dict[str, pl.DataType], has_header: bool
) -> pl.DataFrame:
    """Read files sharing a header line as text, with a :data:`FILE` column naming each row's file.

    Plain files (no quotes, carriage returns or blank lines) are joined in memory and parsed
    once, counting each file's rows by its line ends (checked against the rows parsed); any
    other group is read with polars' multi-file scan, which costs more per file.
    """
    header: bytes | None = None
    bodies: list[bytes] = []
    counts: list[int] = []
    for path in paths:
        with open(path, "rb") as handle:
            content = handle.read()
        end = content.find(b"\n") if has_header else -1
        first, body = (content[: end + 1], content[end + 1 :]) if end >= 0 else (b"", content)
        if has_header and end < 0:
            first, body = content, b""
        header = header or first
        plain = first == header and not any(c in body for c in (b'"', b"\r", b"\n\n"))
        if not plain or body.startswith(b"\n"):
            return _scanned(paths, schema, has_header)
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        counts.append(body.count(b"\n"))
    text = b"".join(bodies)
    rows = (
        pl.read_csv(text, has_header=False, schema=schema) if text else pl.DataFrame(schema=schema)
    )
    if rows.height != sum(counts):
        return _scanned(paths, schema, has_header)
    files = (
        pl.DataFrame(
            {FILE: list(paths), "rows": counts}, schema={FILE: pl.String, "rows": pl.Int64}
        )
        .select(pl.col(FILE).repeat_by("rows").explode().drop_nulls())
        .to_series()
    )
    return rows.with_columns(files)


def _scanned(
    paths: Sequence[str], schema: dict[str, pl.DataType], has_header: bool
) -> pl.DataFrame:
    return pl.scan_csv(
        list(paths), schema=schema, has_header=has_header, include_file_paths=FILE
    ).collect()
