"""pytest wiring for load tests: the ``load_test`` fixture. The only load module that imports
pytest; the run and its figures are made by :mod:`pytest_perfgate.load.fixture`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..errors import PerfgateError


@pytest.fixture
def load_test(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Run locust (in a subprocess) against a service the test started:
    ``load_test("locustfile.py", host=url, users=20, run_time="10s")``. The run's total is
    judged by the test's ``perf_budget`` (``kpi=``, ``p95=``, ``rps=``, ``error_rate=``, ...);
    the whole test call is not timed over the response times the run recorded."""
    from .._tracking import recorder  # imported on use: this module loads in every pytest session
    from .fixture import LoadTest

    run = LoadTest(recorder(request.node), str(request.path.parent))

    def load_test(*args: Any, **kwargs: Any) -> Any:
        # perfgate's errors (bad input, a target that does not answer) become a plain test
        # failure with the message, not a traceback through perfgate
        try:
            return run(*args, **kwargs)
        except PerfgateError as exc:
            pytest.fail(f"load_test: {exc}", pytrace=False)

    return load_test
