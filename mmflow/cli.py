"""The ``mmflow`` command: parse options, call one library function, render.

Errors the library raises become one line on stderr (``Error: …``) and exit code 1; bad flags
exit 2; ``--verbose`` shows the traceback. Data goes to stdout, people's messages to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import polars as pl

from mmflow import interrupts
from mmflow._version import __version__
from mmflow.alerts import Condition, ConditionError, alert_messages, evaluate_alerts
from mmflow.alerts import parse as parse_alert
from mmflow.alerts import parse_condition as bind_alert
from mmflow.analysis import (
    BYTES_PER_BAR,
    FLOW_COLUMNS,
    INVENTORY_COLUMNS,
    MAX_QUOTE_AGE,
    BarOptions,
    Clock,
    Market,
    Selection,
    Session,
    Signing,
    analyze,
    bar_table,
    chart,
    classify,
    default_max_rows,
    evaluate,
    inventory_evaluation,
    inventory_report,
    market_bars,
    parameters_of,
    phases,
    profile,
    selection_account,
)
from mmflow.convert import write_dataset
from mmflow.durations import MAX_DURATION, NANOSECONDS, check_duration
from mmflow.errors import MmflowError, NoDataError, ParameterError, SizeLimitError
from mmflow.inspect import inspect_paths
from mmflow.io import Limits, Loaded, ReadOptions, RowAccount, format_names, load_inputs
from mmflow.io.assemble import (
    account_of,
    collect,
    collect_accounts,
    gather,
    read_many,
    require_rows,
)
from mmflow.metrics.bvc import Distribution
from mmflow.metrics.event_study import (
    DEFAULT_HORIZONS,
    MAX_HORIZONS,
    MAX_PLACEBO_RATIO,
    WITHDRAWAL_STUDY_COLUMNS,
)
from mmflow.metrics.phase_model import model as phase_model
from mmflow.metrics.phases import PARAMETER_RANGES as PHASE_RANGES
from mmflow.metrics.phases import PhaseParameters
from mmflow.metrics.profile import ValueAreaMethod
from mmflow.metrics.quotes import QuoteMatch
from mmflow.metrics.signing import METHODS
from mmflow.progress import OnStage, Stage, report
from mmflow.render.messages import cleaning_notes, quote_warnings, signing_warnings
from mmflow.render.plot import (
    PANELS,
    chosen_panels,
    file_stem,
    instrument_charts,
    instrument_count,
    instrument_name,
    require_matplotlib,
)
from mmflow.render.profile_plot import profile_figures
from mmflow.render.progress import StageDisplay, no_color
from mmflow.render.progress import plain_console as Console
from mmflow.render.table import (
    analyze_table,
    compact_table,
    episodes_table,
    evaluation_table,
    flow_table,
    frame_table,
    inspect_cards,
    inspect_table,
    inventory_table,
    phases_table,
    profile_chart,
)
from mmflow.render.write import (
    OUTPUT_FORMATS,
    OutputFormat,
    build_metadata,
    check_output_directory,
    check_output_file,
    check_stream,
    image_format,
    write_figure,
    write_file,
    write_to,
)
from mmflow.schema import QUOTES, TRADES
from mmflow.simulate import FAMILIES, SimulationParameters, simulate, write_simulation

F = TypeVar("F", bound=Callable[..., Any])
USER_ERRORS = (MmflowError, pl.exceptions.PolarsError, OSError)
_FLAGS = {
    "every": "--bar",
    "bin_size": "--bin",
    "buckets_per_day": "--buckets-per-day",
    "lookback": "--lookback",
    "pressure_horizon": "--pressure-horizon",
    "vpin_window": "--vpin-window",
}
"""Library parameter names behind a SizeLimitError, and the flags that set them."""
PARAMETER_FLAGS = {
    **_FLAGS,
    "symbols": "--symbol",
    "venues": "--venue",
    "start": "--start",
    "end": "--end",
    "session": "--session",
    "column_map": "--map canonical=column",
    "format": "--format",
}
"""How the command line names the library parameters an error message names."""


MESSAGE_LIMIT = 300
"""Longest error or warning line mmflow prints (a 200 MB field must not become the message)."""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, MmflowError):  # say the flags where the library says its parameters
        text = exc.describe_parameters(PARAMETER_FLAGS).strip()
    else:
        text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 1] + "…"


def _is_broken_pipe(exc: BaseException) -> bool:
    """Whether the reader of stdout went away (``mmflow … | head``), as Python or Rust says it."""
    return getattr(exc, "errno", None) == errno.EPIPE or "os error 32" in str(exc)


def _quiet_exit() -> None:
    """End quietly after the reader of stdout has gone: no message, no flush error at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


EXIT_CODES = (
    "Exit codes: 0 success; 1 a data error (bad file, missing column, no rows); 2 a usage "
    "error (bad flag or --alert condition); 3 an --alert condition fired (analyze, inventory, "
    "phases; after all output is written); 130 interrupted (Ctrl-C); 143 SIGTERM; 129 SIGHUP."
)


class MmflowCommand(click.Command):
    """A command whose ``--help`` ends with the exit codes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["epilog"] = kwargs.get("epilog") or EXIT_CODES
        super().__init__(*args, **kwargs)


class MmflowGroup(click.Group):
    """Turn expected failures into ``Error: …`` and exit 1 (2 for parameters)."""

    command_class = MmflowCommand

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating library errors at this one boundary."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_exit()
        except USER_ERRORS as exc:
            if isinstance(exc, OSError) and _is_broken_pipe(exc):
                _quiet_exit()
            if ctx.params.get("verbose") or ctx.meta.get("mmflow.verbose"):
                raise
            if isinstance(exc, SizeLimitError):
                flag = _FLAGS.get(exc.parameter, "--" + exc.parameter.replace("_", "-"))
                limit = "--max-bars" if exc.parameter != "bin_size" else "--max-levels"
                raise click.UsageError(exc.describe(flag, limit)) from exc
            if isinstance(exc, ParameterError):
                raise click.UsageError(_one_line(exc)) from exc
            raise click.ClickException(_one_line(exc)) from exc
        except BaseException as exc:
            # A panic inside polars (a Rust bug, not the user's) still ends in one line.
            if type(exc).__name__ != "PanicException" or ctx.meta.get("mmflow.verbose"):
                raise
            msg = f"internal error in polars ({_one_line(exc)}); rerun with --verbose and report it"
            raise click.ClickException(msg) from exc


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


def _parse_map(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str]:
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


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
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


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("mmflow.quiet"))


def _stages() -> OnStage | None:
    """Return the progress display of this run: on a terminal's stderr, without --quiet."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or _quiet() or not sys.stderr.isatty():
        return None
    display = ctx.meta.get("mmflow.stages")
    if display is None:
        display = StageDisplay(sys.stderr, color=not no_color())
        ctx.meta["mmflow.stages"] = display
        ctx.call_on_close(display.close)
    assert isinstance(display, StageDisplay)
    return display


def _stacked(func: F, decorators: Sequence[Callable[[Any], Any]]) -> F:
    """Apply click option decorators so they appear in ``--help`` in list order."""
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def input_options(func: F) -> F:
    """Options every command that reads market data shares."""
    decorators = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["auto", *format_names()]),
            default="auto",
            show_default=True,
            help="Input format; auto-detected from magic bytes, file name and header.",
        ),
        click.option(
            "--map",
            "column_map",
            multiple=True,
            callback=_parse_map,
            metavar="CANONICAL=COLUMN,...",
            help="Read any CSV by naming its columns, e.g. --map ts=time,price=px,size=qty.",
        ),
        click.option(
            "--symbol",
            "symbols",
            multiple=True,
            help="Keep only this symbol (repeatable); also names files that carry no symbol.",
        ),
        click.option(
            "--venue",
            "venues",
            multiple=True,
            help="Keep only this venue (repeatable), e.g. binance-um; an instrument is "
            "(venue, symbol).",
        ),
        click.option(
            "--date",
            "trading_date",
            type=click.DateTime(formats=["%Y-%m-%d"]),
            help="Trading day for files that carry it only in their name (LOBSTER).",
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
            "(repeatable), e.g. --exclude '*.zip' --exclude 'old/*'.",
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
            callback=_set_verbose,
            help="Show the row account (read = used + dropped) and full tracebacks on errors.",
        ),
        quiet_option,
    ]
    return _stacked(func, decorators)


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
    """Options that choose rows and the clock, for commands that analyse."""
    decorators = [
        click.option(
            "--session",
            type=SessionWindow(),
            help="Keep only this daily session, e.g. 09:30-16:00 (overnight: 17:00-16:00); "
            "tick-rule state, bars and cumulative series restart each session.",
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
            "rule drops are reported.",
        ),
        click.option("--start", type=Timestamp(), help="Keep rows at or after this time (UTC)."),
        click.option("--end", type=Timestamp(), help="Keep rows before this time (UTC)."),
        click.option(
            "--clock",
            type=click.Choice(["recv", "event"]),
            default="recv",
            show_default=True,
            help="Align on receive/capture time (recv) or exchange time (event).",
        ),
    ]
    return _stacked(func, decorators)


class OutputLocationError(click.ClickException):
    """An output location that cannot be written: one ``Error:`` line naming it, exit code 2."""

    exit_code = 2


def _checked(
    check: Callable[[Any], object],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Return a click callback that runs ``check`` on a given value while options are parsed."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            try:
                check(value)
            except ParameterError as exc:
                raise OutputLocationError(_one_line(exc)) from None
        return value

    return callback


def output_options(func: F) -> F:
    """Options every command that produces a table shares.

    Both are checked while the options are parsed, before any input is read: ``-o`` must name a
    file with a known suffix in an existing folder mmflow can write in, and ``--to parquet`` or
    ``--to arrow`` must not go to a terminal (exit 2 otherwise).
    """
    func = click.option(
        "--to",
        "to_format",
        type=click.Choice(OUTPUT_FORMATS),
        callback=_checked(lambda fmt: check_stream(fmt, sys.stdout)),
        help="Write the table to standard output in this format instead of printing it.",
    )(func)
    return click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        callback=_checked(check_output_file),
        help="Write the table to this file (.parquet, .csv, .ndjson, .json, .arrow), atomically.",
    )(func)


def _read_options(params: dict[str, Any]) -> ReadOptions:
    symbols: tuple[str, ...] = params["symbols"]
    trading_date: datetime | None = params.get("trading_date")
    if params.get("tz"):
        try:
            ZoneInfo(params["tz"])
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"--tz {params['tz']!r} is not a time zone name like America/New_York"
            raise click.BadParameter(msg) from None
    limits = Limits(params["valid_from"], params.get("valid_until"))
    start, end = limits.bounds()
    if start >= end:
        msg = f"--valid-from must be before --valid-until (the range is {limits.describe()})"
        raise click.BadParameter(msg)
    return ReadOptions(
        symbol=symbols[0] if len(symbols) == 1 else None,
        column_map=params["column_map"],
        date=trading_date.date() if trading_date else None,
        tz=params.get("tz"),
        round_lot=params.get("round_lot"),
        limits=limits,
        skip_bad_rows=params["skip_bad_rows"],
    )


def _load(params: dict[str, Any], files: Sequence[str], fmt: str) -> list[Loaded]:
    """Read ``files``; say in one note which folder entries were skipped."""
    inputs = load_inputs(
        files,
        fmt,
        _read_options(params),
        exclude=params["exclude"],
        strict=params["strict"],
        on_stage=_stages(),
    )
    note = inputs.note()
    if note:
        _say(f"Note: {note}")
    return inputs.loaded


def _verbose() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.meta.get("mmflow.verbose"))


def _account(
    params: dict[str, Any],
    inputs: list[Loaded],
    trades: pl.LazyFrame | None,
    quotes: pl.LazyFrame | None,
) -> RowAccount:
    """Count rows read, dropped (by reason) and used, in one pass; warn about dropped rows.

    Stops on unparseable rows unless --skip-bad-rows. The account is printed with --verbose
    (after TAQ cleaning when --clean is given).
    """
    selected = selection_account(trades, quotes, _selection(params))
    account = account_of(collect_accounts(inputs, selected))
    account.raise_for_bad_rows(skip=params["skip_bad_rows"])
    _warn(account.warnings())
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta["mmflow.account"] = account
    if not params.get("clean"):
        _say_account(account)
    return account


def _say_account(account: RowAccount) -> None:
    if _verbose():
        for table in account.tables():
            _say(f"Rows: {account.summary(table)}")


def _sources(inputs: list[Loaded]) -> list[dict[str, str]]:
    return [{"path": i.source.display, "format": i.format.name} for i in inputs]


def _emit(
    df: pl.DataFrame,
    *,
    output: Path | None,
    to_format: OutputFormat | None,
    metadata: dict[str, str],
) -> bool:
    """Write ``df`` to a file or stdout when asked; return False when the caller should print."""
    if output is not None:
        write_file(df, output, metadata)
        _say(f"wrote {df.height:,} rows to {output}")
    if to_format is not None:
        write_to(df, sys.stdout.buffer, to_format, metadata)
        sys.stdout.buffer.flush()
    return output is not None or to_format is not None


@click.group(
    cls=MmflowGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES
)
@click.option("--verbose", is_flag=True, help="Show full tracebacks on errors.")
@quiet_option
@click.version_option(__version__, prog_name="mmflow")
def cli(verbose: bool) -> None:
    """Order-flow and market-maker inventory analytics for trade and quote files.

    Progress is shown on stderr when it is a terminal; -q/--quiet silences notes, warnings
    and progress; NO_COLOR=1 turns off all colour and styling.

    Example:

    \b
        mmflow inspect sample_data/
        mmflow analyze sample_data/binance/BTCUSDT-trades-2024-07-19.csv --bar 1m
    """


@cli.command()
@click.argument("files", nargs=-1, required=True)
@input_options
@output_options
def inspect(**params: Any) -> None:
    """Say what each file is: format, kind, rows, symbols, time span, side encoding, issues.

    Example:

    \b
        mmflow inspect sample_data/ --to json
    """
    run = inspect_paths(
        params["files"],
        params["fmt"],
        _read_options(params),
        exclude=params["exclude"],
        strict=params["strict"],
        on_stage=_stages(),
    )
    if run.note:
        _say(f"Note: {run.note}")
    for error in run.errors:
        click.echo(f"Error: {_one_line(error)}", err=True)
    if run.reports:
        df = pl.DataFrame([r.as_dict() for r in run.reports], schema=_INSPECT_SCHEMA)
        sources = [{"path": r.path, "format": r.format} for r in run.reports]
        metadata = build_metadata(
            table="inspect", sources=sources, clock="recv", parameters={"format": params["fmt"]}
        )
        if not _emit(df, output=params["output"], to_format=params["to_format"], metadata=metadata):
            console = Console()
            console.print(inspect_table(df) if console.width >= 120 else inspect_cards(df))
    if run.errors:
        raise SystemExit(1)


_INSPECT_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String(),
    "format": pl.String(),
    "kind": pl.String(),
    "rows": pl.Int64(),
    "symbols": pl.List(pl.String),
    "start": pl.String(),
    "end": pl.String(),
    "start_event": pl.String(),
    "end_event": pl.String(),
    "trades": pl.Int64(),
    "quotes": pl.Int64(),
    "side_known": pl.Float64(),
    "buy_trades": pl.Int64(),
    "sell_trades": pl.Int64(),
    "buy_volume_share": pl.Float64(),
    "issues": pl.List(pl.String),
    "rows_used": pl.Int64(),
    "rows_dropped": pl.Int64(),
    "dropped": pl.List(pl.Struct({"table": pl.String, "reason": pl.String, "rows": pl.Int64})),
}


def quote_options(func: F) -> F:
    """Options for quote files given separately from the trades."""
    func = click.option(
        "--quotes-format",
        type=click.Choice(["auto", *format_names()]),
        default="auto",
        show_default=True,
        help="Format of the --quotes files.",
    )(func)
    return click.option(
        "--quotes",
        "quote_files",
        multiple=True,
        help="Quote files (repeatable; quote a glob to let mmflow expand it). Quote files among "
        "the positional inputs are recognised too.",
    )(func)


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
            help="Student-t degrees of freedom for bvc (estimated from the data if omitted).",
        ),
    ]
    return _stacked(func, decorators)


def _market(params: dict[str, Any]) -> tuple[list[Loaded], pl.LazyFrame, pl.LazyFrame | None]:
    """Load the positional inputs and --quotes files; return inputs, trades and quotes."""
    inputs = _load(params, params["files"], params["fmt"])
    if params.get("quote_files"):
        inputs += _load(params, params["quote_files"], params["quotes_format"])
    _warn([note for item in inputs for note in item.frames.notes])
    inputs = read_many(inputs)
    trades = gather(inputs, TRADES)
    if trades is None:
        msg = "no trades in the inputs (they hold only quotes); pass trade files too"
        raise NoDataError(msg)
    quotes = gather(inputs, QUOTES)
    _account(params, inputs, trades, quotes)
    return inputs, trades, quotes


def _selection(params: dict[str, Any]) -> Selection:
    clock: Clock = "event" if params["clock"] == "event" else "recv"
    clean: Literal["taq"] | None = "taq" if params.get("clean") == "taq" else None
    session = None
    if params.get("session"):
        zone = params["session_tz"]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"--session-tz {zone!r} is not a time zone name like America/New_York"
            raise click.BadParameter(msg) from None
        first, last = params["session"]
        session = Session(first, last, tz=zone)
    return Selection(
        params["symbols"],
        params["start"],
        params["end"],
        clock,
        clean,
        session,
        tuple(params.get("venues") or ()),
    )


def _signing(params: dict[str, Any]) -> Signing:
    match: QuoteMatch = "at-or-before" if params["quote_match"] == "at-or-before" else "strict"
    distribution: Distribution = (
        "student-t" if params.get("bvc_distribution") == "student-t" else "normal"
    )
    if params.get("bvc_dof") is not None and distribution == "normal":
        msg = "--bvc-dof applies to --bvc-distribution student-t only"
        raise click.BadParameter(msg)
    return Signing(
        params["method"],
        match,
        params["quote_lag"],
        distribution,
        params.get("bvc_dof"),
        params.get("max_quote_age"),
    )


def _say(line: str) -> None:
    """Tell people something on stderr, one unwrapped line (log files and cron mail stay tidy).

    Nothing under --quiet (errors and alerts do not come through here).
    """
    if not _quiet():
        click.echo(line, err=True)


def _warn(lines: list[str]) -> None:
    for line in lines:
        _say(f"Warning: {line}")


SIGNING_AND_BARS = "reading, signing trades, building bars"
PHASES_STAGE = "phases and episodes"


def _collect(
    plans: Sequence[pl.LazyFrame], inputs: list[Loaded], stage: str = SIGNING_AND_BARS
) -> list[pl.DataFrame]:
    """Collect ``plans`` together, showing ``stage`` as progress on a terminal."""
    return collect(plans, inputs, on_stage=_stages(), stage=stage)


def _collect_with_cleaning(
    plans: list[pl.LazyFrame],
    dropped: pl.LazyFrame | None,
    inputs: list[Loaded],
    stage: str = SIGNING_AND_BARS,
) -> list[pl.DataFrame]:
    """Collect ``plans`` (and the cleaning counts, reported on stderr) in one run."""
    frames = _collect([*plans, *([dropped] if dropped is not None else [])], inputs, stage)
    if dropped is not None:
        cleaning = frames.pop()
        for note in cleaning_notes(cleaning):
            _say(note)
        context = click.get_current_context(silent=True)
        account = context.meta.get("mmflow.account") if context is not None else None
        if isinstance(account, RowAccount):
            account.extend(account_of([], cleaning))
            _say_account(account)
    return frames


def _parse_alerts(
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


def alert_options(func: F) -> F:
    """``--alert``, ``--alert-window`` and ``--alert-to`` (analyze, inventory, phases)."""
    decorators = [
        click.option(
            "--alert",
            "alerts",
            multiple=True,
            metavar="CONDITION",
            callback=_parse_alerts,
            help="Exit with code 3 (after writing all output) and print one ALERT line per "
            "instrument when CONDITION holds on its latest bar (repeatable), e.g. "
            "'phase=distribution', 'vpin>0.7', 'abs(inventory_z)>3 and "
            "liquidity_state=withdrawing'; operators = != < <= > >=, and, or, not, "
            "parentheses, abs(). Columns: those of the per-bar table.",
        ),
        click.option(
            "--alert-window",
            type=Duration(),
            help="Look at every bar whose start is within this of the latest bar (e.g. 30m) "
            "instead of the latest bar only.",
        ),
        click.option(
            "--alert-to",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the alerts as NDJSON to this file, atomically (empty when none).",
        ),
    ]
    return _stacked(func, decorators)


def _alert_conditions(params: dict[str, Any], schema: Callable[[], pl.Schema]) -> list[Condition]:
    """Bind every --alert to the columns of the bar table it will see (exit 2 when one fails).

    ``schema`` returns that table's schema (from its lazy plan; called only with --alert).
    """
    texts: tuple[str, ...] = params.get("alerts") or ()
    if not texts:
        for flag in ("alert_window", "alert_to"):
            if params.get(flag) is not None:
                msg = f"--{flag.replace('_', '-')} needs --alert CONDITION"
                raise click.UsageError(msg)
        return []
    target: Path | None = params.get("alert_to")
    if target is not None and not (target.parent if str(target.parent) else Path()).is_dir():
        msg = f"{target}: directory {target.parent} does not exist (create it first)"
        raise click.BadParameter(msg, param_hint="'--alert-to'")
    conditions, columns = [], schema()
    for text in texts:
        try:
            conditions.append(bind_alert(text, columns))
        except ConditionError as exc:
            msg = f"{exc}\n{exc.pointer()}"
            raise click.BadParameter(msg, param_hint="'--alert'") from None
    return conditions


def _raise_alerts(bars: pl.DataFrame, conditions: list[Condition], params: dict[str, Any]) -> None:
    """After all output is written: print the ALERT lines, write --alert-to, exit 3 if any."""
    if not conditions:
        return
    sys.stdout.flush()
    alerts = evaluate_alerts(bars, conditions, params.get("alert_window"))
    for line in alert_messages(alerts, conditions):
        click.echo(line, err=True)
    if params.get("alert_to") is not None:
        write_file(alerts, params["alert_to"], {}, fmt="ndjson")
    if alerts.height:
        click.get_current_context().exit(3)


MAX_CHART_FILES = 1000
"""Most files one ``-o DIR/`` chart run writes (one per instrument)."""


class ImageTarget:
    """Where charts go: one image file, or a folder with one PNG per instrument.

    ``-o chart.png`` (also ``.svg``, ``.pdf``) names one file; ``-o charts/`` (a trailing slash
    or an existing folder) a folder, created when the first chart is written.
    """

    def __init__(self, text: str) -> None:
        self.path = Path(text)
        self.folder = text.endswith(("/", os.sep)) or self.path.is_dir()
        parent = self.path.parent
        if not self.folder:
            image_format(self.path)
        if str(parent) and not parent.is_dir():
            msg = f"{text}: directory {parent} does not exist (create it first)"
            raise ParameterError(msg)

    def write(self, charts: Iterator[tuple[str, Any]], count: int, what: str) -> None:
        """Write ``(stem, figure)`` pairs, one file each in a folder, or the only one to a file.

        Raises
        ------
        ParameterError
            When several charts would go to one file (use a folder).
        MmflowError
            When a folder would get more than :data:`MAX_CHART_FILES` files.
        """
        if not self.folder and count > 1:
            msg = (
                f"{self.path}: {count} {what} would share one image; write one file each "
                f"with -o {self.path.with_suffix('')}/ or keep one with --symbol"
            )
            raise ParameterError(msg)
        if count > MAX_CHART_FILES:
            msg = (
                f"{count:,} {what} would make {count:,} images (at most {MAX_CHART_FILES:,}); "
                "keep fewer with --symbol"
            )
            raise MmflowError(msg)
        if self.folder:
            self.path.mkdir(exist_ok=True)
        seen: set[str] = set()
        for stem, figure in charts:
            target = self.path
            if self.folder:
                name = stem
                while name in seen:  # two names that differ only in unsafe characters
                    name += "_"
                seen.add(name)
                target = self.path / f"{name}.png"
            write_figure(figure, target)
            _say(f"wrote {target}")


def _parse_panels(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    try:
        return chosen_panels(value.split(",") if value else None)
    except ParameterError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _quote_notes(checked: list[pl.DataFrame], params: dict[str, Any]) -> None:
    """Warn about quotes that could not be used (other venue, too old, horizon past the end)."""
    if checked:
        _warn(quote_warnings(checked[0], max_quote_age=params.get("max_quote_age")))


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
    return _stacked(func, decorators)


def max_bars_option(flag: str, what: str) -> Callable[[F], F]:
    """Return the option limiting the rows a run makes (default sized to the memory)."""
    return click.option(
        flag,
        type=click.IntRange(min=1),
        help=f"Most {what} a run may make; estimated before they are made (exit 2 above). "
        f"Default: available memory / {BYTES_PER_BAR} bytes, now {default_max_rows():,}.",
    )


def _bar_options(params: dict[str, Any]) -> BarOptions:
    limit = params.get("max_bars")
    return BarOptions(
        every=params["bar"] or "1m",
        horizon=params["horizon"],
        lookback=params["lookback"],
        pressure_horizon=params["pressure_horizon"],
        vpin_window=params["vpin_window"],
        buckets_per_day=params["buckets_per_day"],
        spread_factor=params["spread_factor"],
        depth_factor=params["depth_factor"],
        fill=params["fill"],
        max_bars=default_max_rows() if limit is None else limit,
    )


@cli.command(name="analyze")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@signing_options
@click.option(
    "--table",
    "which",
    type=click.Choice(["summary", "bars"]),
    help="Which table -o/--to write (default: bars for -o or with --bar, else summary).",
)
@alert_options
@input_options
@selection_options
@output_options
def analyze_command(**params: Any) -> None:
    """Summarise order flow and market-maker inventory per instrument; every metric per bar.

    Trade files and quote files may be given together; quote files can also be named with
    --quotes. Signs come from the vendor's aggressor flag where known, else Lee-Ready against
    the prevailing quote of the same venue, else the tick rule (--method changes this). On
    screen: one row per instrument (venue and symbol); -o writes the per-bar table with every
    column of `flow` and `inventory`. Bars cover the days that hold trades or quotes (--fill:
    a continuous grid); sizes are checked against --max-bars before anything is made.

    Example:

    \b
        mmflow analyze sample_data/
        mmflow analyze trades/*.csv.gz --bar 5m -o bars.parquet
    """
    inputs, trades, quotes = _market(params)
    arguments: dict[str, Any] = {
        "options": _bar_options(params),
        "signing": _signing(params),
        "selection": _selection(params),
    }
    conditions = _alert_conditions(  # --alert reads the bar table: its lazy schema, no data
        params, lambda: analyze(trades, quotes, **arguments).bars.collect_schema()
    )
    result = analyze(trades, quotes, **arguments, materialize=lambda plans: _collect(plans, inputs))
    assert result.paths is not None
    checks = [result.checks] if result.checks is not None else []
    summary, bars, mix, paths, *checked = _collect_with_cleaning(
        [result.summary, result.bars, result.mix, result.paths, *checks],
        result.dropped,
        inputs,
        "phases and summary",
    )
    _quote_notes(checked, params)
    require_rows(summary, "trades")
    table = params["which"] or (
        "bars" if params["output"] is not None or params["bar"] is not None else "summary"
    )
    chosen = bars if table == "bars" else summary
    metadata = build_metadata(
        table=f"analyze.{table}",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=result.parameters,
    )
    if not _emit(chosen, output=params["output"], to_format=params["to_format"], metadata=metadata):
        if table == "summary":
            Console().print(analyze_table(chosen, mix=mix, paths=paths))
        else:
            Console().print(frame_table(chosen, title="mmflow analyze"))
    _raise_alerts(bars, conditions, params)


@cli.command(name="flow")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@signing_options
@input_options
@selection_options
@output_options
def flow_command(**params: Any) -> None:
    """Order flow per instrument and bar: volume split, net flow, CVD, OFI, VPIN, impact, costs.

    Columns: open, high, low, close, vwap, volume, trades, buy_volume, sell_volume,
    unknown_volume, net_flow, trade_imbalance, cvd; with quotes also ofi, ofi_normalized,
    mid_close, spread, depth, quote_imbalance, effective_spread, realized_spread, price_impact;
    and vpin, kyle_lambda, amihud, roll_spread.

    Example:

    \b
        mmflow flow sample_data/binance/ --bar 1m
        mmflow flow trades.csv.gz --quotes 'quotes/*.csv.gz' --bar 5m -o flow.parquet
    """
    inputs, trades, quotes = _market(params)
    options = _bar_options(params)
    market = market_bars(
        trades, quotes, options=options, signing=_signing(params), selection=_selection(params)
    )
    checks = [market.checks] if market.checks is not None else []
    bars, *checked = _collect_with_cleaning(
        [bar_table(market, FLOW_COLUMNS), *checks], market.dropped, inputs
    )
    _quote_notes(checked, params)
    require_rows(bars, "trades")
    if quotes is None:
        _say("Note: OFI, spreads, depth and trade costs need quotes; those columns are empty.")
    metadata = build_metadata(
        table="flow", sources=_sources(inputs), clock=params["clock"], parameters=market.parameters
    )
    if not _emit(bars, output=params["output"], to_format=params["to_format"], metadata=metadata):
        Console().print(flow_table(bars))


@cli.command(name="inventory")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@signing_options
@click.option(
    "--table",
    "which",
    type=click.Choice(["bars", "summary", "episodes"]),
    help="Which table -o/--to write (default bars): per bar, per symbol, or withdrawal episodes.",
)
@alert_options
@click.option(
    "--evaluate",
    is_flag=True,
    help="Event study: realised volatility after withdrawal episodes vs a seeded placebo.",
)
@click.option(
    "--horizons",
    type=Horizons(),
    default=",".join(str(h) for h in DEFAULT_HORIZONS),
    show_default=True,
    help="Forward horizons of --evaluate, in bars.",
)
@click.option(
    "--placebo-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the --evaluate placebo draw (same seed, same bars).",
)
@click.option(
    "--placebo-ratio",
    type=click.IntRange(min=1, max=MAX_PLACEBO_RATIO),
    default=1,
    show_default=True,
    help="Placebo bars drawn per withdrawal episode in --evaluate.",
)
@input_options
@selection_options
@output_options
def inventory_command(**params: Any) -> None:
    """Market-maker inventory per bar, its half-life and price pressure, liquidity withdrawal.

    Per bar: mm_inventory (= −CVD), inventory_change, inventory_z, spread, depth,
    liquidity_state. Per symbol: inventory at the end, max long, max short, half-life
    (seconds), price-pressure slope, quote skew, share of time withdrawing; and the withdrawal
    episodes (start, end, spread and depth relative to normal). --evaluate: per symbol and
    horizon h, the mean realised volatility (square root of the summed squared log mid returns)
    over the h bars after each withdrawal episode starts, against as many seeded random
    non-episode bars, with Welch's t-statistic.

    Example:

    \b
        mmflow inventory sample_data/tardis/ --bar 1m
        mmflow inventory trades.csv --quotes quotes.csv --table summary --to csv
        mmflow inventory sample_data/binance/ --bar 1s --evaluate --horizons 1,5,15
    """
    if params["evaluate"] and params["which"]:
        msg = "--table does not apply with --evaluate (which writes the event study)"
        raise click.UsageError(msg)
    inputs, trades, quotes = _market(params)
    options = _bar_options(params)
    market = market_bars(
        trades, quotes, options=options, signing=_signing(params), selection=_selection(params)
    )
    if params["evaluate"]:
        _inventory_evaluate(params, inputs, market, options)
        return
    summary_plan, episodes_plan = inventory_report(market, options)
    bars_plan = bar_table(market, INVENTORY_COLUMNS)
    conditions = _alert_conditions(params, bars_plan.collect_schema)
    checks = [market.checks] if market.checks is not None else []
    bars, summary, episodes, *checked = _collect_with_cleaning(
        [bars_plan, summary_plan, episodes_plan, *checks],
        market.dropped,
        inputs,
    )
    _quote_notes(checked, params)
    require_rows(bars, "trades")
    chosen = {"summary": summary, "episodes": episodes}.get(params["which"] or "bars", bars)
    metadata = build_metadata(
        table=f"inventory.{params['which'] or 'bars'}",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=market.parameters,
    )
    if not _emit(chosen, output=params["output"], to_format=params["to_format"], metadata=metadata):
        console = Console()
        console.print(inventory_table(summary))
        if episodes.height:
            console.print(frame_table(episodes, title="liquidity withdrawal episodes"))
        elif not market.has_quotes:
            console.print("Liquidity state needs quotes (--quotes).")
        else:
            console.print("No liquidity withdrawal episodes.")
    _raise_alerts(bars, conditions, params)


def _inventory_evaluate(
    params: dict[str, Any], inputs: list[Loaded], market: Market, options: BarOptions
) -> None:
    """Run, write or print ``mmflow inventory --evaluate``."""
    plan = inventory_evaluation(
        market,
        options,
        horizons=params["horizons"],
        placebo_seed=params["placebo_seed"],
        placebo_ratio=params["placebo_ratio"],
    )
    first_bar = market.bars.select("ts").head(1)
    study, bars = _collect_with_cleaning([plan, first_bar], market.dropped, inputs)
    require_rows(bars, "trades")
    if study.is_empty():
        reason = (
            "the liquidity state needs quotes (--quotes)"
            if not market.has_quotes
            else "no liquidity withdrawal episodes in the data"
        )
        _say(f"Note: the event study is empty: {reason}.")
    parameters = {
        **market.parameters,
        "horizons": list(params["horizons"]),
        "placebo_seed": params["placebo_seed"],
        "placebo_ratio": params["placebo_ratio"],
    }
    metadata = build_metadata(
        table="inventory.evaluate",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=parameters,
    )
    if _emit(study, output=params["output"], to_format=params["to_format"], metadata=metadata):
        return
    if study.is_empty():
        return
    keys = [name for name in study.columns if name not in WITHDRAWAL_STUDY_COLUMNS]
    shown = [*keys, "horizon_bars", "episodes", "events", "event_volatility"]
    shown += ["placebo_volatility", "volatility_ratio", "t_statistic"]
    Console().print(
        compact_table(
            study.select(shown),
            title="event study: realised volatility after liquidity withdrawal",
            caption="√Σ r² of log mid returns over the next h bars vs seeded non-episode bars",
        )
    )


@cli.command(name="classify")
@click.argument("files", nargs=-1, required=True)
@quote_options
@signing_options
@click.option(
    "--evaluate",
    is_flag=True,
    help="Score every method against the vendor side (trades that have one).",
)
@click.option("--bar", type=Duration(), default="1m", show_default=True, help="Bars for bvc.")
@click.option("--max-bars", type=click.IntRange(min=1), help="Most bvc bars (default: by memory).")
@input_options
@selection_options
@output_options
def classify_command(**params: Any) -> None:
    """Sign every trade (who initiated it), or score every method against the vendor side.

    Per trade: ts, symbol, price, size, aggressor_side, trade_sign, sign_method (and mid_price,
    spread when quotes are used); on screen, how many trades each rule signed. With --evaluate:
    symbol, method, trades, classified, accuracy, coverage, buy_recall, sell_recall, and
    Lee-Ready's accuracy at quote lags of 0, 50 ms, 100 ms, 500 ms and 1 s.

    Example:

    \b
        mmflow classify sample_data/databento/ --method lee-ready --to csv
        mmflow classify sample_data/binance/ --evaluate
    """
    inputs, trades, quotes = _market(params)
    signing, selection = _signing(params), _selection(params)
    if params["evaluate"]:
        scored = evaluate(trades, quotes, signing=signing, every=params["bar"], selection=selection)
        classified = classify(trades, quotes, signing=signing, selection=selection)
        venue_plans = [classified.checks] if classified.checks is not None else []
        scores, lags, checks, *checked = _collect(
            [scored.scores, scored.lags, classified.diagnostics, *venue_plans],
            inputs,
            "reading, scoring every method",
        )
        _quote_notes(checked, params)
        require_rows(scores, "trades with a vendor side")
        _warn(signing_warnings(checks, scores))
        metadata = build_metadata(
            table="classify.evaluate",
            sources=_sources(inputs),
            clock=params["clock"],
            parameters={"quote_match": signing.match, "quote_lag": signing.lag},
        )
        if not _emit(
            scores, output=params["output"], to_format=params["to_format"], metadata=metadata
        ):
            console = Console()
            console.print(evaluation_table(scores, title="mmflow classify --evaluate"))
            if lags.height:
                console.print(compact_table(lags, title="Lee-Ready accuracy by quote lag"))
        return
    result = classify(
        trades,
        quotes,
        signing=signing,
        every=params["bar"],
        selection=selection,
        max_bars=params["max_bars"],
    )
    venue_plans = [result.checks] if result.checks is not None else []
    signed, mix, checks, *checked = _collect_with_cleaning(
        [result.trades, result.mix, result.diagnostics, *venue_plans], result.dropped, inputs
    )
    _quote_notes(checked, params)
    require_rows(signed, "trades")
    _warn(signing_warnings(checks))
    metadata = build_metadata(
        table="classify.bars" if signing.method == "bvc" else "classify.trades",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=result.parameters,
    )
    if not _emit(signed, output=params["output"], to_format=params["to_format"], metadata=metadata):
        console = Console()
        if signing.method == "bvc":
            console.print(frame_table(signed, title="mmflow classify --method bvc"))
        else:
            console.print(frame_table(mix, title="mmflow classify: trades signed by each rule"))
            console.print("Write every signed trade with --to csv or -o trades.parquet.")


@cli.command(name="convert")
@click.argument("files", nargs=-1, required=True)
@quote_options
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(path_type=Path),
    callback=_checked(check_output_directory),
    help="Dataset folder to write (symbol=…/date=…/trades.parquet, quotes.parquet).",
)
@click.option("--overwrite", is_flag=True, help="Replace partition files that already exist.")
@input_options
@selection_options
def convert_command(**params: Any) -> None:
    """Convert vendor files into a canonical parquet dataset partitioned by symbol and date.

    Every analysis command reads such a folder back as input.

    Example:

    \b
        mmflow convert sample_data/ -o dataset/
        mmflow analyze dataset/
    """
    inputs = _load(params, params["files"], params["fmt"])
    if params["quote_files"]:
        inputs += _load(params, params["quote_files"], params["quotes_format"])
    inputs = read_many(inputs)
    selection = _selection(params)
    _account(params, inputs, gather(inputs, TRADES), gather(inputs, QUOTES))
    metadata = build_metadata(
        table="canonical",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=parameters_of(selection, Signing()),
    )
    stages = _stages()
    report(stages, Stage("writing the dataset"))
    try:
        written, notes = write_dataset(
            gather(inputs, TRADES),
            gather(inputs, QUOTES),
            params["directory"],
            overwrite=params["overwrite"],
            selection=selection,
            metadata=metadata,
        )
    finally:
        report(stages, Stage("writing the dataset", finished=True))
    for note in notes:
        _say(note)
    rows = ", ".join(f"{n:,} {name}" for name, n in written.rows.items())
    _say(f"wrote {len(written.files):,} files ({rows}) to {params['directory']}")


@cli.command(name="profile")
@click.argument("files", nargs=-1, required=True)
@quote_options
@click.option(
    "--bin",
    "bin_size",
    type=click.FloatRange(min=0, min_open=True),
    help="Price step of a profile row (default: the smallest price difference, the tick).",
)
@click.option(
    "--by",
    type=click.Choice(["symbol", "session", "date"]),
    default="symbol",
    show_default=True,
    help="One profile per symbol, per symbol and session (needs --session), or per UTC day.",
)
@click.option(
    "--value-area",
    "share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.7,
    show_default=True,
    help="Share of volume in the value area.",
)
@click.option(
    "--value-area-method",
    type=click.Choice(["two-row", "single-row"]),
    default="two-row",
    show_default=True,
    help="Dalton's two-row walk or the single-row walk.",
)
@click.option("--bar", type=Duration(), help="Footprint: volume at price per bar instead.")
@click.option(
    "--max-levels",
    type=click.IntRange(min=1),
    help="Most profile rows (price levels; bars × levels for a footprint), estimated before "
    "they are made (exit 2 above). Default: available memory / 4096 bytes.",
)
@click.option(
    "--table",
    "which",
    type=click.Choice(["levels", "value-area"]),
    help="Which table -o/--to write (default levels).",
)
@click.option(
    "--plot",
    metavar="PATH",
    help="Also draw the profile (buy/sell split, POC, value area) to this image (.png, .svg, "
    ".pdf), or one PNG per profile into a folder (charts/); needs the plot extra.",
)
@signing_options
@input_options
@selection_options
@output_options
def profile_command(**params: Any) -> None:
    """Volume profile: volume at price, buy/sell split, point of control and value area.

    Columns: price_level, volume, buy_volume, sell_volume, delta, trades; POC, value-area high
    and low per symbol. With --bar, a footprint per bar and price level with diagonal
    imbalances (ask volume vs bid volume one row below, 3:1).

    Example:

    \b
        mmflow profile sample_data/tardis/
        mmflow profile trades.csv --bin 0.5 --by date --to csv
        mmflow profile trades.csv --bar 5m -o footprint.parquet
        mmflow profile sample_data/tardis/ --plot profile.png
    """
    target = None
    if params["plot"]:
        require_matplotlib()
        target = ImageTarget(params["plot"])
    inputs, trades, quotes = _market(params)
    by = ["symbol"] if params["by"] == "symbol" else ["symbol", params["by"]]
    if params["by"] == "session" and not params.get("session"):
        msg = "--by session needs --session HH:MM-HH:MM"
        raise click.BadParameter(msg)
    method: ValueAreaMethod = (
        "single-row" if params["value_area_method"] == "single-row" else "two-row"
    )
    result = profile(
        trades,
        quotes,
        bin_size=params["bin_size"],
        by=by,
        share=params["share"],
        method=method,
        every=params["bar"],
        signing=_signing(params),
        selection=_selection(params),
        max_levels=params["max_levels"],
    )
    plans = [result.levels, result.value_areas]
    if result.footprint is not None:
        plans.append(result.footprint)
    frames = _collect(plans, inputs, "reading, signing trades, building the profile")
    levels, areas = frames[0], frames[1]
    require_rows(levels, "trades")
    if target is not None:
        figures = (
            (file_stem(keys), figure) for keys, figure in profile_figures(levels, areas, by=by)
        )
        target.write(figures, areas.height, "profiles")
    chosen = frames[2] if result.footprint is not None else areas
    if result.footprint is None and params["which"] != "value-area":
        chosen = levels
    metadata = build_metadata(
        table="profile",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=result.parameters,
    )
    if _emit(chosen, output=params["output"], to_format=params["to_format"], metadata=metadata):
        return
    console = Console()
    if result.footprint is not None:
        console.print(frame_table(chosen.head(60), title="mmflow profile --bar (footprint)"))
        return
    for area in areas.iter_rows(named=True):
        mine = levels
        for key in (k for k in areas.columns if k == "venue" or k in by):
            mine = mine.filter(pl.col(key).eq_missing(pl.lit(area[key], levels.schema[key])))
        console.print(profile_chart(mine, area))


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
    for name, text in reversed(helps.items()):
        field_name = name.replace("-", "_")
        value = getattr(defaults, field_name)
        low, high = PHASE_RANGES[field_name]
        kind: click.ParamType[Any]
        if isinstance(low, int) and field_name not in {"enter", "evidence"}:
            kind = click.IntRange(min=low, max=None if high is None else int(high))
        else:
            kind = click.FloatRange(min=low, max=high)
        func = click.option(
            f"--{name}",
            field_name,
            type=kind,
            default=value,
            show_default=value is not None,
            help=text + ".",
        )(func)
    return func


@cli.command(name="phases")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@phase_options
@click.option("--episodes", is_flag=True, help="One row per episode instead of per bar.")
@click.option(
    "--evaluate",
    is_flag=True,
    help="Event study: reversal returns after distribution episodes vs a seeded placebo.",
)
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="truth.parquet from mmflow simulate: bar precision/recall and episode recall.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Let a bar's phase use later bars (better labels, not for live use).",
)
@click.option("--placebo-seed", type=int, default=0, show_default=True)
@alert_options
@signing_options
@input_options
@selection_options
@output_options
def phases_command(**params: Any) -> None:
    """Accumulation and distribution phases of market-maker inventory, per bar or per episode.

    A bar is distribution when market makers that built an extreme inventory are unloading it
    into opposite flow, still unloading, while price fails to follow that flow (absorption).
    Labels are causal: a bar's phase uses data up to its end only (unless --offline).
    Per bar: phase, inventory_side, distribution_score and the components; --episodes: symbol,
    phase, inventory_side, start, end, bars, inventory_start, inventory_end, unloaded, vwap,
    price_levels, price_change; --evaluate: the event study (and --truth scores).

    Example:

    \b
        mmflow simulate -o sim/ --seed 101
        mmflow phases sim/trades.parquet sim/quotes.parquet --episodes
        mmflow phases sim/trades.parquet sim/quotes.parquet --evaluate --truth sim/truth.parquet
    """
    inputs, trades, quotes = _market(params)
    parameters = PhaseParameters(
        lookback=params["lookback"],
        horizon=params["pressure_horizon"],
        **{name: params[name] for name in PHASE_OPTIONS},
    )
    truth = pl.scan_parquet(params["truth"]) if params["truth"] else None
    arguments: dict[str, Any] = {
        "options": _bar_options(params),
        "parameters": parameters,
        "offline": params["offline"],
        "truth": truth,
        "placebo_seed": params["placebo_seed"],
        "signing": _signing(params),
        "selection": _selection(params),
    }
    conditions = _alert_conditions(  # --alert reads the bar table: its lazy schema, no data
        params, lambda: phases(trades, quotes, **arguments).bars.collect_schema()
    )
    result = phases(trades, quotes, **arguments, materialize=lambda plans: _collect(plans, inputs))
    if params["evaluate"]:
        plans = [result.study, *([result.scores] if result.scores is not None else [])]
        frames = _collect(plans, inputs, PHASES_STAGE)
        table, name = frames[-1] if result.scores is not None else frames[0], "evaluate"
    elif params["episodes"]:
        [table] = _collect([result.episodes], inputs, PHASES_STAGE)
        name = "episodes"
    else:
        [table] = _collect([result.bars], inputs, PHASES_STAGE)
        require_rows(table, "trades")
        name = "bars"
    metadata = build_metadata(
        table=f"phases.{name}",
        sources=_sources(inputs),
        clock=params["clock"],
        parameters=result.parameters,
    )
    phase_bars = table if name == "bars" else None
    if _emit(table, output=params["output"], to_format=params["to_format"], metadata=metadata):
        _phase_alerts(phase_bars, result.bars, inputs, conditions, params)
        return
    console = Console()
    if params["evaluate"]:
        shown = ["horizon", "count", "mean", "t_statistic", "hit_rate", "placebo_mean"]
        shown += ["placebo_hit_rate", "difference_t_statistic"]
        console.print(
            compact_table(
                frames[0].select(shown),
                title="event study: reversal returns after distribution episodes",
                caption="log returns signed by the expected reversal; placebo: seeded random bars",
            )
        )
        if result.scores is not None:
            columns = ["symbol", "precision", "recall", "episodes", "episodes_found"]
            columns += ["episode_recall", "false_positive_rate"]
            console.print(
                compact_table(
                    table.select(columns),
                    title="distribution bars against simulator truth",
                    caption="a row without a symbol pools all symbols",
                )
            )
    elif params["episodes"]:
        console.print(episodes_table(table))
    else:
        console.print(phases_table(table))
    _phase_alerts(phase_bars, result.bars, inputs, conditions, params)


def _phase_alerts(
    bars: pl.DataFrame | None,
    plan: pl.LazyFrame,
    inputs: list[Loaded],
    conditions: list[Condition],
    params: dict[str, Any],
) -> None:
    """--alert for phases: on the bar table, collected now when --episodes/--evaluate was shown."""
    if conditions:
        [bars] = [bars] if bars is not None else _collect([plan], inputs, PHASES_STAGE)
        _raise_alerts(bars, conditions, params)


@cli.command(name="plot")
@click.argument("files", nargs=-1, required=True)
@quote_options
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="PATH",
    help="Image to write (.png, .svg, .pdf), or a folder (charts/) for one PNG per instrument "
    "named <venue>_<symbol>.png.",
)
@click.option(
    "--panels",
    callback=_parse_panels,
    metavar="NAME,...",
    help=f"Panels to draw, top to bottom (default all): {','.join(PANELS)}.",
)
@bar_options
@phase_options
@signing_options
@input_options
@selection_options
def plot_command(**params: Any) -> None:
    """Draw one chart per instrument: price with phases, CVD and inventory, OFI, spread, VPIN.

    Panels share the time axis: price (last trade) with accumulation and distribution
    episodes shaded and the bars the phase rule labels marked along the bottom;
    CVD and market-maker inventory; OFI per bar; spread and depth with liquidity-withdrawal
    episodes shaded; VPIN. Panels without data (no quotes: no OFI, spread, depth) are left
    out with a note. Times are shown in --tz (default UTC). Needs the plot extra
    (pip install 'mmflow[plot]'). Several instruments need a folder: -o charts/.

    Example:

    \b
        mmflow plot sample_data/simulated/ -o chart.png
        mmflow plot trades.csv.gz --quotes quotes.csv.gz --bar 5m --tz America/New_York -o charts/
        mmflow plot sim/ --panels price,cvd --start 2024-01-02T01:00Z -o chart.svg
    """
    require_matplotlib()
    target = ImageTarget(params["output"])
    inputs, trades, quotes = _market(params)
    options = _bar_options(params)
    parameters = PhaseParameters(
        lookback=params["lookback"],
        horizon=params["pressure_horizon"],
        **{name: params[name] for name in PHASE_OPTIONS},
    )
    result = chart(
        trades,
        quotes,
        options=options,
        parameters=parameters,
        signing=_signing(params),
        selection=_selection(params),
        materialize=lambda plans: collect(plans, inputs),
    )
    bars, episodes, withdrawals = _collect_with_cleaning(
        [result.bars, result.episodes, result.withdrawals], result.dropped, inputs
    )
    require_rows(bars, "trades")
    charts = instrument_charts(
        bars,
        episodes,
        withdrawals,
        every=options.every,
        panels=params["panels"],
        tz=params["tz"] or "UTC",
        has_quotes=result.has_quotes,
    )

    def drawn() -> Iterator[tuple[str, Any]]:
        for item in charts:
            for note in item.notes:
                _say(f"Note: {instrument_name(item.instrument)}: {note}")
            yield file_stem(item.instrument), item.figure

    target.write(drawn(), instrument_count(bars), "instruments")


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


def simulation_options(func: F) -> F:
    """Add the regime knobs of :class:`mmflow.simulate.SimulationParameters`."""
    d = SimulationParameters()
    positive = click.FloatRange(min=0)
    bars = click.IntRange(min=1)
    options: list[Callable[[Any], Any]] = [
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
    return _stacked(func, options)


@cli.command(name="simulate")
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(path_type=Path),
    callback=_checked(check_output_directory),
    help="Folder for trades.parquet, quotes.parquet and truth.parquet.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--symbols", type=click.IntRange(min=1, max=26), default=2, show_default=True)
@click.option(
    "--hours", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True
)
@click.option(
    "--trades-per-hour",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
)
@click.option(
    "--episodes-per-day",
    type=click.FloatRange(min=0),
    default=6.0,
    show_default=True,
    help="Accumulation → distribution → reversal episodes per symbol and day (0: noise only).",
)
@simulation_options
@click.option("--verbose", is_flag=True, expose_value=False, callback=_set_verbose)
@quiet_option
def simulate_command(**params: Any) -> None:
    """Write a synthetic market whose market maker accumulates and distributes inventory.

    A market maker quotes around a latent fair value and skews its quotes against its
    inventory; noise traders trade with it; scripted episodes push it into inventory
    (accumulation), let it work the inventory off into opposite flow across several price
    levels (distribution), then reverse. Writes trades.parquet (with the true aggressor side),
    quotes.parquet and truth.parquet (per bar: true inventory and phase). Same seed, same files.

    Example:

    \b
        mmflow simulate -o sim/ --seed 7 --hours 24
        mmflow analyze sim/trades.parquet sim/quotes.parquet
    """
    count = params["symbols"]
    names = tuple(f"SIM{chr(ord('A') + i)}" for i in range(count))
    parameters = SimulationParameters(
        seed=params["seed"],
        symbols=names,
        hours=params["hours"],
        trades_per_hour=params["trades_per_hour"],
        episodes_per_day=params["episodes_per_day"],
        **{name: params[name] for name in SIMULATION_OPTIONS},
    )
    simulation = simulate(parameters)
    written = write_simulation(simulation, params["directory"])
    _say(
        f"wrote {simulation.trades.height:,} trades, {simulation.quotes.height:,} quotes and "
        f"{simulation.truth.height:,} truth bars to {', '.join(str(p) for p in written)}"
    )


def main() -> None:
    """Run the command line (the ``mmflow`` script and ``python -m mmflow``).

    Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, each after removing every temporary file; a
    closed pipe (``mmflow … | head``) ends it quietly (:mod:`mmflow.interrupts`).
    """
    interrupts.install()
    cli(prog_name="mmflow")
