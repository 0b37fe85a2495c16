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
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import polars as pl

from mmflow.errors import ParameterError
from mmflow.metrics.inventory import LIQUIDITY_STATE, PROVIDING, WITHDRAWING
from mmflow.metrics.phases import ACCUMULATION, DISTRIBUTION, LONG, NEUTRAL, SHORT
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

Operator = Literal["==", "!=", "<", "<=", ">", ">="]
OPERATORS: Final[dict[str, Operator]] = {
    "=": "==",
    "==": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
KEYWORDS: Final = frozenset({"and", "or", "not", "abs"})
KNOWN_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "phase": (ACCUMULATION, DISTRIBUTION, NEUTRAL),
    "inventory_side": (LONG, SHORT),
    LIQUIDITY_STATE: (PROVIDING, WITHDRAWING),
}
"""The values the label columns take, so that a misspelt word is an error, not a silent never."""

MAX_LENGTH: Final = 2000
"""Longest condition text accepted (the parser recurses once per nesting level)."""
MAX_DEPTH: Final = 100
"""Deepest nesting of parentheses, ``not`` and ``abs`` accepted."""

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<text>'[^']*'|"[^"]*")
  | (?P<operator>==|!=|<=|>=|=|<|>)
  | (?P<punctuation>[()\-])
    """,
    re.VERBOSE,
)

_NUMERIC = (pl.Float32, pl.Float64)


class ConditionError(ParameterError):
    """A condition that cannot be parsed or does not fit the table's columns.

    Attributes
    ----------
    text
        The condition as given.
    position
        0-based offset of the character the error is about.
    reason
        What is wrong, in words.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        super().__init__(f"{reason} (at position {position + 1} of {text!r})")

    def pointer(self) -> str:
        """Return the condition on one line and a caret under the offending character."""
        return f"  {self.text}\n  {' ' * self.position}^"


# ----------------------------------------------------------------------------------------------
# Tokens and syntax tree


TokenKind = Literal["number", "name", "text", "operator", "punctuation", "end"]
_TOKEN_KINDS: Final[dict[str, TokenKind]] = {
    "number": "number",
    "name": "name",
    "text": "text",
    "operator": "operator",
    "punctuation": "punctuation",
}


@dataclass(frozen=True)
class Token:
    """One token: its kind, its text and its offset in the condition."""

    kind: TokenKind
    text: str
    position: int


@dataclass(frozen=True)
class Number:
    """A number literal."""

    value: float
    position: int


@dataclass(frozen=True)
class Text:
    """A quoted text literal (the quotes removed)."""

    value: str
    position: int


@dataclass(frozen=True)
class Name:
    """A bare name: a column, or a word compared with a text column."""

    name: str
    position: int


@dataclass(frozen=True)
class Abs:
    """``abs(operand)``."""

    operand: Value
    position: int


@dataclass(frozen=True)
class Negative:
    """``-operand``."""

    operand: Value
    position: int


Value = Number | Text | Name | Abs | Negative


@dataclass(frozen=True)
class Comparison:
    """``left OPERATOR right``."""

    operator: Operator
    left: Value
    right: Value
    position: int


@dataclass(frozen=True)
class Flag:
    """A bare Boolean column used as a condition."""

    name: Name


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class And:
    """``left and right``."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    """``left or right``."""

    left: Node
    right: Node


Node = Comparison | Flag | Not | And | Or


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Raises
    ------
    ConditionError
        At the first character no token starts with.
    """
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            character = text[position]
            if character in "'\"":
                raise ConditionError(text, position, f"unclosed quote {character}")
            reason = f"unexpected character {character!r}"
            if character in "&|!":
                reason += "; write and, or, not"
            raise ConditionError(text, position, reason)
        kind = _TOKEN_KINDS.get(match.lastgroup or "space")
        if kind is not None:
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over the token list (the grammar is in the module docstring)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def fail(self, token: Token, reason: str) -> ConditionError:
        return ConditionError(self.text, token.position, reason)

    def describe(self, token: Token) -> str:
        return "the end of the condition" if token.kind == "end" else repr(token.text)

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.current
        return token.kind == "name" and token.text.lower() == word

    def punctuation(self, mark: str) -> bool:
        return self.current.kind == "punctuation" and self.current.text == mark

    def expect(self, mark: str, what: str) -> None:
        if not self.punctuation(mark):
            raise self.fail(self.current, f"expected {what}, found {self.describe(self.current)}")
        self.advance()

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(self.current, f"nested deeper than {MAX_DEPTH} levels")

    def condition(self) -> Node:
        if self.current.kind == "end":
            raise self.fail(self.current, "empty condition; e.g. phase=distribution or vpin>0.7")
        node = self.disjunction()
        token = self.current
        if token.kind == "operator":
            raise self.fail(token, "comparisons do not chain; join them with and (a<x and x<b)")
        if token.kind != "end":
            reason = f"expected and, or or the end, found {self.describe(token)}"
            if token.text == "-":
                reason += "; put words with a hyphen in quotes, e.g. venue='binance-um'"
            raise self.fail(token, reason)
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.keyword("or"):
            self.advance()
            node = Or(node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.keyword("and"):
            self.advance()
            node = And(node, self.negation())
        return node

    def negation(self) -> Node:
        self.nest()
        try:
            if self.keyword("not"):
                self.advance()
                return Not(self.negation())
            if self.punctuation("("):
                self.advance()
                node = self.disjunction()
                self.expect(")", "a closing parenthesis")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Node:
        left = self.value()
        token = self.current
        if token.kind != "operator":
            if isinstance(left, Name) and (
                token.kind == "end" or self.keyword("and") or self.keyword("or")
            ):
                return Flag(left)
            if token.kind == "punctuation" and token.text == ")" and isinstance(left, Name):
                return Flag(left)
            raise self.fail(
                token,
                f"expected a comparison (= != < <= > >=), found {self.describe(token)}",
            )
        self.advance()
        return Comparison(OPERATORS[token.text], left, self.value(), token.position)

    def value(self) -> Value:
        token = self.current
        if token.kind == "punctuation" and token.text == "-":
            self.advance()
            self.nest()
            try:
                return Negative(self.value(), token.position)
            finally:
                self.depth -= 1
        if token.kind == "number":
            self.advance()
            return Number(float(token.text), token.position)
        if token.kind == "text":
            self.advance()
            return Text(token.text[1:-1], token.position)
        if token.kind == "name" and token.text.lower() in KEYWORDS:
            if token.text.lower() != "abs":
                raise self.fail(
                    token, f"expected a column, a number or a word, found {token.text!r}"
                )
            self.advance()
            self.expect("(", "( after abs")
            self.nest()
            try:
                operand = self.value()
            finally:
                self.depth -= 1
            self.expect(")", "a closing parenthesis after abs(")
            return Abs(operand, token.position)
        if token.kind == "name":
            self.advance()
            return Name(token.text, token.position)
        raise self.fail(
            token, f"expected a column, a number or a word, found {self.describe(token)}"
        )


def parse(text: str) -> Node:
    """Parse a condition into its syntax tree (no column is checked yet).

    Raises
    ------
    ConditionError
        On bad syntax, with the position of the offending token.
    """
    if len(text) > MAX_LENGTH:
        raise ConditionError(text[:60] + "…", 0, f"condition longer than {MAX_LENGTH} characters")
    return _Parser(text).condition()


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
