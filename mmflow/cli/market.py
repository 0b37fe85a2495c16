"""``mmflow analyze``, ``flow`` and ``inventory``: the per-bar market tables and their summaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import click
import polars as pl

from mmflow.analysis import (
    FLOW_COLUMNS,
    INVENTORY_COLUMNS,
    BarOptions,
    Market,
    Selection,
    Signing,
    analyze,
    bar_table,
    inventory_evaluation,
    inventory_report,
    market_bars,
)
from mmflow.cli import run, screen
from mmflow.cli.app import cli
from mmflow.cli.command import defaulted, option_group
from mmflow.cli.execution import execution_options
from mmflow.cli.incremental import incremental_option
from mmflow.cli.model_options import Bars, bar_options, bar_options_without
from mmflow.cli.options import (
    AlertOptions,
    Inputs,
    Output,
    QuoteFiles,
    alert_options,
    input_options,
    output_options,
    quote_options,
    selection_options,
    signing_options,
)
from mmflow.cli.types import Horizons
from mmflow.engine.executors import Execution
from mmflow.io import Loaded
from mmflow.io.assemble import require_rows
from mmflow.metrics.event_study import (
    DEFAULT_HORIZONS,
    MAX_PLACEBO_RATIO,
    WITHDRAWAL_STUDY_COLUMNS,
)

__all__ = [
    "EventStudy",
    "analyze_command",
    "flow_command",
    "inventory_command",
]


@cli.command(name="analyze")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options
@signing_options
@click.option(
    "--table",
    "which",
    type=click.Choice(["summary", "bars"]),
    help="Which table -o/--to write (default: the per-bar table); the screen always shows the "
    "summary.",
)
@alert_options
@execution_options
@input_options
@selection_options
@output_options
@incremental_option
def analyze_command(
    files: tuple[str, ...],
    execution: Execution,
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
    screen: one row per instrument (venue and symbol); -o and --to write the per-bar table with
    every column of `flow` and `inventory` (--table summary: the summary). Bars cover the days
    that hold trades or quotes (--fill: a continuous grid); sizes are checked against
    --max-bars before anything is made.

    Example:

    \b
        mmflow analyze sample_data/
        mmflow analyze sample_data/tardis/ --bar 5m -o bars.parquet
        mmflow convert sample_data/tardis/ -o dataset/
        mmflow analyze dataset/ -o results/ --incremental
    """
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
    # -o and --to write the same table (the per-bar table unless --table summary); a screen
    # always gets the per-instrument summary, never thousands of bars
    writing = output.path is not None or output.to_format is not None
    table = which or ("bars" if writing or bars.explicit else "summary")
    chosen = bar_frame if table == "bars" else summary
    metadata = run.metadata_for(f"analyze.{table}", loaded, selection, result.parameters)
    if not run.emit(chosen, output, metadata):
        screen.Console().print(screen.analyze_table(summary, mix=mix, paths=paths, tz=inputs.tz))
        if table == "bars":
            shown = f"{bar_frame.height:,} bars are not shown on screen"
            run.say(f"Note: {shown}; write them with -o or --to")
    run.raise_alerts(bar_frame, conditions, alerts)


@cli.command(name="flow")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options_without("pressure_horizon", "spread_factor", "depth_factor")
@signing_options
@execution_options
@input_options
@selection_options
@output_options
def flow_command(
    files: tuple[str, ...],
    execution: Execution,
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
        screen.Console().print(screen.flow_table(table, tz=inputs.tz))


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
        defaulted(
            "--horizons",
            kind=Horizons(),
            default=",".join(str(h) for h in DEFAULT_HORIZONS),
            text="Forward horizons of --evaluate, in bars.",
        ),
        defaulted(
            "--placebo-seed",
            kind=click.IntRange(min=0),
            default=0,
            text="Seed of the --evaluate placebo draw (same seed, same bars).",
        ),
        defaulted(
            "--placebo-ratio",
            kind=click.IntRange(min=1, max=MAX_PLACEBO_RATIO),
            default=1,
            text="Placebo bars drawn per withdrawal episode in --evaluate.",
        ),
    ],
    "study",
    _event_study,
)


@cli.command(name="inventory")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options_without("horizon", "vpin_window", "buckets_per_day")
@signing_options
@click.option(
    "--table",
    "which",
    type=click.Choice(["bars", "summary", "episodes"]),
    help="Which table -o/--to write (default bars): per bar, per symbol, or withdrawal episodes.",
)
@alert_options
@inventory_study_options
@execution_options
@input_options
@selection_options
@output_options
def inventory_command(
    files: tuple[str, ...],
    execution: Execution,
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
    console = screen.Console()
    console.print(screen.inventory_table(summary))
    if episodes.height:
        console.print(screen.frame_table(episodes, title="liquidity withdrawal episodes"))
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
    screen.Console().print(
        screen.compact_table(
            table.select(shown),
            title="event study: realised volatility after liquidity withdrawal",
            caption="√Σ r² of log mid returns over the next h bars vs seeded non-episode bars",
        )
    )
