"""Helpers every metric module shares: expression coercion and column checks."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Final

import polars as pl

from mmflow.durations import DURATION_PART, DURATION_TEXT
from mmflow.errors import ParameterError, SchemaError
from mmflow.schema import SESSION, instrument_keys

__all__ = [
    "as_expr",
    "bar_window",
    "polars_duration",
    "require_columns",
    "require_names",
    "series_keys",
]

_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


def as_expr(value: str | pl.Expr) -> pl.Expr:
    """Return ``value`` as an expression: a column name becomes ``pl.col(name)``.

    Examples
    --------
    >>> str(as_expr("price")) == str(pl.col("price"))
    True
    """
    return pl.col(value) if isinstance(value, str) else value


def require_names(
    names: Collection[str], columns: Sequence[str], *, what: str, hint: str | None = None
) -> None:
    """Raise :class:`SchemaError` naming the ``columns`` missing from ``names``.

    Parameters
    ----------
    names
        The columns present (a list of names or a :class:`polars.Schema`).
    columns
        The columns required.
    what
        What the columns belong to, e.g. ``"bars"``.
    hint
        How to fix it, appended in parentheses.

    Examples
    --------
    >>> require_names(["ts"], ["ts", "price"], what="trades", hint="read trades first")
    Traceback (most recent call last):
    ...
    mmflow.errors.SchemaError: trades is missing column(s) price; found ts (read trades first)
    """
    missing = [c for c in dict.fromkeys(columns) if c not in names]
    if missing:
        found = ", ".join(names) or "no columns"
        suffix = f" ({hint})" if hint else ""
        msg = f"{what} is missing column(s) {', '.join(missing)}; found {found}{suffix}"
        raise SchemaError(msg)


def require_columns(
    frame: pl.LazyFrame, columns: Sequence[str], what: str, *, hint: str | None = None
) -> list[str]:
    """Check ``frame`` has ``columns`` (see :func:`require_names`); return its column names."""
    names = frame.collect_schema().names()
    require_names(names, columns, what=what, hint=hint)
    return names


def polars_duration(value: str, what: str, *, zero: bool = False) -> str:
    """Validate a polars duration parameter of a metric and return it stripped.

    Any polars time unit is allowed (``1m``, ``1h30m``, ``1mo``; not index counts): the text
    must be a duration by :data:`mmflow.durations.DURATION_TEXT` and polars must accept it as
    an offset.
    With ``zero``, a zero length is allowed (``0`` becomes ``0s``); otherwise it must be longer
    than zero. (Command-line flags go through :func:`mmflow.durations.check_duration`, which
    also bounds the length.)

    Raises
    ------
    ParameterError
        Naming ``what``.

    Examples
    --------
    >>> polars_duration(" 5m ", "bar length")
    '5m'
    >>> polars_duration("0", "horizon", zero=True)
    '0s'
    >>> polars_duration("0s", "bar length")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmflow.errors.ParameterError: bar length must be a positive polars duration like 1m, ...
    """
    text = value.strip() if isinstance(value, str) else ""
    if text == "0" and zero:
        return "0s"
    valid = (
        bool(DURATION_TEXT.fullmatch(text))
        and all(unit != "i" for _, unit in DURATION_PART.findall(text))  # index counts
        and (zero or any(c in "123456789" for c in text))
    )
    if valid:
        try:
            pl.select(pl.lit(_EPOCH).dt.offset_by(text)).item()
        except (pl.exceptions.PolarsError, OverflowError, ValueError):
            valid = False
    if not valid:
        kind = "polars duration" if zero else "positive polars duration"
        msg = f"{what} must be a {kind} like 1m, 5m or 1h, was {value!r}"
        raise ParameterError(msg)
    return text


def bar_window(window: int) -> int:
    """Return ``window`` (a number of trailing bars) after checking it is a whole number ≥ 1.

    Examples
    --------
    >>> bar_window(5)
    5
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        msg = f"window must be a whole number of bars >= 1, was {window!r}"
        raise ParameterError(msg)
    return window


def series_keys(names: Sequence[str]) -> list[str]:
    """Bar series keys: the instrument, plus ``session`` when present (as flow bars are made).

    Examples
    --------
    >>> series_keys(["ts", "venue", "symbol", "session"])
    ['venue', 'symbol', 'session']
    """
    keys = instrument_keys(names)
    return [*keys, SESSION] if SESSION in names else keys
