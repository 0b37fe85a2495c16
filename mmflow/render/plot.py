"""Charts for people: one figure per instrument, and the volume profile.

Pure drawing: collected tables in, a :class:`matplotlib.figure.Figure` out; nothing here reads
or writes files (:func:`mmflow.render.write.write_figure` saves a figure atomically). Figures are
built without pyplot (no global state, no window) on the Agg canvas, under matplotlib's default
style plus mmflow's own settings, so the same tables give the same picture on every machine.

matplotlib is the optional ``plot`` extra and is imported only when a chart is drawn
(:func:`require_matplotlib` says how to install it when it is missing).

Colours are the Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"), which stays
distinguishable under the common forms of colour-vision deficiency.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mmflow.errors import MissingDependencyError, MmflowError, ParameterError
from mmflow.schema import SYMBOL, TS, VENUE

__all__ = [
    "BLACK",
    "BLUE",
    "BLUISH_GREEN",
    "BUY_COLOUR",
    "DPI",
    "GREY",
    "INSTALL_HINT",
    "MAX_BARS",
    "MAX_PROFILE_ROWS",
    "ORANGE",
    "PANELS",
    "PANEL_TITLES",
    "PHASE_COLOURS",
    "REDDISH_PURPLE",
    "SELL_COLOUR",
    "SKY_BLUE",
    "STYLE",
    "VERMILLION",
    "WIDTH_INCHES",
    "WITHDRAWAL_COLOUR",
    "InstrumentChart",
    "chart_style",
    "chosen_panels",
    "date_number",
    "file_stem",
    "instrument_charts",
    "instrument_count",
    "instrument_figure",
    "instrument_keys",
    "instrument_name",
    "panels_with_data",
    "phase_runs",
    "profile_figure",
    "profile_figures",
    "require_matplotlib",
    "split_instruments",
]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT: Final = "pip install 'mmflow[plot]'"

PANELS: Final = ("price", "cvd", "ofi", "spread", "vpin")
"""The panels of an instrument chart, in their default order (``--panels`` picks and orders)."""

PANEL_TITLES: Final = {
    "price": "Price, accumulation and distribution",
    "cvd": "CVD and market-maker inventory",
    "ofi": "Order-flow imbalance per bar",
    "spread": "Spread and depth, liquidity withdrawal",
    "vpin": "VPIN",
}

# Okabe–Ito colours.
BLACK: Final = "#000000"
ORANGE: Final = "#E69F00"
SKY_BLUE: Final = "#56B4E9"
BLUISH_GREEN: Final = "#009E73"
BLUE: Final = "#0072B2"
VERMILLION: Final = "#D55E00"
REDDISH_PURPLE: Final = "#CC79A7"
GREY: Final = "#999999"

PHASE_COLOURS: Final = {"accumulation": SKY_BLUE, "distribution": ORANGE}
WITHDRAWAL_COLOUR: Final = REDDISH_PURPLE
BUY_COLOUR: Final = BLUE
SELL_COLOUR: Final = ORANGE

MAX_BARS: Final = 200_000
"""Most bars one chart draws; more is unreadable and slow (use a longer --bar)."""
MAX_PROFILE_ROWS: Final = 100
"""Price levels beyond this are merged into equal ranges for display (as on screen)."""

WIDTH_INCHES: Final = 11.0
DPI: Final = 110
"""11 in at 110 dpi = 1210 px: fits a laptop screen and a report page."""

STYLE: Final[dict[str, Any]] = {
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.0,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.0,
    "legend.framealpha": 0.85,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "svg.hashsalt": "mmflow",
    "path.simplify": True,
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def require_matplotlib() -> None:
    """Import matplotlib or say how to install it.

    Raises
    ------
    MissingDependencyError
        When the optional ``plot`` extra is not installed.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        msg = f"charts need matplotlib, which is not installed ({INSTALL_HINT})"
        raise MissingDependencyError(msg) from None


@contextmanager
def chart_style() -> Iterator[None]:
    """Apply matplotlib's default style plus mmflow's settings, whatever the user's rc file says."""
    import matplotlib as mpl
    import matplotlib.style

    with mpl.rc_context():
        matplotlib.style.use("default")
        mpl.rcParams.update(STYLE)  # type: ignore[arg-type]
        yield


def _new_figure(height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def instrument_keys(bars: pl.DataFrame) -> list[str]:
    """Return the columns that name an instrument: ``venue`` (when present) and ``symbol``."""
    return [k for k in (VENUE, SYMBOL) if k in bars.columns]


def instrument_name(instrument: dict[str, Any]) -> str:
    """Name an instrument for people: ``BTCUSDT@binance-um``, or the symbol without a venue."""
    symbol = str(instrument.get(SYMBOL) or "?")
    venue = instrument.get(VENUE)
    return f"{symbol}@{venue}" if venue else symbol


def file_stem(instrument: dict[str, Any]) -> str:
    """Return a file-name-safe stem ``<venue>_<symbol>`` (``<symbol>`` without a venue).

    Other keys (a session or date of a profile) follow, joined by ``_``. Anything but letters,
    digits, ``.``, ``_`` and ``-`` becomes ``-``, so no name escapes the output folder.

    Examples
    --------
    >>> file_stem({"venue": "binance-um", "symbol": "BTCUSDT"})
    'binance-um_BTCUSDT'
    >>> file_stem({"symbol": "../ES U4/x"})
    '-ES-U4-x'
    """
    parts = [instrument.get(VENUE), instrument.get(SYMBOL)]
    parts += [v for k, v in instrument.items() if k not in (VENUE, SYMBOL)]
    text = "_".join(_UNSAFE.sub("-", str(p)) for p in parts if p not in (None, ""))
    return text.lstrip(".") or "instrument"


def _seconds(every: str) -> float:
    from mmflow.metrics.inventory import duration_seconds

    return duration_seconds(every)


def _x(values: pl.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Matplotlib date numbers (days since 1970-01-01 UTC) of UTC timestamps."""
    micros = values.dt.epoch("us").cast(pl.Float64).to_numpy()
    return np.asarray(micros / 86_400e6, dtype=np.float64)


def date_number(value: datetime) -> float:
    """Return the matplotlib date number of a timestamp (naive means UTC)."""
    series = pl.Series([value])
    if series.dtype == pl.Datetime("us") or series.dtype == pl.Datetime("ns"):
        series = series.dt.replace_time_zone("UTC")
    return float(_x(series)[0])


def _values(bars: pl.DataFrame, column: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    if column not in bars.columns:
        return np.full(bars.height, np.nan)
    return np.asarray(bars[column].cast(pl.Float64).fill_null(np.nan).to_numpy(), np.float64)


def _has(bars: pl.DataFrame, column: str, at_least: int = 1) -> bool:
    return column in bars.columns and bars[column].cast(pl.Float64).is_not_nan().sum() >= at_least


def _period(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    first, last = start.astimezone(zone), end.astimezone(zone)
    clock = "%H:%M:%S" if (end - start).total_seconds() < 3600 else "%H:%M"
    tail = last.strftime(clock if first.date() == last.date() else f"%Y-%m-%d {clock}")
    return f"{first.strftime(f'%Y-%m-%d {clock}')} → {tail} {zone.key}"


def chosen_panels(requested: Sequence[str] | None) -> list[str]:
    """Validate ``--panels``: known names, no repeats; all panels when ``None``.

    Raises
    ------
    ParameterError
        For an unknown or repeated panel name.
    """
    if not requested:
        return list(PANELS)
    names = [n.strip() for n in requested if n.strip()]
    unknown = [n for n in names if n not in PANELS]
    if unknown or not names:
        msg = f"unknown panel {', '.join(unknown) or '(none)'}; use some of {','.join(PANELS)}"
        raise ParameterError(msg)
    if len(set(names)) != len(names):
        msg = f"a panel is named twice in --panels {','.join(names)}"
        raise ParameterError(msg)
    return names


@dataclass(frozen=True)
class InstrumentChart:
    """One instrument's figure and what it left out.

    Attributes
    ----------
    instrument
        The instrument's key values (``venue`` when known, ``symbol``).
    figure
        The chart.
    panels
        The panels drawn, top to bottom.
    notes
        One line per panel left out, saying why.
    """

    instrument: dict[str, Any]
    figure: Figure
    panels: tuple[str, ...]
    notes: tuple[str, ...]


def panels_with_data(
    bars: pl.DataFrame, panels: Sequence[str], *, has_quotes: bool
) -> tuple[list[str], list[str]]:
    """Split the requested panels into those the bars can fill and notes for the rest."""
    why = {
        "price": "no prices",
        "cvd": "no signed volume",
        "ofi": "no quotes (pass --quotes)" if not has_quotes else "no OFI values",
        "spread": "no quotes (pass --quotes)" if not has_quotes else "no spread or depth values",
        "vpin": "fewer than two VPIN values (lower --vpin-window or raise --buckets-per-day)",
    }
    filled = {
        "price": _has(bars, "close") or _has(bars, "mid_close"),
        "cvd": _has(bars, "cvd") or _has(bars, "mm_inventory"),
        "ofi": _has(bars, "ofi"),
        "spread": _has(bars, "spread") or _has(bars, "depth"),
        "vpin": _has(bars, "vpin", at_least=2),
    }
    kept = [p for p in panels if filled[p]]
    notes = [f"{PANEL_TITLES[p]} not drawn: {why[p]}" for p in panels if not filled[p]]
    return kept, notes


def _spans(
    ax: Axes, table: pl.DataFrame, *, colour: str, gid: str, alpha: float, label: str | None
) -> None:
    """Shade [start, end) of every row of ``table`` across the whole height of ``ax``."""
    if table.height == 0:
        return
    starts, ends = _x(table["start"]), _x(table["end"])
    for index, (first, last) in enumerate(zip(starts, ends, strict=True)):
        patch = ax.axvspan(
            float(first),
            float(last),
            color=colour,
            alpha=alpha,
            linewidth=0,
            label=label if index == 0 else None,
            zorder=0,
        )
        patch.set_gid(gid)


def phase_runs(bars: pl.DataFrame, every: str) -> pl.DataFrame:
    """Return ``phase, start, end`` for each run of consecutive bars labelled alike.

    Only accumulation and distribution runs are returned; ``end`` is the last bar's start plus
    ``every``.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> bars = pl.DataFrame(
    ...     {
    ...         "ts": [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(5)],
    ...         "phase": ["neutral", "distribution", "distribution", None, "accumulation"],
    ...     }
    ... )
    >>> [
    ...     (r["phase"], r["start"].minute, r["end"].minute)
    ...     for r in phase_runs(bars, "1m").rows(named=True)
    ... ]
    [('distribution', 1, 3), ('accumulation', 4, 5)]
    """
    if "phase" not in bars.columns:
        return pl.DataFrame(
            schema={"phase": pl.String, "start": bars[TS].dtype, "end": bars[TS].dtype}
        )
    return (
        bars.select(TS, "phase")
        .with_columns(pl.col("phase").rle_id().alias("_run"))
        .filter(pl.col("phase").is_in(list(PHASE_COLOURS)))
        .group_by("_run", maintain_order=True)
        .agg(
            pl.col("phase").first(),
            pl.col(TS).min().alias("start"),
            pl.col(TS).max().dt.offset_by(every).alias("end"),
        )
        .drop("_run")
    )


def _price_panel(
    ax: Axes, bars: pl.DataFrame, ends: np.ndarray[Any, Any], episodes: pl.DataFrame, every: str
) -> None:
    # The last trade price, carried over bars without trades; the mid only without trades,
    # since a quote file that ends early leaves a stale mid behind.
    use_mid = not _has(bars, "close")
    column = "mid_close" if use_mid else "close"
    price = bars[column].cast(pl.Float64).fill_nan(None).forward_fill()
    label = "mid at bar close" if use_mid else "last trade price"
    ax.plot(ends, price.fill_null(np.nan).to_numpy(), color=BLACK, linewidth=1.0, label=label)
    ax.set_ylabel("mid price" if use_mid else "trade price")
    for phase, colour in PHASE_COLOURS.items():
        mine = episodes.filter(pl.col("phase") == phase) if episodes.height else episodes
        _spans(
            ax, mine, colour=colour, gid=f"episode-{phase}", alpha=0.22, label=f"{phase} episode"
        )
    runs = phase_runs(bars, every)
    for phase, colour in PHASE_COLOURS.items():
        mine = runs.filter(pl.col("phase") == phase)
        starts, stops = _x(mine["start"]), _x(mine["end"])
        named = episodes.height == 0 or episodes.filter(pl.col("phase") == phase).height == 0
        for index, (first, last) in enumerate(zip(starts, stops, strict=True)):
            patch = ax.axvspan(
                float(first),
                float(last),
                ymin=0.0,
                ymax=0.035,
                color=colour,
                linewidth=0,
                label=f"{phase} bars" if named and index == 0 else None,
            )
            patch.set_gid(f"bars-{phase}")
    if episodes.height:
        transform = ax.get_xaxis_transform()
        for row in episodes.iter_rows(named=True):
            side = row.get("inventory_side") or ""
            text = f"{'acc.' if row['phase'] == 'accumulation' else 'dist.'} {side}".strip()
            ax.text(
                date_number(row["start"]),
                0.98,
                f" {text}",
                transform=transform,
                fontsize=7.5,
                va="top",
                ha="left",
                color="#333333",
                clip_on=True,
            )


def _cvd_panel(ax: Axes, bars: pl.DataFrame, ends: np.ndarray[Any, Any]) -> None:
    if _has(bars, "cvd"):
        ax.plot(ends, _values(bars, "cvd"), color=BLUE, linewidth=1.1, label="CVD (buy − sell)")
    if _has(bars, "mm_inventory"):
        ax.plot(
            ends,
            _values(bars, "mm_inventory"),
            color=VERMILLION,
            linewidth=1.1,
            linestyle="--",
            label="market-maker inventory (−CVD)",
        )
    ax.axhline(0.0, color=GREY, linewidth=0.7)
    ax.set_ylabel("size units")


def _ofi_panel(ax: Axes, bars: pl.DataFrame, starts: np.ndarray[Any, Any], step: float) -> None:
    ofi = _values(bars, "ofi")
    edges = np.append(starts, starts[-1] + step) if starts.size else starts
    values = np.append(ofi, ofi[-1]) if ofi.size else ofi
    positive = np.where(values > 0, values, 0.0)
    negative = np.where(values < 0, values, 0.0)
    ax.fill_between(
        edges, positive, step="post", color=BLUISH_GREEN, linewidth=0, label="buying pressure (+)"
    )
    ax.fill_between(
        edges, negative, step="post", color=VERMILLION, linewidth=0, label="selling pressure (−)"
    )
    ax.axhline(0.0, color=GREY, linewidth=0.7)
    ax.set_ylabel("OFI (size units)")


def _spread_panel(
    ax: Axes, bars: pl.DataFrame, ends: np.ndarray[Any, Any], withdrawals: pl.DataFrame
) -> Axes | None:
    _spans(
        ax,
        withdrawals,
        colour=WITHDRAWAL_COLOUR,
        gid="withdrawal",
        alpha=0.35,
        label="liquidity withdrawal",
    )
    twin = None
    if _has(bars, "spread"):
        ax.plot(ends, _values(bars, "spread"), color=BLUE, linewidth=1.0, label="spread")
        ax.set_ylabel("spread (price units)")
    if _has(bars, "depth"):
        target = ax
        if _has(bars, "spread"):
            twin = ax.twinx()
            twin.grid(visible=False)
            twin.spines["right"].set_visible(True)
            target = twin
        target.plot(
            ends,
            _values(bars, "depth"),
            color=BLUISH_GREEN,
            linewidth=1.0,
            linestyle="--",
            label="depth at best",
        )
        target.set_ylabel("depth at best (size units)")
    return twin


def _readable_y(ax: Axes) -> None:
    """Plain tick labels (no offset), and a visible range around a series that never moves."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    low, high = ax.get_ylim()
    middle = (low + high) / 2.0
    if high - low < 1e-9 * max(abs(middle), 1.0):
        spread = abs(middle) * 0.05 or 1.0
        ax.set_ylim(middle - spread, middle + spread)


def _vpin_panel(ax: Axes, bars: pl.DataFrame, ends: np.ndarray[Any, Any]) -> None:
    vpin = _values(bars, "vpin")
    known = ~np.isnan(vpin)
    ax.plot(ends[known], vpin[known], color=REDDISH_PURPLE, linewidth=1.1, label="VPIN")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("VPIN (0–1)")


def instrument_figure(
    bars: pl.DataFrame,
    episodes: pl.DataFrame,
    withdrawals: pl.DataFrame,
    *,
    every: str,
    panels: Sequence[str] = PANELS,
    tz: str = "UTC",
    has_quotes: bool = True,
) -> InstrumentChart:
    """Draw one instrument: panels sharing the time axis, top to bottom.

    * ``price``: the mid at bar close (the last trade price without quotes), with accumulation
      and distribution episodes shaded across the panel and labelled, and the bars the causal
      rule labelled so as a strip along the bottom;
    * ``cvd``: cumulative signed volume and the market-maker inventory (−CVD);
    * ``ofi``: order-flow imbalance per bar (Cont, Kukanov & Stoikov 2014);
    * ``spread``: time-weighted spread and depth at best, withdrawal episodes shaded;
    * ``vpin``: VPIN (Easley, López de Prado & O'Hara 2012).

    Values of a bar are drawn at its end (``ts`` + ``every``), the OFI as a step over the bar.

    Parameters
    ----------
    bars
        One instrument's bars (columns of :func:`mmflow.analysis.chart`), in time order.
    episodes
        Its phase episodes (``phase, inventory_side, start, end``).
    withdrawals
        Its liquidity-withdrawal episodes (``start, end``).
    every
        The bar length.
    panels
        Which panels, in order; panels without data are left out with a note.
    tz
        Time zone of the time axis and the title.
    has_quotes
        Whether quotes were given (for the notes).

    Returns
    -------
    InstrumentChart
        The figure, the panels drawn and the notes.

    Raises
    ------
    ParameterError
        When there are more than :data:`MAX_BARS` bars (use a longer bar).
    MmflowError
        When no requested panel has data.
    """
    import matplotlib.dates as mdates

    if bars.height == 0:
        msg = "no bars to draw"
        raise MmflowError(msg)
    keys = instrument_keys(bars)
    instrument = {k: bars[k][0] for k in keys}
    name = instrument_name(instrument)
    if bars.height > MAX_BARS:
        msg = (
            f"{name}: {bars.height:,} bars of {every} are more than a chart shows "
            f"({MAX_BARS:,}); use a longer --bar or a shorter --start/--end"
        )
        raise ParameterError(msg)
    zone = ZoneInfo(tz)
    kept, notes = panels_with_data(bars, panels, has_quotes=has_quotes)
    if not kept:
        msg = f"{name}: nothing to draw ({'; '.join(notes)})"
        raise MmflowError(msg)
    step = _seconds(every) / 86_400.0
    starts = _x(bars[TS])
    ends = starts + step
    heights = [1.6 if p == "price" else 1.0 for p in kept]
    with chart_style():
        figure = _new_figure(1.0 + 1.75 * sum(heights))
        axes = figure.subplots(
            len(kept), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights}
        )[:, 0]
        for ax, panel in zip(axes, kept, strict=True):
            ax.set_title(PANEL_TITLES[panel], loc="left")
            ax.set_gid(f"panel-{panel}")
            twin = None
            if panel == "price":
                _price_panel(ax, bars, ends, episodes, every)
            elif panel == "cvd":
                _cvd_panel(ax, bars, ends)
            elif panel == "ofi":
                _ofi_panel(ax, bars, starts, step)
            elif panel == "spread":
                twin = _spread_panel(ax, bars, ends, withdrawals)
            else:
                _vpin_panel(ax, bars, ends)
            handles, labels = ax.get_legend_handles_labels()
            if twin is not None:
                more, names = twin.get_legend_handles_labels()
                handles, labels = handles + more, labels + names
            if handles:  # above the panel, right of its title: never over the data
                ax.legend(
                    handles,
                    labels,
                    loc="lower right",
                    bbox_to_anchor=(1.0, 1.0),
                    ncols=len(handles),
                    frameon=False,
                    borderaxespad=0.1,
                )
            for axis in (ax, twin):
                if axis is not None:
                    _readable_y(axis)
        first, last = float(starts[0]), float(ends[-1])
        axes[0].set_xlim(first, last)
        locator = mdates.AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        bottom = axes[-1]
        bottom.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_formatter(formatter)
        label = f"time ({zone.key}); bar {every}"
        if notes:
            label += "\n" + "; ".join(notes)
        bottom.set_xlabel(label)
        last_end = bars.select(pl.col(TS).max().dt.offset_by(every)).item()
        period = _period(_aware(bars[TS].min()), _aware(last_end), zone)
        figure.suptitle(f"{name} · {period} · {every} bars", fontsize=12, fontweight="bold")
    return InstrumentChart(instrument, figure, tuple(kept), tuple(notes))


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        msg = "bars need a datetime ts column"
        raise MmflowError(msg)
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("UTC"))


def split_instruments(
    frame: pl.DataFrame, keys: Sequence[str]
) -> list[tuple[dict[str, Any], pl.DataFrame]]:
    """Split a table into one frame per instrument, in sorted key order."""
    if frame.height == 0 or not keys:
        return [({}, frame)] if frame.height else []
    parts = frame.partition_by(list(keys), as_dict=True, maintain_order=True)
    out = [(dict(zip(keys, key, strict=True)), part) for key, part in parts.items()]
    # null keys (no venue) last, as the bar tables sort them
    return sorted(out, key=lambda item: tuple((item[0][k] is None, str(item[0][k])) for k in keys))


def _matching(table: pl.DataFrame, instrument: dict[str, Any]) -> pl.DataFrame:
    for key, value in instrument.items():
        if key in table.columns:
            same = pl.col(key).is_null() if value is None else pl.col(key) == value
            table = table.filter(same)
    return table


def instrument_charts(
    bars: pl.DataFrame,
    episodes: pl.DataFrame,
    withdrawals: pl.DataFrame,
    *,
    every: str,
    panels: Sequence[str] = PANELS,
    tz: str = "UTC",
    has_quotes: bool = True,
) -> Iterator[InstrumentChart]:
    """Yield one :class:`InstrumentChart` per instrument (venue and symbol), one at a time.

    Sessions of one instrument share its chart. Figures are built lazily, so writing each
    before the next is drawn keeps one figure in memory at a time.
    """
    keys = instrument_keys(bars)
    for instrument, part in split_instruments(bars, keys):
        yield instrument_figure(
            part.sort(TS),
            _matching(episodes, instrument),
            _matching(withdrawals, instrument),
            every=every,
            panels=panels,
            tz=tz,
            has_quotes=has_quotes,
        )


def instrument_count(bars: pl.DataFrame) -> int:
    """Return how many instruments (charts) a bar table holds."""
    keys = instrument_keys(bars)
    return bars.select(keys).n_unique() if keys and bars.height else int(bars.height > 0)


def _merged_levels(levels: pl.DataFrame, rows: int) -> pl.DataFrame:
    frame = levels.sort("price_level")
    if frame.height <= rows:
        return frame.with_columns(pl.col("price_level").alias("_top"))
    size = -(-frame.height // rows)
    return (
        frame.with_row_index("_row")
        .group_by((pl.col("_row") // size).alias("_group"))
        .agg(
            pl.col("price_level").first(),
            pl.col("volume", "buy_volume", "sell_volume").sum(),
            pl.col("price_level").last().alias("_top"),
        )
        .sort("price_level")
    )


def profile_figure(
    levels: pl.DataFrame, area: dict[str, Any], *, title: str | None = None
) -> Figure:
    """Draw one volume profile as horizontal bars: buyer- and seller-initiated volume stacked.

    The value area is shaded and its low and high labelled; the point of control (POC) is a
    line. More than :data:`MAX_PROFILE_ROWS` levels are merged into equal price ranges for
    display only (the table keeps every level).

    Parameters
    ----------
    levels
        One profile's ``price_level, volume, buy_volume, sell_volume`` rows.
    area
        Its value area: ``poc, value_area_low, value_area_high`` (and ``value_area_volume,
        total_volume``).
    title
        The title; by default the symbol.

    Returns
    -------
    Figure
        The chart.
    """
    frame = _merged_levels(levels, MAX_PROFILE_ROWS)
    prices = _values(frame, "price_level")
    tops = _values(frame, "_top")
    if prices.size > 1:
        height = float(np.min(np.diff(prices)))
    else:
        height = max(abs(float(prices[0])) * 1e-4, 1e-9) if prices.size else 1.0
    centres = (prices + tops) / 2.0
    buys = np.nan_to_num(_values(frame, "buy_volume"))
    sells = np.nan_to_num(_values(frame, "sell_volume"))
    others = np.nan_to_num(_values(frame, "volume")) - buys - sells
    poc, low, high = area.get("poc"), area.get("value_area_low"), area.get("value_area_high")
    with chart_style():
        figure = _new_figure(max(4.0, min(9.0, 2.0 + 0.06 * frame.height)))
        ax = figure.subplots()
        ax.set_gid("panel-profile")
        if low is not None and high is not None:
            patch = ax.axhspan(
                float(low) - height / 2,
                float(high) + height / 2,
                color=GREY,
                alpha=0.18,
                linewidth=0,
                label=f"value area {low:g} – {high:g}",
                zorder=0,
            )
            patch.set_gid("value-area")
        ax.barh(centres, buys, height=height * 0.9, color=BUY_COLOUR, label="buyer-initiated")
        ax.barh(
            centres,
            sells,
            height=height * 0.9,
            left=buys,
            color=SELL_COLOUR,
            label="seller-initiated",
        )
        if np.any(others > 1e-9 * np.maximum(np.nan_to_num(_values(frame, "volume")), 1.0)):
            ax.barh(
                centres,
                others,
                height=height * 0.9,
                left=buys + sells,
                color=GREY,
                label="unsigned",
            )
        if poc is not None:
            line = ax.axhline(float(poc), color=BLACK, linewidth=1.2, label=f"POC {poc:g}")
            line.set_gid("poc")
        ax.set_xlabel("volume (size units)")
        ax.set_ylabel("price")
        ax.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, frameon=False, borderaxespad=0.1
        )
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        extra = [str(area[k]) for k in ("session", "date") if area.get(k) is not None]
        text = title or " · ".join([f"{instrument_name(area)} volume profile", *extra])
        figure.suptitle(text, fontsize=12, fontweight="bold")
    return figure


def profile_figures(
    levels: pl.DataFrame, areas: pl.DataFrame, *, by: Sequence[str]
) -> Iterator[tuple[dict[str, Any], Figure]]:
    """Yield ``(keys, figure)`` for each profile (symbol, or symbol and session or date)."""
    for area in areas.iter_rows(named=True):
        keys = {key: area[key] for key in by}
        yield keys, profile_figure(_matching(levels, keys), area)
