"""``perfgate load --serve CMD [--profile cpu|memory]``: perfgate starts the service, waits for it,
stops it on every path, and profiles it under load. Pure parts (command splitting, the call tree
from sampled stacks, the flame graph, memray's command) on constructed inputs with known
answers; the rest as real runs on loopback only, a few seconds each, no process left behind."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load import EXAMPLE, LOCUSTFILE, processes_running, serve_command, wait_until
from pytest_perfgate.cli import load as load_cli
from pytest_perfgate.errors import LoadError
from pytest_perfgate.load import memory as memory_profile
from pytest_perfgate.load import profile as cpu_profile
from pytest_perfgate.load.flamegraph import flamegraph_svg
from pytest_perfgate.load.profile import SampledNode, ServiceCpuProfile, build_tree, read_speedscope
from pytest_perfgate.load.serve import ServeSettings
from pytest_perfgate.model import load_results

needs_load = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("locust", "uvicorn", "starlette", "mongomock")),
    reason="needs locust, uvicorn, starlette and mongomock (pip install 'pytest-perfgate[load,test]')",
)


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def marker() -> Iterator[str]:
    """A word put in the service's command line; every process carrying it is killed after."""
    word = f"perfgate-serve-test-{uuid.uuid4().hex}"
    yield word
    for pid in processes_running(word):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the command


def test_the_command_is_split_like_a_shell_and_never_run_by_one() -> None:
    serve = ServeSettings("python -c 'print(1); import sys' $HOME; rm -rf x --port={port} {port}", port=4321)
    assert serve.argv() == ["python", "-c", "print(1); import sys", "$HOME;", "rm", "-rf", "x", "--port=4321", "4321"]
    assert ServeSettings("app --bind 127.0.0.1:8000").argv() == ["app", "--bind", "127.0.0.1:8000"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("python -c 'unclosed", "does not split into words (No closing quotation)"),
        ("   ", "--serve is empty"),
        ("app --port {port}", "has {port} but no port was chosen"),
    ],
)
def test_a_command_that_cannot_run_is_refused_with_the_accepted_form(command: str, message: str) -> None:
    with pytest.raises(LoadError, match=r"accepted|no port") as caught:
        ServeSettings(command).validate()
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "cpu"], "--profile needs --serve"),
        (["--serve", "app --port 8000"], "--serve without {port} in its command needs --host"),
        (["--serve-ready", "http://127.0.0.1:1/", "--host", "http://127.0.0.1:1"], "--serve-ready needs --serve"),
        (["--serve", "python -c 'x", "--host", "http://127.0.0.1:1"], "does not split into words"),
    ],
)
def test_cli_refuses_bad_serve_options_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("")
    assert load_cli.run(cli(str(locustfile), *argv)) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- the call tree


A, B, SHARED, FAST, SLOW = (
    ("a", "m.py:1"),
    ("b", "m.py:5"),
    ("shared", "m.py:9"),
    ("fast", "m.py:20"),
    ("slow", "m.py:30"),
)
PROC = ("process 1: python app.py", "")


def _node(tree: tuple[SampledNode, ...], *names: str) -> SampledNode:
    nodes, found = tree, None
    for name in names:
        found = next(n for n in nodes if n.function == name)
        nodes = found.children
    assert found is not None
    return found


def test_the_call_tree_keeps_each_path_that_ran_and_only_those() -> None:
    """a -> shared -> fast (3 samples), b -> shared -> slow (5), 2 in a itself: an aggregated
    caller/callee graph would show a -> shared -> slow, a path that never ran."""
    stacks = [(PROC, A, SHARED, FAST)] * 3 + [(PROC, B, SHARED, SLOW)] * 5 + [(PROC, A)] * 2
    tree, functions, samples = build_tree(stacks)
    assert samples == 10
    assert [c.function for c in _node(tree, PROC[0], "a", "shared").children] == ["fast"]
    assert [c.function for c in _node(tree, PROC[0], "b", "shared").children] == ["slow"]
    a = _node(tree, PROC[0], "a")
    assert (a.own, a.total) == (2, 5)
    assert (_node(tree, PROC[0], "b", "shared", "slow").own, _node(tree, PROC[0]).total) == (5, 10)
    # the table: own samples most first, totals over all paths; the process is no function
    assert [(f.function, f.location, f.own, f.total) for f in functions] == [
        ("slow", "m.py:30", 5, 5),
        ("fast", "m.py:20", 3, 3),
        ("a", "m.py:1", 2, 5),
        ("shared", "m.py:9", 0, 8),
        ("b", "m.py:5", 0, 5),
    ]

    def check(node: SampledNode) -> None:  # a child never holds more samples than its parent
        assert node.own + sum(c.total for c in node.children) == node.total
        for child in node.children:
            check(child)

    for root in tree:
        check(root)


def test_recursion_counts_a_sample_once_in_a_functions_total() -> None:
    f = ("f", "m.py:3")
    _, functions, _ = build_tree([(PROC, f, f, f)] * 4 + [(PROC, f)])
    assert [(x.function, x.own, x.total) for x in functions] == [("f", 5, 5)]


def test_hot_path_and_json_round_trip() -> None:
    stacks = [(PROC, A, SHARED, FAST)] * 3 + [(PROC, B, SHARED, SLOW)] * 5
    tree, functions, samples = build_tree(stacks)
    profile = ServiceCpuProfile("py-spy 0.4.3", 100, samples, 0.08, 1, functions, tree)
    assert [n.function for n in profile.hot_path()] == [PROC[0], "b", "shared", "slow"]
    data = json.loads(json.dumps(profile.to_json()))
    assert data["hot_path"][-1] == "slow (m.py:30)" and data["top"][0]["function"] == "slow"
    again = ServiceCpuProfile.from_json(data)
    assert again.top == profile.top and again.tree == profile.tree and again.samples == 8


def test_speedscope_file_of_py_spy_shape_is_read_outermost_first(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    frames = [
        {"name": "leaf", "file": "/x/app.py", "line": 10},
        {"name": "handler", "file": "/x/app.py", "line": 3},
        {"name": 'process 7:"python app.py"', "file": "", "line": 0},
        {"name": 'process 9:"python worker"', "file": "", "line": 0},  # a child (--subprocesses)
    ]
    profiles = [
        {"type": "sampled", "name": "Thread 1", "samples": [[2, 1, 0], [2, 1]], "weights": [0.01, 0.01]},
        {"type": "sampled", "name": "Thread 2", "samples": [[2, 1, 0]], "weights": [0.01]},
        {"type": "sampled", "name": "Process 9", "samples": [[2, 3, 1, 0]], "weights": [0.01]},
    ]
    path.write_text(json.dumps({"shared": {"frames": frames}, "profiles": profiles}))
    stacks, processes = read_speedscope(path)
    assert processes == 2
    assert stacks[0] == (('process 7:"python app.py"', ""), ("handler", "/x/app.py:3"), ("leaf", "/x/app.py:10"))
    tree, functions, samples = build_tree(stacks)
    assert samples == 4 and [(f.function, f.own) for f in functions] == [("leaf", 3), ("handler", 1)]
    assert [(n.function, n.total) for n in tree[0].children] == [("handler", 3), ('process 9:"python worker"', 1)]
    path.write_text("{}")
    with pytest.raises(LoadError, match="py-spy's profile cannot be read"):
        read_speedscope(path)


def test_flame_graph_is_self_contained_svg_with_escaped_names() -> None:
    evil = ("<script>alert(1)</script>", "/x/evil.py:1")
    stacks = [(PROC, A, evil)] * 3 + [(PROC, B)] * 1
    tree, _, samples = build_tree(stacks)
    svg = flamegraph_svg(tree, samples)
    root = ET.fromstring(svg)  # well-formed XML
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert "href" not in svg and "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "a (m.py:1): 3 samples (75.0%), own 0" in titles
    widths = {
        t.text.split(" (")[0]: float(g.find("{http://www.w3.org/2000/svg}rect").get("width"))  # type: ignore[union-attr]
        for g in root.iter("{http://www.w3.org/2000/svg}g")
        for t in g.iter("{http://www.w3.org/2000/svg}title")
        if t.text
    }
    assert widths["a"] == pytest.approx(3 * widths["b"])


# --------------------------------------------------------------------------- py-spy and memray commands


def _fake_py_spy(tmp_path: Path, said: str, code: int) -> str:
    script = tmp_path / "py-spy"
    script.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_a_refused_attach_names_ptrace_and_the_container_capability(tmp_path: Path) -> None:
    fake = _fake_py_spy(tmp_path, "Permission Denied: Try running again with elevated permissions", 1)
    with pytest.raises(LoadError) as caught:
        cpu_profile.check_attach(fake, 12345)
    text = str(caught.value)
    assert "ptrace is not permitted" in text and "pid 12345" in text and "Permission Denied" in text
    assert "CAP_SYS_PTRACE" in text and "--cap-add SYS_PTRACE" in text and "ptrace_scope" in text
    other = _fake_py_spy(tmp_path, "Error: Failed to find python version from target process", 1)
    with pytest.raises(LoadError, match=r"py-spy cannot sample the service \(pid 7\)") as caught:
        cpu_profile.check_attach(other, 7)
    assert "ptrace" not in str(caught.value)


def test_py_spy_missing_is_an_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cpu_profile.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LoadError, match="needs py-spy, which is not installed") as caught:
        cpu_profile.find_py_spy()
    assert "pip install 'pytest-perfgate[profile]'  (or: pip install py-spy" in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "-m", "uvicorn", "app:app"], ["python", "-m", "memray", "run", "-m", "uvicorn", "app:app"]),
        (
            ["/venv/bin/python3.11", "serve.py", "--port", "1"],
            ["/venv/bin/python3.11", "-m", "memray", "run", "serve.py"],
        ),
        (["python3", "-c", "pass"], ["python3", "-m", "memray", "run", "-c", "pass"]),
    ],
)
def test_memray_is_inserted_after_the_interpreter(argv: list[str], expected: list[str], tmp_path: Path) -> None:
    out = memory_profile.memray_argv(argv, tmp_path / "c.bin")
    assert out[:4] == expected[:4]
    assert out[4:10] == ["--output", str(tmp_path / "c.bin"), "--force", "--follow-fork", "--quiet", *expected[4:5]]
    assert out[-len(argv) + 1 :] == argv[1:]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["uvicorn", "app:app"], "its command must be a Python interpreter followed by"),
        (["./serve.sh"], 'not "uvicorn ...": name the interpreter'),
        (["python", "-X", "dev", "-m", "app"], "memray accepts -m module, -c code or a script, not ['-X']"),
        (["python"], "memray accepts -m module"),
    ],
)
def test_memray_refuses_a_command_that_is_not_a_python_program(argv: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        memory_profile.memray_argv(argv, tmp_path / "c.bin")
    assert message in str(caught.value)


# --------------------------------------------------------------------------- real services


@needs_load
def test_a_service_that_dies_before_it_is_ready_is_a_run_error_with_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    command = f"{sys.executable} -c \"import sys; print('boom: no settings file'); sys.exit(4)\" {marker} {{port}}"
    code = load_cli.run(cli(str(LOCUSTFILE), "--serve", command, "-u", "1", "-t", "1s"))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "the service exited with code 4 before it was ready" in err and "boom: no settings file" in err


@needs_load
def test_a_service_not_ready_in_time_is_stopped_with_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    program = "import time; print('loading a huge model', flush=True); time.sleep(120)"
    command = f'{sys.executable} -c "{program}" {marker} {{port}}'
    started = time.monotonic()
    code = load_cli.run(cli(str(LOCUSTFILE), "--serve", command, "--serve-timeout", "1s", "-u", "1", "-t", "1s"))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "the service was not ready within 1s (waited for port" in err and "loading a huge model" in err
    assert "--serve-timeout" in err
    assert time.monotonic() - started < 60
    assert processes_running(marker) == []  # stopped, its whole group


@needs_load
def test_serve_ready_url_is_waited_for(tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str) -> None:
    """The port accepts connections at once, but the service is ready only when /ready says so."""
    program = (
        "import http.server, sys, time\n"
        "start = time.monotonic()\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        ready = time.monotonic() - start > 1.5 or self.path != '/ready'\n"
        "        self.send_response(200 if ready else 503); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    server = tmp_path / "server.py"
    server.write_text(program)
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        "from locust import HttpUser, task, constant\n"
        "class U(HttpUser):\n"
        "    wait_time = constant(0.05)\n"
        "    @task\n"
        "    def ready(self):\n"
        "        self.client.get('/ready')\n"
    )
    command = f"{sys.executable} {server} {{port}} {marker}"
    code = load_cli.run(
        cli(
            str(locustfile), "--serve", command, "--serve-ready", "http://127.0.0.1:{port}/ready", "-u", "1", "-t", "1s"
        )
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ready after 1." in out or "ready after 2." in out, out
    assert "GET /ready" in out and "  0%" in out.split("GET /ready")[1].splitlines()[0]  # no failure: it was ready
    assert wait_until(lambda: processes_running(marker) == [], 10)


@needs_load
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_served_run_stops_the_service_and_locust(
    tmp_path: Path, marker: str, signum: int, code: int
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_perfgate.cli", "load", str(LOCUSTFILE), "--serve", serve_command(marker),
         "-u", "2", "-t", "60s", "--workdir", str(tmp_path / "work"), "--progress", "never"],
        cwd=EXAMPLE.parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # locust runs once its log has the listener's progress
        assert wait_until(lambda: (tmp_path / "work" / "progress.jsonl").exists(), 60), proc.stderr
        assert processes_running(marker)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert b"error: interrupted; locust and the service were stopped" in err
        assert wait_until(lambda: processes_running(marker) == [], 20), processes_running(marker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _example_run(tmp_path: Path, profile: str, *extra: str, serve: str = "") -> tuple[int, str, dict]:  # type: ignore[type-arg]
    out = tmp_path / "out"
    args = cli(
        str(LOCUSTFILE), "--serve", serve or serve_command(), "--profile", profile, "--profile-dir", str(out / "profile"),
        "-u", "5", "-t", "5s", "--warmup", "1s", "--locust-arg=--analytics", "--progress", "never",
        "--save", str(out / "load.json"), "--markdown", str(out / "load.md"), *extra,
    )  # fmt: skip
    code = load_cli.run(args)
    total = next(t for t in load_results(out / "load.json").tests if t.nodeid.endswith("::total"))
    return code, str(out), total.evidence["service"]


@needs_load
@pytest.mark.skipif(shutil.which("py-spy", path=os.path.dirname(sys.executable)) is None, reason="needs py-spy")
def test_profile_cpu_names_the_cpu_heavy_endpoint_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parents[1])
    code, out, service = _example_run(tmp_path, "cpu")
    printed = capsys.readouterr().out
    assert code == 0, printed
    cpu = ServiceCpuProfile.from_json(service["cpu"])
    # score_products (the ranking's pure-Python loop) holds the most samples of its own, at its def line
    top = cpu.top[0]
    assert top.function == "score_products" and top.location.endswith(
        "examples/api_service/app.py:" + _line("score_products")
    )
    assert cpu.share(top.own) > 0.2
    ranking = next(n for n in _walk(cpu.tree) if n.function == "create_app.<locals>.ranking")
    assert [c.function for c in ranking.children if c.function == "score_products"]
    assert cpu.samples > 50 and cpu.rate == 100 and cpu.processes == 1
    assert 2.0 < cpu.seconds < 8.0  # the measured window (5s - 1s warm-up), not the whole run
    svg = Path(service["cpu"]["files"]["flamegraph"]).read_text()
    assert "score_products" in svg and "<script" not in svg
    assert "service CPU (py-spy" in printed and "score_products (examples/api_service/app.py:" in printed
    assert "hot path: " in printed
    markdown = Path(out, "load.md").read_text()
    assert "<details><summary>Service CPU: score\\_products on top" in markdown


@needs_load
@pytest.mark.skipif(shutil.which("py-spy", path=os.path.dirname(sys.executable)) is None, reason="needs py-spy")
def test_profile_cpu_samples_uvicorns_worker_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parents[1])
    code, _, service = _example_run(tmp_path, "cpu", serve=serve_command().replace(" --port", " --workers 2 --port"))
    assert code == 0, capsys.readouterr().out
    cpu = ServiceCpuProfile.from_json(service["cpu"])
    # the supervisor and what it spawned (--subprocesses follows them): two workers, and
    # multiprocessing's resource tracker. A process that was idle whenever py-spy sampled it (the
    # tracker, a worker the balancer left alone) is counted but has no node in the tree
    (supervisor,) = cpu.tree
    children = [n for n in supervisor.children if n.function.startswith("process ")]
    assert cpu.processes >= 3 and 1 <= len(children) <= cpu.processes - 1
    # the requests are served in the workers: score_products is sampled under them, not in the supervisor
    serving = [w for w in children if any(n.function == "score_products" for n in _walk((w,)))]
    assert serving
    own = [n for n in supervisor.children if not n.function.startswith("process ")]
    assert not any(n.function == "score_products" for n in _walk(own))
    assert "score_products" in [f.function for f in cpu.top[:3]]


def _walk(nodes):  # type: ignore[no-untyped-def]
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _line(function: str) -> str:
    for number, text in enumerate((EXAMPLE / "app.py").read_text().splitlines(), 1):
        if text.startswith(f"def {function}("):
            return str(number)
    raise AssertionError(function)


@needs_load
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to take ptrace away"
)
def test_profile_cpu_without_ptrace_permission_is_an_error_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    """py-spy run as another user than the service's: the kernel refuses ptrace (a real refusal)."""
    py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if py_spy is None:
        pytest.skip("needs py-spy")
    wrapper = tmp_path / "py-spy"
    wrapper.write_text(f'#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {py_spy} "$@"\n')
    wrapper.chmod(0o755)
    from pytest_perfgate.load.run import ProfileSettings, run_load
    from pytest_perfgate.load.runner import LoadSettings, free_port

    port = free_port()
    settings = LoadSettings(locustfile=str(LOCUSTFILE), host=f"http://127.0.0.1:{port}", users=1, run_time=1)
    serve = ServeSettings(serve_command(marker), port=port)
    with pytest.raises(LoadError) as caught:
        run_load(settings, serve=serve, profile=ProfileSettings("cpu", str(tmp_path / "p"), py_spy=str(wrapper)))
    assert "ptrace is not permitted" in str(caught.value) and "SYS_PTRACE" in str(caught.value)
    assert not (tmp_path / "p" / "service-cpu.speedscope.json").exists()
    assert wait_until(lambda: processes_running(marker) == [], 20)


@needs_load
@pytest.mark.skipif(importlib.util.find_spec("memray") is None, reason="needs memray")
def test_profile_memory_finds_the_memory_hog_by_function_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_perfgate.evidence import MemoryProfile

    monkeypatch.chdir(EXAMPLE.parents[1])
    code, out, service = _example_run(tmp_path, "memory")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert service["command"][1:5] == ["-m", "memray", "run", "--output"]
    memory = MemoryProfile.from_json(service["memory"])
    assert memory.tracer == "memray"
    # at the high-water mark, build_report_cache (16 MiB per report, held for the request) holds
    # the most memory of its own, at its def line, many times the next function's
    owners = memory_profile.by_own(memory)
    hog = owners[0]
    assert hog.function == "build_report_cache"
    assert hog.location.endswith("examples/api_service/app.py:" + _line("build_report_cache"))
    assert hog.self_net >= 16 * 2**20 and hog.self_net > 4 * owners[1].self_net
    # over time: it is the function that held the most at any moment, and nothing at the end
    assert memory.timeline is not None
    assert memory.timeline.functions[0].startswith("build_report_cache (")
    assert max(memory.timeline.held[0]) >= 16 * 2**20 and memory.timeline.held[0][-1] < 2**20
    begin, end = service["window"]
    assert 0 < begin < end and end - begin == pytest.approx(4.0, abs=1.5)  # 5s run, 1s warm-up
    assert Path(service["memory"]["capture"]).stat().st_size > 0
    assert "service memory (memray, the service's whole life" in printed
    assert "build_report_cache (examples/api_service/app.py:" in printed
    markdown = Path(out, "load.md").read_text()
    assert "<details><summary>Service memory: build\\_report\\_cache held the most" in markdown


@needs_load
def test_profile_memory_refuses_a_command_memray_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    code = load_cli.run(
        cli(str(LOCUSTFILE), "--serve", f"uvicorn app:app --port {{port}} {marker}", "--profile", "memory",
            "--profile-dir", str(tmp_path / "p"), "-u", "1", "-t", "1s")
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "its command must be a Python interpreter followed by" in err
    assert processes_running(marker) == []  # never started


@needs_load
def test_a_py_spy_failing_during_the_run_is_a_notice_and_the_figures_are_kept(tmp_path: Path, marker: str) -> None:
    from pytest_perfgate.load.run import ProfileSettings, run_load
    from pytest_perfgate.load.runner import LoadSettings, free_port

    fake = tmp_path / "py-spy"
    fake.write_text('#!/bin/sh\n[ "$1" = dump ] && exit 0\necho "Error: lost the process" >&2\nexit 1\n')
    fake.chmod(0o755)
    port = free_port()
    settings = LoadSettings(locustfile=str(LOCUSTFILE), host=f"http://127.0.0.1:{port}", users=1, run_time=2)
    serve = ServeSettings(serve_command(marker), port=port)
    run = run_load(settings, serve=serve, profile=ProfileSettings("cpu", str(tmp_path / "p"), py_spy=str(fake)))
    assert run.stats.total.requests > 0 and run.service is not None and run.service.cpu is None
    (notice,) = run.service.notices
    assert notice.startswith("no CPU profile: --profile cpu: py-spy cannot sample the service (pid ")
    assert notice.endswith("py-spy said:\n    Error: lost the process")
    total = run.run_result().by_nodeid()
    evidence = next(t for n, t in total.items() if n.endswith("::total")).evidence["service"]
    assert evidence["notices"] == list(run.service.notices) and "cpu" not in evidence
    assert wait_until(lambda: processes_running(marker) == [], 20)


@needs_load
def test_perfgate_killed_leaves_no_service_behind(tmp_path: Path, marker: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_perfgate.cli", "load", str(LOCUSTFILE), "--serve", serve_command(marker),
         "-u", "1", "-t", "60s", "--workdir", str(tmp_path / "work"), "--progress", "never"],
        cwd=EXAMPLE.parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: (tmp_path / "work" / "progress.jsonl").exists(), 60)
        assert processes_running(marker)
        proc.kill()
        proc.wait(timeout=30)
        assert wait_until(lambda: processes_running(marker) == [], 20), processes_running(marker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_memray_missing_in_the_services_python_is_an_install_hint(tmp_path: Path) -> None:
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'memray'\" >&2\nexit 1\n")
    python.chmod(0o755)
    with pytest.raises(LoadError) as caught:
        memory_profile.check_memray(str(python))
    assert f"--profile memory needs memray in {python}, which cannot import it" in str(caught.value)
    assert "hint: pip install 'pytest-perfgate[profile]'" in str(caught.value)
    if importlib.util.find_spec("memray") is not None:
        memory_profile.check_memray(sys.executable)  # this Python has it: no error


@needs_load
def test_a_command_without_port_is_waited_for_on_the_hosts_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    from pytest_perfgate.load.runner import free_port

    port = free_port()
    server = tmp_path / "server.py"
    server.write_text(
        "import http.server, sys, time\n"
        "time.sleep(1.0)  # a slow start: perfgate must wait for the port\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        "from locust import HttpUser, task, constant\n"
        "class U(HttpUser):\n"
        "    wait_time = constant(0.05)\n"
        "    @task\n"
        "    def home(self):\n"
        "        self.client.get('/')\n"
    )
    command = f"{sys.executable} {server} {port} {marker}"
    code = load_cli.run(
        cli(str(locustfile), "--serve", command, "--host", f"http://127.0.0.1:{port}", "-u", "1", "-t", "1s")
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"against http://127.0.0.1:{port}:" in out and "ready after 1." in out
    assert wait_until(lambda: processes_running(marker) == [], 10)
