"""The one-call Python API returns what the command line computes, as polars frames."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow
from mmflow.api import Analysis, Result
from mmflow.cli import cli
from mmflow.errors import MmflowError, NoDataError, ParameterError

ROOT = Path(__file__).resolve().parents[1]
TRADES = ROOT / "sample_data" / "simulated" / "trades.parquet"
QUOTES = ROOT / "sample_data" / "simulated" / "quotes.parquet"


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return mmflow.analyze(TRADES, quotes=QUOTES, bar="5m")


def test_analyze_matches_the_command_line_summary(analysis: Analysis) -> None:
    args = [
        "analyze",
        str(TRADES),
        str(QUOTES),
        "--bar",
        "5m",
        "--table",
        "summary",
        "--to",
        "json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert len(printed) == analysis.summary.height == 1
    assert printed[0]["trades"] == analysis.summary["trades"][0]
    assert printed[0]["net_flow"] == pytest.approx(analysis.summary["net_flow"][0])
    assert printed[0]["phase"] == analysis.summary["phase"][0]


def test_frames_give_the_same_result_as_files(analysis: Analysis) -> None:
    trades, quotes = pl.read_parquet(TRADES), pl.scan_parquet(QUOTES)
    again = mmflow.analyze(trades, quotes=quotes, bar="5m")
    # the same tables; floats may differ in the last bits (polars sums in parallel)
    assert_frame_equal(again.summary, analysis.summary, check_exact=False, rel_tol=1e-9)
    assert_frame_equal(again.bars, analysis.bars, check_exact=False, rel_tol=1e-9)


def test_bars_follow_the_bar_length(analysis: Analysis) -> None:
    steps = analysis.bars["ts"].diff().drop_nulls().unique().to_list()
    assert [step.total_seconds() for step in steps] == [300.0]


def test_repr_names_every_table_with_its_shape(analysis: Analysis) -> None:
    text = repr(analysis)
    assert text.startswith("Analysis(")
    assert f"summary: 1 rows × {analysis.summary.width} columns" in text
    assert f"bars: {analysis.bars.height:,} rows" in text
    html = analysis._repr_html_()
    assert html.count("<table") == 3
    assert "<code>.summary</code>" in html


def test_results_are_typed_and_list_their_tables() -> None:
    profile = mmflow.profile(TRADES, footprint=True, bar="1h")
    assert isinstance(profile, Result)
    assert set(profile.tables()) == {"levels", "value_areas", "footprint"}
    assert profile.levels["volume"].sum() == pytest.approx(pl.read_parquet(TRADES)["size"].sum())


def test_read_returns_canonical_frames() -> None:
    data = mmflow.read([TRADES, QUOTES])
    assert data.trades is not None
    assert data.quotes is not None
    assert data.trades.height == pl.read_parquet(TRADES).height
    assert {"ts", "symbol", "price", "size"} <= set(data.trades.columns)


def test_selection_leaving_nothing_says_which_arguments(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="symbols/start/end"):
        mmflow.flow(TRADES, symbols="NOPE")


def test_unknown_argument_is_named() -> None:
    with pytest.raises(TypeError, match="colour"):
        mmflow.flow(TRADES, colour="red")


def test_format_argument_picks_the_reader() -> None:
    result = mmflow.classify(TRADES, format="parquet", method="tick")
    assert set(result.mix["sign_method"].to_list()) <= {"tick", "none"}
    assert result.trades.height == pl.read_parquet(TRADES).height
    with pytest.raises(MmflowError):
        mmflow.classify(TRADES, format="tardis")


def test_a_bad_method_names_the_choices() -> None:
    with pytest.raises(ParameterError, match="lee-ready"):
        mmflow.classify(TRADES, method="nope")
