"""Memory evidence on constructed programs with known answers: memray's capture read into
perfgate's profile (high-water mark, leak candidates, memory over time), the tracemalloc fallback
(never counting its own bookkeeping), and results files with and without the new keys."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_perfgate import model
from pytest_perfgate.evidence import Evidence, MemoryProfile, MemoryTimeline
from pytest_perfgate.measure.memprofile import profile_memory
from pytest_perfgate.measure.memray_profile import memray_available, read_capture

needs_memray = pytest.mark.skipif(
    not memray_available(), reason="memray is not installed (pip install 'pytest-perfgate[profile]'; Linux/macOS)"
)

MB = 1024 * 1024
KEEP: list[object] = []


def _own(profile: MemoryProfile, name: str) -> int:
    return sum(f.self_net for f in profile.functions if f.function.rsplit(".", 1)[-1] == name)


def _function(profile: MemoryProfile, name: str):  # type: ignore[no-untyped-def]
    (found,) = [f for f in profile.functions if f.function.rsplit(".", 1)[-1] == name]
    return found


# --------------------------------------------------------------------------- constructed programs


def holds_eight_mb() -> int:
    buffer = bytearray(8 * MB)
    return nothing_allocated(len(buffer))


def nothing_allocated(n: int) -> bool:
    return n > 0  # True and False are never allocated


def program() -> int:
    return holds_eight_mb()


def noop() -> None:
    pass


def calls_noop() -> None:
    for _ in range(20_000):
        noop()


def keeps_one() -> None:
    KEEP.append(bytearray(3 * MB))


def leaks() -> None:
    keeps_one()


def grows() -> int:
    out = []
    for _ in range(15):
        out.append(bytearray(MB))
        time.sleep(0.012)  # memray samples every few ms: several samples while it grows
    return len(out)


@pytest.fixture(autouse=True)
def _clear_keep():  # type: ignore[no-untyped-def]
    yield
    KEEP.clear()


# --------------------------------------------------------------------------- memray


@needs_memray
def test_memray_own_bytes_of_a_known_allocation_are_exact_within_one_percent() -> None:
    profile = profile_memory(program, tracer="memray")
    assert profile.tracer == "memray"
    own = _own(profile, "holds_eight_mb")
    assert abs(own - 8 * MB) <= 0.01 * 8 * MB, own
    assert _function(profile, "holds_eight_mb").inclusive_peak >= own
    assert _function(profile, "program").inclusive_peak >= 8 * MB
    assert _own(profile, "program") < 1024  # the interpreter's own few hundred bytes for a call, not 8 MB
    assert _own(profile, "nothing_allocated") == 0  # it ran during the peak but allocates nothing
    assert 8 * MB <= profile.peak < 8.5 * MB
    assert [frame.split(" (")[0].rsplit(".", 1)[-1] for frame in profile.peak_stack] == ["program", "holds_eight_mb"]
    assert "buffer = bytearray(8 * MB)" in profile.peak_sites[0].stack[-1]
    assert profile.peak_sites[0].stack[-1].endswith("in holds_eight_mb: buffer = bytearray(8 * MB)")


@needs_memray
def test_memray_leak_candidate_is_the_object_kept_after_the_call_at_its_function() -> None:
    profile = profile_memory(leaks, tracer="memray")
    top = profile.leaks[0]
    assert abs(top.size - 3 * MB) <= 0.01 * 3 * MB
    assert top.stack[-1].endswith("in keeps_one: KEEP.append(bytearray(3 * MB))")
    assert profile.retained >= 3 * MB
    assert profile.timeline is not None
    # the timeline's last column is what was allocated when tracking stopped: the kept buffer
    row = profile.timeline.held[[f.split(" (")[0] for f in profile.timeline.functions].index(f"{__name__}.keeps_one")]
    assert row[-1] >= 3 * MB


@needs_memray
def test_memray_timeline_shows_a_growing_list_growing() -> None:
    profile = profile_memory(grows, tracer="memray")
    timeline = profile.timeline
    assert timeline is not None and timeline.tracer == "memray"
    labels = [f.split(" (")[0].rsplit(".", 1)[-1] for f in timeline.functions]
    assert labels[0] == "grows"
    row = timeline.held[0]
    assert len(row) == len(timeline.times) <= 60
    assert list(timeline.times) == sorted(timeline.times)
    growing = [v // MB for v in row if v > 0]  # in whole MB: the list object itself changes too
    assert len(set(growing)) >= 4, row  # several distinct levels, never going down while it grows
    up_to_top = growing[: growing.index(max(growing)) + 1]
    assert up_to_top == sorted(up_to_top)
    assert max(row) >= 14 * MB
    assert row[-1] == 0  # freed when grows returned


@needs_memray
def test_timeline_keeps_at_most_the_asked_number_of_times_and_functions(tmp_path: Path) -> None:
    import memray

    capture = tmp_path / "c.bin"
    with memray.Tracker(capture, memory_interval_ms=1):
        grows()
    profile = read_capture(capture, times=8, timeline_functions=1)
    assert profile.timeline is not None
    assert len(profile.timeline.times) == 8 and len(profile.timeline.functions) == 1
    # the kept slices are each group's highest: the growth is still there
    assert max(profile.timeline.held[0]) >= 14 * MB


@needs_memray
def test_read_capture_of_a_whole_process_run_by_memray_run_with_threads(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading, time
            KEEP = []

            def hog():
                block = bytearray(8 * 1024 * 1024)
                time.sleep(0.05)
                return len(block)

            def worker():
                KEEP.append(bytearray(2_000_000))

            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            hog()
            """
        )
    )
    capture = tmp_path / "out.bin"
    subprocess.run(
        [sys.executable, "-m", "memray", "run", "-q", "-o", str(capture), str(script)],
        check=True,
        cwd=tmp_path,
        timeout=120,
        capture_output=True,
    )
    profile = read_capture(capture)
    assert profile.tracer == "memray"
    hog = _function(profile, "hog")
    assert abs(hog.self_net - 8 * MB) <= 0.01 * 8 * MB and hog.location == f"{script}:5"
    assert profile.peak_stack[-1] == f"hog ({script}:5)"
    leak = profile.leaks[0]  # allocated in another thread, still held at exit
    assert leak.size >= 2_000_000 and leak.stack[-1].endswith("in worker: KEEP.append(bytearray(2_000_000))")
    assert not any("memray" in frame for site in profile.peak_sites for frame in site.stack)
    assert profile.timeline is not None and profile.timeline.functions[0] == f"hog ({script}:5)"


def _decorated(fn):  # type: ignore[no-untyped-def]
    return fn


class Builder:
    @_decorated
    def build(self) -> list[str]:
        lines: list[str] = []
        lines.extend(f"{i:>500}" for i in range(2000))  # a generator produces, build keeps
        return [line for line in lines if line]  # a comprehension (its own frame on 3.11)


@needs_memray
def test_memray_names_functions_as_python_does_so_both_tracers_agree() -> None:
    by_memray = {f.function: f.location for f in profile_memory(Builder().build, tracer="memray").functions}
    by_hook = {f.function: f.location for f in profile_memory(Builder().build, tracer="tracemalloc").functions}
    prefix = f"{__name__}.Builder.build"
    assert by_memray[prefix] == by_hook[prefix]
    assert (
        by_memray[f"{prefix}.<locals>.<genexpr>"].rsplit(":", 1)[1]
        == by_hook[f"{prefix}.<locals>.<genexpr>"].rsplit(":", 1)[1]
    )


@needs_memray
def test_memray_native_frames_on_request() -> None:
    profile = profile_memory(holds_eight_mb, tracer="memray", native=True)
    stack = profile.peak_sites[0].stack
    python = [i for i, frame in enumerate(stack) if "in holds_eight_mb: buffer = bytearray(8 * MB)" in frame]
    assert python and python[0] < len(stack) - 1  # native frames below the Python line that allocated
    assert not any(frame.endswith(".py") for frame in stack[python[0] + 1 :])


@needs_memray
def test_a_capture_of_a_process_killed_with_sigkill_is_still_read(tmp_path: Path) -> None:
    """A service stopped at the end of a load test may not get to close its capture."""
    script = tmp_path / "serve.py"
    script.write_text(
        "import time\nKEEP = []\n\ndef serve():\n    while True:\n"
        "        KEEP.append(bytearray(100_000))\n        time.sleep(0.01)\n\nserve()\n"
    )
    capture = tmp_path / "out.bin"
    process = subprocess.Popen([sys.executable, "-m", "memray", "run", "-q", "-o", str(capture), str(script)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not capture.exists() or capture.stat().st_size < 2000):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        process.kill()
        process.wait(timeout=30)
    profile = read_capture(capture)
    serve = _function(profile, "serve")
    assert serve.self_net >= 500_000 and serve.location == f"{script}:4"
    assert profile.leaks[0].stack[-1].endswith("in serve: KEEP.append(bytearray(100_000))")


@needs_memray
def test_an_aggregated_capture_has_no_timeline_but_the_rest(tmp_path: Path) -> None:
    import memray

    capture = tmp_path / "agg.bin"
    with memray.Tracker(capture, file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS):
        keeps_one()
    profile = read_capture(capture)
    assert profile.timeline is None
    assert abs(_own(profile, "keeps_one") - 3 * MB) <= 0.01 * 3 * MB
    assert profile.leaks[0].stack[-1].endswith("in keeps_one: KEEP.append(bytearray(3 * MB))")


# --------------------------------------------------------------------------- tracemalloc fallback


def test_tracemalloc_fallback_does_not_count_its_own_bookkeeping() -> None:
    profile = profile_memory(calls_noop, tracer="tracemalloc")
    assert profile.tracer == "tracemalloc" and profile.timeline is None
    assert _function(profile, "noop").calls == 20_000
    # before: +1.28 MB for noop and -1.28 MB for its caller (the profiler's frames, 64 B a call)
    assert abs(_own(profile, "noop")) < 4096
    assert abs(_own(profile, "calls_noop")) < 4096
    assert _function(profile, "calls_noop").inclusive_peak < 64 * 1024


def test_tracemalloc_fallback_own_bytes_of_a_known_allocation() -> None:
    profile = profile_memory(program, tracer="tracemalloc")
    holds = _function(profile, "holds_eight_mb")
    assert abs(holds.inclusive_peak - 8 * MB) <= 0.01 * 8 * MB
    # its local is freed after its return event, so the profile hook sees it kept (net +8 MB)
    # and its caller free it: what "self (net)" means under the hook (docs/evidence.md)
    assert abs(holds.self_net - 8 * MB) <= 0.01 * 8 * MB
    assert abs(_own(profile, "program") + 8 * MB) <= 0.01 * 8 * MB
    assert _function(profile, "nothing_allocated").self_net == 0
    assert abs(_function(profile, "nothing_allocated").inclusive_peak) < 4096


def test_tracemalloc_fallback_leak_candidate() -> None:
    profile = profile_memory(leaks, tracer="tracemalloc")
    assert abs(_own(profile, "keeps_one") - 3 * MB) <= 0.01 * 3 * MB
    assert profile.leaks[0].stack[-1].endswith("KEEP.append(bytearray(3 * MB))")


def test_without_memray_the_tracemalloc_profiler_runs_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_perfgate.measure import memprofile

    monkeypatch.setattr(memprofile, "memray_available", lambda: False)
    profile = profile_memory(program)
    assert profile.tracer == "tracemalloc"
    assert profile.to_json()["tracer"] == "tracemalloc"


@needs_memray
def test_inside_another_memray_tracker_auto_falls_back_and_memray_by_name_is_refused(tmp_path: Path) -> None:
    import memray

    from pytest_perfgate.errors import MeasurementError

    with memray.Tracker(tmp_path / "outer.bin"):
        assert profile_memory(program).tracer == "tracemalloc"
        with pytest.raises(MeasurementError, match="memray cannot profile this call"):
            profile_memory(program, tracer="memray")


def test_memray_absent_is_an_error_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from pytest_perfgate.errors import MeasurementError
    from pytest_perfgate.measure import memray_profile

    real_import = builtins.__import__

    def no_memray(name: str, *args: object, **kwargs: object) -> object:
        if name == "memray" or name.startswith("memray."):
            raise ImportError("No module named 'memray'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "memray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_memray)
    monkeypatch.setattr(memray_profile.importlib, "import_module", lambda name: no_memray(name))
    assert not memray_available()
    with pytest.raises(MeasurementError, match=r"pip install 'pytest-perfgate\[profile\]'"):
        read_capture("/nonexistent/capture.bin")
    with pytest.raises(MeasurementError, match="need memray"):
        profile_memory(noop, tracer="memray")


def test_unknown_tracer_is_refused() -> None:
    from pytest_perfgate.errors import MeasurementError

    with pytest.raises(MeasurementError, match="tracer 'valgrind'"):
        profile_memory(noop, tracer="valgrind")


# --------------------------------------------------------------------------- results files


OLD = {
    "peak": 100,
    "functions": [{"function": "m.f", "location": "a.py:1", "calls": 1, "inclusive_peak": 100, "self_net": 100}],
    "peak_stack": ["m.f (a.py:1)"],
    "peak_sites": [],
    "retained": 0,
    "leaks": [],
    "tree": {},
}


def _run_with(memory_profile: dict[str, object]) -> dict[str, object]:
    return {
        "schema": model.SCHEMA,
        "schema_version": model.SCHEMA_VERSION,
        "tests": [{"nodeid": "t.py::t", "evidence": {"memory_profile": memory_profile}}],
    }


def _read(memory_profile: dict[str, object]) -> MemoryProfile:
    run = model.run_from_dict(json.loads(json.dumps(_run_with(memory_profile))), "r.json")
    profile = run.tests[0].evidence.memory_profile
    assert profile is not None
    return profile


def test_an_old_file_without_tracer_or_timeline_loads_as_tracemalloc() -> None:
    profile = _read(OLD)
    assert profile.tracer == "tracemalloc" and profile.timeline is None
    assert profile.to_json()["tracer"] == "tracemalloc" and "timeline" not in profile.to_json()


def test_timeline_round_trips_and_a_ragged_one_is_read_whole() -> None:
    timeline = MemoryTimeline(times=(0.0, 0.5), functions=("f (a.py:1)",), held=((1, 2),), tracer="memray")
    profile = _read({**OLD, "tracer": "memray", "timeline": timeline.to_json()})
    assert profile.tracer == "memray" and profile.timeline == timeline
    assert Evidence.from_json({"memory_profile": profile.to_json()}).memory_profile == profile
    ragged = MemoryTimeline.from_json({"times": [0, 1, 2], "functions": ["f", "g"], "held": [[5]]})
    assert ragged.held == ((5, 0, 0),) and ragged.functions == ("f",)


def test_a_timeline_of_the_wrong_shape_is_refused_where_it_is() -> None:
    from pytest_perfgate.errors import ResultsFileError

    bad = {**OLD, "timeline": {"times": [0], "functions": ["f"], "held": [["x"]]}}
    with pytest.raises(ResultsFileError, match=r"memory_profile\.timeline\.held\[0\]\[0\]"):
        _read(bad)


@needs_memray
def test_a_memray_profile_in_the_results_file_is_bounded(tmp_path: Path) -> None:
    profile = profile_memory(grows, tracer="memray")
    data = profile.to_json()
    assert len(data["timeline"]["times"]) <= 60 and len(data["timeline"]["functions"]) <= 20
    assert len(json.dumps(data)) < 60_000
    assert _read(json.loads(json.dumps(data))).timeline == profile.timeline


# --------------------------------------------------------------------------- the failure text


@needs_memray
def test_failure_text_names_the_tracer_and_shows_own_bytes_and_the_timeline() -> None:
    from pytest_perfgate.reports.evidence_text import format_memory_profile

    text = format_memory_profile(profile_memory(grows, tracer="memray"))
    lines = text.splitlines()
    assert lines[1].startswith("  (memray: bytes held at the high-water mark")
    assert lines[2].split() == ["function", "inclusive", "peak", "own", "where"]
    assert "memory over time by function (own bytes; the last column: when tracking stopped):" in lines
    row = lines[lines.index("memory over time by function (own bytes; the last column: when tracking stopped):") + 3]
    cells = row.split()
    assert cells[0] == f"{__name__}.grows" and cells[1] == "0B" and cells[-1] == "0B"  # nothing, then freed
    assert cells[-2].endswith("MB")  # the column of the fullest time is always shown


def test_failure_text_of_the_tracemalloc_profiler_says_so_and_how_to_get_memray() -> None:
    from pytest_perfgate.reports.evidence_text import format_memory_profile

    text = format_memory_profile(profile_memory(program, tracer="tracemalloc"))
    assert "tracemalloc profiler: Python allocations of this thread" in text
    assert "pip install 'pytest-perfgate[profile]'" in text
    assert text.splitlines()[2].split() == ["function", "inclusive", "peak", "self", "(net)", "calls", "where"]
    assert "memory over time" not in text
