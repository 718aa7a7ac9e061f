"""A GitLab client talking to the loopback stub (:mod:`pytest_perfgate.testing.gitlab_stub`) with
short limits, for the tests of the client, its issues and the history's alerts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_perfgate.gitlab import GitLab, Limits
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

#: limits that keep a test of retries and deadlines short
FAST = Limits(timeout=5, deadline=10, backoff=0.01, budget=30)


@contextmanager
def stubbed(token: str, project: str, *, sleep: bool = False) -> Iterator[tuple[StubState, GitLab]]:
    """The stub's state and a client of ``project`` with ``token`` on it (``sleep``: the client
    really waits between retries; by default it does not)."""
    state = StubState(token=token)
    with GitLabStub(state) as api_url:
        wait = time.sleep if sleep else (lambda seconds: None)
        yield state, GitLab(api_url=api_url, project=project, token=token, limits=FAST, sleep=wait)
