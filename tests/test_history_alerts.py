"""Alerts on the default branch's history (issue 20, item 5): the plan from a judged history's
change points, and carrying it out against the loopback GitLab stub: one issue per regressed
series, titled with the test and the size; no second issue and no duplicate note on a re-run; a
later step noted; a return to the old level noted and closed; --dry-run without a token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from harness.gitlab import stubbed
from pytest_perfgate.gitlab import ISSUE_LABEL, GitLab
from pytest_perfgate.history.alerts import (
    AlertKind,
    apply,
    baseline_moved,
    change_marker,
    compare_url,
    describe,
    is_back,
    plan,
    series_marker,
)
from pytest_perfgate.history.model import (
    ChangePoint,
    CommitRange,
    Direction,
    History,
    Point,
    SeriesHistory,
    SeriesKey,
    SeriesKind,
)
from pytest_perfgate.testing.gitlab_stub import StubState

pytestmark = pytest.mark.timeout(60)

TOKEN = "glpat-ALERTS-secret-3k"
KEY = SeriesKey("tests/x.py::test_y", "median", "s", SeriesKind.TIMING)
OTHER = SeriesKey("tests/x.py::test_z", "instructions", "", SeriesKind.COUNTER)
PROJECT = "https://gitlab.example.com/group/app"


def commit(i: int) -> str:
    return f"{i:02d}" + "abc1234567" * 4


def points(levels: list[float]) -> tuple[Point, ...]:
    return tuple(Point(i + 1, commit(i + 1), "main", None, v, v * 0.01, 20) for i, v in enumerate(levels))


def step(key: SeriesKey, index: int, before: float, after: float, *, open: bool = True, **kw: object) -> ChangePoint:
    worse = after > before if not key.higher_is_better else after < before
    return ChangePoint(
        key=key,
        index=index,
        commits=CommitRange(index, commit(index), index + 1, commit(index + 1)),
        before=before,
        after=after,
        change=(after - before) / before,
        direction=Direction.REGRESSION if worse else Direction.IMPROVEMENT,
        p_value=1e-6,
        open=open,
        **kw,  # type: ignore[arg-type]
    )


def history(*series: SeriesHistory) -> History:
    return History(series=series, runs=12)


def regressed() -> SeriesHistory:
    levels = [0.010] * 6 + [0.01123] * 6
    return SeriesHistory(KEY, points(levels), (step(KEY, 6, 0.010, 0.01123),), min_detectable_step=0.05)


def quiet() -> SeriesHistory:
    return SeriesHistory(OTHER, points([1000.0] * 12))


def test_an_open_regression_plans_one_issue_titled_with_the_test_and_the_size() -> None:
    alerts = plan(history(quiet(), regressed()), project_url=PROJECT)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind is AlertKind.OPEN and alert.key == KEY
    assert alert.title == "perf: tests/x.py::test_y median +12.3% since 07abc123"
    assert alert.text.splitlines() == [
        "perfgate found a step in the default branch's history of `tests/x.py::test_y`.",
        "",
        "- series: `tests/x.py::test_y`, median (timing)",
        "- level: 10ms -> 11.2ms (+12.3%, regression), confidence 100.0%",
        f"- commit range: [06abc123..07abc123]({PROJECT}/-/compare/{commit(6)}...{commit(7)}) (runs 6 .. 7)",
        "- this series shows steps from about 5.0% on",
    ]
    assert series_marker(KEY) == f"<!-- perfgate-history-series {KEY.slug} -->"


def test_without_a_project_url_the_range_is_the_shas_and_an_environment_change_is_said() -> None:
    series = regressed()
    from pytest_perfgate.history.model import FieldChange

    cp = replace(
        series.change_points[0], environment_changed=True, environment_fields=(FieldChange("image", "a", "b"),)
    )
    (alert,) = plan(history(replace(series, change_points=(cp,))))
    assert alert.title.endswith("since 07abc123 (environment changed)")
    assert "- commit range: `06abc123..07abc123` (runs 6 .. 7)" in alert.text
    assert "- **the environment changed in this range (image a -> b)**: the step may be the runner's" in alert.text
    assert compare_url(None, cp) is None


def test_an_improvement_closes_only_when_back_at_the_old_level() -> None:
    reg = step(KEY, 4, 0.010, 0.020, open=False)
    full = step(KEY, 8, 0.020, 0.0104)
    half = step(KEY, 8, 0.020, 0.017)
    assert is_back([reg], full) and not is_back([reg], half)
    levels = [0.010] * 4 + [0.020] * 4 + [0.0104] * 4
    (alert,) = plan(history(SeriesHistory(KEY, points(levels), (reg, full))))
    assert alert.kind is AlertKind.RESOLVE and alert.close
    assert alert.text.startswith("median improved by -48.0%: back at the level before the regression: closing")
    (alert,) = plan(history(SeriesHistory(KEY, points(levels), (reg, half))))
    assert not alert.close and "better, not yet back at the level before the regression" in alert.text
    # an improvement with no regression before it: no issue to speak of
    assert plan(history(SeriesHistory(KEY, points(levels), (replace(full, index=4, open=True),)))) == []
    # higher is better: a drop is the regression, a rise back closes
    rate = SeriesKey("t::rate", "requests", "1/s", SeriesKind.TIMING, higher_is_better=True)
    drop, rise = step(rate, 4, 100.0, 50.0, open=False), step(rate, 8, 50.0, 98.0)
    assert drop.is_regression and not rise.is_regression and is_back([drop], rise)


@pytest.fixture
def gitlab() -> Iterator[tuple[StubState, GitLab]]:
    with stubbed(TOKEN, "group/app") as pair:
        yield pair


def test_a_rerun_opens_no_second_issue_and_makes_no_duplicate_note(gitlab) -> None:
    state, client = gitlab
    said: list[str] = []
    alerts = plan(history(quiet(), regressed()))
    assert apply(alerts, client, say=said.append) == [
        "issue #1 opened: perf: tests/x.py::test_y median +12.3% since 07abc123"
    ]
    assert apply(alerts, client, say=said.append) == [
        "issue #1 already reports this step: perf: tests/x.py::test_y median +12.3% since 07abc123"
    ]
    assert list(state.issues) == [1] and state.issues[1]["notes"] == []
    issue = state.issues[1]
    assert issue["labels"] == [ISSUE_LABEL] and issue["state"] == "opened"
    assert issue["description"].startswith(f"{series_marker(KEY)}\n{change_marker(alerts[0].change_point)}\n")

    # a second step up, later: a note on the same issue, the title updated; once, however often run
    first = regressed().change_points[0]
    second = step(KEY, 9, 0.01123, 0.015)
    levels = [0.010] * 6 + [0.01123] * 3 + [0.015] * 3
    later = plan(history(SeriesHistory(KEY, points(levels), (replace(first, open=False), second))))
    title = "perf: tests/x.py::test_y median +33.6% since 10abc123"
    assert apply(later, client, say=said.append) == [f"issue #1 noted: {title}"]
    assert apply(later, client, say=said.append) == [f"issue #1 already noted: {title}"]
    assert len(issue["notes"]) == 1 and issue["title"] == "perf: tests/x.py::test_y median +33.6% since 10abc123"

    # back at the old level: noted and closed; a re-run finds no open issue and does nothing
    back = step(KEY, 11, 0.015, 0.0101)
    levels = [0.010] * 6 + [0.01123] * 3 + [0.015] * 2 + [0.0101]
    closed = (replace(first, open=False), replace(second, open=False))
    resolve = plan(history(SeriesHistory(KEY, points(levels), (*closed, back))))
    # back near 10ms, the level before both steps (not only before the second)
    assert is_back(closed, back) and not is_back(closed, step(KEY, 11, 0.015, 0.0125))
    assert [a.kind for a in resolve] == [AlertKind.RESOLVE]
    assert apply(resolve, client, say=said.append) == [f"issue #1 noted and closed: {KEY.label}"]
    assert issue["state"] == "closed" and len(issue["notes"]) == 2
    assert apply(resolve, client, say=said.append) == [f"no open issue for {KEY.label}: nothing to note"]
    assert [m for m, _, _ in state.requests].count("POST") == 3  # one issue, two notes
    assert said[0].startswith("issue #1 opened")


def test_dry_run_text() -> None:
    assert describe([]) == "perfgate history: no open change point calls for an issue\n"
    text = describe(plan(history(regressed())))
    assert text.startswith(
        "would open the issue 'perf: tests/x.py::test_y median +12.3% since 07abc123' "
        "(or note this step on the series' open issue)\n    perfgate found a step"
    )


def test_the_merge_request_note_says_which_tests_baseline_moved() -> None:
    lines = baseline_moved(history(quiet(), regressed()), ["tests/x.py::test_y", "tests/x.py::test_z"])
    assert lines == [
        "the default branch's median of tests/x.py::test_y moved +12.3% (regression) in 06abc123..07abc123 and "
        "has stayed there since (run 7 of 12): the baseline itself moved"
    ]
    assert baseline_moved(history(quiet(), regressed()), ["tests/x.py::test_z"]) == []  # not compared: not said
    many = [replace(regressed(), key=replace(KEY, test=f"t{i}")) for i in range(3)]
    many = [replace(s, change_points=tuple(replace(cp, key=s.key) for cp in s.change_points)) for s in many]
    lines = baseline_moved(history(*many), ["t0", "t1", "t2"], shown=2)
    assert len(lines) == 3 and lines[-1].startswith("... and 1 more compared series with an open change point")


def test_perfgate_compare_says_in_the_note_when_the_baseline_moved(tmp_path, capsys) -> None:
    from harness.results import make_run
    from pytest_perfgate.cli import main
    from pytest_perfgate.history.model import write_history
    from pytest_perfgate.model import save_results

    for level in (0.99, 1.0, 1.01, 1.0, 1.005):
        save_results(tmp_path / "r.json", make_run({"t::a": [level] * 5, "t::b": [level] * 5}))
        assert main(["baseline", "promote", str(tmp_path / "r.json"), "--to", str(tmp_path / "bl")]) == 0
    save_results(tmp_path / "cur.json", make_run({"t::a": [1.0] * 5, "t::b": [1.0] * 5}))
    key = replace(KEY, test="t::a")
    series = replace(regressed(), key=key, change_points=(step(key, 6, 0.010, 0.01123),))
    write_history(history(series), tmp_path / "history.json")
    capsys.readouterr()
    md = tmp_path / "report.md"
    args = ["compare", str(tmp_path / "bl"), str(tmp_path / "cur.json"), "--markdown", str(md)]
    assert main([*args, "--history", str(tmp_path / "history.json")]) == 0
    line = (
        "the default branch's median of t::a moved +12.3% (regression) in 06abc123..07abc123 and has stayed there "
        "since (run 7 of 12): the baseline itself moved"
    )
    assert f"\nnotice: {line}\n" in capsys.readouterr().out
    assert f"\n> **Notice:** {line}\n" in md.read_text(encoding="utf-8")
    assert main(args) == 0  # no history: nothing said
    assert "baseline itself moved" not in md.read_text(encoding="utf-8")
    assert main([*args, "--history", str(tmp_path / "nothing.json")]) == 2
    assert "nothing.json" in capsys.readouterr().err


def test_alert_gitlab_needs_the_token_on_the_default_branch_and_dry_run_needs_none(gitlab) -> None:
    from pytest_perfgate.errors import GitLabError
    from pytest_perfgate.history.alerts import alert_gitlab

    state, client = gitlab
    env = {
        "CI_API_V4_URL": client.api_url,
        "CI_PROJECT_ID": "group/app",
        "CI_PROJECT_URL": PROJECT,
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
    }
    said: list[str] = []
    judged = history(regressed())
    assert len(alert_gitlab(judged, dry_run=True, env=env, say=said.append)) == 1
    assert said[0].startswith("would open the issue 'perf: tests/x.py::test_y median +12.3% since 07abc123'")
    assert f"({PROJECT}/-/compare/" in said[0] and state.requests == []
    with pytest.raises(GitLabError, match="PERFGATE_GITLAB_TOKEN is not set: --alert gitlab opens issues"):
        alert_gitlab(judged, env=env, say=said.append)
    assert alert_gitlab(judged, env={**env, "CI_COMMIT_BRANCH": "feature"}, say=said.append) == []
    assert said[-1] == "perfgate history: not on the default branch (feature, not main): no issue opened or changed"
    env["MY_TOKEN"] = TOKEN
    for _ in range(2):
        alert_gitlab(judged, env=env, token_variable="MY_TOKEN", say=said.append)
    assert said[-2:] == [
        "issue #1 opened: perf: tests/x.py::test_y median +12.3% since 07abc123",
        "issue #1 already reports this step: perf: tests/x.py::test_y median +12.3% since 07abc123",
    ]
    assert state.requests and all(TOKEN not in line for line in said)


def test_perfgate_compare_reads_the_baseline_directorys_own_history(tmp_path, capsys) -> None:
    """A baseline directory whose history file shows a step 30% up at its 7th run: compare against it
    says so without --history."""
    from harness.results import make_run
    from pytest_perfgate.cli import main
    from pytest_perfgate.model import save_results

    levels = [1.0, 1.01, 0.99, 1.0, 1.005, 0.995, 1.3, 1.31, 1.29, 1.3, 1.305, 1.295]
    for i, level in enumerate(levels):
        run = make_run({"t::a": [level * (1 + j / 1000) for j in range(5)], "t::b": [1.0 + j / 1000 for j in range(5)]})
        run = replace(run, metadata={**run.metadata, "git": {"commit": commit(i + 1), "branch": "main"}})
        save_results(tmp_path / "r.json", run)
        assert main(["baseline", "promote", str(tmp_path / "r.json"), "--to", str(tmp_path / "bl")]) == 0
    save_results(tmp_path / "cur.json", make_run({"t::a": [1.3] * 5, "t::b": [1.0] * 5}))
    capsys.readouterr()
    md = tmp_path / "report.md"
    assert main(["compare", str(tmp_path / "bl"), str(tmp_path / "cur.json"), "--markdown", str(md)]) in (0, 3)
    text = md.read_text(encoding="utf-8")
    notices = [line for line in text.splitlines() if "baseline itself moved" in line]
    assert len(notices) == 1, text
    assert notices[0].startswith("> **Notice:** the default branch's median of t::a moved +30.")
    assert f"(regression) in {commit(6)[:8]}..{commit(7)[:8]} and has stayed there since (run 7 of 12)" in notices[0]
