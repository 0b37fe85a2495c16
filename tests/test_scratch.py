"""Temporary paths: the registry and bounded copies of stdin and zip members (issue 9 item 6)."""

from __future__ import annotations

import errno
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmflow.io.source as source_module
from mmflow import scratch
from mmflow.errors import ParameterError, ReaderError
from mmflow.io.source import (
    DEFAULT_SPOOL_LIMIT,
    Source,
    copy_bounded,
    expand,
    parse_size,
    spool_limit,
)
from mmflow.render.write import write_file

CSV = b"ts,symbol,price,size\n" + b"".join(
    f"2024-01-01T00:00:{s:02d}Z,X,{100 + s % 3},1\n".encode() for s in range(60)
)


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private TMPDIR and a fresh spool folder in it; nothing of mmflow's may remain after."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.delenv(source_module.SPOOL_LIMIT_VARIABLE, raising=False)
    monkeypatch.setattr(source_module, "_spool", None)
    yield folder
    scratch.remove_all()
    assert list(folder.iterdir()) == []


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("2 MiB", 2 * 2**20),
        ("8G", 8 * 2**30),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "1X", "1e9", "one"])
def test_parse_size_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ParameterError, match="is not a size like 500M"):
        parse_size(text)


def test_spool_limit_default_and_override(temporary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 0 < spool_limit(temporary) <= DEFAULT_SPOOL_LIMIT
    monkeypatch.setenv("MMFLOW_MAX_SPOOL", "3M")
    assert spool_limit(temporary) == 3 * 2**20
    monkeypatch.setenv("MMFLOW_MAX_SPOOL", "lots")
    with pytest.raises(ParameterError, match=r"^MMFLOW_MAX_SPOOL: 'lots' is not a size"):
        spool_limit(temporary)


def test_copy_at_the_limit_is_kept_and_one_byte_more_is_refused(temporary: Path) -> None:
    kept = copy_bounded(io.BytesIO(CSV), temporary / "exact", what="<stdin>", limit=len(CSV))
    assert kept.read_bytes() == CSV
    assert kept in scratch.tracked()
    with pytest.raises(ReaderError, match=r"^<stdin>: larger than .*MMFLOW_MAX_SPOOL"):
        copy_bounded(io.BytesIO(CSV), temporary / "over", what="<stdin>", limit=len(CSV) - 1)
    assert not (temporary / "over").exists()
    assert temporary / "over" not in scratch.tracked()


def test_copy_stopped_midway_is_removed(temporary: Path) -> None:
    class Interrupted(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise KeyboardInterrupt  # Ctrl-C while the copy is half written
            return b"x" * 1000

    with pytest.raises(KeyboardInterrupt):
        copy_bounded(Interrupted(), temporary / "copy", what="<stdin>", limit=10**9)  # type: ignore[arg-type]
    assert files_in(temporary) == []


def test_disk_full_is_a_one_line_error_and_the_copy_is_removed(
    temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Path.open

    def full_disk(path: Path, *args: Any, **kwargs: Any) -> Any:
        handle = opened(path, *args, **kwargs)
        if path.name == "copy":

            class Full:
                def __enter__(self) -> Full:
                    return self

                def __exit__(self, *exc: object) -> None:
                    handle.close()

                def write(self, data: bytes) -> int:
                    raise OSError(errno.ENOSPC, "No space left on device")

            return Full()
        return handle

    monkeypatch.setattr(Path, "open", full_disk)
    with pytest.raises(ReaderError) as caught:
        copy_bounded(io.BytesIO(CSV), temporary / "copy", what="<stdin>", limit=10**9)
    assert str(caught.value).startswith(f"<stdin>: no space left in {temporary} after copying ")
    assert "TMPDIR" in str(caught.value)
    assert files_in(temporary) == []


def test_stdin_is_copied_into_tmpdir_and_removed_at_exit(temporary: Path) -> None:
    [stdin] = expand(["-"], stdin=io.BytesIO(CSV))
    assert stdin.path.is_relative_to(temporary)
    assert stdin.path.read_bytes() == CSV
    scratch.remove_all()  # what atexit (or a signal) does
    assert list(temporary.iterdir()) == []


def test_stdin_past_the_limit_leaves_no_copy_and_no_folder(
    temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMFLOW_MAX_SPOOL", "1K")
    with pytest.raises(ReaderError, match=r"^<stdin>: larger than 1\.0 KiB"):
        expand(["-"], stdin=io.BytesIO(CSV))
    assert files_in(temporary) == []
    # Only the (empty) spool folder remains, until exit.
    assert [p.name.startswith("mmflow-") for p in temporary.iterdir()] == [True]


def test_zip_member_copy_is_bounded_and_named_after_the_zip(
    tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "trades.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("trades.csv", CSV)
    source = Source(archive, str(archive))
    monkeypatch.setenv("MMFLOW_MAX_SPOOL", "1K")
    with pytest.raises(ReaderError, match=rf"^{re.escape(str(archive))}: larger than 1\.0 KiB"):
        source.scan_path()
    assert files_in(temporary) == []
    monkeypatch.setenv("MMFLOW_MAX_SPOOL", "1M")
    copy = source.scan_path()
    assert copy.name == "trades.csv"
    assert copy.read_bytes() == CSV
    assert copy.is_relative_to(temporary)


def test_write_file_interrupted_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmflow.render.write as write_module

    def interrupted(df: pl.DataFrame, sink: Any, fmt: str, metadata: dict[str, str]) -> None:
        sink.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(write_module, "write_to", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_file(pl.DataFrame({"a": [1]}), tmp_path / "out.csv", {})
    assert list(tmp_path.iterdir()) == []
    assert not any(p.is_relative_to(tmp_path) for p in scratch.tracked())


def test_remove_all_removes_newest_first_and_keeps_non_empty_user_folders(tmp_path: Path) -> None:
    dataset = scratch.track(tmp_path / "dataset", "empty-dir")
    dataset.mkdir()
    staging = scratch.make_directory(".mmflow-convert-", dataset)
    (staging / "part.parquet").write_bytes(b"x")
    kept = scratch.track(tmp_path / "kept", "empty-dir")
    kept.mkdir()
    (kept / "user.txt").write_text("mine")
    scratch.remove_all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # staging, then the dataset
    assert (kept / "user.txt").exists()
    assert scratch.tracked() == []


def test_unusable_tmpdir_is_a_parameter_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("TMPDIR", str(missing))
    monkeypatch.setattr(source_module, "_spool", None)
    with pytest.raises(ParameterError, match=rf"^{re.escape(str(missing))}: cannot create a temp"):
        expand(["-"], stdin=io.BytesIO(CSV))
    assert not missing.exists()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 5000), limit=st.integers(0, 5000), chunk=st.integers(1, 2048))
def test_copy_is_complete_within_the_limit_and_absent_past_it(
    tmp_path_factory: pytest.TempPathFactory, size: int, limit: int, chunk: int
) -> None:
    folder = tmp_path_factory.mktemp("copies")
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    target = folder / "copy"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source_module, "_COPY_CHUNK", chunk)
        if size <= limit:
            assert copy_bounded(io.BytesIO(data), target, what="<stdin>", limit=limit) == target
            assert target.read_bytes() == data
            scratch.remove(target)
        else:
            with pytest.raises(ReaderError):
                copy_bounded(io.BytesIO(data), target, what="<stdin>", limit=limit)
    assert list(folder.iterdir()) == []
    assert target not in scratch.tracked()


def _dead_pid() -> int:
    """The id of a process that has just ended (reaped, so nothing runs under it now)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_run_s_scratch_folder_is_swept_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL runs no clean-up; the next run removes the dead owner's folder and only that."""
    host = scratch._host()
    dead = tmp_path / f"mmflow-{host}.{_dead_pid()}.k1"
    live = tmp_path / f"mmflow-{host}.{os.getppid()}.k2"
    other_host = tmp_path / f"mmflow-{host}x.{_dead_pid()}.k3"
    other_kind = tmp_path / f".mmflow-engine-{host}.{_dead_pid()}.k4"
    unowned = tmp_path / "mmflow-abc123"
    for folder in (dead, live, other_host, other_kind, unowned):
        folder.mkdir()
        (folder / "rows.parquet").write_bytes(b"x")
    made = scratch.make_directory("mmflow-", tmp_path, owned=True)
    try:
        assert not dead.exists()
        for kept in (live, other_host, other_kind, unowned):
            assert kept.exists(), kept.name
        assert made.name.startswith(f"mmflow-{host}.{os.getpid()}.")
        removed = scratch.sweep_stale(tmp_path, ".mmflow-engine-")
        assert removed == [other_kind]
        assert not other_kind.exists()
        assert made.exists(), "a live run's own folder is never swept"
    finally:
        scratch.remove(made)


def test_scratch_folders_inside_a_user_folder_carry_no_owner_and_are_never_swept(
    tmp_path: Path,
) -> None:
    kept = tmp_path / f".mmflow-convert-{scratch._host()}.{_dead_pid()}.x"
    kept.mkdir()
    made = scratch.make_directory(".mmflow-convert-", tmp_path)
    try:
        assert kept.exists()
        assert scratch._host() not in made.name
    finally:
        scratch.remove(made)
