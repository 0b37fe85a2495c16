"""Engine tasks carry file sources under a distributing executor (issue 14): workers scan their
own rows (paths + filters), never the client's frames, and results equal the local run.

The command-line tests run ``flow``/``analyze``/``phases``/``inventory`` with ``--executor dask``
on one local 2-worker cluster (``--scheduler``; one run starts its own with ``--workers 2``) on
the sample data and on a generated converted dataset (3 symbols × 2 venues × 3 days); stdout
must equal the local run's and stderr too (no Dask warning, no "ran nothing" note).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result

from mmflow.analysis import BarOptions, Selection, Signing, prepare_market
from mmflow.cli import cli
from mmflow.convert import convert
from mmflow.engine.executors import Execution, activate, ships_tasks
from mmflow.engine.run import make_settings, run_engine
from mmflow.engine.state import ChunkResult, ChunkTask, EngineSettings
from mmflow.io import ReadOptions, load_inputs
from mmflow.io.assemble import gather, read_many
from mmflow.schema import QUOTES, TRADES, instrument_keys
from tests.helpers import assert_same_engine_run
from tests.market_days import market_days

SAMPLE = Path(__file__).parents[1] / "sample_data"
COMMANDS = ("flow", "analyze", "phases", "inventory", "profile")


def settings_for(trades: pl.LazyFrame, quotes: pl.LazyFrame | None) -> EngineSettings:
    return make_settings(
        BarOptions(),
        Signing(),
        keys=instrument_keys(trades),
        session=False,
        has_quotes=quotes is not None,
        memory_limit=1,  # one chunk per instrument and day
    )


class Recording:
    """A local executor that keeps the tasks it was given (to inspect their sources)."""

    def __init__(self) -> None:
        self.tasks: list[ChunkTask] = []

    def __call__(
        self, function: Callable[[ChunkTask], ChunkResult], tasks: Sequence[ChunkTask]
    ) -> Iterable[ChunkResult]:
        self.tasks = list(tasks)
        return [function(task) for task in self.tasks]


def assert_file_sources(tasks: Sequence[ChunkTask], *, largest: int) -> None:
    assert tasks
    for task in tasks:
        sources = [task.trades] + ([task.quotes] if task.quotes is not None else [])
        for source in sources:
            assert source.frame is None  # no rows travel with the task
            assert source.paths or source.plan is not None
        assert len(pickle.dumps(task)) < largest


def generated(seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    return market_days(seed, days=3, symbols=("AAA", "BBB", "CCC"), venues=("XNAS", "BATS"))


@pytest.mark.parametrize("in_memory", [True, False])
def test_rows_in_memory_are_written_once_and_tasks_carry_paths(in_memory: bool) -> None:
    trades, quotes = generated()
    prepared_trades, prepared_quotes, _ = prepare_market(trades.lazy(), quotes.lazy(), Selection())
    settings = settings_for(prepared_trades, prepared_quotes)
    whole = run_engine(prepared_trades, prepared_quotes, settings, executor=Recording())
    recording = Recording()
    files = run_engine(
        prepared_trades,
        prepared_quotes,
        settings,
        executor=recording,
        files=True,
        in_memory=in_memory,
    )
    assert len(recording.tasks) == 3 * 2 * 3
    assert_file_sources(recording.tasks, largest=20_000)
    if in_memory:  # one file per instrument (removed after the run): a task names its own
        by_instrument: dict[tuple[str | None, str], set[tuple[str, ...]]] = {}
        for task in recording.tasks:
            by_instrument.setdefault(task.chunk.instrument, set()).add(task.trades.paths)
        assert len(by_instrument) == 3 * 2
        assert all(len(paths) == 1 for paths in by_instrument.values())
        assert len({p for paths in by_instrument.values() for p in paths}) == 3 * 2
    assert_same_engine_run(whole, files)


def test_file_scans_travel_as_plans(tmp_path: Path) -> None:
    trades, quotes = generated(6)
    convert([(TRADES, trades.lazy()), (QUOTES, quotes.lazy())], tmp_path / "dataset")
    found = load_inputs([str(tmp_path / "dataset")], "auto", ReadOptions())
    loaded = read_many(found.loaded)  # few files: they stay lazy scans
    trade_scan, quote_scan = gather(loaded, TRADES), gather(loaded, QUOTES)
    assert trade_scan is not None
    prepared_trades, prepared_quotes, _ = prepare_market(trade_scan, quote_scan, Selection())
    settings = settings_for(prepared_trades, prepared_quotes)
    whole = run_engine(prepared_trades, prepared_quotes, settings, executor=Recording())
    recording = Recording()
    files = run_engine(prepared_trades, prepared_quotes, settings, executor=recording, files=True)
    assert_file_sources(recording.tasks, largest=200_000)  # ~6 KB of plan per file
    assert all(task.trades.plan is not None for task in recording.tasks)
    assert_same_engine_run(whole, files)


def test_ships_tasks_follows_the_active_execution() -> None:
    assert not ships_tasks()
    activate(Execution("local"))
    try:
        assert not ships_tasks()
    finally:
        activate(None)


def test_convert_checks_dask_flags_before_reading(tmp_path: Path) -> None:
    # issue 14: convert runs on Dask too (tests/test_convert_dask.py); a bad flag combination
    # is still a usage error before anything is read
    missing = str(tmp_path / "no-such-file.csv")
    result = CliRunner().invoke(
        cli, ["convert", missing, "-o", str(tmp_path / "out"), "--workers", "2"]
    )
    assert result.exit_code == 2, result.output
    assert "--workers needs --executor dask" in result.output
    assert "ran nothing" not in result.output
    assert not (tmp_path / "out").exists()


def test_convert_follows_a_shared_dask_default(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["convert", str(SAMPLE / "simulated"), "-o", str(out), "--workers", "1"],
        env={"MMFLOW_EXECUTOR": "dask"},
    )
    assert result.exit_code == 0, result.output
    assert "ran nothing" not in result.stderr  # the files were converted on the cluster
    assert sorted(p.name for p in out.rglob("*.parquet")) == ["quotes.parquet", "trades.parquet"]


# --- the command line on a Dask cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    pytest.importorskip("distributed")
    from mmflow.engine.executors import DaskExecutor

    with DaskExecutor(workers=2) as executor:
        yield executor.cluster.scheduler_address


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dataset")
    trades, quotes = generated(7)
    convert([(TRADES, trades.lazy()), (QUOTES, quotes.lazy())], folder)
    return folder


def invoke(*args: str) -> Result:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, list(args))
    assert not [w for w in caught if "large graph" in str(w.message)]
    return result


def assert_same_output(local: Result, remote: Result) -> None:
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert remote.stdout == local.stdout
    assert remote.stderr == local.stderr  # no warning, no "ran nothing" note
    assert "Warning: Sending" not in remote.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("where", ["sample", "dataset"])
def test_commands_on_dask_equal_local(
    scheduler: str, dataset: Path, command: str, where: str
) -> None:
    source = str(SAMPLE) if where == "sample" else str(dataset)
    local = invoke(command, source)
    remote = invoke(command, source, "--executor", "dask", "--scheduler", scheduler)
    assert local.stdout.strip()
    assert_same_output(local, remote)


def test_analyze_on_a_started_two_worker_cluster(dataset: Path) -> None:
    pytest.importorskip("distributed")
    local = invoke("analyze", str(dataset))
    remote = invoke("analyze", str(dataset), "--executor", "dask", "--workers", "2")
    assert_same_output(local, remote)
