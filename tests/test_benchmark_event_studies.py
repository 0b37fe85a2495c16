"""benchmarks/event_studies.py skips missing files and reports the studies it can run."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import load_script as load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "event_studies.py"


def load_script() -> ModuleType:
    return load_benchmark(SCRIPT, "event_studies")


def test_missing_files_are_skipped_and_present_ones_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    csv = tmp_path / "numbers.csv"
    assert script.main(["--shared", str(tmp_path), "--only", "simulated", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| sample_data simulated"))
    # The simulated sample has one labelled distribution episode (README) and constant spreads.
    assert "| 1m | 360 | 1 |" in row  # one labelled episode: the first is inside the warm-up
    assert "no episodes" in out
    assert csv.read_text().startswith("dataset,bar,study")
    assert script.main(["--shared", str(tmp_path), "--only", "Binance USD-M"]) == 0
    captured = capsys.readouterr()
    assert "skipped (files not present): Binance USD-M BTCUSDT 2024-07-19" in captured.err
    assert "| Binance USD-M" not in captured.out


def test_sample_data_copies_stand_in_for_missing_shared_files(tmp_path: Path) -> None:
    script = load_script()
    coin = next(d for d in script.DATASETS if "COIN-M" in d.name)
    paths, name = coin.paths(tmp_path)
    assert all(path.exists() for path in paths)
    assert all("sample_data" in str(path) for path in paths)
    assert name.endswith("[sample_data: first 77 s]")
    spot = next(d for d in script.DATASETS if "spot" in d.name)
    paths, name = spot.paths(tmp_path)
    assert not any(path.exists() for path in paths)
    assert name == spot.name
