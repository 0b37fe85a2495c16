"""Rich tables built from polars frames. Functions return renderables; they never print."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import PurePath
from typing import Any

import polars as pl
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def format_value(value: Any) -> str:
    """Format one cell for people: thousands separators, 6 significant digits, ISO times.

    Examples
    --------
    >>> format_value(1234567.891)
    '1,234,568'
    >>> format_value(0.000123456)
    '0.000123456'
    >>> format_value(None)
    ''
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        if magnitude >= 5:
            return f"{value:,.0f}"
        decimals = max(0, 5 - magnitude)
        text = f"{value:,.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def frame_table(df: pl.DataFrame, *, title: str | None = None, caption: str | None = None) -> Table:
    """Build a rich table from ``df``; numeric columns are right-justified.

    Examples
    --------
    >>> import polars as pl
    >>> table = frame_table(pl.DataFrame({"symbol": ["X"], "volume": [1.5]}))
    >>> [c.header for c in table.columns]
    ['symbol', 'volume']
    """
    table = Table(
        title=title,
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    cells = [[format_value(v) for v in row] for row in df.iter_rows()]
    for index, (name, dtype) in enumerate(df.schema.items()):
        widest = max((len(row[index]) for row in cells), default=0)
        numeric = dtype.is_numeric()
        table.add_column(
            name.replace("_", "\n"),  # narrow headers; the data formats keep the real names
            justify="right" if numeric else "left",
            min_width=None if numeric else min(widest, 12),
            overflow="fold",
        )
    for row in cells:
        table.add_row(*row)
    return table


def records_table(
    records: list[dict[str, Any]], columns: list[str], *, title: str | None = None
) -> Table:
    """Build a rich table from dicts, one row each, showing ``columns`` in order."""
    table = Table(title=title, header_style="bold")
    for name in columns:
        numeric = any(isinstance(r.get(name), int | float) for r in records)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for record in records:
        table.add_row(*(format_value(record.get(name)) for name in columns))
    return table


def _short_time(text: str | None) -> str:
    """``2024-07-19T00:00:02.812000000Z`` → ``2024-07-19 00:00:02.812``."""
    if not text:
        return ""
    return text.replace("T", " ").rstrip("Z")[:23]


def time_span(start: str | None, end: str | None) -> str:
    r"""Show a UTC span compactly: the end without its date when it is the same day.

    Examples
    --------
    >>> time_span("2024-07-19T00:00:02.812000000Z", "2024-07-19T00:05:02.290000000Z")
    '2024-07-19 00:00:02.812 →\n00:05:02.290'
    """
    first, last = _short_time(start), _short_time(end)
    if not first:
        return ""
    if last[:10] == first[:10]:
        last = last[11:]
    return f"{first} →\n{last}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"


def _relative_paths(paths: list[str]) -> list[str]:
    """Drop the directory all paths share, so a table shows what tells files apart."""
    if len(paths) < 2:
        return [PurePath(p).name for p in paths]
    parts = [PurePath(p).parts for p in paths]
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return [str(PurePath(*p[shared:])) for p in parts]


def inspect_table(df: pl.DataFrame) -> Table:
    """Build the ``mmflow inspect`` table: one row per file, times to the millisecond."""
    table = Table(
        title="mmflow inspect",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("file", overflow="fold")
    table.add_column("format", overflow="fold")
    table.add_column("kind", overflow="fold")
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("symbols", overflow="fold")
    table.add_column("span (UTC)")
    table.add_column("side known", justify="right", no_wrap=True)
    table.add_column("buy share", justify="right", no_wrap=True)
    table.add_column("issues", overflow="fold")
    names = _relative_paths(df["path"].to_list())
    for name, row in zip(names, df.iter_rows(named=True), strict=True):
        table.add_row(
            name,
            row["format"],
            row["kind"],
            f"{row['rows']:,}",
            ", ".join(row["symbols"]),
            time_span(row["start"], row["end"])
            + (
                f"\nexchange clock:\n{time_span(row['start_event'], row['end_event'])}"
                if row["start_event"] is not None
                and (row["start_event"], row["end_event"]) != (row["start"], row["end"])
                else ""
            ),
            _percent(row["side_known"]),
            _percent(row["buy_volume_share"]),
            "; ".join(row["issues"]) or "none",
        )
    return table


def summary_table(df: pl.DataFrame, *, title: str, mix: pl.DataFrame | None = None) -> Table:
    """Build the per-symbol summary table.

    The UTC span of all rows and the signing-method mix (share of trades each rule signed) go in
    the caption.
    """
    lines = []
    if {"start", "end"} <= set(df.columns) and df.height:
        first, last = _iso(df["start"].min()), _iso(df["end"].max())  # type: ignore[arg-type]
        lines.append(f"{time_span(first, last).replace(chr(10), ' ')} UTC")
        df = df.drop("start", "end")
    if mix is not None and mix.height:
        totals = (
            mix.group_by("sign_method").agg(pl.col("trades").sum()).sort("trades", descending=True)
        )
        whole = totals["trades"].sum()
        parts = [
            f"{100 * n / whole:.1f} % {name}"
            for name, n in totals.select("sign_method", "trades").iter_rows()
        ]
        lines.append("signed: " + ", ".join(parts))
    return frame_table(df, title=title, caption="\n".join(lines) or None)


def evaluation_table(scores: pl.DataFrame, *, title: str) -> Table:
    """Build the ``classify --evaluate`` table; each symbol's most accurate method is marked.

    The best method is the one with the most correct trades among those it classified and all
    trades (accuracy × coverage), so a method that abstains cannot win by abstaining.
    """
    ranked = scores.with_columns(
        (pl.col("accuracy").fill_null(0) * pl.col("coverage").fill_null(0)).alias("_merit")
    )
    best = ranked.group_by("symbol").agg(pl.col("_merit").max().alias("_best"))
    marked = ranked.join(best, on="symbol", how="left", maintain_order="left").with_columns(
        (pl.col("_merit") == pl.col("_best")).alias("best")
    )
    table = frame_table(marked.drop("_merit", "_best", "correct"), title=title)
    table.caption = "best = highest accuracy × coverage per symbol"
    for index, flag in enumerate(marked["best"].to_list()):
        if flag:
            table.rows[index].style = "bold green"
    return table


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def inspect_cards(df: pl.DataFrame) -> Group:
    """Build ``mmflow inspect`` output for narrow terminals: one key/value block per file."""
    blocks: list[RenderableType] = []
    for row in df.iter_rows(named=True):
        blocks.append(Text(row["path"], style="bold", overflow="fold"))
        card = Table(box=None, show_header=False, pad_edge=False)
        card.add_column(style="bold", no_wrap=True)
        card.add_column(overflow="fold")
        card.add_row("format", f"{row['format']} ({row['kind']})")
        card.add_row("rows", f"{row['rows']:,}")
        card.add_row("symbols", ", ".join(row["symbols"]))
        card.add_row("start (UTC)", _short_time(row["start"]))
        card.add_row("end (UTC)", _short_time(row["end"]))
        if row["start_event"] is not None and row["start_event"] != row["start"]:
            card.add_row("exchange start", _short_time(row["start_event"]))
            card.add_row("exchange end", _short_time(row["end_event"]))
        if row["side_known"] is not None:
            card.add_row("side known", _percent(row["side_known"]))
            card.add_row("buy share", _percent(row["buy_volume_share"]))
        card.add_row("issues", "; ".join(row["issues"]) or "none")
        blocks += [card, Text("")]
    return Group(*blocks)
