"""``perfgate ab`` profiles a test judged slower on both sides, after its rounds, and names the
function whose own time grew (a project whose ``checksum`` is made twice as slow, inside a
handler that spends its time in three functions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.ab import HANDLER, ab_against_main, make_repository, no_worktrees_left
from harness.counts import needs_functions

pytest.importorskip("pyinstrument")

TESTS = """\
import shop


def test_handle(perf):
    assert perf(shop.handle)


def test_parse(perf):
    assert perf(shop.parse)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repository(
        tmp_path / "project",
        {
            "src/shop/__init__.py": HANDLER.format(loops="n"),
            "tests/test_shop.py": TESTS,
            "pytest.ini": "[pytest]\nperfgate_max_time = 0.1s\nperfgate_warmup = 0.01s\n",
        },
    )
    (repo / "src" / "shop" / "__init__.py").write_text(HANDLER.format(loops="n * 2"))  # the slowdown
    return repo


def test_sampled_profiles_show_the_slowed_function_grow_most_in_its_share(repo: Path, tmp_path: Path) -> None:
    report, markdown = tmp_path / "ab.json", tmp_path / "ab.md"
    done = ab_against_main(
        repo,
        report,
        "--markdown",
        str(markdown),
        "--save-current",
        str(tmp_path / "current.json"),
        "--profile-time",
        "0.3s",
        "--profiler",
        "cpu",
        pinned=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text())
    verdicts = {c["nodeid"]: c["verdict"] for c in data["comparisons"]}
    assert verdicts["tests/test_shop.py::test_handle"] == "regression"
    # only the tests judged slower are profiled: test_handle, and test_parse too when a loaded machine
    # made its unchanged timing a warning
    slower = [
        c["nodeid"] for c in data["comparisons"] if c["metric"] == "time" and c["verdict"] in ("regression", "warning")
    ]
    assert (
        f"perfgate ab: {len(slower)} test(s) judged slower: profiled on each side (0.3s of CPU time per timed call"
        in done.stderr
    )
    assert sorted(data["cpu_diffs"]) == sorted(slower) and "tests/test_shop.py::test_handle" in slower
    diff = data["cpu_diffs"]["tests/test_shop.py::test_handle"]
    assert diff["base_profiler"] == diff["current_profiler"] == "pyinstrument"
    # sampled, and the two sides profiled one after the other: how much faster or slower the machine
    # was meanwhile moves every row's own time per call (bench/RESULTS-evidence-public.md), so the
    # ranking by seconds is not asserted here (the counted profiles' test below asserts it). What holds
    # under that drift: checksum's own time grew with its loop, and its share of the call grew most
    rows = {c["function"]: c for c in diff["changes"]}
    checksum = rows["checksum"]
    assert checksum["location"] == "src/shop/__init__.py:5"  # relative to each side's tree
    assert checksum["current_per_call"] > 1.5 * checksum["base_per_call"], checksum

    def share_growth(c: dict[str, float]) -> float:
        return (c.get("current_share") or 0.0) - (c.get("base_share") or 0.0)

    assert max(diff["changes"], key=share_growth)["function"] == "checksum", diff["changes"]
    assert [step["function"] for step in diff["current_hot_path"]][:2] == ["handle", "checksum"]
    assert diff["base_hot_path"][0]["function"] == "handle"
    # the terminal: the gate's report, then what changed
    text = done.stdout
    assert "tests/test_shop.py::test_handle: what changed (pyinstrument; profiled CPU time per call " in text
    table = [line.split() for line in text.splitlines() if line.startswith("  ") and "->" in line]
    assert "checksum" in [row[0] for row in table], text
    assert "hot path, current: handle " in text
    # the merge-request note
    note = markdown.read_text()
    assert "<details><summary>Evidence: tests/test\\_shop.py::test\\_handle</summary>" in note
    assert "Own time grew most in " in note and "What changed (pyinstrument; profiled CPU time per call " in note
    assert "| checksum | " in note
    # the current side's results keep the diff as evidence
    saved = json.loads((tmp_path / "current.json").read_text())
    handle = next(t for t in saved["tests"] if t["nodeid"] == "tests/test_shop.py::test_handle")
    assert "checksum" in [c["function"] for c in handle["evidence"]["cpu_diff"]["changes"]]
    no_worktrees_left(repo)


def test_no_profiles_with_profile_time_zero(repo: Path, tmp_path: Path) -> None:
    report = tmp_path / "ab.json"
    done = ab_against_main(repo, report, "--profile-time", "0", "--confirm-pairs", "0", pinned=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "profiled on each side" not in done.stderr and "what changed" not in done.stdout
    assert "cpu_diffs" not in json.loads(report.read_text())


@needs_functions
def test_counted_profiles_name_the_slowed_function_and_nothing_else_moves(repo: Path, tmp_path: Path) -> None:
    report, markdown = tmp_path / "ab.json", tmp_path / "ab.md"
    done = ab_against_main(repo, report, "--markdown", str(markdown), "--profiler", "instructions", pinned=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "profiled on each side (one call counted by Python function under callgrind, after the rounds)" in (
        done.stderr
    )
    data = json.loads(report.read_text())
    diff = data["cpu_diffs"]["tests/test_shop.py::test_handle"]
    assert diff["base_profiler"] == diff["current_profiler"] == "callgrind" and diff["clock"] == "instructions"
    top, *others = diff["changes"]
    assert top["function"] == "checksum" and top["location"] == "src/shop/__init__.py:5"
    assert 1.8 < top["current_per_call"] / top["base_per_call"] < 2.2  # its loop runs twice as often
    # counted: what the change did not touch counts (nearly) the same on both sides
    for row in others:
        assert abs(row["current_per_call"] - row["base_per_call"]) < top["base_per_call"] / 100, row
    text = done.stdout
    assert "tests/test_shop.py::test_handle: what changed (callgrind; counted instructions per call " in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  ") and "->" in line]
    assert rows[0][0] == "checksum", text
    note = markdown.read_text()
    assert "Own instructions grew most in checksum (" in note, note
    no_worktrees_left(repo)


def test_profiler_instructions_without_valgrind_is_refused_before_the_rounds(repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # git, and no valgrind
    bin_dir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bin_dir / "git").symlink_to(git)
    done = ab_against_main(
        repo, tmp_path / "ab.json", "--profiler", "instructions", pinned=False, env={"PATH": str(bin_dir)}
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: --profiler instructions: instruction counts need valgrind: 'valgrind' was not found in PATH" in (
        done.stderr
    )
    assert "judged slower" not in done.stderr
