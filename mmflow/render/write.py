"""Writing tables for programs: files written atomically, or a format on standard output.

A file is written to a temporary file in the destination directory and renamed into place, so a
failed or interrupted run never leaves a partial output, and the temporary file is removed on every
way a run ends (:mod:`mmflow.scratch`). :func:`check_output_file`, :func:`check_output_directory`
and :func:`check_stream` let the command check output locations before any work starts. Parquet
files carry key-value metadata (schema, mmflow version, sources, clock, parameters) so results are
reproducible.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import polars as pl

from mmflow import scratch
from mmflow._version import __version__
from mmflow.errors import ParameterError
from mmflow.schema import ISO_NS

__all__ = [
    "BINARY_FORMATS",
    "IMAGE_FORMATS",
    "OUTPUT_FORMATS",
    "STREAMED_FORMATS",
    "OutputFormat",
    "Stream",
    "build_metadata",
    "check_output_directory",
    "check_output_file",
    "check_stream",
    "format_from_suffix",
    "image_format",
    "sink_file",
    "streamed_file",
    "write_figure",
    "write_file",
    "write_to",
]

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

OutputFormat = Literal["csv", "ndjson", "json", "parquet", "arrow"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("csv", "ndjson", "json", "parquet", "arrow")
_SUFFIXES: dict[str, OutputFormat] = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".ipc": "arrow",
    ".feather": "arrow",
}


def format_from_suffix(path: Path) -> OutputFormat:
    """Return the output format a file name asks for.

    Raises
    ------
    ParameterError
        When the suffix is not one mmflow writes.

    Examples
    --------
    >>> format_from_suffix(Path("bars.parquet"))
    'parquet'
    """
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        known = ", ".join(_SUFFIXES)
        suffix = path.suffix or "no suffix"
        msg = f"{path}: cannot tell the output format from {suffix!r}; use one of {known}"
        raise ParameterError(msg) from None


def build_metadata(
    *,
    table: str,
    sources: list[dict[str, str]],
    clock: str,
    parameters: Mapping[str, Any],
) -> dict[str, str]:
    """Return the key-value metadata every parquet file mmflow writes carries."""
    return {
        "mmflow.schema": f"{table}/1",
        "mmflow.version": __version__,
        "mmflow.sources": json.dumps(sources),
        "mmflow.clock": clock,
        "mmflow.parameters": json.dumps(dict(parameters), default=str, sort_keys=True),
    }


def _json_ready(df: Frame) -> Frame:
    """Datetimes as ISO-8601 UTC text with nanoseconds, so JSON readers need no guessing."""
    return df.with_columns(
        pl.col(name).dt.to_string(ISO_NS)
        for name, dtype in df.collect_schema().items()
        if isinstance(dtype, pl.Datetime)
    )


def _as_text(dtype: object) -> pl.Expr:
    """Return an expression turning list elements of ``dtype`` into text (structs: JSON)."""
    if isinstance(dtype, pl.Struct):
        return pl.element().struct.json_encode()
    return pl.element().cast(pl.String)


def _csv_ready(df: Frame) -> Frame:
    """Join lists (symbols, issues, dropped rows) into ``; ``-separated text for CSV."""
    return df.with_columns(
        pl.col(name).list.eval(_as_text(dtype.inner)).list.join("; ")
        for name, dtype in df.collect_schema().items()
        if isinstance(dtype, pl.List)
    )


def write_to(
    df: pl.DataFrame,
    sink: IO[bytes],
    fmt: OutputFormat,
    metadata: dict[str, str],
    *,
    header: bool = True,
) -> None:
    """Write ``df`` in ``fmt`` to a binary stream (``header=False``: CSV rows only, to append)."""
    if fmt == "csv":
        _csv_ready(df).write_csv(sink, datetime_format=ISO_NS, include_header=header)
    elif fmt == "ndjson":
        _json_ready(df).write_ndjson(sink)
    elif fmt == "json":
        sink.write(json.dumps(_json_ready(df).to_dicts(), indent=1).encode() + b"\n")
    elif fmt == "parquet":
        df.write_parquet(sink, metadata=metadata)
    else:
        df.write_ipc(sink)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _replacing(path: Path) -> Iterator[tuple[int, Path]]:
    """Yield an open temporary file beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file is registered in :mod:`mmflow.scratch`, so it is removed on any other
    ending: an error, Ctrl-C, SIGTERM (see :mod:`mmflow.interrupts`) or interpreter exit.
    """
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        msg = f"{path}: directory {directory} does not exist (create it first)"
        raise ParameterError(msg)
    with scratch.temporary_file(directory, f".{path.name}.", ".tmp") as (handle, temporary):
        yield handle, temporary
        temporary.chmod(0o666 & ~_umask())
        temporary.replace(path)
        scratch.forget(temporary)


def write_file(
    df: pl.DataFrame, path: Path, metadata: dict[str, str], fmt: OutputFormat | None = None
) -> None:
    """Write ``df`` to ``path`` atomically, in ``fmt`` or else the format its suffix names.

    Parameters
    ----------
    df
        The table.
    path
        Destination; its parent directory must exist.
    metadata
        Key-value metadata stored in parquet files.
    fmt
        The format, whatever the suffix says (default: from the suffix).
    """
    fmt = fmt or format_from_suffix(path)
    with _replacing(path) as (handle, _), os.fdopen(handle, "wb") as sink:
        write_to(df, sink, fmt, metadata)


STREAMED_FORMATS: tuple[OutputFormat, ...] = ("csv", "ndjson", "parquet", "arrow")
"""Formats :func:`streamed_file` writes while the table is computed (``json`` is one array)."""


@dataclass(frozen=True)
class Stream:
    """A lazy table on its way to a temporary file (see :func:`streamed_file`).

    Attributes
    ----------
    plan
        The sink: collecting it (alone or with other plans in ``pl.collect_all``) writes the
        table to ``temporary`` batch by batch and yields an empty frame.
    temporary
        The temporary file in the destination folder.
    fmt
        Its format.
    """

    plan: pl.LazyFrame
    temporary: Path
    fmt: OutputFormat

    def rows(self) -> int:
        """Count the rows written so far (read back from the temporary file)."""
        if self.temporary.stat().st_size == 0:  # nothing written: no header either
            return 0
        if self.fmt == "csv":
            scan = pl.scan_csv(self.temporary)
        elif self.fmt == "ndjson":
            scan = pl.scan_ndjson(self.temporary)
        elif self.fmt == "parquet":
            scan = pl.scan_parquet(self.temporary)
        else:
            scan = pl.scan_ipc(self.temporary)
        count: int = scan.select(pl.len()).collect().item()
        return count


def _sink(
    frame: pl.LazyFrame, target: Path, fmt: OutputFormat, metadata: dict[str, str]
) -> pl.LazyFrame:
    """Return the lazy sink of ``frame`` to ``target`` in ``fmt`` (as :func:`write_to` writes)."""
    if fmt == "csv":
        return _csv_ready(frame).sink_csv(target, datetime_format=ISO_NS, lazy=True)
    if fmt == "ndjson":
        return _json_ready(frame).sink_ndjson(target, lazy=True)
    if fmt == "parquet":
        return frame.sink_parquet(target, metadata=metadata, lazy=True)
    if fmt == "arrow":
        return frame.sink_ipc(target, lazy=True)
    msg = f"{target}: {fmt} cannot be streamed; use one of {', '.join(STREAMED_FORMATS)}"
    raise ParameterError(msg)


@contextmanager
def streamed_file(
    frame: pl.LazyFrame, path: Path, metadata: dict[str, str], fmt: OutputFormat | None = None
) -> Iterator[Stream]:
    """Stream ``frame`` to ``path`` atomically: a sink into a temporary file, renamed at the end.

    The caller collects :attr:`Stream.plan` inside the ``with`` block (with other plans if it
    likes: one run over the inputs); when the block ends normally the file is renamed into
    place. On an error or Ctrl-C inside the block, the temporary file is removed
    (:mod:`mmflow.scratch`) and ``path`` is left as it was. The table never needs to fit in
    memory, and the file holds what :func:`write_file` would write for the collected table.

    Parameters
    ----------
    frame
        The lazy table.
    path
        Destination; its parent directory must exist.
    metadata
        Key-value metadata stored in parquet files.
    fmt
        One of :data:`STREAMED_FORMATS` (default: from the suffix).

    Raises
    ------
    ParameterError
        For a missing directory or a format that cannot be streamed (``json``).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = Path(folder) / "t.csv"
    ...     with streamed_file(pl.LazyFrame({"a": [1, 2]}), target, {}) as stream:
    ...         _ = stream.plan.collect()
    ...         written = stream.rows()
    ...     (written, target.read_text())
    (2, 'a\\n1\\n2\\n')
    """
    fmt = fmt or format_from_suffix(path)
    with _replacing(path) as (handle, temporary):
        os.close(handle)
        yield Stream(_sink(frame, temporary, fmt, metadata), temporary, fmt)


def sink_file(
    frame: pl.LazyFrame, path: Path, metadata: dict[str, str], fmt: OutputFormat | None = None
) -> int:
    """Stream ``frame`` to ``path`` atomically (:func:`streamed_file`); return the rows written.

    ``json`` (one array, not streamable) is collected and written by :func:`write_file`.
    """
    if (fmt or format_from_suffix(path)) not in STREAMED_FORMATS:
        table = frame.collect()
        write_file(table, path, metadata, fmt)
        return table.height
    with streamed_file(frame, path, metadata, fmt) as stream:
        stream.plan.collect()
        return stream.rows()


IMAGE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")

# Fixed metadata, so the same figure gives the same bytes on every run (no dates, no versions).
_IMAGE_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def image_format(path: Path) -> str:
    """Return the image format a file name asks for (``png``, ``svg`` or ``pdf``).

    Raises
    ------
    ParameterError
        When the suffix is not an image format mmflow writes.

    Examples
    --------
    >>> image_format(Path("chart.PNG"))
    'png'
    """
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        known = ", ".join(f".{name}" for name in IMAGE_FORMATS)
        shown = path.suffix or "no suffix"
        msg = f"{path}: cannot tell the image format from {shown!r}; use {known} or a folder/"
        raise ParameterError(msg)
    return suffix


def write_figure(figure: Any, path: Path) -> None:
    """Save a matplotlib figure to ``path`` atomically, in the format its suffix names.

    The bytes depend only on the figure: metadata that would carry a date or a version is left
    out and SVG ids use a fixed salt (see :func:`mmflow.render.plot.chart_style`).

    Parameters
    ----------
    figure
        A :class:`matplotlib.figure.Figure`.
    path
        Destination (``.png``, ``.svg`` or ``.pdf``); its parent directory must exist.
    """
    from mmflow.render.plot import chart_style

    fmt = image_format(path)
    with _replacing(path) as (handle, _), os.fdopen(handle, "wb") as sink, chart_style():
        extra = {"pil_kwargs": {"compress_level": 9}} if fmt == "png" else {}
        figure.savefig(sink, format=fmt, metadata=_IMAGE_METADATA[fmt], **extra)


BINARY_FORMATS: tuple[OutputFormat, ...] = ("parquet", "arrow")
"""Formats :func:`check_stream` refuses to write to a terminal."""


def _probe_writable(directory: Path, path: Path) -> None:
    """Create and remove a file in ``directory``, or raise :class:`ParameterError` naming ``path``.

    This is the only test of writability that holds for every user (root ignores permission
    bits), file system (read-only mounts) and ACL; ``os.access`` is not.
    """
    try:
        with scratch.temporary_file(directory, ".mmflow-probe-", ".tmp") as (handle, _):
            os.close(handle)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = f"{path}: cannot write in {directory} ({reason}; choose another place with -o)"
        raise ParameterError(msg) from None


def check_output_file(path: Path) -> OutputFormat:
    """Check, before any work, that a table can be written to ``path``; return its format.

    ``path`` must have a known suffix, must not be a folder, and must be in an existing folder
    mmflow can create files in (tested by creating and removing a file there).

    Raises
    ------
    ParameterError
        Naming ``path`` and what to do.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     check_output_file(Path(folder) / "bars.parquet")
    'parquet'
    >>> check_output_file(Path("/no/pe/a.csv"))
    Traceback (most recent call last):
    ...
    mmflow.errors.ParameterError: /no/pe/a.csv: folder /no/pe does not exist (create it first)
    """
    if path.is_dir():
        msg = f"{path}: is a folder (name a file in it, e.g. {path / 'table.parquet'})"
        raise ParameterError(msg)
    fmt = format_from_suffix(path)
    directory = path.parent if str(path.parent) else Path()
    if not directory.exists():
        msg = f"{path}: folder {directory} does not exist (create it first)"
        raise ParameterError(msg)
    if not directory.is_dir():
        msg = f"{path}: {directory} is not a folder (choose another place with -o)"
        raise ParameterError(msg)
    _probe_writable(directory, path)
    return fmt


def check_output_directory(directory: Path) -> None:
    """Check, before any work, that a dataset folder can be written (it may not exist yet).

    The folder, or its nearest existing parent when it is to be created, must be a folder mmflow
    can create files in.

    Raises
    ------
    ParameterError
        Naming ``directory`` and what to do.
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "exists and is not a folder" if existing == directory else f"{existing} is a file"
        msg = f"{directory}: {what} (choose another folder with -o)"
        raise ParameterError(msg)
    _probe_writable(existing, directory)


def check_stream(fmt: OutputFormat, stream: IO[bytes] | IO[str]) -> None:
    """Refuse to write a binary format to a terminal (it would only garble the screen).

    Raises
    ------
    ParameterError
        When ``fmt`` is binary and ``stream`` is a terminal.
    """
    try:
        terminal = stream.isatty()
    except (ValueError, OSError):  # a closed or detached stream is no terminal
        terminal = False
    if fmt in BINARY_FORMATS and terminal:
        msg = f"refusing to write binary {fmt} to a terminal; use -o FILE or redirect stdout"
        raise ParameterError(msg)
