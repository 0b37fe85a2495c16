"""Preparation of canonical rows before any metric.

Re-clocking, selection filters (with their row account), TAQ cleaning, and the ``venue``
column every per-instrument table carries.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from mmflow.analysis.options import Selection
from mmflow.clean import clean_taq
from mmflow.io.checks import account_frame, counted, filtered
from mmflow.schema import QUOTES, SESSION, SYMBOL, TRADES, TS, TS_EVENT, VENUE, TableSchema, require

__all__ = [
    "instrument_columns",
    "prepare",
    "prepare_market",
    "selection_account",
    "selection_rules",
    "with_venue",
]


def _utc(value: datetime) -> pl.Expr:
    """Return ``value`` as a UTC literal; a naive datetime is taken to be UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return pl.lit(aware, dtype=pl.Datetime("ns", "UTC"))


def with_venue(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add a null ``venue`` column when ``lf`` has none (an instrument is venue and symbol)."""
    if VENUE in lf.collect_schema().names():
        return lf
    return lf.with_columns(pl.lit(None, pl.String).alias(VENUE))


def instrument_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Give a per-instrument output table its ``venue`` column, right before ``symbol``.

    Computations key on ``symbol`` alone when no input names a venue (cheaper); every table
    mmflow returns still has ``venue`` (null then), so outputs have one shape.
    """
    names = lf.collect_schema().names()
    if SYMBOL not in names or VENUE in names:
        return lf
    position = names.index(SYMBOL)
    venue = pl.lit(None, pl.String).alias(VENUE)
    return lf.select(*names[:position], venue, *names[position:])


def _reclocked(lf: pl.LazyFrame, selection: Selection) -> pl.LazyFrame:
    """Put the chosen clock in ``ts`` and label sessions (when a session is selected)."""
    names = lf.collect_schema().names()
    if selection.venues and VENUE not in names:
        lf = with_venue(lf)
    if selection.clock == "event" and TS_EVENT in names:
        lf = lf.with_columns(pl.coalesce(TS_EVENT, TS).alias(TS), pl.col(TS).alias(TS_EVENT))
    if selection.session is not None:
        lf = lf.with_columns(selection.session.label().alias(SESSION))
    return lf


def selection_rules(selection: Selection) -> list[tuple[str, pl.Expr]]:
    """Each row filter of ``selection`` as (reason, condition marking a row to drop).

    :func:`prepare` drops the rows any rule marks; :func:`selection_account` counts them by
    their first marking rule, so the row account stays exact. Rules apply after re-clocking.
    """
    rules: list[tuple[str, pl.Expr]] = []
    if selection.symbols:
        rules.append(
            ("symbol not selected (--symbol)", ~pl.col(SYMBOL).is_in(list(selection.symbols)))
        )
    if selection.venues:
        rules.append(("venue not selected (--venue)", ~pl.col(VENUE).is_in(list(selection.venues))))
    if selection.start is not None:
        rules.append(("before --start", pl.col(TS) < _utc(selection.start)))
    if selection.end is not None:
        rules.append(("at or after --end", pl.col(TS) >= _utc(selection.end)))
    if selection.session is not None:
        rules.append(("outside --session", pl.col(SESSION).is_null()))
    return rules


def prepare(
    lf: pl.LazyFrame,
    table: TableSchema,
    selection: Selection,
    *,
    venue: bool = False,
    ordered: bool = True,
) -> pl.LazyFrame:
    """Validate, re-clock, filter and time-order canonical rows.

    With ``clock="event"`` the exchange time becomes ``ts`` (rows without one keep theirs) and
    the receive time moves to ``ts_event``'s place, so every metric aligns on the chosen clock.
    Rows are sorted by ``ts`` with a stable sort, so same-timestamp rows keep file order.

    Parameters
    ----------
    lf
        Canonical trades or quotes.
    table
        :data:`mmflow.schema.TRADES` or :data:`mmflow.schema.QUOTES`.
    selection
        Symbols, time window and clock.
    venue
        Add the null ``venue`` column when there is none (see :func:`with_venue`).
    ordered
        Sort by ``ts`` (stable). ``False`` leaves the input order: the chunked engine checks
        each chunk's order and sorts only the chunks that need it (the same rows result).

    Returns
    -------
    pl.LazyFrame
        The prepared rows.
    """
    require(lf, table, what=f"canonical {table.name}")
    if venue:
        lf = with_venue(lf)
    lf = _reclocked(lf, selection)
    rules = selection_rules(selection)
    if rules:
        lf = lf.filter(~pl.any_horizontal(rule.fill_null(value=True) for _, rule in rules))
    return lf.sort(TS, maintain_order=True) if ordered else lf


def selection_account(
    trades: pl.LazyFrame | None, quotes: pl.LazyFrame | None, selection: Selection
) -> pl.LazyFrame:
    """Count the rows :func:`prepare` keeps (``used``) and drops per filter, per table.

    Returns a lazy :data:`mmflow.io.checks.ACCOUNT` table; TAQ cleaning, when selected, drops
    further rows from the ``used`` ones (:func:`account_of`).
    """
    plans = []
    for name, lf in (("trades", trades), ("quotes", quotes)):
        if lf is None:
            continue
        rules = [(r, rule.fill_null(value=True)) for r, rule in selection_rules(selection)]
        kept, dropped = filtered(_reclocked(lf, selection), rules, table=name)
        plans += [dropped, counted(kept, table=name, kind="used", reason="used")]
    return pl.concat(plans) if plans else account_frame([])


def _same_keys(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """When trades or quotes name a venue, give the other side one too (null: unnamed)."""
    if quotes is None:
        return trades, None
    named = VENUE in trades.collect_schema().names() or VENUE in quotes.collect_schema().names()
    return (with_venue(trades), with_venue(quotes)) if named else (trades, quotes)


def prepare_market(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    selection: Selection,
    *,
    ordered: bool = True,
) -> tuple[pl.LazyFrame, pl.LazyFrame | None, pl.LazyFrame | None]:
    """Prepare trades and quotes; with ``clean="taq"`` also clean them.

    ``ordered=False`` leaves rows in input order (see :func:`prepare`; TAQ cleaning always
    sorts).

    Returns the trades, the quotes and the per-rule dropped counts (``None`` without cleaning).
    When either names a venue, both have a ``venue`` column afterwards (null where the source
    has none), so both key instruments alike; when neither does, instruments are symbols.
    """
    ordered = ordered or selection.clean == "taq"
    prepared_quotes = (
        prepare(quotes, QUOTES, selection, ordered=ordered) if quotes is not None else None
    )
    prepared_trades = prepare(trades, TRADES, selection, ordered=ordered)
    if selection.clean != "taq":
        return (*_same_keys(prepared_trades, prepared_quotes), None)
    # Clean before a null venue column is added: the single-exchange rule (P3) runs only
    # where the rows name their exchange.
    cleaned = clean_taq(prepared_trades, prepared_quotes)
    assert cleaned.trades is not None
    dropped = [cleaned.trades.dropped.with_columns(pl.lit("trades").alias("table"))]
    if cleaned.quotes is not None:
        dropped.append(cleaned.quotes.dropped.with_columns(pl.lit("quotes").alias("table")))
    cleaned_quotes = cleaned.quotes.frame if cleaned.quotes is not None else None
    return (
        *_same_keys(cleaned.trades.frame, cleaned_quotes),
        pl.concat(dropped, how="vertical_relaxed"),
    )
