"""Process-level behaviour of the command (issue 9 items 6, 9, 10b).

Signing warnings say what really happened; the installed script is ``main()``; temporary
copies, ``-o`` temp files and ``convert`` staging folders never outlive a run, whatever ends it;
output locations are checked before any work starts.
"""

from __future__ import annotations

import importlib
import os
import pty
import resource
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mmflow import scratch
from tests.helpers import run

QUOTES = (
    "ts,symbol,bid_price,bid_size,ask_price,ask_size\n"
    "2024-01-01T00:00:03Z,X,1,1,2,1\n"
    "2024-01-01T00:00:05Z,X,2,1,2,1\n"  # locked: not usable
)


def market(tmp_path: Path, sides: tuple[int, int, int, int] | None = None) -> tuple[Path, Path]:
    """Four trades of X: two before the first quote, one on a usable quote, one on a locked one."""
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(QUOTES)
    prices = ["1.5", "1.6", "1.8", "1.7"]
    seconds = [1, 2, 4, 6]
    header = "ts,symbol,price,size" + (",aggressor_side" if sides else "")
    rows = [
        f"2024-01-01T00:00:0{s}Z,X,{p},1" + (f",{sides[i]}" if sides else "")
        for i, (s, p) in enumerate(zip(seconds, prices, strict=True))
    ]
    trades = tmp_path / "trades.csv"
    trades.write_text("\n".join([header, *rows]) + "\n")
    return trades, quotes


def signs(out: str) -> list[tuple[str, str]]:
    header, *rows = out.splitlines()
    sign, method = header.split(",").index("trade_sign"), header.split(",").index("sign_method")
    return [(line.split(",")[sign], line.split(",")[method]) for line in rows]


# --- item 10 (b): signing warnings say what actually happens ----------------------------------


def test_quote_method_warns_that_trades_without_a_quote_are_left_unsigned(tmp_path: Path) -> None:
    trades, quotes = market(tmp_path)
    code, out, err = run("classify", trades, "--quotes", quotes, "--method", "quote", "--to", "csv")
    assert code == 0
    assert signs(out) == [("0", "none"), ("0", "none"), ("1", "quote"), ("0", "none")]
    assert err.splitlines() == [
        "Warning: X: 2 of 4 trades have no earlier quote (left unsigned: trade_sign 0)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote "
        "(left unsigned: trade_sign 0)",
    ]
    assert "tick rule" not in err


@pytest.mark.parametrize("method", ["lee-ready", "emo", "clnv", "depth", "auto"])
def test_tick_fallback_warning_counts_what_the_tick_rule_could_not_sign(
    tmp_path: Path, method: str
) -> None:
    trades, quotes = market(tmp_path)
    code, out, err = run("classify", trades, "--quotes", quotes, "--method", method, "--to", "csv")
    assert code == 0
    # The first trade has no earlier price, so the tick rule cannot sign it either.
    assert signs(out)[:2] == [("0", "none"), ("1", "tick")]
    assert signs(out)[3] == ("-1", "tick")
    assert err.splitlines() == [
        "Warning: X: 2 of 4 trades have no earlier quote "
        "(1 signed by the tick rule, 1 left unsigned)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote (signed by the tick rule)",
    ]


def test_vendor_signed_trades_raise_no_quote_warning(tmp_path: Path) -> None:
    # Every trade carries the vendor's side: no quote was needed, so nothing to warn about (it
    # used to say "2 of 4 trades have no earlier quote (signed by the tick rule)").
    trades, quotes = market(tmp_path, sides=(1, -1, 1, 1))
    code, out, err = run("classify", trades, "--quotes", quotes, "--to", "csv")
    assert (code, err) == (0, "")
    assert signs(out) == [("1", "vendor"), ("-1", "vendor"), ("1", "vendor"), ("1", "vendor")]


def test_only_trades_without_a_vendor_side_count_in_the_quote_warnings(tmp_path: Path) -> None:
    trades, quotes = market(tmp_path, sides=(1, 0, 1, 0))
    code, out, err = run("classify", trades, "--quotes", quotes, "--to", "csv")
    assert code == 0
    assert signs(out) == [("1", "vendor"), ("1", "tick"), ("1", "vendor"), ("-1", "tick")]
    assert err.splitlines() == [
        "Warning: X: 1 of 4 trades have no earlier quote (signed by the tick rule)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote (signed by the tick rule)",
    ]


# --- item 9: the installed script is main() ----------------------------------------------------


def test_installed_script_entry_point_is_the_function_python_dash_m_runs() -> None:
    import tomllib

    import mmflow.__main__
    from mmflow import cli as cli_module

    with (Path(__file__).parents[1] / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    module, _, name = scripts["mmflow"].partition(":")
    runs = vars(mmflow.__main__)["main"]  # what `python -m mmflow` calls
    assert getattr(importlib.import_module(module), name) is runs
    assert runs is cli_module.main


def installed_script() -> Path:
    script = Path(sys.executable).parent / "mmflow"
    if not script.exists():
        pytest.skip("the mmflow script is not installed next to this Python")
    return script


def test_installed_script_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    # Long output (one row per second for an hour of trades), read by `head -1`.
    lines = ["ts,symbol,price,size"]
    lines += [f"2024-01-01T00:{s // 60:02d}:{s % 60:02d}Z,X,{100 + s % 7},1" for s in range(3600)]
    trades = tmp_path / "trades.csv"
    trades.write_text("\n".join(lines) + "\n")
    command = f"'{installed_script()}' classify '{trades}' --method tick --to csv | head -1"
    done = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, timeout=120, env=child_environment()
    )
    assert done.stdout.decode().splitlines() == [
        "ts,venue,symbol,price,size,aggressor_side,trade_sign,sign_method"
    ]
    assert done.stderr == b""  # no BrokenPipeError, no traceback, no "Exception ignored"


def child_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFLOW_")}
    env.update(COLUMNS="120", **extra)
    return env


# --- item 6: nothing left behind, whatever ends the run ----------------------------------------

TRADE_ROWS = "".join(f"2024-01-01T00:00:{s:02d}Z,X,{100 + s % 3},1\n" for s in range(60))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the child process")
        time.sleep(0.05)


def spooling_child(temporary: Path, *args: str) -> subprocess.Popen[bytes]:
    """`mmflow … -` reading a pipe that stays open: it blocks while copying standard input."""
    temporary.mkdir(exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "mmflow", *args, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(TMPDIR=str(temporary)),
        preexec_fn=limit_memory,
    )
    assert child.stdin is not None
    child.stdin.write(b"ts,symbol,price,size\n" + TRADE_ROWS.encode())
    child.stdin.flush()
    # The copy of standard input exists (it is written in 1 MiB pieces, so it may be empty yet).
    wait_for(lambda: any(p.name == "stdin" for p in files_under(temporary)))
    return child


def limit_memory() -> None:
    """Cap a child's address space, so a regression fails instead of eating the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


@pytest.mark.parametrize(
    ("signal_number", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
def test_signal_while_copying_stdin_exits_with_its_status_and_removes_the_copy(
    tmp_path: Path, signal_number: int, status: int
) -> None:
    temporary = tmp_path / "tmp"
    child = spooling_child(temporary, "analyze")
    child.send_signal(signal_number)
    out, err = child.communicate(timeout=60)
    assert child.returncode == status
    assert b"Traceback" not in err
    assert b"Aborted" not in err
    assert out == b""
    assert files_under(temporary) == []


def test_stdin_copy_past_the_limit_is_a_one_line_error_and_is_removed(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "mmflow", "analyze", "-"],
        input=b"ts,symbol,price,size\n" + TRADE_ROWS.encode() * 20,
        capture_output=True,
        env=child_environment(TMPDIR=str(temporary), MMFLOW_MAX_SPOOL="1K"),
        timeout=120,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 1
    assert done.stdout == b""
    [line] = done.stderr.decode().splitlines()
    assert line.startswith("Error: <stdin>: larger than 1.0 KiB, the limit of a temporary copy in ")
    assert "MMFLOW_MAX_SPOOL" in line
    assert files_under(temporary) == []


def test_stdin_under_the_limit_is_read_and_its_copy_removed(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "mmflow", "classify", "-", "--method", "tick", "--to", "csv"],
        input=b"ts,symbol,price,size\n" + TRADE_ROWS.encode(),
        capture_output=True,
        env=child_environment(TMPDIR=str(temporary), MMFLOW_MAX_SPOOL="1M"),
        timeout=120,
        preexec_fn=limit_memory,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(done.stdout.decode().splitlines()) == 61
    assert files_under(temporary) == []


CHILD = '''
"""Run mmflow's real entry point, stalled at a chosen step so the test can stop it there."""
import os
import sys
import time
from pathlib import Path

import polars as pl

import mmflow.convert
import mmflow.render.write
from mmflow.cli import main


def stall() -> None:
    Path(os.environ["CHILD_READY"]).touch()
    if os.environ["CHILD_STALL"] == "python":
        time.sleep(600)  # the main thread runs Python: the signal handler runs at once
    else:
        # The main thread is inside one long polars query (minutes): only the watchdog can act.
        side = pl.LazyFrame({"a": pl.int_range(0, 4000, eager=True)})
        side.join(side, how="cross").join(side.rename({"a": "c"}), how="cross").select(
            (pl.col("a") * pl.col("c") + pl.col("a_right")).max()
        ).collect(engine="streaming")


write_to = mmflow.render.write.write_to
write_table = mmflow.convert._write_table


def stalled_write_to(*args, **kwargs):
    write_to(*args, **kwargs)  # the whole table is in the temporary file, not yet renamed
    stall()


def stalled_write_table(*args, **kwargs):
    rows = write_table(*args, **kwargs)  # partition files are in the staging folder
    stall()
    return rows


mmflow.render.write.write_to = stalled_write_to
mmflow.convert._write_table = stalled_write_table
sys.argv[0] = "mmflow"
main()
'''


def stalled_child(tmp_path: Path, stall: str, *args: str | Path) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ready = tmp_path / "ready"
    env = child_environment(CHILD_READY=str(ready), CHILD_STALL=stall, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, str(script), *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=limit_memory,
        cwd=Path(__file__).parents[1],
    )
    wait_for(lambda: ready.exists() or child.poll() is not None, timeout=120)
    assert child.poll() is None, child.communicate()[1].decode()
    return child


def stop(child: subprocess.Popen[bytes], signal_number: int) -> tuple[bytes, bytes]:
    child.send_signal(signal_number)
    try:
        return child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("the stopped run did not end within 60 s")


STOPS = [
    ("python", signal.SIGINT, 130),
    ("python", signal.SIGTERM, 143),
    ("polars", signal.SIGTERM, 143),
    ("polars", signal.SIGINT, 130),
]


@pytest.mark.parametrize(("stall", "signal_number", "status"), STOPS)
def test_signal_while_writing_output_leaves_no_temporary_file(
    tmp_path: Path, stall: str, signal_number: int, status: int
) -> None:
    trades, _ = market(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    child = stalled_child(tmp_path, stall, "analyze", trades, "-o", out / "bars.parquet")
    [temporary] = files_under(out)
    assert temporary.name.startswith(".bars.parquet.")
    assert temporary.name.endswith(".tmp")
    _, err = stop(child, signal_number)
    assert child.returncode == status
    assert b"Traceback" not in err
    assert files_under(out) == []
    assert files_under(tmp_path / "tmp") == []


@pytest.mark.parametrize(("stall", "signal_number", "status"), STOPS[1:3])
def test_signal_while_converting_leaves_no_staging_or_empty_dataset_folder(
    tmp_path: Path, stall: str, signal_number: int, status: int
) -> None:
    trades, _ = market(tmp_path)
    dataset = tmp_path / "new" / "dataset"
    child = stalled_child(tmp_path, stall, "convert", trades, "-o", dataset)
    [staging] = list(dataset.iterdir())
    assert staging.name.startswith(".mmflow-convert-")
    assert any(p.suffix == ".parquet" for p in staging.rglob("*"))
    _, err = stop(child, signal_number)
    assert child.returncode == status
    assert b"Traceback" not in err
    assert not (tmp_path / "new").exists()  # both folders this run created are gone


def test_signal_while_converting_into_an_existing_folder_keeps_the_folder(
    tmp_path: Path,
) -> None:
    trades, _ = market(tmp_path)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "mine.txt").write_text("the user's file")
    child = stalled_child(tmp_path, "python", "convert", trades, "-o", dataset)
    stop(child, signal.SIGTERM)
    assert child.returncode == 143
    assert [p.name for p in dataset.iterdir()] == ["mine.txt"]


def test_failed_convert_into_a_new_folder_leaves_no_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "ts,symbol,price,size\n2024-01-01T00:00:01Z,X,1.5,1\n2024-01-01T00:00:02Z,X,abc,1\n"
    )
    code, _, err = run("convert", bad, "-o", tmp_path / "new" / "dataset")
    assert code == 1
    assert err.startswith("Error: ")
    assert not (tmp_path / "new").exists()


def test_convert_failing_while_writing_removes_staging_and_the_folders_it_created(
    tmp_path: Path,
) -> None:
    from mmflow.convert import convert
    from mmflow.schema import TRADES

    # The cast fails only when the plan runs, inside the staging folder.
    frame = pl.LazyFrame(
        {"ts": [datetime(2024, 1, 1, tzinfo=UTC)], "symbol": ["X"], "price": ["abc"]}
    ).with_columns(pl.col("price").cast(pl.Float64, strict=True))
    dataset = tmp_path / "a" / "b"
    with pytest.raises(pl.exceptions.PolarsError):
        convert([(TRADES, frame)], dataset)
    assert files_under(tmp_path) == []
    assert not any(str(p).startswith(str(tmp_path)) for p in scratch.tracked())


# --- item 6: output locations are checked before any work starts -------------------------------


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            "missing/bars.parquet",
            "missing/bars.parquet: folder missing does not exist (create it first)",
        ),
        ("trades.csv/bars.parquet", "trades.csv/bars.parquet: trades.csv is not a folder"),
        ("folder", "folder: is a folder (name a file in it, e.g. folder/table.parquet)"),
        ("bars.txt", "bars.txt: cannot tell the output format from '.txt'"),
    ],
)
def test_unwritable_output_is_exit_2_before_any_input_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    market(tmp_path)
    (tmp_path / "folder").mkdir()
    # The input does not exist: an error about it would mean the input was read first.
    for command in ("analyze", "flow", "inventory", "classify", "profile", "phases", "inspect"):
        code, out, err = run(command, "no-such-input.csv", "-o", output)
        assert code == 2, command
        assert out == ""
        [line] = err.splitlines()
        assert line.startswith(f"Error: {message}"), (command, line)


def test_output_in_a_folder_nobody_can_create_files_in_is_exit_2(tmp_path: Path) -> None:
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc (a folder even root cannot create files in)")
    code, _, err = run("analyze", "no-such-input.csv", "-o", "/proc/bars.parquet")
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("Error: /proc/bars.parquet: cannot write in /proc (")
    assert "Permission denied: '." not in err


def test_output_in_a_read_only_folder_is_exit_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write in a read-only folder; the /proc test covers the probe")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, _, err = run("analyze", "no-such-input.csv", "-o", folder / "bars.parquet")
    finally:
        folder.chmod(0o700)
    assert code == 2
    assert err.startswith(f"Error: {folder / 'bars.parquet'}: cannot write in {folder} (")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("directory", "message"),
    [
        ("trades.csv", "trades.csv: exists and is not a folder"),
        ("trades.csv/dataset", "trades.csv/dataset: trades.csv is a file"),
    ],
)
def test_convert_into_a_file_is_exit_2_before_any_input_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directory: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    market(tmp_path)
    for command in ("convert", "simulate"):
        args = ["no-such-input.csv"] if command == "convert" else []
        code, _, err = run(command, *args, "-o", directory)
        assert code == 2, command
        [line] = err.splitlines()
        assert line.startswith(f"Error: {message}"), (command, line)


def test_probe_leaves_nothing_and_the_written_output_is_all_there_is(tmp_path: Path) -> None:
    trades, _ = market(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run("analyze", trades, "-o", out / "bars.parquet")
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["bars.parquet"]


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_binary_output_to_a_terminal_is_refused(tmp_path: Path, fmt: str) -> None:
    trades, _ = market(tmp_path)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mmflow", "analyze", str(trades), "--to", fmt],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=child_environment(),
            timeout=120,
            preexec_fn=limit_memory,
        )
        os.set_blocking(primary, False)
        try:
            shown = os.read(primary, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"Error: refusing to write binary {fmt} to a terminal; use -o FILE or redirect stdout"
    ]
    assert shown == b""


def test_text_output_to_a_terminal_is_allowed(tmp_path: Path) -> None:
    trades, _ = market(tmp_path)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mmflow",
                "classify",
                str(trades),
                "--method",
                "tick",
                "--to",
                "csv",
            ],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=child_environment(),
            timeout=120,
            preexec_fn=limit_memory,
        )
        shown = os.read(primary, 65536)
    finally:
        os.close(primary)
        os.close(secondary)
    assert (done.returncode, done.stderr) == (0, b"")
    assert shown.startswith(b"ts,venue,symbol,price,size,aggressor_side,trade_sign,sign_method")


def zipped_trades(tmp_path: Path) -> Path:
    archive = tmp_path / "trades.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("trades.csv", "ts,symbol,price,size\n" + TRADE_ROWS * 20)
    return archive


def test_zip_member_past_the_limit_is_a_one_line_error_naming_the_zip(tmp_path: Path) -> None:
    archive, temporary = zipped_trades(tmp_path), tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "mmflow", "analyze", str(archive)],
        capture_output=True,
        env=child_environment(TMPDIR=str(temporary), MMFLOW_MAX_SPOOL="1K"),
        timeout=120,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 1
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(f"Error: {archive}: larger than 1.0 KiB, the limit of a temporary copy")
    assert files_under(temporary) == []


def test_zip_member_copy_is_removed_after_a_normal_run(tmp_path: Path) -> None:
    archive, temporary = zipped_trades(tmp_path), tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmflow",
            "classify",
            str(archive),
            "--method",
            "tick",
            "--to",
            "csv",
        ],
        capture_output=True,
        env=child_environment(TMPDIR=str(temporary)),
        timeout=120,
        preexec_fn=limit_memory,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(done.stdout.decode().splitlines()) == 1 + 60 * 20
    assert files_under(temporary) == []


def test_bad_spool_limit_setting_is_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmflow", "analyze", "-"],
        input=b"ts,symbol,price,size\n" + TRADE_ROWS.encode(),
        capture_output=True,
        env=child_environment(TMPDIR=str(tmp_path), MMFLOW_MAX_SPOOL="lots"),
        timeout=120,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "Error: MMFLOW_MAX_SPOOL: 'lots' is not a size like 500M, 8G or 1T (bytes, K, M, G, T; "
        "binary units)"
    ]
