from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmflow.io
from mmflow.clean import (
    DROPPED_SCHEMA,
    QUOTE_RULES,
    TRADE_RULES,
    Cleaned,
    clean_taq,
    clean_taq_quotes,
    clean_taq_trades,
    drop_abnormal_conditions,
    drop_corrected_trades,
    drop_large_spreads,
    drop_mid_quote_outliers,
    drop_negative_spreads,
    drop_outside_hours,
    drop_trades_outside_quotes,
    drop_zero_prices,
    excluded_median,
    keep_single_exchange,
    merge_same_timestamp_quotes,
    merge_same_timestamp_trades,
)
from mmflow.errors import ParameterError, SchemaError
from mmflow.io import ReadOptions, Source
from mmflow.schema import QUOTES, TRADES, conform
from tests.conftest import data_path

NEW_YORK = ZoneInfo("America/New_York")
SUMMER = date(2016, 10, 24)  # EDT, UTC-4
WINTER = date(2016, 12, 1)  # EST, UTC-5
UTC_NS = pl.Datetime("ns", "UTC")

Value = float | str | None


def ny(hour: int, minute: int, second: int = 0, micro: int = 0, day: date = SUMMER) -> datetime:
    """A New York wall-clock time as an aware UTC datetime."""
    local = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=NEW_YORK)
    return local.astimezone(UTC)


def column(value: Value | Sequence[Value], n: int) -> list[Any]:
    return list(value) if isinstance(value, list) else [value] * n


def make_trades(
    ts: list[datetime],
    *,
    price: Value | Sequence[Value] = 45.0,
    size: Value | Sequence[Value] = 100.0,
    symbol: Value | Sequence[Value] = "A",
    venue: Value | Sequence[Value] = "N",
    conditions: Value | Sequence[Value] = "@",
    correction: Value | Sequence[Value] = "00",
) -> pl.LazyFrame:
    n = len(ts)
    frame = pl.LazyFrame(
        {
            "ts": ts,
            "symbol": column(symbol, n),
            "venue": column(venue, n),
            "price": column(price, n),
            "size": column(size, n),
            "aggressor_side": [0] * n,
            "conditions": column(conditions, n),
            "correction": column(correction, n),
        },
        schema={
            "ts": UTC_NS,
            "symbol": pl.String,
            "venue": pl.String,
            "price": pl.Float64,
            "size": pl.Float64,
            "aggressor_side": pl.Int8,
            "conditions": pl.String,
            "correction": pl.String,
        },
    )
    return conform(frame, TRADES)


def make_quotes(
    ts: list[datetime],
    *,
    bid: Value | Sequence[Value] = 45.0,
    ask: Value | Sequence[Value] = 45.02,
    bid_size: Value | Sequence[Value] = 100.0,
    ask_size: Value | Sequence[Value] = 100.0,
    symbol: Value | Sequence[Value] = "A",
    venue: Value | Sequence[Value] = "N",
) -> pl.LazyFrame:
    n = len(ts)
    frame = pl.LazyFrame(
        {
            "ts": ts,
            "symbol": column(symbol, n),
            "venue": column(venue, n),
            "bid_price": column(bid, n),
            "bid_size": column(bid_size, n),
            "ask_price": column(ask, n),
            "ask_size": column(ask_size, n),
        },
        schema={
            "ts": UTC_NS,
            "symbol": pl.String,
            "venue": pl.String,
            "bid_price": pl.Float64,
            "bid_size": pl.Float64,
            "ask_price": pl.Float64,
            "ask_size": pl.Float64,
        },
    )
    return conform(frame, QUOTES)


def seconds(n: int, start: datetime | None = None) -> list[datetime]:
    """``n`` timestamps one second apart from 10:00 New York (summer)."""
    first = start or ny(10, 0)
    return [first + timedelta(seconds=i) for i in range(n)]


def fixture_frames(name: str) -> pl.LazyFrame:
    path = data_path("taq", name)
    frames = mmflow.io.read_source(Source(path, str(path)), "auto", ReadOptions()).frames
    frame = frames.trades if frames.trades is not None else frames.quotes
    assert frame is not None
    return frame


def assert_counts_add_up(raw: pl.LazyFrame, cleaned: Cleaned) -> None:
    """Per symbol-day: kept rows + every rule's dropped rows = input rows."""
    keys = ["symbol", "date"]

    def per_day(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
        day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("date")
        return frame.group_by(pl.col("symbol"), day).agg(pl.len().cast(pl.Int64).alias(name))

    dropped = cleaned.dropped.group_by(keys).agg(pl.col("rows_dropped").sum()).collect()
    table = (
        per_day(raw, "input")
        .collect()
        .join(per_day(cleaned.frame, "kept").collect(), on=keys, how="left", nulls_equal=True)
        .join(dropped, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.col("kept").fill_null(0), pl.col("rows_dropped").fill_null(0))
    )
    assert (table["kept"] + table["rows_dropped"]).to_list() == table["input"].to_list()
    assert int(table["input"].sum()) == raw.select(pl.len()).collect().item()


# --- P1 ------------------------------------------------------------------------------------


def test_p1_drops_outside_session_and_keeps_both_ends() -> None:
    ts = [ny(9, 29, 59, 999999), ny(9, 30), ny(12, 0), ny(16, 0), ny(16, 0, 0, 1)]
    kept = drop_outside_hours(make_trades(ts)).collect()
    assert kept["ts"].to_list() == [ny(9, 30), ny(12, 0), ny(16, 0)]


def test_p1_uses_new_york_time_on_both_sides_of_dst() -> None:
    summer = datetime(2016, 10, 24, 13, 45, tzinfo=UTC)  # 09:45 EDT: inside
    winter = datetime(2016, 12, 1, 13, 45, tzinfo=UTC)  # 08:45 EST: outside
    kept = drop_outside_hours(make_trades([summer, winter])).collect()
    assert kept["ts"].to_list() == [summer]


def test_p1_custom_session_and_bad_session() -> None:
    kept = drop_outside_hours(
        make_trades([ny(9, 45), ny(10, 30)]), open_time=time(10), close_time=time(11)
    ).collect()
    assert kept["ts"].to_list() == [ny(10, 30)]
    with pytest.raises(ParameterError):
        drop_outside_hours(make_trades([ny(10, 0)]), open_time=time(16), close_time=time(9, 30))


# --- P2 ------------------------------------------------------------------------------------


def test_p2_drops_zero_and_missing_trade_prices() -> None:
    kept = drop_zero_prices(make_trades(seconds(3), price=[0.0, 45.0, None])).collect()
    assert kept["price"].to_list() == [45.0]


def test_p2_drops_quotes_with_a_zero_or_empty_side() -> None:
    quotes = make_quotes(seconds(4), bid=[45.0, 0.0, None, 45.0], ask=[45.02, 45.02, 45.02, 0.0])
    kept = drop_zero_prices(quotes).collect()
    assert kept.select("bid_price", "ask_price").rows() == [(45.0, 45.02)]


# --- P3 ------------------------------------------------------------------------------------


def test_p3_auto_keeps_the_largest_volume_exchange_per_symbol_day() -> None:
    trades = make_trades(
        seconds(6),
        symbol=["A", "A", "A", "A", "B", "B"],
        venue=["N", "N", "N", "P", "N", "P"],
        size=[100.0, 100.0, 100.0, 250.0, 100.0, 900.0],
    )
    kept = keep_single_exchange(trades).collect()
    assert kept.select("symbol", "venue").rows() == [("A", "N")] * 3 + [("B", "P")]


def test_p3_auto_chooses_per_day() -> None:
    trades = make_trades(
        [ny(10, 0), ny(10, 1), ny(10, 0, day=WINTER), ny(10, 1, day=WINTER)],
        venue=["N", "P", "N", "P"],
        size=[300.0, 100.0, 100.0, 300.0],
    )
    assert keep_single_exchange(trades).collect()["venue"].to_list() == ["N", "P"]


def test_p3_tie_keeps_every_tied_exchange() -> None:
    trades = make_trades(seconds(3), venue=["N", "P", "Z"], size=[200.0, 200.0, 100.0])
    assert keep_single_exchange(trades).collect()["venue"].to_list() == ["N", "P"]


def test_p3_auto_for_quotes_uses_quoted_size() -> None:
    quotes = make_quotes(
        seconds(3),
        venue=["N", "P", "P"],
        bid_size=[1000.0, 100.0, 100.0],
        ask_size=[1000.0, None, 100.0],
    )
    assert keep_single_exchange(quotes).collect()["venue"].to_list() == ["N"]


def test_p3_explicit_exchange_list() -> None:
    trades = make_trades(seconds(3), venue=["N", "P", "T"], size=[900.0, 1.0, 1.0])
    assert keep_single_exchange(trades, ["P", "T"]).collect()["venue"].to_list() == ["P", "T"]
    assert keep_single_exchange(trades, "T").collect()["venue"].to_list() == ["T"]
    with pytest.raises(ParameterError):
        keep_single_exchange(trades, [])


# --- T1, T2 --------------------------------------------------------------------------------


def test_t1_drops_corrected_trades_and_keeps_regular_ones() -> None:
    trades = make_trades(seconds(5), correction=["00", "01", "0", None, "12"])
    kept = drop_corrected_trades(trades).collect()
    assert kept["correction"].to_list() == ["00", "0", None]


def test_t2_keeps_only_highfrequency_valid_conditions() -> None:
    conditions: list[Value] = ["@", "O", "@I", "F", "4B", None, "@FI", "@T", "", "E", "@M"]
    kept = drop_abnormal_conditions(make_trades(seconds(11), conditions=conditions)).collect()
    assert kept["conditions"].to_list() == ["@", "@I", "F", None, "@FI", "", "E"]


def test_t2_custom_valid_list() -> None:
    trades = make_trades(seconds(2), conditions=["@", "O"])
    assert drop_abnormal_conditions(trades, valid=["O"]).collect()["conditions"].to_list() == ["O"]


# --- T3 ------------------------------------------------------------------------------------


def test_t3_merges_same_timestamp_trades_median_price_summed_size() -> None:
    stamp = ny(10, 0)
    trades = make_trades(
        [stamp, stamp, stamp, ny(10, 1)],
        price=[10.0, 11.0, 13.0, 12.0],
        size=[100.0, 200.0, 300.0, 50.0],
        venue=["N", "N", "P", "N"],
    )
    merged = merge_same_timestamp_trades(trades).collect()
    assert merged.columns == [*make_trades([stamp]).collect_schema().names(), "trade_count"]
    assert merged.select("ts", "price", "size", "trade_count", "venue").rows() == [
        (stamp, 11.0, 600.0, 3, "P"),
        (ny(10, 1), 12.0, 50.0, 1, "N"),
    ]


def test_t3_even_count_takes_the_mean_of_the_middle_prices() -> None:
    stamp = ny(10, 0)
    merged = merge_same_timestamp_trades(make_trades([stamp] * 2, price=[10.0, 10.5])).collect()
    assert merged["price"].to_list() == [10.25]


def test_t3_same_time_different_symbols_are_not_merged() -> None:
    stamp = ny(10, 0)
    merged = merge_same_timestamp_trades(make_trades([stamp] * 2, symbol=["A", "B"])).collect()
    assert merged.height == 2


# --- T4 ------------------------------------------------------------------------------------


def test_t4_drops_trades_beyond_one_spread_outside_the_quote() -> None:
    quotes = make_quotes([ny(10, 0)], bid=10.0, ask=10.125)  # band [9.875, 10.25]
    trades = make_trades(seconds(4, ny(10, 0, 1)), price=[10.3, 10.25, 9.875, 9.8])
    kept = drop_trades_outside_quotes(trades, quotes).collect()
    assert kept["price"].to_list() == [10.25, 9.875]


def test_t4_uses_the_quote_strictly_before_the_trade() -> None:
    quotes = make_quotes([ny(10, 0), ny(10, 1)], bid=[10.0, 20.0], ask=[10.125, 20.125])
    trades = make_trades([ny(10, 1), ny(10, 1, 0, 1)], price=[10.05, 10.05])
    kept = drop_trades_outside_quotes(trades, quotes).collect()
    # At 10:01:00 the 10:00 quote prevails (the 10:01 quote is not strictly before): kept.
    # At 10:01:00.000001 the 20-dollar quote prevails: 10.05 is far outside, dropped.
    assert kept["ts"].to_list() == [ny(10, 1)]


def test_t4_keeps_trades_without_a_prevailing_quote_and_matches_symbol_and_day() -> None:
    quotes = make_quotes(
        [ny(10, 0), ny(15, 0, day=date(2016, 10, 21))], symbol=["B", "A"], bid=10.0, ask=10.125
    )
    trades = make_trades([ny(10, 1)], price=[99.0])
    assert drop_trades_outside_quotes(trades, quotes).collect().height == 1


def test_t4_one_sided_prevailing_quote_is_not_judged() -> None:
    quotes = make_quotes([ny(10, 0)], bid=None, ask=10.125)
    trades = make_trades([ny(10, 1)], price=[99.0])
    assert drop_trades_outside_quotes(trades, quotes).collect().height == 1


# --- Q1, Q2, Q3 ----------------------------------------------------------------------------


def test_q1_merges_same_timestamp_quotes() -> None:
    stamp = ny(10, 0)
    quotes = make_quotes(
        [stamp, stamp, stamp, ny(10, 1)],
        bid=[10.0, 10.5, 11.0, 10.0],
        ask=[10.5, 11.0, 12.0, 10.5],
        bid_size=[100.0, 200.0, 300.0, 100.0],
        ask_size=[100.0, 100.0, 100.0, 100.0],
    )
    merged = merge_same_timestamp_quotes(quotes).collect()
    assert merged.columns == quotes.collect_schema().names()
    assert merged.select("ts", "bid_price", "bid_size", "ask_price", "ask_size").rows() == [
        (stamp, 10.5, 600.0, 11.0, 300.0),
        (ny(10, 1), 10.0, 100.0, 10.5, 100.0),
    ]


def test_q1_side_empty_in_every_merged_quote_stays_empty() -> None:
    stamp = ny(10, 0)
    quotes = make_quotes([stamp, stamp], bid=None, bid_size=None, ask=[10.5, 10.75])
    merged = merge_same_timestamp_quotes(quotes).collect()
    assert merged.select("bid_price", "bid_size", "ask_price").rows() == [(None, None, 10.625)]


def test_q2_drops_negative_and_zero_spreads() -> None:
    quotes = make_quotes(seconds(4), bid=[10.0, 10.0, 10.0, None], ask=[9.5, 10.0, 10.5, 10.5])
    kept = drop_negative_spreads(quotes).collect()
    assert kept.select("bid_price", "ask_price").rows() == [(10.0, 10.5), (None, 10.5)]


def test_q3_drops_spreads_above_50_times_the_days_median() -> None:
    # Median spread 0.25 → limit 12.5: a spread of 13 goes, exactly 12.5 stays.
    asks = [10.25] * 5 + [23.0, 22.5]
    kept = drop_large_spreads(make_quotes(seconds(7), bid=10.0, ask=asks)).collect()
    assert kept["ask_price"].to_list() == [10.25] * 5 + [22.5]


def test_q3_median_is_per_symbol() -> None:
    quotes = make_quotes(
        seconds(6),
        symbol=["A", "A", "A", "B", "B", "B"],
        bid=10.0,
        ask=[10.25, 10.25, 23.0, 30.0, 30.0, 30.0],
    )
    kept = drop_large_spreads(quotes).collect()
    assert kept["ask_price"].to_list() == [10.25, 10.25, 30.0, 30.0, 30.0]


# --- Q4 ------------------------------------------------------------------------------------


def test_q4_drops_a_mid_quote_outlier_and_keeps_the_rest() -> None:
    mids = [10.0 + 0.02 * (i % 3) for i in range(80)]
    mids[40] = 12.0
    quotes = make_quotes(seconds(80), bid=[m - 0.01 for m in mids], ask=[m + 0.01 for m in mids])
    kept = drop_mid_quote_outliers(quotes).collect()
    assert kept.height == 79
    assert seconds(80)[40] not in kept["ts"].to_list()


def test_q4_keeps_a_jump_that_persists() -> None:
    mids = [10.0 + 0.02 * (i % 3) for i in range(40)] + [11.0 + 0.02 * (i % 3) for i in range(40)]
    quotes = make_quotes(seconds(80), bid=[m - 0.01 for m in mids], ask=[m + 0.01 for m in mids])
    # The MAD of the day is large (two regimes), so no quote is 10 MADs from its neighbours.
    assert drop_mid_quote_outliers(quotes).collect().height == 80


def test_q4_zero_mad_drops_nothing_and_one_sided_quotes_are_kept() -> None:
    bids: list[Value] = [*([10.0] * 20), None, 30.0]
    quotes = make_quotes(seconds(22), bid=bids, ask=[10.5] * 20 + [10.5, 30.5])
    kept = drop_mid_quote_outliers(quotes).collect()
    assert kept.height == 22


def test_q4_window_must_be_even_and_positive() -> None:
    with pytest.raises(ParameterError):
        drop_mid_quote_outliers(make_quotes(seconds(2)), window=5)
    with pytest.raises(ParameterError):
        clean_taq_quotes(make_quotes(seconds(2)), window=0)


def excluded_median_reference(values: list[float], window: int) -> list[float | None]:
    """Slow, obviously correct loop: the median of the window of others around each value."""
    n = len(values)
    half = window // 2
    out: list[float | None] = []
    for i in range(n):
        if n == 1:
            out.append(None)
            continue
        if n <= window:
            others = values[:i] + values[i + 1 :]
        else:
            start = min(max(i - half, 0), n - window - 1)
            others = [values[j] for j in range(start, start + window + 1) if j != i]
        out.append(statistics.median(others))
    return out


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.sampled_from([1.0, 1.5, 2.0, 2.5, 3.0, 9.0]), min_size=1, max_size=130),
    window=st.sampled_from([2, 4, 10, 50]),
)
def test_excluded_median_matches_reference_loop(values: list[float], window: int) -> None:
    frame = pl.DataFrame({"group": ["g"] * len(values), "x": values})
    got = frame.select(excluded_median(pl.col("x"), window, ["group"]).alias("m"))["m"]
    assert got.to_list() == excluded_median_reference(values, window)


def test_excluded_median_does_not_cross_groups() -> None:
    frame = pl.DataFrame({"group": ["a"] * 3 + ["b"] * 3, "x": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]})
    got = frame.select(excluded_median(pl.col("x"), 2, ["group"]).alias("m"))["m"].to_list()
    assert got == [2.5, 2.0, 1.5, 25.0, 20.0, 15.0]


# --- pipelines: dropped counts are never silent --------------------------------------------


def test_clean_trades_counts_every_rule_per_symbol_day_including_zeros() -> None:
    trades = make_trades(
        [ny(9, 0), ny(10, 0), ny(10, 0), ny(10, 1), ny(10, 2), ny(10, 0, day=WINTER)],
        price=[45.0, 45.0, 45.5, 0.0, 45.0, 45.0],
        correction=["00", "00", "00", "00", "01", "00"],
    )
    cleaned = clean_taq_trades(trades)
    dropped = cleaned.dropped.collect()
    assert dropped.schema == DROPPED_SCHEMA
    assert cleaned.applied == ("P2", "P1", "P3", "T1", "T2", "T3")
    assert cleaned.skipped == ("T4",)
    assert dropped.rows() == [
        ("A", SUMMER, "P2", 1),
        ("A", SUMMER, "P1", 1),
        ("A", SUMMER, "P3", 0),
        ("A", SUMMER, "T1", 1),
        ("A", SUMMER, "T2", 0),
        ("A", SUMMER, "T3", 1),
        ("A", WINTER, "P2", 0),
        ("A", WINTER, "P1", 0),
        ("A", WINTER, "P3", 0),
        ("A", WINTER, "T1", 0),
        ("A", WINTER, "T2", 0),
        ("A", WINTER, "T3", 0),
    ]
    kept = cleaned.frame.collect()
    assert kept.select("ts", "price", "trade_count").rows() == [
        (ny(10, 0), 45.25, 2),
        (ny(10, 0, day=WINTER), 45.0, 1),
    ]
    assert_counts_add_up(trades, cleaned)


def test_clean_quotes_counts_add_up() -> None:
    quotes = make_quotes(
        [ny(9, 0), ny(10, 0), ny(10, 0), ny(10, 1), ny(10, 2), ny(10, 3)],
        bid=[45.0, 45.0, 45.0, 0.0, 45.1, 45.0],
        ask=[45.02, 45.02, 45.04, 45.02, 45.0, 46.5],
    )
    cleaned = clean_taq_quotes(quotes)
    assert cleaned.applied == QUOTE_RULES
    assert dict(cleaned.dropped.select("rule", "rows_dropped").collect().iter_rows()) == {
        "P2": 1,
        "P1": 1,
        "P3": 0,
        "Q2": 1,
        "Q3": 0,
        "Q1": 1,
        "Q4": 0,
    }
    assert_counts_add_up(quotes, cleaned)


@pytest.mark.parametrize(
    "name",
    [
        "EQY_US_ALL_TRADE_20161024",
        "ctm_20161201.csv",
        "wrds_trades_lowercase.csv",
        "EQY_US_ALL_BBO_20161024",
        "EQY_US_ALL_NBBO_20161201",
        "cqm_20161201.csv",
    ],
)
def test_counts_add_up_on_every_fixture(name: str) -> None:
    frame = fixture_frames(name)
    is_trades = "price" in frame.collect_schema().names()
    cleaned = clean_taq_trades(frame) if is_trades else clean_taq_quotes(frame)
    assert_counts_add_up(frame, cleaned)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["N", "P"]),
            st.integers(min_value=8 * 60, max_value=17 * 60),  # minute of the New York day
            st.sampled_from([0.0, 10.0, 10.5, 11.0]),
            st.sampled_from(["00", "01"]),
            st.sampled_from(["@", "O", "F"]),
        ),
        max_size=40,
    )
)
def test_trade_counts_add_up_for_any_input(
    rows: list[tuple[str, str, int, float, str, str]],
) -> None:
    stamps = [ny(minute // 60, minute % 60) for _, _, minute, _, _, _ in rows]
    trades = make_trades(
        stamps,
        symbol=[r[0] for r in rows],
        venue=[r[1] for r in rows],
        price=[r[3] for r in rows],
        correction=[r[4] for r in rows],
        conditions=[r[5] for r in rows],
    )
    quotes = make_quotes(
        [ny(9, 30), ny(12, 0)], symbol=["A", "B"], bid=10.0, ask=10.25, venue=["N", "P"]
    )
    assert_counts_add_up(trades, clean_taq_trades(trades, quotes))


def test_clean_taq_uses_cleaned_quotes_for_t4() -> None:
    # Raw quotes: the last one before the trade is a small P quote at 20 dollars, which would
    # make the 10.05 trade look absurd. Cleaning keeps only N (the largest quoted size): kept.
    quotes = make_quotes(
        [ny(10, 0), ny(10, 1)],
        venue=["N", "P"],
        bid=[10.0, 20.0],
        ask=[10.125, 20.125],
        bid_size=[5000.0, 100.0],
    )
    trades = make_trades([ny(10, 2)], price=[10.05])
    cleaned = clean_taq(trades, quotes)
    assert cleaned.trades is not None
    assert cleaned.quotes is not None
    assert cleaned.trades.frame.collect().height == 1
    assert clean_taq_trades(trades, quotes).frame.collect().height == 0
    assert cleaned.trades.applied == TRADE_RULES


def test_clean_taq_on_daily_fixtures() -> None:
    cleaned = clean_taq(
        fixture_frames("EQY_US_ALL_TRADE_20161024"), fixture_frames("EQY_US_ALL_BBO_20161024")
    )
    assert cleaned.trades is not None
    assert cleaned.quotes is not None
    trades = cleaned.trades.frame.collect()
    assert trades.select("symbol", "price", "size", "trade_count").rows() == [
        ("AAPL", 117.31, 100.0, 1),
        ("AAPL", 117.33, 200.0, 1),
        ("A", 45.93, 300.0, 2),
        ("A", 45.96, 500.0, 1),
        ("A", 46.02, 1000.0, 1),
    ]
    assert cleaned.quotes.frame.collect().height == 7


def test_rules_subset_runs_in_standard_order() -> None:
    trades = make_trades([ny(9, 0), ny(10, 0)], correction=["00", "01"])
    cleaned = clean_taq_trades(trades, rules=["t1", "P1"])
    assert cleaned.applied == ("P1", "T1")
    assert cleaned.frame.collect().height == 0
    assert cleaned.dropped.collect()["rule"].to_list() == ["P1", "T1"]


def test_no_rules_keeps_everything_with_an_empty_dropped_table() -> None:
    cleaned = clean_taq_quotes(make_quotes(seconds(2)), rules=[])
    assert cleaned.frame.collect().height == 2
    assert cleaned.dropped.collect().schema == DROPPED_SCHEMA
    assert cleaned.dropped.collect().height == 0


def test_rules_missing_their_column_are_skipped_not_silently_passed() -> None:
    bare = make_trades(seconds(2)).drop("venue", "conditions", "correction")
    cleaned = clean_taq_trades(bare)
    assert cleaned.applied == ("P2", "P1", "T3")
    assert cleaned.skipped == ("P3", "T1", "T2", "T4")


def test_unknown_rule_and_wrong_table_rule_raise() -> None:
    with pytest.raises(ParameterError) as info:
        clean_taq_trades(make_trades(seconds(1)), rules=["Q1"])
    assert "Q1" in str(info.value)
    with pytest.raises(ParameterError):
        clean_taq(make_trades(seconds(1)), rules=["X9"])


def test_clean_taq_splits_rules_between_tables() -> None:
    cleaned = clean_taq(make_trades(seconds(1)), make_quotes(seconds(1)), rules=["P1", "T1", "Q2"])
    assert cleaned.trades is not None
    assert cleaned.quotes is not None
    assert cleaned.trades.applied == ("P1", "T1")
    assert cleaned.quotes.applied == ("P1", "Q2")


def test_non_canonical_input_raises_schema_error() -> None:
    with pytest.raises(SchemaError):
        clean_taq_trades(pl.LazyFrame({"ts": [1]}))


def test_cleaning_is_lazy_and_keeps_canonical_columns() -> None:
    trades = fixture_frames("ctm_20161201.csv")
    cleaned = clean_taq_trades(trades)
    assert isinstance(cleaned.frame, pl.LazyFrame)
    assert isinstance(cleaned.dropped, pl.LazyFrame)
    assert cleaned.frame.collect_schema().names() == [
        *trades.collect_schema().names(),
        "trade_count",
    ]
    assert cleaned.frame.collect_schema()["trade_count"] == pl.UInt32


def test_cleaned_trades_and_quotes_collect_together() -> None:
    # Guards the input cache in the pipeline: all four frames in one query (T4 reads the
    # cleaned quotes) must not trip polars' common-subplan elimination.
    cleaned = clean_taq(
        fixture_frames("EQY_US_ALL_TRADE_20161024"), fixture_frames("EQY_US_ALL_BBO_20161024")
    )
    assert cleaned.trades is not None
    assert cleaned.quotes is not None
    frames = pl.collect_all(
        [cleaned.trades.frame, cleaned.trades.dropped, cleaned.quotes.frame, cleaned.quotes.dropped]
    )
    assert [frame.height for frame in frames] == [5, 14, 7, 14]
