from __future__ import annotations

from collections.abc import Iterator

import pytest
from server import RunningServer, serve


@pytest.fixture(scope="session")
def api_server() -> Iterator[RunningServer]:
    """The example API on uvicorn, on a free 127.0.0.1 port, stopped after the session."""
    with serve() as server:
        yield server
