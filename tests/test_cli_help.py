"""Help people can read: grouped options, defaults, the format list once, examples that run."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import shlex
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mmflow.cli import cli
from mmflow.io import format_names

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(cli.commands)


def help_text(*command: str) -> str:
    result = CliRunner(env={"COLUMNS": "100"}).invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


def examples(text: str) -> list[str]:
    """Return the command lines of the ``Example:`` block of a help text."""
    block = text.split("Example:", 1)[1] if "Example:" in text else ""
    lines = block.strip("\n").split("\n\n", 1)[0].splitlines()
    found = [line.strip() for line in lines]
    assert all(re.match(r"^([A-Z_]+=\S+ )*mmflow ", line) for line in found), found
    return found


def run_line(line: str) -> click.testing.Result:
    words = shlex.split(line)
    env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    args = words[len(env) + 1 :]
    return CliRunner(env={"COLUMNS": "120", **env}).invoke(cli, args)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_example_runs(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if command == "plot" and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("plot examples need the plot extra")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    lines = examples(help_text(*([command] if command else [])))

    assert lines, f"mmflow {command} --help has no example"
    for line in lines:
        result = run_line(line)
        assert result.exit_code == 0, (line, result.stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_a_default(command: str) -> None:
    for param in cli.commands[command].params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help, (command, param.opts)
        if param.is_flag or param.required:
            continue
        shows_default = bool(param.show_default) and param.default is not None
        assert shows_default or "default" in param.help.lower(), (command, param.opts)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_format_list_is_printed_at_most_once(command: str) -> None:
    text = "".join(help_text(command).split())  # no spaces: the list wraps at hyphens
    for name in ("tardis-liquidations", "taq-daily-nbbo"):
        assert text.count(name) <= 1, command
    if any(p.name == "fmt" for p in cli.commands[command].params):
        assert ",".join(format_names()) in text


def test_options_are_grouped_and_only_those_a_command_uses() -> None:
    analyze = help_text("analyze")
    sections = re.findall(r"^(\w[\w ]*):$", analyze, flags=re.MULTILINE)
    expected = [
        "Options",
        "Input options",
        "Selection options",
        "Signing options",
        "Bars options",
        "Execution options",
        "Alerts options",
        "Output options",
        "General options",
    ]
    assert sections == expected
    inspect = help_text("inspect")
    assert "Signing options" not in inspect
    assert "--bar " not in inspect
    assert "--method" not in inspect
    simulate = help_text("simulate")
    assert "Input options" not in simulate
    assert "Simulation options" in simulate


def test_help_names_the_environment_and_the_config_file() -> None:
    text = " ".join(help_text("flow").split())
    assert "MMFLOW_<OPTION>" in text
    assert "mmflow.toml" in text
    assert "--config FILE" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_command_bodies_are_thin(command: str) -> None:
    """Parse, one library call, render: a command body stays within about 25 lines."""
    callback = cli.commands[command].callback
    assert callback is not None
    tree = ast.parse(textwrap.dedent(inspect.getsource(callback)))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    lines = (body[-1].end_lineno or 0) - body[0].lineno + 1
    assert lines <= 28, (command, lines)
