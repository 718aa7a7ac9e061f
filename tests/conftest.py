from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def run_json(pytester: pytest.Pytester):
    """Run pytester's session with --perfgate-save and return (result, parsed results file)."""

    def run(*args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        out = pytester.path / "results.json"
        result = pytester.runpytest(
            "-p", "no:cacheprovider", f"--perfgate-save={out}", "--perfgate-max-time=20ms", "--perfgate-warmup=0", *args
        )
        data = json.loads(Path(out).read_text()) if out.exists() else {}
        return result, data

    return run
