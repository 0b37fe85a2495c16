"""Option defaults from the environment and a TOML file, for the ``mmflow`` command.

Every option of every command can be given four ways; the first that is set wins:

1. the flag on the command line (``--bar 5m``);
2. an environment variable, ``MMFLOW_<COMMAND>_<OPTION>`` then ``MMFLOW_<OPTION>``
   (``MMFLOW_ANALYZE_BAR=5m``, ``MMFLOW_BAR=5m``; dashes become underscores);
3. a TOML file: ``--config FILE`` (or ``MMFLOW_CONFIG``), else ``./mmflow.toml`` over
   ``~/.config/mmflow/config.toml`` (``$XDG_CONFIG_HOME`` when set); top-level keys apply to
   every command that has the option, a ``[command]`` table to that command only;
4. the built-in default.

Click does the precedence (command line > ``envvar`` > ``default_map`` > default); this module
names the variables, reads the files into a ``default_map`` and says where each value came from.
No I/O beyond reading the configuration files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import click

__all__ = [
    "CONFIG_VARIABLE",
    "ENV_PREFIX",
    "PROJECT_FILE",
    "ConfigError",
    "Defaults",
    "config_files",
    "environment_names",
    "load_defaults",
    "option_key",
    "set_environment_names",
    "user_file",
]

ENV_PREFIX = "MMFLOW_"
CONFIG_VARIABLE = "MMFLOW_CONFIG"
PROJECT_FILE = Path("mmflow.toml")
SKIPPED = frozenset({"help", "version", "config"})
"""Options that no file or variable sets (``--config`` has its own variable)."""


class ConfigError(click.ClickException):
    """A configuration file that cannot be used: one ``Error:`` line naming it, exit code 2."""

    exit_code = 2


def user_file() -> Path:
    """Return the per-user configuration file (it need not exist).

    ``$XDG_CONFIG_HOME/mmflow/config.toml`` when that variable is set, else
    ``~/.config/mmflow/config.toml``.
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mmflow" / "config.toml"


def config_files(explicit: Path | None) -> list[Path]:
    """Return the files to read, lowest precedence first.

    ``explicit`` (``--config``/``MMFLOW_CONFIG``) alone when given; otherwise the user file and
    then ``./mmflow.toml``, each only when it exists.
    """
    if explicit is not None:
        return [explicit]
    return [path for path in (user_file(), PROJECT_FILE) if path.is_file()]


def option_key(param: click.Parameter) -> str | None:
    """Return the key that sets ``param`` in a file (its long flag, ``bar`` for ``--bar``).

    ``None`` for arguments and for options no file sets (``--help``, ``--config``).
    """
    if not isinstance(param, click.Option):
        return None
    longs = [name for name in param.opts if name.startswith("--")]
    if not longs:
        return None
    key = longs[0][2:]
    return None if key in SKIPPED else key


def _variable(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def environment_names(command: str | None, param: click.Parameter) -> list[str]:
    """Return the environment variables of ``param``, most specific first.

    ``MMFLOW_ANALYZE_BAR`` then ``MMFLOW_BAR`` for ``analyze --bar``; ``MMFLOW_QUIET`` for the
    group's own ``--quiet``.
    """
    key = option_key(param)
    if key is None:
        return []
    general = _variable(key)
    return [general] if command is None else [_variable(f"{command}-{key}"), general]


def set_environment_names(group: click.Group) -> None:
    """Let an environment variable set every option of ``group`` and of its commands.

    Only the commands already imported (a lazy group imports each when it is used and calls
    this again then).
    """
    for param in group.params:
        names = environment_names(None, param)
        if names and isinstance(param, click.Option):
            param.envvar = names
    for name, command in dict.items(cast("dict[str, click.Command]", group.commands)):
        for param in command.params:
            names = environment_names(name, param)
            if names and isinstance(param, click.Option):
                param.envvar = names


@dataclass
class Defaults:
    """Option values read from configuration files.

    Attributes
    ----------
    files
        The files read, lowest precedence first.
    values
        ``{command: {parameter name: value}}``, click's ``default_map`` shape.
    origins
        ``{command: {parameter name: file}}``: the file each value came from.
    """

    files: list[Path] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, dict[str, Path]] = field(default_factory=dict)

    def default_map(self) -> dict[str, Any]:
        """Return the group's ``default_map``: one entry per command, the group's own options."""
        result: dict[str, Any] = dict(self.values.get("", {}))
        result.update({name: dict(v) for name, v in self.values.items() if name})
        return result


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        msg = f"{path}: configuration file not found (check the --config/MMFLOW_CONFIG path)"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read the configuration file ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML: {exc} (fix the file or pass another with --config)"
        raise ConfigError(msg) from None


def _keys(command: click.Command) -> dict[str, click.Parameter]:
    """Return ``{file key: parameter}`` for ``command``; ``symbol`` and ``symbols`` alike."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        key = option_key(param)
        if key is not None:
            keys[key] = param
            keys[key.replace("-", "_")] = param
    return keys


def _value(param: click.Parameter, value: Any) -> Any:
    """Shape a TOML value for click: a single string for a repeatable option is one item."""
    if isinstance(param, click.Option) and param.multiple and not isinstance(value, list):
        return [value]
    return value


def _apply(
    defaults: Defaults,
    path: Path,
    command: str,
    keys: Mapping[str, click.Parameter],
    table: Mapping[str, Any],
) -> None:
    for key, value in table.items():
        param = keys[key]
        if param.name is None:
            continue
        defaults.values.setdefault(command, {})[param.name] = _value(param, value)
        defaults.origins.setdefault(command, {})[param.name] = path


def _unknown(path: Path, key: str, where: str) -> ConfigError:
    msg = (
        f"{path}: {key!r} is not an option of {where} "
        '(keys are long flag names without dashes, e.g. bar = "5m"; see mmflow config)'
    )
    return ConfigError(msg)


def load_defaults(group: click.Group, files: Iterable[Path]) -> Defaults:
    """Read ``files`` into option defaults for every command of ``group``.

    A top-level key sets that option in every command that has it (and the group's own
    options); a ``[command]`` table sets options of that command only and wins over top-level
    keys. Later files win over earlier ones.

    Raises
    ------
    ConfigError
        When a file is unreadable or not TOML, or names an option or command that does not
        exist (exit code 2).
    """
    defaults = Defaults()
    files = list(files)
    if not files:  # no command need be imported to learn its options
        return defaults
    commands = {name: _keys(command) for name, command in group.commands.items()}
    own = _keys(group)
    for path in files:
        document = _read(path)
        defaults.files.append(path)
        tables = {k: v for k, v in document.items() if k in commands and isinstance(v, dict)}
        shared = {k: v for k, v in document.items() if k not in tables}
        for key in shared:
            if key in commands:
                msg = f'{path}: [{key}] must be a table of options (e.g. [{key}] then bar = "5m")'
                raise ConfigError(msg)
            if key not in own and not any(key in keys for keys in commands.values()):
                raise _unknown(path, key, "any command")
        _apply(defaults, path, "", own, {k: v for k, v in shared.items() if k in own})
        for name, keys in commands.items():
            _apply(defaults, path, name, keys, {k: v for k, v in shared.items() if k in keys})
        for name, table in tables.items():
            for key in table:
                if key not in commands[name]:
                    raise _unknown(path, key, f"mmflow {name}")
            _apply(defaults, path, name, commands[name], table)
    return defaults
