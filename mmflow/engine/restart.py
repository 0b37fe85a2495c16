"""Restarting an incremental run: which stored chunks are kept, and the state they carry.

Split out of :mod:`mmflow.engine.incremental`: the chunks kept before each symbol's earliest
changed day, the synthetic census row that restarts the engine's chain from a kept chunk's
outbound state, and the partition files a recomputed chunk reads (its day widened by the
quote lag and the cost horizon).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from mmflow.engine.census import (
    DATE,
    UNIT,
    Census,
    unit_edge,
)
from mmflow.engine.manifest import (
    Partition,
)
from mmflow.engine.state import (
    NS_PER_DAY,
    Chunk,
    EngineSettings,
    TradeState,
)
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    SYMBOL,
    VENUE,
)

__all__: list[str] = []


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


def _unit_of(chunk: Chunk, every_ns: int) -> int:
    """Return the census unit (chunk-day) of a one-day chunk."""
    day = chunk.start // NS_PER_DAY
    return day if unit_edge(day, every_ns) == chunk.start else day + 1
