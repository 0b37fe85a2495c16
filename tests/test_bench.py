"""benchmarks/bench.py: its pandas pipeline computes what mmflow computes, so the race is fair."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from click.testing import CliRunner

from mmflow.cli import cli
from tests.helpers import load_script as load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
HOUR_NS = 3_600 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000


def load_script() -> ModuleType:
    return load_benchmark(SCRIPT, "bench")


bench = load_script()


def mmflow_bars(*inputs: Path, output: Path) -> pl.DataFrame:
    arguments = ["analyze", *map(str, inputs), "--method", "lee-ready", "--bar", "1m", "--quiet"]
    result = CliRunner().invoke(cli, [*arguments, "-o", str(output)])
    assert result.exit_code == 0, result.stderr
    return pl.read_parquet(output)


def reference_totals(trades: pl.DataFrame, quotes: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per symbol buy and sell volume (Lee-Ready) and OFI, by plain loops over the rows.

    Events run in time order; at equal timestamps trades go first, so a trade only sees quotes
    strictly before it. OFI counts the quotes inside the minutes the symbol has trades in (the
    bars both tables have).
    """
    events = sorted(
        [(t, 0, i) for i, t in enumerate(trades["ts"].dt.epoch("ns").to_list())]
        + [(t, 1, i) for i, t in enumerate(quotes["ts"].dt.epoch("ns").to_list())]
    )
    trade_rows, quote_rows = trades.rows(named=True), quotes.rows(named=True)
    last_quote: dict[str, dict[str, float]] = {}
    last_price: dict[str, float] = {}
    tick: dict[str, int] = defaultdict(int)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    events_by_symbol: dict[str, list[tuple[int, float]]] = defaultdict(list)
    minutes: dict[str, set[int]] = defaultdict(set)
    for ts, kind, index in events:
        if kind == 1:
            quote = quote_rows[index]
            symbol = quote["symbol"]
            previous = last_quote.get(symbol)
            event = 0.0
            if previous is not None:
                if quote["bid_price"] >= previous["bid_price"]:
                    event += quote["bid_size"]
                if quote["bid_price"] <= previous["bid_price"]:
                    event -= previous["bid_size"]
                if quote["ask_price"] <= previous["ask_price"]:
                    event -= quote["ask_size"]
                if quote["ask_price"] >= previous["ask_price"]:
                    event += previous["ask_size"]
            events_by_symbol[symbol].append((ts // MINUTE_NS, event))
            last_quote[symbol] = quote
            continue
        trade = trade_rows[index]
        symbol, price = trade["symbol"], trade["price"]
        minutes[symbol].add(ts // MINUTE_NS)
        if symbol in last_price and price != last_price[symbol]:
            tick[symbol] = 1 if price > last_price[symbol] else -1
        last_price[symbol] = price
        sign = tick[symbol]
        if symbol in last_quote:
            mid = (last_quote[symbol]["bid_price"] + last_quote[symbol]["ask_price"]) / 2
            if price != mid:
                sign = 1 if price > mid else -1
        if sign > 0:
            totals[symbol]["buy_volume"] += trade["size"]
        elif sign < 0:
            totals[symbol]["sell_volume"] += trade["size"]
    for symbol, symbol_events in events_by_symbol.items():
        first, last = min(minutes[symbol]), max(minutes[symbol])
        totals[symbol]["ofi"] = sum(e for minute, e in symbol_events if first <= minute <= last)
    return totals


def test_pandas_pipeline_and_mmflow_agree_with_a_reference_loop(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    inputs = bench.generate(20_000, 4, 11, tmp_path, span_ns=HOUR_NS, csv=False)
    pandas_bars = pl.from_pandas(bench.pandas_bars(inputs.trades, inputs.quotes))
    ours = mmflow_bars(inputs.trades, inputs.quotes, output=tmp_path / "bars.parquet")

    check = bench.compare_bars(pandas_bars, ours)
    assert check.totals_agree
    assert check.ok, bench.describe_check(check, "pandas vs mmflow")
    # every minute of the hour has trades, so both tables hold the same bars
    assert check.bars_left == check.bars_right == check.common_bars == 4 * 60

    reference = reference_totals(
        pl.read_parquet(inputs.trades).sort("ts", maintain_order=True),
        pl.read_parquet(inputs.quotes).sort("ts", maintain_order=True),
    )
    for frame in (pandas_bars, ours):
        totals = frame.group_by("symbol").agg(pl.col("buy_volume", "sell_volume", "ofi").sum())
        assert totals.height == 4
        for row in totals.iter_rows(named=True):
            expected = reference[row["symbol"]]
            assert row["buy_volume"] == expected["buy_volume"]
            assert row["sell_volume"] == expected["sell_volume"]
            assert row["ofi"] == pytest.approx(expected["ofi"], rel=1e-12, abs=1e-9)
    # the generated trades hit the prevailing bid or ask, so Lee-Ready finds the true side
    signed, volume = (
        ours.select(pl.col("buy_volume") + pl.col("sell_volume"), "volume").sum().row(0)
    )
    assert signed == pytest.approx(volume, rel=1e-3)


def test_the_check_sees_a_difference() -> None:
    bars = pl.DataFrame(
        {
            "symbol": ["A", "A", "B"],
            "ts": [0, 60, 0],
            "volume": [3.0, 2.0, 1.0],
            "buy_volume": [2.0, 1.0, 1.0],
            "sell_volume": [1.0, 1.0, 0.0],
            "net_flow": [1.0, 0.0, 1.0],
            "cvd": [1.0, 1.0, 1.0],
            "ofi": [5.0, -2.0, 0.0],
        }
    )
    assert bench.compare_bars(bars, bars).ok
    changed = bars.with_columns(
        pl.when(pl.col("ts") == 60).then(-3.0).otherwise(pl.col("ofi")).alias("ofi")
    )
    check = bench.compare_bars(bars, changed)
    assert not check.totals_agree
    assert check.worst["ofi"] == 1.0
    assert not check.ok
    missing = bench.compare_bars(bars, bars.filter(pl.col("symbol") == "A"))
    assert not missing.totals_agree


def test_the_converted_dataset_holds_the_same_rows_as_the_single_files(tmp_path: Path) -> None:
    # two days of 1 000 rows: the layout the 100 M run uses, at a size a test can afford
    files = bench.generate(2_000, 3, 5, tmp_path / "files", rows_per_day=1_000, csv=True)
    dataset = bench.generate(2_000, 3, 5, tmp_path / "set", rows_per_day=1_000, dataset=True)
    partitions = sorted(p.relative_to(dataset.dataset) for p in dataset.dataset.rglob("*.parquet"))
    assert partitions[0] == Path("symbol=SYM0/date=2024-07-01/quotes.parquet")
    assert len(partitions) == 3 * 2 * 2
    single = mmflow_bars(files.trades, files.quotes, output=tmp_path / "single.parquet")
    converted = mmflow_bars(dataset.dataset, output=tmp_path / "converted.parquet")
    from_csv = mmflow_bars(files.trades_csv, files.quotes_csv, output=tmp_path / "csv.parquet")
    assert single["volume"].sum() == pytest.approx(2 * 1_000 * 5, rel=0.2)  # sizes 1..9
    for other in (converted, from_csv):
        check = bench.compare_bars(single, other)
        assert check.ok, bench.describe_check(check, "single files vs other layout")
        assert check.common_bars == single.height == other.height
    assert bench.read_floor([files.trades, files.quotes], "parquet") == 4_000
    assert bench.read_floor([files.trades_csv, files.quotes_csv], "csv") == 4_000
    assert bench.read_floor([dataset.dataset], "dataset") == 4_000


def test_the_generated_dataset_is_what_convert_writes(tmp_path: Path) -> None:
    # the 100 M run's layout: the same partition files, with the same rows, as mmflow convert
    files = bench.generate(2_000, 3, 5, tmp_path / "files", rows_per_day=1_000, csv=False)
    dataset = bench.generate(2_000, 3, 5, tmp_path / "set", rows_per_day=1_000, dataset=True)
    converted = tmp_path / "converted"
    result = CliRunner().invoke(
        cli, ["convert", str(files.trades), str(files.quotes), "-o", str(converted)]
    )
    assert result.exit_code == 0, result.stderr
    written = sorted(p.relative_to(dataset.dataset) for p in dataset.dataset.rglob("*.parquet"))
    assert written == sorted(p.relative_to(converted) for p in converted.rglob("*.parquet"))
    assert len(written) == 3 * 2 * 2
    for path in written:
        ours, theirs = pl.read_parquet(dataset.dataset / path), pl.read_parquet(converted / path)
        assert ours.height > 0
        assert ours.equals(theirs), path


def test_a_child_is_measured_from_outside(tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    work = "sum(range(3_000_000)); bytearray(200 * 1024 * 1024)"
    run = bench.measure([sys.executable, "-c", work], 10, "parquet", "probe", log, None)
    assert run.ok
    assert run.cpu > 0
    assert run.wall > 0
    assert run.peak_bytes > 200 * 1024 * 1024
    failed = bench.measure([sys.executable, "-c", "raise SystemExit(3)"], 10, "csv", "x", log, None)
    assert failed.error is not None
    assert failed.error.startswith("exit 3")
    assert "$ " in log.read_text()


def test_day_rows_and_sizes() -> None:
    assert bench.day_rows(25, 10) == [9, 8, 8]
    assert bench.day_rows(10, 10) == [10]
    assert sum(bench.day_rows(100_000_000, 10_000_000)) == 100_000_000
    assert bench.parse_size("10M") == 10_000_000
    assert bench.parse_size("500k") == 500_000
    assert bench.parse_size("1.5m") == 1_500_000


def test_without_pandas_the_run_says_so_and_measures_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "pandas" else real(name)

    monkeypatch.setattr(bench.importlib.util, "find_spec", find_spec)
    arguments = ["--sizes", "2k", "--no-csv", "--no-commands", "--data", str(tmp_path)]
    assert bench.main(arguments) == 0
    captured = capsys.readouterr()
    assert "pandas is not installed" in captured.err
    assert "[bench]" in captured.err
    table = [line for line in captured.out.splitlines() if line.startswith("| 2,000 + 2,000")]
    assert [row.split(" | ")[2] for row in table] == ["mmflow analyze", "I/O floor (polars read)"]
    assert "pandas 3" not in captured.out.split("versions:", 1)[1].splitlines()[0]


def test_the_slow_mode_layout_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --slow's 100 M run, shrunk: a converted dataset over two days, mmflow and the I/O floor
    arguments = ["--sizes", "3k", "--dataset-from", "3k", "--rows-per-day", "1500"]
    arguments += ["--no-commands", "--repeat", "2", "--data", str(tmp_path)]
    arguments += ["--markdown", str(tmp_path / "table.md")]
    assert bench.main(arguments) == 0
    out = capsys.readouterr().out
    assert "start-up included in every job" in out
    assert "each job run 2 times, the fastest (by wall time) shown" in out
    rows = [line for line in out.splitlines() if line.startswith("| 3,000 + 3,000 | dataset |")]
    assert [row.split(" | ")[2] for row in rows] == ["mmflow analyze", "I/O floor (polars read)"]
    assert (tmp_path / "table.md").read_text().count("| 3,000 + 3,000 | dataset |") == 2
    assert len(list((tmp_path / "rows-3000" / "dataset").rglob("trades.parquet"))) == 4 * 2
