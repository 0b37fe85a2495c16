"""What a file is: format, kind, rows, symbols, time span, side encoding and data-quality findings.

Each file is summarised by one aggregate query (trades and quotes collected together), so even
large files are read once and never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import polars as pl

from mmflow.errors import MmflowError, ReaderError
from mmflow.io import (
    Loaded,
    ReadOptions,
    RowAccount,
    file_size,
    find_sources,
    read_by_its_primary,
    read_inputs,
)
from mmflow.io.checks import UNPARSEABLE
from mmflow.progress import OnStage, Stage, report
from mmflow.render.messages import skipped_note
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    BID_PRICE,
    ISO_NS,
    SIZE,
    SYMBOL,
    TRADE_ID,
    TS,
    TS_EVENT,
)

__all__ = [
    "INSPECTING",
    "FileReport",
    "InspectRun",
    "inspect_file",
    "inspect_paths",
]


@dataclass
class FileReport:
    """What :func:`inspect_file` found in one file (the ``--to json`` object per file)."""

    path: str
    format: str
    kind: str
    rows: int
    symbols: list[str]
    start: str | None
    end: str | None
    start_event: str | None = None
    end_event: str | None = None
    trades: int = 0
    quotes: int = 0
    side_known: float | None = None
    buy_trades: int = 0
    sell_trades: int = 0
    buy_volume_share: float | None = None
    issues: list[str] = field(default_factory=list)
    rows_used: int = 0
    rows_dropped: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as a plain dict (times are ISO-8601 text with nanoseconds)."""
        return dict(self.__dict__)


def _common_stats(lf: pl.LazyFrame) -> list[pl.Expr]:
    names = lf.collect_schema().names()
    exprs = [
        pl.len().alias("rows"),
        pl.col(SYMBOL).unique().sort().implode().alias("symbols"),
        pl.col(TS).min().dt.to_string(ISO_NS).alias("start"),
        pl.col(TS).max().dt.to_string(ISO_NS).alias("end"),
        (pl.col(TS).diff() < 0).over(SYMBOL).sum().alias("out_of_order"),
    ]
    if TS_EVENT in names:
        exprs += [
            pl.col(TS_EVENT).min().dt.to_string(ISO_NS).alias("start_event"),
            pl.col(TS_EVENT).max().dt.to_string(ISO_NS).alias("end_event"),
        ]
    return exprs


def _trade_stats(lf: pl.LazyFrame) -> pl.LazyFrame:
    names = lf.collect_schema().names()
    side = pl.col(AGGRESSOR_SIDE)
    exprs = [
        *_common_stats(lf),
        (side != 0).sum().alias("side_known_count"),
        (side == 1).sum().alias("buy_trades"),
        (side == -1).sum().alias("sell_trades"),
        pl.col(SIZE).filter(side == 1).sum().alias("buy_volume"),
        pl.col(SIZE).filter(side != 0).sum().alias("known_volume"),
    ]
    if TRADE_ID in names:
        ids = pl.col(TRADE_ID).drop_nulls()
        exprs.append((ids.len() - ids.n_unique()).alias("duplicate_trade_ids"))
    return lf.select(exprs)


def _quote_stats(lf: pl.LazyFrame) -> pl.LazyFrame:
    bid, ask = pl.col(BID_PRICE), pl.col(ASK_PRICE)
    return lf.select(
        *_common_stats(lf),
        (bid > ask).sum().alias("crossed_quotes"),
        (bid == ask).sum().alias("locked_quotes"),
        (bid.is_null() ^ ask.is_null()).sum().alias("one_sided_quotes"),
        (bid.is_null() & ask.is_null()).sum().alias("empty_quotes"),
    )


_ISSUE_TEXT = {
    "out_of_order": "{n} {what} rows out of time order (sorted before analysis)",
    "duplicate_trade_ids": "{n} duplicate trade ids",
    "crossed_quotes": "{n} crossed quotes (bid > ask)",
    "locked_quotes": "{n} locked quotes (bid = ask)",
    "one_sided_quotes": "{n} one-sided quotes (one side empty)",
    "empty_quotes": "{n} empty quotes (both sides empty)",
}


def _issues(stats: dict[str, Any], what: str) -> list[str]:
    return [
        text.format(n=f"{stats[key]:,}", what=what)
        for key, text in _ISSUE_TEXT.items()
        if stats.get(key)
    ]


def _earliest(*values: str | None) -> str | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latest(*values: str | None) -> str | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def inspect_file(loaded: Loaded, options: ReadOptions | None = None) -> FileReport:
    """Summarise one input file.

    Parameters
    ----------
    loaded
        A file as returned by :func:`mmflow.io.load`.
    options
        The options it was read with (for format-specific findings).

    Returns
    -------
    FileReport
        Format, kind, row counts, symbols, time span on both clocks, the share of trades with a
        vendor side, and data-quality findings.

    Raises
    ------
    ReaderError
        When the file cannot be read to the end (truncated or corrupt).
    """
    plans = []
    if loaded.frames.trades is not None:
        plans.append(_trade_stats(loaded.frames.trades))
    if loaded.frames.quotes is not None:
        plans.append(_quote_stats(loaded.frames.quotes))
    if loaded.account is not None:
        plans.append(loaded.account)
    try:
        frames = pl.collect_all(plans)
        account = RowAccount.from_frame(frames.pop()) if loaded.account is not None else None
        results = [df.row(0, named=True) for df in frames]
    except MmflowError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot read the file to the end ({first}); is it truncated or corrupt?"
        raise ReaderError(msg, path=loaded.source.display) from exc
    trade = results[0] if loaded.frames.trades is not None else None
    quote = results[-1] if loaded.frames.quotes is not None else None
    report = FileReport(
        path=loaded.source.display,
        format=loaded.format.name,
        kind=loaded.kind,
        rows=sum(r["rows"] for r in results),
        symbols=sorted({s for r in results for s in r["symbols"]}),
        start=_earliest(*(r["start"] for r in results)),
        end=_latest(*(r["end"] for r in results)),
        start_event=_earliest(*(r.get("start_event") for r in results)),
        end_event=_latest(*(r.get("end_event") for r in results)),
    )
    if trade is not None:
        report.trades = trade["rows"]
        report.side_known = trade["side_known_count"] / trade["rows"] if trade["rows"] else None
        report.buy_trades = trade["buy_trades"]
        report.sell_trades = trade["sell_trades"]
        known = trade["known_volume"]
        report.buy_volume_share = trade["buy_volume"] / known if known else None
        report.issues += _issues(trade, "trade")
    if quote is not None:
        report.quotes = quote["rows"]
        if report.quotes == 0 and report.kind == "trades+quotes":
            report.kind = "trades+bbo"  # e.g. a Databento tbbo CSV: rtype 1 but no book updates
        report.issues += _issues(quote, "quote")
    if account is not None:
        _account_into(report, account)
    if report.rows == 0:
        report.issues.append("no rows")
    if loaded.format.findings is not None:
        report.issues += loaded.format.findings(loaded.source, options or ReadOptions())
    return report


def _account_into(report: FileReport, account: RowAccount) -> None:
    """Put rows read, used and dropped (by reason) into ``report``, and issues for people."""
    report.rows_used = report.rows
    read = {table: account.total(table, "read") for table in account.tables()}
    if "trades" in read:
        report.trades = read["trades"]
    if "quotes" in read:
        report.quotes = read["quotes"]
    report.rows = sum(read.values())
    for table in account.tables():
        for reason, rows in account.reasons(table).items():
            report.dropped.append({"table": table, "reason": reason, "rows": rows})
            report.issues.append(f"{rows:,} {table} dropped: {reason}")
        for reason, rows in account.reasons(table, "changed").items():
            report.issues.append(f"{rows:,} {table}: {reason}")
    report.rows_dropped = sum(d["rows"] for d in report.dropped)
    for entry in account.entries:
        if entry.reason == UNPARSEABLE and entry.line is not None:
            report.issues.append(f"first unparseable row at line {entry.line:,}: {entry.detail}")
            break


@dataclass
class InspectRun:
    """Reports for the files that could be read, and the errors of those that could not."""

    reports: list[FileReport] = field(default_factory=list)
    errors: list[MmflowError] = field(default_factory=list)
    note: str | None = None


INSPECTING = "inspecting"


def inspect_paths(
    paths: Iterable[str],
    fmt: str = "auto",
    options: ReadOptions | None = None,
    *,
    stdin: BinaryIO | None = None,
    exclude: Sequence[str] = (),
    strict: bool = False,
    on_stage: OnStage | None = None,
) -> InspectRun:
    """Inspect every file ``paths`` name, carrying on past files that cannot be read.

    Parameters
    ----------
    paths
        Files, globs, directories, or ``-``.
    fmt
        Format name, or ``auto``.
    options
        Reading options.
    stdin
        The stream ``-`` reads.
    exclude
        Glob patterns of files a folder search leaves out.
    strict
        Report every skipped folder entry (empty, no known layout, unreadable) as an error.
    on_stage
        Told before each file is inspected (``inspecting``, file N of M, bytes so far).

    Returns
    -------
    InspectRun
        One report per readable file, and one error per unreadable one, in input order; a
        note listing the folder entries skipped.
    """
    run = InspectRun()
    found = find_sources(paths, stdin=stdin, exclude=exclude)
    given = {s.path.resolve() for s in found.sources}
    skipped = list(found.skipped)
    sizes = [file_size(s) for s in found.sources]
    total, done = sum(sizes), 0
    try:
        for index, source in enumerate(found.sources):
            report(on_stage, Stage(INSPECTING, index, len(sizes), source.display, done, total))
            done += sizes[index]
            try:
                inputs = read_inputs([source], fmt, options)
                skipped += inputs.skipped
                for loaded in inputs.loaded:
                    if not read_by_its_primary(loaded, given):
                        run.reports.append(inspect_file(loaded, options))
            except MmflowError as exc:
                run.errors.append(exc)
    finally:
        report(on_stage, Stage(INSPECTING, len(sizes), len(sizes), finished=True))
    if strict:
        run.errors += [ReaderError(f"{s.reason} (--strict)", path=s.path) for s in skipped]
    else:
        run.note = skipped_note(skipped)
    return run
