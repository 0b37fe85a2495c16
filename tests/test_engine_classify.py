"""``classify`` on the chunked engine equals the single plan (rows, order, values, counts).

:func:`mmflow.analysis.signing.classify_chunked` signs chunk by chunk (census, chunks sized by
the memory limit, carried tick state, last quote and, for ``reverse-tick``, the state of the
trades after each chunk) and merges the chunks into the single plan's order: time order
across instruments, rows with the same ``ts`` in input order. Compared with
:func:`mmflow.analysis.signing.classify` (one lazy plan) on the real sample files and on
generated multi-day, multi-symbol, multi-venue data with many equal timestamps, for every
per-trade method; hypothesis over the memory limit (the chunk size) and over the prices
(equal prices, NaN and missing prices around chunk edges).
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.analysis.options import Selection, Session, Signing
from mmflow.analysis.signing import classify, classify_chunked, evaluate, evaluate_chunked
from mmflow.engine.chunks import BYTES_PER_TRADE
from mmflow.engine.classify import ReverseState, merge_in_time, reverse_tick_sign
from mmflow.metrics.classify import reverse_tick_rule
from tests.market_days import market_days
from tests.test_engine_samples import SAMPLES, _read

KEYS = ["venue", "symbol"]


def _same(
    trades: pl.DataFrame | pl.LazyFrame,
    quotes: pl.DataFrame | pl.LazyFrame | None,
    signing: Signing,
    memory_limit: int,
    selection: Selection | None = None,
) -> int:
    """Assert the engine's rows, mix, diagnostics and checks equal the single plan's.

    Returns the number of chunks the engine ran.
    """
    lazy_quotes = quotes.lazy() if quotes is not None else None
    whole = classify(trades.lazy(), lazy_quotes, signing=signing, selection=selection)
    chunked = classify_chunked(
        trades.lazy(), lazy_quotes, signing=signing, selection=selection, memory_limit=memory_limit
    )
    assert chunked is not None
    expected = whole.trades.collect()
    assert expected.height > 0
    assert_frame_equal(chunked.trades.collect(), expected)  # the same rows in the same order
    totals = chunked.totals()
    assert totals.rows == expected.height
    assert_frame_equal(totals.mix, whole.mix.collect(), check_exact=False, rel_tol=1e-12)
    keys = [c for c in KEYS if c in totals.diagnostics.columns]
    assert_frame_equal(
        totals.diagnostics.sort(keys, nulls_last=True),
        whole.diagnostics.collect().sort(keys, nulls_last=True),
    )
    if whole.checks is None:
        assert totals.checks is None
    else:
        assert totals.checks is not None
        checks = whole.checks.collect()
        order = [c for c in KEYS if c in checks.columns]
        assert_frame_equal(
            totals.checks.sort(order, nulls_last=True), checks.sort(order, nulls_last=True)
        )
    return totals.chunks


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three days, two symbols on two venues; trade times on a 10-second grid (many ties)."""
    trades, quotes = market_days(21, days=3, symbols=("AAA", "BBB"), venues=("XNAS", "BATS"))
    return trades.with_columns(pl.col("ts").dt.truncate("10s")), quotes


METHODS = [
    Signing(),
    Signing(method="tick"),
    Signing(method="reverse-tick"),
    Signing(method="vendor"),
    Signing(method="quote", max_quote_age="30m"),
    Signing(method="lee-ready", lag="2s", match="at-or-before"),
    Signing(method="emo"),
    Signing(method="clnv", max_quote_age=None),
    Signing(method="depth"),
]


@pytest.mark.parametrize("signing", METHODS, ids=lambda s: s.method)
@pytest.mark.parametrize("memory_limit", [1, 2**40], ids=["chunk-per-day", "in-memory"])
def test_engine_classify_equals_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], signing: Signing, memory_limit: int
) -> None:
    trades, quotes = market
    chunks = _same(trades, quotes, signing, memory_limit)
    # one chunk per instrument and day (2 symbols × 2 venues × 3 days), or per instrument
    assert chunks == (12 if memory_limit == 1 else 4)


def test_ties_across_instruments_keep_the_input_order(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    # every trade of a day at one instant, the input interleaving the instruments at random
    tied = trades.with_columns(pl.col("ts").dt.truncate("1d")).sample(
        fraction=1.0, shuffle=True, seed=3
    )
    _same(tied, quotes, Signing(method="tick"), 1)
    _same(tied, quotes, Signing(method="reverse-tick"), 1)


def test_unsorted_input_and_no_venue(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    trades, quotes = market
    shuffled = trades.filter(pl.col("venue") == "XNAS").drop("venue").sample(fraction=1.0, seed=5)
    quoted = quotes.filter(pl.col("venue") == "XNAS").drop("venue")
    _same(shuffled, quoted, Signing(), 1)
    _same(shuffled, None, Signing(method="reverse-tick"), 1)


def test_sessions_restart_the_rules(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    trades, quotes = market
    selection = Selection(session=Session(time(9, 30), time(16, 0), "America/New_York"))
    for method in ("tick", "reverse-tick", "lee-ready"):
        _same(trades, quotes, Signing(method=method), 1, selection)


def test_parquet_scans_over_the_limit_are_numbered(
    market: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    trades, quotes = market
    trades.write_parquet(tmp_path / "t.parquet")
    quotes.write_parquet(tmp_path / "q.parquet")
    scans = pl.scan_parquet(tmp_path / "t.parquet"), pl.scan_parquet(tmp_path / "q.parquet")
    # many chunks: the numbered rows are copied once into a scratch file the chunks scan
    assert _same(*scans, Signing(), 1) == 12
    # a few chunks (one day: one per instrument): each reads the numbered scan
    first = pl.col("ts") < pl.col("ts").min().dt.truncate("1d").dt.offset_by("1d")
    day = scans[0].filter(first), scans[1].filter(first)
    assert _same(*day, Signing(method="reverse-tick"), 1) == 4


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_engine_classify_equals_the_single_plan_on_samples(sample: str) -> None:
    trades, quotes = _read(SAMPLES[sample])
    for signing in (Signing(), Signing(method="reverse-tick"), Signing(method="lee-ready")):
        _same(trades, quotes, signing, 1)


def test_bvc_keeps_the_single_plan(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    trades, quotes = market
    assert classify_chunked(trades.lazy(), quotes.lazy(), signing=Signing(method="bvc")) is None


# --- hypothesis over the chunk size and the prices -----------------------------------------


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows_per_chunk=st.integers(min_value=1, max_value=2500),
    signing=st.sampled_from(
        [Signing(), Signing(method="tick"), Signing(method="reverse-tick"), Signing(method="emo")]
    ),
)
def test_any_chunk_size_gives_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], rows_per_chunk: int, signing: Signing
) -> None:
    trades, quotes = market
    _same(trades, quotes, signing, rows_per_chunk * BYTES_PER_TRADE)


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.sampled_from([1.0, 2.0, 3.0, float("nan"), None]), min_size=1, max_size=12),
    days=st.lists(st.integers(min_value=0, max_value=4), min_size=12, max_size=12),
    limit=st.sampled_from([1, 2**40]),
)
def test_reverse_tick_across_days_with_equal_and_missing_prices(
    prices: list[float | None], days: list[int], limit: int
) -> None:
    """Equal, NaN and missing prices on either side of chunk edges (days)."""
    ns_per_day = 86_400 * 10**9
    offsets = sorted(days[: len(prices)])
    trades = pl.DataFrame(
        {
            "ts": [day * ns_per_day + i for i, day in enumerate(offsets)],
            "symbol": "X",
            "price": pl.Series(prices, dtype=pl.Float64),
            "size": 1.0,
            "aggressor_side": pl.Series([0] * len(prices), dtype=pl.Int8),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    for method in ("reverse-tick", "tick"):
        _same(trades, None, Signing(method=method), limit)


def _reference_reverse_tick(prices: list[float | None]) -> list[int]:
    """Slow, obviously correct: compare each clean price with the next different clean one."""
    clean = [None if p is None or np.isnan(p) else p for p in prices]
    out = []
    for i, price in enumerate(clean):
        sign = 0
        if price is not None:
            for later in clean[i + 1 :]:
                if later is not None and later != price:
                    sign = 1 if price > later else -1
                    break
        out.append(sign)
    return out


@settings(max_examples=60, deadline=None)
@given(
    prices=st.lists(st.sampled_from([1.0, 2.0, 3.0, float("nan"), None]), max_size=15),
    cut=st.integers(min_value=0, max_value=15),
)
def test_reverse_tick_state_continues_the_whole_series(
    prices: list[float | None], cut: int
) -> None:
    """The head signed with the state of the tail equals the whole series (and the reference)."""
    frame = pl.DataFrame({"price": pl.Series(prices, dtype=pl.Float64)})
    whole = frame.select(
        pl.when(pl.col("price").fill_nan(None).is_null())
        .then(pl.lit(0, pl.Int8))
        .otherwise(reverse_tick_rule(pl.col("price").fill_nan(None).backward_fill()))
    ).to_series()
    assert whole.to_list() == _reference_reverse_tick(prices)
    cut = min(cut, len(prices))
    head, tail = frame.head(cut), frame.slice(cut)
    reference = _reference_reverse_tick(prices)
    clean_tail = [p for p in tail["price"].to_list() if p is not None and not np.isnan(p)]
    state = ReverseState()
    if clean_tail:
        first_index = next(
            i for i, p in enumerate(tail["price"].to_list()) if p is not None and not np.isnan(p)
        )
        state = ReverseState(clean_tail[0], reference[cut + first_index])
    signed = head.select(reverse_tick_sign(state)).to_series().to_list()
    assert signed == reference[:cut]


def test_merge_in_time_orders_by_time_then_input_row() -> None:
    from mmflow.engine.classify import ROW, ClassifiedChunk
    from mmflow.engine.state import Chunk

    def part(ts: list[int], rows: list[int], start: int) -> ClassifiedChunk:
        frame = pl.DataFrame({"ts": ts, ROW: rows}).with_columns(
            pl.col("ts").cast(pl.Datetime("ns", "UTC")), pl.col(ROW).cast(pl.UInt32)
        )
        return ClassifiedChunk(Chunk("X", None, start, start + 10), frame, frame, frame)

    parts = [part([0, 5, 12], [1, 4, 6], 0), part([5, 5, 9], [0, 3, 5], 0), part([20], [2], 20)]
    merged = pl.concat(list(merge_in_time(parts, [0, 0, 20])))
    assert merged[ROW].to_list() == [1, 0, 3, 4, 5, 6, 2]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6)), min_size=1, max_size=40),
)
def test_merged_rows_equal_a_sort_by_time_then_input_row(rows: list[tuple[int, int]]) -> None:
    """The merge's argsort path gives the rows of a slow sort by (ts, input row)."""
    from mmflow.engine.classify import ROW, _merged

    # rows numbered in input order; each part holds one instrument's rows in (ts, row) order
    numbered = [(part, ts, index) for index, (part, ts) in enumerate(rows)]
    parts = []
    for name in sorted({part for part, _, _ in numbered}):
        mine = sorted((ts, index) for part, ts, index in numbered if part == name)
        parts.append(
            pl.DataFrame(
                {"ts": [ts for ts, _ in mine], ROW: [index for _, index in mine]},
                schema={"ts": pl.Datetime("ns", "UTC"), ROW: pl.UInt32},
            )
        )
    expected = [index for _, index in sorted((ts, index) for _, ts, index in numbered)]
    assert _merged(parts)[ROW].to_list() == expected


# --- --evaluate: counts per chunk, summed -----------------------------------------------------


def _same_evaluation(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    signing: Signing,
    memory_limit: int,
    every: str = "1m",
    selection: Selection | None = None,
) -> None:
    lazy_quotes = quotes.lazy() if quotes is not None else None
    whole = evaluate(trades.lazy(), lazy_quotes, signing=signing, every=every, selection=selection)
    chunked = evaluate_chunked(
        trades.lazy(),
        lazy_quotes,
        signing=signing,
        every=every,
        selection=selection,
        memory_limit=memory_limit,
    )
    assert chunked is not None
    scores = whole.scores.collect()
    assert scores.height > 0
    assert_frame_equal(chunked.scores, scores, check_exact=False, rel_tol=1e-12)
    exact = [c for c in scores.columns if c not in ("accuracy", "coverage") and "recall" not in c]
    assert_frame_equal(chunked.scores.select(exact), scores.select(exact))
    assert_frame_equal(chunked.lags, whole.lags.collect())
    if quotes is not None:
        assert chunked.lags.height > 0
    keys = [c for c in KEYS if c in chunked.diagnostics.columns]
    single = classify(trades.lazy(), lazy_quotes, signing=signing, selection=selection)
    assert_frame_equal(
        chunked.diagnostics, single.diagnostics.collect().sort(keys, nulls_last=True)
    )


@pytest.mark.parametrize(
    "signing",
    [
        Signing(),
        Signing(method="tick", lag="200ms"),
        Signing(method="reverse-tick", match="at-or-before"),
        Signing(method="quote", max_quote_age="30m", bvc_distribution="student-t", bvc_dof=3.0),
    ],
    ids=lambda s: s.method,
)
@pytest.mark.parametrize("memory_limit", [1, 2**40], ids=["chunk-per-day", "in-memory"])
def test_engine_evaluate_equals_the_single_plan(
    market: tuple[pl.DataFrame, pl.DataFrame], signing: Signing, memory_limit: int
) -> None:
    trades, quotes = market
    _same_evaluation(trades, quotes, signing, memory_limit, every="7m")


def test_engine_evaluate_without_quotes_and_with_sessions(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    trades, quotes = market
    _same_evaluation(trades, None, Signing(), 1)
    selection = Selection(session=Session(time(9, 30), time(16, 0), "America/New_York"))
    _same_evaluation(trades, quotes, Signing(), 1, "5m", selection)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_engine_evaluate_equals_the_single_plan_on_samples(sample: str) -> None:
    trades, quotes = _read(SAMPLES[sample])
    if not trades["aggressor_side"].ne(0).any():
        pytest.skip("no vendor side to score against")
    _same_evaluation(trades, quotes, Signing(), 1)
