"""Judge a series' saved blocks again with another perfgate revision's statistics.

    python bench/ab_public/rejudge.py bench/ab_public/runs/<label> --perfgate-rev <rev>

Every run of ``run.py series`` saved each test's block log ratios, pair by pair (``perfgate ab
--save-blocks``). This rebuilds the ``PairedTest`` objects from those files and calls
``pytest_perfgate.ab.judge.compare_paired`` of ``<rev>`` (a ``git archive`` snapshot first on
``sys.path``) with ``--max-regression 5%`` (warning 5%), so a change of the interval or the
decision rule can be measured on the same blocks. The result is a copy of the series folder,
``runs/<label>-rejudged-<rev7>/``, whose ``runs.jsonl`` has the same form (``summarise.py``
reads it). The measurements are the old revision's; only the judgement is the new one's.
Run it with the bench venv's Python (numpy/scipy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/ab_public/run.py)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--perfgate-rev", default="HEAD")
    parser.add_argument("--work", type=Path, default=run.WORK)
    args = parser.parse_args()
    env, commit = run.perfgate_env(args.work, args.perfgate_rev)
    sys.path.insert(0, env["PYTHONPATH"])
    from pytest_perfgate.ab.judge import compare_paired
    from pytest_perfgate.ab.schedule import PairedTest
    from pytest_perfgate.config import GateSettings

    settings = GateSettings(max_regression=0.05, warn_regression=0.05)
    out = args.folder.parent / f"{args.folder.name}-rejudged-{commit[:7]}"
    out.mkdir(exist_ok=True)
    meta = [json.loads(line) for line in (args.folder / "meta.jsonl").open()]
    for m in meta:
        m["rejudged_with"] = commit
    (out / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    records = []
    for line in (args.folder / "runs.jsonl").open():
        record: dict[str, Any] = json.loads(line)
        blocks_file = Path(record["files"]["blocks"])
        if not blocks_file.exists():
            continue
        tests = []
        for t in json.loads(blocks_file.read_text())["tests"]:
            for name in ("base", "current", "log_ratios"):
                t[name] = tuple(t.get(name, ()))
            t["extra_pairs"] = tuple(tuple(p) for p in t.get("extra_pairs", ()))
            known = PairedTest.__dataclass_fields__
            tests.append(PairedTest(**{k: v for k, v in t.items() if k in known}))
        report = compare_paired(tests, settings)
        record.pop("progress", None)  # the measurement's, kept in the original series file
        record["tests"] = {}
        for c in report.comparisons:
            if c.metric != "time":
                continue
            record["tests"][c.nodeid] = {
                "verdict": c.verdict.value,
                "change": c.change,
                "ci": list(c.ci) if c.ci else None,
                "p_adjusted": c.p_adjusted,
            }
        failed = any(t["verdict"] == "regression" for t in record["tests"].values())
        if record["returncode"] in (0, 1):
            record["returncode"] = 1 if failed else 0
        records.append(record)
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} runs judged again with perfgate {commit[:7]}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
