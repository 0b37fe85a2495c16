"""The model option groups of ``mmflow``: bars and the phase rule.

The simulator's options are in :mod:`mmflow.cli.simulation_options` (imported by ``simulate``
only: the simulator's modules are not on the other commands' path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from mmflow.analysis import BYTES_PER_BAR, BarOptions, default_max_rows
from mmflow.cli.command import F, field_option, option_group, without
from mmflow.cli.types import Duration
from mmflow.metrics.phase_model import model as phase_model
from mmflow.metrics.phases import PARAMETER_RANGES as PHASE_RANGES
from mmflow.metrics.phases import PhaseParameters

__all__ = [
    "LOOKBACK_HELP",
    "PHASE_OPTIONS",
    "Bars",
    "bar_options",
    "bar_options_without",
    "max_bars_option",
    "phase_options",
]


LOOKBACK_HELP = "Trailing window in bars: Kyle's lambda, Amihud, inventory z, liquidity."
"""What --lookback does in the bar tables (``flow``, ``inventory``)."""


def bar_options(func: F) -> F:
    """Every Bars option, for commands that also label phases (``analyze``, ``plot``).

    --lookback is then also the phase rule's L (:class:`~mmflow.metrics.phases.PhaseParameters`).
    """
    lookback = LOOKBACK_HELP.removesuffix(".") + ", and the phase rule's L (phase labels)."
    return bar_options_without(helps={"lookback": lookback})(func)


def bar_options_without(*unused: str, helps: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Return the Bars group without the options (parameter names) a command does not use.

    A left-out option keeps its :class:`BarOptions` default, so ``--help`` lists only the
    options that change what the command shows. ``helps`` replaces the help text of options
    (by parameter name) that mean something else in this command (``--lookback`` in phases).
    """
    helps = helps or {}
    defaults = BarOptions(max_bars=None)
    decorators = [
        click.option("--bar", type=Duration(), help="Bar length (default 1m)."),
        field_option(
            defaults,
            "horizon",
            Duration(minimum=0),
            "Horizon of realized spread and price impact (by time, not rows).",
        ),
        field_option(
            defaults,
            "lookback",
            click.IntRange(min=2),
            helps.get("lookback", LOOKBACK_HELP),
        ),
        field_option(
            defaults,
            "pressure_horizon",
            click.IntRange(min=1),
            helps.get("pressure_horizon", "Forward bars of the price-pressure regression."),
        ),
        field_option(
            defaults, "vpin_window", click.IntRange(min=1), "Volume buckets per VPIN value."
        ),
        field_option(
            defaults,
            "buckets_per_day",
            click.IntRange(min=1),
            "VPIN bucket volume = average daily volume / this.",
        ),
        field_option(
            defaults,
            "spread_factor",
            click.FloatRange(min=0, min_open=True),
            "Withdrawing when the spread is at least this × its trailing median.",
        ),
        field_option(
            defaults,
            "depth_factor",
            click.FloatRange(min=0, min_open=True),
            "Withdrawing when the depth is at most this × its trailing median.",
        ),
        click.option(
            "--fill",
            is_flag=True,
            help="Make a continuous bar grid across days without data (default: bars only on "
            "the days, or sessions, that hold trades or quotes).",
        ),
        max_bars_option("--max-bars", "bars (also VPIN buckets and window lengths)"),
        click.option(
            "--memory-limit",
            callback=_memory_limit,
            metavar="SIZE",
            help="Memory one chunk of the engine may use (e.g. 2G, 512M); picks the chunk size "
            "(instrument × whole days). Default: half the available memory, at most 4G.",
        ),
    ]
    return option_group("Bars", without(decorators, unused), "bars", _bars)


def _memory_limit(_context: click.Context, _parameter: click.Parameter, value: Any) -> int | None:
    """Parse --memory-limit (exit 2 on a bad size)."""
    if value is None:
        return None
    from mmflow.engine.chunks import parse_memory
    from mmflow.errors import ParameterError

    try:
        return parse_memory(str(value))
    except ParameterError as exc:
        raise click.BadParameter(str(exc).removeprefix("--memory-limit: ")) from exc


def max_bars_option(flag: str, what: str) -> Callable[[F], F]:
    """Return the option limiting the rows a run makes (default sized to the memory)."""
    return click.option(
        flag,
        type=click.IntRange(min=1),
        help=f"Most {what} a run may make; estimated before they are made (exit 2 above). "
        f"Default: available memory / {BYTES_PER_BAR} bytes, now {default_max_rows():,}.",
    )


@dataclass(frozen=True)
class Bars:
    """Bar options (the Bars group) and whether --bar was given.

    Attributes
    ----------
    options
        The library's bar options (``every`` is ``1m`` when --bar is not given).
    explicit
        Whether --bar was given (``analyze`` then writes the per-bar table).
    """

    options: BarOptions
    explicit: bool


def _bars(values: Mapping[str, Any]) -> Bars:
    limit = values.get("max_bars")
    defaults = BarOptions()
    options = BarOptions(
        every=values["bar"] or "1m",
        horizon=values.get("horizon", defaults.horizon),
        lookback=values.get("lookback", defaults.lookback),
        pressure_horizon=values.get("pressure_horizon", defaults.pressure_horizon),
        vpin_window=values.get("vpin_window", defaults.vpin_window),
        buckets_per_day=values.get("buckets_per_day", defaults.buckets_per_day),
        spread_factor=values.get("spread_factor", defaults.spread_factor),
        depth_factor=values.get("depth_factor", defaults.depth_factor),
        fill=values["fill"],
        max_bars=default_max_rows() if limit is None else limit,
        memory_limit=values.get("memory_limit"),
    )
    return Bars(options, values["bar"] is not None)


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


def _phase(values: Mapping[str, Any]) -> PhaseParameters:
    """Build the phase rule's parameters; --lookback and --pressure-horizon come from Bars."""
    return PhaseParameters(
        lookback=values["lookback"],
        horizon=values["pressure_horizon"],
        **{name: values[name] for name in PHASE_OPTIONS},
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
    decorators: list[Callable[[Any], Any]] = []
    for name, text in helps.items():
        field_name = name.replace("-", "_")
        value = getattr(defaults, field_name)
        low, high = PHASE_RANGES[field_name]
        kind: click.ParamType[Any]
        if isinstance(low, int) and field_name not in {"enter", "evidence"}:
            kind = click.IntRange(min=low, max=None if high is None else int(high))
        else:
            kind = click.FloatRange(min=low, max=high)
        option = (
            field_option(defaults, field_name, kind, text + ".")
            if value is not None
            else click.option(f"--{name}", field_name, type=kind, help=text + ".")
        )
        decorators.append(option)
    return option_group("Phase rule", decorators, "phase", _phase)(func)
