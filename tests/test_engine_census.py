"""The census counted in batches of UTC days equals the one-shot census (issue 11: memory).

Every census group (instrument, unit, UTC date) lies inside one UTC date, so whole days can be
counted apart and concatenated; these tests check that over arbitrary splits of the days, on
ordered and shuffled rows, on files scanned from disk, and that the chained inbound states
agree.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmflow.engine.census import (
    CENSUS_BYTES_PER_ROW,
    Census,
    DateRange,
    census_batches,
    chain,
    take_census,
)
from mmflow.schema import SYMBOL, TS
from mmflow.simulate import SimulationParameters, simulate

NS = 1_000_000_000


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two symbols over four UTC days (54 h from 2024-01-02 with a gap), quotes for both."""
    sim = simulate(SimulationParameters(seed=5, symbols=("X", "Y"), hours=54, trades_per_hour=300))
    trades = sim.trades.filter(~((pl.col(SYMBOL) == "Y") & (pl.col(TS).dt.hour() == 3)))
    return trades, sim.quotes


def _days(trades: pl.DataFrame, quotes: pl.DataFrame) -> list[date]:
    both = pl.concat([trades.select(TS), quotes.select(TS)])
    return sorted(both[TS].dt.date().unique().to_list())


def _split(days: list[date], cuts: list[int]) -> list[DateRange]:
    """Contiguous batches of ``days`` cut before the given day indices."""
    edges = sorted({cut for cut in cuts if 0 < cut < len(days)})
    starts = [0, *edges]
    ends = [*edges, len(days)]
    return [(days[a], days[b - 1] + timedelta(days=1)) for a, b in zip(starts, ends, strict=True)]


def _assert_same(left: Census, right: Census) -> None:
    assert left.trades.equals(right.trades)
    assert left.quotes is not None
    assert right.quotes is not None
    assert left.quotes.equals(right.quotes)
    assert chain(left) == chain(right)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=3), max_size=3),
    every_s=st.sampled_from([60, 7 * 60, 3600]),
    shuffle=st.booleans(),
)
def test_batches_of_days_equal_the_one_shot_census(
    market: tuple[pl.DataFrame, pl.DataFrame], cuts: list[int], every_s: int, shuffle: bool
) -> None:
    trades, quotes = market
    if shuffle:  # groups out of time order: each batch sorts its own rows
        trades = trades.sample(fraction=1.0, shuffle=True, seed=len(cuts))
        quotes = quotes.sample(fraction=1.0, shuffle=True, seed=every_s)
    kwargs = {"keys": ("symbol",), "every_ns": every_s * NS, "session": False}
    whole = take_census(trades.lazy(), quotes.lazy(), **kwargs)  # type: ignore[arg-type]
    batches = _split(_days(trades, quotes), cuts)
    parts = take_census(trades.lazy(), quotes.lazy(), batches=batches, **kwargs)  # type: ignore[arg-type]
    _assert_same(parts, whole)
    assert whole.trades["trades"].sum() == trades.height


def test_memory_limit_packs_whole_days(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    trades, quotes = market
    days = _days(trades, quotes)
    rows = trades.height + quotes.height
    assert census_batches(trades.lazy(), quotes.lazy(), rows * CENSUS_BYTES_PER_ROW) is None
    # a limit of one byte: every day is a batch of its own
    single = census_batches(trades.lazy(), quotes.lazy(), 1)
    assert single == [(day, day + timedelta(days=1)) for day in days]
    # a limit of the two biggest days: batches hold whole days, contiguous, within the limit
    per_day = (
        pl.concat([trades.select(TS), quotes.select(TS)])
        .group_by(pl.col(TS).dt.date().alias("day"))
        .len()
    )
    counts = dict(per_day.iter_rows())
    limit = sum(sorted(counts.values())[-2:]) * CENSUS_BYTES_PER_ROW
    packed = census_batches(trades.lazy(), quotes.lazy(), limit)
    assert packed is not None
    assert packed[0][0] == days[0]
    assert packed[-1][1] == days[-1] + timedelta(days=1)
    for (_, after), (first, _) in itertools.pairwise(packed):
        assert after == first
    for first, after in packed:
        assert first is not None
        assert after is not None
        held = [counts[d] for d in days if first <= d < after]
        assert len(held) == 1 or sum(held) * CENSUS_BYTES_PER_ROW <= limit


def test_day_files_on_disk_counted_per_batch(
    market: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    """A dataset of one file per symbol and day (as convert writes), counted day by day."""
    trades, quotes = market
    paths: dict[str, list[Path]] = {"trades": [], "quotes": []}
    for name, frame in (("trades", trades), ("quotes", quotes)):
        dated = frame.with_columns(pl.col(TS).dt.date().alias("_day"))
        for (symbol, day), rows in dated.partition_by([SYMBOL, "_day"], as_dict=True).items():
            path = tmp_path / f"{name}-{symbol}-{day}.parquet"
            rows.drop("_day").write_parquet(path)
            paths[name].append(path)
    scanned = [pl.scan_parquet(sorted(paths[n])) for n in ("trades", "quotes")]
    kwargs = {"keys": ("symbol",), "every_ns": 5 * 60 * NS, "session": False}
    whole = take_census(trades.lazy(), quotes.lazy(), **kwargs)  # type: ignore[arg-type]
    batched = take_census(scanned[0], scanned[1], memory_limit=1, **kwargs)  # type: ignore[arg-type]
    _assert_same(batched, whole)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    every_s=st.sampled_from([60, 7 * 60, 3600]),
    shuffle=st.booleans(),
    limit=st.sampled_from([None, 1]),
    days=st.integers(min_value=1, max_value=4),
)
def test_state_only_before_the_last_unit(
    market: tuple[pl.DataFrame, pl.DataFrame],
    every_s: int,
    shuffle: bool,
    limit: int | None,
    days: int,
) -> None:
    """``last_unit_state=False``: the same counts and chained states, no state for the last unit.

    The counts of every group are the full census'; the state columns equal it before the
    run's last unit and are null in it; :func:`chain` (which only carries state forward)
    gives every unit the same inbound state.
    """
    trades, quotes = market
    first = trades[TS].min()
    assert first is not None
    until = pl.lit(first).dt.truncate("1d").dt.offset_by(f"{days}d")
    trades, quotes = trades.filter(pl.col(TS) < until), quotes.filter(pl.col(TS) < until)
    if shuffle:
        trades = trades.sample(fraction=1.0, shuffle=True, seed=days)
        quotes = quotes.sample(fraction=1.0, shuffle=True, seed=every_s)
    kwargs = {"keys": ("symbol",), "every_ns": every_s * NS, "session": False}
    full = take_census(trades.lazy(), quotes.lazy(), **kwargs)  # type: ignore[arg-type]
    lean = take_census(
        trades.lazy(),
        quotes.lazy(),
        memory_limit=limit,
        last_unit_state=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert chain(lean) == chain(full)
    assert lean.quotes is not None
    assert full.quotes is not None
    for left, right, counts in (
        (lean.trades, full.trades, ["trades", "volume", "bucket_trades", "first_ts", "last_ts"]),
        (lean.quotes, full.quotes, ["quotes", "first_ts", "last_ts"]),
    ):
        assert left.schema == right.schema
        assert left.select(*kwargs["keys"], "_unit", "_date", *counts).equals(  # type: ignore[misc]
            right.select(*kwargs["keys"], "_unit", "_date", *counts)  # type: ignore[misc]
        )
        last = right["_unit"].max()
        state = [
            c for c in right.columns if c not in counts and c not in ("symbol", "_unit", "_date")
        ]
        before = pl.col("_unit") < last
        assert left.filter(before).select(state).equals(right.filter(before).select(state))
        assert left.filter(~before).select(state).null_count().sum_horizontal().item() == (
            left.filter(~before).height * len(state)
        )
