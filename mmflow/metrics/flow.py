"""Signed order flow: buy, sell and unknown volume, net flow, VWAP, per symbol and per bar.

Signed volume s_t = D_t · V_t (metrics.md §b.2). ``buy_volume`` is the volume of trades signed +1
(buyer-initiated: "ask volume" in footprint vocabulary), ``sell_volume`` of trades signed −1, and
``unknown_volume`` of trades no method could sign, so ``buy + sell + unknown = volume`` always.
``net_flow`` = buy − sell = Σ s_t.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from mmflow.schema import PRICE, SIZE, SYMBOL, TRADE_SIGN, TS


def signed_volume(sign: str | pl.Expr = TRADE_SIGN, size: str | pl.Expr = SIZE) -> pl.Expr:
    """Return s_t = D_t · V_t, the signed volume of each trade (metrics.md §b.2).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"trade_sign": [1, -1, 0], "size": [2.0, 3.0, 4.0]})
    >>> df.select(signed_volume())["trade_sign"].to_list()
    [2.0, -3.0, 0.0]
    """
    d = pl.col(sign) if isinstance(sign, str) else sign
    v = pl.col(size) if isinstance(size, str) else size
    return d.cast(pl.Float64) * v


def flow_aggregates() -> list[pl.Expr]:
    """Return the aggregations shared by the per-symbol summary and the per-bar table.

    ``trades``, ``volume``, ``buy_volume``, ``sell_volume``, ``unknown_volume``, ``vwap``
    (Σ P·V / Σ V; null when volume is 0) and ``net_flow`` (Σ D·V).
    """
    sign = pl.col(TRADE_SIGN)
    size = pl.col(SIZE)
    volume = size.sum()
    return [
        pl.len().alias("trades"),
        volume.alias("volume"),
        size.filter(sign == 1).sum().alias("buy_volume"),
        size.filter(sign == -1).sum().alias("sell_volume"),
        size.filter(sign == 0).sum().alias("unknown_volume"),
        pl.when(volume > 0)
        .then((pl.col(PRICE) * size).sum() / volume)
        .otherwise(None)
        .alias("vwap"),
        signed_volume().sum().alias("net_flow"),
    ]


def flow_summary(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Summarise signed trades per symbol.

    Parameters
    ----------
    trades
        Canonical trades with ``trade_sign`` (see :func:`mmflow.metrics.classify.sign_trades`).

    Returns
    -------
    pl.LazyFrame
        One row per symbol, sorted by symbol: ``symbol, trades, volume, buy_volume, sell_volume,
        unknown_volume, vwap, net_flow, start, end``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
    ...         "symbol": ["X", "X"],
    ...         "price": [10.0, 20.0],
    ...         "size": [1.0, 3.0],
    ...         "trade_sign": [1, -1],
    ...     }
    ... )
    >>> flow_summary(trades).collect().row(0)[:8]
    ('X', 2, 4.0, 1.0, 3.0, 0.0, 17.5, -2.0)
    """
    return (
        trades.group_by(SYMBOL)
        .agg(*flow_aggregates(), pl.col(TS).min().alias("start"), pl.col(TS).max().alias("end"))
        .sort(SYMBOL)
    )


SESSION = "session"
"""Optional column: bars and cumulative series restart for each (symbol, session)."""


def bar_keys(frame: pl.LazyFrame) -> list[str]:
    """Return the grouping keys of bars: ``symbol``, plus ``session`` when the frame has one."""
    return [SYMBOL, SESSION] if SESSION in frame.collect_schema().names() else [SYMBOL]


def regular_grid(bars: pl.LazyFrame, *, every: str, keys: list[str]) -> pl.LazyFrame:
    """Return one row (``keys`` + ``ts``) per bar from each group's first to its last bar."""
    spans = bars.group_by(keys).agg(
        pl.col(TS).min().alias("_first"), pl.col(TS).max().alias("_last")
    )
    return spans.select(
        *keys, pl.datetime_ranges("_first", "_last", interval=every).alias(TS)
    ).explode(TS)


def flow_bars(trades: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """Aggregate signed trades into regular time bars per symbol (and session).

    A bar's ``ts`` is its start; it holds trades with start ≤ t < start + ``every``, as polars
    ``group_by_dynamic`` labels them (product.md "Bars"). Bars with no trades between a symbol's
    first and last bar are present, with volume 0, no trades and null prices, so the series is
    regular. ``trade_imbalance`` = Σ D·V / Σ V ∈ [−1, 1] (metrics.md §b.2; null when volume is 0).

    Parameters
    ----------
    trades
        Canonical trades with ``trade_sign``, sorted by ``ts``; with a ``session`` column, bars
        are made per session and never span two.
    every
        Bar length as a polars duration string (``1s``, ``1m``, ``5m``, ``1h``).

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,] ts, open, high, low, close, vwap, volume, trades, buy_volume,
        sell_volume, unknown_volume, net_flow, trade_imbalance``, sorted by symbol and ``ts``.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 0, 0, 5), datetime(2024, 1, 1, 0, 2, 5)],
    ...         "symbol": ["X", "X"],
    ...         "price": [10.0, 11.0],
    ...         "size": [1.0, 2.0],
    ...         "trade_sign": [1, -1],
    ...     }
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> flow_bars(trades, every="1m").collect()[["volume", "close", "net_flow"]].rows()
    [(1.0, 10.0, 1.0), (0.0, None, 0.0), (2.0, 11.0, -2.0)]
    """
    keys = bar_keys(trades)
    price = pl.col(PRICE)
    bars = trades.group_by_dynamic(
        TS, every=every, group_by=keys, label="left", closed="left", start_by="window"
    ).agg(
        price.first().alias("open"),
        price.max().alias("high"),
        price.min().alias("low"),
        price.last().alias("close"),
        *flow_aggregates(),
    )
    counts = ("volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow")
    filled = (
        regular_grid(bars, every=every, keys=keys)
        .join(bars, on=[*keys, TS], how="left")
        .with_columns(pl.col(counts).fill_null(0.0), pl.col("trades").fill_null(0))
    )
    return filled.select(
        *keys,
        TS,
        "open",
        "high",
        "low",
        "close",
        "vwap",
        "volume",
        "trades",
        "buy_volume",
        "sell_volume",
        "unknown_volume",
        "net_flow",
        pl.when(pl.col("volume") > 0)
        .then(pl.col("net_flow") / pl.col("volume"))
        .alias("trade_imbalance"),
    ).sort(*keys, TS)


def bvc_flow_bars(
    trades: pl.LazyFrame,
    *,
    every: str,
    distribution: Literal["normal", "student-t"] = "normal",
    dof: float | None = None,
) -> pl.LazyFrame:
    """Time bars whose buy/sell split comes from bulk volume classification.

    V^B_τ = V_τ · F(ΔP_τ / σ_ΔP), V^S_τ = V_τ − V^B_τ (Easley, López de Prado & O'Hara 2012;
    metrics.md §b.1); bars BVC cannot classify (a symbol's first bar, σ = 0) keep their volume
    as ``unknown_volume``. ``trade_sign`` is ignored.

    Parameters
    ----------
    trades
        Canonical trades with a ``trade_sign`` column (its values are not used), sorted by ``ts``.
    every
        Bar length.
    distribution, dof
        The distribution of standardised price changes (see
        :func:`mmflow.metrics.bvc.bulk_volume_classification`).

    Returns
    -------
    pl.LazyFrame
        The columns of :func:`flow_bars`.
    """
    from mmflow.metrics.bvc import bulk_volume_classification

    bars = flow_bars(trades.with_columns(pl.lit(0, pl.Int8).alias(TRADE_SIGN)), every=every)
    classified = bulk_volume_classification(
        bars, price="close", volume="volume", by=SYMBOL, distribution=distribution, dof=dof
    )
    buy = pl.col("bvc_buy_volume").fill_null(0.0)
    sell = pl.col("bvc_sell_volume").fill_null(0.0)
    return classified.with_columns(
        buy.alias("buy_volume"),
        sell.alias("sell_volume"),
        (pl.col("volume") - buy - sell).alias("unknown_volume"),
        (buy - sell).alias("net_flow"),
        pl.when(pl.col("volume") > 0)
        .then((buy - sell) / pl.col("volume"))
        .alias("trade_imbalance"),
    ).drop("bvc_buy_volume", "bvc_sell_volume")


def summary_from_bars(bars: pl.LazyFrame, trades: pl.LazyFrame) -> pl.LazyFrame:
    """Summarise per symbol from bars (for bar-level signing such as BVC).

    Volumes and counts are sums over bars; ``vwap``, ``start`` and ``end`` come from the trades.
    The columns are those of :func:`flow_summary`.
    """
    totals = bars.group_by(SYMBOL).agg(
        pl.col("trades").sum(),
        pl.col("volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow").sum(),
    )
    size = pl.col(SIZE)
    spans = trades.group_by(SYMBOL).agg(
        pl.when(size.sum() > 0).then((pl.col(PRICE) * size).sum() / size.sum()).alias("vwap"),
        pl.col(TS).min().alias("start"),
        pl.col(TS).max().alias("end"),
    )
    return (
        totals.join(spans, on=SYMBOL, how="left")
        .select(
            SYMBOL,
            pl.col("trades").cast(pl.UInt32),
            "volume",
            "buy_volume",
            "sell_volume",
            "unknown_volume",
            "vwap",
            "net_flow",
            "start",
            "end",
        )
        .sort(SYMBOL)
    )
