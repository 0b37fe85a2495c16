"""Time each metric kernel alone on generated data (not a test).

Generates N trades and N quotes (the data of ``benchmarks/bench.py``), prepares the kernels'
inputs once (signed trades with the prevailing mid, trading costs, the bar grid) as parquet
files, then collects each kernel in a fresh subprocess, ``--repeat`` times, and reports the min
wall time and the min CPU time (user + system of the subprocess, all threads) of the collect
alone; reading the inputs is not timed. On a machine shared with other work, CPU time is the
number to trust.

Usage::

    python benchmarks/kernels.py --rows 10000000 --symbols 4 --repeat 3
    python benchmarks/kernels.py --kernel quote_bars --kernel vpin

``PYTHONPATH=/some/old/checkout`` times another version of ``mmflow`` on the same data
(``--data`` reuses a directory of prepared inputs).
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
from collections.abc import Callable
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import generate

EVERY = "1m"


def _kernels() -> dict[str, Callable[[Path], pl.LazyFrame]]:
    from mmflow.metrics.flow import flow_bars
    from mmflow.metrics.impact import cost_bars, roll_spread, trade_costs
    from mmflow.metrics.ofi import quote_bars
    from mmflow.metrics.vpin import vpin_at, vpin_buckets

    def read(directory: Path, name: str) -> pl.LazyFrame:
        return pl.read_parquet(directory / f"{name}.parquet").lazy()

    def vpin_unchecked_kernel(directory: Path) -> pl.LazyFrame:
        buckets = vpin_buckets(read(directory, "signed"), buckets_per_day=50, window=50)
        return vpin_at(read(directory, "grid"), buckets, every=EVERY)

    def quote_bars_kernel(directory: Path) -> pl.LazyFrame:
        return quote_bars(read(directory, "quotes"), every=EVERY, grid=read(directory, "grid"))

    def trade_costs_kernel(directory: Path) -> pl.LazyFrame:
        return trade_costs(read(directory, "signed"), read(directory, "quotes"), horizon="5m")

    def vpin_kernel(directory: Path) -> pl.LazyFrame:
        signed = read(directory, "signed")
        buckets = vpin_buckets(signed, buckets_per_day=50, window=50, max_buckets=10_000_000)
        return vpin_at(read(directory, "grid"), buckets, every=EVERY)

    return {
        "quote_bars": quote_bars_kernel,
        "trade_costs": trade_costs_kernel,
        "cost_bars": lambda d: cost_bars(read(d, "costs"), every=EVERY),
        "flow_bars": lambda d: flow_bars(read(d, "signed"), every=EVERY, grid=read(d, "grid")),
        "roll_spread": lambda d: roll_spread(read(d, "signed"), every=EVERY),
        "vpin": vpin_kernel,
        "vpin_unchecked": vpin_unchecked_kernel,
    }


def prepare(rows: int, symbols: int, directory: Path) -> None:
    """Write the kernels' inputs: quotes, signed trades, costs and the bar grid."""
    from mmflow.metrics.flow import event_grid
    from mmflow.metrics.impact import trade_costs
    from mmflow.metrics.quotes import attach_quotes

    written = generate(rows, symbols, 7, directory, csv=False)
    trades_path, quotes_path = written.trades, written.quotes
    assert trades_path is not None
    assert quotes_path is not None
    quotes = pl.scan_parquet(quotes_path)
    signed = attach_quotes(
        pl.scan_parquet(trades_path).with_columns(
            pl.col("aggressor_side").fill_null(0).alias("trade_sign")
        ),
        quotes,
    ).collect()
    signed.write_parquet(directory / "signed.parquet")
    trade_costs(signed.lazy(), quotes, horizon="5m").collect().write_parquet(
        directory / "costs.parquet"
    )
    events = pl.concat([signed.lazy().select("symbol", "ts"), quotes.select("symbol", "ts")])
    event_grid(events, every=EVERY).collect().write_parquet(directory / "grid.parquet")


def run(kernel: str, directory: Path) -> None:
    """Collect one kernel in this process and print its wall and CPU seconds."""
    plan = _kernels()[kernel](directory)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    out = plan.collect()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"{wall:.3f} {cpu:.3f} {out.height}")


def main() -> None:
    """Parse the options, prepare the data and print a table of per-kernel timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel", action="append", help="kernels to time (default: all)")
    parser.add_argument("--data", type=Path, help="a directory of prepared inputs to reuse")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.run:
        run(options.run, options.data)
        return
    names = options.kernel or list(_kernels())
    with tempfile.TemporaryDirectory() as scratch:
        directory = options.data or Path(scratch)
        if not (directory / "grid.parquet").exists():
            directory.mkdir(parents=True, exist_ok=True)
            prepare(options.rows, options.symbols, directory)
        rows = pl.scan_parquet(directory / "quotes.parquet").select(pl.len()).collect().item()
        print(
            f"# {rows:,} trades + {rows:,} quotes; {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, polars {pl.__version__}"
        )
        print("| kernel | wall s (min) | CPU s (min) | rows out |")
        print("|---|---|---|---|")
        for name in names:
            results = []
            for _ in range(options.repeat):
                done = subprocess.run(
                    [sys.executable, __file__, "--run", name, "--data", str(directory)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                wall, cpu, height = done.stdout.split()
                results.append((float(wall), float(cpu), int(height)))
            wall_min = min(r[0] for r in results)
            cpu_min = min(r[1] for r in results)
            print(f"| {name} | {wall_min:.2f} | {cpu_min:.2f} | {results[0][2]:,} |", flush=True)


if __name__ == "__main__":
    main()
