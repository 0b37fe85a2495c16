from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import MmflowError, SchemaError
from mmflow.schema import QUOTES, TRADES, asof_keys, conform, instrument_keys, require
from tests.helpers import BOOK_COLUMNS, canonical_schema

UTC_NS = pl.Datetime("ns", "UTC")
T0 = datetime(2024, 7, 19, 0, 0, 0, 123456, tzinfo=UTC)

TRADES_REQUIRED_SCHEMA = pl.Schema(
    {
        "ts": UTC_NS,
        "symbol": pl.String(),
        "price": pl.Float64(),
        "size": pl.Float64(),
        "aggressor_side": pl.Int8(),
    }
)


def _raw_trades(**extra: list[object]) -> pl.LazyFrame:
    """Two trades with canonical names but loose dtypes (Int64 size, Int64 side)."""
    columns: dict[str, list[object]] = {
        "ts": [T0, T0],
        "symbol": ["BTCUSDT", "BTCUSDT"],
        "price": [64000.5, 64001.0],
        "size": [3, 7],
        "aggressor_side": [1, -1],
    }
    columns.update(extra)
    return pl.LazyFrame(columns).with_columns(pl.col("ts").cast(UTC_NS))


# --- the canonical column lists (literal strings on purpose: they check the spelling) ---------


def test_trades_schema_names_dtypes_and_required_flags_match_product_md() -> None:
    assert [(c.name, c.dtype, c.required) for c in TRADES.columns] == [
        ("ts", pl.Datetime("ns", "UTC"), True),
        ("ts_event", pl.Datetime("ns", "UTC"), False),
        ("symbol", pl.String(), True),
        ("venue", pl.String(), False),
        ("exchange", pl.String(), False),  # issue 9: the reporting exchange of a tape
        ("price", pl.Float64(), True),
        ("size", pl.Float64(), True),
        ("aggressor_side", pl.Int8(), True),
        ("trade_id", pl.String(), False),
        ("bid_price", pl.Float64(), False),
        ("bid_size", pl.Float64(), False),
        ("ask_price", pl.Float64(), False),
        ("ask_size", pl.Float64(), False),
        ("conditions", pl.String(), False),
        ("correction", pl.String(), False),
    ]
    assert TRADES.name == "trades"
    assert TRADES.required == ["ts", "symbol", "price", "size", "aggressor_side"]


def test_quotes_schema_names_dtypes_and_required_flags_match_product_md() -> None:
    assert [(c.name, c.dtype, c.required) for c in QUOTES.columns] == [
        ("ts", pl.Datetime("ns", "UTC"), True),
        ("ts_event", pl.Datetime("ns", "UTC"), False),
        ("symbol", pl.String(), True),
        ("venue", pl.String(), False),
        ("exchange", pl.String(), False),  # issue 9: the reporting exchange of a tape
        ("bid_price", pl.Float64(), True),
        ("bid_size", pl.Float64(), True),
        ("ask_price", pl.Float64(), True),
        ("ask_size", pl.Float64(), True),
        ("conditions", pl.String(), False),
    ]
    assert QUOTES.name == "quotes"
    assert QUOTES.required == ["ts", "symbol", "bid_price", "bid_size", "ask_price", "ask_size"]


def test_table_schema_dtype_of_unknown_column_raises_key_error() -> None:
    assert TRADES.dtype("aggressor_side") == pl.Int8()
    with pytest.raises(KeyError, match="nope is not a column of the canonical quotes schema"):
        QUOTES.dtype("nope")


# --- conform ----------------------------------------------------------------------------------


def test_conform_casts_int_size_to_float64_and_side_to_int8() -> None:
    out = conform(_raw_trades(), TRADES).collect()
    assert out.schema == TRADES_REQUIRED_SCHEMA
    assert out["size"].to_list() == [3.0, 7.0]
    assert out["aggressor_side"].to_list() == [1, -1]


def test_conform_selects_canonical_order_whatever_the_input_order() -> None:
    shuffled = _raw_trades(trade_id=["a", "b"], venue=["binance", "binance"]).select(
        "trade_id", "aggressor_side", "size", "venue", "price", "symbol", "ts"
    )
    out = conform(shuffled, TRADES).collect()
    assert out.columns == ["ts", "symbol", "venue", "price", "size", "aggressor_side", "trade_id"]
    assert out.row(0) == (T0, "BTCUSDT", "binance", 64000.5, 3.0, 1, "a")


def test_conform_drops_non_canonical_columns() -> None:
    out = conform(_raw_trades(extra=[1, 2], other=["x", "y"]), TRADES).collect()
    assert out.columns == ["ts", "symbol", "price", "size", "aggressor_side"]


def test_conform_keeps_optional_columns_only_when_present() -> None:
    with_bbo = _raw_trades(bid_price=[1.0, 2.0], ask_size=[5, 6])
    assert conform(with_bbo, TRADES).collect_schema().names() == [
        "ts",
        "symbol",
        "price",
        "size",
        "aggressor_side",
        "bid_price",
        "ask_size",
    ]
    assert conform(with_bbo, TRADES).collect()["ask_size"].to_list() == [5.0, 6.0]
    assert "bid_price" not in conform(_raw_trades(), TRADES).collect_schema()


def test_conform_converts_other_datetime_unit_to_ns_utc_keeping_the_instant() -> None:
    lf = _raw_trades().with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    out = conform(lf, TRADES).collect()
    assert out.schema["ts"] == UTC_NS
    assert out["ts"].to_list() == [T0, T0]


def test_conform_quotes_with_int_sizes_gives_quotes_schema() -> None:
    raw = pl.LazyFrame(
        {
            "ask_size": [4],
            "ts": [T0],
            "bid_price": [1.5],
            "symbol": ["ES"],
            "bid_size": [2],
            "ask_price": [1.75],
        }
    ).with_columns(pl.col("ts").cast(UTC_NS))
    out = conform(raw, QUOTES).collect()
    assert out.schema == canonical_schema(*BOOK_COLUMNS)
    assert out.row(0) == (T0, "ES", 1.5, 2.0, 1.75, 4.0)


def test_conform_missing_column_raises_schema_error_naming_it_found_columns_and_path() -> None:
    lf = _raw_trades().drop("price", "aggressor_side")
    with pytest.raises(SchemaError) as info:
        conform(lf, TRADES, what="/data/x.csv")
    message = str(info.value)
    assert message == (
        "/data/x.csv: missing trades column(s) price, aggressor_side; found ts, symbol, size "
        "(map columns with column_map or choose format)"
    )
    assert "\n" not in message
    assert info.value.path == "/data/x.csv"
    assert isinstance(info.value, MmflowError)


def test_conform_missing_quote_column_names_the_quotes_table() -> None:
    lf = pl.LazyFrame({"ts": [T0], "symbol": ["ES"], "bid_price": [1.0]})
    with pytest.raises(SchemaError, match=r"missing quotes column\(s\) bid_size, ask_price"):
        conform(lf, QUOTES, what="q.csv")


def test_conform_on_empty_frame_says_no_columns() -> None:
    with pytest.raises(SchemaError, match="found no columns"):
        conform(pl.LazyFrame(), TRADES)


def test_conform_reads_no_rows_and_strict_cast_failure_surfaces_at_collect() -> None:
    lf = _raw_trades().with_columns(pl.Series("price", ["abc", "1.5"]))
    conformed = conform(lf, TRADES, what="bad.csv")  # no error yet: nothing was read
    assert conformed.collect_schema()["price"] == pl.Float64()
    with pytest.raises(pl.exceptions.InvalidOperationError, match="abc"):
        conformed.collect()


def test_conform_side_out_of_int8_range_fails_instead_of_wrapping() -> None:
    lf = _raw_trades(aggressor_side=[1, 300])
    with pytest.raises(pl.exceptions.InvalidOperationError):
        conform(lf, TRADES).collect()


@given(
    st.lists(
        st.tuples(st.integers(-(2**53), 2**53), st.integers(-128, 127)), min_size=0, max_size=20
    )
)
def test_conform_int_values_survive_the_cast_exactly(rows: list[tuple[int, int]]) -> None:
    sizes = [r[0] for r in rows]
    sides = [r[1] for r in rows]
    raw = pl.LazyFrame(
        {
            "ts": [T0] * len(rows),
            "symbol": ["X"] * len(rows),
            "price": sizes,
            "size": sizes,
            "aggressor_side": sides,
        },
        schema_overrides={"ts": UTC_NS, "price": pl.Int64, "size": pl.Int64},
    )
    out = conform(raw, TRADES).collect()
    assert out["size"].to_list() == [float(s) for s in sizes]
    assert out["price"].to_list() == [float(s) for s in sizes]
    assert out["aggressor_side"].to_list() == sides
    assert out.schema == TRADES_REQUIRED_SCHEMA


# --- require ----------------------------------------------------------------------------------


def test_require_returns_a_canonical_frame_unchanged() -> None:
    lf = conform(_raw_trades(), TRADES)
    assert_frame_equal(require(lf, TRADES, what="trades").collect(), lf.collect())


def test_require_rejects_wrong_dtype_naming_column_and_both_dtypes() -> None:
    with pytest.raises(SchemaError) as info:
        require(_raw_trades(), TRADES, what="input trades")
    assert str(info.value) == (
        "input trades: size is Int64, expected Float64; aggressor_side is Int64, expected Int8"
    )


def test_require_rejects_wrong_dtype_of_optional_column() -> None:
    lf = conform(_raw_trades(), TRADES).with_columns(pl.lit(1).alias("trade_id"))
    with pytest.raises(SchemaError) as info:
        require(lf, TRADES, what="t")
    assert str(info.value) == "t: trade_id is Int32, expected String"


def test_require_rejects_missing_column_listing_found_columns() -> None:
    lf = conform(_raw_trades(), TRADES).drop("symbol")
    with pytest.raises(SchemaError) as info:
        require(lf, TRADES, what="trades")
    assert str(info.value) == (
        "trades is missing column(s) symbol; found ts, price, size, aggressor_side"
    )


def test_instrument_keys_are_venue_and_symbol_when_there_is_a_venue() -> None:
    assert instrument_keys(["ts", "symbol"]) == ["symbol"]
    assert instrument_keys(pl.DataFrame({"venue": ["a"], "symbol": ["X"]})) == ["venue", "symbol"]
    assert instrument_keys(pl.LazyFrame({"symbol": ["X"], "venue": ["a"]})) == ["venue", "symbol"]


def test_asof_keys_match_null_venues_together_and_never_across_venues() -> None:
    left = pl.LazyFrame(
        {"ts": [2, 2, 2], "venue": [None, "a", "b"], "symbol": ["X"] * 3},
        schema={"ts": pl.Int64, "venue": pl.String, "symbol": pl.String},
    )
    right = pl.LazyFrame(
        {"ts": [1, 1], "venue": [None, "a"], "symbol": ["X", "X"], "bid": [1.0, 2.0]},
        schema={"ts": pl.Int64, "venue": pl.String, "symbol": pl.String, "bid": pl.Float64},
    )
    keyed_left, keyed_right, by = asof_keys(left, right)
    out = keyed_left.join_asof(
        keyed_right.drop("venue"), on="ts", by=by, check_sortedness=False
    ).collect()
    assert out["bid"].to_list() == [1.0, 2.0, None]
    # A side without venue is the null venue: its quotes serve only the null-venue rows.
    keyed_left, keyed_right, by = asof_keys(left, right.drop("venue").head(1))
    out = keyed_left.join_asof(keyed_right, on="ts", by=by, check_sortedness=False).collect()
    assert out["bid"].to_list() == [1.0, None, None]
