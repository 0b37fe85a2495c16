from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from mmflow.errors import ParameterError
from mmflow.metrics.bvc import (
    Distribution,
    bulk_volume_classification,
    estimated_dof,
    normal_cdf,
    student_t_cdf,
)
from tests.helpers import typed_frame


def phi_reference(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def t1_cdf(x: float) -> float:
    return 0.5 + math.atan(x) / math.pi


def t2_cdf(x: float) -> float:
    return 0.5 + x / (2.0 * math.sqrt(2.0 + x * x))


def t3_cdf(x: float) -> float:
    return (
        0.5 + (x / (math.sqrt(3.0) * (1.0 + x * x / 3.0)) + math.atan(x / math.sqrt(3.0))) / math.pi
    )


def t4_cdf(x: float) -> float:
    q = 1.0 + x * x / 4.0
    return 0.5 + 0.375 * x / math.sqrt(q) * (1.0 - x * x / (12.0 * q))


# Closed forms of the Student-t CDF for ν = 1 (Cauchy), 2, 3 and 4.
T_CLOSED_FORMS: dict[float, Callable[[float], float]] = {
    1.0: t1_cdf,
    2.0: t2_cdf,
    3.0: t3_cdf,
    4.0: t4_cdf,
}


def t_cdf_by_quadrature(x: float, dof: float, intervals: int = 4000) -> float:
    """Slow Student-t CDF: Simpson's rule on the density from 0 to |x|."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def density(u: float) -> float:
        return math.exp(log_norm - (dof + 1) / 2 * math.log1p(u * u / dof))

    h = abs(x) / intervals
    total = density(0.0) + density(abs(x))
    for i in range(1, intervals):
        total += (4 if i % 2 else 2) * density(i * h)
    area = total * h / 3
    return 0.5 + area if x >= 0 else 0.5 - area


def excess_kurtosis_reference(xs: list[float]) -> float | None:
    """Unbiased sample excess kurtosis G2 (as polars ``kurtosis(bias=False)``)."""
    n = len(xs)
    if n < 4:
        return None
    mean = sum(xs) / n
    m2 = sum((x - mean) ** 2 for x in xs) / n
    m4 = sum((x - mean) ** 4 for x in xs) / n
    if m2 == 0:
        return None
    g2 = m4 / m2**2 - 3.0
    return ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))


def bvc_reference(
    symbols: list[str], prices: list[float], volumes: list[float], dof: float | None = None
) -> list[tuple[float | None, float | None]]:
    """Slow BVC per symbol: ΔP from the previous bar, sample σ of ΔP, normal or t CDF."""
    result: list[tuple[float | None, float | None]] = [(None, None)] * len(prices)
    for symbol in dict.fromkeys(symbols):
        rows = [i for i, s in enumerate(symbols) if s == symbol]
        changes = [prices[j] - prices[i] for i, j in itertools.pairwise(rows)]
        if len(changes) < 2:
            continue
        sigma = statistics.stdev(changes)
        if sigma == 0:
            continue
        for row, change in zip(rows[1:], changes, strict=True):
            z = change / sigma
            fraction = phi_reference(z) if dof is None else T_CLOSED_FORMS[dof](z)
            buy = volumes[row] * fraction
            result[row] = (buy, volumes[row] - buy)
    return result


def make_bars(
    prices: list[float], volumes: list[float] | None = None, symbols: list[str] | None = None
) -> pl.LazyFrame:
    n = len(prices)
    return typed_frame(
        {"symbol": symbols or ["X"] * n, "close": prices, "volume": volumes or [1000.0] * n}
    )


# Price changes 1, −1, 3, −2, −1: mean 0, Σ ΔP² = 16, sample σ = √(16/4) = 2.
ELO_PRICES = [100.0, 101.0, 100.0, 103.0, 101.0, 100.0]


# --- normal_cdf --------------------------------------------------------------------------------


def test_normal_cdf_matches_erfc_to_1e_15_on_many_points() -> None:
    xs = [i / 1000 for i in range(-40_000, 40_001)]
    out = pl.DataFrame({"x": xs}).select(normal_cdf("x"))["x"].to_list()
    worst = max(abs(got - phi_reference(x)) for got, x in zip(out, xs, strict=True))
    assert worst < 1e-15


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.0, 0.5),
        (0.5, 0.6914624612740131),
        (-1.96, 0.024997895148220435),
        (1.0, 0.8413447460685429),
    ],
)
def test_normal_cdf_table(x: float, expected: float) -> None:
    out = pl.DataFrame({"x": [x]}).select(normal_cdf("x")).item()
    assert out == pytest.approx(expected, abs=1e-15)


def test_normal_cdf_keeps_null_nan_and_saturates_at_infinity() -> None:
    df = pl.DataFrame({"x": [None, float("nan"), float("inf"), float("-inf"), 40.0, -40.0]})
    out = df.select(normal_cdf("x"))["x"].to_list()
    assert out[0] is None
    assert math.isnan(out[1])
    assert out[2:] == [1.0, 0.0, 1.0, 0.0]


def test_normal_cdf_eager_equals_lazy_and_streaming() -> None:
    df = pl.DataFrame({"x": [-3.0, -0.1, 0.0, 0.7, 8.0, None]})
    eager = df.select(normal_cdf("x"))
    assert_frame_equal(eager, df.lazy().select(normal_cdf("x")).collect())
    assert_frame_equal(eager, df.lazy().select(normal_cdf("x")).collect(engine="streaming"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-50, max_value=50), min_size=1, max_size=30))
def test_normal_cdf_is_monotone_symmetric_and_in_unit_interval(xs: list[float]) -> None:
    df = pl.DataFrame({"x": sorted(xs)}, schema={"x": pl.Float64})
    out = df.select(up=normal_cdf("x"), down=normal_cdf(-pl.col("x")))
    up = out["up"].to_list()
    assert all(0.0 <= p <= 1.0 for p in up)
    assert all(a <= b for a, b in itertools.pairwise(up))
    assert all(abs(u + d - 1.0) < 1e-15 for u, d in zip(up, out["down"].to_list(), strict=True))


# --- student_t_cdf and estimated_dof -----------------------------------------------------------


@pytest.mark.parametrize("dof", sorted(T_CLOSED_FORMS))
def test_student_t_cdf_matches_closed_forms(dof: float) -> None:
    xs = [i / 20 for i in range(-1000, 1001)]
    out = pl.DataFrame({"x": xs}).select(student_t_cdf("x", dof))["x"].to_list()
    worst = max(abs(got - T_CLOSED_FORMS[dof](x)) for got, x in zip(out, xs, strict=True))
    assert worst < 1e-14


@pytest.mark.parametrize("dof", [0.5, 2.5, 4.7, 9.0, 30.0, 100.0])
@pytest.mark.parametrize("x", [-12.0, -2.5, -0.3, 0.0, 0.01, 1.0, 4.0])
def test_student_t_cdf_matches_quadrature(x: float, dof: float) -> None:
    out = pl.DataFrame({"x": [x]}).select(student_t_cdf("x", dof)).item()
    assert out == pytest.approx(t_cdf_by_quadrature(x, dof), abs=1e-10)


def test_student_t_cdf_tends_to_normal_and_takes_per_row_dof() -> None:
    df = pl.DataFrame({"x": [0.5, 0.5, None, 0.5], "dof": [1.0, 1e6, 3.0, None]})
    out = df.select(student_t_cdf("x", pl.col("dof")))["x"].to_list()
    assert out[0] == pytest.approx(0.5 + math.atan(0.5) / math.pi, abs=1e-15)
    assert out[1] == pytest.approx(phi_reference(0.5), abs=1e-6)
    assert out[2:] == [None, None]


def test_student_t_cdf_eager_equals_lazy_and_streaming() -> None:
    df = pl.DataFrame({"x": [-3.0, -0.1, 0.0, 0.7, 8.0, None]})
    expr = student_t_cdf("x", 3.0)
    eager = df.select(expr)
    assert_frame_equal(eager, df.lazy().select(expr).collect())
    assert_frame_equal(eager, df.lazy().select(expr).collect(engine="streaming"))


@pytest.mark.parametrize(
    ("kurtosis", "dof"),
    [(6.0, 5.0), (1.0, 10.0), (0.06, 100.0), (0.01, 100.0), (0.0, 100.0), (-1.0, 100.0),
     (None, 100.0), (600.0, 4.01)],
)  # fmt: skip
def test_estimated_dof_method_of_moments(kurtosis: float | None, dof: float) -> None:
    df = pl.DataFrame({"k": [kurtosis]}, schema={"k": pl.Float64})
    assert df.select(estimated_dof(pl.col("k"))).item() == pytest.approx(dof)


# --- bulk_volume_classification ----------------------------------------------------------------


def test_bvc_half_sigma_move_buys_69_15_percent() -> None:
    # metrics.md b.1: ΔP/σ = 0.5 ⇒ V^B = 0.6915·V (bar 2: ΔP = +1, σ = 2).
    out = bulk_volume_classification(make_bars(ELO_PRICES)).collect()
    assert out["bvc_buy_volume"][1] == pytest.approx(691.4624612740131, abs=1e-9)
    assert round(out["bvc_buy_volume"][1] / 1000, 4) == 0.6915
    expected = pl.DataFrame(
        {
            "bvc_buy_volume": [None, 691.46, 308.54, 933.19, 158.66, 308.54],
            "bvc_sell_volume": [None, 308.54, 691.46, 66.81, 841.34, 691.46],
        }
    )
    assert_frame_equal(out.select(pl.selectors.starts_with("bvc").round(2)), expected)


@pytest.mark.parametrize(
    ("prices", "volumes"),
    [
        ([], []),
        ([100.0], [10.0]),
        ([100.0, 101.0], [10.0, 10.0]),  # one price change: no sample σ
        ([100.0, 100.0, 100.0, 100.0], [10.0] * 4),  # σ = 0
    ],
)
def test_bvc_without_price_variation_is_unknown(prices: list[float], volumes: list[float]) -> None:
    out = bulk_volume_classification(make_bars(prices, volumes)).collect()
    assert out["bvc_buy_volume"].null_count() == len(prices)
    assert out["bvc_sell_volume"].null_count() == len(prices)
    assert out.schema["bvc_buy_volume"] == pl.Float64
    assert out.schema["bvc_sell_volume"] == pl.Float64


def test_bvc_student_t_with_one_dof_is_cauchy() -> None:
    out = bulk_volume_classification(
        make_bars(ELO_PRICES), distribution="student-t", dof=1.0
    ).collect()
    buy = out["bvc_buy_volume"].to_list()
    assert buy[0] is None
    # ΔP/σ = 0.5, −0.5, 1.5, −1, −0.5 with F(x) = 0.5 + atan(x)/π.
    expected = [1000 * (0.5 + math.atan(z) / math.pi) for z in (0.5, -0.5, 1.5, -1.0, -0.5)]
    assert buy[1:] == pytest.approx(expected, abs=1e-9)


def test_bvc_student_t_estimates_dof_from_excess_kurtosis() -> None:
    prices = [100.0, 101.0, 100.0, 103.0, 101.0, 100.0, 100.5, 99.0, 104.0, 103.5, 103.0]
    changes = [b - a for a, b in itertools.pairwise(prices)]
    kurtosis = excess_kurtosis_reference(changes)
    assert kurtosis is not None
    assert kurtosis > 0
    dof = 4.0 + 6.0 / kurtosis
    bars = make_bars(prices)
    estimated = bulk_volume_classification(bars, distribution="student-t").collect()
    given = bulk_volume_classification(bars, distribution="student-t", dof=dof).collect()
    assert_frame_equal(estimated, given, abs_tol=1e-9)


def test_bvc_is_per_symbol_and_uses_given_columns() -> None:
    bars = pl.LazyFrame(
        {
            "ticker": ["A", "B"] * 6,
            "px": [p for pair in zip(ELO_PRICES, [10.0] * 6, strict=True) for p in pair],
            "qty": [1000.0, 5.0] * 6,
        }
    )
    out = bulk_volume_classification(bars, price="px", volume="qty", by="ticker").collect()
    a = out.filter(pl.col("ticker") == "A")["bvc_buy_volume"]
    assert a[1] == pytest.approx(691.4624612740131, abs=1e-9)
    assert out.filter(pl.col("ticker") == "B")["bvc_buy_volume"].null_count() == 6


@pytest.mark.parametrize(
    ("distribution", "dof"), [("normal", None), ("student-t", None), ("student-t", 3.0)]
)
def test_bvc_eager_lazy_and_streaming_agree(distribution: Distribution, dof: float | None) -> None:
    bars = make_bars(ELO_PRICES * 2, symbols=["A"] * 6 + ["B"] * 6)
    lazy = bulk_volume_classification(bars, distribution=distribution, dof=dof)
    eager = bulk_volume_classification(bars.collect().lazy(), distribution=distribution, dof=dof)
    assert_frame_equal(lazy.collect(), lazy.collect(engine="streaming"))
    assert_frame_equal(lazy.collect(), eager.collect())
    assert lazy.collect()["bvc_buy_volume"].null_count() == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"distribution": "laplace"}, "unknown BVC distribution 'laplace'"),
        ({"dof": 3.0}, "dof applies only to distribution='student-t'"),
        ({"distribution": "student-t", "dof": 0.0}, "finite number > 0, was 0.0"),
        ({"distribution": "student-t", "dof": float("nan")}, "finite number > 0, was nan"),
    ],
)
def test_bvc_rejects_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        bulk_volume_classification(make_bars(ELO_PRICES), **options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


BAR_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0, 103.0]),
        st.sampled_from([0.0, 1.0, 250.0, 1000.0]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(rows=BAR_ROWS, dof=st.sampled_from([None, 1.0, 2.0]))
def test_bvc_matches_reference_loop_on_interleaved_symbols(
    rows: list[tuple[str, float, float]], dof: float | None
) -> None:
    symbols = [r[0] for r in rows]
    prices = [r[1] for r in rows]
    volumes = [r[2] for r in rows]
    distribution: Distribution = "normal" if dof is None else "student-t"
    bars = make_bars(prices, volumes, symbols)
    out = bulk_volume_classification(bars, distribution=distribution, dof=dof).collect()
    expected = bvc_reference(symbols, prices, volumes, dof)
    for (buy, sell), got_buy, got_sell in zip(
        expected, out["bvc_buy_volume"].to_list(), out["bvc_sell_volume"].to_list(), strict=True
    ):
        if buy is None:
            assert got_buy is None
            assert got_sell is None
        else:
            assert got_buy == pytest.approx(buy, rel=1e-12, abs=1e-9)
            assert got_sell == pytest.approx(sell, rel=1e-12, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(rows=BAR_ROWS, distribution=st.sampled_from(["normal", "student-t"]))
def test_bvc_invariants(rows: list[tuple[str, float, float]], distribution: Distribution) -> None:
    symbols = [r[0] for r in rows]
    prices = [r[1] for r in rows]
    volumes = [r[2] for r in rows]
    bars = make_bars(prices, volumes, symbols)
    out = bulk_volume_classification(bars, distribution=distribution).collect()
    known = out.filter(pl.col("bvc_buy_volume").is_not_null())
    # Buy + sell = volume, both within [0, volume], on every classified bar.
    assert_series_equal(
        (known["bvc_buy_volume"] + known["bvc_sell_volume"]).rename("volume"),
        known["volume"],
        abs_tol=1e-9,
    )
    assert (known["bvc_buy_volume"] >= 0).all()
    assert (known["bvc_buy_volume"] <= known["volume"] + 1e-9).all()
    # Mirroring the prices (ΔP → −ΔP, same σ) swaps buy and sell volume.
    mirrored = bulk_volume_classification(
        make_bars([-p for p in prices], volumes, symbols),
        distribution=distribution,
    ).collect()
    assert_series_equal(
        mirrored["bvc_buy_volume"].rename("x"),
        out["bvc_sell_volume"].rename("x"),
        abs_tol=1e-9,
    )
    # Each symbol's result does not depend on the other symbols' rows.
    for symbol in set(symbols):
        alone = bulk_volume_classification(
            bars.filter(pl.col("symbol") == symbol),
            distribution=distribution,
        ).collect()
        assert_frame_equal(alone, out.filter(pl.col("symbol") == symbol))
