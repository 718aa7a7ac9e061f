"""The GitLab client's issue methods (the history's alerts, issue 20) against the loopback stub: an
issue found by its hidden marker across pages, opened once even when a create is answered 502 after
GitLab made it, a note made once per marker, closing, quick actions neutralised, the token rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.gitlab import stubbed
from pytest_perfgate.gitlab import (
    ISSUE_LABEL,
    MAX_TITLE_CHARS,
    GitLab,
    GitLabError,
    check_issue_iid,
    issue_title,
)
from pytest_perfgate.testing.gitlab_stub import StubState

pytestmark = pytest.mark.timeout(60)

TOKEN = "glpat-ISSUES-secret-9x7"
MARKER = "<!-- perfgate-history-series 0123456789abcdef -->"


@pytest.fixture
def stub() -> Iterator[tuple[StubState, GitLab]]:
    with stubbed(TOKEN, "group/proj") as pair:
        yield pair


def _other_issues(state: StubState, count: int) -> None:
    for iid in range(1, count + 1):
        state.issues[iid] = {
            "iid": iid,
            "title": f"bug {iid}",
            "description": "<!-- perfgate-history-series ffff -->" if iid == 2 else "nothing",
            "labels": [ISSUE_LABEL] if iid % 2 else ["bug"],
            "state": "opened",
            "notes": [],
        }


def test_an_issue_is_opened_once_and_found_again_by_its_marker(stub) -> None:
    state, api = stub
    _other_issues(state, 5)  # the stub's pages hold 2: the search goes through pages
    action, issue = api.open_issue("perf: t::x median +12.3% since abc1234", "grew\n/close\n", MARKER)
    assert (action, issue.iid) == ("created", 6)
    assert api.open_issue("another title", "other text", MARKER) == ("found", issue)
    assert api.find_issue(MARKER) == issue
    made = state.issues[6]
    assert made["labels"] == [ISSUE_LABEL] and made["title"] == "perf: t::x median +12.3% since abc1234"
    assert made["description"] == f"{MARKER}\ngrew\n\\/close"  # the quick action shown, not run
    assert [m for m, _, _ in state.requests].count("POST") == 1
    assert all(h.get("Private-Token") == TOKEN for _, _, h in state.requests)


def test_a_closed_issue_or_one_without_the_label_is_not_found(stub) -> None:
    state, api = stub
    _other_issues(state, 3)
    state.issues[2]["description"] = MARKER  # marker, but not labelled
    assert api.find_issue(MARKER) is None
    state.issues[3]["description"] = MARKER
    state.issues[3]["state"] = "closed"
    assert api.find_issue(MARKER) is None
    state.issues[3]["state"] = "opened"
    assert api.find_issue(MARKER) is not None and api.find_issue(MARKER).iid == 3  # type: ignore[union-attr]


def test_a_create_answered_502_after_gitlab_made_it_is_not_made_twice(stub) -> None:
    state, api = stub
    state.fail_with, state.fail_count, state.fail_methods, state.act_then_fail = 502, 1, frozenset({"POST"}), True
    action, issue = api.open_issue("perf: t", "text", MARKER)
    assert action == "found" and list(state.issues) == [1]  # the retry looked first, and found it
    state.fail_count = 1
    assert api.add_issue_note(issue.iid, "moved back", "<!-- cp 1 -->")[0] == "exists"
    assert len(state.issues[1]["notes"]) == 1


def test_notes_are_made_once_per_marker_and_an_issue_closes(stub) -> None:
    state, api = stub
    _, issue = api.open_issue("perf: t", "text", MARKER)
    assert api.add_issue_note(issue.iid, "/label ~x\nstep again", "<!-- cp a -->") == ("created", 101)
    assert api.add_issue_note(issue.iid, "step again", "<!-- cp a -->") == ("exists", 101)
    assert api.add_issue_note(issue.iid, "back", "<!-- cp b -->") == ("created", 102)
    assert [n["body"] for n in state.issues[1]["notes"]] == [
        "<!-- cp a -->\n\\/label ~x\nstep again",
        "<!-- cp b -->\nback",
    ]
    closed = api.update_issue(issue.iid, description=f"{MARKER}\nnew text", close=True)
    assert closed.iid == 1 and state.issues[1]["state"] == "closed"
    assert state.issues[1]["description"] == f"{MARKER}\nnew text"
    assert api.find_issue(MARKER) is None


def test_errors_name_the_call_and_never_the_token(stub) -> None:
    state, api = stub
    state.fail_with = 403
    with pytest.raises(GitLabError) as info:
        api.open_issue("perf: t", "text", MARKER)
    assert "answered 403: the token may not do this" in str(info.value) and TOKEN not in str(info.value)
    state.fail_with = None
    state.issues[1] = {"iid": 1, "title": "t", "description": "d", "labels": [], "state": "opened", "notes": []}
    state.answers = {}
    with pytest.raises(GitLabError, match="is not an issue IID"):
        api.update_issue(0, close=True)


def test_titles_are_one_line_and_bounded() -> None:
    assert issue_title("perf:\n  a\x1bb  ") == "perf: a b"
    long = issue_title("x" * 400)
    assert len(long) == MAX_TITLE_CHARS and long.endswith("...")
    assert check_issue_iid(" 12 ") == 12
