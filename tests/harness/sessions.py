"""Inner pytest sessions (pytester) without the plugins they do not need."""

from __future__ import annotations

import pytest

#: plugins an inner session does not need (hypothesis alone re-imports for ~1s per session)
QUIET = ("-p", "no:hypothesispytest", "-p", "no:locust", "-p", "no:anyio", "-p", "no:benchmark", "-p", "no:asyncio")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, *args)
