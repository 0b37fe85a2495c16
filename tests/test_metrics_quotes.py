from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.metrics.classify import quote_is_usable
from mmflow.metrics.quotes import attach_quotes
from tests.helpers import bbo_quotes

T0 = datetime(2024, 7, 1, tzinfo=UTC)
UTC_NS = pl.Datetime("ns", "UTC")


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def trades_frame(rows: list[tuple[int, str, float]], **bbo: list[float | None]) -> pl.LazyFrame:
    data: dict[str, list[object]] = {
        "ts": [at(r[0]) for r in rows],
        "symbol": [r[1] for r in rows],
        "price": [r[2] for r in rows],
    }
    data.update(bbo)  # type: ignore[arg-type]
    schema: dict[str, pl.DataType] = {"ts": UTC_NS, "symbol": pl.String(), "price": pl.Float64()}
    schema.update({name: pl.Float64() for name in bbo})
    return pl.LazyFrame(data, schema=schema).sort("ts", maintain_order=True)


def quotes_frame(rows: list[tuple[int, str, float | None, float | None]]) -> pl.LazyFrame:
    ts, symbols = [at(r[0]) for r in rows], [r[1] for r in rows]
    bids, asks = [r[2] for r in rows], [r[3] for r in rows]
    return bbo_quotes(ts, symbols, bids, asks, ask_size=2.0).sort("ts", maintain_order=True)


QUOTES = quotes_frame([(0, "X", 10.0, 10.2), (100, "X", 10.1, 10.3), (100, "Y", 50.0, 51.0)])


def test_strict_match_ignores_a_quote_at_the_same_instant() -> None:
    out = attach_quotes(trades_frame([(100, "X", 10.3)]), QUOTES).collect()
    assert out.select("bid_price", "ask_price", "mid_price", "spread").row(0) == (
        10.0,
        10.2,
        10.1,
        10.2 - 10.0,
    )
    assert out["quote_source"].to_list() == ["quotes"]


def test_at_or_before_match_takes_the_same_instant_quote() -> None:
    out = attach_quotes(trades_frame([(100, "X", 10.3)]), QUOTES, match="at-or-before").collect()
    assert out.select("bid_price", "ask_price").row(0) == (10.1, 10.3)


def test_lag_uses_older_quotes() -> None:
    trades = trades_frame([(150, "X", 10.3)])
    assert attach_quotes(trades, QUOTES).collect()["bid_price"].to_list() == [10.1]
    lagged = attach_quotes(trades, QUOTES, lag="100ms").collect()
    assert lagged["bid_price"].to_list() == [10.0]


def test_quotes_of_other_symbols_are_never_used() -> None:
    out = attach_quotes(trades_frame([(500, "Z", 1.0)]), QUOTES).collect()
    assert out["bid_price"].to_list() == [None]
    assert out["quote_source"].to_list() == [None]
    assert out["quote_usable"].to_list() == [False]


def test_trade_with_its_own_bbo_keeps_it() -> None:
    trades = trades_frame(
        [(150, "X", 10.3), (160, "X", 10.3)],
        bid_price=[9.0, None],
        bid_size=[5.0, None],
        ask_price=[9.5, None],
        ask_size=[6.0, None],
    )
    out = attach_quotes(trades, QUOTES).collect()
    assert out.select("bid_price", "ask_price", "quote_source").rows() == [
        (9.0, 9.5, "trade"),
        (10.1, 10.3, "quotes"),
    ]


def test_no_quotes_uses_only_the_trades_own_bbo() -> None:
    trades = trades_frame(
        [(1, "X", 1.0)], bid_price=[0.9], bid_size=[1.0], ask_price=[1.1], ask_size=[1.0]
    )
    out = attach_quotes(trades, None).collect()
    assert out.select("mid_price", "quote_source").row(0) == (1.0, "trade")
    bare = attach_quotes(trades_frame([(1, "X", 1.0)]), None).collect()
    assert bare.select("bid_price", "mid_price", "quote_source", "quote_usable").row(0) == (
        None,
        None,
        None,
        False,
    )


def test_crossed_locked_and_one_sided_quotes_are_not_usable() -> None:
    quotes = quotes_frame([(0, "A", 10.0, 9.0), (0, "B", 10.0, 10.0), (0, "C", None, 10.0)])
    trades = trades_frame([(1, "A", 10.0), (1, "B", 10.0), (1, "C", 10.0)])
    out = attach_quotes(trades, quotes).collect().sort("symbol")
    assert out["quote_usable"].to_list() == [False, False, False]
    assert out["mid_price"].to_list() == [None, None, None]
    assert out["quote_source"].to_list() == ["quotes", "quotes", "quotes"]


def test_quote_is_usable_truth_table() -> None:
    df = pl.DataFrame(
        {"bid_price": [1.0, 1.0, 2.0, None, 1.0], "ask_price": [2.0, 1.0, 1.0, 2.0, None]}
    )
    assert df.select(quote_is_usable())["bid_price"].to_list() == [True, False, False, False, False]


def reference_match(
    trades: list[tuple[int, str, float]],
    quotes: list[tuple[int, str, float | None, float | None]],
    *,
    strict: bool,
    lag_ms: int,
) -> list[tuple[float | None, float | None]]:
    """Slow loop: the last quote (in time order, then file order) of the symbol before the trade."""
    ordered = sorted(enumerate(quotes), key=lambda iq: (iq[1][0], iq[0]))
    out = []
    for ts, symbol, _ in sorted(trades, key=lambda t: t[0]):
        limit = ts - lag_ms
        best: tuple[float | None, float | None] = (None, None)
        for _, (qts, qsym, bid, ask) in ordered:
            if qsym == symbol and (qts < limit if strict else qts <= limit):
                best = (bid, ask)
        out.append(best)
    return out


@settings(max_examples=150, deadline=None)
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from(["A", "B"]), st.just(1.0)), max_size=25
    ),
    quotes=st.lists(
        st.tuples(
            st.integers(0, 50),
            st.sampled_from(["A", "B", "C"]),
            st.sampled_from([1.0, 2.0, None]),
            st.sampled_from([3.0, 4.0, None]),
        ),
        max_size=25,
    ),
    strict=st.booleans(),
    lag_ms=st.sampled_from([0, 5]),
)
def test_attach_quotes_matches_reference_loop(
    trades: list[tuple[int, str, float]],
    quotes: list[tuple[int, str, float | None, float | None]],
    strict: bool,
    lag_ms: int,
) -> None:
    out = attach_quotes(
        trades_frame(sorted(trades, key=lambda t: t[0])),
        quotes_frame(quotes),
        match="strict" if strict else "at-or-before",
        lag=f"{lag_ms}ms",
    ).collect()
    got = list(zip(out["bid_price"].to_list(), out["ask_price"].to_list(), strict=True))
    assert got == reference_match(trades, quotes, strict=strict, lag_ms=lag_ms)
