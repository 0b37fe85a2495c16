"""The incremental run's records: dataset partitions, fingerprints, chunk JSON, results folder.

Split out of :mod:`mmflow.engine.incremental` (which re-exports :data:`MANIFEST`,
:class:`Partition` and :func:`list_partitions`): listing a converted dataset's
``symbol=…/date=…`` partitions and fingerprinting their files, the JSON of chunks and their
outbound states kept in the manifest, and the results folder's manifest, lock, links and
garbage collection. See :mod:`mmflow.engine.incremental` for how a run uses them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import polars as pl

from mmflow.engine.census import (
    QUOTE_KINDS,
)
from mmflow.engine.state import (
    Chunk,
    ChunkResult,
    QuoteState,
    TradeState,
)
from mmflow.errors import MmflowError, ParameterError
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    SYMBOL,
)

__all__ = [
    "MANIFEST",
    "TABLES",
    "Partition",
    "fingerprint",
    "list_partitions",
    "settings_digest",
]

MANIFEST: Final = "manifest.json"
VERSION: Final = 1
OUTPUTS: Final = ("bars", "summary")
"""The finished tables in ``RESULTS`` (``bars.parquet``, ``summary.parquet``)."""
_SUFFIXES: Final = (".parquet", ".arrow", ".ipc", ".feather")


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


TABLES: Final = ("bars", "levels", "buckets", "mix", "checks")
"""The chunk tables stored per run (with a ``_chunk`` column naming the chunk)."""


CHUNK_ID: Final = "_chunk"


RUN_ID: Final = "_run"


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
