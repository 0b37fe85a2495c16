"""The ``mmflow`` command: parse options, call one library function, render.

Options come in typed groups (:mod:`mmflow.cli.options`, :mod:`mmflow.cli.model_options`), with
defaults from the environment and a TOML file (:mod:`mmflow.cli.config`); what surrounds the
library call — reading, progress, notes, writing, alerts — is in :mod:`mmflow.cli.run`. The group
and ``mmflow config`` are in :mod:`mmflow.cli.app`; the commands, one module per family, register
themselves on it when imported, which the group does when a command is used
(:data:`mmflow.cli.app.COMMAND_MODULES`): ``mmflow --version`` imports no command, ``mmflow
analyze`` only its own module.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmflow.cli.app import cli, main
from mmflow.cli.config import set_environment_names

__all__ = ["PHASE_OPTIONS", "cli", "files", "main", "market", "phases", "simulate", "trades"]

set_environment_names(cli)


def __getattr__(name: str) -> Any:
    """Import a command module (``mmflow.cli.market``…) or ``PHASE_OPTIONS`` on first use."""
    if name == "PHASE_OPTIONS":
        from mmflow.cli.model_options import PHASE_OPTIONS

        return PHASE_OPTIONS
    if name in ("files", "market", "phases", "simulate", "trades"):
        return importlib.import_module(f"mmflow.cli.{name}")
    msg = f"module 'mmflow.cli' has no attribute {name!r}"
    raise AttributeError(msg)
