"""Sierra-style ``;``-separated ES tick exports: one row per trade with its own best bid/ask.

A retail-platform export of CME E-mini S&P 500 trades (the files in ``shared/data/sierra-es/``;
the exact recorder is not documented), with a header row::

    Date;Time;Sequence;DepthSequence;Price;Volume;TradeType;AskPrice;BidPrice;AskSize;BidSize;…

followed by depth-of-market columns and, in some files, columns derived by other tools. Only the
columns named above are read, by name; extra columns, short rows and long rows are tolerated, and
``\\r\\n`` line ends read like ``\\n``.

``Time`` is ``HH:MM:SS.`` followed by a fraction that is **not decimal**: the millisecond count
without zero padding, then a 3-digit counter of trades within that millisecond
(``13:30:00.5000`` = 5 ms, counter 0; ``13:30:00.47000`` = 47 ms; ``13:30:00.159002`` = 159 ms,
counter 2; ``13:30:00.000``/``.001`` = 0 ms, counter 0/1). It is parsed as text; the counter is
not time, so ``ts`` has millisecond resolution. A ``Time`` in any other shape fails loudly. The
time zone is not documented; it is taken as UTC (:data:`DEFAULT_TZ`; ``read_trades`` takes another
IANA zone through its ``tz`` keyword). The one clock is both ``ts`` and ``ts_event``.

Rows are returned in ``Sequence`` order (a stable sort): at least one published file was
re-ordered by a tool that read ``Time`` as a decimal fraction. ``Sequence`` also becomes
``trade_id`` (text).

``TradeType`` is the platform's side: ``2`` = trade at the ask, buyer-initiated (+1); ``1`` = at
the bid, seller-initiated (−1); anything else 0. ``BidPrice``, ``BidSize``, ``AskPrice`` and
``AskSize`` are the trade's own best bid/ask (kind ``trades+bbo``). ``Price`` is in index points,
``Volume`` and sizes in contracts. There is no venue column.

The file has no symbol column. The symbol is the file name's prefix before its first ``_`` when
that prefix starts with a letter (``ES_2022-01-24_tbt.txt`` → ``ES``); otherwise ``--symbol``;
otherwise :data:`DEFAULT_SYMBOL` (``ES``, the instrument these exports are named after).

Detection: the first line starts with
``Date;Time;Sequence;DepthSequence;Price;Volume;TradeType`` (then ``;`` or the line end).
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

from mmflow.io._common import check_columns, scan_csv
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    PRICE,
    SIZE,
    SYMBOL,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    conform,
)

__all__ = [
    "DEFAULT_SYMBOL",
    "DEFAULT_TZ",
    "FORMATS",
    "SEPARATOR",
    "SIGNATURE",
    "findings",
    "read_trades",
    "sierra_time",
    "symbol_from_name",
]

DEFAULT_TZ = "UTC"
"""The time zone of ``Date``/``Time`` when none is given (the files do not say; UTC fits them)."""
DEFAULT_SYMBOL = "ES"
"""The symbol when neither the file name nor ``--symbol`` gives one."""

# Vendor column names; they never leave this module.
_DATE = "Date"
_TIME = "Time"
_SEQUENCE = "Sequence"
_DEPTH_SEQUENCE = "DepthSequence"
_PRICE = "Price"
_VOLUME = "Volume"
_TRADE_TYPE = "TradeType"
_ASK_PRICE = "AskPrice"
_BID_PRICE = "BidPrice"
_ASK_SIZE = "AskSize"
_BID_SIZE = "BidSize"

SEPARATOR = ";"
SIGNATURE = SEPARATOR.join((_DATE, _TIME, _SEQUENCE, _DEPTH_SEQUENCE, _PRICE, _VOLUME, _TRADE_TYPE))
"""The start of the header row that identifies the format."""
_NEEDED = (
    _DATE,
    _TIME,
    _SEQUENCE,
    _PRICE,
    _VOLUME,
    _TRADE_TYPE,
    _ASK_PRICE,
    _BID_PRICE,
    _ASK_SIZE,
    _BID_SIZE,
)
_FLOATS = (_PRICE, _VOLUME, _ASK_PRICE, _BID_PRICE, _ASK_SIZE, _BID_SIZE)

_AT_ASK = 2
_AT_BID = 1

# HH:MM:SS, then optionally "." + milliseconds (0-3 digits, no padding) + a 3-digit counter.
_TIME_PATTERN = r"^(?P<hms>\d{1,2}:\d{2}:\d{2})(?:\.(?P<ms>\d{0,3})(?P<counter>\d{3}))?$"
_SYMBOL_PREFIX = re.compile(r"^(?P<symbol>[A-Za-z][A-Za-z0-9.]*)_")


def _sniff(info: Sniff) -> bool:
    if not info.lines:
        return False
    first = info.lines[0].strip()
    return first == SIGNATURE or first.startswith(SIGNATURE + SEPARATOR)


def symbol_from_name(name: str) -> str | None:
    """Return the symbol a file name starts with (the part before the first ``_``), or None.

    Examples
    --------
    >>> symbol_from_name("ES_2022-01-24_tbt.txt")
    'ES'
    >>> symbol_from_name("2023_06_29.txt") is None
    True
    """
    match = _SYMBOL_PREFIX.match(name)
    return match["symbol"] if match else None


def _symbol(source: Source, options: ReadOptions) -> str:
    return symbol_from_name(source.name) or options.symbol or DEFAULT_SYMBOL


def sierra_time(
    date: str | pl.Expr, time: str | pl.Expr, tz: str = DEFAULT_TZ, *, strict: bool = True
) -> pl.Expr:
    """Parse ``Date`` and the export's non-decimal ``Time`` into ``Datetime("ns", "UTC")``.

    The fraction after the seconds is the millisecond count (no zero padding) followed by a
    3-digit within-millisecond counter, which is dropped; a time without a fraction is a whole
    second. A value in another shape makes the query fail when collected, naming the value
    (``strict``), or gives null (``strict=False``, the reader's choice: it sets such rows aside).

    Parameters
    ----------
    date
        ``YYYY-MM-DD`` text (column name or expression).
    time
        ``HH:MM:SS.<ms><ccc>`` text (column name or expression).
    tz
        The IANA time zone the wall-clock times are in; ambiguous times at the end of daylight
        saving take the earlier instant.
    strict
        Whether a time that does not parse fails the query (else it is null).

    Returns
    -------
    pl.Expr
        The instant, UTC, millisecond resolution.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame(
    ...     {"d": ["2022-01-24"] * 3, "t": ["13:30:00.5000", "13:30:00.47000", "13:30:00.159002"]}
    ... )
    >>> [str(t.time()) for t in df.select(sierra_time("d", "t"))["d"]]
    ['13:30:00.005000', '13:30:00.047000', '13:30:00.159000']
    """
    date_text = (pl.col(date) if isinstance(date, str) else date).str.strip_chars()
    time_text = (pl.col(time) if isinstance(time, str) else time).str.strip_chars()
    parts = time_text.str.extract_groups(_TIME_PATTERN)
    hms = parts.struct.field("hms")
    millis = parts.struct.field("ms").fill_null("").str.pad_start(3, "0")
    rebuilt = pl.concat_str(date_text, pl.lit(" "), hms.str.pad_start(8, "0"), pl.lit("."), millis)
    # A Time in another shape is passed on as it is, prefixed, so the strict parse fails on it.
    bad = pl.lit("bad Sierra Time: ") + time_text
    text = pl.when(hms.is_not_null()).then(rebuilt).otherwise(bad)
    wall = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=strict)
    return wall.dt.replace_time_zone(tz, ambiguous="earliest").dt.convert_time_zone("UTC")


def _side() -> pl.Expr:
    trade_type = pl.col(_TRADE_TYPE).str.strip_chars()
    return (
        pl.when(trade_type == str(_AT_ASK))
        .then(pl.lit(1, dtype=pl.Int8))
        .when(trade_type == str(_AT_BID))
        .then(pl.lit(-1, dtype=pl.Int8))
        .otherwise(pl.lit(0, dtype=pl.Int8))
    )


_PARSED_TS: Final = "__mmflow_sierra_ts"


def _scan(source: Source, tz: str) -> pl.LazyFrame:
    """Scan the export as text; a row whose Date/Time does not parse is set aside and counted."""
    time_text = pl.col(_TIME).str.strip_chars()
    present = time_text.is_not_null() & (time_text != "")
    parsed = {_PARSED_TS: (sierra_time(_DATE, _TIME, tz, strict=False), present)}
    overrides: dict[str, pl.DataType] = {name: pl.Float64() for name in _FLOATS}
    overrides[_SEQUENCE] = pl.Int64()
    lf = scan_csv(
        source,
        separator=SEPARATOR,
        infer_schema=False,
        schema_overrides=overrides,
        truncate_ragged_lines=True,
        parsed=parsed,
    )
    check_columns(source, lf, _NEEDED, "Sierra ES export")
    return lf


def read_trades(source: Source, options: ReadOptions, *, tz: str = DEFAULT_TZ) -> Frames:
    """Read a Sierra-style ES tick export into canonical trades with their own best bid/ask.

    Parameters
    ----------
    source
        The file (plain, gzip or zstd).
    options
        ``symbol`` is used when the file name does not start with one.
    tz
        The IANA time zone of ``Date``/``Time`` (default :data:`DEFAULT_TZ`).

    Returns
    -------
    Frames
        ``trades`` only, in ``Sequence`` order: ``ts`` = ``ts_event`` from ``Date`` + ``Time``,
        ``price`` = ``Price``, ``size`` = ``Volume``, ``aggressor_side`` from ``TradeType``
        (2 at ask +1, 1 at bid −1, else 0), ``trade_id`` = ``Sequence``, and the row's
        ``BidPrice``/``BidSize``/``AskPrice``/``AskSize``.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a needed column.
    """
    lf = _scan(source, options.tz or tz)
    ts = pl.col(_PARSED_TS)
    canonical = lf.sort(_SEQUENCE, maintain_order=True, nulls_last=True).select(
        ts.alias(TS),
        ts.alias(TS_EVENT),
        pl.lit(_symbol(source, options), dtype=pl.String).alias(SYMBOL),
        pl.col(_PRICE).alias(PRICE),
        pl.col(_VOLUME).alias(SIZE),
        _side().alias(AGGRESSOR_SIDE),
        pl.col(_SEQUENCE).cast(pl.String).alias(TRADE_ID),
        pl.col(_BID_PRICE).alias(BID_PRICE),
        pl.col(_BID_SIZE).alias(BID_SIZE),
        pl.col(_ASK_PRICE).alias(ASK_PRICE),
        pl.col(_ASK_SIZE).alias(ASK_SIZE),
    )
    return Frames(trades=conform(canonical, TRADES, what=source.display))


def findings(source: Source, options: ReadOptions) -> list[str]:
    """Report rows out of ``Sequence`` order, unknown ``TradeType``s and sides the BBO contradicts.

    Parameters
    ----------
    source
        A Sierra-style ES export.
    options
        Unused; part of the findings contract.

    Returns
    -------
    list[str]
        One line per non-zero count.
    """
    lf = _scan(source, options.tz or DEFAULT_TZ)
    side = _side()
    price = pl.col(_PRICE)
    disagrees = ((side == 1) & (price < pl.col(_ASK_PRICE))) | (
        (side == -1) & (price > pl.col(_BID_PRICE))
    )
    row = (
        lf.select(
            unsorted=(pl.col(_SEQUENCE).diff() < 0).sum(),
            unknown=(side == 0).sum(),
            disagrees=disagrees.sum(),
        )
        .collect()
        .row(0, named=True)
    )
    texts = {
        "unsorted": "{n} rows out of Sequence order in the file (read in Sequence order)",
        "unknown": "{n} trades with a TradeType other than 1 (at bid) or 2 (at ask) (side 0)",
        "disagrees": "{n} trades whose TradeType contradicts their own BidPrice/AskPrice",
    }
    return [texts[key].format(n=f"{n:,}") for key, n in row.items() if n]


FORMATS: tuple[Format, ...] = (
    Format(
        "sierra-es",
        "Sierra-style ';'-separated ES tick export (Date;Time;Sequence;DepthSequence;Price;...)",
        read_trades,
        _sniff,
        findings=findings,
    ),
)
