"""Figures of a ``run.py series``: per project, A/A suite failures, detection, estimate vs truth, cost.

    python bench/ab_public/summarise.py bench/ab_public/runs/<label> [--variants bench/ab_public/runs/prepare]

* **A/A suite failures**: unchanged working tree, run exit code 1 (a regression); incomplete runs
  (exit 2) are counted apart, as are warnings.
* **Detection**, per slowed benchmark: runs of the +10% / +25% variant whose verdict is
  ``regression`` (``--max-regression 5%``); controls (true change 0) should stay ``unchanged``.
* **Estimate vs truth**: perfgate's change against the true change (``truth.py``, the mean of the
  measurements before and after the series); the largest error.
* **Interval coverage**: the share of the reported 95% intervals that hold the true change (0 for
  every A/A comparison and every control).
* **Cost**: wall time per run and per test; the per-test seconds perfgate's progress lines print.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from truth import key_of_nodeid  # noqa: E402


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta  # the bench venv has scipy

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def load_truth(folder: Path, project: str, variant: str) -> dict[str, float]:
    """Per benchmark key: the true change, the mean over the truth files found (before / after)."""
    values: dict[str, list[float]] = defaultdict(list)
    for path in sorted(folder.glob(f"truth-{project}-{variant}-*.json")):
        for name, t in json.loads(path.read_text())["tests"].items():
            values[name].append(float(t["change"]))
    return {name: statistics.mean(v) for name, v in values.items()}


def truth_table(folder: Path) -> str:
    """Per project and benchmark: the true change of each variant, before / after the series."""
    out = []
    for project in sorted({p.name.split("-")[1] for p in folder.glob("truth-*.json")}):
        files = {
            (p.name.split("-")[2], p.stem.split("-")[3]): json.loads(p.read_text())
            for p in folder.glob(f"truth-{project}-*.json")
        }
        columns = sorted(files)
        out.append(
            f"{project} (N: " + ", ".join(f"{v} {files[(v, w)]['n']}" for v, w in columns if w == "before") + ")\n"
        )
        out.append("| benchmark | us per call | " + " | ".join(f"{v} {w}" for v, w in columns) + " |")
        out.append("|---|---|" + "---|" * len(columns))
        first = files[columns[0]]["tests"]
        for name in sorted(first):
            cells = [pct(files[c]["tests"][name]["change"]) if name in files[c]["tests"] else "-" for c in columns]
            out.append(f"| `{name}` | {first[name]['base_seconds_per_call'] * 1e6:.1f} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def progress(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's per-test progress (all pairs), read again from its raw log when it is at hand."""
    from run import progress_of

    log = Path(record["files"]["json"]).with_suffix(".log")
    if log.exists():
        return progress_of(log.read_text().split("--- stderr", 1)[-1])
    return dict(record.get("progress", {}))


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def summarise(folder: Path, variants_folder: Path) -> str:
    runs = [json.loads(line) for line in (folder / "runs.jsonl").open()]
    meta = [json.loads(line) for line in (folder / "meta.jsonl").open()]
    out: list[str] = []
    loads = [r["loadavg_before"][0] for r in runs]
    out.append(
        f"{len(runs)} runs, perfgate {', '.join(sorted({m['perfgate_commit'][:7] for m in meta}))}, "
        f"max-time {meta[0]['max_time']}, extra args {meta[0]['ab_args']}; 1-min load average before a run: "
        f"median {statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f})\n"
    )
    for project in sorted({r["project"] for r in runs}):
        mine = [r for r in runs if r["project"] == project]
        truths = {v: load_truth(variants_folder, project, v) for v in ("p10", "p25")}
        out.append(f"## {project}\n")
        aa = [r for r in mine if r["variant"] == "aa"]
        failed = sum(1 for r in aa if r["returncode"] == 1)
        incomplete = sum(1 for r in aa if r["returncode"] not in (0, 1))
        warned = sum(1 for r in aa if any(t["verdict"] == "warning" for t in r["tests"].values()))
        lo, hi = clopper_pearson(failed, len(aa)) if aa else (0.0, 1.0)
        out.append(
            f"- A/A suites failing (exit 1): **{failed} of {len(aa)}** (95% CI {100 * lo:.1f}-{100 * hi:.1f}%); "
            f"with a warning: {warned}; incomplete or other exit code: {incomplete}"
        )
        kinds: dict[str, int] = defaultdict(int)
        for r in mine:
            for n in {re.sub(r"[-+]?\d[\d.,%]*", "N", " ".join(n.split()[:8])) for n in r.get("notices", [])}:
                kinds[n] += 1
        if kinds:
            out.append(
                "- notices (runs showing each kind): " + "; ".join(f"`{k} ...` {v}" for k, v in sorted(kinds.items()))
            )
        for r in mine:
            if r["returncode"] not in (0, 1):
                out.append(f"- run {r['name']}: exit {r['returncode']}: `{' / '.join(r['stderr_tail'])}`")
        out.append("")
        # per test
        rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
        cover: dict[str, list[bool]] = defaultdict(list)
        errors: list[tuple[float, str, str]] = []
        for r in mine:
            for nodeid, t in r["tests"].items():
                k = key_of_nodeid(nodeid)
                true = 0.0 if r["variant"] == "aa" else truths[r["variant"]].get(k, 0.0)
                row = rows[k]
                row[f"{r['variant']}_verdict"].append(t["verdict"])
                if t.get("change") is not None:
                    row[f"{r['variant']}_change"].append(float(t["change"]))
                    errors.append((float(t["change"]) - true, k, r["variant"]))
                ci = t.get("ci")
                if ci and ci[0] is not None and ci[1] is not None:
                    kind = "A/A" if r["variant"] == "aa" else ("A/B slowed" if abs(true) >= 0.02 else "A/B control")
                    cover[kind].append(float(ci[0]) <= true <= float(ci[1]))
        out.append(
            "| benchmark | true +10% | caught | est. (median, range) | true +25% | caught | est. | "
            "A/A est. range | A/A not unchanged |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for k in sorted(rows):
            row = rows[k]
            cells = [f"`{k}`"]
            for v in ("p10", "p25"):
                verdicts = row[f"{v}_verdict"]
                changes = row[f"{v}_change"]
                caught = sum(1 for x in verdicts if x == "regression")
                cells += [
                    pct(truths[v].get(k)),
                    f"{caught}/{len(verdicts)}",
                    f"{pct(statistics.median(changes))} ({pct(min(changes))}..{pct(max(changes))})" if changes else "-",
                ]
            aa_changes = row["aa_change"]
            cells.append(f"{pct(min(aa_changes))}..{pct(max(aa_changes))}" if aa_changes else "-")
            cells.append(str(sum(1 for x in row["aa_verdict"] if x != "unchanged")) + f"/{len(row['aa_verdict'])}")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        for kind in ("A/A", "A/B control", "A/B slowed"):
            c = cover.get(kind, [])
            if c:
                out.append(
                    f"- 95% intervals holding the true change, {kind}: **{sum(c)} of {len(c)}** "
                    f"({100 * sum(c) / len(c):.0f}%)"
                )
        if errors:
            worst = max(errors, key=lambda e: abs(e[0]))
            out.append(
                f"- largest error of the estimate against the truth: {pct(worst[0])} points (`{worst[1]}`, {worst[2]})"
            )
        walls = [r["wall"] for r in mine]
        n_tests = statistics.median([len(r.get("progress", {})) or len(r["tests"]) for r in mine])
        per_test = [p["elapsed"] for r in mine for p in progress(r).values()]
        out.append(
            f"- cost: wall per run median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max "
            f"{max(walls):.1f}) for {n_tests:g} tests = {statistics.median(walls) / max(n_tests, 1):.1f} s "
            f"per test including the fixed part"
            + (
                f"; seconds per test in the progress lines (all pairs of workers): "
                f"median {statistics.median(per_test):.1f}, max {max(per_test):.1f}"
                if per_test
                else ""
            )
        )
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--variants", type=Path, default=HERE / "runs" / "prepare")
    parser.add_argument("--truth", action="store_true", help="print only the table of true changes")
    args = parser.parse_args()
    print(truth_table(args.variants) if args.truth else summarise(args.folder, args.variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
