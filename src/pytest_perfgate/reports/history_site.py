"""The trend site's pages (``perfgate history DIR --html OUT``): the values
:mod:`pytest_perfgate.history.site` prepares, rendered with the ``history_*.html.j2`` templates
(autoescaped, the run report's environment and style) and the plots of
:func:`~.svg.history_svg`; written as ``OUT/index.html`` and ``OUT/series/<slug>.html``."""

from __future__ import annotations

import os
from pathlib import Path

from ..history.model import History
from ..history.site import index_page, series_page
from .html import environment
from .svg import history_svg

#: the site's own style, after the run report's
_CSS = (
    "table.series td,table.series th{white-space:nowrap}td.test{white-space:normal;word-break:break-all}"
    ".open{font-weight:600}.env{color:#7a5200}nav a{color:#fff}svg.history text{font:11px system-ui,sans-serif}"
    ".plot{overflow-x:auto}"
)

TITLE = "perfgate: the default branch's history"


def render_site(
    history: History, out: str | os.PathLike[str], *, project_url: str | None = None, title: str = TITLE
) -> list[Path]:
    """Write the site into the directory ``out`` (made when missing); returns the pages written,
    the index first. ``project_url`` (CI_PROJECT_URL): change points link to GitLab's compare page."""
    from ..paths import check_output, write_text_atomic, writing

    if not history.whole:
        raise ValueError("the trend site plots whole series: judge the history whole to render it")
    root = check_output(out, "the trend site", directory=True)
    env = environment()  # jinja2 there, or an error with the install hint
    from markupsafe import Markup  # jinja2's own dependency

    css = Markup((env.loader.get_source(env, "report.css")[0] if env.loader is not None else "") + _CSS)
    written = []
    with writing(str(root), "the trend site"):
        (root / "series").mkdir(parents=True, exist_ok=True)
        index = env.get_template("history_index.html.j2").render(
            title=title, css=css, **index_page(history, project_url)
        )
        written.append(write_text_atomic(root / "index.html", index))
        template = env.get_template("history_series.html.j2")
        for series in history.ordered():
            page = series_page(series, project_url)
            plot = page.pop("plot")
            svg = Markup(history_svg(plot["points"], plot["steps"], plot["kind"], unit=plot["unit"]))
            text = template.render(title=title, css=css, series={**page, "svg": svg})
            written.append(write_text_atomic(root / "series" / f"{page['slug']}.html", text))
    return written
