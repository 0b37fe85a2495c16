"""The parameters of the accumulation/distribution phase rule and their valid ranges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from mmflow.errors import ParameterError

__all__ = ["PARAMETER_RANGES", "PhaseParameters"]


@dataclass(frozen=True)
class PhaseParameters:
    """Every parameter of the phase rule, the episodes and the event study.

    The defaults were set on the tuning cells and seeds of ``benchmarks/phase_robustness.py``
    (``docs/phases.md``). Invalid values raise :class:`~mmflow.errors.ParameterError` when the
    object is built; the CLI's option ranges are :data:`PARAMETER_RANGES`.

    Parameters
    ----------
    window
        W, bars of the recent absorption test (a distribution pauses when price followed the
        unloading flow over the last W bars) and of the §12.3 components ``absorption_ratio``,
        ``price_levels`` and ``level_dispersion``.
    lookback
        L, trailing bars for Kyle's λ̂, the flow scale σ₁ and the price-change noise σ_P
        (metrics.md default 240).
    baseline
        M, bars of the rolling baseline: the peak of the inventory and the trough before it are
        looked for in the last M bars.
    absorption
        Recent absorption: a distribution pauses when price moved with the unloading flow by
        more than this many price-noise standard deviations over the last W bars.
    absorption_noise
        Absorption since the peak: a distribution is entered only when price moved with the
        unloading flow since the peak by at most this many price-noise standard deviations.
    extreme
        Entry (and accumulation) needs the rise from the rolling trough to the peak to be at
        least this many flow-noise units × √(bars it took).
    unload
        Entry needs the drawdown since the peak to be at least this many flow-noise units ×
        √(bars since the peak).
    recent_bars
        w: bars of the "still unloading" and "still accumulating" tests.
    recent
        A distribution pauses when the inventory grew back by more than this many flow-noise
        units × √w over the last w bars (the unload stalls).
    accumulation
        Accumulation needs the inventory to have grown by at least this many flow-noise units ×
        √w over the last w bars, at its peak.
    enter
        Probability (``distribution_score``) the entry bar itself needs.
    evidence
        h: accumulated evidence (a CUSUM of the score's log-odds since the peak) needed to
        enter a distribution; ``None`` uses the shipped model's value, set from the detector's
        rate on markets without episodes.
    stay
        A distribution pauses while its probability is below this.
    gap
        g: consecutive pause bars a distribution survives (they are labelled neutral), and the
        bars ``--episodes`` bridges between runs of one episode (metrics.md default 2).
    min_bars
        m: episodes shorter than this many bars are dropped (episodes only: a causal per-bar
        label cannot know how long its run will be; metrics.md default 5).
    horizon
        h: the episode's ``forward_return`` is over the h bars after its end (bars).
    """

    window: int = 15
    lookback: int = 240
    baseline: int = 120
    absorption: float = 2.0
    absorption_noise: float = 2.0
    extreme: float = 2.0
    unload: float = 1.0
    recent_bars: int = 5
    recent: float = 1.0
    accumulation: float = 1.0
    enter: float = 0.5
    evidence: float | None = None
    stay: float = 0.2
    gap: int = 2
    min_bars: int = 5
    horizon: int = 5

    def __post_init__(self) -> None:
        for name, (low, high) in PARAMETER_RANGES.items():
            value = getattr(self, name)
            if name == "evidence" and value is None:
                continue
            if isinstance(low, int) and isinstance(high, int | None):
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    msg = f"{name} must be a whole number of bars >= {low}, was {value!r}"
                    raise ParameterError(msg)
                if high is not None and value > high:
                    msg = f"{name} must be a whole number of bars <= {high}, was {value!r}"
                    raise ParameterError(msg)
                continue
            _check_number(name, value, low=float(low), high=high)


PARAMETER_RANGES: Final[dict[str, tuple[int | float, int | float | None]]] = {
    "window": (1, None),
    "lookback": (2, None),
    "baseline": (2, 100_000),
    "absorption": (0.0, None),
    "absorption_noise": (0.0, None),
    "extreme": (0.0, None),
    "unload": (0.0, None),
    "recent_bars": (1, 100_000),
    "recent": (0.0, None),
    "accumulation": (0.0, None),
    "enter": (0.0, 1.0),
    "evidence": (0.0, 1000.0),
    "stay": (0.0, 1.0),
    "gap": (0, None),
    "min_bars": (1, None),
    "horizon": (1, None),
}
"""Smallest and largest accepted value of each :class:`PhaseParameters` field (None: no bound);
int bounds for whole numbers of bars. The CLI builds its option ranges from this table."""


def _check_number(name: str, value: float, *, low: float, high: float | None) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = number and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        span = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
        msg = f"{name} must be a finite number {span}, was {value!r}"
        raise ParameterError(msg)
