"""The engine's lead parts: census chain, chunk planner, run_chunk wiring and the finish.

The chunk partials here come from an **oracle**: today's whole-input functions run once on all
rows, sliced per chunk (what a correct ``trade_partials`` / ``quote_partials`` must return).
With it, a chunked run of :func:`mmflow.engine.run.run_engine` must give today's
``market_bars`` table, mix, quote checks and analysis summary for any chunk size: that proves
the planner's edges, the grid per chunk, the state chain and the finish (VPIN bucket pieces
merged across chunks, Kyle, Amihud, inventory, phases and value area on the small tables).
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.analysis import (
    BarOptions,
    Selection,
    Session,
    Signing,
    analyze,
    market_bars,
    prepare_market,
    quote_checks,
)
from mmflow.engine import run as engine_run
from mmflow.engine.census import chain, take_census
from mmflow.engine.chunks import BYTES_PER_QUOTE, BYTES_PER_TRADE, parse_memory, plan_chunks
from mmflow.engine.finish import finish_analysis
from mmflow.engine.run import make_settings, run_engine
from mmflow.engine.state import (
    Chunk,
    ChunkResult,
    ChunkTask,
    EngineSettings,
    TradePartials,
    TradeState,
)
from mmflow.errors import ParameterError, SizeLimitError
from mmflow.metrics.classify import tick_rule
from mmflow.metrics.impact import trade_costs
from mmflow.metrics.phases import PhaseParameters
from mmflow.metrics.vpin import _snap
from mmflow.schema import PRICE, SIGN_METHOD, SIZE, SYMBOL, TRADE_SIGN, TS
from mmflow.simulate import SimulationParameters, simulate

NS = 1_000_000_000


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two symbols over three UTC days, with a quote gap and a trade gap inside a day."""
    sim = simulate(SimulationParameters(seed=11, symbols=("X", "Y"), hours=54, trades_per_hour=900))
    trades, quotes = sim.trades, sim.quotes
    day2 = pl.datetime(2024, 1, 3, time_zone="UTC")
    # a quote gap of 3 h on day 2 for X (bars with trades but no quotes), a trade gap for Y
    quotes = quotes.filter(
        ~(
            (pl.col(SYMBOL) == "X")
            & pl.col(TS).is_between(day2 + timedelta(hours=5), day2 + timedelta(hours=8))
        )
    )
    trades = trades.filter(
        ~(
            (pl.col(SYMBOL) == "Y")
            & pl.col(TS).is_between(day2 + timedelta(hours=9), day2 + timedelta(hours=12))
        )
    )
    return trades, quotes


def _options(every: str) -> BarOptions:
    return BarOptions(every=every, lookback=30, vpin_window=10, buckets_per_day=40)


@dataclass
class Oracle:
    """Whole-input results sliced per chunk (what correct partials return)."""

    bars: pl.DataFrame
    signed: pl.DataFrame
    costs: pl.DataFrame | None
    quotes: pl.DataFrame | None

    def trade_partials(
        self,
        trades: pl.DataFrame,
        quotes: pl.DataFrame | None,
        chunk: Chunk,
        settings: EngineSettings,
        **_: Any,
    ) -> TradePartials:
        keys = list(settings.keys)
        bar_keys = settings.bar_keys
        own = pl.col(SYMBOL) == chunk.symbol
        inside = chunk.time_filter()
        bars = self.bars.filter(own & inside)
        signed = self.signed.filter(own)
        assert trades.height == signed.filter(inside).height
        every = settings.options.every
        valid = signed.filter(pl.col(SIZE).is_finite() & (pl.col(SIZE) > 0))
        volume_after = float(valid.filter(pl.col(TS) < chunk.end_datetime())[SIZE].sum())
        bucket_pieces = pl.DataFrame()
        if chunk.bucket_volume is not None:
            v = chunk.bucket_volume
            end = pl.col(SIZE).cum_sum()
            positioned = valid.with_columns(
                (end - pl.col(SIZE)).alias("_start"), end.alias("_end")
            ).with_columns(
                _snap(pl.col("_start") / v).alias("_ps"), _snap(pl.col("_end") / v).alias("_pe")
            )
            mine = positioned.filter(inside)
            piece = (
                pl.min_horizontal(pl.col("_end"), (pl.col("bucket") + 1) * v)
                - pl.max_horizontal(pl.col("_start"), pl.col("bucket") * v)
            ).clip(lower_bound=0.0)
            sign = pl.col(TRADE_SIGN).fill_null(0)
            bucket_pieces = (
                mine.with_columns(
                    pl.int_ranges(
                        pl.col("_ps").floor().cast(pl.Int64), pl.col("_pe").ceil().cast(pl.Int64)
                    ).alias("bucket")
                )
                .explode("bucket")
                .filter(pl.col("bucket").is_not_null())
                .with_columns(piece.alias("_piece"))
                .group_by(*keys, "bucket")
                .agg(
                    pl.col(TS).max(),
                    pl.col("_piece").sum().alias("volume"),
                    pl.col("_piece").filter(sign == 1).sum().alias("buy_volume"),
                    pl.col("_piece").filter(sign == -1).sum().alias("sell_volume"),
                    (pl.col("_pe").max() >= pl.col("bucket").first() + 1).alias("completes"),
                )
            )
        chunk_signed = signed.filter(inside)
        levels = (
            chunk_signed.filter(pl.col(PRICE).is_finite() & (pl.col(SIZE) > 0))
            .with_columns(pl.col(TS).dt.truncate(every))
            .group_by(*bar_keys, TS, PRICE, TRADE_SIGN)
            .agg(pl.col(SIZE).sum(), pl.len().cast(pl.UInt32).alias("trades"))
        )
        mix = chunk_signed.group_by(*keys, SIGN_METHOD).agg(
            pl.len().cast(pl.UInt32).alias("trades"), pl.col(SIZE).sum().alias("volume")
        )
        if self.costs is not None and self.quotes is not None:
            checks = (
                quote_checks(
                    chunk_signed.lazy(),
                    self.quotes.filter(own).lazy(),
                    self.costs.filter(own & inside).lazy(),
                )
                .collect()
                .filter(pl.col("trades") > 0)
                .drop("quotes")
            )
        else:
            checks = chunk_signed.group_by(keys).agg(
                pl.len().cast(pl.UInt32).alias("trades"),
                *(
                    pl.lit(0, pl.UInt32).alias(c)
                    for c in ("stale_quote", "after_last_quote", "stale_future_quote")
                ),
            )
        prices = signed.filter(pl.col(TS) < chunk.end_datetime())[PRICE].fill_nan(None)
        prices = prices.drop_nulls()
        ticks = pl.DataFrame({PRICE: prices}).select(tick_rule())[PRICE]
        state = TradeState(
            last_price=prices[-1] if prices.len() else None,
            last_direction=int(ticks[-1]) if ticks.len() else 0,
            cumulative_volume=volume_after,
            trades=signed.filter(pl.col(TS) < chunk.end_datetime()).height,
        )
        return TradePartials(bars, levels, bucket_pieces, mix, checks, state)

    def quote_partials(
        self,
        quotes: pl.DataFrame,
        chunk: Chunk,
        bar_starts: pl.Series | None,
        settings: EngineSettings,
        **_: Any,
    ) -> pl.DataFrame:
        return self.bars.filter((pl.col(SYMBOL) == chunk.symbol) & chunk.time_filter())


def _oracle(
    trades: pl.DataFrame, quotes: pl.DataFrame | None, options: BarOptions, signing: Signing
) -> tuple[Oracle, pl.DataFrame]:
    whole = market_bars(
        trades.lazy(),
        quotes.lazy() if quotes is not None else None,
        options=options,
        signing=signing,
        chunked=False,
    )
    bars, signed = pl.collect_all([whole.bars, whole.signed])
    costs = None
    prepared_quotes = None
    if quotes is not None:
        _, prepared, _ = prepare_market(trades.lazy(), quotes.lazy(), replace_selection())
        assert prepared is not None
        prepared_quotes = prepared.collect()
        costs = trade_costs(
            signed.lazy(),
            prepared_quotes.lazy(),
            horizon=options.horizon,
            max_quote_age=signing.max_quote_age,
        ).collect()
    return Oracle(bars, signed, costs, prepared_quotes), bars


def replace_selection() -> Any:
    from mmflow.analysis import Selection

    return Selection()


@pytest.fixture
def oracle_partials(monkeypatch: pytest.MonkeyPatch) -> list[Oracle]:
    holder: list[Oracle] = []
    monkeypatch.setattr(engine_run, "_trade_partials", lambda: holder[0].trade_partials)
    monkeypatch.setattr(engine_run, "_quote_partials", lambda: holder[0].quote_partials)
    return holder


def _equal(left: pl.DataFrame, right: pl.DataFrame, keys: list[str]) -> None:
    assert left.columns == right.columns
    assert left.height == right.height
    left, right = left.sort(keys, nulls_last=True), right.sort(keys, nulls_last=True)
    for name in left.columns:
        a, b = left[name], right[name]
        if a.dtype.is_float():
            assert (a.is_null() == b.is_null()).all(), name
            both = pl.DataFrame({"a": a, "b": b}).drop_nulls()
            close = (
                ((both["a"] - both["b"]).abs() <= 1e-9 * both["b"].abs().clip(lower_bound=1e-300))
                | (both["a"] == both["b"])
                | (both["a"].is_nan() & both["b"].is_nan())
            )
            assert close.all(), (name, both.filter(~close).head())
        else:
            assert a.equals(b, check_names=True), name


def _settings(options: BarOptions, signing: Signing, memory_limit: int) -> EngineSettings:
    return make_settings(
        options,
        signing,
        keys=("symbol",),
        session=False,
        has_quotes=True,
        memory_limit=memory_limit,
    )


def test_census_chain_matches_the_whole_tick_state(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    every_ns = 7 * 60 * NS
    census = take_census(
        trades.lazy(), quotes.lazy(), keys=("symbol",), every_ns=every_ns, session=False
    )
    states = chain(census)
    plan = plan_chunks(census, every_ns=every_ns, memory_limit=64 * 2**20 // 16, buckets_per_day=40)
    assert len(plan.chunks) >= 6
    for chunk in plan.chunks:
        before = trades.filter(
            (pl.col(SYMBOL) == chunk.symbol) & (pl.col(TS).dt.epoch("ns") < chunk.start)
        )
        prices = before[PRICE].fill_nan(None).drop_nulls()
        direction = pl.DataFrame({PRICE: prices}).select(tick_rule())[PRICE]
        assert chunk.trade_state.trades == before.height
        assert chunk.trade_state.last_price == (prices[-1] if prices.len() else None)
        assert chunk.trade_state.last_direction == (int(direction[-1]) if prices.len() else 0)
        assert chunk.trade_state.cumulative_volume == pytest.approx(before[SIZE].sum(), rel=1e-12)
        last_quote = quotes.filter(
            (pl.col(SYMBOL) == chunk.symbol) & (pl.col(TS).dt.epoch("ns") < chunk.start)
        ).tail(1)
        if last_quote.height:
            assert chunk.quote_state.ts == last_quote[TS].dt.epoch("ns").item()
            assert chunk.quote_state.bid_price == last_quote["bid_price"].item()
        else:
            assert not chunk.quote_state.present
        # edges: bar edges at or after a UTC midnight
        assert chunk.start % every_ns == 0
        assert chunk.end % every_ns == 0
        assert states[(None, chunk.symbol)]
    # chained per symbol in time order, contiguous
    for symbol in ("X", "Y"):
        own = [c for c in plan.chunks if c.symbol == symbol]
        assert [c.index for c in own] == list(range(len(own)))
        assert all(a.end <= b.start for a, b in itertools.pairwise(own))


def test_planner_groups_days_by_the_memory_budget(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    census = take_census(
        trades.lazy(), quotes.lazy(), keys=("symbol",), every_ns=60 * NS, session=False
    )
    big = plan_chunks(census, every_ns=60 * NS, memory_limit=2**40, buckets_per_day=40)
    assert len(big.chunks) == 2  # one per symbol
    small = plan_chunks(census, every_ns=60 * NS, memory_limit=1, buckets_per_day=40)
    assert len(small.chunks) == 6  # one per symbol and day: a day is never split
    for chunk in small.chunks:
        assert chunk.trades * BYTES_PER_TRADE + chunk.quotes * BYTES_PER_QUOTE <= small.memory
    assert sum(c.trades for c in small.chunks) == trades.height


def test_size_guards_before_anything_is_made(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    census = take_census(trades.lazy(), quotes.lazy(), keys=("symbol",), every_ns=NS, session=False)
    with pytest.raises(SizeLimitError):
        plan_chunks(
            census, every_ns=NS, memory_limit=2**30, buckets_per_day=40, max_bars=1000, every="1s"
        )
    with pytest.raises(SizeLimitError):
        plan_chunks(
            census,
            every_ns=3600 * NS,
            memory_limit=2**30,
            buckets_per_day=10**6,
            max_bars=10_000,
            every="1h",
        )


def test_parse_memory() -> None:
    assert parse_memory("2G") == 2 * 2**30
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5GiB") == int(1.5 * 2**30)
    for bad in ("", "12 parsecs", "-1G", "10M"):
        with pytest.raises(ParameterError):
            parse_memory(bad)


@pytest.mark.parametrize(("every", "in_memory"), [("1m", True), ("7m", False)])
def test_chunked_engine_equals_the_whole_run(
    market: tuple[pl.DataFrame, pl.DataFrame],
    oracle_partials: list[Oracle],
    every: str,
    in_memory: bool,
) -> None:
    trades, quotes = market
    options, signing = _options(every), Signing(method="lee-ready")
    oracle, whole_bars = _oracle(trades, quotes, options, signing)
    oracle_partials.append(oracle)
    settings = _settings(options, signing, memory_limit=1)  # one chunk per symbol and day
    run = run_engine(trades.lazy(), quotes.lazy(), settings, in_memory=in_memory)
    finished = run.finished
    assert finished is not None
    assert len(run.plan.chunks) >= 6
    _equal(finished.bars, whole_bars, ["symbol", "ts"])
    whole = market_bars(
        trades.lazy(), quotes.lazy(), options=options, signing=signing, chunked=False
    )
    mix, checks = pl.collect_all([whole.mix, whole.checks])  # type: ignore[list-item]
    _equal(finished.mix, mix, ["symbol", "sign_method"])
    assert finished.checks is not None
    _equal(finished.checks, checks, ["symbol"])
    # a bucket completed across a chunk edge is one bucket
    # the outbound state of each chunk is the next chunk's inbound state (census chain)
    for result in run.results:
        following = [
            c
            for c in run.plan.chunks
            if c.symbol == result.chunk.symbol and c.index == result.chunk.index + 1
        ]
        if following:
            inbound = following[0]
            assert result.quote_state == inbound.quote_state
            assert result.trade_state.last_price == inbound.trade_state.last_price
            assert result.trade_state.last_direction == inbound.trade_state.last_direction
            assert result.trade_state.trades == inbound.trade_state.trades
            assert result.trade_state.cumulative_volume == pytest.approx(
                inbound.trade_state.cumulative_volume, rel=1e-12
            )
    buckets = finished.buckets
    assert buckets.select(pl.struct(SYMBOL, "bucket").is_unique().all()).item()
    crossing = [c for c in run.plan.chunks if c.index > 0 and c.trade_state.cumulative_volume > 0]
    assert any(
        (c.trade_state.cumulative_volume / (c.bucket_volume or 1.0)) % 1 > 0 for c in crossing
    )


def test_analysis_from_the_tables_equals_analyze(
    market: tuple[pl.DataFrame, pl.DataFrame], oracle_partials: list[Oracle]
) -> None:
    trades, quotes = market
    options, signing = _options("1m"), Signing(method="lee-ready")
    oracle, _ = _oracle(trades, quotes, options, signing)
    oracle_partials.append(oracle)
    phases = PhaseParameters(lookback=options.lookback)
    run = run_engine(trades.lazy(), quotes.lazy(), _settings(options, signing, 1))
    finished = run.finished
    assert finished is not None
    result = finish_analysis(finished, _settings(options, signing, 1), run.spans, phases)
    expected = analyze(
        trades.lazy(),
        quotes.lazy(),
        options=options,
        signing=signing,
        phase_parameters=phases,
        materialize=lambda plans: [plan.collect() for plan in plans],
        chunked=False,
    )
    summary = expected.summary.collect()
    bars = expected.bars.collect()
    _equal(result.summary, summary.drop("venue"), ["symbol"])
    _equal(result.bars, bars.drop("venue"), ["symbol", "ts"])
    assert result.paths.sort("symbol")["inventory_path"].to_list() == (
        expected.paths.collect().sort("symbol")["inventory_path"].to_list()  # type: ignore[union-attr]
    )
    # the paths come in the summary's instrument order, the same on every run (no hash order)
    assert result.paths["symbol"].to_list() == result.summary["symbol"].to_list()
    assert result.paths["symbol"].to_list() == sorted(result.paths["symbol"].to_list())


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(budget_rows=st.integers(min_value=1, max_value=900_000))
def test_any_memory_limit_gives_the_same_bars(
    market: tuple[pl.DataFrame, pl.DataFrame],
    oracle_partials: list[Oracle],
    budget_rows: int,
) -> None:
    trades, quotes = market
    options, signing = _options("5m"), Signing(method="lee-ready")
    if not oracle_partials:
        oracle, _ = _oracle(trades, quotes, options, signing)
        oracle_partials.append(oracle)
    settings_ = _settings(options, signing, budget_rows * BYTES_PER_TRADE)
    run = run_engine(trades.lazy(), quotes.lazy(), settings_, in_memory=True)
    finished = run.finished
    assert finished is not None
    _equal(finished.bars, oracle_partials[0].bars, ["symbol", "ts"])
    assert math.isfinite(run.plan.memory)


@pytest.mark.parametrize(
    ("every", "method", "memory_limit", "lag", "match"),
    [
        ("1m", "lee-ready", 1, "0s", "strict"),
        ("7m", "auto", 1, "0s", "strict"),
        ("5m", "tick", 2**40, "0s", "strict"),
        ("2m", "emo", 1, "3s", "at-or-before"),
        ("3m", "quote", 1, "90s", "strict"),
    ],
)
def test_engine_with_the_real_passes_equals_the_whole_run(
    market: tuple[pl.DataFrame, pl.DataFrame],
    every: str,
    method: str,
    memory_limit: int,
    lag: str,
    match: str,
) -> None:
    trades, quotes = market
    options = _options(every)
    signing = Signing(method=method, lag=lag, match=match)  # type: ignore[arg-type]
    whole = market_bars(
        trades.lazy(), quotes.lazy(), options=options, signing=signing, chunked=False
    )
    bars, mix, checks = pl.collect_all([whole.bars, whole.mix, whole.checks])  # type: ignore[list-item]
    run = run_engine(trades.lazy(), quotes.lazy(), _settings(options, signing, memory_limit))
    finished = run.finished
    assert finished is not None
    _equal(finished.bars, bars, ["symbol", "ts"])
    _equal(finished.mix, mix, ["symbol", "sign_method"])
    assert finished.checks is not None
    _equal(finished.checks, checks, ["symbol"])


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget_rows=st.integers(min_value=1, max_value=400_000),
    every=st.sampled_from(["1m", "3m", "7m", "13m"]),
)
def test_real_passes_any_chunking_equals_the_whole_run(
    market: tuple[pl.DataFrame, pl.DataFrame], budget_rows: int, every: str
) -> None:
    """Chunk edges anywhere a day starts (inside VPIN buckets, quote gaps, phase episodes)."""
    trades, quotes = market
    options, signing = _options(every), Signing(method="auto")
    whole = market_bars(
        trades.lazy(), quotes.lazy(), options=options, signing=signing, chunked=False
    ).bars.collect()
    run = run_engine(
        trades.lazy(), quotes.lazy(), _settings(options, signing, budget_rows * BYTES_PER_TRADE)
    )
    finished = run.finished
    assert finished is not None
    _equal(finished.bars, whole, ["symbol", "ts"])


@pytest.mark.parametrize(
    "session",
    [
        Session(time(9, 30), time(16, 0), "America/New_York"),
        Session(time(22, 0), time(6, 0), "UTC"),  # overnight: a session spans two UTC days
    ],
)
@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_sessions_chunked_equal_the_whole_run(
    market: tuple[pl.DataFrame, pl.DataFrame], session: Session, memory_limit: int
) -> None:
    trades, quotes = market
    options = replace(_options("7m"), memory_limit=memory_limit)
    selection = Selection(session=session)
    runs = [
        market_bars(
            trades.lazy(), quotes.lazy(), options=options, selection=selection, chunked=chunked
        )
        for chunked in (True, False)
    ]
    assert runs[0].engine is not None
    assert all(chunk.sessions for chunk in runs[0].engine.plan.chunks)
    _equal(runs[0].bars.collect(), runs[1].bars.collect(), ["symbol", "session", "ts"])
    _equal(runs[0].mix.collect(), runs[1].mix.collect(), ["symbol", "sign_method"])


def test_unordered_input_gives_the_whole_runs_result(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """The census is order-free and chunks sort only when needed: shuffled files still agree."""
    trades, quotes = market
    trades = trades.sample(fraction=1.0, shuffle=True, seed=3)
    quotes = quotes.sample(fraction=1.0, shuffle=True, seed=4)
    options = replace(_options("5m"), memory_limit=1)
    runs = [
        market_bars(trades.lazy(), quotes.lazy(), options=options, chunked=chunked)
        for chunked in (True, False)
    ]
    assert runs[0].engine is not None
    _equal(runs[0].bars.collect(), runs[1].bars.collect(), ["symbol", "ts"])
    _equal(runs[0].mix.collect(), runs[1].mix.collect(), ["symbol", "sign_method"])


def test_tasks_and_results_pickle(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """An executor may run a task in another process: task and result survive pickling."""

    trades, quotes = market
    options, signing = _options("5m"), Signing()
    settings_ = _settings(options, signing, memory_limit=1)
    seen: list[ChunkResult] = []

    def through_pickle(
        function: Callable[[ChunkTask], ChunkResult], tasks: Sequence[ChunkTask]
    ) -> Iterator[ChunkResult]:
        for task in tasks:
            result = function(pickle.loads(pickle.dumps(task)))
            seen.append(result)
            yield pickle.loads(pickle.dumps(result))

    for in_memory in (True, False):
        run = run_engine(
            trades.lazy(), quotes.lazy(), settings_, executor=through_pickle, in_memory=in_memory
        )
        local = run_engine(trades.lazy(), quotes.lazy(), settings_, in_memory=in_memory)
        assert run.finished is not None
        assert local.finished is not None
        assert run.finished.bars.equals(local.finished.bars)
    assert len(seen) == 2 * len(run.plan.chunks)


@pytest.mark.parametrize("with_quotes", [True, False])
def test_bvc_split_in_the_finish_equals_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], with_quotes: bool
) -> None:
    """BVC's per-bar split needs σ over all bars: the finish applies it to the whole table."""
    trades, quotes = market
    options = replace(_options("7m"), memory_limit=1)
    signing = Signing(method="bvc")
    quote_plan = quotes.lazy() if with_quotes else None
    runs = [
        market_bars(trades.lazy(), quote_plan, options=options, signing=signing, chunked=chunked)
        for chunked in (True, False)
    ]
    assert runs[0].engine is not None
    assert len(runs[0].engine.plan.chunks) > 2
    _equal(runs[0].bars.collect(), runs[1].bars.collect(), ["symbol", "ts"])
    _equal(runs[0].mix.collect(), runs[1].mix.collect(), ["symbol", "sign_method"])


@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_instruments_without_quotes_and_quote_only_ones(
    market: tuple[pl.DataFrame, pl.DataFrame], memory_limit: int
) -> None:
    """Y trades without quotes; Q has quotes and no trades (counted in the checks, no bars)."""
    trades, quotes = market
    quotes = quotes.filter(pl.col(SYMBOL) != "Y")
    quotes = pl.concat(
        [quotes, quotes.filter(pl.col(SYMBOL) == "X").with_columns(pl.lit("Q").alias(SYMBOL))]
    )
    options = replace(_options("5m"), memory_limit=memory_limit)
    runs = [
        market_bars(trades.lazy(), quotes.lazy(), options=options, chunked=chunked)
        for chunked in (True, False)
    ]
    assert runs[0].engine is not None
    _equal(runs[0].bars.collect(), runs[1].bars.collect(), ["symbol", "ts"])
    assert runs[0].checks is not None
    assert runs[1].checks is not None
    checks = runs[0].checks.collect()
    _equal(checks, runs[1].checks.collect(), ["symbol"])
    assert checks.filter(pl.col(SYMBOL) == "Q")["trades"].to_list() == [0]


def test_untimed_rows_take_the_single_plan() -> None:
    """A library caller's trade without a time fits no chunk: the single plan's result, no crash."""
    times = [datetime(2024, 1, 1, tzinfo=UTC), None, datetime(2024, 1, 1, 0, 1, tzinfo=UTC)]
    trades = pl.LazyFrame(
        {
            "ts": pl.Series(times, dtype=pl.Datetime("ns", "UTC")),
            "symbol": ["X"] * 3,
            "price": [100.0, 101.0, 102.0],
            "size": [1.0, 2.0, 1.0],
            "aggressor_side": pl.Series([1, -1, 1], dtype=pl.Int8),
        }
    )
    chunked = market_bars(trades)
    single = market_bars(trades, chunked=False)
    assert chunked.engine is None
    assert_frame_equal(chunked.bars.collect(), single.bars.collect())
    assert chunked.bars.collect()["trades"].sum() == 3
