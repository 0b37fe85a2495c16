"""The numerical core of the distribution detector (metrics.md §12.4, issue 10).

Per series (one symbol, or one symbol and session) of bars, from arrays: unit-free causal
features of the inventory path relative to a rolling baseline, a logistic model that turns them
into a calibrated probability that the bar is part of a distribution, and a state machine over
bars with explicit entries and exits. Everything of bar k uses bars ≤ k only.

Notation: u_k = clip(ΔI_k / σ₁_k, −c, c), the bar's inventory change in units of the trailing
flow noise σ₁ (clipped at c = :data:`CLIP` for heavy tails; normalising by the trailing σ₁ makes
it scale-free and follows the activity); X_k = Σ_{i≤k} u_i / r_i, the normalised inventory
path, with r the drift ratio of :func:`drift_ratio` (≥ 1: how much faster than a random walk
the proxy spreads persistently, so that a proxy random-walking under other participants' flow
does not look like accumulation or an unload; bars before r exists are not warm). For an
orientation s = +1 (long) or −1 (short), x = s·X and, over the last M bars (``baseline``): k*
the latest bar at the maximum of x (the **peak**), t* the earlier bar of the window that makes
the rise most significant, argmax_t (x_{k*} − x_t)/√(k* − t) (the **trough**: the rolling
baseline), n = k* − t*, j = k − k*. Features (each clipped to a fixed range):

* ``rise_z`` = (x_{k*} − x_{t*}) / √max(n, 1): how significantly inventory rose trough → peak;
* ``draw_z`` = (x_{k*} − x_k) / √max(j, 1): drawdown since the peak, the generalised likelihood
  ratio statistic of a drift change at k* (slope since the peak, in noise units);
* ``give_back`` = (x_{k*} − x_k) / max(x_{k*} − x_{t*}, 1): share of the rise unloaded;
* ``recent_z`` = (x_{k−w} − x_k) / √w: still unloading over the last w bars;
* ``follow_z`` = s·(P_k − P_{k*}) / (σ_P·√max(j, 1)) and ``recent_follow_z`` = s·(P_k −
  P_{k−W}) / (σ_P·√W): price moved with the unloading flow (buying when long) since the peak
  and over the last W bars, in price-noise units (absorption, since the peak and recently);
* ``build_follow_z`` = s·(P_{k*} − P_{t*}) / (σ_P·√max(n, 1)): price during the build-up;
* ``both_z`` = min(rise_z, draw_z): rise *and* drawdown;
* ``log_built`` = ln max(n, 1), ``log_since`` = ln max(j, 1) and ``rise_rate`` = (x_{k*} −
  x_{t*}) / max(n, 1): how long the rise took, how old the peak is and how fast inventory
  rose per bar (noise units). A random-walking or persistent proxy reaches a given
  ``rise_z`` through long, slow builds (median 65-75 bars on the tuning cells without
  episodes) where an episode's accumulation is fast (median 26-42 bars); ``rise_z`` alone
  cannot tell them apart (the price-response revision, ``docs/phases.md``).

p_s = 1 / (1 + exp(−(β₀ + Σ β_i·t_i))) over the terms t of :func:`design` (standardised
features and their pairwise products: "rise *and* drawdown" needs interactions) with
coefficients :func:`model` (logistic regression: Cox 1958, *J. Royal Statistical Society B*
20(2):215-242; package data ``phase_model.json``, fitted by ``benchmarks/phase_robustness.py
--train`` on both simulator families and eight regimes, tuning seeds only). The state machine
and its thresholds are documented in :func:`detect`; ``docs/phases.md`` records how they were
set.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "CLIP",
    "DRIFT_HORIZON",
    "DRIFT_MEMORY",
    "DRIFT_QUANTILE",
    "FEATURES",
    "Detection",
    "FloatArray",
    "IntArray",
    "Model",
    "Oriented",
    "Thresholds",
    "cusum",
    "design",
    "detect",
    "drift_adjusted_path",
    "drift_ratio",
    "model",
    "normalised_path",
    "oriented",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CLIP: Final = 4.0
"""Per-bar inventory changes are clipped at ±CLIP flow-noise units (heavy tails)."""

FEATURES: Final = (
    "rise_z",
    "draw_z",
    "give_back",
    "recent_z",
    "follow_z",
    "recent_follow_z",
    "build_follow_z",
    "both_z",
    "log_built",
    "log_since",
    "rise_rate",
)
"""Names of the model's features, in coefficient order."""

_RANGES: Final = {
    "rise_z": (0.0, 12.0),
    "draw_z": (-6.0, 12.0),
    "give_back": (-1.0, 2.0),
    "recent_z": (-6.0, 6.0),
    "follow_z": (-6.0, 6.0),
    "recent_follow_z": (-6.0, 6.0),
    "build_follow_z": (-6.0, 6.0),
    "both_z": (-6.0, 12.0),
    "log_built": (0.0, 5.0),
    "rise_rate": (0.0, 4.0),
    "log_since": (0.0, 5.0),
}
_CHUNK: Final = 32_768


@dataclass(frozen=True)
class Oriented:
    """Statistics of one orientation (long: s = +1, short: s = −1), one value per bar."""

    peak_index: IntArray
    trough_index: IntArray
    features: FloatArray
    """Bars × :data:`FEATURES`, clipped."""


def design(features: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:
    """Model terms: standardised features z = (f − mean)/scale, then every z_i·z_j with i ≤ j."""
    z = (features - mean) / scale
    first, second = np.triu_indices(z.shape[1])
    return np.asarray(np.hstack([z, z[:, first] * z[:, second]]), dtype=np.float64)


@dataclass(frozen=True)
class Model:
    """Logistic model of P(distribution | features) on :func:`design` terms."""

    intercept: float
    coefficients: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    evidence: float
    """Default evidence threshold h, set from the detector's rate on episode-free markets."""

    def probability(self, features: FloatArray) -> FloatArray:
        """Return p = 1 / (1 + e^{−(β₀ + β·terms)}) per row of ``features``.

        Evaluated as β₀ + z·b + Σ_i z_i (B z)_i with B the quadratic coefficients as an upper
        triangular matrix (the same sum as over :func:`design`'s terms, without building them).
        """
        mean, scale = np.asarray(self.mean), np.asarray(self.scale)
        z = (features - mean) / scale
        width = z.shape[1]
        beta = np.asarray(self.coefficients, dtype=np.float64)
        quadratic = np.zeros((width, width))
        quadratic[np.triu_indices(width)] = beta[width:]
        linear = self.intercept + z @ beta[:width] + np.einsum("ij,ij->i", z @ quadratic.T, z)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(linear, -50, 50))), dtype=np.float64)


@functools.cache
def model() -> Model:
    """Return the shipped model (``mmflow/metrics/phase_model.json``)."""
    text = resources.files("mmflow.metrics").joinpath("phase_model.json").read_text("utf-8")
    values = json.loads(text)
    names = tuple(values["features"])
    if names != FEATURES:
        msg = f"phase_model.json features {names} do not match {FEATURES}"
        raise RuntimeError(msg)
    return Model(
        intercept=float(values["intercept"]),
        coefficients=tuple(float(c) for c in values["coefficients"]),
        mean=tuple(float(c) for c in values["mean"]),
        scale=tuple(float(c) for c in values["scale"]),
        evidence=float(values["evidence"]),
    )


def normalised_path(change: FloatArray, sigma: FloatArray) -> FloatArray:
    """X_k = Σ clip(ΔI_i / σ₁_i, ±CLIP) (bars without σ₁ contribute 0)."""
    scaled = np.where(sigma > 0, change / np.where(sigma > 0, sigma, 1.0), 0.0)
    scaled = np.where(np.isfinite(scaled), np.clip(scaled, -CLIP, CLIP), 0.0)
    return np.asarray(np.cumsum(scaled), dtype=np.float64)


DRIFT_HORIZON: Final = 10
"""h, bars over which the drift ratio compares the path's spread with a random walk's."""
DRIFT_MEMORY: Final = 3
"""The drift ratio is a low quantile of the local ratio over this many ``lookback`` spans."""
DRIFT_QUANTILE: Final = 0.2
"""Quantile of the local ratio over the drift memory (low: episodes do not count as drift)."""


def drift_ratio(
    path: FloatArray,
    warm: npt.NDArray[np.bool_],
    lookback: int,
    horizon: int = DRIFT_HORIZON,
) -> FloatArray:
    """r_k ≥ 1: how much faster than a random walk the normalised path spreads, persistently.

    The local ratio ρ_k = σ_h,k / √h, with σ_h,k the robust spread (interquartile range ÷
    1.349) of the h-bar changes X_i − X_{i−h} over the trailing L = ``lookback`` bars i ≤ k
    whose bar i − h was ``warm`` (had a flow scale); null until ⌈L/4⌉ such changes exist.
    Increments of X have unit noise by construction, so on uncorrelated flow ρ ≈ 1; when other
    participants' persistent flow makes the −CVD proxy drift, the h-bar changes spread like
    √(h·VR) (VR the variance ratio of Lo & MacKinlay 1988, *Review of Financial Studies*
    1(1):41-66) and ρ ≈ √VR. An episode's own build-up and unload raise ρ for a while too, so
    r_k = max(1, the :data:`DRIFT_QUANTILE` quantile of ρ over the last :data:`DRIFT_MEMORY`·L
    bars): drift that is there most of the time counts, an episode does not. Until L values
    of ρ exist, r = max(1, ρ) (cautious: an early episode counts as drift); NaN while ρ is
    null (the detector is not warm there: without a drift estimate it does not label). Never
    below 1: mean-reverting flow does not make a move look more significant.
    Causal: bar k uses bars ≤ k.
    """
    if path.size == 0:
        return np.ones(0)
    least = max(2, math.ceil(lookback / 4))
    raw = path - _lagged(path, horizon)
    raw[~_lagged(warm.astype(np.float64), horizon).astype(bool)] = np.nan  # h bars of warm flow
    raw[: min(horizon, path.size)] = np.nan
    changes = pl.Series(raw).fill_nan(None)
    upper = changes.rolling_quantile(0.75, "linear", window_size=lookback, min_samples=least)
    lower = changes.rolling_quantile(0.25, "linear", window_size=lookback, min_samples=least)
    local = ((upper - lower) / (1.349 * math.sqrt(horizon))).fill_nan(None)
    persistent = local.rolling_quantile(
        DRIFT_QUANTILE, "linear", window_size=DRIFT_MEMORY * lookback, min_samples=lookback
    ).fill_null(local)
    values = persistent.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    return np.asarray(np.where(np.isnan(values), np.nan, np.maximum(values, 1.0)), np.float64)


def detector_path(
    change: FloatArray, sigma: FloatArray, lookback: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Return the detector's path X'_k = Σ_{i≤k} u_i / r_i, the drift ratio r and warm bars.

    ``change`` is ΔI per bar and ``sigma`` the flow scale σ₁; a bar is warm when σ₁ > 0 and r
    exist (:func:`normalised_path`, :func:`drift_ratio`, :func:`drift_adjusted_path`).
    """
    warm = np.isfinite(sigma) & (sigma > 0)
    normalised = normalised_path(change, sigma)
    ratio = drift_ratio(normalised, warm, lookback)
    warm = warm & np.isfinite(ratio)
    return drift_adjusted_path(normalised, ratio), ratio, warm


def drift_adjusted_path(path: FloatArray, ratio: FloatArray) -> FloatArray:
    """X'_k = Σ_{i≤k} (X_i − X_{i−1}) / r_i, r = :func:`drift_ratio` (bars without r add 0)."""
    if path.size == 0:
        return path
    steps = np.diff(path, prepend=0.0) / ratio
    return np.asarray(np.cumsum(np.where(np.isfinite(steps), steps, 0.0)), dtype=np.float64)


def _lagged(values: FloatArray, lag: int) -> FloatArray:
    """values_{k−lag}, the first value repeated before the series starts."""
    if lag <= 0:
        return values
    if lag >= values.size:
        return np.full(values.size, values[0] if values.size else np.nan)
    head = np.full(min(lag, values.size), values[0] if values.size else np.nan)
    return np.concatenate([head, values[: values.size - lag]]) if values.size else values


def _extremes(x: FloatArray, memory: int) -> tuple[IntArray, IntArray]:
    """Per bar k: the peak and the trough of x within the last ``memory`` bars.

    The peak k* is the latest bar at the maximum of x over bars max(0, k − M + 1) … k; the trough
    is the earlier bar t of that window that makes the rise most significant,
    argmax_t (x_{k*} − x_t) / √(k* − t) (the first such bar; k* itself when the peak is the
    window's first bar).
    """
    n = x.size
    peak = np.zeros(n, np.int64)
    trough = np.zeros(n, np.int64)
    if n == 0:
        return peak, trough
    padded = np.concatenate([np.full(memory - 1, x[0]), x])
    windows = np.lib.stride_tricks.sliding_window_view(padded, memory)
    columns = np.arange(memory)
    root = np.concatenate([[0.0], 1.0 / np.sqrt(np.arange(1, memory))])  # 1/√distance
    for start in range(0, n, _CHUNK):
        block = windows[start : start + _CHUNK]
        rows = np.arange(block.shape[0])
        k = start + rows
        early = start < memory - 1  # rows whose window reaches before the series start
        valid = columns[None, :] >= (memory - 1 - k)[:, None] if early else None
        masked = np.where(valid, block, -np.inf) if valid is not None else block
        last = memory - 1 - np.argmax(masked[:, ::-1], axis=1)
        distance = last[:, None] - columns[None, :]
        top = block[rows, last]
        score = (top[:, None] - block) * root[np.clip(distance, 0, None)]
        keep = distance > 0 if valid is None else valid & (distance > 0)
        score = np.where(keep, score, -np.inf)
        low = np.where(np.isfinite(score.max(axis=1)), np.argmax(score, axis=1), last)
        peak[start : start + block.shape[0]] = k - (memory - 1 - last)
        trough[start : start + block.shape[0]] = k - (memory - 1 - low)
    return peak, trough


def oriented(
    path: FloatArray,
    price: FloatArray,
    price_sd: FloatArray,
    *,
    side: int,
    memory: int,
    recent_bars: int,
    window: int,
) -> Oriented:
    """Features of orientation ``side`` (see the module docstring), causal per bar."""
    x = side * path
    n = x.size
    peak, trough = _extremes(x, memory)
    k = np.arange(n)
    at_peak = x[peak] if n else x
    rise = at_peak - (x[trough] if n else x)
    built = np.maximum(peak - trough, 1).astype(np.float64)
    since = np.maximum(k - peak, 1).astype(np.float64)
    draw = at_peak - x
    noise = np.where(price_sd > 0, price_sd, np.nan)
    moved = side * (price - (price[peak] if n else price))
    recent_moved = side * (price - _lagged(price, window))
    build_moved = side * ((price[peak] - price[trough]) if n else price)
    columns = {
        "rise_z": rise / np.sqrt(built),
        "draw_z": draw / np.sqrt(since),
        "give_back": draw / np.maximum(rise, 1.0),
        "recent_z": (_lagged(x, recent_bars) - x) / math.sqrt(recent_bars),
        "follow_z": moved / (noise * np.sqrt(since)),
        "recent_follow_z": recent_moved / (noise * math.sqrt(window)),
        "build_follow_z": build_moved / (noise * np.sqrt(built)),
    }
    columns["both_z"] = np.minimum(columns["rise_z"], columns["draw_z"])
    columns["log_built"] = np.log(built)
    columns["rise_rate"] = rise / built
    columns["log_since"] = np.log(since)
    features = np.empty((n, len(FEATURES)))
    for i, name in enumerate(FEATURES):
        low, high = _RANGES[name]
        values = np.where(np.isfinite(columns[name]), columns[name], 0.0)
        features[:, i] = np.clip(values, low, high)
    return Oriented(peak_index=peak, trough_index=trough, features=features)


def cusum(increments: FloatArray, restart: npt.NDArray[np.bool_]) -> FloatArray:
    """S_k = max(0, S_{k−1} + increment_k), S = 0 at (and ignoring the increment of) restarts.

    Page's (1954) recursion, one pass over bars on plain Python floats (faster here than any
    segmented numpy or polars formulation: restarts are frequent).
    """
    out: list[float] = []
    total = 0.0
    for value, reset in zip(increments.tolist(), restart.tolist(), strict=True):
        total = 0.0 if reset else max(0.0, total + value)
        out.append(total)
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Detection:
    """Per-bar output of :func:`detect`."""

    phase: npt.NDArray[np.int8]
    """0 neutral, 1 accumulation, 2 distribution, −1 not warm (null)."""
    side: npt.NDArray[np.int8]
    probability: FloatArray
    peak_index: IntArray
    trough_index: IntArray
    features: FloatArray


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the state machine (see :func:`detect`)."""

    enter: float
    evidence: float
    stay: float
    extreme: float
    unload: float
    recent: float
    follow: float
    absorbed: float
    accumulation: float
    gap: int


def detect(
    path: FloatArray,
    price: FloatArray,
    price_sd: FloatArray,
    warm: npt.NDArray[np.bool_],
    *,
    memory: int,
    recent_bars: int,
    window: int,
    thresholds: Thresholds,
    fitted: Model,
) -> Detection:
    """Label one series' bars with the state machine (causal: bar k uses bars ≤ k).

    Per bar, both orientations get features and a probability p_s; the bar's side is the one
    with the larger p. States and transitions:

    * evidence accumulates sequentially (a CUSUM of the model's log-odds, Page 1954,
      *Biometrika* 41(1/2):100-115): S_k = max(0, S_{k−1} + clip(logit p_s, ±5)), restarted at
      each new peak, so a slow unload whose bars are each only mildly convincing still adds up;
    * **neutral → distribution(s)** when S ≥ ``evidence``, p_s ≥ ``enter``, ``rise_z`` ≥
      ``extreme`` (the rise from the rolling trough to the peak is significant), ``draw_z`` ≥
      ``unload`` (the peak at least one bar old)
    * **distribution(s)** continues while the unload goes on; a bar is a **pause** when the
      unload stalls (``recent_z`` < −``recent``: inventory grew back over the last w bars),
      price starts to follow the flow (``recent_follow_z`` > ``follow``), or p_s < ``stay``.
      Pause bars are labelled neutral; more than ``gap`` consecutive pauses, a new peak
      (j = 0) or a window with no warm flow scale end the state;
    * **accumulation(s)** (when not in distribution): x is at its peak (j = 0), ``rise_z`` ≥
      ``extreme`` and grew over the last w bars by ≥ ``accumulation`` √w noise units.
    """
    n = path.size
    long_side = oriented(
        path, price, price_sd, side=1, memory=memory, recent_bars=recent_bars, window=window
    )
    short_side = oriented(
        path, price, price_sd, side=-1, memory=memory, recent_bars=recent_bars, window=window
    )
    p_long = fitted.probability(long_side.features)
    p_short = fitted.probability(short_side.features)
    best = np.where(p_long >= p_short, 1, -1).astype(np.int8)
    k_all = np.arange(n)
    sides = [
        _side_conditions(stats, p, k_all, thresholds)
        for stats, p in ((long_side, p_long), (short_side, p_short))
    ]
    entry = [s.entry for s in sides]
    t = thresholds
    for o in (0, 1):
        entry[o] &= cusum(sides[o].step, sides[o].fresh | ~warm) >= t.evidence
    phase, side = _state_machine(
        warm,
        best,
        entry,
        [s.pause for s in sides],
        [s.fresh for s in sides],
        [s.grow for s in sides],
        gap=t.gap,
    )
    chosen = side > 0
    return Detection(
        phase=phase,
        side=side,
        probability=np.where(chosen, p_long, p_short),
        peak_index=np.where(chosen, long_side.peak_index, short_side.peak_index),
        trough_index=np.where(chosen, long_side.trough_index, short_side.trough_index),
        features=np.where(chosen[:, None], long_side.features, short_side.features),
    )


@dataclass(frozen=True)
class _SideConditions:
    """Per bar, for one side: entry, pause, fresh-peak and growth conditions, and evidence."""

    entry: npt.NDArray[np.bool_]
    pause: npt.NDArray[np.bool_]
    fresh: npt.NDArray[np.bool_]
    grow: npt.NDArray[np.bool_]
    step: FloatArray


def _side_conditions(
    stats: Oriented, p: FloatArray, k_all: npt.NDArray[np.int64], t: Thresholds
) -> _SideConditions:
    """Evaluate the state machine's conditions for one side with probability ``p`` per bar."""
    index = {name: i for i, name in enumerate(FEATURES)}
    f = stats.features
    rise, draw = f[:, index["rise_z"]], f[:, index["draw_z"]]
    recent = f[:, index["recent_z"]]
    since = k_all - stats.peak_index
    absorbed = f[:, index["follow_z"]] <= t.absorbed
    odds = np.log(np.clip(p, 1e-12, 1.0) / np.clip(1.0 - p, 1e-12, 1.0))
    return _SideConditions(
        entry=(p >= t.enter) & (rise >= t.extreme) & (draw >= t.unload) & (since >= 1) & absorbed,
        pause=(recent < -t.recent) | (f[:, index["recent_follow_z"]] > t.follow) | (p < t.stay),
        fresh=since == 0,
        grow=(since == 0) & (rise >= t.extreme) & (-recent >= t.accumulation),
        step=np.clip(odds, -5.0, 5.0),
    )


def _state_machine(
    warm: npt.NDArray[np.bool_],
    best: npt.NDArray[np.int8],
    entry: list[npt.NDArray[np.bool_]],
    pause: list[npt.NDArray[np.bool_]],
    fresh: list[npt.NDArray[np.bool_]],
    grow: list[npt.NDArray[np.bool_]],
    *,
    gap: int,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Label the bars: a loop over bars (never trades) on plain lists for speed.

    Index 0 of each condition list is the long side, 1 the short side. Returns the phase code
    (−1 not warm, 0 neutral, 1 accumulation, 2 distribution) and the side per bar.
    """
    n = warm.size
    phase = np.where(warm, 0, -1).astype(np.int8)
    side = best.copy()
    state, pauses = 0, 0
    warm_list, best_list = warm.tolist(), best.tolist()
    fresh_list = [f.tolist() for f in fresh]
    pause_list = [f.tolist() for f in pause]
    entry_list = [f.tolist() for f in entry]
    grow_list = [f.tolist() for f in grow]
    phase_list = phase.tolist()
    side_list = side.tolist()
    for k in range(n):
        if not warm_list[k]:
            state, pauses = 0, 0
            continue
        if state != 0:
            o = 0 if state > 0 else 1
            if fresh_list[o][k]:
                state = 0
            elif pause_list[o][k]:
                pauses += 1
                if pauses > gap:
                    state = 0
                else:
                    side_list[k] = state
                    continue
            else:
                pauses = 0
                phase_list[k] = 2
                side_list[k] = state
                continue
        here = best_list[k]
        o = 0 if here > 0 else 1
        if entry_list[o][k]:
            state, pauses = here, 0
            phase_list[k] = 2
            continue
        other = 1 - o
        if entry_list[other][k]:
            state, pauses = -here, 0
            phase_list[k] = 2
            side_list[k] = state
            continue
        if grow_list[o][k]:
            phase_list[k] = 1
        elif grow_list[other][k]:
            phase_list[k] = 1
            side_list[k] = -here
    phase = np.asarray(phase_list, dtype=np.int8)
    side = np.asarray(side_list, dtype=np.int8)
    return phase, side
