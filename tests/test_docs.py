"""The README cannot drift: its commands run, and every command is documented."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmflow.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COMMANDS = re.findall(r"^\$ (mmflow .+)$", README, flags=re.MULTILINE)


def test_readme_opens_with_demo_and_test_commands() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_command_is_in_the_readme() -> None:
    for name in cli.commands:
        assert f"mmflow {name}" in README, name


def test_readme_has_example_commands() -> None:
    assert len(COMMANDS) >= 3


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner(env={"COLUMNS": "120"}).invoke(cli, shlex.split(command)[1:])
    assert result.exit_code == 0, result.stderr


def test_readme_quickstart_output_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner(env={"COLUMNS": "100"}).invoke(cli, ["analyze", "sample_data/"])
    block = README.split("$ mmflow analyze sample_data/\n", 1)[1].split("```", 1)[0]
    shown = [line.rstrip() for line in block.splitlines() if line.strip()]
    printed = [line.rstrip() for line in result.stdout.splitlines() if line.strip()]
    assert printed == shown


def test_readme_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    code = README.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "BTCUSDT" in result.stdout


def shell_examples() -> list[str]:
    """The ``mmflow …`` commands of the README's sh and crontab blocks (continuations joined)."""
    found: list[str] = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", README, flags=re.DOTALL):
        if lang not in {"sh", "crontab"}:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                command = re.sub(r"\s+(>>|>|2>&1).*$|[;#].*$", "", part.strip())
                if command.startswith("mmflow ") and not command.startswith("mmflow |"):
                    found.append(" ".join(command.split()))
    return found


OUTPUT_FLAGS = {"-o", "--output", "--plot", "--alert-to"}


def runnable(line: str, tmp_path: Path) -> list[str]:
    """The example's arguments, its folders stood in for by the sample market and ``tmp_path``.

    ``today/`` and ``incoming/<day>/`` are the simulated sample; outputs and the converted
    ``dataset/`` go to ``tmp_path``.
    """
    line = re.sub(r"incoming/(\$\([^)]*\))?\S*", "sample_data/simulated/", line)
    words = shlex.split(line)[1:]
    out = []
    for before, word in zip(["", *words], words, strict=False):
        if before in OUTPUT_FLAGS or word.rstrip("/").endswith("dataset"):
            word = str(tmp_path / Path(word).name)
        out.append("sample_data/simulated/" if word == "today/" else word)
    return out


SHELL_EXAMPLES = shell_examples()


def test_the_shell_examples_are_found() -> None:
    assert any(line.startswith("mmflow plot") for line in SHELL_EXAMPLES)
    assert any(line.startswith("mmflow phases today/") for line in SHELL_EXAMPLES)
    assert any("--alert-to out/alerts.ndjson" in line for line in SHELL_EXAMPLES)  # crontab


@pytest.mark.parametrize("line", SHELL_EXAMPLES)
def test_readme_shell_example_runs(
    line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "--scheduler" in line:
        pytest.skip("needs a running Dask scheduler (the README's cluster example)")
    if line.startswith("mmflow plot") or "--plot" in line:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(ROOT)
    runner = CliRunner(env={"COLUMNS": "120"})
    arguments = runnable(line, tmp_path)
    if "--incremental" in arguments:  # reads a dataset that mmflow convert made first
        made = runner.invoke(cli, ["convert", "sample_data/simulated/", "-o", arguments[1]])
        assert made.exit_code == 0, made.stderr
    result = runner.invoke(cli, arguments)
    assert result.exit_code in {0, 3}, result.stderr  # 3: an --alert fired (as documented)
    assert list(tmp_path.iterdir()), "the example writes its output"


def test_readme_shell_completion_line_runs() -> None:
    assert 'eval "$(_MMFLOW_COMPLETE=bash_source mmflow)"' in README
    result = CliRunner(env={"_MMFLOW_COMPLETE": "bash_source"}).invoke(cli, [], prog_name="mmflow")
    assert result.exit_code == 0
    assert "_mmflow_completion" in result.output
