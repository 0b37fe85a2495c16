from __future__ import annotations

import re
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("matplotlib")

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

import mmflow.render.plot as plot_module
from mmflow.analysis import BarOptions, chart, inventory_report, market_bars, phases
from mmflow.errors import MmflowError, ParameterError
from mmflow.io import ReadOptions, load
from mmflow.io.assemble import gather
from mmflow.metrics.phases import PhaseParameters
from mmflow.render.plot import (
    DPI,
    PANEL_TITLES,
    PANELS,
    InstrumentChart,
    chosen_panels,
    date_number,
    file_stem,
    instrument_charts,
    instrument_figure,
    phase_runs,
)
from mmflow.render.profile_plot import profile_figure
from mmflow.render.write import write_figure
from mmflow.schema import QUOTES, TRADES
from tests.helpers import run as cli_run

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = ROOT / "sample_data" / "simulated"
BINANCE = ROOT / "sample_data" / "binance"
TARDIS_TRADES = ROOT / "sample_data" / "tardis" / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz"
SIM_OPTIONS = BarOptions(every="1m", vpin_window=10, buckets_per_day=400)


def run(*args: str | Path) -> tuple[int, str, str]:
    return cli_run(*args, columns=120)


def market(*paths: Path) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    inputs = load([str(p) for p in paths], "auto", ReadOptions())
    trades = gather(inputs, TRADES)
    assert trades is not None
    return trades, gather(inputs, QUOTES)


def chart_frames(
    *paths: Path, options: BarOptions = SIM_OPTIONS
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool]:
    trades, quotes = market(*paths)
    result = chart(trades, quotes, options=options, materialize=pl.collect_all)
    bars, episodes, withdrawals = pl.collect_all([result.bars, result.episodes, result.withdrawals])
    return bars, episodes, withdrawals, result.has_quotes


@pytest.fixture(scope="module")
def simulated() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool]:
    return chart_frames(SIMULATED / "trades.parquet", SIMULATED / "quotes.parquet")


@pytest.fixture(scope="module")
def simulated_chart(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
) -> InstrumentChart:
    bars, episodes, withdrawals, has_quotes = simulated
    return instrument_figure(bars, episodes, withdrawals, every="1m", has_quotes=has_quotes)


def panels(figure: Figure) -> list[Axes]:
    """The panel axes, top to bottom (twin axes carry no title)."""
    return [ax for ax in figure.axes if ax.get_title(loc="left")]


def panel(figure: Figure, name: str) -> Axes:
    [ax] = [ax for ax in figure.axes if ax.get_gid() == f"panel-{name}"]
    return ax


def flat(pairs: list[tuple[float, float]]) -> list[float]:
    return [value for pair in sorted(pairs) for value in pair]


def spans(ax: Axes, gid_prefix: str) -> list[float]:
    """Sorted [start, end] x-extents of the shaded spans whose gid starts with ``gid_prefix``."""
    found = [
        (p.get_x(), p.get_x() + p.get_width())
        for p in ax.patches
        if isinstance(p, Rectangle) and (p.get_gid() or "").startswith(gid_prefix)
    ]
    return flat(found)


def episode_extents(table: pl.DataFrame) -> list[float]:
    return flat(
        [
            (date_number(row["start"]), date_number(row["end"]))
            for row in table.iter_rows(named=True)
        ]
    )


# --- the figure -----------------------------------------------------------------------------


def test_default_chart_has_every_panel_in_order_with_its_title(
    simulated_chart: InstrumentChart,
) -> None:
    figure = simulated_chart.figure
    assert simulated_chart.panels == PANELS
    assert [ax.get_title(loc="left") for ax in panels(figure)] == [PANEL_TITLES[p] for p in PANELS]
    assert simulated_chart.notes == ()
    title = figure.get_suptitle()
    assert title.startswith("SIMA · 2024-01-02 00:00 → 06:00 UTC")
    assert "1m bars" in title


def test_panels_option_picks_and_orders_the_panels(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
) -> None:
    bars, episodes, withdrawals, _ = simulated
    drawn = instrument_figure(bars, episodes, withdrawals, every="1m", panels=["vpin", "price"])
    titles = [ax.get_title(loc="left") for ax in panels(drawn.figure)]
    assert titles == [PANEL_TITLES["vpin"], PANEL_TITLES["price"]]


def test_episode_shading_equals_the_phase_episodes_of_mmflow_phases(
    simulated_chart: InstrumentChart,
) -> None:
    # The episodes come independently from the public phases() function.
    trades, quotes = market(SIMULATED / "trades.parquet", SIMULATED / "quotes.parquet")
    expected = phases(trades, quotes, options=SIM_OPTIONS, parameters=PhaseParameters())
    episodes = expected.episodes.collect()
    # The README's two labelled episodes of the simulated sample (its first episode falls inside
    # the detector's warm-up).
    assert episodes.height == 2
    ax = panel(simulated_chart.figure, "price")
    for phase in ("accumulation", "distribution"):
        drawn = spans(ax, f"episode-{phase}")
        wanted = episode_extents(episodes.filter(pl.col("phase") == phase))
        assert drawn == pytest.approx(wanted, abs=1e-9)
        assert len(drawn) == 2  # one episode of each phase (both ends of its span)


def phase_runs_reference(
    ts: list[datetime], labels: list[str | None], step: timedelta
) -> list[tuple[str, datetime, datetime]]:
    """Slow, obviously correct runs of equal accumulation/distribution labels."""
    runs: list[tuple[str, datetime, datetime]] = []
    previous: str | None = None
    for time, label in zip(ts, labels, strict=True):
        if label in ("accumulation", "distribution"):
            if label == previous:
                runs[-1] = (label, runs[-1][1], time + step)
            else:
                runs.append((label, time, time + step))
        previous = label
    return runs


def test_bar_strip_marks_exactly_the_labelled_bars(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
    simulated_chart: InstrumentChart,
) -> None:
    bars = simulated[0]
    expected = phase_runs_reference(
        bars["ts"].to_list(), bars["phase"].to_list(), timedelta(minutes=1)
    )
    ax = panel(simulated_chart.figure, "price")
    for phase in ("accumulation", "distribution"):
        wanted = flat(
            [(date_number(start), date_number(end)) for p, start, end in expected if p == phase]
        )
        assert spans(ax, f"bars-{phase}") == pytest.approx(wanted, abs=1e-9)
        assert wanted


@given(st.lists(st.sampled_from(["accumulation", "distribution", "neutral", None]), max_size=40))
def test_phase_runs_match_the_reference_loop(labels: list[str | None]) -> None:
    ts = [datetime(2024, 1, 2, tzinfo=UTC) + timedelta(minutes=m) for m in range(len(labels))]
    bars = pl.DataFrame(
        {"ts": ts, "phase": labels},
        schema={"ts": pl.Datetime("ns", "UTC"), "phase": pl.String},
    )
    got = [(r["phase"], r["start"], r["end"]) for r in phase_runs(bars, "1m").iter_rows(named=True)]
    assert got == phase_runs_reference(ts, labels, timedelta(minutes=1))


def test_withdrawal_shading_equals_the_withdrawal_episodes() -> None:
    options = BarOptions(every="1s")
    bars, episodes, withdrawals, has_quotes = chart_frames(BINANCE, options=options)
    trades, quotes = market(BINANCE)
    _, expected = inventory_report(market_bars(trades, quotes, options=options), options)
    expected_frame = expected.collect()
    assert expected_frame.height >= 1
    drawn = instrument_figure(bars, episodes, withdrawals, every="1s", has_quotes=has_quotes)
    assert spans(panel(drawn.figure, "spread"), "withdrawal") == pytest.approx(
        episode_extents(expected_frame), abs=1e-12
    )


def test_axis_limits_cover_the_data(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
    simulated_chart: InstrumentChart,
) -> None:
    bars = simulated[0]
    figure = simulated_chart.figure
    stamps: list[datetime] = bars["ts"].to_list()
    first, last = date_number(stamps[0]), date_number(stamps[-1] + timedelta(minutes=1))
    for ax in panels(figure):
        assert ax.get_xlim() == pytest.approx((first, last))
    for name, columns in {
        "price": ["close"],
        "cvd": ["cvd", "mm_inventory"],
        "ofi": ["ofi"],
        "spread": ["spread"],
        "vpin": ["vpin"],
    }.items():
        low, high = panel(figure, name).get_ylim()
        values: list[float] = (
            bars.select(pl.concat_list(columns).explode()).to_series().drop_nulls().to_list()
        )
        assert low <= min(values) <= max(values) <= high
    depth_axis = next(ax for ax in figure.axes if not ax.get_title(loc="left"))
    low, high = depth_axis.get_ylim()
    depths: list[float] = bars["depth"].to_list()
    assert low <= min(depths) <= max(depths) <= high


def test_values_are_drawn_at_bar_ends(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
    simulated_chart: InstrumentChart,
) -> None:
    bars = simulated[0]
    [cvd, inventory] = [
        line
        for line in panel(simulated_chart.figure, "cvd").get_lines()
        if not str(line.get_label()).startswith("_")
    ]
    x, y = cvd.get_data()
    assert np.asarray(x)[0] == pytest.approx(date_number(bars["ts"][0] + timedelta(minutes=1)))
    assert list(np.asarray(y)) == pytest.approx(bars["cvd"].to_list())
    assert list(np.asarray(inventory.get_ydata())) == pytest.approx(bars["mm_inventory"].to_list())


def test_without_quotes_the_quote_panels_are_left_out_with_a_note() -> None:
    bars, episodes, withdrawals, has_quotes = chart_frames(
        TARDIS_TRADES, options=BarOptions(every="2m", vpin_window=5, buckets_per_day=500)
    )
    assert not has_quotes
    drawn = instrument_figure(bars, episodes, withdrawals, every="2m", has_quotes=has_quotes)
    assert drawn.panels == ("price", "cvd", "vpin")
    assert [n.split(" not drawn")[0] for n in drawn.notes] == [
        PANEL_TITLES["ofi"],
        PANEL_TITLES["spread"],
    ]
    assert all("no quotes (pass --quotes)" in n for n in drawn.notes)
    assert "no quotes" in panels(drawn.figure)[-1].get_xlabel()


def test_time_axis_is_in_the_requested_time_zone(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
) -> None:
    bars, episodes, withdrawals, _ = simulated
    drawn = instrument_figure(
        bars, episodes, withdrawals, every="1m", panels=["cvd"], tz="America/New_York"
    )
    figure = drawn.figure
    figure.canvas.draw()
    ax = panels(figure)[0]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    # 00:00 UTC on 2 January is 19:00 on 1 January in New York; New York's midnight is 05:00 UTC
    assert labels == ["19:00", "20:00", "21:00", "22:00", "23:00", "Jan-02", "01:00"]
    assert "2024-01-01 19:00 → 2024-01-02 01:00 America/New_York" in figure.get_suptitle()
    assert ax.get_xlabel().startswith("time (America/New_York)")


def test_too_many_bars_is_a_parameter_error(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bars, episodes, withdrawals, _ = simulated
    monkeypatch.setattr(plot_module, "MAX_BARS", 100)
    with pytest.raises(ParameterError, match="360 bars of 1m are more than a chart shows"):
        instrument_figure(bars, episodes, withdrawals, every="1m")


def test_a_chart_with_no_panel_data_is_an_error(
    simulated: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, bool],
) -> None:
    bars, episodes, withdrawals, _ = simulated
    empty = bars.with_columns(pl.lit(None, pl.Float64).alias("vpin"))
    with pytest.raises(MmflowError, match=r"SIMA: nothing to draw \(VPIN not drawn: fewer than"):
        instrument_figure(empty, episodes, withdrawals, every="1m", panels=["vpin"])


def test_chosen_panels_rejects_unknown_and_repeated_names() -> None:
    assert chosen_panels(None) == list(PANELS)
    assert chosen_panels(["cvd", " price"]) == ["cvd", "price"]
    with pytest.raises(ParameterError, match="unknown panel volume"):
        chosen_panels(["price", "volume"])
    with pytest.raises(ParameterError, match="named twice"):
        chosen_panels(["price", "price"])


def test_instrument_charts_draw_each_symbol_on_its_own() -> None:
    bars, episodes, withdrawals, has_quotes = chart_frames(SIMULATED / "trades.parquet", BINANCE)
    drawn = list(instrument_charts(bars, episodes, withdrawals, every="1m", has_quotes=has_quotes))
    # (keys are venue and symbol once bars carry a venue; the symbols are what matter here)
    assert [d.instrument["symbol"] for d in drawn] == ["BTCUSD_PERP", "SIMA"]
    for item in drawn:
        x, _ = next(iter(panel(item.figure, "cvd").get_lines())).get_data()
        symbol_bars = bars.filter(pl.col("symbol") == item.instrument["symbol"])
        assert len(np.asarray(x)) == symbol_bars.height


def test_file_stem_is_safe_and_names_venue_then_symbol() -> None:
    assert file_stem({"venue": "binance-um", "symbol": "BTCUSDT"}) == "binance-um_BTCUSDT"
    assert file_stem({"symbol": "ES/U4"}) == "ES-U4"
    assert file_stem({"symbol": "../../etc"}) == "-..-etc"
    assert "/" not in file_stem({"symbol": "a/b", "date": "2024-01-02"})
    assert file_stem({"symbol": ""}) == "instrument"


# --- the volume profile ---------------------------------------------------------------------


def test_profile_figure_stacks_buy_and_sell_and_marks_poc_and_value_area() -> None:
    levels = pl.DataFrame(
        {
            "symbol": ["X"] * 4,
            "price_level": [10.0, 10.5, 11.0, 11.5],
            "volume": [2.0, 8.0, 5.0, 1.0],
            "buy_volume": [1.0, 6.0, 1.0, 0.0],
            "sell_volume": [1.0, 2.0, 4.0, 1.0],
        }
    )
    area = {"symbol": "X", "poc": 10.5, "value_area_low": 10.5, "value_area_high": 11.0}
    figure = profile_figure(levels, area)
    [ax] = figure.axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() != "value-area"]
    buys, sells = bars[:4], bars[4:]
    assert [b.get_width() for b in buys] == [1.0, 6.0, 1.0, 0.0]
    assert [b.get_width() for b in sells] == [1.0, 2.0, 4.0, 1.0]
    assert [s.get_x() for s in sells] == [1.0, 6.0, 1.0, 0.0]  # stacked on the buys
    assert [b.get_y() + b.get_height() / 2 for b in buys] == pytest.approx([10.0, 10.5, 11.0, 11.5])
    [poc] = [line for line in ax.get_lines() if line.get_gid() == "poc"]
    assert isinstance(poc, Line2D)
    assert list(poc.get_ydata()) == [10.5, 10.5]  # type: ignore[arg-type]
    [value_area] = [
        p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "value-area"
    ]
    assert value_area.get_y() == pytest.approx(10.25)
    assert value_area.get_y() + value_area.get_height() == pytest.approx(11.25)
    assert figure.get_suptitle() == "X volume profile"
    low, high = ax.get_ylim()
    assert low <= 10.0
    assert high >= 11.5


def test_profile_figure_merges_many_levels_for_display() -> None:
    count = 1_000
    levels = pl.DataFrame(
        {
            "price_level": [100 + 0.01 * i for i in range(count)],
            "volume": [3.0] * count,
            "buy_volume": [1.0] * count,
            "sell_volume": [2.0] * count,
        }
    )
    figure = profile_figure(levels, {"symbol": "X", "poc": 105.0})
    bars = [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 * plot_module.MAX_PROFILE_ROWS
    assert sum(b.get_width() for b in bars) == pytest.approx(3.0 * count)


# --- files and the command line -------------------------------------------------------------


def packed_colours(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each pixel's RGB as one 0xRRGGBB integer."""
    rgb = np.round(image[..., :3] * 255).astype(np.int64).reshape(-1, 3)
    return np.asarray((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])


def test_plot_writes_a_png_of_the_figure_size_that_is_not_blank(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    code, stdout, stderr = run(
        "plot", SIMULATED, "-o", out, "--vpin-window", "10", "--buckets-per-day", "400"
    )
    assert code == 0, stderr
    assert stdout == ""
    assert stderr == f"wrote {out}\n"
    image = imread(out)
    height = round((1.0 + 1.75 * (1.6 + 4)) * DPI)
    assert image.shape[:2] == (height, round(11 * DPI))
    colours = packed_colours(image)
    assert len(np.unique(colours)) > 50
    for hex_colour in ("#000000", "#0072B2", "#009E73", "#D55E00"):  # price, CVD, OFI ±
        assert (colours == int(hex_colour[1:], 16)).sum() > 100, hex_colour
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]  # no temporary file left


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_the_same_input_gives_byte_identical_files(tmp_path: Path, suffix: str) -> None:
    first, second = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
    args = ["--end", "2024-01-02T03:00:00Z", "--panels", "price,cvd"]
    assert run("plot", SIMULATED, "-o", first, *args)[0] == 0
    assert run("plot", SIMULATED, "-o", second, *args)[0] == 0
    assert first.read_bytes() == second.read_bytes()
    assert len(first.read_bytes()) > 10_000


def test_plot_without_matplotlib_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, stdout, stderr = run("plot", SIMULATED, "-o", tmp_path / "chart.png")
    assert code == 1
    assert stdout == ""
    assert stderr == (
        "Error: charts need matplotlib, which is not installed (pip install 'mmflow[plot]')\n"
    )
    assert not list(tmp_path.iterdir())
    code, _, stderr = run("profile", SIMULATED, "--plot", tmp_path / "profile.png")
    assert code == 1
    assert "pip install 'mmflow[plot]'" in stderr


def test_several_instruments_in_one_file_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    code, _, stderr = run("plot", SIMULATED / "trades.parquet", BINANCE, "-o", out)
    assert code == 2
    assert "2 instruments would share one image; write one file each with -o" in stderr
    assert not out.exists()


def test_a_folder_gets_one_png_per_instrument(tmp_path: Path) -> None:
    folder = tmp_path / "charts"
    code, _, stderr = run("plot", SIMULATED / "trades.parquet", BINANCE, "-o", f"{folder}/")
    assert code == 0, stderr
    # issue 9: bars carry the venue, so a file is named <venue>_<symbol>.png (<symbol>.png
    # without a venue) and instruments without a venue come last, as the bar tables sort them
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["SIMA.png", "binance-cm_BTCUSD_PERP.png"]  # the simulator writes no venue
    binance = stderr.index(f"wrote {folder / 'binance-cm_BTCUSD_PERP.png'}")
    assert binance < stderr.index(f"wrote {folder / 'SIMA.png'}")
    assert "Note: SIMA: " in stderr  # trades only: no OFI, no spread


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "chart.jpg"], "cannot tell the image format from '.jpg'"),
        (["-o", "missing/chart.png"], "directory missing does not exist"),
        (["-o", "chart.png", "--panels", "price,volume"], "unknown panel volume"),
        (["-o", "chart.png", "--tz", "Mars/Olympus"], "is not a time zone name"),
    ],
)
def test_bad_plot_flags_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run("plot", SIMULATED, *args)
    assert code == 2
    assert message in stderr
    assert not list(tmp_path.iterdir())


def test_plot_with_too_many_bars_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plot_module, "MAX_BARS", 100)
    code, _, stderr = run("plot", SIMULATED, "-o", tmp_path / "c.png")
    assert code == 2
    assert "use a longer --bar or a shorter --start/--end" in stderr
    assert not list(tmp_path.iterdir())


def test_profile_plot_writes_the_chart_and_still_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "profile.png"
    code, stdout, stderr = run(
        "profile", SIMULATED, "--end", "2024-01-02T01:00:00Z", "--plot", out, "--to", "csv"
    )
    assert code == 0, stderr
    table = pl.read_csv(stdout.encode())
    # issue 9: every per-instrument table starts with the venue (null for the simulator)
    assert table.columns[:4] == ["venue", "symbol", "price_level", "volume"]
    assert table["venue"].null_count() == table.height
    assert table["symbol"].unique().to_list() == ["SIMA"]
    assert f"wrote {out}" in stderr
    image = imread(out)
    assert image.shape[1] == round(11 * DPI)
    assert len(np.unique(packed_colours(image))) > 5


def test_write_figure_leaves_nothing_behind_when_saving_fails(
    tmp_path: Path, simulated_chart: InstrumentChart, monkeypatch: pytest.MonkeyPatch
) -> None:
    figure = simulated_chart.figure

    def broken(*args: Any, **kwargs: Any) -> None:
        message = "disk full"
        raise OSError(message)

    monkeypatch.setattr(figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        write_figure(figure, tmp_path / "chart.png")
    assert not list(tmp_path.iterdir())


def test_episode_dates_are_matplotlib_date_numbers() -> None:
    moment = datetime(2024, 1, 2, 1, 15, tzinfo=UTC)
    expected = float(mdates.date2num(moment))  # type: ignore[no-untyped-call]
    assert date_number(moment) == pytest.approx(expected)


def readme_picture_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pictures\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line]


def test_readme_pictures_come_from_the_commands_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = readme_picture_commands()
    assert len(commands) == 3
    monkeypatch.chdir(ROOT)
    for command in commands:
        assert command[0] == "mmflow"
        flag = "-o" if "-o" in command else "--plot"
        committed = ROOT / command[command.index(flag) + 1]
        assert committed.stat().st_size < 300_000
        assert f"]({committed.relative_to(ROOT)})" in (ROOT / "README.md").read_text()
        command[command.index(flag) + 1] = str(tmp_path / committed.name)
        code, _, stderr = run(*command[1:])
        assert code == 0, stderr
        assert imread(tmp_path / committed.name).shape == imread(committed).shape
