"""Race detection benchmark: perfgate's scheduler vs threads behind a barrier, on the graph example.

For each example bug (examples/graph_service/scenarios.py) and each strategy it measures the
fraction of seeds whose exploration finds the bug within the schedule budget and the median
number of schedules needed; the same for naive threads released together by a barrier (the
stress test most suites have), at the default switch interval and at 1e-6 s (what
pytest-run-parallel sets); false alarms on the fixed version (sampled by seeds, and proved by
complete exhaustive enumeration); and replay success (a printed token reproduces the failure).

    .venv/bin/python bench/race/run.py                 # full run (about 10 minutes here)
    .venv/bin/python bench/race/run.py --seeds 20 --stress-attempts 5   # quick look

Writes bench/race/results.json and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mongomock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "graph_service"))

from graphstore import FixedGraph, Graph, NaiveGraph  # noqa: E402
from scenarios import SCENARIOS, Scenario  # noqa: E402

from pytest_perfgate.race import Race, RaceFailure, decode  # noqa: E402


def _graph(cls: type[Graph]) -> Graph:
    return cls(mongomock.MongoClient().bench)


def explore(
    scenario: Scenario, cls: type[Graph], strategy: str, seed: int, budget: int, shrink: bool, **options: Any
) -> Any:
    graph = _graph(cls)
    race = Race()
    try:
        race.run(
            *scenario.operations(graph), setup=scenario.setup(graph), invariant=graph.check_consistency,
            strategy=strategy, seed=seed, schedules=budget, seconds=None, shrink=shrink, **options,
        )  # fmt: skip
    except RaceFailure as failure:
        return failure.report
    return race.reports[-1]


def replays(scenario: Scenario, cls: type[Graph], token: str, summary: str) -> bool:
    graph = _graph(cls)
    try:
        Race(replay=decode(token)).run(*scenario.operations(graph), setup=scenario.setup(graph),
                                       invariant=graph.check_consistency)  # fmt: skip
    except RaceFailure as failure:
        return failure.report.failure is not None and failure.report.failure.summary == summary
    return False


def stress_trial(scenario: Scenario, graph: Graph, kinds: dict[str, int] | None = None) -> bool:
    """One round of threads behind a barrier; True when it showed a failure (counted in ``kinds``)."""
    scenario.setup(graph)()
    ops = scenario.operations(graph)
    barrier = threading.Barrier(len(ops))
    errors: list[BaseException] = []

    def body(op: Any) -> None:
        barrier.wait()
        try:
            op()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(op,)) for op in ops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    problems = [f"{type(e).__name__}: {e}" for e in errors]
    try:
        graph.check_consistency()
    except Exception as exc:
        problems.append(f"invariant: {exc}")
    for problem in problems:
        if kinds is not None:
            kinds[problem[:90]] = kinds.get(problem[:90], 0) + 1
    return bool(problems)


#: how each naive bug shows in a stress trial (anything else is not the bug: a torn mongomock call)
BUG_SIGNS = {
    "edge_vs_node_delete": "EdgeNotFound: e12",
    "add_edge_vs_node_delete": "invariant: edge e23 is dangling",
    "three_way_leaf_delete": "invariant: edge e23 is dangling",
}


def stress(
    scenario: Scenario, cls: type[Graph], attempts: int, budget: int, switch: float | None, sign: str | None
) -> dict[str, Any]:
    """``attempts`` runs of up to ``budget`` barrier trials, each run stopping at the first trial
    that shows the bug (``sign``; None: any failure). Every failure seen is counted by kind."""
    old = sys.getswitchinterval()
    if switch is not None:
        sys.setswitchinterval(switch)
    needed: list[int | None] = []
    kinds: dict[str, int] = {}
    try:
        graph = _graph(cls)
        for _ in range(attempts):
            found = None
            for trial in range(1, budget + 1):
                before = dict(kinds)
                if stress_trial(scenario, graph, kinds):
                    new = [k for k in kinds if kinds[k] != before.get(k, 0)]
                    if sign is None or any(k.startswith(sign) for k in new):
                        found = trial
                        break
            needed.append(found)
    finally:
        sys.setswitchinterval(old)
    return _summary(needed, attempts) | {"kinds": kinds}


def _summary(needed: list[int | None], runs: int) -> dict[str, Any]:
    hits = [n for n in needed if n is not None]
    return {
        "runs": runs,
        "found": len(hits),
        "fraction": len(hits) / runs if runs else 0.0,
        "median_needed": statistics.median(hits) if hits else None,
        "max_needed": max(hits) if hits else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=200, help="seeds per bug and strategy")
    parser.add_argument("--budget", type=int, default=300, help="schedules (or stress trials) per seed")
    parser.add_argument("--shrunk-replays", type=int, default=50, help="seeds whose failure is shrunk, then replayed")
    parser.add_argument("--fixed-seeds", type=int, default=20, help="seeds per strategy on the fixed version")
    parser.add_argument("--stress-attempts", type=int, default=50, help="barrier attempts of --budget trials each")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args()
    results: dict[str, Any] = {"args": vars(args), "bugs": {}, "fixed": {}}
    started = time.monotonic()
    for name, scenario in SCENARIOS.items():
        bug: dict[str, Any] = {"what": scenario.what}
        for strategy in ("random", "pct"):
            needed: list[int | None] = []
            replay_ok = replay_total = 0
            for seed in range(args.seeds):
                shrink = seed < args.shrunk_replays
                report = explore(scenario, NaiveGraph, strategy, seed, args.budget, shrink)
                failure = report.failure
                needed.append(failure.schedule if failure else None)
                if failure is not None:
                    replay_total += 1
                    replay_ok += replays(scenario, NaiveGraph, failure.token, failure.summary)
            bug[strategy] = _summary(needed, args.seeds) | {"replayed": replay_ok, "replays": replay_total}
            print(f"{name} {strategy}: {bug[strategy]}", flush=True)
        exhaustive = explore(scenario, NaiveGraph, "exhaustive", 0, args.budget, shrink=False)
        bug["exhaustive"] = {"found_at": exhaustive.failure.schedule if exhaustive.failure else None}
        print(f"{name} exhaustive: {bug['exhaustive']}", flush=True)
        for label, switch in (("barrier", None), ("barrier_switch_1e-6", 1e-6)):
            bug[label] = stress(scenario, NaiveGraph, args.stress_attempts, args.budget, switch, BUG_SIGNS[name])
            print(f"{name} {label}: {bug[label]}", flush=True)
        results["bugs"][name] = bug

        fixed: dict[str, Any] = {}
        for strategy in ("random", "pct"):
            alarms = schedules = 0
            for seed in range(args.fixed_seeds):
                report = explore(scenario, FixedGraph, strategy, seed, args.budget, shrink=False)
                alarms += report.failure is not None
                schedules += report.schedules
            fixed[strategy] = {"seeds": args.fixed_seeds, "schedules": schedules, "false_alarms": alarms}
        t0 = time.monotonic()
        proof = explore(scenario, FixedGraph, "exhaustive", 0, 1_000_000, shrink=False, preemption_bound=None)
        fixed["exhaustive_unbounded"] = {
            "interleavings": proof.distinct, "complete": proof.complete, "failure": proof.failure is not None,
            "seconds": round(time.monotonic() - t0, 1), "summary": proof.summary(),
        }  # fmt: skip
        for label, switch in (("barrier", None), ("barrier_switch_1e-6", 1e-6)):
            outcome = stress(scenario, FixedGraph, max(1, args.stress_attempts // 5), args.budget, switch, None)
            fixed[label] = {
                "attempts": outcome["runs"],
                "trials_per_attempt": args.budget,
                "attempts_with_false_alarm": outcome["found"],
                "kinds": outcome["kinds"],
            }
        results["fixed"][name] = fixed
        print(f"{name} fixed: {fixed}", flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(markdown(results))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _kinds(kinds: dict[str, int]) -> str:
    return "; ".join(f"{k} x{v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) or "-"


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    lines = [
        f"Budget: {args['budget']} schedules per seed (barrier: {args['budget']} trials per attempt); "
        f"{args['seeds']} seeds per bug and strategy; {args['stress_attempts']} barrier attempts per bug.",
        "",
        "| bug | random walk: seeds finding it / median schedules (max) | PCT depth 3: same | exhaustive (bound 2): "
        "found at schedule | barrier: attempts finding it / median trials | barrier + switchinterval 1e-6: same | "
        "replay reproduced |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, bug in results["bugs"].items():
        cells = []
        for key in ("random", "pct"):
            r = bug[key]
            cells.append(f"{_pct(r['fraction'])} ({r['found']}/{r['runs']}) / {r['median_needed']} ({r['max_needed']})")
        cells.append(str(bug["exhaustive"]["found_at"]))
        for key in ("barrier", "barrier_switch_1e-6"):
            r = bug[key]
            cells.append(f"{_pct(r['fraction'])} ({r['found']}/{r['runs']}) / {r['median_needed']}")
        replayed = sum(bug[s]["replayed"] for s in ("random", "pct"))
        total = sum(bug[s]["replays"] for s in ("random", "pct"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {replayed}/{total} |")
    lines += [
        "",
        "Failures seen by the barrier runs on the naive version (first column: the bug; others: torn calls):",
        "",
    ]
    for name, bug in results["bugs"].items():
        lines.append(f"* {name}: barrier: {_kinds(bug['barrier']['kinds'])}; "
                     f"switchinterval 1e-6: {_kinds(bug['barrier_switch_1e-6']['kinds'])}")  # fmt: skip
    lines += [
        "",
        "| fixed version | random: false alarms / schedules | PCT: false alarms / schedules | exhaustive, no bound | "
        "barrier: attempts with a false alarm | barrier + 1e-6: attempts with a false alarm |",
        "|---|---|---|---|---|---|",
    ]
    for name, fixed in results["fixed"].items():
        proof = fixed["exhaustive_unbounded"]
        verdict = (
            f"all {proof['interleavings']} interleavings hold"
            if proof["complete"] and not proof["failure"]
            else str(proof)
        )
        b, q = fixed["barrier"], fixed["barrier_switch_1e-6"]
        lines.append(
            f"| {name} | {fixed['random']['false_alarms']} / {fixed['random']['schedules']} | "
            f"{fixed['pct']['false_alarms']} / {fixed['pct']['schedules']} | {verdict} ({proof['seconds']}s) | "
            f"{b['attempts_with_false_alarm']}/{b['attempts']} | {q['attempts_with_false_alarm']}/{q['attempts']} |"
        )
    lines += ["", "False alarms of the barrier + 1e-6 runs on the fixed version, by kind:", ""]
    for name, fixed in results["fixed"].items():
        lines.append(f"* {name}: {_kinds(fixed['barrier_switch_1e-6']['kinds'])}")
    lines.append(f"\nTotal {results['seconds']}s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
