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
    PRICE,
    SCHEMA_VERSION,
    SIZE,
    SYMBOL,
    TIMESTAMP,
    TRADE_ID,
    TS,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MM_INVENTORY: Final = "mm_inventory"
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "accumulation_bars", tuple(self.accumulation_bars))
        object.__setattr__(self, "distribution_bars", tuple(self.distribution_bars))
        object.__setattr__(self, "reversal_bars", tuple(self.reversal_bars))
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
    if p.gap_bars < 0:
        msg = f"gap_bars must be ≥ 0, was {p.gap_bars!r}"
        raise ParameterError(msg)
    longest = p.gap_bars + p.accumulation_bars[1] + p.distribution_bars[1] + p.reversal_bars[1]
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


def _schedule(p: SimulationParameters, rng: np.random.Generator, n_bars: int) -> _Schedule:
    """Place the episodes and script the target inventory and the fair-value drift per bar."""
    phase = np.zeros(n_bars, np.int8)
    episode = np.zeros(n_bars, np.int32)
    side = np.zeros(n_bars, np.int8)
    target_change = np.zeros(n_bars)
    drift = np.zeros(n_bars)
    n = p.episode_count
    if n:
        lengths = np.column_stack(
            [
                rng.integers(low, high, endpoint=True, size=n)
                for low, high in (p.accumulation_bars, p.distribution_bars, p.reversal_bars)
            ]
        )
        sides = rng.permutation(np.resize(np.array([1, -1]), n)) * rng.choice([1, -1])
        slack = n_bars - n * p.gap_bars - int(lengths.sum())
        spare = np.diff(np.sort(rng.integers(0, slack, endpoint=True, size=n)), prepend=0)
        rate = (
            p.accumulation_intensity * p.trades_per_hour * p.trade_size_mean * p.bar_ns
        ) / _NS_PER_HOUR
        position = 0
        for j in range(n):
            position += p.gap_bars + int(spare[j])
            a, d, r = (int(x) for x in lengths[j])
            s = int(sides[j])
            accumulate = slice(position, position + a)
            distribute = slice(position + a, position + a + d)
            revert = slice(position + a + d, position + a + d + r)
            for code, part in enumerate((accumulate, distribute, revert), start=1):
                phase[part] = code
            episode[position : position + a + d + r] = j + 1
            side[position : position + a + d + r] = s
            peak = rate * a
            target_change[accumulate] = s * rate
            target_change[distribute] = -s * peak / d
            drift[distribute] = -s * (p.skew * peak + p.distribution_drift) / d
            drift[revert] = -s * p.reversal_move / r
            position += a + d + r
    return _Schedule(phase, episode, side, np.cumsum(target_change), drift)


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


def _symbol_market(
    p: SimulationParameters, index: int, symbol: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Simulate one symbol: its trades, quotes and truth (times relative to ``start``)."""
    rng = np.random.default_rng([p.seed, index])
    bar_ns, duration_ns, n_bars = p.bar_ns, p.duration_ns, p.bar_count
    edges = np.minimum(np.arange(n_bars + 1, dtype=np.int64) * bar_ns, duration_ns)
    bar_length = np.diff(edges)
    script = _schedule(p, rng, n_bars)

    # Noise traders: Poisson arrivals per bar, fair-coin sides, geometric lots.
    counts = rng.poisson(p.trades_per_hour * bar_length / _NS_PER_HOUR)
    noise_bar = np.repeat(np.arange(n_bars, dtype=np.int64), counts)
    noise_size = rng.geometric(1.0 / p.trade_size_mean, size=noise_bar.size).astype(np.float64)
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

    bars = np.concatenate([noise_bar, directed_bar])
    low = np.where(bars == 0, 1, 0)
    offset = edges[bars] + rng.integers(low, bar_length[bars])
    order = np.argsort(offset, kind="stable")
    trade_ts = offset[order]
    side = np.concatenate([noise_side, directed_side])[order]
    size = np.concatenate([noise_size, directed_size.astype(np.float64)])[order]
    absorbed = np.concatenate(
        [np.zeros(noise_bar.size, bool), script.phase[directed_bar] == PHASES.index(DISTRIBUTION)]
    )[order]
    signed = side * size
    held = np.concatenate([[0.0], -np.cumsum(signed)])
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
    half = p.spread / 2
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
