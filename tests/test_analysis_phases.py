"""The phases analysis computes Kyle's λ once per run (issue 13)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.analysis import BarOptions, market_bars, phases
from mmflow.metrics.phases import PHASE_COLUMNS, phase_bars

SIMULATED = Path(__file__).resolve().parent.parent / "sample_data" / "simulated"
OPTIONS = BarOptions(every="1m", vpin_window=10, buckets_per_day=400)


def simulated() -> tuple[pl.LazyFrame, pl.LazyFrame]:
    loaded = mmflow.io.load([str(SIMULATED / "trades.parquet"), str(SIMULATED / "quotes.parquet")])
    trades = pl.concat([x.frames.trades for x in loaded if x.frames.trades is not None])
    quotes = pl.concat([x.frames.quotes for x in loaded if x.frames.quotes is not None])
    return trades.sort("ts"), quotes.sort("ts")


def test_phases_materialises_bars_without_the_unused_kyle_lambda() -> None:
    trades, quotes = simulated()
    seen: list[list[str]] = []

    def materialize(plans: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        frames = pl.collect_all(plans)
        seen.extend(frame.columns for frame in frames)
        return frames

    result = phases(trades, quotes, options=OPTIONS, materialize=materialize)
    bars_columns = seen[0]
    assert "net_flow" in bars_columns
    assert "amihud" in bars_columns
    assert "kyle_lambda" not in bars_columns  # not computed: phase_bars fits its own λ̂
    assert "absorption_lambda" in result.bars.collect_schema().names()


def test_phase_columns_do_not_depend_on_the_bars_kyle_lambda() -> None:
    trades, quotes = simulated()
    market = market_bars(trades, quotes, options=OPTIONS)
    bars, signed = pl.collect_all([market.bars, market.signed])
    assert "kyle_lambda" in bars.columns
    with_lambda = phase_bars(bars.lazy(), signed.lazy()).collect()
    without = phase_bars(bars.drop("kyle_lambda").lazy(), signed.lazy()).collect()
    assert_frame_equal(with_lambda.select(PHASE_COLUMNS), without.select(PHASE_COLUMNS))
    assert with_lambda["absorption_lambda"].drop_nulls().len() > 0
