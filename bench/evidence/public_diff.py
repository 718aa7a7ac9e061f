"""Does ``perfgate ab``'s differential CPU evidence name the function that was slowed, on a real suite?

Issue 19: "a 10% slowdown injected into one function of a public project is named by the
differential evidence as the top changed function in >= 9 of 10 paired runs".

For each project of ``bench/ab_public/projects.py`` this runs, ``--runs`` times,

    perfgate ab --base <base commit> --cpu 1 --pythonpath . --max-regression 5% --max-time 0.3s
        --timeout 10min --json J --save-blocks B --markdown M -- <benchmark files>

in a private clone of the prepared repository (``/tmp/perfgate-ab-public/<project>/repo``, made by
``bench/ab_public/run.py prepare``) whose working tree carries the +10% slowdown (``variants.json``'s
``p10`` N: ``_perfgate_slow = 0`` statements in one hot library function), against the shipped
sdist's commit. perfgate is the one of this checkout (``src/`` first on ``PYTHONPATH``); the venv is
the suites' (``/tmp/perfgate-ab-public/venv``). That venv has no pyinstrument, which the profiles
need: ``--pyinstrument-from`` puts a directory holding only the ``pyinstrument`` package on the path
(by default a link to perfgate's own venv's copy), nothing else of that venv.

Per run it records the exit code and wall time, which tests were judged a regression or a warning,
and for each of them the report's ``cpu_diffs``: the first function of ``changes`` (largest change of
own time per measured call, either sign: what the report lists first), the largest *growth*
(``ProfileDiff.top``), whether each is the slowed function (its name from the injection's anchor,
found with ``ast``; its file from the injection), and the slowed function's own time per call on
both sides and its rank among the changes. One JSON line per run to ``--out``/runs.jsonl.

    python bench/evidence/public_diff.py --project fastjsonschema --runs 10 --out /tmp/pubdiff/out
    python bench/evidence/public_diff.py --summarise /tmp/pubdiff/out/runs.jsonl
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "ab_public"))

from projects import PROJECTS, Project  # type: ignore[import-not-found]  # noqa: E402

WORK = Path("/tmp/perfgate-ab-public")
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
BAD = ("regression", "warning")


def sh(cmd: list[str], **kw: Any) -> str:
    return str(subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout)


def slowed_functions(project: Project, repo: Path) -> list[tuple[str, str]]:
    """(function name, file) of each injection: the innermost def holding the anchor line."""
    found = []
    for injection in project.injections:
        text = sh(["git", "-C", str(repo), "show", f"HEAD:{injection.path}"])
        line = next(i for i, s in enumerate(text.splitlines(), 1) if injection.anchor in s)
        best: ast.AST | None = None
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                end = node.end_lineno or node.lineno
                if node.lineno <= line <= end and (best is None or node.lineno > best.lineno):  # type: ignore[attr-defined]
                    best = node
        assert isinstance(best, (ast.FunctionDef, ast.AsyncFunctionDef)), injection
        found.append((best.name, injection.path))
    return found


def is_slowed(change: dict[str, Any] | None, slowed: list[tuple[str, str]]) -> bool:
    if not change:
        return False
    name, location = str(change["function"]), str(change["location"])
    path = location.rsplit(":", 1)[0]
    return any((name == f or name.endswith("." + f)) and path.endswith(p) for f, p in slowed)


def inject(project: Project, repo: Path, n: int) -> None:
    """The shipped files, then ``n`` statements after each anchor (as ``run.py``'s ``inject``)."""
    for injection in project.injections:
        path = repo / injection.path
        path.write_text(injection.applied(sh(["git", "-C", str(repo), "show", f"HEAD:{injection.path}"]), n))


def private_repo(project: Project, work: Path, out: Path) -> tuple[Path, str]:
    """A clone of the prepared repository (other runs may use that one's working tree)."""
    source = work / project.name / "repo"
    repo = out / "repos" / project.name
    if not repo.exists():
        repo.parent.mkdir(parents=True, exist_ok=True)
        sh(["git", "clone", "-q", str(source), str(repo)])
    base = sh(["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"]).strip()
    return repo, base


def pyinstrument_dir(out: Path, source: Path | None) -> Path:
    if source is None:
        import glob

        hits = sorted(glob.glob("/work/main/.venv/lib/python3*/site-packages/pyinstrument"))
        if not hits:
            raise SystemExit("no pyinstrument to put on the path: give --pyinstrument-from")
        source = Path(hits[0])
    extra = out / "pyinstrument-only"
    extra.mkdir(parents=True, exist_ok=True)
    link = extra / "pyinstrument"
    if not link.exists():
        link.symlink_to(source)
    return extra


def diff_entry(diff: dict[str, Any], slowed: list[tuple[str, str]]) -> dict[str, Any]:
    changes = diff.get("changes") or []

    def per_call_change(c: dict[str, Any]) -> float:
        return float(c.get("current_per_call") or 0.0) - float(c.get("base_per_call") or 0.0)

    grown = [c for c in changes if per_call_change(c) > 0]
    top = max(grown, key=per_call_change) if grown else None
    first = changes[0] if changes else None

    def share_change(c: dict[str, Any]) -> float:
        return float(c.get("current_share") or 0.0) - float(c.get("base_share") or 0.0)

    # an alternative ranking (not perfgate's): by the change of own-time share, which does not move
    # when the machine was faster or slower while one side was profiled
    by_share = max(changes, key=share_change) if changes else None
    rank = next((i for i, c in enumerate(changes, 1) if is_slowed(c, slowed)), None)
    own = changes[rank - 1] if rank else None

    def brief(c: dict[str, Any] | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {
            "function": c["function"],
            "location": c["location"],
            "base_per_call": c.get("base_per_call"),
            "current_per_call": c.get("current_per_call"),
            "base_share": c.get("base_share"),
            "current_share": c.get("current_share"),
            "slowed": is_slowed(c, slowed),
        }

    return {
        "first": brief(first),
        "top_grown": brief(top),
        "top_share_growth": brief(by_share),
        "slowed_rank": rank,
        "slowed": brief(own),
        "n_changes": len(changes),
        "clock": diff.get("clock"),
        "base_per_call": diff.get("base_per_call"),
        "current_per_call": diff.get("current_per_call"),
    }


def one_run(
    project: Project,
    repo: Path,
    base: str,
    env: dict[str, str],
    python: Path,
    raw: Path,
    name: str,
    args: argparse.Namespace,
    slowed: list[tuple[str, str]],
) -> dict[str, Any]:
    files = {k: raw / f"{name}.{k}" for k in ("json", "blocks", "md")}
    for f in files.values():
        f.unlink(missing_ok=True)
    cmd = project.ab_command(
        python, base, files, cpu=args.cpu, max_time=args.max_time, timeout="10min", extra=args.ab_arg
    )
    load = os.getloadavg()
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=args.wall_limit)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = -999, str(exc.stdout or ""), str(exc.stderr or "")
    wall = time.time() - start
    (raw / f"{name}.log").write_text(f"$ {' '.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    record: dict[str, Any] = {
        "name": name,
        "project": project.name,
        "cmd": cmd,
        "returncode": rc,
        "wall": wall,
        "start": start,
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "slowed_function": slowed,
        "tests": {},
        "notices": [],
        "stderr_tail": stderr.splitlines()[-3:],
    }
    if files["json"].exists():
        gate = json.loads(files["json"].read_text())
        record["headline"] = gate.get("headline")
        record["notices"] = gate.get("notices", [])
        diffs = gate.get("cpu_diffs") or {}
        record["has_cpu_diffs_key"] = "cpu_diffs" in gate
        for c in gate.get("comparisons", []):
            if c.get("metric") != "time":
                continue
            entry: dict[str, Any] = {"verdict": c.get("verdict"), "change": c.get("change")}
            if c.get("verdict") in BAD:
                diff = diffs.get(c["nodeid"])
                entry["diff"] = diff_entry(diff, slowed) if diff else None
            record["tests"][c["nodeid"]] = entry
    return record


def run_project(project: Project, args: argparse.Namespace, env: dict[str, str], n: int) -> None:
    out: Path = args.out
    repo, base = private_repo(project, args.work, out)
    slowed = slowed_functions(project, repo)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    python = args.work / "venv" / "bin" / "python"
    inject(project, repo, n)
    try:
        for i in range(args.runs):
            if args.stop_at is not None and time.time() > args.stop_at:
                print(f"{project.name}: stop time reached before run {i}", flush=True)
                return
            record = one_run(project, repo, base, env, python, raw, f"{project.name}-p10-{i:02d}", args, slowed)
            record.update(index=i, n=n, perfgate_root=str(ROOT))
            with open(out / "runs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            print(line_of(record), flush=True)
    finally:
        inject(project, repo, 0)


def line_of(record: dict[str, Any]) -> str:
    bad = {k: t for k, t in record["tests"].items() if t["verdict"] in BAD}
    named = sum(1 for t in bad.values() if t.get("diff") and t["diff"]["first"] and t["diff"]["first"]["slowed"])
    return (
        f"{record['name']} rc={record['returncode']} wall={record['wall']:.0f}s "
        f"load={record['loadavg_before'][0]:.2f} bad={len(bad)} named_first={named}"
    )


def run_wide(raw_json: Path, slowed: list[tuple[str, str]]) -> tuple[str, str]:
    """Over all of a run's profiled tests (not perfgate's output, an aggregate of its ``cpu_diffs``):
    the function whose own time per call grew most in sum, and the one whose share grew most in sum."""
    if not raw_json.exists():
        return "-", "-"
    diffs = json.loads(raw_json.read_text()).get("cpu_diffs") or {}
    per_call: dict[tuple[str, str], float] = {}
    share: dict[tuple[str, str], float] = {}
    for diff in diffs.values():
        for c in diff.get("changes") or []:
            key = (str(c["function"]), str(c["location"]).rsplit(":", 1)[0])
            per_call[key] = (
                per_call.get(key, 0.0) + float(c.get("current_per_call") or 0) - float(c.get("base_per_call") or 0)
            )
            share[key] = share.get(key, 0.0) + float(c.get("current_share") or 0) - float(c.get("base_share") or 0)

    def name(totals: dict[tuple[str, str], float]) -> str:
        if not totals:
            return "-"
        f, loc = max(totals, key=lambda k: totals[k])
        mark = "slowed" if is_slowed({"function": f, "location": loc}, slowed) else f"{f} ({loc})"
        return mark

    return name(per_call), name(share)


def summarise(path: Path) -> str:
    records = [json.loads(s) for s in path.read_text().splitlines() if s.strip()]
    lines = []
    for project in dict.fromkeys(r["project"] for r in records):
        runs = [r for r in records if r["project"] == project]
        lines += [
            f"\n### {project}\n",
            "| run | exit | wall s | load | regr/warn | diff present | first = slowed | top growth = slowed "
            "| largest share growth = slowed | slowed rank (min-max) | first function when not the slowed one "
            "| most regressed test: first = slowed | run-wide: summed per-call growth "
            "| run-wide: summed share growth |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        tests_total = tests_named = runs_all = runs_worst = runs_majority = 0
        for r in runs:
            bad = {k: t for k, t in r["tests"].items() if t["verdict"] in BAD}
            present = [t for t in bad.values() if t.get("diff")]
            first = [t for t in present if t["diff"]["first"] and t["diff"]["first"]["slowed"]]
            grown = [t for t in present if t["diff"]["top_grown"] and t["diff"]["top_grown"]["slowed"]]
            share = [t for t in present if (t["diff"].get("top_share_growth") or {}).get("slowed")]
            ranks = [t["diff"]["slowed_rank"] for t in present if t["diff"]["slowed_rank"]]
            others = sorted(
                {
                    f"{t['diff']['first']['function']} ({t['diff']['first']['location']})"
                    for t in present
                    if t["diff"]["first"] and not t["diff"]["first"]["slowed"]
                }
            )
            tests_total += len(bad)
            tests_named += len(first)
            runs_all += bool(bad) and len(first) == len(bad)
            rank = f"{min(ranks)}-{max(ranks)}" if ranks else "-"
            worst = max(bad.values(), key=lambda t: float(t.get("change") or 0.0)) if bad else None
            worst_named = bool(
                worst and worst.get("diff") and worst["diff"]["first"] and worst["diff"]["first"]["slowed"]
            )
            runs_worst += worst_named
            runs_majority += bool(bad) and 2 * len(first) > len(bad)
            wide = run_wide(path.parent / "raw" / f"{r['name']}.json", [tuple(x) for x in r["slowed_function"]])
            lines.append(
                f"| {r['index']} | {r['returncode']} | {r['wall']:.0f} | {r['loadavg_before'][0]:.2f} "
                f"| {len(bad)} | {len(present)} | {len(first)} | {len(grown)} | {len(share)} | {rank} "
                f"| {'; '.join(others) or '-'} | {'yes' if worst_named else 'no'} | {wide[0]} | {wide[1]} |"
            )
        lines.append(
            f"\n{project}: named as top changed function in {tests_named} of {tests_total} "
            f"regressed-or-warned tests; in all of them in {runs_all} of {len(runs)} runs, in most of them in "
            f"{runs_majority} of {len(runs)} runs, for the run's most regressed test in {runs_worst} of "
            f"{len(runs)} runs."
        )
        own = [
            (t["diff"]["slowed"]["base_per_call"], t["diff"]["slowed"]["current_per_call"], k)
            for r in runs
            for k, t in r["tests"].items()
            if t["verdict"] in BAD and t.get("diff") and t["diff"]["slowed"]
        ]
        counted = any(
            t["diff"].get("clock") == "instructions" for r in runs for t in r["tests"].values() if t.get("diff")
        )
        scale, unit = (1.0, "instructions") if counted else (1e6, "us")
        if own:
            lines.append(
                f"\nslowed function's own {unit} per measured call, base -> current, per test, median over runs:\n"
            )
            by_test: dict[str, list[tuple[float, float]]] = {}
            for b, c, k in own:
                by_test.setdefault(k, []).append((float(b or 0.0), float(c or 0.0)))
            for k, pairs in sorted(by_test.items()):
                bs = sorted(p[0] for p in pairs)
                cs = sorted(p[1] for p in pairs)
                ratio = sorted(p[1] / p[0] for p in pairs if p[0])
                lines.append(
                    f"- `{k}`: {scale * bs[len(bs) // 2]:.6g} -> {scale * cs[len(cs) // 2]:.6g} "
                    f"(x{ratio[len(ratio) // 2]:.2f}, {len(pairs)} runs)"
                    if ratio
                    else f"- `{k}`: -"
                )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", action="append", choices=sorted(PROJECTS))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--work", type=Path, default=WORK, help="bench/ab_public/run.py prepare's --work")
    parser.add_argument(
        "--variants", type=Path, default=ROOT / "bench" / "ab_public" / "runs" / "prepare" / "variants.json"
    )
    parser.add_argument("--variant", default="p10")
    parser.add_argument("--out", type=Path, default=Path("/tmp/perfgate-pubdiff"))
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--max-time", default="0.3s")
    parser.add_argument("--wall-limit", type=float, default=900.0)
    parser.add_argument("--ab-arg", action="append", default=[])
    parser.add_argument("--pyinstrument-from", type=Path)
    parser.add_argument("--stop-at", type=float, help="start no run after this Unix time")
    parser.add_argument("--summarise", type=Path, help="print the tables of a runs.jsonl and exit")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(args.summarise))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    variants = json.loads(args.variants.read_text())
    extra = pyinstrument_dir(args.out, args.pyinstrument_from)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{extra}"
    for name in args.project or sorted(PROJECTS, reverse=True):  # fastjsonschema first
        run_project(PROJECTS[name], args, env, int(variants[name][args.variant]["n"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
