"""`mmflow classify --evaluate` on every real file with a vendor side in ../shared/data.

Each file's tick-rule and Lee-Ready scores are recomputed by plain Python loops over the
canonical rows (the readers are pinned separately): the tick rule per symbol, and Lee-Ready with
the latest quote strictly before each trade (bisect), or the trade's own pre-trade BBO. Skipped
where ../shared is absent.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import mmflow.io
from mmflow.analysis import Selection, prepare
from mmflow.cli import cli
from mmflow.io.assemble import gather
from mmflow.schema import QUOTES, TRADES
from tests.conftest import SHARED
from tests.helpers import tick_rule_reference

BINANCE = "binance/futures"
CASES: list[tuple[str, list[str]]] = [
    (
        f"{BINANCE}/um/BTCUSDT-trades-2024-07-18.csv",
        [f"{BINANCE}/um/BTCUSDT-bookTicker-2024-07-18.csv"],
    ),
    (
        f"{BINANCE}/um/BTCUSDT-trades-2024-07-19.csv",
        [f"{BINANCE}/um/BTCUSDT-bookTicker-2024-07-19.csv"],
    ),
    (
        f"{BINANCE}/um/ETHUSDT-trades-2024-07-19.csv",
        [f"{BINANCE}/um/ETHUSDT-bookTicker-2024-07-19.csv"],
    ),
    (
        f"{BINANCE}/cm/BTCUSD_PERP-trades-2024-08-09.csv",
        [f"{BINANCE}/cm/BTCUSD_PERP-bookTicker-2024-08-09.csv"],
    ),
    ("binance/spot/BTCUSDT-trades-2023-04-05.csv", []),
    (
        "tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",
        ["tardis/binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz"],
    ),
    ("tardis/bitmex_trades_XBTUSD.csv", []),
    ("databento/nautilus_trader/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.csv", []),
    ("databento/nautilus_trader/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst", []),
    ("databento/nautilus_trader/futures_trades_2024-07-01T23-58_2024-07-02T00-02.csv", []),
    ("lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv", []),
    ("sierra-es/ES_2022-01-24_tbt.txt", []),
    ("sierra-es/ES_2023-06-29_tbt.txt", []),
    *[
        (f"databento/databento-python/{dataset}/test_data.{schema}.csv", [])
        for dataset in ("GLBX.MDP3", "XNAS.ITCH", "EQUS.MINI", "NDEX.IMPACT")
        for schema in ("trades", "tbbo")
    ],
]


MAX_QUOTE_AGE_NS = 60 * 10**9
"""The default --max-quote-age (1m): an older quote counts as no quote (issue 9)."""


def lee_ready_reference(trades: pl.DataFrame, quotes: pl.DataFrame | None) -> list[int]:
    """Lee-Ready per trade: own BBO, else the latest quote strictly before and at most
    MAX_QUOTE_AGE_NS old; at mid: tick rule."""
    out = [0] * trades.height
    for symbol in trades["symbol"].unique().to_list():
        rows = [i for i, s in enumerate(trades["symbol"].to_list()) if s == symbol]
        part = trades[rows]
        ticks = tick_rule_reference(part["price"].to_list())
        quote_times: list[int] = []
        quote_values: list[tuple[float | None, float | None]] = []
        if quotes is not None:
            mine = quotes.filter(pl.col("symbol") == symbol)
            quote_times = mine["ts"].cast(pl.Int64).to_list()
            quote_values = list(
                zip(mine["bid_price"].to_list(), mine["ask_price"].to_list(), strict=True)
            )
        own = "bid_price" in part.columns
        times = part["ts"].cast(pl.Int64).to_list()
        for k, row in enumerate(part.iter_rows(named=True)):
            bid, ask = (row["bid_price"], row["ask_price"]) if own else (None, None)
            if bid is None and ask is None and quote_times:
                at = bisect.bisect_left(quote_times, times[k]) - 1  # strictly before the trade
                if at >= 0 and quote_times[at] >= times[k] - MAX_QUOTE_AGE_NS:
                    bid, ask = quote_values[at]
            sign = 0
            if bid is not None and ask is not None and bid < ask:
                mid = (bid + ask) / 2
                sign = 1 if row["price"] > mid else -1 if row["price"] < mid else 0
            out[rows[k]] = sign if sign != 0 else ticks[k]
    return out


def scores(signs: list[int], truth: list[int]) -> tuple[int, int, int]:
    pairs = [(s, v) for s, v in zip(signs, truth, strict=True) if v != 0]
    return len(pairs), sum(1 for s, _ in pairs if s != 0), sum(1 for s, v in pairs if s == v)


@pytest.mark.parametrize(("trades_file", "quote_files"), CASES, ids=[c[0] for c in CASES])
def test_evaluate_matches_reference_on_real_file(trades_file: str, quote_files: list[str]) -> None:
    path = SHARED / trades_file
    if not path.exists():
        pytest.skip("../shared/data is not present")
    if path.name.endswith(".dbn.zst"):
        pytest.importorskip("databento_dbn")
    paths = [str(path), *(str(SHARED / q) for q in quote_files)]
    result = CliRunner().invoke(cli, ["classify", *paths, "--evaluate", "--to", "json"])
    assert result.exit_code == 0, result.stderr
    rows = {(r["symbol"], r["method"]): r for r in json.loads(result.stdout)}

    inputs = mmflow.io.load(paths)
    trades = gather(inputs, TRADES)
    assert trades is not None
    frame = prepare(trades, TRADES, Selection()).collect()
    quote_frame = gather(inputs, QUOTES)
    quotes = (
        prepare(quote_frame, QUOTES, Selection()).collect() if quote_frame is not None else None
    )
    truth = frame["aggressor_side"].to_list()
    ticks = [0] * frame.height
    for symbol in frame["symbol"].unique().to_list():
        rows_of = [i for i, s in enumerate(frame["symbol"].to_list()) if s == symbol]
        for i, sign in zip(
            rows_of, tick_rule_reference([frame["price"][i] for i in rows_of]), strict=True
        ):
            ticks[i] = sign
    lee_ready = lee_ready_reference(frame, quotes)
    for symbol in frame["symbol"].unique().to_list():
        mask = [s == symbol for s in frame["symbol"].to_list()]
        mine = [t for t, m in zip(truth, mask, strict=True) if m]
        if not any(mine):
            continue
        tick_row = rows[(symbol, "tick")]
        expected = scores([t for t, m in zip(ticks, mask, strict=True) if m], mine)
        assert (tick_row["trades"], tick_row["classified"], tick_row["correct"]) == expected
        if (symbol, "lee-ready") in rows:
            lr_row = rows[(symbol, "lee-ready")]
            expected = scores([s for s, m in zip(lee_ready, mask, strict=True) if m], mine)
            assert (lr_row["trades"], lr_row["classified"], lr_row["correct"]) == expected
    if "mbp-1" in trades_file and "nautilus" in trades_file:
        assert rows[("ESU4", "lee-ready")]["accuracy"] >= 0.99
    if trades_file.endswith("BTCUSDT-trades-2024-07-19.csv"):
        assert rows[("BTCUSDT", "lee-ready")]["accuracy"] >= 0.998  # product.md: 99.8 %


def test_shared_cases_exist_for_every_sided_folder() -> None:
    if not SHARED.exists():
        pytest.skip("../shared/data is not present")
    folders = {Path(c[0]).parts[0] for c in CASES}
    assert folders == {"binance", "tardis", "databento", "lobster", "sierra-es"}
