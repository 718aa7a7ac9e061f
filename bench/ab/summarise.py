"""Reduce one ``perfgate ab`` run's raw outputs to a small per-workload summary.

From the gate JSON (``--json``): each workload's verdict, change, interval, p-values and number
of paired blocks, as ``perfgate ab`` decided them (default thresholds 10% / 5%). The verdicts
under other thresholds (``THRESHOLDS``; ``max5`` = ``--max-regression 5%``) are recomputed from
those fields: the Holm-adjusted p-values do not depend on the thresholds, so a regression is
``p_adjusted < alpha and change > max_regression`` exactly as :func:`pytest_perfgate.gate._decide`
says.

A cross-check, for perfgate versions that judge every block (before 4c33d83, which leaves out
blocks in which a worker was preempted): the two sides' results files (``--save-base``,
``--save-current``) hold the kept rounds of each side in the order they ran, which give back the
per-block ratios exactly (block ``i`` holds base rounds ``2i, 2i+1`` and current rounds ``2i,
2i+1``, all of the same loop count); :func:`pytest_perfgate.ab.judge.compare_paired` on them must give
the same verdicts (``check_rounds``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pytest_perfgate import stats
from pytest_perfgate.ab.judge import compare_paired
from pytest_perfgate.ab.schedule import PairedTest
from pytest_perfgate.config import GateSettings
from pytest_perfgate.model import load_results

#: (max_regression, warn_regression) the verdicts are recomputed with; ``max5`` = ``perfgate ab
#: --max-regression 5%``, which also lowers the warning level to 5%
THRESHOLDS = {"default": (0.10, 0.05), "max5": (0.05, 0.05)}
ALPHA, MIN_EFFECT = 0.01, 0.03
#: a test line of perfgate ab's progress output
TEST_LINE = re.compile(
    r"^\[\d+/\d+\] \S+\[(\w+)\]: ([-+0-9.]+)% over (\d+) blocks of 4 rounds x (\d+) loop\(s\)"
    r"(?:, (\d+) disturbed left out)? \(([0-9.]+)s, stopped: ([\w ]+)\)"
)


def verdict_at(c: dict[str, Any], max_t: float, warn_t: float) -> str:
    """The verdict of one paired comparison (a row of the gate JSON) under other regression thresholds."""
    verdict = str(c["verdict"])
    if verdict in ("insufficient data", "new", "missing", "improvement") or c.get("change") is None:
        return verdict  # none of these depends on the regression thresholds
    max_t = max(max_t, MIN_EFFECT)
    warn_t = max(min(warn_t, max_t), MIN_EFFECT)
    p_adjusted = c.get("p_adjusted")
    significant = float(p_adjusted if p_adjusted is not None else 1.0) < ALPHA
    change = float(c["change"])
    if significant and change > max_t:
        return "regression"
    if significant and change > warn_t:
        return "warning"
    if change > warn_t:
        return "unstable"
    return "unchanged"


def progress_lines(log: Path) -> dict[str, dict[str, Any]]:
    """Per workload: blocks, loops, disturbed blocks left out, seconds, why it stopped (from the log)."""
    if not log.exists():
        return {}
    out = {}
    for line in log.read_text().split("--- stderr", 1)[-1].splitlines():
        m = TEST_LINE.match(line)
        if m:
            out[m.group(1)] = {
                "blocks": int(m.group(3)),
                "loops": int(m.group(4)),
                "disturbed_left_out": int(m.group(5) or 0),
                "elapsed": float(m.group(6)),
                "stopped": m.group(7),
            }
    return out


def workload_of(nodeid: str) -> str:
    return nodeid.split("[")[-1].rstrip("]")


def block_log_ratios(base: tuple[float, ...], current: tuple[float, ...]) -> tuple[float, ...]:
    blocks = min(len(base), len(current)) // 2
    return tuple(
        math.log((current[2 * i] + current[2 * i + 1]) / (base[2 * i] + base[2 * i + 1])) for i in range(blocks)
    )


def _rounds(path: Path) -> dict[str, tuple[float, ...]]:
    if not path.exists():
        return {}
    run = load_results(path)
    return {t.nodeid: tuple(t.series["time"].values) for t in run.tests if "time" in t.series}


def summarise_run(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files = {k: Path(v) for k, v in record["files"].items()}
    if not files["gate"].exists():
        return {}
    gate = json.loads(files["gate"].read_text())
    out: dict[str, dict[str, Any]] = {}
    for c in gate["comparisons"]:
        if c["metric"] != "time":
            continue
        out[workload_of(c["nodeid"])] = {
            "verdict": c["verdict"],
            "change": c["change"],
            "ci": c["ci"],
            "p": c["p_value"],
            "p_adj": c["p_adjusted"],
            "blocks": c["baseline_runs"],
            "base_median": c["baseline"],
            "current_median": c["current"],
            "reason": c["reason"] if c["verdict"] not in ("unchanged",) else "",
            "recomputed": {label: verdict_at(c, *t) for label, t in THRESHOLDS.items()},
        }
    log = Path(str(files["gate"]).removesuffix(".gate.json") + ".log")
    for workload, figures in progress_lines(log).items():
        out.setdefault(workload, {})["progress"] = figures
    record["notices"] = list(gate.get("notices", []))
    if any("disturbed" in n for n in record["notices"]):
        return out  # blocks were left out: the rounds no longer give the judged blocks back
    base, current = _rounds(files["base"]), _rounds(files["current"])
    tests = []
    for nodeid in sorted(set(base) & set(current)):
        ratios = block_log_ratios(base[nodeid], current[nodeid])
        if ratios:
            tests.append(PairedTest(nodeid, loops=1, base=base[nodeid], current=current[nodeid], log_ratios=ratios))
    for label, (max_t, warn_t) in THRESHOLDS.items():
        report = compare_paired(tests, GateSettings(max_regression=max_t, warn_regression=warn_t))
        for comparison in report.comparisons:
            entry = out.setdefault(workload_of(comparison.nodeid), {})
            entry.setdefault("check_rounds", {})[label] = comparison.verdict.value
            if label == "default":
                entry["check_rounds_change"] = comparison.change
    for test in tests:
        entry = out[workload_of(test.nodeid)]
        lr = test.log_ratios
        centre = stats.percentile(lr, 50)
        entry["lr"] = {
            "n": len(lr),
            "above": sum(1 for v in lr if v > 0),
            "below": sum(1 for v in lr if v < 0),
            "q": [round(stats.percentile(lr, q), 5) for q in (5, 25, 50, 75, 95)],
            "mad": round(stats.percentile([abs(v - centre) for v in lr], 50) * 1.4826, 5),
        }
        entry["rounds_per_side"] = len(test.base)
    return out
