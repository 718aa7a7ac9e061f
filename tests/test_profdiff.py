"""diff_profiles on constructed profiles: the function whose own time grew is named first, with
its own time per call and share on both sides; functions are matched across checkouts; the diff
round-trips through JSON; the text says which profilers made it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pytest_perfgate.evidence import CallNode, CpuProfile, FunctionTime
from pytest_perfgate.profdiff import FunctionChange, ProfileDiff, diff_profiles, function_key, relative_to
from pytest_perfgate.reports.evidence_text import format_profile_diff


def _profile(root: str, own: dict[str, float], *, calls: int = 10, profiler: str = "pyinstrument") -> CpuProfile:
    """A profile of ``calls`` calls: ``handler`` calling each function of ``own`` (seconds in all)."""
    total = sum(own.values())
    children = tuple(
        CallNode(name, f"{root}/app/{name}.py:3", 0, seconds, seconds)
        for name, seconds in sorted(own.items(), key=lambda kv: -kv[1])
    )
    tree = (CallNode("handler", f"{root}/app/handler.py:1", 0, total, 0.0, children),)
    top = tuple(FunctionTime(name, f"{root}/app/{name}.py:{7 + len(root)}", 0, s, s) for name, s in own.items())
    return CpuProfile(calls, total, tree, top, profiler=profiler, samples=1000 if profiler == "pyinstrument" else 0)


BASE = _profile("/tmp/perfgate-ab-x/base", {"parse": 0.50, "render": 0.30, "log": 0.20})
# render got 0.1s slower over 10 calls (10ms per call); parse lost a little
CURRENT = _profile("/repo", {"parse": 0.48, "render": 0.40, "log": 0.20, "validate": 0.02})


def test_the_function_that_grew_most_comes_first() -> None:
    diff = diff_profiles(BASE, CURRENT)
    assert [c.function for c in diff.changes] == ["render", "parse", "validate", "log"]
    render = diff.changes[0]
    assert diff.top == render
    assert render.base_per_call == pytest.approx(0.030) and render.current_per_call == pytest.approx(0.040)
    assert render.per_call_change == pytest.approx(0.010)
    assert render.base_share == pytest.approx(0.30) and render.current_share == pytest.approx(0.40 / 1.10)
    assert render.location.startswith("/repo/")  # the current side's place
    validate = next(c for c in diff.changes if c.function == "validate")
    assert validate.base_per_call is None and validate.base_share is None  # not run on the base side
    assert validate.per_call_change == pytest.approx(0.002)
    assert diff.base_per_call == pytest.approx(0.1) and diff.current_per_call == pytest.approx(0.11)


def test_a_function_cut_off_a_full_table_is_not_ranked_as_if_it_had_never_run() -> None:
    from pytest_perfgate.evidence import TOP_FUNCTIONS

    # both sides list TOP_FUNCTIONS functions of 0.10s or more; 'encode' (0.095s on the base side,
    # below the cut) is listed only on the current side, at 0.105s: it grew by at most 1ms per call
    common = {f"f{i:02d}": 0.10 + i / 1000 for i in range(TOP_FUNCTIONS - 2)}
    base = _profile("/b", {**common, "render": 0.30, "other": 0.10})
    current = _profile("/c", {**common, "render": 0.40, "encode": 0.105})
    assert len(base.top) == len(current.top) == TOP_FUNCTIONS
    diff = diff_profiles(base, current)
    # render grew 10ms per call; encode is ranked against the base table's last row (0.10s): +0.5ms
    assert diff.changes[0].function == "render"
    encode = next(c for c in diff.changes if c.function == "encode")
    assert encode.base_per_call is None  # shown as '-': not in the base side's table
    # a table with room left (fewer rows than kept) did list every function: absent means 0
    small = diff_profiles(BASE, CURRENT)
    assert next(c for c in small.changes if c.function == "validate").per_call_change == pytest.approx(0.002)


def test_each_side_s_hot_path() -> None:
    diff = diff_profiles(BASE, CURRENT)
    assert [(s.function, round(s.share, 2)) for s in diff.base_hot_path] == [("handler", 1.0), ("parse", 0.5)]
    assert [s.function for s in diff.current_hot_path] == ["handler", "parse"]


def test_a_function_gone_from_the_current_side() -> None:
    current = _profile("/repo", {"parse": 0.50, "render": 0.30})
    diff = diff_profiles(BASE, current)
    log = next(c for c in diff.changes if c.function == "log")
    assert log.current_per_call is None and log.per_call_change == pytest.approx(-0.02)
    assert diff.changes[0].function == "log" and diff.top is None  # nothing grew


def test_per_call_time_is_per_measured_call() -> None:
    """The base profiled 10 calls, the current 20: the same own time per call is no change."""
    current = _profile("/repo", {"parse": 1.0, "render": 0.6, "log": 0.4}, calls=20)
    diff = diff_profiles(BASE, current)
    assert all(c.per_call_change == pytest.approx(0.0) for c in diff.changes)
    assert all(c.share_change == pytest.approx(0.0) for c in diff.changes)
    assert diff.top is None


def test_functions_are_matched_by_name_and_the_end_of_their_path() -> None:
    assert function_key("f", "/tmp/perfgate-ab-1/base/src/pkg/mod.py:12") == function_key(
        "f", "/repo/src/pkg/mod.py:14"
    )
    assert function_key("f", "/repo/a/mod.py:1") != function_key("f", "/repo/b/mod.py:1")
    assert function_key("sorted", "built-in") == ("sorted", "built-in")


def test_places_under_a_side_s_checkout_are_made_relative_to_it() -> None:
    relative = relative_to(BASE, "/tmp/perfgate-ab-x/base/")
    assert {row.location for row in relative.top} == {"app/parse.py:30", "app/render.py:30", "app/log.py:30"}
    assert relative.tree[0].location == "app/handler.py:1"
    assert relative.tree[0].children[0].location == "app/parse.py:3"
    assert relative_to(BASE, "/elsewhere") == BASE


def test_a_diff_round_trips_through_json() -> None:
    diff = diff_profiles(BASE, CURRENT, limit=3)
    assert len(diff.changes) == 3
    again = ProfileDiff.from_json(json.loads(json.dumps(diff.to_json())))
    assert again == diff
    assert FunctionChange.from_json(diff.changes[0].to_json()) == diff.changes[0]


def test_the_text_names_the_profilers_and_the_change() -> None:
    text = format_profile_diff(diff_profiles(BASE, CURRENT))
    lines = text.splitlines()
    assert lines[0].startswith("what changed (pyinstrument; profiled time per call 100ms -> 110ms")
    cpu = replace(BASE, clock="cpu")
    assert format_profile_diff(diff_profiles(cpu, replace(CURRENT, clock="cpu"))).startswith(
        "what changed (pyinstrument; profiled CPU time per call"
    )
    assert diff_profiles(cpu, CURRENT).clock == "mixed"
    assert "note:" not in text
    row = next(line for line in lines if line.strip().startswith("render"))
    assert "30ms -> 40ms" in row and "+10ms" in row and "30.0% -> 36.4%" in row
    assert "hot path, base:    handler 100% -> parse 50%" in text
    fallback = format_profile_diff(diff_profiles(BASE, _profile("/repo", {"render": 1.0}, profiler="cProfile")))
    assert fallback.startswith("what changed (base pyinstrument, current cProfile;")
    assert "note: cProfile's call tree merges callers" in fallback


# --------------------------------------------------------------------------- in perfgate ab's reports


def _paired(nodeid: str, ratio: float, blocks: int = 20) -> Any:
    import math

    from pytest_perfgate.ab.schedule import PairedTest

    ratios = tuple(math.log(ratio) + (0.01 if i % 2 else -0.01) * (i % 5) / 5 for i in range(blocks))
    return PairedTest(nodeid, loops=1, base=(1e-3,) * blocks, current=(1e-3 * ratio,) * blocks, log_ratios=ratios)


def test_the_markdown_note_shows_what_changed_for_a_regression_and_a_warning() -> None:
    from pytest_perfgate.ab.judge import compare_paired
    from pytest_perfgate.cli.ab import with_diffs
    from pytest_perfgate.config import GateSettings
    from pytest_perfgate.model import RunResult, TestResult
    from pytest_perfgate.reports.markdown import format_markdown

    settings = GateSettings(max_regression=0.10, warn_regression=0.05)
    report = compare_paired([_paired("t::slow", 1.25), _paired("t::warn", 1.07), _paired("t::same", 1.0)], settings)
    verdicts = {c.nodeid: c.verdict.value for c in report.comparisons}
    assert verdicts == {"t::slow": "regression", "t::warn": "warning", "t::same": "unchanged"}
    current = RunResult({}, tuple(TestResult(n) for n in ("t::slow", "t::warn", "t::same")))
    diff = diff_profiles(BASE, CURRENT)
    current = with_diffs(current, {"t::slow": diff, "t::warn": diff})
    assert current is not None
    text = format_markdown(report, current=current)
    for nodeid in ("t::slow", "t::warn"):
        assert f"<details><summary>Evidence: {nodeid}</summary>" in text
    assert "Evidence: t::same" not in text
    assert text.count("Own time grew most in render (/repo/app/render.py:12): own time per call 30ms → 40ms") == 2
    assert "| render | 30ms → 40ms | +10ms | 30.0% → 36.4% | /repo/app/render.py:12 |" in text
    assert "Hot path, base: handler 100% → parse 50%" in text
    # a diff that cannot be read is left out, never an error
    broken = RunResult({}, (TestResult("t::slow", evidence={"cpu_diff": {"changes": "?"}}),))
    assert "Evidence" not in format_markdown(report, current=broken)


def _counted(own: dict[str, int]) -> CpuProfile:
    top = tuple(FunctionTime(name, f"app/{name}.py:3", 1, float(n), float(n)) for name, n in own.items())
    return CpuProfile(1, float(sum(own.values())), (), top, profiler="callgrind", clock="instructions")


def test_counted_profiles_are_said_in_instructions_in_every_report() -> None:
    from pytest_perfgate.evidence import Evidence
    from pytest_perfgate.reports.codequality import _changed_function
    from pytest_perfgate.reports.markdown import _diff_lines

    diff = diff_profiles(_counted({"parse": 50_000, "render": 30_000}), _counted({"parse": 50_000, "render": 45_000}))
    assert diff.clock == "instructions" and diff.changes[0].function == "render"
    text = format_profile_diff(diff)
    assert text.splitlines()[0] == (
        "what changed (callgrind; counted instructions per call 80k instr -> 95k instr, exact: a function "
        "that did not change counts the same):"
    )
    row = next(line for line in text.splitlines() if line.strip().startswith("render"))
    assert "30k instr -> 45k instr" in row and "+15k instr" in row
    assert "hot path" not in text  # counted profiles have no call tree: no empty "(no samples)" lines
    assert "own instructions per call" in text.splitlines()[1]
    markdown = "\n".join(_diff_lines(diff, 5))
    assert "| Function | Own instructions per call | Change | Own share | Where |" in markdown
    evidence = Evidence.from_json({"cpu_diff": diff.to_json()})
    assert _changed_function(evidence) == "own instructions grew most in render (app/render.py:3): +15k instr per call"
