"""Streaming writes: a lazy table sunk to a temporary file and renamed; nothing left on error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from mmflow import scratch
from mmflow.cli import cli
from mmflow.cli import trades as trades_command
from mmflow.errors import ParameterError
from mmflow.render.write import STREAMED_FORMATS, sink_file, streamed_file, write_file
from tests.conftest import data_path

ESU4_MBP1_CSV = data_path(
    "databento", "nautilus_trader", "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv"
)
SUFFIXES = {"csv": ".csv", "ndjson": ".ndjson", "parquet": ".parquet", "arrow": ".arrow"}
METADATA = {"mmflow.schema": "test/1", "mmflow.parameters": "{}"}


def table(rows: int = 2_500) -> pl.LazyFrame:
    """Trades-like rows with every kind of column the writers treat specially."""
    start = datetime(2024, 7, 19, tzinfo=UTC)
    return pl.LazyFrame(
        {
            "ts": [start + timedelta(microseconds=7 * i) for i in range(rows)],
            "symbol": [("BTCUSDT", "ETHUSDT", None)[i % 3] for i in range(rows)],
            "price": [100.0 + (i % 17) / 8 for i in range(rows)],
            "size": [float(i % 5) if i % 11 else None for i in range(rows)],
            "trade_sign": pl.Series([(i % 3) - 1 for i in range(rows)], dtype=pl.Int8),
            "issues": [["a", "b"] if i % 4 == 0 else [] for i in range(rows)],
        }
    )


def left_over(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", STREAMED_FORMATS)
def test_streamed_file_holds_what_the_collected_path_writes(tmp_path: Path, fmt: str) -> None:
    suffix = SUFFIXES[fmt]
    collected, streamed = tmp_path / f"collected{suffix}", tmp_path / f"streamed{suffix}"
    write_file(table().collect(), collected, METADATA)
    assert sink_file(table(), streamed, METADATA) == 2_500
    if fmt == "parquet":
        assert_frame_equal(pl.read_parquet(streamed), pl.read_parquet(collected))
        written = pq.read_metadata(streamed).metadata
        assert {k.decode(): v.decode() for k, v in written.items() if b"mmflow" in k} == METADATA
    elif fmt == "arrow":
        assert_frame_equal(pl.read_ipc(streamed), pl.read_ipc(collected))
    else:  # text formats: byte for byte
        assert streamed.read_bytes() == collected.read_bytes()
    assert left_over(tmp_path) == sorted([collected.name, streamed.name])
    assert scratch.tracked() == []


def test_an_empty_table_streams_to_an_empty_table(tmp_path: Path) -> None:
    target = tmp_path / "empty.parquet"
    assert sink_file(table().head(0), target, METADATA) == 0
    assert pl.read_parquet(target).columns == table().collect_schema().names()


def test_json_is_collected_and_written_whole(tmp_path: Path) -> None:
    streamed, collected = tmp_path / "s.json", tmp_path / "c.json"
    assert sink_file(table(10), streamed, {}) == 10
    write_file(table(10).collect(), collected, {})
    assert streamed.read_bytes() == collected.read_bytes()


@pytest.mark.parametrize("fmt", STREAMED_FORMATS)
def test_a_failing_plan_leaves_nothing_and_keeps_the_old_file(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out{SUFFIXES[fmt]}"
    target.write_bytes(b"the previous result")
    # strict cast: the run fails on a row far into the table, after batches were written
    failing = table(50_000).with_columns(
        pl.when(pl.int_range(pl.len()) == 45_000)
        .then(pl.lit("not a number"))
        .otherwise(pl.col("price").cast(pl.String))
        .cast(pl.Float64)
        .alias("price")
    )
    with pytest.raises(pl.exceptions.PolarsError):
        sink_file(failing, target, METADATA)
    assert left_over(tmp_path) == [target.name]
    assert target.read_bytes() == b"the previous result"
    assert scratch.tracked() == []


def _fail_after_the_sink(target: Path, seen: list[bool]) -> None:
    with streamed_file(table(), target, {}) as stream:
        stream.plan.collect()
        seen.append(stream.temporary.exists())
        msg = "stop"  # e.g. no rows, or Ctrl-C, after the sink ran
        raise RuntimeError(msg)


def test_an_error_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    seen: list[bool] = []
    with pytest.raises(RuntimeError, match="stop"):
        _fail_after_the_sink(tmp_path / "out.csv", seen)
    assert seen == [True]
    assert left_over(tmp_path) == []
    assert scratch.tracked() == []


def test_a_missing_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        sink_file(table(), tmp_path / "nope" / "out.csv", {})


def run(*args: str | Path) -> tuple[int, bytes, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.mark.parametrize("fmt", STREAMED_FORMATS)
def test_classify_o_streams_the_same_table_as_to(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed: list[Path] = []

    def spy(frame: pl.LazyFrame, path: Path, metadata: dict[str, str]) -> Any:
        streamed.append(path)
        return streamed_file(frame, path, metadata)

    monkeypatch.setattr(trades_command, "streamed_file", spy)
    target = tmp_path / f"signed{SUFFIXES[fmt]}"
    code, out, err = run("classify", ESU4_MBP1_CSV, "--method", "lee-ready", "-o", target)
    assert (code, out, streamed) == (0, b"", [target])
    assert err == f"wrote 120 rows to {target}\n"
    code, piped, _ = run("classify", ESU4_MBP1_CSV, "--method", "lee-ready", "--to", fmt)
    assert code == 0
    if fmt in ("csv", "ndjson"):
        assert target.read_bytes() == piped
    elif fmt == "parquet":
        assert_frame_equal(pl.read_parquet(target), pl.read_parquet(piped))
        assert pq.read_metadata(target).metadata[b"mmflow.schema"] == b"classify.trades/1"
    else:
        assert_frame_equal(pl.read_ipc(target), pl.read_ipc(piped))
    assert left_over(tmp_path) == [target.name]


def test_classify_o_without_trades_fails_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "signed.parquet"
    code, _, err = run("classify", ESU4_MBP1_CSV, "--symbol", "NOPE", "-o", target)
    assert code == 1
    assert err == (
        "Error: no trades to analyse (check the inputs and the --symbol/--start/--end filters)\n"
    )
    assert left_over(tmp_path) == []
