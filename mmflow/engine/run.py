"""Pass 2 and the local executor: ``run_chunk(task) -> ChunkResult`` and ``run_engine``.

``run_chunk`` is a pure function of its picklable :class:`~mmflow.engine.state.ChunkTask`: it
reads the chunk's trades (and quotes: the chunk's own, those up to ``horizon`` after its end for
the future mid, the inbound last quote prepended), checks their time order (sorting only when
it is broken), makes the chunk's bar grid, and returns the small tables of
:class:`~mmflow.engine.state.ChunkResult` from :func:`mmflow.engine.trades.trade_partials` and
:func:`mmflow.engine.quotes.quote_partials`.

:func:`run_engine` runs the census, plans the chunks, runs the tasks one after another (each
task's polars plan uses every thread; peak memory is set by the largest chunk) and finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from mmflow.engine.census import Census, take_census
from mmflow.engine.chunks import Plan, grid_events, plan_chunks
from mmflow.engine.executors import run_tasks, ships_tasks
from mmflow.engine.finish import (
    COST_COLUMNS,
    FLOW_COLUMNS,
    QUOTE_BAR_COLUMNS,
    Finished,
    finish_market,
)
from mmflow.engine.inputs import PreparedInputs, prepared_inputs
from mmflow.engine.quotes import QuoteCarry, quote_partials
from mmflow.engine.state import (
    Chunk,
    ChunkResult,
    ChunkTask,
    EngineSettings,
    QuoteState,
    TableSource,
    TradePartials,
)
from mmflow.engine.trades import quote_window, trade_partials
from mmflow.metrics.flow import event_grid
from mmflow.schema import ASK_PRICE, ASK_SIZE, BID_PRICE, BID_SIZE, SYMBOL, TS, TS_EVENT, VENUE

if TYPE_CHECKING:
    from mmflow.analysis.options import BarOptions, Signing

__all__ = [
    "EngineRun",
    "Executor",
    "PlannedTasks",
    "PreparedInputs",
    "chunk_quotes",
    "chunk_trades",
    "local_executor",
    "make_settings",
    "plan_tasks",
    "prepared_inputs",
    "run_chunk",
    "run_engine",
    "within",
]


class _TradePartialsFunction(Protocol):
    def __call__(
        self,
        trades: pl.DataFrame,
        quotes: pl.DataFrame | None,
        chunk: Chunk,
        settings: EngineSettings,
        *,
        last_quote_ts: int | None = None,
    ) -> TradePartials: ...


class _QuotePartialsFunction(Protocol):
    def __call__(
        self,
        quotes: pl.DataFrame,
        chunk: Chunk,
        bar_starts: pl.Series | None,
        settings: EngineSettings,
        *,
        carry: QuoteCarry | None = None,
        quotes_after: bool = False,
    ) -> pl.DataFrame: ...


def _trade_partials() -> _TradePartialsFunction:
    """Return the trade pass (a seam: tests put an oracle here)."""
    return trade_partials


def _quote_partials() -> _QuotePartialsFunction:
    """Return the quote pass (a seam: tests put an oracle here)."""
    return quote_partials


TIMESTAMP = pl.Datetime("ns", "UTC")


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by ``ts`` (stable) only when the rows are not already in time order."""
    in_order = frame.height < 2 or frame[TS].is_sorted()
    return frame if in_order else frame.sort(TS, maintain_order=True)


def _state_row(state: QuoteState, quotes: pl.DataFrame, chunk: Chunk) -> pl.DataFrame:
    """Return the inbound last quote as a row of ``quotes``' schema (instrument columns filled)."""
    row = state.frame(dict(quotes.schema))
    if row.height == 0:
        return row
    fills = [pl.lit(chunk.symbol, quotes.schema[SYMBOL]).alias(SYMBOL)]
    if VENUE in quotes.columns:
        fills.append(pl.lit(chunk.venue, quotes.schema[VENUE]).alias(VENUE))
    return row.with_columns(fills).select(quotes.columns)


def _last_quote(quotes: pl.DataFrame, inbound: QuoteState) -> QuoteState:
    """Return the outbound quote state: the chunk's last quote, else the inbound one."""
    if quotes.height == 0:
        return inbound
    row = quotes.row(quotes.height - 1, named=True)
    ts = quotes[TS].dt.cast_time_unit("ns").dt.epoch("ns")[-1]
    event = None
    if TS_EVENT in quotes.columns and row[TS_EVENT] is not None:
        event = quotes[TS_EVENT].dt.cast_time_unit("ns").dt.epoch("ns")[-1]
    return QuoteState(
        ts=int(ts),
        bid_price=row[BID_PRICE],
        bid_size=row[BID_SIZE],
        ask_price=row[ASK_PRICE],
        ask_size=row[ASK_SIZE],
        ts_event=None if event is None else int(event),
    )


def chunk_grid(
    trades: pl.DataFrame, quotes: pl.DataFrame | None, chunk: Chunk, settings: EngineSettings
) -> pl.DataFrame:
    """Return the chunk's bars: today's ``event_grid`` inside ``[start, end)``.

    Per UTC day the bars from the first to the last event's bar (trades and quotes); the
    day-based spans of the whole run restricted to a chunk are the chunk's own spans, since
    chunk edges are bar edges at or after midnight. With ``fill``: every bar between the
    instrument's first and last bar inside the chunk.
    """
    keys = settings.bar_keys
    every = settings.options.every
    if settings.options.fill and not settings.session:
        assert chunk.first_bar is not None
        assert chunk.last_bar is not None
        first = max(chunk.first_bar, chunk.start)
        last = min(chunk.last_bar, chunk.end - settings.every_ns)
        if last < first:
            return pl.DataFrame(schema={**{k: trades.schema[k] for k in keys}, TS: TIMESTAMP})
        starts = pl.int_range(first, last + 1, settings.every_ns, eager=True).cast(TIMESTAMP)
        frame = pl.DataFrame({TS: starts}).with_columns(
            pl.lit(chunk.symbol, pl.String).alias(SYMBOL),
            *([pl.lit(chunk.venue, pl.String).alias(VENUE)] if VENUE in keys else []),
        )
        return frame.select(*keys, pl.col(TS).cast(trades.schema[TS]))
    events = [grid_events(trades, keys, session=settings.session)]  # rows in time order
    if quotes is not None and quotes.height:
        events.append(grid_events(quotes, keys, session=settings.session, dtype=trades[TS].dtype))
    return event_grid(
        pl.concat(events, how="vertical_relaxed").lazy(), every=every, keys=keys
    ).collect()


def within(
    frame: pl.LazyFrame, chunk: Chunk, keys: tuple[str, ...], *, after: int = 0
) -> pl.LazyFrame:
    """Filter ``frame`` to the chunk's instrument and ``start <= ts < end + after``, prunably.

    The same rows as ``instrument_filter`` and :meth:`Chunk.time_filter`, written as plain
    comparisons of ``symbol`` and ``ts`` with literals: polars pushes them into a parquet scan,
    which skips the files of other symbols in a converted dataset (their hive ``symbol=``
    folder) and the row groups (so the files of other days) outside the range by their
    statistics. Nothing is read yet. Sessions (rows go by their label): the instrument only.
    """
    frame = frame.filter(chunk.instrument_filter(keys))
    if chunk.sessions:
        return frame
    first = pl.lit(chunk.start, pl.Int64).cast(TIMESTAMP)
    after_end = pl.lit(chunk.end + after, pl.Int64).cast(TIMESTAMP)
    return frame.filter((pl.col(TS) >= first) & (pl.col(TS) < after_end))


def chunk_trades(task: ChunkTask) -> pl.DataFrame:
    """Read a chunk's own trades, in time order (sorted only when they are not)."""
    keys = task.settings.keys
    scan = within(task.trades.scan(), task.chunk, keys)  # the row filter outside sessions
    own = scan.filter(task.chunk.row_filter(keys)) if task.chunk.sessions else scan
    return _ordered(own.collect())


def chunk_quotes(task: ChunkTask) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Read a chunk's quotes: its own rows, and the context the trade pass matches against.

    The context adds the quotes up to the cost horizon after the chunk and, before it, the
    carried last and last usable quotes (or, with a quote lag, the window before start − lag).
    ``(None, None)`` without quotes.
    """
    if task.quotes is None:
        return None, None
    chunk, settings, keys = task.chunk, task.settings, task.settings.keys
    if settings.lag_ns > 0:
        # The quote prevailing a lag before the chunk comes from before start - lag.
        scan = task.quotes.scan().filter(chunk.instrument_filter(keys))
        window, _ = quote_window(scan, chunk, settings)
        context = _ordered(window.collect())
        return context.filter(chunk.row_filter(keys)), context
    scan = within(task.quotes.scan(), chunk, keys, after=settings.horizon_ns)
    scan = scan.filter(chunk.time_filter(after=settings.horizon_ns)) if chunk.sessions else scan
    around = _ordered(scan.collect())
    before = [
        _state_row(state, around, chunk)
        for state in sorted(
            {chunk.usable_quote_state, chunk.quote_state} - {QuoteState()},
            key=lambda state: state.ts or 0,
        )
    ]
    context = pl.concat([*before, around], how="vertical_relaxed")
    if chunk.sessions:  # else the own rows (ts < end) lead ``around``: a head, not a copy
        return around.filter(chunk.row_filter(keys)), context
    return around.head(around.select(chunk.time_filter().sum()).item()), context


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Compute one chunk's small tables (pure: a function of ``task`` alone).

    Parameters
    ----------
    task
        The chunk, the run's settings and where its rows are.

    Returns
    -------
    ChunkResult
        One row per bar of the chunk (flow, quote, cost columns and Roll), the level table,
        the VPIN bucket pieces, the method mix, the quote checks and the outbound state.
    """
    chunk, settings = task.chunk, task.settings
    keys = settings.keys
    trades = chunk_trades(task)
    own_quotes, context = chunk_quotes(task)
    grid = chunk_grid(trades, own_quotes, chunk, settings)
    partials = _trade_partials()(
        trades, context, chunk, settings, last_quote_ts=chunk.last_quote_ts
    )
    bar_keys = settings.bar_keys
    counts = ("volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow")
    trade_bars = partials.bars.select(
        *bar_keys,
        TS,
        *FLOW_COLUMNS,
        *(c for c in (*COST_COLUMNS, "roll_spread") if c in partials.bars.columns),
    )
    bars = grid.join(trade_bars, on=[*bar_keys, TS], how="left", nulls_equal=True).with_columns(
        pl.col(list(counts)).fill_null(0.0), pl.col("trades").fill_null(0)
    )
    quote_state = chunk.quote_state
    if own_quotes is not None:
        carry = QuoteCarry(
            last=chunk.quote_state,
            valid=chunk.valid_quote_state,
            standing=chunk.standing_quote_state,
        )
        quotes_after = chunk.last_quote_ts is not None and chunk.last_quote_ts >= chunk.end
        quoted = _quote_partials()(
            own_quotes,
            chunk,
            grid[TS].unique().sort(),
            settings,
            carry=carry,
            quotes_after=quotes_after,
        )
        present = [c for c in QUOTE_BAR_COLUMNS if c in quoted.columns]
        # Quote bars are per instrument and bar start (sessions share them), as the whole
        # run joins quote_bars on the instrument and ts.
        bars = bars.join(
            quoted.select(*keys, TS, *present).unique(subset=[*keys, TS], keep="last"),
            on=[*keys, TS],
            how="left",
            nulls_equal=True,
        )
        quote_state = _last_quote(own_quotes, chunk.quote_state)
    for name in (*QUOTE_BAR_COLUMNS, *COST_COLUMNS, "roll_spread"):
        if name not in bars.columns:
            dtype = pl.UInt32 if name == "crossed_quotes" else pl.Float64
            bars = bars.with_columns(pl.lit(None, dtype).alias(name))
    bars = bars.select(
        *bar_keys, TS, *FLOW_COLUMNS, *QUOTE_BAR_COLUMNS, *COST_COLUMNS, "roll_spread"
    ).sort(*bar_keys, TS, nulls_last=True)
    checks = partials.checks.with_columns(
        pl.lit(own_quotes.height if own_quotes is not None else 0, pl.UInt32).alias("quotes")
    )
    return ChunkResult(
        chunk=chunk,
        bars=bars,
        levels=partials.levels,
        buckets=partials.buckets,
        mix=partials.mix,
        checks=checks,
        trade_state=partials.state,
        quote_state=quote_state,
    )


Executor = Callable[
    [Callable[[ChunkTask], ChunkResult], Sequence[ChunkTask]], Iterable[ChunkResult]
]
"""``executor(run_chunk, tasks)`` yields the results (any order): the local executor runs them
one after another; issue 14's Dask executor distributes them."""


def local_executor(
    function: Callable[[ChunkTask], ChunkResult], tasks: Sequence[ChunkTask]
) -> Iterable[ChunkResult]:
    """Run the tasks one after another in this process (each may use every thread)."""
    for task in tasks:
        yield function(task)


def make_settings(
    options: BarOptions,
    signing: Signing,
    *,
    keys: Sequence[str],
    session: bool,
    has_quotes: bool,
    memory_limit: int,
) -> EngineSettings:
    """Build the run's :class:`EngineSettings` (durations validated and in nanoseconds)."""
    from mmflow.durations import duration_nanoseconds

    age = signing.max_quote_age
    return EngineSettings(
        options=options,
        signing=signing,
        keys=tuple(keys),
        session=session,
        has_quotes=has_quotes,
        every_ns=duration_nanoseconds(options.every, what="bar length"),
        horizon_ns=duration_nanoseconds(options.horizon, what="horizon"),
        lag_ns=duration_nanoseconds(signing.lag, what="quote lag"),
        max_quote_age_ns=None if age is None else duration_nanoseconds(age, what="max_quote_age"),
        memory_limit=memory_limit,
    )


@dataclass(frozen=True)
class EngineRun:
    """A finished engine run: the tables, the plan and the census they came from.

    ``finished`` is ``None`` when the run has no chunk (no trades).
    """

    finished: Finished | None
    plan: Plan
    census: Census
    spans: pl.DataFrame
    results: tuple[ChunkResult, ...]
    settings: EngineSettings


def _spans(census: Census) -> pl.DataFrame:
    """Per instrument the first and last trade (``start``, ``end``) in the canonical dtype."""
    keys = list(census.keys)
    return (
        census.trades.group_by(keys)
        .agg(pl.col("first_ts").min().alias("start"), pl.col("last_ts").max().alias("end"))
        .with_columns(pl.col("start", "end").cast(TIMESTAMP))
    )


def _quote_counts(census: Census) -> pl.DataFrame | None:
    if census.quotes is None:
        return None
    keys = list(census.keys)
    return census.quotes.group_by(keys).agg(pl.col("quotes").sum().cast(pl.UInt32))


def run_engine(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    *,
    executor: Executor | None = None,
    in_memory: bool | None = None,
    files: bool | None = None,
) -> EngineRun:
    """Run the census, plan the chunks, run them and finish (prepared canonical inputs).

    Parameters
    ----------
    trades, quotes
        Prepared canonical trades and quotes (:func:`mmflow.analysis.prepare.prepare_market`).
    settings
        The run's settings (:func:`make_settings`); ``memory_limit`` sizes the chunks.
    executor
        How tasks run (default :func:`mmflow.engine.executors.run_tasks`: the executor the
        command line activated, else one after another in this process).
    in_memory
        Read the inputs once into memory and split them by instrument (default: when the
        whole input's estimated memory fits ``memory_limit``); otherwise every chunk scans its
        own rows from the inputs (filter pushdown into the scans). Text inputs (CSV) are
        first parsed once into scratch parquet files (streamed).
    files
        Give every task file sources (paths its worker scans for the chunk's own rows, with
        the chunk's filters pushed into the scan) instead of in-memory frames; default: when
        the tasks go to other processes (:func:`mmflow.engine.executors.ships_tasks`, i.e.
        ``--executor dask``). Inputs that are file scans travel as their (small) lazy plans
        and ``in_memory`` is ignored; inputs whose rows are in this process (read into memory,
        or a Python scan) are written once to scratch parquet files, one per instrument when
        they fit in memory (else one per table, streamed), which the workers read.
        The scratch folder (``TMPDIR``) must be visible to the workers: true for a local
        cluster; for a remote one point ``TMPDIR`` at a shared file system.
    """
    if files is None:
        files = executor is None and ships_tasks()
    with prepared_inputs(trades, quotes, settings, files=files, in_memory=in_memory) as ready:
        return _run(
            ready.trades,
            ready.quotes,
            settings,
            executor,
            in_memory=ready.in_memory,
            spill_to=ready.spill_to,
        )


SPILL_ROW_GROUP = 65_536
"""Rows per row group of the per-instrument scratch files: a task's time filter skips the row
groups outside its chunk (the rows are in time order)."""


def _run(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    executor: Executor | None,
    *,
    in_memory: bool,
    spill_to: Path | None = None,
) -> EngineRun:
    planned = plan_tasks(trades, quotes, settings, in_memory=in_memory, spill_to=spill_to)
    census, plan = planned.census, planned.plan
    if not plan.chunks:
        return EngineRun(None, plan, census, _spans(census), (), settings)
    results = tuple((executor or run_tasks)(run_chunk, planned.tasks))
    finished = finish_market(results, settings, quote_counts=_quote_counts(census))
    return EngineRun(finished, plan, census, _spans(census), results, settings)


@dataclass(frozen=True)
class PlannedTasks:
    """The census of a run, its chunk plan and one task per chunk (:func:`plan_tasks`)."""

    census: Census
    plan: Plan
    tasks: list[ChunkTask]


def plan_tasks(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    *,
    in_memory: bool,
    spill_to: Path | None = None,
    last_unit_state: bool = False,
    shared: bool = False,
) -> PlannedTasks:
    """Run the census, plan the chunks and make their tasks (every engine command's first step).

    Inputs ``in_memory`` are read once and split by instrument (tasks carry the rows, or with
    ``spill_to`` per-instrument scratch files); otherwise each task carries the scans and reads
    only its own rows (:func:`within`), and the census counts them in batches of whole UTC days
    within half ``settings.memory_limit``, so neither holds the input in memory. ``classify``:
    ``last_unit_state`` (census), ``shared`` (limit ÷ instruments; see ``planned_run``).
    """
    options = settings.options
    trade_frame: pl.DataFrame | None = None
    quote_frame: pl.DataFrame | None = None
    if in_memory:
        plans = [trades.lazy()] + ([quotes.lazy()] if quotes is not None else [])
        frames = pl.collect_all(plans)
        trade_frame = frames[0]
        quote_frame = frames[1] if quotes is not None else None
    census = take_census(
        trade_frame.lazy() if trade_frame is not None else trades.lazy(),
        (quote_frame.lazy() if quote_frame is not None else quotes.lazy())
        if quotes is not None
        else None,
        keys=settings.keys,
        every_ns=settings.every_ns,
        session=settings.session,
        # scans are counted in batches of days within half the limit (so the census is not the
        # run's peak; 30 M + 30 M: 3.99 GiB at once, 1.72 GiB by days); rows in memory: at once
        memory_limit=None if in_memory else settings.memory_limit // 2,
        last_unit_state=last_unit_state,  # else chained nowhere: not read
    )
    instruments = census.trades.select(settings.keys).unique().height if shared else 1
    plan = plan_chunks(
        census,
        every_ns=settings.every_ns,
        memory_limit=settings.memory_limit // max(1, instruments),
        buckets_per_day=options.buckets_per_day,
        fill=options.fill,
        max_bars=options.max_bars,
        every=options.every,
    )
    tasks = (
        _tasks(plan, settings, trades, quotes, trade_frame, quote_frame, spill_to)
        if plan.chunks
        else []
    )
    return PlannedTasks(census, plan, tasks)


def _split(frame: pl.DataFrame, keys: Sequence[str]) -> dict[tuple[Any, ...], pl.DataFrame]:
    return {
        tuple(key): part
        for key, part in frame.partition_by(list(keys), as_dict=True, maintain_order=True).items()
    }


def _sources(
    parts: dict[tuple[Any, ...], pl.DataFrame],
    frame: pl.DataFrame,
    spill_to: Path | None,
    name: str,
) -> dict[tuple[Any, ...] | None, TableSource]:
    """Per instrument the task source of its rows (key ``None``: an instrument without rows).

    With ``spill_to`` each instrument's rows are written to a parquet file there and the
    source is its path (workers read it); otherwise the source is the frame itself.
    """
    if spill_to is None:
        sources: dict[tuple[Any, ...] | None, TableSource] = {
            key: TableSource(frame=part) for key, part in parts.items()
        }
        sources[None] = TableSource(frame=frame.clear())
        return sources
    sources = {}
    for index, (key, part) in enumerate([*parts.items(), (None, frame.clear())]):
        path = spill_to / f"{name}-{index}.parquet"
        part.write_parquet(path, row_group_size=SPILL_ROW_GROUP)
        sources[key] = TableSource(paths=(str(path),))
    return sources


SHARED_FRAME_CHUNKS = 8
"""Up to this many chunks, tasks on rows held in memory share the whole frames and each filters
its own rows (one filter over the held rows per chunk, no partitioned copy: the peak holds the
rows once; 10 M + 10 M, 4 chunks: 1.66 GiB); with more, the rows are partitioned by
instrument once (a filter per chunk would read every row each time)."""


def _tasks(
    plan: Plan,
    settings: EngineSettings,
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    trade_frame: pl.DataFrame | None,
    quote_frame: pl.DataFrame | None,
    spill_to: Path | None = None,
) -> list[ChunkTask]:
    keys = settings.keys
    tasks: list[ChunkTask] = []
    if trade_frame is not None and spill_to is None and len(plan.chunks) <= SHARED_FRAME_CHUNKS:
        shared = TableSource(frame=trade_frame)
        shared_quotes = TableSource(frame=quote_frame) if quote_frame is not None else None
        return [ChunkTask(chunk, settings, shared, shared_quotes) for chunk in plan.chunks]
    if trade_frame is not None:
        trade_parts = _split(trade_frame, keys)
        quote_parts = _split(quote_frame, keys) if quote_frame is not None else {}
        trade_sources = _sources(trade_parts, trade_frame, spill_to, "trades")
        quote_sources = (
            _sources(quote_parts, quote_frame, spill_to, "quotes")
            if quote_frame is not None
            else None
        )
        for chunk in plan.chunks:
            key = (chunk.venue, chunk.symbol) if len(keys) == 2 else (chunk.symbol,)
            own = trade_sources.get(key, trade_sources[None])
            quoted = (
                quote_sources.get(key, quote_sources[None]) if quote_sources is not None else None
            )
            tasks.append(ChunkTask(chunk, settings, own, quoted))
        return tasks
    trade_source = TableSource(plan=trades.lazy())
    quote_source = TableSource(plan=quotes.lazy()) if quotes is not None else None
    return [ChunkTask(chunk, settings, trade_source, quote_source) for chunk in plan.chunks]
