"""One validator for every duration parameter (bar length, horizon, quote lag, quote age).

A duration is a polars duration string of fixed-length units (``500ms``, ``1m``, ``1h30m``,
``2d``): polars decides what is valid (the text is tried on a timestamp with
``dt.offset_by``), and mmflow adds a range so that no value overflows polars' 64-bit
nanosecond clock or builds a grid nobody asked for. Calendar units (``mo``, ``q``, ``y``) and
index counts (``i``) have no fixed length and are refused.

Examples
--------
>>> duration_nanoseconds("1h30m")
5400000000000
>>> check_duration("0", what="quote lag", minimum=0)
'0s'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import polars as pl

from mmflow.errors import ParameterError

__all__ = [
    "CALENDAR_UNITS",
    "DAY",
    "DURATION_PART",
    "DURATION_TEXT",
    "MAX_DURATION",
    "NANOSECONDS",
    "check_duration",
    "describe",
    "duration_nanoseconds",
    "duration_seconds",
]

NANOSECONDS: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
    "d": 86_400 * 1_000_000_000,
    "w": 7 * 86_400 * 1_000_000_000,
}
"""Length of each fixed polars duration unit in nanoseconds."""

DAY: Final = NANOSECONDS["d"]
MAX_DURATION: Final = 366 * DAY
"""The longest duration any parameter accepts: 366 days (one bar per leap year)."""

DURATION_PART: Final = re.compile(r"(\d+)(ns|us|µs|ms|mo|s|m|h|d|w|q|y|i)")
"""One ``count unit`` part of a polars duration (every unit polars knows)."""
DURATION_TEXT: Final = re.compile(r"(?:\d+(?:ns|us|µs|ms|mo|s|m|h|d|w|q|y|i))+")
"""A whole polars duration: one or more parts (use ``fullmatch``)."""
CALENDAR_UNITS: Final = frozenset({"mo", "q", "y", "i"})
"""Units without a fixed length (months, quarters, years) and index counts."""


def duration_nanoseconds(text: str, *, what: str = "duration") -> int:
    """Return the length of a fixed polars duration string in nanoseconds (exact, any size).

    Raises
    ------
    ParameterError
        When ``text`` is not a duration of fixed-length units.
    """
    value = text.strip()
    if value == "0":
        return 0
    like = "duration like 500ms, 1s, 5m, 1h or 1h30m"
    return _fixed_length(value, f"{what} {text!r}", like=like, units="ms, s, m, h, d or w")


def _fixed_length(value: str, named: str, *, like: str, units: str) -> int:
    """Return the nanoseconds of the polars duration ``value`` (errors begin with ``named``).

    Raises
    ------
    ParameterError
        When ``value`` is not a duration (``… is not a LIKE``) or has a unit without a fixed
        length (``… use UNITS units``).
    """
    if not DURATION_TEXT.fullmatch(value):
        msg = f"{named} is not a {like}"
        raise ParameterError(msg)
    total = 0
    for count, unit in DURATION_PART.findall(value):
        if unit in CALENDAR_UNITS:
            msg = f"{named} has no fixed length; use {units} units"
            raise ParameterError(msg)
        total += int(count) * NANOSECONDS[unit]
    return total


def describe(nanoseconds: int) -> str:
    """Return a short human form of a length, e.g. ``366d`` or ``1ms``."""
    for unit in ("w", "d", "h", "m", "s", "ms", "us", "ns"):
        size = NANOSECONDS[unit]
        if nanoseconds >= size and nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    return f"{nanoseconds}ns"


def check_duration(
    text: str,
    *,
    what: str,
    minimum: int = 1,
    maximum: int = MAX_DURATION,
) -> str:
    """Validate a duration parameter and return it in the form polars takes.

    Parameters
    ----------
    text
        The duration, e.g. ``1m``; ``0`` means ``0s``.
    what
        The parameter's name for the message (``--bar``, ``horizon``).
    minimum, maximum
        The accepted range in nanoseconds (default: longer than zero, at most 366 days).

    Returns
    -------
    str
        ``text`` stripped (``0`` as ``0s``).

    Raises
    ------
    ParameterError
        When ``text`` is not a fixed-length duration, is out of range, or polars refuses it.

    Examples
    --------
    >>> check_duration("1000000d", what="--bar")
    Traceback (most recent call last):
    ...
    mmflow.errors.ParameterError: --bar '1000000d' is longer than 366d (use at most 366d)
    """
    length = duration_nanoseconds(text, what=what)
    if length < minimum:
        bound = "longer than zero" if minimum == 1 else f"at least {describe(minimum)}"
        msg = f"{what} {text!r} is too short (use a duration {bound})"
        raise ParameterError(msg)
    if length > maximum:
        msg = (
            f"{what} {text!r} is longer than {describe(maximum)} (use at most {describe(maximum)})"
        )
        raise ParameterError(msg)
    value = "0s" if length == 0 and text.strip() == "0" else text.strip()
    try:  # polars has the last word on the syntax
        pl.select(
            pl.lit(datetime(2000, 1, 1, tzinfo=UTC), pl.Datetime("ns", "UTC")).dt.offset_by(value)
        )
    except pl.exceptions.PolarsError:
        msg = f"{what} {text!r} is not a duration polars understands (e.g. 500ms, 1s, 5m, 1h)"
        raise ParameterError(msg) from None
    return value


def duration_seconds(every: str) -> float:
    """Return the length in seconds of a fixed polars duration string such as ``1m`` or ``1h30m``.

    Units: ``ns``, ``us``, ``ms``, ``s``, ``m`` (minute), ``h``, ``d`` (24 h) and ``w`` (7 d),
    combined as polars combines them (``1h30m`` = 5 400 s). Calendar units (``mo``, ``q``,
    ``y``) and index counts (``i``) have no fixed length and are refused.

    Parameters
    ----------
    every
        A polars duration string, e.g. the bar length of :func:`mmflow.metrics.flow.flow_bars`.

    Returns
    -------
    float
        The duration in seconds, > 0.

    Raises
    ------
    ParameterError
        If ``every`` is not a positive fixed-length duration string.

    Examples
    --------
    >>> duration_seconds("1m"), duration_seconds("1h30m"), duration_seconds("250ms")
    (60.0, 5400.0, 0.25)
    """
    like = "polars duration such as 1s, 1m, 5m, 1h or 1h30m"
    named = f"bar length {every!r}"
    seconds = _fixed_length(every.strip(), named, like=like, units="s, m, h, d or w") / 1e9
    if seconds <= 0:
        msg = f"bar length {every!r} must be longer than zero"
        raise ParameterError(msg)
    return seconds
