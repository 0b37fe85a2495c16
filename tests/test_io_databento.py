from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import random
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mmflow.errors import MissingDependencyError, MmflowError, ReaderError
from mmflow.io import detect, read_source
from mmflow.io.formats import Frames, ReadOptions
from mmflow.io.source import Source
from mmflow.schema import QUOTES, TRADES
from tests.conftest import data_path, shared_path

VENDOR = "databento"
ESU4 = "nautilus_trader"
ESU4_MBP1 = f"{ESU4}/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02"
ESU4_TRADES = f"{ESU4}/futures_trades_2024-07-01T23-58_2024-07-02T00-02"
DATASETS = ("EQUS.MINI", "GLBX.MDP3", "IFEU.IMPACT", "NDEX.IMPACT", "OPRA.PILLAR", "XNAS.ITCH")
WITH_BBO_1S = ("EQUS.MINI", "GLBX.MDP3", "IFEU.IMPACT", "NDEX.IMPACT")
SMALL = tuple(
    f"databento-python/{ds}/test_data.{schema}"
    for ds in DATASETS
    for schema in ("trades", "tbbo", "mbp-1", *(("bbo-1s",) if ds in WITH_BBO_1S else ()))
)
STEMS = (ESU4_MBP1, ESU4_TRADES, *SMALL)
FORMATS = ("dbn.zst", "csv")

TRADES_HEADER = (
    "ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,depth,price,size,flags,"
    "ts_in_delta,sequence,symbol"
)
MBP1_HEADER = (
    "ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,depth,price,size,flags,"
    "ts_in_delta,sequence,bid_px_00,ask_px_00,bid_sz_00,ask_sz_00,bid_ct_00,ask_ct_00,symbol"
)


# --- helpers ------------------------------------------------------------------------------------


def fixture(stem: str, suffix: str) -> Path:
    return data_path(VENDOR, f"{stem}.{suffix}")


def readable(stem: str, suffix: str) -> Path:
    """A fixture to read; DBN ones skip the test when the optional dbn extra is missing."""
    if suffix.startswith("dbn"):
        pytest.importorskip("databento_dbn")
    return fixture(stem, suffix)


def read(path: Path, fmt: str = "auto", symbol: str | None = None) -> Frames:
    return read_source(Source(path, str(path)), fmt, ReadOptions(symbol=symbol)).frames


def collect(lf: pl.LazyFrame | None) -> pl.DataFrame:
    assert lf is not None
    return lf.collect()


def ns(frame: pl.DataFrame, column: str) -> list[int | None]:
    return frame[column].dt.epoch("ns").to_list()


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def sides(frame: pl.DataFrame) -> dict[int, int]:
    return dict(Counter(frame["aggressor_side"].to_list()))


def has_dbn() -> bool:
    try:
        import databento_dbn  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def dbn() -> Any:
    """The optional ``databento_dbn`` module (tests that need it skip without the dbn extra)."""
    return pytest.importorskip("databento_dbn")


def write_dbn(
    dbn: Any,
    path: Path,
    schema: str,
    records: list[Any],
    *,
    mappings: list[tuple[str, dt.date, dt.date, int]] | None = None,
    ts_out: bool = False,
) -> Path:
    """Write an uncompressed DBN v3 file: metadata, then ``records``."""
    by_symbol: dict[str, list[SimpleNamespace]] = {}
    for raw_symbol, start, end, instrument_id in mappings or []:
        interval = SimpleNamespace(start_date=start, end_date=end, symbol=str(instrument_id))
        by_symbol.setdefault(raw_symbol, []).append(interval)
    meta = dbn.Metadata(
        "GLBX.MDP3",
        1_704_067_200_000_000_000,
        dbn.SType.from_str("raw_symbol"),
        dbn.SType.from_str("instrument_id"),
        dbn.Schema.from_str(schema),
        symbols=list(by_symbol),
        mappings=[SimpleNamespace(raw_symbol=k, intervals=v) for k, v in by_symbol.items()],
        end=1_704_326_400_000_000_000,
        ts_out=ts_out,
    )
    path.write_bytes(meta.encode() + b"".join(bytes(r) for r in records))
    return path


def transcode_csv(
    dbn: Any, dbn_path: Path, csv_path: Path, *, pretty_px: bool = False, pretty_ts: bool = False
) -> Path:
    """Write the records of a DBN file in Databento's CSV encoding, as Databento's tools do."""
    decoder = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    decoder.write(Source(dbn_path, str(dbn_path)).read_bytes())
    records = decoder.decode()
    body = records[0].encode() + b"".join(bytes(r) for r in records[1:])
    out = io.BytesIO()
    transcoder = dbn.Transcoder(
        out,
        dbn.Encoding.CSV,
        dbn.Compression.NONE,
        pretty_px=pretty_px,
        pretty_ts=pretty_ts,
        map_symbols=True,
    )
    transcoder.write(body)
    transcoder.flush()
    csv_path.write_bytes(out.getvalue())
    return csv_path


def trade(dbn: Any, ts: int, side: str, *, price: int = 100_250_000_000, **kw: Any) -> Any:
    return dbn.TradeMsg(
        publisher_id=1,
        instrument_id=kw.pop("instrument_id", 7),
        ts_event=ts - 1_000,
        price=price,
        size=kw.pop("size", 3),
        action=dbn.Action.from_str("T"),
        side=dbn.Side.from_str(side),
        depth=0,
        ts_recv=ts,
        sequence=kw.pop("sequence", 1),
        **kw,
    )


def assert_same_frames(a: Frames, b: Frames) -> None:
    """Trades and quotes equal; a frame one reader leaves out must be empty in the other."""
    for name in ("trades", "quotes"):
        left, right = getattr(a, name), getattr(b, name)
        if left is None or right is None:
            other = right if left is None else left
            assert other is None or other.collect().height == 0, name
            continue
        assert_frame_equal(left.collect(), right.collect())


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", STEMS)
def test_detect_every_fixture(stem: str) -> None:
    for suffix, name in (("dbn.zst", "dbn"), ("csv", "databento-csv")):
        path = fixture(stem, suffix)
        assert detect(Source(path, str(path))).name == name


def test_detect_uncompressed_dbn_and_gzipped_csv(tmp_path: Path) -> None:
    plain = tmp_path / "esu4.dbn"
    plain.write_bytes(Source(fixture(ESU4_MBP1, "dbn.zst"), "x").read_bytes())
    assert plain.read_bytes()[:4] == b"DBN\x01"
    assert detect(Source(plain, str(plain))).name == "dbn"
    gz = tmp_path / "esu4.csv.gz"
    gz.write_bytes(gzip.compress(fixture(ESU4_MBP1, "csv").read_bytes()))
    assert detect(Source(gz, str(gz))).name == "databento-csv"
    assert collect(read(gz).trades).height == 120


def test_detect_csv_without_ts_recv(tmp_path: Path) -> None:
    path = tmp_path / "ohlcv.csv"
    path.write_text(
        "ts_event,rtype,publisher_id,instrument_id,open,high,low,close,volume,symbol\n"
        "1609113600000000000,33,1,5482,3702250000000,3702750000000,3702000000000,"
        "3702500000000,100,ESH1\n"
    )
    assert detect(Source(path, str(path))).name == "databento-csv"
    with pytest.raises(ReaderError, match="neither trades nor quotes") as info:
        read(path)
    assert str(path) in str(info.value)


# --- the key property: DBN and CSV give identical frames ----------------------------------------


@pytest.mark.parametrize("stem", STEMS)
def test_dbn_and_csv_give_identical_frames(dbn: Any, stem: str) -> None:
    from_dbn = read(fixture(stem, "dbn.zst"))
    from_csv = read(fixture(stem, "csv"))
    assert_same_frames(from_dbn, from_csv)


@pytest.mark.parametrize("stem", [ESU4_MBP1, "databento-python/EQUS.MINI/test_data.bbo-1s"])
@pytest.mark.parametrize(("pretty_px", "pretty_ts"), [(True, True), (True, False), (False, True)])
def test_pretty_csv_gives_identical_frames(
    dbn: Any, tmp_path: Path, stem: str, pretty_px: bool, pretty_ts: bool
) -> None:
    csv_path = transcode_csv(
        dbn, fixture(stem, "dbn.zst"), tmp_path / "x.csv", pretty_px=pretty_px, pretty_ts=pretty_ts
    )
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(csv_path.read_bytes()))
    assert detect(Source(gz, str(gz))).name == "databento-csv"
    assert_same_frames(read(fixture(stem, "dbn.zst")), read(gz))


def test_pretty_csv_inline(tmp_path: Path) -> None:
    # The same first trade and first quote as the raw ESU4 mbp-1 fixture, with pretty_px/pretty_ts.
    text = (
        f"{MBP1_HEADER}\n"
        "2024-07-01T23:58:01.218485389Z,2024-07-01T23:58:01.218218853Z,1,1,118,T,B,0,"
        "5528.750000000,2,0,17664,9060643,5528.500000000,5528.750000000,29,6,22,3,ESU4\n"
        "2024-07-01T23:58:01.218493289Z,2024-07-01T23:58:01.218218853Z,1,1,118,C,A,0,"
        "5528.750000000,2,130,13133,9060644,5528.500000000,5528.750000000,29,4,22,2,ESU4\n"
        "2024-07-01T23:58:02.000000000Z,,1,1,118,R,N,0,,0,8,0,9060645,,,0,0,0,0,ESU4\n"
    )
    expected = read(fixture(ESU4_MBP1, "csv"))
    pretty = tmp_path / "pretty.csv"
    pretty.write_text(text)
    got = read(pretty)
    assert_frame_equal(collect(got.trades), collect(expected.trades).head(1))
    quotes = collect(got.quotes)
    assert_frame_equal(quotes.head(1), collect(expected.quotes).head(1))
    assert quotes.row(1) == (utc("2024-07-01 23:58:02"), None, "ESU4", None, None, None, None)


# --- ESU4 (CME E-mini S&P 500), 4 minutes ----------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_esu4_mbp1_first_trade_every_column(suffix: str) -> None:
    trades = collect(read(readable(ESU4_MBP1, suffix)).trades)
    assert trades.columns == [
        "ts",
        "ts_event",
        "symbol",
        "price",
        "size",
        "aggressor_side",
        "trade_id",
        "bid_price",
        "bid_size",
        "ask_price",
        "ask_size",
    ]
    first = trades.row(0, named=True)
    assert first == {
        "ts": utc("2024-07-01 23:58:01.218485"),
        "ts_event": utc("2024-07-01 23:58:01.218218"),
        "symbol": "ESU4",
        "price": 5528.75,
        "size": 2.0,
        "aggressor_side": 1,
        "trade_id": "9060643",
        "bid_price": 5528.5,
        "bid_size": 29.0,
        "ask_price": 5528.75,
        "ask_size": 6.0,
    }
    # Python datetimes stop at microseconds; the nanoseconds are pinned on the integers.
    assert ns(trades, "ts")[0] == 1_719_878_281_218_485_389
    assert ns(trades, "ts_event")[0] == 1_719_878_281_218_218_853


@pytest.mark.parametrize("stem", [ESU4_MBP1, ESU4_TRADES])
@pytest.mark.parametrize("suffix", FORMATS)
def test_esu4_trade_and_side_counts(stem: str, suffix: str) -> None:
    trades = collect(read(readable(stem, suffix)).trades)
    assert trades.height == 120
    # README: 66 trades with side B (buyer-initiated), 54 with side A (seller-initiated).
    assert sides(trades) == {1: 66, -1: 54}
    assert trades["symbol"].unique().to_list() == ["ESU4"]
    assert ns(trades, "ts")[-1] == 1_719_878_512_813_670_786
    assert ns(trades, "ts_event")[-1] == 1_719_878_512_813_445_903


@pytest.mark.parametrize("suffix", FORMATS)
def test_esu4_buys_print_at_the_ask_and_sells_at_the_bid(suffix: str) -> None:
    trades = collect(read(readable(ESU4_MBP1, suffix)).trades)
    buys = trades.filter(pl.col("aggressor_side") == 1)
    sells = trades.filter(pl.col("aggressor_side") == -1)
    assert (buys["price"] == buys["ask_price"]).all()
    assert (sells["price"] == sells["bid_price"]).all()
    assert buys.height + sells.height == 120
    assert trades.select(pl.col("bid_price") < pl.col("ask_price")).to_series().all()


@pytest.mark.parametrize("suffix", FORMATS)
def test_esu4_mbp1_quotes_are_the_book_records(suffix: str) -> None:
    quotes = collect(read(readable(ESU4_MBP1, suffix)).quotes)
    assert quotes.height == 2_288 - 120  # A 1,061 + C 989 + M 118
    assert quotes.columns == [
        "ts",
        "ts_event",
        "symbol",
        "bid_price",
        "bid_size",
        "ask_price",
        "ask_size",
    ]
    assert quotes.row(0) == (
        utc("2024-07-01 23:58:01.218493"),
        utc("2024-07-01 23:58:01.218218"),
        "ESU4",
        5528.5,
        29.0,
        5528.75,
        4.0,
    )
    assert ns(quotes, "ts")[0] == 1_719_878_281_218_493_289
    assert ns(quotes, "ts")[-1] == 1_719_878_519_824_434_324
    assert quotes.null_count().sum_horizontal().item() == 0


@pytest.mark.parametrize("suffix", FORMATS)
def test_esu4_trades_file_matches_mbp1_trades(suffix: str) -> None:
    mbp1 = collect(read(readable(ESU4_MBP1, suffix)).trades)
    trades = collect(read(readable(ESU4_TRADES, suffix)).trades)
    assert_frame_equal(trades, mbp1.select(trades.columns))


def test_esu4_kinds(dbn: Any) -> None:
    def kind(stem: str, suffix: str) -> str:
        path = fixture(stem, suffix)
        return read_source(Source(path, str(path))).kind

    assert kind(ESU4_MBP1, "dbn.zst") == "trades+quotes"
    assert kind(ESU4_MBP1, "csv") == "trades+quotes"
    assert kind(ESU4_TRADES, "dbn.zst") == "trades"
    assert kind(ESU4_TRADES, "csv") == "trades"


# --- Databento's small fixtures: edge cases -----------------------------------------------------

SIDE_COUNTS = {  # README: trades and tbbo side counts per dataset (B → +1, A → −1, N → 0)
    "EQUS.MINI": {1: 2, -1: 2},
    "GLBX.MDP3": {1: 3, -1: 1},
    "IFEU.IMPACT": {0: 4},
    "NDEX.IMPACT": {1: 1, 0: 3},
    "OPRA.PILLAR": {0: 4},
    "XNAS.ITCH": {1: 2, -1: 1, 0: 1},
}
SYMBOLS = {
    "EQUS.MINI": "QQQ",
    "GLBX.MDP3": "ESH1",
    "IFEU.IMPACT": "BRN FMJ0024!",
    "NDEX.IMPACT": "TFM FMH0024!",
    "OPRA.PILLAR": "AAPL  250221C00250000",
    "XNAS.ITCH": "NVDA",
}


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("schema", ["trades", "tbbo"])
def test_small_fixture_side_counts_csv(dataset: str, schema: str) -> None:
    trades = collect(read(fixture(f"databento-python/{dataset}/test_data.{schema}", "csv")).trades)
    assert trades.height == 4
    assert sides(trades) == SIDE_COUNTS[dataset]
    assert trades["symbol"].unique().to_list() == [SYMBOLS[dataset]]
    assert trades.schema == pl.Schema({c.name: c.dtype for c in TRADES.columns if c.name in trades})


@pytest.mark.parametrize("dataset", DATASETS)
def test_small_fixture_side_counts_dbn(dbn: Any, dataset: str) -> None:
    for schema in ("trades", "tbbo"):
        path = fixture(f"databento-python/{dataset}/test_data.{schema}", "dbn.zst")
        trades = collect(read(path).trades)
        assert sides(trades) == SIDE_COUNTS[dataset]
        assert trades["symbol"].unique().to_list() == [SYMBOLS[dataset]]


def test_xnas_side_n_is_unknown_not_a_sell() -> None:
    trades = collect(read(fixture("databento-python/XNAS.ITCH/test_data.trades", "csv")).trades)
    assert trades["aggressor_side"].to_list() == [1, 1, -1, 0]
    assert trades["aggressor_side"].dtype == pl.Int8
    assert trades["price"].to_list() == [521.0, 521.0, 521.0, 521.01]


@pytest.mark.parametrize("suffix", FORMATS)
def test_equs_bbo_undefined_ts_event_and_empty_sides_are_null(suffix: str) -> None:
    frames = read(readable("databento-python/EQUS.MINI/test_data.bbo-1s", suffix))
    assert frames.trades is None
    quotes = collect(frames.quotes)
    assert quotes.height == 4
    assert quotes["ts_event"].null_count() == 4
    assert quotes.row(0) == (utc("2023-03-28 09:33:15"), None, "QQQ", None, None, None, None)
    assert quotes.row(1) == (utc("2023-03-28 11:00:01"), None, "QQQ", 307.92, 1500.0, None, None)
    assert quotes["bid_price"].to_list() == [None, 307.92, 307.93, 307.92]


@pytest.mark.parametrize("suffix", FORMATS)
def test_glbx_bbo_uses_ts_recv_and_last_trade_ts_event(suffix: str) -> None:
    quotes = collect(read(readable("databento-python/GLBX.MDP3/test_data.bbo-1s", suffix)).quotes)
    assert ns(quotes, "ts") == [1_609_113_600_000_000_000 + i * 10**9 for i in range(4)]
    assert ns(quotes, "ts_event")[0] == 1_609_113_599_045_849_637
    assert quotes.row(0)[2:] == ("ESH1", 3702.25, 18.0, 3702.75, 13.0)


@pytest.mark.parametrize("schema", ["tbbo", "mbp-1"])
@pytest.mark.parametrize("suffix", FORMATS)
def test_ifeu_trades_against_an_empty_book_have_null_bbo(schema: str, suffix: str) -> None:
    frames = read(readable(f"databento-python/IFEU.IMPACT/test_data.{schema}", suffix))
    trades = collect(frames.trades)
    assert trades.height == 4
    assert trades.select("bid_price", "bid_size", "ask_price", "ask_size").null_count().row(0) == (
        4,
        4,
        4,
        4,
    )
    assert trades["price"].to_list() == [77.61] * 4
    assert trades["size"].to_list() == [1.0, 2.0, 4.0, 3.0]
    assert trades["aggressor_side"].to_list() == [0, 0, 0, 0]
    assert frames.quotes is None or frames.quotes.collect().height == 0


@pytest.mark.parametrize("suffix", FORMATS)
def test_equs_trades_with_the_same_ts_recv_are_both_kept(suffix: str) -> None:
    trades = collect(read(readable("databento-python/EQUS.MINI/test_data.trades", suffix)).trades)
    assert ns(trades, "ts")[2:] == [1_680_001_831_124_072_442] * 2
    assert trades["trade_id"].to_list() == ["77619", "77628", "87442", "87443"]
    assert trades["size"].to_list() == [900.0, 900.0, 700.0, 200.0]


@pytest.mark.parametrize("suffix", FORMATS)
def test_equs_mbp1_clear_record_is_an_empty_book(suffix: str) -> None:
    frames = read(readable("databento-python/EQUS.MINI/test_data.mbp-1", suffix))
    assert collect(frames.trades).height == 0
    quotes = collect(frames.quotes)
    assert quotes.height == 4
    assert quotes.row(0)[2:] == ("QQQ", None, None, None, None)  # action R (clear)
    assert quotes.row(1)[2:] == ("QQQ", None, None, 307.94, 600.0)
    assert quotes.row(3)[2:] == ("QQQ", 307.89, 1500.0, 307.94, 600.0)


def test_tbbo_kind_by_reader(dbn: Any) -> None:
    stem = "databento-python/GLBX.MDP3/test_data.tbbo"
    dbn_path, csv_path = fixture(stem, "dbn.zst"), fixture(stem, "csv")
    # DBN knows the schema (tbbo); the lazy CSV reader only sees mbp-1 columns, so it also
    # returns quotes, which are empty because every tbbo record is a trade.
    assert read_source(Source(dbn_path, str(dbn_path))).kind == "trades+bbo"
    assert read(dbn_path).quotes is None
    assert collect(read(csv_path).quotes).height == 0


def test_tbbo_first_trade_pre_trade_bbo() -> None:
    trades = collect(read(fixture("databento-python/GLBX.MDP3/test_data.tbbo", "csv")).trades)
    assert trades.row(0, named=True) == {
        "ts": utc("2020-12-28 00:00:00.246821"),
        "ts_event": utc("2020-12-28 00:00:00.246507"),
        "symbol": "ESH1",
        "price": 3702.75,
        "size": 1.0,
        "aggressor_side": 1,
        "trade_id": "145885",
        "bid_price": 3702.5,
        "bid_size": 8.0,
        "ask_price": 3702.75,
        "ask_size": 8.0,
    }


@pytest.mark.parametrize("suffix", FORMATS)
def test_symbol_option_never_relabels_mapped_symbols(suffix: str) -> None:
    frames = read(readable(ESU4_MBP1, suffix), symbol="ES")
    assert collect(frames.trades)["symbol"].unique().to_list() == ["ESU4"]
    assert collect(frames.quotes)["symbol"].unique().to_list() == ["ESU4"]


# --- inline and synthesized files ---------------------------------------------------------------


def test_inline_csv_one_buy_one_sell_one_unknown(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        f"{TRADES_HEADER}\n"
        "1609113600000000001,1609113600000000000,0,1,5482,T,B,0,3702750000000,1,0,0,11,ESH1\n"
        "1609113600000000002,1609113600000000000,0,1,5482,T,A,0,3702500000000,2,0,0,12,ESH1\n"
        "1609113600000000003,1609113600000000000,0,1,5482,T,N,0,3702500000000,3,0,0,13,ESH1\n"
    )
    trades = collect(read(path).trades)
    assert trades["aggressor_side"].to_list() == [1, -1, 0]
    assert trades["price"].to_list() == [3702.75, 3702.5, 3702.5]
    assert trades["size"].to_list() == [1.0, 2.0, 3.0]


def test_prices_are_the_nearest_float_to_the_decimal_price(tmp_path: Path) -> None:
    rng = random.Random(20240701)
    raw = [rng.randrange(-(10**16), 10**16) for _ in range(2_000)] + [5528750000000, 307890000000]
    header = TRADES_HEADER.removesuffix(",symbol")
    row = "1609113600000000001,1609113600000000000,0,1,5482,T,B,0,{},1,0,0,1"
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("\n".join([header, *(row.format(p) for p in raw)]) + "\n")
    decimal = tmp_path / "decimal.csv"  # pretty_px: the same prices as decimal text
    pretty = [f"{'-' if p < 0 else ''}{abs(p) // 10**9}.{abs(p) % 10**9:09d}" for p in raw]
    decimal.write_text("\n".join([header, *(row.format(p) for p in pretty)]) + "\n")
    expected = [p / 10**9 for p in raw]  # int / int: correctly rounded
    assert collect(read(fixed).trades)["price"].to_list() == expected
    assert collect(read(decimal).trades)["price"].to_list() == expected


def test_inline_csv_without_symbol_column_uses_instrument_id(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    header = TRADES_HEADER.removesuffix(",symbol")
    path.write_text(f"{header}\n1609113600000000001,1609113600000000000,0,1,5482,T,B,0,1,1,0,0,1\n")
    trades = collect(read(path).trades)
    assert trades["symbol"].to_list() == ["5482"]
    assert trades["price"].to_list() == [1e-9]


def test_inline_mbo_csv_counts_trades_not_fills(tmp_path: Path) -> None:
    path = tmp_path / "mbo.csv"
    path.write_text(
        "ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,price,size,channel_id,"
        "order_id,flags,ts_in_delta,sequence,symbol\n"
        "1609113600000000000,1609099225061045683,160,1,5482,A,B,3675750000000,2,0,1,40,0,1,ESH1\n"
        "1609113600000000001,1609113600000000000,160,1,5482,T,A,3675750000000,2,0,0,0,0,2,ESH1\n"
        "1609113600000000001,1609113600000000000,160,1,5482,F,B,3675750000000,2,0,1,0,0,3,ESH1\n"
    )
    frames = read(path)
    assert frames.quotes is None
    trades = collect(frames.trades)
    assert trades["aggressor_side"].to_list() == [-1]
    assert trades["trade_id"].to_list() == ["2"]


def test_header_only_csv_gives_empty_canonical_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(MBP1_HEADER + "\n")
    frames = read(path)
    trades, quotes = collect(frames.trades), collect(frames.quotes)
    assert trades.height == quotes.height == 0
    unset = {"venue", "exchange", "conditions", "correction"}
    assert trades.columns == [c.name for c in TRADES.columns if c.name not in unset]
    assert quotes.columns == [c.name for c in QUOTES.columns if c.name not in unset]


def test_synthetic_dbn_one_buy_one_sell_matches_csv(dbn: Any, tmp_path: Path) -> None:
    records = [
        trade(dbn, 1_704_067_200_000_000_005, "B", sequence=1),
        trade(dbn, 1_704_067_200_000_000_006, "A", sequence=2),
    ]
    mapping = [("ESH4", dt.date(2024, 1, 1), dt.date(2024, 1, 2), 7)]
    path = write_dbn(dbn, tmp_path / "t.dbn", "trades", records, mappings=mapping)
    assert detect(Source(path, str(path))).name == "dbn"
    trades = collect(read(path).trades)
    assert trades["aggressor_side"].to_list() == [1, -1]
    assert trades["symbol"].to_list() == ["ESH4", "ESH4"]
    assert trades["price"].to_list() == [100.25, 100.25]
    assert ns(trades, "ts_event") == [1_704_067_199_999_999_005, 1_704_067_199_999_999_006]
    assert_same_frames(read(path), read(transcode_csv(dbn, path, tmp_path / "t.csv")))


def test_synthetic_dbn_symbols_follow_mapping_intervals(dbn: Any, tmp_path: Path) -> None:
    day = 86_400 * 10**9
    t0 = 1_704_067_200_000_000_000  # 2024-01-01
    records = [trade(dbn, t0 + i * day + 5, "B", sequence=i) for i in range(3)]
    mapping = [
        ("ESH4", dt.date(2024, 1, 1), dt.date(2024, 1, 2), 7),  # end dates are exclusive
        ("ES.c.0", dt.date(2024, 1, 2), dt.date(2024, 1, 3), 7),
    ]
    path = write_dbn(dbn, tmp_path / "t.dbn", "trades", records, mappings=mapping, ts_out=False)
    trades = collect(read(path).trades)
    assert trades["symbol"].to_list() == ["ESH4", "ES.c.0", "7"]  # no mapping on day 3
    assert_same_frames(read(path), read(transcode_csv(dbn, path, tmp_path / "t.csv")))


def test_synthetic_dbn_with_ts_out(dbn: Any, tmp_path: Path) -> None:
    t0 = 1_704_067_200_000_000_000
    records = [trade(dbn, t0 + 5, "A", ts_out=t0 + 100)]
    path = write_dbn(dbn, tmp_path / "t.dbn", "trades", records, ts_out=True)
    trades = collect(read(path).trades)
    assert trades["aggressor_side"].to_list() == [-1]
    assert trades["symbol"].to_list() == ["7"]
    assert_same_frames(read(path), read(transcode_csv(dbn, path, tmp_path / "t.csv")))


def test_synthetic_mbp10_uses_level_zero(dbn: Any, tmp_path: Path) -> None:
    t0 = 1_704_067_200_000_000_000
    levels = [
        dbn.BidAskPair(100_000_000_000 - i, 101_000_000_000 + i, 10 + i, 20 + i) for i in range(10)
    ]
    common = {"publisher_id": 1, "instrument_id": 7, "depth": 0, "levels": levels, "size": 1}
    records = [
        dbn.MBP10Msg(
            ts_event=t0,
            ts_recv=t0 + 1,
            price=101_000_000_000,
            action=dbn.Action.from_str("T"),
            side=dbn.Side.from_str("B"),
            sequence=1,
            **common,
        ),
        dbn.MBP10Msg(
            ts_event=t0,
            ts_recv=t0 + 2,
            price=101_000_000_000,
            action=dbn.Action.from_str("C"),
            side=dbn.Side.from_str("A"),
            sequence=2,
            **common,
        ),
    ]
    path = write_dbn(dbn, tmp_path / "t.dbn", "mbp-10", records)
    frames = read(path)
    trades = collect(frames.trades)
    assert trades.row(0)[2:] == ("7", 101.0, 1.0, 1, "1", 100.0, 10.0, 101.0, 20.0)
    assert collect(frames.quotes).row(0)[2:] == ("7", 100.0, 10.0, 101.0, 20.0)
    csv_path = transcode_csv(dbn, path, tmp_path / "t.csv")
    assert "bid_px_09" in csv_path.read_text().splitlines()[0]
    assert_same_frames(frames, read(csv_path))


def test_synthetic_mbo_dbn_excludes_fills(dbn: Any, tmp_path: Path) -> None:
    t0 = 1_704_067_200_000_000_000

    def mbo(action: str, side: str, sequence: int) -> Any:
        return dbn.MBOMsg(
            publisher_id=1,
            instrument_id=7,
            ts_event=t0,
            order_id=sequence,
            price=100_000_000_000,
            size=2,
            action=dbn.Action.from_str(action),
            side=dbn.Side.from_str(side),
            ts_recv=t0 + sequence,
            sequence=sequence,
        )

    path = write_dbn(
        dbn, tmp_path / "t.dbn", "mbo", [mbo("A", "B", 1), mbo("T", "A", 2), mbo("F", "B", 3)]
    )
    frames = read(path)
    assert frames.quotes is None
    assert collect(frames.trades)["aggressor_side"].to_list() == [-1]
    assert_same_frames(frames, read(transcode_csv(dbn, path, tmp_path / "t.csv")))


def test_metadata_only_dbn_gives_empty_frames(dbn: Any, tmp_path: Path) -> None:
    path = write_dbn(dbn, tmp_path / "t.dbn", "mbp-1", [])
    frames = read(path)
    assert collect(frames.trades).height == 0
    assert collect(frames.quotes).height == 0


# --- errors -------------------------------------------------------------------------------------


def assert_one_line(error: MmflowError, path: Path) -> None:
    text = str(error)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")


def test_missing_databento_dbn_raises_with_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "databento_dbn", None)
    path = fixture(ESU4_TRADES, "dbn.zst")
    with pytest.raises(MissingDependencyError) as info:
        read(path)
    assert "pip install" in str(info.value)
    assert "mmflow[dbn]" in str(info.value)
    assert_one_line(info.value, path)
    # The CSV encoding needs nothing extra.
    assert collect(read(fixture(ESU4_TRADES, "csv")).trades).height == 120


def test_empty_csv_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ReaderError, match="empty") as info:
        read(path, "databento-csv")
    assert_one_line(info.value, path)
    with pytest.raises(MmflowError) as auto:
        read(path)
    assert_one_line(auto.value, path)


def test_empty_dbn_raises(dbn: Any, tmp_path: Path) -> None:
    path = tmp_path / "empty.dbn"
    path.write_bytes(b"")
    with pytest.raises(ReaderError, match="empty") as info:
        read(path, "dbn")
    assert_one_line(info.value, path)


@pytest.mark.parametrize(("drop", "header"), [("side", TRADES_HEADER), ("ask_sz_00", MBP1_HEADER)])
def test_missing_column_raises(tmp_path: Path, drop: str, header: str) -> None:
    columns = header.split(",")
    kept = [c for c in columns if c != drop]
    source = fixture(ESU4_TRADES if header == TRADES_HEADER else ESU4_MBP1, "csv")
    rows = list(csv.reader(source.read_text().splitlines()[:4]))
    path = tmp_path / "missing.csv"
    path.write_text("\n".join(",".join(r[columns.index(c)] for c in kept) for r in rows) + "\n")
    assert detect(Source(path, str(path))).name == "databento-csv"
    with pytest.raises(ReaderError, match=f"missing column\\(s\\) {drop}") as info:
        read(path)
    assert_one_line(info.value, path)


def test_bbo_csv_missing_level_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "bbo.csv"
    path.write_text(
        "ts_recv,ts_event,rtype,publisher_id,instrument_id,side,price,size,flags,sequence,"
        "bid_px_00,ask_px_00,bid_sz_00\n"
        "1609113600000000000,1609113599045849637,195,1,5482,A,1,2,168,145799,1,2,18\n"
    )
    with pytest.raises(ReaderError, match="ask_sz_00") as info:
        read(path)
    assert_one_line(info.value, path)


def test_truncated_dbn_raises(dbn: Any, tmp_path: Path) -> None:
    raw = Source(fixture(ESU4_MBP1, "dbn.zst"), "x").read_bytes()
    for cut, message in ((len(raw) - 7, "truncated"), (100, "cannot decode DBN")):
        path = tmp_path / f"cut{cut}.dbn"
        path.write_bytes(raw[:cut])
        with pytest.raises(ReaderError, match=message) as info:
            read(path, "dbn")
        assert_one_line(info.value, path)


def test_not_dbn_raises(dbn: Any, tmp_path: Path) -> None:
    path = tmp_path / "x.dbn"
    path.write_text("hello world\n")
    with pytest.raises(ReaderError, match="not a DBN file") as info:
        read(path, "dbn")
    assert_one_line(info.value, path)


def test_dbn_schema_without_trades_or_quotes_raises(dbn: Any, tmp_path: Path) -> None:
    bar = dbn.OHLCVMsg(
        rtype=33,  # ohlcv-1s
        publisher_id=1,
        instrument_id=7,
        ts_event=1_704_067_200_000_000_000,
        open=1,
        high=2,
        low=1,
        close=2,
        volume=5,
    )
    path = write_dbn(dbn, tmp_path / "bars.dbn", "ohlcv-1s", [bar])
    with pytest.raises(ReaderError, match="ohlcv-1s") as info:
        read(path)
    assert_one_line(info.value, path)


# --- the full shared files (skipped when ../shared is absent) -----------------------------------


def raw_facts(path: Path) -> dict[str, Any]:
    """Independent oracle: count records with the csv module, no polars, no mmflow."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    has_action = "action" in rows[0]
    trades = [r for r in rows if has_action and r["action"] == "T"]
    book = (
        [r for r in rows if has_action and r["action"] in "ACMR"] if "bid_px_00" in rows[0] else []
    )
    if not has_action:
        book = rows
    side = Counter({"B": 1, "A": -1}.get(r["side"], 0) for r in trades)
    return {
        "records": len(rows),
        "trades": len(trades),
        "quotes": len(book),
        "sides": dict(side),
        "trade_ts": (int(trades[0]["ts_recv"]), int(trades[-1]["ts_recv"])) if trades else None,
        "quote_ts": (int(book[0]["ts_recv"]), int(book[-1]["ts_recv"])) if book else None,
    }


def read_facts(frames: Frames) -> dict[str, Any]:
    trades = frames.trades.collect() if frames.trades is not None else pl.DataFrame()
    quotes = frames.quotes.collect() if frames.quotes is not None else pl.DataFrame()
    return {
        "trades": trades.height,
        "quotes": quotes.height,
        "sides": sides(trades) if trades.height else {},
        "trade_ts": (ns(trades, "ts")[0], ns(trades, "ts")[-1]) if trades.height else None,
        "quote_ts": (ns(quotes, "ts")[0], ns(quotes, "ts")[-1]) if quotes.height else None,
    }


@pytest.mark.parametrize("stem", STEMS)
def test_shared_files_match_the_raw_records(stem: str) -> None:
    csv_path = shared_path(VENDOR, f"{stem}.csv")
    expected = raw_facts(csv_path)
    got = read_facts(read(csv_path))
    # Every record is a trade or a book update: nothing is dropped silently.
    assert got["trades"] + got["quotes"] == expected.pop("records")
    assert got == expected
    if has_dbn():
        assert read_facts(read(shared_path(VENDOR, f"{stem}.dbn.zst"))) == got


def test_shared_esu4_readme_facts() -> None:
    mbp1 = read(shared_path(VENDOR, f"{ESU4_MBP1}.csv"))
    trades, quotes = collect(mbp1.trades), collect(mbp1.quotes)
    assert (trades.height, quotes.height) == (120, 2_168)
    assert sides(trades) == {1: 66, -1: 54}
    first = min(trades["ts"].min(), quotes["ts"].min())  # type: ignore[type-var]
    last = max(trades["ts"].max(), quotes["ts"].max())  # type: ignore[type-var]
    assert str(first).startswith("2024-07-01 23:58:01.218")
    assert str(last).startswith("2024-07-02 00:01:59.824")
    only_trades = collect(read(shared_path(VENDOR, f"{ESU4_TRADES}.csv")).trades)
    assert only_trades.height == 120
    assert sides(only_trades) == {1: 66, -1: 54}
    assert str(only_trades["ts"][0]).startswith("2024-07-01 23:58:01.218")
    assert str(only_trades["ts"][-1]).startswith("2024-07-02 00:01:52.813")


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("suffix", FORMATS)
def test_committed_fixtures_are_byte_identical_to_shared(stem: str, suffix: str) -> None:
    assert (
        fixture(stem, suffix).read_bytes() == shared_path(VENDOR, f"{stem}.{suffix}").read_bytes()
    )
