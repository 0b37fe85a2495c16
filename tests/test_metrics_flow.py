from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.metrics.flow import flow_bars, flow_summary

T0 = datetime(2024, 7, 19, tzinfo=UTC)


def signed_trades(rows: list[tuple[str, float, float, float, int]]) -> pl.LazyFrame:
    """Rows of (symbol, seconds after T0, price, size, trade_sign)."""
    return pl.LazyFrame(
        {
            "ts": [T0 + timedelta(seconds=r[1]) for r in rows],
            "symbol": [r[0] for r in rows],
            "price": [r[2] for r in rows],
            "size": [r[3] for r in rows],
            "trade_sign": [r[4] for r in rows],
        },
        schema={
            "ts": pl.Datetime("ns", "UTC"),
            "symbol": pl.String,
            "price": pl.Float64,
            "size": pl.Float64,
            "trade_sign": pl.Int8,
        },
    ).sort("ts", maintain_order=True)


def test_flow_summary_hand_computed() -> None:
    trades = signed_trades(
        [
            ("X", 0, 100.0, 2.0, 1),
            ("X", 1, 101.0, 1.0, -1),
            ("X", 2, 102.0, 3.0, 0),
            ("Y", 0, 10.0, 5.0, -1),
        ]
    )
    out = flow_summary(trades).collect()
    expected = pl.DataFrame(
        {
            "symbol": ["X", "Y"],
            "trades": pl.Series([3, 1], dtype=pl.UInt32),
            "volume": [6.0, 5.0],
            "buy_volume": [2.0, 0.0],
            "sell_volume": [1.0, 5.0],
            "unknown_volume": [3.0, 0.0],
            # (200 + 101 + 306) / 6 = 101.1666...
            "vwap": [607.0 / 6.0, 10.0],
            "net_flow": [1.0, -5.0],
            "start": [T0, T0],
            "end": [T0 + timedelta(seconds=2), T0],
        },
        schema_overrides={"start": pl.Datetime("ns", "UTC"), "end": pl.Datetime("ns", "UTC")},
    )
    assert_frame_equal(out, expected)


def test_flow_summary_zero_volume_has_null_vwap() -> None:
    out = flow_summary(signed_trades([("X", 0, 100.0, 0.0, 1)])).collect()
    assert out["vwap"].to_list() == [None]
    assert out["volume"].to_list() == [0.0]


def test_flow_bars_left_closed_start_labelled() -> None:
    trades = signed_trades(
        [
            ("X", 0, 100.0, 1.0, 1),
            ("X", 59.999, 102.0, 1.0, -1),
            ("X", 60, 101.0, 4.0, 1),
        ]
    )
    out = flow_bars(trades, every="1m").collect()
    assert out["ts"].to_list() == [T0, T0 + timedelta(minutes=1)]
    assert out.row(0, named=True) == {
        "symbol": "X",
        "ts": T0,
        "open": 100.0,
        "high": 102.0,
        "low": 100.0,
        "close": 102.0,
        "vwap": 101.0,
        "volume": 2.0,
        "trades": 2,
        "buy_volume": 1.0,
        "sell_volume": 1.0,
        "unknown_volume": 0.0,
        "net_flow": 0.0,
        "trade_imbalance": 0.0,
    }
    assert out["net_flow"].to_list() == [0.0, 4.0]


trade_rows = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.integers(min_value=0, max_value=600_000).map(lambda ms: ms / 1000),
        st.sampled_from([99.0, 100.0, 101.0]),
        st.sampled_from([0.0, 0.5, 1.0, 3.0]),
        st.sampled_from([-1, 0, 1]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=100, deadline=None)
@given(trade_rows)
def test_buy_plus_sell_plus_unknown_equals_volume(
    rows: list[tuple[str, float, float, float, int]],
) -> None:
    trades = signed_trades(rows)
    for table in (flow_summary(trades).collect(), flow_bars(trades, every="1m").collect()):
        total = table["buy_volume"] + table["sell_volume"] + table["unknown_volume"]
        assert (total - table["volume"]).abs().max() < 1e-9  # type: ignore[operator]
        assert (
            (table["net_flow"] - (table["buy_volume"] - table["sell_volume"])).abs() < 1e-9
        ).all()


@settings(max_examples=100, deadline=None)
@given(trade_rows)
def test_bars_sum_to_summary_and_match_reference_loop(
    rows: list[tuple[str, float, float, float, int]],
) -> None:
    trades = signed_trades(rows)
    bars = flow_bars(trades, every="1m").collect()
    summary = flow_summary(trades).collect()
    # reference: bucket each trade by floor(seconds / 60) in a plain loop
    expected: dict[tuple[str, int], list[float]] = {}
    for symbol, seconds, _, size, sign in rows:
        key = (symbol, int(seconds // 60))
        bucket = expected.setdefault(key, [0.0, 0.0])
        bucket[0] += size
        bucket[1] += sign * size
    got = {
        (r["symbol"], int((r["ts"] - T0).total_seconds() // 60)): [r["volume"], r["net_flow"]]
        for r in bars.iter_rows(named=True)
        if r["trades"] > 0
    }
    assert got.keys() == expected.keys()
    # bars with no trades fill the gaps: a regular one-minute grid per symbol
    for symbol in {key[0] for key in expected}:
        minutes = [m for s, m in expected if s == symbol]
        grid = bars.filter(pl.col("symbol") == symbol)
        assert grid.height == max(minutes) - min(minutes) + 1
        empty = grid.filter(pl.col("trades") == 0)
        assert empty["volume"].to_list() == [0.0] * empty.height
        assert empty["close"].null_count() == empty.height
    for key, (volume, net) in expected.items():
        assert abs(got[key][0] - volume) < 1e-9
        assert abs(got[key][1] - net) < 1e-9
    per_symbol = (
        bars.group_by("symbol").agg(pl.col("volume", "net_flow", "trades").sum()).sort("symbol")
    )
    assert_frame_equal(
        per_symbol,
        summary.select("symbol", "volume", "net_flow", "trades"),
        check_dtypes=False,
        rel_tol=1e-9,
        abs_tol=1e-9,
    )
