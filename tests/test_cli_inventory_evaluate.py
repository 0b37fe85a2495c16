"""`mmflow inventory --evaluate` on committed real files (Binance COIN-M, sample_data/binance).

The CLI's numbers are recomputed by the reference loop of test_metrics_event_study from the bars
the library builds for the same file and options.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

import mmflow.io
from mmflow.analysis import BarOptions, market_bars
from mmflow.io.assemble import gather
from mmflow.metrics.event_study import WITHDRAWAL_STUDY_COLUMNS
from mmflow.schema import QUOTES, TRADES
from tests.helpers import run
from tests.test_metrics_event_study import assert_matches, reference_study

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "binance"
TRADES_FILE = SAMPLE / "BTCUSD_PERP-trades-2024-08-09.csv"
QUOTES_FILE = SAMPLE / "BTCUSD_PERP-bookTicker-2024-08-09.csv"
OPTIONS: list[str | Path] = ["--bar", "1s", "--lookback", "20"]


def library_bars() -> pl.DataFrame:
    inputs = mmflow.io.load([str(TRADES_FILE), str(QUOTES_FILE)])
    trades, quotes = gather(inputs, TRADES), gather(inputs, QUOTES)
    assert trades is not None
    market = market_bars(trades, quotes, options=BarOptions(every="1s", lookback=20))
    return market.bars.select(
        "venue", "symbol", "ts", "mid_close", "close", "liquidity_state"
    ).collect()


def test_evaluate_matches_the_reference_loop_on_binance() -> None:
    code, out, err = run(
        "inventory", TRADES_FILE, "--quotes", QUOTES_FILE, *OPTIONS, "--evaluate", "--to", "csv"
    )
    assert code == 0, err
    study = pl.read_csv(io.StringIO(out))
    assert study["horizon_bars"].to_list() == [1, 5, 15, 60]
    # Two withdrawal episodes in the five minutes; at 15 and 60 bars the window of one or both
    # runs past the end of the file, and they are counted, not silently dropped.
    assert study["episodes"].to_list() == [2, 2, 2, 2]
    assert study["events"].to_list() == [2, 2, 1, 0]
    assert study["beyond_data"].to_list() == [0, 0, 1, 2]
    assert_matches(study, reference_study(library_bars(), [1, 5, 15, 60], seed=0))


def test_evaluate_horizons_seed_and_output_file(tmp_path: Path) -> None:
    target = tmp_path / "study.parquet"
    args: list[str | Path] = ["inventory", TRADES_FILE, "--quotes", QUOTES_FILE, *OPTIONS]
    args.append("--evaluate")
    args += ["--horizons", "2,3", "--placebo-seed", "11", "--placebo-ratio", "4"]
    code, _, err = run(*args, "-o", target)
    assert code == 0, err
    study = pl.read_parquet(target)
    assert study["horizon_bars"].to_list() == [2, 3]
    assert study["placebo_bars"].to_list() == [8, 8]
    assert_matches(study, reference_study(library_bars(), [2, 3], seed=11, ratio=4))
    metadata = pq.read_metadata(target).metadata
    assert metadata[b"mmflow.schema"] == b"inventory.evaluate/1"
    parameters = json.loads(metadata[b"mmflow.parameters"])
    assert parameters["horizons"] == [2, 3]
    assert parameters["placebo_seed"] == 11
    assert parameters["placebo_ratio"] == 4


def test_evaluate_prints_a_table() -> None:
    code, out, _ = run("inventory", TRADES_FILE, "--quotes", QUOTES_FILE, *OPTIONS, "--evaluate")
    assert code == 0
    assert "realised volatility after liquidity withdrawal" in out
    assert "BTCUSD_PERP" in out


def test_evaluate_without_quotes_is_empty_with_a_note() -> None:
    code, out, err = run("inventory", TRADES_FILE, *OPTIONS, "--evaluate", "--to", "csv")
    assert code == 0
    assert "needs quotes" in err
    # issue 9: the instrument keys (venue, symbol) come first, then the study's columns
    assert out.splitlines()[0].split(",") == ["venue", "symbol", *WITHDRAWAL_STUDY_COLUMNS]
    assert len(out.splitlines()) == 1


def test_evaluate_without_episodes_is_empty_with_a_note() -> None:
    args: list[str | Path] = ["inventory", TRADES_FILE, "--quotes", QUOTES_FILE, *OPTIONS]
    args.append("--evaluate")
    code, out, err = run(*args, "--spread-factor", "1000", "--depth-factor", "0.000001")
    assert code == 0
    assert "no liquidity withdrawal episodes" in err
    assert out.strip() == ""


def test_evaluate_refuses_bad_flags() -> None:
    base: list[str | Path] = ["inventory", TRADES_FILE, "--quotes", QUOTES_FILE, "--evaluate"]
    many = ",".join(str(h) for h in range(1, 18))
    for bad in (
        ["--horizons", "0"],
        ["--horizons", "1,x"],
        ["--horizons", "5,5"],
        ["--horizons", many],
    ):
        code, _, err = run(*base, *bad)
        assert code == 2, bad
        assert "horizons" in err
    code, _, err = run(*base, "--placebo-seed", "-1")
    assert code == 2
    code, _, err = run(*base, "--placebo-ratio", "0")
    assert code == 2
    code, _, err = run(*base, "--table", "summary")
    assert code == 2
    assert "--table" in err


def test_evaluate_without_rows_is_a_data_error() -> None:
    args: list[str | Path] = ["inventory", TRADES_FILE, "--quotes", QUOTES_FILE, "--evaluate"]
    code, _, err = run(*args, "--start", "2030-01-01")
    assert code == 1
    assert "no trades" in err
