"""The chunk planner: units grouped into bar-edge-aligned chunks that fit a memory budget.

Per instrument, consecutive census units (chunk-days, or sessions) are grouped while the
chunk's estimated memory (rows × bytes per row, :data:`BYTES_PER_TRADE` and
:data:`BYTES_PER_QUOTE`) fits ``memory_limit``; a unit alone over the budget is a chunk of its
own (a unit is never split: that would put a chunk edge inside a day). Chunk edges are the
units' bar edges, so no bar straddles two chunks. Before any chunk runs, the planner estimates
the bars and VPIN buckets of the whole run from the census and refuses runs over
``max_bars`` (:class:`mmflow.errors.SizeLimitError`, exit 2: they follow from flags).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import polars as pl

from mmflow.engine.census import DATE, UNIT, Census, chain, instrument_of, unit_edge
from mmflow.engine.state import Chunk
from mmflow.errors import ParameterError, SizeLimitError
from mmflow.schema import TS

__all__ = [
    "BYTES_PER_QUOTE",
    "BYTES_PER_TRADE",
    "MAX_DEFAULT_MEMORY",
    "Plan",
    "day_ends",
    "default_memory_limit",
    "grid_events",
    "parse_memory",
    "plan_chunks",
]

BYTES_PER_TRADE: Final = 400
"""Memory one trade takes inside a chunk task: ~15 columns of 8 bytes, with the copies the
as-of joins, the sort check and the per-bar group-bys make (measured: ~3×)."""
BYTES_PER_QUOTE: Final = 300
"""Memory one quote takes inside a chunk task (OFI events, time weights, as-of joins)."""
MIN_MEMORY: Final = 64 * 2**20
"""The smallest memory budget accepted (64 MiB)."""
MAX_DEFAULT_MEMORY: Final = 4 * 2**30
"""The default budget is half the available memory, at most this (4 GiB)."""
FALLBACK_MEMORY: Final = 1 * 2**30
"""The default budget when the available memory cannot be read (1 GiB)."""

_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "gib": 2**30,
    "t": 2**40,
    "tb": 2**40,
    "tib": 2**40,
}


def parse_memory(text: str) -> int:
    """Parse a memory size with an optional unit (``512M``, ``2GiB``, ``1.5g``, ``1000000``).

    Units are binary (K = 1024). Raises :class:`ParameterError` for anything else or a size
    under 64 MiB.

    Examples
    --------
    >>> parse_memory("2G"), parse_memory("512mb"), parse_memory("1.5GiB")
    (2147483648, 536870912, 1610612736)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        msg = f"--memory-limit: cannot read {text!r} (use a size such as 2G, 512M or 1.5GiB)"
        raise ParameterError(msg)
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < MIN_MEMORY:
        msg = f"--memory-limit: {text!r} is under 64M (give at least 64M)"
        raise ParameterError(msg)
    return size


def default_memory_limit() -> int:
    """Return half the memory available to this process, capped at :data:`MAX_DEFAULT_MEMORY`."""
    from mmflow.analysis.options import _available_memory

    available = _available_memory()
    if available is None:
        return FALLBACK_MEMORY
    return max(MIN_MEMORY, min(MAX_DEFAULT_MEMORY, available // 2))


@dataclass(frozen=True)
class Plan:
    """The chunks of a run, in chain order per instrument, and the run's estimates.

    Attributes
    ----------
    chunks
        Per instrument (in key order) its chunks in time order.
    bars, buckets
        Estimated bars and VPIN buckets of the run (checked against ``max_bars``).
    memory
        The largest chunk's estimated memory (bytes).
    rows
        Trades and quotes of the run (census).
    quote_only
        ``(venue, symbol, quotes)`` of instruments with quotes and no trades (they have no bars,
        but the quote checks count them).
    """

    chunks: tuple[Chunk, ...]
    bars: int
    buckets: int
    memory: int
    rows: int
    quote_only: tuple[tuple[str | None, str, int], ...] = ()


def _bars_of(first: int, last: int, every_ns: int) -> int:
    """Bars from the bar of ``first`` to the bar of ``last`` (both ns), inclusive."""
    return (last // every_ns) - (first // every_ns) + 1


_Instrument = tuple[str | None, str]
_QuoteOnly = tuple[str | None, str, int]


def _units(
    census: Census,
) -> tuple[
    dict[_Instrument, dict[Any, dict[str, Any]]],
    set[_Instrument],
    list[tuple[str | None, str, int]],
]:
    """Sum the census rows per instrument and unit; list the instruments with quotes only.

    Returns the per-unit sums (trades, quotes, first and last time, days, time span per day),
    the traded instruments and ``(venue, symbol, quotes)`` of each quote-only instrument.
    """
    keys = census.keys
    trade_rows = census.trades
    quote_rows = census.quotes
    per_unit: dict[_Instrument, dict[Any, dict[str, Any]]] = {}

    def add(frame: pl.DataFrame, kind: str) -> None:
        for row in frame.iter_rows(named=True):
            units = per_unit.setdefault(instrument_of(row, keys), {})
            unit = units.setdefault(
                row[UNIT],
                {"trades": 0, "quotes": 0, "first": None, "last": None, "days": set(), "spans": {}},
            )
            unit[kind] += int(row[kind])
            unit["days"].add(row[DATE])
            first, last = int(row["first_ts"]), int(row["last_ts"])
            unit["first"] = first if unit["first"] is None else min(unit["first"], first)
            unit["last"] = last if unit["last"] is None else max(unit["last"], last)
            span = unit["spans"].get(row[DATE])
            unit["spans"][row[DATE]] = (
                (first, last) if span is None else (min(span[0], first), max(span[1], last))
            )

    add(trade_rows, "trades")
    traded = set(per_unit)
    quote_only: list[_QuoteOnly] = []
    if quote_rows is not None:
        instruments = trade_rows.select(list(keys)).unique()
        only = quote_rows.join(instruments, on=list(keys), how="anti", nulls_equal=True)
        for row in only.group_by(list(keys)).agg(pl.col("quotes").sum()).iter_rows(named=True):
            venue, symbol = instrument_of(row, keys)
            quote_only.append((venue, symbol, int(row["quotes"])))
        add(quote_rows.join(instruments, on=list(keys), how="semi", nulls_equal=True), "quotes")
    return per_unit, traded, quote_only


def _volumes(
    trade_rows: pl.DataFrame, keys: tuple[str, ...]
) -> dict[_Instrument, tuple[float, int]]:
    """Return each instrument's bucketed volume and its number of days (for the bucket volume)."""
    return {
        instrument_of(row, keys): (float(row["volume"] or 0.0), int(row["days"]))
        for row in trade_rows.filter(pl.col("bucket_trades") > 0)
        .group_by(list(keys))
        .agg(pl.col("volume").sum(), pl.col(DATE).n_unique().alias("days"))
        .iter_rows(named=True)
    }


def _last_quotes(quote_rows: pl.DataFrame | None, keys: tuple[str, ...]) -> dict[_Instrument, int]:
    """Return each instrument's last quote time (ns)."""
    last_quotes: dict[_Instrument, int] = {}
    if quote_rows is not None:
        for row in (
            quote_rows.group_by(list(keys)).agg(pl.col("last_ts").max()).iter_rows(named=True)
        ):
            last_quotes[instrument_of(row, keys)] = int(row["last_ts"])
    return last_quotes


def _group_units(
    units: dict[Any, dict[str, Any]], order: list[Any], memory_limit: int
) -> tuple[list[list[Any]], int, int]:
    """Group consecutive units while their estimated bytes fit ``memory_limit``.

    Returns the groups, the largest group's estimated bytes and the rows of all units.
    """
    groups: list[list[Any]] = []
    budget = 0
    largest = 0
    rows = 0
    for unit in order:
        cost = units[unit]["trades"] * BYTES_PER_TRADE + units[unit]["quotes"] * BYTES_PER_QUOTE
        rows += units[unit]["trades"] + units[unit]["quotes"]
        if groups and budget + cost <= memory_limit:
            groups[-1].append(unit)
            budget += cost
        else:
            groups.append([unit])
            budget = cost
        largest = max(largest, budget)
    return groups, largest, rows


def _check_sizes(
    total_bars: int, total_buckets: int, max_bars: int, every: str, buckets_per_day: int
) -> None:
    """Raise :class:`SizeLimitError` when the bars or the VPIN buckets exceed ``max_bars``."""
    if total_bars > max_bars:
        parameter = "every"
        raise SizeLimitError(
            parameter,
            every,
            total_bars,
            max_bars,
            "bars",
            "use a longer bar or narrow the time window",
        )
    if total_buckets > max_bars:
        parameter = "buckets_per_day"
        raise SizeLimitError(
            parameter,
            buckets_per_day,
            total_buckets,
            max_bars,
            "VPIN buckets",
            "use fewer buckets per day",
        )


def plan_chunks(
    census: Census,
    *,
    every_ns: int,
    memory_limit: int,
    buckets_per_day: int,
    fill: bool = False,
    max_bars: int | None = None,
    every: str = "",
) -> Plan:
    """Group each instrument's units into chunks that fit ``memory_limit``; chain their state.

    Parameters
    ----------
    census
        Pass 1's tables.
    every_ns
        Bar length (ns); ``every`` is its text, for messages.
    memory_limit
        Bytes one chunk may use (estimated from its rows).
    buckets_per_day
        VPIN buckets per average day (the bucket volume is ADV / this, per instrument).
    fill
        Continuous grid: chunks carry the instrument's first and last bar.
    max_bars
        The most bars (and VPIN buckets) the run may make; ``None``: no limit.

    Raises
    ------
    SizeLimitError
        When the estimated bars or buckets exceed ``max_bars`` (nothing is allocated yet).
    """
    keys = census.keys
    states = chain(census)
    per_unit, traded, quote_only = _units(census)
    volumes = _volumes(census.trades, keys)
    last_quotes = _last_quotes(census.quotes, keys)
    chunks: list[Chunk] = []
    total_bars = 0
    total_buckets = 0
    largest = 0
    rows = 0
    for instrument in sorted(traded, key=lambda i: (i[1], i[0] is None, i[0] or "")):
        units = per_unit[instrument]
        order = sorted(units)
        volume, days = volumes.get(instrument, (0.0, 0))
        bucket_volume = volume / days / buckets_per_day if volume > 0 and days > 0 else None
        if bucket_volume is not None:
            total_buckets += math.ceil(volume / bucket_volume)
        first_bar = min(units[u]["first"] for u in order) // every_ns * every_ns
        last_bar = max(units[u]["last"] for u in order) // every_ns * every_ns
        if fill:
            total_bars += (last_bar - first_bar) // every_ns + 1
        else:
            total_bars += sum(
                _bars_of(a, b, every_ns) for u in order for a, b in units[u]["spans"].values()
            )
        groups, group_largest, group_rows = _group_units(units, order, memory_limit)
        largest = max(largest, group_largest)
        rows += group_rows
        inbound = states[instrument]
        for index, group in enumerate(groups):
            chunks.append(
                _chunk(
                    instrument,
                    group,
                    units,
                    index,
                    census.session,
                    every_ns,
                    fill=fill,
                    first_bar=first_bar,
                    last_bar=last_bar,
                    bucket_volume=bucket_volume,
                    last_quote_ts=last_quotes.get(instrument),
                    inbound=inbound[group[0]],
                )
            )
    if max_bars is not None:
        _check_sizes(total_bars, total_buckets, max_bars, every or f"{every_ns}ns", buckets_per_day)
    return Plan(tuple(chunks), total_bars, total_buckets, largest, rows, tuple(quote_only))


def _chunk(
    instrument: tuple[str | None, str],
    group: Sequence[Any],
    units: dict[Any, dict[str, Any]],
    index: int,
    session: bool,
    every_ns: int,
    *,
    fill: bool,
    first_bar: int,
    last_bar: int,
    bucket_volume: float | None,
    last_quote_ts: int | None,
    inbound: Any,
) -> Chunk:
    venue, symbol = instrument
    if session:
        start = min(units[u]["first"] for u in group) // every_ns * every_ns
        end = (max(units[u]["last"] for u in group) // every_ns + 1) * every_ns
        sessions = tuple(group)
    else:
        start = unit_edge(int(group[0]), every_ns)
        end = unit_edge(int(group[-1]) + 1, every_ns)
        sessions = ()
    days = tuple(sorted({d for u in group for d in units[u]["days"]}))
    bars = sum(_bars_of(a, b, every_ns) for u in group for a, b in units[u]["spans"].values())
    return Chunk(
        symbol=symbol,
        venue=venue,
        start=start,
        end=end,
        index=index,
        sessions=sessions,
        days=days,
        trades=sum(units[u]["trades"] for u in group),
        quotes=sum(units[u]["quotes"] for u in group),
        bars=bars,
        first_bar=first_bar if fill else None,
        last_bar=last_bar if fill else None,
        bucket_volume=bucket_volume,
        last_quote_ts=last_quote_ts,
        trade_state=inbound.trade,
        quote_state=inbound.quotes["last"],
        valid_quote_state=inbound.quotes["valid"],
        standing_quote_state=inbound.quotes["standing"],
        usable_quote_state=inbound.quotes["usable"],
    )


def grid_events(
    frame: pl.DataFrame,
    keys: Sequence[str],
    *,
    session: bool,
    dtype: pl.DataType | None = None,
) -> pl.DataFrame:
    """Return the rows of one instrument's chunk that decide its bar grid (``keys``, ``ts``).

    The rows feed :func:`mmflow.metrics.flow.event_grid` (``ts`` cast to ``dtype``). The grid
    of a UTC day runs from its first to its last event's bar, so without sessions each day's
    first and last row give the grid every row gives (:func:`day_ends`: ``frame`` in time
    order, as a chunk's rows are); with sessions every row is returned.
    """
    utc = isinstance(frame.schema[TS], pl.Datetime) and frame.schema[TS].time_zone == "UTC"
    rows = day_ends(frame, [*keys, TS]) if utc and not session else frame.select(*keys, TS)
    return rows if dtype is None else rows.with_columns(pl.col(TS).cast(dtype))


def day_ends(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Return the first and last row of each UTC day of ``frame`` (``columns``, in time order).

    ``frame`` must be sorted by ``ts``, a UTC datetime without nulls; found by binary search.
    """
    rows = frame.select(*columns)
    if frame.height < 3:
        return rows
    ts = frame[TS]
    first, last = ts.head(1).dt.truncate("1d")[0], ts[-1]
    days = (last - first).days + 1
    bounds = pl.datetime_range(
        first, first + timedelta(days=days), "1d", eager=True, time_zone="UTC"
    ).cast(ts.dtype)
    cuts = ts.search_sorted(bounds, side="left").to_list()
    ends = {end for low, high in itertools.pairwise(cuts) if high > low for end in (low, high - 1)}
    return rows[sorted(ends)]
