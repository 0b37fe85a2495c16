from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.analysis import Selection, prepare
from mmflow.convert import convert
from mmflow.errors import MmflowError
from mmflow.io.assemble import gather
from mmflow.io.source import partition_symbol
from mmflow.schema import QUOTES, TRADES
from tests.conftest import data_path
from tests.helpers import run as cli_run

TARDIS = data_path("tardis")
ESU4 = data_path(
    "databento", "nautilus_trader", "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv"
)


def run(*args: str | Path) -> tuple[int, str, str]:
    return cli_run(*args, columns=None)


def canonical(paths: list[Path], table: str) -> pl.DataFrame:
    inputs = mmflow.io.load([str(p) for p in paths])
    schema = TRADES if table == "trades" else QUOTES
    frame = gather(inputs, schema)
    assert frame is not None
    return prepare(frame, schema, Selection()).collect().sort("symbol", "ts", maintain_order=True)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_convert_round_trips_trades_and_quotes(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    inputs = [TARDIS / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz", ESU4]
    code, _, err = run(
        "convert", *inputs, TARDIS / "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz", "-o", out
    )
    assert code == 0, err
    assert "wrote 6 files" in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        "symbol=BTCUSDT/date=2020-02-22/quotes.parquet",
        "symbol=BTCUSDT/date=2020-02-22/trades.parquet",
        "symbol=ESU4/date=2024-07-01/quotes.parquet",
        "symbol=ESU4/date=2024-07-01/trades.parquet",
        "symbol=ESU4/date=2024-07-02/quotes.parquet",
        "symbol=ESU4/date=2024-07-02/trades.parquet",
    ]
    originals = [*inputs, TARDIS / "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz"]
    for table in ("trades", "quotes"):
        assert_frame_equal(canonical([out], table), canonical(originals, table))


def test_convert_is_readable_as_a_hive_dataset(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    assert run("convert", ESU4, "-o", out)[0] == 0
    dataset = pl.scan_parquet(out / "**" / "trades.parquet", hive_partitioning=True).collect()
    assert dataset.height == 120
    assert dataset["symbol"].unique().to_list() == ["ESU4"]
    assert sorted(dataset["date"].unique().cast(pl.String).to_list()) == [
        "2024-07-01",
        "2024-07-02",
    ]


def test_convert_again_gives_identical_files_and_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    assert run("convert", ESU4, "-o", out)[0] == 0
    first = digest(out)
    code, _, err = run("convert", ESU4, "-o", out)
    assert code == 1
    assert "partition file(s) already exist" in err
    assert "--overwrite" in err
    assert digest(out) == first
    assert run("convert", ESU4, "-o", out, "--overwrite")[0] == 0
    assert digest(out) == first
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_path_traversal_symbol_stays_inside_the_dataset(tmp_path: Path) -> None:
    source = tmp_path / "trades.csv"
    source.write_text(
        "ts,symbol,price,size\n"
        "2024-01-01T00:00:00Z,../../escape,1,1\n"
        "2024-01-01T00:00:01Z,BTC/USDT,2,1\n"
        "2024-01-01T00:00:02Z,..,3,1\n"
    )
    out = tmp_path / "inside" / "dataset"
    code, _, err = run("convert", source, "-o", out)
    assert code == 0, err
    files = sorted(out.rglob("*.parquet"))
    assert len(files) == 3
    root = out.resolve()
    assert all(f.resolve().is_relative_to(root) for f in files)
    assert not (tmp_path / "escape").exists()
    assert sorted(partition_symbol(f) or "" for f in files) == ["..", "../../escape", "BTC/USDT"]
    back = canonical([out], "trades")
    assert sorted(back["symbol"].to_list()) == ["..", "../../escape", "BTC/USDT"]


def test_interrupted_convert_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmflow.convert as module

    original = module._write_table
    calls = []

    def fail_on_second(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_write_table", fail_on_second)
    trades = pl.LazyFrame(
        {"ts": [0], "symbol": ["X"], "price": [1.0], "size": [1.0], "aggressor_side": [1]},
        schema_overrides={"ts": pl.Datetime("ns", "UTC"), "aggressor_side": pl.Int8},
    )
    quotes = pl.LazyFrame(
        {
            "ts": [0],
            "symbol": ["X"],
            "bid_price": [1.0],
            "bid_size": [1.0],
            "ask_price": [2.0],
            "ask_size": [1.0],
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    out = tmp_path / "dataset"
    with pytest.raises(KeyboardInterrupt):
        convert([(TRADES, trades), (QUOTES, quotes)], out)
    assert list(out.rglob("*")) == []


def test_convert_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(MmflowError, match="is not a directory"):
        convert([], target)


def test_date_option_names_a_lobster_file_without_a_date(tmp_path: Path) -> None:
    original = data_path("lobster").glob("*_2023-03-10_*message*")
    message = next(iter(original))
    renamed = tmp_path / "ZVZZT_message_1.csv"
    renamed.write_bytes(message.read_bytes())
    code, _, err = run(
        "analyze", renamed, "--format", "lobster", "--table", "summary", "--to", "json"
    )
    assert code == 1
    assert "--date" in err
    code, out, err = run(
        "analyze",
        renamed,
        "--format",
        "lobster",
        "--date",
        "2023-03-10",
        "--symbol",
        "ZVZZT",
        "--table",
        "summary",
        "--to",
        "json",
    )
    assert code == 0, err
    assert '"start": "2023-03-10T14:31:00.250000000Z"' in out  # 09:31:00.25 EST


def test_tz_option_shifts_sierra_times() -> None:
    path = next(iter(data_path("sierra-es").glob("ES_2023-06-29*")))
    utc = run("inspect", path, "--to", "json")[1]
    chicago = run("inspect", path, "--tz", "America/Chicago", "--to", "json")[1]
    assert '"start": "2023-06-29T13:30:00.000000000Z"' in utc
    assert '"start": "2023-06-29T18:30:00.000000000Z"' in chicago
    code, _, err = run("inspect", path, "--tz", "Mars/Olympus")
    assert code == 2
    assert "is not a time zone name" in err


def test_round_lot_option_scales_quote_sizes() -> None:
    path = data_path("taq", "cqm_20161201.csv")
    default = mmflow.io.load([str(path)])[0].frames.quotes
    assert default is not None
    ten = mmflow.io.load([str(path)], options=mmflow.io.ReadOptions(round_lot=10))[0].frames.quotes
    assert ten is not None
    sizes, sizes_ten = default.collect()["bid_size"], ten.collect()["bid_size"]
    assert (sizes.drop_nulls() == sizes_ten.drop_nulls() * 10).all()
    assert date(2016, 12, 1) in default.collect()["ts"].dt.date().to_list()
