"""The phases' price levels over the last W bars (``price_levels``, ``level_dispersion``).

:func:`mmflow.metrics.phase_levels.level_windows` computes them from ±volume events per level
in exact integer units; these tests hold it to a plain loop (for every bar, a dict of level →
volume over its last W bars), to itself in blocks of bars, and to exact rational arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.metrics.phase_columns import _IDX
from mmflow.metrics.phase_levels import _with_levels
from mmflow.metrics.phases import PhaseParameters, _keys, phase_bars

NS_UTC = pl.Datetime("ns", "UTC")
START = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
PRICES = (9.99, 10.0, 10.01, 10.02, 10.05)
SIZES = (0.0, 0.5, 1.0, 2.0, 3.0, 7.0, 0.1)

Row = dict[str, Any]


def minute(k: int) -> datetime:
    return START + timedelta(minutes=k)


def levels_of(
    bars: pl.DataFrame,
    trades: pl.DataFrame | None,
    window: int,
    block_bars: int | None = None,
) -> pl.DataFrame:
    """``_with_levels`` on ``bars`` (the bar index numbered per series as ``phase_bars`` does)."""
    keys = _keys(bars.columns)
    lf = bars.lazy().with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias(_IDX))
    out = _with_levels(
        lf, None if trades is None else trades.lazy(), keys, window, block_bars=block_bars
    )
    return out.collect()


# --- the reference loop ----------------------------------------------------------------------


def _series_key(row: Row, keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


def bar_levels(bars: list[Row], trades: list[Row] | None) -> list[dict[float, float]]:
    """Volume per price level of each bar (in ``bars``' order).

    A trade belongs to the latest bar of its instrument starting at or before it (any session);
    without trades each bar's distinct open/high/low/close hold equal shares of its volume.
    """
    out: list[dict[float, float]] = [{} for _ in bars]
    if trades is None:
        for j, bar in enumerate(bars):
            values = {bar[c] for c in ("open", "high", "low", "close") if bar[c] is not None}
            volume = bar["volume"]
            if volume is not None and volume > 0 and values:
                out[j] = {v: volume / len(values) for v in values}
        return out
    for trade in trades:
        best: int | None = None
        for j, bar in enumerate(bars):
            same = bar["symbol"] == trade["symbol"] and bar.get("venue") == trade.get("venue")
            if same and bar["ts"] <= trade["ts"] and (best is None or bar["ts"] > bars[best]["ts"]):
                best = j
        if best is not None and trade["size"] > 0:
            level = out[best]
            level[trade["price"]] = level.get(trade["price"], 0.0) + trade["size"]
    return out


def reference(
    bars: list[Row], trades: list[Row] | None, keys: Sequence[str], window: int
) -> list[tuple[int, float | None]]:
    """(price_levels, level_dispersion) of every bar: its series' last ``window`` bars."""
    per_bar = bar_levels(bars, trades)
    positions: dict[tuple[Any, ...], list[int]] = {}
    out: list[tuple[int, float | None]] = []
    for j, bar in enumerate(bars):
        series = positions.setdefault(_series_key(bar, keys), [])
        series.append(j)
        volume: dict[float, float] = {}
        for i in series[-window:]:
            for level, v in per_bar[i].items():
                volume[level] = volume.get(level, 0.0) + v
        total = sum(volume.values())
        hhi = sum((v / total) ** 2 for v in volume.values()) if total > 0 else None
        out.append((len(volume), None if hhi is None else max(1.0 - hhi, 0.0)))
    return out


def assert_matches(out: pl.DataFrame, expected: list[tuple[int, float | None]]) -> None:
    assert out["price_levels"].dtype == pl.UInt32
    assert out["price_levels"].to_list() == [e[0] for e in expected]
    for got, (_, want) in zip(out["level_dispersion"].to_list(), expected, strict=True):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


# --- strategies ----------------------------------------------------------------------------

INSTRUMENTS = [(None, "X"), ("A", "X"), (None, "Y"), ("B", "Y")]


@st.composite
def markets(draw: st.DrawFn, *, ohlc: bool) -> tuple[list[Row], list[Row] | None]:
    """Bars of 1–3 instruments (venue null and not, or no venue column), maybe in sessions."""
    with_venue = draw(st.booleans())
    pool = INSTRUMENTS if with_venue else [(None, "X"), (None, "Y")]
    chosen = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    sessions = draw(st.booleans())
    bars: list[Row] = []
    trades: list[Row] = []
    for venue, symbol in chosen:
        n = draw(st.integers(1, 24))
        cut = draw(st.integers(0, n))
        for k in range(n):
            bar: Row = {"symbol": symbol, "ts": minute(k)}
            if with_venue:
                bar["venue"] = venue
            if sessions:
                bar["session"] = "early" if k < cut else "late"
            if ohlc:
                prices = draw(st.lists(st.sampled_from((*PRICES, None)), min_size=4, max_size=4))
                bar.update(zip(("open", "high", "low", "close"), prices, strict=True))
                bar["volume"] = draw(st.sampled_from((None, 0.0, 1.0, 3.0, 10.0, 2.5)))
            bars.append(bar)
            for second in draw(st.lists(st.integers(0, 59), max_size=4)):
                trade: Row = {
                    "symbol": symbol,
                    "ts": minute(k) + timedelta(seconds=second),
                    "price": draw(st.sampled_from(PRICES)),
                    "size": draw(st.sampled_from(SIZES)),
                }
                if with_venue:
                    trade["venue"] = venue
                trades.append(trade)
    bars.sort(key=lambda b: (b["ts"], b["symbol"], b.get("venue") or ""))
    return bars, None if ohlc else trades


def frames(bars: list[Row], trades: list[Row] | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    schema: dict[str, Any] = {"symbol": pl.String, "ts": NS_UTC}
    for name in ("venue", "session"):
        if bars and name in bars[0]:
            schema[name] = pl.String
    if bars and "open" in bars[0]:
        schema.update(dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64))
    bar_frame = pl.DataFrame(bars, schema=schema)
    if trades is None:
        return bar_frame, None
    trade_schema: dict[str, Any] = {
        "symbol": pl.String,
        "ts": NS_UTC,
        "price": pl.Float64,
        "size": pl.Float64,
    }
    if "venue" in schema:
        trade_schema["venue"] = pl.String
    return bar_frame, pl.DataFrame(trades, schema=trade_schema)


# --- against the reference loop ------------------------------------------------------------


@pytest.mark.parametrize("ohlc", [False, True], ids=["trades", "bars only"])
@settings(max_examples=40, deadline=None)
@given(data=st.data(), window=st.integers(1, 7), block=st.integers(1, 9))
def test_levels_match_the_reference_loop(
    ohlc: bool, data: st.DataObject, window: int, block: int
) -> None:
    # Trades: each assigned to its bar; bars only: open/high/low/close sharing the volume.
    bars, trades = data.draw(markets(ohlc=ohlc))
    bar_frame, trade_frame = frames(bars, trades)
    expected = reference(bars, trades, _keys(bar_frame.columns), window)
    assert_matches(levels_of(bar_frame, trade_frame, window, block), expected)
    assert_matches(levels_of(bar_frame, trade_frame, window), expected)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(markets(ohlc=False), markets(ohlc=True)),
    st.integers(1, 20),
    st.integers(1, 12),
)
def test_blocks_of_bars_give_the_whole_series_result(
    market: tuple[list[Row], list[Row] | None], window: int, block: int
) -> None:
    # Trade sizes are whole or half lots (exact in any block's units): identical. The bar
    # approximation's thirds round to a block's unit (2^-61 of its volume): equal to 1e-15.
    bars, trades = market
    bar_frame, trade_frame = frames(bars, trades)
    whole = levels_of(bar_frame, trade_frame, window, 10**6)
    blocks = levels_of(bar_frame, trade_frame, window, block)
    assert blocks["price_levels"].to_list() == whole["price_levels"].to_list()
    got, want = blocks["level_dispersion"].to_list(), whole["level_dispersion"].to_list()
    if trades is not None and all(t["size"] != 0.1 for t in trades):
        assert got == want
    else:
        assert [g is None for g in got] == [w is None for w in want]
        assert all(g is None or abs(g - w) <= 1e-15 for g, w in zip(got, want, strict=True))


def test_phase_bars_levels_per_instrument_and_session_match_the_reference_loop() -> None:
    # The public path: venue null and not, two sessions, trades before the first bar dropped.
    bars: list[Row] = []
    trades: list[Row] = []
    for venue, symbol in [(None, "X"), ("A", "X"), ("B", "Y")]:
        for k in range(12):
            bars.append(
                {
                    "symbol": symbol,
                    "venue": venue,
                    "session": "am" if k < 5 else "pm",
                    "ts": minute(k),
                    "net_flow": float((k * 7) % 5 - 2),
                    "mid_close": 10.0 + 0.01 * (k % 3),
                }
            )
            for j in range((k * 3 + len(symbol)) % 4):
                price = PRICES[(k + j + (venue is None)) % len(PRICES)]
                size = SIZES[(k * 5 + j) % len(SIZES)]
                second = 10 * j + 1
                trades.append(
                    {
                        "symbol": symbol,
                        "venue": venue,
                        "ts": minute(k) + timedelta(seconds=second),
                        "price": price,
                        "size": size,
                    }
                )
        trades.append(
            {"symbol": symbol, "venue": venue, "ts": minute(-1), "price": 10.0, "size": 5.0}
        )
    bars.sort(key=lambda b: (b["ts"], b["symbol"], b["venue"] or ""))
    bar_frame = pl.DataFrame(bars, schema_overrides={"ts": NS_UTC})
    trade_frame = pl.DataFrame(trades, schema_overrides={"ts": NS_UTC})
    parameters = PhaseParameters(lookback=8, window=3)
    out = phase_bars(bar_frame.lazy(), trade_frame.lazy(), parameters=parameters).collect()
    expected = reference(bars, trades, ["venue", "symbol", "session"], 3)
    assert_matches(out, expected)
    assert out["price_levels"].max() == 4


# --- exactness -----------------------------------------------------------------------------


def one_series(n: int, prints: Sequence[tuple[datetime, float, float]]) -> pl.DataFrame:
    """Levels of ``n`` one-minute bars of symbol X and trades ``(ts, price, size)``, W = 2."""
    bars = pl.DataFrame(
        {"symbol": ["X"] * n, "ts": [minute(k) for k in range(n)]},
        schema_overrides={"ts": NS_UTC},
    )
    trades = pl.DataFrame(
        [{"symbol": "X", "ts": ts, "price": price, "size": size} for ts, price, size in prints],
        schema={"symbol": pl.String, "ts": NS_UTC, "price": pl.Float64, "size": pl.Float64},
    )
    return levels_of(bars, trades, 2)


def test_a_level_that_left_the_window_is_absent_whatever_its_float_sums() -> None:
    # 0.1 + 0.2 − 0.1 − 0.2 is not 0.0 in floating point; the level still counts as gone.
    prints = [(minute(0), 10.0, 0.1), (minute(1), 10.0, 0.2)]
    out = one_series(5, [*prints, (minute(2), 10.01, 0.3), (minute(3), 10.02, 0.7)])
    assert out["price_levels"].to_list() == [1, 1, 2, 2, 1]
    dispersion = out["level_dispersion"].to_list()
    assert dispersion[0] == 0.0
    assert dispersion[1] == 0.0
    assert dispersion[2] == pytest.approx(1 - (0.2**2 + 0.3**2) / 0.5**2, abs=1e-15)
    assert dispersion[4] == 0.0


def test_huge_and_tiny_windows_in_one_series_are_exact() -> None:
    # 10¹² lots at two levels, then windows of a few lots: running float sums of squares
    # would keep an error of ~10⁻⁴ of 10²⁴ there; integer units are exact.
    sizes = [[4e12, 1e12], [3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [1.0, 0.0]]
    out = one_series(
        len(sizes),
        [
            (minute(k) + timedelta(seconds=1 + side), 10.0 + 0.01 * side, pair[side])
            for k, pair in enumerate(sizes)
            for side in (0, 1)
        ],
    )
    expected: list[float] = []
    for k in range(len(sizes)):
        window = sizes[max(0, k - 1) : k + 1]
        low = Fraction(sum(Fraction(p[0]) for p in window))
        high = Fraction(sum(Fraction(p[1]) for p in window))
        expected.append(float(1 - (low**2 + high**2) / (low + high) ** 2))
    assert out["level_dispersion"].to_list() == pytest.approx(expected, rel=1e-15, abs=1e-15)
    assert out["level_dispersion"][3] == pytest.approx(1 - (3**2 + 6**2) / 9**2, abs=1e-15)


def test_a_window_of_thousands_of_bars_costs_events_not_bars_times_window() -> None:
    # 20 000 bars, 0.1 lot a bar at level k mod 7, W = 5 000: the bar × window expansion would
    # be 10⁸ rows; the events are 4·10⁴. Level counts in the window come from a sliding count.
    # 40 000 running float additions of ±0.1 would drift; the integer units do not.
    n, window = 20_000, 5_000
    bars = pl.DataFrame(
        {"symbol": ["X"] * n, "ts": pl.datetime_range(minute(0), minute(n - 1), "1m", eager=True)},
        schema_overrides={"ts": NS_UTC},
    )
    trades = bars.select(
        "symbol",
        "ts",
        (10.0 + 0.01 * (pl.int_range(n) % 7)).alias("price"),
        pl.lit(0.1).alias("size"),
    )
    out = levels_of(bars, trades, window)
    counts = [0] * 7
    expected: list[float] = []
    for k in range(n):
        counts[k % 7] += 1
        if k >= window:
            counts[(k - window) % 7] -= 1
        total = sum(counts)
        expected.append(1 - sum(c * c for c in counts) / (total * total))
    assert out["price_levels"].to_list() == [min(k + 1, 7) for k in range(n)]
    assert out["level_dispersion"].to_list() == pytest.approx(expected, rel=1e-15, abs=1e-15)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_size_that_is_not_finite_counts_its_level_and_gives_zero_dispersion(bad: float) -> None:
    # Library input only (the readers drop such rows): the window's levels still count and its
    # dispersion is 0.0, as the earlier float sums gave (max(1 − NaN, 0)); other windows as usual.
    prints = [(minute(0), 10.0, 1.0), (minute(1), 10.01, bad)]
    out = one_series(4, [*prints, (minute(3), 10.0, 1.0), (minute(3), 10.01, 3.0)])
    assert out["price_levels"].to_list() == [1, 2, 1, 2]
    assert out["level_dispersion"].to_list() == [0.0, 0.0, 0.0, 0.375]
