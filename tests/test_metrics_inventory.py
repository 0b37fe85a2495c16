from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.inventory import (
    duration_seconds,
    inventory_bars,
    inventory_half_life,
    inventory_summary,
    withdrawal_episodes,
)
from tests.helpers import typed_frame

T0 = datetime(2024, 7, 19, 13, 30, tzinfo=UTC)
NS_UTC = pl.Datetime("ns", "UTC")
FLAT = 1e-9  # mirrors mmflow.metrics.inventory.FLAT_TOLERANCE


@dataclass(frozen=True)
class Bar:
    symbol: str
    minute: int
    net_flow: float = 0.0
    close: float | None = None
    mid_close: float | None = None
    spread: float | None = None
    depth: float | None = None
    session: int = 0


def make_bars(
    bars: Sequence[Bar], *, session: bool = False, quotes: bool = True, close: bool = True
) -> pl.LazyFrame:
    """Bars in the given row order; optional session and quote columns."""
    names = ["symbol", "net_flow"] + ["close"] * close
    names += ["mid_close", "spread", "depth"] * quotes + ["session"] * session
    columns: dict[str, list[Any]] = {"ts": [T0 + timedelta(minutes=b.minute) for b in bars]}
    columns |= {name: [getattr(b, name) for b in bars] for name in names}
    return typed_frame({name: columns[name] for name in ["symbol", "ts", *names[1:]]})


def series(
    symbol: str,
    flows: Sequence[float],
    *,
    close: Sequence[float | None] | None = None,
    mid_close: Sequence[float | None] | None = None,
    spread: Sequence[float | None] | None = None,
    depth: Sequence[float | None] | None = None,
) -> list[Bar]:
    """One symbol's bars at minutes 0, 1, 2, …"""

    def at(values: Sequence[float | None] | None, k: int) -> float | None:
        return None if values is None else values[k]

    return [
        Bar(
            symbol,
            k,
            flow,
            close=at(close, k),
            mid_close=at(mid_close, k),
            spread=at(spread, k),
            depth=at(depth, k),
        )
        for k, flow in enumerate(flows)
    ]


# --- slow reference loops ------------------------------------------------------------------------


def groups(keys: Sequence[object]) -> dict[object, list[int]]:
    """Row indices of each key, in row order."""
    out: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return out


def cvd_reference(bars: Sequence[Bar], *, session: bool) -> list[float]:
    out = [0.0] * len(bars)
    totals: dict[object, float] = {}
    for i, b in enumerate(bars):
        key = (b.symbol, b.session if session else None)
        totals[key] = totals.get(key, 0.0) + b.net_flow
        out[i] = totals[key]
    return out


def z_reference(
    bars: Sequence[Bar], inventory: Sequence[float], lookback: int, *, session: bool
) -> list[float | None]:
    least = max(2, math.ceil(lookback / 4))
    out: list[float | None] = [None] * len(bars)
    keys = [(b.symbol, b.session if session else None) for b in bars]
    for rows in groups(keys).values():
        for position, row in enumerate(rows):
            window = [inventory[r] for r in rows[max(0, position - lookback + 1) : position + 1]]
            if len(window) < least or max(window) == min(window):
                continue
            out[row] = (inventory[row] - statistics.mean(window)) / statistics.stdev(window)
    return out


def state_reference(
    bars: Sequence[Bar], lookback: int, spread_factor: float, depth_factor: float
) -> list[str | None]:
    least = max(2, math.ceil(lookback / 4))
    out: list[str | None] = [None] * len(bars)
    for rows in groups([b.symbol for b in bars]).values():
        for position, row in enumerate(rows):
            before = rows[max(0, position - lookback) : position]
            verdicts: list[bool] = []
            for name, factor, wide in (
                ("spread", spread_factor, True),
                ("depth", depth_factor, False),
            ):
                value = getattr(bars[row], name)
                window = [getattr(bars[r], name) for r in before]
                known = [v for v in window if v is not None]
                if value is None or len(known) < least:
                    continue
                normal = statistics.median(known)
                if normal <= 0:
                    continue
                verdicts.append(value >= factor * normal if wide else value <= factor * normal)
            if verdicts:
                out[row] = "withdrawing" if any(verdicts) else "providing"
    return out


def slope_reference(pairs: Sequence[tuple[float, float]]) -> float | None:
    """OLS slope with intercept; None with < 3 pairs or a constant regressor."""
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return None
    xs = [p[0] for p in pairs]
    if max(xs) - min(xs) <= FLAT * max(abs(max(xs)), abs(min(xs))):
        return None
    mean_x = sum(xs) / len(xs)
    mean_y = sum(p[1] for p in pairs) / len(pairs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in pairs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    return sxy / sxx


def half_life_reference(
    symbols: Sequence[str], sessions: Sequence[object], inventory: Sequence[float], seconds: float
) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for symbol, rows in groups(symbols).items():
        pairs = [
            (inventory[a], inventory[b])
            for a, b in itertools.pairwise(rows)
            if sessions[a] == sessions[b]
        ]
        phi = slope_reference(pairs)
        half = None
        if phi is not None and 0 < phi < 1:
            half = math.log(0.5) / math.log(phi) * seconds
        out[str(symbol)] = (phi, half)
    return out


def summary_reference(
    rows: list[dict[str, Any]], *, horizon: int, seconds: float, session: bool
) -> dict[str, dict[str, Any]]:
    """Per symbol, from collected inventory_bars rows (so the z-scores are the same floats)."""
    out: dict[str, dict[str, Any]] = {}
    for symbol, idx in groups([r["symbol"] for r in rows]).items():
        mine = [rows[i] for i in idx]
        sessions = [r["session"] if session else 0 for r in mine]
        use_mid = any(r["mid_close"] is not None for r in mine)
        prices: list[float | None] = []
        last: float | None = None
        for k, r in enumerate(mine):
            if k > 0 and sessions[k] != sessions[k - 1]:
                last = None
            if r["close"] is not None:
                last = r["close"]
            prices.append(r["mid_close"] if use_mid else last)
        pressure_pairs = []
        skew_pairs = []
        for k, r in enumerate(mine):
            j = k + horizon
            p0 = prices[k]
            if j < len(mine) and sessions[j] == sessions[k] and r["inventory_z"] is not None:
                p1 = prices[j]
                if p0 is not None and p1 is not None and p0 > 0 and p1 > 0:
                    pressure_pairs.append((r["inventory_z"], math.log(p1 / p0)))
            if k > 0 and sessions[k] == sessions[k - 1]:
                m0, m1 = mine[k - 1]["mid_close"], r["mid_close"]
                if m0 is not None and m1 is not None:
                    skew_pairs.append((-r["net_flow"], m1 - m0))
        states = [r["liquidity_state"] for r in mine if r["liquidity_state"] is not None]
        inventory = [r["mm_inventory"] for r in mine]
        phi, half = half_life_reference([str(symbol)] * len(mine), sessions, inventory, seconds)[
            str(symbol)
        ]
        out[str(symbol)] = {
            "mm_inventory": inventory[-1],
            "inventory_max": max(inventory),
            "inventory_min": min(inventory),
            "inventory_phi": phi,
            "inventory_half_life": half,
            "price_pressure": slope_reference(pressure_pairs),
            "quote_skew": slope_reference(skew_pairs),
            "withdrawing_share": (
                sum(s == "withdrawing" for s in states) / len(states) if states else None
            ),
            "liquidity_state": mine[-1]["liquidity_state"],
        }
    return out


def episodes_reference(
    symbols: Sequence[str],
    minutes: Sequence[int],
    states: Sequence[str | None],
    spreads: Sequence[float | None],
    depths: Sequence[float | None],
) -> list[tuple[Any, ...]]:
    def known(values: Sequence[float | None], rows: list[int]) -> list[float]:
        return [v for v in (values[r] for r in rows) if v is not None]

    def ratio(values: Sequence[float | None], run: list[int], normal: list[float]) -> float | None:
        mine = known(values, run)
        base = statistics.median(normal) if normal else None
        if not mine or base is None or base <= 0:
            return None
        return statistics.fmean(mine) / base

    out: list[tuple[Any, ...]] = []
    for symbol, rows in groups(symbols).items():
        providing = [r for r in rows if states[r] == "providing"]
        runs: list[list[int]] = []
        previous = False
        for r in rows:
            withdrawing = states[r] == "withdrawing"
            if withdrawing and previous:
                runs[-1].append(r)
            elif withdrawing:
                runs.append([r])
            previous = withdrawing
        out.extend(
            (
                symbol,
                T0 + timedelta(minutes=minutes[run[0]]),
                T0 + timedelta(minutes=minutes[run[-1]] + 1),
                len(run),
                ratio(spreads, run, known(spreads, providing)),
                ratio(depths, run, known(depths, providing)),
            )
            for run in runs
        )
    return sorted(out, key=lambda e: (e[0], e[1]))


def close(a: float | None, b: float | None, *, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=rel, abs=abs_)


# --- duration_seconds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "seconds"),
    [
        ("1ns", 1e-9),
        ("10us", 1e-5),
        ("250ms", 0.25),
        ("1s", 1.0),
        ("1m", 60.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1d", 86_400.0),
        ("1w", 604_800.0),
        (" 1m ", 60.0),
    ],
)
def test_duration_seconds_fixed_units(every: str, seconds: float) -> None:
    assert duration_seconds(every) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("1mo", "no fixed length"),
        ("1y", "no fixed length"),
        ("1q", "no fixed length"),
        ("3i", "no fixed length"),
        ("1d1mo", "no fixed length"),
        ("0s", "longer than zero"),
        ("", "not a polars duration"),
        ("1.5m", "not a polars duration"),
        ("-1m", "not a polars duration"),
        ("m", "not a polars duration"),
        ("1 minute", "not a polars duration"),
    ],
)
def test_duration_seconds_rejects_calendar_and_malformed(every: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        duration_seconds(every)
    assert "\n" not in str(info.value)


# --- inventory_bars: hand-computed --------------------------------------------------------------


def test_inventory_bars_hand_computed_table() -> None:
    # I = −CVD = −2, −3, 1, 1, −2.  L = 4, at least 2 bars: bar 1 window {−2, −3}: mean −2.5,
    # s = √0.5 ⇒ z = −0.5/0.7071 = −0.7071; bar 2 window {−2, −3, 1}: mean −4/3, s = √(13/3).
    # Spread medians over the bars before: bar 2 → 0.01 (0.01 < 0.02), depth med 110 (80 > 55)
    # ⇒ providing; bar 3 spread 0.03 ≥ 2 · 0.01 ⇒ withdrawing; bar 4 has no quotes ⇒ null.
    bars = series(
        "X",
        [2.0, 1.0, -4.0, 0.0, 3.0],
        spread=[0.01, 0.01, 0.01, 0.03, None],
        depth=[100.0, 120.0, 80.0, 100.0, None],
    )
    out = inventory_bars(make_bars(bars, close=False), lookback=4).collect()
    # bar 3: window {−2, −3, 1, 1}; bar 4: window {−3, 1, 1, −2}.
    z3 = (1.0 - statistics.mean([-2, -3, 1, 1])) / statistics.stdev([-2, -3, 1, 1])
    z4 = (-2.0 - statistics.mean([-3, 1, 1, -2])) / statistics.stdev([-3, 1, 1, -2])
    expected = pl.DataFrame(
        {
            "cvd": [2.0, 3.0, -1.0, -1.0, 2.0],
            "mm_inventory": [-2.0, -3.0, 1.0, 1.0, -2.0],
            "inventory_change": [-2.0, -1.0, 4.0, 0.0, -3.0],
            "inventory_z": [None, -math.sqrt(0.5), (1 + 4 / 3) / math.sqrt(13 / 3), z3, z4],
            "liquidity_state": [None, None, "providing", "withdrawing", None],
        }
    )
    assert_frame_equal(out.select(expected.columns), expected, abs_tol=1e-12)


def test_inventory_bars_session_resets_cvd_and_z_window() -> None:
    bars = [
        Bar("X", 0, 3.0, session=1),
        Bar("X", 1, 1.0, session=1),
        Bar("X", 2, 5.0, session=2),
        Bar("X", 3, -2.0, session=2),
        Bar("X", 4, 4.0, session=2),
    ]
    out = inventory_bars(make_bars(bars, session=True), lookback=8).collect()
    assert out["cvd"].to_list() == [3.0, 4.0, 5.0, 3.0, 7.0]
    assert out["mm_inventory"].to_list() == [-3.0, -4.0, -5.0, -3.0, -7.0]
    # Each session needs its own two bars before a z-score.
    z = out["inventory_z"].to_list()
    assert z[0] is None
    assert z[2] is None
    assert z[1] == pytest.approx(-math.sqrt(0.5))
    assert z[3] == pytest.approx(math.sqrt(0.5))
    # Without the session column it is one series.
    whole = inventory_bars(make_bars(bars), lookback=8).collect()
    assert whole["cvd"].to_list() == [3.0, 4.0, 9.0, 7.0, 11.0]


P, W = "providing", "withdrawing"


@pytest.mark.parametrize(
    ("spreads", "depths", "expected"),
    [
        # a spike against the bars before it (current bar excluded from the median)
        ([1.0, 1.0, 1.0, 2.0, 1.0], [None] * 5, [None, None, P, W, P]),
        ([1.0, 1.0, 1.0, 1.99, 1.0], [None] * 5, [None, None, P, P, P]),
        # depth falls to half its median
        ([None] * 5, [10.0, 10.0, 6.0, 5.0, 10.0], [None, None, P, W, P]),
        # either criterion suffices
        ([1.0, 1.0, 3.0, 1.0, 1.0], [10.0, 10.0, 10.0, 4.0, 10.0], [None, None, W, W, P]),
        # zero quoted sizes: the depth criterion is unusable, the spread decides
        ([1.0, 1.0, 1.0, 5.0, 1.0], [0.0] * 5, [None, None, P, W, P]),
        # a bar without quotes is null and does not count as an observation
        ([1.0, None, 1.0, 1.0, 3.0], [None] * 5, [None, None, None, P, W]),
    ],
)
def test_liquidity_state_hand_computed(
    spreads: list[float | None], depths: list[float | None], expected: list[str | None]
) -> None:
    bars = series("X", [0.0] * 5, spread=spreads, depth=depths)
    out = inventory_bars(make_bars(bars), lookback=4).collect()
    assert out["liquidity_state"].to_list() == expected
    assert out["liquidity_state"].to_list() == state_reference(bars, 4, 2.0, 0.5)


def test_liquidity_state_trailing_median_spans_exactly_lookback_bars() -> None:
    # L = 4: bar 5's median is over bars 1..4 = {1, 1, 4, 4} → 2.5 (bar 0's 1.0 has left).
    spreads: list[float | None] = [1.0, 1.0, 1.0, 4.0, 4.0, 4.9]
    bars = series("X", [0.0] * 6, spread=spreads)
    states = inventory_bars(make_bars(bars), lookback=4).collect()["liquidity_state"].to_list()
    assert states[5] == "providing"
    assert states == state_reference(bars, 4, 2.0, 0.5)
    wider = inventory_bars(make_bars(bars), lookback=5).collect()["liquidity_state"].to_list()
    assert wider[5] == "withdrawing"  # median of {1, 1, 1, 4, 4} = 1


# --- inventory_half_life -------------------------------------------------------------------


def ar1_flows(phi: float, intercept: float, start: float, n: int) -> list[float]:
    """Net flows whose inventory is I_0 = start, I_k = intercept + phi · I_{k−1}."""
    inventory = [start]
    for _ in range(n - 1):
        inventory.append(intercept + phi * inventory[-1])
    return [-(b - a) for a, b in zip([0.0, *inventory], inventory, strict=False)]


def test_half_life_phi_0_9_is_6_58_bars() -> None:
    # metrics.md b.2: φ = 0.9 ⇒ ln 0.5 / ln 0.9 = 6.58 bars. With intercept c = 1 the series
    # I_k = 1 + 0.9 I_{k−1} from I_0 = 100 converges to 10; OLS through the origin would not
    # recover 0.9, OLS with intercept does exactly.
    flows = ar1_flows(0.9, 1.0, 100.0, 40)
    out = inventory_half_life(make_bars(series("X", flows)), every="1m").collect()
    phi = out["inventory_phi"].item()
    half_life = out["inventory_half_life"].item()
    assert phi == pytest.approx(0.9, abs=1e-10)
    assert round(half_life / 60, 2) == 6.58
    assert half_life == pytest.approx(60 * math.log(0.5) / math.log(0.9), rel=1e-9)
    assert out.schema["inventory_half_life"] == pl.Float64
    inventory = [-c for c in itertools.accumulate(flows)]
    through_origin = sum(a * b for a, b in itertools.pairwise(inventory)) / sum(
        a * a for a in inventory[:-1]
    )
    assert abs(through_origin - 0.9) > 0.01


def test_half_life_in_seconds_scales_with_bar_length() -> None:
    bars = make_bars(series("X", ar1_flows(0.5, 0.0, 64.0, 8)))
    assert inventory_half_life(bars, every="1s").collect()["inventory_half_life"].item() == (
        pytest.approx(1.0)
    )
    assert inventory_half_life(bars, every="1h30m").collect()["inventory_half_life"].item() == (
        pytest.approx(5400.0)
    )


def test_half_life_does_not_pair_across_session_reset() -> None:
    flows = ar1_flows(0.9, 1.0, 100.0, 20)
    bars = [Bar("X", k, f, session=0) for k, f in enumerate(flows)] + [
        Bar("X", 20 + k, f, session=1) for k, f in enumerate(flows)
    ]
    with_sessions = inventory_half_life(make_bars(bars, session=True), every="1m").collect()
    assert with_sessions["inventory_phi"].item() == pytest.approx(0.9, abs=1e-10)
    # As one series the second block continues from I ≈ 17 instead of resetting.
    joined = inventory_half_life(make_bars(bars), every="1m").collect()
    assert joined["inventory_phi"].item() != pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize(
    ("flows", "phi", "half_life"),
    [
        ([], None, None),  # no bars: no row at all
        ([5.0], None, None),  # one bar: no pair
        ([5.0, -1.0, 2.0], None, None),  # two pairs
        ([0.0] * 10, None, None),  # constant inventory: φ undefined
        ([3.0] + [0.0] * 9, None, None),  # constant after the start
        ([1.0] * 10, 1.0, None),  # a trend: φ = 1, no reversion
        ([1.0, -2.0, 2.0, -2.0, 2.0, -2.0], -1.0, None),  # oscillation: φ = −1
    ],
)
def test_half_life_degenerate_is_null(
    flows: list[float], phi: float | None, half_life: float | None
) -> None:
    out = inventory_half_life(make_bars(series("X", flows)), every="1m").collect()
    assert out.schema == pl.Schema(
        {"symbol": pl.String, "inventory_phi": pl.Float64, "inventory_half_life": pl.Float64}
    )
    if not flows:
        assert out.height == 0
        return
    got_phi = out["inventory_phi"].item()
    assert close(got_phi, phi)
    assert out["inventory_half_life"].item() == half_life


def test_half_life_accepts_inventory_bars_output() -> None:
    bars = make_bars(series("X", ar1_flows(0.8, 2.0, -50.0, 30)))
    direct = inventory_half_life(bars, every="5m").collect()
    via = inventory_half_life(inventory_bars(bars), every="5m").collect()
    assert_frame_equal(direct, via)
    assert direct["inventory_phi"].item() == pytest.approx(0.8, abs=1e-10)


# --- inventory_summary ------------------------------------------------------------------------


def summary_input(rows: dict[str, list[Any]]) -> pl.LazyFrame:
    n = len(rows["inventory_z"])
    base: dict[str, list[Any]] = {
        "symbol": ["X"] * n,
        "ts": [T0 + timedelta(minutes=k) for k in range(n)],
        "net_flow": [0.0] * n,
        "close": [100.0] * n,
        "mid_close": [None] * n,
        "mm_inventory": [float(k) for k in range(n)],
        "inventory_change": [0.0] * n,
        "liquidity_state": [None] * n,
    }
    base.update(rows)
    return pl.LazyFrame(
        base,
        schema_overrides={
            "ts": NS_UTC,
            "mid_close": pl.Float64,
            "inventory_z": pl.Float64,
            "liquidity_state": pl.String,
        },
    )


def test_summary_price_pressure_is_slope_of_forward_mid_return_on_z() -> None:
    # mid_{k+1} = mid_k · exp(−0.01 z_k) ⇒ forward 1-bar log return = −0.01 z_k exactly.
    z = [-1.0, 0.5, 2.0, -0.5, 1.0, 0.0]
    mids = [100.0]
    for value in z[:-1]:
        mids.append(mids[-1] * math.exp(-0.01 * value))
    bars = summary_input({"inventory_z": z, "mid_close": mids, "close": [1.0] * 6})
    out = inventory_summary(bars, every="1m", horizon=1).collect()
    assert out["price_pressure"].item() == pytest.approx(-0.01, rel=1e-9)
    # Horizon 2: r_k = −0.01 (z_k + z_{k+1}); slope from the reference.
    two = inventory_summary(bars, every="1m", horizon=2).collect()["price_pressure"].item()
    pairs = [(z[k], math.log(mids[k + 2] / mids[k])) for k in range(4)]
    assert two == pytest.approx(slope_reference(pairs), rel=1e-9)


def test_summary_price_pressure_falls_back_to_close_carried_over_empty_bars() -> None:
    # No mid: closes 100, (no trade), 102, 101 ⇒ prices 100, 100, 102, 101.
    bars = summary_input(
        {
            "inventory_z": [1.0, -1.0, 0.5, 2.0],
            "close": [100.0, None, 102.0, 101.0],
            "mid_close": [None] * 4,
        }
    )
    out = inventory_summary(bars, every="1m", horizon=1).collect()
    pairs = [(1.0, 0.0), (-1.0, math.log(1.02)), (0.5, math.log(101 / 102))]
    assert out["price_pressure"].item() == pytest.approx(slope_reference(pairs), rel=1e-12)
    assert out["quote_skew"].item() is None


def test_summary_quote_skew_is_slope_of_mid_change_on_inventory_change() -> None:
    # Δmid_k = 0.02 − 0.5 ΔI_k: market makers shade quotes against inventory ⇒ slope −0.5.
    changes = [0.0, 4.0, -2.0, 1.0, -3.0, 0.0]
    mids = [100.0]
    for change in changes[1:]:
        mids.append(mids[-1] + 0.02 - 0.5 * change)
    bars = summary_input(
        {"inventory_z": [None] * 6, "inventory_change": changes, "mid_close": mids}
    )
    out = inventory_summary(bars, every="1m").collect()
    assert out["quote_skew"].item() == pytest.approx(-0.5, rel=1e-9)
    assert out["price_pressure"].item() is None  # no z-scores


def test_summary_liquidity_share_and_last_state() -> None:
    states = [None, "providing", "withdrawing", "withdrawing", "providing", None]
    bars = summary_input({"inventory_z": [None] * 6, "liquidity_state": states})
    out = inventory_summary(bars, every="1m").collect()
    assert out["withdrawing_share"].item() == 0.5
    assert out["liquidity_state"].item() is None
    assert out["mm_inventory"].item() == 5.0
    assert (out["inventory_max"].item(), out["inventory_min"].item()) == (5.0, 0.0)


def test_summary_hand_computed_row() -> None:
    bars = make_bars(
        series(
            "X",
            [5.0, 3.0, -2.0, -4.0, 1.0, -1.0],
            close=[100.0, 101.0, 101.5, 100.5, 100.0, 100.2],
            mid_close=[None] * 6,
        ),
    )
    out = inventory_summary(inventory_bars(bars, lookback=4), every="1m", horizon=1).collect()
    # I = −5, −8, −6, −2, −3, −2: pairs (−5,−8) (−8,−6) (−6,−2) (−2,−3) (−3,−2).
    phi = slope_reference([(-5, -8), (-8, -6), (-6, -2), (-2, -3), (-3, -2)])
    assert phi is not None
    row = out.row(0, named=True)
    assert row["mm_inventory"] == -2.0
    assert (row["inventory_max"], row["inventory_min"]) == (-2.0, -8.0)
    assert row["inventory_phi"] == pytest.approx(phi, rel=1e-12)
    assert row["inventory_half_life"] == pytest.approx(60 * math.log(0.5) / math.log(phi))
    assert row["quote_skew"] is None
    assert row["withdrawing_share"] is None
    assert row["liquidity_state"] is None
    assert list(out.columns) == [
        "symbol",
        "mm_inventory",
        "inventory_max",
        "inventory_min",
        "inventory_phi",
        "inventory_half_life",
        "price_pressure",
        "quote_skew",
        "withdrawing_share",
        "liquidity_state",
    ]


# --- withdrawal_episodes ----------------------------------------------------------------------


def episode_input(
    states: list[str | None],
    spreads: list[float | None],
    depths: list[float | None],
    symbols: list[str] | None = None,
    minutes: list[int] | None = None,
) -> pl.LazyFrame:
    n = len(states)
    return pl.LazyFrame(
        {
            "symbol": symbols or ["X"] * n,
            "ts": [T0 + timedelta(minutes=m) for m in (minutes or list(range(n)))],
            "spread": spreads,
            "depth": depths,
            "liquidity_state": states,
        },
        schema={
            "symbol": pl.String,
            "ts": NS_UTC,
            "spread": pl.Float64,
            "depth": pl.Float64,
            "liquidity_state": pl.String,
        },
    )


def test_withdrawal_episodes_hand_computed() -> None:
    states: list[str | None] = [P, W, W, P, None, W, P, W]
    spreads: list[float | None] = [1.0, 3.0, 5.0, 2.0, None, 4.0, 3.0, None]
    depths: list[float | None] = [10.0, 2.0, 4.0, 20.0, None, 0.0, 30.0, 5.0]
    out = withdrawal_episodes(episode_input(states, spreads, depths), every="1m").collect()
    # providing medians: spread med{1, 2, 3} = 2, depth med{10, 20, 30} = 20.
    expected = pl.DataFrame(
        {
            "symbol": ["X", "X", "X"],
            "start": [T0 + timedelta(minutes=m) for m in (1, 5, 7)],
            "end": [T0 + timedelta(minutes=m) for m in (3, 6, 8)],
            "bars": pl.Series([2, 1, 1], dtype=pl.UInt32),
            "spread_ratio": [2.0, 2.0, None],
            "depth_ratio": [0.15, 0.0, 0.25],
        },
        schema_overrides={"start": NS_UTC, "end": NS_UTC},
    )
    assert_frame_equal(out, expected)


def test_withdrawal_episodes_without_providing_bars_have_null_ratios() -> None:
    out = withdrawal_episodes(
        episode_input(["withdrawing"] * 3, [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]), every="30s"
    ).collect()
    assert out.rows() == [("X", T0, T0 + timedelta(seconds=150), 3, None, None)]


def test_withdrawal_episodes_none_when_always_providing_or_unknown() -> None:
    out = withdrawal_episodes(
        episode_input(["providing", None, "providing"], [1.0, None, 1.0], [1.0, None, 1.0]),
        every="1m",
    ).collect()
    assert out.height == 0
    assert out.columns == ["symbol", "start", "end", "bars", "spread_ratio", "depth_ratio"]


# --- degenerate input ---------------------------------------------------------------------------


def test_one_bar_gives_nulls_everywhere() -> None:
    bars = make_bars([Bar("X", 0, 7.0, close=100.0, mid_close=100.0, spread=0.1, depth=5.0)])
    out = inventory_bars(bars).collect()
    assert out.select("cvd", "mm_inventory", "inventory_change", "inventory_z").row(0) == (
        7.0,
        -7.0,
        -7.0,
        None,
    )
    assert out["liquidity_state"].to_list() == [None]
    summary = inventory_summary(inventory_bars(bars), every="1m").collect()
    assert summary.row(0) == ("X", -7.0, -7.0, -7.0, None, None, None, None, None, None)
    assert withdrawal_episodes(inventory_bars(bars), every="1m").collect().height == 0


def test_constant_inventory_has_null_z_and_null_half_life() -> None:
    bars = make_bars(series("X", [4.0] + [0.0] * 30), close=True)
    out = inventory_bars(bars, lookback=8).collect()
    assert out["mm_inventory"].unique().to_list() == [-4.0]
    assert out["inventory_z"].null_count() == 31
    half = inventory_half_life(bars, every="1m").collect()
    assert half.row(0) == ("X", None, None)


def test_constant_non_integer_inventory_has_null_z() -> None:
    # 0.1 + 0.1 + 0.1 is not exactly 0.3: the rolling mean would differ from I by rounding noise.
    bars = make_bars(series("X", [0.1] * 3 + [0.0] * 20))
    z = inventory_bars(bars, lookback=4).collect()["inventory_z"].to_list()
    assert all(v is None for v in z[6:])


def test_bars_without_quote_columns_have_null_liquidity() -> None:
    bars = make_bars(series("X", [1.0, -2.0, 3.0, 0.0, 1.0], close=[1.0] * 5), quotes=False)
    out = inventory_bars(bars, lookback=2).collect()
    assert out.schema["spread"] == pl.Float64
    assert out.schema["depth"] == pl.Float64
    assert out.schema["liquidity_state"] == pl.String
    assert out["liquidity_state"].null_count() == 5
    summary = inventory_summary(out.lazy(), every="1m").collect()
    assert summary.select("quote_skew", "withdrawing_share", "liquidity_state").row(0) == (
        None,
        None,
        None,
    )
    assert withdrawal_episodes(out.lazy(), every="1m").collect().height == 0


def test_zero_volume_bars_keep_inventory_and_null_net_flow_counts_as_zero() -> None:
    bars = pl.LazyFrame(
        {
            "symbol": ["X"] * 4,
            "ts": [T0 + timedelta(minutes=k) for k in range(4)],
            "net_flow": [2.0, 0.0, None, -1.0],
            "close": [10.0, None, None, 11.0],
        },
        schema_overrides={"ts": NS_UTC, "net_flow": pl.Float64, "close": pl.Float64},
    )
    out = inventory_bars(bars).collect()
    assert out["mm_inventory"].to_list() == [-2.0, -2.0, -2.0, -1.0]
    assert out["inventory_change"].to_list() == [-2.0, 0.0, 0.0, 1.0]


def test_empty_input_gives_empty_outputs() -> None:
    bars = make_bars([], session=True)
    out = inventory_bars(bars).collect()
    assert out.height == 0
    assert out.schema["liquidity_state"] == pl.String
    assert inventory_half_life(bars, every="1m").collect().height == 0
    assert inventory_summary(out.lazy(), every="1m").collect().height == 0
    assert withdrawal_episodes(out.lazy(), every="1m").collect().height == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: inventory_bars(b, lookback=1), "lookback must be a whole number of bars >= 2"),
        (lambda b: inventory_bars(b, lookback=True), "lookback must be"),
        (lambda b: inventory_bars(b, spread_factor=0.0), "spread_factor must be a finite"),
        (lambda b: inventory_bars(b, depth_factor=float("nan")), "depth_factor must be a finite"),
        (lambda b: inventory_half_life(b, every="1mo"), "no fixed length"),
        (lambda b: inventory_summary(inventory_bars(b), every="1m", horizon=0), "horizon"),
        (lambda b: inventory_summary(inventory_bars(b), every="1y"), "no fixed length"),
        (lambda b: withdrawal_episodes(inventory_bars(b), every="soon"), "not a polars duration"),
    ],
)
def test_bad_parameters_raise_parameter_error(call: Any, message: str) -> None:
    bars = make_bars(series("X", [1.0, 2.0]))
    with pytest.raises(ParameterError, match=message) as info:
        call(bars)
    assert "\n" not in str(info.value)


def test_missing_columns_raise_schema_error() -> None:
    bars = make_bars(series("X", [1.0, 2.0]))
    with pytest.raises(SchemaError, match="bars is missing column\\(s\\) net_flow"):
        inventory_bars(bars.drop("net_flow"))
    with pytest.raises(SchemaError, match=r"run mmflow\.metrics\.inventory\.inventory_bars first"):
        inventory_summary(bars, every="1m")
    with pytest.raises(SchemaError, match="missing column\\(s\\) liquidity_state"):
        withdrawal_episodes(bars, every="1m")
    with pytest.raises(SchemaError, match="net_flow"):
        inventory_half_life(bars.drop("net_flow"), every="1m")


# --- eager == lazy == streaming -----------------------------------------------------------------


def mixed_bars() -> list[Bar]:
    bars = []
    for k in range(40):
        for symbol, scale in (("B", 1.0), ("A", 3.0)):
            flow = scale * ((k * 7) % 5 - 2)
            quoted = k % 9 != 4
            bars.append(
                Bar(
                    symbol,
                    k,
                    flow,
                    close=None if k % 6 == 3 else 100 + scale * ((k * 3) % 7),
                    mid_close=100 + scale * ((k * 3) % 7) if quoted and symbol == "A" else None,
                    spread=(0.05 if k % 11 else 0.2) if quoted else None,
                    depth=(100.0 if k % 13 else 30.0) if quoted else None,
                    session=k // 25,
                )
            )
    return bars


@pytest.mark.parametrize("session", [False, True])
def test_eager_lazy_and_streaming_agree(session: bool) -> None:
    lazy = make_bars(mixed_bars(), session=session)
    eager = lazy.collect().lazy()
    calls: list[Callable[[pl.LazyFrame], pl.LazyFrame]] = [
        lambda lf: inventory_bars(lf, lookback=8),
        lambda lf: inventory_half_life(lf, every="1m"),
        lambda lf: inventory_summary(inventory_bars(lf, lookback=8), every="1m", horizon=3),
        lambda lf: withdrawal_episodes(inventory_bars(lf, lookback=8), every="1m"),
    ]
    for call in calls:
        expected = call(lazy).collect()
        assert expected.height > 0
        assert_frame_equal(call(eager).collect(), expected)
        assert_frame_equal(call(lazy).collect(engine="streaming"), expected)
    episodes = withdrawal_episodes(inventory_bars(lazy, lookback=8), every="1m").collect()
    assert episodes.height >= 2


# --- hypothesis: reference loops and invariants ------------------------------------------------


FLOWS = st.sampled_from([-8.0, -3.0, -1.0, -0.5, 0.0, 0.0, 1.0, 2.0, 5.0])
MAYBE_PRICE = st.sampled_from([None, 99.0, 99.5, 100.0, 100.5, 101.0])
MAYBE_SPREAD = st.sampled_from([None, 0.0, 0.01, 0.01, 0.02, 0.03, 0.05])
MAYBE_DEPTH = st.sampled_from([None, 0.0, 1.0, 4.0, 5.0, 10.0, 20.0])
ROW = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    FLOWS,
    MAYBE_PRICE,
    MAYBE_PRICE,
    MAYBE_SPREAD,
    MAYBE_DEPTH,
    st.sampled_from([False] * 9 + [True]),
)
ROWS = st.lists(ROW, max_size=60)
LONG_ROWS = st.lists(ROW, min_size=20, max_size=60)  # enough bars per symbol for regressions


def build(rows: list[tuple[str, float, Any, Any, Any, Any, bool]]) -> list[Bar]:
    """Interleaved bars; each symbol on its own minute grid; a True flag starts a new session."""
    minute: dict[str, int] = {}
    sessions: dict[str, int] = {}
    bars = []
    for symbol, flow, close_, mid, spread, depth, new_session in rows:
        minute[symbol] = minute.get(symbol, -1) + 1
        if new_session and minute[symbol] > 0:
            sessions[symbol] = sessions.get(symbol, 0) + 1
        bars.append(
            Bar(
                symbol,
                minute[symbol],
                flow if close_ is not None else 0.0,
                close=close_,
                mid_close=mid,
                spread=spread,
                depth=depth,
                session=sessions.get(symbol, 0),
            )
        )
    return bars


@settings(max_examples=50, deadline=None)
@given(rows=ROWS, session=st.booleans(), lookback=st.sampled_from([2, 3, 4, 5, 8, 12]))
def test_inventory_bars_match_reference_loops(
    rows: list[tuple[str, float, Any, Any, Any, Any, bool]], session: bool, lookback: int
) -> None:
    bars = build(rows)
    out = inventory_bars(make_bars(bars, session=session), lookback=lookback).collect()
    cvd = cvd_reference(bars, session=session)
    assert out["cvd"].to_list() == cvd
    inventory = [-c for c in cvd]
    # Invariants: I = −CVD and ΔI = −net_flow on every bar; I_k − I_{k−1} = ΔI_k within a session.
    assert out["mm_inventory"].to_list() == inventory
    assert out["inventory_change"].to_list() == [-b.net_flow for b in bars]
    z = z_reference(bars, inventory, lookback, session=session)
    for got, want in zip(out["inventory_z"].to_list(), z, strict=True):
        assert close(got, want)
    assert out["liquidity_state"].to_list() == state_reference(bars, lookback, 2.0, 0.5)


@settings(max_examples=40, deadline=None)
@given(
    rows=ROWS,
    spread_factor=st.sampled_from([1.5, 2.0, 3.0]),
    depth_factor=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_liquidity_state_matches_reference_with_any_factors(
    rows: list[tuple[str, float, Any, Any, Any, Any, bool]],
    spread_factor: float,
    depth_factor: float,
) -> None:
    bars = build(rows)
    out = inventory_bars(
        make_bars(bars), lookback=4, spread_factor=spread_factor, depth_factor=depth_factor
    ).collect()
    expected = state_reference(bars, 4, spread_factor, depth_factor)
    assert out["liquidity_state"].to_list() == expected


@settings(max_examples=40, deadline=None)
@given(rows=LONG_ROWS, session=st.booleans(), horizon=st.sampled_from([1, 2, 5]))
def test_half_life_and_summary_match_reference_loops(
    rows: list[tuple[str, float, Any, Any, Any, Any, bool]], session: bool, horizon: int
) -> None:
    bars = build(rows)
    frame = make_bars(bars, session=session)
    inventory = [-c for c in cvd_reference(bars, session=session)]
    sessions = [b.session if session else 0 for b in bars]
    half = inventory_half_life(frame, every="1m").collect()
    reference = half_life_reference([b.symbol for b in bars], sessions, inventory, 60.0)
    assert half["symbol"].to_list() == sorted(reference)
    for symbol, phi, half_life in half.iter_rows():
        want_phi, want_half = reference[symbol]
        assert close(phi, want_phi)
        assert close(half_life, want_half)

    per_bar = inventory_bars(frame, lookback=6).collect()
    summary = inventory_summary(per_bar.lazy(), every="1m", horizon=horizon).collect()
    expected = summary_reference(per_bar.to_dicts(), horizon=horizon, seconds=60.0, session=session)
    assert summary["symbol"].to_list() == sorted(expected)
    for row in summary.iter_rows(named=True):
        want = expected[row["symbol"]]
        for name, value in want.items():
            if isinstance(value, float) or isinstance(row[name], float):
                assert close(row[name], value), name
            else:
                assert row[name] == value, name


EPISODE_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from(["providing", "withdrawing", "withdrawing", None]),
        MAYBE_SPREAD,
        MAYBE_DEPTH,
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(rows=EPISODE_ROWS)
def test_withdrawal_episodes_match_reference_loop(
    rows: list[tuple[str, str | None, float | None, float | None]],
) -> None:
    symbols = [r[0] for r in rows]
    minute: dict[str, int] = {}
    minutes = []
    for symbol in symbols:
        minute[symbol] = minute.get(symbol, -1) + 1
        minutes.append(minute[symbol])
    states = [r[1] for r in rows]
    spreads = [r[2] for r in rows]
    depths = [r[3] for r in rows]
    frame = episode_input(states, spreads, depths, symbols, minutes)
    out = withdrawal_episodes(frame, every="1m").collect()
    expected = episodes_reference(symbols, minutes, states, spreads, depths)
    assert len(out) == len(expected)
    for got, want in zip(out.iter_rows(), expected, strict=True):
        assert got[:4] == want[:4]
        assert close(got[4], want[4])
        assert close(got[5], want[5])
    # Invariant: episodes hold exactly the withdrawing bars.
    assert out["bars"].sum() == sum(s == "withdrawing" for s in states)


@settings(max_examples=25, deadline=None)
@given(rows=ROWS, session=st.booleans())
def test_results_do_not_depend_on_symbol_order(
    rows: list[tuple[str, float, Any, Any, Any, Any, bool]], session: bool
) -> None:
    bars = build(rows)
    # The same bars, symbol blocks in reverse order (each symbol's own bars keep their order).
    regrouped = sorted(bars, key=lambda b: b.symbol, reverse=True)
    a = make_bars(bars, session=session)
    b = make_bars(regrouped, session=session)
    assert_frame_equal(
        inventory_bars(a, lookback=4).collect().sort("symbol", "ts"),
        inventory_bars(b, lookback=4).collect().sort("symbol", "ts"),
    )
    calls: tuple[Callable[[pl.LazyFrame], pl.LazyFrame], ...] = (
        lambda lf: inventory_half_life(lf, every="1m"),
        lambda lf: inventory_summary(inventory_bars(lf, lookback=4), every="1m", horizon=2),
        lambda lf: withdrawal_episodes(inventory_bars(lf, lookback=4), every="1m"),
    )
    for call in calls:
        assert_frame_equal(call(a).collect(), call(b).collect())
    # Each symbol alone gives its rows of the whole.
    whole = inventory_bars(a, lookback=4).collect()
    for symbol in {bar.symbol for bar in bars}:
        alone = make_bars([bar for bar in bars if bar.symbol == symbol], session=session)
        assert_frame_equal(
            inventory_bars(alone, lookback=4).collect(),
            whole.filter(pl.col("symbol") == symbol),
        )


@settings(max_examples=40, deadline=None)
@given(rows=ROWS)
def test_inventory_last_equals_minus_session_flow(
    rows: list[tuple[str, float, Any, Any, Any, Any, bool]],
) -> None:
    bars = build(rows)
    out = inventory_bars(make_bars(bars, session=True)).collect()
    last = out.group_by("symbol", "session").agg(pl.col("mm_inventory").last())
    for symbol, session, inventory in last.iter_rows():
        flows = [b.net_flow for b in bars if b.symbol == symbol and b.session == session]
        assert inventory == pytest.approx(-sum(flows), abs=1e-9)
    # Scaling all flows scales inventory and leaves z unchanged.
    doubled = inventory_bars(
        make_bars([replace(b, net_flow=2 * b.net_flow) for b in bars], session=True)
    ).collect()
    assert doubled["mm_inventory"].to_list() == [2 * v for v in out["mm_inventory"].to_list()]
    for x, y in zip(out["inventory_z"].to_list(), doubled["inventory_z"].to_list(), strict=True):
        assert close(x, y, abs_=1e-7)
