"""The faster metric kernels (issue 11) give the results of the implementations they replace.

Each restructured kernel is compared, on random multi-instrument inputs (interleaved symbols,
venues including a null one, same-timestamp rows, book clears, crossed and NaN quotes), with a
verbatim copy of its previous implementation kept under ``tests/reference``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.metrics import impact, ofi, vpin
from tests.helpers import BOOK_COLUMNS, canonical_schema
from tests.reference import impact_before, ofi_before, vpin_before

T0 = datetime(2024, 7, 1, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")
GAPS_MS = [0, 0, 1, 7, 250, 999, 1_000, 3_000, 60_000, 200_000]
PRICES = [99.0, 99.5, 100.0, 100.5, float("nan")]
SIZES = [0.0, 1.0, 2.5, 10.0, 0.3, 7.0]


@st.composite
def quote_frames(draw: st.DrawFn) -> pl.DataFrame:
    """Quotes of several instruments interleaved in time order, with and without venues."""
    n = draw(st.integers(min_value=0, max_value=40))
    with_venue = draw(st.booleans())
    ms = draw(st.integers(min_value=0, max_value=120_000))
    rows: list[dict[str, object]] = []
    for _ in range(n):
        ms += draw(st.sampled_from(GAPS_MS))
        bid = draw(st.sampled_from(PRICES))
        ask = bid + draw(st.sampled_from([-0.5, 0.0, 0.5, 0.5, 1.0]))
        kind = draw(st.sampled_from(["quote"] * 6 + ["no bid", "no ask", "none"]))
        row: dict[str, object] = {
            "ts": T0 + timedelta(milliseconds=ms),
            "symbol": draw(st.sampled_from("ABC")),
            "bid_price": None if kind in ("none", "no bid") else bid,
            "bid_size": None if kind in ("none", "no bid") else draw(st.sampled_from(SIZES)),
            "ask_price": None if kind in ("none", "no ask") else ask,
            "ask_size": None if kind in ("none", "no ask") else draw(st.sampled_from(SIZES)),
        }
        if with_venue:
            row["venue"] = draw(st.sampled_from(["X", "Y", None]))
        rows.append(row)
    schema: dict[str, pl.DataType] = dict(canonical_schema(*BOOK_COLUMNS))
    if with_venue:
        schema["venue"] = pl.String()
    return pl.DataFrame(rows, schema=schema, orient="row")


def assert_same(new: pl.DataFrame, old: pl.DataFrame) -> None:
    """Equal columns, order and counts; floats to 1e-9 relative (running sums are re-based)."""
    assert_frame_equal(new, old, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(quotes=quote_frames())
def test_order_flow_imbalance_equals_the_previous_kernel(quotes: pl.DataFrame) -> None:
    new = ofi.order_flow_imbalance(quotes.lazy()).collect()
    old = ofi_before.order_flow_imbalance(quotes.lazy()).collect()
    assert_frame_equal(new, old, check_exact=True)  # the same arithmetic on the same rows


@settings(max_examples=60, deadline=None)
@given(
    quotes=quote_frames(),
    every=st.sampled_from(["1s", "1m", "5m"]),
    max_age=st.sampled_from([None, "500ms", "2m"]),
    on_grid=st.booleans(),
    data=st.data(),
)
def test_quote_bars_equal_the_previous_kernel(
    quotes: pl.DataFrame, every: str, max_age: str | None, on_grid: bool, data: st.DataObject
) -> None:
    grid: pl.LazyFrame | None = None
    if on_grid:
        # Bars of the quotes' instruments and of one without quotes, in a shuffled order.
        keys = [c for c in ("venue", "symbol") if c in quotes.columns]
        cells = quotes.select(*keys, pl.col("ts").dt.truncate(every)).unique()
        extra = pl.DataFrame(
            {"symbol": ["Z"], "ts": [T0]}, schema={"symbol": pl.String(), "ts": UTC_NS}
        )
        if "venue" in keys:
            extra = extra.with_columns(pl.lit("X").alias("venue")).select(*keys, "ts")
        cells = pl.concat([cells, extra])
        order = data.draw(st.permutations(range(cells.height)))
        grid = cells[list(order)].lazy()
    new = ofi.quote_bars(quotes.lazy(), every=every, grid=grid, max_age=max_age).collect()
    old = ofi_before.quote_bars(quotes.lazy(), every=every, grid=grid, max_age=max_age).collect()
    assert_same(new, old)


COSTS = ("effective_spread", "realized_spread", "price_impact")
COST_VALUES = [None, 0.0, 0.01, -0.02, 0.3, float("nan"), float("inf"), 1e-7]


@st.composite
def trade_frames(draw: st.DrawFn) -> pl.DataFrame:
    """Trades of several instruments interleaved in time order, with costs, maybe sessions."""
    n = draw(st.integers(min_value=0, max_value=40))
    with_venue, with_session = draw(st.booleans()), draw(st.booleans())
    ms = draw(st.integers(min_value=0, max_value=120_000))
    rows: list[dict[str, object]] = []
    for _ in range(n):
        ms += draw(st.sampled_from(GAPS_MS))
        row: dict[str, object] = {
            "ts": T0 + timedelta(milliseconds=ms),
            "symbol": draw(st.sampled_from("ABC")),
            "price": draw(st.sampled_from([10.0, 10.01, 10.02, 9.99, 10.5, None, float("nan")])),
            "size": draw(st.sampled_from([1.0, 2.0, 0.5, 0.0, -1.0, None, 100.0])),
        }
        for name in COSTS:
            row[name] = draw(st.sampled_from(COST_VALUES))
            row[f"{name}_bps"] = draw(st.sampled_from(COST_VALUES))
        if with_venue:
            row["venue"] = draw(st.sampled_from(["X", "Y", None]))
        if with_session:
            row["session"] = draw(st.sampled_from(["am", "pm"]))
        rows.append(row)
    schema: dict[str, pl.DataType] = {
        "ts": UTC_NS,
        "symbol": pl.String(),
        "price": pl.Float64(),
        "size": pl.Float64(),
    }
    for name in COSTS:
        schema[name] = pl.Float64()
        schema[f"{name}_bps"] = pl.Float64()
    if with_venue:
        schema["venue"] = pl.String()
    if with_session:
        schema["session"] = pl.String()
    return pl.DataFrame(rows, schema=schema, orient="row")


@settings(max_examples=60, deadline=None)
@given(trades=trade_frames(), every=st.sampled_from(["1s", "1m", "5m"]))
def test_cost_bars_and_roll_spread_equal_the_previous_kernels(
    trades: pl.DataFrame, every: str
) -> None:
    new = impact.cost_bars(trades.lazy(), every=every).collect()
    old = impact_before.cost_bars(trades.lazy(), every=every).collect()
    assert_same(new, old)
    new = impact.roll_spread(trades.lazy(), every=every).collect()
    old = impact_before.roll_spread(trades.lazy(), every=every).collect()
    assert_same(new, old)


@settings(max_examples=60, deadline=None)
@given(
    trades=trade_frames(),
    signs=st.lists(st.sampled_from([1, -1, 0, None]), min_size=40, max_size=40),
    bucket_volume=st.sampled_from([None, 1.0, 2.5, 7.0]),
    buckets_per_day=st.sampled_from([1, 3, 50]),
    window=st.sampled_from([1, 2, 5]),
    include_partial=st.booleans(),
    max_buckets=st.sampled_from([None, 10_000]),
    every=st.sampled_from(["1s", "1m"]),
)
def test_vpin_equals_the_previous_kernel(
    trades: pl.DataFrame,
    signs: list[int | None],
    bucket_volume: float | None,
    buckets_per_day: int,
    window: int,
    include_partial: bool,
    max_buckets: int | None,
    every: str,
) -> None:
    signed = trades.with_columns(
        pl.Series("trade_sign", signs[: trades.height], dtype=pl.Int8)
    ).lazy()
    new = vpin.vpin_buckets(
        signed,
        bucket_volume=bucket_volume,
        buckets_per_day=buckets_per_day,
        window=window,
        include_partial=include_partial,
        max_buckets=max_buckets,
    ).collect()
    old = vpin_before.vpin_buckets(
        signed,
        bucket_volume=bucket_volume,
        buckets_per_day=buckets_per_day,
        window=window,
        include_partial=include_partial,
        max_buckets=max_buckets,
    ).collect()
    assert_same(new, old)
    keys = [c for c in ("venue", "symbol") if c in trades.columns]
    bars = trades.select(*keys, pl.col("ts").dt.truncate(every)).unique().sort(*keys, "ts")
    assert_same(
        vpin.vpin_at(bars.lazy(), new.lazy(), every=every).collect(),
        vpin_before.vpin_at(bars.lazy(), old.lazy(), every=every).collect(),
    )
