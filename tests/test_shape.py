"""Size limits of issue 13: no module over 600 lines, no function body over 80 (by the AST).

Vendor readers are exempt from the module limit (one file per vendor layout, mostly column
tables and layout notes). The allow-lists below name every other exception and why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmflow"
MODULE_LINES = 600
FUNCTION_LINES = 80

#: Vendor readers: one module per vendor (``mmflow/io/<vendor>.py``), exempt from MODULE_LINES.
VENDOR_READERS = frozenset(
    f"io/{name}.py"
    for name in ("binance", "databento", "generic", "lobster", "polygon", "sierra", "taq", "tardis")
)

#: Folders left out (none: the engine package is under the limits too).
EXEMPT_FOLDERS: tuple[str, ...] = ()

#: Functions allowed above FUNCTION_LINES (``module::function``), with the reason.
LONG_FUNCTIONS: dict[str, str] = {}


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    return [p for p in found if not relative(p).startswith(EXEMPT_FOLDERS)]


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the last statement, the docstring left out."""
    assert node.end_lineno is not None
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if docstring and isinstance(first.value.value, str):  # type: ignore[attr-defined]
        assert first.end_lineno is not None
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(source: str, name: str) -> list[str]:
    return [
        f"{name}:{node.lineno} {node.name} ({body_lines(node)} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and body_lines(node) > FUNCTION_LINES
        and f"{name}::{node.name}" not in LONG_FUNCTIONS
    ]


def test_the_package_is_found() -> None:
    names = {relative(p) for p in modules()}
    assert "metrics/ofi.py" in names
    assert names >= VENDOR_READERS  # the exemption names real files


def test_no_module_over_600_lines_except_vendor_readers() -> None:
    too_long = [
        f"{relative(p)} ({len(p.read_text(encoding='utf-8').splitlines())} lines)"
        for p in modules()
        if relative(p) not in VENDOR_READERS
        and len(p.read_text(encoding="utf-8").splitlines()) > MODULE_LINES
    ]
    assert too_long == [], "split these modules"


def test_no_function_over_80_lines() -> None:
    too_long = [
        line
        for p in modules()
        for line in long_functions(p.read_text(encoding="utf-8"), relative(p))
    ]
    assert too_long == [], "split these functions"


@pytest.mark.parametrize(("extra", "expected"), [(0, []), (1, ["m.py:1 f (81 lines)"])])
def test_the_function_check_counts_the_body_not_the_docstring(
    extra: int, expected: list[str]
) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(79 + extra))
    source = f'def f():\n    """Doc.\n\n    More.\n    """\n{body}\n'
    assert long_functions(source, "m.py") == expected


#: Issue 13: a command body is parse → one library call → render, about 25 lines at most. The
#: limit counts the statements after the docstring (the signature's typed option objects are
#: left out: they are declarations, one a line as ruff formats them).
COMMAND_BODY_LINES = 30


def command_bodies(source: str, name: str) -> dict[str, int]:
    """Statement lines of every click command in ``source`` (``@….command(...)``)."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        commands = [
            d
            for d in node.decorator_list
            if isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr == "command"
        ]
        if not commands:
            continue
        first = node.body[0]
        docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        start = first.end_lineno if docstring else first.lineno - 1
        assert start is not None
        assert node.end_lineno is not None
        found[f"{name}::{node.name}"] = node.end_lineno - start
    return found


def test_every_command_body_is_short() -> None:
    bodies = {
        command: lines
        for p in sorted((PACKAGE / "cli").glob("*.py"))
        for command, lines in command_bodies(p.read_text(encoding="utf-8"), relative(p)).items()
    }
    assert len(bodies) >= 10, bodies  # every command of the CLI is seen
    assert {c: n for c, n in bodies.items() if n > COMMAND_BODY_LINES} == {}


def test_the_command_check_counts_statements_after_the_docstring() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(31))
    source = f'@cli.command(name="x")\ndef f():\n    """Doc.\n\n    More.\n    """\n{body}\n'
    assert command_bodies(source, "m.py") == {"m.py::f": 31}
