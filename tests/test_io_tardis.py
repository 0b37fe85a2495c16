from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from mmflow.io import FORMATS, detect
from mmflow.io.formats import Sniff
from mmflow.io.tardis import FORMATS as TARDIS_FORMATS
from tests.conftest import data_path, shared_path
from tests.helpers import (
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    canonical_schema,
    empty_file_error,
    empty_gzip_error,
    gzip_copy,
    one_row_error,
    quotes_of,
    read,
    source_of,
    trades_of,
    utc,
    vendor_rows,
    write,
)

TRADES_FILE = "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz"
QUOTES_FILE = "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz"
BITMEX_FILE = "bitmex_trades_XBTUSD.csv"
HUOBI_FILE = "huobi-dm-swap_quotes_BTC-USD.csv"
SNAPSHOT_FILE = "binance-futures_book_snapshot_5_BTCUSDT.csv"

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
QUOTES_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
)
SNAPSHOT_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,"
    "asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,"
    "asks[1].price,asks[1].amount,bids[1].price,bids[1].amount"
)

UTC_NS = pl.Datetime("ns", "UTC")
TRADES_SCHEMA = canonical_schema(*TRADE_COLUMNS)
QUOTES_SCHEMA = canonical_schema(*QUOTE_COLUMNS)


def zstd_copy(src: Path, dest: Path) -> Path:
    with pa.CompressedOutputStream(str(dest), "zstd") as out:
        out.write(src.read_bytes())
    return dest


# --- registry -------------------------------------------------------------------------------


def test_formats_registered_in_order() -> None:
    names = [f.name for f in TARDIS_FORMATS]
    assert names == [
        "tardis-trades",
        "tardis-quotes",
        "tardis-book-snapshot",
        "tardis-liquidations",
    ]
    assert all(name in FORMATS for name in names)


# --- trades ---------------------------------------------------------------------------------


def test_binance_trades_first_row_pinned() -> None:
    df = trades_of(data_path("tardis", TRADES_FILE))
    assert df.schema == TRADES_SCHEMA
    assert df.row(0, named=True) == {
        "ts": utc(2020, 2, 22, 0, 0, 2, 418379),
        "ts_event": utc(2020, 2, 22, 0, 0, 2, 111000),
        "symbol": "BTCUSDT",
        "venue": "binance-futures",
        "price": 9682.0,
        "size": 0.132,
        "aggressor_side": 1,
        "trade_id": "42377944",
    }


def test_binance_trades_last_row_pinned() -> None:
    df = trades_of(data_path("tardis", TRADES_FILE))
    assert df.row(-1, named=True) == {
        "ts": utc(2020, 2, 22, 2, 5, 47, 852384),
        "ts_event": utc(2020, 2, 22, 2, 5, 47, 728000),
        "symbol": "BTCUSDT",
        "venue": "binance-futures",
        "price": 9666.84,
        "size": 0.07,
        "aggressor_side": -1,
        "trade_id": "42387942",
    }


def test_binance_trades_row_count_and_side_counts() -> None:
    path = data_path("tardis", TRADES_FILE)
    df = trades_of(path)
    rows = vendor_rows(path)
    expected_buy = sum(1 for row in rows if row["side"] == "buy")
    expected_sell = sum(1 for row in rows if row["side"] == "sell")
    # README: 5,267 buy (taker buy = buyer-initiated), 4,732 sell.
    assert (len(rows), expected_buy, expected_sell) == (9_999, 5_267, 4_732)
    assert df.height == 9_999
    counts = dict(df["aggressor_side"].value_counts().iter_rows())
    assert counts == {1: 5_267, -1: 4_732}


def test_binance_trades_side_matches_vendor_row_by_row() -> None:
    path = data_path("tardis", TRADES_FILE)
    expected = [{"buy": 1, "sell": -1}[row["side"]] for row in vendor_rows(path)]
    ids = [row["id"] for row in vendor_rows(path)]
    df = trades_of(path)
    assert df["aggressor_side"].to_list() == expected
    assert df["trade_id"].to_list() == ids


def test_bitmex_trades_uuid_ids_and_all_sells() -> None:
    path = data_path("tardis", BITMEX_FILE)
    df = trades_of(path)
    assert df.height == 10
    assert df.row(0, named=True) == {
        "ts": utc(2020, 3, 1, 0, 0, 3, 307160),
        "ts_event": utc(2020, 3, 1, 0, 0, 3, 145000),
        "symbol": "XBTUSD",
        "venue": "bitmex",
        "price": 8531.5,
        "size": 2152.0,
        "aggressor_side": -1,
        "trade_id": "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf",
    }
    rows = vendor_rows(path)
    assert sum(1 for row in rows if row["side"] == "sell") == 10
    assert df["aggressor_side"].to_list() == [-1] * 10
    assert df["trade_id"].to_list() == [row["id"] for row in rows]


def test_one_buy_one_sell_inline(tmp_path: Path) -> None:
    path = write(
        tmp_path / "two.csv",
        f"{TRADES_HEADER}\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,1,buy,100.5,3\n"
        "bitmex,XBTUSD,1583020803146000,1583020803307161,2,sell,100,4\n",
    )
    df = trades_of(path)
    assert df["aggressor_side"].to_list() == [1, -1]
    assert df["price"].to_list() == [100.5, 100.0]
    assert df["size"].to_list() == [3.0, 4.0]
    assert df["trade_id"].to_list() == ["1", "2"]


def test_empty_id_and_unknown_side(tmp_path: Path) -> None:
    path = write(
        tmp_path / "unknown.csv",
        f"{TRADES_HEADER}\n"
        "okex,BTC-USDT,1583020803145000,1583020803307160,,unknown,100,1\n"
        "okex,BTC-USDT,1583020803146000,1583020803307161,,,101,2\n"
        "okex,BTC-USDT,1583020803147000,1583020803307162,7,BUY,102,3\n",
    )
    df = trades_of(path)
    assert df.schema == TRADES_SCHEMA
    assert df["trade_id"].to_list() == [None, None, "7"]
    assert df["aggressor_side"].to_list() == [0, 0, 1]


def test_nanosecond_sized_timestamps_read_by_magnitude(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ns.csv",
        f"{TRADES_HEADER}\n"
        "binance-futures,BTCUSDT,1582329602111000123,1582329602418379456,1,buy,9682,0.132\n",
    )
    df = trades_of(path)
    assert df["ts_event"].dt.epoch("ns").to_list() == [1582329602111000123]
    assert df["ts"].dt.epoch("ns").to_list() == [1582329602418379456]


def test_reader_keeps_file_order_when_exchange_time_goes_back(tmp_path: Path) -> None:
    path = write(
        tmp_path / "order.csv",
        f"{TRADES_HEADER}\n"
        "deribit,BTC-PERPETUAL,1585699200300000,1585699200355684,a,buy,1,1\n"
        "deribit,BTC-PERPETUAL,1585699200200000,1585699200355700,b,sell,1,1\n",
    )
    df = trades_of(path)
    assert df["trade_id"].to_list() == ["a", "b"]
    assert not df["ts_event"].is_sorted()
    assert df["ts"].is_sorted()


def test_symbol_option_never_relabels_the_symbol_column() -> None:
    df = trades_of(data_path("tardis", BITMEX_FILE), symbol="XBT-PERP")
    assert df["symbol"].unique().to_list() == ["XBTUSD"]
    assert df["venue"].unique().to_list() == ["bitmex"]


def test_trades_are_lazy_and_canonical() -> None:
    frames = read(data_path("tardis", TRADES_FILE))
    assert isinstance(frames.trades, pl.LazyFrame)
    assert frames.trades.collect_schema() == TRADES_SCHEMA


# --- liquidations ---------------------------------------------------------------------------


def test_liquidations_side_is_the_forced_order_side(tmp_path: Path) -> None:
    path = write(
        tmp_path / "binance-futures_liquidations_2021-09-01_BTCUSDT.csv",
        f"{TRADES_HEADER}\n"
        "binance-futures,BTCUSDT,1630454400100000,1630454400200000,,buy,47000.5,0.5\n"
        "binance-futures,BTCUSDT,1630454400300000,1630454400400000,,sell,46999,0.25\n",
    )
    assert detect(source_of(path)).name == "tardis-liquidations"
    df = trades_of(path)
    assert df.schema == TRADES_SCHEMA
    assert df.row(0, named=True) == {
        "ts": utc(2021, 9, 1, 0, 0, 0, 200000),
        "ts_event": utc(2021, 9, 1, 0, 0, 0, 100000),
        "symbol": "BTCUSDT",
        "venue": "binance-futures",
        "price": 47000.5,
        "size": 0.5,
        "aggressor_side": 1,
        "trade_id": None,
    }
    assert df["aggressor_side"].to_list() == [1, -1]


# --- quotes ---------------------------------------------------------------------------------


def test_binance_quotes_first_row_ask_first_columns_mapped_by_name() -> None:
    df = quotes_of(data_path("tardis", QUOTES_FILE))
    assert df.schema == QUOTES_SCHEMA
    assert df.height == 9_999
    # Vendor row: ask_amount=0.84, ask_price=9682, bid_price=9681.92, bid_amount=0.67
    assert df.row(0, named=True) == {
        "ts": utc(2020, 2, 22, 0, 0, 3, 502092),
        "ts_event": utc(2020, 2, 22, 0, 0, 1, 96000),
        "symbol": "BTCUSDT",
        "venue": "binance-futures",
        "bid_price": 9681.92,
        "bid_size": 0.67,
        "ask_price": 9682.0,
        "ask_size": 0.84,
    }


def test_binance_quotes_match_vendor_rows() -> None:
    path = data_path("tardis", QUOTES_FILE)
    rows = vendor_rows(path)
    df = quotes_of(path)
    assert df["bid_price"].to_list() == [float(r["bid_price"]) for r in rows]
    assert df["bid_size"].to_list() == [float(r["bid_amount"]) for r in rows]
    assert df["ask_price"].to_list() == [float(r["ask_price"]) for r in rows]
    assert df["ask_size"].to_list() == [float(r["ask_amount"]) for r in rows]
    assert (df["ask_price"] > df["bid_price"]).all()


def test_huobi_quotes_first_row() -> None:
    df = quotes_of(data_path("tardis", HUOBI_FILE))
    assert df.height == 10
    assert df.row(0, named=True) == {
        "ts": utc(2020, 5, 1, 0, 0, 1, 234268),
        "ts_event": utc(2020, 5, 1, 0, 0, 1, 99000),
        "symbol": "BTC-USD",
        "venue": "huobi-dm-swap",
        "bid_price": 8629.2,
        "bid_size": 806.0,
        "ask_price": 8629.3,
        "ask_size": 5494.0,
    }


def test_quotes_empty_side_is_null(tmp_path: Path) -> None:
    path = write(
        tmp_path / "one_sided.csv",
        f"{QUOTES_HEADER}\n"
        "deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,,,6421,10\n"
        "deribit,BTC-PERPETUAL,1585699200246000,1585699200355685,5,6422,,\n",
    )
    df = quotes_of(path)
    assert df.schema == QUOTES_SCHEMA
    assert df.select("bid_price", "bid_size", "ask_price", "ask_size").rows() == [
        (6421.0, 10.0, None, None),
        (None, None, 6422.0, 5.0),
    ]


def test_book_ticker_file_reads_as_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "binance-futures_book_ticker_2020-02-22_BTCUSDT.csv",
        f"{QUOTES_HEADER}\nbinance-futures,BTCUSDT,1582329601096000,1582329603502092,0.84,9682,9681.92,0.67\n",
    )
    assert detect(source_of(path)).name == "tardis-quotes"
    assert quotes_of(path).select("bid_price", "ask_price").row(0) == (9681.92, 9682.0)


# --- book snapshot --------------------------------------------------------------------------


def test_book_snapshot_level_zero_first_row() -> None:
    df = quotes_of(data_path("tardis", SNAPSHOT_FILE))
    assert df.schema == QUOTES_SCHEMA
    assert df.height == 10
    assert df.row(0, named=True) == {
        "ts": utc(2020, 9, 1, 0, 0, 3, 810979),
        "ts_event": utc(2020, 9, 1, 0, 0, 3, 696000),
        "symbol": "BTCUSDT",
        "venue": "binance-futures",
        "bid_price": 11657.07,
        "bid_size": 10.896,
        "ask_price": 11657.08,
        "ask_size": 1.714,
    }


def test_book_snapshot_matches_vendor_level_zero() -> None:
    path = data_path("tardis", SNAPSHOT_FILE)
    rows = vendor_rows(path)
    df = quotes_of(path)
    assert df.select("bid_price", "bid_size", "ask_price", "ask_size").rows() == [
        (
            float(r["bids[0].price"]),
            float(r["bids[0].amount"]),
            float(r["asks[0].price"]),
            float(r["asks[0].amount"]),
        )
        for r in rows
    ]


def test_book_snapshot_empty_deeper_levels_and_empty_side(tmp_path: Path) -> None:
    path = write(
        tmp_path / "snap.csv",
        f"{SNAPSHOT_HEADER}\n"
        "deribit,ETH-PERPETUAL,1598918403696000,1598918403810979,200.5,3,200,4,,,,\n"
        "deribit,ETH-PERPETUAL,1598918403697000,1598918403810980,,,200,4,,,,\n",
    )
    assert detect(source_of(path)).name == "tardis-book-snapshot"
    df = quotes_of(path)
    assert df.select("bid_price", "bid_size", "ask_price", "ask_size").rows() == [
        (200.0, 4.0, 200.5, 3.0),
        (200.0, 4.0, None, None),
    ]


# --- compression ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [BITMEX_FILE, HUOBI_FILE, SNAPSHOT_FILE])
@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_copies_read_identically(name: str, suffix: str, tmp_path: Path) -> None:
    plain = data_path("tardis", name)
    compress = gzip_copy if suffix == ".gz" else zstd_copy
    packed = compress(plain, tmp_path / f"{name}{suffix}")
    assert packed.read_bytes() != plain.read_bytes()
    source = source_of(packed)
    assert source.compression == ("gzip" if suffix == ".gz" else "zstd")
    assert detect(source).name == detect(source_of(plain)).name
    expected, got = read(plain), read(packed)
    for want, have in ((expected.trades, got.trades), (expected.quotes, got.quotes)):
        assert (want is None) == (have is None)
        if want is not None and have is not None:
            assert_frame_equal(have.collect(), want.collect())


def test_zstd_copy_of_gzipped_trades_reads_identically(tmp_path: Path) -> None:
    gz = data_path("tardis", TRADES_FILE)
    plain = tmp_path / "binance-futures_trades_2020-02-22_BTCUSDT.csv"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    zst = zstd_copy(plain, tmp_path / f"{plain.name}.zst")
    assert detect(source_of(zst)).name == "tardis-trades"
    assert_frame_equal(trades_of(zst), trades_of(gz))
    assert_frame_equal(trades_of(plain), trades_of(gz))


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        (TRADES_FILE, "tardis-trades"),
        (QUOTES_FILE, "tardis-quotes"),
        (BITMEX_FILE, "tardis-trades"),
        (HUOBI_FILE, "tardis-quotes"),
        (SNAPSHOT_FILE, "tardis-book-snapshot"),
    ],
)
def test_detect_fixture(name: str, fmt: str) -> None:
    path = data_path("tardis", name)
    assert detect(source_of(path)).name == fmt


def sniff_of(name: str, *lines: str) -> Sniff:
    return Sniff(name=name, path=name, magic=lines[0].encode()[:16], lines=lines)


def tardis_matches(info: Sniff) -> list[str]:
    return [f.name for f in TARDIS_FORMATS if f.sniff(info)]


def test_sniff_trades_header_only_one_match() -> None:
    assert tardis_matches(sniff_of("anything.csv", TRADES_HEADER)) == ["tardis-trades"]


def test_sniff_liquidations_needs_the_file_name() -> None:
    name = "bitmex_liquidations_2020-03-01_XBTUSD.csv"
    assert tardis_matches(sniff_of(name, TRADES_HEADER)) == ["tardis-liquidations"]
    assert tardis_matches(sniff_of("bitmex_liquidations_XBTUSD.csv", TRADES_HEADER)) == [
        "tardis-liquidations"
    ]


def test_sniff_quotes_and_snapshot_headers() -> None:
    assert tardis_matches(sniff_of("q.csv", QUOTES_HEADER)) == ["tardis-quotes"]
    assert tardis_matches(sniff_of("s.csv", SNAPSHOT_HEADER)) == ["tardis-book-snapshot"]


def test_sniff_file_name_hint_accepts_reordered_columns() -> None:
    reordered = (
        "exchange,symbol,timestamp,local_timestamp,bid_price,bid_amount,ask_price,ask_amount"
    )
    assert tardis_matches(sniff_of("q.csv", reordered)) == []
    named = "binance_quotes_2024-01-01_BTCUSDT.csv"
    assert tardis_matches(sniff_of(named, reordered)) == ["tardis-quotes"]
    extra = TRADES_HEADER + ",extra"
    assert tardis_matches(sniff_of("t.csv", extra)) == []
    assert tardis_matches(sniff_of("bybit_trades_2024-01-01_BTCUSDT.csv", extra)) == [
        "tardis-trades"
    ]


@pytest.mark.parametrize(
    "header",
    [
        "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time",
        "id,price,qty,quote_qty,time,is_buyer_maker",
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
        "exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount",
        "exchange,symbol,timestamp,local_timestamp,id,side,price",
        "",
    ],
)
def test_sniff_rejects_other_layouts(header: str) -> None:
    lines = (header,) if header else ()
    info = Sniff(name="x.csv", path="x.csv", magic=header.encode()[:16], lines=lines)
    assert tardis_matches(info) == []


def test_sniff_header_is_case_insensitive() -> None:
    assert tardis_matches(sniff_of("t.csv", TRADES_HEADER.upper())) == ["tardis-trades"]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    ["tardis-trades", "tardis-quotes", "tardis-book-snapshot", "tardis-liquidations"],
)
def test_empty_file_raises_one_line_error(fmt: str, tmp_path: Path) -> None:
    empty_file_error(fmt, tmp_path / "empty.csv")


def test_empty_gzip_raises_one_line_error(tmp_path: Path) -> None:
    empty_gzip_error("tardis-trades", tmp_path / "bitmex_trades_2020-03-01_XBTUSD.csv.gz")


@pytest.mark.parametrize(
    ("fmt", "header", "missing"),
    [
        ("tardis-trades", "exchange,symbol,timestamp,local_timestamp,id,price,amount", "side"),
        (
            "tardis-liquidations",
            "exchange,symbol,timestamp,local_timestamp,id,side,amount",
            "price",
        ),
        (
            "tardis-quotes",
            "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price",
            "bid_amount",
        ),
        (
            "tardis-book-snapshot",
            "exchange,symbol,timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount",
            "local_timestamp",
        ),
    ],
)
def test_missing_column_raises_one_line_error(
    fmt: str, header: str, missing: str, tmp_path: Path
) -> None:
    assert missing in one_row_error(fmt, tmp_path / "broken.csv", header)


# --- full files in ../shared (skipped when absent) ------------------------------------------

SHARED_FACTS = [
    # name, rows, first exchange time, last exchange time (README, µs precision)
    (TRADES_FILE, 9_999, utc(2020, 2, 22, 0, 0, 2, 111000), utc(2020, 2, 22, 2, 5, 47, 728000)),
    (QUOTES_FILE, 9_999, utc(2020, 2, 22, 0, 0, 1, 96000), utc(2020, 2, 22, 0, 3, 47, 61000)),
    (BITMEX_FILE, 10, utc(2020, 3, 1, 0, 0, 3, 145000), utc(2020, 3, 1, 0, 0, 3, 276000)),
    (HUOBI_FILE, 10, utc(2020, 5, 1, 0, 0, 1, 99000), utc(2020, 5, 1, 0, 0, 1, 814000)),
    (SNAPSHOT_FILE, 10, utc(2020, 9, 1, 0, 0, 3, 696000), utc(2020, 9, 1, 0, 0, 4, 284000)),
]


@pytest.mark.parametrize(("name", "rows", "first", "last"), SHARED_FACTS)
def test_shared_file_rows_and_span(name: str, rows: int, first: datetime, last: datetime) -> None:
    path = shared_path("tardis", name)
    frames = read(path)
    lf = frames.trades if frames.trades is not None else frames.quotes
    assert lf is not None
    df = lf.collect()
    assert df.height == rows
    assert df["ts_event"][0] == first
    assert df["ts_event"][-1] == last
    assert df["ts_event"].min() == first
    assert df["ts_event"].max() == last
    # README: local_timestamp is always later than timestamp, by 0.004–2.4 s.
    lag = (df["ts"] - df["ts_event"]).dt.total_microseconds()
    assert (lag >= 3_993).all()
    assert (lag <= 2_406_092).all()
    assert df["ts"].is_sorted()


def test_shared_binance_trades_side_counts() -> None:
    path = shared_path("tardis", TRADES_FILE)
    df = trades_of(path)
    rows = vendor_rows(path)
    assert sum(1 for row in rows if row["side"] == "buy") == 5_267
    assert sum(1 for row in rows if row["side"] == "sell") == 4_732
    assert (df["aggressor_side"] == 1).sum() == 5_267
    assert (df["aggressor_side"] == -1).sum() == 4_732
    assert (df["aggressor_side"] == 0).sum() == 0
    ids = df["trade_id"].cast(pl.Int64)
    assert ids.diff().drop_nulls().min() == 1  # strictly increasing trade ids


def test_shared_bitmex_trades_all_sell() -> None:
    df = trades_of(shared_path("tardis", BITMEX_FILE))
    assert df["aggressor_side"].to_list() == [-1] * 10
    assert df["trade_id"].str.len_chars().to_list() == [36] * 10
