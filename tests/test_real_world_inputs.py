"""Issue 9, analysis side: instruments are (venue, symbol), bars only where there is data,
bounded sizes, validated durations, a grid that covers quotes, and a maximum quote age.

Command-line tests run ``python -m mmflow`` in a child process whose address space is capped
(``resource.setrlimit``), so a regression that tries to allocate gigabytes fails here instead of
taking the machine down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmflow.io
from mmflow.analysis import BarOptions, Signing, analyze, market_bars
from mmflow.durations import check_duration, duration_nanoseconds
from mmflow.errors import ParameterError, SizeLimitError
from mmflow.metrics.flow import event_grid, flow_bars
from mmflow.metrics.impact import FUTURE_MID_MISSING, trade_costs
from mmflow.metrics.ofi import quote_bars
from mmflow.metrics.profile import volume_profile
from mmflow.metrics.quotes import QUOTE_STALE, attach_quotes
from mmflow.render.messages import quote_warnings
from tests.conftest import SHARED
from tests.helpers import quote_ofi_totals, trades_frame, typed_frame

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "binance"
MEMORY_CAP = 3 * 1024**3
UTC_NS = pl.Datetime("ns", "UTC")
T0 = datetime(2024, 7, 1, 14, tzinfo=UTC)


_CAPPED = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP})); "
    "sys.argv = ['mmflow', *sys.argv[1:]]; "
    "runpy.run_module('mmflow', run_name='__main__')"
)
"""The child sets its own limit before importing anything (no fork-time hook needed)."""


def run_capped(*args: object, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``mmflow`` in a child process limited to 3 GB of address space."""
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def trades_csv(path: Path, rows: list[tuple[datetime, str, float, float]]) -> Path:
    lines = ["ts,symbol,price,size"]
    lines += [f"{ts.isoformat()},{symbol},{price},{size}" for ts, symbol, price, size in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def quotes_csv(path: Path, rows: list[tuple[datetime, str, float, float]]) -> Path:
    lines = ["ts,symbol,bid_price,bid_size,ask_price,ask_size"]
    lines += [f"{ts.isoformat()},{symbol},{bid},1,{ask},1" for ts, symbol, bid, ask in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_trades(rows: list[tuple[float, str, float, float, int]]) -> pl.LazyFrame:
    """Rows of (seconds after T0, symbol, price, size, aggressor_side)."""
    return trades_frame(
        [(s, t, p, v, d) for t, s, p, v, d in rows], start=T0, side="aggressor_side"
    )


def make_quotes(rows: list[tuple[float, str, float, float, float, float]]) -> pl.LazyFrame:
    """Rows of (seconds after T0, symbol, bid, bid size, ask, ask size)."""
    return typed_frame(
        {
            "ts": [at(r[0]) for r in rows],
            "symbol": [r[1] for r in rows],
            "bid_price": [r[2] for r in rows],
            "bid_size": [r[3] for r in rows],
            "ask_price": [r[4] for r in rows],
            "ask_size": [r[5] for r in rows],
        }
    )


# --- durations: one validator ------------------------------------------------------------------


def test_durations_are_exact_and_ranged() -> None:
    assert duration_nanoseconds("1h30m") == 5_400 * 10**9
    assert duration_nanoseconds("99999999999999999999s") == 99999999999999999999 * 10**9
    assert check_duration("1ns", what="--bar") == "1ns"
    assert check_duration("366d", what="--bar") == "366d"
    assert check_duration("0", what="--horizon", minimum=0) == "0s"
    for bad in ("1000000d", "99999999999999999999s", "367d", "0s", "1mo", "1y", "abc", "-1s"):
        with pytest.raises(ParameterError, match="--bar"):
            check_duration(bad, what="--bar")


@pytest.mark.parametrize(
    ("bar", "message"),
    [
        ("1000000d", "longer than 366d"),
        ("99999999999999999999s", "longer than 366d"),
        ("0s", "too short"),
        ("1mo", "no fixed length"),
        ("5 minutes", "not a duration"),
    ],
)
def test_bar_out_of_range_exits_2_without_panic(bar: str, message: str) -> None:
    code, out, err = run_capped("flow", FIXTURES / "futures" / "um", "--bar", bar)
    assert code == 2
    assert out == ""
    assert "--bar" in err
    assert message in err
    assert "Traceback" not in err
    assert "panicked" not in err


# --- size guards ---------------------------------------------------------------------------


def test_bar_1ns_over_a_year_hits_the_bar_guard(tmp_path: Path) -> None:
    path = trades_csv(
        tmp_path / "trades.csv",
        [
            (datetime(2023, 1, 1, tzinfo=UTC), "X", 10, 1),
            (datetime(2024, 1, 1, tzinfo=UTC), "X", 11, 1),
        ],
    )
    code, out, err = run_capped("flow", path, "--bar", "1ns", "--fill")
    assert code == 2
    assert out == ""
    assert "--bar 1ns would make about" in err
    assert "--max-bars" in err
    # Without --fill there are bars only on the two days: still one bar per nanosecond of each
    # day's span, here none (one trade a day) — so the run is tiny.
    code, out, err = run_capped("flow", path, "--bar", "1ns", "--to", "csv")
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_sporadic_days_make_bars_only_on_those_days(tmp_path: Path) -> None:
    days = [datetime(2023, 4, 5, 10, tzinfo=UTC), datetime(2023, 10, 5, 10, tzinfo=UTC)]
    days.append(datetime(2024, 7, 5, 10, tzinfo=UTC))
    rows = [(day + timedelta(minutes=m), "X", 10.0 + m, 1.0) for day in days for m in (0, 3)]
    path = trades_csv(tmp_path / "trades.csv", rows)
    code, out, err = run_capped("flow", path, "--bar", "1m", "--to", "csv")
    assert code == 0, err
    bars = pl.read_csv(out.encode(), try_parse_dates=True)
    assert bars.height == 12  # minutes 0, 1, 2, 3 of each day; the empty minutes 1, 2 kept
    assert bars["ts"].dt.date().unique().sort().to_list() == [d.date() for d in days]
    assert bars["trades"].to_list() == [1, 0, 0, 1] * 3
    # --fill asks for the continuous grid: 658 k one-minute bars, over the limit here.
    minutes = int((days[-1] - days[0]).total_seconds() // 60) + 3 + 1
    code, out, err = run_capped("flow", path, "--bar", "1m", "--fill", "--max-bars", "100000")
    assert code == 2
    assert f"--bar 1m would make about {minutes:,} bars" in err
    assert "more than the limit of 100,000" in err
    # and with hour bars it is made: every hour from the first to the last day.
    code, out, err = run_capped("flow", path, "--bar", "1h", "--fill", "--to", "csv")
    assert code == 0, err
    filled = pl.read_csv(out.encode(), try_parse_dates=True)
    hours = int((days[-1] - days[0]).total_seconds() // 3600) + 1
    assert filled.height == hours
    assert filled["trades"].sum() == 6


def test_event_grid_estimate_guards_before_making_bars() -> None:
    events = make_trades([(0, "X", 1, 1, 0), (86_400 * 3, "X", 1, 1, 0)])
    assert event_grid(events, every="1s").collect().height == 2
    assert event_grid(events, every="1h", fill=True).collect().height == 73
    with pytest.raises(SizeLimitError) as raised:
        event_grid(events, every="1s", fill=True, max_bars=1_000).collect()
    assert raised.value.parameter == "every"
    assert raised.value.estimate == 3 * 86_400 + 1


GRID_EVENTS = st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, 86_399), st.sampled_from(["X", "Y"])),
    min_size=1,
    max_size=12,
)
STEPS = {"1m": 60, "7m": 420, "1h": 3_600, "5h": 18_000, "1d": 86_400}


@settings(max_examples=40, deadline=None)
@given(events=GRID_EVENTS, every=st.sampled_from(sorted(STEPS)))
def test_event_grid_covers_every_event_and_only_days_with_events(
    events: list[tuple[int, int, str]], every: str
) -> None:
    base = datetime(2023, 4, 1, tzinfo=UTC)
    stamps = [(base + timedelta(days=d, seconds=s), symbol) for d, s, symbol in events]
    frame = pl.LazyFrame(
        {"ts": [t for t, _ in stamps], "symbol": [s for _, s in stamps]},
        schema={"ts": UTC_NS, "symbol": pl.String},
    )
    grid = event_grid(frame, every=every).collect()
    step = STEPS[every]
    rows = set(zip(grid["symbol"].to_list(), grid["ts"].to_list(), strict=True))
    assert len(rows) == grid.height  # no bar twice

    def bar_of(t: datetime) -> datetime:
        return datetime.fromtimestamp(int(t.timestamp()) // step * step, tz=UTC)

    # Reference: per symbol and UTC day, every bar from the first to the last event's bar.
    expected: set[tuple[str, datetime]] = set()
    for symbol in {s for _, s in stamps}:
        for day in {t.date() for t, s in stamps if s == symbol}:
            times = [t for t, s in stamps if s == symbol and t.date() == day]
            first, last = bar_of(min(times)), bar_of(max(times))
            count = int((last - first).total_seconds()) // step + 1
            expected |= {(symbol, first + timedelta(seconds=k * step)) for k in range(count)}
    assert rows == expected


def test_event_grid_has_one_bar_across_midnight() -> None:
    # 7-minute bars are aligned to the epoch, so one of them straddles 2024-01-02 00:00.
    midnight = datetime(2024, 1, 2, tzinfo=UTC)
    minutes = int(midnight.timestamp() // 60)
    start = midnight - timedelta(minutes=minutes % 7)
    assert start < midnight
    events = pl.LazyFrame(
        {"ts": [start, midnight + timedelta(seconds=30)], "symbol": ["X", "X"]},
        schema={"ts": UTC_NS, "symbol": pl.String},
    )
    grid = event_grid(events, every="7m").collect()
    assert grid["ts"].to_list() == [start]
    bars = flow_bars(
        events.with_columns(
            pl.lit(1.0).alias("price"),
            pl.lit(1.0).alias("size"),
            pl.lit(1, pl.Int8).alias("trade_sign"),
        ),
        every="7m",
    ).collect()
    assert bars["trades"].to_list() == [2]


def test_tiny_profile_bin_exits_2_naming_the_flag() -> None:
    path = FIXTURES / "futures" / "um" / "BTCUSDT-trades-2024-07-19.csv"
    code, out, err = run_capped("profile", path, "--bin", "1e-9")
    assert code == 2
    assert out == ""
    assert "--bin 1e-09 would make about" in err
    assert "price levels" in err
    assert "--max-levels" in err
    code, _, err = run_capped("profile", path, "--bar", "1m", "--bin", "1e-7")
    assert code == 2
    assert "--bin" in err


def test_profile_levels_guard_counts_rows_and_overflow() -> None:
    trades = pl.LazyFrame(
        {"symbol": ["X", "X"], "price": [1e-3, 1e10], "size": [1.0, 1.0], "trade_sign": [1, -1]}
    )
    with pytest.raises(SizeLimitError, match="bin_size"):
        volume_profile(trades, bin_size=1e-9, max_levels=10**6).collect()
    assert volume_profile(trades, bin_size=1e9, max_levels=100).collect().height == 11


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("analyze", "--lookback"),
        ("analyze", "--buckets-per-day"),
        ("analyze", "--vpin-window"),
        ("inventory", "--pressure-horizon"),
        ("phases", "--window"),
        ("phases", "--min-bars"),
    ],
)
def test_huge_windows_exit_2_naming_the_flag(command: str, flag: str) -> None:
    value = "1000000000000"
    code, out, err = run_capped(command, FIXTURES / "futures" / "um", flag, value)
    assert code == 2, err
    assert out == ""
    assert f"{flag} {value} would make about" in err
    assert "Traceback" not in err


# --- instruments are (venue, symbol) -------------------------------------------------------


def _rows(out: str) -> dict[tuple[str, str], dict[str, object]]:
    return {(r["venue"], r["symbol"]): r for r in json.loads(out)}


def assert_same_scores(left: list[dict[str, object]], right: list[dict[str, object]]) -> None:
    """Equal score rows, floats to 1e-12 (BVC sums may round in another order)."""

    def key(row: dict[str, object]) -> tuple[str, str, str]:
        return str(row["venue"]), str(row["symbol"]), str(row["method"])

    assert len(left) == len(right)
    for a, b in zip(sorted(left, key=key), sorted(right, key=key), strict=True):
        assert a.keys() == b.keys()
        for name, value in a.items():
            if isinstance(value, float):
                assert b[name] == pytest.approx(value, rel=1e-12, abs=1e-12), (key(a), name)
            else:
                assert b[name] == value, (key(a), name)


def test_spot_and_futures_of_one_symbol_are_two_instruments() -> None:
    folders = (FIXTURES / "spot", FIXTURES / "futures" / "um")
    code, out, err = run_capped("analyze", *folders, "--table", "summary", "--to", "json")
    assert code == 0, err
    rows = _rows(out)
    assert set(rows) == {("binance-spot", "BTCUSDT"), ("binance-um", "BTCUSDT")}
    assert rows["binance-spot", "BTCUSDT"]["trades"] == 300
    assert rows["binance-um", "BTCUSDT"]["trades"] == 600
    # The spot trades have no quotes of their own venue: the futures quotes never sign them.
    assert rows["binance-spot", "BTCUSDT"]["ofi"] is None
    assert "BTCUSDT@binance-spot: no quotes of this venue" in err
    # On screen the venue is shown because there are two.
    code, screen, _ = run_capped("analyze", *folders)
    assert code == 0
    assert "binance-spot" in screen
    assert "binance-um" in screen


def test_classify_evaluate_on_a_mixed_folder_matches_each_venue_alone() -> None:
    spot, futures = FIXTURES / "spot", FIXTURES / "futures" / "um"
    code, mixed, err = run_capped("classify", spot, futures, "--evaluate", "--to", "json")
    assert code == 0, err
    alone: list[dict[str, object]] = []
    for folder in (spot, futures):
        code, out, err = run_capped("classify", folder, "--evaluate", "--to", "json")
        assert code == 0, err
        alone += json.loads(out)
    assert_same_scores(json.loads(mixed), alone)
    # Spot has no quotes, so no quote-based method is scored for it.
    methods = {r["method"] for r in json.loads(mixed) if r["venue"] == "binance-spot"}
    assert methods == {"tick", "reverse-tick", "bvc"}


def test_venue_filter_keeps_one_instrument() -> None:
    folders = (FIXTURES / "spot", FIXTURES / "futures" / "um")
    code, out, err = run_capped("analyze", *folders, "--venue", "binance-spot", "--to", "json")
    assert code == 0, err
    assert set(_rows(out)) == {("binance-spot", "BTCUSDT")}
    assert "no quotes of this venue" not in err


def test_trades_and_quotes_that_share_no_venue_say_so(tmp_path: Path) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text("ts,symbol,venue,price,size\n2024-01-01T00:00:01Z,X,a,10,1\n")
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(
        "ts,symbol,venue,bid_price,bid_size,ask_price,ask_size\n2024-01-01T00:00:00Z,X,b,9,1,11,1\n"
    )
    code, out, err = run_capped(
        "classify", trades, "--quotes", quotes, "--method", "lee-ready", "--to", "csv"
    )
    assert code == 0, err
    assert "trades and quotes share no venue (trades: a; quotes: b)" in err
    assert out.splitlines()[1].split(",")[7] == "none"  # no quote, no earlier trade: unsigned


def test_quotes_match_trades_of_their_own_venue_only() -> None:
    trades = make_trades([(10, "X", 10.9, 1, 0), (10, "X", 10.9, 1, 0)]).with_columns(
        pl.Series("venue", ["a", None], dtype=pl.String)
    )
    quotes = make_quotes([(0, "X", 10, 1, 11, 1), (1, "X", 10.8, 1, 11, 1)]).with_columns(
        pl.Series("venue", ["a", None], dtype=pl.String)
    )
    out = attach_quotes(trades, quotes).collect()
    assert out["mid_price"].to_list() == [10.5, 10.9]
    assert out["venue"].to_list() == ["a", None]


# --- the grid covers quotes; OFI accounts for every quote ---------------------------------


def test_flow_has_a_bar_for_a_quote_only_minute(tmp_path: Path) -> None:
    trades = trades_csv(
        tmp_path / "trades.csv", [(at(5), "X", 10.5, 1.0), (at(125), "X", 10.6, 1.0)]
    )
    quotes = quotes_csv(
        tmp_path / "quotes.csv",
        [(at(s), "X", 10 + s / 1000, 11) for s in (0, 70, 80, 130, 200)],
    )
    code, out, err = run_capped("flow", trades, "--quotes", quotes, "--bar", "1m", "--to", "csv")
    assert code == 0, err
    bars = pl.read_csv(out.encode(), try_parse_dates=True)
    assert bars["ts"].dt.minute().to_list() == [0, 1, 2, 3]  # minutes 1 and 3: quotes only
    assert bars["trades"].to_list() == [1, 0, 1, 0]
    assert bars["ofi"][1] is not None
    assert bars["ofi"][3] is not None


QUOTE_EVENTS = st.lists(
    st.tuples(
        st.integers(0, 3 * 86_400),
        st.sampled_from(["X", "Y"]),
        st.sampled_from([9.0, 9.5, 10.0]),
        st.sampled_from([1.0, 2.0, 5.0]),
        st.sampled_from([10.5, 11.0, 11.5]),
        st.sampled_from([1.0, 3.0]),
    ),
    min_size=1,
    max_size=25,
)
TRADE_EVENTS = st.lists(
    st.tuples(
        st.integers(0, 3 * 86_400),
        st.sampled_from(["X", "Y"]),
        st.sampled_from([9.5, 10.0, 10.5]),
        st.sampled_from([1.0, 2.0]),
        st.sampled_from([-1, 1]),
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=25, deadline=None)
@given(quotes=QUOTE_EVENTS, trades=TRADE_EVENTS, bar=st.sampled_from(["1m", "1h", "1d"]))
def test_bar_ofi_sums_to_the_ofi_of_the_quotes_alone(
    quotes: list[tuple[int, str, float, float, float, float]],
    trades: list[tuple[int, str, float, float, int]],
    bar: str,
) -> None:
    quote_frame = make_quotes(sorted((float(q[0]), *q[1:]) for q in quotes))
    trade_frame = make_trades(sorted((float(t[0]), *t[1:]) for t in trades))
    bars = market_bars(trade_frame, quote_frame, options=BarOptions(every=bar)).bars.collect()
    traded = {t[1] for t in trades}
    totals = quote_ofi_totals(quote_frame).filter(pl.col("symbol").is_in(list(traded)))
    per_bar = bars.group_by("symbol").agg(pl.col("ofi").sum())
    for symbol, total in totals.select("symbol", "ofi").iter_rows():
        assert per_bar.filter(pl.col("symbol") == symbol)["ofi"].item() == pytest.approx(total)


def test_analyze_ofi_equals_the_ofi_of_the_quotes_alone() -> None:
    trades = make_trades([(120, "X", 10.5, 1, 1)])
    quotes = make_quotes(
        [(0, "X", 10, 2, 11, 2), (30, "X", 10, 5, 11, 2), (200, "X", 10.2, 1, 11, 2)]
    )
    summary = analyze(trades, quotes).summary.collect()
    assert summary["ofi"].item() == quote_ofi_totals(quotes)["ofi"].item() == 4.0


# --- quote age ------------------------------------------------------------------------------


def test_stale_quote_is_missing_for_signing_and_spreads() -> None:
    trades = make_trades([(0, "X", 10.9, 1, 0), (100, "X", 10.9, 1, 0)])
    quotes = make_quotes([(-200, "X", 10, 1, 11, 1), (50, "X", 10.5, 1, 11.5, 1)])
    out = attach_quotes(trades, quotes, max_age="1m").collect()
    assert out[QUOTE_STALE].to_list() == [True, False]
    assert out["mid_price"].to_list() == [None, 11.0]
    unlimited = attach_quotes(trades, quotes).collect()
    assert unlimited["mid_price"].to_list() == [10.5, 11.0]


def test_quote_bars_weight_a_quote_no_longer_than_the_maximum_age() -> None:
    # A quote at 0 s, the next at 90 s: with a 30 s maximum age the first minute is quoted for
    # 30 s only, so its spread is that quote's, and the second minute sees only 30 s of quote.
    quotes = make_quotes([(0, "X", 10, 1, 11, 1), (90, "X", 10, 1, 12, 1)])
    grid = pl.LazyFrame(
        {"symbol": ["X", "X", "X"], "ts": [at(0), at(60), at(120)]},
        schema={"symbol": pl.String, "ts": UTC_NS},
    )
    aged = quote_bars(quotes, every="1m", grid=grid, max_age="30s").collect()
    assert aged["spread"].to_list() == [1.0, 2.0, None]
    fresh = quote_bars(quotes, every="1m", grid=grid).collect()
    assert fresh["spread"].to_list() == pytest.approx([1.0, 1.5, 2.0])


def test_cost_horizon_after_the_last_quote_is_null_and_counted() -> None:
    trades = make_trades([(0, "X", 10.9, 1, 1), (400, "X", 10.9, 1, 1)])
    quotes = make_quotes([(-1, "X", 10, 1, 11, 1), (350, "X", 10, 1, 12, 1)])
    attached = attach_quotes(trades.with_columns(pl.lit(1, pl.Int8).alias("trade_sign")), quotes)
    costs = trade_costs(attached, quotes, horizon="5m").collect()
    assert costs["future_mid_price"].to_list() == [10.5, None]
    assert costs[FUTURE_MID_MISSING].to_list() == [None, "after_last_quote"]
    stale = trade_costs(attached, quotes, horizon="5m", max_quote_age="10s").collect()
    assert stale[FUTURE_MID_MISSING].to_list() == ["stale", "after_last_quote"]
    assert stale["price_impact"].to_list() == [None, None]
    assert stale["effective_spread"].to_list() == pytest.approx([0.8, -0.2])


def test_quote_age_and_horizon_are_warned_and_counted(tmp_path: Path) -> None:
    trades = trades_csv(
        tmp_path / "trades.csv", [(at(0), "X", 10.9, 1.0), (at(300), "X", 10.1, 1.0)]
    )
    quotes = quotes_csv(tmp_path / "quotes.csv", [(at(-1), "X", 10, 11), (at(30), "X", 10, 11)])
    code, _, err = run_capped("analyze", trades, "--quotes", quotes, "--to", "json")
    assert code == 0, err
    assert "X: 1 of 2 trades faced a quote older than --max-quote-age 1m" in err
    assert "X: 2 of 2 trades have their cost horizon after the last quote" in err
    code, _, err = run_capped(
        "analyze", trades, "--quotes", quotes, "--max-quote-age", "none", "--to", "json"
    )
    assert code == 0
    assert "older than" not in err
    market = market_bars(
        make_trades([(0, "X", 10.9, 1, 0), (300, "X", 10.1, 1, 0)]),
        make_quotes([(-1, "X", 10, 1, 11, 1), (30, "X", 10, 1, 11, 1)]),
        signing=Signing(max_quote_age="1m"),
    )
    assert market.checks is not None
    checks = market.checks.collect()
    assert checks.select("trades", "stale_quote", "after_last_quote").row(0) == (2, 1, 2)


def test_vendor_signed_trades_need_no_quote_and_get_no_warning(tmp_path: Path) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "ts,symbol,price,size,aggressor_side\n"
        "2024-01-01T00:00:01Z,X,1.5,1,1\n2024-01-01T00:00:02Z,X,1.4,1,-1\n"
    )
    quotes = quotes_csv(tmp_path / "quotes.csv", [(datetime(2024, 1, 1, 1, tzinfo=UTC), "X", 1, 2)])
    code, _, err = run_capped("classify", trades, "--quotes", quotes, "--to", "csv")
    assert code == 0
    assert "no earlier quote" not in err
    assert "no quote precedes" not in err


# --- real files (skipped without ../shared) ------------------------------------------------


def test_real_binance_spot_and_futures_folder_is_one_row_per_venue(tmp_path: Path) -> None:
    source = SHARED / "binance"
    if not source.exists():
        pytest.skip("../shared/data is not present")
    folder = tmp_path / "downloads"
    (folder / "spot").mkdir(parents=True)
    (folder / "futures" / "um").mkdir(parents=True)
    (folder / "spot" / "BTCUSDT-trades-2023-04-05.csv").symlink_to(
        source / "spot" / "BTCUSDT-trades-2023-04-05.csv"
    )
    for name in ("trades", "bookTicker"):
        target = f"BTCUSDT-{name}-2024-07-19.csv"
        (folder / "futures" / "um" / target).symlink_to(source / "futures" / "um" / target)
    code, out, err = run_capped(
        "analyze", folder, "--table", "summary", "--to", "json", timeout=300
    )
    assert code == 0, err
    rows = _rows(out)
    assert set(rows) == {("binance-spot", "BTCUSDT"), ("binance-um", "BTCUSDT")}
    assert rows["binance-spot", "BTCUSDT"]["trades"] == 3144
    assert rows["binance-um", "BTCUSDT"]["trades"] == 9727
    # The summary's OFI is the OFI of every quote event, as from the quotes alone.
    [loaded] = mmflow.io.load(
        [str(folder / "futures" / "um" / "BTCUSDT-bookTicker-2024-07-19.csv")]
    )
    assert loaded.frames.quotes is not None
    quotes_alone = quote_ofi_totals(loaded.frames.quotes.sort("ts", maintain_order=True))
    ofi = quotes_alone["ofi"].item()
    assert rows["binance-um", "BTCUSDT"]["ofi"] == pytest.approx(ofi, abs=1e-6)
    assert rows["binance-spot", "BTCUSDT"]["ofi"] is None
    code, mixed, err = run_capped("classify", folder, "--evaluate", "--to", "json", timeout=300)
    assert code == 0, err
    scores = {(r["venue"], r["method"]): r for r in json.loads(mixed)}
    # Before issue 9 the spot trades were signed with futures quotes (Lee-Ready 0.44).
    assert ("binance-spot", "lee-ready") not in scores
    assert scores["binance-um", "lee-ready"]["accuracy"] >= 0.998
    code, alone, err = run_capped(
        "classify", folder / "futures" / "um", "--evaluate", "--to", "json", timeout=300
    )
    assert code == 0, err
    assert_same_scores(
        [r for r in json.loads(mixed) if r["venue"] == "binance-um"], json.loads(alone)
    )


def test_quote_warnings_name_venues_and_files_without_one() -> None:
    counts = {"stale_quote": [0, 0], "after_last_quote": [0, 0], "stale_future_quote": [0, 0]}
    checks = pl.DataFrame(
        {"venue": ["binance-um", None], "symbol": ["X", "X"], "trades": [5, 0], "quotes": [0, 7]}
        | counts,
        schema_overrides={"venue": pl.String},
    )
    warnings = quote_warnings(checks, max_quote_age="1m")
    assert warnings[0].startswith(
        "trades and quotes share no venue (trades: binance-um; quotes: (none))"
    )
    assert "X: 7 quotes but no trades (not analysed)" in warnings


def test_library_durations_go_through_the_same_validator() -> None:
    trades = make_trades([(0, "X", 10.0, 1.0, 1)])
    with pytest.raises(ParameterError, match="longer than 366d"):
        analyze(trades, options=BarOptions(every="1000000d"))
    with pytest.raises(ParameterError, match="quote lag"):
        market_bars(trades, signing=Signing(lag="2d"))
    with pytest.raises(ParameterError, match="max_quote_age"):
        market_bars(trades, signing=Signing(max_quote_age="0s"))


@pytest.mark.parametrize("stamp", ["1970-01-01T00:00:00Z", "3000-01-01T00:00:00Z"])
def test_a_far_timestamp_in_a_tiny_file_makes_no_giant_grid(tmp_path: Path, stamp: str) -> None:
    # Issue 9: three rows, one at epoch 0 (or year 3000), grew to 16-21 GB of bars. Bars only on
    # days with data keep the run tiny whether or not the reader drops the implausible row.
    path = tmp_path / "trades.csv"
    path.write_text(
        "ts,symbol,price,size\n"
        f"{stamp},X,10,1\n2024-07-19T00:00:01Z,X,11,1\n2024-07-19T00:02:01Z,X,12,1\n"
    )
    code, out, err = run_capped("flow", path, "--bar", "1m", "--to", "csv")
    assert code == 0, err
    assert 3 <= len(out.splitlines()) <= 5  # the header, minutes 0, 1, 2 (and the far row's bar)
