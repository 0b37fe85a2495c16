"""Temporary files and folders mmflow creates, removed on every way a run can end.

Every temporary path mmflow makes — decompressed copies of standard input and zip members, the
``.NAME.….tmp`` file an output is written to before it is renamed into place, ``convert``'s
``.mmflow-convert-*`` staging folder and a dataset folder ``convert`` created — is entered in
one registry while it exists. Normal code removes its own paths (``finally`` blocks); the registry
catches every other ending: :func:`remove_all` runs at interpreter exit (``atexit``, which also
covers ``SystemExit`` raised by the signal handlers of :mod:`mmflow.interrupts`), and the
interrupt watchdog calls it before forcing an exit while the main thread is busy inside polars.

Temporary copies go to the system temporary folder, which honours ``TMPDIR``
(:func:`tempfile.gettempdir`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

__all__ = [
    "Kind",
    "forget",
    "make_directory",
    "remove",
    "remove_all",
    "scratch_root",
    "temporary_file",
    "track",
    "tracked",
]

Kind = Literal["file", "tree", "empty-dir"]
"""How a path is removed: unlink a file, remove a whole folder, or remove a folder if empty."""

_lock = threading.RLock()
_tracked: dict[Path, Kind] = {}
_LOCK_WAIT_SECONDS = 5.0


def track(path: Path, kind: Kind) -> Path:
    """Enter ``path`` in the registry; it is removed at exit unless :func:`forget` is called.

    Parameters
    ----------
    path
        A temporary file or folder mmflow just created.
    kind
        ``file``, ``tree`` (a folder and everything in it) or ``empty-dir`` (a folder removed
        only while empty: one that mmflow created for the user, such as a dataset folder).

    Returns
    -------
    Path
        ``path``, for chaining.
    """
    with _lock:
        _tracked[path] = kind
    return path


def forget(path: Path) -> None:
    """Take ``path`` out of the registry without removing it (it was renamed or is kept)."""
    with _lock:
        _tracked.pop(path, None)


def tracked() -> list[Path]:
    """Return the paths in the registry, oldest first."""
    with _lock:
        return list(_tracked)


def _remove_path(path: Path, kind: Kind) -> None:
    if kind == "file":
        with suppress(OSError):
            path.unlink(missing_ok=True)
    elif kind == "empty-dir":
        with suppress(OSError):
            path.rmdir()
    else:
        # Another thread may still be writing into the folder (polars inside a stopped run):
        # a file created while the tree is removed makes rmtree fail, so try a few times.
        for _ in range(5):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                break


def remove(path: Path) -> None:
    """Remove ``path`` now, as its registry entry says, and forget it."""
    with _lock:
        kind = _tracked.pop(path, None)
    if kind is not None:
        _remove_path(path, kind)


def remove_all() -> None:
    """Remove every registered path, newest first (a staging folder before its parent).

    Safe to call from any thread and more than once. It waits a few seconds at most for another
    thread that is changing the registry, then goes ahead anyway: it runs when the process is
    ending.
    """
    locked = _lock.acquire(timeout=_LOCK_WAIT_SECONDS)
    try:
        entries = list(_tracked.items())
    finally:
        if locked:
            _lock.release()
    for path, kind in reversed(entries):
        _remove_path(path, kind)
        # Forgotten only once removed: a call cut short (a signal during exit) leaves the rest
        # for the next call (the interrupt watchdog's).
        _tracked.pop(path, None)


atexit.register(remove_all)


def scratch_root() -> Path:
    """Return the folder temporary copies go to: ``TMPDIR`` when set, else the system default."""
    configured = os.environ.get("TMPDIR")
    return Path(configured) if configured else Path(tempfile.gettempdir())


def make_directory(prefix: str, parent: Path | None = None) -> Path:
    """Create a private temporary folder (tracked as a tree) and return it."""
    root = parent if parent is not None else scratch_root()
    return track(Path(tempfile.mkdtemp(prefix=prefix, dir=root)), "tree")


@contextmanager
def temporary_file(directory: Path, prefix: str, suffix: str) -> Iterator[tuple[int, Path]]:
    """Create a tracked temporary file; yield its open descriptor and path; remove it after.

    The caller that renames the file into place calls :func:`forget` first (removing a renamed
    path would be harmless, but the registry then stays small).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with temporary_file(Path(folder), ".x.", ".tmp") as (handle, path):
    ...         os.close(handle)
    ...         inside = path.exists() and path in tracked()
    ...     inside, path.exists(), path in tracked()
    (True, False, False)
    """
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    path = track(Path(name), "file")
    try:
        yield handle, path
    finally:
        remove(path)
