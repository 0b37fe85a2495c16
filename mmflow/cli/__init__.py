"""The ``mmflow`` command: parse options, call one library function, render.

Options come in typed groups (:mod:`mmflow.cli.options`, :mod:`mmflow.cli.model_options`), with
defaults from the environment and a TOML file (:mod:`mmflow.cli.config`); what surrounds the
library call — reading, progress, notes, writing, alerts — is in :mod:`mmflow.cli.run`. The group
and ``mmflow config`` are in :mod:`mmflow.cli.app`; the commands, one module per family, register
themselves on it when imported here.
"""

from __future__ import annotations

from mmflow.cli import files, market, phases, simulate, trades
from mmflow.cli.app import cli, main
from mmflow.cli.config import set_environment_names
from mmflow.cli.model_options import PHASE_OPTIONS

__all__ = ["PHASE_OPTIONS", "cli", "files", "main", "market", "phases", "simulate", "trades"]

set_environment_names(cli)
