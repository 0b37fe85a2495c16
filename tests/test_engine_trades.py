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
from functools import cache

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.durations import duration_nanoseconds
from mmflow.engine.state import Chunk, EngineSettings, TradePartials, TradeState
from mmflow.engine.trades import (
    BAR_COLUMNS,
    merge_buckets,
    quote_window,
    trade_partials,
)
from mmflow.metrics.flow import flow_bars
from mmflow.metrics.impact import cost_bars, roll_spread, trade_costs
from mmflow.metrics.quotes import attach_quotes
from mmflow.metrics.signing import method_mix, sign_trades
from mmflow.metrics.vpin import vpin_buckets
from mmflow.pipeline import BarOptions, Signing, quote_checks
from mmflow.schema import MID_PRICE, instrument_keys

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
            mid = 100.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n_quotes))
            half = 0.005 + 0.01 * rng.integers(0, 2, n_quotes)
            bid, ask = np.round(mid - half, 3), np.round(mid + half, 3)
            crossed = rng.random(n_quotes) < 0.03
            bid = np.where(crossed, ask + 0.01, bid)
            one_sided = rng.random(n_quotes) < 0.02
            quote_parts.append(
                pl.DataFrame(
                    {
                        "ts": quote_ts,
                        "symbol": symbol,
                        "bid_price": bid,
                        "bid_size": rng.integers(1, 50, n_quotes).astype(float),
                        "ask_price": np.where(one_sided, np.nan, ask),
                        "ask_size": rng.integers(1, 50, n_quotes).astype(float),
                    }
                ).with_columns(pl.col("ask_price").fill_nan(None))
            )
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
    trades = (
        pl.concat(trade_parts)
        .with_columns(pl.col("ts").cast(UTC_NS))
        .sort("ts", maintain_order=True)
    )
    quotes = (
        pl.concat(quote_parts)
        .with_columns(pl.col("ts").cast(UTC_NS))
        .sort("ts", maintain_order=True)
    )
    if venue:
        trades = trades.with_columns(pl.lit("XNAS").alias("venue"))
        quotes = quotes.with_columns(pl.lit("XNAS").alias("venue"))
    return trades, quotes


# --------------------------------------------------------------------------------------------
# The whole run (today's functions) and the chunked run


def engine_settings(
    options: BarOptions, signing: Signing, keys: Sequence[str], *, quotes: bool, session: bool
) -> EngineSettings:
    age = signing.max_quote_age
    return EngineSettings(
        options=options,
        signing=signing,
        keys=tuple(keys),
        session=session,
        has_quotes=quotes,
        every_ns=duration_nanoseconds(options.every, what="bar"),
        horizon_ns=duration_nanoseconds(options.horizon, what="horizon")
        if options.horizon not in ("0", "0s")
        else 0,
        lag_ns=0
        if signing.lag in ("0", "0s", "")
        else duration_nanoseconds(signing.lag, what="lag"),
        max_quote_age_ns=None if age is None else duration_nanoseconds(age, what="age"),
        memory_limit=1 << 30,
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
    keys = instrument_keys(signed)
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
        "buckets": buckets.collect(),
        "mix": method_mix(signed).collect(),
        "levels": levels.collect(),
    }
    if q is not None:
        out["checks"] = quote_checks(signed, q, costs).drop("quotes").sort(keys).collect()
    return out


def chunked_run(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    options: BarOptions,
    signing: Signing,
    edges: Sequence[int],
    *,
    venue: bool = False,
) -> tuple[dict[str, pl.DataFrame], list[TradePartials]]:
    """trade_partials per instrument and chunk ([edge_i, edge_{i+1})), state chained."""
    keys = ["venue", "symbol"] if venue else ["symbol"]
    config = engine_settings(options, signing, keys, quotes=quotes is not None, session=False)
    results: list[TradePartials] = []
    for (symbol,), own in trades.partition_by("symbol", as_dict=True, maintain_order=True).items():
        own_quotes = None if quotes is None else quotes.filter(pl.col("symbol") == symbol)
        volume = whole_bucket_volume(own, options.buckets_per_day)
        state = TradeState()
        bounds = [-(2**62), *edges, 2**62]
        for index, (start, end) in enumerate(itertools.pairwise(bounds)):
            chunk = Chunk(
                symbol=str(symbol),
                venue="XNAS" if venue else None,
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
    return out, results


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
