"""Evaluation of the phase rule: the reversal event study and scores against simulator truth.

:func:`event_study` compares signed forward returns after distribution episodes with placebo
bars (metrics.md §12.6 (2)); :func:`truth_scores` scores per-bar labels against the truth of
:mod:`mmflow.simulate` (metrics.md §12.6 (1)). Seeds are split between tuning
(:data:`TUNING_SEEDS`) and held-out evaluation (:data:`EVALUATION_SEEDS`); the measurements are
in ``docs/phases.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import polars as pl

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics._common import require_names
from mmflow.metrics.event_study import (
    check_horizons,
    check_seed,
    placebo_hash,
    summary_statistics,
    welch_t_statistic,
)
from mmflow.metrics.phase_columns import (
    _P,
    _SIDE,
    DISTRIBUTION,
    INVENTORY_SIDE,
    LONG,
    NEUTRAL,
    PHASE,
    SHORT,
)
from mmflow.metrics.phases import _keys, _names, _price
from mmflow.schema import CLOSE, MID_CLOSE, SYMBOL, TS, asof_keys, instrument_keys

__all__ = [
    "EVALUATION_SEEDS",
    "TUNING_SEEDS",
    "event_study",
    "truth_scores",
]

TUNING_SEEDS: Final = tuple(range(10))
"""Seeds of the default simulated market the first shipped rule was tuned on
(``benchmarks/phases_seeds.py --tuning``; the issue-10 detector's cells are in
``benchmarks/phase_robustness.py``)."""
EVALUATION_SEEDS: Final = tuple(range(100, 120))
"""Seeds of the default simulated market scored by ``benchmarks/phases_seeds.py`` (metrics.md
§12.6 targets); never used to fit the issue-10 model either."""


def event_study(
    phased: pl.LazyFrame,
    episodes: pl.LazyFrame,
    *,
    horizons: Sequence[int] = (1, 5, 15, 60),
    placebo_seed: int = 0,
    placebo_draws: int = 1000,
) -> pl.LazyFrame:
    """Forward returns after distribution episodes against a placebo (metrics.md §12.6 (2)).

    For every ``distribution`` episode, with k₁ its last bar (the last bar starting before its
    ``end``) and P as in :func:`phase_bars`, the **signed** forward return at horizon h bars is

        r_h = −s · ln(P_{k₁+h} / P_{k₁}),   s = +1 for long inventory, −1 for short,

    positive when the price reverts against the distributed inventory, as inventory theory
    predicts (Hendershott & Menkveld 2014, *J. Financial Economics* 114(3):405-423; Hendershott
    & Seasholes 2007, *American Economic Review* 97(2):210-214). The **placebo** is the same
    statistic at ``placebo_draws`` bars drawn without replacement among bars with an inventory
    side, each signed by its own ``inventory_side``: it measures what inventory alone predicts,
    so the gap between the two is what the distribution label adds. The draw is reproducible:
    bars are ranked by a hash of (symbol, ts) seeded with ``placebo_seed`` — the same seed and
    data give the same placebo, whatever the row order or engine. Returns beyond a series (or
    session) end, or with a price ≤ 0, are left out.

    For each sample: ``count``, ``mean``, ``t_statistic`` = mean / (s / √n) (null when n < 2 or
    s = 0) and ``hit_rate`` = share of r_h > 0; ``difference`` = mean − placebo mean with
    Welch's t-statistic ``difference_t_statistic``.

    Parameters
    ----------
    phased
        Output of :func:`phase_bars`.
    episodes
        Output of :func:`phase_episodes` on the same bars.
    horizons
        Forward horizons h in bars (each ≥ 1).
    placebo_seed
        Seed of the placebo draw (≥ 0).
    placebo_draws
        Number of placebo bars (≥ 1; fewer when fewer bars have a side). metrics.md §12.6
        suggests as many as there are episodes; more give a steadier baseline.

    Returns
    -------
    pl.LazyFrame
        One row per horizon: ``horizon`` (Int64), ``count, mean, t_statistic, hit_rate,
        placebo_count, placebo_mean, placebo_t_statistic, placebo_hit_rate, difference,
        difference_t_statistic``.

    Raises
    ------
    ParameterError
        For an empty or non-positive horizon, a negative seed or fewer than 1 draw.
    SchemaError
        If a required column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 2) + timedelta(minutes=m) for m in range(6)]
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": ts,
    ...         "mid_close": [10.0, 10.0, 10.0, 9.9, 9.8, 9.9],
    ...         "inventory_side": "long",
    ...     }
    ... )
    >>> episodes = pl.LazyFrame(
    ...     {"symbol": ["X"], "phase": ["distribution"], "inventory_side": ["long"], "end": [ts[3]]}
    ... )
    >>> event_study(phased, episodes, horizons=[1, 2]).select(
    ...     "horizon", "count", pl.col("mean").round(5), "hit_rate", "placebo_count"
    ... ).collect()
    shape: (2, 5)
    ┌─────────┬───────┬─────────┬──────────┬───────────────┐
    │ horizon ┆ count ┆ mean    ┆ hit_rate ┆ placebo_count │
    │ ---     ┆ ---   ┆ ---     ┆ ---      ┆ ---           │
    │ i64     ┆ u32   ┆ f64     ┆ f64      ┆ u32           │
    ╞═════════╪═══════╪═════════╪══════════╪═══════════════╡
    │ 1       ┆ 1     ┆ 0.01005 ┆ 1.0      ┆ 5             │
    │ 2       ┆ 1     ┆ 0.0202  ┆ 1.0      ┆ 4             │
    └─────────┴───────┴─────────┴──────────┴───────────────┘
    """
    steps = check_horizons(horizons)
    check_seed(placebo_seed)
    names = _check_study_inputs(phased, episodes, placebo_draws)
    keys = _keys(names)
    side = (
        pl.when(pl.col(INVENTORY_SIDE) == LONG)
        .then(1.0)
        .when(pl.col(INVENTORY_SIDE) == SHORT)
        .then(-1.0)
    )
    price = _price(names, keys)
    bars = phased.with_columns(price.alias(_P)).with_columns(
        side.alias(_SIDE),
        *(
            pl.when((pl.col(_P) > 0) & (pl.col(_P).shift(-h) > 0))
            .then((pl.col(_P).shift(-h) / pl.col(_P)).log())
            .over(keys)
            .alias(f"_ph_r{h}")
            for h in steps
        ),
    )
    returns = [f"_ph_r{h}" for h in steps]
    ids = instrument_keys(names)
    events = _episode_returns(bars, episodes, ids, returns, side)
    placebo = _placebo_returns(bars, ids, returns, placebo_seed, placebo_draws)
    rows = []
    for h, r in zip(steps, returns, strict=True):
        signed = pl.col(r)
        found = events.select(summary_statistics(signed, ""))
        base = placebo.select(summary_statistics(signed, "placebo_"))
        rows.append(
            pl.concat([found, base], how="horizontal").with_columns(pl.lit(h).alias("horizon"))
        )
    out = pl.concat(rows)
    difference = pl.col("mean") - pl.col("placebo_mean")
    return out.select(
        pl.col("horizon").cast(pl.Int64),
        "count",
        "mean",
        "t_statistic",
        "hit_rate",
        "placebo_count",
        "placebo_mean",
        "placebo_t_statistic",
        "placebo_hit_rate",
        difference.alias("difference"),
        welch_t_statistic(
            pl.col("mean"),
            pl.col("_var"),
            pl.col("count"),
            pl.col("placebo_mean"),
            pl.col("_placebo_var"),
            pl.col("placebo_count"),
        ).alias("difference_t_statistic"),
    )


def _check_study_inputs(
    phased: pl.LazyFrame, episodes: pl.LazyFrame, placebo_draws: int
) -> list[str]:
    """Check the placebo draws and the columns of both tables; return the bars' columns."""
    if isinstance(placebo_draws, bool) or not isinstance(placebo_draws, int) or placebo_draws < 1:
        msg = f"placebo_draws must be a whole number >= 1, was {placebo_draws!r}"
        raise ParameterError(msg)
    names = _names(phased)
    require_names(
        names, (SYMBOL, TS, INVENTORY_SIDE), what="phased bars", hint="run phase_bars first"
    )
    if MID_CLOSE not in names and CLOSE not in names:
        msg = f"phased bars need mid_close or close; found {', '.join(names)}"
        raise SchemaError(msg)
    require_names(
        _names(episodes),
        (SYMBOL, PHASE, INVENTORY_SIDE, "end"),
        what="episodes",
        hint="run mmflow.metrics.phase_episodes.phase_episodes first",
    )
    return names


def _episode_returns(
    bars: pl.LazyFrame,
    episodes: pl.LazyFrame,
    ids: list[str],
    returns: list[str],
    side: pl.Expr,
) -> pl.LazyFrame:
    """Forward returns from the last bar of each distribution episode, signed against its side."""
    ends = (
        episodes.filter(pl.col(PHASE) == DISTRIBUTION)
        .select(*ids, pl.col("end").alias(TS), side.alias("_ph_episode_side"))
        .sort(TS)
    )
    grid = bars.select(*ids, TS, *returns).sort(TS)
    ends, grid, by = asof_keys(ends, grid)
    return ends.join_asof(
        grid.drop(*(k for k in ids if k not in by)),
        on=TS,
        by=by,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).select(*((-pl.col("_ph_episode_side") * pl.col(r)).alias(r) for r in returns))


def _placebo_returns(
    bars: pl.LazyFrame, ids: list[str], returns: list[str], seed: int, draws: int
) -> pl.LazyFrame:
    """Signed forward returns of ``draws`` bars picked by a seeded hash (the placebo)."""
    hashed = placebo_hash([*ids, TS], seed)  # no venue: drawn as before venues existed
    return (
        bars.filter(pl.col(_SIDE).is_not_null())
        .with_columns(hashed.alias("_ph_hash"))
        .sort("_ph_hash", *ids, TS, nulls_last=True)
        .head(draws)
        .select(*((-pl.col(_SIDE) * pl.col(r)).alias(r) for r in returns))
    )


def truth_scores(
    phased: pl.LazyFrame, truth: pl.LazyFrame, *, coverage: float = 0.5
) -> pl.LazyFrame:
    """Score detected ``distribution`` bars against simulator truth (metrics.md §12.6 (1)).

    Bars are matched on ``symbol`` and ``ts`` (the truth grid is the reference: a truth bar
    without a phased bar counts as not detected; phased bars outside the truth are ignored).
    With D = labelled ``distribution``, T = true phase ``distribution``:

    * ``precision`` = |D ∩ T| / |D|, ``recall`` = |D ∩ T| / |T| (null when the denominator is 0);
    * a true **episode** is a maximal run of consecutive T bars of a symbol; it is *found* when
      D covers at least ``coverage`` of its bars (§12.6: 50 %) and *overlapped* when D covers
      at least one: ``episode_recall`` = found / episodes, ``episode_overlap_recall`` =
      overlapped / episodes;
    * ``false_positive_rate`` = |D ∩ neutral| / |neutral|, over the bars whose true phase is
      ``neutral`` (all bars of a pure-noise simulation).

    Parameters
    ----------
    phased
        Output of :func:`phase_bars` (``symbol, ts, phase``).
    truth
        ``symbol, ts, phase`` per bar (``mmflow.simulate.Simulation.truth``).
    coverage
        Share of an episode's bars that must be detected for it to count as found, in (0, 1].

    Returns
    -------
    pl.LazyFrame
        One row per symbol (sorted) and a last pooled row with a null ``symbol``: ``symbol,
        bars, truth_bars, detected_bars, true_positives, precision, recall, episodes,
        episodes_found, episode_recall, episodes_overlapped, episode_overlap_recall,
        neutral_bars, false_positives, false_positive_rate``.

    Raises
    ------
    ParameterError
        If ``coverage`` is not in (0, 1].
    SchemaError
        If ``symbol``, ``ts`` or ``phase`` is missing.

    Examples
    --------
    >>> import polars as pl
    >>> truth = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": range(6),
    ...         "phase": [
    ...             "neutral",
    ...             "distribution",
    ...             "distribution",
    ...             "distribution",
    ...             "neutral",
    ...             "neutral",
    ...         ],
    ...     }
    ... )
    >>> phased = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": range(6),
    ...         "phase": [
    ...             "neutral",
    ...             "neutral",
    ...             "distribution",
    ...             "distribution",
    ...             "distribution",
    ...             None,
    ...         ],
    ...     }
    ... )
    >>> truth_scores(phased, truth).select(
    ...     "symbol", "precision", "recall", "episode_recall", "false_positive_rate"
    ... ).with_columns(pl.selectors.float().round(4)).collect()
    shape: (2, 5)
    ┌────────┬───────────┬────────┬────────────────┬─────────────────────┐
    │ symbol ┆ precision ┆ recall ┆ episode_recall ┆ false_positive_rate │
    │ ---    ┆ ---       ┆ ---    ┆ ---            ┆ ---                 │
    │ str    ┆ f64       ┆ f64    ┆ f64            ┆ f64                 │
    ╞════════╪═══════════╪════════╪════════════════╪═════════════════════╡
    │ X      ┆ 0.6667    ┆ 0.6667 ┆ 1.0            ┆ 0.3333              │
    │ null   ┆ 0.6667    ┆ 0.6667 ┆ 1.0            ┆ 0.3333              │
    └────────┴───────────┴────────┴────────────────┴─────────────────────┘
    """
    valid = isinstance(coverage, int | float) and not isinstance(coverage, bool)
    if not valid or not math.isfinite(coverage) or not 0 < coverage <= 1:
        msg = f"coverage must be a share in (0, 1], was {coverage!r}"
        raise ParameterError(msg)
    for frame, what in ((phased, "phased bars"), (truth, "truth")):
        require_names(_names(frame), (SYMBOL, TS, PHASE), what=what, hint="symbol, ts and phase")
    detected = phased.select(
        pl.col(SYMBOL).cast(pl.String),
        TS,
        (pl.col(PHASE) == DISTRIBUTION).fill_null(value=False).alias("_ph_d"),
    )
    rows = (
        truth.select(pl.col(SYMBOL).cast(pl.String), TS, pl.col(PHASE).alias("_ph_truth"))
        .join(detected, on=[SYMBOL, TS], how="left")
        .sort(SYMBOL, TS)
        .with_columns(
            pl.col("_ph_d").fill_null(value=False),
            (pl.col("_ph_truth") == DISTRIBUTION).fill_null(value=False).alias("_ph_t"),
            (pl.col("_ph_truth") == NEUTRAL).fill_null(value=False).alias("_ph_n"),
        )
        .with_columns(pl.col("_ph_t").rle_id().over(SYMBOL).alias("_ph_run"))
    )
    d, t, n = pl.col("_ph_d"), pl.col("_ph_t"), pl.col("_ph_n")
    runs = (
        rows.filter(t)
        .group_by(SYMBOL, "_ph_run")
        .agg(d.mean().alias("_ph_cover"))
        .group_by(SYMBOL)
        .agg(
            pl.len().cast(pl.UInt32).alias("episodes"),
            (pl.col("_ph_cover") >= coverage).sum().cast(pl.UInt32).alias("episodes_found"),
            (pl.col("_ph_cover") > 0).sum().cast(pl.UInt32).alias("episodes_overlapped"),
        )
    )
    counts = rows.group_by(SYMBOL).agg(
        pl.len().cast(pl.UInt32).alias("bars"),
        t.sum().cast(pl.UInt32).alias("truth_bars"),
        d.sum().cast(pl.UInt32).alias("detected_bars"),
        (d & t).sum().cast(pl.UInt32).alias("true_positives"),
        n.sum().cast(pl.UInt32).alias("neutral_bars"),
        (d & n).sum().cast(pl.UInt32).alias("false_positives"),
    )
    per_symbol = (
        counts.join(runs, on=SYMBOL, how="left")
        .with_columns(pl.col("episodes", "episodes_found", "episodes_overlapped").fill_null(0))
        .sort(SYMBOL)
    )
    totals = per_symbol.select(
        pl.lit(None, pl.String).alias(SYMBOL),
        pl.exclude(SYMBOL).sum(),
    )

    def ratio(top: str, bottom: str) -> pl.Expr:
        return pl.when(pl.col(bottom) > 0).then(pl.col(top) / pl.col(bottom))

    return pl.concat([per_symbol, totals]).select(
        SYMBOL,
        "bars",
        "truth_bars",
        "detected_bars",
        "true_positives",
        ratio("true_positives", "detected_bars").alias("precision"),
        ratio("true_positives", "truth_bars").alias("recall"),
        "episodes",
        "episodes_found",
        ratio("episodes_found", "episodes").alias("episode_recall"),
        "episodes_overlapped",
        ratio("episodes_overlapped", "episodes").alias("episode_overlap_recall"),
        "neutral_bars",
        "false_positives",
        ratio("false_positives", "neutral_bars").alias("false_positive_rate"),
    )
