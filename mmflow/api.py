"""One-call Python API: read files and run an analysis in one function call.

Every function takes file paths (files, folders, globs; any format ``mmflow`` reads) or canonical
polars frames, reads them, runs one analysis and returns collected polars frames in a small
typed result. The command line runs the same library functions.

Examples
--------
>>> import mmflow
>>> result = mmflow.analyze(
...     "sample_data/simulated/trades.parquet",
...     quotes="sample_data/simulated/quotes.parquet",
...     bar="1m",
... )
>>> result.summary.select("symbol", "trades", "liquidity_state").rows()
[('SIMA', 25001, 'providing')]
>>> result.bars.height
360
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl

from mmflow.analysis import (
    FLOW_COLUMNS,
    INVENTORY_COLUMNS,
    BarOptions,
    Clock,
    Selection,
    Signing,
    bar_table,
    inventory_report,
    market_bars,
    selection_account,
)
from mmflow.analysis import analyze as analyze_plan
from mmflow.analysis import classify as classify_plan
from mmflow.analysis import phases as phases_plan
from mmflow.analysis import profile as profile_plan
from mmflow.errors import NoDataError, ParameterError
from mmflow.io import Limits, Loaded, ReadOptions, RowAccount, load_inputs
from mmflow.io.assemble import account_of, collect, collect_accounts, gather, read_many
from mmflow.metrics.profile import ValueAreaMethod
from mmflow.metrics.signing import METHODS
from mmflow.render.messages import cleaning_notes, quote_warnings, signing_warnings
from mmflow.results import (
    Analysis,
    Classification,
    Data,
    Flow,
    Inventory,
    Phases,
    Profile,
    Result,
)
from mmflow.schema import QUOTES, TRADES

__all__ = [
    "Analysis",
    "Classification",
    "Data",
    "Flow",
    "Inventory",
    "Phases",
    "Profile",
    "Result",
    "analyze",
    "classify",
    "flow",
    "inventory",
    "phases",
    "profile",
    "read",
]

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


def _read(
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
    inputs = _read(trades, quotes, read.fmt, read.quotes_format, read.options)
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


_MARKER = """    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`)."""
_COMMON_DOC = """
    trades
        Trade files, folders or globs (any format ``mmflow`` reads; a folder may hold quotes
        too), or a canonical trades frame.
    quotes
        Quote files or a canonical quotes frame (signing, OFI, spreads, liquidity), or ``None``.
    bar
        Bar length as a polars duration (``"1s"``, ``"5m"``, ``"1h"``).
    method
        Trade signing: ``auto`` (vendor side, else Lee-Ready, else tick), ``vendor``, ``tick``,
        ``reverse-tick``, ``quote``, ``lee-ready``, ``emo``, ``clnv``, ``depth`` or ``bvc``.
    symbols, venues
        Keep only these symbols / venues (``None``: all).
    start, end
        Keep trades and quotes in ``[start, end)`` (timezone-aware datetimes).
"""


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


def _start(
    trades: Input, quotes: Input | None, arguments: dict[str, Any]
) -> tuple[Selection, Signing, BarOptions, _Inputs, RowAccount, pl.LazyFrame]:
    """Check the keyword arguments, read the inputs and count their rows.

    Returns the option objects, the read inputs, the row account and the canonical trades.
    """
    selection, signing, options, how = _settings(**_keywords(**_renamed(arguments)))
    inputs, account = _market(trades, quotes, selection, how)
    assert inputs.trades is not None  # _market raises NoDataError otherwise
    return selection, signing, options, inputs, account, inputs.trades


def read(
    trades: Input,
    quotes: Input | None = None,
    *,
    format: str = "auto",
    quotes_format: str = "auto",
    tz: str | None = None,
    skip_bad_rows: bool = False,
) -> Data:
    """Read trade and quote files into canonical polars frames.

    Parameters
    ----------
    trades
        Files, folders or globs (a folder may hold both trades and quotes).
    quotes
        Further quote files, or ``None``.
    format, quotes_format
        A reader name (``mmflow formats``) or ``auto`` (detected per file).
    tz
        Time zone of local times in formats that do not document theirs.
    skip_bad_rows
        Drop and count rows that do not parse instead of raising.

    Returns
    -------
    Data
        ``trades`` and ``quotes`` (``None`` when the inputs hold none) in the canonical schema.

    Examples
    --------
    >>> import mmflow
    >>> data = mmflow.read("sample_data/binance/")
    >>> data.trades.columns[:4], data.quotes.height > 0
    (['ts', 'ts_event', 'symbol', 'venue'], True)
    """
    inputs = _read(trades, quotes, format, quotes_format, ReadOptions(tz=tz))
    account_of(collect_accounts(inputs.loaded)).raise_for_bad_rows(skip=skip_bad_rows)
    plans = [plan for plan in (inputs.trades, inputs.quotes) if plan is not None]
    frames = iter(collect(plans, inputs.loaded))
    return Data(
        warnings=tuple(inputs.notes),
        trades=next(frames) if inputs.trades is not None else None,
        quotes=next(frames) if inputs.quotes is not None else None,
    )


def analyze(trades: Input, quotes: Input | None = None, **arguments: Any) -> Analysis:
    """Sign trades, build bars and summarise flow, OFI, inventory and phases per instrument.

    What ``mmflow analyze`` computes, returned as polars frames.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        Also ``clock`` (``recv``/``event``), ``clean`` (``"taq"``), ``format``, ``tz``,
        ``skip_bad_rows``, ``max_bars``.

    Returns
    -------
    Analysis
        ``summary`` (one row per instrument), ``bars`` (every metric per bar), ``mix`` (how
        trades were signed), ``warnings``, ``parameters`` and the row ``account``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.analyze(
    ...     "sample_data/simulated/trades.parquet",
    ...     quotes="sample_data/simulated/quotes.parquet",
    ...     bar="1m",
    ... )
    >>> result.bars.height, result.summary["phase"].to_list()
    (360, ['neutral'])
    >>> result.summary["last_episode"].to_list()
    ['distribution']
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)

    def materialize(plans: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        return collect(plans, inputs.loaded)

    plan = analyze_plan(
        frame,
        inputs.quotes,
        options=options,
        signing=signing,
        selection=selection,
        materialize=materialize,
    )
    (summary, bars, mix), notes = _finish(
        [plan.summary, plan.bars, plan.mix], inputs, plan.dropped, plan.checks, signing
    )
    _require(summary)
    return Analysis(plan.parameters, tuple(notes), account, summary, bars, mix)


def _renamed(arguments: dict[str, Any]) -> dict[str, Any]:
    """Accept ``format`` (the command line's name) for the reader format."""
    if "format" in arguments:
        arguments = {**arguments, "fmt": arguments["format"]}
        del arguments["format"]
    return arguments


def flow(trades: Input, quotes: Input | None = None, **arguments: Any) -> Flow:
    """Order flow per instrument and bar: what ``mmflow flow`` computes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Flow
        ``bars``: volume split, net flow, CVD, OFI, VPIN, impact and costs per bar.

    Examples
    --------
    >>> import mmflow
    >>> bars = mmflow.flow("sample_data/simulated/trades.parquet", bar="1h").bars
    >>> bars.select("ts", "volume").head(2).rows()[0][0].isoformat()
    '2024-01-02T00:00:00+00:00'
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)
    market = market_bars(
        frame, inputs.quotes, options=options, signing=signing, selection=selection
    )
    (bars,), notes = _finish(
        [bar_table(market, FLOW_COLUMNS)], inputs, market.dropped, market.checks, signing
    )
    _require(bars)
    return Flow(market.parameters, tuple(notes), account, bars)


def inventory(trades: Input, quotes: Input | None = None, **arguments: Any) -> Inventory:
    """Market-maker inventory per bar, its summary and liquidity-withdrawal episodes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Inventory
        ``bars``, ``summary`` (one row per instrument) and withdrawal ``episodes``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.inventory(
    ...     "sample_data/simulated/trades.parquet", quotes="sample_data/simulated/quotes.parquet"
    ... )
    >>> result.summary["liquidity_state"].to_list()
    ['providing']
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)
    market = market_bars(
        frame, inputs.quotes, options=options, signing=signing, selection=selection
    )
    summary, episodes = inventory_report(market, options)
    (bars, summary_frame, episodes_frame), notes = _finish(
        [bar_table(market, INVENTORY_COLUMNS), summary, episodes],
        inputs,
        market.dropped,
        market.checks,
        signing,
    )
    _require(bars)
    return Inventory(market.parameters, tuple(notes), account, bars, summary_frame, episodes_frame)


def phases(trades: Input, quotes: Input | None = None, **arguments: Any) -> Phases:
    """Label accumulation and distribution per bar (causally) and list the episodes.

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Phases
        ``bars`` (phase, inventory side, distribution score per bar), ``episodes`` and the
        event ``study`` of returns after distribution episodes.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.phases(
    ...     "sample_data/simulated/trades.parquet", quotes="sample_data/simulated/quotes.parquet"
    ... )
    >>> sorted(result.episodes["phase"].unique().to_list())
    ['accumulation', 'distribution']
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)
    plan = phases_plan(
        frame,
        inputs.quotes,
        options=options,
        signing=signing,
        selection=selection,
        materialize=lambda plans: collect(plans, inputs.loaded),
    )
    (bars, episodes, study), notes = _finish(
        [plan.bars, plan.episodes, plan.study], inputs, None, None, signing
    )
    _require(bars)
    return Phases(plan.parameters, tuple(notes), account, bars, episodes, study)


def profile(
    trades: Input,
    quotes: Input | None = None,
    *,
    bin_size: float | None = None,
    share: float = 0.7,
    value_area: ValueAreaMethod = "two-row",
    footprint: bool = False,
    **arguments: Any,
) -> Profile:
    """Volume at price, point of control and value area per instrument (``mmflow profile``).

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    bin_size
        Price bin width (``None``: the instrument's tick, from its prices).
    share
        Share of volume in the value area.
    value_area
        ``two-row`` (CBOT) or ``one-row`` expansion from the point of control.
    footprint
        Also compute the per-bar footprint (bid/ask volume per bar and level).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Profile
        ``levels``, ``value_areas`` (``poc, value_area_low, value_area_high, …``) and, when
        asked, ``footprint``.

    Examples
    --------
    >>> import mmflow
    >>> areas = mmflow.profile("sample_data/simulated/trades.parquet").value_areas
    >>> row = areas.row(0, named=True)
    >>> row["value_area_low"] <= row["poc"] <= row["value_area_high"]
    True
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)
    plan = profile_plan(
        frame,
        inputs.quotes,
        bin_size=bin_size,
        share=share,
        method=value_area,
        every=options.every if footprint else None,
        signing=signing,
        selection=selection,
        max_levels=options.max_bars,
    )
    plans = [plan.levels, plan.value_areas]
    plans += [plan.footprint] if plan.footprint is not None else []
    frames, notes = _finish(plans, inputs, None, None, signing)
    _require(frames[0])
    prints = frames[2] if len(frames) > 2 else None
    return Profile(plan.parameters, tuple(notes), account, frames[0], frames[1], prints)


def classify(trades: Input, quotes: Input | None = None, **arguments: Any) -> Classification:
    """Sign every trade and count how each was signed (``mmflow classify``).

    Parameters
    ----------
    trades, quotes, bar, method, symbols, venues, start, end
        The common arguments (see :func:`analyze`).
    **arguments
        As for :func:`analyze`.

    Returns
    -------
    Classification
        ``trades`` (each with ``trade_sign`` and ``sign_method``; per bar for ``bvc``), the
        method ``mix`` and per-instrument ``diagnostics``; signing problems in ``warnings``.

    Examples
    --------
    >>> import mmflow
    >>> result = mmflow.classify("sample_data/simulated/trades.parquet", method="tick")
    >>> result.trades["trade_sign"].is_in([-1, 0, 1]).all()
    True
    """
    selection, signing, options, inputs, account, frame = _start(trades, quotes, arguments)
    plan = classify_plan(
        frame,
        inputs.quotes,
        signing=signing,
        every=options.every,
        selection=selection,
        max_bars=options.max_bars,
    )
    (signed, mix, diagnostics), notes = _finish(
        [plan.trades, plan.mix, plan.diagnostics], inputs, plan.dropped, plan.checks, signing
    )
    _require(signed)
    notes += signing_warnings(diagnostics)
    return Classification(plan.parameters, tuple(notes), account, signed, mix, diagnostics)


for _function in (analyze, flow, inventory, phases, profile, classify):
    if _function.__doc__:
        _function.__doc__ = _function.__doc__.replace(_MARKER, _COMMON_DOC.strip("\n"))
