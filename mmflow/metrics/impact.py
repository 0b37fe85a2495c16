"""Trading costs, price impact and illiquidity: spreads per trade, Kyle's λ, Amihud, Roll.

Amihud and Roll live in :mod:`mmflow.metrics.liquidity` and are re-exported here.

* Effective, realized spread and price impact per trade, with the later midpoint found **by
  time** with an as-of join on quotes, never by shifting rows (metrics.md §b.7 and §14 item 1).
* Kyle's λ: the OLS slope of price changes on signed volume, over trailing bars (metrics.md
  §12.3) or over a symbol's trades (§b.6).
* Amihud's illiquidity: mean |return| per unit of dollar volume (§b.6).
* Roll's spread from the serial covariance of price changes (§b.7).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from mmflow.metrics._common import (
    as_expr,
    bar_window,
    polars_duration,
    require_columns,
    series_keys,
)
from mmflow.metrics.classify import quote_is_usable
from mmflow.metrics.liquidity import AMIHUD, ROLL_SPREAD, ROLL_TOLERANCE, amihud, roll_spread
from mmflow.schema import (
    ASK_PRICE,
    ASOF_VENUE,
    BID_PRICE,
    MID_PRICE,
    PRICE,
    SIZE,
    SYMBOL,
    TRADE_SIGN,
    TS,
    asof_keys,
    instrument_keys,
)

__all__ = [
    "AMIHUD",
    "COSTS",
    "COSTS_BPS",
    "EFFECTIVE_SPREAD",
    "FUTURE_MID_MISSING",
    "FUTURE_MID_PRICE",
    "KYLE_LAMBDA",
    "PRICE_IMPACT",
    "REALIZED_SPREAD",
    "ROLL_SPREAD",
    "ROLL_TOLERANCE",
    "VARIANCE_TOLERANCE",
    "amihud",
    "cost_bars",
    "future_mid_costs",
    "kyle_lambda",
    "roll_spread",
    "trade_costs",
]

EFFECTIVE_SPREAD: Final = "effective_spread"
REALIZED_SPREAD: Final = "realized_spread"
PRICE_IMPACT: Final = "price_impact"
FUTURE_MID_PRICE: Final = "future_mid_price"
KYLE_LAMBDA: Final = "kyle_lambda"
COSTS: Final = (EFFECTIVE_SPREAD, REALIZED_SPREAD, PRICE_IMPACT)
COSTS_BPS: Final = tuple(f"{name}_bps" for name in COSTS)

VARIANCE_TOLERANCE: Final = 1e-12
"""A window's flow variance n Σx² − (Σx)² at or below this fraction of n Σx² counts as zero:
the flows are constant up to the rounding of the rolling sums."""

_KEY = "_horizon_ts"
_FUTURE_TS = "_future_ts"
_LAST_QUOTE = "_last_quote_ts"
FUTURE_MID_MISSING: Final = "future_mid_missing"
"""Per trade: why M_{t+Δ} is null although a quote came before t + Δ (``after_last_quote``:
t + Δ is after the instrument's last quote; ``stale``: that quote is older than the maximum
quote age), else null."""


def _previous_price(price: pl.Expr) -> pl.Expr:
    """Return the last non-null price strictly before each row (apply ``.over`` per series)."""
    return price.shift(1).forward_fill()


def future_mid_costs(joined: pl.LazyFrame, *, after_last: pl.Expr, stale: pl.Expr) -> pl.LazyFrame:
    """Add ``future_mid_missing`` and the three trade costs to trades with their M_{t+Δ}.

    The step :func:`trade_costs` and the chunked engine (:mod:`mmflow.engine.signing`, one
    instrument per as-of join) share after matching ``future_mid_price``: a matched mid is
    dropped when t + Δ lies after the instrument's last quote (``after_last``) or the quote is
    too old (``stale``); then ES = 2D(P − M), RS = 2D(P − M_{t+Δ}), PI = 2D(M_{t+Δ} − M), null
    for D = 0, RS and PI also where M or M_{t+Δ} is missing (see :func:`trade_costs`).
    """
    missing = (
        pl.when(pl.col(FUTURE_MID_PRICE).is_null())
        .then(None)
        .when(after_last)
        .then(pl.lit("after_last_quote"))
        .when(stale)
        .then(pl.lit("stale"))
    )
    joined = joined.with_columns(missing.alias(FUTURE_MID_MISSING)).with_columns(
        pl.when(pl.col(FUTURE_MID_MISSING).is_null())
        .then(pl.col(FUTURE_MID_PRICE))
        .alias(FUTURE_MID_PRICE)
    )
    d = pl.col(TRADE_SIGN).cast(pl.Float64)
    p = pl.col(PRICE).cast(pl.Float64)
    m = pl.col(MID_PRICE).cast(pl.Float64)
    later_mid = pl.col(FUTURE_MID_PRICE)
    signed = (d == 1) | (d == -1)
    costs = {
        EFFECTIVE_SPREAD: 2 * d * (p - m),
        REALIZED_SPREAD: 2 * d * (p - later_mid),
        PRICE_IMPACT: 2 * d * (later_mid - m),
    }
    known = {EFFECTIVE_SPREAD: signed, REALIZED_SPREAD: signed & m.is_not_null()}
    return joined.with_columns(
        pl.when(known.get(name, signed)).then(value).alias(name) for name, value in costs.items()
    )


def trade_costs(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame,
    *,
    horizon: str = "5m",
    max_quote_age: str | None = None,
) -> pl.LazyFrame:
    """Add effective spread, realized spread and price impact to every signed trade.

    With D the trade sign, P the price, M the prevailing mid (``mid_price``) and M_{t+Δ} the
    mid of the latest usable quote (both sides present, bid < ask) at or before t + Δ:

        ES_t = 2 D (P − M),   RS_t = 2 D (P − M_{t+Δ}),   PI_t = 2 D (M_{t+Δ} − M) = ES − RS,

    and each ÷ M × 10⁴ in basis points (``*_bps``). Δ is a time horizon and M_{t+Δ} comes from
    an as-of join on quote times — not a shift by a number of rows as in the R package
    ``highfrequency`` (metrics.md §14 item 1), whose ``priceImpact`` is also half this one.
    Classic horizon: 5 minutes (SEC Rule 11Ac1-5 / 605); see Huang & Stoll (1996, *J. Financial
    Economics* 41(3):313-357) and Bessembinder (2003, *J. Financial Markets* 6(3):233-257).
    When no quote arrives between t and t + Δ, M_{t+Δ} is the quote prevailing then, unless
    t + Δ lies after the instrument's last quote (the quotes end before the horizon: nothing is
    known about the mid then) or that quote is older than ``max_quote_age`` at t + Δ; in both
    cases M_{t+Δ} is null (``future_mid_missing`` says why). Quotes match within the instrument
    (``venue, symbol``). Everything is null where D = 0 (unknown sign); ES is null where M is
    missing, RS and PI where M or M_{t+Δ} is (so RS is measured on the same trades as PI, and
    ES = RS + PI wherever all three exist); the ``*_bps`` columns are also null where M ≤ 0.

    Parameters
    ----------
    trades
        Trades with ``ts, symbol, price, trade_sign`` and ``mid_price`` (the prevailing mid, as
        :func:`mmflow.metrics.quotes.attach_quotes` adds it), sorted by ``ts``.
    quotes
        Canonical quotes sorted by ``ts``.
    horizon
        Δ as a polars duration (``5m``, ``1m``, ``500ms``, ``0s``).
    max_quote_age
        A quote older than this at t + Δ does not give M_{t+Δ} (``None``: no limit).

    Returns
    -------
    pl.LazyFrame
        ``trades`` in their order with ``future_mid_price`` (M_{t+Δ}), ``future_mid_missing``
        (``after_last_quote``, ``stale`` or null), ``effective_spread,
        realized_spread, price_impact, effective_spread_bps, realized_spread_bps,
        price_impact_bps`` (Float64).

    Raises
    ------
    ParameterError
        If ``horizon`` is not a polars duration.
    SchemaError
        If ``trades`` lacks a required column.

    Examples
    --------
    metrics.md §b.7: B 10.00, A 10.10, a buy at 10.08, M_{t+Δ} = 10.09 (the quotes go on after
    t + Δ; a horizon after the last quote would give null).

    >>> import polars as pl
    >>> from datetime import datetime
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 10)],
    ...         "symbol": ["X"],
    ...         "price": [10.08],
    ...         "trade_sign": [1],
    ...         "mid_price": [10.05],
    ...     }
    ... )
    >>> quotes = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 9, 59), datetime(2024, 1, 1, 10, 3)]
    ...         + [datetime(2024, 1, 1, 10, 6)],
    ...         "symbol": ["X", "X", "X"],
    ...         "bid_price": [10.00, 10.04, 10.00],
    ...         "ask_price": [10.10, 10.14, 10.20],
    ...     }
    ... )
    >>> trade_costs(trades, quotes).select(
    ...     pl.col("effective_spread", "realized_spread", "price_impact").round(10)
    ... ).collect()
    shape: (1, 3)
    ┌──────────────────┬─────────────────┬──────────────┐
    │ effective_spread ┆ realized_spread ┆ price_impact │
    │ ---              ┆ ---             ┆ ---          │
    │ f64              ┆ f64             ┆ f64          │
    ╞══════════════════╪═════════════════╪══════════════╡
    │ 0.06             ┆ -0.02           ┆ 0.08         │
    └──────────────────┴─────────────────┴──────────────┘
    """
    delta = polars_duration(horizon, "horizon", zero=True)
    names = require_columns(trades, (TS, SYMBOL, PRICE, TRADE_SIGN, MID_PRICE), "trades")
    age = (
        None
        if max_quote_age is None
        else polars_duration(max_quote_age, "max_quote_age", zero=True)
    )
    replaced = [c for c in (FUTURE_MID_PRICE, FUTURE_MID_MISSING, *COSTS, *COSTS_BPS) if c in names]
    if replaced:
        trades = trades.drop(replaced)
    key = pl.col(TS) if delta == "0s" else pl.col(TS).dt.offset_by(delta)
    left, right, by = asof_keys(trades.with_columns(key.alias(_KEY)), quotes)
    instrument = [c for c in by if c != ASOF_VENUE]
    ends = right.group_by(by).agg(pl.col(TS).max().alias(_LAST_QUOTE))
    later = right.filter(quote_is_usable()).select(
        pl.col(TS).alias(_KEY),
        pl.col(TS).alias(_FUTURE_TS),
        *by,
        ((pl.col(BID_PRICE) + pl.col(ASK_PRICE)) / 2).alias(FUTURE_MID_PRICE),
    )
    joined = left.join_asof(
        later,
        on=_KEY,
        by=by,
        strategy="backward",
        allow_exact_matches=True,
        check_sortedness=False,
    ).join(ends, on=by, how="left", maintain_order="left")
    after_last = pl.col(_KEY) > pl.col(_LAST_QUOTE)
    stale = (
        pl.lit(value=False)
        if age is None
        else pl.col(_FUTURE_TS) < pl.col(_KEY).dt.offset_by(f"-{age}")
    )
    m = pl.col(MID_PRICE).cast(pl.Float64)
    return (
        future_mid_costs(joined, after_last=after_last, stale=stale)
        .drop(_KEY, _FUTURE_TS, _LAST_QUOTE, *(c for c in by if c not in instrument))
        .with_columns(
            pl.when(m > 0).then(pl.col(name) / m * 1e4).alias(f"{name}_bps") for name in COSTS
        )
    )


def _weighted_parts(value: str, weight: pl.Expr) -> list[pl.Expr]:
    """Per trade, V_t c_t and V_t where the cost c_t is known (finite), else null (skipped)."""
    x = pl.col(value)
    known = x.is_finite().fill_null(value=False)
    return [
        pl.when(known).then(x * weight).alias(f"_{value}_weighted"),
        pl.when(known).then(weight).alias(f"_{value}_weight"),
    ]


def _weighted_mean(value: str) -> pl.Expr:
    """Σ V_t c_t / Σ V_t of a bar from :func:`_weighted_parts` (null when Σ V_t is 0)."""
    total = pl.col(f"_{value}_weight")
    return pl.when(total > 0).then(pl.col(f"_{value}_weighted") / total).alias(value)


def cost_bars(costs: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """Average the trading costs of :func:`trade_costs` per symbol and time bar, by size.

    Each column is Σ V_t c_t / Σ V_t over the bar's trades whose cost c_t is known (not null),
    so a trade without a later quote still counts in the effective spread (costs as defined in
    metrics.md §b.7, see :func:`trade_costs`). A bar's ``ts`` is its
    start and it holds trades with start ≤ t < start + ``every`` (product.md "Bars"). Only bars
    with at least one trade appear; a bar whose trades have no known cost (or zero size) has
    nulls.

    Parameters
    ----------
    costs
        The output of :func:`trade_costs` (with ``size``), sorted by ``ts``; with a
        ``session`` column, bars are made per session, as flow bars are.
    every
        Bar length (polars duration string).

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,] ts, effective_spread, realized_spread, price_impact,
        effective_spread_bps, realized_spread_bps, price_impact_bps``, sorted by symbol and
        ``ts``.

    Raises
    ------
    ParameterError
        If ``every`` is not a positive polars duration.
    SchemaError
        If a cost column or ``size`` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> costs = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 0, m, s) for m, s in ((0, 1), (0, 2), (1, 1))],
    ...         "symbol": ["X"] * 3,
    ...         "size": [1.0, 3.0, 2.0],
    ...         "effective_spread": [0.04, 0.08, 0.02],
    ...         "realized_spread": [0.0, None, 0.01],
    ...         "price_impact": [0.04, None, 0.01],
    ...     }
    ... ).with_columns(
    ...     (pl.col("effective_spread", "realized_spread", "price_impact") * 1000).name.suffix(
    ...         "_bps"
    ...     )
    ... )
    >>> cost_bars(costs, every="1m").select(
    ...     "ts", pl.col("effective_spread", "realized_spread", "price_impact").round(6)
    ... ).collect()
    shape: (2, 4)
    ┌─────────────────────┬──────────────────┬─────────────────┬──────────────┐
    │ ts                  ┆ effective_spread ┆ realized_spread ┆ price_impact │
    │ ---                 ┆ ---              ┆ ---             ┆ ---          │
    │ datetime[μs]        ┆ f64              ┆ f64             ┆ f64          │
    ╞═════════════════════╪══════════════════╪═════════════════╪══════════════╡
    │ 2024-01-01 00:00:00 ┆ 0.07             ┆ 0.0             ┆ 0.04         │
    │ 2024-01-01 00:01:00 ┆ 0.02             ┆ 0.01            ┆ 0.01         │
    └─────────────────────┴──────────────────┴─────────────────┴──────────────┘
    """
    step = polars_duration(every, "bar length", zero=False)
    names = require_columns(costs, (TS, SYMBOL, SIZE, *COSTS, *COSTS_BPS), "costs")
    keys = series_keys(names)
    size = pl.col(SIZE).cast(pl.Float64)
    weight = pl.when(size > 0).then(size).otherwise(0.0)
    columns = (*COSTS, *COSTS_BPS)
    # Plain sums of precomputed per-trade columns (no per-group filters): polars aggregates
    # these on its fast path.
    parts = [part for name in columns for part in _weighted_parts(name, weight)]
    return (
        costs.select(*keys, pl.col(TS).dt.truncate(step), *parts)  # bar start, as in flow_bars
        .group_by(*keys, TS)
        .agg(pl.col(part.meta.output_name()).sum() for part in parts)
        .select(*keys, TS, *(_weighted_mean(name) for name in columns))
        .sort(*keys, TS)
    )


def kyle_lambda(
    bars: pl.LazyFrame,
    *,
    window: int = 240,
    price: str | pl.Expr = "close",
    flow: str | pl.Expr = "net_flow",
) -> pl.LazyFrame:
    """Add ``kyle_lambda``: the trailing OLS slope of bar price changes on bar net flow.

    Per symbol, over the last ``window`` bars k (this one included), fit Δp_k = α + λ F_k + ε_k
    by ordinary least squares with an intercept (Kyle 1985, *Econometrica* 53(6):1315-1335;
    López de Prado 2018, *Advances in Financial Machine Learning*, Wiley, p. 286; metrics.md
    §12.3), where F_k is the bar's signed volume ``flow`` and Δp_k = p_k − p_j with j the
    latest earlier bar of the same symbol (and session) that has a price. Bars without a price
    (no trades), the first priced bar of a symbol or session, and bars with a null or
    non-finite Δp or F are *unusable*: they contribute nothing to the window's sums and are not
    counted. With n usable bars in the window and the sums Σx, Σy, Σxy, Σx² over them
    (rolling sums of the values with unusable bars set to 0),

        λ̂ = (n Σxy − Σx Σy) / (n Σx² − (Σx)²).

    Null when n < 3 or the flows in the window have no variance (n Σx² − (Σx)² ≤ 10⁻¹² n Σx²).
    The first bars of a symbol get an estimate from the bars so far (from 3 usable bars on).

    Parameters
    ----------
    bars
        Bars with ``symbol``, the price and the flow column, in time order within each symbol
        (nothing is sorted here), such as :func:`mmflow.metrics.flow.flow_bars` returns.
    window
        Number of trailing bars L (empty bars included).
    price
        Bar price column or expression (``close``, or a mid).
    flow
        Bar signed-volume column or expression.

    Returns
    -------
    pl.LazyFrame
        ``bars`` with ``kyle_lambda`` (Float64, price units per unit of volume).

    Raises
    ------
    ParameterError
        If ``window`` is not a whole number ≥ 1.
    SchemaError
        If ``symbol`` or a named price or flow column is missing.

    Examples
    --------
    Δp = 0.5 + 0.01 F exactly, with an empty bar in the middle that is skipped.

    >>> import polars as pl
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 5,
    ...         "close": [100.0, 101.5, None, 103.0, 100.5],
    ...         "net_flow": [20.0, 100.0, 0.0, 100.0, -300.0],
    ...     }
    ... )
    >>> kyle_lambda(bars, window=4).collect()["kyle_lambda"].round(12).to_list()
    [None, None, None, None, 0.01]
    """
    length = bar_window(window)
    named = tuple(c for c in (price, flow) if isinstance(c, str))
    names = require_columns(bars, (SYMBOL, *named), "bars")
    keys, instrument = series_keys(names), instrument_keys(names)
    p = as_expr(price).cast(pl.Float64)
    y = (p - _previous_price(p)).over(keys)
    x = as_expr(flow).cast(pl.Float64)
    usable = (y.is_finite() & x.is_finite()).fill_null(value=False)

    def rolling(value: pl.Expr) -> pl.Expr:
        kept = pl.when(usable).then(value).otherwise(0.0)
        return kept.rolling_sum(window_size=length, min_samples=1).over(instrument)

    n = rolling(pl.lit(1.0))
    sx, sy, sxy, sxx = rolling(x), rolling(y), rolling(x * y), rolling(x * x)
    variance = n * sxx - sx * sx
    slope = (n * sxy - sx * sy) / variance
    enough = (n >= 3) & (variance > VARIANCE_TOLERANCE * n * sxx)
    return bars.with_columns(pl.when(enough).then(slope).alias(KYLE_LAMBDA))
