"""The GitLab client against a hostile or faulty server (issue 16, item 2), on the loopback stub:
redirects, a token echoed and cut, endless pages, a dripping server, a huge answer, 429 / 502-504
and timeouts retried, malformed answers, bad CI_API_V4_URL and --mr, and what gitlab-comment
agrees to post. Every test is bounded: small limits, a stub that stops when the client goes."""

from __future__ import annotations

import json
import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from pytest_perfgate import gitlab as gitlab_module
from pytest_perfgate.cli import main
from pytest_perfgate.gitlab import (
    NOTE_MARKER,
    GitLab,
    GitLabError,
    Limits,
    check_mr_iid,
    neutralise_quick_actions,
    note_body,
    scrub,
)
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

pytestmark = pytest.mark.timeout(60)  # a hang is a failure, not a stuck suite

TOKEN = "glpat-Xq7Rm2KwZp9Lt4Vb8Nc3"
#: fast enough for tests, the same policy: 3 attempts, backoff doubling from 0.01 s
FAST = Limits(timeout=5, deadline=10, backoff=0.01, max_wait=30, budget=30)
REPORT = "### :x: perfgate: FAILED: 1 regression (1 of 1 judged); baseline of 3 runs\n\n| test | change |\n|---|---|\n"


class Waits(list[float]):
    """A ``sleep`` that records how long the client would have waited, and does not wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def stub() -> Iterator[tuple[StubState, str]]:
    state = StubState(token=TOKEN)
    with GitLabStub(state) as api_url:
        yield state, api_url


def client(api_url: str, limits: Limits = FAST, waits: Waits | None = None, token: str = TOKEN) -> GitLab:
    return GitLab(
        api_url=api_url, project="group/proj", token=token, limits=limits, sleep=Waits() if waits is None else waits
    )


@pytest.fixture
def ci_env(stub: tuple[StubState, str], monkeypatch: pytest.MonkeyPatch) -> StubState:
    """The CI job's variables pointing at the stub, and the CLI's clients on FAST limits."""
    state, api_url = stub
    monkeypatch.setattr(gitlab_module, "LIMITS", FAST)
    for name, value in {
        "CI_API_V4_URL": api_url,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_DEFAULT_BRANCH": "main",
        "CI_JOB_TOKEN": TOKEN,
        "PERFGATE_GITLAB_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    return state


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert TOKEN not in out + err and TOKEN[:10] not in out + err and "Traceback" not in err
    return err


# ------------------------------------------------------------------ redirects


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home(stub, status: int) -> None:
    state, api_url = stub
    other = StubState()  # "another host": records whatever reaches it
    with GitLabStub(other) as other_url:
        elsewhere = other_url.replace("127.0.0.1", "localhost")
        state.redirect_to, state.redirect_status = elsewhere.removesuffix("/api/v4"), status
        with pytest.raises(GitLabError) as info:
            client(api_url).upsert_note(7, REPORT)
        with pytest.raises(GitLabError):
            client(api_url).artifact("main", ".perfgate/baseline/index.json", "perfgate-baseline")
    message = str(info.value)
    assert other.requests == []  # nothing, let alone a token, went to the other host
    assert len(state.requests) == 2  # one each, not retried
    assert f"answered {status}, a redirect to http://localhost:" in message
    assert "/api/v4/projects/group%2Fproj/merge_requests/7/notes" in message
    assert "perfgate follows no redirect (the token would go with it)" in message
    assert TOKEN not in message


def test_baseline_fetch_and_gitlab_comment_refuse_a_redirect_with_exit_2(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = StubState()
    with GitLabStub(other) as other_url:
        ci_env.redirect_to = other_url.replace("127.0.0.1", "localhost")
        assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
        assert "a redirect to http://localhost:" in _err(capsys)
        report = tmp_path / "report.md"
        report.write_text(REPORT)
        assert main(["gitlab-comment", str(report)]) == 2
        assert "perfgate follows no redirect" in _err(capsys)
    assert other.requests == []
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ the token in messages


@pytest.mark.parametrize("offset", [0, 280, 286, 290, 295, 299, 300, 310])
def test_the_token_is_scrubbed_however_the_answer_is_cut(stub, offset: int) -> None:
    """The old client cut the error answer at 300 bytes, then scrubbed: a token straddling the cut
    left its first characters in the message. Every offset across the cut, and the header echoed."""
    state, api_url = stub
    state.fail_with = 400
    state.fail_body = (
        b"x" * offset + b" Private-Token: " + TOKEN.encode() + b" " + b"y" * 400 + b" echo " + TOKEN[3:15].encode()
    )
    with pytest.raises(GitLabError) as info:
        client(api_url).artifact("main", "r.json", "perf")
    message = str(info.value)
    assert "answered 400" in message
    for i in range(len(TOKEN) - 5):
        assert TOKEN[i : i + 6] not in message.replace("glpat-", ""), f"a piece of the token at {i} shows"


def test_scrub_removes_the_token_and_every_long_piece_of_it_urlencoded_too() -> None:
    token = "glpat-a/b+c=d-1234567"
    text = f"full {token} quoted glpat-a%2Fb%2Bc%3Dd-1234567 piece c=d-1234 short 1234 end"
    assert scrub(text, token) == "full *** quoted *** piece *** short 1234 end"
    assert scrub("job 'perfgate-baseline'", "job") == "*** 'perfgate-baseline'"  # a short token: only whole
    assert scrub("nothing here", None) == "nothing here"


# ------------------------------------------------------------------ pages, deadline, size


def test_endless_next_pages_stop_after_max_pages(stub) -> None:
    state, api_url = stub
    state.endless_pages, state.page_size = True, 1
    state.notes[7] = [{"id": 1, "body": "LGTM"}]
    limits = Limits(timeout=5, deadline=10, max_pages=20, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(GitLabError, match=r"still more notes after 20 pages \(perfgate looks through at most 2,000"):
        client(api_url, limits).upsert_note(7, REPORT)
    assert len(state.requests) == 20  # not 42,781
    assert time.monotonic() - started < 10


def test_a_next_page_that_does_not_advance_is_a_clear_error(stub, monkeypatch: pytest.MonkeyPatch) -> None:
    state, api_url = stub
    state.notes[7] = [{"id": 1, "body": "a"}, {"id": 2, "body": "b"}, {"id": 3, "body": "c"}]
    real = GitLab.json

    def same_page(self: GitLab, method: str, url: str, body: object = None, **kw: object) -> tuple[object, dict]:
        answer, headers = real(self, method, url, body, **kw)  # type: ignore[arg-type]
        return answer, {**headers, "x-next-page": "1"}

    monkeypatch.setattr(GitLab, "json", same_page)
    with pytest.raises(GitLabError, match=r"answered X-Next-Page '1' after page 1: expected a later page number"):
        client(api_url).find_note(7)
    assert len(state.requests) == 1


def test_a_dripping_server_is_cut_off_at_the_whole_answer_deadline(stub) -> None:
    """One byte every 0.2 s never trips a per-read timeout of 5 s; the deadline of 1 s for the
    whole answer does, on every attempt, and the call ends well within its bounds."""
    state, api_url = stub
    state.drip = 0.2
    waits = Waits()
    limits = Limits(timeout=5, deadline=1, attempts=2, backoff=0.01, budget=10)
    started = time.monotonic()
    with pytest.raises(GitLabError) as info:
        client(api_url, limits, waits).artifact("main", "r.json", "perf")
    took = time.monotonic() - started
    assert "failed: no whole answer within 1s (the deadline for one answer) (after 2 attempts)" in str(info.value)
    assert info.value.transient and len(state.requests) == 2 and waits == [0.01]
    assert 1.9 < took < 4


def test_a_server_that_stalls_is_timed_out_and_retried(stub) -> None:
    state, api_url = stub
    state.drip = 2.0  # the first byte, then nothing for 2 s: longer than the 0.3 s read timeout
    limits = Limits(timeout=0.3, deadline=10, attempts=3, backoff=0.01, budget=10)
    started = time.monotonic()
    with pytest.raises(GitLabError, match=r"failed: no answer within 0.3s \(timeout\) \(after 3 attempts\)$"):
        client(api_url, limits).artifact("main", "r.json", "perf")
    assert len(state.requests) == 3 and time.monotonic() - started < 3


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "read-until-closed"])
def test_a_huge_answer_is_refused_without_reading_it_whole(stub, declared: bool) -> None:
    state, api_url = stub
    state.huge_body, state.huge_length = 600 * 2**20, declared
    limits = Limits(timeout=5, deadline=20, max_bytes=2 * 2**20, backoff=0.01)
    tracemalloc.start()
    try:
        with pytest.raises(GitLabError) as info:
            client(api_url, limits).artifact("main", "r.json", "perf")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = "the answer is 629,145,600 bytes" if declared else "the answer is more than perfgate reads"
    assert expected in str(info.value) and "(2,097,152 bytes)" in str(info.value)
    assert peak < 16 * 2**20  # the 600 MB answer was never held (the old client: 1.25 GB)
    assert len(state.requests) == 1  # too big is not retried


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_transient_server_error_is_retried_with_backoff(stub, status: int) -> None:
    state, api_url = stub
    state.artifacts[("main", "perf", "r.json")] = b"{}"
    state.fail_with, state.fail_count = status, 2
    waits = Waits()
    assert client(api_url, waits=waits).artifact("main", "r.json", "perf") == b"{}"
    assert waits == [0.01, 0.02] and len(state.requests) == 3


def test_a_lasting_server_error_gives_up_after_the_attempts(stub) -> None:
    state, api_url = stub
    state.fail_with = 503
    waits = Waits()
    with pytest.raises(
        GitLabError, match=r"answered 503: GitLab had a server error; try again later .* \(after 3 attempts\)$"
    ):
        client(api_url, waits=waits).artifact("main", "r.json", "perf")
    assert len(state.requests) == 3 and waits == [0.01, 0.02]


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_other_errors_are_not_retried(stub, status: int) -> None:
    state, api_url = stub
    state.fail_with = status
    with pytest.raises(GitLabError, match=f"answered {status}"):
        client(api_url).artifact("main", "r.json", "perf")
    assert len(state.requests) == 1


def test_429_is_retried_after_its_retry_after(stub) -> None:
    state, api_url = stub
    state.notes[7] = []
    state.fail_with, state.fail_count, state.retry_after = 429, 1, "7"
    waits = Waits()
    assert client(api_url, waits=waits).upsert_note(7, REPORT) == ("created", 101)
    assert waits == [7.0]  # what GitLab asked, not the backoff


def test_429_with_an_http_date_retry_after(stub) -> None:
    state, api_url = stub
    state.artifacts[("main", "perf", "r.json")] = b"{}"
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    state.fail_with, state.fail_count, state.retry_after = 429, 1, format_datetime(when, usegmt=True)
    waits = Waits()
    assert client(api_url, waits=waits).artifact("main", "r.json", "perf") == b"{}"
    assert len(waits) == 1 and 15 < waits[0] <= 20


def test_429_asking_for_longer_than_perfgate_waits_fails_at_once(stub) -> None:
    state, api_url = stub
    state.fail_with, state.retry_after = 429, "3600"
    waits = Waits()
    with pytest.raises(GitLabError) as info:
        client(api_url, waits=waits).artifact("main", "r.json", "perf")
    assert "answered 429: GitLab's rate limit" in str(info.value)
    assert "GitLab asks to wait 3600s (Retry-After), longer than perfgate waits (30s)" in str(info.value)
    assert waits == [] and len(state.requests) == 1


def test_a_create_answered_502_after_gitlab_made_the_note_is_not_made_twice(stub) -> None:
    state, api_url = stub
    state.notes[7] = [{"id": 1, "body": "LGTM"}]
    state.fail_with, state.fail_count, state.fail_methods, state.act_then_fail = 502, 1, frozenset({"POST"}), True
    assert client(api_url).upsert_note(7, REPORT) == ("updated", 101)
    assert [n["id"] for n in state.notes[7]] == [1, 101]
    assert [m for m, _, _ in state.requests] == ["GET", "POST", "GET", "PUT"]


def test_a_transient_error_in_the_gate_job_does_not_fail_it(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One 503 (then 429) during baseline fetch and gitlab-comment: both still succeed."""
    ci_env.fail_with, ci_env.fail_count = 503, 1
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 0
    assert "no baseline yet" in capsys.readouterr().out
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    ci_env.fail_with, ci_env.fail_count, ci_env.retry_after = 429, 1, "0"
    assert main(["gitlab-comment", str(report)]) == 0
    assert "perfgate note 101 created on merge request !7" in capsys.readouterr().out


# ------------------------------------------------------------------ malformed answers


@pytest.mark.parametrize(
    ("method", "answer", "fragment"),
    [
        ("GET", {"notes": []}, "answered a JSON object where a list of notes was expected"),
        ("GET", [1, 2], "answered a list holding a number where notes (JSON objects) were expected"),
        ("GET", [{"id": "abc", "body": NOTE_MARKER}], "answered a note with the id 'abc': expected a positive whole"),
        ("GET", b"<html>502 Bad Gateway</html>", "did not answer JSON"),
        ("GET", b"\xff\xfe\x00[", "did not answer JSON"),
        ("GET", b"[" * 100_000, "did not answer JSON"),
        ("GET", b"", "answered null where a list of notes was expected"),
        ("POST", {"body": "x"}, "answered a note with no id: expected a positive whole number"),
        ("POST", {"id": "abc"}, "answered a note with the id 'abc': expected a positive whole number"),
        ("POST", {"id": True}, "answered a note with the id True"),
        ("POST", [], "answered a list where a note (a JSON object) was expected"),
    ],
)
def test_a_malformed_answer_is_a_clear_error(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str, answer: object, fragment: str
) -> None:
    ci_env.answers[method] = answer
    with pytest.raises(GitLabError, match=re.escape(fragment)):
        client(os.environ["CI_API_V4_URL"]).upsert_note(7, REPORT)
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    assert main(["gitlab-comment", str(report)]) == 2
    err = _err(capsys)
    assert err.startswith("error: GitLab API ") and fragment in err


# ------------------------------------------------------------------ what the CLI is given


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://gitlab.example.com/api/v4",
        "http://",
        "http://host:99999/api/v4",
        "gitlab.example.com/api/v4",
        "http://gitlab example.com/api/v4",
        "https://gitlab.example.com/api/v4?x=1",
    ],
)
def test_a_bad_ci_api_v4_url_is_a_clear_error(
    ci_env: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("CI_API_V4_URL", url)
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
    err = _err(capsys)
    assert err.startswith(f"error: CI_API_V4_URL {url!r} is not a GitLab API address: expected an http:// or https://")
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    assert main(["gitlab-comment", str(report)]) == 2
    assert "is not a GitLab API address" in _err(capsys)
    assert ci_env.requests == []


def test_a_url_with_a_password_is_refused_without_showing_it(
    ci_env: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI_API_V4_URL", "https://user:hunter2@gitlab.example.com/api/v4")
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
    err = _err(capsys)
    assert "CI_API_V4_URL carries a user name or password" in err and "hunter2" not in err


@pytest.mark.parametrize("mr", ["4/../../5", "0", "-1", "abc", "7 8", "1e3", ""])
def test_a_bad_merge_request_iid_is_refused_before_any_request(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], mr: str
) -> None:
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    assert main(["gitlab-comment", str(report), "--mr", mr]) == 2
    err = _err(capsys)
    if mr:
        assert f"error: --mr {mr!r} is not a merge request IID: expected a positive whole number" in err
    else:
        assert "no merge request: pass --mr IID" in err
    assert ci_env.requests == []
    with pytest.raises(GitLabError, match="is not a merge request IID"):
        check_mr_iid(mr or " ")


def test_a_bad_ci_merge_request_iid_is_named(
    ci_env: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7/notes/1")
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    assert main(["gitlab-comment", str(report)]) == 2
    assert "error: CI_MERGE_REQUEST_IID '7/notes/1' is not a merge request IID" in _err(capsys)
    assert ci_env.requests == []


def test_a_token_with_a_line_break_is_refused_without_showing_it(
    ci_env: StubState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI_JOB_TOKEN", TOKEN + "\n")
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b")]) == 2
    assert "error: CI_JOB_TOKEN holds a character no GitLab token has" in _err(capsys)
    assert ci_env.requests == []


@pytest.mark.parametrize("path", ["../secrets.json", ".perfgate/../../x.json", "/etc/passwd", "./r.json"])
def test_a_fetch_path_leaving_the_artifacts_is_refused(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    assert main(["baseline", "fetch", "--to", str(tmp_path / "b"), "--path", path]) == 2
    assert f"error: --path {path!r} leaves the job's artifacts" in _err(capsys)
    assert ci_env.requests == []


# ------------------------------------------------------------------ what gitlab-comment posts


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", NOTE_MARKER.encode() + b"\n\n"])
def test_an_empty_report_is_not_posted_and_the_note_is_kept(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    ci_env.notes[7] = [{"id": 5, "body": f"{NOTE_MARKER}\n{REPORT}"}]
    report = tmp_path / "report.md"
    report.write_bytes(content)
    assert main(["gitlab-comment", str(report)]) == 2
    assert f"error: {report}: is empty: nothing to post" in _err(capsys)
    assert ci_env.requests == [] and ci_env.notes[7][0]["body"] == f"{NOTE_MARKER}\n{REPORT}"
    assert main(["gitlab-comment", str(report), "--dry-run"]) == 2


@pytest.mark.parametrize(
    "content",
    ["# My notes\nperfgate: PASSED\n", "/approve\n### perfgate: PASSED\n", "hello\n", "perfgate PASSED\n"],
)
def test_a_file_that_is_not_a_perfgate_report_is_not_posted(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    report = tmp_path / "report.md"
    report.write_text(content)
    assert main(["gitlab-comment", str(report)]) == 2
    assert "is not a perfgate report: its first line is" in _err(capsys)
    assert ci_env.requests == []


def test_a_report_that_is_not_utf8_is_a_clear_error(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_bytes(REPORT.encode() + b"\xff\xfe bad")
    assert main(["gitlab-comment", str(report)]) == 2
    assert f"error: {report}: is not UTF-8 text (byte {len(REPORT.encode())})" in _err(capsys)
    assert ci_env.requests == []


def test_quick_action_lines_are_posted_escaped(
    ci_env: StubState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_text(REPORT + "/approve\n  /merge\n\t/close\nsee /tmp/x and a/b\n| /unassign | cell |\n")
    assert main(["gitlab-comment", str(report)]) == 0
    posted = ci_env.notes[7][0]["body"]
    assert not re.search(r"^\s*/", posted, re.MULTILINE)  # no line GitLab would run
    assert "\n\\/approve\n  \\/merge\n\t\\/close\nsee /tmp/x and a/b\n| /unassign | cell |" in posted
    assert posted.startswith(f"{NOTE_MARKER}\n### :x: perfgate: FAILED")
    capsys.readouterr()
    assert main(["gitlab-comment", str(report), "--dry-run"]) == 0
    assert capsys.readouterr().out == posted + "\n"  # the dry run shows what would be posted


def test_note_body_and_neutralising_units() -> None:
    assert neutralise_quick_actions("/merge\nx /y\n /z") == "\\/merge\nx /y\n \\/z"
    assert note_body("perfgate: PASSED\n", "r.md") == f"{NOTE_MARKER}\nperfgate: PASSED"
    assert note_body("## perfgate ab: PASSED (paired A/B)\n", "r.md").endswith("\n## perfgate ab: PASSED (paired A/B)")
    marked = f"{NOTE_MARKER}\n### :white_check_mark: perfgate: PASSED\n/approve"
    assert note_body(marked, "r.md") == f"{NOTE_MARKER}\n### :white_check_mark: perfgate: PASSED\n\\/approve"
    with pytest.raises(GitLabError, match="more than GitLab keeps in one note"):
        note_body("perfgate: PASSED\n" + "x" * 1_000_000, "r.md")
    assert json.loads(json.dumps(note_body(REPORT, "r.md"))).count(NOTE_MARKER) == 1


def test_the_environment_proxy_is_used_as_urllib_used_it(stub, monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy / no_proxy as before (urllib honoured them): the stub plays the proxy here."""
    state, api_url = stub
    state.artifacts[("main", "perf", "r.json")] = b"{}"
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", api_url.removesuffix("/api/v4"))
    assert client("http://gitlab.invalid/api/v4").artifact("main", "r.json", "perf") == b"{}"
    assert state.requests[-1][1].startswith("http://gitlab.invalid/api/v4/projects/group%2Fproj/jobs/artifacts/")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert client(api_url).artifact("main", "r.json", "perf") == b"{}"
    assert state.requests[-1][1].startswith("/api/v4/projects/")  # straight to the host, not through the proxy
