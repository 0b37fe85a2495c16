"""The per-bar market engine: every per-bar series of a run as one lazy plan.

:func:`market_bars` builds flow, OFI and quote columns, VPIN, costs, impact and inventory;
:func:`quote_checks` counts what the quotes could not be used for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mmflow.analysis.options import (
    BarOptions,
    Selection,
    Signing,
    check_durations,
    check_windows,
    parameters_of,
)
from mmflow.analysis.prepare import instrument_columns, prepare_market
from mmflow.metrics.flow import BAR_FLOW_COLUMNS, bar_keys, bvc_flow_bars, event_grid, flow_bars
from mmflow.metrics.impact import (
    FUTURE_MID_MISSING,
    amihud,
    cost_bars,
    kyle_lambda,
    roll_spread,
    trade_costs,
)
from mmflow.metrics.inventory import inventory_bars
from mmflow.metrics.ofi import BAR_COLUMNS, QUOTE_EVENTS, quote_bars
from mmflow.metrics.quotes import QUOTE_STALE, attach_quotes
from mmflow.metrics.signing import method_mix
from mmflow.metrics.vpin import vpin_at, vpin_buckets
from mmflow.schema import (
    MID_PRICE,
    PRICE,
    SIGN_METHOD,
    SIZE,
    SYMBOL,
    TRADE_SIGN,
    TS,
    instrument_keys,
)

__all__ = [
    "COST_COLUMNS",
    "FLOW_COLUMNS",
    "INVENTORY_COLUMNS",
    "QUOTE_BAR_COLUMNS",
    "Market",
    "bar_table",
    "market_bars",
    "quote_checks",
]

QUOTE_BAR_COLUMNS = tuple(name for name in BAR_COLUMNS if name not in (SYMBOL, TS, QUOTE_EVENTS))
"""The quote columns of the bar table: :func:`~mmflow.metrics.ofi.quote_bars`' but the count."""


COST_COLUMNS = ("effective_spread", "realized_spread", "price_impact")


@dataclass(frozen=True)
class Market:
    """Every per-bar series of one run, lazily, plus what it was computed from.

    Attributes
    ----------
    bars
        One row per instrument (and session) and bar: flow, OFI and quote columns (when quotes
        exist), VPIN, costs, impact and inventory.
    signed
        The signed trades the bars come from.
    mix
        How many trades each signing rule signed.
    has_quotes
        Whether quote-based columns could be computed.
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped.
    checks
        With quotes: per instrument, what the quotes could not be used for
        (:func:`quote_checks`; turn into warnings with :func:`quote_warnings`).
    engine
        The chunked engine's run (:class:`mmflow.engine.run.EngineRun`) when it computed the
        tables: then ``bars`` is computed and ``signed`` is the level table as pseudo-trades
        (:func:`mmflow.engine.finish.pseudo_trades`); ``None`` on the single-plan path.
    """

    bars: pl.LazyFrame
    signed: pl.LazyFrame
    mix: pl.LazyFrame
    has_quotes: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None
    engine: Any = None


def market_bars(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    chunked: bool = True,
) -> Market:
    """Build the full per-bar table: flow, CVD, OFI, quotes, VPIN, costs, impact, inventory.

    Every series is computed per instrument (``venue, symbol``; and session) on the bars of
    every day (or session) holding a trade or a quote of the instrument (:func:`event_grid`; a
    continuous grid with ``options.fill``), in one lazy plan. The number of bars, VPIN buckets
    and window lengths are checked against ``options.max_bars`` before anything is made.
    Quote-based columns (OFI, spread, depth, quote imbalance, effective and realized spread,
    liquidity state) are null without quotes.

    Parameters
    ----------
    trades, quotes
        Canonical trades and quotes (quotes may be ``None``).
    options
        Bar length and metric windows.
    signing
        How trades are signed.
    selection
        Symbols, time window, clock, session and cleaning.
    chunked
        Compute with the chunked engine (:mod:`mmflow.engine`) where it applies
        (:func:`mmflow.engine.market.engine_applies`); ``False``: the single lazy plan (the
        reference the engine is tested against).

    Returns
    -------
    Market
        The bar table and what it was built from.
    """
    options = options or BarOptions()
    selection = selection or Selection()
    signing = signing or Signing()
    prepared, prepared_quotes, dropped = prepare_market(trades, quotes, selection)
    parameters = parameters_of(
        selection,
        signing,
        bar=options.every,
        horizon=options.horizon,
        lookback=options.lookback,
        pressure_horizon=options.pressure_horizon,
        vpin_window=options.vpin_window,
        buckets_per_day=options.buckets_per_day,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    )
    check_durations(options, signing)
    check_windows(options)
    from mmflow.engine.market import engine_applies, engine_market

    if chunked and engine_applies(prepared, prepared_quotes, signing):
        # Input order: the engine checks each chunk's order instead of sorting everything.
        unordered, unordered_quotes, _ = prepare_market(trades, quotes, selection, ordered=False)
        computed = engine_market(
            unordered,
            unordered_quotes,
            options=options,
            signing=signing,
            parameters=parameters,
            dropped=dropped,
            memory_limit=options.memory_limit,
        )
        if computed is not None:
            return computed
    signed = _signed_trades(prepared, prepared_quotes, signing)
    grid = _event_grid(signed, prepared_quotes, options)
    if signing.method == "bvc":
        bars = bvc_flow_bars(
            signed,
            every=options.every,
            distribution=signing.bvc_distribution,
            dof=signing.bvc_dof,
            grid=grid,
        )
    else:
        bars = flow_bars(signed, every=options.every, grid=grid)
    bars, costs = _with_quote_columns(bars, signed, prepared_quotes, options, signing)
    bars = _with_trade_series(bars, signed, options)
    checks = quote_checks(signed, prepared_quotes, costs) if prepared_quotes is not None else None
    return Market(
        bars,
        signed,
        method_mix(signed),
        prepared_quotes is not None,
        parameters,
        dropped,
        checks,
    )


def _signed_trades(
    prepared: pl.LazyFrame, quotes: pl.LazyFrame | None, signing: Signing
) -> pl.LazyFrame:
    """Sign the prepared trades (with the prevailing mid when there are quotes), cached once.

    Keeps only what later steps use: the signed trades feed bars, costs, VPIN and Roll. (One
    cache only: polars 2.1 can panic on a cache nested inside another.)
    """
    age = signing.max_quote_age
    if signing.method == "bvc":
        signed = prepared.with_columns(
            pl.lit(0, pl.Int8).alias(TRADE_SIGN), pl.lit("bvc").alias(SIGN_METHOD)
        )
    else:
        signed = signing.sign(prepared, quotes)
    if quotes is not None and MID_PRICE not in signed.collect_schema().names():
        # trade costs need the prevailing mid even when the sign did not use quotes
        signed = attach_quotes(signed, quotes, match=signing.match, lag=signing.lag, max_age=age)
    keys = bar_keys(signed)
    needed = [*keys, TS, PRICE, SIZE, TRADE_SIGN, SIGN_METHOD, MID_PRICE, QUOTE_STALE]
    names = signed.collect_schema().names()
    return signed.select([n for n in needed if n in names]).cache()


def _event_grid(
    signed: pl.LazyFrame, quotes: pl.LazyFrame | None, options: BarOptions
) -> pl.LazyFrame:
    """Every bar of each day (or session) holding a trade or a quote of a traded instrument.

    So flow, OFI and the summaries account for every event (:func:`event_grid`).
    """
    keys = bar_keys(signed)
    instrument = instrument_keys(signed)
    events = signed.select(*keys, TS)
    if quotes is not None:
        traded = signed.select(instrument).unique()
        events = pl.concat(
            [
                events,
                quotes.join(traded, on=instrument, how="semi", nulls_equal=True).select(*keys, TS),
            ]
        )
    return event_grid(
        events, every=options.every, keys=keys, fill=options.fill, max_bars=options.max_bars
    )


def _with_quote_columns(
    bars: pl.LazyFrame,
    signed: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    options: BarOptions,
    signing: Signing,
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """Join the quote bars and the per-bar trade costs (null columns without quotes).

    Returns the bars and the per-trade costs (``None`` without quotes).
    """
    if quotes is None:
        return bars.with_columns(
            pl.lit(None, pl.UInt32 if name == "crossed_quotes" else pl.Float64).alias(name)
            for name in (*QUOTE_BAR_COLUMNS, *COST_COLUMNS)
        ), None
    every, age = options.every, signing.max_quote_age
    keys = bar_keys(signed)
    instrument = instrument_keys(signed)
    quoted = quote_bars(quotes, every=every, grid=bars.select(*instrument, TS), max_age=age).select(
        *instrument, TS, *QUOTE_BAR_COLUMNS
    )
    bars = bars.join(
        quoted, on=[*instrument, TS], how="left", maintain_order="left", nulls_equal=True
    )
    costs = trade_costs(signed, quotes, horizon=options.horizon, max_quote_age=age)
    per_bar = cost_bars(costs, every=every).select(*keys, TS, *COST_COLUMNS)
    bars = bars.join(per_bar, on=[*keys, TS], how="left", maintain_order="left", nulls_equal=True)
    return bars, costs


def _with_trade_series(
    bars: pl.LazyFrame, signed: pl.LazyFrame, options: BarOptions
) -> pl.LazyFrame:
    """Add VPIN, Kyle's lambda, Amihud, the Roll spread and the inventory columns."""
    every = options.every
    keys = bar_keys(signed)
    bars = bars.sort(*keys, TS)  # joins do not keep order; the series below need time order
    buckets = vpin_buckets(
        signed,
        buckets_per_day=options.buckets_per_day,
        window=options.vpin_window,
        max_buckets=options.max_bars,
    )
    bars = vpin_at(bars, buckets, every=every).sort(*keys, TS)
    bars = amihud(kyle_lambda(bars, window=options.lookback), window=options.lookback)
    rolls = roll_spread(signed, every=every).select(*keys, TS, "roll_spread")
    bars = bars.join(rolls, on=[*keys, TS], how="left", maintain_order="left", nulls_equal=True)
    return inventory_bars(
        bars,
        lookback=options.lookback,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    ).sort(*keys, TS, nulls_last=True)


def quote_checks(
    signed: pl.LazyFrame, quotes: pl.LazyFrame, costs: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Count, per instrument, what the quotes could not be used for (behind the warnings).

    Parameters
    ----------
    signed
        Trades after quote matching (with ``quote_stale`` when a maximum age applied).
    quotes
        The prepared quotes.
    costs
        :func:`mmflow.metrics.impact.trade_costs` of the trades, or ``None``.

    Returns
    -------
    pl.LazyFrame
        One row per instrument of the trades and per instrument that has only quotes:
        ``venue, symbol, trades, quotes, stale_quote`` (trades whose prevailing quote was too
        old), ``after_last_quote`` and ``stale_future_quote`` (trades whose cost horizon fell
        after the instrument's last quote, or on a quote too old).
    """
    instrument = instrument_keys(signed)
    names = signed.collect_schema().names()
    stale = pl.col(QUOTE_STALE).sum() if QUOTE_STALE in names else pl.lit(0, pl.UInt32)
    trades = signed.group_by(instrument).agg(
        pl.len().alias("trades"), stale.cast(pl.UInt32).alias("stale_quote")
    )
    quoted = quotes.group_by(instrument).agg(pl.len().alias("quotes"))
    out = trades.join(quoted, on=instrument, how="full", coalesce=True, nulls_equal=True)
    if costs is not None:
        missing = pl.col(FUTURE_MID_MISSING)
        later = costs.group_by(instrument).agg(
            (missing == "after_last_quote").sum().cast(pl.UInt32).alias("after_last_quote"),
            (missing == "stale").sum().cast(pl.UInt32).alias("stale_future_quote"),
        )
        out = out.join(later, on=instrument, how="left", nulls_equal=True)
    else:
        out = out.with_columns(
            pl.lit(0, pl.UInt32).alias("after_last_quote"),
            pl.lit(0, pl.UInt32).alias("stale_future_quote"),
        )
    counts = ["trades", "quotes", "stale_quote", "after_last_quote", "stale_future_quote"]
    return out.with_columns(pl.col(counts).fill_null(0)).select(*instrument, *counts)


FLOW_COLUMNS = (
    *BAR_FLOW_COLUMNS,
    "cvd",
    *QUOTE_BAR_COLUMNS,
    "vpin",
    "kyle_lambda",
    "effective_spread",
    "realized_spread",
    "price_impact",
    "amihud",
    "roll_spread",
)


INVENTORY_COLUMNS = (
    "mm_inventory",
    "inventory_change",
    "inventory_z",
    "spread",
    "depth",
    "liquidity_state",
)


def bar_table(market: Market, columns: Sequence[str]) -> pl.LazyFrame:
    """Select ``symbol, [session,] ts`` and ``columns`` from the market bars."""
    keys = bar_keys(market.bars)
    return instrument_columns(market.bars.select(*keys, TS, *columns))
