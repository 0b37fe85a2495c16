"""A run's inputs made ready for the chunked engine: text parsed once, rows tasks can carry.

:func:`prepared_inputs` is shared by every engine command (:func:`mmflow.engine.run.run_engine`,
:func:`mmflow.engine.profile.planned_tasks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mmflow.engine.state import EngineSettings
from mmflow.scratch import make_directory, remove

__all__ = [
    "HELD_BYTES_PER_QUOTE",
    "HELD_BYTES_PER_TRADE",
    "PreparedInputs",
    "fits_in_memory",
    "known_rows",
    "parses_text",
    "prepared_inputs",
]


HELD_BYTES_PER_TRADE = 48
"""Bytes one prepared trade takes held in memory (measured 29: ``ts, symbol, price, size,
aggressor_side``; short symbols are stored inline), with room for longer symbols."""
HELD_BYTES_PER_QUOTE = 64
"""Bytes one prepared quote takes held in memory (measured 44)."""


@dataclass(frozen=True)
class PreparedInputs:
    """A run's inputs ready for the census and the chunk tasks (:func:`prepared_inputs`)."""

    trades: pl.LazyFrame | pl.DataFrame
    quotes: pl.LazyFrame | pl.DataFrame | None
    in_memory: bool
    spill_to: Path | None


@contextmanager
def prepared_inputs(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    settings: EngineSettings,
    *,
    files: bool,
    in_memory: bool | None,
) -> Iterator[PreparedInputs]:
    """Parse text inputs once, decide whether to read into memory, spill rows tasks must carry.

    Text inputs are streamed into scratch parquet files (the census, the row count and the
    chunks then read parquet). ``in_memory`` defaults to whether the inputs' rows, held in
    memory (:data:`HELD_BYTES_PER_TRADE`, :data:`HELD_BYTES_PER_QUOTE`), fit half of
    ``settings.memory_limit`` (the other half is for the chunk being computed: the planner
    sizes chunks by the same limit, from their own, much larger, per-row estimates). With
    ``files`` (tasks go to other processes), file scans travel as plans and rows held in this
    process are written to scratch parquet (one file per instrument when in memory, else one
    per table). The scratch folder is removed at the end.
    """
    scratch: Path | None = None
    if any(parses_text(frame) for frame in (trades, quotes) if frame is not None):
        scratch = make_directory(".mmflow-engine-")
        trades = _spill(trades.lazy(), scratch / "trades.parquet")
        quotes = _spill(quotes.lazy(), scratch / "quotes.parquet") if quotes is not None else None
    spill_to: Path | None = None
    try:
        holds_rows = files and any(_holds_rows(f) for f in (trades, quotes) if f is not None)
        if files and not holds_rows:
            in_memory = False  # the tasks carry the scans' plans: workers read their rows
        if in_memory is None:
            rows = _KNOWN_ROWS.get()
            if rows is None:  # count them (a pass over the inputs, unless they are in memory)
                counts = pl.collect_all(
                    [
                        frame.lazy().select(pl.len())
                        for frame in (trades, quotes)
                        if frame is not None
                    ]
                )
                rows = (counts[0].item(), counts[1].item() if quotes is not None else 0)
            in_memory = fits_in_memory(*rows, settings.memory_limit)
        if holds_rows:
            if scratch is None:
                scratch = make_directory(".mmflow-engine-")
            if in_memory:
                spill_to = scratch  # written per instrument once the rows are collected
            else:
                trades = _spill(trades.lazy(), scratch / "trades.parquet")
                if quotes is not None:
                    quotes = _spill(quotes.lazy(), scratch / "quotes.parquet")
        yield PreparedInputs(trades, quotes, bool(in_memory), spill_to)
    finally:
        if scratch is not None:
            remove(scratch)


_KNOWN_ROWS: ContextVar[tuple[int, int] | None] = ContextVar("mmflow_known_rows", default=None)


def known_rows(trades: int, quotes: int) -> Callable[[], None]:
    """Tell this run's engine how many prepared trades and quotes it will get; return the undo.

    The command line counts them in its row account (rows used), so :func:`prepared_inputs`
    need not count them again. Only a hint for the choice to read into memory (both choices
    give the same results); call the returned function when the run ends.
    """
    token = _KNOWN_ROWS.set((trades, quotes))
    return lambda: _KNOWN_ROWS.reset(token)


def fits_in_memory(trades: int, quotes: int, memory_limit: int) -> bool:
    """Whether a run's rows, held in memory, fit half of ``memory_limit`` (the engine's rule).

    Held: :data:`HELD_BYTES_PER_TRADE` per trade and :data:`HELD_BYTES_PER_QUOTE` per quote;
    the other half of the limit is for the chunk being computed.
    """
    estimate = trades * HELD_BYTES_PER_TRADE + quotes * HELD_BYTES_PER_QUOTE
    return estimate <= memory_limit // 2


def parses_text(frame: pl.LazyFrame | pl.DataFrame) -> bool:
    """Whether reading ``frame`` parses text (a CSV or NDJSON scan in its plan)."""
    if isinstance(frame, pl.DataFrame):
        return False
    plan = frame.explain(optimized=False).lower()
    return "csv scan" in plan or "ndjson scan" in plan or "json scan" in plan


def _holds_rows(frame: pl.LazyFrame | pl.DataFrame) -> bool:
    """Whether ``frame``'s rows live in this process (a task carrying it carries the rows).

    True for a frame, or a plan over one (``DF``) or over a Python scan.
    """
    if isinstance(frame, pl.DataFrame):
        return True
    plan = frame.explain(optimized=False)
    return "DF [" in plan or "python scan" in plan.lower()


def _spill(frame: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    """Write ``frame`` to ``path`` (streaming) and return a scan of it."""
    frame.sink_parquet(path)
    return pl.scan_parquet(path)
