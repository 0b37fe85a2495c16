"""What every mmflow chart shares: the colour-blind-safe palette, the style, sizes and names.

matplotlib is imported only when a figure is made (:func:`require_matplotlib`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mmflow.errors import MissingDependencyError
from mmflow.render.messages import instrument_name
from mmflow.schema import SYMBOL, VENUE

__all__ = [
    "BLACK",
    "BLUE",
    "BLUISH_GREEN",
    "BUY_COLOUR",
    "DPI",
    "GREY",
    "INSTALL_HINT",
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
    "chart_style",
    "date_number",
    "file_stem",
    "instrument_keys",
    "instrument_name",
    "require_matplotlib",
]

if TYPE_CHECKING:
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
    from mmflow.durations import duration_seconds

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
