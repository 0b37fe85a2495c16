"""A synthetic market with a market maker whose true inventory is known (``mmflow simulate``).

The simulator is the ground truth of metrics.md §12.6: it writes trades and quotes in the
canonical schema together with the market maker's true inventory and the true phase of every
bar, so the inventory-flow and phase detectors can be scored against it.

Model
-----
Per symbol, on a regular grid of bars of length Δ (``bar``, default 1m):

* **Fair value** (latent): V(t) = P₀ + σ·W(t) + λ·C(t) + S(t): a Brownian random walk with
  ``volatility`` σ (price per √hour), a permanent impact ``impact`` λ per lot of aggressive
  signed flow C(t) (buys push it up; the market maker's unloading flow in a distribution is
  absorbed and has no impact), and a scripted drift S(t) (below).
* **Market maker** (the passive side of every trade): it quotes around a reservation price that is
  skewed linearly against its inventory I, r = V − κ·I (``skew`` κ; the linear form of Avellaneda
  & Stoikov 2008, *Quantitative Finance* 8(3):217-224, r = s − q·γ·σ²·(T − t); Ho & Stoll 1981,
  *J. Financial Economics* 9(1):47-73), bid = ⌊(r − spread/2)/tick⌋·tick and
  ask = ⌈(r + spread/2)/tick⌉·tick (at least one tick apart). It re-quotes ``requote_latency``
  after each of its fills (its skew changed) and at Poisson fair-value updates
  (``quotes_per_trade`` per trade); displayed sizes are geometric with mean ``quote_size_mean``.
* **Noise traders** arrive as a Poisson process (``trades_per_hour``), buy or sell with
  probability ½, in whole lots (geometric, mean ``trade_size_mean``), and trade at the quote that
  stands strictly before them: a buy at the ask, a sell at the bid.
* **Inventory** at bar ends is I_k = round(T_k + e_k): a scripted target T_k (0 outside episodes)
  plus the noise traders' imprint e_k = (1 − θ)·e_{k−1} − N_k (N_k their net signed flow in bar k,
  θ = ``inventory_reversion``, the pull of the skew on the flow). The rest of the flow the market
  maker must absorb, R_k = −(I_k − I_{k−1}) − N_k, is executed by extra aggressive trades (split
  into lots) at random times in bar k, so I = −cumsum(side·size) exactly.
* **Episodes** (``episodes_per_day`` per symbol and day, each after at least ``gap_bars`` neutral
  bars, half of them long and half short in random order), for a long episode (short: mirrored):
  (1) *accumulation* (``accumulation_bars``): persistent selling at ``accumulation_intensity`` ×
  the noise volume pushes I up linearly to a peak I* while price falls with the flow (impact and
  skew); (2) *distribution* (``distribution_bars``): buyers lift the shaded offers until I is back
  near 0, across several price levels; the buying is absorbed: V drifts down by κ·I* (cancelling
  the unwinding skew) plus ``distribution_drift``, so price is flat or falls against the buying;
  (3) *reversal* (``reversal_bars``): V falls by ``reversal_move``.

Sources: metrics.md §b.8 and §12; Hendershott & Menkveld (2014, *J. Financial Economics*
114(3):405-423) for inventory price pressure and reversal.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from mmflow._version import __version__
from mmflow.errors import MmflowError, ParameterError
from mmflow.render.write import write_file
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    MM_INVENTORY,
    PRICE,
    SCHEMA_VERSION,
    SIZE,
    SYMBOL,
    TIMESTAMP,
    TRADE_ID,
    TS,
)

__all__ = [
    "ACCUMULATION",
    "DISTRIBUTION",
    "EPISODE",
    "FAIR_VALUE",
    "FAMILIES",
    "INVENTORY_SIDE",
    "NEUTRAL",
    "PARAMETERS_KEY",
    "PHASE",
    "PHASES",
    "QUOTES_SCHEMA",
    "REVERSAL",
    "TRADES_SCHEMA",
    "TRUTH_SCHEMA",
    "FloatArray",
    "IntArray",
    "Simulation",
    "SimulationParameters",
    "duration_nanoseconds",
    "simulate",
    "write_simulation",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PHASE: Final = "phase"
INVENTORY_SIDE: Final = "inventory_side"
EPISODE: Final = "episode"
FAIR_VALUE: Final = "fair_value"

NEUTRAL: Final = "neutral"
ACCUMULATION: Final = "accumulation"
DISTRIBUTION: Final = "distribution"
REVERSAL: Final = "reversal"
PHASES: Final = (NEUTRAL, ACCUMULATION, DISTRIBUTION, REVERSAL)
"""Truth phases, indexed by their internal code 0-3."""

FAMILIES: Final = ("inventory", "hawkes")
"""Generating mechanisms of :class:`SimulationParameters` ``family``."""

PARAMETERS_KEY: Final = "mmflow.simulation.parameters"
"""Parquet key-value metadata key holding the simulation parameters as JSON."""

TRADES_SCHEMA: Final = pl.Schema(
    {
        TS: TIMESTAMP,
        SYMBOL: pl.String(),
        PRICE: pl.Float64(),
        SIZE: pl.Float64(),
        AGGRESSOR_SIDE: pl.Int8(),
        TRADE_ID: pl.String(),
    }
)
QUOTES_SCHEMA: Final = pl.Schema(
    {
        TS: TIMESTAMP,
        SYMBOL: pl.String(),
        BID_PRICE: pl.Float64(),
        BID_SIZE: pl.Float64(),
        ASK_PRICE: pl.Float64(),
        ASK_SIZE: pl.Float64(),
    }
)
TRUTH_SCHEMA: Final = pl.Schema(
    {
        SYMBOL: pl.String(),
        TS: TIMESTAMP,
        MM_INVENTORY: pl.Float64(),
        PHASE: pl.String(),
        INVENTORY_SIDE: pl.String(),
        EPISODE: pl.Int32(),
        FAIR_VALUE: pl.Float64(),
    }
)

_NS_PER_HOUR: Final = 3_600_000_000_000
_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": _NS_PER_HOUR,
    "d": 24 * _NS_PER_HOUR,
    "w": 7 * 24 * _NS_PER_HOUR,
}
_DURATION: Final = re.compile(r"(\d+)(ns|us|ms|s|m|h|d|w)")
_DURATIONS: Final = re.compile(r"(?:\d+(?:ns|us|ms|s|m|h|d|w))+")
_MIN_NS: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def duration_nanoseconds(every: str) -> int:
    """Return the length of a fixed polars duration string (``1s``, ``5m``, ``1h30m``) in ns.

    Raises
    ------
    ParameterError
        For calendar units (``mo``, ``q``, ``y``), index counts (``i``) or text that is not a
        duration.

    Examples
    --------
    >>> duration_nanoseconds("1m30s")
    90000000000
    """
    if not _DURATIONS.fullmatch(every):
        msg = f"bar {every!r} is not a fixed duration, was expected like 1s, 500ms, 1m, 1h"
        raise ParameterError(msg)
    return sum(int(count) * _UNITS[unit] for count, unit in _DURATION.findall(every))


@dataclass(frozen=True)
class SimulationParameters:
    """Every parameter of the simulated market (see the module docstring for the model).

    Invalid values raise :class:`~mmflow.errors.ParameterError` when the object is built.

    Parameters
    ----------
    seed
        Seed of the random generator; the same parameters give identical frames.
    symbols
        Symbols, simulated independently (each from its own stream of the seed).
    hours
        Length of the simulation in hours (fractions allowed).
    start
        Time of the first bar (timezone-aware).
    bar
        Length of a truth bar, a fixed polars duration string.
    trades_per_hour
        Poisson rate of noise trades per symbol (episode flow comes on top).
    trade_size_mean
        Mean trade size in whole lots (geometric distribution, ≥ 1).
    quotes_per_trade
        Fair-value quote updates per trade (Poisson), on top of the re-quote after every fill.
    quote_size_mean
        Mean displayed bid and ask size in lots (geometric).
    requote_latency
        Seconds between a fill and the market maker's re-quote (at least 1 ns).
    initial_price
        Fair value at the start.
    tick_size
        Price grid of the quotes and trades.
    spread
        Target quoted spread (price units); the quoted spread is this rounded out to ticks.
    volatility
        σ of the fair-value random walk in price units per √hour.
    impact
        λ, permanent fair-value impact per lot of aggressive signed flow.
    skew
        κ, reservation-price skew per lot of inventory: r = fair − κ·I.
    inventory_reversion
        θ ∈ [0, 1], per-bar pull of the noise traders' inventory imprint back to zero.
    episodes_per_day
        Accumulation → distribution → reversal episodes per symbol and 24 hours; the count per
        symbol is round(episodes_per_day · hours / 24), at least 1 when positive. 0 gives pure
        noise flow.
    accumulation_bars, distribution_bars, reversal_bars
        (min, max) length in bars of each phase, drawn uniformly per episode.
    gap_bars
        Neutral bars before each episode (the first one included).
    accumulation_intensity
        Directional flow during accumulation as a fraction of the expected noise volume.
    distribution_drift
        Fair-value move against the unloading flow over a whole distribution (price units).
    reversal_move
        Fair-value move in the direction implied by the distribution over a reversal.
    family
        Generating mechanism: ``inventory`` (the scripted-target model of the module docstring)
        or ``hawkes`` (self- and cross-exciting order flow, several competing market makers of
        which one is tracked, spreads from the flow's intensity; see :func:`simulate`).
    hold_bars
        (min, max) bars of hold between accumulation and distribution (truth phase ``neutral``,
        still part of the episode); (0, 0) = no hold.
    overshoot
        A distribution unloads (1 + overshoot) × the peak, through zero; the reversal brings
        the target back to 0.
    size_tail
        Degrees of freedom ν > 2 of Student-t trade sizes (|t_ν| scaled to mean
        ``trade_size_mean``, rounded to ≥ 1 lot): heavy-tailed flow; 0 = geometric sizes.
    clustering
        σ of the log of a per-bar activity factor (AR(1), 0.95 per bar) multiplying the trade
        rate: trades cluster in time; 0 = a constant rate.
    proxy_drift
        Other participants' net aggressive flow per bar, in noise-flow standard deviations per
        bar (AR(1), 0.9 per bar), filled by other market makers: it moves −CVD but not the
        tracked inventory, so the −CVD proxy drifts; 0 = none.
    spread_variability
        σ of the log of a per-bar spread factor (AR(1), 0.9 per bar); 0 = a constant spread.
    distribution_spread
        Relative widening of the quoted spread during a distribution (0.5 = 50 % wider).
    excitation
        ``hawkes`` only: branching ratio of the order flow (self + cross excitation), in [0, 0.9].
    market_makers
        ``hawkes`` only: competing market makers; the tracked one fills 1/n of the noise flow
        before its inventory skew.
    """

    seed: int = 0
    symbols: tuple[str, ...] = ("SIMA", "SIMB")
    hours: float = 24.0
    start: datetime = datetime(2024, 1, 2, tzinfo=UTC)
    bar: str = "1m"
    trades_per_hour: float = 3600.0
    trade_size_mean: float = 3.0
    quotes_per_trade: float = 1.0
    quote_size_mean: float = 20.0
    requote_latency: float = 0.0005
    initial_price: float = 100.0
    tick_size: float = 0.01
    spread: float = 0.03
    volatility: float = 0.08
    impact: float = 1e-4
    skew: float = 2e-5
    inventory_reversion: float = 0.05
    episodes_per_day: float = 6.0
    accumulation_bars: tuple[int, int] = (20, 40)
    distribution_bars: tuple[int, int] = (20, 40)
    reversal_bars: tuple[int, int] = (10, 20)
    gap_bars: int = 30
    accumulation_intensity: float = 0.4
    distribution_drift: float = 0.02
    reversal_move: float = 0.2
    family: str = "inventory"
    hold_bars: tuple[int, int] = (0, 0)
    overshoot: float = 0.0
    size_tail: float = 0.0
    clustering: float = 0.0
    proxy_drift: float = 0.0
    spread_variability: float = 0.0
    distribution_spread: float = 0.0
    excitation: float = 0.5
    market_makers: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "accumulation_bars", tuple(self.accumulation_bars))
        object.__setattr__(self, "distribution_bars", tuple(self.distribution_bars))
        object.__setattr__(self, "reversal_bars", tuple(self.reversal_bars))
        object.__setattr__(self, "hold_bars", tuple(self.hold_bars))
        _validate(self)

    @property
    def bar_ns(self) -> int:
        """Length of a bar in nanoseconds."""
        return duration_nanoseconds(self.bar)

    @property
    def duration_ns(self) -> int:
        """Length of the simulation in nanoseconds."""
        return round(self.hours * _NS_PER_HOUR)

    @property
    def bar_count(self) -> int:
        """Bars per symbol (the last one is partial when the duration is not a multiple)."""
        return -(-self.duration_ns // self.bar_ns)

    @property
    def episode_count(self) -> int:
        """Episodes per symbol."""
        if self.episodes_per_day == 0:
            return 0
        return max(1, round(self.episodes_per_day * self.hours / 24))

    def to_json(self) -> str:
        """Return the parameters as a JSON object (times as ISO-8601, tuples as lists).

        Examples
        --------
        >>> json.loads(SimulationParameters(seed=3).to_json())["seed"]
        3
        """
        values = asdict(self)
        values["start"] = self.start.isoformat()
        return json.dumps(values, sort_keys=True)


def _finite(name: str, value: float, *, low: float, strict: bool = False) -> None:
    if not math.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else "≥"
        msg = f"{name} must be a finite number {relation} {low:g}, was {value!r}"
        raise ParameterError(msg)


def _validate(p: SimulationParameters) -> None:
    if isinstance(p.seed, bool) or not isinstance(p.seed, int) or p.seed < 0:
        msg = f"seed must be a non-negative integer, was {p.seed!r}"
        raise ParameterError(msg)
    if not p.symbols or any(not isinstance(s, str) or not s for s in p.symbols):
        msg = f"symbols must be one or more non-empty names, was {p.symbols!r}"
        raise ParameterError(msg)
    if len(set(p.symbols)) != len(p.symbols):
        msg = f"symbols must be distinct, was {', '.join(p.symbols)}"
        raise ParameterError(msg)
    if p.start.tzinfo is None:
        msg = f"start must be timezone-aware (e.g. 2024-01-02T00:00:00Z), was {p.start}"
        raise ParameterError(msg)
    if p.bar_ns < _MIN_NS:
        msg = f"bar must be at least 1ms, was {p.bar!r}"
        raise ParameterError(msg)
    _finite("hours", p.hours, low=0.0, strict=True)
    if p.duration_ns < _MIN_NS:
        msg = f"hours must be at least one millisecond, was {p.hours!r}"
        raise ParameterError(msg)
    _finite("trades_per_hour", p.trades_per_hour, low=0.0, strict=True)
    _finite("trade_size_mean", p.trade_size_mean, low=1.0)
    _finite("quotes_per_trade", p.quotes_per_trade, low=0.0)
    _finite("quote_size_mean", p.quote_size_mean, low=1.0)
    _finite("requote_latency", p.requote_latency, low=0.0)
    _finite("initial_price", p.initial_price, low=0.0, strict=True)
    _finite("tick_size", p.tick_size, low=0.0, strict=True)
    _finite("spread", p.spread, low=0.0, strict=True)
    for name in (
        "volatility",
        "impact",
        "skew",
        "episodes_per_day",
        "accumulation_intensity",
        "distribution_drift",
        "reversal_move",
    ):
        _finite(name, getattr(p, name), low=0.0)
    _finite("inventory_reversion", p.inventory_reversion, low=0.0)
    if p.inventory_reversion > 1:
        msg = f"inventory_reversion must be between 0 and 1, was {p.inventory_reversion!r}"
        raise ParameterError(msg)
    for name in ("accumulation_bars", "distribution_bars", "reversal_bars"):
        bounds = getattr(p, name)
        if len(bounds) != 2 or not 1 <= bounds[0] <= bounds[1]:
            msg = f"{name} must be (min, max) bars with 1 ≤ min ≤ max, was {bounds!r}"
            raise ParameterError(msg)
    if p.family not in FAMILIES:
        msg = f"family must be one of {', '.join(FAMILIES)}, was {p.family!r}"
        raise ParameterError(msg)
    bounds = p.hold_bars
    if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1]:
        msg = f"hold_bars must be (min, max) bars with 0 ≤ min ≤ max, was {bounds!r}"
        raise ParameterError(msg)
    for name in ("overshoot", "clustering", "proxy_drift", "spread_variability"):
        _finite(name, getattr(p, name), low=0.0)
    _finite("distribution_spread", p.distribution_spread, low=0.0)
    if p.size_tail != 0:
        _finite("size_tail", p.size_tail, low=2.0, strict=True)
    _finite("excitation", p.excitation, low=0.0)
    if p.excitation > 0.9:
        msg = f"excitation must be between 0 and 0.9, was {p.excitation!r}"
        raise ParameterError(msg)
    if isinstance(p.market_makers, bool) or not isinstance(p.market_makers, int):
        msg = f"market_makers must be a whole number ≥ 1, was {p.market_makers!r}"
        raise ParameterError(msg)
    if p.market_makers < 1:
        msg = f"market_makers must be a whole number ≥ 1, was {p.market_makers!r}"
        raise ParameterError(msg)
    if p.gap_bars < 0:
        msg = f"gap_bars must be ≥ 0, was {p.gap_bars!r}"
        raise ParameterError(msg)
    longest = p.gap_bars + p.accumulation_bars[1] + p.distribution_bars[1] + p.reversal_bars[1]
    longest += p.hold_bars[1]
    if p.episode_count * longest > p.bar_count:
        msg = (
            f"{p.episode_count} episode(s) of up to {longest} bars (gap included) do not fit in "
            f"{p.bar_count} bars of {p.bar} (raise hours, or lower episodes_per_day, gap_bars or "
            f"the episode lengths)"
        )
        raise ParameterError(msg)


@dataclass(frozen=True)
class Simulation:
    """A simulated market: canonical ``trades`` and ``quotes`` and the per-bar ``truth``.

    ``trades``: ``ts, symbol, price, size, aggressor_side, trade_id`` sorted by ``ts``, where
    ``aggressor_side`` is the true side. ``quotes``: ``ts, symbol, bid_price, bid_size,
    ask_price, ask_size`` sorted by ``ts``. ``truth``: one row per symbol and bar on a regular grid
    (``ts`` = bar start), sorted by symbol and ``ts``: ``mm_inventory`` (true inventory at the bar
    end), ``phase`` (``accumulation``, ``distribution``, ``reversal``, ``neutral``),
    ``inventory_side`` (``long``/``short`` of the episode, null outside episodes), ``episode``
    (1, 2, … per symbol, null outside episodes) and ``fair_value`` (latent, at the bar end).
    """

    trades: pl.DataFrame
    quotes: pl.DataFrame
    truth: pl.DataFrame
    parameters: SimulationParameters


@dataclass(frozen=True)
class _Schedule:
    """Per-bar script of one symbol."""

    phase: npt.NDArray[np.int8]
    episode: npt.NDArray[np.int32]
    side: npt.NDArray[np.int8]
    target: FloatArray
    drift: FloatArray
    progress: FloatArray
    """Position of the bar within its phase, (i + ½) / length ∈ (0, 1); 0 outside episodes."""
    hold: npt.NDArray[np.bool_]
    """Bars of a hold between accumulation and distribution."""
    remaining: FloatArray
    """Bars left in the bar's phase, itself included (1 outside episodes)."""


def _schedule(p: SimulationParameters, rng: np.random.Generator, n_bars: int) -> _Schedule:
    """Place the episodes and script the target inventory and the fair-value drift per bar."""
    phase = np.zeros(n_bars, np.int8)
    episode = np.zeros(n_bars, np.int32)
    side = np.zeros(n_bars, np.int8)
    target_change = np.zeros(n_bars)
    drift = np.zeros(n_bars)
    progress = np.zeros(n_bars)
    hold = np.zeros(n_bars, np.bool_)
    remaining = np.ones(n_bars)
    n = p.episode_count
    if n:
        lengths = np.column_stack(
            [
                rng.integers(low, high, endpoint=True, size=n)
                for low, high in (p.accumulation_bars, p.distribution_bars, p.reversal_bars)
            ]
        )
        sides = rng.permutation(np.resize(np.array([1, -1]), n)) * rng.choice([1, -1])
        holds = (
            rng.integers(p.hold_bars[0], p.hold_bars[1], endpoint=True, size=n)
            if p.hold_bars[1] > 0
            else np.zeros(n, np.int64)
        )
        slack = n_bars - n * p.gap_bars - int(lengths.sum()) - int(holds.sum())
        spare = np.diff(np.sort(rng.integers(0, slack, endpoint=True, size=n)), prepend=0)
        rate = (
            p.accumulation_intensity * p.trades_per_hour * p.trade_size_mean * p.bar_ns
        ) / _NS_PER_HOUR
        position = 0
        for j in range(n):
            position += p.gap_bars + int(spare[j])
            a, d, r = (int(x) for x in lengths[j])
            h = int(holds[j])
            s = int(sides[j])
            accumulate = slice(position, position + a)
            held = slice(position + a, position + a + h)
            distribute = slice(position + a + h, position + a + h + d)
            revert = slice(position + a + h + d, position + a + h + d + r)
            for code, part in ((1, accumulate), (2, distribute), (3, revert)):
                phase[part] = code
                size = part.stop - part.start
                progress[part] = (np.arange(size) + 0.5) / size
                remaining[part] = size - np.arange(size)
            hold[held] = True
            episode[position : revert.stop] = j + 1
            side[position : revert.stop] = s
            peak = rate * a
            target_change[accumulate] = s * rate
            target_change[distribute] = -s * peak * (1.0 + p.overshoot) / d
            target_change[revert] = s * peak * p.overshoot / r
            drift[distribute] = -s * (p.skew * peak + p.distribution_drift) / d
            drift[revert] = -s * p.reversal_move / r
            position = revert.stop
    return _Schedule(
        phase, episode, side, np.cumsum(target_change), drift, progress, hold, remaining
    )


def _ar1(innovations: FloatArray, phi: float) -> FloatArray:
    """Return x_k = φ·x_{k−1} + u_k with x_{−1} = 0, vectorised (polars ``ewm_mean``)."""
    if phi == 1.0:
        return np.cumsum(innovations)
    if phi == 0.0:
        return innovations.copy()
    # ewm_mean(adjust=False): y_k = φ·y_{k−1} + (1 − φ)·x_k, so x = u / (1 − φ); y_0 = x_0 = 0.
    scaled = np.concatenate([[0.0], innovations / (1.0 - phi)])
    smoothed = pl.Series(scaled).ewm_mean(alpha=1.0 - phi, adjust=False).to_numpy()
    return np.asarray(smoothed[1:], dtype=np.float64)


def _split_lots(
    rng: np.random.Generator, total: IntArray, mean: float
) -> tuple[IntArray, IntArray]:
    """Split each bar's ``total`` lots into about total/mean trades of ≥ 1 lot, exactly.

    Returns the bar of each trade and its size.
    """
    count = np.where(total > 0, np.clip(np.rint(total / mean), 1, np.maximum(total, 1)), 0)
    count = count.astype(np.int64)
    bar = np.repeat(np.arange(total.size, dtype=np.int64), count)
    first = np.cumsum(count) - count
    last = np.cumsum(count) - 1
    weight = rng.exponential(size=bar.size)
    running = np.cumsum(weight)
    before = np.concatenate([[0.0], running])[first][bar]
    within = running - before
    spare = (total - count)[bar]
    boundary = np.minimum(np.floor(spare * within / within[last[bar]]), spare).astype(np.int64)
    boundary[last[count > 0]] = (total - count)[count > 0]
    previous = np.zeros_like(boundary)
    previous[1:] = boundary[:-1]
    previous[first[count > 0]] = 0
    return bar, boundary - previous + 1


def _to_price(ticks: FloatArray, tick: float) -> FloatArray:
    """Tick counts → prices, dividing by an integral 1/tick where possible (no 0.1+0.2 noise)."""
    per_unit = 1.0 / tick
    if abs(per_unit - round(per_unit)) < 1e-9:
        return ticks / round(per_unit)
    return ticks * tick


@dataclass(frozen=True)
class _Flow:
    """One symbol's trades before timing (per trade, unsorted) and its true inventory per bar."""

    bar: IntArray
    side: npt.NDArray[np.int8]
    size: FloatArray
    absorbed: npt.NDArray[np.bool_]
    """Trades whose impact is absorbed (the unloading flow of a distribution)."""
    tracked_fill: FloatArray
    """The tracked market maker's inventory change from each trade (its reservation skew)."""
    inventory: FloatArray
    """The tracked market maker's true inventory at each bar end."""
    spread: FloatArray
    """Quoted spread of each bar (price units)."""


def _sizes(p: SimulationParameters, rng: np.random.Generator, count: int) -> FloatArray:
    """Trade sizes in whole lots ≥ 1: geometric, or |Student-t| scaled to the mean."""
    if p.size_tail == 0:
        return rng.geometric(1.0 / p.trade_size_mean, size=count).astype(np.float64)
    nu = p.size_tail
    mean_abs = 2 * math.sqrt(nu) * math.gamma((nu + 1) / 2) / (math.sqrt(math.pi) * (nu - 1))
    mean_abs /= math.gamma(nu / 2)
    draws = np.abs(rng.standard_t(nu, size=count)) * (p.trade_size_mean / mean_abs)
    return np.maximum(np.rint(draws), 1.0)


def _ar_factor(rng: np.random.Generator, sigma: float, phi: float, n_bars: int) -> FloatArray:
    """Return exp of a stationary AR(1) of standard deviation ``sigma``, mean 1 (none if σ = 0)."""
    if sigma == 0:
        return np.ones(n_bars)
    shocks = rng.standard_normal(n_bars) * sigma * math.sqrt(1 - phi * phi)
    shocks[0] = rng.standard_normal() * sigma
    level = _ar1(shocks, phi)
    return np.exp(level - sigma * sigma / 2)


def _noise_sd(p: SimulationParameters, per_bar: float) -> float:
    """Return the standard deviation of one bar's noise net flow: √(trades · E[size²])."""
    second = p.trade_size_mean * (2 * p.trade_size_mean - 1)  # geometric E[X²]
    if p.size_tail:
        second = p.trade_size_mean**2 * _t_second_moment(p.size_tail)
    return math.sqrt(max(per_bar, 1e-12) * second)


def _t_second_moment(nu: float) -> float:
    """E[t²] / E[|t|]² of a Student-t with ν > 2 degrees of freedom."""
    mean_abs = 2 * math.sqrt(nu) * math.gamma((nu + 1) / 2) / (math.sqrt(math.pi) * (nu - 1))
    mean_abs /= math.gamma(nu / 2)
    return (nu / (nu - 2)) / (mean_abs * mean_abs)


def _other_flow(
    p: SimulationParameters, rng: np.random.Generator, n_bars: int, per_bar: float
) -> tuple[IntArray, npt.NDArray[np.int8], FloatArray]:
    """Other participants' aggressive flow, filled by other market makers (``proxy_drift``)."""
    if p.proxy_drift == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0)
    scale = p.proxy_drift * _noise_sd(p, per_bar)
    shocks = rng.standard_normal(n_bars) * scale * math.sqrt(1 - 0.81)
    flow = np.rint(_ar1(shocks, 0.9))
    bar, size = _split_lots(rng, np.abs(flow).astype(np.int64), p.trade_size_mean)
    return bar, np.sign(flow[bar]).astype(np.int8), size.astype(np.float64)


def _inventory_flow(
    p: SimulationParameters, rng: np.random.Generator, bar_length: IntArray, script: _Schedule
) -> _Flow:
    """Family ``inventory``: scripted target inventory, noise imprint, directed trades."""
    n_bars = bar_length.size
    activity = _ar_factor(rng, p.clustering, 0.95, n_bars)
    counts = rng.poisson(p.trades_per_hour * bar_length / _NS_PER_HOUR * activity)
    noise_bar = np.repeat(np.arange(n_bars, dtype=np.int64), counts)
    noise_size = _sizes(p, rng, noise_bar.size)
    noise_side = np.where(rng.random(noise_bar.size) < 0.5, 1, -1).astype(np.int8)
    noise_flow = np.bincount(noise_bar, weights=noise_side * noise_size, minlength=n_bars).astype(
        np.float64
    )

    # True inventory at bar ends; the flow the noise traders leave over is executed by the
    # episode's (or the skew's) directed traders.
    imprint = _ar1(-noise_flow, 1.0 - p.inventory_reversion)
    inventory = np.rint(script.target + imprint) + 0.0
    directed = -np.diff(inventory, prepend=0.0) - noise_flow
    directed_bar, directed_size = _split_lots(
        rng, np.abs(np.rint(directed)).astype(np.int64), p.trade_size_mean
    )
    directed_side = np.sign(directed[directed_bar]).astype(np.int8)
    per_bar = p.trades_per_hour * p.bar_ns / _NS_PER_HOUR
    other_bar, other_side, other_size = _other_flow(p, rng, n_bars, per_bar)
    spread = p.spread * _ar_factor(rng, p.spread_variability, 0.9, n_bars)
    spread *= np.where(script.phase == PHASES.index(DISTRIBUTION), 1 + p.distribution_spread, 1)
    side = np.concatenate([noise_side, directed_side, other_side])
    size = np.concatenate([noise_size, directed_size.astype(np.float64), other_size])
    tracked = np.concatenate(
        [np.ones(noise_bar.size + directed_bar.size), np.zeros(other_bar.size)]
    )
    distribution = script.phase[directed_bar] == PHASES.index(DISTRIBUTION)
    return _Flow(
        bar=np.concatenate([noise_bar, directed_bar, other_bar]),
        side=side,
        size=size,
        absorbed=np.concatenate(
            [np.zeros(noise_bar.size, bool), distribution, np.zeros(other_bar.size, bool)]
        ),
        tracked_fill=-side * size * tracked,
        inventory=inventory,
        spread=spread,
    )


def _hawkes_flow(
    p: SimulationParameters, rng: np.random.Generator, bar_length: IntArray, script: _Schedule
) -> _Flow:
    """Family ``hawkes``: clustered flow, competing market makers, state-dependent unloads.

    Buy and sell arrivals per bar follow a discrete-time bivariate Hawkes process (Bacry,
    Mastromatteo & Muzy 2015, *Market Microstructure and Liquidity* 1(1)): intensity
    λ±_k = μ·a_k + η·(1 − ρ)·(0.7·e±_k + 0.3·e∓_k), e±_k = ρ·e±_{k−1} + n±_{k−1}, branching ratio
    η = ``excitation``, ρ = 0.7, a_k the ``clustering`` factor. The tracked market maker, one of
    ``market_makers``, fills each side's noise volume with probability share± =
    (1/n)·(1 ± clip(θ·q/(2·V/n), ±0.3)) (V the mean noise volume per side and bar, θ =
    ``inventory_reversion``): it quotes tighter on the side that flattens it (Avellaneda &
    Stoikov 2008), which pulls a small inventory q back by about θ per bar (a passive unload
    that −CVD cannot see, capped at 30 % of its share). Other market makers
    hedge 5 % of their inventory per bar with aggressive trades. Episodes: a client's block
    trades, filled by the tracked market maker, arrive with a sin² profile over the
    accumulation; in the distribution an impatient opposite buyer (long inventory) lifts the
    tracked market maker's offers (85 % of its volume) until q has crossed −overshoot × the
    peak or the phase ends; that flow is absorbed. Spreads scale with √(intensity / mean).
    The loop runs over bars (numpy within each bar), never over trades.
    """
    n_bars = bar_length.size
    bar_share = bar_length / p.bar_ns
    per_side = p.trades_per_hour * p.bar_ns / _NS_PER_HOUR / 2
    activity = _ar_factor(rng, p.clustering, 0.95, n_bars)
    base = 1.0 / p.market_makers
    volume_side = per_side * p.trade_size_mean
    pull = p.inventory_reversion / (2 * base * max(volume_side, 1e-12))
    rate = 2 * p.accumulation_intensity * volume_side
    mu = per_side * (1 - p.excitation)
    rho, eta = 0.7, p.excitation
    counts = np.zeros((n_bars, 2), np.int64)
    intensity = np.zeros(n_bars)
    inventory = np.zeros(n_bars)
    fills_noise: list[FloatArray] = []
    client = np.zeros(n_bars)
    sizes: list[FloatArray] = []
    excite = np.zeros(2)
    q, others, peak = 0.0, 0.0, 0.0
    hedge = np.zeros(n_bars)
    accumulation, distribution = PHASES.index(ACCUMULATION), PHASES.index(DISTRIBUTION)
    for k in range(n_bars):
        lam = mu * activity[k] + eta * (1 - rho) * (0.7 * excite + 0.3 * excite[::-1])
        lam = lam * bar_share[k]
        n = rng.poisson(lam)
        counts[k] = n
        intensity[k] = lam.sum()
        size = _sizes(p, rng, int(n.sum()))
        sizes.append(size)
        buys, sells = size[: n[0]].sum(), size[n[0] :].sum()
        tilt = min(0.3, max(-0.3, pull * q))
        share_buy, share_sell = base * (1 + tilt), base * (1 - tilt)
        mine_buy = rng.binomial(int(buys), share_buy)
        mine_sell = rng.binomial(int(sells), share_sell)
        fills_noise.append(np.array([share_buy, share_sell]))
        s = int(script.side[k])
        flow = 0.0  # the episode's aggressive net flow (buys > 0)
        if script.phase[k] == accumulation:
            bump = 2.0 * math.sin(math.pi * script.progress[k]) ** 2
            flow = -s * round(rate * bump * rng.gamma(4.0) / 4.0)
            q_next = q - flow
            peak = max(peak, abs(q_next))
            q = q_next
        elif script.phase[k] == distribution and s * q > -p.overshoot * peak:
            gap = s * q + p.overshoot * peak
            lots = round(gap / script.remaining[k] * rng.gamma(4.0) / 4.0 / 0.85)
            flow = s * lots
            q -= s * rng.binomial(lots, 0.85)
        elif script.phase[k] == 0 and not script.hold[k]:
            peak = 0.0
        q += mine_sell - mine_buy
        client[k] = flow
        hedge[k] = -round(0.05 * others)
        others += (sells - mine_sell) - (buys - mine_buy) + hedge[k]
        inventory[k] = q
        excite = rho * excite + n
    noise_size = np.concatenate(sizes) if sizes else np.zeros(0)
    per_bar_side = np.repeat(np.array([1, -1], np.int8)[None, :], n_bars, axis=0)
    noise_side = np.repeat(per_bar_side.ravel(), counts.ravel()).astype(np.int8)
    noise_bar = np.repeat(np.arange(n_bars, dtype=np.int64), counts.sum(axis=1))
    share = np.vstack(fills_noise) if fills_noise else np.zeros((0, 2))
    noise_share = np.where(noise_side > 0, share[noise_bar, 0], share[noise_bar, 1])
    episode_bar, episode_size = _split_lots(rng, np.abs(client).astype(np.int64), p.trade_size_mean)
    episode_side = np.sign(client[episode_bar]).astype(np.int8)
    hedge_bar, hedge_size = _split_lots(rng, np.abs(hedge).astype(np.int64), p.trade_size_mean)
    hedge_side = np.sign(hedge[hedge_bar]).astype(np.int8)
    other_bar, other_side, other_size = _other_flow(p, rng, n_bars, 2 * per_side)
    mean_intensity = max(2 * per_side, 1e-12)
    spread = p.spread * _ar_factor(rng, p.spread_variability, 0.9, n_bars)
    spread *= np.sqrt(np.maximum(intensity / np.maximum(bar_share, 1e-12), 1e-9) / mean_intensity)
    spread *= np.where(script.phase == distribution, 1 + p.distribution_spread, 1)
    side = np.concatenate([noise_side, episode_side, hedge_side, other_side])
    size = np.concatenate(
        [noise_size, episode_size.astype(np.float64), hedge_size.astype(np.float64), other_size]
    )
    unloading = script.phase[episode_bar] == distribution
    weight = np.concatenate(
        [noise_share, np.where(unloading, 0.85, 1.0), np.zeros(hedge_bar.size + other_bar.size)]
    )
    absorbed = np.concatenate(
        [
            np.zeros(noise_bar.size, bool),
            unloading,
            np.zeros(hedge_bar.size + other_bar.size, bool),
        ]
    )
    return _Flow(
        bar=np.concatenate([noise_bar, episode_bar, hedge_bar, other_bar]),
        side=side,
        size=size,
        absorbed=absorbed,
        tracked_fill=-side * size * weight,
        inventory=inventory,
        spread=np.maximum(spread, p.tick_size),
    )


def _symbol_market(
    p: SimulationParameters, index: int, symbol: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Simulate one symbol: its trades, quotes and truth (times relative to ``start``)."""
    rng = np.random.default_rng([p.seed, index])
    bar_ns, duration_ns, n_bars = p.bar_ns, p.duration_ns, p.bar_count
    edges = np.minimum(np.arange(n_bars + 1, dtype=np.int64) * bar_ns, duration_ns)
    bar_length = np.diff(edges)
    script = _schedule(p, rng, n_bars)
    generate = _hawkes_flow if p.family == "hawkes" else _inventory_flow
    flow = generate(p, rng, bar_length, script)
    inventory = flow.inventory

    bars = flow.bar
    low = np.where(bars == 0, 1, 0)
    offset = edges[bars] + rng.integers(low, bar_length[bars])
    order = np.argsort(offset, kind="stable")
    trade_ts = offset[order]
    side = flow.side[order]
    size = flow.size[order]
    absorbed = flow.absorbed[order]
    signed = side * size
    held = np.concatenate([[0.0], np.cumsum(flow.tracked_fill[order])])
    pushed = np.concatenate([[0.0], np.cumsum(np.where(absorbed, 0.0, signed))])

    # Quote events: the opening quote, a re-quote after every fill, fair-value updates.
    latency = max(1, round(p.requote_latency * 1e9))
    updates = rng.integers(0, duration_ns, size=rng.poisson(p.quotes_per_trade * trade_ts.size))
    quote_ts = np.sort(np.concatenate([[0], trade_ts + latency, updates]))
    quote_ts = quote_ts[(quote_ts < duration_ns) & np.append(quote_ts[1:] != quote_ts[:-1], True)]
    elapsed = np.diff(quote_ts, prepend=0) / _NS_PER_HOUR
    walk = p.volatility * np.cumsum(np.sqrt(elapsed) * rng.standard_normal(quote_ts.size))
    seen = np.searchsorted(trade_ts, quote_ts, side="left")
    scripted = np.interp(quote_ts, edges, np.concatenate([[0.0], np.cumsum(script.drift)]))
    fair = p.initial_price + walk + p.impact * pushed[seen] + scripted
    reservation = fair - p.skew * held[seen]
    quote_bar = np.minimum(quote_ts // bar_ns, n_bars - 1)
    half = flow.spread[quote_bar] / 2
    bid_ticks = np.maximum(np.floor((reservation - half) / p.tick_size + 1e-9), 1.0)
    ask_ticks = np.maximum(np.ceil((reservation + half) / p.tick_size - 1e-9), bid_ticks + 1)
    bid_price = _to_price(bid_ticks, p.tick_size)
    ask_price = _to_price(ask_ticks, p.tick_size)
    bid_size = rng.geometric(1.0 / p.quote_size_mean, size=quote_ts.size).astype(np.float64)
    ask_size = rng.geometric(1.0 / p.quote_size_mean, size=quote_ts.size).astype(np.float64)

    # Every trade at the quote strictly before it: a buy at the ask, a sell at the bid.
    standing = np.searchsorted(quote_ts, trade_ts, side="left") - 1
    price = np.where(side > 0, ask_price[standing], bid_price[standing])

    origin = (p.start - _EPOCH) // timedelta(microseconds=1) * 1000
    trades = pl.DataFrame(
        {
            TS: trade_ts + origin,
            SYMBOL: pl.repeat(symbol, trade_ts.size, eager=True),
            PRICE: price,
            SIZE: size,
            AGGRESSOR_SIDE: side,
            TRADE_ID: np.arange(1, trade_ts.size + 1),
        }
    ).with_columns(pl.format("{}-{}", pl.col(SYMBOL), pl.col(TRADE_ID)).alias(TRADE_ID))
    quotes = pl.DataFrame(
        {
            TS: quote_ts + origin,
            SYMBOL: pl.repeat(symbol, quote_ts.size, eager=True),
            BID_PRICE: bid_price,
            BID_SIZE: bid_size,
            ASK_PRICE: ask_price,
            ASK_SIZE: ask_size,
        }
    )
    truth = pl.DataFrame(
        {
            SYMBOL: pl.repeat(symbol, n_bars, eager=True),
            TS: edges[:-1] + origin,
            MM_INVENTORY: inventory,
            PHASE: np.array(PHASES)[script.phase],
            INVENTORY_SIDE: np.where(script.side > 0, "long", "short"),
            EPISODE: script.episode,
            FAIR_VALUE: fair[np.searchsorted(quote_ts, edges[1:], side="left") - 1],
        }
    ).with_columns(
        pl.when(pl.col(EPISODE) > 0).then(pl.col(c)).alias(c) for c in (INVENTORY_SIDE, EPISODE)
    )
    return (
        trades.cast(TRADES_SCHEMA),
        quotes.cast(QUOTES_SCHEMA),
        truth.cast(TRUTH_SCHEMA),
    )


def simulate(parameters: SimulationParameters) -> Simulation:
    """Simulate a market whose market maker cycles through accumulation and distribution.

    The model (module docstring): a latent fair value, a market maker quoting around a
    reservation price r = fair − κ·I skewed against its inventory (Avellaneda & Stoikov 2008,
    *Quantitative Finance* 8(3):217-224, linear form), Poisson noise traders, and scripted
    accumulation → distribution → reversal episodes. The market maker is the passive side of every
    trade, so the true inventory is I = −Σ aggressor_side · size (metrics.md §b.2, §12.1).
    Everything is vectorised with numpy; the only Python loops run over symbols and episodes.

    Parameters
    ----------
    parameters
        The market; the same parameters (seed included) give identical frames.

    Returns
    -------
    Simulation
        Eager canonical ``trades`` and ``quotes`` sorted by ``ts`` and the per-bar ``truth``
        (see :class:`Simulation`).

    Examples
    --------
    >>> quiet = SimulationParameters(seed=7, symbols=("X", "Y"), hours=0.5, episodes_per_day=0)
    >>> market = simulate(quiet)
    >>> market.trades.columns
    ['ts', 'symbol', 'price', 'size', 'aggressor_side', 'trade_id']
    >>> market.truth.group_by("symbol", "phase").len().sort("symbol")
    shape: (2, 3)
    ┌────────┬─────────┬─────┐
    │ symbol ┆ phase   ┆ len │
    │ ---    ┆ ---     ┆ --- │
    │ str    ┆ str     ┆ u32 │
    ╞════════╪═════════╪═════╡
    │ X      ┆ neutral ┆ 30  │
    │ Y      ┆ neutral ┆ 30  │
    └────────┴─────────┴─────┘
    """
    parts = [_symbol_market(parameters, i, s) for i, s in enumerate(parameters.symbols)]
    trades = pl.concat([t for t, _, _ in parts]).sort(TS, maintain_order=True)
    quotes = pl.concat([q for _, q, _ in parts]).sort(TS, maintain_order=True)
    truth = pl.concat([b for _, _, b in parts]).sort(SYMBOL, TS, maintain_order=True)
    return Simulation(trades=trades, quotes=quotes, truth=truth, parameters=parameters)


def write_simulation(
    simulation: Simulation, directory: Path, *, metadata: dict[str, str] | None = None
) -> list[Path]:
    """Write ``trades.parquet``, ``quotes.parquet`` and ``truth.parquet`` into ``directory``.

    The directory is created when missing. Each file is written to a temporary file in the
    directory and renamed into place, so no partial file is ever left behind. Every file carries
    parquet key-value metadata: ``mmflow.schema`` (``trades/1``, ``quotes/1``, ``truth/1``) and
    ``mmflow.version``, then ``metadata`` (which wins on equal keys), then
    ``mmflow.simulation.parameters`` (the parameters as JSON).

    Parameters
    ----------
    simulation
        The result of :func:`simulate`.
    directory
        Destination directory.
    metadata
        Extra key-value metadata for every file.

    Returns
    -------
    list[Path]
        The three paths written, in the order trades, quotes, truth.

    Raises
    ------
    MmflowError
        When the directory cannot be created.

    Examples
    --------
    >>> import tempfile
    >>> market = simulate(SimulationParameters(symbols=("X",), hours=0.1, episodes_per_day=0))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [path.name for path in write_simulation(market, Path(tmp) / "sim")]
    ['trades.parquet', 'quotes.parquet', 'truth.parquet']
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"{directory}: cannot create the output directory ({error.strerror or error})"
        raise MmflowError(msg) from None
    parameters = simulation.parameters.to_json()
    written: list[Path] = []
    for name, frame in (
        ("trades", simulation.trades),
        ("quotes", simulation.quotes),
        ("truth", simulation.truth),
    ):
        keys = {"mmflow.schema": f"{name}/{SCHEMA_VERSION}", "mmflow.version": __version__}
        keys.update(metadata or {})
        keys[PARAMETERS_KEY] = parameters
        path = directory / f"{name}.parquet"
        write_file(frame, path, keys)
        written.append(path)
    return written
