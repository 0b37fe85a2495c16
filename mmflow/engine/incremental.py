"""Incremental runs over a converted dataset (issue 14): compute only new or changed days.

``mmflow analyze DATASET -o RESULTS/ --incremental`` keeps, in ``RESULTS``, the engine's small
per-chunk tables (one chunk per instrument and day) and each chunk's outbound state, with a
manifest of the dataset's partitions (``symbol=…/date=…``) and their fingerprints. A later run

1. lists the partitions and fingerprints their files: size and modification time, and a content
   hash (BLAKE2b of the bytes) computed only for files whose size or time changed, so an
   unchanged dataset costs one ``stat`` per file (a re-run with nothing new is a no-op in well
   under a second, and runs no chunk task);
2. per symbol, finds the earliest new, changed or removed day ``C``, and recomputes every stored
   day whose results can depend on it: the days from ``C`` on, and the day before ``C`` when its
   last trades' cost horizon reaches past ``C``'s midnight (the future-mid overlap) or when its
   trades used the instrument's last quote (which a new day moves);
3. restarts those days from the stored outbound state of the last kept day (tick state, last
   quote, cumulative VPIN volume, trade count) through the engine's own census chain, runs the
   chunk tasks on the chosen executor, and finishes the bar-level metrics over all stored tables;
4. commits atomically: new tables go to a fresh ``store/RUN`` folder, the finished tables and the
   new manifest to ``runs/RUN``, and one ``rename`` of the ``current`` link makes them the
   results; ``bars.parquet``, ``summary.parquet`` and ``manifest.json`` in ``RESULTS`` are links
   through ``current``. A run stopped anywhere before that rename leaves the previous results
   valid (its partial folders are removed by the next run).

**VPIN bucket volume.** A whole run sizes VPIN buckets as the instrument's average daily volume
over the whole input / ``buckets_per_day``, so each new day would change every bucket of the
past, and the stored bucket pieces cannot be re-cut without the trades. Incremental runs
therefore **pin** each instrument's bucket volume when the instrument is first computed (from
the days present then) and keep it: appending a day never re-prices past buckets, and the
result equals a whole run with that bucket volume. Deleting ``RESULTS`` (or changing any
setting) recomputes everything and pins the bucket volume afresh. The manifest records it.

Not supported with ``--incremental`` (a usage error): ``--fill`` (the continuous grid spans the
whole input), ``--session`` (chunks are sessions, not UTC days) and ``--clean taq`` (its rules
look across days).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final

import polars as pl

from mmflow.analysis import Selection, prepare_market
from mmflow.engine.census import (
    DATE,
    UNIT,
    Census,
    instrument_of,
    take_census,
)
from mmflow.engine.chunks import plan_chunks
from mmflow.engine.executors import run_tasks
from mmflow.engine.finish import Finished, FinishedAnalysis, finish_analysis, finish_market
from mmflow.engine.manifest import (
    MANIFEST,
    OUTPUTS,
    TABLES,
    VERSION,
    Partition,
    _check_results,
    _chunk_id,
    _chunk_json,
    _collect_garbage,
    _instrument_id,
    _link,
    _load_manifest,
    _locked,
    _quotes_out,
    _same_files,
    _stored_results,
    _write_store,
    fingerprint,
    list_partitions,
    settings_digest,
)
from mmflow.engine.restart import (
    _day_of,
    _kept_chunks,
    _synthetic_census,
    _unit_of,
    _window_paths,
)
from mmflow.engine.run import run_chunk
from mmflow.engine.state import (
    ChunkResult,
    ChunkTask,
    EngineSettings,
    QuoteState,
    TableSource,
    TradeState,
)
from mmflow.errors import ParameterError
from mmflow.io import ReadOptions, load_inputs
from mmflow.io.assemble import gather, read_many
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import (
    QUOTES,
    SYMBOL,
    TRADES,
    TS,
    VENUE,
)

__all__ = [
    "MANIFEST",
    "TABLES",
    "IncrementalRun",
    "Partition",
    "ReadPartitions",
    "check_incremental",
    "list_partitions",
    "partition_reader",
    "run_incremental",
]

COMPACT_AFTER: Final = 32
"""Stored runs after which a run rewrites every kept table into its own (compaction)."""

ReadPartitions = Callable[[Sequence[Path]], tuple[pl.LazyFrame, pl.LazyFrame | None]]
"""Return prepared, canonical, time-ordered ``(trades, quotes)`` plans of the given partition
files (the command line reads them like any input and applies the selection)."""


@dataclass
class IncrementalRun:
    """What one incremental run did.

    Attributes
    ----------
    computed
        Partitions (``symbol=…/date=…``) whose days were (re)computed.
    unchanged
        Partitions whose stored results were kept.
    removed
        Partitions that disappeared from the dataset.
    tasks
        Chunk tasks run (0 when nothing changed).
    analysis
        The finished tables (``None`` when nothing changed: the stored ones are current).
    outputs
        The result files (``bars``, ``summary``), links in ``RESULTS``.
    seconds
        Wall time of the run.
    """

    computed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    tasks: int = 0
    analysis: FinishedAnalysis | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def nothing_new(self) -> bool:
        """Whether the run found nothing new or changed (and ran no task)."""
        return self.tasks == 0 and not self.computed and not self.removed


def check_incremental(settings: EngineSettings, *, clean: str | None = None) -> None:
    """Refuse settings an incremental run cannot honour (a usage error, exit 2).

    Raises
    ------
    ParameterError
        With ``--fill``, ``--session`` or ``--clean``.
    """
    for flag, used in (
        ("--fill", settings.options.fill),
        ("--session", settings.session),
        ("--clean", clean is not None),
    ):
        if used:
            msg = f"--incremental does not support {flag} (run without --incremental)"
            raise ParameterError(msg)


def partition_reader(selection: Selection, options: ReadOptions | None = None) -> ReadPartitions:
    """Return a :data:`ReadPartitions` reading dataset files like any input, then preparing them.

    The rows are prepared under ``selection`` (:func:`mmflow.analysis.prepare_market`).
    """
    read_options = options or ReadOptions()

    def read(paths: Sequence[Path]) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
        loaded = []
        if paths:
            found = load_inputs([str(p) for p in paths], "auto", read_options)
            loaded = read_many(found.loaded)
        trades = gather(loaded, TRADES)
        quotes = gather(loaded, QUOTES)
        if trades is None:
            empty = {c.name: c.dtype for c in TRADES.columns if c.required}
            trades = pl.LazyFrame(schema=empty)
        prepared_trades, prepared_quotes, _ = prepare_market(trades, quotes, selection)
        return prepared_trades, prepared_quotes

    return read


# --- the run --------------------------------------------------------------------------------------


def run_incremental(
    dataset: Path,
    results: Path,
    settings: EngineSettings,
    *,
    read: ReadPartitions,
    parameters: dict[str, Any],
    phase_parameters: PhaseParameters,
    executor: Callable[[Callable[[ChunkTask], ChunkResult], Sequence[ChunkTask]], Any]
    | None = None,
    metadata: dict[str, str] | None = None,
) -> IncrementalRun:
    """Bring ``results`` up to date with ``dataset``, computing only new or changed days.

    Parameters
    ----------
    dataset
        A converted dataset (``symbol=…/date=…/trades.parquet``, ``quotes.parquet``).
    results
        The results folder (created when missing).
    settings
        The engine settings (``memory_limit`` is not used: one chunk per instrument and day).
    read
        Reads partition files into prepared trades and quotes (:data:`ReadPartitions`).
    parameters
        The run's parameters; when they differ from the stored run's, everything is recomputed.
    phase_parameters
        The phase rule of the analysis.
    executor
        ``executor(run_chunk, tasks)`` (default :func:`mmflow.engine.executors.run_tasks`: the
        active ``--executor``).
    metadata
        Key-value metadata written into the result files.
    """
    started = time.monotonic()
    _check_results(results)
    check_incremental(settings)
    outcome = IncrementalRun()
    digest = settings_digest(parameters)
    with _locked(results):
        manifest = _load_manifest(results)
        if manifest is not None and manifest["settings"] != digest:
            manifest = None  # other settings: recompute everything
        known: dict[str, Any] = manifest["partitions"] if manifest is not None else {}
        partitions = list_partitions(dataset)
        fingerprint(dataset, partitions, known)
        changed = _changed_days(partitions, known, outcome.removed)
        if manifest is not None and not changed:
            outcome.unchanged = sorted(partitions)
            outcome.outputs = {name: results / f"{name}.parquet" for name in OUTPUTS}
            outcome.seconds = time.monotonic() - started
            return outcome
        stored = manifest["chunks"] if manifest is not None else {}
        kept, restart = _kept_chunks(stored, changed, settings)
        recompute = {
            key
            for key, p in partitions.items()
            if p.symbol in restart and p.day >= _day_of(restart[p.symbol])
        }
        outcome.computed = sorted(recompute)
        outcome.unchanged = sorted(set(partitions) - recompute)
        tasks = _plan_tasks(dataset, partitions, recompute, restart, kept, stored, settings, read)
        run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        computed = list((executor or run_tasks)(run_chunk, [t for t, _ in tasks]))
        outcome.tasks = len(computed)
        previous = _stored_results(results, manifest) if manifest is not None else {}
        keep_ids = sorted(kept)
        old_runs = list(manifest["store_runs"]) if manifest is not None else []
        compact = len(old_runs) + 1 > COMPACT_AFTER
        to_write = computed + ([previous[c] for c in keep_ids] if compact else [])
        _write_store(results / "store" / run, run, to_write)
        all_results = [previous[c] for c in keep_ids] + computed
        new_chunks = _chunk_entries(stored, keep_ids, computed, tasks, run, compact=compact)
        analysis = _finish(all_results, new_chunks, settings, phase_parameters)
        outcome.analysis = analysis
        new_manifest = {
            "version": VERSION,
            "run": run,
            "settings": digest,
            "parameters": json.loads(json.dumps(parameters, default=str)),
            "dataset": str(dataset.resolve()),
            "partitions": {
                key: {"symbol": p.symbol, "day": p.day.isoformat(), "files": p.files}
                for key, p in sorted(partitions.items())
            },
            "chunks": new_chunks,
            "store_runs": sorted({entry["run"] for entry in new_chunks.values()}),
            "bucket_volumes": {
                _instrument_id(r.chunk.venue, r.chunk.symbol): r.chunk.bucket_volume
                for r in all_results
            },
        }
        _commit(results, run, analysis, new_manifest, metadata or {})
    outcome.outputs = {name: results / f"{name}.parquet" for name in OUTPUTS}
    outcome.seconds = time.monotonic() - started
    return outcome


def _changed_days(
    partitions: dict[str, Partition], known: dict[str, Any], removed: list[str]
) -> dict[str, date]:
    """Return, per symbol, the earliest new, changed or removed day; append removed keys."""
    changed: dict[str, date] = {}  # symbol → earliest changed day
    for key, partition in partitions.items():
        if _same_files(partition, known.get(key)):
            continue
        first = changed.get(partition.symbol)
        changed[partition.symbol] = min(first, partition.day) if first else partition.day
    for key, entry in known.items():
        if key not in partitions:
            removed.append(key)
            day = date.fromisoformat(entry["day"])
            first = changed.get(entry["symbol"])
            changed[entry["symbol"]] = min(first, day) if first else day
    return changed


def _chunk_entries(
    stored: dict[str, Any],
    keep_ids: list[str],
    computed: list[ChunkResult],
    tasks: list[tuple[ChunkTask, dict[str, Any]]],
    run: str,
    *,
    compact: bool,
) -> dict[str, Any]:
    """Return the new manifest's chunk entries: the kept ones, then the computed ones."""
    new_chunks: dict[str, Any] = {}
    for cid in keep_ids:
        new_chunks[cid] = {**stored[cid], **({"run": run} if compact else {})}
    for result, (_, extra) in zip(computed, tasks, strict=True):
        new_chunks[_chunk_id(result.chunk)] = {
            "chunk": _chunk_json(result.chunk),
            "run": run,
            "unit": extra["unit"],
            "first_trade": extra["first_trade"],
            "last_trade": extra["last_trade"],
            "trade_out": asdict(result.trade_state),
            "quote_out": asdict(result.quote_state),
            "quotes_out": extra["quotes_out"],
        }
    return new_chunks


def _commit(
    results: Path,
    run: str,
    analysis: FinishedAnalysis,
    manifest: dict[str, Any],
    metadata: dict[str, str],
) -> None:
    """Write ``runs/RUN`` (tables, manifest), then make it current by one link rename."""
    folder = results / "runs" / run
    folder.mkdir(parents=True)
    analysis.bars.write_parquet(folder / "bars.parquet", metadata=metadata)
    analysis.summary.write_parquet(folder / "summary.parquet", metadata=metadata)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _sync(folder)
    _link(f"runs/{run}", results / "current")  # the commit
    for name in (*(f"{o}.parquet" for o in OUTPUTS), MANIFEST):
        if not (results / name).is_symlink():
            _link(f"current/{name}", results / name)
    _collect_garbage(results, manifest)


def _sync(folder: Path) -> None:
    """Flush the new run's files to disk before the commit makes them the results."""
    for path in folder.iterdir():
        with path.open("rb") as file:
            os.fsync(file.fileno())


def _plan_tasks(
    dataset: Path,
    partitions: dict[str, Partition],
    recompute: set[str],
    restart: dict[str, int],
    kept: dict[str, Any],
    stored: dict[str, Any],
    settings: EngineSettings,
    read: ReadPartitions,
) -> list[tuple[ChunkTask, dict[str, Any]]]:
    """Census the recomputed days (restarted from the kept state) and make one task per day."""
    if not recompute:
        return []
    census = _census(dataset, partitions, sorted(recompute), restart, settings, read)
    last_kept: dict[tuple[str | None, str], dict[str, Any]] = {}
    for entry in sorted(kept.values(), key=lambda e: e["chunk"]["start"]):
        chunk = entry["chunk"]
        if chunk["symbol"] in restart:
            last_kept[(chunk["venue"], chunk["symbol"])] = {
                "unit": entry["unit"],
                "trade_state": TradeState(**entry["trade_out"]),
                "quotes": {k: QuoteState(**q) for k, q in entry["quotes_out"].items()},
            }
    # only instruments the recomputed days hold: others keep their stored chunks as they are
    present = {instrument_of(r, settings.keys) for r in census.trades.iter_rows(named=True)}
    carried = {i: s for i, s in last_kept.items() if i in present}
    planned = plan_chunks(
        _synthetic_census(census, carried, settings.every_ns),
        every_ns=settings.every_ns,
        memory_limit=0,  # one chunk per instrument and day
        buckets_per_day=settings.options.buckets_per_day,
        fill=False,
        max_bars=settings.options.max_bars,
        every=settings.options.every,
    )
    pinned = {
        (e["chunk"]["venue"], e["chunk"]["symbol"]): e["chunk"]["bucket_volume"]
        for e in stored.values()
    }
    spans = {
        (instrument_of(r, settings.keys), r[UNIT]): (r["first_ts"], r["last_ts"])
        for r in census.trades.iter_rows(named=True)
    }
    quote_rows: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    if census.quotes is not None:
        for r in census.quotes.iter_rows(named=True):  # sorted by keys, unit and date
            quote_rows.setdefault((instrument_of(r, settings.keys), r[UNIT]), []).append(r)
    tasks: list[tuple[ChunkTask, dict[str, Any]]] = []
    for chunk in planned.chunks:
        if chunk.start < restart[chunk.symbol]:
            continue  # the synthetic unit that carried the kept state
        instrument = (chunk.venue, chunk.symbol)
        if instrument in pinned:
            chunk = replace(chunk, bucket_volume=pinned[instrument])
        unit = _unit_of(chunk, settings.every_ns)
        first = _day_of(chunk.start - settings.lag_ns)
        last = _day_of(chunk.end + settings.horizon_ns)
        window = _window_paths(partitions, dataset, chunk.symbol, first, last)
        trade_plan, quote_plan = read(window)
        span = spans.get((instrument, unit), (None, None))
        task = ChunkTask(
            chunk,
            settings,
            TableSource(plan=trade_plan),
            TableSource(plan=quote_plan) if quote_plan is not None else None,
        )
        extra = {
            "unit": unit,
            "first_trade": span[0],
            "last_trade": span[1],
            "quotes_out": _quotes_out(chunk, quote_rows.get((instrument, unit), [])),
        }
        tasks.append((task, extra))
    return tasks


CENSUS_BATCH: Final = 16
"""Partitions read by one census plan: census groups (instrument, chunk-day, UTC date) never
span two partitions, so batches add up to the census of all, in memory bounded by a batch."""


def _census(
    dataset: Path,
    partitions: dict[str, Partition],
    keys: Sequence[str],
    restart: dict[str, int],
    settings: EngineSettings,
    read: ReadPartitions,
) -> Census:
    """Pass 1 over the recomputed partitions (from each symbol's restart), batch by batch."""
    ns = pl.col(TS).dt.cast_time_unit("ns").dt.epoch("ns")
    in_range = pl.lit(False)
    for symbol, start in restart.items():
        in_range |= (pl.col(SYMBOL) == symbol) & (ns >= start)
    trade_parts: list[pl.DataFrame] = []
    quote_parts: list[pl.DataFrame] = []
    for first in range(0, len(keys), CENSUS_BATCH):
        batch = keys[first : first + CENSUS_BATCH]
        paths = [dataset / key / name for key in batch for name in sorted(partitions[key].files)]
        trades, quotes = read(paths)
        part = take_census(
            trades.filter(in_range),
            quotes.filter(in_range) if quotes is not None else None,
            keys=settings.keys,
            every_ns=settings.every_ns,
            session=False,
        )
        trade_parts.append(part.trades)
        if part.quotes is not None:
            quote_parts.append(part.quotes)
    order = [*settings.keys, UNIT, DATE]
    trades_census = pl.concat(trade_parts, how="diagonal_relaxed").sort(order, nulls_last=True)
    quotes_census = (
        pl.concat(quote_parts, how="diagonal_relaxed").sort(order, nulls_last=True)
        if quote_parts
        else None
    )
    return Census(trades_census, quotes_census, settings.keys, False)


def _finish(
    results: list[ChunkResult],
    chunks: dict[str, Any],
    settings: EngineSettings,
    phase_parameters: PhaseParameters,
) -> FinishedAnalysis:
    keys = list(settings.keys)
    quote_counts = None
    if settings.has_quotes:
        rows = [
            {
                **({VENUE: r.chunk.venue} if VENUE in keys else {}),
                SYMBOL: r.chunk.symbol,
                "quotes": r.chunk.quotes,
            }
            for r in results
        ]
        quote_counts = (
            pl.DataFrame(rows, schema={**dict.fromkeys(keys, pl.String), "quotes": pl.Int64})
            .group_by(keys)
            .agg(pl.col("quotes").sum().cast(pl.UInt32))
        )
    finished: Finished = finish_market(results, settings, quote_counts=quote_counts)
    span_rows = [
        {
            **({VENUE: e["chunk"]["venue"]} if VENUE in keys else {}),
            SYMBOL: e["chunk"]["symbol"],
            "start": e["first_trade"],
            "end": e["last_trade"],
        }
        for e in chunks.values()
    ]
    spans = (
        pl.DataFrame(
            span_rows,
            schema={**dict.fromkeys(keys, pl.String), "start": pl.Int64, "end": pl.Int64},
        )
        .group_by(keys)
        .agg(pl.col("start").min(), pl.col("end").max())
        .with_columns(pl.col("start", "end").cast(pl.Datetime("ns", "UTC")))
    )
    return finish_analysis(finished, settings, spans, phase_parameters)
