"""Start-up of the command line (issue 11): commands are imported when used.

``mmflow --version`` imports no command and not polars; ``mmflow analyze`` imports its own
module only, and neither rich (tables, progress: only when something is shown on a terminal)
nor the incremental engine (only with ``--incremental``). Checked in fresh interpreters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmflow.cli import cli
from mmflow.cli.app import COMMAND_MODULES


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(done.stdout.split())


def test_every_command_is_found_in_its_module() -> None:
    names = set(cli.commands) - {"config"}
    assert names == set(COMMAND_MODULES)
    for name in names:
        callback = cli.commands[name].callback
        assert callback is not None
        assert callback.__module__ == f"mmflow.cli.{COMMAND_MODULES[name]}"


def test_the_group_imports_no_command_and_not_polars() -> None:
    loaded = _modules_after("import mmflow.cli")
    assert "polars" not in loaded
    assert not {f"mmflow.cli.{module}" for module in COMMAND_MODULES.values()} & loaded


@pytest.mark.parametrize("command", ["analyze", "classify"])
def test_a_command_imports_its_own_module_only(command: str) -> None:
    loaded = _modules_after(
        "import click\nfrom mmflow.cli import cli\n"
        f"cli.get_command(click.Context(cli), {command!r})"
    )
    own = f"mmflow.cli.{COMMAND_MODULES[command]}"
    others = {f"mmflow.cli.{m}" for m in COMMAND_MODULES.values()} - {own}
    assert own in loaded
    assert not others & loaded
    assert "rich" not in loaded
    assert "mmflow.engine.incremental" not in loaded


def test_lazily_imported_commands_get_their_environment_variables() -> None:
    loaded = _modules_after(
        "import click\nfrom mmflow.cli import cli\n"
        "command = cli.get_command(click.Context(cli), 'flow')\n"
        "bar = next(p for p in command.params if p.name == 'bar')\n"
        "assert bar.envvar == ['MMFLOW_FLOW_BAR', 'MMFLOW_BAR'], bar.envvar"
    )
    assert "mmflow.cli.market" in loaded
