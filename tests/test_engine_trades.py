"""The engine's trade pass, chunk by chunk, equals today's whole-input functions.

For one instrument, :func:`mmflow.engine.trades.trade_partials` runs per chunk (edges at bar
edges, chosen by hypothesis) with the state each earlier chunk hands on; the concatenated
tables must equal ``sign_trades`` → ``flow_bars``, ``trade_costs`` → ``cost_bars``,
``roll_spread``, ``vpin_buckets``, ``method_mix`` and ``quote_checks`` on all rows at once:
counts and labels identical, sums to 1e-9 relative.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.analysis import BarOptions, Signing, quote_checks
from mmflow.durations import duration_nanoseconds
from mmflow.engine.run import make_settings
from mmflow.engine.state import Chunk, EngineSettings, TradePartials, TradeState
from mmflow.engine.trades import (
    BAR_COLUMNS,
    apply_bvc,
    merge_buckets,
    quote_window,
    trade_partials,
)
from mmflow.errors import ParameterError
from mmflow.metrics.flow import bar_keys, bvc_flow_bars, flow_bars
from mmflow.metrics.impact import cost_bars, roll_spread, trade_costs
from mmflow.metrics.quotes import attach_quotes
from mmflow.metrics.signing import Method, method_mix, sign_trades
from mmflow.metrics.vpin import vpin_buckets
from mmflow.schema import MID_PRICE, instrument_keys
from tests.market_days import in_time_order, random_book

NS = 1_000_000_000
DAY = 86_400 * NS
T0 = 1_720_000_000 * NS - (1_720_000_000 * NS) % DAY  # a UTC midnight
UTC_NS = pl.Datetime("ns", "UTC")


# --------------------------------------------------------------------------------------------
# Data


def generated(
    seed: int, *, days: int = 3, rows: int = 1500, venue: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Multi-day, two-symbol trades and quotes with the awkward cases the chunks must carry.

    Long quote gaps (stale quotes across a chunk edge), crossed and one-sided quotes, runs of
    equal prices (zero ticks across an edge), NaN and null prices, zero sizes, unknown vendor
    sides, trades at a quote's instant, and quotes ending before the last trades' horizon.
    """
    rng = np.random.default_rng(seed)
    trade_parts, quote_parts = [], []
    for day in range(days):
        start = T0 + day * DAY + 9 * 3600 * NS
        span = 4 * 3600 * NS
        for symbol in ("AAA", "BBB"):
            n_quotes = int(rows * rng.uniform(0.5, 1.0))
            quote_ts = np.sort(start + rng.integers(0, span, n_quotes))
            # a gap of ~40 minutes with no quotes, somewhere in the day
            gap = start + int(rng.integers(0, span))
            quote_ts = quote_ts[(quote_ts < gap) | (quote_ts > gap + 2400 * NS)]
            n_quotes = len(quote_ts)
            book = random_book(rng, quote_ts, base=100.0)
            bid, ask = book.quoted["bid_price"], book.ask  # trades see the crossed bids too
            quote_parts.append(book.frame(symbol=symbol))
            n_trades = int(rows * rng.uniform(0.5, 1.0))
            trade_ts = np.sort(start + rng.integers(0, span + 1800 * NS, n_trades))
            # some trades exactly at a quote's time
            at_quote = rng.random(n_trades) < 0.05
            trade_ts = np.sort(
                np.where(at_quote, quote_ts[rng.integers(0, n_quotes, n_trades)], trade_ts)
            )
            position = np.clip(np.searchsorted(quote_ts, trade_ts) - 1, 0, n_quotes - 1)
            side = rng.choice(np.array([-1, 1], dtype=np.int8), n_trades)
            price = np.where(side > 0, ask[position], bid[position])
            repeat = rng.random(n_trades) < 0.3  # equal prices: zero ticks
            price = np.where(repeat, np.roll(price, 1), price)
            price[rng.random(n_trades) < 0.01] = np.nan
            size = rng.integers(0, 10, n_trades).astype(float)  # some zero sizes
            vendor = np.where(rng.random(n_trades) < 0.5, 0, side).astype(np.int8)
            trade_parts.append(
                pl.DataFrame(
                    {
                        "ts": trade_ts,
                        "symbol": symbol,
                        "price": price,
                        "size": size,
                        "aggressor_side": vendor,
                    }
                ).with_columns(
                    pl.when(pl.int_range(pl.len()) % 97 == 5)
                    .then(None)
                    .otherwise(pl.col("price"))
                    .alias("price")
                )
            )
    trades, quotes = in_time_order(trade_parts), in_time_order(quote_parts)
    if venue:
        trades = trades.with_columns(pl.lit("XNAS").alias("venue"))
        quotes = quotes.with_columns(pl.lit("XNAS").alias("venue"))
    return trades, quotes


# --------------------------------------------------------------------------------------------
# The whole run (today's functions) and the chunked run


def engine_settings(
    options: BarOptions, signing: Signing, keys: Sequence[str], *, quotes: bool, session: bool
) -> EngineSettings:
    """The settings a run makes (:func:`mmflow.engine.run.make_settings`), 1 GiB chunks."""
    return make_settings(
        options, signing, keys=keys, session=session, has_quotes=quotes, memory_limit=1 << 30
    )


def whole_bucket_volume(trades: pl.DataFrame, buckets_per_day: int) -> float | None:
    """ADV / buckets_per_day over the whole input, as vpin_buckets computes it."""
    base = trades.filter(pl.col("size") > 0, pl.col("size").is_finite())
    if base.height == 0:
        return None
    row = base.select(
        pl.col("size").sum().alias("volume"), pl.col("ts").dt.date().n_unique().alias("days")
    ).row(0)
    return float(row[0]) / float(row[1]) / float(buckets_per_day)


def whole_run(
    trades: pl.DataFrame, quotes: pl.DataFrame | None, options: BarOptions, signing: Signing
) -> dict[str, pl.DataFrame]:
    """Today's functions on all rows, as market_bars chains them."""
    t = trades.lazy()
    q = quotes.lazy() if quotes is not None else None
    age = signing.max_quote_age
    if signing.method == "bvc":
        signed = t.with_columns(
            pl.lit(0, pl.Int8).alias("trade_sign"), pl.lit("bvc").alias("sign_method")
        )
    else:
        signed = sign_trades(
            t, q, method=signing.method, match=signing.match, lag=signing.lag, max_quote_age=age
        )
    if q is not None and MID_PRICE not in signed.collect_schema().names():
        signed = attach_quotes(signed, q, match=signing.match, lag=signing.lag, max_age=age)
    signed = signed.collect().lazy()
    keys = bar_keys(signed)
    instrument = instrument_keys(signed)
    bars = flow_bars(signed, every=options.every).filter(pl.col("trades") > 0)
    costs = None
    if q is not None:
        costs = trade_costs(signed, q, horizon=options.horizon, max_quote_age=age)
        per_bar = cost_bars(costs, every=options.every).select(
            *keys, "ts", "effective_spread", "realized_spread", "price_impact"
        )
        bars = bars.join(per_bar, on=[*keys, "ts"], how="left", nulls_equal=True)
    else:
        bars = bars.with_columns(
            pl.lit(None, pl.Float64).alias(c)
            for c in ("effective_spread", "realized_spread", "price_impact")
        )
    rolls = roll_spread(signed, every=options.every).select(*keys, "ts", "roll_spread")
    bars = bars.join(rolls, on=[*keys, "ts"], how="left", nulls_equal=True)
    buckets = vpin_buckets(
        signed,
        buckets_per_day=options.buckets_per_day,
        window=options.vpin_window,
        max_buckets=10**9,
    )
    levels = (
        signed.filter(pl.col("price").is_finite())
        .group_by(*keys, pl.col("ts").dt.truncate(options.every), "price", "trade_sign")
        .agg(pl.col("size").sum(), pl.len().cast(pl.UInt32).alias("trades"))
        .sort(*keys, "ts", "price", "trade_sign")
    )
    out = {
        "bars": bars.select(*keys, "ts", *BAR_COLUMNS).sort(*keys, "ts").collect(),
        # (buckets, mix and checks are per instrument)
        "buckets": buckets.collect(),
        "mix": method_mix(signed).collect(),
        "levels": levels.collect(),
    }
    if q is not None:
        out["checks"] = quote_checks(signed, q, costs).drop("quotes").sort(instrument).collect()
    return out


def chunked_run(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    options: BarOptions,
    signing: Signing,
    edges: Sequence[int],
    *,
    venue: bool = False,
) -> tuple[dict[str, pl.DataFrame], list[tuple[Chunk, TradePartials]]]:
    """trade_partials per instrument and chunk ([edge_i, edge_{i+1})), state chained."""
    keys = ["venue", "symbol"] if venue else ["symbol"]
    config = engine_settings(options, signing, keys, quotes=quotes is not None, session=False)
    results: list[TradePartials] = []
    chunks: list[Chunk] = []
    for key, own in trades.partition_by(keys, as_dict=True, maintain_order=True).items():
        venue_name, symbol = key if venue else (None, key[0])
        own_quotes = None if quotes is None else quotes.filter(pl.col("symbol") == symbol)
        volume = whole_bucket_volume(own, options.buckets_per_day)
        state = TradeState()
        bounds = [-(2**62), *edges, 2**62]
        for index, (start, end) in enumerate(itertools.pairwise(bounds)):
            chunk = Chunk(
                symbol=str(symbol),
                venue=None if venue_name is None else str(venue_name),
                start=start,
                end=end,
                index=index,
                bucket_volume=volume,
                trade_state=state,
            )
            rows = own.filter(chunk.time_filter())
            window, last = (None, None)
            if own_quotes is not None:
                lazy, last = quote_window(own_quotes.lazy(), chunk, config)
                window = lazy.collect()
            part = trade_partials(rows, window, chunk, config, last_quote_ts=last)
            results.append(part)
            chunks.append(chunk)
            state = part.state
    bars = pl.concat([r.bars for r in results]).sort(*keys, "ts")
    mix = (
        pl.concat([r.mix for r in results])
        .group_by(*keys, "sign_method")
        .agg(pl.col("trades").sum(), pl.col("volume").sum())
        .with_columns((pl.col("trades") / pl.col("trades").sum().over(keys)).alias("share"))
        .sort(*keys, "trades", "sign_method", descending=[*(False for _ in keys), True, False])
    )
    out = {
        "bars": bars,
        "buckets": merge_buckets(
            pl.concat([r.buckets for r in results]), window=options.vpin_window
        ).collect(),
        "mix": mix,
        "levels": pl.concat([r.levels for r in results]).sort(*keys, "ts", "price", "trade_sign"),
    }
    if quotes is not None:
        out["checks"] = (
            pl.concat([r.checks for r in results]).group_by(keys).agg(pl.all().sum()).sort(keys)
        )
    return out, list(zip(chunks, results, strict=True))


def assert_same(whole: dict[str, pl.DataFrame], chunked: dict[str, pl.DataFrame]) -> None:
    assert set(whole) == set(chunked)
    for name, expected in whole.items():
        got = chunked[name]
        assert got.columns == expected.columns, name
        assert_frame_equal(
            got, expected, check_dtypes=False, check_exact=False, rel_tol=1e-9, abs_tol=1e-9
        )


def candidate_edges(trades: pl.DataFrame, every_ns: int) -> list[int]:
    """Bar edges across the data: every day edge and bar edges inside the trading hours."""
    first = trades["ts"].dt.epoch("ns").min()
    last = trades["ts"].dt.epoch("ns").max()
    assert isinstance(first, int)
    assert isinstance(last, int)
    low = first - first % every_ns
    return list(range(low, last + every_ns, every_ns))


@cache
def data(seed: int, venue: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    return generated(seed, venue=venue)


OPTIONS = BarOptions(every="1m", horizon="5m", buckets_per_day=40, vpin_window=5, max_bars=None)


@pytest.mark.parametrize(
    "method", ["auto", "tick", "vendor", "quote", "lee-ready", "emo", "clnv", "depth", "bvc"]
)
def test_every_method_chunked_equals_whole(method: str) -> None:
    trades, quotes = data(1)
    signing = Signing(method=method)  # type: ignore[arg-type]
    edges = candidate_edges(trades, 60 * NS)[::97]
    whole = whole_run(trades, quotes, OPTIONS, signing)
    chunked, _ = chunked_run(trades, quotes, OPTIONS, signing, edges)
    assert_same(whole, chunked)


# --------------------------------------------------------------------------------------------
# Chunk edges anywhere (hypothesis), other settings


@st.composite
def edge_sets(draw: st.DrawFn, candidates: Sequence[int]) -> list[int]:
    """A sorted subset of bar edges: few or many chunks, edges anywhere (in buckets, gaps…)."""
    count = draw(st.integers(min_value=0, max_value=12))
    picks = draw(
        st.lists(st.integers(0, len(candidates) - 1), min_size=count, max_size=count, unique=True)
    )
    return sorted(candidates[i] for i in picks)


CANDIDATES = candidate_edges(data(2)[0], 60 * NS)
WHOLE_AUTO = whole_run(*data(2), OPTIONS, Signing())


@settings(max_examples=15, deadline=None)
@given(edges=edge_sets(CANDIDATES))
def test_chunk_edges_anywhere(edges: list[int]) -> None:
    chunked, _ = chunked_run(*data(2), OPTIONS, Signing(), edges)
    assert_same(WHOLE_AUTO, chunked)


@settings(max_examples=8, deadline=None)
@given(
    edges=edge_sets(CANDIDATES),
    every=st.sampled_from(["1m", "5m", "7m", "1h"]),
    horizon=st.sampled_from(["0s", "30s", "5m", "1h"]),
    match=st.sampled_from(["strict", "at-or-before"]),
    lag=st.sampled_from(["0s", "2s", "90s"]),
    age=st.sampled_from([None, "1m", "10s"]),
)
def test_settings_chunked_equals_whole(
    edges: list[int], every: str, horizon: str, match: str, lag: str, age: str | None
) -> None:
    """Other bar lengths, horizons, quote matching, lags and quote ages: still equal."""
    trades, quotes = data(2, venue=True)
    step = duration_nanoseconds(every)
    edges = sorted({e - e % step for e in edges})  # bar edges of this bar length
    options = BarOptions(
        every=every, horizon=horizon, buckets_per_day=25, vpin_window=3, max_bars=None
    )
    signing = Signing(match=match, lag=lag, max_quote_age=age)  # type: ignore[arg-type]
    whole = whole_run(trades, quotes, options, signing)
    chunked, _ = chunked_run(trades, quotes, options, signing, edges, venue=True)
    assert_same(whole, chunked)


@pytest.mark.parametrize("method", ["auto", "tick", "vendor", "bvc"])
def test_without_quotes(method: str) -> None:
    trades, _ = data(3)
    signing = Signing(method=method)  # type: ignore[arg-type]
    edges = candidate_edges(trades, 60 * NS)[5::61]
    whole = whole_run(trades, None, OPTIONS, signing)
    chunked, parts = chunked_run(trades, None, OPTIONS, signing, edges)
    assert_same(whole, chunked)
    assert all(p.bars["effective_spread"].null_count() == p.bars.height for _, p in parts)


def test_the_carried_state_matters() -> None:
    """Without the inbound state the chunked tables differ (the comparison has teeth)."""
    trades, quotes = data(2)
    edges = CANDIDATES[::37]
    keys = ["symbol"]
    config = engine_settings(OPTIONS, Signing(method="tick"), keys, quotes=True, session=False)
    whole = whole_run(trades, quotes, OPTIONS, Signing(method="tick"))
    own = trades.filter(pl.col("symbol") == "AAA")
    volume = whole_bucket_volume(own, OPTIONS.buckets_per_day)
    bars = []
    pieces = []
    bounds = [-(2**62), *edges, 2**62]
    for start, end in itertools.pairwise(bounds):
        chunk = Chunk(symbol="AAA", venue=None, start=start, end=end, bucket_volume=volume)
        window, last = quote_window(quotes.filter(pl.col("symbol") == "AAA").lazy(), chunk, config)
        part = trade_partials(
            own.filter(chunk.time_filter()), window.collect(), chunk, config, last_quote_ts=last
        )
        bars.append(part.bars)
        pieces.append(part.buckets)
    expected = whole["bars"].filter(pl.col("symbol") == "AAA")
    got = pl.concat(bars)
    assert got.height == expected.height
    assert not got["net_flow"].equals(expected["net_flow"])
    restarted = merge_buckets(pl.concat(pieces), window=OPTIONS.vpin_window).collect()
    assert restarted.height < whole["buckets"].filter(pl.col("symbol") == "AAA").height


def prefix_state(trades: pl.DataFrame, before: int) -> TradeState:
    """The state a census would chain: computed directly from all trades before ``before``."""
    rows = trades.filter(pl.col("ts").dt.epoch("ns") < before)
    clean = rows["price"].fill_nan(None).drop_nulls()
    changes = clean.diff().sign()
    changes = changes.filter(changes != 0)
    sizes = rows["size"].filter(rows["size"].is_finite() & (rows["size"] > 0))
    return TradeState(
        last_price=None if clean.len() == 0 else float(clean[-1]),
        last_direction=0 if changes.len() == 0 else int(changes[-1]),
        cumulative_volume=float(sizes.sum()),
        trades=rows.height,
    )


def test_outbound_state_is_the_prefix_state() -> None:
    trades, quotes = data(2)
    edges = CANDIDATES[::53]
    _, parts = chunked_run(trades, quotes, OPTIONS, Signing(), edges)
    assert len(parts) == 2 * (len(edges) + 1)
    for chunk, part in parts:
        expected = prefix_state(trades.filter(pl.col("symbol") == chunk.symbol), chunk.end)
        got = part.state
        assert (got.last_price, got.last_direction, got.trades) == (
            expected.last_price,
            expected.last_direction,
            expected.trades,
        )
        assert got.cumulative_volume == pytest.approx(expected.cumulative_volume, rel=1e-12)


def test_reverse_tick_is_refused() -> None:
    trades, quotes = data(2)
    config = engine_settings(
        OPTIONS, Signing(method="reverse-tick"), ["symbol"], quotes=True, session=False
    )
    chunk = Chunk(symbol="AAA", venue=None, start=0, end=2**62)
    with pytest.raises(ParameterError, match="reverse tick"):
        trade_partials(trades.filter(pl.col("symbol") == "AAA"), quotes, chunk, config)


# --------------------------------------------------------------------------------------------
# BVC in the finish, sessions, real files


def test_bvc_split_in_the_finish_equals_bvc_flow_bars() -> None:
    """The chunks' unsigned bars on the grid, then apply_bvc == bvc_flow_bars on all trades."""
    trades, quotes = data(1)
    trades = trades.filter(pl.col("price").is_finite())  # a NaN close makes σ NaN: no split
    signing = Signing(method="bvc")
    edges = CANDIDATES[::41]
    chunked, _ = chunked_run(trades, quotes, OPTIONS, signing, edges)
    signed = trades.lazy().with_columns(pl.lit(0, pl.Int8).alias("trade_sign"))
    expected = bvc_flow_bars(signed, every="1m").collect()
    grid = expected.select("symbol", "ts")
    columns = expected.columns[2:]
    counts = ["volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow"]
    gridded = (
        grid.join(chunked["bars"], on=["symbol", "ts"], how="left")
        .with_columns(pl.col(counts).fill_null(0.0), pl.col("trades").fill_null(0))
        .select("symbol", "ts", *columns)
    )
    got = apply_bvc(gridded.lazy()).collect()
    assert_frame_equal(got, expected, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-9)
    assert got["buy_volume"].sum() > 0


def test_sessions_restart_the_tick_rule_and_bars() -> None:
    """With a session column (one per UTC day here), chunks of whole sessions equal the whole."""
    trades, quotes = data(1)
    label = pl.col("ts").dt.date().alias("session")
    trades, quotes = trades.with_columns(label), quotes.with_columns(label)
    signing = Signing(method="tick")
    whole = whole_run(trades, quotes, OPTIONS, signing)
    keys = ["symbol"]
    config = engine_settings(OPTIONS, signing, keys, quotes=True, session=True)
    days = sorted(set(trades["session"].to_list()))
    parts: list[TradePartials] = []
    for symbol in ("AAA", "BBB"):
        own = trades.filter(pl.col("symbol") == symbol)
        own_quotes = quotes.filter(pl.col("symbol") == symbol)
        volume = whole_bucket_volume(own, OPTIONS.buckets_per_day)
        state = TradeState(last_price=1.0, last_direction=1)  # ignored: sessions restart
        for group in ([days[0]], days[1:]):
            start = min(datetime_ns(d) for d in group)
            end = max(datetime_ns(d) for d in group) + DAY
            chunk = Chunk(
                symbol=symbol,
                venue=None,
                start=start,
                end=end,
                sessions=tuple(group),
                bucket_volume=volume,
                trade_state=state,
            )
            window, last = quote_window(own_quotes.lazy(), chunk, config)
            part = trade_partials(
                own.filter(chunk.row_filter(tuple(keys))),
                window.collect(),
                chunk,
                config,
                last_quote_ts=last,
            )
            parts.append(part)
            state = part.state
    bars = pl.concat([p.bars for p in parts]).sort("symbol", "session", "ts")
    assert bars.columns[:3] == ["symbol", "session", "ts"]
    expected = whole["bars"].sort("symbol", "session", "ts")
    assert_frame_equal(bars, expected, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-9)
    buckets = merge_buckets(pl.concat([p.buckets for p in parts]), window=OPTIONS.vpin_window)
    assert_frame_equal(
        buckets.collect(), whole["buckets"], check_dtypes=False, rel_tol=1e-9, abs_tol=1e-9
    )


def datetime_ns(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY


def test_real_tardis_files_chunked_equal_whole() -> None:
    """Binance USD-M BTCUSDT trades and quotes (Tardis), cut at 1-minute edges."""
    from mmflow.analysis import Selection, prepare_market
    from mmflow.io import load

    folder = Path(__file__).parent / "data" / "tardis"
    loaded = load(
        [
            str(folder / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz"),
            str(folder / "binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz"),
        ]
    )
    trades_lazy = pl.concat([x.frames.trades for x in loaded if x.frames.trades is not None])
    quotes_lazy = pl.concat([x.frames.quotes for x in loaded if x.frames.quotes is not None])
    prepared, prepared_quotes, _ = prepare_market(trades_lazy, quotes_lazy, Selection())
    assert prepared_quotes is not None
    trades, quotes = prepared.collect(), prepared_quotes.collect()
    assert trades.height > 5000
    options = BarOptions(
        every="10s", horizon="30s", buckets_per_day=2000, vpin_window=5, max_bars=None
    )
    step = 10 * NS
    edges = candidate_edges(trades, step)[1::7]
    for method in ("auto", "lee-ready", "tick"):
        signing = Signing(method=method)
        whole = whole_run(trades, quotes, options, signing)
        chunked, _ = chunked_run(trades, quotes, options, signing, edges, venue=True)
        assert_same(whole, chunked)
        assert whole["buckets"].height > 10


# --------------------------------------------------------------------------------------------
# Hand-computed vectors


def small_chunk(
    prices: Sequence[float | None], sizes: Sequence[float], state: TradeState, volume: float
) -> TradePartials:
    trades = pl.DataFrame(
        {
            "ts": [T0 + (i + 1) * NS for i in range(len(prices))],
            "symbol": "X",
            "price": prices,
            "size": sizes,
            "aggressor_side": [0] * len(prices),
        },
        schema_overrides={"ts": pl.Int64, "aggressor_side": pl.Int8, "price": pl.Float64},
    ).with_columns(pl.col("ts").cast(UTC_NS))
    config = engine_settings(
        OPTIONS, Signing(method="tick"), ["symbol"], quotes=False, session=False
    )
    chunk = Chunk(
        symbol="X", venue=None, start=T0, end=T0 + DAY, bucket_volume=volume, trade_state=state
    )
    return trade_partials(trades, None, chunk, config)


def test_inbound_tick_state_by_hand() -> None:
    """P_{t−1} and the last direction come from the state: 10 > 9.5 is +1, 10 = 10 repeats."""
    up = small_chunk([10.0, 10.0, 9.0], [1.0, 2.0, 3.0], TradeState(9.5, -1), 100.0)
    assert up.bars["buy_volume"].item() == 3.0
    assert up.bars["sell_volume"].item() == 3.0
    # equal to the last price: a zero tick repeats the inbound direction (−1); a null price is 0
    flat = small_chunk([10.0, None, 10.0], [1.0, 2.0, 4.0], TradeState(10.0, -1), 100.0)
    assert (flat.bars["sell_volume"].item(), flat.bars["unknown_volume"].item()) == (5.0, 2.0)
    assert (flat.state.last_price, flat.state.last_direction) == (10.0, -1)
    # no state: the first trade is unknown
    fresh = small_chunk([10.0, 10.0], [1.0, 2.0], TradeState(), 100.0)
    assert fresh.bars["unknown_volume"].item() == 3.0


def test_bucket_pieces_by_hand() -> None:
    """V = 100 and 150 already poured: 60 fills bucket 1 with 50 (completing it), 10 go on."""
    part = small_chunk(
        [10.0, 11.0, 12.0], [60.0, 0.0, 240.0], TradeState(9.0, 1, cumulative_volume=150.0), 100.0
    )
    rows = part.buckets.select("bucket", "volume", "buy_volume", "completes").rows()
    assert rows == [
        (1, 50.0, 50.0, True),
        (2, 100.0, 100.0, True),  # 10 of the first trade, 90 of the third
        (3, 100.0, 100.0, True),
        (4, 50.0, 50.0, False),  # 450 poured: half of bucket 4
    ]
    assert part.state.cumulative_volume == 450.0
    assert part.state.trades == 3


def test_unsorted_input_is_sorted_first() -> None:
    trades, quotes = data(2)
    config = engine_settings(OPTIONS, Signing(), ["symbol"], quotes=True, session=False)
    own = trades.filter(pl.col("symbol") == "AAA").unique(subset="ts", keep="first")
    own = own.sort("ts")
    own_quotes = quotes.filter(pl.col("symbol") == "AAA")
    chunk = Chunk(symbol="AAA", venue=None, start=-(2**62), end=2**62, bucket_volume=50.0)
    ordered = trade_partials(own, own_quotes, chunk, config)
    shuffled = trade_partials(
        own.sample(fraction=1.0, shuffle=True, seed=3), own_quotes, chunk, config
    )
    assert_frame_equal(shuffled.bars, ordered.bars)
    assert_frame_equal(shuffled.buckets, ordered.buckets)


def test_quote_window_finds_the_last_usable_quote_days_back() -> None:
    """A crossed quote prevails; the last usable one is two days older: both lead the window."""
    quotes = pl.DataFrame(
        {
            "ts": [T0 - 3 * DAY, T0 - 2 * DAY, T0 - 3600 * NS, T0 + 60 * NS, T0 + DAY + 10 * NS],
            "symbol": "X",
            "bid_price": [9.0, 10.0, 10.2, 10.0, 10.0],
            "bid_size": [1.0] * 5,
            "ask_price": [9.1, 10.1, 10.1, 10.1, 10.1],  # the third is crossed
            "ask_size": [1.0] * 5,
        },
        schema_overrides={"ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(UTC_NS))
    config = engine_settings(OPTIONS, Signing(), ["symbol"], quotes=True, session=False)
    chunk = Chunk(symbol="X", venue=None, start=T0, end=T0 + DAY)
    window, last = quote_window(quotes.lazy(), chunk, config)
    got = window.collect()["ts"].dt.epoch("ns").to_list()
    assert got == [T0 - 2 * DAY, T0 - 3600 * NS, T0 + 60 * NS, T0 + DAY + 10 * NS]
    assert last == T0 + DAY + 10 * NS
    # a trade 30 s in: the crossed quote prevails (no mid: no costs); at t + 0 s the latest
    # usable quote is two days old, so the future mid is stale (counted as such)
    trades = pl.DataFrame(
        {"ts": [T0 + 30 * NS], "symbol": "X", "price": [10.1], "size": [1.0]},
        schema_overrides={"ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(UTC_NS), pl.lit(1, pl.Int8).alias("aggressor_side"))
    options = replace(OPTIONS, horizon="0s")
    config = replace(config, options=options, horizon_ns=0)
    window, last = quote_window(quotes.lazy(), chunk, config)
    whole = whole_run(trades, quotes, options, Signing())
    part = trade_partials(trades, window.collect(), chunk, config, last_quote_ts=last)
    assert_frame_equal(part.bars, whole["bars"], check_dtypes=False)
    assert_frame_equal(part.checks, whole["checks"], check_dtypes=False)
    assert part.checks["stale_future_quote"].item() == 1


REAL_FILES = {
    # futures trades with their own pre-trade BBO, and quotes, across a UTC midnight
    "databento-mbp-1": (
        ["sample_data/databento/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"],
        "1s",
        3,
    ),
    # ES trades with their own BBO, no quotes, two days
    "sierra-es": (
        [
            "tests/data/sierra-es/ES_2022-01-24_tbt.txt",
            "tests/data/sierra-es/ES_2023-06-29_tbt.txt",
        ],
        "1s",
        2,
    ),
    "simulated": (
        ["sample_data/simulated/trades.parquet", "sample_data/simulated/quotes.parquet"],
        "1m",
        9,
    ),
}


@pytest.mark.parametrize("name", list(REAL_FILES))
@pytest.mark.parametrize("method", ["auto", "lee-ready", "tick"])
def test_real_files_chunked_equal_whole(name: str, method: Method) -> None:
    from mmflow.analysis import Selection, prepare_market
    from mmflow.io import load

    paths, every, stride = REAL_FILES[name]
    root = Path(__file__).resolve().parents[1]
    loaded = load([str(root / p) for p in paths])
    found = [x.frames.trades for x in loaded if x.frames.trades is not None]
    quoted = [x.frames.quotes for x in loaded if x.frames.quotes is not None]
    trades_lazy = pl.concat(found, how="diagonal_relaxed")
    quotes_lazy = pl.concat(quoted, how="diagonal_relaxed") if quoted else None
    prepared, prepared_quotes, _ = prepare_market(trades_lazy, quotes_lazy, Selection())
    trades = prepared.collect()
    quotes = None if prepared_quotes is None else prepared_quotes.collect()
    options = BarOptions(
        every=every, horizon="5s", buckets_per_day=500, vpin_window=3, max_bars=None
    )
    # bar edges where the trades are (the files span hours, or two days a year apart)
    step = duration_nanoseconds(every)
    starts = (trades["ts"].dt.epoch("ns") // step * step).unique().sort().to_list()
    edges = starts[1::stride][:40]
    signing = Signing(method=method)
    whole = whole_run(trades, quotes, options, signing)
    chunked, parts = chunked_run(trades, quotes, options, signing, edges)
    assert_same(whole, chunked)
    assert sum(p.bars.height > 0 for _, p in parts) > 2  # the edges cut the data
