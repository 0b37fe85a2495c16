"""Order-flow imbalance (OFI) from best bid/ask changes, and quote metrics per time bar.

For each quote event n of a symbol, relative to the previous valid quote of that symbol
(Cont, Kukanov & Stoikov 2014, "The price impact of order book events", *J. Financial
Econometrics* 12(1):47-88; metrics.md §b.3):

    e_n = 1{Pᴮ_n ≥ Pᴮ_{n−1}} qᴮ_n − 1{Pᴮ_n ≤ Pᴮ_{n−1}} qᴮ_{n−1}
          − 1{Pᴬ_n ≤ Pᴬ_{n−1}} qᴬ_n + 1{Pᴬ_n ≥ Pᴬ_{n−1}} qᴬ_{n−1},

and the OFI of a bar is Σ e_n over the events with start ≤ τ_n < start + bar (mmflow's bars are
left-closed, the same interval as its trade bars; product.md "Bars").

Book states, per symbol
    * **valid**: both sides present and bid ≤ ask (a locked book, bid = ask, is valid);
    * **empty** (a book clear or snapshot boundary): a side's price or size is null (or NaN). It
      contributes e = 0 and resets the state, so the next valid quote only seeds;
    * **crossed** (bid > ask): skipped. e = 0 and the row neither updates nor resets the state;
      for the bar metrics too it is as if the row did not exist (the previous valid quote keeps
      standing), except that it is counted in ``quote_events`` and ``crossed_quotes``.

The time-weighted bar metrics of metrics.md §12.2 weight each valid quote by how long it stood
inside the bar: from its ``ts`` (or the bar start, for the quote prevailing before the bar) to
the next valid or empty quote of the symbol (or the bar end). Periods after an empty quote are
"no valid quote" periods and carry no weight; after a symbol's last quote, its last state is
carried forward.

Bars are computed from running sums per symbol (cumulative OFI and counts, and the time integrals
of the standing spread, depth and imbalance) looked up with one as-of join at each bar's start and
end; a quote standing across many bars costs nothing extra. The quotes are grouped by instrument
once (a stable sort), and every per-instrument series is a plain fill, shift or cumulative sum
guarded at the instrument's first row, not a per-instrument window. A bar's OFI is therefore a
difference of running sums: exact for integer sizes, otherwise within the float rounding of the
running total (the running sums of a frame's later instruments are re-based on their first row,
so they carry the rounding of the earlier instruments' total as well).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from mmflow.durations import duration_nanoseconds
from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics._common import polars_duration
from mmflow.metrics.book_state import Sides, book_flags, ofi_event, standing_states
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    ASOF_VENUE,
    BID_PRICE,
    BID_SIZE,
    MID_CLOSE,
    SPREAD,
    SYMBOL,
    TS,
    VENUE,
    instrument_keys,
)

__all__ = [
    "BAR_COLUMNS",
    "CROSSED",
    "CROSSED_QUOTES",
    "DEPTH",
    "OFI",
    "OFI_EVENT",
    "OFI_NORMALIZED",
    "QUOTE_EVENTS",
    "QUOTE_IMBALANCE",
    "VALID_QUOTE",
    "order_flow_imbalance",
    "quote_bars",
]

OFI_EVENT: Final = "ofi_event"
"""Per quote: the Cont-Kukanov-Stoikov event contribution e_n (0 for seeds, clears, crossed)."""
VALID_QUOTE: Final = "valid_quote"
"""Per quote: both sides present and bid ≤ ask."""
CROSSED: Final = "crossed"
"""Per quote: both sides present and bid > ask (skipped)."""

OFI: Final = "ofi"
OFI_NORMALIZED: Final = "ofi_normalized"
DEPTH: Final = "depth"
QUOTE_IMBALANCE: Final = "quote_imbalance"
QUOTE_EVENTS: Final = "quote_events"
CROSSED_QUOTES: Final = "crossed_quotes"

BAR_COLUMNS: Final = (
    SYMBOL,
    TS,
    OFI,
    OFI_NORMALIZED,
    MID_CLOSE,
    SPREAD,
    DEPTH,
    QUOTE_IMBALANCE,
    QUOTE_EVENTS,
    CROSSED_QUOTES,
)
"""The columns of :func:`quote_bars`, in order."""

_BBO: Final = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)

# Temporary column names (all start with "_ofi_" so they cannot clash with user columns).
_FIRST: Final = "_ofi_first"  # the first row of an instrument (rows grouped by instrument)
_CLEAN: Final = {name: f"_ofi_clean_{name}" for name in _BBO}
_WEIGHT: Final = "_ofi_weight"  # 1 while a valid quote stands, else 0
_IMBALANCE_WEIGHT: Final = "_ofi_imbalance_weight"  # 1 while a valid quote with depth > 0 stands
_SPREAD: Final = "_ofi_spread"
_DEPTH: Final = "_ofi_depth"
_IMBALANCE: Final = "_ofi_imbalance"
_STANDING: Final = (_WEIGHT, _IMBALANCE_WEIGHT, _SPREAD, _DEPTH, _IMBALANCE)
_INTEGRAL: Final = {name: f"{name}_integral" for name in _STANDING}
_GAP: Final = "_ofi_gap_ns"
_CUMULATIVE_OFI: Final = "_ofi_cumulative"
_EVENTS: Final = "_ofi_events"
_CROSSED: Final = "_ofi_crossed"
_MID: Final = "_ofi_mid"
_LAST: Final = "_ofi_is_last"
_KEEP: Final = "_ofi_keep"
_AT: Final = "_ofi_at"
_ROW: Final = "_ofi_row"
_KEY_SYMBOL: Final = "_ofi_symbol"
_START: Final = "_ofi_start"
_END: Final = "_ofi_end"
_IS_END: Final = "_ofi_is_end"
_BOUND: Final = "_ofi_bound"


def _clean_sides() -> Sides:
    """Return the four sides as cleaned by :func:`_order_flow_imbalance` (Float64, NaN as null)."""
    bid, bid_size, ask, ask_size = (pl.col(_CLEAN[name]) for name in _BBO)
    return bid, bid_size, ask, ask_size


def _require_quotes(quotes: pl.LazyFrame) -> pl.Schema:
    schema = quotes.collect_schema()
    missing = [name for name in (TS, SYMBOL, *_BBO) if name not in schema]
    if missing:
        msg = (
            f"quotes are missing column(s) {', '.join(missing)}; "
            f"found {', '.join(schema.names()) or 'no columns'}"
        )
        raise SchemaError(msg)
    return schema


def order_flow_imbalance(quotes: pl.LazyFrame) -> pl.LazyFrame:
    """Add the order-flow imbalance contribution ``ofi_event`` of every quote, per symbol.

    e_n = 1{Pᴮ_n ≥ Pᴮ_{n−1}} qᴮ_n − 1{Pᴮ_n ≤ Pᴮ_{n−1}} qᴮ_{n−1}
    − 1{Pᴬ_n ≤ Pᴬ_{n−1}} qᴬ_n + 1{Pᴬ_n ≥ Pᴬ_{n−1}} qᴬ_{n−1}
    (Cont, Kukanov & Stoikov 2014, *J. Financial Econometrics* 12(1):47-88), where n − 1 is the
    previous **valid** quote of the same symbol. The first valid quote of a symbol, and the first
    after a book clear, only seed the state (e = 0). A quote with an empty side (null or NaN price
    or size) is a book clear: e = 0 and the state resets. A crossed quote (bid > ask) is skipped:
    e = 0 and the state is kept. A quote that changes nothing gives e = 0.

    Parameters
    ----------
    quotes
        Canonical quotes (``ts, symbol, bid_price, bid_size, ask_price, ask_size``), in time
        order within each symbol; several symbols may be interleaved.

    Returns
    -------
    pl.LazyFrame
        ``quotes`` in the same row order with ``valid_quote`` (Boolean: both sides present and
        bid ≤ ask), ``crossed`` (Boolean: both sides present and bid > ask) and ``ofi_event``
        (Float64, never null).

    Raises
    ------
    SchemaError
        When a quote column is missing.

    Examples
    --------
    The test vector of metrics.md §b.3 (each event changes one side):

    >>> import polars as pl
    >>> quotes = pl.LazyFrame(
    ...     {
    ...         "ts": list(range(7)),
    ...         "symbol": ["X"] * 7,
    ...         "bid_price": [100.00, 100.00, 100.01, 100.01, 100.00, 100.00, 100.00],
    ...         "bid_size": [10.0, 15.0, 3.0, 3.0, 20.0, 20.0, 20.0],
    ...         "ask_price": [100.02, 100.02, 100.02, 100.02, 100.02, 100.01, 100.03],
    ...         "ask_size": [8.0, 8.0, 8.0, 5.0, 5.0, 4.0, 7.0],
    ...     }
    ... )
    >>> order_flow_imbalance(quotes).collect()["ofi_event"].to_list()
    [0.0, 5.0, 3.0, 3.0, -3.0, -4.0, 4.0]
    """
    keys = instrument_keys(_require_quotes(quotes).names())
    return (
        _order_flow_imbalance(_by_instrument(quotes.with_row_index(_ROW), keys))
        .sort(_ROW)
        .drop(_ROW, _FIRST, *_CLEAN.values())
    )


def _by_instrument(quotes: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """Return ``quotes`` grouped by instrument, each instrument's rows in their input order.

    A stable sort on the instrument keys only: rows of one instrument keep their (time) order,
    so every per-instrument series below is a plain shift or fill guarded by :func:`_first`.
    """
    return quotes.sort(*keys, maintain_order=True, nulls_last=True)


def _first(keys: Sequence[str]) -> pl.Expr:
    """Return True on the first row of each instrument of a frame grouped by instrument."""
    changed = pl.any_horizontal(pl.col(key).ne_missing(pl.col(key).shift(1)) for key in keys)
    return changed | (pl.int_range(pl.len()) == 0)


def _order_flow_imbalance(quotes: pl.LazyFrame) -> pl.LazyFrame:
    """Do :func:`order_flow_imbalance` on quotes grouped by instrument (:func:`_by_instrument`).

    Adds ``_ofi_first`` (the instrument's first row) and keeps the cleaned sides in ``_CLEAN``.
    Instead of per-instrument windows (``.over``), a state is carried with forward fills that
    cannot cross an instrument: each instrument's first row resets it.
    """
    keys = instrument_keys(_require_quotes(quotes).names())
    cleaned = quotes.with_columns(
        *(pl.col(name).cast(pl.Float64).fill_nan(None).alias(_CLEAN[name]) for name in _BBO),
        _first(keys).alias(_FIRST),
    )
    sides = _clean_sides()
    empty, crossed = book_flags(sides)
    flagged = cleaned.with_columns((~empty & ~crossed).alias(VALID_QUOTE), crossed.alias(CROSSED))
    valid, first = pl.col(VALID_QUOTE), pl.col(_FIRST)
    empty = ~valid & ~pl.col(CROSSED)
    # A valid quote stands since the last clear (or the instrument's start): the previous valid
    # quote of row i is the last valid row before i, provided one lies in i's segment.
    standing = pl.when(valid).then(pl.lit(value=True)).when(empty | first).then(pl.lit(value=False))
    seeded = valid & ~first & standing.forward_fill().shift(1).fill_null(value=False)
    previous_bid, previous_bid_size, previous_ask, previous_ask_size = (
        pl.when(valid).then(pl.col(_CLEAN[name])).forward_fill().shift(1) for name in _BBO
    )
    previous = (previous_bid, previous_bid_size, previous_ask, previous_ask_size)
    event = ofi_event(sides, previous)
    return flagged.with_columns(pl.when(seeded).then(event).otherwise(0.0).alias(OFI_EVENT))


def _timeline(quotes: pl.LazyFrame, max_age: int | None = None) -> pl.LazyFrame:
    """Per instrument, the book state after each distinct ``ts`` and its running integrals.

    One row per (instrument, ts) (the last quote at that instant), grouped by instrument and in
    time order within it, with: the standing weight and values (valid flag, spread, depth,
    imbalance; crossed rows keep the previous state, empty rows set everything to 0); their
    integrals over time from the instrument's first quote up to this ``ts`` (exclusive of this
    row's own interval); cumulative OFI, quote and crossed counts up to and including this
    ``ts``; the mid of the last valid quote at or before it; and whether it is the instrument's
    last row. With ``max_age`` (nanoseconds) a state stands at most that long after its quote:
    the integrals stop there.

    The quotes are grouped by instrument once (a stable sort); every per-instrument series is
    then a plain forward fill, shift or cumulative sum over the whole column, kept inside its
    instrument by the first-row mask (a state is reset there; a running sum starts from the
    instrument's own offset) — no per-instrument window (``.over``) at all.
    """
    keys = instrument_keys(_require_quotes(quotes).names())
    flagged = _order_flow_imbalance(_by_instrument(quotes.select(*keys, TS, *_BBO), keys))
    valid, first = pl.col(VALID_QUOTE), pl.col(_FIRST)
    empty = ~valid & ~pl.col(CROSSED)
    bid, _, ask, _ = sides = _clean_sides()

    def standing(value: pl.Expr, zero: pl.Expr) -> pl.Expr:
        # The instrument's first row is never null, so the fill never crosses instruments.
        return pl.when(valid).then(value).when(empty | first).then(zero).forward_fill()

    last = first.shift(-1).fill_null(value=True)
    next_ts = pl.when(~last).then(pl.col(TS).shift(-1))
    seen = pl.when(valid).then(pl.lit(value=True)).when(first).then(pl.lit(value=False))
    states = flagged.with_columns(
        *(
            state.alias(name)
            for state, name in zip(standing_states(sides, standing), _STANDING, strict=True)
        ),
        pl.when(seen.forward_fill())
        .then(pl.when(valid).then((bid + ask) / 2).forward_fill())
        .alias(_MID),
        _clipped((next_ts - pl.col(TS)).dt.total_nanoseconds().fill_null(0), max_age).alias(_GAP),
        last.alias(_LAST),
        next_ts.ne_missing(pl.col(TS)).alias(_KEEP),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_ROW),
    )
    gap = pl.col(_GAP)

    def running(value: pl.Expr, *, inclusive: bool) -> pl.Expr:
        # Σ value over the instrument's rows up to this one (inclusive) or before it, as one
        # cumulative sum less the sum before the instrument's first row (exact for integers).
        total = value.cum_sum()
        before = total.shift(1).fill_null(0)
        offset = pl.when(first).then(before).forward_fill()
        return (total if inclusive else before) - offset

    integrals = [
        running(
            pl.col(name) * (gap if name in (_WEIGHT, _IMBALANCE_WEIGHT) else gap.cast(pl.Float64)),
            inclusive=False,
        ).alias(_INTEGRAL[name])
        for name in _STANDING
    ]
    return (
        states.with_columns(
            *integrals,
            running(pl.col(OFI_EVENT), inclusive=True).alias(_CUMULATIVE_OFI),
            (pl.col(_ROW) - pl.when(first).then(pl.col(_ROW)).forward_fill() + 1).alias(_EVENTS),
            running(pl.col(CROSSED).cast(pl.Int64), inclusive=True).alias(_CROSSED),
        )
        .filter(pl.col(_KEEP))
        .select(
            *keys,
            pl.col(TS).alias(_AT),
            *_STANDING,
            *_INTEGRAL.values(),
            _CUMULATIVE_OFI,
            _EVENTS,
            _CROSSED,
            _MID,
            _LAST,
        )
    )


def _clipped(nanoseconds: pl.Expr, max_age: int | None) -> pl.Expr:
    """Return elapsed nanoseconds, capped at ``max_age`` when there is one."""
    return nanoseconds if max_age is None else nanoseconds.clip(upper_bound=max_age)


def _regular_grid(quotes: pl.LazyFrame, every: str) -> pl.LazyFrame:
    """Bar starts per symbol, every ``every`` from its first to its last quote bar."""
    ts = pl.col(TS)
    keys = instrument_keys(quotes)
    return (
        quotes.group_by(keys)
        .agg(ts.min().dt.truncate(every).alias(_START), ts.max().dt.truncate(every).alias(_END))
        .select(*keys, pl.datetime_ranges(_START, _END, interval=every).alias(TS))
        .explode(TS)
        .sort(*keys, TS, nulls_last=True)
    )


def quote_bars(
    quotes: pl.LazyFrame,
    *,
    every: str,
    grid: pl.LazyFrame | None = None,
    max_age: str | None = None,
) -> pl.LazyFrame:
    """Aggregate quotes into time bars per symbol: OFI, mid, time-weighted spread and depth.

    A bar's ``ts`` is its start; its events are the quotes with start ≤ τ < start + ``every``.

    * ``ofi`` = Σ e_n over the bar's events (Cont, Kukanov & Stoikov 2014, *J. Financial
      Econometrics* 12(1):47-88; see :func:`order_flow_imbalance`). It is 0 for a bar without
      events inside the symbol's quote span and null for a bar wholly before the symbol's first
      quote or after its last one (nothing is known about book changes there).
    * ``ofi_normalized`` = ofi / depth (Cont et al.: price impact is inversely proportional to
      depth), null unless depth > 0.
    * ``mid_close`` = (B + A)/2 of the last valid quote with τ < bar end, carried forward over
      bars without quotes and across book clears; null before the symbol's first valid quote.
    * Time-weighted over the time a valid quote stands in the bar (metrics.md §12.2), with
      w_i = |[τ_i, τ_{i+1}) ∩ [start, end)| for each valid quote i, including the one prevailing
      at the bar start: ``spread`` = Σ w_i (A_i − B_i) / Σ w_i, ``depth`` = Σ w_i (qᴮ_i + qᴬ_i) /
      Σ w_i, ``quote_imbalance`` = Σ w_i (qᴮ_i − qᴬ_i)/(qᴮ_i + qᴬ_i) / Σ w_i over the quotes with
      qᴮ_i + qᴬ_i > 0. τ_{i+1} is the next valid or empty quote (crossed quotes are skipped);
      empty periods carry no weight. Null when no weight falls in the bar. With ``max_age`` a
      quote stands at most that long: τ_{i+1} is capped at τ_i + ``max_age`` (a stale quote
      counts as no quote).
    * ``quote_events``: quote rows in the bar (valid, empty and crossed); ``crossed_quotes``: the
      crossed rows among them.

    Parameters
    ----------
    quotes
        Canonical quotes in time order within each symbol; several symbols may be interleaved.
    every
        Bar length as a polars duration string (``1s``, ``1m``, ``5m``, ``1h``).
    grid
        The bars to fill: a frame with ``symbol, ts`` (bar starts, e.g. those of the trade bars).
        The result has exactly one row per grid row, in grid order; a grid symbol without quotes
        gets nulls and zero counts. Default: a regular grid per symbol from the bar of its first
        quote to the bar of its last one, aligned as polars ``group_by_dynamic`` aligns bars
        (``start_by="window"``). Grid and quotes match on the instrument (``venue, symbol``
        when either has a venue; a missing or null venue matches only a null venue).
    max_age
        A polars duration: how long a quote stands at most for the time-weighted columns
        (``None``: until the next quote).

    Returns
    -------
    pl.LazyFrame
        ``symbol, ts, ofi, ofi_normalized, mid_close, spread, depth, quote_imbalance,
        quote_events, crossed_quotes`` (counts ``UInt32``, the rest ``Float64``); sorted by symbol
        and ``ts`` without a grid.

    Raises
    ------
    ParameterError
        When ``every`` is not a positive duration or ``grid`` lacks ``symbol`` or ``ts``.
    SchemaError
        When a quote column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> quotes = pl.LazyFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 1, 0, m, s) for m, s in ((0, 0), (0, 30), (1, 10))],
    ...         "symbol": ["X"] * 3,
    ...         "bid_price": [10.0, 10.0, 10.1],
    ...         "bid_size": [4.0, 2.0, 1.0],
    ...         "ask_price": [10.2, 10.4, 10.3],
    ...         "ask_size": [4.0, 2.0, 3.0],
    ...     }
    ... ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    >>> bars = quote_bars(quotes, every="1m").collect()
    >>> bars.select("ofi", "mid_close", pl.col("spread").round(4), "depth", "quote_events").rows()
    [(2.0, 10.2, 0.3, 6.0, 2), (-2.0, 10.2, 0.2333, 4.0, 1)]
    """
    polars_duration(every, "bar length")
    age = None if max_age is None else duration_nanoseconds(max_age, what="max_age")
    schema = _require_quotes(quotes)
    bars = _regular_grid(quotes, every) if grid is None else _checked_grid(grid)
    grid_names = bars.collect_schema().names()
    joined = _states_at_bounds(bars, quotes, schema, grid_names, every, age)
    weight, imbalance_weight = _within(_WEIGHT, age), _within(_IMBALANCE_WEIGHT, age)
    in_span = pl.col(f"_e{_AT}").is_not_null() & ~pl.col(f"_s{_LAST}").fill_null(value=False)
    ofi = pl.col(f"_e{_CUMULATIVE_OFI}") - pl.col(f"_s{_CUMULATIVE_OFI}").fill_null(0.0)
    out_keys = instrument_keys(grid_names)
    out = joined.select(
        _ROW,
        *out_keys,
        TS,
        pl.when(in_span).then(ofi).otherwise(None).alias(OFI),
        pl.col(f"_e{_MID}").alias(MID_CLOSE),
        _mean(_SPREAD, weight, age).alias(SPREAD),
        _mean(_DEPTH, weight, age).alias(DEPTH),
        _mean(_IMBALANCE, imbalance_weight, age).alias(QUOTE_IMBALANCE),
        _count(_EVENTS).alias(QUOTE_EVENTS),
        _count(_CROSSED).alias(CROSSED_QUOTES),
    )
    depth = pl.col(DEPTH)
    return (
        out.with_columns(
            pl.when(depth > 0).then(pl.col(OFI) / depth).otherwise(None).alias(OFI_NORMALIZED)
        )
        .sort(_ROW)
        .select(*out_keys, *BAR_COLUMNS[1:])
    )


def _checked_grid(grid: pl.LazyFrame) -> pl.LazyFrame:
    """Return a caller's bar grid after checking it has ``symbol`` and ``ts``."""
    names = grid.collect_schema().names()
    if SYMBOL not in names or TS not in names:
        msg = f"the bar grid must have columns symbol and ts, found {', '.join(names)}"
        raise ParameterError(msg)
    return grid


def _states_at_bounds(
    bars: pl.LazyFrame,
    quotes: pl.LazyFrame,
    schema: pl.Schema,
    grid_names: list[str],
    every: str,
    age: int | None,
) -> pl.LazyFrame:
    """Every bar with the quote state standing at its start (``_s…``) and at its end (``_e…``).

    One as-of join for both bounds of every bar: each grid row twice (start, then end), then
    the two matches side by side again.
    """
    # As-of joins never match a null key: a null venue is "" meanwhile (no venue anywhere: the
    # symbol alone is the key).
    named = VENUE in grid_names or VENUE in schema
    by = [ASOF_VENUE, _KEY_SYMBOL] if named else [_KEY_SYMBOL]

    def venue_key(names: Sequence[str]) -> list[pl.Expr]:
        if not named:
            return []
        venue = pl.col(VENUE).cast(pl.String).fill_null("") if VENUE in names else pl.lit("")
        return [venue.alias(ASOF_VENUE)]

    left = (
        bars.with_row_index(_ROW)
        .with_columns(
            *venue_key(grid_names),
            pl.col(SYMBOL).cast(schema[SYMBOL]).alias(_KEY_SYMBOL),
            pl.col(TS).cast(schema[TS]).alias(_START),
        )
        .with_columns(pl.col(_START).dt.offset_by(every).alias(_END))
        .sort(*by, _START)
    )
    timeline = (
        _timeline(quotes, age)
        .with_columns(*venue_key(schema.names()))
        .drop(VENUE, strict=False)
        .rename({SYMBOL: _KEY_SYMBOL})
    )
    carried = [c for c in timeline.collect_schema().names() if c not in by]
    bounds = (
        left.with_columns(pl.concat_list(pl.lit(value=False), pl.lit(value=True)).alias(_IS_END))
        .explode(_IS_END)
        .with_columns(
            pl.when(pl.col(_IS_END)).then(pl.col(_END)).otherwise(pl.col(_START)).alias(_BOUND)
        )
        .sort(*by, _BOUND)
    )
    matched = bounds.join_asof(
        timeline,
        left_on=_BOUND,
        right_on=_AT,
        by=by,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).sort(_ROW, _IS_END)
    return matched.with_columns(
        *(pl.col(c).shift(1).alias(f"_s{c}") for c in carried),
        *(pl.col(c).alias(f"_e{c}") for c in carried),
    ).filter(pl.col(_IS_END))


def _within(name: str, age: int | None) -> pl.Expr:
    """∫ of a state over a bar [start, end), from the states standing at its two bounds.

    Δ(integral up to the last row before each bound) − standing value before start ×
    (start − that row) + standing value before end × (end − that row).
    """

    def partial(prefix: str, at: str) -> pl.Expr:
        elapsed = _clipped((pl.col(at) - pl.col(f"{prefix}{_AT}")).dt.total_nanoseconds(), age)
        if name not in (_WEIGHT, _IMBALANCE_WEIGHT):
            elapsed = elapsed.cast(pl.Float64)
        return (pl.col(f"{prefix}{name}") * elapsed).fill_null(0)

    rows = pl.col(f"_e{_INTEGRAL[name]}").fill_null(0) - pl.col(f"_s{_INTEGRAL[name]}").fill_null(0)
    return rows - partial("_s", _START) + partial("_e", _END)


def _mean(name: str, weight: pl.Expr, age: int | None) -> pl.Expr:
    """Time-weighted mean of a state over a bar (its value, exactly, when it never changed)."""
    steady = pl.col(f"_e{_AT}") == pl.col(f"_s{_AT}")
    value = pl.when(steady).then(pl.col(f"_s{name}")).otherwise(_within(name, age) / weight)
    return pl.when(weight > 0).then(value).otherwise(None)


def _count(name: str) -> pl.Expr:
    """Events of a running count within a bar (its value at the end minus at the start)."""
    return (pl.col(f"_e{name}").fill_null(0) - pl.col(f"_s{name}").fill_null(0)).cast(pl.UInt32)
