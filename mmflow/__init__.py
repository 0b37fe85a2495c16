"""mmflow: order-flow and market-maker inventory analytics for trade and quote files.

The library is the product; the ``mmflow`` command is one client of it. Read files with
:func:`mmflow.io.load`, compute with :mod:`mmflow.metrics`, or run the whole analysis with
:func:`mmflow.analysis.analyze`.
"""

from __future__ import annotations

from mmflow._version import __version__

__all__ = ["__version__"]
