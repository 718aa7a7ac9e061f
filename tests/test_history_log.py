"""The long history a directory store keeps: every promotion appends one record, under a lock;
parts roll and are still read; nothing is dropped silently; a corrupt file is an error naming it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.results import make_run, make_test
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.history.analyse import judge, read, rebuild
from pytest_perfgate.history.log import LOG_NAME, append, figures, parts, read_log, run_environment, run_origin
from pytest_perfgate.history.model import SeriesKey, SeriesKind
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.store.files import DirectoryStore
from pytest_perfgate.units import Kind

KEY = SeriesKey("t::a", "median", "s", SeriesKind.TIMING)


def _run(level: float, i: int = 0, *, cpu: str = "Xeon") -> RunResult:
    counted = TestResult(
        "t::b", series={"instructions": Series("instructions", Kind.COUNT, (1000.0 + i,) * 3, source="callgrind")}
    )
    metadata = {
        "created": f"2026-12-01T00:00:{i % 60:02d}+00:00",
        "git": {"commit": f"{i:040x}", "branch": "main"},
        "cpu": cpu,
    }
    return RunResult(metadata, (make_test("t::a", [level, level * 1.1, level * 0.9]), counted))


def test_each_promotion_appends_one_record_that_outlives_the_pruned_runs(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    for i in range(12):
        store.promote(_run(float(i + 1), i), keep=3)
        assert store.last_history is not None and store.last_history.seq == i + 1
    assert len(list(tmp_path.glob("run-*.summary.json"))) == 3
    log = read_log(tmp_path)
    assert log is not None and log.notes == []
    assert [r.seq for r in log.runs] == list(range(1, 13))
    assert [r.stored_run for r in log.runs] == list(range(1, 13))
    assert log.runs[4].commit == f"{4:040x}" and log.runs[4].ref == "main"
    assert log.runs[4].time == "2026-12-01T00:00:04+00:00"
    cols = log.series[KEY]
    assert cols.centre == [float(i + 1) for i in range(12)]  # the median of [l, 1.1 l, 0.9 l]
    assert cols.count == [3] * 12 and cols.spread[0] == pytest.approx(0.1, rel=1e-2)
    counted = log.series[SeriesKey("t::b", "instructions", "", SeriesKind.COUNTER)]
    assert counted.centre == [1000.0 + i for i in range(12)]


def test_origin_prefers_gitlab_variables_and_environment_merges_the_fingerprint() -> None:
    run = RunResult(
        {
            "created": "2026-12-01T00:00:00+00:00",
            "git": {"commit": "local", "branch": "wip"},
            "ci": {"CI_COMMIT_SHA": "abc", "CI_COMMIT_REF_NAME": "main"},
            "cpu": "Xeon",
            "python": "3.11.7",
            "fingerprint": {"python": "3.11.8", "valgrind": "3.19.0", "hash_seed": None},
        },
        (),
    )
    assert run_origin(run) == ("abc", "main", "2026-12-01T00:00:00+00:00")
    env = run_environment(run)
    assert env is not None and env.as_dict() == {"cpu": "Xeon", "python": "3.11.8", "valgrind": "3.19.0"}
    assert run_environment(RunResult({}, ())) is None


def test_skipped_and_errored_tests_and_non_finite_samples_are_left_out() -> None:
    run = make_run(
        [
            make_test("t::ok", [1.0, float("nan"), 3.0]),
            make_test("t::over_budget", [5.0], outcome="failed"),
            make_test("t::setup", [1.0], outcome="error"),
            make_test("t::skip", [1.0], outcome="skipped"),
        ]
    )
    assert [(k.test, c, n) for k, c, _, n in figures(run)] == [("t::ok", 2.0, 2), ("t::over_budget", 5.0, 1)]


def test_a_rolled_part_is_compressed_and_still_read(tmp_path: Path) -> None:
    notes: list[str] = []
    for i in range(20):
        notes.extend(append(tmp_path, _run(float(i + 1), i), stored_run=i + 1, roll_bytes=1200).notes)
    numbers = [k for k, _ in parts(tmp_path)]
    assert len(numbers) >= 2 and numbers == list(range(1, len(numbers) + 1))
    assert notes[0] == "history rolled: history.jsonl (part 1) compressed to history-000001.jsonl.gz; nothing dropped"
    assert len(notes) == len(numbers)
    first = parts(tmp_path)[0][1]
    assert json.loads(gzip.decompress(first.read_bytes()).split(b"\n")[0])["part"] == 1
    log = read_log(tmp_path)
    assert log is not None and [r.seq for r in log.runs] == list(range(1, 21))
    assert log.series[KEY].centre == [float(i + 1) for i in range(20)]
    assert len(log.files) == len(parts(tmp_path)) + 1


def _series_run(i: int, names: list[str]) -> RunResult:
    return RunResult({"git": {"commit": f"{i:040x}"}}, tuple(make_test(n, [float(i + 1)] * 3) for n in names))


def test_a_record_names_its_series_only_when_they_change_and_reads_back_the_same(tmp_path: Path) -> None:
    names = ["t::a", "t::b"]
    for i in range(6):
        append(tmp_path, _series_run(i, names if i != 3 else [*names, "t::c"]), stored_run=i + 1)
    records = [json.loads(line) for line in (tmp_path / LOG_NAME).read_bytes().splitlines()[1:]]
    # the first record, the one with a new series and the one after it (back to two) name theirs
    assert ["s" in r for r in records] == [True, False, False, True, True, False]
    assert [r["n"] for r in records] == [3] * 6  # every count the same: one number
    log = read_log(tmp_path)
    assert log is not None and [r.seq for r in log.runs] == [1, 2, 3, 4, 5, 6]
    by_test = {k.test: c for k, c in log.series.items()}
    assert by_test["t::a"].centre == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and by_test["t::c"].at == [3]
    assert by_test["t::b"].count == [3] * 6


def test_a_version_1_history_is_read_and_appended_to_in_its_own_version(tmp_path: Path) -> None:
    names = ["t::a"]
    for i in range(3):
        append(tmp_path, _series_run(i, names))
    lines = (tmp_path / LOG_NAME).read_bytes().splitlines()
    header = json.loads(lines[0])
    header["schema_version"] = 1
    records = [json.loads(line) for line in lines[1:]]
    for r in records:  # what version 1 wrote: every record names its series, counts as a list
        r["s"], r["n"] = [1], [3]
    v1 = [json.dumps(header, separators=(",", ":")), *(json.dumps(r, separators=(",", ":")) for r in records)]
    (tmp_path / LOG_NAME).write_text("\n".join(v1) + "\n")
    append(tmp_path, _series_run(3, names))
    last = json.loads((tmp_path / LOG_NAME).read_bytes().splitlines()[-1])
    assert last["s"] == [1] and last["n"] == [3]  # an older perfgate can still read the part
    log = read_log(tmp_path)
    assert log is not None and log.series[next(iter(log.series))].centre == [1.0, 2.0, 3.0, 4.0]


def test_reading_after_a_run_reads_only_the_parts_and_records_after_it(tmp_path: Path) -> None:
    """Runs after 14 of 20, parts rolled on the way: the series defined before (in a part not read)
    are known, and a record without ``s`` after the ones skipped is read with the right series."""
    for i in range(20):
        append(tmp_path, _series_run(i, ["t::a"] if i < 5 else ["t::a", "t::b"]), roll_bytes=900)
    assert len(parts(tmp_path)) >= 3
    whole = read_log(tmp_path)
    tail = read_log(tmp_path, after=14)
    assert whole is not None and tail is not None
    assert [r.seq for r in tail.runs] == [15, 16, 17, 18, 19, 20]
    assert {k.test: c.centre for k, c in tail.series.items()} == {
        k.test: c.centre[-6:] for k, c in whole.series.items()
    }
    assert len(tail.files) < len(whole.files) and tail.position == whole.position
    assert read_log(tmp_path, after=20) is not None and read_log(tmp_path, after=20).runs == []  # type: ignore[union-attr]


def test_a_position_tells_appended_and_rolled_histories_from_replaced_ones(tmp_path: Path) -> None:
    from pytest_perfgate.history.log import changed_since

    for i in range(4):
        append(tmp_path, _series_run(i, ["t::a"]))
    log = read_log(tmp_path)
    assert log is not None and log.position is not None
    position = log.position
    append(tmp_path, _series_run(4, ["t::a"]))
    assert changed_since(tmp_path, position) == ""  # appended to
    append(tmp_path, _series_run(5, ["t::a"]), roll_bytes=10)
    assert [k for k, _ in parts(tmp_path)] == [1] and changed_since(tmp_path, position) == ""  # rolled
    other = tmp_path / "other"
    other.mkdir()
    for i in range(6):
        append(other, _series_run(i + 1, ["t::a"]))
    (other / LOG_NAME).replace(tmp_path / LOG_NAME)  # replaced: part 2 gone, part 1 still there
    assert changed_since(tmp_path, position) == "part 1 does not begin with the runs judged"


def test_a_leftover_part_of_an_interrupted_roll_is_not_read_twice(tmp_path: Path) -> None:
    for i in range(3):
        append(tmp_path, _run(1.0, i))
    # a roll that wrote part 1 and died before it replaced history.jsonl
    (tmp_path / "history-000001.jsonl.gz").write_bytes(gzip.compress((tmp_path / LOG_NAME).read_bytes()))
    log = read_log(tmp_path)
    assert log is not None and [r.seq for r in log.runs] == [1, 2, 3]


def test_an_incomplete_last_record_is_skipped_by_readers_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    for i in range(3):
        append(tmp_path, _run(1.0, i))
    with open(tmp_path / LOG_NAME, "ab") as handle:
        handle.write(b'{"seq":4,"run":null,"comm')
    log = read_log(tmp_path)
    assert log is not None and [r.seq for r in log.runs] == [1, 2, 3]
    assert log.notes == [f"{tmp_path / LOG_NAME}: an incomplete last record (being appended, or an interrupted "
                         "promotion) was not read"]  # fmt: skip
    done = append(tmp_path, _run(2.0, 4))
    assert done.seq == 4 and "cut off an incomplete last record (25 bytes)" in done.notes[0]
    log = read_log(tmp_path)
    assert log is not None and [r.seq for r in log.runs] == [1, 2, 3, 4] and log.notes == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines.__setitem__(2, b"{not json"), r"history\.jsonl:3: is not valid JSON"),
        (lambda lines: lines.__delitem__(2), r"history\.jsonl:3: seq 3 does not follow 1"),
        (lambda lines: lines.__setitem__(0, b'{"schema":"perfgate-results"}'), r"history\.jsonl:1: not a perfgate"),
        (
            lambda lines: lines.__setitem__(0, lines[0].replace(b'"schema_version":2', b'"schema_version":7')),
            r"schema_version 7 is not supported",
        ),
    ],
)
def test_a_corrupt_history_is_an_error_naming_file_and_line(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        append(tmp_path, _run(1.0, i))
    lines = (tmp_path / LOG_NAME).read_bytes().split(b"\n")
    damage(lines)
    (tmp_path / LOG_NAME).write_bytes(b"\n".join(lines))
    with pytest.raises(ResultsFileError, match=message):
        read_log(tmp_path)
    before = (tmp_path / LOG_NAME).read_bytes()
    with pytest.raises(ResultsFileError, match=r"history\.jsonl:[13]: "):  # and the writer appends nothing to it
        append(tmp_path, _run(1.0, 9))
    assert (tmp_path / LOG_NAME).read_bytes() == before


def test_concurrent_promotions_from_processes_all_reach_the_history(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_history_log import _run
        from pytest_perfgate.store.files import DirectoryStore
        worker = int(sys.argv[1])
        for i in range(6):
            DirectoryStore({str(tmp_path)!r}).promote(_run(float(worker * 100 + i), worker * 100 + i), keep=4)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    log = read_log(tmp_path)
    assert log is not None and log.notes == []
    assert [r.seq for r in log.runs] == list(range(1, 25))
    assert sorted(r.stored_run or 0 for r in log.runs) == list(range(1, 25))
    assert sorted(log.series[KEY].centre) == sorted(float(w * 100 + i) for w in range(4) for i in range(6))


def test_a_directory_without_history_is_judged_from_its_stored_runs_and_can_be_rebuilt(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    for i in range(8):
        store.promote(_run(1.0 if i < 4 else 2.0, i), keep=10, history=False)
    assert not (tmp_path / LOG_NAME).exists()
    log = read(tmp_path)
    assert len(log.runs) == 8 and "no history.jsonl: judged the 8 stored run(s) only" in log.notes[0]
    history = judge(log)
    assert [cp.index for cp in history.get("t::a", "median").change_points] == [4]  # type: ignore[union-attr]
    assert rebuild(tmp_path) == 8
    again = read(tmp_path)
    assert again.notes == [] and [r.stored_run for r in again.runs] == list(range(1, 9))
    with pytest.raises(ResultsFileError, match="exists: not rebuilt"):
        rebuild(tmp_path)


def test_a_run_read_from_its_summary_gives_the_median_without_a_spread(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    store.promote(_run(2.0), history=False)
    loaded = store.load()
    assert loaded is not None and loaded.runs[0].metadata.get("summarised")
    found = {k.metric: (c, d, n) for k, c, d, n in figures(loaded.runs[0])}
    assert found["median"] == (2.0, None, 0)
