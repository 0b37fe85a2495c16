from __future__ import annotations

from fractions import Fraction
from typing import Literal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.metrics.classify import (
    clnv,
    depth_rule,
    emo,
    lee_ready,
    quote_is_usable,
    quote_rule,
    reverse_tick_rule,
    tick_rule,
)
from mmflow.metrics.signing import sign_trades
from mmflow.metrics.signing import sign_trades as sign_by_method
from tests.helpers import tick_rule_reference


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


# --- Quote-based classifiers and the reverse tick rule (metrics.md §b.1) ---------------------

QuoteMethod = Literal["quote", "lee_ready", "emo", "clnv", "depth"]
QUOTE_METHODS: tuple[QuoteMethod, ...] = ("quote", "lee_ready", "emo", "clnv", "depth")
TICK = 0.01

# (symbol, price, bid, ask, bid size, ask size), prices in integer ticks of 0.01.
Row = tuple[str, int, int | None, int | None, float | None, float | None]


def sign_expression(method: QuoteMethod, *, tick: pl.Expr | None = None) -> pl.Expr:
    """The polars classifier for ``method``; the tick fallback per symbol unless given."""
    fallback = tick_rule().over("symbol") if tick is None else tick
    if method == "quote":
        return quote_rule()
    if method == "lee_ready":
        return lee_ready(tick=fallback)
    if method == "emo":
        return emo(tick=fallback)
    if method == "clnv":
        return clnv(tick=fallback)
    return depth_rule(tick=fallback)


def classify_reference(method: QuoteMethod, row: Row, tick: int) -> int:
    """Slow, obviously correct rules on exact integer-tick prices (no floating point)."""
    _, p, b, a, qb, qa = row
    if b is None or a is None or not b < a:
        return 0 if method == "quote" else tick
    # Work in tenths of a tick so the 30 %/70 % and midpoint thresholds are exact integers.
    p10, b10, a10 = 10 * p, 10 * b, 10 * a
    mid10 = Fraction(b10 + a10, 2)
    quote = 1 if p10 > mid10 else -1 if p10 < mid10 else 0
    if method == "quote":
        return quote
    if method == "lee_ready":
        return quote if quote != 0 else tick
    if method == "emo":
        return 1 if p == a else -1 if p == b else tick
    if method == "clnv":
        upper = Fraction(3 * b10 + 7 * a10, 10)  # 0.3B + 0.7A
        lower = Fraction(7 * b10 + 3 * a10, 10)  # 0.7B + 0.3A
        if upper < p10 <= a10:
            return 1
        if b10 <= p10 < lower:
            return -1
        return tick
    if quote != 0:
        return quote
    if qa is not None and qb is not None and qa > qb:
        return 1
    if qa is not None and qb is not None and qa < qb:
        return -1
    return tick


def reference_per_symbol(method: QuoteMethod, rows: list[Row]) -> list[int]:
    """Run ``classify_reference`` over interleaved symbols, keeping tick state per symbol."""
    last_price: dict[str, int] = {}
    last_tick: dict[str, int] = {}
    signs: list[int] = []
    for row in rows:
        symbol, price = row[0], row[1]
        previous = last_price.get(symbol)
        if previous is not None and price != previous:
            last_tick[symbol] = 1 if price > previous else -1
        last_price[symbol] = price
        signs.append(classify_reference(method, row, last_tick.get(symbol, 0)))
    return signs


def reverse_tick_reference(prices: list[float]) -> list[int]:
    """Slow reverse tick rule: compare with the next price that differs, 0 if none."""
    signs: list[int] = []
    for i, price in enumerate(prices):
        later = [q for q in prices[i + 1 :] if q != price]
        signs.append(0 if not later else 1 if price > later[0] else -1)
    return signs


def to_price(ticks: int | None) -> float | None:
    # Integer division rounds once, so the float is exactly float("10.07") etc.
    return None if ticks is None else ticks / 100


def make_quoted_trades(rows: list[Row], *, base: int = 1000) -> pl.DataFrame:
    def shift(ticks: int | None) -> int | None:
        return None if ticks is None else base + ticks

    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "price": [to_price(shift(r[1])) for r in rows],
            "bid_price": [to_price(shift(r[2])) for r in rows],
            "ask_price": [to_price(shift(r[3])) for r in rows],
            "bid_size": [r[4] for r in rows],
            "ask_size": [r[5] for r in rows],
        },
        schema={
            "symbol": pl.String,
            "price": pl.Float64,
            "bid_price": pl.Float64,
            "ask_price": pl.Float64,
            "bid_size": pl.Float64,
            "ask_size": pl.Float64,
        },
    )


def classify_all(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(
        quote=quote_rule(),
        lee_ready=lee_ready(),
        emo=emo(),
        clnv=clnv(),
        depth=depth_rule(),
        tick=tick_rule(),
    )


def signs_frame(**columns: list[int]) -> pl.DataFrame:
    return pl.DataFrame({k: pl.Series(v, dtype=pl.Int8) for k, v in columns.items()})


def orient(draw: tuple[str, int, int | None, int | None, float | None, float | None, bool]) -> Row:
    """Put bid below ask when asked to, so most drawn quotes are valid."""
    symbol, price, bid, ask, bid_size, ask_size, valid = draw
    if valid and bid is not None and ask is not None:
        bid, ask = min(bid, ask), max(bid, ask)
    return symbol, price, bid, ask, bid_size, ask_size


# Interleaved symbols, prices on a 21-tick grid (repeats!), valid, crossed, locked and one-sided
# quotes, spreads of 1-20 ticks so that prices land on the midpoint and on the CLNV bounds.
QUOTE_LEVEL = st.one_of(st.none(), st.integers(min_value=0, max_value=20))
QUOTED_SIZE = st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0]))
QUOTED_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.integers(min_value=0, max_value=20),
        QUOTE_LEVEL,
        QUOTE_LEVEL,
        QUOTED_SIZE,
        QUOTED_SIZE,
        st.booleans(),
    ).map(orient),
    max_size=50,
)


# (a) hand-computed tables


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        # metrics.md b.1: B = 10.00, A = 10.10, M = 10.05, previous trade 10.06.
        (10.08, {"quote": 1, "lee_ready": 1, "emo": 1, "clnv": 1, "depth": 1, "tick": 1}),
        (10.02, {"quote": -1, "lee_ready": -1, "emo": -1, "clnv": -1, "depth": -1, "tick": -1}),
        (10.05, {"quote": 0, "lee_ready": -1, "emo": -1, "clnv": -1, "depth": -1, "tick": -1}),
        (10.12, {"quote": 1, "lee_ready": 1, "emo": 1, "clnv": 1, "depth": 1, "tick": 1}),
        (10.10, {"quote": 1, "lee_ready": 1, "emo": 1, "clnv": 1, "depth": 1, "tick": 1}),
        (10.00, {"quote": -1, "lee_ready": -1, "emo": -1, "clnv": -1, "depth": -1, "tick": -1}),
        # The CLNV boundaries 0.3B + 0.7A = 10.07 and 0.7B + 0.3A = 10.03 belong to the middle.
        (10.07, {"quote": 1, "lee_ready": 1, "emo": 1, "clnv": 1, "depth": 1, "tick": 1}),
        (10.03, {"quote": -1, "lee_ready": -1, "emo": -1, "clnv": -1, "depth": -1, "tick": -1}),
    ],
)
def test_classifiers_metrics_vector_after_a_trade_at_10_06(
    price: float, expected: dict[str, int]
) -> None:
    trades = pl.DataFrame(
        {"price": [10.06, price], "bid_price": 10.00, "ask_price": 10.10, "bid_size": 5.0}
    ).with_columns(ask_size=pl.col("bid_size"))
    out = classify_all(trades).tail(1)
    assert_frame_equal(out, signs_frame(**{k: [v] for k, v in expected.items()}))


@pytest.mark.parametrize(
    ("previous", "price", "expected"),
    [
        # The previous trade is chosen so that the tick sign opposes the quote rule, which
        # shows which rule decided. B = 10.00, A = 10.10.
        (10.11, 10.08, {"quote": 1, "lee_ready": 1, "emo": -1, "clnv": 1, "tick": -1}),
        (10.01, 10.02, {"quote": -1, "lee_ready": -1, "emo": 1, "clnv": -1, "tick": 1}),
        (10.13, 10.12, {"quote": 1, "lee_ready": 1, "emo": -1, "clnv": -1, "tick": -1}),
        (9.97, 9.98, {"quote": -1, "lee_ready": -1, "emo": 1, "clnv": 1, "tick": 1}),
        (10.11, 10.10, {"quote": 1, "lee_ready": 1, "emo": 1, "clnv": 1, "tick": -1}),
        (9.99, 10.00, {"quote": -1, "lee_ready": -1, "emo": -1, "clnv": -1, "tick": 1}),
        (10.04, 10.05, {"quote": 0, "lee_ready": 1, "emo": 1, "clnv": 1, "tick": 1}),
        (10.09, 10.07, {"quote": 1, "lee_ready": 1, "emo": -1, "clnv": -1, "tick": -1}),
        (10.09, 10.071, {"quote": 1, "lee_ready": 1, "emo": -1, "clnv": 1, "tick": -1}),
        (10.01, 10.03, {"quote": -1, "lee_ready": -1, "emo": 1, "clnv": 1, "tick": 1}),
        (10.01, 10.029, {"quote": -1, "lee_ready": -1, "emo": 1, "clnv": -1, "tick": 1}),
    ],
)
def test_classifiers_use_the_tick_rule_exactly_where_their_definition_says(
    previous: float, price: float, expected: dict[str, int]
) -> None:
    trades = pl.DataFrame({"price": [previous, price], "bid_price": 10.00, "ask_price": 10.10})
    out = trades.select(
        quote=quote_rule(), lee_ready=lee_ready(), emo=emo(), clnv=clnv(), tick=tick_rule()
    ).tail(1)
    assert_frame_equal(out, signs_frame(**{k: [v] for k, v in expected.items()}))


@pytest.mark.parametrize(
    ("bid_size", "ask_size", "expected"),
    [(1.0, 5.0, 1), (5.0, 1.0, -1), (3.0, 3.0, -1), (None, 5.0, -1), (5.0, None, -1)],
)
def test_depth_rule_at_midpoint_uses_larger_quoted_side_else_tick_rule(
    bid_size: float | None, ask_size: float | None, expected: int
) -> None:
    # 10.05 is the midpoint; the tick sign (against 10.06) is −1.
    trades = pl.DataFrame(
        {
            "price": [10.06, 10.05],
            "bid_price": 10.00,
            "ask_price": 10.10,
            "bid_size": [1.0, bid_size],
            "ask_size": [1.0, ask_size],
        },
        schema_overrides={"bid_size": pl.Float64, "ask_size": pl.Float64},
    )
    assert trades.select(depth_rule())["price"].to_list() == [1, expected]


NAN = float("nan")


@pytest.mark.parametrize(
    ("previous", "bid_size", "ask_size", "expected"),
    [
        # A NaN ask size is not "larger than any bid size": the tick sign (−1) decides, not +1.
        (10.06, 1.0, NAN, -1),
        # A NaN bid size is not larger than the ask size either: the tick sign (+1), not −1.
        (10.04, NAN, 1.0, 1),
        (10.06, NAN, NAN, -1),
        (10.04, NAN, None, 1),
        # Null sizes were already right, and so are finite ones.
        (10.06, 1.0, None, -1),
        (10.06, 1.0, 5.0, 1),
    ],
)
def test_depth_rule_treats_a_nan_size_like_a_missing_one(
    previous: float, bid_size: float | None, ask_size: float | None, expected: int
) -> None:
    # 10.05 is the midpoint of 10.00/10.10; the tick sign against `previous` is the fallback.
    trades = pl.DataFrame(
        {
            "symbol": "X",
            "price": [previous, 10.05],
            "bid_price": 10.00,
            "ask_price": 10.10,
            "bid_size": [1.0, bid_size],
            "ask_size": [1.0, ask_size],
        },
        schema_overrides={"bid_size": pl.Float64, "ask_size": pl.Float64},
    )
    assert trades.select(depth_rule())["price"].to_list()[1] == expected
    # The same through the command's signing path (usable-quote masking, tick per symbol).
    signed = sign_by_method(trades.lazy(), method="depth").collect()
    assert signed["trade_sign"].to_list()[1] == expected
    assert signed["sign_method"].to_list()[1] == ("depth" if ask_size == 5.0 else "tick")


def test_depth_rule_away_from_midpoint_ignores_sizes() -> None:
    trades = pl.DataFrame(
        {"price": [10.08, 10.02], "bid_price": 10.0, "ask_price": 10.1, "bid_size": [9.0, 1.0]}
    ).with_columns(ask_size=pl.lit(5.0))
    assert trades.select(depth_rule())["price"].to_list() == [1, -1]


@pytest.mark.parametrize(
    ("bid", "ask", "usable"),
    [
        (10.0, 10.1, True),
        (10.1, 10.1, False),  # locked
        (10.1, 10.0, False),  # crossed
        (None, 10.1, False),  # one-sided
        (10.0, None, False),
        (None, None, False),
        (float("nan"), 10.1, False),
        (10.0, float("nan"), False),
        (10.0, float("inf"), False),
        (float("-inf"), 10.1, False),
        (-0.05, 0.05, True),  # spread contracts trade at negative prices
    ],
)
def test_quote_is_usable_only_for_two_sided_finite_uncrossed_quotes(
    bid: float | None, ask: float | None, usable: bool
) -> None:
    quotes = pl.DataFrame(
        {"bid_price": [bid], "ask_price": [ask]},
        schema={"bid_price": pl.Float64, "ask_price": pl.Float64},
    )
    assert quotes.select(quote_is_usable())["bid_price"].to_list() == [usable]


@pytest.mark.parametrize(("bid", "ask"), [(10.1, 10.0), (10.0, 10.0), (None, 10.1), (10.0, None)])
def test_quote_rules_without_usable_quote_fall_back_to_tick_rule(
    bid: float | None, ask: float | None
) -> None:
    trades = pl.DataFrame(
        {"price": [10.2, 10.08], "bid_price": bid, "ask_price": ask, "bid_size": [1.0, 1.0]},
        schema_overrides={"bid_price": pl.Float64, "ask_price": pl.Float64},
    ).with_columns(ask_size=pl.lit(2.0))
    out = classify_all(trades).tail(1)
    expected = {"quote": 0, "lee_ready": -1, "emo": -1, "clnv": -1, "depth": -1, "tick": -1}
    assert_frame_equal(out, signs_frame(**{k: [v] for k, v in expected.items()}))


def test_quote_rule_nan_or_null_price_is_unknown() -> None:
    trades = pl.DataFrame(
        {"price": [float("nan"), None], "bid_price": 10.0, "ask_price": 10.1},
        schema_overrides={"price": pl.Float64},
    )
    assert trades.select(quote_rule())["price"].to_list() == [0, 0]
    assert trades.select(emo(tick=pl.lit(0)))["price"].to_list() == [0, 0]
    assert trades.select(clnv(tick=pl.lit(0)))["price"].to_list() == [0, 0]


def test_reverse_tick_rule_metrics_vector_looks_ahead() -> None:
    # 10.00, 10.01, 10.01, 10.00, 10.00, 10.02: each against the next differing price.
    df = pl.DataFrame({"price": [10.00, 10.01, 10.01, 10.00, 10.00, 10.02]})
    assert df.select(reverse_tick_rule())["price"].to_list() == [-1, 1, 1, -1, -1, 0]


def test_reverse_tick_rule_constant_prices_stay_unknown() -> None:
    df = pl.DataFrame({"price": [5.0, 5.0, 5.0]})
    assert df.select(reverse_tick_rule())["price"].to_list() == [0, 0, 0]


def test_classifiers_keep_price_name_and_default_fallback_is_tick_rule() -> None:
    trades = pl.DataFrame({"px": [10.06, 10.05], "bid_price": 10.0, "ask_price": 10.1})
    out = trades.select(lee_ready("px"), emo("px").alias("emo"))
    assert out.columns == ["px", "emo"]
    assert out.row(1) == (-1, -1)


def test_classifiers_with_zero_tick_return_only_the_quote_part() -> None:
    # How callers get the quote-based decision alone: pass a zero fallback.
    trades = pl.DataFrame(
        {"price": [10.0, 10.05, 10.08, 10.12], "bid_price": 10.0, "ask_price": 10.1}
    )
    zero = pl.lit(0, pl.Int8)
    out = trades.select(
        lee_ready(tick=zero).alias("lr"), emo(tick=zero).alias("emo"), clnv(tick=zero)
    )
    assert out.rows() == [(-1, -1, -1), (0, 0, 0), (1, 0, 1), (1, 0, 0)]


def test_clnv_and_emo_boundaries_survive_float_arithmetic() -> None:
    # Quotes and prices computed in different ways differ from the decimal by an ulp or so;
    # prices on a CLNV boundary must still go to the tick rule, on a quote to the quote.
    n = 2000
    bid = [(10_000 + 37 * i) * 0.01 for i in range(n)]  # 100.00 … ~840, by multiplication
    ask = [(10_000 + 37 * i + 10) / 100 for i in range(n)]  # spread 10 ticks, by division
    df = pl.DataFrame({"bid_price": bid, "ask_price": ask})
    zero = pl.lit(0, pl.Int8)
    for fraction in (0.3, 0.7):
        at = df.with_columns(price=pl.col("bid_price") + fraction * 10 * 0.01)
        assert at.select(clnv(tick=zero))["price"].unique().to_list() == [0]
    at_ask = df.with_columns(price=pl.col("bid_price") + 0.1)
    assert at_ask.select(emo(tick=zero))["price"].unique().to_list() == [1]
    at_bid = df.with_columns(price=pl.col("ask_price") - 0.1)
    assert at_bid.select(emo(tick=zero))["price"].unique().to_list() == [-1]
    at_mid = df.with_columns(price=(pl.col("bid_price") + pl.col("ask_price")) / 2)
    assert at_mid.select(quote_rule())["price"].unique().to_list() == [0]


# (b) eager == lazy == streaming


@pytest.mark.parametrize("method", QUOTE_METHODS)
def test_quote_classifiers_eager_equals_lazy_and_streaming(method: QuoteMethod) -> None:
    rows: list[Row] = [
        ("A", 6, 0, 10, 1.0, 2.0),
        ("B", 5, 0, 10, 2.0, 1.0),
        ("A", 5, 0, 10, 1.0, 2.0),
        ("B", 12, 0, 10, None, 1.0),
        ("A", 5, None, 10, 1.0, 2.0),
        ("A", 7, 0, 10, 3.0, 3.0),
        ("B", 3, 10, 0, 1.0, 1.0),
    ]
    df = make_quoted_trades(rows)
    expr = sign_expression(method).alias("sign")
    eager = df.select(expr)
    assert_frame_equal(eager, df.lazy().select(expr).collect())
    assert_frame_equal(eager, df.lazy().select(expr).collect(engine="streaming"))
    assert eager["sign"].to_list() == reference_per_symbol(method, rows)


def test_reverse_tick_rule_eager_equals_lazy_and_streaming() -> None:
    df = pl.DataFrame({"symbol": ["A", "B", "A", "B", "A"], "price": [3.0, 2.0, 2.0, 4.0, 2.0]})
    expr = reverse_tick_rule().over("symbol")
    eager = df.select(expr)
    assert_frame_equal(eager, df.lazy().select(expr).collect())
    assert_frame_equal(eager, df.lazy().select(expr).collect(engine="streaming"))
    assert eager["price"].to_list() == [1, -1, 0, 0, 0]


# (c) oracle: slow reference loops


@settings(max_examples=150, deadline=None)
@given(rows=QUOTED_ROWS, base=st.sampled_from([0, 1000, 10_000_000]))
def test_quote_classifiers_match_reference_loop_on_interleaved_symbols(
    rows: list[Row], base: int
) -> None:
    # base shifts the grid: prices near 0.00, 10.00 and 100 000.00.
    df = make_quoted_trades(rows, base=base)
    out = df.select(*(sign_expression(m).alias(m) for m in QUOTE_METHODS))
    for method in QUOTE_METHODS:
        assert out[method].to_list() == reference_per_symbol(method, rows), method


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from([1.0, 1.5, 2.0])),
        max_size=60,
    )
)
def test_reverse_tick_rule_matches_reference_loop_on_interleaved_symbols(
    rows: list[tuple[str, float]],
) -> None:
    df = pl.DataFrame(
        {"symbol": [s for s, _ in rows], "price": [p for _, p in rows]},
        schema={"symbol": pl.String, "price": pl.Float64},
    )
    out = df.select(reverse_tick_rule().over("symbol"))["price"].to_list()
    expected = [0] * len(rows)
    for symbol in {s for s, _ in rows}:
        positions = [i for i, (s, _) in enumerate(rows) if s == symbol]
        signs = reverse_tick_reference([rows[i][1] for i in positions])
        for i, sign in zip(positions, signs, strict=True):
            expected[i] = sign
    assert out == expected


# (d) invariants


@settings(max_examples=100, deadline=None)
@given(rows=QUOTED_ROWS)
def test_quote_classifiers_invariants(rows: list[Row]) -> None:
    df = make_quoted_trades(rows)
    tick = tick_rule().over("symbol")
    out = df.select(
        usable=quote_is_usable(),
        tick=tick,
        quote=quote_rule(),
        lee_ready=lee_ready(tick=tick),
        emo=emo(tick=tick),
        clnv=clnv(tick=tick),
        depth=depth_rule(tick=tick),
        price=pl.col("price"),
        bid=pl.col("bid_price"),
        ask=pl.col("ask_price"),
    )
    for method in QUOTE_METHODS:
        assert out.schema[method] == pl.Int8
        assert out[method].null_count() == 0
        assert set(out[method].to_list()) <= {-1, 0, 1}
    assert out.schema["usable"] == pl.Boolean
    decided = out.filter(pl.col("quote") != 0)
    # Lee-Ready and the depth rule are the quote rule wherever it decides.
    assert decided["lee_ready"].to_list() == decided["quote"].to_list()
    assert decided["depth"].to_list() == decided["quote"].to_list()
    # EMO and CLNV agree with the quote rule wherever they use the quotes: EMO at the quotes,
    # CLNV inside the quotes outside the middle 40 %.
    at_quote = (pl.col("price") == pl.col("bid")) | (pl.col("price") == pl.col("ask"))
    at_quotes = out.filter(pl.col("usable") & at_quote)
    assert at_quotes["emo"].to_list() == at_quotes["quote"].to_list()
    spread = pl.col("ask") - pl.col("bid")
    near_quotes = out.filter(
        pl.col("usable")
        & pl.col("price").is_between(pl.col("bid"), pl.col("ask"))
        & ~pl.col("price").is_between(
            pl.col("bid") + 0.3 * spread - 1e-9, pl.col("bid") + 0.7 * spread + 1e-9
        )
    )
    assert near_quotes["clnv"].to_list() == near_quotes["quote"].to_list()
    # Without a usable quote every quote-based rule is the tick rule (and the quote rule 0).
    unquoted = out.filter(~pl.col("usable"))
    assert set(unquoted["quote"].to_list()) <= {0}
    for method in ("lee_ready", "emo", "clnv", "depth"):
        assert unquoted[method].to_list() == unquoted["tick"].to_list(), method


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([99.0, 99.5, 100.0, 100.5]), max_size=60))
def test_reverse_tick_rule_is_tick_rule_backwards_in_time(prices: list[float]) -> None:
    df = pl.DataFrame({"price": prices}, schema={"price": pl.Float64})
    reverse = df.select(reverse_tick_rule())["price"].to_list()
    # Exactly: the reverse tick rule is the tick rule run on the reversed prices, reversed.
    backwards = df.reverse().select(tick_rule())["price"].to_list()[::-1]
    assert reverse == backwards
    # And trade t's reverse tick sign is minus the tick sign of the first later trade whose
    # price differs from P_t (0 when there is none).
    tick = df.select(tick_rule())["price"].to_list()
    for t, price in enumerate(prices):
        later = next((s for s in range(t + 1, len(prices)) if prices[s] != price), None)
        assert reverse[t] == (0 if later is None else -tick[later])
    assert df.select(reverse_tick_rule()).dtypes == [pl.Int8]
