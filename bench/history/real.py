"""A real history: the catalog example's suite run over a sequence of commits with one known change.

A copy of examples/catalog becomes a git repository; ``--before`` commits leave the code as it is
(an empty commit each), then one commit makes ``Catalog.render_page`` escape every description
(``html.escape``: more time and more allocations per page; the page itself is unchanged, its
descriptions hold nothing to escape), then ``--after`` empty commits. At every commit the suite
runs (``pytest --perfgate-save --perfgate-allocations``, timed and counted allocations) and the run
is promoted into a baseline directory (``perfgate baseline promote``: the history file). Last,
``perfgate history`` judges it; the script prints its text and writes its JSON.

    python bench/history/real.py --before 10 --after 10 --out bench/out/history_real.json

Expected: change points in ``test_render_product_page`` (time and allocations) at the commit range
ending at the change, nothing else (other tests are controls).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHANGE = (
    "f\"<li><a href='/p/{p.id}'>{p.name}</a> {p.price_cents / 100:.2f} - {p.description}</li>\"",
    "f\"<li><a href='/p/{p.id}'>{p.name}</a> {p.price_cents / 100:.2f} - {html.escape(p.description)}</li>\"",
)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def run_suite(repo: Path, baseline: Path) -> float:
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--perfgate-save=current.json", "--perfgate-allocations"],
        cwd=repo,
        capture_output=True,
        check=False,  # two catalog tests fail their budgets on purpose
    )
    subprocess.run(
        [sys.executable, "-m", "pytest_perfgate.cli", "baseline", "promote", "current.json", "--to", str(baseline)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=int, default=10)
    parser.add_argument("--after", type=int, default=10)
    parser.add_argument("--out", default="bench/out/history_real.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder) / "catalog"
        shutil.copytree(ROOT / "examples" / "catalog", repo, ignore=shutil.ignore_patterns("baseline", ".perfgate"))
        baseline = Path(folder) / "baseline"
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "catalog")
        changed_at = None
        for i in range(args.before + args.after):
            if i == args.before:
                source = (repo / "catalog.py").read_text()
                assert CHANGE[0] in source
                source = source.replace(CHANGE[0], CHANGE[1]).replace("import random\n", "import html\nimport random\n")
                (repo / "catalog.py").write_text(source)
                git(repo, "commit", "-q", "-am", "render_page escapes descriptions")
                changed_at = git(repo, "rev-parse", "HEAD")
            else:
                git(repo, "commit", "-q", "--allow-empty", "-m", f"unrelated change {i}")
            took = run_suite(repo, baseline)
            print(f"run {i + 1}: {git(repo, 'rev-parse', '--short', 'HEAD')} ({took:.1f} s)", flush=True)
        print(f"the change: {changed_at}")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pytest_perfgate.cli", "history", str(baseline), "--all", "--json",
             str(Path(args.out).resolve())],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
