"""CSV inputs are parsed once through the CLI (issue 11 item 4): each text input is spilled
into scratch parquet in the same collect as its row account, and everything after reads the
parquet. The rows, the account and the command's messages are those of the text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import mmflow.io
from mmflow.cli import run as cli_run
from mmflow.engine import inputs as engine_inputs
from mmflow.io.spill import parses_text, spill_text_inputs
from tests.helpers import run

HEADER = "ts,symbol,price,size,aggressor_side\n"
NS = 1_000_000_000
START = 1_704_153_600 * NS  # 2024-01-02 UTC


def _trades_csv(path: Path) -> Path:
    lines = [HEADER]
    for i in range(400):
        symbol = "XY"[i % 2]
        lines.append(f"{START + i * 7 * NS},{symbol},{100 + (i % 13) * 0.5},{1 + i % 5},0\n")
    lines.append(f"{START + 10 * NS},X,-3,1,0\n")  # non-positive price: dropped and counted
    lines.append("0,X,100,1,0\n")  # timestamp outside the plausible range
    lines.append(f"{START + 11 * NS},X,abc,1,0\n")  # unparseable row
    path.write_text("".join(lines))
    return path


def _quotes_csv(path: Path) -> Path:
    lines = ["ts,symbol,bid_price,bid_size,ask_price,ask_size\n"]
    for i in range(600):
        symbol = "XY"[i % 2]
        mid = 100 + (i % 11) * 0.5
        lines.append(f"{START + i * 5 * NS},{symbol},{mid - 0.25},{3},{mid + 0.25},{4}\n")
    path.write_text("".join(lines))
    return path


def test_spilled_inputs_keep_rows_and_account(tmp_path: Path) -> None:
    paths = [_trades_csv(tmp_path / "t.csv"), _quotes_csv(tmp_path / "q.csv")]
    found = mmflow.io.load_inputs([str(p) for p in paths], "auto", None)
    before = found.loaded
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    after = spill_text_inputs(before, scratch)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        for frame_old, frame_new in (
            (old.frames.trades, new.frames.trades),
            (old.frames.quotes, new.frames.quotes),
        ):
            assert (frame_old is None) == (frame_new is None)
            if frame_old is None or frame_new is None:
                continue
            assert parses_text(frame_old)
            assert not parses_text(frame_new)
            assert frame_new.collect().equals(frame_old.collect())
        assert old.account is not None
        assert new.account is not None
        assert new.account.collect().equals(old.account.collect())
    assert after[0].account is not None
    reasons = set(after[0].account.collect()["reason"])
    assert {"unparseable row", "non-positive price"} <= reasons


def test_in_memory_and_binary_inputs_are_left_alone(tmp_path: Path) -> None:
    frame = pl.read_csv(_quotes_csv(tmp_path / "q.csv"))
    frame.write_parquet(tmp_path / "q.parquet")
    found = mmflow.io.load_inputs([str(tmp_path / "q.parquet")], "auto", None)
    assert spill_text_inputs(found.loaded, tmp_path) == found.loaded
    assert list(tmp_path.glob("*-quotes.parquet")) == []


def test_cli_parses_each_csv_once_with_the_same_output_and_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    trades = _trades_csv(tmp_path / "t.csv")
    quotes = _quotes_csv(tmp_path / "q.csv")
    args = ["--method", "lee-ready", "--bar", "1m", "--verbose", "--skip-bad-rows"]
    # the reference: the path without the spill (account and engine each parse the text)
    with monkeypatch.context() as patch:
        patch.setattr(cli_run, "spill_text_inputs", lambda loaded, _: list(loaded))
        (tmp_path / "a").mkdir()
        code, _, reference_err = run("analyze", trades, quotes, *args, "-o", "a/out.parquet")
    assert code == 0, reference_err

    parses: list[str] = []
    collect_all = pl.collect_all
    collect = pl.LazyFrame.collect

    def counted_all(plans: Sequence[pl.LazyFrame], *a: Any, **k: Any) -> list[pl.DataFrame]:
        parses.extend("all" for plan in plans[:1] if any(parses_text(p) for p in plans))
        frames: list[pl.DataFrame] = collect_all(plans, *a, **k)
        return frames

    def counted(self: pl.LazyFrame, *a: Any, **k: Any) -> pl.DataFrame:
        if parses_text(self):
            parses.append("one")
        frame: pl.DataFrame = collect(self, *a, **k)
        return frame

    def no_second_spill(*_: Any) -> pl.LazyFrame:
        msg = "the engine parsed a text input again"
        raise AssertionError(msg)

    monkeypatch.setattr(pl, "collect_all", counted_all)
    monkeypatch.setattr(pl.LazyFrame, "collect", counted)
    monkeypatch.setattr(engine_inputs, "_spill", no_second_spill)
    (tmp_path / "b").mkdir()
    code, _, err = run("analyze", trades, quotes, *args, "-o", "b/out.parquet")
    assert code == 0, err
    assert parses == ["all", "all"]  # one collect per CSV file: its sinks and its account
    assert err.replace("b/out", "a/out") == reference_err
    assert pl.read_parquet(tmp_path / "b/out.parquet").equals(
        pl.read_parquet(tmp_path / "a/out.parquet")
    )
    assert list(tmp_path.glob(".mmflow-*")) == []  # the scratch copies are removed
    assert any(line.startswith("Rows: trades: 403 read") for line in err.splitlines()), err
