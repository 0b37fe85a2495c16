"""``mmflow phases`` and ``mmflow plot``: accumulation and distribution, and charts of them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
import polars as pl

from mmflow.analysis import Phases, Selection, Signing, chart, phases
from mmflow.cli import run, screen
from mmflow.cli.app import cli
from mmflow.cli.command import defaulted, option_group
from mmflow.cli.execution import execution_options
from mmflow.cli.model_options import Bars, bar_options, bar_options_without, phase_options
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
from mmflow.engine.executors import Execution
from mmflow.errors import ParameterError
from mmflow.io import Loaded
from mmflow.io.assemble import require_rows
from mmflow.metrics.phases import PhaseParameters
from mmflow.render.plot import (
    PANELS,
    InstrumentChart,
    chosen_panels,
    file_stem,
    instrument_charts,
    instrument_count,
    instrument_name,
    require_matplotlib,
)

__all__ = [
    "PHASE_BAR_HELP",
    "ChartTarget",
    "PhaseRun",
    "phases_command",
    "plot_command",
]


PHASE_BAR_HELP = {
    "lookback": "L: trailing bars of the phase rule's flow scale, price noise, drift ratio "
    "and absorption lambda (longer: a longer warm-up before the first label).",
    "pressure_horizon": "h: bars after an episode's end over which its forward_return (the "
    "reversal) is measured (--episodes).",
}
"""What --lookback and --pressure-horizon mean in ``phases`` (the phase rule's L and h)."""


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
        defaulted(
            "--placebo-seed",
            kind=int,
            default=0,
            text="Seed of the --evaluate placebo draw of random bars (same seed, same bars).",
        ),
    ],
    "choices",
    _phase_run,
)


@cli.command(name="phases")
@click.argument("files", nargs=-1, required=True)
@quote_options
@bar_options_without(
    "horizon",
    "vpin_window",
    "buckets_per_day",
    "spread_factor",
    "depth_factor",
    helps=PHASE_BAR_HELP,
)
@phase_options
@phase_run_options
@alert_options
@signing_options
@execution_options
@input_options
@selection_options
@output_options
def phases_command(
    files: tuple[str, ...],
    execution: Execution,
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
        _print_phases(name, frames, scores=result.scores is not None, tz=inputs.tz)
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


def _print_phases(
    name: str, frames: list[pl.DataFrame], *, scores: bool, tz: str | None = None
) -> None:
    console = screen.Console()
    if name == "bars":
        console.print(screen.phases_table(frames[0], tz=tz))
    elif name == "episodes":
        console.print(screen.episodes_table(frames[0], tz=tz))
    else:
        shown = ["horizon", "count", "mean", "t_statistic", "hit_rate", "placebo_mean"]
        shown += ["placebo_hit_rate", "difference_t_statistic"]
        console.print(
            screen.compact_table(
                frames[0].select(shown),
                title="event study: reversal returns after distribution episodes",
                caption="log returns signed by the expected reversal; placebo: seeded random bars",
            )
        )
        if scores:
            columns = ["symbol", "precision", "recall", "episodes", "episodes_found"]
            columns += ["episode_recall", "false_positive_rate"]
            console.print(
                screen.compact_table(
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
