"""``python -m pytest_perfgate.load.cli``: ``perfgate load`` alone (docs/load.md); the command is
:mod:`pytest_perfgate.cli.load`."""

from __future__ import annotations

import sys

from ..cli.load import add_arguments, main, run

__all__ = ["add_arguments", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
