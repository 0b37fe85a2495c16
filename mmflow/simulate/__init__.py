"""A synthetic market with a market maker whose true inventory is known (``mmflow simulate``).

The simulator is the ground truth of metrics.md §12.6: it writes trades and quotes in the
canonical schema together with the market maker's true inventory and the true phase of every
bar, so the inventory-flow and phase detectors can be scored against it.

Model
-----
Per symbol, on a regular grid of bars of length Δ (``bar``, default 1m):

* **Fair value** (latent): V(t) = P₀ + σ·W(t) + λ·C(t) + S(t): a Brownian random walk with
  ``volatility`` σ (price per √hour), a permanent impact ``impact`` λ per lot of aggressive
  signed flow C(t) (buys push it up; the market maker's unloading flow in a distribution is
  absorbed and has no impact), and a scripted drift S(t) (below).
* **Market maker** (the passive side of every trade): it quotes around a reservation price that is
  skewed linearly against its inventory I, r = V − κ·I (``skew`` κ; the linear form of Avellaneda
  & Stoikov 2008, *Quantitative Finance* 8(3):217-224, r = s − q·γ·σ²·(T − t); Ho & Stoll 1981,
  *J. Financial Economics* 9(1):47-73), bid = ⌊(r − spread/2)/tick⌋·tick and
  ask = ⌈(r + spread/2)/tick⌉·tick (at least one tick apart). It re-quotes ``requote_latency``
  after each of its fills (its skew changed) and at Poisson fair-value updates
  (``quotes_per_trade`` per trade); displayed sizes are geometric with mean ``quote_size_mean``.
* **Noise traders** arrive as a Poisson process (``trades_per_hour``), buy or sell with
  probability ½, in whole lots (geometric, mean ``trade_size_mean``), and trade at the quote that
  stands strictly before them: a buy at the ask, a sell at the bid.
* **Inventory** at bar ends is I_k = round(T_k + e_k): a scripted target T_k (0 outside episodes)
  plus the noise traders' imprint e_k = (1 − θ)·e_{k−1} − N_k (N_k their net signed flow in bar k,
  θ = ``inventory_reversion``, the pull of the skew on the flow). The rest of the flow the market
  maker must absorb, R_k = −(I_k − I_{k−1}) − N_k, is executed by extra aggressive trades (split
  into lots) at random times in bar k, so I = −cumsum(side·size) exactly.
* **Episodes** (``episodes_per_day`` per symbol and day, each after at least ``gap_bars`` neutral
  bars, half of them long and half short in random order), for a long episode (short: mirrored):
  (1) *accumulation* (``accumulation_bars``): persistent selling at ``accumulation_intensity`` ×
  the noise volume pushes I up linearly to a peak I* while price falls with the flow (impact and
  skew); (2) *distribution* (``distribution_bars``): buyers lift the shaded offers until I is back
  near 0, across several price levels; the buying is absorbed: V drifts down by κ·I* (cancelling
  the unwinding skew) plus ``distribution_drift``, so price is flat or falls against the buying;
  (3) *reversal* (``reversal_bars``): V falls by ``reversal_move``.

Sources: metrics.md §b.8 and §12; Hendershott & Menkveld (2014, *J. Financial Economics*
114(3):405-423) for inventory price pressure and reversal.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmflow._version import __version__
from mmflow.errors import MmflowError
from mmflow.render.write import write_file
from mmflow.schema import SCHEMA_VERSION, SYMBOL, TS
from mmflow.simulate.engine import _symbol_market
from mmflow.simulate.model import (
    ACCUMULATION,
    DISTRIBUTION,
    EPISODE,
    FAIR_VALUE,
    FAMILIES,
    INVENTORY_SIDE,
    NEUTRAL,
    PARAMETERS_KEY,
    PHASE,
    PHASES,
    QUOTES_SCHEMA,
    REVERSAL,
    TRADES_SCHEMA,
    TRUTH_SCHEMA,
    FloatArray,
    IntArray,
    Simulation,
    SimulationParameters,
    duration_nanoseconds,
)

__all__ = [
    "ACCUMULATION",
    "DISTRIBUTION",
    "EPISODE",
    "FAIR_VALUE",
    "FAMILIES",
    "INVENTORY_SIDE",
    "NEUTRAL",
    "PARAMETERS_KEY",
    "PHASE",
    "PHASES",
    "QUOTES_SCHEMA",
    "REVERSAL",
    "TRADES_SCHEMA",
    "TRUTH_SCHEMA",
    "FloatArray",
    "IntArray",
    "Simulation",
    "SimulationParameters",
    "duration_nanoseconds",
    "simulate",
    "write_simulation",
]


def simulate(parameters: SimulationParameters) -> Simulation:
    """Simulate a market whose market maker cycles through accumulation and distribution.

    The model (module docstring): a latent fair value, a market maker quoting around a
    reservation price r = fair − κ·I skewed against its inventory (Avellaneda & Stoikov 2008,
    *Quantitative Finance* 8(3):217-224, linear form), Poisson noise traders, and scripted
    accumulation → distribution → reversal episodes. The market maker is the passive side of every
    trade, so the true inventory is I = −Σ aggressor_side · size (metrics.md §b.2, §12.1).
    Everything is vectorised with numpy; the only Python loops run over symbols and episodes.

    Parameters
    ----------
    parameters
        The market; the same parameters (seed included) give identical frames.

    Returns
    -------
    Simulation
        Eager canonical ``trades`` and ``quotes`` sorted by ``ts`` and the per-bar ``truth``
        (see :class:`Simulation`).

    Examples
    --------
    >>> quiet = SimulationParameters(seed=7, symbols=("X", "Y"), hours=0.5, episodes_per_day=0)
    >>> market = simulate(quiet)
    >>> market.trades.columns
    ['ts', 'symbol', 'price', 'size', 'aggressor_side', 'trade_id']
    >>> market.truth.group_by("symbol", "phase").len().sort("symbol")
    shape: (2, 3)
    ┌────────┬─────────┬─────┐
    │ symbol ┆ phase   ┆ len │
    │ ---    ┆ ---     ┆ --- │
    │ str    ┆ str     ┆ u32 │
    ╞════════╪═════════╪═════╡
    │ X      ┆ neutral ┆ 30  │
    │ Y      ┆ neutral ┆ 30  │
    └────────┴─────────┴─────┘
    """
    parts = [_symbol_market(parameters, i, s) for i, s in enumerate(parameters.symbols)]
    trades = pl.concat([t for t, _, _ in parts]).sort(TS, maintain_order=True)
    quotes = pl.concat([q for _, q, _ in parts]).sort(TS, maintain_order=True)
    truth = pl.concat([b for _, _, b in parts]).sort(SYMBOL, TS, maintain_order=True)
    return Simulation(trades=trades, quotes=quotes, truth=truth, parameters=parameters)


def write_simulation(
    simulation: Simulation, directory: Path, *, metadata: dict[str, str] | None = None
) -> list[Path]:
    """Write ``trades.parquet``, ``quotes.parquet`` and ``truth.parquet`` into ``directory``.

    The directory is created when missing. Each file is written to a temporary file in the
    directory and renamed into place, so no partial file is ever left behind. Every file carries
    parquet key-value metadata: ``mmflow.schema`` (``trades/1``, ``quotes/1``, ``truth/1``) and
    ``mmflow.version``, then ``metadata`` (which wins on equal keys), then
    ``mmflow.simulation.parameters`` (the parameters as JSON).

    Parameters
    ----------
    simulation
        The result of :func:`simulate`.
    directory
        Destination directory.
    metadata
        Extra key-value metadata for every file.

    Returns
    -------
    list[Path]
        The three paths written, in the order trades, quotes, truth.

    Raises
    ------
    MmflowError
        When the directory cannot be created.

    Examples
    --------
    >>> import tempfile
    >>> market = simulate(SimulationParameters(symbols=("X",), hours=0.1, episodes_per_day=0))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [path.name for path in write_simulation(market, Path(tmp) / "sim")]
    ['trades.parquet', 'quotes.parquet', 'truth.parquet']
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"{directory}: cannot create the output directory ({error.strerror or error})"
        raise MmflowError(msg) from None
    parameters = simulation.parameters.to_json()
    written: list[Path] = []
    for name, frame in (
        ("trades", simulation.trades),
        ("quotes", simulation.quotes),
        ("truth", simulation.truth),
    ):
        keys = {"mmflow.schema": f"{name}/{SCHEMA_VERSION}", "mmflow.version": __version__}
        keys.update(metadata or {})
        keys[PARAMETERS_KEY] = parameters
        path = directory / f"{name}.parquet"
        write_file(frame, path, keys)
        written.append(path)
    return written
