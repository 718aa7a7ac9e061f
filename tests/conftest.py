from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# No per-example wall-clock deadline for any @given test (those that set none explicitly included,
# such as test_ab's and test_budgets'): on a loaded CI runner a garbage collection or a preemption
# can take one example past Hypothesis's default 200 ms, and it then fails the test as "flaky"
# although nothing in the code under test is slow. The properties themselves are unchanged.
settings.register_profile("perfgate-tests", deadline=None)
settings.load_profile("perfgate-tests")

# Tests send Ctrl-C (SIGINT) to the processes they start. A shell that runs the suite in the
# background without job control (`(ci/test &)`) starts it with SIGINT ignored, and an ignored signal
# stays ignored in every child: the processes under test would never see the Ctrl-C. Each test
# process restores the default, so what the tests check does not depend on how the suite was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def run_json(pytester: pytest.Pytester):
    """Run pytester's session with --perfgate-save and return (result, parsed results file)."""

    def run(*args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        out = pytester.path / "results.json"
        result = pytester.runpytest(
            "-p", "no:cacheprovider", f"--perfgate-save={out}", "--perfgate-max-time=20ms", "--perfgate-warmup=0", *args
        )
        data = json.loads(Path(out).read_text()) if out.exists() else {}
        return result, data

    return run
