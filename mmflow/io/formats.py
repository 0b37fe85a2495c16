"""What a reader is: the contract every vendor module implements.

A vendor module (``mmflow/io/<vendor>.py``) exposes ``FORMATS``, a tuple of :class:`Format`.
Each format has a name users pass to ``--format``, a ``sniff`` that decides from the file name and
its first lines whether a file is in this format, and a ``read`` that returns lazy canonical
frames (:class:`Frames`). Vendor column names never leave the vendor module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl

from mmflow.io.checks import Limits
from mmflow.io.source import Source

__all__ = [
    "Format",
    "Frames",
    "Kind",
    "ReadOptions",
    "Reader",
    "Sniff",
    "frames_kind",
]

Kind = Literal["trades", "trades+bbo", "quotes", "trades+quotes"]
"""What a file holds: trades; trades carrying their pre-trade best bid/ask; quotes; or both
trades (with BBO) and quote updates (Databento mbp-1 / mbp-10)."""


@dataclass(frozen=True)
class Sniff:
    """What detection may look at: names and the first bytes, never the whole file.

    Attributes
    ----------
    name
        The file name without a compression suffix (for a zip, the member's name).
    path
        The full path as given, for folder hints such as ``/futures/um/``.
    magic
        The first 16 decompressed bytes.
    lines
        The first few decompressed text lines (empty for binary content).
    """

    name: str
    path: str
    magic: bytes
    lines: tuple[str, ...]

    @property
    def header(self) -> list[str]:
        """The first line split on commas, stripped and lower-cased."""
        if not self.lines:
            return []
        return [cell.strip().strip('"').lower() for cell in self.lines[0].split(",")]


@dataclass(frozen=True)
class ReadOptions:
    """Options that change how a file is read.

    Attributes
    ----------
    symbol
        The symbol for files that carry none of their own (no symbol column and none in the
        file name). It never relabels rows that have a symbol: on the command line ``--symbol``
        also filters, so relabelling would pass other instruments' rows off as this one.
    column_map
        For ``generic`` CSV: canonical column name → the file's column name.
    date
        The trading day for files that carry it only in their name (LOBSTER), when the name
        does not.
    tz
        The time zone of local times in formats that do not document theirs (Sierra exports;
        UTC when not given).
    round_lot
        Shares per round lot for quote sizes published in lots (TAQ, Polygon; 100 when not
        given).
    limits
        The plausible time range; rows outside it are dropped and counted.
    """

    symbol: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)
    date: date | None = None
    tz: str | None = None
    round_lot: int | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Frames:
    """The lazy canonical frames one file yields.

    Attributes
    ----------
    trades
        Canonical trades (:data:`mmflow.schema.TRADES`), or ``None``.
    quotes
        Canonical quotes (:data:`mmflow.schema.QUOTES`), or ``None``.
    notes
        Warnings for people found while reading (e.g. a LOBSTER file read without its
        orderbook); the command line prints them on stderr.
    """

    trades: pl.LazyFrame | None = None
    quotes: pl.LazyFrame | None = None
    notes: tuple[str, ...] = ()


Reader = Callable[[Source, ReadOptions], Frames]


def frames_kind(frames: Frames) -> Kind:
    """Say what a file holds, from the frames its reader built (schema only, no rows read)."""
    if frames.trades is None:
        return "quotes"
    with_bbo = "bid_price" in frames.trades.collect_schema().names()
    if frames.quotes is not None:
        return "trades+quotes"
    return "trades+bbo" if with_bbo else "trades"


@dataclass(frozen=True)
class Format:
    """One input format.

    Attributes
    ----------
    name
        The ``--format`` name, e.g. ``tardis-trades``.
    description
        One line for ``--help`` and error messages.
    read
        Build the lazy canonical frames for a source.
    sniff
        Return True when a file is in this format.
    primary
        For a file that another file's reader reads along with it (a LOBSTER orderbook file
        is read with its message file): the path of that other file. When it is among the
        inputs too, this file is skipped so its rows are not counted twice.
    findings
        Format-specific data-quality findings for ``mmflow inspect`` (LOBSTER halts, TAQ rows
        per cleaning rule, ...), one line each. It may read the whole file.
    negative_prices
        Whether prices ≤ 0 are legitimate in this format (spreads, calendar instruments);
        otherwise such trades are dropped and counted (:mod:`mmflow.io.checks`).
    """

    name: str
    description: str
    read: Reader
    sniff: Callable[[Sniff], bool]
    primary: Callable[[Source], Path | None] | None = None
    findings: Callable[[Source, ReadOptions], list[str]] | None = None
    negative_prices: bool = False
