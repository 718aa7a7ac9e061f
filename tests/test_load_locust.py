"""Real load runs, short and on loopback only: locust in a subprocess against the example API
(uvicorn on a free 127.0.0.1 port), through ``perfgate load`` and through the ``load_test``
fixture. Every run is a few seconds; no process outlives its test."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load import EXAMPLE, LOCUSTFILE, processes_with, server_module
from pytest_perfgate import stats
from pytest_perfgate.cli import load as load_cli
from pytest_perfgate.load import runner
from pytest_perfgate.load.run import run_load
from pytest_perfgate.load.runner import LoadSettings
from pytest_perfgate.model import load_results

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("locust", "uvicorn", "starlette", "mongomock")),
    reason="needs locust, uvicorn, starlette and mongomock (pip install 'pytest-perfgate[load,test]')",
)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with server_module().serve() as server:
        yield server.url


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_perfgate_load_end_to_end(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parents[1])
    out = tmp_path / "out"
    args = cli(
        str(LOCUSTFILE.relative_to(EXAMPLE.parents[1])), "--host", api_url, "-u", "5", "-t", "3s",
        "--kpi", "api_response_time", "--kpi", "api_errors",
        "--save", str(out / "load.json"), "--gitlab-report", str(out / "lp.json"), "--html", str(out / "locust.html"),
        "--workdir", str(tmp_path / "work"), "--progress", "always",
    )  # fmt: skip
    assert load_cli.run(args) == 0, capsys.readouterr()
    captured = capsys.readouterr()
    printed = captured.out
    # progress from the listener, on stderr, as asked (a line every 10 s: the first one here)
    assert captured.err.startswith("load ") and "s/3s  users " in captured.err and " failures 0" in captured.err
    assert "KPIs (whole run):" in printed and "load: passed: 0 critical breaches" in printed

    run = load_results(out / "load.json")
    ids = sorted(run.by_nodeid())
    prefix = "load:examples/api_service/locustfile.py::"
    assert ids == [prefix + n for n in ("GET /products", "GET /products/[id]", "GET /products/search", "total")]
    total = run.by_nodeid()[prefix + "total"]
    assert total.spec.kpi == "api_response_time,api_errors"
    assert {v.metric: v.verdict.value for v in total.verdicts} == {"p95": "pass", "p99": "pass", "error_rate": "pass"}

    # perfgate's listener saw every request locust counted, with full-precision times
    raw = json.loads((tmp_path / "work" / "raw.json").read_text())
    requests = len(total.series["time"].values)
    assert requests > 50
    assert raw["locust_requests"] == requests == len(raw["rows"])
    assert len({round(v, 9) for v in total.series["time"].values}) > requests // 2  # not 2-digit buckets

    report = json.loads((out / "lp.json").read_text())
    assert report["metrics"]["http_reqs"]["count"] == requests
    p95 = stats.percentile(total.series["time"].values, 95)
    assert report["metrics"]["http_req_waiting"]["p(95)"] == pytest.approx(p95 * 1000)
    assert {v.metric: v.measured for v in total.verdicts}["p95"] == pytest.approx(p95)
    assert "locust" in (out / "locust.html").read_text().lower()
    assert processes_with(str(tmp_path / "work")) == []


def test_error_rate_over_critical_fails_the_run_while_latency_passes(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        "from locust import FastHttpUser, task, constant\n"
        "class U(FastHttpUser):\n"
        "    wait_time = constant(0.01)\n"
        "    @task\n"
        "    def ok(self):\n"
        "        self.client.get('/products/search?category=toys', name='search')\n"
        "    @task\n"
        "    def missing(self):\n"
        "        self.client.get('/products/999999', name='missing product')\n"
    )
    (tmp_path / ".git").mkdir()  # the locustfile's repository: Code Quality paths are relative to it
    quality = tmp_path / "out" / "code-quality.json"
    code = load_cli.run(
        cli(
            str(locustfile),
            "--host",
            api_url,
            "-u",
            "3",
            "-t",
            "2s",
            "--budget",
            "p95=2s",
            "--codequality",
            str(quality),
        )
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "PASS  p95" in out
    assert "FAIL  error_rate" in out and "exceeds critical 1%  [default]" in out
    assert "404" in out  # the most frequent errors are listed
    # the breach, for GitLab's merge-request widget, at the locustfile
    findings = json.loads(quality.read_text())
    assert [(f["check_name"], f["severity"], f["location"]) for f in findings] == [
        ("perfgate-budget", "critical", {"path": "locustfile.py", "lines": {"begin": 1}})
    ]
    assert "error_rate" in findings[0]["description"]


def test_processes_2_collects_every_worker_and_leaves_no_stray(api_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    settings = LoadSettings(locustfile=str(LOCUSTFILE), host=api_url, users=4, run_time=3, processes=2)
    run = run_load(settings, workdir=str(work))
    assert run.raw.runner == "master"
    assert run.raw.workers_reporting == 2
    assert run.stats.total.requests > 50
    assert run.raw.locust_requests == run.stats.total.requests
    assert processes_with(str(work)) == []


def test_a_hung_locust_is_killed_within_its_time_limit(
    api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("import time\ntime.sleep(120)\n")  # hangs while locust imports it
    monkeypatch.setattr(runner, "STARTUP_GRACE", 4.0)
    monkeypatch.setattr(runner, "KILL_GRACE", 1.0)
    work = tmp_path / "work"
    settings = LoadSettings(locustfile=str(locustfile), host=api_url, users=1, run_time=1, processes=2)
    started = time.monotonic()
    with pytest.raises(runner.LoadRunError, match=r"locust did not finish within 5s \(run-time 1s\); it was stopped"):
        run_load(settings, workdir=str(work))
    assert time.monotonic() - started < 12
    assert processes_with(str(work)) == []


def test_a_locustfile_that_fails_to_import_is_a_run_error_with_locusts_output(api_url: str, tmp_path: Path) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("import no_such_module_for_perfgate\n")
    with pytest.raises(runner.LoadRunError) as info:
        run_load(LoadSettings(locustfile=str(locustfile), host=api_url, users=1, run_time=1))
    assert str(info.value).startswith("locust exited with code 1. Its last output:")
    assert "no_such_module_for_perfgate" in str(info.value)


def test_load_test_fixture_budgets_are_judged_by_the_core(pytester: pytest.Pytester, api_url: str) -> None:
    pytester.makefile(".yml", perfgate="kpis:\n  api_response_time:\n    p95: {target: 200ms, critical: 500ms}\n")
    pytester.makepyfile(
        f"""
        import sys
        import pytest

        LOCUSTFILE = {str(LOCUSTFILE)!r}
        URL = {api_url!r}

        @pytest.mark.perf_budget(kpi="api_response_time", rps="1/s", error_rate="1%")
        def test_within(load_test):
            run = load_test(LOCUSTFILE, host=URL, users=3, run_time="2s")
            assert run.stats.total.requests > 10
            assert "locust" not in sys.modules and "gevent" not in sys.modules

        @pytest.mark.perf_budget(p95="1us")
        def test_breach(load_test):
            load_test(LOCUSTFILE, host=URL, users=3, run_time="2s")

        def test_twice(load_test):
            load_test(LOCUSTFILE, host=URL, users=1, run_time="1s")
            load_test(LOCUSTFILE, host=URL, users=1, run_time="1s")

        def test_not_answering(load_test):
            load_test(LOCUSTFILE, host="http://127.0.0.1:9", connect_timeout=1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-save=results.json")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_breach*",
            "*perf budget exceeded: p95 * exceeds critical 1us (* samples)*",
        ]
    )
    result.stdout.fnmatch_lines(["*load_test(...) was already called in this test*"])
    result.stdout.fnmatch_lines(["*load_test: target http://127.0.0.1:9 does not answer: connection refused*"])
    run = load_results(pytester.path / "results.json")
    within = run.by_nodeid()["test_load_test_fixture_budgets_are_judged_by_the_core.py::test_within"]
    assert within.mode == "load"
    assert {v.metric: v.verdict.value for v in within.verdicts} == {
        "p95": "pass",
        "rps": "pass",
        "error_rate": "pass",
    }
    assert set(within.evidence["load"]["endpoints"]) == {"GET /products", "GET /products/search", "GET /products/[id]"}
    # the response times, not the whole test call, are the time series
    assert len(within.series["time"].values) == within.evidence["load"]["total"]["requests"]


def test_external_worker_with_the_listener_is_counted_by_the_master(api_url: str, tmp_path: Path) -> None:
    """locust's own distributed mode: perfgate runs the master, a worker started by hand (as it
    would be on another machine) loads perfgate's listener and ships its rows."""
    import socket
    import subprocess

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", f"{runner.listener_path()},{LOCUSTFILE}", "--worker",
             "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    try:
        settings = LoadSettings(
            locustfile=str(LOCUSTFILE), host=api_url, users=3, run_time=3, expect_workers=1,
            master_bind_port=port, worker_wait=30,
        )  # fmt: skip
        run = run_load(settings, workdir=str(tmp_path / "work"))
        assert run.raw.runner == "master"
        assert run.raw.workers_reporting == 1
        assert run.stats.total.requests > 20
        assert run.raw.locust_requests == run.stats.total.requests
        assert worker.wait(timeout=15) == 0, worker_log.read_text()  # the master told it to quit
    finally:
        runner.stop_group(worker, grace=2)
    assert processes_with(str(tmp_path / "work")) == []


def test_the_example_server_is_stopped_with_its_context() -> None:
    with server_module().serve() as server:
        pid = server.pid
        os.kill(pid, 0)  # running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
