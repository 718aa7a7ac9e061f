from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfgate.budgets import BudgetResult, Verdict
from pytest_perfgate.cli import main
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.merge import merge_files, worse_outcome
from pytest_perfgate.model import RunResult, Series, TestResult, save_results
from pytest_perfgate.units import Kind


def _shard(path: Path, index: int, names: list[str]) -> Path:
    tests = tuple(TestResult(n, series={"time": Series("time", Kind.TIME, (0.1, 0.2))}) for n in names)
    return save_results(path, RunResult({"created": f"t{index}", "ci": {"CI_NODE_INDEX": str(index)}}, tests))


def test_shards_merge_losing_nothing(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.json", 1, ["t::a", "t::b"])
    b = _shard(tmp_path / "b.json", 2, ["t::c"])
    merged = merge_files([a, b])
    assert sorted(t.nodeid for t in merged.tests) == ["t::a", "t::b", "t::c"]
    assert merged.by_nodeid()["t::c"].series["time"].values == (0.1, 0.2)
    assert [(s["source"], s["tests"], s["node_index"]) for s in merged.metadata["shards"]] == [
        (str(a), 2, "1"),
        (str(b), 1, "2"),
    ]


def test_overlapping_shards_are_rejected(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.json", 1, ["t::a"])
    b = _shard(tmp_path / "b.json", 2, ["t::b", "t::a"])
    with pytest.raises(ResultsFileError, match=rf"{b}: test 't::a' is also in {a} and both record 'time': a test may"):
        merge_files([a, b])
    with pytest.raises(ResultsFileError, match="also in"):
        merge_files([a, a])


def test_nothing_to_merge_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="no results files to merge"):
        merge_files([])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultsFileError, match=r"bad.json: is not valid JSON"):
        merge_files([tmp_path / "bad.json"])


# ----------------------------------------------------------------- a timed run and a counted run

FINGERPRINT = {"python": "3.11.7", "valgrind": "3.19.0", "hash_seed": "0"}


def _timed(path: Path, tests: list[TestResult]) -> Path:
    return save_results(path, RunResult({"created": "timed", "ci": {"CI_NODE_INDEX": "1"}}, tuple(tests)))


def _counted(path: Path, tests: list[TestResult], fingerprint: dict[str, str] | None = None) -> Path:
    metadata = {"created": "counted", "fingerprint": fingerprint or FINGERPRINT}
    return save_results(path, RunResult(metadata, tuple(tests)))


def _series(**values: tuple[float, ...]) -> dict[str, Series]:
    kinds = {"time": Kind.TIME, "alloc_bytes": Kind.SIZE, "hit_ratio": Kind.RATIO}
    return {name: Series(name, kinds.get(name, Kind.COUNT), v) for name, v in values.items()}


def _verdict(metric: str, verdict: Verdict) -> BudgetResult:
    return BudgetResult(metric, Kind.COUNT, 1.0, 2.0, 3.0, verdict, 1)


def test_a_timed_and_a_counted_run_of_one_suite_merge_into_one_test(tmp_path: Path) -> None:
    timed = _timed(
        tmp_path / "shard-1.json",
        [
            TestResult(
                "t::a",
                mode="perf",
                duration=0.5,
                series=_series(time=(0.1, 0.2)),
                verdicts=(_verdict("p95", Verdict.PASS),),
                evidence={"note": "timed"},
            ),
            TestResult("t::only_timed", series=_series(time=(0.3,))),
        ],
    )
    counted = _counted(
        tmp_path / "counts-1.json",
        [
            TestResult(
                "t::a",
                outcome="failed",
                mode="perf",
                duration=9.0,
                series=_series(instructions=(1000.0,), alloc_blocks=(3.0,), alloc_bytes=(96.0,)),
                # a budget on a time is not checked in a counted session: the timed run's verdict stays
                verdicts=(_verdict("p95", Verdict.NOT_CHECKED), _verdict("instructions", Verdict.FAIL)),
                evidence={"error": "budget on instructions"},
            )
        ],
    )
    merged = merge_files([timed, counted])
    a = merged.by_nodeid()["t::a"]
    assert sorted(a.series) == ["alloc_blocks", "alloc_bytes", "instructions", "time"]
    assert a.series["time"].values == (0.1, 0.2) and a.series["instructions"].values == (1000.0,)
    assert a.outcome == "failed"  # the worse of passed and failed
    assert a.duration == 0.5  # the timed run's (the counted one ran under the simulator)
    assert [(v.metric, v.verdict) for v in a.verdicts] == [("p95", Verdict.PASS), ("instructions", Verdict.FAIL)]
    assert dict(a.evidence) == {"note": "timed", "error": "budget on instructions"}
    assert [t.nodeid for t in merged.tests] == ["t::a", "t::only_timed"]
    # the metadata: the first file's, the parts listed, the counted file's fingerprint kept
    assert merged.metadata["created"] == "timed" and merged.metadata["fingerprint"] == FINGERPRINT
    assert [(s["source"], s["tests"], s.get("counted")) for s in merged.metadata["shards"]] == [
        (str(timed), 2, None),
        (str(counted), 1, True),
    ]
    # the order of the files does not matter for the test
    again = merge_files([counted, timed]).by_nodeid()["t::a"]
    assert sorted(again.series) == sorted(a.series) and again.outcome == "failed" and again.duration == 0.5
    assert [(v.metric, v.verdict) for v in again.verdicts] == [("p95", Verdict.PASS), ("instructions", Verdict.FAIL)]


@pytest.mark.parametrize(
    ("a", "b", "worse"),
    [
        ("passed", "failed", "failed"),
        ("error", "failed", "failed"),
        ("passed", "error", "error"),
        ("crashed", "failed", "crashed"),
        ("skipped", "passed", "passed"),
        ("skipped", "skipped", "skipped"),
        ("passed", "xpassed", "xpassed"),  # a word perfgate does not know ranks with error
    ],
)
def test_the_merged_outcome_is_the_worse(a: str, b: str, worse: str) -> None:
    assert worse_outcome(a, b) == worse and worse_outcome(b, a) == worse


def test_a_kpi_the_counted_session_recorded_too_is_the_timed_runs(tmp_path: Path) -> None:
    timed = _timed(tmp_path / "shard-1.json", [TestResult("t::a", series=_series(time=(0.1,), hit_ratio=(0.9,)))])
    counted = _counted(
        tmp_path / "counts-1.json", [TestResult("t::a", series=_series(instructions=(5.0,), hit_ratio=(0.5,)))]
    )
    for files in ([timed, counted], [counted, timed]):
        merged = merge_files(files)
        a = merged.by_nodeid()["t::a"]
        assert sorted(a.series) == ["hit_ratio", "instructions", "time"] and a.series["hit_ratio"].values == (0.9,)
        shard = next(s for s in merged.metadata["shards"] if s["source"] == str(counted))
        assert shard["series_kept_from_the_timed_run"] == {"t::a": ["hit_ratio"]}


def test_overlapping_series_of_one_test_are_rejected(tmp_path: Path) -> None:
    timed = _timed(tmp_path / "shard-1.json", [TestResult("t::a", series=_series(time=(0.1,)))])
    counted = _counted(tmp_path / "counts-1.json", [TestResult("t::a", series=_series(instructions=(5.0,)))])
    # two counted files holding the same test's counts (a shard counted twice)
    twice = _counted(tmp_path / "counts-2.json", [TestResult("t::a", series=_series(instructions=(6.0,)))])
    with pytest.raises(ResultsFileError) as caught:
        merge_files([counted, twice])
    assert str(caught.value) == (
        f"{twice}: test 't::a' is also in {counted} and both record 'instructions': a test may be in two files "
        "only when their series are disjoint (a timed run and a counted run of one suite); shards must not "
        "overlap (or the same file was given twice)"
    )
    # a third file with the test once it was joined: its counts overlap the joined test's
    with pytest.raises(ResultsFileError, match=rf"{twice}: test 't::a' is also in {timed} and {counted} and both"):
        merge_files([timed, counted, twice])
    # a counter in a timed file (say, --perfgate-allocations) and in the counted one: never taken one over the other
    allocations = _timed(
        tmp_path / "alloc.json", [TestResult("t::a", series=_series(time=(0.1,), alloc_blocks=(1.0,)))]
    )
    counts = _counted(tmp_path / "c.json", [TestResult("t::a", series=_series(alloc_blocks=(2.0,)))])
    with pytest.raises(ResultsFileError, match=r"both record 'alloc_blocks': a test may be in two files only"):
        merge_files([allocations, counts])


def test_evidence_clash_and_fingerprints_that_differ(tmp_path: Path) -> None:
    timed = _timed(tmp_path / "shard-1.json", [TestResult("t::a", series=_series(time=(0.1,)), evidence={"k": 1})])
    counted = _counted(
        tmp_path / "counts-1.json", [TestResult("t::a", series=_series(instructions=(5.0,)), evidence={"k": 2})]
    )
    with pytest.raises(ResultsFileError) as caught:
        merge_files([timed, counted])
    assert str(caught.value) == (
        f"{counted}: test 't::a' is also in {timed} and both hold evidence 'k' with different values: which one "
        "is the test's is not for perfgate merge to guess"
    )
    # errors in both runs: both texts kept, each after its file
    timed = _timed(
        tmp_path / "shard-1.json", [TestResult("t::a", series=_series(time=(0.1,)), evidence={"error": "x"})]
    )
    counted = _counted(
        tmp_path / "counts-1.json", [TestResult("t::a", series=_series(instructions=(5.0,)), evidence={"error": "y"})]
    )
    assert merge_files([timed, counted]).tests[0].evidence["error"] == f"{timed}: x\n{counted}: y"
    # two counted shards measured in different environments
    other = _counted(
        tmp_path / "counts-2.json",
        [TestResult("t::b", series=_series(instructions=(5.0,)))],
        {**FINGERPRINT, "python": "3.12"},
    )
    with pytest.raises(ResultsFileError) as caught:
        merge_files([counted, other])
    assert str(caught.value) == (
        f"{other}: its environment fingerprint differs from {counted}'s (python): counts taken in two "
        "environments cannot be one run"
    )


def test_the_cli_says_how_many_tests_were_joined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timed = _timed(tmp_path / "shard-1.json", [TestResult(n, series=_series(time=(0.1,))) for n in ("t::a", "t::b")])
    counted = _counted(tmp_path / "counts-1.json", [TestResult("t::a", series=_series(instructions=(5.0,)))])
    out = tmp_path / "results.json"
    assert main(["merge", str(timed), str(counted), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 2 tests from 2 files (1 timed and counted)\n"
    assert main(["merge", str(timed), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 2 tests from 1 files\n"
