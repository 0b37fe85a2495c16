"""What every ``mmflow`` command does around its one library call.

Read the inputs (with the row account), collect plans with progress on a terminal, report
cleaning and quote notes on stderr, write a table to ``-o``/``--to`` with its metadata, and
raise ``--alert`` conditions. Messages for people go to stderr through :func:`say`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import polars as pl

from mmflow.analysis import Selection, Signing, selection_account
from mmflow.cli.options import AlertOptions, Inputs, Output, QuoteFiles
from mmflow.errors import MmflowError, NoDataError, ParameterError
from mmflow.io import Loaded, RowAccount, load_inputs
from mmflow.io.assemble import (
    account_of,
    collect,
    collect_accounts,
    gather,
    held_inputs,
    read_many,
)
from mmflow.io.spill import parses_text, spill_text_inputs
from mmflow.progress import OnStage
from mmflow.render.messages import cleaning_notes, quote_warnings
from mmflow.render.write import (
    STREAMED_FORMATS,
    build_metadata,
    format_from_suffix,
    image_format,
    write_figure,
    write_file,
    write_to,
)
from mmflow.schema import QUOTES, TRADES
from mmflow.scratch import make_directory, remove

if TYPE_CHECKING:
    from mmflow.alerts import Condition  # imported with --alert only (start-up)

__all__ = [
    "MAX_CHART_FILES",
    "PHASES_STAGE",
    "SIGNING_AND_BARS",
    "ImageTarget",
    "alert_conditions",
    "check_alert_flags",
    "checked_account",
    "collect_checked",
    "collect_plans",
    "collect_with_cleaning",
    "emit",
    "load",
    "market",
    "metadata_for",
    "quote_notes",
    "raise_alerts",
    "read_all",
    "say",
    "sources",
    "stages",
    "streams",
    "warn",
]

SIGNING_AND_BARS = "reading, signing trades, building bars"
PHASES_STAGE = "phases and episodes"
MAX_CHART_FILES = 1000
"""Most files one ``-o DIR/`` chart run writes (one per instrument)."""


def _meta(key: str) -> Any:
    context = click.get_current_context(silent=True)
    return None if context is None else context.meta.get(key)


def stages() -> OnStage | None:
    """Return the progress display of this run: on a terminal's stderr, without --quiet."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or _meta("mmflow.quiet") or not sys.stderr.isatty():
        return None
    from mmflow.render.progress import StageDisplay, no_color  # rich: on a terminal only

    display = ctx.meta.get("mmflow.stages")
    if display is None:
        display = StageDisplay(sys.stderr, color=not no_color())
        ctx.meta["mmflow.stages"] = display
        ctx.call_on_close(display.close)
    assert isinstance(display, StageDisplay)
    return display


def say(line: str) -> None:
    """Tell people something on stderr, one unwrapped line (log files and cron mail stay tidy).

    Nothing under --quiet (errors and alerts do not come through here).
    """
    if not _meta("mmflow.quiet"):
        click.echo(line, err=True)


def warn(lines: list[str]) -> None:
    """Say each of ``lines`` as a warning."""
    for line in lines:
        say(f"Warning: {line}")


def load(inputs: Inputs, files: Sequence[str], fmt: str) -> list[Loaded]:
    """Read ``files``; say in one note which folder entries were skipped."""
    found = load_inputs(
        files, fmt, inputs.read, exclude=inputs.exclude, strict=inputs.strict, on_stage=stages()
    )
    note = found.note()
    if note:
        say(f"Note: {note}")
    return found.loaded


def _say_account(account: RowAccount, when: str | None = None) -> None:
    if _meta("mmflow.verbose"):
        for table in account.tables():
            say(f"Rows{f' ({when})' if when else ''}: {account.summary(table)}")


def account(
    inputs: Inputs,
    selection: Selection,
    loaded: list[Loaded],
    frames: tuple[pl.LazyFrame | None, pl.LazyFrame | None],
) -> RowAccount:
    """Count rows read, dropped (by reason) and used, in one pass; warn about dropped rows.

    Stops on unparseable rows unless --skip-bad-rows. The account is printed with --verbose
    (with --clean, again after TAQ cleaning by the commands that report it).
    """
    selected = selection_account(*frames, selection)
    return checked_account(inputs, selection, collect_accounts(loaded, selected))


def checked_account(
    inputs: Inputs, selection: Selection, frames: Sequence[pl.DataFrame]
) -> RowAccount:
    """Build the run's account from collected account tables; stop, warn and report it.

    As :func:`account` does, for tables counted elsewhere (e.g. on Dask workers).
    """
    counted = account_of(frames)
    counted.raise_for_bad_rows(skip=inputs.skip_bad_rows)
    warn(counted.warnings())
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta["mmflow.account"] = counted
    _say_account(counted, "before TAQ cleaning" if selection.clean is not None else None)
    return counted


def read_all(files: Sequence[str], quotes: QuoteFiles, inputs: Inputs) -> list[Loaded]:
    """Read the positional inputs and the --quotes files."""
    loaded = load(inputs, files, inputs.fmt)
    if quotes.files:
        loaded += load(inputs, quotes.files, quotes.fmt)
    return loaded


def market(
    files: Sequence[str],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    *,
    hold: bool = False,
) -> tuple[list[Loaded], pl.LazyFrame, pl.LazyFrame | None]:
    """Load the positional inputs and --quotes files; return inputs, trades and quotes.

    With ``hold`` (a command whose tables the chunked engine computes in this process), the
    files are read into memory here, each with its row account in the same run, when their
    rows fit the engine's rule for the command's ``--memory-limit`` (:func:`_held`): the
    engine would hold them anyway, and every row is then read once instead of once per count.
    """
    loaded = read_all(files, quotes, inputs)
    warn([note for item in loaded for note in item.frames.notes])
    loaded = read_many(loaded)
    context = click.get_current_context(silent=True)
    if context is not None:  # a failure later in the run is traced back to its file
        context.meta["mmflow.inputs"] = loaded
    if any(
        parses_text(f)
        for i in loaded
        if not i.in_memory
        for f in (i.frames.trades, i.frames.quotes)
    ):
        # text inputs are parsed once: into scratch parquet, their account counted meanwhile
        scratch = make_directory(".mmflow-text-")
        context = click.get_current_context(silent=True)
        if context is not None:
            context.call_on_close(lambda: remove(scratch))
        loaded = spill_text_inputs(loaded, scratch)
    if hold:
        limit = context.params.get("memory_limit") if context is not None else None
        loaded = _held(loaded, limit if isinstance(limit, int) else None)
    trades = gather(loaded, TRADES)
    if trades is None:
        msg = "no trades in the inputs (they hold only quotes); pass trade files too"
        raise NoDataError(msg)
    quote_frame = gather(loaded, QUOTES)
    counted = account(inputs, selection, loaded, (trades, quote_frame))
    if hold and selection.clean is None and context is not None:
        _tell_engine(context, counted)
    return loaded, trades, quote_frame


def _held(loaded: list[Loaded], memory_limit: int | None) -> list[Loaded]:
    """Read ``loaded`` into memory when the engine would hold its rows (not for Dask tasks)."""
    from mmflow.engine.chunks import default_memory_limit
    from mmflow.engine.executors import ships_tasks
    from mmflow.engine.inputs import fits_in_memory

    if ships_tasks():  # the workers read the files themselves
        return loaded
    limit = default_memory_limit() if memory_limit is None else memory_limit
    return held_inputs(loaded, partial(fits_in_memory, memory_limit=limit))


def _tell_engine(context: click.Context, counted: RowAccount) -> None:
    """Give the engine the rows the account counted as used (it need not count them again)."""
    from mmflow.engine.inputs import known_rows

    used = (counted.total("trades", "used"), counted.total("quotes", "used"))
    context.call_on_close(known_rows(*used))


def collect_plans(
    plans: Sequence[pl.LazyFrame], loaded: list[Loaded], stage: str = SIGNING_AND_BARS
) -> list[pl.DataFrame]:
    """Collect ``plans`` together, showing ``stage`` as progress on a terminal."""
    return collect(plans, loaded, on_stage=stages(), stage=stage)


def collect_with_cleaning(
    plans: list[pl.LazyFrame],
    dropped: pl.LazyFrame | None,
    loaded: list[Loaded],
    stage: str = SIGNING_AND_BARS,
) -> list[pl.DataFrame]:
    """Collect ``plans`` (and the cleaning counts, reported on stderr) in one run."""
    frames = collect_plans([*plans, *([dropped] if dropped is not None else [])], loaded, stage)
    if dropped is not None:
        cleaning = frames.pop()
        for note in cleaning_notes(cleaning):
            say(note)
        counted = _meta("mmflow.account")
        if isinstance(counted, RowAccount):
            counted.extend(account_of([], cleaning))
            _say_account(counted, "after TAQ cleaning")
    return frames


def collect_checked(
    plans: list[pl.LazyFrame],
    *,
    checks: pl.LazyFrame | None,
    dropped: pl.LazyFrame | None,
    loaded: list[Loaded],
    signing: Signing,
    stage: str = SIGNING_AND_BARS,
) -> list[pl.DataFrame]:
    """Collect ``plans`` with the quote checks and cleaning counts; warn about unusable quotes."""
    extra = [checks] if checks is not None else []
    frames = collect_with_cleaning([*plans, *extra], dropped, loaded, stage)
    quote_notes(frames[len(plans) :], signing)
    return frames[: len(plans)]


def quote_notes(checked: list[pl.DataFrame], signing: Signing) -> None:
    """Warn about quotes that could not be used (other venue, too old, horizon past the end)."""
    if checked:
        warn(quote_warnings(checked[0], max_quote_age=signing.max_quote_age))


def sources(loaded: list[Loaded]) -> list[dict[str, str]]:
    """Return the inputs as the ``sources`` of written metadata."""
    return [{"path": i.source.display, "format": i.format.name} for i in loaded]


def metadata_for(
    table: str, loaded: list[Loaded], selection: Selection, parameters: dict[str, Any]
) -> dict[str, str]:
    """Return the key-value metadata of a table made from ``loaded`` under ``selection``."""
    return build_metadata(
        table=table, sources=sources(loaded), clock=selection.clock, parameters=parameters
    )


def emit(df: pl.DataFrame, output: Output, metadata: dict[str, str]) -> bool:
    """Write ``df`` to ``-o`` and/or ``--to``; return False when the caller should print it."""
    if output.path is not None:
        write_file(df, output.path, metadata)
        say(f"wrote {df.height:,} rows to {output.path}")
    if output.to_format is not None:
        write_to(df, sys.stdout.buffer, output.to_format, metadata)
        sys.stdout.buffer.flush()
    return not output.to_screen


def streams(output: Output) -> bool:
    """Whether the table goes to ``-o`` alone, in a format written while it is computed."""
    if output.path is None or output.to_format is not None:
        return False
    return format_from_suffix(output.path) in STREAMED_FORMATS


def check_alert_flags(alerts: AlertOptions) -> bool:
    """Check the alert flags that need no bar table (exit 2); return whether --alert is given."""
    if not alerts.conditions:
        for flag, value in (("--alert-window", alerts.window), ("--alert-to", alerts.target)):
            if value is not None:
                msg = f"{flag} needs --alert CONDITION"
                raise click.UsageError(msg)
        return False
    target = alerts.target
    if target is not None and not (target.parent if str(target.parent) else Path()).is_dir():
        msg = f"{target}: directory {target.parent} does not exist (create it first)"
        raise click.BadParameter(msg, param_hint="'--alert-to'")
    return True


def alert_conditions(alerts: AlertOptions, schema: Callable[[], pl.Schema]) -> list[Condition]:
    """Bind every --alert to the columns of the bar table it will see (exit 2 when one fails).

    ``schema`` returns that table's schema (from its lazy plan; called only with --alert).
    """
    if not check_alert_flags(alerts):
        return []
    from mmflow.alerts import ConditionError
    from mmflow.alerts import parse_condition as bind_alert

    conditions, columns = [], schema()
    for text in alerts.conditions:
        try:
            conditions.append(bind_alert(text, columns))
        except ConditionError as exc:
            msg = f"{exc}\n{exc.pointer()}"
            raise click.BadParameter(msg, param_hint="'--alert'") from None
    return conditions


def raise_alerts(bars: pl.DataFrame, conditions: list[Condition], alerts: AlertOptions) -> None:
    """After all output is written: print the ALERT lines, write --alert-to, exit 3 if any."""
    if not conditions:
        return
    from mmflow.alerts import alert_messages, evaluate_alerts

    sys.stdout.flush()
    found = evaluate_alerts(bars, conditions, alerts.window)
    for line in alert_messages(found, conditions):
        click.echo(line, err=True)
    if alerts.target is not None:
        write_file(found, alerts.target, {}, fmt="ndjson")
    if found.height:
        click.get_current_context().exit(3)


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
            say(f"wrote {target}")
