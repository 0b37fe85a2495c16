"""Fuzz every reader (issue 9): random bytes, truncations and random cell edits of real sample
files end in a result or a one-line error naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmflow.cli import cli
from tests.conftest import data_path

SAMPLES = [
    data_path("binance", "spot", "BTCUSDT-trades-2023-04-05.csv"),
    data_path("tardis", "bitmex_trades_XBTUSD.csv"),
    data_path("tardis", "huobi-dm-swap_quotes_BTC-USD.csv"),
    Path(__file__).parent.parent / "sample_data" / "binance" / "BTCUSD_PERP-trades-2024-08-09.csv",
]


def _head(path: Path, lines: int = 40) -> bytes:
    return b"".join(path.read_bytes().splitlines(keepends=True)[:lines])


def _check(path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", str(path), "--to", "csv"])
    assert result.exit_code in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    if result.exit_code == 1:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert str(path) in errors[0] or "no trades" in errors[0], errors[0]
        assert len(errors[0]) <= 310


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mangled_sample_gives_a_result_or_one_line_error(
    tmp_path: Path, sample: Path, data: st.DataObject
) -> None:
    original = _head(sample)
    how = data.draw(st.sampled_from(["bytes", "truncate", "edit"]))
    if how == "bytes":
        content = data.draw(st.binary(max_size=400))
    elif how == "truncate":
        content = original[: data.draw(st.integers(0, len(original)))]
    else:
        rows = original.decode().splitlines()
        row = data.draw(st.integers(1, len(rows) - 1))
        cells = rows[row].split(",")
        column = data.draw(st.integers(0, len(cells) - 1))
        cells[column] = data.draw(
            st.sampled_from(["", "abc", "NaN", "inf", "-1", "0", "1e400", "99999999999999999999"])
        )
        rows[row] = ",".join(cells)
        content = ("\n".join(rows) + "\n").encode()
    path = tmp_path / sample.name
    path.write_bytes(content)
    _check(path)
