"""Git projects and ``perfgate ab`` runs of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LIBRARY = """\
def checksum(n=3000):
    total = 0
    for i in range({loops}):
        total = (total + i * i) % 1000003
    return total


def render(items=200):
    return ",".join(str(i) for i in range(items))
"""


#: a handler whose time is spread over three functions; ``{loops}`` sets checksum's share
HANDLER = """\
def parse(n=1500):
    return [str(i) for i in range(n)]


def checksum(n=3000):
    total = 0
    for i in range({loops}):
        total = (total + i * i) % 1000003
    return total


def render(items):
    return ",".join(sorted(items, key=len))


def handle():
    items = parse()
    checksum()
    return render(items)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repository(root: Path, files: dict[str, str]) -> Path:
    """A git repository at ``root`` on branch main, whose one commit holds ``files`` (path: text)."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return root


def ab(
    repo: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_"))} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest_perfgate.cli", "ab", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: what an unchanged test may be judged: its two pairs of processes can be a few % apart
NOT_A_REGRESSION = ("unchanged", "improvement", "unstable", "warning")


def no_worktrees_left(repo: Path) -> None:
    listed = git(repo, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed


def ab_against_main(
    repo: Path, report: Path, *options: str, pinned: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``perfgate ab --base main`` over the project's ``tests``, at least 12 blocks, its JSON report to
    ``report``; ``pinned``: on a CPU this process may use (a runner may be limited to some); ``env``
    added to the environment."""
    cpu = ("--cpu", str(min(os.sched_getaffinity(0)))) if pinned else ()
    return ab(
        repo, "--base", "main", *cpu, "--min-blocks", "12", "--json", str(report), *options, "--", "tests", env=env
    )
