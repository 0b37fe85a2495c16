from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.impact import (
    amihud,
    cost_bars,
    kyle_lambda,
    roll_spread,
    trade_costs,
)
from mmflow.metrics.quotes import attach_quotes
from tests.helpers import bbo_quotes, trades_frame, typed_frame

T0 = datetime(2024, 7, 1, 14, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")

Trade = tuple[str, float, float, float, int]
"""(symbol, seconds after T0, price, size, trade_sign)."""
Quote = tuple[str, float, float | None, float | None]
"""(symbol, seconds after T0, bid, ask)."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_trades(rows: Sequence[Trade], mid: list[float | None] | None = None) -> pl.LazyFrame:
    return trades_frame(rows, start=T0, mid_price=mid)


def make_quotes(rows: Sequence[Quote]) -> pl.LazyFrame:
    return bbo_quotes(
        [at(r[1]) for r in rows], [r[0] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )


def make_bars(
    rows: list[tuple[str, float | None, float | None]],
    vwap: list[float | None] | None = None,
    volume: list[float] | None = None,
) -> pl.LazyFrame:
    """Bars of (symbol, close, net_flow), in time order within each symbol."""
    return typed_frame(
        {
            "symbol": [r[0] for r in rows],
            "close": [r[1] for r in rows],
            "net_flow": [r[2] for r in rows],
            "vwap": vwap if vwap is not None else [r[1] for r in rows],
            "volume": volume if volume is not None else [float(r[1] is not None) for r in rows],
        }
    ).with_columns(pl.int_range(len(rows)).alias("row"))


COSTS = ["effective_spread", "realized_spread", "price_impact"]
COSTS_BPS = [f"{c}_bps" for c in COSTS]


# --- trade_costs -------------------------------------------------------------------------------


def test_trade_costs_metrics_vector_es_0_06_rs_minus_0_02_pi_0_08() -> None:
    # metrics.md b.7: B 10.00, A 10.10, buy at 10.08, M(t+Δ) = 10.09 (HF-R would print PI 0.04).
    # The quotes go on after t + Δ (a horizon after the last quote gives null, issue 9).
    quotes = make_quotes(
        [("X", -1, 10.00, 10.10), ("X", 120, 10.04, 10.14), ("X", 900, 10.0, 10.2)]
    )
    trades = attach_quotes(make_trades([("X", 0, 10.08, 100.0, 1)]), quotes)
    out = trade_costs(trades, quotes, horizon="5m").collect()
    assert out["mid_price"].item() == pytest.approx(10.05)
    assert out["future_mid_price"].item() == pytest.approx(10.09)
    assert out.select(COSTS).row(0) == pytest.approx((0.06, -0.02, 0.08), abs=1e-12)
    bps = (0.06 / 10.05 * 1e4, -0.02 / 10.05 * 1e4, 0.08 / 10.05 * 1e4)
    assert out.select(COSTS_BPS).row(0) == pytest.approx(bps, rel=1e-9)


def test_trade_costs_sell_flips_the_sign() -> None:
    quotes = make_quotes([("X", -1, 10.00, 10.10), ("X", 120, 9.96, 10.06), ("X", 900, 9, 11)])
    trades = attach_quotes(make_trades([("X", 0, 10.02, 100.0, -1)]), quotes)
    out = trade_costs(trades, quotes).collect()
    # ES = −2 (10.02 − 10.05) = 0.06; RS = −2 (10.02 − 10.01) = −0.02; PI = −2 (10.01 − 10.05).
    assert out.select(COSTS).row(0) == pytest.approx((0.06, -0.02, 0.08), abs=1e-12)


def test_trade_costs_later_mid_is_found_by_time_not_by_row_shift() -> None:
    # Many quote rows within the first second; the horizon is 5 minutes of clock time.
    quotes = make_quotes(
        [("X", -1, 10.00, 10.10)]
        + [("X", 0.001 * i, 10.00 + 0.01 * i, 10.10 + 0.01 * i) for i in range(1, 6)]
        + [("X", 300.5, 11.00, 11.10), ("X", 300.6, 12.00, 12.10)]
    )
    trades = make_trades([("X", 0.5, 10.08, 1.0, 1)], mid=[10.05])
    out = trade_costs(trades, quotes, horizon="5m").collect()
    # The quote at exactly t + Δ = 300.5 s counts ("at or before"); the one after does not.
    assert out["future_mid_price"].item() == pytest.approx(11.05)
    one_second = trade_costs(trades, quotes, horizon="1s").collect()
    assert one_second["future_mid_price"].item() == pytest.approx(10.10)


def test_trade_costs_skips_crossed_locked_and_one_sided_later_quotes() -> None:
    quotes = make_quotes(
        [
            ("X", 0, 10.00, 10.10),
            ("X", 100, 10.20, 10.30),
            ("X", 200, 10.50, 10.40),  # crossed
            ("X", 250, 10.50, 10.50),  # locked
            ("X", 280, None, 10.50),  # one-sided
            ("X", 900, 10.0, 10.2),  # after t + Δ: the quotes go on
        ]
    )
    trades = make_trades([("X", 1, 10.08, 1.0, 1)], mid=[10.05])
    out = trade_costs(trades, quotes, horizon="5m").collect()
    assert out["future_mid_price"].item() == pytest.approx(10.25)


def test_trade_costs_are_null_without_sign_or_mid() -> None:
    quotes = make_quotes(
        [("X", 0, 10.00, 10.10), ("Z", 0, -1.0, 1.0), ("X", 900, 10.0, 10.1), ("Z", 900, -1, 1)]
    )
    trades = make_trades(
        [
            ("X", 1, 10.08, 1.0, 0),  # unsigned
            ("X", 2, 10.08, 1.0, 1),  # no prevailing mid
            ("Y", 3, 5.00, 1.0, 1),  # own BBO, but no quotes for Y: no later mid
            ("Z", 4, 0.50, 1.0, 1),  # mid 0: costs, but no relative costs
        ],
        mid=[10.05, None, 5.01, 0.0],
    )
    out = trade_costs(trades, quotes).collect()
    assert out["effective_spread"].to_list()[:2] == [None, None]
    assert out["effective_spread"][2] == pytest.approx(-0.02)
    assert out["realized_spread"].to_list()[:3] == [None, None, None]
    assert out["price_impact"].to_list() == [None, None, None, 0.0]
    assert out["effective_spread"][3] == pytest.approx(1.0)
    assert out.select(COSTS_BPS).row(3) == (None, None, None)
    assert out["future_mid_price"].to_list() == [10.05, 10.05, None, 0.0]


def test_trade_costs_keeps_trade_order_and_replaces_old_cost_columns() -> None:
    quotes = make_quotes([("X", 0, 10.00, 10.10), ("Y", 0, 20.0, 20.2)])
    trades = make_trades(
        [("Y", 1, 20.2, 1.0, 1), ("X", 1, 10.0, 2.0, -1), ("Y", 2, 20.0, 1.0, -1)],
        mid=[20.1, 10.05, 20.1],
    )
    once = trade_costs(trades, quotes)
    twice = trade_costs(once, quotes).collect()
    assert_frame_equal(once.collect(), twice)
    assert twice["symbol"].to_list() == ["Y", "X", "Y"]
    assert twice["effective_spread"].to_list() == pytest.approx([0.2, 0.1, 0.2])


def test_trade_costs_rejects_bad_horizon_and_missing_mid() -> None:
    quotes = make_quotes([("X", 0, 10.00, 10.10)])
    with pytest.raises(ParameterError, match="horizon must be a polars duration"):
        trade_costs(make_trades([], mid=[]), quotes, horizon="five minutes")
    with pytest.raises(SchemaError, match="trades is missing column"):
        trade_costs(make_trades([]), quotes)


def test_trade_costs_eager_lazy_and_streaming_agree() -> None:
    quotes = make_quotes(
        [("X", 0, 10.0, 10.1), ("Y", 0.5, 5.0, 5.2), ("X", 2, 10.1, 10.2), ("Y", 3, 5.1, 5.3)]
    )
    trades = attach_quotes(
        make_trades([("X", 1, 10.1, 1.0, 1), ("Y", 1, 5.0, 2.0, -1), ("X", 2.5, 10.1, 3.0, -1)]),
        quotes,
    )
    lazy = trade_costs(trades, quotes, horizon="1s")
    eager = trade_costs(trades.collect().lazy(), quotes.collect().lazy(), horizon="1s")
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


def future_mid_reference(
    trades: list[Trade],
    quotes: list[Quote],
    horizon: float,
    max_age: float | None = None,
) -> list[float | None]:
    """Bisect on each symbol's usable quote times for the latest at or before t + Δ.

    None when t + Δ is after the symbol's last quote of any kind (the quotes ended before the
    horizon) or when the quote found is older than ``max_age`` at t + Δ.
    """
    usable: dict[str, list[tuple[float, float]]] = defaultdict(list)
    last: dict[str, float] = {}
    for symbol, seconds, bid, ask in quotes:
        last[symbol] = max(last.get(symbol, seconds), seconds)
        if bid is not None and ask is not None and bid < ask:
            usable[symbol].append((seconds, (bid + ask) / 2))
    out: list[float | None] = []
    for symbol, seconds, *_ in trades:
        target = seconds + horizon
        times = [q[0] for q in usable[symbol]]
        i = bisect.bisect_right(times, target) - 1
        stale = i >= 0 and max_age is not None and times[i] < target - max_age
        if i < 0 or target > last[symbol] or stale:
            out.append(None)
        else:
            out.append(usable[symbol][i][1])
    return out


QUOTE_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.integers(0, 40),
        st.sampled_from([9.5, 9.75, 10.0, 10.25, None]),
        st.sampled_from([9.75, 10.0, 10.5, 11.0, None]),
    ),
    max_size=30,
)
TRADE_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.integers(0, 40),
        st.sampled_from([9.5, 9.75, 10.0, 10.25, 10.5]),
        st.sampled_from([0.0, 1.0, 5.0, 100.0]),
        st.sampled_from([-1, 0, 1]),
    ),
    max_size=30,
)
HORIZONS = {"0s": 0.0, "1s": 1.0, "3s": 3.0, "10s": 10.0, "5m": 300.0}


@settings(max_examples=100, deadline=None)
@given(
    trade_rows=TRADE_ROWS,
    quote_rows=QUOTE_ROWS,
    horizon=st.sampled_from(sorted(HORIZONS)),
    max_age=st.sampled_from([None, "0s", "2s", "10s"]),
)
def test_trade_costs_match_bisect_reference_and_es_equals_rs_plus_pi(
    trade_rows: list[tuple[str, int, float, float, int]],
    quote_rows: list[tuple[str, int, float | None, float | None]],
    horizon: str,
    max_age: str | None,
) -> None:
    trades: list[Trade] = sorted(
        [(s, float(t), p, v, d) for s, t, p, v, d in trade_rows], key=lambda r: r[1]
    )
    quotes: list[Quote] = sorted(
        [(s, float(t), b, a) for s, t, b, a in quote_rows], key=lambda r: r[1]
    )
    q = make_quotes(quotes)
    out = trade_costs(
        attach_quotes(make_trades(trades), q), q, horizon=horizon, max_quote_age=max_age
    ).collect()
    age = None if max_age is None else float(max_age.removesuffix("s"))
    expected_later = future_mid_reference(trades, quotes, HORIZONS[horizon], age)
    assert out["future_mid_price"].to_list() == expected_later
    for row, later in zip(out.iter_rows(named=True), expected_later, strict=True):
        d, p, m = row["trade_sign"], row["price"], row["mid_price"]
        if d == 0 or m is None:
            assert row["effective_spread"] is None
        else:
            assert row["effective_spread"] == pytest.approx(2 * d * (p - m), abs=1e-12)
        if d == 0 or m is None or later is None:
            assert row["realized_spread"] is None
            assert row["price_impact"] is None
        else:
            assert row["realized_spread"] == pytest.approx(2 * d * (p - later), abs=1e-12)
            assert row["price_impact"] == pytest.approx(2 * d * (later - m), abs=1e-12)
            # ES = RS + PI, in price and in basis points.
            es, rs, pi = (row[c] for c in COSTS)
            assert es == pytest.approx(rs + pi, abs=1e-12)
            es, rs, pi = (row[c] for c in COSTS_BPS)
            assert es == pytest.approx(rs + pi, abs=1e-9)


# --- cost_bars ---------------------------------------------------------------------------------


def costs_frame(rows: list[tuple[str, float, float, float | None, float | None]]) -> pl.LazyFrame:
    """Rows of (symbol, seconds, size, effective spread, realized spread); PI = ES − RS."""
    frame = typed_frame(
        {
            "ts": [at(r[1]) for r in rows],
            "symbol": [r[0] for r in rows],
            "size": [r[2] for r in rows],
            "effective_spread": [r[3] for r in rows],
            "realized_spread": [r[4] for r in rows],
        },
    ).with_columns((pl.col("effective_spread") - pl.col("realized_spread")).alias("price_impact"))
    return frame.with_columns((pl.col(COSTS) * 10.0).name.suffix("_bps"))


def test_cost_bars_size_weighted_means_per_bar() -> None:
    costs = costs_frame(
        [
            ("X", 0, 1.0, 0.04, 0.02),
            ("X", 30, 3.0, 0.08, None),
            ("Y", 30, 2.0, 0.10, 0.10),
            ("X", 60, 2.0, 0.02, 0.01),
            ("X", 170, 0.0, 0.50, 0.50),  # zero size: no weight
        ]
    )
    out = cost_bars(costs, every="1m").collect()
    expected = pl.DataFrame(
        {
            "symbol": ["X", "X", "X", "Y"],
            "ts": [at(0), at(60), at(120), at(0)],
            "effective_spread": [(0.04 + 3 * 0.08) / 4, 0.02, None, 0.10],
            "realized_spread": [0.02, 0.01, None, 0.10],
            "price_impact": [0.02, 0.01, None, 0.0],
        },
        schema_overrides={"ts": UTC_NS},
    ).with_columns((pl.col(COSTS) * 10.0).name.suffix("_bps"))
    assert_frame_equal(out, expected, abs_tol=1e-12)


def test_cost_bars_rejects_bad_bar_and_missing_columns() -> None:
    costs = costs_frame([("X", 0, 1.0, 0.04, 0.02)])
    with pytest.raises(ParameterError, match="bar length must be a positive polars duration"):
        cost_bars(costs, every="0m")
    with pytest.raises(SchemaError, match="costs is missing column"):
        cost_bars(costs.drop("price_impact_bps"), every="1m")


def test_cost_bars_eager_lazy_and_streaming_agree() -> None:
    costs = costs_frame(
        [("X", 0, 1.0, 0.04, 0.02), ("Y", 5, 2.0, 0.1, None), ("X", 70, 1.0, 0.2, 0.1)]
    )
    lazy = cost_bars(costs, every="1m")
    eager = cost_bars(costs.collect().lazy(), every="1m")
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(0, 300),
            st.sampled_from([0.0, 1.0, 2.5, 10.0]),
            st.sampled_from([None, -0.02, 0.0, 0.01, 0.05]),
            st.sampled_from([None, -0.03, 0.0, 0.02]),
        ),
        max_size=30,
    )
)
def test_cost_bars_match_reference_loop(
    rows: list[tuple[str, int, float, float | None, float | None]],
) -> None:
    data = sorted([(s, float(t), v, es, rs) for s, t, v, es, rs in rows], key=lambda r: r[1])
    out = cost_bars(costs_frame(data), every="1m").collect()
    groups: dict[tuple[str, int], list[tuple[float, float | None, float | None]]] = defaultdict(
        list
    )
    for s, t, v, es, rs in data:
        groups[(s, int(t // 60))].append((v, es, rs))

    def mean(pairs: list[tuple[float, float | None]]) -> float | None:
        known = [(v, x) for v, x in pairs if x is not None and v > 0]
        total = sum(v for v, _ in known)
        return sum(v * x for v, x in known) / total if total > 0 else None

    expected = {}
    for key, items in groups.items():
        pi = [(v, None if es is None or rs is None else es - rs) for v, es, rs in items]
        expected[key] = (
            mean([(v, es) for v, es, _ in items]),
            mean([(v, rs) for v, _, rs in items]),
            mean(pi),
        )
    got = {
        (r["symbol"], int((r["ts"] - T0).total_seconds() // 60)): tuple(r[c] for c in COSTS)
        for r in out.iter_rows(named=True)
    }
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        for g, e in zip(got[key], values, strict=True):
            assert (g is None) == (e is None)
            if e is not None:
                assert g == pytest.approx(e, abs=1e-12)


# --- kyle_lambda (bars) ------------------------------------------------------------------------


def kyle_reference(
    rows: list[tuple[str, float | None, float | None]], window: int
) -> list[float | None]:
    """Trailing OLS with intercept, centred sums, per symbol; bars without a price skipped."""
    out: list[float | None] = [None] * len(rows)
    for symbol in {r[0] for r in rows}:
        idx = [i for i, r in enumerate(rows) if r[0] == symbol]
        pairs: list[tuple[float, float] | None] = []
        last: float | None = None
        for i in idx:
            price, flow = rows[i][1], rows[i][2]
            if price is not None and last is not None and flow is not None:
                pairs.append((flow, price - last))
            else:
                pairs.append(None)
            if price is not None:
                last = price
        for k, i in enumerate(idx):
            window_pairs = [p for p in pairs[max(0, k - window + 1) : k + 1] if p is not None]
            n = len(window_pairs)
            if n < 3:
                continue
            mx = sum(x for x, _ in window_pairs) / n
            my = sum(y for _, y in window_pairs) / n
            sxx = sum((x - mx) ** 2 for x, _ in window_pairs)
            sxy = sum((x - mx) * (y - my) for x, y in window_pairs)
            out[i] = sxy / sxx if sxx > 0 else None
    return out


def test_kyle_lambda_recovers_an_exact_linear_relation_skipping_empty_bars() -> None:
    # Δp = 0.001 + 0.0001 F on every traded bar; bar 3 has no trades (no close, flow 0), so
    # bar 4's Δp is measured from bar 2's close.
    rows: list[tuple[str, float | None, float | None]] = [
        ("X", 100.0, 7.0),
        ("X", 100.011, 100.0),  # + 0.001 + 0.010
        ("X", 100.007, -50.0),  # + 0.001 − 0.005
        ("X", None, 0.0),
        ("X", 100.028, 200.0),  # + 0.001 + 0.020
        ("X", 100.032, 30.0),  # + 0.001 + 0.003
    ]
    out = kyle_lambda(make_bars(rows), window=10).collect()["kyle_lambda"].to_list()
    # Usable bars: 1, 2 (n = 2: null), 4 (n = 3), 5.
    assert out[:4] == [None, None, None, None]
    assert out[4] == pytest.approx(0.0001, rel=1e-6)
    assert out[5] == pytest.approx(0.0001, rel=1e-6)


def test_kyle_lambda_is_null_with_constant_flow_or_too_few_bars() -> None:
    rows: list[tuple[str, float | None, float | None]] = [
        ("X", 100.0, 5.0),
        ("X", 101.0, 5.0),
        ("X", 99.0, 5.0),
        ("X", 100.0, 5.0),
        ("Y", 10.0, 1.0),
        ("Y", 11.0, 2.0),
    ]
    out = kyle_lambda(make_bars(rows), window=4).collect()["kyle_lambda"].to_list()
    assert out == [None] * 6


def test_kyle_lambda_window_and_custom_columns() -> None:
    # y = 2x on the first 3 usable bars, y = −x on the next 3; window 3 sees only one regime.
    xs = [1.0, 2.0, 4.0, 1.0, 3.0, 2.0]
    ys = [2.0, 4.0, 8.0, -1.0, -3.0, -2.0]
    prices = [0.0]
    for y in ys:
        prices.append(prices[-1] + y)
    bars = pl.LazyFrame({"symbol": ["X"] * 7, "mid": prices, "signed": [0.0, *xs]})
    out = kyle_lambda(bars, window=3, price=pl.col("mid"), flow="signed").collect()
    got = out["kyle_lambda"].to_list()
    assert got[3] == pytest.approx(2.0)
    assert got[6] == pytest.approx(-1.0)


def test_kyle_lambda_differences_stay_within_a_session() -> None:
    bars = pl.LazyFrame(
        {
            "symbol": ["X"] * 6,
            "session": [1, 1, 1, 2, 2, 2],
            "close": [100.0, 101.0, 103.0, 200.0, 201.0, 203.0],
            "net_flow": [0.0, 1.0, 2.0, 50.0, 1.0, 2.0],
        }
    )
    out = kyle_lambda(bars, window=10).collect()["kyle_lambda"].to_list()
    # The overnight jump 103 → 200 is no Δp; bars 1, 2, 4, 5 all have Δp = F.
    assert out[4] == pytest.approx(1.0)
    assert out[5] == pytest.approx(1.0)


def test_kyle_lambda_rejects_a_bad_window() -> None:
    with pytest.raises(ParameterError, match="window must be a whole number of bars >= 1"):
        kyle_lambda(make_bars([("X", 1.0, 1.0)]), window=0)


def test_kyle_lambda_eager_lazy_and_streaming_agree() -> None:
    rows: list[tuple[str, float | None, float | None]] = [
        ("X", 100.0, 1.0),
        ("Y", 10.0, 3.0),
        ("X", 100.5, 4.0),
        ("Y", None, 0.0),
        ("X", 99.5, -3.0),
        ("Y", 10.25, 2.0),
        ("X", 100.0, 2.0),
        ("Y", 10.0, -1.0),
        ("Y", 10.5, 5.0),
    ]
    lazy = kyle_lambda(make_bars(rows), window=5)
    eager = kyle_lambda(make_bars(rows).collect().lazy(), window=5)
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


BAR_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from([99.0, 99.5, 100.0, 100.25, 101.0, None]),
        st.sampled_from([-300.0, -100.0, 0.0, 50.0, 200.0, None]),
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(rows=BAR_ROWS, window=st.sampled_from([1, 3, 5, 240]))
def test_kyle_lambda_matches_reference_ols_on_interleaved_symbols(
    rows: list[tuple[str, float | None, float | None]], window: int
) -> None:
    out = kyle_lambda(make_bars(rows), window=window).collect()["kyle_lambda"].to_list()
    expected = kyle_reference(rows, window)
    for got, want in zip(out, expected, strict=True):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


# --- amihud ------------------------------------------------------------------------------------


def amihud_reference(
    rows: list[tuple[str, float | None, float, float | None]], window: int
) -> list[float | None]:
    """Rows of (symbol, close, volume, vwap) in time order within each symbol."""
    out: list[float | None] = [None] * len(rows)
    for symbol in {r[0] for r in rows}:
        idx = [i for i, r in enumerate(rows) if r[0] == symbol]
        ratios: list[float | None] = []
        last: float | None = None
        for i in idx:
            close, volume, vwap = rows[i][1], rows[i][2], rows[i][3]
            ratio = None
            if close is not None and last is not None and volume > 0 and vwap is not None:
                ratio = abs(math.log(close) - math.log(last)) / (vwap * volume)
            ratios.append(ratio)
            if close is not None:
                last = close
        for k, i in enumerate(idx):
            known = [r for r in ratios[max(0, k - window + 1) : k + 1] if r is not None]
            out[i] = sum(known) / len(known) if known else None
    return out


def test_amihud_skips_zero_volume_bars_and_averages_the_window() -> None:
    rows = [("X", 100.0, 10.0, 100.0), ("X", None, 0.0, None), ("X", 110.0, 20.0, 105.0)]
    rows += [("X", 99.0, 10.0, 100.0), ("X", 99.0, 5.0, 99.0)]
    bars = make_bars(
        [(s, c, 0.0) for s, c, _, _ in rows],
        vwap=[r[3] for r in rows],
        volume=[r[2] for r in rows],
    )
    out = amihud(bars, window=2).collect()["amihud"].to_list()
    first = math.log(1.1) / 2100
    second = math.log(110 / 99) / 1000
    assert out[0] is None
    assert out[1] is None
    assert out[2] == pytest.approx(first)
    assert out[3] == pytest.approx((first + second) / 2)
    assert out[4] == pytest.approx(second / 2)  # constant close: ratio 0 counts


def test_amihud_eager_lazy_streaming_and_bad_window() -> None:
    bars = make_bars(
        [("X", 10.0, 1.0), ("Y", 5.0, 1.0), ("X", 10.5, 1.0), ("Y", 5.5, 2.0), ("X", 10.0, 0.0)]
    )
    lazy = amihud(bars, window=3)
    assert_frame_equal(lazy.collect(), amihud(bars.collect().lazy(), window=3).collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))
    with pytest.raises(ParameterError, match="was -1"):
        amihud(bars, window=-1)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from([99.0, 100.0, 100.5, None]),
            st.sampled_from([0.0, 1.0, 7.0]),
        ),
        max_size=30,
    ),
    window=st.sampled_from([1, 2, 5, 240]),
)
def test_amihud_matches_reference_loop(
    rows: list[tuple[str, float | None, float]], window: int
) -> None:
    full = [(s, c if v > 0 else None, v if c is not None else 0.0, c) for s, c, v in rows]
    full = [(s, c, v, c if v > 0 else None) for s, c, v, _ in full]
    bars = make_bars(
        [(s, c, 0.0) for s, c, _, _ in full],
        vwap=[r[3] for r in full],
        volume=[r[2] for r in full],
    )
    out = amihud(bars, window=window).collect()["amihud"].to_list()
    expected = amihud_reference(full, window)
    assert [v is None for v in out] == [v is None for v in expected]
    assert [v for v in out if v is not None] == pytest.approx(
        [v for v in expected if v is not None], rel=1e-12
    )


# --- roll_spread -------------------------------------------------------------------------------


def roll_covariance(prices: list[float]) -> Fraction | None:
    """Exact sample covariance of (Δp_t, Δp_{t−1}) on the decimal prices; None if < 2 pairs."""
    exact = [Fraction(str(p)) for p in prices]
    changes = [b - a for a, b in itertools.pairwise(exact)]
    pairs = list(zip(changes[1:], changes, strict=False))
    m = len(pairs)
    if m < 2:
        return None
    ma = sum((a for a, _ in pairs), Fraction(0)) / m
    mb = sum((b for _, b in pairs), Fraction(0)) / m
    return sum(((a - ma) * (b - mb) for a, b in pairs), Fraction(0)) / (m - 1)


def test_roll_spread_bid_ask_bounce_and_nulls_per_bar() -> None:
    trades = make_trades(
        [("X", s, p, 1.0, 0) for s, p in enumerate([10.00, 10.02, 10.00, 10.02, 10.02, 10.00])]
        + [("X", 60 + s, p, 1.0, 0) for s, p in enumerate([10.00, 10.01, 10.02, 10.03, 10.04])]
        + [("X", 120 + s, p, 1.0, 0) for s, p in enumerate([10.00, 10.02, 10.00])]
        + [("X", 180 + s, 10.0, 1.0, 0) for s in range(6)]
        + [("Y", 0, 5.0, 1.0, 0)]
    )
    out = roll_spread(trades.sort("ts", maintain_order=True), every="1m").collect()
    assert out["symbol"].to_list() == ["X", "X", "X", "X", "Y"]
    assert out["ts"].to_list() == [at(0), at(60), at(120), at(180), at(0)]
    spread = out["roll_spread"].to_list()
    assert spread[0] == pytest.approx(2 * math.sqrt(0.0007 / 3), rel=1e-9)
    # A trend (cov ≥ 0), 3 trades (one pair), constant prices and one trade: null, not 0.
    assert spread[1:] == [None, None, None, None]


def test_roll_spread_eager_lazy_streaming_and_bad_bar() -> None:
    trades = make_trades(
        [("X", s, p, 1.0, 0) for s, p in enumerate([1.0, 2.0, 1.0, 2.0, 1.5, 2.0, 1.0])]
    )
    lazy = roll_spread(trades, every="5s")
    assert_frame_equal(lazy.collect(), roll_spread(trades.collect().lazy(), every="5s").collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))
    with pytest.raises(ParameterError, match="bar length"):
        roll_spread(trades, every="-1m")


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(0, 179),
            st.sampled_from([9.9, 10.0, 10.01, 10.02, 10.1]),
        ),
        max_size=40,
    )
)
def test_roll_spread_matches_reference_and_is_null_iff_cov_not_negative(
    rows: list[tuple[str, int, float]],
) -> None:
    data = sorted(rows, key=lambda r: r[1])
    trades = make_trades([(s, float(t), p, 1.0, 0) for s, t, p in data])
    out = roll_spread(trades, every="1m").collect()
    bars: dict[tuple[str, int], list[float]] = defaultdict(list)
    for s, t, p in data:
        bars[(s, t // 60)].append(p)
    got = {
        (r["symbol"], int((r["ts"] - T0).total_seconds() // 60)): r["roll_spread"]
        for r in out.iter_rows(named=True)
    }
    assert got.keys() == bars.keys()
    for key, prices in bars.items():
        cov = roll_covariance(prices)
        if cov is None or cov >= 0:
            assert got[key] is None
        else:
            assert got[key] == pytest.approx(2 * math.sqrt(-cov), rel=1e-9)


# --- degenerate input --------------------------------------------------------------------------


def test_every_function_gives_nulls_not_errors_on_empty_and_single_trade_input() -> None:
    empty_quotes = make_quotes([])
    for rows in ([], [("X", 0.0, 10.0, 1.0, 1)]):
        trades = attach_quotes(make_trades(rows), empty_quotes)
        costs = trade_costs(trades, empty_quotes).collect()
        assert costs.height == len(rows)
        assert costs.select(COSTS + COSTS_BPS).null_count().row(0) == (len(rows),) * 6
        bars = cost_bars(costs.lazy(), every="1m").collect()
        assert bars.select(COSTS).null_count().row(0) == (len(rows),) * 3
        assert roll_spread(trades, every="1m").collect()["roll_spread"].null_count() == len(rows)
    flat = make_bars([("X", 10.0, 0.0)] * 5, volume=[0.0] * 5)
    assert kyle_lambda(flat).collect()["kyle_lambda"].null_count() == 5
    assert amihud(flat).collect()["amihud"].null_count() == 5
    assert kyle_lambda(make_bars([])).collect().height == 0
    assert amihud(make_bars([])).collect().height == 0


def test_bar_functions_name_a_missing_column() -> None:
    bars = make_bars([("X", 10.0, 1.0)])
    with pytest.raises(SchemaError, match="bars is missing column"):
        kyle_lambda(bars, flow="signed_volume")
    with pytest.raises(SchemaError, match="vwap"):
        amihud(bars.drop("vwap"))
    with pytest.raises(SchemaError, match="price"):
        roll_spread(make_trades([]).drop("price"), every="1m")
