"""Trade signing (``mmflow classify``): signed trades, the method mix and diagnostics.

:func:`classify` builds the single lazy plan (the reference; the Python API collects it).
:func:`classify_chunked` runs the same on the chunked engine (:mod:`mmflow.engine.classify`):
the signed trades come chunk by chunk in the single plan's order, so a command streams them to
a file or to standard output in bounded memory, and the mix, diagnostics and quote checks are
summed over the chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from mmflow.analysis.market import quote_checks
from mmflow.analysis.options import (
    Selection,
    Signing,
    check_durations,
    default_max_rows,
    parameters_of,
)
from mmflow.analysis.prepare import instrument_columns, prepare_market
from mmflow.durations import check_duration
from mmflow.metrics.bvc import BVC_BUY_VOLUME, BVC_SELL_VOLUME, bulk_volume_classification
from mmflow.metrics.flow import event_grid, flow_bars
from mmflow.metrics.quotes import QUOTE_SOURCE, QUOTE_STALE, QUOTE_USABLE
from mmflow.metrics.signing import Evaluation, evaluate_signing, method_mix
from mmflow.schema import (
    AGGRESSOR_SIDE,
    MID_PRICE,
    PRICE,
    SIGN_METHOD,
    SIZE,
    SPREAD,
    TRADE_SIGN,
    TS,
    instrument_keys,
)

if TYPE_CHECKING:
    from mmflow.engine.classify import ClassifyRun, ClassifyTotals
    from mmflow.engine.evaluate import ChunkedEvaluation

__all__ = [
    "ChunkedClassification",
    "Classification",
    "classify",
    "classify_chunked",
    "evaluate",
    "evaluate_chunked",
]


@dataclass(frozen=True)
class Classification:
    """The result of :func:`classify`.

    Attributes
    ----------
    trades
        Per trade: ``ts, symbol, price, size, aggressor_side, trade_sign, sign_method`` (and
        ``mid_price, spread`` when quotes were used); for ``bvc``, per bar instead.
    mix
        How many trades each rule signed, per instrument.
    diagnostics
        Per symbol: ``trades, no_quote, no_quote_unsigned, unusable_quote,
        unusable_quote_unsigned, nan_price`` (counts behind warnings; ``no_quote`` and
        ``unusable_quote`` count only trades that needed a quote, ``*_unsigned`` those of them
        the method left at 0).
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped (see :class:`Analysis`).
    checks
        With quotes: per instrument trade and quote counts (:func:`quote_checks`), which say
        when trades and quotes share no venue.
    """

    trades: pl.LazyFrame
    mix: pl.LazyFrame
    diagnostics: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None


def _quote_diagnostics(names: Sequence[str]) -> list[pl.Expr]:
    """Count trades the quote test could not decide, and how many of them were left unsigned.

    Only trades a quote was needed for count: a vendor-signed trade never looks at a quote.
    ``stale_quote`` counts trades whose latest quote was older than the maximum quote age
    (treated as no quote; not counted in ``no_quote``). ``*_unsigned`` counts those the fallback
    left at 0 (``--method quote`` has none; the tick rule has none before a symbol's first price
    change).
    """
    zero = pl.lit(0, pl.UInt32)
    if QUOTE_SOURCE not in names:
        return [zero.alias(name) for name in _QUOTE_DIAGNOSTICS]
    stale = pl.col(QUOTE_STALE) if QUOTE_STALE in names else pl.lit(value=False)
    needed = pl.col(SIGN_METHOD).cast(pl.String) != "vendor"
    missing = needed & pl.col(QUOTE_SOURCE).is_null() & ~stale
    old = needed & stale
    unusable = needed & pl.col(QUOTE_SOURCE).is_not_null() & ~pl.col(QUOTE_USABLE)
    unsigned = pl.col(TRADE_SIGN) == 0
    return [
        missing.sum().cast(pl.UInt32).alias("no_quote"),
        (missing & unsigned).sum().cast(pl.UInt32).alias("no_quote_unsigned"),
        old.sum().cast(pl.UInt32).alias("stale_quote"),
        (old & unsigned).sum().cast(pl.UInt32).alias("stale_quote_unsigned"),
        unusable.sum().cast(pl.UInt32).alias("unusable_quote"),
        (unusable & unsigned).sum().cast(pl.UInt32).alias("unusable_quote_unsigned"),
    ]


_QUOTE_DIAGNOSTICS = (
    "no_quote",
    "no_quote_unsigned",
    "stale_quote",
    "stale_quote_unsigned",
    "unusable_quote",
    "unusable_quote_unsigned",
)


def classify(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    signing: Signing | None = None,
    every: str = "1m",
    selection: Selection | None = None,
    max_bars: int | None = None,
) -> Classification:
    """Sign every trade and count how each was signed.

    Parameters
    ----------
    trades, quotes
        Canonical trades and (optionally) quotes.
    signing
        Method and quote matching.
    every
        Bar length for ``bvc``.
    selection
        Symbols, time window and clock.
    max_bars
        For ``bvc``: the most bars (default :func:`default_max_rows`).

    Returns
    -------
    Classification
        Lazy per-trade table, method mix and diagnostics.
    """
    selection = selection or Selection()
    signing = signing or Signing()
    check_durations(signing=signing)
    check_duration(every, what="bar length (every)")
    prepared, prepared_quotes, dropped = prepare_market(trades, quotes, selection)
    parameters = parameters_of(selection, signing, bar=every)
    if signing.method == "bvc":
        return _bvc_classification(prepared, signing, every, max_bars, parameters, dropped)
    signed = signing.sign(prepared, prepared_quotes)
    names = signed.collect_schema().names()
    instrument = instrument_keys(names)
    columns = [TS, *instrument, PRICE, SIZE, AGGRESSOR_SIDE, TRADE_SIGN, SIGN_METHOD]
    columns += [c for c in (MID_PRICE, SPREAD) if c in names]
    diagnostics = signed.group_by(instrument).agg(
        pl.len().alias("trades"),
        *_quote_diagnostics(names),
        pl.col(PRICE).is_nan().sum().alias("nan_price"),
    )
    checks = (
        quote_checks(signed, prepared_quotes).with_columns(
            pl.lit(0, pl.UInt32).alias("stale_quote")  # said by the diagnostics already
        )
        if prepared_quotes is not None
        else None
    )
    return Classification(
        instrument_columns(signed.select(columns)),
        instrument_columns(method_mix(signed)),
        instrument_columns(diagnostics),
        parameters,
        dropped,
        checks,
    )


@dataclass(frozen=True)
class ChunkedClassification:
    """The result of :func:`classify_chunked`: :func:`classify` on the chunked engine.

    Attributes
    ----------
    trades
        The signed trades as a lazy table over the engine run (collecting or sinking it runs
        the chunks; rows, order and values are :func:`classify`'s).
    run
        The engine run (:class:`mmflow.engine.classify.ClassifyRun`).
    parameters, dropped
        As in :class:`Classification`.
    """

    trades: pl.LazyFrame
    run: ClassifyRun
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None

    def frames(self) -> Generator[pl.DataFrame]:
        """Yield the signed trades chunk by chunk, in :func:`classify`'s order."""
        for frame in self.run.frames():
            yield instrument_columns(frame.lazy()).collect()

    def totals(self) -> ClassifyTotals:
        """Return the mix, diagnostics and quote checks summed over the chunks.

        After :meth:`frames` (or the ``trades`` table) was consumed they are at hand; otherwise
        the chunks are signed once more without keeping their rows.
        """
        totals = self.run.totals()
        return replace(
            totals,
            mix=instrument_columns(totals.mix.lazy()).collect(),
            diagnostics=instrument_columns(totals.diagnostics.lazy()).collect(),
        )


def classify_chunked(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    signing: Signing | None = None,
    selection: Selection | None = None,
    memory_limit: int | None = None,
) -> ChunkedClassification | None:
    """Sign every trade on the chunked engine (see :func:`classify`; the same rows and counts).

    Returns ``None`` where the engine does not apply and :func:`classify` is the way: ``bvc``
    (its output is per bar, over every bar) and trades or quotes without a time (they fit no
    chunk; mmflow's readers drop and count them). ``memory_limit`` (bytes per chunk) sizes the
    chunks (default :func:`mmflow.engine.chunks.default_memory_limit`).
    """
    from mmflow.engine.chunks import default_memory_limit
    from mmflow.engine.classify import ClassifyRun

    selection = selection or Selection()
    signing = signing or Signing()
    if signing.method == "bvc":
        return None
    single = classify(trades, quotes, signing=signing, selection=selection)
    schema = single.trades.collect_schema()
    inputs = _engine_inputs(trades, quotes, selection)
    if inputs is None:
        return None
    prepared, prepared_quotes = inputs
    keys = instrument_keys(prepared)
    run = ClassifyRun(
        prepared,
        prepared_quotes,
        signing=signing,
        columns=[c for c in schema.names() if c in keys or c not in ("venue", "symbol")],
        memory_limit=default_memory_limit() if memory_limit is None else memory_limit,
    )
    result = ChunkedClassification(pl.LazyFrame(), run, single.parameters, single.dropped)
    return replace(result, trades=_lazy_source(result.frames, schema))


def _engine_inputs(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, selection: Selection
) -> tuple[pl.LazyFrame, pl.LazyFrame | None] | None:
    """Prepare the inputs for the engine (input order, one instrument shape on both sides).

    ``None`` when a trade or quote has no time: it fits no chunk (the single plan keeps it).
    """
    from mmflow.engine.inputs import parses_text
    from mmflow.engine.market import _same_venue_columns

    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection, ordered=False)
    prepared, prepared_quotes = _same_venue_columns(prepared, prepared_quotes)
    # text scans are not checked (mmflow's readers drop and count rows without a time)
    frames = [f for f in (prepared, prepared_quotes) if f is not None and not parses_text(f)]
    untimed = pl.collect_all([frame.select(pl.col(TS).is_null().any()) for frame in frames])
    if any(bool(frame.item()) for frame in untimed):
        return None
    return prepared, prepared_quotes


def _lazy_source(frames: Callable[[], Iterator[pl.DataFrame]], schema: pl.Schema) -> pl.LazyFrame:
    """Return a lazy table whose rows come from ``frames()`` (run when it is collected)."""
    from polars.io.plugins import register_io_source

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        _batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        left = n_rows
        for frame in frames():
            if with_columns is not None:
                frame = frame.select(with_columns)
            if predicate is not None:
                frame = frame.filter(predicate)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame
            if left == 0:
                return

    return register_io_source(source, schema=schema)


def _bvc_classification(
    prepared: pl.LazyFrame,
    signing: Signing,
    every: str,
    max_bars: int | None,
    parameters: dict[str, Any],
    dropped: pl.LazyFrame | None,
) -> Classification:
    """Bulk volume classification: buy and sell volume per bar instead of signed trades."""
    unsigned = prepared.with_columns(pl.lit(0, pl.Int8).alias(TRADE_SIGN))
    instrument = instrument_keys(unsigned)
    grid = event_grid(
        unsigned,
        every=every,
        max_bars=default_max_rows() if max_bars is None else max_bars,
    )
    bars = bulk_volume_classification(
        flow_bars(unsigned, every=every, grid=grid),
        by=instrument,
        distribution=signing.bvc_distribution,
        dof=signing.bvc_dof,
    ).select(
        *instrument,
        TS,
        "close",
        "volume",
        "trades",
        pl.col(BVC_BUY_VOLUME).alias("buy_volume"),
        pl.col(BVC_SELL_VOLUME).alias("sell_volume"),
    )
    mix = method_mix(prepared.with_columns(pl.lit("bvc").alias(SIGN_METHOD)))
    diagnostics = prepared.group_by(instrument).agg(
        pl.len().alias("trades"),
        *_quote_diagnostics([]),
        pl.col(PRICE).is_nan().sum().alias("nan_price"),
    )
    return Classification(
        instrument_columns(bars),
        instrument_columns(mix),
        instrument_columns(diagnostics),
        parameters,
        dropped,
    )


def evaluate(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    signing: Signing | None = None,
    every: str = "1m",
    selection: Selection | None = None,
) -> Evaluation:
    """Score every signing method against the vendor side (see :func:`evaluate_signing`)."""
    selection = selection or Selection()
    signing = signing or Signing()
    check_durations(signing=signing)
    check_duration(every, what="bar length (every)")
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection)
    scored = evaluate_signing(
        prepared,
        prepared_quotes,
        match=signing.match,
        lag=signing.lag,
        every=every,
        bvc_distribution=signing.bvc_distribution,
        bvc_dof=signing.bvc_dof,
        max_quote_age=signing.max_quote_age,
    )
    return Evaluation(instrument_columns(scored.scores), instrument_columns(scored.lags))


def evaluate_chunked(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    signing: Signing | None = None,
    every: str = "1m",
    selection: Selection | None = None,
    memory_limit: int | None = None,
) -> ChunkedEvaluation | None:
    """Score every signing method on the chunked engine (:mod:`mmflow.engine.evaluate`).

    The same tables as :func:`evaluate` (collected), with the diagnostics and quote checks of
    :func:`classify` by ``signing``'s method. ``None`` where the engine does not apply (no
    trades, or trades or quotes without a time): use :func:`evaluate` and :func:`classify`.
    """
    from mmflow.engine.chunks import default_memory_limit
    from mmflow.engine.evaluate import evaluate_run

    selection = selection or Selection()
    signing = signing or Signing()
    check_durations(signing=signing)
    check_duration(every, what="bar length (every)")
    inputs = _engine_inputs(trades, quotes, selection)
    if inputs is None:
        return None
    prepared, prepared_quotes = inputs
    evaluated = evaluate_run(
        prepared,
        prepared_quotes,
        signing=signing,
        every=every,
        memory_limit=default_memory_limit() if memory_limit is None else memory_limit,
    )
    if evaluated is None:
        return None

    def shaped(frame: pl.DataFrame) -> pl.DataFrame:
        return instrument_columns(frame.lazy()).collect()

    return replace(
        evaluated,
        scores=shaped(evaluated.scores),
        lags=shaped(evaluated.lags),
        diagnostics=shaped(evaluated.diagnostics),
    )
