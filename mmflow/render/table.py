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


def shows_venue(df: pl.DataFrame) -> bool:
    """Whether a screen shows the ``venue`` column: only when it holds more than one venue."""
    return "venue" in df.columns and df["venue"].n_unique() > 1


def screen_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Drop the ``venue`` column for a screen when it holds at most one venue.

    Examples
    --------
    >>> import polars as pl
    >>> screen_frame(pl.DataFrame({"venue": ["a", "a"], "symbol": ["X", "Y"]})).columns
    ['symbol']
    >>> screen_frame(pl.DataFrame({"venue": ["a", "b"], "symbol": ["X", "X"]})).columns
    ['venue', 'symbol']
    """
    return df if "venue" not in df.columns or shows_venue(df) else df.drop("venue")


def _venue_first(
    df: pl.DataFrame, headers: list[str], rows: list[list[str]], left: int
) -> tuple[list[str], list[list[str]], int]:
    """Prepend a ``venue`` column to a screen's rows when ``df`` holds several venues."""
    if not shows_venue(df):
        return headers, rows, left
    venues = [format_value(v) for v in df["venue"].to_list()]
    return ["venue", *headers], [[v, *r] for v, r in zip(venues, rows, strict=True)], left + 1


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
    df = screen_frame(df)
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


def summary_caption(summary: pl.DataFrame, mix: pl.DataFrame | None = None) -> str | None:
    """Say in a caption the UTC span of a per-symbol summary and how its trades were signed."""
    lines = []
    if {"start", "end"} <= set(summary.columns) and summary.height:
        first = _iso(summary["start"].min())  # type: ignore[arg-type]
        last = _iso(summary["end"].max())  # type: ignore[arg-type]
        lines.append(f"{time_span(first, last).replace(chr(10), ' ')} UTC")
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
    return "\n".join(lines) or None


def evaluation_table(scores: pl.DataFrame, *, title: str) -> Table:
    """Build the ``classify --evaluate`` table; each symbol's most accurate method is marked.

    The best method is the one with the most correct trades among those it classified and all
    trades (accuracy × coverage), so a method that abstains cannot win by abstaining.
    """
    ranked = scores.with_columns(
        (pl.col("accuracy").fill_null(0) * pl.col("coverage").fill_null(0)).alias("_merit")
    )
    keys = [k for k in ("venue", "symbol") if k in ranked.columns]
    best = ranked.group_by(keys).agg(pl.col("_merit").max().alias("_best"))
    marked = ranked.join(
        best, on=keys, how="left", maintain_order="left", nulls_equal=True
    ).with_columns((pl.col("_merit") == pl.col("_best")).alias("best"))
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


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int = 24) -> str:
    """Draw a series as a one-line chart of block characters (nulls are skipped).

    Long series are resampled to ``width`` points (the last value of each stretch), so the line
    ends where the series ends.

    Examples
    --------
    >>> sparkline([0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0], width=7)
    '▁▃▆█▆▃▁'
    >>> sparkline([None, 5.0, 5.0])
    '▄▄'
    """
    points = [v for v in values if v is not None]
    if not points:
        return ""
    if len(points) > width:
        step = len(points) / width
        points = [points[min(len(points) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    low, high = min(points), max(points)
    if high == low:
        return _BLOCKS[len(_BLOCKS) // 2 - 1] * len(points)
    scale = (len(_BLOCKS) - 1) / (high - low)
    return "".join(_BLOCKS[round((v - low) * scale)] for v in points)


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


def compact(value: Any) -> str:
    """Format a number in at most ~6 characters for narrow terminal tables.

    Examples
    --------
    >>> [compact(v) for v in (4024.3, -50156.0, 0.000123, 12.0, 1_234_567, None)]
    ['4.02k', '-50.2k', '0.000123', '12', '1.23M', '']
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isnan(number):
        return "NaN"
    magnitude = abs(number)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{number / limit:.3g}{suffix}"
    if magnitude == 0 or magnitude >= 0.001:
        return f"{number:.3g}"
    return f"{number:.3g}"


def _screen_table(title: str, caption: str | None = None) -> Table:
    return Table(
        title=title,
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def fitted_table(
    title: str,
    caption: str | None,
    headers: list[str],
    rows: list[list[str]],
    *,
    left: int = 1,
) -> Table:
    """Build a compact table whose columns are never narrower than their widest cell.

    Headers may hold line breaks (they wrap, values never do); the first ``left`` columns are
    left-aligned, the rest right-aligned.
    """
    table = _screen_table(title, caption)
    for index, header in enumerate(headers):
        widest = max((len(row[index]) for row in rows), default=0)
        table.add_column(
            header,
            justify="left" if index < left else "right",
            no_wrap=True,
            min_width=max(widest, *(len(part) for part in header.split("\n"))),
        )
    for row in rows:
        table.add_row(*row)
    return table


_SHORT_PHASE = {"accumulation": "accum.", "distribution": "distrib."}


def analyze_table(
    summary: pl.DataFrame, *, mix: pl.DataFrame | None = None, paths: pl.DataFrame | None = None
) -> Table:
    """Build the one-screen ``mmflow analyze`` view: flow, OFI and inventory per symbol.

    ``buy %`` is the buyer-initiated share of signed volume; ``inventory`` is the market-maker
    inventory proxy (−CVD) at the end, with its path over the run as a sparkline; the caption
    gives the time span and how trades were signed. Numbers are shortened (k, M); the data
    formats (``--to``, ``-o``) keep full precision.
    """
    lines = {}
    if paths is not None:
        lines = {
            (row.get("venue"), row["symbol"]): sparkline(row["inventory_path"], width=10)
            for row in paths.iter_rows(named=True)
        }
    rows = []
    for row in summary.iter_rows(named=True):
        phase = _SHORT_PHASE.get(row.get("phase") or "", row.get("phase") or "")
        if phase and phase != "neutral" and row.get("inventory_side"):
            phase = f"{phase} {row['inventory_side']}"
        rows.append(
            [
                row["symbol"],
                compact(row["net_flow"]),
                compact(row["ofi"]),
                compact(row["mm_inventory"]),
                lines.get((row.get("venue"), row["symbol"]), ""),
                human_seconds(row["inventory_half_life"]),
                row["liquidity_state"] or "",
                phase,
            ]
        )
    headers = ["symbol", "net\nflow", "OFI", "inven-\ntory", "inventory\npath", "half-\nlife"]
    headers += ["liquidity", "phase"]
    headers, rows, left = _venue_first(summary, headers, rows, 1)
    table = fitted_table("mmflow analyze", summary_caption(summary, mix), headers, rows, left=left)
    for column in table.columns[-3:]:
        column.justify = "left"
    return table


def flow_table(bars: pl.DataFrame) -> Table:
    """Build the terminal view of ``mmflow flow``: the main columns, numbers shortened."""
    wanted = ["close", "volume", "net_flow", "cvd", "ofi", "spread", "vpin"]
    columns = [c for c in wanted if c in bars.columns and bars[c].null_count() < bars.height]
    one_day = bars.height == 0 or bars["ts"].dt.date().n_unique() == 1
    first = bars["ts"].min() if bars.height else None
    day = first.strftime("%Y-%m-%d ") if isinstance(first, datetime) else ""
    pattern = "%H:%M:%S" if one_day else "%m-%d %H:%M"
    rows = [
        [row["symbol"], row["ts"].strftime(pattern), *(compact(row[c]) for c in columns)]
        for row in bars.iter_rows(named=True)
    ]
    caption = (
        f"bars start {day if one_day else ''}(UTC); all {len(bars.columns)} columns with --to or -o"
    )
    headers = ["symbol", "bar", *(c.replace("_", "\n") for c in columns)]
    headers, rows, left = _venue_first(bars, headers, rows, 2)
    return fitted_table("mmflow flow", caption, headers, rows, left=left)


def inventory_table(summary: pl.DataFrame) -> Table:
    """Build the terminal view of the ``mmflow inventory`` summary."""
    rows = []
    for row in summary.iter_rows(named=True):
        share = row["withdrawing_share"]
        rows.append(
            [
                row["symbol"],
                compact(row["mm_inventory"]),
                compact(row["inventory_max"]),
                compact(row["inventory_min"]),
                human_seconds(row["inventory_half_life"]),
                compact(row["price_pressure"]),
                compact(row["quote_skew"]),
                "" if share is None else f"{100 * share:.0f} %",
                row["liquidity_state"] or "",
            ]
        )
    headers = ["symbol", "inven-\ntory", "max\nlong", "max\nshort", "half-\nlife"]
    headers += ["price\npressure", "quote\nskew", "with-\ndrawing", "liquidity"]
    headers, rows, left = _venue_first(summary, headers, rows, 1)
    table = fitted_table(
        "mmflow inventory",
        "half-life: AR(1) mean reversion of the inventory",
        headers,
        rows,
        left=left,
    )
    table.columns[-1].justify = "left"
    return table


def profile_chart(levels: pl.DataFrame, area: dict[str, Any], *, rows: int = 30) -> Table:
    """Draw one volume profile as horizontal bars, highest price first.

    Levels beyond ``rows`` are merged into equal price ranges for display only. The point of
    control is marked ``POC`` and rows inside the value area ``VA``; the bar's two shades show
    the buyer- and seller-initiated parts of the volume.
    """
    frame = levels.sort("price_level")
    if frame.height > rows:
        step = -(-frame.height // rows)
        frame = (
            frame.with_row_index("_row")
            .group_by((pl.col("_row") // step).alias("_group"))
            .agg(
                pl.col("price_level").first(),
                pl.col("volume", "buy_volume", "sell_volume", "delta").sum(),
                pl.col("price_level").last().alias("_top"),
            )
            .sort("price_level")
        )
    else:
        frame = frame.with_columns(pl.col("price_level").alias("_top"))
    widest = frame["volume"].max() or 0.0
    poc, low, high = area.get("poc"), area.get("value_area_low"), area.get("value_area_high")
    table = _screen_table(
        f"{area.get('symbol', '')}{' ' + str(area['venue']) if area.get('venue') else ''}"
        " volume profile",
        f"POC {format_value(poc)}  value area {format_value(low)} – {format_value(high)}"
        f" ({format_value(area.get('value_area_volume'))} of "
        f"{format_value(area.get('total_volume'))})",
    )
    table.add_column("price", justify="right", no_wrap=True)
    table.add_column("volume (buy ▇ sell ░)", no_wrap=True, min_width=24)
    table.add_column("volume", justify="right", no_wrap=True)
    table.add_column("delta", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in frame.reverse().iter_rows(named=True):
        length = 0 if not widest else round(24 * row["volume"] / widest)
        buys = 0 if not row["volume"] else round(length * row["buy_volume"] / row["volume"])
        marks = []
        if poc is not None and row["price_level"] <= poc <= row["_top"]:
            marks.append("POC")
        elif low is not None and high is not None and low <= row["price_level"] <= high:
            marks.append("VA")
        table.add_row(
            format_value(row["price_level"]),
            "▇" * buys + "░" * (length - buys),
            compact(row["volume"]),
            compact(row["delta"]),
            " ".join(marks),
        )
    return table


def phases_table(bars: pl.DataFrame, *, limit: int = 40) -> Table:
    """Build the terminal view of ``mmflow phases``: the bars that are not neutral."""
    active = bars.filter(pl.col("phase").is_in(["accumulation", "distribution"]))
    rows = [
        [
            row["symbol"],
            format_value(row["ts"])[:16],
            row["phase"],
            row["inventory_side"] or "",
            compact(row["mm_inventory"]),
            compact(row["distribution_score"]),
        ]
        for row in active.head(limit).iter_rows(named=True)
    ]
    counts = bars.group_by("phase").len().sort("phase")
    caption = ", ".join(f"{p or 'warm-up'} {n:,}" for p, n in counts.iter_rows()) + " bars"
    if active.height > limit:
        caption += f"; first {limit} of {active.height:,} active bars shown (all with --to/-o)"
    headers = ["symbol", "bar (UTC)", "phase", "side", "inventory", "score"]
    headers, rows, left = _venue_first(active.head(limit), headers, rows, 4)
    return fitted_table("mmflow phases", caption, headers, rows, left=left)


def episodes_table(episodes: pl.DataFrame) -> Table:
    """Build the terminal view of ``mmflow phases --episodes``."""
    rows = [
        [
            row["symbol"],
            row["phase"],
            row["inventory_side"] or "",
            row["start"].strftime("%m-%d %H:%M"),
            f"{row['bars']:,}",
            compact(row["inventory_start"]),
            compact(row["inventory_end"]),
            compact(row["price_levels"]),
            compact(row["price_change"]),
        ]
        for row in episodes.iter_rows(named=True)
    ]
    headers = ["symbol", "phase", "side", "start\n(UTC)", "bars", "inv.\nstart", "inv.\nend"]
    headers += ["price\nlevels", "price\nchange"]
    headers, rows, left = _venue_first(episodes, headers, rows, 4)
    return fitted_table("mmflow phases --episodes", None, headers, rows, left=left)


def compact_table(df: pl.DataFrame, *, title: str, caption: str | None = None) -> Table:
    """Build a narrow table of any frame: numbers shortened, headers wrapped at underscores."""
    df = screen_frame(df)
    rows = [
        [compact(v) if isinstance(v, int | float) else format_value(v) for v in row]
        for row in df.iter_rows()
    ]
    headers = [name.replace("_", "\n") for name in df.columns]
    left = sum(1 for dtype in df.dtypes if not dtype.is_numeric())
    return fitted_table(title, caption, headers, rows, left=max(left, 1))
