"""Rich tables built from polars frames. Functions return renderables; they never print."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import polars as pl
from rich.table import Table


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
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
        return text
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
    table = Table(title=title, caption=caption, header_style="bold")
    for name, dtype in df.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in df.iter_rows():
        table.add_row(*(format_value(v) for v in row))
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
