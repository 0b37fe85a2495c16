"""Signed order flow: buy, sell and unknown volume, net flow, VWAP, per symbol and per bar.

Signed volume s_t = D_t · V_t (metrics.md §b.2). ``buy_volume`` is the volume of trades signed +1
(buyer-initiated: "ask volume" in footprint vocabulary), ``sell_volume`` of trades signed −1, and
``unknown_volume`` of trades no method could sign, so ``buy + sell + unknown = volume`` always.
``net_flow`` = buy − sell = Σ s_t.
"""

from __future__ import annotations

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


def flow_bars(trades: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
    """Aggregate signed trades into time bars per symbol.

    A bar's ``ts`` is its start; it holds trades with start ≤ t < start + ``every``, as polars
    ``group_by_dynamic`` labels them (product.md "Bars").

    Parameters
    ----------
    trades
        Canonical trades with ``trade_sign``, sorted by ``ts``.
    every
        Bar length as a polars duration string (``1s``, ``1m``, ``5m``, ``1h``).

    Returns
    -------
    pl.LazyFrame
        ``symbol, ts, open, high, low, close, vwap, volume, trades, buy_volume, sell_volume,
        unknown_volume, net_flow``, sorted by symbol and ``ts``.
    """
    price = pl.col(PRICE)
    bars = trades.group_by_dynamic(
        TS, every=every, group_by=SYMBOL, label="left", closed="left", start_by="window"
    ).agg(
        price.first().alias("open"),
        price.max().alias("high"),
        price.min().alias("low"),
        price.last().alias("close"),
        *flow_aggregates(),
    )
    return bars.select(
        SYMBOL,
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
    ).sort(SYMBOL, TS)


def bvc_flow_bars(trades: pl.LazyFrame, *, every: str) -> pl.LazyFrame:
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

    Returns
    -------
    pl.LazyFrame
        The columns of :func:`flow_bars`.
    """
    from mmflow.metrics.bvc import bulk_volume_classification

    bars = flow_bars(trades.with_columns(pl.lit(0, pl.Int8).alias(TRADE_SIGN)), every=every)
    classified = bulk_volume_classification(bars, price="close", volume="volume", by=SYMBOL)
    buy = pl.col("bvc_buy_volume").fill_null(0.0)
    sell = pl.col("bvc_sell_volume").fill_null(0.0)
    return classified.with_columns(
        buy.alias("buy_volume"),
        sell.alias("sell_volume"),
        (pl.col("volume") - buy - sell).alias("unknown_volume"),
        (buy - sell).alias("net_flow"),
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
