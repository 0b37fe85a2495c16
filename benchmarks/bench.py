"""Benchmark mmflow on a generated day of trades and quotes (not a test).

Generates N trades and N quotes over one day for a few symbols (a random walk of mid prices,
quotes around them, trades at the bid or the ask with a known aggressor side), writes them as
canonical parquet files, then times each stage in a fresh subprocess and reports rows per second
and the subprocess's peak resident memory:

* ``sign``: Lee-Ready signing of every trade against the quotes (``sign_method`` counts);
* ``phases``: ``mmflow phases`` (bars and episodes) on a simulated day of about a million
  trades, two symbols (its own data, not the generated one);
* ``analyze``: the whole ``mmflow analyze`` job (summary and 1-minute bars with flow, OFI,
  VPIN, costs, inventory and phases), collected as the command collects it.

Usage::

    python benchmarks/bench.py --rows 10000000 --symbols 4

The numbers in the README come from this script; it prints the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

DAY_NS = 86_400 * 1_000_000_000
START_NS = 1_719_792_000 * 1_000_000_000  # 2024-07-01T00:00:00Z


def generate(rows: int, symbols: int, seed: int, directory: Path) -> tuple[Path, Path]:
    """Write ``trades.parquet`` and ``quotes.parquet`` with ``rows`` rows each."""
    rng = np.random.default_rng(seed)
    names = np.array([f"SYM{i}" for i in range(symbols)])

    def clock() -> np.ndarray:
        return START_NS + np.sort(rng.integers(0, DAY_NS, rows))

    quote_ts = clock()
    quote_symbol = names[rng.integers(0, symbols, rows)]
    mid = 100.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], rows))
    half = 0.005 + 0.01 * rng.integers(0, 2, rows)
    quotes = pl.DataFrame(
        {
            "ts": quote_ts,
            "symbol": quote_symbol,
            "bid_price": np.round(mid - half, 3),
            "bid_size": rng.integers(1, 50, rows).astype(float),
            "ask_price": np.round(mid + half, 3),
            "ask_size": rng.integers(1, 50, rows).astype(float),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    trade_ts = clock()
    side = rng.choice(np.array([-1, 1], dtype=np.int8), rows)
    position = np.clip(np.searchsorted(quote_ts, trade_ts) - 1, 0, rows - 1)
    price = np.where(
        side > 0, quotes["ask_price"].to_numpy()[position], quotes["bid_price"].to_numpy()[position]
    )
    trades = pl.DataFrame(
        {
            "ts": trade_ts,
            "symbol": quote_symbol[position],
            "price": price,
            "size": rng.integers(1, 10, rows).astype(float),
            "aggressor_side": side,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    trades_path, quotes_path = directory / "trades.parquet", directory / "quotes.parquet"
    trades.write_parquet(trades_path)
    quotes.write_parquet(quotes_path)
    return trades_path, quotes_path


def stage(name: str, trades: Path, quotes: Path) -> None:
    """Run one stage in this process (called in a subprocess by :func:`main`)."""
    import mmflow.io
    from mmflow.analysis import Selection, analyze, prepare
    from mmflow.io.assemble import gather
    from mmflow.metrics.signing import method_mix, sign_trades
    from mmflow.schema import QUOTES, TRADES

    inputs = mmflow.io.load([str(trades), str(quotes)])
    trade_frame = gather(inputs, TRADES)
    quote_frame = gather(inputs, QUOTES)
    assert trade_frame is not None
    assert quote_frame is not None
    started = time.perf_counter()
    if name == "phases":
        from mmflow.analysis import phases
        from mmflow.simulate import SimulationParameters, simulate

        simulation = simulate(
            SimulationParameters(seed=101, symbols=("SIMA", "SIMB"), trades_per_hour=22_000)
        )
        started = time.perf_counter()
        result = phases(
            simulation.trades.lazy(), simulation.quotes.lazy(), materialize=pl.collect_all
        )
        bars, episodes = pl.collect_all([result.bars, result.episodes])
        print(simulation.trades.height, bars.height, episodes.height, file=sys.stderr)
        rows = simulation.trades.height
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{time.perf_counter() - started:.3f} {peak_kib} {rows}")
        return
    if name == "sign":
        selection = Selection()
        signed = sign_trades(
            prepare(trade_frame, TRADES, selection),
            prepare(quote_frame, QUOTES, selection),
            method="lee-ready",
        )
        mix = method_mix(signed).collect(engine="streaming")
        print(mix, file=sys.stderr)
    else:
        analysis = analyze(trade_frame, quote_frame, every="1m", materialize=pl.collect_all)
        summary, bars = pl.collect_all([analysis.summary, analysis.bars])
        print(summary, bars.height, file=sys.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{time.perf_counter() - started:.3f} {peak_kib}")


def main() -> None:
    """Generate the data, then time each stage in its own subprocess."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="trades (and quotes)")
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stage", choices=["sign", "analyze", "phases"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        stage(args.stage, args.data / "trades.parquet", args.data / "quotes.parquet")
        return
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, polars {pl.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="mmflow-bench-") as folder:
        directory = Path(folder)
        started = time.perf_counter()
        generate(args.rows, args.symbols, args.seed, directory)
        elapsed = time.perf_counter() - started
        print(f"generated {args.rows:,} trades + {args.rows:,} quotes in {elapsed:.1f} s")
        for name in ("sign", "analyze", "phases"):
            run = subprocess.run(
                [sys.executable, __file__, "--stage", name, "--data", str(directory)],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds_text, peak_kib, *rows_text = run.stdout.strip().splitlines()[-1].split()
            seconds = float(seconds_text)
            rows = int(rows_text[0]) if rows_text else args.rows
            print(
                f"{name:8s} {seconds:7.2f} s  {rows / seconds:>14,.0f} trades/s  "
                f"peak RSS {int(peak_kib) / 1024:,.0f} MiB (whole process, data loaded lazily)"
            )


if __name__ == "__main__":
    main()
