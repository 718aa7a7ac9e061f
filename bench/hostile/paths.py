"""Hostile paths, run as a user runs them (issue 16 item 3): every input slot of ``perfgate`` (and the
plugin's path options) given a FIFO, a socket, a device, a directory, a symlink loop, a dangling
symlink, a missing path, a path through a file, an empty, truncated, binary or foreign file; every
output slot given a directory, a FIFO, a device, a loop, a path through a file, an existing file
that is not perfgate's, a symlink, a dangling symlink, an unwritable place, an empty path and a
new nested path. Each case runs in its own process in a fresh folder, bounded by a timeout, and
its outcome is classified:

- clear error: refused (exit 2, or pytest's usage error 4) with ``error: PATH: ...`` naming the path;
- handled as documented: a case docs/gate.md ("Paths") documents as accepted ended that way
  (e.g. an absent baseline is "no baseline yet", a symlink is written through);
- refused (documented as accepted): a clear error where the docs promise acceptance;
- unclear error: refused without naming the path;
- traceback: a Python traceback or INTERNALERROR;
- data lost: a file the case must not touch changed (a foreign file overwritten, a FIFO or a
  symlink replaced, a stored run lost);
- silent wrong result: a bad path accepted (exit 0/1/3 where an error is due);
- hang: no answer within the time limit.

Run: ``python bench/hostile/paths.py`` (writes ``bench/hostile/RESULTS-paths.md``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "RESULTS-paths.md"
TIMEOUT = 20.0
CLASSES = (
    "clear error",
    "handled as documented",
    "refused (documented as accepted)",
    "unclear error",
    "traceback",
    "data lost",
    "silent wrong result",
    "hang",
    "not run",
)
PERFGATE = [sys.executable, "-c", "import sys; from pytest_perfgate.cli import main; sys.exit(main(sys.argv[1:]))"]
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--perfgate-max-time=10ms", "test_s.py"]
NO_TARGET = "http://127.0.0.1:9"
#: the perfgate under test (``--src DIR``: another checkout's src, e.g. the code before the fix)
SRC = str(ROOT / "src")  # loopback port 9: nothing listens, nothing leaves the machine


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    expect: str  # "error", "ok" or "either"
    target: str = ""  # the slot's path: allowed to change when the case is accepted
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0
    protected: list[str] = field(default_factory=list)


CASES: list[Case] = []


# --------------------------------------------------------------------------- the folder of each case


def results_json(level: float) -> str:
    import json

    tests = [
        {"nodeid": f"t::{n}", "outcome": "passed", "mode": "perf",
         "series": {"time": {"kind": "time", "values": [level * (i + 1)] * 5, "unit": "s"}}}
        for i, n in enumerate("ab")
    ]  # fmt: skip
    return json.dumps({"schema": "perfgate-results", "schema_version": 1, "metadata": {}, "tests": tests}, indent=1)


def prepare(folder: Path) -> None:
    good = results_json(1e-3)
    (folder / "good.json").write_text(good)
    (folder / "copy.json").write_text(good)
    (folder / "bench.json").write_text('{"benchmarks": [{"name": "t", "stats": {"data": [0.001, 0.002]}}]}')
    (folder / "perfgate.yml").write_text("gate:\n  max_regression: 10%\n")
    (folder / "notes.md").write_text("# notes: not perfgate's\n")
    (folder / "empty.json").write_text("")
    (folder / "trunc.json").write_text(good[: len(good) // 2])
    (folder / "garbage.json").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "blocker").write_text("a file in the way\n")
    (folder / "dir").mkdir()
    (folder / "published").mkdir()
    (folder / "published" / "report.md").write_text("old report\n")
    (folder / "published" / "base.json").write_text(good)
    (folder / "link.md").symlink_to(folder / "published" / "report.md")
    (folder / "link.json").symlink_to(folder / "published" / "base.json")
    (folder / "dangling.json").symlink_to(folder / "published" / "gone.json")
    (folder / "loop").symlink_to(folder / "loop")
    os.mkfifo(folder / "fifo")
    # a device node of the case's own (a copy of /dev/null's numbers): never the system's /dev/null, which
    # a perfgate that replaces an output atomically would replace with a regular file (seen, as root)
    with contextlib.suppress(OSError):  # not root: the char-device cases are reported as not run
        os.mknod(folder / "nulldev", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "sock"))
    sock.close()
    (folder / "locustfile.py").write_text("from locust import HttpUser, task\n\nclass U(HttpUser):\n    @task\n"
                                          "    def t(self):\n        self.client.get('/')\n")  # fmt: skip
    (folder / "test_s.py").write_text(
        "import pytest\n\n@pytest.mark.perf_budget(median=('1ns', '10'))\ndef test_a(perf):\n    perf(sum, range(3))\n"
    )
    store = folder / "store"
    store.mkdir()
    for i in (1, 2):
        (store / f"run-00000{i}.json").write_text(good)


def snapshot(folder: Path) -> dict[str, str]:
    """What each entry of the case's folder is: its type and, for a file, its content."""
    seen: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            seen[rel] = "link:" + os.readlink(path)
        elif path.is_fifo():
            seen[rel] = "fifo"
        elif path.is_char_device():
            seen[rel] = "char device"
        elif path.is_socket():
            seen[rel] = "socket"
        elif path.is_file():
            seen[rel] = "file:" + path.read_bytes().decode("utf-8", "replace")
        elif path.is_dir():
            seen[rel] = "dir"
    return seen


# --------------------------------------------------------------------------- the cases

INPUT_KINDS = {
    "fifo": "fifo",
    "socket": "sock",
    "char device": "nulldev",
    "directory": "dir",
    "symlink loop": "loop",
    "dangling symlink": "dangling.json",
    "missing": "absent.json",
    "through a file": "blocker/x.json",
    "empty file": "empty.json",
    "truncated JSON": "trunc.json",
    "binary garbage": "garbage.json",
    "foreign text": "notes.md",
}

#: slot name -> (argv with {} for the path, kinds for which acceptance is documented)
INPUT_SLOTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "report RESULTS": (["report", "{}"], {}),
    "compare BASELINE": (["compare", "{}", "good.json"], {"missing": "ok", "directory": "ok"}),
    "compare CURRENT": (["compare", "good.json", "{}"], {}),
    "merge RESULTS": (["merge", "good.json", "{}", "-o", "merged.json"], {}),
    "import SOURCE": (["import", "{}", "-o", "imported.json"], {}),
    "baseline promote CURRENT": (["baseline", "promote", "{}", "--to", "newstore"], {}),
    "baseline show LOCATION": (["baseline", "show", "{}"], {"missing": "ok", "directory": "ok"}),
    "check-config PATH": (["check-config", "{}"], {"empty file": "either", "foreign text": "either"}),
    "compare --config": (["compare", "good.json", "good.json", "--config", "{}"],
                         {"empty file": "either", "foreign text": "either"}),
    "report --html --baseline": (["report", "good.json", "--html", "r.html", "--baseline", "{}"],
                                 {"missing": "ok", "directory": "ok"}),
    "baseline fetch --from-file": (["baseline", "fetch", "--to", "newstore", "--from-file", "{}"], {}),
    "baseline fetch --from-dir": (["baseline", "fetch", "--to", "newstore", "--from-dir", "{}"],
                                  {"missing": "ok", "directory": "ok"}),
}  # fmt: skip

OUTPUT_KINDS = {
    "directory": "dir",
    "fifo": "fifo",
    "char device": "nulldev",
    "symlink loop": "loop",
    "through a file": "blocker/x.json",
    "loop in the folder": "loop/x.json",
    "foreign file": "notes.md",
    "symlink to a file": "link.json",
    "dangling symlink": "dangling.json",
    "unwritable place": "/proc/perfgate-bench.json",
    "empty path": "",
    "new nested path": "new/deeper/out.json",
}

LOAD = ["load", "locustfile.py", "--host", NO_TARGET, "-t", "2s"]
#: slot name -> (argv, kind -> documented outcome where not "error"; "perfgate" marks slots that
#: overwrite only a perfgate file)
OUTPUT_SLOTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "merge -o": (["merge", "good.json", "-o", "{}"], {"symlink to a file": "ok", "dangling symlink": "ok",
                                                      "new nested path": "ok"}),
    "import -o": (["import", "bench.json", "-o", "{}"], {"symlink to a file": "ok", "dangling symlink": "ok",
                                                         "new nested path": "ok"}),
    "baseline promote --to": (["baseline", "promote", "good.json", "--to", "{}"],
                              {"directory": "ok", "symlink to a file": "ok", "dangling symlink": "ok",
                               "new nested path": "ok"}),
    "compare --markdown": (["compare", "good.json", "good.json", "--markdown", "{}"], {}),
    "compare --junit": (["compare", "good.json", "good.json", "--junit", "{}"], {}),
    "compare --metrics": (["compare", "good.json", "good.json", "--metrics", "{}"], {}),
    "compare --json": (["compare", "good.json", "good.json", "--json", "{}"], {}),
    "report --html": (["report", "good.json", "--html", "{}"], {}),
    "baseline fetch --to": (["baseline", "fetch", "--to", "{}", "--from-file", "good.json"],
                            {"directory": "ok", "new nested path": "ok"}),
    "load --save": ([*LOAD, "--save", "{}"], {"symlink to a file": "ok", "dangling symlink": "ok",
                                             "new nested path": "ok"}),
    "load --gitlab-report": ([*LOAD, "--gitlab-report", "{}"], {}),
    "load --html": ([*LOAD, "--html", "{}"], {}),
    "load --workdir": ([*LOAD, "--workdir", "{}"], {"directory": "ok", "new nested path": "ok"}),
}  # fmt: skip
#: report files replace whatever regular file they are given (docs/gate.md, "Paths")
REPORT_SLOTS = {"compare --markdown", "compare --junit", "compare --metrics", "compare --json", "report --html",
                "load --gitlab-report", "load --html"}  # fmt: skip

PLUGIN_OPTIONS = {
    "--perfgate-save": {"directory": "error", "fifo": "error", "foreign file": "error", "symlink loop": "error",
                        "through a file": "error", "new nested path": "ok"},
    "--perfgate-html": {"directory": "error", "fifo": "error", "symlink loop": "error", "through a file": "error",
                        "new nested path": "ok"},
    "--perfgate-compare": {"fifo": "error", "symlink loop": "error", "char device": "error", "missing": "ok",
                           "directory": "ok", "truncated JSON": "error"},
    "--perfgate-config": {"fifo": "error", "symlink loop": "error", "directory": "error", "missing": "error"},
}  # fmt: skip


def build() -> None:
    for slot, (argv, documented) in INPUT_SLOTS.items():
        for kind, path in INPUT_KINDS.items():
            expect = documented.get(kind, "error")
            CASES.append(Case("input", f"{slot}: {kind}", [a.replace("{}", path) for a in argv], expect, path))
    for slot, (argv, documented) in OUTPUT_SLOTS.items():
        for kind, path in OUTPUT_KINDS.items():
            expect = documented.get(kind, "error")
            if slot in REPORT_SLOTS and kind in ("foreign file", "symlink to a file", "dangling symlink",
                                                 "new nested path"):  # fmt: skip
                expect = "ok"
            if slot.startswith("load") and expect == "ok":
                expect = "ok"  # exit 3: nothing listens at the target; the path was accepted
            CASES.append(Case("output", f"{slot}: {kind}", [a.replace("{}", path) for a in argv], expect, path))
    both = {**INPUT_KINDS, **OUTPUT_KINDS}
    for option, kinds in PLUGIN_OPTIONS.items():
        for kind, expect in kinds.items():
            CASES.append(Case("plugin", f"pytest {option}: {kind}", [f"{option}={both[kind]}"], expect, both[kind]))


# --------------------------------------------------------------------------- running and judging


def run(case: Case) -> Case:
    with tempfile.TemporaryDirectory(prefix="perfgate-hostile-paths-") as tmp:
        folder = Path(tmp)
        prepare(folder)
        if case.target == "nulldev" and not (folder / "nulldev").exists():
            case.outcome, case.detail = "not run", "making a device node needs root"
            return case
        before = snapshot(folder)
        command = [*PYTEST, *case.argv] if case.group == "plugin" else [*PERFGATE, *case.argv]
        env = {**os.environ, "PYTHONPATH": SRC, "CI_DEFAULT_BRANCH": ""}
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            rc = None
        case.seconds = time.monotonic() - started
        after = snapshot(folder)
        lost = [
            name for name, was in before.items()
            if after.get(name) != was and not (rc in (0, 1, 3) and case.expect != "error" and _is_target(name, case))
            and not name.startswith("newstore")
        ]  # fmt: skip
        case.outcome = classify(case, rc, out + err, lost)
        shown = err.strip().splitlines() or out.strip().splitlines() or [""]
        case.detail = shown[0 if rc in (2, 4) else -1][:200]
        if lost:
            case.detail = f"changed: {', '.join(lost)}; " + case.detail
        shutil.rmtree(folder / "newstore", ignore_errors=True)
    return case


def _is_target(name: str, case: Case) -> bool:
    """Whether ``name`` is what the case's slot writes (through a symlink: the link's target)."""
    target = case.target.rstrip("/")
    links = {"link.json": "published/base.json", "link.md": "published/report.md", "dangling.json": "published"}
    return bool(target) and (name == target or name.startswith(target + "/") or
                             name.startswith(links.get(target, "\0")) or name.startswith("new"))  # fmt: skip


def classify(case: Case, rc: int | None, output: str, lost: list[str]) -> str:
    if rc is None:
        return "hang"
    if "Traceback (most recent call last)" in output or "INTERNALERROR" in output:
        return "traceback"
    if lost:
        return "data lost"
    refused = rc == 2 if case.group != "plugin" else rc == 4
    if refused:
        named = (case.target in output) if case.target else ("''" in output or "empty path" in output)
        if not named and "error:" not in output.lower():
            return "unclear error"
        if not named:
            return "unclear error"
        return "refused (documented as accepted)" if case.expect == "ok" else "clear error"
    if case.expect in ("ok", "either"):
        return "handled as documented"
    return "silent wrong result"


def main(argv: list[str] | None = None) -> int:
    import argparse

    global SRC, RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--src", default=SRC, help="the perfgate src folder to run (default: this checkout's)")
    parser.add_argument("--out", default=str(RESULTS), help="the Markdown table to write")
    args = parser.parse_args(argv)
    SRC, RESULTS = args.src, Path(args.out)
    build()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(run, CASES))
    wall = time.monotonic() - started
    totals = Counter(c.outcome for c in done)
    lines = [
        "# Hostile paths: outcomes (issue 16, item 3)",
        "",
        f"`python bench/hostile/paths.py` ({len(done)} cases, {wall:.0f}s wall on this 2-CPU machine, "
        f"each case in its own process and folder, timeout {TIMEOUT:g}s). Classes as in the script's docstring.",
        "",
        "| outcome | cases |",
        "|---|---:|",
        *(f"| {name} | {totals.get(name, 0)} |" for name in CLASSES),
        f"| **total** | **{len(done)}** |",
        "",
        "By group:",
        "",
        "| group | " + " | ".join(CLASSES) + " |",
        "|---|" + "---:|" * len(CLASSES),
    ]
    for group in ("input", "output", "plugin"):
        counts = Counter(c.outcome for c in done if c.group == group)
        lines.append(f"| {group} | " + " | ".join(str(counts.get(n, 0)) for n in CLASSES) + " |")
    lines += ["", "Every case (expected: error, ok or either; the first line of the message, or the last line "
              "of the output):", "", "| case | expected | outcome | exit message |", "|---|---|---|---|"]  # fmt: skip
    for c in done:
        detail = c.detail.replace("|", "\\|").replace(str(Path(tempfile.gettempdir())), "$TMP")
        lines.append(f"| {c.name} | {c.expect} | {c.outcome} | {detail} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:16]))
    bad = sum(totals.get(n, 0) for n in ("traceback", "data lost", "silent wrong result", "hang", "unclear error"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
