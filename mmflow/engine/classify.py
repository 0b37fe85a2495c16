"""``classify`` chunk by chunk: sign each chunk's trades with the engine's carried state.

``classify`` writes one row per trade, so the engine's per-bar tables do not fit it; instead
:func:`classified_chunks` runs the census and the chunk plan (:func:`mmflow.engine.profile.
planned_tasks`), then signs one chunk at a time exactly as the market pass does
(:func:`mmflow.engine.trades.sign_chunk`: the inbound tick state and the last quote from the
census) and yields each chunk's signed trades, in the columns of
:func:`mmflow.analysis.signing.classify`. Peak memory is set by the chunk. Rows come in
instrument order, then time order (the single plan's output is in time order across
instruments).

Not yet wired into ``mmflow classify`` (which still signs in one plan).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import polars as pl

from mmflow.analysis.options import BarOptions, Signing
from mmflow.engine.executors import run_tasks
from mmflow.engine.profile import LEVEL_BAR, chunk_rows, planned_tasks
from mmflow.engine.run import make_settings
from mmflow.engine.state import ChunkTask
from mmflow.engine.trades import sign_chunk
from mmflow.metrics.signing import QUOTE_METHODS
from mmflow.schema import (
    AGGRESSOR_SIDE,
    MID_PRICE,
    PRICE,
    SESSION,
    SIGN_METHOD,
    SIZE,
    SPREAD,
    TRADE_SIGN,
    TS,
)

__all__ = ["classified_chunks", "classify_chunk"]


def classify_chunk(task: ChunkTask) -> pl.DataFrame:
    """Return one chunk's signed trades (pure: a function of ``task`` alone).

    Columns as :func:`mmflow.analysis.signing.classify`'s ``trades``: ``ts``, the instrument,
    ``price, size, aggressor_side, trade_sign, sign_method`` and, with quotes,
    ``mid_price, spread``; rows in time order.
    """
    chunk, settings = task.chunk, task.settings
    trades, quotes = chunk_rows(task)
    has_quotes = quotes is not None and settings.has_quotes
    signed = sign_chunk(
        trades.lazy(), quotes.lazy() if has_quotes and quotes is not None else None, chunk, settings
    )
    names = signed.collect_schema().names()
    columns = [TS, *settings.keys, PRICE, SIZE, AGGRESSOR_SIDE, TRADE_SIGN, SIGN_METHOD]
    # The single plan attaches quotes only for methods that read them (the engine attaches
    # them always, for trade costs), so the quote columns are kept only then.
    if settings.signing.method in (*QUOTE_METHODS, "auto"):
        columns += [c for c in (MID_PRICE, SPREAD) if c in names]
    return signed.select(columns).collect()


def classified_chunks(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    *,
    keys: Sequence[str],
    signing: Signing,
    memory_limit: int,
    in_memory: bool | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the signed trades chunk by chunk (instrument order, then time order).

    Parameters
    ----------
    trades, quotes
        Prepared canonical trades and quotes (any row order; the same instrument columns).
    keys
        The instrument columns.
    signing
        How trades are signed (a per-trade method: not ``reverse-tick``, which looks past a
        chunk's end, nor ``bvc``).
    memory_limit
        Bytes one chunk may use (sizes the chunks).
    in_memory
        Read the inputs once and split them by instrument (default: when they fit).
    """
    names = trades.lazy().collect_schema().names()
    options = BarOptions(every=LEVEL_BAR, horizon="0s", max_bars=None, memory_limit=memory_limit)
    settings = make_settings(
        options,
        signing,
        keys=keys,
        session=SESSION in names,
        has_quotes=quotes is not None,
        memory_limit=memory_limit,
    )
    with planned_tasks(trades, quotes, settings, in_memory=in_memory) as tasks:
        yield from run_tasks(classify_chunk, tasks)
