from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from mmflow.io import FORMATS, ReadOptions, detect
from mmflow.io.formats import Sniff
from mmflow.io.polygon import FORMATS as POLYGON_FORMATS
from mmflow.io.polygon import ROUND_LOT, crypto_side, read_quotes
from tests.conftest import data_path
from tests.helpers import (
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    canonical_schema,
    empty_file_error,
    empty_gzip_error,
    one_row_error,
    quotes_of,
    read,
    renamed,
    source_of,
    trades_of,
    utc,
    vendor_rows,
    write,
)

TRADES_FEB = ("us_stocks_sip", "trades_v1", "2026", "02", "2026-02-11.csv.gz")
TRADES_MAY = ("us_stocks_sip", "trades_v1", "2026", "05", "2026-05-22.csv.gz")
QUOTES_2021 = ("us_stocks_sip", "quotes_v1", "2021", "08", "2021-08-23.csv.gz")
QUOTES_2026 = ("us_stocks_sip", "quotes_v1", "2026", "09", "2026-09-18.csv.gz")
CRYPTO = ("global_crypto", "trades_v1", "2024", "01", "2024-01-02.csv.gz")

TRADES_HEADER = (
    "ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,"
    "sip_timestamp,size,tape,trf_id,trf_timestamp"
)
QUOTES_HEADER = (
    "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,conditions,"
    "indicators,participant_timestamp,sequence_number,sip_timestamp,tape,trf_timestamp"
)
CRYPTO_HEADER = "ticker,conditions,exchange,id,participant_timestamp,price,size"

UTC_NS = pl.Datetime("ns", "UTC")
TRADES_SCHEMA = canonical_schema(
    *renamed(TRADE_COLUMNS, venue="exchange"), "conditions", "correction"
)
CRYPTO_SCHEMA = pl.Schema({k: v for k, v in TRADES_SCHEMA.items() if k != "correction"})
QUOTES_SCHEMA = canonical_schema(*renamed(QUOTE_COLUMNS, venue=None), "conditions")


def fixture(parts: tuple[str, ...]) -> Path:
    return data_path("polygon", *parts)


def nanos(df: pl.DataFrame, column: str) -> list[int | None]:
    """A clock column as integer nanoseconds since the epoch (Python datetimes stop at µs)."""
    return df[column].dt.epoch("ns").to_list()


def plain_copy(src: Path, dest: Path) -> Path:
    dest.write_bytes(gzip.decompress(src.read_bytes()))
    return dest


def zstd_copy(src: Path, dest: Path) -> Path:
    with pa.CompressedOutputStream(str(dest), "zstd") as out:
        out.write(gzip.decompress(src.read_bytes()))
    return dest


def oracle_crypto_side(conditions: str) -> int:
    codes = {int(code) for code in conditions.split(",") if code.strip()}
    buy, sell = 2 in codes, 1 in codes
    return 1 if buy and not sell else -1 if sell and not buy else 0


# --- registry -------------------------------------------------------------------------------


def test_formats_registered_before_generic() -> None:
    names = [f.name for f in POLYGON_FORMATS]
    assert names == ["polygon-trades", "polygon-quotes", "polygon-crypto-trades"]
    registry = list(FORMATS)
    assert all(name in registry for name in names)
    assert all(registry.index(name) < registry.index("generic") for name in names)
    assert all(f.findings is not None for f in POLYGON_FORMATS)


# --- stocks trades --------------------------------------------------------------------------


def test_stock_trades_first_row_pinned() -> None:
    df = trades_of(fixture(TRADES_FEB))
    assert df.schema == TRADES_SCHEMA
    assert df.height == 12
    # Vendor row: A,12,0,8,52983525035849,1770810300032981000,129.79,6876,
    #             1770810300033243132,100,1,0,0
    assert df.row(0, named=True) == {
        "ts": utc(2026, 2, 11, 11, 45, 0, 33243),
        "ts_event": utc(2026, 2, 11, 11, 45, 0, 32981),
        "symbol": "A",
        "exchange": "8",
        "price": 129.79,
        "size": 100.0,
        "aggressor_side": 0,
        "trade_id": "52983525035849",
        "conditions": "12",
        "correction": "0",
    }
    assert nanos(df, "ts")[0] == 1_770_810_300_033_243_132
    assert nanos(df, "ts_event")[0] == 1_770_810_300_032_981_000


@pytest.mark.parametrize("parts", [TRADES_FEB, TRADES_MAY])
def test_stock_trades_match_vendor_rows(parts: tuple[str, ...]) -> None:
    path = fixture(parts)
    rows = vendor_rows(path)
    df = trades_of(path)
    assert df.height == len(rows)
    assert nanos(df, "ts") == [int(r["sip_timestamp"]) for r in rows]
    assert nanos(df, "ts_event") == [int(r["participant_timestamp"]) or None for r in rows]
    assert df["symbol"].to_list() == [r["ticker"] for r in rows]
    assert df["exchange"].to_list() == [r["exchange"] for r in rows]
    assert df["price"].to_list() == [float(r["price"]) for r in rows]
    assert df["size"].to_list() == [float(r["size"]) for r in rows]
    assert df["trade_id"].to_list() == [r["id"] for r in rows]
    assert df["conditions"].to_list() == [r["conditions"] for r in rows]
    assert df["correction"].to_list() == [r["correction"] for r in rows]
    # Stock trades carry no aggressor flag: every trade is unknown until inferred.
    assert df["aggressor_side"].to_list() == [0] * len(rows)


def test_stock_trades_conditions_kept_as_text_not_split() -> None:
    df = trades_of(fixture(TRADES_FEB))
    assert df["conditions"].to_list()[:4] == ["12", "12,37", "12", "12,14"]
    assert df.filter(pl.col("correction") != "0")["correction"].to_list() == ["1", "12"]


def test_stock_trades_participant_timestamp_zero_is_null() -> None:
    df = trades_of(fixture(TRADES_FEB))
    missing = df.filter(pl.col("ts_event").is_null())
    assert missing["trade_id"].to_list() == ["71675241673101"]
    assert nanos(missing, "ts") == [1_770_810_306_512_338_801]


def test_stock_trades_fractional_sizes_and_far_trf_participant_time() -> None:
    df = trades_of(fixture(TRADES_MAY))
    # Vendor row: A,"12,37",0,4,52983525159748,1779427811494482943,114.790000,3478,
    #             1779436803799308985,4.000000,1,201,1779436803799271495
    assert df.row(0, named=True) == {
        "ts": utc(2026, 5, 22, 8, 0, 3, 799308),
        "ts_event": utc(2026, 5, 22, 5, 30, 11, 494482),
        "symbol": "A",
        "exchange": "4",
        "price": 114.79,
        "size": 4.0,
        "aggressor_side": 0,
        "trade_id": "52983525159748",
        "conditions": "12,37",
        "correction": "0",
    }
    assert df["size"].to_list() == [4.0, 100.0, 0.5231, 0.25, 100.0]


def test_stock_trades_tolerate_extra_columns(tmp_path: Path) -> None:
    header = TRADES_HEADER.replace(",size,", ",size,size_decimal,") + ",price_decimal"
    path = write(
        tmp_path / "2026-03-02.csv",
        f"{header}\n"
        "A,12,0,8,52983525035849,1770810300032981000,129.79,6876,"
        "1770810300033243132,100,100.000000,1,0,0,129.790000\n",
    )
    assert detect(source_of(path)).name == "polygon-trades"
    df = trades_of(path)
    assert df.schema == TRADES_SCHEMA
    assert df.select("symbol", "price", "size", "trade_id").row(0) == (
        "A",
        129.79,
        100.0,
        "52983525035849",
    )


def test_symbol_option_only_fills_empty_tickers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        f"{TRADES_HEADER}\n"
        "AAPL,12,0,8,1,1770810300032981000,273.4,1,1770810300033243132,100,3,0,0\n"
        ",12,0,8,2,1770810300032981000,273.4,2,1770810300033243132,100,3,0,0\n",
    )
    df = trades_of(path, symbol="MSFT")
    assert df["symbol"].to_list() == ["AAPL", "MSFT"]


def test_stock_trades_findings_count_corrections_and_trf() -> None:
    fmt = FORMATS["polygon-trades"]
    assert fmt.findings is not None
    feb = fixture(TRADES_FEB)
    rows = vendor_rows(feb)
    corrected = sum(1 for r in rows if r["correction"] != "0")
    off_exchange = sum(1 for r in rows if r["trf_id"] != "0")
    assert (corrected, off_exchange) == (2, 4)
    assert fmt.findings(source_of(feb), ReadOptions()) == [
        "2 corrected trades (correction ≠ 0)",
        "4 off-exchange trades reported to a FINRA TRF (trf_id ≠ 0)",
    ]
    assert fmt.findings(source_of(fixture(TRADES_MAY)), ReadOptions()) == [
        "3 off-exchange trades reported to a FINRA TRF (trf_id ≠ 0)"
    ]


# --- stocks quotes --------------------------------------------------------------------------


def test_round_lot_is_one_hundred_shares() -> None:
    assert ROUND_LOT == 100


def test_stock_quotes_first_row_pinned_sizes_in_shares() -> None:
    df = quotes_of(fixture(QUOTES_2021))
    assert df.schema == QUOTES_SCHEMA
    assert df.height == 10
    # Vendor row: A,8,180.0,100,11,164.28,100,"1,81",,1629716400001245000,79497,
    #             1629716400044243200,1,0   (sizes in round lots: 100 lots = 10,000 shares)
    assert df.row(0, named=True) == {
        "ts": utc(2021, 8, 23, 11, 0, 0, 44243),
        "ts_event": utc(2021, 8, 23, 11, 0, 0, 1245),
        "symbol": "A",
        "bid_price": 164.28,
        "bid_size": 10_000.0,
        "ask_price": 180.0,
        "ask_size": 10_000.0,
        "conditions": "1,81",
    }
    assert nanos(df, "ts")[0] == 1_629_716_400_044_243_200


@pytest.mark.parametrize("parts", [QUOTES_2021, QUOTES_2026])
def test_stock_quotes_match_vendor_rows(parts: tuple[str, ...]) -> None:
    path = fixture(parts)
    rows = vendor_rows(path)
    df = quotes_of(path)

    def side(price: str, size: str) -> tuple[float | None, float | None]:
        if float(price) == 0 or float(size) == 0:
            return (None, None)
        return (float(price), float(size) * 100)

    expected = [
        (*side(r["bid_price"], r["bid_size"]), *side(r["ask_price"], r["ask_size"])) for r in rows
    ]
    assert df.select("bid_price", "bid_size", "ask_price", "ask_size").rows() == expected
    assert nanos(df, "ts") == [int(r["sip_timestamp"]) for r in rows]
    assert nanos(df, "ts_event") == [int(r["participant_timestamp"]) for r in rows]
    assert df["symbol"].to_list() == [r["ticker"] for r in rows]
    assert df["conditions"].to_list() == [r["conditions"] for r in rows]


def test_stock_quotes_zero_sides_are_null() -> None:
    df = quotes_of(fixture(QUOTES_2021)).select("bid_price", "bid_size", "ask_price", "ask_size")
    assert df.row(2) == (164.3, 100.0, None, None)  # ask 0.0 x 0: empty ask
    assert df.row(5) == (None, None, None, None)  # both sides 0.0 x 0
    assert df.row(6) == (None, None, 149.9, 300.0)  # bid price 149.81 with size 0: empty bid
    # formats.md §6.2 example row 2, verbatim: A,12,0.0,0,12,0.0,0,"1,81",,...
    verbatim = quotes_of(fixture(QUOTES_2026)).row(0, named=True)
    assert verbatim["bid_price"] is None
    assert verbatim["ask_price"] is None
    assert verbatim["bid_size"] is None
    assert verbatim["ask_size"] is None


def test_stock_quotes_round_lot_is_a_read_option() -> None:
    source = source_of(fixture(QUOTES_2021))
    in_lots = read_quotes(source, ReadOptions(), round_lot=1).quotes
    assert in_lots is not None
    assert in_lots.collect()["bid_size"][0] == 100.0
    assert FORMATS["polygon-quotes"].read(source, ReadOptions()).quotes is not None


def test_stock_quotes_findings_count_one_sided_and_empty() -> None:
    fmt = FORMATS["polygon-quotes"]
    assert fmt.findings is not None
    assert fmt.findings(source_of(fixture(QUOTES_2021)), ReadOptions()) == [
        "2 one-sided quotes (one side has price or size 0)",
        "1 empty quotes (both sides have price or size 0)",
    ]
    assert fmt.findings(source_of(fixture(QUOTES_2026)), ReadOptions()) == [
        "1 one-sided quotes (one side has price or size 0)",
        "1 empty quotes (both sides have price or size 0)",
    ]


# --- crypto trades --------------------------------------------------------------------------


def test_crypto_trades_first_row_pinned() -> None:
    df = trades_of(fixture(CRYPTO))
    assert df.schema == CRYPTO_SCHEMA
    assert df.height == 9
    # Vendor row: X:BTC-USD,2,1,601234581,1704153600012345000,44179.55,0.00231
    assert df.row(0, named=True) == {
        "ts": utc(2024, 1, 2, 0, 0, 0, 12345),
        "ts_event": utc(2024, 1, 2, 0, 0, 0, 12345),
        "symbol": "X:BTC-USD",
        "exchange": "1",
        "price": 44179.55,
        "size": 0.00231,
        "aggressor_side": 1,
        "trade_id": "601234581",
        "conditions": "2",
    }


def test_crypto_trades_side_counts_and_rows() -> None:
    path = fixture(CRYPTO)
    rows = vendor_rows(path)
    df = trades_of(path)
    buys = sum(1 for r in rows if r["conditions"] == "2")
    sells = sum(1 for r in rows if r["conditions"] == "1")
    assert (buys, sells) == (4, 4)
    counts = dict(df["aggressor_side"].value_counts().iter_rows())
    # Polygon crypto: condition 2 = buyside (buyer-initiated), 1 = sellside.
    assert counts == {1: 4, -1: 4, 0: 1}
    assert df["aggressor_side"].to_list() == [oracle_crypto_side(r["conditions"]) for r in rows]
    assert nanos(df, "ts") == [int(r["participant_timestamp"]) for r in rows]
    assert nanos(df, "ts_event") == nanos(df, "ts")
    assert df["symbol"].to_list() == [r["ticker"] for r in rows]
    assert df["trade_id"].to_list() == [r["id"] for r in rows]


def test_crypto_inline_one_buy_one_sell(tmp_path: Path) -> None:
    path = write(
        tmp_path / "2024-01-03.csv",
        f"{CRYPTO_HEADER}\n"
        "X:BTC-USD,2,1,10,1704240000000000000,42000.5,0.1\n"
        "X:BTC-USD,1,1,11,1704240000001000000,42000.25,0.2\n",
    )
    assert detect(source_of(path)).name == "polygon-crypto-trades"
    df = trades_of(path)
    assert df.select("trade_id", "aggressor_side").rows() == [("10", 1), ("11", -1)]


@pytest.mark.parametrize(
    ("conditions", "side"),
    [
        ("1", -1),
        ("2", 1),
        ("12", 0),  # condition twelve, not 1 and 2
        ("21", 0),
        ("1,2", 0),  # both buyside and sellside: contradictory, unknown
        ("2,1", 0),
        ("2,37", 1),
        ("37, 1", -1),
        ("0", 0),
        ("", 0),
        (None, 0),
    ],
)
def test_crypto_conditions_parsed_as_whole_numbers(conditions: str | None, side: int) -> None:
    df = pl.DataFrame({"c": [conditions]}, schema={"c": pl.String})
    assert df.select(crypto_side("c"))["c"].to_list() == [side]
    assert df.select(crypto_side(pl.col("c")).alias("s"))["s"].dtype == pl.Int8


def test_crypto_findings_count_contradictory_conditions(tmp_path: Path) -> None:
    fmt = FORMATS["polygon-crypto-trades"]
    assert fmt.findings is not None
    assert fmt.findings(source_of(fixture(CRYPTO)), ReadOptions()) == []
    path = write(
        tmp_path / "c.csv",
        f'{CRYPTO_HEADER}\nX:BTC-USD,"1,2",1,10,1704240000000000000,42000.5,0.1\n'
        "X:BTC-USD,12,1,11,1704240000001000000,42000.25,0.2\n",
    )
    assert fmt.findings(source_of(path), ReadOptions()) == [
        "1 trades with both buyside (2) and sellside (1) conditions (side 0)"
    ]


# --- compression and detection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "fmt"),
    [
        (TRADES_FEB, "polygon-trades"),
        (TRADES_MAY, "polygon-trades"),
        (QUOTES_2021, "polygon-quotes"),
        (QUOTES_2026, "polygon-quotes"),
        (CRYPTO, "polygon-crypto-trades"),
    ],
)
def test_detect_fixture_and_plain_and_zstd_copies(
    parts: tuple[str, ...], fmt: str, tmp_path: Path
) -> None:
    gz = fixture(parts)
    source = source_of(gz)
    assert source.compression == "gzip"
    assert detect(source).name == fmt
    plain = plain_copy(gz, tmp_path / parts[-1].removesuffix(".gz"))
    zst = zstd_copy(gz, tmp_path / f"{plain.name}.zst")
    for copy in (plain, zst):
        assert detect(source_of(copy)).name == fmt
        want, have = read(gz), read(copy)
        for expected, got in ((want.trades, have.trades), (want.quotes, have.quotes)):
            assert (expected is None) == (got is None)
            if expected is not None and got is not None:
                assert_frame_equal(got.collect(), expected.collect())


def sniff_of(*lines: str, name: str = "2024-01-02.csv") -> Sniff:
    return Sniff(name=name, path=name, magic=lines[0].encode()[:16], lines=lines)


def matches(info: Sniff) -> list[str]:
    return [f.name for f in FORMATS.values() if f.sniff(info)]


@pytest.mark.parametrize(
    ("header", "fmt"),
    [
        (TRADES_HEADER, "polygon-trades"),
        (QUOTES_HEADER, "polygon-quotes"),
        (CRYPTO_HEADER, "polygon-crypto-trades"),
        (TRADES_HEADER.upper(), "polygon-trades"),
        (CRYPTO_HEADER + ",size_decimal", "polygon-crypto-trades"),
    ],
)
def test_each_header_matches_exactly_one_registered_format(header: str, fmt: str) -> None:
    assert matches(sniff_of(header)) == [fmt]


@pytest.mark.parametrize(
    "header",
    [
        # options trades and quotes, forex quotes, aggregates: other layouts
        "ticker,conditions,correction,exchange,price,sip_timestamp,size",
        "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,sequence_number,sip_timestamp",
        "ticker,ask_exchange,ask_price,bid_exchange,bid_price,participant_timestamp",
        "ticker,volume,open,close,high,low,window_start,transactions",
        # a published column missing, or columns out of order
        TRADES_HEADER.replace(",trf_id", ""),
        "ticker,exchange,conditions,id,participant_timestamp,price,size",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
    ],
)
def test_sniff_rejects_other_layouts(header: str) -> None:
    assert [f.name for f in POLYGON_FORMATS if f.sniff(sniff_of(header))] == []


def test_sniff_empty_file_matches_nothing() -> None:
    info = Sniff(name="e.csv", path="e.csv", magic=b"", lines=())
    assert [f.name for f in POLYGON_FORMATS if f.sniff(info)] == []


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["polygon-trades", "polygon-quotes", "polygon-crypto-trades"])
def test_empty_file_raises_one_line_error(fmt: str, tmp_path: Path) -> None:
    empty_file_error(fmt, tmp_path / "2024-01-02.csv")


def test_empty_gzip_raises_one_line_error(tmp_path: Path) -> None:
    empty_gzip_error("polygon-trades", tmp_path / "2024-01-02.csv.gz")


@pytest.mark.parametrize(
    ("fmt", "header", "missing"),
    [
        ("polygon-trades", TRADES_HEADER.replace("sip_timestamp,", ""), "sip_timestamp"),
        ("polygon-trades", TRADES_HEADER.replace(",id,", ","), "id"),
        ("polygon-quotes", QUOTES_HEADER.replace(",bid_size", ""), "bid_size"),
        ("polygon-crypto-trades", CRYPTO_HEADER.replace(",conditions", ""), "conditions"),
    ],
)
def test_missing_column_raises_one_line_error(
    fmt: str, header: str, missing: str, tmp_path: Path
) -> None:
    message = one_row_error(fmt, tmp_path / "broken.csv", header)
    assert f"missing column(s) {missing} " in message
