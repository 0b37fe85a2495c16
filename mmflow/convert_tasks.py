"""``convert`` on an executor (issue 14): workers parse their input files and stage partitions.

:func:`convert_on` splits a conversion into one task per input file. A task
(:func:`convert_part`, run on a Dask worker or here) reads its own file from its path, checks
and selects the rows exactly as a local run does, and writes that file's partitions
(``symbol=…/date=…``) into a folder of its own inside the run's staging folder; it returns the
pieces it wrote (with their row counts) and its row account (rows read, dropped by reason, and
the selection filters' counts), which the client sums into the run's account.

The client then commits as :func:`mmflow.convert.convert` does: a partition fed by one file is
renamed into place; one fed by several files is merged first (:func:`merge_part`, again a task):
the pieces, concatenated in input order and stably sorted by ``ts``, are the rows a local run
writes for that partition, in the same order (a local run sorts the concatenation of every
input stably by ``ts``). Every piece is cast to the schema the local run would give the whole
table (columns some files lack are null, types are relaxed alike), so the files equal a local
run's in columns, rows and row order.

Nothing is renamed into the dataset folder until every task has finished and the account is
checked, so a failed or stopped run leaves nothing partial. Tasks are safe to run again: each
attempt writes to a new folder, and a worker killed mid-task only leaves an unused folder in
the staging area, which goes with it. A worker still running when the client gave up (a remote
cluster keeps running cancelled tasks) finds the staging folder's marker gone and removes what
it wrote.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, TypeVar

import polars as pl

from mmflow.analysis.options import Selection
from mmflow.analysis.prepare import prepare, prepare_market, selection_account
from mmflow.convert import Converted, commit, count_rows, partition_sink, staged
from mmflow.errors import MmflowError, ParameterError
from mmflow.io import Loaded, ReadOptions, read_source
from mmflow.io.assemble import collect, gather
from mmflow.io.source import Source
from mmflow.schema import QUOTES, TRADES, TS

__all__ = [
    "ConvertTask",
    "MergeTask",
    "Part",
    "Piece",
    "convert_on",
    "convert_part",
    "merge_part",
]

T = TypeVar("T")
R = TypeVar("R")


class Mapper(Protocol):
    """Runs a function over tasks and yields the results in task order (an executor's ``map``)."""

    def __call__(self, fn: Callable[[T], R], tasks: Iterable[T], /) -> Iterator[R]:
        """Yield ``fn(task)`` for each task, in task order."""
        ...


ALIVE: Final = "running"
"""The marker file of a staging folder whose run is still going (workers check it)."""

TABLES: Final = {TRADES.name: TRADES, QUOTES.name: QUOTES}


@dataclass(frozen=True)
class ConvertTask:
    """One input file to convert: everything a worker needs, picklable.

    Attributes
    ----------
    number
        The file's place among the inputs (its pieces merge in this order).
    path, display, found_in_folder
        The file, as :class:`mmflow.io.source.Source` takes it.
    format
        The format name the client detected (the worker does not detect again).
    options
        How to read it (``--symbol``, limits, …).
    selection
        The row filters and clock.
    schemas
        Table name → the column names and types the local run gives that table.
    staging
        The run's staging folder (shared storage on a multi-machine cluster).
    metadata
        Key-value metadata stored in every file.
    """

    number: int
    path: str
    display: str
    found_in_folder: bool
    format: str
    options: ReadOptions
    selection: Selection
    schemas: dict[str, dict[str, pl.DataType]]
    staging: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Piece:
    """One partition file a task staged: its table, partition (``symbol=…/date=…``), rows."""

    table: str
    partition: str
    path: str
    rows: int


@dataclass(frozen=True)
class Part:
    """What one task returns: its staged pieces and its row account tables."""

    pieces: tuple[Piece, ...]
    account: pl.DataFrame | None
    selected: pl.DataFrame


@dataclass(frozen=True)
class MergeTask:
    """Pieces of one partition (in input order) to merge into one file in ``staging``."""

    pieces: tuple[str, ...]
    staging: str
    metadata: dict[str, str] = field(default_factory=dict)


def _check_alive(staging: Path) -> None:
    """Stop (and remove what this task wrote) when the run that owns ``staging`` has ended."""
    if not (staging / ALIVE).exists():
        shutil.rmtree(staging, ignore_errors=True)  # only this run's private folder
        msg = (
            f"{staging}: the conversion this task belongs to has ended, or its staging folder "
            "is not visible on this worker (-o must be on storage every worker shares)"
        )
        raise MmflowError(msg)


def conformed(frame: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Give ``frame`` the columns and types of ``schema`` (missing columns are null)."""
    names = set(frame.collect_schema().names())
    return frame.select(
        pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


def convert_part(task: ConvertTask) -> Part:
    """Read, check, select and stage one input file's partitions (a worker's task)."""
    staging = Path(task.staging)
    _check_alive(staging)
    source = Source(Path(task.path), task.display, task.found_in_folder)
    item = read_source(source, task.format, task.options)
    attempt = staging / "parts" / f"{task.number}-{uuid.uuid4().hex}"
    frames = {TRADES.name: item.frames.trades, QUOTES.name: item.frames.quotes}
    sinks = [
        partition_sink(
            conformed(prepare(frame, TABLES[name], task.selection), task.schemas[name]),
            attempt / name,
            task.metadata,
        )
        for name, frame in frames.items()
        if frame is not None and name in task.schemas
    ]
    selected = selection_account(item.frames.trades, item.frames.quotes, task.selection)
    accounts = [item.account] if item.account is not None else []
    collected = collect([*sinks, *accounts, selected], [item])
    _check_alive(staging)
    pieces = tuple(
        Piece(name, str(path.parent.relative_to(attempt / name)), str(path), count_rows(path))
        for name in frames
        for path in sorted((attempt / name).rglob("*.parquet"))
    )
    return Part(pieces, collected[-2] if accounts else None, collected[-1])


def merge_part(task: MergeTask) -> str:
    """Merge one partition's pieces (input order, stable by ``ts``) into one staged file."""
    staging = Path(task.staging)
    _check_alive(staging)
    target = staging / "merged" / f"{uuid.uuid4().hex}.parquet"
    target.parent.mkdir(exist_ok=True)
    scans = [pl.scan_parquet(path, hive_partitioning=False) for path in task.pieces]
    pl.concat(scans).sort(TS, maintain_order=True).sink_parquet(target, metadata=task.metadata)
    _check_alive(staging)
    return str(target)


def table_schemas(
    loaded: Sequence[Loaded], selection: Selection
) -> dict[str, dict[str, pl.DataType]]:
    """Return the columns and types a local run gives each table (from the lazy plans only)."""
    trades, quotes = gather(loaded, TRADES), gather(loaded, QUOTES)
    if trades is not None:
        trades, quotes, _ = prepare_market(trades, quotes, selection)
    elif quotes is not None:
        quotes = prepare(quotes, QUOTES, selection)
    return {
        name: dict(frame.collect_schema())
        for name, frame in ((TRADES.name, trades), (QUOTES.name, quotes))
        if frame is not None
    }


def selection_total(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Sum the tasks' selection accounts into the one table a local run counts (trades first)."""
    together = pl.concat(frames, how="vertical_relaxed")
    keys = [name for name in together.columns if name != "rows"]
    summed = together.group_by(keys, maintain_order=True).agg(pl.col("rows").sum())
    order = pl.col("table").replace_strict({TRADES.name: 0}, default=1, return_dtype=pl.Int8)
    return summed.sort(order, maintain_order=True).select(together.columns)


def tasks_of(
    loaded: Sequence[Loaded],
    selection: Selection,
    options: ReadOptions,
    staging: Path,
    metadata: dict[str, str],
) -> list[ConvertTask]:
    """One task per input file (a ``-`` input is its spooled copy)."""
    if selection.clean is not None:
        msg = (
            "--clean needs every instrument's trades and quotes together; convert on Dask "
            "does not clean (drop --clean, or convert with --executor local)"
        )
        raise ParameterError(msg)
    schemas = table_schemas(loaded, selection)
    return [
        ConvertTask(
            number,
            str(item.source.path.resolve()),
            item.source.display,
            item.source.found_in_folder,
            item.format.name,
            options,
            selection,
            schemas,
            str(staging.resolve()),
            metadata,
        )
        for number, item in enumerate(loaded)
    ]


def convert_on(
    executor: Mapper,
    loaded: Sequence[Loaded],
    directory: Path,
    *,
    selection: Selection | None = None,
    options: ReadOptions | None = None,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
    on_account: Callable[[list[pl.DataFrame]], object] | None = None,
    stop: Callable[[], None] | None = None,
) -> Converted:
    """Convert ``loaded`` into a partitioned dataset under ``directory`` with ``executor``.

    Parameters
    ----------
    executor
        Runs the tasks (an executor's ``map``: local, or a Dask cluster whose workers read the
        input paths and write to ``directory``).
    loaded
        The inputs, as :func:`mmflow.io.load` returns them (only their paths, formats and
        schemas are used here; every worker reads its own file).
    directory, overwrite, metadata
        As :func:`mmflow.convert.convert`.
    selection, options
        Row filters and clock; read options. TAQ cleaning is not supported here.
    on_account
        Called with the run's collected row account tables (the readers' in input order, then
        the selection's), before anything is committed; raising there commits nothing.
    stop
        Called when the run fails or is stopped, before the staging folder is removed (stops
        the workers, e.g. closes a local cluster).

    Returns
    -------
    Converted
        The files written (relative to ``directory``) and row counts per table.

    Raises
    ------
    ParameterError
        With TAQ cleaning selected.
    MmflowError
        As :func:`mmflow.convert.convert`, or a task's error (naming its file).
    """
    selection = selection or Selection()
    with staged(directory) as staging:
        (staging / ALIVE).touch()
        try:
            tasks = tasks_of(loaded, selection, options or ReadOptions(), staging, metadata or {})
            parts = list(executor(convert_part, tasks))
            if on_account is not None:
                readers = [part.account for part in parts if part.account is not None]
                joined = [pl.concat(readers, how="vertical_relaxed")] if readers else []
                selected = [part.selected for part in parts]
                on_account(joined + ([selection_total(selected)] if selected else []))
            result = Converted(rows=dict.fromkeys(tasks[0].schemas, 0) if tasks else {})
            moves = _staged_moves(executor, parts, staging, metadata or {}, result)
            result.files = commit(moves, directory, overwrite=overwrite)
        except BaseException:
            (staging / ALIVE).unlink(missing_ok=True)
            if stop is not None:
                stop()
            raise
        return result


def _staged_moves(
    executor: Mapper,
    parts: Sequence[Part],
    staging: Path,
    metadata: dict[str, str],
    result: Converted,
) -> list[tuple[Path, Path]]:
    """Return (staged file, target) per partition, merging partitions several files fed."""
    grouped: dict[tuple[str, str], list[Piece]] = {}
    for part in parts:
        for piece in part.pieces:
            grouped.setdefault((piece.table, piece.partition), []).append(piece)
            result.rows[piece.table] = result.rows.get(piece.table, 0) + piece.rows
    keys = sorted(grouped, key=lambda key: (list(TABLES).index(key[0]), Path(key[1])))
    several = [key for key in keys if len(grouped[key]) > 1]
    merges = [
        MergeTask(tuple(p.path for p in grouped[key]), str(staging.resolve()), metadata)
        for key in several
    ]
    merged = dict(zip(several, executor(merge_part, merges), strict=True))
    return [
        (Path(merged.get(key, grouped[key][0].path)), Path(key[1]) / f"{key[0]}.parquet")
        for key in keys
    ]
