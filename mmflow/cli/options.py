"""The shared option groups of ``mmflow``: input, quotes, selection, signing, alerts, output.

Each group builds one typed value (:class:`Inputs`, :class:`QuoteFiles`,
:class:`~mmflow.analysis.Selection`, :class:`~mmflow.analysis.Signing`, :class:`AlertOptions`,
:class:`Output`) that the command receives instead of the raw flags.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from mmflow.analysis import MAX_QUOTE_AGE, Clock, Selection, Session, Signing
from mmflow.cli.command import (
    QUIET_HELP,
    F,
    choice_of,
    defaulted,
    one_line,
    option_group,
    quiet_option,
    set_verbose,
    without,
)
from mmflow.cli.types import (
    Duration,
    OptionalDuration,
    SessionWindow,
    Timestamp,
    parse_alerts,
    parse_map,
)
from mmflow.durations import NANOSECONDS
from mmflow.errors import ParameterError
from mmflow.io import Limits, ReadOptions, format_names
from mmflow.metrics.bvc import Distribution
from mmflow.metrics.quotes import QuoteMatch
from mmflow.metrics.signing import METHODS
from mmflow.render.write import (
    OUTPUT_FORMATS,
    OutputFormat,
    check_output_directory,
    check_output_file,
    check_stream,
)

__all__ = [
    "INPUT_OPTIONS",
    "QUIET_HELP",
    "AlertOptions",
    "Inputs",
    "Output",
    "OutputLocationError",
    "QuoteFiles",
    "alert_options",
    "checked",
    "input_options",
    "input_options_without",
    "output_folder_option",
    "output_options",
    "quiet_option",
    "quote_options",
    "selection_options",
    "set_verbose",
    "signing_options",
    "signing_options_without",
]


@dataclass(frozen=True)
class Inputs:
    """How to find and read the input files (the Input options).

    Attributes
    ----------
    fmt
        Input format name, or ``auto``.
    read
        Reader options (column map, symbol for files without one, date, zone, limits).
    exclude
        Globs of folder entries to leave out.
    strict
        Stop when a folder entry is skipped.
    skip_bad_rows
        Drop and count unparseable rows instead of stopping.
    tz
        Time zone of local times (and of plot's time axis); ``None`` for UTC.
    """

    fmt: str
    read: ReadOptions
    exclude: tuple[str, ...] = ()
    strict: bool = False
    skip_bad_rows: bool = False
    tz: str | None = None


def _check_zone(zone: str, flag: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"{flag} {zone!r} is not a time zone name like America/New_York"
        raise click.BadParameter(msg) from None


def _inputs(values: Mapping[str, Any]) -> Inputs:
    symbols: tuple[str, ...] = values["symbols"]
    trading_date: datetime | None = values.get("trading_date")
    if values.get("tz"):
        _check_zone(values["tz"], "--tz")
    limits = Limits(values["valid_from"], values.get("valid_until"))
    start, end = limits.bounds()
    if start >= end:
        msg = f"--valid-from must be before --valid-until (the range is {limits.describe()})"
        raise click.BadParameter(msg)
    read = ReadOptions(
        symbol=symbols[0] if len(symbols) == 1 else None,
        column_map=values["column_map"],
        date=trading_date.date() if trading_date else None,
        tz=values.get("tz"),
        round_lot=values.get("round_lot"),
        limits=limits,
    )
    return Inputs(
        values["fmt"],
        read,
        tuple(values["exclude"]),
        values["strict"],
        values.get("skip_bad_rows", False),
        values.get("tz"),
    )


INPUT_OPTIONS: list[Callable[[Any], Any]] = [
    defaulted(
        "--format",
        "fmt",
        kind=click.Choice(["auto", *format_names()]),
        default="auto",
        text="Input format, auto-detected from magic bytes, file name and header; one of "
        + ", ".join(format_names())
        + ".",
        metavar="NAME",
    ),
    click.option(
        "--map",
        "column_map",
        multiple=True,
        callback=parse_map,
        metavar="CANONICAL=COLUMN,...",
        help="Read any CSV by naming its columns, e.g. --map ts=time,price=px,size=qty "
        "(default: the layout is detected).",
    ),
    click.option(
        "--symbol",
        "symbols",
        multiple=True,
        help="Keep only this symbol (repeatable); also names files that carry no symbol "
        "(default: every symbol).",
    ),
    click.option(
        "--venue",
        "venues",
        multiple=True,
        help="Keep only this venue (repeatable), e.g. binance-um; an instrument is "
        "(venue, symbol) (default: every venue).",
    ),
    click.option(
        "--date",
        "trading_date",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="Trading day, YYYY-MM-DD, for files that carry it only in their name (LOBSTER; "
        "default: from the file name).",
    ),
    click.option(
        "--tz",
        help="Time zone of local times in files that do not state it (Sierra exports; "
        "default UTC), e.g. America/Chicago; screens show times and plot draws its time axis "
        "in it.",
    ),
    click.option(
        "--round-lot",
        type=click.IntRange(min=1),
        help="Shares per round lot for quote sizes given in lots (TAQ, Polygon; default 100).",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="GLOB",
        help="Leave out files a folder search finds whose name or relative path matches "
        "(repeatable), e.g. --exclude '*.zip' --exclude 'old/*' (default: none).",
    ),
    click.option(
        "--strict",
        is_flag=True,
        help="Stop with an error when a folder entry is skipped (empty, no known layout, "
        "unreadable), for cron jobs.",
    ),
    click.option(
        "--skip-bad-rows",
        is_flag=True,
        help="Drop and count rows that do not parse instead of stopping at the first one.",
    ),
    defaulted(
        "--valid-from",
        kind=Timestamp(),
        default="1990-01-01",
        text="Earliest plausible timestamp; earlier rows are dropped and counted.",
    ),
    click.option(
        "--valid-until",
        type=Timestamp(),
        help="Plausible timestamps are before this (default: the end of tomorrow, UTC); "
        "later rows are dropped and counted.",
    ),
    click.option(
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=set_verbose,
        help="Show the row account (read = used + dropped) and full tracebacks on errors.",
    ),
    quiet_option,
]
"""The Input options (:func:`input_options`), in ``--help`` order."""


def input_options(func: F) -> F:
    """Options every command that reads market data shares; the command gets ``inputs``."""
    return input_options_without()(func)


def input_options_without(*unused: str) -> Callable[[F], F]:
    """Return the Input group without the options (parameter names) a command does not use."""
    return option_group("Input", without(INPUT_OPTIONS, unused), "inputs", _inputs)


def selection_options(func: F) -> F:
    """Options that choose rows and the clock; the command gets ``selection``.

    The selection also takes --symbol and --venue from :func:`input_options`.
    """
    decorators = [
        click.option(
            "--session",
            type=SessionWindow(),
            help="Keep only this daily session, e.g. 09:30-16:00 (overnight: 17:00-16:00); "
            "tick-rule state, bars and cumulative series restart each session (default: all day).",
        ),
        click.option(
            "--session-tz",
            default="UTC",
            show_default=True,
            help="Time zone of --session, e.g. America/New_York (daylight saving handled).",
        ),
        click.option(
            "--clean",
            type=click.Choice(["taq"]),
            help="Apply the standard TAQ cleaning (Barndorff-Nielsen et al. 2009); the rows each "
            "rule drops are reported (default: no cleaning).",
        ),
        click.option(
            "--start",
            type=Timestamp(),
            help="Keep rows at or after this ISO-8601 time (UTC unless it has a zone; default: "
            "from the first row).",
        ),
        click.option(
            "--end",
            type=Timestamp(),
            help="Keep rows before this ISO-8601 time (UTC unless it has a zone; default: to "
            "the last row).",
        ),
        defaulted(
            "--clock",
            kind=click.Choice(["recv", "event"]),
            default="recv",
            text="Align on receive/capture time (recv) or exchange time (event).",
        ),
    ]
    return option_group("Selection", decorators, "selection", _selection)(func)


class OutputLocationError(click.ClickException):
    """An output location that cannot be written: one ``Error:`` line naming it, exit code 2."""

    exit_code = 2


def checked(
    check: Callable[[Any], object],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Return a click callback that runs ``check`` on a given value while options are parsed."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if param.name == "output" and ctx.meta.get("mmflow.incremental"):
            return value  # analyze --incremental: -o names the results folder (checked there)
        if value is not None:
            try:
                check(value)
            except ParameterError as exc:
                raise OutputLocationError(one_line(exc)) from None
        return value

    return callback


@dataclass(frozen=True)
class Output:
    """Where a command's table goes (the Output options): a file, standard output, or screen.

    Attributes
    ----------
    path
        ``-o``: the file to write atomically, format from its suffix.
    to_format
        ``--to``: write to standard output in this format.
    """

    path: Path | None = None
    to_format: OutputFormat | None = None

    @property
    def to_screen(self) -> bool:
        """Whether the table is printed for people (neither -o nor --to)."""
        return self.path is None and self.to_format is None


def _output(values: Mapping[str, Any]) -> Output:
    return Output(values.get("output"), values.get("to_format"))


def output_folder_option(text: str) -> Callable[[F], F]:
    """Return ``-o/--output DIR``, a folder to write (checked while the options are parsed)."""
    return click.option(
        "-o",
        "--output",
        "directory",
        required=True,
        type=click.Path(path_type=Path),
        callback=checked(check_output_directory),
        metavar="DIR",
        help=text,
    )


def output_options(func: F) -> F:
    """Options every command that produces a table shares; the command gets ``output``.

    Both are checked while the options are parsed, before any input is read: ``-o`` must name a
    file with a known suffix in an existing folder mmflow can write in, and ``--to parquet`` or
    ``--to arrow`` must not go to a terminal (exit 2 otherwise).
    """
    decorators = [
        click.option(
            "-o",
            "--output",
            type=click.Path(path_type=Path),
            callback=checked(check_output_file),
            metavar="FILE",
            help="Write the table to this file (.parquet, .csv, .ndjson, .json, .arrow), "
            "atomically (default: print the table).",
        ),
        click.option(
            "--to",
            "to_format",
            type=click.Choice(OUTPUT_FORMATS),
            callback=checked(lambda fmt: check_stream(fmt, sys.stdout)),
            help="Write the table to standard output in this format instead of printing it "
            "(default: print it).",
        ),
    ]
    return option_group("Output", decorators, "output", _output)(func)


@dataclass(frozen=True)
class QuoteFiles:
    """Quote files named with --quotes, and their format.

    Attributes
    ----------
    files
        Paths, globs or folders (empty: quotes come only from the positional inputs).
    fmt
        Their format name, or ``auto``.
    """

    files: tuple[str, ...] = ()
    fmt: str = "auto"


def _quote_files(values: Mapping[str, Any]) -> QuoteFiles:
    return QuoteFiles(tuple(values["quote_files"]), values["quotes_format"])


def quote_options(func: F) -> F:
    """Options for quote files given separately from the trades; the command gets ``quotes``."""
    decorators = [
        click.option(
            "--quotes",
            "quote_files",
            multiple=True,
            metavar="PATH",
            help="Quote files (repeatable; quote a glob to let mmflow expand it). Quote files "
            "among the positional inputs are recognised too (default: none).",
        ),
        defaulted(
            "--quotes-format",
            kind=click.Choice(["auto", *format_names()]),
            default="auto",
            text="Format of the --quotes files (a --format name).",
            metavar="NAME",
        ),
    ]
    return option_group("Input", decorators, "quotes", _quote_files)(func)


def signing_options(func: F) -> F:
    """Options that choose how trades are signed; the command gets ``signing``."""
    return signing_options_without()(func)


def signing_options_without(*unused: str) -> Callable[[F], F]:
    """Return the Signing group without the options (parameter names) a command does not use."""
    decorators = [
        defaulted(
            "--method",
            kind=click.Choice(METHODS),
            default="auto",
            text="Trade signing: auto = vendor side where known, else Lee-Ready with quotes, "
            "else the tick rule.",
        ),
        defaulted(
            "--quote-match",
            kind=click.Choice(["strict", "at-or-before"]),
            default="strict",
            text="Match each trade to the latest quote strictly before it, or at or before it.",
        ),
        defaulted(
            "--quote-lag",
            kind=Duration(minimum=0, maximum=NANOSECONDS["d"]),
            default="0s",
            text="Use quotes at least this much older than the trade (e.g. 100ms).",
        ),
        defaulted(
            "--max-quote-age",
            kind=OptionalDuration(),
            default=MAX_QUOTE_AGE,
            text="A quote older than this counts as missing for signing, spreads, depth and "
            "trade costs ('none': no limit).",
        ),
        defaulted(
            "--bvc-distribution",
            kind=click.Choice(["normal", "student-t"]),
            default="normal",
            text="Bulk volume classification: distribution of standardised price changes.",
        ),
        click.option(
            "--bvc-dof",
            type=click.FloatRange(min=0, min_open=True),
            help="Student-t degrees of freedom for bvc (default: estimated from the data).",
        ),
    ]
    return option_group("Signing", without(decorators, unused), "signing", _signing)


def _selection(values: Mapping[str, Any]) -> Selection:
    clock: Clock = choice_of(values["clock"], ("recv", "event"), "recv")
    clean: Literal["taq"] | None = "taq" if values.get("clean") == "taq" else None
    session = None
    if values.get("session"):
        zone = values["session_tz"]
        _check_zone(zone, "--session-tz")
        first, last = values["session"]
        session = Session(first, last, tz=zone)
    return Selection(
        tuple(values.get("symbols") or ()),
        values["start"],
        values["end"],
        clock,
        clean,
        session,
        tuple(values.get("venues") or ()),
    )


def _signing(values: Mapping[str, Any]) -> Signing:
    match: QuoteMatch = choice_of(values["quote_match"], ("strict", "at-or-before"), "strict")
    distribution: Distribution = choice_of(
        values.get("bvc_distribution"), ("normal", "student-t"), "normal"
    )
    if values.get("bvc_dof") is not None and distribution == "normal":
        msg = "--bvc-dof applies to --bvc-distribution student-t only"
        raise click.BadParameter(msg)
    return Signing(
        values["method"],
        match,
        values["quote_lag"],
        distribution,
        values.get("bvc_dof"),
        values.get("max_quote_age"),
    )


@dataclass(frozen=True)
class AlertOptions:
    """The Alerts options: conditions (syntax checked), look-back window, NDJSON target.

    Attributes
    ----------
    conditions
        ``--alert`` texts, bound to the bar table's columns when it is known.
    window
        ``--alert-window``: look at bars this close to the latest one.
    target
        ``--alert-to``: also write the alerts here.
    """

    conditions: tuple[str, ...] = ()
    window: str | None = None
    target: Path | None = None


def _alerts(values: Mapping[str, Any]) -> AlertOptions:
    return AlertOptions(tuple(values["alerts"]), values.get("alert_window"), values.get("alert_to"))


def alert_options(func: F) -> F:
    """``--alert``, ``--alert-window`` and ``--alert-to`` (analyze, inventory, phases)."""
    decorators = [
        click.option(
            "--alert",
            "alerts",
            multiple=True,
            metavar="CONDITION",
            callback=parse_alerts,
            help="Exit with code 3 (after writing all output) and print one ALERT line per "
            "instrument when CONDITION holds on its latest bar (repeatable), e.g. "
            "'phase=distribution', 'vpin>0.7', 'abs(inventory_z)>3 and "
            "liquidity_state=withdrawing'; operators = != < <= > >=, and, or, not, "
            "parentheses, abs(). Columns: those of the per-bar table (default: no alerts).",
        ),
        click.option(
            "--alert-window",
            type=Duration(),
            help="Look at every bar whose start is within this of the latest bar (e.g. 30m) "
            "instead of the latest bar only (default).",
        ),
        click.option(
            "--alert-to",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the alerts as NDJSON to this file, atomically (empty when none; "
            "default: stderr only).",
        ),
    ]
    return option_group("Alerts", decorators, "alerts", _alerts)(func)
