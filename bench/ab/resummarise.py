"""Recompute the per-run summaries of a run folder from its raw outputs (after summarise.py changed).

    python bench/ab/resummarise.py bench/ab/runs/v1-9412120 [--raw /tmp/perfgate-ab-bench/v1-9412120]

Uses the perfgate of the commit the runs measured (``meta.jsonl``), extracted with ``git archive``,
so the cross-check recomputes verdicts with the same code that made them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--raw", help="where the raw outputs are (default: each run's recorded paths)")
    args = parser.parse_args()
    folder = Path(args.folder)
    commit = json.loads((folder / "meta.jsonl").read_text().splitlines()[0])["perfgate_commit"]
    work = Path(tempfile.mkdtemp(prefix="perfgate-ab-resummarise-"))
    try:
        sys.path.insert(0, str(HERE))
        from run import snapshot_perfgate

        snapshot_perfgate(work, commit)
        sys.path.insert(0, str(work / "src"))
        import summarise

        records = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines() if line.strip()]
        for record in records:
            if args.raw:
                record["files"] = {k: str(Path(args.raw) / Path(v).name) for k, v in record["files"].items()}
            record["tests"] = summarise.summarise_run(record)
        (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"{folder}: {len(records)} runs re-summarised with perfgate {commit[:10]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
