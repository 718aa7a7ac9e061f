"""The temporary git repository the paired A/B harness runs ``perfgate ab`` in.

A src-layout project: ``src/benchlib/workloads.py`` is a verbatim copy of
``bench/gate_accuracy/workloads.py`` (8 workloads of 20 identical units, ~2 us to ~15 ms), and
``src/benchlib/__init__.py`` bakes the slowdown factor into the library code (``FACTOR = 1.0`` in
the base commit). ``tests/test_workloads.py`` times each workload with the ``perf`` fixture.
The harness changes ``FACTOR`` in the working tree (never committed) to make an A/B run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE.parent / "gate_accuracy" / "workloads.py"

LIBRARY = '''\
"""The library under test: every workload runs round(20 * FACTOR) identical units of work."""

from .workloads import UNITS, make

FACTOR = {factor!r}


def workload(name):
    return make(name, FACTOR)
'''

TESTS = """\
import pytest

import benchlib


@pytest.mark.parametrize("name", sorted(benchlib.UNITS))
def test_workload(perf, name):
    perf(benchlib.workload(name))
"""

PYTEST_INI = "[pytest]\n"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def set_factor(repo: Path, factor: float) -> None:
    """Bake ``factor`` into the working tree's library code (1.0 = the base commit's code)."""
    (repo / "src" / "benchlib" / "__init__.py").write_text(LIBRARY.format(factor=float(factor)))


def make_repo(root: Path) -> str:
    """Create the fixture repository at ``root`` (its base commit has factor 1.0); its commit id."""
    (root / "src" / "benchlib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "benchlib" / "workloads.py").write_text(WORKLOADS.read_text())
    set_factor(root, 1.0)
    (root / "tests" / "test_workloads.py").write_text(TESTS)
    (root / "pytest.ini").write_text(PYTEST_INI)
    (root / ".gitignore").write_text("__pycache__/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base: factor 1.0")
    return _git(root, "rev-parse", "HEAD")


def is_clean(repo: Path) -> bool:
    return _git(repo, "status", "--porcelain") == ""
