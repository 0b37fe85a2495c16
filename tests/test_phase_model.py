"""The redesigned distribution detector: reference loops, causality, noise, pinned scores, flags."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.analysis import BarOptions, market_bars
from mmflow.cli import PHASE_OPTIONS, cli
from mmflow.metrics import phase_model
from mmflow.metrics.phase_episodes import phase_episodes
from mmflow.metrics.phase_evaluation import truth_scores
from mmflow.metrics.phases import PARAMETER_RANGES, PhaseParameters, phase_bars
from mmflow.simulate import Simulation, SimulationParameters, simulate

# --- reference loop of the features ---------------------------------------------------------


def oriented_reference(
    x: list[float], price: list[float], price_sd: list[float], memory: int, w: int, window: int
) -> list[dict[str, float]]:
    """Slow loop over bars: peak, trough, rise_z, draw_z, give_back, recent_z, follow_z,
    log_built, log_since, rise_rate."""
    rows = []
    for k in range(len(x)):
        first = max(k - memory + 1, 0)
        best = max(x[first : k + 1])
        peak = max(i for i in range(first, k + 1) if x[i] == best)
        trough, top = peak, -math.inf
        for t in range(first, peak):
            z = (x[peak] - x[t]) / math.sqrt(peak - t)
            if z > top:
                trough, top = t, z
        rise = x[peak] - x[trough]
        draw = x[peak] - x[k]
        built, since = max(peak - trough, 1), max(k - peak, 1)
        lag = x[max(k - w, 0)]
        rows.append(
            {
                "peak": peak,
                "trough": trough,
                "rise_z": min(max(rise / math.sqrt(built), 0.0), 12.0),
                "draw_z": min(max(draw / math.sqrt(since), -6.0), 12.0),
                "give_back": min(max(draw / max(rise, 1.0), -1.0), 2.0),
                "recent_z": min(max((lag - x[k]) / math.sqrt(w), -6.0), 6.0),
                "follow_z": min(
                    max((price[k] - price[peak]) / (price_sd[k] * math.sqrt(since)), -6.0), 6.0
                ),
                "log_built": min(math.log(built), 5.0),
                "log_since": min(math.log(since), 5.0),
                "rise_rate": min(max(rise / built, 0.0), 4.0),
            }
        )
    return rows


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.integers(2, 12),
    st.integers(1, 5),
)
def test_oriented_features_match_reference_loop(steps: list[int], memory: int, w: int) -> None:
    x = np.cumsum(np.array(steps, dtype=np.float64))
    price = 100 + 0.01 * np.cumsum(np.array(steps[::-1], dtype=np.float64))
    price_sd = np.full(x.size, 0.02)
    got = phase_model.oriented(x, price, price_sd, side=1, memory=memory, recent_bars=w, window=3)
    expected = oriented_reference(list(x), list(price), list(price_sd), memory, w, 3)
    index = {name: i for i, name in enumerate(phase_model.FEATURES)}
    for k, row in enumerate(expected):
        assert got.peak_index[k] == row["peak"]
        assert got.trough_index[k] == row["trough"]
        for name in (
            "rise_z",
            "draw_z",
            "give_back",
            "recent_z",
            "follow_z",
            "log_built",
            "log_since",
            "rise_rate",
        ):
            assert got.features[k, index[name]] == pytest.approx(row[name], abs=1e-9), name


def test_normalised_path_clips_heavy_tails_and_skips_cold_bars() -> None:
    change = np.array([1.0, 100.0, -2.0, 3.0])
    sigma = np.array([np.nan, 2.0, 2.0, 1.0])
    # Bar 0 has no σ₁ (0), bar 1 is clipped at +4, then −1 and +3.
    assert phase_model.normalised_path(change, sigma).tolist() == [0.0, 4.0, 3.0, 6.0]


def drift_ratio_reference(
    x: list[float], warm: list[bool], lookback: int, horizon: int
) -> list[float]:
    """Slow loop: local IQR ratio of h-bar changes, then a low quantile of it over 3·L bars."""
    least = max(2, math.ceil(lookback / 4))
    changes: list[float | None] = [
        x[i] - x[i - horizon] if i >= horizon and warm[i - horizon] else None for i in range(len(x))
    ]
    local: list[float | None] = []
    for k in range(len(x)):
        window = [c for c in changes[max(0, k - lookback + 1) : k + 1] if c is not None]
        if len(window) < least:
            local.append(None)
            continue
        spread = float(np.percentile(window, 75) - np.percentile(window, 25))
        local.append(spread / (1.349 * math.sqrt(horizon)))
    out = []
    memory = phase_model.DRIFT_MEMORY * lookback
    for k in range(len(x)):
        window = [v for v in local[max(0, k - memory + 1) : k + 1] if v is not None]
        current = local[k]
        if len(window) >= lookback:
            value = float(np.percentile(window, 100 * phase_model.DRIFT_QUANTILE))
        elif current is not None:
            value = current
        else:
            out.append(math.nan)  # no estimate yet: the detector is not warm
            continue
        out.append(max(value, 1.0))
    return out


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(-4, 4), min_size=1, max_size=80),
    st.integers(2, 10),
    st.integers(1, 4),
    st.integers(0, 6),
)
def test_drift_ratio_matches_reference_loop(
    steps: list[int], lookback: int, horizon: int, cold: int
) -> None:
    x = np.cumsum(np.array(steps, dtype=np.float64))
    warm = np.arange(x.size) >= cold
    got = phase_model.drift_ratio(x, warm, lookback, horizon)
    expected = drift_ratio_reference(list(x), list(warm), lookback, horizon)
    assert got.tolist() == pytest.approx(expected, abs=1e-9, nan_ok=True)


def test_drift_ratio_is_one_on_a_random_walk_and_large_on_persistent_flow() -> None:
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(3000)
    warm = np.ones(noise.size, dtype=np.bool_)
    walk = phase_model.drift_ratio(np.cumsum(noise), warm, 240)
    assert np.median(walk[720:]) < 1.1
    # Other participants' flow: AR(1), φ = 0.9, marginal sd 1 (proxy drift 1.0).
    other = np.zeros(noise.size)
    shocks = rng.standard_normal(noise.size) * math.sqrt(1 - 0.81)
    for i in range(1, noise.size):
        other[i] = 0.9 * other[i - 1] + shocks[i]
    drifting = phase_model.drift_ratio(np.cumsum(noise + other), warm, 240)
    assert np.median(drifting[720:]) > 1.5
    ratio = phase_model.drift_ratio(np.cumsum(noise + other), warm, 240)
    adjusted = phase_model.drift_adjusted_path(np.cumsum(noise + other), ratio)
    ready = np.isfinite(ratio)
    assert not ready[:60].any()
    assert ready[200:].all()
    steps = np.diff(adjusted, prepend=0.0)
    assert steps[ready] == pytest.approx((noise + other)[ready] / ratio[ready])
    assert (steps[~ready] == 0).all()


def test_shipped_model_is_a_probability_with_an_entry_threshold() -> None:
    fitted = phase_model.model()
    n = len(phase_model.FEATURES)
    assert len(fitted.coefficients) == n + n * (n + 1) // 2  # linear + pairwise terms
    assert fitted.evidence > 0
    rows = np.zeros((3, len(phase_model.FEATURES)))
    rows[1, :] = 3.0
    p = fitted.probability(rows)
    assert ((p > 0) & (p < 1)).all()


# --- markets -------------------------------------------------------------------------------


@cache
def sim(family: str, seed: int, episodes: float = 6.0, **regime: Any) -> Simulation:
    return simulate(
        SimulationParameters(seed=seed, family=family, episodes_per_day=episodes, **regime)
    )


@cache
def bars(family: str, seed: int, episodes: float = 6.0) -> pl.DataFrame:
    market = sim(family, seed, episodes)
    return market_bars(
        market.trades.lazy(), market.quotes.lazy(), options=BarOptions(every="1m")
    ).bars.collect()


# --- causality -----------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["inventory", "hawkes"]), st.integers(300, 2870))
def test_labels_do_not_change_when_later_bars_are_appended(family: str, cut: int) -> None:
    frame = bars(family, 1000)
    full = phase_bars(frame.lazy()).collect()
    prefix = phase_bars(frame.head(cut).lazy()).collect()
    assert_frame_equal(prefix, full.head(cut))


# --- no episodes ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["inventory", "hawkes"])
@pytest.mark.parametrize(
    "regime",
    [
        {},
        {"size_tail": 2.5, "clustering": 0.8},
        {"proxy_drift": 0.5},
        {"trades_per_hour": 400.0},
        {"spread_variability": 0.4, "inventory_reversion": 0.02},
    ],
    ids=["base", "tails", "drift", "thin", "spreads"],
)
def test_markets_without_episodes_flag_at_most_2_percent(
    family: str, regime: dict[str, Any]
) -> None:
    market = simulate(
        SimulationParameters(seed=4242, family=family, episodes_per_day=0.0, hours=12.0, **regime)
    )
    frame = market_bars(market.trades.lazy(), market.quotes.lazy()).bars
    phased = phase_bars(frame).collect().filter(pl.col("phase").is_not_null())
    share = int((phased["phase"] == "distribution").sum()) / max(phased.height, 1)
    assert share <= 0.02


LARGEST_DRIFT = 1.3
"""The largest ``proxy_drift`` of any regime in benchmarks/phase_robustness.py (tuning
``drift-strong``; the held-out sets go up to 1.2)."""


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    family=st.sampled_from(["inventory", "hawkes"]),
    drift=st.floats(0.0, LARGEST_DRIFT),
    tail=st.sampled_from([0.0, 3.0, 6.0]),
    clustering=st.floats(0.0, 0.6),
    trades_per_hour=st.sampled_from([1000.0, 3600.0]),
    seed=st.integers(10_000, 1_000_000),
)
@example(
    family="inventory",
    drift=LARGEST_DRIFT,
    tail=0.0,
    clustering=0.0,
    trades_per_hour=3600.0,
    seed=4242,
)
@example(
    family="hawkes",
    drift=LARGEST_DRIFT,
    tail=3.0,
    clustering=0.3,
    trades_per_hour=3600.0,
    seed=4242,
)
def test_drifting_markets_without_episodes_flag_at_most_2_percent(
    family: str, drift: float, tail: float, clustering: float, trades_per_hour: float, seed: int
) -> None:
    """Property: whatever the proxy drift (up to the largest in the regime grid), tails,
    clustering and activity, a market without episodes has ≤ 2 % of its bars flagged."""
    market = simulate(
        SimulationParameters(
            seed=seed,
            family=family,
            episodes_per_day=0.0,
            proxy_drift=drift,
            size_tail=tail,
            clustering=clustering,
            trades_per_hour=trades_per_hour,
        )
    )
    frame = market_bars(market.trades.lazy(), market.quotes.lazy()).bars
    phased = phase_bars(frame).collect().filter(pl.col("phase").is_not_null())
    share = int((phased["phase"] == "distribution").sum()) / max(phased.height, 1)
    assert share <= 0.02


# --- pinned held-out scores ----------------------------------------------------------------


HELD_OUT_CELLS: dict[str, tuple[dict[str, Any], int]] = {
    "moderate-hold": ({"accumulation_intensity": 0.3, "hold_bars": (2, 6)}, 1000),
    "drift-hold": (
        {"proxy_drift": 0.8, "hold_bars": (3, 12), "accumulation_intensity": 0.3},
        5000,
    ),
    "mild-drift-spreads": (
        {
            "proxy_drift": 0.4,
            "spread_variability": 0.4,
            "distribution_spread": 0.7,
            "hold_bars": (1, 5),
        },
        7000,
    ),
    "drift-hold-busy": (
        {"proxy_drift": 0.85, "hold_bars": (4, 9), "trades_per_hour": 1500.0},
        9000,
    ),
}
"""Held-out cells of benchmarks/phase_robustness.py and a seed of each: ``moderate-hold`` of the
first held-out set, ``drift-hold`` of the fourth (the drift-robust revision's),
``mild-drift-spreads`` of the fifth (the build-speed revision's), ``drift-hold-busy`` of the
sixth (written before the noise-trained revision; scores of the shipped build-speed model, the
set's hardest cell)."""


@pytest.mark.parametrize(
    ("cell", "family", "precision", "recall", "episode_recall", "noise"),
    [
        ("moderate-hold", "inventory", 0.877, 0.818, 0.917, 0.0),
        ("moderate-hold", "hawkes", 0.794, 0.701, 0.75, 0.0118),
        ("drift-hold", "inventory", 0.781, 0.371, 0.417, 0.0072),
        ("drift-hold", "hawkes", 0.602, 0.424, 0.667, 0.0),
        ("mild-drift-spreads", "inventory", 0.930, 0.874, 0.917, 0.0164),
        ("mild-drift-spreads", "hawkes", 0.854, 0.838, 0.917, 0.0),
        ("drift-hold-busy", "inventory", 0.587, 0.157, 0.166, 0.0),
        ("drift-hold-busy", "hawkes", 0.727, 0.163, 0.25, 0.0),
    ],
)
def test_held_out_cell_scores_are_pinned(
    cell: str, family: str, precision: float, recall: float, episode_recall: float, noise: float
) -> None:
    """Measured scores of one seed of two held-out cells: a change that degrades them fails.

    ``noise`` is the measured share of bars flagged on the same cell without episodes; it must
    stay under the 2 % target.
    """
    regime, seed = HELD_OUT_CELLS[cell]
    market = simulate(SimulationParameters(seed=seed, family=family, **regime))
    frame = market_bars(market.trades.lazy(), market.quotes.lazy()).bars
    row = truth_scores(phase_bars(frame), market.truth.lazy()).collect().row(-1, named=True)
    assert row["precision"] >= precision - 0.02
    assert row["recall"] >= recall - 0.02
    assert row["episode_recall"] >= episode_recall - 0.01
    quiet = simulate(SimulationParameters(seed=seed, family=family, episodes_per_day=0.0, **regime))
    labels = phase_bars(market_bars(quiet.trades.lazy(), quiet.quotes.lazy()).bars).collect()
    warm = labels.filter(pl.col("phase").is_not_null())
    share = int((warm["phase"] == "distribution").sum()) / warm.height
    assert share == pytest.approx(noise, abs=0.005)
    assert share <= 0.02


# --- flags ---------------------------------------------------------------------------------


CHANGES: dict[str, Any] = {
    "window": 3,
    "baseline": 30,
    "absorption": 0.2,
    "absorption_noise": 0.0,
    "extreme": 4.0,
    "unload": 3.0,
    "recent_bars": 1,
    "recent": 0.0,
    "accumulation": 3.0,
    "enter": 0.99,
    "evidence": 20.0,
    "stay": 0.6,
    "gap": 0,
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_every_phase_parameter_changes_the_per_bar_output(name: str) -> None:
    frame = bars("inventory", 1000).lazy()
    default = phase_bars(frame).collect()
    changed = phase_bars(frame, parameters=PhaseParameters(**{name: CHANGES[name]})).collect()
    columns = ["phase", "inventory_side", "absorption_ratio", "price_levels"]
    assert not default.select(columns).equals(changed.select(columns))


def test_min_bars_and_gap_change_the_episodes() -> None:
    phased = phase_bars(bars("inventory", 1000).lazy())
    default = phase_episodes(phased, every="1m").collect()
    longer = phase_episodes(phased, every="1m", parameters=PhaseParameters(min_bars=60)).collect()
    assert longer.height < default.height
    wider = phase_episodes(phased, every="1m", parameters=PhaseParameters(gap=20)).collect()
    assert wider["bars"].sum() > default["bars"].sum()  # runs bridged over longer pauses


def test_every_phase_option_has_a_library_range_and_a_change_test() -> None:
    assert set(PHASE_OPTIONS) <= set(PARAMETER_RANGES)
    assert set(CHANGES) | {"min_bars"} == set(PHASE_OPTIONS)
    for name in PHASE_OPTIONS:
        low, high = PARAMETER_RANGES[name]
        bounds: dict[str, Any] = {name: low}
        PhaseParameters(**bounds)
        if high is not None:
            bounds[name] = high
            PhaseParameters(**bounds)


@pytest.mark.parametrize(
    "flag", ["--recent-bars=0", "--window=0", "--baseline=1", "--enter=1.5", "--stay=-0.1"]
)
def test_phase_flags_outside_the_library_range_are_usage_errors(flag: str) -> None:
    result = CliRunner().invoke(cli, ["phases", "missing.parquet", flag])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_phases_accepts_the_smallest_lookback_the_cli_accepts(tmp_path: Any) -> None:
    market = simulate(SimulationParameters(seed=3, symbols=("X",), hours=2.0, episodes_per_day=0))
    market.trades.write_parquet(tmp_path / "trades.parquet")
    result = CliRunner().invoke(
        cli, ["phases", str(tmp_path / "trades.parquet"), "--lookback", "2", "--to", "csv"]
    )
    assert result.exit_code == 0, result.output


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.booleans()), min_size=0, max_size=60)
)
def test_cusum_matches_the_recursion(rows: list[tuple[float, bool]]) -> None:
    increments = np.array([r[0] for r in rows], dtype=np.float64)
    restart = np.array([r[1] for r in rows], dtype=np.bool_)
    expected, total = [], 0.0
    for value, reset in rows:
        total = 0.0 if reset else max(0.0, total + value)
        expected.append(total)
    assert phase_model.cusum(increments, restart) == pytest.approx(expected, abs=1e-9)
