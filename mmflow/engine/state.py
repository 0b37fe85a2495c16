"""The chunked engine's contract: chunks, carried state, settings, tasks and their results.

A run is split into **chunks**: one instrument ``(venue, symbol)`` (and, with ``--session``,
whole sessions) over a time range ``[start, end)`` whose edges are bar edges (multiples of the
bar length from the Unix epoch, the origin polars ``dt.truncate`` uses) at or after UTC day
boundaries. No bar straddles two chunks, so every per-bar value that depends only on the bar's
own rows is final inside its chunk; only a small **state** crosses chunk edges:

- :class:`TradeState`: the tick rule's last price and last non-zero direction, the cumulative
  volume before the chunk (the VPIN bucket offset) and the trade count before it;
- :class:`QuoteState`: the last quote before the chunk (prevailing quote for signing and
  trade costs, OFI's previous quote, the quote carried into the first bar's time weights).

Everything here is a frozen dataclass of plain values (and polars frames), so a
:class:`ChunkTask` pickles for another process or a Dask worker, and ``run_chunk(task)`` is a
pure function of it (:mod:`mmflow.engine.run`).

Times are integers: nanoseconds since the Unix epoch, UTC (exact; ``datetime`` holds only
microseconds). :func:`ns_to_datetime` and :func:`datetime_to_ns` convert.

Frames crossing this contract use the canonical column names of :mod:`mmflow.schema`; the
instrument columns are ``EngineSettings.keys`` (``venue, symbol`` or ``symbol``), plus
``session`` (a ``Date``) when ``EngineSettings.session`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from mmflow.analysis.options import BarOptions, Signing

__all__ = [
    "NS_PER_DAY",
    "Chunk",
    "ChunkResult",
    "ChunkTask",
    "EngineSettings",
    "QuoteState",
    "TableSource",
    "TradePartials",
    "TradeState",
    "datetime_to_ns",
    "ns_to_datetime",
]

NS_PER_DAY = 86_400 * 1_000_000_000
"""Nanoseconds in a UTC day."""

TIMESTAMP = pl.Datetime("ns", "UTC")
"""The dtype chunk edges are compared in (canonical ``ts``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ns: int) -> datetime:
    """Return the UTC datetime of ``ns`` nanoseconds since the epoch (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def datetime_to_ns(value: datetime) -> int:
    """Return nanoseconds since the epoch of an aware (or UTC-naive) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True)
class TradeState:
    """What one instrument's (and session's) trades carry into the next chunk.

    Attributes
    ----------
    last_price
        The last trade price that was neither null nor NaN before the chunk (the tick rule's
        forward-filled price), or ``None`` before the first such trade. Roll's spread needs
        nothing across chunks (a bar's first trade is never compared with the previous bar).
    last_direction
        The last non-zero tick direction (+1 or −1) before the chunk, 0 when there was none:
        a zero tick inside the chunk repeats it (the tick rule's forward fill).
    cumulative_volume
        Σ size of the trades that fill VPIN buckets (size finite and > 0) of the instrument
        before the chunk: with the bucket volume V, the chunk's first trade starts inside
        bucket ``floor(cumulative_volume / V)`` (global index). Per instrument, across
        sessions (VPIN buckets are per instrument).
    trades
        Trades of the instrument (and session) before the chunk.
    """

    last_price: float | None = None
    last_direction: int = 0
    cumulative_volume: float = 0.0
    trades: int = 0


@dataclass(frozen=True)
class QuoteState:
    """The last quote of one instrument before a chunk starts (``None`` fields: no quote yet).

    Attributes
    ----------
    ts
        Its ``ts`` in nanoseconds since the epoch (for the maximum quote age and the
        time weights of spread and depth in the chunk's first bar).
    bid_price, bid_size, ask_price, ask_size
        Its top of book.
    ts_event
        Its exchange time (nanoseconds) when the quotes have one.
    """

    ts: int | None = None
    bid_price: float | None = None
    bid_size: float | None = None
    ask_price: float | None = None
    ask_size: float | None = None
    ts_event: int | None = None

    @property
    def present(self) -> bool:
        """Whether there was a quote before the chunk."""
        return self.ts is not None

    def frame(self, schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
        """Return the quote as a one-row frame of ``schema`` (zero rows when absent).

        Columns of ``schema`` the state does not hold (``symbol``, ``venue``, ``exchange``,
        ``conditions`` …) are filled from ``fill`` by the caller; here they are null. Prepend
        this to the chunk's quotes to give as-of joins and OFI their previous quote.
        """
        names = list(schema.keys()) if isinstance(schema, dict) else schema.names()
        dtypes = dict(schema.items())
        if not self.present:
            return pl.DataFrame(schema=dtypes)
        values: dict[str, Any] = {
            "ts": self.ts,
            "ts_event": self.ts_event,
            "bid_price": self.bid_price,
            "bid_size": self.bid_size,
            "ask_price": self.ask_price,
            "ask_size": self.ask_size,
        }
        columns = []
        for name in names:
            dtype = dtypes[name]
            value = values.get(name)
            if isinstance(dtype, pl.Datetime) and value is not None:
                series = pl.Series(name, [value], pl.Int64).cast(pl.Datetime("ns", "UTC"))
                columns.append(series.cast(dtype))
            else:
                columns.append(pl.Series(name, [value], dtype))
        return pl.DataFrame(columns)


@dataclass(frozen=True)
class Chunk:
    """One instrument (and session) over ``[start, end)``: whole days, bar-edge aligned.

    Attributes
    ----------
    symbol, venue
        The instrument (``venue`` is ``None`` for a null venue or when the inputs have none).
    start, end
        Nanoseconds since the epoch, UTC: bar edges (multiples of the bar length) at or after
        a UTC midnight; ``end`` is exclusive. A row belongs to the chunk when
        ``start <= ts < end`` (equivalently its bar start is in the range).
    index
        The chunk's position in its instrument's chain (0 = first).
    sessions
        With ``--session``: the session dates (local start dates) the chunk holds whole; rows
        belong to the chunk by their ``session`` label instead of by ``ts``. ``()`` otherwise.
    days
        The UTC dates the chunk covers that hold trades or quotes (census).
    trades, quotes
        Rows of the chunk (census), for memory estimates and the progress display.
    bars
        Estimated bars of the chunk (before any is made).
    first_bar, last_bar
        With ``fill``: the instrument's first and last bar start over the whole run (ns), so
        the chunk makes the continuous grid restricted to its range.
    bucket_volume
        The instrument's VPIN bucket volume V (ADV / buckets_per_day over the whole run), or
        ``None`` when it has no volume.
    last_quote_ts
        The ``ts`` (ns) of the instrument's last quote over the whole run, ``None`` without
        quotes: trade costs call a horizon after it ``after_last_quote`` even when the chunk
        reads no quote that late.
    trade_state, quote_state
        The inbound state: what the instrument's earlier chunks leave (chained by the census);
        ``quote_state`` is the last quote of any kind before ``start``.
    valid_quote_state
        The last valid quote before ``start`` (both sides and sizes present, bid ≤ ask): OFI's
        previous quote and the standing mid.
    standing_quote_state
        The last valid or empty (not crossed) quote before ``start``: the state standing for
        time-weighted spread and depth (see :class:`mmflow.engine.quotes.QuoteCarry`).
    usable_quote_state
        The last usable quote before ``start`` (finite, bid < ask:
        :func:`mmflow.metrics.classify.quote_is_usable`): the future mid of a trade whose
        horizon holds no later usable quote.
    """

    symbol: str
    venue: str | None
    start: int
    end: int
    index: int = 0
    sessions: tuple[date, ...] = ()
    days: tuple[date, ...] = ()
    trades: int = 0
    quotes: int = 0
    bars: int = 0
    first_bar: int | None = None
    last_bar: int | None = None
    bucket_volume: float | None = None
    last_quote_ts: int | None = None
    trade_state: TradeState = field(default_factory=TradeState)
    quote_state: QuoteState = field(default_factory=QuoteState)
    valid_quote_state: QuoteState = field(default_factory=QuoteState)
    standing_quote_state: QuoteState = field(default_factory=QuoteState)
    usable_quote_state: QuoteState = field(default_factory=QuoteState)

    @property
    def instrument(self) -> tuple[str | None, str]:
        """``(venue, symbol)``."""
        return (self.venue, self.symbol)

    def start_datetime(self) -> datetime:
        """``start`` as an aware UTC datetime."""
        return ns_to_datetime(self.start)

    def end_datetime(self) -> datetime:
        """``end`` as an aware UTC datetime."""
        return ns_to_datetime(self.end)

    def instrument_filter(self, keys: tuple[str, ...]) -> pl.Expr:
        """Return the predicate selecting this instrument's rows (null venue matches null)."""
        predicate = pl.col("symbol") == self.symbol
        if "venue" in keys:
            venue = pl.col("venue")
            predicate &= venue.is_null() if self.venue is None else venue == self.venue
        return predicate

    def time_filter(self, *, before: int = 0, after: int = 0, column: str = "ts") -> pl.Expr:
        """Return ``start - before <= ts < end + after`` (nanoseconds) on ``column``."""
        ts = pl.col(column).dt.cast_time_unit("ns").dt.epoch("ns")
        return (ts >= self.start - before) & (ts < self.end + after)

    def row_filter(self, keys: tuple[str, ...]) -> pl.Expr:
        """Return the predicate for the chunk's own rows (instrument and time, or sessions)."""
        predicate = self.instrument_filter(keys)
        if self.sessions:
            return predicate & pl.col("session").is_in(list(self.sessions))
        return predicate & self.time_filter()


@dataclass(frozen=True)
class EngineSettings:
    """Everything a chunk task needs besides its rows and state (picklable, small).

    Attributes
    ----------
    options
        Bar length, horizon, windows, VPIN settings, ``fill`` and the size limit.
    signing
        Method, quote matching, lag, maximum quote age, BVC settings.
    keys
        The instrument columns of the prepared frames: ``("venue", "symbol")`` or ``("symbol",)``.
    session
        Whether the prepared frames carry a ``session`` column (bars per session).
    has_quotes
        Whether the run has quotes.
    every_ns, horizon_ns, lag_ns
        Bar length, cost horizon and quote lag in nanoseconds.
    max_quote_age_ns
        Maximum quote age in nanoseconds, ``None`` for no limit.
    memory_limit
        Bytes a chunk may use (the planner sizes chunks from it).
    """

    options: BarOptions
    signing: Signing
    keys: tuple[str, ...]
    session: bool
    has_quotes: bool
    every_ns: int
    horizon_ns: int
    lag_ns: int
    max_quote_age_ns: int | None
    memory_limit: int

    @property
    def bar_keys(self) -> list[str]:
        """The bar grouping columns: the instrument, plus ``session`` with sessions."""
        return [*self.keys, "session"] if self.session else list(self.keys)


@dataclass(frozen=True)
class TableSource:
    """Where a chunk task reads one table (trades or quotes) from, already prepared.

    Exactly one of ``frame``, ``plan`` or ``paths`` is set. Rows are canonical and prepared
    (selection, clock, session label and cleaning applied), so a task only filters its
    instrument and time range.

    Attributes
    ----------
    frame
        In-memory rows (tests, small inputs).
    plan
        A lazy plan (polars pickles it; scans of local or object-store paths travel).
    paths
        Parquet or Arrow IPC files (e.g. the scratch dataset CSV inputs are parsed into once,
        or the partitions of a ``convert``-ed dataset).
    format
        ``parquet`` or ``ipc`` for ``paths``.
    """

    frame: pl.DataFrame | None = None
    plan: pl.LazyFrame | None = None
    paths: tuple[str, ...] = ()
    format: Literal["parquet", "ipc"] = "parquet"

    def scan(self) -> pl.LazyFrame:
        """Return a lazy scan of the table (filter it; nothing is read yet)."""
        if self.frame is not None:
            return self.frame.lazy()
        if self.plan is not None:
            return self.plan
        if not self.paths:
            msg = "a TableSource needs a frame, a plan or paths"
            raise ValueError(msg)
        if self.format == "ipc":
            return pl.scan_ipc(list(self.paths))
        return pl.scan_parquet(list(self.paths))


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: ``run_chunk(task) -> ChunkResult`` is a pure function of it.

    Attributes
    ----------
    chunk
        The instrument, range and inbound state.
    settings
        The run's settings.
    trades
        Where the prepared trades are; the task reads the chunk's rows.
    quotes
        Where the prepared quotes are, or ``None``. The task reads the chunk's quotes plus
        those up to ``horizon`` after ``end`` (the future mid of trade costs) and, with a
        quote lag, from ``lag`` before ``start``; ``chunk.quote_state`` is the quote before.
    """

    chunk: Chunk
    settings: EngineSettings
    trades: TableSource
    quotes: TableSource | None = None


@dataclass(frozen=True)
class TradePartials:
    """What :func:`mmflow.engine.trades.trade_partials` returns for one chunk (small tables).

    Every frame starts with the bar keys (``EngineSettings.bar_keys``); times are the
    canonical ``ts`` dtype.

    Attributes
    ----------
    bars
        One row per bar of the chunk holding trades: ``keys…, ts`` (bar start) and the
        trade columns of today's bars: the flow columns of :func:`mmflow.metrics.flow.flow_bars`
        (no ``cvd``: it crosses chunks and is made in the finish), the cost columns
        (``effective_spread, realized_spread, price_impact``) and ``roll_spread``.
    levels
        Volume per bar × price level × side: ``keys…, ts`` (bar start), ``price``,
        ``trade_sign`` (Int8: 1 buy, −1 sell, 0 unknown), ``size`` (Float64, Σ size),
        ``trades`` (UInt32). Fed as pseudo-trades to the profile and phase functions.
    buckets
        VPIN bucket pieces: ``keys…`` (instrument only, no session), ``bucket`` (Int64, global
        index), ``ts`` (of the trade that completed the piece's bucket, or the piece's last
        trade), ``volume, buy_volume, sell_volume`` (Float64), ``completes`` (Boolean: this
        piece holds the trade that fills the bucket).
    mix
        ``keys…`` (instrument), ``sign_method``, ``trades`` (UInt32), ``volume`` (Float64).
    checks
        ``keys…`` (instrument): ``trades, stale_quote, after_last_quote, stale_future_quote``
        (UInt32), as :func:`mmflow.analysis.market.quote_checks` counts them.
    state
        The outbound trade state (what the next chunk's inbound state must equal).
    """

    bars: pl.DataFrame
    levels: pl.DataFrame
    buckets: pl.DataFrame
    mix: pl.DataFrame
    checks: pl.DataFrame
    state: TradeState


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk task returns: small tables and the outbound state.

    Attributes
    ----------
    chunk
        The task's chunk.
    bars
        One row per bar of the chunk's grid (the bars today's grid has in the range):
        ``keys…, ts`` plus every bar-local column: trade columns of :class:`TradePartials`
        and the quote columns of :func:`mmflow.engine.quotes.quote_partials`.
    levels, buckets, mix
        As in :class:`TradePartials`.
    checks
        Per instrument: ``trades, quotes, stale_quote, after_last_quote, stale_future_quote``.
    trade_state, quote_state
        The outbound state (equal to the next chunk's inbound state from the census).
    """

    chunk: Chunk
    bars: pl.DataFrame
    levels: pl.DataFrame
    buckets: pl.DataFrame
    mix: pl.DataFrame
    checks: pl.DataFrame
    trade_state: TradeState
    quote_state: QuoteState
