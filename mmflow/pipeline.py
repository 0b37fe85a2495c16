"""The analyses the commands run, each one lazy plan built from canonical frames.

The command-line layer calls one function here per command and collects the result once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from mmflow.clean import clean_taq
from mmflow.convert import Converted, convert
from mmflow.durations import DAY, check_duration
from mmflow.errors import MmflowError, NoDataError, ReaderError, SizeLimitError
from mmflow.io import Loaded, RowAccount, Tables, combine, read_now
from mmflow.io.checks import account_frame, counted, filtered
from mmflow.io.many import accounts_in_order, joined
from mmflow.metrics.bvc import (
    BVC_BUY_VOLUME,
    BVC_SELL_VOLUME,
    Distribution,
    bulk_volume_classification,
)
from mmflow.metrics.event_study import DEFAULT_HORIZONS, withdrawal_volatility_study
from mmflow.metrics.flow import (
    SESSION,
    bar_keys,
    bvc_flow_bars,
    event_grid,
    flow_bars,
    flow_summary,
    summary_from_bars,
)
from mmflow.metrics.impact import (
    FUTURE_MID_MISSING,
    amihud,
    cost_bars,
    kyle_lambda,
    roll_spread,
    trade_costs,
)
from mmflow.metrics.inventory import inventory_bars, inventory_summary, withdrawal_episodes
from mmflow.metrics.ofi import quote_bars
from mmflow.metrics.phases import (
    PHASE_COLUMNS,
    PhaseParameters,
    event_study,
    phase_bars,
    phase_episodes,
    truth_scores,
)
from mmflow.metrics.profile import ValueAreaMethod, footprint, value_area, volume_profile
from mmflow.metrics.quotes import (
    QUOTE_SOURCE,
    QUOTE_STALE,
    QUOTE_USABLE,
    QuoteMatch,
    attach_quotes,
)
from mmflow.metrics.signing import Evaluation, Method, evaluate_signing, method_mix, sign_trades
from mmflow.metrics.vpin import vpin_at, vpin_buckets
from mmflow.progress import OnStage, Stage, report
from mmflow.schema import (
    AGGRESSOR_SIDE,
    MID_PRICE,
    PRICE,
    QUOTES,
    SIGN_METHOD,
    SIZE,
    SPREAD,
    SYMBOL,
    TRADE_SIGN,
    TRADES,
    TS,
    TS_EVENT,
    VENUE,
    TableSchema,
    instrument_keys,
    require,
)

Clock = Literal["recv", "event"]
"""``recv``: align on ``ts`` (capture/receive time where the source has it); ``event``: on
``ts_event`` (exchange time), falling back to ``ts`` where a row has none."""


@dataclass(frozen=True)
class Session:
    """A daily trading session in local time, e.g. 09:30–16:00 America/New_York.

    When ``end`` ≤ ``start`` the session runs overnight (17:00–16:00 for CME Globex) and is
    named by the local date it starts on. Local times are converted with the time zone's rules,
    so sessions stay correct across daylight-saving changes.
    """

    start: time
    end: time
    tz: str = "UTC"

    def label(self) -> pl.Expr:
        """Return the session's local start date for each row, null outside the session."""
        local = pl.col(TS).dt.convert_time_zone(self.tz)
        clock, day = local.dt.time(), local.dt.date()
        if self.start < self.end:
            return pl.when((clock >= self.start) & (clock < self.end)).then(day)
        started_yesterday = clock < self.end
        return (
            pl.when(clock >= self.start)
            .then(day)
            .when(started_yesterday)
            .then(day.dt.offset_by("-1d"))
        )


@dataclass(frozen=True)
class Selection:
    """Which rows to analyse and on which clock.

    Attributes
    ----------
    symbols
        Keep only these symbols (all when empty).
    venues
        Keep only these venues (all when empty).
    start, end
        Keep rows with start ≤ ts < end on the chosen clock (UTC; either may be ``None``).
    clock
        The alignment clock.
    clean
        ``taq``: apply the TAQ cleaning of :mod:`mmflow.clean` after selecting rows.
    session
        Keep only rows inside this daily session and label them with a ``session`` column
        (its local start date); tick-rule state, bars and cumulative series restart per session.
    """

    symbols: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    clock: Clock = "recv"
    clean: Literal["taq"] | None = None
    session: Session | None = None
    venues: tuple[str, ...] = ()


def _utc(value: datetime) -> pl.Expr:
    """Return ``value`` as a UTC literal; a naive datetime is taken to be UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return pl.lit(aware, dtype=pl.Datetime("ns", "UTC"))


def with_venue(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add a null ``venue`` column when ``lf`` has none (an instrument is venue and symbol)."""
    if VENUE in lf.collect_schema().names():
        return lf
    return lf.with_columns(pl.lit(None, pl.String).alias(VENUE))


def instrument_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Give a per-instrument output table its ``venue`` column, right before ``symbol``.

    Computations key on ``symbol`` alone when no input names a venue (cheaper); every table
    mmflow returns still has ``venue`` (null then), so outputs have one shape.
    """
    names = lf.collect_schema().names()
    if SYMBOL not in names or VENUE in names:
        return lf
    position = names.index(SYMBOL)
    venue = pl.lit(None, pl.String).alias(VENUE)
    return lf.select(*names[:position], venue, *names[position:])


def _reclocked(lf: pl.LazyFrame, selection: Selection) -> pl.LazyFrame:
    """Put the chosen clock in ``ts`` and label sessions (when a session is selected)."""
    names = lf.collect_schema().names()
    if selection.venues and VENUE not in names:
        lf = with_venue(lf)
    if selection.clock == "event" and TS_EVENT in names:
        lf = lf.with_columns(pl.coalesce(TS_EVENT, TS).alias(TS), pl.col(TS).alias(TS_EVENT))
    if selection.session is not None:
        lf = lf.with_columns(selection.session.label().alias(SESSION))
    return lf


def selection_rules(selection: Selection) -> list[tuple[str, pl.Expr]]:
    """Each row filter of ``selection`` as (reason, condition marking a row to drop).

    :func:`prepare` drops the rows any rule marks; :func:`selection_account` counts them by
    their first marking rule, so the row account stays exact. Rules apply after re-clocking.
    """
    rules: list[tuple[str, pl.Expr]] = []
    if selection.symbols:
        rules.append(
            ("symbol not selected (--symbol)", ~pl.col(SYMBOL).is_in(list(selection.symbols)))
        )
    if selection.venues:
        rules.append(("venue not selected (--venue)", ~pl.col(VENUE).is_in(list(selection.venues))))
    if selection.start is not None:
        rules.append(("before --start", pl.col(TS) < _utc(selection.start)))
    if selection.end is not None:
        rules.append(("at or after --end", pl.col(TS) >= _utc(selection.end)))
    if selection.session is not None:
        rules.append(("outside --session", pl.col(SESSION).is_null()))
    return rules


def prepare(
    lf: pl.LazyFrame,
    table: TableSchema,
    selection: Selection,
    *,
    venue: bool = False,
    ordered: bool = True,
) -> pl.LazyFrame:
    """Validate, re-clock, filter and time-order canonical rows.

    With ``clock="event"`` the exchange time becomes ``ts`` (rows without one keep theirs) and
    the receive time moves to ``ts_event``'s place, so every metric aligns on the chosen clock.
    Rows are sorted by ``ts`` with a stable sort, so same-timestamp rows keep file order.

    Parameters
    ----------
    lf
        Canonical trades or quotes.
    table
        :data:`mmflow.schema.TRADES` or :data:`mmflow.schema.QUOTES`.
    selection
        Symbols, time window and clock.
    venue
        Add the null ``venue`` column when there is none (see :func:`with_venue`).
    ordered
        Sort by ``ts`` (stable). ``False`` leaves the input order: the chunked engine checks
        each chunk's order and sorts only the chunks that need it (the same rows result).

    Returns
    -------
    pl.LazyFrame
        The prepared rows.
    """
    require(lf, table, what=f"canonical {table.name}")
    if venue:
        lf = with_venue(lf)
    lf = _reclocked(lf, selection)
    rules = selection_rules(selection)
    if rules:
        lf = lf.filter(~pl.any_horizontal(rule.fill_null(value=True) for _, rule in rules))
    return lf.sort(TS, maintain_order=True) if ordered else lf


def selection_account(
    trades: pl.LazyFrame | None, quotes: pl.LazyFrame | None, selection: Selection
) -> pl.LazyFrame:
    """Count the rows :func:`prepare` keeps (``used``) and drops per filter, per table.

    Returns a lazy :data:`mmflow.io.checks.ACCOUNT` table; TAQ cleaning, when selected, drops
    further rows from the ``used`` ones (:func:`account_of`).
    """
    plans = []
    for name, lf in (("trades", trades), ("quotes", quotes)):
        if lf is None:
            continue
        rules = [(r, rule.fill_null(value=True)) for r, rule in selection_rules(selection)]
        kept, dropped = filtered(_reclocked(lf, selection), rules, table=name)
        plans += [dropped, counted(kept, table=name, kind="used", reason="used")]
    return pl.concat(plans) if plans else account_frame([])


def collect_accounts(inputs: Sequence[Loaded], *plans: pl.LazyFrame) -> list[pl.DataFrame]:
    """Collect every input's row account, then ``plans`` (in batches: linear in the files)."""
    own = [item for item in inputs if item.account is not None and not item.in_memory]
    read: dict[int, pl.DataFrame] = {}
    for start in range(0, len(own), BATCH):
        batch = own[start : start + BATCH]
        frames = collect([item.account for item in batch if item.account is not None], batch)
        read.update((id(item), frame) for item, frame in zip(batch, frames, strict=True))
    return accounts_in_order(inputs, read) + (collect(list(plans), inputs) if plans else [])


def account_of(frames: Sequence[pl.DataFrame], cleaning: pl.DataFrame | None = None) -> RowAccount:
    """Build the run's :class:`RowAccount` from collected account tables and cleaning counts.

    Rows TAQ cleaning drops (``cleaning``: ``rule, rows_dropped, table``) move from used to
    dropped, so rows read = rows used + rows dropped holds for every table.
    """
    account = RowAccount()
    for frame in frames:
        account.extend(RowAccount.from_frame(frame))
    if cleaning is not None and cleaning.height:
        totals = cleaning.group_by("table", "rule", maintain_order=True).agg(
            pl.col("rows_dropped").sum()
        )
        for table, rule, rows in totals.iter_rows():
            account.move_from_used(f"TAQ cleaning: {rule}", int(rows), table=table)
    return account


LAZY_INPUTS = 32
"""Up to this many files stay lazy (big files stream); more are read in batches (read_many)."""
BATCH = 8
"""Files collected together when reading many (polars' cost per plan grows with the plan)."""


def read_many(inputs: Sequence[Loaded]) -> list[Loaded]:
    """Read many small inputs now, each file once with its row account; keep few ones lazy.

    A lazy concatenation of thousands of file scans costs time that grows faster than the
    number of files in polars. Beyond :data:`LAZY_INPUTS` files, batches of :data:`BATCH` files
    are collected (naming the file that fails) and each input's frames and account become
    in-memory frames, so the run stays linear in the number of files.
    """
    pending = [item for item in inputs if not item.in_memory]  # grouped reads: mmflow.io.many
    if len(pending) <= LAZY_INPUTS:
        return list(inputs)
    read: dict[int, Loaded] = {}
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        plans = [
            plan
            for item in batch
            for plan in (item.frames.trades, item.frames.quotes, item.account)
            if plan is not None
        ]
        frames = iter(collect(plans, batch))
        for item in batch:
            trades, quotes, account = (
                next(frames) if plan is not None else None
                for plan in (item.frames.trades, item.frames.quotes, item.account)
            )
            tables = Tables(trades, quotes, account)
            read[id(item)] = read_now(item.source, item.format, tables, item.frames.notes)
    return [read.get(id(item), item) for item in inputs]


def gather(inputs: Sequence[Loaded], table: TableSchema) -> pl.LazyFrame | None:
    """Concatenate the trades (or quotes) of several inputs into one lazy frame.

    For many files, pass the inputs through :func:`read_many` first.
    """
    frames = joined(inputs, table)  # files already read: one in-memory frame per run of them
    combined = combine(frames)
    if combined is None or len(frames) == 1:
        return combined
    names = combined.collect_schema().names()
    return combined.select(
        [n for n in table.names if n in names] + [n for n in names if n not in table.names]
    )


MAX_QUOTE_AGE: Final = "1m"
"""Default maximum quote age: in every real sample of ``shared/data`` the longest gap between
two quotes of one instrument inside a file is under a second, so a minute-old quote is a feed
that stopped (a file that ended, a halt), not a quiet book (README "Quote age")."""


@dataclass(frozen=True)
class Signing:
    """How trades are signed.

    Attributes
    ----------
    method
        A method of :data:`mmflow.metrics.signing.METHODS`; ``auto`` by default.
    match
        Quote matching: ``strict`` (quotes strictly before the trade) or ``at-or-before``.
    lag
        Use quotes at least this much older than the trade (polars duration).
    bvc_distribution, bvc_dof
        For ``bvc``: the distribution of standardised bar price changes (``normal`` as in
        Easley, López de Prado & O'Hara 2012, or ``student-t``) and its degrees of freedom
        (estimated from the data when ``None``).
    max_quote_age
        A quote older than this (polars duration) counts as missing: for signing, spreads,
        depth, effective and realized spread and price impact (``None``: no limit). Default
        :data:`MAX_QUOTE_AGE`.
    """

    method: Method = "auto"
    match: QuoteMatch = "strict"
    lag: str = "0s"
    bvc_distribution: Distribution = "normal"
    bvc_dof: float | None = None
    max_quote_age: str | None = MAX_QUOTE_AGE


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`: lazy tables plus the parameters that produced them.

    Attributes
    ----------
    summary
        One row per instrument (``venue, symbol``).
    bars
        One row per instrument and bar.
    mix
        How many trades each signing rule signed, per instrument.
    parameters
        Every parameter, for file metadata and reproducibility.
    dropped
        With cleaning: ``symbol, date, rule, rows_dropped, table`` (no row is lost silently).
    paths
        ``venue, symbol, inventory_path``: the bar-by-bar inventory, for a sparkline.
    checks
        With quotes: what the quotes could not be used for (:func:`quote_checks`).
    """

    summary: pl.LazyFrame
    bars: pl.LazyFrame
    mix: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    paths: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None


def parameters_of(selection: Selection, signing: Signing, **extra: Any) -> dict[str, Any]:
    """Return every parameter of a run as a plain dict (stored in parquet metadata)."""
    return {
        **extra,
        "method": signing.method,
        "quote_match": signing.match,
        "quote_lag": signing.lag,
        "max_quote_age": signing.max_quote_age,
        "bvc_distribution": signing.bvc_distribution,
        "bvc_dof": signing.bvc_dof,
        "session": (
            f"{selection.session.start:%H:%M}-{selection.session.end:%H:%M} {selection.session.tz}"
            if selection.session
            else None
        ),
        "clock": selection.clock,
        "symbols": list(selection.symbols),
        "venues": list(selection.venues),
        "start": selection.start.isoformat() if selection.start else None,
        "end": selection.end.isoformat() if selection.end else None,
        "clean": selection.clean,
    }


def _same_keys(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """When trades or quotes name a venue, give the other side one too (null: unnamed)."""
    if quotes is None:
        return trades, None
    named = VENUE in trades.collect_schema().names() or VENUE in quotes.collect_schema().names()
    return (with_venue(trades), with_venue(quotes)) if named else (trades, quotes)


def prepare_market(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None,
    selection: Selection,
    *,
    ordered: bool = True,
) -> tuple[pl.LazyFrame, pl.LazyFrame | None, pl.LazyFrame | None]:
    """Prepare trades and quotes; with ``clean="taq"`` also clean them.

    ``ordered=False`` leaves rows in input order (see :func:`prepare`; TAQ cleaning always
    sorts).

    Returns the trades, the quotes and the per-rule dropped counts (``None`` without cleaning).
    When either names a venue, both have a ``venue`` column afterwards (null where the source
    has none), so both key instruments alike; when neither does, instruments are symbols.
    """
    ordered = ordered or selection.clean == "taq"
    prepared_quotes = (
        prepare(quotes, QUOTES, selection, ordered=ordered) if quotes is not None else None
    )
    prepared_trades = prepare(trades, TRADES, selection, ordered=ordered)
    if selection.clean != "taq":
        return (*_same_keys(prepared_trades, prepared_quotes), None)
    # Clean before a null venue column is added: the single-exchange rule (P3) runs only
    # where the rows name their exchange.
    cleaned = clean_taq(prepared_trades, prepared_quotes)
    assert cleaned.trades is not None
    dropped = [cleaned.trades.dropped.with_columns(pl.lit("trades").alias("table"))]
    if cleaned.quotes is not None:
        dropped.append(cleaned.quotes.dropped.with_columns(pl.lit("quotes").alias("table")))
    cleaned_quotes = cleaned.quotes.frame if cleaned.quotes is not None else None
    return (
        *_same_keys(cleaned.trades.frame, cleaned_quotes),
        pl.concat(dropped, how="vertical_relaxed"),
    )


def analyze(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    every: str = "1m",
    options: BarOptions | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    phase_parameters: PhaseParameters | None = None,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None = None,
    chunked: bool = True,
) -> Analysis:
    """Run the main analysis: everything per bar, and one summary row per instrument.

    Parameters
    ----------
    trades
        Canonical trades (any order; several files may be concatenated).
    quotes
        Canonical quotes (for quote-based signing, OFI, spreads and liquidity), or ``None``.
    every
        Bar length (polars duration string), used when ``options`` is not given.
    options
        Bar length and metric windows.
    signing
        Signing method and quote matching (``auto`` by default).
    selection
        Symbols, time window, clock, session and cleaning.
    phase_parameters
        The distribution-phase rule (causal labels).
    materialize
        How to collect the bar table early (the command line passes its error-naming
        collector). Without it the whole analysis is one lazy plan, which recomputes the bars
        for each summary; with it the bars are computed once, which is much faster on large
        inputs.

    Returns
    -------
    Analysis
        Lazy summary and bar tables; nothing is read until they are collected. The summary
        adds the current ``phase`` and ``distribution_score``, the last episode and the POC and
        value area; the bars add the phase columns.
    """
    options = options or BarOptions(every=every)
    phase_parameters = phase_parameters or PhaseParameters(lookback=options.lookback)
    check_windows(options, phase_parameters)
    market = market_bars(
        trades, quotes, options=options, signing=signing, selection=selection, chunked=chunked
    )
    if market.engine is not None:  # every table already computed once, by the engine
        from mmflow.engine.market import engine_analysis

        return engine_analysis(market, market.engine, phase_parameters)
    signing = signing or Signing()
    if signing.method == "bvc":
        flow = summary_from_bars(market.bars, market.signed)
    else:
        flow = flow_summary(market.signed)
    instrument = instrument_keys(market.signed)
    areas = value_area(volume_profile(market.signed, by=instrument), by=instrument).select(
        *instrument, "poc", "value_area_low", "value_area_high"
    )
    bars, signed = market.bars, market.signed
    if materialize is not None:
        # Everything below reads the bars (and the signed trades) several times: compute them
        # and the trade-level summaries in one pass over the inputs, then reuse the results.
        frames = materialize([bars, flow, areas, signed])
        bars, flow, areas, signed = (frame.lazy() for frame in frames)
    totals = bars.group_by(instrument).agg(
        (
            pl.when(pl.col("ofi").is_not_null().any()).then(pl.col("ofi").sum())
            if market.has_quotes
            else pl.lit(None, pl.Float64)
        ).alias("ofi")
    )
    inventory = inventory_summary(bars, every=options.every, horizon=options.pressure_horizon)
    phased = phase_bars(bars, signed, parameters=phase_parameters)
    episodes = phase_episodes(
        phased, every=options.every, trades=signed, parameters=phase_parameters
    )
    current = phased.group_by(instrument).agg(
        pl.col("phase").drop_nulls().last().alias("phase"),
        pl.col("inventory_side").filter(pl.col("phase").is_not_null()).last(),
        pl.col("distribution_score").drop_nulls().last().alias("distribution_score"),
    )
    last_episode = (
        episodes.sort("end")
        .group_by(instrument)
        .agg(
            pl.col("phase").last().alias("last_episode"),
            pl.col("inventory_side").last().alias("last_episode_side"),
            pl.col("start").last().alias("last_episode_start"),
            pl.col("end").last().alias("last_episode_end"),
        )
    )
    summary = flow
    for part in (totals, inventory):
        summary = summary.join(part, on=instrument, how="left", nulls_equal=True)
    present = summary.collect_schema().names()
    summary = summary.select(*(c for c in SUMMARY_COLUMNS if c in present))
    for part in (current, last_episode, areas):
        summary = summary.join(part, on=instrument, how="left", nulls_equal=True)
    summary = summary.sort(instrument, nulls_last=True)
    paths = bars.group_by(instrument).agg(pl.col("mm_inventory").alias("inventory_path"))
    parameters = {
        **market.parameters,
        **{f"phase_{k}": v for k, v in asdict(phase_parameters).items()},
    }
    phased = phased.sort(*bar_keys(market.bars), TS, nulls_last=True)
    return Analysis(
        instrument_columns(summary),
        instrument_columns(phased),
        instrument_columns(market.mix),
        parameters,
        market.dropped,
        instrument_columns(paths),
        market.checks,
    )


SUMMARY_COLUMNS = (
    VENUE,
    SYMBOL,
    "trades",
    "volume",
    "buy_volume",
    "sell_volume",
    "unknown_volume",
    "vwap",
    "net_flow",
    "ofi",
    "mm_inventory",
    "inventory_max",
    "inventory_min",
    "inventory_half_life",
    "price_pressure",
    "quote_skew",
    "withdrawing_share",
    "liquidity_state",
    "start",
    "end",
)


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
    signed = sign_trades(
        prepared,
        prepared_quotes,
        method=signing.method,
        match=signing.match,
        lag=signing.lag,
        max_quote_age=signing.max_quote_age,
    )
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


def _fallback_outcome(count: int, unsigned: int) -> str:
    """Say what happened to ``count`` trades the quote test could not sign.

    Examples
    --------
    >>> _fallback_outcome(5, 0)
    'signed by the tick rule'
    >>> _fallback_outcome(5, 5)
    'left unsigned: trade_sign 0'
    >>> _fallback_outcome(5, 2)
    '3 signed by the tick rule, 2 left unsigned'
    """
    if unsigned == 0:
        return "signed by the tick rule"
    if unsigned == count:
        return "left unsigned: trade_sign 0"
    return f"{count - unsigned:,} signed by the tick rule, {unsigned:,} left unsigned"


def signing_warnings(diagnostics: pl.DataFrame, scores: pl.DataFrame | None = None) -> list[str]:
    """Turn collected diagnostics (and evaluation scores) into one-line warnings for people.

    Parameters
    ----------
    diagnostics
        :attr:`Classification.diagnostics`, collected.
    scores
        :attr:`mmflow.metrics.signing.Evaluation.scores`, collected, if evaluating.

    Returns
    -------
    list[str]
        Warnings, in a stable order.
    """
    out: list[str] = []
    for row in diagnostics.sort(SYMBOL).iter_rows(named=True):
        symbol, trades = _instrument_name(row), row["trades"]
        if row["nan_price"]:
            out.append(f"{symbol}: {row['nan_price']:,} trades with a NaN price left unsigned")
        missing, unsigned = row["no_quote"], row["no_quote_unsigned"]
        if missing and missing < trades:
            out.append(
                f"{symbol}: {missing:,} of {trades:,} trades have no earlier quote "
                f"({_fallback_outcome(missing, unsigned)})"
            )
        elif missing and missing == trades:
            out.append(
                f"{symbol}: no quote precedes any trade (quotes for other symbols or later "
                f"times?); {_fallback_outcome(missing, unsigned)}"
            )
        if row.get("stale_quote"):
            outcome = _fallback_outcome(row["stale_quote"], row.get("stale_quote_unsigned", 0))
            out.append(
                f"{symbol}: {row['stale_quote']:,} of {trades:,} trades faced only a quote older "
                f"than --max-quote-age (treated as no quote; {outcome})"
            )
        if row["unusable_quote"]:
            outcome = _fallback_outcome(row["unusable_quote"], row["unusable_quote_unsigned"])
            out.append(
                f"{symbol}: {row['unusable_quote']:,} trades faced a crossed, locked or "
                f"one-sided quote ({outcome})"
            )
    if scores is not None:
        tick = scores.filter((pl.col("method") == "tick") & (pl.col("classified") > 0))
        out.extend(
            f"{_instrument_name(row)}: the vendor side agrees with the tick rule on only "
            f"{100 * row['accuracy']:.1f} % of trades; the side mapping looks inverted"
            for row in tick.iter_rows(named=True)
            if row["accuracy"] is not None and row["accuracy"] < 0.3
        )
    return out


def require_rows(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Raise :class:`NoDataError` when a collected result is empty."""
    if df.height == 0:
        msg = f"no {what} to analyse (check the inputs and the --symbol/--start/--end filters)"
        raise NoDataError(msg)
    return df


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def collect(
    plans: Sequence[pl.LazyFrame],
    inputs: Sequence[Loaded],
    *,
    on_stage: OnStage | None = None,
    stage: str = "computing",
) -> list[pl.DataFrame]:
    """Collect lazy results together (one run over the inputs), naming the file that failed.

    When collection fails (a truncated gzip, a value that does not parse), each input is read
    on its own to find the culprit, so the error names the file instead of only the symptom.
    ``on_stage`` is told when the collection starts and ends, under the name ``stage``.

    Raises
    ------
    ReaderError
        Naming the input that cannot be read.
    MmflowError
        When the failure is not tied to one input.
    """
    report(on_stage, Stage(stage))
    try:
        return pl.collect_all(list(plans))
    except MmflowError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        for item in inputs:
            for frame in (item.frames.trades, item.frames.quotes):
                if frame is None:
                    continue
                try:
                    # every column, every row: a count alone would skip parsing the bad cell
                    frame.select(pl.all().null_count()).collect()
                except (pl.exceptions.PolarsError, OSError) as inner:
                    msg = (
                        f"cannot read the file to the end ({_first_line(inner)}); "
                        "is it truncated, corrupt, or not in the format detected "
                        f"({item.format.name})?"
                    )
                    raise ReaderError(msg, path=item.source.display) from exc
        raise MmflowError(_first_line(exc)) from exc
    finally:
        report(on_stage, Stage(stage, finished=True))


def cleaning_notes(dropped: pl.DataFrame) -> list[str]:
    """Summarise collected per-rule dropped counts as one line per table, for people."""
    notes = []
    for table in ("quotes", "trades"):
        part = dropped.filter(pl.col("table") == table)
        if part.height == 0:
            continue
        totals = part.group_by("rule", maintain_order=True).agg(pl.col("rows_dropped").sum())
        text = ", ".join(f"{rule} {n:,}" for rule, n in totals.iter_rows())
        notes.append(f"TAQ cleaning dropped {table}: {text}")
    return notes


def write_dataset(
    trades: pl.LazyFrame | None,
    quotes: pl.LazyFrame | None,
    directory: Path,
    *,
    overwrite: bool = False,
    selection: Selection | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[Converted, list[str]]:
    """Select (and optionally clean) canonical rows, then write them as a partitioned dataset.

    Returns what was written and, with cleaning, one line per table saying what each rule
    dropped (see :func:`mmflow.convert.convert` for the layout).
    """
    selection = selection or Selection()
    notes: list[str] = []
    if trades is not None:
        trades, quotes, dropped = prepare_market(trades, quotes, selection)
        if dropped is not None:
            notes = cleaning_notes(dropped.collect())
    elif quotes is not None:
        quotes = prepare(quotes, QUOTES, selection)
    tables = [(t, f) for t, f in ((TRADES, trades), (QUOTES, quotes)) if f is not None]
    return convert(tables, directory, overwrite=overwrite, metadata=metadata), notes


BYTES_PER_BAR: Final = 4096
"""Memory one bar (or price level, or VPIN bucket) takes while a run computes, with the copies
its joins, sorts and rolling windows make: about 50 columns of 8 bytes, about ten times over."""
MIN_ROWS: Final = 100_000


def _available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, capped by its address-space limit."""
    available: int | None = None
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    try:
        import resource  # POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            available = soft if available is None else min(available, soft)
    except (ImportError, OSError, ValueError):
        pass
    return available


def default_max_rows() -> int:
    """Return the default limit on bars, price levels and VPIN buckets of one run.

    Sized to the machine: the memory available to this process (``MemAvailable``, capped by
    its address-space limit) divided by :data:`BYTES_PER_BAR`, and at least
    :data:`MIN_ROWS`; 2,000,000 where the available memory cannot be read.
    """
    available = _available_memory()
    if available is None:
        return 2_000_000
    return max(MIN_ROWS, available // BYTES_PER_BAR)


@dataclass(frozen=True)
class BarOptions:
    """Parameters of the per-bar market metrics.

    Attributes
    ----------
    every
        Bar length (polars duration).
    horizon
        Time horizon for realized spread and price impact (by as-of time, not rows).
    lookback
        L: trailing window in bars for Kyle's lambda, Amihud, inventory z-scores and the
        liquidity-state medians.
    pressure_horizon
        h: forward window in bars for the price-pressure regression.
    vpin_window
        Buckets in the VPIN window (n).
    buckets_per_day
        VPIN buckets per average day (bucket volume = average daily volume / this).
    spread_factor, depth_factor
        ``withdrawing`` when the spread is ≥ spread_factor × its trailing median or the depth
        ≤ depth_factor × its trailing median.
    fill
        Make a continuous bar grid across days without data (default: bars only on the days,
        or sessions, that hold events).
    max_bars
        The most bars (and VPIN buckets, and lookback bars) a run may make; estimated before
        they are made (:class:`mmflow.errors.SizeLimitError`). ``None``: no limit. Default
        :func:`default_max_rows`.
    memory_limit
        Bytes one chunk of the engine may use (:mod:`mmflow.engine.chunks`); ``None``: half
        the available memory, at most 4 GiB.
    """

    every: str = "1m"
    horizon: str = "5m"
    lookback: int = 240
    pressure_horizon: int = 5
    vpin_window: int = 50
    buckets_per_day: int = 50
    spread_factor: float = 2.0
    depth_factor: float = 0.5
    fill: bool = False
    max_bars: int | None = field(default_factory=default_max_rows)
    memory_limit: int | None = None


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


@dataclass(frozen=True)
class Market:
    """Every per-bar series of one run, lazily, plus what it was computed from.

    Attributes
    ----------
    bars
        One row per instrument (and session) and bar: flow, OFI and quote columns (when quotes
        exist), VPIN, costs, impact and inventory.
    signed
        The signed trades the bars come from.
    mix
        How many trades each signing rule signed.
    has_quotes
        Whether quote-based columns could be computed.
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped.
    checks
        With quotes: per instrument, what the quotes could not be used for
        (:func:`quote_checks`; turn into warnings with :func:`quote_warnings`).
    engine
        The chunked engine's run (:class:`mmflow.engine.run.EngineRun`) when it computed the
        tables: then ``bars`` is computed and ``signed`` is the level table as pseudo-trades
        (:func:`mmflow.engine.finish.pseudo_trades`); ``None`` on the single-plan path.
    """

    bars: pl.LazyFrame
    signed: pl.LazyFrame
    mix: pl.LazyFrame
    has_quotes: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    checks: pl.LazyFrame | None = None
    engine: Any = None


def market_bars(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    chunked: bool = True,
) -> Market:
    """Build the full per-bar table: flow, CVD, OFI, quotes, VPIN, costs, impact, inventory.

    Every series is computed per instrument (``venue, symbol``; and session) on the bars of
    every day (or session) holding a trade or a quote of the instrument (:func:`event_grid`; a
    continuous grid with ``options.fill``), in one lazy plan. The number of bars, VPIN buckets
    and window lengths are checked against ``options.max_bars`` before anything is made.
    Quote-based columns (OFI, spread, depth, quote imbalance, effective and realized spread,
    liquidity state) are null without quotes.

    Parameters
    ----------
    trades, quotes
        Canonical trades and quotes (quotes may be ``None``).
    options
        Bar length and metric windows.
    signing
        How trades are signed.
    selection
        Symbols, time window, clock, session and cleaning.
    chunked
        Compute with the chunked engine (:mod:`mmflow.engine`) where it applies
        (:func:`mmflow.engine.market.engine_applies`); ``False``: the single lazy plan (the
        reference the engine is tested against).

    Returns
    -------
    Market
        The bar table and what it was built from.
    """
    options = options or BarOptions()
    selection = selection or Selection()
    signing = signing or Signing()
    every = options.every
    prepared, prepared_quotes, dropped = prepare_market(trades, quotes, selection)
    parameters = parameters_of(
        selection,
        signing,
        bar=every,
        horizon=options.horizon,
        lookback=options.lookback,
        pressure_horizon=options.pressure_horizon,
        vpin_window=options.vpin_window,
        buckets_per_day=options.buckets_per_day,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    )
    check_durations(options, signing)
    check_windows(options)
    from mmflow.engine.market import engine_applies, engine_market

    if chunked and engine_applies(prepared, prepared_quotes, signing):
        # Input order: the engine checks each chunk's order instead of sorting everything.
        unordered, unordered_quotes, _ = prepare_market(trades, quotes, selection, ordered=False)
        computed = engine_market(
            unordered,
            unordered_quotes,
            options=options,
            signing=signing,
            parameters=parameters,
            dropped=dropped,
            memory_limit=options.memory_limit,
        )
        if computed is not None:
            return computed
    age = signing.max_quote_age
    if signing.method == "bvc":
        signed = prepared.with_columns(
            pl.lit(0, pl.Int8).alias(TRADE_SIGN), pl.lit("bvc").alias(SIGN_METHOD)
        )
    else:
        signed = sign_trades(
            prepared,
            prepared_quotes,
            method=signing.method,
            match=signing.match,
            lag=signing.lag,
            max_quote_age=age,
        )
    if prepared_quotes is not None and MID_PRICE not in signed.collect_schema().names():
        # trade costs need the prevailing mid even when the sign did not use quotes
        signed = attach_quotes(
            signed, prepared_quotes, match=signing.match, lag=signing.lag, max_age=age
        )
    # Keep only what later steps use, once: the signed trades feed bars, costs, VPIN and Roll.
    # (One cache only: polars 2.1 can panic on a cache nested inside another.)
    keys = bar_keys(signed)
    instrument = instrument_keys(signed)
    needed = [*keys, TS, PRICE, SIZE, TRADE_SIGN, SIGN_METHOD, MID_PRICE, QUOTE_STALE]
    names = signed.collect_schema().names()
    signed = signed.select([n for n in needed if n in names]).cache()
    # The grid: every bar of each day (or session) holding a trade or a quote of an instrument
    # that has trades, so flow, OFI and the summaries account for every event.
    events = signed.select(*keys, TS)
    if prepared_quotes is not None:
        traded = signed.select(instrument).unique()
        events = pl.concat(
            [
                events,
                prepared_quotes.join(traded, on=instrument, how="semi", nulls_equal=True).select(
                    *keys, TS
                ),
            ]
        )
    grid = event_grid(events, every=every, keys=keys, fill=options.fill, max_bars=options.max_bars)
    if signing.method == "bvc":
        bars = bvc_flow_bars(
            signed,
            every=every,
            distribution=signing.bvc_distribution,
            dof=signing.bvc_dof,
            grid=grid,
        )
    else:
        bars = flow_bars(signed, every=every, grid=grid)
    costs: pl.LazyFrame | None = None
    if prepared_quotes is not None:
        quoted = quote_bars(
            prepared_quotes, every=every, grid=bars.select(*instrument, TS), max_age=age
        ).select(*instrument, TS, *QUOTE_BAR_COLUMNS)
        bars = bars.join(
            quoted, on=[*instrument, TS], how="left", maintain_order="left", nulls_equal=True
        )
        costs = trade_costs(signed, prepared_quotes, horizon=options.horizon, max_quote_age=age)
        per_bar = cost_bars(costs, every=every).select(*keys, TS, *COST_COLUMNS)
        bars = bars.join(
            per_bar, on=[*keys, TS], how="left", maintain_order="left", nulls_equal=True
        )
    else:
        bars = bars.with_columns(
            pl.lit(None, pl.UInt32 if name == "crossed_quotes" else pl.Float64).alias(name)
            for name in (*QUOTE_BAR_COLUMNS, *COST_COLUMNS)
        )
    bars = bars.sort(*keys, TS)  # joins do not keep order; the series below need time order
    buckets = vpin_buckets(
        signed,
        buckets_per_day=options.buckets_per_day,
        window=options.vpin_window,
        max_buckets=options.max_bars,
    )
    bars = vpin_at(bars, buckets, every=every).sort(*keys, TS)
    bars = amihud(kyle_lambda(bars, window=options.lookback), window=options.lookback)
    rolls = roll_spread(signed, every=every).select(*keys, TS, "roll_spread")
    bars = bars.join(rolls, on=[*keys, TS], how="left", maintain_order="left", nulls_equal=True)
    bars = inventory_bars(
        bars,
        lookback=options.lookback,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    ).sort(*keys, TS, nulls_last=True)
    checks = quote_checks(signed, prepared_quotes, costs) if prepared_quotes is not None else None
    return Market(
        bars,
        signed,
        method_mix(signed),
        prepared_quotes is not None,
        parameters,
        dropped,
        checks,
    )


def check_durations(options: BarOptions | None = None, signing: Signing | None = None) -> None:
    """Validate every duration parameter with the one validator the command line uses.

    Bar length: longer than zero and at most 366 days; horizon: 0 to 366 days; quote lag: 0 to
    one day; maximum quote age: longer than zero (see :func:`mmflow.durations.check_duration`).

    Raises
    ------
    ParameterError
        Naming the parameter.
    """
    if options is not None:
        check_duration(options.every, what="bar length (every)")
        check_duration(options.horizon, what="horizon", minimum=0)
    if signing is not None:
        check_duration(signing.lag, what="quote lag", minimum=0, maximum=DAY)
        if signing.max_quote_age is not None:
            check_duration(signing.max_quote_age, what="max_quote_age")


def check_windows(options: BarOptions, phase_parameters: PhaseParameters | None = None) -> None:
    """Refuse windows in bars (or buckets) longer than the bar limit; they only cost memory.

    Checks ``lookback``, ``pressure_horizon`` and ``vpin_window`` and every whole-number
    parameter of the phase rule (windows, gaps and lengths in bars).

    Raises
    ------
    SizeLimitError
        Naming the parameter.
    """
    limit = options.max_bars
    if limit is None:
        return
    values = {name: getattr(options, name) for name in ("lookback", "pressure_horizon")}
    values["vpin_window"] = options.vpin_window
    if phase_parameters is not None:
        values |= {
            name: value
            for name, value in asdict(phase_parameters).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }
    for name, value in values.items():
        if value > limit:
            raise SizeLimitError(
                name, value, value, limit, "bars in one window", "use a shorter window"
            )


def quote_checks(
    signed: pl.LazyFrame, quotes: pl.LazyFrame, costs: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Count, per instrument, what the quotes could not be used for (behind the warnings).

    Parameters
    ----------
    signed
        Trades after quote matching (with ``quote_stale`` when a maximum age applied).
    quotes
        The prepared quotes.
    costs
        :func:`mmflow.metrics.impact.trade_costs` of the trades, or ``None``.

    Returns
    -------
    pl.LazyFrame
        One row per instrument of the trades and per instrument that has only quotes:
        ``venue, symbol, trades, quotes, stale_quote`` (trades whose prevailing quote was too
        old), ``after_last_quote`` and ``stale_future_quote`` (trades whose cost horizon fell
        after the instrument's last quote, or on a quote too old).
    """
    instrument = instrument_keys(signed)
    names = signed.collect_schema().names()
    stale = pl.col(QUOTE_STALE).sum() if QUOTE_STALE in names else pl.lit(0, pl.UInt32)
    trades = signed.group_by(instrument).agg(
        pl.len().alias("trades"), stale.cast(pl.UInt32).alias("stale_quote")
    )
    quoted = quotes.group_by(instrument).agg(pl.len().alias("quotes"))
    out = trades.join(quoted, on=instrument, how="full", coalesce=True, nulls_equal=True)
    if costs is not None:
        missing = pl.col(FUTURE_MID_MISSING)
        later = costs.group_by(instrument).agg(
            (missing == "after_last_quote").sum().cast(pl.UInt32).alias("after_last_quote"),
            (missing == "stale").sum().cast(pl.UInt32).alias("stale_future_quote"),
        )
        out = out.join(later, on=instrument, how="left", nulls_equal=True)
    else:
        out = out.with_columns(
            pl.lit(0, pl.UInt32).alias("after_last_quote"),
            pl.lit(0, pl.UInt32).alias("stale_future_quote"),
        )
    counts = ["trades", "quotes", "stale_quote", "after_last_quote", "stale_future_quote"]
    return out.with_columns(pl.col(counts).fill_null(0)).select(*instrument, *counts)


def _instrument_name(row: dict[str, Any]) -> str:
    venue = row.get(VENUE)
    return f"{row[SYMBOL]} ({venue})" if venue else str(row[SYMBOL])


def quote_warnings(checks: pl.DataFrame, *, max_quote_age: str | None) -> list[str]:
    """Turn collected :func:`quote_checks` into one-line warnings for people.

    Says when trades and quotes share no venue, when an instrument has quotes only on
    another venue (they never sign its trades), when quotes were too old to use, and when a
    cost horizon fell after the last quote.
    """
    out: list[str] = []
    if checks.height == 0:
        return out
    has_venue = VENUE in checks.columns
    traded = checks.filter(pl.col("trades") > 0)
    quoted = checks.filter(pl.col("quotes") > 0)
    if has_venue and traded.height and quoted.height:
        trade_venues = sorted({v or "(none)" for v in traded[VENUE].to_list()})
        quote_venues = sorted({v or "(none)" for v in quoted[VENUE].to_list()})
        if not set(trade_venues) & set(quote_venues):
            out.append(
                f"trades and quotes share no venue (trades: {', '.join(trade_venues)}; quotes: "
                f"{', '.join(quote_venues)}); quotes are used only for trades of their own venue "
                "(a file without a venue column has none)"
            )
        else:
            for row in traded.filter(pl.col("quotes") == 0).iter_rows(named=True):
                others = quoted.filter(pl.col(SYMBOL) == row[SYMBOL])
                if others.height:
                    venues = ", ".join(v or "(none)" for v in others[VENUE].to_list())
                    out.append(
                        f"{_instrument_name(row)}: no quotes of this venue; quotes of {venues} "
                        "are not used for its trades"
                    )
    for row in checks.sort(SYMBOL).iter_rows(named=True):
        name = _instrument_name(row)
        if row["trades"] == 0:
            out.append(f"{name}: {row['quotes']:,} quotes but no trades (not analysed)")
            continue
        if row["stale_quote"]:
            out.append(
                f"{name}: {row['stale_quote']:,} of {row['trades']:,} trades faced a quote older "
                f"than --max-quote-age {max_quote_age} (treated as no quote: no spread, no costs, "
                "signed without quotes)"
            )
        if row["after_last_quote"]:
            out.append(
                f"{name}: {row['after_last_quote']:,} of {row['trades']:,} trades have their "
                "cost horizon after the last quote (realized spread and price impact null)"
            )
        if row["stale_future_quote"]:
            out.append(
                f"{name}: {row['stale_future_quote']:,} of {row['trades']:,} trades have only a "
                f"quote older than --max-quote-age {max_quote_age} at their cost horizon "
                "(realized spread and price impact null)"
            )
    return out


FLOW_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "vwap",
    "volume",
    "trades",
    "buy_volume",
    "sell_volume",
    "unknown_volume",
    "net_flow",
    "trade_imbalance",
    "cvd",
    "ofi",
    "ofi_normalized",
    "mid_close",
    "spread",
    "depth",
    "quote_imbalance",
    "crossed_quotes",
    "vpin",
    "kyle_lambda",
    "effective_spread",
    "realized_spread",
    "price_impact",
    "amihud",
    "roll_spread",
)
INVENTORY_COLUMNS = (
    "mm_inventory",
    "inventory_change",
    "inventory_z",
    "spread",
    "depth",
    "liquidity_state",
)


def bar_table(market: Market, columns: Sequence[str]) -> pl.LazyFrame:
    """Select ``symbol, [session,] ts`` and ``columns`` from the market bars."""
    keys = bar_keys(market.bars)
    return instrument_columns(market.bars.select(*keys, TS, *columns))


def inventory_report(market: Market, options: BarOptions) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Return the per-symbol inventory summary and the withdrawal episodes of ``market``."""
    summary = inventory_summary(market.bars, every=options.every, horizon=options.pressure_horizon)
    episodes = withdrawal_episodes(market.bars, every=options.every)
    return instrument_columns(summary), instrument_columns(episodes)


def inventory_evaluation(
    market: Market,
    options: BarOptions,
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    placebo_seed: int = 0,
    placebo_ratio: int = 1,
) -> pl.LazyFrame:
    """Return the event study of realised volatility after the withdrawal episodes of ``market``.

    See :func:`mmflow.metrics.event_study.withdrawal_volatility_study`.
    """
    episodes = withdrawal_episodes(market.bars, every=options.every)
    return withdrawal_volatility_study(
        market.bars,
        episodes,
        horizons=horizons,
        placebo_seed=placebo_seed,
        placebo_ratio=placebo_ratio,
    )


@dataclass(frozen=True)
class Profile:
    """The result of :func:`profile`.

    Attributes
    ----------
    levels
        ``[by…,] price_level, volume, buy_volume, sell_volume, delta, trades``.
    value_areas
        ``[by…,] poc, value_area_low, value_area_high, value_area_volume, total_volume``.
    footprint
        With a bar length: per bar and level, bid/ask volume, delta and imbalances.
    parameters
        Every parameter.
    """

    levels: pl.LazyFrame
    value_areas: pl.LazyFrame
    footprint: pl.LazyFrame | None
    parameters: dict[str, Any] = field(default_factory=dict)


def profile(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    bin_size: float | None = None,
    by: Sequence[str] = (SYMBOL,),
    share: float = 0.7,
    method: ValueAreaMethod = "two-row",
    every: str | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    max_levels: int | None = None,
) -> Profile:
    """Volume at price with point of control and value area, and optionally a footprint.

    ``by`` may include ``session`` (with a session selection) or ``date`` (the UTC date) to get
    one profile per symbol and session or day; profiles are per instrument (``venue`` is added
    before ``symbol``). ``max_levels`` bounds the rows of the profile (and of the footprint),
    default :func:`default_max_rows`; a smaller bin makes more rows.
    """
    selection = selection or Selection()
    signing = signing or Signing()
    check_durations(signing=signing)
    if every is not None:
        check_duration(every, what="bar length (every)")
    limit = default_max_rows() if max_levels is None else max_levels
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection)
    signed = sign_trades(
        prepared,
        prepared_quotes,
        method=signing.method,
        match=signing.match,
        lag=signing.lag,
        max_quote_age=signing.max_quote_age,
    )
    if "date" in by:
        signed = signed.with_columns(pl.col(TS).dt.date().alias("date"))
    if SYMBOL in by and VENUE not in by and VENUE in signed.collect_schema().names():
        position = list(by).index(SYMBOL)
        by = [*by[:position], VENUE, *by[position:]]
    levels = volume_profile(signed, bin_size=bin_size, by=tuple(by), max_levels=limit)
    areas = value_area(levels, share=share, by=tuple(by), method=method)
    prints = footprint(signed, every=every, bin_size=bin_size, max_levels=limit) if every else None
    parameters = parameters_of(
        selection, signing, bin_size=bin_size, by=list(by), share=share, value_area=method
    )
    return Profile(
        instrument_columns(levels),
        instrument_columns(areas),
        instrument_columns(prints) if prints is not None else None,
        parameters,
    )


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
    bars, signed = market.bars, market.signed
    if materialize is not None:  # bars and trades are read several times below
        bars, signed = (frame.lazy() for frame in materialize([bars, signed]))
    phased = phase_bars(bars, signed, parameters=parameters, offline=offline)
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


@dataclass(frozen=True)
class Chart:
    """The tables ``mmflow plot`` draws, from one run over the inputs.

    Attributes
    ----------
    bars
        Every column of :func:`market_bars` plus the phase columns of
        :func:`mmflow.metrics.phases.phase_bars` (``phase``, ``inventory_side``,
        ``distribution_score``, …), sorted by instrument and time.
    episodes
        Accumulation and distribution episodes (:func:`mmflow.metrics.phases.phase_episodes`):
        ``symbol, [session,] phase, inventory_side, start, end, …``.
    withdrawals
        Liquidity-withdrawal episodes (:func:`mmflow.metrics.inventory.withdrawal_episodes`):
        ``symbol, start, end, bars, spread_ratio, depth_ratio``.
    has_quotes
        Whether quote-based columns (OFI, spread, depth, liquidity state) could be computed.
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped.
    """

    bars: pl.LazyFrame
    episodes: pl.LazyFrame
    withdrawals: pl.LazyFrame
    has_quotes: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None


def chart(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    parameters: PhaseParameters | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
    materialize: Callable[[list[pl.LazyFrame]], list[pl.DataFrame]] | None = None,
) -> Chart:
    """Compute what a chart shows: the market bars with their phases and both kinds of episode.

    The bars are those of :func:`market_bars`, labelled by the causal phase rule exactly as
    :func:`phases` labels them (same parameters, same labels); the phase episodes are those of
    ``mmflow phases --episodes`` and the withdrawal episodes those of ``mmflow inventory --table
    episodes``. ``materialize`` works as in :func:`analyze`: the bars and signed trades are
    computed once, early, and reused.

    Parameters
    ----------
    trades, quotes
        Canonical trades and (optionally) quotes.
    options
        Bar length and metric windows.
    parameters
        The phase rule.
    signing
        How trades are signed.
    selection
        Symbols, time window, clock, session and cleaning.
    materialize
        How to collect the bars and signed trades early.

    Returns
    -------
    Chart
        Lazy tables; nothing is read until they are collected.
    """
    options = options or BarOptions()
    parameters = parameters or PhaseParameters()
    market = market_bars(trades, quotes, options=options, signing=signing, selection=selection)
    keys = bar_keys(market.bars)
    bars, signed = market.bars, market.signed
    if materialize is not None:  # bars and trades are read several times below
        bars, signed = (frame.lazy() for frame in materialize([bars, signed]))
    phased = phase_bars(bars, signed, parameters=parameters)
    episodes = phase_episodes(phased, every=options.every, trades=signed, parameters=parameters)
    _, withdrawals = inventory_report(replace(market, bars=bars), options)
    record = {**market.parameters, **{f"phase_{k}": v for k, v in asdict(parameters).items()}}
    return Chart(
        phased.sort(*keys, TS),
        episodes,
        withdrawals,
        market.has_quotes,
        record,
        market.dropped,
    )
