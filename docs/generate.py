"""Regenerate the output blocks of the guides in docs/ from the examples, so they never go stale.

    python docs/generate.py                  # run the examples, rewrite every generated block
    python docs/generate.py docs/gitlab.md   # only that page's blocks
    python docs/generate.py --check          # only check that every block has a generator (fast; in the tests)
    python docs/generate.py --diff           # rewrite nothing; exit 1 if docs/gitlab.md is out of date (in the tests)

A block in a guide looks like::

    <!-- generated: NAME -->
    ...anything...
    <!-- /generated -->

and is replaced by the output of the generator NAME (fenced as text, or raw for Markdown).
Timings in the guide-*.md blocks differ from run to run; what the blocks show is real output of the
current code. The gitlab.md blocks are the GitLab jobs' commands run against the loopback GitLab stub
(pytest_perfgate.testing.gitlab_stub) on the committed runs of examples/catalog/baseline, so they
come out the same every time; the stub's address is shown as https://gitlab.example.com/api/v4.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CATALOG = ROOT / "examples" / "catalog"
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
        self._gitlab: dict[str, str] | None = None

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
        return self._once(
            "race", lambda: _run(_pytest(cwd, "--runxfail", "test_graph_race.py::test_parallel_delete"), cwd)
        )

    def mongo(self) -> str:
        cwd = ROOT / "examples" / "audit_log"
        return self._once("mongo", lambda: _run(_pytest(cwd, "-rP", "-k", "advisor or many_users"), cwd))

    def gitlab(self) -> dict[str, str]:
        if self._gitlab is None:
            self._gitlab = GitLabScenario(self.tmp / "gitlab").run()
        return self._gitlab


class GitLabScenario:
    """The GitLab jobs' perfgate commands, as ci/perfgate.gitlab-ci.yml runs them (PERFGATE_WORKDIR
    ".", PERFGATE_BASELINE_KEEP 10), against the loopback stub, on the committed runs of
    examples/catalog/baseline: a first merge request with no baseline; two default-branch pipelines
    whose perfgate-baseline jobs build the run history (run-000001.json, then run-000002.json), the
    stub serving each job's .perfgate/baseline/ to the next as GitLab serves the latest artifacts;
    a merge request whose results are run-000003.json (the same code: the catalog's deliberate
    budget breaches fail it) gated on that two-run history; the note posted twice and printed; the
    fetch's errors."""

    TOKEN = "glpat-DOCS-example-token"  # must never show in any block
    EXAMPLE_API = "https://gitlab.example.com/api/v4"
    KEEP = "10"  # PERFGATE_BASELINE_KEEP

    def __init__(self, project: Path) -> None:
        self.project = project
        self.env: dict[str, str] = {}

    def command(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``$ perfgate ARGS`` and what it printed (and its exit status when not 0); an argument
        with a ``*`` is expanded in the project directory, as the job's shell would."""
        expanded: list[str] = []
        for arg in args:
            matches = sorted(str(p.relative_to(self.project)) for p in self.project.glob(arg)) if "*" in arg else []
            expanded += matches or [arg]
        done = subprocess.run(
            [sys.executable, "-m", "pytest_perfgate.cli", *expanded],
            cwd=self.project,
            env={**os.environ, "COLUMNS": "110", "PY_COLORS": "0", **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        text = (done.stdout + done.stderr).rstrip()
        if self.TOKEN in text:
            raise AssertionError(f"the token was printed by perfgate {' '.join(args)}")
        text = _clean(text.replace(self.env["CI_API_V4_URL"], self.EXAMPLE_API))
        status = f"\n(exit {done.returncode})" if done.returncode else ""
        shown = " ".join(arg if "*" in arg else shlex.quote(arg) for arg in ("perfgate", *args))  # a glob unquoted
        return f"$ {shown}\n{text}{status}"

    def job(self, shard: Path) -> None:
        """A new job's checkout: the shard it gets as an artifact, no .perfgate/baseline yet (the
        template's ``rm -rf .perfgate/baseline``)."""
        shutil.rmtree(self.project / ".perfgate" / "baseline", ignore_errors=True)
        shutil.copy(shard, self.project / ".perfgate" / "shard-1.json")

    def run(self) -> dict[str, str]:
        from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

        runs = CATALOG / "baseline"
        (self.project / ".perfgate").mkdir(parents=True)
        shutil.copy(CATALOG / "perfgate.yml", self.project / "perfgate.yml")
        served = self.project.parent / "artifacts"  # what GitLab keeps of the last perfgate-baseline job
        history = (served / ".perfgate" / "baseline", ("main", "perfgate-baseline"))
        merge = ("merge", ".perfgate/shard-*.json", "-o", ".perfgate/results.json")
        fetch = ("baseline", "fetch", "--to", ".perfgate/baseline", "--keep", self.KEEP)
        promote = ("baseline", "promote", ".perfgate/results.json", "--to", ".perfgate/baseline", "--keep", self.KEEP)
        state = StubState(token=self.TOKEN)
        blocks = {}
        with GitLabStub(state) as api_url:
            self.env = {
                "CI_API_V4_URL": api_url,
                "CI_PROJECT_ID": "42",
                "CI_DEFAULT_BRANCH": "main",
                "CI_JOB_TOKEN": self.TOKEN,
                "CI_MERGE_REQUEST_IID": "4",
                "PERFGATE_GITLAB_TOKEN": self.TOKEN,
            }
            self.job(runs / "run-000003.json")
            blocks["gitlab-fetch-first"] = self.command(*fetch)

            pipelines = []
            for number, results in enumerate(("run-000001.json", "run-000002.json"), start=1):
                self.job(runs / results)
                log = [self.command(*merge), self.command(*fetch), self.command(*promote)]
                pipelines.append(f"# default-branch pipeline {number}\n" + "\n".join(log))
                shutil.rmtree(history[0], ignore_errors=True)
                shutil.copytree(self.project / ".perfgate" / "baseline", history[0])
                state.artifact_dirs[history[1]] = served
            blocks["gitlab-baseline-log"] = "\n".join(pipelines)

            self.job(runs / "run-000003.json")
            blocks["gitlab-gate-log"] = "\n".join(
                [
                    self.command(*merge),
                    self.command(*fetch),
                    self.command(
                        "compare",
                        ".perfgate/baseline",
                        ".perfgate/results.json",
                        "--markdown",
                        ".perfgate/report.md",
                        "--junit",
                        ".perfgate/gate-junit.xml",
                        "--metrics",
                        ".perfgate/metrics.txt",
                        "--json",
                        ".perfgate/gate.json",
                    ),
                ]
            )

            # perfgate-comment posts comment.md: the paired A/B gate's ab.md (off here) above report.md
            shutil.copy(self.project / ".perfgate" / "report.md", self.project / ".perfgate" / "comment.md")
            comment = ("gitlab-comment", ".perfgate/comment.md", "--token-variable", "PERFGATE_GITLAB_TOKEN")
            posted = [self.command(*comment) for _ in range(2)]  # two pipelines of the merge request
            dry = self.command("gitlab-comment", ".perfgate/comment.md", "--dry-run", env={"PERFGATE_GITLAB_TOKEN": ""})
            head = dry.split("\n#### ")[0].rstrip()  # the heading and the gate line; the tables follow
            blocks["gitlab-comment-log"] = "\n".join([*posted, head, "..."])
            if len(state.notes[4]) != 1:
                raise AssertionError(f"expected one note on the merge request, found {len(state.notes[4])}")

            errors = []
            self.job(runs / "run-000003.json")
            stored = history[0] / "run-000002.json"
            whole = stored.read_bytes()
            stored.write_bytes(whole[:2000])  # a truncated download
            errors.append(self.command(*fetch))
            stored.write_bytes(whole)
            errors.append(self.command(*fetch, env={"CI_JOB_TOKEN": "glpat-expired"}))
            state.fail_with = 503
            errors.append(self.command(*fetch))
            blocks["gitlab-fetch-errors"] = "\n".join(errors)
        return blocks


GENERATORS: dict[str, Callable[[Outputs], tuple[str, str]]] = {
    # name -> (fence language or "" for raw Markdown, text)
    "catalog-table": lambda o: ("text", _section(o.catalog(), "test  ", "results:")),
    "memory-failure": lambda o: ("text", _section(o.catalog(), "perf budget exceeded: mem_peak", ("____", "===="))),
    "time-failure": lambda o: ("text", _section(o.catalog(), "perf budget exceeded: p95", ("____", "===="))),
    "gate-comment": lambda o: ("", o.gate().strip()),
    "race-failure": lambda o: ("text", _section(o.race(), "race: ", "------")),
    "mongo-report": lambda o: ("text", _section(o.mongo(), "___", "====")),
    "gitlab-fetch-first": lambda o: ("text", o.gitlab()["gitlab-fetch-first"]),
    "gitlab-baseline-log": lambda o: ("text", o.gitlab()["gitlab-baseline-log"]),
    "gitlab-gate-log": lambda o: ("text", o.gitlab()["gitlab-gate-log"]),
    "gitlab-comment-log": lambda o: ("text", o.gitlab()["gitlab-comment-log"]),
    "gitlab-fetch-errors": lambda o: ("text", o.gitlab()["gitlab-fetch-errors"]),
}


def guides() -> list[Path]:
    """The pages with generated blocks: the guides, and the GitLab set-up guide."""
    return [*sorted(DOCS.glob("guide-*.md")), DOCS / "gitlab.md"]


#: pages whose blocks come out the same on every run (no timings measured here): tests/test_docs.py
#: checks that they are up to date with ``--diff``
DETERMINISTIC = [DOCS / "gitlab.md"]


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


def render(guide: Path, outputs: Outputs) -> str:
    """The page with every generated block filled anew."""

    def fill(match: re.Match[str]) -> str:
        fence, text = GENERATORS[match["name"]](outputs)
        body = f"```{fence}\n{text}\n```\n" if fence else f"{text}\n"
        return f"{match.group(1)}{body}{match.group(4)}"

    return BLOCK.sub(fill, guide.read_text())


def regenerate(pages: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Outputs(Path(tmp))
        for guide in pages:
            guide.write_text(render(guide, outputs))
            print(f"regenerated {guide.relative_to(ROOT)}")


def differences(pages: list[Path]) -> str:
    """A unified diff from each page as it is to the page regenerated ("" when all are up to date)."""
    diff: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Outputs(Path(tmp))
        for guide in pages:
            old, new = guide.read_text(), render(guide, outputs)
            name = str(guide.relative_to(ROOT) if guide.is_relative_to(ROOT) else guide)
            diff += difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, f"{name} (regenerated)")
    return "".join(diff)


def _page(text: str) -> Path:
    path = Path(text).resolve()
    if path not in guides():
        raise argparse.ArgumentTypeError(
            f"{text} is not a page with generated blocks ({', '.join(p.name for p in guides())})"
        )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=_page, help="only these pages (default: every page)")
    parser.add_argument("--check", action="store_true", help="only check the blocks against the generators")
    parser.add_argument(
        "--diff",
        action="store_true",
        help="rewrite nothing: show how the pages (default: those whose output is deterministic, docs/gitlab.md) "
        "differ from their regeneration, exit 1 if they do",
    )
    args = parser.parse_args()
    problems = check()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or args.check:
        return 1 if problems else 0
    if args.diff:
        pages = args.pages or DETERMINISTIC
        diff = differences(pages)
        if diff:
            names = " ".join(str(p.relative_to(ROOT)) for p in pages)
            print(diff, end="")
            print(f"error: generated blocks are out of date: run python docs/generate.py {names}", file=sys.stderr)
        return 1 if diff else 0
    regenerate(args.pages or guides())
    return 0


if __name__ == "__main__":
    sys.exit(main())
