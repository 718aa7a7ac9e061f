"""Outcomes that were lost or misread (issue 16, item 5): a test that crashes its pytest-xdist
worker is in the results file as crashed; a budgeted test whose teardown errors is saved as an
error; a bad --perfgate-pushgateway URL is a usage error, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_perfgate.options import pushgateway_url

SUITE = """
import os
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

@pytest.mark.perf_budget(median=("1ns", "10s"))
def test_teardown_errors(perf, broken_teardown):
    perf(sum, range(10))

@pytest.mark.perf_budget(median=("1ns", "10s"))
def test_fine(perf):
    perf(sum, range(10))

@pytest.mark.perf_budget(median=("1ns", "10s"))
def test_fails_and_teardown_errors(perf, broken_teardown):
    perf(sum, range(10))
    assert False

@pytest.mark.perf_budget(median=("1ns", "10s"))
def test_crashes_its_worker():
    os._exit(3)
"""

ARGS = ("-p", "no:cacheprovider", "--perfgate-max-time=10ms", "-W", "ignore::pytest_perfgate.errors.PerfBudgetWarning")


def _outcomes(path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    return {t["nodeid"].split("::")[-1]: t["outcome"] for t in data["tests"]}


@pytest.mark.skipif(__import__("importlib").util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_under_xdist_a_crashed_test_is_saved_as_crashed_and_a_teardown_error_as_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(SUITE)
    out = pytester.path / "r.json"
    result = pytester.runpytest_subprocess(*ARGS, "-n", "2", f"--perfgate-save={out}", timeout=240)
    result.assert_outcomes(passed=2, failed=2, errors=2)
    assert _outcomes(out) == {
        "test_teardown_errors": "error",
        "test_fine": "passed",
        "test_fails_and_teardown_errors": "failed",
        "test_crashes_its_worker": "crashed",
    }
    crashed = next(t for t in json.loads(out.read_text())["tests"] if t["outcome"] == "crashed")
    assert "crashed while running" in crashed["evidence"]["crash"]


def test_without_xdist_a_teardown_error_is_saved_as_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE.split('@pytest.mark.perf_budget(median=("1ns", "10s"))\ndef test_crashes')[0])
    out = pytester.path / "r.json"
    result = pytester.runpytest(*ARGS, f"--perfgate-save={out}")
    result.assert_outcomes(passed=2, failed=1, errors=2)
    assert _outcomes(out) == {
        "test_teardown_errors": "error",
        "test_fine": "passed",
        "test_fails_and_teardown_errors": "failed",
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://gw:9091", "'ftp://gw:9091': scheme 'ftp' is not accepted"),
        ("http://[::1", "'http://[::1' is not a Pushgateway URL (Invalid IPv6 URL)"),
        ("http://gw:99999", "'http://gw:99999' is not a Pushgateway URL (Port out of range 0-65535)"),
        (
            "http://gw:port",
            "'http://gw:port' is not a Pushgateway URL (Port could not be cast to integer value as 'port')",
        ),
        ("http://", "'http://' has no host"),
        ("http://gw 9091", "'http://gw 9091' is not a Pushgateway URL"),
        ("", "'' is not a Pushgateway URL"),
    ],
)
def test_a_bad_pushgateway_url_is_refused_with_the_forms(url: str, message: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as info:
        pushgateway_url(url)
    assert str(info.value).startswith(message)
    assert str(info.value).endswith("expected http://HOST[:PORT] or https://HOST[:PORT] (e.g. http://pushgateway:9091)")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9091", "https://gw.example/prefix", "gw:9091", "[::1]:9091"])
def test_good_pushgateway_urls_are_kept(url: str) -> None:
    assert pushgateway_url(url) == url


def test_a_bad_pushgateway_url_is_a_usage_error_in_a_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--perfgate-pushgateway=http://[::1", "-q"],
        cwd=pytester.path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (
        "error: argument --perfgate-pushgateway: 'http://[::1' is not a Pushgateway URL (Invalid IPv6 URL): expected "
        "http://HOST[:PORT] or https://HOST[:PORT] (e.g. http://pushgateway:9091)\n"
    ) in done.stderr
