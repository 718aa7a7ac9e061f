"""What the plugin costs a session that uses none of it: which modules it imports and which
per-test hooks it registers (bench/overhead.py measures the time). And that the lazy paths still
do the whole job once something needs them."""

from __future__ import annotations

import json
import textwrap

import pytest

#: written by the inner session's conftest as it ends: the perfgate modules it imported, and the
#: perfgate hook implementations of the per-test hooks
REPORTER = textwrap.dedent(
    """
    import json, sys

    PER_TEST = ("pytest_pycollect_makeitem", "pytest_itemcollected", "pytest_runtest_protocol",
                "pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown",
                "pytest_runtest_makereport", "pytest_runtest_logreport", "pytest_fixture_setup")

    def pytest_sessionfinish(session):
        hooks = {}
        for name in PER_TEST:
            for impl in getattr(session.config.hook, name).get_hookimpls():
                where = getattr(impl.plugin, "__module__", None) or impl.plugin_name
                if "perfgate" in impl.plugin_name or "perfgate" in str(where):
                    hooks.setdefault(name, []).append(impl.plugin_name)
        modules = sorted(m for m in sys.modules if m.startswith("pytest_perfgate"))
        with open("report.json", "w") as out:
            json.dump({"modules": modules, "hooks": hooks}, out)
    """
)

PLAIN_TESTS = textwrap.dedent(
    """
    import pytest

    def test_one():
        assert 1 + 1 == 2

    @pytest.mark.parametrize("n", [1, 2])
    def test_param(n, tmp_path):
        assert n

    class TestGroup:
        @pytest.mark.skip(reason="a marker that is not perfgate's")
        def test_skipped(self):
            pass
    """
)

#: modules a session that uses no perfgate feature must not import (the core, and the
#: subsystems beyond their pytest wiring and option tables)
NOT_IN_A_PLAIN_SESSION = (
    "pytest_perfgate._tracking",
    "pytest_perfgate.session",
    "pytest_perfgate.model",
    "pytest_perfgate.budgets",
    "pytest_perfgate.config",
    "pytest_perfgate.recorder",
    "pytest_perfgate.metrics",
    "pytest_perfgate.stats",
    "pytest_perfgate.units",
    "pytest_perfgate.measure",
    "pytest_perfgate.reports",
    "pytest_perfgate.gate",
    "pytest_perfgate.mongo.backends",
    "pytest_perfgate.mongo.capture",
    "pytest_perfgate.mongo.dbs",
    "pytest_perfgate.race.strategies",
    "pytest_perfgate.race.token",
    "pytest_perfgate.race.runner",
    "pytest_perfgate.load.fixture",
)


def run_reported(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, object]]:
    """A fresh interpreter (this one has imported everything already), reporting as it ends."""
    pytester.makeconftest(REPORTER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


@pytest.mark.parametrize("verbosity", ["-q", "-v"])  # -v: the session headers are made too
def test_a_plain_session_imports_no_core_and_runs_no_per_test_hook(pytester: pytest.Pytester, verbosity: str) -> None:
    pytester.makepyfile(test_plain=PLAIN_TESTS)
    result, report = run_reported(pytester, verbosity)
    result.assert_outcomes(passed=3, skipped=1)
    modules = report["modules"]
    assert isinstance(modules, list)
    loaded = [m for m in modules if any(m == name or m.startswith(name + ".") for name in NOT_IN_A_PLAIN_SESSION)]
    if verbosity == "-v":  # the header lines: how tests would be measured, which MongoDB backend
        loaded = [m for m in loaded if m not in ("pytest_perfgate.units", "pytest_perfgate.mongo.backends")]
    assert loaded == [], f"a session without budgets imported {loaded}"
    assert report["hooks"] == {}  # (pytest-benchmark is loaded: no fixture watcher either)


def test_a_budget_turns_the_per_test_hooks_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_budgeted="""
        import pytest

        @pytest.mark.perf_budget(max="10s")
        def test_budgeted():
            pass

        def test_plain():
            pass
        """
    )
    result, report = run_reported(pytester, "-q")
    result.assert_outcomes(passed=2)
    hooks = report["hooks"]
    assert isinstance(hooks, dict)
    assert hooks["pytest_runtest_makereport"] == ["perfgate-tracker"]
    assert hooks["pytest_runtest_logreport"] == ["perfgate-results"]
    assert "pytest_perfgate.session" in report["modules"]  # type: ignore[operator]


def test_perf_asked_for_in_the_body_of_the_only_measuring_test(pytester: pytest.Pytester, run_json) -> None:
    """Nothing collected needs the per-test hooks, but results are saved: they are on from the
    start, and a test that asks for ``perf`` in its body is recorded."""
    pytester.makepyfile(
        """
        def test_plain():
            pass

        def test_dynamic(request):
            perf = request.getfixturevalue("perf")
            perf(sum, range(10))
            perf.record("page_weight", 12_000, unit="B")
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=2)
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}
    assert list(tests) == ["test_dynamic"]
    assert tests["test_dynamic"]["mode"] == "perf"
    assert set(tests["test_dynamic"]["series"]) == {"time", "page_weight"}


def test_in_process_runs_one_after_another(pytester: pytest.Pytester, run_json) -> None:
    """pytester restores sys.modules after each in-process run, and the core is imported inside
    the run: the next run must not mix old and new modules (it would reject its own units)."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(median=("1ns", "10s"))
        def test_warns(perf):
            perf(sum, range(10))
        """
    )
    for _ in range(3):
        result, data = run_json()
        result.assert_outcomes(passed=1, warnings=1)
        assert [v["verdict"] for t in data["tests"] for v in t["verdicts"]] == ["warn"]


def test_evidence_rerun_stays_inside_output_capture(pytester: pytest.Pytester) -> None:
    """The budgets are judged (and a failing call re-run for its evidence) inside pytest's output
    capture, as the test body is: the re-run's prints do not reach the terminal."""
    pytester.makepyfile(
        """
        import pytest

        def noisy():
            print("NOISY-CALL")
            return sum(range(100))

        @pytest.mark.perf_budget(median="1ns")
        def test_slow(perf):
            perf(noisy)
        """
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--perfgate-max-time=10ms", "--perfgate-warmup=0", "--show-capture=no"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf budget exceeded: median*"])
    assert "NOISY-CALL" not in result.stdout.str()


def test_option_choices_named_twice_agree() -> None:
    """Declaring the options imports neither the backends nor the race strategies: their names
    are repeated there, and must stay the same."""
    from pytest_perfgate.mongo import backends
    from pytest_perfgate.mongo import plugin as mongo_plugin
    from pytest_perfgate.race import options as race_options
    from pytest_perfgate.race import strategies

    assert mongo_plugin.BACKENDS == backends.BACKENDS
    assert race_options.STRATEGIES == strategies.STRATEGIES


def test_race_summary_and_results_cross_xdist(pytester: pytest.Pytester, run_json) -> None:
    """Under pytest-xdist the controller runs no test (no fixture starts the hooks there): it
    still collects the workers' results and race reports."""
    pytester.makepyfile(
        test_race="""
        import pytest

        @pytest.mark.race(strategy="exhaustive", preemption_bound=None)
        def test_proof(race):
            seen = []

            def op(name):
                def run():
                    race.point(name)
                    seen.append(name)
                return run

            assert race.run(op("a"), op("b"), setup=seen.clear, invariant=lambda: None).complete

        def test_plain():
            pass
        """
    )
    result, data = run_json("-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*- perfgate race -*", "test_race.py::test_proof: all * interleavings explored*"])
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}
    assert list(tests) == ["test_proof"] and "race" in tests["test_proof"]["evidence"]


def test_subsystem_plugins_are_registered_with_the_core_and_can_be_blocked(pytester: pytest.Pytester) -> None:
    """They are registered right after the core (not through ``pytest_plugins``): under their
    module names, so ``-p no:<name>`` still leaves one out."""
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--help")
    for flag in ("--perfgate-save", "--perfgate-race-seed", "--perfgate-mongo-uri"):
        result.stdout.fnmatch_lines([f"*{flag}*"])
    blocked = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:pytest_perfgate.mongo.plugin", "--help")
    assert "--perfgate-race-seed" in blocked.stdout.str() and "--perfgate-mongo-uri" not in blocked.stdout.str()
    header = pytester.runpytest("-p", "no:cacheprovider")
    header.assert_outcomes(passed=1)
    header.stdout.fnmatch_lines(["perfgate: no perfgate.yml, rounds >= 5, max-time 1s"])
    assert "perfgate mongo" not in header.stdout.str()  # a session that uses no MongoDB fixture or option
