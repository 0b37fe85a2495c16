"""``profile`` on the chunked engine equals the single plan (``chunked=False``).

The engine signs chunk by chunk (census, chunks sized by the memory limit, carried tick state
and last quote) and makes the profile, value area and footprint from the per-chunk level tables
(bar × price × side, with trade counts). Compared with the single plan on the real sample files
and on generated multi-day, multi-venue data, for the profile's options: inferred tick and
bin sizes, value-area share and method, per symbol / date / session, footprint bars (one that
crosses midnight included), quote lag and signing methods; hypothesis over the memory limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmflow.analysis.options import Selection, Session, Signing
from mmflow.analysis.volume_profile import Profile, profile
from mmflow.engine.chunks import BYTES_PER_TRADE
from mmflow.engine.profile import profile_levels
from mmflow.metrics.price_rows import level_table, with_rows
from tests.market_days import market_days
from tests.test_engine_samples import SAMPLES, _equal, _read


def _profiles(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    *,
    memory_limit: int,
    **arguments: Any,
) -> tuple[Profile, Profile]:
    def run(chunked: bool) -> Profile:
        return profile(
            trades.lazy(),
            quotes.lazy() if quotes is not None else None,
            chunked=chunked,
            memory_limit=memory_limit,
            **arguments,
        )

    return run(True), run(False)


def _same(chunked: Profile, whole: Profile) -> None:
    levels, areas = chunked.levels.collect(), whole.levels.collect()
    keys = [c for c in levels.columns if c in ("venue", "symbol", "session", "date")]
    _equal(levels, areas, [*keys, "price_level"])
    assert levels.height > 0
    _equal(chunked.value_areas.collect(), whole.value_areas.collect(), keys)
    if whole.footprint is None:
        assert chunked.footprint is None
        return
    assert chunked.footprint is not None
    prints = whole.footprint.collect()
    assert prints.height > 0
    fkeys = [c for c in prints.columns if c in ("venue", "symbol", "session")]
    _equal(chunked.footprint.collect(), prints, [*fkeys, "ts", "price_level"])


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    return market_days(11, days=3, symbols=("AAA", "BBB"), venues=("XNAS", "BATS"), rows=500)


def test_engine_profile_runs_chunks_and_reports_them(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    chunked, whole = _profiles(trades, quotes, memory_limit=1)
    # one chunk per instrument and day: 2 symbols × 2 venues × 3 days
    assert chunked.parameters["chunks"] == 12
    assert "chunks" not in whole.parameters
    _same(chunked, whole)
    # the trade counts are the trades', not the level table's rows
    total = chunked.levels.collect()["trades"].sum()
    assert total == trades.filter(pl.col("price").is_finite()).height


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"bin_size": 0.05, "share": 0.5},
        {"bin_size": 0.02, "method": "single-row", "by": ("symbol", "date")},
        {"every": "5m", "by": ("symbol", "date")},
        {"every": "7m", "by": ("symbol", "date"), "bin_size": 0.03},  # bars cross midnight
        {"signing": Signing(method="tick"), "share": 0.9},
        {"signing": Signing(method="lee-ready", lag="2s", match="at-or-before")},
        {"signing": Signing(method="quote", max_quote_age="30m"), "every": "1h"},
        {
            "selection": Selection(session=Session(time(8), time(20), "UTC")),
            "by": ("symbol", "session"),
            "every": "30m",
        },
        {  # an overnight session in New York time: chunks hold whole sessions
            "selection": Selection(session=Session(time(17), time(16), "America/New_York")),
            "by": ("symbol", "session"),
            "every": "1h",
            "signing": Signing(method="tick"),
        },
        {"selection": Selection(symbols=("BBB",)), "share": 1.0},
    ],
)
@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_engine_profile_equals_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], arguments: dict[str, Any], memory_limit: int
) -> None:
    trades, quotes = market
    _same(*_profiles(trades, quotes, memory_limit=memory_limit, **arguments))


def test_engine_profile_without_quotes(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    trades, _ = market
    _same(*_profiles(trades, None, memory_limit=1, every="15m"))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget_rows=st.integers(min_value=1, max_value=3_000),
    every=st.sampled_from([None, "1m", "11m", "1h"]),
    bin_size=st.sampled_from([None, 0.01, 0.04]),
)
def test_any_memory_limit_gives_the_same_profile(
    market: tuple[pl.DataFrame, pl.DataFrame],
    budget_rows: int,
    every: str | None,
    bin_size: float | None,
) -> None:
    trades, quotes = market
    _same(
        *_profiles(
            trades,
            quotes,
            memory_limit=budget_rows * BYTES_PER_TRADE,
            every=every,
            bin_size=bin_size,
            by=("symbol", "date"),
        )
    )


@pytest.mark.parametrize("sample", sorted(SAMPLES))
@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_engine_profile_equals_the_single_plan_on_samples(sample: str, memory_limit: int) -> None:
    trades, quotes = _read(SAMPLES[sample])
    _same(*_profiles(trades, quotes, memory_limit=memory_limit, every="5m"))


def test_level_table_rows_sum_trade_counts() -> None:
    # hand-made: three trades at 10.0 (two buys, one sell) and one at 10.2, pre-aggregated
    trades = pl.LazyFrame(
        {
            "symbol": ["X"] * 4,
            "price": [10.0, 10.0, 10.0, 10.2],
            "size": [1.0, 2.0, 4.0, 8.0],
            "trade_sign": [1, 1, -1, 0],
        }
    )
    aggregated = trades.group_by("symbol", "price", "trade_sign").agg(
        pl.col("size").sum(), pl.len().alias("count")
    )
    one = level_table(with_rows(trades, tick_keys=["symbol"], bin_size=0.1), ["symbol"])
    two = level_table(
        with_rows(aggregated, tick_keys=["symbol"], bin_size=0.1),
        ["symbol"],
        trade_counts="count",
    )
    columns: Sequence[str] = ["price_level", "volume", "buy_volume", "sell_volume", "trades"]
    expected = {
        "price_level": [10.0, 10.1, 10.2],
        "volume": [7.0, 0.0, 8.0],
        "buy_volume": [3.0, 0.0, 0.0],
        "sell_volume": [4.0, 0.0, 0.0],
        "trades": [3, 0, 1],
    }
    for table in (one, two):
        assert table.sort("price_level").select(columns).collect().to_dict(as_series=False) == (
            expected
        )


def test_profile_levels_without_trades() -> None:
    trades, _ = market_days(3, days=1, symbols=("AAA",), rows=50)
    empty = trades.clear()
    assert (
        profile_levels(
            empty.lazy(),
            None,
            keys=["venue", "symbol"],
            signing=Signing(),
            every=None,
            by_date=False,
            memory_limit=1,
        )
        is None
    )


# --- classify chunk by chunk -------------------------------------------------------------------


@pytest.mark.parametrize(
    "signing",
    [
        Signing(),
        Signing(method="tick"),
        Signing(method="lee-ready", lag="2s", match="at-or-before"),
        Signing(method="quote", max_quote_age="30m"),
    ],
)
@pytest.mark.parametrize("memory_limit", [1, 2**40])
def test_classified_chunks_equal_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], signing: Signing, memory_limit: int
) -> None:
    from mmflow.analysis.prepare import prepare_market
    from mmflow.analysis.signing import classify
    from mmflow.engine.classify import classified_chunks

    trades, quotes = market
    prepared, prepared_quotes, _ = prepare_market(
        trades.lazy(), quotes.lazy(), Selection(), ordered=False
    )
    parts = list(
        classified_chunks(
            prepared,
            prepared_quotes,
            keys=["venue", "symbol"],
            signing=signing,
            memory_limit=memory_limit,
        )
    )
    if memory_limit == 1:
        assert len(parts) == 12  # 2 symbols × 2 venues × 3 days, one chunk each
    for part in parts:  # one instrument each, in time order
        assert part.select("venue", "symbol").unique().height == 1
        assert part["ts"].is_sorted()
    # chunks in time order within each instrument: a stable sort by instrument puts them in
    # the single plan's order restricted to each instrument
    chunked = pl.concat(parts).sort("venue", "symbol", maintain_order=True)
    whole = classify(trades.lazy(), quotes.lazy(), signing=signing).trades.collect()
    # the same rows; the chunks come per instrument, each in time order (stable)
    order = ["venue", "symbol"]
    expected = whole.with_row_index("_i").sort([*order, "_i"]).drop("_i")
    assert chunked.columns == expected.columns
    assert chunked.height == trades.height
    _equal(chunked.with_row_index("_i"), expected.with_row_index("_i"), ["_i"])
