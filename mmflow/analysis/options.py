"""Run options: which rows, how trades are signed, bar windows, and their validation.

:class:`Selection` and :class:`Session` say which rows; :class:`Signing` how trades are signed;
:class:`BarOptions` the bar metrics' windows; :func:`check_durations` and
:func:`check_windows` validate them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from mmflow.durations import DAY, check_duration
from mmflow.errors import SizeLimitError
from mmflow.metrics.bvc import Distribution
from mmflow.metrics.phases import PhaseParameters
from mmflow.metrics.quotes import QuoteMatch
from mmflow.metrics.signing import Method, sign_trades
from mmflow.schema import TS

__all__ = [
    "BYTES_PER_BAR",
    "MAX_QUOTE_AGE",
    "MIN_ROWS",
    "BarOptions",
    "Clock",
    "Selection",
    "Session",
    "Signing",
    "check_durations",
    "check_windows",
    "default_max_rows",
    "parameters_of",
]

Clock = Literal["recv", "event"]
"""``recv``: align on ``ts`` (capture/receive time where the source has it); ``event``: on
``ts_event`` (exchange time), falling back to ``ts`` where a row has none."""


@dataclass(frozen=True)
class Session:
    """A daily trading session in local time, e.g. 09:30–16:00 America/New_York.

    When ``end`` ≤ ``start`` the session runs overnight (17:00–16:00 for CME Globex) and is
    named by the local date it starts on. Local times are converted with the time zone's rules,
    so sessions stay correct across daylight-saving changes.
    """

    start: time
    end: time
    tz: str = "UTC"

    def label(self) -> pl.Expr:
        """Return the session's local start date for each row, null outside the session."""
        local = pl.col(TS).dt.convert_time_zone(self.tz)
        clock, day = local.dt.time(), local.dt.date()
        if self.start < self.end:
            return pl.when((clock >= self.start) & (clock < self.end)).then(day)
        started_yesterday = clock < self.end
        return (
            pl.when(clock >= self.start)
            .then(day)
            .when(started_yesterday)
            .then(day.dt.offset_by("-1d"))
        )


@dataclass(frozen=True)
class Selection:
    """Which rows to analyse and on which clock.

    Attributes
    ----------
    symbols
        Keep only these symbols (all when empty).
    venues
        Keep only these venues (all when empty).
    start, end
        Keep rows with start ≤ ts < end on the chosen clock (UTC; either may be ``None``).
    clock
        The alignment clock.
    clean
        ``taq``: apply the TAQ cleaning of :mod:`mmflow.clean` after selecting rows.
    session
        Keep only rows inside this daily session and label them with a ``session`` column
        (its local start date); tick-rule state, bars and cumulative series restart per session.
    """

    symbols: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    clock: Clock = "recv"
    clean: Literal["taq"] | None = None
    session: Session | None = None
    venues: tuple[str, ...] = ()


MAX_QUOTE_AGE: Final = "1m"
"""Default maximum quote age: in every real sample of ``shared/data`` the longest gap between
two quotes of one instrument inside a file is under a second, so a minute-old quote is a feed
that stopped (a file that ended, a halt), not a quiet book (README "Quote age")."""


@dataclass(frozen=True)
class Signing:
    """How trades are signed.

    Attributes
    ----------
    method
        A method of :data:`mmflow.metrics.signing.METHODS`; ``auto`` by default.
    match
        Quote matching: ``strict`` (quotes strictly before the trade) or ``at-or-before``.
    lag
        Use quotes at least this much older than the trade (polars duration).
    bvc_distribution, bvc_dof
        For ``bvc``: the distribution of standardised bar price changes (``normal`` as in
        Easley, López de Prado & O'Hara 2012, or ``student-t``) and its degrees of freedom
        (estimated from the data when ``None``).
    max_quote_age
        A quote older than this (polars duration) counts as missing: for signing, spreads,
        depth, effective and realized spread and price impact (``None``: no limit). Default
        :data:`MAX_QUOTE_AGE`.
    """

    method: Method = "auto"
    match: QuoteMatch = "strict"
    lag: str = "0s"
    bvc_distribution: Distribution = "normal"
    bvc_dof: float | None = None
    max_quote_age: str | None = MAX_QUOTE_AGE

    def sign(self, trades: pl.LazyFrame, quotes: pl.LazyFrame | None) -> pl.LazyFrame:
        """Sign ``trades`` with these settings (:func:`mmflow.metrics.signing.sign_trades`)."""
        return sign_trades(
            trades,
            quotes,
            method=self.method,
            match=self.match,
            lag=self.lag,
            max_quote_age=self.max_quote_age,
        )


def parameters_of(selection: Selection, signing: Signing, **extra: Any) -> dict[str, Any]:
    """Return every parameter of a run as a plain dict (stored in parquet metadata)."""
    return {
        **extra,
        "method": signing.method,
        "quote_match": signing.match,
        "quote_lag": signing.lag,
        "max_quote_age": signing.max_quote_age,
        "bvc_distribution": signing.bvc_distribution,
        "bvc_dof": signing.bvc_dof,
        "session": (
            f"{selection.session.start:%H:%M}-{selection.session.end:%H:%M} {selection.session.tz}"
            if selection.session
            else None
        ),
        "clock": selection.clock,
        "symbols": list(selection.symbols),
        "venues": list(selection.venues),
        "start": selection.start.isoformat() if selection.start else None,
        "end": selection.end.isoformat() if selection.end else None,
        "clean": selection.clean,
    }


BYTES_PER_BAR: Final = 4096
"""Memory one bar (or price level, or VPIN bucket) takes while a run computes, with the copies
its joins, sorts and rolling windows make: about 50 columns of 8 bytes, about ten times over."""


MIN_ROWS: Final = 100_000


def _available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, capped by its address-space limit."""
    available: int | None = None
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    try:
        import resource  # POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            available = soft if available is None else min(available, soft)
    except (ImportError, OSError, ValueError):
        pass
    return available


def default_max_rows() -> int:
    """Return the default limit on bars, price levels and VPIN buckets of one run.

    Sized to the machine: the memory available to this process (``MemAvailable``, capped by
    its address-space limit) divided by :data:`BYTES_PER_BAR`, and at least
    :data:`MIN_ROWS`; 2,000,000 where the available memory cannot be read.
    """
    available = _available_memory()
    if available is None:
        return 2_000_000
    return max(MIN_ROWS, available // BYTES_PER_BAR)


@dataclass(frozen=True)
class BarOptions:
    """Parameters of the per-bar market metrics.

    Attributes
    ----------
    every
        Bar length (polars duration).
    horizon
        Time horizon for realized spread and price impact (by as-of time, not rows).
    lookback
        L: trailing window in bars for Kyle's lambda, Amihud, inventory z-scores and the
        liquidity-state medians.
    pressure_horizon
        h: forward window in bars for the price-pressure regression.
    vpin_window
        Buckets in the VPIN window (n).
    buckets_per_day
        VPIN buckets per average day (bucket volume = average daily volume / this).
    spread_factor, depth_factor
        ``withdrawing`` when the spread is ≥ spread_factor × its trailing median or the depth
        ≤ depth_factor × its trailing median.
    fill
        Make a continuous bar grid across days without data (default: bars only on the days,
        or sessions, that hold events).
    max_bars
        The most bars (and VPIN buckets, and lookback bars) a run may make; estimated before
        they are made (:class:`mmflow.errors.SizeLimitError`). ``None``: no limit. Default
        :func:`default_max_rows`.
    memory_limit
        Bytes one chunk of the engine may use (:mod:`mmflow.engine.chunks`); ``None``: half
        the available memory, at most 4 GiB.
    """

    every: str = "1m"
    horizon: str = "5m"
    lookback: int = 240
    pressure_horizon: int = 5
    vpin_window: int = 50
    buckets_per_day: int = 50
    spread_factor: float = 2.0
    depth_factor: float = 0.5
    fill: bool = False
    max_bars: int | None = field(default_factory=default_max_rows)
    memory_limit: int | None = None


def check_durations(options: BarOptions | None = None, signing: Signing | None = None) -> None:
    """Validate every duration parameter with the one validator the command line uses.

    Bar length: longer than zero and at most 366 days; horizon: 0 to 366 days; quote lag: 0 to
    one day; maximum quote age: longer than zero (see :func:`mmflow.durations.check_duration`).

    Raises
    ------
    ParameterError
        Naming the parameter.
    """
    if options is not None:
        check_duration(options.every, what="bar length (every)")
        check_duration(options.horizon, what="horizon", minimum=0)
    if signing is not None:
        check_duration(signing.lag, what="quote lag", minimum=0, maximum=DAY)
        if signing.max_quote_age is not None:
            check_duration(signing.max_quote_age, what="max_quote_age")


def check_windows(options: BarOptions, phase_parameters: PhaseParameters | None = None) -> None:
    """Refuse windows in bars (or buckets) longer than the bar limit; they only cost memory.

    Checks ``lookback``, ``pressure_horizon`` and ``vpin_window`` and every whole-number
    parameter of the phase rule (windows, gaps and lengths in bars).

    Raises
    ------
    SizeLimitError
        Naming the parameter.
    """
    limit = options.max_bars
    if limit is None:
        return
    values = {name: getattr(options, name) for name in ("lookback", "pressure_horizon")}
    values["vpin_window"] = options.vpin_window
    if phase_parameters is not None:
        values |= {
            name: value
            for name, value in asdict(phase_parameters).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }
    for name, value in values.items():
        if value > limit:
            raise SizeLimitError(
                name, value, value, limit, "bars in one window", "use a shorter window"
            )
