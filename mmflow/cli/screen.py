"""What the commands show on a terminal, imported only when something is shown.

rich (and the table renderers built on it) costs a noticeable part of start-up; a run that
writes ``-o`` or ``--to`` never draws a table. ``screen.analyze_table(...)`` and
``screen.Console()`` import their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmflow.render.progress import plain_console as Console
    from mmflow.render.table import (
        analyze_table,
        compact_table,
        episodes_table,
        evaluation_table,
        flow_table,
        frame_table,
        inventory_table,
        phases_table,
        profile_chart,
    )

__all__ = [
    "Console",
    "analyze_table",
    "compact_table",
    "episodes_table",
    "evaluation_table",
    "flow_table",
    "frame_table",
    "inventory_table",
    "phases_table",
    "profile_chart",
]

_HOMES = {
    "Console": ("mmflow.render.progress", "plain_console"),
    **{name: ("mmflow.render.table", name) for name in __all__ if name != "Console"},
}


def __getattr__(name: str) -> Any:
    """Import ``name`` from its rendering module on first use."""
    if name not in _HOMES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    module, attribute = _HOMES[name]
    return getattr(importlib.import_module(module), attribute)
