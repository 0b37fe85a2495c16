"""Pass 1 of the engine: a cheap census of the inputs and the chain of inbound states.

One lazy pass over the key columns gives, per instrument and **unit** (a chunk-day: the rows
from the first bar edge at or after one UTC midnight to the first at or after the next; or a
session with ``--session``) and UTC date:

- trades: count, bucket volume (Σ size over sizes finite and > 0, as VPIN fills buckets), first
  and last ``ts``, the first and last valid price and the last non-zero price change's sign
  inside the unit (for the tick rule's state);
- quotes: count, first and last ``ts`` and the last quote row (``ts``, top of book).

:func:`chain` turns these rows into each unit's inbound :class:`~mmflow.engine.state.TradeState`
and :class:`~mmflow.engine.state.QuoteState` (what every earlier unit of the instrument leaves),
so chunks are independent given their inbound state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from mmflow.engine.census_days import (
    CENSUS_BYTES_PER_ROW,
    DATE,
    DateRange,
    census_batches,
    in_range,
    pack_days,
)
from mmflow.engine.state import NS_PER_DAY, QuoteState, TradeState
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    PRICE,
    SIZE,
    SYMBOL,
    TIMESTAMP,
    TS,
    TS_EVENT,
    VENUE,
)

_BBO: Final = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)

__all__ = [
    "CENSUS_BYTES_PER_ROW",
    "DATE",
    "QUOTE_KINDS",
    "UNIT",
    "Census",
    "DateRange",
    "InboundState",
    "UntimedRowsError",
    "census_batches",
    "chain",
    "take_census",
    "unit_expression",
]

UNIT: Final = "_unit"
"""The census unit column: the chunk-day number (Int64) or the session date."""
ORDERED: Final = "_ordered"
"""Whether a census group's rows came in time order."""


def _ns(column: str = TS) -> pl.Expr:
    return pl.col(column).dt.cast_time_unit("ns").dt.epoch("ns")


def unit_expression(every_ns: int) -> pl.Expr:
    """Return each row's chunk-day: the ``d`` with ``edge(d) <= ts < edge(d + 1)``.

    ``edge(d)`` is the first multiple of the bar length at or after day ``d``'s UTC midnight,
    so a unit's rows fill whole bars and no bar straddles two units.
    """
    ts = _ns()
    day = ts.floordiv(NS_PER_DAY)
    edge = (day * NS_PER_DAY + (every_ns - 1)).floordiv(every_ns) * every_ns
    return pl.when(ts >= edge).then(day).otherwise(day - 1).alias(UNIT)


def unit_edge(unit: int, every_ns: int) -> int:
    """Return ``edge(unit)``: the first bar edge at or after the unit's UTC midnight (ns)."""
    midnight = unit * NS_PER_DAY
    return -(-midnight // every_ns) * every_ns


class UntimedRowsError(ValueError):
    """A trade or quote without a ``ts``: it belongs to no unit (the engine cannot run)."""

    def __init__(self) -> None:
        super().__init__("a trade or quote has no time (ts); it fits no chunk")


@dataclass(frozen=True)
class Census:
    """The census tables (small: one row per instrument, unit and UTC date).

    Attributes
    ----------
    trades
        ``keys…, _unit, _date, trades, volume, bucket_trades, first_ts, last_ts, first_price,
        last_price, first_direction, last_direction`` (``*_ts`` in ns; the directions are the
        signs of the first and last non-zero price changes inside the group: the tick state,
        and the reverse tick state of ``classify``), sorted by keys, unit and date.
    quotes
        ``keys…, _unit, _date, quotes, first_ts, last_ts`` and for each kind of
        :data:`QUOTE_KINDS` the last such quote's ``q_{kind}_ts, q_{kind}_bid_price, …
        q_{kind}_ask_size[, q_{kind}_ts_event]``; ``None`` without quotes.
    keys
        The instrument columns.
    session
        Whether units are sessions.
    """

    trades: pl.DataFrame
    quotes: pl.DataFrame | None
    keys: tuple[str, ...]
    session: bool


def _unit(every_ns: int, session: bool) -> pl.Expr:
    return pl.col("session").alias(UNIT) if session else unit_expression(every_ns)


def _ordered() -> pl.Expr:
    """Whether a group's rows are in time order (checked, so only unordered input is sorted)."""
    return (_ns().diff().min().fill_null(0) >= 0).alias(ORDERED)


def _trade_counts() -> list[pl.Expr]:
    """Return the trade census' order-free aggregations (sums, counts, extremes: streamable)."""
    size = pl.col(SIZE).cast(pl.Float64)
    valid = size.is_finite() & (size > 0)
    return [
        pl.len().alias("trades"),
        size.filter(valid).sum().alias("volume"),
        valid.sum().alias("bucket_trades"),
        _ns().min().alias("first_ts"),
        _ns().max().alias("last_ts"),
    ]


def _quote_counts() -> list[pl.Expr]:
    """Return the quote census' order-free aggregations."""
    return [pl.len().alias("quotes"), _ns().min().alias("first_ts"), _ns().max().alias("last_ts")]


def trade_census(
    trades: pl.LazyFrame, keys: tuple[str, ...], every_ns: int, *, session: bool
) -> pl.LazyFrame:
    """Return the lazy trade census of prepared trades (see :class:`Census`).

    Aggregations follow the rows' order inside each group (instrument, unit, date); the
    ``_ordered`` column says whether that order is time order (:func:`take_census` sorts and
    recomputes otherwise).
    """
    price = pl.col(PRICE).fill_nan(None)
    prices = price.drop_nulls()
    change = prices.diff().sign()
    return (
        trades.select(*keys, TS, PRICE, SIZE, *(["session"] if session else []))
        .with_columns(_unit(every_ns, session), pl.col(TS).dt.date().alias(DATE))
        .group_by(*keys, UNIT, DATE)
        .agg(
            *_trade_counts(),
            prices.first().alias("first_price"),
            prices.last().alias("last_price"),
            change.filter(change != 0).first().cast(pl.Int8).alias("first_direction"),
            change.filter(change != 0).last().cast(pl.Int8).alias("last_direction"),
            _ordered(),
        )
        .sort(*keys, UNIT, DATE, nulls_last=True)
    )


QUOTE_KINDS: Final = ("last", "valid", "standing", "usable")
"""The last quotes the census keeps per unit: of any kind; ``valid`` (both sides and sizes
present, bid ≤ ask: OFI's previous quote and the mid); ``standing`` (valid or empty, i.e. not
crossed: the state that stands for spread and depth); ``usable`` (bid < ask, finite:
:func:`mmflow.metrics.classify.quote_is_usable`, for signing and the future mid)."""


_ROW: Final = "_row"


def quote_census(
    quotes: pl.LazyFrame, keys: tuple[str, ...], every_ns: int, *, session: bool
) -> pl.LazyFrame:
    """Return the lazy quote census of prepared quotes (as :func:`trade_census` does).

    Per group the input row number of the last quote of each kind of :data:`QUOTE_KINDS`
    (``_row_{kind}``: plain maxima of row numbers, cheap); :func:`_with_quote_rows` then
    fetches those few rows.
    """
    from mmflow.metrics.classify import quote_is_usable

    columns = [*keys, TS, BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE]
    columns += ["session"] if session else []
    sides = [pl.col(c).cast(pl.Float64).fill_nan(None) for c in _BBO]
    empty = pl.any_horizontal(side.is_null() for side in sides)
    where: dict[str, pl.Expr] = {
        "last": pl.lit(value=True),
        "valid": ~empty & (sides[0] <= sides[2]),
        "standing": empty | (sides[0] <= sides[2]),
        "usable": quote_is_usable(),
    }
    row = pl.col(_ROW)
    return (
        quotes.select(columns)
        .with_row_index(_ROW)
        .with_columns(
            _unit(every_ns, session),
            pl.col(TS).dt.date().alias(DATE),
            *(pl.when(where[kind]).then(row).alias(f"{_ROW}_{kind}") for kind in QUOTE_KINDS),
        )
        .group_by(*keys, UNIT, DATE)
        .agg(
            *_quote_counts(),
            *(pl.col(f"{_ROW}_{kind}").max() for kind in QUOTE_KINDS),
            _ordered(),
        )
        .sort(*keys, UNIT, DATE, nulls_last=True)
    )


def _with_quote_rows(census: pl.DataFrame, quotes: pl.LazyFrame) -> pl.DataFrame:
    """Add each kind's last quote (``q_{kind}_ts, q_{kind}_bid_price, …``) from its row number."""
    names = quotes.collect_schema().names()
    wanted = pl.concat([census[f"{_ROW}_{kind}"] for kind in QUOTE_KINDS]).drop_nulls().unique()
    values = [_ns().alias("ts"), *(pl.col(c).cast(pl.Float64) for c in _BBO)]
    if TS_EVENT in names:
        values.append(_ns(TS_EVENT).alias("ts_event"))
    rows = (
        quotes.with_row_index(_ROW)
        .filter(pl.col(_ROW).is_in(wanted.implode()))
        .select(_ROW, *values)
        .collect()
    )
    out = census
    for kind in QUOTE_KINDS:
        named = rows.rename({c: f"q_{kind}_{c}" for c in rows.columns if c != _ROW})
        out = out.join(named.rename({_ROW: f"{_ROW}_{kind}"}), on=f"{_ROW}_{kind}", how="left")
    return out.drop(f"{_ROW}_{kind}" for kind in QUOTE_KINDS)


def take_census(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    *,
    keys: tuple[str, ...],
    every_ns: int,
    session: bool,
    memory_limit: int | None = None,
    batches: Sequence[DateRange] | None = None,
    last_unit_state: bool = True,
) -> Census:
    """Run pass 1 over prepared trades and quotes.

    Two steps. **Counts** (every row): per group (instrument, unit, UTC date) the row counts,
    volumes and first and last times — order-free sums and extremes, one streaming pass over
    the key columns. **State** (only the rows before the run's last unit): the first and last
    price, the last tick direction and the last quote of each kind, which only a *later* unit
    reads (:func:`chain`), so with ``last_unit_state=False`` the run's last unit gets no state
    (null state columns) and a run of one day per instrument (one unit) reads no state at
    all. (With ``--session`` units are sessions, not time ranges: all rows get state.)

    The state rows may come in any order: they are counted in input order with a check, per
    group, that the order is time order; a table with a group out of order is counted again
    from its key columns sorted by ``ts`` (stable, as :func:`mmflow.analysis.prepare.prepare`
    sorts), so the last quote and the tick state are those of time order.

    Every census group lies inside one UTC date, so the state of whole UTC days is exact on
    its own: a big input is counted in **batches of days** (``ts`` filters that parquet
    statistics and converted datasets' day files prune), whose tables are concatenated. The
    peak is then set by the largest batch, not the input.

    Parameters
    ----------
    memory_limit
        When the state rows' estimated census memory (rows × :data:`CENSUS_BYTES_PER_ROW`)
        exceeds it, their days (counted in the first step) are packed into batches that fit it
        (a day over it is a batch of its own). ``None``: one batch.
    batches
        Explicit batches (ascending, disjoint date ranges covering every row; tests). Wins over
        ``memory_limit``.
    last_unit_state
        Whether the last unit's groups get their state too (the incremental runs store every
        chunk's outbound state from the census; a plain run only chains it forward).

    Raises
    ------
    UntimedRowsError
        Without ``last_unit_state``, when a row has no ``ts`` (found by the counts, so the
        caller needs no pass of its own to check).
    """
    if session or last_unit_state:
        if not last_unit_state:  # sessions: the counts only check for rows without a time
            _check_timed(_count_census(trades, quotes, keys, every_ns))
        if batches is None and memory_limit is not None:
            batches = census_batches(trades, quotes, memory_limit)
        return _state_census(trades, quotes, keys, every_ns, session=session, batches=batches)
    counted = _count_census(trades, quotes, keys, every_ns)
    units = _check_timed(counted)
    last: Any = units.max()
    if last is None or units.min() == last:  # no row before the last unit: no state to read
        return _with_state(counted, None, keys, every_ns, trades, quotes, last)
    before = pl.col(TS) < pl.lit(unit_edge(int(last), every_ns)).cast(pl.Int64).cast(TIMESTAMP)
    before_trades = trades.filter(before)
    before_quotes = quotes.filter(before) if quotes is not None else None
    if batches is None and memory_limit is not None:
        batches = pack_days(_days_before(counted, int(last)), memory_limit)
    state = _state_census(
        before_trades, before_quotes, keys, every_ns, session=False, batches=batches
    )
    return _with_state(counted, state, keys, every_ns, trades, quotes, last)


def _check_timed(counted: tuple[pl.DataFrame, pl.DataFrame | None]) -> pl.Series:
    """Return the counted units; raise :class:`UntimedRowsError` if a row has no ``ts``."""
    units = pl.concat([frame.select(UNIT) for frame in counted if frame is not None])[UNIT]
    if units.null_count():
        raise UntimedRowsError
    return units


def _count_census(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, keys: tuple[str, ...], every_ns: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Return the census' order-free columns of every row (one streaming pass per table).

    When the bar length divides a day, a unit is its UTC day (its edge is midnight): the rows
    are grouped by the day number alone and the date is derived from it afterwards.
    """
    group = [*keys, UNIT, DATE]
    order = pl.col(group)
    if NS_PER_DAY % every_ns == 0:
        by_day = [*keys, _ns().floordiv(NS_PER_DAY).alias(UNIT)]
        date = pl.col(UNIT).cast(pl.Int32).cast(pl.Date).alias(DATE)
        grouped = [
            frame.group_by(by_day).agg(aggregations).select(*group[:-1], date, pl.exclude(group))
            for frame, aggregations in ((trades, _trade_counts()), (quotes, _quote_counts()))
            if frame is not None
        ]
    else:
        day = (unit_expression(every_ns), pl.col(TS).dt.date().alias(DATE))
        grouped = [
            frame.with_columns(day).group_by(group).agg(aggregations)
            for frame, aggregations in ((trades, _trade_counts()), (quotes, _quote_counts()))
            if frame is not None
        ]
    frames = [f.sort(order, nulls_last=True) for f in pl.collect_all(grouped, engine="streaming")]
    return frames[0], frames[1] if quotes is not None else None


def _days_before(counted: tuple[pl.DataFrame, pl.DataFrame | None], last: int) -> pl.DataFrame:
    """Rows per UTC date of the groups before unit ``last`` (``DATE, len``)."""
    parts = [
        frame.filter(pl.col(UNIT) < last).select(
            DATE, pl.col("trades" if "trades" in frame.columns else "quotes").alias("len")
        )
        for frame in counted
        if frame is not None
    ]
    return pl.concat(parts, how="vertical_relaxed").group_by(DATE).agg(pl.col("len").sum())


def _with_state(
    counted: tuple[pl.DataFrame, pl.DataFrame | None],
    state: Census | None,
    keys: tuple[str, ...],
    every_ns: int,
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    last: Any,
) -> Census:
    """Join the counts of the last unit (state columns null) to the state census before it."""
    order = [*keys, UNIT, DATE]
    trade_schema = trade_census(trades, keys, every_ns, session=False).collect_schema()
    tables: list[pl.DataFrame | None] = []
    for index, counts in enumerate(counted):
        if counts is None:
            tables.append(None)
            continue
        if index == 0:
            schema = trade_schema
        else:
            assert quotes is not None
            schema = _quote_state_schema(quotes, keys, every_ns)
        later = counts if last is None else counts.filter(pl.col(UNIT).ge(last).fill_null(True))
        earlier = None if state is None else (state.trades if index == 0 else state.quotes)
        empty = pl.DataFrame(schema=schema)
        parts = [empty] + ([earlier] if earlier is not None else []) + [later]
        table = pl.concat(parts, how="diagonal_relaxed").select(list(schema))
        tables.append(table.sort(order, nulls_last=True))
    assert tables[0] is not None
    return Census(tables[0], tables[1], keys, session=False)


def _quote_state_schema(quotes: pl.LazyFrame, keys: tuple[str, ...], every_ns: int) -> pl.Schema:
    """Return the quote census' schema (with the last quote of each kind, as stored)."""
    schema: dict[str, Any] = dict(
        quote_census(quotes, keys, every_ns, session=False).collect_schema()
    )
    has_event = TS_EVENT in quotes.collect_schema().names()
    for kind in QUOTE_KINDS:
        del schema[f"{_ROW}_{kind}"]
    for kind in QUOTE_KINDS:
        schema[f"q_{kind}_ts"] = pl.Int64
        schema.update({f"q_{kind}_{c}": pl.Float64 for c in _BBO})
        if has_event:
            schema[f"q_{kind}_ts_event"] = pl.Int64
    return pl.Schema(schema)


def _state_census(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    keys: tuple[str, ...],
    every_ns: int,
    *,
    session: bool,
    batches: Sequence[DateRange] | None,
) -> Census:
    """Return the full census (counts and state) of the given rows, in batches of days."""
    if batches is None or len(batches) <= 1:
        return _census_batch(trades, quotes, keys=keys, every_ns=every_ns, session=session)
    parts = [
        _census_batch(
            trades.filter(in_range(batch)),
            quotes.filter(in_range(batch)) if quotes is not None else None,
            keys=keys,
            every_ns=every_ns,
            session=session,
        )
        for batch in batches
    ]
    order = [*keys, UNIT, DATE]
    trade_frame = pl.concat([part.trades for part in parts]).sort(order, nulls_last=True)
    quote_frame = None
    if quotes is not None:
        quote_parts = [part.quotes for part in parts if part.quotes is not None]
        quote_frame = pl.concat(quote_parts).sort(order, nulls_last=True)
    return Census(trade_frame, quote_frame, keys, session)


def _census_batch(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    *,
    keys: tuple[str, ...],
    every_ns: int,
    session: bool,
) -> Census:
    """Count one batch (both plans in one collect)."""
    plans = [trade_census(trades, keys, every_ns, session=session)]
    if quotes is not None:
        plans.append(quote_census(quotes, keys, every_ns, session=session))
    frames = pl.collect_all(plans)
    if not frames[0][ORDERED].all():
        frames[0] = trade_census(
            trades.sort(TS, maintain_order=True), keys, every_ns, session=session
        ).collect()
    quote_frame = None
    if quotes is not None:
        source = quotes
        quote_frame = frames[1]
        if not quote_frame[ORDERED].all():
            source = quotes.sort(TS, maintain_order=True)
            quote_frame = quote_census(source, keys, every_ns, session=session).collect()
        quote_frame = _with_quote_rows(quote_frame, source)
    return Census(frames[0], quote_frame, keys, session)


def instrument_of(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str]:
    """Return ``(venue, symbol)`` of a census row."""
    return (row.get(VENUE) if VENUE in keys else None, row[SYMBOL])


@dataclass(frozen=True)
class InboundState:
    """The state entering one unit of one instrument.

    Attributes
    ----------
    trade
        The tick state, VPIN volume and trade count before the unit.
    quotes
        The last quote of each kind of :data:`QUOTE_KINDS` before the unit.
    """

    trade: TradeState
    quotes: dict[str, QuoteState]


def _quote_of(row: dict[str, Any], kind: str) -> QuoteState | None:
    ts = row.get(f"q_{kind}_ts")
    if ts is None:
        return None
    return QuoteState(
        ts=int(ts),
        bid_price=row[f"q_{kind}_{BID_PRICE}"],
        bid_size=row[f"q_{kind}_{BID_SIZE}"],
        ask_price=row[f"q_{kind}_{ASK_PRICE}"],
        ask_size=row[f"q_{kind}_{ASK_SIZE}"],
        ts_event=row.get(f"q_{kind}_ts_event"),
    )


def chain(census: Census) -> dict[tuple[str | None, str], dict[Any, InboundState]]:
    """Chain the census in time order: per instrument, the inbound state of each unit.

    The tick state (last price, last non-zero direction, trades before) restarts at every
    session with ``--session`` (bars and signing are per session); the VPIN volume and the
    last quotes carry across the instrument's whole run. Units holding only quotes are
    included (their bars come from the quotes).

    Returns
    -------
    dict
        ``{(venue, symbol): {unit: InboundState}}`` for every unit of every instrument that
        has trades or quotes.
    """
    keys = census.keys
    trades_by: dict[tuple[str | None, str], dict[Any, list[dict[str, Any]]]] = {}
    for row in census.trades.iter_rows(named=True):
        trades_by.setdefault(instrument_of(row, keys), {}).setdefault(row[UNIT], []).append(row)
    quotes_by: dict[tuple[str | None, str], dict[Any, list[dict[str, Any]]]] = {}
    if census.quotes is not None:
        for row in census.quotes.iter_rows(named=True):
            quotes_by.setdefault(instrument_of(row, keys), {}).setdefault(row[UNIT], []).append(row)
    out: dict[tuple[str | None, str], dict[Any, InboundState]] = {}
    for instrument in sorted(
        set(trades_by) | set(quotes_by), key=lambda i: (i[1], i[0] is None, i[0] or "")
    ):
        units_t = trades_by.get(instrument, {})
        units_q = quotes_by.get(instrument, {})
        states: dict[Any, InboundState] = {}
        last_price: float | None = None
        direction = 0
        volume = 0.0
        count = 0
        quotes = dict.fromkeys(QUOTE_KINDS, QuoteState())
        for unit in sorted(set(units_t) | set(units_q)):
            if census.session:
                last_price, direction, count = None, 0, 0
            states[unit] = InboundState(
                TradeState(last_price, direction, volume, count), dict(quotes)
            )
            for row in units_t.get(unit, []):  # sorted by date inside the unit
                first = row["first_price"]
                if first is not None and last_price is not None and first != last_price:
                    direction = 1 if first > last_price else -1
                if row["last_direction"] is not None:
                    direction = int(row["last_direction"])
                if row["last_price"] is not None:
                    last_price = float(row["last_price"])
                volume += float(row["volume"] or 0.0)
                count += int(row["trades"])
            for row in units_q.get(unit, []):
                for kind in QUOTE_KINDS:
                    quote = _quote_of(row, kind)
                    if quote is not None:
                        quotes[kind] = quote
        out[instrument] = states
    return out
