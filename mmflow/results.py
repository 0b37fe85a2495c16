"""The typed results of the one-call API (:mod:`mmflow.api`): collected polars tables.

Every result lists its tables in ``repr`` (name, rows, columns) and shows them as HTML in a
notebook (``_repr_html_``); it also carries the run's ``parameters``, ``warnings`` and row
``account``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from html import escape
from typing import Any

import polars as pl

from mmflow.io import RowAccount

__all__ = [
    "Analysis",
    "Classification",
    "Data",
    "Flow",
    "Inventory",
    "Phases",
    "Profile",
    "Result",
]


@dataclass(frozen=True, repr=False)
class Result:
    """Base of every result: collected tables plus what the run said and counted.

    ``repr`` lists each table with its shape; in a notebook each table is shown as HTML.

    Examples
    --------
    >>> import polars as pl
    >>> Flow(warnings=("no quotes",), bars=pl.DataFrame({"symbol": ["X", "X"], "volume": [1, 2]}))
    Flow(
      bars: 2 rows × 2 columns
      warnings: 1 (see .warnings)
    )
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    """Every parameter of the run (what the command line stores in file metadata)."""
    warnings: tuple[str, ...] = ()
    """What people should know (unsigned trades, unusable quotes, skipped files, cleaning)."""
    account: RowAccount = field(default_factory=RowAccount)
    """Rows read, dropped (by reason) and used, per table."""

    def tables(self) -> dict[str, pl.DataFrame]:
        """Return the result's tables by name (those that were computed)."""
        return {
            f.name: value
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), pl.DataFrame)
        }

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, table in self.tables().items():
            lines.append(f"  {name}: {table.height:,} rows × {table.width} columns")
        if self.warnings:
            lines.append(f"  warnings: {len(self.warnings)} (see .warnings)")
        return "\n".join([*lines, ")"])

    def _repr_html_(self) -> str:
        parts = [f"<b>{escape(type(self).__name__)}</b>"]
        for name, table in self.tables().items():
            parts.append(f"<p><code>.{escape(name)}</code></p>")
            parts.append(table.head(20)._repr_html_())
        parts += [f"<p>⚠ {escape(text)}</p>" for text in self.warnings]
        return "\n".join(parts)


@dataclass(frozen=True, repr=False)
class Data(Result):
    """Canonical trades and quotes read from files (:func:`read`)."""

    trades: pl.DataFrame | None = None
    quotes: pl.DataFrame | None = None


@dataclass(frozen=True, repr=False)
class Analysis(Result):
    """The result of :func:`analyze`: one summary row per instrument and every metric per bar."""

    summary: pl.DataFrame = field(default_factory=pl.DataFrame)
    bars: pl.DataFrame = field(default_factory=pl.DataFrame)
    mix: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass(frozen=True, repr=False)
class Flow(Result):
    """The result of :func:`flow`: order flow per instrument and bar."""

    bars: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass(frozen=True, repr=False)
class Inventory(Result):
    """The result of :func:`inventory`: per-bar inventory, a summary and withdrawal episodes."""

    bars: pl.DataFrame = field(default_factory=pl.DataFrame)
    summary: pl.DataFrame = field(default_factory=pl.DataFrame)
    episodes: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass(frozen=True, repr=False)
class Phases(Result):
    """The result of :func:`phases`: per-bar phases, episodes and their event study."""

    bars: pl.DataFrame = field(default_factory=pl.DataFrame)
    episodes: pl.DataFrame = field(default_factory=pl.DataFrame)
    study: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass(frozen=True, repr=False)
class Profile(Result):
    """The result of :func:`profile`: volume at price and the value area of each instrument."""

    levels: pl.DataFrame = field(default_factory=pl.DataFrame)
    value_areas: pl.DataFrame = field(default_factory=pl.DataFrame)
    footprint: pl.DataFrame | None = None


@dataclass(frozen=True, repr=False)
class Classification(Result):
    """The result of :func:`classify`: every trade with its sign and how it was signed."""

    trades: pl.DataFrame = field(default_factory=pl.DataFrame)
    mix: pl.DataFrame = field(default_factory=pl.DataFrame)
    diagnostics: pl.DataFrame = field(default_factory=pl.DataFrame)
