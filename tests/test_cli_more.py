"""perfgate report --html, merge and gitlab-comment, through the CLI's main()."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfgate.cli import main
from pytest_perfgate.model import RunResult, Series, TestResult, load_results, save_results
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState
from pytest_perfgate.units import Kind

TOKEN = "glpat-NEVER-SHOWN"


def _run(path: Path, names: list[str], scale: float = 1.0) -> str:
    tests = tuple(
        TestResult(
            n, series={"time": Series("time", Kind.TIME, tuple(0.001 * scale * (1 + i / 50) for i in range(30)))}
        )
        for n in names
    )
    return str(save_results(path, RunResult({"created": "now"}, tests)))


def test_report_html_with_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _run(tmp_path / "base.json", ["t::a"])
    current = _run(tmp_path / "cur.json", ["t::a"], scale=3.0)
    assert main(["report", current, "--html", str(tmp_path / "r.html"), "--baseline", base]) == 0
    assert f"html report: {tmp_path / 'r.html'}" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    assert 'id="gate-headline"' in page and "t::a" in page
    (tmp_path / "corrupt.json").write_text("{")
    assert (
        main(["report", current, "--html", str(tmp_path / "r2.html"), "--baseline", str(tmp_path / "corrupt.json")])
        == 2
    )
    assert not (tmp_path / "r2.html").exists()


def test_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _run(tmp_path / "a.json", ["t::a"]), _run(tmp_path / "b.json", ["t::b"])
    assert main(["merge", a, b, "-o", str(tmp_path / "m.json")]) == 0
    assert sorted(t.nodeid for t in load_results(tmp_path / "m.json").tests) == ["t::a", "t::b"]
    assert main(["merge", a, a, "-o", str(tmp_path / "m2.json")]) == 2
    assert "shards must not overlap" in capsys.readouterr().err


def test_gitlab_comment_creates_then_updates_and_never_prints_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_text("perfgate: PASSED\n\n| a | b |\n|---|---|\n")
    state = StubState(token=TOKEN)
    with GitLabStub(state) as api_url:
        monkeypatch.setenv("CI_API_V4_URL", api_url)
        monkeypatch.setenv("CI_PROJECT_ID", "42")
        monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")
        monkeypatch.setenv("PERFGATE_GITLAB_TOKEN", TOKEN)
        assert main(["gitlab-comment", str(report)]) == 0
        assert main(["gitlab-comment", str(report)]) == 0
        state.fail_with = 403
        assert main(["gitlab-comment", str(report)]) == 2
    out = capsys.readouterr()
    assert "perfgate note 101 created on merge request !7" in out.out
    assert "perfgate note 101 updated on merge request !7" in out.out
    assert "answered 403: the token may not do this" in out.err
    assert TOKEN not in out.out + out.err
    assert len(state.notes[7]) == 1 and state.notes[7][0]["body"].startswith("<!-- perfgate-report -->")


def test_gitlab_comment_dry_run_and_missing_merge_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_text("perfgate: PASSED\n\nhello\n")
    assert main(["gitlab-comment", str(report), "--dry-run"]) == 0
    assert capsys.readouterr().out == "<!-- perfgate-report -->\nperfgate: PASSED\n\nhello\n"
    monkeypatch.delenv("CI_MERGE_REQUEST_IID", raising=False)
    assert main(["gitlab-comment", str(report)]) == 2
    assert "no merge request: pass --mr IID" in capsys.readouterr().err
    assert main(["gitlab-comment", str(tmp_path / "missing.md"), "--dry-run"]) == 2
