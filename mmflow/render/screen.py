"""A table for a terminal that never gets wider than the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.table import Table

__all__ = ["Screen", "fitted_table", "screen_table"]


def screen_table(title: str, caption: str | None = None) -> Table:
    """Return an empty rich table in the house style: bold headers, one rule, no side padding."""
    return Table(
        title=title or None,
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


@dataclass
class Screen:
    """A table for a terminal that never gets wider than the terminal.

    Values never wrap (headers may, at their line breaks); the first ``left`` columns are
    left-aligned keys and always shown; the others follow from left to right while they fit the
    width the table is printed at, and the caption says how many were left out.

    Attributes
    ----------
    title, caption
        Shown above and below.
    headers, rows
        Formatted cells.
    left
        Key columns (left-aligned, always shown).
    justify
        Alignment of other columns by index (``right`` when not given).
    styles
        Row styles by row index (e.g. the best method in bold).
    """

    title: str
    caption: str | None
    headers: list[str]
    rows: list[list[str]]
    left: int = 1
    justify: dict[int, JustifyMethod] = field(default_factory=dict)
    styles: dict[int, str] = field(default_factory=dict)

    def widths(self) -> list[int]:
        """Each column's width: its widest cell or header line."""
        return [
            max(
                max((len(row[index]) for row in self.rows), default=0),
                *(len(part) for part in header.split("\n")),
            )
            for index, header in enumerate(self.headers)
        ]

    def shown(self, width: int | None) -> list[int]:
        """Return the indices of the columns that fit ``width`` characters (all when ``None``)."""
        widths = self.widths()
        if width is None:
            return list(range(len(widths)))
        chosen = list(range(min(self.left, len(widths))))
        used = sum(widths[i] + 2 for i in chosen)
        for index in range(len(chosen), len(widths)):
            if used + widths[index] + 2 > width:
                break
            chosen.append(index)
            used += widths[index] + 2
        return chosen

    def table(self, width: int | None = None) -> Table:
        """Build the rich table with the columns that fit ``width`` (all when ``None``)."""
        chosen = self.shown(width)
        caption = self.caption
        hidden = len(self.headers) - len(chosen)
        if hidden:
            note = (
                f"{hidden} more column{'s' if hidden > 1 else ''} than fit this terminal "
                "(all with --to or -o)"
            )
            caption = f"{caption}\n{note}" if caption else note
        table = screen_table(self.title, caption)
        widths = self.widths()
        for index in chosen:
            default: JustifyMethod = "left" if index < self.left else "right"
            table.add_column(
                self.headers[index],
                justify=self.justify.get(index, default),
                no_wrap=True,
                min_width=widths[index],
            )
        for number, row in enumerate(self.rows):
            table.add_row(*(row[i] for i in chosen), style=self.styles.get(number))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render at the width rich offers (the terminal's, or a test console's)."""
        yield self.table(options.max_width)


def fitted_table(
    title: str,
    caption: str | None,
    headers: list[str],
    rows: list[list[str]],
    *,
    left: int = 1,
) -> Screen:
    """Build a compact table whose columns are never narrower than their widest cell.

    Headers may hold line breaks (they wrap, values never do); the first ``left`` columns are
    left-aligned, the rest right-aligned; columns that do not fit the terminal are left out.
    """
    return Screen(title, caption, headers, rows, left=left)
