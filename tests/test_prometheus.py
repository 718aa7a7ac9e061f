from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    _Gateway.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Gateway.received
    finally:
        server.shutdown()
        server.server_close()


SUITE = """
import pytest

@pytest.mark.perf_budget(median=("1ns", "10s"))
def test_fast(perf):
    perf(sum, range(10))
"""


def test_push_to_gateway_with_job_and_branch(pytester: pytest.Pytester, gateway) -> None:
    url, received = gateway
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--perfgate-pushgateway={url}",
        "--perfgate-pushgateway-job=ci-perf",
        "--perfgate-max-time=10ms",
        "-W",
        "ignore::pytest_perfgate.errors.PerfBudgetWarning",
    )
    result.assert_outcomes(passed=1)
    ((method, path, body),) = received
    assert method == "PUT"
    assert path.startswith("/metrics/job/ci-perf/branch/")
    result.stdout.fnmatch_lines([f"pushed to {url}/metrics/job/ci-perf/branch/*"])
    families = {f.name: f for f in text_string_to_metric_families(body)}
    (verdict,) = families["perfgate_budget_verdict"].samples
    assert verdict.labels == {
        "test": "test_push_to_gateway_with_job_and_branch.py::test_fast",
        "metric": "median",
        "unit": "s",
    }
    assert verdict.value == 1.0  # warn: past the 1ns target
    assert families["perfgate_budget_critical"].samples[0].value == 10.0
    assert families["perfgate_tests"].samples[0].value == 1.0


def test_unreachable_gateway_is_reported_not_fatal(pytester: pytest.Pytester) -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--perfgate-pushgateway=http://127.0.0.1:{port}", "--perfgate-max-time=10ms"
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            f"WARN could not push metrics to the Pushgateway at http://127.0.0.1:{port}: *Connection refused* "
            "(the tests' outcome is unaffected)"
        ]
    )
    assert result.ret == 0
