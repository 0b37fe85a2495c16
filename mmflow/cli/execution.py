"""The Execution options (``--executor``, ``--scheduler``, ``--workers``): where chunk tasks run.

The group builds one :class:`~mmflow.engine.executors.Execution`, checked while the options are
parsed (a bad combination is a usage error, exit 2; ``--executor dask`` without the ``dask``
extra is exit 1 with the install hint), and makes it the active one for the command: the
engine's tasks (:func:`mmflow.engine.executors.run_tasks`) then run on it, with progress (tasks
done / total) on a terminal. A Dask cluster starts only when there are tasks to run and is
closed when the command ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import click

from mmflow.cli.command import F, defaulted, option_group
from mmflow.cli.run import say, stages
from mmflow.engine.executors import EXECUTORS, MAX_WORKERS, Execution, activate
from mmflow.errors import ParameterError

__all__ = ["execution_options", "local_execution_options"]


def _execution(values: Mapping[str, Any], refusal: str | None = None) -> Execution:
    context = click.get_current_context(silent=True)
    if refusal is not None and values.get("executor") == "dask":
        source = context.get_parameter_source("executor") if context is not None else None
        if source is None or source == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(refusal)
        # a default shared by every command (MMFLOW_EXECUTOR, mmflow.toml): run here, and the
        # closing note says that Dask ran nothing
    try:
        execution = Execution(
            values.get("executor") or "local",
            values.get("scheduler"),
            values.get("workers"),
            on_stage=stages(),
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    if context is not None:
        context.call_on_close(lambda: _close(execution))
    activate(execution)
    return execution


def _close(execution: Execution) -> None:
    activate(None)  # a later run in this process (tests, the Python API) is local again
    execution.close()
    if execution.executor == "dask" and not execution.used:
        say(
            "Note: --executor dask ran nothing: this command computed its tables in this "
            "process (only the chunked engine's tasks go to Dask)"
        )


def execution_options(func: F) -> F:
    """``--executor``, ``--scheduler``, ``--workers``; the command gets ``execution``."""
    return _execution_options(func, None)


def local_execution_options(refusal: str) -> Callable[[F], F]:
    """Return the Execution options of a command that runs in this process only.

    ``--executor dask`` on the command line is then a usage error (exit 2, before anything
    is read) saying ``refusal``, instead of being accepted and ignored. From the environment
    or the config file (a default for every command) it is kept, the command runs here and
    the closing note says that Dask ran nothing.
    """
    return lambda func: _execution_options(func, refusal)


def _execution_options(func: F, refusal: str | None) -> F:
    decorators = [
        defaulted(
            "--executor",
            kind=click.Choice(EXECUTORS),
            default="local",
            text="Where the per-instrument, per-day chunk tasks run: here one after another "
            "(local), or on a Dask cluster (dask; needs pip install 'mmflow[dask]')."
            + ("" if refusal is None else " This command runs here only (dask is refused)."),
        ),
        click.option(
            "--scheduler",
            metavar="tcp://HOST:PORT",
            help="With --executor dask: the address of a running `dask scheduler` (its workers "
            "must reach the input paths) (default: start a local cluster).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1, max=MAX_WORKERS),
            help="With --executor dask: worker processes of the local cluster, each with "
            "cores/N polars threads (default: 2).",
        ),
    ]
    build = partial(_execution, refusal=refusal)
    return option_group("Execution", decorators, "execution", build)(func)
