"""The static trend site of the default branch's history (issue 20, item 4): the index sorted by
the most recent change (open regressions first), a page per series with its plot and change points
linked to the commit range, every name escaped, no script, no external resource, relative links
only; and the pages as headless Chromium renders them."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_perfgate.history.model import History, SeriesHistory, SeriesKey, SeriesKind
from pytest_perfgate.history.site import index_page, series_page
from pytest_perfgate.reports.history_site import render_site
from pytest_perfgate.reports.svg import MAX_MARKED, history_svg
from pytest_perfgate.units import Kind
from test_history_alerts import KEY, PROJECT, commit, points, quiet, regressed, step

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def improved() -> SeriesHistory:
    key = SeriesKey("tests/a.py::test_fast", "median", "s", SeriesKind.TIMING)
    return SeriesHistory(key, points([0.02] * 5 + [0.01] * 7), (step(key, 5, 0.02, 0.01),))


def old_step() -> SeriesHistory:
    """A step long ago, closed by a later one back: no open change point."""
    key = SeriesKey("tests/b.py::test_old", "alloc_bytes", "B", SeriesKind.COUNTER)
    first, back = step(key, 3, 1000.0, 2000.0, open=False), step(key, 6, 2000.0, 1000.0, open=False)
    return SeriesHistory(key, points([1000.0] * 3 + [2000.0] * 3 + [1000.0] * 6), (first, back))


def history() -> History:
    return History(series=(quiet(), old_step(), improved(), regressed()), runs=12, source=".perfgate/baseline")


def test_the_index_lists_open_regressions_first_then_the_most_recent_change() -> None:
    page = index_page(history(), PROJECT)
    assert [(r["test"], r["metric"]) for r in page["series"]] == [
        ("tests/x.py::test_y", "median"),  # open regression
        ("tests/a.py::test_fast", "median"),  # open improvement
        ("tests/b.py::test_old", "alloc_bytes"),  # latest change at run 7
        ("tests/x.py::test_z", "instructions"),  # none
    ]
    first = page["series"][0]
    assert first["href"] == f"series/{KEY.slug}.html" and first["level"] == "11.2ms"
    assert first["change"]["url"] == f"{PROJECT}/-/compare/{commit(6)}...{commit(7)}"
    assert first["change"]["change"] == "+12.3%" and first["change"]["open"] is True
    assert page["series"][2]["level"] == "1kB" and page["series"][3]["change"] is None
    assert page["history"]["open"] == 2
    assert index_page(history(), None)["series"][0]["change"]["url"] is None  # the shas then


def test_a_series_page_holds_its_points_and_change_points() -> None:
    page = series_page(old_step(), None)
    assert [c["run"] for c in page["changes"]] == [7, 4]  # newest first
    assert page["changes"][0]["before"] == "2kB" and page["changes"][0]["after"] == "1kB"
    assert page["plot"]["kind"] is Kind.SIZE and len(page["plot"]["points"]) == 12
    assert page["plot"]["steps"][0] == (3, 1000.0, 2000.0, "+100.0% at 04abc123", True)
    assert [p["run"] for p in page["points"]][:3] == [12, 11, 10]


def test_the_plot_marks_the_steps_and_the_spread() -> None:
    plot = series_page(regressed(), None)["plot"]
    svg = history_svg(plot["points"], plot["steps"], plot["kind"])
    assert svg.count("<circle") == 12 and svg.count('class="change-point"') == 1
    assert 'class="spread"' in svg and "+12.3% at 07abc123" in svg
    assert history_svg(plot["points"][:1], [], Kind.TIME) == ""
    long = history_svg([("run", 1.0 + i % 3, 0.1) for i in range(MAX_MARKED + 1)], [], Kind.TIME)
    assert "<circle" not in long and "<polyline" in long  # the line alone: a page per series stays small


def _files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.html"))}


def test_the_site_is_self_contained_escaped_and_linked_relatively(tmp_path: Path) -> None:
    hostile = SeriesKey('tests/h.py::test_x[<script>alert("x")</script>]', "median", "s", SeriesKind.TIMING)
    series = replace(regressed(), key=hostile, change_points=(step(hostile, 6, 0.010, 0.01123),))
    written = render_site(
        replace(history(), series=(*history().series, series)), tmp_path / "public", project_url=PROJECT
    )
    assert written[0] == tmp_path / "public" / "index.html" and len(written) == 6
    files = _files(tmp_path / "public")
    assert set(files) == {"index.html", *(f"series/{s.key.slug}.html" for s in (*history().series, series))}
    for name, text in files.items():
        assert "<script" not in text.lower(), name
        assert "&lt;script&gt;" in text or hostile.slug not in name, name
        # the only absolute links are the compare pages; style and everything else inline
        links = re.findall(r'(?:href|src)="([^"]*)"', text)
        assert all(not link.startswith(("http", "/")) or link.startswith(f"{PROJECT}/-/compare/") for link in links)
        assert "<link" not in text and "@import" not in text and "url(" not in text
    index = files["index.html"]
    for row in index_page(history(), PROJECT)["series"]:
        assert f'href="{row["href"]}"' in index
    assert 'href="../index.html"' in files[f"series/{KEY.slug}.html"]


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    from pytest_perfgate.errors import ResultsFileError

    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsFileError, match="is a file, not a directory: expected a directory for the trend site"):
        render_site(history(), tmp_path / "file")


def _dom(page: Path) -> str:
    done = subprocess.run(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: the rendered pages are not checked")
def test_the_pages_render_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "public"
    render_site(history(), out, project_url=PROJECT)
    index = _dom(out / "index.html")
    rows = re.findall(r'<tr data-slug="series/([0-9a-f]{16})\.html">', index)
    assert rows == [s.key.slug for s in history().ordered()]
    assert "12 runs · .perfgate/baseline · 4 series · 2 open change points" in index
    page = _dom(out / "series" / f"{KEY.slug}.html")
    assert "<h1>tests/x.py::test_y</h1>" in page
    assert '<svg class="history"' in page and page.count("<circle") == 12
    assert f'<a href="{PROJECT}/-/compare/{commit(6)}...{commit(7)}">06abc123..07abc123</a>' in page
    assert "10ms → 11.2ms" in page


def test_perfgate_history_html_writes_the_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.results import make_run
    from pytest_perfgate.cli import main
    from pytest_perfgate.model import save_results

    for i, level in enumerate([1.0, 1.01, 0.99, 1.0, 1.5, 1.51, 1.49, 1.5]):
        run = make_run({"t::a": [level * (1 + j / 1000) for j in range(5)]})
        run = replace(run, metadata={**run.metadata, "git": {"commit": commit(i + 1), "branch": "main"}})
        save_results(tmp_path / "r.json", run)
        assert main(["baseline", "promote", str(tmp_path / "r.json"), "--to", str(tmp_path / "bl")]) == 0
    capsys.readouterr()
    out = tmp_path / "public"
    assert main(["history", str(tmp_path / "bl"), "--html", str(out), "--alert", "gitlab", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert f"trend site: {out / 'index.html'} (1 series pages)" in printed
    assert "would open the issue 'perf: t::a median +50.0% since 05abc123'" in printed
    assert "05abc123" in (out / "index.html").read_text(encoding="utf-8")
    (tmp_path / "file").write_text("x")
    assert main(["history", str(tmp_path / "bl"), "--html", str(tmp_path / "file")]) == 2
    assert "is a file, not a directory: expected a directory for the trend site" in capsys.readouterr().err


def test_a_history_without_commits_names_its_runs_not_question_marks(tmp_path: Path) -> None:
    """Runs made outside CI and outside a git checkout record no commit: the pages, the text and the
    alert's title name the runs instead."""
    import random

    from harness.results import make_run
    from pytest_perfgate.cli import main
    from pytest_perfgate.store.files import DirectoryStore

    rnd = random.Random(3)
    store = DirectoryStore(str(tmp_path / "b"))
    for i in range(24):
        level = 1.0 if i < 12 else 1.5
        store.promote(make_run({"t::a": [level * 0.002 * rnd.lognormvariate(0, 0.05) for _ in range(7)]}))
    assert main(["history", str(tmp_path / "b"), "--html", str(tmp_path / "site")]) == 0
    pages = [p.read_text() for p in (tmp_path / "site").rglob("*.html")]
    assert pages and not any("?..?" in page or ">?<" in page for page in pages)
    assert any("run 12..run 13" in page for page in pages)
