"""``mmflow classify`` and ``mmflow profile``: signed trades and volume at price."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import click
import polars as pl

from mmflow.analysis import Classification, Selection, Signing, classify, evaluate, profile
from mmflow.analysis.signing import ChunkedClassification, classify_chunked, evaluate_chunked
from mmflow.cli import run, screen
from mmflow.cli.app import cli
from mmflow.cli.command import defaulted, option_group
from mmflow.cli.execution import execution_options
from mmflow.cli.model_options import _memory_limit as memory_limit_option
from mmflow.cli.options import (
    Inputs,
    Output,
    QuoteFiles,
    input_options,
    output_options,
    quote_options,
    selection_options,
    signing_options,
    signing_options_without,
)
from mmflow.cli.types import Duration
from mmflow.engine.executors import Execution
from mmflow.io import Loaded
from mmflow.io.assemble import require_count, require_rows
from mmflow.metrics.profile import ValueAreaMethod
from mmflow.render.messages import signing_warnings
from mmflow.render.plot import file_stem, require_matplotlib
from mmflow.render.profile_plot import profile_figures
from mmflow.render.write import streamed_file, write_to

__all__ = [
    "ProfileOptions",
    "classify_command",
    "profile_command",
]


@cli.command(name="classify")
@click.argument("files", nargs=-1, required=True)
@quote_options
@signing_options
@click.option(
    "--evaluate",
    is_flag=True,
    help="Score every method against the vendor side (trades that have one).",
)
@defaulted("--bar", kind=Duration(), default="1m", text="Bar length of bvc (e.g. 5m).")
@click.option(
    "--max-bars",
    type=click.IntRange(min=1),
    help="Most bvc bars, estimated before they are made (default: by available memory).",
)
@click.option(
    "--memory-limit",
    callback=memory_limit_option,
    metavar="SIZE",
    help="Memory one chunk of the engine may use (e.g. 2G, 512M); picks the chunk size "
    "(instrument × whole days). Default: half the available memory, at most 4G.",
)
@execution_options
@input_options
@selection_options
@output_options
def classify_command(
    files: tuple[str, ...],
    execution: Execution,
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    output: Output,
    evaluate: bool,
    bar: str,
    max_bars: int | None,
    memory_limit: int | None,
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
    if evaluate:
        _classify_evaluate(
            loaded, (trades, quote_frame), signing, selection, (bar, memory_limit), output
        )
        return
    chunked = classify_chunked(
        trades, quote_frame, signing=signing, selection=selection, memory_limit=memory_limit
    )
    if chunked is not None:
        metadata = run.metadata_for("classify.trades", loaded, selection, chunked.parameters)
        _classify_engine(chunked, output, metadata, loaded, signing)
        return
    result = classify(
        trades, quote_frame, signing=signing, every=bar, selection=selection, max_bars=max_bars
    )
    name = "classify.bars" if signing.method == "bvc" else "classify.trades"
    metadata = run.metadata_for(name, loaded, selection, result.parameters)
    if signing.method != "bvc" and run.streams(output):
        _classify_streamed(result, output, metadata, loaded, signing)
    else:
        _classify_collected(result, output, metadata, loaded, signing)


def _classify_engine(
    result: ChunkedClassification,
    output: Output,
    metadata: dict[str, str],
    loaded: list[Loaded],
    signing: Signing,
) -> None:
    """Write or show the engine's signed trades: streamed to ``-o`` or ``--to csv|ndjson``.

    The rows come chunk by chunk in the single plan's order; the mix, diagnostics and quote
    checks are summed over the chunks, so the warnings follow the rows.
    """
    if output.path is not None and output.to_format is None and run.streams(output):
        with streamed_file(result.trades, output.path, metadata) as stream:
            stream.plan.collect()
            rows = require_count(stream.rows(), "trades")
            _engine_notes(result, loaded, signing)
        run.say(f"wrote {rows:,} rows to {output.path}")
        return
    if output.path is None and output.to_format in ("csv", "ndjson"):
        sink = sys.stdout.buffer
        rows = 0
        with closing(result.frames()) as frames:  # ended here, even when the reader goes away
            for frame in frames:
                if frame.height:
                    write_to(frame, sink, output.to_format, metadata, header=rows == 0)
                    sink.flush()
                    rows += frame.height
        require_count(rows, "trades")
        _engine_notes(result, loaded, signing)
        return
    if output.to_screen:
        totals = result.totals()
        require_count(totals.rows, "trades")
        _engine_notes(result, loaded, signing)
        console = screen.Console()
        console.print(
            screen.frame_table(totals.mix, title="mmflow classify: trades signed by each rule")
        )
        console.print("Write every signed trade with --to csv or -o trades.parquet.")
        return
    signed = require_rows(result.trades.collect(), "trades")
    _engine_notes(result, loaded, signing)
    run.emit(signed, output, metadata)


def _engine_notes(result: ChunkedClassification, loaded: list[Loaded], signing: Signing) -> None:
    """Say the cleaning notes, quote notes and signing warnings of an engine run."""
    totals = result.totals()
    run.collect_with_cleaning([], result.dropped, loaded)
    run.quote_notes([totals.checks] if totals.checks is not None else [], signing)
    run.warn(signing_warnings(totals.diagnostics))


def _classify_collected(
    result: Classification,
    output: Output,
    metadata: dict[str, str],
    loaded: list[Loaded],
    signing: Signing,
) -> None:
    """Collect the signed trades (or bvc bars) and the mix; write them or show them."""
    signed, mix, checks = run.collect_checked(
        [result.trades, result.mix, result.diagnostics],
        checks=result.checks,
        dropped=result.dropped,
        loaded=loaded,
        signing=signing,
    )
    require_rows(signed, "trades")
    run.warn(signing_warnings(checks))
    if run.emit(signed, output, metadata):
        return
    console = screen.Console()
    if signing.method == "bvc":
        console.print(screen.frame_table(signed, title="mmflow classify --method bvc"))
    else:
        console.print(screen.frame_table(mix, title="mmflow classify: trades signed by each rule"))
        console.print("Write every signed trade with --to csv or -o trades.parquet.")


def _classify_streamed(
    result: Classification,
    output: Output,
    metadata: dict[str, str],
    loaded: list[Loaded],
    signing: Signing,
) -> None:
    """Write every signed trade to ``-o`` while it is computed (the table need not fit in memory).

    The file is streamed to a temporary file beside it and renamed once complete; on an error
    (no trades, a bad file, Ctrl-C) nothing is left behind.
    """
    assert output.path is not None
    with streamed_file(result.trades, output.path, metadata) as stream:
        _, checks = run.collect_checked(
            [stream.plan, result.diagnostics],
            checks=result.checks,
            dropped=result.dropped,
            loaded=loaded,
            signing=signing,
        )
        rows = require_count(stream.rows(), "trades")
        run.warn(signing_warnings(checks))
    run.say(f"wrote {rows:,} rows to {output.path}")


def _classify_evaluate(
    loaded: list[Loaded],
    frames: tuple[pl.LazyFrame, pl.LazyFrame | None],
    signing: Signing,
    selection: Selection,
    sizes: tuple[str, int | None],
    output: Output,
) -> None:
    """Run, write or print ``mmflow classify --evaluate`` (on the engine where it applies).

    ``sizes``: the BVC bar and the engine's memory limit.
    """
    trades, quotes = frames
    every, memory_limit = sizes
    chunked = evaluate_chunked(
        trades,
        quotes,
        signing=signing,
        every=every,
        selection=selection,
        memory_limit=memory_limit,
    )
    if chunked is not None:
        scores, lags, checks = chunked.scores, chunked.lags, chunked.diagnostics
        checked = [chunked.checks] if chunked.checks is not None else []
    else:
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
    console = screen.Console()
    console.print(screen.evaluation_table(scores, title="mmflow classify --evaluate"))
    if lags.height:
        console.print(screen.compact_table(lags, title="Lee-Ready accuracy by quote lag"))


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
        """Return the keyword arguments of :func:`mmflow.analysis.profile` these options set."""
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
        defaulted(
            "--by",
            kind=click.Choice(["symbol", "session", "date"]),
            default="symbol",
            text="One profile per symbol, per symbol and session (needs --session), or per UTC "
            "day.",
        ),
        defaulted(
            "--value-area",
            "share",
            kind=click.FloatRange(min=0, max=1, min_open=True),
            default=0.7,
            text="Share of volume in the value area (0-1).",
        ),
        defaulted(
            "--value-area-method",
            kind=click.Choice(["two-row", "single-row"]),
            default="two-row",
            text="Dalton's two-row walk or the single-row walk.",
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
@signing_options_without("bvc_distribution", "bvc_dof")  # bvc signs bars, not trades
@execution_options
@input_options
@selection_options
@output_options
def profile_command(
    files: tuple[str, ...],
    execution: Execution,
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
    loaded, trades, quote_frame = run.market(files, quotes, inputs, selection, hold=True)
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
    console = screen.Console()
    if footprint:
        console.print(
            screen.frame_table(footprint[0].head(60), title="mmflow profile --bar (footprint)")
        )
        return
    for area in areas.iter_rows(named=True):
        mine = levels
        for key in (k for k in areas.columns if k == "venue" or k in by):
            mine = mine.filter(pl.col(key).eq_missing(pl.lit(area[key], levels.schema[key])))
        console.print(screen.profile_chart(mine, area))
