from __future__ import annotations

import socket

import pytest

from harness.gitlab import FAST, stubbed
from pytest_perfgate.gitlab import NOTE_MARKER, GitLab, GitLabError, Limits, from_environment
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

TOKEN = "glpat-SECRET-123"


@pytest.fixture
def stub():
    with stubbed(TOKEN, "group/proj", sleep=True) as pair:
        yield pair


def test_note_is_created_once_then_updated_in_place(stub) -> None:
    state, api = stub
    state.notes[7] = [{"id": 1, "body": "LGTM"}, {"id": 2, "body": "nit"}, {"id": 3, "body": "other"}]
    assert api.upsert_note(7, "first report") == ("created", 101)
    assert api.upsert_note(7, "second report") == ("updated", 101)  # found on page 2 by its marker
    bodies = [n["body"] for n in state.notes[7]]
    assert bodies[:3] == ["LGTM", "nit", "other"]
    assert bodies[3] == f"{NOTE_MARKER}\nsecond report"
    assert len(bodies) == 4
    methods = [m for m, _, _ in state.requests]
    assert methods.count("POST") == 1 and methods.count("PUT") == 1
    assert all(headers.get("Private-Token") == TOKEN for _, _, headers in state.requests)
    assert all("/projects/group%2Fproj/" in path for _, path, _ in state.requests)


def test_artifact_download_and_missing_baseline(stub) -> None:
    state, api = stub
    state.artifacts[("main", "perf", ".perfgate/current.json")] = b'{"x": 1}'
    assert api.artifact("main", ".perfgate/current.json", "perf") == b'{"x": 1}'
    assert api.artifact("main", ".perfgate/current.json", "other-job") is None  # no baseline yet


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        (401, "answered 401: the token was refused"),
        (403, "answered 403: the token may not do this (posting notes needs a token with the 'api' scope"),
        (404, "answered 404: not found"),
        (502, "answered 502: GitLab had a server error; try again later"),
    ],
)
def test_errors_are_clear_and_never_show_the_token(stub, status: int, fragment: str) -> None:
    state, api = stub
    state.fail_with = status
    with pytest.raises(GitLabError) as info:
        api.upsert_note(7, "report")
    assert fragment in str(info.value)
    assert info.value.status == status
    assert len(state.requests) == (FAST.attempts if status == 502 else 1)  # 502 is retried, the others are not
    assert TOKEN not in str(info.value) and TOKEN not in repr(api)


def test_token_echoed_by_the_server_is_scrubbed() -> None:
    with GitLabStub(StubState(token="other")) as url:
        api = GitLab(api_url=url, project="1", token=TOKEN, limits=FAST)
        with pytest.raises(GitLabError) as info:
            api.request("GET", f"{url}/projects/1/merge_requests/1/notes?private_token={TOKEN}")
    assert TOKEN not in str(info.value) and "***" in str(info.value)


def test_unreachable_api_fails_within_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = GitLab(api_url=f"http://127.0.0.1:{port}/api/v4", project="1", token=TOKEN, limits=Limits(timeout=2))
    with pytest.raises(GitLabError, match=r"failed: .*Connection refused.* \(timeout 2s\)") as info:
        api.find_note(1)
    assert TOKEN not in str(info.value)


def test_client_from_ci_environment() -> None:
    env = {"CI_API_V4_URL": "http://127.0.0.1/api/v4", "CI_PROJECT_ID": "42", "PERFGATE_GITLAB_TOKEN": TOKEN}
    api = from_environment(env)
    assert (api.project, api.token_header) == ("42", "PRIVATE-TOKEN")
    job = from_environment({**env, "CI_JOB_TOKEN": "job"}, job_token=True)
    assert (job.token, job.token_header) == ("job", "JOB-TOKEN")
    with pytest.raises(GitLabError, match="PERFGATE_GITLAB_TOKEN is not set: add a project access token"):
        from_environment({k: v for k, v in env.items() if k != "PERFGATE_GITLAB_TOKEN"})
    with pytest.raises(GitLabError, match="CI_API_V4_URL and CI_PROJECT_ID not set") as info:
        from_environment({})
    # the message names what can be set: no flag does it (there is no --api-url or --project)
    assert "--" not in str(info.value)
    assert str(info.value).endswith(
        "set CI_API_V4_URL (e.g. https://gitlab.example.com/api/v4) and CI_PROJECT_ID (the project's id or path) in "
        "the environment"
    )
