"""The engine's quote pass: one instrument's quote bars for one chunk, with carried state.

:func:`quote_partials` gives, for the bars of one chunk ``[start, end)`` of one instrument,
exactly the columns today's whole-input :func:`mmflow.metrics.ofi.quote_bars` gives for those
bars (``ofi, ofi_normalized, mid_close, spread, depth, quote_imbalance, quote_events,
crossed_quotes``), from the chunk's own quotes and a small carried state (:class:`QuoteCarry`):

* OFI (Cont, Kukanov & Stoikov 2014, *J. Financial Econometrics* 12(1):47-88; metrics.md §b.3)
  e_n = 1{Pᴮ_n ≥ Pᴮ_{n−1}} qᴮ_n − 1{Pᴮ_n ≤ Pᴮ_{n−1}} qᴮ_{n−1} − 1{Pᴬ_n ≤ Pᴬ_{n−1}} qᴬ_n
  + 1{Pᴬ_n ≥ Pᴬ_{n−1}} qᴬ_{n−1}, n − 1 the previous valid quote (carried in from before the
  chunk), summed per bar;
* time-weighted spread, depth and quote imbalance (metrics.md §12.2): each quote's state stands
  over ``[τ_i, min(τ_{i+1}, τ_i + max_quote_age))``; a bar's weight is the overlap of those
  segments with the bar, including the segment of the quote carried in from before the chunk;
* ``mid_close``: the mid of the last valid quote before the bar's end (carried across clears);
* counts of quote rows and crossed rows per bar.

The carried state is the last quote before the chunk and, when that one is not valid, the last
valid quote and the last non-crossed one (:class:`QuoteCarry`); prepended to the chunk's rows
as up to three rows they reproduce every state today's running series hold at ``start``.

How it is computed (one instrument, rows in time order): one polars plan over the rows gives
each row its OFI event, its standing state (a forward fill), its segment length
``min(τ_{i+1} − τ_i, max_quote_age)`` and its bar number ``floor((τ − origin) / every)``;
ONE ``group_by`` per bar number sums the events, the counts and Σ state × segment, and keeps
the bar's last row. The rest runs on that small per-bar table: a bar's time weights are its
own rows' segments (the last one cut at the bar end) plus the spill of the last segment
started before it (a forward fill over bars), so a quote standing across many bars costs
nothing. Per-bar sums add a bar's own products, never differences of running totals, so a
chunked run and a whole run agree to float rounding of the bar's own terms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import polars as pl

from mmflow.engine.quote_carry import (
    _BBO,
    _NS,
    QuoteCarry,
    _as_nanoseconds,
    _in_time_order,
    carry_after,
)
from mmflow.engine.state import TIMESTAMP, Chunk, EngineSettings
from mmflow.errors import ParameterError, SizeLimitError
from mmflow.metrics.book_state import Sides, book_flags, ofi_event, standing_states
from mmflow.metrics.ofi import (
    BAR_COLUMNS,
    CROSSED_QUOTES,
    DEPTH,
    OFI,
    OFI_NORMALIZED,
    QUOTE_EVENTS,
    QUOTE_IMBALANCE,
)
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    MID_CLOSE,
    SPREAD,
    SYMBOL,
    TS,
    VENUE,
)

__all__ = [
    "QUOTE_PARTIAL_COLUMNS",
    "QuoteCarry",
    "carry_after",
    "quote_partials",
]

QUOTE_PARTIAL_COLUMNS: Final = tuple(name for name in BAR_COLUMNS if name not in (SYMBOL, TS))
"""The per-bar columns of :func:`quote_partials` after the keys and ``ts`` (as quote_bars)."""


# Temporary column names (all start with "_q_").
_BAR: Final = "_q_bar"  # bar number: floor((ns - origin) / every)
_VALID: Final = "_q_valid"
_CROSSED: Final = "_q_crossed"
_EVENT: Final = "_q_event"
_GAP: Final = "_q_gap"  # segment length (ns) the row's state stands
_MID: Final = "_q_mid"
_WEIGHT: Final = "_q_weight"  # 1 while a valid quote stands
_IMBALANCE_WEIGHT: Final = "_q_imbalance_weight"  # 1 while a valid quote with depth > 0 stands
_SPREAD: Final = "_q_spread"
_DEPTH: Final = "_q_depth"
_IMBALANCE: Final = "_q_imbalance"
_STANDING: Final = (_WEIGHT, _IMBALANCE_WEIGHT, _SPREAD, _DEPTH, _IMBALANCE)
_INTEGER: Final = (_WEIGHT, _IMBALANCE_WEIGHT)
_SUM: Final = {name: f"{name}_sum" for name in _STANDING}  # Σ state × segment over the bar
_LAST: Final = {name: f"{name}_last" for name in _STANDING}  # the bar's last row's state
_CARRY: Final = {name: f"{name}_carry" for name in _STANDING}  # state carried into the bar
_LAST_END: Final = "_q_last_end"  # where the bar's last segment ends (ns)
_CARRY_END: Final = "_q_carry_end"
_ROWS: Final = "_q_rows"
_CROSSED_ROWS: Final = "_q_crossed_rows"
_OFI_SUM: Final = "_q_ofi_sum"
_GRID: Final = "_q_grid"
_START: Final = "_q_start"
_END: Final = "_q_end"


def _rows(quotes: pl.DataFrame, carry: QuoteCarry, chunk: Chunk) -> pl.DataFrame:
    """Return the chunk's quotes in ``[start, end)`` with the carried rows first.

    Columns: ``_q_ns`` (Int64) and the four sides (Float64, NaN as null).
    """
    quotes = _in_time_order(quotes)
    ns = _as_nanoseconds(quotes.get_column(TS))
    # Sorted by ts: the chunk's rows are one slice.
    first = int(ns.search_sorted(chunk.start, side="left"))
    last = int(ns.search_sorted(chunk.end, side="left"))
    own = pl.DataFrame(
        [
            ns.slice(first, last - first).alias(_NS),
            *(
                quotes.get_column(name)
                .slice(first, last - first)
                .cast(pl.Float64)
                .fill_nan(None)
                .alias(name)
                for name in _BBO
            ),
        ]
    )
    carried = carry.rows()
    if not carried:
        return own
    before = pl.DataFrame(
        {
            _NS: [quote.ts for quote in carried],
            BID_PRICE: [quote.bid_price for quote in carried],
            BID_SIZE: [quote.bid_size for quote in carried],
            ASK_PRICE: [quote.ask_price for quote in carried],
            ASK_SIZE: [quote.ask_size for quote in carried],
        },
        schema=own.schema,
    ).with_columns(pl.col(name).fill_nan(None) for name in _BBO)
    return pl.concat([before, own], how="vertical")


def _standing_rule(
    *, any_crossed: bool, valid: pl.Expr, is_empty: pl.Expr, first: pl.Expr
) -> tuple[pl.Expr, Sides, Callable[[pl.Expr, pl.Expr], pl.Expr]]:
    """Return the OFI seed flag, the previous standing quote sides and the standing-state rule.

    OFI exactly as ``mmflow.metrics.ofi._order_flow_imbalance`` (one instrument: row 0 is
    first). ``standing(value, none)`` is a row's standing state: ``value`` while a valid quote
    stands, ``none`` after an empty side (crossed rows keep the state).
    """
    if any_crossed:
        standing_flag = (
            pl.when(valid).then(pl.lit(value=True)).when(is_empty | first).then(pl.lit(value=False))
        )
        seeded = valid & ~first & standing_flag.forward_fill().shift(1).fill_null(value=False)
        bid, bid_size, ask, ask_size = (
            pl.when(valid).then(pl.col(name)).forward_fill().shift(1) for name in _BBO
        )

        def standing(value: pl.Expr, none: pl.Expr) -> pl.Expr:
            # Row 0 is never null, so the fill starts defined; crossed rows keep the state.
            return pl.when(valid).then(value).when(is_empty | first).then(none).forward_fill()

    else:
        # No crossed row (the common case): every row sets the state, so the previous valid
        # quote still standing is the previous row when that one is valid; no fills needed.
        seeded = valid & valid.shift(1).fill_null(value=False)
        bid, bid_size, ask, ask_size = (pl.col(name).shift(1) for name in _BBO)

        def standing(value: pl.Expr, none: pl.Expr) -> pl.Expr:
            return pl.when(valid).then(value).otherwise(none)

    return seeded, (bid, bid_size, ask, ask_size), standing


def _aggregate(states: pl.LazyFrame) -> pl.DataFrame:
    """Return ONE sorted group_by per bar number of the rows' standing states."""
    ns = pl.col(_NS)
    gap_column = pl.col(_GAP)
    product = {
        name: pl.col(name) * (gap_column if name in _INTEGER else gap_column.cast(pl.Float64))
        for name in _STANDING
    }
    return (
        states.group_by(_BAR)
        .agg(
            pl.len().alias(_ROWS),
            pl.col(_CROSSED).sum().alias(_CROSSED_ROWS),
            pl.col(_EVENT).sum().alias(_OFI_SUM),
            *(product[name].sum().alias(_SUM[name]) for name in _STANDING),
            *(pl.col(name).last().alias(_LAST[name]) for name in _STANDING),
            pl.col(_MID).last(),
            (ns + gap_column).last().alias(_LAST_END),
        )
        .collect()
    )


def _per_bar(
    rows: pl.DataFrame, *, origin: int, every: int, end: int, max_age: int | None
) -> pl.DataFrame:
    """One plan over the rows, then ONE group_by per bar number (see the module docstring)."""
    bid, bid_size, ask, ask_size = (pl.col(name) for name in _BBO)
    sides = (bid, bid_size, ask, ask_size)
    empty, crossed = book_flags(sides)
    flagged = rows.lazy().with_columns(
        (~empty & ~crossed).alias(_VALID),
        crossed.alias(_CROSSED),
    )
    valid, is_crossed = pl.col(_VALID), pl.col(_CROSSED)
    is_empty = ~valid & ~is_crossed
    first = pl.int_range(pl.len()) == 0
    any_crossed = bool(rows.select(crossed.any()).item())
    seeded, previous, standing = _standing_rule(
        any_crossed=any_crossed, valid=valid, is_empty=is_empty, first=first
    )
    event = ofi_event(sides, previous)

    ns = pl.col(_NS)
    # A state stands until the next row (any kind), at most max_age; the last row until the
    # chunk's end (bars end there at the latest), at most max_age.
    gap = (ns.shift(-1).fill_null(end) - ns).clip(lower_bound=0)
    if max_age is not None:
        gap = gap.clip(upper_bound=max_age)
    states = flagged.with_columns(
        pl.when(seeded).then(event).otherwise(0.0).alias(_EVENT),
        *(
            state.alias(name)
            for state, name in zip(standing_states(sides, standing), _STANDING, strict=True)
        ),
        pl.when(valid).then((bid + ask) / 2).forward_fill().alias(_MID),
        gap.alias(_GAP),
        # Rows are in time order, so bar numbers are sorted: the sorted group_by is ~10x
        # cheaper than a hashed one.
        ((ns - origin) // every).set_sorted().alias(_BAR),
    )
    return _aggregate(states)


def _bar_table(
    occupied: pl.DataFrame,
    bar_numbers: pl.Series,
    *,
    origin: int,
    every: int,
    quotes_after: bool,
) -> pl.DataFrame:
    """From the per-bar-number table and the grid's bar numbers, the grid bars' columns."""
    grid = pl.DataFrame({_BAR: bar_numbers, _GRID: pl.repeat(True, len(bar_numbers), eager=True)})
    table = (
        grid.join(occupied, on=_BAR, how="full", coalesce=True)
        .sort(_BAR)
        .with_columns(
            pl.col(_GRID).fill_null(value=False),
            pl.col(_ROWS, _CROSSED_ROWS).fill_null(0),
            (pl.col(_BAR) * every + origin).alias(_START),
        )
        .with_columns((pl.col(_START) + every).alias(_END))
    )
    start, end = pl.col(_START), pl.col(_END)
    # The state standing at the bar start: the last row before the bar (any earlier bar).
    carried = table.with_columns(
        *(pl.col(_LAST[name]).forward_fill().shift(1).alias(_CARRY[name]) for name in _STANDING),
        pl.col(_LAST_END).forward_fill().shift(1).alias(_CARRY_END),
        pl.col(_MID).forward_fill().alias(MID_CLOSE),
        (pl.col(_ROWS).cum_sum() > 0).alias("_q_seen"),
        # Carried-in rows lie before the chunk, so before every bar: rows from a bar on are
        # the chunk's own.
        (pl.col(_ROWS).cum_sum(reverse=True) > 0).alias("_q_ahead"),
    )
    # Weight of the carried-in segment inside the bar, and the part of the bar's own last
    # segment that spills past the bar end (carried on to later bars, not counted here).
    carry_span = (pl.min_horizontal(pl.col(_CARRY_END), end) - start).clip(lower_bound=0)
    spill = (pl.col(_LAST_END) - end).clip(lower_bound=0)

    def within(name: str) -> pl.Expr:
        duration = carry_span if name in _INTEGER else carry_span.cast(pl.Float64)
        spilled = spill if name in _INTEGER else spill.cast(pl.Float64)
        own = (pl.col(_SUM[name]) - pl.col(_LAST[name]) * spilled).fill_null(0)
        return own + (pl.col(_CARRY[name]) * duration).fill_null(0)

    steady = pl.col(_ROWS) == 0

    def mean(name: str, weight: pl.Expr) -> pl.Expr:
        # No quote in the bar: the carried state, exactly; else the time-weighted mean.
        value = pl.when(steady).then(pl.col(_CARRY[name])).otherwise(within(name) / weight)
        return pl.when(weight > 0).then(value).otherwise(None)

    weight, imbalance_weight = within(_WEIGHT), within(_IMBALANCE_WEIGHT)
    in_span = pl.col("_q_seen") & (pl.col("_q_ahead") | quotes_after)
    out = carried.filter(pl.col(_GRID)).select(
        _START,
        pl.when(in_span).then(pl.col(_OFI_SUM).fill_null(0.0)).otherwise(None).alias(OFI),
        MID_CLOSE,
        mean(_SPREAD, weight).alias(SPREAD),
        mean(_DEPTH, weight).alias(DEPTH),
        mean(_IMBALANCE, imbalance_weight).alias(QUOTE_IMBALANCE),
        pl.col(_ROWS).cast(pl.UInt32).alias(QUOTE_EVENTS),
        pl.col(_CROSSED_ROWS).cast(pl.UInt32).alias(CROSSED_QUOTES),
    )
    depth_column = pl.col(DEPTH)
    return out.with_columns(
        pl.when(depth_column > 0)
        .then(pl.col(OFI) / depth_column)
        .otherwise(None)
        .alias(OFI_NORMALIZED)
    )


def quote_partials(
    quotes: pl.DataFrame,
    chunk: Chunk,
    bar_starts: pl.Series | None,
    settings: EngineSettings,
    *,
    carry: QuoteCarry | None = None,
    quotes_after: bool = False,
) -> pl.DataFrame:
    """Return one instrument's quote bar columns for the bars of one chunk.

    Equal to :func:`mmflow.metrics.ofi.quote_bars` of all the instrument's quotes (with
    ``max_age = settings.max_quote_age_ns``) on those bars: counts identical, floats to float
    rounding (per-bar sums of the bar's own terms). OFI (Cont, Kukanov & Stoikov 2014,
    *J. Financial Econometrics* 12(1):47-88) per bar = Σ e_n over the bar's quotes, n − 1 the
    previous valid quote (carried in); spread, depth and quote imbalance are weighted by the
    time each valid quote stands in the bar, w_i = |[τ_i, min(τ_{i+1}, τ_i + max_age)) ∩ bar|
    (metrics.md §12.2), the quote carried in from before the chunk included.

    Parameters
    ----------
    quotes
        The instrument's quotes (eager) in time order (checked; unsorted input is sorted,
        stably): at least those in ``[start, end)``; rows outside are ignored. ``ts`` a
        datetime (any unit) or Int64 nanoseconds.
    chunk
        The chunk: ``start``, ``end`` (ns), the instrument, and ``quote_state`` (the last quote
        before ``start``), used when ``carry`` is not given.
    bar_starts
        The chunk's bar grid (bar starts in ``[start, end)``, sorted, datetimes or Int64 ns,
        spaced by multiples of the bar length). ``None``: every bar from the bar of the
        chunk's first quote to that of its last quote, per UTC day holding quotes (at most
        ``settings.options.max_bars``).
    settings
        Bar length ``every_ns``, ``max_quote_age_ns`` and the instrument ``keys``.
    carry
        The full carried state (:class:`QuoteCarry`); default
        ``QuoteCarry.from_state(chunk.quote_state)`` (exact when the last quote is valid).
    quotes_after
        Whether the instrument has quotes at or after ``end``: bars after the chunk's last
        quote then have ``ofi`` 0 (inside the instrument's quote span) instead of null.

    Returns
    -------
    pl.DataFrame
        One row per bar start, in order: the instrument keys (``settings.keys``), ``ts``
        (``Datetime("ns", "UTC")``), then :data:`QUOTE_PARTIAL_COLUMNS` (counts ``UInt32``,
        the rest ``Float64``).

    Raises
    ------
    ParameterError
        When the bar starts are not on one grid of the bar length or not inside the chunk.
    SizeLimitError
        Without ``bar_starts``, when the chunk's quotes span more than ``max_bars`` bars
        (checked before any bar is made).
    """
    every = settings.every_ns
    state = carry if carry is not None else QuoteCarry.from_state(chunk.quote_state)
    rows = _rows(quotes, state, chunk)
    if bar_starts is None:
        starts = _default_bars(rows.filter(pl.col(_NS) >= chunk.start).get_column(_NS), settings)
    else:
        starts = _as_nanoseconds(bar_starts)
    origin = int(starts[0]) if len(starts) else chunk.start - chunk.start % every
    offsets = starts - origin
    if len(starts) and (offsets % every != 0).any():
        msg = "bar starts must lie on one grid of the bar length"
        raise ParameterError(msg)
    if len(starts) and (starts.min() < chunk.start or starts.max() >= chunk.end):  # type: ignore[operator]
        msg = "bar starts must lie inside the chunk [start, end)"
        raise ParameterError(msg)
    if rows.height:
        occupied = _per_bar(
            rows, origin=origin, every=every, end=chunk.end, max_age=settings.max_quote_age_ns
        )
    else:
        occupied = _empty_occupied()
    bars = _bar_table(
        occupied,
        (offsets // every).alias(_BAR),
        origin=origin,
        every=every,
        quotes_after=quotes_after,
    )
    keys = [
        pl.lit(chunk.venue, pl.String).alias(VENUE)
        if key == VENUE
        else pl.lit(chunk.symbol, pl.String).alias(SYMBOL)
        for key in settings.keys
        if key in (VENUE, SYMBOL)
    ]
    return bars.select(
        *keys,
        pl.col(_START).cast(TIMESTAMP).alias(TS),
        *QUOTE_PARTIAL_COLUMNS,
    )


def _empty_occupied() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        _BAR: pl.Int64(),
        _ROWS: pl.UInt32(),
        _CROSSED_ROWS: pl.UInt32(),
        _OFI_SUM: pl.Float64(),
        **{_SUM[name]: pl.Int64() if name in _INTEGER else pl.Float64() for name in _STANDING},
        **{_LAST[name]: pl.Int64() if name in _INTEGER else pl.Float64() for name in _STANDING},
        _MID: pl.Float64(),
        _LAST_END: pl.Int64(),
    }
    return pl.DataFrame(schema=schema)


def _default_bars(ns: pl.Series, settings: EngineSettings) -> pl.Series:
    """Bar starts from the first to the last quote bar of each UTC day holding quotes.

    The number of bars is estimated from the per-day spans (a small table) and checked against
    ``settings.options.max_bars`` before any bar is made.
    """
    every = settings.every_ns
    if ns.len() == 0:
        return pl.Series(_NS, [], pl.Int64)
    day = 86_400 * 1_000_000_000
    spans = (
        pl.DataFrame({_NS: ns})
        .group_by((pl.col(_NS) // day).alias("_q_day"))
        .agg(
            (pl.col(_NS).min() // every).alias("_q_first"),
            (pl.col(_NS).max() // every).alias("_q_last"),
        )
    )
    limit = settings.options.max_bars
    estimate = int(spans.select((pl.col("_q_last") - pl.col("_q_first") + 1).sum()).item())
    if limit is not None and estimate > limit:
        parameter = "every"
        raise SizeLimitError(
            parameter,
            settings.options.every,
            estimate,
            limit,
            "bars",
            "use a longer bar or narrow the time window",
        )
    bars = (
        spans.select(pl.int_ranges("_q_first", pl.col("_q_last") + 1).alias(_BAR))
        .explode(_BAR)
        .unique()
        .sort(_BAR)
    )
    return (bars.get_column(_BAR) * every).alias(_NS)
