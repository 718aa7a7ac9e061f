"""Hostile inputs, run as a user runs them (issue 16 items 1 and 4): bad figures in results files
and pytest-benchmark JSON, bad perfgate.yml, bad perf_budget markers, bad perf.record calls and bad
numeric command-line options. Every case runs in its own process (``perfgate ...`` or a pytest
session) and its outcome is classified:

- clear error: refused (exit 2 for the CLI, a failed/errored test or usage error for pytest) with a
  message holding the expected location (file and JSON/YAML path, test id, option name);
- handled as documented: a valid input (0, 5e-324, 1.7e308, a negative custom figure) accepted;
- unclear error: refused, but without the expected location in the message;
- refused a valid input: a valid input was refused;
- traceback: a Python traceback or INTERNALERROR;
- silent wrong result: a bad input accepted (exit 0 or 1: a pass, or a gate verdict on it);
- hang: no answer within the time limit.

Run: ``python bench/hostile/inputs.py`` (writes ``bench/hostile/RESULTS-inputs.md``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS-inputs.md"
TIMEOUT = 60.0
BIG = "1" + "0" * 400  # 10**400 as JSON/YAML text: integers there are unbounded

CLASSES = (
    "clear error",
    "handled as documented",
    "unclear error",
    "refused a valid input",
    "traceback",
    "silent wrong result",
    "hang",
)


@dataclass
class Case:
    group: str
    name: str
    expect: str  # "error" or "ok"
    where: str  # a fragment the error must hold (the location); "" for expect="ok"
    argv: list[str]  # the command, with {d} for the case's directory
    files: dict[str, str] = field(default_factory=dict)
    pytest: bool = False
    outcome: str = ""
    rc: int | None = None
    excerpt: str = ""
    seconds: float = 0.0


CASES: list[Case] = []


def add(group: str, name: str, expect: str, where: str, argv: list[str], files: dict[str, str], **kw: bool) -> None:
    CASES.append(Case(group, name, expect, where, argv, files, **kw))


# --------------------------------------------------------------------------- results files


def results(
    values: str = "[0.001, 0.0011, 0.0012]", *, extra: str = "", node: str = "t.py::test_a", metadata: str = "{}"
) -> str:
    return (
        '{"schema": "perfgate-results", "schema_version": 1, "metadata": '
        + metadata
        + ', "tests": [{"nodeid": "'
        + node
        + '", "outcome": "passed", "mode": "perf", "series": {"time": {"kind": "time", "values": '
        + values
        + "}}"
        + extra
        + "}]}"
    )


GOOD = results()
GOOD_B = results(node="t.py::test_b")

VALUES_OK = {
    "all 0": "[0, 0, 0]",
    "all 0.0": "[0.0, 0.0, 0.0]",
    "5e-324": "[5e-324, 5e-324, 5e-324]",
    "1.7e308": "[1.7e308, 1.6e308, 1e308]",
    "negative": "[-1.0, -2.0, -1.5]",
    "mixed signs near the range": "[-1.7e308, 1.7e308, 0]",
    "2**63 integer": "[9223372036854775808, 9223372036854775808]",
    "null sample (not finite, documented)": "[0.001, null, 0.002]",
}
VALUES_BAD = {
    "10**400": f"[0.001, {BIG}]",
    "1e400": "[0.001, 1e400]",
    "NaN literal": "[0.001, NaN]",
    "Infinity literal": "[0.001, Infinity]",
    "-Infinity literal": "[-Infinity]",
    "string figure": '[0.001, "0.002"]',
    "true as figure": "[0.001, true]",
    "5000-digit integer": "[" + "7" * 5000 + "]",
}
COMMANDS = {
    "report": ["perfgate", "report", "{d}/r.json"],
    "report --html": ["perfgate", "report", "--html", "{d}/out.html", "{d}/r.json"],
    "compare": ["perfgate", "compare", "{d}/r.json", "{d}/r.json"],
    "compare mean": ["perfgate", "compare", "--config", "{d}/perfgate.yml", "{d}/r.json", "{d}/r.json"],
    "merge": ["perfgate", "merge", "-o", "{d}/merged.json", "{d}/r.json", "{d}/b.json"],
}
MEAN_CONFIG = "gate:\n  metric: mean\n"

for label, values in VALUES_OK.items():
    for command, argv in COMMANDS.items():
        add(
            "results file",
            f"values {label}: {command}",
            "ok",
            "",
            argv,
            {"r.json": results(values), "b.json": results(values, node="t.py::test_b"), "perfgate.yml": MEAN_CONFIG},
        )
for label, values in VALUES_BAD.items():
    # every command for the figures of the issue; the others go through the same loader: two commands
    commands = list(COMMANDS) if label in ("10**400", "1e400", "NaN literal") else ["compare", "report --html"]
    where = "r.json: is not usable JSON" if label == "5000-digit integer" else "r.json: tests[0].series.time.values["
    for command in commands:
        add(
            "results file",
            f"values {label}: {command}",
            "error",
            where,
            COMMANDS[command],
            {"r.json": results(values), "b.json": GOOD_B, "perfgate.yml": MEAN_CONFIG},
        )

FIELDS_BAD = {
    "duration 10**400": (', "duration": ' + BIG, "tests[0].duration"),
    "spec max_regression 1e999": (', "spec": {"max_regression": 1e999}', "tests[0].spec.max_regression"),
    "spec max_regression negative": (', "spec": {"max_regression": -0.1}', "tests[0].spec.max_regression"),
    "spec warn above max": (', "spec": {"max_regression": 0.1, "warn_regression": 0.2}', "tests[0].spec"),
    "verdict measured Infinity": (
        ', "verdicts": [{"metric": "p95", "kind": "time", "verdict": "pass", "measured": Infinity}]',
        "tests[0].verdicts[0].measured",
    ),
    "verdict samples 'x'": (
        ', "verdicts": [{"metric": "p95", "kind": "time", "verdict": "pass", "samples": "x"}]',
        "tests[0].verdicts[0].samples",
    ),
    "verdict kind a list": (', "verdicts": [{"metric": "p95", "kind": [1], "verdict": "pass"}]', "verdicts[0].kind"),
    "verdict an object": (', "verdicts": [{"metric": "p95", "kind": "time", "verdict": {}}]', "verdicts[0].verdict"),
    "budget target 10**400": (
        ', "spec": {"budgets": [{"metric": "p95", "kind": "time", "target": ' + BIG + "}]}",
        "tests[0].spec.budgets[0].target",
    ),
    "mode a number": (', "mode": 3', "tests[0].mode"),
    "evidence Infinity": (', "evidence": {"memory_profile": {"peak": Infinity}}', "tests[0].evidence.memory_profile"),
    "evidence 10**400": (', "evidence": {"x": ' + BIG + "}", "tests[0].evidence.x"),
}
for label, (extra, where) in FIELDS_BAD.items():
    for command in ("compare", "merge"):
        add(
            "results file",
            f"{label}: {command}",
            "error",
            where,
            COMMANDS[command],
            {"r.json": results(extra=extra), "b.json": GOOD_B},
        )

FAILING = (
    ', "spec": {"budgets": [{"metric": "p95", "kind": "time", "critical": 0.0005}]}, "verdicts": [{"metric": "p95", '
    '"kind": "time", "measured": 0.0012, "critical": 0.0005, "verdict": "fail"}], "evidence": '
)
MEMORY_OK = '{"peak": 1, "functions": [], "peak_stack": [], "peak_sites": [], "retained": 0, "leaks": [], "tree": {}}'
EVIDENCE_BAD = {
    "memory_profile peak 'x'": (
        '{"memory_profile": ' + MEMORY_OK.replace('"peak": 1', '"peak": "x"') + "}",
        "tests[0].evidence.memory_profile.peak",
    ),
    "memory_profile functions 3": (
        '{"memory_profile": {"peak": 1, "functions": 3}}',
        "tests[0].evidence.memory_profile",
    ),
    "memory_profile a list": ('{"memory_profile": []}', "tests[0].evidence.memory_profile"),
    "cpu_profile tree node without keys": (
        '{"cpu_profile": {"calls": 1, "total": 1, "tree": [{}], "top": []}}',
        "tests[0].evidence.cpu_profile.tree[0]",
    ),
    "cpu_profile total 'fast'": (
        '{"cpu_profile": {"calls": 1, "total": "fast", "tree": [], "top": []}}',
        "tests[0].evidence.cpu_profile.total",
    ),
}
for label, (evidence, where) in EVIDENCE_BAD.items():
    add(
        "results file",
        f"evidence {label}: report --html",
        "error",
        where,
        COMMANDS["report --html"],
        {"r.json": results(extra=FAILING + evidence)},
    )
    add(
        "results file",
        f"evidence {label}: compare --markdown",
        "error",
        where,
        ["perfgate", "compare", "--markdown", "{d}/r.md", "{d}/r.json", "{d}/r.json"],
        {"r.json": results(extra=FAILING + evidence)},
    )
add(
    "results file",
    "evidence as written (memory profile): compare --markdown",
    "ok",
    "",
    ["perfgate", "compare", "--markdown", "{d}/r.md", "{d}/r.json", "{d}/r.json"],
    {"r.json": results(extra=FAILING + '{"memory_profile": ' + MEMORY_OK + "}")},
)
for key in ("git", "ci"):
    add(
        "results file",
        f"metadata {key} a string: report --html",
        "error",
        f"metadata.{key}",
        COMMANDS["report --html"],
        {"r.json": results(metadata=f'{{"{key}": "main"}}')},
    )
for label, values in {"negative near the range": "[-1.6e308, -1.5e308]", "mixed signs": "[-2.0, 3.0, 0.0]"}.items():
    add(
        "results file",
        f"values {label}: report --html --baseline",
        "ok",
        "",
        ["perfgate", "report", "--html", "{d}/out.html", "--baseline", "{d}/r.json", "{d}/r.json"],
        {"r.json": results(values)},
    )

SERIES_BAD = {
    "loops 'abc'": '"abc"',
    "loops 1e400": "1e400",
    "loops 0": "0",
    "higher_is_better 'yes'": '"yes"',
    "unit a list": "[1]",
    "kind a list": "[1]",
}
for label, value in SERIES_BAD.items():
    key = label.split()[0]
    text = (
        results().replace('"kind": "time",', f'"kind": "time", "{key}": {value},')
        if key != "kind"
        else (results().replace('"kind": "time"', f'"kind": {value}'))
    )
    add(
        "results file",
        f"series {label}: report",
        "error",
        f"tests[0].series.time.{key}",
        COMMANDS["report"],
        {"r.json": text},
    )
add(
    "results file",
    "metadata NaN: merge",
    "error",
    "metadata.load",
    COMMANDS["merge"],
    {"r.json": results(metadata='{"load": NaN}'), "b.json": GOOD_B},
)
add(
    "results file",
    "JSON nested 100000 deep: compare",
    "error",
    "r.json: is not usable JSON",
    COMMANDS["compare"],
    {"r.json": "[" * 100_000 + "]" * 100_000},
)
add(
    "results file",
    "baseline 10**400 vs good current: compare",
    "error",
    "b.json: tests[0]",
    ["perfgate", "compare", "{d}/b.json", "{d}/r.json"],
    {"r.json": GOOD, "b.json": results(f"[{BIG}]")},
)

# --------------------------------------------------------------------------- pytest-benchmark JSON


def bench(data: str = "[0.001, 0.002]", *, stats_extra: str = "", top: str = "") -> str:
    return (
        '{"machine_info": {"node": "x"}, "commit_info": {}, "version": "5.1.0"'
        + top
        + ', "benchmarks": [{"name": "test_x", "fullname": "t.py::test_x", "stats": {"data": '
        + data
        + stats_extra
        + ', "iterations": 1}}]}'
    )


BENCH_CASES = {
    "negative sample": ("error", "benchmarks[0].stats.data[1]", bench("[0.001, -0.002]")),
    "all negative": ("error", "benchmarks[0].stats.data[0]", bench("[-1, -2]")),
    "negative mean, no data": ("error", "benchmarks[0].stats.mean", bench("[]", stats_extra=', "mean": -1.0')),
    "negative rounds, no data": (
        "error",
        "benchmarks[0].stats.rounds",
        bench("[]", stats_extra=', "mean": 1.0, "rounds": -5'),
    ),
    "10**400 sample": ("error", "benchmarks[0].stats.data[1]", bench(f"[0.001, {BIG}]")),
    "1e400 sample": ("error", "benchmarks[0].stats.data[0]", bench("[1e400]")),
    "NaN sample": ("error", "benchmarks[0].stats.data[0]", bench("[NaN, 1]")),
    "Infinity mean, no data": ("error", "benchmarks[0].stats.mean", bench("[]", stats_extra=', "mean": Infinity')),
    "string sample": ("error", "benchmarks[0].stats.data[0]", bench('["0.1"]')),
    "machine_info NaN": (
        "error",
        "machine_info",
        bench(top=', "machine_info": {"x": NaN}').replace('{"machine_info": {"node": "x"}, ', "{"),
    ),
    "5000-digit integer": ("error", "bench.json", bench("[" + "7" * 5000 + "]")),
    "all 0": ("ok", "", bench("[0, 0, 0]")),
    "5e-324": ("ok", "", bench("[5e-324, 5e-324]")),
    "1.7e308": ("ok", "", bench("[1.7e308, 1e308]")),
}
for label, (expect, where, text) in BENCH_CASES.items():
    add(
        "pytest-benchmark JSON",
        f"{label}: import",
        expect,
        f"bench.json: {where}" if where != "bench.json" else where,
        ["perfgate", "import", "{d}/bench.json", "-o", "{d}/out.json"],
        {"bench.json": text},
    )
    add(
        "pytest-benchmark JSON",
        f"{label}: compare",
        expect,
        where,
        ["perfgate", "compare", "{d}/bench.json", "{d}/bench.json"],
        {"bench.json": text},
    )

# --------------------------------------------------------------------------- perfgate.yml

BOMB = "".join(
    f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9 if prev else ['"lol"'] * 9) + "]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)
CONFIGS = {
    "alias bomb (520 bytes)": ("error", "line 1, column 4: YAML anchors and aliases (&a)", BOMB),
    "one anchor": ("error", "line 1, column 7: YAML anchors and aliases (&g)", "gate: &g {alpha: 0.01}\n"),
    "alias to a KPI": ("error", "YAML anchors and aliases", "kpis:\n  a: &k {p95: 1s}\n  b: *k\n"),
    "merge key": ("error", "YAML anchors and aliases", "kpis:\n  a: &k {p95: 1s}\n  b: {<<: *k, p99: 2s}\n"),
    "duplicate section": ("error", "duplicate key 'gate' (lines 1 and 3)", "gate: {}\nkpis: {}\ngate: {alpha: 0.01}\n"),
    "duplicate gate key": (
        "error",
        "duplicate key 'max_regression' (lines 2 and 3)",
        "gate:\n  max_regression: 10%\n  max_regression: 50%\n",
    ),
    "duplicate KPI metric": (
        "error",
        "duplicate key 'p95' (lines 3 and 4)",
        "kpis:\n  api:\n    p95: 1s\n    p95: 2s\n",
    ),
    "duplicate KPI": ("error", "duplicate key 'api' (lines 2 and 3)", "kpis:\n  api: {p95: 1s}\n  api: {p95: 2s}\n"),
    "duplicate key in an override": (
        "error",
        "duplicate key 'max_regression' (lines 3 and 3)",
        "gate:\n  overrides:\n    - {match: 't*', max_regression: 10%, max_regression: 90%}\n",
    ),
    "warn above max at the top": (
        "error",
        "gate: warn_regression (20%) is above max_regression (10%)",
        "gate:\n  max_regression: 10%\n  warn_regression: 20%\n",
    ),
    "warn above max in an override": (
        "error",
        "gate.overrides[0]: warn_regression (20%) is above",
        "gate:\n  overrides:\n    - {match: 't*', max_regression: 10%, warn_regression: 20%}\n",
    ),
    "override warn above the top max": (
        "error",
        "gate.overrides[0]: warn_regression (15%)",
        "gate:\n  max_regression: 10%\n  overrides:\n    - {match: 't*', warn_regression: 15%}\n",
    ),
    "override warn below max": (
        "ok",
        "",
        "gate:\n  overrides:\n    - {match: 't*', max_regression: 30%, warn_regression: 20%}\n",
    ),
    "p95 null": ("error", "kpis.api.p95: no level given", "kpis:\n  api:\n    p95:\n"),
    "p95 target and critical null": (
        "error",
        "kpis.api.p95: neither",
        "kpis:\n  api:\n    p95: {target: null, critical: null}\n",
    ),
    "p95 10**400": ("error", "kpis.api.p95: an integer of 401 digits", f"kpis:\n  api:\n    p95: {BIG}\n"),
    "p95 1e400": ("error", "kpis.api.p95", "kpis:\n  api:\n    p95: 1e400\n"),
    "p95 .nan": ("error", "kpis.api.p95", "kpis:\n  api:\n    p95: .nan\n"),
    "p95 .inf": ("error", "kpis.api.p95", "kpis:\n  api:\n    p95: .inf\n"),
    "p95 '1e308h'": ("error", "kpis.api.p95", "kpis:\n  api:\n    p95: 1e308h\n"),
    "p95 -1s": ("error", "kpis.api.p95", "kpis:\n  api:\n    p95: -1s\n"),
    "p95 5e-324": ("ok", "", "kpis:\n  api:\n    p95: 5e-324\n"),
    "p95 1.7e308": ("ok", "", "kpis:\n  api:\n    p95: 1.7e308\n"),
    "p95 0": ("ok", "", "kpis:\n  api:\n    p95: 0\n"),
    "max_regression 0": ("error", "gate.max_regression", "gate:\n  max_regression: 0\n"),
    "max_regression 10**400": ("error", "gate.max_regression", f"gate:\n  max_regression: {BIG}\n"),
    "alpha .nan": ("error", "gate.alpha", "gate:\n  alpha: .nan\n"),
    "min_baseline_runs 1e400": ("error", "gate.min_baseline_runs", "gate:\n  min_baseline_runs: 1e400\n"),
    "nested 3000 deep": ("error", "nested too deeply", "a: " + "[" * 3000 + "]" * 3000 + "\n"),
    "custom metric level 10**400": (
        "error",
        "kpis.k.hits",
        f"metrics:\n  hits: {{kind: number}}\nkpis:\n  k: {{hits: {BIG}}}\n",
    ),
}


def yaml_level(where: str) -> bool:
    """Refused by the YAML loader itself (the message reads 'invalid YAML (line .., column ..: ...)')."""
    return where.startswith(("line ", "duplicate key", "YAML anchors", "nested"))


for label, (expect, where, text) in CONFIGS.items():
    add(
        "perfgate.yml",
        f"{label}: check-config",
        expect,
        (
            ""
            if expect == "ok"
            else f"perfgate.yml: invalid YAML (&&{where}"
            if yaml_level(where)
            else f"perfgate.yml: {where}"
        ),
        ["perfgate", "check-config", "{d}/perfgate.yml"],
        {"perfgate.yml": text},
    )
for label in ("alias bomb (520 bytes)", "duplicate gate key", "warn above max in an override", "p95 10**400"):
    expect, where, text = CONFIGS[label]
    add(
        "perfgate.yml",
        f"{label}: compare --config",
        expect,
        where,
        ["perfgate", "compare", "--config", "{d}/perfgate.yml", "{d}/r.json", "{d}/r.json"],
        {"perfgate.yml": text, "r.json": GOOD},
    )

for label in ("alias bomb (520 bytes)", "duplicate gate key", "warn above max in an override", "p95 null"):
    expect, where, text = CONFIGS[label]
    add(
        "perfgate.yml",
        f"{label}: pytest session",
        expect,
        where,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "{d}"],
        {"perfgate.yml": text, "test_case.py": "def test_case(perf):\n    perf(lambda: None)\n"},
        pytest=True,
    )

# --------------------------------------------------------------------------- markers and perf.record (pytest)

PYTEST = [
    sys.executable,
    "-m",
    "pytest",
    "-p",
    "no:cacheprovider",
    "-q",
    "--perfgate-max-time=5ms",
    "--perfgate-warmup=0",
    "{d}",
]


def marker_case(label: str, expect: str, where: str, args: str) -> None:
    body = f"""
        import pytest

        @pytest.mark.perf_budget({args})
        def test_case(perf):
            perf(lambda: None)
            perf.record("hits", 5)
        """
    add("perf_budget marker", label, expect, where, PYTEST, {"test_case.py": textwrap.dedent(body)}, pytest=True)


MARKERS = {
    "p95=None": ("error", "test_case.py::test_case: 'p95': no level given", "p95=None"),
    "p95=(None, None)": ("error", "test_case.py::test_case: 'p95': no level given", "p95=(None, None)"),
    "metrics={'hits': None}": ("error", "'hits': no level given", "metrics={'hits': None}"),
    "warn above max": (
        "error",
        "test_case.py::test_case: warn_regression (20%) is above max_regression (10%)",
        "max_regression='10%', warn_regression='20%'",
    ),
    "warn equal to max": ("ok", "", "max_regression='10%', warn_regression='10%'"),
    "p95=10**400": ("error", "test_case.py::test_case: 'p95'", "p95=10**400"),
    "p95=float('nan')": ("error", "test_case.py::test_case: 'p95'", "p95=float('nan')"),
    "p95=float('inf')": ("error", "test_case.py::test_case: 'p95'", "p95=float('inf')"),
    "p95='1e400s'": ("error", "test_case.py::test_case: 'p95'", "p95='1e400s'"),
    "p95=-1": ("error", "test_case.py::test_case: 'p95'", "p95=-1"),
    "p95=5e-324 (fails: the call takes longer)": ("error", "p95", "p95=5e-324"),
    "p95=1e308": ("ok", "", "p95=1e308"),
    "max_regression=-0.1": ("error", "test_case.py::test_case: max_regression", "max_regression=-0.1"),
    "max_regression=10**400": ("error", "test_case.py::test_case: max_regression", "max_regression=10**400"),
    "queries=-1": ("error", "test_case.py::test_case: 'queries'", "queries=-1"),
    "queries=1.5": ("error", "test_case.py::test_case: 'queries'", "queries=1.5"),
    "target above critical": ("error", "test_case.py::test_case: 'p95'", "p95=('2s', '1s')"),
}
for label, (expect, where, args) in MARKERS.items():
    marker_case(label, expect, where, args)


def record_case(label: str, expect: str, where: str, call: str) -> None:
    body = f"""
        def test_case(perf):
            perf.record({call})
        """
    add("perf.record", label, expect, where, PYTEST, {"test_case.py": textwrap.dedent(body)}, pytest=True)


RECORDS = {
    "negative size (MB)": ("error", "perf.record('weight'): -5 MB is negative", "'weight', -5, unit='MB'"),
    "negative time (ms)": ("error", "perf.record('t'): -1.0 ms is negative", "'t', -1.0, unit='ms'"),
    "negative count": ("error", "perf.record('n'): -3 count is negative", "'n', -3, unit='count'"),
    "negative rate": ("error", "is negative", "'r', -3, unit='/s'"),
    "10**400": ("error", "perf.record('x'): value must be a finite number", "'x', 10**400"),
    "NaN": ("error", "perf.record('x'): value must be a finite number", "'x', float('nan')"),
    "Infinity": ("error", "perf.record('x'): value must be a finite number", "'x', float('inf')"),
    "1e308 GB": ("error", "past the float range", "'x', 1e308, unit='GB'"),
    "a string": ("error", "perf.record('x'): value must be a finite number", "'x', '5'"),
    "True": ("error", "perf.record('x'): value must be a finite number", "'x', True"),
    "negative custom figure": ("ok", "", "'delta', -2.5"),
    "0 MB": ("ok", "", "'weight', 0, unit='MB'"),
    "5e-324 s": ("ok", "", "'t', 5e-324, unit='s'"),
    "1.7e308 plain": ("ok", "", "'x', 1.7e308"),
}
for label, (expect, where, call) in RECORDS.items():
    record_case(label, expect, where, call)

# --------------------------------------------------------------------------- CLI numeric options

CLI_OPTIONS = {
    "--max-regression -5%": ("--max-regression=-5%", "--max-regression"),
    "--max-regression 10**400": (f"--max-regression={BIG}", "--max-regression"),
    "--max-regression nan": ("--max-regression=nan", "--max-regression"),
    "--max-regression 1e400%": ("--max-regression=1e400%", "--max-regression"),
    "--max-regression 0": ("--max-regression=0", "--max-regression"),
    "--warn-regression above --max-regression": ("--warn-regression=20%", "warn regression (20%) is above"),
    "--alpha 0.7": ("--alpha=0.7", "--alpha"),
    "--alpha inf": ("--alpha=inf", "--alpha"),
    "--min-improvement 10**400": (f"--min-improvement={BIG}", "--min-improvement"),
}
for label, (option, where) in CLI_OPTIONS.items():
    extra = ["--max-regression=10%"] if "above" in label else []
    add(
        "CLI numeric option",
        f"compare {label}",
        "error",
        where,
        ["perfgate", "compare", *extra, option, "{d}/r.json", "{d}/r.json"],
        {"r.json": GOOD},
    )

PYTEST_OPTIONS = {
    "--perfgate-max-time=-1": ("error", "--perfgate-max-time"),
    "--perfgate-max-time=1e400": ("error", "--perfgate-max-time"),
    "--perfgate-max-time=nan": ("error", "--perfgate-max-time"),
    "--perfgate-min-rounds=-3": ("error", "--perfgate-min-rounds"),
    f"--perfgate-min-rounds={BIG}": ("error", "--perfgate-min-rounds"),
    "--perfgate-warmup=-1": ("error", "--perfgate-warmup"),
    "--perfgate-min-round-time=1e400": ("error", "--perfgate-min-round-time"),
}
for option, (expect, where) in PYTEST_OPTIONS.items():
    label = option if len(option) < 60 else option[:40] + "..."
    add(
        "CLI numeric option",
        f"pytest {label}",
        expect,
        where,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", option, "{d}"],
        {"test_case.py": "def test_case(perf):\n    perf(lambda: None)\n"},
        pytest=True,
    )


# --------------------------------------------------------------------------- running and classifying


def classify(case: Case, rc: int | None, output: str) -> str:
    if rc is None:
        return "hang"
    if "Traceback (most recent call last)" in output or "INTERNALERROR" in output:
        return "traceback"
    failed = rc != 0 if case.pytest else rc == 2
    if case.expect == "ok":
        documented = (0,) if case.pytest else (0, 1, 3)  # the CLI: pass, regression, not judged
        return "handled as documented" if rc in documented else "refused a valid input"
    if failed:
        located = all(part in output for part in case.where.split("&&"))  # every part of the location
        return "clear error" if located else "unclear error"
    return "silent wrong result"


def run(case: Case) -> Case:
    with tempfile.TemporaryDirectory(prefix="perfgate-hostile-") as tmp:
        for name, text in case.files.items():
            Path(tmp, name).write_text(text)
        argv = [a.replace("{d}", tmp) for a in case.argv]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
        env.pop("PYTEST_ADDOPTS", None)
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
            rc: int | None = done.returncode
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            rc, output = None, ""
        case.seconds = time.perf_counter() - start
        case.rc = rc
        case.outcome = classify(case, rc, output.replace(tmp, "DIR"))
        case.excerpt = excerpt(case, output.replace(tmp, "DIR"))
    return case


def excerpt(case: Case, output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if case.outcome == "traceback":
        pick = [line for line in lines if "Error" in line or "error" in line]
        return (pick[-1] if pick else lines[-1] if lines else "")[:160]
    for line in lines:
        if case.where and case.where.split("&&")[-1] in line:
            return line[:160]
    for line in lines:
        if line.startswith("error:") or "Error" in line:
            return line[:160]
    return (lines[-1] if lines else "")[:160]


def main(argv: list[str]) -> int:
    workers = int(os.environ.get("HOSTILE_WORKERS", "2"))
    only: Callable[[Case], bool] = (
        (lambda c: any(word in c.name or word in c.group for word in argv)) if argv else (lambda c: True)
    )
    chosen = [c for c in CASES if only(c)]
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(run, chosen))
    elapsed = time.perf_counter() - started
    totals = Counter(c.outcome for c in done)
    by_group: dict[str, Counter[str]] = {}
    for c in done:
        by_group.setdefault(c.group, Counter())[c.outcome] += 1
    for c in done:
        if c.outcome not in ("clear error", "handled as documented"):
            print(f"{c.outcome:22} {c.group} / {c.name}: {c.excerpt}")
    print(", ".join(f"{totals[k]} {k}" for k in CLASSES), f"({len(done)} cases, {elapsed:.0f} s)")
    if argv:
        return 0
    write_results(done, totals, by_group, elapsed)
    return 0


def write_results(done: list[Case], totals: Counter[str], by_group: dict[str, Counter[str]], elapsed: float) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    out = [
        "# Hostile inputs: figures, perfgate.yml, markers, perf.record, numeric options",
        "",
        "Issue 16, items 1 and 4. Command: `python bench/hostile/inputs.py` "
        f"(commit {commit.stdout.strip() or '?'}, {len(done)} cases, {elapsed:.0f} s on 2 shared vCPUs, "
        "2 cases at a time). Each case runs in its own process, as a user runs it: `perfgate ...` or a "
        "pytest session. Classes (see the script's docstring): a *clear error* is refused with the expected "
        "location in the message (file and JSON/YAML path, test id, option), exit 2 for the CLI.",
        "",
        "## Totals",
        "",
        "| group | " + " | ".join(CLASSES) + " | cases |",
        "|---|" + "---:|" * (len(CLASSES) + 1),
    ]
    for group, counts in by_group.items():
        out.append(f"| {group} | " + " | ".join(str(counts[k]) for k in CLASSES) + f" | {sum(counts.values())} |")
    out.append("| **all** | " + " | ".join(f"**{totals[k]}**" for k in CLASSES) + f" | **{len(done)}** |")
    left = [c for c in done if c.outcome not in ("clear error", "handled as documented")]
    out += ["", "## Not yet a clear error or documented behaviour", ""]
    out += [f"- {c.group} / {c.name}: {c.outcome} (exit {c.rc}): `{c.excerpt}`" for c in left] or ["- none"]
    out += [
        "",
        "## Every case",
        "",
        "| group | case | expected | outcome | exit | message (excerpt) |",
        "|---|---|---|---|---:|---|",
    ]
    for c in done:
        message = c.excerpt.replace("|", "\\|")
        out.append(f"| {c.group} | {c.name} | {c.expect} | {c.outcome} | {c.rc} | {message} |")
    RESULTS.write_text("\n".join(out) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
