"""Plugin behaviour through real pytest sessions (pytester): outcomes and exact messages."""

from __future__ import annotations

from typing import Any

import pytest


def results_by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["nodeid"].split("::")[-1]: t for t in data.get("tests", [])}


BUDGETS = """
import time
import pytest

@pytest.mark.perf_budget(p95=("1ns", "10s"))
def test_warns(perf):
    perf(sum, range(10))

@pytest.mark.perf_budget(median=("1s", "10s"))
def test_passes(perf):
    assert perf(sum, range(10)) == 45

@pytest.mark.perf_budget(median="1ms")
def test_fails(perf):
    perf(time.sleep, 0.002)
"""


def test_pass_warn_fail_with_table_and_results(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(test_levels=BUDGETS)
    result, data = run_json()
    result.assert_outcomes(passed=2, failed=1, warnings=1)
    result.stdout.re_match_lines(
        [
            r"_+ test_fails _+",
            r"perf budget exceeded: median [0-9.]+ms exceeds critical 1ms \(\d+ rounds?\)",
        ]
    )
    result.stdout.re_match_lines(
        [
            r".*PerfBudgetWarning: perf budget: p95 .* exceeds target 1ns \(critical 10s; \d+ rounds x \d+ calls\)",
        ]
    )
    result.stdout.re_match_lines(
        [
            r"=+ perfgate =+",
            r"test +metric +measured +target +critical +verdict +basis",
            r"test_levels.py::test_fails +median +[0-9.]+ms +- +1ms +FAIL +\d+ rounds?",
            r"test_levels.py::test_warns +p95 .* +1ns +10s +WARN .*",
            r"test_levels.py::test_passes +median .* +1s +10s +pass .*",
            r"budgets: 1 pass, 1 warn, 1 fail \(3 tests\)",
            r"WARN 1 test past the target level \(not failing; --perfgate-strict makes these failures\)",
            r"results: .*results.json \(3 tests\)",
        ]
    )
    tests = results_by_name(data)
    assert data["schema"] == "perfgate-results" and data["schema_version"] == 1
    assert {k: t["outcome"] for k, t in tests.items()} == {
        "test_warns": "passed",
        "test_passes": "passed",
        "test_fails": "failed",
    }
    fails = tests["test_fails"]
    assert fails["mode"] == "perf"
    assert fails["series"]["time"]["loops"] == 1 and len(fails["series"]["time"]["values"]) >= 5
    assert min(fails["series"]["time"]["values"]) >= 0.002
    assert fails["spec"]["budgets"] == [
        {
            "metric": "median",
            "kind": "time",
            "target": None,
            "critical": 0.001,
            "higher_is_better": False,
            "source": "marker",
        }
    ]
    assert [v["verdict"] for v in tests["test_warns"]["verdicts"]] == ["warn"]
    meta = data["metadata"]
    assert {"created", "python", "platform", "cpu", "git", "ci", "settings"} <= set(meta)


def test_strict_makes_a_warning_fail(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(test_levels=BUDGETS)
    result, _ = run_json("--perfgate-strict", "-k", "warns")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [r"perf budget exceeded: p95 .* exceeds critical 10s|perf budget exceeded: p95 .* exceeds target 1ns.*"]
    )


def test_strict_from_ini(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(test_levels=BUDGETS)
    pytester.makeini("[pytest]\nperfgate_strict = true\n")
    result, _ = run_json("-k", "warns")
    result.assert_outcomes(failed=1)


BENCH_SLEEP = """
import time, pytest

@pytest.mark.perf_budget(median="1ms")
def test_bench(benchmark):
    benchmark.pedantic(time.sleep, args=(0.002,), rounds=3, iterations=1)
"""


def test_disabled_benchmark_is_not_checked_never_passed(
    pytester: pytest.Pytester, run_json, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(BENCH_SLEEP)
    result, data = run_json("--benchmark-disable")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.re_match_lines(
        [
            r"test_disabled_benchmark.*::test_bench +median +- +- +1ms +not checked +pytest-benchmark recorded no rounds: it is disabled .*"
        ]
    )
    assert results_by_name(data)["test_bench"]["verdicts"][0]["verdict"] == "not checked"


def test_benchmark_fixture_rounds_are_used(
    pytester: pytest.Pytester, run_json, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # pytest-benchmark turns itself off under xdist
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.perf_budget(median="1ms")
        def test_bench(benchmark):
            benchmark.pedantic(time.sleep, args=(0.002,), rounds=3, iterations=1)
        """
    )
    result, data = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r"perf budget exceeded: median [0-9.]+ms exceeds critical 1ms \(3 rounds\)"])
    bench = results_by_name(data)["test_bench"]
    assert bench["mode"] == "benchmark" and len(bench["series"]["time"]["values"]) == 3


def test_whole_test_call_is_one_sample(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.perf_budget(max="1ms")
        def test_slow():
            time.sleep(0.003)

        @pytest.mark.perf_budget(max="10s")
        def test_quick():
            pass
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines(
        [r"perf budget exceeded: max [0-9.]+ms exceeds critical 1ms \(1 sample: the whole test call\)"]
    )
    slow = results_by_name(data)["test_slow"]
    assert slow["mode"] == "call" and len(slow["series"]["time"]["values"]) == 1


def test_memory_failure_names_the_allocation_site(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest

        def build():
            blocks = [bytearray(1000) for _ in range(3000)]
            return len(blocks)

        @pytest.mark.perf_budget(mem_peak=("100kB", "1MB"))
        def test_mem(perf):
            assert perf(build) == 3000
        """
    )
    result, data = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r"perf budget exceeded: mem_peak 3\.\d+MB exceeds critical 1MB \(target 100kB\)",
            r"allocation sites at the largest observed point:",
            r"  #1 3\.\d+MB in \d+ blocks",
            r".*test_memory_failure_names_the_allocation_site.py:4( in \S+)?: blocks = \[bytearray\(1000\) for _ in range\(3000\)\]",
        ]
    )
    result.stdout.re_match_lines(
        [
            r"memory by function \(one re-run; peak 3\.\d+MB\):",
            r"  \((memray|tracemalloc profiler): .*\)",
            r"  function +inclusive peak +(own|self \(net\) +calls) +where",
            r"  -+ .*",
            r"  test_memory_failure_names_the_allocation_site\.build +3\.\d+MB .*test_memory_failure_names_the_allocation_site.py:3",
        ]
    )
    assert "where the time went" not in result.stdout.str()  # no time budget failed
    evidence = results_by_name(data)["test_mem"]["evidence"]["memory_profile"]
    assert evidence["peak"] >= 3_000_000 and evidence["peak_sites"][0]["stack"]


def test_time_failure_shows_where_the_time_went(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        test_slow="""
        import time, pytest

        def inner():
            time.sleep(0.003)

        def outer():
            inner()

        @pytest.mark.perf_budget(median="1ms")
        def test_slow(perf):
            perf(outer)
        """
    )
    result, data = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r"perf budget exceeded: median [0-9.]+ms exceeds critical 1ms \(\d+ rounds\)",
            r"where the time went \(pyinstrument, \d+ stack samples over \d+ re-run call\(s\), .* profiled\):",
            r"hot path: outer \d+% -> inner \d+% -> sleep \d+%",
        ]
    )
    assert "memory by function" not in result.stdout.str()
    tree = results_by_name(data)["test_slow"]["evidence"]["cpu_profile"]["tree"]
    assert tree[0]["function"] == "outer" and tree[0]["children"][0]["function"] == "inner"


def test_evidence_on_demand_for_passing_tests(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        test_ev="""
        import pytest

        @pytest.mark.perf_budget(median="10s", evidence="memory")
        def test_marker(perf):
            perf(lambda: [0] * 10000)

        def test_option(perf):
            perf(lambda: [0] * 10000)
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=2)
    tests = results_by_name(data)
    assert set(tests["test_marker"]["evidence"]) == {"memory_profile"}
    assert tests["test_option"]["evidence"] == {}
    result, data = run_json("--perfgate-evidence=all")
    tests = results_by_name(data)
    assert {"memory_profile", "cpu_profile"} <= set(tests["test_option"]["evidence"])


def test_memory_budget_on_whole_test_call(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest
        KEEP = []

        @pytest.mark.perf_budget(mem_peak="500kB")
        def test_leaky():
            KEEP.append(bytearray(2_000_000))
        """
    )
    result, _ = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r"perf budget exceeded: mem_peak 2(\.\d+)?MB exceeds critical 500kB",
            r"allocation sites still held at the end of the test \(use the perf fixture to see the sites at the peak\):",
            r"  #1 2(\.\d+)?MB in \d+ blocks",
            r".*KEEP.append\(bytearray\(2_000_000\)\)",
        ]
    )


KPI_FILE = """
kpis:
  api_response_time:
    median: {target: 1s, critical: 10s}
    max: {critical: 1ms}
"""


def test_kpi_levels_and_marker_wins(pytester: pytest.Pytester, run_json) -> None:
    pytester.makefile(".yml", perfgate=KPI_FILE)
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.perf_budget(kpi="api_response_time")
        def test_kpi(perf):
            perf(time.sleep, 0.002)

        @pytest.mark.perf_budget(kpi="api_response_time", max="10s")
        def test_override(perf):
            perf(time.sleep, 0.002)
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([r"perf budget exceeded: max [0-9.]+ms exceeds critical 1ms \(\d+ rounds\)"])
    spec = results_by_name(data)["test_override"]["spec"]
    assert spec["kpi"] == "api_response_time"
    assert {b["metric"]: (b["critical"], b["source"]) for b in spec["budgets"]} == {
        "median": (10.0, "kpi:api_response_time"),
        "max": (10.0, "marker"),
    }


def test_config_path_option_relative_to_invocation_dir(pytester: pytest.Pytester, run_json) -> None:
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "kpis.yml").write_text(KPI_FILE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(kpi="api_response_time")
        def test_kpi(perf):
            perf(int)
        """
    )
    result, _ = run_json("--perfgate-config=conf/kpis.yml")
    result.assert_outcomes(passed=1)


def test_module_marker_merges_with_the_test_marker(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.perf_budget(median="10s", max="1ns")

        @pytest.mark.perf_budget(max="10s")
        def test_a(perf):
            perf(int)
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=1)
    budgets = results_by_name(data)["test_a"]["spec"]["budgets"]
    assert {b["metric"]: b["critical"] for b in budgets} == {"median": 10.0, "max": 10.0}


def test_custom_metrics(pytester: pytest.Pytester, run_json) -> None:
    pytester.makefile(".yml", perfgate="metrics:\n  page_weight: {kind: size}\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(page_weight=("100kB", "400kB"), metrics={"hit_ratio": ("90%", "50%")})
        def test_page(perf):
            perf.record("page_weight", 412_000, unit="B")
            perf.record("hit_ratio", 0.93, higher_is_better=True)

        @pytest.mark.perf_budget(metrics={"bundle_js": "1MB"})
        def test_forgot_to_record(perf):
            pass
        """
    )
    result, data = run_json()
    result.assert_outcomes(failed=2)
    result.stdout.re_match_lines(
        [
            r"perf budget exceeded: page_weight 412kB exceeds critical 400kB \(target 100kB\)",
            r"  also: hit_ratio 93% within budget",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "perfgate: budget on 'bundle_js' but the test recorded no such metric (recorded: nothing);"
            " record it with perf.record('bundle_js', value)"
        ]
    )
    page = results_by_name(data)["test_page"]
    assert page["series"]["page_weight"]["values"] == [412000.0]
    assert page["series"]["hit_ratio"]["higher_is_better"] is True


def test_unbudgeted_perf_results_are_still_saved_and_table_is_quiet(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        def test_timed(perf):
            perf(int)

        def test_plain():
            pass
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=2)
    assert "budgets:" not in result.stdout.str()
    assert list(results_by_name(data)) == ["test_timed"]


def test_unbudgeted_benchmark_and_dynamic_perf_are_saved(
    pytester: pytest.Pytester, run_json, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # pytest-benchmark turns itself off under xdist
    pytester.makepyfile(
        """
        def test_bench(benchmark):
            benchmark(sum, range(10))

        def test_dynamic(request):
            request.getfixturevalue("perf")(sum, range(10))
        """
    )
    result, data = run_json()
    result.assert_outcomes(passed=2)
    tests = results_by_name(data)
    assert tests["test_bench"]["mode"] == "benchmark" and len(tests["test_bench"]["series"]["time"]["values"]) >= 5
    assert tests["test_dynamic"]["mode"] == "perf"


def test_no_budgets_no_save_no_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "= perfgate =" not in result.stdout.str()


def test_perf_called_twice(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        def test_twice(perf):
            perf(int)
            perf(int)
        """
    )
    result, _ = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*MeasurementError: perf(...) was already called in this test; time one operation per test*"]
    )


def test_failing_test_body_keeps_its_own_failure(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(median="1ns")
        def test_broken(perf):
            perf(int)
            assert 1 == 2
        """
    )
    result, data = run_json()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    assert "perf budget exceeded" not in result.stdout.str()
    broken = results_by_name(data)["test_broken"]
    assert broken["outcome"] == "failed" and broken["verdicts"] == []


def test_skipped_budgeted_test_is_recorded_as_skipped(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.skip(reason="not today")
        @pytest.mark.perf_budget(median="1ms")
        def test_skipped(perf):
            perf(int)
        """
    )
    result, data = run_json()
    result.assert_outcomes(skipped=1)
    assert results_by_name(data)["test_skipped"]["outcome"] == "skipped"


def test_disable_runs_without_judging(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.perf_budget(median="1ns")
        def test_fast(perf):
            assert perf(lambda: 7) == 7
        """
    )
    result, _ = run_json("--perfgate-disable")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["perfgate: disabled (--perfgate-disable)*"])


def test_xdist_results_from_every_worker_end_up_in_one_file(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(12))
        @pytest.mark.perf_budget(median="10s")
        def test_many(perf, n):
            perf(sum, range(n))

        @pytest.mark.perf_budget(max="1ns")
        def test_over():
            pass
        """
    )
    result, data = run_json("-n", "2")
    result.assert_outcomes(passed=12, failed=1)
    names = sorted(t["nodeid"].split("::")[-1] for t in data["tests"])
    assert names == sorted([f"test_many[{n}]" for n in range(12)] + ["test_over"])
    result.stdout.re_match_lines([r"budgets: 12 pass, 1 fail \(13 tests\)", r"results: .* \(13 tests\)"])


def test_results_file_that_cannot_be_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_t(perf):\n    perf(int)\n")
    (pytester.path / "taken").mkdir()
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-save=taken", "--perfgate-max-time=10ms")
    # checked before any test runs (issue 16): no figure is measured only to be lost at the end
    result.stderr.re_match_lines([r"ERROR: perfgate: taken: is a directory: expected a file path for the results file"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# --------------------------------------------------------------------------- bad input

BAD_MARKERS = [
    ('perf_budget(p97="1ms")', "unknown metric 'p97'; accepted: "),
    (
        'perf_budget(p95="2 parsecs")',
        "'p95': '2 parsecs' is not a valid time (unknown unit 'parsecs'); accepted: a number of seconds or a string",
    ),
    ('perf_budget(p95="-3ms")', "'p95': '-3ms' is not a valid time (negative)"),
    (
        'perf_budget(p95=("5ms", "1ms"))',
        "'p95': target 5ms is above critical 1ms; the target (warn) level must be at or below the critical (fail) level",
    ),
    ('perf_budget(mem_peak="lots")', "'mem_peak': 'lots' is not a valid size"),
    ('perf_budget(kpi="nope")', "unknown KPI 'nope': no perfgate.yml was found"),
    ('perf_budget("200ms")', "positional arguments are not accepted"),
    (
        'perf_budget(evidence="heap")',
        "evidence= unknown evidence 'heap'; accepted: memory, cpu, memory-native, all, none",
    ),
]


@pytest.mark.parametrize(("marker", "message"), BAD_MARKERS)
def test_bad_marker_is_a_collection_error_naming_the_test(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        def test_fine():
            pass

        @pytest.mark.{marker}
        def test_budgeted(perf):
            perf(int)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"perf_budget: test_bad.py::test_budgeted: {message}*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_second_marker_on_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_twice="""
        import pytest

        @pytest.mark.perf_budget(p95="1ms")
        @pytest.mark.perf_budget(median="1ms")
        def test_two(perf):
            perf(int)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "perf_budget: test_twice.py::test_two: perf_budget is given 2 times on test_twice.py::test_two; merge them into one marker"
        ]
    )


def test_unknown_kpi_with_config_lists_known(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", perfgate=KPI_FILE)
    pytester.makepyfile(test_k='import pytest\n@pytest.mark.perf_budget(kpi="api")\ndef test_k():\n    pass\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["perf_budget: test_k.py::test_k: unknown KPI 'api'; KPIs in *perfgate.yml: api_response_time"]
    )


def test_mem_peak_with_benchmark_fixture_is_rejected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mb='import pytest\n@pytest.mark.perf_budget(mem_peak="1MB")\ndef test_b(benchmark):\n    benchmark(int)\n'
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["perf_budget: test_mb.py::test_b: mem_peak cannot be measured with pytest-benchmark's 'benchmark' fixture*"]
    )


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("kpis: [1, 2", "ERROR: perfgate: */perfgate.yml: invalid YAML (line 1, column 12: expected ',' or ']'*"),
        (
            "kpis: {api: {p95: 2 parsecs}}",
            "ERROR: perfgate: */perfgate.yml: kpis.api.p95: '2 parsecs' is not a valid time*",
        ),
        ("kpi: {}", "ERROR: perfgate: */perfgate.yml: unknown section(s) kpi; accepted: gate, kpis, metrics"),
    ],
)
def test_bad_config_is_a_usage_error(pytester: pytest.Pytester, yaml_text: str, message: str) -> None:
    pytester.makefile(".yml", perfgate=yaml_text)
    pytester.makepyfile("def test_t():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_config_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_t():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-config=nowhere.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: *nowhere.yml: no such file"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--perfgate-max-time=soon"], "*argument --perfgate-max-time: 'soon' is not a valid time*"),
        (["--perfgate-min-rounds=0"], "*argument --perfgate-min-rounds: '0' must be at least 1"),
        (["--perfgate-min-rounds=many"], "*argument --perfgate-min-rounds: 'many' is not a whole number*"),
        (
            ["--perfgate-evidence=heap"],
            "*argument --perfgate-evidence: unknown evidence 'heap'; accepted: memory, cpu, memory-native, instructions, all, none",
        ),
    ],
)
def test_bad_option_values(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_t():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperfgate_max_time = forever\n")
    pytester.makepyfile("def test_t():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: ini option perfgate_max_time: 'forever' is not a valid time*"])


def test_cli_value_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperfgate_min_rounds = 3\n")
    pytester.makepyfile("def test_t():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-min-rounds=7")
    result.stdout.fnmatch_lines(["perfgate: no perfgate.yml, rounds >= 7, max-time 1s"])
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["perfgate: no perfgate.yml, rounds >= 3, max-time 1s"])


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('import pytest\n@pytest.mark.perf_budget(max="10s")\ndef test_t():\n    pass\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.perf_budget(p95='200ms'*"])


GATED = """
import os, time

def test_work(perf):
    perf(time.sleep, float(os.environ.get("WORK_SECONDS", "0.001")))
"""


def test_in_pytest_gate_fails_the_session_on_a_regression(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_perfgate.cli import main

    pytester.makepyfile(test_gated=GATED)
    # Only a gross change may fail here. On a starved CI runner the median of 1 ms sleeps can come
    # out several times longer (each wake-up waits for a CPU): an unchanged run must stay below the
    # 1000% threshold, and one such baseline run among five must not make the 100x slower run
    # insignificant (with three runs, t on 2 degrees of freedom needs the change to be 8 spreads).
    pytester.makefile(".yml", perfgate="gate: {max_regression: 1000%, warn_regression: 500%}\n")
    store = pytester.path / "baselines"
    for i in range(5):
        result = pytester.runpytest(
            "-p", "no:cacheprovider", f"--perfgate-save=run{i}.json", "--perfgate-max-time=20ms"
        )
        result.assert_outcomes(passed=1)
        assert main(["baseline", "promote", str(pytester.path / f"run{i}.json"), "--to", str(store)]) == 0
    unchanged = pytester.runpytest("-p", "no:cacheprovider", f"--perfgate-compare={store}", "--perfgate-max-time=20ms")
    assert unchanged.ret == pytest.ExitCode.OK  # also when this runner's five runs vary too much to judge
    (headline,) = [line for line in unchanged.outlines if line.startswith("perfgate: ") and "baseline of" in line]
    assert headline.startswith(("perfgate: PASSED (1 unchanged)", "perfgate: NOT JUDGED: the one time comparison"))
    assert headline.endswith("; baseline of 5 runs")
    monkeypatch.setenv("WORK_SECONDS", "0.1")  # 100x
    slow = pytester.runpytest(
        "-p", "no:cacheprovider", f"--perfgate-compare={store}", "--perfgate-max-time=50ms", "--perfgate-html=gate.html"
    )
    slow.assert_outcomes(passed=1)  # the test itself passed: it is the gate that fails the session
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    slow.stdout.fnmatch_lines(["perfgate: FAILED: 1 regression*"])
    page = (pytester.path / "gate.html").read_text()
    assert 'id="gate-headline"' in page and "regression" in page
    assert "Where the time went" in page  # with --perfgate-compare every timed test keeps a CPU profile


def test_in_pytest_gate_with_a_bad_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gated=GATED)
    (pytester.path / "broken.json").write_text("{")
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-compare=broken.json", "--perfgate-max-time=10ms")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["error: *broken.json: is not valid JSON*"])


TIMED = """
import time

def test_bench(benchmark):
    benchmark(time.sleep, 0.0001)

def test_pedantic(benchmark):
    benchmark.pedantic(sum, args=(range(10),), rounds=7, iterations=3)

def test_perf(perf):
    perf(sum, range(100))

def test_plain():
    pass
"""


@pytest.mark.parametrize("how", [("--perfgate-save=out.json",), ("-v",)], ids=["save", "verbose"])
def test_session_summary_shows_every_timed_tests_median_without_budgets(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: tuple[str, ...]
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # else pytest-benchmark disables itself in here
    pytester.makepyfile(test_timed=TIMED)
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-max-time=0.05", *how)
    result.assert_outcomes(passed=4)
    result.stdout.re_match_lines(
        [
            r"timings: median time per call of 3 tests$",
            r"test_timed\.py::test_bench     median \d+(\.\d+)?[um]s +\(\d+ rounds, pytest-benchmark\)$",
            r"test_timed\.py::test_pedantic  median \d+(\.\d+)?[nu]s +\(7 rounds x 3 calls, pytest-benchmark\)$",
            r"test_timed\.py::test_perf      median \d+(\.\d+)?[nu]s +\(\d+ rounds x \d+ calls, perf\)$",
        ]
    )
    assert "test_plain  median" not in result.stdout.str()  # not timed: no budget, no timing fixture


def test_session_summary_shows_no_timings_without_save_or_verbose(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_timed=TIMED)
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-max-time=0.05")
    result.assert_outcomes(passed=4)
    assert "timings:" not in result.stdout.str()
