from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.metrics.classify import sign_trades, tick_rule


def tick_rule_reference(prices: list[float]) -> list[int]:
    """Slow, obviously correct tick rule: carry the last non-zero change, 0 before any."""
    signs: list[int] = []
    last = 0
    previous: float | None = None
    for price in prices:
        if previous is not None and price != previous:
            last = 1 if price > previous else -1
        signs.append(last)
        previous = price
    return signs


def make_trades(
    prices: list[float], *, symbols: list[str] | None = None, sides: list[int] | None = None
) -> pl.LazyFrame:
    n = len(prices)
    return pl.LazyFrame(
        {
            "symbol": symbols or ["X"] * n,
            "price": prices,
            "aggressor_side": sides or [0] * n,
        },
        schema={"symbol": pl.String, "price": pl.Float64, "aggressor_side": pl.Int8},
    )


def test_tick_rule_metrics_vector_first_trade_unknown() -> None:
    # metrics.md b.1: 10.00, 10.01, 10.01, 10.00, 10.00, 10.02 -> NA, +1, +1, -1, -1, +1
    df = pl.DataFrame({"price": [10.00, 10.01, 10.01, 10.00, 10.00, 10.02]})
    assert df.select(tick_rule())["price"].to_list() == [0, 1, 1, -1, -1, 1]


def test_tick_rule_returns_int8() -> None:
    df = pl.DataFrame({"price": [1.0, 2.0]})
    assert df.select(tick_rule()).dtypes == [pl.Int8]


def test_tick_rule_constant_prices_stay_unknown() -> None:
    df = pl.DataFrame({"price": [5.0, 5.0, 5.0]})
    assert df.select(tick_rule())["price"].to_list() == [0, 0, 0]


def test_tick_rule_eager_equals_lazy() -> None:
    df = pl.DataFrame({"price": [3.0, 2.0, 2.0, 4.0, 4.0, 1.0]})
    eager = df.select(tick_rule())
    lazy = df.lazy().select(tick_rule()).collect()
    streaming = df.lazy().select(tick_rule()).collect(engine="streaming")
    assert_frame_equal(eager, lazy)
    assert_frame_equal(eager, streaming)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([99.0, 99.5, 100.0, 100.5]), max_size=60))
def test_tick_rule_matches_reference_loop(prices: list[float]) -> None:
    df = pl.DataFrame({"price": prices}, schema={"price": pl.Float64})
    assert df.select(tick_rule())["price"].to_list() == tick_rule_reference(prices)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from([1.0, 1.5, 2.0])),
        max_size=60,
    )
)
def test_sign_trades_tick_per_symbol_matches_reference_on_interleaved_symbols(
    rows: list[tuple[str, float]],
) -> None:
    symbols = [s for s, _ in rows]
    prices = [p for _, p in rows]
    out = sign_trades(make_trades(prices, symbols=symbols), method="tick").collect()
    expected = [0] * len(rows)
    for symbol in set(symbols):
        positions = [i for i, s in enumerate(symbols) if s == symbol]
        for i, sign in zip(
            positions, tick_rule_reference([prices[i] for i in positions]), strict=True
        ):
            expected[i] = sign
    assert out["trade_sign"].to_list() == expected
    assert set(out["trade_sign"].to_list()) <= {-1, 0, 1}


def test_sign_trades_auto_prefers_vendor_side_and_never_overwrites_it() -> None:
    trades = make_trades([10.0, 11.0, 10.0, 10.0], sides=[0, -1, 0, 1])
    out = sign_trades(trades, method="auto").collect()
    assert out["aggressor_side"].to_list() == [0, -1, 0, 1]
    assert out["trade_sign"].to_list() == [0, -1, -1, 1]
    assert out["sign_method"].to_list() == ["none", "vendor", "tick", "vendor"]


@pytest.mark.parametrize(
    ("method", "signs", "methods"),
    [
        ("vendor", [0, -1, 0, 1], ["none", "vendor", "none", "vendor"]),
        ("tick", [0, 1, -1, -1], ["none", "tick", "tick", "tick"]),
    ],
)
def test_sign_trades_single_method(method: str, signs: list[int], methods: list[str]) -> None:
    trades = make_trades([10.0, 11.0, 10.0, 10.0], sides=[0, -1, 0, 1])
    out = sign_trades(trades, method=method).collect()  # type: ignore[arg-type]
    assert out["trade_sign"].to_list() == signs
    assert out["sign_method"].to_list() == methods
