"""The engine's quote pass: chunked quote bars equal today's whole-input ``quote_bars``.

For generated multi-day quotes (gaps longer than the maximum quote age, crossed, locked and
empty quotes, several quotes at one instant, days and bars without quotes) and real sample
files, the bars of :func:`mmflow.engine.quotes.quote_partials` over any chain of chunks whose
edges are bar edges, concatenated, equal :func:`mmflow.metrics.ofi.quote_bars` on the whole
input: counts identical, floats to 1e-9 relative (with an absolute floor of 1e-10 × the
column's scale for today's running-total rounding), and a slow exact reference loop to 1e-9
relative with a floor of 1e-15.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.analysis import BarOptions, Signing
from mmflow.durations import duration_nanoseconds
from mmflow.engine.census import chain, take_census
from mmflow.engine.quotes import (
    QUOTE_PARTIAL_COLUMNS,
    QuoteCarry,
    carry_after,
    quote_partials,
)
from mmflow.engine.state import Chunk, EngineSettings, QuoteState
from mmflow.errors import ParameterError, SizeLimitError
from mmflow.metrics.flow import event_grid
from mmflow.metrics.ofi import quote_bars

UTC_NS = pl.Datetime("ns", "UTC")
DAY_NS = 86_400 * 1_000_000_000
T0_NS = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
COUNTS = ("quote_events", "crossed_quotes")
FLOATS = ("ofi", "ofi_normalized", "mid_close", "spread", "depth", "quote_imbalance")


def engine_settings(every: str, max_age: str | None) -> EngineSettings:
    return EngineSettings(
        options=BarOptions(every=every),
        signing=Signing(max_quote_age=max_age),
        keys=("symbol",),
        session=False,
        has_quotes=True,
        every_ns=duration_nanoseconds(every, what="every"),
        horizon_ns=0,
        lag_ns=0,
        max_quote_age_ns=None if max_age is None else duration_nanoseconds(max_age, what="age"),
        memory_limit=1 << 30,
    )


def generate(
    seed: int, rows: int = 600, days: int = 4, symbol: str = "X", crossed: float = 0.08
) -> pl.DataFrame:
    """One instrument's quotes over ``days`` days, with every awkward case mixed in."""
    rng = np.random.default_rng(seed)
    # Bursts of activity separated by long gaps (minutes to a day), on ms timestamps.
    bursts = rng.integers(2, 9)
    centers = np.sort(rng.integers(0, days * DAY_NS, bursts))
    spread_ns = rng.choice([2_000_000_000, 60_000_000_000, 900_000_000_000], bursts)
    which = rng.integers(0, bursts, rows)
    ts = centers[which] + (rng.random(rows) * spread_ns[which]).astype(np.int64)
    ts = np.clip(ts, 0, days * DAY_NS - 1) // 1_000_000 * 1_000_000  # ms: same-instant rows
    ts = np.sort(ts) + T0_NS
    mid = 100 + np.cumsum(rng.integers(-2, 3, rows)) * 0.01
    half = rng.integers(1, 4, rows) * 0.005
    bid = mid - half
    ask = mid + half
    kind = rng.random(rows)
    ask = np.where(kind < crossed, bid - 0.01, ask)  # crossed
    ask = np.where((kind >= crossed) & (kind < crossed + 0.06), bid, ask)  # locked
    bid_size = rng.integers(0, 40, rows).astype(np.float64)
    ask_size = rng.integers(0, 40, rows).astype(np.float64)
    frame = pl.DataFrame(
        {
            "ts": ts,
            "symbol": [symbol] * rows,
            "bid_price": bid,
            "bid_size": bid_size,
            "ask_price": ask,
            "ask_size": ask_size,
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))
    # Book clears: a null side or a NaN price.
    clear = pl.Series(rng.random(rows) < 0.05)
    nan = pl.Series(rng.random(rows) < 0.02)
    return frame.with_columns(
        pl.when(clear).then(None).otherwise(pl.col("bid_size")).alias("bid_size"),
        pl.when(nan).then(float("nan")).otherwise(pl.col("ask_price")).alias("ask_price"),
    )


def grid_for(quotes: pl.DataFrame, every: str, extra_ns: Sequence[int] = ()) -> pl.DataFrame:
    """The run's grid: every bar of each day holding a quote or an extra (trade) event."""
    events = pl.concat(
        [
            quotes.select("symbol", "ts"),
            pl.DataFrame(
                {"symbol": ["X"] * len(extra_ns), "ts": list(extra_ns)},
                schema={"symbol": pl.String, "ts": pl.Int64},
            ).with_columns(pl.col("ts").cast(UTC_NS)),
        ]
    )
    return event_grid(events.lazy(), every=every, keys=["symbol"]).collect()


def chained(
    quotes: pl.DataFrame,
    grid: pl.DataFrame,
    edges: Sequence[int],
    engine: EngineSettings,
) -> tuple[pl.DataFrame, list[QuoteCarry]]:
    """Run quote_partials over the chunks ``[edges[i], edges[i+1])``, chaining the carry."""
    carry = QuoteCarry()
    grid_ns = grid.get_column("ts").dt.epoch("ns")
    quote_ns = quotes.get_column("ts").dt.epoch("ns")
    parts, carries = [], []
    for index, (start, end) in enumerate(itertools.pairwise(edges)):
        chunk = Chunk(symbol="X", venue=None, start=start, end=end, index=index)
        bars = grid.get_column("ts").filter((grid_ns >= start) & (grid_ns < end))
        later = bool((quote_ns >= end).any())
        carries.append(carry)
        parts.append(quote_partials(quotes, chunk, bars, engine, carry=carry, quotes_after=later))
        carry = carry_after(quotes, chunk, carry)
    return pl.concat(parts), carries


def whole(
    quotes: pl.DataFrame, grid: pl.DataFrame, every: str, max_age: str | None
) -> pl.DataFrame:
    return quote_bars(quotes.lazy(), every=every, grid=grid.lazy(), max_age=max_age).collect()


def assert_same_bars(
    chunked: pl.DataFrame, expected: pl.DataFrame, *, tolerance: float = 1e-10
) -> None:
    """Counts and nulls identical; floats equal to 1e-9 relative (and ``tolerance``, below)."""
    assert chunked.columns == ["symbol", "ts", *QUOTE_PARTIAL_COLUMNS]
    assert chunked.height == expected.height
    assert chunked.get_column("ts").to_list() == expected.get_column("ts").to_list()
    for name in COUNTS:
        assert chunked.get_column(name).dtype == pl.UInt32
        assert chunked.get_column(name).to_list() == expected.get_column(name).to_list(), name
    for name in FLOATS:
        got, want = chunked.get_column(name), expected.get_column(name)
        assert got.dtype == pl.Float64
        assert got.is_null().to_list() == want.is_null().to_list(), name
        both = pl.DataFrame({"got": got, "want": want}).drop_nulls()
        if both.height == 0:
            continue
        # Today's value is a difference of running totals over the whole input (integrals in
        # ns over days): its own rounding is relative to the column's scale, not to a bar's
        # value that cancels to about zero (a locked book's spread, a balanced OFI, a quote
        # standing one second of the bar), hence an absolute floor of ``tolerance`` × the
        # column's largest value. Against the exact reference loop the floor is 1e-15.
        floor = tolerance * float(both["want"].abs().max())  # type: ignore[arg-type]
        error = (both["got"] - both["want"]).abs()
        allowed = both["want"].abs() * 1e-9 + floor
        worst = (error - allowed).max()
        assert float(worst) <= 0, (name, both.filter(error > allowed).head(3))  # type: ignore[arg-type]


def bar_edges(grid: pl.DataFrame, every_ns: int, picks: Sequence[int]) -> list[int]:
    """Chunk edges: the run's span cut at bar edges chosen by ``picks`` (indices, any)."""
    ns = grid.get_column("ts").dt.epoch("ns")
    first, last = int(ns.min()), int(ns.max()) + every_ns  # type: ignore[arg-type]
    bars = (last - first) // every_ns
    inner = sorted({first + (pick % max(bars, 1)) * every_ns for pick in picks} - {first})
    return [first - 3 * every_ns, *inner, last]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    picks=st.lists(st.integers(0, 10**9), max_size=12),
    every=st.sampled_from(["1m", "7m", "1h"]),
    max_age=st.sampled_from([None, "1m", "5m", "1s"]),
    crossed=st.sampled_from([0.0, 0.08]),
)
def test_chunked_equals_whole_on_generated_quotes(
    seed: int, picks: list[int], every: str, max_age: str | None, crossed: float
) -> None:
    quotes = generate(seed, crossed=crossed)
    rng = np.random.default_rng(seed + 1)
    # Trades after the last quote and between bursts: bars outside the quote span.
    extra = [int(quotes["ts"].dt.epoch("ns").max()) + 3_600_000_000_000]  # type: ignore[arg-type]
    extra += list(T0_NS + rng.integers(0, 4 * DAY_NS, 3))
    grid = grid_for(quotes, every, extra)
    engine = engine_settings(every, max_age)
    edges = bar_edges(grid, engine.every_ns, picks)
    chunked, _ = chained(quotes, grid, edges, engine)
    assert_same_bars(chunked, whole(quotes, grid, every, max_age))


def test_one_chunk_equals_whole() -> None:
    quotes = generate(7, rows=2_000)
    grid = grid_for(quotes, "1m")
    engine = engine_settings("1m", "1m")
    edges = [T0_NS - DAY_NS, T0_NS + 10 * DAY_NS]
    chunked, _ = chained(quotes, grid, edges, engine)
    assert_same_bars(chunked, whole(quotes, grid, "1m", "1m"))
    assert chunked["quote_events"].sum() == quotes.height
    assert chunked["crossed_quotes"].sum() > 0


def test_chunk_at_every_day_edge_and_census_chain() -> None:
    """Day-aligned chunks: the census' carry equals the chained outbound carry."""
    quotes = generate(11, rows=3_000, days=5)
    grid = grid_for(quotes, "1m")
    engine = engine_settings("1m", "1m")
    edges = [T0_NS + day * DAY_NS for day in range(6)]
    chunked, carries = chained(quotes, grid, edges, engine)
    assert_same_bars(chunked, whole(quotes, grid, "1m", "1m"))
    census = take_census(
        quotes.select("symbol", "ts", pl.lit(1.0).alias("price"), pl.lit(1.0).alias("size")).lazy(),
        quotes.lazy(),
        keys=("symbol",),
        every_ns=engine.every_ns,
        session=False,
    )
    assert census.quotes is not None
    assert census.quotes["quotes"].sum() == quotes.height
    inbound = chain(census)[(None, "X")]
    checked = 0
    for index, carry in enumerate(carries):
        unit = edges[index] // DAY_NS
        if unit in inbound:
            state = inbound[unit].quotes
            from_census = QuoteCarry(state["last"], state["valid"], state["standing"])
            assert same_carry(from_census, carry), index
            checked += int(carry.last.present)
    assert checked >= 1


def same_carry(left: QuoteCarry, right: QuoteCarry) -> bool:
    def key(state: QuoteState) -> tuple[object, ...]:
        values = (state.bid_price, state.bid_size, state.ask_price, state.ask_size)
        return (state.ts, *(None if v is None or v != v else v for v in values))

    return all(
        key(getattr(left, kind)) == key(getattr(right, kind))
        for kind in ("last", "valid", "standing")
    )


def test_carry_reproduces_crossed_and_cleared_state() -> None:
    """A chunk that starts after a valid, a clear and a crossed quote: mid, OFI, weights."""
    minute = 60_000_000_000
    rows = [
        # ts (minutes), bid, bid size, ask, ask size
        (0, 10.0, 5.0, 10.2, 5.0),  # valid
        (1, None, 5.0, 10.2, 5.0),  # clear
        (2, 10.3, 5.0, 10.1, 5.0),  # crossed
        (3, 10.0, 7.0, 10.2, 5.0),  # first row of chunk 2 (starts at minute 3)
        (3, 10.1, 2.0, 10.2, 5.0),  # same instant
        (6, 10.1, 2.0, 10.3, 1.0),
    ]
    quotes = pl.DataFrame(
        {
            "ts": [T0_NS + r[0] * minute for r in rows],
            "symbol": ["X"] * len(rows),
            "bid_price": [r[1] for r in rows],
            "bid_size": [r[2] for r in rows],
            "ask_price": [r[3] for r in rows],
            "ask_size": [r[4] for r in rows],
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))
    grid = grid_for(quotes, "1m", [T0_NS + 9 * minute])
    for max_age in (None, "90s"):
        engine = engine_settings("1m", max_age)
        # Chunk [2, 3) starts after the clear; chunk [3, 5) after the crossed quote.
        edges = [T0_NS + m * minute for m in (0, 2, 3, 5, 10)]
        chunked, carries = chained(quotes, grid, edges, engine)
        assert_same_bars(chunked, whole(quotes, grid, "1m", max_age))
        inbound = carries[2]
        assert inbound.last.ts == T0_NS + 2 * minute
        assert inbound.standing.ts == T0_NS + minute
        assert inbound.valid.ts == T0_NS
        if max_age is None:
            # Hand-computed, bars 0..9: bar 3's second quote has e = +2 (bid up: +2; ask
            # unchanged: -5 + 5), the first only seeds (the book was cleared at minute 1);
            # bar 6: e = +2 - 2 + 5 = 5. Spread/depth: bar 3 on stands the 3:00 quote
            # (10.1×2 / 10.2×5) to minute 6, then the 6:00 quote (10.1×2 / 10.3×1).
            assert chunked["ofi"].to_list() == [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 5.0] + [None] * 3
            assert chunked["quote_events"].to_list() == [1, 1, 1, 2, 0, 0, 1, 0, 0, 0]
            assert chunked["crossed_quotes"].to_list() == [0, 0, 1] + [0] * 7
            assert chunked["mid_close"].to_list() == pytest.approx(
                [10.1, 10.1, 10.1, 10.15, 10.15, 10.15, 10.2, 10.2, 10.2, 10.2]
            )
            assert chunked["spread"][:3].to_list() == [pytest.approx(0.2), None, None]
            assert chunked["spread"][3:].to_list() == pytest.approx([0.1] * 3 + [0.2] * 4)
            assert chunked["depth"].to_list() == [10.0, None, None, *[7.0] * 3, *[3.0] * 4]
            assert chunked["quote_imbalance"][3:].to_list() == pytest.approx(
                [-3 / 7] * 3 + [1 / 3] * 4
            )
        else:
            # 90 s: the 3:00 quote stands to 4:30 (half of bar 4), then no quote until 6:00.
            assert chunked["depth"][3:6].to_list() == [7.0, 7.0, None]
    # Only the last quote known: the engine's QuoteState alone is not enough. After the
    # clear, chunk [2, 3) loses the mid carried across it.
    assert QuoteCarry.from_state(carries[2].last).valid == QuoteState()
    engine = engine_settings("1m", None)
    chunk = Chunk(
        symbol="X",
        venue=None,
        start=T0_NS + 2 * minute,
        end=T0_NS + 3 * minute,
        quote_state=carries[1].last,
    )
    bars = grid["ts"].filter(grid["ts"].dt.epoch("ns") == chunk.start)
    assert quote_partials(quotes, chunk, bars, engine, carry=carries[1])["mid_close"][0] == 10.1
    assert quote_partials(quotes, chunk, bars, engine)["mid_close"][0] is None


def test_no_quotes_in_chunk_carries_state_forward() -> None:
    generated = generate(5, rows=200, days=1)
    last_ns = int(generated["ts"].dt.epoch("ns").max()) + 1_000_000_000  # type: ignore[arg-type]
    final = pl.DataFrame(
        {
            "ts": [last_ns],
            "symbol": ["X"],
            "bid_price": [99.5],
            "bid_size": [3.0],
            "ask_price": [99.75],
            "ask_size": [1.0],
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))
    quotes = pl.concat([generated, final])
    engine = engine_settings("1m", None)
    grid = grid_for(quotes, "1m", [last_ns + 30 * 60_000_000_000])
    edge = (last_ns // 60_000_000_000 + 5) * 60_000_000_000
    edges = [T0_NS, edge, T0_NS + 2 * DAY_NS]
    chunked, carries = chained(quotes, grid, edges, engine)
    assert_same_bars(chunked, whole(quotes, grid, "1m", None))
    tail = chunked.filter(pl.col("ts").dt.epoch("ns") >= edge)
    assert tail.height > 0
    assert tail["quote_events"].sum() == 0
    # Without a maximum age the last (valid) quote stands on: its spread, depth, imbalance.
    assert carries[-1].last.ts == last_ns
    assert tail["spread"].to_list() == [0.25] * tail.height
    assert tail["depth"].to_list() == [4.0] * tail.height
    assert tail["quote_imbalance"].to_list() == [0.5] * tail.height
    assert tail["mid_close"].to_list() == [99.625] * tail.height
    assert tail["ofi"].is_null().all()  # after the instrument's last quote


def test_defaults_and_errors() -> None:
    quotes = generate(9, rows=300, days=2)
    engine = engine_settings("1m", None)
    chunk = Chunk(symbol="X", venue=None, start=T0_NS, end=T0_NS + 2 * DAY_NS)
    bars = quote_partials(quotes, chunk, None, engine)
    assert bars["quote_events"].sum() == quotes.height
    grid = grid_for(quotes, "1m")
    assert bars["ts"].to_list() == grid["ts"].to_list()
    empty = quote_partials(quotes.clear(), chunk, grid["ts"], engine)
    assert empty.height == grid.height
    assert empty["spread"].is_null().all()
    assert empty["ofi"].is_null().all()
    assert empty["quote_events"].sum() == 0
    shifted = grid["ts"].dt.epoch("ns") + pl.Series([0] + [1] * (grid.height - 1))
    with pytest.raises(ParameterError, match="one grid"):
        quote_partials(quotes, chunk, shifted, engine)
    tiny = EngineSettings(
        **{
            **engine_settings("1us", None).__dict__,
            "options": BarOptions(every="1us", max_bars=1_000_000),
        }
    )
    with pytest.raises(SizeLimitError, match="bars"):
        quote_partials(quotes, chunk, None, tiny)
    later = Chunk(symbol="X", venue=None, start=T0_NS + DAY_NS, end=T0_NS + 2 * DAY_NS)
    with pytest.raises(ParameterError, match="inside the chunk"):
        quote_partials(quotes, later, grid["ts"], engine)


def test_venue_key_and_integer_bar_starts() -> None:
    quotes = generate(2, rows=200, days=1)
    engine = EngineSettings(**{**engine_settings("1m", "1m").__dict__, "keys": ("venue", "symbol")})
    chunk = Chunk(symbol="X", venue="XNAS", start=T0_NS, end=T0_NS + DAY_NS)
    grid = grid_for(quotes, "1m")
    bars = quote_partials(quotes, chunk, grid["ts"].dt.epoch("ns"), engine)
    assert bars.columns[:3] == ["venue", "symbol", "ts"]
    assert set(bars["venue"].to_list()) == {"XNAS"}
    expected = whole(quotes, grid, "1m", "1m")
    assert_same_bars(bars.drop("venue"), expected)
    integer_ts = quotes.with_columns(pl.col("ts").dt.epoch("ns"))
    assert_frame_equal(
        quote_partials(integer_ts, chunk, grid["ts"], engine), bars, rel_tol=1e-12, abs_tol=0
    )
    microseconds = quotes.with_columns(pl.col("ts").dt.cast_time_unit("us"))
    truncated = quotes.with_columns(pl.col("ts").dt.cast_time_unit("us").dt.cast_time_unit("ns"))
    assert_frame_equal(
        quote_partials(microseconds, chunk, grid["ts"], engine),
        quote_partials(truncated, chunk, grid["ts"], engine),
        rel_tol=1e-12,
        abs_tol=0,
    )


def reference_bars(
    quotes: pl.DataFrame, grid: pl.DataFrame, every_ns: int, max_age_ns: int | None
) -> pl.DataFrame:
    """The quote bars by a slow, obviously correct loop over quotes and bars (exact sums)."""
    import bisect
    import math

    ts = quotes["ts"].dt.epoch("ns").to_list()
    sides = quotes.select("bid_price", "bid_size", "ask_price", "ask_size").rows()
    starts = grid["ts"].dt.epoch("ns").to_list()
    n_bars = len(starts)

    def bar_of(t: int) -> int | None:
        j = bisect.bisect_right(starts, t) - 1
        return j if j >= 0 and t < starts[j] + every_ns else None

    events: list[list[float]] = [[] for _ in range(n_bars)]
    counts, crossed_counts = [0] * n_bars, [0] * n_bars
    # time-weighted terms per bar: weight, imbalance weight, spread, depth, imbalance
    terms: list[list[list[float]]] = [[[] for _ in range(5)] for _ in range(n_bars)]
    mids: list[tuple[int, float]] = []  # (ts, mid) of valid quotes
    previous: tuple[float, float, float, float] | None = None  # last valid, still standing
    state = (0.0, 0.0, 0.0, 0.0, 0.0)
    for i, (t, row) in enumerate(zip(ts, sides, strict=True)):
        b, bs, a, az = (None if v is None or math.isnan(v) else v for v in row)
        empty = b is None or bs is None or a is None or az is None
        is_crossed = not empty and b > a  # type: ignore[operator]
        j = bar_of(t)
        event = 0.0
        if empty:
            previous, state = None, (0.0, 0.0, 0.0, 0.0, 0.0)
        elif is_crossed:
            if i == 0:
                state = (0.0, 0.0, 0.0, 0.0, 0.0)
        else:
            assert b is not None
            assert bs is not None
            assert a is not None
            assert az is not None
            if previous is not None:
                pb, pbs, pa, pas = previous
                event = (
                    (bs if b >= pb else 0.0)
                    - (pbs if b <= pb else 0.0)
                    - (az if a <= pa else 0.0)
                    + (pas if a >= pa else 0.0)
                )
            previous = (b, bs, a, az)
            depth = bs + az
            state = (
                1.0,
                1.0 if depth > 0 else 0.0,
                a - b,
                depth,
                (bs - az) / depth if depth > 0 else 0.0,
            )
            mids.append((t, (b + a) / 2))
        if j is not None:
            events[j].append(event)
            counts[j] += 1
            crossed_counts[j] += int(is_crossed)
        # this row's state stands over [t, min(next t, t + max age))
        stop = ts[i + 1] if i + 1 < len(ts) else math.inf
        if max_age_ns is not None:
            stop = min(stop, t + max_age_ns)
        first = max(bisect.bisect_right(starts, t) - 1, 0)
        for k in range(first, n_bars):
            lo, hi = max(t, starts[k]), min(stop, starts[k] + every_ns)
            if starts[k] >= stop:
                break
            if hi > lo:
                for m in range(5):
                    terms[k][m].append(state[m] * (hi - lo))
    out = []
    mid_ts = [m[0] for m in mids]
    for k, start in enumerate(starts):
        end = start + every_ns
        weight, imbalance_weight = (math.fsum(terms[k][0]), math.fsum(terms[k][1]))
        spread = math.fsum(terms[k][2]) / weight if weight > 0 else None
        depth = math.fsum(terms[k][3]) / weight if weight > 0 else None
        imbalance = math.fsum(terms[k][4]) / imbalance_weight if imbalance_weight > 0 else None
        in_span = bisect.bisect_left(ts, end) > 0 and bisect.bisect_left(ts, start) < len(ts)
        ofi = math.fsum(events[k]) if in_span else None
        m = bisect.bisect_left(mid_ts, end)
        out.append(
            (
                start,
                ofi,
                ofi / depth if ofi is not None and depth is not None and depth > 0 else None,
                mids[m - 1][1] if m else None,
                spread,
                depth,
                imbalance,
                counts[k],
                crossed_counts[k],
            )
        )
    schema = {
        "ts": pl.Int64,
        **dict.fromkeys(QUOTE_PARTIAL_COLUMNS[:6], pl.Float64),
        "quote_events": pl.UInt32,
        "crossed_quotes": pl.UInt32,
    }
    frame = pl.DataFrame(out, schema=schema, orient="row")
    return frame.select(
        pl.lit("X").alias("symbol"), pl.col("ts").cast(UTC_NS), *schema.keys() - {"ts"}
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    picks=st.lists(st.integers(0, 10**9), max_size=6),
    max_age=st.sampled_from([None, "1m", "1s"]),
    crossed=st.sampled_from([0.0, 0.08]),
)
def test_chunked_equals_exact_reference_loop(
    seed: int, picks: list[int], max_age: str | None, crossed: float
) -> None:
    """Against exact per-bar sums the chunked bars agree to float rounding of their terms."""
    quotes = generate(seed, rows=250, days=2, crossed=crossed)
    grid = grid_for(quotes, "1m", [T0_NS + DAY_NS // 3])
    engine = engine_settings("1m", max_age)
    edges = bar_edges(grid, engine.every_ns, picks)
    chunked, _ = chained(quotes, grid, edges, engine)
    expected = reference_bars(quotes, grid, engine.every_ns, engine.max_quote_age_ns)
    assert_same_bars(chunked, expected.select(chunked.columns), tolerance=1e-15)


REAL_FILES = {
    "tardis": ("tests/data/tardis/binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz", "1s"),
    "binance-um": ("tests/data/binance/futures/um/BTCUSDT-bookTicker-2024-07-18.csv", "1s"),
    "binance-cm": ("tests/data/binance/futures/cm/BTCUSD_PERP-bookTicker-2024-08-09.csv", "1s"),
    "databento-midnight": (
        "sample_data/databento/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",
        "1s",
    ),
    "simulated": ("sample_data/simulated/quotes.parquet", "1m"),
}


@functools.cache
def real_quotes(name: str) -> pl.DataFrame:
    from mmflow.io import load

    path = Path(__file__).resolve().parents[1] / REAL_FILES[name][0]
    quotes = load([str(path)])[0].frames.quotes
    assert quotes is not None
    return quotes.collect()


@pytest.mark.parametrize("name", sorted(REAL_FILES))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, 10**9), max_size=6),
    max_age=st.sampled_from([None, "1s", "1m"]),
)
def test_chunked_equals_whole_on_real_files(
    name: str, picks: list[int], max_age: str | None
) -> None:
    quotes = real_quotes(name)
    every = REAL_FILES[name][1]
    keys = ("venue", "symbol") if "venue" in quotes.columns else ("symbol",)
    engine = EngineSettings(**{**engine_settings(every, max_age).__dict__, "keys": keys})
    grid = event_grid(quotes.lazy().select(*keys, "ts"), every=every, keys=list(keys)).collect()
    expected = quote_bars(quotes.lazy(), every=every, grid=grid.lazy(), max_age=max_age).collect()
    edges = bar_edges(grid, engine.every_ns, picks)
    assert quotes.select(*keys).n_unique() == 1
    venue = quotes["venue"][0] if "venue" in keys else None
    grid_ns = grid["ts"].dt.epoch("ns")
    quote_ns = quotes["ts"].dt.epoch("ns")
    carry, parts = QuoteCarry(), []
    for start, end in itertools.pairwise(edges):
        chunk = Chunk(symbol=quotes["symbol"][0], venue=venue, start=start, end=end)
        bars = grid["ts"].filter((grid_ns >= start) & (grid_ns < end))
        later = bool((quote_ns >= end).any())
        parts.append(quote_partials(quotes, chunk, bars, engine, carry=carry, quotes_after=later))
        carry = carry_after(quotes, chunk, carry)
    chunked = pl.concat(parts)
    assert chunked["quote_events"].sum() == quotes.height
    assert_same_bars(chunked.drop("venue", strict=False), expected.drop("venue", strict=False))


def test_unsorted_quotes_are_put_in_time_order() -> None:
    quotes = generate(13, rows=400, days=2).unique(subset="ts", keep="first", maintain_order=True)
    shuffled = quotes.sample(fraction=1.0, shuffle=True, seed=1)
    assert not shuffled["ts"].is_sorted()
    engine = engine_settings("1m", "1m")
    grid = grid_for(quotes, "1m")
    chunk = Chunk(symbol="X", venue=None, start=T0_NS, end=T0_NS + DAY_NS)
    bars = grid["ts"].filter(grid["ts"].dt.epoch("ns") < chunk.end)
    # Equal up to the last bits (a group's float sum follows the frame's memory chunks).
    assert_frame_equal(
        quote_partials(shuffled, chunk, bars, engine),
        quote_partials(quotes, chunk, bars, engine),
        rel_tol=1e-12,
        abs_tol=0,
    )
    assert carry_after(shuffled, chunk) == carry_after(quotes, chunk)


def test_benchmark_script_runs_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/engine_quotes.py on small data: the engine's bars equal today's."""
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_quotes.py"
    spec = importlib.util.spec_from_file_location("engine_quotes_benchmark", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["engine_quotes_benchmark"] = module
    spec.loader.exec_module(module)
    module.prepare(20_000, 2, tmp_path)
    module.check(tmp_path)
    assert "largest difference" in capsys.readouterr().out
    wall, cpu, height = module.run_engine(tmp_path)
    assert height == pl.read_parquet(tmp_path / "grid.parquet").height
    assert wall >= 0
    assert cpu >= 0
