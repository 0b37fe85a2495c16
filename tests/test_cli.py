from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mmflow import __version__
from mmflow.cli import cli
from tests.conftest import data_path
from tests.helpers import run

TARDIS_TRADES = data_path("tardis", "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz")
TARDIS_QUOTES = data_path("tardis", "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz")
ESU4_MBP1_CSV = data_path(
    "databento", "nautilus_trader", "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv"
)
UM_TRADES = data_path("binance", "futures", "um", "BTCUSDT-trades-2024-07-19.csv")


def tardis_reference() -> dict[str, float]:
    """Per-symbol totals computed from the raw Tardis CSV with the csv module."""
    with gzip.open(TARDIS_TRADES, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    buy = sum(float(r["amount"]) for r in rows if r["side"] == "buy")
    sell = sum(float(r["amount"]) for r in rows if r["side"] == "sell")
    notional = sum(float(r["price"]) * float(r["amount"]) for r in rows)
    volume = sum(float(r["amount"]) for r in rows)
    return {
        "trades": len(rows),
        "volume": volume,
        "buy_volume": buy,
        "sell_volume": sell,
        "vwap": notional / volume,
        "net_flow": buy - sell,
    }


def databento_reference() -> dict[str, float]:
    """Per-symbol totals from the raw Databento mbp-1 CSV: only action T rows are trades."""
    with ESU4_MBP1_CSV.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["action"] == "T"]
    size = [float(r["size"]) for r in rows]
    price = [int(r["price"]) / 1e9 for r in rows]
    buy = sum(s for s, r in zip(size, rows, strict=True) if r["side"] == "B")
    sell = sum(s for s, r in zip(size, rows, strict=True) if r["side"] == "A")
    return {
        "trades": len(rows),
        "volume": sum(size),
        "buy_volume": buy,
        "sell_volume": sell,
        "vwap": sum(p * s for p, s in zip(price, size, strict=True)) / sum(size),
        "net_flow": buy - sell,
    }


@pytest.mark.parametrize(
    ("path", "symbol", "reference"),
    [
        (TARDIS_TRADES, "BTCUSDT", tardis_reference),
        (ESU4_MBP1_CSV, "ESU4", databento_reference),
    ],
)
def test_analyze_totals_match_raw_file(path: Path, symbol: str, reference: object) -> None:
    code, out, err = run("analyze", path, "--table", "summary", "--to", "json")
    assert code == 0
    # ESU4's quotes end 4 minutes after its first trade: a 5-minute cost horizon ends after
    # the last quote for every trade, which is said (issue 9), never silently the last quote.
    assert err in (
        "",
        f"Warning: {symbol}: 120 of 120 trades have their cost horizon after "
        "the last quote (realized spread and price impact null)\n",
    )
    [row] = json.loads(out)
    expected = reference()  # type: ignore[operator]
    assert row["symbol"] == symbol
    assert row["trades"] == expected["trades"]
    assert row["unknown_volume"] == 0
    for key in ("volume", "buy_volume", "sell_volume", "vwap", "net_flow"):
        assert row[key] == pytest.approx(expected[key], rel=1e-12), key


def test_analyze_tardis_pinned_numbers() -> None:
    code, out, _ = run("analyze", TARDIS_TRADES, "--table", "summary", "--to", "json")
    [row] = json.loads(out)
    assert code == 0
    assert row["trades"] == 9999
    assert row["start"] == "2020-02-22T00:00:02.418379000Z"
    assert row["end"] == "2020-02-22T02:05:47.852384000Z"
    assert row["volume"] == pytest.approx(4024.301, abs=1e-6)


def test_analyze_rich_summary_on_screen() -> None:
    code, out, err = run("analyze", TARDIS_TRADES, ESU4_MBP1_CSV)
    assert code == 0
    assert err == (
        "Warning: ESU4: 120 of 120 trades have their cost horizon after the last quote "
        "(realized spread and price impact null)\n"
    )
    # Tardis names its exchange, the Databento CSV has no venue: two venues, so shown.
    assert "venue" in out
    assert "binance-futures" in out
    assert "mmflow analyze" in out
    assert "BTCUSDT" in out
    assert "ESU4" in out
    assert "inventory" in out
    assert "liquidity" in out
    assert "2020-02-22 00:00:02.418 → 2024-07-02 00:01:52.813 UTC" in out


def test_analyze_bars_to_parquet_with_metadata(tmp_path: Path) -> None:
    target = tmp_path / "bars.parquet"
    code, _, err = run("analyze", TARDIS_TRADES, "--bar", "5m", "-o", target)
    assert code == 0
    assert err.startswith("wrote ")
    bars = pl.read_parquet(target)
    assert bars.columns[:4] == ["venue", "symbol", "ts", "open"]  # issue 9: venue column
    assert bars["trades"].sum() == 9999
    assert bars["ts"].dt.minute().to_list()[:3] == [0, 5, 10]
    metadata = pq.read_metadata(target).metadata
    assert metadata[b"mmflow.version"].decode() == __version__
    assert metadata[b"mmflow.schema"] == b"analyze.bars/1"
    assert metadata[b"mmflow.clock"] == b"recv"
    sources = json.loads(metadata[b"mmflow.sources"])
    assert sources == [{"path": str(TARDIS_TRADES), "format": "tardis-trades"}]
    assert json.loads(metadata[b"mmflow.parameters"])["bar"] == "5m"
    assert [p.name for p in tmp_path.iterdir()] == ["bars.parquet"]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "parquet", "arrow"])
def test_analyze_to_every_format_round_trips(fmt: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", str(UM_TRADES), "--bar", "1m", "--to", fmt])
    assert result.exit_code == 0, result.stderr
    raw = result.stdout_bytes
    readers = {
        "csv": lambda b: pl.read_csv(b),
        "ndjson": lambda b: pl.read_ndjson(b),
        "json": lambda b: pl.DataFrame(json.loads(b.getvalue())),
        "parquet": lambda b: pl.read_parquet(b),
        "arrow": lambda b: pl.read_ipc(b),
    }
    df = readers[fmt](io.BytesIO(raw))
    assert {"venue", "symbol", "ts"} <= set(df.columns)  # (NDJSON key order is not data)
    if fmt in ("csv", "parquet", "arrow", "json"):
        assert df.columns[:3] == ["venue", "symbol", "ts"]
    assert df["venue"].unique().to_list() == ["binance-um"]
    assert df["trades"].sum() == 300
    assert df["symbol"].unique().to_list() == ["BTCUSDT"]


def test_analyze_symbol_filter_and_time_window() -> None:
    code, out, _ = run(
        "analyze",
        TARDIS_TRADES,
        ESU4_MBP1_CSV,
        "--symbol",
        "ESU4",
        "--end",
        "2024-07-02T00:00:00Z",
        "--table",
        "summary",
        "--to",
        "json",
    )
    rows = json.loads(out)
    assert code == 0
    assert [r["symbol"] for r in rows] == ["ESU4"]
    assert rows[0]["end"] < "2024-07-02T00:00:00"


def test_analyze_quotes_only_input_is_a_data_error() -> None:
    code, out, err = run("analyze", TARDIS_QUOTES)
    assert code == 1
    assert out == ""
    assert err == "Error: no trades in the inputs (they hold only quotes); pass trade files too\n"


def test_analyze_filter_that_removes_everything_is_a_data_error() -> None:
    code, _, err = run("analyze", TARDIS_TRADES, "--symbol", "NOPE")
    assert code == 1
    assert err.startswith("Error: no trades to analyse")


def test_analyze_reads_standard_input() -> None:
    code, out, _ = run(
        "analyze", "-", "--table", "summary", "--to", "json", input=TARDIS_TRADES.read_bytes()
    )
    assert code == 0
    assert json.loads(out)[0]["trades"] == 9999


def test_inspect_json_has_contract_keys() -> None:
    code, out, err = run("inspect", TARDIS_TRADES, ESU4_MBP1_CSV, "--to", "json")
    assert (code, err) == (0, "")
    reports = json.loads(out)
    assert [r["format"] for r in reports] == ["tardis-trades", "databento-csv"]
    for key in (
        "path",
        "format",
        "kind",
        "rows",
        "symbols",
        "start",
        "end",
        "side_known",
        "issues",
    ):
        assert all(key in r for r in reports), key
    tardis, databento = reports
    assert (tardis["kind"], tardis["rows"], tardis["symbols"]) == ("trades", 9999, ["BTCUSDT"])
    assert tardis["start_event"] == "2020-02-22T00:00:02.111000000Z"
    assert tardis["side_known"] == 1.0
    assert (databento["kind"], databento["rows"], databento["trades"]) == (
        "trades+quotes",
        2288,
        120,
    )
    assert (databento["buy_trades"], databento["sell_trades"]) == (66, 54)


def test_inspect_table_lists_each_file() -> None:
    code, out, _ = run("inspect", TARDIS_TRADES, TARDIS_QUOTES)
    assert code == 0
    assert "tardis-trades" in out
    assert "tardis-quotes" in out
    assert "9,999" in out


def test_inspect_reports_readable_files_and_exits_1_for_bad_ones(tmp_path: Path) -> None:
    bad = tmp_path / "notes.csv"
    bad.write_text("name,age\nbob,3\n")
    code, out, err = run("inspect", TARDIS_TRADES, bad, "--to", "json")
    assert code == 1
    assert [r["format"] for r in json.loads(out)] == ["tardis-trades"]
    assert err.startswith(f"Error: {bad}: cannot tell the format")
    assert err.count("\n") == 1


def test_inspect_finds_quality_issues(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "ts,symbol,price,size,trade_id\n"
        "2024-01-01T00:00:02Z,X,10,1,a\n"
        "2024-01-01T00:00:01Z,X,0,1,a\n"
        "2024-01-01T00:00:03Z,X,10,-1,b\n"
        "2024-01-01T00:00:00Z,X,10,1,a\n"
    )
    code, out, _ = run("inspect", path, "--to", "json")
    assert code == 0
    # issue 9: non-positive prices and sizes are dropped by the reader checks and counted
    report = json.loads(out)[0]
    assert report["issues"] == [
        "1 trade rows out of time order (sorted before analysis)",
        "1 duplicate trade ids",
        "1 trades dropped: non-positive price",
        "1 trades dropped: non-positive size",
    ]
    assert (report["rows"], report["rows_used"], report["rows_dropped"]) == (4, 2, 2)


def test_inspect_crossed_and_one_sided_quotes(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(
        "ts,symbol,bid_price,bid_size,ask_price,ask_size\n"
        "2024-01-01T00:00:01Z,X,10,1,9,1\n"
        "2024-01-01T00:00:02Z,X,10,1,,\n"
        "2024-01-01T00:00:03Z,X,10,1,10,1\n"
    )
    code, out, _ = run("inspect", path, "--to", "json")
    assert code == 0
    assert json.loads(out)[0]["issues"] == [
        "1 crossed quotes (bid > ask)",
        "1 locked quotes (bid = ask)",
        "1 one-sided quotes (one side empty)",
    ]


# --- errors: one line on stderr, exit 1 for data, 2 for usage ---------------------------------


def test_empty_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    for command in ("analyze", "inspect"):
        code, out, err = run(command, path)
        assert code == 1
        assert out == ""
        assert err.startswith(f"Error: {path}: ")
        assert err.count("\n") == 1


def test_missing_column_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "binance-like.csv"
    path.write_text("id,price,qty,quote_qty,time\n1,10,1,10,1721347022956\n")
    code, _, err = run("analyze", path, "--format", "binance-trades", "--symbol", "X")
    assert code == 1
    assert err.startswith(f"Error: {path}: ")
    assert "is_buyer_maker" in err
    assert err.count("\n") == 1


def test_truncated_gzip_is_a_one_line_error(tmp_path: Path) -> None:
    data = TARDIS_TRADES.read_bytes()
    path = tmp_path / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    for command in ("analyze", "inspect"):
        code, out, err = run(command, path)
        assert code == 1, command
        assert out == ""
        assert err.startswith(f"Error: {path}: cannot ")
        assert "truncated" in err
        assert err.count("\n") == 1


def test_non_market_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,age\nbob,3\n")
    code, _, err = run("analyze", path)
    assert code == 1
    assert err.startswith(f"Error: {path}: cannot tell the format (")
    assert "use --format NAME, one of dbn, databento-csv, tardis-trades" in err
    assert err.count("\n") == 1


def test_missing_path_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = run("analyze", tmp_path / "nope.csv")
    assert code == 1
    assert (
        err == f"Error: {tmp_path / 'nope.csv'}: no such file (check the path or quote the glob)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bar", "soon"], "Invalid value for '--bar'"),
        (["--format", "bogus"], "Invalid value for '--format'"),
        (["--to", "xlsx"], "Invalid value for '--to'"),
        (["--start", "yesterday"], "Invalid value for '--start'"),
        (["--map", "nonsense"], "Invalid value for '--map'"),
        (["--map", "px=price"], "Invalid value for '--map'"),
    ],
)
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    code, out, err = run("analyze", TARDIS_TRADES, *args)
    assert code == 2
    assert out == ""
    assert message in err


def test_unknown_output_suffix_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("analyze", TARDIS_TRADES, "-o", tmp_path / "bars.xlsx")
    assert code == 2
    assert "cannot tell the output format" in err
    assert list(tmp_path.iterdir()) == []


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,age\nbob,3\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", str(path), "--verbose"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "UnknownFormatError"
    result = runner.invoke(cli, ["--verbose", "analyze", str(path)])
    assert type(result.exception).__name__ == "UnknownFormatError"


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmflow.render.write as write

    def explode(df: pl.DataFrame, sink: io.BufferedWriter, fmt: str, metadata: object) -> None:
        sink.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write, "write_to", explode)
    target = tmp_path / "bars.csv"
    code, _, err = run("analyze", TARDIS_TRADES, "-o", target)
    assert code == 1
    assert "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_replaced_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "bars.csv"
    target.write_text("old\n")
    code, _, _ = run("analyze", TARDIS_TRADES, "--bar", "1m", "-o", target)
    assert code == 0
    assert target.read_text().startswith("venue,symbol,ts,open")


def test_every_command_has_help_with_an_example() -> None:
    for name in cli.commands:
        code, out, _ = run(name, "--help")
        assert code == 0, name
        assert "Example:" in out, name


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert out == f"mmflow, version {__version__}\n"


def test_python_dash_m_and_closed_pipe_exit_quietly() -> None:
    command = [sys.executable, "-m", "mmflow", "analyze", str(TARDIS_TRADES), "--bar", "1s"]
    proc = subprocess.Popen(
        [*command, "--to", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    _, err = proc.communicate(timeout=60)
    assert first.startswith(b"venue,symbol,ts,open")
    assert err == b""
    assert proc.returncode in (0, -13)  # finished, or ended by SIGPIPE: never a traceback


# --- classify --------------------------------------------------------------------------------

BINANCE_CM_TRADES = data_path("binance", "futures", "cm", "BTCUSD_PERP-trades-2024-08-09.csv")
BINANCE_CM_QUOTES = data_path("binance", "futures", "cm", "BTCUSD_PERP-bookTicker-2024-08-09.csv")


def test_classify_per_trade_output_columns() -> None:
    code, out, err = run("classify", ESU4_MBP1_CSV, "--method", "lee-ready", "--to", "csv")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        "ts,venue,symbol,price,size,aggressor_side,trade_sign,sign_method,mid_price,spread"
    )
    assert len(lines) == 121
    assert lines[1] == (
        "2024-07-01T23:58:01.218485389Z,,ESU4,5528.75,2.0,1,1,lee_ready,5528.625,0.25"
    )


def test_classify_on_screen_shows_the_method_mix() -> None:
    code, out, _ = run("classify", TARDIS_TRADES, "--method", "tick")
    assert code == 0
    assert "tick" in out
    assert (
        "9,996" in out
    )  # all but the first three (no price change yet) are signed by the tick rule


def test_classify_evaluate_lee_ready_on_databento_mbp1_at_least_99_percent() -> None:
    code, out, _ = run("classify", ESU4_MBP1_CSV, "--evaluate", "--to", "json")
    assert code == 0
    scores = {r["method"]: r for r in json.loads(out)}
    assert scores["lee-ready"]["accuracy"] >= 0.99
    assert scores["lee-ready"]["trades"] == 120
    assert set(scores) == {
        "tick",
        "reverse-tick",
        "quote",
        "lee-ready",
        "emo",
        "clnv",
        "depth",
        "bvc",
    }


def test_classify_evaluate_shows_best_method_and_lag_table() -> None:
    code, out, _ = run("classify", BINANCE_CM_TRADES, "--quotes", BINANCE_CM_QUOTES, "--evaluate")
    assert code == 0
    assert "best" in out
    assert "Lee-Ready accuracy by quote lag" in out
    assert "500ms" in out


def test_classify_warns_when_the_side_mapping_looks_inverted(tmp_path: Path) -> None:
    rows = ["ts,symbol,price,size,aggressor_side"]
    price = 100.0
    for i in range(40):
        step = 1 if i % 3 else -1
        price += step
        rows.append(f"2024-01-01T00:00:{i:02d}Z,X,{price},1,{-step}")  # vendor side flipped
    path = tmp_path / "flipped.csv"
    path.write_text("\n".join(rows) + "\n")
    code, _, err = run("classify", path, "--evaluate", "--to", "json")
    assert code == 0
    assert "X: the vendor side agrees with the tick rule on only 0.0 % of trades" in err
    assert "side mapping looks inverted" in err


def test_classify_warns_about_quotes_for_other_symbols_only(tmp_path: Path) -> None:
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(
        "ts,symbol,bid_price,bid_size,ask_price,ask_size\n2024-01-01T00:00:00Z,OTHER,1,1,2,1\n"
    )
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "ts,symbol,price,size\n2024-01-01T00:00:01Z,X,1.5,1\n2024-01-01T00:00:02Z,X,1.6,1\n"
    )
    code, out, err = run("classify", trades, quotes, "--method", "lee-ready", "--to", "csv")
    assert code == 0
    assert "X: no quote precedes any trade" in err
    assert out.splitlines()[2].endswith(",1,tick,,")


def test_classify_quotes_after_all_trades_fall_back_with_a_warning(tmp_path: Path) -> None:
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(
        "ts,symbol,bid_price,bid_size,ask_price,ask_size\n2024-01-01T00:10:00Z,X,1,1,2,1\n"
    )
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "ts,symbol,price,size\n2024-01-01T00:00:01Z,X,1.5,1\n2024-01-01T00:00:02Z,X,1.4,1\n"
    )
    code, out, err = run("classify", trades, "--quotes", quotes, "--to", "csv")
    assert code == 0
    assert "no quote precedes any trade" in err
    assert [line.split(",")[6] for line in out.splitlines()[1:]] == ["0", "-1"]


def test_classify_unsorted_input_gives_the_sorted_result(tmp_path: Path) -> None:
    body = [
        "2024-01-01T00:00:01Z,X,10,1",
        "2024-01-01T00:00:02Z,X,11,1",
        "2024-01-01T00:00:03Z,X,10.5,1",
    ]
    ordered, shuffled = tmp_path / "ordered.csv", tmp_path / "shuffled.csv"
    ordered.write_text("ts,symbol,price,size\n" + "\n".join(body) + "\n")
    shuffled.write_text("ts,symbol,price,size\n" + "\n".join([body[2], body[0], body[1]]) + "\n")
    outputs = [
        run("classify", p, "--method", "tick", "--to", "csv")[1] for p in (ordered, shuffled)
    ]
    assert outputs[0] == outputs[1]
    assert [line.split(",")[6] for line in outputs[0].splitlines()[1:]] == ["0", "1", "-1"]


def test_classify_nan_prices_are_unsigned_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "ts,symbol,price,size\n2024-01-01T00:00:01Z,X,10,1\n"
        "2024-01-01T00:00:02Z,X,NaN,1\n2024-01-01T00:00:03Z,X,11,1\n"
    )
    code, out, err = run("classify", path, "--method", "tick", "--to", "csv")
    assert code == 0
    # issue 9: a NaN price is dropped by the reader checks and counted, not left unsigned
    assert f"Warning: {path}: dropped 1 trades rows (NaN or infinite price: 1)" in err
    assert [line.split(",")[6] for line in out.splitlines()[1:]] == ["0", "1"]


def test_classify_bvc_gives_bars(tmp_path: Path) -> None:
    code, out, _ = run("classify", TARDIS_TRADES, "--method", "bvc", "--bar", "5m", "--to", "json")
    assert code == 0
    bars = json.loads(out)
    assert list(bars[0]) == [
        "venue",
        "symbol",
        "ts",
        "close",
        "volume",
        "trades",
        "buy_volume",
        "sell_volume",
    ]
    assert bars[0]["buy_volume"] is None  # the first bar has no price change to classify
    second = bars[1]
    assert second["buy_volume"] + second["sell_volume"] == pytest.approx(second["volume"])


def test_analyze_method_mix_and_bvc(tmp_path: Path) -> None:
    code, out, _ = run("analyze", TARDIS_TRADES, "--method", "tick")
    assert code == 0
    assert "signed: 100.0 % tick" in out
    code, out, _ = run(
        "analyze",
        TARDIS_TRADES,
        "--method",
        "bvc",
        "--bar",
        "5m",
        "--table",
        "summary",
        "--to",
        "json",
    )
    [row] = json.loads(out)
    assert code == 0
    assert row["buy_volume"] + row["sell_volume"] + row["unknown_volume"] == pytest.approx(
        row["volume"]
    )
    assert row["unknown_volume"] > 0  # the first 5-minute bar cannot be classified


def test_simulate_command_exposes_the_regime_knobs_and_family(tmp_path: Path) -> None:
    from mmflow.simulate import PARAMETERS_KEY

    out = tmp_path / "sim"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "-o",
            str(out),
            "--hours",
            "4",
            "--symbols",
            "1",
            "--family",
            "hawkes",
            "--hold-bars",
            "2",
            "5",
            "--size-tail",
            "3",
            "--proxy-drift",
            "0.5",
            "--market-makers",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = pq.read_metadata(out / "truth.parquet").metadata
    values = json.loads(meta[PARAMETERS_KEY.encode()])
    assert values["family"] == "hawkes"
    assert values["hold_bars"] == [2, 5]
    assert values["size_tail"] == 3.0
    assert values["market_makers"] == 4
    bad = CliRunner().invoke(cli, ["simulate", "-o", str(out), "--excitation", "0.95"])
    assert bad.exit_code == 2
