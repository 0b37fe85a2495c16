"""Column names of the phase rule.

What :func:`mmflow.metrics.phases.phase_bars` adds, the labels, the episode columns and the
internal working columns (prefix ``_ph_``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ABSORPTION_LAMBDA",
    "ABSORPTION_RATIO",
    "ACCUMULATION",
    "BUILDUP_Z",
    "DISTRIBUTION",
    "DISTRIBUTION_SCORE",
    "EPISODE_COLUMNS",
    "FLOW_SCALE",
    "INVENTORY_PEAK",
    "INVENTORY_SIDE",
    "IQR_TO_SIGMA",
    "LEVEL_DISPERSION",
    "LONG",
    "NEUTRAL",
    "PHASE",
    "PHASE_COLUMNS",
    "PRICE_LEVELS",
    "RECENT_Z",
    "SHORT",
    "UNLOADED",
    "UNLOAD_ABSORPTION",
    "UNLOAD_Z",
    "_ABS",
    "_CODE",
    "_FLOW",
    "_IDX",
    "_LEVEL",
    "_P",
    "_PEAK_IDX",
    "_PEAK_LAMBDA",
    "_PEAK_PRICE",
    "_PRICE_SD",
    "_ROW",
    "_RUN",
    "_SAVED_LAMBDA",
    "_SIDE",
    "_START",
    "_VOLUME",
]

PHASE: Final = "phase"
INVENTORY_SIDE: Final = "inventory_side"
DISTRIBUTION_SCORE: Final = "distribution_score"
FLOW_SCALE: Final = "flow_scale"
INVENTORY_PEAK: Final = "inventory_peak"
UNLOADED: Final = "unloaded"
BUILDUP_Z: Final = "buildup_z"
UNLOAD_Z: Final = "unload_z"
RECENT_Z: Final = "recent_z"
ABSORPTION_LAMBDA: Final = "absorption_lambda"
ABSORPTION_RATIO: Final = "absorption_ratio"
UNLOAD_ABSORPTION: Final = "unload_absorption"
PRICE_LEVELS: Final = "price_levels"
LEVEL_DISPERSION: Final = "level_dispersion"

PHASE_COLUMNS: Final = (
    FLOW_SCALE,
    INVENTORY_PEAK,
    UNLOADED,
    BUILDUP_Z,
    UNLOAD_Z,
    RECENT_Z,
    ABSORPTION_LAMBDA,
    ABSORPTION_RATIO,
    UNLOAD_ABSORPTION,
    PRICE_LEVELS,
    LEVEL_DISPERSION,
    PHASE,
    INVENTORY_SIDE,
    DISTRIBUTION_SCORE,
)
"""Columns :func:`phase_bars` adds (``mm_inventory`` too, when the bars lack it)."""

ACCUMULATION: Final = "accumulation"
DISTRIBUTION: Final = "distribution"
NEUTRAL: Final = "neutral"
LONG: Final = "long"
SHORT: Final = "short"

EPISODE_COLUMNS: Final = (
    PHASE,
    INVENTORY_SIDE,
    "start",
    "end",
    "bars",
    "inventory_start",
    "inventory_end",
    "unloaded",
    "vwap",
    PRICE_LEVELS,
    LEVEL_DISPERSION,
    "price_change",
    ABSORPTION_RATIO,
    "forward_return",
    "reversal",
)
"""Columns of :func:`phase_episodes` after ``symbol`` (and ``session``)."""

IQR_TO_SIGMA: Final = 1.349
"""Interquartile range of the standard normal distribution (Φ⁻¹(0.75) − Φ⁻¹(0.25))."""

_P = "_ph_price"
_IDX = "_ph_idx"
_RUN = "_ph_run"
_SIDE = "_ph_side"
_ABS = "_ph_abs"
_PEAK_IDX = "_ph_peak_idx"
_PEAK_PRICE = "_ph_peak_price"
_PEAK_LAMBDA = "_ph_peak_lambda"
_START = "_ph_start"
_PRICE_SD = "_ph_price_sd"
_LEVEL = "_ph_level"
_VOLUME = "_ph_volume"
_SAVED_LAMBDA = "_ph_saved_kyle_lambda"
_FLOW = "_ph_flow"
_CODE = "_ph_code"
_ROW = "_ph_row"
