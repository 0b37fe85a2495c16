"""mmflow: order-flow and market-maker inventory analytics for trade and quote files.

The library is the product; the ``mmflow`` command is one client of it. One call reads files and
runs an analysis (:mod:`mmflow.api`)::

    import mmflow

    result = mmflow.analyze("trades/", quotes="quotes/", bar="1m")
    result.summary  # one row per instrument (polars DataFrame)

Lower down, read files with :func:`mmflow.io.load` and compute with :mod:`mmflow.metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmflow._version import __version__

if TYPE_CHECKING:
    from mmflow.api import analyze, classify, flow, inventory, phases, profile, read

__all__ = [
    "__version__",
    "analyze",
    "classify",
    "flow",
    "inventory",
    "phases",
    "profile",
    "read",
]

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    """Import the API on first use, so ``import mmflow`` (and ``mmflow --version``) stays fast."""
    if name in _API:
        from mmflow import api

        return getattr(api, name)
    msg = f"module 'mmflow' has no attribute {name!r}"
    raise AttributeError(msg)
