"""``python -m pytest_perfgate.cli``: the ``perfgate`` command."""

import sys

from . import main

sys.exit(main())
