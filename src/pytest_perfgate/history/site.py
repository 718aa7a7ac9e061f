"""The static trend site of the default branch's history (``perfgate history DIR --html OUT``):
``OUT/index.html``, the series sorted by their most recent change (open regressions first), and
``OUT/series/<slug>.html``, one page per series: its centre per run over the commits with the
spread band, the change points marked, each linked to its commit range (GitLab's compare page
when the project's URL is known, ``CI_PROJECT_URL``; else the shas).

No network, no script, no external resource, relative links only: the directory works as it is
from GitLab Pages (``public/``) or from disk. This module turns a :class:`~.model.History` into
plain values for the jinja2 templates (``reports/templates/history_*.html.j2``, autoescaped as the
run report's are); :mod:`pytest_perfgate.reports.history_site` draws the plots
(:func:`~pytest_perfgate.reports.svg.history_svg`), renders the pages and writes them.
"""

from __future__ import annotations

from typing import Any

from ..units import Kind
from .alerts import change_text, compare_url, environment_text, kind_of, level_text, short
from .model import ChangePoint, History, SeriesHistory

#: the points a series page lists in its table (the newest; the plot has them all)
TABLE_POINTS = 100


def _change_view(cp: ChangePoint, project_url: str | None) -> dict[str, Any]:
    key = cp.key
    return {
        "run": cp.run,
        "direction": cp.direction.value,
        "change": change_text(cp.change),
        "before": level_text(key, cp.before),
        "after": level_text(key, cp.after),
        "confidence": f"{cp.confidence:.1%}",
        "range": cp.commits.text,
        "url": compare_url(project_url, cp),
        "runs": f"{cp.commits.last_old_run} .. {cp.commits.first_new_run}",
        "environment": environment_text(cp),
        "open": cp.open,
    }


def series_row(series: SeriesHistory, project_url: str | None) -> dict[str, Any]:
    last = series.open_change_point or series.last_change
    newest = series.points[-1] if series.points else None
    return {
        "href": f"series/{series.key.slug}.html",
        "test": series.key.test,
        "metric": series.key.metric,
        "kind": series.key.kind.value,
        "runs": series.count,
        "level": level_text(series.key, newest.centre) if newest else "-",
        "change": None if last is None else _change_view(last, project_url),
        "steps": len(series.change_points),
        "min_step": "-" if series.min_detectable_step is None else f"{series.min_detectable_step:.1%}",
    }


def series_page(series: SeriesHistory, project_url: str | None) -> dict[str, Any]:
    """The values of a series page; ``plot`` holds what :func:`~..reports.svg.history_svg` draws
    (points: label, centre, spread; steps: index, before, after, label, regression; kind; unit)."""
    key, kind = series.key, kind_of(series.key)
    rows = [
        {
            "run": p.run,
            "commit": short(p.commit) or "-",
            "time": p.time or "-",
            "centre": level_text(key, p.centre),
            "spread": "-" if p.spread is None else level_text(key, p.spread),
            "count": p.count,
            "environment": p.environment_digest or "-",
        }
        for p in reversed(series.points[-TABLE_POINTS:])
    ]
    return {
        **series_row(series, project_url),
        "label": key.label,
        "slug": key.slug,
        "plot": {
            "points": [(f"run {p.run} {short(p.commit)}".rstrip(), p.centre, p.spread) for p in series.points],
            "steps": [
                (
                    cp.index,
                    cp.before,
                    cp.after,
                    f"{change_text(cp.change)} at "
                    + (short(cp.commits.first_new) if cp.commits.first_new else f"run {cp.commits.first_new_run}"),
                    cp.is_regression,
                )
                for cp in series.change_points
            ],
            "kind": kind,
            "unit": key.unit if kind is Kind.NUMBER else "",
        },
        "changes": [_change_view(cp, project_url) for cp in reversed(series.change_points)],
        "noise": "-" if series.noise is None else f"{series.noise:.1%}",
        "points": rows,
        "more_points": max(0, len(series.points) - TABLE_POINTS),
    }


def index_page(history: History, project_url: str | None) -> dict[str, Any]:
    """The values of the index: the history's figures and a row per series, in
    :meth:`~.model.History.ordered` order (open regressions first, then the most recent change)."""
    return {
        "history": {
            "runs": history.runs,
            "source": history.source,
            "alpha": history.alpha,
            "false_alarm_rate": history.false_alarm_rate,
            "open": len(history.open_change_points()),
            "not_judged": [{"what": n.what, "reason": n.reason} for n in history.not_judged],
        },
        "series": [series_row(s, project_url) for s in history.ordered()],
    }
