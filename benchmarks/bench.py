"""Benchmark mmflow against the I/O floor and a hand-written pandas pipeline (not a test).

For each size it generates N trades and N quotes for a few symbols (a random walk of mid prices,
quotes around it, trades at the bid or the ask of the prevailing quote with a known aggressor
side), day by day with at most ``--rows-per-day`` (10 M) of each per day, so that 30 M is three
days and the generator's memory is bounded by one day. It writes them as canonical parquet files
and, unless ``--no-csv``, as CSV files with the same rows, then runs three jobs on the same
files, each in a fresh subprocess:

* **mmflow analyze**: the whole job as the CLI runs it (``python -m mmflow analyze TRADES QUOTES
  --method lee-ready -o bars.parquet``): signing, 1-minute bars with flow, CVD, OFI, VPIN, costs,
  impact, inventory and phases, the summary with value areas, the bar table written to parquet;
* **I/O floor**: polars reading the columns analyze needs from the same files (no computation);
* **pandas core**: a hand-written pandas pipeline of the core, written plainly as an analyst would
  (:func:`pandas_bars`): ``pd.merge_asof`` of each trade to the prevailing quote strictly before
  it per symbol, Lee-Ready signs (quote rule against the mid, tick rule at the mid or without a
  quote), 1-minute bars per symbol with volume, buy, sell and net flow, CVD, and OFI per bar from
  Cont-Kukanov-Stoikov best bid/ask changes, the bar table written to parquet.

Each job is measured from outside: wall time, CPU time (user + system of the child, from
``os.wait4``) and the child's peak resident memory (``ru_maxrss``). Interpreter start-up and
imports are part of every job. The pandas pipeline does far less than ``analyze`` (no VPIN,
costs, impact, inventory or phases, no crossed or empty quotes handling); it is the measuring
stick of issue 11, not a like-for-like port.

The pandas and mmflow bar tables are checked against each other (per-symbol buy volume, sell
volume and OFI totals, and every bar's net flow, CVD and OFI), so the comparison is fair: both
compute the same core numbers. The CSV run of analyze is checked against the parquet run.

With ``--commands`` (on by default) ``flow``, ``inventory``, ``phases``, ``profile`` and
``classify`` also run on the parquet input of one size (10 M if measured), reported as ratios to
``analyze`` (issue 11's target: within 1.2×).

``--slow`` adds 100 M trades + 100 M quotes, written day by day as a converted dataset
(``DIR/symbol=…/date=…/trades.parquet``, ``quotes.parquet``, the layout ``mmflow convert``
writes) so that the generator's own memory stays bounded; only mmflow and the I/O floor run on it
(pandas would need to hold everything in memory; CSV would be ~15 GB).

pandas is an optional extra: ``pip install -c constraints.txt -e '.[bench]'``. Without it the
pandas rows are skipped with a message.

Usage::

    python benchmarks/bench.py                        # 1 M, 10 M and 30 M, parquet and CSV
    python benchmarks/bench.py --sizes 1M,10M --repeat 2   # what the README table shows
    python benchmarks/bench.py --sizes 10M --no-csv --no-commands
    python benchmarks/bench.py --slow                 # adds 100 M via a converted dataset

``--memory-limit GIB`` caps each child's address space (a job over it is reported as failed);
``--data DIR`` keeps the generated files and reuses them on the next run.

It prints the machine (CPU, cores, memory, load), the versions, one line per job as it finishes,
the pandas-vs-mmflow checks, and markdown tables to paste into the README (``--markdown FILE``
also writes them to a file).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import pandas as pd

DAY_NS = 86_400 * 1_000_000_000
START_NS = 1_719_792_000 * 1_000_000_000  # 2024-07-01T00:00:00Z
DEFAULT_SIZES = (1_000_000, 10_000_000, 30_000_000)
SLOW_SIZE = 100_000_000
DATASET_FROM = 100_000_000  # from this size on, the input is a converted dataset, parquet only
BAR = "1m"
METHOD = "lee-ready"  # both mmflow and the pandas pipeline sign by Lee-Ready, not by the vendor
COMMANDS = ("flow", "inventory", "phases", "profile", "classify")
PANDAS_HINT = "pip install -c constraints.txt -e '.[bench]'"
TRADE_COLUMNS: tuple[str, ...] = ("ts", "symbol", "price", "size", "aggressor_side")
QUOTE_COLUMNS: tuple[str, ...] = ("ts", "symbol", "bid_price", "bid_size", "ask_price", "ask_size")

InputFormat = Literal["parquet", "csv", "dataset"]


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Inputs:
    """Where one size's generated data lives, in each layout written."""

    rows: int
    trades: Path | None  # single files (parquet)
    quotes: Path | None
    trades_csv: Path | None
    quotes_csv: Path | None
    dataset: Path | None  # converted layout DIR/symbol=…/date=…/

    def files(self, fmt: InputFormat) -> list[Path]:
        """Return the paths to give mmflow for ``fmt``."""
        if fmt == "dataset":
            assert self.dataset is not None
            return [self.dataset]
        pair = (
            (self.trades, self.quotes) if fmt == "parquet" else (self.trades_csv, self.quotes_csv)
        )
        assert pair[0] is not None
        assert pair[1] is not None
        return [pair[0], pair[1]]


def day_rows(rows: int, rows_per_day: int) -> list[int]:
    """Split ``rows`` into days of at most ``rows_per_day`` rows, as evenly as possible.

    >>> day_rows(25, 10)
    [9, 8, 8]
    """
    days = max(1, math.ceil(rows / rows_per_day))
    base, extra = divmod(rows, days)
    return [base + (1 if day < extra else 0) for day in range(days)]


def generate_day(
    rng: np.random.Generator,
    rows: int,
    symbols: int,
    start_ns: int,
    span_ns: int,
    mid_start: float,
) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """Generate one day: ``rows`` quotes and ``rows`` trades within ``span_ns`` of ``start_ns``.

    Returns the trades, the quotes (both sorted by ``ts``) and the last mid, to continue the walk.
    """
    names = np.array([f"SYM{i}" for i in range(symbols)])

    def clock() -> np.ndarray:
        return start_ns + np.sort(rng.integers(0, span_ns, rows))

    quote_ts = clock()
    quote_symbol = names[rng.integers(0, symbols, rows)]
    mid = mid_start + np.cumsum(rng.choice([-0.01, 0.0, 0.01], rows))
    half = 0.005 + 0.01 * rng.integers(0, 2, rows)
    bid, ask = np.round(mid - half, 3), np.round(mid + half, 3)
    quotes = pl.DataFrame(
        {
            "ts": quote_ts,
            "symbol": quote_symbol,
            "bid_price": bid,
            "bid_size": rng.integers(1, 50, rows).astype(float),
            "ask_price": ask,
            "ask_size": rng.integers(1, 50, rows).astype(float),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    trade_ts = clock()
    side = rng.choice(np.array([-1, 1], dtype=np.int8), rows)
    # the quote prevailing strictly before each trade; the trade takes its symbol and its price
    position = np.clip(np.searchsorted(quote_ts, trade_ts) - 1, 0, rows - 1)
    trades = pl.DataFrame(
        {
            "ts": trade_ts,
            "symbol": quote_symbol[position],
            "price": np.where(side > 0, ask[position], bid[position]),
            "size": rng.integers(1, 10, rows).astype(float),
            "aggressor_side": side,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    return trades, quotes, float(mid[-1])


def generate(
    rows: int,
    symbols: int,
    seed: int,
    directory: Path,
    *,
    rows_per_day: int = 10_000_000,
    span_ns: int = DAY_NS,
    csv: bool = True,
    dataset: bool = False,
) -> Inputs:
    """Write ``rows`` trades and ``rows`` quotes, day by day (memory bounded by one day).

    Without ``dataset``: ``trades.parquet`` and ``quotes.parquet`` (one row group series per
    day), and with ``csv`` the same rows as ``trades.csv`` and ``quotes.csv``. With ``dataset``:
    the converted layout ``DIR/dataset/symbol=…/date=…/{trades,quotes}.parquet`` (the partition
    columns are not repeated inside the files, as ``mmflow convert`` writes them).
    """
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Any] = {}
    csv_handles: dict[str, Any] = {}
    paths = {
        "trades": directory / "trades.parquet",
        "quotes": directory / "quotes.parquet",
        "trades_csv": directory / "trades.csv",
        "quotes_csv": directory / "quotes.csv",
    }
    root = directory / "dataset"
    mid = 100.0
    try:
        for day, count in enumerate(day_rows(rows, rows_per_day)):
            start = START_NS + day * DAY_NS
            trades, quotes, mid = generate_day(rng, count, symbols, start, span_ns, mid)
            for name, frame in (("trades", trades), ("quotes", quotes)):
                if dataset:
                    date = datetime.fromtimestamp(start / 1e9, tz=UTC).date().isoformat()
                    for (symbol,), part in frame.partition_by(
                        "symbol", as_dict=True, maintain_order=True
                    ).items():
                        folder = root / f"symbol={symbol}" / f"date={date}"
                        folder.mkdir(parents=True, exist_ok=True)
                        part.drop("symbol").write_parquet(folder / f"{name}.parquet")
                    continue
                table = frame.to_arrow()
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema)
                writers[name].write_table(table)
                if csv:
                    if name not in csv_handles:
                        csv_handles[name] = paths[f"{name}_csv"].open("wb")
                    frame.write_csv(csv_handles[name], include_header=day == 0)
            del trades, quotes
    finally:
        for writer in writers.values():
            writer.close()
        for handle in csv_handles.values():
            handle.close()
    if dataset:
        return Inputs(rows, None, None, None, None, root)
    return Inputs(
        rows,
        paths["trades"],
        paths["quotes"],
        paths["trades_csv"] if csv else None,
        paths["quotes_csv"] if csv else None,
        None,
    )


def prepared(
    rows: int,
    symbols: int,
    seed: int,
    directory: Path,
    *,
    csv: bool,
    rows_per_day: int,
    dataset_from: int = DATASET_FROM,
) -> tuple[Inputs, float | None]:
    """Generate the data of one size, or reuse what an earlier run left in ``directory``.

    Returns the inputs and the seconds spent generating (None when reused).
    """
    dataset = rows >= dataset_from
    manifest = directory / "manifest.json"
    wanted = {
        "rows": rows,
        "symbols": symbols,
        "seed": seed,
        "rows_per_day": rows_per_day,
        "csv": csv and not dataset,
        "dataset": dataset,
        "generator": 2,
    }
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        root = directory / "dataset"
        if dataset:
            return Inputs(rows, None, None, None, None, root), None
        return Inputs(
            rows,
            directory / "trades.parquet",
            directory / "quotes.parquet",
            directory / "trades.csv" if csv else None,
            directory / "quotes.csv" if csv else None,
            None,
        ), None
    if directory.exists():
        shutil.rmtree(directory)
    started = time.perf_counter()
    inputs = generate(
        rows,
        symbols,
        seed,
        directory,
        rows_per_day=rows_per_day,
        csv=csv and not dataset,
        dataset=dataset,
    )
    manifest.write_text(json.dumps(wanted))
    return inputs, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# The jobs run in the child processes


def read_floor(files: Sequence[Path], fmt: InputFormat) -> int:
    """Read the columns ``analyze`` needs with polars and nothing else; return the row count.

    Timestamps in CSV are parsed to ``Datetime(ns, UTC)`` (every job must parse them).
    """
    frames: list[pl.DataFrame] = []
    if fmt == "dataset":
        (root,) = files
        for name, columns in (("trades", TRADE_COLUMNS), ("quotes", QUOTE_COLUMNS)):
            lazy = pl.scan_parquet(root / "**" / f"{name}.parquet", hive_partitioning=True)
            frames.append(lazy.select(columns).collect())
        return sum(frame.height for frame in frames)
    for path, columns in zip(files, (TRADE_COLUMNS, QUOTE_COLUMNS), strict=True):
        if fmt == "parquet":
            frames.append(pl.read_parquet(path, columns=list(columns)))
        else:
            frames.append(
                pl.scan_csv(path, schema_overrides={"symbol": pl.String})
                .select(columns)
                .with_columns(pl.col("ts").str.to_datetime(time_unit="ns", time_zone="UTC"))
                .collect()
            )
    return sum(frame.height for frame in frames)


def pandas_bars(trades_path: Path, quotes_path: Path, fmt: InputFormat = "parquet") -> pd.DataFrame:
    """The core of analyze, written plainly in pandas: as-of join, Lee-Ready, 1-minute bars.

    * As-of join: each trade gets the latest quote of its symbol strictly before it
      (``pd.merge_asof(..., by="symbol", allow_exact_matches=False)``).
    * Lee-Ready (Lee & Ready 1991, *J. Finance* 46(2):733-746): +1 if price > mid, −1 if
      price < mid; at the mid or without a quote, the tick rule per symbol (the sign of the last
      non-zero price change; 0 before the first one).
    * Bars: 1-minute, left-closed, labelled by their start, per symbol: volume, trades, buy and
      sell volume (by the Lee-Ready sign), net flow = buy − sell, CVD = running sum of net flow.
    * OFI per bar (Cont, Kukanov & Stoikov 2014, *J. Financial Econometrics* 12(1):47-88):
      Σ e_n over the bar's quotes, e_n = 1{Bₙ ≥ Bₙ₋₁} qᴮₙ − 1{Bₙ ≤ Bₙ₋₁} qᴮₙ₋₁
      − 1{Aₙ ≤ Aₙ₋₁} qᴬₙ + 1{Aₙ ≥ Aₙ₋₁} qᴬₙ₋₁ against the symbol's previous quote; a symbol's
      first quote only seeds. Every quote is taken as valid (the generated data has no crossed,
      locked or empty quotes; analyze handles those, this does not).

    Returns
    -------
    pd.DataFrame
        ``symbol, ts, volume, trades, buy_volume, sell_volume, net_flow, cvd, ofi``, one row per
        symbol and minute with trades, sorted by symbol and ``ts``.
    """
    import pandas as pd

    if fmt == "parquet":
        trades = pd.read_parquet(trades_path, columns=["ts", "symbol", "price", "size"])
        quotes = pd.read_parquet(quotes_path, columns=list(QUOTE_COLUMNS))
    else:
        trades = pd.read_csv(
            trades_path, usecols=["ts", "symbol", "price", "size"], engine="pyarrow"
        )
        quotes = pd.read_csv(quotes_path, usecols=list(QUOTE_COLUMNS), engine="pyarrow")
        for frame in (trades, quotes):
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")

    # As-of join: the prevailing quote strictly before each trade, per symbol.
    merged = pd.merge_asof(
        trades,
        quotes[["ts", "symbol", "bid_price", "ask_price"]],
        on="ts",
        by="symbol",
        allow_exact_matches=False,
        direction="backward",
    )

    # Lee-Ready: the quote rule against the mid, else the tick rule per symbol.
    mid = (merged["bid_price"] + merged["ask_price"]) / 2
    quote_sign = np.sign(merged["price"] - mid)  # NaN without a quote, 0 at the mid
    tick = np.sign(merged.groupby("symbol")["price"].diff()).replace(0, np.nan)
    tick = tick.groupby(merged["symbol"]).ffill().fillna(0)
    sign = quote_sign.where(quote_sign.notna() & (quote_sign != 0), tick)

    # 1-minute bars per symbol.
    merged["bar"] = merged["ts"].dt.floor("1min")
    merged["buy"] = merged["size"].where(sign > 0, 0.0)
    merged["sell"] = merged["size"].where(sign < 0, 0.0)
    bars = merged.groupby(["symbol", "bar"]).agg(
        volume=("size", "sum"),
        trades=("size", "size"),
        buy_volume=("buy", "sum"),
        sell_volume=("sell", "sum"),
    )
    bars["net_flow"] = bars["buy_volume"] - bars["sell_volume"]
    bars["cvd"] = bars.groupby(level="symbol")["net_flow"].cumsum()

    # OFI: Cont-Kukanov-Stoikov events against each symbol's previous quote, summed per bar.
    previous = quotes.groupby("symbol")[["bid_price", "bid_size", "ask_price", "ask_size"]].shift()
    bid, bid_size = quotes["bid_price"], quotes["bid_size"]
    ask, ask_size = quotes["ask_price"], quotes["ask_size"]
    event = (
        bid_size.where(bid >= previous["bid_price"], 0.0)
        - previous["bid_size"].where(bid <= previous["bid_price"], 0.0)
        - ask_size.where(ask <= previous["ask_price"], 0.0)
        + previous["ask_size"].where(ask >= previous["ask_price"], 0.0)
    ).where(previous["bid_price"].notna(), 0.0)
    ofi = event.groupby([quotes["symbol"], quotes["ts"].dt.floor("1min").rename("bar")]).sum()
    bars = bars.join(ofi.rename("ofi"), how="left")
    bars["ofi"] = bars["ofi"].fillna(0.0)
    return bars.reset_index().rename(columns={"bar": "ts"})


def child(task: str, files: Sequence[Path], fmt: InputFormat, output: Path | None) -> None:
    """Run one job in this (child) process: ``floor`` or ``pandas``."""
    if task == "floor":
        print(f"read {read_floor(files, fmt):,} rows", file=sys.stderr)
        return
    trades, quotes = files
    bars = pandas_bars(trades, quotes, fmt)
    assert output is not None
    bars.to_parquet(output, index=False)
    print(f"wrote {len(bars):,} bars", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Measured:
    """One job's cost, measured from outside its process."""

    size: int
    fmt: InputFormat
    job: str
    wall: float = math.nan
    cpu: float = math.nan
    peak_bytes: float = math.nan
    load: float = math.nan  # 1-minute load average when the job started
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the job finished with exit code 0."""
        return self.error is None


def measure(
    argv: Sequence[str], size: int, fmt: InputFormat, job: str, log: Path, memory_limit: int | None
) -> Measured:
    """Run ``argv`` in a fresh process; return its wall time, CPU time and peak memory.

    CPU time is the child's user + system time and peak memory its ``ru_maxrss``, both from
    ``os.wait4`` on the child alone. ``memory_limit`` (bytes) caps the child's address space.
    """
    result = Measured(size, fmt, job, load=os.getloadavg()[0])

    def limit() -> None:  # pragma: no cover - runs in the child
        if memory_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    with log.open("ab") as handle:
        handle.write(f"$ {' '.join(argv)}\n".encode())
        handle.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), stdout=subprocess.DEVNULL, stderr=handle, preexec_fn=limit
        )
        _, status, usage = os.wait4(process.pid, 0)
        result.wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    result.cpu = usage.ru_utime + usage.ru_stime
    result.peak_bytes = usage.ru_maxrss * 1024.0  # KiB on Linux
    if process.returncode != 0:
        result.error = f"exit {process.returncode} (see {log})"
    return result


def best_of(
    repeat: int,
    argv: Sequence[str],
    size: int,
    fmt: InputFormat,
    job: str,
    log: Path,
    memory_limit: int | None,
) -> Measured:
    """Run a job ``repeat`` times (stopping at a failure); return the run with the least wall.

    On a shared machine the fastest run is the one least disturbed by other work.
    """
    runs: list[Measured] = []
    for _ in range(repeat):
        runs.append(measure(argv, size, fmt, job, log, memory_limit))
        print(line(runs[-1]), flush=True)
        if not runs[-1].ok:
            return runs[-1]
    return min(runs, key=lambda run: run.wall)


def start_up(with_pandas: bool, log: Path) -> list[str]:
    """Measure the fixed cost every job pays: the interpreter and its imports."""
    probes = {
        "mmflow (python -m mmflow --version)": [sys.executable, "-m", "mmflow", "--version"],
        "polars": [sys.executable, "-c", "import polars"],
    }
    if with_pandas:
        probes["pandas + pyarrow"] = [sys.executable, "-c", "import pandas, pyarrow"]
    parts = []
    for name, argv in probes.items():
        run = measure(argv, 0, "parquet", name, log, None)
        parts.append(f"{name} {run.wall:.2f} s wall / {run.cpu:.2f} s CPU" if run.ok else name)
    return ["start-up included in every job (interpreter + imports): " + "; ".join(parts)]


def mmflow_argv(command: str, files: Sequence[Path], output: Path) -> list[str]:
    """The CLI call for ``command`` on ``files``, writing its table to ``output``."""
    argv = [sys.executable, "-m", "mmflow", command, *map(str, files), "--quiet", "-o", str(output)]
    if command in ("analyze", "flow", "inventory", "phases"):
        argv += ["--bar", BAR]
    return [*argv, "--method", METHOD]


def child_argv(task: str, files: Sequence[Path], fmt: InputFormat, output: Path) -> list[str]:
    """The call of this script that runs ``task`` in a child process."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--task", task, "--format", fmt]
    argv += ["--output", str(output)]
    for path in files:
        argv += ["--file", str(path)]
    return argv


# --------------------------------------------------------------------------------------------
# Checking that pandas and mmflow compute the same core numbers


@dataclass
class Check:
    """The comparison of two bar tables (``symbol, ts, buy_volume, sell_volume, net_flow, …``)."""

    symbols: int
    totals_agree: bool
    bars_left: int
    bars_right: int
    common_bars: int
    worst: dict[str, float] = field(default_factory=dict)  # max |Δ| per column on common bars
    totals: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """Whether the totals agree and every common bar agrees to rounding."""
        return self.totals_agree and all(value <= 1e-6 for value in self.worst.values())


TOTALS = ("volume", "buy_volume", "sell_volume", "ofi")
PER_BAR = ("volume", "buy_volume", "sell_volume", "net_flow", "cvd", "ofi")


def compare_bars(left: pl.DataFrame, right: pl.DataFrame, *, relative: float = 1e-9) -> Check:
    """Compare two bar tables: per-symbol totals and every bar both have.

    Bars with no trades (which analyze keeps to make the series regular and the pandas pipeline
    does not have) carry zero volume and flow; the totals include them on both sides.
    """
    columns = [c for c in TOTALS if c in left.columns and c in right.columns]

    def totals(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("symbol").agg(pl.col(columns).fill_null(0).sum()).sort("symbol")

    merged_totals = totals(left).join(
        totals(right), on="symbol", how="full", suffix="_other", coalesce=True
    )
    agree = merged_totals.height == totals(left).height == totals(right).height
    for name in columns:
        a, b = merged_totals[name].fill_null(math.nan), merged_totals[f"{name}_other"]
        scale = np.maximum(np.abs(a.to_numpy()), 1.0)
        difference = np.abs(a.to_numpy() - b.fill_null(math.nan).to_numpy())
        agree = agree and bool(np.all(difference <= relative * scale))
    key = ["symbol", "ts"]
    compared = [c for c in PER_BAR if c in left.columns and c in right.columns]
    common = left.select(*key, *compared).join(
        right.select(*key, *compared), on=key, how="inner", suffix="_other"
    )
    worst = {
        name: float(
            common.select((pl.col(name).fill_null(0) - pl.col(f"{name}_other").fill_null(0)).abs())
            .max()
            .item()
            or 0.0
        )
        for name in compared
    }
    return Check(
        merged_totals.height, agree, left.height, right.height, common.height, worst, merged_totals
    )


def describe_check(check: Check, what: str) -> str:
    """One line saying whether two bar tables agree."""
    verdict = "agree" if check.ok else "DISAGREE"
    worst = ", ".join(f"{name} {value:.3g}" for name, value in check.worst.items())
    return (
        f"check {what}: {verdict}; per-symbol totals of {', '.join(TOTALS)} "
        f"{'equal' if check.totals_agree else 'DIFFERENT'} ({check.symbols} symbols); "
        f"bars {check.bars_left:,} vs {check.bars_right:,}, {check.common_bars:,} in common, "
        f"max |Δ| per bar: {worst}"
    )


# --------------------------------------------------------------------------------------------
# Reporting


def machine() -> list[str]:
    """Describe the machine and the versions."""
    cpu = platform.processor() or "unknown CPU"
    memory = "unknown memory"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    import pyarrow

    import mmflow

    pandas_version = "not installed"
    if importlib.util.find_spec("pandas") is not None:
        import pandas

        pandas_version = pandas.__version__
    return [
        f"machine: {cpu}, {os.cpu_count()} cores, {memory}, {platform.system()} "
        f"{platform.release()}; load average at start "
        + " / ".join(f"{value:.1f}" for value in os.getloadavg()),
        f"versions: Python {platform.python_version()}, mmflow {mmflow.__version__}, polars "
        f"{pl.__version__}, pyarrow {pyarrow.__version__}, pandas {pandas_version}, numpy "
        f"{np.__version__}",
    ]


def millions(rows: int) -> str:
    """``10_000_000`` → ``10 M``."""
    value = rows / 1e6
    return f"{value:g} M" if value >= 1 else f"{rows:,}"


def ratio(numerator: Measured | None, denominator: Measured | None) -> str:
    """``wall× / CPU×`` of two measurements, or an empty cell."""
    if numerator is None or denominator is None or not (numerator.ok and denominator.ok):
        return ""
    return f"{numerator.wall / denominator.wall:.2f}× / {numerator.cpu / denominator.cpu:.2f}×"


def cells(run: Measured) -> list[str]:
    """Wall, CPU and peak memory cells of one measurement."""
    if not run.ok:
        return [f"failed: {run.error}", "", ""]
    return [f"{run.wall:.2f}", f"{run.cpu:.2f}", f"{run.peak_bytes / 1024**3:.2f}"]


JOB_NAMES = {
    "analyze": "mmflow analyze",
    "floor": "I/O floor (polars read)",
    "pandas": "pandas core",
}


def size_table(runs: list[Measured]) -> list[str]:
    """The markdown table of every size and input format."""
    found = {(r.size, r.fmt, r.job): r for r in runs}
    lines = [
        "| trades + quotes | input | job | wall s | CPU s | peak RSS GiB "
        "| ÷ I/O floor (wall / CPU) | ÷ pandas (wall / CPU) | CSV ÷ parquet (wall / CPU) |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        if run.job not in JOB_NAMES:
            continue
        floor = found.get((run.size, run.fmt, "floor"))
        pandas_run = found.get((run.size, run.fmt, "pandas"))
        parquet = found.get((run.size, "parquet", run.job)) if run.fmt == "csv" else None
        size = f"{millions(run.size)} + {millions(run.size)}"
        lines.append(
            f"| {size} | {run.fmt} | {JOB_NAMES[run.job]} | "
            + " | ".join(cells(run))
            + f" | {ratio(run, floor) if run.job != 'floor' else ''}"
            + f" | {ratio(run, pandas_run) if run.job == 'analyze' else ''}"
            + f" | {ratio(run, parquet)} |"
        )
    return lines


def command_table(runs: list[Measured]) -> list[str]:
    """The markdown table of every command against analyze on the same input."""
    commands = [r for r in runs if r.job.startswith("command ")]
    if not commands:
        return []
    first = commands[0]
    analyze_run = next(
        (r for r in runs if (r.size, r.fmt, r.job) == (first.size, first.fmt, "analyze")), None
    )
    lines = [
        f"| command ({millions(first.size)} + {millions(first.size)}, {first.fmt}) | wall s "
        "| CPU s | peak RSS GiB | ÷ analyze (wall / CPU) |",
        "|---|--:|--:|--:|--:|",
    ]
    if analyze_run is not None:
        lines.append(f"| analyze | {' | '.join(cells(analyze_run))} | 1 |")
    lines.extend(
        f"| {run.job.split()[1]} | {' | '.join(cells(run))} | {ratio(run, analyze_run)} |"
        for run in commands
    )
    return lines


def line(run: Measured) -> str:
    """One progress line."""
    what = f"{millions(run.size):>6} {run.fmt:8s} {run.job:18s}"
    if not run.ok:
        return f"{what} failed: {run.error}"
    return (
        f"{what} wall {run.wall:7.2f} s  CPU {run.cpu:7.2f} s  peak RSS "
        f"{run.peak_bytes / 1024**3:5.2f} GiB  (load {run.load:.1f} at start)"
    )


# --------------------------------------------------------------------------------------------
# Main


def parse_size(text: str) -> int:
    """``10M`` → 10_000_000, ``500k`` → 500_000, ``2000`` → 2000."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        msg = f"{text!r} is not a size like 1M, 10M or 500k"
        raise argparse.ArgumentTypeError(msg) from None
    if value <= 0:
        msg = f"size must be positive, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        default=list(DEFAULT_SIZES),
        help="trades (and as many quotes) per run, comma-separated (default 1M,10M,30M)",
    )
    parser.add_argument("--slow", action="store_true", help="add 100M via a converted dataset")
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rows-per-day", type=parse_size, default=10_000_000, help="generated per day (10M)"
    )
    parser.add_argument("--no-csv", action="store_true", help="parquet input only")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas pipeline")
    parser.add_argument(
        "--commands",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time flow, inventory, phases, profile, classify (default on)",
    )
    parser.add_argument(
        "--commands-size",
        type=parse_size,
        help="size for --commands (default 10M if measured, else the largest size)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="keep the generated data here and reuse it on the next run (default: a temporary "
        "folder, removed at the end)",
    )
    parser.add_argument(
        "--memory-limit",
        type=float,
        help="cap each child's address space at this many GiB (a job over it fails)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument(
        "--repeat",
        type=lambda text: max(1, int(text)),
        default=1,
        help="run each job this many times and keep the fastest (a busy machine's noise)",
    )
    parser.add_argument(
        "--dataset-from",
        type=parse_size,
        default=DATASET_FROM,
        help="from this size on, write a converted dataset (parquet only) instead of single "
        "files (default 100M)",
    )
    parser.add_argument("--task", choices=["floor", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, action="append", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="parquet", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, run every job in its own process, check and report."""
    args = parse_arguments(argv)
    if args.task:
        child(args.task, args.file, args.format, args.output)
        return 0
    have_pandas = importlib.util.find_spec("pandas") is not None
    run_pandas = have_pandas and not args.no_pandas
    if not have_pandas and not args.no_pandas:
        print(
            f"pandas is not installed, so the pandas pipeline is skipped ({PANDAS_HINT}, or pass "
            "--no-pandas to silence this)",
            file=sys.stderr,
        )
    sizes: list[int] = sorted(set(args.sizes + ([SLOW_SIZE] if args.slow else [])))
    header = machine()
    for text in header:
        print(text)
    single_file_sizes = [s for s in sizes if s < args.dataset_from]
    commands_size = args.commands_size or (
        10_000_000 if 10_000_000 in single_file_sizes else max(single_file_sizes, default=None)
    )
    memory_limit = int(args.memory_limit * 1024**3) if args.memory_limit else None
    runs: list[Measured] = []
    checks: list[str] = []
    disagreements = 0
    temporary = None if args.data else tempfile.TemporaryDirectory(prefix="mmflow-bench-")
    base = args.data or Path(temporary.name if temporary else ".")
    base.mkdir(parents=True, exist_ok=True)
    log = base / "bench.log"
    print(f"data and job output in {base} (stderr of every job in {log})")
    startup = start_up(run_pandas, log)
    for text in startup:
        print(text)
    try:
        for size in sizes:
            directory = base / f"rows-{size}"
            inputs, seconds = prepared(
                size,
                args.symbols,
                args.seed,
                directory,
                csv=not args.no_csv,
                rows_per_day=args.rows_per_day,
                dataset_from=args.dataset_from,
            )
            layout = "converted dataset" if inputs.dataset else "parquet"
            if seconds is not None:
                print(
                    f"generated {size:,} trades + {size:,} quotes ({layout}"
                    f"{', CSV' if inputs.trades_csv else ''}) in {seconds:.1f} s"
                )
            else:
                print(f"reusing {size:,} trades + {size:,} quotes in {directory}")
            formats: list[InputFormat] = ["dataset"] if inputs.dataset else ["parquet"]
            if inputs.trades_csv is not None:
                formats.append("csv")
            outputs = directory / "out"
            outputs.mkdir(exist_ok=True)
            for fmt in formats:
                files = inputs.files(fmt)
                jobs: list[tuple[str, list[str], Path]] = []
                bars_path = outputs / f"analyze-{fmt}.parquet"
                jobs.append(("analyze", mmflow_argv("analyze", files, bars_path), bars_path))
                floor_path = outputs / f"floor-{fmt}.txt"
                jobs.append(("floor", child_argv("floor", files, fmt, floor_path), floor_path))
                pandas_path = outputs / f"pandas-{fmt}.parquet"
                if run_pandas and fmt != "dataset":
                    jobs.append(
                        ("pandas", child_argv("pandas", files, fmt, pandas_path), pandas_path)
                    )
                for job, job_argv, _ in jobs:
                    runs.append(best_of(args.repeat, job_argv, size, fmt, job, log, memory_limit))
                analyze_ok = runs[-len(jobs)].ok
                if run_pandas and fmt != "dataset" and analyze_ok and runs[-1].ok:
                    check = compare_bars(pl.read_parquet(pandas_path), pl.read_parquet(bars_path))
                    checks.append(
                        describe_check(check, f"pandas vs mmflow, {millions(size)} {fmt}")
                    )
                    disagreements += not check.ok
                    print(checks[-1])
                if fmt == "csv" and analyze_ok:
                    check = compare_bars(
                        pl.read_parquet(outputs / "analyze-parquet.parquet"),
                        pl.read_parquet(bars_path),
                    )
                    checks.append(describe_check(check, f"mmflow CSV vs parquet, {millions(size)}"))
                    disagreements += not check.ok
                    print(checks[-1])
                if args.commands and size == commands_size and fmt == "parquet":
                    for command in COMMANDS:
                        output = outputs / f"{command}.parquet"
                        argv_ = mmflow_argv(command, files, output)
                        job = f"command {command}"
                        runs.append(best_of(args.repeat, argv_, size, fmt, job, log, memory_limit))
            if temporary is not None:
                shutil.rmtree(directory)
    finally:
        if temporary is not None:
            temporary.cleanup()
    loads = [r.load for r in runs] or [math.nan]
    report = [
        *header,
        *startup,
        f"load average (1 min) when the jobs started: {min(loads):.1f} to {max(loads):.1f} "
        f"on {os.cpu_count()} cores"
        + (
            f"; each job run {args.repeat} times, the fastest (by wall time) shown"
            if args.repeat > 1
            else ""
        ),
        "",
        *size_table(runs),
        "",
        *command_table(runs),
        "",
        *checks,
    ]
    print()
    print("\n".join(report))
    if args.markdown:
        args.markdown.write_text("\n".join(report) + "\n")
    failed = [r for r in runs if not r.ok]
    return 1 if failed or disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
