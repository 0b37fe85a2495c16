"""Where `mmflow analyze`'s CPU goes: stage timings of one in-process run (not a test).

Runs the command line in this process (``mmflow analyze TRADES QUOTES --method lee-ready --bar
1m -o OUT``, as ``benchmarks/bench.py`` does) with CPU-time (``time.process_time``: user +
system of every thread) and wall-time accumulators wrapped around the engine's stages:

* ``census``: pass 1 (:func:`mmflow.engine.census.take_census`);
* ``chunks (all)``: every ``run_chunk``; inside it ``read trades+`` is what the stages below
  leave (the chunk's trade read, the sort check, joining the bar tables);
* ``read quotes``: a chunk's quotes and their context (``_chunk_quotes``);
* ``grid``: the chunk's bar grid (``chunk_grid``);
* ``trade pass`` / ``quote pass``: ``trade_partials`` / ``quote_partials``;
* ``finish market`` / ``finish analysis``: the cross-bar metrics, phases, value areas;
* ``rest``: everything else (imports excluded: reading the files' schemas, the row account,
  preparing the plans, assembling the bars, writing the output).

Usage::

    python benchmarks/stages.py /tmp/bench-data-speed/10M/trades.parquet \\
        /tmp/bench-data-speed/10M/quotes.parquet [-- extra analyze options]

CPU time is the honest measure on a shared machine (wall time includes waiting for cores).
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Timings = dict[str, list[float]]


def _timed(name: str, timings: Timings, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            entry = timings.setdefault(name, [0.0, 0.0, 0.0])
            entry[0] += time.process_time() - cpu
            entry[1] += time.perf_counter() - wall
            entry[2] += 1

    return wrapper


@contextmanager
def instrumented(timings: Timings) -> Iterator[None]:
    """Wrap the engine's stages with accumulators (restored at the end)."""
    import mmflow.engine.market as market
    import mmflow.engine.run as run

    patches: list[tuple[Any, str, Any]] = []

    def patch(module: Any, attribute: str, name: str) -> None:
        original = getattr(module, attribute)
        patches.append((module, attribute, original))
        setattr(module, attribute, _timed(name, timings, original))

    patch(run, "take_census", "census")
    patch(run, "plan_chunks", "plan")
    patch(run, "chunk_quotes", "read quotes")
    patch(run, "chunk_trades", "read trades")
    patch(run, "chunk_grid", "grid")
    patch(run, "finish_market", "finish market")
    patch(market, "finish_analysis", "finish analysis")
    trade_seam, quote_seam = run._trade_partials(), run._quote_partials()
    timed_trades = _timed("trade pass", timings, trade_seam)
    timed_quotes = _timed("quote pass", timings, quote_seam)
    patches.append((run, "_trade_partials", run._trade_partials))
    patches.append((run, "_quote_partials", run._quote_partials))
    run._trade_partials = lambda: timed_trades
    run._quote_partials = lambda: timed_quotes
    patch(run, "run_chunk", "chunks (all)")
    try:
        yield
    finally:
        for module, attribute, original in reversed(patches):
            setattr(module, attribute, original)


INSIDE_CHUNKS = (
    "chunks (all)",
    "read quotes",
    "grid",
    "trade pass",
    "quote pass",
    "read trades",
    "  read trades+",
)
"""Stages inside ``run_chunk`` (``read trades+``: the rest of it: the trade read, joins)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("trades", type=Path)
    parser.add_argument("quotes", type=Path)
    parser.add_argument("extra", nargs="*", help="more analyze options (after --)")
    arguments = parser.parse_args(argv)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    from mmflow.cli import cli

    cli.load_commands("analyze")  # the group imports a command's module when it runs
    imported_cpu = time.process_time() - start_cpu
    timings: Timings = {}
    with tempfile.TemporaryDirectory() as folder, instrumented(timings):
        argv_cli = [
            "analyze",
            str(arguments.trades),
            str(arguments.quotes),
            "--method",
            "lee-ready",
            "--bar",
            "1m",
            "-o",
            str(Path(folder) / "bars.parquet"),
            *arguments.extra,
        ]
        run_cpu, run_wall = time.process_time(), time.perf_counter()
        try:
            cli.main(argv_cli, standalone_mode=False)
        finally:
            total_cpu = time.process_time() - run_cpu
            total_wall = time.perf_counter() - run_wall
    staged = sum(entry[0] for name, entry in timings.items() if name not in INSIDE_CHUNKS[1:])
    if "chunks (all)" in timings:
        inside = sum(timings[name][0] for name in INSIDE_CHUNKS[1:] if name in timings)
        timings["  read trades+"] = [timings["chunks (all)"][0] - inside, 0.0, 0.0]
    print(f"{'stage':<16} {'CPU s':>7} {'wall s':>7} {'calls':>5}")
    print(f"{'imports':<16} {imported_cpu:7.2f} {'':>7} {'':>5}")
    for name, (cpu, wall, calls) in timings.items():
        print(f"{name:<16} {cpu:7.2f} {wall:7.2f} {int(calls):5d}")
    print(f"{'rest':<16} {total_cpu - staged:7.2f}")
    print(f"{'total (run)':<16} {total_cpu:7.2f} {total_wall:7.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"peak RSS {peak:.2f} GiB; all {time.process_time() - start_cpu:.2f} CPU-s, "
        f"{time.perf_counter() - start_wall:.2f} s wall",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
