"""The typed command of ``mmflow``: grouped ``--help``, option groups that build typed values.

Each ``*_options`` decorator stacks a group of click options onto a command through
:func:`option_group`, which tags them with the group's title for ``--help`` (Input, Selection,
Signing, Bars, Phase rule, Alerts, Output) and registers a builder that turns the parsed values
into one typed object. :class:`MmflowCommand` runs the builders, so a command body receives typed
objects instead of ``**params``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from mmflow.errors import MmflowError

__all__ = [
    "BUILDERS_ATTRIBUTE",
    "DEFAULTS_NOTE",
    "EXIT_CODES",
    "GENERAL",
    "GROUP_ATTRIBUTE",
    "LIMIT_FLAGS",
    "MESSAGE_LIMIT",
    "PARAMETER_FLAGS",
    "QUIET_HELP",
    "SECTIONS",
    "Builder",
    "MmflowCommand",
    "choice_of",
    "defaulted",
    "field_option",
    "help_group",
    "one_line",
    "option_group",
    "quiet_option",
    "set_verbose",
    "without",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Remember ``--verbose`` for the error handler and the row account."""
    if value:
        ctx.meta["mmflow.verbose"] = True
    return value


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["mmflow.quiet"] = True
        warnings.simplefilter("ignore")  # library warnings (polars) are notes too
    return value


QUIET_HELP = "No notes, warnings or progress on stderr (errors and ALERT lines still print)."


def quiet_option(func: F) -> F:
    """``-q/--quiet``, accepted before the command (``mmflow -q analyze``) and after it."""
    return click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet, help=QUIET_HELP
    )(func)


EXIT_CODES = (
    "Exit codes: 0 success; 1 a data error (bad file, missing column, no rows); 2 a usage "
    "error (bad flag or --alert condition); 3 an --alert condition fired (analyze, inventory, "
    "phases; after all output is written); 130 interrupted (Ctrl-C); 143 SIGTERM; 129 SIGHUP."
)
DEFAULTS_NOTE = (
    "Any option can also be set by MMFLOW_<OPTION> (MMFLOW_BAR=5m; MMFLOW_<COMMAND>_<OPTION> "
    "for one command) or in mmflow.toml; a flag wins over the environment, the environment "
    "over the file. `mmflow config` shows where each value comes from."
)
SECTIONS = (
    "Command",
    "Input",
    "Selection",
    "Signing",
    "Bars",
    "Phase rule",
    "Event study",
    "Simulation",
    "Execution",
    "Alerts",
    "Output",
    "General",
)
"""Titles of the option groups in ``--help``, in order; untagged options are "Command"."""
GENERAL = frozenset({"verbose", "quiet", "help", "_click_default_help", "config", "version"})
GROUP_ATTRIBUTE = "mmflow_help_group"
BUILDERS_ATTRIBUTE = "__mmflow_builders__"


def help_group(param: click.Parameter) -> str:
    """Return the ``--help`` section of ``param``."""
    if param.name in GENERAL:
        return "General"
    return str(getattr(param, GROUP_ATTRIBUTE, "Command"))


@dataclass(frozen=True)
class Builder:
    """Turns the parsed values of one option group into one typed object.

    Attributes
    ----------
    keyword
        The command's parameter that receives the object.
    names
        The click parameter names the object replaces (they are not passed on).
    build
        Makes the object from every parsed value of the command.
    """

    keyword: str
    names: frozenset[str]
    build: Callable[[Mapping[str, Any]], object]


class MmflowCommand(click.Command):
    """A command with grouped options in ``--help``, exit codes at the end, typed arguments.

    Before the callback runs, each option group's builder turns its raw values into one typed
    object (see :func:`option_group`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["epilog"] = kwargs.get("epilog") or f"{DEFAULTS_NOTE}\n\n{EXIT_CODES}"
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args``; a bad value from a variable or a file says where it came from."""
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            origin = _origin(ctx, exc.param)
            if not origin:
                raise
            raise click.BadParameter(
                exc.message + origin, exc.ctx, exc.param, exc.param_hint
            ) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Build the typed option objects, then run the command with them."""
        builders: list[Builder] = getattr(self.callback, BUILDERS_ATTRIBUTE, [])
        if self.callback is None or not builders:
            return super().invoke(ctx)
        raw = dict(ctx.params)
        built = {builder.keyword: builder.build(raw) for builder in builders}
        used = frozenset().union(*(builder.names for builder in builders))
        kept = {name: value for name, value in raw.items() if name not in used}
        return ctx.invoke(self.callback, **kept, **built)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the epilog paragraphs unwrapped into one block each."""
        if self.epilog:
            for paragraph in self.epilog.split("\n\n"):
                formatter.write_paragraph()
                with formatter.indentation():
                    formatter.write_text(paragraph)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the options in titled groups (Input, Selection, Signing, …)."""
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(help_group(param), []).append(record)
        for title in sorted(sections, key=lambda t: SECTIONS.index(t) if t in SECTIONS else 1):
            name = "Options" if title == "Command" else f"{title} options"
            with formatter.section(name):
                formatter.write_dl(sections[title])


def _origin(ctx: click.Context, param: click.Parameter | None) -> str:
    """Return `` (from MMFLOW_X)`` or `` (from FILE)`` when ``param`` was not set by a flag."""
    if param is None or param.name is None:
        return ""
    source = ctx.get_parameter_source(param.name)
    if source == ParameterSource.ENVIRONMENT and isinstance(param, click.Option):
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        found = next((name for name in names if os.environ.get(name)), None)
        return f" (from {found})" if found else ""
    if source == ParameterSource.DEFAULT_MAP:
        defaults = ctx.meta.get("mmflow.defaults")
        origins = getattr(defaults, "origins", {}).get(ctx.info_name or "", {})
        origin = origins.get(param.name)
        return f" (from {origin})" if origin is not None else ""
    return ""


def option_group(
    title: str,
    decorators: Sequence[Callable[[Any], Any]],
    keyword: str | None = None,
    build: Callable[[Mapping[str, Any]], object] | None = None,
) -> Callable[[F], F]:
    """Return a decorator adding ``decorators``' options under ``title`` in ``--help``.

    With ``keyword`` and ``build``, the command receives ``build(values)`` as ``keyword``
    instead of the group's own parameters.
    """

    def decorator(func: F) -> F:
        before = list(getattr(func, "__click_params__", []))
        for option in reversed(decorators):
            func = option(func)
        added = [p for p in getattr(func, "__click_params__", []) if p not in before]
        for param in added:
            if not hasattr(param, GROUP_ATTRIBUTE):
                setattr(param, GROUP_ATTRIBUTE, title)
        if keyword is not None and build is not None:
            names = frozenset(p.name for p in added if p.name and p.expose_value)
            builders: list[Builder] = func.__dict__.setdefault(BUILDERS_ATTRIBUTE, [])
            builders.insert(0, Builder(keyword, names, build))
        return func

    return decorator


def defaulted(*names: str, kind: Any, default: Any, text: str, **extra: Any) -> Callable[[F], F]:
    """Return a ``click.option`` of type ``kind`` whose ``--help`` shows its ``default``.

    ``names`` are click's declarations (``"--format", "fmt"``), ``text`` the help text;
    ``extra`` goes to ``click.option`` unchanged (``metavar``, ``callback``, …).
    """
    return click.option(*names, type=kind, default=default, show_default=True, help=text, **extra)


def field_option(
    defaults: object, name: str, kind: Any, text: str, **extra: Any
) -> Callable[[F], F]:
    """Return the option ``--NAME`` (``_`` as ``-``) of field ``name``, default ``defaults``'.

    The default shown in ``--help`` is the library's (the field's value on ``defaults``, a
    dataclass with every field at its default), so the two cannot disagree.
    """
    flag = "--" + name.replace("_", "-")
    return defaulted(flag, name, kind=kind, default=getattr(defaults, name), text=text, **extra)


def without(
    decorators: Sequence[Callable[[Any], Any]], unused: Sequence[str]
) -> list[Callable[[Any], Any]]:
    """Return ``decorators`` without the options whose parameter names are in ``unused``.

    A command leaves out the options of a shared group it does not use, so its ``--help``
    lists only the options that change what it does; the group's builder then sees the
    left-out option's default.

    Raises
    ------
    ValueError
        When a name in ``unused`` is not an option of ``decorators`` (a typo would keep it).
    """
    kept = [d for d in decorators if _parameter_name(d) not in unused]
    if len(kept) != len(decorators) - len(set(unused)):
        msg = f"unknown option in {tuple(unused)}"
        raise ValueError(msg)
    return kept


def _parameter_name(decorator: Callable[[Any], Any]) -> str | None:
    """Return the parameter name of one ``click.option`` decorator (tried on a dummy)."""
    params: list[click.Parameter] = getattr(decorator(lambda: None), "__click_params__", [])
    return params[0].name if params else None


def choice_of(value: Any, allowed: tuple[T, ...], default: T) -> T:
    """Return ``value`` as one of ``allowed`` (typed), ``default`` when it is not one."""
    return next((item for item in allowed if item == value), default)


LIMIT_FLAGS = {
    "every": "--bar",
    "bin_size": "--bin",
    "buckets_per_day": "--buckets-per-day",
    "lookback": "--lookback",
    "pressure_horizon": "--pressure-horizon",
    "vpin_window": "--vpin-window",
}
"""Library parameter names behind a SizeLimitError, and the flags that set them."""
PARAMETER_FLAGS = {
    **LIMIT_FLAGS,
    "symbols": "--symbol",
    "venues": "--venue",
    "start": "--start",
    "end": "--end",
    "session": "--session",
    "column_map": "--map canonical=column",
    "format": "--format",
}
"""How the command line names the library parameters an error message names."""

MESSAGE_LIMIT = 300
"""Longest error or warning line mmflow prints (a 200 MB field must not become the message)."""


def one_line(exc: BaseException) -> str:
    """Return the first line of ``exc``'s message, at most :data:`MESSAGE_LIMIT` characters.

    A library error's parameters are named as the command line names them (:data:`PARAMETER_FLAGS`).
    """
    if isinstance(exc, MmflowError):  # say the flags where the library says its parameters
        text = exc.describe_parameters(PARAMETER_FLAGS).strip()
    else:
        text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 1] + "…"
