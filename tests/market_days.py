"""Generated multi-instrument, multi-day canonical trades and quotes (issue 14 tests).

Trading runs around the clock, so each day's last trades need the next day's first quotes for
their trade costs (the future-mid overlap) and the tick state, the last quotes (of every kind:
crossed and one-sided quotes are mixed in) and partly filled VPIN buckets cross every midnight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

NS = 1_000_000_000
DAY = 86_400 * NS
T0 = 1_717_200_000 * NS - (1_717_200_000 * NS) % DAY  # a UTC midnight (2024-06-01)
UTC_NS = pl.Datetime("ns", "UTC")


@dataclass(frozen=True)
class Book:
    """A random quote book: the true bid and ask, and the quotes as published."""

    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    quoted: dict[str, np.ndarray]

    def frame(self, **labels: str) -> pl.DataFrame:
        """The quotes (``ts``, the ``labels`` columns, then the four sides; NaN as null)."""
        return pl.DataFrame({"ts": self.ts, **labels, **self.quoted}).with_columns(
            pl.col("ask_price").fill_nan(None)
        )


def random_book(rng: np.random.Generator, quote_ts: np.ndarray, *, base: float) -> Book:
    """Draw a quote book at ``quote_ts``: a ±1-cent random walk of the mid around ``base``,
    half spreads of 0.5 or 1.5 cents, 3 % crossed quotes (bid above the ask) and 2 % one-sided
    ones (no ask), sizes 1-49.
    """
    n = len(quote_ts)
    mid = base + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n))
    half = 0.005 + 0.01 * rng.integers(0, 2, n)
    bid, ask = np.round(mid - half, 3), np.round(mid + half, 3)
    crossed = rng.random(n) < 0.03  # crossed books …
    quoted_bid = np.where(crossed, ask + 0.01, bid)
    one_sided = rng.random(n) < 0.02  # … and one-sided ones, carried too
    quoted = {
        "bid_price": quoted_bid,
        "bid_size": rng.integers(1, 50, n).astype(float),
        "ask_price": np.where(one_sided, np.nan, ask),
        "ask_size": rng.integers(1, 50, n).astype(float),
    }
    return Book(quote_ts, bid, ask, quoted)


def in_time_order(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate generated parts, ``ts`` as UTC nanoseconds, in time order (stable)."""
    return pl.concat(parts).with_columns(pl.col("ts").cast(UTC_NS)).sort("ts", maintain_order=True)


def market_days(
    seed: int,
    *,
    days: int = 3,
    first_day: int = 0,
    symbols: tuple[str, ...] = ("AAA", "BBB"),
    venues: tuple[str, ...] = ("XNAS",),
    rows: int = 600,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return canonical ``(trades, quotes)`` for ``days`` UTC days from ``T0 + first_day``.

    Each (day, symbol, venue) draws from its own seed, so day ``d`` is the same whether it is
    made alone or with others (a dataset can grow by a day).
    """
    trade_parts, quote_parts = [], []
    for day in range(first_day, first_day + days):
        for s, symbol in enumerate(symbols):
            for v, venue in enumerate(venues):
                rng = np.random.default_rng([seed, day, s, v])
                start = T0 + day * DAY
                n_quotes = int(rows * rng.uniform(0.5, 1.0))
                quote_ts = np.sort(start + rng.integers(0, DAY, n_quotes))
                book = random_book(rng, quote_ts, base=100.0 + s)
                bid, ask = book.bid, book.ask
                quote_parts.append(book.frame(symbol=symbol, venue=venue))
                n_trades = int(rows * rng.uniform(0.5, 1.0))
                trade_ts = np.sort(start + rng.integers(0, DAY, n_trades))
                position = np.clip(np.searchsorted(quote_ts, trade_ts) - 1, 0, n_quotes - 1)
                side = rng.choice(np.array([-1, 1], dtype=np.int8), n_trades)
                price = np.where(side > 0, ask[position], bid[position])
                repeat = rng.random(n_trades) < 0.3  # equal prices: zero ticks
                price = np.where(repeat, np.roll(price, 1), price)
                vendor = np.where(rng.random(n_trades) < 0.5, 0, side).astype(np.int8)
                trade_parts.append(
                    pl.DataFrame(
                        {
                            "ts": trade_ts,
                            "symbol": symbol,
                            "venue": venue,
                            "price": price,
                            "size": rng.integers(1, 10, n_trades).astype(float),
                            "aggressor_side": vendor,
                        }
                    )
                )
    trades, quotes = in_time_order(trade_parts), in_time_order(quote_parts)
    return trades, quotes
