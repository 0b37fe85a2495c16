"""``classify`` on the chunked engine: signed trades chunk by chunk, in the single plan's order.

``classify`` writes one row per trade, so the engine's per-bar tables do not fit it. Instead
:class:`ClassifyRun` runs the census and the chunk plan
(:func:`mmflow.engine.profile.planned_run`) and signs one chunk at a time exactly as the market
pass does (:func:`mmflow.engine.trades.sign_chunk`: the inbound tick state and the last quote
from the census), and :func:`classify_chunk` also returns the chunk's method mix and
diagnostics, which the run sums over chunks. Peak memory is set by the chunk (and the merge
buffer, below), not by the input.

**Order.** The single plan's output is the prepared trades sorted by ``ts`` with a stable sort:
time order across instruments, and rows with the same ``ts`` in input order. Chunks hold one
instrument each, so the run numbers the input rows (``_input_row``) and merges the chunks'
rows by ``(ts, _input_row)``: tasks run in order of their start time; after a task, every row
earlier than the next task's start is final (each pending task's rows are at or after its
start) and is emitted. What waits is at most one chunk's rows per instrument.

**Reverse tick.** The reverse tick rule (Hasbrouck 1988; Lee & Ready 1991) signs a trade
against the *next* differing price, so a chunk needs the state of the trades after it: the
first clean price after the chunk and the reverse tick sign of that trade. Both follow from
the census (per instrument and day: the first clean price and the sign of the first non-zero
price change), chained backwards in time (:func:`reverse_states`), as the tick rule's state is
chained forwards. With ``--session`` the rule restarts per session and sessions are whole in a
chunk, so no state is needed.

Not on the engine: ``bvc``, whose output is per bar (σ over every bar), keeps the single plan.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from mmflow.analysis.options import BarOptions, Signing
from mmflow.engine.census import UNIT, Census, instrument_of, unit_edge
from mmflow.engine.chunks import BYTES_PER_QUOTE, BYTES_PER_TRADE
from mmflow.engine.executors import run_tasks
from mmflow.engine.inputs import parses_text
from mmflow.engine.profile import LEVEL_BAR, chunk_rows, planned_run
from mmflow.engine.run import make_settings
from mmflow.engine.state import Chunk, ChunkTask, EngineSettings, TableSource
from mmflow.engine.trades import sign_chunk
from mmflow.metrics.signing import QUOTE_METHODS, SIGN_METHODS
from mmflow.schema import (
    AGGRESSOR_SIDE,
    MID_PRICE,
    PRICE,
    SESSION,
    SIGN_METHOD,
    SIZE,
    SPREAD,
    TRADE_SIGN,
    TS,
    instrument_keys,
)
from mmflow.scratch import make_directory, remove

__all__ = [
    "ROW",
    "ClassifiedChunk",
    "ClassifyRun",
    "ClassifyTask",
    "ClassifyTotals",
    "ReverseState",
    "chunk_diagnostics",
    "classified_chunks",
    "classify_chunk",
    "quote_checks",
    "reverse_states",
    "reverse_tick_sign",
    "sign_rows",
    "state_after",
    "summed_counts",
]

ROW = "_input_row"
"""The input row number the run merges chunks by (ties in ``ts`` keep input order)."""
FULL_READS = 4
"""Most chunks that each read a whole numbered scan instead of a numbered scratch copy."""
TIMESTAMP = pl.Datetime("ns", "UTC")


@dataclass(frozen=True)
class ReverseState:
    """What the trades after a chunk tell the reverse tick rule about the chunk's last trades.

    Attributes
    ----------
    next_price
        The first clean (finite, non-null) price after the chunk; ``None``: none follows.
    next_direction
        The reverse tick sign of that trade (−1, 0, +1).
    """

    next_price: float | None = None
    next_direction: int = 0


@dataclass(frozen=True)
class ClassifyTask:
    """One chunk of a ``classify`` run (picklable).

    Attributes
    ----------
    task
        The chunk, settings and row sources (as for :func:`mmflow.engine.run.run_chunk`).
    columns
        The output columns (those of :func:`mmflow.analysis.signing.classify`'s ``trades``
        that the prepared rows have; ``venue`` is added by the caller when missing).
    reverse
        The reverse tick state after the chunk (``reverse-tick`` only).
    """

    task: ChunkTask
    columns: tuple[str, ...]
    reverse: ReverseState = field(default_factory=ReverseState)


@dataclass(frozen=True)
class ClassifiedChunk:
    """What :func:`classify_chunk` returns for one chunk (picklable).

    Attributes
    ----------
    chunk
        The task's chunk.
    trades
        The chunk's signed trades: the task's columns (and ``_input_row`` when the input rows
        are numbered), in time order (ties in input order).
    mix
        ``keys…, sign_method, trades, volume`` (as :func:`mmflow.metrics.signing.method_mix`
        counts, before the shares).
    diagnostics
        ``keys…, trades, no_quote, …, nan_price`` (the single plan's per-instrument counts).
    """

    chunk: Chunk
    trades: pl.DataFrame
    mix: pl.DataFrame
    diagnostics: pl.DataFrame


@dataclass(frozen=True)
class ClassifyTotals:
    """The run's per-instrument tables, summed over chunks (instrument columns as the keys).

    Attributes
    ----------
    mix
        :func:`mmflow.metrics.signing.method_mix`'s table.
    diagnostics
        :func:`mmflow.analysis.signing.classify`'s ``diagnostics``.
    checks
        ``keys…, trades, quotes, stale_quote, after_last_quote, stale_future_quote`` with
        quotes (as the single plan's ``checks``), else ``None``.
    rows
        Trades signed.
    chunks
        Chunk tasks run.
    """

    mix: pl.DataFrame
    diagnostics: pl.DataFrame
    checks: pl.DataFrame | None
    rows: int
    chunks: int


# --------------------------------------------------------------------------------------------
# Reverse tick with a carried state


def reverse_tick_sign(state: ReverseState | None, over: Sequence[str] = ()) -> pl.Expr:
    """Return the reverse tick sign (Int8) of time-ordered trades, continued from ``state``.

    Equals :func:`mmflow.metrics.classify.reverse_tick_rule` on the backward-filled clean
    price of the whole run (as :func:`mmflow.metrics.signing.sign_trades` applies it):
    D_t = sign(P_t − P_{t+1}), a zero change repeats the next non-zero one, a trade with no
    clean price is 0. ``state`` supplies P_{t+1} for the last trades (the first clean price
    after the chunk) and the next non-zero sign for trailing zero changes. ``None``: no state
    (the rule restarts per ``over`` group, e.g. per session).
    """
    price = pl.col(PRICE).fill_nan(None)
    filled = price.backward_fill()
    following = filled.shift(-1)
    last = 0
    if state is not None:
        last = state.next_direction
        if state.next_price is not None:
            nxt = pl.lit(float(state.next_price), pl.Float64)
            filled = filled.fill_null(nxt)
            following = filled.shift(-1, fill_value=nxt)
    change = (filled - following).sign()
    reverse = (
        pl.when(change != 0)
        .then(change)
        .backward_fill()
        .fill_null(pl.lit(last, pl.Int8))
        .cast(pl.Int8)
    )
    if over:
        reverse = reverse.over(list(over))
    return pl.when(price.is_null()).then(pl.lit(0, pl.Int8)).otherwise(reverse)


ReverseEdges = list[tuple[int, ReverseState]]
"""Per instrument ``(unit start, reverse state of the rows at or after it)``, ascending."""


def reverse_states(census: Census, every_ns: int) -> dict[tuple[str | None, str], ReverseEdges]:
    """Return, per instrument, the reverse tick state entering each unit from later in time.

    The census rows (per instrument, unit and UTC date: first clean price, sign of the first
    non-zero price change) are folded backwards in time. Per instrument the result lists
    ``(edge, state)`` ascending, ``edge`` being a unit's start (ns) and ``state`` that of the
    rows at or after it; :func:`state_after` looks a chunk's up.
    """
    keys = census.keys
    by_instrument: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for row in census.trades.iter_rows(named=True):
        by_instrument.setdefault(instrument_of(row, keys), []).append(row)
    out: dict[tuple[str | None, str], ReverseEdges] = {}
    for instrument, rows in by_instrument.items():
        state = ReverseState()
        edges: dict[int, ReverseState] = {}
        for row in reversed(rows):  # rows are sorted by unit, then date
            first = row["first_price"]
            if first is not None:
                if row["first_direction"] is not None:
                    direction = -int(row["first_direction"])
                elif state.next_price is not None and state.next_price != first:
                    direction = 1 if first > state.next_price else -1
                else:
                    direction = state.next_direction
                state = ReverseState(float(first), direction)
            edges[unit_edge(int(row[UNIT]), every_ns)] = state  # the unit's first row wins
        out[instrument] = sorted(edges.items())
    return out


def state_after(edges: ReverseEdges, end: int) -> ReverseState:
    """Return the reverse tick state of the rows at or after ``end`` (ns)."""
    index = bisect_left([edge for edge, _ in edges], end)
    return edges[index][1] if index < len(edges) else ReverseState()


# --------------------------------------------------------------------------------------------
# One chunk


def chunk_diagnostics(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Return the single plan's per-instrument diagnostics of signed rows (counts)."""
    from mmflow.analysis.signing import _quote_diagnostics

    return frame.group_by(keys).agg(
        pl.len().alias("trades"),
        *_quote_diagnostics(frame.columns),
        pl.col(PRICE).is_nan().sum().alias("nan_price"),
    )


def sign_rows(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    chunk: Chunk,
    settings: EngineSettings,
    reverse: ReverseState,
) -> pl.LazyFrame:
    """Sign a chunk's rows by ``settings.signing.method`` with the carried states."""
    if settings.signing.method != "reverse-tick":
        return sign_chunk(
            trades.lazy(), quotes.lazy() if quotes is not None else None, chunk, settings
        )
    sessions = [SESSION] if settings.session else []
    sign = reverse_tick_sign(None if sessions else reverse, sessions)
    return (
        trades.lazy()
        .with_columns(sign.alias(TRADE_SIGN))
        .with_columns(
            pl.when(pl.col(TRADE_SIGN) != 0)
            .then(pl.lit("reverse_tick"))
            .otherwise(pl.lit("none"))
            .cast(SIGN_METHODS)
            .alias(SIGN_METHOD)
        )
    )


def classify_chunk(job: ClassifyTask) -> ClassifiedChunk:
    """Sign one chunk's trades and count them (pure: a function of ``job`` alone)."""
    task = job.task
    trades, quotes = chunk_rows(task)
    frame = sign_rows(trades, quotes, task.chunk, task.settings, job.reverse).collect()
    keys = list(task.settings.keys)
    mix = (
        frame.group_by(*keys, SIGN_METHOD)
        .agg(pl.len().cast(pl.UInt32).alias("trades"), pl.col(SIZE).sum().alias("volume"))
        .with_columns(pl.col(SIGN_METHOD).cast(pl.String))
    )
    columns = [*job.columns, *([ROW] if ROW in frame.columns else [])]
    return ClassifiedChunk(task.chunk, frame.select(columns), mix, chunk_diagnostics(frame, keys))


# --------------------------------------------------------------------------------------------
# The run: tasks in start order, rows merged by (ts, input row)


def _ns(frame: pl.DataFrame) -> pl.Series:
    return frame[TS].dt.cast_time_unit("ns").dt.epoch("ns")


def merge_in_time(
    results: Iterable[ClassifiedChunk], starts: Sequence[int]
) -> Iterator[pl.DataFrame]:
    """Merge chunk results (in the order of ``starts``, ascending) into ``(ts, row)`` order.

    After result ``i`` every held row earlier than ``starts[i + 1]`` is final: each pending
    chunk's rows are at or after its start. Each held frame is in ``(ts, row)`` order, so the
    final rows are a prefix of each; only those are merged (:func:`_merged`), once.
    """
    held: list[pl.DataFrame] = []
    for index, result in enumerate(results):
        if result.trades.height:
            held.append(result.trades)
        if not held:
            continue
        if index + 1 < len(starts):
            bound = starts[index + 1]
            cuts = [int((_ns(part) < bound).sum()) for part in held]
        else:
            cuts = [part.height for part in held]
        ready = [part.head(cut) for part, cut in zip(held, cuts, strict=True) if cut]
        held = [part.slice(cut) for part, cut in zip(held, cuts, strict=True) if cut < part.height]
        if ready:
            yield ready[0] if len(ready) == 1 else _merged(ready)


def _merged(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Return the rows of ``parts`` (each in ``(ts, row)`` order) in ``(ts, row)`` order.

    Cheaper than a sort by both keys: an argsort of the (unique) row numbers, then a stable
    argsort of those rows' times unless already sorted; every column is gathered once.
    """
    rows = pl.concat(parts)
    if ROW not in rows.columns:
        return rows.sort(TS, maintain_order=True)
    order = rows[ROW].arg_sort()
    times = _ns(rows).gather(order)
    if not times.is_sorted():
        stable = times.to_frame().select(pl.arg_sort_by(times.name, maintain_order=True))
        order = order.gather(stable.to_series())
    return rows[order]


def summed_counts(
    parts: Sequence[pl.DataFrame], keys: list[str], schema: pl.Schema | None = None
) -> pl.DataFrame:
    """Sum per-chunk count tables per instrument (sorted by instrument)."""
    if not parts:
        return pl.DataFrame(schema=schema)
    frame = pl.concat(parts, how="vertical_relaxed")
    counts = [c for c in frame.columns if c not in keys]
    return frame.group_by(keys).agg(pl.col(counts).sum()).sort(keys, nulls_last=True)


class ClassifyRun:
    """One ``classify`` run on the engine over prepared trades (and quotes).

    :meth:`frames` signs chunk by chunk and yields the signed trades in the single plan's order
    (bounded memory); :meth:`totals` then gives the method mix, diagnostics and quote checks
    summed over the chunks (or runs the chunks without keeping their rows, when
    :meth:`frames` was not consumed).

    Parameters
    ----------
    trades, quotes
        Prepared canonical trades and quotes in input order
        (:func:`mmflow.analysis.prepare.prepare_market` with ``ordered=False``).
    signing
        How trades are signed (not ``bvc``).
    columns
        The output columns (the single plan's, without a missing ``venue``).
    memory_limit
        Bytes one chunk may use (sizes the chunks).
    every
        The unit bar (chunk edges are its multiples): one day by default.
    in_memory
        Read the inputs once and split them by instrument (default: when they fit).
    """

    def __init__(
        self,
        trades: pl.LazyFrame | pl.DataFrame,
        quotes: pl.LazyFrame | pl.DataFrame | None,
        *,
        signing: Signing,
        columns: Sequence[str],
        memory_limit: int,
        every: str = LEVEL_BAR,
        in_memory: bool | None = None,
    ) -> None:
        names = trades.lazy().collect_schema().names()
        self.keys = instrument_keys(names)
        self.columns = tuple(columns)
        self.needs_quotes = signing.method in (*QUOTE_METHODS, "auto")
        options = BarOptions(every=every, horizon="0s", max_bars=None, memory_limit=memory_limit)
        self.settings = make_settings(
            options,
            signing,
            keys=self.keys,
            session=SESSION in names,
            has_quotes=quotes is not None,
            memory_limit=memory_limit,
        )
        self.trades = trades
        self.quotes = quotes
        self.in_memory = in_memory
        self._totals: ClassifyTotals | None = None

    def frames(self) -> Generator[pl.DataFrame]:
        """Yield the signed trades in the single plan's order (output columns only)."""
        return self._run(keep=True)

    def totals(self) -> ClassifyTotals:
        """Return the summed tables (running the chunks first when :meth:`frames` did not)."""
        if self._totals is None:
            for _ in self._run(keep=False):
                pass
        assert self._totals is not None
        return self._totals

    def _fits(self) -> bool:
        """Whether the inputs' estimated memory fits the limit (then they are read at once)."""
        if self.in_memory is not None:
            return self.in_memory
        if isinstance(self.trades, pl.DataFrame):
            return True
        frames = [self.trades] + ([self.quotes] if self.quotes is not None else [])
        counts = pl.collect_all([frame.lazy().select(pl.len()) for frame in frames])
        estimate = counts[0].item() * BYTES_PER_TRADE
        if len(counts) > 1:
            estimate += counts[1].item() * BYTES_PER_QUOTE
        return bool(estimate <= self.settings.memory_limit)

    @contextmanager
    def _numbered_source(self, chunks: int) -> Iterator[TableSource]:
        """Yield where tasks read the numbered trades of a scan (not read into memory).

        A row number stops polars from pushing a chunk's filters into a scan, so each task
        would read every row: with at most :data:`FULL_READS` chunks (and no text to parse)
        that is cheaper than a copy; otherwise the numbered rows are written once (streamed) to
        scratch parquet files, one per instrument, whose scans take the filters again (a
        chunk's instrument filter skips the other instruments' files by their statistics).
        """
        numbered = self.trades.lazy().with_row_index(ROW)
        if chunks <= FULL_READS and not parses_text(numbered):
            yield TableSource(plan=numbered)
            return
        scratch = Path(make_directory(".mmflow-classify-"))
        try:
            numbered.sink_parquet(
                pl.PartitionBy(scratch, key=list(self.keys), include_key=True), mkdir=True
            )
            files = sorted(str(path) for path in scratch.rglob("*.parquet"))
            yield TableSource(plan=pl.scan_parquet(files, hive_partitioning=False))
        finally:
            remove(scratch)

    def _run(self, *, keep: bool) -> Generator[pl.DataFrame]:
        settings = self.settings
        fits = self._fits()
        trades = self.trades
        if keep and fits:  # rows read at once: numbered as they are read
            trades = trades.lazy().with_row_index(ROW)
        mixes: list[pl.DataFrame] = []
        diagnostics: list[pl.DataFrame] = []
        rows = 0
        with ExitStack() as stack:
            planned = stack.enter_context(
                planned_run(
                    trades,
                    self.quotes,
                    settings,
                    in_memory=fits,
                    shared=keep,
                    last_unit_state=settings.signing.method == "reverse-tick",
                )
            )
            tasks = planned.tasks
            if keep and not fits:
                source = stack.enter_context(self._numbered_source(len(tasks)))
                tasks = [replace(task, trades=source) for task in tasks]
            jobs = self.jobs(tasks, planned.census)
            starts = [job.task.chunk.start for job in jobs]

            def counted(results: Iterable[ClassifiedChunk]) -> Iterator[ClassifiedChunk]:
                nonlocal rows
                for result in results:
                    mixes.append(result.mix)
                    diagnostics.append(result.diagnostics)
                    rows += result.trades.height
                    yield result if keep else replace(result, trades=result.trades.clear())

            for frame in merge_in_time(counted(run_tasks(classify_chunk, jobs)), starts):
                yield frame.select(self.columns)
            self._totals = self._summed(mixes, diagnostics, planned.census, rows, len(jobs))

    def jobs(self, tasks: list[ChunkTask], census: Census) -> list[ClassifyTask]:
        """Return the tasks in start order (ties: instrument order), with reverse tick states."""
        settings = self.settings
        reverse = (
            reverse_states(census, settings.every_ns)
            if settings.signing.method == "reverse-tick" and not settings.session
            else {}
        )
        jobs = []
        for _, task in sorted(enumerate(tasks), key=lambda pair: (pair[1].chunk.start, pair[0])):
            chunk = task.chunk
            state = state_after(reverse.get(chunk.instrument, []), chunk.end)
            if not self.needs_quotes and task.quotes is not None:
                task = replace(task, quotes=None)  # signing reads no quote: none is read
            jobs.append(ClassifyTask(task, self.columns, state))
        return jobs

    def _summed(
        self,
        mixes: list[pl.DataFrame],
        diagnostics: list[pl.DataFrame],
        census: Census,
        rows: int,
        chunks: int,
    ) -> ClassifyTotals:
        from mmflow.analysis.signing import _QUOTE_DIAGNOSTICS
        from mmflow.engine.finish import _mix

        keys = list(self.keys)
        mix = _mix(pl.concat(mixes, how="vertical_relaxed") if mixes else pl.DataFrame(), keys)
        count = pl.UInt32
        schema = pl.Schema(
            {
                **dict.fromkeys(keys, pl.String),
                "trades": count,
                **dict.fromkeys(_QUOTE_DIAGNOSTICS, count),
                "nan_price": count,
            }
        )
        summed = summed_counts(diagnostics, keys, schema)
        checks = None
        if self.quotes is not None:
            checks = quote_checks(summed, census, keys)
        return ClassifyTotals(mix, summed, checks, rows, chunks)


def quote_checks(diagnostics: pl.DataFrame, census: Census, keys: list[str]) -> pl.DataFrame:
    """Return the single plan's quote checks: trades and quotes per instrument, zero counts."""
    trades = diagnostics.select(*keys, pl.col("trades").cast(pl.UInt32))
    assert census.quotes is not None
    quoted = census.quotes.group_by(keys).agg(pl.col("quotes").sum().cast(pl.UInt32))
    out = trades.join(quoted, on=keys, how="full", coalesce=True, nulls_equal=True)
    zero = pl.lit(0, pl.UInt32)
    return out.select(
        *keys,
        pl.col("trades").fill_null(0),
        pl.col("quotes").fill_null(0),
        zero.alias("stale_quote"),
        zero.alias("after_last_quote"),
        zero.alias("stale_future_quote"),
    )


def classified_chunks(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    *,
    keys: Sequence[str],
    signing: Signing,
    memory_limit: int,
    in_memory: bool | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the signed trades chunk by chunk (in order of chunk start; rows in time order).

    Columns as :func:`mmflow.analysis.signing.classify`'s ``trades`` (``venue`` only when the
    inputs have one). :class:`ClassifyRun` gives the rows in the single plan's order.
    """
    columns = [TS, *keys, PRICE, SIZE, AGGRESSOR_SIDE, TRADE_SIGN, SIGN_METHOD]
    if signing.method in (*QUOTE_METHODS, "auto"):
        columns += [MID_PRICE, SPREAD]
    run = ClassifyRun(trades, quotes, signing=signing, columns=columns, memory_limit=memory_limit)
    reverse = signing.method == "reverse-tick"
    with planned_run(
        trades, quotes, run.settings, in_memory=in_memory, last_unit_state=reverse
    ) as planned:
        for result in run_tasks(classify_chunk, run.jobs(planned.tasks, planned.census)):
            yield result.trades
