"""CLI tests for the bar commands: flow, inventory, profile, simulate (and analyze's bar table)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from mmflow.cli import cli
from tests.conftest import data_path
from tests.helpers import run as cli_run

TARDIS_TRADES = data_path("tardis", "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz")
TARDIS_QUOTES = data_path("tardis", "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz")
ESU4_MBP1 = data_path(
    "databento", "nautilus_trader", "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv"
)
MINUTE_NS = 60_000_000_000


def run(*args: str | Path) -> tuple[int, str, str]:
    return cli_run(*args, columns=160)


def flow_json(*args: str | Path) -> list[dict[str, object]]:
    code, out, err = run("flow", *args, "--to", "json")
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def ofi_reference(
    quotes: list[tuple[int, float | None, float, float | None, float]],
) -> dict[int, float]:
    """Cont-Kukanov-Stoikov OFI per 1-minute bar from raw (ts_ns, bid, bid_size, ask, ask_size)."""
    totals: dict[int, float] = {}
    previous: tuple[float, float, float, float] | None = None
    for ts, bid, bid_size, ask, ask_size in quotes:
        bar = ts // MINUTE_NS
        totals.setdefault(bar, 0.0)
        if bid is None or ask is None:
            previous = None  # a clear: the next valid quote only seeds
            continue
        if bid > ask:
            continue  # crossed: skipped
        if previous is not None:
            pb, pbs, pa, pas = previous
            e = (bid_size if bid >= pb else 0.0) - (pbs if bid <= pb else 0.0)
            e += -(ask_size if ask <= pa else 0.0) + (pas if ask >= pa else 0.0)
            totals[bar] += e
        previous = (bid, bid_size, ask, ask_size)
    return totals


def test_flow_ofi_per_bar_matches_raw_tardis_quotes() -> None:
    with gzip.open(TARDIS_QUOTES, "rt", newline="") as handle:
        raw = [
            (
                int(r["local_timestamp"]) * 1000,
                float(r["bid_price"]) if r["bid_price"] else None,
                float(r["bid_amount"] or 0),
                float(r["ask_price"]) if r["ask_price"] else None,
                float(r["ask_amount"] or 0),
            )
            for r in csv.DictReader(handle)
        ]
    expected = ofi_reference(sorted(raw, key=lambda q: q[0]))
    rows = flow_json(TARDIS_TRADES, TARDIS_QUOTES, "--bar", "1m")
    got = {
        int(pl.Series([r["ts"]]).str.to_datetime(time_unit="ns").cast(pl.Int64)[0]) // MINUTE_NS: r[
            "ofi"
        ]
        for r in rows
    }
    compared = 0
    for bar, value in expected.items():
        if bar in got and got[bar] is not None:
            assert got[bar] == pytest.approx(value, abs=1e-6), bar
            compared += 1
    assert compared == 4  # the quotes cover the first four minutes


def test_flow_ofi_per_bar_matches_raw_databento_mbp1() -> None:
    undefined = "9223372036854775807"
    with ESU4_MBP1.open(newline="") as handle:
        raw = [
            (
                int(r["ts_recv"]),
                None if r["bid_px_00"] == undefined else int(r["bid_px_00"]) / 1e9,
                float(r["bid_sz_00"]),
                None if r["ask_px_00"] == undefined else int(r["ask_px_00"]) / 1e9,
                float(r["ask_sz_00"]),
            )
            for r in csv.DictReader(handle)
            if r["action"] != "T"
        ]
    expected = ofi_reference(raw)
    got = {
        int(pl.Series([r["ts"]]).str.to_datetime(time_unit="ns").cast(pl.Int64)[0]) // MINUTE_NS: r[
            "ofi"
        ]
        for r in flow_json(ESU4_MBP1, "--bar", "1m")
    }
    assert set(got) <= set(expected)
    for bar, value in got.items():
        assert value == pytest.approx(expected[bar], abs=1e-6), bar


def test_flow_is_the_same_for_split_files_and_any_symbol_order(tmp_path: Path) -> None:
    rows = ["ts,symbol,price,size,aggressor_side"]
    for i in range(120):
        symbol = "A" if i % 3 else "B"
        side = 1 if i % 2 else -1
        rows.append(f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{symbol},{100 + (i % 7)},1,{side}")
    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join(rows) + "\n")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("\n".join(rows[:61]) + "\n")
    second.write_text("\n".join([rows[0], *rows[61:]]) + "\n")
    reordered = tmp_path / "reordered.csv"
    body = rows[1:]
    reordered.write_text(
        "\n".join([rows[0], *[r for r in body if ",B," in r], *[r for r in body if ",A," in r]])
        + "\n"
    )
    outputs = [
        run("flow", *paths, "--bar", "30s", "--to", "csv")[1]
        for paths in ([whole], [second, first], [reordered])
    ]
    assert outputs[0] == outputs[1] == outputs[2]


def test_flow_without_quotes_says_ofi_needs_quotes() -> None:
    code, out, err = run("flow", TARDIS_TRADES, "--bar", "30m")
    assert code == 0
    assert "OFI, spreads, depth and trade costs need quotes" in err
    assert "mmflow flow" in out


def test_flow_invariants_inventory_is_minus_cvd_and_vpin_in_unit_interval() -> None:
    code, out, _ = run(
        "analyze", TARDIS_TRADES, TARDIS_QUOTES, "--bar", "1m", "--vpin-window", "5", "--to", "json"
    )
    assert code == 0
    bars = json.loads(out)
    assert all(b["mm_inventory"] == -b["cvd"] for b in bars)
    vpins = [b["vpin"] for b in bars if b["vpin"] is not None]
    assert vpins
    assert all(0.0 <= v <= 1.0 for v in vpins)
    for bar in bars:
        assert bar["buy_volume"] + bar["sell_volume"] + bar["unknown_volume"] == pytest.approx(
            bar["volume"]
        )


@pytest.mark.parametrize(
    ("name", "trades", "quotes"),
    [
        ("one trade", "2024-01-01T00:00:01Z,X,10,1", None),
        (
            "constant prices",
            "2024-01-01T00:00:01Z,X,10,1\n2024-01-01T00:03:01Z,X,10,2\n2024-01-01T00:05:01Z,X,10,1",
            None,
        ),
        # issue 9: zero-size trades are dropped and counted now (test_cli_inputs.py), so a file
        # of only zero-size trades has no trades left: that case moved there
        (
            "zero-size quotes",
            "2024-01-01T00:00:01Z,X,10,1\n2024-01-01T00:01:01Z,X,11,1",
            "2024-01-01T00:00:00Z,X,9,0,11,0\n2024-01-01T00:01:00Z,X,10,0,12,0",
        ),
        (
            "one symbol without quotes",
            "2024-01-01T00:00:01Z,X,10,1\n2024-01-01T00:00:02Z,Y,5,1",
            "2024-01-01T00:00:00Z,X,9,1,11,1",
        ),
    ],
)
def test_degenerate_inputs_give_nulls_not_errors(
    tmp_path: Path, name: str, trades: str, quotes: str | None
) -> None:
    trade_file = tmp_path / "trades.csv"
    trade_file.write_text("ts,symbol,price,size\n" + trades + "\n")
    args: list[str | Path] = [trade_file]
    if quotes is not None:
        quote_file = tmp_path / "quotes.csv"
        quote_file.write_text("ts,symbol,bid_price,bid_size,ask_price,ask_size\n" + quotes + "\n")
        args.append(quote_file)
    for command in ("analyze", "flow", "inventory"):
        code, out, err = run(command, *args, "--to", "json")
        assert code == 0, (name, command, err)
        text = json.dumps(json.loads(out))
        assert "NaN" not in text
        assert "Infinity" not in text
        code, screen, err = run(command, *args)
        assert code == 0, (name, command, err)
        assert "Traceback" not in screen + err


def test_inventory_tables() -> None:
    code, out, _ = run(
        "inventory",
        TARDIS_TRADES,
        TARDIS_QUOTES,
        "--bar",
        "1m",
        "--table",
        "summary",
        "--to",
        "json",
    )
    assert code == 0
    [summary] = json.loads(out)
    assert set(summary) >= {
        "symbol",
        "mm_inventory",
        "inventory_max",
        "inventory_min",
        "inventory_half_life",
        "price_pressure",
        "quote_skew",
        "withdrawing_share",
        "liquidity_state",
    }
    code, out, _ = run("inventory", TARDIS_TRADES, TARDIS_QUOTES, "--bar", "1m", "--to", "csv")
    assert out.splitlines()[0] == (
        "venue,symbol,ts,mm_inventory,inventory_change,inventory_z,spread,depth,liquidity_state"
    )
    code, out, _ = run("inventory", TARDIS_TRADES, TARDIS_QUOTES, "--bar", "1m")
    assert code == 0
    assert "mmflow inventory" in out


def test_profile_metrics_vector_through_the_command(tmp_path: Path) -> None:
    # metrics.md b.10: rows 100..106 with volumes 5,10,20,40,25,15,5
    path = tmp_path / "trades.csv"
    lines = ["ts,symbol,price,size,aggressor_side"]
    for second, (price, volume) in enumerate(
        zip(range(100, 107), (5, 10, 20, 40, 25, 15, 5), strict=True)
    ):
        lines.append(f"2024-01-01T00:00:{second:02d}Z,X,{price},{volume},1")
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = run("profile", path, "--bin", "1", "--table", "value-area", "--to", "json")
    assert code == 0
    [area] = json.loads(out)
    assert (area["poc"], area["value_area_low"], area["value_area_high"]) == (103.0, 101.0, 105.0)
    code, out, _ = run(
        "profile",
        path,
        "--bin",
        "1",
        "--value-area-method",
        "single-row",
        "--table",
        "value-area",
        "--to",
        "json",
    )
    [area] = json.loads(out)
    assert (area["value_area_low"], area["value_area_high"]) == (102.0, 104.0)
    code, out, _ = run("profile", path, "--bin", "1")
    assert code == 0
    assert "POC 103" in out
    code, out, _ = run("profile", path, "--bin", "1", "--bar", "1m", "--to", "csv")
    assert code == 0
    assert out.splitlines()[0].startswith(
        "venue,symbol,ts,price_level,volume,bid_volume,ask_volume"
    )


def test_simulate_is_deterministic_and_feeds_analyze(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for folder in (first, second):
        code, _, err = run(
            "simulate", "-o", folder, "--seed", "3", "--hours", "6", "--symbols", "1"
        )
        assert code == 0, err
    digests = [
        {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(f.iterdir())}
        for f in (first, second)
    ]
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"trades.parquet", "quotes.parquet", "truth.parquet"}
    truth = pl.read_parquet(first / "truth.parquet")
    assert {"accumulation", "distribution"} <= set(truth["phase"].to_list())
    code, out, _ = run(
        "classify", first / "trades.parquet", first / "quotes.parquet", "--evaluate", "--to", "json"
    )
    scores = {r["method"]: r for r in json.loads(out)}
    assert scores["lee-ready"]["accuracy"] == 1.0  # every simulated trade hits the prior quote
    code, out, _ = run(
        "analyze",
        first / "trades.parquet",
        first / "quotes.parquet",
        "--table",
        "summary",
        "--to",
        "json",
    )
    [row] = json.loads(out)
    assert code == 0
    assert math.isclose(row["mm_inventory"], truth.sort("ts")["mm_inventory"][-1], abs_tol=1e-9)


def test_every_new_command_reads_stdin_quietly() -> None:
    data = TARDIS_TRADES.read_bytes()
    result = CliRunner().invoke(cli, ["flow", "-", "--bar", "30m", "--to", "csv"], input=data)
    assert result.exit_code == 0
    assert io.StringIO(result.stdout).readline().startswith("venue,symbol,ts,open")


def test_phases_command_bars_episodes_and_truth(tmp_path: Path) -> None:
    folder = tmp_path / "sim"
    # 24 hours: the detector labels nothing in its first ~130 bars (flow scale and drift ratio
    # warm-up), which would hold a third of the episodes of a 6-hour market.
    assert run("simulate", "-o", folder, "--seed", "101", "--hours", "24", "--symbols", "1")[0] == 0
    trades, quotes = folder / "trades.parquet", folder / "quotes.parquet"
    code, out, err = run("phases", trades, quotes, "--to", "csv")
    assert code == 0, err
    header = out.splitlines()[0]
    assert header.startswith("venue,symbol,ts,phase,inventory_side,distribution_score,mm_inventory")
    code, out, _ = run("phases", trades, quotes, "--episodes", "--to", "json")
    episodes = json.loads(out)
    assert {e["phase"] for e in episodes} == {"accumulation", "distribution"}
    assert set(episodes[0]) >= {
        "symbol",
        "phase",
        "inventory_side",
        "start",
        "end",
        "bars",
        "inventory_start",
        "inventory_end",
        "unloaded",
        "vwap",
        "price_levels",
        "price_change",
    }
    code, out, _ = run(
        "phases", trades, quotes, "--evaluate", "--truth", folder / "truth.parquet", "--to", "json"
    )
    scores = {s["symbol"]: s for s in json.loads(out)}
    assert scores["SIMA"]["precision"] >= 0.7
    assert scores["SIMA"]["recall"] >= 0.7
    assert scores["SIMA"]["episode_recall"] >= 0.8
    code, out, _ = run("phases", trades, quotes, "--evaluate", "--to", "json")
    assert [row["horizon"] for row in json.loads(out)] == [1, 5, 15, 60]
    code, out, _ = run("phases", trades, quotes, "--offline", "-o", tmp_path / "phases.parquet")
    metadata = pl.read_parquet_metadata(tmp_path / "phases.parquet")
    assert json.loads(metadata["mmflow.parameters"])["offline"] is True
    code, out, _ = run("analyze", trades, quotes, "--table", "summary", "--to", "json")
    [row] = json.loads(out)
    assert row["phase"] in {"accumulation", "distribution", "neutral"}
    assert row["value_area_low"] <= row["poc"] <= row["value_area_high"]
    assert row["last_episode"] in {"accumulation", "distribution"}
