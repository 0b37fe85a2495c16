"""The finish: chunk tables concatenated in time order, then the metrics that cross bars.

Everything here runs on small tables (bars, price levels, VPIN bucket pieces, counts) with the
existing metric functions, so the engine's numbers are today's numbers:

- VPIN: bucket pieces summed per global bucket index, then VPIN over the last ``window``
  buckets as :func:`mmflow.metrics.vpin.vpin_buckets` computes it, placed on bars with
  :func:`mmflow.metrics.vpin.vpin_at`;
- Kyle's λ, Amihud, inventory (CVD, z-scores, liquidity state): :mod:`mmflow.metrics.impact`,
  :mod:`mmflow.metrics.inventory` on the bars;
- phases, volume profile and value area: the level table fed as pseudo-trades (``ts`` = bar
  start, ``price`` = level, ``size`` = the level's volume, ``trade_sign`` = its side), which
  gives the functions the same per-bar, per-level volumes as the trades (the summary uses
  only the episodes' labels and times, so episodes get no level rows);
- the flow summary from the bars (Σ per instrument) and the census' first and last trade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from mmflow.analysis.summary_table import summary_table
from mmflow.engine.state import ChunkResult, EngineSettings
from mmflow.engine.trades import apply_bvc
from mmflow.metrics.flow import BAR_FLOW_COLUMNS
from mmflow.metrics.impact import amihud, kyle_lambda
from mmflow.metrics.inventory import inventory_bars, inventory_summary
from mmflow.metrics.phase_episodes import phase_episodes
from mmflow.metrics.phases import PhaseParameters, phase_bars, phase_labels, with_phase_levels
from mmflow.metrics.profile import value_area, volume_profile
from mmflow.metrics.vpin import vpin_at
from mmflow.schema import PRICE, SIGN_METHOD, SIZE, TRADE_SIGN, TS

__all__ = [
    "COST_COLUMNS",
    "FLOW_COLUMNS",
    "QUOTE_BAR_COLUMNS",
    "Finished",
    "finish_analysis",
    "finish_market",
    "merge_buckets",
    "pseudo_trades",
]

FLOW_COLUMNS = BAR_FLOW_COLUMNS
"""The flow columns of :func:`mmflow.metrics.flow.flow_bars`, in its order."""
QUOTE_BAR_COLUMNS = (
    "ofi",
    "ofi_normalized",
    "mid_close",
    "spread",
    "depth",
    "quote_imbalance",
    "crossed_quotes",
)
COST_COLUMNS = ("effective_spread", "realized_spread", "price_impact")
CHECK_COLUMNS = ("trades", "quotes", "stale_quote", "after_last_quote", "stale_future_quote")


def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="vertical_relaxed")


def merge_buckets(pieces: pl.DataFrame, keys: Sequence[str], window: int) -> pl.DataFrame:
    """Sum VPIN bucket pieces per global index and compute VPIN as ``vpin_buckets`` does.

    A bucket is complete when a piece of it holds the trade that fills it (``completes``);
    VPIN_τ = Σ_{last n} |V^S − V^B| / Σ_{last n} V over the instrument's buckets in index
    order (Easley, López de Prado & O'Hara 2012, *RFS* 25(5):1457-1493), complete buckets
    only in the output, as :func:`mmflow.metrics.vpin.vpin_buckets` returns them.
    """
    keys = list(keys)
    if pieces.height == 0:
        return pl.DataFrame(
            schema={
                **{k: pieces.schema[k] for k in keys if k in pieces.schema},
                "bucket": pl.Int64,
                TS: pieces.schema.get(TS, pl.Datetime("ns", "UTC")),
                "volume": pl.Float64,
                "buy_volume": pl.Float64,
                "sell_volume": pl.Float64,
                "vpin": pl.Float64,
                "complete": pl.Boolean,
            }
        )
    imbalance = (pl.col("sell_volume") - pl.col("buy_volume")).abs()
    return (
        pieces.lazy()
        .group_by(*keys, "bucket")
        .agg(
            pl.col(TS).max(),
            pl.col("volume").sum(),
            pl.col("buy_volume").sum(),
            pl.col("sell_volume").sum(),
            pl.col("completes").any().alias("complete"),
        )
        .sort(*keys, "bucket", nulls_last=True)
        .with_columns(
            (
                imbalance.rolling_sum(window_size=window).over(keys)
                / pl.col("volume").rolling_sum(window_size=window).over(keys)
            ).alias("vpin")
        )
        .select(*keys, "bucket", TS, "volume", "buy_volume", "sell_volume", "vpin", "complete")
        .filter(pl.col("complete"))
        .collect()
    )


def pseudo_trades(levels: pl.DataFrame) -> pl.LazyFrame:
    """Return the level table as trades: ``ts`` = bar start, ``price``, ``size``, ``trade_sign``.

    One row per bar × price level × side: the per-bar, per-level volumes (and buy / sell
    splits) are the trades', so the phase detector's level dispersion and the volume profile
    and value area come out the same (their per-level sums add the same numbers).
    """
    return levels.lazy().select(
        *(c for c in levels.columns if c not in (PRICE, SIZE, TRADE_SIGN, "trades")),
        PRICE,
        SIZE,
        TRADE_SIGN,
    )


@dataclass(frozen=True)
class Finished:
    """The engine's tables after the finish (eager, small).

    Attributes
    ----------
    bars
        Today's ``market_bars`` table: keys, ``ts``, flow, quote, cost, VPIN, Kyle, Amihud,
        Roll and inventory columns, sorted by keys and ``ts``.
    levels
        The level table (keys, ``ts``, ``price``, ``trade_sign``, ``size``, ``trades``).
    mix
        Today's :func:`mmflow.metrics.signing.method_mix`.
    checks
        Today's :func:`mmflow.analysis.market.quote_checks` (``None`` without quotes).
    buckets
        The complete VPIN buckets.
    """

    bars: pl.DataFrame
    levels: pl.DataFrame
    mix: pl.DataFrame
    checks: pl.DataFrame | None
    buckets: pl.DataFrame


def _mix(mix: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if mix.height == 0:
        return pl.DataFrame(
            schema={
                **dict.fromkeys(keys, pl.String),
                SIGN_METHOD: pl.String,
                "trades": pl.UInt32,
                "volume": pl.Float64,
                "share": pl.Float64,
            }
        )
    return (
        mix.lazy()
        .with_columns(pl.col(SIGN_METHOD).cast(pl.String))
        .group_by(*keys, SIGN_METHOD)
        .agg(pl.col("trades").sum().cast(pl.UInt32), pl.col("volume").sum())
        .with_columns((pl.col("trades") / pl.col("trades").sum().over(keys)).alias("share"))
        .sort(
            *keys,
            "trades",
            SIGN_METHOD,
            descending=[*(False for _ in keys), True, False],
            nulls_last=True,
        )
        .collect()
    )


def _checks(
    checks: pl.DataFrame,
    keys: list[str],
    quote_counts: pl.DataFrame,
) -> pl.DataFrame:
    counts = ["trades", "stale_quote", "after_last_quote", "stale_future_quote"]
    summed = checks.group_by(keys).agg(pl.col(counts).sum())
    out = summed.join(quote_counts, on=keys, how="full", coalesce=True, nulls_equal=True)
    return (
        out.with_columns(pl.col(list(CHECK_COLUMNS)).fill_null(0).cast(pl.UInt32))
        .select(*keys, *CHECK_COLUMNS)
        .sort(keys, nulls_last=True)
    )


def finish_market(
    results: Sequence[ChunkResult],
    settings: EngineSettings,
    *,
    quote_counts: pl.DataFrame | None = None,
) -> Finished:
    """Concatenate chunk results in time order and add the columns that cross bars.

    Parameters
    ----------
    results
        The chunk results (any order: they are sorted by instrument and chunk start).
    settings
        The run's settings.
    quote_counts
        ``keys…, quotes`` per instrument over the whole run (census; instruments with only
        quotes included), for the quote checks.
    """
    options = settings.options
    keys = settings.bar_keys
    instrument = list(settings.keys)
    ordered = sorted(
        results,
        key=lambda r: (r.chunk.symbol, r.chunk.venue is None, r.chunk.venue or "", r.chunk.start),
    )
    bars = _concat([r.bars for r in ordered])
    levels = _concat([r.levels for r in ordered])
    pieces = _concat([r.buckets for r in ordered])
    mix = _concat([r.mix for r in ordered])
    checks = _concat([r.checks for r in ordered])
    buckets = merge_buckets(pieces, instrument, options.vpin_window)
    roll = bars.select(*keys, TS, "roll_spread")
    base = bars.select(*keys, TS, *FLOW_COLUMNS, *QUOTE_BAR_COLUMNS, *COST_COLUMNS).sort(
        *keys, TS, nulls_last=True
    )
    flows = base.lazy()
    if settings.signing.method == "bvc":
        # BVC splits each bar's volume by its close change over σ of all the instrument's bars
        # (Easley, López de Prado & O'Hara 2012): a per-bar rule across chunks, so here.
        flows = apply_bvc(
            flows,
            distribution=settings.signing.bvc_distribution,
            dof=settings.signing.bvc_dof,
        ).select(base.columns)
    lazy = vpin_at(flows, buckets.lazy(), every=options.every).sort(*keys, TS)
    lazy = amihud(kyle_lambda(lazy, window=options.lookback), window=options.lookback)
    lazy = lazy.join(
        roll.lazy(), on=[*keys, TS], how="left", maintain_order="left", nulls_equal=True
    )
    lazy = inventory_bars(
        lazy,
        lookback=options.lookback,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    ).sort(*keys, TS, nulls_last=True)
    finished_bars = lazy.collect()
    check_table = (
        _checks(checks, instrument, quote_counts)
        if settings.has_quotes and quote_counts is not None
        else None
    )
    return Finished(finished_bars, levels, _mix(mix, instrument), check_table, buckets)


def flow_summary_from_bars(
    bars: pl.DataFrame, keys: list[str], spans: pl.DataFrame
) -> pl.DataFrame:
    """Today's :func:`mmflow.metrics.flow.flow_summary` from the bar table.

    Σ over bars of the per-bar sums (Σ P·V from ``vwap · volume``), and ``start``, ``end`` the
    first and last trade of the instrument (``spans``: ``keys…, start, end``).
    """
    volume = pl.col("volume").sum()
    dollars = (pl.col("vwap") * pl.col("volume")).sum()
    totals = bars.group_by(keys).agg(
        pl.col("trades").sum().cast(pl.UInt32),
        volume.alias("volume"),
        pl.col("buy_volume").sum(),
        pl.col("sell_volume").sum(),
        pl.col("unknown_volume").sum(),
        pl.when(volume > 0).then(dollars / volume).alias("vwap"),
        pl.col("net_flow").sum(),
    )
    return totals.join(spans, on=keys, how="left", nulls_equal=True).sort(keys, nulls_last=True)


def _phased(finished: Finished, instrument: list[str], parameters: PhaseParameters) -> pl.DataFrame:
    """Phase the bars one instrument at a time (the same rows as all at once, in the same order).

    Every phase column is computed per instrument. The level windows (``price_levels``,
    ``level_dispersion``) cost O(level rows) (:func:`mmflow.metrics.phase_levels.level_windows`;
    they used to spread each row over the next W bars: a 6.3 GiB peak for 11 M level rows);
    one instrument at a time holds only its own share and is also faster (10 M trades, four
    instruments: 0.9 against 1.1 CPU-s all at once). The instruments' plans run together
    (``collect_all``: the finish is otherwise one thread at a time), the labels collected
    before the levels are added (the level step reads the labelled bars twice: as one plan
    the detector ran three times per instrument).
    """
    if finished.bars.height == 0:
        return phase_bars(
            finished.bars.lazy(), pseudo_trades(finished.levels), parameters=parameters
        ).collect()
    levels = finished.levels.partition_by(instrument, as_dict=True, maintain_order=True)
    series = finished.bars.partition_by(instrument, as_dict=True, maintain_order=True)
    labelled = pl.collect_all(
        [phase_labels(bars.lazy(), parameters=parameters) for bars in series.values()]
    )
    parts = pl.collect_all(
        [
            with_phase_levels(
                labels.lazy(),
                pseudo_trades(levels.get(key, finished.levels.clear())),
                parameters=parameters,
            )
            for key, labels in zip(series, labelled, strict=True)
        ]
    )
    return pl.concat(parts, how="vertical_relaxed")


@dataclass(frozen=True)
class FinishedAnalysis:
    """What :func:`mmflow.analysis.summary.analyze` returns, computed from the engine's tables."""

    summary: pl.DataFrame
    bars: pl.DataFrame
    paths: pl.DataFrame
    parameters: dict[str, Any]


def finish_analysis(
    finished: Finished,
    settings: EngineSettings,
    spans: pl.DataFrame,
    phase_parameters: PhaseParameters,
) -> FinishedAnalysis:
    """Run the analysis' summaries on the finished tables (each table computed once).

    Same steps as :func:`mmflow.analysis.summary.analyze`: flow summary, OFI totals, inventory
    summary, phases (levels as pseudo-trades) and episodes, the current phase, the last
    episode, and the POC and value area per instrument.
    """
    options = settings.options
    instrument = list(settings.keys)
    keys = settings.bar_keys
    bars = finished.bars.lazy()
    flow = flow_summary_from_bars(finished.bars, instrument, spans).lazy()
    # The profile needs volume per price and side only: the level table summed over bars
    # first (1.1 M level rows -> ~24 k at 10 M trades; 0.54 -> 0.21 CPU-s, same POC and area)
    # collected here: the profile and value area read their input several times (0.65 ->
    # 0.2 CPU-s at 10 M trades when the group-by is not repeated)
    by_price = (
        finished.levels.lazy()
        .group_by(*instrument, PRICE, TRADE_SIGN)
        .agg(pl.col(SIZE).sum())
        .sort(*instrument, PRICE, TRADE_SIGN, nulls_last=True)
        .collect()
    )
    areas = value_area(volume_profile(by_price.lazy(), by=instrument), by=instrument).select(
        *instrument, "poc", "value_area_low", "value_area_high"
    )
    inventory = inventory_summary(bars, every=options.every, horizon=options.pressure_horizon)
    phased = _phased(finished, instrument, phase_parameters)
    # The summary takes each instrument's last episode: its phase, side, start and end. The
    # episodes' price levels are not in analyze's output, so no level rows go in (they cost
    # an as-of join and a group-by of the whole level table: 0.3 CPU-s at 10 M trades).
    episodes = phase_episodes(phased.lazy(), every=options.every, parameters=phase_parameters)
    summary, paths = summary_table(
        flow, bars, inventory, phased.lazy(), episodes, areas, instrument, settings.has_quotes
    )
    out_summary, out_paths = pl.collect_all([summary, paths])
    parameters = {f"phase_{k}": v for k, v in asdict(phase_parameters).items()}
    return FinishedAnalysis(
        out_summary, phased.sort(*keys, TS, nulls_last=True), out_paths, parameters
    )
