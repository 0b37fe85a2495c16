"""A converted dataset of many files reaches the engine as lazy scans (issue 11 item 3).

Beyond ``LAZY_INPUTS`` (32) files, ``read_many`` used to read every file into memory, so a
100 M-row dataset (4 symbols × 10 days = 80 files) was held whole before the engine started.
Now only small files are read (as before: many tiny files plan slowly when lazy); bigger ones
stay scans, a dataset file's symbol comes from its hive path, and a chunk's read
(:func:`mmflow.engine.run.within`) is pruned to its own symbol's files and days' row groups.
``SMALL_FILE`` is lowered here so test-sized files count as big.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow.io.assemble
from mmflow.analysis import BarOptions, Selection, Signing, prepare_market
from mmflow.cli import cli
from mmflow.convert import convert
from mmflow.engine.run import EngineRun, make_settings, plan_tasks, run_engine, within
from mmflow.io import ReadOptions, load_inputs
from mmflow.io.assemble import LAZY_INPUTS, gather, read_many
from mmflow.schema import QUOTES, TRADES, instrument_keys
from tests.market_days import market_days

SYMBOLS = ("AAA", "BBB", "CCC")
DAYS = 6  # 3 symbols x 6 days x (trades, quotes) = 36 files > LAZY_INPUTS


def dataset(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Write the same rows as a converted dataset and as one trades and one quotes file."""
    trades, quotes = market_days(11, days=DAYS, symbols=SYMBOLS, rows=400)
    trades, quotes = trades.drop("venue"), quotes.drop("venue")
    convert([(TRADES, trades.lazy()), (QUOTES, quotes.lazy())], tmp_path / "dataset")
    trades.write_parquet(tmp_path / "trades.parquet")
    quotes.write_parquet(tmp_path / "quotes.parquet")
    return tmp_path / "dataset", tmp_path / "trades.parquet", tmp_path / "quotes.parquet"


@pytest.fixture
def big_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every file of the test count as big (not read into memory among many)."""
    monkeypatch.setattr(mmflow.io.assemble, "SMALL_FILE", 0)


def test_many_big_files_stay_lazy_and_small_ones_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, _ = dataset(tmp_path)
    found = load_inputs([str(folder)], "auto", ReadOptions())
    assert len(found.loaded) == len(SYMBOLS) * DAYS * 2 > LAZY_INPUTS
    assert all(item.in_memory for item in read_many(found.loaded))  # small files: read
    monkeypatch.setattr(mmflow.io.assemble, "SMALL_FILE", 0)
    assert not any(item.in_memory for item in read_many(found.loaded))  # big: scans, unread


def _engine_run(folder: Path, **limits: int) -> tuple[EngineRun, pl.LazyFrame, pl.LazyFrame]:
    found = load_inputs([str(folder)], "auto", ReadOptions())
    loaded = read_many(found.loaded)
    trades, quotes = gather(loaded, TRADES), gather(loaded, QUOTES)
    assert trades is not None
    assert quotes is not None
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, Selection(), ordered=False)
    assert prepared_quotes is not None
    settings = make_settings(
        BarOptions(),
        Signing(method="lee-ready"),
        keys=instrument_keys(prepared),
        session=False,
        has_quotes=True,
        memory_limit=limits.get("memory_limit", 1),
    )
    run = run_engine(prepared, prepared_quotes, settings, in_memory=False)
    return run, prepared, prepared_quotes


def _scanned_files(plan: pl.LazyFrame) -> set[str]:
    """The files the optimised plan still scans (hive-pruned scans list none)."""
    found: set[str] = set()
    for listed in re.findall(r"Parquet SCAN \[([^\]]*)\]", plan.explain()):
        found.update(path.strip() for path in listed.split(",") if path.strip())
    return found


@pytest.mark.usefixtures("big_files")
def test_a_chunk_scans_only_its_own_symbols_files_with_its_days_pushed_down(
    tmp_path: Path,
) -> None:
    folder, _, _ = dataset(tmp_path)
    run, trades, quotes = _engine_run(folder)
    settings = run.settings
    planned = plan_tasks(trades, quotes, settings, in_memory=False)
    assert len(planned.tasks) == len(SYMBOLS) * DAYS  # memory_limit 1 B: a chunk per day
    for task in planned.tasks:
        for frame in (trades, quotes):
            plan = within(frame, task.chunk, settings.keys)
            files = _scanned_files(plan)
            assert files  # the chunk's symbol's files, and no other symbol's
            assert all(f"symbol={task.chunk.symbol}" in name for name in files)
            # the time range reaches the scan as plain comparisons (row-group statistics)
            assert re.search(r'SELECTION: .*col\("ts"\) >=', plan.explain())


@pytest.mark.usefixtures("big_files")
def test_lazy_dataset_run_equals_the_in_memory_run(tmp_path: Path) -> None:
    folder, _, _ = dataset(tmp_path)
    lazy, trades, quotes = _engine_run(folder)
    settings = lazy.settings
    held = run_engine(trades, quotes, settings, in_memory=True)
    assert lazy.finished is not None
    assert held.finished is not None
    assert len(lazy.results) == len(SYMBOLS) * DAYS
    for name in ("bars", "levels", "mix", "buckets", "checks"):
        left, right = getattr(held.finished, name), getattr(lazy.finished, name)
        assert_frame_equal(right, left, check_exact=False, rel_tol=1e-9, abs_tol=0.0)


@pytest.mark.usefixtures("big_files")
def test_analyze_of_a_lazy_dataset_equals_analyze_of_one_file(tmp_path: Path) -> None:
    folder, trades, quotes = dataset(tmp_path)
    runner = CliRunner()
    common = ["--method", "lee-ready", "--bar", "5m", "--memory-limit", "64M", "--quiet"]
    outputs = []
    for name, inputs in (("dataset", [folder]), ("files", [trades, quotes])):
        output = tmp_path / f"{name}.parquet"
        result = runner.invoke(cli, ["analyze", *map(str, inputs), "-o", str(output), *common])
        assert result.exit_code == 0, result.output
        outputs.append(pl.read_parquet(output))
        summary = runner.invoke(
            cli, ["analyze", *map(str, inputs), "--table", "summary", "--to", "csv", *common]
        )
        assert summary.exit_code == 0, summary.output
        outputs.append(pl.read_csv(summary.stdout.encode()))
    assert outputs[0].height > 0
    assert_frame_equal(outputs[2], outputs[0], check_exact=False, rel_tol=1e-9, abs_tol=0.0)
    assert_frame_equal(outputs[3], outputs[1], check_exact=False, rel_tol=1e-9, abs_tol=0.0)
