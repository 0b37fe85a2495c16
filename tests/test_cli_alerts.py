"""--alert on analyze, inventory and phases: exit 3 after all output, NDJSON, errors, --quiet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.cli import cli
from tests.helpers import run as cli_run

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = ROOT / "sample_data" / "simulated"
MARKET = [str(SIMULATED / "trades.parquet"), str(SIMULATED / "quotes.parquet")]
# Twenty-one bars into the second distribution episode of the simulated sample (README; the
# first falls inside the detector's warm-up): the latest bar (04:44) is distribution (short) since
# 04:24; its normalized OFI is 0.176 and its inventory z-score -0.01; liquidity is provided
# throughout.
AT_TWO = "2024-01-02T04:45:00Z"


def run(*args: str | Path) -> tuple[int, str, str]:
    return cli_run(*args, columns=120)


def alert_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ALERT")]


def test_analyze_alerts_fire_and_do_not_fire_on_the_latest_bar(tmp_path: Path) -> None:
    conditions = [
        "phase=distribution",
        "ofi_normalized>0.1",
        "ofi_normalized>0.2",
        "liquidity_state=withdrawing",
        "abs(inventory_z)>3",
        "phase=distribution and not inventory_side=short",
    ]
    flags = [part for text in conditions for part in ("--alert", text)]
    code, _, stderr = run(
        "analyze", *MARKET, "--end", AT_TWO, "--bar", "1m", "-o", tmp_path / "b.csv", *flags
    )
    assert code == 3, stderr
    assert alert_lines(stderr) == [
        "ALERT SIMA phase=distribution since 2024-01-02 04:24 UTC (21 bars to 04:44)",
        "ALERT SIMA ofi_normalized>0.1 since 2024-01-02 04:44 UTC (ofi_normalized=0.1758)",
    ]


def test_no_alert_fires_exit_0(tmp_path: Path) -> None:
    code, _, stderr = run(
        "analyze",
        *MARKET,
        "--end",
        AT_TWO,
        "-o",
        tmp_path / "b.csv",
        "--alert",
        "liquidity_state=withdrawing",
        "--alert",
        "phase=accumulation or vpin>0.99",
        "--alert-to",
        tmp_path / "alerts.ndjson",
    )
    assert code == 0, stderr
    assert alert_lines(stderr) == []
    assert (tmp_path / "alerts.ndjson").read_bytes() == b""  # rewritten, empty: nothing fired


def test_alert_window_looks_back_and_since_starts_the_run(tmp_path: Path) -> None:
    later = [
        "analyze",
        *MARKET,
        "--end",
        "2024-01-02T05:30:00Z",
        "--bar",
        "1m",
        "-o",
        str(tmp_path / "b.csv"),
    ]
    code, _, stderr = run(*later, "--alert", "phase=distribution")
    assert (code, alert_lines(stderr)) == (0, [])  # the episode ended at 04:58
    code, _, stderr = run(*later, "--alert", "phase=distribution", "--alert-window", "40m")
    assert code == 3
    assert alert_lines(stderr) == [
        "ALERT SIMA phase=distribution since 2024-01-02 04:24 UTC (35 bars to 04:58)"
    ]
    code, _, _ = run(*later, "--alert", "phase=distribution", "--alert-window", "30m")
    assert code == 0  # 05:00 onwards: no distribution bar


def test_inventory_alert_on_its_bar_table() -> None:
    args = ["inventory", *MARKET, "--end", "2024-01-02T01:00:00Z", "--to", "csv"]
    code, stdout, stderr = run(
        *args, "--alert", "abs(inventory_z)>2.5", "--alert", "inventory_z<-2.9"
    )
    assert code == 3
    assert alert_lines(stderr) == [
        "ALERT SIMA abs(inventory_z)>2.5 since 2024-01-02 00:59 UTC (inventory_z=-2.852)"
    ]
    last = pl.read_csv(stdout.encode()).row(-1, named=True)
    assert last["inventory_z"] == pytest.approx(-2.851706, abs=1e-6)
    # phase is not a column of the inventory bar table
    code, _, stderr = run(*args, "--alert", "phase=distribution")
    assert code == 2
    assert "unknown column 'phase'; the columns are venue, symbol, mm_inventory" in stderr


def test_phases_alert_with_episodes_output(tmp_path: Path) -> None:
    code, stdout, stderr = run(
        "phases",
        *MARKET,
        "--end",
        AT_TWO,
        "--episodes",
        "--to",
        "csv",
        "--alert",
        "distribution_score>0.5",
        "--alert",
        "distribution_score>0.98",  # 0.8943 on the latest bar: does not fire
        "--alert-to",
        tmp_path / "alerts.ndjson",
    )
    assert code == 3
    assert alert_lines(stderr) == [
        "ALERT SIMA distribution_score>0.5 since 2024-01-02 04:21 UTC "
        "(24 bars to 04:44; distribution_score=0.8943)"
    ]
    assert pl.read_csv(stdout.encode())["phase"].to_list() == ["accumulation", "distribution"]
    [record] = [json.loads(line) for line in (tmp_path / "alerts.ndjson").read_text().splitlines()]
    assert record["instrument"] == "SIMA"
    assert record["condition"] == "distribution_score>0.5"
    assert record["since"] == "2024-01-02T04:21:00.000000000Z"
    assert record["ts"] == "2024-01-02T04:44:00.000000000Z"
    assert record["bars"] == 24
    assert record["distribution_score"] == pytest.approx(0.8943430, abs=1e-6)


def test_exit_3_comes_after_every_output_is_complete(tmp_path: Path) -> None:
    """A real process: when it exits 3, the -o file, stdout and --alert-to are all complete."""
    reference = tmp_path / "reference.parquet"
    code, _, stderr = run("analyze", *MARKET, "--end", AT_TWO, "--bar", "1m", "-o", reference)
    assert code == 0, stderr
    output, alerts = tmp_path / "bars.parquet", tmp_path / "alerts.ndjson"
    command = [sys.executable, "-m", "mmflow", "analyze", *MARKET, "--end", AT_TWO, "--bar", "1m"]
    alert = ["--alert", "phase=distribution", "--alert-to", str(alerts)]
    proc = subprocess.run(
        [*command, "-o", str(output), *alert], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 3, proc.stderr
    # Same rows and values; with --alert the plan differs and roll_spread may differ in the
    # last bit (seen at 04:44: 0.04355956723195928 vs ...27), hence the 1e-12 tolerance.
    assert_frame_equal(pl.read_parquet(output), pl.read_parquet(reference), rel_tol=1e-12)
    lines = proc.stderr.splitlines()
    assert lines[-2].startswith("wrote 285 rows to")  # the table first, then the alert
    assert lines[-1].startswith("ALERT SIMA phase=distribution since 2024-01-02 04:24 UTC")
    assert json.loads(alerts.read_text())["condition"] == "phase=distribution"
    assert not list(tmp_path.glob(".*.tmp"))
    # stdout too: the whole CSV is written before the exit status says "alert"
    piped = subprocess.run(
        [*command, "--bar", "1m", "--to", "csv", *alert],
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 3
    assert pl.read_csv(piped.stdout.encode(), try_parse_dates=True).height == 285


@pytest.mark.parametrize(
    ("condition", "message", "caret"),
    [
        (
            "phse=distribution",
            "unknown column 'phse'; the columns are venue, symbol, open, high",
            0,
        ),
        ("vpin >", "expected a column, a number or a word, found the end", 6),
        ("phase=distrbution", "'phase' is never 'distrbution'", 6),
        ("vpin>0.7 and (abs(inventory_z)>3", "expected a closing parenthesis", 32),
        ("vpin>0.7 && phase=distribution", "unexpected character '&'", 9),
    ],
)
def test_bad_alert_exits_2_and_shows_where(condition: str, message: str, caret: int) -> None:
    code, stdout, stderr = run("analyze", *MARKET, "--alert", condition)
    assert code == 2
    assert stdout == ""
    assert "Invalid value for '--alert'" in stderr
    assert message in stderr
    assert f"at position {caret + 1}" in stderr
    lines = stderr.splitlines()
    assert lines[-2:] == [f"  {condition}", " " * (2 + caret) + "^"]


def test_bad_syntax_is_found_before_any_file_is_read() -> None:
    code, _, stderr = run("phases", "no/such/file.csv", "--alert", "vpin >> 1")
    assert code == 2
    assert "no/such/file.csv" not in stderr
    assert "expected a column, a number or a word, found '>'" in stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--alert-window", "30m"], "--alert-window needs --alert CONDITION"),
        (["--alert-to", "alerts.ndjson"], "--alert-to needs --alert CONDITION"),
        (["--alert", "vpin>1", "--alert-to", "no/such/dir/a.ndjson"], "does not exist"),
        (["--alert", "vpin>1", "--alert-window", "half an hour"], "is not a duration"),
    ],
)
@pytest.mark.parametrize("command", ["analyze", "inventory", "phases"])
def test_alert_flags_misused_exit_2(command: str, flags: list[str], message: str) -> None:
    code, stdout, stderr = run(command, *MARKET, "--end", AT_TWO, *flags)
    assert code == 2
    assert stdout == ""
    assert message in stderr


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_help_lists_the_exit_codes(command: str) -> None:
    code, stdout, _ = run(command, "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "Exit codes: 0 success; 1 a data error" in text
    assert "2 a usage error" in text
    assert "3 an --alert condition fired" in text
    assert "130 interrupted (Ctrl-C)" in text


def test_top_level_help_lists_the_exit_codes_and_quiet() -> None:
    code, stdout, _ = run("--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "Exit codes: 0 success" in text
    assert "-q, --quiet" in text


@pytest.mark.parametrize("where", ["command", "global"])
def test_quiet_silences_notes_not_alerts(where: str, tmp_path: Path) -> None:
    args = ["analyze", *MARKET, "--end", AT_TWO, "--bar", "1m", "-o", str(tmp_path / "b.parquet")]
    code, _, stderr = run(*args)
    # issue 9: trades whose cost horizon passes the last quote get null costs, with a warning
    assert (code, stderr) == (
        0,
        "Warning: SIMA: 472 of 20,324 trades have their cost horizon after the last quote "
        "(realized spread and price impact null)\n"
        f"wrote 285 rows to {tmp_path / 'b.parquet'}\n",
    )
    quiet = [*args, "-q"] if where == "command" else ["-q", *args]
    code, _, stderr = run(*quiet)
    assert (code, stderr) == (0, "")
    code, _, stderr = run(*quiet, "--alert", "phase=distribution")
    assert code == 3
    assert stderr == "ALERT SIMA phase=distribution since 2024-01-02 04:24 UTC (21 bars to 04:44)\n"


def test_quiet_silences_warnings_but_not_errors(tmp_path: Path) -> None:
    trades = SIMULATED / "trades.parquet"
    code, _, stderr = run("flow", trades, "--end", AT_TWO, "--to", "csv")
    assert code == 0
    assert "Note: OFI, spreads, depth and trade costs need quotes" in stderr
    code, _, stderr = run("flow", trades, "--end", AT_TWO, "--to", "csv", "--quiet")
    assert (code, stderr) == (0, "")
    code, _, stderr = run("flow", tmp_path / "missing.csv", "--quiet")
    assert code == 1
    assert stderr.startswith("Error: ")
