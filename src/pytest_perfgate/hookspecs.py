"""The hooks perfgate declares (registered with ``pytest_addhooks``, as pytest-xdist's
``newhooks.py``): how a subsystem adds to a test's record without reaching into the core.

A subsystem's wiring implements them like any pytest hook (a function in its plugin module, or a
method of a plugin object it registers). The core calls them from its per-test hooks
(:mod:`pytest_perfgate._tracking`), which run only in sessions that measure something.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_perfgate_record(item: pytest.Item) -> None:
    """The test's body has run (passed, failed or was skipped in it), and its whole call has
    been timed; its budgets are judged next. Add what you measured to the test's recorder
    (``pytest_perfgate._tracking.recorder(item)``, made on first use: take it only when you have
    something): series (``set_series``), evidence (``evidence[name] = <JSON-able data>``) and
    metrics that could not be measured here, with why (``not_checked[metric] = reason``).

    Called for every test while the per-test hooks are registered; an implementation returns at
    once for a test it has nothing for. It may fail the test (``pytest.fail``)."""
