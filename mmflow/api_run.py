"""The machinery of the one-call API (:mod:`mmflow.api`): arguments, reading, collecting.

:func:`run_call` is every analysis call of the API: it turns the keyword arguments into the
library's option objects, reads the inputs (files or frames) and counts their rows, lets the
call plan its tables (:class:`Plan`), collects them with the cleaning counts and quote checks
as notes, and returns the typed result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import polars as pl

from mmflow.analysis import (
    BarOptions,
    Clock,
    Market,
    Selection,
    Signing,
    market_bars,
    selection_account,
)
from mmflow.errors import NoDataError, ParameterError
from mmflow.io import Limits, Loaded, ReadOptions, RowAccount, load_inputs
from mmflow.io.assemble import account_of, collect, collect_accounts, gather, read_many
from mmflow.metrics.signing import METHODS
from mmflow.render.messages import cleaning_notes, quote_warnings
from mmflow.results import Result
from mmflow.schema import QUOTES, TRADES

__all__ = ["Input", "PathLike", "Plan", "Started", "read_inputs", "run_call"]

PathLike = str | os.PathLike[str]
Input = PathLike | Sequence[PathLike] | pl.DataFrame | pl.LazyFrame
"""Files, folders or globs (one or several), or a canonical trades/quotes frame."""


@dataclass(frozen=True)
class _Inputs:
    """Read inputs: the loaded files, canonical lazy trades and quotes, and what was said."""

    loaded: list[Loaded]
    trades: pl.LazyFrame | None
    quotes: pl.LazyFrame | None
    notes: list[str]


def _paths(value: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [os.fspath(value)]
    return [os.fspath(item) for item in value]


def _lazy(value: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return value.lazy() if isinstance(value, pl.DataFrame) else value


def read_inputs(
    trades: Input, quotes: Input | None, fmt: str, quotes_format: str, options: ReadOptions
) -> _Inputs:
    """Read the trade and quote inputs (files or frames) into canonical lazy frames."""
    loaded: list[Loaded] = []
    notes: list[str] = []
    frames: dict[str, pl.LazyFrame | None] = {"trades": None, "quotes": None}
    for kind, value, name in (("trades", trades, fmt), ("quotes", quotes, quotes_format)):
        if value is None:
            continue
        if isinstance(value, pl.DataFrame | pl.LazyFrame):
            frames[kind] = _lazy(value)
            continue
        inputs = load_inputs(_paths(value), name, options)
        notes += [f"skipped: {inputs.note()}"] if inputs.note() else []
        loaded += inputs.loaded
    notes += [note for item in loaded for note in item.frames.notes]
    loaded = read_many(loaded)
    files_trades, files_quotes = gather(loaded, TRADES), gather(loaded, QUOTES)
    parts = {"trades": files_trades, "quotes": files_quotes}
    for kind, given in frames.items():
        found = parts[kind]
        parts[kind] = (
            given if found is None else found if given is None else pl.concat([found, given])
        )
    return _Inputs(loaded, parts["trades"], parts["quotes"], notes)


def _market(
    trades: Input,
    quotes: Input | None,
    selection: Selection,
    read: _Read,
) -> tuple[_Inputs, RowAccount]:
    """Read the inputs, count rows (stopping on unparseable ones unless skipped)."""
    inputs = read_inputs(trades, quotes, read.fmt, read.quotes_format, read.options)
    if inputs.trades is None:
        msg = "no trades in the inputs (they hold only quotes); pass trade files too"
        raise NoDataError(msg)
    selected = selection_account(inputs.trades, inputs.quotes, selection)
    account = account_of(collect_accounts(inputs.loaded, selected))
    account.raise_for_bad_rows(skip=read.skip_bad_rows)
    inputs.notes.extend(account.warnings())
    return inputs, account


@dataclass(frozen=True)
class _Read:
    fmt: str
    quotes_format: str
    options: ReadOptions
    skip_bad_rows: bool = False


def _settings(
    *,
    bar: str,
    method: str,
    symbols: Sequence[str] | str | None,
    venues: Sequence[str] | str | None,
    start: datetime | None,
    end: datetime | None,
    clock: Clock,
    clean: Literal["taq"] | None,
    fmt: str,
    quotes_format: str,
    tz: str | None,
    skip_bad_rows: bool,
    max_bars: int | None,
) -> tuple[Selection, Signing, BarOptions, _Read]:
    """Build the library's option objects from the keyword arguments of the API."""
    chosen = (symbols,) if isinstance(symbols, str) else tuple(symbols or ())
    places = (venues,) if isinstance(venues, str) else tuple(venues or ())
    selection = Selection(chosen, start, end, clock, clean, None, places)
    if method not in METHODS:
        msg = f"method {method!r} is not one of {', '.join(METHODS)}"
        raise ParameterError(msg)
    signing = Signing(method)
    options = BarOptions(every=bar) if max_bars is None else BarOptions(bar, max_bars=max_bars)
    read_options = ReadOptions(
        symbol=chosen[0] if len(chosen) == 1 else None,
        tz=tz,
        limits=Limits(),
    )
    return selection, signing, options, _Read(fmt, quotes_format, read_options, skip_bad_rows)


def _finish(
    plans: list[pl.LazyFrame],
    inputs: _Inputs,
    dropped: pl.LazyFrame | None,
    checks: pl.LazyFrame | None,
    signing: Signing,
) -> tuple[list[pl.DataFrame], list[str]]:
    """Collect ``plans`` with the cleaning counts and quote checks; return frames and notes."""
    extra = [plan for plan in (dropped, checks) if plan is not None]
    frames = collect([*plans, *extra], inputs.loaded)
    notes = list(inputs.notes)
    if checks is not None:
        notes += quote_warnings(frames.pop(), max_quote_age=signing.max_quote_age)
    if dropped is not None:
        notes += cleaning_notes(frames.pop())
    return frames[: len(plans)], notes


def _require(df: pl.DataFrame) -> None:
    if df.height == 0:
        msg = "no trades to analyse (check the inputs and the symbols/start/end arguments)"
        raise NoDataError(msg)


def _keywords(**given: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "bar": "1m",
        "method": "auto",
        "symbols": None,
        "venues": None,
        "start": None,
        "end": None,
        "clock": "recv",
        "clean": None,
        "fmt": "auto",
        "quotes_format": "auto",
        "tz": None,
        "skip_bad_rows": False,
        "max_bars": None,
    }
    unknown = set(given) - set(defaults)
    if unknown:
        msg = f"unknown arguments: {', '.join(sorted(unknown))} (known: {', '.join(defaults)})"
        raise TypeError(msg)
    return defaults | given


@dataclass(frozen=True)
class Started:
    """A call's option objects, its read inputs and their row account."""

    selection: Selection
    signing: Signing
    options: BarOptions
    inputs: _Inputs
    account: RowAccount

    @property
    def trades(self) -> pl.LazyFrame:
        """The canonical trades (present: :func:`_market` raises without them)."""
        assert self.inputs.trades is not None
        return self.inputs.trades

    def collect(self, plans: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        """Collect ``plans`` (errors name the input files)."""
        return collect(plans, self.inputs.loaded)

    def planned(self) -> dict[str, Any]:
        """Return the option keywords of the bar analyses (``options, signing, selection``)."""
        return {"options": self.options, "signing": self.signing, "selection": self.selection}

    def market(self) -> Market:
        """Return the bar table of the inputs (``mmflow flow`` and ``inventory``)."""
        return market_bars(self.trades, self.inputs.quotes, **self.planned())


@dataclass(frozen=True)
class Plan:
    """What one analysis plans: its tables by result field, and what is collected with them.

    The first table is the one that must not be empty. ``dropped`` (cleaning counts) and
    ``checks`` (quote checks) become notes.
    """

    tables: dict[str, pl.LazyFrame]
    parameters: dict[str, Any]
    dropped: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None


R = TypeVar("R", bound=Result)


def run_call(
    result: type[R],
    trades: Input,
    quotes: Input | None,
    arguments: dict[str, Any],
    plan: Callable[[Started], Plan],
) -> R:
    """Check the keyword arguments, read the inputs, plan, collect: one API call.

    Returns ``result`` with the planned tables collected, the notes and the row account.
    """
    selection, signing, options, how = _settings(**_keywords(**_renamed(arguments)))
    inputs, account = _market(trades, quotes, selection, how)
    started = Started(selection, signing, options, inputs, account)
    made = plan(started)
    frames, notes = _finish(list(made.tables.values()), inputs, made.dropped, made.checks, signing)
    _require(frames[0])
    tables = dict(zip(made.tables, frames, strict=True))
    return result(made.parameters, tuple(notes), account, **tables)


def _renamed(arguments: dict[str, Any]) -> dict[str, Any]:
    """Accept ``format`` (the command line's name) for the reader format."""
    if "format" in arguments:
        arguments = {**arguments, "fmt": arguments["format"]}
        del arguments["format"]
    return arguments
