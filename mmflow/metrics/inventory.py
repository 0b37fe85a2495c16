"""Market-maker inventory flow and liquidity state per bar (metrics.md §b.2, §b.8, §12.1-12.2).

The public-data inventory proxy takes the passive side of every aggressive trade: with net flow
F_k = buy_volume − sell_volume in bar k and CVD_k = Σ_{j≤k} F_j (reset at each session start),

    I_k = −CVD_k,    ΔI_k = −F_k,

an upper bound on any single market maker's position (Menkveld 2013, *J. Financial Markets*
16(4):712-740, finds about four of five of a large HFT market maker's trades passive). Inventory
theory (Ho & Stoll 1981, *J. Financial Economics* 9(1):47-73) predicts that dealers mean-revert
their inventory, shade quotes against it and that prices revert after inventory shocks
(Hendershott & Seasholes 2007, *American Economic Review* 97(2):210-214; Hendershott & Menkveld
2014, *J. Financial Economics* 114(3):405-423: price pressure 0.49 %, half-life 0.92 days for
NYSE specialists). Spreads widen and depth thins when liquidity providers are loaded or losing
(Comerton-Forde, Hendershott, Jones, Moulton & Seasholes 2010, *J. Finance* 65(1):295-331).

Bars are one row per symbol and bar start ``ts`` on a regular grid, in time order within each
symbol (symbols may be interleaved; nothing is sorted here). Bars without trades carry
``net_flow`` 0 and null prices. An optional ``session`` column splits each symbol's series into
independent sessions: CVD and inventory restart at 0, and no inventory window, regression pair or
forward return crosses a session boundary. Quoted liquidity (``spread``, ``depth``) does not
restart with the inventory, so the liquidity state and its episodes are computed per symbol
across sessions. A null ``net_flow`` counts as 0.
"""

from __future__ import annotations

import math
from typing import Final

import polars as pl

from mmflow.durations import duration_seconds  # re-exported: inventory.duration_seconds
from mmflow.errors import ParameterError
from mmflow.metrics._common import require_names
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
    "CVD",
    "DEPTH",
    "FLAT_TOLERANCE",
    "INVENTORY_CHANGE",
    "INVENTORY_HALF_LIFE",
    "INVENTORY_PHI",
    "INVENTORY_Z",
    "LIQUIDITY_STATE",
    "MIN_PAIRS",
    "PROVIDING",
    "SPREAD_COLUMN",
    "WITHDRAWING",
    "duration_seconds",
    "inventory_bars",
    "inventory_half_life",
    "inventory_summary",
    "withdrawal_episodes",
]

SPREAD_COLUMN: Final = "spread"
DEPTH: Final = "depth"

CVD: Final = "cvd"
INVENTORY_CHANGE: Final = "inventory_change"
INVENTORY_Z: Final = "inventory_z"
LIQUIDITY_STATE: Final = "liquidity_state"
INVENTORY_PHI: Final = "inventory_phi"
INVENTORY_HALF_LIFE: Final = "inventory_half_life"

PROVIDING: Final = "providing"
WITHDRAWING: Final = "withdrawing"

MIN_PAIRS: Final = 3
"""Fewest (x, y) pairs an OLS slope of this module is estimated from."""
FLAT_TOLERANCE: Final = 1e-9
"""A regressor whose range is at most this fraction of its largest |value| counts as constant."""


def _min_samples(lookback: int) -> int:
    """Fewest observations a trailing window of ``lookback`` bars needs: max(2, ⌈L/4⌉)."""
    return max(2, math.ceil(lookback / 4))


def _check_lookback(lookback: int) -> None:
    if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 2:
        msg = f"lookback must be a whole number of bars >= 2, was {lookback!r}"
        raise ParameterError(msg)


def _check_factor(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        msg = f"{name} must be a finite number > 0, was {value!r}"
        raise ParameterError(msg)


def _session_keys(schema: pl.Schema) -> list[str]:
    ids = instrument_keys(schema.names())
    return [*ids, SESSION] if SESSION in schema else ids


def _negated(x: pl.Expr) -> pl.Expr:
    """Return −x with +0.0 for 0 (polars may negate 0.0 - x into -0.0, which prints as -0.0)."""
    return pl.when(x == 0).then(pl.lit(0.0)).otherwise(-x)


def _with_inventory(bars: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Add ``cvd``, ``mm_inventory`` and ``inventory_change`` from ``net_flow``."""
    flow = pl.col(NET_FLOW).cast(pl.Float64).fill_null(0.0)
    return bars.with_columns(flow.cum_sum().over(keys).alias(CVD)).with_columns(
        _negated(pl.col(CVD)).alias(MM_INVENTORY),
        _negated(flow).alias(INVENTORY_CHANGE),
    )


def _ols_slope(x: pl.Expr, y: pl.Expr) -> pl.Expr:
    """OLS slope (with intercept) of y on x over the rows where both are finite.

    β̂ = Σ(x − x̄)(y − ȳ) / Σ(x − x̄)²; null with fewer than :data:`MIN_PAIRS` pairs or when x is
    constant. x counts as constant when max − min ≤ :data:`FLAT_TOLERANCE` · max(|x|), so values
    equal up to rounding (z-scores of identical windows) never give a rounding-noise slope.
    """
    usable = x.is_not_null() & y.is_not_null() & x.is_finite() & y.is_finite()
    xs = x.filter(usable)
    ys = y.filter(usable)
    dx = xs - xs.mean()
    dy = ys - ys.mean()
    slope = (dx * dy).sum() / (dx * dx).sum()
    scale = pl.max_horizontal(xs.max().abs(), xs.min().abs())
    varying = (xs.max() - xs.min()) > FLAT_TOLERANCE * scale
    return pl.when((xs.len() >= MIN_PAIRS) & varying).then(slope)


def inventory_bars(
    bars: pl.LazyFrame,
    *,
    lookback: int = 240,
    spread_factor: float = 2.0,
    depth_factor: float = 0.5,
) -> pl.LazyFrame:
    """Add the market-maker inventory proxy, its z-score and the liquidity state to bars.

    Per symbol (and ``session`` when the column exists), bar k (metrics.md §b.2, §12.1-12.2):

    * ``cvd`` CVD_k = Σ_{j≤k} F_j, F = ``net_flow``;
    * ``mm_inventory`` I_k = −CVD_k and ``inventory_change`` ΔI_k = −F_k;
    * ``inventory_z`` = (I_k − mean_L(I)) / std_L(I) over the trailing L = ``lookback`` bars
      including bar k (sample std, ddof = 1); null until max(2, ⌈L/4⌉) bars of the session exist
      and when the window's inventory is constant (std 0);
    * ``liquidity_state`` = ``withdrawing`` when spread_k ≥ ``spread_factor`` · med_L(spread) or
      depth_k ≤ ``depth_factor`` · med_L(depth), else ``providing``.

    The reference medians med_L are over the L bars **before** bar k (bar k excluded, so a spike
    is compared with the normal level before it), per symbol across sessions, ignoring bars
    without a value and requiring max(2, ⌈L/4⌉) values. A criterion is used only where the bar
    has the value and its reference median is > 0 (zero quoted sizes make the depth criterion
    meaningless, not permanently "withdrawing"); the state is null when neither criterion can be
    used: on bars without quote data, before enough earlier quoted bars exist, and when
    ``spread``/``depth`` are absent.
    Withdrawal in the sense of Comerton-Forde et al. (2010, *J. Finance* 65(1):295-331): wider
    spreads and thinner depth when liquidity providers are constrained.

    Parameters
    ----------
    bars
        Bars with ``symbol, ts, net_flow`` and optionally ``session``, ``spread`` (time-weighted
        quoted spread) and ``depth`` (time-weighted bid + ask size at the touch), in time order
        within each symbol.
    lookback
        L, the trailing window in bars (≥ 2).
    spread_factor
        Withdrawal when the spread reaches this multiple of its trailing median (> 0).
    depth_factor
        Withdrawal when depth falls to this fraction of its trailing median (> 0).

    Returns
    -------
    pl.LazyFrame
        ``bars`` with ``cvd, mm_inventory, inventory_change, inventory_z`` (Float64) and
        ``liquidity_state`` (String); ``spread`` and ``depth`` are added as null Float64 columns
        when absent.

    Raises
    ------
    ParameterError
        If ``lookback`` < 2 or a factor is not a finite number > 0.
    SchemaError
        If ``symbol``, ``ts`` or ``net_flow`` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 5,
    ...         "ts": list(range(5)),
    ...         "net_flow": [2.0, 1.0, -4.0, 0.0, 3.0],
    ...         "spread": [0.01, 0.01, 0.01, 0.03, None],
    ...         "depth": [100.0, 120.0, 80.0, 100.0, None],
    ...     }
    ... )
    >>> inventory_bars(bars, lookback=4).drop("ts", "spread", "depth").collect()
    shape: (5, 7)
    ┌────────┬──────────┬──────┬──────────────┬──────────────────┬─────────────┬─────────────────┐
    │ symbol ┆ net_flow ┆ cvd  ┆ mm_inventory ┆ inventory_change ┆ inventory_z ┆ liquidity_state │
    │ ---    ┆ ---      ┆ ---  ┆ ---          ┆ ---              ┆ ---         ┆ ---             │
    │ str    ┆ f64      ┆ f64  ┆ f64          ┆ f64              ┆ f64         ┆ str             │
    ╞════════╪══════════╪══════╪══════════════╪══════════════════╪═════════════╪═════════════════╡
    │ X      ┆ 2.0      ┆ 2.0  ┆ -2.0         ┆ -2.0             ┆ null        ┆ null            │
    │ X      ┆ 1.0      ┆ 3.0  ┆ -3.0         ┆ -1.0             ┆ -0.707107   ┆ null            │
    │ X      ┆ -4.0     ┆ -1.0 ┆ 1.0          ┆ 4.0              ┆ 1.120897    ┆ providing       │
    │ X      ┆ 0.0      ┆ -1.0 ┆ 1.0          ┆ 0.0              ┆ 0.848875    ┆ withdrawing     │
    │ X      ┆ 3.0      ┆ 2.0  ┆ -2.0         ┆ -3.0             ┆ -0.606339   ┆ null            │
    └────────┴──────────┴──────┴──────────────┴──────────────────┴─────────────┴─────────────────┘
    """
    _check_lookback(lookback)
    _check_factor("spread_factor", spread_factor)
    _check_factor("depth_factor", depth_factor)
    schema = bars.collect_schema()
    require_names(
        schema,
        (SYMBOL, TS, NET_FLOW),
        what="bars",
        hint="build bars with mmflow.metrics.flow.flow_bars",
    )
    keys = _session_keys(schema)
    ids = instrument_keys(schema.names())
    out = _with_inventory(bars, keys)
    missing_quotes = [name for name in (SPREAD_COLUMN, DEPTH) if name not in schema]
    if missing_quotes:
        out = out.with_columns(pl.lit(None, pl.Float64).alias(name) for name in missing_quotes)

    window = lookback
    least = _min_samples(lookback)
    inventory = pl.col(MM_INVENTORY)
    mean = inventory.rolling_mean(window, min_samples=least).over(keys)
    std = inventory.rolling_std(window, min_samples=least).over(keys)
    flat = (
        inventory.rolling_max(window, min_samples=least)
        == inventory.rolling_min(window, min_samples=least)
    ).over(keys)
    z = pl.when(~flat & (std > 0)).then((inventory - mean) / std)

    spread = pl.col(SPREAD_COLUMN).cast(pl.Float64)
    depth = pl.col(DEPTH).cast(pl.Float64)
    normal_spread = spread.shift(1).rolling_median(window, min_samples=least).over(ids)
    normal_depth = depth.shift(1).rolling_median(window, min_samples=least).over(ids)
    wide = pl.when(spread.is_not_null() & (normal_spread > 0)).then(
        spread >= spread_factor * normal_spread
    )
    thin = pl.when(depth.is_not_null() & (normal_depth > 0)).then(
        depth <= depth_factor * normal_depth
    )
    state = (
        pl.when(wide | thin)
        .then(pl.lit(WITHDRAWING))
        .when(wide.is_not_null() | thin.is_not_null())
        .then(pl.lit(PROVIDING))
        .otherwise(pl.lit(None, pl.String))
    )
    return out.with_columns(z.alias(INVENTORY_Z), state.alias(LIQUIDITY_STATE))


def inventory_half_life(bars: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """Estimate the mean-reversion speed of the inventory proxy per symbol.

    Fit I_k = c + φ I_{k−1} + ε_k by OLS with intercept on the bar series (metrics.md §b.2,
    §12.1), pairing each bar only with the previous bar of the same symbol and session (no pair
    across a session reset): φ̂ = Σ(x − x̄)(y − ȳ) / Σ(x − x̄)² with x = I_{k−1}, y = I_k. The
    half-life of an AR(1), ln 0.5 / ln φ bars (= ln 2 / κ for the OU process dI = −κ I dt + σ dW),
    is reported in seconds. Test vector: φ = 0.9 ⇒ 6.58 bars. Hendershott & Menkveld (2014,
    *J. Financial Economics* 114(3):405-423) report a 0.92-day half-life for NYSE specialists.

    Parameters
    ----------
    bars
        Output of :func:`inventory_bars`, or any bars with ``symbol, ts, net_flow`` (the
        inventory is then computed here), in time order within each symbol.
    every
        The bar length (polars duration, e.g. ``1m``), to convert bars to seconds.

    Returns
    -------
    pl.LazyFrame
        One row per symbol, sorted by symbol: ``symbol``, ``inventory_phi`` (φ̂; null with fewer
        than 3 pairs or a constant lagged inventory) and ``inventory_half_life`` (Float64
        seconds; null unless 0 < φ̂ < 1).

    Raises
    ------
    ParameterError
        If ``every`` is not a fixed-length duration.
    SchemaError
        If ``symbol``, ``ts`` and either ``mm_inventory`` or ``net_flow`` are missing.

    Examples
    --------
    I_k = 0.5 I_{k−1} + 1 from I_0 = 10 (φ = 0.5: a half-life of one bar, 60 s).

    >>> import polars as pl
    >>> inventory = [10.0, 6.0, 4.0, 3.0, 2.5]
    >>> bars = pl.LazyFrame({"symbol": ["X"] * 5, "ts": list(range(5)), "mm_inventory": inventory})
    >>> inventory_half_life(bars, every="1m").collect()
    shape: (1, 3)
    ┌────────┬───────────────┬─────────────────────┐
    │ symbol ┆ inventory_phi ┆ inventory_half_life │
    │ ---    ┆ ---           ┆ ---                 │
    │ str    ┆ f64           ┆ f64                 │
    ╞════════╪═══════════════╪═════════════════════╡
    │ X      ┆ 0.5           ┆ 60.0                │
    └────────┴───────────────┴─────────────────────┘
    """
    bar_seconds = duration_seconds(every)
    schema = bars.collect_schema()
    require_names(schema, (SYMBOL, TS), what="bars", hint="build bars with flow_bars")
    keys = _session_keys(schema)
    ids = instrument_keys(schema.names())
    if MM_INVENTORY not in schema:
        require_names(schema, (NET_FLOW,), what="bars", hint="build bars with flow_bars")
        bars = _with_inventory(bars, keys)
    inventory = pl.col(MM_INVENTORY).cast(pl.Float64)
    pairs = bars.select(
        *ids,
        inventory.shift(1).over(keys).alias("_lagged"),
        inventory.alias("_inventory"),
    )
    phi = pairs.group_by(ids).agg(
        _ols_slope(pl.col("_lagged"), pl.col("_inventory")).alias(INVENTORY_PHI)
    )
    phi_value = pl.col(INVENTORY_PHI)
    half_life = pl.when((phi_value > 0) & (phi_value < 1)).then(
        math.log(0.5) / phi_value.log() * bar_seconds
    )
    return phi.with_columns(half_life.alias(INVENTORY_HALF_LIFE)).sort(ids, nulls_last=True)


def inventory_summary(bars: pl.LazyFrame, *, every: str, horizon: int = 5) -> pl.LazyFrame:
    """Summarise inventory, its reversion, price pressure and liquidity per symbol.

    From the output of :func:`inventory_bars` (metrics.md §12.1-12.2):

    * ``mm_inventory`` at the last bar, ``inventory_max`` and ``inventory_min`` over all bars;
    * ``inventory_phi`` and ``inventory_half_life`` (seconds) from :func:`inventory_half_life`;
    * ``price_pressure``: OLS slope (with intercept) of the forward return
      r_k = ln(P_{k+h} / P_k), h = ``horizon`` bars, on ``inventory_z`` — à la Hendershott &
      Menkveld (2014, *J. Financial Economics* 114(3):405-423); inventory theory predicts a
      negative slope (long inventory ⇒ prices fall back). P is ``mid_close`` for symbols that
      have any mid, else ``close`` carried forward over bars without trades (the last trade
      price stands); bar k + h must be in the same session and P > 0 at both ends;
    * ``quote_skew``: OLS slope of Δmid_k = mid_close_k − mid_close_{k−1} (same session) on
      ΔI_k = ``inventory_change`` — the mid move per unit of inventory taken on, negative when
      market makers shade quotes against inventory (Ho & Stoll 1981, *J. Financial Economics*
      9(1):47-73; Avellaneda & Stoikov 2008, *Quantitative Finance* 8(3):217-224); null without
      quotes;
    * ``withdrawing_share``: the share of bars with a liquidity state that are ``withdrawing``
      (null when no bar has one) and ``liquidity_state`` of the last bar.

    Slopes need at least 3 pairs and a non-constant regressor, else they are null.

    Parameters
    ----------
    bars
        Output of :func:`inventory_bars` (with ``close`` and, optionally, ``mid_close``).
    every
        The bar length (polars duration), for the half-life in seconds.
    horizon
        h, the forward-return horizon in bars (≥ 1).

    Returns
    -------
    pl.LazyFrame
        One row per symbol, sorted by symbol: ``symbol, mm_inventory, inventory_max,
        inventory_min, inventory_phi, inventory_half_life, price_pressure, quote_skew,
        withdrawing_share, liquidity_state``.

    Raises
    ------
    ParameterError
        If ``every`` is not a fixed-length duration or ``horizon`` < 1.
    SchemaError
        If a column of :func:`inventory_bars` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 8,
    ...         "ts": list(range(8)),
    ...         "net_flow": [5.0, 3.0, -2.0, -4.0, 1.0, -1.0, 2.0, -3.0],
    ...         "close": [100.0, 101.0, 101.5, 100.5, 100.0, 100.2, 100.6, 100.1],
    ...         "mid_close": [100.05, 100.95, 101.45, 100.55, 100.05, 100.25, 100.55, 100.15],
    ...         "spread": [0.1, 0.1, 0.1, 0.3, 0.1, 0.1, 0.2, 0.1],
    ...         "depth": [50.0, 60.0, 40.0, 20.0, 50.0, 55.0, 50.0, 45.0],
    ...     }
    ... )
    >>> out = inventory_summary(inventory_bars(bars, lookback=4), every="1m", horizon=1)
    >>> out.with_columns(pl.selectors.float().round(4)).collect().transpose(
    ...     include_header=True, column_names=["value"]
    ... )
    shape: (10, 2)
    ┌─────────────────────┬───────────┐
    │ column              ┆ value     │
    │ ---                 ┆ ---       │
    │ str                 ┆ str       │
    ╞═════════════════════╪═══════════╡
    │ symbol              ┆ X         │
    │ mm_inventory        ┆ -1.0      │
    │ inventory_max       ┆ -1.0      │
    │ inventory_min       ┆ -8.0      │
    │ inventory_phi       ┆ 0.4272    │
    │ inventory_half_life ┆ 48.897    │
    │ price_pressure      ┆ -0.0005   │
    │ quote_skew          ┆ -0.1548   │
    │ withdrawing_share   ┆ 0.3333    │
    │ liquidity_state     ┆ providing │
    └─────────────────────┴───────────┘
    """
    duration_seconds(every)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        msg = f"horizon must be a whole number of bars >= 1, was {horizon!r}"
        raise ParameterError(msg)
    schema = bars.collect_schema()
    require_names(
        schema,
        (SYMBOL, TS, MM_INVENTORY, INVENTORY_CHANGE, INVENTORY_Z, LIQUIDITY_STATE),
        what="inventory bars",
        hint="run mmflow.metrics.inventory.inventory_bars first",
    )
    keys = _session_keys(schema)
    ids = instrument_keys(schema.names())
    close = (
        pl.col(CLOSE).cast(pl.Float64).forward_fill().over(keys)
        if CLOSE in schema
        else pl.lit(None, pl.Float64)
    )
    price = close
    mid_change = pl.lit(None, pl.Float64)
    if MID_CLOSE in schema:
        mid = pl.col(MID_CLOSE).cast(pl.Float64)
        price = pl.when(mid.is_not_null().any().over(ids)).then(mid).otherwise(close)
        mid_change = mid.diff().over(keys)
    later = pl.col("_price").shift(-horizon)
    rows = bars.with_columns(price.alias("_price")).with_columns(
        pl.when((pl.col("_price") > 0) & (later > 0))
        .then((later / pl.col("_price")).log())
        .over(keys)
        .alias("_forward_return"),
        mid_change.alias("_mid_change"),
    )
    state = pl.col(LIQUIDITY_STATE)
    last = pl.col(TS).arg_max()
    inventory = pl.col(MM_INVENTORY).cast(pl.Float64)
    stated = state.is_not_null().sum()
    summary = rows.group_by(ids).agg(
        inventory.get(last).alias(MM_INVENTORY),
        inventory.max().alias("inventory_max"),
        inventory.min().alias("inventory_min"),
        _ols_slope(pl.col(INVENTORY_Z), pl.col("_forward_return")).alias("price_pressure"),
        _ols_slope(pl.col(INVENTORY_CHANGE).cast(pl.Float64), pl.col("_mid_change")).alias(
            "quote_skew"
        ),
        pl.when(stated > 0)
        .then((state == WITHDRAWING).sum() / stated)
        .otherwise(pl.lit(None, pl.Float64))
        .alias("withdrawing_share"),
        state.get(last).alias(LIQUIDITY_STATE),
    )
    return (
        summary.join(inventory_half_life(bars, every=every), on=ids, how="left", nulls_equal=True)
        .select(
            *ids,
            MM_INVENTORY,
            "inventory_max",
            "inventory_min",
            INVENTORY_PHI,
            INVENTORY_HALF_LIFE,
            "price_pressure",
            "quote_skew",
            "withdrawing_share",
            LIQUIDITY_STATE,
        )
        .sort(ids, nulls_last=True)
    )


def withdrawal_episodes(bars: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """List the liquidity-withdrawal episodes: runs of consecutive ``withdrawing`` bars.

    A run is a maximal sequence of adjacent bars of one symbol (on the regular bar grid, across
    sessions, like the liquidity state) whose ``liquidity_state`` is ``withdrawing``; a
    ``providing`` or null-state bar ends it (metrics.md §12.2). The episode covers
    [``start``, ``end``) with ``start`` the first bar's start and ``end`` = the last bar's start
    + ``every``. ``spread_ratio`` = mean spread over the episode's bars / median spread of the
    symbol's ``providing`` bars, and ``depth_ratio`` likewise for depth (null when the symbol has
    no providing bar with a value, the median is 0, or the episode has no value).

    Parameters
    ----------
    bars
        Output of :func:`inventory_bars`, in time order within each symbol.
    every
        The bar length (polars duration), to close the last bar of an episode.

    Returns
    -------
    pl.LazyFrame
        One row per episode, sorted by symbol and start: ``symbol, start, end, bars`` (UInt32),
        ``spread_ratio, depth_ratio`` (Float64).

    Raises
    ------
    ParameterError
        If ``every`` is not a fixed-length duration.
    SchemaError
        If ``symbol``, ``ts``, ``spread``, ``depth`` or ``liquidity_state`` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 5,
    ...         "ts": [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(5)],
    ...         "spread": [0.01, 0.04, 0.03, 0.01, 0.01],
    ...         "depth": [100.0, 50.0, 30.0, 100.0, 80.0],
    ...         "liquidity_state": ["providing", "withdrawing", "withdrawing"] + ["providing"] * 2,
    ...     }
    ... )
    >>> withdrawal_episodes(bars, every="1m").collect()
    shape: (1, 6)
    ┌────────┬─────────────────────┬─────────────────────┬──────┬──────────────┬─────────────┐
    │ symbol ┆ start               ┆ end                 ┆ bars ┆ spread_ratio ┆ depth_ratio │
    │ ---    ┆ ---                 ┆ ---                 ┆ ---  ┆ ---          ┆ ---         │
    │ str    ┆ datetime[μs]        ┆ datetime[μs]        ┆ u32  ┆ f64          ┆ f64         │
    ╞════════╪═════════════════════╪═════════════════════╪══════╪══════════════╪═════════════╡
    │ X      ┆ 2024-01-02 00:01:00 ┆ 2024-01-02 00:03:00 ┆ 2    ┆ 3.5          ┆ 0.4         │
    └────────┴─────────────────────┴─────────────────────┴──────┴──────────────┴─────────────┘
    """
    duration_seconds(every)
    schema = bars.collect_schema()
    require_names(
        schema,
        (SYMBOL, TS, SPREAD_COLUMN, DEPTH, LIQUIDITY_STATE),
        what="inventory bars",
        hint="run mmflow.metrics.inventory.inventory_bars first",
    )
    ids = instrument_keys(schema.names())
    state = pl.col(LIQUIDITY_STATE)
    spread = pl.col(SPREAD_COLUMN).cast(pl.Float64)
    depth = pl.col(DEPTH).cast(pl.Float64)
    withdrawing = (state == WITHDRAWING).fill_null(value=False)
    providing = (state == PROVIDING).fill_null(value=False)
    normal = bars.group_by(ids).agg(
        spread.filter(providing).median().alias("_normal_spread"),
        depth.filter(providing).median().alias("_normal_depth"),
    )
    episodes = (
        bars.with_columns(withdrawing.rle_id().over(ids).alias("_run"))
        .filter(withdrawing)
        .group_by(*ids, "_run")
        .agg(
            pl.col(TS).min().alias("start"),
            pl.col(TS).max().dt.offset_by(every.strip()).alias("end"),
            pl.len().alias("bars"),
            spread.mean().alias("_spread"),
            depth.mean().alias("_depth"),
        )
    )
    return (
        episodes.join(normal, on=ids, how="left", nulls_equal=True)
        .select(
            *ids,
            "start",
            "end",
            "bars",
            pl.when(pl.col("_normal_spread") > 0)
            .then(pl.col("_spread") / pl.col("_normal_spread"))
            .alias("spread_ratio"),
            pl.when(pl.col("_normal_depth") > 0)
            .then(pl.col("_depth") / pl.col("_normal_depth"))
            .alias("depth_ratio"),
        )
        .sort(*ids, "start", nulls_last=True)
    )
