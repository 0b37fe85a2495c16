from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.errors import ReaderError
from mmflow.io.source import Source, expand, strip_compression_suffix

CSV = (
    b"ts,symbol,price,size,aggressor_side,trade_id\n"
    b"2024-07-19T00:00:00.123456789Z,BTCUSDT,64000.5,0.01,buy,1\n"
    b"2024-07-19T00:00:01Z,BTCUSDT,64001,2,sell,2\n"
    b"2024-07-19T00:00:02Z,BTCUSDT,64000,0.5,unknown,3\n"
)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _zstd(path: Path, data: bytes) -> Path:
    with pa.output_stream(str(path), compression="zstd") as stream:
        stream.write(data)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _source(path: Path) -> Source:
    return Source(path, str(path))


# --- expand -----------------------------------------------------------------------------------


def test_expand_plain_file_gives_one_source_displayed_as_typed(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", CSV)
    [source] = expand([str(path)])
    assert source.path == path
    assert source.display == str(path)
    assert source.compression == "none"
    assert source.name == "t.csv"


def test_expand_quoted_glob_is_expanded_by_mmflow_sorted(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.txt", "d.csv"):
        _write(tmp_path / name, CSV)
    sources = expand([str(tmp_path / "*.csv")])
    assert [s.path.name for s in sources] == ["a.csv", "b.csv", "d.csv"]
    assert [s.display for s in sources] == [str(tmp_path / n) for n in ("a.csv", "b.csv", "d.csv")]


def test_expand_recursive_glob_finds_files_in_subdirectories(tmp_path: Path) -> None:
    _write(tmp_path / "x" / "y" / "deep.csv", CSV)
    _write(tmp_path / "top.csv", CSV)
    sources = expand([str(tmp_path / "**" / "*.csv")])
    assert [s.path.relative_to(tmp_path).as_posix() for s in sources] == [
        "top.csv",
        "x/y/deep.csv",
    ]


def test_expand_directory_is_recursive_sorted_and_skips_hidden_files(tmp_path: Path) -> None:
    _write(tmp_path / "2024" / "07" / "b.csv", CSV)
    _write(tmp_path / "2024" / "07" / "a.csv.gz", gzip.compress(CSV))
    _write(tmp_path / "2024" / "06" / "z.csv", CSV)
    _write(tmp_path / "2024" / ".hidden.csv", CSV)
    _write(tmp_path / ".git" / "config", b"[core]\n")
    _write(tmp_path / "top.csv", CSV)
    sources = expand([str(tmp_path)])
    assert [s.path.relative_to(tmp_path).as_posix() for s in sources] == [
        "2024/06/z.csv",
        "2024/07/a.csv.gz",
        "2024/07/b.csv",
        "top.csv",
    ]
    assert sources[1].compression == "gzip"
    assert sources[1].display == str(tmp_path / "2024" / "07" / "a.csv.gz")


def test_expand_directory_skips_documentation_but_named_files_are_taken(tmp_path: Path) -> None:
    _write(tmp_path / "README.md", b"# data\n")
    _write(tmp_path / "MANIFEST.tsv", b"path\trows\n")
    _write(tmp_path / "x.dbn.zst", b"")
    _write(tmp_path / "t.csv", CSV)
    names = [s.path.name for s in expand([str(tmp_path)])]
    assert names == ["t.csv", "x.dbn.zst"]
    assert [s.path.name for s in expand([str(tmp_path / "README.md")])] == ["README.md"]


def test_expand_keeps_argument_order_across_arguments(tmp_path: Path) -> None:
    b = _write(tmp_path / "b.csv", CSV)
    a = _write(tmp_path / "a.csv", CSV)
    assert [s.path for s in expand([str(b), str(a)])] == [b, a]


def test_expand_dash_reads_the_given_stdin_stream(tmp_path: Path) -> None:
    [source] = expand(["-"], stdin=io.BytesIO(CSV))
    assert source.display == "<stdin>"
    assert source.name == "stdin"
    assert source.compression == "none"
    assert source.read_bytes() == CSV


def test_expand_dash_detects_compressed_stdin_by_magic(tmp_path: Path) -> None:
    [source] = expand(["-"], stdin=io.BytesIO(gzip.compress(CSV)))
    assert source.compression == "gzip"
    assert source.name == "stdin"
    assert source.read_bytes() == CSV


def test_expand_stdin_name_does_not_depend_on_earlier_spooled_files(tmp_path: Path) -> None:
    zipped = _zip(tmp_path / "t.zip", {"inner.csv": CSV})
    _source(zipped).scan_path()  # spools a copy of the member
    first = expand(["-"], stdin=io.BytesIO(CSV))[0]
    second = expand(["-"], stdin=io.BytesIO(b"other\n"))[0]
    assert (first.name, second.name) == ("stdin", "stdin")
    assert first.path != second.path
    assert first.read_bytes() == CSV
    assert second.read_bytes() == b"other\n"


def test_expand_missing_path_raises_reader_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(ReaderError) as info:
        expand([missing])
    assert str(info.value) == f"{missing}: no such file (check the path or quote the glob)"
    assert info.value.path == missing


def test_expand_glob_matching_nothing_raises_reader_error(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", CSV)
    pattern = str(tmp_path / "*.csv")
    with pytest.raises(ReaderError, match="no such file") as info:
        expand([pattern])
    assert info.value.path == pattern


def test_expand_empty_directory_raises_reader_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReaderError) as info:
        expand([str(tmp_path / "empty")])
    assert str(info.value) == (
        f"{tmp_path / 'empty'}: directory holds no data files "
        "(pass files, a glob, or a directory with data)"
    )


def test_expand_directory_with_only_hidden_files_raises_reader_error(tmp_path: Path) -> None:
    _write(tmp_path / "d" / ".DS_Store", b"x")
    with pytest.raises(ReaderError, match="directory holds no data files"):
        expand([str(tmp_path / "d")])


# --- Source: compression, names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BTCUSDT-trades-2024-07-19.csv.gz", "BTCUSDT-trades-2024-07-19.csv"),
        ("x.csv.zst", "x.csv"),
        ("x.dbn.zstd", "x.dbn"),
        ("x.csv.gzip", "x.csv"),
        ("BTCUSDT-trades-2024-07.zip", "BTCUSDT-trades-2024-07"),
        ("UPPER.CSV.GZ", "UPPER.CSV"),
        ("plain.csv", "plain.csv"),
        ("gz", "gz"),
    ],
)
def test_strip_compression_suffix(name: str, expected: str) -> None:
    assert strip_compression_suffix(name) == expected


def test_source_detects_gzip_by_magic_whatever_the_name(tmp_path: Path) -> None:
    source = _source(_write(tmp_path / "looks-plain.csv", gzip.compress(CSV)))
    assert source.compression == "gzip"
    assert source.name == "looks-plain.csv"
    assert source.read_bytes() == CSV


def test_source_detects_zstd_by_magic_whatever_the_name(tmp_path: Path) -> None:
    source = _source(_zstd(tmp_path / "data.bin", CSV))
    assert source.compression == "zstd"
    assert source.name == "data.bin"
    assert source.read_bytes() == CSV


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command-line tool not installed")
def test_source_reads_a_file_written_by_the_zstd_cli(tmp_path: Path) -> None:
    plain = _write(tmp_path / "t.csv", CSV)
    subprocess.run(["zstd", "-q", "-19", str(plain), "-o", str(tmp_path / "t.csv.zst")], check=True)
    source = _source(tmp_path / "t.csv.zst")
    assert (source.compression, source.name) == ("zstd", "t.csv")
    assert source.read_bytes() == CSV


def test_source_plain_file_named_gz_is_plain_but_name_is_stripped(tmp_path: Path) -> None:
    source = _source(_write(tmp_path / "t.csv.gz", CSV))
    assert source.compression == "none"
    assert source.name == "t.csv"
    assert source.read_bytes() == CSV


def test_source_zip_name_is_the_member_name(tmp_path: Path) -> None:
    source = _source(_zip(tmp_path / "archive.bin", {"folder/inner-2024-07-19.csv": CSV}))
    assert source.compression == "zip"
    assert source.name == "inner-2024-07-19.csv"
    assert source.read_bytes() == CSV
    assert source.head(10) == CSV[:10]


def test_source_zip_ignores_directory_entries(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.mkdir("folder")
        archive.writestr("folder/one.csv", CSV)
    assert _source(path).name == "one.csv"


def test_source_zip_with_two_members_raises_reader_error(tmp_path: Path) -> None:
    path = _zip(tmp_path / "two.zip", {"a.csv": CSV, "b.csv": CSV})
    with pytest.raises(ReaderError) as info:
        _source(path)
    assert str(info.value) == (
        f"{path}: zip archive holds 2 files, expected exactly one "
        "(unzip it and pass the files you want)"
    )


def test_source_corrupt_zip_raises_reader_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.zip", b"PK\x03\x04" + b"\x00garbage" * 10)
    with pytest.raises(ReaderError, match="not a valid zip archive") as info:
        _source(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "re-download the file" in str(info.value)
    assert "\n" not in str(info.value)


def test_source_on_missing_file_raises_reader_error(tmp_path: Path) -> None:
    with pytest.raises(ReaderError) as info:
        Source(tmp_path / "gone.csv", "gone.csv")
    assert str(info.value) == "gone.csv: No such file or directory"


# --- Source: lines, head, scan_path -----------------------------------------------------------


def test_source_lines_returns_first_lines_without_newlines(tmp_path: Path) -> None:
    source = _source(_write(tmp_path / "t.csv", CSV))
    assert source.lines() == [
        "ts,symbol,price,size,aggressor_side,trade_id",
        "2024-07-19T00:00:00.123456789Z,BTCUSDT,64000.5,0.01,buy,1",
        "2024-07-19T00:00:01Z,BTCUSDT,64001,2,sell,2",
        "2024-07-19T00:00:02Z,BTCUSDT,64000,0.5,unknown,3",
    ]
    assert source.lines(2) == source.lines()[:2]


def test_source_lines_strips_crlf_byte_order_mark_and_blank_lines(tmp_path: Path) -> None:
    data = "\ufeffts,price,size\r\n\r\n1,2,3\r\n".encode()
    source = _source(_write(tmp_path / "excel.csv", data))
    assert source.lines() == ["ts,price,size", "1,2,3"]


def test_source_lines_of_compressed_file_are_decompressed(tmp_path: Path) -> None:
    gz = _source(_write(tmp_path / "t.gz", gzip.compress(CSV)))
    zst = _source(_zstd(tmp_path / "t.zst", CSV))
    assert gz.lines(1) == zst.lines(1) == ["ts,symbol,price,size,aggressor_side,trade_id"]


def test_source_lines_of_binary_or_empty_file_are_empty(tmp_path: Path) -> None:
    assert _source(_write(tmp_path / "b.bin", b"PAR1\x00\x01\x02text\n")).lines() == []
    assert _source(_write(tmp_path / "e.csv", b"")).lines() == []


def test_source_head_returns_decompressed_prefix(tmp_path: Path) -> None:
    big = CSV * 5000  # about 380 KB, more than the default 64 KiB
    source = _source(_write(tmp_path / "big.csv.gz", gzip.compress(big)))
    assert source.head() == big[:65_536]
    assert source.head(16) == big[:16]


def test_source_scan_path_is_the_file_itself_for_plain_gzip_and_zstd(tmp_path: Path) -> None:
    for path in (
        _write(tmp_path / "p.csv", CSV),
        _write(tmp_path / "g.csv.gz", gzip.compress(CSV)),
        _zstd(tmp_path / "z.csv.zst", CSV),
    ):
        assert _source(path).scan_path() == path


def test_source_scan_path_of_zip_is_a_spooled_copy_of_the_member(tmp_path: Path) -> None:
    source = _source(_zip(tmp_path / "t.zip", {"inner.csv": CSV}))
    spooled = source.scan_path()
    assert spooled != source.path
    assert spooled.name.endswith("inner.csv")
    assert spooled.read_bytes() == CSV
    assert source.scan_path() == spooled  # spooled once


# --- Source: truncated and corrupt files ------------------------------------------------------


def test_verify_on_truncated_gzip_raises_reader_error_with_path(tmp_path: Path) -> None:
    compressed = gzip.compress(CSV * 5000, compresslevel=1)
    path = _write(tmp_path / "cut.csv.gz", compressed[: len(compressed) // 2])
    source = _source(path)
    assert source.head(64) == CSV[:64]  # the start is still readable
    with pytest.raises(ReaderError) as info:
        source.verify()
    message = str(info.value)
    assert message.startswith(f"{path}: cannot decompress (")
    assert message.endswith("the file is corrupt or truncated, re-download it")
    assert "\n" not in message


def test_read_bytes_on_truncated_gzip_raises_reader_error(tmp_path: Path) -> None:
    compressed = gzip.compress(CSV * 5000)
    path = _write(tmp_path / "cut.csv.gz", compressed[:-100])
    with pytest.raises(ReaderError, match="corrupt or truncated"):
        _source(path).read_bytes()


def test_head_on_small_truncated_gzip_says_truncated_not_empty(tmp_path: Path) -> None:
    compressed = gzip.compress(CSV)
    path = _write(tmp_path / "cut.csv.gz", compressed[: len(compressed) - 12])
    with pytest.raises(ReaderError, match="corrupt or truncated") as info:
        _source(path).head()
    assert info.value.path == str(path)
    with pytest.raises(ReaderError, match="corrupt or truncated"):
        mmflow.io.load([str(path)])


def test_verify_on_truncated_zstd_raises_reader_error(tmp_path: Path) -> None:
    full = _zstd(tmp_path / "full.zst", CSV * 5000).read_bytes()
    path = _write(tmp_path / "cut.csv.zst", full[: len(full) // 2])
    with pytest.raises(ReaderError, match="corrupt or truncated") as info:
        _source(path).verify()
    assert str(path) in str(info.value)


def test_verify_passes_on_intact_files(tmp_path: Path) -> None:
    for path in (
        _write(tmp_path / "p.csv", CSV),
        _write(tmp_path / "g.csv.gz", gzip.compress(CSV)),
        _zstd(tmp_path / "z.csv.zst", CSV),
        _zip(tmp_path / "t.zip", {"t.csv": CSV}),
    ):
        _source(path).verify()
        assert _source(path).read_bytes() == CSV


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), size=st.integers(0, 4000))
def test_compressed_round_trip_read_bytes_and_head(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, size: int
) -> None:
    folder = tmp_path_factory.mktemp("roundtrip")
    for path in (
        _write(folder / "g", gzip.compress(data)),
        _zstd(folder / "z", data),
        _zip(folder / "a", {"m": data}),
    ):
        source = _source(path)
        assert source.compression != "none"
        assert source.read_bytes() == data
        assert source.head(size) == data[:size]


# --- the same CSV in every wrapping reads to the same frames ----------------------------------


def _trades(path: str, *, stdin: bytes | None = None) -> mmflow.io.Loaded:
    [loaded] = mmflow.io.load([path], stdin=io.BytesIO(stdin) if stdin is not None else None)
    return loaded


def test_gzip_zstd_zip_and_stdin_give_the_plain_files_frames(tmp_path: Path) -> None:
    plain = _trades(str(_write(tmp_path / "t.csv", CSV)))
    assert plain.format.name == "generic"
    assert plain.frames.trades is not None
    expected = plain.frames.trades.collect()
    assert expected.height == 3
    variants = {
        "gzip": _trades(str(_write(tmp_path / "g.csv.gz", gzip.compress(CSV)))),
        "gzip, no suffix": _trades(str(_write(tmp_path / "g2.csv", gzip.compress(CSV)))),
        "zstd": _trades(str(_zstd(tmp_path / "z.csv.zst", CSV))),
        "zip": _trades(str(_zip(tmp_path / "a.zip", {"t.csv": CSV}))),
        "stdin": _trades("-", stdin=CSV),
        "gzip stdin": _trades("-", stdin=gzip.compress(CSV)),
    }
    for label, loaded in variants.items():
        assert loaded.format.name == "generic", label
        assert loaded.frames.quotes is None, label
        assert loaded.frames.trades is not None, label
        assert_frame_equal(loaded.frames.trades.collect(), expected)


def test_stdin_without_symbol_column_gets_symbol_stdin() -> None:
    data = b"ts,price,size\n2024-07-19T00:00:00Z,1.5,2\n"
    for _ in range(2):
        loaded = _trades("-", stdin=data)
        assert loaded.frames.trades is not None
        assert loaded.frames.trades.collect()["symbol"].to_list() == ["stdin"]
