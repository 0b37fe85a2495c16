from __future__ import annotations

import csv
import io
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.errors import MmflowError, ReaderError
from mmflow.io import FORMATS, ReadOptions, detect
from mmflow.io.lobster import FORMATS as LOBSTER_FORMATS
from mmflow.io.lobster import findings, lobster_price, lobster_time, missing_orderbook
from mmflow.metrics.signing import Method, evaluate_signing, sign_trades
from mmflow.schema import ISO_NS
from tests.conftest import data_path, shared_path
from tests.helpers import (
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    canonical_schema,
    gzip_copy,
    quotes_of,
    read,
    source_of,
    write,
)

DST_MESSAGE = "ZVZZT_2023-03-13_34200000_57600000_message_2.csv"
DST_BOOK = "ZVZZT_2023-03-13_34200000_57600000_orderbook_2.csv"
WINTER_MESSAGE = "ZVZZT_2023-03-10_34200000_57600000_message_1.csv"
WINTER_BOOK = "ZVZZT_2023-03-10_34200000_57600000_orderbook_1.csv"
AMZN_MESSAGE = "AMZN_2012-06-21_34200000_57600000_message_1.csv"
AMZN_BOOK = "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"

NEW_YORK = ZoneInfo("America/New_York")
EMPTY = 9_999_999_999

UTC_NS = pl.Datetime("ns", "UTC")
TRADES_SCHEMA = canonical_schema(
    *TRADE_COLUMNS, "bid_price", "bid_size", "ask_price", "ask_size", "conditions"
)
TRADES_ONLY_SCHEMA = canonical_schema(*TRADE_COLUMNS, "conditions")
QUOTES_SCHEMA = canonical_schema(*QUOTE_COLUMNS)
BBO = ["bid_price", "bid_size", "ask_price", "ask_size"]


def both_of(path: Path, fmt: str = "auto") -> tuple[pl.DataFrame, pl.DataFrame]:
    frames = read(path, fmt)
    assert isinstance(frames.trades, pl.LazyFrame)
    assert isinstance(frames.quotes, pl.LazyFrame)
    trades, quotes = pl.collect_all([frames.trades, frames.quotes])
    return trades, quotes


def copy_pair(tmp_path: Path, message: str, book: str | None) -> Path:
    """Copy a committed fixture message file (and its orderbook file) into ``tmp_path``."""
    shutil.copy(data_path("lobster", message), tmp_path / message)
    if book is not None:
        shutil.copy(data_path("lobster", book), tmp_path / book)
    return tmp_path / message


def rows_of(path: Path) -> list[list[str]]:
    """The file's rows as parsed by Python's csv module (independent of the reader)."""
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def ns_of(day: date, time_text: str) -> int:
    """Oracle: LOBSTER time text on ``day`` (New York) as ns since the epoch, via zoneinfo."""
    whole, _, fraction = time_text.partition(".")
    local = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK) + timedelta(seconds=int(whole))
    seconds = int(local.astimezone(UTC).timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def dollars(raw: str) -> float | None:
    """Oracle: LOBSTER integer price text → float (Python's correctly rounded int division)."""
    value = int(raw)
    return None if abs(value) == EMPTY else value / 10_000


def level_one(book_row: list[str]) -> tuple[float | None, float | None, float | None, float | None]:
    """Oracle: (bid_price, bid_size, ask_price, ask_size) of an orderbook row; empty → None."""
    ask_price, ask_size, bid_price, bid_size = book_row[:4]
    ask_empty = abs(int(ask_price)) == EMPTY or int(ask_size) == 0
    bid_empty = abs(int(bid_price)) == EMPTY or int(bid_size) == 0
    return (
        None if bid_empty else int(bid_price) / 10_000,
        None if bid_empty else float(bid_size),
        None if ask_empty else int(ask_price) / 10_000,
        None if ask_empty else float(ask_size),
    )


def iso(series: pl.Series) -> list[str]:
    return series.dt.to_string(ISO_NS).to_list()


# --- registry -------------------------------------------------------------------------------


def test_formats_registered_before_generic() -> None:
    names = [f.name for f in LOBSTER_FORMATS]
    assert names == ["lobster", "lobster-orderbook"]
    order = list(FORMATS)
    assert all(name in order for name in names)
    assert order.index("lobster") < order.index("generic")
    assert all(f.primary is not None and f.findings is not None for f in LOBSTER_FORMATS)


# --- clocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2012, 6, 21), "2012-06-21T13:30:00.004241176Z"),  # EDT, UTC-4
        (date(2023, 3, 10), "2023-03-10T14:30:00.004241176Z"),  # EST, UTC-5 (last winter Friday)
        (date(2023, 3, 13), "2023-03-13T13:30:00.004241176Z"),  # EDT from Sunday 2023-03-12
        (date(2023, 11, 3), "2023-11-03T13:30:00.004241176Z"),  # EDT (last summer Friday)
        (date(2023, 11, 6), "2023-11-06T14:30:00.004241176Z"),  # EST from Sunday 2023-11-05
    ],
)
def test_time_is_new_york_wall_clock_converted_to_utc(day: date, expected: str) -> None:
    df = pl.DataFrame({"t": ["34200.004241176"]}).select(lobster_time("t", day))
    assert iso(df["t"]) == [expected]
    assert df["t"].dt.epoch("ns").to_list() == [ns_of(day, "34200.004241176")]


def test_time_text_parsed_exactly_without_floats() -> None:
    texts = ["34200", "34200.", "34200.1", "34200.0051", "34200.123456789", "57599.999999999"]
    texts += ["34200.1234567899", " 34200.5 "]  # digits beyond ns are dropped; spaces stripped
    df = pl.DataFrame({"t": texts}).select(lobster_time("t", date(2023, 3, 13)))
    assert iso(df["t"]) == [
        "2023-03-13T13:30:00.000000000Z",
        "2023-03-13T13:30:00.000000000Z",
        "2023-03-13T13:30:00.100000000Z",
        "2023-03-13T13:30:00.005100000Z",
        "2023-03-13T13:30:00.123456789Z",
        "2023-03-13T19:59:59.999999999Z",
        "2023-03-13T13:30:00.123456789Z",
        "2023-03-13T13:30:00.500000000Z",
    ]
    assert df["t"].dtype == UTC_NS


# --- prices ---------------------------------------------------------------------------------


def test_price_scaling_is_exact() -> None:
    df = pl.DataFrame({"p": [5853300, 2238200, 37027500, 1, 9_999_999_998]})
    prices = df.select(lobster_price("p"))["p"].to_list()
    assert prices[0] == float("585.33")
    assert prices == [585.33, 223.82, 3702.75, 0.0001, 999999.9998]


def test_price_scaling_matches_correctly_rounded_division_everywhere() -> None:
    rng = random.Random(20120621)
    raw = list(range(200_000)) + [rng.randrange(1, 10**10) for _ in range(200_000)]
    got = pl.DataFrame({"p": raw}, schema={"p": pl.Int64}).select(lobster_price("p"))["p"]
    expected = [value / 10_000 for value in raw]  # Python's int / int is correctly rounded
    assert got.to_list() == expected


# --- the DST fixture pair: trades -----------------------------------------------------------


def test_dst_trades_first_row_pinned() -> None:
    trades, _ = both_of(data_path("lobster", DST_MESSAGE))
    assert trades.schema == TRADES_SCHEMA
    first = trades.row(0, named=True)
    assert iso(trades["ts"])[0] == "2023-03-13T13:30:01.000000000Z"
    assert first == {
        "ts": datetime(2023, 3, 13, 13, 30, 1, tzinfo=UTC),
        "ts_event": datetime(2023, 3, 13, 13, 30, 1, tzinfo=UTC),
        "symbol": "ZVZZT",
        "venue": "nasdaq",
        "price": 585.37,
        "size": 50.0,
        "aggressor_side": 1,  # Direction -1: a sell order was executed → buyer-initiated
        "trade_id": "1003",
        # pre-trade BBO = orderbook row 4 (the book before message 5)
        "bid_price": 585.33,
        "bid_size": 100.0,
        "ask_price": 585.37,
        "ask_size": 50.0,
        "conditions": "4",
    }


def test_dst_trades_all_rows_pinned() -> None:
    trades, _ = both_of(data_path("lobster", DST_MESSAGE))
    assert iso(trades["ts"]) == [
        "2023-03-13T13:30:01.000000000Z",
        "2023-03-13T13:30:02.000000001Z",
        "2023-03-13T13:30:02.250000000Z",
        "2023-03-13T13:30:02.250000000Z",
        "2023-03-13T13:40:00.750000000Z",
        "2023-03-13T13:40:02.500000000Z",
        "2023-03-13T13:40:03.250000000Z",
        "2023-03-13T13:40:04.000000000Z",
    ]
    assert trades["ts_event"].to_list() == trades["ts"].to_list()
    assert trades.select("price", "size", "aggressor_side", "trade_id", "conditions").rows() == [
        (585.37, 50.0, 1, "1003", "4"),
        (585.35, 40.0, -1, None, "5"),  # hidden: OrderID 0 → null trade_id
        (585.33, 30.0, -1, "1001", "4"),
        (585.33, 70.0, -1, "1001", "4"),  # second partial execution of order 1001
        (585.36, 500.0, 0, None, "6"),  # cross trade: aggressor unknown
        (585.38, 150.0, 1, "1002", "4"),
        (585.385, 100.0, 1, None, "5"),
        (585.34, 10.0, -1, "1005", "4"),
    ]
    assert trades.select(BBO).rows() == [
        (585.33, 100.0, 585.37, 50.0),
        (585.33, 100.0, 585.38, 150.0),
        (585.33, 100.0, 585.38, 150.0),
        # Both partial executions share 13:30:02.25: the second meets the book as it stood
        # before the first one, not the book after it (585.33 × 70).
        (585.33, 100.0, 585.38, 150.0),
        (585.34, 10.0, 585.38, 150.0),
        (585.34, 10.0, 585.38, 150.0),
        (585.34, 10.0, 585.39, 25.0),
        (585.34, 10.0, None, None),  # the ask side was empty before this trade
    ]


def test_dst_side_is_minus_direction_for_executions_and_zero_for_crosses() -> None:
    path = data_path("lobster", DST_MESSAGE)
    rows = rows_of(path)
    expected = [-int(r[5]) if r[1] in ("4", "5") else 0 for r in rows if r[1] in ("4", "5", "6")]
    trades, _ = both_of(path)
    assert trades["aggressor_side"].to_list() == expected
    counts = dict(trades["aggressor_side"].value_counts().iter_rows())
    assert counts == {1: 3, -1: 4, 0: 1}


def pre_event_books(
    messages: list[list[str]], book: list[list[str]], day: date
) -> list[tuple[float | None, float | None, float | None, float | None]]:
    """Oracle: per trade row, the book before the first message of its timestamp."""
    first: dict[int, int] = {}
    empty = (None, None, None, None)
    out = []
    for k, row in enumerate(messages):
        at = first.setdefault(ns_of(day, row[0]), k)
        if row[1] in ("4", "5", "6"):
            out.append(level_one(book[at - 1]) if at else empty)
    return out


def test_dst_pre_trade_bbo_is_the_book_before_the_first_message_of_its_time() -> None:
    messages = rows_of(data_path("lobster", DST_MESSAGE))
    book = rows_of(data_path("lobster", DST_BOOK))
    expected = pre_event_books(messages, book, date(2023, 3, 13))
    trades, _ = both_of(data_path("lobster", DST_MESSAGE))
    assert trades.select(BBO).rows() == expected
    visible = trades.filter(pl.col("conditions") == "4")
    side = pl.col("aggressor_side")
    opposite_best = pl.when(side == 1).then("ask_price").otherwise("bid_price").alias("best")
    assert (visible["price"] == visible.select(opposite_best)["best"]).all()


def test_dst_halts_new_orders_cancels_and_deletes_are_not_trades() -> None:
    trades, _ = both_of(data_path("lobster", DST_MESSAGE))
    assert trades.height == 8
    assert sorted(trades["conditions"].unique().to_list()) == ["4", "5", "6"]
    halt_times = ["2023-03-13T13:30:04.000001000Z", "2023-03-13T13:35:00.500000000Z"]
    assert not set(halt_times) & set(iso(trades["ts"]))


# --- the DST fixture pair: quotes -----------------------------------------------------------


def test_dst_quotes_one_row_per_level_one_change() -> None:
    _, quotes = both_of(data_path("lobster", DST_MESSAGE))
    assert quotes.schema == QUOTES_SCHEMA
    assert quotes.row(0, named=True) == {
        "ts": datetime(2023, 3, 13, 13, 30, 0, 4241, tzinfo=UTC),
        "ts_event": datetime(2023, 3, 13, 13, 30, 0, 4241, tzinfo=UTC),
        "symbol": "ZVZZT",
        "venue": "nasdaq",
        "bid_price": 585.33,
        "bid_size": 100.0,
        "ask_price": None,  # ask 9999999999, size 0: empty
        "ask_size": None,
    }
    assert iso(quotes["ts"]) == [
        "2023-03-13T13:30:00.004241176Z",
        "2023-03-13T13:30:00.004500000Z",
        "2023-03-13T13:30:00.005100000Z",
        # message 4 adds a level-2 bid only: no quote
        "2023-03-13T13:30:01.000000000Z",
        "2023-03-13T13:30:01.500000000Z",
        # message 7 (hidden execution) leaves the book as it was: no quote
        "2023-03-13T13:30:02.250000000Z",
        "2023-03-13T13:30:02.250000000Z",
        "2023-03-13T13:30:03.100000000Z",
        "2023-03-13T13:30:03.200000000Z",
        # halts, the cross and a level-2 ask change: no quotes
        "2023-03-13T13:40:02.500000000Z",
        "2023-03-13T13:40:03.500000000Z",
        "2023-03-13T13:40:04.000000000Z",
        "2023-03-13T19:59:59.999999999Z",
    ]


def test_dst_quotes_match_the_book_oracle() -> None:
    messages = rows_of(data_path("lobster", DST_MESSAGE))
    book = rows_of(data_path("lobster", DST_BOOK))
    expected: list[tuple[object, ...]] = []
    previous = None
    for message, row in zip(messages, book, strict=True):
        state = level_one(row)
        if state != previous:
            expected.append((ns_of(date(2023, 3, 13), message[0]), *state))
        previous = state
    _, quotes = both_of(data_path("lobster", DST_MESSAGE))
    got = quotes.select(pl.col("ts").dt.epoch("ns"), *BBO).rows()
    assert got == expected


def test_empty_level_sentinels_are_null() -> None:
    _, quotes = both_of(data_path("lobster", DST_MESSAGE))
    sides = quotes.select(BBO).rows()
    assert (None, None, 585.38, 150.0) in sides  # bid -9999999999, size 0
    assert (585.34, 10.0, None, None) in sides  # ask 9999999999, size 0
    assert (None, None, None, None) in sides  # both empty
    assert quotes["bid_price"].drop_nulls().min() == 585.32
    assert quotes["ask_price"].drop_nulls().max() == 585.39


# --- the winter fixture pair ----------------------------------------------------------------


def test_winter_pair_is_utc_minus_five() -> None:
    trades, quotes = both_of(data_path("lobster", WINTER_MESSAGE))
    assert iso(quotes["ts"])[0] == "2023-03-10T14:30:00.004241176Z"
    assert trades.height == 1
    assert trades.row(0, named=True) == {
        "ts": datetime(2023, 3, 10, 14, 31, 0, 250000, tzinfo=UTC),
        "ts_event": datetime(2023, 3, 10, 14, 31, 0, 250000, tzinfo=UTC),
        "symbol": "ZVZZT",
        "venue": "nasdaq",
        "price": 585.33,
        "size": 100.0,
        "aggressor_side": -1,  # Direction 1: a buy order was executed → seller-initiated
        "trade_id": "2001",
        "bid_price": 585.33,  # a seller-initiated visible execution prints at the best bid
        "bid_size": 100.0,
        "ask_price": 585.34,
        "ask_size": 100.0,
        "conditions": "4",
    }
    assert quotes.select(BBO).rows() == [
        (585.33, 100.0, None, None),
        (585.33, 100.0, 585.34, 100.0),
        (None, None, 585.34, 100.0),
    ]


# --- small inline files ---------------------------------------------------------------------


def test_one_buy_one_sell_inline(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv",
        "34200.1,4,11,5,1000000,-1\n34200.2,4,12,7,990000,1\n",
    )
    write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv",
        "1000100,10,990000,20\n1000100,10,990000,13\n",
    )
    trades, _ = both_of(path)
    assert trades["aggressor_side"].to_list() == [1, -1]  # -1 (sell executed) → buy
    assert trades["price"].to_list() == [100.0, 99.0]
    assert trades["size"].to_list() == [5.0, 7.0]
    assert trades["trade_id"].to_list() == ["11", "12"]
    # The first message has no book before it.
    assert trades.select(BBO).rows() == [(None, None, None, None), (99.0, 20.0, 100.01, 10.0)]


def test_extra_trailing_columns_are_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv",
        "34200.1,4,11,5,1000000,-1,null\n34200.2,4,12,7,990000,1,null\n",
    )
    write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv",
        "1000100,10,990000,20\n1000100,10,990000,13\n",
    )
    assert detect(source_of(path)).name == "lobster"
    trades, quotes = both_of(path)
    assert trades.select("price", "size", "aggressor_side").rows() == [
        (100.0, 5.0, 1),
        (99.0, 7.0, -1),
    ]
    assert quotes.height == 2


def test_header_row_of_redistributed_copies_is_skipped(tmp_path: Path) -> None:
    message = write(
        tmp_path / "msg.csv", "Time,Type,OrderID,Size,Price,Direction\n34200.1,4,11,5,1000000,-1\n"
    )
    assert detect(source_of(message)).name == "lobster"
    dated = write(tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", message.read_text())
    write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv",
        "AskPrice1,AskSize1,BidPrice1,BidSize1\n1000100,10,990000,20\n",
    )
    trades, quotes = both_of(dated)
    assert trades.select("price", "aggressor_side").rows() == [(100.0, 1)]
    assert quotes.select(BBO).rows() == [(99.0, 20.0, 100.01, 10.0)]


def test_negative_order_id_is_a_null_trade_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", "34200.1,6,-1,900,1000000,-1\n"
    )
    frames = read(path)
    assert frames.trades is not None
    assert frames.trades.collect().select("aggressor_side", "trade_id").rows() == [(0, None)]


# --- pairing, load() and the orderbook alone --------------------------------------------------


def test_load_of_both_files_reads_the_pair_once() -> None:
    message, book = data_path("lobster", DST_MESSAGE), data_path("lobster", DST_BOOK)
    for paths in ([str(message), str(book)], [str(book), str(message)]):
        loaded = mmflow.io.load(paths)
        assert [item.source.path for item in loaded] == [message]
        assert loaded[0].format.name == "lobster"
        assert loaded[0].kind == "trades+quotes"


def test_load_with_forced_format_skips_the_orderbook_too() -> None:
    message, book = data_path("lobster", DST_MESSAGE), data_path("lobster", DST_BOOK)
    loaded = mmflow.io.load([str(message), str(book)], "lobster")
    assert [item.source.path for item in loaded] == [message]


def test_load_of_the_directory_gives_each_pair_once() -> None:
    loaded = mmflow.io.load([str(data_path("lobster"))])
    assert sorted(item.source.name for item in loaded) == [WINTER_MESSAGE, DST_MESSAGE]
    assert {item.kind for item in loaded} == {"trades+quotes"}


def test_orderbook_alone_gives_the_same_quotes() -> None:
    _, expected = both_of(data_path("lobster", DST_MESSAGE))
    book = data_path("lobster", DST_BOOK)
    assert detect(source_of(book)).name == "lobster-orderbook"
    quotes = quotes_of(book)
    assert_frame_equal(quotes, expected)
    loaded = mmflow.io.load([str(book)])
    assert [item.kind for item in loaded] == ["quotes"]


def test_orderbook_format_on_a_message_file_gives_quotes_only() -> None:
    _, expected = both_of(data_path("lobster", DST_MESSAGE))
    assert_frame_equal(quotes_of(data_path("lobster", DST_MESSAGE), "lobster-orderbook"), expected)


def test_lobster_format_on_an_orderbook_file_gives_quotes_only() -> None:
    _, expected = both_of(data_path("lobster", DST_MESSAGE))
    assert_frame_equal(quotes_of(data_path("lobster", DST_BOOK), "lobster"), expected)


def test_orderbook_without_its_message_file_is_an_error(tmp_path: Path) -> None:
    book = tmp_path / DST_BOOK
    shutil.copy(data_path("lobster", DST_BOOK), book)
    with pytest.raises(ReaderError) as info:
        read(book)
    text = str(info.value)
    assert str(book) in text
    assert "message file" in text
    assert "\n" not in text


def test_message_without_orderbook_gives_trades_only(tmp_path: Path) -> None:
    path = copy_pair(tmp_path, DST_MESSAGE, None)
    assert missing_orderbook(source_of(path))
    frames = read(path)
    assert frames.quotes is None
    assert isinstance(frames.trades, pl.LazyFrame)
    trades = frames.trades.collect()
    assert trades.schema == TRADES_ONLY_SCHEMA
    with_book, _ = both_of(data_path("lobster", DST_MESSAGE))
    assert_frame_equal(trades, with_book.drop(BBO))
    assert "orderbook file not found: trades only, no quotes" in findings(
        source_of(path), ReadOptions()
    )
    loaded = mmflow.io.load([str(path)])
    assert [item.kind for item in loaded] == ["trades"]


def test_missing_orderbook_is_false_with_the_pair_and_for_the_orderbook() -> None:
    assert not missing_orderbook(source_of(data_path("lobster", DST_MESSAGE)))
    assert not missing_orderbook(source_of(data_path("lobster", DST_BOOK)))


def test_primary_of_the_orderbook_is_its_message_file() -> None:
    fmt = FORMATS["lobster-orderbook"]
    assert fmt.primary is not None
    message, book = data_path("lobster", DST_MESSAGE), data_path("lobster", DST_BOOK)
    assert fmt.primary(source_of(book)) == message
    assert fmt.primary(source_of(message)) is None


def test_gzip_pair_reads_like_the_plain_pair(tmp_path: Path) -> None:
    message = gzip_copy(data_path("lobster", DST_MESSAGE), tmp_path / f"{DST_MESSAGE}.gz")
    book = gzip_copy(data_path("lobster", DST_BOOK), tmp_path / f"{DST_BOOK}.gz")
    assert detect(source_of(message)).name == "lobster"
    assert detect(source_of(book)).name == "lobster-orderbook"
    assert not missing_orderbook(source_of(message))
    trades, quotes = both_of(message)
    expected_trades, expected_quotes = both_of(data_path("lobster", DST_MESSAGE))
    assert_frame_equal(trades, expected_trades)
    assert_frame_equal(quotes, expected_quotes)
    assert [item.source.path for item in mmflow.io.load([str(tmp_path)])] == [message]


def test_gzip_message_pairs_with_a_plain_orderbook(tmp_path: Path) -> None:
    message = gzip_copy(data_path("lobster", DST_MESSAGE), tmp_path / f"{DST_MESSAGE}.gz")
    shutil.copy(data_path("lobster", DST_BOOK), tmp_path / DST_BOOK)
    _, quotes = both_of(message)
    assert quotes.height == 13


def test_unequal_row_counts_fail_and_are_a_finding(tmp_path: Path) -> None:
    path = copy_pair(tmp_path, DST_MESSAGE, None)
    lines = data_path("lobster", DST_BOOK).read_text().splitlines(keepends=True)
    write(tmp_path / DST_BOOK, "".join(lines[:-1]))
    assert findings(source_of(path), ReadOptions())[-1] == (
        "orderbook file has 20 rows but the message file 21; "
        "they must match row for row (re-export the pair)"
    )
    frames = read(path)
    assert frames.quotes is not None
    with pytest.raises(pl.exceptions.ShapeError):
        frames.quotes.collect()


# --- findings -------------------------------------------------------------------------------


def test_findings_of_the_dst_pair() -> None:
    expected = [
        "3 trading-halt messages (type 7): 1 halted, 1 quoting resumed, 1 trading resumed",
        "2 hidden executions (type 5): against orders not in the visible book, so quote-based "
        "signing is unreliable for them; trade_id empty",
        "1 cross trade (type 6, auctions): aggressor unknown (0)",
    ]
    assert findings(source_of(data_path("lobster", DST_MESSAGE)), ReadOptions()) == expected
    # An orderbook file reports its pair's findings.
    assert findings(source_of(data_path("lobster", DST_BOOK)), ReadOptions()) == expected


def test_findings_of_a_clean_pair_are_empty() -> None:
    assert findings(source_of(data_path("lobster", WINTER_MESSAGE)), ReadOptions()) == []


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (DST_MESSAGE, "lobster"),
        (DST_BOOK, "lobster-orderbook"),
        (WINTER_MESSAGE, "lobster"),
        (WINTER_BOOK, "lobster-orderbook"),
    ],
)
def test_detects_fixtures_plain_and_gzip(tmp_path: Path, name: str, expected: str) -> None:
    path = data_path("lobster", name)
    assert detect(source_of(path)).name == expected
    assert detect(source_of(gzip_copy(path, tmp_path / f"{name}.gz"))).name == expected


@pytest.mark.parametrize(
    ("name", "expected"), [(DST_MESSAGE, "lobster"), (DST_BOOK, "lobster-orderbook")]
)
def test_detects_renamed_headerless_files_by_content(
    tmp_path: Path, name: str, expected: str
) -> None:
    renamed = tmp_path / "data.csv"
    shutil.copy(data_path("lobster", name), renamed)
    assert detect(source_of(renamed)).name == expected
    assert detect(source_of(gzip_copy(renamed, tmp_path / "data.csv.gz"))).name == expected


def test_content_heuristics_reject_near_misses(tmp_path: Path) -> None:
    for text in (
        "34200.1,8,11,5,1000000,-1\n",  # no message type 8
        "34200.1,4,11,5,1000000,0\n",  # direction must be ±1
        "90000.1,4,11,5,1000000,1\n",  # beyond one day
        "118500,10,118600,10\n",  # crossed book
        "1,2,3\n",
    ):
        path = write(tmp_path / "near.csv", text)
        info = mmflow.io.sniff(source_of(path))
        assert not FORMATS["lobster"].sniff(info), text
        assert not FORMATS["lobster-orderbook"].sniff(info), text


# --- names: date and symbol -----------------------------------------------------------------


def test_renamed_message_file_without_date_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    shutil.copy(data_path("lobster", DST_MESSAGE), path)
    with pytest.raises(ReaderError) as info:
        read(path)
    text = str(info.value)
    assert str(path) in text
    assert "rename the file" in text
    assert "TICKER_YYYY-MM-DD_StartMs_EndMs_message_LEVEL.csv" in text
    assert "\n" not in text


def test_symbol_option_is_only_a_fallback(tmp_path: Path) -> None:
    frames = read(data_path("lobster", DST_MESSAGE), symbol="AAPL")
    assert frames.trades is not None
    assert frames.trades.collect()["symbol"].unique().to_list() == ["ZVZZT"]
    nameless = tmp_path / "2023-03-13_34200000_57600000_message_2.csv"
    shutil.copy(data_path("lobster", DST_MESSAGE), nameless)
    shutil.copy(data_path("lobster", DST_BOOK), tmp_path / DST_BOOK.replace("ZVZZT_", ""))
    frames = read(nameless, symbol="AAPL")
    assert frames.trades is not None
    assert frames.quotes is not None
    assert frames.trades.collect()["symbol"].unique().to_list() == ["AAPL"]
    assert frames.quotes.collect()["symbol"].unique().to_list() == ["AAPL"]
    with pytest.raises(ReaderError, match="pass --symbol"):
        read(nameless)


# --- errors ---------------------------------------------------------------------------------


def test_empty_message_file_raises_reader_error(tmp_path: Path) -> None:
    path = write(tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", "")
    assert detect(source_of(path)).name == "lobster"
    with pytest.raises(ReaderError) as info:
        read(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_orderbook_file_raises_reader_error_naming_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", "34200.1,4,11,5,1000000,-1\n"
    )
    book = write(tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv", "")
    with pytest.raises(ReaderError) as info:
        read(path)
    assert str(book) in str(info.value)


def test_message_file_missing_a_column_raises_reader_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", "34200.1,4,11,5,1000000\n"
    )
    with pytest.raises(MmflowError) as info:
        read(path, "lobster")
    text = str(info.value)
    assert str(path) in text
    assert "Time,Type,OrderID,Size,Price,Direction" in text
    assert "found 5" in text
    assert "\n" not in text


def test_orderbook_file_missing_a_column_raises_reader_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", "34200.1,4,11,5,1000000,-1\n"
    )
    book = write(tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv", "1000100,10,9\n")
    with pytest.raises(ReaderError) as info:
        read(path)
    assert str(book) in str(info.value)
    assert "found 3" in str(info.value)


def test_frames_are_lazy_and_canonical() -> None:
    frames = read(data_path("lobster", DST_MESSAGE))
    assert isinstance(frames.trades, pl.LazyFrame)
    assert isinstance(frames.quotes, pl.LazyFrame)
    assert frames.trades.collect_schema() == TRADES_SCHEMA
    assert frames.quotes.collect_schema() == QUOTES_SCHEMA


# --- the real AMZN sample (skips without ../shared) ----------------------------------------------


def test_amzn_sample_counts_and_first_row() -> None:
    message = shared_path("lobster", AMZN_MESSAGE)
    rows = rows_of(message)
    executions = [r for r in rows if r[1] in ("4", "5")]
    assert (len(rows), len(executions)) == (3_000, 644)
    trades, quotes = both_of(message)
    assert trades.height == 644  # no cross trades in this sample
    assert trades.row(0, named=True) == {
        # 34200.01746,5,0,1,2238200,-1: a hidden sell order executed → buyer-initiated
        "ts": datetime(2012, 6, 21, 13, 30, 0, 17460, tzinfo=UTC),
        "ts_event": datetime(2012, 6, 21, 13, 30, 0, 17460, tzinfo=UTC),
        "symbol": "AMZN",
        "venue": "nasdaq",
        "price": 223.82,
        "size": 1.0,
        "aggressor_side": 1,
        "trade_id": None,
        "bid_price": None,  # the first message has no book before it
        "bid_size": None,
        "ask_price": None,
        "ask_size": None,
        "conditions": "5",
    }
    assert iso(trades["ts"])[0] == "2012-06-21T13:30:00.017460000Z"
    assert iso(quotes["ts"])[0] == "2012-06-21T13:30:00.017460000Z"
    assert iso(quotes["ts"])[-1] == "2012-06-21T13:49:46.532450000Z"


def test_amzn_sample_sides_are_minus_direction_row_by_row() -> None:
    message = shared_path("lobster", AMZN_MESSAGE)
    executions = [r for r in rows_of(message) if r[1] in ("4", "5")]
    trades, _ = both_of(message)
    assert trades["aggressor_side"].to_list() == [-int(r[5]) for r in executions]
    assert trades["price"].to_list() == [int(r[4]) / 10_000 for r in executions]
    assert trades["size"].to_list() == [float(r[3]) for r in executions]
    assert trades["ts"].dt.epoch("ns").to_list() == [
        ns_of(date(2012, 6, 21), r[0]) for r in executions
    ]
    counts = (
        trades.group_by("conditions", "aggressor_side").len().sort("conditions", "aggressor_side")
    )
    # README: visible 265 buyer- / 150 seller-initiated; hidden 93 / 136.
    assert counts.rows() == [("4", -1, 150), ("4", 1, 265), ("5", -1, 136), ("5", 1, 93)]
    assert iso(trades["ts"])[-1] == "2012-06-21T13:49:39.895620000Z"  # 35379.89562,4,…


def test_amzn_sample_pre_trade_bbo() -> None:
    message = shared_path("lobster", AMZN_MESSAGE)
    messages, book = rows_of(message), rows_of(shared_path("lobster", AMZN_BOOK))
    assert len(book) == len(messages) == 3_000
    expected = pre_event_books(messages, book, date(2012, 6, 21))
    trades, _ = both_of(message)
    assert trades.select(BBO).rows() == expected
    visible = trades.filter(pl.col("conditions") == "4")
    buys = visible.filter(pl.col("aggressor_side") == 1)
    sells = visible.filter(pl.col("aggressor_side") == -1)
    # A buyer-initiated visible execution prints at the pre-event best ask or, deeper in a sweep
    # that shares its timestamp, above it; a seller's at or below the bid.
    assert (buys["price"] >= buys["ask_price"]).all()
    assert (sells["price"] <= sells["bid_price"]).all()
    assert (
        (buys["price"] == buys["ask_price"]).sum(),
        (sells["price"] == sells["bid_price"]).sum(),
    ) == (251, 148)
    assert (buys.height, sells.height) == (265, 150)


def test_amzn_sample_quotes_match_the_book_oracle() -> None:
    message = shared_path("lobster", AMZN_MESSAGE)
    messages, book = rows_of(message), rows_of(shared_path("lobster", AMZN_BOOK))
    expected: list[tuple[object, ...]] = []
    previous = None
    for m, row in zip(messages, book, strict=True):
        state = level_one(row)
        if state != previous:
            expected.append((ns_of(date(2012, 6, 21), m[0]), *state))
        previous = state
    _, quotes = both_of(message)
    assert quotes.select(pl.col("ts").dt.epoch("ns"), *BBO).rows() == expected
    assert quotes.height == 2_772
    assert (quotes["ask_price"] > quotes["bid_price"]).all()


def test_amzn_sample_detection_load_and_findings() -> None:
    message, book = shared_path("lobster", AMZN_MESSAGE), shared_path("lobster", AMZN_BOOK)
    assert detect(source_of(message)).name == "lobster"
    assert detect(source_of(book)).name == "lobster-orderbook"
    assert [item.source.path for item in mmflow.io.load([str(book), str(message)])] == [message]
    assert findings(source_of(message), ReadOptions()) == [
        "229 hidden executions (type 5): against orders not in the visible book, so quote-based "
        "signing is unreliable for them; trade_id empty"
    ]


SWEEP_MESSAGES = (
    "34200.1,1,11,100,999000,1\n"  # bid 99.90 × 100
    "34200.2,1,21,50,1000000,-1\n"  # ask 100.00 × 50
    "34200.25,1,22,100,1001000,-1\n"  # second ask level 100.10 × 100 (level 1 unchanged)
    "34200.3,4,21,50,1000000,-1\n"  # a buyer takes the whole 100.00 level …
    "34200.3,5,0,30,1000000,-1\n"  # … and a hidden sell order at 100.00 in the same event
    "34200.4,5,0,20,999500,1\n"  # a hidden buy order at 99.95 is hit on its own
)
SWEEP_BOOK = (
    f"{EMPTY},0,999000,100\n"
    "1000000,50,999000,100\n"
    "1000000,50,999000,100\n"
    "1001000,100,999000,100\n"
    "1001000,100,999000,100\n"
    "1001000,100,999000,100\n"
)


def sweep_pair(tmp_path: Path) -> Path:
    write(tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv", SWEEP_BOOK)
    return write(tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv", SWEEP_MESSAGES)


def test_hidden_execution_sharing_a_timestamp_meets_the_book_before_the_event(
    tmp_path: Path,
) -> None:
    trades, _ = both_of(sweep_pair(tmp_path))
    assert trades.select("price", "aggressor_side", "conditions").rows() == [
        (100.0, 1, "4"),
        (100.0, 1, "5"),
        (99.95, -1, "5"),
    ]
    assert trades.select(BBO).rows() == [
        (99.9, 100.0, 100.0, 50.0),  # the book before message 4
        # Not the book after message 4 (ask 100.10, on which 100.00 is the midpoint): the
        # hidden execution is part of the same event and met the 100.00 ask.
        (99.9, 100.0, 100.0, 50.0),
        (99.9, 100.0, 100.1, 100.0),  # alone at its time: the book before message 6
    ]


def test_first_messages_sharing_the_first_timestamp_have_no_book(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_message_1.csv",
        "34200.1,4,11,5,1000000,-1\n34200.1,5,0,7,1000000,-1\n34200.2,4,12,7,990000,1\n",
    )
    write(
        tmp_path / "ABC_2012-06-21_34200000_57600000_orderbook_1.csv",
        "1000100,10,990000,20\n1000100,10,990000,20\n1000100,10,990000,13\n",
    )
    trades, _ = both_of(path)
    assert trades.select(BBO).rows() == [
        (None, None, None, None),
        (None, None, None, None),
        (99.0, 20.0, 100.01, 10.0),
    ]


@pytest.mark.parametrize("method", ["quote", "lee-ready", "emo", "clnv", "depth"])
def test_every_quote_method_signs_the_hidden_execution_of_a_sweep_right(
    tmp_path: Path, method: Method
) -> None:
    trades, _ = both_of(sweep_pair(tmp_path))
    signed = sign_trades(trades.lazy(), method=method).collect()
    # With the book after the sweep, 100.00 sits at the midpoint of 99.90/100.10: the quote rule
    # leaves it unknown and the tick rule has no price change yet, so it was unsigned (0).
    assert signed["trade_sign"].to_list() == [1, 1, -1]
    assert signed["trade_sign"].to_list() == trades["aggressor_side"].to_list()


def test_amzn_sample_lee_ready_with_the_book_before_each_event() -> None:
    message = shared_path("lobster", AMZN_MESSAGE)
    messages = rows_of(message)
    # Hidden executions that follow another message of the same timestamp.
    shared = [k for k, r in enumerate(messages) if r[1] == "5" and messages[k - 1][0] == r[0]]
    assert len(shared) == 48
    trades, _ = both_of(message)
    scores = evaluate_signing(trades.lazy()).scores.collect()
    lee_ready = scores.filter(pl.col("method") == "lee-ready").row(0, named=True)
    # 614 of 643 (95.49 %) with the book after the previous message; 616 (95.80 %) now.
    assert (lee_ready["trades"], lee_ready["classified"], lee_ready["correct"]) == (644, 643, 616)
    assert lee_ready["accuracy"] == pytest.approx(616 / 643)
