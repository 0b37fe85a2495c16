"""Parameter types of the ``mmflow`` options: durations, times, horizons, sessions, maps."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import click

from mmflow.durations import MAX_DURATION, check_duration
from mmflow.errors import ParameterError
from mmflow.metrics.event_study import MAX_HORIZONS
from mmflow.schema import QUOTES, TRADES

__all__ = [
    "Duration",
    "Horizons",
    "OptionalDuration",
    "SessionWindow",
    "Timestamp",
    "parse_alerts",
    "parse_map",
]


class Duration(click.ParamType[str]):
    """A polars duration string such as ``1s``, ``5m``, ``1h``, within a range.

    Every duration flag goes through :func:`mmflow.durations.check_duration`: fixed-length
    units only, at most 366 days (so nothing overflows polars' nanosecond clock), and what
    polars itself accepts.
    """

    name = "duration"

    def __init__(self, *, minimum: int = 1, maximum: int = MAX_DURATION) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Validate ``value``."""
        try:
            return check_duration(
                str(value), what="duration", minimum=self.minimum, maximum=self.maximum
            )
        except ParameterError as exc:
            self.fail(exc.message.removeprefix("duration "), param, ctx)


class OptionalDuration(Duration):
    """A :class:`Duration`, or ``none`` for no limit."""

    def convert(  # type: ignore[override]
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str | None:
        """Validate ``value``; ``none`` gives ``None``."""
        if value is None or str(value).strip().lower() in ("none", "off"):
            return None
        return super().convert(value, param, ctx)


class Timestamp(click.ParamType[datetime]):
    """An ISO-8601 date or time; without a zone it is UTC."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Parse ``value``."""
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time like 2024-07-19T00:05:00Z", param, ctx)


class Horizons(click.ParamType[tuple[int, ...]]):
    """A comma-separated list of forward horizons in bars, such as ``1,5,15,60``."""

    name = "N,N,..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        """Parse ``value``; at most MAX_HORIZONS whole numbers >= 1."""
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if not all(part.isdigit() and int(part) >= 1 for part in parts):
            self.fail(
                f"{value!r} is not a list of whole numbers of bars >= 1 like 1,5,15", param, ctx
            )
        steps = tuple(int(part) for part in parts)
        if len(set(steps)) < len(steps):
            self.fail(f"{value!r} repeats a horizon", param, ctx)
        if len(steps) > MAX_HORIZONS:
            self.fail(f"{len(steps)} horizons given; at most {MAX_HORIZONS}", param, ctx)
        return steps


def parse_map(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    """Parse ``--map canonical=column,...`` (repeatable) into ``{canonical: column}``."""
    allowed = set(TRADES.names) | set(QUOTES.names)
    mapping: dict[str, str] = {}
    for chunk in value:
        for pair in filter(None, (p.strip() for p in chunk.split(","))):
            canonical, sep, column = pair.partition("=")
            if not sep or not column:
                msg = f"{pair!r} is not canonical=column"
                raise click.BadParameter(msg, ctx, param)
            if canonical not in allowed:
                names = ", ".join(sorted(allowed))
                msg = f"{canonical!r} is not a canonical column; use one of {names}"
                raise click.BadParameter(msg, ctx, param)
            mapping[canonical] = column
    return mapping


class SessionWindow(click.ParamType[tuple[time, time]]):
    """A daily session as ``HH:MM-HH:MM`` in the --session-tz time zone."""

    name = "HH:MM-HH:MM"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[time, time]:
        """Parse ``value``."""
        if isinstance(value, tuple):
            return value
        try:
            first, last = str(value).split("-")
            return time.fromisoformat(first.strip()), time.fromisoformat(last.strip())
        except ValueError:
            self.fail(f"{value!r} is not a session like 09:30-16:00", param, ctx)


def parse_alerts(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Check the syntax of every --alert before any file is read (columns are checked later)."""
    if not value:
        return value
    from mmflow.alerts import ConditionError  # with --alert only (start-up)
    from mmflow.alerts import parse as parse_alert

    for text in value:
        try:
            parse_alert(text.strip())
        except ConditionError as exc:
            msg = f"{exc}\n{exc.pointer()}"
            raise click.BadParameter(msg, ctx, param) from None
    return value
