"""Stage reports: how long-running library functions say what they are doing.

The library never prints. Functions that may take more than a moment (:func:`mmflow.io.load`,
:func:`mmflow.io.assemble.collect`) accept ``on_stage``, a callable that receives a :class:`Stage`
when a stage starts, advances and finishes; the command line renders it as a progress line on
a terminal. Plans are lazy and collected once, so stages are coarse: reading the inputs (file by
file), then each collection (signing, bars, phases…) as one step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["READING", "OnStage", "Stage", "report"]

READING: Final = "reading inputs"


@dataclass(frozen=True)
class Stage:
    """What a library function is doing now.

    Attributes
    ----------
    name
        The stage, for people: ``reading inputs``, ``signing trades and building bars``, …
    done, total
        Units done and in all (files, tasks), when the stage counts them; else ``None``.
    detail
        The item being worked on (a file name), or ``""``.
    bytes_done, bytes_total
        Bytes behind the units done and in all, when known.
    finished
        ``True`` on the last report of the stage.
    unit
        What ``done`` and ``total`` count, plural: ``files`` (reading) or ``tasks`` (chunk
        tasks of the engine on an executor).
    """

    name: str
    done: int | None = None
    total: int | None = None
    detail: str = ""
    bytes_done: int | None = None
    bytes_total: int | None = None
    finished: bool = False
    unit: str = "files"


OnStage = Callable[[Stage], None]
"""The hook: called with each :class:`Stage` report; it must not raise."""


def report(on_stage: OnStage | None, stage: Stage) -> None:
    """Send ``stage`` to ``on_stage`` when there is a hook."""
    if on_stage is not None:
        on_stage(stage)
