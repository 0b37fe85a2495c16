"""Errors mmflow reports to people.

Every error the library raises on bad input is an :class:`MmflowError`. Its message is one line
that says what is wrong and how to fix it; the command-line layer prefixes ``Error: `` and exits
with status 1. Nothing here imports click.
"""

from __future__ import annotations


class MmflowError(Exception):
    """Base class for every error mmflow reports to a user.

    Parameters
    ----------
    message
        What went wrong and how to fix it, in one line.
    path
        The input file the error is about, when there is one; it is put in front of the message.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SchemaError(MmflowError):
    """A frame is missing a required column or a column has the wrong type."""


class UnknownFormatError(MmflowError):
    """A file's format could not be detected or is not supported."""


class ReaderError(MmflowError):
    """A file could not be read: empty, truncated, corrupt, or not the format it claims."""


class MissingDependencyError(MmflowError):
    """An optional dependency needed for this input is not installed."""


class ParameterError(MmflowError):
    """A parameter has a value the library cannot use (the CLI maps this to exit code 2)."""


class NoDataError(MmflowError):
    """The inputs hold no rows to work on (after filters)."""
