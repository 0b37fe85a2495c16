"""NYSE TAQ: WRDS Millisecond TAQ exports (``ctm`` / ``cqm``) and NYSE Daily TAQ flat files.

Two families (formats.md §5):

* **WRDS** CSV exports of ``taqmsec.ctm_YYYYMMDD`` (trades) and ``cqm_YYYYMMDD`` (quotes):
  ``DATE,TIME_M,EX,SYM_ROOT,SYM_SUFFIX,TR_SCOND,SIZE,PRICE,TR_CORR,TR_SEQNUM,…`` and
  ``DATE,TIME_M,EX,SYM_ROOT,SYM_SUFFIX,BID,BIDSIZ,ASK,ASKSIZ,QU_COND,…``, upper or lower case.
  ``DATE`` is ``YYYYMMDD`` or ``YYYY-MM-DD``; ``TIME_M`` is ``H:MM:SS.ffffff`` (the hour may have
  one digit) and the optional ``TIME_M_NANO`` adds the nanoseconds beyond the microsecond.
* **Daily TAQ** pipe-separated files ``EQY_US_ALL_TRADE_YYYYMMDD``, ``EQY_US_ALL_BBO_…`` and
  ``EQY_US_ALL_NBBO_…`` with a header row and an ``END|YYYYMMDD|<rows>|…`` trailer that has one
  more field than the header (it is dropped). ``Time`` is ``HHMMSS`` followed by the fraction of
  the second (9 digits since late 2016, 3 or 6 in older files), right-padded to nanoseconds. The
  date comes from the file name (``_YYYYMMDD``) or, failing that, from the trailer.

Header spellings vary between vintages and exports, so every header name is normalised with
``lower().replace(" ", "_")`` before matching (``Sale Condition`` = ``sale_condition``).

Clocks: every time is New York wall-clock time, converted to UTC with the daylight-saving rule of
its own date (09:30 is 13:30 UTC in summer, 14:30 in winter). The conversion is exact: the time of
day is built from its digits as integer nanoseconds, never through a float. ``ts`` is the SIP time
(``TIME_M`` / ``Time``); ``ts_event`` is the participant (exchange) timestamp where the file has
one (Daily TAQ ``Participant Timestamp``, WRDS ``PART_TIME``), null otherwise or when it is empty
or all zeros.

TAQ reports no aggressor: ``aggressor_side`` is always 0 (infer it with Lee-Ready). TAQ is a
consolidated tape, so it has no ``venue`` (the instrument is the symbol; quotes of every exchange
and the NBBO sign its trades); ``exchange`` is the reporting exchange code (``EX`` /
``Exchange``, used by the TAQ cleaning's single-exchange rule), ``symbol`` is ``SYM_ROOT``
(plus ``_SYM_SUFFIX`` when the suffix is not empty, as R highfrequency does) or ``Symbol``; the
NBBO file has no exchange (its bid and offer are consolidated across exchanges); ``trade_id`` is
the SIP sequence number as text. ``conditions`` is the sale / quote condition with every space
removed (the Daily TAQ field is 4 positional characters, so `` 4 B`` becomes ``4B``; empty
becomes null) and ``correction`` is the correction indicator as text (``00`` = regular).

Quotes: a side whose price or size is 0 is empty and becomes null (price and size). Quote sizes
are in round lots and are multiplied by :data:`ROUND_LOT` (100 shares); the read functions take a
``round_lot`` keyword to change that. The NBBO file is read from its ``Best_Bid_*`` /
``Best_Offer_*`` columns.

``mmflow inspect`` reports, for each file, how many rows each standard cleaning rule
(:mod:`mmflow.clean`) would drop, and for Daily TAQ a trailer whose row count or date does not
match the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from mmflow.clean import (
    ROWS_DROPPED,
    RULE,
    RULE_DESCRIPTIONS,
    Cleaned,
    clean_taq_quotes,
    clean_taq_trades,
)
from mmflow.errors import ParameterError, ReaderError
from mmflow.io._common import check_columns, scan_csv
from mmflow.io.formats import Format, Frames, ReadOptions, Sniff
from mmflow.io.source import Source
from mmflow.schema import (
    AGGRESSOR_SIDE,
    ASK_PRICE,
    ASK_SIZE,
    BID_PRICE,
    BID_SIZE,
    CONDITIONS,
    CORRECTION,
    EXCHANGE,
    PRICE,
    QUOTES,
    SIZE,
    SYMBOL,
    TIMESTAMP,
    TRADE_ID,
    TRADES,
    TS,
    TS_EVENT,
    conform,
)

__all__ = [
    "DAILY_QUOTES_SIGNATURE",
    "DAILY_TRADES_SIGNATURE",
    "FORMATS",
    "NEW_YORK",
    "ROUND_LOT",
    "WRDS_QUOTES_NEEDED",
    "WRDS_TRADES_NEEDED",
    "colon_time_ns",
    "compact_time_ns",
    "name_date",
    "new_york_to_utc",
    "normalise_header",
    "read_daily_nbbo",
    "read_daily_quotes",
    "read_daily_trades",
    "read_wrds_quotes",
    "read_wrds_trades",
]

ROUND_LOT: Final = 100
"""Shares per round lot: TAQ quote sizes are counted in round lots and multiplied by this."""

NEW_YORK: Final = "America/New_York"

# --- vendor column names (normalised: lower case, spaces → underscores); they never leave here --

# WRDS ctm / cqm
_DATE = "date"
_TIME_M = "time_m"
_TIME_M_NANO = "time_m_nano"
_PART_TIME = "part_time"
_EX = "ex"
_SYM_ROOT = "sym_root"
_SYM_SUFFIX = "sym_suffix"
_TR_SCOND = "tr_scond"
_SIZE = "size"
_PRICE = "price"
_TR_CORR = ("tr_corr", "corr", "cr")
_TR_SEQNUM = "tr_seqnum"
_BID = "bid"
_BIDSIZ = ("bidsiz", "bidsize")
_ASK = ("ask", "ofr")
_ASKSIZ = ("asksiz", "asksize", "ofrsiz", "ofrsize")
_QU_COND = "qu_cond"

# Daily TAQ
_TIME = "time"
_EXCHANGE = "exchange"
_SYMBOL = "symbol"
_SALE_CONDITION = "sale_condition"
_TRADE_VOLUME = "trade_volume"
_TRADE_PRICE = "trade_price"
_TRADE_CORRECTION = "trade_correction_indicator"
_SEQUENCE_NUMBER = ("sequence_number", "trade_sequence_number")
_PARTICIPANT_TIMESTAMP = "participant_timestamp"
_BID_PRICE = "bid_price"
_BID_SIZE = "bid_size"
_OFFER_PRICE = "offer_price"
_OFFER_SIZE = "offer_size"
_QUOTE_CONDITION = "quote_condition"
_BEST_BID_PRICE = "best_bid_price"
_BEST_BID_SIZE = "best_bid_size"
_BEST_OFFER_PRICE = "best_offer_price"
_BEST_OFFER_SIZE = "best_offer_size"
_TRAILER = "END"

WRDS_TRADES_NEEDED: Final = (_DATE, _TIME_M, _SYM_ROOT, _SIZE, _PRICE)
WRDS_QUOTES_NEEDED: Final = (_DATE, _TIME_M, _SYM_ROOT, _BID)
DAILY_TRADES_SIGNATURE: Final = (
    _TIME,
    _EXCHANGE,
    _SYMBOL,
    _SALE_CONDITION,
    _TRADE_VOLUME,
    _TRADE_PRICE,
)
"""The first six (normalised) columns of every Daily TAQ trade file."""
DAILY_QUOTES_SIGNATURE: Final = (
    _TIME,
    _EXCHANGE,
    _SYMBOL,
    _BID_PRICE,
    _BID_SIZE,
    _OFFER_PRICE,
    _OFFER_SIZE,
)
"""The first seven (normalised) columns of every Daily TAQ BBO and NBBO file."""
_NBBO_COLUMNS = (_BEST_BID_PRICE, _BEST_BID_SIZE, _BEST_OFFER_PRICE, _BEST_OFFER_SIZE)
_DAILY_TRADES_NEEDED = (_TIME, _EXCHANGE, _SYMBOL, _TRADE_VOLUME, _TRADE_PRICE)
_DAILY_QUOTES_NEEDED = (_TIME, _EXCHANGE, _SYMBOL, _BID_PRICE, _BID_SIZE, _OFFER_PRICE, _OFFER_SIZE)
_DAILY_NBBO_NEEDED = (_TIME, _EXCHANGE, _SYMBOL, *_NBBO_COLUMNS)

_DAILY_NAME = re.compile(r"EQY_US_ALL_(?P<kind>TRADE|BBO|NBBO)_\d{8}", re.IGNORECASE)
_WRDS_NAME = re.compile(r"(?:^|[^a-z])(?P<kind>ctm|cqm)_\d{8}", re.IGNORECASE)
_NAME_DATE = re.compile(r"_(?P<date>\d{8})(?!\d)")


def normalise_header(name: str) -> str:
    """Return a TAQ header name in the form this module matches: lower case, ``_`` for spaces.

    Examples
    --------
    >>> normalise_header(" Sale Condition ")
    'sale_condition'
    >>> normalise_header("SYM_ROOT")
    'sym_root'
    """
    return name.strip().strip('"').strip().lower().replace(" ", "_")


def _normalise_all(names: list[str]) -> list[str]:
    return [normalise_header(name) for name in names]


def _split_header(info: Sniff, separator: str) -> list[str]:
    if not info.lines:
        return []
    return _normalise_all(info.lines[0].split(separator))


def _name_kind(pattern: re.Pattern[str], name: str) -> str | None:
    match = pattern.search(name)
    return match["kind"].upper() if match else None


def name_date(name: str) -> str | None:
    """Return the ``YYYYMMDD`` date a TAQ file name carries (its last ``_YYYYMMDD``), or None.

    Examples
    --------
    >>> name_date("EQY_US_ALL_TRADE_20161024")
    '20161024'
    >>> name_date("trades.csv") is None
    True
    """
    found = _NAME_DATE.findall(name)
    return found[-1] if found else None


# --- detection -----------------------------------------------------------------------------


def _sniff_wrds(info: Sniff, kind: str, needed: Sequence[str], other: str) -> bool:
    header = _split_header(info, ",")
    if not set(needed) <= set(header) or other in header:
        return False
    return header[:2] == [_DATE, _TIME_M] or _name_kind(_WRDS_NAME, info.name) == kind


def _sniff_wrds_trades(info: Sniff) -> bool:
    return _sniff_wrds(info, "CTM", WRDS_TRADES_NEEDED, _BID)


def _sniff_wrds_quotes(info: Sniff) -> bool:
    return _sniff_wrds(info, "CQM", WRDS_QUOTES_NEEDED, _PRICE)


def _sniff_daily_trades(info: Sniff) -> bool:
    header = _split_header(info, "|")
    if tuple(header[: len(DAILY_TRADES_SIGNATURE)]) == DAILY_TRADES_SIGNATURE:
        return True
    named = _name_kind(_DAILY_NAME, info.name) == "TRADE"
    return named and set(_DAILY_TRADES_NEEDED) <= set(header)


def _sniff_daily_quotes(info: Sniff) -> bool:
    header = _split_header(info, "|")
    if _BEST_BID_PRICE in header:
        return False
    if tuple(header[: len(DAILY_QUOTES_SIGNATURE)]) == DAILY_QUOTES_SIGNATURE:
        return True
    named = _name_kind(_DAILY_NAME, info.name) == "BBO"
    return named and set(_DAILY_QUOTES_NEEDED) <= set(header)


def _sniff_daily_nbbo(info: Sniff) -> bool:
    header = _split_header(info, "|")
    if not set(_NBBO_COLUMNS) <= set(header):
        return False
    if tuple(header[: len(DAILY_QUOTES_SIGNATURE)]) == DAILY_QUOTES_SIGNATURE:
        return True
    named = _name_kind(_DAILY_NAME, info.name) == "NBBO"
    return named and set(_DAILY_NBBO_NEEDED) <= set(header)


# --- time arithmetic (exact: integer nanoseconds built from the digits) --------------------


def _digits(text: pl.Expr, *, strict: bool = True) -> pl.Expr:
    """Parse a run of decimal digits; a non-digit fails loudly at collection (else null)."""
    return text.cast(pl.Int64, strict=strict)


def _fraction_ns(fraction: pl.Expr, *, strict: bool = True) -> pl.Expr:
    """Digits after the seconds, right-padded (or cut) to 9: ``417837`` → 417837000 ns."""
    return _digits(fraction.fill_null("").str.pad_end(9, "0").str.slice(0, 9), strict=strict)


def _hms_ns(
    hours: pl.Expr, minutes: pl.Expr, seconds: pl.Expr, fraction: pl.Expr, *, strict: bool = True
) -> pl.Expr:
    whole = (_digits(hours, strict=strict) * 60 + _digits(minutes, strict=strict)) * 60 + _digits(
        seconds, strict=strict
    )
    return whole * 1_000_000_000 + _fraction_ns(fraction, strict=strict)


def colon_time_ns(text: pl.Expr, *, strict: bool = True) -> pl.Expr:
    """Nanoseconds since midnight of a WRDS ``H:MM:SS[.fffffffff]`` time (1- or 2-digit hour).

    Text that is not such a time fails the query when collected (``strict``), else gives null.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"t": ["9:30:00.417837", "16:00:00", "09:30:00.123456789"]})
    >>> df.select(colon_time_ns(pl.col("t")).alias("ns"))["ns"].to_list()
    [34200417837000, 57600000000000, 34200123456789]
    """
    parts = text.str.strip_chars().str.split_exact(":", 2)
    seconds = parts.struct.field("field_2").str.split_exact(".", 1)
    return _hms_ns(
        parts.struct.field("field_0"),
        parts.struct.field("field_1"),
        seconds.struct.field("field_0"),
        seconds.struct.field("field_1"),
        strict=strict,
    )


def compact_time_ns(text: pl.Expr, *, strict: bool = True) -> pl.Expr:
    """Nanoseconds since midnight of a Daily TAQ ``HHMMSS`` + fraction time.

    Text that is not such a time fails the query when collected (``strict``), else gives null.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"t": ["093000417837000", "093000417", "160000000000"]})
    >>> df.select(compact_time_ns(pl.col("t")))["t"].to_list()
    [34200417837000, 34200417000000, 57600000000000]
    """
    t = text.str.strip_chars()
    return _hms_ns(
        t.str.slice(0, 2), t.str.slice(2, 2), t.str.slice(4, 2), t.str.slice(6), strict=strict
    )


def new_york_to_utc(date: pl.Expr, ns_of_day: pl.Expr) -> pl.Expr:
    """Combine a date and nanoseconds since New York midnight into a UTC timestamp.

    The daylight-saving offset is the one in force on that date and time of day.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import date
    >>> days = [date(2016, 10, 24), date(2016, 12, 1)]
    >>> df = pl.DataFrame({"d": days, "ns": [34200417837000] * 2})
    >>> utc = df.select(new_york_to_utc(pl.col("d"), pl.col("ns")).alias("utc"))["utc"]
    >>> utc.dt.to_string("%H:%M:%S%.6f").to_list()
    ['13:30:00.417837', '14:30:00.417837']
    """
    local = date.cast(pl.Datetime("ns")) + pl.duration(nanoseconds=ns_of_day)
    return local.dt.replace_time_zone(NEW_YORK).dt.convert_time_zone("UTC").cast(TIMESTAMP)


def _no_time(text: pl.Expr) -> pl.Expr:
    """Whether a participant-time cell holds no time: empty or all zeros."""
    stripped = text.str.strip_chars()
    return stripped.is_null() | stripped.str.replace_all(r"[0:.]", "").eq("")


def _optional_ns(name: str, *, compact: bool) -> pl.Expr:
    """Nanoseconds of day of a participant-time column: null when empty, all zeros or bad."""
    stripped = pl.col(name).str.strip_chars()
    ns = (compact_time_ns if compact else colon_time_ns)(stripped, strict=False)
    return pl.when(_no_time(pl.col(name))).then(None).otherwise(ns)


def _filled(name: str) -> pl.Expr:
    """Whether a text cell holds something to parse."""
    return pl.col(name).str.strip_chars().fill_null("") != ""


_PARSED_DAY: Final = "__mmflow_taq_day"
_PARSED_NS: Final = "__mmflow_taq_ns"
_PARSED_NANO: Final = "__mmflow_taq_nano"
_PARSED_EVENT: Final = "__mmflow_taq_event_ns"
_PARSED: Final = (_PARSED_DAY, _PARSED_NS, _PARSED_NANO, _PARSED_EVENT)
"""Columns the TAQ scans parse from the time text (a row whose text does not parse is set aside
and counted as unparseable, with its line: :func:`mmflow.io._common.scan_csv`)."""


def _event_time(date: pl.Expr, present: Sequence[str]) -> pl.Expr:
    """``ts_event`` from the parsed participant time, or null when the file has none."""
    if _PARSED_EVENT not in present:
        return pl.lit(None, dtype=TIMESTAMP)
    ns = pl.col(_PARSED_EVENT)
    return pl.when(ns.is_null()).then(None).otherwise(new_york_to_utc(date, ns)).cast(TIMESTAMP)


# --- shared column builders ----------------------------------------------------------------


def _pick(present: Sequence[str], names: str | tuple[str, ...]) -> str | None:
    """Return the first of ``names`` (a name or a tuple of spellings) in ``present``."""
    for name in (names,) if isinstance(names, str) else names:
        if name in present:
            return name
    return None


def _require(source: Source, present: Sequence[str], names: tuple[str, ...]) -> str:
    """Return the first spelling of ``names`` in ``present``, or raise naming them all."""
    name = _pick(present, names)
    if name is None:
        msg = (
            f"missing column {' / '.join(names)} for WRDS TAQ quotes; found {', '.join(present)} "
            "(is this the right --format?)"
        )
        raise ReaderError(msg, path=source.display)
    return name


def _text_or_null(present: Sequence[str], names: str | tuple[str, ...]) -> pl.Expr:
    name = _pick(present, names)
    if name is None:
        return pl.lit(None, dtype=pl.String)
    return pl.col(name).str.strip_chars()


def _compact_code(present: Sequence[str], name: str) -> pl.Expr:
    """Return a condition code with every space removed; empty becomes null."""
    if name not in present:
        return pl.lit(None, dtype=pl.String)
    code = pl.col(name).str.replace_all(" ", "", literal=True)
    return pl.when(code == "").then(None).otherwise(code)


def _symbol(column: pl.Expr, options: ReadOptions) -> pl.Expr:
    symbol = column.str.strip_chars()
    if options.symbol:
        symbol = symbol.fill_null(pl.lit(options.symbol, dtype=pl.String))
    return symbol


def _wrds_symbol(present: Sequence[str], options: ReadOptions) -> pl.Expr:
    root = pl.col(_SYM_ROOT).str.strip_chars()
    if _SYM_SUFFIX in present:
        suffix = pl.col(_SYM_SUFFIX).str.strip_chars()
        root = pl.when(suffix.is_null() | (suffix == "")).then(root).otherwise(root + "_" + suffix)
    return _symbol(root, options)


def _number(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().cast(pl.Float64, strict=True)


def _quote_side(price: str, size: str, round_lot: int) -> tuple[pl.Expr, pl.Expr]:
    """Price and size (shares) of one quote side; null both when the price or size is 0."""
    p = _number(price)
    s = _number(size)
    empty = p.is_null() | (p == 0) | s.is_null() | (s == 0)
    return (
        pl.when(empty).then(None).otherwise(p),
        pl.when(empty).then(None).otherwise(s * round_lot),
    )


def _check_round_lot(round_lot: int) -> None:
    if round_lot <= 0:
        msg = f"round_lot must be a positive number of shares, was {round_lot}"
        raise ParameterError(msg)


# --- WRDS ----------------------------------------------------------------------------------


def _scan_wrds(source: Source, needed: Sequence[str], what: str) -> pl.LazyFrame:
    date = pl.col(_DATE).str.strip_chars().str.replace_all("-", "", literal=True)
    nano = pl.col(_TIME_M_NANO).str.strip_chars()
    parsed = {
        _PARSED_DAY: (date.str.to_date("%Y%m%d", strict=False), _filled(_DATE)),
        _PARSED_NS: (colon_time_ns(pl.col(_TIME_M), strict=False), _filled(_TIME_M)),
        _PARSED_NANO: (_digits(nano, strict=False), _filled(_TIME_M_NANO)),
        _PARSED_EVENT: (_optional_ns(_PART_TIME, compact=False), ~_no_time(pl.col(_PART_TIME))),
    }
    lf = scan_csv(source, infer_schema=False, with_column_names=_normalise_all, parsed=parsed)
    check_columns(source, lf, needed, what)
    return lf


def _wrds_clocks(present: Sequence[str]) -> list[pl.Expr]:
    day = pl.col(_PARSED_DAY)
    ns = pl.col(_PARSED_NS)
    if _PARSED_NANO in present:
        ns = ns + pl.col(_PARSED_NANO).fill_null(0)
    return [new_york_to_utc(day, ns).alias(TS), _event_time(day, present).alias(TS_EVENT)]


def _exchange(present: Sequence[str], name: str) -> pl.Expr:
    if name not in present:
        return pl.lit(None, dtype=pl.String).alias(EXCHANGE)
    return pl.col(name).str.strip_chars().alias(EXCHANGE)


def read_wrds_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a WRDS Millisecond TAQ trades (``ctm``) CSV export into canonical trades.

    Parameters
    ----------
    source
        The file (plain, gzip, zstd or zip); header in any case.
    options
        ``symbol`` fills empty ``SYM_ROOT`` cells.

    Returns
    -------
    Frames
        ``trades`` only: ``ts`` = ``DATE`` + ``TIME_M`` (+ ``TIME_M_NANO``) New York → UTC,
        ``ts_event`` = ``PART_TIME`` or null, ``exchange`` = ``EX``, ``symbol`` = ``SYM_ROOT``
        (``_SYM_SUFFIX``), ``aggressor_side`` 0, ``trade_id`` = ``TR_SEQNUM``, ``conditions`` =
        ``TR_SCOND`` without spaces, ``correction`` = ``TR_CORR``.

    Raises
    ------
    ReaderError
        When the file is empty or lacks one of ``DATE, TIME_M, SYM_ROOT, SIZE, PRICE``.
    """
    lf = _scan_wrds(source, WRDS_TRADES_NEEDED, "WRDS TAQ trades")
    present = lf.collect_schema().names()
    canonical = lf.select(
        *_wrds_clocks(present),
        _wrds_symbol(present, options).alias(SYMBOL),
        _exchange(present, _EX),
        _number(_PRICE).alias(PRICE),
        _number(_SIZE).alias(SIZE),
        pl.lit(0, dtype=pl.Int8).alias(AGGRESSOR_SIDE),
        _text_or_null(present, _TR_SEQNUM).alias(TRADE_ID),
        _compact_code(present, _TR_SCOND).alias(CONDITIONS),
        _text_or_null(present, _TR_CORR).alias(CORRECTION),
    )
    return Frames(trades=conform(canonical, TRADES, what=source.display))


def read_wrds_quotes(source: Source, options: ReadOptions, *, round_lot: int = ROUND_LOT) -> Frames:
    """Read a WRDS Millisecond TAQ quotes (``cqm``) CSV export into canonical quotes.

    Parameters
    ----------
    source
        The file (plain, gzip, zstd or zip); header in any case.
    options
        ``symbol`` fills empty ``SYM_ROOT`` cells.
    round_lot
        Shares per round lot: ``BIDSIZ`` and ``ASKSIZ`` are multiplied by it.

    Returns
    -------
    Frames
        ``quotes`` only: ``BID``/``BIDSIZ`` and ``ASK``/``ASKSIZ`` (also spelt ``OFR``,
        ``OFRSIZ``, ``BIDSIZE``, ``ASKSIZE``); a side with price or size 0 is null;
        ``conditions`` = ``QU_COND``. Clocks, symbol and exchange as :func:`read_wrds_trades`.

    Raises
    ------
    ReaderError
        When the file is empty or lacks a quotes column.
    ParameterError
        When ``round_lot`` is not positive.
    """
    round_lot = options.round_lot if options.round_lot is not None else round_lot
    _check_round_lot(round_lot)
    lf = _scan_wrds(source, WRDS_QUOTES_NEEDED, "WRDS TAQ quotes")
    present = lf.collect_schema().names()
    bid_size = _require(source, present, _BIDSIZ)
    ask = _require(source, present, _ASK)
    ask_size = _require(source, present, _ASKSIZ)
    bid_price, bid_shares = _quote_side(_BID, bid_size, round_lot)
    ask_price, ask_shares = _quote_side(ask, ask_size, round_lot)
    canonical = lf.select(
        *_wrds_clocks(present),
        _wrds_symbol(present, options).alias(SYMBOL),
        _exchange(present, _EX),
        bid_price.alias(BID_PRICE),
        bid_shares.alias(BID_SIZE),
        ask_price.alias(ASK_PRICE),
        ask_shares.alias(ASK_SIZE),
        _compact_code(present, _QU_COND).alias(CONDITIONS),
    )
    return Frames(quotes=conform(canonical, QUOTES, what=source.display))


# --- Daily TAQ -----------------------------------------------------------------------------


def _scan_daily(source: Source, needed: Sequence[str], what: str) -> pl.LazyFrame:
    """All rows as text, trailer included (it has one field too many: truncated)."""
    row = ~_is_trailer().fill_null(value=False)
    parsed = {
        _PARSED_NS: (compact_time_ns(pl.col(_TIME), strict=False), row & _filled(_TIME)),
        _PARSED_EVENT: (
            _optional_ns(_PARTICIPANT_TIMESTAMP, compact=True),
            row & ~_no_time(pl.col(_PARTICIPANT_TIMESTAMP)),
        ),
    }
    lf = scan_csv(
        source,
        separator="|",
        infer_schema=False,
        truncate_ragged_lines=True,
        quote_char=None,
        with_column_names=_normalise_all,
        parsed=parsed,
    )
    check_columns(source, lf, needed, what)
    return lf


def _is_trailer() -> pl.Expr:
    return pl.col(_TIME).str.strip_chars() == _TRAILER


def _daily_date(source: Source, lf: pl.LazyFrame) -> pl.Expr:
    """Return the file's date: from its name, else from its ``END`` trailer (reads the file)."""
    text = name_date(source.name)
    if text is None:
        found = lf.filter(_is_trailer()).select(pl.col(_EXCHANGE).str.strip_chars()).collect()
        dates = [d for d in found.to_series().to_list() if d]
        if not dates:
            msg = (
                "no date: the file name has no _YYYYMMDD and there is no END trailer; "
                "rename the file to its original EQY_US_ALL_<TYPE>_YYYYMMDD name"
            )
            raise ReaderError(msg, path=source.display)
        text = str(dates[0])
    return pl.lit(text).str.to_date("%Y%m%d", strict=True)


def _daily_common(
    source: Source, lf: pl.LazyFrame, options: ReadOptions, *, venue: bool = True
) -> list[pl.Expr]:
    present = lf.collect_schema().names()
    day = _daily_date(source, lf)
    return [
        new_york_to_utc(day, pl.col(_PARSED_NS)).alias(TS),
        _event_time(day, present).alias(TS_EVENT),
        _symbol(pl.col(_SYMBOL), options).alias(SYMBOL),
        *([_exchange(present, _EXCHANGE)] if venue else []),
    ]


def read_daily_trades(source: Source, options: ReadOptions) -> Frames:
    """Read a NYSE Daily TAQ ``EQY_US_ALL_TRADE_YYYYMMDD`` file into canonical trades.

    Parameters
    ----------
    source
        The file (plain or gzip), pipe-separated, with its ``END`` trailer.
    options
        ``symbol`` fills empty ``Symbol`` cells.

    Returns
    -------
    Frames
        ``trades`` only: ``ts`` = date + ``Time`` New York → UTC, ``ts_event`` =
        ``Participant Timestamp`` (null when empty), ``exchange`` = ``Exchange``, ``symbol`` =
        ``Symbol``, ``size`` = ``Trade Volume``, ``price`` = ``Trade Price``,
        ``aggressor_side`` 0, ``trade_id`` = ``Sequence Number``, ``conditions`` = ``Sale
        Condition`` without spaces, ``correction`` = ``Trade Correction Indicator``.

    Raises
    ------
    ReaderError
        When the file is empty, lacks a trades column, or its date cannot be found.
    """
    lf = _scan_daily(source, _DAILY_TRADES_NEEDED, "Daily TAQ trades")
    present = lf.collect_schema().names()
    canonical = lf.filter(~_is_trailer()).select(
        *_daily_common(source, lf, options),
        _number(_TRADE_PRICE).alias(PRICE),
        _number(_TRADE_VOLUME).alias(SIZE),
        pl.lit(0, dtype=pl.Int8).alias(AGGRESSOR_SIDE),
        _text_or_null(present, _SEQUENCE_NUMBER).alias(TRADE_ID),
        _compact_code(present, _SALE_CONDITION).alias(CONDITIONS),
        _text_or_null(present, _TRADE_CORRECTION).alias(CORRECTION),
    )
    return Frames(trades=conform(canonical, TRADES, what=source.display))


def _read_daily_quote_rows(
    source: Source,
    options: ReadOptions,
    columns: tuple[str, str, str, str],
    round_lot: int,
    what: str,
    *,
    venue: bool,
) -> Frames:
    round_lot = options.round_lot if options.round_lot is not None else round_lot
    _check_round_lot(round_lot)
    bid, bid_size, ask, ask_size = columns
    lf = _scan_daily(source, (_TIME, _EXCHANGE, _SYMBOL, *columns), what)
    present = lf.collect_schema().names()
    bid_price, bid_shares = _quote_side(bid, bid_size, round_lot)
    ask_price, ask_shares = _quote_side(ask, ask_size, round_lot)
    canonical = lf.filter(~_is_trailer()).select(
        *_daily_common(source, lf, options, venue=venue),
        bid_price.alias(BID_PRICE),
        bid_shares.alias(BID_SIZE),
        ask_price.alias(ASK_PRICE),
        ask_shares.alias(ASK_SIZE),
        _compact_code(present, _QUOTE_CONDITION).alias(CONDITIONS),
    )
    return Frames(quotes=conform(canonical, QUOTES, what=source.display))


def read_daily_quotes(
    source: Source, options: ReadOptions, *, round_lot: int = ROUND_LOT
) -> Frames:
    """Read a NYSE Daily TAQ ``EQY_US_ALL_BBO_YYYYMMDD`` (exchange quotes) file.

    Parameters
    ----------
    source
        The file (plain or gzip), pipe-separated, with its ``END`` trailer.
    options
        ``symbol`` fills empty ``Symbol`` cells.
    round_lot
        Shares per round lot: ``Bid_Size`` and ``Offer_Size`` are multiplied by it.

    Returns
    -------
    Frames
        ``quotes`` only: ``Bid_Price``/``Bid_Size``, ``Offer_Price``/``Offer_Size`` (a side with
        price or size 0 is null), ``conditions`` = ``Quote_Condition``; clocks, symbol and exchange
        as :func:`read_daily_trades`.

    Raises
    ------
    ReaderError
        When the file is empty, lacks a quotes column, or its date cannot be found.
    ParameterError
        When ``round_lot`` is not positive.
    """
    columns = (_BID_PRICE, _BID_SIZE, _OFFER_PRICE, _OFFER_SIZE)
    return _read_daily_quote_rows(
        source, options, columns, round_lot, "Daily TAQ quotes", venue=True
    )


def read_daily_nbbo(source: Source, options: ReadOptions, *, round_lot: int = ROUND_LOT) -> Frames:
    """Read a NYSE Daily TAQ ``EQY_US_ALL_NBBO_YYYYMMDD`` file: the national best bid and offer.

    Parameters
    ----------
    source
        The file (plain or gzip), pipe-separated, with its ``END`` trailer.
    options
        ``symbol`` fills empty ``Symbol`` cells.
    round_lot
        Shares per round lot: ``Best_Bid_Size`` and ``Best_Offer_Size`` are multiplied by it.

    Returns
    -------
    Frames
        ``quotes`` only, from ``Best_Bid_Price``/``Best_Bid_Size`` and
        ``Best_Offer_Price``/``Best_Offer_Size``. There is no ``exchange`` column: the national
        best bid and offer are consolidated across exchanges (``Exchange`` only names the
        exchange whose quote triggered the update), so cleaning rule P3 does not apply.
        Otherwise as :func:`read_daily_quotes`.

    Raises
    ------
    ReaderError
        When the file is empty, lacks an NBBO column, or its date cannot be found.
    ParameterError
        When ``round_lot`` is not positive.
    """
    return _read_daily_quote_rows(
        source, options, _NBBO_COLUMNS, round_lot, "Daily TAQ NBBO", venue=False
    )


# --- findings for `mmflow inspect` -----------------------------------------------------------


@dataclass(frozen=True)
class _Trailer:
    rows: int
    trailers: int
    count: str | None
    date: str | None


def _trailer(source: Source) -> _Trailer:
    # The trailer is END|YYYYMMDD|<rows>|…: its date and count sit under Exchange and Symbol.
    lf = _scan_daily(source, (_TIME, _EXCHANGE, _SYMBOL), "Daily TAQ")
    count = pl.col(_SYMBOL)
    date = pl.col(_EXCHANGE)
    row = (
        lf.select(
            (~_is_trailer()).sum().alias("rows"),
            _is_trailer().sum().alias("trailers"),
            count.filter(_is_trailer()).first().str.strip_chars().alias("count"),
            date.filter(_is_trailer()).first().str.strip_chars().alias("date"),
        )
        .collect()
        .row(0, named=True)
    )
    return _Trailer(int(row["rows"] or 0), int(row["trailers"] or 0), row["count"], row["date"])


def _trailer_findings(source: Source) -> list[str]:
    trailer = _trailer(source)
    if trailer.trailers == 0:
        return ["no END trailer: the file may be truncated (re-download it)"]
    findings: list[str] = []
    if trailer.count is None or not trailer.count.isdigit():
        findings.append(f"END trailer has no row count (found {trailer.count!r})")
    elif int(trailer.count) != trailer.rows:
        findings.append(
            f"END trailer says {int(trailer.count):,} rows but the file has {trailer.rows:,} "
            "(truncated or altered file; re-download it)"
        )
    named = name_date(source.name)
    if named is not None and trailer.date != named:
        findings.append(f"END trailer date {trailer.date} differs from the file name's {named}")
    return findings


def _summarise(cleaned: Cleaned, what: str) -> list[str]:
    per_rule = cleaned.dropped.group_by(RULE, maintain_order=True).agg(pl.col(ROWS_DROPPED).sum())
    dropped, kept_rows = pl.collect_all([per_rule, cleaned.frame.select(pl.len())])
    kept = kept_rows.item()
    total = int(dropped[ROWS_DROPPED].sum()) + int(kept)
    findings = [
        f"TAQ cleaning {rule} ({RULE_DESCRIPTIONS[rule]}): {rows:,} of {total:,} {what} "
        "would be dropped"
        for rule, rows in dropped.iter_rows()
        if rows
    ]
    findings.append(
        f"TAQ cleaning (Barndorff-Nielsen et al. 2009) would keep {kept:,} of {total:,} {what}"
    )
    findings.extend(
        f"TAQ cleaning {rule} not applicable: the file has no {_NEEDS[rule]}"
        for rule in cleaned.skipped
        if rule in _NEEDS
    )
    return findings


_NEEDS = {
    "P3": "exchange column (NBBO is consolidated)",
    "T1": "correction column",
    "T2": "sale-condition column",
}


def _cleaning_findings(frames: Frames) -> list[str]:
    findings: list[str] = []
    if frames.trades is not None:
        findings += _summarise(clean_taq_trades(frames.trades), "trades")
    if frames.quotes is not None:
        findings += _summarise(clean_taq_quotes(frames.quotes), "quotes")
    return findings


def _wrds_trades_findings(source: Source, options: ReadOptions) -> list[str]:
    return _cleaning_findings(read_wrds_trades(source, options))


def _wrds_quotes_findings(source: Source, options: ReadOptions) -> list[str]:
    return _cleaning_findings(read_wrds_quotes(source, options))


def _daily_trades_findings(source: Source, options: ReadOptions) -> list[str]:
    return _trailer_findings(source) + _cleaning_findings(read_daily_trades(source, options))


def _daily_quotes_findings(source: Source, options: ReadOptions) -> list[str]:
    return _trailer_findings(source) + _cleaning_findings(read_daily_quotes(source, options))


def _daily_nbbo_findings(source: Source, options: ReadOptions) -> list[str]:
    return _trailer_findings(source) + _cleaning_findings(read_daily_nbbo(source, options))


FORMATS: tuple[Format, ...] = (
    Format(
        "taq-wrds-trades",
        "WRDS Millisecond TAQ trades CSV (ctm: DATE,TIME_M,EX,SYM_ROOT,…,SIZE,PRICE,TR_CORR)",
        read_wrds_trades,
        _sniff_wrds_trades,
        findings=_wrds_trades_findings,
    ),
    Format(
        "taq-wrds-quotes",
        "WRDS Millisecond TAQ quotes CSV (cqm: DATE,TIME_M,EX,SYM_ROOT,…,BID,BIDSIZ,ASK,ASKSIZ)",
        read_wrds_quotes,
        _sniff_wrds_quotes,
        findings=_wrds_quotes_findings,
    ),
    Format(
        "taq-daily-trades",
        "NYSE Daily TAQ EQY_US_ALL_TRADE_YYYYMMDD (pipe-separated, END trailer)",
        read_daily_trades,
        _sniff_daily_trades,
        findings=_daily_trades_findings,
    ),
    Format(
        "taq-daily-quotes",
        "NYSE Daily TAQ EQY_US_ALL_BBO_YYYYMMDD exchange quotes (pipe-separated)",
        read_daily_quotes,
        _sniff_daily_quotes,
        findings=_daily_quotes_findings,
    ),
    Format(
        "taq-daily-nbbo",
        "NYSE Daily TAQ EQY_US_ALL_NBBO_YYYYMMDD national best bid and offer (Best_Bid_*)",
        read_daily_nbbo,
        _sniff_daily_nbbo,
        findings=_daily_nbbo_findings,
    ),
)
