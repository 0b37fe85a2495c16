"""Where chunk tasks run: one after another here, or on a Dask cluster (issue 14).

An :class:`Executor` maps a pure, picklable function over picklable tasks and yields the
results **in task order** (whatever order they finish in), calling a progress hook with the
tasks done and in all. The engine hands it ``run_chunk`` and the :class:`~mmflow.engine.state.
ChunkTask` list; the client stitches the small results in time order and finishes the bar-level
work, so the executor never changes a number, only where and when each task runs.

- :class:`LocalExecutor`: serial, in this process (each task's own polars plan may use every
  thread); peak memory is set by the largest chunk.
- :class:`DaskExecutor`: ``distributed`` (the optional extra ``mmflow[dask]``, imported only
  here and only when chosen). ``scheduler="tcp://HOST:PORT"`` connects to a running cluster;
  ``workers=N`` starts a local cluster of N worker processes on the loopback interface, one
  thread each, with ``POLARS_MAX_THREADS`` = cores // N set in each worker's environment (so N
  polars thread pools do not oversubscribe the cores). Tasks are submitted as impure (never
  deduplicated), their results gathered as they finish. When a worker dies (killed, out of
  memory) the scheduler reschedules the tasks it held on another worker; a task that kills
  :data:`ALLOWED_FAILURES` + 1 workers stops the run with one clear error. Results are pure
  functions of their task, so a recomputed task returns the same value, and each task's result
  is taken exactly once: nothing is lost or counted twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

from mmflow.errors import MissingDependencyError, MmflowError, ParameterError
from mmflow.progress import OnStage, Stage, report

__all__ = [
    "ALLOWED_FAILURES",
    "BATCHES_PER_WORKER",
    "DASK_INSTALL_HINT",
    "EXECUTORS",
    "MAX_WORKERS",
    "TASKS_STAGE",
    "DaskExecutor",
    "DaskMissingError",
    "Execution",
    "Executor",
    "LocalExecutor",
    "OnProgress",
    "activate",
    "active_execution",
    "check_scheduler",
    "import_distributed",
    "run_batch",
    "run_tasks",
    "threads_per_worker",
]

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS: Final = ("local", "dask")
"""The executor names ``--executor`` accepts."""

MAX_WORKERS: Final = 256
"""Most worker processes ``--workers`` may start on this machine (a flag-driven size)."""

BATCHES_PER_WORKER: Final = 4
"""Batches per worker a Dask run aims at: enough to balance uneven days, few enough that
small tasks do not each pay a scheduler round trip (~0.25 s on a busy machine)."""

ALLOWED_FAILURES: Final = 3
"""Worker losses one task may cause before the run stops (Dask's ``allowed-failures``)."""

DASK_INSTALL_HINT: Final = "pip install 'mmflow[dask]'"

OnProgress = Callable[[int, int], None]
"""Progress hook: called with ``(done, total)`` tasks after each task finishes (and once with
``(0, total)`` before the first); it must not raise."""


class DaskMissingError(MissingDependencyError):
    """``--executor dask`` without the ``dask`` extra installed (exit 1, with the install hint)."""


def import_distributed() -> ModuleType:
    """Import and return ``distributed``, or stop with the install hint.

    Raises
    ------
    DaskMissingError
        When the ``dask`` extra is not installed.
    """
    try:
        import distributed
    except ImportError:
        msg = (
            "--executor dask needs Dask's distributed scheduler, which is not installed "
            f"(install it with {DASK_INSTALL_HINT})"
        )
        raise DaskMissingError(msg) from None
    return distributed


def check_scheduler(address: str) -> str:
    """Return ``address`` when it names a Dask scheduler (``tcp://HOST:PORT``, ``tls://…``).

    Examples
    --------
    >>> check_scheduler("tcp://127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    >>> check_scheduler("localhost")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmflow.errors.ParameterError: --scheduler 'localhost' is not a scheduler address (give ...)

    Raises
    ------
    ParameterError
        When it does not.
    """
    protocol, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if protocol not in ("tcp", "tls", "ws", "wss") or not host or not port.isdigit():
        msg = (
            f"--scheduler {address!r} is not a scheduler address "
            "(give tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786)"
        )
        raise ParameterError(msg)
    return address


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Return the polars threads each of ``workers`` processes gets: cores // workers, ≥ 1.

    Examples
    --------
    >>> threads_per_worker(2, cores=8)
    4
    >>> threads_per_worker(4, cores=2)
    1
    """
    available = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, available // max(1, workers))


class Executor(Protocol):
    """Runs ``fn`` over tasks; results come back in task order."""

    name: str

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], on_progress: OnProgress | None = None
    ) -> Iterator[R]:
        """Yield ``fn(task)`` for each task, in the order of ``tasks``."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a cluster, a connection)."""
        ...


class _Closing(AbstractContextManager["_Closing"]):
    def close(self) -> None:
        """Release nothing (see subclasses)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LocalExecutor(_Closing):
    """Run tasks one after another in this process (the default executor)."""

    name = "local"

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], on_progress: OnProgress | None = None
    ) -> Iterator[R]:
        """Yield ``fn(task)`` for each task in order, reporting progress after each."""
        listed = list(tasks)
        total = len(listed)
        if on_progress is not None:
            on_progress(0, total)
        for done, task in enumerate(listed, start=1):
            result = fn(task)
            if on_progress is not None:
                on_progress(done, total)
            yield result


class DaskExecutor(_Closing):
    """Run tasks on a Dask cluster: an existing one (``scheduler``) or a local one (``workers``).

    Parameters
    ----------
    scheduler
        ``tcp://HOST:PORT`` of a running ``dask scheduler``. Its workers must have mmflow
        installed and read the task's paths (shared storage or object-store URLs); set
        ``POLARS_MAX_THREADS`` in their environment when they share a machine.
    workers
        Start a local cluster of this many worker processes (loopback only), one task at a
        time each, ``POLARS_MAX_THREADS`` = cores // workers. Default: 2 when no scheduler.
    memory_limit
        Bytes per local worker (Dask pauses and restarts a worker past it); ``None``: Dask's
        default (the machine's memory / workers).
    allowed_failures
        Worker losses one task may cause before the run stops.
    batch
        Tasks per submitted batch (default: about :data:`BATCHES_PER_WORKER` batches per
        worker; 1 submits every task on its own).

    Raises
    ------
    DaskMissingError
        When the ``dask`` extra is not installed.
    ParameterError
        When both or a bad ``scheduler``/``workers`` are given.
    MmflowError
        When the scheduler cannot be reached.
    """

    name = "dask"

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        memory_limit: int | None = None,
        allowed_failures: int = ALLOWED_FAILURES,
        batch: int | None = None,
    ) -> None:
        if scheduler is not None and workers is not None:
            msg = "--scheduler and --workers exclude each other (a cluster has its own workers)"
            raise ParameterError(msg)
        if workers is not None and not 1 <= workers <= MAX_WORKERS:
            msg = f"--workers {workers} is out of range (give 1 to {MAX_WORKERS})"
            raise ParameterError(msg)
        if scheduler is not None:
            check_scheduler(scheduler)
        distributed = import_distributed()
        import dask

        self._distributed = distributed
        self.batch = batch
        self.scheduler = scheduler
        self.workers = workers if scheduler is None else None
        self.cluster: Any = None
        self.client: Any = None
        self._config: Any = dask.config.set(
            {"distributed.scheduler.allowed-failures": allowed_failures}
        )
        try:
            if scheduler is not None:
                self.client = self._connect(scheduler)
            else:
                count = workers if workers is not None else 2
                self.workers = count
                threads = threads_per_worker(count)
                self.cluster = distributed.LocalCluster(
                    n_workers=count,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # loopback only, any free port
                    memory_limit=memory_limit if memory_limit is not None else "auto",
                    silence_logs=logging.CRITICAL,
                    env={"POLARS_MAX_THREADS": str(threads)},
                )
                self.client = distributed.Client(self.cluster)
        except BaseException:
            self.close()
            raise

    def _connect(self, scheduler: str) -> Any:
        try:
            return self._distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            msg = (
                f"{scheduler}: cannot reach the Dask scheduler ({exc}; start one with "
                "`dask scheduler` and give its address)"
            )
            raise MmflowError(msg) from None

    def worker_processes(self) -> dict[str, int]:
        """Return the process id of each worker, by worker address (tests kill one)."""
        result: dict[str, int] = self.client.run(os.getpid)
        return result

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], on_progress: OnProgress | None = None
    ) -> Iterator[R]:
        """Submit every task, then yield results in task order as they arrive.

        Tasks go to the workers in batches of :attr:`batch` (default: about
        :data:`BATCHES_PER_WORKER` batches per worker, so thousands of small day tasks do not
        each pay the scheduler's round trip). Each future is released once its result is
        taken, so finished tables do not stay on the workers. A batch whose workers kept dying
        stops the run with an error naming its first task.
        """
        listed = list(tasks)
        total = len(listed)
        if on_progress is not None:
            on_progress(0, total)
        if not listed:
            return
        size = self.batch or max(1, total // (self._worker_count() * BATCHES_PER_WORKER))
        starts = list(range(0, total, size))
        batches = [listed[start : start + size] for start in starts]
        futures = self.client.map(run_batch, [fn] * len(batches), batches, pure=False)
        position = {future.key: index for index, future in enumerate(futures)}
        ready: dict[int, list[R]] = {}
        following = 0
        done = 0
        try:
            for future in self._distributed.as_completed(futures):
                index = position[future.key]
                ready[index] = _result(self._distributed, future, starts[index], total)
                future.release()
                done += len(batches[index])
                if on_progress is not None:
                    on_progress(done, total)
                while following in ready:
                    yield from ready.pop(following)
                    following += 1
        finally:
            for future in futures:
                future.release()

    def _worker_count(self) -> int:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return max(1, len(workers))

    def close(self) -> None:
        """Close the client, and the local cluster when this executor started one."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None


def run_batch(fn: Callable[[T], R], batch: list[T]) -> list[R]:
    """Run ``fn`` over one batch of tasks on a worker (in order)."""
    return [fn(task) for task in batch]


def _result(distributed: ModuleType, future: Any, index: int, total: int) -> Any:
    """Return the result of ``future``; a task that kept killing workers is one clear error."""
    try:
        return future.result()
    except distributed.KilledWorker as exc:
        msg = (
            f"task {index + 1} of {total} was lost with {ALLOWED_FAILURES + 1} workers that "
            f"died running it ({exc}; give the workers more memory or use smaller chunks "
            "with --memory-limit)"
        )
        raise MmflowError(msg) from None


TASKS_STAGE: Final = "computing chunks"
"""The progress stage of the engine's chunk tasks (``computing chunks 3/12 tasks``)."""


@dataclass
class Execution:
    """The run's choice of executor (``--executor``, ``--scheduler``, ``--workers``).

    The executor itself is made on first use (a Dask cluster starts only when the engine has
    tasks to run) and closed by :meth:`close`.

    Attributes
    ----------
    executor
        ``local`` or ``dask``.
    scheduler
        ``tcp://HOST:PORT`` of a running Dask scheduler.
    workers
        Worker processes of a local Dask cluster.
    on_stage
        Where progress goes (tasks done / total), or ``None``.
    """

    executor: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    on_stage: OnStage | None = None
    _made: LocalExecutor | DaskExecutor | None = field(default=None, init=False, repr=False)
    used: bool = field(default=False, init=False)
    """Whether any task ran on it (a command that runs no chunk task leaves it unused)."""

    def __post_init__(self) -> None:
        """Check the combination before anything is read (a bad one is a usage error)."""
        if self.executor not in EXECUTORS:
            msg = f"--executor {self.executor!r} is not one of {', '.join(EXECUTORS)}"
            raise ParameterError(msg)
        if self.executor != "dask":
            for flag, value in (("--scheduler", self.scheduler), ("--workers", self.workers)):
                if value is not None:
                    msg = f"{flag} needs --executor dask"
                    raise ParameterError(msg)
        if self.scheduler is not None and self.workers is not None:
            msg = "--scheduler and --workers exclude each other (a cluster has its own workers)"
            raise ParameterError(msg)
        if self.scheduler is not None:
            check_scheduler(self.scheduler)
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            msg = f"--workers {self.workers} is out of range (give 1 to {MAX_WORKERS})"
            raise ParameterError(msg)
        if self.executor == "dask":
            import_distributed()  # missing extra: say so now, before any input is read

    def made(self) -> LocalExecutor | DaskExecutor:
        """Return the executor, making it (starting or connecting to a cluster) on first use."""
        if self._made is None:
            if self.executor == "dask":
                self._made = DaskExecutor(scheduler=self.scheduler, workers=self.workers)
            else:
                self._made = LocalExecutor()
        return self._made

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Run ``fn`` over ``tasks`` on the chosen executor, in task order, with progress."""
        listed = list(tasks)
        self.used = self.used or bool(listed)

        def progress(done: int, total: int) -> None:
            report(
                self.on_stage,
                Stage(TASKS_STAGE, done=done, total=total, unit="tasks", finished=done == total),
            )

        return self.made().map(fn, listed, progress if self.on_stage is not None else None)

    def close(self) -> None:
        """Close the executor (and its local cluster) when one was made."""
        if self._made is not None:
            self._made.close()
            self._made = None


_ACTIVE: ContextVar[Execution | None] = ContextVar("mmflow_execution", default=None)


def activate(execution: Execution | None) -> None:
    """Make ``execution`` the one :func:`run_tasks` uses in this context (``None``: local)."""
    _ACTIVE.set(execution)


def active_execution() -> Execution | None:
    """Return the execution :func:`activate` set, or ``None``."""
    return _ACTIVE.get()


def run_tasks(fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
    """Run ``fn`` over ``tasks`` on the active execution (local when none): results in order.

    The engine's executor hook: ``run_engine(..., executor=run_tasks)``; the command line
    activates the ``--executor`` choice before the command runs.
    """
    execution = _ACTIVE.get()
    if execution is None:
        return LocalExecutor().map(fn, tasks)
    return execution.map(fn, tasks)
