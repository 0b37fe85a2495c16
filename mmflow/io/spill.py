"""Parse text inputs once: spill each CSV input into scratch parquet while counting its rows.

A CSV input's checked frames and its row account are two plans over the same text. Collected
one after the other (the account before the analysis, then the analysis itself, then the
engine's own scratch copy), the text is parsed three times and the account's plan holds the
whole file's text columns in memory. :func:`spill_text_inputs` instead collects, per input, the
sinks of its checked trades and quotes into scratch parquet files **together with** its
account (one run over the file: polars shares the scan between the plans where it can), then
hands on an input whose frames scan those parquet files and whose account is the collected
table. Everything after (the selection's account, the engine's census and chunks) reads
parquet; the account's numbers and messages are those of the text, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from mmflow.io import Loaded
from mmflow.io.assemble import collect
from mmflow.io.formats import Frames

__all__ = ["parses_text", "spill_text_inputs"]


def parses_text(frame: pl.LazyFrame | None) -> bool:
    """Whether collecting ``frame`` parses text (a CSV or NDJSON scan in its plan)."""
    if frame is None:
        return False
    plan = frame.explain(optimized=False).lower()
    return "csv scan" in plan or "ndjson scan" in plan or "json scan" in plan


def spill_text_inputs(loaded: Sequence[Loaded], directory: Path) -> list[Loaded]:
    """Return ``loaded`` with every lazy text input read once into parquet under ``directory``.

    Inputs already in memory, or whose frames scan binary files, are returned as they are.
    Each text input is collected on its own (memory is set by the largest file): its trades
    and quotes are streamed into ``directory/<n>-trades.parquet`` (``-quotes``), its account
    is collected in the same run. A failure names the file (:func:`mmflow.io.assemble.collect`).
    """
    out: list[Loaded] = []
    for number, item in enumerate(loaded):
        frames = (item.frames.trades, item.frames.quotes)
        if item.in_memory or not any(parses_text(frame) for frame in frames):
            out.append(item)
            continue
        paths = [directory / f"{number}-{name}.parquet" for name in ("trades", "quotes")]
        plans = [
            frame.sink_parquet(path, lazy=True, compression="lz4")  # lz4: see README
            for frame, path in zip(frames, paths, strict=True)
            if frame is not None
        ]
        collected = collect([*plans, *([item.account] if item.account is not None else [])], [item])
        scans = [
            pl.scan_parquet(path) if frame is not None else None
            for frame, path in zip(frames, paths, strict=True)
        ]
        account = collected[-1].lazy() if item.account is not None else None
        spilled = Frames(scans[0], scans[1], item.frames.notes)
        out.append(replace(item, frames=spilled, account=account, unchecked=spilled))
    return out
