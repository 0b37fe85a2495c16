"""Rich tables built from polars frames. Functions return renderables; they never print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

import polars as pl
from rich import box
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from mmflow.render.cells import (
    Formats,
    decimals_of,
    format_cell,
    format_time,
    format_value,
    human_seconds,
    issue_summary,
    middle_ellipsis,
)
from mmflow.render.screen import Screen, fitted_table, screen_table

__all__ = [
    "FILE_NAME_WIDTH",
    "InspectScreen",
    "Screen",
    "analyze_table",
    "compact_table",
    "episodes_table",
    "evaluation_table",
    "flow_table",
    "frame_table",
    "inspect_cards",
    "inspect_table",
    "inventory_table",
    "phases_table",
    "profile_chart",
    "screen_frame",
    "shows_venue",
    "sparkline",
    "summary_caption",
    "time_span",
]


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


def frame_table(
    df: pl.DataFrame,
    *,
    title: str | None = None,
    caption: str | None = None,
    tz: str | None = None,
) -> Screen:
    """Build a screen table of any frame: cells formatted by kind, headers wrapped at ``_``.

    Text columns are left-aligned, numbers right-aligned; columns that do not fit the terminal
    are left out, and the caption says so (the data formats, ``--to`` and ``-o``, hold them).

    Examples
    --------
    >>> import polars as pl
    >>> screen = frame_table(pl.DataFrame({"symbol": ["X"], "volume": [1.5]}))
    >>> [c.header for c in screen.table().columns]
    ['symbol', 'volume']
    """
    df = screen_frame(df)
    formats = Formats.of(df, tz)
    rows = [formats.row(row, df.columns) for row in df.iter_rows(named=True)]
    numeric = [dtype.is_numeric() for dtype in df.dtypes]
    left = next((i for i, flag in enumerate(numeric) if flag), len(numeric))
    justify: dict[int, JustifyMethod] = {
        i: "left" for i, flag in enumerate(numeric) if not flag and i >= left
    }
    headers = [name.replace("_", "\n") for name in df.columns]
    return Screen(title or "", caption, headers, rows, left=max(left, 1), justify=justify)


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


FILE_NAME_WIDTH = 60
"""The most characters of a file name ``inspect`` shows (the middle gives way to ``…``)."""
SHORTEST_FILE_NAME = 20
"""Below this width for file names, ``inspect`` shows one card per file instead of a table."""


@dataclass(frozen=True)
class InspectScreen:
    """``mmflow inspect`` at the terminal's width: a table, or one card per file when narrow.

    The file column gets the width the other columns leave (file names never wrap; long ones
    lose their middle), up to :data:`FILE_NAME_WIDTH`.
    """

    report: pl.DataFrame

    def file_width(self, width: int) -> int:
        """Return the characters the file names get in a table ``width`` characters wide."""
        df = self.report

        def widest(values: list[str], most: int = 1_000) -> int:
            return min(most, max((len(v) for v in values), default=0))

        others = [
            widest(df["format"].to_list()),
            widest(df["kind"].to_list()),
            widest([f"{n:,}" for n in df["rows"].to_list()]) if df.height else 4,
            widest([", ".join(s) for s in df["symbols"].to_list()], most=12),
            25,  # a time to the millisecond and an arrow
            7,  # 100.0 %
            7,
            max(6, widest([issue_summary(i) for i in df["issues"].to_list()], most=24)),
        ]
        names = _relative_paths(df["path"].to_list())
        return min(widest(names), FILE_NAME_WIDTH, width - sum(others) - 2 * (len(others) + 1))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render a table when file names get at least :data:`SHORTEST_FILE_NAME` characters."""
        width = self.file_width(options.max_width)
        if width < SHORTEST_FILE_NAME:
            yield inspect_cards(self.report)
        else:
            yield inspect_table(self.report, file_width=width)


def inspect_table(df: pl.DataFrame, *, file_width: int = FILE_NAME_WIDTH) -> Table:
    """Build the ``mmflow inspect`` table: one row per file, times to the millisecond.

    File names stay on one line (those longer than ``file_width`` lose their middle); long
    issue lists are summarised.
    """
    table = Table(
        title="mmflow inspect",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("file", no_wrap=True)
    table.add_column("format", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("symbols", overflow="fold")
    table.add_column("span (UTC)", min_width=23)
    table.add_column("side\nknown", justify="right", no_wrap=True)
    table.add_column("buy\nshare", justify="right", no_wrap=True)
    table.add_column("issues", overflow="fold")
    names = _relative_paths(df["path"].to_list())
    for name, row in zip(names, df.iter_rows(named=True), strict=True):
        table.add_row(
            middle_ellipsis(name, file_width),
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
            issue_summary(row["issues"]),
        )
    return table


def summary_caption(
    summary: pl.DataFrame, mix: pl.DataFrame | None = None, *, tz: str | None = None
) -> str | None:
    """Say in a caption the span of a per-symbol summary (in ``tz``, else UTC) and its signing."""
    lines = []
    first = summary["start"].min() if "start" in summary.columns else None
    last = summary["end"].max() if "end" in summary.columns else None
    if isinstance(first, datetime) and isinstance(last, datetime):
        start, end = format_time(first, tz), format_time(last, tz)
        end = end[11:] if end[:10] == start[:10] else end
        lines.append(f"{start} → {end} {tz or 'UTC'}")
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


def evaluation_table(scores: pl.DataFrame, *, title: str) -> Screen:
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
    table.styles = {i: "bold green" for i, flag in enumerate(marked["best"].to_list()) if flag}
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
        card.add_row("issues", issue_summary(row["issues"], most=5))
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


_SHORT_PHASE = {"accumulation": "accum.", "distribution": "distrib."}


def analyze_table(
    summary: pl.DataFrame,
    *,
    mix: pl.DataFrame | None = None,
    paths: pl.DataFrame | None = None,
    tz: str | None = None,
) -> Screen:
    """Build the one-screen ``mmflow analyze`` view: flow, OFI and inventory per symbol.

    ``buy %`` is the buyer-initiated share of signed volume; ``inventory`` is the market-maker
    inventory proxy (−CVD) at the end, with its path over the run as a sparkline; the caption
    gives the time span and how trades were signed. Sizes carry thousands separators; the data
    formats (``--to``, ``-o``) keep full precision.
    """
    lines = {}
    if paths is not None:
        lines = {
            (row.get("venue"), row["symbol"]): sparkline(row["inventory_path"], width=10)
            for row in paths.iter_rows(named=True)
        }
    formats = Formats.of(summary, tz)
    rows = []
    for row in summary.iter_rows(named=True):
        phase = _SHORT_PHASE.get(row.get("phase") or "", row.get("phase") or "")
        if phase and phase != "neutral" and row.get("inventory_side"):
            phase = f"{phase} {row['inventory_side']}"
        rows.append(
            [
                row["symbol"],
                *formats.row(row, ["net_flow", "ofi", "mm_inventory"]),
                lines.get((row.get("venue"), row["symbol"]), ""),
                human_seconds(row["inventory_half_life"]),
                row["liquidity_state"] or "",
                phase,
            ]
        )
    headers = ["symbol", "net\nflow", "OFI", "inven-\ntory", "inventory\npath", "half-\nlife"]
    headers += ["liquidity", "phase"]
    headers, rows, left = _venue_first(summary, headers, rows, 1)
    screen = fitted_table(
        "mmflow analyze", summary_caption(summary, mix, tz=tz), headers, rows, left=left
    )
    count = len(headers)
    screen.justify = {count - 3: "left", count - 2: "left", count - 1: "left"}
    return screen


def _zone(tz: str | None) -> str:
    return tz or "UTC"


def _has_seconds(times: pl.Series) -> bool:
    """Whether any time of ``times`` is not on a whole minute (then screens show seconds)."""
    if times.len() == 0:
        return False
    return bool(((times.dt.second() != 0) | (times.dt.nanosecond() != 0)).any())


def flow_table(bars: pl.DataFrame, *, tz: str | None = None) -> Screen:
    """Build the terminal view of ``mmflow flow``: the main columns, by kind."""
    wanted = ["close", "volume", "net_flow", "cvd", "ofi", "spread", "vpin"]
    columns = [c for c in wanted if c in bars.columns and bars[c].null_count() < bars.height]
    formats = Formats.of(bars, tz)
    seconds = _has_seconds(bars["ts"])
    rows = [
        [row["symbol"], format_time(row["ts"], tz, seconds=seconds), *formats.row(row, columns)]
        for row in bars.iter_rows(named=True)
    ]
    caption = f"bars start (times {_zone(tz)}); all {len(bars.columns)} columns with --to or -o"
    headers = ["symbol", f"bar ({_zone(tz)})", *(c.replace("_", "\n") for c in columns)]
    headers, rows, left = _venue_first(bars, headers, rows, 2)
    return fitted_table("mmflow flow", caption, headers, rows, left=left)


def inventory_table(summary: pl.DataFrame) -> Screen:
    """Build the terminal view of the ``mmflow inventory`` summary."""
    formats = Formats.of(summary)
    rows = [
        [
            row["symbol"],
            *formats.row(row, ["mm_inventory", "inventory_max", "inventory_min"]),
            human_seconds(row["inventory_half_life"]),
            *formats.row(row, ["price_pressure", "quote_skew", "withdrawing_share"]),
            row["liquidity_state"] or "",
        ]
        for row in summary.iter_rows(named=True)
    ]
    headers = ["symbol", "inven-\ntory", "max\nlong", "max\nshort", "half-\nlife"]
    headers += ["price\npressure", "quote\nskew", "with-\ndrawing", "liquidity"]
    headers, rows, left = _venue_first(summary, headers, rows, 1)
    screen = fitted_table(
        "mmflow inventory",
        "half-life: AR(1) mean reversion of the inventory",
        headers,
        rows,
        left=left,
    )
    screen.justify = {len(headers) - 1: "left"}
    return screen


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
    places = decimals_of(levels["price_level"].head(500).to_list())
    size_places = decimals_of(levels["volume"].head(500).to_list(), most=3)

    def price(value: Any) -> str:
        return format_cell(value, "price", places)

    def size(value: Any) -> str:
        return format_cell(value, "size", size_places)

    poc, low, high = area.get("poc"), area.get("value_area_low"), area.get("value_area_high")
    table = screen_table(
        f"{area.get('symbol', '')}{' ' + str(area['venue']) if area.get('venue') else ''}"
        " volume profile",
        f"POC {price(poc)}  value area {price(low)} – {price(high)}"
        f" ({size(area.get('value_area_volume'))} of {size(area.get('total_volume'))})",
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
            price(row["price_level"]),
            "▇" * buys + "░" * (length - buys),
            size(row["volume"]),
            size(row["delta"]),
            " ".join(marks),
        )
    return table


def phases_table(bars: pl.DataFrame, *, limit: int = 40, tz: str | None = None) -> Screen:
    """Build the terminal view of ``mmflow phases``: the bars that are not neutral."""
    active = bars.filter(pl.col("phase").is_in(["accumulation", "distribution"]))
    formats = Formats.of(active, tz)
    seconds = _has_seconds(active["ts"])
    rows = [
        [
            row["symbol"],
            format_time(row["ts"], tz, seconds=seconds),
            row["phase"],
            row["inventory_side"] or "",
            *formats.row(row, ["mm_inventory", "distribution_score"]),
        ]
        for row in active.head(limit).iter_rows(named=True)
    ]
    counts = bars.group_by("phase").len().sort("phase")
    caption = ", ".join(f"{p or 'warm-up'} {n:,}" for p, n in counts.iter_rows()) + " bars"
    if active.height > limit:
        caption += f"; first {limit} of {active.height:,} active bars shown (all with --to/-o)"
    headers = ["symbol", f"bar ({_zone(tz)})", "phase", "side", "inventory", "score"]
    headers, rows, left = _venue_first(active.head(limit), headers, rows, 4)
    return fitted_table("mmflow phases", caption, headers, rows, left=left)


def episodes_table(episodes: pl.DataFrame, *, tz: str | None = None) -> Screen:
    """Build the terminal view of ``mmflow phases --episodes``."""
    formats = Formats.of(episodes, tz)
    names = ["inventory_start", "inventory_end", "price_levels", "price_change"]
    rows = [
        [
            row["symbol"],
            row["phase"],
            row["inventory_side"] or "",
            format_time(row["start"], tz, seconds=False),
            f"{row['bars']:,}",
            *formats.row(row, names),
        ]
        for row in episodes.iter_rows(named=True)
    ]
    headers = ["symbol", "phase", "side", f"start\n({_zone(tz)})", "bars", "inv.\nstart"]
    headers += ["inv.\nend", "price\nlevels", "price\nchange"]
    headers, rows, left = _venue_first(episodes, headers, rows, 4)
    return fitted_table("mmflow phases --episodes", None, headers, rows, left=left)


def compact_table(
    df: pl.DataFrame, *, title: str, caption: str | None = None, tz: str | None = None
) -> Screen:
    """Build a narrow table of any frame (see :func:`frame_table`)."""
    return frame_table(df, title=title, caption=caption, tz=tz)
