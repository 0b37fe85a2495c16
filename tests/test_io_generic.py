from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.errors import MmflowError, ReaderError, SchemaError, UnknownFormatError
from mmflow.io import Limits, ReadOptions, Source, detect
from mmflow.schema import QUOTES, TRADES
from tests.helpers import TRADE_COLUMNS, canonical_schema

UTC_NS = pl.Datetime("ns", "UTC")
# 2024-07-19T00:00:00Z
MIDNIGHT_NS = 1_721_347_200_000_000_000

TRADES_CSV = (
    "ts,ts_event,symbol,venue,price,size,aggressor_side,trade_id\n"
    "2024-07-19T00:00:00.123456789Z,2024-07-19T00:00:00.120000000Z,BTCUSDT,binance,"
    "64000.5,0.012,buy,1001\n"
    "2024-07-19T00:00:01.5Z,2024-07-19T00:00:01.4Z,BTCUSDT,binance,64001,2,sell,1002\n"
    "2024-07-19T00:00:02Z,2024-07-19T00:00:02Z,ETHUSDT,binance,3400.25,10,unknown,0007\n"
)

QUOTES_CSV = (
    "ts,symbol,bid_price,bid_size,ask_price,ask_size\n"
    "2024-07-19T00:00:00Z,ESU4,5600.25,12,5600.5,7\n"
    "2024-07-19T00:00:00.25Z,ESU4,5600.25,11,5600.75,3\n"
)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _load(path: Path, fmt: str = "auto", options: ReadOptions | None = None) -> mmflow.io.Loaded:
    [loaded] = mmflow.io.load([str(path)], fmt, options)
    return loaded


def _trades(path: Path, fmt: str = "auto", options: ReadOptions | None = None) -> pl.DataFrame:
    frames = _load(path, fmt, options).frames
    assert frames.quotes is None
    assert frames.trades is not None
    return frames.trades.collect()


def _ns(df: pl.DataFrame, column: str = "ts") -> list[int]:
    return df[column].cast(pl.Int64).to_list()


def _format_of(path: Path) -> str:
    return detect(Source(path, str(path))).name


def _canonical_trades() -> pl.DataFrame:
    """Every trades column, nulls included, exactly in the canonical schema."""
    return pl.DataFrame(
        {
            "ts": [MIDNIGHT_NS + 123_456_789, MIDNIGHT_NS + 1_000_000_001],
            "ts_event": [MIDNIGHT_NS + 100_000_000, None],
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "venue": ["binance", None],
            "exchange": [None, "Z"],
            "price": [64000.5, 3400.25],
            "size": [0.012, 10.0],
            "aggressor_side": [1, -1],
            "trade_id": ["1001", None],
            "bid_price": [64000.0, None],
            "bid_size": [1.5, 2.0],
            "ask_price": [64001.0, 3400.5],
            "ask_size": [0.25, 4.0],
            "conditions": ["@", None],
            "correction": ["00", None],
        },
        schema={name: TRADES.dtype(name) for name in TRADES.names},
    )


# --- canonical CSV ----------------------------------------------------------------------------


def test_canonical_csv_trades_pins_every_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "trades.csv", TRADES_CSV)
    loaded = _load(path)
    assert loaded.format.name == "generic"
    assert loaded.kind == "trades"
    df = _trades(path)
    assert df.schema == canonical_schema(*TRADE_COLUMNS)
    assert _ns(df) == [
        MIDNIGHT_NS + 123_456_789,
        MIDNIGHT_NS + 1_500_000_000,
        MIDNIGHT_NS + 2 * 10**9,
    ]
    assert _ns(df, "ts_event") == [
        MIDNIGHT_NS + 120_000_000,
        MIDNIGHT_NS + 1_400_000_000,
        MIDNIGHT_NS + 2 * 10**9,
    ]
    assert df.drop("ts", "ts_event").rows() == [
        ("BTCUSDT", "binance", 64000.5, 0.012, 1, "1001"),
        ("BTCUSDT", "binance", 64001.0, 2.0, -1, "1002"),
        ("ETHUSDT", "binance", 3400.25, 10.0, 0, "0007"),  # trade_id stays text: leading zeros
    ]


def test_canonical_csv_with_bbo_columns_is_trades_with_bbo(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tbbo.csv",
        "ts,symbol,price,size,aggressor_side,bid_price,bid_size,ask_price,ask_size\n"
        "2024-07-19T00:00:00Z,QQQ,480.5,100,-1,480.5,300,480.52,200\n",
    )
    loaded = _load(path)
    assert loaded.kind == "trades+bbo"
    df = _trades(path)
    assert df.columns == [
        "ts",
        "symbol",
        "price",
        "size",
        "aggressor_side",
        "bid_price",
        "bid_size",
        "ask_price",
        "ask_size",
    ]
    assert df.drop("ts").row(0) == ("QQQ", 480.5, 100.0, -1, 480.5, 300.0, 480.52, 200.0)


def test_header_only_csv_gives_zero_canonical_rows(tmp_path: Path) -> None:
    df = _trades(_write(tmp_path / "h.csv", "ts,symbol,price,size\n"))
    assert df.height == 0
    assert df.columns == ["ts", "symbol", "price", "size", "aggressor_side"]


# --- timestamps -------------------------------------------------------------------------------


def test_iso_timestamps_with_z_and_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "iso.csv",
        "ts,price,size\n"
        "2024-07-19T00:00:00.000000001Z,1,1\n"
        "2024-07-19T02:00:00+02:00,1,1\n"
        "2024-07-18T19:30:00.5-04:30,1,1\n",
    )
    assert _ns(_trades(path)) == [MIDNIGHT_NS + 1, MIDNIGHT_NS, MIDNIGHT_NS + 500_000_000]


def test_naive_iso_text_is_taken_as_utc(tmp_path: Path) -> None:
    path = _write(tmp_path / "naive.csv", "ts,price,size\n2024-07-19 00:00:00.25,1,1\n")
    assert _ns(_trades(path)) == [MIDNIGHT_NS + 250_000_000]


@pytest.mark.parametrize(
    ("value", "expected_ns"),
    [
        ("1721347200123", MIDNIGHT_NS + 123_000_000),  # milliseconds
        ("1721347200123456", MIDNIGHT_NS + 123_456_000),  # microseconds
        ("1721347200123456789", MIDNIGHT_NS + 123_456_789),  # nanoseconds
        ("1721347200", MIDNIGHT_NS),  # seconds
        ("1721347200.123456", MIDNIGHT_NS + 123_456_000),  # fractional seconds
        ("1721347200123.5", MIDNIGHT_NS + 123_500_000),  # fractional milliseconds
    ],
)
def test_epoch_numbers_get_their_unit_from_their_magnitude(
    tmp_path: Path, value: str, expected_ns: int
) -> None:
    path = _write(tmp_path / "epoch.csv", f"ts,price,size\n{value},1,1\n")
    assert _ns(_trades(path)) == [expected_ns]


@settings(max_examples=30, deadline=None)
@given(
    instant=st.integers(
        int(datetime(1974, 1, 1, tzinfo=UTC).timestamp() * 10**6),
        int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 10**6),
    ),
    unit=st.sampled_from(["ms", "us", "ns"]),
)
def test_integer_epoch_in_any_unit_reads_back_the_same_instant(
    tmp_path_factory: pytest.TempPathFactory, instant: int, unit: str
) -> None:
    value = {"ms": instant // 1000, "us": instant, "ns": instant * 1000}[unit]
    expected = {"ms": instant // 1000 * 10**6, "us": instant * 1000, "ns": instant * 1000}[unit]
    path = _write(tmp_path_factory.mktemp("epoch") / "e.csv", f"ts,price,size\n{value},1,1\n")
    # the plausibility window (default 1990 .. tomorrow) widened to the whole range tested here
    wide = ReadOptions(
        limits=Limits(datetime(1970, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))
    )
    assert _ns(_trades(path, options=wide)) == [expected]


def test_naive_datetimes_in_parquet_are_taken_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "naive.parquet"
    pl.DataFrame(
        {"ts": [datetime(2024, 7, 19, 0, 0, 0, 250000)], "price": [1.0], "size": [2.0]}  # noqa: DTZ001
    ).write_parquet(path)
    df = _trades(path)
    assert df.schema["ts"] == UTC_NS
    assert _ns(df) == [MIDNIGHT_NS + 250_000_000]


def test_zoned_datetimes_in_parquet_are_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "paris.parquet"
    pl.DataFrame({"ts": [datetime(2024, 7, 19, 2, 0)], "price": [1.0], "size": [2.0]}).with_columns(  # noqa: DTZ001
        pl.col("ts").dt.replace_time_zone("Europe/Paris")
    ).write_parquet(path)
    assert _ns(_trades(path)) == [MIDNIGHT_NS]


def test_unparsable_timestamp_text_fails_at_collect_instead_of_becoming_null(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "bad.csv", "ts,price,size\nyesterday,1,1\n")
    frames = _load(path).frames
    assert frames.trades is not None
    with pytest.raises(pl.exceptions.ComputeError):
        frames.trades.collect()


# --- aggressor side ---------------------------------------------------------------------------


def test_text_side_buy_sell_b_s_unknown_and_empty(tmp_path: Path) -> None:
    sides = ["buy", "sell", "B", "S", "unknown", "", "BUY", " Sell ", "N"]
    rows = "".join(f"{MIDNIGHT_NS},1,1,{side}\n" for side in sides)
    path = _write(tmp_path / "sides.csv", "ts,price,size,aggressor_side\n" + rows)
    assert _trades(path)["aggressor_side"].to_list() == [1, -1, 1, -1, 0, 0, 1, -1, 0]


def test_one_buy_and_one_sell_row_give_plus_one_and_minus_one(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "two.csv",
        "ts,symbol,price,size,aggressor_side\n"
        "2024-07-19T00:00:00Z,X,100,1,buy\n"
        "2024-07-19T00:00:01Z,X,99,3,sell\n",
    )
    df = _trades(path)
    assert df["aggressor_side"].to_list() == [1, -1]
    assert df.filter(pl.col("aggressor_side") == 1)["size"].to_list() == [1.0]


def test_integer_side_plus_one_minus_one_zero(tmp_path: Path) -> None:
    rows = "".join(f"{MIDNIGHT_NS},1,1,{side}\n" for side in ["+1", "-1", "0", "1", ""])
    path = _write(tmp_path / "ints.csv", "ts,price,size,aggressor_side\n" + rows)
    assert _trades(path)["aggressor_side"].to_list() == [1, -1, 0, 1, 0]


def test_float_side_uses_its_sign(tmp_path: Path) -> None:
    rows = "".join(f"{MIDNIGHT_NS},1,1,{side}\n" for side in ["2.0", "-0.5", "0.0", "", "1"])
    path = _write(tmp_path / "floats.csv", "ts,price,size,aggressor_side\n" + rows)
    assert _trades(path)["aggressor_side"].to_list() == [1, -1, 0, 0, 1]


def test_absent_side_is_unknown_zero(tmp_path: Path) -> None:
    path = _write(tmp_path / "noside.csv", f"ts,price,size\n{MIDNIGHT_NS},1,1\n{MIDNIGHT_NS},2,2\n")
    df = _trades(path)
    assert df.schema["aggressor_side"] == pl.Int8()
    assert df["aggressor_side"].to_list() == [0, 0]


def test_boolean_side_raises_schema_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "bool.csv", f"ts,price,size,aggressor_side\n{MIDNIGHT_NS},1,1,true\n")
    with pytest.raises(SchemaError) as info:
        _load(path)
    assert str(info.value) == (
        f"{path}: aggressor_side is boolean; map a buy/sell or +1/-1 column instead"
    )


# --- symbol -----------------------------------------------------------------------------------


def test_absent_symbol_is_the_file_stem(tmp_path: Path) -> None:
    plain = _write(tmp_path / "SOLUSDT-trades.csv", f"ts,price,size\n{MIDNIGHT_NS},1,1\n")
    packed = _write(tmp_path / "ADAUSDT.csv.gz", gzip.compress(plain.read_bytes()))
    assert _trades(plain)["symbol"].to_list() == ["SOLUSDT-trades"]
    assert _trades(packed)["symbol"].to_list() == ["ADAUSDT"]


def test_symbol_option_is_used_when_the_file_has_no_symbol_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", f"ts,price,size\n{MIDNIGHT_NS},1,1\n")
    assert _trades(path, options=ReadOptions(symbol="XBTUSD"))["symbol"].to_list() == ["XBTUSD"]


def test_symbol_option_never_relabels_the_files_symbol_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "trades.csv", TRADES_CSV)
    plain = _trades(path)
    df = _trades(path, options=ReadOptions(symbol="X"))
    assert df["symbol"].to_list() == plain["symbol"].to_list()
    assert "X" not in df["symbol"].to_list()


# --- --map ------------------------------------------------------------------------------------

MAPPED_CSV = (
    "time,px,qty,side,venue_code\n"
    "2024-07-19T00:00:00.5Z,101.25,3,BUY,XNAS\n"
    "2024-07-19T00:00:01Z,101.0,4,sell,XNAS\n"
)
MAP = {"ts": "time", "price": "px", "size": "qty", "aggressor_side": "side"}


def test_column_map_reads_a_csv_with_other_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "AAPL.csv", MAPPED_CSV)
    loaded = _load(path, options=ReadOptions(column_map=MAP))
    assert loaded.format.name == "generic"  # a map implies generic, no detection
    df = _trades(path, options=ReadOptions(column_map=MAP))
    assert df.columns == ["ts", "symbol", "price", "size", "aggressor_side"]
    assert _ns(df) == [MIDNIGHT_NS + 500_000_000, MIDNIGHT_NS + 10**9]
    assert df.drop("ts").rows() == [("AAPL", 101.25, 3.0, 1), ("AAPL", 101.0, 4.0, -1)]


def test_column_map_can_map_venue_and_symbol(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", MAPPED_CSV.replace("venue_code", "ticker"))
    options = ReadOptions(column_map={**MAP, "symbol": "ticker"})
    assert _trades(path, options=options)["symbol"].to_list() == ["XNAS", "XNAS"]


def test_column_map_replaces_a_canonical_column_already_in_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "ts,price,size,last\n2024-07-19T00:00:00Z,1.0,1,2.5\n")
    df = _trades(path, options=ReadOptions(column_map={"price": "last"}))
    assert df["price"].to_list() == [2.5]


def test_column_map_naming_a_missing_column_lists_the_found_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", MAPPED_CSV)
    with pytest.raises(ReaderError) as info:
        _load(path, options=ReadOptions(column_map={**MAP, "size": "quantity"}))
    assert str(info.value) == (
        f"{path}: --map size=quantity: no column 'quantity'; found time, px, qty, side, venue_code"
    )


def test_csv_without_ts_asks_for_a_map(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", MAPPED_CSV)
    with pytest.raises(ReaderError) as info:
        _load(path, "generic")
    assert str(info.value) == (
        f"{path}: no timestamp column 'ts'; found time, px, qty, side, venue_code "
        "(map one with --map ts=COLUMN)"
    )


# --- quotes -----------------------------------------------------------------------------------


def test_quotes_csv_gives_quotes_frame_with_quotes_schema(tmp_path: Path) -> None:
    path = _write(tmp_path / "quotes.csv", QUOTES_CSV)
    loaded = _load(path)
    assert loaded.format.name == "generic"
    assert loaded.kind == "quotes"
    assert loaded.frames.trades is None
    assert loaded.frames.quotes is not None
    df = loaded.frames.quotes.collect()
    assert df.schema == pl.Schema({name: QUOTES.dtype(name) for name in QUOTES.required})
    assert _ns(df) == [MIDNIGHT_NS, MIDNIGHT_NS + 250_000_000]
    assert df.drop("ts").rows() == [
        ("ESU4", 5600.25, 12.0, 5600.5, 7.0),
        ("ESU4", 5600.25, 11.0, 5600.75, 3.0),
    ]


def test_csv_with_neither_trades_nor_quotes_raises_reader_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "ts,symbol,open,close\n2024-07-19T00:00:00Z,X,1,2\n")
    with pytest.raises(ReaderError) as info:
        _load(path, "generic")
    assert str(info.value) == (
        f"{path}: neither trades (price, size) nor quotes (bid_price, ask_price); "
        "found ts, symbol, open, close (map columns with --map canonical=column)"
    )


def test_quotes_missing_a_size_raises_schema_error_with_path(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", "ts,symbol,bid_price,ask_price\n2024-07-19T00:00:00Z,X,1,2\n")
    with pytest.raises(SchemaError, match=r"missing quotes column\(s\) bid_size, ask_size") as i:
        _load(path)
    assert i.value.path == str(path)


# --- detection --------------------------------------------------------------------------------


def test_detect_picks_each_generic_format_by_magic_or_header(tmp_path: Path) -> None:
    frame = _canonical_trades()
    frame.write_parquet(tmp_path / "t.parquet")
    frame.write_ipc(tmp_path / "t.arrow")
    frame.write_ndjson(tmp_path / "t.ndjson")
    frame.write_csv(tmp_path / "t.csv")
    assert _format_of(tmp_path / "t.parquet") == "parquet"
    assert _format_of(tmp_path / "t.arrow") == "arrow"
    assert _format_of(tmp_path / "t.ndjson") == "ndjson"
    assert _format_of(tmp_path / "t.csv") == "generic"


def test_detect_ignores_misleading_file_names(tmp_path: Path) -> None:
    frame = _canonical_trades()
    frame.write_parquet(tmp_path / "data.csv")
    frame.write_ipc(tmp_path / "data.parquet")
    _write(tmp_path / "data.arrow", TRADES_CSV)
    assert _format_of(tmp_path / "data.csv") == "parquet"
    assert _format_of(tmp_path / "data.parquet") == "arrow"
    assert _format_of(tmp_path / "data.arrow") == "generic"


def test_detect_sees_through_gzip_and_a_byte_order_mark(tmp_path: Path) -> None:
    frame = _canonical_trades()
    frame.write_ndjson(tmp_path / "t.ndjson")
    _write(tmp_path / "t.ndjson.gz", gzip.compress((tmp_path / "t.ndjson").read_bytes()))
    _write(tmp_path / "t.csv.gz", gzip.compress(TRADES_CSV.encode()))
    _write(tmp_path / "excel.csv", "\ufeff" + QUOTES_CSV.replace("\n", "\r\n"))
    assert _format_of(tmp_path / "t.ndjson.gz") == "ndjson"
    assert _format_of(tmp_path / "t.csv.gz") == "generic"
    assert _format_of(tmp_path / "excel.csv") == "generic"
    quotes = _load(tmp_path / "excel.csv").frames.quotes
    assert quotes is not None
    assert quotes.collect()["ask_size"].to_list() == [7.0, 3.0]


def test_detect_quotes_ndjson_by_its_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        '{"ts": "2024-07-19T00:00:00Z", "symbol": "X", "bid_price": 1.0, "bid_size": 2, '
        '"ask_price": 1.5, "ask_size": 3}\n',
    )
    assert _format_of(path) == "ndjson"
    quotes = _load(path).frames.quotes
    assert quotes is not None
    assert quotes.collect().drop("ts").row(0) == ("X", 1.0, 2.0, 1.5, 3.0)


def test_detect_non_market_csv_raises_unknown_format_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "people.csv", "name,age\nbob,3\n")
    with pytest.raises(UnknownFormatError) as info:
        mmflow.io.load([str(path)])
    message = str(info.value)
    assert message.startswith(f"{path}: cannot tell the format (first line 'name,age' ")
    assert "--format" in message
    assert "generic" in message
    assert "\n" not in message


@pytest.mark.parametrize("fmt", ["auto", "generic", "parquet", "arrow", "ndjson"])
def test_empty_file_raises_one_line_mmflow_error_with_path(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path / "empty.csv", b"")
    with pytest.raises(MmflowError) as info:
        mmflow.io.load([str(path)], fmt)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "empty" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("written", "fmt"),
    [("csv", "parquet"), ("csv", "arrow"), ("csv", "ndjson"), ("parquet", "arrow")],
)
def test_wrong_forced_format_raises_one_line_reader_error(
    tmp_path: Path, written: str, fmt: str
) -> None:
    path = tmp_path / f"t.{written}"
    if written == "csv":
        _write(path, TRADES_CSV)
    else:
        _canonical_trades().write_parquet(path)
    with pytest.raises(ReaderError) as info:
        mmflow.io.load([str(path)], fmt)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read the file (")
    assert message.endswith("); is this the right --format?")
    assert "\n" not in message


def test_binary_file_forced_as_generic_csv_is_not_called_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _canonical_trades().write_parquet(path)
    with pytest.raises(ReaderError) as info:
        mmflow.io.load([str(path)], "generic")
    assert str(info.value) == (
        f"{path}: binary content, not a text file (is this the right --format?)"
    )


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "fmt"), [("parquet", "parquet"), ("arrow", "arrow"), ("ndjson", "ndjson")]
)
def test_round_trip_of_canonical_trades_is_identical(tmp_path: Path, suffix: str, fmt: str) -> None:
    frame = _canonical_trades()
    path = tmp_path / f"trades.{suffix}"
    if suffix == "parquet":
        frame.write_parquet(path)
    elif suffix == "arrow":
        frame.write_ipc(path)
    else:
        frame.write_ndjson(path)
    loaded = _load(path)
    assert loaded.format.name == fmt
    assert loaded.kind == "trades+bbo"
    assert_frame_equal(_trades(path), frame)


def test_round_trip_through_generic_csv_is_identical(tmp_path: Path) -> None:
    frame = _canonical_trades()
    path = tmp_path / "trades.csv"
    frame.write_csv(path)
    assert_frame_equal(_trades(path), frame)


def test_round_trip_of_canonical_quotes_through_parquet_is_identical(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "ts": [MIDNIGHT_NS, MIDNIGHT_NS + 1],
            "ts_event": [MIDNIGHT_NS - 5, None],
            "symbol": ["ESU4", "ESU4"],
            "venue": ["XCME", "XCME"],
            "exchange": [None, None],
            "bid_price": [5600.25, None],
            "bid_size": [12.0, None],
            "ask_price": [5600.5, 5600.75],
            "ask_size": [7.0, 3.0],
            "conditions": ["R", None],
        },
        schema={name: QUOTES.dtype(name) for name in QUOTES.names},
    )
    path = tmp_path / "quotes.parquet"
    frame.write_parquet(path)
    quotes = _load(path).frames.quotes
    assert quotes is not None
    assert_frame_equal(quotes.collect(), frame)


def test_concatenated_files_keep_their_own_symbols(tmp_path: Path) -> None:
    body = f"ts,price,size\n{MIDNIGHT_NS},1,1\n"
    _write(tmp_path / "AAA.csv", body)
    _write(tmp_path / "BBB.csv", body)
    loaded = mmflow.io.load([str(tmp_path)])
    trades = [entry.frames.trades for entry in loaded]
    assert all(lf is not None for lf in trades)
    combined = mmflow.io.combine([lf for lf in trades if lf is not None])
    assert combined is not None
    assert combined.collect()["symbol"].to_list() == ["AAA", "BBB"]
    assert combined.collect()["ts"].to_list() == [datetime(2024, 7, 19, tzinfo=UTC)] * 2
