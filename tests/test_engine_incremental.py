"""Incremental runs (issue 14 item 3): new day, unchanged re-run (no work), changed past day,
interrupted run; every result equals a whole run of the engine over the same days."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.analysis import BarOptions, Selection, Signing, prepare_market
from mmflow.convert import convert
from mmflow.engine.census import take_census
from mmflow.engine.chunks import plan_chunks
from mmflow.engine.finish import FinishedAnalysis, finish_analysis, finish_market
from mmflow.engine.incremental import (
    IncrementalRun,
    check_incremental,
    partition_reader,
    run_incremental,
)
from mmflow.engine.run import make_settings, run_chunk, run_engine
from mmflow.engine.state import ChunkResult, ChunkTask, TableSource
from mmflow.errors import MmflowError, ParameterError
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import QUOTES, TRADES
from tests.market_days import market_days

OPTIONS = BarOptions(every="5m", lookback=20)
PHASES = PhaseParameters(lookback=OPTIONS.lookback)
SETTINGS = make_settings(
    OPTIONS, Signing(), keys=["venue", "symbol"], session=False, has_quotes=True, memory_limit=1
)
PARAMETERS = {"every": OPTIONS.every, "lookback": OPTIONS.lookback}


def write_days(dataset: Path, seed: int, first_day: int, days: int, **kwargs: Any) -> None:
    trades, quotes = market_days(seed, first_day=first_day, days=days, **kwargs)
    convert([(TRADES, trades.lazy()), (QUOTES, quotes.lazy())], dataset, overwrite=True)


def all_rows(dataset: Path) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    paths = sorted(dataset.rglob("*.parquet"))
    trades, quotes = partition_reader(Selection())(paths)
    assert quotes is not None
    return trades.sort("ts", maintain_order=True), quotes.sort("ts", maintain_order=True)


def whole(dataset: Path, bucket_volumes: dict[str, float] | None = None) -> FinishedAnalysis:
    """The whole run over every day of the dataset (optionally with given bucket volumes)."""
    trades, quotes = all_rows(dataset)
    prepared_trades, prepared_quotes, _ = prepare_market(trades, quotes, Selection())
    assert prepared_quotes is not None
    if bucket_volumes is None:
        run = run_engine(prepared_trades, prepared_quotes, SETTINGS)
        assert run.finished is not None
        return finish_analysis(run.finished, SETTINGS, run.spans, PHASES)
    census = take_census(
        prepared_trades,
        prepared_quotes,
        keys=SETTINGS.keys,
        every_ns=SETTINGS.every_ns,
        session=False,
    )
    plan = plan_chunks(
        census, every_ns=SETTINGS.every_ns, memory_limit=0, buckets_per_day=50, max_bars=None
    )
    trade_frame, quote_frame = prepared_trades.collect(), prepared_quotes.collect()
    results = [
        run_chunk(
            ChunkTask(
                replace(chunk, bucket_volume=bucket_volumes[f"{chunk.venue}|{chunk.symbol}"]),
                SETTINGS,
                TableSource(frame=trade_frame),
                TableSource(frame=quote_frame),
            )
        )
        for chunk in plan.chunks
    ]
    assert census.quotes is not None
    counts = census.quotes.group_by(list(SETTINGS.keys)).agg(pl.col("quotes").sum().cast(pl.UInt32))
    spans = (
        census.trades.group_by(list(SETTINGS.keys))
        .agg(pl.col("first_ts").min().alias("start"), pl.col("last_ts").max().alias("end"))
        .with_columns(pl.col("start", "end").cast(pl.Datetime("ns", "UTC")))
    )
    finished = finish_market(results, SETTINGS, quote_counts=counts)
    return finish_analysis(finished, SETTINGS, spans, PHASES)


def assert_same(got: FinishedAnalysis | None, expected: FinishedAnalysis) -> None:
    assert got is not None
    for name in ("bars", "summary"):
        left = getattr(got, name)
        right = getattr(expected, name)
        assert_frame_equal(left, right, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def counting() -> tuple[list[int], Callable[..., Any]]:
    ran: list[int] = []

    def executor(fn: Callable[[ChunkTask], ChunkResult], tasks: Sequence[ChunkTask]) -> Any:
        for task in tasks:
            ran.append(1)
            yield fn(task)

    return ran, executor


def incremental(dataset: Path, results: Path, executor: Any = None) -> IncrementalRun:
    return run_incremental(
        dataset,
        results,
        SETTINGS,
        read=partition_reader(Selection()),
        parameters=PARAMETERS,
        phase_parameters=PHASES,
        executor=executor,
    )


def pinned(results: Path) -> dict[str, float]:
    manifest = json.loads((results / "manifest.json").read_text())
    return {key.replace("%2F", "/"): value for key, value in manifest["bucket_volumes"].items()}


@pytest.fixture
def three_days(tmp_path: Path) -> tuple[Path, Path]:
    dataset, results = tmp_path / "dataset", tmp_path / "results"
    write_days(dataset, 5, 0, 3)
    return dataset, results


def test_first_run_equals_the_whole_run(three_days: tuple[Path, Path]) -> None:
    dataset, results = three_days
    ran, executor = counting()
    outcome = incremental(dataset, results, executor)
    assert len(ran) == 2 * 3  # instrument × day
    assert len(outcome.computed) == 6
    manifest = json.loads((results / "manifest.json").read_text())
    for entry in manifest["chunks"].values():  # the census step = the chunk's own last quote
        assert entry["quotes_out"]["last"] == entry["quote_out"]
    expected = whole(dataset)
    assert_same(outcome.analysis, expected)
    # the files in RESULTS are the same tables
    assert_frame_equal(pl.read_parquet(results / "bars.parquet"), outcome.analysis.bars)  # type: ignore[union-attr]
    assert_frame_equal(pl.read_parquet(results / "summary.parquet"), expected.summary)


def test_unchanged_rerun_runs_no_task_in_well_under_a_second(
    three_days: tuple[Path, Path],
) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    before = (results / "bars.parquet").read_bytes()
    os.utime(dataset / "symbol=AAA" / "date=2024-06-02" / "trades.parquet")  # touched only
    ran, executor = counting()
    started = time.monotonic()
    outcome = incremental(dataset, results, executor)
    assert ran == []  # no chunk task ran
    assert outcome.nothing_new
    assert outcome.tasks == 0
    assert time.monotonic() - started < 0.5
    assert (results / "bars.parquet").read_bytes() == before
    ran, executor = counting()
    assert incremental(dataset, results, executor).nothing_new  # the new mtime was recorded
    assert ran == []


def test_a_new_day_computes_it_and_the_day_before_only(three_days: tuple[Path, Path]) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    volumes = pinned(results)
    write_days(dataset, 5, 3, 1)
    ran, executor = counting()
    outcome = incremental(dataset, results, executor)
    # the new day, and the last stored day (its last trades' cost horizon reaches into the new
    # day, and they used the instrument's last quote, which moved)
    assert outcome.computed == [
        "symbol=AAA/date=2024-06-03",
        "symbol=AAA/date=2024-06-04",
        "symbol=BBB/date=2024-06-03",
        "symbol=BBB/date=2024-06-04",
    ]
    assert len(ran) == 4
    assert pinned(results) == volumes  # VPIN bucket volume pinned at the first run
    assert_same(outcome.analysis, whole(dataset, volumes))
    # the dataset grown at once gives the same tables (bucket volumes pinned the same way)
    fresh = incremental(dataset, results.parent / "fresh")
    assert fresh.analysis is not None
    assert whole(dataset).bars.height == fresh.analysis.bars.height


@pytest.mark.parametrize("batch", [16, 1])
def test_a_changed_past_day_recomputes_it_and_every_later_day(
    three_days: tuple[Path, Path], batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mmflow.engine.incremental.CENSUS_BATCH", batch)  # census in batches
    dataset, results = three_days
    incremental(dataset, results)
    volumes = pinned(results)
    write_days(dataset, 99, 1, 1, symbols=("AAA",))  # AAA's second day changes
    ran, executor = counting()
    outcome = incremental(dataset, results, executor)
    assert outcome.computed == [
        "symbol=AAA/date=2024-06-01",  # its cost horizon reaches into the changed day
        "symbol=AAA/date=2024-06-02",
        "symbol=AAA/date=2024-06-03",
    ]
    assert len(ran) == 3
    assert_same(outcome.analysis, whole(dataset, volumes))


def test_a_removed_day_is_dropped_and_later_days_recomputed(
    three_days: tuple[Path, Path],
) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    volumes = pinned(results)
    for file in (dataset / "symbol=BBB" / "date=2024-06-03").iterdir():
        file.unlink()
    (dataset / "symbol=BBB" / "date=2024-06-03").rmdir()
    outcome = incremental(dataset, results)
    assert outcome.removed == ["symbol=BBB/date=2024-06-03"]
    assert_same(outcome.analysis, whole(dataset, volumes))


def test_an_interrupted_run_leaves_the_previous_results(three_days: tuple[Path, Path]) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    before = {name: (results / name).read_bytes() for name in ("bars.parquet", "summary.parquet")}
    manifest = (results / "manifest.json").read_text()
    write_days(dataset, 5, 3, 1)

    def interrupted(fn: Callable[[ChunkTask], ChunkResult], tasks: Sequence[ChunkTask]) -> Any:
        yield fn(tasks[0])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        incremental(dataset, results, interrupted)
    assert {n: (results / n).read_bytes() for n in before} == before
    assert (results / "manifest.json").read_text() == manifest
    volumes = pinned(results)
    outcome = incremental(dataset, results)  # the next run finishes the work
    assert len(outcome.computed) == 4
    assert_same(outcome.analysis, whole(dataset, volumes))


def test_killed_just_before_the_commit_leaves_the_previous_results(
    three_days: tuple[Path, Path], tmp_path: Path
) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    before = {name: (results / name).read_bytes() for name in ("bars.parquet", "summary.parquet")}
    write_days(dataset, 5, 3, 1)
    marker = tmp_path / "about-to-commit"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        import mmflow.engine.incremental as incremental
        from tests.test_engine_incremental import incremental as run

        def stall(folder):  # every new file is written; the commit comes next
            Path({str(marker)!r}).write_text("now")
            time.sleep(120)

        incremental._sync = stall
        run(Path({str(dataset)!r}), Path({str(results)!r}))
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, "the run ended before the commit"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert {n: (results / n).read_bytes() for n in before} == before
    assert len(list((results / "runs").iterdir())) == 2  # the dead run's folder is not current
    volumes = pinned(results)
    outcome = incremental(dataset, results)
    assert len(outcome.computed) == 4
    assert len(list((results / "runs").iterdir())) == 1  # its leftovers are removed
    assert_same(outcome.analysis, whole(dataset, volumes))


def test_other_settings_recompute_everything(three_days: tuple[Path, Path]) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    outcome = run_incremental(
        dataset,
        results,
        SETTINGS,
        read=partition_reader(Selection()),
        parameters={**PARAMETERS, "lookback": 30},
        phase_parameters=PHASES,
    )
    assert len(outcome.computed) == 6


def test_unsupported_settings_and_folders_are_refused(tmp_path: Path) -> None:
    filled = replace(SETTINGS, options=replace(OPTIONS, fill=True))
    with pytest.raises(ParameterError, match="does not support --fill"):
        check_incremental(filled)
    with pytest.raises(ParameterError, match="does not support --session"):
        check_incremental(replace(SETTINGS, session=True))
    with pytest.raises(ParameterError, match="does not support --clean"):
        check_incremental(SETTINGS, clean="taq")
    stranger = tmp_path / "holiday-photos"
    stranger.mkdir()
    (stranger / "beach.jpg").write_bytes(b"x")
    write_days(tmp_path / "dataset", 5, 0, 1)
    with pytest.raises(ParameterError, match="not an mmflow results folder"):
        incremental(tmp_path / "dataset", stranger)
    with pytest.raises(MmflowError, match="no symbol="):
        incremental(stranger, tmp_path / "results")


# --- the command line ----------------------------------------------------------------------------

SAMPLE = Path(__file__).parents[1] / "sample_data"


def mmflow(*args: str) -> Any:
    from click.testing import CliRunner

    from mmflow.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_incremental_equals_analyze_and_reruns_as_a_no_op(tmp_path: Path) -> None:
    dataset, results = tmp_path / "dataset", tmp_path / "results"
    assert mmflow("convert", str(SAMPLE / "tardis"), "-o", str(dataset)).exit_code == 0
    first = mmflow("analyze", str(dataset), "-o", str(results), "--incremental")
    assert first.exit_code == 0, first.output
    assert "computed 1 partitions (1 chunk tasks)" in first.stderr
    whole = tmp_path / "bars.parquet"
    assert mmflow("analyze", str(dataset), "-o", str(whole), "-q").exit_code == 0
    expected = pl.read_parquet(whole)
    got = pl.read_parquet(results / "bars.parquet").select(expected.columns)
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9, check_dtypes=False)
    again = mmflow("analyze", str(dataset), "-o", str(results), "--incremental")
    assert again.exit_code == 0
    assert "is up to date: nothing new or changed" in again.stderr


def test_cli_incremental_refuses_what_does_not_apply(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    write_days(dataset, 5, 0, 1)
    results = str(tmp_path / "results")
    for extra, message in (
        (["--to", "csv"], "--to does not apply with --incremental"),
        (["--fill"], "does not support --fill"),
        (["--session", "09:30-16:00"], "does not support --session"),
        (["--table", "summary"], "--table does not apply"),
        (["--quotes", str(dataset)], "--quotes does not apply"),
    ):
        result = mmflow("analyze", str(dataset), "-o", results, "--incremental", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output
    result = mmflow("analyze", str(dataset), "--incremental")
    assert result.exit_code == 2
    assert "needs -o RESULTS/" in result.output


def test_cli_incremental_alerts_on_the_updated_bars_and_on_a_no_op_rerun(tmp_path: Path) -> None:
    """A nightly cron job: --alert reads the whole updated bar table (exit 3 when it fires)."""
    dataset, results = tmp_path / "dataset", tmp_path / "results"
    write_days(dataset, 5, 0, 1)
    fires, quiet = "trades>=0", "trades<0"
    run = ("analyze", str(dataset), "-o", str(results), "--incremental", "--alert")
    first = mmflow(*run, fires, "--alert-to", str(tmp_path / "alerts.ndjson"))
    assert first.exit_code == 3, first.output
    assert first.stderr.count("ALERT ") == 2  # one line per instrument (two symbols)
    bars = pl.read_parquet(results / "bars.parquet")
    latest = bars.group_by("symbol").agg(pl.col("ts").max()).sort("symbol")
    found = pl.read_ndjson(tmp_path / "alerts.ndjson").sort("symbol")
    assert found["symbol"].to_list() == latest["symbol"].to_list()
    assert found["ts"].str.to_datetime(time_zone="UTC").to_list() == latest["ts"].to_list()
    assert mmflow(*run, quiet).exit_code == 0  # nothing new, nothing holds: exit 0
    again = mmflow(*run, fires)
    assert again.exit_code == 3
    assert "is up to date" in again.stderr
    assert again.stderr.count("ALERT ") == 2
    lonely = mmflow(
        "analyze", str(dataset), "-o", str(tmp_path / "r2"), "--incremental", "--alert-window", "5m"
    )
    assert lonely.exit_code == 2
    assert "--alert-window needs --alert" in lonely.output
    assert not (tmp_path / "r2").exists(), "a bad flag stops before any work"
    wrong = mmflow(*run, "trdes>0")
    assert wrong.exit_code == 2
    assert "unknown column 'trdes'" in wrong.output
    write_days(dataset, 5, 1, 1)
    later = mmflow(*run, quiet)
    assert later.exit_code == 0, later.output
    assert "computed" in later.stderr


def test_cli_incremental_on_dask_equals_local(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    dataset = tmp_path / "dataset"
    write_days(dataset, 3, 0, 2, symbols=("AAA", "BBB", "CCC"))
    local = mmflow("analyze", str(dataset), "-o", str(tmp_path / "local"), "--incremental")
    assert local.exit_code == 0, local.output
    remote = mmflow(
        "analyze",
        str(dataset),
        "-o",
        str(tmp_path / "dask"),
        "--incremental",
        "--executor",
        "dask",
        "--workers",
        "2",
    )
    assert remote.exit_code == 0, remote.output
    assert "computed 6 partitions (6 chunk tasks)" in remote.stderr
    for name in ("bars.parquet", "summary.parquet"):
        assert_frame_equal(
            pl.read_parquet(tmp_path / "dask" / name),
            pl.read_parquet(tmp_path / "local" / name),
            check_exact=False,
            rel_tol=1e-9,
        )


def test_a_second_run_at_once_is_refused(three_days: tuple[Path, Path]) -> None:
    import fcntl

    dataset, results = three_days
    results.mkdir()
    with (results / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the folder
        with pytest.raises(MmflowError, match="another incremental run is writing here"):
            incremental(dataset, results)
    assert incremental(dataset, results).computed  # free again


def test_compaction_rewrites_kept_tables_into_one_run(
    three_days: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, results = three_days
    incremental(dataset, results)
    volumes = pinned(results)
    write_days(dataset, 5, 3, 1)
    monkeypatch.setattr("mmflow.engine.incremental.COMPACT_AFTER", 1)
    outcome = incremental(dataset, results)
    assert len(list((results / "store").iterdir())) == 1  # every kept table moved along
    assert_same(outcome.analysis, whole(dataset, volumes))
    write_days(dataset, 5, 4, 1)
    monkeypatch.setattr("mmflow.engine.incremental.COMPACT_AFTER", 32)
    again = incremental(dataset, results)
    assert len(list((results / "store").iterdir())) == 2  # kept tables stay where they are
    assert_same(again.analysis, whole(dataset, volumes))
