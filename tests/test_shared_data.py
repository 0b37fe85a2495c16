"""`mmflow inspect` on every real file in ../shared/data (skipped where ../shared is absent).

Row counts come from the data set's MANIFEST.tsv; buyer-initiated counts are recounted from the
raw files with the csv module, applying each vendor's documented convention, so a flipped side
mapping in a reader cannot pass.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmflow.cli import cli
from tests.conftest import SHARED

FOLDERS = ("binance", "tardis", "databento")


def manifest() -> list[tuple[str, int]]:
    path = SHARED / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(r["path"], int(r["rows"])) for r in rows if r["path"].split("/")[0] in FOLDERS]


def expected_format(relative: str) -> str:
    name = relative.rsplit("/", 1)[-1]
    if relative.startswith("databento/"):
        return "dbn" if name.endswith(".dbn.zst") else "databento-csv"
    if relative.startswith("tardis/"):
        if "_quotes_" in name:
            return "tardis-quotes"
        return "tardis-book-snapshot" if "book_snapshot" in name else "tardis-trades"
    return "binance-bookticker" if "bookTicker" in name else "binance-trades"


def buyer_initiated(relative: str, path: Path) -> int | None:
    """Count buyer-initiated trades in the raw file by the vendor's documented convention."""
    if relative.endswith(".dbn.zst") or "bookTicker" in relative or "quotes" in relative:
        return None
    if "book_snapshot" in relative or "bbo-1" in relative:
        return None
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if relative.endswith(".gz") else raw.decode()
    if relative.startswith("binance/spot/"):
        # no header; column 6 is is_buyer_maker: False => buyer-initiated
        return sum(1 for row in csv.reader(io.StringIO(text)) if row[5] == "False")
    rows = list(csv.DictReader(io.StringIO(text)))
    if relative.startswith("binance/"):
        return sum(1 for r in rows if r["is_buyer_maker"] == "false")
    if relative.startswith("tardis/"):
        return sum(1 for r in rows if r["side"] == "buy")
    return sum(1 for r in rows if r["action"] == "T" and r["side"] == "B")


CASES = manifest()


@pytest.mark.skipif(not CASES, reason="../shared/data is not present")
@pytest.mark.parametrize(("relative", "rows"), CASES, ids=[c[0] for c in CASES])
def test_inspect_detects_format_rows_and_sides(relative: str, rows: int) -> None:
    path = SHARED / relative
    result = CliRunner().invoke(cli, ["inspect", str(path), "--to", "json"])
    assert result.exit_code == 0, result.stderr
    [report] = json.loads(result.stdout)
    assert report["format"] == expected_format(relative)
    assert report["rows"] == rows
    assert report["start"] <= report["end"]
    buyers = buyer_initiated(relative, path)
    if buyers is not None:
        assert report["buy_trades"] == buyers
        assert (report["side_known"] is not None) == (report["trades"] > 0)
    if relative.endswith(".dbn.zst"):
        twin = path.with_name(path.name.replace(".dbn.zst", ".csv"))
        csv_run = CliRunner().invoke(cli, ["inspect", str(twin), "--to", "json"])
        [csv_report] = json.loads(csv_run.stdout)
        for key in ("rows", "symbols", "start", "end", "buy_trades", "sell_trades", "trades"):
            assert report[key] == csv_report[key], key


@pytest.mark.skipif(not CASES, reason="../shared/data is not present")
def test_inspect_time_spans_match_the_data_readmes() -> None:
    spans = {
        "tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz": (
            "2020-02-22T00:00:02.111000000Z",
            "2020-02-22T02:05:47.728000000Z",
        ),
        "binance/futures/um/BTCUSDT-trades-2024-07-19.csv": (
            "2024-07-19T00:00:02.812000000Z",
            "2024-07-19T00:05:02.282000000Z",
        ),
        "binance/spot/BTCUSDT-trades-2023-04-05.csv": (
            "2023-04-04T23:59:59.999000000Z",
            "2023-04-05T00:06:54.256000000Z",
        ),
    }
    for relative, (start, end) in spans.items():
        result = CliRunner().invoke(cli, ["inspect", str(SHARED / relative), "--to", "json"])
        [report] = json.loads(result.stdout)
        # Tardis' README gives exchange time; Binance has one clock.
        key = "_event" if relative.startswith("tardis") else ""
        assert (report[f"start{key}"], report[f"end{key}"]) == (start, end), relative
