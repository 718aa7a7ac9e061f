"""A real history on code we did not write: a public project's benchmarks over its own commits.

    python bench/history/public_history.py run --repo /work/.mirror/horejsek+python-fastjsonschema/repo \\
        --first c66483f --last 8a7cde9 --out /tmp/s8/real/fjs-history
    python bench/history/public_history.py analyse --out /tmp/s8/real/fjs-history

``run`` clones ``--repo`` (a bare mirror or any git repository) into ``OUT/checkout`` and walks the
default branch's first-parent commits from ``--first`` to ``--last``, oldest first. At each commit
(checked out in that clone, so the suite imports the library from the tree, as the project's own
``tests/conftest.py`` arranges) it runs, with ``--python`` (a venv holding pytest, pytest-benchmark
and perfgate's ``pytest11`` entry point; perfgate itself from ``--perfgate-src`` on ``PYTHONPATH``):

* a **counted** run, ``pytest TESTS --perfgate-instructions --perfgate-save=counted.json``, promoted
  into ``OUT/base-counted`` (exact counts: a count that moves between commits is a real change);
* a **timed** run, ``pytest TESTS --perfgate-save=timed.json`` (pytest-benchmark's rounds), promoted
  into ``OUT/base-timed``.

``CI_COMMIT_SHA`` and ``CI_COMMIT_REF_NAME`` are set for every run (the checkout is detached, so its
``git.branch`` would be ``HEAD``). Each run's results file, pytest output and wall time are kept in
``OUT/runs/NNN-<sha>/``; ``OUT/runs.jsonl`` has one line per run. A commit whose library does not
import, or whose run fails, is skipped (said, not promoted). Resumable: a (commit, kind) already in
``runs.jsonl`` is not run again.

``analyse`` runs ``perfgate history --all --json`` on both baselines and compares its change points
with the ground truth of the stored counted runs: for each count series (test x metric) and pair of
consecutive commits, the relative change; a true step is one of at least ``--min-change`` that
persists for at least ``--min-segment`` runs. It prints the tables (Markdown) and writes
``OUT/analysis.json``.

``replay`` judges each baseline as it grew: after each run, ``perfgate history`` on the history cut
after that run (its ``history.state.json`` kept from one judging to the next: the incremental path),
and reports when each change point was first reported and which open change points were reported
and later withdrawn (``OUT/replay.md``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "counted": ("--perfgate-instructions",),
    "timed": (),
}


def sh(cmd: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=True).stdout.strip()


def commits(checkout: Path, first: str, last: str) -> list[str]:
    """The first-parent commits from ``first`` to ``last`` (both included), oldest first."""
    line = sh(["git", "rev-list", "--first-parent", "--reverse", last], checkout).split()
    start = sh(["git", "rev-parse", first], checkout)
    if start not in line:
        raise SystemExit(f"{first} is not on the first-parent line of {last}")
    return line[line.index(start) :]


def clean_env(perfgate_src: Path, commit: str, ref: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_", "VIRTUAL_ENV", "CI_"))}
    env.update(PYTHONPATH=str(perfgate_src), CI_COMMIT_SHA=commit, CI_COMMIT_REF_NAME=ref)
    return env


def done_runs(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    path = out / "runs.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["commit"], r["kind"]): r for r in rows}


def record(out: Path, row: dict[str, Any]) -> None:
    with (out / "runs.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def run_one(args: argparse.Namespace, checkout: Path, index: int, commit: str, kind: str) -> dict[str, Any]:
    folder = args.out / "runs" / f"{index:03d}-{commit[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / f"{kind}.json"
    env = clean_env(args.perfgate_src, commit, args.ref)
    cmd = [str(args.python), "-m", "pytest", *args.tests, "-q", "-p", "no:cacheprovider", *KINDS[kind]]
    cmd.append(f"--perfgate-save={results}")
    begin = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, env=env, text=True, capture_output=True, check=False)
    wall = time.perf_counter() - begin
    (folder / f"{kind}.log").write_text(f"$ {' '.join(cmd)}\n{done.stdout}\n--- stderr\n{done.stderr}")
    row: dict[str, Any] = {
        "index": index,
        "commit": commit,
        "kind": kind,
        "wall_s": round(wall, 2),
        "returncode": done.returncode,
        "loadavg_1m": os.getloadavg()[0],
        "results": str(results),
        "promoted": False,
    }
    if done.returncode != 0 or not results.exists():
        row["skipped"] = f"pytest exit {done.returncode}" + ("" if results.exists() else ", no results file")
        return row
    promote = subprocess.run(
        [str(args.python), "-m", "pytest_perfgate.cli", "baseline", "promote", str(results), "--to",
         str(args.out / f"base-{kind}"), "--keep", "1000"],
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )  # fmt: skip
    row["promote"] = (promote.stdout + promote.stderr).strip()[-300:]
    row["promoted"] = promote.returncode == 0
    return row


def cmd_run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    checkout = args.out / "checkout"
    if not checkout.exists():
        sh(["git", "clone", "-q", str(args.repo), str(checkout)])
    line = commits(checkout, args.first, args.last)
    kinds = [k.strip() for k in args.runs.split(",") if k.strip()]
    print(f"{len(line)} commits {line[0][:10]}..{line[-1][:10]}, runs {kinds}, out {args.out}", flush=True)
    done = done_runs(args.out)
    for index, commit in enumerate(line):
        todo = [k for k in kinds if (commit, k) not in done]
        if not todo:
            continue
        sh(["git", "checkout", "-q", "--force", commit], checkout)
        sh(["git", "clean", "-q", "-fdx"], checkout)
        env = clean_env(args.perfgate_src, commit, args.ref)
        probe = subprocess.run(
            [str(args.python), "-c", f"import {args.package}"], cwd=checkout, env=env, capture_output=True, text=True
        )
        subject = sh(["git", "log", "-1", "--format=%s", commit], checkout)
        for kind in todo:
            if probe.returncode != 0:
                row = {"index": index, "commit": commit, "kind": kind, "promoted": False,
                       "skipped": f"import {args.package} failed: {probe.stderr.strip()[-200:]}"}  # fmt: skip
            else:
                row = run_one(args, checkout, index, commit, kind)
            row["subject"] = subject
            record(args.out, row)
            status = "promoted" if row["promoted"] else f"SKIPPED ({row.get('skipped') or row.get('promote')})"
            print(
                f"[{index + 1:3d}/{len(line)}] {commit[:10]} {kind:7s} {row.get('wall_s', 0):6.1f} s "
                f"load {row.get('loadavg_1m', 0):.2f} {status}  {subject[:60]}",
                flush=True,
            )
    return 0


# --- analysis ---------------------------------------------------------------------------------


def history_json(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    out = args.out / f"history-{kind}.json"
    text = args.out / f"history-{kind}.txt"
    env = {**os.environ, "PYTHONPATH": str(args.perfgate_src)}
    cmd = [str(args.python), "-m", "pytest_perfgate.cli", "history", str(args.out / f"base-{kind}"), "--all", "--full"]
    cmd += ["--json", str(out)]
    begin = time.perf_counter()
    done = subprocess.run(cmd, env=env, text=True, capture_output=True, check=False)
    took = time.perf_counter() - begin
    text.write_text(f"$ {' '.join(cmd)}\n(exit {done.returncode}, {took:.2f} s)\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise SystemExit(f"perfgate history failed ({done.returncode}): {done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def promoted(args: argparse.Namespace, kind: str) -> list[dict[str, Any]]:
    rows = [r for r in done_runs(args.out).values() if r["kind"] == kind and r["promoted"]]
    return sorted(rows, key=lambda r: r["index"])


def centre(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def count_series(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[float]]]:
    """Per (test, count metric): its per-run value (median of the run's values) in commit order."""
    rows = promoted(args, "counted")
    series: dict[tuple[str, str], list[float]] = {}
    for i, row in enumerate(rows):
        data = json.loads(Path(row["results"]).read_text())
        for test in data["tests"]:
            for metric, s in test["series"].items():
                if s.get("kind") in ("count", "size") and s["values"]:
                    values = series.setdefault((test["nodeid"], metric), [math.nan] * len(rows))
                    values[i] = centre(s["values"])
    return rows, series


def levels(values: list[float], min_change: float) -> list[tuple[int, int, float]]:
    """Maximal runs of consecutive values within ``min_change`` of their first: (first, last, value)."""
    out: list[tuple[int, int, float]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or abs(values[i] / values[start] - 1) >= min_change:
            out.append((start, i - 1, values[start]))
            start = i
    return out


def true_steps(values: list[float], min_change: float, min_segment: int) -> list[dict[str, Any]]:
    """The ground truth of an exact series, from its levels of at least ``min_segment`` runs (the
    shorter ones are what lies between them): between two consecutive long levels that differ by at
    least ``min_change``, a **step** whose first new run is anywhere in ``first..last`` (the runs
    after the old level up to the start of the new one: one run when nothing lies between); between
    two long levels at the same value with short levels between them, an **excursion** (runs
    ``first..last``: a level of fewer than ``min_segment`` runs, which the detector is not meant to
    report)."""
    found = []
    long = [lv for lv in levels(values, min_change) if lv[1] - lv[0] + 1 >= min_segment]
    for (_, end_a, value_a), (start_b, _, value_b) in itertools.pairwise(long):
        change = value_b / value_a - 1
        if abs(change) >= min_change:
            found.append({"kind": "step", "first": end_a + 1, "last": start_b, "change": change})
        elif start_b > end_a + 1:
            peak = max((values[j] / value_a - 1 for j in range(end_a + 1, start_b)), key=abs)
            found.append({"kind": "excursion", "first": end_a + 1, "last": start_b - 1, "change": peak})
    return found


def all_moves(values: list[float]) -> list[tuple[int, float]]:
    return [(i, values[i] / values[i - 1] - 1) for i in range(1, len(values)) if values[i] != values[i - 1]]


def reported(history: dict[str, Any], index_c: dict[str, int]) -> list[dict[str, Any]]:
    """Every change point of the judged history (test, metric, its JSON fields) and ``at``: the
    position of its first new commit among the counted runs (None for a commit not counted)."""
    points = []
    for s in history["series"]:
        for cp in s.get("change_points", []):
            at = index_c.get(cp.get("first_new_commit") or "")
            points.append({"test": s["test"], "metric": s["metric"], **cp, "at": at})
    return points


def short(commit: str | None) -> str:
    return (commit or "?")[:8]


def span(cp: dict[str, Any]) -> str:
    """A change point's commit range: the last commit of the old level .. the first of the new."""
    return f"{short(cp.get('last_old_commit'))}..{short(cp.get('first_new_commit'))}"


def cmd_analyse(args: argparse.Namespace) -> int:
    lines: list[str] = []
    say = lines.append
    rows, series = count_series(args)
    hist_c = history_json(args, "counted")
    timed = (args.out / "base-timed").exists()
    hist_t = history_json(args, "timed") if timed else {"series": []}
    commit_at = [r["commit"] for r in rows]
    # ground truth: exact count series
    truth = {key: true_steps(v, args.min_change, args.min_segment) for key, v in series.items()}
    moves = {key: all_moves(v) for key, v in series.items()}
    index_c = {r["commit"]: i for i, r in enumerate(rows)}
    points_c = reported(hist_c, index_c)
    points_t = reported(hist_t, index_c)
    tol = args.tolerance

    def where(t: dict[str, Any]) -> str:
        runs = f"{t['first']}" if t["first"] == t["last"] else f"{t['first']}-{t['last']}"
        return f"{runs} ({short(commit_at[t['first'] - 1])}..{short(commit_at[t['last']])})"

    say(f"## Ground truth: {len(series)} count series over {len(rows)} counted runs\n")
    say("Runs are numbered from 0 (the oldest commit of the range). A step's runs: where its first new run can be")
    say(f"(one run, or the span of short levels between two levels of >= {args.min_segment} runs).\n")
    say("| test | metric | every move (run: change from the previous run) | true steps | excursions |")
    say("| --- | --- | --- | --- | --- |")
    for (test, metric), found_truth in sorted(truth.items()):
        if moves[(test, metric)]:
            mv = ", ".join(f"{i}: {100 * c:+.3f}%" for i, c in moves[(test, metric)])
            st = ", ".join(f"{where(t)} {100 * t['change']:+.3f}%" for t in found_truth if t["kind"] == "step")
            ex = ", ".join(f"{where(t)} {100 * t['change']:+.3f}%" for t in found_truth if t["kind"] == "excursion")
            say(f"| {test.split('::')[-1]} | {metric} | {mv} | {st or 'none'} | {ex or 'none'} |")
    unmoved = sum(1 for m in moves.values() if not m)
    say(f"\n{unmoved} count series never moved.\n")
    # counted: matched against truth
    found: list[dict[str, Any]] = []
    matched: set[tuple[str, str, int]] = set()
    at_moves: list[dict[str, Any]] = []
    false_points = []
    for cp in points_c:
        key = (cp["test"], cp["metric"])
        at = cp["at"]
        steps = [t for t in truth.get(key, []) if t["kind"] == "step" and at is not None]
        near = [t for t in steps if t["first"] - tol <= at <= t["last"] + tol]
        if near:
            step = near[0]
            offset = (
                0
                if step["first"] <= at <= step["last"]
                else (at - step["first"] if at < step["first"] else at - step["last"])
            )
            matched.add((*key, step["first"]))
            found.append({**cp, "truth": step, "offset": offset})
        elif at is not None and any(abs(i - at) <= tol for i, _ in moves.get(key, [])):
            at_moves.append(cp)
        else:
            false_points.append(cp)
    n_true = sum(1 for v in truth.values() for t in v if t["kind"] == "step")
    n_exc = sum(1 for v in truth.values() for t in v if t["kind"] == "excursion")
    missed = [(k, t) for k, v in truth.items() for t in v if t["kind"] == "step" and (*k, t["first"]) not in matched]
    say("## Counted series: change points against the ground truth\n")
    say(f"true steps: {n_true}; found (within {tol} runs of their runs): {len(matched)}; missed: {len(missed)}; "
        f"excursions (not expected): {n_exc}; reported change points: {len(points_c)}; of them at a true step "
        f"{len(found)}, at a real move of the count that is no step (an excursion or a short level) {len(at_moves)}, "
        f"false (no move of the count within {tol} runs) {len(false_points)}\n")  # fmt: skip
    offsets: dict[int, int] = {}
    for f in found:
        offsets[f["offset"]] = offsets.get(f["offset"], 0) + 1
    say(f"position offsets (runs outside the true step's runs; 0 = inside): {dict(sorted(offsets.items()))}\n")
    say("| | test | metric | reported: first new run | reported change | commits | true step: runs | true change |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for f in sorted(found, key=lambda f: (f["at"], f["test"], f["metric"])):
        t = f["truth"]
        say(f"| found | {f['test'].split('::')[-1]} | {f['metric']} | {f['at']} | {100 * f['change']:+.3f}% | "
            f"{span(f)} | {where(t)} | {100 * t['change']:+.3f}% |")  # fmt: skip
    for cp in at_moves:
        say(f"| at a move, no step | {cp['test'].split('::')[-1]} | {cp['metric']} | {cp['at']} | "
            f"{100 * cp['change']:+.3f}% | {span(cp)} | - | - |")  # fmt: skip
    for cp in false_points:
        say(f"| FALSE | {cp['test'].split('::')[-1]} | {cp['metric']} | {cp['at']} | "
            f"{100 * cp['change']:+.3f}% | {span(cp)} | - | - |")  # fmt: skip
    for (test, metric), t in missed:
        say(f"| MISSED | {test.split('::')[-1]} | {metric} | - | - | - | {where(t)} | {100 * t['change']:+.3f}% |")
    # timed: explained by a count step of the same test at the same commit range?
    rows_t = promoted(args, "timed")
    say("\n## Timed series: change points, explained by the counts or not\n")
    say("| test | reported at run | change | commits | counted steps of the same test in that range | verdict |")
    say("| --- | --- | --- | --- | --- | --- |")
    timed_out = []
    for cp in points_t:
        before, after = cp.get("last_old_commit"), cp.get("first_new_commit")
        lo = index_c.get(before or "", -1)
        hi = index_c.get(after or "", -1)
        same = [
            (metric, i, c)
            for (test, metric), mv in moves.items()
            if test == cp["test"] and metric == "instructions"
            for i, c in mv
            if lo - args.tolerance < i <= hi + args.tolerance
        ]
        verdict = "explained" if same else "not explained by instruction counts"
        counted = ", ".join(f"run {i} {100 * c:+.2f}%" for _, i, c in same) or "none"
        say(f"| {cp['test'].split('::')[-1]} | {cp['at']} | {100 * cp['change']:+.1f}% | "
            f"{short(before)}..{short(after)} | {counted} | {verdict} |")  # fmt: skip
        timed_out.append({**cp, "counted_moves": same, "verdict": verdict})
    say("\n## Timed series: noise and smallest detectable step (as perfgate history reports them)\n")
    say("| test | metric | runs | noise | smallest detectable step | change points |")
    say("| --- | --- | --- | --- | --- | --- |")
    for s in sorted(hist_t["series"], key=lambda s: s["test"]):
        say(f"| {s['test'].split('::')[-1]} | {s['metric']} | {len(s['points']['run'])} | "
            f"{100 * (s.get('noise') or 0):.2f}% | {100 * (s.get('min_detectable_step') or 0):.1f}% | "
            f"{len(s.get('change_points', []))} |")  # fmt: skip
    say(f"\ncounted runs: {len(rows)}; timed runs: {len(rows_t)}" + ("" if timed else " (no timed baseline)"))
    text = "\n".join(lines) + "\n"
    (args.out / "analysis.md").write_text(text)
    (args.out / "analysis.json").write_text(
        json.dumps(
            {
                "truth": {f"{t} [{m}]": s for (t, m), s in truth.items() if s},
                "moves": {f"{t} [{m}]": s for (t, m), s in moves.items() if s},
                "found": found,
                "false": false_points,
                "missed": [{"series": f"{t} [{m}]", **step} for (t, m), step in missed],
                "at_moves": at_moves,
                "timed": timed_out,
                "commits": commit_at,
            },
            indent=1,
        )
        + "\n"
    )
    print(text)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Judge the history as it grew: after each promoted run, ``perfgate history`` on the first
    runs only (a copy of ``history.jsonl`` cut after them, its ``history.state.json`` kept from one
    judging to the next, as the template's default-branch job keeps it). Per change point of the
    whole history: the first judging that reported it (same series, first new commit within
    ``--tolerance`` runs); and every change point a judging reported open that the whole history
    does not have (an alert that would have been opened, then found wrong)."""
    env = {**os.environ, "PYTHONPATH": str(args.perfgate_src)}
    lines: list[str] = []
    say = lines.append
    for kind in ("counted", "timed"):
        base = args.out / f"base-{kind}"
        if not base.exists():
            continue
        records = (base / "history.jsonl").read_text().splitlines()
        header, runs = records[0], records[1:]
        commits = [json.loads(r)["commit"] for r in runs]
        at = {c: i for i, c in enumerate(commits)}
        folder = args.out / f"replay-{kind}"
        if folder.exists():
            for old in folder.iterdir():
                old.unlink()
        folder.mkdir(exist_ok=True)
        seen: dict[tuple[str, str, int], int] = {}  # (test, metric, first new run) -> first n
        open_seen: dict[tuple[str, str, int], tuple[int, float]] = {}
        last_seen: dict[tuple[str, str], dict[int, int]] = {}  # (test, metric) -> first new run -> last n
        took = []
        final: list[dict[str, Any]] = []
        for n in range(1, len(runs) + 1):
            (folder / "history.jsonl").write_text("\n".join([header, *runs[:n]]) + "\n")
            out = folder / "judged.json"
            begin = time.perf_counter()
            done = subprocess.run(
                [str(args.python), "-m", "pytest_perfgate.cli", "history", str(folder), "--json", str(out)],
                env=env, text=True, capture_output=True, check=False,
            )  # fmt: skip
            took.append(time.perf_counter() - begin)
            if done.returncode != 0:
                raise SystemExit(f"perfgate history failed at {n} runs: {done.stderr[-1000:]}")
            final = []
            for s in json.loads(out.read_text())["series"]:
                for cp in s.get("change_points", []):
                    i = at[cp["first_new_commit"]]
                    final.append({"test": s["test"], "metric": s["metric"], "at": i, **cp})
                    seen.setdefault((s["test"], s["metric"], i), n)
                    last_seen.setdefault((s["test"], s["metric"]), {})[i] = n
                    if cp.get("open"):
                        open_seen.setdefault((s["test"], s["metric"], i), (n, cp["change"]))
        say(f"## {kind}: {len(runs)} runs judged one by one ({min(took):.2f}-{max(took):.2f} s per judging)\n")
        say("| test | metric | first new run | change | first reported after run | delay (runs after the first new) |")
        say("| --- | --- | --- | --- | --- | --- |")
        for cp in sorted(final, key=lambda c: (c["at"], c["test"], c["metric"])):
            firsts = [m for (t, me, i), m in seen.items() if t == cp["test"] and me == cp["metric"]
                      and abs(i - cp["at"]) <= args.tolerance]  # fmt: skip
            first = min(firsts)
            say(f"| {cp['test'].split('::')[-1]} | {cp['metric']} | {cp['at']} | {100 * cp['change']:+.2f}% | "
                f"{first - 1} | {first - 1 - cp['at']} |")  # fmt: skip
        kept = {(c["test"], c["metric"], c["at"]) for c in final}
        gone = [
            (key, n, change)
            for key, (n, change) in open_seen.items()
            if not any(k[:2] == key[:2] and abs(k[2] - key[2]) <= args.tolerance for k in kept)
        ]
        say(f"\nopen change points reported at some point and absent from the whole history: {len(gone)}\n")
        for (test, metric, i), n, change in sorted(gone, key=lambda g: (g[0][2], g[0][0])):
            last = max(m for j, m in last_seen[(test, metric)].items() if abs(j - i) <= args.tolerance)
            say(f"- {test.split('::')[-1]} [{metric}] at run {i} ({100 * change:+.2f}%): reported after runs "
                f"{n - 1} to {last - 1}, not after run {last}")  # fmt: skip
        say("")
    text = "\n".join(lines) + "\n"
    (args.out / "replay.md").write_text(text)
    print(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "analyse", "replay"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True, help="where the checkout, runs and baselines go")
        p.add_argument("--python", type=Path, default=Path("/tmp/perfgate-ab-public/venv/bin/python"))
        p.add_argument("--perfgate-src", type=Path, default=ROOT / "src")
    run = sub.choices["run"]
    run.add_argument("--repo", required=True, help="a git repository or bare mirror of the project")
    run.add_argument("--first", required=True, help="the oldest commit of the range (included)")
    run.add_argument("--last", required=True, help="the newest commit (first-parent line; included)")
    run.add_argument("--runs", default="counted,timed", help="which runs per commit: counted,timed")
    run.add_argument("--tests", nargs="+", default=["tests/benchmarks"], help="what pytest runs")
    run.add_argument("--package", default="fastjsonschema", help="imported to check a commit builds")
    run.add_argument("--ref", default="master", help="CI_COMMIT_REF_NAME of the runs")
    analyse = sub.choices["analyse"]
    analyse.add_argument("--min-change", type=float, default=0.001)
    analyse.add_argument("--min-segment", type=int, default=3)
    analyse.add_argument("--tolerance", type=int, default=2, help="runs between a reported and a true step")
    sub.choices["replay"].add_argument("--tolerance", type=int, default=2, help="runs between two reports of a step")
    args = parser.parse_args()
    args.out = args.out.resolve()
    return {"run": cmd_run, "analyse": cmd_analyse, "replay": cmd_replay}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
