"""``profile`` on the chunked engine: census → chunks → per-chunk level tables → profile.

The volume profile, the value area and the footprint read only signed trades' price, size and
side per bar (or per day), so a chunk task here signs its trades exactly as
:func:`mmflow.engine.run.run_chunk` does (same rows, same prevailing quotes, same carried tick
state: :func:`mmflow.engine.trades.sign_chunk`) and returns one small table, the **level table**
of the chunk: per bar × price × side (and UTC date, when profiles are per day) the volume
Σ size and the number of trades. Nothing else of the market pass (quote bars, costs, Roll,
VPIN) is computed.

The finish concatenates the chunk tables and hands them, as pre-aggregated trades
(``ts`` = bar start, ``price``, ``size`` = the level's volume, ``trade_sign``, ``trades`` = its
trade count), to the existing :func:`mmflow.metrics.profile.volume_profile`,
:func:`~mmflow.metrics.profile.value_area` and :func:`~mmflow.metrics.profile.footprint` with
``trade_counts="trades"``: a profile row's volume is the sum of the same trades' sizes (in
another order, so equal to float rounding), its trade count the same count; the inferred tick
(smallest gap between distinct prices) and the price range are those of the same distinct
prices, so rows, POC and value area are today's.

The bar of the level table is the footprint's bar when there is one, else one UTC day (the
profile sums over bars; a day bar keeps the table small). With profiles per UTC day the trade's
own date is a key of the table too, so a footprint bar that crosses midnight still splits its
trades by date as the single plan does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl

from mmflow.analysis.options import BarOptions, Signing
from mmflow.engine.census import Census
from mmflow.engine.executors import run_tasks, ships_tasks
from mmflow.engine.run import (
    chunk_quotes,
    chunk_trades,
    make_settings,
    plan_tasks,
    prepared_inputs,
)
from mmflow.engine.state import ChunkTask, EngineSettings
from mmflow.engine.trades import sign_chunk
from mmflow.schema import PRICE, SESSION, SIZE, TRADE_SIGN, TS

__all__ = [
    "DATE",
    "LEVEL_BAR",
    "PlannedRun",
    "ProfileTask",
    "chunk_rows",
    "planned_run",
    "planned_tasks",
    "profile_chunk",
    "profile_levels",
]

DATE = "date"
"""The UTC date column of the level table when profiles are per day (``--by date``)."""
LEVEL_BAR = "1d"
"""The level table's bar without a footprint: one UTC day."""
TRADE_COUNT = "trades"
"""The level table's trade-count column."""


@dataclass(frozen=True)
class ProfileTask:
    """One chunk of a profile run (picklable): the engine task and whether to key by date.

    Attributes
    ----------
    task
        The chunk, settings and row sources (as for :func:`mmflow.engine.run.run_chunk`).
    by_date
        Add the trade's UTC date (``date``) to the level keys.
    """

    task: ChunkTask
    by_date: bool = False


def chunk_rows(task: ChunkTask) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Read a chunk's trades and the quotes signing needs, as :func:`run_chunk` reads them.

    Quotes: from ``lag`` before the chunk to its end (the profile's settings have no cost
    horizon), after the inbound last quote and last usable quote from the census.
    """
    return chunk_trades(task), chunk_quotes(task)[1]


def profile_chunk(job: ProfileTask) -> pl.DataFrame:
    """Return one chunk's level table (pure: a function of ``job`` alone).

    Returns
    -------
    pl.DataFrame
        ``keys…, [session,] ts`` (bar start), ``[date,] price, trade_sign`` (Int8),
        ``size`` (Float64, Σ size), ``trades`` (UInt32, the number of trades), one row per
        bar × price × side (× date) holding trades with a finite price.
    """
    task = job.task
    chunk, settings = task.chunk, task.settings
    trades, quotes = chunk_rows(task)
    has_quotes = quotes is not None and settings.has_quotes
    signed = sign_chunk(
        trades.lazy(), quotes.lazy() if has_quotes and quotes is not None else None, chunk, settings
    )
    sessions = [SESSION] if settings.session else []
    dates = [pl.col(TS).dt.date().alias(DATE)] if job.by_date else []
    instrument = [
        pl.lit(chunk.venue if k == "venue" else chunk.symbol, trades.schema[k]).alias(k)
        for k in settings.keys
    ]
    return (
        signed.filter(pl.col(PRICE).is_finite())
        .group_by(
            *sessions,
            pl.col(TS).dt.truncate(settings.options.every),
            *dates,
            PRICE,
            pl.col(TRADE_SIGN).cast(pl.Int8),
        )
        .agg(
            pl.col(SIZE).sum().cast(pl.Float64).alias(SIZE),
            pl.len().cast(pl.UInt32).alias(TRADE_COUNT),
        )
        .with_columns(instrument)
        .select(
            *settings.bar_keys,
            TS,
            *([DATE] if job.by_date else []),
            PRICE,
            TRADE_SIGN,
            SIZE,
            TRADE_COUNT,
        )
        .sort(*sessions, TS, *([DATE] if job.by_date else []), PRICE, TRADE_SIGN)
        .collect()
    )


def _settings(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    *,
    keys: Sequence[str],
    every: str | None,
    signing: Signing,
    memory_limit: int,
) -> EngineSettings:
    # No trade costs here: a zero horizon reads no quotes after a chunk's end. Bar and bucket
    # counts are not limited (profile rows are bounded by max_levels in the finish).
    options = BarOptions(
        every=every or LEVEL_BAR, horizon="0s", max_bars=None, memory_limit=memory_limit
    )
    return make_settings(
        options,
        signing,
        keys=keys,
        session=SESSION in trades.lazy().collect_schema().names(),
        has_quotes=quotes is not None,
        memory_limit=memory_limit,
    )


def profile_levels(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    *,
    keys: Sequence[str],
    signing: Signing,
    every: str | None,
    by_date: bool,
    memory_limit: int,
    in_memory: bool | None = None,
) -> tuple[pl.DataFrame, int] | None:
    """Run the census, plan the chunks and return the run's level table and chunk count.

    Parameters
    ----------
    trades, quotes
        Prepared canonical trades and quotes (any row order; both with the same instrument
        columns).
    keys
        The instrument columns.
    signing
        How trades are signed (not ``reverse-tick`` or ``bvc``: see :func:`profile_chunk`).
    every
        The footprint's bar length, or ``None`` (one-day bars).
    by_date
        Key the level table by the trade's UTC date too.
    memory_limit
        Bytes one chunk may use (sizes the chunks).
    in_memory
        Read the inputs once and split them by instrument (default: when they fit
        ``memory_limit``), else every chunk scans its rows.

    Returns
    -------
    tuple[pl.DataFrame, int] | None
        The level table (:func:`profile_chunk`, all chunks in instrument and time order) and
        the number of chunks; ``None`` when there are no trades.
    """
    settings = _settings(
        trades, quotes, keys=keys, every=every, signing=signing, memory_limit=memory_limit
    )
    with planned_tasks(trades, quotes, settings, in_memory=in_memory) as tasks:
        if not tasks:
            return None
        jobs = [ProfileTask(task, by_date=by_date) for task in tasks]
        parts = [part for part in run_tasks(profile_chunk, jobs) if part.height]
    if not parts:
        return None
    levels = pl.concat(parts, how="vertical_relaxed").sort(
        [*settings.bar_keys, TS], nulls_last=True
    )
    return levels, len(tasks)


@dataclass(frozen=True)
class PlannedRun:
    """The chunk tasks of a run (instrument, time order) and the census they were planned from."""

    tasks: list[ChunkTask]
    census: Census


@contextmanager
def planned_tasks(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    *,
    in_memory: bool | None = None,
) -> Iterator[list[ChunkTask]]:
    """Run the census and plan the chunks; yield the chunk tasks (see :func:`planned_run`)."""
    with planned_run(trades, quotes, settings, in_memory=in_memory) as planned:
        yield planned.tasks


@contextmanager
def planned_run(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    *,
    in_memory: bool | None = None,
    shared: bool = False,
    last_unit_state: bool = False,
) -> Iterator[PlannedRun]:
    """Run the census and plan the chunks; yield the chunk tasks (in instrument, time order).

    As :func:`mmflow.engine.run.run_engine` does: text inputs are parsed once into scratch
    parquet files (removed when the block ends); inputs that fit ``settings.memory_limit`` are
    read once and split by instrument (``in_memory``, default: by the estimate), otherwise
    every task scans its own rows and the census counts them in batches of days within half
    the limit. No bar or bucket limit is applied. ``shared``: one chunk of every instrument is
    held at once (``classify``'s time-ordered merge), so chunks are planned within the limit
    divided by the number of instruments; ``last_unit_state``: the census keeps the state of
    every unit (the reverse tick chain reads the last one's).
    """
    files = ships_tasks()  # tasks go to other processes: they carry paths or scans, not rows
    with prepared_inputs(trades, quotes, settings, files=files, in_memory=in_memory) as ready:
        planned = plan_tasks(
            ready.trades,
            ready.quotes,
            settings,
            in_memory=ready.in_memory,
            spill_to=ready.spill_to,
            last_unit_state=last_unit_state,
            shared=shared,
        )
        yield PlannedRun(planned.tasks, planned.census)
