"""The shared event-study pieces and the liquidity-withdrawal volatility study.

Realised volatility and Welch's t are recomputed by plain Python loops over the bars; the
placebo draw by the documented rule (candidates ordered by the seeded hash of (venue, symbol, ts),
or of (symbol, ts) for a row without a venue, then by those columns, the first ones per
instrument kept).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.event_study import (
    MAX_HORIZONS,
    MAX_PLACEBO_RATIO,
    WITHDRAWAL_STUDY_COLUMNS,
    seeded_draw,
    welch_t_statistic,
    withdrawal_volatility_study,
)
from mmflow.metrics.inventory import inventory_bars, withdrawal_episodes

T0 = datetime(2024, 1, 2, tzinfo=UTC)
NS_UTC = pl.Datetime("ns", "UTC")
P, W = "providing", "withdrawing"


def second(k: int) -> datetime:
    return T0 + timedelta(seconds=k)


def frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Bars of ``rows``; a ``venue`` column only when the rows name one."""
    venue: dict[str, Any] = {"venue": pl.String} if any("venue" in row for row in rows) else {}
    schema: dict[str, Any] = {
        **venue,
        "symbol": pl.String,
        "ts": NS_UTC,
        "mid_close": pl.Float64,
        "close": pl.Float64,
        "liquidity_state": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def episodes_of(bars: pl.DataFrame) -> pl.LazyFrame:
    """Withdrawal episodes of bars carrying only a liquidity state (spread/depth are unused)."""
    filled = bars.with_columns(
        pl.lit(None, pl.Float64).alias("spread"), pl.lit(None, pl.Float64).alias("depth")
    )
    return withdrawal_episodes(filled.lazy(), every="1s")


# --- reference ---------------------------------------------------------------------------


def welch(first: list[float], second_: list[float]) -> float | None:
    if len(first) < 2 or len(second_) < 2:
        return None
    error = math.sqrt(
        statistics.variance(first) / len(first) + statistics.variance(second_) / len(second_)
    )
    if error == 0:
        return None
    return (statistics.fmean(first) - statistics.fmean(second_)) / error


def realised_volatility(returns: list[float | None], k: int, h: int) -> float | None:
    """√Σ_{j=1..h} r_{k+j}², or None when a return is missing or the window passes the end."""
    if k + h >= len(returns):
        return None
    window = [r for r in returns[k + 1 : k + h + 1] if r is not None]
    if len(window) < h:
        return None
    return math.sqrt(sum(r * r for r in window))


def reference_study(
    bars: pl.DataFrame, horizons: Sequence[int], seed: int, ratio: int = 1
) -> list[dict[str, Any]]:
    """The study by loops: per instrument, RV at episode starts vs the first providing bars by hash.

    The instrument is (venue, symbol) when the bars have a venue column (issue 9), else symbol.
    """
    with_venue = "venue" in bars.columns
    plain = bars.select(pl.struct("symbol", "ts").hash(seed=seed))["symbol"].to_list()
    keyed = (
        bars.select(pl.struct("venue", "symbol", "ts").hash(seed=seed))["venue"].to_list()
        if with_venue
        else plain
    )
    venues = bars["venue"].to_list() if with_venue else [None] * bars.height
    hashes = [k if v is not None else p for k, p, v in zip(keyed, plain, venues, strict=True)]
    instruments = sorted(
        set(zip(venues, bars["symbol"].to_list(), strict=True)),
        key=lambda pair: (pair[0] is not None, pair[0] or "", pair[1]),  # no venue first
    )
    out = []
    for venue, symbol in instruments:
        rows = [
            (row, hashes[i])
            for i, row in enumerate(bars.iter_rows(named=True))
            if row["symbol"] == symbol and venues[i] == venue
        ]
        rows.sort(key=lambda pair: pair[0]["ts"])
        has_mid = any(row["mid_close"] is not None for row, _ in rows)
        column = "mid_close" if has_mid else "close"
        prices: list[float | None] = []
        last: float | None = None
        for row, _ in rows:
            last = row[column] if row[column] is not None else last
            prices.append(last)
        returns: list[float | None] = [None]
        for k in range(1, len(prices)):
            now, before = prices[k], prices[k - 1]
            ok = now is not None and before is not None and now > 0 and before > 0
            returns.append(math.log(now / before) if ok else None)  # type: ignore[operator]
        states = [row["liquidity_state"] for row, _ in rows]
        starts = [k for k in range(len(rows)) if states[k] == W and (k == 0 or states[k - 1] != W)]
        if not starts:
            continue
        for h in horizons:

            def volatility(
                k: int, h: int = h, returns: list[float | None] = returns
            ) -> float | None:
                return realised_volatility(returns, k, h)

            events = [v for v in (volatility(k) for k in starts) if v is not None]
            pool = [
                (rows[k][1], rows[k][0]["ts"], volatility(k))
                for k in range(len(rows))
                if states[k] == P and volatility(k) is not None
            ]
            pool.sort(key=lambda item: (item[0], item[1]))
            placebo = [float(v) for _, _, v in pool[: len(events) * ratio] if v is not None]
            event_mean = statistics.fmean(events) if events else None
            placebo_mean = statistics.fmean(placebo) if placebo else None
            both = event_mean is not None and placebo_mean is not None
            out.append(
                {
                    **({"venue": venue} if with_venue else {}),
                    "symbol": symbol,
                    "horizon_bars": h,
                    "episodes": len(starts),
                    "events": len(events),
                    "beyond_data": len(starts) - len(events),
                    "event_volatility": event_mean,
                    "placebo_bars": len(placebo),
                    "placebo_volatility": placebo_mean,
                    "difference": event_mean - placebo_mean if both else None,  # type: ignore[operator]
                    "t_statistic": welch(events, placebo),
                }
            )
    return out


def assert_matches(study: pl.DataFrame, expected: list[dict[str, Any]]) -> None:
    assert study.height == len(expected)
    for got, want in zip(study.iter_rows(named=True), expected, strict=True):
        for name, value in want.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-15), name
            else:
                assert got[name] == value, name


# --- hand-computed vector ----------------------------------------------------------------


def hand_bars() -> pl.DataFrame:
    mids = [100.0, 100.0, 101.0, 101.0, 99.0, 99.0, 100.0, 100.0, 100.0, 102.0]
    states = [P, W, P, P, W, W, P, P, P, P]
    rows = [
        {"symbol": "X", "ts": second(k), "mid_close": m, "close": None, "liquidity_state": s}
        for k, (m, s) in enumerate(zip(mids, states, strict=True))
    ]
    return frame(rows)


def test_realised_volatility_and_counts_by_hand() -> None:
    bars = hand_bars()
    study = withdrawal_volatility_study(
        bars.lazy(), episodes_of(bars), horizons=[1, 2, 6]
    ).collect()
    assert study.columns == ["symbol", *WITHDRAWAL_STUDY_COLUMNS]
    up, down = math.log(101 / 100), math.log(100 / 99)
    # Episodes start at bars 1 and 4. h = 1: r_2 = ln 1.01, r_5 = 0.
    # h = 2: √(r_2² + r_3²) = ln 1.01, √(r_5² + r_6²) = ln(100/99).
    # h = 6: bar 1 + 6 = 7 ≤ 9 has a window (r_2..r_7), bar 4 + 6 = 10 is past the data.
    assert study["episodes"].to_list() == [2, 2, 2]
    assert study["events"].to_list() == [2, 2, 1]
    assert study["beyond_data"].to_list() == [0, 0, 1]
    assert study["event_volatility"][0] == pytest.approx((up + 0.0) / 2)
    assert study["event_volatility"][1] == pytest.approx((up + down) / 2)
    six = math.sqrt(up**2 + math.log(99 / 101) ** 2 + down**2)
    assert study["event_volatility"][2] == pytest.approx(six)
    # Placebo bars are providing bars: 0, 2, 3, 6, 7, 8 (9 has no later bar); as many as events.
    assert study["placebo_bars"].to_list() == [2, 2, 1]
    assert_matches(study, reference_study(bars, [1, 2, 6], seed=0))


def test_welch_t_statistic_by_hand() -> None:
    # Samples (1, 3) and (0, 0, 3): means 2 and 1, variances 2 and 3: t = 1 / √(2/2 + 3/3).
    data = pl.DataFrame({"m1": [2.0], "v1": [2.0], "n1": [2], "m2": [1.0], "v2": [3.0], "n2": [3]})
    c = pl.col
    t = data.select(welch_t_statistic(c("m1"), c("v1"), c("n1"), c("m2"), c("v2"), c("n2")))
    assert t.item() == pytest.approx(1 / math.sqrt(2.0))
    assert welch([1.0, 3.0], [0.0, 0.0, 3.0]) == pytest.approx(1 / math.sqrt(2.0))
    flat = data.with_columns(v1=0.0, v2=0.0)
    assert flat.select(welch_t_statistic(c("m1"), c("v1"), c("n1"), c("m2"), c("v2"), c("n2")))[
        "m1"
    ].to_list() == [None]


# --- property test against the reference loop ---------------------------------------------


@st.composite
def markets(draw: st.DrawFn) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    # with venues (issue 9): one symbol on two venues, and an instrument without a venue
    venued = draw(st.booleans())
    instruments = [("x", "A"), (None, "A"), ("y", "B")] if venued else [(None, "A"), (None, "B")]
    for venue, symbol in instruments:
        n = draw(st.integers(min_value=2, max_value=40))
        quoted = draw(st.booleans())
        price = 100.0
        for k in range(n):
            price *= math.exp(draw(st.floats(min_value=-0.01, max_value=0.01)))
            missing = draw(st.integers(min_value=0, max_value=9)) == 0
            value = None if missing else round(price, 4)
            state = draw(st.sampled_from([P, P, P, W, None]))
            rows.append(
                {
                    "venue": venue,
                    "symbol": symbol,
                    "ts": second(k),
                    "mid_close": value if quoted else None,
                    "close": None if quoted else value,
                    "liquidity_state": state,
                }
            )
    market = frame(rows) if venued else frame(rows).drop("venue")
    return market.sort("ts", "symbol")  # instruments interleaved, time order within each


@settings(max_examples=60, deadline=None)
@given(
    markets(),
    st.integers(min_value=0, max_value=2**31),
    st.sampled_from([[1], [1, 3, 7]]),
    st.sampled_from([1, 3]),
)
def test_study_matches_the_reference_loop(
    bars: pl.DataFrame, seed: int, horizons: list[int], ratio: int
) -> None:
    study = withdrawal_volatility_study(
        bars.lazy(), episodes_of(bars), horizons=horizons, placebo_seed=seed, placebo_ratio=ratio
    ).collect()
    assert_matches(study, reference_study(bars, horizons, seed, ratio))
    assert (study["events"] + study["beyond_data"] == study["episodes"]).all()
    assert (study["placebo_bars"] <= ratio * study["events"]).all()


# --- placebo determinism -----------------------------------------------------------------


def long_market() -> pl.DataFrame:
    rows = []
    for symbol, drift in (("A", 0.001), ("B", -0.002)):
        for k in range(300):
            mid = 100.0 * math.exp(drift * math.sin(k / 3.0) + 0.0005 * ((k * 7919) % 13 - 6))
            state = W if k % 17 in (0, 1) else P
            row = {"symbol": symbol, "ts": second(k), "mid_close": mid, "close": None}
            rows.append(row | {"liquidity_state": state})
    return frame(rows).sort("ts", "symbol")


def test_placebo_is_deterministic_per_seed_and_independent_of_row_order() -> None:
    bars = long_market()
    episodes = episodes_of(bars)

    def study(data: pl.DataFrame, seed: int) -> pl.DataFrame:
        return withdrawal_volatility_study(data.lazy(), episodes, placebo_seed=seed).collect()

    first = study(bars, 7)
    assert_frame_equal(study(bars, 7), first)
    regrouped = bars.sort("symbol", "ts")  # another interleaving, same time order per symbol
    assert_frame_equal(study(regrouped, 7), first)
    streamed = withdrawal_volatility_study(bars.lazy(), episodes, placebo_seed=7)
    assert_frame_equal(streamed.collect(engine="streaming"), first)
    other = study(bars, 8)
    same = ["symbol", "horizon_bars", "episodes", "events", "event_volatility", "placebo_bars"]
    assert_frame_equal(other.select(same), first.select(same))
    assert other["placebo_volatility"].to_list() != first["placebo_volatility"].to_list()
    assert first["episodes"].to_list() == [18] * 4 + [18] * 4


def test_seeded_draw_is_without_replacement_within_groups() -> None:
    data = pl.LazyFrame(
        {"symbol": ["A"] * 50 + ["B"] * 5, "ts": list(range(50)) + list(range(5)), "want": 0}
    ).with_columns(pl.when(pl.col("symbol") == "A").then(10).otherwise(8).alias("want"))
    drawn = seeded_draw(
        data, columns=["symbol", "ts"], seed=3, draws=pl.col("want"), by=["symbol"]
    ).collect()
    counts = dict(drawn.group_by("symbol").len().iter_rows())
    assert counts == {"A": 10, "B": 5}  # B has only 5 rows
    assert drawn.select("symbol", "ts").is_unique().all()
    whole = seeded_draw(data, columns=["symbol", "ts"], seed=3, draws=12).collect()
    assert whole.height == 12
    reversed_rows = seeded_draw(
        data.reverse(), columns=["symbol", "ts"], seed=3, draws=12
    ).collect()
    assert_frame_equal(reversed_rows, whole)


# --- edge cases ---------------------------------------------------------------------------


def test_no_episodes_gives_an_empty_table_with_the_columns() -> None:
    bars = hand_bars().with_columns(pl.lit(P).alias("liquidity_state"))
    study = withdrawal_volatility_study(bars.lazy(), episodes_of(bars)).collect()
    assert study.is_empty()
    assert study.columns == ["symbol", *WITHDRAWAL_STUDY_COLUMNS]


def test_windows_do_not_cross_sessions() -> None:
    bars = hand_bars().with_columns(
        pl.when(pl.col("ts") < second(6)).then(1).otherwise(2).alias("session")
    )
    study = withdrawal_volatility_study(bars.lazy(), episodes_of(bars), horizons=[1, 2]).collect()
    # The episode at bar 4 needs bars 5 and 6 for h = 2: bar 6 is in the next session.
    assert study["events"].to_list() == [2, 1]
    assert study["beyond_data"].to_list() == [0, 1]
    assert study["event_volatility"][1] == pytest.approx(math.log(1.01))


def test_on_inventory_bars_from_spread_and_depth() -> None:
    n = 40
    spread = [0.01] * n
    depth = [100.0] * n
    spread[20] = 0.05  # one withdrawal bar
    depth[30] = 10.0  # and another
    mids = [100.0 + (0.5 if k in (21, 22, 31) else 0.0) for k in range(n)]
    bars = pl.LazyFrame(
        {
            "symbol": "X",
            "ts": [second(k) for k in range(n)],
            "net_flow": 0.0,
            "mid_close": mids,
            "spread": spread,
            "depth": depth,
        },
        schema_overrides={"ts": NS_UTC},
    )
    inventory = inventory_bars(bars, lookback=8)
    episodes = withdrawal_episodes(inventory, every="1s")
    study = withdrawal_volatility_study(inventory, episodes, horizons=[1, 3]).collect()
    assert study["episodes"].to_list() == [2, 2]
    jump = math.log(100.5 / 100.0)
    assert study["event_volatility"][0] == pytest.approx(jump)
    assert study["event_volatility"][1] == pytest.approx(math.sqrt(2) * jump)


@pytest.mark.parametrize("horizons", [[], [0], [1, -2], [True], list(range(1, MAX_HORIZONS + 2))])
def test_bad_horizons_are_refused(horizons: list[int]) -> None:
    bars = hand_bars()
    with pytest.raises(ParameterError):
        withdrawal_volatility_study(bars.lazy(), episodes_of(bars), horizons=horizons)


def test_bad_seed_and_missing_columns_are_refused() -> None:
    bars = hand_bars()
    with pytest.raises(ParameterError):
        withdrawal_volatility_study(bars.lazy(), episodes_of(bars), placebo_seed=-1)
    for ratio in (0, MAX_PLACEBO_RATIO + 1):
        with pytest.raises(ParameterError, match="placebo_ratio"):
            withdrawal_volatility_study(bars.lazy(), episodes_of(bars), placebo_ratio=ratio)
    with pytest.raises(SchemaError, match="liquidity_state"):
        withdrawal_volatility_study(bars.drop("liquidity_state").lazy(), episodes_of(bars))
    with pytest.raises(SchemaError, match="close or mid_close"):
        withdrawal_volatility_study(bars.drop("close", "mid_close").lazy(), episodes_of(bars))
    with pytest.raises(SchemaError, match="start"):
        withdrawal_volatility_study(bars.lazy(), episodes_of(bars).drop("start"))
