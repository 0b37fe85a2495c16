from __future__ import annotations

import csv
import gzip
import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.io import FORMATS, ReadOptions, detect
from mmflow.io.formats import Sniff, frames_kind
from mmflow.io.sierra import DEFAULT_SYMBOL, DEFAULT_TZ, read_trades, sierra_time, symbol_from_name
from tests.conftest import data_path, shared_path
from tests.helpers import (
    TRADE_COLUMNS,
    canonical_schema,
    empty_file_error,
    empty_gzip_error,
    one_row_error,
    renamed,
    source_of,
    trades_of,
    utc,
)

FILE_2022 = "ES_2022-01-24_tbt.txt"
FILE_2023 = "ES_2023-06-29_tbt.txt"
FILES = (FILE_2022, FILE_2023)

HEADER = "Date;Time;Sequence;DepthSequence;Price;Volume;TradeType;AskPrice;BidPrice;AskSize;BidSize"

UTC_NS = pl.Datetime("ns", "UTC")
TRADES_SCHEMA = canonical_schema(
    *renamed(TRADE_COLUMNS, venue=None), "bid_price", "bid_size", "ask_price", "ask_size"
)


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode("ascii"))
    return path


def vendor_rows(path: Path) -> list[dict[str, str]]:
    """The file's rows as parsed by Python's csv module (independent of the reader)."""
    text = path.read_bytes().decode("ascii")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def oracle_time(date: str, time: str) -> datetime:
    """The README's rule, by hand: the fraction is <milliseconds, unpadded><3-digit counter>."""
    clock, _, fraction = time.partition(".")
    millis = int(fraction[:-3] or "0")
    wall = datetime.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return wall + timedelta(milliseconds=millis)


def decimal_time(date: str, time: str) -> datetime:
    """The wrong reading: the fraction as a decimal fraction of a second."""
    clock, _, fraction = time.partition(".")
    wall = datetime.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return wall + timedelta(microseconds=int(fraction.ljust(6, "0")[:6]))


def in_sequence_order(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(rows, key=lambda r: int(r["Sequence"]))


# --- registry -------------------------------------------------------------------------------


def test_format_registered_before_generic() -> None:
    names = list(FORMATS)
    assert "sierra-es" in names
    assert names.index("sierra-es") < names.index("generic")
    assert FORMATS["sierra-es"].findings is not None
    assert DEFAULT_TZ == "UTC"
    assert DEFAULT_SYMBOL == "ES"


# --- time rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "expected_ms"),
    [
        ("13:30:00.5000", 5),  # README: 5 ms, counter 0
        ("13:30:00.5007", 5),  # 5 ms, counter 7
        ("13:30:00.47000", 47),
        ("13:30:00.107000", 107),
        ("13:30:00.159002", 159),  # 159 ms, counter 2
        ("13:30:00.000", 0),  # 0 ms, counter 0
        ("13:30:00.001", 0),  # 0 ms, counter 1: the counter is not time
        ("13:30:00.999123", 999),
        ("13:30:00", 0),
    ],
)
def test_sierra_time_fraction_is_milliseconds_then_counter(time: str, expected_ms: int) -> None:
    df = pl.DataFrame({"d": ["2022-01-24"], "t": [time]})
    got = df.select(sierra_time("d", "t"))["d"]
    assert got.dtype == UTC_NS
    assert got.item() == utc(2022, 1, 24, 13, 30, 0, expected_ms * 1_000)
    assert got.item() == oracle_time("2022-01-24", time)


@pytest.mark.parametrize("time", ["13:30:00.5", "13:30:00.1234567", "13:30", "x", "25:00:00.000"])
def test_sierra_time_other_shapes_fail_loudly(time: str) -> None:
    df = pl.DataFrame({"d": ["2022-01-24"], "t": [time]})
    with pytest.raises(pl.exceptions.InvalidOperationError, match="conversion from `str`"):
        df.select(sierra_time("d", "t"))


def test_sierra_time_zone_parameter() -> None:
    df = pl.DataFrame({"d": ["2022-01-24", "2023-06-29"], "t": ["07:30:00.5000", "08:30:00.000"]})
    got = df.select(sierra_time("d", "t", "America/Chicago"))["d"].to_list()
    assert got == [utc(2022, 1, 24, 13, 30, 0, 5_000), utc(2023, 6, 29, 13, 30, 0, 0)]


def test_read_trades_tz_keyword_shifts_clocks() -> None:
    source = source_of(data_path("sierra-es", FILE_2023))
    frames = read_trades(source, ReadOptions(), tz="America/Chicago")
    assert frames.trades is not None
    df = frames.trades.collect()
    # The same wall-clock text read as Chicago time (CDT, UTC-5) is five hours later in UTC.
    assert df["ts"][0] == utc(2023, 6, 29, 18, 30, 0, 0)
    assert df["ts_event"][0] == df["ts"][0]


# --- 2022 fixture ---------------------------------------------------------------------------


def test_2022_first_row_pinned() -> None:
    df = trades_of(data_path("sierra-es", FILE_2022))
    assert df.schema == TRADES_SCHEMA
    assert df.height == 300
    # Vendor row: 2022-01-24;13:30:00.5000;2314222;2314221;4347.75;1;2;4347.75;4347.5;12;34;…
    assert df.row(0, named=True) == {
        "ts": utc(2022, 1, 24, 13, 30, 0, 5_000),
        "ts_event": utc(2022, 1, 24, 13, 30, 0, 5_000),
        "symbol": "ES",
        "price": 4347.75,
        "size": 1.0,
        "aggressor_side": 1,
        "trade_id": "2314222",
        "bid_price": 4347.5,
        "bid_size": 34.0,
        "ask_price": 4347.75,
        "ask_size": 12.0,
    }


def test_2023_first_row_pinned_crlf_file() -> None:
    path = data_path("sierra-es", FILE_2023)
    assert b"\r\n" in path.read_bytes()[:2_000]
    df = trades_of(path)
    assert df.schema == TRADES_SCHEMA
    assert df.height == 300
    # Vendor row: 2023-06-29;13:30:00.000;21707047;21707046;4414.0;1;2;4414.0;4413.75;41;57;…
    assert df.row(0, named=True) == {
        "ts": utc(2023, 6, 29, 13, 30, 0, 0),
        "ts_event": utc(2023, 6, 29, 13, 30, 0, 0),
        "symbol": "ES",
        "price": 4414.0,
        "size": 1.0,
        "aggressor_side": 1,
        "trade_id": "21707047",
        "bid_price": 4413.75,
        "bid_size": 57.0,
        "ask_price": 4414.0,
        "ask_size": 41.0,
    }


@pytest.mark.parametrize("name", FILES)
def test_fixture_matches_vendor_rows_in_sequence_order(name: str) -> None:
    path = data_path("sierra-es", name)
    rows = in_sequence_order(vendor_rows(path))
    df = trades_of(path)
    assert df.height == len(rows) == 300
    assert df["trade_id"].to_list() == [r["Sequence"] for r in rows]
    assert df["ts"].to_list() == [oracle_time(r["Date"], r["Time"]) for r in rows]
    assert df["price"].to_list() == [float(r["Price"]) for r in rows]
    assert df["size"].to_list() == [float(r["Volume"]) for r in rows]
    assert df["bid_price"].to_list() == [float(r["BidPrice"]) for r in rows]
    assert df["bid_size"].to_list() == [float(r["BidSize"]) for r in rows]
    assert df["ask_price"].to_list() == [float(r["AskPrice"]) for r in rows]
    assert df["ask_size"].to_list() == [float(r["AskSize"]) for r in rows]
    side = {"2": 1, "1": -1}
    assert df["aggressor_side"].to_list() == [side[r["TradeType"]] for r in rows]


@pytest.mark.parametrize("name", FILES)
def test_fixture_side_counts_match_trade_type(name: str) -> None:
    path = data_path("sierra-es", name)
    rows = vendor_rows(path)
    at_ask = sum(1 for r in rows if r["TradeType"] == "2")
    at_bid = sum(1 for r in rows if r["TradeType"] == "1")
    assert at_ask + at_bid == len(rows)
    counts = dict(trades_of(path)["aggressor_side"].value_counts().iter_rows())
    # TradeType 2 = at the ask = buyer-initiated (+1); 1 = at the bid = seller-initiated (−1).
    assert counts == {1: at_ask, -1: at_bid}


@pytest.mark.parametrize("name", FILES)
def test_fixture_time_never_decreases_in_sequence_order(name: str) -> None:
    df = trades_of(data_path("sierra-es", name))
    assert (df["trade_id"].cast(pl.Int64).diff().drop_nulls() > 0).all()
    assert df["ts"].is_sorted()


@pytest.mark.parametrize("name", FILES)
def test_fixture_every_side_agrees_with_its_own_bbo(name: str) -> None:
    df = trades_of(data_path("sierra-es", name))
    buys = df.filter(pl.col("aggressor_side") == 1)
    sells = df.filter(pl.col("aggressor_side") == -1)
    assert buys.height + sells.height == df.height
    assert (buys["price"] >= buys["ask_price"]).all()
    assert (sells["price"] <= sells["bid_price"]).all()


def test_kind_is_trades_with_bbo() -> None:
    frames = mmflow.io.read_source(source_of(data_path("sierra-es", FILE_2022))).frames
    assert frames_kind(frames) == "trades+bbo"


# --- inline files ---------------------------------------------------------------------------


def test_inline_one_buy_one_sell_one_unknown(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ES_2024-03-01_tbt.txt",
        f"{HEADER}\n"
        "2024-03-01;14:30:00.12000;100;99;5100.25;3;2;5100.25;5100;10;20\n"
        "2024-03-01;14:30:00.12001;101;99;5100;2;1;5100.25;5100;7;20\n"
        "2024-03-01;14:30:00.13000;102;101;5100;1;0;5100.25;5100;7;18\n",
    )
    assert detect(source_of(path)).name == "sierra-es"
    df = trades_of(path)
    assert df.select("trade_id", "aggressor_side").rows() == [("100", 1), ("101", -1), ("102", 0)]
    assert df["ts"].to_list() == [
        utc(2024, 3, 1, 14, 30, 0, 12_000),
        utc(2024, 3, 1, 14, 30, 0, 12_000),
        utc(2024, 3, 1, 14, 30, 0, 13_000),
    ]


def test_rows_are_sorted_by_sequence_stably(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ES_x.txt",
        f"{HEADER}\n"
        "2024-03-01;14:30:00.2000;12;11;5100;1;2;5100;4999.75;1;1\n"
        "2024-03-01;14:30:00.1000;10;9;5101;1;2;5101;5100.75;1;1\n"
        "2024-03-01;14:30:00.1001;11;9;5102;1;2;5102;5101.75;1;1\n",
    )
    df = trades_of(path)
    assert df["trade_id"].to_list() == ["10", "11", "12"]
    assert df["price"].to_list() == [5101.0, 5102.0, 5100.0]


def test_crlf_last_needed_column_parses(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ES_crlf.txt",
        f"{HEADER}\n2024-03-01;14:30:00.000;1;0;5100;1;1;5100.25;5100;7;20\n",
        newline="\r\n",
    )
    assert detect(source_of(path)).name == "sierra-es"
    assert trades_of(path).select("bid_size", "ask_size").row(0) == (20.0, 7.0)


def test_ragged_rows_are_tolerated(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ES_ragged.txt",
        f"{HEADER};TotalAskDepth;TotalBidDepth\n"
        "2024-03-01;14:30:00.000;1;0;5100;1;1;5100.25;5100;7;20;300;310\n"
        "2024-03-01;14:30:00.001;2;0;5100;1;1;5100.25;5100;7;20\n"
        "2024-03-01;14:30:00.1000;3;0;5100.25;4;2;5100.25;5100;7;19;300;309;1;2;3\n",
    )
    df = trades_of(path)
    assert df.select("trade_id", "size", "aggressor_side").rows() == [
        ("1", 1.0, -1),
        ("2", 1.0, -1),
        ("3", 4.0, 1),
    ]


# --- symbol ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "symbol", "expected"),
    [
        ("ES_2022-01-24_tbt.txt", None, "ES"),
        ("ESH4_2024-03-01.txt", None, "ESH4"),
        ("ES_2022-01-24_tbt.txt", "NQ", "ES"),  # --symbol never relabels the name's symbol
        ("2023_06_29.txt", "NQ", "NQ"),  # the source repository's name: no symbol in it
        ("2023_06_29.txt", None, "ES"),
        ("tbt.txt", None, "ES"),
    ],
)
def test_symbol_from_name_then_option_then_default(
    name: str, symbol: str | None, expected: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path / name, f"{HEADER}\n2024-03-01;14:30:00.000;1;0;5100;1;1;5100.25;5100;7;20\n"
    )
    assert trades_of(path, symbol=symbol)["symbol"].to_list() == [expected]


def test_symbol_from_name() -> None:
    assert symbol_from_name("ES_2023-06-29_tbt.txt") == "ES"
    assert symbol_from_name("2023_06_29.txt") is None
    assert symbol_from_name("tbt.txt") is None


# --- findings -------------------------------------------------------------------------------


def test_findings_report_file_order_and_contradicting_sides(tmp_path: Path) -> None:
    fmt = FORMATS["sierra-es"]
    assert fmt.findings is not None
    assert fmt.findings(source_of(data_path("sierra-es", FILE_2022)), ReadOptions()) == []
    path = data_path("sierra-es", FILE_2023)
    sequence = [int(r["Sequence"]) for r in vendor_rows(path)]
    unsorted = sum(1 for a, b in itertools.pairwise(sequence) if b < a)
    assert unsorted > 0
    assert fmt.findings(source_of(path), ReadOptions()) == [
        f"{unsorted} rows out of Sequence order in the file (read in Sequence order)"
    ]
    odd = write(
        tmp_path / "ES_odd.txt",
        f"{HEADER}\n"
        "2024-03-01;14:30:00.000;1;0;5100;1;2;5100.25;5100;7;20\n"
        "2024-03-01;14:30:00.001;2;0;5100;1;0;5100.25;5100;7;20\n",
    )
    assert fmt.findings(source_of(odd), ReadOptions()) == [
        "1 trades with a TradeType other than 1 (at bid) or 2 (at ask) (side 0)",
        "1 trades whose TradeType contradicts their own BidPrice/AskPrice",
    ]


# --- compression and detection --------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_detect_fixture_and_compressed_copies(name: str, suffix: str, tmp_path: Path) -> None:
    plain = data_path("sierra-es", name)
    assert detect(source_of(plain)).name == "sierra-es"
    packed = tmp_path / f"{name}{suffix}"
    if suffix == ".gz":
        packed.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        with pa.CompressedOutputStream(str(packed), "zstd") as out:
            out.write(plain.read_bytes())
    assert detect(source_of(packed)).name == "sierra-es"
    assert_frame_equal(trades_of(packed), trades_of(plain))


def sniff_of(*lines: str) -> Sniff:
    return Sniff(name="x.txt", path="x.txt", magic=lines[0].encode()[:16], lines=lines)


def test_sniff_signature_alone_or_with_more_columns() -> None:
    signature = "Date;Time;Sequence;DepthSequence;Price;Volume;TradeType"
    matching = [f.name for f in FORMATS.values() if f.sniff(sniff_of(HEADER))]
    assert matching == ["sierra-es"]
    assert FORMATS["sierra-es"].sniff(sniff_of(signature))


@pytest.mark.parametrize(
    "header",
    [
        "Date;Time;Sequence;DepthSequence;Price;Volume;TradeTypeX;AskPrice",
        "Date;Time;Sequence;Price;Volume;TradeType;AskPrice;BidPrice",
        "Date,Time,Sequence,DepthSequence,Price,Volume,TradeType,AskPrice,BidPrice",
        "ts,symbol,price,size,aggressor_side",
    ],
)
def test_sniff_rejects_other_headers(header: str) -> None:
    assert not FORMATS["sierra-es"].sniff(sniff_of(header))
    assert not FORMATS["sierra-es"].sniff(Sniff(name="e", path="e", magic=b"", lines=()))


# --- errors ---------------------------------------------------------------------------------


def test_empty_file_raises_one_line_error(tmp_path: Path) -> None:
    empty_file_error("sierra-es", tmp_path / "ES_empty.txt")


def test_empty_gzip_raises_one_line_error(tmp_path: Path) -> None:
    empty_gzip_error("sierra-es", tmp_path / "ES_empty.txt.gz")


@pytest.mark.parametrize("missing", ["BidSize", "AskPrice", "Sequence", "Time"])
def test_missing_column_raises_one_line_error(missing: str, tmp_path: Path) -> None:
    header = ";".join(c for c in HEADER.split(";") if c != missing)
    message = one_row_error("sierra-es", tmp_path / "ES_broken.txt", header)
    assert f"missing column(s) {missing} " in message


# --- full files in ../shared (skipped when absent) ------------------------------------------

SHARED_FACTS = [
    # name, rows, first, last (README), TradeType 1 (at bid), TradeType 2 (at ask)
    (
        FILE_2022,
        2_026,
        utc(2022, 1, 24, 13, 30, 0, 5_000),
        utc(2022, 1, 24, 13, 31, 0, 955_000),
        1_010,
        1_016,
    ),
    (
        FILE_2023,
        1_026,
        utc(2023, 6, 29, 13, 30, 0, 0),
        utc(2023, 6, 29, 13, 30, 1, 993_000),
        511,
        515,
    ),
]


@pytest.mark.parametrize(("name", "rows", "first", "last", "at_bid", "at_ask"), SHARED_FACTS)
def test_shared_file_rows_span_and_sides(
    name: str, rows: int, first: datetime, last: datetime, at_bid: int, at_ask: int
) -> None:
    path = shared_path("sierra-es", name)
    df = trades_of(path)
    assert df.height == rows
    assert df["ts"][0] == first
    assert df["ts"][-1] == last
    assert df["ts"].min() == first
    assert df["ts"].max() == last
    vendor = vendor_rows(path)
    assert sum(1 for r in vendor if r["TradeType"] == "1") == at_bid
    assert sum(1 for r in vendor if r["TradeType"] == "2") == at_ask
    counts = dict(df["aggressor_side"].value_counts().iter_rows())
    assert counts == {-1: at_bid, 1: at_ask}
    buys = df.filter(pl.col("aggressor_side") == 1)
    sells = df.filter(pl.col("aggressor_side") == -1)
    assert (buys["price"] >= buys["ask_price"]).all()
    assert (sells["price"] <= sells["bid_price"]).all()


@pytest.mark.parametrize("name", FILES)
def test_shared_time_never_decreases_in_sequence_order(name: str) -> None:
    path = shared_path("sierra-es", name)
    rows = in_sequence_order(vendor_rows(path))
    times = [oracle_time(r["Date"], r["Time"]) for r in rows]
    assert all(a <= b for a, b in itertools.pairwise(times))
    df = trades_of(path)
    assert df["ts"].to_list() == times
    assert df["ts"].is_sorted()
    assert df["trade_id"].to_list() == [r["Sequence"] for r in rows]
    assert (df["trade_id"].cast(pl.Int64).diff().drop_nulls() > 0).all()


def test_shared_2022_decimal_reading_runs_backwards_19_times() -> None:
    rows = vendor_rows(shared_path("sierra-es", FILE_2022))
    sequence = [int(r["Sequence"]) for r in rows]
    assert sequence == sorted(sequence)  # strictly increasing in file order
    wrong = [decimal_time(r["Date"], r["Time"]) for r in rows]
    assert sum(1 for a, b in itertools.pairwise(wrong) if b < a) == 19


def test_shared_2023_file_order_sequence_decreases_37_times() -> None:
    path = shared_path("sierra-es", FILE_2023)
    sequence = [int(r["Sequence"]) for r in vendor_rows(path)]
    assert sum(1 for a, b in itertools.pairwise(sequence) if b < a) == 37
    fmt = FORMATS["sierra-es"]
    assert fmt.findings is not None
    assert fmt.findings(source_of(path), ReadOptions()) == [
        "37 rows out of Sequence order in the file (read in Sequence order)"
    ]
