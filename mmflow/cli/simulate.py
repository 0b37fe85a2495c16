"""``mmflow simulate``: a synthetic market with ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from mmflow.cli import run
from mmflow.cli.app import cli
from mmflow.cli.command import option_group
from mmflow.cli.options import output_folder_option, quiet_option, set_verbose
from mmflow.cli.simulation_options import simulation_options
from mmflow.simulate import SimulationParameters, simulate, write_simulation

__all__ = [
    "simulate_command",
]


@cli.command(name="simulate")
@option_group(
    "Output",
    [output_folder_option("Folder for trades.parquet, quotes.parquet and truth.parquet.")],
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
