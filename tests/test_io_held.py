"""Engine commands read their columnar inputs once (issue 11, the row account).

:func:`mmflow.io.assemble.held_inputs` collects each parquet input's checked rows and its row
account in one run when the rows fit; the frames and the account equal the lazy ones, and the
command's output and messages are those of a run that keeps the inputs lazy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import mmflow.io
from mmflow.cli import run as cli_run
from mmflow.io import assemble
from tests.helpers import run

NS = 1_000_000_000
START = 1_704_153_600 * NS  # 2024-01-02 UTC


def _inputs(folder: Path) -> list[str]:
    rows = 500
    trades = pl.DataFrame(
        {
            "ts": [START + i * 7 * NS for i in range(rows)],
            "symbol": ["XY"[i % 2] for i in range(rows)],
            "price": [100 + (i % 13) * 0.5 if i % 97 else -1.0 for i in range(rows)],
            "size": [float(1 + i % 5) if i % 89 else float("nan") for i in range(rows)],
            "aggressor_side": [0] * rows,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    quotes = pl.DataFrame(
        {
            "ts": [START + i * 5 * NS for i in range(rows)],
            "symbol": ["XY"[i % 2] for i in range(rows)],
            "bid_price": [100 + (i % 11) * 0.5 for i in range(rows)],
            "bid_size": [3.0 if i % 41 else -2.0 for i in range(rows)],  # sides emptied
            "ask_price": [100.5 + (i % 11) * 0.5 for i in range(rows)],
            "ask_size": [4.0] * rows,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    trades.write_parquet(folder / "trades.parquet")
    quotes.write_parquet(folder / "quotes.parquet")
    return [str(folder / "trades.parquet"), str(folder / "quotes.parquet")]


def test_held_inputs_equal_the_lazy_frames_and_account(tmp_path: Path) -> None:
    loaded = mmflow.io.load_inputs(_inputs(tmp_path), "auto", None).loaded
    asked: list[tuple[int, int]] = []

    def fits(trades: int, quotes: int) -> bool:
        asked.append((trades, quotes))
        return True

    held = assemble.held_inputs(loaded, fits)
    assert asked == [(500, 500)]  # rows before the checks, from the files' metadata
    for lazy, memory in zip(loaded, held, strict=True):
        assert not lazy.in_memory
        assert memory.in_memory
        for before, after in (
            (lazy.frames.trades, memory.frames.trades),
            (lazy.frames.quotes, memory.frames.quotes),
        ):
            assert (before is None) == (after is None)
            if before is not None and after is not None:
                assert after.collect().equals(before.collect())
        assert lazy.account is not None
        assert memory.account is not None
        assert memory.account.collect().equals(lazy.account.collect())
        assert memory.account.collect()["rows"].sum() > 0


def test_inputs_that_do_not_fit_stay_lazy(tmp_path: Path) -> None:
    loaded = mmflow.io.load_inputs(_inputs(tmp_path), "auto", None).loaded
    assert assemble.held_inputs(loaded, lambda trades, quotes: False) == loaded


@pytest.mark.parametrize("command", ["analyze", "flow"])
def test_held_and_lazy_runs_say_and_write_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    files = _inputs(tmp_path)
    held: list[bool] = []

    def spied(loaded: Any, fits: Any) -> Any:
        out = assemble.held_inputs(loaded, fits)
        held.append(all(item.in_memory for item in out))
        return out

    monkeypatch.setattr(cli_run, "held_inputs", spied)
    outputs, messages = {}, {}
    for name in ("held", "lazy"):
        if name == "lazy":
            monkeypatch.setattr(cli_run, "held_inputs", lambda loaded, _fits: loaded)
        target = tmp_path / f"{name}.parquet"
        code, _, stderr = run(command, *files, "--verbose", "-o", target)
        assert code == 0, stderr
        outputs[name] = pl.read_parquet(target)
        messages[name] = stderr.replace(str(target), "OUT")
    assert held == [True]
    assert outputs["held"].equals(outputs["lazy"])
    assert messages["held"] == messages["lazy"]
    assert "dropped" in messages["held"]
    assert "Rows: trades: 500 read" in messages["held"]


def test_the_commands_memory_limit_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmflow.engine.chunks import parse_memory

    files = _inputs(tmp_path)
    limits: list[int] = []

    def spied(loaded: Any, fits: Any) -> Any:
        limits.append(fits.keywords["memory_limit"])
        return assemble.held_inputs(loaded, fits)

    monkeypatch.setattr(cli_run, "held_inputs", spied)
    code, _, stderr = run("flow", *files, "--memory-limit", "300M", "--to", "csv")
    assert code == 0, stderr
    assert limits == [parse_memory("300M")]


def test_the_engine_takes_the_rows_the_account_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmflow.engine import inputs as engine_inputs

    files = _inputs(tmp_path)
    monkeypatch.setattr(cli_run, "held_inputs", lambda loaded, _fits: loaded)  # stay lazy
    asked: list[tuple[int, int]] = []
    original = engine_inputs.fits_in_memory

    def spied(trades: int, quotes: int, memory_limit: int) -> bool:
        asked.append((trades, quotes))
        return original(trades, quotes, memory_limit)

    monkeypatch.setattr(engine_inputs, "fits_in_memory", spied)
    code, _, stderr = run("flow", *files, "--symbol", "X", "--verbose", "--to", "csv")
    assert code == 0, stderr
    trades = pl.read_parquet(files[0]).filter(
        (pl.col("symbol") == "X") & (pl.col("price") > 0) & pl.col("size").is_finite()
    )
    quotes = pl.read_parquet(files[1]).filter(pl.col("symbol") == "X")
    assert asked == [(trades.height, quotes.height)]
    assert f"trades: 500 read = {trades.height} used" in stderr.replace(",", "")
    assert engine_inputs._KNOWN_ROWS.get() is None  # the hint ends with the command


def test_a_known_row_count_replaces_the_count(tmp_path: Path) -> None:
    from mmflow.analysis import BarOptions, Signing
    from mmflow.engine.inputs import known_rows, prepared_inputs
    from mmflow.engine.run import make_settings

    trades = pl.scan_parquet(_inputs(tmp_path)[0])
    settings = make_settings(
        BarOptions(),
        Signing(),
        keys=["symbol"],
        session=False,
        has_quotes=False,
        memory_limit=1 << 30,
    )
    with prepared_inputs(trades, None, settings, files=False, in_memory=None) as counted:
        assert counted.in_memory  # 500 rows fit
    undo = known_rows(10**12, 0)
    try:
        with prepared_inputs(trades, None, settings, files=False, in_memory=None) as told:
            assert not told.in_memory  # the told count, not a count of the rows
    finally:
        undo()
