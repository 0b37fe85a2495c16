"""Executors (issue 14): local and Dask give the same results in task order; a killed worker's
task is retried, nothing lost or counted twice. The Dask tests use one local cluster of two
worker processes on the loopback interface (skipped without the ``dask`` extra)."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pytest

from mmflow.analysis import BarOptions, Selection, Signing, prepare_market
from mmflow.engine.executors import (
    DaskExecutor,
    DaskMissingError,
    LocalExecutor,
    check_scheduler,
    import_distributed,
    threads_per_worker,
)
from mmflow.engine.run import make_settings, run_chunk, run_engine
from mmflow.engine.state import ChunkResult, ChunkTask, EngineSettings
from mmflow.errors import ParameterError
from mmflow.io import ReadOptions, load_inputs
from mmflow.io.assemble import gather, read_many
from mmflow.schema import QUOTES, TRADES, instrument_keys
from tests.helpers import assert_same_engine_run
from tests.market_days import market_days

T = TypeVar("T")
R = TypeVar("R")


def square(task: tuple[int, float, str]) -> tuple[int, int, str | None]:
    """A deterministic stand-in task: wait, log the run (to count runs), return the square."""
    value, delay, log = task
    if log:
        with Path(log).open("a") as file:
            file.write(f"start {value} {os.getpid()}\n")
    time.sleep(delay)
    if log:
        with Path(log).open("a") as file:
            file.write(f"end {value} {os.getpid()}\n")
    return value * value, os.getpid(), os.environ.get("POLARS_MAX_THREADS")


def test_local_executor_runs_in_order_with_progress() -> None:
    seen: list[tuple[int, int]] = []
    with LocalExecutor() as executor:
        results = list(
            executor.map(
                square, [(v, 0.0, "") for v in (3, 1, 2)], lambda d, t: seen.append((d, t))
            )
        )
    assert [r[0] for r in results] == [9, 1, 4]
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_threads_per_worker_divides_the_cores() -> None:
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=2) == 1


def test_scheduler_address_is_checked() -> None:
    assert check_scheduler("tcp://localhost:8786") == "tcp://localhost:8786"
    for bad in ("localhost:8786", "tcp://localhost", "http://x:1", "tcp://:8786"):
        with pytest.raises(ParameterError, match="not a scheduler address"):
            check_scheduler(bad)


def test_missing_dask_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as when missing
    with pytest.raises(DaskMissingError, match=r"pip install 'mmflow\[dask\]'"):
        import_distributed()
    with pytest.raises(DaskMissingError):
        DaskExecutor(workers=1)


def test_bad_worker_counts_are_refused_before_any_cluster_starts() -> None:
    with pytest.raises(ParameterError, match="out of range"):
        DaskExecutor(workers=0)
    with pytest.raises(ParameterError, match="exclude each other"):
        DaskExecutor(scheduler="tcp://127.0.0.1:1", workers=2)


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[DaskExecutor]:
    pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    with DaskExecutor(workers=2) as executor:
        yield executor


def test_dask_equals_local_in_task_order(dask_executor: DaskExecutor) -> None:
    # later tasks are quicker, so they finish first: the results still come in task order
    tasks = [(value, 0.05 * (6 - value), "") for value in range(6)]
    seen: list[tuple[int, int]] = []
    local = [r[0] for r in LocalExecutor().map(square, tasks)]
    remote = list(dask_executor.map(square, tasks, lambda d, t: seen.append((d, t))))
    assert [r[0] for r in remote] == local
    assert seen == [(0, 6), *[(done, 6) for done in range(1, 7)]]
    assert len({r[1] for r in remote}) == 2  # both worker processes ran tasks
    assert {r[2] for r in remote} == {str(threads_per_worker(2))}  # POLARS_MAX_THREADS


def test_dask_batches_keep_task_order_and_count_tasks(dask_executor: DaskExecutor) -> None:
    tasks = [(value, 0.01 * (10 - value), "") for value in range(10)]
    seen: list[tuple[int, int]] = []
    dask_executor.batch = 3  # batches of 3, 3, 3 and 1 tasks
    try:
        remote = list(dask_executor.map(square, tasks, lambda d, t: seen.append((d, t))))
    finally:
        dask_executor.batch = None
    assert [r[0] for r in remote] == [v * v for v in range(10)]
    done = [d for d, _ in seen]
    assert done[0] == 0
    assert done[-1] == 10
    assert sorted(b - a for a, b in itertools.pairwise(done)) == [1, 3, 3, 3]  # per batch


def test_dask_runs_no_task_for_no_tasks(dask_executor: DaskExecutor) -> None:
    seen: list[tuple[int, int]] = []
    assert list(dask_executor.map(square, [], lambda d, t: seen.append((d, t)))) == []
    assert seen == [(0, 0)]


def test_an_existing_cluster_by_scheduler_address(dask_executor: DaskExecutor) -> None:
    address = dask_executor.cluster.scheduler_address
    with DaskExecutor(scheduler=address) as connected:
        assert connected.cluster is None
        assert [r[0] for r in connected.map(square, [(v, 0.0, "") for v in range(4)])] == [
            0,
            1,
            4,
            9,
        ]
    assert dask_executor.client.status == "running"  # closing a connection keeps the cluster


def test_unreachable_scheduler_is_one_clear_error() -> None:
    pytest.importorskip("distributed")
    from mmflow.errors import MmflowError

    with pytest.raises(MmflowError, match="cannot reach the Dask scheduler"):
        DaskExecutor(scheduler="tcp://127.0.0.1:9")  # discard port: nothing listens


def kill_running(log: Path) -> int:
    """SIGKILL a worker process in the middle of a task it logged as started; return its pid."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = [line.split() for line in log.read_text().splitlines()]
        ended = {(value, pid) for what, value, pid in runs if what == "end"}
        running = [(v, pid) for what, v, pid in runs if what == "start" and (v, pid) not in ended]
        if running:
            pid = int(running[-1][1])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.01)
    pytest.fail("no worker was running a task")


def test_killed_worker_task_is_retried_nothing_lost_or_doubled(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    log = tmp_path / "runs.txt"
    log.touch()
    tasks = [(value, 0.4, str(log)) for value in range(8)]
    killed: list[int] = []

    def on_progress(done: int, total: int) -> None:
        if done == 1 and not killed:
            killed.append(kill_running(log))

    results: list[Any] = list(dask_executor.map(square, tasks, on_progress))
    assert [r[0] for r in results] == [v * v for v in range(8)]  # nothing lost, in order
    assert len(killed) == 1
    runs = [line.split() for line in log.read_text().splitlines()]
    started = {(int(v), int(pid)) for what, v, pid in runs if what == "start"}
    ended = {(int(v), int(pid)) for what, v, pid in runs if what == "end"}
    cut_short = {value for value, pid in started - ended if pid == killed[0]}
    assert cut_short  # the dead worker was running a task when it was killed …
    for value in cut_short:  # … and another worker ran that task again to its end
        assert any(v == value and pid != killed[0] for v, pid in ended)
    # the cluster heals: the nanny starts a new worker and the next run uses both again
    deadline = time.monotonic() + 30
    while len(dask_executor.worker_processes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(dask_executor.worker_processes()) == 2


# --- the Execution options and the active execution -------------------------------------------


def test_execution_flags_are_checked_before_reading(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mmflow.cli import cli

    missing = str(tmp_path / "no-such-file.csv")  # never read: the flags fail first
    runner = CliRunner()
    for command in ("analyze", "flow", "inventory", "phases", "profile", "convert"):
        extra = ["-o", str(tmp_path / "out")] if command == "convert" else []
        result = runner.invoke(cli, [command, missing, *extra, "--workers", "2"])
        assert result.exit_code == 2, (command, result.output)
        assert "--workers needs --executor dask" in result.output
    result = runner.invoke(cli, ["flow", missing, "--executor", "dask", "--scheduler", "x:1"])
    assert result.exit_code == 2
    assert "not a scheduler address" in result.output


def test_dask_missing_is_exit_1_with_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mmflow.cli import cli

    monkeypatch.setitem(sys.modules, "distributed", None)
    result = CliRunner().invoke(cli, ["flow", str(tmp_path / "x.csv"), "--executor", "dask"])
    assert result.exit_code == 1
    assert "pip install 'mmflow[dask]'" in result.output


def test_a_command_leaves_no_active_execution_behind() -> None:
    """After a command, library runs in the same process are local again (no leaked executor)."""
    from click.testing import CliRunner

    from mmflow.cli import cli
    from mmflow.engine.executors import active_execution

    sample = Path(__file__).resolve().parent.parent / "sample_data" / "simulated"
    result = CliRunner().invoke(cli, ["flow", str(sample), "--executor", "local"])
    assert result.exit_code == 0, result.output
    assert active_execution() is None


def test_run_tasks_uses_the_active_execution_and_reports_tasks() -> None:
    from mmflow.engine.executors import Execution, activate, run_tasks
    from mmflow.progress import Stage

    stages: list[Stage] = []
    execution = Execution("local", on_stage=stages.append)
    activate(execution)
    try:
        assert [r[0] for r in run_tasks(square, [(v, 0.0, "") for v in (2, 3)])] == [4, 9]
    finally:
        activate(None)
    assert [(s.done, s.total, s.unit, s.finished) for s in stages] == [
        (0, 2, "tasks", False),
        (1, 2, "tasks", False),
        (2, 2, "tasks", True),
    ]
    assert [r[0] for r in run_tasks(square, [(4, 0.0, "")])] == [16]  # none active: local


# --- the real engine on Dask: equal to the local run ---------------------------------------------


def prepared_inputs(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None
) -> tuple[pl.LazyFrame, pl.LazyFrame | None, EngineSettings]:
    prepared_trades, prepared_quotes, _ = prepare_market(trades, quotes, Selection())
    settings = make_settings(
        BarOptions(),
        Signing(),
        keys=instrument_keys(prepared_trades),
        session=False,
        has_quotes=prepared_quotes is not None,
        memory_limit=1,  # one chunk per instrument and day: many tasks
    )
    return prepared_trades, prepared_quotes, settings


def sample_inputs() -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    found = load_inputs([str(Path(__file__).parents[1] / "sample_data")], "auto", ReadOptions())
    loaded = read_many(found.loaded)
    trades = gather(loaded, TRADES)
    assert trades is not None
    return trades, gather(loaded, QUOTES)


def test_engine_on_dask_equals_local_on_the_sample_data(dask_executor: DaskExecutor) -> None:
    trades, quotes, settings = prepared_inputs(*sample_inputs())
    local = run_engine(trades, quotes, settings, executor=LocalExecutor().map)
    remote = run_engine(trades, quotes, settings, executor=dask_executor.map)
    assert len(local.results) > 1
    assert_same_engine_run(local, remote)


@pytest.mark.parametrize("in_memory", [True, False])
def test_engine_on_dask_equals_local_on_generated_days(
    dask_executor: DaskExecutor, in_memory: bool
) -> None:
    generated = market_days(7, days=4, symbols=("AAA", "BBB", "CCC"), venues=("XNAS", "BATS"))
    trades, quotes, settings = prepared_inputs(generated[0].lazy(), generated[1].lazy())
    local = run_engine(trades, quotes, settings, executor=LocalExecutor().map, in_memory=in_memory)
    remote = run_engine(trades, quotes, settings, executor=dask_executor.map, in_memory=in_memory)
    assert len(local.results) == 3 * 2 * 4  # instrument × day
    assert_same_engine_run(local, remote)


def logged_slowly(fn: Callable[[T], R], name: str, log: str, task: T, delay: float = 0.3) -> R:
    """Run ``fn(task)`` slowed, logging its start and end (pid): a kill can land inside it."""
    with Path(log).open("a") as file:
        file.write(f"start {name} {os.getpid()}\n")
    time.sleep(delay)
    result = fn(task)
    with Path(log).open("a") as file:
        file.write(f"end {name} {os.getpid()}\n")
    return result


def assert_ran_again(log: Path, killed: int) -> None:
    """A task was cut short by the kill of worker ``killed`` and ran to its end elsewhere."""
    runs = [line.split() for line in log.read_text().splitlines()]
    cut_short = {v for what, v, pid in runs if what == "start" and int(pid) == killed} - {
        v for what, v, pid in runs if what == "end" and int(pid) == killed
    }
    assert cut_short
    assert all(any(w == "end" and v == c for w, v, _ in runs) for c in cut_short)


def slow_run_chunk(task: ChunkTask, log: str) -> ChunkResult:
    """The engine's task, logged and slowed so that a worker is killed in the middle of one."""
    return logged_slowly(run_chunk, f"{task.chunk.symbol}@{task.chunk.start}", log, task)


def test_engine_killed_worker_loses_and_doubles_nothing(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    log = tmp_path / "runs.txt"
    log.touch()
    generated = market_days(11, days=3, symbols=("AAA", "BBB"), venues=("XNAS",))
    trades, quotes, settings = prepared_inputs(generated[0].lazy(), generated[1].lazy())
    local = run_engine(trades, quotes, settings, executor=LocalExecutor().map)
    killed: list[int] = []

    def on_progress(done: int, total: int) -> None:
        if done == 1 and not killed:
            killed.append(kill_running(log))

    def executor(fn: Any, tasks: Any) -> Any:
        return dask_executor.map(partial(slow_run_chunk, log=str(log)), tasks, on_progress)

    remote = run_engine(trades, quotes, settings, executor=executor)
    assert len(killed) == 1
    assert_ran_again(log, killed[0])
    assert_same_engine_run(local, remote)  # every chunk once: volumes, counts and buckets equal
