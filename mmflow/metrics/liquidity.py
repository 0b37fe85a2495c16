"""Illiquidity from prices alone: Amihud's ratio on bars and Roll's implied spread on trades.

* Amihud's illiquidity: mean |return| per unit of dollar volume (metrics.md §b.6).
* Roll's spread from the serial covariance of price changes (§b.7).

Both are re-exported by :mod:`mmflow.metrics.impact`.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from mmflow.metrics._common import bar_window, polars_duration, require_columns, series_keys
from mmflow.schema import PRICE, SYMBOL, TS, instrument_keys

__all__ = ["AMIHUD", "ROLL_SPREAD", "ROLL_TOLERANCE", "amihud", "roll_spread"]

AMIHUD: Final = "amihud"
ROLL_SPREAD: Final = "roll_spread"

ROLL_TOLERANCE: Final = 1e-9
"""Roll's covariance counts as ≥ 0 unless the serial correlation is below −10⁻⁹ and the
spread it implies exceeds 10⁻⁹ of the bar's mean price, so that float rounding (of a zero
covariance, or of the equal changes of a steady trend) never yields a spread."""


def amihud(bars: pl.LazyFrame, *, window: int = 240) -> pl.LazyFrame:
    """Add ``amihud``: the trailing mean of |Δ log close| per unit of dollar volume.

    ILLIQ_k = (1/N) Σ_j |ln P_j − ln P_{j'}| / (VWAP_j · V_j) over the N usable bars j among
    the last ``window`` bars (this one included) of the symbol (Amihud 2002, "Illiquidity and
    stock returns", *J. Financial Markets* 5(1):31-56, on days; here on bars; metrics.md §b.6),
    where P is the bar's ``close``, j' the latest earlier bar of the same symbol (and session)
    with a close, and VWAP · V the bar's dollar volume. A bar is usable when its volume, VWAP,
    close and previous close are all > 0: bars with no trades are skipped, and so is the first
    traded bar of a symbol or session. Null when no bar in the window is usable. The unit is
    log return per currency unit traded (often multiplied by 10⁶ for display).

    Parameters
    ----------
    bars
        Bars with ``symbol, close, vwap, volume`` in time order within each symbol.
    window
        Number of trailing bars (empty bars included).

    Returns
    -------
    pl.LazyFrame
        ``bars`` with ``amihud`` (Float64).

    Raises
    ------
    ParameterError
        If ``window`` is not a whole number ≥ 1.
    SchemaError
        If a required column is missing.

    Examples
    --------
    >>> import math
    >>> import polars as pl
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 4,
    ...         "close": [100.0, 110.0, None, 99.0],
    ...         "vwap": [100.0, 105.0, None, 100.0],
    ...         "volume": [10.0, 20.0, 0.0, 10.0],
    ...     }
    ... )
    >>> out = amihud(bars, window=3).collect()["amihud"].to_list()
    >>> [None if v is None else round(v * 1e6, 3) for v in out]
    [None, 45.386, 45.386, 75.373]
    >>> round((math.log(110 / 100) / 2100 + math.log(110 / 99) / 1000) / 2 * 1e6, 3)
    75.373
    """
    length = bar_window(window)
    names = require_columns(bars, (SYMBOL, "close", "vwap", "volume"), "bars")
    keys, instrument = series_keys(names), instrument_keys(names)
    close = pl.col("close").cast(pl.Float64)
    log_close = pl.when(close > 0).then(close.log())
    previous = pl.when(close > 0).then(close).shift(1).forward_fill().over(keys)
    log_return = (log_close - pl.when(previous > 0).then(previous.log())).abs()
    dollar_volume = pl.col("vwap").cast(pl.Float64) * pl.col("volume").cast(pl.Float64)
    ratio = pl.when((pl.col("volume") > 0) & (dollar_volume > 0)).then(log_return / dollar_volume)
    usable = ratio.is_finite().fill_null(value=False)
    total = (
        pl.when(usable)
        .then(ratio)
        .otherwise(0.0)
        .rolling_sum(window_size=length, min_samples=1)
        .over(instrument)
    )
    count = usable.cast(pl.Float64).rolling_sum(window_size=length, min_samples=1).over(instrument)
    return bars.with_columns(pl.when(count > 0).then(total / count).alias(AMIHUD))


def roll_spread(trades: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """Estimate Roll's implied spread per symbol and time bar from the bar's trade prices.

    S = 2 √(−cov(Δp_t, Δp_{t−1})) (Roll 1984, "A simple implicit measure of the effective
    bid-ask spread in an efficient market", *J. Finance* 39(4):1127-1139; metrics.md §b.7),
    where Δp_t = P_t − P_{t−1} are the changes between consecutive trades of the bar (the first
    trade of a bar is not compared with the previous bar) and cov is the sample covariance
    (divisor m − 1) of the m pairs (Δp_t, Δp_{t−1}), each centred on its own mean. Null — not
    0 — when the covariance is ≥ 0 (Roll's model does not hold) or undefined: fewer than two
    pairs, i.e. fewer than 4 trades (so always with fewer than 3). Rounding noise counts as 0:
    a serial correlation above −10⁻⁹, or a spread below 10⁻⁹ of the bar's mean price.

    Parameters
    ----------
    trades
        Trades with ``ts, symbol, price``, sorted by ``ts``; with a ``session`` column, bars are
        made per session, as flow bars are.
    every
        Bar length (polars duration string); a bar's ``ts`` is its start.

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,] ts, roll_spread`` (Float64), one row per bar with trades, sorted
        by symbol and ``ts``.

    Raises
    ------
    ParameterError
        If ``every`` is not a positive polars duration.
    SchemaError
        If a required column is missing.

    Examples
    --------
    Trades bouncing between bid 10.00 and ask 10.02: Δp = .02, −.02, .02, 0, −.02 give four
    pairs with sample covariance −0.0007/3, so S = 2 √(0.0007/3) = 0.030551.

    >>> import polars as pl
    >>> from datetime import datetime
    >>> prices = [10.00, 10.02, 10.00, 10.02, 10.02, 10.00]
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 0, 0, s) for s in range(6)],
    ...         "symbol": ["X"] * 6,
    ...         "price": prices,
    ...     }
    ... )
    >>> roll_spread(trades, every="1m").select(pl.col("roll_spread").round(6)).collect().item()
    0.030551
    """
    step = polars_duration(every, "bar length", zero=False)
    keys = series_keys(require_columns(trades, (TS, SYMBOL, PRICE), "trades"))
    # The trades grouped by instrument once (a stable sort keeps each one's time order), so a
    # bar's price changes are plain differences guarded at the bar's first trade instead of
    # per-bar windows (``.over``); then plain sums per bar, on polars' fast path.
    groups = [*keys, "_bar"]
    price = pl.col(PRICE)
    first = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in groups)
    change = pl.when(~first).then(price.diff())
    paired = change.is_finite() & change.shift(1).is_finite()
    a = pl.when(pl.col("_paired")).then(pl.col("_change"))
    b = pl.when(pl.col("_paired")).then(pl.col("_lag"))
    sums = (
        trades.select(
            *keys, pl.col(TS).dt.truncate(step).alias("_bar"), pl.col(PRICE).cast(pl.Float64)
        )
        .sort(*keys, maintain_order=True, nulls_last=True)
        .with_columns(change.alias("_change"))
        .with_columns(
            pl.when(~first).then(pl.col("_change").shift(1)).alias("_lag"),
            paired.alias("_paired"),
        )
        .group_by(groups)
        .agg(
            pl.col("_paired").sum().cast(pl.Float64).alias("m"),
            a.sum().alias("sa"),
            b.sum().alias("sb"),
            (a * b).sum().alias("sab"),
            (a * a).sum().alias("saa"),
            (b * b).sum().alias("sbb"),
            price.abs().mean().alias("level"),
        )
    )
    m = pl.col("m")
    cov = (pl.col("sab") - pl.col("sa") * pl.col("sb") / m) / (m - 1.0)
    var_a = (pl.col("saa") - pl.col("sa") ** 2 / m) / (m - 1.0)
    var_b = (pl.col("sbb") - pl.col("sb") ** 2 / m) / (m - 1.0)
    scale = (var_a.clip(lower_bound=0.0) * var_b.clip(lower_bound=0.0)).sqrt()
    floor = 0.5 * ROLL_TOLERANCE * pl.col("level")
    negative = (cov < -ROLL_TOLERANCE * scale) & (-cov > floor * floor)
    spread = pl.when((m >= 2) & negative).then(2.0 * (-cov).sqrt()).alias(ROLL_SPREAD)
    return sums.select(*keys, pl.col("_bar").alias(TS), spread).sort(*keys, TS)
