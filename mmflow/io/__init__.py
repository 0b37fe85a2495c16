"""Reading vendor files into the canonical schema.

:func:`load` expands paths, detects each file's format (formats.md §9.7: magic bytes, then file
names, then header signatures, then headerless heuristics), and returns lazy canonical frames.
The registry :data:`FORMATS` lists every ``--format`` name in detection order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from mmflow.errors import MmflowError, ParameterError, ReaderError, UnknownFormatError
from mmflow.io import binance, databento, generic, lobster, polygon, sierra, taq, tardis
from mmflow.io.checks import Limits, RowAccount, account_frame, check_table
from mmflow.io.formats import Format, Frames, Kind, ReadOptions, Sniff, frames_kind
from mmflow.io.source import Found, Skipped, Source, find_sources
from mmflow.progress import READING, OnStage, Stage, report
from mmflow.render.messages import skipped_note

__all__ = [
    "FORMATS",
    "Format",
    "Found",
    "Frames",
    "Inputs",
    "Kind",
    "Limits",
    "Loaded",
    "ReadOptions",
    "RowAccount",
    "Skipped",
    "Source",
    "Tables",
    "combine",
    "detect",
    "file_size",
    "find_sources",
    "format_names",
    "load",
    "load_inputs",
    "read_by_its_primary",
    "read_inputs",
    "read_now",
    "read_source",
    "skipped_note",
    "sniff",
]

# Detection order: binary and vendor-specific signatures first, the generic fallbacks last.
FORMATS: dict[str, Format] = {
    f.name: f
    for module in (databento, tardis, binance, polygon, sierra, lobster, taq, generic)
    for f in module.FORMATS
}


def format_names() -> list[str]:
    """Return every ``--format`` name, in detection order."""
    return list(FORMATS)


def sniff(source: Source) -> Sniff:
    """Collect what detection may look at for ``source`` (no more than its first 64 KiB)."""
    head = source.head()
    return Sniff(
        name=source.name,
        path=source.display,
        magic=head[:16],
        lines=tuple(source.lines()),
    )


def detect(source: Source) -> Format:
    """Return the format of ``source``.

    Raises
    ------
    UnknownFormatError
        When no format recognises the file; the message lists the names ``--format`` takes.
    """
    info = sniff(source)
    for fmt in FORMATS.values():
        if fmt.sniff(info):
            return fmt
    if not info.lines and not info.magic:
        reason = "the file is empty"
    elif not info.lines:
        reason = "binary content that is not DBN, parquet or Arrow"
    else:
        reason = f"first line {info.lines[0][:60]!r} matches no known layout"
    msg = f"cannot tell the format ({reason}); use --format NAME, one of {', '.join(FORMATS)}"
    raise UnknownFormatError(msg, path=source.display)


@dataclass(frozen=True)
class Loaded:
    """One input file: where it came from, its format, what it holds and its lazy frames.

    ``frames`` hold only the rows that passed the plausibility checks; ``account`` counts the
    rows read, dropped (by reason) and changed (:data:`mmflow.io.checks.ACCOUNT` columns).
    """

    source: Source
    format: Format
    frames: Frames
    account: pl.LazyFrame | None = None
    tables: Tables | None = None
    """The same frames and account already read into memory, when they are (:func:`read_now`)."""
    unchecked: Frames | None = None
    """The reader's frames before the plausibility checks (a row count of them is an upper
    bound of the checked rows, from file metadata where the format keeps one)."""

    @property
    def kind(self) -> Kind:
        """What the file holds (trades, trades with BBO, quotes, or trades and quotes)."""
        return frames_kind(self.frames)

    @property
    def in_memory(self) -> bool:
        """Whether the file is already read (:attr:`tables`), e.g. by a grouped read."""
        return self.tables is not None


@dataclass(frozen=True)
class Tables:
    """One file's canonical tables and row account, read into memory."""

    trades: pl.DataFrame | None = None
    quotes: pl.DataFrame | None = None
    account: pl.DataFrame | None = None


def read_now(source: Source, fmt: Format, tables: Tables, notes: Sequence[str] = ()) -> Loaded:
    """Return a :class:`Loaded` whose frames and account are the in-memory ``tables``."""
    trades, quotes, account = (
        None if df is None else df.lazy() for df in (tables.trades, tables.quotes, tables.account)
    )
    return Loaded(source, fmt, Frames(trades, quotes, tuple(notes)), account, tables)


def read_source(source: Source, fmt: str = "auto", options: ReadOptions | None = None) -> Loaded:
    """Read one source with ``fmt`` (``auto`` detects it) into checked lazy canonical frames.

    Every format's output passes the same plausibility checks (:mod:`mmflow.io.checks`):
    implausible rows are dropped and counted in :attr:`Loaded.account`.
    """
    options = options or ReadOptions()
    if fmt == "auto":
        chosen = FORMATS["generic"] if options.column_map else detect(source)
    else:
        try:
            chosen = FORMATS[fmt]
        except KeyError:
            msg = f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
            raise ParameterError(msg) from None
    source.parse_checks.clear()
    frames = chosen.read(source, options)
    checked, account = _checked(frames, source, chosen, options)
    source.parse_checks.clear()
    return Loaded(source, chosen, checked, account, unchecked=frames)


def _checked(
    frames: Frames, source: Source, fmt: Format, options: ReadOptions
) -> tuple[Frames, pl.LazyFrame]:
    """Apply the plausibility checks to every table of ``frames``; return them and the account."""
    tables: dict[str, pl.LazyFrame | None] = {"trades": frames.trades, "quotes": frames.quotes}
    checked: dict[str, pl.LazyFrame | None] = {}
    plans: list[pl.LazyFrame] = []
    for table, lf in tables.items():
        if lf is None:
            checked[table] = None
            continue
        checked[table], account = check_table(
            lf,
            table=table,
            file=source.display,
            limits=options.limits,
            negative_prices=fmt.negative_prices,
        )
        plans.append(account)
    owner = "trades" if frames.trades is not None else "quotes"
    for parse in source.parse_checks:
        # Lines the CSV scan skipped were read too: count them as read and as dropped.
        parse = parse.with_columns(
            pl.lit(owner).alias("table"),
            pl.col("file").fill_null(pl.lit(source.display, dtype=pl.String)),
        )
        plans += [
            parse,
            parse.with_columns(pl.lit("read").alias("kind"), pl.lit("read").alias("reason")),
        ]
    account = pl.concat(plans) if plans else account_frame([])
    return Frames(checked["trades"], checked["quotes"], frames.notes), account


@dataclass
class Inputs:
    """Everything a run reads: the files, and the folder entries it skipped (with reasons)."""

    loaded: list[Loaded] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def note(self) -> str | None:
        """One line listing the skipped entries, or ``None``."""
        return skipped_note(self.skipped)


def _skippable(source: Source, exc: MmflowError) -> str | None:
    """Why a file found in a folder may be skipped (empty, no known layout), or ``None``."""
    if not source.found_in_folder:
        return None
    try:
        empty = source.path.stat().st_size == 0
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    if empty:
        return "empty file"
    if isinstance(exc, UnknownFormatError):
        return "no known data layout"
    if isinstance(exc, ReaderError) and "empty" in exc.message:
        return "empty file"
    return None


def read_inputs(
    sources: Sequence[Source],
    fmt: str = "auto",
    options: ReadOptions | None = None,
    *,
    on_stage: OnStage | None = None,
) -> Inputs:
    """Read every source; skip folder entries that hold no data (empty, no known layout).

    Beyond :data:`mmflow.io.many.MANY` sources, files sharing a layout are read together, one
    scan per group (:mod:`mmflow.io.many`); they come back already read (``in_memory``).

    ``on_stage`` is told before each file is read (``reading inputs``, file N of M, bytes so far)
    and once when reading ends.
    """
    from mmflow.io import many  # here: many imports this module

    options = options or ReadOptions()
    inputs = Inputs()
    sizes = [file_size(s) for s in sources] if on_stage is not None else [0] * len(sources)
    total, done = sum(sizes), 0
    grouped: dict[int, Loaded] = {}
    try:
        if len(sources) > many.MANY and (fmt == "auto" or fmt in FORMATS):
            report(on_stage, Stage(READING, 0, len(sources), "files sharing a layout", 0, total))
            grouped = many.read_grouped(sources, fmt, options, formats=FORMATS)
        for index, source in enumerate(sources):
            if index in grouped:
                inputs.loaded.append(grouped[index])
                done += sizes[index]
                continue
            report(on_stage, Stage(READING, index, len(sources), source.display, done, total))
            done += sizes[index]
            try:
                inputs.loaded.append(read_source(source, fmt, options))
            except (UnknownFormatError, ReaderError) as exc:
                reason = _skippable(source, exc)
                if reason is None:
                    raise
                inputs.skipped.append(Skipped(source.display, reason))
    finally:
        report(on_stage, Stage(READING, len(sources), len(sources), finished=True))
    return inputs


def load_inputs(
    paths: Iterable[str],
    fmt: str = "auto",
    options: ReadOptions | None = None,
    *,
    stdin: BinaryIO | None = None,
    exclude: Sequence[str] = (),
    strict: bool = False,
    on_stage: OnStage | None = None,
) -> Inputs:
    """Expand ``paths`` and read every file; list what a folder run skipped.

    Parameters
    ----------
    paths
        Files, globs, directories, or ``-`` for standard input.
    fmt
        A name from :data:`FORMATS`, or ``auto``.
    options
        Symbol override, column map, plausibility limits.
    stdin
        The stream ``-`` reads (standard input by default).
    exclude
        Glob patterns of files a folder search leaves out (``--exclude``).
    strict
        Make any skipped or unreadable folder entry an error (``--strict``, for cron).
    on_stage
        Told before each file is read (see :func:`read_inputs`).

    Returns
    -------
    Inputs
        One entry per file, in the order given (directories and globs sorted), and the skipped
        folder entries.

    Raises
    ------
    ReaderError
        With ``strict``, when any entry was skipped or could not be read.
    """
    found = find_sources(paths, stdin=stdin, exclude=exclude)
    inputs = read_inputs(found.sources, fmt, options, on_stage=on_stage)
    inputs.skipped = found.skipped + inputs.skipped
    if strict and inputs.skipped:
        first = inputs.skipped[0]
        more = f" (and {len(inputs.skipped) - 1:,} more)" if len(inputs.skipped) > 1 else ""
        msg = f"{first.reason}{more}; --strict stops on any skipped entry (fix or --exclude it)"
        raise ReaderError(msg, path=first.path)
    if any(item.format.primary is not None for item in inputs.loaded):
        given = {s.path.resolve() for s in found.sources}
        inputs.loaded = [item for item in inputs.loaded if not read_by_its_primary(item, given)]
    return inputs


def load(
    paths: Iterable[str],
    fmt: str = "auto",
    options: ReadOptions | None = None,
    *,
    stdin: BinaryIO | None = None,
    on_stage: OnStage | None = None,
) -> list[Loaded]:
    """Expand ``paths`` and read every file into checked lazy canonical frames.

    The same as :func:`load_inputs` (see its parameters) without ``exclude`` and ``strict``,
    returning only the files read: folder entries that hold no data are left out.
    """
    return load_inputs(paths, fmt, options, stdin=stdin, on_stage=on_stage).loaded


def file_size(source: Source) -> int:
    """Bytes of ``source`` on disk (0 when that cannot be known)."""
    with contextlib.suppress(OSError):
        return source.path.stat().st_size
    return 0


def read_by_its_primary(item: Loaded, given: set[Path]) -> bool:
    """Whether another input's reader already reads this file (e.g. a LOBSTER orderbook)."""
    if item.format.primary is None:
        return False
    primary = item.format.primary(item.source)
    return primary is not None and primary.resolve() in given


def combine(frames: Sequence[pl.LazyFrame]) -> pl.LazyFrame | None:
    """Concatenate canonical frames from several files; optional columns absent in some are null."""
    if not frames:
        return None
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")
