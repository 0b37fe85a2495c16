"""How a run ends when it is stopped: Ctrl-C, SIGTERM, SIGHUP or a closed output pipe.

:func:`install` (called by the command's entry point, never by the library) makes each of these
signals end the process through the same cleanup as any other ending, with the conventional exit
status and no traceback:

* SIGINT (Ctrl-C): exit status 130;
* SIGTERM (``kill``, a service manager, a job scheduler): 143;
* SIGHUP (the terminal closed): 129;
* SIGPIPE (the reader of stdout went away, ``mmflow … | head``): 0, silently.

The handler raises :class:`SystemExit` in the main thread, so ``finally`` blocks and ``atexit``
remove every temporary path (:mod:`mmflow.scratch`). Python runs signal handlers only between
bytecodes, though, and a polars query can keep the main thread inside Rust for minutes; so a
watchdog thread also wakes on the signal (through :func:`signal.set_wakeup_fd`) and, if the
process is still running :data:`GRACE_SECONDS` later, removes the temporary paths itself and
ends the process with the same status.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType

from mmflow import scratch

__all__ = [
    "GRACE_SECONDS",
    "exit_status",
    "install",
]

GRACE_SECONDS = 2.0
"""How long the main thread gets to end by itself before the watchdog ends the process."""

_QUIET = getattr(signal, "SIGPIPE", None)
_SIGNALS: tuple[int, ...] = tuple(
    int(number)
    for number in (
        signal.SIGINT,
        signal.SIGTERM,
        getattr(signal, "SIGHUP", None),
        _QUIET,
    )
    if number is not None
)
_stopping: int | None = None


def exit_status(signum: int) -> int:
    """Return the exit status a run stopped by ``signum`` ends with (128 + signal; 0 for SIGPIPE).

    Examples
    --------
    >>> exit_status(signal.SIGINT), exit_status(signal.SIGTERM)
    (130, 143)
    """
    return 0 if signum == _QUIET else 128 + signum


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit cannot fail on a closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _handler(signum: int, frame: FrameType | None) -> None:
    """End the run from the main thread: SystemExit unwinds through every cleanup."""
    global _stopping
    if _stopping is not None:  # already ending; let the cleanup finish
        return
    _stopping = signum
    if signum == _QUIET:
        _silence_stdout()
    raise SystemExit(exit_status(signum))


def _ending() -> None:
    """Mark the process as ending, so the handler no longer raises (see :func:`install`)."""
    global _stopping
    if _stopping is None:
        _stopping = 0


def _watchdog(wakeup: int, grace: float) -> None:
    """Force the ending if the main thread has not ended ``grace`` seconds after a signal."""
    while True:
        try:
            data = os.read(wakeup, 1)
        except OSError:
            return
        if not data:
            return
        signum = data[0]
        if signum not in _SIGNALS:
            continue
        time.sleep(grace)
        if signum == _QUIET:
            _silence_stdout()
        scratch.remove_all()
        os._exit(exit_status(signum))


def install(grace: float = GRACE_SECONDS) -> None:
    """Make SIGINT, SIGTERM, SIGHUP and SIGPIPE end the process cleanly (see the module text).

    Call once, from the main thread, before any work.

    Parameters
    ----------
    grace
        Seconds the main thread gets to unwind by itself before the watchdog ends the process.
    """
    for number in _SIGNALS:
        signal.signal(number, _handler)
    # atexit runs last-registered first: from here on the process is ending anyway, so a signal
    # must not raise into the cleanup (the watchdog still ends a cleanup that hangs).
    atexit.register(_ending)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(
        target=_watchdog, args=(read_end, grace), name="mmflow-interrupts", daemon=True
    ).start()
