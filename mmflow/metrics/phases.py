"""Accumulation and distribution phases of market-maker inventory (metrics.md §12.3-12.6).

A market maker that has **accumulated** inventory (aggressive sellers hit its bids, so it is
long) later **distributes** it: it sells into buying pressure, over several price levels, while
the price fails to follow the aggressive flow; a **reversal** against the former inventory often
follows (Hendershott & Seasholes 2007, *American Economic Review* 97(2):210-214; Hendershott &
Menkveld 2014, *J. Financial Economics* 114(3):405-423). No published quantitative definition of
these phases exists, so mmflow defines one here and validates it against a simulator with known
truth (:mod:`mmflow.simulate`, metrics.md §12.6).

Notation, per symbol (and session) and bar k: F_k = ``net_flow``; I_k = ``mm_inventory`` = −CVD_k
(metrics.md §12.1), so ΔI_k = −F_k; s = +1 / −1 the side the detector judges (``inventory_side``:
``long`` / ``short``, the side of the more probable distribution);
P_k the bar's price: ``mid_close`` carried forward, or ``close`` carried forward while the symbol
has had no mid yet; L = ``lookback``, W = ``window``, w = ``recent_bars``.

The shipped rule (causal; issue 10)
-----------------------------------
Per series, the inventory changes are normalised by the trailing flow scale σ₁ (``flow_scale``:
the interquartile range of ΔI over L bars ÷ 1.349, else its standard deviation; null until
⌈L/4⌉ bars exist, and then ``phase`` is null) and clipped at ±4 (heavy tails). On that path the
detector (:mod:`mmflow.metrics.phase_model`) measures, for each side, the rise from the rolling
trough to the peak within the last M bars (``baseline``) and the drawdown since the peak, the
recent unload over w bars and whether price followed the flow since the peak and over the last
W bars; a logistic model shipped as package data turns them into ``distribution_score``, a
probability calibrated on simulated markets of two families and many regimes; evidence
accumulates over bars (a CUSUM of the score's log-odds since the peak) and a state machine
with explicit entries and exits (unload stalls, price follows, score too low, a new peak)
labels the bars. Components: ``inventory_peak`` (I at the peak), ``unloaded`` (s·(I_peak
− I_k)), ``buildup_z`` (rise), ``unload_z`` (drawdown), ``recent_z`` (recent unload),
``unload_absorption`` (ΔP since the peak / (λ̂_peak · flow since the peak)), and the §12.3
window components. The measurements, the tuning/held-out split and the history of the rule
(the §12.4 rule, the first shipped rule and why both were replaced) are in ``docs/phases.md``.

Every input of bar k comes from bars ≤ k: the labels are causal and can drive a live alert.
``offline=True`` additionally looks ahead (see :func:`phase_bars`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics import phase_model
from mmflow.metrics.event_study import (
    check_horizons,
    check_seed,
    placebo_hash,
    summary_statistics,
    welch_t_statistic,
)
from mmflow.metrics.impact import KYLE_LAMBDA, kyle_lambda
from mmflow.schema import (
    ASOF_VENUE,
    PRICE,
    SIZE,
    SYMBOL,
    TS,
    VENUE,
    asof_keys,
    instrument_keys,
)

SESSION: Final = "session"
NET_FLOW: Final = "net_flow"
CLOSE: Final = "close"
MID_CLOSE: Final = "mid_close"
MM_INVENTORY: Final = "mm_inventory"

PHASE: Final = "phase"
INVENTORY_SIDE: Final = "inventory_side"
DISTRIBUTION_SCORE: Final = "distribution_score"
FLOW_SCALE: Final = "flow_scale"
INVENTORY_PEAK: Final = "inventory_peak"
UNLOADED: Final = "unloaded"
BUILDUP_Z: Final = "buildup_z"
UNLOAD_Z: Final = "unload_z"
RECENT_Z: Final = "recent_z"
ABSORPTION_LAMBDA: Final = "absorption_lambda"
ABSORPTION_RATIO: Final = "absorption_ratio"
UNLOAD_ABSORPTION: Final = "unload_absorption"
PRICE_LEVELS: Final = "price_levels"
LEVEL_DISPERSION: Final = "level_dispersion"

PHASE_COLUMNS: Final = (
    FLOW_SCALE,
    INVENTORY_PEAK,
    UNLOADED,
    BUILDUP_Z,
    UNLOAD_Z,
    RECENT_Z,
    ABSORPTION_LAMBDA,
    ABSORPTION_RATIO,
    UNLOAD_ABSORPTION,
    PRICE_LEVELS,
    LEVEL_DISPERSION,
    PHASE,
    INVENTORY_SIDE,
    DISTRIBUTION_SCORE,
)
"""Columns :func:`phase_bars` adds (``mm_inventory`` too, when the bars lack it)."""

ACCUMULATION: Final = "accumulation"
DISTRIBUTION: Final = "distribution"
NEUTRAL: Final = "neutral"
LONG: Final = "long"
SHORT: Final = "short"

EPISODE_COLUMNS: Final = (
    PHASE,
    INVENTORY_SIDE,
    "start",
    "end",
    "bars",
    "inventory_start",
    "inventory_end",
    "unloaded",
    "vwap",
    PRICE_LEVELS,
    LEVEL_DISPERSION,
    "price_change",
    ABSORPTION_RATIO,
    "forward_return",
    "reversal",
)
"""Columns of :func:`phase_episodes` after ``symbol`` (and ``session``)."""

IQR_TO_SIGMA: Final = 1.349
"""Interquartile range of the standard normal distribution (Φ⁻¹(0.75) − Φ⁻¹(0.25))."""

TUNING_SEEDS: Final = tuple(range(10))
"""Seeds of the default simulated market the first shipped rule was tuned on
(``benchmarks/phases_seeds.py --tuning``; the issue-10 detector's cells are in
``benchmarks/phase_robustness.py``)."""
EVALUATION_SEEDS: Final = tuple(range(100, 120))
"""Seeds of the default simulated market scored by ``benchmarks/phases_seeds.py`` (metrics.md
§12.6 targets); never used to fit the issue-10 model either."""

_P = "_ph_price"
_IDX = "_ph_idx"
_RUN = "_ph_run"
_SIDE = "_ph_side"
_ABS = "_ph_abs"
_PEAK_IDX = "_ph_peak_idx"
_PEAK_PRICE = "_ph_peak_price"
_PEAK_LAMBDA = "_ph_peak_lambda"
_START = "_ph_start"
_PRICE_SD = "_ph_price_sd"
_LEVEL = "_ph_level"
_VOLUME = "_ph_volume"
_TARGET = "_ph_target"
_SAVED_LAMBDA = "_ph_saved_kyle_lambda"
_FLOW = "_ph_flow"
_CODE = "_ph_code"
_ROW = "_ph_row"


@dataclass(frozen=True)
class PhaseParameters:
    """Every parameter of the phase rule, the episodes and the event study.

    The defaults were set on the tuning cells and seeds of ``benchmarks/phase_robustness.py``
    (``docs/phases.md``). Invalid values raise :class:`~mmflow.errors.ParameterError` when the
    object is built; the CLI's option ranges are :data:`PARAMETER_RANGES`.

    Parameters
    ----------
    window
        W, bars of the recent absorption test (a distribution pauses when price followed the
        unloading flow over the last W bars) and of the §12.3 components ``absorption_ratio``,
        ``price_levels`` and ``level_dispersion``.
    lookback
        L, trailing bars for Kyle's λ̂, the flow scale σ₁ and the price-change noise σ_P
        (metrics.md default 240).
    baseline
        M, bars of the rolling baseline: the peak of the inventory and the trough before it are
        looked for in the last M bars.
    absorption
        Recent absorption: a distribution pauses when price moved with the unloading flow by
        more than this many price-noise standard deviations over the last W bars.
    absorption_noise
        Absorption since the peak: a distribution is entered only when price moved with the
        unloading flow since the peak by at most this many price-noise standard deviations.
    extreme
        Entry (and accumulation) needs the rise from the rolling trough to the peak to be at
        least this many flow-noise units × √(bars it took).
    unload
        Entry needs the drawdown since the peak to be at least this many flow-noise units ×
        √(bars since the peak).
    recent_bars
        w: bars of the "still unloading" and "still accumulating" tests.
    recent
        A distribution pauses when the inventory grew back by more than this many flow-noise
        units × √w over the last w bars (the unload stalls).
    accumulation
        Accumulation needs the inventory to have grown by at least this many flow-noise units ×
        √w over the last w bars, at its peak.
    enter
        Probability (``distribution_score``) the entry bar itself needs.
    evidence
        h: accumulated evidence (a CUSUM of the score's log-odds since the peak) needed to
        enter a distribution; ``None`` uses the shipped model's value, set from the detector's
        rate on markets without episodes.
    stay
        A distribution pauses while its probability is below this.
    gap
        g: consecutive pause bars a distribution survives (they are labelled neutral), and the
        bars ``--episodes`` bridges between runs of one episode (metrics.md default 2).
    min_bars
        m: episodes shorter than this many bars are dropped (episodes only: a causal per-bar
        label cannot know how long its run will be; metrics.md default 5).
    horizon
        h: the episode's ``forward_return`` is over the h bars after its end (bars).
    """

    window: int = 15
    lookback: int = 240
    baseline: int = 120
    absorption: float = 2.0
    absorption_noise: float = 2.0
    extreme: float = 2.0
    unload: float = 1.0
    recent_bars: int = 5
    recent: float = 1.0
    accumulation: float = 1.0
    enter: float = 0.5
    evidence: float | None = None
    stay: float = 0.2
    gap: int = 2
    min_bars: int = 5
    horizon: int = 5

    def __post_init__(self) -> None:
        for name, (low, high) in PARAMETER_RANGES.items():
            value = getattr(self, name)
            if name == "evidence" and value is None:
                continue
            if isinstance(low, int) and isinstance(high, int | None):
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    msg = f"{name} must be a whole number of bars >= {low}, was {value!r}"
                    raise ParameterError(msg)
                if high is not None and value > high:
                    msg = f"{name} must be a whole number of bars <= {high}, was {value!r}"
                    raise ParameterError(msg)
                continue
            _check_number(name, value, low=float(low), high=high)


PARAMETER_RANGES: Final[dict[str, tuple[int | float, int | float | None]]] = {
    "window": (1, None),
    "lookback": (2, None),
    "baseline": (2, 100_000),
    "absorption": (0.0, None),
    "absorption_noise": (0.0, None),
    "extreme": (0.0, None),
    "unload": (0.0, None),
    "recent_bars": (1, 100_000),
    "recent": (0.0, None),
    "accumulation": (0.0, None),
    "enter": (0.0, 1.0),
    "evidence": (0.0, 1000.0),
    "stay": (0.0, 1.0),
    "gap": (0, None),
    "min_bars": (1, None),
    "horizon": (1, None),
}
"""Smallest and largest accepted value of each :class:`PhaseParameters` field (None: no bound);
int bounds for whole numbers of bars. The CLI builds its option ranges from this table."""


def _check_number(name: str, value: float, *, low: float, high: float | None) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = number and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        span = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
        msg = f"{name} must be a finite number {span}, was {value!r}"
        raise ParameterError(msg)


def _names(frame: pl.LazyFrame) -> list[str]:
    return frame.collect_schema().names()


def _require(names: Sequence[str], columns: Sequence[str], *, what: str, hint: str) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        found = ", ".join(names) or "no columns"
        msg = f"{what} is missing column(s) {', '.join(missing)}; found {found} ({hint})"
        raise SchemaError(msg)


def _keys(names: Sequence[str]) -> list[str]:
    ids = instrument_keys(names)
    return [*ids, SESSION] if SESSION in names else ids


def _price(names: Sequence[str], keys: list[str]) -> pl.Expr:
    """P_k: ``mid_close`` carried forward, else ``close`` carried forward (per series)."""
    parts = [
        pl.col(name).cast(pl.Float64).forward_fill().over(keys)
        for name in (MID_CLOSE, CLOSE)
        if name in names
    ]
    return pl.coalesce(parts)


def _raw_price(names: Sequence[str]) -> pl.Expr:
    """Return the bar's own price (not carried forward) for Kyle's λ̂: mid, else close."""
    return pl.coalesce([pl.col(n).cast(pl.Float64) for n in (MID_CLOSE, CLOSE) if n in names])


def _logistic(x: pl.Expr) -> pl.Expr:
    return 1.0 / (1.0 + (-x).exp())


def _level_volumes(
    bars: pl.LazyFrame, trades: pl.LazyFrame | None, keys: list[str]
) -> pl.LazyFrame | None:
    """Volume per traded price level and bar: ``keys, _idx, level, volume``.

    From ``trades`` (each assigned to the latest bar of its symbol starting at or before it);
    without trades from the bar's distinct open/high/low/close, each holding an equal share of
    the bar's volume. ``None`` when neither is available.
    """
    schema = bars.collect_schema()
    names = schema.names()
    if trades is not None:
        _require(
            _names(trades),
            (TS, SYMBOL, PRICE, SIZE),
            what="trades",
            hint="pass canonical trades with ts, symbol, price, size",
        )
        grid = bars.select(*keys, TS, _IDX).sort(TS)
        size = pl.col(SIZE).cast(pl.Float64)
        price = pl.col(PRICE).cast(pl.Float64)
        ids = instrument_keys(names)
        prints = (
            trades.with_columns(
                *(
                    []
                    if VENUE in _names(trades) or VENUE not in ids
                    else [pl.lit(None, pl.String).alias(VENUE)]
                )
            )
            .select(
                pl.col(TS).cast(schema[TS]),
                *ids[:-1],
                pl.col(SYMBOL).cast(schema[SYMBOL]),
                price.alias(_LEVEL),
                size.alias(_VOLUME),
            )
            .filter((pl.col(_VOLUME) > 0) & pl.col(_LEVEL).is_finite())
            .sort(TS)
        )
        if SESSION in keys:
            grid = grid.rename({SESSION: "_ph_session"})
        left, right, by = asof_keys(prints, grid)
        matched = left.join_asof(
            right.drop(*(k for k in ids if k not in by)),
            on=TS,
            by=by,
            strategy="backward",
            check_sortedness=False,
        ).drop(ASOF_VENUE, strict=False)
        if SESSION in keys:
            matched = matched.rename({"_ph_session": SESSION})
        return (
            matched.filter(pl.col(_IDX).is_not_null())
            .group_by(*keys, _IDX, _LEVEL)
            .agg(pl.col(_VOLUME).sum())
        )
    shape = [c for c in ("open", "high", "low", "close") if c in names]
    if not shape or "volume" not in names:
        return None
    values = pl.concat_list([pl.col(c).cast(pl.Float64) for c in shape])
    unique = values.list.drop_nulls().list.unique()
    return (
        bars.select(*keys, _IDX, unique.alias(_LEVEL), pl.col("volume").cast(pl.Float64))
        .filter(pl.col("volume") > 0)
        .with_columns((pl.col("volume") / pl.col(_LEVEL).list.len()).alias(_VOLUME))
        .explode(_LEVEL)
        .filter(pl.col(_LEVEL).is_not_null() & pl.col(_LEVEL).is_finite())
        .select(*keys, _IDX, _LEVEL, _VOLUME)
    )


def _dispersion(volume: pl.Expr) -> list[pl.Expr]:
    """``price_levels`` and ``level_dispersion`` = 1 − Σ (v_l / V)² of per-level volumes."""
    total = volume.sum()
    concentration = (volume * volume).sum() / (total * total)
    return [
        pl.len().cast(pl.UInt32).alias(PRICE_LEVELS),
        pl.when(total > 0)
        .then(pl.max_horizontal(1.0 - concentration, pl.lit(0.0)))
        .alias(LEVEL_DISPERSION),
    ]


def _with_levels(
    bars: pl.LazyFrame, trades: pl.LazyFrame | None, keys: list[str], window: int
) -> pl.LazyFrame:
    levels = _level_volumes(bars, trades, keys)
    if levels is None:
        return bars.with_columns(
            pl.lit(None, pl.UInt32).alias(PRICE_LEVELS),
            pl.lit(None, pl.Float64).alias(LEVEL_DISPERSION),
        )
    windows = (
        levels.with_columns(pl.int_ranges(_IDX, pl.col(_IDX) + window).alias(_TARGET))
        .explode(_TARGET)
        .group_by(*keys, _TARGET, _LEVEL)
        .agg(pl.col(_VOLUME).sum())
        .group_by(*keys, _TARGET)
        .agg(*_dispersion(pl.col(_VOLUME)))
        .rename({_TARGET: _IDX})
    )
    return bars.join(
        windows, on=[*keys, _IDX], how="left", maintain_order="left", nulls_equal=True
    ).with_columns(pl.col(PRICE_LEVELS).fill_null(0))


def _prepared(
    lf: pl.LazyFrame, names: Sequence[str], keys: list[str], p: PhaseParameters
) -> pl.LazyFrame:
    """Add the per-bar inputs of the detector: σ₁, P, σ_P, the bar index and §12.3's AR_W."""
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    least = max(2, math.ceil(p.lookback / 4))
    change = -flow
    upper = change.rolling_quantile(
        0.75, interpolation="linear", window_size=p.lookback, min_samples=least
    )
    lower = change.rolling_quantile(
        0.25, interpolation="linear", window_size=p.lookback, min_samples=least
    )
    deviation = change.rolling_std(window_size=p.lookback, min_samples=least)
    iqr = (upper - lower).over(keys)
    sd = deviation.over(keys)
    scale = pl.when(iqr > 0).then(iqr / IQR_TO_SIGMA).when(sd > 0).then(sd)
    lf = lf.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias(_IDX),
        scale.alias(FLOW_SCALE),
        _price(names, keys).alias(_P),
        flow.alias(_FLOW),
    ).with_columns(
        pl.col(_P)
        .diff()
        .rolling_std(window_size=p.lookback, min_samples=least)
        .over(keys)
        .alias(_PRICE_SD),
    )
    past = pl.col(_P).shift(p.window).over(keys)
    flow_w = flow.rolling_sum(window_size=p.window, min_samples=p.window).over(keys)
    current = pl.col(ABSORPTION_LAMBDA)
    return lf.with_columns(
        pl.when((current > 0) & (flow_w != 0))
        .then((pl.col(_P) - past) / (current * flow_w))
        .alias(ABSORPTION_RATIO)
    )


def _label_series(
    series: pl.DataFrame,
    p: PhaseParameters,
    thresholds: phase_model.Thresholds,
    fitted: phase_model.Model,
) -> pl.DataFrame:
    """Run :func:`mmflow.metrics.phase_model.detect` on one series (rows in bar order)."""
    series = series.sort(_IDX)
    sigma = series[FLOW_SCALE].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    change = -series[_FLOW].to_numpy()
    price = series[_P].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    price_sd = series[_PRICE_SD].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    inventory = series[MM_INVENTORY].cast(pl.Float64).fill_null(0.0).to_numpy()
    lam = series[ABSORPTION_LAMBDA].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    warm = np.isfinite(sigma) & (sigma > 0)
    path = phase_model.drift_adjusted_path(
        phase_model.normalised_path(change, sigma), warm, p.lookback
    )
    found = phase_model.detect(
        path,
        price,
        price_sd,
        warm,
        memory=p.baseline,
        recent_bars=p.recent_bars,
        window=p.window,
        thresholds=thresholds,
        fitted=fitted,
    )
    index = {name: i for i, name in enumerate(phase_model.FEATURES)}
    side = found.side.astype(np.float64)
    peak = found.peak_index
    unloaded = side * (inventory[peak] - inventory) if inventory.size else inventory
    moved = price - price[peak] if price.size else price
    lam_peak = lam[peak] if lam.size else lam
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            (lam_peak > 0) & (unloaded > 0), moved / (lam_peak * side * unloaded), np.nan
        )
    nan = ~warm
    return series.with_columns(
        pl.Series(_SIDE, np.where(nan, np.sign(inventory), side)),
        pl.Series(_PEAK_IDX, peak, dtype=pl.Int64),
        pl.Series(_CODE, found.phase, dtype=pl.Int8),
        pl.Series(
            INVENTORY_PEAK, np.where(nan, np.nan, inventory[peak] if peak.size else peak)
        ).fill_nan(None),
        pl.Series(UNLOADED, np.where(nan, np.nan, unloaded)).fill_nan(None),
        pl.Series(BUILDUP_Z, np.where(nan, np.nan, found.features[:, index["rise_z"]])).fill_nan(
            None
        ),
        pl.Series(UNLOAD_Z, np.where(nan, np.nan, found.features[:, index["draw_z"]])).fill_nan(
            None
        ),
        pl.Series(RECENT_Z, np.where(nan, np.nan, found.features[:, index["recent_z"]])).fill_nan(
            None
        ),
        pl.Series(UNLOAD_ABSORPTION, np.where(nan, np.nan, ratio)).fill_nan(None),
        pl.Series(DISTRIBUTION_SCORE, np.where(nan, np.nan, found.probability)).fill_nan(None),
    )


def phase_bars(
    bars: pl.LazyFrame,
    trades: pl.LazyFrame | None = None,
    *,
    parameters: PhaseParameters = PhaseParameters(),
    offline: bool = False,
) -> pl.LazyFrame:
    """Label every bar ``accumulation``, ``distribution`` or ``neutral`` (metrics.md §12.3-12.4).

    The rule is in the module docstring and :mod:`mmflow.metrics.phase_model`; the
    measurements in ``docs/phases.md``. In brief, for each side the market maker's normalised
    inventory path is compared with its rolling baseline (the trough before the peak within the
    last M bars): a significant rise to a peak, a significant drawdown since it that is still
    going on, and price not following the unloading flow (absorption, since the peak and over
    the last W bars) give a calibrated probability ``distribution_score``; evidence accumulates
    over bars and a state machine enters, pauses and ends distributions. Kyle's λ (Kyle 1985,
    *Econometrica* 53(6):1315-1335) is the trailing OLS slope of bar price changes on net flow
    (metrics.md §12.3). Inventory theory: Ho & Stoll (1981, *J. Financial Economics*
    9(1):47-73); reversal after inventory shocks: Hendershott & Menkveld (2014, *J. Financial
    Economics* 114(3):405-423).

    §12.3 components over the last W bars: ``absorption_ratio`` AR = ΔP_W / (λ̂·F_W) (null when
    λ̂ ≤ 0 or F_W = 0), ``price_levels`` (distinct traded prices) and ``level_dispersion``
    (1 − Herfindahl index of volume across those prices; null without volume). With ``trades``
    these come from the individual trades; **without trades they are approximated from the
    bars**: each bar contributes its distinct open, high, low and close prices, each holding an
    equal share of the bar's volume.

    **Causal by default**: every value of bar k uses only bars up to k (and trades before the
    end of bar k), so the labels of a prefix do not change when later bars arrive. With
    ``offline=True`` the labels also use **later bars** (for after-the-fact analysis, never for
    alerts): a distribution is extended back over up to w bars before its first detected bar
    (but not before the peak), and a distribution bar is dropped when |I| does not fall any
    further within the next w bars; its ``distribution_score`` is the highest causal score of
    its unload (same peak). The components stay causal.

    Parameters
    ----------
    bars
        Bars with ``symbol, ts, net_flow`` and ``mid_close`` and/or ``close``, in time order
        within each symbol (``mmflow.pipeline.market_bars`` output, or flow bars); with a
        ``session`` column every series restarts per session. ``mm_inventory`` is computed from
        ``net_flow`` when absent. ``open, high, low, close, volume`` serve the level fallback.
    trades
        Canonical trades (``ts, symbol, price, size``; sorted or not) for exact price levels.
    parameters
        The rule's parameters.
    offline
        Also look at later bars (see above).

    Returns
    -------
    pl.LazyFrame
        ``bars`` with :data:`PHASE_COLUMNS`: ``flow_scale``, ``inventory_peak``, ``unloaded``,
        ``buildup_z``, ``unload_z``, ``recent_z``, ``absorption_lambda`` (λ̂ over L bars),
        ``absorption_ratio``, ``unload_absorption`` (Float64), ``price_levels`` (UInt32),
        ``level_dispersion`` (Float64), ``phase`` (String; null until σ₁ exists),
        ``inventory_side`` (the side of the more probable distribution, or of the state's
        episode; before σ₁ exists the sign of I, null when I = 0), ``distribution_score``
        (Float64: the calibrated probability that the bar is a distribution bar of that side, on
        every bar once σ₁ exists; null before). ``inventory_peak`` is I at the peak,
        ``unloaded`` = s·(I_peak − I_k), ``buildup_z`` / ``unload_z`` / ``recent_z`` the rise,
        drawdown and recent-unload statistics of :mod:`mmflow.metrics.phase_model`. Columns of
        these names already in ``bars`` are replaced.

    Raises
    ------
    SchemaError
        If ``symbol``, ``ts``, ``net_flow`` or both prices are missing.

    Examples
    --------
    A quiet book, then a market maker takes 40 lots a bar from sellers while the mid falls with
    the selling (accumulation), then unloads 45 lots a bar to buyers while the mid keeps
    slipping against the buying (absorbed: distribution, entered once the evidence of the
    first unload bars has added up to ``evidence``).

    >>> import polars as pl
    >>> flow = [-3.0, 2, -1, 3, -2, 1] * 4 + [-40.0] * 8 + [45.0] * 5
    >>> mid = [100.0, 100.01, 100.0, 100.02, 100.01, 100.0] * 4
    >>> mid += [round(100 - 0.05 * i, 2) for i in range(1, 9)] + [99.59, 99.58, 99.57, 99.56, 99.55]
    >>> bars = pl.LazyFrame({"symbol": "X", "ts": range(37), "net_flow": flow, "mid_close": mid})
    >>> small = PhaseParameters(lookback=40, window=4, recent_bars=2)
    >>> phase_bars(bars, parameters=small).select(
    ...     "mm_inventory",
    ...     pl.col("unload_z").round(2),
    ...     "phase",
    ...     "inventory_side",
    ...     pl.col("distribution_score").round(3),
    ... ).tail(7).collect()
    shape: (7, 5)
    ┌──────────────┬──────────┬──────────────┬────────────────┬────────────────────┐
    │ mm_inventory ┆ unload_z ┆ phase        ┆ inventory_side ┆ distribution_score │
    │ ---          ┆ ---      ┆ ---          ┆ ---            ┆ ---                │
    │ f64          ┆ f64      ┆ str          ┆ str            ┆ f64                │
    ╞══════════════╪══════════╪══════════════╪════════════════╪════════════════════╡
    │ 280.0        ┆ 0.0      ┆ accumulation ┆ long           ┆ 0.0                │
    │ 320.0        ┆ 0.0      ┆ accumulation ┆ long           ┆ 0.0                │
    │ 275.0        ┆ 4.0      ┆ neutral      ┆ long           ┆ 0.914              │
    │ 230.0        ┆ 5.66     ┆ neutral      ┆ long           ┆ 1.0                │
    │ 185.0        ┆ 6.93     ┆ distribution ┆ long           ┆ 1.0                │
    │ 140.0        ┆ 8.0      ┆ distribution ┆ long           ┆ 0.999              │
    │ 95.0         ┆ 8.94     ┆ distribution ┆ long           ┆ 0.998              │
    └──────────────┴──────────┴──────────────┴────────────────┴────────────────────┘
    """
    p = parameters
    names = _names(bars)
    _require(
        names,
        (SYMBOL, TS, NET_FLOW),
        what="bars",
        hint="build bars with mmflow.pipeline.market_bars or mmflow.metrics.flow.flow_bars",
    )
    if MID_CLOSE not in names and CLOSE not in names:
        msg = (
            f"bars need a price column, mid_close or close; found {', '.join(names)} "
            "(build bars with mmflow.pipeline.market_bars)"
        )
        raise SchemaError(msg)
    keys = _keys(names)
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    replaced = [c for c in PHASE_COLUMNS if c in names]
    lf = bars.drop(replaced) if replaced else bars
    if MM_INVENTORY not in names:
        cvd = flow.cum_sum().over(keys)
        lf = lf.with_columns(pl.when(cvd == 0).then(0.0).otherwise(-cvd).alias(MM_INVENTORY))
    if KYLE_LAMBDA in names:
        lf = lf.rename({KYLE_LAMBDA: _SAVED_LAMBDA})
    lf = kyle_lambda(lf, window=p.lookback, price=_raw_price(names), flow=NET_FLOW).rename(
        {KYLE_LAMBDA: ABSORPTION_LAMBDA}
    )
    if KYLE_LAMBDA in names:
        lf = lf.rename({_SAVED_LAMBDA: KYLE_LAMBDA})

    lf = _prepared(lf, names, keys, p)
    schema = lf.collect_schema()
    out_schema = dict(schema)
    out_schema.update(
        {
            _SIDE: pl.Float64(),
            _PEAK_IDX: pl.Int64(),
            _CODE: pl.Int8(),
            INVENTORY_PEAK: pl.Float64(),
            UNLOADED: pl.Float64(),
            BUILDUP_Z: pl.Float64(),
            UNLOAD_Z: pl.Float64(),
            RECENT_Z: pl.Float64(),
            UNLOAD_ABSORPTION: pl.Float64(),
            DISTRIBUTION_SCORE: pl.Float64(),
        }
    )
    fitted = phase_model.model()
    thresholds = phase_model.Thresholds(
        enter=p.enter,
        evidence=fitted.evidence if p.evidence is None else p.evidence,
        stay=p.stay,
        extreme=p.extreme,
        unload=p.unload,
        recent=p.recent,
        follow=p.absorption,
        absorbed=p.absorption_noise,
        accumulation=p.accumulation,
        gap=p.gap,
    )

    def label(series: pl.DataFrame) -> pl.DataFrame:
        return _label_series(series, p, thresholds, fitted)

    lf = (
        lf.with_row_index(_ROW)
        .group_by(keys)
        .map_groups(label, schema=pl.Schema({_ROW: pl.UInt32(), **out_schema}))
        .sort(_ROW)
        .drop(_ROW)
    )
    code = pl.col(_CODE)
    side = pl.col(_SIDE)
    lf = lf.with_columns(
        pl.when(code < 0)
        .then(pl.lit(None, pl.String))
        .when(code == 2)
        .then(pl.lit(DISTRIBUTION))
        .when(code == 1)
        .then(pl.lit(ACCUMULATION))
        .otherwise(pl.lit(NEUTRAL))
        .alias(PHASE),
        pl.when(side > 0)
        .then(pl.lit(LONG))
        .when(side < 0)
        .then(pl.lit(SHORT))
        .otherwise(pl.lit(None, pl.String))
        .alias(INVENTORY_SIDE),
        pl.when(code >= 0).then(pl.col(DISTRIBUTION_SCORE)).alias(DISTRIBUTION_SCORE),
        (side * pl.col(MM_INVENTORY).cast(pl.Float64)).alias(_ABS),
        side.alias(_RUN),
    )
    w = p.recent_bars
    if offline:
        lf = _offline(lf, keys, w)
    lf = _with_levels(lf, trades, keys, p.window)
    internal = [c for c in _names(lf) if c.startswith("_ph_")]
    return lf.drop(internal)


def _offline(lf: pl.LazyFrame, keys: list[str], w: int) -> pl.LazyFrame:
    """Refine causal labels with later bars: backfill towards the peak, trim the tail."""
    detected = pl.col(PHASE) == DISTRIBUTION
    segment = [*keys, _RUN, _PEAK_IDX]
    idx = pl.col(_IDX)
    next_detection = pl.when(detected).then(idx).backward_fill().over(segment)
    backfilled = detected.fill_null(value=False) | (
        (idx > pl.col(_PEAK_IDX)) & (next_detection - idx <= w)
    ).fill_null(value=False)
    later = pl.min_horizontal(
        [pl.col(_SIDE) * pl.col(MM_INVENTORY).shift(-i).over(keys) for i in range(1, w + 1)]
    )
    falling = (later < pl.col(_ABS)).fill_null(value=True)
    kept = backfilled & falling
    best = pl.col(DISTRIBUTION_SCORE).filter(detected).max().over(segment)
    lf = lf.with_columns(kept.alias("_ph_kept"))
    kept_col = pl.col("_ph_kept")
    return lf.with_columns(
        pl.when(pl.col(PHASE).is_null())
        .then(pl.lit(None, pl.String))
        .when(kept_col)
        .then(pl.lit(DISTRIBUTION))
        .when(detected)
        .then(pl.lit(NEUTRAL))
        .otherwise(pl.col(PHASE))
        .alias(PHASE),
        pl.when(pl.col(PHASE).is_null())
        .then(None)
        .when(kept_col)
        .then(best.fill_null(0.0))
        .otherwise(0.0)
        .alias(DISTRIBUTION_SCORE),
    )


def _check_every(every: str) -> str:
    from mmflow.metrics.inventory import duration_seconds

    duration_seconds(every)
    return every.strip()


def phase_episodes(
    phased: pl.LazyFrame,
    *,
    every: str,
    trades: pl.LazyFrame | None = None,
    parameters: PhaseParameters = PhaseParameters(),
) -> pl.LazyFrame:
    """Group labelled bars into accumulation and distribution episodes (metrics.md §12.5).

    An episode is a maximal run of bars of one symbol (and session) with the same ``phase``
    and ``inventory_side``, bridging gaps of at most g = ``parameters.gap`` bars with another
    label, kept when it spans at least m = ``parameters.min_bars`` bars. Neutral and unlabelled
    bars form no episodes. For an episode over bars k₀…k₁, with I and P as in
    :func:`phase_bars`:

    * ``start`` = ts of bar k₀, ``end`` = ts of bar k₁ + ``every``; ``bars`` = k₁ − k₀ + 1 (gap
      bars included);
    * ``inventory_start`` = I at ``start`` (I_{k₀} + F_{k₀}, the inventory before bar k₀),
      ``inventory_end`` = I_{k₁}, ``unloaded`` = |inventory_start| − |inventory_end|;
    * ``vwap`` = Σ vwap·volume / Σ volume over the bars (null without volume);
    * ``price_levels`` and ``level_dispersion`` (1 − Herfindahl index of volume across price
      levels) over the episode, from ``trades`` when given, else approximated from the bars'
      open/high/low/close as in :func:`phase_bars`;
    * ``price_change`` = P_{k₁} − P_{k₀−1} (null for an episode starting at the first bar);
      ``absorption_ratio`` = price_change / (λ̂·Σ F) with λ̂ = ``absorption_lambda`` of bar
      k₀ − 1 (the impact before the episode; null when λ̂ ≤ 0 or Σ F = 0);
    * ``forward_return`` = ln(P_{k₁+h} / P_{k₁}), h = ``parameters.horizon`` (null past the
      data or the session, or when a price is ≤ 0); ``reversal`` (distribution only): the
      forward return is negative after long inventory, positive after short.

    Parameters
    ----------
    phased
        Output of :func:`phase_bars`, in time order within each symbol.
    every
        The bar length (polars duration), to close the last bar.
    trades
        Canonical trades for exact price levels (else the bar approximation).
    parameters
        ``gap``, ``min_bars`` and ``horizon`` are used.

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,]`` and :data:`EPISODE_COLUMNS`, sorted by symbol and start.

    Raises
    ------
    ParameterError
        If ``every`` is not a fixed-length duration.
    SchemaError
        If a column of :func:`phase_bars` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> labels = ["neutral"] + ["distribution"] * 3 + ["neutral"] * 2 + ["distribution"] * 2
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(8)],
    ...         "net_flow": [0.0, 30, 30, 30, 5, 5, 30, 30],
    ...         "mid_close": [10.0, 10.0, 9.99, 9.99, 9.98, 9.98, 9.97, 9.96],
    ...         "mm_inventory": [200.0, 170, 140, 110, 105, 100, 70, 40],
    ...         "absorption_lambda": 1e-3,
    ...         "phase": labels,
    ...         "inventory_side": "long",
    ...     }
    ... )
    >>> phase_episodes(phased, every="1m", parameters=PhaseParameters(horizon=1)).select(
    ...     "phase", "start", "bars", "inventory_start", "unloaded", "price_change"
    ... ).with_columns(pl.col("price_change").round(4)).collect()
    shape: (1, 6)
    ┌──────────────┬─────────────────────┬──────┬─────────────────┬──────────┬──────────────┐
    │ phase        ┆ start               ┆ bars ┆ inventory_start ┆ unloaded ┆ price_change │
    │ ---          ┆ ---                 ┆ ---  ┆ ---             ┆ ---      ┆ ---          │
    │ str          ┆ datetime[μs]        ┆ u32  ┆ f64             ┆ f64      ┆ f64          │
    ╞══════════════╪═════════════════════╪══════╪═════════════════╪══════════╪══════════════╡
    │ distribution ┆ 2024-01-02 00:01:00 ┆ 7    ┆ 200.0           ┆ 160.0    ┆ -0.04        │
    └──────────────┴─────────────────────┴──────┴─────────────────┴──────────┴──────────────┘
    """
    step = _check_every(every)
    p = parameters
    names = _names(phased)
    _require(
        names,
        (SYMBOL, TS, NET_FLOW, MM_INVENTORY, PHASE, INVENTORY_SIDE),
        what="phased bars",
        hint="run mmflow.metrics.phases.phase_bars first",
    )
    keys = _keys(names)
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    volume = pl.col("volume").cast(pl.Float64).fill_null(0.0) if "volume" in names else None
    vwap_volume = (
        (pl.col("vwap").cast(pl.Float64) * volume).fill_null(0.0)
        if volume is not None and "vwap" in names
        else None
    )
    lam = (
        pl.col(ABSORPTION_LAMBDA).cast(pl.Float64)
        if ABSORPTION_LAMBDA in names
        else pl.lit(None, pl.Float64)
    )
    has_price = MID_CLOSE in names or CLOSE in names
    price = _price(names, keys) if has_price else pl.lit(None, pl.Float64)
    bars = phased.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias(_IDX),
        price.alias(_P),
    ).with_columns(
        flow.cum_sum().over(keys).alias("_ph_cum_flow"),
        (volume if volume is not None else pl.lit(0.0)).cum_sum().over(keys).alias("_ph_cum_v"),
        (vwap_volume if vwap_volume is not None else pl.lit(0.0))
        .cum_sum()
        .over(keys)
        .alias("_ph_cum_pv"),
        pl.col(_P).shift(1).over(keys).alias("_ph_price_before"),
        lam.shift(1).over(keys).alias("_ph_lambda_before"),
        (pl.col(MM_INVENTORY).cast(pl.Float64) + flow).alias("_ph_inventory_before"),
        pl.col(_P).shift(-p.horizon).over(keys).alias("_ph_price_later"),
    )
    label = [*keys, PHASE, INVENTORY_SIDE]
    labelled = bars.filter(
        pl.col(PHASE).is_in([ACCUMULATION, DISTRIBUTION]) & pl.col(INVENTORY_SIDE).is_not_null()
    ).select(*label, _IDX)
    step_gap = pl.col(_IDX) - pl.col(_IDX).shift(1).over(label) - 1
    runs = (
        labelled.sort(*label, _IDX)
        .with_columns(
            (step_gap > p.gap).fill_null(value=True).cum_sum().over(label).alias("_ph_ep")
        )
        .group_by(*label, "_ph_ep")
        .agg(pl.col(_IDX).min().alias("_ph_first"), pl.col(_IDX).max().alias("_ph_last"))
        .with_columns((pl.col("_ph_last") - pl.col("_ph_first") + 1).alias("bars"))
        .filter(pl.col("bars") >= p.min_bars)
    )
    first = bars.select(
        *keys,
        pl.col(_IDX).alias("_ph_first"),
        pl.col(TS).alias("start"),
        pl.col("_ph_inventory_before").alias("inventory_start"),
        "_ph_price_before",
        "_ph_lambda_before",
        (pl.col("_ph_cum_flow") - flow).alias("_ph_flow0"),
        (pl.col("_ph_cum_v") - (volume if volume is not None else 0.0)).alias("_ph_v0"),
        (pl.col("_ph_cum_pv") - (vwap_volume if vwap_volume is not None else 0.0)).alias("_ph_pv0"),
    )
    last = bars.select(
        *keys,
        pl.col(_IDX).alias("_ph_last"),
        pl.col(TS).dt.offset_by(step).alias("end"),
        pl.col(MM_INVENTORY).cast(pl.Float64).alias("inventory_end"),
        pl.col(_P).alias("_ph_price_end"),
        "_ph_price_later",
        "_ph_cum_flow",
        "_ph_cum_v",
        "_ph_cum_pv",
    )
    episodes = runs.join(first, on=[*keys, "_ph_first"], how="left", nulls_equal=True).join(
        last, on=[*keys, "_ph_last"], how="left", nulls_equal=True
    )
    total_flow = pl.col("_ph_cum_flow") - pl.col("_ph_flow0")
    total_volume = pl.col("_ph_cum_v") - pl.col("_ph_v0")
    change = pl.col("_ph_price_end") - pl.col("_ph_price_before")
    lam_before = pl.col("_ph_lambda_before")
    later, end_price = pl.col("_ph_price_later"), pl.col("_ph_price_end")
    forward = pl.when((later > 0) & (end_price > 0)).then((later / end_price).log())
    reversal = (
        pl.when(pl.col(PHASE) != DISTRIBUTION)
        .then(pl.lit(None, pl.Boolean))
        .when(pl.col(INVENTORY_SIDE) == LONG)
        .then(forward < 0)
        .otherwise(forward > 0)
    )
    episodes = episodes.with_columns(
        (pl.col("inventory_start").abs() - pl.col("inventory_end").abs()).alias("unloaded"),
        pl.when(total_volume > 0)
        .then((pl.col("_ph_cum_pv") - pl.col("_ph_pv0")) / total_volume)
        .alias("vwap"),
        change.alias("price_change"),
        pl.when((lam_before > 0) & (total_flow != 0))
        .then(change / (lam_before * total_flow))
        .alias(ABSORPTION_RATIO),
        forward.alias("forward_return"),
        reversal.alias("reversal"),
        pl.col("bars").cast(pl.UInt32),
    )
    levels = _level_volumes(bars, trades, keys)
    if levels is None:
        episodes = episodes.with_columns(
            pl.lit(None, pl.UInt32).alias(PRICE_LEVELS),
            pl.lit(None, pl.Float64).alias(LEVEL_DISPERSION),
        )
    else:
        spans = episodes.select(*label, "_ph_first", "_ph_last")
        ids = [*label, "_ph_first"]
        on_keys = [pl.col(k) == pl.col(f"{k}_ph") for k in keys]
        if VENUE in keys:  # join_where never matches null keys: null venue as "" meanwhile
            levels = levels.with_columns(pl.col(VENUE).fill_null(""))
            spans = spans.with_columns(pl.col(VENUE).fill_null(""))
        inside = (
            levels.join_where(
                spans.rename({k: f"{k}_ph" for k in keys}),
                *on_keys,
                pl.col(_IDX) >= pl.col("_ph_first"),
                pl.col(_IDX) <= pl.col("_ph_last"),
            )
            .drop(keys)
            .rename({f"{k}_ph": k for k in keys})
            .group_by(*ids, _LEVEL)
            .agg(pl.col(_VOLUME).sum())
            .group_by(ids)
            .agg(*_dispersion(pl.col(_VOLUME)))
        )
        if VENUE in keys:
            inside = inside.with_columns(
                pl.when(pl.col(VENUE) != "").then(pl.col(VENUE)).alias(VENUE)
            )
        episodes = episodes.join(inside, on=ids, how="left", nulls_equal=True).with_columns(
            pl.col(PRICE_LEVELS).fill_null(0)
        )
    return episodes.select(*keys, *EPISODE_COLUMNS).sort(*keys, "start")


def event_study(
    phased: pl.LazyFrame,
    episodes: pl.LazyFrame,
    *,
    horizons: Sequence[int] = (1, 5, 15, 60),
    placebo_seed: int = 0,
    placebo_draws: int = 1000,
) -> pl.LazyFrame:
    """Forward returns after distribution episodes against a placebo (metrics.md §12.6 (2)).

    For every ``distribution`` episode, with k₁ its last bar (the last bar starting before its
    ``end``) and P as in :func:`phase_bars`, the **signed** forward return at horizon h bars is

        r_h = −s · ln(P_{k₁+h} / P_{k₁}),   s = +1 for long inventory, −1 for short,

    positive when the price reverts against the distributed inventory, as inventory theory
    predicts (Hendershott & Menkveld 2014, *J. Financial Economics* 114(3):405-423; Hendershott
    & Seasholes 2007, *American Economic Review* 97(2):210-214). The **placebo** is the same
    statistic at ``placebo_draws`` bars drawn without replacement among bars with an inventory
    side, each signed by its own ``inventory_side``: it measures what inventory alone predicts,
    so the gap between the two is what the distribution label adds. The draw is reproducible:
    bars are ranked by a hash of (symbol, ts) seeded with ``placebo_seed`` — the same seed and
    data give the same placebo, whatever the row order or engine. Returns beyond a series (or
    session) end, or with a price ≤ 0, are left out.

    For each sample: ``count``, ``mean``, ``t_statistic`` = mean / (s / √n) (null when n < 2 or
    s = 0) and ``hit_rate`` = share of r_h > 0; ``difference`` = mean − placebo mean with
    Welch's t-statistic ``difference_t_statistic``.

    Parameters
    ----------
    phased
        Output of :func:`phase_bars`.
    episodes
        Output of :func:`phase_episodes` on the same bars.
    horizons
        Forward horizons h in bars (each ≥ 1).
    placebo_seed
        Seed of the placebo draw (≥ 0).
    placebo_draws
        Number of placebo bars (≥ 1; fewer when fewer bars have a side). metrics.md §12.6
        suggests as many as there are episodes; more give a steadier baseline.

    Returns
    -------
    pl.LazyFrame
        One row per horizon: ``horizon`` (Int64), ``count, mean, t_statistic, hit_rate,
        placebo_count, placebo_mean, placebo_t_statistic, placebo_hit_rate, difference,
        difference_t_statistic``.

    Raises
    ------
    ParameterError
        For an empty or non-positive horizon, a negative seed or fewer than 1 draw.
    SchemaError
        If a required column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(6)]
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": ts,
    ...         "mid_close": [10.0, 10.0, 10.0, 9.9, 9.8, 9.9],
    ...         "inventory_side": "long",
    ...     }
    ... )
    >>> episodes = pl.LazyFrame(
    ...     {"symbol": ["X"], "phase": ["distribution"], "inventory_side": ["long"], "end": [ts[3]]}
    ... )
    >>> event_study(phased, episodes, horizons=[1, 2]).select(
    ...     "horizon", "count", pl.col("mean").round(5), "hit_rate", "placebo_count"
    ... ).collect()
    shape: (2, 5)
    ┌─────────┬───────┬─────────┬──────────┬───────────────┐
    │ horizon ┆ count ┆ mean    ┆ hit_rate ┆ placebo_count │
    │ ---     ┆ ---   ┆ ---     ┆ ---      ┆ ---           │
    │ i64     ┆ u32   ┆ f64     ┆ f64      ┆ u32           │
    ╞═════════╪═══════╪═════════╪══════════╪═══════════════╡
    │ 1       ┆ 1     ┆ 0.01005 ┆ 1.0      ┆ 5             │
    │ 2       ┆ 1     ┆ 0.0202  ┆ 1.0      ┆ 4             │
    └─────────┴───────┴─────────┴──────────┴───────────────┘
    """
    steps = check_horizons(horizons)
    check_seed(placebo_seed)
    if isinstance(placebo_draws, bool) or not isinstance(placebo_draws, int) or placebo_draws < 1:
        msg = f"placebo_draws must be a whole number >= 1, was {placebo_draws!r}"
        raise ParameterError(msg)
    names = _names(phased)
    _require(names, (SYMBOL, TS, INVENTORY_SIDE), what="phased bars", hint="run phase_bars first")
    if MID_CLOSE not in names and CLOSE not in names:
        msg = f"phased bars need mid_close or close; found {', '.join(names)}"
        raise SchemaError(msg)
    _require(
        _names(episodes),
        (SYMBOL, PHASE, INVENTORY_SIDE, "end"),
        what="episodes",
        hint="run mmflow.metrics.phases.phase_episodes first",
    )
    keys = _keys(names)
    side = (
        pl.when(pl.col(INVENTORY_SIDE) == LONG)
        .then(1.0)
        .when(pl.col(INVENTORY_SIDE) == SHORT)
        .then(-1.0)
    )
    price = _price(names, keys)
    bars = phased.with_columns(price.alias(_P)).with_columns(
        side.alias(_SIDE),
        *(
            pl.when((pl.col(_P) > 0) & (pl.col(_P).shift(-h) > 0))
            .then((pl.col(_P).shift(-h) / pl.col(_P)).log())
            .over(keys)
            .alias(f"_ph_r{h}")
            for h in steps
        ),
    )
    returns = [f"_ph_r{h}" for h in steps]
    ids = instrument_keys(names)
    ends = (
        episodes.filter(pl.col(PHASE) == DISTRIBUTION)
        .select(*ids, pl.col("end").alias(TS), side.alias("_ph_episode_side"))
        .sort(TS)
    )
    grid = bars.select(*ids, TS, *returns).sort(TS)
    ends, grid, by = asof_keys(ends, grid)
    events = ends.join_asof(
        grid.drop(*(k for k in ids if k not in by)),
        on=TS,
        by=by,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).select(*((-pl.col("_ph_episode_side") * pl.col(r)).alias(r) for r in returns))
    hashed = placebo_hash([*ids, TS], placebo_seed)  # no venue: drawn as before venues existed
    placebo = (
        bars.filter(pl.col(_SIDE).is_not_null())
        .with_columns(hashed.alias("_ph_hash"))
        .sort("_ph_hash", *ids, TS, nulls_last=True)
        .head(placebo_draws)
        .select(*((-pl.col(_SIDE) * pl.col(r)).alias(r) for r in returns))
    )
    rows = []
    for h, r in zip(steps, returns, strict=True):
        signed = pl.col(r)
        found = events.select(summary_statistics(signed, ""))
        base = placebo.select(summary_statistics(signed, "placebo_"))
        rows.append(
            pl.concat([found, base], how="horizontal").with_columns(pl.lit(h).alias("horizon"))
        )
    out = pl.concat(rows)
    difference = pl.col("mean") - pl.col("placebo_mean")
    return out.select(
        pl.col("horizon").cast(pl.Int64),
        "count",
        "mean",
        "t_statistic",
        "hit_rate",
        "placebo_count",
        "placebo_mean",
        "placebo_t_statistic",
        "placebo_hit_rate",
        difference.alias("difference"),
        welch_t_statistic(
            pl.col("mean"),
            pl.col("_var"),
            pl.col("count"),
            pl.col("placebo_mean"),
            pl.col("_placebo_var"),
            pl.col("placebo_count"),
        ).alias("difference_t_statistic"),
    )


def truth_scores(
    phased: pl.LazyFrame, truth: pl.LazyFrame, *, coverage: float = 0.5
) -> pl.LazyFrame:
    """Score detected ``distribution`` bars against simulator truth (metrics.md §12.6 (1)).

    Bars are matched on ``symbol`` and ``ts`` (the truth grid is the reference: a truth bar
    without a phased bar counts as not detected; phased bars outside the truth are ignored).
    With D = labelled ``distribution``, T = true phase ``distribution``:

    * ``precision`` = |D ∩ T| / |D|, ``recall`` = |D ∩ T| / |T| (null when the denominator is 0);
    * a true **episode** is a maximal run of consecutive T bars of a symbol; it is *found* when
      D covers at least ``coverage`` of its bars (§12.6: 50 %) and *overlapped* when D covers
      at least one: ``episode_recall`` = found / episodes, ``episode_overlap_recall`` =
      overlapped / episodes;
    * ``false_positive_rate`` = |D ∩ neutral| / |neutral|, over the bars whose true phase is
      ``neutral`` (all bars of a pure-noise simulation).

    Parameters
    ----------
    phased
        Output of :func:`phase_bars` (``symbol, ts, phase``).
    truth
        ``symbol, ts, phase`` per bar (``mmflow.simulate.Simulation.truth``).
    coverage
        Share of an episode's bars that must be detected for it to count as found, in (0, 1].

    Returns
    -------
    pl.LazyFrame
        One row per symbol (sorted) and a last pooled row with a null ``symbol``: ``symbol,
        bars, truth_bars, detected_bars, true_positives, precision, recall, episodes,
        episodes_found, episode_recall, episodes_overlapped, episode_overlap_recall,
        neutral_bars, false_positives, false_positive_rate``.

    Raises
    ------
    ParameterError
        If ``coverage`` is not in (0, 1].
    SchemaError
        If ``symbol``, ``ts`` or ``phase`` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> truth = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": range(6),
    ...         "phase": [
    ...             "neutral",
    ...             "distribution",
    ...             "distribution",
    ...             "distribution",
    ...             "neutral",
    ...             "neutral",
    ...         ],
    ...     }
    ... )
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": range(6),
    ...         "phase": [
    ...             "neutral",
    ...             "neutral",
    ...             "distribution",
    ...             "distribution",
    ...             "distribution",
    ...             None,
    ...         ],
    ...     }
    ... )
    >>> truth_scores(phased, truth).select(
    ...     "symbol", "precision", "recall", "episode_recall", "false_positive_rate"
    ... ).with_columns(pl.selectors.float().round(4)).collect()
    shape: (2, 5)
    ┌────────┬───────────┬────────┬────────────────┬─────────────────────┐
    │ symbol ┆ precision ┆ recall ┆ episode_recall ┆ false_positive_rate │
    │ ---    ┆ ---       ┆ ---    ┆ ---            ┆ ---                 │
    │ str    ┆ f64       ┆ f64    ┆ f64            ┆ f64                 │
    ╞════════╪═══════════╪════════╪════════════════╪═════════════════════╡
    │ X      ┆ 0.6667    ┆ 0.6667 ┆ 1.0            ┆ 0.3333              │
    │ null   ┆ 0.6667    ┆ 0.6667 ┆ 1.0            ┆ 0.3333              │
    └────────┴───────────┴────────┴────────────────┴─────────────────────┘
    """
    valid = isinstance(coverage, int | float) and not isinstance(coverage, bool)
    if not valid or not math.isfinite(coverage) or not 0 < coverage <= 1:
        msg = f"coverage must be a share in (0, 1], was {coverage!r}"
        raise ParameterError(msg)
    for frame, what in ((phased, "phased bars"), (truth, "truth")):
        _require(_names(frame), (SYMBOL, TS, PHASE), what=what, hint="symbol, ts and phase")
    detected = phased.select(
        pl.col(SYMBOL).cast(pl.String),
        TS,
        (pl.col(PHASE) == DISTRIBUTION).fill_null(value=False).alias("_ph_d"),
    )
    rows = (
        truth.select(pl.col(SYMBOL).cast(pl.String), TS, pl.col(PHASE).alias("_ph_truth"))
        .join(detected, on=[SYMBOL, TS], how="left")
        .sort(SYMBOL, TS)
        .with_columns(
            pl.col("_ph_d").fill_null(value=False),
            (pl.col("_ph_truth") == DISTRIBUTION).fill_null(value=False).alias("_ph_t"),
            (pl.col("_ph_truth") == NEUTRAL).fill_null(value=False).alias("_ph_n"),
        )
        .with_columns(pl.col("_ph_t").rle_id().over(SYMBOL).alias("_ph_run"))
    )
    d, t, n = pl.col("_ph_d"), pl.col("_ph_t"), pl.col("_ph_n")
    runs = (
        rows.filter(t)
        .group_by(SYMBOL, "_ph_run")
        .agg(d.mean().alias("_ph_cover"))
        .group_by(SYMBOL)
        .agg(
            pl.len().cast(pl.UInt32).alias("episodes"),
            (pl.col("_ph_cover") >= coverage).sum().cast(pl.UInt32).alias("episodes_found"),
            (pl.col("_ph_cover") > 0).sum().cast(pl.UInt32).alias("episodes_overlapped"),
        )
    )
    counts = rows.group_by(SYMBOL).agg(
        pl.len().cast(pl.UInt32).alias("bars"),
        t.sum().cast(pl.UInt32).alias("truth_bars"),
        d.sum().cast(pl.UInt32).alias("detected_bars"),
        (d & t).sum().cast(pl.UInt32).alias("true_positives"),
        n.sum().cast(pl.UInt32).alias("neutral_bars"),
        (d & n).sum().cast(pl.UInt32).alias("false_positives"),
    )
    per_symbol = (
        counts.join(runs, on=SYMBOL, how="left")
        .with_columns(pl.col("episodes", "episodes_found", "episodes_overlapped").fill_null(0))
        .sort(SYMBOL)
    )
    totals = per_symbol.select(
        pl.lit(None, pl.String).alias(SYMBOL),
        pl.exclude(SYMBOL).sum(),
    )

    def ratio(top: str, bottom: str) -> pl.Expr:
        return pl.when(pl.col(bottom) > 0).then(pl.col(top) / pl.col(bottom))

    return pl.concat([per_symbol, totals]).select(
        SYMBOL,
        "bars",
        "truth_bars",
        "detected_bars",
        "true_positives",
        ratio("true_positives", "detected_bars").alias("precision"),
        ratio("true_positives", "truth_bars").alias("recall"),
        "episodes",
        "episodes_found",
        ratio("episodes_found", "episodes").alias("episode_recall"),
        "episodes_overlapped",
        ratio("episodes_overlapped", "episodes").alias("episode_overlap_recall"),
        "neutral_bars",
        "false_positives",
        ratio("false_positives", "neutral_bars").alias("false_positive_rate"),
    )
