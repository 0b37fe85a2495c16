"""Volume profile (``mmflow profile``): volume at price, value area and footprint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mmflow.analysis.options import (
    Selection,
    Signing,
    check_durations,
    default_max_rows,
    parameters_of,
)
from mmflow.analysis.prepare import instrument_columns, prepare_market
from mmflow.durations import check_duration
from mmflow.metrics.profile import ValueAreaMethod, footprint, value_area, volume_profile
from mmflow.schema import SYMBOL, TS, VENUE, instrument_keys

__all__ = [
    "Profile",
    "profile",
]


@dataclass(frozen=True)
class Profile:
    """The result of :func:`profile`.

    Attributes
    ----------
    levels
        ``[by…,] price_level, volume, buy_volume, sell_volume, delta, trades``.
    value_areas
        ``[by…,] poc, value_area_low, value_area_high, value_area_volume, total_volume``.
    footprint
        With a bar length: per bar and level, bid/ask volume, delta and imbalances.
    parameters
        Every parameter.
    """

    levels: pl.LazyFrame
    value_areas: pl.LazyFrame
    footprint: pl.LazyFrame | None
    parameters: dict[str, Any] = field(default_factory=dict)


def profile(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    bin_size: float | None = None,
    by: Sequence[str] = (SYMBOL,),
    share: float = 0.7,
    method: ValueAreaMethod = "two-row",
    every: str | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    max_levels: int | None = None,
    chunked: bool = True,
    memory_limit: int | None = None,
) -> Profile:
    """Volume at price with point of control and value area, and optionally a footprint.

    ``by`` may include ``session`` (with a session selection) or ``date`` (the UTC date) to get
    one profile per symbol and session or day; profiles are per instrument (``venue`` is added
    before ``symbol``). ``max_levels`` bounds the rows of the profile (and of the footprint),
    default :func:`default_max_rows`; a smaller bin makes more rows.

    With ``chunked`` (default) the trades are signed chunk by chunk on the engine
    (:mod:`mmflow.engine.profile`: census, chunks of at most ``memory_limit`` bytes, one level
    table per chunk) and the profile, value area and footprint are made from the level table;
    ``chunked=False`` signs the whole input in one plan (the reference the engine is tested
    against; also used for ``reverse-tick``, which looks past a chunk's end, and ``bvc``,
    which does not sign single trades). The results are the same.
    """
    selection = selection or Selection()
    signing = signing or Signing()
    check_durations(signing=signing)
    if every is not None:
        check_duration(every, what="bar length (every)")
    limit = default_max_rows() if max_levels is None else max_levels
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection)
    if SYMBOL in by and VENUE not in by and VENUE in prepared.collect_schema().names():
        position = list(by).index(SYMBOL)
        by = [*by[:position], VENUE, *by[position:]]
    parameters = parameters_of(
        selection, signing, bin_size=bin_size, by=list(by), share=share, value_area=method
    )
    counts: str | None = None
    signed: pl.LazyFrame | None = None
    if chunked and signing.method not in ("reverse-tick", "bvc"):
        from mmflow.engine.chunks import default_memory_limit
        from mmflow.engine.profile import profile_levels

        # Input order: the engine checks each chunk's order instead of sorting everything.
        unordered, unordered_quotes, _ = prepare_market(trades, quotes, selection, ordered=False)
        memory = default_memory_limit() if memory_limit is None else memory_limit
        computed = profile_levels(
            unordered,
            unordered_quotes,
            keys=instrument_keys(unordered),
            signing=signing,
            every=every,
            by_date="date" in by,
            memory_limit=memory,
        )
        if computed is not None:
            table, chunks = computed
            signed, counts = table.lazy(), "trades"
            parameters = {**parameters, "memory_limit": memory, "chunks": chunks}
    if signed is None:
        signed = signing.sign(prepared, prepared_quotes)
        if "date" in by:
            signed = signed.with_columns(pl.col(TS).dt.date().alias("date"))
    levels = volume_profile(
        signed, bin_size=bin_size, by=tuple(by), max_levels=limit, trade_counts=counts
    )
    areas = value_area(levels, share=share, by=tuple(by), method=method)
    prints = (
        footprint(signed, every=every, bin_size=bin_size, max_levels=limit, trade_counts=counts)
        if every
        else None
    )
    return Profile(
        instrument_columns(levels),
        instrument_columns(areas),
        instrument_columns(prints) if prints is not None else None,
        parameters,
    )
