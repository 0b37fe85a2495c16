from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.metrics.signing import TRADE_METHODS, evaluate_signing, method_mix, sign_trades
from tests.helpers import bbo_quotes

T0 = datetime(2024, 7, 1, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")


def trades(
    prices: list[float],
    *,
    sides: list[int] | None = None,
    symbols: list[str] | None = None,
    ms: list[int] | None = None,
    sizes: list[float] | None = None,
) -> pl.LazyFrame:
    n = len(prices)
    return pl.LazyFrame(
        {
            "ts": [
                T0 + timedelta(milliseconds=m) for m in (ms or [10 * (i + 1) for i in range(n)])
            ],
            "symbol": symbols or ["X"] * n,
            "price": prices,
            "size": sizes or [1.0] * n,
            "aggressor_side": sides or [0] * n,
        },
        schema={
            "ts": UTC_NS,
            "symbol": pl.String,
            "price": pl.Float64,
            "size": pl.Float64,
            "aggressor_side": pl.Int8,
        },
    ).sort("ts", maintain_order=True)


def quotes(rows: list[tuple[int, str, float | None, float | None]]) -> pl.LazyFrame:
    ts = [T0 + timedelta(milliseconds=r[0]) for r in rows]
    bids, asks = [r[2] for r in rows], [r[3] for r in rows]
    frame = bbo_quotes(ts, [r[1] for r in rows], bids, asks, bid_size=5.0, ask_size=7.0)
    return frame.sort("ts", maintain_order=True)


def test_auto_uses_vendor_then_lee_ready_then_tick() -> None:
    # quote 10.00 / 10.10 from t=0; trades at 10, 20, 30, 40 ms
    t = trades([10.08, 10.05, 10.06, 10.02], sides=[-1, 0, 0, 0])
    q = quotes([(0, "X", 10.00, 10.10)])
    out = sign_trades(t, q, method="auto").collect()
    assert out["trade_sign"].to_list() == [-1, -1, 1, -1]
    assert out["sign_method"].to_list() == ["vendor", "tick", "lee_ready", "lee_ready"]
    assert out["aggressor_side"].to_list() == [-1, 0, 0, 0]
    assert out["mid_price"].to_list() == [10.05] * 4


def test_metrics_vector_through_sign_trades() -> None:
    # metrics.md b.1: B = 10.00, A = 10.10, previous trade 10.06, then P
    q = quotes([(0, "X", 10.00, 10.10)])
    expected = {
        10.08: {"lee-ready": 1, "emo": 1, "clnv": 1},
        10.02: {"lee-ready": -1, "clnv": -1},
        10.05: {"lee-ready": -1, "emo": -1, "clnv": -1},
        10.12: {"lee-ready": 1, "emo": 1, "clnv": 1},
        10.10: {"emo": 1},
    }
    for price, signs in expected.items():
        for method, sign in signs.items():
            out = sign_trades(trades([10.06, price]), q, method=method).collect()  # type: ignore[arg-type]
            assert out["trade_sign"].to_list()[1] == sign, (price, method)


def test_crossed_quote_falls_back_to_tick_and_says_so() -> None:
    t = trades([10.0, 10.5])
    q = quotes([(0, "X", 10.6, 10.4)])
    out = sign_trades(t, q, method="lee-ready").collect()
    assert out["trade_sign"].to_list() == [0, 1]
    assert out["sign_method"].to_list() == ["none", "tick"]
    assert out["quote_usable"].to_list() == [False, False]


def test_quote_method_leaves_midpoint_trades_unsigned() -> None:
    out = sign_trades(trades([10.05]), quotes([(0, "X", 10.0, 10.1)]), method="quote").collect()
    assert out.select("trade_sign", "sign_method").row(0) == (0, "none")


def test_nan_price_is_unsigned_and_does_not_break_tick_state() -> None:
    out = sign_trades(trades([10.0, 11.0, math.nan, 11.0, 10.5]), method="tick").collect()
    assert out["trade_sign"].to_list() == [0, 1, 0, 1, -1]
    assert out["sign_method"].to_list() == ["none", "tick", "none", "tick", "tick"]


def test_session_column_resets_tick_state() -> None:
    t = trades([10.0, 11.0, 11.0, 11.0]).with_columns(
        pl.Series("session", [1, 1, 2, 2], dtype=pl.Int32)
    )
    out = sign_trades(t, method="tick").collect()
    assert out["trade_sign"].to_list() == [0, 1, 0, 0]


def test_reverse_tick_looks_ahead() -> None:
    out = sign_trades(trades([10.0, 11.0, 11.0, 10.0]), method="reverse-tick").collect()
    assert out["trade_sign"].to_list() == [-1, 1, 1, 0]


def test_bvc_is_not_a_per_trade_method() -> None:
    from mmflow.errors import ParameterError

    with pytest.raises(ParameterError, match="bvc classifies volume per bar"):
        sign_trades(trades([1.0]), method="bvc")


def test_method_mix_counts_and_shares() -> None:
    t = trades([10.08, 10.05, 10.06, 10.02], sides=[-1, 0, 0, 0], sizes=[1.0, 2.0, 3.0, 4.0])
    mix = method_mix(sign_trades(t, quotes([(0, "X", 10.0, 10.1)]))).collect()
    assert mix.rows() == [
        ("X", "lee_ready", 2, 7.0, 0.5),
        ("X", "tick", 1, 2.0, 0.25),
        ("X", "vendor", 1, 1.0, 0.25),
    ]


def reference_scores(signs: list[int], truth: list[int]) -> tuple[int, int, int, float | None]:
    pairs = [(s, v) for s, v in zip(signs, truth, strict=True) if v != 0]
    classified = sum(1 for s, _ in pairs if s != 0)
    correct = sum(1 for s, v in pairs if s == v)
    return len(pairs), classified, correct, (correct / classified if classified else None)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(1, 200),
            st.sampled_from(["A", "B"]),
            st.sampled_from([9.9, 10.0, 10.05, 10.1, 10.2]),
            st.sampled_from([-1, 0, 1]),
        ),
        min_size=1,
        max_size=40,
    ),
    quote_rows=st.lists(
        st.tuples(
            st.integers(0, 200),
            st.sampled_from(["A", "B"]),
            st.sampled_from([9.9, 10.0, None]),
            st.sampled_from([10.1, 10.2, None]),
        ),
        max_size=20,
    ),
)
def test_evaluation_scores_match_a_reference_count(
    rows: list[tuple[int, str, float, int]],
    quote_rows: list[tuple[int, str, float | None, float | None]],
) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    t = trades(
        [r[2] for r in rows],
        sides=[r[3] for r in rows],
        symbols=[r[1] for r in rows],
        ms=[r[0] for r in rows],
    )
    q = quotes(quote_rows)
    scores = evaluate_signing(t, q).scores.collect()
    for method in TRADE_METHODS:
        signed = sign_trades(t, q, method=method).collect()
        for symbol in ("A", "B"):
            part = signed.filter(pl.col("symbol") == symbol)
            n, classified, correct, accuracy = reference_scores(
                part["trade_sign"].to_list(), part["aggressor_side"].to_list()
            )
            got = scores.filter((pl.col("symbol") == symbol) & (pl.col("method") == method))
            if n == 0 or (
                method in ("quote", "lee-ready", "emo", "clnv", "depth") and got.height == 0
            ):
                continue
            row = got.row(0, named=True)
            assert (row["trades"], row["classified"], row["correct"]) == (n, classified, correct)
            assert (
                row["accuracy"] == pytest.approx(accuracy)
                if accuracy is not None
                else (row["accuracy"] is None)
            )


def test_evaluation_bvc_is_scored_by_volume() -> None:
    # two 1-minute bars per symbol would leave BVC undefined; build six bars with known flow
    prices = [100.0, 101.0, 100.0, 103.0, 101.0, 100.0]
    ms = [60_000 * i + 1 for i in range(6)]
    t = trades(prices, sides=[1, 1, -1, 1, -1, -1], ms=ms, sizes=[10.0] * 6)
    row = evaluate_signing(t).scores.collect().filter(pl.col("method") == "bvc").row(0, named=True)
    # reference: dP = 1, -1, 3, -2, -1 -> sigma = 2 (sample std); V_B = V * Phi(dP / sigma)
    sigma = 2.0
    hits = 0.0
    for dp, side in zip([1, -1, 3, -2, -1], [1, -1, 1, -1, -1], strict=True):
        buy = 10 * 0.5 * math.erfc(-dp / sigma / math.sqrt(2))
        hits += min(buy, 10.0 if side == 1 else 0.0) + min(10 - buy, 10.0 if side == -1 else 0.0)
    assert row["classified"] == 5
    assert row["accuracy"] == pytest.approx(hits / 50.0, rel=1e-9)


def test_evaluation_lag_grid_needs_separate_quotes() -> None:
    t = trades([10.08, 10.02], sides=[1, -1], ms=[100, 2_000])
    q = quotes([(0, "X", 10.0, 10.1), (1_500, "X", 10.05, 10.2)])
    lags = evaluate_signing(t, q).lags.collect()
    assert lags["quote_lag"].to_list() == ["0s", "50ms", "100ms", "500ms", "1s"]
    # at 1 s lag the second trade (2.0 s) sees the first quote: 10.02 < 10.05 -> -1 still
    assert lags["accuracy"].to_list() == [1.0] * 5
    assert evaluate_signing(t, None).lags.collect().height == 0


_ODD_PRICES = [10.0, 10.05, 10.1, 9.9, 10.05 + 1e-13, float("nan"), float("inf"), -1.0, None]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(_ODD_PRICES),
            st.sampled_from([10.0, 10.05, 9.9, float("nan"), float("-inf"), None]),
            st.sampled_from([10.1, 10.05, 10.0, float("nan"), float("inf"), None]),
            st.sampled_from([-1, 0, 1]),
            st.sampled_from([-1, 0, 1]),
        ),
        min_size=1,
        max_size=30,
    ),
    method=st.sampled_from(["quote", "lee-ready", "auto"]),
)
def test_staged_quote_rule_equals_the_nested_classify_expressions(
    rows: list[tuple[float | None, float | None, float | None, int, int]], method: str
) -> None:
    """with_signs runs the quote rule in flat steps; the nested classify expressions are the
    reference (locked, crossed, one-sided and non-finite quotes, NaN/inf/missing prices).
    The tick sign is given (a column), so only the quote rule and its combination are compared."""
    from mmflow.metrics.classify import lee_ready, quote_rule
    from mmflow.metrics.quotes import QUOTE_USABLE
    from mmflow.metrics.signing import with_signs

    frame = pl.DataFrame(
        {
            "symbol": ["X"] * len(rows),
            "price": [r[0] for r in rows],
            "bid_price": [r[1] for r in rows],
            "ask_price": [r[2] for r in rows],
            "aggressor_side": [r[3] for r in rows],
            "tick": [r[4] for r in rows],
        },
        schema={
            "symbol": pl.String,
            "price": pl.Float64,
            "bid_price": pl.Float64,
            "ask_price": pl.Float64,
            "aggressor_side": pl.Int8,
            "tick": pl.Int8,
        },
    )
    from mmflow.metrics.classify import quote_is_usable

    frame = frame.with_columns(quote_is_usable().alias(QUOTE_USABLE))
    tick = pl.col("tick")
    got = with_signs(frame.lazy(), method, tick=tick).collect()["trade_sign"]  # type: ignore[arg-type]
    clean = pl.col("price").fill_nan(None)
    masked = [pl.when(pl.col(QUOTE_USABLE)).then(pl.col(c)) for c in ("bid_price", "ask_price")]
    if method == "quote":
        expected = quote_rule(clean, *masked)
    else:
        expected = lee_ready(clean, *masked, tick=tick)
        if method == "auto":
            side = pl.col("aggressor_side")
            expected = pl.when(side != 0).then(side).otherwise(expected)
    want = frame.select(expected.cast(pl.Int8).alias("trade_sign"))["trade_sign"]
    assert got.to_list() == want.to_list()
