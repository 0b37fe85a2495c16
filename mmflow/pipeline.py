"""The analyses the commands run, each one lazy plan built from canonical frames.

The command-line layer calls one function here per command and collects the result once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from mmflow.errors import MmflowError, NoDataError, ReaderError
from mmflow.io import Loaded, combine
from mmflow.metrics.classify import SignMethod, sign_trades
from mmflow.metrics.flow import flow_bars, flow_summary
from mmflow.schema import QUOTES, SYMBOL, TRADES, TS, TS_EVENT, TableSchema, require

Clock = Literal["recv", "event"]
"""``recv``: align on ``ts`` (capture/receive time where the source has it); ``event``: on
``ts_event`` (exchange time), falling back to ``ts`` where a row has none."""


@dataclass(frozen=True)
class Selection:
    """Which rows to analyse and on which clock.

    Attributes
    ----------
    symbols
        Keep only these symbols (all when empty).
    start, end
        Keep rows with start ≤ ts < end on the chosen clock (UTC; either may be ``None``).
    clock
        The alignment clock.
    """

    symbols: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    clock: Clock = "recv"


def _utc(value: datetime) -> pl.Expr:
    """Return ``value`` as a UTC literal; a naive datetime is taken to be UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return pl.lit(aware, dtype=pl.Datetime("ns", "UTC"))


def prepare(lf: pl.LazyFrame, table: TableSchema, selection: Selection) -> pl.LazyFrame:
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

    Returns
    -------
    pl.LazyFrame
        The prepared rows.
    """
    require(lf, table, what=f"canonical {table.name}")
    names = lf.collect_schema().names()
    if selection.clock == "event" and TS_EVENT in names:
        lf = lf.with_columns(pl.coalesce(TS_EVENT, TS).alias(TS), pl.col(TS).alias(TS_EVENT))
    if selection.symbols:
        lf = lf.filter(pl.col(SYMBOL).is_in(list(selection.symbols)))
    if selection.start is not None:
        lf = lf.filter(pl.col(TS) >= _utc(selection.start))
    if selection.end is not None:
        lf = lf.filter(pl.col(TS) < _utc(selection.end))
    return lf.sort(TS, maintain_order=True)


def gather(inputs: Sequence[Loaded], table: TableSchema) -> pl.LazyFrame | None:
    """Concatenate the trades (or quotes) of several inputs into one lazy frame."""
    if table is TRADES:
        frames = [i.frames.trades for i in inputs if i.frames.trades is not None]
    else:
        frames = [i.frames.quotes for i in inputs if i.frames.quotes is not None]
    return combine(frames)


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`: lazy tables plus the parameters that produced them.

    Attributes
    ----------
    summary
        One row per symbol.
    bars
        One row per symbol and bar.
    parameters
        Every parameter, for file metadata and reproducibility.
    """

    summary: pl.LazyFrame
    bars: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)


def analyze(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    every: str = "1m",
    method: SignMethod = "auto",
    selection: Selection | None = None,
) -> Analysis:
    """Run the main analysis: sign trades, then summarise flow per symbol and per bar.

    Parameters
    ----------
    trades
        Canonical trades (any order; several files may be concatenated).
    quotes
        Canonical quotes, validated and prepared for the quote-based metrics.
    every
        Bar length (polars duration string).
    method
        Trade-signing method (see :func:`mmflow.metrics.classify.sign_trades`).
    selection
        Symbols, time window and clock.

    Returns
    -------
    Analysis
        Lazy summary and bar tables; nothing is read until they are collected.
    """
    selection = selection or Selection()
    signed = sign_trades(prepare(trades, TRADES, selection), method=method)
    if quotes is not None:
        prepare(quotes, QUOTES, selection)
    parameters = {
        "bar": every,
        "method": method,
        "clock": selection.clock,
        "symbols": list(selection.symbols),
        "start": selection.start.isoformat() if selection.start else None,
        "end": selection.end.isoformat() if selection.end else None,
    }
    return Analysis(flow_summary(signed), flow_bars(signed, every=every), parameters)


def require_rows(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Raise :class:`NoDataError` when a collected result is empty."""
    if df.height == 0:
        msg = f"no {what} to analyse (check the inputs and the --symbol/--start/--end filters)"
        raise NoDataError(msg)
    return df


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def collect(plans: Sequence[pl.LazyFrame], inputs: Sequence[Loaded]) -> list[pl.DataFrame]:
    """Collect lazy results together (one run over the inputs), naming the file that failed.

    When collection fails (a truncated gzip, a value that does not parse), each input is read
    on its own to find the culprit, so the error names the file instead of only the symptom.

    Raises
    ------
    ReaderError
        Naming the input that cannot be read.
    MmflowError
        When the failure is not tied to one input.
    """
    try:
        return pl.collect_all(list(plans))
    except MmflowError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        for item in inputs:
            for frame in (item.frames.trades, item.frames.quotes):
                if frame is None:
                    continue
                try:
                    frame.select(pl.len()).collect()
                except (pl.exceptions.PolarsError, OSError) as inner:
                    msg = (
                        f"cannot read the file to the end ({_first_line(inner)}); "
                        "is it truncated, corrupt, or not in the format detected "
                        f"({item.format.name})?"
                    )
                    raise ReaderError(msg, path=item.source.display) from exc
        raise MmflowError(_first_line(exc)) from exc
