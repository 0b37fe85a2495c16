"""Grouped reads of many small files (issue 9 item 5): one scan per layout, exact per-file results.

The reference is the per-file path (every file read on its own), obtained by raising the
threshold :data:`mmflow.io.many.MANY` above the number of files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow.io
import mmflow.io.many
from mmflow.cli import cli
from mmflow.io import Loaded, ReadOptions
from mmflow.io.assemble import collect_accounts, gather, read_many
from mmflow.io.checks import Limits, RowAccount
from mmflow.schema import QUOTES, TRADES

NS = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC, nanoseconds
OPTIONS = ReadOptions(limits=Limits())


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _mixed_folder(folder: Path) -> None:
    """Two generic layouts, quotes, Binance files of two symbols, and files with flaws."""
    for i in range(40):  # layout 1: epoch ts, symbol column
        _write(
            folder / f"a{i:03d}.csv",
            "ts,symbol,price,size,aggressor_side\n"
            f"{NS + i * 10**9},S{i % 3},{100 + i % 7},1,-1\n"
            f"{NS + i * 10**9 + 5},S{i % 3},{101 + i % 5},2,1\n",
        )
    for i in range(40):  # layout 2: ISO ts, no symbol column (the file name is the symbol)
        _write(
            folder / f"B{i % 4}-{i:03d}.csv",
            f"ts,price,size\n2024-01-02T00:00:{i % 60:02d}Z,{50 + i % 3},3\n",
        )
    for i in range(36):  # quotes
        _write(
            folder / f"q{i:03d}.csv",
            "ts,symbol,bid_price,bid_size,ask_price,ask_size\n"
            f"{NS + i * 10**9},S{i % 3},99,1,{101 if i % 9 else -1},1\n",
        )
    for symbol in ("BTCUSDT", "ETHUSDT"):  # Binance spot trades: symbol from the file name
        for day in range(1, 4):
            _write(
                folder / f"{symbol}-trades-2024-01-0{day}.csv",
                f"1,100.5,0.1,10.05,{(NS + day * 86_400 * 10**9) // 10**6},true,true\n"
                f"2,100.6,0.2,20.12,{(NS + day * 86_400 * 10**9) // 10**6 + 1},false,true\n",
            )
    tardis = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
    for day, exchange in ((2, "deribit"), (3, "deribit"), (2, "bybit"), (3, "bybit")):
        us = (NS + day * 86_400 * 10**9) // 1000
        for kind in ("trades", "liquidations"):  # Tardis: symbol and venue are columns
            _write(
                folder / f"{exchange}_{kind}_2024-01-0{day}_BTC-PERP.csv",
                tardis + f"{exchange},BTC-PERP,{us},{us + 7},t{day},buy,42000.5,0.1\n"
                f"{exchange},BTC-PERP,{us + 1},{us + 9},,sell,42000.0,0.2\n",
            )
    # flaws: an unparseable row, a repeated header, a header-only file, an implausible time,
    # no final newline, quoted cells
    _write(folder / "a100.csv", f"ts,symbol,price,size,aggressor_side\n{NS},X,abc,1,1\n")
    _write(
        folder / "a101.csv",
        f"ts,symbol,price,size,aggressor_side\n{NS},X,1,1,1\n"
        f"ts,symbol,price,size,aggressor_side\n{NS + 1},X,2,1,1\n",
    )
    _write(folder / "a102.csv", "ts,symbol,price,size,aggressor_side\n")
    _write(folder / "a103.csv", f"ts,symbol,price,size,aggressor_side\n0,X,1,1,1\n{NS},X,-2,1,1\n")
    _write(folder / "a104.csv", f"ts,symbol,price,size,aggressor_side\n{NS},X,3,1,1")
    _write(folder / "a105.csv", f'ts,symbol,price,size,aggressor_side\n{NS},"X",4,1,1\n')


@pytest.fixture
def per_file() -> Iterator[Callable[[], None]]:
    """Call the yielded function to turn grouped reads off (the per-file reference path)."""
    mp = pytest.MonkeyPatch()
    yield lambda: mp.setattr(mmflow.io.many, "MANY", 10**9)
    mp.undo()


def _load(folder: Path) -> list[Loaded]:
    return mmflow.io.load_inputs([str(folder)], options=OPTIONS).loaded


def _collected(item: Loaded) -> list[pl.DataFrame | None]:
    return [None if lf is None else lf.collect() for lf in (item.frames.trades, item.frames.quotes)]


def _entries(item: Loaded) -> RowAccount:
    """The file's account (entries of zero rows, like "0 repeated header lines", left out)."""
    return RowAccount() if item.account is None else RowAccount.from_frame(item.account.collect())


def _account(inputs: list[Loaded]) -> RowAccount:
    account = RowAccount()
    for frame in collect_accounts(inputs):
        account.extend(RowAccount.from_frame(frame))
    return account


@pytest.mark.parametrize("group_bytes", [mmflow.io.many.GROUP_BYTES, 1000])
def test_grouped_read_equals_per_file_read(
    tmp_path: Path, per_file: Callable[[], None], group_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same frames and accounts, file by file, whether groups are read whole or in small runs."""
    _mixed_folder(tmp_path)
    monkeypatch.setattr(mmflow.io.many, "GROUP_BYTES", group_bytes)
    grouped = _load(tmp_path)
    assert sum(item.in_memory for item in grouped) >= 110  # most files were grouped
    binance = [item for item in grouped if item.format.name == "binance-trades"]
    assert len(binance) == 6
    assert all(item.in_memory for item in binance)
    tardis = [item for item in grouped if item.format.name.startswith("tardis-")]
    assert {item.format.name for item in tardis} == {"tardis-trades", "tardis-liquidations"}
    assert len(tardis) == 8
    assert all(item.in_memory for item in tardis)
    per_file()
    alone = _load(tmp_path)
    assert not any(item.in_memory for item in alone)
    assert [i.source.display for i in grouped] == [i.source.display for i in alone]
    assert [i.format.name for i in grouped] == [i.format.name for i in alone]
    for one, other in zip(grouped, alone, strict=True):
        for got, want in zip(_collected(one), _collected(other), strict=True):
            assert (got is None) == (want is None), one.source.display
            if got is not None and want is not None:
                assert_frame_equal(got, want, check_row_order=True)
        assert _entries(one) == _entries(other), one.source.display
    # the run's tables and the row account, file by file
    for table in (TRADES, QUOTES):
        got_lf, want_lf = gather(read_many(grouped), table), gather(read_many(alone), table)
        assert got_lf is not None
        assert want_lf is not None
        assert_frame_equal(got_lf.collect(), want_lf.collect())
    account, reference = _account(read_many(grouped)), _account(read_many(alone))
    assert account.entries == reference.entries
    assert account.warnings() == reference.warnings()
    # what the flaws did, in that account
    assert account.total("trades", "read") == reference.total("trades", "read") > 0
    symbols = gather(grouped, TRADES).select("symbol").unique().collect()["symbol"].to_list()  # type: ignore[union-attr]
    assert {"B0-000", "B3-039", "BTCUSDT", "ETHUSDT", "S0", "X"} <= set(symbols)
    reasons = account.reasons("trades")
    assert reasons["repeated header line"] == 1
    assert reasons["unparseable row"] == 1
    assert account.reasons("quotes", "changed")


def test_structure_does_not_grow_with_the_file_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The polars calls of a grouped read are the same for 50 and 500 files."""
    calls: dict[str, int] = {}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return wrapper

    for name in ("scan_csv", "read_csv", "collect_all"):
        monkeypatch.setattr(pl, name, counting(name, getattr(pl, name)))
    monkeypatch.setattr(pl.LazyFrame, "collect", counting("collect", pl.LazyFrame.collect))
    seen = []
    for count in (50, 500):
        folder = tmp_path / str(count)
        folder.mkdir()
        for i in range(count):
            _write(folder / f"t{i:04d}.csv", f"ts,symbol,price,size\n{NS + i},X,1,1\n")
        calls.clear()
        inputs = _load(folder)
        trades = gather(read_many(inputs), TRADES)
        collect_accounts(inputs)
        assert trades is not None
        assert trades.collect().height == count
        seen.append(dict(calls))
    assert seen[0] == seen[1]
    assert sum(seen[1].values()) < 20


def test_big_files_are_not_grouped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmflow.io.many, "SMALL_FILE", 60)
    for i in range(40):
        rows = "".join(f"{NS + i * 1000 + j},X,1,1\n" for j in range(1 + 3 * (i % 2)))
        _write(tmp_path / f"t{i:03d}.csv", "ts,symbol,price,size\n" + rows)
    inputs = _load(tmp_path)
    sizes = {item.source.display: item.source.path.stat().st_size for item in inputs}
    assert {item.in_memory for item in inputs if sizes[item.source.display] > 60} == {False}
    assert {item.in_memory for item in inputs if sizes[item.source.display] <= 60} == {True}


def test_a_broken_file_is_named_and_the_others_stay_grouped(tmp_path: Path) -> None:
    for i in range(200):
        extra = ",9,9" if i == 117 else ""
        _write(tmp_path / f"t{i:03d}.csv", f"ts,symbol,price,size\n{NS + i},X,1,1{extra}\n")
    inputs = _load(tmp_path)
    alone = [item.source.display for item in inputs if not item.in_memory]
    assert str(tmp_path / "t117.csv") in alone
    assert len(alone) <= mmflow.io.many.SMALLEST  # halving kept the rest grouped
    code, _, err = _run("flow", tmp_path, "--to", "csv")
    assert code == 1
    assert err.startswith(f"Error: {tmp_path / 't117.csv'}: cannot read the file to the end")


def test_an_unparseable_row_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    for i in range(100):
        price = "abc" if i == 42 else "1"
        _write(
            tmp_path / f"t{i:03d}.csv",
            f"ts,symbol,price,size\n{NS + i},X,1,1\n{NS + i + 1},X,{price},1\n",
        )
    code, _, err = _run("flow", tmp_path, "--to", "csv")
    assert code == 1
    assert err.startswith(f"Error: {tmp_path / 't042.csv'}: line 3 does not parse")


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _tiny_folder(folder: Path, count: int) -> None:
    for i in range(count):
        _write(
            folder / f"d{i:05d}.csv",
            f"ts,symbol,price,size,aggressor_side\n{NS + i * 10**9},X,100,1,1\n"
            f"{NS + i * 10**9 + 1},X,101,2,-1\n",
        )


def _cpu_seconds(folder: Path) -> float:
    started = time.process_time()
    code, out, err = _run("--verbose", "flow", folder, "--to", "csv")
    elapsed = time.process_time() - started
    assert code == 0, err
    assert out.startswith("venue,symbol,")
    return elapsed


def test_two_thousand_tiny_files_without_per_file_collects(tmp_path: Path) -> None:
    """2,000 files: about 0.5 s of CPU grouped; the per-file path takes ~15 s (7 ms a file)."""
    _tiny_folder(tmp_path, 2000)
    assert _cpu_seconds(tmp_path) < 4


@pytest.mark.slow
def test_ten_thousand_tiny_files_in_seconds(tmp_path: Path) -> None:
    """10,000 files: about 3 s of CPU (the per-file path: over a minute)."""
    _tiny_folder(tmp_path, 10_000)
    assert _cpu_seconds(tmp_path) < 15
