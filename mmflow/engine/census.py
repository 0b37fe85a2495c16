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
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import polars as pl

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
    "QUOTE_KINDS",
    "UNIT",
    "Census",
    "InboundState",
    "census_batches",
    "chain",
    "take_census",
    "unit_expression",
]

UNIT: Final = "_unit"
"""The census unit column: the chunk-day number (Int64) or the session date."""
ORDERED: Final = "_ordered"
"""Whether a census group's rows came in time order."""
DATE: Final = "_date"
"""The UTC date of the rows (VPIN counts distinct UTC dates per instrument)."""


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


def trade_census(
    trades: pl.LazyFrame, keys: tuple[str, ...], every_ns: int, *, session: bool
) -> pl.LazyFrame:
    """Return the lazy trade census of prepared trades (see :class:`Census`).

    Aggregations follow the rows' order inside each group (instrument, unit, date); the
    ``_ordered`` column says whether that order is time order (:func:`take_census` sorts and
    recomputes otherwise).
    """
    price = pl.col(PRICE).fill_nan(None)
    size = pl.col(SIZE).cast(pl.Float64)
    valid = size.is_finite() & (size > 0)
    prices = price.drop_nulls()
    change = prices.diff().sign()
    return (
        trades.select(*keys, TS, PRICE, SIZE, *(["session"] if session else []))
        .with_columns(_unit(every_ns, session), pl.col(TS).dt.date().alias(DATE))
        .group_by(*keys, UNIT, DATE)
        .agg(
            pl.len().alias("trades"),
            size.filter(valid).sum().alias("volume"),
            valid.sum().alias("bucket_trades"),
            _ns().min().alias("first_ts"),
            _ns().max().alias("last_ts"),
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
            pl.len().alias("quotes"),
            _ns().min().alias("first_ts"),
            _ns().max().alias("last_ts"),
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


CENSUS_BYTES_PER_ROW: Final = 100
"""Estimated peak bytes of the census per input row (key columns read plus the group-by's
share; measured ~0.16 GiB per million trades + quotes at 10 M + 10 M)."""


DateRange = tuple[date | None, date | None]
"""UTC dates ``[first, after)`` of one census batch; ``(None, None)``: rows without a ``ts``."""


def take_census(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    *,
    keys: tuple[str, ...],
    every_ns: int,
    session: bool,
    memory_limit: int | None = None,
    batches: Sequence[DateRange] | None = None,
) -> Census:
    """Run pass 1 over prepared trades and quotes.

    The rows may come in any order: the census runs in input order and checks, per group,
    that the order is time order; a table with a group out of order is counted again from
    its key columns sorted by ``ts`` (stable, as :func:`mmflow.analysis.prepare.prepare` sorts), so
    the last quote and the tick state are those of time order.

    Every census group (instrument, unit, UTC date) lies inside one UTC date, so the census
    of whole UTC days is exact on its own: a big input is counted in **batches of days**
    (``ts`` filters that parquet statistics and converted datasets' day files prune), whose
    tables are concatenated. The peak is then set by the largest batch, not the input.

    Parameters
    ----------
    memory_limit
        When the input's estimated census memory (rows × :data:`CENSUS_BYTES_PER_ROW`) exceeds
        it, the days are counted first (a streaming pass over ``ts``) and packed into batches
        that fit it (a day over it is a batch of its own). ``None``: one batch.
    batches
        Explicit batches (ascending, disjoint date ranges covering every row; tests). Wins over
        ``memory_limit``.
    """
    if batches is None and memory_limit is not None:
        batches = census_batches(trades, quotes, memory_limit)
    if batches is None or len(batches) <= 1:
        return _census_batch(trades, quotes, keys=keys, every_ns=every_ns, session=session)
    parts = [
        _census_batch(
            trades.filter(_in_range(batch)),
            quotes.filter(_in_range(batch)) if quotes is not None else None,
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


def _in_range(batch: DateRange) -> pl.Expr:
    """Rows of a batch: ``first <= ts < after`` at UTC midnights, or ``ts`` null."""
    first, after = batch
    ts = pl.col(TS)
    if first is None and after is None:
        return ts.is_null()
    condition = ts.is_not_null()
    if first is not None:
        condition &= ts >= _midnight(first)
    if after is not None:
        condition &= ts < _midnight(after)
    return condition


def _midnight(day: date) -> pl.Expr:
    return pl.lit(datetime(day.year, day.month, day.day, tzinfo=UTC)).cast(TIMESTAMP)


def census_batches(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, memory_limit: int
) -> list[DateRange] | None:
    """Pack the input's UTC days into census batches that fit ``memory_limit``.

    Returns ``None`` when the whole census fits (one batch; only row counts are read, cheap
    for parquet). Otherwise one streaming pass counts rows per UTC day over ``ts`` and whole
    days are packed greedily in date order (a day over the limit is a batch alone); rows
    without a ``ts`` form a batch of their own.
    """
    frames = [trades] + ([quotes] if quotes is not None else [])
    rows = sum(int(count.item()) for count in pl.collect_all([f.select(pl.len()) for f in frames]))
    if rows * CENSUS_BYTES_PER_ROW <= memory_limit:
        return None
    per_day = pl.collect_all(
        [f.select(pl.col(TS).dt.date().alias(DATE)).group_by(DATE).len() for f in frames],
        engine="streaming",
    )
    days = pl.concat(per_day).group_by(DATE).agg(pl.col("len").sum()).sort(DATE, nulls_last=True)
    batches: list[DateRange] = []
    first: date | None = None
    held = 0
    previous: date | None = None
    for day, count in days.iter_rows():
        if day is None:
            continue
        cost = int(count) * CENSUS_BYTES_PER_ROW
        if first is not None and held + cost > memory_limit:
            batches.append((first, day))
            first, held = None, 0
        if first is None:
            first = day
        held += cost
        previous = day
    if first is not None and previous is not None:
        batches.append((first, previous + timedelta(days=1)))
    if days[DATE].null_count():
        batches.append((None, None))
    return batches


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
