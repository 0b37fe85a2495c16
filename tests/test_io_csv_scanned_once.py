"""Each CSV file is scanned once when it is spilled with its row account (issue 11).

The rows a text scan keeps and its parse checks (repeated header lines, unparseable rows) come
from one cached, flagged frame (``mmflow.io._common._flagged``), so collecting the spill's sinks
together with the account reads the file once; before, polars planned a scan per consumer
(three reads of each file). Counted from polars' verbose log of the CSV readers it starts.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import mmflow.io
from mmflow.io.spill import spill_text_inputs
from tests.test_io_spill import _quotes_csv, _trades_csv


def test_spill_reads_each_csv_file_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    files = [_trades_csv(tmp_path / "trades.csv"), _quotes_csv(tmp_path / "quotes.csv")]
    with (tmp_path / "trades.csv").open("a") as handle:  # a repeated header line, counted too
        handle.write("ts,symbol,price,size,aggressor_side\n")
    loaded = mmflow.io.load([str(f) for f in files])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    capfd.readouterr()
    with pl.Config(verbose=True):
        spilled = spill_text_inputs(loaded, scratch)
    log = capfd.readouterr().err
    assert log.count("[CsvFileReader]") == len(files)  # one reader per file, not three
    account = mmflow.io.RowAccount()
    for item in spilled:
        assert item.account is not None
        account.extend(mmflow.io.RowAccount.from_frame(item.account.collect()))
    dropped = account.reasons("trades")
    assert dropped["unparseable row"] == 1
    assert dropped["repeated header line"] == 1
