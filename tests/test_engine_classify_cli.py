"""``mmflow classify`` on the engine writes and prints what the single plan does.

Each command runs twice on the same files: as it is (the chunked engine, rows streamed chunk by
chunk to ``-o`` or standard output) and with the engine switched off (``classify_chunked``
returning ``None``: the single lazy plan). Output bytes (CSV, NDJSON, JSON), parquet tables and
their metadata, the screen and the warnings on stderr must be the same.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow.cli.trades as trades_command
from mmflow.cli import cli
from tests.market_days import market_days


def run(*args: str | Path) -> tuple[int, bytes, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three days of two symbols on two venues, trade times on a 10-second grid (ties)."""
    folder = tmp_path_factory.mktemp("market")
    trades, quotes = market_days(8, days=3, symbols=("AAA", "BBB"), venues=("XNAS", "BATS"))
    trades = trades.with_columns(pl.col("ts").dt.truncate("10s"))
    trades = trades.with_columns(  # a NaN price: a signing warning
        pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise("price").alias("price")
    )
    trades.write_parquet(folder / "trades.parquet")
    # quotes of one more venue: a quote note
    extra = quotes.head(5).with_columns(pl.lit("ARCA").alias("venue"))
    pl.concat([quotes, extra]).write_parquet(folder / "quotes.parquet")
    return folder / "trades.parquet", folder / "quotes.parquet"


def both(monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> list[tuple[int, bytes, str]]:
    """Run the command on the engine, then on the single plan.

    The warnings come per instrument in the single plan's group-by order, which is not
    fixed (the engine's is sorted), so stderr is compared as a sorted list of lines.
    """
    engine = run(*args)
    with monkeypatch.context() as patch:
        patch.setattr(trades_command, "classify_chunked", lambda *a, **k: None)
        single = run(*args)
    return [(code, out, "\n".join(sorted(err.splitlines()))) for code, out, err in (engine, single)]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("method", ["auto", "reverse-tick", "tick"])
def test_to_stdout_is_the_single_plan_byte_for_byte(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fmt: str, method: str
) -> None:
    engine, single = both(
        monkeypatch, "classify", *files, "--method", method, "--to", fmt, "--memory-limit", "64M"
    )
    assert engine[0] == 0
    assert engine == single
    assert engine[1].count(b"\n") > 1000
    if method == "auto":
        assert "NaN price" in engine[2] or "nan" in engine[2].lower()
        assert "ARCA" in engine[2]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow"])
def test_o_file_is_the_single_plan(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str
) -> None:
    targets = [tmp_path / f"engine{suffix}", tmp_path / f"single{suffix}"]
    engine = run("classify", *files, "--method", "lee-ready", "-o", targets[0])
    with monkeypatch.context() as patch:
        patch.setattr(trades_command, "classify_chunked", lambda *a, **k: None)
        single = run("classify", *files, "--method", "lee-ready", "-o", targets[1])
    assert engine[0] == single[0] == 0
    lines = [
        sorted(r[2].replace(str(t), "X").splitlines())
        for r, t in zip((engine, single), targets, strict=True)
    ]
    assert lines[0] == lines[1]
    if suffix == ".csv":
        assert targets[0].read_bytes() == targets[1].read_bytes()
    elif suffix == ".arrow":
        assert_frame_equal(pl.read_ipc(targets[0]), pl.read_ipc(targets[1]))
    else:
        assert_frame_equal(pl.read_parquet(targets[0]), pl.read_parquet(targets[1]))
        metadata = [pq.read_metadata(t).metadata for t in targets]
        assert metadata[0] == metadata[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)


def test_screen_is_the_single_plan(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, single = both(monkeypatch, "classify", *files)
    assert engine[0] == 0
    assert engine == single
    assert b"trades signed by each rule" in engine[1]


def test_no_trades_is_an_error_and_writes_nothing(files: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run("classify", *files, "--symbol", "NOPE", "--to", "csv")
    assert (code, out) == (1, b"")
    assert err.splitlines()[-1].startswith("Error: no trades to analyse")


def test_memory_limit_is_checked() -> None:
    code, _, err = run("classify", "nothing.csv", "--memory-limit", "1k")
    assert code == 2
    assert "--memory-limit" in err


@pytest.mark.parametrize("fmt", ["json", None])
def test_evaluate_is_the_single_plan(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fmt: str | None
) -> None:
    args: list[str | Path] = ["classify", *files, "--evaluate", "--bar", "5m"]
    args += ["--to", fmt] if fmt else []
    engine = run(*args)
    with monkeypatch.context() as patch:
        patch.setattr(trades_command, "evaluate_chunked", lambda *a, **k: None)
        single = run(*args)
    assert engine[0] == single[0] == 0
    assert engine[1] == single[1]
    assert sorted(engine[2].splitlines()) == sorted(single[2].splitlines())
    assert b"reverse_tick" in engine[1] or b"reverse-tick" in engine[1]


def test_dask_executor_gives_the_same_rows(files: tuple[Path, Path]) -> None:
    pytest.importorskip("distributed")
    args: list[str | Path] = ["classify", *files, "--method", "reverse-tick", "--to", "csv"]
    local = run(*args)
    remote = run(*args, "--executor", "dask", "--workers", "1")
    assert local[0] == remote[0] == 0
    assert local[1] == remote[1]
