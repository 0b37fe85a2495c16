"""Where one chunk's trade pass spends its CPU, and a compiled inner loop against it (not a test).

Runs ``mmflow analyze TRADES QUOTES --method lee-ready --bar 1m`` in this process only until the
engine hands its first chunk to the trade pass (:func:`mmflow.engine.trades.trade_partials`),
keeps that chunk's inputs (trades, quote context, chunk, settings) and stops the run. On those
inputs it times, each ``--repeat`` times (medians of CPU-s, user + system of every thread, and
wall-s):

* ``steps``: the trade pass step by step. Polars 2 has no ``LazyFrame.profile()`` (removed with
  the in-memory engine), so the per-trade plan is collected cumulatively (truncate → + as-of
  join to the prevailing quote → + signing → + future-mid as-of join and costs → + per-trade
  products, Roll, running volume) and each step is the difference; each table (bars, levels,
  mix, checks, VPIN pieces, outbound state) is collected alone on the per-trade frame.
* ``kernels``: the heaviest trade-level work, the two as-of matches (prevailing quote, mid at
  ``t + horizon``) + Lee-Ready (quote rule, else the tick rule) + trade costs + per-bar
  accumulation of the flow and cost sums, three ways on the same arrays:
  the engine's polars plan for exactly these columns; a vectorised numpy pass
  (``np.searchsorted`` for both matches, ``np.add.reduceat`` per bar); and, when ``numba`` is
  importable, one ``@njit`` loop over the sorted arrays (two forward pointers, no search).
  Signs must be equal and the bar sums are compared (max relative |Δ|).

The numba kernel covers the lee-ready / strict / no-lag / UTC case of the benchmark only; it is a
measurement, not an engine path. Run it with an interpreter that has numba, e.g. a scratch venv:
``python -m venv /tmp/nb && /tmp/nb/bin/pip install numba numpy==2.4.6 polars==2.1.0`` then
``PYTHONPATH=. /tmp/nb/bin/python benchmarks/trade_pass.py …`` (mmflow's own dependencies are
importable from the checkout's ``.venv`` via ``--site``).

Usage::

    .venv/bin/python benchmarks/trade_pass.py TRADES.parquet QUOTES.parquet [--repeat 3]
        [--only steps|kernels]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

Inputs = tuple[pl.DataFrame, pl.DataFrame, Any, Any, int | None]


class _Captured(Exception):
    """Raised inside the trade-pass seam once the first chunk's inputs are kept."""


def capture_chunk(trades: Path, quotes: Path) -> Inputs:
    """Return the first chunk's trade-pass inputs of ``mmflow analyze`` on the two files."""
    import mmflow.engine.run as run
    from mmflow.cli import cli

    kept: list[Inputs] = []

    def seam(
        frame: pl.DataFrame, context: Any, chunk: Any, settings: Any, *, last_quote_ts: Any
    ) -> Any:
        kept.append((frame, context, chunk, settings, last_quote_ts))
        raise _Captured

    original = run._trade_partials
    run._trade_partials = lambda: cast(Any, seam)
    try:
        with tempfile.TemporaryDirectory() as folder:
            argv = [str(trades), str(quotes), "--method", "lee-ready", "--bar", "1m"]
            output = str(Path(folder) / "bars.parquet")
            cli.main(["analyze", *argv, "-o", output], standalone_mode=False)
    except _Captured:
        pass
    finally:
        run._trade_partials = original
    if not kept:
        message = "the run never reached the trade pass"
        raise SystemExit(message)
    return kept[0]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Run ``work`` ``repeat`` times; return the median CPU-s, median wall-s and a result."""
    cpus, walls = [], []
    result: object = None
    for _ in range(repeat):
        cpu, wall = cpu_seconds(), time.perf_counter()
        result = work()
        cpus.append(cpu_seconds() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(cpus), statistics.median(walls), result


# --------------------------------------------------------------------------------------------
# Step table of the polars trade pass


def step_table(inputs: Inputs, repeat: int) -> list[tuple[str, float, float]]:
    """Time the trade pass whole, the per-trade plan cumulatively, then each table alone."""
    from mmflow.engine import trades as engine
    from mmflow.engine.buckets import _bucket_pieces
    from mmflow.engine.signing import _BAR, _attach, _costs, _signed

    frame_in, quotes, chunk, settings, last = inputs
    rows: list[tuple[str, float, float]] = []

    def add(label: str, work: Callable[[], object]) -> object:
        cpu, wall, result = timed(work, repeat)
        rows.append((label, cpu, wall))
        return result

    add(
        "trade_partials (whole pass)",
        lambda: engine.trade_partials(*inputs[:4], last_quote_ts=last),
    )
    base = frame_in.lazy().with_columns(
        pl.col("ts").dt.truncate(settings.options.every).alias(_BAR)
    )
    quotes_lazy = quotes.lazy()
    signed = _signed(base, quotes_lazy, chunk, settings)
    last_quote = max(engine._last_ns(quotes), last or -1)
    cumulative: list[tuple[str, Callable[[], object]]] = [
        ("  sortedness checks", lambda: (frame_in["ts"].is_sorted(), quotes["ts"].is_sorted())),
        ("  bar start (truncate)", base.collect),
        ("  + as-of join, prevailing quote", _attach(base, quotes_lazy, settings).collect),
        ("  + signing (Lee-Ready, tick)", signed.collect),
        (
            "  + as-of join at t+horizon, costs",
            _costs(signed, quotes_lazy, settings, last_quote).collect,
        ),
        (
            "  + per-trade products, Roll, volume",
            lambda: engine._per_trade_frame(*inputs[:4], last_quote_ts=last),
        ),
    ]
    previous = (0.0, 0.0)  # each step is its cumulative plan minus the plan before it
    for label, work in cumulative:
        cpu, wall, _ = timed(work, repeat)
        rows.append((label, cpu - previous[0], wall - previous[1]))
        previous = (cpu, wall) if label != "  sortedness checks" else (0.0, 0.0)
    frame, schema, has_quotes, stale = engine._per_trade_frame(*inputs[:4], last_quote_ts=last)
    instrument = [pl.lit(chunk.symbol, schema[k]).alias(k) for k in settings.keys]
    tables = {
        "bars (group_by bar)": engine._bar_table(frame, instrument, settings, has_quotes),
        "levels (bar x price x side)": engine._level_table(frame, instrument, settings),
        "mix": engine._mix_table(frame, instrument),
        "checks": engine._check_table(frame, instrument, stale=stale, has_quotes=has_quotes),
        "VPIN bucket pieces": _bucket_pieces(frame, chunk.bucket_volume),
    }
    for label, plan in tables.items():
        add(f"  table: {label}", plan.collect)
    add("  outbound state", lambda: engine._outbound_state(frame, chunk.trade_state))
    add("  all tables (one collect_all)", lambda: pl.collect_all(list(tables.values())))
    return rows


# --------------------------------------------------------------------------------------------
# Kernels: as-of matches + Lee-Ready + costs + per-bar sums, three ways

FLOW = ("trades", "volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow")
COST_SUMS = tuple(
    f"{name}_{part}" for name in ("es", "rs", "pi") for part in ("weighted", "weight")
)
"""The per-bar sums every kernel returns (after ``bar``, the bar's index)."""


def polars_kernel(inputs: Inputs) -> Callable[[], tuple[pl.DataFrame, pl.Series]]:
    """Return the engine's polars plan for the kernel's columns (signs + per-bar sums)."""
    from mmflow.engine import trades as engine
    from mmflow.engine.signing import _BAR, _costs, _signed

    frame_in, quotes, chunk, settings, last = inputs
    every = settings.every_ns
    base = frame_in.lazy().with_columns(
        pl.col("ts").dt.truncate(settings.options.every).alias(_BAR)
    )
    quotes_lazy = quotes.lazy()
    last_quote = max(engine._last_ns(quotes), last or -1)
    signed = _signed(base, quotes_lazy, chunk, settings)
    plan = _costs(signed, quotes_lazy, settings, last_quote).with_columns(
        engine._per_trade(settings.options.every, True)
    )
    long = ("effective_spread", "realized_spread", "price_impact")
    parts = ("weighted", "weight")
    columns = ["_buy", "_sell", "_unknown", "_signed", *(f"_{n}_{p}" for n in long for p in parts)]
    aggregations = [
        pl.len().alias("trades"),
        pl.col("size").sum().alias("volume"),
        *(
            pl.col(c).sum().alias(name)
            for c, name in zip(columns, [*FLOW[2:], *COST_SUMS], strict=True)
        ),
    ]

    def run() -> tuple[pl.DataFrame, pl.Series]:
        # as the engine does: materialise the per-trade frame, then one group_by on the bar
        frame = plan.select(_BAR, "size", "trade_sign", *columns).collect()
        bars = frame.lazy().group_by(_BAR, maintain_order=True).agg(aggregations).collect()
        bars = bars.select((pl.col(_BAR).dt.epoch("ns") // every).alias("bar"), *FLOW, *COST_SUMS)
        return bars, frame["trade_sign"]

    return run


def kernel_arrays(inputs: Inputs) -> dict[str, Any]:
    """Return the numpy arrays (and settings) the numpy and numba kernels read."""
    frame, quotes, chunk, settings, last = inputs
    state = chunk.trade_state
    quote_ts = quotes["ts"].dt.epoch("ns").to_numpy()
    return {
        "ts": frame["ts"].dt.epoch("ns").to_numpy(),
        "price": frame["price"].to_numpy(),
        "size": frame["size"].to_numpy(),
        "quote_ts": quote_ts,
        "bid": quotes["bid_price"].to_numpy(),
        "ask": quotes["ask_price"].to_numpy(),
        "every": settings.every_ns,
        "horizon": settings.horizon_ns,
        "age": settings.max_quote_age_ns,
        "last_quote": max(int(quote_ts.max()), last or -1),
        "last_price": np.nan if state.last_price is None else float(state.last_price),
        "last_direction": int(state.last_direction),
    }


def _usable(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    tolerance = np.maximum(np.abs(bid), np.abs(ask)) * 1e-12
    with np.errstate(invalid="ignore"):
        return np.asarray(np.isfinite(bid) & np.isfinite(ask) & ((ask - bid) > tolerance))


def _numpy_signs(
    a: dict[str, Any], bid: np.ndarray, ask: np.ndarray, usable: np.ndarray
) -> np.ndarray:
    """Lee-Ready: the quote rule where it decides, else the tick rule continued from the state."""
    price = a["price"]
    clean = np.where(np.isnan(price), np.nan, price)
    # forward-filled clean price (NaN = missing), its previous value from the inbound state
    index = np.where(np.isnan(clean), 0, np.arange(clean.size))
    np.maximum.accumulate(index, out=index)
    filled = clean[index]
    filled = np.where(np.isnan(filled), a["last_price"], filled)
    previous = np.concatenate(([a["last_price"]], filled[:-1]))
    change = np.sign(filled - previous)
    nonzero = np.where(np.isfinite(change) & (change != 0), np.arange(change.size), -1)
    np.maximum.accumulate(nonzero, out=nonzero)
    carried = np.where(nonzero >= 0, change[np.maximum(nonzero, 0)], a["last_direction"])
    tick = np.where(np.isnan(clean), 0, carried).astype(np.int8)
    quoted = usable & np.isfinite(price)
    tolerance = np.maximum(np.abs(bid), np.abs(ask)) * 1e-12
    with np.errstate(invalid="ignore"):
        deviation = price - (bid + 0.5 * (ask - bid))
        primary = np.where(quoted & (deviation > tolerance), 1, 0) - np.where(
            quoted & (deviation < -tolerance), 1, 0
        )
    return np.where(primary != 0, primary, tick).astype(np.int8)


def numpy_kernel(a: dict[str, Any]) -> dict[str, np.ndarray]:
    """The kernel as a vectorised numpy pass: searchsorted for both matches, reduceat per bar."""
    ts, price, size, quote_ts = a["ts"], a["price"], a["size"], a["quote_ts"]
    match = np.searchsorted(quote_ts, ts, side="left") - 1  # strictly before the trade
    found = match >= 0
    if a["age"] is not None:
        found &= quote_ts[np.maximum(match, 0)] >= ts - a["age"]
    nan = np.full(ts.size, np.nan)
    bid = np.where(found, a["bid"][np.maximum(match, 0)], nan)
    ask = np.where(found, a["ask"][np.maximum(match, 0)], nan)
    usable = _usable(bid, ask)
    mid = np.where(usable, (bid + ask) / 2, np.nan)
    sign = _numpy_signs(a, bid, ask, usable)
    # the mid of the latest usable quote at or before t + horizon
    quote_usable = _usable(a["bid"], a["ask"])
    later_ts = quote_ts[quote_usable]
    later_mid = ((a["bid"] + a["ask"]) / 2)[quote_usable]
    horizon = ts + a["horizon"]
    later = np.searchsorted(later_ts, horizon, side="right") - 1
    ok = (later >= 0) & (horizon <= a["last_quote"])
    if a["age"] is not None:
        ok &= later_ts[np.maximum(later, 0)] >= horizon - a["age"]
    future = np.where(ok, later_mid[np.maximum(later, 0)], np.nan)
    return _numpy_bars(ts // a["every"], sign, price, size, mid, future)


def _numpy_bars(
    bar: np.ndarray,
    sign: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    mid: np.ndarray,
    future: np.ndarray,
) -> dict[str, np.ndarray]:
    starts = np.flatnonzero(np.concatenate(([True], bar[1:] != bar[:-1])))
    d = sign.astype(np.float64)
    signed = (sign == 1) | (sign == -1)
    weight = np.where(size > 0, size, 0.0)
    out = {
        "bar": bar[starts],
        "trades": np.diff(np.concatenate((starts, [bar.size]))),
        "volume": np.add.reduceat(size, starts),
        "buy_volume": np.add.reduceat(np.where(sign == 1, size, 0.0), starts),
        "sell_volume": np.add.reduceat(np.where(sign == -1, size, 0.0), starts),
        "unknown_volume": np.add.reduceat(np.where(sign == 0, size, 0.0), starts),
        "net_flow": np.add.reduceat(d * size, starts),
        "_signs": sign,
    }
    with np.errstate(invalid="ignore"):
        costs = {
            "es": np.where(signed, 2 * d * (price - mid), np.nan),
            "rs": np.where(signed, 2 * d * (price - future), np.nan),
            "pi": np.where(signed, 2 * d * (future - mid), np.nan),
        }
    for name, value in costs.items():
        known = np.isfinite(value)
        out[f"{name}_weighted"] = np.add.reduceat(np.where(known, value * weight, 0.0), starts)
        out[f"{name}_weight"] = np.add.reduceat(np.where(known, weight, 0.0), starts)
    return out


def _numba_loop(
    ts: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    quote_ts: np.ndarray,
    bid_in: np.ndarray,
    ask_in: np.ndarray,
    integers: np.ndarray,
    last_price: float,
    sums: np.ndarray,
    bars: np.ndarray,
    signs: np.ndarray,
) -> int:
    """One pass over a chunk's sorted trades; two forward pointers into the sorted quotes.

    ``integers``: every, horizon, age (−1: none), last quote time (ns), last direction;
    ``last_price``: NaN for none. Fills ``sums[bar, column]`` (FLOW then COST_SUMS order,
    trades as a float),
    ``bars`` (bar index) and ``signs``; returns the number of bars.
    """
    every, horizon, age, last_quote = integers[0], integers[1], integers[2], integers[3]
    previous, direction = last_price, float(integers[4])
    n, m = ts.size, quote_ts.size
    j = -1  # the latest quote strictly before the trade
    k = 0  # the next quote not yet at or before t + horizon
    later_found, later_ts, later_mid = False, 0, np.nan  # latest usable quote at or before t+Δ
    row = -1
    for i in range(n):
        t = ts[i]
        while j + 1 < m and quote_ts[j + 1] < t:
            j += 1
        bid, ask = np.nan, np.nan
        if j >= 0 and (age < 0 or quote_ts[j] >= t - age):
            bid, ask = bid_in[j], ask_in[j]
        usable = (
            np.isfinite(bid) and np.isfinite(ask) and ask - bid > max(abs(bid), abs(ask)) * 1e-12
        )
        p = price[i]
        # tick rule on the forward-filled clean price, continued from the state
        tick = 0.0
        if not np.isnan(p):
            if not np.isnan(previous) and p != previous:
                direction = 1.0 if p > previous else -1.0
            previous = p
            tick = direction
        sign = tick
        mid = np.nan
        if usable:
            mid = (bid + ask) / 2
            if np.isfinite(p):
                deviation = p - (bid + 0.5 * (ask - bid))
                tolerance = max(abs(bid), abs(ask)) * 1e-12
                if deviation > tolerance:
                    sign = 1.0
                elif deviation < -tolerance:
                    sign = -1.0
        signs[i] = sign
        h = t + horizon
        while k < m and quote_ts[k] <= h:
            b, a = bid_in[k], ask_in[k]
            if np.isfinite(b) and np.isfinite(a) and a - b > max(abs(b), abs(a)) * 1e-12:
                later_found, later_ts, later_mid = True, quote_ts[k], (b + a) / 2
            k += 1
        future = later_mid
        if not later_found or h > last_quote or (age >= 0 and later_ts < h - age):
            future = np.nan
        bar = t // every
        if row < 0 or bars[row] != bar:
            row += 1
            bars[row] = bar
        s = size[i]
        sums[row, 0] += 1.0
        sums[row, 1] += s
        if sign == 1.0:
            sums[row, 2] += s
        elif sign == -1.0:
            sums[row, 3] += s
        else:
            sums[row, 4] += s
        sums[row, 5] += sign * s
        if sign != 0.0:
            weight = s if s > 0 else 0.0
            costs = (2 * sign * (p - mid), 2 * sign * (p - future), 2 * sign * (future - mid))
            for c in range(3):
                if np.isfinite(costs[c]):
                    sums[row, 6 + 2 * c] += costs[c] * weight
                    sums[row, 7 + 2 * c] += weight
    return row + 1


def numba_kernel() -> Callable[[dict[str, Any]], dict[str, np.ndarray]] | None:
    """Return the numba kernel (compiled on first call), or ``None`` without numba."""
    try:
        numba = importlib.import_module("numba")
    except ImportError:
        return None
    loop = numba.njit(cache=False, nogil=True)(_numba_loop)

    def run(a: dict[str, Any]) -> dict[str, np.ndarray]:
        ts = a["ts"]
        integers = np.array(
            [
                a["every"],
                a["horizon"],
                -1 if a["age"] is None else a["age"],
                a["last_quote"],
                a["last_direction"],
            ],
            dtype=np.int64,
        )
        # bounded: at most one row per bar between the first and the last trade
        most = 0 if ts.size == 0 else int(ts[-1] // a["every"] - ts[0] // a["every"] + 1)
        sums = np.zeros((most, len(FLOW) + len(COST_SUMS)))
        bars = np.zeros(most, dtype=np.int64)
        signs = np.zeros(ts.size, dtype=np.float64)
        arrays = (ts, a["price"], a["size"], a["quote_ts"], a["bid"], a["ask"])
        count = loop(*arrays, integers, float(a["last_price"]), sums, bars, signs)
        out: dict[str, np.ndarray] = {"bar": bars[:count], "_signs": signs.astype(np.int8)}
        for index, name in enumerate((*FLOW, *COST_SUMS)):
            out[name] = sums[:count, index]
        return out

    return run


def compare(polars_result: object, other: dict[str, np.ndarray]) -> str:
    """Return how a kernel's result agrees with the polars plan's (signs, bars, max rel. |Δ|)."""
    assert isinstance(polars_result, tuple)
    reference, sign_series = polars_result
    signs = sign_series.to_numpy()
    if not np.array_equal(signs, other["_signs"]):
        return f"signs differ at {int((signs != other['_signs']).sum())} trades"
    if not np.array_equal(reference["bar"].to_numpy(), other["bar"]):
        return "bars differ"
    worst = 0.0
    for name in (*FLOW, *COST_SUMS):
        left = reference[name].cast(pl.Float64).fill_null(0.0).to_numpy()
        right = np.asarray(other[name], dtype=np.float64)
        scale = np.maximum(np.abs(left), 1e-300)
        worst = max(worst, float(np.max(np.abs(left - right) / scale, initial=0.0)))
    return f"signs equal, bars equal, max relative |Δ| of the bar sums {worst:.1e}"


def kernel_table(inputs: Inputs, repeat: int) -> list[tuple[str, float, float, str]]:
    """Time the kernel as the polars plan, the numpy pass and (if importable) numba."""
    plan = polars_kernel(inputs)
    rows: list[tuple[str, float, float, str]] = []
    cpu, wall, reference = timed(plan, repeat)
    rows.append(("polars (engine plan)", cpu, wall, "reference"))
    convert_cpu, convert_wall, arrays = timed(lambda: kernel_arrays(inputs), repeat)
    assert isinstance(arrays, dict)
    rows.append(("  columns → numpy arrays", convert_cpu, convert_wall, ""))
    cpu, wall, result = timed(lambda: numpy_kernel(arrays), repeat)
    assert isinstance(result, dict)
    rows.append(("numpy (searchsorted, reduceat)", cpu, wall, compare(reference, result)))
    compiled = numba_kernel()
    if compiled is None:
        rows.append(("numba", float("nan"), float("nan"), "not importable here"))
        return rows
    cpu, wall, _ = timed(lambda: compiled(arrays), 1)
    rows.append(("  numba: first call (compile)", cpu, wall, ""))
    cpu, wall, result = timed(lambda: compiled(arrays), repeat)
    assert isinstance(result, dict)
    rows.append(("numba (@njit, one loop)", cpu, wall, compare(reference, result)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Capture the first chunk, print the step table and the kernel table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("trades", type=Path)
    parser.add_argument("quotes", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("steps", "kernels", "both"), default="both")
    parser.add_argument("--keep", type=Path, default=None, help="pickle of the captured chunk")
    arguments = parser.parse_args(argv)
    if arguments.keep is not None and arguments.keep.exists():
        with arguments.keep.open("rb") as handle:
            inputs: Inputs = pickle.load(handle)  # a file this script wrote
    else:
        inputs = capture_chunk(arguments.trades, arguments.quotes)
        if arguments.keep is not None:
            with arguments.keep.open("wb") as handle:
                pickle.dump(inputs, handle)
    print(
        f"chunk: {inputs[0].height:,} trades, {inputs[1].height:,} quotes; polars "
        f"{pl.__version__}, numpy {np.__version__}; {os.cpu_count()} CPUs; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; medians of {arguments.repeat}"
    )
    if arguments.only in ("steps", "both"):
        print(f"\n{'step':<42} {'CPU s':>7} {'wall s':>7}")
        for label, cpu, wall in step_table(inputs, arguments.repeat):
            print(f"{label:<42} {cpu:7.3f} {wall:7.3f}", flush=True)
    if arguments.only in ("kernels", "both"):
        print(f"\n{'kernel':<34} {'CPU s':>7} {'wall s':>7}  agreement")
        for label, cpu, wall, note in kernel_table(inputs, arguments.repeat):
            print(f"{label:<34} {cpu:7.3f} {wall:7.3f}  {note}", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
