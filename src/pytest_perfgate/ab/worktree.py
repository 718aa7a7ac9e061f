"""The base side's tree: a git worktree of the base revision, the current test files laid over
it, an optional install step. Every failure is an :class:`~pytest_perfgate.errors.AbError` with
the command's output tail; the worktree is removed on exit, also on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .._procs import tail
from ..errors import AbError

GIT_TIMEOUT = 120.0


def git(repo: Path, *args: str, timeout: float = GIT_TIMEOUT) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise AbError("git is not installed: perfgate ab needs git to check out the base revision") from None
    except subprocess.TimeoutExpired:
        raise AbError(f"git {' '.join(args)} did not finish within {timeout:g}s") from None
    if done.returncode != 0:
        raise AbError(f"git {' '.join(args)} failed (exit {done.returncode}):\n{tail(done.stderr or done.stdout, 20)}")
    return done.stdout.strip()


def repository_root(start: Path) -> Path:
    try:
        return Path(git(start, "rev-parse", "--show-toplevel")).resolve()
    except AbError:
        raise AbError(f"{start} is not inside a git repository: perfgate ab compares two git revisions") from None


def resolve_revision(repo: Path, revision: str) -> str:
    """The commit ``revision`` names, or an error saying it does not exist."""
    if not revision.strip() or revision.startswith("-"):
        raise AbError(f"--base {revision!r} is not a revision name")
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    except AbError:
        raise AbError(
            f"--base {revision!r}: no such revision in {repo} (in CI, fetch it first: "
            f"git fetch origin <branch>; shallow clones may lack it)"
        ) from None


@contextmanager
def worktree(repo: Path, commit: str, *, keep: bool = False) -> Iterator[Path]:
    """A detached worktree of ``commit`` in a temporary directory, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="perfgate-ab-"))
    path = parent / "base"
    try:
        git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
        yield path
    finally:
        if not keep:
            remove_worktree(repo, path)
            shutil.rmtree(parent, ignore_errors=True)


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree and its registration, whatever state it is in (never raises)."""
    try:
        git(repo, "worktree", "remove", "--force", str(path), timeout=60)
    except AbError:
        shutil.rmtree(path, ignore_errors=True)
    with suppress(AbError):
        git(repo, "worktree", "prune", timeout=60)


def overlay(files: Iterable[str | Path], source_root: Path, target_root: Path) -> list[str]:
    """Copy ``files`` (inside ``source_root``; files or directories) to the same relative paths
    under ``target_root``. Returns the relative paths copied; paths outside the root are skipped."""
    copied = []
    for name in sorted({str(f) for f in files}):
        source = Path(name)
        if not source.is_absolute():
            source = source_root / source
        try:
            relative = source.resolve().relative_to(source_root)
        except ValueError:
            continue
        target = target_root / relative
        try:
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            else:
                raise AbError(f"{name}: no such file to lay over the base revision")
        except OSError as exc:
            raise AbError(f"cannot copy {relative} into the base worktree: {exc}") from None
        copied.append(str(relative))
    return copied


def run_install(command: str, cwd: Path, env: Mapping[str, str], timeout: float) -> None:
    """Run the base side's install step (a shell command) in its tree."""
    try:
        done = subprocess.run(
            command, shell=True, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise AbError(f"the install step did not finish within {timeout:g}s: {command}") from None
    if done.returncode != 0:
        output = tail((done.stdout or "") + (done.stderr or ""), 20)
        raise AbError(f"the install step failed (exit {done.returncode}): {command}\n{output}")


def import_paths(root: Path, requested: Iterable[str] | None) -> list[str]:
    """Directories to put first on a side's PYTHONPATH: ``requested`` (relative to the side's
    root), or by default ``src`` when the tree has one (src layout)."""
    if requested is None:
        return [str(root / "src")] if (root / "src").is_dir() else []
    return [str(root / p) for p in requested if p]


def pythonpath(paths: list[str], env: Mapping[str, str]) -> str:
    return os.pathsep.join([*paths, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])


def session_files(config: Any, items: Iterable[Any]) -> list[str]:
    """What a side's pytest session read from the tree and the other side must see too: the
    selected tests' files, the conftest files loaded, and the ini file (a pytest config and its
    items, duck-typed: this module does not import pytest)."""
    files = {str(item.path) for item in items}
    for plugin in config.pluginmanager.get_plugins():
        name = getattr(plugin, "__file__", None)
        if name and os.path.basename(name) == "conftest.py":
            files.add(str(name))
    if config.inipath is not None:
        files.add(str(config.inipath))
    return sorted(files)
