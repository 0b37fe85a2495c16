from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mmflow.errors import ParameterError, SchemaError
from mmflow.metrics.flow import flow_bars
from mmflow.metrics.profile import ValueAreaMethod, footprint, value_area, volume_profile
from tests.helpers import trades_frame

T0 = datetime(2024, 7, 19, tzinfo=UTC)

Row = tuple[str, float, float, float, int]
"""(symbol, seconds after T0, price, size, trade_sign)."""


def make_trades(rows: Sequence[Row], *, session: Sequence[int] | None = None) -> pl.LazyFrame:
    return trades_frame(rows, start=T0, session=session).sort("ts", maintain_order=True)


def at_prices(prices: Sequence[float], sizes: Sequence[float] | None = None) -> pl.LazyFrame:
    sizes = sizes if sizes is not None else [1.0] * len(prices)
    return make_trades(
        [("X", i, p, s, 1) for i, (p, s) in enumerate(zip(prices, sizes, strict=True))]
    )


def make_profile(
    levels: Sequence[float], volumes: Sequence[float], symbol: str = "X"
) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"symbol": [symbol] * len(levels), "price_level": levels, "volume": volumes},
        schema={"symbol": pl.String, "price_level": pl.Float64, "volume": pl.Float64},
    )


# metrics.md b.10: rows 100..106, total 120, 70 % target 84.
B10_LEVELS = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0]
B10_VOLUMES = [5.0, 10.0, 20.0, 40.0, 25.0, 15.0, 5.0]


# --- slow references --------------------------------------------------------------------------


def decimal_tick(prices: Sequence[float]) -> Decimal | None:
    distinct = sorted({Decimal(repr(p)) for p in prices})
    gaps = [b - a for a, b in itertools.pairwise(distinct)]
    return min(gaps) if gaps else None


def row_of(price: float, bin_size: Decimal) -> int:
    """Exact floor(P / b) in decimal arithmetic (prices are short decimals)."""
    return math.floor(Decimal(repr(price)) / bin_size)


ProfileRow = tuple[float, float, float, float, int]


def profile_reference(rows: Sequence[Row], bin_size: float | None) -> dict[str, list[ProfileRow]]:
    """Per symbol: (level, volume, buy, sell, trades) for every row from lowest to highest."""
    result: dict[str, list[ProfileRow]] = {}
    for symbol in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == symbol]
        b = Decimal(repr(bin_size)) if bin_size is not None else decimal_tick([r[2] for r in mine])
        if b is None:
            cells = {0: [0.0, 0.0, 0.0, 0]}
            for r in mine:
                cell = cells[0]
                cell[0] += r[3]
                cell[1] += r[3] if r[4] == 1 else 0.0
                cell[2] += r[3] if r[4] == -1 else 0.0
                cell[3] += 1
            v, buy, sell, n = cells[0]
            result[symbol] = [(min(r[2] for r in mine), v, buy, sell, int(n))]
            continue
        table: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        for r in mine:
            cell = table[row_of(r[2], b)]
            cell[0] += r[3]
            if r[4] == 1:
                cell[1] += r[3]
            elif r[4] == -1:
                cell[2] += r[3]
            cell[3] += 1
        result[symbol] = [
            (float(k * b), table[k][0], table[k][1], table[k][2], int(table[k][3]))
            for k in range(min(table), max(table) + 1)
        ]
    return result


def value_area_reference(
    levels: Sequence[float], volumes: Sequence[float], share: float, width: int
) -> tuple[float, float, float, float] | None:
    """The walk as a plain while loop: (poc, low, high, value-area volume)."""
    n = len(volumes)
    total = sum(volumes)
    if total <= 0:
        return None
    top = max(volumes)
    mean = sum(i * v for i, v in enumerate(volumes)) / total
    poc = min((i for i in range(n) if volumes[i] == top), key=lambda i: (abs(i - mean), i))
    lo = hi = poc
    included = volumes[poc]
    target = share * total * (1 - 1e-12)
    while included < target and (lo > 0 or hi < n - 1):
        up = volumes[hi + 1 : hi + 1 + width]
        down = volumes[max(0, lo - width) : lo][::-1]
        if up and (not down or sum(up) >= sum(down)):
            hi += len(up)
            included += sum(up)
        else:
            lo -= len(down)
            included += sum(down)
    return levels[poc], levels[lo], levels[hi], included


FootRow = tuple[float, float, float, float, int, bool, bool, bool, bool]


def footprint_reference(
    rows: Sequence[Row], ratio: float, v_min: float, stacked: int
) -> dict[tuple[str, int], list[FootRow]]:
    """Per (symbol, minute): rows (level, volume, bid, ask, trades, buy, sell, sbuy, ssell)."""
    ticks = {s: decimal_tick([r[2] for r in rows if r[0] == s]) for s in {r[0] for r in rows}}
    cells: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    )
    lowest: dict[str, float] = {}
    for r in rows:
        tick = ticks[r[0]]
        k = 0 if tick is None else row_of(r[2], tick)
        lowest[r[0]] = min(lowest.get(r[0], r[2]), r[2])
        cell = cells[(r[0], int(r[1] // 60))][k]
        cell[0] += r[3]
        if r[4] == -1:
            cell[1] += r[3]
        elif r[4] == 1:
            cell[2] += r[3]
        cell[3] += 1

    def imbalance(numerator: float, denominator: float) -> bool:
        if numerator <= 0 or numerator < v_min:
            return False
        return denominator == 0 or numerator / denominator >= ratio

    def stack(flags: list[bool]) -> list[bool]:
        out = [False] * len(flags)
        i = 0
        while i < len(flags):
            j = i
            while j < len(flags) and flags[j] == flags[i]:
                j += 1
            if flags[i] and j - i >= stacked:
                out[i:j] = [True] * (j - i)
            i = j
        return out

    result: dict[tuple[str, int], list[FootRow]] = {}
    for (symbol, minute), table in cells.items():
        ks = list(range(min(table), max(table) + 1))
        grid = [table.get(k, [0.0, 0.0, 0.0, 0.0]) for k in ks]
        buy = [i > 0 and imbalance(grid[i][2], grid[i - 1][1]) for i in range(len(ks))]
        sell = [i < len(ks) - 1 and imbalance(grid[i][1], grid[i + 1][2]) for i in range(len(ks))]
        tick = ticks[symbol]
        levels = [lowest[symbol] if tick is None else float(k * tick) for k in ks]
        result[(symbol, minute)] = [
            (levels[i], grid[i][0], grid[i][1], grid[i][2], int(grid[i][3]), b, s, sb, ss)
            for i, (b, s, sb, ss) in enumerate(zip(buy, sell, stack(buy), stack(sell), strict=True))
        ]
    return result


# --- volume_profile ----------------------------------------------------------------------------


def test_volume_profile_hand_computed_fills_empty_rows() -> None:
    trades = make_trades(
        [
            ("X", 0, 100.0, 2.0, 1),
            ("X", 1, 101.0, 3.0, -1),
            ("X", 2, 100.0, 1.0, 0),
            ("X", 3, 99.0, 4.0, -1),
            ("X", 4, 101.5, 5.0, 1),
        ]
    )
    expected = pl.DataFrame(
        {
            "symbol": ["X"] * 6,
            "price_level": [99.0, 99.5, 100.0, 100.5, 101.0, 101.5],
            "volume": [4.0, 0.0, 3.0, 0.0, 3.0, 5.0],
            "buy_volume": [0.0, 0.0, 2.0, 0.0, 0.0, 5.0],
            "sell_volume": [4.0, 0.0, 0.0, 0.0, 3.0, 0.0],
            "delta": [-4.0, 0.0, 2.0, 0.0, -3.0, 5.0],
            "trades": pl.Series([1, 0, 2, 0, 1, 1], dtype=pl.UInt32),
        }
    )
    assert_frame_equal(volume_profile(trades).collect(), expected)
    wide = volume_profile(trades, bin_size=1.0).collect()
    assert wide["price_level"].to_list() == [99.0, 100.0, 101.0]
    assert wide["volume"].to_list() == [4.0, 3.0, 8.0]


def test_volume_profile_float_prices_on_bin_edges_stay_in_their_row() -> None:
    # 0.3 / 0.1 = 2.9999999999999996 and 1.2 / 0.3 = 3.9999999999999996 in floating point.
    prices = [k / 10 for k in range(-5, 31)]
    out = volume_profile(at_prices(prices), bin_size=0.1).collect()
    assert out["price_level"].to_list() == prices
    assert out["volume"].to_list() == [1.0] * len(prices)
    coarse = volume_profile(at_prices([0.6, 0.89, 0.9, 1.19, 1.2, 1.5]), bin_size=0.3).collect()
    assert coarse["price_level"].to_list() == [0.6, 0.9, 1.2, 1.5]
    assert coarse["volume"].to_list() == [2.0, 2.0, 1.0, 1.0]


def test_volume_profile_inferred_tick_ignores_float_noise_per_symbol() -> None:
    trades = make_trades(
        [
            ("BTC", 0, 60000.0, 1.0, 1),
            ("BTC", 1, 60000.03, 1.0, 1),
            ("BTC", 2, 60000.01, 1.0, 1),
            ("ETH", 3, 0.1 + 0.2, 1.0, -1),  # 0.30000000000000004
            ("ETH", 4, 0.3, 1.0, -1),
            ("ETH", 5, 0.7, 1.0, -1),
            ("ETH", 6, 0.4, 1.0, -1),
        ]
    )
    out = volume_profile(trades).collect()
    btc = out.filter(pl.col("symbol") == "BTC")
    assert btc["price_level"].to_list() == [60000.0, 60000.01, 60000.02, 60000.03]
    assert btc["volume"].to_list() == [1.0, 1.0, 0.0, 1.0]
    eth = out.filter(pl.col("symbol") == "ETH")
    assert eth["price_level"].to_list() == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert eth["volume"].to_list() == [2.0, 1.0, 0.0, 0.0, 1.0]


def test_volume_profile_by_session_makes_one_profile_each() -> None:
    rows = [("X", 0, 10.0, 1.0, 1), ("X", 1, 11.0, 2.0, -1), ("X", 2, 10.0, 3.0, 1)]
    trades = make_trades(rows, session=[1, 1, 2])
    out = volume_profile(trades, by=["symbol", "session"], bin_size=1.0).collect()
    assert out.select("session", "price_level", "volume").rows() == [
        (1, 10.0, 1.0),
        (1, 11.0, 2.0),
        (2, 10.0, 3.0),
    ]
    whole = volume_profile(trades, by=(), bin_size=1.0).collect()
    assert whole.columns[0] == "price_level"
    assert whole["volume"].to_list() == [4.0, 2.0]


def test_volume_profile_one_price_has_one_row_at_that_price() -> None:
    out = volume_profile(at_prices([101.25, 101.25, 101.25], [1.0, 0.0, 2.0])).collect()
    assert out.select("price_level", "volume", "trades").rows() == [(101.25, 3.0, 3)]
    single = volume_profile(at_prices([7.5])).collect()
    assert single.select("price_level", "volume").rows() == [(7.5, 1.0)]


def test_volume_profile_empty_input_keeps_schema() -> None:
    out = volume_profile(make_trades([])).collect()
    assert out.height == 0
    assert out.schema == pl.Schema(
        {
            "symbol": pl.String,
            "price_level": pl.Float64,
            "volume": pl.Float64,
            "buy_volume": pl.Float64,
            "sell_volume": pl.Float64,
            "delta": pl.Float64,
            "trades": pl.UInt32,
        }
    )


@pytest.mark.parametrize("bin_size", [None, 0.5])
def test_volume_profile_eager_lazy_and_streaming_agree(bin_size: float | None) -> None:
    rows = [
        (s, i, 100 + (i * 7 % 5) / 2, float(i % 4), (i % 3) - 1) for i in range(40) for s in "AB"
    ]
    lazy = volume_profile(make_trades(rows), bin_size=bin_size)
    eager = volume_profile(make_trades(rows).collect().lazy(), bin_size=bin_size)
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


# --- value_area --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "low", "high", "volume"),
    [("two-row", 101.0, 105.0, 110.0), ("single-row", 102.0, 104.0, 85.0)],
)
def test_value_area_metrics_b10_vector(
    method: ValueAreaMethod, low: float, high: float, volume: float
) -> None:
    out = value_area(make_profile(B10_LEVELS, B10_VOLUMES), method=method).collect()
    expected = pl.DataFrame(
        {
            "symbol": ["X"],
            "poc": [103.0],
            "value_area_low": [low],
            "value_area_high": [high],
            "value_area_volume": [volume],
            "total_volume": [120.0],
        }
    )
    assert_frame_equal(out, expected)


def test_value_area_from_trades_matches_b10_vector() -> None:
    rows = [("X", i, 100.0 + i % 7, B10_VOLUMES[i % 7] / 5, 0) for i in range(35)]
    out = value_area(volume_profile(make_trades(rows))).collect()
    assert out.row(0) == ("X", 103.0, 101.0, 105.0, 110.0, 120.0)


@pytest.mark.parametrize(
    ("volumes", "poc"),
    [
        ([10.0, 5.0, 10.0], 100.0),  # mean row 1: rows 0 and 2 equidistant ⇒ the lower
        ([10.0, 1.0, 10.0, 6.0], 102.0),  # mean row 39/27 = 1.44 ⇒ row 2
        ([9.0, 9.0, 1.0, 1.0, 1.0], 101.0),  # mean row 18/21 = 0.86 ⇒ row 1
        ([3.0, 0.0, 0.0, 3.0], 100.0),  # mean row 1.5 ⇒ equidistant ⇒ the lower
        ([1.0, 8.0, 1.0, 8.0, 8.0], 103.0),  # mean row 66/26 = 2.54 ⇒ row 3
    ],
)
def test_value_area_poc_tie_goes_to_volume_weighted_mean_then_lower(
    volumes: list[float], poc: float
) -> None:
    levels = [100.0 + i for i in range(len(volumes))]
    expected = value_area_reference(levels, volumes, 0.7, 2)
    assert expected is not None
    assert expected[0] == poc
    assert value_area(make_profile(levels, volumes)).collect()["poc"].item() == poc


def test_value_area_tie_between_pairs_adds_the_pair_above() -> None:
    out = value_area(make_profile([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 10.0, 4.0, 1.0]))
    # POC 3 (10); pairs above (4 + 1 = 5) and below (3 + 2 = 5) tie ⇒ above first: 15 ≥ 14.
    assert out.collect().row(0) == ("X", 3.0, 3.0, 5.0, 15.0, 20.0)


def test_value_area_one_trade_is_its_own_poc_and_value_area() -> None:
    out = value_area(volume_profile(at_prices([42.5], [3.0]))).collect()
    assert out.row(0) == ("X", 42.5, 42.5, 42.5, 3.0, 3.0)


def test_value_area_all_trades_at_one_price() -> None:
    out = value_area(volume_profile(at_prices([9.0] * 4, [1.0, 2.0, 0.0, 4.0]))).collect()
    assert out.row(0) == ("X", 9.0, 9.0, 9.0, 7.0, 7.0)


def test_value_area_zero_volume_has_no_poc() -> None:
    trades = make_trades([("Z", 0, 10.0, 0.0, 1), ("Z", 1, 11.0, 0.0, -1), ("A", 2, 5.0, 2.0, 1)])
    profile = volume_profile(trades, bin_size=1.0).collect()
    assert profile.filter(pl.col("symbol") == "Z")["trades"].to_list() == [1, 1]
    out = value_area(profile.lazy()).collect()
    assert out.rows() == [("A", 5.0, 5.0, 5.0, 2.0, 2.0), ("Z", None, None, None, None, 0.0)]


def test_value_area_full_share_takes_every_row() -> None:
    out = value_area(make_profile(B10_LEVELS, [v / 10 for v in B10_VOLUMES]), share=1.0)
    assert out.collect().row(0)[1:4] == (103.0, 100.0, 106.0)


def test_value_area_eager_lazy_and_streaming_agree() -> None:
    profile = pl.concat(
        [
            make_profile(B10_LEVELS, B10_VOLUMES, "A"),
            make_profile(B10_LEVELS, B10_VOLUMES[::-1], "B"),
        ]
    )
    methods: tuple[ValueAreaMethod, ...] = ("two-row", "single-row")
    for method in methods:
        lazy = value_area(profile, method=method)
        eager = value_area(profile.collect().lazy(), method=method)
        assert_frame_equal(lazy.collect(), eager.collect())
        assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


# --- footprint ---------------------------------------------------------------------------------


def test_footprint_hand_computed_imbalances_and_stacks() -> None:
    # Minute 0, tick 1: rows 10..15. Ask: 11→6, 12→4, 13→9, 14→2; bid: 10→2, 11→1, 14→5, 15→1.
    # Buy imbalance askVol(p) ≥ 3·bidVol(p−1): 11 (6 ≥ 3·2), 12 (4 ≥ 3·1), 13 and 14 (bid below
    # is 0 ⇒ ratio ∞); 10 is the lowest row: never. Sell imbalance bidVol(p) ≥ 3·askVol(p+1):
    # 14 (ask at 15 is 0 ⇒ ∞); 10 (2 < 3·6) and 11 (1 < 3·4) not; 15 is the top row: never.
    rows = [
        ("X", 1, 11.0, 6.0, 1),
        ("X", 2, 12.0, 4.0, 1),
        ("X", 3, 13.0, 9.0, 1),
        ("X", 4, 14.0, 2.0, 1),
        ("X", 5, 10.0, 2.0, -1),
        ("X", 6, 11.0, 1.0, -1),
        ("X", 7, 14.0, 5.0, -1),
        ("X", 8, 15.0, 1.0, -1),
        ("X", 9, 12.0, 7.0, 0),
        ("X", 70, 12.0, 1.0, 1),
    ]
    out = footprint(make_trades(rows), every="1m").collect()
    first = out.filter(pl.col("ts") == T0)
    assert first["price_level"].to_list() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert first["volume"].to_list() == [2.0, 7.0, 11.0, 9.0, 7.0, 1.0]
    assert first["ask_volume"].to_list() == [0.0, 6.0, 4.0, 9.0, 2.0, 0.0]
    assert first["bid_volume"].to_list() == [2.0, 1.0, 0.0, 0.0, 5.0, 1.0]
    assert first["delta"].to_list() == [-2.0, 5.0, 4.0, 9.0, -3.0, -1.0]
    assert first["buy_imbalance"].to_list() == [False, True, True, True, True, False]
    assert first["stacked_buy_imbalance"].to_list() == [False, True, True, True, True, False]
    assert first["sell_imbalance"].to_list() == [False, False, False, False, True, False]
    assert not first["stacked_sell_imbalance"].any()
    second = out.filter(pl.col("ts") == T0 + timedelta(minutes=1))
    assert second.select("price_level", "ask_volume", "trades").rows() == [(12.0, 1.0, 1)]
    assert not second["buy_imbalance"].any()
    # v_min on the dominant side: askVol ≥ 5 leaves 11 and 13 only, so no stack of 3.
    strict = footprint(make_trades(rows), every="1m", imbalance_volume=5.0).collect()
    assert strict["buy_imbalance"].to_list()[:6] == [False, True, False, True, False, False]
    assert strict["sell_imbalance"].to_list()[:6] == [False, False, False, False, True, False]
    assert not strict["stacked_buy_imbalance"].any()


def test_footprint_bar_sums_equal_flow_bar_volume() -> None:
    rows = [
        (s, i * 17, 100 + (i * 7 % 9) / 4, float(i % 5), (i % 3) - 1)
        for i in range(60)
        for s in "AB"
    ]
    trades = make_trades(rows)
    fp = footprint(trades, every="2m").collect()
    sums = fp.group_by("symbol", "ts").agg(
        pl.col("volume", "bid_volume", "ask_volume", "trades").sum()
    )
    bars = flow_bars(trades, every="2m").filter(pl.col("trades") > 0).collect()
    joined = bars.join(sums, on=["symbol", "ts"], how="full", coalesce=True)
    assert joined.height == bars.height == sums.height
    assert (joined["volume"] == joined["volume_right"]).all()
    assert (joined["buy_volume"] == joined["ask_volume"]).all()
    assert (joined["sell_volume"] == joined["bid_volume"]).all()
    assert (joined["trades"] == joined["trades_right"]).all()


def test_footprint_with_session_keeps_sessions_apart() -> None:
    trades = make_trades([("X", 0, 10.0, 1.0, 1), ("X", 1, 10.0, 2.0, -1)], session=[1, 2])
    out = footprint(trades, every="1m").collect()
    assert out.columns[:3] == ["symbol", "session", "ts"]
    assert out.select("session", "volume").rows() == [(1, 1.0), (2, 2.0)]


def test_footprint_degenerate_one_trade_zero_volume_and_empty() -> None:
    one = footprint(make_trades([("X", 0, 5.0, 0.0, 1)]), every="1m").collect()
    assert one.select("price_level", "volume", "trades", "buy_imbalance").rows() == [
        (5.0, 0.0, 1, False)
    ]
    empty = footprint(make_trades([]), every="1m").collect()
    assert empty.height == 0
    assert empty.schema["stacked_sell_imbalance"] == pl.Boolean


def test_footprint_eager_lazy_and_streaming_agree() -> None:
    rows = [
        (s, i * 11, 50 + (i * 5 % 7), float(1 + i % 4), (i % 3) - 1)
        for i in range(80)
        for s in "AB"
    ]
    lazy = footprint(make_trades(rows), every="1m", stacked=2)
    eager = footprint(make_trades(rows).collect().lazy(), every="1m", stacked=2)
    assert_frame_equal(lazy.collect(), eager.collect())
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "options", "message"),
    [
        ("volume_profile", {"bin_size": 0.0}, "bin_size must be a finite number > 0, was 0.0"),
        ("volume_profile", {"bin_size": math.nan}, "bin_size must be a finite number > 0"),
        ("value_area", {"share": 0.0}, r"share must be a number in \(0, 1\], was 0.0"),
        ("value_area", {"share": 1.5}, r"share must be a number in \(0, 1\], was 1.5"),
        ("value_area", {"method": "three-row"}, "unknown value-area method 'three-row'"),
        ("footprint", {"every": "0m"}, "positive polars duration like 1m, 5m or 1h, was '0m'"),
        ("footprint", {"every": "1m", "bin_size": -1.0}, "bin_size must be a finite number"),
        ("footprint", {"every": "1m", "imbalance_ratio": 0.0}, "imbalance_ratio must be"),
        ("footprint", {"every": "1m", "imbalance_volume": -1.0}, "imbalance_volume must be"),
        ("footprint", {"every": "1m", "stacked": 0}, "stacked must be a whole number ≥ 1, was 0"),
        ("footprint", {"every": "1m", "stacked": 2.0}, "stacked must be a whole number ≥ 1"),
    ],
)
def test_profile_functions_reject_bad_parameters(
    function: str, options: dict[str, object], message: str
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "volume_profile": lambda: volume_profile(make_trades([("X", 0, 1.0, 1.0, 1)]), **options),  # type: ignore[arg-type]
        "value_area": lambda: value_area(make_profile([1.0], [1.0]), **options),  # type: ignore[arg-type]
        "footprint": lambda: footprint(make_trades([("X", 0, 1.0, 1.0, 1)]), **options),  # type: ignore[arg-type]
    }
    with pytest.raises(ParameterError, match=message) as info:
        calls[function]()
    assert "\n" not in str(info.value)


def test_profile_functions_name_missing_columns() -> None:
    with pytest.raises(SchemaError, match="trades is missing column"):
        volume_profile(pl.LazyFrame({"symbol": ["X"], "price": [1.0]}))
    with pytest.raises(SchemaError, match=r"profile is missing column\(s\) price_level"):
        value_area(pl.LazyFrame({"symbol": ["X"], "volume": [1.0]}))


# --- hypothesis: oracle and invariants ---------------------------------------------------------

PRICES = [0.1, 0.2, 0.3, 0.7, 1.1, 1.2, 2.35, 2.5]
TRADE_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.integers(min_value=0, max_value=400),
        st.sampled_from(PRICES),
        st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0]),
        st.sampled_from([-1, 0, 1]),
    ),
    min_size=1,
    max_size=40,
).map(lambda rows: sorted(rows, key=lambda r: r[1]))


@settings(max_examples=40, deadline=None)
@given(rows=TRADE_ROWS, bin_size=st.sampled_from([None, 0.05, 0.1, 0.25, 0.3, 1.0]))
def test_volume_profile_matches_reference_loop(rows: list[Row], bin_size: float | None) -> None:
    out = volume_profile(make_trades(rows), bin_size=bin_size).collect()
    expected = profile_reference(rows, bin_size)
    assert sorted(expected) == out["symbol"].unique().sort().to_list()
    for symbol, levels in expected.items():
        got = out.filter(pl.col("symbol") == symbol)
        assert (
            got.select("price_level", "volume", "buy_volume", "sell_volume", "trades").rows()
            == levels
        )
    assert (out["delta"] == out["buy_volume"] - out["sell_volume"]).all()


@settings(max_examples=40, deadline=None)
@given(
    rows=TRADE_ROWS,
    bin_size=st.sampled_from([None, 0.1, 0.3]),
    share=st.sampled_from([0.3, 0.5, 0.7, 0.9, 1.0]),
    method=st.sampled_from(["two-row", "single-row"]),
)
def test_value_area_matches_reference_walk(
    rows: list[Row], bin_size: float | None, share: float, method: ValueAreaMethod
) -> None:
    profile = volume_profile(make_trades(rows), bin_size=bin_size).collect()
    out = value_area(profile.lazy(), share=share, method=method).collect()
    width = 2 if method == "two-row" else 1
    for symbol in out["symbol"].to_list():
        mine = profile.filter(pl.col("symbol") == symbol)
        levels, volumes = mine["price_level"].to_list(), mine["volume"].to_list()
        got = out.filter(pl.col("symbol") == symbol).row(0)
        expected = value_area_reference(levels, volumes, share, width)
        total = sum(volumes)
        assert got[5] == total
        if expected is None:
            assert got[1:5] == (None, None, None, None)
            continue
        assert got[1:5] == expected
        poc, low, high, va_volume = expected
        # Invariants: POC inside, enough volume, minimal for the walk (the last step's rows,
        # the outermost group at the top or the bottom, were needed).
        assert low <= poc <= high
        assert va_volume >= share * total * (1 - 1e-12)
        assert va_volume == sum(v for x, v in zip(levels, volumes, strict=True) if low <= x <= high)
        p, lo, hi = levels.index(poc), levels.index(low), levels.index(high)
        edges = []
        if hi > p:
            edges.append(sum(volumes[p + 1 + (hi - p - 1) // width * width : hi + 1]))
        if lo < p:
            edges.append(sum(volumes[lo : p - (p - lo - 1) // width * width]))
        target = share * total * (1 - 1e-12)
        assert not edges or any(va_volume - e < target for e in edges)


@settings(max_examples=40, deadline=None)
@given(
    rows=TRADE_ROWS,
    ratio=st.sampled_from([1.5, 2.0, 3.0]),
    v_min=st.sampled_from([0.0, 1.0, 3.0]),
    stacked=st.sampled_from([1, 2, 3]),
)
def test_footprint_matches_reference_loop(
    rows: list[Row], ratio: float, v_min: float, stacked: int
) -> None:
    out = footprint(
        make_trades(rows),
        every="1m",
        imbalance_ratio=ratio,
        imbalance_volume=v_min,
        stacked=stacked,
    ).collect()
    expected = footprint_reference(rows, ratio, v_min, stacked)
    columns = (
        "price_level", "volume", "bid_volume", "ask_volume", "trades", "buy_imbalance",
        "sell_imbalance", "stacked_buy_imbalance", "stacked_sell_imbalance",
    )  # fmt: skip
    got = {
        (s, int((t - T0).total_seconds() // 60)): out.filter(
            (pl.col("symbol") == s) & (pl.col("ts") == t)
        )
        .select(columns)
        .rows()
        for s, t in out.select("symbol", "ts").unique().rows()
    }
    assert got == expected


@settings(max_examples=12, deadline=None)
@given(rows=TRADE_ROWS, bin_size=st.sampled_from([None, 0.1, 0.5]))
def test_profile_invariants(rows: list[Row], bin_size: float | None) -> None:
    trades = make_trades(rows)
    profile = volume_profile(trades, bin_size=bin_size).collect()
    totals = profile.group_by("symbol").agg(pl.col("volume", "trades").sum()).sort("symbol")
    direct = (
        trades.group_by("symbol")
        .agg(pl.col("size").sum().alias("volume"), pl.len().alias("trades"))
        .sort("symbol")
        .collect()
    )
    # Σ volume over rows = total volume; every trade in exactly one row; buy + sell ≤ volume.
    assert_frame_equal(totals, direct, check_dtypes=False)
    assert (profile["buy_volume"] + profile["sell_volume"] <= profile["volume"]).all()
    # Each symbol's profile and value area do not depend on other symbols or on row order.
    shuffled = make_trades(rows[::-1]).sort("symbol", "price")
    assert_frame_equal(volume_profile(shuffled, bin_size=bin_size).collect(), profile)
    area = value_area(profile.lazy()).collect()
    for symbol in {r[0] for r in rows}:
        alone = trades.filter(pl.col("symbol") == symbol)
        assert_frame_equal(
            volume_profile(alone, bin_size=bin_size).collect(),
            profile.filter(pl.col("symbol") == symbol),
        )
        assert_frame_equal(
            value_area(volume_profile(alone, bin_size=bin_size)).collect(),
            area.filter(pl.col("symbol") == symbol),
        )
    # Renaming the symbols so that they sort in the opposite order changes nothing else.
    mapping = {"A": "c", "B": "b", "C": "a"}
    renamed = make_trades([(mapping[r[0]], *r[1:]) for r in rows])
    renamed_area = value_area(volume_profile(renamed, bin_size=bin_size)).collect()
    assert_frame_equal(
        renamed_area.with_columns(
            pl.col("symbol").replace({v: k for k, v in mapping.items()})
        ).sort("symbol"),
        area,
    )
    # Footprint rows of all bars add up to the profile's volume per symbol and row.
    if bin_size is not None:
        fp = footprint(trades, every="1m", bin_size=bin_size).collect()
        per_row = (
            fp.group_by("symbol", "price_level")
            .agg(pl.col("volume", "bid_volume", "ask_volume").sum())
            .filter(pl.col("volume") > 0)
            .sort("symbol", "price_level")
        )
        traded = profile.filter(pl.col("volume") > 0).select(
            "symbol", "price_level", "volume",
            pl.col("sell_volume").alias("bid_volume"), pl.col("buy_volume").alias("ask_volume"),
        )  # fmt: skip
        assert_frame_equal(per_row, traded, check_exact=False)
