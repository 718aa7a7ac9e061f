"""``perfgate baseline fetch``: the default branch's results artifact (CI_JOB_TOKEN, against the
loopback GitLab stub), a committed results file or a local directory, into a baseline directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfgate.cli import FETCH_JOB, FETCH_PATH, main
from pytest_perfgate.model import load_results, run_to_dict, save_results
from pytest_perfgate.store import open_store
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState
from test_gate import make_run

TOKEN = "job-token-SECRET-9f3a"
EXAMPLE_BASELINE = Path(__file__).resolve().parent.parent / "examples" / "catalog" / "baseline"
RESULTS = json.dumps(run_to_dict(make_run({"t::a": [1.0] * 5, "t::b": [2.0] * 5}))).encode()


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


def _outputs(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err  # never, whatever happened
    return out, err


def test_artifact_is_fetched_with_the_job_token_and_stored_as_a_run(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifacts[("main", FETCH_JOB, FETCH_PATH)] = RESULTS
    target = tmp_path / "baseline"
    assert main(["baseline", "fetch", "--to", str(target)]) == 0
    out, _ = _outputs(capsys)
    assert out == (
        f"fetched 1 run from artifact {FETCH_PATH} of job 'perfgate-baseline' on main into {target} "
        "(1 run stored, keeping 10)\n"
    )
    [(method, path, headers)] = gitlab.requests
    assert method == "GET"
    assert path == "/api/v4/projects/group%2Fshop/jobs/artifacts/main/raw/.perfgate/results.json?job=perfgate-baseline"
    assert headers.get("Job-Token") == TOKEN and "Private-Token" not in headers
    stored = open_store(target).load()
    assert stored is not None and len(stored.runs) == 1
    assert [t.nodeid for t in stored.runs[0].tests] == ["t::a", "t::b"]
    # the fetched baseline is what compare reads: the same run passes
    current = tmp_path / "current.json"
    current.write_bytes(RESULTS)
    assert main(["compare", str(target), str(current)]) == 0
    assert "baseline of 1 run" in _outputs(capsys)[0]


def test_several_fetches_merge_into_one_baseline_and_keep_is_honoured(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifacts[("release", "perf", "out/r.json")] = RESULTS
    target = str(tmp_path / "baseline")
    for _ in range(3):
        args = ["baseline", "fetch", "--to", target, "--ref", "release", "--job", "perf", "--path", "out/r.json"]
        assert main([*args, "--keep", "2"]) == 0
    out, _ = _outputs(capsys)
    assert out.splitlines()[-1].endswith("into " + target + " (2 runs stored, keeping 2)")
    assert sorted(p.name for p in Path(target).glob("run-*.json") if "summary" not in p.name) == [
        "run-000002.json",
        "run-000003.json",
    ]
    # a committed directory of stored runs adds its runs to the same baseline
    assert main(["baseline", "fetch", "--to", target, "--from-dir", str(EXAMPLE_BASELINE)]) == 0
    stored = open_store(target).load()
    assert stored is not None and len(stored.runs) == 5


def test_no_baseline_yet_is_a_visible_notice_and_the_gate_passes(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "baseline"
    assert main(["baseline", "fetch", "--to", str(target)]) == 0
    out, err = _outputs(capsys)
    assert out == (
        "perfgate: NOTICE: no baseline yet (first run on main): no artifact .perfgate/results.json of job "
        "'perfgate-baseline' on main; the gate will pass without a comparison\n"
    )
    assert err == ""
    assert not target.exists()
    current = tmp_path / "current.json"
    current.write_bytes(RESULTS)
    assert main(["compare", str(target), str(current)]) == 0
    # --require-baseline turns the notice into an error
    assert main(["baseline", "fetch", "--to", str(target), "--require-baseline"]) == 2
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
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith("error: GitLab API GET http://127.0.0.1:")
    assert "/jobs/artifacts/main/raw/.perfgate/results.json?job=perfgate-baseline" in err
    assert fragment in err
    assert not (tmp_path / "b").exists()


def test_a_wrong_job_token_is_refused_and_not_shown(
    gitlab: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab.artifacts[("main", FETCH_JOB, FETCH_PATH)] = RESULTS
    monkeypatch.setenv("CI_JOB_TOKEN", "wrong-" + TOKEN)
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
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
def test_a_corrupt_artifact_exits_2_naming_it_and_stores_nothing(
    gitlab: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    gitlab.artifacts[("main", FETCH_JOB, FETCH_PATH)] = content
    target = tmp_path / "b"
    assert main(["baseline", "fetch", "--to", str(target)]) == 2
    out, err = _outputs(capsys)
    assert out == ""
    assert err.startswith(f"error: artifact {FETCH_PATH} of job 'perfgate-baseline' on main: {reason}")
    assert "perfgate-fetch-" not in err  # the temporary file is not what the user is told about
    assert not target.exists()


def test_outside_ci_the_missing_variables_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_JOB_TOKEN", "CI_DEFAULT_BRANCH"):
        monkeypatch.delenv(name, raising=False)
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
    assert _outputs(capsys)[1] == (
        "error: no ref to fetch the baseline from: pass --ref REF or run in GitLab CI (CI_DEFAULT_BRANCH)\n"
    )
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b"), "--ref", "main"]) == 2
    assert "CI_API_V4_URL and CI_PROJECT_ID not set" in _outputs(capsys)[1]
    monkeypatch.setenv("CI_API_V4_URL", "http://127.0.0.1:9/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "1")
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b"), "--ref", "main"]) == 2
    assert _outputs(capsys)[1] == "error: CI_JOB_TOKEN is not set (it exists only inside a GitLab CI job)\n"


def test_from_a_committed_directory_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = tmp_path / "committed"
    shutil.copytree(EXAMPLE_BASELINE, committed)
    target = tmp_path / "b"
    assert main(["baseline", "fetch", "--to", str(target), "--from-dir", str(committed)]) == 0
    assert _outputs(capsys)[0] == f"fetched 3 runs from {committed} into {target} (3 runs stored, keeping 10)\n"
    original, copied = open_store(committed).load(), open_store(target).load()
    assert original is not None and copied is not None
    assert [[t.nodeid for t in r.tests] for r in copied.runs] == [[t.nodeid for t in r.tests] for r in original.runs]
    # the full runs are copied (samples included), not the summaries
    full = [load_results(source) for source in copied.sources]
    assert all(any(s.values for t in r.tests for s in t.series.values()) for r in full)
    single = tmp_path / "one.json"
    save_results(single, make_run({"t::a": [1.0] * 5}))
    assert main(["baseline", "fetch", "--to", str(target), "--from-file", str(single), "--keep", "2"]) == 0
    assert _outputs(capsys)[0].endswith("(2 runs stored, keeping 2)\n")


def test_local_sources_missing_or_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "b"
    assert main(["baseline", "fetch", "--to", str(target), "--from-dir", str(tmp_path / "none")]) == 0
    assert "NOTICE: " + str(tmp_path / "none") + ": no baseline yet" in _outputs(capsys)[0]
    assert main(["baseline", "fetch", "--to", str(target), "--from-file", str(tmp_path)]) == 2
    assert "is a directory: use --from-dir" in _outputs(capsys)[1]
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert main(["baseline", "fetch", "--to", str(target), "--from-file", str(bad)]) == 2
    assert _outputs(capsys)[1].startswith(f"error: {bad}: is not valid JSON")
    assert not target.exists()
    with pytest.raises(SystemExit):
        main(["baseline", "fetch", "--to", str(target), "--from-dir", "a", "--from-file", "b"])
