"""The paired A/B gate: its statistics, its round schedule, and `perfgate ab` end to end on git
repositories made here (two commits; one with a real slowdown in a library function)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.ab import LIBRARY, NOT_A_REGRESSION, ab, ab_against_main, git, make_repository, no_worktrees_left
from pytest_perfgate import stats
from pytest_perfgate.ab.controller import _needs_confirming
from pytest_perfgate.ab.judge import compare_paired
from pytest_perfgate.ab.schedule import (
    BASE,
    CURRENT,
    PairedSettings,
    PairedTest,
    Round,
    block_order,
    corrected_rounds,
    measure_paired,
)
from pytest_perfgate.config import GateSettings
from pytest_perfgate.gate import GateVerdict
from pytest_perfgate.reports.gate_text import headline, notice_texts

# --------------------------------------------------------------------------- statistics


@given(st.integers(min_value=1, max_value=60), st.data())
def test_sign_test_tail_is_the_exact_binomial_sum(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n + 1))
    exact = sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    assert stats.binom_half_sf(k, n) == pytest.approx(exact, rel=1e-9, abs=1e-15)


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=200), st.sampled_from([0.9, 0.95, 0.99]))
def test_median_interval_holds_the_median_and_has_its_coverage(values: list[float], confidence: float) -> None:
    low, high = stats.median_interval(values, confidence)
    ordered = sorted(values)
    assert low <= stats.percentile(values, 50) <= high
    cut = ordered.index(low)  # order statistics cut from the low end
    n = len(values)
    if cut > 0:  # the interval was narrowed only as far as the coverage allows
        assert 1 - 2 * (1 - stats.binom_half_sf(cut, n)) >= confidence - 1e-12


def test_median_interval_matches_the_textbook_order_statistics() -> None:
    # n = 10 at 95%: x(2) .. x(9) (coverage 97.9%); n = 20: x(6) .. x(15)
    assert stats.median_interval(list(range(1, 11)), 0.95) == (2, 9)
    assert stats.median_interval(list(range(1, 21)), 0.95) == (6, 15)
    assert stats.median_interval([5.0], 0.95) == (5.0, 5.0)


def test_paired_comparison_of_a_clear_slowdown_and_of_noise() -> None:
    slow = stats.compare_one_pair([math.log(1.2)] * 15 + [math.log(0.99)])
    assert math.expm1(slow.shift) == pytest.approx(0.2)
    assert slow.p_worse == pytest.approx(17 / 2**16)  # 15 or 16 of 16 above 0
    assert slow.p_better > 0.99
    noise = stats.compare_one_pair([0.01, -0.01] * 10)
    assert noise.p_worse == pytest.approx(noise.p_better) and noise.p_worse > 0.5


# --------------------------------------------------------------------------- schedule


class FakeSide:
    """A side whose rounds take ``per_call`` ns per loop (``off_cpu`` of them waiting, the rest
    computing), logging every order it gets."""

    def __init__(
        self,
        name: str,
        per_call: int,
        log: list[tuple[str, str, int]],
        clock: list[float],
        preempt_every: int = 0,
        off_cpu: int = 0,
        cpu_known: bool = True,
    ) -> None:
        self.name, self.per_call, self.log, self.clock = name, per_call, log, clock
        self.preempt_every, self.off_cpu, self.cpu_known = preempt_every, off_cpu, cpu_known

    def calibrate(self, min_round_time: float) -> int:
        self.log.append((self.name, "calibrate", 0))
        return 1 << max(0, math.ceil(math.log2(min_round_time * 1e9 / self.per_call)))

    def round(self, loops: int, keep: bool) -> Round:
        self.log.append((self.name, "keep" if keep else "warm", loops))
        elapsed = self.per_call * loops
        cpu = (self.per_call - self.off_cpu) * loops if self.cpu_known else -1
        preempted = bool(self.preempt_every and len(self.log) % self.preempt_every == 0)
        if preempted:  # another process's time slice lands in this round
            elapsed += 4_000_000
        self.clock[0] += elapsed * 1e-9
        return Round(elapsed, int(preempted), cpu)


def _measure(
    base_ns: int, current_ns: int, settings: PairedSettings, preempt_every: int = 0, **current: Any
) -> tuple[PairedTest, list]:
    log: list[tuple[str, str, int]] = []
    clock = [0.0]
    sides = {
        BASE: FakeSide(BASE, base_ns, log, clock),
        CURRENT: FakeSide(CURRENT, current_ns, log, clock, preempt_every, **current),
    }
    test = measure_paired("t", sides, settings, clock=lambda: clock[0])
    return test, log


def test_rounds_alternate_abba_baab_with_one_loop_count_for_both_sides() -> None:
    test, log = _measure(1000, 700, PairedSettings(min_blocks=4, max_time=0, warmup_time=0))
    assert [entry[1] for entry in log[:2]] == ["calibrate", "calibrate"]  # base: 128 loops for 100us; current 256
    kept = [(side, loops) for side, what, loops in log if what == "keep"]
    assert [side for side, _ in kept] == [*block_order(0), *block_order(1), *block_order(2), *block_order(3)]
    assert [side[0] for side, _ in kept[:8]] == list("bccbcbbc")  # ABBA then BAAB
    assert {loops for _, loops in kept} == {128}  # the smaller calibration (the slower side's), shared
    assert test.loops == 128 and test.blocks == 4
    assert all(r == pytest.approx(math.log(0.7)) for r in test.log_ratios)
    assert test.base == pytest.approx((1e-6,) * 8) and test.current == pytest.approx((0.7e-6,) * 8)


def test_a_call_longer_than_a_round_runs_one_loop() -> None:
    _, log = _measure(10**6, 10**6, PairedSettings(min_blocks=2, max_time=0, warmup_time=0))
    assert {loops for _, what, loops in log if what == "keep"} == {1}


def test_measuring_stops_after_max_time_per_side_or_at_the_time_limit() -> None:
    by_time, _ = _measure(10_000, 10_000, PairedSettings(min_blocks=2, max_time=0.01, warmup_time=0.001))
    assert by_time.stopped == "time"
    # each side: 2 rounds of 16 loops x 10us = 320us per block; 10ms needs 32 blocks
    assert by_time.blocks == 32
    limited, _ = _measure(10_000, 10_000, PairedSettings(min_blocks=100, max_time=10, warmup_time=0, time_limit=0.05))
    assert limited.stopped == "time limit" and 0 < limited.blocks < 100


def test_blocks_with_a_preempted_round_are_left_out_when_enough_are_clean() -> None:
    settings = PairedSettings(min_blocks=10, max_time=0.01, warmup_time=0)
    test, _ = _measure(1000, 1100, settings, preempt_every=7)
    assert test.disturbed > 0 and not test.disturbed_judged
    assert test.blocks >= 10
    assert all(r == pytest.approx(math.log(1.1)) for r in test.log_ratios)  # the 4ms slices are gone
    crowded, _ = _measure(1000, 1100, PairedSettings(min_blocks=10, max_time=0.001, warmup_time=0), preempt_every=2)
    assert crowded.disturbed_judged and crowded.stopped == "disturbed"  # every block hit: judged anyway, said so
    assert crowded.blocks == crowded.disturbed >= 10
    report = compare_paired([crowded, test], GateSettings())
    (notice,) = [n for n in notice_texts(report) if "disturbed" in n]
    left_out = test.disturbed
    assert (
        f"the shared CPU during one of their rounds): {left_out} of them were left out; {crowded.disturbed} were "
        "judged, each preempted round counted as its CPU time plus its side's usual off-CPU time, in 1 test that "
        "had too few undisturbed blocks: t" in notice
    )


def test_the_usual_off_cpu_time_of_a_side_comes_from_its_rounds_that_were_not_preempted() -> None:
    ms = 1_000_000
    clean_base = [(BASE, Round(11 * ms, 0, 10 * ms))] * 4  # 1 ms of waiting per round
    clean_current = [(CURRENT, Round(12 * ms, 0, 10 * ms))] * 4  # 2 ms: a slower server call
    hit = [(BASE, Round(30 * ms, 1, 10 * ms)), (CURRENT, Round(30 * ms, 1, 10 * ms))]
    assert [m.ns for _, m in corrected_rounds(hit, clean_base + clean_current)] == [11 * ms, 12 * ms]
    # the current side preempted in every round: its own smallest gap (8 ms) would be preemption;
    # it gets both sides' figure (the base's 1 ms) instead of looking 8 ms slower
    every = [(CURRENT, Round(18 * ms, 1, 10 * ms)), (CURRENT, Round(19 * ms, 2, 10 * ms))]
    assert [m.ns for _, m in corrected_rounds(every, clean_base)] == [11 * ms, 11 * ms]
    # no side has a clean round: the smallest gap of all, for both sides alike
    none = [
        (BASE, Round(20 * ms, 1, 10 * ms)),
        (BASE, Round(19 * ms, 1, 10 * ms)),
        (CURRENT, Round(25 * ms, 1, 10 * ms)),
    ]
    assert [m.ns for _, m in corrected_rounds(none, [])] == [19 * ms, 19 * ms, 19 * ms]
    assert all(m.switches == 0 for _, m in corrected_rounds(none, []))


def test_judged_disturbed_blocks_count_preempted_rounds_as_cpu_plus_the_usual_wait() -> None:
    """Every block preempted (a long call on a busy machine): the 4 ms slices of the other process
    would swing each ratio by up to +-40%; counted as CPU time plus the side's usual off-CPU time,
    the ratios are exact again, and a change in off-CPU time (a slower server call) is still seen."""
    settings = PairedSettings(min_blocks=10, max_time=0.001, warmup_time=0)
    crowded, _ = _measure(10_000, 11_000, settings, preempt_every=2)
    assert crowded.disturbed_corrected and crowded.blocks >= 10
    assert all(r == pytest.approx(math.log(1.1)) for r in crowded.log_ratios)
    waiting, _ = _measure(10_000, 11_000, settings, preempt_every=2, off_cpu=1_000)  # the 10% is all waiting
    assert all(r == pytest.approx(math.log(1.1)) for r in waiting.log_ratios)
    unknown, _ = _measure(10_000, 11_000, settings, preempt_every=2, cpu_known=False)
    assert unknown.disturbed_judged and not unknown.disturbed_corrected
    assert max(unknown.log_ratios) > math.log(1.3)  # the slices, as measured
    report = compare_paired([unknown], GateSettings())
    assert any(
        "were judged, as measured: the platform gives no thread CPU time, so these are less reliable, in 1 "
        "test that had too few undisturbed blocks: t" in n
        for n in notice_texts(report)
    )


# --------------------------------------------------------------------------- verdicts


def _test(nodeid: str, ratio: float, blocks: int = 20, jitter: float = 0.01) -> PairedTest:
    ratios = tuple(math.log(ratio) + (jitter if i % 2 else -jitter) * (i % 5) / 5 for i in range(blocks))
    return PairedTest(nodeid, loops=1, base=(1e-3,) * blocks, current=(1e-3 * ratio,) * blocks, log_ratios=ratios)


def test_paired_verdicts_use_the_gate_thresholds_and_the_suite_correction() -> None:
    report = compare_paired(
        [
            _test("t::slow", 1.25),
            _test("t::same", 1.0),
            _test("t::faster", 0.8),
            _test("t::warn", 1.07),
            _test("t::few", 1.5, blocks=5),
            PairedTest("t::new", only=CURRENT, problem="not on the base side (a new test)"),
            PairedTest("t::gone", only=BASE, problem="not on the current side (removed or renamed)"),
            PairedTest("t::broken", problem="failed on the base side: in call: boom"),
        ],
        GateSettings(),
        subject="main (abc)",
    )
    verdicts = {c.nodeid: c.verdict for c in report.comparisons}
    assert verdicts == {
        "t::slow": GateVerdict.REGRESSION,
        "t::same": GateVerdict.UNCHANGED,
        "t::faster": GateVerdict.IMPROVEMENT,
        "t::warn": GateVerdict.WARNING,
        "t::few": GateVerdict.INSUFFICIENT,  # 5 blocks cannot reach p < 0.01 / 5
        "t::new": GateVerdict.NEW,
        "t::gone": GateVerdict.MISSING,
        "t::broken": GateVerdict.INSUFFICIENT,
    }
    few = next(c for c in report.comparisons if c.nodeid == "t::few")
    assert few.reason.startswith("5 paired blocks cannot show p < 0.002")
    assert report.exit_code == 1
    assert headline(report).endswith("; paired A/B against main (abc)")
    slow = next(c for c in report.comparisons if c.nodeid == "t::slow")
    assert slow.change == pytest.approx(0.25, abs=0.01) and slow.baseline_runs == 20
    assert slow.ci is not None and slow.ci[0] <= slow.change <= slow.ci[1]


def test_without_cpu_affinity_the_report_says_the_workers_are_not_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_perfgate.ab.controller import choose_cpu

    assert choose_cpu(None)[1] == ""
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    cpu, notice = choose_cpu(3)
    assert cpu is None
    assert notice.startswith("CPU affinity is not available on this platform: the workers are not pinned")


# --------------------------------------------------------------------------- end to end

TESTS = """\
import os
import sys
import time
from dataclasses import replace

import shop


def test_checksum(perf):
    assert perf(shop.checksum) > 0


def test_render(perf):
    assert perf(shop.render).startswith("0,1")


def test_no_perf_call():
    assert shop.render(3) == "0,1,2"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A src-layout project whose base commit has ``checksum`` at its normal speed."""
    return make_repository(
        tmp_path / "project",
        {
            "src/shop/__init__.py": LIBRARY.format(loops="n"),
            "tests/test_shop.py": TESTS,
            "pytest.ini": "[pytest]\nperfgate_max_time = 0.1s\nperfgate_warmup = 0.01s\n",
        },
    )


def _slow_down(repo: Path) -> None:
    """A real slowdown in a library function: 40% more iterations in checksum."""
    (repo / "src" / "shop" / "__init__.py").write_text(LIBRARY.format(loops="n * 7 // 5"))


def _not_a_regression(line: str) -> bool:
    """A report table line judges its test anything but a regression (and judges it)."""
    return "REGRESSION" not in line and any(f"  {verdict}  " in line for verdict in NOT_A_REGRESSION)


def test_ab_fails_the_slow_commit_and_passes_the_unchanged_one(repo: Path, tmp_path: Path) -> None:
    unchanged = ab_against_main(repo, tmp_path / "same.json")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert f"current working tree; workers pinned to CPU {min(os.sched_getaffinity(0))}" in unchanged.stderr
    assert unchanged.stdout.startswith("perfgate: PASSED (") and "; paired A/B against main (" in unchanged.stdout
    same = {c["nodeid"]: c for c in json.loads((tmp_path / "same.json").read_text())["comparisons"]}
    for nodeid in ("tests/test_shop.py::test_checksum", "tests/test_shop.py::test_render"):
        # unchanged code: no regression; a few % either way is the two processes' layout (past 5%,
        # rarely, a warning: bench/RESULTS-ab.md)
        assert same[nodeid]["verdict"] in NOT_A_REGRESSION, same[nodeid]
        assert abs(same[nodeid]["change"]) < 0.1, same[nodeid]
    # a test without perf or benchmark is timed as a whole call, and compared like the others
    assert same["tests/test_shop.py::test_no_perf_call"]["verdict"] in NOT_A_REGRESSION
    assert "[3/3] tests/test_shop.py::test_no_perf_call: " in unchanged.stderr

    _slow_down(repo)
    slow = ab_against_main(
        repo,
        tmp_path / "ab.json",
        *("--markdown", str(tmp_path / "ab.md"), "--junit", str(tmp_path / "ab.xml")),
        *("--save-current", str(tmp_path / "current.json")),
        pinned=False,
    )
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert slow.stdout.startswith("perfgate: FAILED: 1 regression (") and "; paired A/B against main (" in slow.stdout
    data = json.loads((tmp_path / "ab.json").read_text())
    rows = {c["nodeid"]: c for c in data["comparisons"]}
    checksum = rows["tests/test_shop.py::test_checksum"]
    assert checksum["verdict"] == "regression"
    # 40% more iterations: measured +38% to +50% in most runs, but once +23.5% (2026-11-22, a clean
    # fresh-clone CI run; cause not found: one pair of workers far off?), so the bound is loose
    assert 0.15 < checksum["change"] < 0.6, checksum
    assert rows["tests/test_shop.py::test_render"]["verdict"] in ("unchanged", "improvement")  # untouched
    assert "Paired A/B: the base and the current code ran in alternating rounds" in (tmp_path / "ab.md").read_text()
    assert 'type="regression"' in (tmp_path / "ab.xml").read_text()
    saved = json.loads((tmp_path / "current.json").read_text())
    assert {t["nodeid"] for t in saved["tests"]} >= {"tests/test_shop.py::test_checksum"}
    assert "[1/3] tests/test_shop.py::test_checksum: +" in slow.stderr
    no_worktrees_left(repo)


def test_new_missing_and_failing_tests_are_reported_not_judged(repo: Path) -> None:
    """Both sides run the current test files, so a test is on one side only when the code makes it
    so: a test module importing a function the base lacks, a parametrization over the code's data."""
    library = repo / "src" / "shop" / "__init__.py"
    (repo / "tests" / "test_new.py").write_text(
        "from shop import discount\n\n\ndef test_discount(perf):\n    assert perf(discount, 10) == 9\n"
    )
    (repo / "tests" / "test_sizes.py").write_text(
        "import os\n\nimport pytest\n\nimport shop\n\n\n@pytest.mark.parametrize('size', shop.SIZES)\n"
        "def test_size(perf, size):\n    perf(shop.render, size)\n\n\n"
        "def test_fails_here(perf):\n    perf(shop.render)\n    assert os.environ['PERFGATE_AB_SIDE'] == 'base'\n"
    )
    library.write_text(LIBRARY.format(loops="n") + "\n\nSIZES = (10, 20, 30)\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "the base: sizes up to 30, no discount")
    library.write_text(LIBRARY.format(loops="n") + "\n\nSIZES = (10, 20)\n\n\ndef discount(p):\n    return p * 0.9\n")
    result = ab(repo, "--base", "HEAD", "--min-blocks", "12", "--all", "--", "tests")
    # a test that failed on one side was not compared: the run is incomplete, and says which and why
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("perfgate: INCOMPLETE: 1 test not compared")
    assert (
        "error: the paired run is incomplete: tests/test_sizes.py::test_fails_here: failed on the current side"
        in result.stderr
    )
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("tests/")}
    assert lines["tests/test_new.py::test_discount"].split()[2:3] == ["-"]
    assert " new " in lines["tests/test_new.py::test_discount"]
    assert " missing " in lines["tests/test_sizes.py::test_size[30]"]
    assert _not_a_regression(lines["tests/test_sizes.py::test_size[10]"])
    failing = lines["tests/test_sizes.py::test_fails_here"]
    assert "insufficient data" in failing and "failed on the current side: in call: AssertionError" in failing
    allowed = ab(repo, "--base", "HEAD", "--min-blocks", "12", "--allow-incomplete", "--", "tests/test_sizes.py")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (
        "1 test not compared (allowed by --allow-incomplete): tests/test_sizes.py::test_fails_here: failed on "
        "the current side: in call: AssertionError" in allowed.stdout
    )
    assert (
        "notice: collection error on the base side in tests/test_new.py: ImportError: cannot import name 'discount'"
        in (result.stdout)
    )


def test_bad_revision_bad_cpu_and_parallel_pytest_are_clear_errors(repo: Path) -> None:
    missing = ab(repo, "--base", "no-such-branch", "--", "tests")
    assert missing.returncode == 2
    assert "error: --base 'no-such-branch': no such revision in" in missing.stderr
    cpu = ab(repo, "--base", "main", "--cpu", "999", "--", "tests")
    assert cpu.returncode == 2 and "error: --cpu 999: not a CPU this process may use" in cpu.stderr
    parallel = ab(repo, "--base", "main", "--", "tests", "-n", "2")
    assert parallel.returncode == 2 and "remove -n/--numprocesses/--dist" in parallel.stderr
    no_worktrees_left(repo)


def test_a_failing_install_step_shows_its_output_and_removes_the_worktree(repo: Path) -> None:
    result = ab(repo, "--base", "main", "--install", "echo building the base; exit 7", "--", "tests")
    assert result.returncode == 2
    assert "error: the install step failed (exit 7): echo building the base; exit 7" in result.stderr
    assert "building the base" in result.stderr
    no_worktrees_left(repo)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:  # reaped meanwhile
        return False
    except OSError:
        return True


def _written(pids: Path) -> list[int]:
    """The worker pids the test of :func:`_pid_tests` wrote."""
    return [int(p.read_text()) for p in pids.iterdir() if p.suffix != ".tmp"]


def _pid_tests(repo: Path, body: str) -> Path:
    """A test that writes its worker's pid to pids/<side> and then does ``body``."""
    pids = repo / "pids"
    pids.mkdir()
    (repo / "tests" / "test_fault.py").write_text(
        "import os, time\nimport shop\n\n\ndef test_fault(perf):\n"
        f"    side = os.environ['PERFGATE_AB_SIDE']\n"
        f"    path = os.path.join({str(pids)!r}, side)\n"
        "    open(path + '.tmp', 'w').write(str(os.getpid()))\n"
        "    os.replace(path + '.tmp', path)  # whole, or not there\n"
        f"{body}\n    perf(shop.render)\n"
    )
    return pids


def test_a_crashing_worker_is_reported_with_its_output(repo: Path) -> None:
    pids = _pid_tests(repo, "    if side == 'base':\n        print('about to crash'); os._exit(3)")
    result = ab(repo, "--base", "main", "--min-blocks", "12", "--", "tests/test_fault.py", "-s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: the paired run did not finish: the base worker exited (code 3)" in result.stderr
    assert "about to crash" in result.stderr
    assert "the run broke here" in result.stdout
    assert not any(_alive(pid) for pid in _written(pids))
    no_worktrees_left(repo)


def test_a_hanging_worker_is_killed_at_the_test_timeout(repo: Path) -> None:
    pids = _pid_tests(repo, "    if side == 'current':\n        time.sleep(120)")
    started = time.monotonic()
    result = ab(repo, "--base", "main", "--test-timeout", "3s", "--", "tests/test_fault.py")
    assert time.monotonic() - started < 60
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the current worker did not answer within 3s (it hangs: killed)" in result.stderr
    assert not any(_alive(pid) for pid in _written(pids))
    no_worktrees_left(repo)


def test_the_whole_run_limit_reports_what_was_not_run(repo: Path, tmp_path: Path) -> None:
    # the first test alone wants 2 x 5 s of rounds: the 2 s limit cuts the run short wherever it falls
    result = ab(
        repo,
        "--base",
        "main",
        "--timeout",
        "2s",
        "--max-time",
        "5s",
        "--markdown",
        str(tmp_path / "ab.md"),
        "--",
        "tests",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: the paired run did not finish: the whole-run time limit (2s) was reached" in result.stderr
    markdown = (tmp_path / "ab.md").read_text()
    assert "the paired run did not finish: the whole-run time limit (2s) was reached" in markdown
    assert "not run: the whole-run time limit (2s) was reached" in markdown or "the run broke here" in markdown
    no_worktrees_left(repo)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_worktree_or_processes(repo: Path, signum: int) -> None:
    pids = _pid_tests(repo, "    time.sleep(120)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_"))}
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps its stacks, should it not end (below)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_perfgate.cli", "ab", "--base", "main", "--", "tests/test_fault.py"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _written(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _written(pids), "no worker reached the test"
    assert git(repo, "worktree", "list").count("\n") == 2  # the base worktree exists now
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=60)
        pytest.fail(f"perfgate ab did not end within 120 s of the signal; where it was:\n{err[-6000:]}")
    assert process.returncode == 130, err
    assert "error: interrupted" in err
    assert not any(_alive(pid) for pid in _written(pids))
    no_worktrees_left(repo)


REPOSITORY = Path(__file__).resolve().parent.parent


def test_ab_on_this_projects_catalog_example(tmp_path: Path) -> None:
    """The catalog example in a clone of this repository: a defensive copy added to
    Catalog.search is a regression; a test that does not reach search is unchanged."""
    if not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout of pytest-perfgate: the example needs its history")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(clone)], check=True, timeout=120)
    catalog = clone / "examples" / "catalog" / "catalog.py"
    source = catalog.read_text()
    slow = source.replace(
        "items = self._by_category.get(category, [])", "items = list(self._by_category.get(category, []))"
    )
    assert slow != source, "the example changed: update this test's slowdown"
    catalog.write_text(slow)
    refused = ab(clone, "--base", "HEAD", "--", "examples/catalog")
    assert refused.returncode == 2
    assert "holds another pytest_perfgate than the running one" in refused.stderr
    result = ab(
        clone,
        "--base",
        "HEAD",
        "--pythonpath",
        "examples/catalog",
        "--max-time",
        "0.2s",
        "--all",
        "--",
        "examples/catalog",
        "-k",
        "search_by_category or details_with_cache",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("test_catalog.py::")}
    assert "REGRESSION" in lines["test_catalog.py::test_search_by_category"]
    assert _not_a_regression(lines["test_catalog.py::test_details_with_cache"])
    no_worktrees_left(clone)


def test_a_test_measured_in_several_pairs_is_judged_on_the_median_change_over_the_pairs() -> None:
    one_pair = _test("t::x", 1.12)  # +12%: a regression if this one pair of processes decided
    offset_pair = (math.log(1.02),) * 20  # a fresh pair of workers sees +2%: the first pair's offset
    report = compare_paired([replace(one_pair, extra_pairs=(offset_pair,))], GateSettings())
    (comparison,) = report.comparisons
    assert comparison.change == pytest.approx(math.sqrt(1.12 * 1.02) - 1, abs=0.005)  # the geometric mean
    assert comparison.verdict is GateVerdict.WARNING  # +6.9%: past the warning, short of the 10% regression
    assert any("measured again in fresh pairs of workers" in n and "+12.0%, +2.0%" in n for n in notice_texts(report))
    # three pairs: the median, so one pair's +21% offset does not decide an unchanged test
    three = replace(_test("t::x", 1.21), extra_pairs=((math.log(0.99),) * 20, (math.log(1.01),) * 20))
    (judged,) = compare_paired([three], GateSettings()).comparisons
    assert judged.change == pytest.approx(0.01, abs=0.001) and judged.verdict is not GateVerdict.REGRESSION


def test_the_interval_of_a_test_measured_in_several_pairs_holds_every_pairs_change() -> None:
    """The blocks of two pairs, pooled, give a narrow interval around neither pair's change; the
    change is the pairs' mean, and its interval counts the offset between pairs of processes (a
    2% prior, bench/ab_intervals/RESULTS.md): it holds both pairs' changes."""
    two = replace(_test("t::x", 11.0, jitter=0.001), extra_pairs=((math.log(9.0),) * 20,))
    (comparison,) = compare_paired([two], GateSettings()).comparisons
    low, high = comparison.ci
    assert low < 8.0 and high > 10.0 and low <= comparison.change <= high
    (single,) = compare_paired([_test("t::x", 11.0, jitter=0.001)], GateSettings()).comparisons
    assert 9.4 < single.ci[0] < 9.7 and 10.3 < single.ci[1] < 10.6  # its change +- ~2.1 x the 2% pair spread


@pytest.mark.parametrize(
    ("changes", "again"),
    [
        ((1.06,), True),  # one pair past the 5% threshold: confirm
        ((1.03,), False),
        ((0.94,), True),  # either way
        ((1.06, 1.08), False),  # two pairs agree: done
        ((1.03, 1.01), False),
        ((1.21, 0.99), True),  # they disagree: a third breaks the tie
        ((1.21, 0.99, 1.01), False),  # three with a majority: the median decides
        ((0.87, 1.43), True),  # both large, but opposite ways
        ((1.2, 0.8, 1.0), True),  # no majority (--confirm-pairs bounds the pairs)
        ((1.21, 0.99, 1.01, 1.3), True),  # (with --confirm-pairs 3 or more)
    ],
)
def test_a_test_is_measured_again_while_its_pairs_disagree(changes: tuple[float, ...], again: bool) -> None:
    first, *others = changes
    test = replace(_test("t::x", first), extra_pairs=tuple((math.log(c),) * 20 for c in others))
    assert _needs_confirming(test, 0.05) is again


@pytest.mark.parametrize(
    ("changes", "again"),
    [
        ((1.10, 1.04), True),  # both worse, but on either side of a 5% regression threshold: a third pair
        ((1.08, 1.12), False),  # both past it: the verdict does not hang on one pair
        ((1.04, 1.045), False),  # both short of it
        ((1.10, 1.04, 1.035), False),  # the third pair decides: two of three short of it (median +4%)
        ((1.10, 1.04, 1.00), True),  # no majority even so (--confirm-pairs bounds the pairs)
        ((1.10,), True),
    ],
)
def test_pairs_on_either_side_of_the_regression_threshold_get_a_tie_breaker(
    changes: tuple[float, ...], again: bool
) -> None:
    """An unchanged public suite failed on a pair offset common to all its tests: the first pair
    saw +7% to +13% everywhere, the second +3% to +6%, and their mean was past the 5% threshold
    (bench/ab_public/RESULTS.md, run-0020). Pairs that disagree on the verdict get another."""
    first, *others = changes
    test = replace(_test("t::x", first), extra_pairs=tuple((math.log(c),) * 20 for c in others))
    assert _needs_confirming(test, 0.025, 0.05) is again


def test_one_disturbed_notice_says_what_was_left_out_and_what_was_judged() -> None:
    clean = PairedTest(
        "t::clean", loops=1, base=(1e-3,) * 60, current=(1e-3,) * 60, log_ratios=(0.01, -0.01) * 10, disturbed=5
    )
    crowded = PairedTest(
        "t::crowded",
        loops=1,
        base=(1e-3,) * 24,
        current=(1e-3,) * 24,
        log_ratios=(0.01, -0.01) * 6,
        disturbed=12,
        disturbed_kept=12,
        disturbed_corrected=True,
    )
    notices = [n for n in notice_texts(compare_paired([clean, crowded])) if "disturbed" in n]
    assert notices == [
        "17 of 37 blocks were disturbed (a worker was preempted by another process on the shared CPU during one of "
        "their rounds): 5 of them were left out; 12 were judged, each preempted round counted as its CPU time plus "
        "its side's usual off-CPU time, in 1 test that had too few undisturbed blocks: t::crowded"
    ]


def test_a_test_measured_in_too_few_blocks_to_be_judged_makes_the_run_incomplete() -> None:
    report = compare_paired([_test("t::few", 1.0, blocks=5), _test("t::same", 1.0)], GateSettings())
    assert report.exit_code == 2
    assert report.incomplete == (
        "t::few: 5 paired blocks cannot show p < 0.005 (alpha over the suite); give the test more time or blocks",
    )
    allowed = compare_paired([_test("t::few", 1.0, blocks=5)], GateSettings(), allow_incomplete=True)
    assert allowed.exit_code == 0 and any("allowed by --allow-incomplete" in n for n in notice_texts(allowed))
