"""``mmflow inspect`` and ``mmflow convert``: what files are, and canonical datasets."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from mmflow.analysis import Selection, Signing, parameters_of
from mmflow.cli import run
from mmflow.cli.app import cli
from mmflow.cli.command import one_line, option_group
from mmflow.cli.execution import execution_options
from mmflow.cli.options import (
    Inputs,
    Output,
    QuoteFiles,
    input_options,
    input_options_without,
    output_folder_option,
    output_options,
    quote_options,
    selection_options,
)
from mmflow.convert import Converted, write_dataset
from mmflow.convert_tasks import convert_on
from mmflow.engine.executors import Execution
from mmflow.inspect import inspect_paths
from mmflow.io import Loaded
from mmflow.io.assemble import gather, read_many
from mmflow.progress import Stage, report
from mmflow.render.progress import plain_console as Console
from mmflow.render.table import (
    InspectScreen,
)
from mmflow.render.write import build_metadata
from mmflow.schema import QUOTES, TRADES

__all__ = [
    "convert_command",
    "inspect",
]


@cli.command()
@click.argument("files", nargs=-1, required=True)
@input_options_without("venues", "skip_bad_rows")  # it reports bad rows; it selects nothing
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
            Console().print(InspectScreen(df))
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


@cli.command(name="convert")
@click.argument("files", nargs=-1, required=True)
@quote_options
@option_group(
    "Output",
    [
        output_folder_option(
            "Dataset folder to write (symbol=…/date=…/trades.parquet, quotes.parquet)."
        ),
        click.option(
            "--overwrite", is_flag=True, help="Replace partition files that already exist."
        ),
    ],
)
@execution_options
@input_options
@selection_options
def convert_command(
    files: tuple[str, ...],
    execution: Execution,
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
    if execution.executor == "dask" and selection.clean is not None:
        msg = (
            "--clean needs every instrument's trades and quotes in one process; convert on "
            "Dask does not clean (drop --clean, or drop --executor dask)"
        )
        raise click.UsageError(msg)
    stages = run.stages()
    if execution.executor == "dask":
        loaded = run.read_all(files, quotes, inputs)  # workers read the files themselves
        report(stages, Stage("writing the dataset"))
        try:
            written = convert_on(
                execution.map,
                loaded,
                directory,
                selection=selection,
                options=inputs.read,
                overwrite=overwrite,
                metadata=_metadata(loaded, selection),
                on_account=lambda frames: run.checked_account(inputs, selection, frames),
                stop=execution.close,
            )
        finally:
            report(stages, Stage("writing the dataset", finished=True))
    else:
        written = _convert_here(files, quotes, inputs, selection, directory, overwrite)
    rows = ", ".join(f"{n:,} {name}" for name, n in written.rows.items())
    run.say(f"wrote {len(written.files):,} files ({rows}) to {directory}")


def _metadata(loaded: list[Loaded], selection: Selection) -> dict[str, str]:
    return run.metadata_for("canonical", loaded, selection, parameters_of(selection, Signing()))


def _convert_here(
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    directory: Path,
    overwrite: bool,
) -> Converted:
    """Convert in this process: count the rows, then write (with TAQ cleaning when chosen)."""
    loaded = read_many(run.read_all(files, quotes, inputs))
    trades, quote_frame = gather(loaded, TRADES), gather(loaded, QUOTES)
    run.account(inputs, selection, loaded, (trades, quote_frame))
    stages = run.stages()
    report(stages, Stage("writing the dataset"))
    try:
        written, notes = write_dataset(
            trades,
            quote_frame,
            directory,
            overwrite=overwrite,
            selection=selection,
            metadata=_metadata(loaded, selection),
        )
    finally:
        report(stages, Stage("writing the dataset", finished=True))
    for note in notes:
        run.say(note)
    return written
