"""The simulation's parameters, output schemas and result type; see :mod:`mmflow.simulate`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from mmflow.durations import CALENDAR_UNITS, DURATION_PART, DURATION_TEXT, NANOSECONDS
from mmflow.errors import ParameterError
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    MM_INVENTORY,
    PRICE,
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
    parts = DURATION_PART.findall(every) if DURATION_TEXT.fullmatch(every) else []
    if not parts or any(unit in CALENDAR_UNITS for _, unit in parts):
        msg = f"bar {every!r} is not a fixed duration, was expected like 1s, 500ms, 1m, 1h"
        raise ParameterError(msg)
    return sum(int(count) * NANOSECONDS[unit] for count, unit in parts)


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
    _validate_counts(p)


def _validate_counts(p: SimulationParameters) -> None:
    """Check the market-maker count, the gap and that the episodes fit in the bars."""
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
