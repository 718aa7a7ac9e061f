"""The guides' output blocks are generated from the examples by docs/generate.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_generated_block_has_a_generator_and_back() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_generated_blocks_are_filled_with_real_output() -> None:
    text = "".join(p.read_text() for p in sorted((ROOT / "docs").glob("guide-*.md")))
    assert text.count("<!-- generated: ") == 6
    assert "perf budget exceeded: mem_peak" in text and "hot path: search_text" in text
    assert "race: T1 delete_node raised EdgeNotFound" in text and "index advice:" in text
    assert "### :x: perfgate: FAILED" in text
    assert "/work/" not in text and "/tmp/" not in text  # machine paths are stripped
