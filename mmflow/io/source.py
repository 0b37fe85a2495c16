"""Input files: path expansion, transparent decompression, and a cheap look at the first bytes.

A :class:`Source` is one input file (or standard input). It knows its compression from its magic
bytes, not from its name, and hands readers either a path polars can scan lazily (plain, gzip and
zstd files) or, for zip members and standard input, a decompressed copy spooled to a private
temporary directory (in ``TMPDIR``) that is removed however the process ends. A copy is bounded
(:func:`spool_limit`: ``MMFLOW_MAX_SPOOL``, default 8 GiB or half the free space): past the limit
the run stops with a one-line error and the partial copy is removed.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import gzip
import os
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import unquote

import polars as pl

from mmflow import scratch
from mmflow.errors import ParameterError, ReaderError
from mmflow.schema import SYMBOL

__all__ = [
    "DATA_SUFFIXES",
    "DEFAULT_SPOOL_LIMIT",
    "GZIP_MAGIC",
    "SPOOL_LIMIT_VARIABLE",
    "STDIN",
    "ZIP_MAGIC",
    "ZSTD_MAGIC",
    "Compression",
    "Found",
    "Skipped",
    "Source",
    "copy_bounded",
    "expand",
    "find_sources",
    "is_data_file_name",
    "parse_size",
    "partition_symbol",
    "spool_limit",
    "strip_compression_suffix",
]

Compression = Literal["none", "gzip", "zstd", "zip"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZIP_MAGIC = b"PK\x03\x04"
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd", ".zip")
STDIN = "-"
_DECOMPRESSION_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error)
"""What reading a corrupt or truncated compressed stream raises (a flipped gzip byte: zlib)."""

_spool: Path | None = None

SPOOL_LIMIT_VARIABLE = "MMFLOW_MAX_SPOOL"
"""Environment variable for the largest temporary copy, e.g. ``20G`` (:func:`spool_limit`)."""
DEFAULT_SPOOL_LIMIT = 8 * 2**30
"""The largest temporary copy by default: 8 GiB (or half the free space, if that is less)."""
_COPY_CHUNK = 1 << 20


def _spool_dir() -> Path:
    """Return the private directory for decompressed copies, created on first use.

    It lives in the temporary folder (``TMPDIR`` when set) and is removed when the process ends,
    however it ends (:mod:`mmflow.scratch`).
    """
    global _spool
    if _spool is None or not _spool.is_dir():
        try:
            _spool = scratch.make_directory("mmflow-")
        except OSError as exc:
            root = scratch.scratch_root()
            msg = (
                f"{root}: cannot create a temporary folder ({exc.strerror or exc}; set TMPDIR "
                "to a writable folder, or pass files by name instead of - or .zip)"
            )
            raise ParameterError(msg) from None
    return _spool


def parse_size(text: str) -> int:
    """Return a byte count written as ``123``, ``512K``, ``64M``, ``8G``, ``1.5T`` (``GiB`` too).

    Units are binary (K = 1024).

    Raises
    ------
    ParameterError
        When ``text`` is not such a size.

    Examples
    --------
    >>> parse_size("8G"), parse_size("512 MiB"), parse_size("1000"), parse_size("1.5k")
    (8589934592, 536870912, 1000, 1536)
    """
    match = _SIZE.match(text.strip())
    if match is None:
        msg = f"{text!r} is not a size like 500M, 8G or 1T (bytes, K, M, G, T; binary units)"
        raise ParameterError(msg)
    number, unit = match.group(1), (match.group(2) or "").upper()
    return int(float(number) * 1024 ** " KMGT".index(unit or " "))


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?$")


def spool_limit(directory: Path | None = None) -> int:
    """Return the largest temporary copy of standard input or a zip member mmflow will make.

    ``MMFLOW_MAX_SPOOL`` when set (e.g. ``20G``); otherwise :data:`DEFAULT_SPOOL_LIMIT` (8 GiB),
    or half the free space of the folder the copy goes to when that is less.

    Raises
    ------
    ParameterError
        When ``MMFLOW_MAX_SPOOL`` is not a size.
    """
    configured = os.environ.get(SPOOL_LIMIT_VARIABLE, "").strip()
    if configured:
        try:
            return parse_size(configured)
        except ParameterError as exc:
            msg = f"{SPOOL_LIMIT_VARIABLE}: {exc}"
            raise ParameterError(msg) from None
    try:
        free = shutil.disk_usage(directory or scratch.scratch_root()).free
    except OSError:
        return DEFAULT_SPOOL_LIMIT
    return min(DEFAULT_SPOOL_LIMIT, free // 2)


def _human(size: int) -> str:
    """``8589934592`` → ``8.0 GiB``.

    Examples
    --------
    >>> _human(8 * 2**30), _human(1536), _human(12)
    ('8.0 GiB', '1.5 KiB', '12 bytes')
    """
    if size < 1024:
        return f"{size} bytes"
    value, units = float(size), ["KiB", "MiB", "GiB", "TiB", "PiB"]
    for unit in units:
        value /= 1024
        if value < 1024 or unit == units[-1]:
            break
    return f"{value:.1f} {unit}"


def copy_bounded(stream: BinaryIO, target: Path, *, what: str, limit: int | None = None) -> Path:
    """Copy ``stream`` to a new file ``target``, stopping at ``limit`` bytes.

    A copy that passes the limit, runs out of disk space or is interrupted (Ctrl-C, SIGTERM) is
    removed before the error propagates; ``target`` is tracked in :mod:`mmflow.scratch` while
    it is written.

    Parameters
    ----------
    stream
        What to copy (standard input, a zip member).
    target
        The new file.
    what
        How to name the input in an error (``<stdin>``, the zip file).
    limit
        Largest copy in bytes; default :func:`spool_limit`.

    Raises
    ------
    ReaderError
        Past the limit, or when the disk is full.
    """
    limit = spool_limit(target.parent) if limit is None else limit
    scratch.track(target, "file")
    copied = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(_COPY_CHUNK):
                copied += len(chunk)
                if copied > limit:
                    msg = (
                        f"larger than {_human(limit)}, the limit of a temporary copy in "
                        f"{scratch.scratch_root()}; stopped and removed the partial copy (set "
                        f"{SPOOL_LIMIT_VARIABLE}=SIZE, e.g. 20G, to raise it, or pass an "
                        "uncompressed file by name)"
                    )
                    raise ReaderError(msg, path=what)
                out.write(chunk)
    except OSError as exc:
        scratch.remove(target)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            msg = (
                f"no space left in {scratch.scratch_root()} after copying {_human(copied)}; "
                "removed the partial copy (set TMPDIR to a folder on a larger disk, or pass "
                "an uncompressed file by name)"
            )
            raise ReaderError(msg, path=what) from None
        raise
    except BaseException:
        scratch.remove(target)
        raise
    return target


def _detect_compression(head: bytes) -> Compression:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "none"


def strip_compression_suffix(name: str) -> str:
    """Return ``name`` without a trailing ``.gz``, ``.zst`` or ``.zip``.

    Examples
    --------
    >>> strip_compression_suffix("BTCUSDT-trades-2024-07-19.csv.gz")
    'BTCUSDT-trades-2024-07-19.csv'
    """
    lowered = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class Source:
    """One input file, decompressed on demand.

    Parameters
    ----------
    path
        The file on disk (for standard input, the spooled copy).
    display
        How to name the file to a person: the path as given, or ``<stdin>``.
    found_in_folder
        Whether a directory search found it (a folder run may skip it when it holds no data);
        files named explicitly are never skipped.
    """

    path: Path
    display: str
    found_in_folder: bool = False
    compression: Compression = field(init=False)
    name: str = field(init=False)
    _member: str | None = field(init=False, default=None)
    _plain: Path | None = field(init=False, default=None)
    parse_checks: list[pl.LazyFrame] = field(init=False, default_factory=list, repr=False)
    """Row-account plans of lines the CSV scan skipped (see :func:`mmflow.io._common.scan_csv`)."""

    def __post_init__(self) -> None:
        try:
            with self.path.open("rb") as handle:
                magic = handle.read(8)
        except OSError as exc:
            raise ReaderError(exc.strerror or str(exc), path=self.display) from exc
        self.compression = _detect_compression(magic)
        self.name = strip_compression_suffix(self.path.name)
        if self.compression == "zip":
            self._member = self._zip_member()
            self.name = Path(self._member).name

    def _zip_member(self) -> str:
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [i.filename for i in archive.infolist() if not i.is_dir()]
        except zipfile.BadZipFile as exc:
            msg = f"not a valid zip archive ({exc}); re-download the file"
            raise ReaderError(msg, path=self.display) from exc
        if len(members) != 1:
            msg = (
                f"zip archive holds {len(members)} files, expected exactly one "
                "(unzip it and pass the files you want)"
            )
            raise ReaderError(msg, path=self.display)
        return members[0]

    def open(self) -> BinaryIO:
        """Open the decompressed content as a binary stream."""
        if self.compression == "gzip":
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        if self.compression == "zstd":
            import pyarrow as pa

            stream: BinaryIO = pa.input_stream(str(self.path), compression="zstd")
            return stream
        if self.compression == "zip":
            archive = zipfile.ZipFile(self.path)
            assert self._member is not None
            return archive.open(self._member)  # type: ignore[return-value]
        return self.path.open("rb")

    def head(self, size: int = 65_536) -> bytes:
        """Return up to ``size`` decompressed bytes from the start of the file.

        A file whose compressed start is unreadable, or whose compressed stream ends within the
        first ``size`` bytes, raises :class:`ReaderError`; a truncated end further on is only
        found when the whole file is read.
        """
        try:
            with self.open() as stream:
                return stream.read(size)
        except _DECOMPRESSION_ERRORS as exc:
            msg = f"cannot decompress ({exc}); the file is corrupt or truncated, re-download it"
            raise ReaderError(msg, path=self.display) from exc

    def lines(self, count: int = 6) -> list[str]:
        """Return the first ``count`` text lines (empty when the file is binary or empty)."""
        head = self.head()
        if b"\x00" in head[:4096]:
            return []
        text = head.decode("utf-8-sig", errors="replace")  # drop a byte-order mark
        return [line.rstrip("\r") for line in text.split("\n")[:count] if line.strip()]

    def scan_path(self) -> Path:
        """Return a path polars can scan: the file, or a decompressed copy of a zip member."""
        if self.compression in ("none", "gzip", "zstd"):
            return self.path
        if self._plain is None:
            with self.open() as stream:
                self._plain = _spool_copy(stream, self.name, self.display)
        return self._plain

    def read_bytes(self) -> bytes:
        """Return the whole decompressed content."""
        try:
            with self.open() as stream:
                return stream.read()
        except _DECOMPRESSION_ERRORS as exc:
            msg = f"cannot decompress ({exc}); the file is corrupt or truncated, re-download it"
            raise ReaderError(msg, path=self.display) from exc

    def verify(self) -> None:
        """Decompress the whole file; raise :class:`ReaderError` if it is truncated or corrupt."""
        try:
            with self.open() as stream:
                while stream.read(1 << 20):
                    pass
        except _DECOMPRESSION_ERRORS as exc:
            msg = f"cannot decompress ({exc}); the file is corrupt or truncated, re-download it"
            raise ReaderError(msg, path=self.display) from exc


def _spool_stdin(stream: BinaryIO) -> Path:
    # A directory of its own per read, so the copy is always named "stdin" (its Source.name, and
    # the default symbol for files without one, must not depend on how many files were spooled).
    return _spool_copy(stream, "stdin", "<stdin>")


def _spool_copy(stream: BinaryIO, name: str, what: str) -> Path:
    """Copy ``stream`` to ``name`` in a new folder of the spool (bounded; see copy_bounded)."""
    # A folder of its own per copy, so the copy keeps its name (a zip member's, or "stdin").
    folder = Path(tempfile.mkdtemp(dir=_spool_dir()))
    try:
        return copy_bounded(stream, folder / name, what=what)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


DATA_SUFFIXES = frozenset(
    {".csv", ".txt", ".dbn", ".parquet", ".arrow", ".ipc", ".feather", ".ndjson", ".jsonl"}
)
"""Suffixes (after any compression suffix) a directory search picks up."""


def is_data_file_name(name: str) -> bool:
    """Whether a directory search takes a file of this name (documentation and such are skipped).

    Examples
    --------
    >>> names = ("a.csv.gz", "b.dbn.zst", "EQY_US_ALL_TRADE_20161024.gz", "README.md", "LICENSE")
    >>> [is_data_file_name(n) for n in names]
    [True, True, True, False, False]
    """
    plain = strip_compression_suffix(name)
    # NYSE Daily TAQ files have no suffix: EQY_US_ALL_TRADE_20161024.gz
    return Path(plain).suffix.lower() in DATA_SUFFIXES or plain.upper().startswith("EQY_US_ALL_")


@dataclass(frozen=True)
class Skipped:
    """An entry a folder run left out, and why (listed in one note; an error with --strict)."""

    path: str
    reason: str


@dataclass
class Found:
    """What :func:`find_sources` found: the sources, and the entries it could not read."""

    sources: list[Source] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _excluded(relative: str, name: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(relative, g) or fnmatch.fnmatch(name, g) for g in exclude)


def _search(folder: Path, exclude: Sequence[str], found: Found) -> None:
    """Add the data files under ``folder`` (recursively) to ``found``; note unreadable entries.

    Hidden entries are left out; so are files whose names are not data names (documentation)
    and entries ``exclude`` matches. A folder that cannot be listed is recorded, never skipped
    silently.
    """

    def unreadable(error: OSError) -> None:
        where = error.filename if error.filename is not None else str(folder)
        found.skipped.append(Skipped(str(where), f"unreadable ({error.strerror or error})"))

    files: list[Path] = []
    problems = len(found.skipped)
    for top, folders, names in os.walk(folder, onerror=unreadable):
        here = Path(top)
        folders[:] = sorted(
            d
            for d in folders
            if not d.startswith(".")
            and not _excluded((here / d).relative_to(folder).as_posix(), d, exclude)
        )
        for name in names:
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if name.startswith(".") or not is_data_file_name(name):
                continue
            if _excluded(relative, name, exclude):
                continue
            files.append(path)
    for path in sorted(files):
        try:
            found.sources.append(Source(path, str(path), found_in_folder=True))
        except ReaderError as exc:
            found.skipped.append(Skipped(str(path), f"unreadable ({exc.message})"))
    if not files and len(found.skipped) == problems:
        msg = "directory holds no data files (pass files, a glob, or a directory with data)"
        raise ReaderError(msg, path=str(folder))


def find_sources(
    paths: Iterable[str], *, stdin: BinaryIO | None = None, exclude: Sequence[str] = ()
) -> Found:
    """Turn paths, globs, directories and ``-`` into sources, in a stable sorted order.

    Directories are searched recursively for data files (see :data:`DATA_SUFFIXES`; hidden files
    and documentation are skipped); files named explicitly or by a glob are always taken; ``-``
    reads standard input once, spooled to a temporary file.

    Parameters
    ----------
    paths
        What the user typed.
    stdin
        The stream ``-`` stands for (standard input by default).
    exclude
        Glob patterns (``--exclude``) matched against each found file's name and its path
        relative to the directory searched (or the path as a glob found it).

    Returns
    -------
    Found
        One source per file, and the entries of directories that could not be read.

    Raises
    ------
    ReaderError
        When a path matches nothing.
    """
    found = Found()
    for raw in paths:
        if raw == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            found.sources.append(Source(_spool_stdin(stream), "<stdin>"))
            continue
        path = Path(raw)
        if path.is_dir():
            _search(path, exclude, found)
            continue
        if path.exists():
            found.sources.append(Source(path, raw))
            continue
        matches = sorted(glob.glob(raw, recursive=True))
        files = [Path(m) for m in matches if Path(m).is_file()]
        files = [p for p in files if not _excluded(p.as_posix(), p.name, exclude)]
        if not files:
            msg = "no such file (check the path or quote the glob)"
            raise ReaderError(msg, path=raw)
        found.sources.extend(Source(p, str(p)) for p in files)
    return found


def expand(paths: Iterable[str], *, stdin: BinaryIO | None = None) -> list[Source]:
    """Return the sources :func:`find_sources` finds (unreadable folder entries left out)."""
    return find_sources(paths, stdin=stdin).sources


def partition_symbol(path: Path) -> str | None:
    """Return the symbol a hive path names (``…/symbol=BTC%2FUSDT/…`` → ``BTC/USDT``).

    Examples
    --------
    >>> partition_symbol(Path("out/symbol=BTC%2FUSDT/date=2024-07-19/trades.parquet"))
    'BTC/USDT'
    >>> partition_symbol(Path("trades.parquet")) is None
    True
    """
    for part in reversed(path.parts):
        if part.startswith(f"{SYMBOL}="):
            return unquote(part[len(SYMBOL) + 1 :])
    return None
