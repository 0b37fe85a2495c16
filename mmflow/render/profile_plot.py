"""The volume-profile chart (``mmflow profile --plot``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mmflow.render.chart_base import (
    BLACK,
    BUY_COLOUR,
    GREY,
    MAX_PROFILE_ROWS,
    SELL_COLOUR,
    _new_figure,
    _values,
    chart_style,
    instrument_name,
)
from mmflow.render.plot import _matching

__all__ = ["profile_figure", "profile_figures"]

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
