"""Load tests without generating load: run-time parsing, per-endpoint figures from known rows,
KPI evaluation both ways, the GitLab report's shape, the results file and the gate, progress
output, process-group clean-up, and every bad input of ``perfgate load`` (each rejected before
locust would start, or within the connect timeout)."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_perfgate import stats
from pytest_perfgate.budgets import Verdict
from pytest_perfgate.cli import load as load_cli
from pytest_perfgate.config import parse_config
from pytest_perfgate.errors import BudgetError, LoadError
from pytest_perfgate.gate import compare
from pytest_perfgate.load import runner
from pytest_perfgate.load.gitlab import k6_summary
from pytest_perfgate.load.kpi import build_spec, judge, parse_budget_option
from pytest_perfgate.load.report import ProgressLine, format_stats, format_verdicts
from pytest_perfgate.load.results import compute
from pytest_perfgate.load.run import LoadRun
from pytest_perfgate.load.runner import LoadSettings, RawRun, parse_run_time
from pytest_perfgate.model import load_results, save_results
from pytest_perfgate.units import Kind

KPI_FILE = """
kpis:
  api_response_time:
    p95: {target: 200ms, critical: 500ms}
    p99: {target: 500ms, critical: 1s}
  api_throughput:
    rps: {target: 1000/s, critical: 500/s}
  api_errors:
    error_rate: {target: 0.1%, critical: 1%}
"""
START = 1_000_000.0


def raw_run(
    per_second: int = 20,
    seconds: int = 4,
    ms: float = 12.3456,
    fail_every: int = 0,
    names: tuple[str, ...] = ("/a", "/b"),
) -> RawRun:
    """``per_second`` requests in each of ``seconds`` seconds, alternating between ``names``,
    each ``ms`` (+ a small ramp so percentiles are distinct), every ``fail_every``-th failing."""
    rows = []
    for i in range(per_second * seconds):
        ts = START + (i // per_second) + (i % per_second) / per_second + 0.001
        error = "HTTPError: 500" if fail_every and i % fail_every == 0 else None
        rows.append(("GET", names[i % len(names)], ms + i * 0.001, ts, error))
    return RawRun(start=START, stop=START + seconds + 0.5, rows=tuple(rows), locust_version="2.x")


# --------------------------------------------------------------------------- run-time


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30s", 30),
        ("90", 90),
        (90, 90),
        ("2m", 120),
        ("1h30m", 5400),
        ("1m30s", 90),
        (" 5s ", 5),
        ("1.5s", 2),
        ("5ms", 1),
        (2.5, 3),
        ("1.5min", 90),
    ],
)
def test_run_time_forms(raw: object, seconds: int) -> None:
    assert parse_run_time(raw) == seconds


@pytest.mark.parametrize("raw", ["", "abc", "30 parsecs", "-5s", "0s", True, None, [30]])
def test_run_time_that_does_not_parse_names_the_accepted_forms(raw: object) -> None:
    with pytest.raises(LoadError) as info:
        parse_run_time(raw)
    assert f"run-time {raw!r}" in str(info.value)
    assert "accepted: a duration such as '30s', '90', '2m', '1h30m' or '1.5min' (locust runs whole" in str(info.value)


# --------------------------------------------------------------------------- figures


def test_figures_per_endpoint_and_total_from_every_response_time() -> None:
    raw = raw_run(per_second=20, seconds=4, fail_every=10)
    load = compute(raw)
    assert [ep.name for ep in load.endpoints] == ["GET /a", "GET /b"]
    total = load.total
    assert total.requests == 80 and total.failures == 8
    assert total.error_rate == pytest.approx(0.1)
    # 4 whole seconds in a 4.5 s window, 20 requests completed in each
    assert total.per_second == (20.0, 20.0, 20.0, 20.0)
    assert total.rps == 20.0
    a = load.endpoints[0]
    assert a.requests == 40 and a.failures == 8  # failing rows are the even ones: all on /a
    assert load.endpoints[1].failures == 0
    expected = [(12.3456 + i * 0.001) / 1000 for i in range(0, 80, 2)]
    assert a.times == pytest.approx(expected, rel=1e-12)
    # full precision: locust would print 12 (two significant digits) for every one of these
    assert a.statistic("p95") == pytest.approx(stats.percentile(expected, 95), rel=1e-12)
    assert a.statistic("p95") != pytest.approx(0.012, rel=1e-3)
    assert a.errors == {"HTTPError: 500": 8}


def test_warmup_leaves_early_requests_out_and_late_ones_count_but_not_in_rps() -> None:
    rows = list(raw_run(per_second=10, seconds=3).rows)
    rows.append(("GET", "/a", 50.0, START + 3.9, None))  # completed after the stop (stop timeout)
    raw = replace(raw_run(), rows=tuple(rows), stop=START + 3.5)
    load = compute(raw, warmup=1.0)
    assert load.excluded == 10
    assert load.total.requests == 21
    assert load.window == pytest.approx(2.5)
    assert load.total.per_second == (10.0, 10.0)  # the late one is in no whole second


def test_series_are_what_budgets_and_the_gate_read() -> None:
    series = compute(raw_run()).total.series()
    assert set(series) == {"time", "rps", "error_rate", "requests"}
    assert series["time"].kind is Kind.TIME and len(series["time"].values) == 80
    assert series["rps"].kind is Kind.RATE and series["rps"].higher_is_better
    assert series["error_rate"].kind is Kind.RATIO and not series["error_rate"].higher_is_better
    assert series["requests"].values == (80.0,)


# --------------------------------------------------------------------------- KPIs


def spec_for(*kpis: str, budgets: tuple[str, ...] = (), error_rate: str | None = "1%"):
    return build_spec(parse_config(KPI_FILE), kpis, budgets, error_rate=error_rate)


def verdicts_of(raw: RawRun, *kpis: str, budgets: tuple[str, ...] = ()) -> dict[str, Verdict]:
    total = judge(compute(raw), spec_for(*kpis, budgets=budgets), "locustfile.py")
    return {v.metric: v.verdict for v in total.verdicts}


def test_kpis_pass_when_latency_throughput_and_errors_are_within() -> None:
    fast_and_busy = raw_run(per_second=1200, seconds=2, ms=20.0)
    assert verdicts_of(fast_and_busy, "api_response_time", "api_throughput") == {
        "p95": Verdict.PASS,
        "p99": Verdict.PASS,
        "rps": Verdict.PASS,
        "error_rate": Verdict.PASS,
    }


def test_kpis_fail_on_latency_and_on_throughput_which_is_higher_is_better() -> None:
    slow_and_idle = raw_run(per_second=100, seconds=2, ms=600.0)
    got = verdicts_of(slow_and_idle, "api_response_time", "api_throughput")
    assert got["p95"] is Verdict.FAIL  # 600ms: past the critical 500ms
    assert got["p99"] is Verdict.WARN  # past the target 500ms, within the critical 1s
    assert got["rps"] is Verdict.FAIL  # 100/s is below the critical 500/s
    middling = raw_run(per_second=700, seconds=2, ms=20.0)
    assert verdicts_of(middling, "api_throughput")["rps"] is Verdict.WARN  # between 500/s and 1000/s


def test_error_rate_over_critical_fails_even_when_latency_is_fine() -> None:
    raw = raw_run(per_second=1200, seconds=2, ms=5.0, fail_every=20)  # 5% errors
    total = judge(compute(raw), spec_for("api_response_time"), "locustfile.py")
    got = {v.metric: v for v in total.verdicts}
    assert got["p95"].verdict is Verdict.PASS
    assert got["error_rate"].verdict is Verdict.FAIL
    assert got["error_rate"].source == "default"
    assert total.outcome == "failed"
    assert got["error_rate"].message() == "error_rate 5% exceeds critical 1%"


def test_levels_resolve_default_then_kpi_then_budget_option() -> None:
    spec = spec_for("api_errors", budgets=("error_rate=5%", "p95=100ms,300ms"))
    error_rate, p95 = spec.get("error_rate"), spec.get("p95")
    assert error_rate is not None and (error_rate.target, error_rate.critical) == (None, 0.05)
    assert p95 is not None and (p95.target, p95.critical) == (0.1, 0.3)
    assert spec_for(error_rate=None).budgets == ()
    assert spec_for("api_errors").get("error_rate").source == "kpi:api_errors"  # type: ignore[union-attr]


def test_unknown_kpi_names_the_known_ones() -> None:
    with pytest.raises(BudgetError) as info:
        spec_for("api_latency")
    assert "unknown KPI 'api_latency'" in str(info.value)
    assert "api_response_time" in str(info.value) and "api_throughput" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95", "--budget 'p95' does not parse; accepted: METRIC=CRITICAL or METRIC=TARGET,CRITICAL"),
        ("p95=1,2,3", "--budget 'p95=1,2,3': at most two levels"),
        ("latency=200ms", "--budget 'latency=200ms': unknown metric 'latency'"),
        ("p95=fast", "--budget 'p95=fast': 'p95': 'fast' is not a valid time"),
        ("rps=100/s,500/s", "--budget 'rps=100/s,500/s': 'rps': target 100/s is below critical 500/s"),
    ],
)
def test_bad_budget_option(text: str, message: str) -> None:
    with pytest.raises(LoadError) as info:
        parse_budget_option(text)
    assert str(info.value).startswith(message)


def test_a_budget_a_load_run_cannot_record_is_an_error_not_a_pass() -> None:
    spec = build_spec(parse_config(""), budgets=("mem_peak=10MB",))
    with pytest.raises(BudgetError, match="budget on 'mem_peak' but the test recorded no such metric"):
        judge(compute(raw_run()), spec, "locustfile.py")


def test_a_run_without_any_request_fails_every_level() -> None:
    empty = replace(raw_run(), rows=())
    total = judge(compute(empty), spec_for("api_response_time"), "locustfile.py")
    assert {v.verdict for v in total.verdicts} == {Verdict.FAIL}
    assert total.verdicts[0].detail == "no request completed in the measured window"


# --------------------------------------------------------------------------- reports


def test_gitlab_report_has_the_k6_summary_export_shape() -> None:
    load = compute(raw_run(per_second=50, seconds=2, fail_every=25))
    doc = json.loads(json.dumps(k6_summary(load, max_users=7)))
    metrics = doc["metrics"]
    assert metrics["http_reqs"] == {"count": 100, "rate": 50.0}
    waiting = metrics["http_req_waiting"]
    assert set(waiting) == {"avg", "min", "med", "max", "p(90)", "p(95)"}
    assert waiting["p(95)"] == pytest.approx(load.total.statistic("p95") * 1000)
    assert waiting["p(90)"] == pytest.approx(load.total.statistic("p90") * 1000)
    assert waiting["med"] < waiting["p(90)"] < waiting["p(95)"] <= waiting["max"]
    assert metrics["checks"]["passes"] == 96 and metrics["checks"]["fails"] == 4
    assert metrics["vus_max"]["value"] == 7
    checks = doc["root_group"]["checks"]
    # failures at rows 0, 25, 50, 75: two on each endpoint
    assert {name: (c["passes"], c["fails"]) for name, c in checks.items()} == {
        "GET /a succeeds": (48, 2),
        "GET /b succeeds": (48, 2),
    }


def test_stats_table_and_verdict_lines() -> None:
    load = compute(raw_run(per_second=20, seconds=2))
    lines = format_stats(load)
    assert lines[0].split() == ["endpoint", "requests", "fails", "errors", "rps", "p50", "p90", "p95", "p99", "max"]
    assert lines[-1].split()[:5] == ["total", "40", "0", "0%", "20/s"]
    total = judge(load, spec_for("api_throughput"), "locustfile.py")
    text = "\n".join(format_verdicts(total.verdicts))
    assert "FAIL  rps 20/s is below critical 500/s (target 1000/s; 2 samples)  [kpi:api_throughput]" in text
    assert text.endswith("load: FAILED: 1 critical breach, 0 past target, 1 within budget")


# --------------------------------------------------------------------------- results file and gate


def load_run(raw: RawRun, tmp_path: Path) -> LoadRun:
    settings = LoadSettings(locustfile=str(tmp_path / "locustfile.py"), host="http://127.0.0.1:1", run_time=4)
    return LoadRun(settings, raw, compute(raw), "locustfile.py", 5.0, ())


def test_results_file_round_trips_and_the_gate_compares_it(tmp_path: Path) -> None:
    spec = spec_for("api_response_time")
    base_run = load_run(raw_run(per_second=200, seconds=4, ms=10.0), tmp_path)
    base_path = save_results(tmp_path / "base.json", base_run.run_result(base_run.judged(spec)))
    base = load_results(base_path)
    assert sorted(base.by_nodeid()) == [
        "load:locustfile.py::GET /a",
        "load:locustfile.py::GET /b",
        "load:locustfile.py::total",
    ]
    total = base.by_nodeid()["load:locustfile.py::total"]
    assert total.mode == "load" and total.spec.kpi == "api_response_time"
    assert {v.metric for v in total.verdicts} == {"p95", "p99", "error_rate"}
    assert len(total.series["time"].values) == 800
    assert base.metadata["load"]["run_time"] == 4

    # the same load, twice as slow: a regression on the response times of every endpoint
    slow_run = load_run(raw_run(per_second=200, seconds=4, ms=20.0), tmp_path)
    slow = load_results(save_results(tmp_path / "slow.json", slow_run.run_result(slow_run.judged(spec))))
    report = compare([base], slow)
    regressed = {(c.nodeid, c.metric) for c in report.regressions}
    assert ("load:locustfile.py::total", "time") in regressed
    assert report.exit_code == 1
    assert compare([base], base).exit_code == 0


# --------------------------------------------------------------------------- progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


POINT = {"elapsed": 3.2, "users": 10, "rps": 812.25, "requests": 2500, "failures": 3}


def test_progress_is_rewritten_in_place_on_a_terminal() -> None:
    stream = Tty()
    progress = ProgressLine(stream, 30)
    progress(POINT)
    progress({**POINT, "elapsed": 4.2})
    progress.close()
    out = stream.getvalue()
    assert out.startswith("\rload     3s/30s  users 10  rps 812.2  requests 2500  failures 3")
    assert "\rload     4s/30s" in out and "\n" not in out


def test_progress_is_quiet_in_ci_logs_unless_asked() -> None:
    quiet = io.StringIO()
    ProgressLine(quiet, 30)(POINT)
    assert quiet.getvalue() == ""
    asked = io.StringIO()
    progress = ProgressLine(asked, 30, mode="always", every=10)
    for elapsed in (1, 2, 11, 12, 21):
        progress({**POINT, "elapsed": elapsed})
    assert [line.split()[1] for line in asked.getvalue().splitlines()] == ["1s/30s", "11s/30s", "21s/30s"]
    never = Tty()
    ProgressLine(never, 30, mode="never")(POINT)
    assert never.getvalue() == ""


# --------------------------------------------------------------------------- process group


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run. A zombie is dead: the shell's orphaned child is
    reaped by init in its own time (here PID 1 reaps every ~2 s), so "the group is gone" would depend
    on init's schedule, not on what stop_group did."""
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # gone meanwhile
            continue
        if int(pgrp) == pgid and state != "Z":
            live.append(int(entry.name))
    return live


def test_stop_group_leaves_no_stray_child() -> None:
    # the shell prints its background child's pid once it has started it: no sleep to wait for that
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; sleep 60"], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    assert os.getpgid(child) == proc.pid  # the stray-to-be runs, in the group
    runner.stop_group(proc, grace=2)
    proc.stdout.close()
    assert proc.returncode is not None
    if Path("/proc/self/stat").exists():
        assert _live_members(proc.pid) == []
    else:  # no /proc: whether the group is gone is all that can be asked
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)


# --------------------------------------------------------------------------- bad input (CLI)


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def locustfile(tmp_path: Path) -> Path:
    path = tmp_path / "locustfile.py"
    path.write_text(
        "from locust import HttpUser, task\n\nclass U(HttpUser):\n    @task\n    def t(self):\n        self.client.get('/')\n"
    )
    (tmp_path / "perfgate.yml").write_text(KPI_FILE)
    return path


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = load_cli.run(cli(*argv))
    return code, capsys.readouterr().err


def test_missing_locustfile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(capsys, str(tmp_path / "nope.py"), "--host", "http://127.0.0.1:8000")
    assert code == 2
    assert err == f"error: locustfile {tmp_path / 'nope.py'}: no such file\n"


def test_run_time_that_does_not_parse(capsys: pytest.CaptureFixture[str], locustfile: Path) -> None:
    code, err = run_cli(capsys, str(locustfile), "--host", "http://127.0.0.1:8000", "--run-time", "thirty")
    assert code == 2
    assert err.startswith("error: run-time 'thirty' does not parse; accepted: a duration such as '30s', '90'")


def test_unknown_kpi(capsys: pytest.CaptureFixture[str], locustfile: Path) -> None:
    code, err = run_cli(capsys, str(locustfile), "--host", "http://127.0.0.1:8000", "--kpi", "api_speed")
    assert code == 2
    assert "--kpi: unknown KPI 'api_speed'" in err and "api_response_time" in err


def test_kpi_without_a_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lonely = tmp_path / "sub" / "locustfile.py"
    lonely.parent.mkdir()
    lonely.write_text("")
    code, err = run_cli(
        capsys,
        str(lonely),
        "--host",
        "http://127.0.0.1:8000",
        "--kpi",
        "api_response_time",
        "--config",
        str(tmp_path / "missing.yml"),
    )
    assert code == 2
    assert err == f"error: {tmp_path / 'missing.yml'}: no such file\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "error: --host is required"),
        (("--host", "127.0.0.1:8000"), "error: host '127.0.0.1:8000' is not an http(s) URL"),
        (("--host", "http://127.0.0.1:8000", "--users", "0"), "error: users must be at least 1, got 0"),
        (("--host", "http://127.0.0.1:8000", "--processes", "0"), "error: processes must be a whole number >= 1"),
        (("--host", "http://127.0.0.1:8000", "--warmup", "20"), "error: warmup 20s must be at least 0 and shorter"),
        (
            ("--host", "http://127.0.0.1:8000", "--error-rate", "lots"),
            "error: --error-rate 'lots': 'lots' is not a valid ratio",
        ),
    ],
)
def test_other_bad_options(
    capsys: pytest.CaptureFixture[str], locustfile: Path, argv: tuple[str, ...], message: str
) -> None:
    code, err = run_cli(capsys, str(locustfile), *argv)
    assert code == 2
    assert err.startswith(message)


def test_locust_not_installed_gives_an_install_hint(
    capsys: pytest.CaptureFixture[str], locustfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runner.importlib.util.find_spec
    monkeypatch.setattr(
        runner.importlib.util, "find_spec", lambda name, *a: None if name == "locust" else real(name, *a)
    )
    code, err = run_cli(capsys, str(locustfile), "--host", "http://127.0.0.1:8000")
    assert code == 2
    assert err == (
        f"error: locust is not installed in {sys.executable}\n"
        "hint: pip install 'pytest-perfgate[load]'  (or: pip install 'locust>=2.20')\n"
    )


def test_target_refusing_connections(capsys: pytest.CaptureFixture[str], locustfile: Path) -> None:
    port = closed_port()
    started = time.monotonic()
    code, err = run_cli(capsys, str(locustfile), "--host", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert code == 3
    assert err.startswith(
        f"error: target http://127.0.0.1:{port} does not answer: connection refused (is the service running on that port?)"
    )


def test_target_that_accepts_but_never_answers_fails_within_the_connect_timeout(
    capsys: pytest.CaptureFixture[str], locustfile: Path, silent_port: int
) -> None:
    started = time.monotonic()
    code, err = run_cli(
        capsys, str(locustfile), "--host", f"http://127.0.0.1:{silent_port}", "--connect-timeout", "0.5"
    )
    elapsed = time.monotonic() - started
    assert code == 3
    assert err.startswith(f"error: target http://127.0.0.1:{silent_port} does not answer: no answer within 0.5s")
    assert elapsed < 3
    assert "hint: start the service first, check --host, or raise --connect-timeout" in err


def test_check_target_counts_any_http_answer(tmp_path: Path) -> None:
    import http.server

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        assert runner.check_target(f"http://127.0.0.1:{server.server_address[1]}", 2) == "HTTP 404 Not Found"
    finally:
        thread.join(5)
        server.server_close()


def test_listener_path_points_at_a_file_that_never_imports_perfgate(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_cli.run(cli("--listener-path")) == 0
    path = Path(capsys.readouterr().out.strip())
    source = path.read_text()
    assert path.name == "perfgate_listener.py"
    assert "import pytest_perfgate" not in source and "from pytest_perfgate" not in source


def test_load_results_in_the_pytest_process_never_import_locust() -> None:
    # importing every load module (the CLI and the fixture's plugin included) leaves locust out
    code = (
        "import sys, pytest_perfgate.load, pytest_perfgate.cli.load, pytest_perfgate.load.plugin; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_local_master_and_its_workers_meet_on_their_own_loopback_port(tmp_path: Path) -> None:
    """locust's default master port (5557) is shared by every run on the machine: two runs with
    --processes at once would swap workers (and one kill would leave the other's behind)."""
    settings = LoadSettings(locustfile=str(tmp_path / "locustfile.py"), host="http://127.0.0.1:1", processes=2)
    command = settings.command(local_master_port=40123)
    assert command[command.index("--master-bind-port") + 1] == "40123"
    assert command[command.index("--master-port") + 1] == "40123"
    assert (
        command[command.index("--master-bind-host") + 1] == command[command.index("--master-host") + 1] == "127.0.0.1"
    )
    assert "--master-port" not in LoadSettings(locustfile="l.py", host="http://127.0.0.1:1").command(40123)
