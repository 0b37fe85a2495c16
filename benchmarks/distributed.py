"""Measure ``analyze --incremental`` locally and on a local 2-worker Dask cluster (issue 14).

Not a test. Generates a converted dataset (``--symbols`` symbols × ``--days`` days,
``--rows`` / 2 to ``--rows`` trades and as many quotes per symbol and day, around the clock)
with ``mmflow convert``'s library function, then runs, each in a fresh subprocess
(interpreter start-up and imports included, wall time and the child's CPU time from
``os.wait4``):

1. ``analyze DATASET -o RESULTS/ --incremental`` with ``--executor local`` (a first, full run);
2. the same with ``--executor dask --workers 2`` into another folder (cluster start included);
3. the unchanged re-run (a no-op);
4. one more day appended, then the incremental run (local);
5. per-partition overhead: a dataset of many tiny partitions (``--tiny-days`` days × 1 symbol ×
   25-50 rows), full run local and on Dask, divided by the number of chunk tasks.

Usage: ``python benchmarks/distributed.py [--rows N] [--days N] [--symbols N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmflow.convert import convert  # noqa: E402
from mmflow.schema import QUOTES, TRADES  # noqa: E402
from tests.market_days import market_days  # noqa: E402


def write(dataset: Path, *, seed: int, first_day: int, days: int, symbols: int, rows: int) -> None:
    names = tuple(f"S{index:03d}" for index in range(symbols))
    for day in range(first_day, first_day + days):  # a day at a time: bounded memory
        trades, quotes = market_days(seed, first_day=day, days=1, symbols=names, rows=rows)
        convert([(TRADES, trades.lazy()), (QUOTES, quotes.lazy())], dataset, overwrite=True)


def timed(*args: str) -> tuple[float, float, str]:
    """Run ``mmflow ARGS`` in a child; return wall seconds, CPU seconds and its stderr."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mmflow", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        msg = f"mmflow {' '.join(args)} failed:\n{stderr}"
        raise SystemExit(msg)
    return wall, usage.ru_utime + usage.ru_stime, stderr.strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--tiny-days", type=int, default=60)
    parser.add_argument("--keep", type=Path)
    arguments = parser.parse_args()
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="mmflow-distributed-"))
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "dataset"
    shutil.rmtree(folder / "dataset", ignore_errors=True)
    for name in ("local", "dask", "tiny-local", "tiny-dask", "tiny"):
        shutil.rmtree(folder / name, ignore_errors=True)
    write(
        dataset,
        seed=1,
        first_day=0,
        days=arguments.days,
        symbols=arguments.symbols,
        rows=arguments.rows,
    )
    partitions = arguments.days * arguments.symbols
    rows = sum(1 for _ in dataset.rglob("*.parquet"))
    print(
        f"dataset: {arguments.symbols} symbols x {arguments.days} days ({partitions} "
        f"partitions, {rows} files, {arguments.rows // 2:,}-{arguments.rows:,} trades and "
        "as many quotes per symbol and day)"
    )
    rows_out = []
    local = timed("analyze", str(dataset), "-o", str(folder / "local"), "--incremental")
    rows_out.append(("full run, --executor local", local))
    dask = timed(
        "analyze",
        str(dataset),
        "-o",
        str(folder / "dask"),
        "--incremental",
        "--executor",
        "dask",
        "--workers",
        "2",
    )
    rows_out.append(("full run, --executor dask --workers 2", dask))
    rows_out.append(
        (
            "unchanged re-run",
            timed("analyze", str(dataset), "-o", str(folder / "local"), "--incremental"),
        )
    )
    write(
        dataset,
        seed=1,
        first_day=arguments.days,
        days=1,
        symbols=arguments.symbols,
        rows=arguments.rows,
    )
    rows_out.append(
        (
            "one day appended, --executor local",
            timed("analyze", str(dataset), "-o", str(folder / "local"), "--incremental"),
        )
    )
    tiny = folder / "tiny"
    write(tiny, seed=2, first_day=0, days=arguments.tiny_days, symbols=1, rows=50)
    for label, extra in (("local", []), ("dask", ["--executor", "dask", "--workers", "2"])):
        result = timed(
            "analyze", str(tiny), "-o", str(folder / f"tiny-{label}"), "--incremental", *extra
        )
        rows_out.append((f"{arguments.tiny_days} tiny partitions, {label}", result))
    print(f"{'job':45} {'wall s':>8} {'CPU s':>8}  note")
    for label, (wall, cpu, note) in rows_out:
        print(f"{label:45} {wall:8.2f} {cpu:8.2f}  {note}")
    if arguments.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
