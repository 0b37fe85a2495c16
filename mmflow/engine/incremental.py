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

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import polars as pl

from mmflow.analysis import Selection, prepare_market
from mmflow.engine.census import (
    DATE,
    QUOTE_KINDS,
    UNIT,
    Census,
    instrument_of,
    take_census,
    unit_edge,
)
from mmflow.engine.chunks import plan_chunks
from mmflow.engine.executors import run_tasks
from mmflow.engine.finish import Finished, FinishedAnalysis, finish_analysis, finish_market
from mmflow.engine.run import run_chunk
from mmflow.engine.state import (
    NS_PER_DAY,
    Chunk,
    ChunkResult,
    ChunkTask,
    EngineSettings,
    QuoteState,
    TableSource,
    TradeState,
)
from mmflow.errors import MmflowError, ParameterError
from mmflow.io import ReadOptions, load_inputs
from mmflow.io.assemble import gather, read_many
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
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

MANIFEST: Final = "manifest.json"
VERSION: Final = 1
TABLES: Final = ("bars", "levels", "buckets", "mix", "checks")
"""The chunk tables stored per run (with a ``_chunk`` column naming the chunk)."""
OUTPUTS: Final = ("bars", "summary")
"""The finished tables in ``RESULTS`` (``bars.parquet``, ``summary.parquet``)."""
CHUNK_ID: Final = "_chunk"
RUN_ID: Final = "_run"
COMPACT_AFTER: Final = 32
"""Stored runs after which a run rewrites every kept table into its own (compaction)."""
_SUFFIXES: Final = (".parquet", ".arrow", ".ipc", ".feather")

ReadPartitions = Callable[[Sequence[Path]], tuple[pl.LazyFrame, pl.LazyFrame | None]]
"""Return prepared, canonical, time-ordered ``(trades, quotes)`` plans of the given partition
files (the command line reads them like any input and applies the selection)."""


@dataclass(frozen=True)
class Partition:
    """One ``symbol=…/date=…`` folder of a converted dataset.

    Attributes
    ----------
    key
        Its path relative to the dataset (``symbol=AAA/date=2024-06-01``).
    symbol, day
        The symbol and the UTC date it holds.
    files
        ``{file name: [size, mtime_ns, digest]}`` (digest ``""`` until hashed).
    """

    key: str
    symbol: str
    day: date
    files: dict[str, list[Any]]


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


# --- the dataset's partitions and their fingerprints ---------------------------------------------


def list_partitions(dataset: Path) -> dict[str, Partition]:
    """List ``DATASET/symbol=…/date=…/`` and ``stat`` their table files (no file is read).

    Raises
    ------
    MmflowError
        When ``dataset`` is not a converted dataset (no ``symbol=…/date=…`` folder).
    """
    found: dict[str, Partition] = {}
    if not dataset.is_dir():
        msg = f"{dataset}: not a folder (--incremental reads a dataset made by mmflow convert)"
        raise MmflowError(msg)
    with os.scandir(dataset) as symbols:
        for symbol_entry in symbols:
            if not (symbol_entry.is_dir() and symbol_entry.name.startswith(f"{SYMBOL}=")):
                continue
            symbol = unquote(symbol_entry.name[len(SYMBOL) + 1 :])
            with os.scandir(symbol_entry.path) as days:
                for day_entry in days:
                    if not (day_entry.is_dir() and day_entry.name.startswith("date=")):
                        continue
                    try:
                        day = date.fromisoformat(day_entry.name[len("date=") :])
                    except ValueError:
                        continue
                    files: dict[str, list[Any]] = {}
                    with os.scandir(day_entry.path) as entries:
                        for entry in entries:
                            if entry.is_file() and entry.name.endswith(_SUFFIXES):
                                stat = entry.stat()
                                files[entry.name] = [stat.st_size, stat.st_mtime_ns, ""]
                    if files:
                        key = f"{symbol_entry.name}/{day_entry.name}"
                        found[key] = Partition(key, symbol, day, files)
    if not found:
        msg = (
            f"{dataset}: no symbol=…/date=… partitions (--incremental reads a dataset made by "
            "mmflow convert)"
        )
        raise MmflowError(msg)
    return found


def _digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "blake2b").hexdigest()[:32]


def fingerprint(dataset: Path, partitions: dict[str, Partition], known: dict[str, Any]) -> None:
    """Fill each file's digest: the known one when size and time match, else hash the bytes."""
    for key, partition in partitions.items():
        before = known.get(key, {}).get("files", {})
        for name, (size, mtime, _) in partition.files.items():
            old = before.get(name)
            if old is not None and old[0] == size and old[1] == mtime:
                partition.files[name][2] = old[2]
            else:
                partition.files[name][2] = _digest(dataset / key / name)


def _same_files(partition: Partition, known: dict[str, Any] | None) -> bool:
    if known is None:
        return False
    return {n: f[2] for n, f in partition.files.items()} == {
        n: f[2] for n, f in known["files"].items()
    }


# --- JSON of chunks and states ------------------------------------------------------------


def _chunk_json(chunk: Chunk) -> dict[str, Any]:
    data = asdict(chunk)
    data["days"] = [d.isoformat() for d in chunk.days]
    data["sessions"] = []
    return data


def _chunk_from(data: dict[str, Any]) -> Chunk:
    values = dict(data)
    values["days"] = tuple(date.fromisoformat(d) for d in data["days"])
    values["sessions"] = ()
    values["trade_state"] = TradeState(**data["trade_state"])
    for name in _QUOTE_FIELDS.values():
        values[name] = QuoteState(**data[name])
    return Chunk(**values)


_QUOTE_FIELDS: Final = {
    "last": "quote_state",
    "valid": "valid_quote_state",
    "standing": "standing_quote_state",
    "usable": "usable_quote_state",
}
"""The chunk's inbound quote state of each kind of :data:`mmflow.engine.census.QUOTE_KINDS`."""


def _quotes_out(chunk: Chunk, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the chunk's outbound last quote of each kind: its census rows over its inbound.

    The same step as the census chain (:func:`mmflow.engine.census.chain`) takes per unit.
    """
    quotes = {kind: getattr(chunk, name) for kind, name in _QUOTE_FIELDS.items()}
    for row in rows:  # in date order
        for kind in QUOTE_KINDS:
            if row.get(f"q_{kind}_ts") is not None:
                quotes[kind] = QuoteState(
                    ts=int(row[f"q_{kind}_ts"]),
                    bid_price=row[f"q_{kind}_{BID_PRICE}"],
                    bid_size=row[f"q_{kind}_{BID_SIZE}"],
                    ask_price=row[f"q_{kind}_{ASK_PRICE}"],
                    ask_size=row[f"q_{kind}_{ASK_SIZE}"],
                    ts_event=row.get(f"q_{kind}_ts_event"),
                )
    return {kind: asdict(state) for kind, state in quotes.items()}


def _chunk_id(chunk: Chunk) -> str:
    return f"{quote(chunk.venue or '', safe='')}|{quote(chunk.symbol, safe='')}|{chunk.start}"


def _instrument_id(venue: str | None, symbol: str) -> str:
    return f"{quote(venue or '', safe='')}|{quote(symbol, safe='')}"


def settings_digest(parameters: dict[str, Any]) -> str:
    """Return a digest of the run's parameters (any change recomputes everything)."""
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# --- the results folder -------------------------------------------------------------------


def _load_manifest(results: Path) -> dict[str, Any] | None:
    path = results / "current" / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("version") == VERSION else None


def _check_results(results: Path) -> None:
    if results.exists() and not results.is_dir():
        msg = f"{results}: exists and is not a folder (give -o a folder for --incremental)"
        raise ParameterError(msg)
    if results.is_dir() and not (results / "current").exists():
        ours = {"runs", "store", ".lock", *(f"{name}.parquet" for name in OUTPUTS), MANIFEST}
        strangers = [p.name for p in results.iterdir() if p.name not in ours]
        if strangers:
            msg = (
                f"{results}: not an mmflow results folder (it holds {strangers[0]}); give "
                "--incremental an empty or new folder"
            )
            raise ParameterError(msg)


@contextlib.contextmanager
def _locked(results: Path) -> Iterator[None]:
    results.mkdir(parents=True, exist_ok=True)
    with (results / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            msg = f"{results}: another incremental run is writing here (wait for it to end)"
            raise MmflowError(msg) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _link(target: str, link: Path) -> None:
    """Point ``link`` at ``target`` atomically (a new link renamed over the old one)."""
    temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex}")
    temporary.symlink_to(target)
    temporary.replace(link)


def _collect_garbage(results: Path, manifest: dict[str, Any]) -> None:
    live_runs = {manifest["run"]}
    live_store = set(manifest["store_runs"])
    for folder, live in (("runs", live_runs), ("store", live_store)):
        root = results / folder
        if root.is_dir():
            for entry in root.iterdir():
                if entry.name not in live:
                    shutil.rmtree(entry, ignore_errors=True)


# --- the run --------------------------------------------------------------------------------------


def _window_paths(
    partitions: dict[str, Partition], dataset: Path, symbol: str, first: date, last: date
) -> list[Path]:
    paths: list[Path] = []
    day = first
    prefix = f"{SYMBOL}={quote(symbol, safe='')}"
    while day <= last:
        key = f"{prefix}/date={day.isoformat()}"
        partition = partitions.get(key)
        if partition is None:  # the symbol folder may be encoded differently: look it up
            partition = next(
                (p for p in partitions.values() if p.symbol == symbol and p.day == day), None
            )
        if partition is not None:
            paths += [dataset / partition.key / name for name in sorted(partition.files)]
        day += timedelta(days=1)
    return paths


def _day_of(ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ns // NS_PER_DAY)


def _synthetic_census(
    census: Census, kept: dict[tuple[str | None, str], dict[str, Any]], every_ns: int
) -> Census:
    """Prepend one census row per instrument that carries its kept history's state.

    The engine's own chain then restarts each instrument from the stored outbound state
    exactly (tick state, last quote, cumulative VPIN volume and trade count); the row's chunk
    (before the recomputed range) is dropped after planning.
    """
    keys = census.keys
    trade_rows, quote_rows = [], []
    for (venue, symbol), stored in kept.items():
        trade: TradeState = stored["trade_state"]
        unit = int(stored["unit"])
        ts = unit_edge(unit + 1, every_ns) - 1
        base: dict[str, Any] = {SYMBOL: symbol}
        if VENUE in keys:
            base[VENUE] = venue
        trade_rows.append(
            {
                **base,
                UNIT: unit,
                DATE: _day_of(ts),
                "trades": trade.trades,
                "volume": trade.cumulative_volume,
                "bucket_trades": 0,
                "first_ts": ts,
                "last_ts": ts,
                "first_price": trade.last_price,
                "last_price": trade.last_price,
                "last_direction": trade.last_direction or None,
            }
        )
        present = {k: q for k, q in stored["quotes"].items() if q.present}
        if census.quotes is not None and present:
            last = max(q.ts for q in present.values() if q.ts is not None)
            row: dict[str, Any] = {
                **base,
                UNIT: unit,
                DATE: _day_of(ts),
                "quotes": 0,
                "first_ts": last,
                "last_ts": last,
            }
            for kind, state in present.items():
                row[f"q_{kind}_ts"] = state.ts
                for column in (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE):
                    row[f"q_{kind}_{column}"] = getattr(state, column)
                if f"q_{kind}_ts_event" in census.quotes.columns:
                    row[f"q_{kind}_ts_event"] = state.ts_event
            quote_rows.append(row)
    if not trade_rows:
        return census

    def prepend(rows: list[dict[str, Any]], frame: pl.DataFrame) -> pl.DataFrame:
        if not rows:
            return frame
        extra = pl.DataFrame(rows, schema=frame.schema)
        return pl.concat([extra, frame]).sort(*keys, UNIT, DATE, nulls_last=True)

    return Census(
        prepend(trade_rows, census.trades),
        prepend(quote_rows, census.quotes) if census.quotes is not None else None,
        keys,
        census.session,
    )


def _stored_results(results: Path, manifest: dict[str, Any]) -> dict[str, ChunkResult]:
    """Load every stored chunk's tables, by chunk id (a chunk without rows gets none)."""
    chunks = {cid: _chunk_from(entry["chunk"]) for cid, entry in manifest["chunks"].items()}
    live_keys = [f"{cid}@{entry['run']}" for cid, entry in manifest["chunks"].items()]
    by_table: dict[str, dict[str, pl.DataFrame]] = {}
    empty: dict[str, pl.DataFrame] = {}
    for table in TABLES:
        files = [results / "store" / run / f"{table}.parquet" for run in manifest["store_runs"]]
        frame = pl.concat([pl.read_parquet(f) for f in files if f.exists()], how="diagonal_relaxed")
        live = frame.filter(
            pl.concat_str(pl.col(CHUNK_ID), pl.lit("@"), pl.col(RUN_ID)).is_in(live_keys)
        ).drop(RUN_ID)
        empty[table] = live.clear().drop(CHUNK_ID)
        by_table[table] = {
            str(key[0]): part.drop(CHUNK_ID)
            for key, part in live.partition_by(CHUNK_ID, as_dict=True, maintain_order=True).items()
        }
    out: dict[str, ChunkResult] = {}
    for cid, chunk in chunks.items():
        entry = manifest["chunks"][cid]
        tables = {t: by_table[t].get(cid, empty[t]) for t in TABLES}
        out[cid] = ChunkResult(
            chunk=chunk,
            bars=tables["bars"],
            levels=tables["levels"],
            buckets=tables["buckets"],
            mix=tables["mix"],
            checks=tables["checks"],
            trade_state=TradeState(**entry["trade_out"]),
            quote_state=QuoteState(**entry["quote_out"]),
        )
    return out


def _write_store(folder: Path, run: str, results: Iterable[ChunkResult]) -> None:
    """Write the chunk tables of ``results``: one file per table, chunk and run named."""
    listed = list(results)
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        frames = [
            getattr(r, table).with_columns(
                pl.lit(_chunk_id(r.chunk)).alias(CHUNK_ID), pl.lit(run).alias(RUN_ID)
            )
            for r in listed
        ]
        if frames:
            pl.concat(frames, how="diagonal_relaxed").write_parquet(folder / f"{table}.parquet")


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
        changed: dict[str, date] = {}  # symbol → earliest changed day
        for key, partition in partitions.items():
            if _same_files(partition, known.get(key)):
                continue
            first = changed.get(partition.symbol)
            changed[partition.symbol] = min(first, partition.day) if first else partition.day
        for key, entry in known.items():
            if key not in partitions:
                outcome.removed.append(key)
                day = date.fromisoformat(entry["day"])
                first = changed.get(entry["symbol"])
                changed[entry["symbol"]] = min(first, day) if first else day
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
        store_runs = sorted({entry["run"] for entry in new_chunks.values()})
        analysis = _finish(all_results, new_chunks, settings, phase_parameters)
        outcome.analysis = analysis
        folder = results / "runs" / run
        folder.mkdir(parents=True)
        meta = metadata or {}
        analysis.bars.write_parquet(folder / "bars.parquet", metadata=meta)
        analysis.summary.write_parquet(folder / "summary.parquet", metadata=meta)
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
            "store_runs": store_runs,
            "bucket_volumes": {
                _instrument_id(r.chunk.venue, r.chunk.symbol): r.chunk.bucket_volume
                for r in all_results
            },
        }
        (folder / MANIFEST).write_text(json.dumps(new_manifest, indent=1, sort_keys=True))
        _sync(folder)
        _link(f"runs/{run}", results / "current")  # the commit
        for name in (*(f"{o}.parquet" for o in OUTPUTS), MANIFEST):
            if not (results / name).is_symlink():
                _link(f"current/{name}", results / name)
        _collect_garbage(results, new_manifest)
    outcome.outputs = {name: results / f"{name}.parquet" for name in OUTPUTS}
    outcome.seconds = time.monotonic() - started
    return outcome


def _sync(folder: Path) -> None:
    """Flush the new run's files to disk before the commit makes them the results."""
    for path in folder.iterdir():
        with path.open("rb") as file:
            os.fsync(file.fileno())


def _kept_chunks(
    stored: dict[str, Any], changed: dict[str, date], settings: EngineSettings
) -> tuple[dict[str, Any], dict[str, int]]:
    """Split the stored chunks into kept ones and, per changed symbol, the restart time (ns).

    A stored chunk is recomputed when its rows, its future-mid overlap (``end + horizon``) or
    its trades' use of the instrument's last quote reach the earliest changed day.
    """
    restart: dict[str, int] = {}
    for symbol, day in changed.items():
        threshold = (day - date(1970, 1, 1)).days * NS_PER_DAY
        last_quotes = [
            entry["chunk"]["last_quote_ts"]
            for entry in stored.values()
            if entry["chunk"]["symbol"] == symbol and entry["chunk"]["last_quote_ts"] is not None
        ]
        if last_quotes:
            threshold = min(threshold, max(last_quotes))
        day_number = threshold // NS_PER_DAY
        start = unit_edge(day_number, settings.every_ns)
        if start > threshold:  # the threshold lies in the previous chunk-day
            start = unit_edge(day_number - 1, settings.every_ns)
        for entry in stored.values():
            chunk = entry["chunk"]
            if chunk["symbol"] == symbol and chunk["end"] + settings.horizon_ns > threshold:
                start = min(start, chunk["start"])
        restart[symbol] = start
    kept = {
        cid: entry
        for cid, entry in stored.items()
        if entry["chunk"]["symbol"] not in restart
        or entry["chunk"]["start"] < restart[entry["chunk"]["symbol"]]
    }
    return kept, restart


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


def _unit_of(chunk: Chunk, every_ns: int) -> int:
    """Return the census unit (chunk-day) of a one-day chunk."""
    day = chunk.start // NS_PER_DAY
    return day if unit_edge(day, every_ns) == chunk.start else day + 1


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
