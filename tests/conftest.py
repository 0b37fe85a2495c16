from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def data_path(*parts: str) -> Path:
    """Return a committed test fixture under tests/data/; fail loudly if it is missing."""
    path = DATA.joinpath(*parts)
    assert path.exists(), f"missing test fixture {path}"
    return path


def shared_path(*parts: str) -> Path:
    """Return a file under ../shared/data, skipping the test when ../shared is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only on developer machines)")
    return path


@pytest.fixture(autouse=True)
def _no_user_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep the developer's MMFLOW_* variables and ~/.config/mmflow out of every test."""
    import os

    for name in [n for n in os.environ if n.startswith("MMFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
