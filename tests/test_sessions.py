from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from mmflow.analysis import Selection, Session, prepare
from mmflow.cli import cli
from mmflow.schema import TRADES
from tests.conftest import data_path


def trades_at(*moments: datetime) -> pl.LazyFrame:
    n = len(moments)
    return pl.LazyFrame(
        {
            "ts": list(moments),
            "symbol": ["X"] * n,
            "price": [float(i + 1) for i in range(n)],
            "size": [1.0] * n,
            "aggressor_side": [0] * n,
        },
        schema={
            "ts": pl.Datetime("ns", "UTC"),
            "symbol": pl.String,
            "price": pl.Float64,
            "size": pl.Float64,
            "aggressor_side": pl.Int8,
        },
    )


def labels(frame: pl.LazyFrame, session: Session) -> list[tuple[datetime, str]]:
    out = prepare(frame, TRADES, Selection(session=session)).collect()
    return list(zip(out["ts"].to_list(), out["session"].cast(pl.String).to_list(), strict=True))


def test_new_york_session_is_dst_correct() -> None:
    regular = Session(time(9, 30), time(16, 0), "America/New_York")
    summer = trades_at(
        datetime(2023, 3, 13, 13, 29, 59, tzinfo=UTC),  # 09:29:59 EDT: before the open
        datetime(2023, 3, 13, 13, 30, tzinfo=UTC),  # 09:30 EDT
        datetime(2023, 3, 13, 19, 59, 59, tzinfo=UTC),  # 15:59:59 EDT
        datetime(2023, 3, 13, 20, 0, tzinfo=UTC),  # 16:00 EDT: closed
    )
    assert [s for _, s in labels(summer, regular)] == ["2023-03-13", "2023-03-13"]
    winter = trades_at(
        datetime(2023, 3, 10, 13, 30, tzinfo=UTC),  # 08:30 EST: before the open
        datetime(2023, 3, 10, 14, 30, tzinfo=UTC),  # 09:30 EST
    )
    assert [s for _, s in labels(winter, regular)] == ["2023-03-10"]


def test_overnight_session_is_named_by_its_start_date() -> None:
    globex = Session(time(17, 0), time(16, 0), "America/Chicago")
    frame = trades_at(
        datetime(2024, 7, 1, 22, 0, tzinfo=UTC),  # 17:00 CDT Monday: opens
        datetime(2024, 7, 2, 14, 0, tzinfo=UTC),  # 09:00 CDT Tuesday: same session
        datetime(2024, 7, 2, 21, 30, tzinfo=UTC),  # 16:30 CDT: maintenance break
        datetime(2024, 7, 2, 22, 0, tzinfo=UTC),  # 17:00 CDT Tuesday: next session
    )
    assert [s for _, s in labels(frame, globex)] == ["2024-07-01", "2024-07-01", "2024-07-02"]


def test_tick_rule_restarts_each_session() -> None:
    path = data_path("taq", "EQY_US_ALL_TRADE_20161024")
    runner = CliRunner()
    plain = runner.invoke(cli, ["classify", str(path), "--method", "tick", "--to", "json"])
    session = runner.invoke(
        cli,
        [
            "classify",
            str(path),
            "--method",
            "tick",
            "--session",
            "09:30-16:00",
            "--session-tz",
            "America/New_York",
            "--to",
            "json",
        ],
    )
    assert plain.exit_code == session.exit_code == 0
    inside = json.loads(session.stdout)
    assert all("T13:30" <= row["ts"][10:16] < "T20:00" for row in inside)
    assert len(inside) < len(json.loads(plain.stdout))
    first_per_symbol: dict[str, dict[str, object]] = {}
    for row in inside:
        first_per_symbol.setdefault(row["symbol"], row)
    assert {row["trade_sign"] for row in first_per_symbol.values()} == {0}


def test_bad_session_flags_exit_2(tmp_path: Path) -> None:
    path = data_path("taq", "EQY_US_ALL_TRADE_20161024")
    runner = CliRunner()
    bad = runner.invoke(cli, ["analyze", str(path), "--session", "9to5"])
    assert bad.exit_code == 2
    assert "is not a session like 09:30-16:00" in bad.stderr
    zone = runner.invoke(
        cli, ["analyze", str(path), "--session", "09:30-16:00", "--session-tz", "Nowhere/Else"]
    )
    assert zone.exit_code == 2
    assert "is not a time zone name" in zone.stderr


def test_bvc_student_t_option() -> None:
    path = data_path("tardis", "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz")
    runner = CliRunner()
    args = ["classify", str(path), "--method", "bvc", "--bar", "5m", "--to", "json"]
    normal = json.loads(runner.invoke(cli, args).stdout)
    student = json.loads(
        runner.invoke(cli, [*args, "--bvc-distribution", "student-t", "--bvc-dof", "3"]).stdout
    )
    assert normal[1]["volume"] == student[1]["volume"]
    assert normal[1]["buy_volume"] != student[1]["buy_volume"]
    misuse = runner.invoke(cli, [*args, "--bvc-dof", "3"])
    assert misuse.exit_code == 2
    assert "--bvc-dof applies to --bvc-distribution student-t only" in misuse.stderr


def test_lobster_without_orderbook_warns(tmp_path: Path) -> None:
    source = next(iter(data_path("lobster").glob("*_2023-03-10_*message*")))
    alone = tmp_path / source.name
    alone.write_bytes(source.read_bytes())
    result = CliRunner().invoke(cli, ["analyze", str(alone), "--to", "json"])
    assert result.exit_code == 0
    assert "orderbook file not found next to it; reading trades only" in result.stderr
