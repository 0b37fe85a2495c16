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

A process killed outright (``SIGKILL``, the out-of-memory killer, a power cut) runs none of the
above. So a scratch folder made in the temporary folder carries its owner in its name
(``mmflow-<host>.<pid>.…``), and making one first removes the folders of the same kind whose
owner on this host is no longer running (:func:`sweep_stale`). Folders of a live process, of
another host sharing the folder, or without an owner in their name are never touched.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
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
    "sweep_stale",
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


def _host() -> str:
    """Return the host name as it may stand in a folder name (no dots, no separators)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _owner_tag() -> str:
    return f"{_host()}.{os.getpid()}."


def _running(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as running)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_stale(root: Path, prefix: str) -> list[Path]:
    """Remove the folders ``<prefix><host>.<pid>.…`` in ``root`` left by dead processes.

    Only folders named for this host whose process is no longer running are removed; anything
    that cannot be read or removed is left alone (another user's folder, a race with a second
    sweep).

    Parameters
    ----------
    root
        The temporary folder.
    prefix
        The kind of folder, e.g. ``"mmflow-"``.

    Returns
    -------
    list[Path]
        The folders removed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     mine = make_directory("mmflow-x-", Path(folder), owned=True)
    ...     stale = Path(folder) / f"mmflow-x-{_host()}.999999999.abc"
    ...     stale.mkdir()
    ...     removed = sweep_stale(Path(folder), "mmflow-x-")
    ...     [p.name == stale.name for p in removed], mine.exists()
    ([True], True)
    """
    pattern = re.compile(re.escape(prefix + _host() + ".") + r"(\d+)\.")
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _running(int(match.group(1))):
            continue
        with suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
                removed.append(entry)
    return removed


def make_directory(prefix: str, parent: Path | None = None, *, owned: bool | None = None) -> Path:
    """Create a private temporary folder (tracked as a tree) and return it.

    Parameters
    ----------
    prefix
        Start of the folder's name.
    parent
        Where to create it; the temporary folder when not given.
    owned
        Put this process's host and id in the name and first sweep the same kind's folders of
        dead processes (:func:`sweep_stale`). Default: only in the temporary folder (a folder
        inside a user's output is never swept).
    """
    root = parent if parent is not None else scratch_root()
    if owned is None:
        owned = parent is None
    if owned:
        sweep_stale(root, prefix)
        prefix += _owner_tag()
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
