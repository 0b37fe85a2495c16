"""Help lists only the options a command uses (issue 13): a Bars option is listed iff it counts.

For each command with the Bars group, its library call (as the command makes it) is run on the
simulated sample with every Bars option at its default and then with one option changed: the
option is in the command's ``--help`` exactly when the change changes what the call returns.
``--bar``, ``--fill`` and ``--max-bars`` (the bar grid and the size limit) are used by all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import click
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.analysis import (
    BarOptions,
    analyze,
    chart,
    inventory_evaluation,
    inventory_report,
    market_bars,
    phases,
)
from mmflow.analysis.market import FLOW_COLUMNS, INVENTORY_COLUMNS, bar_table
from mmflow.cli import cli
from mmflow.io import load
from mmflow.io.assemble import gather
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import QUOTES, TRADES

SIMULATED = Path(__file__).resolve().parent.parent / "sample_data" / "simulated"
BASE = BarOptions(every="1m", max_bars=10**6)

#: One changed value per Bars field, each far enough from the default to show on the sample.
CHANGED: dict[str, Any] = {
    "horizon": "1m",
    "lookback": 30,
    "pressure_horizon": 2,
    "vpin_window": 5,
    "buckets_per_day": 400,
    "spread_factor": 0.5,
    "depth_factor": 0.9,
}
ALWAYS = {"every", "fill", "max_bars"}

Run = Callable[[BarOptions], list[pl.LazyFrame]]


@cache
def market() -> tuple[pl.LazyFrame, pl.LazyFrame]:
    inputs = load([str(SIMULATED / "trades.parquet"), str(SIMULATED / "quotes.parquet")])
    trades, quotes = gather(inputs, TRADES), gather(inputs, QUOTES)
    assert trades is not None
    assert quotes is not None
    # six hours: the phase rule's warm-up (~130 one-minute bars) leaves episodes to study
    end = trades.select(pl.col("ts").min()).collect().item() + timedelta(hours=6)
    return (
        trades.filter(pl.col("ts") < end).collect().lazy(),
        quotes.filter(pl.col("ts") < end).collect().lazy(),
    )


def phase_rule(options: BarOptions) -> PhaseParameters:
    """The phase rule as the CLI builds it: --lookback and --pressure-horizon come from Bars."""
    return PhaseParameters(lookback=options.lookback, horizon=options.pressure_horizon)


def flow_run(options: BarOptions) -> list[pl.LazyFrame]:
    return [bar_table(market_bars(*market(), options=options), FLOW_COLUMNS)]


def inventory_run(options: BarOptions) -> list[pl.LazyFrame]:
    prepared = market_bars(*market(), options=options)
    summary, episodes = inventory_report(prepared, options)
    study = inventory_evaluation(prepared, options)
    return [bar_table(prepared, INVENTORY_COLUMNS), summary, episodes, study]


def phases_run(options: BarOptions) -> list[pl.LazyFrame]:
    result = phases(*market(), options=options, parameters=phase_rule(options))
    return [result.bars, result.episodes, result.study]


def plot_run(options: BarOptions) -> list[pl.LazyFrame]:
    result = chart(*market(), options=options, parameters=phase_rule(options))
    return [result.bars, result.episodes, result.withdrawals]


def analyze_run(options: BarOptions) -> list[pl.LazyFrame]:
    result = analyze(*market(), options=options, phase_parameters=phase_rule(options))
    return [result.summary, result.bars]


RUNS: dict[str, Run] = {
    "flow": flow_run,
    "inventory": inventory_run,
    "phases": phases_run,
    "plot": plot_run,
    "analyze": analyze_run,
}


def listed(command: str) -> set[str]:
    """The Bars fields whose options ``mmflow COMMAND --help`` lists."""
    params = cli.commands[command].params
    names = {p.name for p in params if isinstance(p, click.Option)}
    fields = {"bar": "every"}
    return {fields.get(name, name) for name in names if name} & (set(CHANGED) | ALWAYS | {"every"})


@cache
def output(command: str, field: str | None) -> tuple[pl.DataFrame, ...]:
    options = BASE if field is None else replace(BASE, **{field: CHANGED[field]})
    return tuple(pl.collect_all(RUNS[command](options)))


def same(before: pl.DataFrame, after: pl.DataFrame) -> bool:
    """Equal up to float rounding (parallel sums may differ in the last bit between runs)."""
    try:
        assert_frame_equal(before, after, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    except AssertionError:
        return False
    return True


def changes(command: str, field: str) -> bool:
    before, after = output(command, None), output(command, field)
    return not all(same(a, b) for a, b in zip(before, after, strict=True))


def test_every_command_with_bar_options_is_covered() -> None:
    with_bars = {name for name, command in cli.commands.items() if "lookback" in listed(name)}
    assert with_bars == set(RUNS)


@pytest.mark.parametrize(
    "command",
    [
        "flow",
        "inventory",
        "phases",
        # These two list every Bars option; slow, so run with -m slow.
        pytest.param("plot", marks=pytest.mark.slow),
        pytest.param("analyze", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("field", sorted(CHANGED))
def test_a_bar_option_is_listed_exactly_when_it_changes_the_result(
    command: str, field: str
) -> None:
    assert listed(command) >= ALWAYS
    used = changes(command, field)
    assert (field in listed(command)) == used, f"mmflow {command}: --{field.replace('_', '-')} " + (
        "changes the result but is not listed" if used else "is listed but changes nothing"
    )
