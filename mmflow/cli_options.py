"""The options of the ``mmflow`` command: types, shared decorators and the typed values they build.

Each ``*_options`` decorator stacks a group of click options onto a command, tags them with the
group's title for ``--help`` (Input, Selection, Signing, Bars, Phase rule, Alerts, Output) and
registers a builder that turns the parsed values into one typed object (:class:`Inputs`,
:class:`~mmflow.pipeline.Selection`, :class:`~mmflow.pipeline.Signing`, :class:`Bars`,
:class:`Output`, …). :class:`MmflowCommand` runs the builders, so a command body receives typed
objects instead of ``**params``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from click.core import ParameterSource

from mmflow.alerts import ConditionError
from mmflow.alerts import parse as parse_alert
from mmflow.durations import MAX_DURATION, NANOSECONDS, check_duration
from mmflow.errors import ParameterError
from mmflow.io import Limits, ReadOptions, format_names
from mmflow.metrics.bvc import Distribution
from mmflow.metrics.event_study import MAX_HORIZONS
from mmflow.metrics.phase_model import model as phase_model
from mmflow.metrics.phases import PARAMETER_RANGES as PHASE_RANGES
from mmflow.metrics.phases import PhaseParameters
from mmflow.metrics.quotes import QuoteMatch
from mmflow.metrics.signing import METHODS
from mmflow.pipeline import (
    BYTES_PER_BAR,
    MAX_QUOTE_AGE,
    BarOptions,
    Clock,
    Selection,
    Session,
    Signing,
    default_max_rows,
)
from mmflow.render.write import OUTPUT_FORMATS, OutputFormat, check_output_file, check_stream
from mmflow.schema import QUOTES, TRADES
from mmflow.simulate import FAMILIES, SimulationParameters

__all__ = [
    "EXIT_CODES",
    "MESSAGE_LIMIT",
    "AlertOptions",
    "Bars",
    "Duration",
    "Horizons",
    "Inputs",
    "MmflowCommand",
    "OptionalDuration",
    "Output",
    "OutputLocationError",
    "QuoteFiles",
    "SessionWindow",
    "Timestamp",
    "alert_options",
    "bar_options",
    "checked",
    "help_group",
    "input_options",
    "max_bars_option",
    "one_line",
    "output_options",
    "phase_options",
    "quiet_option",
    "quote_options",
    "selection_options",
    "set_verbose",
    "signing_options",
    "simulation_options",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_CODES = (
    "Exit codes: 0 success; 1 a data error (bad file, missing column, no rows); 2 a usage "
    "error (bad flag or --alert condition); 3 an --alert condition fired (analyze, inventory, "
    "phases; after all output is written); 130 interrupted (Ctrl-C); 143 SIGTERM; 129 SIGHUP."
)
DEFAULTS_NOTE = (
    "Any option can also be set by MMFLOW_<OPTION> (MMFLOW_BAR=5m; MMFLOW_<COMMAND>_<OPTION> "
    "for one command) or in mmflow.toml; a flag wins over the environment, the environment "
    "over the file. `mmflow config` shows where each value comes from."
)
SECTIONS = (
    "Command",
    "Input",
    "Selection",
    "Signing",
    "Bars",
    "Phase rule",
    "Event study",
    "Simulation",
    "Alerts",
    "Output",
    "General",
)
"""Titles of the option groups in ``--help``, in order; untagged options are "Command"."""
GENERAL = frozenset({"verbose", "quiet", "help", "_click_default_help", "config", "version"})
GROUP_ATTRIBUTE = "mmflow_help_group"
BUILDERS_ATTRIBUTE = "__mmflow_builders__"


def help_group(param: click.Parameter) -> str:
    """Return the ``--help`` section of ``param``."""
    if param.name in GENERAL:
        return "General"
    return str(getattr(param, GROUP_ATTRIBUTE, "Command"))


@dataclass(frozen=True)
class Builder:
    """Turns the parsed values of one option group into one typed object.

    Attributes
    ----------
    keyword
        The command's parameter that receives the object.
    names
        The click parameter names the object replaces (they are not passed on).
    build
        Makes the object from every parsed value of the command.
    """

    keyword: str
    names: frozenset[str]
    build: Callable[[Mapping[str, Any]], object]


class MmflowCommand(click.Command):
    """A command with grouped options in ``--help``, exit codes at the end, typed arguments.

    Before the callback runs, each option group's builder turns its raw values into one typed
    object (see :func:`option_group`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["epilog"] = kwargs.get("epilog") or f"{DEFAULTS_NOTE}\n\n{EXIT_CODES}"
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args``; a bad value from a variable or a file says where it came from."""
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            origin = _origin(ctx, exc.param)
            if not origin:
                raise
            raise click.BadParameter(
                exc.message + origin, exc.ctx, exc.param, exc.param_hint
            ) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Build the typed option objects, then run the command with them."""
        builders: list[Builder] = getattr(self.callback, BUILDERS_ATTRIBUTE, [])
        if self.callback is None or not builders:
            return super().invoke(ctx)
        raw = dict(ctx.params)
        built = {builder.keyword: builder.build(raw) for builder in builders}
        used = frozenset().union(*(builder.names for builder in builders))
        kept = {name: value for name, value in raw.items() if name not in used}
        return ctx.invoke(self.callback, **kept, **built)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the epilog paragraphs unwrapped into one block each."""
        if self.epilog:
            for paragraph in self.epilog.split("\n\n"):
                formatter.write_paragraph()
                with formatter.indentation():
                    formatter.write_text(paragraph)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the options in titled groups (Input, Selection, Signing, …)."""
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(help_group(param), []).append(record)
        for title in sorted(sections, key=lambda t: SECTIONS.index(t) if t in SECTIONS else 1):
            name = "Options" if title == "Command" else f"{title} options"
            with formatter.section(name):
                formatter.write_dl(sections[title])


def _origin(ctx: click.Context, param: click.Parameter | None) -> str:
    """Return `` (from MMFLOW_X)`` or `` (from FILE)`` when ``param`` was not set by a flag."""
    if param is None or param.name is None:
        return ""
    source = ctx.get_parameter_source(param.name)
    if source == ParameterSource.ENVIRONMENT and isinstance(param, click.Option):
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        found = next((name for name in names if os.environ.get(name)), None)
        return f" (from {found})" if found else ""
    if source == ParameterSource.DEFAULT_MAP:
        defaults = ctx.meta.get("mmflow.defaults")
        origins = getattr(defaults, "origins", {}).get(ctx.info_name or "", {})
        origin = origins.get(param.name)
        return f" (from {origin})" if origin is not None else ""
    return ""


def option_group(
    title: str,
    decorators: Sequence[Callable[[Any], Any]],
    keyword: str | None = None,
    build: Callable[[Mapping[str, Any]], object] | None = None,
) -> Callable[[F], F]:
    """Return a decorator adding ``decorators``' options under ``title`` in ``--help``.

    With ``keyword`` and ``build``, the command receives ``build(values)`` as ``keyword``
    instead of the group's own parameters.
    """

    def decorator(func: F) -> F:
        before = list(getattr(func, "__click_params__", []))
        for option in reversed(decorators):
            func = option(func)
        added = [p for p in getattr(func, "__click_params__", []) if p not in before]
        for param in added:
            if not hasattr(param, GROUP_ATTRIBUTE):
                setattr(param, GROUP_ATTRIBUTE, title)
        if keyword is not None and build is not None:
            names = frozenset(p.name for p in added if p.name and p.expose_value)
            builders: list[Builder] = func.__dict__.setdefault(BUILDERS_ATTRIBUTE, [])
            builders.insert(0, Builder(keyword, names, build))
        return func

    return decorator


def _choice(value: Any, allowed: tuple[T, ...], default: T) -> T:
    """Return ``value`` as one of ``allowed`` (typed), ``default`` when it is not one."""
    return next((item for item in allowed if item == value), default)


MESSAGE_LIMIT = 300
"""Longest error or warning line mmflow prints (a 200 MB field must not become the message)."""


def one_line(exc: BaseException) -> str:
    """Return the first line of ``exc``'s message, at most :data:`MESSAGE_LIMIT` characters."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 1] + "…"


class Duration(click.ParamType[str]):
    """A polars duration string such as ``1s``, ``5m``, ``1h``, within a range.

    Every duration flag goes through :func:`mmflow.durations.check_duration`: fixed-length
    units only, at most 366 days (so nothing overflows polars' nanosecond clock), and what
    polars itself accepts.
    """

    name = "duration"

    def __init__(self, *, minimum: int = 1, maximum: int = MAX_DURATION) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Validate ``value``."""
        try:
            return check_duration(
                str(value), what="duration", minimum=self.minimum, maximum=self.maximum
            )
        except ParameterError as exc:
            self.fail(exc.message.removeprefix("duration "), param, ctx)


class OptionalDuration(Duration):
    """A :class:`Duration`, or ``none`` for no limit."""

    def convert(  # type: ignore[override]
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str | None:
        """Validate ``value``; ``none`` gives ``None``."""
        if value is None or str(value).strip().lower() in ("none", "off"):
            return None
        return super().convert(value, param, ctx)


class Timestamp(click.ParamType[datetime]):
    """An ISO-8601 date or time; without a zone it is UTC."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Parse ``value``."""
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time like 2024-07-19T00:05:00Z", param, ctx)


class Horizons(click.ParamType[tuple[int, ...]]):
    """A comma-separated list of forward horizons in bars, such as ``1,5,15,60``."""

    name = "N,N,..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        """Parse ``value``; at most MAX_HORIZONS whole numbers >= 1."""
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if not all(part.isdigit() and int(part) >= 1 for part in parts):
            self.fail(
                f"{value!r} is not a list of whole numbers of bars >= 1 like 1,5,15", param, ctx
            )
        steps = tuple(int(part) for part in parts)
        if len(set(steps)) < len(steps):
            self.fail(f"{value!r} repeats a horizon", param, ctx)
        if len(steps) > MAX_HORIZONS:
            self.fail(f"{len(steps)} horizons given; at most {MAX_HORIZONS}", param, ctx)
        return steps


def parse_map(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    allowed = set(TRADES.names) | set(QUOTES.names)
    mapping: dict[str, str] = {}
    for chunk in value:
        for pair in filter(None, (p.strip() for p in chunk.split(","))):
            canonical, sep, column = pair.partition("=")
            if not sep or not column:
                msg = f"{pair!r} is not canonical=column"
                raise click.BadParameter(msg, ctx, param)
            if canonical not in allowed:
                names = ", ".join(sorted(allowed))
                msg = f"{canonical!r} is not a canonical column; use one of {names}"
                raise click.BadParameter(msg, ctx, param)
            mapping[canonical] = column
    return mapping


def set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Remember ``--verbose`` for the error handler and the row account."""
    if value:
        ctx.meta["mmflow.verbose"] = True
    return value


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["mmflow.quiet"] = True
        warnings.simplefilter("ignore")  # library warnings (polars) are notes too
    return value


QUIET_HELP = "No notes, warnings or progress on stderr (errors and ALERT lines still print)."


def quiet_option(func: F) -> F:
    """``-q/--quiet``, accepted before the command (``mmflow -q analyze``) and after it."""
    return click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet, help=QUIET_HELP
    )(func)


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
        skip_bad_rows=values["skip_bad_rows"],
    )
    return Inputs(
        values["fmt"],
        read,
        tuple(values["exclude"]),
        values["strict"],
        values["skip_bad_rows"],
        values.get("tz"),
    )


def input_options(func: F) -> F:
    """Options every command that reads market data shares; the command gets ``inputs``."""
    decorators = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["auto", *format_names()]),
            default="auto",
            show_default=True,
            metavar="NAME",
            help="Input format, auto-detected from magic bytes, file name and header; one of "
            + ", ".join(format_names())
            + ".",
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
            "default UTC), e.g. America/Chicago; plot draws its time axis in it.",
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
        click.option(
            "--valid-from",
            type=Timestamp(),
            default="1990-01-01",
            show_default=True,
            help="Earliest plausible timestamp; earlier rows are dropped and counted.",
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
    return option_group("Input", decorators, "inputs", _inputs)(func)


class SessionWindow(click.ParamType[tuple[time, time]]):
    """A daily session as ``HH:MM-HH:MM`` in the --session-tz time zone."""

    name = "HH:MM-HH:MM"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[time, time]:
        """Parse ``value``."""
        if isinstance(value, tuple):
            return value
        try:
            first, last = str(value).split("-")
            return time.fromisoformat(first.strip()), time.fromisoformat(last.strip())
        except ValueError:
            self.fail(f"{value!r} is not a session like 09:30-16:00", param, ctx)


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
        click.option(
            "--clock",
            type=click.Choice(["recv", "event"]),
            default="recv",
            show_default=True,
            help="Align on receive/capture time (recv) or exchange time (event).",
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
        click.option(
            "--quotes-format",
            type=click.Choice(["auto", *format_names()]),
            default="auto",
            show_default=True,
            metavar="NAME",
            help="Format of the --quotes files (a --format name).",
        ),
    ]
    return option_group("Input", decorators, "quotes", _quote_files)(func)


def signing_options(func: F) -> F:
    """Options that choose how trades are signed."""
    decorators = [
        click.option(
            "--method",
            type=click.Choice(METHODS),
            default="auto",
            show_default=True,
            help="Trade signing: auto = vendor side where known, else Lee-Ready with quotes, "
            "else the tick rule.",
        ),
        click.option(
            "--quote-match",
            type=click.Choice(["strict", "at-or-before"]),
            default="strict",
            show_default=True,
            help="Match each trade to the latest quote strictly before it, or at or before it.",
        ),
        click.option(
            "--quote-lag",
            type=Duration(minimum=0, maximum=NANOSECONDS["d"]),
            default="0s",
            show_default=True,
            help="Use quotes at least this much older than the trade (e.g. 100ms).",
        ),
        click.option(
            "--max-quote-age",
            type=OptionalDuration(),
            default=MAX_QUOTE_AGE,
            show_default=True,
            help="A quote older than this counts as missing for signing, spreads, depth and "
            "trade costs ('none': no limit).",
        ),
        click.option(
            "--bvc-distribution",
            type=click.Choice(["normal", "student-t"]),
            default="normal",
            show_default=True,
            help="Bulk volume classification: distribution of standardised price changes.",
        ),
        click.option(
            "--bvc-dof",
            type=click.FloatRange(min=0, min_open=True),
            help="Student-t degrees of freedom for bvc (default: estimated from the data).",
        ),
    ]
    return option_group("Signing", decorators, "signing", _signing)(func)


def _selection(values: Mapping[str, Any]) -> Selection:
    clock: Clock = _choice(values["clock"], ("recv", "event"), "recv")
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
    match: QuoteMatch = _choice(values["quote_match"], ("strict", "at-or-before"), "strict")
    distribution: Distribution = _choice(
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


def parse_alerts(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Check the syntax of every --alert before any file is read (columns are checked later)."""
    for text in value:
        try:
            parse_alert(text.strip())
        except ConditionError as exc:
            msg = f"{exc}\n{exc.pointer()}"
            raise click.BadParameter(msg, ctx, param) from None
    return value


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


def bar_options(func: F) -> F:
    """Options for bars and the per-bar metrics (``analyze``, ``flow``, ``inventory``)."""
    decorators = [
        click.option("--bar", type=Duration(), help="Bar length (default 1m)."),
        click.option(
            "--horizon",
            type=Duration(minimum=0),
            default="5m",
            show_default=True,
            help="Horizon of realized spread and price impact (by time, not rows).",
        ),
        click.option(
            "--lookback",
            type=click.IntRange(min=2),
            default=240,
            show_default=True,
            help="Trailing window in bars: Kyle's lambda, Amihud, inventory z, liquidity.",
        ),
        click.option(
            "--pressure-horizon",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="Forward bars of the price-pressure regression.",
        ),
        click.option(
            "--vpin-window",
            type=click.IntRange(min=1),
            default=50,
            show_default=True,
            help="Volume buckets per VPIN value.",
        ),
        click.option(
            "--buckets-per-day",
            type=click.IntRange(min=1),
            default=50,
            show_default=True,
            help="VPIN bucket volume = average daily volume / this.",
        ),
        click.option(
            "--spread-factor",
            type=click.FloatRange(min=0, min_open=True),
            default=2.0,
            show_default=True,
            help="Withdrawing when the spread is at least this × its trailing median.",
        ),
        click.option(
            "--depth-factor",
            type=click.FloatRange(min=0, min_open=True),
            default=0.5,
            show_default=True,
            help="Withdrawing when the depth is at most this × its trailing median.",
        ),
        click.option(
            "--fill",
            is_flag=True,
            help="Make a continuous bar grid across days without data (default: bars only on "
            "the days, or sessions, that hold trades or quotes).",
        ),
        max_bars_option("--max-bars", "bars (also VPIN buckets and window lengths)"),
    ]
    return option_group("Bars", decorators, "bars", _bars)(func)


def max_bars_option(flag: str, what: str) -> Callable[[F], F]:
    """Return the option limiting the rows a run makes (default sized to the memory)."""
    return click.option(
        flag,
        type=click.IntRange(min=1),
        help=f"Most {what} a run may make; estimated before they are made (exit 2 above). "
        f"Default: available memory / {BYTES_PER_BAR} bytes, now {default_max_rows():,}.",
    )


@dataclass(frozen=True)
class Bars:
    """Bar options (the Bars group) and whether --bar was given.

    Attributes
    ----------
    options
        The library's bar options (``every`` is ``1m`` when --bar is not given).
    explicit
        Whether --bar was given (``analyze`` then writes the per-bar table).
    """

    options: BarOptions
    explicit: bool


def _bars(values: Mapping[str, Any]) -> Bars:
    limit = values.get("max_bars")
    options = BarOptions(
        every=values["bar"] or "1m",
        horizon=values["horizon"],
        lookback=values["lookback"],
        pressure_horizon=values["pressure_horizon"],
        vpin_window=values["vpin_window"],
        buckets_per_day=values["buckets_per_day"],
        spread_factor=values["spread_factor"],
        depth_factor=values["depth_factor"],
        fill=values["fill"],
        max_bars=default_max_rows() if limit is None else limit,
    )
    return Bars(options, values["bar"] is not None)


PHASE_OPTIONS = (
    "window",
    "baseline",
    "absorption",
    "absorption_noise",
    "extreme",
    "unload",
    "recent_bars",
    "recent",
    "accumulation",
    "enter",
    "evidence",
    "stay",
    "gap",
    "min_bars",
)


def _phase(values: Mapping[str, Any]) -> PhaseParameters:
    """Build the phase rule's parameters; --lookback and --pressure-horizon come from Bars."""
    return PhaseParameters(
        lookback=values["lookback"],
        horizon=values["pressure_horizon"],
        **{name: values[name] for name in PHASE_OPTIONS},
    )


def phase_options(func: F) -> F:
    """Add the parameters of the phase rule (mmflow.metrics.phases.PhaseParameters).

    Each option's range is the library's (:data:`mmflow.metrics.phases.PARAMETER_RANGES`), so
    every value the CLI accepts the library accepts.
    """
    defaults = PhaseParameters()
    helps = {
        "window": "W: bars of the recent absorption test and of absorption_ratio/price_levels",
        "baseline": "M: bars searched for the inventory peak and the trough before it",
        "absorption": "pause a distribution when price followed the flow by more than this "
        "many price-noise SDs over the last W bars",
        "absorption-noise": "enter only when price followed the flow since the peak by at most "
        "this many price-noise SDs",
        "extreme": "rise from trough to peak needed to enter, in flow-noise units x sqrt(bars)",
        "unload": "drawdown since the peak needed to enter, in flow-noise units x sqrt(bars)",
        "recent-bars": "w: bars of the still-unloading and still-accumulating tests",
        "recent": "pause when inventory grew back by more than this x sqrt(w) flow-noise units "
        "over the last w bars",
        "accumulation": "inventory growth over the last w bars for accumulation, in flow-noise "
        "units x sqrt(w)",
        "enter": "distribution_score the entry bar itself needs",
        "evidence": "evidence (CUSUM of the score's log-odds since the peak) needed to enter a "
        f"distribution [default: the model's, {phase_model().evidence:g}]",
        "stay": "pause a distribution while its score is below this",
        "gap": "pause bars a distribution survives; bars --episodes bridges within an episode",
        "min-bars": "shortest episode in bars (--episodes only)",
    }
    decorators: list[Callable[[Any], Any]] = []
    for name, text in helps.items():
        field_name = name.replace("-", "_")
        value = getattr(defaults, field_name)
        low, high = PHASE_RANGES[field_name]
        kind: click.ParamType[Any]
        if isinstance(low, int) and field_name not in {"enter", "evidence"}:
            kind = click.IntRange(min=low, max=None if high is None else int(high))
        else:
            kind = click.FloatRange(min=low, max=high)
        option = click.option(
            f"--{name}",
            field_name,
            type=kind,
            default=value,
            show_default=value is not None,
            help=text + ".",
        )
        decorators.append(option)
    return option_group("Phase rule", decorators, "phase", _phase)(func)


SIMULATION_OPTIONS = (
    "family",
    "accumulation_intensity",
    "accumulation_bars",
    "distribution_bars",
    "hold_bars",
    "overshoot",
    "size_tail",
    "clustering",
    "proxy_drift",
    "spread_variability",
    "distribution_spread",
    "inventory_reversion",
    "excitation",
    "market_makers",
)


def _simulation(values: Mapping[str, Any]) -> SimulationParameters:
    names = tuple(f"SIM{chr(ord('A') + i)}" for i in range(values["symbols"]))
    return SimulationParameters(
        seed=values["seed"],
        symbols=names,
        hours=values["hours"],
        trades_per_hour=values["trades_per_hour"],
        episodes_per_day=values["episodes_per_day"],
        **{name: values[name] for name in SIMULATION_OPTIONS},
    )


def simulation_options(func: F) -> F:
    """Add the regime knobs of :class:`mmflow.simulate.SimulationParameters`."""
    d = SimulationParameters()
    positive = click.FloatRange(min=0)
    bars = click.IntRange(min=1)
    options: list[Callable[[Any], Any]] = [
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
        click.option(
            "--symbols",
            type=click.IntRange(min=1, max=26),
            default=2,
            show_default=True,
            help="Number of symbols (SIMA, SIMB, …).",
        ),
        click.option(
            "--hours",
            type=click.FloatRange(min=0, min_open=True),
            default=24.0,
            show_default=True,
            help="Hours of trading to simulate.",
        ),
        click.option(
            "--trades-per-hour",
            type=click.FloatRange(min=0, min_open=True),
            default=3600.0,
            show_default=True,
            help="Average trades per symbol and hour.",
        ),
        click.option(
            "--episodes-per-day",
            type=click.FloatRange(min=0),
            default=6.0,
            show_default=True,
            help="Accumulation → distribution → reversal episodes per symbol and day "
            "(0: noise only).",
        ),
        click.option(
            "--family",
            type=click.Choice(FAMILIES),
            default=d.family,
            show_default=True,
            help="Generating mechanism: scripted inventory target, or Hawkes flow with "
            "competing market makers (one tracked).",
        ),
        click.option(
            "--accumulation-intensity",
            type=positive,
            default=d.accumulation_intensity,
            show_default=True,
            help="Episode strength: accumulation flow as a share of the noise volume.",
        ),
        click.option(
            "--accumulation-bars",
            type=(bars, bars),
            default=d.accumulation_bars,
            show_default=True,
            help="Episode speed: MIN MAX bars of an accumulation.",
        ),
        click.option(
            "--distribution-bars",
            type=(bars, bars),
            default=d.distribution_bars,
            show_default=True,
            help="MIN MAX bars of a distribution.",
        ),
        click.option(
            "--hold-bars",
            type=(click.IntRange(min=0), click.IntRange(min=0)),
            default=d.hold_bars,
            show_default=True,
            help="MIN MAX bars of hold between accumulation and distribution.",
        ),
        click.option(
            "--overshoot",
            type=positive,
            default=d.overshoot,
            show_default=True,
            help="A distribution unloads (1 + this) x the peak, through zero.",
        ),
        click.option(
            "--size-tail",
            type=click.FloatRange(min=0),
            default=d.size_tail,
            show_default=True,
            help="Student-t degrees of freedom (> 2) of trade sizes; 0: geometric sizes.",
        ),
        click.option(
            "--clustering",
            type=positive,
            default=d.clustering,
            show_default=True,
            help="Volatility of the log trade rate per bar (AR(1)); 0: constant rate.",
        ),
        click.option(
            "--proxy-drift",
            type=positive,
            default=d.proxy_drift,
            show_default=True,
            help="Other participants' net flow per bar in noise SDs: the -CVD proxy drifts.",
        ),
        click.option(
            "--spread-variability",
            type=positive,
            default=d.spread_variability,
            show_default=True,
            help="Volatility of the log spread per bar (AR(1)); 0: constant spread.",
        ),
        click.option(
            "--distribution-spread",
            type=positive,
            default=d.distribution_spread,
            show_default=True,
            help="Relative widening of the spread during distribution.",
        ),
        click.option(
            "--inventory-reversion",
            type=click.FloatRange(min=0, max=1),
            default=d.inventory_reversion,
            show_default=True,
            help="The market maker's mean reversion per bar.",
        ),
        click.option(
            "--excitation",
            type=click.FloatRange(min=0, max=0.9),
            default=d.excitation,
            show_default=True,
            help="hawkes: branching ratio of the order flow.",
        ),
        click.option(
            "--market-makers",
            type=click.IntRange(min=1),
            default=d.market_makers,
            show_default=True,
            help="hawkes: competing market makers (one tracked).",
        ),
    ]
    return option_group("Simulation", options, "parameters", _simulation)(func)
