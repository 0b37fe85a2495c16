"""CPU time of the engine's trade pass against today's whole-input trade stages.

Generates (or reuses, with ``--data``) ``benchmarks/bench.py``'s trades and quotes, reads them,
then times, in this one process and on the same rows:

* today's stages on all rows, each collected on its own (as issue 11 measured them): signing
  (``sign_trades``, as-of join + rules), trade costs (``trade_costs``, as-of join at the horizon),
  ``flow_bars``, ``cost_bars``, ``roll_spread``, ``vpin_buckets``, ``method_mix``;
* the engine's trade pass: split by instrument once, then
  :func:`mmflow.engine.trades.trade_partials` per instrument × day chunk (signing, costs,
  per-bar flow/cost/Roll, levels, VPIN pieces, mix, checks), state chained.

CPU seconds are the process's user + system time (all threads); the machine is shared, so
read them as a comparison of the two in one run, not as absolute numbers. The totals of the
bars (trades, volume, net flow) are checked to agree.

Usage::

    .venv/bin/python benchmarks/engine_trades.py --rows 10M --data /tmp/engine-trades-10m

Measured (2026-12-06, 10 M trades + 10 M quotes, 4 symbols, one day; 2 shared cores under
load, polars 2.1): today's stages 10.9 CPU-s (signing 2.7, trade costs 3.4, flow bars 0.7,
cost bars 0.45, Roll 1.4, VPIN 2.1, mix 0.1); the trade pass 3.6 CPU-s over 4 chunks (3.0×;
3.2 CPU-s and 2.6 GB peak RSS with ``--only engine``, the input held in memory twice), plus
2.0 CPU-s for this script's in-memory split by symbol (the engine reads per instrument).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import parse_size, prepared

from mmflow.analysis import BarOptions, Signing
from mmflow.durations import duration_nanoseconds
from mmflow.engine.state import NS_PER_DAY, Chunk, EngineSettings, TradeState
from mmflow.engine.trades import quote_window, trade_partials
from mmflow.metrics.flow import flow_bars
from mmflow.metrics.impact import cost_bars, roll_spread, trade_costs
from mmflow.metrics.signing import method_mix, sign_trades
from mmflow.metrics.vpin import vpin_buckets

T = TypeVar("T")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, work: Callable[[], T], rows: list[tuple[str, float, float]]) -> T:
    """Run ``work``, append (label, CPU-s, wall-s) to ``rows`` and return its result."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = work()
    rows.append((label, cpu_seconds() - cpu, time.perf_counter() - wall))
    print(f"  {label:<34} {rows[-1][1]:7.2f} CPU-s {rows[-1][2]:7.2f} s", flush=True)
    return result


def whole_stages(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    options: BarOptions,
    signing: Signing,
    rows: list[tuple[str, float, float]],
) -> pl.DataFrame:
    """Today's trade stages on all rows; returns the flow bars (for the totals check)."""
    age = signing.max_quote_age
    signed = timed(
        "sign_trades (as-of + rules)",
        lambda: sign_trades(
            trades.lazy(), quotes.lazy(), method=signing.method, max_quote_age=age
        ).collect(),
        rows,
    )
    costs = timed(
        "trade_costs (as-of at horizon)",
        lambda: trade_costs(
            signed.lazy(), quotes.lazy(), horizon=options.horizon, max_quote_age=age
        ).collect(),
        rows,
    )
    bars = timed("flow_bars", lambda: flow_bars(signed.lazy(), every=options.every).collect(), rows)
    timed("cost_bars", lambda: cost_bars(costs.lazy(), every=options.every).collect(), rows)
    timed("roll_spread", lambda: roll_spread(signed.lazy(), every=options.every).collect(), rows)
    timed(
        "vpin_buckets",
        lambda: vpin_buckets(
            signed.lazy(),
            buckets_per_day=options.buckets_per_day,
            window=options.vpin_window,
            max_buckets=options.max_bars,
        ).collect(),
        rows,
    )
    timed("method_mix", lambda: method_mix(signed.lazy()).collect(), rows)
    return bars


def engine_pass(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    options: BarOptions,
    signing: Signing,
    rows: list[tuple[str, float, float]],
) -> pl.DataFrame:
    """Split by instrument once, then trade_partials per instrument × day; returns the bars."""
    age = signing.max_quote_age
    settings = EngineSettings(
        options=options,
        signing=signing,
        keys=("symbol",),
        session=False,
        has_quotes=True,
        every_ns=duration_nanoseconds(options.every),
        horizon_ns=duration_nanoseconds(options.horizon),
        lag_ns=0,
        max_quote_age_ns=None if age is None else duration_nanoseconds(age),
        memory_limit=1 << 31,
    )

    def split() -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
        by_trades = trades.partition_by("symbol", as_dict=True, maintain_order=True)
        by_quotes = quotes.partition_by("symbol", as_dict=True, maintain_order=True)
        return (
            {str(k[0]): v for k, v in by_trades.items()},
            {str(k[0]): v for k, v in by_quotes.items()},
        )

    own_trades, own_quotes = timed("split by instrument", split, rows)

    def chunks() -> list[pl.DataFrame]:
        out = []
        for symbol, own in own_trades.items():
            ns = own["ts"].dt.epoch("ns")
            days = sorted({int(d) for d in (ns // NS_PER_DAY).unique().to_list()})
            base = own.filter(pl.col("size") > 0, pl.col("size").is_finite())
            volume = base["size"].sum() / len(days) / options.buckets_per_day
            state = TradeState()
            symbol_quotes = own_quotes.get(symbol)
            for index, day in enumerate(days):
                chunk = Chunk(
                    symbol=symbol,
                    venue=None,
                    start=day * NS_PER_DAY,
                    end=(day + 1) * NS_PER_DAY,
                    index=index,
                    bucket_volume=float(volume),
                    trade_state=state,
                )
                window, last = (None, None)
                if symbol_quotes is not None:
                    lazy, last = quote_window(symbol_quotes.lazy(), chunk, settings)
                    window = lazy.collect()
                part = trade_partials(
                    own.filter(chunk.time_filter()), window, chunk, settings, last_quote_ts=last
                )
                state = part.state
                out.append(part.bars)
        return out

    bars = timed("trade_partials (all chunks)", chunks, rows)
    return pl.concat(bars)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate or reuse the data, time both, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=parse_size, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows-per-day", type=parse_size, default=10_000_000)
    parser.add_argument("--data", type=Path, default=None, help="keep/reuse generated data here")
    parser.add_argument(
        "--only",
        choices=("both", "today", "engine"),
        default="both",
        help="time one side only (its own peak memory)",
    )
    args = parser.parse_args(argv)
    directory = args.data or Path(tempfile.mkdtemp(prefix="engine-trades-"))
    inputs, generated = prepared(
        args.rows,
        args.symbols,
        args.seed,
        directory,
        csv=False,
        rows_per_day=args.rows_per_day,
        dataset_from=10**12,
    )
    if generated is not None:
        print(f"generated in {generated:.1f} s: {directory}")
    trades_path, quotes_path = inputs.trades, inputs.quotes
    assert trades_path is not None
    assert quotes_path is not None
    rows: list[tuple[str, float, float]] = []
    trades = timed("read trades", lambda: pl.read_parquet(trades_path), rows)
    quotes = timed("read quotes", lambda: pl.read_parquet(quotes_path), rows)
    options = BarOptions()
    signing = Signing()
    print(f"{trades.height:,} trades, {quotes.height:,} quotes, {args.symbols} symbols")
    whole = chunked = None
    today = engine = 0.0
    if args.only in ("both", "today"):
        print("today's stages, whole input:")
        start = len(rows)
        whole = whole_stages(trades, quotes, options, signing, rows)
        today = sum(r[1] for r in rows[start:])
    if args.only in ("both", "engine"):
        print("engine trade pass:")
        start = len(rows)
        chunked = engine_pass(trades, quotes, options, signing, rows)
        engine = sum(r[1] for r in rows[start:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"today's trade stages: {today:.2f} CPU-s; engine trade pass: {engine:.2f} CPU-s")
    same = True
    if whole is not None and chunked is not None:
        totals = [pl.col("trades").sum(), pl.col("volume").sum(), pl.col("net_flow").sum()]
        left, right = whole.select(totals).row(0), chunked.select(totals).row(0)
        same = left[0] == right[0] and all(
            abs(a - b) <= 1e-9 * max(1.0, abs(a)) for a, b in zip(left[1:], right[1:], strict=True)
        )
        print(f"ratio {today / engine:.2f}x; totals agree: {same}")
    print(f"peak RSS {peak:.2f} GB")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
