"""What changed in the stored-baseline gate (``perfgate compare``): a test judged slower on time
whose current run and a stored run both carry a CPU profile gets the diff of the two (the newest
stored run with one), in the terminal, the Markdown and the JSON report, as ``perfgate ab`` gives
it; a slower test without a profile on a side is named in one notice; ``--perfgate-evidence cpu``
gives every timed test a profile in the saved results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_perfgate.cli import main
from pytest_perfgate.evidence import CallNode, CpuProfile, Evidence, FunctionTime
from pytest_perfgate.model import RunResult, Series, TestResult, save_results
from pytest_perfgate.store import open_store
from pytest_perfgate.units import Kind


def _profile(root: str, own: dict[str, float], *, calls: int = 10) -> CpuProfile:
    """A profile of ``calls`` calls: ``handler`` calling each function of ``own`` (seconds in all)."""
    total = sum(own.values())
    children = tuple(CallNode(name, f"{root}/app/{name}.py:3", 0, s, s) for name, s in own.items())
    tree = (CallNode("handler", f"{root}/app/handler.py:1", 0, total, 0.0, children),)
    top = tuple(FunctionTime(name, f"{root}/app/{name}.py:3", 0, s, s) for name, s in own.items())
    return CpuProfile(calls, total, tree, top, profiler="pyinstrument", samples=1000)


#: the older stored run's profile: parse was the slow one then
OLDER = _profile("/builds/old", {"parse": 0.90, "render": 0.30, "log": 0.20})
#: the newest stored profile: render at 30ms a call
STORED = _profile("/builds/base", {"parse": 0.50, "render": 0.30, "log": 0.20})
#: this run: render at 60ms a call
CURRENT = _profile("/builds/mr", {"parse": 0.50, "render": 0.60, "log": 0.20})


def _test(nodeid: str, scale: float, profile: CpuProfile | None = None) -> TestResult:
    values = tuple(0.001 * scale * (1 + i / 50) for i in range(30))
    evidence = Evidence({"cpu_profile": profile}) if profile is not None else Evidence()
    return TestResult(nodeid, series={"time": Series("time", Kind.TIME, values)}, evidence=evidence)


def _stored(tmp_path: Path, *runs: tuple[TestResult, ...]) -> str:
    """A directory store with ``runs`` promoted oldest first (each read back from its summary)."""
    store = tmp_path / "baseline"
    for tests in runs:
        open_store(store).promote(RunResult({"created": "then"}, tests))
    return str(store)


def _compare(tmp_path: Path, store: str, current: tuple[TestResult, ...]) -> tuple[int, str, str, dict[str, Any]]:
    cur = save_results(tmp_path / "current.json", RunResult({"created": "now"}, current))
    md, js = tmp_path / "report.md", tmp_path / "report.json"
    cq = tmp_path / "codequality.json"
    code = main(["compare", store, str(cur), "--markdown", str(md), "--json", str(js), "--codequality", str(cq)])
    return code, cq.read_text(), md.read_text(), json.loads(js.read_text())


def test_compare_names_the_function_whose_own_time_grew(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _stored(
        tmp_path,
        (_test("t::slow", 1.0, OLDER), _test("t::same", 1.0, OLDER)),
        (_test("t::slow", 1.0, STORED), _test("t::same", 1.0, STORED)),
        (_test("t::slow", 1.0), _test("t::same", 1.0)),  # the newest run has no profiles
    )
    current = (_test("t::slow", 3.0, CURRENT), _test("t::same", 1.0, CURRENT))
    code, codequality, markdown, data = _compare(tmp_path, store, current)
    out = capsys.readouterr().out
    assert code == 1
    # the terminal: ab's block, after the table
    assert "t::slow: what changed (pyinstrument; profiled time per call 100ms -> 130ms" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  render ")]
    # against the newest stored run with a profile (render 30ms a call), not the older one
    assert rows == [["render", "30ms", "->", "60ms", "+30ms", "30.0%", "->", "46.2%", "/builds/mr/app/render.py:3"]]
    assert "t::same: what changed" not in out  # unchanged: no diff
    assert "notice: what changed is not shown" not in out
    # the Markdown: the folded evidence block
    assert "<details><summary>Evidence: t::slow</summary>" in markdown
    assert "Own time grew most in render (/builds/mr/app/render.py:3): own time per call 30ms → 60ms" in markdown
    assert "Evidence: t::same" not in markdown
    # the JSON: ab's shape, node id -> diff
    assert list(data["cpu_diffs"]) == ["t::slow"]
    diff = data["cpu_diffs"]["t::slow"]
    assert diff["changes"][0]["function"] == "render"
    assert diff["changes"][0]["base_per_call"] == pytest.approx(0.030)
    assert diff["changes"][0]["current_per_call"] == pytest.approx(0.060)
    assert {c["function"] for c in diff["changes"]} == {"render", "parse", "log"}
    # the Code Quality finding of the regression names it too
    (finding,) = [f for f in json.loads(codequality) if "t::slow" in f["description"]]
    assert "own time grew most in render (/builds/mr/app/render.py:3): +30ms per call" in finding["description"]


def test_a_slower_test_without_a_stored_profile_is_named_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _stored(tmp_path, (_test("t::a", 1.0), _test("t::b", 1.0), _test("t::c", 1.0, STORED)))
    current = (_test("t::a", 3.0, CURRENT), _test("t::b", 3.0), _test("t::c", 3.0, CURRENT))
    code, _, markdown, data = _compare(tmp_path, store, current)
    out = capsys.readouterr().out
    assert code == 1
    expected = (
        "what changed is not shown: no CPU profile in this run for 1 slower test: t::b (run the tests with "
        "pytest --perfgate-evidence cpu, or --perfgate-compare, to profile every timed test; a counted run with "
        "pytest --perfgate-instructions --perfgate-evidence instructions); no profile of the same kind in the "
        "stored runs for 1 slower test: t::a (promote runs made with pytest --perfgate-evidence cpu "
        "--perfgate-save, or counted with pytest --perfgate-instructions --perfgate-evidence instructions: the "
        "default branch's baseline job)"
    )
    assert out.count(f"notice: {expected}") == 1
    assert data["notices"].count(expected) == 1
    assert "t::b (run the tests with" in markdown
    assert list(data["cpu_diffs"]) == ["t::c"]  # the test with both profiles still gets its diff
    assert "t::c: what changed" in out


def test_no_regression_no_diff_and_no_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _stored(tmp_path, (_test("t::a", 1.0),))
    code, _, _, data = _compare(tmp_path, store, (_test("t::a", 1.0),))
    assert code == 0
    assert "cpu_diffs" not in data
    assert "what changed" not in capsys.readouterr().out


def test_a_diff_saved_by_perfgate_ab_is_not_shown_as_the_stored_gate_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_perfgate.profdiff import diff_profiles

    store = _stored(tmp_path, (_test("t::a", 1.0),))
    ab_diff = diff_profiles(OLDER, CURRENT).to_json()
    old = _test("t::a", 3.0)
    old = TestResult(old.nodeid, series=old.series, evidence=Evidence.from_json({"cpu_diff": ab_diff}))
    code, _, markdown, data = _compare(tmp_path, store, (old,))
    assert code == 1
    assert "What changed" not in markdown and "cpu_diffs" not in data
    assert "no CPU profile in this run for 1 slower test: t::a" in capsys.readouterr().out


def test_a_single_results_file_as_the_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = save_results(tmp_path / "base.json", RunResult({"created": "then"}, (_test("t::a", 1.0, STORED),)))
    code, _, _, data = _compare(tmp_path, str(base), (_test("t::a", 3.0, CURRENT),))
    assert code == 1
    assert data["cpu_diffs"]["t::a"]["changes"][0]["function"] == "render"


# --------------------------------------------------------------------------- the runs that carry profiles

pytest_plugins = ["pytester"]

TIMED = """
import os
import zlib

DATA = os.urandom(1 << 18)


def compress_all():
    return [zlib.compress(DATA) for _ in range(4)]


def test_compress(perf):
    perf(compress_all)


def test_sum(perf):
    perf(lambda: sum(range(1000)))


def test_not_timed():
    assert True
"""


def test_evidence_cpu_gives_every_timed_test_a_profile(run_json: Any, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_timed=TIMED)
    result, data = run_json("--perfgate-evidence=cpu")
    result.assert_outcomes(passed=3)
    profiled = {t["nodeid"]: "cpu_profile" in (t.get("evidence") or {}) for t in data["tests"]}
    assert profiled == {"test_timed.py::test_compress": True, "test_timed.py::test_sum": True}
    # without the option and without a failed time budget: none (the gate would name both tests)
    result, data = run_json()
    assert not any("cpu_profile" in (t.get("evidence") or {}) for t in data["tests"])


def _peak_stack(data: dict[str, Any]) -> list[str]:
    test = next(t for t in data["tests"] if t["nodeid"] == "test_timed.py::test_compress")
    return list(test["evidence"]["memory_profile"]["peak_stack"])


def test_memory_native_adds_native_frames(run_json: Any, pytester: pytest.Pytester) -> None:
    pytest.importorskip("memray")
    pytester.makepyfile(test_timed=TIMED)
    result, data = run_json("--perfgate-evidence=memory-native", "-k", "compress")
    result.assert_outcomes(passed=1, deselected=2)
    native = _peak_stack(data)
    assert any(frame.startswith("test_timed.compress_all ") for frame in native)  # the Python frames stay
    assert any(frame.startswith("zlib_compress") for frame in native), native  # zlib's C function
    result, data = run_json("--perfgate-evidence=memory", "-k", "compress")
    python_only = _peak_stack(data)
    assert any(frame.startswith("test_timed.compress_all ") for frame in python_only)
    assert not any(frame.startswith("zlib_compress") for frame in python_only), python_only


def test_memory_native_is_an_evidence_kind_all_leaves_out() -> None:
    from pytest_perfgate.budgets import parse_evidence

    assert parse_evidence("memory-native", "x") == ("memory-native",)
    assert parse_evidence("all", "x") == ("memory", "cpu")
    assert parse_evidence(["cpu", "memory-native"], "x") == ("cpu", "memory-native")


def test_a_stored_run_file_that_cannot_be_read_for_its_profile_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    store = _stored(tmp_path, (_test("t::a", 1.0, STORED),))
    run_file = Path(store, "run-000001.json")
    run_file.write_text("x" * run_file.stat().st_size)  # its size unchanged: the summary still serves the gate
    summary = Path(store, "run-000001.summary.json")
    os.utime(summary, (run_file.stat().st_mtime + 1,) * 2)
    code, _, _, data = _compare(tmp_path, store, (_test("t::a", 3.0, CURRENT),))
    assert code == 1  # the verdict does not depend on the profiles
    (notice,) = [n for n in data["notices"] if n.startswith("what changed is not shown")]
    assert "no profile of the same kind in the stored runs for 1 slower test: t::a" in notice
    assert f"stored runs not read for their profiles: {run_file}: " in notice
    assert "cpu_diffs" not in data


def test_the_html_report_with_a_baseline_shows_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _stored(tmp_path, (_test("t::a", 1.0, STORED),))
    current = save_results(tmp_path / "current.json", RunResult({"created": "now"}, (_test("t::a", 3.0, CURRENT),)))
    html = tmp_path / "report.html"
    assert main(["report", str(current), "--html", str(html), "--baseline", store]) == 0
    page = html.read_text()
    assert "What changed: own time per call, base and current (pyinstrument)" in page
    assert "<td>render</td>" in page


SLOWED_SESSION = """
def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_work(perf):
    perf(work, LOOPS)
"""


def test_the_gate_inside_pytest_names_the_function_that_got_slower(pytester: pytest.Pytester) -> None:
    """``--perfgate-compare``: the session's gate, in the terminal and the saved results, with what
    changed against the stored run's profile (``--perfgate-evidence cpu`` in the baseline job)."""
    pytester.makepyfile(test_work=SLOWED_SESSION.replace("LOOPS", "200"))
    quiet = ("-p", "no:cacheprovider", "-p", "no:randomly", "--perfgate-max-time=0.2s")
    pytester.runpytest_subprocess(*quiet, "--perfgate-evidence=cpu", "--perfgate-save=base.json").assert_outcomes(
        passed=1
    )
    pytester.makepyfile(test_work=SLOWED_SESSION.replace("LOOPS", "2000"))
    result = pytester.runpytest_subprocess(*quiet, "--perfgate-compare=base.json", "--perfgate-save=current.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*test_work.py::test_work*time*REGRESSION*", "test_work.py::test_work: what changed (pyinstrument*"]
    )
    row = next(line for line in result.stdout.lines if line.strip().startswith("work "))
    assert "test_work.py:" in row, row
    saved = json.loads((pytester.path / "current.json").read_text())
    assert saved["tests"][0]["evidence"]["cpu_diff"]["changes"][0]["function"] == "work"
