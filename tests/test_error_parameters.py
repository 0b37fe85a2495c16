"""Library errors name parameters; the command line names the flags that set them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mmflow.cli.command import PARAMETER_FLAGS
from mmflow.errors import MmflowError, NoDataError, ParameterError, SchemaError
from mmflow.io.assemble import require_rows
from mmflow.metrics.signing import sign_trades
from mmflow.schema import TRADES, conform
from tests.helpers import run


def test_parameters_are_named_by_the_library_and_renamed_by_a_client() -> None:
    error = MmflowError(
        "set {every} and {lookback}", path="x.csv", parameters=("every", "lookback")
    )
    assert str(error) == "x.csv: set every and lookback"
    assert error.message == "set every and lookback"
    names = {"every": "--bar"}
    assert error.describe_parameters(names) == "x.csv: set --bar and lookback"
    assert error.describe_parameters(names, with_path=False) == "set --bar and lookback"


def test_braces_in_a_message_without_parameters_are_kept() -> None:
    assert str(MmflowError("bad value {x}")) == "bad value {x}"


def test_no_rows_names_the_selection_parameters() -> None:
    with pytest.raises(NoDataError) as info:
        require_rows(pl.DataFrame({"a": []}), "trades")
    assert "symbols/start/end" in str(info.value)
    assert "--" not in str(info.value)
    assert "--symbol/--start/--end" in info.value.describe_parameters(PARAMETER_FLAGS)


def test_missing_column_names_column_map_and_format() -> None:
    frame = pl.LazyFrame({"ts": [1], "symbol": ["X"]})
    with pytest.raises(SchemaError) as info:
        conform(frame, TRADES, what="x.csv")
    assert "--" not in str(info.value)
    flags = info.value.describe_parameters(PARAMETER_FLAGS)
    assert flags.endswith("(map columns with --map canonical=column or choose --format)")


def test_bvc_per_trade_names_the_bar_parameter() -> None:
    trades = pl.LazyFrame({"ts": [1], "symbol": ["X"], "price": [1.0], "size": [1.0]})
    with pytest.raises(ParameterError) as info:
        sign_trades(trades, method="bvc")
    assert str(info.value).endswith("use it for bars (every)")
    assert info.value.describe_parameters(PARAMETER_FLAGS).endswith("use it for bars (--bar)")


def test_command_line_says_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("ts,symbol,price,size\n2024-07-19T00:00:00Z,X,10,1\n")
    code, _, err = run("analyze", path, "--symbol", "NOPE")
    assert code == 1
    assert err == (
        "Error: no trades to analyse (check the inputs and the --symbol/--start/--end filters)\n"
    )
