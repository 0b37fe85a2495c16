"""Help lists only the options a command uses (issue 13).

Bars options: a Bars option is listed iff it changes the result (below); every other option
group: a listed option is read by the command's code path (the second half of this file).

For each command with the Bars group, its library call (as the command makes it) is run on the
simulated sample with every Bars option at its default and then with one option changed: the
option is in the command's ``--help`` exactly when the change changes what the call returns.
``--bar``, ``--fill`` and ``--max-bars`` (the bar grid and the size limit) are used by all.
"""

from __future__ import annotations

import ast
import inspect
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass, replace
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
    Selection,
    Signing,
    analyze,
    chart,
    inventory_evaluation,
    inventory_report,
    market_bars,
    parameters_of,
    phases,
)
from mmflow.analysis.market import FLOW_COLUMNS, INVENTORY_COLUMNS, bar_table
from mmflow.cli import cli
from mmflow.cli.command import BUILDERS_ATTRIBUTE, Builder, help_group
from mmflow.io import load
from mmflow.io.assemble import gather
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import QUOTES, TRADES
from tests.helpers import run

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


# --- Every other option group: a listed option must be read by the command's code path ------
#
# The Bars guard above asks whether an option changes the result. Most other options change it
# only on inputs that exercise them (--date on LOBSTER files, --round-lot on TAQ, --strict on a
# folder with a bad file) and Execution by design never changes it, so for them "uses" is
# "reads": each option group's builder makes one typed object (Inputs, Selection, Signing,
# Output, ...); the command runs on the sample with that object replaced by a copy that records
# which fields its code path reads (reads that only copy every field into the run's parameter
# record or metadata do not count). A listed option is used when a field that carries it is
# read. Execution is used when the engine's chunk tasks ran on it. Options with no group are
# used when the command's function reads its parameter.

TRADES_FILE = str(SIMULATED / "trades.parquet")
QUOTES_FILE = str(SIMULATED / "quotes.parquet")
ON_SAMPLE = [TRADES_FILE, "--quotes", QUOTES_FILE, "--to", "csv"]
BVC = [TRADES_FILE, "--method", "bvc", "--bvc-distribution", "student-t", "--to", "csv"]

#: Per command, the runs (arguments after the command name) whose reads count; later runs
#: reach reads that depend on a value (--bvc-dof with --method bvc, the event study with
#: --evaluate). "{tmp}" is a fresh folder.
READ_RUNS: dict[str, list[list[str]]] = {
    "analyze": [ON_SAMPLE, [*BVC, "--alert", "vpin>2"]],
    "flow": [ON_SAMPLE, BVC],
    "inventory": [[*ON_SAMPLE, "--evaluate"], BVC],
    "phases": [ON_SAMPLE, [*BVC, "--evaluate"]],
    "classify": [ON_SAMPLE, BVC],
    "profile": [ON_SAMPLE],
    "inspect": [[str(SIMULATED), "--to", "csv"]],
    "convert": [[TRADES_FILE, "--quotes", QUOTES_FILE, "-o", "{tmp}/dataset"]],
    "plot": [
        [TRADES_FILE, "--quotes", QUOTES_FILE, "--panels", "price", "-o", "{tmp}/chart.png"],
        [*BVC[:-2], "--panels", "price", "-o", "{tmp}/bvc.png"],
    ],
    "simulate": [
        ["-o", "{tmp}/sim", "--hours", "4", "--symbols", "1"],
        ["-o", "{tmp}/hawkes", "--hours", "4", "--symbols", "1", "--family", "hawkes"],
    ],
}

#: The fields (keyword.field...) that carry an option besides ``<group keyword>.<option>``.
#: ReadOptions (``inputs.read``) goes to the readers whole: each format reads what it has.
FIELDS: dict[str, tuple[str, ...]] = {
    "fmt": ("inputs.fmt",),
    "column_map": ("inputs.read",),
    "symbols": ("inputs.read", "selection.symbols"),
    "venues": ("selection.venues",),
    "trading_date": ("inputs.read",),
    "tz": ("inputs.tz", "inputs.read"),
    "round_lot": ("inputs.read",),
    "exclude": ("inputs.exclude",),
    "strict": ("inputs.strict",),
    "skip_bad_rows": ("inputs.skip_bad_rows",),
    "valid_from": ("inputs.read",),
    "valid_until": ("inputs.read",),
    "quote_files": ("quotes.files",),
    "quotes_format": ("quotes.fmt",),
    "session": ("selection.session",),
    "session_tz": ("selection.session",),
    "clean": ("selection.clean",),
    "start": ("selection.start",),
    "end": ("selection.end",),
    "clock": ("selection.clock",),
    "method": ("signing.method",),
    "quote_match": ("signing.match",),
    "quote_lag": ("signing.lag",),
    "max_quote_age": ("signing.max_quote_age",),
    "bvc_distribution": ("signing.bvc_distribution",),
    "bvc_dof": ("signing.bvc_dof",),
    "alerts": ("alerts.conditions",),
    "alert_window": ("alerts.window",),
    "alert_to": ("alerts.target",),
    "output": ("output.path", "target.images"),
    "to_format": ("output.to_format",),
    "value_area_method": ("choices.method",),
    "bar": ("choices.every",),
    "plot": ("choices.target",),
}

#: Listed options that are not read on purpose, and why.
NOT_READ: dict[tuple[str, str], str] = {
    # convert's tasks go through the executor only on --executor dask (convert_tasks; tested in
    # test_convert_dask); the recorded run here is local, where it writes in this process
    ("convert", "executor"): "read on --executor dask (test_convert_dask)",
    ("convert", "scheduler"): "read on --executor dask (test_convert_dask)",
    ("convert", "workers"): "read on --executor dask (test_convert_dask)",
}

#: Reads in these functions copy every field (parameter records, metadata, dataclass copies).
COPYING = frozenset(
    {"parameters_of", "metadata_for", "asdict", "_asdict_inner", "astuple", "replace"}
    | {"__repr__", "__eq__", "__hash__", "__init__", "__post_init__"}
)


class Reads:
    """Field reads of recorded option objects (see :meth:`recorded`)."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.classes: dict[tuple[type, str], type] = {}

    def recorded(self, value: Any, path: str) -> Any:
        """Return a copy of dataclass ``value`` whose field reads are added to ``paths``."""
        if not is_dataclass(value) or isinstance(value, type):
            return value
        kind = type(value)
        if (kind, path) not in self.classes:
            self.classes[kind, path] = self._recording_class(kind, path)
        copy: Any = object.__new__(self.classes[kind, path])
        for item in fields(value):
            object.__setattr__(copy, item.name, object.__getattribute__(value, item.name))
        return copy

    def _recording_class(self, kind: type, path: str) -> type:
        names = {item.name for item in fields(kind)}
        reads = self

        def __getattribute__(instance: Any, name: str) -> Any:
            value = object.__getattribute__(instance, name)
            if name not in names:
                return value
            if sys._getframe(1).f_code.co_name not in COPYING:
                reads.paths.add(f"{path}.{name}")
            return reads.recorded(value, f"{path}.{name}")

        return type(kind.__name__, (kind,), {"__getattribute__": __getattribute__})


@cache
def command_reads(command: str) -> tuple[frozenset[str], bool]:
    """Run ``command``'s :data:`READ_RUNS`; return the fields read and whether tasks ran."""
    callback = cli.commands[command].callback
    builders: list[Builder] = getattr(callback, BUILDERS_ATTRIBUTE)
    reads, executions = Reads(), []

    def recording(builder: Builder) -> Builder:
        def build(values: Mapping[str, Any]) -> object:
            made = builder.build(values)
            if builder.keyword == "execution":
                executions.append(made)  # activated as made: recorded by its use
                return made
            return reads.recorded(made, builder.keyword)

        return Builder(builder.keyword, builder.names, build)

    setattr(callback, BUILDERS_ATTRIBUTE, [recording(builder) for builder in builders])
    try:
        with tempfile.TemporaryDirectory() as folder:
            for arguments in READ_RUNS[command]:
                code, _, stderr = run(command, *(a.format(tmp=folder) for a in arguments))
                assert code == 0, f"mmflow {command} {' '.join(arguments)}: {stderr}"
    finally:
        setattr(callback, BUILDERS_ATTRIBUTE, builders)
    return frozenset(reads.paths), any(getattr(e, "used", False) for e in executions)


def parameter_read(function: Callable[..., Any] | None, name: str) -> bool:
    """Whether ``function`` (or a function it wraps) reads its parameter ``name``."""
    while function is not None:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function.__code__)))
        loads = {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        }
        if name in loads:
            return True
        function = getattr(function, "__wrapped__", None)
    return False


def unread_options(command: str) -> list[str]:
    """The options ``mmflow COMMAND --help`` lists that its code path does not read."""
    click_command = cli.commands[command]
    callback = click_command.callback
    assert callback is not None
    builders: list[Builder] = getattr(callback, BUILDERS_ATTRIBUTE, [])
    group_of = {name: builder.keyword for builder in builders for name in builder.names}
    paths, tasks_ran = command_reads(command)
    unread = []
    for param in click_command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None or help_group(param) == "General":
            continue
        keyword = group_of.get(name)
        if keyword == "bars" or (command, name) in NOT_READ:
            continue  # Bars: the behaviour guard above
        if keyword is None:
            used = parameter_read(callback, name)
        elif keyword == "execution":
            used = tasks_ran
        else:
            used = any(p in paths for p in (f"{keyword}.{name}", *FIELDS.get(name, ())))
        if not used:
            unread.append(f"--{name.replace('_', '-')}")
    return unread


def test_every_command_is_checked_for_unread_options() -> None:
    with_options = {
        name
        for name, command in cli.commands.items()
        if any(help_group(p) != "General" for p in command.params if isinstance(p, click.Option))
    }
    assert with_options == set(READ_RUNS)


@pytest.mark.parametrize(
    "command",
    [
        "analyze",
        "flow",
        "inventory",
        "phases",
        "classify",
        "profile",
        "inspect",
        "convert",
        "simulate",
        pytest.param("plot", marks=pytest.mark.slow),
    ],
)
def test_every_listed_option_is_read_by_the_command(command: str) -> None:
    assert unread_options(command) == [], f"mmflow {command} --help lists options it never reads"


def test_the_recorder_sees_an_unread_option() -> None:
    """The guard can fail: a run that never reads a field leaves it out of the reads."""
    reads = Reads()
    signing = reads.recorded(Signing(method="tick"), "signing")
    assert signing.method == "tick"
    assert reads.paths == {"signing.method"}
    assert parameters_of(Selection(), signing)["quote_lag"] == "0s"
    assert reads.paths == {"signing.method"}  # copied into the parameter record: not a use


def test_phases_help_says_what_lookback_and_pressure_horizon_do_there() -> None:
    """In phases, --lookback is the phase rule's L and --pressure-horizon the episodes' h."""
    phases_help = " ".join(run("phases", "--help")[1].split())
    flow_help = " ".join(run("flow", "--help")[1].split())
    assert "L: trailing bars of the phase rule's flow scale" in phases_help
    assert "h: bars after an episode's end over which its forward_return" in phases_help
    assert "Kyle's lambda" not in phases_help
    assert "price-pressure regression" not in phases_help
    assert "Trailing window in bars: Kyle's lambda" in flow_help
