"""``python -m mmflow`` runs the command-line interface."""

from __future__ import annotations

from mmflow.cli import main

if __name__ == "__main__":
    main()
