"""The chunked engine: per-instrument, per-chunk execution with carried state (issue 11).

Pass 1 (:mod:`mmflow.engine.census`) reads only the key columns and yields per instrument and
day the counts, volumes and last rows; the planner (:mod:`mmflow.engine.chunks`) groups days
into bar-edge-aligned chunks that fit a memory budget and chains each chunk's inbound state;
pass 2 runs :func:`mmflow.engine.run.run_chunk` per chunk (trades: :mod:`mmflow.engine.trades`
with :mod:`mmflow.engine.signing` and :mod:`mmflow.engine.buckets`, quotes:
:mod:`mmflow.engine.quotes` with :mod:`mmflow.engine.quote_carry`), and
:mod:`mmflow.engine.finish` runs the bar-level metrics that cross bars on the small tables. The
contract is in :mod:`mmflow.engine.state`. Incremental runs: :mod:`mmflow.engine.incremental`
(with :mod:`mmflow.engine.manifest` and :mod:`mmflow.engine.restart`).
"""

from __future__ import annotations

from mmflow.engine.state import (
    Chunk,
    ChunkResult,
    ChunkTask,
    EngineSettings,
    QuoteState,
    TableSource,
    TradePartials,
    TradeState,
)

__all__ = [
    "Chunk",
    "ChunkResult",
    "ChunkTask",
    "EngineSettings",
    "QuoteState",
    "TableSource",
    "TradePartials",
    "TradeState",
]
