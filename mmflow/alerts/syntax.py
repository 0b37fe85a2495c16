"""The alert condition language: tokens, syntax tree and recursive-descent parser.

The grammar is in :mod:`mmflow.alerts`; :func:`parse` turns text into a tree of nodes that
:func:`mmflow.alerts.parse_condition` binds to a table's columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from mmflow.errors import ParameterError
from mmflow.metrics.inventory import LIQUIDITY_STATE, PROVIDING, WITHDRAWING
from mmflow.metrics.phases import ACCUMULATION, DISTRIBUTION, LONG, NEUTRAL, SHORT

__all__ = [
    "KNOWN_VALUES",
    "Abs",
    "And",
    "Comparison",
    "ConditionError",
    "Flag",
    "Name",
    "Node",
    "Not",
    "Number",
    "Operator",
    "Text",
    "Value",
    "parse",
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
