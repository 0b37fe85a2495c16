"""``mmflow analyze DATASET -o RESULTS/ --incremental``: bring stored results up to date.

The command line around :func:`mmflow.engine.incremental.run_incremental`: it checks the flags
that do not apply (a usage error, exit 2), reads only the dataset partitions that changed
(:func:`~mmflow.engine.incremental.partition_reader`), runs the chunk tasks on the
``--executor`` chosen, and says on stderr what was computed and written.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import polars as pl

from mmflow.analysis import BarOptions, Selection, Signing, check_windows, parameters_of
from mmflow.cli.command import F
from mmflow.cli.model_options import Bars
from mmflow.cli.options import AlertOptions, Inputs, Output, QuoteFiles
from mmflow.cli.run import (
    account,
    alert_conditions,
    check_alert_flags,
    load,
    metadata_for,
    raise_alerts,
    say,
)
from mmflow.engine.chunks import default_memory_limit
from mmflow.engine.run import make_settings
from mmflow.engine.state import EngineSettings
from mmflow.errors import ParameterError
from mmflow.io.assemble import gather, read_many
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import QUOTES, TRADES, VENUE

if TYPE_CHECKING:  # the incremental engine is imported only for --incremental
    from mmflow.engine.incremental import ReadPartitions

__all__ = ["INCREMENTAL_HELP", "analyze_incremental", "incremental_option"]

INCREMENTAL_HELP = (
    "Keep results in the folder -o names and compute only the days that are new or changed "
    "since the last run (FILES: one dataset made by mmflow convert); writes bars.parquet and "
    "summary.parquet there (default: compute everything)."
)


def remember_incremental(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Note ``--incremental`` before ``-o`` is checked (it names a folder then)."""
    if value:
        ctx.meta["mmflow.incremental"] = True
    return value


def incremental_option(func: F) -> F:
    """Add ``--incremental`` to ``analyze``: with it, :func:`analyze_incremental` runs instead.

    Apply it first (nearest the function), so the option groups attach to the wrapper.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, incremental: bool = False, **kwargs: Any) -> Any:
        if incremental:
            analyze_incremental(**kwargs)
            return None
        return func(*args, **kwargs)

    option = click.option(
        "--incremental",
        is_flag=True,
        is_eager=True,
        callback=remember_incremental,
        help=INCREMENTAL_HELP,
    )
    return cast(F, option(wrapper))


def _accounted(read: ReadPartitions, inputs: Inputs, selection: Selection) -> ReadPartitions:
    """Wrap ``read``: its first call (every recomputed partition) also counts the row account.

    Rows dropped by the selection or the validity limits are warned about as in every command,
    and unparseable rows stop the run unless --skip-bad-rows (nothing is dropped silently).
    """
    counted: list[bool] = []

    def accounted(paths: Sequence[Path]) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
        if not counted and paths:
            counted.append(True)
            loaded = read_many(load(inputs, [str(p) for p in paths], "auto"))
            account(inputs, selection, loaded, (gather(loaded, TRADES), gather(loaded, QUOTES)))
        return read(paths)

    return accounted


def _stored_schema(path: Path) -> pl.Schema:
    return pl.Schema(pl.read_parquet_schema(path))


def _refuse(flag: str, reason: str) -> None:
    msg = f"{flag} does not apply with --incremental ({reason})"
    raise click.UsageError(msg)


def analyze_incremental(
    *,
    files: tuple[str, ...],
    quotes: QuoteFiles,
    inputs: Inputs,
    selection: Selection,
    signing: Signing,
    bars: Bars,
    alerts: AlertOptions,
    output: Output,
    which: str | None,
    **_: Any,
) -> None:
    """Run ``analyze --incremental``: update RESULTS (``-o``) from the dataset in ``files``.

    Takes ``analyze``'s typed options (the active ``--executor`` runs the chunk tasks).
    """
    options = bars.options
    results = _results_folder(files, quotes, output, which)
    stored = results / "bars.parquet"
    first_run = not stored.exists()
    # --alert binds to the stored bar table's columns before any work; a first run checks the
    # flags now and binds once the bar table exists
    if first_run:
        check_alert_flags(alerts)
        conditions = []
    else:
        conditions = alert_conditions(alerts, lambda: _stored_schema(stored))
    dataset = Path(files[0])
    settings = _dataset_settings(dataset, options, signing, selection)
    phase_parameters = PhaseParameters(lookback=options.lookback)
    check_windows(options, phase_parameters)
    parameters = parameters_of(
        selection,
        signing,
        **{k: v for k, v in asdict(options).items() if k != "max_bars"},
        **{f"phase_{k}": v for k, v in asdict(phase_parameters).items()},
    )
    metadata = metadata_for("analyze.bars", [], selection, parameters)
    from mmflow.engine.incremental import partition_reader, run_incremental

    outcome = run_incremental(
        dataset,
        results,
        settings,
        read=_accounted(partition_reader(selection, inputs.read), inputs, selection),
        parameters=parameters,
        phase_parameters=phase_parameters,
        metadata=metadata,
    )
    if outcome.nothing_new:
        say(
            f"Note: {results} is up to date: nothing new or changed in {dataset} "
            f"({len(outcome.unchanged):,} partitions; {outcome.seconds:.2f} s)"
        )
        if alerts.conditions:  # a cron job that re-runs still reports what holds now
            raise_alerts(pl.read_parquet(stored), conditions, alerts)
        return
    assert outcome.analysis is not None
    removed = f", {len(outcome.removed):,} removed" if outcome.removed else ""
    say(
        f"Note: computed {len(outcome.computed):,} partitions ({outcome.tasks:,} chunk tasks), "
        f"kept {len(outcome.unchanged):,}{removed} ({outcome.seconds:.1f} s)"
    )
    say(
        f"wrote {outcome.analysis.bars.height:,} rows to {results / 'bars.parquet'} and "
        f"{outcome.analysis.summary.height:,} to {results / 'summary.parquet'}"
    )
    bar_table = outcome.analysis.bars
    if first_run:  # bind now that the bar table exists
        conditions = alert_conditions(alerts, lambda: bar_table.schema)
    raise_alerts(bar_table, conditions, alerts)


def _results_folder(
    files: tuple[str, ...], quotes: QuoteFiles, output: Output, which: str | None
) -> Path:
    """Refuse what ``--incremental`` cannot do (exit 2); return the RESULTS folder (``-o``)."""
    if len(files) != 1:
        _refuse("more than one input", "give the one dataset folder mmflow convert wrote")
    for flag, used in (
        ("--quotes", bool(quotes.files)),
        ("--to", output.to_format is not None),
        ("--table", which is not None),
    ):
        if used:
            _refuse(flag, "the results are the files in the -o folder")
    if output.path is None:
        msg = "--incremental needs -o RESULTS/ (the folder that keeps the results)"
        raise click.UsageError(msg)
    return output.path


def _dataset_settings(
    dataset: Path, options: BarOptions, signing: Signing, selection: Selection
) -> EngineSettings:
    """Engine settings for a converted dataset (its keys and whether it holds quotes)."""
    from mmflow.engine.incremental import check_incremental, list_partitions

    partitions = list_partitions(dataset)
    first = next(iter(partitions.values()))
    names = set()
    for name in first.files:
        names |= set(pl.read_parquet_schema(dataset / first.key / name))
    has_quotes = any(
        name.startswith("quotes") for partition in partitions.values() for name in partition.files
    )
    settings = make_settings(
        options,
        signing,
        keys=[VENUE, "symbol"] if VENUE in names else ["symbol"],
        session=selection.session is not None,
        has_quotes=has_quotes,
        memory_limit=default_memory_limit(),
    )
    try:
        check_incremental(settings, clean=selection.clean)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    return settings
