from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.io import load
from mmflow.metrics.ofi import BAR_COLUMNS, order_flow_imbalance, quote_bars
from tests.conftest import data_path
from tests.helpers import BOOK_COLUMNS, canonical_schema, quote_ofi_totals

T0 = datetime(2024, 7, 1, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")
EVERY_MS = {"1s": 1_000, "1m": 60_000}

# (ts in ms after T0, symbol, bid_price, bid_size, ask_price, ask_size); None = empty.
Row = tuple[int, str, float | None, float | None, float | None, float | None]

QUOTE_SCHEMA: dict[str, pl.DataType] = dict(canonical_schema(*BOOK_COLUMNS))


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def ms_of(ts: datetime) -> int:
    return (ts - T0) // timedelta(milliseconds=1)


def make_quotes(rows: list[Row]) -> pl.LazyFrame:
    names = list(QUOTE_SCHEMA)
    data: dict[str, list[object]] = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    data["ts"] = [at(row[0]) for row in rows]
    return pl.LazyFrame(data, schema=QUOTE_SCHEMA)


def make_grid(cells: list[tuple[str, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"symbol": [c[0] for c in cells], "ts": [at(c[1]) for c in cells]},
        schema={"symbol": pl.String, "ts": UTC_NS},
    )


# --- slow, obviously correct references --------------------------------------------------------


def is_empty(row: Row) -> bool:
    return any(value is None for value in row[2:])


def is_crossed(row: Row) -> bool:
    _, _, bid, _, ask, _ = row
    return not is_empty(row) and bid is not None and ask is not None and bid > ask


def ofi_reference(rows: list[Row]) -> list[float]:
    """e_n per row: previous valid quote per symbol; clears reset, crossed rows are skipped."""
    previous: dict[str, tuple[float, float, float, float] | None] = {}
    events = []
    for row in rows:
        symbol = row[1]
        if is_empty(row):
            events.append(0.0)
            previous[symbol] = None
            continue
        if is_crossed(row):
            events.append(0.0)
            continue
        bid, bid_size, ask, ask_size = (float(v) for v in row[2:] if v is not None)
        last = previous.get(symbol)
        if last is None:
            events.append(0.0)
        else:
            last_bid, last_bid_size, last_ask, last_ask_size = last
            events.append(
                (bid_size if bid >= last_bid else 0.0)
                - (last_bid_size if bid <= last_bid else 0.0)
                - (ask_size if ask <= last_ask else 0.0)
                + (last_ask_size if ask >= last_ask else 0.0)
            )
        previous[symbol] = (bid, bid_size, ask, ask_size)
    return events


@dataclass
class Bar:
    ofi: float | None
    ofi_normalized: float | None
    mid_close: float | None
    spread: float | None
    depth: float | None
    quote_imbalance: float | None
    quote_events: int
    crossed_quotes: int


def bar_reference(mine: list[tuple[Row, float]], start: int, end: int) -> Bar:
    """One bar [start, end) of one symbol, by brute force over the symbol's state intervals.

    ``mine`` holds the symbol's quotes in time order with their reference e_n.
    """
    in_bar = [(row, e) for row, e in mine if start <= row[0] < end]
    ofi: float | None = None
    if mine and end > mine[0][0][0] and start <= mine[-1][0][0]:
        ofi = sum(e for _, e in in_bar)
    states = [row for row, _ in mine if not is_crossed(row)]  # crossed rows do not exist here
    weight = spread = depth = imbalance = imbalance_weight = 0.0
    for i, row in enumerate(states):
        if is_empty(row):
            continue
        until = states[i + 1][0] if i + 1 < len(states) else math.inf
        overlap = max(0.0, min(end, until) - max(start, row[0]))
        _, _, bid, bid_size, ask, ask_size = row
        assert bid is not None
        assert bid_size is not None
        assert ask is not None
        assert ask_size is not None
        weight += overlap
        spread += overlap * (ask - bid)
        depth += overlap * (bid_size + ask_size)
        if bid_size + ask_size > 0:
            imbalance_weight += overlap
            imbalance += overlap * (bid_size - ask_size) / (bid_size + ask_size)
    mids = [
        (row[2] + row[4]) / 2
        for row, _ in mine
        if row[0] < end and not is_empty(row) and not is_crossed(row)
        if row[2] is not None and row[4] is not None
    ]
    mean_depth = depth / weight if weight > 0 else None
    return Bar(
        ofi=ofi,
        ofi_normalized=ofi / mean_depth if ofi is not None and mean_depth else None,
        mid_close=mids[-1] if mids else None,
        spread=spread / weight if weight > 0 else None,
        depth=mean_depth,
        quote_imbalance=imbalance / imbalance_weight if imbalance_weight > 0 else None,
        quote_events=len(in_bar),
        crossed_quotes=sum(is_crossed(row) for row, _ in in_bar),
    )


def regular_grid_reference(rows: list[Row], every_ms: int) -> list[tuple[str, int]]:
    cells = []
    for symbol in sorted({row[1] for row in rows}):
        times = [row[0] for row in rows if row[1] == symbol]
        first, last = min(times) // every_ms, max(times) // every_ms
        cells += [(symbol, k * every_ms) for k in range(first, last + 1)]
    return cells


def assert_bars_match(out: pl.DataFrame, rows: list[Row], every_ms: int) -> None:
    by_symbol: dict[str, list[tuple[Row, float]]] = {}
    for row, event in zip(rows, ofi_reference(rows), strict=True):
        by_symbol.setdefault(row[1], []).append((row, event))
    for got in out.iter_rows(named=True):
        start = ms_of(got["ts"])
        want = bar_reference(by_symbol.get(got["symbol"], []), start, start + every_ms)
        for name, value in vars(want).items():
            if value is None or got[name] is None:
                assert got[name] == value, (name, got, want)
            else:
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, got, want)


# --- order_flow_imbalance: metrics.md b.3 -------------------------------------------------------

# metrics.md b.3 (tick 0.01): each event changes one side, the other side is repeated.
B3_ROWS: list[Row] = [
    (0, "X", 100.00, 10.0, 100.02, 8.0),  # n0 seeds
    (1, "X", 100.00, 15.0, 100.02, 8.0),  # n1 bid 100.00×15: +5
    (2, "X", 100.01, 3.0, 100.02, 8.0),  # n2 bid 100.01×3: +3
    (3, "X", 100.01, 3.0, 100.02, 5.0),  # n3 ask 100.02×5: +3
    (4, "X", 100.00, 20.0, 100.02, 5.0),  # n4 bid 100.00×20: −3
    (5, "X", 100.00, 20.0, 100.01, 4.0),  # n5 ask 100.01×4: −4
    (6, "X", 100.00, 20.0, 100.03, 7.0),  # n6 ask 100.03×7: +4
]


def test_ofi_metrics_md_b3_vector_gives_each_event_and_total_plus_8() -> None:
    out = order_flow_imbalance(make_quotes(B3_ROWS)).collect()
    assert out["ofi_event"].to_list() == [0.0, 5.0, 3.0, 3.0, -3.0, -4.0, 4.0]
    assert out["valid_quote"].to_list() == [True] * 7
    assert out["crossed"].to_list() == [False] * 7
    assert out.columns == [*QUOTE_SCHEMA, "valid_quote", "crossed", "ofi_event"]
    assert out.schema["ofi_event"] == pl.Float64
    assert_frame_equal(
        quote_ofi_totals(make_quotes(B3_ROWS)),
        pl.DataFrame(
            {"symbol": ["X"], "ofi": [8.0], "quote_events": [7], "crossed_quotes": [0]},
            schema={
                "symbol": pl.String,
                "ofi": pl.Float64,
                "quote_events": pl.UInt32,
                "crossed_quotes": pl.UInt32,
            },
        ),
    )
    bars = quote_bars(make_quotes(B3_ROWS), every="1s").collect()
    assert bars.select("ofi", "quote_events", "crossed_quotes").rows() == [(8.0, 7, 0)]


def test_ofi_b3_vector_interleaved_with_another_symbol_is_unchanged() -> None:
    other: list[Row] = [(i, "Y", 50.0 - i, 1.0 + i, 51.0, 2.0) for i in range(7)]
    rows = sorted(B3_ROWS + other, key=lambda r: r[0])
    out = order_flow_imbalance(make_quotes(rows)).collect()
    x = out.filter(pl.col("symbol") == "X")["ofi_event"].to_list()
    assert x == [0.0, 5.0, 3.0, 3.0, -3.0, -4.0, 4.0]
    assert out.filter(pl.col("symbol") == "Y")["ofi_event"].to_list() == ofi_reference(other)


@pytest.mark.parametrize(
    "clear",
    [
        (1, "X", None, None, 100.02, 8.0),  # empty bid
        (1, "X", 100.00, 10.0, None, None),  # empty ask
        (1, "X", None, None, None, None),  # both sides empty
        (1, "X", 100.00, None, 100.02, 8.0),  # a price without a size
    ],
)
def test_ofi_after_a_book_clear_the_next_quote_only_seeds(clear: Row) -> None:
    rows: list[Row] = [
        (0, "X", 100.00, 10.0, 100.02, 8.0),
        clear,
        (2, "X", 250.00, 900.0, 250.50, 700.0),  # far away: no giant jump
        (3, "X", 250.00, 901.0, 250.50, 700.0),  # +1 against the new book
    ]
    out = order_flow_imbalance(make_quotes(rows)).collect()
    assert out["ofi_event"].to_list() == [0.0, 0.0, 0.0, 1.0]
    assert out["valid_quote"].to_list() == [True, False, True, True]
    assert out["crossed"].to_list() == [False] * 4


def test_ofi_crossed_quotes_are_skipped_flagged_and_counted() -> None:
    rows: list[Row] = [
        (0, "X", 10.5, 1.0, 10.0, 1.0),  # crossed first row: does not seed
        (100, "X", 10.0, 5.0, 10.2, 4.0),  # seeds
        (200, "X", 10.3, 9.0, 10.1, 9.0),  # crossed: skipped
        (300, "X", 10.0, 7.0, 10.2, 4.0),  # against (10.0×5 / 10.2×4): +2
        (400, "X", 10.1, 1.0, 10.1, 1.0),  # locked (bid = ask) is valid: bid up +1, ask down −1
    ]
    out = order_flow_imbalance(make_quotes(rows)).collect()
    assert out["crossed"].to_list() == [True, False, True, False, False]
    assert out["valid_quote"].to_list() == [False, True, False, True, True]
    assert out["ofi_event"].to_list() == [0.0, 0.0, 0.0, 2.0, 0.0]
    assert out["ofi_event"].to_list() == ofi_reference(rows)
    bars = quote_bars(make_quotes(rows), every="1s").collect()
    assert bars.select("ofi", "quote_events", "crossed_quotes").row(0) == (2.0, 5, 2)
    # The crossed row at 200 ms neither ends nor replaces the standing quote: spread over
    # [100, 400) is 0.2, over [400, 1000) 0.0, weighted by 300 and 600 ms.
    assert bars["spread"][0] == pytest.approx((0.3 * 0.2 + 0.6 * 0.0) / 0.9, abs=1e-12)
    assert bars["mid_close"][0] == 10.1
    assert quote_ofi_totals(make_quotes(rows))["crossed_quotes"].to_list() == [2]


def test_ofi_unchanged_quotes_and_repeated_timestamps_give_zero() -> None:
    rows: list[Row] = [(0, "X", 10.0, 3.0, 10.1, 2.0)] * 4
    out = order_flow_imbalance(make_quotes(rows)).collect()
    assert out["ofi_event"].to_list() == [0.0] * 4


def test_ofi_takes_integer_and_nan_inputs() -> None:
    quotes = pl.LazyFrame(
        {
            "ts": [0, 1, 2, 3],
            "symbol": ["X"] * 4,
            "bid_price": [10, 10, 10, 10],
            "bid_size": [1, 2, 3, 4],
            "ask_price": [11.0, float("nan"), 11.0, 11.0],
            "ask_size": [1, 1, 1, 1],
        }
    )
    out = order_flow_imbalance(quotes).collect()
    assert out["valid_quote"].to_list() == [True, False, True, True]
    assert out["ofi_event"].to_list() == [0.0, 0.0, 0.0, 1.0]


def test_ofi_without_quotes_is_empty() -> None:
    empty = make_quotes([])
    assert order_flow_imbalance(empty).collect().height == 0
    assert quote_ofi_totals(empty).height == 0
    bars = quote_bars(empty, every="1m").collect()
    assert bars.height == 0
    assert bars.columns == list(BAR_COLUMNS)


def test_ofi_missing_quote_column_raises_schema_error() -> None:
    with pytest.raises(SchemaError, match="quotes are missing column"):
        order_flow_imbalance(make_quotes(B3_ROWS).drop("ask_size"))


# --- quote_bars: hand-computed tables -----------------------------------------------------------

BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": UTC_NS,
    "ofi": pl.Float64(),
    "ofi_normalized": pl.Float64(),
    "mid_close": pl.Float64(),
    "spread": pl.Float64(),
    "depth": pl.Float64(),
    "quote_imbalance": pl.Float64(),
    "quote_events": pl.UInt32(),
    "crossed_quotes": pl.UInt32(),
}


def bars_table(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


def test_quote_bars_time_weights_include_the_quote_prevailing_before_the_bar() -> None:
    rows: list[Row] = [
        (0, "X", 10.0, 3.0, 11.0, 1.0),  # spread 1, depth 4, imbalance 0.5
        (30_000, "X", 10.0, 1.0, 12.0, 1.0),  # +1 − 3 (bid) + 1 (ask up) = −1; spread 2
        (90_000, "X", 11.0, 2.0, 12.0, 6.0),  # +2 (bid up) −6 +1 (ask same) = −3; spread 1
        (150_000, "X", None, None, 12.0, 6.0),  # clear: no weight from here
    ]
    out = quote_bars(make_quotes(rows), every="1m").collect()
    expected = bars_table(
        [
            ("X", at(0), -1.0, -1.0 / 3.0, 11.0, 1.5, 3.0, 0.25, 2, 0),
            # [60, 90) s: (10 / 12 × 1/1), [90, 120) s: (11 / 12 × 2/6).
            ("X", at(60_000), -3.0, -3.0 / 5.0, 11.5, 1.5, 5.0, -0.25, 1, 0),
            # [120, 150) s the 90 s quote, then the clear: weight 30 s only.
            ("X", at(120_000), 0.0, 0.0, 11.5, 1.0, 8.0, -0.5, 1, 0),
        ]
    )
    assert_frame_equal(out, expected)


def test_quote_bars_zero_size_quotes_have_null_normalized_ofi_and_imbalance() -> None:
    rows: list[Row] = [
        (0, "X", 10.0, 0.0, 10.5, 0.0),
        (500, "X", 10.0, 0.0, 10.5, 0.0),
        (61_000, "X", 10.0, 4.0, 10.5, 0.0),  # depth > 0 from here
    ]
    out = quote_bars(make_quotes(rows), every="1m").collect()
    expected = bars_table(
        [
            ("X", at(0), 0.0, None, 10.25, 0.5, 0.0, None, 2, 0),
            ("X", at(60_000), 4.0, 4.0 / (4.0 * 59 / 60), 10.25, 0.5, 4.0 * 59 / 60, 1.0, 1, 0),
        ]
    )
    assert_frame_equal(out, expected)


def test_quote_bars_one_quote_only_gives_one_bar_weighted_by_its_own_time() -> None:
    out = quote_bars(make_quotes([(45_000, "X", 99.0, 2.0, 101.0, 6.0)]), every="1m").collect()
    expected = bars_table([("X", at(0), 0.0, 0.0, 100.0, 2.0, 8.0, -0.5, 1, 0)])
    assert_frame_equal(out, expected)
    assert quote_ofi_totals(make_quotes([(45_000, "X", 99.0, 2.0, 101.0, 6.0)]))["ofi"][0] == 0


def test_quote_bars_one_empty_quote_only_has_no_values() -> None:
    out = quote_bars(make_quotes([(0, "X", None, None, 10.0, 1.0)]), every="1m").collect()
    assert_frame_equal(out, bars_table([("X", at(0), 0.0, None, None, None, None, None, 1, 0)]))


def test_quote_bars_on_a_grid_carry_the_prevailing_quote_and_keep_grid_order() -> None:
    rows: list[Row] = [
        (61_000, "X", 10.0, 1.0, 10.2, 3.0),
        (125_000, "X", 10.0, 2.0, 10.2, 3.0),  # +1
        (130_000, "Y", 5.0, 1.0, 5.5, 1.0),
    ]
    grid = make_grid(
        [
            ("X", 240_000),  # after the last X quote: carried forward, ofi unknown
            ("X", 0),  # before the first X quote: nothing known
            ("X", 60_000),
            ("Z", 60_000),  # a symbol without quotes
            ("X", 120_000),
            ("Y", 60_000),
        ]
    )
    out = quote_bars(make_quotes(rows), every="1m", grid=grid).collect()
    expected = bars_table(
        [
            ("X", at(240_000), None, None, 10.1, 0.2, 5.0, -0.2, 0, 0),
            ("X", at(0), None, None, None, None, None, None, 0, 0),
            ("X", at(60_000), 0.0, 0.0, 10.1, 0.2, 4.0, -0.5, 1, 0),
            ("Z", at(60_000), None, None, None, None, None, None, 0, 0),
            ("X", at(120_000), 1.0, 1.0 / (4.0 * 5 / 60 + 5.0 * 55 / 60), 10.1, 0.2,
             4.0 * 5 / 60 + 5.0 * 55 / 60, -0.5 * 5 / 60 - 0.2 * 55 / 60, 1, 0),
            ("Y", at(60_000), None, None, None, None, None, None, 0, 0),
        ]
    )  # fmt: skip
    assert_frame_equal(out, expected, rel_tol=1e-12)
    assert_bars_match(out, rows, 60_000)


def test_quote_bars_grid_bars_between_quotes_have_zero_ofi() -> None:
    rows: list[Row] = [(0, "X", 10.0, 1.0, 10.2, 1.0), (180_000, "X", 10.0, 2.0, 10.2, 1.0)]
    out = quote_bars(make_quotes(rows), every="1m").collect()
    assert out["ofi"].to_list() == [0.0, 0.0, 0.0, 1.0]
    assert out["quote_events"].to_list() == [1, 0, 0, 1]
    assert out["spread"].round(12).to_list() == [0.2] * 4
    assert out["depth"].to_list() == [2.0, 2.0, 2.0, 3.0]


def test_quote_bars_same_timestamp_the_last_quote_stands() -> None:
    rows: list[Row] = [
        (0, "X", 10.0, 1.0, 10.5, 1.0),
        (0, "X", 10.0, 1.0, 11.0, 3.0),  # replaces the first at the same instant
    ]
    out = quote_bars(make_quotes(rows), every="1s").collect()
    assert out.select("mid_close", "spread", "depth", "quote_events").row(0) == (10.5, 1.0, 4.0, 2)


@pytest.mark.parametrize("every", ["", "1", "m", "-1m", "0m", "1x", "one minute"])
def test_quote_bars_bad_bar_length_raises_parameter_error(every: str) -> None:
    with pytest.raises(ParameterError, match="bar length") as info:
        quote_bars(make_quotes(B3_ROWS), every=every)
    assert "\n" not in str(info.value)


def test_quote_bars_grid_without_ts_raises_parameter_error() -> None:
    with pytest.raises(ParameterError, match="grid must have columns symbol and ts"):
        quote_bars(make_quotes(B3_ROWS), every="1m", grid=pl.LazyFrame({"symbol": ["X"]}))


def test_quote_bars_eager_equals_lazy_and_streaming() -> None:
    rows: list[Row] = [
        (i * 700, "AB"[i % 2], 10.0 + (i % 3) * 0.5, 1.0 + i % 4, 11.0 + (i % 2), 2.0)
        for i in range(40)
    ]
    rows[7] = (rows[7][0], rows[7][1], None, None, 11.0, 2.0)
    rows[9] = (rows[9][0], rows[9][1], 12.0, 1.0, 11.0, 2.0)
    lazy = quote_bars(make_quotes(rows), every="1s")
    eager = quote_bars(make_quotes(rows).collect().lazy(), every="1s").collect()
    assert_frame_equal(lazy.collect(), eager)
    assert_frame_equal(lazy.collect(engine="streaming"), eager)
    events = order_flow_imbalance(make_quotes(rows))
    assert_frame_equal(events.collect(engine="streaming"), events.collect())
    grid = make_grid([("A", 0), ("B", 5_000), ("C", 1_000)])
    on_grid = quote_bars(make_quotes(rows), every="1s", grid=grid)
    assert_frame_equal(on_grid.collect(engine="streaming"), on_grid.collect())


# --- hypothesis: reference loops and invariants -------------------------------------------------


def gaps_ms(every_ms: int) -> list[int]:
    """Gaps between quotes: ties, a few ms, within a bar, to the bar edge, across several bars."""
    return [0, 0, 1, 7, every_ms // 4, every_ms * 3 // 4, every_ms - 1, every_ms, 3 * every_ms]


@st.composite
def quote_rows(draw: st.DrawFn, symbols: str = "ABC", every_ms: int = 1_000) -> list[Row]:
    """Quotes of several symbols interleaved in time order: valid, locked, crossed, empty."""
    n = draw(st.integers(min_value=0, max_value=30))
    rows: list[Row] = []
    ms = draw(st.integers(min_value=0, max_value=2 * every_ms))
    for _ in range(n):
        ms += draw(st.sampled_from(gaps_ms(every_ms)))
        symbol = draw(st.sampled_from(symbols))
        bid = draw(st.sampled_from([99.0, 99.5, 100.0, 100.5]))
        ask = bid + draw(st.sampled_from([-0.5, 0.0, 0.5, 0.5, 1.0]))
        sizes = st.sampled_from([0.0, 1.0, 2.5, 10.0, 0.3])
        bid_size, ask_size = draw(sizes), draw(sizes)
        kind = draw(st.sampled_from(["quote"] * 6 + ["no bid", "no ask", "none"]))
        if kind == "none":
            rows.append((ms, symbol, None, None, None, None))
        elif kind == "no bid":
            rows.append((ms, symbol, None, None, ask, ask_size))
        elif kind == "no ask":
            rows.append((ms, symbol, bid, bid_size, None, None))
        else:
            rows.append((ms, symbol, bid, bid_size, ask, ask_size))
    return rows


@st.composite
def bar_cases(draw: st.DrawFn, symbols: str = "ABC") -> tuple[str, list[Row]]:
    """A bar length (1s or 1m) and quotes whose gaps are scaled to it."""
    every = draw(st.sampled_from(list(EVERY_MS)))
    return every, draw(quote_rows(symbols, EVERY_MS[every]))


@settings(max_examples=40, deadline=None)
@given(rows=quote_rows())
def test_ofi_event_matches_reference_loop(rows: list[Row]) -> None:
    out = order_flow_imbalance(make_quotes(rows)).collect()
    assert out["ofi_event"].to_list() == pytest.approx(ofi_reference(rows), abs=1e-12)
    assert out["crossed"].to_list() == [is_crossed(r) for r in rows]
    assert out["valid_quote"].to_list() == [not is_empty(r) and not is_crossed(r) for r in rows]


@settings(max_examples=30, deadline=None)
@given(case=bar_cases())
def test_quote_bars_match_reference_loop(case: tuple[str, list[Row]]) -> None:
    every, rows = case
    every_ms = EVERY_MS[every]
    out = quote_bars(make_quotes(rows), every=every).collect()
    cells = [(symbol, ms_of(ts)) for symbol, ts in out.select("symbol", "ts").iter_rows()]
    assert cells == regular_grid_reference(rows, every_ms)
    assert_bars_match(out, rows, every_ms)


@settings(max_examples=25, deadline=None)
@given(case=bar_cases(), order=st.permutations(range(8)))
def test_quote_bars_on_a_grid_match_reference_loop(
    case: tuple[str, list[Row]], order: list[int]
) -> None:
    every, rows = case
    every_ms = EVERY_MS[every]
    times = [r[0] for r in rows] or [0]
    first, last = min(times) // every_ms - 2, max(times) // every_ms + 2
    step = max(1, (last - first) // 6)  # a sparse grid: bars with and without quotes
    cells = [(s, k * every_ms) for s in "ABD" for k in range(first, last + 1, step)]
    cells = [cells[i] for i in order if i < len(cells)] + cells[len(order) :]
    out = quote_bars(make_quotes(rows), every=every, grid=make_grid(cells)).collect()
    got = [(s, ms_of(ts)) for s, ts in out.select("symbol", "ts").rows()]
    assert got == cells
    assert_bars_match(out, rows, every_ms)


@settings(max_examples=25, deadline=None)
@given(case=bar_cases(symbols="ABCD"))
def test_quote_bars_ofi_sums_to_total_ofi_for_every_symbol(case: tuple[str, list[Row]]) -> None:
    every, rows = case
    quotes = make_quotes(rows)
    sums = (
        quote_bars(quotes, every=every).group_by("symbol").agg(pl.col("ofi", "quote_events").sum())
    )
    total, bars = quote_ofi_totals(quotes), sums.collect()
    joined = total.join(bars, on="symbol", suffix="_bars")
    assert joined.height == total.height == len({r[1] for r in rows})
    for ofi, ofi_bars in joined.select("ofi", "ofi_bars").rows():
        assert ofi_bars == pytest.approx(ofi, abs=1e-9)
    assert joined["quote_events"].to_list() == joined["quote_events_bars"].to_list()
    assert joined["quote_events"].sum() == len(rows)


@settings(max_examples=15, deadline=None)
@given(
    rows=quote_rows(),
    rank=st.permutations("ABC"),
    split=st.integers(min_value=0, max_value=30),
)
def test_quote_metrics_do_not_depend_on_interleaving_or_concatenation(
    rows: list[Row], rank: list[str], split: int
) -> None:
    # Same per-symbol sequences, other order of symbols at equal timestamps.
    permuted = sorted(rows, key=lambda r: (r[0], rank.index(r[1])))
    base = quote_bars(make_quotes(rows), every="1s").collect()
    assert_frame_equal(quote_bars(make_quotes(permuted), every="1s").collect(), base)
    halves = pl.concat([make_quotes(rows[:split]), make_quotes(rows[split:])])
    assert_frame_equal(quote_bars(halves, every="1s").collect(), base)
    by_symbol = pl.concat(
        [
            make_quotes([r for r in rows if r[1] == "A"]),
            make_quotes([r for r in rows if r[1] != "A"]),
        ]
    )
    assert_frame_equal(quote_bars(by_symbol, every="1s").collect(), base)
    events = order_flow_imbalance(make_quotes(rows)).collect().sort("symbol", maintain_order=True)
    for other in (permuted, rows[:split] + rows[split:]):
        again = (
            order_flow_imbalance(make_quotes(other)).collect().sort("symbol", maintain_order=True)
        )
        assert_frame_equal(again, events)


# --- real files ---------------------------------------------------------------------------------


def bar_ofi_reference(rows: list[tuple[int, str, Row]], bar_ns: int) -> dict[int, float]:
    """Bar start (ns) → Σ e_n, from (ts ns, symbol, quote) rows in time order."""
    events = ofi_reference([quote for _, _, quote in rows])
    bars: dict[int, float] = {}
    for (ts, _, _), event in zip(rows, events, strict=True):
        start = ts // bar_ns * bar_ns
        bars[start] = bars.get(start, 0.0) + event
    return bars


def assert_bar_ofi_matches(quotes: pl.LazyFrame, reference: dict[int, float], rows: int) -> None:
    out = quote_bars(quotes.sort("ts", maintain_order=True), every="1m").collect()
    starts = out["ts"].dt.epoch("ns").to_list()
    first, last = min(reference), max(reference)
    assert starts == list(range(first, last + 1, 60 * 10**9))
    got = out["ofi"].to_list()
    want = [reference.get(start, 0.0) for start in starts]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)
    assert any(value != 0 for value in want)
    assert out["quote_events"].sum() == rows


def test_quote_bars_ofi_on_tardis_quotes_matches_csv_loop() -> None:
    path = data_path("tardis", "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz")
    rows = []
    with gzip.open(path, "rt", newline="") as handle:
        for record in csv.DictReader(handle):
            ts = int(record["local_timestamp"]) * 1_000
            fields = (
                record["bid_price"],
                record["bid_amount"],
                record["ask_price"],
                record["ask_amount"],
            )
            bid, bid_size, ask, ask_size = (float(v) if v else None for v in fields)
            rows.append((ts, record["symbol"], (0, record["symbol"], bid, bid_size, ask, ask_size)))
    rows.sort(key=lambda r: r[0])
    quotes = load([str(path)])[0].frames.quotes
    assert quotes is not None
    assert_bar_ofi_matches(quotes, bar_ofi_reference(rows, 60 * 10**9), len(rows))


def test_quote_bars_ofi_on_databento_mbp1_matches_csv_loop() -> None:
    path = data_path(
        "databento", "nautilus_trader", "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv"
    )
    undef = 9223372036854775807
    rows = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            if record["action"] == "T":
                continue
            bid_px, ask_px = int(record["bid_px_00"]), int(record["ask_px_00"])
            bid = None if bid_px == undef else bid_px * 1e-9
            ask = None if ask_px == undef else ask_px * 1e-9
            bid_size = None if bid is None else float(record["bid_sz_00"])
            ask_size = None if ask is None else float(record["ask_sz_00"])
            quote: Row = (0, record["symbol"], bid, bid_size, ask, ask_size)
            rows.append((int(record["ts_recv"]), record["symbol"], quote))
    rows.sort(key=lambda r: r[0])
    quotes = load([str(path)])[0].frames.quotes
    assert quotes is not None
    assert_bar_ofi_matches(quotes, bar_ofi_reference(rows, 60 * 10**9), len(rows))
