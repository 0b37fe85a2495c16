"""Helpers the tests share: the CLI runner, vendor-file readers and small file utilities."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import mmflow.io
from mmflow.cli import cli
from mmflow.engine.run import EngineRun
from mmflow.errors import MmflowError, ReaderError
from mmflow.io import FORMATS, ReadOptions, Source
from mmflow.io.formats import Frames
from mmflow.metrics.ofi import order_flow_imbalance


def run(
    *args: str | Path,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    columns: int | None = 200,
) -> tuple[int, str, str]:
    """Run ``mmflow ARGS`` in-process; return the exit code, stdout and stderr.

    ``columns`` is the terminal width the screens see (None: click's default); ``env`` adds
    environment variables.
    """
    width = {} if columns is None else {"COLUMNS": str(columns)}
    result = CliRunner(env={**width, **(env or {})}).invoke(
        cli, [str(a) for a in args], input=input
    )
    return result.exit_code, result.stdout, result.stderr


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script (e.g. one of ``benchmarks/``) as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def utc(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0
) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def source_of(path: Path) -> Source:
    """The :class:`Source` of a local file, displayed as its path."""
    return Source(path, str(path))


def read(path: Path, fmt: str = "auto", symbol: str | None = None) -> Frames:
    """Read one file with mmflow's readers; return its lazy frames."""
    return mmflow.io.read_source(source_of(path), fmt, ReadOptions(symbol=symbol)).frames


def trades_of(path: Path, fmt: str = "auto", symbol: str | None = None) -> pl.DataFrame:
    """Read a file that holds trades only; return them collected."""
    frames = read(path, fmt, symbol)
    assert frames.quotes is None
    assert isinstance(frames.trades, pl.LazyFrame)
    return frames.trades.collect()


def quotes_of(path: Path, fmt: str = "auto", symbol: str | None = None) -> pl.DataFrame:
    """Read a file that holds quotes only; return them collected."""
    frames = read(path, fmt, symbol)
    assert frames.trades is None
    assert isinstance(frames.quotes, pl.LazyFrame)
    return frames.quotes.collect()


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8); return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def gzip_copy(src: Path, dest: Path) -> Path:
    """Write a gzip-compressed copy of ``src`` to ``dest``; return ``dest``."""
    dest.write_bytes(gzip.compress(src.read_bytes()))
    return dest


def vendor_rows(path: Path) -> list[dict[str, str]]:
    """The file's rows as parsed by Python's csv module (independent of the reader)."""
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


UTC_NS = pl.Datetime("ns", "UTC")

#: The type of every canonical column (product.md "Canonical schema"), written out here as the
#: readers' tests' oracle (not taken from mmflow.schema).
CANONICAL_TYPES: Mapping[str, pl.DataType] = {
    "ts": UTC_NS,
    "ts_event": UTC_NS,
    "symbol": pl.String(),
    "venue": pl.String(),
    "exchange": pl.String(),
    "price": pl.Float64(),
    "size": pl.Float64(),
    "aggressor_side": pl.Int8(),
    "trade_id": pl.String(),
    "bid_price": pl.Float64(),
    "bid_size": pl.Float64(),
    "ask_price": pl.Float64(),
    "ask_size": pl.Float64(),
    "conditions": pl.String(),
    "correction": pl.String(),
}
TRADE_COLUMNS = ("ts", "ts_event", "symbol", "venue", "price", "size", "aggressor_side", "trade_id")
"""The columns every trades reader gives, in order (a venue-less reader has no ``venue``)."""
QUOTE_COLUMNS = (
    "ts",
    "ts_event",
    "symbol",
    "venue",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
)
"""The columns every quotes reader gives, in order (a venue-less reader has no ``venue``)."""

BOOK_COLUMNS = ("ts", "symbol", "bid_price", "bid_size", "ask_price", "ask_size")
"""The columns of a minimal canonical quotes frame (the metrics' input; no venue, no ts_event)."""


def renamed(columns: Sequence[str], **changes: str | None) -> tuple[str, ...]:
    """Return ``columns`` with some renamed (``venue="exchange"``) or left out (``venue=None``)."""
    named = (changes.get(name, name) for name in columns)
    return tuple(name for name in named if name is not None)


def canonical_schema(*names: str) -> pl.Schema:
    """Return the schema a reader's frame must have: these canonical columns, in this order."""
    return pl.Schema({name: CANONICAL_TYPES[name] for name in names})


"""The canonical timestamp type."""

COLUMN_TYPES: dict[str, pl.DataType] = {
    "ts": UTC_NS,
    "venue": pl.String(),
    "symbol": pl.String(),
    "price": pl.Float64(),
    "size": pl.Float64(),
    "aggressor_side": pl.Int8(),
    "trade_sign": pl.Int8(),
    "mid_price": pl.Float64(),
    "bid_price": pl.Float64(),
    "bid_size": pl.Float64(),
    "ask_price": pl.Float64(),
    "ask_size": pl.Float64(),
    "session": pl.Int64(),
    "effective_spread": pl.Float64(),
    "realized_spread": pl.Float64(),
    "close": pl.Float64(),
    "vwap": pl.Float64(),
    "volume": pl.Float64(),
    "net_flow": pl.Float64(),
    "mid_close": pl.Float64(),
    "spread": pl.Float64(),
    "depth": pl.Float64(),
}
"""The type of each column the frame factories of the tests make (trades, quotes, bars)."""


def typed_frame(columns: Mapping[str, Sequence[object]]) -> pl.LazyFrame:
    """A lazy frame of ``columns`` (in that order), each of its :data:`COLUMN_TYPES` type."""
    return pl.LazyFrame(
        {name: list(values) for name, values in columns.items()},
        schema={name: COLUMN_TYPES[name] for name in columns},
    )


def bbo_quotes(
    ts: Sequence[datetime],
    symbols: Sequence[str],
    bids: Sequence[float | None],
    asks: Sequence[float | None],
    *,
    bid_size: float = 1.0,
    ask_size: float = 1.0,
) -> pl.LazyFrame:
    """Best bid and offer quotes with constant sizes (``ts, symbol, bid/ask price and size``)."""
    n = len(ts)
    return typed_frame(
        {
            "ts": ts,
            "symbol": symbols,
            "bid_price": bids,
            "bid_size": [bid_size] * n,
            "ask_price": asks,
            "ask_size": [ask_size] * n,
        }
    )


def read_error(
    fmt: str, path: Path, error: type[MmflowError] = MmflowError, options: ReadOptions | None = None
) -> str:
    """Read ``path`` as ``fmt`` expecting ``error``; check it is one line naming the file.

    Returns the message, for the test's own checks.
    """
    with pytest.raises(error) as info:
        FORMATS[fmt].read(source_of(path), options or ReadOptions())
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def empty_file_error(fmt: str, path: Path) -> str:
    """Write an empty ``path``, read it as ``fmt``; return the one-line error (it says empty)."""
    path.write_bytes(b"")
    message = read_error(fmt, path, ReaderError)
    assert "empty" in message
    return message


def empty_gzip_error(fmt: str, path: Path) -> str:
    """Write ``path`` as a gzip of nothing, read it as ``fmt``; return the one-line error."""
    path.write_bytes(gzip.compress(b""))
    return read_error(fmt, path, MmflowError)


def one_row_error(fmt: str, path: Path, header: str, error: type[MmflowError] = ReaderError) -> str:
    """Write ``header`` and one row of 1s to ``path``, read it as ``fmt``; return the error.

    The separator is the header's own (``|``, ``;`` or ``,``).
    """
    separator = next((s for s in ("|", ";") if s in header), ",")
    row = separator.join(["1"] * len(header.split(separator)))
    return read_error(fmt, write(path, f"{header}\n{row}\n"), error)


def quote_ofi_totals(quotes: pl.LazyFrame) -> pl.DataFrame:
    """Per instrument: Σ ``ofi_event`` over every quote, the quote count and the crossed count.

    The oracle for bar totals: it sums the per-event contributions of
    :func:`mmflow.metrics.ofi.order_flow_imbalance` with no bars in between. Columns
    ``[venue,] symbol, ofi, quote_events, crossed_quotes``, sorted by instrument.
    """
    keys = [k for k in ("venue", "symbol") if k in quotes.collect_schema().names()]
    return (
        order_flow_imbalance(quotes)
        .group_by(keys)
        .agg(
            pl.col("ofi_event").sum().alias("ofi"),
            pl.len().alias("quote_events"),
            pl.col("crossed").sum().cast(pl.UInt32).alias("crossed_quotes"),
        )
        .sort(keys, nulls_last=True)
        .collect()
    )


def trades_frame(
    rows: Sequence[tuple[str, float, float, float, int | None]],
    *,
    start: datetime,
    side: str = "trade_sign",
    **extra: Sequence[object] | None,
) -> pl.LazyFrame:
    """Trades from rows of ``(symbol, seconds after start, price, size, side)``.

    ``side`` names the side column (``trade_sign`` or ``aggressor_side``); each of ``extra``
    that is not None is one more column (``mid_price=[…]``, ``session=[…]``).
    """
    columns: dict[str, Sequence[object]] = {
        "ts": [start + timedelta(seconds=r[1]) for r in rows],
        "symbol": [r[0] for r in rows],
        "price": [r[2] for r in rows],
        "size": [r[3] for r in rows],
        side: [r[4] for r in rows],
    }
    columns |= {name: values for name, values in extra.items() if values is not None}
    return typed_frame(columns)


def tick_rule_reference(prices: list[float]) -> list[int]:
    """Slow, obviously correct tick rule: carry the last non-zero change, 0 before any."""
    signs: list[int] = []
    last = 0
    previous: float | None = None
    for price in prices:
        if previous is not None and price != previous:
            last = 1 if price > previous else -1
        signs.append(last)
        previous = price
    return signs


def assert_same_engine_run(expected: EngineRun, got: EngineRun) -> None:
    """Assert two engine runs finished the same tables (to float rounding) from the same chunks."""
    assert expected.finished is not None
    assert got.finished is not None
    for name in ("bars", "levels", "mix", "buckets", "checks"):
        left, right = getattr(expected.finished, name), getattr(got.finished, name)
        if left is None:
            assert right is None
            continue
        assert_frame_equal(right, left, check_exact=False, rel_tol=1e-9, abs_tol=0.0)
    assert [r.chunk for r in got.results] == [r.chunk for r in expected.results]
