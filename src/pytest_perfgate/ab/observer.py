"""A pytest plugin loaded (``-p pytest_perfgate.ab.observer``) in each side's counted session of
``perfgate ab --instructions``: it writes what the session selected (node ids, the files to lay
over the base tree), each test's outcome, and which pytest-perfgate it imported, to the JSON file
named by :data:`ENV_OBSERVED`; once after the collection, again when the session ends.

It hooks by name only and imports no pytest (its arguments are typed ``Any``): pytest finds the
hooks by their names. It runs in the counted session itself (under callgrind, the inner one)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .worktree import session_files

#: the JSON file this plugin writes (set by the counted controller)
ENV_OBSERVED = "PERFGATE_AB_OBSERVED"
#: the number of lines of a failure kept in the file
KEPT_LINES = 12


class _Observed:
    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "perfgate": str(Path(__file__).resolve().parents[1]),
            "collected": False,
            "finished": False,
            "nodeids": [],
            "files": [],
            "errors": [],
            "outcomes": {},
        }

    def write(self) -> None:
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(self.data, file)
        os.replace(temporary, self.path)


_observed: _Observed | None = None


def pytest_configure(config: Any) -> None:
    global _observed
    path = os.environ.get(ENV_OBSERVED)
    _observed = _Observed(path) if path else None


def pytest_collectreport(report: Any) -> None:
    if _observed is not None and report.failed:
        _observed.data["errors"].append({"nodeid": report.nodeid, "message": _last_lines(report.longreprtext)})


def pytest_collection_finish(session: Any) -> None:
    if _observed is None:
        return
    files = session_files(session.config, session.items)
    _observed.data.update(collected=True, nodeids=[item.nodeid for item in session.items], files=files)
    _observed.write()


def pytest_runtest_logreport(report: Any) -> None:
    if _observed is None:
        return
    outcomes: dict[str, dict[str, str]] = _observed.data["outcomes"]
    known = outcomes.get(report.nodeid)
    # the worst phase wins: a failing teardown fails a test that passed
    if known is not None and known["outcome"] != "passed":
        return
    if report.when == "call" or report.outcome != "passed" or known is None:
        message = ""
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
        elif report.outcome == "failed":
            message = _last_lines(report.longreprtext, 1) or f"in its {report.when}"
        outcomes[report.nodeid] = {"outcome": report.outcome, "message": message}


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _observed is None or not _observed.data["collected"]:
        return
    _observed.data.update(finished=True, exitstatus=int(exitstatus))
    _observed.write()


def _last_lines(text: str, lines: int = KEPT_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept).removeprefix("E").strip() if lines == 1 else "\n".join(kept)
