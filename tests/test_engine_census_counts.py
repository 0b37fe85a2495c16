"""The census' counting pass groups by the day number alone when the bar divides a day.

Reference: every row's unit (:func:`mmflow.engine.census.unit_expression`) and UTC date, as
the counts were grouped before; the result must be identical (columns, dtypes, rows, order),
for bar lengths that divide a day and ones that do not, with rows before 1970, nulls and
several instruments.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.engine.census import (
    DATE,
    UNIT,
    _count_census,
    _quote_counts,
    _trade_counts,
    unit_expression,
)

NS = 1_000_000_000
DAY = 86_400 * NS


def _reference(
    frame: pl.LazyFrame, keys: tuple[str, ...], every_ns: int, aggregations: list[pl.Expr]
) -> pl.DataFrame:
    group = [*keys, UNIT, DATE]
    return (
        frame.with_columns(unit_expression(every_ns), pl.col("ts").dt.date().alias(DATE))
        .group_by(group)
        .agg(aggregations)
        .sort(group, nulls_last=True)
        .collect()
    )


rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(min_value=-3 * DAY, max_value=5 * DAY)),
        st.sampled_from(["A", "B", "C"]),
        st.one_of(st.floats(min_value=-1, max_value=5), st.just(float("nan"))),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    rows=rows, every=st.sampled_from([NS, 60 * NS, 3_600 * NS, DAY, 7 * 60 * NS, 5 * 3_600 * NS])
)
def test_counts_equal_the_per_row_unit_and_date_grouping(
    rows: list[tuple[int | None, str, float]], every: int
) -> None:
    frame = pl.DataFrame(
        {
            "ts": [r[0] for r in rows],
            "symbol": [r[1] for r in rows],
            "size": [r[2] for r in rows],
        },
        schema={"ts": pl.Int64, "symbol": pl.String, "size": pl.Float64},
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    keys = ("symbol",)
    trades, quotes = _count_census(frame.lazy(), frame.lazy(), keys, every)
    assert quotes is not None
    assert trades.equals(_reference(frame.lazy(), keys, every, _trade_counts()))
    assert quotes.equals(_reference(frame.lazy(), keys, every, _quote_counts()))
    assert trades.schema == _reference(frame.lazy(), keys, every, _trade_counts()).schema
