"""Time the engine's quote pass against today's quote-bars stage (not a test).

Generates N quotes (and N trades, for the bar grid) with ``benchmarks/bench.py``'s generator,
writes the quotes per instrument and the grid (every bar of each day holding a trade or a quote,
as ``market_bars`` makes it) as parquet, then in a fresh subprocess per run, ``--repeat`` times:

* ``today``: :func:`mmflow.metrics.ofi.quote_bars` on all quotes with the grid (the stage
  ``market_bars`` runs; ``benchmarks/kernels.py``'s ``quote_bars`` kernel);
* ``engine``: :func:`mmflow.engine.quotes.quote_partials` per instrument × day chunk, chaining
  the carry with :func:`mmflow.engine.quotes.carry_after` (what the chunk tasks run).

Reading the inputs is not timed (each mode reads its own layout first). Reports the min wall
and the min CPU time (user + system, all threads) of the timed part. On a machine shared with
other work, CPU time is the number to trust. ``--check`` first compares the two (counts and
nulls identical; prints the largest float difference per column).

Usage::

    python benchmarks/engine_quotes.py --rows 10000000 --symbols 4 --repeat 3 --check
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

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import generate

EVERY = "1m"
MAX_AGE = "1m"
DAY_NS = 86_400 * 1_000_000_000


def prepare(rows: int, symbols: int, directory: Path) -> None:
    """Write the quotes (all, and one file per symbol) and the bar grid."""
    from mmflow.metrics.flow import event_grid

    written = generate(rows, symbols, 7, directory, csv=False)
    assert written.trades is not None
    assert written.quotes is not None
    quotes = pl.read_parquet(written.quotes)
    for (symbol,), frame in quotes.partition_by(
        "symbol", as_dict=True, maintain_order=True
    ).items():
        frame.write_parquet(directory / f"quotes-{symbol}.parquet")
    events = pl.concat(
        [
            pl.scan_parquet(written.trades).select("symbol", "ts"),
            quotes.lazy().select("symbol", "ts"),
        ]
    )
    event_grid(events, every=EVERY).collect().write_parquet(directory / "grid.parquet")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_today(directory: Path) -> tuple[float, float, int]:
    """Today's stage: quote_bars over all quotes on the grid."""
    from mmflow.metrics.ofi import quote_bars

    quotes = pl.read_parquet(directory / "quotes.parquet")
    grid = pl.read_parquet(directory / "grid.parquet")
    plan = quote_bars(quotes.lazy(), every=EVERY, grid=grid.lazy(), max_age=MAX_AGE)
    cpu, started = _cpu(), time.perf_counter()
    out = plan.collect()
    return time.perf_counter() - started, _cpu() - cpu, out.height


def run_engine(directory: Path) -> tuple[float, float, int]:
    """The engine's quote pass: quote_partials per instrument × day, carry chained."""
    wall, cpu, out = _engine(directory)
    return wall, cpu, out.height


def check(directory: Path) -> None:
    """Print how far the engine's bars are from today's (counts must be identical)."""
    from mmflow.metrics.ofi import quote_bars

    quotes = pl.read_parquet(directory / "quotes.parquet")
    grid = pl.read_parquet(directory / "grid.parquet")
    today = quote_bars(quotes.lazy(), every=EVERY, grid=grid.lazy(), max_age=MAX_AGE).collect()
    engine = _engine(directory)[2].sort("symbol", "ts")
    today = today.sort("symbol", "ts")
    assert engine.select("symbol", "ts").equals(today.select("symbol", "ts"))
    for name in ("quote_events", "crossed_quotes"):
        assert engine[name].equals(today[name]), name
    for name in ("ofi", "ofi_normalized", "mid_close", "spread", "depth", "quote_imbalance"):
        assert engine[name].is_null().equals(today[name].is_null()), name
        scale = float(today[name].abs().max() or 0.0)  # type: ignore[arg-type]
        worst = float((engine[name] - today[name]).abs().max() or 0.0)  # type: ignore[arg-type]
        print(f"# {name}: largest difference {worst:.3g} (column scale {scale:.3g})")


def _engine(directory: Path) -> tuple[float, float, pl.DataFrame]:
    from mmflow.analysis import BarOptions, Signing
    from mmflow.durations import duration_nanoseconds
    from mmflow.engine.quotes import QuoteCarry, carry_after, quote_partials
    from mmflow.engine.state import Chunk, EngineSettings

    every_ns = duration_nanoseconds(EVERY, what="every")
    settings = EngineSettings(
        options=BarOptions(every=EVERY),
        signing=Signing(max_quote_age=MAX_AGE),
        keys=("symbol",),
        session=False,
        has_quotes=True,
        every_ns=every_ns,
        horizon_ns=0,
        lag_ns=0,
        max_quote_age_ns=duration_nanoseconds(MAX_AGE, what="max_age"),
        memory_limit=1 << 31,
    )
    grid = pl.read_parquet(directory / "grid.parquet").with_columns(
        pl.col("ts").dt.epoch("ns").alias("ns")
    )
    per_symbol = {
        path.stem.removeprefix("quotes-"): pl.read_parquet(path)
        for path in sorted(directory.glob("quotes-*.parquet"))
    }
    cpu, started = _cpu(), time.perf_counter()
    parts = []
    for symbol, quotes in per_symbol.items():
        ns = quotes.get_column("ts").dt.epoch("ns")
        first_day, last_day = int(ns[0]) // DAY_NS, int(ns[-1]) // DAY_NS
        bars = grid.filter(pl.col("symbol") == symbol)
        carry = QuoteCarry()
        for day in range(first_day, last_day + 1):
            chunk = Chunk(symbol=symbol, venue=None, start=day * DAY_NS, end=(day + 1) * DAY_NS)
            starts = bars.filter(pl.col("ns").is_between(chunk.start, chunk.end, closed="left"))
            out = quote_partials(
                quotes,
                chunk,
                starts.get_column("ts"),
                settings,
                carry=carry,
                quotes_after=day < last_day,
            )
            carry = carry_after(quotes, chunk, carry)
            parts.append(out)
    return time.perf_counter() - started, _cpu() - cpu, pl.concat(parts)


MODES = {"today": run_today, "engine": run_engine}


def main() -> None:
    """Parse the options, prepare the data and print a table of timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", action="append", help="modes to time (default: all)")
    parser.add_argument("--data", type=Path, help="a directory of prepared inputs to reuse")
    parser.add_argument("--check", action="store_true", help="compare engine and today first")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.run:
        timed = MODES[options.run](options.data)
        print(f"{timed[0]:.3f} {timed[1]:.3f} {timed[2]}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = options.data or Path(scratch)
        if not (directory / "grid.parquet").exists():
            directory.mkdir(parents=True, exist_ok=True)
            prepare(options.rows, options.symbols, directory)
        rows = pl.scan_parquet(directory / "quotes.parquet").select(pl.len()).collect().item()
        print(
            f"# {rows:,} quotes; {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, polars {pl.__version__}"
        )
        if options.check:
            check(directory)
        print("| quote pass | wall s (min) | CPU s (min) | bars out |")
        print("|---|---|---|---|")
        for mode in options.mode or list(MODES):
            results = []
            for _ in range(options.repeat):
                done = subprocess.run(
                    [sys.executable, __file__, "--run", mode, "--data", str(directory)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                wall_text, cpu_text, height_text = done.stdout.split()
                results.append((float(wall_text), float(cpu_text), int(height_text)))
            wall_min = min(r[0] for r in results)
            cpu_min = min(r[1] for r in results)
            print(f"| {mode} | {wall_min:.2f} | {cpu_min:.2f} | {results[0][2]:,} |", flush=True)


if __name__ == "__main__":
    main()
