"""Vendor files → a canonical parquet dataset partitioned by symbol and date.

Layout (hive style, readable as a dataset by polars, pyarrow and duckdb)::

    DIR/symbol=BTCUSDT/date=2024-07-19/trades.parquet
    DIR/symbol=BTCUSDT/date=2024-07-19/quotes.parquet

``date`` is the UTC date of ``ts``. Partition values are percent-encoded (``BTC/USDT`` →
``symbol=BTC%2FUSDT``), so no symbol can name a path outside ``DIR``; the partition columns are
not repeated inside the files. Every file is first written to a private folder inside ``DIR``
(``.mmflow-convert-*``) and renamed into place only when all are complete, so an interrupted run
leaves no partial file; the private folder, and ``DIR`` itself when this run created it and it is
still empty, are removed on every way a run ends (an error, Ctrl-C, SIGTERM; :mod:`mmflow.scratch`).
Rows keep their time order, so converting the same inputs again gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mmflow import scratch
from mmflow.analysis.options import Selection
from mmflow.analysis.prepare import prepare, prepare_market
from mmflow.errors import MmflowError, ParameterError
from mmflow.render.messages import cleaning_notes
from mmflow.schema import QUOTES, SYMBOL, TRADES, TS, TableSchema

__all__ = [
    "DATE",
    "Converted",
    "commit",
    "convert",
    "count_rows",
    "partition_sink",
    "partitioned",
    "staged",
    "write_dataset",
]

DATE = "date"


@dataclass
class Converted:
    """What :func:`convert` wrote: one entry per file, relative to the dataset folder."""

    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def partitioned(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Time-order canonical rows (stable) and add the ``date`` partition key (UTC date of ts)."""
    return frame.sort(TS, maintain_order=True).with_columns(
        pl.col(TS).dt.date().cast(pl.String).alias(DATE)
    )


def partition_sink(frame: pl.LazyFrame, root: Path, metadata: dict[str, str]) -> pl.LazyFrame:
    """Return the plan writing ``frame``'s partitions under ``root`` (``symbol=…/date=…``).

    The partition keys are left out of the files. Collect it (with other plans, in one run).
    """
    return partitioned(frame).sink_parquet(
        pl.PartitionBy(root, key=[SYMBOL, DATE], include_key=False),
        metadata=metadata,
        mkdir=True,
        lazy=True,
    )


def count_rows(path: Path) -> int:
    """Rows in one parquet file (from its footer)."""
    rows: int = pl.scan_parquet(path).select(pl.len()).collect().item()
    return rows


def _write_table(
    frame: pl.LazyFrame, table: TableSchema, staging: Path, metadata: dict[str, str]
) -> int:
    """Write one table's partitions under ``staging/<table>/``; return the number of rows."""
    partition_sink(frame, staging / table.name, metadata).collect(engine="streaming")
    return sum(count_rows(p) for p in (staging / table.name).rglob("*.parquet"))


def convert(
    tables: list[tuple[TableSchema, pl.LazyFrame]],
    directory: Path,
    *,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
) -> Converted:
    """Write canonical frames as a partitioned parquet dataset under ``directory``.

    Parameters
    ----------
    tables
        ``(TRADES, frame)`` and/or ``(QUOTES, frame)``: canonical, any order.
    directory
        The dataset folder; created if missing.
    overwrite
        Replace partition files that already exist (otherwise that is an error and nothing is
        written).
    metadata
        Key-value metadata stored in every file.

    Returns
    -------
    Converted
        The files written (relative to ``directory``) and row counts per table.

    Raises
    ------
    MmflowError
        When partitions exist and ``overwrite`` is False.
    """
    with staged(directory) as staging:
        result = Converted()
        moves: list[tuple[Path, Path]] = []
        for table, frame in tables:
            result.rows[table.name] = _write_table(frame, table, staging, metadata or {})
            root = staging / table.name
            for written in sorted(root.rglob("*.parquet")):
                partition = written.parent.relative_to(root)
                moves.append((written, partition / f"{table.name}.parquet"))
        result.files = commit(moves, directory, overwrite=overwrite)
        return result


@contextmanager
def staged(directory: Path) -> Iterator[Path]:
    """Yield a private staging folder inside ``directory`` (created if missing), removed after.

    ``directory`` and its parents this creates are removed again (while empty) when the block
    fails or is stopped, and kept when it ends normally.
    """
    if directory.exists() and not directory.is_dir():
        msg = f"{directory} exists and is not a directory (choose another -o)"
        raise ParameterError(msg)
    created = _create(directory)
    staging = scratch.make_directory(".mmflow-convert-", directory)
    finished = False
    try:
        yield staging
        finished = True
    finally:
        scratch.remove(staging)
        for folder in reversed(created):  # innermost first
            if finished:
                scratch.forget(folder)
            else:
                scratch.remove(folder)  # only while empty: a failed run leaves no empty folder


def commit(moves: list[tuple[Path, Path]], directory: Path, *, overwrite: bool) -> list[Path]:
    """Rename staged files into place (``(staged, target relative to directory)``).

    Nothing is moved when a target exists and ``overwrite`` is False, or when a target would
    leave ``directory``. Returns the targets, in order.

    Raises
    ------
    MmflowError
        When partitions exist and ``overwrite`` is False, or a path would leave ``directory``.
    """
    existing = [target for _, target in moves if (directory / target).exists()]
    if existing and not overwrite:
        msg = (
            f"{directory}: {len(existing)} partition file(s) already exist, e.g. "
            f"{existing[0]} (pass --overwrite to replace them)"
        )
        raise MmflowError(msg)
    root = directory.resolve()
    for _, target in moves:
        if not (directory / target).resolve().is_relative_to(root):  # never escape DIR
            msg = f"{target}: a partition path would leave {directory}; refusing to write it"
            raise MmflowError(msg)
    for written, target in moves:
        (directory / target).parent.mkdir(parents=True, exist_ok=True)
        written.replace(directory / target)
    return [target for _, target in moves]


def _create(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return those created, outermost first.

    Each is registered in :mod:`mmflow.scratch` as a folder to remove while empty, so a run that
    fails or is stopped before writing anything leaves no empty dataset folder behind.
    """
    missing: list[Path] = []
    folder = directory
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    for folder in missing:
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        scratch.track(folder, "empty-dir")
    return missing


def write_dataset(
    trades: pl.LazyFrame | None,
    quotes: pl.LazyFrame | None,
    directory: Path,
    *,
    overwrite: bool = False,
    selection: Selection | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[Converted, list[str]]:
    """Select (and optionally clean) canonical rows, then write them as a partitioned dataset.

    Returns what was written and, with cleaning, one line per table saying what each rule
    dropped (see :func:`mmflow.convert.convert` for the layout).
    """
    selection = selection or Selection()
    notes: list[str] = []
    if trades is not None:
        trades, quotes, dropped = prepare_market(trades, quotes, selection)
        if dropped is not None:
            notes = cleaning_notes(dropped.collect())
    elif quotes is not None:
        quotes = prepare(quotes, QUOTES, selection)
    tables = [(t, f) for t, f in ((TRADES, trades), (QUOTES, quotes)) if f is not None]
    return convert(tables, directory, overwrite=overwrite, metadata=metadata), notes
