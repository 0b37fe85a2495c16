"""The simulator's option group of ``mmflow simulate``.

Its defaults come from :class:`mmflow.simulate.SimulationParameters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from mmflow.cli.command import F, defaulted, field_option, option_group
from mmflow.simulate import FAMILIES, SimulationParameters

__all__ = ["SIMULATION_KNOBS", "SIMULATION_OPTIONS", "simulation_options"]


SIMULATION_OPTIONS = (
    "family",
    "accumulation_intensity",
    "accumulation_bars",
    "distribution_bars",
    "hold_bars",
    "overshoot",
    "size_tail",
    "clustering",
    "proxy_drift",
    "spread_variability",
    "distribution_spread",
    "inventory_reversion",
    "excitation",
    "market_makers",
)


def _simulation(values: Mapping[str, Any]) -> SimulationParameters:
    names = tuple(f"SIM{chr(ord('A') + i)}" for i in range(values["symbols"]))
    return SimulationParameters(
        seed=values["seed"],
        symbols=names,
        hours=values["hours"],
        trades_per_hour=values["trades_per_hour"],
        episodes_per_day=values["episodes_per_day"],
        **{name: values[name] for name in SIMULATION_OPTIONS},
    )


_SIMULATED = SimulationParameters()
_POSITIVE = click.FloatRange(min=0)
_BARS = click.IntRange(min=1)
_TWO_BARS = (_BARS, _BARS)
_PAIR = {"metavar": "MIN MAX"}
SIMULATION_KNOBS: list[Callable[[Any], Any]] = [
    field_option(_SIMULATED, "seed", int, "Random seed."),
    defaulted(
        "--symbols",
        kind=click.IntRange(min=1, max=26),
        default=2,
        text="Number of symbols (SIMA, SIMB, …).",
    ),
    field_option(
        _SIMULATED, "hours", click.FloatRange(min=0, min_open=True), "Hours of trading to simulate."
    ),
    field_option(
        _SIMULATED,
        "trades_per_hour",
        click.FloatRange(min=0, min_open=True),
        "Average trades per symbol and hour.",
    ),
    field_option(
        _SIMULATED,
        "episodes_per_day",
        click.FloatRange(min=0),
        "Accumulation → distribution → reversal episodes per symbol and day (0: noise only).",
    ),
    field_option(
        _SIMULATED,
        "family",
        click.Choice(FAMILIES),
        "Generating mechanism: scripted inventory target, or Hawkes flow with "
        "competing market makers (one tracked).",
    ),
    field_option(
        _SIMULATED,
        "accumulation_intensity",
        _POSITIVE,
        "Episode strength: accumulation flow as a share of the noise volume.",
    ),
    field_option(
        _SIMULATED,
        "accumulation_bars",
        _TWO_BARS,
        "Episode speed: MIN MAX bars of an accumulation.",
        **_PAIR,
    ),
    field_option(
        _SIMULATED, "distribution_bars", _TWO_BARS, "MIN MAX bars of a distribution.", **_PAIR
    ),
    field_option(
        _SIMULATED,
        "hold_bars",
        (click.IntRange(min=0), click.IntRange(min=0)),
        "MIN MAX bars of hold between accumulation and distribution.",
        **_PAIR,
    ),
    field_option(
        _SIMULATED,
        "overshoot",
        _POSITIVE,
        "A distribution unloads (1 + this) x the peak, through zero.",
    ),
    field_option(
        _SIMULATED,
        "size_tail",
        click.FloatRange(min=0),
        "Student-t degrees of freedom (> 2) of trade sizes; 0: geometric sizes.",
    ),
    field_option(
        _SIMULATED,
        "clustering",
        _POSITIVE,
        "Volatility of the log trade rate per bar (AR(1)); 0: constant rate.",
    ),
    field_option(
        _SIMULATED,
        "proxy_drift",
        _POSITIVE,
        "Other participants' net flow per bar in noise SDs: the -CVD proxy drifts.",
    ),
    field_option(
        _SIMULATED,
        "spread_variability",
        _POSITIVE,
        "Volatility of the log spread per bar (AR(1)); 0: constant spread.",
    ),
    field_option(
        _SIMULATED,
        "distribution_spread",
        _POSITIVE,
        "Relative widening of the spread during distribution.",
    ),
    field_option(
        _SIMULATED,
        "inventory_reversion",
        click.FloatRange(min=0, max=1),
        "The market maker's mean reversion per bar.",
    ),
    field_option(
        _SIMULATED,
        "excitation",
        click.FloatRange(min=0, max=0.9),
        "hawkes: branching ratio of the order flow.",
    ),
    field_option(
        _SIMULATED,
        "market_makers",
        click.IntRange(min=1),
        "hawkes: competing market makers (one tracked).",
    ),
]
"""The Simulation options (:func:`simulation_options`), in ``--help`` order."""


def simulation_options(func: F) -> F:
    """Add the simulator's options (:class:`mmflow.simulate.SimulationParameters`)."""
    return option_group("Simulation", SIMULATION_KNOBS, "parameters", _simulation)(func)
