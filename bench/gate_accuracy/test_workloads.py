"""The benchmark suite the harness runs as separate pytest processes.

``PERFGATE_BENCH_FACTOR`` (default 1.0) slows every workload by adding identical units of work.
Timed with pytest-benchmark's ``benchmark`` fixture (its defaults apart from --benchmark-max-time),
which perfgate records as the ``time`` series, so both gates judge the very same rounds.
"""

from __future__ import annotations

import os

import pytest
from workloads import UNITS, make

FACTOR = float(os.environ.get("PERFGATE_BENCH_FACTOR", "1.0"))


@pytest.mark.parametrize("name", sorted(UNITS))
def test_workload(benchmark, name):  # type: ignore[no-untyped-def]
    benchmark(make(name, FACTOR))
