"""``mmflow convert --executor dask`` (issue 14): the dataset equals a local convert's.

Workers read their own input files and stage partitions; partitions fed by several files are
merged in input order. The Dask tests share one local cluster of two worker processes on the
loopback interface (skipped without the ``dask`` extra), like ``test_engine_executors``.
"""

from __future__ import annotations

import gzip
import pickle
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.analysis import Selection, selection_account
from mmflow.cli.app import cli
from mmflow.convert import Converted, write_dataset
from mmflow.convert_tasks import ALIVE, ConvertTask, Part, convert_on, convert_part
from mmflow.engine.executors import DaskExecutor, LocalExecutor
from mmflow.errors import MmflowError, ReaderError, SizeLimitError
from mmflow.io import ReadOptions, RowAccount
from mmflow.io.assemble import account_of, collect_accounts, gather, read_many
from mmflow.io.many import MANY
from mmflow.schema import QUOTES, TRADES
from tests.market_days import market_days
from tests.test_engine_executors import (
    assert_ran_again,
    dask_executor,
    kill_running,
    logged_slowly,
)

__all__ = ["dask_executor"]  # the shared local cluster fixture (one per test module)

SAMPLE = Path(__file__).parent.parent / "sample_data"


def generated() -> tuple[pl.DataFrame, pl.DataFrame]:
    return market_days(5, days=3, symbols=("AAA", "BBB", "CCC"), rows=300)


def trade_parts(trades: pl.DataFrame) -> list[pl.DataFrame]:
    index = pl.int_range(pl.len())
    return [trades.filter(index % 3 == k) for k in range(3)]


def generated_folder(root: Path) -> Path:
    """CSV files where several files feed one partition, with ties across files.

    Three trade files split the rows (the second without a venue column); the third also
    repeats the first file's first timestamps at other prices (same ``ts``: the order of files
    decides). Quotes: two files split by symbol, a third adds AAA's second day again. One
    unparseable trade line is counted, not written.
    """
    folder = root / "market"
    folder.mkdir()
    trades, quotes = generated()
    parts = trade_parts(trades)
    ties = parts[0].head(20).with_columns(pl.col("price") + 0.5)
    parts[2] = pl.concat([parts[2], ties]).sort("ts", maintain_order=True)
    parts[1] = parts[1].drop("venue")
    for number, part in enumerate(parts):
        part.write_csv(folder / f"trades-{number}.csv")
    with (folder / "trades-0.csv").open("a") as file:
        file.write("2024-06-02T10:00:00.000000000+0000,AAA,XNAS,oops,1.0,1\n")
    aaa = pl.col("symbol") == "AAA"
    quotes.filter(aaa).write_csv(folder / "quotes-a.csv")
    quotes.filter(~aaa).write_csv(folder / "quotes-b.csv")
    second_day = quotes.filter(aaa & (pl.col("ts").dt.day() == 2)).head(40)
    second_day.with_columns(pl.col("bid_size") + 1).write_csv(folder / "quotes-c.csv")
    return folder


def local_convert(
    paths: list[Path], out: Path, selection: Selection
) -> tuple[Converted, RowAccount]:
    """Today's local convert (the reference), and its row account."""
    loaded = read_many(mmflow.io.load([str(p) for p in paths]))
    trades, quotes = gather(loaded, TRADES), gather(loaded, QUOTES)
    counted = account_of(collect_accounts(loaded, selection_account(trades, quotes, selection)))
    written, _ = write_dataset(trades, quotes, out, selection=selection, metadata={"run": "x"})
    return written, counted


def dask_convert(
    executor: Any, paths: list[Path], out: Path, selection: Selection
) -> tuple[Converted, RowAccount]:
    """Convert with ``executor``; return what was written and the summed row account."""
    accounts: list[RowAccount] = []
    written = convert_on(
        executor,
        mmflow.io.load([str(p) for p in paths]),
        out,
        selection=selection,
        metadata={"run": "x"},
        on_account=lambda frames: accounts.append(account_of(frames)),
    )
    return written, accounts[0]


def assert_same_dataset(local: Path, remote: Path) -> None:
    """Same files; in each the same columns, types, rows in the same order, same metadata."""
    files = sorted(p.relative_to(local) for p in local.rglob("*"))
    assert files == sorted(p.relative_to(remote) for p in remote.rglob("*"))
    assert any(f.suffix == ".parquet" for f in files)
    for name in files:
        if name.suffix != ".parquet":
            continue
        expected = pl.read_parquet(local / name, hive_partitioning=False)
        assert_frame_equal(pl.read_parquet(remote / name, hive_partitioning=False), expected)
        assert pq.read_metadata(remote / name).metadata == pq.read_metadata(local / name).metadata


def assert_same_account(local: RowAccount, remote: RowAccount) -> None:
    """The printed account: one summary per table, and the same warnings."""
    assert remote.tables() == local.tables()
    for table in local.tables():
        assert remote.summary(table) == local.summary(table)
        assert remote.reasons(table) == local.reasons(table)
    assert remote.warnings() == local.warnings()


def test_dask_convert_equals_local_on_the_sample_data(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    inputs = [SAMPLE]  # every sample file: CSV, gzip CSV, DBN, parquet
    local, local_account = local_convert(inputs, tmp_path / "local", Selection())
    remote, remote_account = dask_convert(dask_executor.map, inputs, tmp_path / "dask", Selection())
    assert remote == local
    assert len(remote.files) == 10
    assert_same_dataset(tmp_path / "local", tmp_path / "dask")
    assert_same_account(local_account, remote_account)


@pytest.mark.parametrize(
    "selection",
    [
        Selection(),
        Selection(symbols=("AAA", "CCC"), start=datetime(2024, 6, 1, 12, tzinfo=UTC)),
        Selection(clock="event", end=datetime(2024, 6, 3, 6, tzinfo=UTC)),
    ],
)
def test_dask_convert_merges_files_feeding_one_partition_like_local(
    dask_executor: DaskExecutor, tmp_path: Path, selection: Selection
) -> None:
    folder = generated_folder(tmp_path)
    local, local_account = local_convert([folder], tmp_path / "local", selection)
    remote, remote_account = dask_convert(dask_executor.map, [folder], tmp_path / "dask", selection)
    assert remote == local
    assert_same_dataset(tmp_path / "local", tmp_path / "dask")
    assert_same_account(local_account, remote_account)
    assert local_account.reasons("trades")  # the bad line (and, selected, the filters) dropped
    # the same on the local executor (no cluster): the task path itself is exact
    here, _ = dask_convert(LocalExecutor().map, [folder], tmp_path / "here", selection)
    assert here == local
    assert_same_dataset(tmp_path / "local", tmp_path / "here")


def test_several_files_feed_one_partition_and_ties_keep_input_order(tmp_path: Path) -> None:
    folder = generated_folder(tmp_path)
    convert_on(LocalExecutor().map, mmflow.io.load([str(folder)]), tmp_path / "out")
    day = pl.read_parquet(tmp_path / "out/symbol=AAA/date=2024-06-01/trades.parquet")
    first = trade_parts(generated()[0])[0].head(20)
    tied = day.filter(pl.col("ts").is_in(first["ts"].implode()))
    # each repeated timestamp: the first file's row, then the third file's (price + 0.5)
    pairs = tied.group_by("ts", maintain_order=True).agg(pl.col("price"))
    assert pairs.height > 0
    for prices in pairs["price"]:
        assert len(prices) == 2
        assert prices[1] == pytest.approx(prices[0] + 0.5)
    assert day["venue"].null_count() > 0  # the file without a venue column: null there


def test_many_files_read_in_groups_locally_equal_one_task_per_file(tmp_path: Path) -> None:
    # beyond mmflow.io.many.MANY files a local run reads same-layout files together (in
    # memory); the tasks read each file on its own: the dataset is the same
    trades, quotes = market_days(9, days=2, symbols=("AAA", "BBB"), rows=200)
    folder = tmp_path / "many"
    folder.mkdir()
    index = pl.int_range(pl.len())
    for number in range(MANY + 4):
        part = trades.filter(index % (MANY + 4) == number)
        (part.drop("venue") if number % 5 == 0 else part).write_csv(folder / f"t{number:02}.csv")
    quotes.write_csv(folder / "quotes.csv")
    local, local_account = local_convert([folder], tmp_path / "local", Selection())
    here, here_account = dask_convert(LocalExecutor().map, [folder], tmp_path / "here", Selection())
    assert here == local
    assert_same_dataset(tmp_path / "local", tmp_path / "here")
    assert_same_account(local_account, here_account)


def slow_convert_part(task: ConvertTask, log: str) -> Part:
    """The convert task, logged and slowed so that a worker is killed in the middle of one."""
    return logged_slowly(convert_part, str(task.number), log, task, delay=0.5)


def test_killed_worker_gives_the_same_dataset(dask_executor: DaskExecutor, tmp_path: Path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    folder = generated_folder(tmp_path)
    local, local_account = local_convert([folder], tmp_path / "local", Selection())
    log = tmp_path / "runs.txt"
    log.touch()
    killed: list[int] = []

    def on_progress(done: int, total: int) -> None:
        if done == 1 and not killed:
            killed.append(kill_running(log))

    def executor(fn: Any, tasks: Iterable[Any]) -> Iterator[Any]:
        if fn is convert_part:
            fn = partial(slow_convert_part, log=str(log))
        return dask_executor.map(fn, tasks, on_progress)

    dask_executor.batch = 1
    try:
        remote, remote_account = dask_convert(executor, [folder], tmp_path / "dask", Selection())
    finally:
        dask_executor.batch = None
    assert len(killed) == 1
    assert_ran_again(log, killed[0])  # a file was cut short, and converted again elsewhere
    assert remote == local
    assert_same_dataset(tmp_path / "local", tmp_path / "dask")  # nothing lost or doubled
    assert_same_account(local_account, remote_account)
    deadline = time.monotonic() + 30  # let the nanny restart the worker for the next tests
    while len(dask_executor.worker_processes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_stopped_run_leaves_nothing(tmp_path: Path) -> None:
    folder = generated_folder(tmp_path)
    stopped: list[bool] = []

    def interrupted(fn: Any, tasks: Iterable[Any]) -> Iterator[Any]:
        for number, result in enumerate(LocalExecutor().map(fn, tasks)):
            if number == 2:
                raise KeyboardInterrupt
            yield result

    out = tmp_path / "new" / "dataset"
    with pytest.raises(KeyboardInterrupt):
        convert_on(
            interrupted, mmflow.io.load([str(folder)]), out, stop=lambda: stopped.append(True)
        )
    assert stopped == [True]
    assert not (tmp_path / "new").exists()  # the folders this run made are gone too
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(KeyboardInterrupt):
        convert_on(interrupted, mmflow.io.load([str(folder)]), existing)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_a_failed_task_names_its_file_and_leaves_nothing(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    folder = generated_folder(tmp_path)
    truncated = folder / "trades-9.csv.gz"
    header, _, body = (folder / "trades-1.csv").read_bytes().partition(b"\n")
    whole = gzip.compress(header + b"\n" + body * 40)  # its start reads: the end is cut
    truncated.write_bytes(whole[: len(whole) * 3 // 4])
    loaded = mmflow.io.load([str(folder)])
    out = tmp_path / "out"
    with pytest.raises(ReaderError, match=r"trades-9\.csv\.gz"):
        convert_on(dask_executor.map, loaded, out)
    assert not out.exists()


def test_the_account_check_runs_before_anything_is_committed(tmp_path: Path) -> None:
    folder = generated_folder(tmp_path)

    def refuse(frames: list[pl.DataFrame]) -> None:
        account_of(frames).raise_for_bad_rows(skip=False)

    out = tmp_path / "out"
    with pytest.raises(MmflowError, match="line 647 does not parse"):
        convert_on(LocalExecutor().map, mmflow.io.load([str(folder)]), out, on_account=refuse)
    assert not out.exists()


def test_a_straggler_task_of_an_ended_run_removes_what_it_wrote(tmp_path: Path) -> None:
    staging = tmp_path / ".mmflow-convert-x"
    staging.mkdir()
    source = SAMPLE / "simulated" / "trades.parquet"
    task = ConvertTask(
        0, str(source), str(source), False, "parquet", ReadOptions(), Selection(), {}, str(staging)
    )
    with pytest.raises(MmflowError, match="has ended, or its staging folder is not visible"):
        convert_part(task)  # no marker: the client gave up
    assert not staging.exists()
    staging.mkdir()
    (staging / ALIVE).touch()
    assert convert_part(task).pieces == ()  # no table asked for: nothing staged, runs fine


def test_errors_travel_whole_between_processes() -> None:
    error = ReaderError("bad cell (check {symbols})", path="a.csv", parameters=("symbols",))
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ReaderError
    assert (back.path, back.message) == ("a.csv", "bad cell (check symbols)")
    assert back.describe_parameters({"symbols": "--symbol"}) == "a.csv: bad cell (check --symbol)"
    sized = pickle.loads(pickle.dumps(SizeLimitError("every", "1s", 10, 5, "bars", "fix it")))
    assert str(sized) == str(SizeLimitError("every", "1s", 10, 5, "bars", "fix it"))


# --- the command line --------------------------------------------------------------------------


def cli_convert(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["convert", *args], env=env)


def test_cli_dask_convert_prints_what_local_prints(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    folder = str(generated_folder(tmp_path))
    address = dask_executor.cluster.scheduler_address
    flags = ["--skip-bad-rows", "--symbol", "AAA", "--symbol", "BBB"]
    local = cli_convert(folder, "-o", str(tmp_path / "local"), *flags)
    remote = cli_convert(
        folder, "-o", str(tmp_path / "dask"), *flags, "--executor", "dask", "--scheduler", address
    )
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    here, there = str(tmp_path / "local"), str(tmp_path / "dask")
    assert remote.stderr.replace(there, here) == local.stderr
    assert "ran nothing" not in remote.stderr
    assert_same_dataset(tmp_path / "local", tmp_path / "dask")
    # without --skip-bad-rows: the same error, nothing written
    no = str(tmp_path / "no")
    refused = cli_convert(folder, "-o", no, "--executor", "dask", "--scheduler", address)
    plain = cli_convert(folder, "-o", no)
    assert refused.exit_code == plain.exit_code == 1
    assert refused.stderr == plain.stderr
    assert not (tmp_path / "no").exists()


def test_cli_refuses_clean_on_dask_before_reading(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    missing = str(tmp_path / "no-such-file.csv")
    out = tmp_path / "out"
    result = cli_convert(missing, "-o", str(out), "--clean", "taq", "--executor", "dask")
    assert result.exit_code == 2, result.output
    assert "convert on Dask does not clean" in result.stderr
    assert not out.exists()
