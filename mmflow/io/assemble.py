"""Input assembly: read many inputs, concatenate them, collect plans naming the file that fails.

Also the run's row account (:func:`account_of`) and the empty-result check
(:func:`require_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmflow.errors import MmflowError, NoDataError, ReaderError
from mmflow.io import Loaded, RowAccount, Tables, combine, file_size, read_now
from mmflow.io.many import SMALL_FILE, accounts_in_order, joined
from mmflow.progress import OnStage, Stage, report
from mmflow.schema import TableSchema

__all__ = [
    "BATCH",
    "LAZY_INPUTS",
    "account_of",
    "collect",
    "collect_accounts",
    "gather",
    "read_many",
    "require_count",
    "require_rows",
    "unreadable_input",
]


def collect_accounts(inputs: Sequence[Loaded], *plans: pl.LazyFrame) -> list[pl.DataFrame]:
    """Collect every input's row account, then ``plans`` (in batches: linear in the files)."""
    own = [item for item in inputs if item.account is not None and not item.in_memory]
    read: dict[int, pl.DataFrame] = {}
    for start in range(0, len(own), BATCH):
        batch = own[start : start + BATCH]
        frames = collect([item.account for item in batch if item.account is not None], batch)
        read.update((id(item), frame) for item, frame in zip(batch, frames, strict=True))
    return accounts_in_order(inputs, read) + (collect(list(plans), inputs) if plans else [])


def account_of(frames: Sequence[pl.DataFrame], cleaning: pl.DataFrame | None = None) -> RowAccount:
    """Build the run's :class:`RowAccount` from collected account tables and cleaning counts.

    Rows TAQ cleaning drops (``cleaning``: ``rule, rows_dropped, table``) move from used to
    dropped, so rows read = rows used + rows dropped holds for every table.
    """
    account = RowAccount()
    for frame in frames:
        account.extend(RowAccount.from_frame(frame))
    if cleaning is not None and cleaning.height:
        totals = cleaning.group_by("table", "rule", maintain_order=True).agg(
            pl.col("rows_dropped").sum()
        )
        for table, rule, rows in totals.iter_rows():
            account.move_from_used(f"TAQ cleaning: {rule}", int(rows), table=table)
    return account


LAZY_INPUTS = 32
"""Up to this many files stay lazy; beyond it small files are read in batches (read_many)."""


BATCH = 8
"""Files collected together when reading many (polars' cost per plan grows with the plan)."""


def read_many(inputs: Sequence[Loaded]) -> list[Loaded]:
    """Read many small inputs now, each file once with its row account; keep the rest lazy.

    A lazy concatenation of thousands of scans of tiny files costs planning time that grows
    faster than the number of files in polars (and opens every file at once). Beyond
    :data:`LAZY_INPUTS` files, the files up to :data:`mmflow.io.many.SMALL_FILE` bytes are
    collected in batches of :data:`BATCH` (naming the file that fails) and become in-memory
    frames, so the run stays linear in the number of files. Bigger files (the day partitions
    of a converted dataset) **stay lazy scans**: their per-file cost is negligible next to
    their rows, and holding them would put the whole input in memory; a chunk of the engine
    then reads only its own symbol's and days' files (:func:`mmflow.engine.run.within`).
    """
    pending = [item for item in inputs if not item.in_memory]  # grouped reads: mmflow.io.many
    if len(pending) <= LAZY_INPUTS:
        return list(inputs)
    small = [item for item in pending if _small(item)]
    read: dict[int, Loaded] = {}
    for start in range(0, len(small), BATCH):
        batch = small[start : start + BATCH]
        plans = [
            plan
            for item in batch
            for plan in (item.frames.trades, item.frames.quotes, item.account)
            if plan is not None
        ]
        frames = iter(collect(plans, batch))
        for item in batch:
            trades, quotes, account = (
                next(frames) if plan is not None else None
                for plan in (item.frames.trades, item.frames.quotes, item.account)
            )
            tables = Tables(trades, quotes, account)
            read[id(item)] = read_now(item.source, item.format, tables, item.frames.notes)
    return [read.get(id(item), item) for item in inputs]


def _small(item: Loaded) -> bool:
    """Whether ``item``'s file is read into memory among many (up to ``SMALL_FILE`` bytes).

    A size that cannot be known (standard input) counts as small, as every file did before.
    """
    size = file_size(item.source)
    return size == 0 or size <= SMALL_FILE


def gather(inputs: Sequence[Loaded], table: TableSchema) -> pl.LazyFrame | None:
    """Concatenate the trades (or quotes) of several inputs into one lazy frame.

    For many files, pass the inputs through :func:`read_many` first.
    """
    frames = joined(inputs, table)  # files already read: one in-memory frame per run of them
    combined = combine(frames)
    if combined is None or len(frames) == 1:
        return combined
    names = combined.collect_schema().names()
    return combined.select(
        [n for n in table.names if n in names] + [n for n in names if n not in table.names]
    )


def require_rows(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Raise :class:`NoDataError` when a collected result is empty."""
    require_count(df.height, what)
    return df


def require_count(rows: int, what: str) -> int:
    """Raise :class:`NoDataError` when a result (written or collected) has no rows."""
    if rows == 0:
        msg = (
            f"no {what} to analyse (check the inputs and the {{symbols}}/{{start}}/{{end}} filters)"
        )
        raise NoDataError(msg, parameters=("symbols", "start", "end"))
    return rows


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def collect(
    plans: Sequence[pl.LazyFrame],
    inputs: Sequence[Loaded],
    *,
    on_stage: OnStage | None = None,
    stage: str = "computing",
) -> list[pl.DataFrame]:
    """Collect lazy results together (one run over the inputs), naming the file that failed.

    When collection fails (a truncated gzip, a value that does not parse), each input is read
    on its own to find the culprit, so the error names the file instead of only the symptom.
    ``on_stage`` is told when the collection starts and ends, under the name ``stage``.

    Raises
    ------
    ReaderError
        Naming the input that cannot be read.
    MmflowError
        When the failure is not tied to one input.
    """
    report(on_stage, Stage(stage))
    try:
        return pl.collect_all(list(plans))
    except MmflowError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        culprit = unreadable_input(inputs)
        if culprit is not None:
            raise culprit from exc
        raise MmflowError(_first_line(exc)) from exc
    finally:
        report(on_stage, Stage(stage, finished=True))


def unreadable_input(inputs: Sequence[Loaded]) -> ReaderError | None:
    """Read each input on its own, every column and row; the error naming the first that fails.

    A run's failure (a truncated gzip, a value that does not parse, a corrupt parquet page that
    makes polars panic) is only a symptom; this names the file. ``None`` when every input reads.
    """
    for item in inputs:
        for frame in (item.frames.trades, item.frames.quotes):
            if frame is None:
                continue
            try:
                # every column, every row: a count alone would skip parsing the bad cell
                frame.select(pl.all().null_count()).collect()
            except BaseException as inner:
                readable = (pl.exceptions.PolarsError, OSError)
                if not isinstance(inner, readable) and type(inner).__name__ != "PanicException":
                    raise
                msg = (
                    f"cannot read the file to the end ({_first_line(inner)}); "
                    "is it truncated, corrupt, or not in the format detected "
                    f"({item.format.name})?"
                )
                return ReaderError(msg, path=item.source.display)
    return None
