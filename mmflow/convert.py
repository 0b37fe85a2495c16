"""Vendor files → a canonical parquet dataset partitioned by symbol and date.

Layout (hive style, readable as a dataset by polars, pyarrow and duckdb)::

    DIR/symbol=BTCUSDT/date=2024-07-19/trades.parquet
    DIR/symbol=BTCUSDT/date=2024-07-19/quotes.parquet

``date`` is the UTC date of ``ts``. Partition values are percent-encoded (``BTC/USDT`` →
``symbol=BTC%2FUSDT``), so no symbol can name a path outside ``DIR``; the partition columns are
not repeated inside the files. Every file is first written to a private folder inside ``DIR`` and
renamed into place only when all are complete, so an interrupted run leaves no partial file.
Rows keep their time order, so converting the same inputs again gives the same rows.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import polars as pl

from mmflow.errors import MmflowError, ParameterError
from mmflow.schema import SYMBOL, TS, TableSchema

DATE = "date"


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


@dataclass
class Converted:
    """What :func:`convert` wrote: one entry per file, relative to the dataset folder."""

    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def _write_table(
    frame: pl.LazyFrame, table: TableSchema, staging: Path, metadata: dict[str, str]
) -> int:
    """Write one table's partitions under ``staging/<table>/``; return the number of rows."""
    keyed = frame.sort(TS, maintain_order=True).with_columns(
        pl.col(TS).dt.date().cast(pl.String).alias(DATE)
    )
    keyed.sink_parquet(
        pl.PartitionBy(staging / table.name, key=[SYMBOL, DATE], include_key=False),
        metadata=metadata,
        mkdir=True,
    )
    return sum(
        pl.scan_parquet(p).select(pl.len()).collect().item()
        for p in (staging / table.name).rglob("*.parquet")
    )


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
    if directory.exists() and not directory.is_dir():
        msg = f"{directory} exists and is not a directory (choose another -o)"
        raise ParameterError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mmflow-convert-", dir=directory))
    try:
        result = Converted()
        moves: list[tuple[Path, Path]] = []
        for table, frame in tables:
            result.rows[table.name] = _write_table(frame, table, staging, metadata or {})
            root = staging / table.name
            for written in sorted(root.rglob("*.parquet")):
                partition = written.parent.relative_to(root)
                moves.append((written, partition / f"{table.name}.parquet"))
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
            result.files.append(target)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
