"""``perfgate ab --instructions``: the paired gate on counts, end to end on git repositories made
here (each side's session counted once under callgrind; skipped, with the reason, where valgrind
or the native extension with client requests is missing), and ``--allocations`` (no valgrind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ab import LIBRARY, ab, git, make_repository, no_worktrees_left
from harness.counts import needs_callgrind, needs_native
from pytest_perfgate.ab.counted import SideSession
from pytest_perfgate.ab.judge import NOT_COUNTED, compare_counted
from pytest_perfgate.ab.schedule import BASE, CURRENT
from pytest_perfgate.gate import GateStatus, GateVerdict, NoticeKind
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.units import Kind

TESTS = """\
import shop


def test_checksum(perf):
    assert perf(shop.checksum) > 0


def test_checksum_twice(perf):
    assert perf(lambda: shop.checksum() + shop.checksum()) > 0


def test_render(perf):
    assert perf(shop.render).startswith("0,1")


def test_no_perf_call():
    assert shop.render(3) == "0,1,2"
"""

CHECKSUM = ("tests/test_shop.py::test_checksum", "tests/test_shop.py::test_checksum_twice")
CONTROL = "tests/test_shop.py::test_render"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repository(
        tmp_path / "project",
        {"src/shop/__init__.py": LIBRARY.format(loops="n"), "tests/test_shop.py": TESTS},
    )


def _commit(repo: Path, branch: str, library: str) -> None:
    git(repo, "checkout", "-q", "-b", branch)
    (repo / "src" / "shop" / "__init__.py").write_text(library)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", branch)


def _verdicts(path: Path) -> dict[tuple[str, str], dict[str, object]]:
    return {(c["nodeid"], c["metric"]): c for c in json.loads(path.read_text())["comparisons"]}


def _side(
    side: object, counts: dict[str, float | None], outcomes: dict[str, str], finished: bool = True
) -> SideSession:
    tests = tuple(
        TestResult(
            nodeid,
            outcome=outcomes.get(nodeid, "passed"),
            series={} if count is None else {"instructions": Series("instructions", Kind.COUNT, (count,))},
        )
        for nodeid, count in counts.items()
    )
    return SideSession(
        side,  # type: ignore[arg-type]
        nodeids=list(counts),
        outcomes={
            n: (outcomes.get(n, "passed"), "why" if outcomes.get(n, "passed") != "passed" else "") for n in counts
        },
        run=RunResult({}, tests),
        finished=finished,
    )


def test_the_counted_judgement_fails_closed_on_every_test_it_cannot_compare() -> None:
    base = _side(
        BASE,
        {"t::same": 1000, "t::slow": 1000, "t::one_side": None, "t::plain": None, "t::fails": 1000, "t::gone": 5},
        {},
    )
    current = _side(
        CURRENT,
        {"t::same": 1004, "t::slow": 1100, "t::one_side": 7, "t::plain": None, "t::fails": None, "t::new": 5},
        {"t::fails": "failed"},
    )
    report = compare_counted({BASE: base, CURRENT: current}, subject="main (abc)")
    verdicts = {c.nodeid: c.verdict for c in report.comparisons}
    assert verdicts == {
        "t::same": GateVerdict.UNCHANGED,
        "t::slow": GateVerdict.REGRESSION,
        "t::one_side": GateVerdict.INSUFFICIENT,
        "t::fails": GateVerdict.INSUFFICIENT,
        "t::gone": GateVerdict.MISSING,
        "t::new": GateVerdict.NEW,
    }
    # a regression found meanwhile still fails the run (exit 1), the incomplete list beside it
    assert report.status is GateStatus.FAILED and report.exit_code == 1
    assert report.incomplete == (
        "t::fails: failed on the current side: why",
        "t::one_side: counted on the current side only (the other passed without a counted call)",
    )
    skipped = [n for n in report.notices if n.kind is NoticeKind.SKIPPED_AS_EXPECTED]
    assert skipped[0].tests == (f"t::plain: {NOT_COUNTED}",)

    base.run = RunResult({}, tuple(t for t in base.run.tests if t.nodeid != "t::slow"))  # type: ignore[union-attr]
    current.run = RunResult({}, tuple(t for t in current.run.tests if t.nodeid != "t::slow"))  # type: ignore[union-attr]
    base.nodeids.remove("t::slow")
    current.nodeids.remove("t::slow")
    incomplete = compare_counted({BASE: base, CURRENT: current})
    assert incomplete.status is GateStatus.INCOMPLETE and incomplete.exit_code == 2
    allowed = compare_counted({BASE: base, CURRENT: current}, allow_incomplete=True)
    assert allowed.exit_code == 0 and not allowed.incomplete
    assert any(n.kind is NoticeKind.ALLOWED_INCOMPLETE and n.count == 2 for n in allowed.notices)


def test_a_counted_side_that_broke_off_is_incomplete() -> None:
    base = _side(BASE, {"t::a": 10}, {})
    report = compare_counted({BASE: base}, broken="the current side's session crashed (exit code -9)")
    assert report.incomplete == ("the paired run did not finish: the current side's session crashed (exit code -9)",)
    assert report.exit_code == 2


#: what unchanged code is judged. Before the canonical heap, the base worktree's session counted small
#: calls 0.3-0.8% above the current tree's (docs/ab.md, "Counted"), read as an improvement
UNCHANGED_CODE = ("unchanged",)


@needs_callgrind
def test_counts_pass_the_unchanged_commit_and_fail_the_tests_of_a_slowed_function(repo: Path, tmp_path: Path) -> None:
    same = ab(repo, "--base", "main", "--instructions", "--json", str(tmp_path / "same.json"), "--", "tests")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.startswith("perfgate: PASSED (") and "paired A/B against main (" in same.stdout
    verdicts = _verdicts(tmp_path / "same.json")
    for nodeid in (*CHECKSUM, CONTROL):
        for metric in ("instructions", "alloc_blocks", "alloc_bytes"):
            assert verdicts[(nodeid, metric)]["verdict"] in UNCHANGED_CODE, verdicts[(nodeid, metric)]
        # the two sides' sessions left different heaps; the counted calls do not see it
        assert abs(float(verdicts[(nodeid, "instructions")]["change"])) < 0.0005, verdicts[(nodeid, "instructions")]  # type: ignore[arg-type]
    # a test without a counted call is listed, and does not make the run incomplete
    assert "tests/test_shop.py::test_no_perf_call: passed on both sides without a counted call" in same.stdout
    assert "counting instructions (under callgrind) and allocations" in same.stderr
    no_worktrees_left(repo)

    # about 10% more work in checksum: its two tests fail, render does not
    _commit(repo, "slower", LIBRARY.format(loops="n * 11 // 10"))
    slow = ab(repo, "--base", "main", "--instructions", "--json", str(tmp_path / "slow.json"), "--", "tests")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert slow.stdout.startswith("perfgate: FAILED: ")
    verdicts = _verdicts(tmp_path / "slow.json")
    for nodeid in CHECKSUM:
        got = verdicts[(nodeid, "instructions")]
        assert got["verdict"] == "regression", got
        assert 0.05 < float(got["change"]) < 0.15, got  # type: ignore[arg-type]
    assert verdicts[(CONTROL, "instructions")]["verdict"] in UNCHANGED_CODE
    regressions = {nodeid for (nodeid, _), c in verdicts.items() if c["verdict"] == "regression"}
    assert regressions == set(CHECKSUM)
    no_worktrees_left(repo)


@needs_callgrind
def test_a_test_failing_on_one_side_makes_the_counted_run_incomplete(repo: Path, tmp_path: Path) -> None:
    broken = LIBRARY.format(loops="n").replace(
        'return ",".join', 'raise ValueError("broken render")\n    return ",".join'
    )
    _commit(repo, "broken", broken)
    result = ab(repo, "--base", "main", "--instructions", "--json", str(tmp_path / "out.json"), "--", "tests")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("perfgate: INCOMPLETE")
    assert "error: the paired run is incomplete: tests/test_shop.py::test_no_perf_call: failed on the current side" in (
        result.stderr
    )
    assert "tests/test_shop.py::test_render: failed on the current side" in result.stderr
    verdicts = _verdicts(tmp_path / "out.json")
    assert verdicts[(CHECKSUM[0], "instructions")]["verdict"] in UNCHANGED_CODE

    allowed = ab(repo, "--base", "main", "--instructions", "--allow-incomplete", "--", "tests")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "not compared (allowed by --allow-incomplete): " in allowed.stdout


@needs_native
def test_allocation_counts_without_valgrind(repo: Path, tmp_path: Path) -> None:
    # render builds one more string per item: more allocations on the current side
    _commit(repo, "alloc", LIBRARY.format(loops="n").replace('",".join(str(i)', '",".join(str(i) + ""'))
    result = ab(repo, "--base", "main", "--allocations", "--json", str(tmp_path / "out.json"), "--", "tests")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    verdicts = _verdicts(tmp_path / "out.json")
    assert not any(metric == "instructions" or metric == "time" for _, metric in verdicts)
    assert verdicts[(CHECKSUM[0], "alloc_blocks")]["verdict"] in UNCHANGED_CODE
    assert "counting allocations, one side after the other" in result.stderr


@pytest.mark.parametrize(
    "options",
    [
        ("--cpu", "0"),
        ("--max-time", "1s"),
        ("--min-blocks", "4"),
        ("--confirm-pairs", "0"),
        ("--hashseed", "3"),
        ("--no-whole-calls",),
        ("--save-blocks", "b.json"),
    ],
)
def test_timed_options_are_refused_with_the_counted_mode(repo: Path, options: tuple[str, ...]) -> None:
    result = ab(repo, "--base", "main", "--instructions", *options, "--", "tests")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: perfgate ab --instructions counts one call per test and side" in result.stderr
    assert f"{options[0]} only apply to the timed mode" in result.stderr
    no_worktrees_left(repo)


def test_a_counted_run_of_an_unknown_revision_is_an_error(repo: Path) -> None:
    result = ab(repo, "--base", "nosuch", "--allocations", "--", "tests")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--base 'nosuch': no such revision" in result.stderr


@pytest.mark.parametrize(
    ("selection", "said"),
    [
        (("tests/nothere.py",), "no test to compare: pytest on the current side selected none: ERROR: file or "
         "directory not found: tests/nothere.py"),
        (("tests", "-k", "nomatch"), "no test to compare: pytest on the current side selected none: "),
    ],
)  # fmt: skip
def test_a_counted_side_that_runs_nothing_fails_closed(
    repo: Path, tmp_path: Path, selection: tuple[str, ...], said: str
) -> None:
    result = ab(repo, "--base", "main", "--allocations", "--json", str(tmp_path / "out.json"), "--", *selection)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr
    assert json.loads((tmp_path / "out.json").read_text())["status"] == "incomplete"
    no_worktrees_left(repo)
