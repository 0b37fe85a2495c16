"""Input assembly: read many inputs, concatenate them, collect plans naming the file that fails.

Also the run's row account (:func:`account_of`) and the empty-result check
(:func:`require_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    "held_inputs",
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
    read = _read_now([item for item in pending if _small(item)])
    return [read.get(id(item), item) for item in inputs]


def _read_now(items: Sequence[Loaded]) -> dict[int, Loaded]:
    """Read ``items`` into memory, each file's frames and account in one run (by ``id``).

    Batches of :data:`BATCH` files; a failure names its file (:func:`collect`).
    """
    read: dict[int, Loaded] = {}
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
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
    return read


def held_inputs(inputs: Sequence[Loaded], fits: Callable[[int, int], bool]) -> list[Loaded]:
    """Read the columnar file inputs into memory with their row accounts, when the rows fit.

    A run that holds its rows in memory anyway (the chunked engine, when they fit its memory
    limit) otherwise reads every row several times: once for the readers' row account, once
    to count the rows, once into memory. Here each file's checked frames and its account are
    collected in one run over the file (polars shares the scan), so every later step (the
    selection's account, the engine's row count, census and chunks) works on memory.

    ``fits(trades, quotes)`` says whether that many rows may be held; it is asked with the
    rows the files hold before the checks (from parquet and IPC metadata: no data is read),
    an upper bound of the rows kept. Inputs are returned unchanged when they do not fit, or
    when any file is not a parquet or IPC scan (text is spilled to parquet first,
    :mod:`mmflow.io.spill`; other readers keep their lazy path).
    """
    pending = [item for item in inputs if not item.in_memory]
    if not pending or not all(_columnar(item) for item in pending):
        return list(inputs)
    trades, quotes = _rows_before_checks(pending)
    for item in inputs:
        if item.tables is not None:
            trades += item.tables.trades.height if item.tables.trades is not None else 0
            quotes += item.tables.quotes.height if item.tables.quotes is not None else 0
    if not fits(trades, quotes):
        return list(inputs)
    read = _read_now(pending)
    return [read.get(id(item), item) for item in inputs]


def _unchecked(item: Loaded) -> list[pl.LazyFrame | None]:
    frames = item.unchecked or item.frames
    return [frames.trades, frames.quotes]


def _columnar(item: Loaded) -> bool:
    """Whether every frame of ``item`` scans parquet or IPC files only (cheap to count)."""
    frames = [frame for frame in _unchecked(item) if frame is not None]
    if item.unchecked is None or not frames:
        return False
    for frame in frames:
        plan = frame.explain(optimized=False).lower()
        if "parquet scan" not in plan and "ipc scan" not in plan:
            return False
        if "python scan" in plan or "csv scan" in plan or "json scan" in plan:
            return False
    return True


def _rows_before_checks(items: Sequence[Loaded]) -> tuple[int, int]:
    """Trades and quotes of ``items`` before the plausibility checks (one collect)."""
    plans = [
        (index, frame.select(pl.len()))
        for item in items
        for index, frame in enumerate(_unchecked(item))
        if frame is not None
    ]
    counts = collect([plan for _, plan in plans], items)
    totals = [0, 0]
    for (index, _), count in zip(plans, counts, strict=True):
        totals[index] += int(count.item())
    return totals[0], totals[1]


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
