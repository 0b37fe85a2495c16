from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.vpin import vpin_at, vpin_buckets
from tests.helpers import trades_frame, typed_frame

T0 = datetime(2024, 7, 19, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")

Trade = tuple[str, float, float, int | None]
"""(symbol, seconds after T0, size, trade_sign)."""


def make_trades(rows: Sequence[Trade]) -> pl.LazyFrame:
    """Rows of (symbol, seconds after T0, size, trade_sign), all at price 100."""
    return trades_frame([(s, t, 100.0, v, d) for s, t, v, d in rows], start=T0)


def make_bars(rows: list[tuple[str, float]]) -> pl.LazyFrame:
    """Rows of (symbol, seconds after T0 of the bar start)."""
    return typed_frame(
        {"symbol": [r[0] for r in rows], "ts": [T0 + timedelta(seconds=r[1]) for r in rows]}
    )


BucketRow = tuple[str, int, datetime, float, float, float, float | None, bool]


def vpin_reference(
    rows: list[Trade], volume: float, window: int, *, include_partial: bool = False
) -> list[BucketRow]:
    """Slow bucket filler: pour each symbol's trades into buckets of ``volume``, one by one."""
    out: list[BucketRow] = []
    for symbol in sorted({r[0] for r in rows}):
        buckets: list[tuple[datetime, float, float, float, bool]] = []
        filled = buy = sell = 0.0
        last: datetime | None = None
        for s, seconds, size, sign in rows:
            if s != symbol or not size > 0:
                continue
            ts = T0 + timedelta(seconds=seconds)
            remaining = size
            while remaining > 0:
                take = min(volume - filled, remaining)
                filled += take
                remaining -= take
                buy += take if sign == 1 else 0.0
                sell += take if sign == -1 else 0.0
                last = ts
                if filled == volume:
                    buckets.append((ts, filled, buy, sell, True))
                    filled = buy = sell = 0.0
        if filled > 0 and last is not None:
            buckets.append((last, filled, buy, sell, False))
        for i, (ts, vol, b, s_) in enumerate(bucket[:4] for bucket in buckets):
            vpin = None
            if i + 1 >= window:
                last_n = buckets[i + 1 - window : i + 1]
                vpin = sum(abs(x[3] - x[2]) for x in last_n) / sum(x[1] for x in last_n)
            complete = buckets[i][4]
            if complete or include_partial:
                out.append((symbol, i, ts, vol, b, s_, vpin, complete))
    return out


VECTOR: list[Trade] = [
    ("X", 0, 60.0, 1),
    ("X", 1, 40.0, -1),
    ("X", 2, 100.0, 1),
    ("X", 3, 30.0, -1),
    ("X", 4, 20.0, 1),
    ("X", 5, 50.0, -1),
]


# --- vpin_buckets: hand-computed ---------------------------------------------------------------


def test_vpin_buckets_metrics_vector_gives_0_60_then_0_80() -> None:
    # metrics.md b.5: V = 100, n = 2; |OI| = 20, 100, 60 ⇒ 120/200 = 0.60, 160/200 = 0.80.
    out = vpin_buckets(make_trades(VECTOR), bucket_volume=100.0, window=2).collect()
    expected = pl.DataFrame(
        {
            "symbol": ["X", "X", "X"],
            "bucket": [0, 1, 2],
            "ts": [T0 + timedelta(seconds=s) for s in (1, 2, 5)],
            "volume": [100.0, 100.0, 100.0],
            "buy_volume": [60.0, 100.0, 20.0],
            "sell_volume": [40.0, 0.0, 80.0],
            "vpin": [None, 0.6, 0.8],
            "complete": [True, True, True],
        },
        schema_overrides={"ts": UTC_NS},
    )
    assert_frame_equal(out, expected)


def test_vpin_buckets_splits_an_overflowing_trade_and_keeps_its_sign() -> None:
    trades = make_trades([("X", 0, 150.0, 1), ("X", 1, 50.0, -1), ("X", 2, 120.0, -1)])
    out = vpin_buckets(trades, bucket_volume=100.0, window=1, include_partial=True).collect()
    assert out.select("bucket", "volume", "buy_volume", "sell_volume", "vpin").rows() == [
        (0, 100.0, 100.0, 0.0, 1.0),
        (1, 100.0, 50.0, 50.0, 0.0),
        (2, 100.0, 0.0, 100.0, 1.0),
        (3, 20.0, 0.0, 20.0, 1.0),
    ]
    assert out["ts"].to_list() == [T0 + timedelta(seconds=s) for s in (0, 1, 2, 2)]
    assert out["complete"].to_list() == [True, True, True, False]
    # Without include_partial the incomplete last bucket is left out.
    default = vpin_buckets(trades, bucket_volume=100.0, window=1).collect()
    assert default["bucket"].to_list() == [0, 1, 2]


def test_vpin_buckets_one_trade_fills_several_buckets_completed_at_its_time() -> None:
    out = vpin_buckets(make_trades([("X", 7, 350.0, -1)]), bucket_volume=100.0, window=3)
    got = out.collect()
    assert got["bucket"].to_list() == [0, 1, 2]
    assert got["ts"].to_list() == [T0 + timedelta(seconds=7)] * 3
    assert got["vpin"].to_list() == [None, None, 1.0]


def test_vpin_buckets_unknown_sign_fills_buckets_on_neither_side() -> None:
    trades = make_trades([("X", 0, 50.0, 1), ("X", 1, 30.0, 0), ("X", 2, 20.0, None)])
    out = vpin_buckets(trades, bucket_volume=100.0, window=1).collect()
    assert out.select("volume", "buy_volume", "sell_volume", "vpin").row(0) == (
        100.0,
        50.0,
        0.0,
        0.5,
    )


def test_vpin_buckets_default_volume_is_average_daily_volume_over_buckets_per_day() -> None:
    # X trades 300 on day 1 and 100 on day 2 (UTC dates): ADV 200, 2 buckets a day ⇒ V = 100.
    day = 24 * 3600.0
    trades = make_trades(
        [("X", 0, 150.0, 1), ("Y", 1, 8.0, 1), ("X", 2, 150.0, -1), ("X", day, 100.0, 1)]
    )
    out = vpin_buckets(trades, buckets_per_day=2, window=1).collect()
    x = out.filter(pl.col("symbol") == "X")
    assert x["volume"].to_list() == [100.0, 100.0, 100.0, 100.0]
    assert x["buy_volume"].to_list() == [100.0, 50.0, 0.0, 100.0]
    # Y: one day, 8 shares, 2 buckets a day ⇒ V = 4, two complete buckets.
    assert out.filter(pl.col("symbol") == "Y")["volume"].to_list() == [4.0, 4.0]


def test_vpin_buckets_float_rounding_does_not_leave_sliver_buckets() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 > 0.3 in binary floats.
    trades = make_trades([("X", 0, 0.1, 1), ("X", 1, 0.2, 1), ("X", 2, 0.3, -1)])
    out = vpin_buckets(trades, bucket_volume=0.3, window=1, include_partial=True).collect()
    assert out["complete"].to_list() == [True, True]
    assert out["ts"].to_list() == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert out["vpin"].to_list() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [("X", 0, 50.0, 1)],  # one trade, less than a bucket
        [("X", 0, 0.0, 1), ("X", 1, 0.0, -1)],  # zero sizes only
        [("X", 0, float("nan"), 1), ("X", 1, -5.0, 1)],  # nonsense sizes are ignored
    ],
)
def test_vpin_buckets_without_a_complete_bucket_is_empty(rows: list[Trade]) -> None:
    out = vpin_buckets(make_trades(rows), bucket_volume=100.0, window=1).collect()
    assert out.height == 0
    assert out.schema == pl.Schema(
        {  # type: ignore[arg-type]
            "symbol": pl.String,
            "bucket": pl.Int64,
            "ts": UTC_NS,
            "volume": pl.Float64,
            "buy_volume": pl.Float64,
            "sell_volume": pl.Float64,
            "vpin": pl.Float64,
            "complete": pl.Boolean,
        }
    )


def test_vpin_buckets_one_trade_default_volume_gives_buckets_per_day_buckets() -> None:
    out = vpin_buckets(make_trades([("X", 0, 50.0, 1)]), buckets_per_day=5, window=5).collect()
    assert out["volume"].to_list() == pytest.approx([10.0] * 5)
    assert out["vpin"].to_list()[:4] == [None] * 4
    assert out["vpin"][4] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bucket_volume": 0.0}, "bucket_volume must be a finite number > 0, was 0.0"),
        ({"bucket_volume": float("inf")}, "bucket_volume must be a finite number > 0, was inf"),
        ({"buckets_per_day": 0}, "buckets_per_day must be a whole number >= 1, was 0"),
        ({"window": 0}, "window must be a whole number >= 1, was 0"),
        ({"window": 2.5}, "window must be a whole number >= 1, was 2.5"),
    ],
)
def test_vpin_buckets_rejects_bad_parameters(options: dict[str, float], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        vpin_buckets(make_trades(VECTOR), **options)  # type: ignore[arg-type]


def test_vpin_functions_name_a_missing_column() -> None:
    with pytest.raises(SchemaError, match=r"trades is missing column\(s\) trade_sign"):
        vpin_buckets(make_trades(VECTOR).drop("trade_sign"))
    buckets = vpin_buckets(make_trades(VECTOR), bucket_volume=100.0)
    with pytest.raises(SchemaError, match=r"buckets is missing column\(s\) vpin"):
        vpin_at(make_bars([("X", 0)]), buckets.drop("vpin"), every="1m")


def test_vpin_buckets_eager_lazy_and_streaming_agree() -> None:
    rows = [*VECTOR, ("Y", 0.5, 70.0, 1), ("Y", 2.5, 90.0, -1), ("Y", 6, 10.0, 0)]
    trades = make_trades(sorted(rows, key=lambda r: r[1]))
    for options in ({"bucket_volume": 25.0}, {"buckets_per_day": 7}):
        lazy = vpin_buckets(trades, window=3, **options)
        eager = vpin_buckets(trades.collect().lazy(), window=3, **options)
        assert_frame_equal(lazy.collect(), eager.collect())
        assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


# --- vpin_buckets: oracle and invariants -------------------------------------------------------

# Sizes and bucket volumes are multiples of 1/4, so every sum is exact in binary floats.
TRADE_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from([0.0, 0.25, 1.0, 3.0, 7.5, 10.0, 40.0, 130.0]),
        st.sampled_from([-1, 0, 1, None]),
    ),
    max_size=40,
)


def timed(rows: list[tuple[str, float, int | None]], step: float = 600.0) -> list[Trade]:
    return [(s, i * step, size, sign) for i, (s, size, sign) in enumerate(rows)]


def as_rows(frame: pl.DataFrame) -> list[BucketRow]:
    return [
        (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
        for r in frame.select(
            "symbol",
            "bucket",
            "ts",
            "volume",
            "buy_volume",
            "sell_volume",
            "vpin",
            "complete",
        ).rows()
    ]


@settings(max_examples=100, deadline=None)
@given(
    rows=TRADE_ROWS,
    volume=st.sampled_from([0.25, 1.0, 2.5, 10.0, 25.0, 100.0]),
    window=st.sampled_from([1, 2, 3, 5]),
    include_partial=st.booleans(),
)
def test_vpin_buckets_matches_reference_loop_on_interleaved_symbols(
    rows: list[tuple[str, float, int | None]], volume: float, window: int, include_partial: bool
) -> None:
    trades = timed(rows)
    out = vpin_buckets(
        make_trades(trades), bucket_volume=volume, window=window, include_partial=include_partial
    ).collect()
    expected = vpin_reference(trades, volume, window, include_partial=include_partial)
    got = as_rows(out)
    assert [r[:6] + r[7:] for r in got] == [r[:6] + r[7:] for r in expected]
    for got_row, expected_row in zip(got, expected, strict=True):
        if expected_row[6] is None:
            assert got_row[6] is None
        else:
            assert got_row[6] == pytest.approx(expected_row[6], rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(rows=TRADE_ROWS, buckets_per_day=st.sampled_from([1, 3, 50]))
def test_vpin_buckets_default_volume_equals_explicit_adv_per_bucket(
    rows: list[tuple[str, float, int | None]], buckets_per_day: int
) -> None:
    trades = timed(rows, step=5 * 3600.0)  # several UTC dates
    out = vpin_buckets(make_trades(trades), buckets_per_day=buckets_per_day, window=2).collect()
    for symbol in sorted({r[0] for r in trades}):
        own = [r for r in trades if r[0] == symbol and r[2] > 0]
        if not own:
            continue
        days = {(T0 + timedelta(seconds=r[1])).date() for r in own}
        volume = sum(r[2] for r in own) / len(days) / buckets_per_day
        alone = vpin_buckets(make_trades(own), bucket_volume=volume, window=2).collect()
        assert_frame_equal(out.filter(pl.col("symbol") == symbol), alone)


@settings(max_examples=60, deadline=None)
@given(
    rows=TRADE_ROWS,
    volume=st.sampled_from([0.25, 2.5, 10.0, 100.0, 7.3]),
    window=st.sampled_from([1, 2, 4]),
)
def test_vpin_buckets_invariants(
    rows: list[tuple[str, float, int | None]], volume: float, window: int
) -> None:
    trades = timed(rows)
    full = vpin_buckets(
        make_trades(trades), bucket_volume=volume, window=window, include_partial=True
    ).collect()
    complete = full.filter(pl.col("complete"))
    # VPIN ∈ [0, 1].
    assert ((full["vpin"] >= 0) & (full["vpin"] <= 1 + 1e-12)).all()
    for symbol in sorted({r[0] for r in trades}):
        own = [r for r in trades if r[0] == symbol and r[2] > 0]
        total = sum(r[2] for r in own)
        mine = full.filter(pl.col("symbol") == symbol)
        done = complete.filter(pl.col("symbol") == symbol)
        # Σ bucket volume of the complete buckets = their number × V = ⌊total / V⌋ × V.
        assert done.height == math.floor(total / volume + 1e-9)
        assert done["volume"].sum() == pytest.approx(done.height * volume, rel=1e-9)
        # Splitting conserves volume, per side, once the partial bucket is included.
        assert mine["volume"].sum() == pytest.approx(total, rel=1e-9)
        for side, column in ((1, "buy_volume"), (-1, "sell_volume")):
            side_total = sum(r[2] for r in own if r[3] == side)
            assert mine[column].sum() == pytest.approx(side_total, rel=1e-9, abs=1e-9)
        assert mine["bucket"].to_list() == list(range(mine.height))
        # Only the last bucket may be incomplete.
        assert mine["complete"].to_list()[:-1] == [True] * (mine.height - 1)


@settings(max_examples=25, deadline=None)
@given(rows=TRADE_ROWS, volume=st.sampled_from([1.0, 10.0, 7.3]), seed=st.randoms())
def test_vpin_buckets_do_not_depend_on_how_symbols_interleave(
    rows: list[tuple[str, float, int | None]], volume: float, seed: random.Random
) -> None:
    trades = timed(rows)
    shuffled = sorted(trades, key=lambda r: r[0])  # one symbol after the other
    by_symbol = {s: [r for r in trades if r[0] == s] for s in {"A", "B", "C"}}
    # A random merge that keeps each symbol's own order.
    merged: list[Trade] = []
    queues = {s: list(v) for s, v in by_symbol.items() if v}
    while queues:
        symbol = seed.choice(sorted(queues))
        merged.append(queues[symbol].pop(0))
        if not queues[symbol]:
            del queues[symbol]
    for default in (True, False):
        options = {"buckets_per_day": 3} if default else {"bucket_volume": volume}
        base = vpin_buckets(make_trades(trades), window=2, **options).collect()
        for other in (shuffled, merged):
            again = vpin_buckets(make_trades(other), window=2, **options).collect()
            assert_frame_equal(base, again)


# --- vpin_at -----------------------------------------------------------------------------------


def test_vpin_at_takes_the_latest_bucket_completed_strictly_before_the_bar_end() -> None:
    trades = make_trades(VECTOR)  # buckets complete at 1 s, 2 s and 5 s
    buckets = vpin_buckets(trades, bucket_volume=100.0, window=2)
    bars = make_bars([("X", 0), ("X", 2), ("X", 4), ("X", 6), ("Y", 0)])
    out = vpin_at(bars, buckets, every="2s").collect()
    # Bar [0, 2): bucket 0 (null VPIN); [2, 4): bucket 1 at 2 s; [4, 6): bucket 2 at 5 s.
    assert out["vpin"].to_list() == [None, 0.6, 0.8, 0.8, None]
    assert_frame_equal(out.drop("vpin"), bars.collect())


def test_vpin_at_bucket_completed_at_the_bar_end_belongs_to_the_next_bar() -> None:
    buckets = vpin_buckets(make_trades(VECTOR), bucket_volume=100.0, window=2)
    out = vpin_at(make_bars([("X", 0), ("X", 1)]), buckets, every="1s").collect()
    # Bucket 1 completes at exactly 2 s, the end of bar [1, 2): not yet known there.
    assert out["vpin"].to_list() == [None, None]


def test_vpin_at_uses_the_last_of_several_buckets_completed_by_one_trade() -> None:
    trades = make_trades([("X", 0, 100.0, 1), ("X", 1, 50.0, 1), ("X", 2, 150.0, -1)])
    buckets = vpin_buckets(trades, bucket_volume=100.0, window=1)
    assert buckets.collect()["vpin"].to_list() == [1.0, 0.0, 1.0]
    out = vpin_at(make_bars([("X", 0), ("X", 2)]), buckets, every="2s").collect()
    # Bar [2, 4): buckets 1 (B50/S50, VPIN 0) and 2 (S100, VPIN 1) both complete at 2 s.
    assert out["vpin"].to_list() == [1.0, 1.0]


def test_vpin_at_ignores_partial_buckets_and_replaces_an_old_vpin_column() -> None:
    trades = make_trades([("X", 0, 100.0, 1), ("X", 3, 50.0, -1)])
    buckets = vpin_buckets(trades, bucket_volume=100.0, window=1, include_partial=True)
    bars = make_bars([("X", 0), ("X", 2)]).with_columns(pl.lit(0.5).alias("vpin"))
    out = vpin_at(bars, buckets, every="2s").collect()
    assert out.columns == ["symbol", "ts", "vpin"]
    assert out["vpin"].to_list() == [1.0, 1.0]


def test_vpin_at_rejects_a_bad_bar_length() -> None:
    buckets = vpin_buckets(make_trades(VECTOR), bucket_volume=100.0)
    with pytest.raises(ParameterError, match="bar length must be a positive polars duration"):
        vpin_at(make_bars([("X", 0)]), buckets, every="0s")
    with pytest.raises(ParameterError, match="was 'soon'"):
        vpin_at(make_bars([("X", 0)]), buckets, every="soon")


def test_vpin_at_eager_lazy_and_streaming_agree() -> None:
    rows = [*VECTOR, ("Y", 0.5, 70.0, 1), ("Y", 2.5, 90.0, -1), ("Y", 6, 10.0, 0)]
    trades = make_trades(sorted(rows, key=lambda r: r[1]))
    buckets = vpin_buckets(trades, bucket_volume=20.0, window=2)
    bars = make_bars([(s, t) for s in ("X", "Y") for t in range(0, 8, 2)])
    lazy = vpin_at(bars, buckets, every="2s")
    eager = vpin_at(bars.collect().lazy(), buckets.collect().lazy(), every="2s")
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


def vpin_at_reference(
    bars: list[tuple[str, float]], buckets: list[BucketRow], every: float
) -> list[float | None]:
    out: list[float | None] = []
    for symbol, start in bars:
        end = T0 + timedelta(seconds=start + every)
        known = [b for b in buckets if b[0] == symbol and b[7] and b[2] < end]
        out.append(max(known, key=lambda b: (b[2], b[1]))[6] if known else None)
    return out


@settings(max_examples=40, deadline=None)
@given(rows=TRADE_ROWS, volume=st.sampled_from([1.0, 10.0, 40.0]), every=st.sampled_from([1, 7]))
def test_vpin_at_matches_reference_loop(
    rows: list[tuple[str, float, int | None]], volume: float, every: int
) -> None:
    trades = timed(rows, step=1.5)
    buckets = vpin_buckets(
        make_trades(trades), bucket_volume=volume, window=2, include_partial=True
    )
    span = int(len(trades) * 1.5) + every
    bars = [(s, float(t)) for s in ("A", "B", "C") for t in range(0, span, every)]
    out = vpin_at(make_bars(bars), buckets, every=f"{every}s").collect()
    expected = vpin_at_reference(bars, as_rows(buckets.collect()), every)
    assert out["vpin"].to_list() == expected
