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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mmflow.errors import MmflowError, ParameterError
from mmflow.render.chart_base import (
    BLACK,
    BLUE,
    BLUISH_GREEN,
    BUY_COLOUR,
    DPI,
    GREY,
    INSTALL_HINT,
    MAX_PROFILE_ROWS,
    ORANGE,
    PANEL_TITLES,
    PANELS,
    PHASE_COLOURS,
    REDDISH_PURPLE,
    SELL_COLOUR,
    SKY_BLUE,
    STYLE,
    VERMILLION,
    WIDTH_INCHES,
    WITHDRAWAL_COLOUR,
    _has,
    _new_figure,
    _period,
    _seconds,
    _values,
    _x,
    chart_style,
    date_number,
    file_stem,
    instrument_keys,
    instrument_name,
    require_matplotlib,
)
from mmflow.schema import TS

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
    "require_matplotlib",
    "split_instruments",
]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_BARS: Final = 200_000
"""Most bars one chart draws; more is unreadable and slow (use a longer --bar)."""


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
            _legend_above(ax, twin)
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


def _legend_above(ax: Any, twin: Any) -> None:
    """One legend for a panel and its twin axis, above the panel right of its title."""
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
