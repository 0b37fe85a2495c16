from __future__ import annotations

import functools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import MmflowError, ParameterError
from mmflow.simulate import (
    PARAMETERS_KEY,
    Simulation,
    SimulationParameters,
    duration_nanoseconds,
    simulate,
    write_simulation,
)

START = datetime(2024, 1, 2, tzinfo=UTC)
BAR = timedelta(minutes=1)
TS = pl.Datetime("ns", "UTC")


def make_parameters(**overrides: Any) -> SimulationParameters:
    """Three symbols, 8 hours, three episodes per symbol, a light trade rate."""
    values: dict[str, Any] = {
        "seed": 11,
        "symbols": ("AAA", "BBB", "CCC"),
        "hours": 8.0,
        "trades_per_hour": 1200.0,
        "episodes_per_day": 9.0,
    }
    values.update(overrides)
    return SimulationParameters(**values)


@functools.cache
def market(seed: int = 11) -> Simulation:
    return simulate(make_parameters(seed=seed))


@functools.cache
def quiet_market() -> Simulation:
    return simulate(make_parameters(episodes_per_day=0.0, hours=6.0))


def with_quote_before(sim: Simulation) -> pl.DataFrame:
    """Each trade with the latest quote of its symbol strictly before it."""
    return sim.trades.join_asof(
        sim.quotes,
        on="ts",
        by="symbol",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )


def mid_before(sim: Simulation, times: pl.DataFrame) -> pl.DataFrame:
    """``times`` (symbol, at) with the mid of the latest quote strictly before ``at``."""
    quotes = sim.quotes.select(
        "symbol",
        pl.col("ts").alias("at"),
        ((pl.col("bid_price") + pl.col("ask_price")) / 2).alias("mid"),
    )
    return (
        times.with_columns(pl.col("at").dt.cast_time_unit("ns"))
        .sort("at")
        .join_asof(
            quotes,
            on="at",
            by="symbol",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    )


def phase_windows(truth: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol, episode and phase: side, first and last bar, inventories."""
    return (
        truth.filter(pl.col("episode").is_not_null())
        .group_by("symbol", "episode", "phase", maintain_order=True)
        .agg(
            pl.col("inventory_side").first(),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.len().alias("bars"),
            pl.col("mm_inventory").last().alias("inventory_end"),
        )
        .with_columns(
            pl.when(pl.col("inventory_side") == "long").then(1).otherwise(-1).alias("sign"),
            (pl.col("last") + BAR).dt.cast_time_unit("ns").alias("end"),
        )
    )


def inventory_reference(sim: Simulation, bar_ns: int) -> dict[tuple[str, int], float]:
    """Slow loop: the market maker's inventory −Σ side·size at the end of every bar."""
    origin = int(sim.truth["ts"].min().timestamp()) * 10**9  # type: ignore[union-attr]
    running: dict[str, float] = {}
    last_bar: dict[str, int] = {}
    at_bar_end: dict[tuple[str, int], float] = {}
    bars = sim.truth.group_by("symbol").len()
    n_bars = dict(zip(bars["symbol"].to_list(), bars["len"].to_list(), strict=True))
    trades = sim.trades.with_columns(pl.col("ts").dt.epoch("ns").alias("ns"))
    for symbol, ns, side, size in trades.select("symbol", "ns", "aggressor_side", "size").rows():
        bar = (ns - origin) // bar_ns
        for k in range(last_bar.get(symbol, 0), bar):
            at_bar_end[(symbol, k)] = running.get(symbol, 0.0)
        last_bar[symbol] = bar
        running[symbol] = running.get(symbol, 0.0) - side * size
    for symbol, count in n_bars.items():
        for k in range(last_bar.get(symbol, 0), count):
            at_bar_end[(symbol, k)] = running.get(symbol, 0.0)
    return at_bar_end


def test_simulate_same_seed_gives_identical_frames() -> None:
    first = simulate(make_parameters(hours=3.0, episodes_per_day=8.0))
    second = simulate(make_parameters(hours=3.0, episodes_per_day=8.0))
    assert_frame_equal(first.trades, second.trades)
    assert_frame_equal(first.quotes, second.quotes)
    assert_frame_equal(first.truth, second.truth)


def test_simulate_other_seed_gives_other_frames() -> None:
    first = simulate(make_parameters(hours=3.0, episodes_per_day=8.0))
    other = simulate(make_parameters(hours=3.0, episodes_per_day=8.0, seed=12))
    assert not first.trades.equals(other.trades)
    assert not first.truth.equals(other.truth)


def test_simulate_frames_have_exact_canonical_schema() -> None:
    sim = market()
    assert sim.trades.schema == pl.Schema(
        {
            "ts": TS,
            "symbol": pl.String(),
            "price": pl.Float64(),
            "size": pl.Float64(),
            "aggressor_side": pl.Int8(),
            "trade_id": pl.String(),
        }
    )
    assert sim.quotes.schema == pl.Schema(
        {
            "ts": TS,
            "symbol": pl.String(),
            "bid_price": pl.Float64(),
            "bid_size": pl.Float64(),
            "ask_price": pl.Float64(),
            "ask_size": pl.Float64(),
        }
    )
    assert sim.truth.schema == pl.Schema(
        {
            "symbol": pl.String(),
            "ts": TS,
            "mm_inventory": pl.Float64(),
            "phase": pl.String(),
            "inventory_side": pl.String(),
            "episode": pl.Int32(),
            "fair_value": pl.Float64(),
        }
    )


def test_simulate_frames_have_no_nulls_except_outside_episodes() -> None:
    sim = market()
    assert sim.trades.null_count().sum_horizontal().item() == 0
    assert sim.quotes.null_count().sum_horizontal().item() == 0
    outside = sim.truth.filter(pl.col("phase") == "neutral")
    assert outside["episode"].null_count() == outside.height
    assert outside["inventory_side"].null_count() == outside.height
    inside = sim.truth.filter(pl.col("phase") != "neutral")
    assert inside.null_count().sum_horizontal().item() == 0


def test_simulate_trades_and_quotes_sorted_by_ts_with_symbols_interleaved() -> None:
    sim = market()
    assert sim.trades["ts"].is_sorted()
    assert sim.quotes["ts"].is_sorted()
    assert sorted(sim.trades["symbol"].unique()) == ["AAA", "BBB", "CCC"]
    changes = (sim.trades["symbol"] != sim.trades["symbol"].shift(1)).sum()
    assert changes > sim.trades.height / 3
    assert sim.trades["trade_id"].n_unique() == sim.trades.height
    assert sim.truth.select("symbol", "ts").is_duplicated().sum() == 0


def test_simulate_every_trade_is_at_the_quote_strictly_before() -> None:
    matched = with_quote_before(market())
    assert matched["bid_price"].null_count() == 0
    buys = matched.filter(pl.col("aggressor_side") == 1)
    sells = matched.filter(pl.col("aggressor_side") == -1)
    assert buys.height + sells.height == matched.height
    assert (buys["price"] == buys["ask_price"]).all()
    assert (sells["price"] == sells["bid_price"]).all()
    assert (matched["ask_price"] > matched["bid_price"]).all()
    lee_ready = (
        pl.when(pl.col("price") > (pl.col("bid_price") + pl.col("ask_price")) / 2)
        .then(1)
        .otherwise(-1)
    )
    assert (matched.select(lee_ready == pl.col("aggressor_side")).to_series()).all()


def test_simulate_prices_are_on_the_tick_grid() -> None:
    sim = simulate(make_parameters(hours=3.0, episodes_per_day=8.0, tick_size=0.05))
    for column in (sim.trades["price"], sim.quotes["bid_price"], sim.quotes["ask_price"]):
        ticks = column / 0.05
        assert ((ticks - ticks.round()).abs() < 1e-9).all()
        assert (column > 0).all()


def test_simulate_sizes_are_whole_positive_lots() -> None:
    sim = market()
    for column in (sim.trades["size"], sim.quotes["bid_size"], sim.quotes["ask_size"]):
        assert (column >= 1).all()
        assert (column == column.round()).all()


def test_simulate_truth_is_a_regular_bar_grid_per_symbol() -> None:
    truth = market().truth
    expected = pl.datetime_range(
        START, START + timedelta(hours=8) - BAR, "1m", time_unit="ns", time_zone="UTC", eager=True
    )
    for symbol in ("AAA", "BBB", "CCC"):
        assert truth.filter(pl.col("symbol") == symbol)["ts"].to_list() == expected.to_list()


def test_simulate_truth_inventory_equals_minus_cumulative_signed_size() -> None:
    sim = simulate(make_parameters(hours=4.0, episodes_per_day=6.0))
    reference = inventory_reference(sim, 60 * 10**9)
    rows = sim.truth.with_columns(pl.int_range(pl.len()).over("symbol").alias("k"))
    got = {(s, k): i for s, k, i in rows.select("symbol", "k", "mm_inventory").rows()}
    assert got == reference


def test_simulate_market_maker_quotes_skewed_against_inventory() -> None:
    sim = market()
    ends = sim.truth.select(
        "symbol", (pl.col("ts") + BAR).alias("at"), "mm_inventory", "fair_value"
    )
    skew = mid_before(sim, ends).select(
        pl.cov(pl.col("mid") - pl.col("fair_value"), "mm_inventory") / pl.col("mm_inventory").var()
    )
    assert skew.item() == pytest.approx(-2e-5, rel=0.2)


def test_simulate_episodes_run_accumulation_then_distribution_then_reversal() -> None:
    truth = market().truth
    runs = (
        truth.filter(pl.col("episode").is_not_null())
        .group_by("symbol", "episode", maintain_order=True)
        .agg(pl.col("phase").rle().struct.field("value"), pl.col("inventory_side").n_unique())
    )
    assert runs.height == 9  # 3 symbols × round(9 · 8 / 24) episodes
    for phases in runs["value"].to_list():
        assert phases == ["accumulation", "distribution", "reversal"]
    assert (runs["inventory_side"] == 1).all()


def test_simulate_episodes_have_both_inventory_sides() -> None:
    sides = market().truth.group_by("symbol").agg(pl.col("inventory_side").drop_nulls().unique())
    for values in sides["inventory_side"].to_list():
        assert sorted(values) == ["long", "short"]


def test_simulate_accumulation_builds_inventory_on_the_episode_side() -> None:
    sim = market()
    windows = phase_windows(sim.truth).filter(pl.col("phase") == "accumulation")
    for row in windows.iter_rows(named=True):
        assert row["sign"] * row["inventory_end"] > 0
        inside = sim.trades.filter(
            (pl.col("symbol") == row["symbol"]) & pl.col("ts").is_between(row["first"], row["end"])
        )
        flow = (inside["aggressor_side"] * inside["size"]).sum()
        assert row["sign"] * flow < 0  # long after selling pressure, short after buying


def test_simulate_distribution_unloads_into_opposite_flow_across_levels() -> None:
    sim = market()
    windows = phase_windows(sim.truth)
    peaks = windows.filter(pl.col("phase") == "accumulation").select(
        "symbol", "episode", pl.col("inventory_end").alias("peak")
    )
    distributions = windows.filter(pl.col("phase") == "distribution").join(
        peaks, on=["symbol", "episode"]
    )
    assert distributions.height == 9
    for row in distributions.iter_rows(named=True):
        assert abs(row["inventory_end"]) < 0.25 * abs(row["peak"])
        inside = sim.trades.filter(
            (pl.col("symbol") == row["symbol"])
            & (pl.col("ts") >= row["first"])
            & (pl.col("ts") < row["end"])
        )
        flow = (inside["aggressor_side"] * inside["size"]).sum()
        assert row["sign"] * flow > 0  # buyers lift a long market maker's offers
        assert -flow * row["peak"] < 0  # the market maker's fills oppose its inventory
        hits = inside.filter(pl.col("aggressor_side") == row["sign"])
        assert hits["price"].n_unique() >= 3


def price_moves(seeds: range) -> pl.DataFrame:
    """Per episode phase: side sign × mid change from its first bar start to its end."""
    frames = []
    for seed in seeds:
        sim = market(seed)
        windows = phase_windows(sim.truth)
        starts = mid_before(sim, windows.select("symbol", "episode", "phase", at="first"))
        ends = mid_before(sim, windows.select("symbol", "episode", "phase", at="end"))
        frames.append(
            windows.join(
                starts.select("symbol", "episode", "phase", start_mid="mid"),
                on=["symbol", "episode", "phase"],
            )
            .join(
                ends.select("symbol", "episode", "phase", end_mid="mid"),
                on=["symbol", "episode", "phase"],
            )
            .select(
                "phase", (pl.col("sign") * (pl.col("end_mid") - pl.col("start_mid"))).alias("move")
            )
        )
    return pl.concat(frames).group_by("phase").agg(pl.col("move").mean())


def test_simulate_price_follows_accumulation_flow_ignores_distribution_and_reverses() -> None:
    moves = dict(price_moves(range(11, 15)).iter_rows())
    assert moves["accumulation"] < -0.05  # long after selling: price fell with the flow
    assert moves["distribution"] < 0.01  # the buying is absorbed: no rise
    assert moves["reversal"] < -0.1  # a long market maker distributed: price falls


def test_simulate_without_episodes_is_neutral_everywhere() -> None:
    truth = quiet_market().truth
    assert truth["phase"].unique().to_list() == ["neutral"]
    assert truth["episode"].null_count() == truth.height
    assert truth["inventory_side"].null_count() == truth.height


def test_simulate_without_episodes_keeps_inventory_mean_reverting() -> None:
    truth = quiet_market().truth
    typical = truth.select(pl.col("mm_inventory").abs().quantile(0.99)).item()
    episodic = market().truth.select(pl.col("mm_inventory").abs().max()).item()
    assert typical < 0.25 * episodic


def test_simulate_fractional_hours_make_a_partial_last_bar() -> None:
    sim = simulate(make_parameters(hours=0.255, episodes_per_day=0.0, symbols=("X",)))
    end = START + timedelta(hours=0.255)
    assert sim.truth.height == 16
    assert sim.trades["ts"].max() < end  # type: ignore[operator]
    assert sim.quotes["ts"].max() < end  # type: ignore[operator]
    assert sim.quotes["ts"].min() == START


def test_simulate_quotes_update_after_fills_and_fair_value_changes() -> None:
    sim = simulate(make_parameters(hours=2.0, episodes_per_day=0.0, quotes_per_trade=2.0))
    ratio = sim.quotes.height / sim.trades.height
    assert 2.8 < ratio < 3.2


def test_simulate_start_parameter_moves_the_clock() -> None:
    start = datetime(2023, 3, 4, 5, 6, tzinfo=UTC)
    sim = simulate(make_parameters(hours=0.5, episodes_per_day=0.0, start=start, bar="30s"))
    assert sim.truth["ts"].min() == start
    assert sim.truth.height == 3 * 60
    assert sim.trades["ts"].min() > start  # type: ignore[operator]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"symbols": ()}, "symbols must be one or more"),
        ({"symbols": ("A", "A")}, "symbols must be distinct"),
        ({"hours": 0.0}, "hours must be a finite number > 0"),
        ({"hours": float("nan")}, "hours must be a finite number"),
        ({"bar": "1mo"}, "bar '1mo' is not a fixed duration"),
        ({"bar": "10us"}, "bar must be at least 1ms"),
        ({"start": datetime(2024, 1, 2)}, "start must be timezone-aware"),  # noqa: DTZ001
        ({"trade_size_mean": 0.5}, "trade_size_mean must be a finite number ≥ 1"),
        ({"tick_size": 0.0}, "tick_size must be a finite number > 0"),
        ({"skew": -1.0}, "skew must be a finite number ≥ 0"),
        ({"inventory_reversion": 1.5}, "inventory_reversion must be between 0 and 1"),
        ({"accumulation_bars": (5, 2)}, "accumulation_bars must be (min, max)"),
        ({"episodes_per_day": 100.0}, "do not fit in 480 bars"),
    ],
)
def test_simulation_parameters_bad_value_raises_parameter_error(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        make_parameters(**overrides)


def test_simulation_parameters_to_json_round_trips_values() -> None:
    values = json.loads(make_parameters().to_json())
    assert values["seed"] == 11
    assert values["symbols"] == ["AAA", "BBB", "CCC"]
    assert values["start"] == "2024-01-02T00:00:00+00:00"
    assert values["accumulation_bars"] == [20, 40]


def test_duration_nanoseconds_parses_fixed_units() -> None:
    assert duration_nanoseconds("1m") == 60 * 10**9
    assert duration_nanoseconds("1h30m") == 5400 * 10**9
    assert duration_nanoseconds("250ms") == 250 * 10**6
    with pytest.raises(ParameterError, match="not a fixed duration"):
        duration_nanoseconds("1y")


def test_write_simulation_writes_three_parquet_files_atomically(tmp_path: Path) -> None:
    sim = simulate(make_parameters(hours=1.0, episodes_per_day=0.0))
    directory = tmp_path / "nested" / "sim"
    paths = write_simulation(sim, directory, metadata={"mmflow.clock": "recv", "who": "test"})
    assert paths == [directory / f"{n}.parquet" for n in ("trades", "quotes", "truth")]
    assert sorted(p.name for p in directory.iterdir()) == [
        "quotes.parquet",
        "trades.parquet",
        "truth.parquet",
    ]
    for path, frame in zip(paths, (sim.trades, sim.quotes, sim.truth), strict=True):
        assert_frame_equal(pl.read_parquet(path), frame)
        metadata = {k.decode(): v.decode() for k, v in pq.read_metadata(path).metadata.items()}
        assert metadata["who"] == "test"
        assert metadata["mmflow.clock"] == "recv"
        assert metadata["mmflow.schema"] == f"{path.stem}/1"
        assert json.loads(metadata[PARAMETERS_KEY])["seed"] == 11


def test_write_simulation_into_a_file_path_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sim = simulate(make_parameters(hours=0.1, episodes_per_day=0.0))
    with pytest.raises(MmflowError, match="cannot create the output directory"):
        write_simulation(sim, blocker / "sim")


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    symbols=st.integers(1, 3),
    hours=st.floats(0.02, 3.0),
    quotes_per_trade=st.floats(0.0, 3.0),
    tick=st.sampled_from([0.01, 0.05, 0.25, 1.0]),
    skew=st.floats(0.0, 1e-3),
    reversion=st.floats(0.0, 1.0),
    episodes=st.sampled_from([0.0, 8.0]),
)
def test_simulate_random_parameters_keep_quote_and_inventory_invariants(
    seed: int,
    symbols: int,
    hours: float,
    quotes_per_trade: float,
    tick: float,
    skew: float,
    reversion: float,
    episodes: float,
) -> None:
    sim = simulate(
        SimulationParameters(
            seed=seed,
            symbols=tuple(f"S{i}" for i in range(symbols)),
            hours=hours,
            trades_per_hour=2000.0,
            quotes_per_trade=quotes_per_trade,
            tick_size=tick,
            spread=2 * tick,
            skew=skew,
            inventory_reversion=reversion,
            episodes_per_day=episodes if hours >= 2.2 else 0.0,
            accumulation_bars=(5, 10),
            distribution_bars=(5, 10),
            reversal_bars=(3, 5),
            gap_bars=10,
        )
    )
    matched = with_quote_before(sim)
    expected = pl.when(pl.col("aggressor_side") == 1).then("ask_price").otherwise("bid_price")
    assert (matched.select(pl.col("price") == expected).to_series()).all()
    ticks = sim.trades["price"] / tick
    assert ((ticks - ticks.round()).abs() < 1e-9).all()
    bar_ends = (
        sim.trades.with_columns(
            ((pl.col("ts") - START).dt.total_nanoseconds() // 60_000_000_000).alias("k"),
            (-pl.col("aggressor_side") * pl.col("size")).alias("fill"),
        )
        .group_by("symbol", "k")
        .agg(pl.col("fill").sum())
    )
    recomputed = (
        sim.truth.with_columns(pl.int_range(pl.len()).over("symbol").alias("k"))
        .join(bar_ends, on=["symbol", "k"], how="left")
        .with_columns(pl.col("fill").fill_null(0.0).cum_sum().over("symbol").alias("expected"))
    )
    assert (recomputed["expected"] == recomputed["mm_inventory"]).all()


def test_simulate_fifty_thousand_trades_quickly() -> None:
    parameters = SimulationParameters(symbols=("A", "B"), hours=12.0, trades_per_hour=1900.0)
    began = time.perf_counter()
    sim = simulate(parameters)
    elapsed = time.perf_counter() - began
    assert 45_000 < sim.trades.height < 60_000
    assert elapsed < 2.0


@pytest.mark.slow
def test_simulate_a_million_trades_in_seconds() -> None:
    parameters = SimulationParameters(symbols=("A", "B", "C", "D"), trades_per_hour=9500.0)
    began = time.perf_counter()
    sim = simulate(parameters)
    elapsed = time.perf_counter() - began
    assert sim.trades.height > 1_000_000
    assert elapsed < 10.0


# --- regimes and the second family (issue 10) -----------------------------------------------


def regime(**overrides: Any) -> Simulation:
    return simulate(make_parameters(symbols=("AAA",), **overrides))


@pytest.mark.parametrize("family", ["inventory", "hawkes"])
def test_both_families_are_deterministic_and_share_the_schemas(family: str) -> None:
    first = regime(family=family, seed=5)
    again = regime(family=family, seed=5)
    assert_frame_equal(first.trades, again.trades)
    assert_frame_equal(first.truth, again.truth)
    reference = market()
    assert first.trades.schema == reference.trades.schema
    assert first.quotes.schema == reference.quotes.schema
    assert first.truth.schema == reference.truth.schema
    assert set(first.truth["phase"].unique()) == {
        "neutral",
        "accumulation",
        "distribution",
        "reversal",
    }
    matched = with_quote_before(first)
    expected = pl.when(pl.col("aggressor_side") == 1).then("ask_price").otherwise("bid_price")
    assert matched.select(pl.col("price") == expected).to_series().all()


def test_hawkes_family_differs_from_the_inventory_family() -> None:
    hawkes = regime(family="hawkes", seed=5)
    inventory = regime(family="inventory", seed=5)
    assert not hawkes.trades.equals(inventory.trades)
    # The tracked market maker is one of several: −CVD is not its inventory.
    cvd = -(hawkes.trades["aggressor_side"].cast(pl.Float64) * hawkes.trades["size"]).sum()
    assert cvd != hawkes.truth["mm_inventory"][-1]


def test_hawkes_flow_clusters_in_time() -> None:
    # Per-bar trade counts are over-dispersed (variance > mean) with self-excitation.
    sim = simulate(
        make_parameters(symbols=("AAA",), family="hawkes", excitation=0.8, episodes_per_day=0.0)
    )
    counts = sim.trades.group_by_dynamic("ts", every="1m").agg(pl.len())["len"]
    assert counts.var() > 1.5 * counts.mean()  # type: ignore[operator]


def test_accumulation_builds_inventory_in_the_hawkes_family() -> None:
    windows = phase_windows(regime(family="hawkes", seed=3).truth)
    accumulated = windows.filter(pl.col("phase") == "accumulation")
    assert (accumulated["sign"] * accumulated["inventory_end"] > 0).all()
    unloaded = windows.filter(pl.col("phase") == "distribution")
    peaks = accumulated["sign"] * accumulated["inventory_end"]
    assert ((unloaded["sign"] * unloaded["inventory_end"]) < 0.5 * peaks).all()


def test_student_t_sizes_have_heavier_tails() -> None:
    geometric = regime(episodes_per_day=0.0).trades["size"]
    heavy = regime(episodes_per_day=0.0, size_tail=2.5).trades["size"]
    assert (heavy >= 1).all()
    assert ((heavy - heavy.round()).abs() == 0).all()
    assert heavy.quantile(0.999) > 1.5 * geometric.quantile(0.999)  # type: ignore[operator]
    assert abs(heavy.mean() - 3.0) < 1.0  # type: ignore[operator]


def test_proxy_drift_moves_cvd_away_from_the_true_inventory() -> None:
    sim = regime(episodes_per_day=0.0, proxy_drift=1.0)
    cvd = (-sim.trades["aggressor_side"].cast(pl.Float64) * sim.trades["size"]).sum()
    assert abs(cvd - sim.truth["mm_inventory"][-1]) > 0
    clean = regime(episodes_per_day=0.0)
    clean_cvd = (-clean.trades["aggressor_side"].cast(pl.Float64) * clean.trades["size"]).sum()
    assert clean_cvd == clean.truth["mm_inventory"][-1]


def test_holds_sit_between_accumulation_and_distribution() -> None:
    truth = regime(hold_bars=(4, 6)).truth
    inside = truth.filter(pl.col("episode").is_not_null())
    per_episode = inside.group_by("episode", maintain_order=True).agg(
        pl.col("phase").rle().struct.field("value").alias("order"),
        (pl.col("phase") == "neutral").sum().alias("hold"),
    )
    for order, hold in per_episode.select("order", "hold").rows():
        assert order == ["accumulation", "neutral", "distribution", "reversal"]
        assert 4 <= hold <= 6


def test_overshoot_unloads_through_zero() -> None:
    windows = phase_windows(regime(overshoot=0.5, seed=3).truth)
    unloaded = windows.filter(pl.col("phase") == "distribution")
    assert (unloaded["sign"] * unloaded["inventory_end"] < 0).mean() >= 0.6  # type: ignore[operator]


@pytest.mark.parametrize("family", ["inventory", "hawkes"])
def test_spreads_widen_during_distribution(family: str) -> None:
    sim = regime(family=family, distribution_spread=1.0, spread_variability=0.2)
    quotes = sim.quotes.with_columns(
        (pl.col("ask_price") - pl.col("bid_price")).alias("spread"),
        pl.col("ts").dt.truncate("1m").alias("bar"),
    )
    phases = sim.truth.select(pl.col("ts").alias("bar"), "phase")
    joined = quotes.join(phases, on="bar")
    distribution = joined.filter(pl.col("phase") == "distribution")["spread"].mean()
    elsewhere = joined.filter(pl.col("phase") == "neutral")["spread"].mean()
    assert distribution > 1.3 * elsewhere  # type: ignore[operator]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "other"}, "family must be one of inventory, hawkes"),
        ({"hold_bars": (3, 1)}, "hold_bars must be (min, max)"),
        ({"size_tail": 2.0}, "size_tail must be a finite number > 2"),
        ({"excitation": 0.95}, "excitation must be between 0 and 0.9"),
        ({"market_makers": 0}, "market_makers must be a whole number ≥ 1"),
        ({"proxy_drift": -1.0}, "proxy_drift must be a finite number ≥ 0"),
    ],
)
def test_regime_parameters_validate(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        make_parameters(**overrides)
