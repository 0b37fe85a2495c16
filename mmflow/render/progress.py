"""Render :class:`mmflow.progress.Stage` reports on a terminal's standard error.

With colour: a transient rich progress line (spinner, stage, files and bytes read, elapsed time).
With ``NO_COLOR`` set: the same information on one line redrawn with carriage returns only, so no
escape sequence is ever written. Either way the line is erased when a stage finishes, before any
table is printed. The command line creates a :class:`StageDisplay` only when standard error is a
terminal and ``--quiet`` is not given.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.table import Column
from rich.text import Text

from mmflow.progress import Stage

__all__ = ["StageDisplay", "no_color", "plain_console"]


DETAIL_WIDTH = 30
"""Longest file name shown in the rich progress line (the end of a longer name is kept)."""


def no_color() -> bool:
    """Whether ``NO_COLOR`` is set to a non-empty value (https://no-color.org)."""
    return os.environ.get("NO_COLOR", "") != ""


def plain_console(*, stderr: bool = False) -> Console:
    """Return a rich console that writes no colour or style at all when ``NO_COLOR`` is set."""
    if no_color():
        return Console(stderr=stderr, color_system=None, no_color=True)
    return Console(stderr=stderr)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


def _elapsed(started: float) -> str:
    return str(timedelta(seconds=int(time.monotonic() - started)))


def describe(stage: Stage) -> str:
    """Return the stage as text: ``reading inputs 2/5 files (12.0 MB of 40.0 MB) a.csv``."""
    parts = [stage.name]
    if stage.total is not None and stage.done is not None:
        parts.append(f"{stage.done}/{stage.total} {stage.unit}")
    if stage.bytes_total:
        parts.append(f"({_size(stage.bytes_done or 0)} of {_size(stage.bytes_total)})")
    if stage.detail:
        parts.append(stage.detail)
    return " ".join(parts)


class _RunElapsed(ProgressColumn):
    """Time since the command started (not since the stage started)."""

    def __init__(self, started: float, table_column: Column | None = None) -> None:
        super().__init__(table_column)
        self.started = started

    def render(self, task: Task) -> Text:
        return Text(_elapsed(self.started), style="progress.elapsed")


class StageDisplay:
    """A stage hook that draws a transient progress line on ``stream`` (a terminal).

    Parameters
    ----------
    stream
        Where to draw: standard error.
    color
        Rich progress with colour, or (``NO_COLOR``) a plain line redrawn with carriage returns.
    """

    def __init__(self, stream: TextIO, *, color: bool) -> None:
        self.stream = stream
        self.color = color
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stage: Stage | None = None
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.ticker: threading.Thread | None = None
        self.stop_ticking = threading.Event()
        self.width = 0

    def __call__(self, stage: Stage) -> None:
        """Show ``stage``; erase the line when it is finished."""
        if stage.finished:
            self.close()
        elif self.color:
            self._rich(stage)
        else:
            self._plain(stage)

    def _rich(self, stage: Stage) -> None:
        counts = describe(replace(stage, detail="")).removeprefix(stage.name).strip()
        detail = Path(stage.detail).name if stage.detail else ""
        if len(detail) > DETAIL_WIDTH:
            detail = "…" + detail[-(DETAIL_WIDTH - 1) :]
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                description=stage.name,
                total=stage.total,
                completed=stage.done or 0,
                counts=counts,
                detail=detail,
            )
            return
        self.progress = Progress(
            SpinnerColumn(),
            _RunElapsed(self.started, table_column=Column(no_wrap=True, min_width=7)),
            TextColumn(
                "[progress.description]{task.description}", table_column=Column(no_wrap=True)
            ),
            TextColumn("{task.fields[counts]}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=10),
            TextColumn(
                "{task.fields[detail]}", table_column=Column(no_wrap=True, overflow="ellipsis")
            ),
            console=Console(file=self.stream, stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task(
            stage.name, total=stage.total, completed=stage.done or 0, counts=counts, detail=detail
        )
        self.progress.start()

    def _line(self) -> str:
        stage = self.stage
        if stage is None:
            return ""
        spinner = "|/-\\"[int((time.monotonic() - self.started) * 4) % 4]
        line = f"{spinner} {describe(stage)} {_elapsed(self.started)}"
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        with_room = max((columns or 80) - 1, 10)
        return line[:with_room]

    def _draw(self) -> None:
        line = self._line()
        padding = " " * max(self.width - len(line), 0)
        self.stream.write(f"\r{line}{padding}\r{line}" if padding else f"\r{line}")
        self.stream.flush()
        self.width = len(line)

    def _tick(self) -> None:
        while not self.stop_ticking.wait(0.25):
            with self.lock:
                self._draw()

    def _plain(self, stage: Stage) -> None:
        with self.lock:
            self.stage = stage
            self._draw()
        if self.ticker is None:
            self.stop_ticking.clear()
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()

    def close(self) -> None:
        """Erase the progress line (safe to call more than once)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None
        if self.ticker is not None:
            self.stop_ticking.set()
            self.ticker.join()
            self.ticker = None
        with self.lock:
            if self.width:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
                self.width = 0
            self.stage = None
