"""Order-flow metrics as pure functions on polars expressions and lazy frames."""

from __future__ import annotations

__all__: list[str] = []
