"""Process-level behaviour of the command (issue 9 items 6, 9, 10b).

Signing warnings say what really happened; the installed script is ``main()``; temporary
copies, ``-o`` temp files and ``convert`` staging folders never outlive a run, whatever ends it;
output locations are checked before any work starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmflow.cli import cli

QUOTES = (
    "ts,symbol,bid_price,bid_size,ask_price,ask_size\n"
    "2024-01-01T00:00:03Z,X,1,1,2,1\n"
    "2024-01-01T00:00:05Z,X,2,1,2,1\n"  # locked: not usable
)


def run(*args: str | Path, input: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [str(a) for a in args], input=input)
    return result.exit_code, result.stdout, result.stderr


def market(tmp_path: Path, sides: tuple[int, int, int, int] | None = None) -> tuple[Path, Path]:
    """Four trades of X: two before the first quote, one on a usable quote, one on a locked one."""
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(QUOTES)
    prices = ["1.5", "1.6", "1.8", "1.7"]
    seconds = [1, 2, 4, 6]
    header = "ts,symbol,price,size" + (",aggressor_side" if sides else "")
    rows = [
        f"2024-01-01T00:00:0{s}Z,X,{p},1" + (f",{sides[i]}" if sides else "")
        for i, (s, p) in enumerate(zip(seconds, prices, strict=True))
    ]
    trades = tmp_path / "trades.csv"
    trades.write_text("\n".join([header, *rows]) + "\n")
    return trades, quotes


def signs(out: str) -> list[tuple[str, str]]:
    return [(line.split(",")[5], line.split(",")[6]) for line in out.splitlines()[1:]]


# --- item 10 (b): signing warnings say what actually happens ----------------------------------


def test_quote_method_warns_that_trades_without_a_quote_are_left_unsigned(tmp_path: Path) -> None:
    trades, quotes = market(tmp_path)
    code, out, err = run("classify", trades, "--quotes", quotes, "--method", "quote", "--to", "csv")
    assert code == 0
    assert signs(out) == [("0", "none"), ("0", "none"), ("1", "quote"), ("0", "none")]
    assert err.splitlines() == [
        "Warning: X: 2 of 4 trades have no earlier quote (left unsigned: trade_sign 0)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote "
        "(left unsigned: trade_sign 0)",
    ]
    assert "tick rule" not in err


@pytest.mark.parametrize("method", ["lee-ready", "emo", "clnv", "depth", "auto"])
def test_tick_fallback_warning_counts_what_the_tick_rule_could_not_sign(
    tmp_path: Path, method: str
) -> None:
    trades, quotes = market(tmp_path)
    code, out, err = run("classify", trades, "--quotes", quotes, "--method", method, "--to", "csv")
    assert code == 0
    # The first trade has no earlier price, so the tick rule cannot sign it either.
    assert signs(out)[:2] == [("0", "none"), ("1", "tick")]
    assert signs(out)[3] == ("-1", "tick")
    assert err.splitlines() == [
        "Warning: X: 2 of 4 trades have no earlier quote "
        "(1 signed by the tick rule, 1 left unsigned)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote (signed by the tick rule)",
    ]


def test_vendor_signed_trades_raise_no_quote_warning(tmp_path: Path) -> None:
    # Every trade carries the vendor's side: no quote was needed, so nothing to warn about (it
    # used to say "2 of 4 trades have no earlier quote (signed by the tick rule)").
    trades, quotes = market(tmp_path, sides=(1, -1, 1, 1))
    code, out, err = run("classify", trades, "--quotes", quotes, "--to", "csv")
    assert (code, err) == (0, "")
    assert signs(out) == [("1", "vendor"), ("-1", "vendor"), ("1", "vendor"), ("1", "vendor")]


def test_only_trades_without_a_vendor_side_count_in_the_quote_warnings(tmp_path: Path) -> None:
    trades, quotes = market(tmp_path, sides=(1, 0, 1, 0))
    code, out, err = run("classify", trades, "--quotes", quotes, "--to", "csv")
    assert code == 0
    assert signs(out) == [("1", "vendor"), ("1", "tick"), ("1", "vendor"), ("-1", "tick")]
    assert err.splitlines() == [
        "Warning: X: 1 of 4 trades have no earlier quote (signed by the tick rule)",
        "Warning: X: 1 trades faced a crossed, locked or one-sided quote (signed by the tick rule)",
    ]
