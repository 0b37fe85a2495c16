"""Event studies against a seeded placebo (metrics.md §12.6 (2)).

An event study compares a statistic measured after each event with the same statistic at
placebo times drawn at random from the same data (MacKinlay 1997, "Event studies in economics
and finance", *J. Economic Literature* 35(1):13-39). Two studies use the shared pieces here:

* :func:`mmflow.metrics.phase_evaluation.event_study`: reversal returns after distribution episodes;
* :func:`withdrawal_volatility_study`: realised volatility after liquidity-withdrawal episodes
  (spread up, depth down; :func:`mmflow.metrics.inventory.withdrawal_episodes`).

The placebo draw is reproducible: candidate rows are ranked by a 64-bit hash of their
identifying columns (instrument and ``ts``; :func:`placebo_hash`: ``venue, symbol, ts``, or
``symbol, ts`` for a row without a venue, so such rows draw as they did before instruments had
venues) seeded with the placebo seed, ties broken by those columns, and the first rows in that
order are taken. The same seed and data give the same draw
whatever the row order or engine (within one polars version: polars does not promise stable
hashes across versions).

The difference between the event and placebo means is tested with Welch's t-statistic
(Welch 1947, *Biometrika* 34(1/2):28-35), which does not assume equal variances:

    t = (x̄₁ − x̄₂) / √(s₁²/n₁ + s₂²/n₂),

s² the sample variances (ddof = 1); null when either sample has fewer than two values or both
variances are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.flow import bar_keys
from mmflow.metrics.inventory import LIQUIDITY_STATE, PROVIDING
from mmflow.schema import CLOSE, MID_CLOSE, SESSION, TS, VENUE

MAX_HORIZONS: Final = 16
"""Most horizons one study computes (each adds a column per bar)."""

MAX_PLACEBO_RATIO: Final = 100
"""Most placebo bars per event of :func:`withdrawal_volatility_study`."""

DEFAULT_HORIZONS: Final = (1, 5, 15, 60)
"""Forward horizons in bars of both event studies (metrics.md §12.6 (2))."""

_HASH: Final = "_es_hash"
_DRAW: Final = "_es_draw"
_PRICE: Final = "_es_price"
_SQUARED: Final = "_es_squared_return"
_VALUE: Final = "_es_value"
_START: Final = "start"

WITHDRAWAL_STUDY_COLUMNS: Final = (
    "horizon_bars",
    "episodes",
    "events",
    "beyond_data",
    "event_volatility",
    "placebo_bars",
    "placebo_volatility",
    "difference",
    "volatility_ratio",
    "t_statistic",
)
"""Columns of :func:`withdrawal_volatility_study` after the instrument keys."""


def check_horizons(horizons: Sequence[int]) -> list[int]:
    """Return ``horizons`` as a list after checking them.

    Raises
    ------
    ParameterError
        If there are none, more than :data:`MAX_HORIZONS`, one repeats or one is not a whole
        number ≥ 1.
    """
    steps = list(horizons)
    if not steps or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in steps):
        msg = f"horizons must be one or more whole numbers of bars >= 1, was {horizons!r}"
        raise ParameterError(msg)
    if len(set(steps)) < len(steps):
        msg = f"horizons must not repeat, was {horizons!r}"
        raise ParameterError(msg)
    if len(steps) > MAX_HORIZONS:
        msg = f"at most {MAX_HORIZONS} horizons, got {len(steps)} (pass fewer)"
        raise ParameterError(msg)
    return steps


def check_seed(seed: int) -> None:
    """Refuse a placebo seed that is not a whole number ≥ 0 (:class:`ParameterError`)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        msg = f"placebo_seed must be a whole number >= 0, was {seed!r}"
        raise ParameterError(msg)


def placebo_hash(columns: Sequence[str], seed: int) -> pl.Expr:
    """Return the seeded 64-bit hash that orders placebo candidates (both event studies).

    ``hash(struct(columns), seed)``; when ``columns`` include ``venue``, a row whose venue is
    null hashes the other columns only, so data without venues (the simulator, venue-less
    files) draws the same placebo as before instruments were keyed by (venue, symbol).

    Parameters
    ----------
    columns
        Identifying columns of a row (instrument keys and ``ts``).
    seed
        Hash seed (≥ 0).

    Returns
    -------
    pl.Expr
        The UInt64 hash per row.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"venue": [None, "x"], "symbol": ["A", "A"], "ts": [0, 0]})
    >>> hashed = frame.select(placebo_hash(["venue", "symbol", "ts"], 1).alias("h"))["h"]
    >>> hashed[0] == frame.select(pl.struct("symbol", "ts").hash(seed=1))["symbol"][0]
    True
    >>> hashed[1] == hashed[0]
    False
    """
    hashed = pl.struct(*columns).hash(seed=seed)
    if VENUE not in columns:
        return hashed
    without = pl.struct(*(c for c in columns if c != VENUE)).hash(seed=seed)
    return pl.when(pl.col(VENUE).is_null()).then(without).otherwise(hashed)


def seeded_draw(
    frame: pl.LazyFrame,
    *,
    columns: Sequence[str],
    seed: int,
    draws: int | pl.Expr,
    by: Sequence[str] = (),
) -> pl.LazyFrame:
    """Draw rows of ``frame`` without replacement in a seeded, order-independent way.

    Rows are sorted by :func:`placebo_hash` of ``columns`` and then by ``columns``; the first
    ``draws`` rows are kept, over the whole frame or, with ``by``, within each group (``draws``
    may then be an expression evaluated per row, e.g. the group's event count). ``columns`` must
    identify a row (instrument keys and ``ts``) for the draw not to depend on row order.

    Parameters
    ----------
    frame
        The candidate rows.
    columns
        Identifying columns hashed for the order.
    seed
        Hash seed (≥ 0).
    draws
        How many rows to keep (per group with ``by``); fewer when fewer exist.
    by
        Group columns; empty for one draw over the whole frame.

    Returns
    -------
    pl.LazyFrame
        The drawn rows in draw order, with the columns of ``frame``.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.LazyFrame({"symbol": ["A"] * 4 + ["B"] * 2, "ts": [0, 1, 2, 3, 0, 1]})
    >>> drawn = seeded_draw(frame, columns=["symbol", "ts"], seed=1, draws=1, by=["symbol"])
    >>> drawn.collect().height
    2
    """
    check_seed(seed)
    ordered = frame.with_columns(placebo_hash(columns, seed).alias(_HASH)).sort(
        _HASH, *columns, nulls_last=True
    )
    if not by and isinstance(draws, int):
        return ordered.head(draws).drop(_HASH)
    limit = draws if isinstance(draws, pl.Expr) else pl.lit(draws)
    rank = pl.int_range(pl.len(), dtype=pl.Int64).over(by) if by else pl.int_range(pl.len())
    return ordered.filter(rank < limit).drop(_HASH)


def summary_statistics(values: pl.Expr, prefix: str) -> list[pl.Expr]:
    """Return aggregations of the non-null ``values``: count, mean, t-statistic, hit rate, s².

    ``{prefix}count`` (UInt32), ``{prefix}mean``, ``{prefix}t_statistic`` = mean / (s / √n)
    (null when n < 2 or s = 0), ``{prefix}hit_rate`` = share > 0 and ``_{prefix}var`` = s²
    (ddof = 1), kept for :func:`welch_t_statistic`.
    """
    x = values.drop_nulls()
    n = x.len()
    sd = x.std()
    return [
        n.cast(pl.UInt32).alias(f"{prefix}count"),
        x.mean().alias(f"{prefix}mean"),
        pl.when((n >= 2) & (sd > 0))
        .then(x.mean() / (sd / n.cast(pl.Float64).sqrt()))
        .alias(f"{prefix}t_statistic"),
        pl.when(n > 0).then((x > 0).mean()).alias(f"{prefix}hit_rate"),
        x.var().alias(f"_{prefix}var"),
    ]


def welch_t_statistic(
    first_mean: pl.Expr,
    first_variance: pl.Expr,
    first_count: pl.Expr,
    second_mean: pl.Expr,
    second_variance: pl.Expr,
    second_count: pl.Expr,
) -> pl.Expr:
    """Welch's t = (x̄₁ − x̄₂) / √(s₁²/n₁ + s₂²/n₂) (Welch 1947, *Biometrika* 34:28-35).

    Null when a variance is null (fewer than two values) or the standard error is 0.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"m1": [2.0], "v1": [1.0], "n1": [4], "m2": [1.0], "v2": [1.0]})
    >>> c = pl.col
    >>> frame.select(welch_t_statistic(c("m1"), c("v1"), c("n1"), c("m2"), c("v2"), c("n1")))
    shape: (1, 1)
    ┌──────────┐
    │ m1       │
    │ ---      │
    │ f64      │
    ╞══════════╡
    │ 1.414214 │
    └──────────┘
    """
    n1 = first_count.cast(pl.Float64)
    n2 = second_count.cast(pl.Float64)
    error = (first_variance / n1 + second_variance / n2).sqrt()
    return pl.when(error > 0).then((first_mean - second_mean) / error)


def _bar_price(names: Sequence[str], series: list[str], instrument: list[str]) -> pl.Expr:
    """P_k: ``mid_close`` carried forward for instruments with any mid, else ``close`` carried."""
    close = (
        pl.col(CLOSE).cast(pl.Float64).forward_fill().over(series)
        if CLOSE in names
        else pl.lit(None, pl.Float64)
    )
    if MID_CLOSE not in names:
        return close
    mid = pl.col(MID_CLOSE).cast(pl.Float64)
    has_mid = mid.is_not_null().any().over(instrument)
    return pl.when(has_mid).then(mid.forward_fill().over(series)).otherwise(close)


def withdrawal_volatility_study(
    bars: pl.LazyFrame,
    episodes: pl.LazyFrame,
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    placebo_seed: int = 0,
    placebo_ratio: int = 1,
) -> pl.LazyFrame:
    """Realised volatility after liquidity-withdrawal episodes against a seeded placebo.

    Per instrument (the keys of :func:`mmflow.metrics.flow.bar_keys` without ``session``) and
    bar k, with P_k the bar's price (``mid_close`` carried forward when the instrument has any
    mid, else ``close`` carried forward over bars without trades) and the one-bar log return
    r_k = ln(P_k / P_{k−1}) (same session, both prices > 0), the **realised volatility** over
    the next h bars is

        RV_h(k) = √( Σ_{j=1}^{h} r_{k+j}² ),

    the square root of the realised variance of Andersen & Bollerslev (1998, "Answering the
    skeptics: yes, standard volatility models do provide accurate forecasts", *International
    Economic Review* 39(4):885-905; Andersen, Bollerslev, Diebold & Labys 2003, *Econometrica*
    71(2):579-625), in log-return units over h bars (not annualised). It is defined only when
    all h returns exist: bar k + h lies in the same session and every price from P_k on is
    known. Bars after an instrument's last quote carry its last mid, as every mid-based column
    does, so study only the span the quotes cover (``--end``).

    An **event** is a withdrawal episode (:func:`mmflow.metrics.inventory.withdrawal_episodes`:
    a run of ``withdrawing`` bars, spread ≥ factor × normal or depth ≤ factor × normal); its
    anchor bar k₀ is the episode's first bar, so the window k₀+1 … k₀+h starts after the bar
    whose quotes flagged the withdrawal and RV_h(k₀) is known only after the episode is. Events
    whose window runs past the end of the data (or session), or lacks a price, are left out
    and counted in ``beyond_data``. The **placebo** is RV_h at ``placebo_ratio`` bars per
    event (by default as many bars as there are events), drawn without replacement per
    instrument and horizon among the instrument's ``providing`` bars (non-episode bars with a
    liquidity state) whose RV_h exists, with :func:`seeded_draw` (fewer when fewer such bars
    exist). The claim tested is that withdrawal precedes higher volatility (Comerton-Forde,
    Hendershott, Jones, Moulton & Seasholes 2010, *J. Finance* 65(1):295-331: liquidity
    supply falls when market makers are constrained).

    Parameters
    ----------
    bars
        Output of :func:`mmflow.metrics.inventory.inventory_bars` with ``close`` and/or
        ``mid_close``, in time order within each series.
    episodes
        Output of :func:`mmflow.metrics.inventory.withdrawal_episodes` on the same bars.
    horizons
        Forward horizons h in bars (1 to :data:`MAX_HORIZONS` values, each ≥ 1).
    placebo_seed
        Seed of the placebo draw (≥ 0).
    placebo_ratio
        Placebo bars drawn per event (1 to :data:`MAX_PLACEBO_RATIO`; metrics.md §12.6 asks
        for as many as there are events; more give a steadier baseline).

    Returns
    -------
    pl.LazyFrame
        One row per instrument with at least one episode and horizon, sorted by instrument and
        horizon: the instrument keys, ``horizon_bars`` (Int64), ``episodes`` (UInt32, episodes
        of the instrument), ``events`` (UInt32, episodes with a complete window),
        ``beyond_data`` (UInt32, = episodes − events), ``event_volatility`` (mean RV_h over the
        events), ``placebo_bars`` (UInt32), ``placebo_volatility`` (mean RV_h over them),
        ``difference`` = event − placebo volatility, ``volatility_ratio`` = event / placebo
        volatility (null when the placebo mean is 0) and ``t_statistic`` (Welch's t of the
        difference, :func:`welch_t_statistic`). Empty when there are no episodes.

    Raises
    ------
    ParameterError
        For no, too many or non-positive horizons, a negative seed or a placebo ratio outside
        1 to :data:`MAX_PLACEBO_RATIO`.
    SchemaError
        If a required column is missing.

    Examples
    --------
    One symbol; the spread doubles at bar 2 (a one-bar episode), then the mid swings.

    >>> import polars as pl
    >>> bars = pl.LazyFrame(
    ...     {
    ...         "symbol": "X",
    ...         "ts": list(range(6)),
    ...         "mid_close": [100.0, 100.0, 100.0, 101.0, 100.0, 100.0],
    ...         "liquidity_state": ["providing", "providing", "withdrawing"] + ["providing"] * 3,
    ...     }
    ... )
    >>> episodes = pl.LazyFrame({"symbol": ["X"], "start": [2]})
    >>> study = withdrawal_volatility_study(bars, episodes, horizons=[1, 2, 4])
    >>> study.select(
    ...     "horizon_bars",
    ...     "events",
    ...     "beyond_data",
    ...     pl.col("event_volatility").round(5),
    ...     "placebo_bars",
    ... ).collect()
    shape: (3, 5)
    ┌──────────────┬────────┬─────────────┬──────────────────┬──────────────┐
    │ horizon_bars ┆ events ┆ beyond_data ┆ event_volatility ┆ placebo_bars │
    │ ---          ┆ ---    ┆ ---         ┆ ---              ┆ ---          │
    │ i64          ┆ u32    ┆ u32         ┆ f64              ┆ u32          │
    ╞══════════════╪════════╪═════════════╪══════════════════╪══════════════╡
    │ 1            ┆ 1      ┆ 0           ┆ 0.00995          ┆ 1            │
    │ 2            ┆ 1      ┆ 0           ┆ 0.01407          ┆ 1            │
    │ 4            ┆ 0      ┆ 1           ┆ null             ┆ 0            │
    └──────────────┴────────┴─────────────┴──────────────────┴──────────────┘
    """
    steps = check_horizons(horizons)
    check_seed(placebo_seed)
    names, series, instrument = _check_study_inputs(bars, episodes, placebo_ratio)
    measured = _measured(bars, names, series, instrument, steps)
    starts = episodes.select(*instrument, pl.col(_START).alias(TS))
    at_events = starts.join(
        measured.select(*instrument, TS, *(f"_es_rv{h}" for h in steps)),
        on=[*instrument, TS],
        how="left",
        nulls_equal=True,  # an instrument without a venue (null) is still one instrument
    )
    providing = measured.filter(pl.col(LIQUIDITY_STATE) == PROVIDING)
    out = pl.concat(
        _horizon_rows(at_events, providing, instrument, h, placebo_seed, placebo_ratio)
        for h in steps
    )
    event, base = pl.col("event_volatility"), pl.col("placebo_volatility")
    return out.select(
        *instrument,
        "horizon_bars",
        "episodes",
        pl.col("events").fill_null(0),
        (pl.col("episodes") - pl.col("events")).alias("beyond_data"),
        "event_volatility",
        pl.col("placebo_bars").fill_null(0),
        "placebo_volatility",
        (event - base).alias("difference"),
        pl.when(base > 0).then(event / base).alias("volatility_ratio"),
        welch_t_statistic(
            event,
            pl.col("_event_var"),
            pl.col("events"),
            base,
            pl.col("_placebo_var"),
            pl.col("placebo_bars"),
        ).alias("t_statistic"),
    ).sort(*instrument, "horizon_bars")


def _check_study_inputs(
    bars: pl.LazyFrame, episodes: pl.LazyFrame, placebo_ratio: int
) -> tuple[list[str], list[str], list[str]]:
    """Check the placebo ratio and the columns; return bar columns, series and instrument keys."""
    ratio_ok = isinstance(placebo_ratio, int) and not isinstance(placebo_ratio, bool)
    if not ratio_ok or not 1 <= placebo_ratio <= MAX_PLACEBO_RATIO:
        limit = MAX_PLACEBO_RATIO
        msg = f"placebo_ratio must be a whole number from 1 to {limit}, was {placebo_ratio!r}"
        raise ParameterError(msg)
    names = bars.collect_schema().names()
    series = bar_keys(bars)
    instrument = [key for key in series if key != SESSION]
    needed = [*series, TS, LIQUIDITY_STATE]
    missing = [name for name in needed if name not in names]
    priced = CLOSE in names or MID_CLOSE in names
    if missing or not priced:
        missing += [] if priced else ["close or mid_close"]
        msg = (
            f"inventory bars are missing column(s) {', '.join(missing)}; found "
            f"{', '.join(names)} (run mmflow.metrics.inventory.inventory_bars first)"
        )
        raise SchemaError(msg)
    episode_names = episodes.collect_schema().names()
    missing = [name for name in (*instrument, _START) if name not in episode_names]
    if missing:
        msg = (
            f"episodes are missing column(s) {', '.join(missing)}; found "
            f"{', '.join(episode_names)} (run mmflow.metrics.inventory.withdrawal_episodes first)"
        )
        raise SchemaError(msg)
    return names, series, instrument


def _measured(
    bars: pl.LazyFrame,
    names: list[str],
    series: list[str],
    instrument: list[str],
    steps: list[int],
) -> pl.LazyFrame:
    """Add the realised volatility over the next h bars (``_es_rv{h}``) to every bar."""
    price = pl.col(_PRICE)
    previous = price.shift(1)
    squared = pl.when((price > 0) & (previous > 0)).then((price / previous).log().pow(2))
    # rolling_sum adds and subtracts as the window moves, so a window of zero returns can keep
    # a residue (~1e-20) of a large return that left it: a window whose largest square is 0 is 0.
    volatility = {
        h: pl.when(pl.col(_SQUARED).rolling_max(h).shift(-h).over(series) == 0)
        .then(0.0)
        .otherwise(pl.col(_SQUARED).rolling_sum(h).shift(-h).over(series).clip(lower_bound=0.0))
        .sqrt()
        for h in steps
    }
    measured = (
        bars.select(
            *series, TS, LIQUIDITY_STATE, _bar_price(names, series, instrument).alias(_PRICE)
        )
        .with_columns(squared.over(series).alias(_SQUARED))
        .with_columns(expr.alias(f"_es_rv{h}") for h, expr in volatility.items())
    )
    return measured


def _horizon_rows(
    at_events: pl.LazyFrame,
    providing: pl.LazyFrame,
    instrument: list[str],
    h: int,
    placebo_seed: int,
    placebo_ratio: int,
) -> pl.LazyFrame:
    """Compare volatility at episode starts with seeded placebo bars, for horizon ``h``."""
    value = pl.col(f"_es_rv{h}")
    found = at_events.group_by(instrument).agg(
        pl.len().cast(pl.UInt32).alias("episodes"),
        value.count().cast(pl.UInt32).alias("events"),
        value.mean().alias("event_volatility"),
        value.var().alias("_event_var"),
    )
    candidates = providing.filter(value.is_not_null()).select(*instrument, TS, value.alias(_VALUE))
    drawn = seeded_draw(
        candidates.join(
            found.select(*instrument, "events"), on=instrument, how="inner", nulls_equal=True
        ),
        columns=[*instrument, TS],
        seed=placebo_seed,
        draws=pl.col("events").cast(pl.Int64) * placebo_ratio,
        by=instrument,
    )
    placebo = drawn.group_by(instrument).agg(
        pl.col(_VALUE).count().cast(pl.UInt32).alias("placebo_bars"),
        pl.col(_VALUE).mean().alias("placebo_volatility"),
        pl.col(_VALUE).var().alias("_placebo_var"),
    )
    return found.join(placebo, on=instrument, how="left", nulls_equal=True).with_columns(
        pl.lit(h, pl.Int64).alias("horizon_bars")
    )


__all__ = [
    "DEFAULT_HORIZONS",
    "MAX_HORIZONS",
    "MAX_PLACEBO_RATIO",
    "WITHDRAWAL_STUDY_COLUMNS",
    "check_horizons",
    "check_seed",
    "placebo_hash",
    "seeded_draw",
    "summary_statistics",
    "welch_t_statistic",
    "withdrawal_volatility_study",
]
