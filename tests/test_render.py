"""Screens, rendered on a deterministic console: width, number formats by kind, times, inspect."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from rich.console import Console, RenderableType

from mmflow.cli import cli
from mmflow.render import chart_base, messages
from mmflow.render.cells import MISSING, decimals_of, format_cell, middle_ellipsis
from mmflow.render.table import (
    InspectScreen,
    analyze_table,
    episodes_table,
    flow_table,
    frame_table,
    inventory_table,
)

START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def render(renderable: RenderableType, width: int = 100) -> list[str]:
    """Print to an in-memory console of a fixed width: no colour, no terminal, no wrapping."""
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
    )
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in output.splitlines()]


def bars(symbols: dict[str, list[float]], columns: int = 40) -> pl.DataFrame:
    """A bar table with ``columns`` extra numeric columns, prices per symbol as given."""
    frames = []
    for symbol, prices in symbols.items():
        n = len(prices)
        frame = pl.DataFrame(
            {
                "venue": ["x"] * n,
                "symbol": [symbol] * n,
                "ts": [START + timedelta(minutes=i) for i in range(n)],
                "close": prices,
                "volume": [1234567.0 + i for i in range(n)],
                "net_flow": [-50156.0] * n,
                "cvd": [float("nan")] * n,
                "vpin": [float("inf")] * n,
            }
        )
        extra = [pl.lit(float(i)).alias(f"metric_number_{i}") for i in range(columns)]
        frames.append(frame.with_columns(extra))
    return pl.concat(frames)


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_a_wide_table_never_exceeds_the_terminal(width: int) -> None:
    lines = render(frame_table(bars({"BTC": [61612.5, 61613.0]}), title="wide"), width)
    assert max(len(line) for line in lines) <= width
    assert any("symbol" in line for line in lines)  # the key columns stay
    assert "more columns than fit this terminal (all with --to or -o)" in " ".join(
        " ".join(lines).split()
    )


def test_a_table_that_fits_is_whole_and_says_nothing_more() -> None:
    lines = render(frame_table(bars({"BTC": [61612.5]}, columns=0), title="t"), 200)
    assert not any("more column" in line for line in lines)
    assert any("2024-01-02 14:30:00" in line for line in lines)


def test_prices_at_each_instruments_precision() -> None:
    lines = render(flow_table(bars({"BTC": [61612.5, 61613.0], "PEN": [0.0001234, 0.0001]})))
    btc = [line for line in lines if line.startswith(" BTC") or line.startswith("BTC")]
    pen = [line for line in lines if "PEN" in line]
    assert "61,612.5" in btc[0]
    assert "61,613.0" in btc[1]  # the same decimals in every row of an instrument
    assert "0.0001234" in pen[0]
    assert "0.0001000" in pen[1]
    assert "61.6k" not in "".join(lines)


def test_sizes_and_counts_have_separators_and_missing_values_a_dash() -> None:
    lines = "\n".join(render(flow_table(bars({"BTC": [1.0]})), 120))
    assert "1,234,567" in lines
    assert "-50,156" in lines
    assert MISSING in lines  # the NaN CVD and the infinite VPIN
    assert "nan" not in lines.lower()
    assert "inf" not in lines.lower()


def test_times_carry_the_year_and_follow_tz() -> None:
    utc = "\n".join(render(flow_table(bars({"BTC": [1.0]}, columns=0))))
    assert "bar (UTC)" in utc
    assert "2024-01-02 14:30" in utc
    local = "\n".join(render(flow_table(bars({"BTC": [1.0]}, columns=0), tz="America/New_York")))
    assert "bar (America/New_York)" in local
    assert "2024-01-02 09:30" in local


def test_episode_starts_carry_the_year() -> None:
    episodes = pl.DataFrame(
        {
            "symbol": ["SIMA"],
            "phase": ["distribution"],
            "inventory_side": ["long"],
            "start": [START],
            "bars": [33],
            "inventory_start": [1499.0],
            "inventory_end": [-48.0],
            "price_levels": [15],
            "price_change": [-0.07],
        }
    )
    text = "\n".join(render(episodes_table(episodes)))
    assert "2024-01-02 14:30" in text
    assert "1,499" in text


def test_percentages_have_one_decimal() -> None:
    assert format_cell(0.93125, "percent") == "93.1 %"
    summary = pl.DataFrame(
        {
            "symbol": ["X"],
            "mm_inventory": [12.0],
            "inventory_max": [30.0],
            "inventory_min": [-4.0],
            "inventory_half_life": [90.0],
            "price_pressure": [0.5],
            "quote_skew": [None],
            "withdrawing_share": [0.0625],
            "liquidity_state": ["normal"],
        },
        schema_overrides={"quote_skew": pl.Float64},
    )
    text = "\n".join(render(inventory_table(summary)))
    assert "6.2 %" in text or "6.3 %" in text
    assert "1.5 min" in text


def test_analyze_screen_is_exact() -> None:
    summary = pl.DataFrame(
        {
            "symbol": ["AAA", "BBB"],
            "net_flow": [1234.5, -20.0],
            "ofi": [float("nan"), 3.0],
            "mm_inventory": [-1234.5, 20.0],
            "inventory_half_life": [30.0, None],
            "liquidity_state": ["normal", None],
            "phase": ["distribution", "neutral"],
            "inventory_side": ["long", None],
            "start": [START, START],
            "end": [START + timedelta(hours=1), START + timedelta(hours=2)],
        }
    )
    assert render(analyze_table(summary), 80) == [
        "                               mmflow analyze",
        "",
        "             net         inven-  inventory  half-",
        " symbol     flow  OFI      tory       path  life   liquidity  phase",
        " " + "─" * 74,
        " AAA     1,234.5    –  -1,234.5             30 s   normal     distrib. long",
        " BBB         -20    3        20                               neutral",
        "",
        "                     2024-01-02 14:30:00 → 16:30:00 UTC",
    ]


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=0, max_value=6))
def test_decimals_show_the_value_exactly(units: int, places: int) -> None:
    value = units / 10**places
    decimals = decimals_of([value])
    assert decimals <= places
    assert math.isclose(float(f"{value:.{decimals}f}"), value, rel_tol=1e-12, abs_tol=1e-12)


def inspect_frame(path: str, issues: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "path": [path],
            "format": ["tardis-trades"],
            "kind": ["trades"],
            "rows": [9999],
            "symbols": [["BTCUSDT"]],
            "start": ["2020-02-22T00:00:02.418000000Z"],
            "end": ["2020-02-22T02:05:47.852000000Z"],
            "start_event": [None],
            "end_event": [None],
            "side_known": [1.0],
            "buy_volume_share": [0.512],
            "issues": [issues],
        },
        schema_overrides={"start_event": pl.String, "end_event": pl.String},
    )


LONG_NAME = "some/folder/binance-futures_trades_2020-02-22_BTCUSDT_with_a_very_long_suffix.csv.gz"


@pytest.mark.parametrize("width", [140, 200])
def test_inspect_keeps_file_names_on_one_line(width: int) -> None:
    issues = [f"issue number {i}" for i in range(7)]
    lines = render(InspectScreen(inspect_frame(LONG_NAME, issues)), width)
    assert max(len(line) for line in lines) <= width
    row = next(line for line in lines if "tardis-trades" in line)
    name = row.split()[0]
    assert name.startswith("binance-futur")
    assert name.endswith(".csv.gz")
    assert len(name) < len(LONG_NAME) or name == LONG_NAME
    text = "\n".join(lines)
    assert "and 5 more" in " ".join(text.split())
    assert "issue number 6" not in text


def test_inspect_shows_cards_on_a_narrow_terminal() -> None:
    lines = render(InspectScreen(inspect_frame(LONG_NAME, [])), 60)
    assert max(len(line) for line in lines) <= 60
    assert any(line.startswith("format") for line in lines)


def test_middle_ellipsis_keeps_both_ends() -> None:
    short = middle_ellipsis(LONG_NAME, 30)
    assert len(short) == 30
    assert short.startswith("some/folder/")
    assert short.endswith("suffix.csv.gz")


def test_csv_holds_lists_of_records_as_json_text() -> None:
    from mmflow.render.write import write_to

    df = pl.DataFrame(
        {
            "issues": [["a", "b"]],
            "dropped": [[{"table": "trades", "reason": "bad time", "rows": 3}]],
        }
    )
    sink = io.BytesIO()
    write_to(df, sink, "csv", {})
    assert sink.getvalue().decode().splitlines() == [
        "issues,dropped",
        'a; b,"{""table"":""trades"",""reason"":""bad time"",""rows"":3}"',
    ]


SIMULATED = Path(__file__).resolve().parents[1] / "sample_data" / "simulated"
MARKET = [str(SIMULATED / "trades.parquet"), str(SIMULATED / "quotes.parquet")]


@pytest.mark.parametrize(
    "flags", [[], ["--bar", "5m"], ["--table", "bars"], ["--table", "summary"]]
)
def test_file_and_stream_outputs_hold_the_same_table(flags: list[str], tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    runner = CliRunner()
    written = runner.invoke(cli, ["analyze", *MARKET, *flags, "-o", str(target)])
    streamed = runner.invoke(cli, ["analyze", *MARKET, *flags, "--to", "csv"])
    assert written.exit_code == streamed.exit_code == 0, written.stderr + streamed.stderr
    from_file = pl.read_csv(target)
    from_stream = pl.read_csv(io.StringIO(streamed.stdout))
    # the same table; floats may differ in the last bits (polars sums in parallel, in any order)
    assert_frame_equal(from_file, from_stream, check_exact=False, rel_tol=1e-9)
    # -o and --to write the per-bar table unless --table summary (product.md: -o writes bars)
    bars = "summary" not in flags
    assert ("ts" in from_file.columns) == bars
    assert from_file.height == (72 if "5m" in flags else 360 if bars else 1)


def test_bars_on_a_screen_show_the_summary_and_say_where_bars_go() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(cli, ["analyze", *MARKET, "--bar", "1s"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 20  # one row per instrument, not 21,600 bars
    assert "SIMA" in result.stdout
    assert "Note: 21,600 bars are not shown on screen; write them with -o or --to" in result.stderr


def test_second_bars_show_their_seconds() -> None:
    frame = bars({"BTC": [1.0, 2.0]}, columns=0).with_columns(
        pl.col("ts") + pl.duration(seconds=pl.int_range(pl.len()))
    )
    text = "\n".join(render(flow_table(frame)))
    assert "2024-01-02 14:30:00 " in text
    assert "2024-01-02 14:31:01" in text


def test_messages_name_an_instrument_one_way_symbol_at_venue() -> None:
    assert chart_base.instrument_name is messages.instrument_name  # one definition
    counts = {"stale_quote": [0, 0], "after_last_quote": [0, 0], "stale_future_quote": [0, 0]}
    checks = pl.DataFrame(
        {"venue": ["binance-um"] * 2, "symbol": ["X", "Y"], "trades": [5, 0], "quotes": [3, 7]}
        | counts
    )
    warnings = messages.quote_warnings(checks, max_quote_age="1m")
    assert "Y@binance-um: 7 quotes but no trades (not analysed)" in warnings
    assert not any("(binance-um)" in line for line in warnings)
