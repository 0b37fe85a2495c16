"""Progress on stderr: stage reports from the library, drawn only on a terminal, never in pipes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from mmflow.errors import MmflowError
from mmflow.inspect import INSPECTING, inspect_paths
from mmflow.io import load
from mmflow.io.assemble import collect
from mmflow.progress import READING, Stage
from mmflow.render.progress import StageDisplay, describe

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = ROOT / "sample_data" / "simulated"
MARKET = [str(SIMULATED / "trades.parquet"), str(SIMULATED / "quotes.parquet")]
ANALYZE = ["analyze", *MARKET, "--end", "2024-01-02T04:45:00Z"]
ESCAPE = b"\x1b"

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def test_load_reports_each_file_with_bytes_then_finishes() -> None:
    stages: list[Stage] = []
    inputs = load(MARKET, on_stage=stages.append)
    sizes = [Path(p).stat().st_size for p in MARKET]
    assert len(inputs) == 2
    assert stages == [
        Stage(READING, 0, 2, MARKET[0], 0, sum(sizes)),
        Stage(READING, 1, 2, MARKET[1], sizes[0], sum(sizes)),
        Stage(READING, 2, 2, finished=True),
    ]


def test_collect_reports_its_stage_and_finishes_even_when_it_fails() -> None:
    stages: list[Stage] = []
    [frame] = collect([pl.LazyFrame({"a": [1, 2]})], [], on_stage=stages.append, stage="bars")
    assert frame.height == 2
    assert stages == [Stage("bars"), Stage("bars", finished=True)]
    stages.clear()
    failing = pl.LazyFrame({"a": ["x"]}).select(pl.col("a").cast(pl.Int64))
    with pytest.raises(MmflowError):
        collect([failing], [], on_stage=stages.append, stage="bars")
    assert stages == [Stage("bars"), Stage("bars", finished=True)]


def test_stage_text_for_people() -> None:
    stage = Stage(READING, 1, 3, "b.csv.gz", 1_500_000, 40_000_000)
    assert describe(stage) == "reading inputs 1/3 files (1.5 MB of 40.0 MB) b.csv.gz"
    assert describe(Stage("phases and episodes")) == "phases and episodes"


def test_plain_display_uses_carriage_returns_only_and_erases_its_line() -> None:
    stream = io.StringIO()
    display = StageDisplay(stream, color=False)
    display(Stage(READING, 0, 1, "a.csv", 0, 10))
    display(Stage(READING, 1, 1, finished=True))
    display.close()
    written = stream.getvalue()
    assert written.startswith("\r| reading inputs 0/1 files (0 B of 10 B) a.csv 0:00:00")
    assert written.endswith("\r")
    assert written.rsplit("\r", 2)[-2].strip() == ""  # the last thing drawn is blank
    assert "\x1b" not in written


def pty_run(
    args: list[str], *, tmp_path: Path, env: dict[str, str] | None = None, stdout_tty: bool = False
) -> tuple[int, bytes, bytes]:
    """Run ``mmflow args`` with stderr (and optionally stdout) on a pseudo-terminal.

    Returns the exit code, everything the terminal received, and stdout when it was a file.
    """
    import pty

    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment |= {"TERM": "xterm-256color", "COLUMNS": "100", **(env or {})}
    stdout_path = tmp_path / "stdout"
    with stdout_path.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmflow", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave if stdout_tty else stdout,
            stderr=slave,
            cwd=ROOT,
            env=environment,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        code = proc.wait(timeout=120)
    return code, b"".join(chunks), stdout_path.read_bytes()


@needs_pty
def test_progress_appears_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    output = tmp_path / "bars.parquet"
    code, terminal, stdout = pty_run(
        [*ANALYZE, "--bar", "1m", "-o", str(output)], tmp_path=tmp_path
    )
    assert code == 0, terminal
    assert b"reading inputs" in terminal
    assert b"1/2 files" in terminal
    assert b"reading, signing trades, building bars" in terminal
    assert b"phases and summary" in terminal
    assert b"0:00:0" in terminal  # elapsed time
    assert b"\x1b[2K" in terminal  # rich erases its line: the progress is transient
    assert terminal.rstrip().endswith(f"wrote 285 rows to {output}".encode())
    assert stdout == b""
    assert pl.read_parquet(output).height == 285


@needs_pty
def test_quiet_silences_progress_on_a_terminal(tmp_path: Path) -> None:
    code, terminal, _ = pty_run([*ANALYZE, "-o", str(tmp_path / "b.csv"), "-q"], tmp_path=tmp_path)
    assert code == 0
    assert terminal == b""


def test_no_progress_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    output = tmp_path / "bars.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "mmflow", *ANALYZE, "--bar", "1m", "-o", str(output)],
        cwd=ROOT,
        capture_output=True,
        check=False,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    assert proc.returncode == 0
    # the only lines are the warning about the cut-off cost horizon (issue 9) and the file note
    assert proc.stderr.decode().splitlines() == [
        "Warning: SIMA: 472 of 20,324 trades have their cost horizon after the last quote "
        "(realized spread and price impact null)",
        f"wrote 285 rows to {output}",
    ]
    assert proc.stdout == b""


@needs_pty
def test_no_color_means_no_escape_sequence_anywhere(tmp_path: Path) -> None:
    # The same run with the table on the terminal: styled without NO_COLOR ...
    code, styled, _ = pty_run(ANALYZE, tmp_path=tmp_path, stdout_tty=True)
    assert code == 0
    assert ESCAPE in styled
    # ... and not a single escape byte with it, progress included.
    code, plain, _ = pty_run(ANALYZE, tmp_path=tmp_path, stdout_tty=True, env={"NO_COLOR": "1"})
    assert code == 0
    assert ESCAPE not in plain
    assert b"reading inputs" in plain
    assert b"phases and summary" in plain
    assert b"mmflow analyze" in plain
    assert b"distrib. short" in plain


def test_inspect_reports_each_file() -> None:
    stages: list[Stage] = []
    run = inspect_paths(MARKET, on_stage=stages.append)
    assert len(run.reports) == 2
    assert [(s.name, s.done, s.total, s.detail, s.finished) for s in stages] == [
        (INSPECTING, 0, 2, MARKET[0], False),
        (INSPECTING, 1, 2, MARKET[1], False),
        (INSPECTING, 2, 2, "", True),
    ]
