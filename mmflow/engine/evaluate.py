"""``classify --evaluate`` on the chunked engine: per-chunk counts, summed into today's scores.

:func:`mmflow.metrics.signing.evaluate_signing` scores every per-trade method against the
vendor side, BVC by volume on bars, and Lee-Ready at the quote lags of
:data:`~mmflow.metrics.signing.LAG_GRID`. Every score is a ratio of counts
(:func:`~mmflow.metrics.signing.score_counts`: trades, classified, correct, the vendor's buys
and sells and how many of them were hit), and counts add up over chunks; so each chunk task
(:func:`evaluate_chunk`) signs its trades with every method, continuing the carried tick state
(and, for the reverse tick rule, the state of the trades after the chunk: see
:mod:`mmflow.engine.classify`), and returns the counts, and the finish sums them and takes the
same ratios (:func:`~mmflow.metrics.signing.score_ratios`). BVC needs σ over all of an
instrument's bars, so chunks return their bars of known-side trades
(:func:`~mmflow.metrics.signing.bvc_bars`; chunk edges are edges of the BVC bar) and the finish
scores the concatenated bars (:func:`~mmflow.metrics.signing.bvc_score`). The quote lags need
quotes up to the largest lag before each trade: every chunk reads its quotes from that far
before its start, after the quote prevailing then.

Each chunk also returns the diagnostics of the command's own method (warnings), as
:func:`mmflow.engine.classify.classify_chunk` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import polars as pl

from mmflow.analysis.options import BarOptions, Signing
from mmflow.durations import duration_nanoseconds
from mmflow.engine.census import Census
from mmflow.engine.classify import (
    ReverseState,
    chunk_diagnostics,
    quote_checks,
    reverse_states,
    reverse_tick_sign,
    sign_rows,
    state_after,
    summed_counts,
)
from mmflow.engine.executors import run_tasks
from mmflow.engine.profile import chunk_rows, planned_run
from mmflow.engine.run import make_settings
from mmflow.engine.signing import _attach, _carried_tick, _tick, _tick_state
from mmflow.engine.state import Chunk, ChunkTask, EngineSettings
from mmflow.metrics.signing import (
    LAG_GRID,
    METHODS,
    QUOTE_METHODS,
    SCORE_COUNTS,
    TRADE_METHODS,
    bvc_bars,
    bvc_score,
    score_counts,
    score_ratios,
    with_signs,
)
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    BID_PRICE,
    SESSION,
    SIGN_METHOD,
    TRADE_SIGN,
    TS,
    instrument_keys,
)

__all__ = ["ChunkedEvaluation", "EvaluateTask", "EvaluatedChunk", "evaluate_chunk", "evaluate_run"]

SCORE_COLUMNS = (
    "method",
    "trades",
    "classified",
    "correct",
    "accuracy",
    "coverage",
    "buy_recall",
    "sell_recall",
)
"""The score table's columns after the instrument."""
_QUOTED = "_quoted"


@dataclass(frozen=True)
class EvaluateTask:
    """One chunk of an evaluation (picklable).

    Attributes
    ----------
    task
        The chunk, settings (quote lag: the largest one scored) and row sources.
    signing
        The command's own signing (its lag and method: the scores' and the diagnostics').
    every
        BVC's bar length.
    lags
        The quote lags Lee-Ready is scored at (none without quotes).
    reverse
        The reverse tick state after the chunk.
    """

    task: ChunkTask
    signing: Signing
    every: str
    lags: tuple[str, ...] = ()
    reverse: ReverseState = field(default_factory=ReverseState)


@dataclass(frozen=True)
class EvaluatedChunk:
    """One chunk's counts: scores, lag scores, BVC bars and the command's diagnostics."""

    chunk: Chunk
    scores: pl.DataFrame
    lags: pl.DataFrame
    bars: pl.DataFrame
    diagnostics: pl.DataFrame


@dataclass(frozen=True)
class ChunkedEvaluation:
    """The evaluation tables, as :func:`mmflow.metrics.signing.evaluate_signing` makes them.

    ``diagnostics`` and ``checks`` are those of ``classify`` with the command's method.
    """

    scores: pl.DataFrame
    lags: pl.DataFrame
    diagnostics: pl.DataFrame
    checks: pl.DataFrame | None


def _with_lag(settings: EngineSettings, lag: str) -> EngineSettings:
    """Return ``settings`` with the quote lag ``lag`` (text and nanoseconds)."""
    return replace(
        settings,
        signing=replace(settings.signing, lag=lag),
        lag_ns=duration_nanoseconds(lag, what="quote lag"),
    )


def _with_all_signs(
    frame: pl.LazyFrame, job: EvaluateTask, settings: EngineSettings
) -> pl.LazyFrame:
    """Add every per-trade method's sign (``_sign_{method}``), the tick rules continued."""
    tick = _tick(pl.col("_carried_tick"))
    sessions = [SESSION] if settings.session else []
    for method in TRADE_METHODS:
        name = f"_sign_{method}"
        if method == "tick":
            frame = frame.with_columns(tick.alias(name))
        elif method == "reverse-tick":
            reverse = reverse_tick_sign(None if sessions else job.reverse, sessions)
            frame = frame.with_columns(reverse.alias(name))
        else:
            signed = with_signs(frame, method, tick=tick).drop(SIGN_METHOD)
            frame = signed.rename({TRADE_SIGN: name})
    return frame


def evaluate_chunk(job: EvaluateTask) -> EvaluatedChunk:
    """Count one chunk's scores (pure: a function of ``job`` alone)."""
    task = job.task
    chunk = task.chunk
    settings = _with_lag(task.settings, job.signing.lag)
    trades, quotes = chunk_rows(task)
    quote_plan = quotes.lazy() if quotes is not None else None
    keys = instrument_keys(trades.columns)
    known = pl.col(AGGRESSOR_SIDE) != 0
    carried = _carried_tick(*_tick_state(chunk, settings)).alias("_carried_tick")
    attached = _attach(trades.lazy(), quote_plan, settings).with_columns(carried)
    wide = _with_all_signs(attached, job, settings).filter(known)
    quoted = pl.col(BID_PRICE).is_not_null().any() | pl.col(ASK_PRICE).is_not_null().any()
    plans = [
        score_counts(wide, f"_sign_{method}", keys).with_columns(pl.lit(method).alias("method"))
        for method in TRADE_METHODS
    ]
    plans.append(wide.group_by(keys).agg(quoted.alias(_QUOTED)))
    for lag in job.lags:
        lagged = _attach(trades.lazy(), quote_plan, _with_lag(settings, lag)).with_columns(carried)
        signed_lag = with_signs(lagged, "lee-ready", tick=_tick(pl.col("_carried_tick")))
        plans.append(
            score_counts(signed_lag.filter(known), TRADE_SIGN, keys).select(
                *keys, pl.lit(lag).alias("quote_lag"), "trades", "classified", "correct"
            )
        )
    plans.append(bvc_bars(trades.lazy().filter(known), job.every))
    frames = pl.collect_all(plans)
    counts = len(TRADE_METHODS)
    scores = pl.concat(frames[:counts], how="vertical_relaxed").join(
        frames[counts], on=keys, how="left", nulls_equal=True
    )
    # the command's own method, for its warnings (quotes only where it reads them, as there)
    own = quotes if job.signing.method in (*QUOTE_METHODS, "auto") else None
    signed = sign_rows(trades, own, chunk, settings, job.reverse).collect()
    diagnostics = chunk_diagnostics(signed, list(settings.keys))
    lags = pl.concat(frames[counts + 1 : -1]) if job.lags else pl.DataFrame()
    return EvaluatedChunk(chunk, scores, lags, frames[-1], diagnostics)


def _scores(parts: Sequence[pl.DataFrame], keys: list[str]) -> pl.LazyFrame:
    summed = (
        pl.concat(parts, how="vertical_relaxed")
        .lazy()
        .group_by(*keys, "method")
        .agg(pl.col(list(SCORE_COUNTS)).sum(), pl.col(_QUOTED).any())
        .filter(pl.col(_QUOTED) | ~pl.col("method").is_in(list(QUOTE_METHODS)))
    )
    return score_ratios(summed).select(*keys, *SCORE_COLUMNS)


def _bars(parts: Sequence[pl.DataFrame], keys: list[str]) -> pl.LazyFrame:
    """Concatenate the chunks' BVC bars (chunk order); a bar split by a session edge is one."""
    bars = pl.concat(parts, how="vertical_relaxed").lazy()
    return bars.group_by(*keys, TS, maintain_order=True).agg(
        pl.col("close").last(), pl.col("volume", "trades", "true_buy", "true_sell").sum()
    )


def _lags(parts: Sequence[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(
            schema={
                **dict.fromkeys(keys, pl.String),
                "quote_lag": pl.String,
                "trades": pl.UInt32,
                "classified": pl.UInt32,
                "accuracy": pl.Float64,
            }
        )
    classified, correct = pl.col("classified"), pl.col("correct")
    return (
        pl.concat(parts)
        .group_by(*keys, "quote_lag")
        .agg(pl.col("trades", "classified", "correct").sum())
        .with_columns(pl.when(classified > 0).then(correct / classified).alias("accuracy"))
        .select(*keys, "quote_lag", "trades", "classified", "accuracy")
        .sort(
            *keys,
            pl.col("quote_lag").replace_strict(list(LAG_GRID), list(range(len(LAG_GRID)))),
            nulls_last=True,
        )
    )


def _finish(
    results: Sequence[EvaluatedChunk], signing: Signing, keys: list[str], census: Census
) -> ChunkedEvaluation:
    ordered = sorted(results, key=lambda r: r.chunk.start)
    scores = pl.concat(
        [
            _scores([r.scores for r in ordered], keys),
            bvc_score(
                _bars([r.bars for r in ordered], keys),
                signing.bvc_distribution,
                signing.bvc_dof,
            ).select(*keys, *SCORE_COLUMNS),
        ],
        how="vertical_relaxed",
    ).sort(
        *keys,
        pl.col("method").replace_strict(list(METHODS), list(range(len(METHODS)))),
        nulls_last=True,
    )
    diagnostics = summed_counts([r.diagnostics for r in ordered], keys)
    checks = quote_checks(diagnostics, census, keys) if census.quotes is not None else None
    lags = _lags([r.lags for r in ordered if r.lags.height], keys)
    return ChunkedEvaluation(scores.collect(), lags, diagnostics, checks)


def evaluate_run(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame | None,
    *,
    signing: Signing,
    every: str,
    memory_limit: int,
) -> ChunkedEvaluation | None:
    """Score every method on the engine (prepared inputs in any order); ``None``: no trades."""
    names = trades.lazy().collect_schema().names()
    keys = instrument_keys(names)
    lags = LAG_GRID if quotes is not None else ()
    widest = max((signing.lag, *lags), key=lambda lag: duration_nanoseconds(lag, what="lag"))
    options = BarOptions(every=every, horizon="0s", max_bars=None, memory_limit=memory_limit)
    settings = make_settings(
        options,
        replace(signing, lag=widest),
        keys=keys,
        session=SESSION in names,
        has_quotes=quotes is not None,
        memory_limit=memory_limit,
    )
    with planned_run(trades, quotes, settings, last_unit_state=True) as planned:
        if not planned.tasks:
            return None
        reverse = {} if settings.session else reverse_states(planned.census, settings.every_ns)
        jobs = [
            EvaluateTask(
                task,
                signing,
                every,
                lags,
                state_after(reverse.get(task.chunk.instrument, []), task.chunk.end),
            )
            for task in planned.tasks
        ]
        results = list(run_tasks(evaluate_chunk, jobs))
        return _finish(results, signing, keys, planned.census)
