"""The simulated markets' generating processes: episode schedules, order flow and prices.

Private to :mod:`mmflow.simulate`, whose docstring describes the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

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
    TRADE_ID,
    TS,
)
from mmflow.simulate.model import (
    _EPOCH,
    _NS_PER_HOUR,
    ACCUMULATION,
    DISTRIBUTION,
    EPISODE,
    FAIR_VALUE,
    INVENTORY_SIDE,
    PHASE,
    PHASES,
    QUOTES_SCHEMA,
    TRADES_SCHEMA,
    TRUTH_SCHEMA,
    FloatArray,
    IntArray,
    SimulationParameters,
)

__all__ = ["_symbol_market"]


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
    noise_bar, noise_side, noise_size, noise_share = _noise_trades(sizes, counts, fills_noise)
    episode_bar, episode_size = _split_lots(rng, np.abs(client).astype(np.int64), p.trade_size_mean)
    episode_side = np.sign(client[episode_bar]).astype(np.int8)
    hedge_bar, hedge_size = _split_lots(rng, np.abs(hedge).astype(np.int64), p.trade_size_mean)
    hedge_side = np.sign(hedge[hedge_bar]).astype(np.int8)
    other_bar, other_side, other_size = _other_flow(p, rng, n_bars, 2 * per_side)
    spread = _hawkes_spread(p, rng, intensity / np.maximum(bar_share, 1e-12), script, per_side)
    unloading = script.phase[episode_bar] == distribution
    return _assembled_flow(
        [
            (noise_bar, noise_side, noise_size),
            (episode_bar, episode_side, episode_size.astype(np.float64)),
            (hedge_bar, hedge_side, hedge_size.astype(np.float64)),
            (other_bar, other_side, other_size),
        ],
        noise_share,
        unloading,
        inventory,
        np.maximum(spread, p.tick_size),
    )


def _hawkes_spread(
    p: SimulationParameters,
    rng: np.random.Generator,
    intensity: FloatArray,
    script: _Schedule,
    per_side: float,
) -> FloatArray:
    """Spread per bar: the AR base times √(intensity / mean), wider in distributions."""
    mean_intensity = max(2 * per_side, 1e-12)
    spread = p.spread * _ar_factor(rng, p.spread_variability, 0.9, intensity.size)
    spread *= np.sqrt(np.maximum(intensity, 1e-9) / mean_intensity)
    distribution = PHASES.index(DISTRIBUTION)
    return np.where(script.phase == distribution, spread * (1 + p.distribution_spread), spread)


def _noise_trades(
    sizes: list[FloatArray], counts: IntArray, fills_noise: list[FloatArray]
) -> tuple[IntArray, npt.NDArray[np.int8], FloatArray, FloatArray]:
    """Expand per-bar noise counts into trades: bar, side, size and the dealers' fill share."""
    n_bars = counts.shape[0]
    noise_size = np.concatenate(sizes) if sizes else np.zeros(0)
    per_bar_side = np.repeat(np.array([1, -1], np.int8)[None, :], n_bars, axis=0)
    noise_side = np.repeat(per_bar_side.ravel(), counts.ravel()).astype(np.int8)
    noise_bar = np.repeat(np.arange(n_bars, dtype=np.int64), counts.sum(axis=1))
    share = np.vstack(fills_noise) if fills_noise else np.zeros((0, 2))
    noise_share = np.where(noise_side > 0, share[noise_bar, 0], share[noise_bar, 1])
    return noise_bar, noise_side, noise_size, noise_share


def _assembled_flow(
    parts: list[tuple[IntArray, npt.NDArray[np.int8], FloatArray]],
    noise_share: FloatArray,
    unloading: npt.NDArray[np.bool_],
    inventory: FloatArray,
    spread: FloatArray,
) -> _Flow:
    """Join noise, episode, hedge and other trades (in that order) into one :class:`_Flow`.

    The tracked dealer fills: the noise trades' share, 85 % of episode trades while unloading
    (absorbed), all of the other episode trades, none of hedge and other trades.
    """
    noise_bar, hedge_bar, other_bar = parts[0][0], parts[2][0], parts[3][0]
    side = np.concatenate([part[1] for part in parts])
    size = np.concatenate([part[2] for part in parts])
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
        bar=np.concatenate([part[0] for part in parts]),
        side=side,
        size=size,
        absorbed=absorbed,
        tracked_fill=-side * size * weight,
        inventory=inventory,
        spread=spread,
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
    trades = _trades_frame(symbol, trade_ts + origin, price, size, side)
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
    bar_end_fair = fair[np.searchsorted(quote_ts, edges[1:], side="left") - 1]
    truth = _truth_frame(symbol, edges[:-1] + origin, inventory, script, bar_end_fair)
    return (
        trades.cast(TRADES_SCHEMA),
        quotes.cast(QUOTES_SCHEMA),
        truth.cast(TRUTH_SCHEMA),
    )


def _trades_frame(
    symbol: str, ts: IntArray, price: FloatArray, size: FloatArray, side: npt.NDArray[np.int8]
) -> pl.DataFrame:
    """Return the trades of one symbol, numbered ``SYMBOL-1``, ``SYMBOL-2`` and so on."""
    return pl.DataFrame(
        {
            TS: ts,
            SYMBOL: pl.repeat(symbol, ts.size, eager=True),
            PRICE: price,
            SIZE: size,
            AGGRESSOR_SIDE: side,
            TRADE_ID: np.arange(1, ts.size + 1),
        }
    ).with_columns(pl.format("{}-{}", pl.col(SYMBOL), pl.col(TRADE_ID)).alias(TRADE_ID))


def _truth_frame(
    symbol: str, ts: IntArray, inventory: FloatArray, script: _Schedule, fair: FloatArray
) -> pl.DataFrame:
    """Return the per-bar truth of one symbol (side and episode null outside episodes)."""
    return pl.DataFrame(
        {
            SYMBOL: pl.repeat(symbol, ts.size, eager=True),
            TS: ts,
            MM_INVENTORY: inventory,
            PHASE: np.array(PHASES)[script.phase],
            INVENTORY_SIDE: np.where(script.side > 0, "long", "short"),
            EPISODE: script.episode,
            FAIR_VALUE: fair,
        }
    ).with_columns(
        pl.when(pl.col(EPISODE) > 0).then(pl.col(c)).alias(c) for c in (INVENTORY_SIDE, EPISODE)
    )
