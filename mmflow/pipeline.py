"""The analyses the commands run, each one lazy plan built from canonical frames.

The command-line layer calls one function here per command and collects the result once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Literal

import polars as pl

from mmflow.clean import clean_taq
from mmflow.convert import Converted, convert
from mmflow.errors import MmflowError, NoDataError, ReaderError
from mmflow.io import Frames, Loaded, RowAccount, combine
from mmflow.io.checks import account_frame, counted, filtered
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
    flow_bars,
    flow_summary,
    summary_from_bars,
)
from mmflow.metrics.impact import amihud, cost_bars, kyle_lambda, roll_spread, trade_costs
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
from mmflow.metrics.quotes import QUOTE_SOURCE, QUOTE_USABLE, QuoteMatch, attach_quotes
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
    TableSchema,
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


def _utc(value: datetime) -> pl.Expr:
    """Return ``value`` as a UTC literal; a naive datetime is taken to be UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return pl.lit(aware, dtype=pl.Datetime("ns", "UTC"))


def _reclocked(lf: pl.LazyFrame, selection: Selection) -> pl.LazyFrame:
    """Put the chosen clock in ``ts`` and label sessions (when a session is selected)."""
    names = lf.collect_schema().names()
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
    if selection.start is not None:
        rules.append(("before --start", pl.col(TS) < _utc(selection.start)))
    if selection.end is not None:
        rules.append(("at or after --end", pl.col(TS) >= _utc(selection.end)))
    if selection.session is not None:
        rules.append(("outside --session", pl.col(SESSION).is_null()))
    return rules


def prepare(lf: pl.LazyFrame, table: TableSchema, selection: Selection) -> pl.LazyFrame:
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

    Returns
    -------
    pl.LazyFrame
        The prepared rows.
    """
    require(lf, table, what=f"canonical {table.name}")
    lf = _reclocked(lf, selection)
    rules = selection_rules(selection)
    if rules:
        lf = lf.filter(~pl.any_horizontal(rule.fill_null(value=True) for _, rule in rules))
    return lf.sort(TS, maintain_order=True)


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
    own = [item for item in inputs if item.account is not None]
    frames: list[pl.DataFrame] = []
    for start in range(0, len(own), BATCH):
        batch = own[start : start + BATCH]
        frames += collect([item.account for item in batch if item.account is not None], batch)
    return frames + (collect(list(plans), inputs) if plans else [])


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
    if len(inputs) <= LAZY_INPUTS:
        return list(inputs)
    read: list[Loaded] = []
    for start in range(0, len(inputs), BATCH):
        batch = inputs[start : start + BATCH]
        plans = [
            plan
            for item in batch
            for plan in (item.frames.trades, item.frames.quotes, item.account)
            if plan is not None
        ]
        frames = iter(collect(plans, batch))
        for item in batch:
            trades, quotes, account = (
                next(frames).lazy() if plan is not None else None
                for plan in (item.frames.trades, item.frames.quotes, item.account)
            )
            done = Frames(trades, quotes, item.frames.notes)
            read.append(Loaded(item.source, item.format, done, account))
    return read


def gather(inputs: Sequence[Loaded], table: TableSchema) -> pl.LazyFrame | None:
    """Concatenate the trades (or quotes) of several inputs into one lazy frame.

    For many files, pass the inputs through :func:`read_many` first.
    """
    if table is TRADES:
        frames = [i.frames.trades for i in inputs if i.frames.trades is not None]
    else:
        frames = [i.frames.quotes for i in inputs if i.frames.quotes is not None]
    combined = combine(frames)
    if combined is None or len(frames) == 1:
        return combined
    names = combined.collect_schema().names()
    return combined.select(
        [n for n in table.names if n in names] + [n for n in names if n not in table.names]
    )


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
    """

    method: Method = "auto"
    match: QuoteMatch = "strict"
    lag: str = "0s"
    bvc_distribution: Distribution = "normal"
    bvc_dof: float | None = None


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`: lazy tables plus the parameters that produced them.

    Attributes
    ----------
    summary
        One row per symbol.
    bars
        One row per symbol and bar.
    mix
        How many trades each signing rule signed, per symbol.
    parameters
        Every parameter, for file metadata and reproducibility.
    dropped
        With cleaning: ``symbol, date, rule, rows_dropped, table`` (no row is lost silently).
    paths
        ``symbol, inventory_path``: the bar-by-bar inventory, for a sparkline.
    """

    summary: pl.LazyFrame
    bars: pl.LazyFrame
    mix: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None
    paths: pl.LazyFrame | None = None


def parameters_of(selection: Selection, signing: Signing, **extra: Any) -> dict[str, Any]:
    """Return every parameter of a run as a plain dict (stored in parquet metadata)."""
    return {
        **extra,
        "method": signing.method,
        "quote_match": signing.match,
        "quote_lag": signing.lag,
        "bvc_distribution": signing.bvc_distribution,
        "bvc_dof": signing.bvc_dof,
        "session": (
            f"{selection.session.start:%H:%M}-{selection.session.end:%H:%M} {selection.session.tz}"
            if selection.session
            else None
        ),
        "clock": selection.clock,
        "symbols": list(selection.symbols),
        "start": selection.start.isoformat() if selection.start else None,
        "end": selection.end.isoformat() if selection.end else None,
        "clean": selection.clean,
    }


def prepare_market(
    trades: pl.LazyFrame, quotes: pl.LazyFrame | None, selection: Selection
) -> tuple[pl.LazyFrame, pl.LazyFrame | None, pl.LazyFrame | None]:
    """Prepare trades and quotes; with ``clean="taq"`` also clean them.

    Returns the trades, the quotes and the per-rule dropped counts (``None`` without cleaning).
    """
    prepared_quotes = prepare(quotes, QUOTES, selection) if quotes is not None else None
    prepared_trades = prepare(trades, TRADES, selection)
    if selection.clean != "taq":
        return prepared_trades, prepared_quotes, None
    cleaned = clean_taq(prepared_trades, prepared_quotes)
    assert cleaned.trades is not None
    dropped = [cleaned.trades.dropped.with_columns(pl.lit("trades").alias("table"))]
    if cleaned.quotes is not None:
        dropped.append(cleaned.quotes.dropped.with_columns(pl.lit("quotes").alias("table")))
    cleaned_quotes = cleaned.quotes.frame if cleaned.quotes is not None else None
    return cleaned.trades.frame, cleaned_quotes, pl.concat(dropped, how="vertical_relaxed")


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
) -> Analysis:
    """Run the main analysis: everything per bar, and one summary row per symbol.

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
    market = market_bars(trades, quotes, options=options, signing=signing, selection=selection)
    signing = signing or Signing()
    if signing.method == "bvc":
        flow = summary_from_bars(market.bars, market.signed)
    else:
        flow = flow_summary(market.signed)
    areas = value_area(volume_profile(market.signed)).select(
        SYMBOL, "poc", "value_area_low", "value_area_high"
    )
    bars, signed = market.bars, market.signed
    if materialize is not None:
        # Everything below reads the bars (and the signed trades) several times: compute them
        # and the trade-level summaries in one pass over the inputs, then reuse the results.
        frames = materialize([bars, flow, areas, signed])
        bars, flow, areas, signed = (frame.lazy() for frame in frames)
    totals = bars.group_by(SYMBOL).agg(
        (pl.col("ofi").sum() if market.has_quotes else pl.lit(None, pl.Float64)).alias("ofi")
    )
    inventory = inventory_summary(bars, every=options.every, horizon=options.pressure_horizon)
    phased = phase_bars(bars, signed, parameters=phase_parameters)
    episodes = phase_episodes(
        phased, every=options.every, trades=signed, parameters=phase_parameters
    )
    current = phased.group_by(SYMBOL).agg(
        pl.col("phase").drop_nulls().last().alias("phase"),
        pl.col("inventory_side").filter(pl.col("phase").is_not_null()).last(),
        pl.col("distribution_score").drop_nulls().last().alias("distribution_score"),
    )
    last_episode = (
        episodes.sort("end")
        .group_by(SYMBOL)
        .agg(
            pl.col("phase").last().alias("last_episode"),
            pl.col("inventory_side").last().alias("last_episode_side"),
            pl.col("start").last().alias("last_episode_start"),
            pl.col("end").last().alias("last_episode_end"),
        )
    )
    summary = (
        flow.join(totals, on=SYMBOL, how="left")
        .join(inventory, on=SYMBOL, how="left")
        .select(*SUMMARY_COLUMNS)
        .join(current, on=SYMBOL, how="left")
        .join(last_episode, on=SYMBOL, how="left")
        .join(areas, on=SYMBOL, how="left")
        .sort(SYMBOL)
    )
    paths = bars.group_by(SYMBOL).agg(pl.col("mm_inventory").alias("inventory_path"))
    parameters = {
        **market.parameters,
        **{f"phase_{k}": v for k, v in asdict(phase_parameters).items()},
    }
    phased = phased.sort(*bar_keys(market.bars), TS)
    return Analysis(summary, phased, market.mix, parameters, market.dropped, paths)


SUMMARY_COLUMNS = (
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
        How many trades each rule signed, per symbol.
    diagnostics
        Per symbol: ``trades, no_quote, no_quote_unsigned, unusable_quote,
        unusable_quote_unsigned, nan_price`` (counts behind warnings; ``no_quote`` and
        ``unusable_quote`` count only trades that needed a quote, ``*_unsigned`` those of them
        the method left at 0).
    parameters
        Every parameter.
    dropped
        With cleaning: rows each rule dropped (see :class:`Analysis`).
    """

    trades: pl.LazyFrame
    mix: pl.LazyFrame
    diagnostics: pl.LazyFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None


def _quote_diagnostics(names: Sequence[str]) -> list[pl.Expr]:
    """Count trades the quote test could not decide, and how many of them were left unsigned.

    Only trades a quote was needed for count: a vendor-signed trade never looks at a quote.
    ``*_unsigned`` counts those the fallback left at 0 (``--method quote`` has none; the tick
    rule has none before a symbol's first price change).
    """
    zero = pl.lit(0, pl.UInt32)
    if QUOTE_SOURCE not in names:
        return [zero.alias(name) for name in _QUOTE_DIAGNOSTICS]
    needed = pl.col(SIGN_METHOD) != "vendor"
    missing = needed & pl.col(QUOTE_SOURCE).is_null()
    unusable = needed & pl.col(QUOTE_SOURCE).is_not_null() & ~pl.col(QUOTE_USABLE)
    unsigned = pl.col(TRADE_SIGN) == 0
    return [
        missing.sum().alias("no_quote"),
        (missing & unsigned).sum().alias("no_quote_unsigned"),
        unusable.sum().alias("unusable_quote"),
        (unusable & unsigned).sum().alias("unusable_quote_unsigned"),
    ]


_QUOTE_DIAGNOSTICS = ("no_quote", "no_quote_unsigned", "unusable_quote", "unusable_quote_unsigned")


def classify(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    signing: Signing | None = None,
    every: str = "1m",
    selection: Selection | None = None,
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

    Returns
    -------
    Classification
        Lazy per-trade table, method mix and diagnostics.
    """
    selection = selection or Selection()
    signing = signing or Signing()
    prepared, prepared_quotes, dropped = prepare_market(trades, quotes, selection)
    parameters = parameters_of(selection, signing, bar=every)
    if signing.method == "bvc":
        unsigned = prepared.with_columns(pl.lit(0, pl.Int8).alias(TRADE_SIGN))
        bars = bulk_volume_classification(
            flow_bars(unsigned, every=every),
            distribution=signing.bvc_distribution,
            dof=signing.bvc_dof,
        ).select(
            SYMBOL,
            TS,
            "close",
            "volume",
            "trades",
            pl.col(BVC_BUY_VOLUME).alias("buy_volume"),
            pl.col(BVC_SELL_VOLUME).alias("sell_volume"),
        )
        mix = method_mix(prepared.with_columns(pl.lit("bvc").alias(SIGN_METHOD)))
        diagnostics = prepared.group_by(SYMBOL).agg(
            pl.len().alias("trades"),
            *_quote_diagnostics([]),
            pl.col(PRICE).is_nan().sum().alias("nan_price"),
        )
        return Classification(bars, mix, diagnostics, parameters, dropped)
    signed = sign_trades(
        prepared, prepared_quotes, method=signing.method, match=signing.match, lag=signing.lag
    )
    names = signed.collect_schema().names()
    columns = [TS, SYMBOL, PRICE, SIZE, AGGRESSOR_SIDE, TRADE_SIGN, SIGN_METHOD]
    columns += [c for c in (MID_PRICE, SPREAD) if c in names]
    diagnostics = signed.group_by(SYMBOL).agg(
        pl.len().alias("trades"),
        *_quote_diagnostics(names),
        pl.col(PRICE).is_nan().sum().alias("nan_price"),
    )
    return Classification(
        signed.select(columns), method_mix(signed), diagnostics, parameters, dropped
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
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection)
    return evaluate_signing(
        prepared,
        prepared_quotes,
        match=signing.match,
        lag=signing.lag,
        every=every,
        bvc_distribution=signing.bvc_distribution,
        bvc_dof=signing.bvc_dof,
    )


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
        symbol, trades = row[SYMBOL], row["trades"]
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
        if row["unusable_quote"]:
            outcome = _fallback_outcome(row["unusable_quote"], row["unusable_quote_unsigned"])
            out.append(
                f"{symbol}: {row['unusable_quote']:,} trades faced a crossed, locked or "
                f"one-sided quote ({outcome})"
            )
    if scores is not None:
        tick = scores.filter((pl.col("method") == "tick") & (pl.col("classified") > 0))
        out.extend(
            f"{row[SYMBOL]}: the vendor side agrees with the tick rule on only "
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
    """

    every: str = "1m"
    horizon: str = "5m"
    lookback: int = 240
    pressure_horizon: int = 5
    vpin_window: int = 50
    buckets_per_day: int = 50
    spread_factor: float = 2.0
    depth_factor: float = 0.5


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
        One row per symbol (and session) and bar: flow, OFI and quote columns (when quotes
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
    """

    bars: pl.LazyFrame
    signed: pl.LazyFrame
    mix: pl.LazyFrame
    has_quotes: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped: pl.LazyFrame | None = None


def market_bars(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame | None = None,
    *,
    options: BarOptions | None = None,
    signing: Signing | None = None,
    selection: Selection | None = None,
) -> Market:
    """Build the full per-bar table: flow, CVD, OFI, quotes, VPIN, costs, impact, inventory.

    Every series is computed per symbol (and session) on a regular bar grid, in one lazy plan.
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

    Returns
    -------
    Market
        The lazy bar table and what it was built from.
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
    if signing.method == "bvc":
        signed = prepared.with_columns(
            pl.lit(0, pl.Int8).alias(TRADE_SIGN), pl.lit("bvc").alias(SIGN_METHOD)
        )
    else:
        signed = sign_trades(
            prepared, prepared_quotes, method=signing.method, match=signing.match, lag=signing.lag
        )
    if prepared_quotes is not None and MID_PRICE not in signed.collect_schema().names():
        # trade costs need the prevailing mid even when the sign did not use quotes
        signed = attach_quotes(signed, prepared_quotes, match=signing.match, lag=signing.lag)
    # Keep only what later steps use, once: the signed trades feed bars, costs, VPIN and Roll.
    # (One cache only: polars 2.1 can panic on a cache nested inside another.)
    keys = [SYMBOL, SESSION] if SESSION in signed.collect_schema().names() else [SYMBOL]
    needed = [*keys, TS, PRICE, SIZE, TRADE_SIGN, SIGN_METHOD, MID_PRICE]
    names = signed.collect_schema().names()
    signed = signed.select([n for n in needed if n in names]).cache()
    if signing.method == "bvc":
        bars = bvc_flow_bars(
            signed, every=every, distribution=signing.bvc_distribution, dof=signing.bvc_dof
        )
    else:
        bars = flow_bars(signed, every=every)
    if prepared_quotes is not None:
        grid = bars.select(SYMBOL, TS)
        quoted = quote_bars(prepared_quotes, every=every, grid=grid).select(
            SYMBOL, TS, *QUOTE_BAR_COLUMNS
        )
        bars = bars.join(quoted, on=[SYMBOL, TS], how="left", maintain_order="left")
        costs = cost_bars(
            trade_costs(signed, prepared_quotes, horizon=options.horizon), every=every
        ).select(*keys, TS, *COST_COLUMNS)
        bars = bars.join(costs, on=[*keys, TS], how="left", maintain_order="left")
    else:
        bars = bars.with_columns(
            pl.lit(None, pl.UInt32 if name == "crossed_quotes" else pl.Float64).alias(name)
            for name in (*QUOTE_BAR_COLUMNS, *COST_COLUMNS)
        )
    bars = bars.sort(*keys, TS)  # joins do not keep order; the series below need time order
    buckets = vpin_buckets(
        signed, buckets_per_day=options.buckets_per_day, window=options.vpin_window
    )
    bars = vpin_at(bars, buckets, every=every).sort(*keys, TS)
    bars = amihud(kyle_lambda(bars, window=options.lookback), window=options.lookback)
    rolls = roll_spread(signed, every=every).select(*keys, TS, "roll_spread")
    bars = bars.join(rolls, on=[*keys, TS], how="left", maintain_order="left")
    bars = inventory_bars(
        bars,
        lookback=options.lookback,
        spread_factor=options.spread_factor,
        depth_factor=options.depth_factor,
    ).sort(*keys, TS)
    return Market(
        bars,
        signed,
        method_mix(signed),
        prepared_quotes is not None,
        parameters,
        dropped,
    )


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
    return market.bars.select(*keys, TS, *columns)


def inventory_report(market: Market, options: BarOptions) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Return the per-symbol inventory summary and the withdrawal episodes of ``market``."""
    summary = inventory_summary(market.bars, every=options.every, horizon=options.pressure_horizon)
    episodes = withdrawal_episodes(market.bars, every=options.every)
    return summary, episodes


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
) -> Profile:
    """Volume at price with point of control and value area, and optionally a footprint.

    ``by`` may include ``session`` (with a session selection) or ``date`` (the UTC date) to get
    one profile per symbol and session or day.
    """
    selection = selection or Selection()
    signing = signing or Signing()
    prepared, prepared_quotes, _ = prepare_market(trades, quotes, selection)
    signed = sign_trades(
        prepared, prepared_quotes, method=signing.method, match=signing.match, lag=signing.lag
    )
    if "date" in by:
        signed = signed.with_columns(pl.col(TS).dt.date().alias("date"))
    levels = volume_profile(signed, bin_size=bin_size, by=tuple(by))
    areas = value_area(levels, share=share, by=tuple(by), method=method)
    prints = footprint(signed, every=every, bin_size=bin_size) if every else None
    parameters = parameters_of(
        selection, signing, bin_size=bin_size, by=list(by), share=share, value_area=method
    )
    return Profile(levels, areas, prints, parameters)


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
    return Phases(bars, episodes, study, scores, record)


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
