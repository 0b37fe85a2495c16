"""Text for people: one-line warnings and notes built from collected diagnostics.

The library returns counts (:attr:`mmflow.analysis.Classification.diagnostics`,
:func:`mmflow.analysis.quote_checks`, cleaning counts); these functions turn them into
sentences the command line prints on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from mmflow.schema import SYMBOL, VENUE

if TYPE_CHECKING:
    from mmflow.io.source import Skipped

__all__ = [
    "cleaning_notes",
    "instrument_name",
    "quote_warnings",
    "signing_warnings",
    "skipped_note",
]


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
        symbol, trades = instrument_name(row), row["trades"]
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
        if row.get("stale_quote"):
            outcome = _fallback_outcome(row["stale_quote"], row.get("stale_quote_unsigned", 0))
            out.append(
                f"{symbol}: {row['stale_quote']:,} of {trades:,} trades faced only a quote older "
                f"than --max-quote-age (treated as no quote; {outcome})"
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
            f"{instrument_name(row)}: the vendor side agrees with the tick rule on only "
            f"{100 * row['accuracy']:.1f} % of trades; the side mapping looks inverted"
            for row in tick.iter_rows(named=True)
            if row["accuracy"] is not None and row["accuracy"] < 0.3
        )
    return out


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


def instrument_name(instrument: Mapping[str, Any]) -> str:
    """Name an instrument for people: ``SYMBOL@venue``, or the symbol without a venue.

    The one spelling of an instrument in messages, notes and chart titles; the same as the
    ``instrument`` column of ``--alert`` rows (README, *Alerts*).

    Examples
    --------
    >>> instrument_name({"venue": "binance-um", "symbol": "BTCUSDT"})
    'BTCUSDT@binance-um'
    >>> instrument_name({"venue": None, "symbol": "AAPL"})
    'AAPL'
    """
    symbol = str(instrument.get(SYMBOL) or "?")
    venue = instrument.get(VENUE)
    return f"{symbol}@{venue}" if venue else symbol


def quote_warnings(checks: pl.DataFrame, *, max_quote_age: str | None) -> list[str]:
    """Turn collected :func:`quote_checks` into one-line warnings for people.

    Says when trades and quotes share no venue, when an instrument has quotes only on
    another venue (they never sign its trades), when quotes were too old to use, and when a
    cost horizon fell after the last quote.
    """
    out: list[str] = []
    if checks.height == 0:
        return out
    has_venue = VENUE in checks.columns
    traded = checks.filter(pl.col("trades") > 0)
    quoted = checks.filter(pl.col("quotes") > 0)
    if has_venue and traded.height and quoted.height:
        trade_venues = sorted({v or "(none)" for v in traded[VENUE].to_list()})
        quote_venues = sorted({v or "(none)" for v in quoted[VENUE].to_list()})
        if not set(trade_venues) & set(quote_venues):
            out.append(
                f"trades and quotes share no venue (trades: {', '.join(trade_venues)}; quotes: "
                f"{', '.join(quote_venues)}); quotes are used only for trades of their own venue "
                "(a file without a venue column has none)"
            )
        else:
            for row in traded.filter(pl.col("quotes") == 0).iter_rows(named=True):
                others = quoted.filter(pl.col(SYMBOL) == row[SYMBOL])
                if others.height:
                    venues = ", ".join(v or "(none)" for v in others[VENUE].to_list())
                    out.append(
                        f"{instrument_name(row)}: no quotes of this venue; quotes of {venues} "
                        "are not used for its trades"
                    )
    for row in checks.sort(SYMBOL).iter_rows(named=True):
        name = instrument_name(row)
        if row["trades"] == 0:
            out.append(f"{name}: {row['quotes']:,} quotes but no trades (not analysed)")
            continue
        if row["stale_quote"]:
            out.append(
                f"{name}: {row['stale_quote']:,} of {row['trades']:,} trades faced a quote older "
                f"than --max-quote-age {max_quote_age} (treated as no quote: no spread, no costs, "
                "signed without quotes)"
            )
        if row["after_last_quote"]:
            out.append(
                f"{name}: {row['after_last_quote']:,} of {row['trades']:,} trades have their "
                "cost horizon after the last quote (realized spread and price impact null)"
            )
        if row["stale_future_quote"]:
            out.append(
                f"{name}: {row['stale_future_quote']:,} of {row['trades']:,} trades have only a "
                f"quote older than --max-quote-age {max_quote_age} at their cost horizon "
                "(realized spread and price impact null)"
            )
    return out


def skipped_note(skipped: Sequence[Skipped], limit: int = 10) -> str | None:
    """Say in one line which folder entries were skipped and why."""
    if not skipped:
        return None
    listed = "; ".join(f"{s.path} ({s.reason})" for s in skipped[:limit])
    more = f"; and {len(skipped) - limit:,} more" if len(skipped) > limit else ""
    noun = "entry" if len(skipped) == 1 else "entries"
    return f"skipped {len(skipped):,} folder {noun}: {listed}{more}"
