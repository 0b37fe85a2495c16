"""Reading vendor files into the canonical schema.

:func:`load` expands paths, detects each file's format (formats.md §9.7: magic bytes, then file
names, then header signatures, then headerless heuristics), and returns lazy canonical frames.
The registry :data:`FORMATS` lists every ``--format`` name in detection order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from mmflow.errors import ParameterError, UnknownFormatError
from mmflow.io import binance, databento, generic, lobster, polygon, sierra, taq, tardis
from mmflow.io.formats import Format, Frames, Kind, ReadOptions, Sniff, frames_kind
from mmflow.io.source import Source, expand
from mmflow.progress import READING, OnStage, Stage, report

__all__ = [
    "FORMATS",
    "Format",
    "Frames",
    "Kind",
    "Loaded",
    "ReadOptions",
    "Source",
    "detect",
    "file_size",
    "format_names",
    "load",
    "read_by_its_primary",
    "read_source",
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
    """One input file: where it came from, its format, what it holds and its lazy frames."""

    source: Source
    format: Format
    frames: Frames

    @property
    def kind(self) -> Kind:
        """What the file holds (trades, trades with BBO, quotes, or trades and quotes)."""
        return frames_kind(self.frames)


def read_source(source: Source, fmt: str = "auto", options: ReadOptions | None = None) -> Loaded:
    """Read one source with ``fmt`` (``auto`` detects it) into lazy canonical frames."""
    options = options or ReadOptions()
    if fmt == "auto":
        chosen = FORMATS["generic"] if options.column_map else detect(source)
    else:
        try:
            chosen = FORMATS[fmt]
        except KeyError:
            msg = f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
            raise ParameterError(msg) from None
    return Loaded(source, chosen, chosen.read(source, options))


def load(
    paths: Iterable[str],
    fmt: str = "auto",
    options: ReadOptions | None = None,
    *,
    stdin: BinaryIO | None = None,
    on_stage: OnStage | None = None,
) -> list[Loaded]:
    """Expand ``paths`` and read every file into lazy canonical frames.

    Parameters
    ----------
    paths
        Files, globs, directories, or ``-`` for standard input.
    fmt
        A name from :data:`FORMATS`, or ``auto``.
    options
        Symbol override and column map.
    stdin
        The stream ``-`` reads (standard input by default).
    on_stage
        Told before each file is read (``reading inputs``, file N of M, bytes so far).

    Returns
    -------
    list[Loaded]
        One entry per file, in the order given (directories and globs sorted).
    """
    sources = expand(paths, stdin=stdin)
    sizes = [file_size(s) for s in sources]
    total = sum(sizes)
    loaded = []
    try:
        for index, source in enumerate(sources):
            done = sum(sizes[:index])
            stage = Stage(READING, index, len(sources), source.display, done, total)
            report(on_stage, stage)
            loaded.append(read_source(source, fmt, options))
    finally:
        report(on_stage, Stage(READING, len(loaded), len(sources), finished=True))
    given = {s.path.resolve() for s in sources}
    return [item for item in loaded if not read_by_its_primary(item, given)]


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
