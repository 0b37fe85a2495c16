"""LOBSTER files (NASDAQ TotalView-ITCH reconstructions): ``lobster`` and ``lobster-orderbook``.

LOBSTER delivers one pair of headerless CSV files per ticker and day (formats.md §4), named
``TICKER_YYYY-MM-DD_StartMs_EndMs_message_LEVEL.csv`` and ``…_orderbook_LEVEL.csv``:

* the **message** file, one event per row: ``Time,Type,OrderID,Size,Price,Direction`` (copies
  that append extra columns are read too; only the first six count);
* the **orderbook** file, the book **after** each message, row for row: ``AskPrice_i, AskSize_i,
  BidPrice_i, BidSize_i`` for levels ``i = 1..LEVEL``. Only level 1 is used.

Clocks
    ``Time`` is seconds after midnight, New York time, with up to nine decimals; the date exists
    only in the file name. The text is parsed exactly (whole seconds × 10⁹ + the fraction padded
    to nine digits, never through a float), added to the date as a naive local time, localised to
    ``America/New_York`` (so daylight saving time is right on every date) and converted to UTC.
    ``ts`` and ``ts_event`` are both that time: LOBSTER has one clock. The orderbook file has no
    time column; its rows take the times of the message file.
Prices
    Integers in dollars × 10 000, scaled through ``Decimal(38, 4)`` so that every price is the
    float nearest to its decimal value (``5853300`` → exactly ``585.33``); a float division would
    be off by one unit in the last place for about a third of all prices. An empty book level
    (ask ``9999999999``, bid ``-9999999999``, or size 0) has a null price and a null size.
Trades
    Executions of a visible (Type 4) or hidden (Type 5) resting order. ``Direction`` is the side
    of the **resting** order, so the aggressor is its opposite: ``-1`` (a sell order was executed)
    → +1 buyer-initiated, ``1`` → −1 seller-initiated. Cross trades (Type 6, auctions) are trades
    with ``aggressor_side`` 0. New orders, cancels, deletes and trading halts (Types 1, 2, 3, 7) are
    not trades. ``size`` is ``Size``; ``trade_id`` is the executed order's ``OrderID`` as text
    (several partial executions of one order share it), null when it is 0 (hidden executions);
    ``conditions`` is the message ``Type`` (``4``, ``5`` or ``6``). With the orderbook file, each
    trade carries the **pre-trade** best bid/ask: the book as it stood before the *first* message
    of the trade's timestamp, i.e. orderbook row *j − 1* where *j* is the first message row with
    that time (null when that is the first row). Messages sharing a timestamp are parts of one
    event: a hidden execution (Type 5) that follows a visible one at the same nanosecond would
    otherwise meet the book after the visible level was already consumed.
Quotes
    The level-1 book after each message, keeping a row only when the best bid/ask (prices and
    sizes) differs from the row before; deeper-level changes, hidden executions and halts, which
    leave level 1 as it was, add no quote.
Symbol and venue
    The symbol is the part of the file name before the date; ``--symbol`` is used only when the
    name starts with the date. ``venue`` is ``nasdaq``.
Pairing
    The message file's reader finds the orderbook file next to it: the same name with
    ``_message_`` → ``_orderbook_`` and the same compression suffix (or another one). Without it
    the reader returns trades only (no BBO, no quotes); :func:`missing_orderbook` tells callers so
    and :func:`findings` reports it. Given alone, an orderbook file is read through its message
    file into quotes; when both files are inputs the orderbook file is skipped (``primary``), so
    nothing is counted twice. Which file is which comes from the name; a file whose name has no
    ``_message_N``/``_orderbook_N`` takes the role of the format it was read with.

Detection is by name (``_message_N.csv`` / ``_orderbook_N.csv``) and otherwise by content: six
numeric columns with a Type in 1..7, a Direction of ±1 and a time under 86 400 s (message), or 4·k
integer columns forming a sorted, uncrossed book (orderbook). A header row some copies add is
skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal

import polars as pl

from mmflow.errors import ReaderError
from mmflow.io._common import require_text, scan_csv, set_aside_unparseable
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source, strip_compression_suffix
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    CONDITIONS,
    PRICE,
    QUOTES,
    SIZE,
    SYMBOL,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    VENUE,
    conform,
)

__all__ = [
    "BOOK_COLUMNS",
    "FORMATS",
    "MESSAGE_COLUMNS",
    "Role",
    "findings",
    "lobster_price",
    "lobster_time",
    "missing_orderbook",
    "read_message",
    "read_orderbook",
]

Role = Literal["message", "orderbook"]

# Vendor column names (the files have no header; these are LOBSTER's documented names).
_TIME = "Time"
_TYPE = "Type"
_ORDER_ID = "OrderID"
_SIZE = "Size"
_PRICE = "Price"
_DIRECTION = "Direction"
MESSAGE_COLUMNS: Final = (_TIME, _TYPE, _ORDER_ID, _SIZE, _PRICE, _DIRECTION)
"""The message file's six columns, in file order."""
_ASK_PRICE_1 = "AskPrice1"
_ASK_SIZE_1 = "AskSize1"
_BID_PRICE_1 = "BidPrice1"
_BID_SIZE_1 = "BidSize1"
BOOK_COLUMNS: Final = (_ASK_PRICE_1, _ASK_SIZE_1, _BID_PRICE_1, _BID_SIZE_1)
"""The orderbook file's level-1 columns (the first four of 4·LEVEL)."""

# Message types.
_VISIBLE_EXECUTION: Final = 4
_HIDDEN_EXECUTION: Final = 5
_CROSS_TRADE: Final = 6
_TRADING_HALT: Final = 7
_TRADE_TYPES: Final = (_VISIBLE_EXECUTION, _HIDDEN_EXECUTION, _CROSS_TRADE)
# Type 7 rows: the Price field says what happened.
_HALT, _QUOTING_RESUMES, _TRADING_RESUMES = -1, 0, 1

_TIME_ZONE: Final = "America/New_York"
_VENUE: Final = "nasdaq"
_EMPTY_LEVEL_PRICE: Final = 9_999_999_999  # ask 9999999999, bid -9999999999
_PRICE_SCALE: Final = 10_000
_NS_PER_SECOND: Final = 1_000_000_000
_SECONDS_PER_DAY: Final = 86_400

_ROLE_NAME = re.compile(r"_(?P<role>message|orderbook)_(?P<level>\d+)\.csv$", re.IGNORECASE)
_DATE_IN_NAME = re.compile(r"(?:^|_)(?P<date>\d{4}-\d{2}-\d{2})(?=[_.]|$)")
_PARTNER_SUFFIXES = ("", ".gz", ".zst", ".zip")
_NAMING = "TICKER_YYYY-MM-DD_StartMs_EndMs_message_LEVEL.csv"

_INTEGER = re.compile(r"^-?\d+$")
_SECONDS = re.compile(r"^\d+(\.\d*)?$")
_NUMBER = re.compile(r"^-?\d+(\.\d*)?$")


@dataclass(frozen=True)
class _Name:
    """What a LOBSTER file name says: the file's role, the trading day and the symbol."""

    role: Role | None
    day: date | None
    symbol: str | None


def _parse_name(name: str) -> _Name:
    """Read the role, date and symbol from a LOBSTER file name (without compression suffix).

    Examples
    --------
    >>> _parse_name("AMZN_2012-06-21_34200000_57600000_message_1.csv")
    _Name(role='message', day=datetime.date(2012, 6, 21), symbol='AMZN')
    >>> _parse_name("2012-06-21_orderbook_10.csv")
    _Name(role='orderbook', day=datetime.date(2012, 6, 21), symbol=None)
    >>> _parse_name("amzn.csv")
    _Name(role=None, day=None, symbol=None)
    """
    role_match = _ROLE_NAME.search(name)
    role: Role | None = None
    if role_match is not None:
        role = "orderbook" if role_match["role"].lower() == "orderbook" else "message"
    date_match = _DATE_IN_NAME.search(name)
    if date_match is None:
        return _Name(role, None, None)
    try:
        day: date | None = date.fromisoformat(date_match["date"])
    except ValueError:
        day = None
    symbol = name[: date_match.start("date")].rstrip("_")
    return _Name(role, day, symbol or None)


def _role(source: Source, default: Role) -> Role:
    """Return the file's role from its name, else ``default`` (the role of its format)."""
    return _parse_name(source.name).role or default


def _partner_paths(source: Source, other: Role) -> list[Path]:
    """Where the other file of the pair may be: same folder, same name but for the role."""
    names: list[str] = []
    for name in (source.path.name, source.name):
        plain = strip_compression_suffix(name)
        match = _ROLE_NAME.search(plain)
        if match is None:
            continue
        renamed = f"{plain[: match.start()]}_{other}_{match['level']}.csv"
        compression = name[len(plain) :]
        names += [renamed + compression, *(renamed + suffix for suffix in _PARTNER_SUFFIXES)]
    unique = dict.fromkeys(names)
    return [source.path.parent / name for name in unique]


def _partner_path(source: Source, other: Role) -> Path | None:
    """Return the path of the other file of the pair, or None when there is none."""
    own = source.path.resolve()
    for candidate in _partner_paths(source, other):
        if candidate.is_file() and candidate.resolve() != own:
            return candidate
    return None


def _partner(source: Source, other: Role) -> Source | None:
    """Return the other file of the pair as a :class:`Source`, named as the user named this one."""
    path = _partner_path(source, other)
    if path is None:
        return None
    shown = Path(source.display)
    display = str(shown.with_name(path.name)) if shown.name else str(path)
    return Source(path, display)


def missing_orderbook(source: Source) -> bool:
    """Whether ``source`` is a LOBSTER message file whose orderbook file cannot be found.

    The reader then returns trades only, without pre-trade BBO and without quotes; the caller
    may warn about it.

    Parameters
    ----------
    source
        A file read with the ``lobster`` format.

    Returns
    -------
    bool
        True for a message file without its orderbook file; False for an orderbook file.
    """
    if _role(source, "message") == "orderbook":
        return False
    return _partner_path(source, "orderbook") is None


def _day(source: Source, options: ReadOptions) -> date:
    day = _parse_name(source.name).day or options.date
    if day is None:
        msg = (
            "cannot tell the date: LOBSTER files carry it only in their name; "
            f"pass --date YYYY-MM-DD or rename the file to the LOBSTER pattern {_NAMING}"
        )
        raise ReaderError(msg, path=source.display)
    return day


def _symbol(source: Source, options: ReadOptions) -> str:
    symbol = _parse_name(source.name).symbol or options.symbol
    if symbol is None:
        msg = (
            f"cannot tell the symbol: the file name does not start with it ({_NAMING}); "
            "pass --symbol"
        )
        raise ReaderError(msg, path=source.display)
    return symbol


def _starts_with_header(lines: Sequence[str]) -> bool:
    """Whether the first line is a header (its first cell is not a number)."""
    first = lines[0].split(",")[0].strip().strip('"')
    return not _NUMBER.match(first)


def _scan(source: Source, names: Sequence[str], what: str) -> pl.LazyFrame:
    """Scan the first ``len(names)`` columns of a headerless LOBSTER file as text."""
    lines = require_text(source)
    header = _starts_with_header(lines)
    first = lines[1] if header and len(lines) > 1 else lines[0]
    found = len(first.split(","))
    if found < len(names):
        msg = (
            f"{what} needs at least {len(names)} columns ({','.join(names)}); found {found} "
            "(is this the right --format?)"
        )
        raise ReaderError(msg, path=source.display)
    return scan_csv(
        source,
        has_header=False,
        schema={name: pl.String() for name in names},
        extra_columns="ignore",
        truncate_ragged_lines=True,
        skip_rows=1 if header else 0,
    )


def _integer(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().cast(pl.Int64)


def lobster_time(time: str | pl.Expr, day: date, *, strict: bool = True) -> pl.Expr:
    """Convert LOBSTER ``Time`` text (seconds after New York midnight) on ``day`` to UTC.

    The text is split at the decimal point, never parsed as a float: whole seconds × 10⁹ plus the
    fraction right-padded to nine digits (digits beyond the ninth are dropped). A wall-clock time
    that occurs twice (the autumn clock change) is taken as the earlier one; one that does not
    exist (the spring change) fails at collection. Trading hours never meet either. Text that
    is not a number of seconds fails at collection (``strict``), else gives null.

    Parameters
    ----------
    time
        Column name or String expression.
    day
        The trading day, from the file name.
    strict
        Whether text that does not parse fails the query (else it is null).

    Returns
    -------
    pl.Expr
        ``Datetime("ns", "UTC")``, named ``time`` when that is a column name.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import date
    >>> df = pl.DataFrame({"t": ["34200.004241176", "34200.5"]})
    >>> df.select(lobster_time("t", date(2012, 6, 21)))["t"].dt.to_string("%H:%M:%S%.9f").to_list()
    ['13:30:00.004241176', '13:30:00.500000000']
    """
    text = (pl.col(time) if isinstance(time, str) else time).str.strip_chars()
    parts = text.str.split_exact(".", 1)
    seconds = parts.struct.field("field_0").cast(pl.Int64, strict=strict)
    fraction = (
        parts.struct.field("field_1")
        .fill_null("")
        .str.pad_end(9, "0")
        .str.slice(0, 9)
        .cast(pl.Int64, strict=strict)
    )
    midnight = pl.lit(datetime(day.year, day.month, day.day), dtype=pl.Datetime("ns"))  # noqa: DTZ001
    local = midnight + pl.duration(nanoseconds=seconds * _NS_PER_SECOND + fraction)
    utc = local.dt.replace_time_zone(_TIME_ZONE, ambiguous="earliest").dt.convert_time_zone("UTC")
    return utc.alias(time) if isinstance(time, str) else utc


def lobster_price(raw: str | pl.Expr) -> pl.Expr:
    """Scale a LOBSTER integer price (dollars × 10 000) to dollars, correctly rounded.

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"p": [5853300, 2238200, 1]}).select(lobster_price("p"))["p"].to_list()
    [585.33, 223.82, 0.0001]
    """
    value = pl.col(raw) if isinstance(raw, str) else raw
    return (value.cast(pl.Int64).cast(pl.Decimal(38, 4)) / _PRICE_SCALE).cast(pl.Float64)


def _side_level(price: str, size: str) -> tuple[pl.Expr, pl.Expr]:
    """Price and size of one book side, both null when the level is empty."""
    raw, quantity = _integer(price), _integer(size)
    empty = (raw.abs() == _EMPTY_LEVEL_PRICE) | (quantity == 0)
    return (
        pl.when(empty).then(None).otherwise(lobster_price(raw)),
        pl.when(empty).then(None).otherwise(quantity.cast(pl.Float64)),
    )


_PARSED_TS: Final = "__mmflow_lobster_ts"


def _timed(reading: Source, message: Source, lf: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """Parse the message times; set aside (and count) the rows whose ``Time`` does not parse.

    ``lf`` holds the message file's rows in file order (with the orderbook's beside them); the
    rows set aside are counted on ``reading``, the file being read, under the message file's
    name and line.
    """
    text = pl.col(_TIME).str.strip_chars()
    parsed = {_PARSED_TS: (lobster_time(_TIME, day, strict=False), text.fill_null("") != "")}
    header = int(_starts_with_header(require_text(message)))
    return set_aside_unparseable(
        reading,
        lf,
        parsed,
        names=MESSAGE_COLUMNS,
        header_lines=header,
        file=message.display,
    )


def _messages(day: date, symbol: str) -> list[pl.Expr]:
    """Canonical ``ts``, symbol and venue plus the parsed message fields (after :func:`_timed`)."""
    return [
        pl.col(_PARSED_TS).alias(TS),
        pl.lit(symbol, dtype=pl.String).alias(SYMBOL),
        pl.lit(_VENUE, dtype=pl.String).alias(VENUE),
        _integer(_TYPE).cast(pl.Int8).alias(_TYPE),
        _integer(_ORDER_ID).alias(_ORDER_ID),
        _integer(_SIZE).alias(_SIZE),
        _integer(_PRICE).alias(_PRICE),
        _integer(_DIRECTION).cast(pl.Int8).alias(_DIRECTION),
    ]


def _book(prefix: str = "") -> list[pl.Expr]:
    """Level-1 bid/ask from the orderbook columns, named ``prefix`` + canonical name."""
    ask_price, ask_size = _side_level(_ASK_PRICE_1, _ASK_SIZE_1)
    bid_price, bid_size = _side_level(_BID_PRICE_1, _BID_SIZE_1)
    return [
        bid_price.alias(prefix + BID_PRICE),
        bid_size.alias(prefix + BID_SIZE),
        ask_price.alias(prefix + ASK_PRICE),
        ask_size.alias(prefix + ASK_SIZE),
    ]


_BBO = (BID_PRICE, BID_SIZE, ASK_PRICE, ASK_SIZE)


def _trades(rows: pl.LazyFrame, *, with_bbo: bool, what: str) -> pl.LazyFrame:
    """Select executions and cross trades from message rows (with the pre-trade BBO if given)."""
    kind = pl.col(_TYPE)
    direction = pl.col(_DIRECTION)
    executed = kind.is_in([_VISIBLE_EXECUTION, _HIDDEN_EXECUTION])
    # Direction is the resting order's side; the aggressor is the other side.
    aggressor = (
        pl.when(executed & (direction == -1))
        .then(pl.lit(1, dtype=pl.Int8))
        .when(executed & (direction == 1))
        .then(pl.lit(-1, dtype=pl.Int8))
        .otherwise(pl.lit(0, dtype=pl.Int8))
    )
    order_id = pl.col(_ORDER_ID)
    if with_bbo:
        # Orderbook row k is the book after message k, so row k - 1 is the book before message k.
        # Messages that share a timestamp are one event (a sweep through a level, the hidden
        # executions that follow it): each trade meets the book as it stood before the FIRST
        # message of its timestamp, not the book some earlier part of the same event consumed.
        # An event is a run of consecutive messages with one timestamp.
        event = pl.col(TS).ne_missing(pl.col(TS).shift(1)).cum_sum()
        rows = rows.with_columns(pl.col(name).shift(1) for name in _BBO).with_columns(
            pl.col(name).first().over(event) for name in _BBO
        )
    trades = rows.filter(kind.is_in(_TRADE_TYPES)).select(
        TS,
        TS_EVENT,
        SYMBOL,
        VENUE,
        lobster_price(_PRICE).alias(PRICE),
        pl.col(_SIZE).cast(pl.Float64).alias(SIZE),
        aggressor.alias(AGGRESSOR_SIDE),
        pl.when(order_id > 0).then(order_id.cast(pl.String)).alias(TRADE_ID),
        *(_BBO if with_bbo else ()),
        kind.cast(pl.String).alias(CONDITIONS),
    )
    return conform(trades, TRADES, what=what)


def _quotes(rows: pl.LazyFrame, what: str) -> pl.LazyFrame:
    """Level-1 book after each message, one row per change of the best bid/ask."""
    changed = pl.int_range(pl.len()) == 0
    for name in _BBO:
        changed = changed | pl.col(name).ne_missing(pl.col(name).shift(1))
    quotes = rows.filter(changed).select(TS, TS_EVENT, SYMBOL, VENUE, *_BBO)
    return conform(quotes, QUOTES, what=what)


def _paired_rows(
    message: Source, book: Source, options: ReadOptions, reading: Source
) -> pl.LazyFrame:
    """Message rows side by side with the level-1 book after each of them.

    Rows whose message time does not parse are set aside, with their book row, and counted on
    ``reading`` (the file being read).
    """
    day, symbol = _day(message, options), _symbol(message, options)
    messages = _scan(message, MESSAGE_COLUMNS, "LOBSTER message file")
    levels = _scan(book, BOOK_COLUMNS, "LOBSTER orderbook file")
    both = _timed(reading, message, pl.concat([messages, levels], how="horizontal"), day)
    rows = both.select(*_messages(day, symbol), *_book())
    return rows.with_columns(pl.col(TS).alias(TS_EVENT))


def _message_frames(message: Source, options: ReadOptions, *, trades: bool) -> Frames:
    book = _partner(message, "orderbook")
    if book is None:
        if not trades:
            msg = (
                "quotes come from the orderbook file, which was not found next to the message "
                "file (same name with _orderbook_ for _message_)"
            )
            raise ReaderError(msg, path=message.display)
        day, symbol = _day(message, options), _symbol(message, options)
        lf = _timed(message, message, _scan(message, MESSAGE_COLUMNS, "LOBSTER message file"), day)
        rows = lf.select(*_messages(day, symbol)).with_columns(pl.col(TS).alias(TS_EVENT))
        note = (
            f"{message.display}: orderbook file not found next to it; reading trades only "
            "(no quotes, no pre-trade BBO)"
        )
        return Frames(trades=_trades(rows, with_bbo=False, what=message.display), notes=(note,))
    rows = _paired_rows(message, book, options, message)
    quotes = _quotes(rows, message.display)
    if not trades:
        return Frames(quotes=quotes)
    return Frames(trades=_trades(rows, with_bbo=True, what=message.display), quotes=quotes)


def _orderbook_frames(book: Source, options: ReadOptions) -> Frames:
    require_text(book)
    message = _partner(book, "message")
    if message is None:
        msg = (
            "the orderbook file has no time column: LOBSTER keeps the times in the message file, "
            "which was not found next to it (same name with _message_ for _orderbook_)"
        )
        raise ReaderError(msg, path=book.display)
    rows = _paired_rows(message, book, options, book)
    return Frames(quotes=_quotes(rows, book.display))


def read_message(source: Source, options: ReadOptions) -> Frames:
    """Read a LOBSTER message file, and its orderbook file when it is next to it.

    Parameters
    ----------
    source
        The message file (plain, gzip, zstd or a one-file zip). An orderbook file (by its name)
        is read as with :func:`read_orderbook`.
    options
        ``symbol`` names the file when its name starts with the date.

    Returns
    -------
    Frames
        ``trades`` (executions and cross trades, with the pre-trade best bid/ask when the
        orderbook file is found) and ``quotes`` (level 1, one row per change); ``trades`` only
        when the orderbook file is missing (see :func:`missing_orderbook`).

    Raises
    ------
    ReaderError
        For an empty file, too few columns, a name without a date, or no symbol.
    """
    if _role(source, "message") == "orderbook":
        return _orderbook_frames(source, options)
    return _message_frames(source, options, trades=True)


def read_orderbook(source: Source, options: ReadOptions) -> Frames:
    """Read a LOBSTER orderbook file's level 1 as quotes, timed by its message file.

    Parameters
    ----------
    source
        The orderbook file (any number of levels). A message file (by its name) yields the
        quotes of its pair.
    options
        ``symbol`` names the file when its name starts with the date.

    Returns
    -------
    Frames
        ``quotes`` only, one row per change of the best bid/ask.

    Raises
    ------
    ReaderError
        When the message file is missing (the orderbook file has no times), or for an empty
        file, too few columns, a name without a date, or no symbol.
    """
    if _role(source, "orderbook") == "message":
        return _message_frames(source, options, trades=False)
    return _orderbook_frames(source, options)


def _primary(source: Source) -> Path | None:
    """For an orderbook file: its message file, whose reader reads the orderbook too."""
    if _role(source, "orderbook") == "message":
        return None
    return _partner_path(source, "message")


def _count_rows(source: Source, names: Sequence[str], what: str) -> int:
    return int(_scan(source, names, what).select(pl.len()).collect().item())


def _plural(count: int, word: str) -> str:
    """Count ``word`` in English.

    Examples
    --------
    >>> _plural(1, "cross trade"), _plural(1_234, "cross trade")
    ('1 cross trade', '1,234 cross trades')
    """
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _message_findings(message: Source) -> list[str]:
    lf = _scan(message, MESSAGE_COLUMNS, "LOBSTER message file")
    kind, price = _integer(_TYPE), _integer(_PRICE)
    halt = kind == _TRADING_HALT
    counts = lf.select(
        halt.sum().alias("halts"),
        (halt & (price == _HALT)).sum().alias("halted"),
        (halt & (price == _QUOTING_RESUMES)).sum().alias("quoting"),
        (halt & (price == _TRADING_RESUMES)).sum().alias("trading"),
        (kind == _HIDDEN_EXECUTION).sum().alias("hidden"),
        (kind == _CROSS_TRADE).sum().alias("cross"),
        pl.len().alias("rows"),
    ).collect()
    row = counts.row(0, named=True)
    found: list[str] = []
    if row["halts"]:
        found.append(
            f"{_plural(row['halts'], 'trading-halt message')} (type 7): {row['halted']:,} halted, "
            f"{row['quoting']:,} quoting resumed, {row['trading']:,} trading resumed"
        )
    if row["hidden"]:
        found.append(
            f"{_plural(row['hidden'], 'hidden execution')} (type 5): against orders not in the "
            "visible book, so quote-based signing is unreliable for them; trade_id empty"
        )
    if row["cross"]:
        found.append(
            f"{_plural(row['cross'], 'cross trade')} (type 6, auctions): aggressor unknown (0)"
        )
    book = _partner(message, "orderbook")
    if book is None:
        found.append("orderbook file not found: trades only, no quotes")
    else:
        book_rows = _count_rows(book, BOOK_COLUMNS, "LOBSTER orderbook file")
        if book_rows != row["rows"]:
            found.append(
                f"orderbook file has {book_rows:,} rows but the message file {row['rows']:,}; "
                "they must match row for row (re-export the pair)"
            )
    return found


def findings(source: Source, options: ReadOptions) -> list[str]:
    """LOBSTER-specific findings for ``mmflow inspect``, one line each (reads the whole file).

    Parameters
    ----------
    source
        A message file (or an orderbook file, whose message file is then examined).
    options
        Unused; part of the findings contract.

    Returns
    -------
    list[str]
        Trading halts (type 7, by kind), hidden executions (type 5), cross trades (type 6), a
        missing orderbook file, and orderbook/message row counts that differ.

    Raises
    ------
    ReaderError
        When a file of the pair cannot be read.
    """
    if _role(source, "message") == "orderbook":
        message = _partner(source, "message")
        if message is None:
            return ["message file not found: the orderbook file cannot be read without it"]
        source = message
    try:
        return _message_findings(source)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot read the file to the end ({first}); is it truncated or corrupt?"
        raise ReaderError(msg, path=source.display) from exc


# --- detection --------------------------------------------------------------------------------


def _is_message_row(cells: Sequence[str]) -> bool:
    """Whether one split line looks like a LOBSTER message (extra trailing columns allowed).

    Examples
    --------
    >>> _is_message_row("34200.004241176,1,16113575,18,5853300,1".split(","))
    True
    >>> _is_message_row("34200.004241176,8,16113575,18,5853300,1".split(","))
    False
    """
    if len(cells) < len(MESSAGE_COLUMNS):
        return False
    time, kind, order_id, size, price, direction = (c.strip() for c in cells[:6])
    return (
        bool(_SECONDS.match(time))
        and float(time) < _SECONDS_PER_DAY
        and kind in {"1", "2", "3", "4", "5", "6", "7"}
        and bool(_INTEGER.match(order_id))
        and size.isdigit()
        and bool(_INTEGER.match(price))
        and direction in {"1", "-1"}
    )


def _is_book_row(cells: Sequence[str]) -> bool:
    """Whether one split line looks like a LOBSTER orderbook row: 4·k integers, sorted, uncrossed.

    Examples
    --------
    >>> _is_book_row("118600,9484,118500,8800,118700,22700,118400,14930".split(","))
    True
    >>> _is_book_row("9999999999,0,-9999999999,0".split(","))
    True
    >>> _is_book_row("118500,10,118600,10".split(","))
    False
    """
    if not cells or len(cells) % 4 or not all(_INTEGER.match(c.strip()) for c in cells):
        return False
    values = [int(c) for c in cells]
    asks, ask_sizes = values[0::4], values[1::4]
    bids, bid_sizes = values[2::4], values[3::4]
    return (
        all(size >= 0 for size in (*ask_sizes, *bid_sizes))
        and all(ask > 0 for ask in asks)
        and all(bid > 0 or bid == -_EMPTY_LEVEL_PRICE for bid in bids)
        and all(ask > bid for ask, bid in zip(asks, bids, strict=True))
        and asks == sorted(asks)
        and bids == sorted(bids, reverse=True)
    )


def _looks_like(lines: Sequence[str], row: Callable[[Sequence[str]], bool]) -> bool:
    """Whether every first line (after an optional header) passes ``row``."""
    if lines and _starts_with_header(lines):
        lines = lines[1:]
    return bool(lines) and all(row(line.split(",")) for line in lines)


def _sniff(info: Sniff, role: Role, row: Callable[[Sequence[str]], bool]) -> bool:
    named = _parse_name(info.name).role
    if named is not None:
        return named == role
    return _looks_like(info.lines, row)


def _sniff_message(info: Sniff) -> bool:
    return _sniff(info, "message", _is_message_row)


def _sniff_orderbook(info: Sniff) -> bool:
    return _sniff(info, "orderbook", _is_book_row)


FORMATS: tuple[Format, ...] = (
    Format(
        "lobster",
        "LOBSTER message file TICKER_YYYY-MM-DD_Start_End_message_N.csv; "
        "its orderbook file is read with it",
        read_message,
        _sniff_message,
        primary=_primary,
        findings=findings,
    ),
    Format(
        "lobster-orderbook",
        "LOBSTER orderbook file …_orderbook_N.csv, level 1 as quotes (needs its message file)",
        read_orderbook,
        _sniff_orderbook,
        primary=_primary,
        findings=findings,
    ),
)
