"""The quote state carried across chunks: the last quote of each kind, and the carry after one.

Split out of :mod:`mmflow.engine.quotes` (which re-exports :class:`QuoteCarry` and
:func:`carry_after`): the last quote, the last valid quote and the last non-crossed one that a
chunk's quote pass prepends to its rows, and how a chunk's own quotes move them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import polars as pl

from mmflow.engine.state import Chunk, QuoteState
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    TS,
)

__all__ = ["QuoteCarry", "carry_after"]

_BBO: Final = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)
_NS: Final = "_q_ns"  # ts in nanoseconds since the epoch


@dataclass(frozen=True)
class QuoteCarry:
    """What the quote pass carries across a chunk edge (one instrument).

    :class:`QuoteState` (the last quote) is enough when that quote is valid (both sides, bid ≤
    ask). When it is a book clear (a side null or NaN) the mid of the last valid quote still
    stands for ``mid_close``; when it is crossed (bid > ask), the state it leaves standing is
    that of the last non-crossed quote and OFI compares with the last valid one. So:

    Attributes
    ----------
    last
        The last quote before the chunk, of any kind (its ``ts`` restarts the age clock).
    valid
        The last valid quote before the chunk (OFI's previous quote, the mid).
    standing
        The last valid or empty (non-crossed) quote before the chunk (the standing state).
    """

    last: QuoteState = field(default_factory=QuoteState)
    valid: QuoteState = field(default_factory=QuoteState)
    standing: QuoteState = field(default_factory=QuoteState)

    @classmethod
    def from_state(cls, state: QuoteState) -> QuoteCarry:
        """Return the carry when only the last quote is known (exact when it is valid).

        A last quote that is a book clear leaves no earlier mid (``mid_close`` is null until
        the next valid quote instead of the older mid); a crossed one is taken as standing on
        an empty book (no weight, OFI seeds anew). The census (:mod:`mmflow.engine.census`)
        carries the full state.
        """
        kind = _kind(state)
        if kind == "valid":
            return cls(last=state, valid=state, standing=state)
        if kind == "empty":
            return cls(last=state, standing=state)
        return cls(last=state)

    def rows(self) -> list[QuoteState]:
        """Return the distinct quotes to prepend to the chunk, in time order."""
        out: list[QuoteState] = []
        for quote in (self.valid, self.standing, self.last):
            if quote.present and quote not in out:
                out.append(quote)
        return sorted(out, key=lambda quote: quote.ts or 0)


def _kind(state: QuoteState) -> str:
    """Return ``absent``, ``empty``, ``crossed`` or ``valid`` for one quote."""
    if not state.present:
        return "absent"
    sides = (state.bid_price, state.bid_size, state.ask_price, state.ask_size)
    if any(side is None or side != side for side in sides):  # None or NaN
        return "empty"
    assert state.bid_price is not None
    assert state.ask_price is not None
    return "crossed" if state.bid_price > state.ask_price else "valid"


def _as_nanoseconds(series: pl.Series) -> pl.Series:
    if series.dtype.is_integer():
        return series.cast(pl.Int64)
    return series.dt.cast_time_unit("ns").dt.epoch("ns").cast(pl.Int64)


def _in_time_order(quotes: pl.DataFrame) -> pl.DataFrame:
    """Return ``quotes`` sorted by ``ts`` (stable: same-instant rows keep their order).

    Checking is one cheap pass; only unsorted input is sorted.
    """
    if quotes.get_column(TS).is_sorted():
        return quotes
    return quotes.sort(TS, maintain_order=True)


def _quote_at(frame: pl.DataFrame, index: int) -> QuoteState:
    """Return row ``index`` of ``frame`` (``_q_ns``, the sides, maybe ``ts_event``) as a state."""
    row = frame.row(index, named=True)
    event = row.get("ts_event")
    return QuoteState(
        ts=int(row[_NS]),
        bid_price=row[BID_PRICE],
        bid_size=row[BID_SIZE],
        ask_price=row[ASK_PRICE],
        ask_size=row[ASK_SIZE],
        ts_event=None if event is None else int(event),
    )


def carry_after(quotes: pl.DataFrame, chunk: Chunk, carry: QuoteCarry | None = None) -> QuoteCarry:
    """Return the outbound carry: the state after the chunk's quotes in ``[start, end)``.

    The last quote, the last valid one and the last non-crossed one among the inbound
    ``carry`` (default ``QuoteCarry.from_state(chunk.quote_state)``) and the chunk's rows. Only
    the tail is read: windows of 64, 4096, … rows from the end until each kind is found.

    Parameters
    ----------
    quotes
        The instrument's quotes sorted by ``ts`` (rows outside ``[start, end)`` are ignored).
    chunk
        The chunk.
    carry
        The inbound carry.

    Returns
    -------
    QuoteCarry
        What the instrument's next chunk carries in (``last`` is its ``QuoteState``).
    """
    inbound = carry if carry is not None else QuoteCarry.from_state(chunk.quote_state)
    quotes = _in_time_order(quotes)
    ns = _as_nanoseconds(quotes.get_column(TS))
    first = int(ns.search_sorted(chunk.start, side="left"))
    stop = int(ns.search_sorted(chunk.end, side="left"))
    own = quotes.slice(first, stop - first)
    extra = ["ts_event"] if "ts_event" in own.columns else []
    frame = own.select(
        ns.slice(first, stop - first).alias(_NS),
        *(pl.col(name).cast(pl.Float64) for name in _BBO),
        *(_as_nanoseconds(own.get_column(name)).alias(name) for name in extra),
    )
    if frame.height == 0:
        return inbound
    last = _quote_at(frame, frame.height - 1)
    found: dict[str, QuoteState] = {}
    window = 64
    while True:
        tail = frame.slice(max(frame.height - window, 0))
        offset = frame.height - tail.height
        sides = [pl.col(name).fill_nan(None) for name in _BBO]
        empty = pl.any_horizontal(side.is_null() for side in sides)
        flags = tail.select(
            (~empty & (sides[0] <= sides[2])).alias("valid"),
            (empty | (sides[0] <= sides[2])).alias("standing"),
        )
        for kind in ("valid", "standing"):
            if kind not in found:
                hits = flags.get_column(kind).arg_true()
                if hits.len():
                    found[kind] = _quote_at(frame, offset + int(hits[-1]))
        if len(found) == 2 or offset == 0:
            break
        window *= 64
    return QuoteCarry(
        last=last,
        valid=found.get("valid", inbound.valid),
        standing=found.get("standing", inbound.standing),
    )
