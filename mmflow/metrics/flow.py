"""Signed order flow: buy, sell and unknown volume, net flow, VWAP, per symbol and per bar.

Signed volume s_t = D_t · V_t (metrics.md §b.2). ``buy_volume`` is the volume of trades signed +1
(buyer-initiated: "ask volume" in footprint vocabulary), ``sell_volume`` of trades signed −1, and
``unknown_volume`` of trades no method could sign, so ``buy + sell + unknown = volume`` always.
``net_flow`` = buy − sell = Σ s_t.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import polars as pl

from mmflow.durations import DAY, duration_nanoseconds
from mmflow.errors import SizeLimitError
from mmflow.schema import PRICE, SESSION, SIZE, TRADE_SIGN, TS, instrument_keys

__all__ = [
    "BAR_FLOW_COLUMNS",
    "bar_keys",
    "bvc_flow_bars",
    "estimated_bars",
    "event_grid",
    "flow_aggregates",
    "flow_bars",
    "flow_summary",
    "signed_volume",
    "split_by_bvc",
    "summary_from_bars",
]

BAR_FLOW_COLUMNS: tuple[str, ...] = (
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
    "trade_imbalance",
)
"""The flow columns :func:`flow_bars` gives per bar, in its order (after the keys and ``ts``)."""


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
    """Summarise signed trades per instrument (``venue, symbol``; ``symbol`` without venue).

    Parameters
    ----------
    trades
        Canonical trades with ``trade_sign`` (see :func:`mmflow.metrics.signing.sign_trades`).

    Returns
    -------
    pl.LazyFrame
        One row per instrument, sorted: ``[venue,] symbol, trades, volume, buy_volume,
        sell_volume, unknown_volume, vwap, net_flow, start, end``.

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
    keys = instrument_keys(trades)
    return (
        trades.group_by(keys)
        .agg(*flow_aggregates(), pl.col(TS).min().alias("start"), pl.col(TS).max().alias("end"))
        .sort(keys, nulls_last=True)
    )


def bar_keys(frame: pl.LazyFrame) -> list[str]:
    """Return the grouping keys of bars: the instrument, plus ``session`` when the frame has one.

    The instrument is ``venue, symbol`` (``symbol`` alone for frames without a venue column;
    see :func:`mmflow.schema.instrument_keys`).
    """
    keys = instrument_keys(frame)
    return [*keys, SESSION] if SESSION in frame.collect_schema().names() else keys


_FIRST = "_grid_first"
_LAST = "_grid_last"
_DAY = "_grid_day"


def event_grid(
    events: pl.LazyFrame,
    *,
    every: str,
    keys: Sequence[str] | None = None,
    fill: bool = False,
    max_bars: int | None = None,
) -> pl.LazyFrame:
    """Return the bar starts where there is data: every bar of each day that holds an event.

    Per group (``keys``: the instrument, and ``session`` when present), the grid runs from the
    bar of the first to the bar of the last event of each UTC day that holds events (of each
    session, with sessions); bars without events inside such a day are kept, days without
    events are not filled. With ``fill`` the grid is continuous from the group's first to its
    last bar. Bars start where polars ``group_by_dynamic`` starts them (``start_by="window"``,
    i.e. ``ts.dt.truncate(every)``).

    Before any bar is made, the number of bars is estimated from the per-day first and last
    events (a small aggregate) and checked against ``max_bars``.

    Parameters
    ----------
    events
        Rows with ``ts`` and the ``keys`` columns: trades, quotes, or both concatenated.
    every
        Bar length (polars duration).
    keys
        Grouping columns; default :func:`bar_keys` of ``events``.
    fill
        Make a continuous grid across days without events.
    max_bars
        The most bars allowed (``None``: no limit).

    Returns
    -------
    pl.LazyFrame
        ``keys..., ts``: one row per bar, sorted.

    Raises
    ------
    SizeLimitError
        At collection, when the estimate exceeds ``max_bars`` (parameter ``every``).

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> events = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, d, 0, m) for d, m in ((1, 0), (1, 2), (9, 5))],
    ...         "symbol": ["X"] * 3,
    ...     }
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> event_grid(events, every="1m").collect()["ts"].dt.strftime("%d %H:%M").to_list()
    ['01 00:00', '01 00:01', '01 00:02', '09 00:05']
    >>> event_grid(events, every="1m", fill=True).collect().height
    11526
    """
    group = list(keys) if keys is not None else bar_keys(events)
    step = duration_nanoseconds(every, what="bar length")
    ts = pl.col(TS)
    per_day = not fill and SESSION not in group
    span_keys = [*group, _DAY] if per_day else group
    source = events.with_columns(ts.dt.date().alias(_DAY)) if per_day else events
    spans = source.group_by(span_keys).agg(
        ts.min().dt.truncate(every).alias(_FIRST), ts.max().dt.truncate(every).alias(_LAST)
    )
    if max_bars is not None:
        spans = spans.map_batches(partial(_check_bars, every=every, step=step, limit=max_bars))
    grid = spans.select(
        *group, pl.datetime_ranges(_FIRST, _LAST, interval=every).alias(TS)
    ).explode(TS)
    if per_day and DAY % step != 0:  # a bar across midnight holds events of two days
        grid = grid.unique(subset=[*group, TS])
    return grid.sort(*group, TS, nulls_last=True)


def estimated_bars(spans: pl.DataFrame, *, step: int) -> int:
    """Return Σ ((last − first) / step + 1) over ``_grid_first``/``_grid_last`` spans."""
    if spans.height == 0:
        return 0
    lengths = (pl.col(_LAST) - pl.col(_FIRST)).dt.total_nanoseconds().cast(pl.Float64)
    total = spans.select((lengths / step + 1).sum()).item()
    return int(total or 0)


def _check_bars(spans: pl.DataFrame, *, every: str, step: int, limit: int) -> pl.DataFrame:
    """Raise :class:`SizeLimitError` when the spans would make more than ``limit`` bars."""
    estimate = estimated_bars(spans, step=step)
    if estimate > limit:
        parameter = "every"
        raise SizeLimitError(
            parameter,
            every,
            estimate,
            limit,
            "bars",
            "use a longer bar or narrow the time window",
        )
    return spans


def flow_bars(
    trades: pl.LazyFrame, *, every: str, grid: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Aggregate signed trades into time bars per instrument (and session).

    A bar's ``ts`` is its start; it holds trades with start ≤ t < start + ``every``, as polars
    ``group_by_dynamic`` labels them (product.md "Bars"). The bars are those of ``grid``
    (default :func:`event_grid` of the trades: every bar of each UTC day that holds trades);
    bars with no trades are present, with volume 0, no trades and null prices.
    ``trade_imbalance`` = Σ D·V / Σ V ∈ [−1, 1] (metrics.md §b.2; null when volume is 0).

    Parameters
    ----------
    trades
        Canonical trades with ``trade_sign``, sorted by ``ts``; with a ``session`` column, bars
        are made per session and never span two.
    every
        Bar length as a polars duration string (``1s``, ``1m``, ``5m``, ``1h``).
    grid
        The bars to make: ``keys…, ts`` (e.g. :func:`event_grid` of trades and quotes).
        Trades outside the grid's bars are left out.

    Returns
    -------
    pl.LazyFrame
        ``[venue,] symbol, [session,] ts, open, high, low, close, vwap, volume, trades, buy_volume,
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
    # Bars are labelled by ts.dt.truncate(every), as group_by_dynamic(start_by="window") labels
    # them, but a plain group_by costs nothing for the empty bars between sparse days (polars'
    # group_by_dynamic allocates every window of the span: a 1 ns bar over a year would not fit).
    bars = (
        trades.with_columns(pl.col(TS).dt.truncate(every))
        .group_by(*keys, TS)
        .agg(
            price.first().alias("open"),
            price.max().alias("high"),
            price.min().alias("low"),
            price.last().alias("close"),
            *flow_aggregates(),
        )
    )
    counts = ("volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow")
    if grid is None:
        grid = event_grid(trades, every=every, keys=keys)
    filled = grid.join(bars, on=[*keys, TS], how="left", nulls_equal=True).with_columns(
        pl.col(counts).fill_null(0.0), pl.col("trades").fill_null(0)
    )
    return filled.select(
        *keys,
        TS,
        *(name for name in BAR_FLOW_COLUMNS if name != "trade_imbalance"),
        pl.when(pl.col("volume") > 0)
        .then(pl.col("net_flow") / pl.col("volume"))
        .alias("trade_imbalance"),
    ).sort(*keys, TS, nulls_last=True)


def bvc_flow_bars(
    trades: pl.LazyFrame,
    *,
    every: str,
    distribution: Literal["normal", "student-t"] = "normal",
    dof: float | None = None,
    grid: pl.LazyFrame | None = None,
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
    grid
        The bars to make (see :func:`flow_bars`).
    distribution, dof
        The distribution of standardised price changes (see
        :func:`mmflow.metrics.bvc.bulk_volume_classification`).

    Returns
    -------
    pl.LazyFrame
        The columns of :func:`flow_bars`.
    """
    bars = flow_bars(
        trades.with_columns(pl.lit(0, pl.Int8).alias(TRADE_SIGN)), every=every, grid=grid
    )
    return split_by_bvc(bars, distribution=distribution, dof=dof)


def summary_from_bars(bars: pl.LazyFrame, trades: pl.LazyFrame) -> pl.LazyFrame:
    """Summarise per instrument from bars (for bar-level signing such as BVC).

    Volumes and counts are sums over bars; ``vwap``, ``start`` and ``end`` come from the trades.
    The columns are those of :func:`flow_summary`.
    """
    keys = instrument_keys(bars)
    totals = bars.group_by(keys).agg(
        pl.col("trades").sum(),
        pl.col("volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow").sum(),
    )
    size = pl.col(SIZE)
    spans = trades.group_by(keys).agg(
        pl.when(size.sum() > 0).then((pl.col(PRICE) * size).sum() / size.sum()).alias("vwap"),
        pl.col(TS).min().alias("start"),
        pl.col(TS).max().alias("end"),
    )
    return (
        totals.join(spans, on=keys, how="left", nulls_equal=True)
        .select(
            *keys,
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
        .sort(keys, nulls_last=True)
    )


def split_by_bvc(
    bars: pl.LazyFrame,
    *,
    distribution: Literal["normal", "student-t"] = "normal",
    dof: float | None = None,
) -> pl.LazyFrame:
    """Split each bar's volume into buy and sell by bulk volume classification.

    ``buy = V·F(ΔP/σ_ΔP)``, ``sell = V − buy`` per bar, with ΔP the close-to-close change and
    σ over the instrument's bars (Easley, López de Prado and O'Hara 2012; see
    :func:`mmflow.metrics.bvc.bulk_volume_classification`); fills ``buy_volume``,
    ``sell_volume``, ``unknown_volume``, ``net_flow`` and ``trade_imbalance``. Run it on the
    instrument's whole, gridded, time-ordered bar table.
    """
    from mmflow.metrics.bvc import bulk_volume_classification

    classified = bulk_volume_classification(
        bars,
        price="close",
        volume="volume",
        by=instrument_keys(bars),
        distribution=distribution,
        dof=dof,
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
