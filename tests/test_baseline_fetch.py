"""``perfgate baseline fetch``: the default branch's run history (a directory store in the job's
artifacts, fetched file by file through its index) or a single results artifact (CI_JOB_TOKEN,
against the loopback GitLab stub), a committed results file or a local directory, into a baseline
directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.results import make_run
from pytest_perfgate.cli import main
from pytest_perfgate.model import RunResult, load_results, run_to_dict, save_results
from pytest_perfgate.store import open_store
from pytest_perfgate.store.files import INDEX_NAME, DirectoryStore, parse_index
from pytest_perfgate.store.gitlab import FETCH_JOB, FETCH_PATH, LEGACY_FETCH_PATH
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

TOKEN = "job-token-SECRET-9f3a"
EXAMPLE_BASELINE = Path(__file__).resolve().parent.parent / "examples" / "catalog" / "baseline"
RESULTS = json.dumps(run_to_dict(make_run({"t::a": [1.0] * 5, "t::b": [2.0] * 5}))).encode()
INDEX = FETCH_PATH + INDEX_NAME  # .perfgate/baseline/index.json
RAW = "/api/v4/projects/group%2Fshop/jobs/artifacts/main/raw/"


def _level(level: float) -> RunResult:
    return make_run({"t::a": [level] * 5, "t::b": [2 * level] * 5})


def _history(root: Path, *levels: float, keep: int = 10) -> Path:
    """What the default branch's perfgate-baseline job keeps: runs promoted into .perfgate/baseline/
    (with its index) under ``root``, the job's artifacts directory."""
    store = DirectoryStore(str(root / FETCH_PATH))
    for level in levels:
        store.promote(_level(level), keep=keep)
    return root


def _levels(location: Path) -> list[float]:
    """The level of each stored run, oldest first (from the full files: the summaries carry no samples)."""
    stored = open_store(location).load()
    assert stored is not None
    return [load_results(source).tests[0].series["time"].values[0] for source in stored.sources]


def _artifact_gets(state: StubState) -> list[str]:
    """The artifact files requested, in order (each with the job token, never another header)."""
    paths = []
    for method, path, headers in state.requests:
        assert method == "GET" and headers.get("Job-Token") == TOKEN and "Private-Token" not in headers
        assert path.startswith(RAW) and path.endswith("?job=perfgate-baseline"), path
        paths.append(path[len(RAW) : -len("?job=perfgate-baseline")])
    return paths


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubState]:
    """The stub as the CI job sees GitLab: CI_API_V4_URL, CI_PROJECT_ID, CI_JOB_TOKEN, CI_DEFAULT_BRANCH."""
    state = StubState(token=TOKEN)
    with GitLabStub(state) as api_url:
        monkeypatch.setenv("CI_API_V4_URL", api_url)
        monkeypatch.setenv("CI_PROJECT_ID", "group/shop")
        monkeypatch.setenv("CI_JOB_TOKEN", TOKEN)
        monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
        yield state


def fetch(to: str | Path, *args: str) -> int:
    """``perfgate baseline fetch --to TO ARGS``; its exit code."""
    return main(["baseline", "fetch", "--to", str(to), *args])


def _outputs(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err  # never, whatever happened
    return out, err


def test_the_run_history_is_fetched_through_its_index_oldest_first(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifact_dirs[("main", FETCH_JOB)] = _history(tmp_path / "artifacts", 1.0, 2.0, 3.0)
    target = tmp_path / "baseline"
    assert fetch(target) == 0
    out, _ = _outputs(capsys)
    assert out == (
        f"fetched 3 runs from artifact .perfgate/baseline/ of job 'perfgate-baseline' on main into {target} "
        "(3 runs stored, keeping 10)\nhistory: history.jsonl fetched\n"
    )
    # the index, then each run it lists, oldest first; the summaries are not needed; then the long history
    assert _artifact_gets(gitlab) == [
        ".perfgate/baseline/index.json",
        ".perfgate/baseline/run-000001.json",
        ".perfgate/baseline/run-000002.json",
        ".perfgate/baseline/run-000003.json",
        ".perfgate/baseline/history.jsonl",
        ".perfgate/baseline/history.state.json",  # none yet: nothing judged
    ]
    assert (target / "history.jsonl").read_bytes() == (
        tmp_path / "artifacts" / FETCH_PATH / "history.jsonl"
    ).read_bytes()
    assert _levels(target) == [1.0, 2.0, 3.0]  # promoted in the history's order
    assert parse_index((target / INDEX_NAME).read_bytes(), "index") == tuple(f"run-00000{i}.json" for i in (1, 2, 3))
    # the fetched baseline is what compare reads: several runs, their spread measured
    current = tmp_path / "current.json"
    save_results(current, _level(2.0))
    # runs of 1, 2 and 3 units vary far too much for any change to be judged: exit 3, said so
    assert main(["compare", str(target), str(current)]) == 3
    out = _outputs(capsys)[0]
    assert (
        out.startswith("perfgate: NOT JUDGED: none of the 2 time comparisons could be judged")
        and "baseline of 3 runs" in out
    )


def test_keep_drops_the_oldest_fetched_runs(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifact_dirs[("main", FETCH_JOB)] = _history(tmp_path / "artifacts", 1.0, 2.0, 3.0, 4.0)
    target = tmp_path / "baseline"
    assert fetch(target, "--keep", "2") == 0
    assert _outputs(capsys)[0].startswith("fetched 2 runs from artifact .perfgate/baseline/")
    assert _levels(target) == [3.0, 4.0]
    # the runs the keep count would drop are not downloaded at all; the long history keeps all 4
    assert _artifact_gets(gitlab) == [
        INDEX,
        ".perfgate/baseline/run-000003.json",
        ".perfgate/baseline/run-000004.json",
        ".perfgate/baseline/history.jsonl",
        ".perfgate/baseline/history.state.json",
    ]
    assert parse_index((target / INDEX_NAME).read_bytes(), "index") == ("run-000001.json", "run-000002.json")
    from pytest_perfgate.history.log import read_log

    fetched_log = read_log(target)
    assert fetched_log is not None and len(fetched_log.runs) == 4
    # fetched again into the same directory: the newest 2 of all it then holds are kept, and the
    # fetched runs are appended to the history it now keeps
    assert fetch(target, "--keep", "2") == 0
    out = _outputs(capsys)[0]
    assert out.endswith(
        "(2 runs stored, keeping 2)\nhistory: the 2 fetched runs appended to " + f"{target}'s own history.jsonl\n"
    )
    again = read_log(target)
    assert again is not None and len(again.runs) == 6
    assert parse_index((target / INDEX_NAME).read_bytes(), "index") == ("run-000003.json", "run-000004.json")


def test_a_results_file_artifact_of_an_older_baseline_job_is_still_fetched(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A default branch whose perfgate-baseline job predates the history kept .perfgate/results.json
    only: with the default --path, that one run is the baseline until the job keeps a history."""
    gitlab.artifacts[("main", FETCH_JOB, LEGACY_FETCH_PATH)] = RESULTS
    target = tmp_path / "baseline"
    assert fetch(target) == 0
    out, _ = _outputs(capsys)
    assert out == (
        f"fetched 1 run from artifact .perfgate/results.json of job 'perfgate-baseline' on main into {target} "
        "(1 run stored, keeping 10); that job kept no run history (.perfgate/baseline/index.json) yet, "
        "only its latest results\nhistory: the source keeps none; history.jsonl begun from the 1 fetched run\n"
    )
    assert _artifact_gets(gitlab) == [INDEX, LEGACY_FETCH_PATH]
    stored = open_store(target).load()
    assert stored is not None and [t.nodeid for t in stored.runs[0].tests] == ["t::a", "t::b"]
    # with both there, the history wins and the single file is not asked for
    gitlab.requests.clear()
    gitlab.artifact_dirs[("main", FETCH_JOB)] = _history(tmp_path / "artifacts", 5.0, 6.0)
    assert fetch(tmp_path / "b2") == 0
    assert "fetched 2 runs from artifact .perfgate/baseline/" in _outputs(capsys)[0]
    assert _artifact_gets(gitlab) == [
        INDEX,
        ".perfgate/baseline/run-000001.json",
        ".perfgate/baseline/run-000002.json",
        ".perfgate/baseline/history.jsonl",
        ".perfgate/baseline/history.state.json",
    ]
    assert _levels(tmp_path / "b2") == [5.0, 6.0]


def test_an_explicit_path_is_a_directory_or_a_file_by_its_shape(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "artifacts"
    DirectoryStore(str(root / "perf" / "history")).promote(_level(7.0))
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    gitlab.artifacts[("main", FETCH_JOB, LEGACY_FETCH_PATH)] = RESULTS
    for path in ("perf/history", "perf/history/"):  # without a .json suffix: a directory, like open_store
        target = tmp_path / path.replace("/", "-")
        assert fetch(target, "--path", path) == 0
        assert "fetched 1 run from artifact perf/history/ of job" in _outputs(capsys)[0]
        assert _levels(target) == [7.0]
    # an explicit path has no fallback: its index missing is "no baseline yet"
    assert fetch(tmp_path / "none", "--path", "perf/other/") == 0
    assert _outputs(capsys)[0] == (
        "perfgate: NOTICE: no baseline yet (first run on main): no artifact perf/other/index.json of job "
        "'perfgate-baseline' on main; the gate will pass without a comparison\n"
    )
    assert not (tmp_path / "none").exists()
    assert fetch(tmp_path / "none", "--path", " ") == 2
    assert "error: --path is empty" in _outputs(capsys)[1]


def test_several_fetches_merge_into_one_baseline_and_keep_is_honoured(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifacts[("release", "perf", "out/r.json")] = RESULTS
    target = str(tmp_path / "baseline")
    for _ in range(3):
        args = ["baseline", "fetch", "--to", target, "--ref", "release", "--job", "perf", "--path", "out/r.json"]
        assert main([*args, "--keep", "2"]) == 0
    out, _ = _outputs(capsys)
    assert out.splitlines()[-2].endswith("into " + target + " (2 runs stored, keeping 2)")
    assert sorted(p.name for p in Path(target).glob("run-*.json") if "summary" not in p.name) == [
        "run-000002.json",
        "run-000003.json",
    ]
    # a committed directory of stored runs adds its runs to the same baseline
    assert fetch(target, "--from-dir", str(EXAMPLE_BASELINE)) == 0
    stored = open_store(target).load()
    assert stored is not None and len(stored.runs) == 5


def test_no_baseline_yet_is_a_visible_notice_and_the_gate_passes(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "baseline"
    assert fetch(target) == 0
    out, err = _outputs(capsys)
    assert out == (
        "perfgate: NOTICE: no baseline yet (first run on main): no artifact .perfgate/baseline/index.json "
        "(nor .perfgate/results.json) of job 'perfgate-baseline' on main; the gate will pass without a comparison\n"
    )
    assert err == ""
    assert _artifact_gets(gitlab) == [INDEX, LEGACY_FETCH_PATH]
    assert not target.exists()
    current = tmp_path / "current.json"
    current.write_bytes(RESULTS)
    assert main(["compare", str(target), str(current)]) == 0
    # --require-baseline turns the notice into an error
    assert fetch(target, "--require-baseline") == 2
    _, err = _outputs(capsys)
    assert err.startswith("error: no baseline yet (first run on main)")


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        (401, "answered 401: the token was refused (expired, revoked or mistyped)"),
        (403, "answered 403: the token may not do this"),
        (500, "answered 500: GitLab had a server error; try again later"),
    ],
)
def test_api_errors_exit_2_with_the_reason_and_no_token(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int, fragment: str
) -> None:
    gitlab.fail_with = status
    assert fetch(tmp_path / "b") == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith("error: GitLab API GET http://127.0.0.1:")
    assert "/jobs/artifacts/main/raw/.perfgate/baseline/index.json?job=perfgate-baseline" in err
    assert fragment in err
    assert not (tmp_path / "b").exists()


def test_a_wrong_job_token_is_refused_and_not_shown(
    gitlab: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifacts[("main", FETCH_JOB, FETCH_PATH)] = RESULTS
    monkeypatch.setenv("CI_JOB_TOKEN", "wrong-" + TOKEN)
    assert fetch(tmp_path / "b") == 2
    _, err = _outputs(capsys)
    assert "answered 401: the token was refused" in err
    assert "wrong-" not in err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"schema": "perfgate-res', "is not valid JSON (line 1, column 12: Unterminated string"),
        (b"", "is empty"),
        (b'{"hello": 1}', ""),
        (b"\xff\xfe garbage", "cannot be read"),
    ],
)
def test_a_corrupt_results_artifact_exits_2_naming_it_and_stores_nothing(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    gitlab.artifacts[("main", FETCH_JOB, LEGACY_FETCH_PATH)] = content
    target = tmp_path / "b"
    assert fetch(target) == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith(f"error: artifact {LEGACY_FETCH_PATH} of job 'perfgate-baseline' on main: {reason}")
    assert "perfgate-fetch-" not in err  # the temporary file is not what the user is told about
    assert not target.exists()


def _index(runs: object, *, schema: object = "perfgate-baseline-index", version: object = 1) -> bytes:
    return json.dumps({"schema": schema, "schema_version": version, "runs": runs}).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_index(["run-000001.json"])[:30], "is not valid JSON (line 1, column 12: Unterminated string"),
        (b"", "is empty"),
        (b"\xff\xfe garbage", "cannot be read"),
        (b"[]", "not a perfgate baseline index (schema is 'list', expected 'perfgate-baseline-index')"),
        (_index([], schema="perfgate-results"), "not a perfgate baseline index (schema is 'perfgate-results'"),
        (_index([], version=2), "index schema_version 2 is not supported by this perfgate (it reads version 1)"),
        (_index("run-000001.json"), "runs: expected a list of run file names, got str"),
        (_index(["run-000001.json", "../../secrets.json"]), "runs[1]: '../../secrets.json' is not a stored run's"),
        (_index([7]), "runs[0]: 7 is not a stored run's file name (run-NNNNNN.json)"),
        (_index(["run-000001.json", "run-000001.json"]), "runs[1]: 'run-000001.json' is listed twice"),
    ],
)
def test_a_corrupt_index_exits_2_naming_it_and_stores_nothing(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    root = _history(tmp_path / "artifacts", 1.0)
    (root / INDEX).write_bytes(content)
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    gitlab.artifacts[("main", FETCH_JOB, LEGACY_FETCH_PATH)] = RESULTS  # there, but a corrupt index is no "missing"
    target = tmp_path / "b"
    assert fetch(target) == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith(f"error: artifact {INDEX} of job 'perfgate-baseline' on main: {reason}"), err
    assert len(err.splitlines()) == 1
    assert _artifact_gets(gitlab) == [INDEX]  # no run fetched, no fallback
    assert not target.exists()


def test_a_corrupt_run_in_the_history_exits_2_naming_it_and_stores_nothing(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _history(tmp_path / "artifacts", 1.0, 2.0, 3.0)
    run = root / FETCH_PATH / "run-000002.json"
    run.write_bytes(run.read_bytes()[:200])  # a truncated file
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    target = tmp_path / "b"
    assert fetch(target) == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith(
        "error: artifact .perfgate/baseline/run-000002.json of job 'perfgate-baseline' on main: is not valid JSON"
    ), err
    assert "the file may be truncated" in err and "perfgate-fetch-" not in err
    assert not target.exists()  # the first run, fetched fine, was not stored either


def test_a_run_listed_but_missing_from_the_artifact_exits_2_naming_it(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _history(tmp_path / "artifacts", 1.0, 2.0, 3.0)
    (root / FETCH_PATH / "run-000003.json").unlink()
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    target = tmp_path / "b"
    assert fetch(target, "--require-baseline") == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err == (
        "error: artifact .perfgate/baseline/run-000003.json of job 'perfgate-baseline' on main: listed in "
        ".perfgate/baseline/index.json but not in the artifact (404), twice: the artifact is incomplete\n"
    )
    runs = [f".perfgate/baseline/run-00000{i}.json" for i in (1, 2, 3)]
    assert _artifact_gets(gitlab) == [INDEX, *runs, INDEX, *runs]  # read again once: it was not a newer job
    assert not target.exists()


class _NewerJobMidFetch(dict):  # type: ignore[type-arg]
    """The stub's artifact directories, where a newer baseline job finishes right after the first
    index was read: from then on the raw endpoint serves the newer job's artifact."""

    def __init__(self, key: tuple[str, str], older: Path, newer: Path) -> None:
        super().__init__({key: older})
        self.key, self.newer = key, newer

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        found = super().get(key, default)
        if key == self.key:
            self[key] = self.newer
        return found


def test_a_newer_baseline_job_finishing_mid_fetch_gives_its_history_whole(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = _history(tmp_path / "older", 1.0, 2.0, 3.0, keep=3)
    newer = _history(tmp_path / "newer", 1.0, 2.0, 3.0, 4.0, keep=3)  # run 1 dropped, run 4 added
    gitlab.artifact_dirs = _NewerJobMidFetch(("main", FETCH_JOB), older, newer)
    target = tmp_path / "b"
    assert fetch(target) == 0
    _outputs(capsys)
    assert _levels(target) == [2.0, 3.0, 4.0]  # the newer job's history, not a mixture
    assert _artifact_gets(gitlab)[:2] == [INDEX, ".perfgate/baseline/run-000001.json"]  # 404: read again


def test_an_index_listing_no_runs_is_no_baseline_yet(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "artifacts"
    (root / FETCH_PATH).mkdir(parents=True)
    (root / INDEX).write_bytes(_index([]))
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    assert fetch(tmp_path / "b") == 0
    assert _outputs(capsys)[0] == (
        "perfgate: NOTICE: no baseline yet: artifact .perfgate/baseline/ of job 'perfgate-baseline' on main "
        "lists no runs; the gate will pass without a comparison\n"
    )
    assert not (tmp_path / "b").exists()


def test_the_cli_names_the_index_the_store_writes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["baseline", "fetch", "--help"])
    assert f"(its {INDEX_NAME} lists them;" in " ".join(capsys.readouterr().out.split())
    assert FETCH_PATH.endswith("/")


def test_the_stub_serves_an_artifact_directory_and_nothing_outside_it(tmp_path: Path) -> None:
    root = _history(tmp_path / "artifacts", 1.0)
    (tmp_path / "secret.txt").write_text("outside")
    state = StubState(artifact_dirs={("main", FETCH_JOB): root})
    from pytest_perfgate.testing.gitlab_stub import artifact_file

    assert artifact_file(state, "main", FETCH_JOB, INDEX) == (root / INDEX).read_bytes()
    assert artifact_file(state, "main", FETCH_JOB, "../secret.txt") is None
    assert artifact_file(state, "main", FETCH_JOB, str(tmp_path / "secret.txt")) is None
    assert artifact_file(state, "main", FETCH_JOB, ".perfgate/baseline") is None  # a directory is no file
    assert artifact_file(state, "main", "other-job", INDEX) is None
    assert artifact_file(state, "other-ref", FETCH_JOB, INDEX) is None


def test_outside_ci_the_missing_variables_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_JOB_TOKEN", "CI_DEFAULT_BRANCH"):
        monkeypatch.delenv(name, raising=False)
    assert fetch(tmp_path / "b") == 2
    assert _outputs(capsys)[1] == (
        "error: no ref to fetch the baseline from: pass --ref REF or run in GitLab CI (CI_DEFAULT_BRANCH)\n"
    )
    assert fetch(tmp_path / "b", "--ref", "main") == 2
    assert "CI_API_V4_URL and CI_PROJECT_ID not set" in _outputs(capsys)[1]
    monkeypatch.setenv("CI_API_V4_URL", "http://127.0.0.1:9/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "1")
    assert fetch(tmp_path / "b", "--ref", "main") == 2
    assert _outputs(capsys)[1] == "error: CI_JOB_TOKEN is not set (it exists only inside a GitLab CI job)\n"


def test_from_a_committed_directory_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = tmp_path / "committed"
    shutil.copytree(EXAMPLE_BASELINE, committed)
    target = tmp_path / "b"
    assert fetch(target, "--from-dir", str(committed)) == 0
    assert _outputs(capsys)[0] == (
        f"fetched 3 runs from {committed} into {target} (3 runs stored, keeping 10)\n"
        "history: the source keeps none; history.jsonl begun from the 3 fetched runs\n"
    )
    original, copied = open_store(committed).load(), open_store(target).load()
    assert original is not None and copied is not None
    assert [[t.nodeid for t in r.tests] for r in copied.runs] == [[t.nodeid for t in r.tests] for r in original.runs]
    # the full runs are copied (samples included), not the summaries
    full = [load_results(source) for source in copied.sources]
    assert all(any(s.values for t in r.tests for s in t.series.values()) for r in full)
    single = tmp_path / "one.json"
    save_results(single, make_run({"t::a": [1.0] * 5}))
    assert fetch(target, "--from-file", str(single), "--keep", "2") == 0
    assert "(2 runs stored, keeping 2)\n" in _outputs(capsys)[0]


def test_local_sources_missing_or_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "b"
    assert fetch(target, "--from-dir", str(tmp_path / "none")) == 0
    assert "NOTICE: " + str(tmp_path / "none") + ": no baseline yet" in _outputs(capsys)[0]
    assert fetch(target, "--from-file", str(tmp_path)) == 2
    assert "is a directory: use --from-dir" in _outputs(capsys)[1]
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert fetch(target, "--from-file", str(bad)) == 2
    assert _outputs(capsys)[1].startswith(f"error: {bad}: is not valid JSON")
    assert not target.exists()
    with pytest.raises(SystemExit):
        fetch(target, "--from-dir", "a", "--from-file", "b")


def test_a_long_history_comes_whole_with_its_earlier_parts(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_perfgate.history.log import append, parts, read_log

    root = tmp_path / "artifacts"
    directory = root / FETCH_PATH
    store = DirectoryStore(str(directory))
    for level in (1.0, 2.0, 3.0, 4.0, 5.0):
        store.promote(_level(level), keep=2, history=False)
        append(directory, _level(level), roll_bytes=400)  # a part a run or two
    assert len(parts(directory)) >= 2
    gitlab.artifact_dirs[("main", FETCH_JOB)] = root
    target = tmp_path / "baseline"
    assert fetch(target) == 0
    out = _outputs(capsys)[0]
    assert f"history: history.jsonl fetched with {len(parts(directory))} earlier parts\n" in out
    log = read_log(target)
    assert log is not None and [r.seq for r in log.runs] == [1, 2, 3, 4, 5]  # 2 runs kept, 5 in the history
    # a part the artifact lost: said, with its name, and nothing half-written
    (directory / "history-000001.jsonl.gz").unlink()
    assert fetch(tmp_path / "other") == 2
    err = _outputs(capsys)[1]
    assert (
        "error: artifact .perfgate/baseline/history-000001.jsonl.gz of job 'perfgate-baseline' on main: is missing"
        in err
    )
    assert not (tmp_path / "other" / "history.jsonl").exists()
