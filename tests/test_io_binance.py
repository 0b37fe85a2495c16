from __future__ import annotations

import csv
import gzip
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.errors import MmflowError, ReaderError
from mmflow.io import FORMATS, detect, read_source, sniff
from mmflow.io.binance import FORMATS as BINANCE_FORMATS
from mmflow.io.formats import ReadOptions
from mmflow.io.source import Source
from tests.conftest import data_path, shared_path
from tests.helpers import QUOTE_COLUMNS, TRADE_COLUMNS, canonical_schema, write

TRADES_SCHEMA = dict(canonical_schema(*TRADE_COLUMNS))
QUOTES_SCHEMA = dict(canonical_schema(*QUOTE_COLUMNS))

SPOT = "spot/BTCUSDT-trades-2023-04-05.csv"
UM_18 = "futures/um/BTCUSDT-trades-2024-07-18.csv"
UM_19 = "futures/um/BTCUSDT-trades-2024-07-19.csv"
CM = "futures/cm/BTCUSD_PERP-trades-2024-08-09.csv"
UM_BOOK = "futures/um/BTCUSDT-bookTicker-2024-07-18.csv"
CM_BOOK = "futures/cm/BTCUSD_PERP-bookTicker-2024-08-09.csv"

# fixture, format, venue
FIXTURES = [
    (SPOT, "binance-trades", "binance-spot"),
    (UM_18, "binance-trades", "binance-um"),
    (UM_19, "binance-trades", "binance-um"),
    (CM, "binance-trades", "binance-cm"),
    (UM_BOOK, "binance-bookticker", "binance-um"),
    (CM_BOOK, "binance-bookticker", "binance-cm"),
]
TRADE_FIXTURES = [SPOT, UM_18, UM_19, CM]


def ms(value: int) -> datetime:
    """An epoch millisecond count as an aware UTC datetime (independent of the reader)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def fixture(rel: str) -> Path:
    return data_path("binance", *rel.split("/"))


def source(path: Path) -> Source:
    return Source(path, str(path))


def read(path: Path, fmt: str = "auto", options: ReadOptions | None = None) -> pl.DataFrame:
    frames = read_source(source(path), fmt, options).frames
    lf = frames.trades if frames.trades is not None else frames.quotes
    assert lf is not None
    return lf.collect()


def flag_counts(path: Path) -> tuple[int, int, int]:
    """Count rows and is_buyer_maker false/true with the csv module (an independent oracle)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows[0][0].isdigit():
        rows = rows[1:]
    flags = [row[5].lower() for row in rows]
    return len(rows), flags.count("false"), flags.count("true")


# --------------------------------------------------------------------------------------------
# Registry and detection


def test_formats_are_registered_in_order() -> None:
    names = [f.name for f in BINANCE_FORMATS]
    assert names == ["binance-trades", "binance-aggtrades", "binance-bookticker"]
    assert all(name in FORMATS for name in names)


@pytest.mark.parametrize(("rel", "fmt", "venue"), FIXTURES)
def test_detects_fixture(rel: str, fmt: str, venue: str) -> None:
    assert detect(source(fixture(rel))).name == fmt


@pytest.mark.parametrize(("rel", "fmt", "venue"), FIXTURES)
def test_detects_and_reads_gzip_variant(rel: str, fmt: str, venue: str, tmp_path: Path) -> None:
    plain = fixture(rel)
    packed = tmp_path / f"{plain.name}.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert detect(source(packed)).name == fmt
    # Outside the archive folders the venue comes from the content and still agrees.
    assert_frame_equal(read(packed), read(plain))


@pytest.mark.parametrize(("rel", "fmt", "venue"), FIXTURES)
def test_detects_and_reads_zip_variant(rel: str, fmt: str, venue: str, tmp_path: Path) -> None:
    plain = fixture(rel)
    packed = tmp_path / f"{plain.stem}.zip"
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(plain, arcname=plain.name)
    assert detect(source(packed)).name == fmt
    assert_frame_equal(read(packed), read(plain))


@pytest.mark.parametrize(("rel", "fmt", "venue"), FIXTURES)
def test_detects_by_content_without_archive_name(
    rel: str, fmt: str, venue: str, tmp_path: Path
) -> None:
    renamed = tmp_path / "download.csv"
    shutil.copyfile(fixture(rel), renamed)
    assert detect(source(renamed)).name == fmt
    symbol = fixture(rel).name.split("-")[0]
    df = read(renamed, options=ReadOptions(symbol=symbol))
    assert df["venue"].unique().to_list() == [venue]
    assert_frame_equal(df, read(fixture(rel)))


@pytest.mark.parametrize(("rel", "fmt", "venue"), FIXTURES)
def test_venue_from_folder(rel: str, fmt: str, venue: str) -> None:
    df = read(fixture(rel))
    assert df["venue"].unique().to_list() == [venue]


def test_venue_folder_beats_content(tmp_path: Path) -> None:
    folder = tmp_path / "futures" / "cm"
    folder.mkdir(parents=True)
    path = folder / "BTCUSDT-trades-2024-07-19.csv"
    shutil.copyfile(fixture(UM_19), path)
    assert read(path)["venue"].unique().to_list() == ["binance-cm"]


# --------------------------------------------------------------------------------------------
# Pinned values on the committed fixtures


def test_schema_of_trades_and_quotes() -> None:
    frames = read_source(source(fixture(UM_19))).frames
    assert frames.quotes is None
    assert frames.trades is not None
    assert dict(frames.trades.collect_schema()) == TRADES_SCHEMA
    frames = read_source(source(fixture(CM_BOOK))).frames
    assert frames.trades is None
    assert frames.quotes is not None
    assert dict(frames.quotes.collect_schema()) == QUOTES_SCHEMA


def test_spot_first_row_before_midnight() -> None:
    df = read(fixture(SPOT))
    assert df.height == 300
    assert df.row(0, named=True) == {
        "ts": datetime(2023, 4, 4, 23, 59, 59, 999000, tzinfo=UTC),
        "ts_event": datetime(2023, 4, 4, 23, 59, 59, 999000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-spot",
        "price": 28165.47,
        "size": 0.00056,
        "aggressor_side": -1,
        "trade_id": "3071245454",
    }
    assert df["ts"][1] == datetime(2023, 4, 5, 0, 0, 0, 1000, tzinfo=UTC)
    assert df["ts"][-1] == ms(1680652827396)
    assert df["trade_id"][-1] == "3071245753"


def test_um_2024_07_18_first_row() -> None:
    df = read(fixture(UM_18))
    assert df.height == 300
    assert df.row(0, named=True) == {
        "ts": datetime(2024, 7, 18, 23, 57, 2, 956000, tzinfo=UTC),
        "ts_event": datetime(2024, 7, 18, 23, 57, 2, 956000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-um",
        "price": 63943.9,
        "size": 0.003,
        "aggressor_side": -1,
        "trade_id": "5182005737",
    }
    assert df["ts"][-1] == ms(1721347083781)


def test_um_2024_07_19_first_row() -> None:
    df = read(fixture(UM_19))
    assert df.height == 300
    assert df.row(0, named=True) == {
        "ts": datetime(2024, 7, 19, 0, 0, 2, 812000, tzinfo=UTC),
        "ts_event": datetime(2024, 7, 19, 0, 0, 2, 812000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-um",
        "price": 63960.0,
        "size": 0.31,
        "aggressor_side": 1,
        "trade_id": "5182006711",
    }
    assert df["ts"][-1] == ms(1721347205697)
    assert df["size"][-1] == 2.625


def test_cm_first_row_size_in_contracts() -> None:
    df = read(fixture(CM))
    assert df.height == 300
    assert df.row(0, named=True) == {
        "ts": datetime(2024, 8, 9, 0, 0, 1, 913000, tzinfo=UTC),
        "ts_event": datetime(2024, 8, 9, 0, 0, 1, 913000, tzinfo=UTC),
        "symbol": "BTCUSD_PERP",
        "venue": "binance-cm",
        "price": 61668.7,
        "size": 4.0,  # contracts (qty), not base_qty 0.00648627
        "aggressor_side": 1,
        "trade_id": "849716688",
    }
    assert df["ts"][-1] == ms(1723161640368)


def test_um_bookticker_first_row() -> None:
    df = read(fixture(UM_BOOK))
    assert df.height == 300
    assert df.row(0, named=True) == {
        "ts": datetime(2024, 7, 18, 23, 57, 2, 507000, tzinfo=UTC),
        "ts_event": datetime(2024, 7, 18, 23, 57, 2, 507000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-um",
        "bid_price": 63943.9,
        "bid_size": 46.371,
        "ask_price": 63944.0,
        "ask_size": 0.095,
    }
    assert df["ts"][-1] == ms(1721347031061)


def test_cm_bookticker_first_row_uses_transaction_time() -> None:
    df = read(fixture(CM_BOOK))
    assert df.height == 300
    assert df.row(0, named=True) == {
        # transaction_time 1723161601262, not event_time 1723161601269
        "ts": datetime(2024, 8, 9, 0, 0, 1, 262000, tzinfo=UTC),
        "ts_event": datetime(2024, 8, 9, 0, 0, 1, 262000, tzinfo=UTC),
        "symbol": "BTCUSD_PERP",
        "venue": "binance-cm",
        "bid_price": 61668.6,
        "bid_size": 1243.0,
        "ask_price": 61668.7,
        "ask_size": 871.0,
    }
    assert df["ts"][-1] == ms(1723161603895)


@pytest.mark.parametrize(
    ("rel", "buys", "sells"),
    [(SPOT, 136, 164), (UM_18, 218, 82), (UM_19, 50, 250), (CM, 139, 161)],
)
def test_side_counts_match_independent_count(rel: str, buys: int, sells: int) -> None:
    rows, false_flags, true_flags = flag_counts(fixture(rel))
    # is_buyer_maker false ⇒ buyer-initiated (+1); true ⇒ seller-initiated (−1).
    assert (rows, false_flags, true_flags) == (300, buys, sells)
    df = read(fixture(rel))
    assert df.height == rows
    assert df.filter(pl.col("aggressor_side") == 1).height == buys
    assert df.filter(pl.col("aggressor_side") == -1).height == sells
    assert df.filter(pl.col("aggressor_side") == 0).height == 0


@pytest.mark.parametrize("rel", TRADE_FIXTURES)
def test_ts_equals_ts_event_and_ids_are_consecutive(rel: str) -> None:
    df = read(fixture(rel))
    assert (df["ts"] == df["ts_event"]).all()
    ids = df["trade_id"].cast(pl.Int64)
    assert ids.diff().drop_nulls().unique().to_list() == [1]


def test_reader_is_lazy() -> None:
    frames = read_source(source(fixture(UM_19))).frames
    assert isinstance(frames.trades, pl.LazyFrame)


# --------------------------------------------------------------------------------------------
# Side convention on tiny inline files


def test_side_one_buy_one_sell_futures(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2024-07-19.csv",
        "id,price,qty,quote_qty,time,is_buyer_maker\n"
        "1,100.0,1.0,100.0,1721347202812,false\n"
        "2,99.0,2.0,198.0,1721347202813,true\n",
    )
    df = read(path)
    assert df["aggressor_side"].to_list() == [1, -1]
    assert df["trade_id"].to_list() == ["1", "2"]


def test_side_one_buy_one_sell_spot(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2023-04-05.csv",
        "1,100.00000000,1.00000000,100.00000000,1680652800001,False,True\n"
        "2,99.00000000,2.00000000,198.00000000,1680652800002,True,True\n",
    )
    df = read(path)
    assert df["aggressor_side"].to_list() == [1, -1]
    assert df["venue"].to_list() == ["binance-spot"] * 2


def test_side_flag_parsed_case_insensitively_unknown_is_zero(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2024-07-19.csv",
        "id,price,qty,quote_qty,time,is_buyer_maker\n"
        "1,100.0,1.0,100.0,1721347202812,FALSE\n"
        "2,100.0,1.0,100.0,1721347202812,TRUE\n"
        "3,100.0,1.0,100.0,1721347202812, false \n"
        "4,100.0,1.0,100.0,1721347202812,\n"
        "5,100.0,1.0,100.0,1721347202812,0\n",
    )
    assert read(path, "binance-trades")["aggressor_side"].to_list() == [1, -1, 1, 0, 0]


# --------------------------------------------------------------------------------------------
# Other layouts from formats.md §1


def test_spot_microseconds_from_2025(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2025-01-01.csv",
        "51175358,17.80180000,5.69000000,101.29224200,1735689600010866,True,True\n",
    )
    assert detect(source(path)).name == "binance-trades"
    row = read(path).row(0, named=True)
    assert row["ts"] == datetime(2025, 1, 1, 0, 0, 0, 10866, tzinfo=UTC)
    assert row["ts_event"] == row["ts"]
    assert row["aggressor_side"] == -1
    assert row["price"] == 17.8018
    assert row["size"] == 5.69
    assert row["trade_id"] == "51175358"
    assert row["venue"] == "binance-spot"


@pytest.mark.parametrize("name", ["BTCUSDT-trades-2020-08-01.csv", "trades.csv"])
def test_headerless_pre_2022_futures_trades(name: str, tmp_path: Path) -> None:
    path = write(tmp_path / name, "173525189,11343.67,0.467,5297.49,1596240000519,true\n")
    assert detect(source(path)).name == "binance-trades"
    df = read(path, options=ReadOptions(symbol="BTCUSDT"))
    assert df.row(0, named=True) == {
        "ts": datetime(2020, 8, 1, 0, 0, 0, 519000, tzinfo=UTC),
        "ts_event": datetime(2020, 8, 1, 0, 0, 0, 519000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-um",
        "price": 11343.67,
        "size": 0.467,
        "aggressor_side": -1,
        "trade_id": "173525189",
    }


@pytest.mark.parametrize("name", ["BTCUSDT-aggTrades-2021-12-14.csv", "agg.csv"])
def test_spot_aggtrades(name: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / name,
        "1031427002,47319.84000000,0.02736000,1189032464,1189032465,1639474150066,True,True\n"
        "1031427004,47320.00000000,0.00105000,1189032467,1189032467,1639474150155,False,True\n",
    )
    assert detect(source(path)).name == "binance-aggtrades"
    df = read(path, options=ReadOptions(symbol="BTCUSDT"))
    assert df.row(0, named=True) == {
        "ts": datetime(2021, 12, 14, 9, 29, 10, 66000, tzinfo=UTC),
        "ts_event": datetime(2021, 12, 14, 9, 29, 10, 66000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-spot",
        "price": 47319.84,
        "size": 0.02736,
        "aggressor_side": -1,
        "trade_id": "1031427002",
    }
    assert df["aggressor_side"].to_list() == [-1, 1]
    assert df["ts"][1] == ms(1639474150155)


FUTURES_AGG_ROW = "1715206948,29223.0,0.639,3643221425,3643221428,1682899200101,false\n"
FUTURES_AGG_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("BTCUSDT-aggTrades-2023-05-01.csv", FUTURES_AGG_HEADER + FUTURES_AGG_ROW),
        ("BTCUSDT-aggTrades-2023-05-01.csv", FUTURES_AGG_ROW),
        ("with_header.csv", FUTURES_AGG_HEADER + FUTURES_AGG_ROW),
        ("headerless.csv", FUTURES_AGG_ROW),  # 7 columns, yet not spot trades
    ],
)
def test_futures_aggtrades(name: str, text: str, tmp_path: Path) -> None:
    path = write(tmp_path / name, text)
    assert detect(source(path)).name == "binance-aggtrades"
    df = read(path, options=ReadOptions(symbol="BTCUSDT"))
    assert df.row(0, named=True) == {
        "ts": datetime(2023, 5, 1, 0, 0, 0, 101000, tzinfo=UTC),
        "ts_event": datetime(2023, 5, 1, 0, 0, 0, 101000, tzinfo=UTC),
        "symbol": "BTCUSDT",
        "venue": "binance-um",
        "price": 29223.0,
        "size": 0.639,
        "aggressor_side": 1,
        "trade_id": "1715206948",
    }


def test_header_matched_case_insensitively(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ticks.csv",
        "ID,Price,Qty,Quote_Qty,Time,Is_Buyer_Maker\n1,100.0,1.0,100.0,1721347202812,true\n",
    )
    assert detect(source(path)).name == "binance-trades"
    assert read(path, options=ReadOptions(symbol="X"))["aggressor_side"].to_list() == [-1]


def test_header_columns_found_by_name_not_position(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2024-07-19.csv",
        "time,is_buyer_maker,id,qty,price,quote_qty\n1721347202812,false,7,0.5,100.0,50.0\n",
    )
    row = read(path, "binance-trades").row(0, named=True)
    assert (row["price"], row["size"], row["trade_id"], row["aggressor_side"]) == (
        100.0,
        0.5,
        "7",
        1,
    )


def test_header_only_file_reads_no_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2024-07-19.csv", "id,price,qty,quote_qty,time,is_buyer_maker\n"
    )
    df = read(path)
    assert df.height == 0
    assert dict(df.schema) == TRADES_SCHEMA


def test_symbol_option_never_relabels_a_named_file() -> None:
    # --symbol filters on the command line; it only names files that carry no symbol.
    df = read(fixture(UM_19), options=ReadOptions(symbol="XBTUSDT"))
    assert df["symbol"].unique().to_list() == ["BTCUSDT"]


def test_monthly_file_name_gives_symbol(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-trades-2024-07.csv"
    shutil.copyfile(fixture(UM_19), path)
    assert detect(source(path)).name == "binance-trades"
    assert read(path)["symbol"].unique().to_list() == ["ETHUSDT"]


# --------------------------------------------------------------------------------------------
# Errors


def assert_one_line(err: MmflowError, path: Path) -> None:
    text = str(err)
    assert "\n" not in text
    assert str(path) in text


def test_no_symbol_asks_for_symbol_option(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    shutil.copyfile(fixture(UM_19), path)
    with pytest.raises(ReaderError, match="--symbol") as info:
        read(path)
    assert_one_line(info.value, path)


@pytest.mark.parametrize(
    "fmt", ["auto", "binance-trades", "binance-aggtrades", "binance-bookticker"]
)
def test_empty_file_raises(fmt: str, tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT-trades-2024-07-19.csv", "")
    with pytest.raises(MmflowError, match="empty") as info:
        read(path, fmt)
    assert_one_line(info.value, path)


def test_empty_zip_member_raises(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-07-19.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-trades-2024-07-19.csv", "")
    with pytest.raises(ReaderError, match="empty") as info:
        read(path)
    assert_one_line(info.value, path)


def test_missing_trades_column_raises(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-trades-2024-07-19.csv",
        "id,price,qty,quote_qty,time\n1,100.0,1.0,100.0,1721347202812\n",
    )
    with pytest.raises(ReaderError, match="is_buyer_maker") as info:
        read(path)
    assert_one_line(info.value, path)


def test_missing_bookticker_column_raises(tmp_path: Path) -> None:
    path = write(
        tmp_path / "BTCUSDT-bookTicker-2024-07-19.csv",
        "update_id,best_bid_price,best_bid_qty,best_ask_price,transaction_time,event_time\n"
        "1,100.0,1.0,100.1,1721347202812,1721347202812\n",
    )
    with pytest.raises(ReaderError, match="best_ask_qty") as info:
        read(path)
    assert_one_line(info.value, path)


def test_wrong_format_for_headerless_layout_names_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT-aggTrades-2023-05-01.csv", FUTURES_AGG_ROW)
    with pytest.raises(ReaderError, match="--format binance-aggtrades") as info:
        read(path, "binance-trades")
    assert_one_line(info.value, path)


def test_headerless_wrong_column_count_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT-trades-2024-07-19.csv", "1,100.0,1.0,1721347202812,true\n")
    with pytest.raises(ReaderError, match="5 columns") as info:
        read(path)
    assert_one_line(info.value, path)


def test_binary_file_with_archive_name_is_not_claimed(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-07-19.parquet"
    read(fixture(UM_19)).write_parquet(path)
    info = sniff(source(path))
    assert not any(fmt.sniff(info) for fmt in BINANCE_FORMATS)


def test_unrelated_csv_is_not_claimed(tmp_path: Path) -> None:
    path = write(tmp_path / "prices.csv", "date,close\n2024-01-01,1.0\n")
    info = sniff(source(path))
    assert not any(fmt.sniff(info) for fmt in BINANCE_FORMATS)


# --------------------------------------------------------------------------------------------
# Full files in ../shared (skipped when it is absent, as in CI)

# file, format, rows, first ts, last ts, buyer-initiated, seller-initiated (vendor README)
SHARED = [
    (SPOT, "binance-trades", 3144, 1680652799999, 1680653214256, 1360, 1784),
    (UM_18, "binance-trades", 974, 1721347022956, 1721347199877, 577, 397),
    (UM_19, "binance-trades", 9727, 1721347202812, 1721347502282, 3618, 6109),
    ("futures/um/ETHUSDT-trades-2024-07-19.csv", "binance-trades", 12015,
     1721347202808, 1721347502276, 4267, 7748),
    (CM, "binance-trades", 2949, 1723161601913, 1723161904776, 1584, 1365),
    (UM_BOOK, "binance-bookticker", 7113, 1721347022507, 1721347200456, None, None),
    ("futures/um/BTCUSDT-bookTicker-2024-07-19.csv", "binance-bookticker", 45147,
     1721347202812, 1721347502290, None, None),
    ("futures/um/ETHUSDT-bookTicker-2024-07-19.csv", "binance-bookticker", 38239,
     1721347202808, 1721347502289, None, None),
    (CM_BOOK, "binance-bookticker", 29219, 1723161601262, 1723161904776, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rel", "fmt", "rows", "first", "last", "buys", "sells"), SHARED, ids=[s[0] for s in SHARED]
)
def test_shared_full_file(
    rel: str,
    fmt: str,
    rows: int,
    first: int,
    last: int,
    buys: int | None,
    sells: int | None,
) -> None:
    path = shared_path("binance", *rel.split("/"))
    assert detect(source(path)).name == fmt
    df = read(path)
    assert df.height == rows
    assert df["ts"][0] == ms(first)
    assert df["ts"][-1] == ms(last)
    assert df["ts"].min() == ms(first)
    assert df["ts"].max() == ms(last)
    if buys is not None:
        assert df.filter(pl.col("aggressor_side") == 1).height == buys
        assert df.filter(pl.col("aggressor_side") == -1).height == sells
        assert df.filter(pl.col("aggressor_side") == 0).height == 0
        assert flag_counts(path) == (rows, buys, sells)


def test_shared_um_files_are_contiguous() -> None:
    day18 = read(shared_path("binance", "futures", "um", "BTCUSDT-trades-2024-07-18.csv"))
    day19 = read(shared_path("binance", "futures", "um", "BTCUSDT-trades-2024-07-19.csv"))
    assert (day18["trade_id"][0], day18["trade_id"][-1]) == ("5182005737", "5182006710")
    assert (day19["trade_id"][0], day19["trade_id"][-1]) == ("5182006711", "5182016437")
