"""Option defaults from MMFLOW_* variables and TOML files: flag > env > file > default."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl
import pytest

from mmflow.cli import cli
from mmflow.cli.config import option_key
from tests.helpers import run

ROOT = Path(__file__).resolve().parents[1]
BINANCE = str(ROOT / "sample_data" / "binance")
SIMULATED = str(ROOT / "sample_data" / "simulated" / "trades.parquet")


def shown(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Parse ``mmflow config`` lines into {(command, flag): (value, source)}."""
    rows = [line.split("\t") for line in stdout.splitlines() if not line.startswith("#")]
    return {(command, flag): (value, source) for command, flag, value, source in rows}


def bar_minutes(csv: str) -> float:
    """Return the bar length of a ``--to csv`` bar table, in minutes (shortest step)."""
    table = pl.read_csv(csv.encode()).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    steps = table.group_by("venue", "symbol").agg(pl.col("ts").diff().min().alias("step"))
    return float(steps["step"].dt.total_seconds().min()) / 60  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder (./mmflow.toml is looked for there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_precedence_is_flag_then_env_then_file_then_default(project: Path) -> None:
    (project / "mmflow.toml").write_text('bar = "5m"\nlookback = 60\nhorizon = "2m"\n')
    env = {"MMFLOW_LOOKBACK": "30", "MMFLOW_HORIZON": "3m"}

    code, out, err = run("config", "flow", "--horizon", "1m", env=env)

    assert code == 0, err
    values = shown(out)
    assert values["flow", "--horizon"] == ("1m", "flag")
    assert values["flow", "--lookback"] == ("30", "env MMFLOW_LOOKBACK")
    assert values["flow", "--bar"] == ("5m", "file mmflow.toml")
    assert values["flow", "--vpin-window"] == ("50", "default")
    assert out.splitlines()[0] == "# files read: mmflow.toml"


def test_command_variable_wins_over_the_general_one(project: Path) -> None:
    env = {"MMFLOW_BAR": "5m", "MMFLOW_FLOW_BAR": "15m"}

    code, out, _ = run("config", env=env)

    assert code == 0
    values = shown(out)
    assert values["flow", "--bar"] == ("15m", "env MMFLOW_FLOW_BAR")
    assert values["analyze", "--bar"] == ("5m", "env MMFLOW_BAR")


def test_command_table_wins_over_top_level_keys(project: Path) -> None:
    (project / "mmflow.toml").write_text('bar = "5m"\n[phases]\nbar = "1h"\nepisodes = true\n')

    _, out, _ = run("config")

    values = shown(out)
    assert values["phases", "--bar"] == ("1h", "file mmflow.toml")
    assert values["phases", "--episodes"] == ("True", "file mmflow.toml")
    assert values["flow", "--bar"] == ("5m", "file mmflow.toml")


def test_project_file_wins_over_the_user_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("xdg")
    (home / "mmflow").mkdir()
    (home / "mmflow" / "config.toml").write_text('bar = "5m"\nlookback = 99\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    (project / "mmflow.toml").write_text('bar = "10m"\n')

    _, out, _ = run("config", "flow")

    values = shown(out)
    assert values["flow", "--bar"] == ("10m", "file mmflow.toml")
    assert values["flow", "--lookback"] == ("99", f"file {home / 'mmflow' / 'config.toml'}")


def test_explicit_config_replaces_the_found_files(project: Path) -> None:
    (project / "mmflow.toml").write_text('bar = "10m"\nlookback = 7\n')
    other = project / "other.toml"
    other.write_text('bar = "2m"\n')

    for args, env in [
        (("--config", str(other), "config", "flow"), {}),
        (("config", "flow"), {"MMFLOW_CONFIG": str(other)}),
    ]:
        _, out, _ = run(*args, env=env)
        values = shown(out)
        assert values["flow", "--bar"] == ("2m", f"file {other}")
        assert values["flow", "--lookback"] == ("240", "default")


def test_env_sets_the_bar_of_a_real_run(project: Path) -> None:
    code, out, err = run("flow", SIMULATED, "--to", "csv", env={"MMFLOW_BAR": "5m"})

    assert code == 0, err
    assert bar_minutes(out) == 5


def test_file_and_subcommand_config_set_a_real_run(project: Path) -> None:
    (project / "mmflow.toml").write_text('[flow]\nbar = "10m"\n')
    five = project / "five.toml"
    five.write_text('bar = "5m"\n')

    for args, minutes in [((), 10), (("--config", str(five)), 5), (("--bar", "15m"), 15)]:
        code, out, err = run("flow", SIMULATED, "--to", "csv", *args)
        assert code == 0, err
        assert bar_minutes(out) == minutes


def test_repeatable_options_take_a_string_or_a_list(project: Path) -> None:
    (project / "mmflow.toml").write_text('symbol = "BTCUSD_PERP"\n[flow]\nexclude = ["a", "b"]\n')

    _, out, _ = run("config", "flow")

    values = shown(out)
    assert values["flow", "--symbol"] == ("BTCUSD_PERP", "file mmflow.toml")
    assert values["flow", "--exclude"] == ("a,b", "file mmflow.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("barr = 1\n", "'barr' is not an option of any command"),
        ("[flow]\nepisodes = true\n", "'episodes' is not an option of mmflow flow"),
        ("flow = 3\n", "[flow] must be a table of options"),
        ("bar = \n", "not valid TOML"),
    ],
)
def test_bad_files_stop_with_one_line_and_exit_2(project: Path, text: str, message: str) -> None:
    (project / "mmflow.toml").write_text(text)

    code, out, err = run("flow", BINANCE)

    assert code == 2
    assert out == ""
    assert err.startswith("Error: mmflow.toml: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_config_file_is_a_usage_error(project: Path) -> None:
    code, _, err = run("--config", "nowhere.toml", "flow", BINANCE)

    assert code == 2
    assert err.strip() == (
        "Error: nowhere.toml: configuration file not found (check the --config/MMFLOW_CONFIG path)"
    )


def test_bad_env_value_names_the_variable(project: Path) -> None:
    code, _, err = run("flow", BINANCE, env={"MMFLOW_BAR": "5x"})

    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "Error: Invalid value for '--bar': '5x' is not a duration like 500ms, 1s, 5m, 1h or "
        "1h30m (from MMFLOW_BAR)"
    )


def test_every_option_of_every_command_has_variables_and_a_file_key() -> None:
    for name, command in cli.commands.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in {"help", "config"}:
                continue
            key = option_key(param)
            assert key is not None, (name, param.opts)
            general = "MMFLOW_" + key.upper().replace("-", "_")
            specific = "MMFLOW_" + f"{name}_{key}".upper().replace("-", "_")
            assert param.envvar == [specific, general], (name, param.opts)


def test_bad_file_value_names_the_file(project: Path) -> None:
    (project / "mmflow.toml").write_text('[flow]\nbar = "5x"\n')

    code, _, err = run("flow", BINANCE)

    assert code == 2
    assert err.strip().splitlines()[-1].endswith("(from mmflow.toml)")
