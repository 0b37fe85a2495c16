"""A chunk's bar grid from each day's first and last event (issue 11, the grid stage).

:func:`mmflow.engine.chunks.grid_events` keeps, per UTC day, the first and last row of a
chunk's time-ordered rows; :func:`mmflow.metrics.flow.event_grid` of those rows must equal the
grid of every row, for any bar length (also lengths that do not divide a day, whose bars
cross midnight) and any spread of events over days.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.engine.chunks import day_ends, grid_events
from mmflow.metrics.flow import event_grid

NS = 1_000_000_000
DAY = 86_400 * NS
START = 1_704_153_600 * NS  # 2024-01-02 UTC


def _frame(offsets: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": ["X"] * len(offsets), "ts": sorted(START + o for o in offsets)}
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


@settings(max_examples=80, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=-DAY, max_value=4 * DAY), max_size=60),
    every=st.sampled_from(["1s", "1m", "7m", "1h", "5h", "1d"]),
)
def test_grid_of_day_ends_equals_grid_of_every_row(offsets: list[int], every: str) -> None:
    frame = _frame(offsets)
    ends = grid_events(frame, ["symbol"], session=False)
    assert ends.height <= 2 * (frame["ts"].dt.date().n_unique())
    whole = event_grid(frame.lazy(), every=every, keys=["symbol"]).collect()
    assert event_grid(ends.lazy(), every=every, keys=["symbol"]).collect().equals(whole)


def test_day_ends_keeps_each_days_first_and_last_row() -> None:
    offsets = [0, 5, 9, DAY + 1, 3 * DAY, 3 * DAY + 2, 3 * DAY + 4, 3 * DAY + 8]
    frame = _frame(offsets).with_row_index("row")
    kept = day_ends(frame, ["row", "ts"])["row"].to_list()
    assert kept == [0, 2, 3, 4, 7]


def test_sessions_and_other_clocks_keep_every_row() -> None:
    frame = _frame([0, 1, 2, 3])
    assert grid_events(frame, ["symbol"], session=True).height == 4
    local = frame.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    assert grid_events(local, ["symbol"], session=False).height == 4
    cast = grid_events(frame, ["symbol"], session=False, dtype=pl.Datetime("us", "UTC"))
    assert cast.schema["ts"] == pl.Datetime("us", "UTC")
