"""The ``mmflow`` group: error translation, ``--config``, ``mmflow config``, ``main``.

Errors the library raises become one line on stderr (``Error: …``) and exit code 1; bad flags
exit 2; ``--verbose`` shows the traceback. Data goes to stdout, people's messages to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from mmflow import interrupts
from mmflow._version import __version__
from mmflow.cli.command import (
    EXIT_CODES,
    LIMIT_FLAGS,
    MmflowCommand,
    one_line,
    quiet_option,
)
from mmflow.cli.config import (
    CONFIG_VARIABLE,
    Defaults,
    config_files,
    load_defaults,
    option_key,
    set_environment_names,
)
from mmflow.errors import MmflowError, ParameterError, SizeLimitError

__all__ = ["COMMAND_MODULES", "cli", "main", "user_errors"]

COMMAND_MODULES = {
    "analyze": "market",
    "flow": "market",
    "inventory": "market",
    "phases": "phases",
    "plot": "phases",
    "classify": "trades",
    "profile": "trades",
    "inspect": "files",
    "convert": "files",
    "simulate": "simulate",
}
"""The module of :mod:`mmflow.cli` that defines each command: imported when the command runs
(``mmflow analyze`` does not import the other commands, ``mmflow --version`` none)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Return the errors that end a run with one ``Error:`` line (polars imported here)."""
    import polars as pl

    return (MmflowError, pl.exceptions.PolarsError, OSError)


def _traced(ctx: click.Context, exc: BaseException) -> BaseException:
    """Return the error naming the unreadable input file when a polars failure comes from one.

    Errors the library already attributes (:class:`MmflowError`) are kept; a polars error or
    panic raised while the run computed (e.g. inside the chunked engine) is traced to its file
    by reading each input on its own (the inputs are in ``ctx.meta["mmflow.inputs"]``).
    """
    inputs = ctx.meta.get("mmflow.inputs")
    if isinstance(exc, MmflowError) or not inputs:
        return exc
    from mmflow.io.assemble import unreadable_input

    try:
        culprit = unreadable_input(inputs)
    except BaseException:
        return exc
    return culprit if culprit is not None else exc


def _is_broken_pipe(exc: BaseException) -> bool:
    """Whether the reader of stdout went away (``mmflow … | head``), as Python or Rust says it."""
    return getattr(exc, "errno", None) == errno.EPIPE or "os error 32" in str(exc)


def _quiet_exit() -> None:
    """End quietly after the reader of stdout has gone: no message, no flush error at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


class _Commands(dict[str, click.Command]):
    """The group's commands, imported on first use (:data:`COMMAND_MODULES`).

    Looking one command up (:meth:`MmflowGroup.get_command`) imports its module only; reading
    the whole mapping (``--help``, ``mmflow config``, tests) imports every command first.
    """

    def __init__(self, load: Any, commands: Any) -> None:
        super().__init__(commands)
        self._load = load

    def __getitem__(self, name: str) -> click.Command:
        self._load()
        return super().__getitem__(name)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def __contains__(self, name: object) -> bool:
        self._load()
        return super().__contains__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._load()
        return super().get(name, default)

    def imported(self, name: str) -> click.Command | None:
        """Return the command ``name`` if its module is imported (no import here)."""
        return super().get(name)

    def keys(self) -> Any:
        self._load()
        return super().keys()

    def values(self) -> Any:
        self._load()
        return super().values()

    def items(self) -> Any:
        self._load()
        return super().items()


class MmflowGroup(click.Group):
    """Turn expected failures into ``Error: …`` and exit 1 (2 for parameters).

    Commands are imported when used (:data:`COMMAND_MODULES`); each gets its environment
    variables (``MMFLOW_<OPTION>``) when it is imported.
    """

    command_class = MmflowCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = _Commands(self.load_commands, self.commands)
        self.commands = self.lazy_commands

    def load_commands(self, *names: str) -> None:
        """Import the modules of the commands ``names`` (default: every command)."""
        import importlib

        wanted = names or tuple(COMMAND_MODULES)
        for module in dict.fromkeys(COMMAND_MODULES[n] for n in wanted if n in COMMAND_MODULES):
            if f"mmflow.cli.{module}" not in sys.modules:
                importlib.import_module(f"mmflow.cli.{module}")
        set_environment_names(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command ``cmd_name``, importing its module only."""
        self.load_commands(cmd_name)
        return self.lazy_commands.imported(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating library errors at this one boundary."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_exit()
        except Exception as exc:
            if not isinstance(exc, user_errors()):
                _unexpected(ctx, exc)
                raise
            if isinstance(exc, OSError) and _is_broken_pipe(exc):
                _quiet_exit()
            if ctx.params.get("verbose") or ctx.meta.get("mmflow.verbose"):
                raise
            if isinstance(exc, SizeLimitError):
                flag = LIMIT_FLAGS.get(exc.parameter, "--" + exc.parameter.replace("_", "-"))
                limit = "--max-bars" if exc.parameter != "bin_size" else "--max-levels"
                raise click.UsageError(exc.describe(flag, limit)) from exc
            if isinstance(exc, ParameterError):
                raise click.UsageError(one_line(exc)) from exc
            raise click.ClickException(one_line(_traced(ctx, exc))) from exc
        except BaseException as exc:
            _unexpected(ctx, exc)
            raise


def _unexpected(ctx: click.Context, exc: BaseException) -> None:
    """End a panic inside polars (a Rust bug, or a corrupt file) in one line; else return."""
    if type(exc).__name__ != "PanicException" or ctx.meta.get("mmflow.verbose"):
        return
    culprit = _traced(ctx, exc)
    if culprit is not exc:
        raise click.ClickException(one_line(culprit)) from exc
    msg = f"internal error in polars ({one_line(exc)}); rerun with --verbose and report it"
    raise click.ClickException(msg) from exc


def _use_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Read the configuration files into the option defaults (``--config``, eager)."""
    group = ctx.find_root().command
    if not isinstance(group, click.Group) or (ctx.parent is not None and value is None):
        return value
    defaults = load_defaults(group, config_files(value))
    ctx.meta["mmflow.defaults"] = defaults
    if ctx.parent is None:
        ctx.default_map = defaults.default_map()
    else:
        ctx.default_map = defaults.values.get(ctx.info_name or "", {})
    return value


CONFIG_HELP = (
    "TOML file of option defaults (also MMFLOW_CONFIG); default: ./mmflow.toml over "
    "~/.config/mmflow/config.toml."
)


def config_option(*, envvar: str | None = None) -> click.Option:
    """Return the ``--config FILE`` option (eager: it sets the defaults of the other options)."""
    return click.Option(
        ["--config"],
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        is_eager=True,
        expose_value=False,
        envvar=envvar,
        callback=_use_config,
        help=CONFIG_HELP,
    )


class ConfiguredCommand(MmflowCommand):
    """An :class:`MmflowCommand` that also takes ``--config FILE`` after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(config_option())


MmflowGroup.command_class = ConfiguredCommand


@click.group(
    cls=MmflowGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
    params=[config_option(envvar=CONFIG_VARIABLE)],
)
@click.option("--verbose", is_flag=True, help="Show full tracebacks on errors.")
@quiet_option
@click.version_option(__version__, prog_name="mmflow")
def cli(verbose: bool) -> None:
    """Order-flow and market-maker inventory analytics for trade and quote files.

    Progress is shown on stderr when it is a terminal; -q/--quiet silences notes, warnings
    and progress; NO_COLOR=1 turns off all colour and styling. Any option can also be set by
    MMFLOW_<OPTION> or in mmflow.toml (see `mmflow config`).

    Example:

    \b
        mmflow inspect sample_data/
        mmflow analyze sample_data/binance/BTCUSD_PERP-trades-2024-08-09.csv --bar 1m
    """


SOURCE_NAMES = {
    ParameterSource.COMMANDLINE: "flag",
    ParameterSource.ENVIRONMENT: "env",
    ParameterSource.DEFAULT_MAP: "file",
    ParameterSource.DEFAULT: "default",
}


@cli.command(
    name="config",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("command", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def config_command(ctx: click.Context, command: str | None, args: tuple[str, ...]) -> None:
    """Show every option's value and where it comes from: flag > env > file > default.

    One line per option: command, option, value, source (flag, env VARIABLE, file PATH or
    default). With COMMAND, only that command, and ARGS are parsed as its flags would be.
    Files: --config FILE (or MMFLOW_CONFIG), else ./mmflow.toml over
    ~/.config/mmflow/config.toml. Top-level keys set an option in every command that has it,
    a [command] table in that command only, e.g.

    \b
        bar = "5m"
        tz = "America/New_York"
        [phases]
        episodes = true

    Example:

    \b
        mmflow config analyze
        MMFLOW_BAR=5m mmflow config flow --lookback 60
    """
    group = ctx.find_root().command
    assert isinstance(group, click.Group)
    names = [command] if command else [n for n in group.commands if n != "config"]
    if command is not None and command not in group.commands:
        msg = f"{command!r} is not a command; use one of {', '.join(sorted(group.commands))}"
        raise click.BadParameter(msg, param_hint="'COMMAND'")
    defaults = ctx.meta.get("mmflow.defaults")
    files = defaults.files if isinstance(defaults, Defaults) else []
    click.echo(f"# files read: {', '.join(str(f) for f in files) or 'none'}")
    for name in names:
        for line in _config_lines(ctx, group, name, list(args) if command else []):
            click.echo(line)


def _config_lines(
    ctx: click.Context, group: click.Group, name: str, args: list[str]
) -> Iterator[str]:
    """Yield ``command --option value source`` for every option of command ``name``."""
    command = group.commands[name]
    with command.make_context(name, args, parent=ctx.find_root(), resilient_parsing=True) as sub:
        defaults = sub.meta.get("mmflow.defaults")
        for param in command.params:
            key = option_key(param)
            if key is None or param.name is None or not param.expose_value:
                continue
            source = sub.get_parameter_source(param.name)
            where = SOURCE_NAMES.get(source, "default") if source is not None else "default"
            if where == "env" and isinstance(param, click.Option):
                where += " " + next(v for v in _names(param.envvar) if os.environ.get(v))
            if where == "file" and isinstance(defaults, Defaults):
                origin = defaults.origins.get(name, {}).get(param.name)
                where += f" {origin}" if origin is not None else ""
            yield f"{name}\t--{key}\t{_shown(sub.params.get(param.name))}\t{where}"


def _names(envvar: str | Sequence[str] | None) -> list[str]:
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        return ",".join(_shown(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def main() -> None:
    """Run the command line (the ``mmflow`` script and ``python -m mmflow``).

    Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, each after removing every temporary file; a
    closed pipe (``mmflow … | head``) ends it quietly (:mod:`mmflow.interrupts`).
    """
    interrupts.install()
    cli(prog_name="mmflow")
