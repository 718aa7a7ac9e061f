"""``perfgate ab`` on suites as projects ship them: pytest-benchmark's fixture (plain and
``pedantic``), tests without a timing fixture (whole calls), the project's pytest-timeout, tests
that fail or cannot be repeated, and selections of no test. Each runs the real command on a git
repository made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ab import LIBRARY, ab, make_repository, no_worktrees_left

pytest.importorskip("pytest_benchmark")
pytest.importorskip("pytest_timeout")

BENCHMARKS = """\
import shop

prepared, torn_down = [], []


def test_work(benchmark):
    assert benchmark(shop.checksum) > 0


def test_control(benchmark):
    assert benchmark(shop.render, 200).startswith("0,1,2")


def test_pedantic(benchmark):
    def setup():
        prepared.append(1)
        return (3000,), {}

    def teardown(n):
        torn_down.append(n)

    assert benchmark.pedantic(shop.checksum, setup=setup, teardown=teardown, rounds=3) > 0
    assert len(prepared) == len(torn_down) > 3  # every round was set up and torn down, untimed


def test_whole_call():
    assert shop.checksum(3000) > 0
"""

TESTS = ("test_work", "test_control", "test_pedantic", "test_whole_call")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A flat-layout project with a pytest-benchmark suite and pytest-timeout's ``timeout = 0.5``,
    shorter than one test's measuring (so the workers must lift it)."""
    return make_repository(
        tmp_path / "project",
        {
            "shop.py": LIBRARY.format(loops="n"),
            "benchmarks/test_bench.py": BENCHMARKS,
            "pytest.ini": "[pytest]\ntimeout = 0.5\nperfgate_max_time = 0.3s\nperfgate_warmup = 0.01s\n",
        },
    )


def _reports(tmp_path: Path, name: str) -> tuple[str, ...]:
    base = tmp_path / name
    return ("--markdown", f"{base}.md", "--junit", f"{base}.xml", "--json", f"{base}.json", "--metrics", f"{base}.txt")


def _agree(tmp_path: Path, name: str, stdout: str, code: int) -> dict[str, object]:
    """Every report format says the headline the terminal said, and the exit code; the JSON."""
    headline = stdout.splitlines()[0]
    base = tmp_path / name
    data = json.loads(Path(f"{base}.json").read_text())
    assert data["headline"] == headline and data["exit_code"] == code
    assert headline.removeprefix("perfgate: ") in Path(f"{base}.md").read_text()
    assert headline.removeprefix("perfgate: ") in Path(f"{base}.xml").read_text()
    gauges = [line.split() for line in Path(f"{base}.txt").read_text().splitlines()]
    assert [float(g[-1]) for g in gauges if g[0].startswith("perfgate_gate_exit_code")] == [code]
    return data  # type: ignore[no-any-return]


def test_benchmark_and_whole_call_tests_are_paired_a_slowdown_fails_and_the_unchanged_commit_passes(
    suite: Path, tmp_path: Path
) -> None:
    same = ab(suite, "--base", "main", "--min-blocks", "12", *_reports(tmp_path, "same"), "--", "benchmarks")
    assert same.returncode == 0, same.stdout + same.stderr
    data = _agree(tmp_path, "same", same.stdout, 0)
    rows = {c["nodeid"].split("::")[1]: c for c in data["comparisons"]}  # type: ignore[attr-defined]
    assert set(rows) == set(TESTS)  # every benchmark compared, none skipped as untimed
    for name in TESTS:
        assert rows[name]["verdict"] in ("unchanged", "improvement", "unstable", "warning"), rows[name]
    assert "notice: pytest-timeout (timeout = 0.5 in pytest.ini) is lifted in the paired workers" in same.stdout

    (suite / "shop.py").write_text(LIBRARY.format(loops="n * 7 // 5"))  # 40% more iterations in checksum()
    slow = ab(suite, "--base", "main", "--min-blocks", "12", *_reports(tmp_path, "slow"), "--", "benchmarks")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    data = _agree(tmp_path, "slow", slow.stdout, 1)
    rows = {c["nodeid"].split("::")[1]: c for c in data["comparisons"]}  # type: ignore[attr-defined]
    for name in ("test_work", "test_pedantic", "test_whole_call"):
        assert rows[name]["verdict"] == "regression", rows[name]
        assert 0.15 < rows[name]["change"] < 0.8, rows[name]
    assert rows["test_control"]["verdict"] != "regression"  # untouched
    assert slow.stdout.startswith("perfgate: FAILED: 3 regressions")
    no_worktrees_left(suite)


def test_tests_that_cannot_be_called_again_or_timed_in_rounds_make_the_run_incomplete(
    suite: Path, tmp_path: Path
) -> None:
    (suite / "benchmarks" / "test_state.py").write_text(
        "import pytest\n\ncalls = []\n\n\n@pytest.fixture\ndef load_test():\n    return None  # stands in for perfgate's\n\n\n"
        "def test_leaks_state():\n    calls.append(1)\n    assert len(calls) < 3, 'state leaks between calls'\n\n\n"
        "def test_load(load_test):\n    pass\n"
    )
    result = ab(suite, "--base", "main", *_reports(tmp_path, "leak"), "--", "benchmarks/test_state.py")
    assert result.returncode == 2, result.stdout + result.stderr
    data = _agree(tmp_path, "leak", result.stdout, 2)
    assert result.stdout.startswith("perfgate: INCOMPLETE: 2 tests not compared")
    leak, load = data["incomplete"]  # type: ignore[misc]
    assert leak.startswith("benchmarks/test_state.py::test_leaks_state: failed on the ")
    assert "side when called again: AssertionError: state leaks between calls (in " in leak
    assert load == (
        "benchmarks/test_state.py::test_load: a load test (locust in a subprocess, its own duration) "
        "cannot be timed in paired rounds"
    )
    no_worktrees_left(suite)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("benchmarks", "-k", "nomatch"), "pytest on the current side selected none: 4 deselected in "),
        (("benchmarks/nothere.py",), "ERROR: file or directory not found: benchmarks/nothere.py"),
        (("shop.py",), "pytest on the current side selected none: no tests ran in "),
    ],
    ids=["all-deselected", "missing-file", "no-tests"],
)
def test_a_selection_of_no_test_is_exit_2_with_pytests_words(
    suite: Path, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    result = ab(suite, "--base", "main", *_reports(tmp_path, "empty"), "--", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr
    data = _agree(tmp_path, "empty", result.stdout, 2)
    assert result.stdout.startswith("perfgate: INCOMPLETE: the paired run could not start")
    assert any(said in line for line in data["incomplete"])  # type: ignore[attr-defined]
    no_worktrees_left(suite)
