"""Train and score the distribution detector across simulator families and regimes (not a test).

Two steps, with the split between them written down here before any held-out cell was run:

* ``--train``: simulate every **tuning** cell (both families × :data:`TUNING_REGIMES`) on
  :data:`TUNING_SEEDS`, compute the detector's unit-free features for both orientations of
  every bar (:func:`mmflow.metrics.phase_model.oriented`), fit the logistic model (Newton
  iterations, small ridge penalty; deterministic) to "this bar is a true distribution bar of
  this side", then set the evidence threshold ``evidence`` from the same cells **without episodes**:
  the smallest value on a grid for which the worst tuning cell flags at most
  :data:`NOISE_TARGET` / :data:`SAFETY` of its noise bars (held-out noise rates ran 1.3-1.5×
  tuning before the build-speed model; its held-out worst cell ran 2.8× its tuning worst
  cell, ``docs/phases.md``). This is the build-speed recipe: it writes the shipped
  ``mmflow/metrics/phase_model.json`` (or ``--output``).
* ``--train --noise-trained --output PATH``: the noise-trained recipe, kept reproducible but
  not shipped (``docs/phases.md``, "Decision"): the tuning cells plus
  :data:`ADDED_TUNING_REGIMES` on :data:`ADDED_TUNING_SEEDS`, the episode-free markets of
  every tuning regime on :data:`NOISE_TRAINING_SEEDS` as negative rows, and the worst-cell
  margin :data:`NOISE_TRAINED_SAFETY`. Writes ``PATH`` only, never the shipped file.
* default: score the shipped model on the **held-out** cells (both families ×
  :data:`HELD_OUT_REGIMES`, regime settings not used in training) on :data:`HELD_OUT_SEEDS`:
  bar precision, recall, F1, episode recall (≥ 50 % covered) and the share of bars flagged on
  the same cell without episodes; then episode recall by detectability (unload strength
  U / (σ₁·√d), U the true unload, d its bars, σ₁ the flow noise per bar, and the same divided by
  the detector's drift ratio r). ``--tuning`` scores the tuning cells instead (with
  ``--noise-trained``, the noise-trained recipe's fourteen tuning regimes); ``--second``,
  ``--third``, ``--fourth``, ``--fifth`` and ``--sixth`` score the later held-out sets (each
  written into this file before it was first run; the fourth one before the drift-robust
  revision was designed, the fifth before the build-speed revision's first experiment, the
  sixth before the multi-horizon / noise-trained revision's first experiment). ``--model
  PATH`` scores a model file (e.g. the noise-trained one) instead of the shipped one.

Usage::

    python benchmarks/phase_robustness.py --train      # fit on tuning cells, write the model
    python benchmarks/phase_robustness.py              # held-out table (README)
    python benchmarks/phase_robustness.py --tuning     # tuning table
    python benchmarks/phase_robustness.py --fourth     # the drift-robust revision's held-out set
    python benchmarks/phase_robustness.py --train --noise-trained --output /tmp/noise.json
    python benchmarks/phase_robustness.py --sixth --model /tmp/noise.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mmflow.analysis import BarOptions, market_bars
from mmflow.metrics import phase_model
from mmflow.metrics.phase_evaluation import truth_scores
from mmflow.metrics.phases import PhaseParameters, phase_bars
from mmflow.simulate import SimulationParameters, simulate

FAMILIES = ("inventory", "hawkes")
TUNING_SEEDS = (0, 1, 2)
HELD_OUT_SEEDS = (1000, 1001, 1002)
NOISE_TARGET = 0.02
SAFETY = 2.0
"""Noise safety margin of the shipped (build-speed) recipe: the worst tuning cell without
episodes may flag at most NOISE_TARGET / SAFETY of its bars."""
NOISE_TRAINED_SAFETY = 2.8
"""The noise-trained recipe's margin: 2.8 is the measured ratio of the held-out worst cell to
the tuning worst cell of the build-speed model (2.22 % against 0.80 %; ``docs/phases.md``)."""

TUNING_REGIMES: dict[str, dict[str, Any]] = {
    "base": {},
    "weak-slow": {
        "accumulation_intensity": 0.2,
        "accumulation_bars": (30, 60),
        "distribution_bars": (30, 60),
        "episodes_per_day": 5.0,
    },
    "tails-clustered": {"size_tail": 3.0, "clustering": 0.5},
    "drift-hold-overshoot": {"proxy_drift": 0.5, "hold_bars": (3, 10), "overshoot": 0.3},
    "thin": {"trades_per_hour": 600.0},
    "spreads-reverting": {
        "spread_variability": 0.3,
        "distribution_spread": 0.5,
        "inventory_reversion": 0.1,
    },
    "drift-tails": {"proxy_drift": 0.8, "size_tail": 3.0, "clustering": 0.3},
    "drift-strong": {"proxy_drift": 1.3, "hold_bars": (2, 8)},
}
"""Regimes used to design and fit the detector (the two drift regimes were added by the
drift-robust revision, before it was designed; the fourth held-out set was written first)."""

ADDED_TUNING_SEEDS = (20, 21, 22)
ADDED_TUNING_REGIMES: dict[str, dict[str, Any]] = {
    "drift-hold-long": {"proxy_drift": 0.95, "hold_bars": (3, 11)},
    "drift-thin": {"proxy_drift": 0.8, "trades_per_hour": 700.0},
    "thin-moderate": {"trades_per_hour": 450.0, "accumulation_intensity": 0.45},
    "weak-slower-tuning": {
        "accumulation_intensity": 0.17,
        "accumulation_bars": (35, 65),
        "distribution_bars": (35, 65),
        "episodes_per_day": 5.0,
    },
    "tails-bursty": {"size_tail": 2.6, "clustering": 0.75},
    "drift-clustered-tuning": {"proxy_drift": 0.65, "clustering": 0.25},
}
"""Tuning regimes added by the noise-trained recipe (after the sixth held-out set was
written; not used by the shipped model), on their own tuning seeds: the kinds of market the
earlier held-out sets found hard (proxy drift >= 0.8 with holds or thin flow, 400-800 trades
an hour, weak slow episodes, heavy tails with clustering, drift with clustering), with
settings used in no held-out set."""

NOISE_TRAINING_SEEDS = (30, 31, 32)
"""Seeds of the episode-free markets of every tuning regime the noise-trained recipe adds to
the training rows (all labelled "not distribution"); the evidence threshold is set on the
episode-free twins of the tuning seeds instead, so it is not set on the markets the model was
fitted to."""


def tuning_cells() -> list[tuple[str, dict[str, Any], tuple[int, ...]]]:
    """Every tuning regime of the noise-trained recipe with its seeds."""
    return [(name, regime, TUNING_SEEDS) for name, regime in TUNING_REGIMES.items()] + [
        (name, regime, ADDED_TUNING_SEEDS) for name, regime in ADDED_TUNING_REGIMES.items()
    ]


HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "moderate-hold": {"accumulation_intensity": 0.3, "hold_bars": (2, 6)},
    "weaker-slower": {
        "accumulation_intensity": 0.15,
        "accumulation_bars": (40, 70),
        "distribution_bars": (40, 70),
        "episodes_per_day": 5.0,
    },
    "heavier-tails": {"size_tail": 2.5, "clustering": 0.8},
    "strong-drift": {"proxy_drift": 1.0, "hold_bars": (5, 15), "overshoot": 0.5},
    "very-thin": {"trades_per_hour": 400.0, "accumulation_intensity": 0.5},
    "everything": {
        "size_tail": 4.0,
        "clustering": 0.4,
        "proxy_drift": 0.5,
        "hold_bars": (2, 8),
        "spread_variability": 0.4,
        "distribution_spread": 1.0,
        "inventory_reversion": 0.02,
    },
}
"""Regimes never used while designing or fitting (written down before they were run)."""

SECOND_HELD_OUT_SEEDS = (2000, 2001, 2002)
SECOND_HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "mid-strength-hold": {"accumulation_intensity": 0.25, "hold_bars": (4, 12)},
    "slow-unload": {
        "accumulation_bars": (20, 40),
        "distribution_bars": (50, 80),
        "episodes_per_day": 5.0,
    },
    "tails-drift": {"size_tail": 3.5, "proxy_drift": 0.7},
    "thin-strong": {"trades_per_hour": 900.0, "accumulation_intensity": 0.6},
    "wide-spreads": {"spread_variability": 0.6, "distribution_spread": 0.3, "clustering": 0.3},
    "sticky-maker": {"inventory_reversion": 0.01, "overshoot": 0.2, "hold_bars": (1, 4)},
}
"""A second held-out set, written down after the first held-out table had been seen (see
``docs/phases.md``); the shipped model of that time was scored on it once."""

THIRD_HELD_OUT_SEEDS = (3000, 3001, 3002)
THIRD_HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "moderate-tails": {"accumulation_intensity": 0.35, "hold_bars": (3, 8), "size_tail": 5.0},
    "drift-clustered": {"proxy_drift": 0.6, "clustering": 0.2},
    "thinner": {"trades_per_hour": 1200.0, "accumulation_intensity": 0.35},
    "slow-hold": {
        "accumulation_bars": (30, 50),
        "distribution_bars": (35, 55),
        "episodes_per_day": 5.0,
        "hold_bars": (0, 5),
    },
    "spreads-tails": {"size_tail": 3.0, "spread_variability": 0.5, "distribution_spread": 0.8},
    "drift-overshoot": {"proxy_drift": 0.9, "overshoot": 0.3},
}
"""A third held-out set, written down after the second table had been seen and before a
revision was tried (more tuning regimes, including proxy drift 0.8). The revision was dropped
(no evidence threshold kept its episode-free drift cell under 2 %), so the model scored here is
the one of the first two tables."""

FOURTH_HELD_OUT_SEEDS = (5000, 5001, 5002)
FOURTH_HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "drift-hold": {"proxy_drift": 0.8, "hold_bars": (3, 12), "accumulation_intensity": 0.3},
    "hard-drift-tails": {"proxy_drift": 1.2, "size_tail": 3.5, "clustering": 0.3},
    "weak-long": {
        "accumulation_intensity": 0.25,
        "accumulation_bars": (30, 55),
        "distribution_bars": (30, 55),
        "episodes_per_day": 5.0,
    },
    "thin-drift": {"trades_per_hour": 1000.0, "proxy_drift": 0.6},
    "spreads-overshoot": {
        "spread_variability": 0.5,
        "distribution_spread": 0.6,
        "overshoot": 0.4,
        "inventory_reversion": 0.03,
    },
    "clustered-sticky": {
        "clustering": 0.6,
        "inventory_reversion": 0.02,
        "hold_bars": (1, 6),
        "size_tail": 6.0,
    },
}
"""The held-out set of the drift-robust revision (issue 10 gap): new seeds and new regime
settings, written down here before the revision was designed or any of these cells was run.
The first three held-out sets had been seen by then; the revision is tuned on the tuning cells
only and scored on this set once."""

FIFTH_HELD_OUT_SEEDS = (7000, 7001, 7002)
FIFTH_HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "drift-weak-hold": {"proxy_drift": 0.7, "accumulation_intensity": 0.3, "hold_bars": (2, 6)},
    "thin-tails": {"trades_per_hour": 800.0, "size_tail": 4.0, "accumulation_intensity": 0.45},
    "weak-clustered": {
        "accumulation_intensity": 0.2,
        "clustering": 0.5,
        "accumulation_bars": (25, 50),
        "distribution_bars": (25, 50),
    },
    "mild-drift-spreads": {
        "proxy_drift": 0.4,
        "spread_variability": 0.4,
        "distribution_spread": 0.7,
        "hold_bars": (1, 5),
    },
    "long-hold-overshoot": {
        "hold_bars": (5, 15),
        "overshoot": 0.3,
        "inventory_reversion": 0.02,
        "excitation": 0.6,
        "market_makers": 4,
    },
    "busy-drift-tails": {"trades_per_hour": 7200.0, "proxy_drift": 1.1, "size_tail": 3.0},
}
"""The held-out set of the build-speed revision (issue 10, detector recall on drifting, thin
and weak markets; opened as the price-response revision): new seeds and regime settings
spanning drift, thin flow, weak episodes, tails, holds and spreads, written down here before
any experiment of that revision and run once, after its final model was fixed."""

SIXTH_HELD_OUT_SEEDS = (9000, 9001, 9002)
SIXTH_HELD_OUT_REGIMES: dict[str, dict[str, Any]] = {
    "drift-hold-busy": {"proxy_drift": 0.85, "hold_bars": (4, 9), "trades_per_hour": 1500.0},
    "weak-slow-long": {
        "accumulation_intensity": 0.22,
        "accumulation_bars": (35, 65),
        "distribution_bars": (35, 65),
        "episodes_per_day": 4.5,
    },
    "tails-bursts": {"size_tail": 2.8, "clustering": 0.7},
    "thin-firm": {"trades_per_hour": 500.0, "accumulation_intensity": 0.55},
    "spreads-overshoot-drift": {
        "spread_variability": 0.45,
        "distribution_spread": 0.9,
        "overshoot": 0.35,
        "proxy_drift": 0.45,
    },
    "sticky-crowded": {
        "inventory_reversion": 0.015,
        "excitation": 0.7,
        "market_makers": 5,
        "hold_bars": (2, 7),
        "size_tail": 4.5,
    },
}
"""The held-out set of the multi-horizon revision (issue 10: episode recall and worst-cell
noise on every held-out set): new seeds and regime settings never used in any earlier set,
spanning drift with holds, thin flow, weak slow episodes, heavy tails with clustering,
spreads, overshoot and a crowded, sticky market; written down here before any experiment of
that revision and run once, after its final model was fixed. (Multi-horizon features were
tried and not kept; the noise-trained model was scored on it and not shipped either: the
build-speed model scores better on it, ``docs/phases.md``.)"""

MODEL_PATH = Path(__file__).resolve().parent.parent / "mmflow" / "metrics" / "phase_model.json"


def market(family: str, regime: dict[str, Any], seed: int, *, episodes: bool = True) -> Any:
    """Simulate one cell and seed (two symbols, 24 hours of 1-minute bars)."""
    values = {"seed": seed, "family": family, **regime}
    if not episodes:
        values["episodes_per_day"] = 0.0
    return simulate(SimulationParameters(**values))


def bars_of(sim: Any) -> pl.DataFrame:
    """1-minute market bars of a simulation (true sides)."""
    return market_bars(
        sim.trades.lazy(), sim.quotes.lazy(), options=BarOptions(every=sim.parameters.bar)
    ).bars.collect()


def training_rows(sim: Any, parameters: PhaseParameters) -> tuple[np.ndarray, np.ndarray]:
    """Features of both orientations of every warm bar, with their truth labels."""
    from mmflow.metrics import phases

    bars = bars_of(sim)
    names = bars.columns
    keys = ["symbol"]
    lf = bars.lazy()
    if "mm_inventory" not in names:
        lf = lf.with_columns((-pl.col("net_flow").cum_sum().over(keys)).alias("mm_inventory"))
    from mmflow.metrics.impact import KYLE_LAMBDA, kyle_lambda

    lf = kyle_lambda(lf, window=parameters.lookback, price=pl.col("mid_close"), flow="net_flow")
    lf = lf.rename({KYLE_LAMBDA: phases.ABSORPTION_LAMBDA})
    prepared = phases._prepared(lf, names, keys, parameters).collect()
    truth = sim.truth.select(
        "symbol", pl.col("ts").cast(prepared["ts"].dtype), "phase", "inventory_side"
    )
    prepared = prepared.join(truth, on=["symbol", "ts"], how="left")
    features, labels = [], []
    for _, series in prepared.group_by("symbol"):
        series = series.sort("_ph_idx")
        sigma = series["flow_scale"].fill_null(float("nan")).to_numpy()
        price = series["_ph_price"].fill_null(float("nan")).to_numpy()
        path, _, warm = phase_model.detector_path(
            -series["_ph_flow"].to_numpy(), sigma, parameters.lookback
        )
        price_sd = series["_ph_price_sd"].fill_null(float("nan")).to_numpy()
        distribution = (series["phase"] == "distribution").fill_null(value=False).to_numpy()
        side = series["inventory_side"].fill_null("").to_numpy()
        for s, name in ((1, "long"), (-1, "short")):
            o = phase_model.oriented(
                path,
                price,
                price_sd,
                side=s,
                memory=parameters.baseline,
                recent_bars=parameters.recent_bars,
                window=parameters.window,
            )
            features.append(o.features[warm])
            labels.append((distribution & (side == name))[warm])
    return np.vstack(features), np.concatenate(labels).astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Ridge-penalised logistic regression by Newton's method (deterministic)."""
    design = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(design.shape[1])
    penalty = ridge * len(x) * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -50, 50)))
        gradient = design.T @ (y - p) - penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def flagged_share(cells: list[list[pl.DataFrame]], parameters: PhaseParameters) -> float:
    """Worst cell's share of warm bars labelled distribution on episode-free simulations."""
    worst = 0.0
    for frames in cells:
        flagged = total = 0
        for bars in frames:
            phased = phase_bars(bars.lazy(), parameters=parameters).collect()
            warm = phased.filter(pl.col("phase").is_not_null())
            total += warm.height
            flagged += int((warm["phase"] == "distribution").sum())
        worst = max(worst, flagged / max(total, 1))
    return worst


def use_model(values: dict[str, Any]) -> None:
    """Make the detector use the model ``values`` (in this process) instead of the shipped one."""
    candidate = phase_model.Model(
        intercept=float(values["intercept"]),
        coefficients=tuple(float(c) for c in values["coefficients"]),
        mean=tuple(float(c) for c in values["mean"]),
        scale=tuple(float(c) for c in values["scale"]),
        evidence=float(values["evidence"]),
    )
    phase_model.model = lambda: candidate  # type: ignore[assignment]


def train(*, noise_trained: bool, output: Path) -> None:
    """Fit the model on the tuning cells and set ``evidence`` from their episode-free twins.

    The build-speed recipe (shipped) by default; ``noise_trained`` adds the added tuning
    regimes, the episode-free training rows and the larger safety margin. Writes ``output``.
    """
    parameters = PhaseParameters()
    cells = (
        tuning_cells()
        if noise_trained
        else [(name, regime, TUNING_SEEDS) for name, regime in TUNING_REGIMES.items()]
    )
    xs, ys = [], []
    noise: list[list[pl.DataFrame]] = []
    for family in FAMILIES:
        for _, regime, seeds in cells:
            noise.append([])
            for seed in seeds:
                x, y = training_rows(market(family, regime, seed), parameters)
                xs.append(x)
                ys.append(y)
                noise[-1].append(bars_of(market(family, regime, seed, episodes=False)))
            for seed in NOISE_TRAINING_SEEDS if noise_trained else ():
                x, y = training_rows(market(family, regime, seed, episodes=False), parameters)
                xs.append(x)
                ys.append(y)
    x, y = np.vstack(xs), np.concatenate(ys)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    beta = fit_logistic(phase_model.design(x, mean, scale), y)
    print(f"{len(y):,} rows, {int(y.sum()):,} positive; {len(beta)} coefficients")
    trained_on: dict[str, Any] = {
        "families": list(FAMILIES),
        "regimes": TUNING_REGIMES,
        "seeds": list(TUNING_SEEDS),
    }
    if noise_trained:
        trained_on |= {
            "added_regimes": ADDED_TUNING_REGIMES,
            "added_seeds": list(ADDED_TUNING_SEEDS),
            "episode_free_seeds": list(NOISE_TRAINING_SEEDS),
            "safety": NOISE_TRAINED_SAFETY,
        }
    values: dict[str, Any] = {
        "features": list(phase_model.FEATURES),
        "intercept": round(float(beta[0]), 6),
        "coefficients": [round(float(b), 6) for b in beta[1:]],
        "mean": [round(float(v), 6) for v in mean],
        "scale": [round(float(v), 6) for v in scale],
        "evidence": 0.0,
        "trained_on": trained_on,
    }
    limit = NOISE_TARGET / (NOISE_TRAINED_SAFETY if noise_trained else SAFETY)
    for evidence in np.round(np.arange(1.0, 30.01, 1.0), 1):
        values["evidence"] = float(evidence)
        use_model(values)
        share = flagged_share(noise, parameters)
        print(f"evidence {evidence:.1f}: worst tuning cell flags {share:.2%} of noise bars")
        if share <= limit:
            break
    output.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output} (evidence = {values['evidence']})")


def score_cell(
    family: str, regime: dict[str, Any], seeds: tuple[int, ...], parameters: PhaseParameters
) -> tuple[dict[str, float], list[tuple[float, float, bool]]]:
    """Pooled scores of one cell and, per true episode, (detectability, found)."""
    tp = detected = truth_bars = episodes = found = 0
    noise_flagged = noise_total = 0
    strength: list[tuple[float, float, bool]] = []
    for seed in seeds:
        sim = market(family, regime, seed)
        bars = bars_of(sim)
        phased = phase_bars(bars.lazy(), parameters=parameters).collect()
        row = (
            truth_scores(phased.lazy(), sim.truth.lazy())
            .filter(pl.col("symbol").is_null())
            .collect()
            .row(0, named=True)
        )
        tp += row["true_positives"]
        detected += row["detected_bars"]
        truth_bars += row["truth_bars"]
        episodes += row["episodes"]
        found += row["episodes_found"]
        strength += detectability(sim, phased)
        CALIBRATION.append(calibration_pairs(sim, phased))
        quiet = phase_bars(
            bars_of(market(family, regime, seed, episodes=False)).lazy(), parameters=parameters
        ).collect()
        warm = quiet.filter(pl.col("phase").is_not_null())
        noise_total += warm.height
        noise_flagged += int((warm["phase"] == "distribution").sum())
    precision = tp / detected if detected else float("nan")
    recall = tp / truth_bars if truth_bars else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "episode_recall": found / episodes if episodes else float("nan"),
        "noise_flagged": noise_flagged / max(noise_total, 1),
    }, strength


CALIBRATION: list[pl.DataFrame] = []


def calibration_pairs(sim: Any, phased: pl.DataFrame) -> pl.DataFrame:
    """Per warm bar: ``distribution_score`` and whether the bar is a true distribution bar of
    the side the score is for."""
    truth = sim.truth.select(
        "symbol",
        pl.col("ts").cast(phased["ts"].dtype),
        pl.col("phase").alias("_truth"),
        pl.col("inventory_side").alias("_side"),
    )
    return (
        phased.select("symbol", "ts", "distribution_score", "inventory_side")
        .join(truth, on=["symbol", "ts"], how="left")
        .filter(pl.col("distribution_score").is_not_null())
        .select(
            "distribution_score",
            ((pl.col("_truth") == "distribution") & (pl.col("_side") == pl.col("inventory_side")))
            .fill_null(value=False)
            .alias("hit"),
        )
    )


def drift_ratios(phased: pl.DataFrame, lookback: int) -> pl.DataFrame:
    """Per symbol and bar, the detector's drift ratio r (as in ``phase_bars``)."""
    frames = []
    for (symbol,), series in phased.sort("symbol", "ts").group_by("symbol", maintain_order=True):
        sigma = series["flow_scale"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        flow = series["net_flow"].cast(pl.Float64).fill_null(0.0).to_numpy()
        warm = np.isfinite(sigma) & (sigma > 0)
        path = phase_model.normalised_path(-flow, sigma)
        ratio = phase_model.drift_ratio(path, warm, lookback)
        frames.append(
            pl.DataFrame({"symbol": symbol, "ts": series["ts"], "_r": ratio}).with_columns(
                pl.col("_r").fill_nan(None)
            )
        )
    return pl.concat(frames)


def detectability(sim: Any, phased: pl.DataFrame) -> list[tuple[float, float, bool]]:
    """Per true distribution run: (U / (σ₁·√d), U / (σ₁·r·√d), ≥ 50 % of it detected).

    U is the true unload, d the run's bars, σ₁ and r the median flow scale and drift ratio over
    the run: the second is the strength in the units the detector works in.
    """
    truth = sim.truth.with_columns(pl.col("ts").cast(phased["ts"].dtype))
    detected = phased.select("symbol", "ts", "phase", "flow_scale").rename({"phase": "detected"})
    detected = detected.join(
        drift_ratios(phased, PhaseParameters().lookback), on=["symbol", "ts"], how="left"
    )
    rows = truth.join(detected, on=["symbol", "ts"], how="left").sort("symbol", "ts")
    rows = rows.with_columns(
        (pl.col("phase") == "distribution").alias("_t"),
        (pl.col("detected") == "distribution").fill_null(value=False).alias("_d"),
        pl.col("mm_inventory").shift(1).over("symbol").alias("_before"),
    ).with_columns(pl.col("_t").rle_id().over("symbol").alias("_run"))
    runs = (
        rows.filter(pl.col("_t"))
        .group_by("symbol", "_run")
        .agg(
            pl.len().alias("bars"),
            pl.col("_d").mean().alias("cover"),
            (pl.col("_before").first().abs() - pl.col("mm_inventory").last().abs()).alias("u"),
            pl.col("flow_scale").median().alias("sigma"),
            pl.col("_r").median().fill_null(1.0).alias("ratio"),
        )
    )
    out = []
    for bars, cover, unloaded, sigma, ratio in runs.select(
        "bars", "cover", "u", "sigma", "ratio"
    ).rows():
        if sigma and sigma > 0:
            raw = float(unloaded) / (sigma * math.sqrt(bars))
            out.append((raw, raw / ratio, cover >= 0.5))
    return out


def table(
    regimes: dict[str, dict[str, Any]],
    seeds: tuple[int, ...],
    parameters: PhaseParameters | None = None,
    *,
    cells: list[tuple[str, dict[str, Any], tuple[int, ...]]] | None = None,
) -> None:
    """Print the markdown table of every family × regime cell, then the detectability bins.

    ``cells`` (name, regime, seeds), when given, replaces ``regimes`` × ``seeds``.
    """
    parameters = parameters or PhaseParameters()
    chosen_cells = cells or [(name, regime, seeds) for name, regime in regimes.items()]
    print("| family | regime | precision | recall | F1 | episode recall | noise bars flagged |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    strength: list[tuple[float, float, bool]] = []
    for family in FAMILIES:
        for name, regime, cell_seeds in chosen_cells:
            scores, found = score_cell(family, regime, cell_seeds, parameters)
            strength += found
            rows.append(scores)
            print(
                f"| {family} | {name} | {scores['precision']:.3f} | {scores['recall']:.3f} | "
                f"{scores['f1']:.3f} | {scores['episode_recall']:.3f} | "
                f"{scores['noise_flagged']:.2%} |",
                flush=True,
            )
    means = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
    print(
        f"| **mean** | | {means['precision']:.3f} | {means['recall']:.3f} | {means['f1']:.3f} | "
        f"{means['episode_recall']:.3f} | {means['noise_flagged']:.2%} |"
    )
    print()
    print("| distribution_score | bars | mean score | observed share of distribution bars |")
    print("|---|---|---|---|")
    pairs = pl.concat(CALIBRATION)
    CALIBRATION.clear()
    bins = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0001]
    for low, high in itertools.pairwise(bins):
        chosen = pairs.filter(
            (pl.col("distribution_score") >= low) & (pl.col("distribution_score") < high)
        )
        if chosen.height:
            score = float(chosen["distribution_score"].mean())  # type: ignore[arg-type]
            hits = float(chosen["hit"].cast(pl.Float64).mean())  # type: ignore[arg-type]
            print(
                f"| {low:.2f}–{min(high, 1.0):.2f} | {chosen.height:,} | {score:.3f} | {hits:.3f} |"
            )
    edges = [0, 1, 2, 3, 4, 6, 8, 12, math.inf]
    for column, title in ((0, "U/(σ₁·√d)"), (1, "U/(σ₁·r·√d), drift-adjusted")):
        print()
        print(f"| unload strength {title} | episodes | episode recall |")
        print("|---|---|---|")
        for low, high in itertools.pairwise(edges):
            inside = [row[2] for row in strength if low <= row[column] < high]
            if inside:
                print(f"| {low}–{high} | {len(inside)} | {sum(inside) / len(inside):.3f} |")


def same_file(path: Path) -> bool:
    """Whether ``path`` names the shipped model file (however it is spelled)."""
    return path.resolve() == MODEL_PATH.resolve()


def main() -> None:
    """Train, or print the held-out (or tuning) table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="fit on the tuning cells")
    parser.add_argument(
        "--noise-trained",
        action="store_true",
        help="with --train (needs --output) or --tuning: the noise-trained recipe (not shipped)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="with --train: where to write the model (default: the shipped file; build-speed only)",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="score this model file instead of the shipped one"
    )
    parser.add_argument("--tuning", action="store_true", help="score the tuning cells")
    parser.add_argument("--second", action="store_true", help="score the second held-out set")
    parser.add_argument("--third", action="store_true", help="score the third held-out set")
    parser.add_argument(
        "--fourth",
        action="store_true",
        help="score the fourth held-out set (drift-robust revision)",
    )
    parser.add_argument(
        "--fifth",
        action="store_true",
        help="score the fifth held-out set (build-speed revision)",
    )
    parser.add_argument(
        "--sixth",
        action="store_true",
        help="score the sixth held-out set (multi-horizon / noise-trained revision)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PhaseParameters value to try (tuning cells only)",
    )
    args = parser.parse_args()
    changes: dict[str, Any] = {
        k: float(v) if "." in v else int(v) for k, v in (a.split("=") for a in args.set)
    }
    if args.train and args.noise_trained and (args.output is None or same_file(args.output)):
        parser.error("--train --noise-trained needs --output PATH (not the shipped model file)")
    if args.model is not None:
        use_model(json.loads(args.model.read_text(encoding="utf-8")))
    started = time.perf_counter()
    if args.train:
        train(noise_trained=args.noise_trained, output=args.output or MODEL_PATH)
    elif args.sixth:
        table(SIXTH_HELD_OUT_REGIMES, SIXTH_HELD_OUT_SEEDS)
    elif args.fifth:
        table(FIFTH_HELD_OUT_REGIMES, FIFTH_HELD_OUT_SEEDS)
    elif args.fourth:
        table(FOURTH_HELD_OUT_REGIMES, FOURTH_HELD_OUT_SEEDS)
    elif args.third:
        table(THIRD_HELD_OUT_REGIMES, THIRD_HELD_OUT_SEEDS)
    elif args.second:
        table(SECOND_HELD_OUT_REGIMES, SECOND_HELD_OUT_SEEDS)
    elif args.tuning or changes:
        cells = tuning_cells() if args.noise_trained else None
        table(TUNING_REGIMES, TUNING_SEEDS, PhaseParameters(**changes), cells=cells)
    else:
        table(HELD_OUT_REGIMES, HELD_OUT_SEEDS)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
