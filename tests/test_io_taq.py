from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from mmflow.errors import MmflowError, ParameterError, ReaderError
from mmflow.io import FORMATS, ReadOptions, detect
from mmflow.io.taq import FORMATS as TAQ_FORMATS
from mmflow.io.taq import ROUND_LOT, read_daily_nbbo, read_daily_quotes, read_wrds_quotes
from tests.conftest import data_path
from tests.helpers import (
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    canonical_schema,
    empty_file_error,
    gzip_copy,
    one_row_error,
    quotes_of,
    read,
    renamed,
    source_of,
    trades_of,
    utc,
    write,
)

DAILY_TRADES = "EQY_US_ALL_TRADE_20161024"
DAILY_BBO = "EQY_US_ALL_BBO_20161024"
DAILY_NBBO = "EQY_US_ALL_NBBO_20161201"
WRDS_TRADES = "ctm_20161201.csv"
WRDS_QUOTES = "cqm_20161201.csv"
WRDS_LOWER = "wrds_trades_lowercase.csv"

FIXTURE_FORMATS = {
    DAILY_TRADES: "taq-daily-trades",
    DAILY_BBO: "taq-daily-quotes",
    DAILY_NBBO: "taq-daily-nbbo",
    WRDS_TRADES: "taq-wrds-trades",
    WRDS_QUOTES: "taq-wrds-quotes",
    WRDS_LOWER: "taq-wrds-trades",
}

DAILY_TRADE_HEADER = (
    "Time|Exchange|Symbol|Sale Condition|Trade Volume|Trade Price|Trade Stop Stock Indicator|"
    "Trade Correction Indicator|Sequence Number|Trade Id|Source of Trade|"
    "Trade Reporting Facility|Participant Timestamp|Trade Reporting Facility TRF Timestamp|"
    "Trade Through Exempt Indicator"
)
DAILY_BBO_HEADER = (
    "Time|Exchange|Symbol|Bid_Price|Bid_Size|Offer_Price|Offer_Size|Quote_Condition|"
    "Sequence_Number|National_BBO_Ind|FINRA_BBO_Indicator|FINRA_ADF_MPID_Indicator|"
    "Quote_Cancel_Correction|Source_Of_Quote|Retail_Interest_Indicator|"
    "Short_Sale_Restriction_Indicator|LULD_BBO_Indicator|SIP_Generated_Message_Identifier|"
    "National_BBO_LULD_Indicator|Participant_Timestamp|FINRA_ADF_Timestamp|"
    "FINRA_ADF_Market_Participant_Quote_Indicator|Security_Status_Indicator"
)
WRDS_TRADE_HEADER = "DATE,TIME_M,EX,SYM_ROOT,SYM_SUFFIX,TR_SCOND,SIZE,PRICE,TR_CORR,TR_SEQNUM"
WRDS_QUOTE_HEADER = "DATE,TIME_M,EX,SYM_ROOT,SYM_SUFFIX,BID,BIDSIZ,ASK,ASKSIZ,QU_COND"

UTC_NS = pl.Datetime("ns", "UTC")
TRADES_SCHEMA = canonical_schema(
    *renamed(TRADE_COLUMNS, venue="exchange"), "conditions", "correction"
)
QUOTES_SCHEMA = canonical_schema(*renamed(QUOTE_COLUMNS, venue="exchange"), "conditions")


def findings_of(path: Path, fmt: str | None = None) -> list[str]:
    chosen = FORMATS[fmt] if fmt else detect(source_of(path))
    assert chosen.findings is not None
    return chosen.findings(source_of(path), ReadOptions())


def trailer(date: str, rows: int, columns: int) -> str:
    """A Daily TAQ trailer: END|date|rows and empty fields, one more field than the header."""
    return f"END|{date}|{rows}" + "|" * (columns - 2)


# --- registry and detection ----------------------------------------------------------------


def test_formats_registered_in_order() -> None:
    names = [f.name for f in TAQ_FORMATS]
    assert names == [
        "taq-wrds-trades",
        "taq-wrds-quotes",
        "taq-daily-trades",
        "taq-daily-quotes",
        "taq-daily-nbbo",
    ]
    assert all(name in FORMATS for name in names)
    assert all(f.findings is not None for f in TAQ_FORMATS)
    assert list(FORMATS).index("taq-daily-nbbo") < list(FORMATS).index("generic")


@pytest.mark.parametrize(("name", "fmt"), sorted(FIXTURE_FORMATS.items()))
def test_detects_every_fixture(name: str, fmt: str) -> None:
    assert detect(source_of(data_path("taq", name))).name == fmt


@pytest.mark.parametrize(("name", "fmt"), sorted(FIXTURE_FORMATS.items()))
def test_detects_gzip_copies(name: str, fmt: str, tmp_path: Path) -> None:
    copy = gzip_copy(data_path("taq", name), tmp_path / f"{name}.gz")
    assert detect(source_of(copy)).name == fmt
    assert read(copy).trades is not None or read(copy).quotes is not None


@pytest.mark.parametrize(("name", "fmt"), sorted(FIXTURE_FORMATS.items()))
def test_detects_by_header_under_another_name(name: str, fmt: str, tmp_path: Path) -> None:
    copy = write(tmp_path / "download.txt", data_path("taq", name).read_text())
    assert detect(source_of(copy)).name == fmt


def test_detects_daily_file_by_name_when_header_columns_are_reordered(tmp_path: Path) -> None:
    path = write(
        tmp_path / "EQY_US_ALL_TRADE_20161024",
        "Symbol|Time|Exchange|Trade Price|Trade Volume\n"
        "A|093000417837000|Z|45.88|300\n" + trailer("20161024", 1, 5) + "\n",
    )
    assert detect(source_of(path)).name == "taq-daily-trades"
    df = trades_of(path)
    assert df.row(0, named=True)["ts"] == utc(2016, 10, 24, 13, 30, 0, 417837)


def test_detects_wrds_file_by_name_when_header_starts_elsewhere(tmp_path: Path) -> None:
    path = write(
        tmp_path / "taqm_2016.cqm_20161201.csv",
        "SYM_ROOT,DATE,TIME_M,EX,BID,BIDSIZ,ASK,ASKSIZ\nA,20161201,9:30:00,N,45.5,1,45.6,2\n",
    )
    assert detect(source_of(path)).name == "taq-wrds-quotes"


def test_other_vendors_headers_are_not_taq(tmp_path: Path) -> None:
    path = write(
        tmp_path / "trades.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,a,buy,8531.5,2152\n",
    )
    assert not detect(source_of(path)).name.startswith("taq-")


# --- Daily TAQ trades ----------------------------------------------------------------------


def test_daily_trades_first_row_pinned_edt() -> None:
    df = trades_of(data_path("taq", DAILY_TRADES))
    assert df.schema == TRADES_SCHEMA
    # 09:30:00.417837 New York on 2016-10-24 (EDT, UTC-4) is 13:30:00.417837 UTC.
    assert df.row(0, named=True) == {
        "ts": utc(2016, 10, 24, 13, 30, 0, 417837),
        "ts_event": utc(2016, 10, 24, 13, 30, 0, 417230),
        "symbol": "A",
        "exchange": "Z",
        "price": 45.88,
        "size": 300.0,
        "aggressor_side": 0,
        "trade_id": "1231",
        "conditions": "@",
        "correction": "00",
    }


def test_daily_trades_last_row_pinned() -> None:
    df = trades_of(data_path("taq", DAILY_TRADES))
    assert df.row(-1, named=True) == {
        "ts": utc(2016, 10, 24, 13, 35, 0),
        "ts_event": utc(2016, 10, 24, 13, 34, 59, 998000),
        "symbol": "AAPL",
        "exchange": "D",
        "price": 117.35,
        "size": 400.0,
        "aggressor_side": 0,
        "trade_id": "4500",
        "conditions": "@",
        "correction": "00",
    }


def test_daily_trades_trailer_dropped_and_rows_counted() -> None:
    path = data_path("taq", DAILY_TRADES)
    lines = path.read_text().splitlines()
    assert lines[-1].startswith("END|20161024|17|")
    df = trades_of(path)
    assert df.height == 17 == len(lines) - 2
    assert "END" not in df["symbol"].to_list()
    assert df["symbol"].value_counts(sort=True).rows() == [("A", 11), ("AAPL", 6)]


def test_daily_trades_nanosecond_time_is_exact() -> None:
    df = trades_of(data_path("taq", DAILY_TRADES))
    stamps = df["ts"].dt.epoch("ns").to_list()
    # 093015123456789 New York (EDT) → 13:30:15.123456789 UTC, to the nanosecond.
    expected = int(utc(2016, 10, 24, 13, 30, 15).timestamp()) * 10**9 + 123_456_789
    assert stamps[3] == stamps[4] == expected
    # 155959999999999 → one nanosecond before 20:00 UTC.
    assert stamps[8] == int(utc(2016, 10, 24, 20, 0, 0).timestamp()) * 10**9 - 1


def test_daily_trades_conditions_lose_their_spaces() -> None:
    df = trades_of(data_path("taq", DAILY_TRADES))
    assert df["conditions"].to_list()[:3] == ["@", "O", "4B"]
    assert df["conditions"][5] == "@I"
    assert df["correction"][6] == "01"


def test_daily_trades_side_is_always_unknown() -> None:
    df = trades_of(data_path("taq", DAILY_TRADES))
    assert df["aggressor_side"].unique().to_list() == [0]


def test_daily_trades_gzip_reads_identically(tmp_path: Path) -> None:
    path = data_path("taq", DAILY_TRADES)
    copy = gzip_copy(path, tmp_path / f"{DAILY_TRADES}.gz")
    assert trades_of(copy).equals(trades_of(path))


def test_daily_header_spelling_variants_read_alike(tmp_path: Path) -> None:
    body = "093000417837000|Z|A|@|300|45.88|N|00|1231||C||093000417230000||0\n" + trailer(
        "20161024", 1, 15
    )
    underscored = DAILY_TRADE_HEADER.replace(" ", "_")
    variants = [DAILY_TRADE_HEADER, underscored, underscored.upper(), DAILY_TRADE_HEADER.lower()]
    frames = []
    for number, header in enumerate(variants):
        path = write(tmp_path / f"{number}_EQY_US_ALL_TRADE_20161024", f"{header}\n{body}\n")
        assert detect(source_of(path)).name == "taq-daily-trades"
        frames.append(trades_of(path))
    assert all(frame.equals(frames[0]) for frame in frames)
    assert frames[0]["ts"][0] == utc(2016, 10, 24, 13, 30, 0, 417837)


def test_daily_quotes_header_with_spaces(tmp_path: Path) -> None:
    spaced = DAILY_BBO_HEADER.replace("_", " ")
    path = write(
        tmp_path / "EQY_US_ALL_BBO_20161024",
        f"{spaced}\n093000417837000|N|A|45.87|3|45.89|2|R|5001|2||||C||||||093000417500000|||\n"
        + trailer("20161024", 1, 23)
        + "\n",
    )
    assert detect(source_of(path)).name == "taq-daily-quotes"
    row = quotes_of(path).row(0, named=True)
    assert (row["bid_price"], row["bid_size"], row["ask_price"], row["ask_size"]) == (
        45.87,
        300.0,
        45.89,
        200.0,
    )


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("093000417", utc(2016, 10, 24, 13, 30, 0, 417000)),  # millisecond vintage
        ("093000417837", utc(2016, 10, 24, 13, 30, 0, 417837)),  # microsecond vintage
        ("093000", utc(2016, 10, 24, 13, 30, 0)),
    ],
)
def test_daily_older_time_vintages_are_right_padded(
    time: str, expected: datetime, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "EQY_US_ALL_TRADE_20161024",
        f"{DAILY_TRADE_HEADER}\n{time}|Z|A|@|300|45.88|N|00|1231||C||||0\n"
        + trailer("20161024", 1, 15)
        + "\n",
    )
    row = trades_of(path).row(0, named=True)
    assert row["ts"] == expected
    assert row["ts_event"] is None


def test_daily_date_from_trailer_when_name_has_none(tmp_path: Path) -> None:
    path = write(
        tmp_path / "trades.psv",
        f"{DAILY_TRADE_HEADER}\n093000417837000|Z|A|@|300|45.88|N|00|1231||C||||0\n"
        + trailer("20161201", 1, 15)
        + "\n",
    )
    assert detect(source_of(path)).name == "taq-daily-trades"
    assert trades_of(path)["ts"][0] == utc(2016, 12, 1, 14, 30, 0, 417837)


def test_daily_without_date_anywhere_raises(tmp_path: Path) -> None:
    path = write(
        tmp_path / "trades.psv",
        f"{DAILY_TRADE_HEADER}\n093000417837000|Z|A|@|300|45.88|N|00|1231||C||||0\n",
    )
    with pytest.raises(ReaderError) as info:
        read(path, "taq-daily-trades")
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    assert "no date" in message


def test_daily_participant_timestamp_all_zeros_is_null(tmp_path: Path) -> None:
    path = write(
        tmp_path / "EQY_US_ALL_TRADE_20161024",
        f"{DAILY_TRADE_HEADER}\n093000417837000|Z|A|@|300|45.88|N|00|1231||C||000000000000000||0\n"
        + trailer("20161024", 1, 15)
        + "\n",
    )
    assert trades_of(path)["ts_event"].to_list() == [None]


def test_symbol_option_only_fills_empty_symbols(tmp_path: Path) -> None:
    path = write(
        tmp_path / "EQY_US_ALL_TRADE_20161024",
        f"{DAILY_TRADE_HEADER}\n"
        "093000417837000|Z|A|@|300|45.88|N|00|1231||C||||0\n"
        "093000417837000|Z||@|300|45.88|N|00|1232||C||||0\n" + trailer("20161024", 2, 15) + "\n",
    )
    assert trades_of(path, symbol="XYZ")["symbol"].to_list() == ["A", "XYZ"]


# --- Daily TAQ quotes and NBBO -------------------------------------------------------------


def test_daily_quotes_first_row_pinned_with_round_lots() -> None:
    df = quotes_of(data_path("taq", DAILY_BBO))
    assert df.schema == QUOTES_SCHEMA
    assert df.height == 16
    assert df.row(0, named=True) == {
        "ts": utc(2016, 10, 24, 13, 30, 0, 417837),
        "ts_event": utc(2016, 10, 24, 13, 30, 0, 417500),
        "symbol": "A",
        "exchange": "N",
        "bid_price": 45.87,
        "bid_size": 300.0,  # Bid_Size 3 round lots
        "ask_price": 45.89,
        "ask_size": 200.0,  # Offer_Size 2 round lots
        "conditions": "R",
    }


def test_daily_quotes_zero_side_is_null_and_missing_participant_time_is_null() -> None:
    df = quotes_of(data_path("taq", DAILY_BBO))
    one_sided = df.row(5, named=True)
    assert (one_sided["bid_price"], one_sided["bid_size"]) == (None, None)
    assert (one_sided["ask_price"], one_sided["ask_size"]) == (45.9, 600.0)
    assert df["ts_event"][9] is None
    assert df["bid_price"].null_count() == 1


def test_round_lot_is_configurable() -> None:
    assert ROUND_LOT == 100
    source = source_of(data_path("taq", DAILY_BBO))
    frames = read_daily_quotes(source, ReadOptions(), round_lot=1)
    assert frames.quotes is not None
    row = frames.quotes.collect().row(0, named=True)
    assert (row["bid_size"], row["ask_size"]) == (3.0, 2.0)
    with pytest.raises(ParameterError):
        read_daily_quotes(source, ReadOptions(), round_lot=0)


def test_daily_nbbo_reads_best_bid_and_offer_est() -> None:
    df = quotes_of(data_path("taq", DAILY_NBBO))
    assert df.height == 7
    assert "exchange" not in df.columns
    assert "venue" not in df.columns
    # 09:30:00.417837 New York on 2016-12-01 (EST, UTC-5) is 14:30:00.417837 UTC.
    assert df.row(0, named=True) == {
        "ts": utc(2016, 12, 1, 14, 30, 0, 417837),
        "ts_event": utc(2016, 12, 1, 14, 30, 0, 417500),
        "symbol": "A",
        "bid_price": 45.58,  # Best_Bid_Price, not the exchange's Bid_Price 45.57
        "bid_size": 400.0,
        "ask_price": 45.59,
        "ask_size": 200.0,
        "conditions": "R",
    }
    assert df.row(3, named=True)["ask_price"] is None  # Best_Offer_Size 0: empty side


def test_daily_nbbo_round_lot_keyword() -> None:
    frames = read_daily_nbbo(source_of(data_path("taq", DAILY_NBBO)), ReadOptions(), round_lot=1)
    assert frames.quotes is not None
    assert frames.quotes.collect()["bid_size"][0] == 4.0


# --- WRDS ----------------------------------------------------------------------------------


def test_wrds_trades_first_row_pinned_est() -> None:
    df = trades_of(data_path("taq", WRDS_TRADES))
    assert df.schema == TRADES_SCHEMA
    assert df.height == 11  # 12 rows; the zero-price cancelled print is dropped and counted
    assert df.row(0, named=True) == {
        "ts": utc(2016, 12, 1, 14, 30, 0, 417837),
        "ts_event": None,
        "symbol": "A",
        "exchange": "N",
        "price": 45.58,
        "size": 300.0,
        "aggressor_side": 0,
        "trade_id": "1231",
        "conditions": "@",
        "correction": "00",
    }


def test_wrds_trades_suffix_single_digit_hour_and_side() -> None:
    df = trades_of(data_path("taq", WRDS_TRADES))
    brk = df.filter(pl.col("symbol") == "BRK_B")
    assert brk.height == 2  # and a zero-price print, dropped by the plausibility checks
    # 4:00:00.012345 New York (EST) → 09:00:00.012345 UTC
    assert brk["ts"][0] == utc(2016, 12, 1, 9, 0, 0, 12345)
    assert df["aggressor_side"].unique().to_list() == [0]
    assert df["conditions"][1] == "@I"
    assert set(df["symbol"].unique().to_list()) == {"A", "BRK_B"}


def test_wrds_lowercase_dashed_dates_nanos_and_both_dst_sides() -> None:
    df = trades_of(data_path("taq", WRDS_LOWER))
    assert df.height == 5
    assert df.row(0, named=True) == {
        "ts": utc(2016, 10, 24, 13, 30, 0, 417837),
        "ts_event": None,
        "symbol": "A",
        "exchange": "Z",
        "price": 45.88,
        "size": 300.0,
        "aggressor_side": 0,
        "trade_id": "1231",
        "conditions": "@",
        "correction": "00",
    }
    ns = df["ts"].dt.epoch("ns").to_list()
    summer = int(utc(2016, 10, 24, 13, 30, 0).timestamp()) * 10**9
    winter = int(utc(2016, 12, 1, 14, 30, 0).timestamp()) * 10**9
    assert ns[0] == summer + 417_837_123  # time_m 09:30:00.417837 + time_m_nano 123
    assert ns[3] == winter + 417_837_123
    assert df["ts"][4].hour == 20  # 15:59:59 EST is 20:59:59 UTC
    assert df["ts"][2].hour == 19  # 15:59:59 EDT is 19:59:59 UTC


def test_wrds_upper_and_lower_case_headers_read_alike(tmp_path: Path) -> None:
    body = "20161201,9:30:00.417837,N,A,,@,300,45.58,00,1231\n"
    upper = trades_of(write(tmp_path / "upper.csv", f"{WRDS_TRADE_HEADER}\n{body}"))
    lower = trades_of(write(tmp_path / "lower.csv", f"{WRDS_TRADE_HEADER.lower()}\n{body}"))
    assert upper.equals(lower)


def test_wrds_quotes_first_row_pinned_with_round_lots() -> None:
    df = quotes_of(data_path("taq", WRDS_QUOTES))
    assert df.schema == QUOTES_SCHEMA
    assert df.height == 10
    assert df.row(0, named=True) == {
        "ts": utc(2016, 12, 1, 14, 30, 0, 417837),
        "ts_event": None,
        "symbol": "A",
        "exchange": "N",
        "bid_price": 45.57,
        "bid_size": 300.0,
        "ask_price": 45.6,
        "ask_size": 200.0,
        "conditions": "R",
    }
    one_sided = df.row(3, named=True)
    assert (one_sided["bid_price"], one_sided["bid_size"], one_sided["ask_size"]) == (
        None,
        None,
        600.0,
    )


def test_wrds_quotes_ofr_spelling_and_round_lot_keyword(tmp_path: Path) -> None:
    path = write(
        tmp_path / "quotes.csv",
        "DATE,TIME_M,EX,SYM_ROOT,BID,BIDSIZ,OFR,OFRSIZ\n20161201,9:30:00,N,A,45.5,2,45.6,0\n",
    )
    assert detect(source_of(path)).name == "taq-wrds-quotes"
    frames = read_wrds_quotes(source_of(path), ReadOptions(), round_lot=10)
    assert frames.quotes is not None
    row = frames.quotes.collect().row(0, named=True)
    assert (row["bid_price"], row["bid_size"], row["ask_price"], row["ask_size"]) == (
        45.5,
        20.0,
        None,
        None,
    )


def test_wrds_part_time_becomes_ts_event(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ctm.csv",
        f"{WRDS_TRADE_HEADER},PART_TIME\n"
        "20161024,9:30:00.417837,N,A,,@,300,45.88,00,1231,09:30:00.417230123\n"
        "20161024,9:30:00.417837,N,A,,@,300,45.88,00,1232,00:00:00.000000000\n",
    )
    df = trades_of(path)
    assert df["ts_event"][0] == utc(2016, 10, 24, 13, 30, 0, 417230)
    assert df["ts_event"].dt.nanosecond()[0] == 417_230_123
    assert df["ts_event"][1] is None


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [f.name for f in TAQ_FORMATS])
def test_empty_file_raises_one_line_error(fmt: str, tmp_path: Path) -> None:
    empty_file_error(fmt, tmp_path / "EQY_US_ALL_TRADE_20161024")


@pytest.mark.parametrize(
    ("fmt", "name", "header", "missing"),
    [
        ("taq-wrds-trades", "ctm.csv", "DATE,TIME_M,EX,SYM_ROOT,SIZE", "price"),
        ("taq-wrds-quotes", "cqm.csv", "DATE,TIME_M,EX,SYM_ROOT,BID,BIDSIZ,ASK", "asksiz"),
        (
            "taq-daily-trades",
            "EQY_US_ALL_TRADE_20161024",
            "Time|Exchange|Symbol|Trade Volume",
            "trade_price",
        ),
        (
            "taq-daily-quotes",
            "EQY_US_ALL_BBO_20161024",
            "Time|Exchange|Symbol|Bid_Price|Bid_Size|Offer_Price",
            "offer_size",
        ),
        (
            "taq-daily-nbbo",
            "EQY_US_ALL_NBBO_20161201",
            "Time|Exchange|Symbol|Best_Bid_Price|Best_Bid_Size",
            "best_offer_price",
        ),
    ],
)
def test_missing_column_raises_one_line_error(
    fmt: str, name: str, header: str, missing: str, tmp_path: Path
) -> None:
    assert missing in one_row_error(fmt, tmp_path / name, header, MmflowError)


def test_bad_price_fails_loudly_at_collection(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ctm.csv", f"{WRDS_TRADE_HEADER}\n20161201,9:30:00,N,A,,@,300,abc,00,1\n"
    )
    frames = read(path)
    assert frames.trades is not None
    with pytest.raises(pl.exceptions.PolarsError):
        frames.trades.collect()


# --- inspect findings ----------------------------------------------------------------------


def test_findings_report_rows_per_cleaning_rule() -> None:
    findings = findings_of(data_path("taq", DAILY_TRADES))
    assert findings == [
        "TAQ cleaning P1 (outside 09:30-16:00 New York time): 2 of 17 trades would be dropped",
        "TAQ cleaning P3 (not the selected exchange of the symbol-day): 5 of 17 trades would "
        "be dropped",
        "TAQ cleaning T1 (corrected or cancelled (correction indicator not 0)): 1 of 17 trades "
        "would be dropped",
        "TAQ cleaning T2 (abnormal sale condition): 3 of 17 trades would be dropped",
        "TAQ cleaning T3 (same-timestamp trades merged into one): 1 of 17 trades would be dropped",
        "TAQ cleaning (Barndorff-Nielsen et al. 2009) would keep 5 of 17 trades",
    ]


@pytest.mark.parametrize("name", sorted(FIXTURE_FORMATS))
def test_findings_for_every_fixture_end_with_the_kept_count(name: str) -> None:
    findings = findings_of(data_path("taq", name))
    assert any("would keep" in line for line in findings)
    assert all("\n" not in line for line in findings)
    assert not any("trailer" in line for line in findings)


def test_nbbo_findings_say_p3_does_not_apply() -> None:
    findings = findings_of(data_path("taq", DAILY_NBBO))
    assert "TAQ cleaning P3 not applicable: the file has no exchange column (NBBO is " in (
        " ".join(findings)
    )


def test_findings_flag_a_trailer_count_mismatch(tmp_path: Path) -> None:
    path = write(
        tmp_path / "EQY_US_ALL_TRADE_20161024",
        f"{DAILY_TRADE_HEADER}\n093000417837000|Z|A|@|300|45.88|N|00|1231||C||||0\n"
        + trailer("20161024", 5, 15)
        + "\n",
    )
    findings = findings_of(path)
    assert findings[0] == (
        "END trailer says 5 rows but the file has 1 (truncated or altered file; re-download it)"
    )


def test_findings_flag_a_missing_trailer_and_a_date_mismatch(tmp_path: Path) -> None:
    body = f"{DAILY_TRADE_HEADER}\n093000417837000|Z|A|@|300|45.88|N|00|1231||C||||0\n"
    truncated = write(tmp_path / "EQY_US_ALL_TRADE_20161024", body)
    assert findings_of(truncated)[0] == "no END trailer: the file may be truncated (re-download it)"
    renamed = write(
        tmp_path / "EQY_US_ALL_TRADE_20161025", body + trailer("20161024", 1, 15) + "\n"
    )
    assert "END trailer date 20161024 differs from the file name's 20161025" in findings_of(renamed)
