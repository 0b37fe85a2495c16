"""Rendering results for people (rich) and programs (files and pipes)."""

from __future__ import annotations

__all__: list[str] = []
