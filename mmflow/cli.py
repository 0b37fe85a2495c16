"""The ``mmflow`` command: parse options, call one library function, render.

Options come in typed groups (:mod:`mmflow.cli_options`), with defaults from the environment and
a TOML file (:mod:`mmflow.cli_config`); what surrounds the library call — reading, progress,
notes, writing, alerts — is in :mod:`mmflow.cli_run`. Errors the library raises become one line
on stderr (``Error: …``) and exit code 1; bad flags exit 2; ``--verbose`` shows the traceback.
Data goes to stdout, people's messages to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
import polars as pl
from click.core import ParameterSource

from mmflow import cli_run as run
from mmflow import interrupts
from mmflow._version import __version__
from mmflow.cli_config import (
    CONFIG_VARIABLE,
    Defaults,
    config_files,
    load_defaults,
    option_key,
    set_environment_names,
)
from mmflow.cli_options import (
    EXIT_CODES,
    PHASE_OPTIONS,
    AlertOptions,
    Bars,
    Duration,
    Horizons,
    Inputs,
    MmflowCommand,
    Output,
    QuoteFiles,
    alert_options,
    bar_options,
    checked,
    input_options,
    one_line,
    option_group,
    output_options,
    phase_options,
    quiet_option,
    quote_options,
    selection_options,
    set_verbose,
    signing_options,
    simulation_options,
)
from mmflow.errors import MmflowError, ParameterError, SizeLimitError
from mmflow.inspect import inspect_paths
from mmflow.io import Loaded
from mmflow.metrics.event_study import (
    DEFAULT_HORIZONS,
    MAX_PLACEBO_RATIO,
    WITHDRAWAL_STUDY_COLUMNS,
)
from mmflow.metrics.phases import PhaseParameters
from mmflow.metrics.profile import ValueAreaMethod
from mmflow.pipeline import (
    FLOW_COLUMNS,
    INVENTORY_COLUMNS,
    BarOptions,
    Market,
    Phases,
    Selection,
    Signing,
    analyze,
    bar_table,
    chart,
    classify,
    evaluate,
    gather,
    inventory_evaluation,
    inventory_report,
    market_bars,
    parameters_of,
    phases,
    profile,
    read_many,
    require_rows,
    signing_warnings,
    write_dataset,
)
from mmflow.progress import Stage, report
from mmflow.render.plot import (
    PANELS,
    InstrumentChart,
    chosen_panels,
    file_stem,
    instrument_charts,
    instrument_count,
    instrument_name,
    profile_figures,
    require_matplotlib,
)
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
from mmflow.render.write import build_metadata, check_output_directory
from mmflow.schema import QUOTES, TRADES
from mmflow.simulate import SimulationParameters, simulate, write_simulation

__all__ = ["PHASE_OPTIONS", "cli", "main"]

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


def _is_broken_pipe(exc: BaseException) -> bool:
    """Whether the reader of stdout went away (``mmflow … | head``), as Python or Rust says it."""
    return getattr(exc, "errno", None) == errno.EPIPE or "os error 32" in str(exc)


def _quiet_exit() -> None:
    """End quietly after the reader of stdout has gone: no message, no flush error at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


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
                raise click.UsageError(one_line(exc)) from exc
            raise click.ClickException(one_line(exc)) from exc
        except BaseException as exc:
            # A panic inside polars (a Rust bug, not the user's) still ends in one line.
            if type(exc).__name__ != "PanicException" or ctx.meta.get("mmflow.verbose"):
                raise
            msg = f"internal error in polars ({one_line(exc)}); rerun with --verbose and report it"
            raise click.ClickException(msg) from exc


def _use_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Read the configuration files into the option defaults (``--config``, eager)."""
    group = ctx.find_root().command
    if not isinstance(group, click.Group) or (ctx.parent is not None and value is None):
        return value
    defaults = load_defaults(group, config_files(value))
    ctx.meta["mmflow.defaults"] = defaults
    if ctx.parent is None:
        ctx.default_map = defaults.default_map()
    else:
        ctx.default_map = defaults.values.get(ctx.info_name or "", {})
    return value


CONFIG_HELP = (
    "TOML file of option defaults (also MMFLOW_CONFIG); default: ./mmflow.toml over "
    "~/.config/mmflow/config.toml."
)


def config_option(*, envvar: str | None = None) -> click.Option:
    """Return the ``--config FILE`` option (eager: it sets the defaults of the other options)."""
    return click.Option(
        ["--config"],
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        is_eager=True,
        expose_value=False,
        envvar=envvar,
        callback=_use_config,
        help=CONFIG_HELP,
    )


class ConfiguredCommand(MmflowCommand):
    """An :class:`MmflowCommand` that also takes ``--config FILE`` after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(config_option())


MmflowGroup.command_class = ConfiguredCommand


@click.group(
    cls=MmflowGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
    params=[config_option(envvar=CONFIG_VARIABLE)],
)
@click.option("--verbose", is_flag=True, help="Show full tracebacks on errors.")
@quiet_option
@click.version_option(__version__, prog_name="mmflow")
def cli(verbose: bool) -> None:
    """Order-flow and market-maker inventory analytics for trade and quote files.

    Progress is shown on stderr when it is a terminal; -q/--quiet silences notes, warnings
    and progress; NO_COLOR=1 turns off all colour and styling. Any option can also be set by
    MMFLOW_<OPTION> or in mmflow.toml (see `mmflow config`).

    Example:

    \b
        mmflow inspect sample_data/
        mmflow analyze sample_data/binance/BTCUSD_PERP-trades-2024-08-09.csv --bar 1m
    """


@cli.command()
@click.argument("files", nargs=-1, required=True)
@input_options
@output_options
def inspect(files: tuple[str, ...], inputs: Inputs, output: Output) -> None:
    """Say what each file is: format, kind, rows, symbols, time span, side encoding, issues.

    Example:

    \b
        mmflow inspect sample_data/
        mmflow inspect sample_data/ --to json
    """
    found = inspect_paths(
        files,
        inputs.fmt,
        inputs.read,
        exclude=inputs.exclude,
        strict=inputs.strict,
        on_stage=run.stages(),
    )
    if found.note:
        run.say(f"Note: {found.note}")
    for error in found.errors:
        click.echo(f"Error: {one_line(error)}", err=True)
    if found.reports:
        df = pl.DataFrame([r.as_dict() for r in found.reports], schema=_INSPECT_SCHEMA)
        sources = [{"path": r.path, "format": r.format} for r in found.reports]
        metadata = build_metadata(
            table="inspect", sources=sources, clock="recv", parameters={"format": inputs.fmt}
        )
        if not run.emit(df, output, metadata):
            console = Console()
            console.print(inspect_table(df) if console.width >= 120 else inspect_cards(df))
    if found.errors:
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
def analyze_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    alerts: AlertOptions,
    output: Output,
    which: str | None,
) -> None:
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
        mmflow analyze sample_data/tardis/ --bar 5m -o bars.parquet
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    plan = partial(analyze, trades, quote_frame, options=bars.options, signing=signing)
    conditions = run.alert_conditions(  # --alert reads the bar table: its lazy schema, no data
        alerts, lambda: plan(selection=selection).bars.collect_schema()
    )
    result = plan(selection=selection, materialize=partial(run.collect_plans, loaded=loaded))
    assert result.paths is not None
    summary, bar_frame, mix, paths = run.collect_checked(
        [result.summary, result.bars, result.mix, result.paths],
        checks=result.checks,
        dropped=result.dropped,
        loaded=loaded,
        signing=signing,
        stage="phases and summary",
    )
    require_rows(summary, "trades")
    table = which or ("bars" if output.path is not None or bars.explicit else "summary")
    chosen = bar_frame if table == "bars" else summary
    metadata = run.metadata_for(f"analyze.{table}", loaded, selection, result.parameters)
    if not run.emit(chosen, output, metadata):
        Console().print(
            analyze_table(chosen, mix=mix, paths=paths)
            if table == "summary"
            else frame_table(chosen, title="mmflow analyze")
        )
    run.raise_alerts(bar_frame, conditions, alerts)


@cli.command(name="flow")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@signing_options
@input_options
@selection_options
@output_options
def flow_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    output: Output,
) -> None:
    """Order flow per instrument and bar: volume split, net flow, CVD, OFI, VPIN, impact, costs.

    Columns: open, high, low, close, vwap, volume, trades, buy_volume, sell_volume,
    unknown_volume, net_flow, trade_imbalance, cvd; with quotes also ofi, ofi_normalized,
    mid_close, spread, depth, quote_imbalance, effective_spread, realized_spread, price_impact;
    and vpin, kyle_lambda, amihud, roll_spread.

    Example:

    \b
        mmflow flow sample_data/binance/ --bar 1m
        mmflow flow sample_data/tardis/ --bar 5m -o flow.parquet
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    prepared = market_bars(
        trades, quote_frame, options=bars.options, signing=signing, selection=selection
    )
    [table] = run.collect_checked(
        [bar_table(prepared, FLOW_COLUMNS)],
        checks=prepared.checks,
        dropped=prepared.dropped,
        loaded=loaded,
        signing=signing,
    )
    require_rows(table, "trades")
    if quote_frame is None:
        run.say("Note: OFI, spreads, depth and trade costs need quotes; those columns are empty.")
    metadata = run.metadata_for("flow", loaded, selection, prepared.parameters)
    if not run.emit(table, output, metadata):
        Console().print(flow_table(table))


@dataclass(frozen=True)
class EventStudy:
    """The ``inventory --evaluate`` options: horizons in bars and the seeded placebo draw."""

    evaluate: bool
    horizons: tuple[int, ...]
    placebo_seed: int
    placebo_ratio: int


def _event_study(values: Mapping[str, Any]) -> EventStudy:
    return EventStudy(
        values["evaluate"], values["horizons"], values["placebo_seed"], values["placebo_ratio"]
    )


inventory_study_options = option_group(
    "Event study",
    [
        click.option(
            "--evaluate",
            is_flag=True,
            help="Event study: realised volatility after withdrawal episodes vs a seeded placebo.",
        ),
        click.option(
            "--horizons",
            type=Horizons(),
            default=",".join(str(h) for h in DEFAULT_HORIZONS),
            show_default=True,
            help="Forward horizons of --evaluate, in bars.",
        ),
        click.option(
            "--placebo-seed",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Seed of the --evaluate placebo draw (same seed, same bars).",
        ),
        click.option(
            "--placebo-ratio",
            type=click.IntRange(min=1, max=MAX_PLACEBO_RATIO),
            default=1,
            show_default=True,
            help="Placebo bars drawn per withdrawal episode in --evaluate.",
        ),
    ],
    "study",
    _event_study,
)


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
@inventory_study_options
@input_options
@selection_options
@output_options
def inventory_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    alerts: AlertOptions,
    study: EventStudy,
    output: Output,
    which: str | None,
) -> None:
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
        mmflow inventory sample_data/binance/ --table summary --to csv
        mmflow inventory sample_data/binance/ --bar 1s --evaluate --horizons 1,5,15
    """
    if study.evaluate and which:
        msg = "--table does not apply with --evaluate (which writes the event study)"
        raise click.UsageError(msg)
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    prepared = market_bars(
        trades, quote_frame, options=bars.options, signing=signing, selection=selection
    )
    if study.evaluate:
        _inventory_evaluate(study, loaded, prepared, bars.options, selection, output)
        return
    summary_plan, episodes_plan = inventory_report(prepared, bars.options)
    bars_plan = bar_table(prepared, INVENTORY_COLUMNS)
    conditions = run.alert_conditions(alerts, bars_plan.collect_schema)
    bar_frame, summary, episodes = run.collect_checked(
        [bars_plan, summary_plan, episodes_plan],
        checks=prepared.checks,
        dropped=prepared.dropped,
        loaded=loaded,
        signing=signing,
    )
    require_rows(bar_frame, "trades")
    chosen = {"summary": summary, "episodes": episodes}.get(which or "bars", bar_frame)
    metadata = run.metadata_for(
        f"inventory.{which or 'bars'}", loaded, selection, prepared.parameters
    )
    if not run.emit(chosen, output, metadata):
        _print_inventory(summary, episodes, has_quotes=prepared.has_quotes)
    run.raise_alerts(bar_frame, conditions, alerts)


def _print_inventory(summary: pl.DataFrame, episodes: pl.DataFrame, *, has_quotes: bool) -> None:
    console = Console()
    console.print(inventory_table(summary))
    if episodes.height:
        console.print(frame_table(episodes, title="liquidity withdrawal episodes"))
    elif not has_quotes:
        console.print("Liquidity state needs quotes (--quotes).")
    else:
        console.print("No liquidity withdrawal episodes.")


def _inventory_evaluate(
    study: EventStudy,
    loaded: list[Loaded],
    prepared: Market,
    options: BarOptions,
    selection: Selection,
    output: Output,
) -> None:
    """Run, write or print ``mmflow inventory --evaluate``."""
    plan = inventory_evaluation(
        prepared,
        options,
        horizons=study.horizons,
        placebo_seed=study.placebo_seed,
        placebo_ratio=study.placebo_ratio,
    )
    first_bar = prepared.bars.select("ts").head(1)
    table, bar_frame = run.collect_with_cleaning([plan, first_bar], prepared.dropped, loaded)
    require_rows(bar_frame, "trades")
    if table.is_empty():
        reason = (
            "the liquidity state needs quotes (--quotes)"
            if not prepared.has_quotes
            else "no liquidity withdrawal episodes in the data"
        )
        run.say(f"Note: the event study is empty: {reason}.")
    parameters = {
        **prepared.parameters,
        "horizons": list(study.horizons),
        "placebo_seed": study.placebo_seed,
        "placebo_ratio": study.placebo_ratio,
    }
    metadata = run.metadata_for("inventory.evaluate", loaded, selection, parameters)
    if run.emit(table, output, metadata) or table.is_empty():
        return
    keys = [name for name in table.columns if name not in WITHDRAWAL_STUDY_COLUMNS]
    shown = [*keys, "horizon_bars", "episodes", "events", "event_volatility"]
    shown += ["placebo_volatility", "volatility_ratio", "t_statistic"]
    Console().print(
        compact_table(
            table.select(shown),
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
@click.option(
    "--bar",
    type=Duration(),
    default="1m",
    show_default=True,
    help="Bar length of bvc (e.g. 5m).",
)
@click.option(
    "--max-bars",
    type=click.IntRange(min=1),
    help="Most bvc bars, estimated before they are made (default: by available memory).",
)
@input_options
@selection_options
@output_options
def classify_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    output: Output,
    evaluate: bool,
    bar: str,
    max_bars: int | None,
) -> None:
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    if evaluate:
        _classify_evaluate(loaded, (trades, quote_frame), signing, selection, bar, output)
        return
    result = classify(
        trades, quote_frame, signing=signing, every=bar, selection=selection, max_bars=max_bars
    )
    signed, mix, checks = run.collect_checked(
        [result.trades, result.mix, result.diagnostics],
        checks=result.checks,
        dropped=result.dropped,
        loaded=loaded,
        signing=signing,
    )
    require_rows(signed, "trades")
    run.warn(signing_warnings(checks))
    name = "classify.bars" if signing.method == "bvc" else "classify.trades"
    if run.emit(signed, output, run.metadata_for(name, loaded, selection, result.parameters)):
        return
    console = Console()
    if signing.method == "bvc":
        console.print(frame_table(signed, title="mmflow classify --method bvc"))
    else:
        console.print(frame_table(mix, title="mmflow classify: trades signed by each rule"))
        console.print("Write every signed trade with --to csv or -o trades.parquet.")


def _classify_evaluate(
    loaded: list[Loaded],
    frames: tuple[pl.LazyFrame, pl.LazyFrame | None],
    signing: Signing,
    selection: Selection,
    every: str,
    output: Output,
) -> None:
    """Run, write or print ``mmflow classify --evaluate``."""
    trades, quotes = frames
    scored = evaluate(trades, quotes, signing=signing, every=every, selection=selection)
    classified = classify(trades, quotes, signing=signing, selection=selection)
    venue_plans = [classified.checks] if classified.checks is not None else []
    scores, lags, checks, *checked = run.collect_plans(
        [scored.scores, scored.lags, classified.diagnostics, *venue_plans],
        loaded,
        "reading, scoring every method",
    )
    run.quote_notes(checked, signing)
    require_rows(scores, "trades with a vendor side")
    run.warn(signing_warnings(checks, scores))
    parameters = {"quote_match": signing.match, "quote_lag": signing.lag}
    if run.emit(
        scores, output, run.metadata_for("classify.evaluate", loaded, selection, parameters)
    ):
        return
    console = Console()
    console.print(evaluation_table(scores, title="mmflow classify --evaluate"))
    if lags.height:
        console.print(compact_table(lags, title="Lee-Ready accuracy by quote lag"))


@cli.command(name="convert")
@click.argument("files", nargs=-1, required=True)
@quote_options
@option_group(
    "Output",
    [
        click.option(
            "-o",
            "--output",
            "directory",
            required=True,
            type=click.Path(path_type=Path),
            callback=checked(check_output_directory),
            metavar="DIR",
            help="Dataset folder to write (symbol=…/date=…/trades.parquet, quotes.parquet).",
        ),
        click.option(
            "--overwrite", is_flag=True, help="Replace partition files that already exist."
        ),
    ],
)
@input_options
@selection_options
def convert_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    directory: Path,
    overwrite: bool,
) -> None:
    """Convert vendor files into a canonical parquet dataset partitioned by symbol and date.

    Every analysis command reads such a folder back as input.

    Example:

    \b
        mmflow convert sample_data/ -o dataset/
        mmflow analyze dataset/
    """
    loaded = read_many(run.read_all(files, quotes, inputs))
    trades, quote_frame = gather(loaded, TRADES), gather(loaded, QUOTES)
    run.account(inputs, selection, loaded, (trades, quote_frame))
    parameters = parameters_of(selection, Signing())
    metadata = run.metadata_for("canonical", loaded, selection, parameters)
    stages = run.stages()
    report(stages, Stage("writing the dataset"))
    try:
        written, notes = write_dataset(
            trades,
            quote_frame,
            directory,
            overwrite=overwrite,
            selection=selection,
            metadata=metadata,
        )
    finally:
        report(stages, Stage("writing the dataset", finished=True))
    for note in notes:
        run.say(note)
    rows = ", ".join(f"{n:,} {name}" for name, n in written.rows.items())
    run.say(f"wrote {len(written.files):,} files ({rows}) to {directory}")


@dataclass(frozen=True)
class ProfileOptions:
    """The profile's own options: bins, grouping, value area, footprint bars, limits, plot."""

    bin_size: float | None
    by: tuple[str, ...]
    share: float
    method: ValueAreaMethod
    every: str | None
    max_levels: int | None
    which: str | None
    target: run.ImageTarget | None

    def arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of :func:`mmflow.pipeline.profile` these options set."""
        return {
            "bin_size": self.bin_size,
            "by": self.by,
            "share": self.share,
            "method": self.method,
            "every": self.every,
            "max_levels": self.max_levels,
        }


def _profile_options(values: Mapping[str, Any]) -> ProfileOptions:
    if values["by"] == "session" and not values.get("session"):
        msg = "--by session needs --session HH:MM-HH:MM"
        raise click.BadParameter(msg)
    method: ValueAreaMethod = (
        "single-row" if values["value_area_method"] == "single-row" else "two-row"
    )
    by = ("symbol",) if values["by"] == "symbol" else ("symbol", values["by"])
    target = None
    if values["plot"]:
        require_matplotlib()
        target = run.ImageTarget(values["plot"])
    return ProfileOptions(
        values["bin_size"],
        by,
        values["share"],
        method,
        values["bar"],
        values["max_levels"],
        values["which"],
        target,
    )


profile_options = option_group(
    "Command",
    [
        click.option(
            "--bin",
            "bin_size",
            type=click.FloatRange(min=0, min_open=True),
            help="Price step of a profile row, in price units (default: the smallest price "
            "difference, the tick).",
        ),
        click.option(
            "--by",
            type=click.Choice(["symbol", "session", "date"]),
            default="symbol",
            show_default=True,
            help="One profile per symbol, per symbol and session (needs --session), or per UTC "
            "day.",
        ),
        click.option(
            "--value-area",
            "share",
            type=click.FloatRange(min=0, max=1, min_open=True),
            default=0.7,
            show_default=True,
            help="Share of volume in the value area (0-1).",
        ),
        click.option(
            "--value-area-method",
            type=click.Choice(["two-row", "single-row"]),
            default="two-row",
            show_default=True,
            help="Dalton's two-row walk or the single-row walk.",
        ),
        click.option(
            "--bar",
            type=Duration(),
            help="Footprint: volume at price per bar of this length (e.g. 5m) instead (default: "
            "no footprint).",
        ),
        click.option(
            "--max-levels",
            type=click.IntRange(min=1),
            help="Most profile rows (price levels; bars × levels for a footprint), estimated "
            "before they are made (exit 2 above). Default: available memory / 4096 bytes.",
        ),
        click.option(
            "--table",
            "which",
            type=click.Choice(["levels", "value-area"]),
            help="Which table -o/--to write (default levels).",
        ),
        click.option(
            "--plot",
            metavar="PATH",
            help="Also draw the profile (buy/sell split, POC, value area) to this image (.png, "
            ".svg, .pdf), or one PNG per profile into a folder (charts/); needs the plot extra "
            "(default: no chart).",
        ),
    ],
    "choices",
    _profile_options,
)


@cli.command(name="profile")
@click.argument("files", nargs=-1, required=True)
@quote_options
@profile_options
@signing_options
@input_options
@selection_options
@output_options
def profile_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    choices: ProfileOptions,
    output: Output,
) -> None:
    """Volume profile: volume at price, buy/sell split, point of control and value area.

    Columns: price_level, volume, buy_volume, sell_volume, delta, trades; POC, value-area high
    and low per symbol. With --bar, a footprint per bar and price level with diagonal
    imbalances (ask volume vs bid volume one row below, 3:1).

    Example:

    \b
        mmflow profile sample_data/tardis/
        mmflow profile sample_data/binance/ --bin 0.5 --by date --to csv
        mmflow profile sample_data/binance/ --bar 5m -o footprint.parquet
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    result = profile(
        trades, quote_frame, **choices.arguments(), signing=signing, selection=selection
    )
    footprint = [result.footprint] if result.footprint is not None else []
    levels, areas, *footprints = run.collect_plans(
        [result.levels, result.value_areas, *footprint],
        loaded,
        "reading, signing trades, building the profile",
    )
    require_rows(levels, "trades")
    if choices.target is not None:
        figures = profile_figures(levels, areas, by=list(choices.by))
        charts = ((file_stem(keys), figure) for keys, figure in figures)
        choices.target.write(charts, areas.height, "profiles")
    chosen = (footprints or [areas if choices.which == "value-area" else levels])[0]
    metadata = run.metadata_for("profile", loaded, selection, result.parameters)
    if not run.emit(chosen, output, metadata):
        _print_profile(levels, areas, footprints, choices.by)


def _print_profile(
    levels: pl.DataFrame, areas: pl.DataFrame, footprint: list[pl.DataFrame], by: tuple[str, ...]
) -> None:
    console = Console()
    if footprint:
        console.print(frame_table(footprint[0].head(60), title="mmflow profile --bar (footprint)"))
        return
    for area in areas.iter_rows(named=True):
        mine = levels
        for key in (k for k in areas.columns if k == "venue" or k in by):
            mine = mine.filter(pl.col(key).eq_missing(pl.lit(area[key], levels.schema[key])))
        console.print(profile_chart(mine, area))


@dataclass(frozen=True)
class PhaseRun:
    """The phases command's own options: which table, and how to evaluate."""

    episodes: bool
    evaluate: bool
    truth: Path | None
    offline: bool
    placebo_seed: int


def _phase_run(values: Mapping[str, Any]) -> PhaseRun:
    return PhaseRun(
        values["episodes"],
        values["evaluate"],
        values["truth"],
        values["offline"],
        values["placebo_seed"],
    )


phase_run_options = option_group(
    "Command",
    [
        click.option("--episodes", is_flag=True, help="One row per episode instead of per bar."),
        click.option(
            "--evaluate",
            is_flag=True,
            help="Event study: reversal returns after distribution episodes vs a seeded placebo.",
        ),
        click.option(
            "--truth",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="truth.parquet from mmflow simulate: bar precision/recall and episode recall "
            "(default: no truth scores).",
        ),
        click.option(
            "--offline",
            is_flag=True,
            help="Let a bar's phase use later bars (better labels, not for live use).",
        ),
        click.option(
            "--placebo-seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the --evaluate placebo draw of random bars (same seed, same bars).",
        ),
    ],
    "choices",
    _phase_run,
)


@cli.command(name="phases")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@phase_options
@phase_run_options
@alert_options
@signing_options
@input_options
@selection_options
@output_options
def phases_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    phase: PhaseParameters,
    choices: PhaseRun,
    alerts: AlertOptions,
    output: Output,
) -> None:
    """Accumulation and distribution phases of market-maker inventory, per bar or per episode.

    A bar is distribution when market makers that built an extreme inventory are unloading it
    into opposite flow, still unloading, while price fails to follow that flow (absorption).
    Labels are causal: a bar's phase uses data up to its end only (unless --offline).
    Per bar: phase, inventory_side, distribution_score and the components; --episodes: symbol,
    phase, inventory_side, start, end, bars, inventory_start, inventory_end, unloaded, vwap,
    price_levels, price_change; --evaluate: the event study (and --truth scores).

    Example:

    \b
        mmflow simulate -o sim/ --seed 101 --hours 12
        mmflow phases sim/trades.parquet sim/quotes.parquet --episodes
        mmflow phases sim/trades.parquet sim/quotes.parquet --evaluate --truth sim/truth.parquet
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    arguments: dict[str, Any] = {
        "options": bars.options,
        "parameters": phase,
        "offline": choices.offline,
        "truth": pl.scan_parquet(choices.truth) if choices.truth else None,
        "placebo_seed": choices.placebo_seed,
        "signing": signing,
        "selection": selection,
    }
    conditions = run.alert_conditions(  # --alert reads the bar table: its lazy schema, no data
        alerts, lambda: phases(trades, quote_frame, **arguments).bars.collect_schema()
    )
    materialize = partial(run.collect_plans, loaded=loaded)
    result = phases(trades, quote_frame, **arguments, materialize=materialize)
    name, frames = _phase_tables(result, choices, loaded)
    metadata = run.metadata_for(f"phases.{name}", loaded, selection, result.parameters)
    if not run.emit(frames[-1], output, metadata):
        _print_phases(name, frames, scores=result.scores is not None)
    if conditions:
        bar_frame = frames[0] if name == "bars" else None
        [bar_frame] = (
            [bar_frame]
            if bar_frame is not None
            else run.collect_plans([result.bars], loaded, run.PHASES_STAGE)
        )
        run.raise_alerts(bar_frame, conditions, alerts)


def _phase_tables(
    result: Phases, choices: PhaseRun, loaded: list[Loaded]
) -> tuple[str, list[pl.DataFrame]]:
    """Collect the table phases writes; the written one last (with --truth: the scores)."""
    if choices.evaluate:
        plans = [result.study, *([result.scores] if result.scores is not None else [])]
        return "evaluate", run.collect_plans(plans, loaded, run.PHASES_STAGE)
    if choices.episodes:
        return "episodes", run.collect_plans([result.episodes], loaded, run.PHASES_STAGE)
    frames = run.collect_plans([result.bars], loaded, run.PHASES_STAGE)
    require_rows(frames[0], "trades")
    return "bars", frames


def _print_phases(name: str, frames: list[pl.DataFrame], *, scores: bool) -> None:
    console = Console()
    if name == "bars":
        console.print(phases_table(frames[0]))
    elif name == "episodes":
        console.print(episodes_table(frames[0]))
    else:
        shown = ["horizon", "count", "mean", "t_statistic", "hit_rate", "placebo_mean"]
        shown += ["placebo_hit_rate", "difference_t_statistic"]
        console.print(
            compact_table(
                frames[0].select(shown),
                title="event study: reversal returns after distribution episodes",
                caption="log returns signed by the expected reversal; placebo: seeded random bars",
            )
        )
        if scores:
            columns = ["symbol", "precision", "recall", "episodes", "episodes_found"]
            columns += ["episode_recall", "false_positive_rate"]
            console.print(
                compact_table(
                    frames[-1].select(columns),
                    title="distribution bars against simulator truth",
                    caption="a row without a symbol pools all symbols",
                )
            )


def _parse_panels(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    try:
        return chosen_panels(value.split(",") if value else None)
    except ParameterError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@dataclass(frozen=True)
class ChartTarget:
    """Where plot draws (``-o``) and which panels (``--panels``)."""

    images: run.ImageTarget
    panels: list[str]


def _chart_target(values: Mapping[str, Any]) -> ChartTarget:
    require_matplotlib()
    return ChartTarget(run.ImageTarget(values["output"]), values["panels"])


@cli.command(name="plot")
@click.argument("files", nargs=-1, required=True)
@quote_options
@option_group(
    "Output",
    [
        click.option(
            "-o",
            "--output",
            required=True,
            metavar="PATH",
            help="Image to write (.png, .svg, .pdf), or a folder (charts/) for one PNG per "
            "instrument named <venue>_<symbol>.png.",
        ),
        click.option(
            "--panels",
            callback=_parse_panels,
            metavar="NAME,...",
            help=f"Panels to draw, top to bottom (default all): {','.join(PANELS)}.",
        ),
    ],
    "target",
    _chart_target,
)
@bar_options
@phase_options
@signing_options
@input_options
@selection_options
def plot_command(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    phase: PhaseParameters,
    target: ChartTarget,
) -> None:
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
        mmflow plot sample_data/tardis/ --bar 5m --tz America/New_York -o charts/
        mmflow plot sample_data/simulated/ --panels price,cvd -o chart.svg
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection)
    result = chart(
        trades,
        quote_frame,
        options=bars.options,
        parameters=phase,
        signing=signing,
        selection=selection,
        materialize=partial(run.collect_plans, loaded=loaded),
    )
    bar_frame, episodes, withdrawals = run.collect_with_cleaning(
        [result.bars, result.episodes, result.withdrawals], result.dropped, loaded
    )
    require_rows(bar_frame, "trades")
    charts = instrument_charts(
        bar_frame,
        episodes,
        withdrawals,
        every=bars.options.every,
        panels=target.panels,
        tz=inputs.tz or "UTC",
        has_quotes=result.has_quotes,
    )
    target.images.write(_noted(charts), instrument_count(bar_frame), "instruments")


def _noted(charts: Iterator[InstrumentChart]) -> Iterator[tuple[str, Any]]:
    """Yield ``(file stem, figure)`` per chart, saying each chart's notes first."""
    for item in charts:
        for note in item.notes:
            run.say(f"Note: {instrument_name(item.instrument)}: {note}")
        yield file_stem(item.instrument), item.figure


@cli.command(name="simulate")
@option_group(
    "Output",
    [
        click.option(
            "-o",
            "--output",
            "directory",
            required=True,
            type=click.Path(path_type=Path),
            callback=checked(check_output_directory),
            metavar="DIR",
            help="Folder for trades.parquet, quotes.parquet and truth.parquet.",
        )
    ],
)
@simulation_options
@click.option(
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=set_verbose,
    help="Show full tracebacks on errors.",
)
@quiet_option
def simulate_command(directory: Path, parameters: SimulationParameters) -> None:
    """Write a synthetic market whose market maker accumulates and distributes inventory.

    A market maker quotes around a latent fair value and skews its quotes against its
    inventory; noise traders trade with it; scripted episodes push it into inventory
    (accumulation), let it work the inventory off into opposite flow across several price
    levels (distribution), then reverse. Writes trades.parquet (with the true aggressor side),
    quotes.parquet and truth.parquet (per bar: true inventory and phase). Same seed, same files.

    Example:

    \b
        mmflow simulate -o sim/ --seed 7 --hours 6
        mmflow analyze sim/trades.parquet sim/quotes.parquet
    """
    simulation = simulate(parameters)
    written = write_simulation(simulation, directory)
    run.say(
        f"wrote {simulation.trades.height:,} trades, {simulation.quotes.height:,} quotes and "
        f"{simulation.truth.height:,} truth bars to {', '.join(str(p) for p in written)}"
    )


SOURCE_NAMES = {
    ParameterSource.COMMANDLINE: "flag",
    ParameterSource.ENVIRONMENT: "env",
    ParameterSource.DEFAULT_MAP: "file",
    ParameterSource.DEFAULT: "default",
}


@cli.command(
    name="config",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("command", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def config_command(ctx: click.Context, command: str | None, args: tuple[str, ...]) -> None:
    """Show every option's value and where it comes from: flag > env > file > default.

    One line per option: command, option, value, source (flag, env VARIABLE, file PATH or
    default). With COMMAND, only that command, and ARGS are parsed as its flags would be.
    Files: --config FILE (or MMFLOW_CONFIG), else ./mmflow.toml over
    ~/.config/mmflow/config.toml. Top-level keys set an option in every command that has it,
    a [command] table in that command only, e.g.

    \b
        bar = "5m"
        tz = "America/New_York"
        [phases]
        episodes = true

    Example:

    \b
        mmflow config analyze
        MMFLOW_BAR=5m mmflow config flow --lookback 60
    """
    group = ctx.find_root().command
    assert isinstance(group, click.Group)
    names = [command] if command else [n for n in group.commands if n != "config"]
    if command is not None and command not in group.commands:
        msg = f"{command!r} is not a command; use one of {', '.join(sorted(group.commands))}"
        raise click.BadParameter(msg, param_hint="'COMMAND'")
    defaults = ctx.meta.get("mmflow.defaults")
    files = defaults.files if isinstance(defaults, Defaults) else []
    click.echo(f"# files read: {', '.join(str(f) for f in files) or 'none'}")
    for name in names:
        for line in _config_lines(ctx, group, name, list(args) if command else []):
            click.echo(line)


def _config_lines(
    ctx: click.Context, group: click.Group, name: str, args: list[str]
) -> Iterator[str]:
    """Yield ``command --option value source`` for every option of command ``name``."""
    command = group.commands[name]
    with command.make_context(name, args, parent=ctx.find_root(), resilient_parsing=True) as sub:
        defaults = sub.meta.get("mmflow.defaults")
        for param in command.params:
            key = option_key(param)
            if key is None or param.name is None or not param.expose_value:
                continue
            source = sub.get_parameter_source(param.name)
            where = SOURCE_NAMES.get(source, "default") if source is not None else "default"
            if where == "env" and isinstance(param, click.Option):
                where += " " + next(v for v in _names(param.envvar) if os.environ.get(v))
            if where == "file" and isinstance(defaults, Defaults):
                origin = defaults.origins.get(name, {}).get(param.name)
                where += f" {origin}" if origin is not None else ""
            yield f"{name}\t--{key}\t{_shown(sub.params.get(param.name))}\t{where}"


def _names(envvar: str | Sequence[str] | None) -> list[str]:
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        return ",".join(_shown(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


set_environment_names(cli)


def main() -> None:
    """Run the command line (the ``mmflow`` script and ``python -m mmflow``).

    Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, each after removing every temporary file; a
    closed pipe (``mmflow … | head``) ends it quietly (:mod:`mmflow.interrupts`).
    """
    interrupts.install()
    cli(prog_name="mmflow")
