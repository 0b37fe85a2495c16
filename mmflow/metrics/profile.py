"""Volume profile, point of control, value area and footprint (metrics.md §b.10).

**Rows.** A price P falls in row k = ⌊P / b + ε · max(|P / b|, 1)⌋ of bin size b, and the row is
labelled with its lower edge k · b (rounded to 15 significant digits, so 3 · 0.1 prints as 0.3).
ε = 1e-9 (:data:`EDGE_TOLERANCE`) keeps a price that sits on an edge, such as 0.3 with b = 0.1
(0.3 / 0.1 = 2.9999999999999996 in floating point), in the row it starts instead of the row
below, while a price one tick below an edge stays below it as long as P / tick < 10⁹. mmflow
floors (py-market-profile takes the ceiling of the close, freqtrade rounds; metrics.md §b.10 and
§14 item 10), so a row holds the prices [k · b, (k + 1) · b), anchored at price 0. Without a bin
size, b is the tick of the group: the smallest gap between two distinct traded prices, gaps of at
most 1e-9 × the largest |price| counting as float noise (:data:`PRICE_NOISE`), rounded to 8
significant digits (so 60000.01 − 60000.00 = 0.010000000002037 becomes 0.01). A group with a
single distinct price then has no tick and one row, labelled with that price. Every row between
a group's lowest and highest traded row is present, with volume 0 where nothing traded, so rows
are contiguous.

**Vocabulary** (metrics.md §b.0; freqtrade, ATAS): "ask volume" is buyer-initiated volume
(``trade_sign`` = +1, it lifts the ask), "bid volume" is seller-initiated volume (−1), and
delta = ask volume − bid volume = buy − sell. Trades no method could sign count only in
``volume``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import polars as pl

from mmflow.errors import ParameterError
from mmflow.metrics._common import polars_duration, require_columns
from mmflow.metrics.flow import bar_keys
from mmflow.metrics.price_rows import (
    EDGE_TOLERANCE,
    LEVEL_DIGITS,
    PRICE_LEVEL,
    PRICE_NOISE,
    ROW,
    TICK_DIGITS,
    check_positive,
    level_table,
    with_rows,
)
from mmflow.schema import PRICE, SIZE, SYMBOL, TRADE_SIGN, TS, instrument_keys

__all__ = [
    "EDGE_TOLERANCE",
    "LEVEL_DIGITS",
    "PRICE_LEVEL",
    "PRICE_NOISE",
    "TARGET_TOLERANCE",
    "TICK_DIGITS",
    "ValueAreaMethod",
    "footprint",
    "value_area",
    "volume_profile",
]

ValueAreaMethod = Literal["two-row", "single-row"]
"""How the value area grows from the point of control: Dalton's pairs of rows, or single rows."""

TARGET_TOLERANCE: Final = 1e-12
"""The value area stops once its volume is ≥ share · total · (1 − this), so the order in which
floating-point volumes were summed cannot decide the last step."""


_ALL = "_all"
_I = "_index"
_P = "_poc_index"
_SIDE = "_side"
_STEP = "_step"
_KEY = "_key"
_RANK = "_side_rank"
_INCLUDED = "_included"
_TAKEN = "_taken"
_LOW = "_low"
_HIGH = "_high"
_TARGET = "_target"
_BID_BELOW = "_bid_below"
_ASK_ABOVE = "_ask_above"


def _keys(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(dict.fromkeys(by))


def volume_profile(
    trades: pl.LazyFrame,
    *,
    bin_size: float | None = None,
    by: str | Sequence[str] = (SYMBOL,),
    max_levels: int | None = None,
    trade_counts: str | None = None,
) -> pl.LazyFrame:
    """Return the volume at each price row, split into buy and sell volume, per group.

    Row k of bin size b holds the trades with k · b ≤ P < (k + 1) · b (module docstring: the
    floor, the edge tolerance and the inferred tick); ``price_level`` = k · b is its lower edge.
    ``volume`` = Σ V, ``buy_volume`` = Σ V over trades with D = +1 ("ask volume"),
    ``sell_volume`` over D = −1 ("bid volume"), ``delta`` = buy − sell; unsigned trades count
    only in ``volume``, so buy + sell ≤ volume. A volume profile ("volume at price") is the
    volume form of Steidlmayer's Market Profile (J. P. Steidlmayer & K. Koy, *Markets and Market
    Logic*, Porcupine Press, 1986; CBOT *Market Profile* handbook, 1991).

    Parameters
    ----------
    trades
        Signed canonical trades: ``price``, ``size``, ``trade_sign`` and the ``by`` columns.
        Trades with a null or non-finite price are left out.
    bin_size
        Row height b in price units (> 0); None uses the tick of each group (the smallest gap
        between distinct prices, computed per group).
    by
        Grouping columns, one profile per group (e.g. ``symbol``, ``session``, or a ``date``
        column the caller adds); an empty sequence makes one profile of the whole frame.
    max_levels
        The most rows allowed (``None``: no limit); checked from each group's price range
        before the rows are made.
    trade_counts
        A column holding how many trades each row stands for, when the rows are already
        aggregated (the chunked engine's level table: one row per bar, price and side);
        ``None``: every row is one trade.

    Returns
    -------
    pl.LazyFrame
        ``*by, price_level, volume, buy_volume, sell_volume, delta, trades``, one row per group
        and row, every row from the lowest to the highest traded one (zero volume between),
        sorted by ``by`` and ``price_level``. A group has (max − min) / b + 1 rows: choose b so
        that stays small.

    Raises
    ------
    ParameterError
        If ``bin_size`` is not a finite number > 0.
    SizeLimitError
        At collection, when the rows would exceed ``max_levels``.
    SchemaError
        If a needed column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> trades = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 4,
    ...         "price": [0.1, 0.3, 0.3, 0.35],
    ...         "size": [2.0, 1.0, 4.0, 1.0],
    ...         "trade_sign": [1, -1, 0, 1],
    ...     }
    ... )
    >>> volume_profile(trades, bin_size=0.1).collect()
    shape: (3, 7)
    ┌────────┬─────────────┬────────┬────────────┬─────────────┬───────┬────────┐
    │ symbol ┆ price_level ┆ volume ┆ buy_volume ┆ sell_volume ┆ delta ┆ trades │
    │ ---    ┆ ---         ┆ ---    ┆ ---        ┆ ---         ┆ ---   ┆ ---    │
    │ str    ┆ f64         ┆ f64    ┆ f64        ┆ f64         ┆ f64   ┆ u32    │
    ╞════════╪═════════════╪════════╪════════════╪═════════════╪═══════╪════════╡
    │ X      ┆ 0.1         ┆ 2.0    ┆ 2.0        ┆ 0.0         ┆ 2.0   ┆ 1      │
    │ X      ┆ 0.2         ┆ 0.0    ┆ 0.0        ┆ 0.0         ┆ 0.0   ┆ 0      │
    │ X      ┆ 0.3         ┆ 6.0    ┆ 1.0        ┆ 1.0         ┆ 0.0   ┆ 3      │
    └────────┴─────────────┴────────┴────────────┴─────────────┴───────┴────────┘
    """
    check_positive("bin_size", bin_size)
    keys = _keys(by)
    counted = [trade_counts] if trade_counts is not None else []
    require_columns(trades, [*keys, PRICE, SIZE, TRADE_SIGN, *counted], "trades")
    frame = trades if keys else trades.with_columns(pl.lit(0, pl.Int8).alias(_ALL))
    group = keys or [_ALL]
    binned = with_rows(frame, tick_keys=group, bin_size=bin_size)
    return (
        level_table(
            binned, group, max_levels=max_levels, bin_size=bin_size, trade_counts=trade_counts
        )
        .select(
            *keys,
            PRICE_LEVEL,
            "volume",
            "buy_volume",
            "sell_volume",
            (pl.col("buy_volume") - pl.col("sell_volume")).alias("delta"),
            "trades",
        )
        .sort(*keys, PRICE_LEVEL)
    )


def _value_area_steps(
    rows: pl.LazyFrame, pocs: pl.LazyFrame, keys: list[str], width: int
) -> pl.LazyFrame:
    """Return the walk's steps per group, in walk order, with the running volume.

    The walk is a greedy merge of two sequences, the row groups above the POC (A_0, A_1, …,
    each ``width`` rows, fewer at the edge) and below it (B_0, B_1, …): at each step take the
    head with the larger volume, the one above on a tie. Such a merge takes A_a before B_b iff
    min(A_0..A_a) ≥ min(B_0..B_b) (if the raw comparison and the prefix-minimum comparison
    disagreed at some step, the element that set the smaller prefix minimum would have had to
    beat a head no larger than itself earlier, which the rule forbids). So sorting the groups by
    their side's running minimum, descending (above first, then nearest first), gives the walk
    order without a loop: cost is a sort of the small profile table.
    """
    d = pl.col(_I) - pl.col(_P)
    side = pl.when(d > 0).then(1).when(d < 0).then(-1).otherwise(0).cast(pl.Int8)
    step = pl.when(d == 0).then(0).otherwise((d.abs() - 1) // width)
    groups = (
        rows.join(pocs.filter(pl.col(_P).is_not_null()), on=keys, how="inner", nulls_equal=True)
        .with_columns(side.alias(_SIDE), step.alias(_STEP))
        .group_by(*keys, _SIDE, _STEP)
        .agg(
            pl.col("volume").sum(),
            pl.col(PRICE_LEVEL).min().alias(_LOW),
            pl.col(PRICE_LEVEL).max().alias(_HIGH),
            pl.col(_TARGET).first(),
        )
    )
    running_min = pl.col("volume").cum_min().over([*keys, _SIDE], order_by=_STEP)
    key = pl.when(pl.col(_SIDE) == 0).then(pl.lit(-math.inf)).otherwise(-running_min)
    rank = pl.when(pl.col(_SIDE) == 0).then(0).when(pl.col(_SIDE) == 1).then(1).otherwise(2)
    order = [_KEY, _RANK, _STEP]
    ordered = groups.with_columns(key.alias(_KEY), rank.alias(_RANK)).with_columns(
        pl.col("volume").cum_sum().over(keys, order_by=order).alias(_INCLUDED)
    )
    before = pl.col(_INCLUDED).shift(1).over(keys, order_by=order)
    return ordered.with_columns((before.is_null() | (before < pl.col(_TARGET))).alias(_TAKEN))


def value_area(
    profile: pl.LazyFrame,
    *,
    share: float = 0.7,
    by: str | Sequence[str] = (SYMBOL,),
    method: ValueAreaMethod = "two-row",
) -> pl.LazyFrame:
    """Return the point of control and the value area of each group of a volume profile.

    **POC** = the row with the largest volume. Tie rule: among rows with equal maximum volume,
    the one closest (in rows) to the group's volume-weighted mean row Σ i·V_i / Σ V_i, then the
    lower one (py-market-profile takes the one closest to the middle of the profile, metrics.md
    §14 item 10; on the contiguous profile, distance in rows is price distance / b).

    **Value area** (Steidlmayer, CBOT): start with the POC row; compare the volume of the next
    two rows above with the next two rows below (fewer at the ends of the profile, none once a
    side is exhausted), add the larger pair, and stop as soon as the included volume is
    ≥ ``share`` × total (J. F. Dalton, E. T. Jones & R. B. Dalton, *Mind Over Markets*, Probus
    1990 / Wiley 2013, appendix 1; J. F. Dalton, R. B. Dalton & E. T. Jones, *Markets in
    Profile*, Wiley 2007). Tie rule: equal pairs add the pair **above** (as Investor/RT's
    "method A"). ``method="single-row"`` compares single rows (py-market-profile). Test
    (metrics.md §b.10): rows 100..106 with volumes 5, 10, 20, 40, 25, 15, 5 give [101, 105]
    two-row and [102, 104] single-row.

    What holds: the POC is inside [low, high]; the value-area volume is ≥ share × total (up to
    :data:`TARGET_TOLERANCE`); and it is minimal for the walk: without the rows added by the
    last step (the outermost pair, or row, at the top or at the bottom edge) it is below the
    target. It is not necessarily the narrowest range holding ``share`` of the volume.

    The walk is computed without a Python loop, as a sort of the (small) profile table: see
    :func:`_value_area_steps` for why sorting by running minima reproduces the greedy walk.

    Parameters
    ----------
    profile
        A contiguous volume profile as made by :func:`volume_profile` (``price_level``,
        ``volume`` and the ``by`` columns); rows are adjacent in ``price_level`` order.
    share
        Fraction of the total volume the value area must hold, in (0, 1].
    by
        Grouping columns, as given to :func:`volume_profile`.
    method
        ``two-row`` (Dalton) or ``single-row`` (py-market-profile).

    Returns
    -------
    pl.LazyFrame
        ``*by, poc, value_area_low, value_area_high, value_area_volume, total_volume``, one row
        per group, sorted by ``by``. A group without volume has null POC, value area and
        value-area volume, and total 0.

    Raises
    ------
    ParameterError
        If ``share`` is not in (0, 1] or ``method`` is unknown.
    SchemaError
        If a needed column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> profile = pl.LazyFrame(
    ...     {
    ...         "symbol": ["X"] * 7,
    ...         "price_level": [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0],
    ...         "volume": [5.0, 10.0, 20.0, 40.0, 25.0, 15.0, 5.0],
    ...     }
    ... )
    >>> value_area(profile).collect()
    shape: (1, 6)
    ┌────────┬───────┬────────────────┬─────────────────┬───────────────────┬──────────────┐
    │ symbol ┆ poc   ┆ value_area_low ┆ value_area_high ┆ value_area_volume ┆ total_volume │
    │ ---    ┆ ---   ┆ ---            ┆ ---             ┆ ---               ┆ ---          │
    │ str    ┆ f64   ┆ f64            ┆ f64             ┆ f64               ┆ f64          │
    ╞════════╪═══════╪════════════════╪═════════════════╪═══════════════════╪══════════════╡
    │ X      ┆ 103.0 ┆ 101.0          ┆ 105.0           ┆ 110.0             ┆ 120.0        │
    └────────┴───────┴────────────────┴─────────────────┴───────────────────┴──────────────┘
    >>> value_area(profile, method="single-row").collect().row(0)[1:4]
    (103.0, 102.0, 104.0)
    """
    ok = isinstance(share, int | float) and not isinstance(share, bool) and 0 < share <= 1
    if not ok:
        msg = f"value-area share must be a number in (0, 1], was {share!r}"
        raise ParameterError(msg)
    if method not in ("two-row", "single-row"):
        msg = f"unknown value-area method {method!r}; use 'two-row' or 'single-row'"
        raise ParameterError(msg)
    width = 2 if method == "two-row" else 1
    keys = _keys(by)
    require_columns(profile, [*keys, PRICE_LEVEL, "volume"], "profile")
    frame = profile if keys else profile.with_columns(pl.lit(0, pl.Int8).alias(_ALL))
    group = keys or [_ALL]

    volume = pl.col("volume").cast(pl.Float64).fill_null(0.0)
    rows = frame.select(
        *group,
        pl.col(PRICE_LEVEL).cast(pl.Float64),
        volume.alias("volume"),
    ).with_columns((pl.col(PRICE_LEVEL).rank("ordinal").over(group) - 1).cast(pl.Int64).alias(_I))

    # POC without sort_by inside the aggregation (polars 2.1 returns garbage for sort_by on a
    # filtered column in one-row groups): keep the maximal rows, then the nearest to the mean
    # row, then the lowest.
    v = pl.col("volume")
    index = pl.col(_I).cast(pl.Float64)
    total = v.sum().over(group)
    distance = (index - (index * v).sum().over(group) / total).abs()
    candidates = rows.with_columns(distance.alias("_distance")).filter(
        (total > 0) & (v == v.max().over(group))
    )
    nearest = (
        candidates.filter(pl.col("_distance") == pl.col("_distance").min().over(group))
        .group_by(group)
        .agg(pl.col(_I).min().alias(_P))
    )
    pocs = (
        rows.group_by(group)
        .agg(
            v.sum().alias("total_volume"),
            (float(share) * v.sum() * (1.0 - TARGET_TOLERANCE)).alias(_TARGET),
        )
        .join(nearest, on=group, how="left", nulls_equal=True)
    )
    steps = _value_area_steps(rows, pocs.select(*group, _P, _TARGET), group, width)
    area = (
        steps.filter(pl.col(_TAKEN))
        .group_by(group)
        .agg(
            pl.when(pl.col(_SIDE) == 0).then(pl.col(_LOW)).min().alias("poc"),
            pl.col(_LOW).min().alias("value_area_low"),
            pl.col(_HIGH).max().alias("value_area_high"),
            pl.col(_INCLUDED).max().alias("value_area_volume"),
        )
    )
    return (
        pocs.join(area, on=group, how="left", nulls_equal=True)
        .select(
            *keys,
            "poc",
            "value_area_low",
            "value_area_high",
            "value_area_volume",
            "total_volume",
        )
        .sort(*keys)
    )


def footprint(
    trades: pl.LazyFrame,
    *,
    every: str,
    bin_size: float | None = None,
    imbalance_ratio: float = 3.0,
    imbalance_volume: float = 0.0,
    stacked: int = 3,
    max_levels: int | None = None,
    trade_counts: str | None = None,
) -> pl.LazyFrame:
    """Return the footprint: bid and ask volume per time bar and price row, with imbalances.

    Per symbol (and ``session`` when the frame has one), bar and row: ``ask_volume`` = buyer-
    initiated volume (D = +1), ``bid_volume`` = seller-initiated volume (D = −1), ``delta`` =
    ask − bid, ``volume`` (all trades, signed or not) and ``trades``. A bar's ``ts`` is its start
    and holds trades with start ≤ t < start + ``every`` (as :func:`mmflow.metrics.flow.flow_bars`).
    Rows are those of :func:`volume_profile` with the symbol's tick (or ``bin_size``), and every
    row from the bar's lowest to its highest traded row is present. Bars without trades have no
    rows.

    **Diagonal imbalance** (ATAS footprint; freqtrade orderflow ``imbalance_ratio``,
    ``imbalance_volume``, ``stacked_imbalance_range``; metrics.md §b.10), with r =
    ``imbalance_ratio`` and v_min = ``imbalance_volume``:

    - ``buy_imbalance`` at row p: askVol(p) ≥ r · bidVol(p − 1 row), askVol(p) ≥ v_min and
      askVol(p) > 0;
    - ``sell_imbalance`` at row p: bidVol(p) ≥ r · askVol(p + 1 row), bidVol(p) ≥ v_min and
      bidVol(p) > 0.

    A zero denominator counts as an imbalance (the ratio is +∞) when the numerator is > 0 and
    ≥ v_min, as freqtrade's division gives; 0 / 0 never does. The diagonal partner must lie in
    the bar's traded range: the lowest row of a bar has no buy imbalance and the highest no sell
    imbalance (otherwise every bar's high and low would be flagged against empty rows).
    ``stacked_buy_imbalance`` / ``stacked_sell_imbalance`` are True on the rows of a run of
    ≥ ``stacked`` consecutive rows of the bar with that imbalance. freqtrade compares trade
    *counts* (metrics.md §14 item 5); mmflow compares volumes.

    Parameters
    ----------
    trades
        Signed canonical trades (``ts``, ``symbol``, ``price``, ``size``, ``trade_sign``) sorted
        by ``ts``; with a ``session`` column, bars are made per session.
    every
        Bar length as a polars duration string (``1s``, ``1m``, ``5m``, ``1h``).
    bin_size
        Row height in price units (> 0); None uses each symbol's tick.
    imbalance_ratio
        r > 0 (3 = 300 %).
    imbalance_volume
        v_min ≥ 0, the least volume on the dominant side of an imbalance.
    stacked
        Least number of consecutive imbalance rows that make a stacked imbalance (≥ 1).
    max_levels
        The most rows (bars × price rows) allowed (``None``: no limit), checked before any row
        is made.
    trade_counts
        A column holding how many trades each row stands for (pre-aggregated rows, as in
        :func:`volume_profile`); ``None``: every row is one trade.

    Returns
    -------
    pl.LazyFrame
        ``symbol, [session,] ts, price_level, volume, bid_volume, ask_volume, delta, trades,
        buy_imbalance, sell_imbalance, stacked_buy_imbalance, stacked_sell_imbalance``, sorted
        by symbol, ``ts`` and ``price_level``.

    Raises
    ------
    ParameterError
        If ``every`` is not a positive duration, ``bin_size`` or ``imbalance_ratio`` is not a
        finite number > 0, ``imbalance_volume`` is negative, or ``stacked`` is not an integer
        ≥ 1.
    SchemaError
        If a needed column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime

    Row 10.5 buys 6 against 1 sold one row below; row 11.0 buys 3 against nothing sold at 10.5
    (a zero denominator): two consecutive buy imbalances, a stack of 2.

    >>> trades = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 0, 0, s) for s in (1, 2, 3, 4)],
    ...         "symbol": ["X"] * 4,
    ...         "price": [10.0, 10.5, 10.5, 11.0],
    ...         "size": [1.0, 6.0, 2.0, 3.0],
    ...         "trade_sign": [-1, 1, 0, 1],
    ...     }
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> out = footprint(trades, every="1m", stacked=2).collect()
    >>> out.select(
    ...     "price_level", "volume", "bid_volume", "ask_volume", "buy_imbalance",
    ...     "stacked_buy_imbalance",
    ... )  # fmt: skip
    shape: (3, 6)
    ┌─────────────┬────────┬────────────┬────────────┬───────────────┬───────────────────────┐
    │ price_level ┆ volume ┆ bid_volume ┆ ask_volume ┆ buy_imbalance ┆ stacked_buy_imbalance │
    │ ---         ┆ ---    ┆ ---        ┆ ---        ┆ ---           ┆ ---                   │
    │ f64         ┆ f64    ┆ f64        ┆ f64        ┆ bool          ┆ bool                  │
    ╞═════════════╪════════╪════════════╪════════════╪═══════════════╪═══════════════════════╡
    │ 10.0        ┆ 1.0    ┆ 1.0        ┆ 0.0        ┆ false         ┆ false                 │
    │ 10.5        ┆ 8.0    ┆ 0.0        ┆ 6.0        ┆ true          ┆ true                  │
    │ 11.0        ┆ 3.0    ┆ 0.0        ┆ 3.0        ┆ true          ┆ true                  │
    └─────────────┴────────┴────────────┴────────────┴───────────────┴───────────────────────┘
    """
    every = polars_duration(every, "bar length")
    check_positive("bin_size", bin_size)
    check_positive("imbalance_ratio", imbalance_ratio)
    check_positive("imbalance_volume", imbalance_volume, allow_zero=True)
    if isinstance(stacked, bool) or not isinstance(stacked, int) or stacked < 1:
        msg = f"stacked must be a whole number ≥ 1, was {stacked!r}"
        raise ParameterError(msg)
    counted = [trade_counts] if trade_counts is not None else []
    require_columns(trades, [TS, SYMBOL, PRICE, SIZE, TRADE_SIGN, *counted], "trades")
    keys = bar_keys(trades)
    bars = trades.with_columns(pl.col(TS).dt.truncate(every))
    binned = with_rows(bars, tick_keys=instrument_keys(trades), bin_size=bin_size)
    cell = [*keys, TS]
    levels = level_table(
        binned, cell, max_levels=max_levels, bin_size=bin_size, trade_counts=trade_counts
    ).rename({"buy_volume": "ask_volume", "sell_volume": "bid_volume"})

    ask = pl.col("ask_volume")
    bid = pl.col("bid_volume")
    ratio = float(imbalance_ratio)
    v_min = float(imbalance_volume)
    with_partners = levels.with_columns(
        bid.shift(1).over(cell, order_by=ROW).alias(_BID_BELOW),
        ask.shift(-1).over(cell, order_by=ROW).alias(_ASK_ABOVE),
    )
    buy = (ask > 0) & (ask >= v_min) & (ask >= ratio * pl.col(_BID_BELOW))
    sell = (bid > 0) & (bid >= v_min) & (bid >= ratio * pl.col(_ASK_ABOVE))
    flagged = with_partners.with_columns(
        buy.fill_null(False).alias("buy_imbalance"),
        sell.fill_null(False).alias("sell_imbalance"),
    )

    flags = ("buy_imbalance", "sell_imbalance")
    return (
        flagged.with_columns(
            pl.col(flag).rle_id().over(cell, order_by=ROW).alias(f"_run_{flag}") for flag in flags
        )
        .with_columns(
            (pl.col(flag) & (pl.len().over([*cell, f"_run_{flag}"]) >= stacked)).alias(
                f"stacked_{flag}"
            )
            for flag in flags
        )
        .select(
            *keys,
            TS,
            PRICE_LEVEL,
            "volume",
            "bid_volume",
            "ask_volume",
            (ask - bid).alias("delta"),
            "trades",
            "buy_imbalance",
            "sell_imbalance",
            "stacked_buy_imbalance",
            "stacked_sell_imbalance",
        )
        .sort(*keys, TS, PRICE_LEVEL)
    )
