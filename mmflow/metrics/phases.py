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
⌈L/4⌉ bars exist, and then ``phase`` is null) and clipped at ±4 (heavy tails), then divided
by the drift ratio r ≥ 1 (:func:`mmflow.metrics.phase_model.drift_ratio`: the persistent
variance ratio of the path, so a −CVD proxy that random-walks under other participants' flow
does not look like accumulation; ``phase`` is also null until r exists). On that path the
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

import numpy as np
import polars as pl

from mmflow.errors import SchemaError
from mmflow.metrics import phase_model
from mmflow.metrics._common import require_names
from mmflow.metrics.impact import KYLE_LAMBDA, kyle_lambda
from mmflow.metrics.phase_columns import (
    _ABS,
    _CODE,
    _FLOW,
    _IDX,
    _P,
    _PEAK_IDX,
    _PRICE_SD,
    _ROW,
    _RUN,
    _SAVED_LAMBDA,
    _SIDE,
    ABSORPTION_LAMBDA,
    ABSORPTION_RATIO,
    ACCUMULATION,
    BUILDUP_Z,
    DISTRIBUTION,
    DISTRIBUTION_SCORE,
    EPISODE_COLUMNS,
    FLOW_SCALE,
    INVENTORY_PEAK,
    INVENTORY_SIDE,
    IQR_TO_SIGMA,
    LEVEL_DISPERSION,
    LONG,
    NEUTRAL,
    PHASE,
    PHASE_COLUMNS,
    PRICE_LEVELS,
    RECENT_Z,
    SHORT,
    UNLOAD_ABSORPTION,
    UNLOAD_Z,
    UNLOADED,
)
from mmflow.metrics.phase_levels import _with_levels
from mmflow.metrics.phase_parameters import PARAMETER_RANGES, PhaseParameters
from mmflow.schema import (
    CLOSE,
    MID_CLOSE,
    MM_INVENTORY,
    NET_FLOW,
    SESSION,
    SYMBOL,
    TS,
    instrument_keys,
)

__all__ = [
    "ABSORPTION_LAMBDA",
    "ABSORPTION_RATIO",
    "ACCUMULATION",
    "BUILDUP_Z",
    "DISTRIBUTION",
    "DISTRIBUTION_SCORE",
    "EPISODE_COLUMNS",
    "FLOW_SCALE",
    "INVENTORY_PEAK",
    "INVENTORY_SIDE",
    "IQR_TO_SIGMA",
    "LEVEL_DISPERSION",
    "LONG",
    "NEUTRAL",
    "PARAMETER_RANGES",
    "PHASE",
    "PHASE_COLUMNS",
    "PRICE_LEVELS",
    "RECENT_Z",
    "SHORT",
    "UNLOADED",
    "UNLOAD_ABSORPTION",
    "UNLOAD_Z",
    "PhaseParameters",
    "phase_bars",
    "phase_labels",
    "with_phase_levels",
]


def _names(frame: pl.LazyFrame) -> list[str]:
    return frame.collect_schema().names()


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
    path, _, warm = phase_model.detector_path(change, sigma, p.lookback)
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
        within each symbol (``mmflow.analysis.market_bars`` output, or flow bars); with a
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
        ``level_dispersion`` (Float64), ``phase`` (String; null until σ₁ and the drift ratio exist),
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
    first unload bars has added up to ``evidence``). The quiet stretch is 72 bars long: the
    drift ratio that discounts persistent flow needs that much history before it settles.

    >>> import polars as pl
    >>> flow = [-3.0, 2, -1, 3, -2, 1] * 12 + [-40.0] * 8 + [45.0] * 5
    >>> mid = [100.0, 100.01, 100.0, 100.02, 100.01, 100.0] * 12
    >>> mid += [round(100 - 0.05 * i, 2) for i in range(1, 9)] + [99.59, 99.58, 99.57, 99.56, 99.55]
    >>> bars = pl.LazyFrame({"symbol": "X", "ts": range(85), "net_flow": flow, "mid_close": mid})
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
    │ 275.0        ┆ 4.0      ┆ neutral      ┆ long           ┆ 0.864              │
    │ 230.0        ┆ 5.66     ┆ distribution ┆ long           ┆ 1.0                │
    │ 185.0        ┆ 6.93     ┆ distribution ┆ long           ┆ 1.0                │
    │ 140.0        ┆ 8.0      ┆ distribution ┆ long           ┆ 1.0                │
    │ 95.0         ┆ 8.94     ┆ distribution ┆ long           ┆ 1.0                │
    └──────────────┴──────────┴──────────────┴────────────────┴────────────────────┘
    """
    labelled = phase_labels(bars, parameters=parameters, offline=offline)
    return with_phase_levels(labelled, trades, parameters=parameters)


def phase_labels(
    bars: pl.LazyFrame,
    *,
    parameters: PhaseParameters = PhaseParameters(),
    offline: bool = False,
) -> pl.LazyFrame:
    """Return :func:`phase_bars` before its level columns, with its internal columns kept.

    ``phase_bars(bars, trades, …)`` is ``with_phase_levels(phase_labels(bars, …), trades, …)``.
    The level step reads the labelled bars more than once, and a lazy plan read twice is run
    twice (the detector's state machine too), so a caller with many series collects this
    table first and adds the levels to the collected rows (:func:`mmflow.engine.finish`).
    """
    p = parameters
    names = _names(bars)
    require_names(
        names,
        (SYMBOL, TS, NET_FLOW),
        what="bars",
        hint="build bars with mmflow.analysis.market_bars or mmflow.metrics.flow.flow_bars",
    )
    if MID_CLOSE not in names and CLOSE not in names:
        msg = (
            f"bars need a price column, mid_close or close; found {', '.join(names)} "
            "(build bars with mmflow.analysis.market_bars)"
        )
        raise SchemaError(msg)
    keys = _keys(names)
    lf = _with_absorption_lambda(bars, names, keys, p.lookback)
    lf = _prepared(lf, names, keys, p)
    lf = _labelled(lf, keys, p)
    lf = _named_labels(lf)
    w = p.recent_bars
    if offline:
        lf = _offline(lf, keys, w)
    return lf


def with_phase_levels(
    labelled: pl.LazyFrame,
    trades: pl.LazyFrame | None = None,
    *,
    parameters: PhaseParameters = PhaseParameters(),
) -> pl.LazyFrame:
    """Add ``price_levels`` and ``level_dispersion`` to :func:`phase_labels`' table (§12.3).

    Over the last W bars, from ``trades`` (else from the bars' prices; see
    :func:`phase_bars`), then drop the internal columns: the end of :func:`phase_bars`.
    """
    keys = _keys(_names(labelled))
    lf = _with_levels(labelled, trades, keys, parameters.window)
    internal = [c for c in _names(lf) if c.startswith("_ph_")]
    return lf.drop(internal)


def _with_absorption_lambda(
    bars: pl.LazyFrame, names: list[str], keys: list[str], lookback: int
) -> pl.LazyFrame:
    """Drop earlier phase columns, add ``mm_inventory`` if missing and λ̂ over ``lookback`` bars.

    λ̂ (``absorption_lambda``) is Kyle's lambda of the raw price on ``net_flow``; a
    ``kyle_lambda`` column already in the bars is kept as it is.
    """
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    replaced = [c for c in PHASE_COLUMNS if c in names]
    lf = bars.drop(replaced) if replaced else bars
    if MM_INVENTORY not in names:
        cvd = flow.cum_sum().over(keys)
        lf = lf.with_columns(pl.when(cvd == 0).then(0.0).otherwise(-cvd).alias(MM_INVENTORY))
    if KYLE_LAMBDA in names:
        lf = lf.rename({KYLE_LAMBDA: _SAVED_LAMBDA})
    lf = kyle_lambda(lf, window=lookback, price=_raw_price(names), flow=NET_FLOW).rename(
        {KYLE_LAMBDA: ABSORPTION_LAMBDA}
    )
    if KYLE_LAMBDA in names:
        lf = lf.rename({_SAVED_LAMBDA: KYLE_LAMBDA})
    return lf


def _labelled(lf: pl.LazyFrame, keys: list[str], p: PhaseParameters) -> pl.LazyFrame:
    """Run the detector's state machine over each series (:mod:`mmflow.metrics.phase_model`).

    Adds the side, the peak, the state code and the components, per bar, in row order.
    """
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
    return lf


def _named_labels(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Turn the state code and side into ``phase`` and ``inventory_side`` text."""
    code = pl.col(_CODE)
    side = pl.col(_SIDE)
    return lf.with_columns(
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
