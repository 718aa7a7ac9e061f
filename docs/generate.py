"""Regenerate the output blocks of the guides in docs/ from the examples, so they never go stale.

    python docs/generate.py            # run the examples, rewrite every generated block
    python docs/generate.py --check    # only check that every block has a generator (fast; in the tests)

A block in a guide looks like::

    <!-- generated: NAME -->
    ...anything...
    <!-- /generated -->

and is replaced by the output of the generator NAME (fenced as text, or raw for Markdown).
Timings differ from run to run; what the blocks show is real output of the current code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "110", "PY_COLORS": "0"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    return _clean(done.stdout + done.stderr)


def _clean(text: str) -> str:
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    return re.sub(r"/tmp/[\w./-]+/", "", text)


def _section(text: str, start: str, end: str | tuple[str, ...]) -> str:
    """Lines from the first line starting with ``start`` up to (not including) one starting with ``end``."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next((i for i in range(first + 1, len(lines)) if lines[i].startswith(end)), len(lines))
    return "\n".join(lines[first:last]).rstrip()


def _pytest(cwd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


class Outputs:
    """Runs each example once, lazily, and cuts the blocks from its output."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._cache: dict[str, str] = {}

    def _once(self, key: str, make: Callable[[], str]) -> str:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def catalog(self) -> str:
        cwd = ROOT / "examples" / "catalog"
        return self._once("catalog", lambda: _run(_pytest(cwd, f"--perfgate-save={self.tmp}/current.json"), cwd))

    def gate(self) -> str:
        self.catalog()
        cwd = ROOT / "examples" / "catalog"
        md = self.tmp / "report.md"
        self._once(
            "gate",
            lambda: _run(
                [
                    sys.executable,
                    "-m",
                    "pytest_perfgate.cli",
                    "compare",
                    "baseline",
                    str(self.tmp / "current.json"),
                    "--markdown",
                    str(md),
                ],
                cwd,
            ),
        )
        return md.read_text()

    def race(self) -> str:
        cwd = ROOT / "examples" / "graph_service"
        return self._once("race", lambda: _run(_pytest(cwd, "--runxfail", "-k", "test_parallel_delete"), cwd))

    def mongo(self) -> str:
        cwd = ROOT / "examples" / "audit_log"
        return self._once("mongo", lambda: _run(_pytest(cwd, "-rP", "-k", "advisor or many_users"), cwd))


GENERATORS: dict[str, Callable[[Outputs], tuple[str, str]]] = {
    # name -> (fence language or "" for raw Markdown, text)
    "catalog-table": lambda o: ("text", _section(o.catalog(), "test  ", "results:")),
    "memory-failure": lambda o: ("text", _section(o.catalog(), "perf budget exceeded: mem_peak", ("____", "===="))),
    "time-failure": lambda o: ("text", _section(o.catalog(), "perf budget exceeded: p95", ("____", "===="))),
    "gate-comment": lambda o: ("", o.gate().strip()),
    "race-failure": lambda o: ("text", _section(o.race(), "race: ", "------")),
    "mongo-report": lambda o: ("text", _section(o.mongo(), "___", "====")),
}


def guides() -> list[Path]:
    return sorted(DOCS.glob("guide-*.md"))


def check() -> list[str]:
    """Problems: a block naming no generator, or a generator no guide uses."""
    problems, used = [], set()
    for guide in guides():
        for match in BLOCK.finditer(guide.read_text()):
            used.add(match["name"])
            if match["name"] not in GENERATORS:
                problems.append(f"{guide.name}: block {match['name']!r} has no generator")
    problems += [f"generator {name!r} is used by no guide" for name in sorted(set(GENERATORS) - used)]
    return problems


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Outputs(Path(tmp))
        for guide in guides():

            def fill(match: re.Match[str]) -> str:
                fence, text = GENERATORS[match["name"]](outputs)
                body = f"```{fence}\n{text}\n```\n" if fence else f"{text}\n"
                return f"{match.group(1)}{body}{match.group(4)}"

            guide.write_text(BLOCK.sub(fill, guide.read_text()))
            print(f"regenerated {guide.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the blocks against the generators")
    args = parser.parse_args()
    problems = check()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or args.check:
        return 1 if problems else 0
    regenerate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
