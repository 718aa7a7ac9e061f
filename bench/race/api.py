"""Races through the API: the graph example's races fired as HTTP requests through each test
client (examples/graph_service/api.py), next to the same operations called directly.

For each race and each way in: the fraction of seeds whose exploration finds the naive bug within
the schedule budget and the median schedules needed, replay reproduction (the printed token gives
the same failure), false alarms on the fixed version over random schedules, and the cost of one
schedule (fixed version, so every schedule runs to its end).

    .venv/bin/python bench/race/api.py                   # 50 seeds per race and client
    .venv/bin/python bench/race/api.py --seeds 10        # quick look

Writes bench/race/api-results.json and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mongomock

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "examples" / "graph_service"))

from api import CLIENTS, HttpGraph  # noqa: E402
from graphstore import FixedGraph, Graph, NaiveGraph  # noqa: E402
from run import _pct, _summary  # noqa: E402
from scenarios import SCENARIOS, Scenario  # noqa: E402

from pytest_perfgate.race import Race, RaceFailure, decode  # noqa: E402


#: the operations' side: the graph itself (direct calls), or a client of its API
def _through(make: Callable[[Graph], Any]) -> Callable[[Graph], Any]:
    return lambda graph: HttpGraph(make(graph))


WAYS: dict[str, Callable[[Graph], Any]] = {"direct": lambda graph: graph} | {
    name: _through(make) for name, make in CLIENTS.items()
}


def _race(scenario: Scenario, cls: type[Graph], way: str, race: Race, **options: Any) -> Any:
    graph = cls(mongomock.MongoClient().bench)
    side = WAYS[way](graph)
    try:
        race.run(*scenario.operations(side), setup=scenario.setup(graph), invariant=graph.check_consistency,
                 seconds=None, **options)  # fmt: skip
    except RaceFailure as failure:
        return failure.report
    return race.reports[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=50, help="seeds per race and way in")
    parser.add_argument("--budget", type=int, default=300, help="schedules per seed")
    parser.add_argument("--fixed-seeds", type=int, default=5, help="seeds per race and way in on the fixed version")
    parser.add_argument("--out", default=str(HERE / "api-results.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {"args": vars(args), "races": {}}
    started = time.monotonic()
    for name, scenario in SCENARIOS.items():
        race_results: dict[str, Any] = {}
        for way in WAYS:
            needed: list[int | None] = []
            replayed = replays = 0
            for seed in range(args.seeds):
                report = _race(scenario, NaiveGraph, way, Race(), seed=seed, schedules=args.budget, shrink=False)
                failure = report.failure
                needed.append(failure.schedule if failure else None)
                if failure is not None:
                    replays += 1
                    again = _race(scenario, NaiveGraph, way, Race(replay=decode(failure.token)))
                    replayed += again.failure is not None and again.failure.summary == failure.summary
            alarms = schedules = 0
            seconds: list[float] = []
            for seed in range(args.fixed_seeds):
                t0 = time.perf_counter()
                report = _race(scenario, FixedGraph, way, Race(), seed=seed, schedules=args.budget, shrink=False)
                seconds.append((time.perf_counter() - t0) / max(1, report.schedules))
                alarms += report.failure is not None
                schedules += report.schedules
            race_results[way] = _summary(needed, args.seeds) | {
                "replayed": replayed, "replays": replays, "fixed_schedules": schedules, "false_alarms": alarms,
                "ms_per_schedule": round(1000 * statistics.median(seconds), 3),
            }  # fmt: skip
            print(f"{name} {way}: {race_results[way]}", flush=True)
        results["races"][name] = race_results
    results["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    lines = [
        f"Random walk, budget {args['budget']} schedules per seed, {args['seeds']} seeds per race and way in; "
        f"fixed version: {args['fixed_seeds']} seeds x {args['budget']} schedules.",
        "",
        "| race | way in | seeds finding it / median schedules (max) | replay reproduced | fixed: false alarms / "
        "schedules | ms per schedule (fixed) |",
        "|---|---|---|---|---|---|",
    ]
    for name, ways in results["races"].items():
        for way, r in ways.items():
            lines.append(
                f"| {name} | {way} | {_pct(r['fraction'])} ({r['found']}/{r['runs']}) / {r['median_needed']} "
                f"({r['max_needed']}) | {r['replayed']}/{r['replays']} | {r['false_alarms']} / "
                f"{r['fixed_schedules']} | {r['ms_per_schedule']} |"
            )
    lines.append(f"\nTotal {results['seconds']}s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
