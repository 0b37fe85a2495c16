"""Helpers every metric module shares: expression coercion and column checks."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import polars as pl

from mmflow.errors import SchemaError

__all__ = ["as_expr", "require_columns", "require_names"]


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
