"""The chunked engine equals the single-plan run on the real sample files.

Each sample is read with mmflow's readers; ``market_bars`` and ``analyze`` run once through the
engine (with a memory limit small enough to give one chunk per instrument and day, and with one
large enough for one chunk per instrument) and once through the single lazy plan
(``chunked=False``): bars, mix, quote checks and the analysis summary must agree (counts and
labels identical, floats to 1e-9 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from mmflow.analysis import BarOptions, Signing, analyze, market_bars
from mmflow.io import load
from mmflow.io.assemble import gather, read_many
from mmflow.schema import QUOTES, TRADES

ROOT = Path(__file__).resolve().parent.parent

SAMPLES = {
    "tardis": [
        "sample_data/tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",
        "sample_data/tardis/binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz",
    ],
    "binance": [
        "sample_data/binance/BTCUSD_PERP-trades-2024-08-09.csv",
        "sample_data/binance/BTCUSD_PERP-bookTicker-2024-08-09.csv",
    ],
    "simulated": [
        "sample_data/simulated/trades.parquet",
        "sample_data/simulated/quotes.parquet",
    ],
    "lobster": [
        "tests/data/lobster/ZVZZT_2023-03-10_34200000_57600000_message_1.csv",
        "tests/data/lobster/ZVZZT_2023-03-13_34200000_57600000_message_2.csv",
    ],
    "sierra": [
        "tests/data/sierra-es/ES_2022-01-24_tbt.txt",
        "tests/data/sierra-es/ES_2023-06-29_tbt.txt",
    ],
}


def _read(paths: list[str]) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    loaded = read_many(load([str(ROOT / p) for p in paths]))
    trades = gather(loaded, TRADES)
    quotes = gather(loaded, QUOTES)
    assert trades is not None
    return trades.collect(), quotes.collect() if quotes is not None else None


def _equal(left: pl.DataFrame, right: pl.DataFrame, keys: Sequence[str]) -> None:
    assert left.columns == right.columns
    assert left.height == right.height
    left = left.sort(list(keys), nulls_last=True)
    right = right.sort(list(keys), nulls_last=True)
    for name in left.columns:
        a, b = left[name], right[name]
        if a.dtype.is_float():
            assert (a.is_null() == b.is_null()).all(), name
            both = pl.DataFrame({"a": a, "b": b}).drop_nulls()
            scale = both["b"].abs().clip(lower_bound=1e-300)
            close = (
                ((both["a"] - both["b"]).abs() <= 1e-9 * scale)
                | (both["a"] == both["b"])
                | (both["a"].is_nan() & both["b"].is_nan())
            )
            assert close.all(), (name, both.filter(~close).head())
        elif a.dtype == pl.List(pl.Float64):
            assert a.list.len().equals(b.list.len()), name
            _equal(
                pl.DataFrame({"i": pl.int_range(a.explode().len(), eager=True), name: a.explode()}),
                pl.DataFrame({"i": pl.int_range(b.explode().len(), eager=True), name: b.explode()}),
                ["i"],
            )
        else:
            assert a.equals(b), name


@pytest.mark.parametrize("sample", sorted(SAMPLES))
@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_engine_equals_the_single_plan_on_samples(sample: str, memory_limit: int) -> None:
    trades, quotes = _read(SAMPLES[sample])
    options = BarOptions(every="1m", lookback=30, vpin_window=10, memory_limit=memory_limit)
    signing = Signing()
    engine = market_bars(
        trades.lazy(),
        quotes.lazy() if quotes is not None else None,
        options=options,
        signing=signing,
    )
    assert engine.engine is not None
    whole = market_bars(
        trades.lazy(),
        quotes.lazy() if quotes is not None else None,
        options=options,
        signing=signing,
        chunked=False,
    )
    keys = [c for c in ("venue", "symbol", "ts") if c in whole.bars.collect_schema().names()]
    _equal(engine.bars.collect(), whole.bars.collect(), keys)
    instrument = [k for k in keys if k != "ts"]
    _equal(engine.mix.collect(), whole.mix.collect(), [*instrument, "sign_method"])
    if whole.checks is not None:
        assert engine.checks is not None
        _equal(engine.checks.collect(), whole.checks.collect(), instrument)


@pytest.mark.parametrize("sample", ["tardis", "simulated", "lobster"])
def test_engine_analysis_equals_analyze_on_samples(sample: str) -> None:
    trades, quotes = _read(SAMPLES[sample])
    options = BarOptions(every="1m", lookback=30, vpin_window=10, memory_limit=1)
    runs = [
        analyze(
            trades.lazy(),
            quotes.lazy() if quotes is not None else None,
            options=options,
            chunked=chunked,
            materialize=lambda plans: [plan.collect() for plan in plans],
        )
        for chunked in (True, False)
    ]
    chunked, whole = runs
    _equal(chunked.summary.collect(), whole.summary.collect(), ["venue", "symbol"])
    keys = [c for c in ("venue", "symbol", "ts") if c in whole.bars.collect_schema().names()]
    _equal(chunked.bars.collect(), whole.bars.collect(), keys)
    assert chunked.paths is not None
    assert whole.paths is not None
    _equal(chunked.paths.collect(), whole.paths.collect(), ["venue", "symbol"])
