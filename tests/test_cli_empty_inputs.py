"""Every command on an empty file, a header-only file and a folder with no data.

Each says in one line what is wrong (exit 1), prints nothing on stdout and writes no file;
``inspect`` reports a header-only file as 0 rows and ``convert`` writes nothing from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmflow.cli import cli

HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
COMMANDS = ["inspect", "analyze", "flow", "inventory", "classify", "profile", "phases", "plot"]
COMMANDS += ["convert"]
CASES = ["empty-file", "header-only", "empty-folder"]


def make_input(tmp_path: Path, case: str) -> Path:
    if case == "empty-folder":
        folder = tmp_path / "data"
        folder.mkdir()
        return folder
    path = tmp_path / "binance-futures_trades_2020-02-22_BTCUSDT.csv"
    path.write_text("" if case == "empty-file" else HEADER)
    return path


def output_flags(command: str, out: Path) -> list[str]:
    if command == "convert":
        return ["-o", str(out / "dataset")]
    if command == "plot":
        return ["-o", str(out / "chart.png")]
    return ["-o", str(out / "table.csv")]


EXPECTED = {
    "empty-file": "cannot tell the format (the file is empty)",
    "header-only": "no trades to analyse",
    "empty-folder": "directory holds no data files",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_on_no_data_says_so_in_one_line(
    command: str, case: str, tmp_path: Path
) -> None:
    source = make_input(tmp_path, case)
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, [command, str(source), *output_flags(command, out)])
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if case == "header-only" and command == "inspect":
        # a header-only file is a file with 0 rows: inspect reports it
        assert result.exit_code == 0, result.stderr
        assert (out / "table.csv").read_text().splitlines()[1].split(",")[3] == "0"
        return
    if case == "header-only" and command == "convert":
        assert result.exit_code == 0, result.stderr
        assert "0 trades" in result.stderr
        assert not (out / "dataset").exists() or not any((out / "dataset").rglob("*.parquet"))
        return
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert EXPECTED[case] in lines[0]
    assert list(out.iterdir()) == []
