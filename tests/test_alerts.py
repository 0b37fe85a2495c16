"""The alert condition language (mmflow.alerts): parsing, errors, evaluation over bars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.alerts import ConditionError, alert_messages, evaluate_alerts, parse, parse_condition

START = datetime(2024, 8, 8, 14, 30, tzinfo=UTC)


def bars_frame() -> pl.DataFrame:
    """Two instruments, five one-minute bars each; the latest bar is the fifth.

    BTCUSDT@binance-um: distribution for the last three bars, VPIN high on the last two,
    inventory z below -3 on the last bar only. ETHUSDT (no venue): neutral, nulls and NaN at the
    end, withdrawing liquidity on the last bar.
    """
    ts = [START + timedelta(minutes=i) for i in range(5)]
    return pl.DataFrame(
        {
            "venue": ["binance-um"] * 5 + [None] * 5,
            "symbol": ["BTCUSDT"] * 5 + ["ETHUSDT"] * 5,
            "ts": ts + ts,
            "vpin": [0.2, 0.3, 0.5, 0.8, 0.9, 0.1, 0.9, 0.2, 0.3, float("nan")],
            "ofi_normalized": [0.1, -0.2, -0.6, -0.7, -0.8, 0.0, 0.0, 0.1, 0.2, None],
            "inventory_z": [0.0, 1.0, -2.0, -2.5, -3.5, 0.5, 4.0, 0.2, 0.1, 0.3],
            "trades": [10, 12, 0, 7, 3, 5, 5, 5, 5, 5],
            "phase": ["neutral", "neutral"] + ["distribution"] * 3 + ["neutral"] * 4 + [None],
            "liquidity_state": ["providing"] * 9 + ["withdrawing"],
            "complete": [True] * 5 + [False] * 4 + [True],
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC"), "trades": pl.UInt32},
    )


def firing(condition: str, window: str | None = None) -> set[str]:
    bars = bars_frame()
    alerts = evaluate_alerts(bars, [parse_condition(condition, bars.schema)], window)
    return set(alerts["instrument"])


BTC = "BTCUSDT@binance-um"
ETH = "ETHUSDT"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # string equality and inequality
        ("phase=distribution", {BTC}),
        ("phase == 'distribution'", {BTC}),
        ('phase="accumulation"', set()),
        ("phase!=distribution", set()),  # ETH's latest phase is null: unknown, does not fire
        ("liquidity_state=withdrawing", {ETH}),
        ("liquidity_state=providing", {BTC}),
        # numbers, every operator
        ("vpin>0.7", {BTC}),  # ETH's NaN is missing, not "greater than everything"
        ("vpin>0.9", set()),
        ("vpin>=0.9", {BTC}),
        ("vpin<0.95", {BTC}),
        ("vpin<=0.5", set()),
        ("trades=3", {BTC}),
        ("trades==5", {ETH}),
        ("trades!=3", {ETH}),
        ("0.7<vpin", {BTC}),
        ("ofi_normalized<-0.5", {BTC}),
        ("ofi_normalized < -0.9", set()),
        ("-ofi_normalized>0.5", {BTC}),
        ("inventory_z>1e-1", {ETH}),
        # abs
        ("abs(inventory_z)>3", {BTC}),
        ("abs(inventory_z)>4", set()),
        ("abs(ofi_normalized) >= .8", {BTC}),
        # and / or / not / parentheses, Boolean columns
        ("vpin>0.7 and phase=distribution", {BTC}),
        ("vpin>0.7 and liquidity_state=withdrawing", set()),
        ("vpin>0.7 or liquidity_state=withdrawing", {BTC, ETH}),
        ("not phase=distribution", set()),  # ETH: not unknown is unknown
        ("not vpin>0.7", set()),
        ("not (trades>4)", {BTC}),
        ("(vpin>0.7 or trades=5) and not liquidity_state=providing", {ETH}),
        ("vpin>0.7 or trades=5 and liquidity_state=providing", {BTC}),  # and binds tighter
        ("trades=5 and vpin>0.7 or phase=distribution", {BTC}),
        ("not trades=5 and phase=distribution", {BTC}),
        ("(vpin>0.7 or trades=5) and liquidity_state=providing", {BTC}),
        ("complete", {BTC, ETH}),
        ("complete and not trades=3", {ETH}),
        ("complete = false", set()),
        ("symbol=ETHUSDT and trades=5", {ETH}),
        ("venue='binance-um'", {BTC}),
        ("VPIN > 0.7 AND phase = distribution".replace("VPIN", "vpin"), {BTC}),
    ],
)
def test_each_condition_kind_fires_and_does_not_fire(condition: str, expected: set[str]) -> None:
    assert firing(condition) == expected


def test_window_looks_at_every_recent_bar() -> None:
    # ETH had inventory z 4.0 at 14:31 only: not on its latest bar (14:34) ...
    assert firing("abs(inventory_z)>3.9") == set()
    # ... but within a 3-minute window (bars at or after 14:31), and not within 2 minutes.
    assert firing("abs(inventory_z)>3.9", "3m") == {ETH}
    assert firing("abs(inventory_z)>3.9", "2m") == set()
    assert firing("abs(inventory_z)>3.4") == {BTC}
    assert firing("abs(inventory_z)>3.4", "1h") == {BTC, ETH}


def test_alert_rows_give_the_run_start_and_the_values() -> None:
    bars = bars_frame()
    conditions = [
        parse_condition(text, bars.schema)
        for text in ("phase=distribution", "vpin>0.7", "abs(inventory_z)>3.9")
    ]
    alerts = evaluate_alerts(bars, conditions, "3m")
    rows = alerts.select("instrument", "condition", "ts", "since", "bars", "vpin").rows()
    assert rows == [
        (
            BTC,
            "phase=distribution",
            START + timedelta(minutes=4),
            START + timedelta(minutes=2),
            3,
            0.9,
        ),
        (BTC, "vpin>0.7", START + timedelta(minutes=4), START + timedelta(minutes=3), 2, 0.9),
        (ETH, "vpin>0.7", START + timedelta(minutes=1), START + timedelta(minutes=1), 1, 0.9),
        (
            ETH,
            "abs(inventory_z)>3.9",
            START + timedelta(minutes=1),
            START + timedelta(minutes=1),
            1,
            0.9,
        ),
    ]
    assert alerts.columns[:8] == [
        "venue",
        "symbol",
        "instrument",
        "condition",
        "ts",
        "since",
        "bars",
        "phase",
    ]
    assert alert_messages(alerts, conditions) == [
        f"ALERT {BTC} phase=distribution since 2024-08-08 14:32 UTC (3 bars to 14:34)",
        f"ALERT {BTC} vpin>0.7 since 2024-08-08 14:33 UTC (2 bars to 14:34; vpin=0.9)",
        f"ALERT {ETH} vpin>0.7 since 2024-08-08 14:31 UTC (vpin=0.9)",
        f"ALERT {ETH} abs(inventory_z)>3.9 since 2024-08-08 14:31 UTC (inventory_z=4)",
    ]


def test_since_is_the_start_of_the_latest_run_not_the_first_firing_bar() -> None:
    ts = [START + timedelta(minutes=i) for i in range(7)]
    bars = pl.DataFrame(
        {"symbol": ["X"] * 7, "ts": ts, "vpin": [0.9, 0.9, 0.1, 0.8, 0.8, 0.8, 0.9]},
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    alerts = evaluate_alerts(bars.reverse(), [parse_condition("vpin>0.7", bars.schema)])
    assert alerts.select("instrument", "since", "bars").row(0) == ("X", ts[3], 4)
    assert "venue" not in alerts.columns


def test_no_conditions_and_no_alerts_give_an_empty_table_with_the_columns() -> None:
    bars = bars_frame()
    assert evaluate_alerts(bars, []).height == 0
    alerts = evaluate_alerts(bars, [parse_condition("vpin>5", bars.schema)])
    assert alerts.height == 0
    assert alerts.columns == [
        "venue",
        "symbol",
        "instrument",
        "condition",
        "ts",
        "since",
        "bars",
        "vpin",
    ]
    assert alert_messages(alerts, []) == []


@pytest.mark.parametrize(
    ("condition", "position", "reason"),
    [
        ("vpn>0.7", 0, "unknown column 'vpn'; the columns are venue, symbol, vpin"),
        ("vpin >", 6, "expected a column, a number or a word, found the end"),
        ("vpin > 0.7 and", 14, "expected a column, a number or a word, found the end"),
        ("phase=distrbution", 6, "'phase' is never 'distrbution'; it is one of accumulation"),
        ("liquidity_state=gone", 16, "'liquidity_state' is never 'gone'"),
        ("phase>3", 5, "cannot compare 'phase' (text) and the number"),
        ("phase<distribution", 5, "'phase' holds words: compare it with = or !="),
        ("(vpin>1", 7, "expected a closing parenthesis"),
        ("vpin>1)", 6, "expected and, or or the end, found ')'"),
        ("0<vpin<1", 6, "comparisons do not chain"),
        ("vpin && phase", 5, "unexpected character '&'; write and, or, not"),
        ("abs(phase)>1", 0, "abs() needs a number or a numeric column"),
        ("abs vpin>1", 4, "expected ( after abs"),
        ("1>2", 1, "the comparison names no column"),
        ("", 0, "empty condition"),
        ("   ", 0, "empty condition"),
        ("vpin>'high'", 4, "cannot compare 'vpin' (number) and the word 'high'"),
        ("venue=binance-um", 13, "put words with a hyphen in quotes"),
        ("phase='distribution", 6, "unclosed quote '"),
        ("vpin", 0, "'vpin' is not a true/false column"),
        ("ts>3", 0, "column 'ts' is a Datetime"),
        ("vpin > or", 7, "found 'or'"),
        ("vpin>0.7 phase=distribution", 9, "expected and, or or the end, found 'phase'"),
        ("complete>1", 8, "cannot compare 'complete' (boolean) and the number"),
        ("complete=maybe", 9, "unknown column 'maybe'"),
        ("nothere=distribution", 0, "unknown column 'nothere'"),
        ("not", 3, "expected a column, a number or a word, found the end"),
    ],
)
def test_bad_conditions_say_what_and_where(condition: str, position: int, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(condition, bars_frame().schema)
    error = caught.value
    assert error.position == position
    assert reason in error.reason
    assert f"at position {position + 1}" in str(error)
    text, caret = error.pointer().splitlines()
    assert text == f"  {condition.strip()}"
    assert caret == " " * (2 + position) + "^"


def test_syntax_alone_is_checked_without_columns() -> None:
    parse("whatever > 1 and (other = word or not flag)")
    with pytest.raises(ConditionError, match="expected a closing parenthesis"):
        parse("(a > 1")


def test_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ConditionError, match="nested deeper"):
        parse("(" * 500 + "a>1" + ")" * 500)
    with pytest.raises(ConditionError, match="nested deeper"):
        parse("not " * 200 + "a>1")
    with pytest.raises(ConditionError, match="longer than"):
        parse("a>1 and " * 400 + "a>1")


def test_condition_lists_the_columns_it_reads() -> None:
    condition = parse_condition(
        "abs(inventory_z)>3 and (vpin>0.7 or inventory_z<-1)", bars_frame().schema
    )
    assert condition.columns == ("inventory_z", "vpin")


def test_the_text_is_never_evaluated_as_python() -> None:
    for text in ("__import__('os').system('true')", "vpin.__class__ > 1", "vpin>0.7;import os"):
        with pytest.raises(ConditionError):
            parse_condition(text, bars_frame().schema)


# ----------------------------------------------------------------------------------------------
# Property: the condition language and a plain polars filter agree on random bar tables.

NUMBER_COLUMNS = ("x", "y", "n")
WORDS = ("up", "down", "flat")


@dataclass(frozen=True)
class Ref:
    """A test-side syntax tree node, rendered to text and to a polars expression independently."""

    kind: str
    parts: tuple[object, ...]


def number_values() -> st.SearchStrategy[Ref]:
    column = st.sampled_from(NUMBER_COLUMNS).map(lambda c: Ref("column", (c,)))
    literal = st.floats(-5, 5, allow_nan=False).map(lambda v: Ref("number", (round(v, 3),)))
    return st.recursive(
        column | literal,
        lambda inner: (
            st.builds(lambda v: Ref("abs", (v,)), inner)
            | st.builds(lambda v: Ref("negative", (v,)), inner)
        ),
        max_leaves=3,
    )


def has_column(value: Ref) -> bool:
    if value.kind == "column":
        return True
    if value.kind == "number":
        return False
    inner = value.parts[0]
    assert isinstance(inner, Ref)
    return has_column(inner)


def numeric_comparison(operator: str, left: Ref, right: Ref) -> Ref:
    return Ref("compare", (operator, left, right))


def names_a_column(comparison: Ref) -> bool:
    return any(isinstance(side, Ref) and has_column(side) for side in comparison.parts[1:])


def comparisons() -> st.SearchStrategy[Ref]:
    operator = st.sampled_from(["=", "==", "!=", "<", "<=", ">", ">="])
    numeric: st.SearchStrategy[Ref] = st.builds(
        numeric_comparison, operator, number_values(), number_values()
    ).filter(names_a_column)
    text = st.builds(
        lambda op, word, quoted, swapped: Ref("text", (op, word, quoted, swapped)),
        st.sampled_from(["=", "==", "!="]),
        st.sampled_from(WORDS),
        st.booleans(),
        st.booleans(),
    )
    flag = st.just(Ref("flag", ()))
    return numeric | numeric | text | flag  # numbers twice as often


def conditions() -> st.SearchStrategy[Ref]:
    return st.recursive(
        comparisons(),
        lambda inner: (
            st.builds(lambda a: Ref("not", (a,)), inner)
            | st.builds(lambda a, b: Ref("and", (a, b)), inner, inner)
            | st.builds(lambda a, b: Ref("or", (a, b)), inner, inner)
            # a and b or c, a or b and c, not a and b: where precedence decides
            | st.builds(lambda a, b, c: Ref("or", (Ref("and", (a, b)), c)), inner, inner, inner)
            | st.builds(lambda a, b, c: Ref("or", (a, Ref("and", (b, c)))), inner, inner, inner)
            | st.builds(lambda a, b: Ref("and", (Ref("not", (a,)), b)), inner, inner)
        ),
        max_leaves=8,
    )


def render_value(value: Ref) -> str:
    if value.kind == "column":
        return str(value.parts[0])
    if value.kind == "number":
        return repr(value.parts[0])
    inner = value.parts[0]
    assert isinstance(inner, Ref)
    return f"abs( {render_value(inner)} )" if value.kind == "abs" else f"-{render_value(inner)}"


def render(node: Ref, spacing: str, extra: bool) -> str:
    """Text of ``node`` with only the parentheses precedence needs (``not`` > ``and`` > ``or``).

    ``extra`` also wraps every comparison in redundant parentheses.
    """
    if node.kind in ("compare", "text", "flag"):
        if node.kind == "compare":
            op, left, right = node.parts
            assert isinstance(left, Ref)
            assert isinstance(right, Ref)
            text = f"{render_value(left)}{spacing}{op}{spacing}{render_value(right)}"
        elif node.kind == "text":
            op, word, quoted, swapped = node.parts
            literal = f"'{word}'" if quoted else str(word)
            left_text, right_text = (literal, "s") if swapped else ("s", literal)
            text = f"{left_text}{spacing}{op}{spacing}{right_text}"
        else:
            text = "b"
        return f"({text})" if extra else text
    children = [part for part in node.parts if isinstance(part, Ref)]
    inner = [render(child, spacing, extra) for child in children]
    if node.kind == "not":
        looser = children[0].kind in ("and", "or")
        return f"not ({inner[0]})" if looser else f"not {inner[0]}"
    if node.kind == "and":
        wrapped = [
            f"({text})" if child.kind == "or" else text
            for text, child in zip(inner, children, strict=True)
        ]
        return " and ".join(wrapped)
    return " or ".join(inner)


def polars_value(value: Ref, frame: pl.DataFrame) -> pl.Expr:
    if value.kind == "column":
        name = str(value.parts[0])
        column = pl.col(name)
        return column.fill_nan(None) if frame.schema[name] == pl.Float64 else column
    if value.kind == "number":
        return pl.lit(value.parts[0], pl.Float64)
    inner = value.parts[0]
    assert isinstance(inner, Ref)
    expr = polars_value(inner, frame)
    return expr.abs() if value.kind == "abs" else -expr


OPERATORS = {
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def polars_filter(node: Ref, frame: pl.DataFrame) -> pl.Expr:
    """The same condition built directly with polars expressions."""
    if node.kind == "compare":
        op, left, right = node.parts
        assert isinstance(left, Ref)
        assert isinstance(right, Ref)
        compared: pl.Expr = OPERATORS[str(op)](
            polars_value(left, frame), polars_value(right, frame)
        )
        return compared
    if node.kind == "text":
        op, word = node.parts[0], node.parts[1]
        equal: pl.Expr = OPERATORS[str(op)](pl.col("s"), pl.lit(word))
        return equal
    if node.kind == "flag":
        return pl.col("b")
    children = [part for part in node.parts if isinstance(part, Ref)]
    if node.kind == "not":
        return ~polars_filter(children[0], frame)
    left, right = (polars_filter(child, frame) for child in children)
    return left & right if node.kind == "and" else left | right


def python_value(value: Ref, row: dict[str, object]) -> float | None:
    if value.kind == "column":
        cell = row[str(value.parts[0])]
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            return None
        assert isinstance(cell, int | float)
        return float(cell)
    if value.kind == "number":
        number = value.parts[0]
        assert isinstance(number, float)
        return number
    inner = value.parts[0]
    assert isinstance(inner, Ref)
    result = python_value(inner, row)
    if result is None:
        return None
    return abs(result) if value.kind == "abs" else -result


def python_truth(node: Ref, row: dict[str, object]) -> bool | None:
    """Slow, obviously correct three-valued evaluation of one row (None = unknown)."""
    if node.kind == "compare":
        op, left, right = node.parts
        assert isinstance(left, Ref)
        assert isinstance(right, Ref)
        a, b = python_value(left, row), python_value(right, row)
        return None if a is None or b is None else bool(OPERATORS[str(op)](a, b))
    if node.kind == "text":
        op, word = node.parts[0], node.parts[1]
        cell = row["s"]
        return None if cell is None else bool(OPERATORS[str(op)](cell, word))
    if node.kind == "flag":
        flag = row["b"]
        assert flag is None or isinstance(flag, bool)
        return flag
    children = [part for part in node.parts if isinstance(part, Ref)]
    values = [python_truth(child, row) for child in children]
    if node.kind == "not":
        return None if values[0] is None else not values[0]
    if node.kind == "and":
        if False in values:
            return False
        return None if None in values else True
    if True in values:
        return True
    return None if None in values else False


maybe_float = st.one_of(st.none(), st.just(float("nan")), st.floats(-6, 6, allow_nan=False))
rows = st.fixed_dictionaries(
    {
        "x": maybe_float,
        "y": maybe_float,
        "n": st.one_of(st.none(), st.integers(-6, 6)),
        "s": st.one_of(st.none(), st.sampled_from(WORDS)),
        "b": st.one_of(st.none(), st.booleans()),
    }
)
SCHEMA = {"x": pl.Float64, "y": pl.Float64, "n": pl.Int64, "s": pl.String, "b": pl.Boolean}


@settings(max_examples=300, deadline=None)
@given(
    node=conditions(),
    table=st.lists(rows, max_size=25),
    spacing=st.sampled_from(["", " ", "  "]),
    extra=st.booleans(),
)
def test_condition_language_agrees_with_a_plain_polars_filter(
    node: Ref, table: list[dict[str, object]], spacing: str, extra: bool
) -> None:
    frame = pl.DataFrame(table, schema=SCHEMA)
    text = render(node, spacing, extra)
    condition = parse_condition(text, frame.schema)
    parsed = frame.select(condition.expr.alias("mask"))["mask"].to_list()
    direct = frame.select(polars_filter(node, frame).fill_null(False).alias("mask"))["mask"]
    assert parsed == direct.to_list(), text
    assert parsed == [python_truth(node, row) is True for row in table], text


@pytest.mark.parametrize("text", ["0.0=y", "0.5<y", "1>=-y", "0<abs(y)", "y=0.0"])
def test_a_number_left_of_an_all_missing_column_gives_one_answer_per_row(text: str) -> None:
    """Found by the property test: polars broadcast ``lit op when/then/otherwise`` to one row."""
    frame = pl.DataFrame({"y": [float("nan"), float("nan"), None]}, schema={"y": pl.Float64})
    condition = parse_condition(text, frame.schema)
    assert frame.select(condition.expr.alias("mask"))["mask"].to_list() == [False] * 3
