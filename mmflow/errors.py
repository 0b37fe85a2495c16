"""Errors mmflow reports to people.

Every error the library raises on bad input is an :class:`MmflowError`. Its message is one line
that says what is wrong and how to fix it; the command-line layer prefixes ``Error: `` and exits
with status 1. Nothing here imports click.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "MissingDependencyError",
    "MmflowError",
    "NoDataError",
    "ParameterError",
    "ReaderError",
    "SchemaError",
    "SizeLimitError",
    "UnknownFormatError",
]


class MmflowError(Exception):
    """Base class for every error mmflow reports to a user.

    Parameters
    ----------
    message
        What went wrong and how to fix it, in one line.
    path
        The input file the error is about, when there is one; it is put in front of the message.
    parameters
        Library parameters the message names, each written ``{name}`` in ``message``. The
        library says the parameter's name (``symbols``); a client names them its own way
        (the command line says ``--symbol``) with :meth:`describe_parameters`.

    Examples
    --------
    >>> error = MmflowError("no rows (check the {symbols} filter)", parameters=("symbols",))
    >>> str(error)
    'no rows (check the symbols filter)'
    >>> error.describe_parameters({"symbols": "--symbol"})
    'no rows (check the --symbol filter)'
    """

    def __init__(
        self, message: str, *, path: str | None = None, parameters: Sequence[str] = ()
    ) -> None:
        self.path = path
        self.template = message
        self.parameters = tuple(parameters)
        self.message = self.describe_parameters(with_path=False)
        super().__init__(self.describe_parameters())

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle by state (a Dask worker's error reaches the client whole: path, parameters)."""
        return (_restored, (type(self), self.args, self.__dict__))

    def describe_parameters(
        self, names: Mapping[str, str] | None = None, *, with_path: bool = True
    ) -> str:
        """Return the message with each parameter called by ``names`` (default: its own name)."""
        text = self.template
        for parameter in self.parameters:
            text = text.replace("{" + parameter + "}", (names or {}).get(parameter, parameter))
        return f"{self.path}: {text}" if self.path and with_path else text


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


class SizeLimitError(ParameterError):
    """A parameter (or the data under it) would make more rows than the stated limit.

    Raised before the rows are made, from a cheap estimate, so that a tiny bar, price bin or a
    huge window stops with a message instead of exhausting memory. The command line names the
    flag (``parameter`` is the library's name, e.g. ``every`` for ``--bar``) and exits with 2.

    Parameters
    ----------
    parameter
        The parameter that drives the size, by its library name.
    value
        Its value, as given.
    estimate
        How many rows it would make.
    limit
        The most rows allowed.
    unit
        What the rows are (``bars``, ``price levels``, ``VPIN buckets``).
    fix
        How to get under the limit.
    """

    def __init__(
        self, parameter: str, value: object, estimate: int, limit: int, unit: str, fix: str
    ) -> None:
        self.parameter = parameter
        self.value = value
        self.estimate = estimate
        self.limit = limit
        self.unit = unit
        self.fix = fix
        super().__init__(self.describe(parameter))

    def describe(self, name: str, limit_name: str = "the limit") -> str:
        """Return the message with the parameter called ``name`` and the limit ``limit_name``.

        On the command line both are flags (``--bar``, ``--max-bars``).
        """
        return (
            f"{name} {self.value} would make about {self.estimate:,} {self.unit}, more than the "
            f"limit of {self.limit:,} ({self.fix}, or raise {limit_name})"
        )


def _restored(
    kind: type[MmflowError], args: tuple[object, ...], state: dict[str, object]
) -> Exception:
    """Rebuild a pickled :class:`MmflowError` (any subclass) from its arguments and state."""
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
