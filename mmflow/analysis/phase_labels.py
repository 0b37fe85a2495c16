"""Accumulation and distribution phases (``mmflow phases``): labels, episodes, evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from mmflow.analysis.market import market_bars
from mmflow.analysis.options import BarOptions, Selection, Signing, check_windows
from mmflow.analysis.prepare import instrument_columns
from mmflow.metrics.flow import bar_keys
from mmflow.metrics.impact import KYLE_LAMBDA
from mmflow.metrics.phase_episodes import phase_episodes
from mmflow.metrics.phase_evaluation import event_study, truth_scores
from mmflow.metrics.phases import PHASE_COLUMNS, PhaseParameters, phase_labels, with_phase_levels
from mmflow.schema import TS

__all__ = [
    "Phases",
    "phases",
]


@dataclass(frozen=True)
class Phases:
    """The result of :func:`phases`: per-bar phases, episodes and (optionally) evaluation.

    Attributes
    ----------
    bars
        ``symbol, [session,] ts, phase, inventory_side, distribution_score`` and the components.
    episodes
        One row per accumulation or distribution episode.
    study
        The event study (forward returns after distribution episodes vs a placebo).
    scores
        Precision/recall against simulator truth, when ``truth`` was given.
    parameters
        Every parameter (``offline`` says whether later bars were used).
    """

    bars: pl.LazyFrame
    episodes: pl.LazyFrame
    study: pl.LazyFrame
    scores: pl.LazyFrame | None
    parameters: dict[str, Any] = field(default_factory=dict)


def phases(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    parameters: PhaseParameters | None = None,
    offline: bool = False,
    truth: pl.LazyFrame | None = None,
    horizons: Sequence[int] = (1, 5, 15, 60),
    placebo_seed: int = 0,
    signing: Signing | None = None,
    selection: Selection | None = None,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None = None,
) -> Phases:
    """Label accumulation and distribution per bar, extract episodes and evaluate them.

    Causal by default: a bar's phase uses only data up to the end of that bar; ``offline``
    may use later bars (see :func:`mmflow.metrics.phases.phase_bars`). ``materialize`` works as
    in :func:`analyze`: it computes the bars and signed trades once, early.
    """
    options = options or BarOptions()
    parameters = parameters or PhaseParameters()
    check_windows(options, parameters)
    market = market_bars(trades, quotes, options=options, signing=signing, selection=selection)
    # phase_bars fits its own λ̂ (absorption_lambda, on the mid); the bars' kyle_lambda is not
    # in the output, so it is dropped here and Kyle's λ is computed once per run.
    bars, signed = market.bars.drop(KYLE_LAMBDA, strict=False), market.signed
    # each table below is read more than once, and a lazy plan read twice is computed twice
    bars, signed = _once(materialize, [bars, signed])
    [labelled] = _once(materialize, [phase_labels(bars, parameters=parameters, offline=offline)])
    [phased] = _once(materialize, [with_phase_levels(labelled, signed, parameters=parameters)])
    episodes = phase_episodes(phased, every=options.every, trades=signed, parameters=parameters)
    study = event_study(phased, episodes, horizons=horizons, placebo_seed=placebo_seed)
    scores = truth_scores(phased, truth) if truth is not None else None
    keys = bar_keys(market.bars)
    first = ["phase", "inventory_side", "distribution_score", "mm_inventory"]
    bars = phased.select(*keys, TS, *first, *(c for c in PHASE_COLUMNS if c not in first))
    record = {**market.parameters, **{f"phase_{k}": v for k, v in asdict(parameters).items()}}
    record |= {"offline": offline, "horizons": list(horizons), "placebo_seed": placebo_seed}
    return Phases(
        instrument_columns(bars),
        instrument_columns(episodes),
        study,
        instrument_columns(scores) if scores is not None else None,
        record,
    )


def _once(
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None,
    plans: list[pl.LazyFrame],
) -> list[pl.LazyFrame]:
    """``plans`` computed once by ``materialize`` (as lazy frames over the rows), else as given."""
    return plans if materialize is None else [frame.lazy() for frame in materialize(plans)]
