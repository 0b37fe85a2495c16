"""Model variants of the distribution detector on the tuning cells (experiments; not a test).

The noise-trained revision's record in ``docs/phases.md`` (step 4's table) was measured with
this lean scorer: it simulates every tuning cell of ``benchmarks/phase_robustness.py`` once,
keeps the detector's per-bar inputs in memory, and then fits, thresholds and scores each
variant in numpy (:func:`mmflow.metrics.phase_model.detect`'s conditions, CUSUM and state
machine), so a variant takes seconds instead of a full ``--train`` run. For the shipped model
it reproduces the script's ``--tuning`` table exactly. Tuning cells only: it never touches a
held-out set.

Each variant gets the evidence threshold of the worst-cell rule for a safety margin of 2 and of
2.8 (every tuning cell without episodes flags at most 2 % / margin of its bars) and prints the
mean F1 and episode recall over the tuning cells at that threshold.

Usage::

    python benchmarks/phase_experiments.py shipped refit noise noise-240 trees
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

import phase_robustness as robustness

from mmflow.metrics import phase_model, phases
from mmflow.metrics.impact import KYLE_LAMBDA, kyle_lambda
from mmflow.metrics.phases import PhaseParameters

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
PARAMETERS = PhaseParameters()
LONG_FEATURES = ("rise_z", "draw_z", "log_built", "rise_rate", "give_back")


@dataclass
class Series:
    """One symbol-day: warm bars, truth, and per side (peak, trough, features)."""

    warm: Bools
    distribution: Bools
    side: npt.NDArray[np.int8]
    sides: list[tuple[phase_model.Oriented, Floats]]


def inputs(sim: Any) -> list[dict[str, Any]]:
    """Per symbol: ΔI, σ₁, price, σ_P and the truth of a simulation (as ``phase_bars``)."""
    bars = robustness.bars_of(sim)
    lf = bars.lazy()
    if "mm_inventory" not in bars.columns:
        lf = lf.with_columns((-pl.col("net_flow").cum_sum().over("symbol")).alias("mm_inventory"))
    lf = kyle_lambda(lf, window=PARAMETERS.lookback, price=pl.col("mid_close"), flow="net_flow")
    lf = lf.rename({KYLE_LAMBDA: phases.ABSORPTION_LAMBDA})
    prepared = phases._prepared(lf, bars.columns, ["symbol"], PARAMETERS).collect()
    truth = sim.truth.select(
        "symbol", pl.col("ts").cast(prepared["ts"].dtype), "phase", "inventory_side"
    )
    prepared = prepared.join(truth, on=["symbol", "ts"], how="left")
    out = []
    for _, s in prepared.sort("symbol").group_by("symbol", maintain_order=True):
        s = s.sort("_ph_idx")
        side = s["inventory_side"].fill_null("").to_numpy()
        out.append(
            {
                "change": -s["_ph_flow"].cast(pl.Float64).to_numpy(),
                "sigma": s["flow_scale"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                "price": s["_ph_price"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                "price_sd": s["_ph_price_sd"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                "distribution": (s["phase"] == "distribution").fill_null(value=False).to_numpy(),
                "side": np.where(side == "long", 1, np.where(side == "short", -1, 0)).astype(
                    np.int8
                ),
            }
        )
    return out


def long_features(x: Floats, memory: int) -> Floats:
    """:data:`LONG_FEATURES` of one orientation over a ``memory``-bar baseline."""
    peak, trough = phase_model._extremes(x, memory)
    k = np.arange(x.size)
    rise = x[peak] - x[trough]
    built = np.maximum(peak - trough, 1).astype(np.float64)
    since = np.maximum(k - peak, 1).astype(np.float64)
    draw = x[peak] - x
    return np.column_stack(
        [
            np.clip(rise / np.sqrt(built), 0, 12),
            np.clip(draw / np.sqrt(since), -6, 12),
            np.clip(np.log(built), 0, 6),
            np.clip(rise / built, 0, 4),
            np.clip(draw / np.maximum(rise, 1.0), -1, 2),
        ]
    )


def series(raw: dict[str, Any], memories: tuple[int, ...]) -> Series:
    """Detector path, warm bars and features of both sides (plus long-baseline features)."""
    path, _, warm = phase_model.detector_path(raw["change"], raw["sigma"], PARAMETERS.lookback)
    sides = []
    for side in (1, -1):
        oriented = phase_model.oriented(
            path,
            raw["price"],
            raw["price_sd"],
            side=side,
            memory=PARAMETERS.baseline,
            recent_bars=PARAMETERS.recent_bars,
            window=PARAMETERS.window,
        )
        features = oriented.features
        for memory in memories:
            features = np.column_stack([features, long_features(side * path, memory)])
        sides.append((oriented, features))
    return Series(warm, raw["distribution"], raw["side"], sides)


Cell = tuple[str, str]
Data = dict[tuple[str, str, str], list[dict[str, Any]]]


def simulate_cells() -> tuple[list[Cell], Data]:
    """Every tuning cell's markets with episodes, their twins without, and training twins."""
    cells: list[Cell] = []
    data: Data = {}
    for family in robustness.FAMILIES:
        for name, regime, seeds in robustness.tuning_cells():
            cells.append((family, name))
            for kind, chosen, episodes in (
                ("episodes", seeds, True),
                ("quiet", seeds, False),
                ("training-quiet", robustness.NOISE_TRAINING_SEEDS, False),
            ):
                data[(family, name, kind)] = [
                    raw
                    for seed in chosen
                    for raw in inputs(robustness.market(family, regime, seed, episodes=episodes))
                ]
    return cells, data


def training_set(
    cells: list[Cell], prepared: dict[tuple[str, str, str], list[Series]], quiet_weight: float
) -> tuple[Floats, Floats, Floats]:
    """Rows (both sides of every warm bar), labels and weights."""
    xs, ys, ws = [], [], []
    kinds = [("episodes", 1.0)] + ([("training-quiet", quiet_weight)] if quiet_weight else [])
    for family, name in cells:
        for kind, weight in kinds:
            for one in prepared[(family, name, kind)]:
                for (_, features), side in zip(one.sides, (1, -1), strict=True):
                    xs.append(features[one.warm])
                    ys.append((one.distribution & (one.side == side))[one.warm])
                    ws.append(np.full(int(one.warm.sum()), weight))
    return np.vstack(xs), np.concatenate(ys).astype(np.float64), np.concatenate(ws)


def fit_weighted(x: Floats, y: Floats, w: Floats, ridge: float = 1e-3) -> Floats:
    """Weighted ridge logistic regression by Newton's method (first column: intercept)."""
    beta = np.zeros(x.shape[1])
    penalty = ridge * w.sum() * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        gradient = x.T @ (w * (y - p)) - penalty @ beta
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return np.asarray(beta, dtype=np.float64)


@dataclass
class Logistic:
    """Quadratic logistic model on standardised features."""

    beta: Floats
    mean: Floats
    scale: Floats

    def logit(self, features: Floats) -> Floats:
        """β₀ + β·design(features)."""
        terms = phase_model.design(features, self.mean, self.scale)
        return np.asarray(self.beta[0] + terms @ self.beta[1:], dtype=np.float64)


@dataclass
class Trees:
    """Gradient-boosted depth-d trees (heap-ordered splits), logistic loss."""

    base: float
    depth: int
    trees: list[tuple[npt.NDArray[np.int64], Floats, Floats]]

    def logit(self, features: Floats) -> Floats:
        """Sum of the trees' leaf values plus the base log-odds."""
        out = np.full(features.shape[0], self.base)
        rows = np.arange(features.shape[0])
        for split_feature, threshold, value in self.trees:
            node = np.zeros(features.shape[0], np.int64)
            for level in range(self.depth):
                heap = 2**level - 1 + node
                node = 2 * node + (features[rows, split_feature[heap]] >= threshold[heap])
            out += value[node]
        return out


def fit_trees(
    x: Floats, y: Floats, w: Floats, *, trees: int = 150, depth: int = 3, rate: float = 0.1
) -> Trees:
    """Histogram gradient boosting (32 quantile bins, λ = 1, ≥ 50 hessian per child)."""
    bins, lam, least = 32, 1.0, 50.0
    edges = [
        np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
        for j in range(x.shape[1])
    ]
    binned = np.column_stack(
        [np.searchsorted(e, x[:, j], side="right") for j, e in enumerate(edges)]
    ).astype(np.int64)
    n, width = binned.shape
    share = float(np.average(y, weights=w))
    base = float(np.log(share / (1 - share)))
    score = np.full(n, base)
    offsets = (np.arange(width) * bins)[None, :]
    out = []
    for _ in range(trees):
        p = 1 / (1 + np.exp(-score))
        g, h = w * (p - y), w * p * (1 - p)
        node = np.zeros(n, np.int64)
        features, thresholds = [], []
        for level in range(depth):
            nodes = 2**level
            index = (node[:, None] * width * bins + offsets + binned).ravel()
            size = nodes * width * bins
            grad = np.bincount(index, np.repeat(g, width), size).reshape(nodes, width, bins)
            hess = np.bincount(index, np.repeat(h, width), size).reshape(nodes, width, bins)
            g_left, h_left = np.cumsum(grad, 2), np.cumsum(hess, 2)
            g_all, h_all = g_left[:, :, -1:], h_left[:, :, -1:]
            gain = (
                g_left**2 / (h_left + lam)
                + (g_all - g_left) ** 2 / (h_all - h_left + lam)
                - g_all**2 / (h_all + lam)
            )
            gain = np.where((h_left >= least) & (h_all - h_left >= least), gain, -np.inf)
            flat = gain.reshape(nodes, width * bins)
            best = np.argmax(flat, 1)
            feature, cut = best // bins, best % bins
            usable = np.isfinite(flat[np.arange(nodes), best])
            thresholds.append(
                np.array(
                    [
                        edges[f][c] if ok and c < len(edges[f]) else np.inf
                        for f, c, ok in zip(feature, cut, usable, strict=True)
                    ]
                )
            )
            features.append(feature)
            node = 2 * node + (
                binned[np.arange(n), feature[node]] > np.where(usable, cut, bins)[node]
            )
        leaves = 2**depth
        value = -rate * np.bincount(node, g, leaves) / (np.bincount(node, h, leaves) + lam)
        score += value[node]
        out.append((np.concatenate(features), np.concatenate(thresholds), value))
    return Trees(base, depth, out)


def labels(one: Series, logit: Any, evidence: float) -> npt.NDArray[np.int8]:
    """The detector's phase codes for one series with ``logit`` and threshold ``evidence``."""
    t = phase_model.Thresholds(
        enter=PARAMETERS.enter,
        evidence=evidence,
        stay=PARAMETERS.stay,
        extreme=PARAMETERS.extreme,
        unload=PARAMETERS.unload,
        recent=PARAMETERS.recent,
        follow=PARAMETERS.absorption,
        absorbed=PARAMETERS.absorption_noise,
        accumulation=PARAMETERS.accumulation,
        gap=PARAMETERS.gap,
    )
    probability = [1 / (1 + np.exp(-np.clip(logit(f), -50, 50))) for _, f in one.sides]
    best = np.where(probability[0] >= probability[1], 1, -1).astype(np.int8)
    k_all = np.arange(one.warm.size)
    width = len(phase_model.FEATURES)
    conditions = [
        phase_model._side_conditions(
            phase_model.Oriented(o.peak_index, o.trough_index, f[:, :width]), p, k_all, t
        )
        for (o, f), p in zip(one.sides, probability, strict=True)
    ]
    entry = [
        c.entry & (phase_model.cusum(c.step, c.fresh | ~one.warm) >= t.evidence) for c in conditions
    ]
    phase, _ = phase_model._state_machine(
        one.warm,
        best,
        entry,
        [c.pause for c in conditions],
        [c.fresh for c in conditions],
        [c.grow for c in conditions],
        gap=t.gap,
    )
    return phase


def scores(
    cells: list[Cell], prepared: dict[tuple[str, str, str], list[Series]], logit: Any, e: float
) -> dict[Cell, dict[str, float]]:
    """Per cell: F1, episode recall (≥ 50 % covered) and the share of quiet bars flagged."""
    out = {}
    for cell in cells:
        tp = detected = truth = episodes = found = flagged = warm = 0
        for one in prepared[(*cell, "episodes")]:
            hit = labels(one, logit, e) == 2
            tp += int((hit & one.distribution).sum())
            detected += int(hit.sum())
            truth += int(one.distribution.sum())
            edges = np.flatnonzero(np.diff(np.concatenate([[0], one.distribution, [0]])))
            for start, end in zip(edges[::2], edges[1::2], strict=True):
                episodes += 1
                found += int(hit[start:end].mean() >= 0.5)
        for one in prepared[(*cell, "quiet")]:
            phase = labels(one, logit, e)
            warm += int((phase >= 0).sum())
            flagged += int((phase == 2).sum())
        precision, recall = tp / max(detected, 1), tp / max(truth, 1)
        out[cell] = {
            "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
            "episode_recall": found / max(episodes, 1),
            "noise": flagged / max(warm, 1),
        }
    return out


def report(
    name: str, cells: list[Cell], prepared: dict[tuple[str, str, str], list[Series]], logit: Any
) -> None:
    """Threshold by the worst-cell rule for margins 2 and 2.8, print the tuning means."""
    for margin in (2.0, 2.8):
        for evidence in np.arange(1.0, 40.01, 1.0):
            rows = scores(cells, prepared, logit, float(evidence))
            worst = max(r["noise"] for r in rows.values())
            if worst <= robustness.NOISE_TARGET / margin:
                f1 = statistics.fmean(r["f1"] for r in rows.values())
                found = statistics.fmean(r["episode_recall"] for r in rows.values())
                print(
                    f"{name}: margin {margin}: evidence {evidence:.0f}, mean F1 {f1:.3f}, "
                    f"episode recall {found:.3f}, worst noise cell {worst:.2%}",
                    flush=True,
                )
                break


VARIANTS: dict[str, tuple[tuple[int, ...], float, str]] = {
    "shipped": ((), 0.0, "shipped"),
    "refit": ((), 0.0, "logistic"),
    "refit-240": ((240,), 0.0, "logistic"),
    "noise": ((), 1.0, "logistic"),
    "noise-half": ((), 0.5, "logistic"),
    "noise-triple": ((), 3.0, "logistic"),
    "noise-240": ((240,), 1.0, "logistic"),
    "noise-60-240": ((60, 240), 1.0, "logistic"),
    "trees": ((), 1.0, "trees"),
}
"""name → (extra baselines, weight of the episode-free training rows, model)."""


def main() -> None:
    """Run the named variants on the tuning cells."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    args = parser.parse_args()
    cells, data = simulate_cells()
    for name in args.variants:
        memories, quiet_weight, kind = VARIANTS[name]
        prepared = {key: [series(raw, memories) for raw in raws] for key, raws in data.items()}
        if kind == "shipped":
            m = phase_model.model()
            fitted = Logistic(
                np.asarray([m.intercept, *m.coefficients]), np.asarray(m.mean), np.asarray(m.scale)
            )
            report(name, cells, prepared, fitted.logit)
            continue
        x, y, w = training_set(cells, prepared, quiet_weight)
        if kind == "trees":
            report(name, cells, prepared, fit_trees(x, y, w).logit)
            continue
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        design = phase_model.design(x, mean, scale)
        beta = fit_weighted(np.column_stack([np.ones(len(x)), design]), y, w)
        report(name, cells, prepared, Logistic(beta, mean, scale).logit)


if __name__ == "__main__":
    main()
