"""Run both real-market event studies on every data file present (not a test).

The two claims mmflow makes about market makers, tested on real data (issue 10, item 4):

(a) **distribution**: after a detected distribution episode the price reverts against the
    distributed inventory more than at placebo bars —
    :func:`mmflow.metrics.phase_evaluation.event_study`
    (what ``mmflow phases --evaluate`` prints), signed log mid returns over the next h bars;
(b) **liquidity withdrawal**: a withdrawal episode (spread ≥ 2 × its trailing median or depth
    ≤ ½ of it) is followed by higher realised volatility than non-episode bars —
    :func:`mmflow.metrics.event_study.withdrawal_volatility_study` (what ``mmflow inventory
    --evaluate`` prints).

Each file gets bars suited to its span (most are minutes long) and a trailing window of about a
quarter to a half of its bars (``--lookback``: the liquidity medians, the phase rule's noise
scale); the same settings serve both studies. Files that are not present are skipped, so the
script runs on a checkout without ``../shared``; where ``sample_data/`` holds a copy of a shared
file (Tardis, Databento ESU4) or its first minutes (Binance COIN-M), the copy is used instead and
the dataset's name says so. Trade files that carry their own pre-trade best
bid and offer but no quote stream (the Sierra ES exports) get a quote series sampled at their
trades, so that the liquidity state exists; this is said in the output.

Everything is computed through the library calls the CLI makes (``mmflow.analysis.phases`` and
``market_bars`` + ``inventory_evaluation``), with the default phase rule of the checkout it runs
in: after the phase detector changes, re-run it to refresh the README table. Parameters are
passed by name only where the current ``PhaseParameters`` has the field, so the script survives
a redesign of the rule's parameters.

Usage::

    python benchmarks/event_studies.py                  # markdown tables for the README
    python benchmarks/event_studies.py --csv out.csv    # also every number, one row per cell
    python benchmarks/event_studies.py --only binance   # datasets whose name contains this
    python benchmarks/event_studies.py --placebo-ratio 20   # 20 placebo bars per withdrawal
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

import mmflow.io
from mmflow.analysis import BarOptions, Selection, inventory_evaluation, market_bars, phases
from mmflow.io import ReadOptions
from mmflow.io.assemble import gather
from mmflow.metrics.event_study import DEFAULT_HORIZONS
from mmflow.metrics.phases import PhaseParameters
from mmflow.schema import QUOTES, TRADES

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = REPOSITORY.parent / "shared" / "data"
BINANCE = "binance/futures"
SEED = 0


@dataclass(frozen=True)
class Dataset:
    """One market: its files, bar length and trailing window."""

    name: str
    files: tuple[str, ...]
    bar: str
    lookback: int
    root: str = "shared"  # "shared" (../shared/data) or "repo" (this repository)
    end: datetime | None = None  # study only before this time (e.g. where quotes stop)
    fallback: tuple[str, ...] = ()  # copies in this repository, used when ``files`` are absent
    fallback_note: str = "sample_data copy"

    def paths(self, shared: Path) -> tuple[list[Path], str]:
        """Return the files to read and the dataset's name (marked when a copy is used)."""
        base = shared if self.root == "shared" else REPOSITORY
        paths = [base / name for name in self.files]
        copies = [REPOSITORY / name for name in self.fallback]
        if not all(path.exists() for path in paths) and copies:
            return copies, f"{self.name} [{self.fallback_note}]"
        return paths, self.name


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "Binance USD-M BTCUSDT 2024-07-18 (3 min)",
        (
            f"{BINANCE}/um/BTCUSDT-trades-2024-07-18.csv",
            f"{BINANCE}/um/BTCUSDT-bookTicker-2024-07-18.csv",
        ),
        "1s",
        60,
    ),
    Dataset(
        "Binance USD-M BTCUSDT 2024-07-19 (5 min)",
        (
            f"{BINANCE}/um/BTCUSDT-trades-2024-07-19.csv",
            f"{BINANCE}/um/BTCUSDT-bookTicker-2024-07-19.csv",
        ),
        "1s",
        60,
    ),
    Dataset(
        "Binance USD-M ETHUSDT 2024-07-19 (5 min)",
        (
            f"{BINANCE}/um/ETHUSDT-trades-2024-07-19.csv",
            f"{BINANCE}/um/ETHUSDT-bookTicker-2024-07-19.csv",
        ),
        "1s",
        60,
    ),
    Dataset(
        "Binance COIN-M BTCUSD_PERP 2024-08-09 (5 min)",
        (
            f"{BINANCE}/cm/BTCUSD_PERP-trades-2024-08-09.csv",
            f"{BINANCE}/cm/BTCUSD_PERP-bookTicker-2024-08-09.csv",
        ),
        "1s",
        60,
        fallback=(
            "sample_data/binance/BTCUSD_PERP-trades-2024-08-09.csv",
            "sample_data/binance/BTCUSD_PERP-bookTicker-2024-08-09.csv",
        ),
        fallback_note="sample_data: first 77 s",
    ),
    Dataset(
        "Binance spot BTCUSDT 2023-04-05 (7 min, no quotes)",
        ("binance/spot/BTCUSDT-trades-2023-04-05.csv",),
        "1s",
        60,
    ),
    Dataset(
        "Tardis Binance BTCUSDT 2020-02-22 (quotes: first 4 min)",
        (
            "tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",
            "tardis/binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz",
        ),
        "1s",
        60,
        end=datetime(2020, 2, 22, 0, 3, 47, tzinfo=UTC),
        fallback=(
            "sample_data/tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",
            "sample_data/tardis/binance-futures_quotes_2020-02-22_BTCUSDT.csv.gz",
        ),
    ),
    Dataset(
        "Tardis Binance BTCUSDT 2020-02-22 (trades: 2 h)",
        ("tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",),
        "5s",
        240,
        fallback=("sample_data/tardis/binance-futures_trades_2020-02-22_BTCUSDT.csv.gz",),
    ),
    Dataset(
        "Databento CME ESU4 mbp-1 2024-07-01 (4 min)",
        ("databento/nautilus_trader/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",),
        "1s",
        60,
        fallback=("sample_data/databento/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",),
    ),
    Dataset(
        "LOBSTER NASDAQ AMZN 2012-06-21 (20 min)",
        ("lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv",),
        "5s",
        60,
    ),
    Dataset("Sierra CME ES 2022-01-24 (1 min)", ("sierra-es/ES_2022-01-24_tbt.txt",), "1s", 20),
    Dataset("Sierra CME ES 2023-06-29 (2 s)", ("sierra-es/ES_2023-06-29_tbt.txt",), "100ms", 8),
    Dataset(
        "sample_data simulated SIMA (6 h, 1 symbol)",
        ("sample_data/simulated/trades.parquet", "sample_data/simulated/quotes.parquet"),
        "1m",
        240,
        root="repo",
    ),
)


@dataclass
class Outcome:
    """The two studies of one dataset."""

    dataset: Dataset
    name: str
    bars: int
    quotes: str
    distribution: pl.DataFrame | None = None
    distribution_episodes: int = 0
    withdrawal: pl.DataFrame | None = None
    note: str = ""


def _phase_parameters(lookback: int) -> PhaseParameters:
    """The default rule with ``lookback`` where the rule has such a parameter."""
    names = {f.name for f in dataclasses.fields(PhaseParameters)}
    chosen = {"lookback": lookback} if "lookback" in names else {}
    return PhaseParameters(**chosen)


def _quotes_from_trades(trades: pl.LazyFrame) -> pl.LazyFrame | None:
    """A quote series sampled at trades from their pre-trade BBO, when they carry one."""
    names = trades.collect_schema().names()
    needed = ["bid_price", "bid_size", "ask_price", "ask_size"]
    if not all(name in names for name in needed):
        return None
    columns = [c for c in QUOTES.names if c in names]
    return trades.select(columns).filter(
        pl.col("bid_price").is_not_null() | pl.col("ask_price").is_not_null()
    )


def run_dataset(
    dataset: Dataset, shared: Path, horizons: Sequence[int], placebo_ratio: int = 1
) -> Outcome | None:
    """Both studies on one dataset; ``None`` when a file is missing."""
    paths, name = dataset.paths(shared)
    if not all(path.exists() for path in paths):
        return None
    inputs = mmflow.io.load([str(p) for p in paths], "auto", ReadOptions())
    trades = gather(inputs, TRADES)
    quotes = gather(inputs, QUOTES)
    assert trades is not None, dataset.name
    quote_note = "quote stream" if quotes is not None else "none"
    if quotes is None:
        quotes = _quotes_from_trades(trades)
        quote_note = "BBO at trades" if quotes is not None else "none"
    options = BarOptions(every=dataset.bar, lookback=dataset.lookback)
    selection = Selection(end=dataset.end)
    market = market_bars(trades, quotes, options=options, selection=selection)
    outcome = Outcome(dataset, name, 0, quote_note)
    [bars] = pl.collect_all([market.bars.select(pl.len())])
    outcome.bars = int(bars.item())
    if quotes is not None:
        withdrawal = inventory_evaluation(
            market, options, horizons=horizons, placebo_seed=SEED, placebo_ratio=placebo_ratio
        )
        outcome.withdrawal = withdrawal.collect()
    found = phases(
        trades,
        quotes,
        options=options,
        parameters=_phase_parameters(dataset.lookback),
        horizons=horizons,
        placebo_seed=SEED,
        selection=selection,
    )
    episodes, distribution = pl.collect_all([found.episodes, found.study])
    outcome.distribution_episodes = episodes.filter(pl.col("phase") == "distribution").height
    outcome.distribution = distribution
    return outcome


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:+.{digits}f}"


def distribution_cell(row: dict[str, object]) -> str:
    """``n · mean − placebo mean (bp) · Welch t`` for one horizon of the phases study."""
    count = int(row["count"] or 0)  # type: ignore[call-overload]
    if count == 0:
        return "0"
    difference = row["difference"]
    bp = None if difference is None else 1e4 * float(difference)  # type: ignore[arg-type]
    t = row["difference_t_statistic"]
    return f"{count} · {_number(bp)} bp · t {_number(t)}"  # type: ignore[arg-type]


def withdrawal_cell(row: dict[str, object]) -> str:
    """``n · event / placebo volatility · Welch t`` for one horizon of the withdrawal study."""
    count = int(row["events"] or 0)  # type: ignore[call-overload]
    if count == 0:
        return f"0 ({row['beyond_data']} past the end)"
    ratio = row["volatility_ratio"]
    shown = "–" if ratio is None else f"{float(ratio):.2f}×"  # type: ignore[arg-type]
    return f"{count} · {shown} · t {_number(row['t_statistic'])}"  # type: ignore[arg-type]


def markdown(outcomes: list[Outcome], horizons: Sequence[int]) -> str:
    """The two README tables."""
    heads = " | ".join(f"h = {h}" for h in horizons)
    rule = "|---" * (4 + len(horizons)) + "|"
    lines = [
        "(a) Reversal after distribution episodes: events · mean signed return minus placebo "
        "(basis points) · Welch t",
        "",
        f"| data | bar | bars | distribution episodes | {heads} |",
        rule,
    ]
    for outcome in outcomes:
        study = outcome.distribution
        cells = (
            [distribution_cell(row) for row in study.iter_rows(named=True)]
            if study is not None
            else ["–"] * len(horizons)
        )
        lines.append(
            f"| {outcome.name} | {outcome.dataset.bar} | {outcome.bars:,} | "
            f"{outcome.distribution_episodes} | {' | '.join(cells)} |"
        )
    lines += [
        "",
        "(b) Realised volatility after liquidity-withdrawal episodes: events · event / placebo "
        "mean volatility · Welch t",
        "",
        f"| data | bar | quotes | withdrawal episodes | {heads} |",
        rule,
    ]
    for outcome in outcomes:
        study = outcome.withdrawal
        if study is None or study.is_empty():
            why = "no quotes" if study is None else "no episodes"
            cells = [why] * len(horizons)
            episodes = 0
        else:
            rows = list(study.iter_rows(named=True))
            episodes = int(sum(row["episodes"] for row in rows) / len(horizons))
            cells = [
                "; ".join(withdrawal_cell(row) for row in rows if row["horizon_bars"] == h)
                for h in horizons
            ]
        lines.append(
            f"| {outcome.name} | {outcome.dataset.bar} | {outcome.quotes} | "
            f"{episodes} | {' | '.join(cells)} |"
        )
    return "\n".join(lines)


def long_table(outcomes: list[Outcome]) -> pl.DataFrame:
    """Every number, one row per dataset, study, symbol and horizon."""
    frames = []
    for outcome in outcomes:
        name = pl.lit(outcome.name).alias("dataset")
        bar = pl.lit(outcome.dataset.bar).alias("bar")
        if outcome.distribution is not None:
            frames.append(
                outcome.distribution.select(
                    name,
                    bar,
                    pl.lit("distribution").alias("study"),
                    pl.lit(None, pl.String).alias("symbol"),
                    pl.col("horizon").alias("horizon_bars"),
                    pl.col("count").cast(pl.Int64).alias("events"),
                    pl.col("mean").alias("event_mean"),
                    pl.col("placebo_mean"),
                    pl.col("difference"),
                    pl.col("difference_t_statistic").alias("t_statistic"),
                )
            )
        if outcome.withdrawal is not None and not outcome.withdrawal.is_empty():
            frames.append(
                outcome.withdrawal.select(
                    name,
                    bar,
                    pl.lit("withdrawal").alias("study"),
                    pl.col("symbol"),
                    pl.col("horizon_bars"),
                    pl.col("events").cast(pl.Int64),
                    pl.col("event_volatility").alias("event_mean"),
                    pl.col("placebo_volatility").alias("placebo_mean"),
                    pl.col("difference"),
                    pl.col("t_statistic"),
                )
            )
    return pl.concat(frames) if frames else pl.DataFrame()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the studies and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--only", help="run only datasets whose name contains this text")
    parser.add_argument("--csv", type=Path, help="also write every number to this CSV file")
    parser.add_argument(
        "--placebo-ratio",
        type=int,
        default=1,
        help="placebo bars per withdrawal episode (default 1: as many as episodes)",
    )
    args = parser.parse_args(argv)
    horizons = list(DEFAULT_HORIZONS)
    outcomes = []
    for dataset in DATASETS:
        if args.only and args.only.lower() not in dataset.name.lower():
            continue
        outcome = run_dataset(dataset, args.shared, horizons, args.placebo_ratio)
        if outcome is None:
            print(f"skipped (files not present): {dataset.name}", file=sys.stderr)
            continue
        outcomes.append(outcome)
    print(markdown(outcomes, horizons))
    if args.csv is not None:
        long_table(outcomes).write_csv(args.csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
