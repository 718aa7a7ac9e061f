"""``perfgate ab`` on public projects' pytest-benchmark suites, as they ship in their PyPI sdists.

    python bench/ab_public/run.py prepare                     # fetch, unpack, git init, calibrate, truth
    python bench/ab_public/run.py probe --label head          # what a new user sees (and empty selections)
    python bench/ab_public/run.py series --label v1 --cycles 10 --perfgate-rev <rev>
    python bench/ab_public/run.py truth --when after                # the true changes again
    python bench/ab_public/run.py perfcost --label perfcost --perfgate-rev <rev>   # perf tests, same settings

Everything downloaded or built lives outside the repository, under ``--work``
(``/tmp/perfgate-ab-public``): the sdists (``sdists/``), a venv with the suites' test dependencies
(``venv/``; the libraries themselves are *not* installed: each side imports its own tree through
``perfgate ab --pythonpath``), and per project an unpacked tree turned into a git repository whose
first commit (the sdist as shipped) is the base (``<project>/repo``).

Slowed variants (``projects.py``): ``N`` statements ``_perfgate_slow = 0`` inserted into one hot
library function. ``prepare`` calibrates ``N`` (a line through two measured sizes) for a true change
of about +10% and +25% on the benchmarks the function is on, and measures every benchmark's true
change independently (``truth.py``: both trees in one process, rounds alternated, median of block
ratios, on CPU time), before and after the series (``truth-<project>-<variant>-<when>.json``). The
other benchmarks are controls (true change 0).

``series`` runs, in a seeded random order (each cycle: per project 3 unchanged working trees (A/A)
and one of each slowed variant (A/B), shuffled together),

    perfgate ab --base <base commit> --cpu 1 --pythonpath . --max-regression 5% --max-time T
        --timeout L --json J --save-blocks B --markdown M -- <benchmark files>

with the perfgate of ``--perfgate-rev`` (a ``git archive`` snapshot, first on ``PYTHONPATH``, made
by ``bench/ab/run.py``'s ``snapshot_perfgate``), so edits of ``src/`` made meanwhile do not leak in.
Raw outputs go to ``--work``/raw/<label>; one line per run to ``runs/<label>/runs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from projects import PROJECTS, Project  # noqa: E402


def _bench_ab_run() -> Any:
    """bench/ab/run.py (for its ``snapshot_perfgate``), imported by path: this file is a run.py too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ab_run", HERE.parent / "ab" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot_perfgate(dest: Path, revision: str) -> str:
    return str(_bench_ab_run().snapshot_perfgate(dest, revision))


WORK = Path("/tmp/perfgate-ab-public")
#: test dependencies of the suites (and of perfgate); the libraries under test are not installed
VENV_DEPS = ("pytest==9.2.0", "pytest-benchmark==5.3.1", "pytest-timeout", "pyyaml", "numpy", "scipy")
TARGETS = {"p10": 0.10, "p25": 0.25}
#: the two sizes of the slowdown measured to calibrate it (a line through both, then verified)
CALIBRATION_N = (8, 64)
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
PROGRESS = re.compile(r"^\[\s*\d+/\d+\] (.+?): (.*)$")  # node ids may hold spaces, not ': '
ELAPSED = re.compile(r"\(([0-9.]+)s[,;)]")


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def venv_python(work: Path) -> Path:
    return work / "venv" / "bin" / "python"


def ensure_venv(work: Path) -> Path:
    """A venv with the suites' test dependencies and an entry point for perfgate's pytest plugin.

    perfgate itself comes from the snapshot on ``PYTHONPATH``; only its ``pytest11`` entry point is
    declared here (a metadata-only dist-info), as an installed perfgate would declare it.
    """
    python = venv_python(work)
    if not python.exists():
        sh([sys.executable, "-m", "venv", str(work / "venv")])
    deps = list(VENV_DEPS) + sorted({d for p in PROJECTS.values() for d in p.extra_deps})
    marker = work / "venv" / "deps.json"
    if not marker.exists() or json.loads(marker.read_text()) != deps:
        sh([str(python), "-m", "pip", "install", "-q", *deps])
        marker.write_text(json.dumps(deps))
    purelib = sh([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    info = Path(purelib) / "pytest_perfgate-0.1.0.dist-info"
    if not info.exists():
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-perfgate\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(
            "[pytest11]\nperfgate = pytest_perfgate.plugin\n\n[console_scripts]\nperfgate = pytest_perfgate.cli:main\n"
        )
        (info / "RECORD").write_text("")
    return python


def fetch(project: Project, work: Path) -> Path:
    """The sdist, downloaded once with pip into ``work/sdists``."""
    sdists = work / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    name = project.requirement.split("==")[0].replace("-", "_").lower()
    for path in sdists.glob("*.tar.gz"):
        if path.name.replace("-", "_").lower().startswith(f"{name}_{project.requirement.split('==')[1]}"):
            return path
    sh(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            project.requirement,
            "-d",
            str(sdists),
        ]
    )
    return fetch(project, work)


def unpack(project: Project, work: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    tmp = dest.parent / f".unpack-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fetch(project, work)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / project.unpacked).rename(dest)
    shutil.rmtree(tmp)


def inject(project: Project, tree: Path, n: int, originals: dict[str, str] | None = None) -> None:
    """Write the variant with ``n`` extra loop iterations per call (0: the files as shipped)."""
    for injection in project.injections:
        path = tree / injection.path
        path.write_text(injection.applied(originals[injection.path] if originals else path.read_text(), n))


def originals_of(project: Project, repo: Path) -> dict[str, str]:
    return {i.path: sh(["git", "-C", str(repo), "show", f"HEAD:{i.path}"]).stdout for i in project.injections}


def make_repo(project: Project, work: Path) -> str:
    repo = work / project.name / "repo"
    unpack(project, work, repo)
    sh(["git", "init", "-q", str(repo)])
    sh([*GIT, "-C", str(repo), "add", "-A"])
    sh([*GIT, "-C", str(repo), "commit", "-qm", f"{project.requirement} as shipped (sdist)"])
    return sh(["git", "-C", str(repo), "rev-parse", "HEAD"]).stdout.strip()


def truth(project: Project, work: Path, n: int, out: Path, seconds: float, cpu: int) -> dict[str, Any]:
    """Each benchmark's true change for ``n`` (``truth.py`` in the venv, pinned to ``cpu``)."""
    base, slowed = work / project.name / "tree-base", work / project.name / f"tree-{n}"
    if not base.exists():
        unpack(project, work, base)
    if not slowed.exists():
        unpack(project, work, slowed)
        inject(project, slowed, n)
    done = subprocess.run(
        [
            "taskset",
            "-c",
            str(cpu),
            str(venv_python(work)),
            "-W",
            "ignore",
            str(HERE / "truth.py"),
            project.name,
            str(base),
            str(slowed),
            str(out),
            "--seconds",
            str(seconds),
        ],
        cwd=work,
        text=True,
        capture_output=True,
    )
    if done.returncode:
        raise SystemExit(f"truth.py failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    data.update(n=n, loadavg=os.getloadavg(), measured_at=time.time())
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def slowed_median(project: Project, data: dict[str, Any]) -> float:
    changes = sorted(float(t["change"]) for name, t in data["tests"].items() if project.slowed_hint in name)
    return changes[len(changes) // 2]


def cmd_prepare(args: argparse.Namespace) -> int:
    work: Path = args.work
    ensure_venv(work)
    out = HERE / "runs" / args.label
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "variants.json"
    variants: dict[str, Any] = json.loads(stored.read_text()) if stored.exists() else {}
    for name in args.project:
        project = PROJECTS[name]
        base = make_repo(project, work)
        points = {}
        for n in CALIBRATION_N:
            probe = truth(project, work, n, work / project.name / f"calibration-{n}.json", 0.5, args.cpu)
            points[n] = slowed_median(project, probe)
        (n1, c1), (n2, c2) = sorted(points.items())
        slope = (c2 - c1) / (n2 - n1)
        entry: dict[str, Any] = {"base_commit": base, "calibration": points}
        for label, target in TARGETS.items():
            n = max(1, round(n1 + (target - c1) / slope))
            data = truth(project, work, n, out / f"truth-{name}-{label}-before.json", args.truth_seconds, args.cpu)
            entry[label] = {"n": n, "slowed_median": slowed_median(project, data)}
            print(
                f"{name} {label}: N={n}, slowed benchmarks' median true change "
                f"{100 * entry[label]['slowed_median']:+.1f}%",
                flush=True,
            )
        variants[name] = entry
        stored.write_text(json.dumps(variants, indent=1) + "\n")
    return 0


def gate_cmd(
    project: Project,
    python: Path,
    base: str,
    files: dict[str, Path],
    args: argparse.Namespace,
    pytest_args: list[str] | None = None,
) -> list[str]:
    return project.ab_command(
        python, base, files, cpu=args.cpu, max_time=args.max_time, timeout=args.run_limit, extra=args.ab_arg,
        pytest_args=pytest_args,
    )  # fmt: skip


def perfgate_env(work: Path, revision: str) -> tuple[dict[str, str], str]:
    commit = sh(["git", "-C", str(ROOT), "rev-parse", revision]).stdout.strip()
    dest = work / "snapshots" / commit
    if not (dest / "src" / "pytest_perfgate").exists():
        snapshot_perfgate(dest, commit)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(dest / "src")
    return env, commit


def progress_of(stderr: str) -> dict[str, dict[str, Any]]:
    """Per test: its progress lines (one per pair of workers) and the seconds they sum to."""
    progress: dict[str, dict[str, Any]] = {}
    for line in stderr.splitlines():
        m = PROGRESS.match(line.strip())
        if m:
            entry = progress.setdefault(m.group(1), {"lines": [], "elapsed": 0.0})
            entry["lines"].append(m.group(2))
            elapsed = ELAPSED.search(m.group(2))
            entry["elapsed"] += float(elapsed.group(1)) if elapsed else 0.0
    return progress


def one_run(
    cmd: list[str], repo: Path, env: dict[str, str], raw: Path, name: str, files: dict[str, Path], wall_limit: float
) -> dict[str, Any]:
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=wall_limit)
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stdout, stderr = -999, str(exc.stdout or ""), str(exc.stderr or "")
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (raw / f"{name}.log").write_text(f"$ {' '.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    record: dict[str, Any] = {
        "name": name,
        "start": start,
        "wall": wall,
        "returncode": returncode,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "stdout_head": stdout.splitlines()[:1],
        "stderr_tail": stderr.splitlines()[-3:],
        "files": {k: str(v) for k, v in files.items()},
        "tests": {},
        "notices": [],
    }
    record["progress"] = progress_of(stderr)
    if files["json"].exists():
        gate = json.loads(files["json"].read_text())
        record["headline"] = gate.get("headline")
        record["notices"] = gate.get("notices", [])
        for c in gate.get("comparisons", []):
            if c.get("metric") != "time":
                continue
            record["tests"][c["nodeid"]] = {
                k: c.get(k)
                for k in (
                    "verdict",
                    "change",
                    "ci",
                    "p_value",
                    "p_adjusted",
                    "baseline",
                    "current",
                    "baseline_runs",
                    "reason",
                )
            }
    return record


def timeout_ini(name: str, text: str) -> str:
    """``text`` of the ini file ``name`` with pytest-timeout's ``timeout = 2`` in its pytest section."""
    if name == "pyproject.toml":
        section = "[tool.pytest.ini_options]"
        if section in text:
            return text.replace(section, f"{section}\ntimeout = 2", 1)
        return text + f"\n{section}\ntimeout = 2\n"
    if "[pytest]" in text:
        return text.replace("[pytest]", "[pytest]\ntimeout = 2", 1)
    return text + "\n[pytest]\ntimeout = 2\n"


def cmd_probe(args: argparse.Namespace) -> int:
    """The suites as shipped, as a new user runs them; then empty selections and a pytest-timeout ini."""
    work: Path = args.work
    python = ensure_venv(work)
    env, commit = perfgate_env(work, args.perfgate_rev)
    raw = work / "raw" / args.label
    raw.mkdir(parents=True, exist_ok=True)
    out = HERE / "runs" / args.label
    out.mkdir(parents=True, exist_ok=True)
    for name in args.project:
        project = PROJECTS[name]
        repo = work / name / "repo"
        base = sh(["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"]).stdout.strip()
        inject(project, repo, 0, originals_of(project, repo))
        cases: list[tuple[str, list[str] | None, int]] = [
            ("as-shipped", None, 0),
            ("slowed-p25", None, args.n25.get(name, 0)),
            ("k-nomatch", [*project.pytest_args, "-k", "nomatch_perfgate"], 0),
            ("missing-path", ["benchmarks_missing/test_nothing.py"], 0),
            ("timeout-override", [*project.pytest_args, "-o", "timeout=2"], 0),
            ("timeout-in-ini", None, 0),
        ]
        for case, pytest_args, n in cases:
            inject(project, repo, n, originals_of(project, repo))
            ini = repo / project.ini
            shipped_ini = ini.read_text() if ini.exists() else None
            if case == "timeout-in-ini":  # the project's own ini sets pytest-timeout's timeout
                ini.write_text(timeout_ini(project.ini, shipped_ini or ""))
            run_name = f"{name}-{case}"
            files = {k: raw / f"{run_name}.{k}" for k in ("json", "blocks", "md")}
            for f in files.values():
                f.unlink(missing_ok=True)
            cmd = gate_cmd(project, python, base, files, args, pytest_args)
            record = one_run(cmd, repo, env, raw, run_name, files, args.wall_limit)
            record.update(project=name, case=case, perfgate_commit=commit, n=n)
            with open(out / "probes.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            print(
                f"{run_name}: rc={record['returncode']} wall={record['wall']:.1f}s "
                f"{record.get('headline')} | {record['stderr_tail'][-1:] if record['stderr_tail'] else ''}",
                flush=True,
            )
            if shipped_ini is None:
                ini.unlink(missing_ok=True)
            else:
                ini.write_text(shipped_ini)
        inject(project, repo, 0, originals_of(project, repo))
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    work: Path = args.work
    python = ensure_venv(work)
    env, commit = perfgate_env(work, args.perfgate_rev)
    out = HERE / "runs" / args.label
    out.mkdir(parents=True, exist_ok=True)
    variants = json.loads((HERE / "runs" / args.variants / "variants.json").read_text())
    raw = work / "raw" / args.label
    raw.mkdir(parents=True, exist_ok=True)
    meta = {
        "perfgate_commit": commit,
        "max_time": args.max_time,
        "run_limit": args.run_limit,
        "cpu": args.cpu,
        "seed": args.seed,
        "ab_args": args.ab_arg,
        "projects": args.project,
        "variants": variants,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "started": time.time(),
    }
    with open(out / "meta.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(meta) + "\n")
    rng = random.Random(args.seed)
    runs_file = out / "runs.jsonl"
    index = sum(1 for _ in runs_file.open()) if runs_file.exists() else 0
    for cycle in range(args.cycles):
        plan = [(p, v) for p in args.project for v in args.plan.split(",")]
        rng.shuffle(plan)
        for name, variant in plan:
            if args.stop_at is not None and time.time() > args.stop_at:
                print(f"stop time reached in cycle {cycle}", flush=True)
                return 0
            project = PROJECTS[name]
            repo = work / name / "repo"
            base = variants[name]["base_commit"]
            n = 0 if variant == "aa" else int(variants[name][variant]["n"])
            inject(project, repo, n, originals_of(project, repo))
            dirty = sh(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
            if (n == 0) != (not dirty):
                raise SystemExit(f"{name}: working tree state does not match variant {variant}: {dirty!r}")
            run_name = f"run-{index:04d}-{name}-{variant}"
            files = {k: raw / f"{run_name}.{k}" for k in ("json", "blocks", "md")}
            record = one_run(
                gate_cmd(project, python, base, files, args), repo, env, raw, run_name, files, args.wall_limit
            )
            record.update(
                index=index, cycle=cycle, project=name, variant=variant, n=n, perfgate_commit=commit, seed=args.seed
            )
            with open(runs_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            verdicts = " ".join(str(t["verdict"])[:4] for t in record["tests"].values())
            print(
                f"{run_name} rc={record['returncode']} wall={record['wall']:.1f}s "
                f"load={record['loadavg_before'][0]:.2f} {verdicts}",
                flush=True,
            )
            index += 1
            inject(project, repo, 0, originals_of(project, repo))
    return 0


def cmd_perfcost(args: argparse.Namespace) -> int:
    """The cost of ``perf`` tests under the same settings: ``bench/ab``'s fixture repository (8 workloads
    timed with ``perf``, ~2 us to ~15 ms), 3 unchanged runs and one at factor 1.25, same perfgate."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ab_fixture", HERE.parent / "ab" / "fixture.py")
    assert spec is not None and spec.loader is not None
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    work: Path = args.work
    python = ensure_venv(work)
    env, commit = perfgate_env(work, args.perfgate_rev)
    repo = work / "perf-fixture"
    shutil.rmtree(repo, ignore_errors=True)
    base = fixture.make_repo(repo)
    raw = work / "raw" / args.label
    raw.mkdir(parents=True, exist_ok=True)
    out = HERE / "runs" / args.label
    out.mkdir(parents=True, exist_ok=True)
    perf = Project(
        name="perf-fixture",
        requirement="",
        unpacked="",
        package="benchlib",
        test_files=(),
        pytest_args=("tests",),
        pythonpath="src",
        injections=(),
    )
    for i, factor in enumerate((1.0, 1.25, 1.0, 1.0)):
        fixture.set_factor(repo, factor)
        name = f"perfcost-{i}-f{factor:.2f}"
        files = {k: raw / f"{name}.{k}" for k in ("json", "blocks", "md")}
        record = one_run(gate_cmd(perf, python, base, files, args), repo, env, raw, name, files, args.wall_limit)
        record.update(factor=factor, perfgate_commit=commit)
        with open(out / "perfcost.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(
            f"{name}: rc={record['returncode']} wall={record['wall']:.1f}s tests={len(record['tests'])} "
            f"{record.get('headline')}",
            flush=True,
        )
    fixture.set_factor(repo, 1.0)
    return 0


def cmd_truth(args: argparse.Namespace) -> int:
    """Measure the true changes again (e.g. after a series), for the stored variants."""
    variants = json.loads((HERE / "runs" / args.variants / "variants.json").read_text())
    ensure_venv(args.work)
    for name in args.project:
        for label in TARGETS:
            n = int(variants[name][label]["n"])
            data = truth(
                PROJECTS[name],
                args.work,
                n,
                HERE / "runs" / args.variants / f"truth-{name}-{label}-{args.when}.json",
                args.truth_seconds,
                args.cpu,
            )
            print(f"{name} {label}: N={n} slowed median {100 * slowed_median(PROJECTS[name], data):+.1f}%", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "probe", "series", "truth", "perfcost"))
    parser.add_argument("--work", type=Path, default=WORK, help="downloads, venv, repositories, raw outputs")
    parser.add_argument("--project", action="append", choices=sorted(PROJECTS))
    parser.add_argument("--label", default="main", help="output sub-folder of bench/ab_public/runs")
    parser.add_argument("--variants", default="prepare", help="the runs/ sub-folder holding variants.json")
    parser.add_argument("--perfgate-rev", default="HEAD", help="the perfgate revision measured (a snapshot)")
    parser.add_argument("--cpu", type=int, default=1, help="the CPU the workers (and truth.py) are pinned to")
    parser.add_argument("--max-time", default="0.3s", help="perfgate ab --max-time")
    parser.add_argument("--run-limit", default="10min", help="perfgate ab --timeout (whole run)")
    parser.add_argument("--wall-limit", type=float, default=900.0, help="kill a run after this many seconds")
    parser.add_argument("--ab-arg", action="append", default=[], help="an extra argument for perfgate ab")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--plan", default="aa,aa,aa,p10,p25", help="series: the variants of one cycle, per project")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stop-at", type=float, help="start no run after this Unix time")
    parser.add_argument("--truth-seconds", type=float, default=1.0)
    parser.add_argument("--when", default="after", help="truth: the file suffix")
    parser.add_argument("--n25", default="{}", type=json.loads, help="probe: {project: N} of a slowed case")
    args = parser.parse_args()
    args.project = args.project or sorted(PROJECTS)
    args.work.mkdir(parents=True, exist_ok=True)
    commands = {
        "prepare": cmd_prepare,
        "probe": cmd_probe,
        "series": cmd_series,
        "truth": cmd_truth,
        "perfcost": cmd_perfcost,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
