"""Cells for people: how a screen formats each value, by the kind of its column.

Prices at the instrument's precision, sizes and counts with thousands separators, percentages
with one decimal, NaN and infinities as ``–``, times with their year (in a time zone when
given). Pure functions; nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import polars as pl

__all__ = [
    "MISSING",
    "Formats",
    "Kind",
    "column_kind",
    "decimals_of",
    "format_cell",
    "format_time",
    "format_value",
    "human_seconds",
    "issue_summary",
    "middle_ellipsis",
    "significant_decimals",
]

Kind = Literal["price", "spread", "size", "count", "percent", "seconds", "time", "number", "text"]
"""How a screen formats a column (see :func:`column_kind`)."""

PRICES = frozenset(
    {"open", "high", "low", "close", "vwap", "mid_close", "mid_price", "price", "price_level"}
    | {"poc", "value_area_low", "value_area_high", "bid_price", "ask_price"}
)
"""Columns in the instrument's price units, shown at its precision."""
SPREADS = frozenset(
    {"spread", "effective_spread", "realized_spread", "price_impact", "roll_spread"}
    | {"price_change", "mean_spread"}
)
"""Price differences: one decimal more than the instrument's prices (half ticks)."""
SIZES = frozenset(
    {"volume", "buy_volume", "sell_volume", "unknown_volume", "net_flow", "cvd", "ofi"}
    | {"mm_inventory", "inventory_max", "inventory_min", "inventory_start", "inventory_end"}
    | {"inventory_change", "size", "depth", "bid_size", "ask_size", "delta"}
    | {"value_area_volume", "total_volume", "bid_volume", "ask_volume"}
)
"""Quantities: thousands separators, as many decimals as the column needs (at most 3)."""
PERCENTS = frozenset(
    {"accuracy", "coverage", "side_known", "buy_volume_share", "withdrawing_share", "share"}
)
"""Fractions shown as percentages with one decimal (also ``*_share``, ``*_recall``, …)."""
SECONDS = frozenset({"inventory_half_life"})
MISSING = "–"
"""What a screen shows for NaN and infinite values."""


def column_kind(name: str, dtype: pl.DataType) -> Kind:
    """Say how a screen formats column ``name``: by its name first, then by its type.

    Examples
    --------
    >>> import polars as pl
    >>> [column_kind(n, pl.Float64()) for n in ("close", "volume", "accuracy", "vpin")]
    ['price', 'size', 'percent', 'number']
    >>> column_kind("trades", pl.UInt32()), column_kind("ts", pl.Datetime("ns", "UTC"))
    ('count', 'time')
    """
    if dtype.is_temporal() and not isinstance(dtype, pl.Duration):
        return "time"
    if not dtype.is_numeric():
        return "text"
    if dtype.is_integer():
        return "count"
    if name in PRICES:
        return "price"
    if name in SPREADS:
        return "spread"
    if name in SIZES:
        return "size"
    if name in PERCENTS or name.endswith(("_share", "_recall", "_precision")):
        return "percent"
    if name in SECONDS:
        return "seconds"
    return "number"


def decimals_of(values: Sequence[float | None], most: int = 8) -> int:
    """Return the fewest decimals that show every value exactly (at most ``most``).

    Examples
    --------
    >>> decimals_of([61612.5, 61613.0]), decimals_of([0.00012, 1.5]), decimals_of([3.0, None])
    (1, 5, 0)
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    for decimals in range(most + 1):
        scale = 10**decimals
        scaled = [v * scale for v in finite]
        if all(abs(v - round(v)) <= 1e-9 + 1e-12 * abs(v) for v in scaled):
            return decimals
    return most


def significant_decimals(values: Sequence[float], digits: int = 4, most: int = 10) -> int | None:
    """Return the decimals that give the largest of ``values`` ``digits`` significant digits.

    One number of decimals for a whole column keeps its decimal points aligned; ``None`` when
    there is no finite non-zero value.

    Examples
    --------
    >>> significant_decimals([0.0108, 0.00909]), significant_decimals([2.853, -0.6872])
    (5, 3)
    >>> significant_decimals([12345.6]), significant_decimals([float("nan")])
    (0, None)
    """
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return None
    magnitude = math.floor(math.log10(max(finite)))
    return min(most, max(0, digits - 1 - magnitude))


def _significant(value: float, digits: int = 4) -> str:
    """Show ``value`` with ``digits`` significant digits, without an exponent when reasonable."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= digits - 1:
        return f"{value:,.0f}"
    if magnitude < -6:
        return f"{value:.{digits - 1}e}"
    text = f"{value:,.{digits - 1 - magnitude}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_time(value: datetime, tz: str | None = None, *, seconds: bool = True) -> str:
    """Show a time with its year, in ``tz`` when given (else as stored, UTC).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> moment = datetime(2024, 1, 2, 14, 30, 5, 250000, tzinfo=UTC)
    >>> format_time(moment), format_time(moment, "America/New_York", seconds=False)
    ('2024-01-02 14:30:05.250', '2024-01-02 09:30')
    """
    if tz is not None and value.tzinfo is not None:
        value = value.astimezone(ZoneInfo(tz))
    if not seconds:
        return value.strftime("%Y-%m-%d %H:%M")
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{value.microsecond // 1000:03d}" if value.microsecond else text


def format_cell(value: Any, kind: Kind, decimals: int | None = None, tz: str | None = None) -> str:
    """Format one cell by its kind (prices at ``decimals``; NaN and ±∞ as ``–``).

    Sizes and counts get thousands separators, percentages one decimal, times their year.

    Examples
    --------
    >>> format_cell(61612.5, "price", 2), format_cell(1234567.0, "size", 0)
    ('61,612.50', '1,234,567')
    >>> format_cell(0.93125, "percent"), format_cell(float("-inf"), "number")
    ('93.1 %', '–')
    """
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    if kind in ("price", "spread", "size") and isinstance(value, int | float):
        if decimals is None:
            return _significant(float(value), 6)
        return f"{value:,.{decimals}f}"
    if kind == "count" and isinstance(value, int | float):
        return f"{value:,.0f}"
    if kind == "percent" and isinstance(value, int | float):
        return f"{100 * value:.1f} %"
    if kind == "seconds" and isinstance(value, int | float):
        return human_seconds(float(value))
    if kind == "number" and isinstance(value, float):
        return _significant(value) if decimals is None else f"{value:,.{decimals}f}"
    if isinstance(value, datetime):
        return format_time(value, tz)
    return format_value(value)


@dataclass(frozen=True)
class Formats:
    """How to format the cells of one frame: the price precision of each of its instruments.

    Build it with :meth:`of`; format a cell with :meth:`cell`.
    """

    kinds: dict[str, Kind]
    price_decimals: dict[tuple[Any, ...], int]
    size_decimals: dict[tuple[Any, ...], int]
    keys: tuple[str, ...]
    tz: str | None = None
    number_decimals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, df: pl.DataFrame, tz: str | None = None, sample: int = 500) -> Formats:
        """Read the kinds of ``df``'s columns and each instrument's precision from its values.

        An instrument's price precision is the fewest decimals that show up to ``sample``
        distinct traded prices of it exactly (averages such as ``vwap`` are shown at the same
        precision); a size column's, per instrument, likewise but at most 3 decimals.
        """
        kinds = {name: column_kind(name, dtype) for name, dtype in df.schema.items()}
        keys = tuple(k for k in ("venue", "symbol") if k in df.columns)
        traded = [c for c in df.columns if c in PRICES and c != "vwap" and kinds[c] == "price"]
        sized = [name for name, kind in kinds.items() if kind == "size"]
        decimals: dict[tuple[Any, ...], int] = {}
        sizes: dict[tuple[Any, ...], int] = {}
        groups = df.partition_by(list(keys), as_dict=True) if keys and df.height else {(): df}
        for group, part in groups.items():
            key = tuple(group)
            if traded:
                values = pl.concat([part[c].cast(pl.Float64) for c in traded]).unique()
                decimals[key] = decimals_of(values.head(sample).to_list())
            for name in sized:
                column = part[name].cast(pl.Float64).drop_nulls().head(sample)
                sizes[(*key, name)] = decimals_of(column.to_list(), most=3)
        numbers = {}
        for name in (name for name, kind in kinds.items() if kind == "number"):
            places = significant_decimals(df[name].cast(pl.Float64).drop_nulls().to_list())
            if places is not None:
                numbers[name] = places
        return cls(kinds, decimals, sizes, keys, tz, numbers)

    def cell(self, name: str, value: Any, row: dict[str, Any] | None = None) -> str:
        """Format ``value`` of column ``name`` (``row`` tells the instrument)."""
        kind = self.kinds.get(name, "text")
        key = tuple((row or {}).get(k) for k in self.keys)
        decimals = self.size_decimals.get((*key, name), self.number_decimals.get(name))
        if kind in ("price", "spread"):
            decimals = self.price_decimals.get(key)
            if decimals is not None and kind == "spread":
                decimals += 1
        return format_cell(value, kind, decimals, self.tz)

    def row(self, row: dict[str, Any], names: Sequence[str]) -> list[str]:
        """Format the cells ``names`` of one row."""
        return [self.cell(name, row[name], row) for name in names]


def format_value(value: Any) -> str:
    """Format one cell for people: thousands separators, 6 significant digits, ISO times.

    Examples
    --------
    >>> format_value(1234567.891)
    '1,234,568'
    >>> format_value(0.000123456)
    '0.000123456'
    >>> format_value(None), format_value(float("nan"))
    ('', '–')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
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


def human_seconds(seconds: float | None) -> str:
    """Format a duration in seconds for people.

    Examples
    --------
    >>> [human_seconds(s) for s in (0.25, 17.6, 395.0, 7300.0, None)]
    ['0.25 s', '17.6 s', '6.6 min', '2.0 h', '']
    """
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def middle_ellipsis(text: str, width: int) -> str:
    """Shorten ``text`` to ``width`` characters by replacing its middle with ``…``.

    Examples
    --------
    >>> middle_ellipsis("binance-futures_trades_2020-02-22_BTCUSDT.csv.gz", 24)
    'binance-futu…USDT.csv.gz'
    >>> middle_ellipsis("short.csv", 24)
    'short.csv'
    """
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    head = width - 1 - tail
    return f"{text[:head]}…{text[len(text) - tail :]}" if tail else text[:head] + "…"


def issue_summary(issues: Sequence[str], most: int = 2) -> str:
    """Show at most ``most`` issues, then how many more there are.

    Examples
    --------
    >>> issue_summary([])
    'none'
    >>> issue_summary(["a", "b", "c", "d"])
    'a; b; and 2 more (all with --to json)'
    """
    if not issues:
        return "none"
    shown = "; ".join(issues[:most])
    rest = len(issues) - most
    return f"{shown}; and {rest} more (all with --to json)" if rest > 0 else shown
