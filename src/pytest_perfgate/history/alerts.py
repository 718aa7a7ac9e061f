"""Alerts on the default branch's history: one GitLab issue per series whose newest level is a
regression, noted or closed when the series comes back (``perfgate history DIR --alert gitlab``).

Planning is pure (:func:`plan`: a :class:`~.model.History` in, typed :class:`Alert` actions out);
:func:`apply` carries them out with the GitLab client, and :func:`describe` says what they would
do (``--dry-run``). What makes it idempotent across retried pipelines:

* a series' issue carries a hidden marker with the series' digest (:func:`series_marker`) and the
  label :data:`~pytest_perfgate.gitlab.ISSUE_LABEL`: it is found again, never opened twice;
* every change point it reports carries a marker of its own (:func:`change_marker`: the series and
  the run at which the new level starts), in the issue's description or in a note: a change point
  already reported is not reported again.

The rules, per series (its *open* change point: the one starting its newest level):

* an open **regression**: open the series' issue, titled with the test, the figure, the size and
  the commit (``perf: tests/x.py::test_y median +12.3% since abc1234``); when one is open already
  (a later step), a note and the new title;
* an open **improvement** after one or more regressions: a note on the series' open issue; the
  issue is closed when the series is **back**: its new level is no worse than the level before
  those regressions by more than half their whole step (:data:`BACK_SHARE`), else only the note;
* nothing open, or no issue to note: nothing.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..units import Kind, format_value
from .model import ChangePoint, History, SeriesHistory, SeriesKey, SeriesKind

if TYPE_CHECKING:
    from ..gitlab import GitLab

#: an improvement closes the issue when what is left of the regression is at most this share of its step
BACK_SHARE = 0.5


class AlertKind(str, Enum):
    OPEN = "open"  # open the series' issue (or note the new step on the open one)
    RESOLVE = "resolve"  # note the improvement on the series' open issue, close it when back


@dataclass(frozen=True)
class Alert:
    """One action on one series' issue."""

    kind: AlertKind
    key: SeriesKey
    change_point: ChangePoint
    #: the issue's title (OPEN), one line
    title: str
    #: the issue's description (OPEN) or the note's text (RESOLVE, and OPEN on an issue already open)
    text: str
    #: RESOLVE: the series is back at its old level: close the issue after the note
    close: bool = False

    @property
    def marker(self) -> str:
        return series_marker(self.key)

    @property
    def change_marker(self) -> str:
        return change_marker(self.change_point)


def series_marker(key: SeriesKey) -> str:
    """The hidden marker of a series' issue (its digest: stable across runs and renames of nothing)."""
    return f"<!-- perfgate-history-series {key.slug} -->"


def change_marker(cp: ChangePoint) -> str:
    """The hidden marker of one change point's report (the series, and the run its level starts at)."""
    return f"<!-- perfgate-history-change {cp.key.slug} run {cp.run} -->"


# --------------------------------------------------------------------------- words shared with the site


def kind_of(key: SeriesKey) -> Kind:
    """How a series' figures are written: a time, a size, a count, or a number with its unit."""
    if key.unit == "s":
        return Kind.TIME
    if key.unit == "B":
        return Kind.SIZE
    if key.kind is SeriesKind.COUNTER or not key.unit:
        return Kind.COUNT
    return Kind.NUMBER


def level_text(key: SeriesKey, value: float) -> str:
    return format_value(value, kind_of(key), key.unit if kind_of(key) is Kind.NUMBER else "")


def change_text(change: float) -> str:
    """``+12.3%``, ``-4.0%``; ``from 0`` for a level that was 0."""
    if not math.isfinite(change):
        return "from 0"
    return f"{change * 100:+.1f}%"


def short(commit: str | None) -> str:
    return (commit or "")[:8]


def compare_url(project_url: str | None, cp: ChangePoint) -> str | None:
    """GitLab's compare page of a change point's commit range (``PROJECT/-/compare/OLD...NEW``),
    or None without a project URL or a commit on either side."""
    old, new = cp.commits.last_old, cp.commits.first_new
    if not project_url or not old or not new:
        return None
    quote = urllib.parse.quote
    return f"{project_url.rstrip('/')}/-/compare/{quote(old, safe='')}...{quote(new, safe='')}"


def environment_text(cp: ChangePoint) -> str:
    """What changed in the environment in the change point's range ("" when nothing did)."""
    if not cp.environment_changed:
        return ""
    fields = ", ".join(f"{f.field} {f.before or '-'} -> {f.after or '-'}" for f in cp.environment_fields)
    return "the environment changed in this range" + (f" ({fields})" if fields else "")


# --------------------------------------------------------------------------- planning


def _title(cp: ChangePoint) -> str:
    # a history made outside CI (no commit recorded) names the run instead of an unknown commit
    where = f"since {short(cp.commits.first_new)}" if cp.commits.first_new else f"since run {cp.commits.first_new_run}"
    if cp.environment_changed:
        where += " (environment changed)"
    return f"perf: {cp.key.test} {cp.key.metric} {change_text(cp.change)} {where}"


def _escape(text: str) -> str:
    """A test id in Markdown text: in backticks (no markup), its backticks dropped."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _facts(series: SeriesHistory, cp: ChangePoint, project_url: str | None) -> list[str]:
    key = cp.key
    link = compare_url(project_url, cp)
    commits = f"[{cp.commits.text}]({link})" if link else f"`{cp.commits.text}`"
    lines = [
        f"- series: {_escape(key.test)}, {key.metric} ({key.kind.value})",
        f"- level: {level_text(key, cp.before)} -> {level_text(key, cp.after)} ({change_text(cp.change)}, "
        f"{cp.direction.value}), confidence {cp.confidence:.1%}",
        f"- commit range: {commits} (runs {cp.commits.last_old_run} .. {cp.commits.first_new_run})",
    ]
    env = environment_text(cp)
    if env:
        lines.append(f"- **{env}**: the step may be the runner's, not the code's")
    if series.min_detectable_step is not None:
        lines.append(f"- this series shows steps from about {series.min_detectable_step:.1%} on")
    return lines


def _regressions_before(series: SeriesHistory, cp: ChangePoint) -> list[ChangePoint]:
    """The regressions right before ``cp`` (the steps up its issue reported, oldest first)."""
    found: list[ChangePoint] = []
    for c in reversed([c for c in series.change_points if c.run < cp.run]):
        if not c.is_regression:
            break
        found.insert(0, c)
    return found


def is_back(regressions: Sequence[ChangePoint], improvement: ChangePoint) -> bool:
    """Whether the level after ``improvement`` is within :data:`BACK_SHARE` of the regressions'
    whole step of the level before the first of them (or better)."""
    old, worst = regressions[0].before, regressions[-1].after
    worse = improvement.after - old
    if improvement.key.higher_is_better:
        worse = -worse
    return worse <= BACK_SHARE * abs(worst - old)


def plan(history: History, *, project_url: str | None = None) -> list[Alert]:
    """The actions the history's open change points call for, in the history's order (open
    regressions first)."""
    alerts = []
    for series in history.ordered():
        cp = series.open_change_point
        if cp is None:
            continue
        facts = _facts(series, cp, project_url)
        if cp.is_regression:
            text = "\n".join(
                [f"perfgate found a step in the default branch's history of {_escape(cp.key.test)}.", "", *facts]
            )
            alerts.append(Alert(AlertKind.OPEN, cp.key, cp, _title(cp), text))
            continue
        regressions = _regressions_before(series, cp)
        if not regressions:
            continue
        back = is_back(regressions, cp)
        verdict = (
            "back at the level before the regression: closing this issue"
            if back
            else "better, not yet back at the level before the regression"
        )
        text = "\n".join([f"{cp.key.metric} improved by {change_text(cp.change)}: {verdict}.", "", *facts])
        alerts.append(Alert(AlertKind.RESOLVE, cp.key, cp, _title(cp), text, close=back))
    return alerts


# --------------------------------------------------------------------------- carrying out


def describe(alerts: Sequence[Alert]) -> str:
    """What :func:`apply` would do, one paragraph per action (``--dry-run``)."""
    if not alerts:
        return "perfgate history: no open change point calls for an issue\n"
    out = []
    for alert in alerts:
        if alert.kind is AlertKind.OPEN:
            head = f"would open the issue {alert.title!r} (or note this step on the series' open issue)"
        else:
            action = "note and close" if alert.close else "note"
            head = f"would {action} the open issue of {alert.key.label}, if there is one"
        out += [head, *(f"    {line}" for line in alert.text.splitlines()), ""]
    return "\n".join(out)


def apply(alerts: Sequence[Alert], client: GitLab, *, say: Callable[[str], None] = print) -> list[str]:
    """Carry out the actions on GitLab; returns (and says) one line per action. A change point
    already reported (its marker in the issue's description or a note) is not reported again."""
    done = []
    for alert in alerts:
        issue = client.find_issue(alert.marker)
        if alert.kind is AlertKind.OPEN:
            if issue is None:
                description = f"{alert.change_marker}\n{alert.text}"
                action, issue = client.open_issue(alert.title, description, alert.marker)
                line = f"issue #{issue.iid} {'opened' if action == 'created' else 'found'}: {alert.title}"
            elif alert.change_marker in issue.description:
                line = f"issue #{issue.iid} already reports this step: {alert.title}"
            else:
                action, _ = client.add_issue_note(issue.iid, alert.text, alert.change_marker)
                if issue.title != alert.title:
                    client.update_issue(issue.iid, title=alert.title)
                line = f"issue #{issue.iid} {'noted' if action == 'created' else 'already noted'}: {alert.title}"
        elif issue is None:
            line = f"no open issue for {alert.key.label}: nothing to note"
        else:
            action, _ = client.add_issue_note(issue.iid, alert.text, alert.change_marker)
            if alert.close:
                client.update_issue(issue.iid, close=True)
            verb = "noted and closed" if alert.close else "noted"
            line = f"issue #{issue.iid} {verb if action == 'created' else 'already ' + verb}: {alert.key.label}"
        say(line)
        done.append(line)
    return done


def project_url_from(env: Mapping[str, str]) -> str | None:
    """CI_PROJECT_URL when it is an http(s) address, else None (links then show the shas)."""
    url = env.get("CI_PROJECT_URL", "").strip()
    return url if url.startswith(("https://", "http://")) and " " not in url else None


# --------------------------------------------------------------------------- the merge request's note

#: the open change points named one by one in a gate report; the rest are counted
MOVED_SHOWN = 10


def baseline_moved(history: History, tests: Sequence[str], *, shown: int = MOVED_SHOWN) -> list[str]:
    """One line per compared test whose series on the default branch has an open change point
    (the baseline the merge request is compared with moved itself), regressions first; past
    ``shown`` of them, one line counting the rest."""
    wanted = set(tests)
    found = [cp for s in history.ordered() if s.key.test in wanted and (cp := s.open_change_point) is not None]
    lines = []
    for cp in found[:shown]:
        env = " (the environment changed there)" if cp.environment_changed else ""
        lines.append(
            f"the default branch's {cp.key.metric} of {cp.key.test} moved {change_text(cp.change)} "
            f"({cp.direction.value}) in {cp.commits.text}{env} and has stayed there since "
            f"(run {cp.run} of {history.runs}): the baseline itself moved"
        )
    if len(found) > shown:
        lines.append(
            f"... and {len(found) - shown} more compared series with an open change point on the default branch "
            "(perfgate history)"
        )
    return lines


# --------------------------------------------------------------------------- perfgate history --alert gitlab


def alert_gitlab(
    history: History,
    *,
    dry_run: bool = False,
    token_variable: str = "PERFGATE_GITLAB_TOKEN",
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> list[Alert]:
    """``perfgate history DIR --alert gitlab [--dry-run]``: plan the alerts and carry them out on
    the project's issues (CI_API_V4_URL, CI_PROJECT_ID, the token in ``token_variable``), or only
    say them (``dry_run``: no token, no network). Off the default branch (CI_COMMIT_BRANCH set and
    not CI_DEFAULT_BRANCH) nothing is done, and said so: a branch's history is not main's."""
    import os

    from ..errors import GitLabError
    from ..gitlab import from_environment

    env = os.environ if env is None else env
    branch, default = env.get("CI_COMMIT_BRANCH", ""), env.get("CI_DEFAULT_BRANCH", "")
    alerts = plan(history, project_url=project_url_from(env))
    if dry_run:
        say(describe(alerts).rstrip("\n"))
        return alerts
    if branch and default and branch != default:
        say(f"perfgate history: not on the default branch ({branch}, not {default}): no issue opened or changed")
        return []
    if not env.get(token_variable):
        raise GitLabError(
            f"{token_variable} is not set: --alert gitlab opens issues and needs a token with the 'api' scope in "
            "that variable (a masked CI/CD variable; CI_JOB_TOKEN cannot open issues); --dry-run prints what it "
            "would do without one"
        )
    apply(alerts, from_environment(env, token_variable=token_variable), say=say)
    if not alerts:
        say(describe(alerts).rstrip("\n"))
    return alerts
