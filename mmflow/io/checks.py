"""Plausibility checks every reader's output passes through, and the row account.

Every file a reader turns into canonical frames goes through :func:`check_frames` once, in
:func:`mmflow.io.read_source`, whatever its format. Rows no analysis can use are dropped and
counted by reason, never passed on and never lost silently:

* a missing timestamp, or one outside the plausible range (before 1990-01-01 or after tomorrow,
  UTC, unless :class:`Limits` says otherwise): such a time would stretch a bar grid over decades;
* a trade price or size that is missing, NaN, infinite or not positive (a negative price only for
  formats that allow one, :attr:`mmflow.io.formats.Format.negative_prices`);
* a missing symbol.

A quote side (price and size) whose price or size is NaN, infinite or not positive is emptied
(both set to null, the canonical "no quote on this side") and counted; the quote row is kept.

What was read, dropped, changed and finally used is recorded in one long table (:data:`ACCOUNT`)
that builds a :class:`RowAccount`: rows read = rows used + rows dropped, by reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

import polars as pl

from mmflow.errors import ReaderError
from mmflow.schema import (
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    PRICE,
    SIZE,
    SYMBOL,
    TS,
    TS_EVENT,
)

__all__ = [
    "ACCOUNT",
    "EARLIEST",
    "REPEATED_HEADER",
    "UNPARSEABLE",
    "AccountKind",
    "Entry",
    "Limits",
    "RowAccount",
    "account_frame",
    "check_table",
    "counted",
    "filtered",
    "latest_default",
]

EARLIEST: Final = datetime(1990, 1, 1, tzinfo=UTC)
"""The default earliest plausible timestamp."""

ACCOUNT: Final[dict[str, pl.DataType]] = {
    "table": pl.String(),
    "file": pl.String(),
    "kind": pl.String(),
    "reason": pl.String(),
    "rows": pl.Int64(),
    "line": pl.Int64(),
    "detail": pl.String(),
}
"""Columns of a row-account table: which table (``trades``/``quotes``) and file, the ``kind`` of
entry (``read``, ``dropped``, ``changed``, ``used``), the reason, a row count, and for parse
errors the first line and its text."""

_NS_MIN: Final = datetime(1678, 1, 1, tzinfo=UTC)
_NS_MAX: Final = datetime(2262, 4, 11, tzinfo=UTC)
"""The span of ``Datetime("ns")`` (int64 nanoseconds since 1970), to whole days."""

AccountKind = Literal["read", "dropped", "changed", "used"]

UNPARSEABLE: Final = "unparseable row"
REPEATED_HEADER: Final = "repeated header line"


def latest_default(today: date | None = None) -> datetime:
    """Return the default end of the plausible range: the end of tomorrow, UTC.

    Examples
    --------
    >>> latest_default(date(2024, 7, 19))
    datetime.datetime(2024, 7, 21, 0, 0, tzinfo=datetime.timezone.utc)
    """
    day = today or datetime.now(UTC).date()
    return datetime.combine(day + timedelta(days=2), datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class Limits:
    """The plausible range of timestamps: ``valid_from`` ≤ ts < ``valid_until`` (UTC).

    ``valid_until`` ``None`` means the end of tomorrow at the time of the run.
    """

    valid_from: datetime = EARLIEST
    valid_until: datetime | None = None

    def bounds(self) -> tuple[datetime, datetime]:
        """Return both bounds as UTC datetimes, within what nanosecond timestamps can hold."""
        until = self.valid_until or latest_default()
        start, end = _as_utc(self.valid_from), _as_utc(until)
        return max(start, _NS_MIN), min(end, _NS_MAX)

    def describe(self) -> str:
        """Say the range for people, e.g. ``1990-01-01 .. 2024-07-21``."""
        start, end = self.bounds()
        return f"{_stamp(start)} .. {_stamp(end)}"


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d") if value.time() == datetime.min.time() else value.isoformat()


def _finite_positive(name: str, *, negative: bool) -> pl.Expr:
    value = pl.col(name)
    return value.is_finite() if negative else value.is_finite() & (value > 0)


def _trade_rules(
    names: Sequence[str], limits: Limits, *, negative: bool
) -> list[tuple[str, pl.Expr]]:
    """Each drop reason with the condition that marks a row (the first true reason counts)."""
    start, end = limits.bounds()
    return list(_rules(tuple(names), start, end, limits.describe(), negative=negative))


@functools.lru_cache(maxsize=64)
def _rules(
    names: tuple[str, ...], start: datetime, end: datetime, described: str, *, negative: bool
) -> tuple[tuple[str, pl.Expr], ...]:
    """Build the rules once per schema and range (folder runs read thousands of alike files)."""
    low = pl.lit(start, dtype=pl.Datetime("ns", "UTC"))
    high = pl.lit(end, dtype=pl.Datetime("ns", "UTC"))
    span = f"timestamp outside {described}"
    rules = [
        ("missing timestamp", pl.col(TS).is_null()),
        (span, (pl.col(TS) < low) | (pl.col(TS) >= high)),
    ]
    if TS_EVENT in names:
        event = pl.col(TS_EVENT)
        rules.append((span, event.is_not_null() & ((event < low) | (event >= high))))
    if SYMBOL in names:
        rules.append(("missing symbol", pl.col(SYMBOL).is_null()))
    for column in (PRICE, SIZE):
        if column not in names:
            continue
        value = pl.col(column)
        rules += [
            (f"missing {column}", value.is_null()),
            (f"NaN or infinite {column}", ~value.is_finite()),
        ]
        if column == SIZE or not negative:
            rules.append((f"non-positive {column}", value <= 0))
    return tuple(rules)


def _side_fixes(names: Sequence[str], *, negative: bool) -> list[tuple[str, pl.Expr, str, str]]:
    """Quote sides to empty: (reason, condition, price column, size column)."""
    fixes = []
    for side, price, size in (("bid", BID_PRICE, BID_SIZE), ("ask", ASK_PRICE, ASK_SIZE)):
        if price not in names:
            continue
        bad_price = ~_finite_positive(price, negative=negative)
        bad = pl.col(price).is_not_null() & bad_price
        if size in names:
            bad_size = pl.col(size).is_not_null() & ~_finite_positive(size, negative=False)
            bad = bad | (pl.col(price).is_not_null() & bad_size)
        reason = f"{side} side emptied: NaN, infinite or non-positive price or size"
        fixes.append((reason, bad.fill_null(value=False), price, size))
    return fixes


def _first_reason(rules: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    """Return the first rule's reason whose condition holds for a row, else null."""
    reason = pl.lit(None, dtype=pl.String)
    for text, condition in reversed(rules):
        reason = pl.when(condition.fill_null(value=False)).then(pl.lit(text)).otherwise(reason)
    return reason


def check_table(
    lf: pl.LazyFrame,
    *,
    table: str,
    file: str,
    limits: Limits,
    negative_prices: bool = False,
    by: str | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Drop and count implausible rows of one canonical table; empty invalid quote sides.

    Parameters
    ----------
    lf
        Canonical trades or quotes of one file.
    table
        ``trades`` or ``quotes``.
    file
        The file's name for people.
    limits
        The plausible time range.
    negative_prices
        Whether the format allows prices ≤ 0 (spreads, calendar instruments).
    by
        A column naming each row's file (a grouped read of many files,
        :mod:`mmflow.io.many`): count per value of that column, which becomes the account's
        ``file``; ``file`` is then ignored.

    Returns
    -------
    tuple[pl.LazyFrame, pl.LazyFrame]
        The kept rows, and their account (:data:`ACCOUNT` columns: rows read, dropped per
        reason, quote sides emptied per side).
    """
    names = lf.collect_schema().names()
    rules = _trade_rules(names, limits, negative=negative_prices)
    fixes = _side_fixes(names, negative=negative_prices)
    tagged = lf.with_columns(_first_reason(rules).alias(_TAG))
    kept = tagged.filter(pl.col(_TAG).is_null()).drop(_TAG)
    emptied = []
    for _, bad, price, size in fixes:
        emptied.append(pl.when(bad).then(None).otherwise(pl.col(price)).alias(price))
        if size in names:
            emptied.append(pl.when(bad).then(None).otherwise(pl.col(size)).alias(size))
    if emptied:
        kept = kept.with_columns(emptied)
    counts = [pl.len().alias("read|read"), *_reason_counts(rules)]
    counts += [
        (pl.col(_TAG).is_null() & bad).sum().alias(f"changed|{reason}")
        for reason, bad, _, _ in fixes
    ]
    totals = (
        tagged.select(counts)
        if by is None
        else tagged.group_by(by, maintain_order=True).agg(counts)
    )
    return kept, _account_rows(totals, table=table, file=file, by=by)


_TAG: Final = "__mmflow_reason"


def _reason_counts(rules: Sequence[tuple[str, pl.Expr]]) -> list[pl.Expr]:
    """Rows tagged with each reason, as columns named ``dropped|<reason>``."""
    reasons = dict.fromkeys(reason for reason, _ in rules)
    return [(pl.col(_TAG) == reason).sum().alias(f"dropped|{reason}") for reason in reasons]


def _account_rows(
    wide: pl.LazyFrame, *, table: str, file: str | None, by: str | None = None
) -> pl.LazyFrame:
    """Turn rows of ``kind|reason`` counts (one per ``by`` value) into :data:`ACCOUNT` rows."""
    entry = pl.col("entry").str.split_exact("|", 1).struct
    named = pl.lit(file, dtype=pl.String) if by is None else pl.col(by).cast(pl.String)
    return wide.unpivot(index=by, variable_name="entry", value_name="rows").select(
        pl.lit(table).alias("table"),
        named.alias("file"),
        entry.field("field_0").alias("kind"),
        entry.field("field_1").alias("reason"),
        pl.col("rows").cast(pl.Int64),
        pl.lit(None, dtype=pl.Int64).alias("line"),
        pl.lit(None, dtype=pl.String).alias("detail"),
    )


def account_frame(
    entries: Iterable[tuple[str, str | None, AccountKind, str, int]],
) -> pl.LazyFrame:
    """Build a lazy account table from ``(table, file, kind, reason, rows)`` tuples."""
    rows = [
        {"table": t, "file": f, "kind": k, "reason": r, "rows": n, "line": None, "detail": None}
        for t, f, k, r, n in entries
    ]
    return pl.LazyFrame(rows, schema=ACCOUNT)


def counted(lf: pl.LazyFrame, *, table: str, kind: AccountKind, reason: str) -> pl.LazyFrame:
    """Return a one-row lazy account entry counting the rows of ``lf``."""
    return lf.select(
        pl.lit(table).alias("table"),
        pl.lit(None, dtype=pl.String).alias("file"),
        pl.lit(kind).alias("kind"),
        pl.lit(reason).alias("reason"),
        pl.len().cast(pl.Int64).alias("rows"),
        pl.lit(None, dtype=pl.Int64).alias("line"),
        pl.lit(None, dtype=pl.String).alias("detail"),
    )


def filtered(
    lf: pl.LazyFrame, rules: Sequence[tuple[str, pl.Expr]], *, table: str
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Keep the rows no rule marks; count the others by their first marking rule.

    Used by the pipeline for its own filters (symbols, time window, session) so that every
    dropped row is accounted for.
    """
    if not rules:
        return lf, account_frame([])
    tagged = lf.with_columns(_first_reason(rules).alias(_TAG))
    account = _account_rows(tagged.select(_reason_counts(rules)), table=table, file=None)
    return tagged.filter(pl.col(_TAG).is_null()).drop(_TAG), account


@dataclass
class Entry:
    """One line of a :class:`RowAccount`."""

    table: str
    file: str | None
    kind: str
    reason: str
    rows: int
    line: int | None = None
    detail: str | None = None


@dataclass
class RowAccount:
    """Where every row went: read = used + dropped (by reason), per table.

    Build it from a collected :data:`ACCOUNT` table (:meth:`from_frame`) and add to it with
    :meth:`add`.

    Examples
    --------
    >>> account = RowAccount()
    >>> account.add("read", 10, file="a.csv")
    >>> account.add("non-positive price", 2, file="a.csv", kind="dropped")
    >>> account.add("used", 8, kind="used")
    >>> account.balanced("trades")
    True
    >>> account.summary("trades")
    'trades: 10 read = 8 used + 2 dropped (non-positive price: 2)'
    """

    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> RowAccount:
        """Build an account from a collected :data:`ACCOUNT` table (zero counts left out)."""
        account = cls()
        for row in df.iter_rows(named=True):
            if row["rows"]:
                account.entries.append(Entry(**row))
        return account

    def add(
        self,
        reason: str,
        rows: int,
        *,
        table: str = "trades",
        kind: AccountKind | None = None,
        file: str | None = None,
    ) -> None:
        """Record ``rows`` rows: ``read``/``used`` when ``reason`` says so, else dropped."""
        chosen = kind or ("read" if reason == "read" else "used" if reason == "used" else "dropped")
        if rows:
            self.entries.append(Entry(table, file, chosen, reason, rows))

    def move_from_used(self, reason: str, rows: int, *, table: str = "trades") -> None:
        """Record ``rows`` used rows of ``table`` as dropped after all (e.g. by cleaning)."""
        if rows:
            self.entries.append(Entry(table, None, "dropped", reason, rows))
            self.entries.append(Entry(table, None, "used", reason, -rows))

    def extend(self, other: RowAccount) -> None:
        """Add every entry of ``other``."""
        self.entries.extend(other.entries)

    def tables(self) -> list[str]:
        """Return the tables with entries, trades first."""
        present = {e.table for e in self.entries}
        return [t for t in ("trades", "quotes") if t in present] + sorted(
            present - {"trades", "quotes"}
        )

    def total(self, table: str, kind: str) -> int:
        """Rows of ``table`` of one kind (``read``, ``used``, ``dropped``, ``changed``)."""
        return sum(e.rows for e in self.entries if e.table == table and e.kind == kind)

    def reasons(self, table: str, kind: str = "dropped") -> dict[str, int]:
        """Rows of ``table`` per reason, for one kind, in first-seen order."""
        out: dict[str, int] = {}
        for e in self.entries:
            if e.table == table and e.kind == kind:
                out[e.reason] = out.get(e.reason, 0) + e.rows
        return out

    def balanced(self, table: str) -> bool:
        """Whether rows read = rows used + rows dropped for ``table``."""
        read, used = self.total(table, "read"), self.total(table, "used")
        return read == used + self.total(table, "dropped")

    def summary(self, table: str) -> str:
        """One line: ``trades: 10 read = 8 used + 2 dropped (non-positive price: 2)``."""
        read, used = self.total(table, "read"), self.total(table, "used")
        dropped = self.reasons(table)
        text = f"{table}: {read:,} read = {used:,} used + {sum(dropped.values()):,} dropped"
        if dropped:
            text += " (" + ", ".join(f"{r}: {n:,}" for r, n in dropped.items()) + ")"
        changed = self.reasons(table, "changed")
        if changed:
            text += "; " + ", ".join(f"{r}: {n:,}" for r, n in changed.items())
        return text

    def warnings(self) -> list[str]:
        """One line per file and table with rows the readers dropped or changed."""
        out: list[str] = []
        by_key: dict[tuple[str, str], list[Entry]] = {}
        for e in self.entries:
            if e.file is not None:
                by_key.setdefault((e.file, e.table), []).append(e)
        for (file, table), mine in by_key.items():
            dropped = [e for e in mine if e.kind == "dropped"]
            changed = [e for e in mine if e.kind == "changed"]
            if not dropped and not changed:
                continue
            parts = []
            if dropped:
                total = sum(e.rows for e in dropped)
                detail = ", ".join(f"{e.reason}: {e.rows:,}" for e in dropped)
                parts.append(f"dropped {total:,} {table} rows ({detail})")
            parts += [f"{e.reason} in {e.rows:,} {table} rows" for e in changed]
            out.append(f"{file}: {'; '.join(parts)}")
        return out

    def as_dict(self) -> dict[str, dict[str, object]]:
        """Per table: read, used, dropped (by reason) and changed (by reason)."""
        return {
            table: {
                "read": self.total(table, "read"),
                "used": self.total(table, "used"),
                "dropped": self.reasons(table),
                "changed": self.reasons(table, "changed"),
            }
            for table in self.tables()
        }

    def raise_for_bad_rows(self, *, skip: bool) -> None:
        """Stop at the first file with unparseable rows unless ``skip`` (``--skip-bad-rows``).

        Raises
        ------
        ReaderError
            Naming the file, the first bad line and how many rows did not parse.
        """
        if skip:
            return
        for e in self.entries:
            if e.kind == "dropped" and e.reason == UNPARSEABLE and e.rows:
                where = f"line {e.line:,}" if e.line is not None else "a row"
                text = f": {e.detail}" if e.detail else ""
                msg = (
                    f"{where} does not parse{text} ({e.rows:,} such row"
                    f"{'s' if e.rows != 1 else ''}; fix the file, or pass --skip-bad-rows to "
                    "drop and count them)"
                )
                raise ReaderError(msg, path=e.file)
