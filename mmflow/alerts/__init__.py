"""Alert conditions over bar tables, for cron jobs (``--alert``, exit code 3).

A condition is a small boolean language over the columns of a bar table::

    phase=distribution
    vpin>0.7 and liquidity_state=withdrawing
    abs(inventory_z)>3 or (ofi_normalized<-0.5 and not phase=neutral)

Grammar (keywords ``and``, ``or``, ``not``, ``abs`` are case-insensitive)::

    condition   := disjunction END
    disjunction := conjunction ("or" conjunction)*
    conjunction := negation ("and" negation)*
    negation    := "not" negation | "(" disjunction ")" | comparison
    comparison  := value OPERATOR value | NAME          (a bare name: a Boolean column)
    value       := "-" value | NUMBER | 'TEXT' | "TEXT" | NAME | "abs" "(" value ")"
    OPERATOR    := = | == | != | < | <= | > | >=

A name is a column when the table has one of that name; on the other side of ``=``/``!=`` from
a text column it may also be a bare word (``phase=distribution``). Text compares only with
``=``, ``==`` and ``!=``; numbers with every operator. A comparison must involve a column.

Semantics: a comparison with a missing value (null, or NaN in a float column) is unknown, and
``and``/``or``/``not`` follow three-valued (Kleene) logic, as SQL does; a condition fires on a
bar only when it is true there (unknown does not fire). The text is tokenized and parsed by a
recursive-descent parser into a polars expression, never evaluated as Python.

:func:`evaluate_alerts` looks at the latest bar of each instrument (``(venue, symbol)``), or at
every bar in a trailing window, and returns one row per instrument and firing condition, with
``since``: the first bar of the run of consecutive firing bars that ends at the latest firing bar.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import polars as pl

from mmflow.alerts.syntax import (
    _NUMERIC,
    KNOWN_VALUES,
    Abs,
    And,
    Comparison,
    ConditionError,
    Flag,
    Name,
    Node,
    Not,
    Number,
    Operator,
    Text,
    Value,
    parse,
)
from mmflow.schema import SYMBOL, TS, VENUE

__all__ = [
    "KNOWN_VALUES",
    "Condition",
    "ConditionError",
    "alert_messages",
    "evaluate_alerts",
    "parse",
    "parse_condition",
]


# ----------------------------------------------------------------------------------------------
# Binding names to columns


def _kind(dtype: pl.DataType) -> Literal["number", "text", "boolean", "other"]:
    if dtype.is_numeric():
        return "number"
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return "text"
    if isinstance(dtype, pl.Boolean):
        return "boolean"
    return "other"


@dataclass(frozen=True)
class _Bound:
    """A value turned into a polars expression, with what kind of value it is."""

    expr: pl.Expr
    kind: Literal["number", "text", "boolean", "word"]
    column: str | None = None
    word: str | None = None


class _Binder:
    def __init__(
        self,
        text: str,
        columns: Mapping[str, pl.DataType],
        values: Mapping[str, Collection[str]],
    ) -> None:
        self.text = text
        self.columns = columns
        self.values = values
        self.used: list[str] = []

    def fail(self, position: int, reason: str) -> ConditionError:
        return ConditionError(self.text, position, reason)

    def unknown(self, name: Name) -> ConditionError:
        usable = [c for c, dtype in self.columns.items() if _kind(dtype) != "other"]
        return self.fail(
            name.position, f"unknown column {name.name!r}; the columns are {', '.join(usable)}"
        )

    def column(self, name: Name) -> _Bound:
        dtype = self.columns[name.name]
        kind = _kind(dtype)
        if kind == "other":
            reason = f"column {name.name!r} is a {dtype}; conditions compare numbers and words"
            raise self.fail(name.position, reason)
        if name.name not in self.used:
            self.used.append(name.name)
        expr = pl.col(name.name)
        if isinstance(dtype, _NUMERIC):
            expr = expr.fill_nan(None)  # NaN is a missing value here, not a large number
        elif kind == "text":
            expr = expr.cast(pl.String)
        return _Bound(expr, kind, column=name.name)

    def value(self, node: Value) -> _Bound:
        if isinstance(node, Number):
            return _Bound(pl.lit(node.value, pl.Float64), "number")
        if isinstance(node, Text):
            return _Bound(pl.lit(node.value, pl.String), "word", word=node.value)
        if isinstance(node, Name):
            if node.name in self.columns:
                return self.column(node)
            return _Bound(pl.lit(node.name, pl.String), "word", word=node.name)
        inner = self.value(node.operand)
        if inner.kind != "number":
            if inner.kind == "word" and isinstance(node.operand, Name):
                raise self.unknown(node.operand)
            what = "abs()" if isinstance(node, Abs) else "a minus sign"
            raise self.fail(node.position, f"{what} needs a number or a numeric column")
        expr = inner.expr.abs() if isinstance(node, Abs) else -inner.expr
        return _Bound(expr, "number", column=inner.column)

    def comparison(self, node: Comparison) -> pl.Expr:
        left, right = self.value(node.left), self.value(node.right)
        sides = ((left, node.left), (right, node.right))
        if left.column is None and right.column is None:
            for value in (node.left, node.right):
                if isinstance(value, Name):
                    raise self.unknown(value)
            raise self.fail(node.position, "the comparison names no column")
        kinds = {left.kind, right.kind}
        if kinds <= {"text", "word"}:
            return self.text_comparison(node, left, right)
        if kinds <= {"boolean", "word"}:
            return self.boolean_comparison(node, left, right)
        if kinds == {"number"}:
            if left.column is None:  # a number on the left: compare the column first (below)
                return _compare(right.expr, _MIRRORED[node.operator], left.expr)
            return _compare(left.expr, node.operator, right.expr)
        for bound, value in sides:
            if bound.kind == "word" and isinstance(value, Name):
                raise self.unknown(value)
        described = " and ".join(_describe(b) for b in (left, right))
        raise self.fail(node.position, f"cannot compare {described}")

    def text_comparison(self, node: Comparison, left: _Bound, right: _Bound) -> pl.Expr:
        if node.operator not in ("==", "!="):
            column = left.column or right.column
            reason = f"{column!r} holds words: compare it with = or !=, e.g. {column}=word"
            raise self.fail(node.position, reason)
        for bound, other in ((left, right), (right, left)):
            if bound.kind == "word" and other.column is not None and other.column in self.values:
                allowed = self.values[other.column]
                if bound.word not in allowed:
                    position = (node.left if bound is left else node.right).position
                    reason = (
                        f"{other.column!r} is never {bound.word!r}; "
                        f"it is one of {', '.join(allowed)}"
                    )
                    raise self.fail(position, reason)
        return _compare(left.expr, node.operator, right.expr)

    def boolean_comparison(self, node: Comparison, left: _Bound, right: _Bound) -> pl.Expr:
        if node.operator not in ("==", "!="):
            raise self.fail(node.position, "true/false columns compare with = or != only")
        exprs = []
        for bound, value in ((left, node.left), (right, node.right)):
            if bound.kind == "word":
                word = (bound.word or "").lower()
                if word not in ("true", "false"):
                    if isinstance(value, Name):
                        raise self.unknown(value)
                    raise self.fail(
                        value.position, "compare a true/false column with true or false"
                    )
                exprs.append(pl.lit(word == "true", pl.Boolean))
            else:
                exprs.append(bound.expr)
        return _compare(exprs[0], node.operator, exprs[1])

    def node(self, node: Node) -> pl.Expr:
        if isinstance(node, Comparison):
            return self.comparison(node)
        if isinstance(node, Flag):
            if node.name.name not in self.columns:
                raise self.unknown(node.name)
            bound = self.column(node.name)
            if bound.kind != "boolean":
                reason = (
                    f"{node.name.name!r} is not a true/false column; "
                    f"compare it, e.g. {node.name.name}>0"
                )
                raise self.fail(node.name.position, reason)
            return bound.expr
        if isinstance(node, Not):
            return ~self.node(node.operand)
        if isinstance(node, And):
            return self.node(node.left) & self.node(node.right)
        return self.node(node.left) | self.node(node.right)


def _describe(bound: _Bound) -> str:
    if bound.column is not None:
        return f"{bound.column!r} ({bound.kind})"
    return f"the {'word ' + repr(bound.word) if bound.kind == 'word' else bound.kind}"


#: ``a op b`` is ``b mirrored-op a``. ``0.5 < vpin`` is bound as ``vpin > 0.5``: polars 2.1 gives
#: a literal compared with a column whose values are all missing (NaN made null) one row, not one
#: per row, when the literal stands on the left (found by the property test).
_MIRRORED: dict[Operator, Operator] = {
    "==": "==",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}


def _compare(left: pl.Expr, operator: Operator, right: pl.Expr) -> pl.Expr:
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    return left >= right


@dataclass(frozen=True)
class Condition:
    """A parsed condition bound to a table's columns.

    Attributes
    ----------
    text
        The condition as given (stripped).
    expr
        Boolean polars expression: true where the condition holds, false where it does not or is
        unknown (never null).
    columns
        The columns the condition reads, in order of appearance.
    tree
        The syntax tree.
    """

    text: str
    expr: pl.Expr
    columns: tuple[str, ...]
    tree: Node


def parse_condition(
    text: str,
    columns: Mapping[str, pl.DataType] | pl.Schema,
    values: Mapping[str, Collection[str]] = KNOWN_VALUES,
) -> Condition:
    """Parse ``text`` and bind it to ``columns`` (a table's schema).

    Parameters
    ----------
    text
        The condition, e.g. ``abs(inventory_z)>3 and phase=distribution``.
    columns
        Column names and types of the table the condition will see.
    values
        For label columns, the values they take: comparing one with any other word is an error.

    Returns
    -------
    Condition
        With ``.expr``, a Boolean polars expression (null counts as false).

    Raises
    ------
    ConditionError
        On bad syntax, an unknown column, a word a label column never takes, or a comparison of
        mismatched kinds; ``.position`` says where.

    Examples
    --------
    >>> import polars as pl
    >>> bars = pl.DataFrame({"vpin": [0.5, 0.8, None], "phase": ["neutral", "distribution", None]})
    >>> condition = parse_condition("vpin>0.7 or phase=distribution", bars.schema)
    >>> bars.select(condition.expr)["vpin"].to_list()
    [False, True, False]
    """
    stripped = text.strip()
    tree = parse(stripped)
    binder = _Binder(stripped, dict(columns), values)
    expr = binder.node(tree).fill_null(False)
    return Condition(stripped, expr, tuple(binder.used), tree)


# ----------------------------------------------------------------------------------------------
# Evaluation over bars


def instrument_keys(schema: Mapping[str, pl.DataType] | pl.Schema) -> list[str]:
    """Return the columns naming an instrument: ``venue`` (when present) and ``symbol``."""
    return [VENUE, SYMBOL] if VENUE in schema else [SYMBOL]


def _label(keys: Sequence[str]) -> pl.Expr:
    """``SYMBOL@VENUE`` when the venue is known, else ``SYMBOL``."""
    symbol = pl.col(SYMBOL).cast(pl.String)
    if VENUE not in keys:
        return symbol.alias("instrument")
    venue = pl.col(VENUE).cast(pl.String)
    return (
        pl.when(venue.is_not_null() & (venue != ""))
        .then(pl.concat_str(symbol, pl.lit("@"), venue))
        .otherwise(symbol)
        .alias("instrument")
    )


ALERT_COLUMNS: Final = ("instrument", "condition", "ts", "since", "bars")
"""Leading columns of :func:`evaluate_alerts`' result (after the instrument keys)."""


def evaluate_alerts(
    bars: pl.LazyFrame | pl.DataFrame,
    conditions: Sequence[Condition],
    window: str | None = None,
) -> pl.DataFrame:
    """Return one row per instrument and condition that fires.

    Parameters
    ----------
    bars
        A bar table with ``symbol`` (and ``venue``), ``ts`` and the columns the conditions read.
    conditions
        Parsed conditions (:func:`parse_condition` against this table's schema).
    window
        ``None``: a condition fires for an instrument when it holds on the instrument's latest
        bar. A polars duration such as ``30m``: when it holds on any bar whose ``ts`` is at or
        after the latest bar's ``ts`` minus the window.

    Returns
    -------
    pl.DataFrame
        ``[venue,] symbol, instrument, condition, ts, since, bars`` and the value of every column
        the conditions read, at the latest bar in the window where the condition holds (``ts``);
        ``since`` is the first bar of the run of consecutive bars (rows of the instrument in time
        order) where it holds that ends there, ``bars`` the length of that run. Sorted by
        instrument, then by the order of ``conditions``.
    """
    lazy = bars.lazy()
    schema = lazy.collect_schema()
    keys = instrument_keys(schema)
    read: list[str] = []
    for condition in conditions:
        read += [c for c in condition.columns if c not in read and c not in (*keys, TS)]
    shown = [c for c in read if c not in ALERT_COLUMNS]
    if not conditions:
        empty = lazy.select(*keys, _label(keys), TS, *shown).head(0)
        frame = empty.with_columns(
            pl.lit(None, pl.String).alias("condition"),
            pl.col(TS).alias("since"),
            pl.lit(None, pl.UInt32).alias("bars"),
        )
        return frame.select(*keys, *ALERT_COLUMNS, *shown).collect()
    ordered = lazy.sort(*keys, TS)
    latest = pl.col(TS).max().over(keys)
    start = latest.dt.offset_by(f"-{window}") if window else latest
    parts = []
    for index, condition in enumerate(conditions):
        fires = condition.expr
        run = (fires != fires.shift(1)).fill_null(True).cum_sum().over(keys)
        frame = ordered.with_columns(
            fires.alias("_fires"), run.alias("_run"), (pl.col(TS) >= start).alias("_recent")
        ).with_columns(
            pl.col(TS).min().over(*keys, "_run").alias("since"),
            pl.len().over(*keys, "_run").cast(pl.UInt32).alias("bars"),
        )
        parts.append(
            frame.filter(pl.col("_fires") & pl.col("_recent"))
            .group_by(keys, maintain_order=True)
            .agg(pl.all().sort_by(TS).last())
            .select(
                *keys,
                _label(keys),
                pl.lit(condition.text, pl.String).alias("condition"),
                TS,
                "since",
                "bars",
                *shown,
                pl.lit(index, pl.UInt32).alias("_order"),
            )
        )
    return (
        pl.concat(parts, how="vertical")
        .sort("instrument", "_order", nulls_last=True)
        .drop("_order")
        .collect()
    )


def _when(moment: datetime) -> str:
    """``2024-08-08 14:32`` (seconds only when not zero), in UTC."""
    if moment.second or moment.microsecond:
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    return f"{moment:%Y-%m-%d %H:%M}"


def _number(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def alert_messages(alerts: pl.DataFrame, conditions: Sequence[Condition]) -> list[str]:
    """Return one line per alert, e.g. ``ALERT BTCUSDT@binance-um phase=distribution since …``.

    The line ends with the values of the condition's columns at the latest firing bar, and that
    bar's time when it is not the start of the run.
    """
    reads = {c.text: c.columns for c in conditions}
    lines = []
    for row in alerts.iter_rows(named=True):
        line = f"ALERT {row['instrument']} {row['condition']} since {_when(row['since'])} UTC"
        values = [
            f"{c}={_number(row[c])}"
            for c in reads.get(row["condition"], ())
            if c in row and c not in ALERT_COLUMNS and not isinstance(row[c], str)
        ]
        details = []
        if row["ts"] != row["since"]:
            last = _when(row["ts"])
            if row["ts"].date() == row["since"].date():
                last = last.split(" ", 1)[1]
            details.append(f"{row['bars']} bars to {last}")
        if values:
            details.append(", ".join(values))
        lines.append(line + (f" ({'; '.join(details)})" if details else ""))
    return lines
