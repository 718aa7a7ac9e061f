"""The GitLab pipeline files: .gitlab-ci.yml (this project) and ci/perfgate.gitlab-ci.yml (the
template users include). Validated against GitLab's published schema (check-jsonschema's bundled
``vendor.gitlab-ci``, offline), their structure asserted, and the template's job scripts run in a
shell (as a shell runner would, without the image and its pip install) on a small project, with the
loopback GitLab stub standing in for the artifact and notes endpoints."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.ab import LIBRARY
from pytest_perfgate.model import RunResult, load_results, run_to_dict, save_results
from pytest_perfgate.store import open_store
from pytest_perfgate.store.gitlab import FETCH_JOB, FETCH_PATH
from pytest_perfgate.testing.gitlab_stub import GitLabStub, StubState

try:
    from pytest_perfgate.counts import _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None  # type: ignore[assignment]

#: why the counted run (PERFGATE_INSTRUCTIONS) cannot run here, or "" (as tests/test_counting_plugin.py)
NO_COUNTING = (
    "instruction counts need Linux, valgrind (apt-get install valgrind) and the native extension built with "
    "valgrind's headers"
    if _native is None
    or not sys.platform.startswith("linux")
    or shutil.which("valgrind") is None
    or not _native.have_client_requests()
    else ""
)

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CI = ROOT / ".gitlab-ci.yml"
TEMPLATE = ROOT / "ci" / "perfgate.gitlab-ci.yml"
STAGES = ["lint", "test", "performance", "gate", "baseline"]
TOKEN = "glpat-PIPELINE-secret-77"
BIN = Path(sys.executable).parent


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if found is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema; it is in the 'test' extra)")
    return found


def _offline_env() -> dict[str, str]:
    """Any attempt to reach the network goes to a closed loopback port: the schema must be the bundled one."""
    dead = "http://127.0.0.1:9"
    return {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead}


def _hundred_times_faster(run: RunResult) -> RunResult:
    """The same run with every sample divided by 100: against it, unchanged code has "regressed" 100x.
    (Not 10x: the history's runs and the run judged against it are measured in different jobs, and on
    a busy runner one of two runs can come out several times slower; the gate judges such a history's
    spread as wide, and a 10x change could then pass as insignificant.)"""
    return replace(
        run,
        tests=tuple(
            replace(t, series={k: replace(s, values=tuple(v / 100 for v in s.values)) for k, s in t.series.items()})
            for t in run.tests
        ),
    )


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with GitLab's schema (bundled with the tool), offline."""
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_offline_env(),
    )


@pytest.mark.parametrize("path", [PROJECT_CI, TEMPLATE], ids=["project", "template"])
def test_pipeline_files_validate_against_gitlabs_schema(path: Path) -> None:
    done = _validate(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    """A plain scalar with ': ' in a script line (a classic mistake) is caught, so the check above means something."""
    broken = tmp_path / "broken.yml"
    broken.write_text("job:\n  script:\n    - echo shard: 1\n  timeout: soon-ish\n", encoding="utf-8")
    done = _validate(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "script" in done.stdout


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_template_structure() -> None:
    ci = _load(TEMPLATE)
    assert ci["stages"] == STAGES
    assert set(ci["variables"]) >= {
        "PERFGATE_IMAGE",
        "PERFGATE_INSTALL",
        "PERFGATE_WORKDIR",
        "PERFGATE_TESTS",
        "PERFGATE_PYTEST_ARGS",
        "PERFGATE_COMPARE_ARGS",
        "PERFGATE_TOKEN_VARIABLE",
        "PERFGATE_MONGO_TESTS",
        "PERFGATE_LOAD_COMMAND",
        "PERFGATE_BASELINE_KEEP",
    }
    assert ci["variables"]["PERFGATE_IMAGE"] == "python:3.11"
    assert ci["variables"]["PERFGATE_BASELINE_KEEP"] == "10"
    header = TEMPLATE.read_text(encoding="utf-8").split("\nstages:")[0]
    for name in ci["variables"]:
        if name.startswith("PERFGATE_"):
            assert f"#   {name}" in header, f"{name} is not documented at the top of the template"
    base = ci[".perfgate-base"]
    assert base["image"] == "$PERFGATE_IMAGE" and base["interruptible"] is True and base["timeout"]
    assert base["cache"]["paths"] == [".cache/pip"] and ci["variables"]["PIP_CACHE_DIR"].endswith(".cache/pip")
    jobs = {k: v for k, v in ci.items() if k.startswith("perfgate-")}
    assert {j["stage"] for j in jobs.values()} == {"performance", "gate", "baseline"}
    # perfgate-pages only publishes what perfgate-history wrote: no pip install
    assert all(j["extends"] == ".perfgate-base" for n, j in jobs.items() if n != "perfgate-pages")

    tests = jobs["perfgate-tests"]
    assert tests["parallel"] >= 1
    assert any("--perfgate-save=" in line and "CI_NODE_INDEX" in " ".join(tests["script"]) for line in tests["script"])
    assert tests["artifacts"]["when"] == "always"

    # PERFGATE_INSTRUCTIONS (off by default): this job alone gets valgrind, counts its shard a second
    # time and keeps the counts as an artifact
    assert ci["variables"]["PERFGATE_INSTRUCTIONS"] == "false" and ci["variables"]["PERFGATE_INSTRUCTIONS_TESTS"] == ""
    assert tests["variables"] == {"PERFGATE_COUNTING_JOB": "true"}
    assert not any("PERFGATE_COUNTING_JOB" in str(j.get("variables")) for n, j in jobs.items() if n != "perfgate-tests")
    counted = [line for line in tests["script"] if "--perfgate-instructions" in line]
    assert (
        len(counted) == 1
        and '--perfgate-save="$CI_PROJECT_DIR/.perfgate/counts-${CI_NODE_INDEX:-1}.json"' in counted[0]
    )
    assert tests["script"][-1] == "exit $status"  # the timed and the counted run both ran; either fails the job
    assert tests["artifacts"]["paths"] == [".perfgate/shard-*.json", ".perfgate/counts-*.json"]
    before = "\n".join(base["before_script"])
    assert before.index("command -v valgrind") < before.index("pip install") < before.index("have_client_requests")
    assert 'export PIP_NO_BINARY="pytest-perfgate"' in base["before_script"][0]

    gate = jobs["perfgate-gate"]
    script = " ".join(gate["script"])
    merge = "perfgate merge .perfgate/shard-*.json $(ls .perfgate/counts-*.json 2>/dev/null) -o .perfgate/results.json"
    assert gate["script"][0] == merge
    # the whole history is the baseline: fetched into a fresh directory, keeping as many runs as the history
    fetch = 'perfgate baseline fetch --to .perfgate/baseline --keep "$PERFGATE_BASELINE_KEEP"'
    assert gate["script"][1:3] == ["rm -rf .perfgate/baseline", fetch]
    compare = [line for line in gate["script"] if line.startswith("perfgate compare")]
    assert len(compare) == 1 and gate["script"][-1] == compare[0], "compare must be last: its exit code is the verdict"
    for flag in ("--markdown", "--junit", "--metrics", "--json", "--codequality"):
        assert flag in compare[0]
    assert gate["artifacts"]["reports"] == {
        "junit": ".perfgate/gate-junit.xml",
        "metrics": ".perfgate/metrics.txt",
        "codequality": ".perfgate/gate-code-quality.json",  # findings at file:line, every tier
    }
    assert '--codequality "$CI_PROJECT_DIR/.perfgate/gate-code-quality.json"' in compare[0]
    assert {".perfgate/report.md", ".perfgate/report.html"} <= set(gate["artifacts"]["paths"])
    assert gate["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"', "when": "always"}]
    # exit 3 (nothing could be judged on this runner) is a warning; 1 (a regression) still fails
    assert gate["allow_failure"] == {"exit_codes": [3]}

    comment = jobs["perfgate-comment"]
    assert comment["allow_failure"] is True and "perfgate gitlab-comment" in " ".join(comment["script"])
    assert comment["needs"] == [
        {"job": "perfgate-gate", "artifacts": True},
        {"job": "perfgate-ab", "artifacts": True, "optional": True},
    ]

    ab = jobs["perfgate-ab"]  # the paired A/B gate, opt-in
    assert ci["variables"]["PERFGATE_AB"] == "false" and ab["stage"] == "gate" and ab["needs"] == []
    assert ab["rules"] == [{"if": '$PERFGATE_AB == "true" && $CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert ab["variables"] == {"GIT_DEPTH": "0"}  # the merge base must be in the clone
    assert (
        ab["artifacts"]["reports"]
        == {"junit": ".perfgate/ab-junit.xml", "codequality": ".perfgate/ab-code-quality.json"}
        and ".perfgate/ab.md" in ab["artifacts"]["paths"]
    )
    assert '--codequality "$CI_PROJECT_DIR/.perfgate/ab-code-quality.json"' in " ".join(ab["script"])
    assert "--budgets-only" in script  # with the A/B gate on, the stored-baseline gate keeps the budgets only

    load = jobs["perfgate-load"]
    assert load["artifacts"]["reports"] == {
        "load_performance": ".perfgate/load-performance.json",
        "codequality": ".perfgate/load-code-quality.json",
    }

    mongo = jobs["perfgate-mongo"]
    assert mongo["services"] == ["mongo:7"]
    assert mongo["variables"] == {"PERFGATE_MONGO_URI": "mongodb://mongo:27017"}
    assert mongo["artifacts"]["reports"] == {
        "junit": ".perfgate/mongo-junit.xml",
        "codequality": ".perfgate/mongo-code-quality.json",
    }
    assert mongo["script"][-1] == "exit $status"  # the job's verdict is pytest's, not the report's

    baseline = jobs[FETCH_JOB]  # the job and the path perfgate baseline fetch downloads by default
    assert FETCH_PATH == ".perfgate/baseline/" and FETCH_PATH in baseline["artifacts"]["paths"]
    assert ".perfgate/results.json" in baseline["artifacts"]["paths"]  # for people, and older fetches
    assert baseline["artifacts"]["expire_in"] == "1 year"
    # the default branch's findings: what a merge request's Code Quality widget is compared with
    assert baseline["artifacts"]["reports"] == {"codequality": ".perfgate/gate-code-quality.json"}
    assert "--codequality .perfgate/gate-code-quality.json" in baseline["script"][-1]
    # the previous history, this run added to it, the oldest beyond the keep count dropped
    promote = (
        'perfgate baseline promote .perfgate/results.json --to .perfgate/baseline --keep "$PERFGATE_BASELINE_KEEP"'
    )
    assert baseline["script"][0] == merge  # the history keeps the counts too: results.json is the merged run
    assert baseline["script"][1:4] == ["rm -rf .perfgate/baseline", fetch, promote]
    assert baseline["resource_group"] == FETCH_JOB
    assert baseline["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert baseline["stage"] == "baseline"


def test_template_history_jobs() -> None:
    """PERFGATE_HISTORY (off by default): on the default branch, after the baseline job, the history
    judged with its trend site, the site published with GitLab Pages, and the alerts."""
    ci = _load(TEMPLATE)
    assert ci["variables"]["PERFGATE_HISTORY"] == "false" and ci["variables"]["PERFGATE_HISTORY_ARGS"] == ""
    rule = [{"if": '$PERFGATE_HISTORY == "true" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'}]
    history, pages, alert = ci["perfgate-history"], ci["perfgate-pages"], ci["perfgate-alert"]
    assert history["rules"] == pages["rules"] == alert["rules"] == rule
    assert {history["stage"], pages["stage"], alert["stage"]} == {"baseline"}
    assert history["needs"] == alert["needs"] == [{"job": FETCH_JOB, "artifacts": True}]
    assert pages["needs"] == [{"job": "perfgate-history", "artifacts": True}]
    assert history["script"] == [
        "perfgate history .perfgate/baseline --json .perfgate/history.json --html public $PERFGATE_HISTORY_ARGS"
    ]
    assert history["artifacts"]["paths"] == [".perfgate/history.json", "public/"]
    assert pages["pages"] is True and pages["artifacts"] == {"paths": ["public/"]}
    script = alert["script"][0]
    assert '--alert gitlab --token-variable "$PERFGATE_TOKEN_VARIABLE"' in script
    assert "--alert gitlab --dry-run" in script and "is not set: no issue is opened" in script
    assert alert["allow_failure"] is True and alert["resource_group"] == "perfgate-alert"


def test_project_pipeline_structure() -> None:
    ci = _load(PROJECT_CI)
    assert ci["include"] == [{"local": "ci/perfgate.gitlab-ci.yml"}]
    assert ci["stages"] == STAGES
    assert ci["lint"]["stage"] == "lint" and ci["test"]["stage"] == "test"
    assert ci["variables"]["PERFGATE_IMAGE"] == "python:3.11" and ci[".project"]["image"] == "python:3.11"
    assert ci[".project"]["interruptible"] is True and ci[".project"]["timeout"]
    assert ci["test"]["artifacts"]["reports"]["junit"]
    assert "PERFGATE_MONGO_TESTS" in ci["variables"] and "PERFGATE_LOAD_COMMAND" in ci["variables"]
    assert "--gitlab-report $CI_PROJECT_DIR/.perfgate/load-performance.json" in ci["variables"]["PERFGATE_LOAD_COMMAND"]
    for path in ("examples/catalog", "examples/audit_log", "examples/api_service/locustfile.py"):
        assert (ROOT / path).exists()
    # the catalog suite is counted too (two of its tests: see the comment in .gitlab-ci.yml)
    assert ci["variables"]["PERFGATE_INSTRUCTIONS"] == "true"
    counted = ci["variables"]["PERFGATE_INSTRUCTIONS_TESTS"].split()
    assert counted and not set(counted) & set(ci["variables"]["PERFGATE_PYTEST_ARGS"].split())
    for nodeid in [*ci["variables"]["PERFGATE_PYTEST_ARGS"].split()[1::2], *counted]:
        file, _, name = nodeid.partition("::")
        assert f"def {name}(" in (ROOT / "examples" / "catalog" / file).read_text(encoding="utf-8")
    # the paired A/B gate is on; src/ is pytest_perfgate itself, so the code under test is put first on
    # each side's import path by hand (perfgate ab refuses a side with another pytest_perfgate)
    assert ci["variables"]["PERFGATE_AB"] == "true" and (ROOT / "src" / "pytest_perfgate").is_dir()
    ab_args = ci["variables"]["PERFGATE_AB_ARGS"].split()
    assert ab_args[ab_args.index("--pythonpath") + 1] == ci["variables"]["PERFGATE_WORKDIR"] == "examples/catalog"


# ----------------------------------------------------------------- the template's jobs, in a shell

SMALL_PROJECT = {
    "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\nperfgate_max_time = 0.05s\n",
    "test_small.py": textwrap.dedent(
        """
        import pytest

        @pytest.mark.parametrize("n", [10, 20, 30, 40, 50])
        @pytest.mark.perf_budget(p95=("1s", "2s"))
        def test_sum(perf, n):
            assert perf(sum, range(n)) == n * (n - 1) // 2
        """
    ),
}


def _code_quality(path: Path) -> list[dict[str, Any]]:
    """A Code Quality report's issues, checked against GitLab's format (tests/codequality_schema.json)."""
    import jsonschema

    issues: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(issues, json.loads((Path(__file__).parent / "codequality_schema.json").read_text()))
    return issues


def _run_job(
    job: str, project: Path, *, path_first: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """One job's ``script`` as a GitLab shell runner runs it: bash, in CI_PROJECT_DIR, stop at the
    first failing line; the template's and the job's variables, then the CI variables given.
    ``path_first``: a directory of commands found before this venv's (stand-ins)."""
    ci = _load(TEMPLATE)
    spec = ci[job]
    variables = {**ci["variables"], **spec.get("variables", {}), **env}
    full_env = {**os.environ, **{k: str(v) for k, v in variables.items()}, "CI_PROJECT_DIR": str(project)}
    full_env["PATH"] = os.pathsep.join([*([str(path_first)] if path_first else []), str(BIN), full_env["PATH"]])
    script = 'set -eo pipefail\nmkdir -p "$CI_PROJECT_DIR/.perfgate"\n' + "\n".join(spec["script"])
    return subprocess.run(
        ["bash", "-c", script], cwd=project, env=full_env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in SMALL_PROJECT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _serve_history(artifacts: Path, served: Path, *, faster: bool = False) -> Path:
    """What GitLab keeps of a perfgate-baseline job and serves to the next pipelines: a copy of the
    job's ``.perfgate/baseline/`` (its index and runs) under ``served``; ``faster``: every run a hundred
    times faster (against it, unchanged code has "regressed" 100x)."""
    source, target = artifacts / FETCH_PATH, served / FETCH_PATH
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(source, target)
    if faster:
        for run in target.glob("run-*.json"):
            if not run.name.endswith(".summary.json"):
                run.write_text(json.dumps(run_to_dict(_hundred_times_faster(load_results(run)))), encoding="utf-8")
    return served


def _history_pipelines(artifacts: Path) -> list[object]:
    """The ``pipeline`` mark of each run a baseline artifact holds, in its index's order."""
    index = json.loads((artifacts / FETCH_PATH / "index.json").read_text(encoding="utf-8"))
    assert index["schema"] == "perfgate-baseline-index" and index["schema_version"] == 1
    return [load_results(artifacts / FETCH_PATH / name).metadata.get("pipeline") for name in index["runs"]]


def test_template_jobs_run_end_to_end_in_a_shell(project: Path) -> None:
    for index in ("1", "2"):
        done = _run_job("perfgate-tests", project, PERFGATE_TESTS=".", CI_NODE_INDEX=index, CI_NODE_TOTAL="2")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"shard {index} of 2: " in done.stdout
    shards = [load_results(project / ".perfgate" / f"shard-{i}.json") for i in (1, 2)]
    assert sorted(len(s.tests) for s in shards) == [2, 3]
    ci_env = {
        "CI_PROJECT_ID": "group/app",
        "CI_JOB_TOKEN": TOKEN,
        "CI_DEFAULT_BRANCH": "main",
        "CI_MERGE_REQUEST_IID": "4",
        "PERFGATE_GITLAB_TOKEN": TOKEN,
    }
    state = StubState(token=TOKEN)
    served = project.parent / "served"
    with GitLabStub(state) as api_url:
        # default branch, three pipelines keeping 2 runs: the baseline job fetches the history the
        # last one kept, adds its run (merged from the shards), keeps the newest 2 as its artifact
        baselines = []
        for pipeline in (1, 2, 3):
            shard = project / ".perfgate" / "shard-1.json"
            save_results(shard, replace(shards[0], metadata={**shards[0].metadata, "pipeline": pipeline}))
            done = _run_job(FETCH_JOB, project, CI_API_V4_URL=api_url, PERFGATE_BASELINE_KEEP="2", **ci_env)
            assert done.returncode == 0, done.stdout + done.stderr
            baselines.append(done)
            assert len(load_results(project / ".perfgate" / "results.json").tests) == 5
            state.artifact_dirs[("main", FETCH_JOB)] = _serve_history(project, served)
        assert "NOTICE: no baseline yet (first run on main)" in baselines[0].stdout
        assert "(1 run stored, keeping 2)" in baselines[0].stdout
        assert (
            "fetched 1 run from artifact .perfgate/baseline/ of job 'perfgate-baseline' on main" in baselines[1].stdout
        )
        assert "(2 runs stored, keeping 2)" in baselines[1].stdout
        assert "fetched 2 runs from artifact .perfgate/baseline/" in baselines[2].stdout
        assert _history_pipelines(project) == [2, 3]  # the oldest run dropped, the newest last
        assert (project / ".perfgate" / "report.html").is_file()

        # first merge request on a project without a baseline yet: a notice, the gate passes
        state.artifact_dirs.clear()
        first = _run_job("perfgate-gate", project, CI_API_V4_URL=api_url, **ci_env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "NOTICE: no baseline yet (first run on main)" in first.stdout

        # the history made a hundred times faster: the same code now "regressed" by 100x, the gate must fail
        fast = _serve_history(served, project.parent / "served-fast", faster=True)
        state.artifact_dirs[("main", FETCH_JOB)] = fast
        gate = _run_job("perfgate-gate", project, CI_API_V4_URL=api_url, **ci_env)
        assert gate.returncode == 1, gate.stdout + gate.stderr
        assert "fetched 2 runs from artifact .perfgate/baseline/ of job 'perfgate-baseline' on main" in gate.stdout
        assert "perfgate: FAILED" in gate.stdout and "baseline of 2 runs" in gate.stdout
        for name in ("report.md", "report.html", "gate-junit.xml", "metrics.txt", "gate.json"):
            assert (project / ".perfgate" / name).is_file(), name
        # the Code Quality report: GitLab's format, each regression at its test's line
        quality = _code_quality(project / ".perfgate" / "gate-code-quality.json")
        regressed = {i["location"]["path"] for i in quality if i["check_name"] == "perfgate-regression"}
        assert regressed == {"test_small.py"} and len(quality) == 5, quality
        for issue in quality:
            path, line = issue["location"]["path"], issue["location"]["lines"]["begin"]
            assert (project / path).read_text(encoding="utf-8").splitlines()[line - 1].startswith(("def ", "@")), issue
        comments = [_run_job("perfgate-comment", project, CI_API_V4_URL=api_url, **ci_env) for _ in range(2)]
        assert [c.returncode for c in comments] == [0, 0]
        assert "created on merge request !4" in comments[0].stdout
        assert "updated on merge request !4" in comments[1].stdout
        assert len(state.notes[4]) == 1 and "regress" in state.notes[4][0]["body"].lower()

        # without the token variable the note goes to the job log instead
        no_token = {**ci_env, "PERFGATE_GITLAB_TOKEN": ""}
        dry = _run_job("perfgate-comment", project, CI_API_V4_URL=api_url, **no_token)
        assert dry.returncode == 0 and "is not set: the note is printed here" in dry.stdout

        # with the paired A/B gate's report there, the one note holds it above the stored-baseline report
        (project / ".perfgate" / "ab.md").write_text("### perfgate ab: PASSED (paired A/B)\n", encoding="utf-8")
        both = _run_job("perfgate-comment", project, CI_API_V4_URL=api_url, **ci_env)
        assert both.returncode == 0 and "updated on merge request !4" in both.stdout, both.stdout + both.stderr
        body = state.notes[4][0]["body"]
        assert len(state.notes[4]) == 1 and body.index("perfgate ab: PASSED") < body.index("perfgate: FAILED")
        # a blank line between the two: a heading right after the first report's closing </details>
        # would be part of that HTML block in GitLab's Markdown (CommonMark), shown as plain text
        assert "(paired A/B)\n\n### " in body, body[:300]

    for done in (*baselines, first, gate, *comments, dry, both):
        assert TOKEN not in done.stdout and TOKEN not in done.stderr


def _pipeline_run(run: RunResult, pipeline: int, slower: dict[str, float]) -> RunResult:
    """``run`` as default-branch pipeline ``pipeline`` made it: its own commit, every sample moved by
    a small jitter of its own, the tests in ``slower`` that many times slower (an injected step)."""
    jitter = 1 + 0.004 * ((pipeline * 7) % 5 - 2)
    tests = tuple(
        replace(
            t,
            series={
                k: replace(s, values=tuple(v * jitter * slower.get(t.nodeid, 1.0) for v in s.values))
                for k, s in t.series.items()
            },
        )
        for t in run.tests
    )
    meta = {**run.metadata, "git": {"commit": _sha(pipeline), "branch": "main"}, "pipeline": pipeline}
    if isinstance(meta.get("ci"), dict):  # in a CI job the run names the job's commit (CI_COMMIT_SHA)
        meta["ci"] = {**meta["ci"], "CI_COMMIT_SHA": _sha(pipeline)}
    return replace(run, tests=tests, metadata=meta)


STEPPED = "test_small.py::test_sum[10]"


def _sha(pipeline: int) -> str:
    return f"c0ffee{pipeline:02d}" + "0" * 32


def test_the_history_jobs_in_a_shell_over_default_branch_pipelines(project: Path) -> None:
    """Eight default-branch pipelines, one test three times slower from the fifth on: the baseline
    job keeps the runs, perfgate-history finds the step at the fifth commit and writes the trend site,
    perfgate-pages finds it, perfgate-alert opens one issue for it, and no second one, nor a note, when
    the pipeline is retried; without the token it prints what it would do."""
    done = _run_job("perfgate-tests", project, PERFGATE_TESTS=".")
    assert done.returncode == 0, done.stdout + done.stderr
    measured = load_results(project / ".perfgate" / "shard-1.json")
    ci_env = {
        "CI_PROJECT_ID": "group/app",
        "CI_PROJECT_URL": "https://gitlab.example.com/group/app",
        "CI_JOB_TOKEN": TOKEN,
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "PERFGATE_GITLAB_TOKEN": TOKEN,
        "PERFGATE_HISTORY": "true",
    }
    state = StubState(token=TOKEN)
    served = project.parent / "served"
    with GitLabStub(state) as api_url:
        for pipeline in range(1, 9):
            run = _pipeline_run(measured, pipeline, {STEPPED: 3.0} if pipeline >= 5 else {})
            save_results(project / ".perfgate" / "shard-1.json", run)
            done = _run_job(FETCH_JOB, project, CI_API_V4_URL=api_url, **ci_env)
            assert done.returncode == 0, done.stdout + done.stderr
            state.artifact_dirs[("main", FETCH_JOB)] = _serve_history(project, served)
        assert _history_pipelines(project) == list(range(1, 9))

        history = _run_job("perfgate-history", project, CI_API_V4_URL=api_url, **ci_env)
        assert history.returncode == 0, history.stdout + history.stderr
        judged = json.loads((project / ".perfgate" / "history.json").read_text(encoding="utf-8"))
        steps = [(s["test"], s["metric"], cp) for s in judged["series"] for cp in s["change_points"]]
        assert [(test, metric) for test, metric, _ in steps] == [(STEPPED, "median")], steps
        step = steps[0][2]
        assert (step["last_old_commit"], step["first_new_commit"]) == (_sha(4), _sha(5))
        assert step["direction"] == "regression" and step["open"] is True and 1.8 < step["change"] < 2.2
        index = (project / "public" / "index.html").read_text(encoding="utf-8")
        compare = f"https://gitlab.example.com/group/app/-/compare/{_sha(4)}...{_sha(5)}"
        assert f'<a href="{compare}">c0ffee04..c0ffee05</a>' in index
        assert len(list((project / "public" / "series").glob("*.html"))) == 5

        pages = _run_job("perfgate-pages", project, **ci_env)
        assert pages.returncode == 0 and "perfgate: trend site of 5 series in public/" in pages.stdout, pages.stderr

        alerts = [_run_job("perfgate-alert", project, CI_API_V4_URL=api_url, **ci_env) for _ in range(2)]
        assert [a.returncode for a in alerts] == [0, 0], alerts[0].stdout + alerts[0].stderr
        title = f"perf: {STEPPED} median +{step['change'] * 100:.1f}% since c0ffee05"
        assert f"issue #1 opened: {title}" in alerts[0].stdout
        assert f"issue #1 already reports this step: {title}" in alerts[1].stdout
        assert list(state.issues) == [1] and state.issues[1]["notes"] == [] and state.issues[1]["title"] == title
        assert compare in state.issues[1]["description"]

        dry = _run_job("perfgate-alert", project, CI_API_V4_URL=api_url, **{**ci_env, "PERFGATE_GITLAB_TOKEN": ""})
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "PERFGATE_GITLAB_TOKEN is not set: no issue is opened" in dry.stdout
        assert f"would open the issue {title!r}" in dry.stdout
        assert list(state.issues) == [1]
    for job in (history, pages, *alerts, dry):
        assert TOKEN not in job.stdout + job.stderr


# a test whose budgets a counted session can judge: none on a time (a counted session records no
# times, and a budget on a `perf` test's time fails there, see .gitlab-ci.yml)
COUNTED_TEST = """\
def test_sort(perf):
    assert perf(sorted, list(range(2000, 0, -1)))[0] == 1
"""


@pytest.mark.skipif(bool(NO_COUNTING), reason=NO_COUNTING)
def test_the_counted_run_in_a_shell(project: Path) -> None:
    """PERFGATE_INSTRUCTIONS "true": perfgate-tests times its shard, then counts the part of it
    PERFGATE_INSTRUCTIONS_TESTS names under callgrind; the gate's merge joins both per test."""
    (project / "test_counted.py").write_text(COUNTED_TEST, encoding="utf-8")
    flags = {"PERFGATE_TESTS": ".", "PERFGATE_INSTRUCTIONS": "true", "PERFGATE_INSTRUCTIONS_TESTS": "test_counted.py"}
    runs = {}
    for index in ("1", "2"):
        done = _run_job("perfgate-tests", project, CI_NODE_INDEX=index, CI_NODE_TOTAL="2", **flags)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[index] = done.stdout
    # 6 tests, test_counted.py's first: in shard 1 only; shard 2 has nothing to count
    assert "shard 1 of 2: 3 tests" in runs["1"] and "counted run of shard 1: 1 tests under callgrind" in runs["1"]
    assert "counted run of shard 2: 0 tests under callgrind" in runs["2"]
    assert not (project / ".perfgate" / "counts-2.json").exists()
    counts = load_results(project / ".perfgate" / "counts-1.json")
    assert [t.nodeid for t in counts.tests] == ["test_counted.py::test_sort"]
    assert {"instructions", "alloc_blocks", "alloc_bytes"} <= set(counts.tests[0].series)
    assert "time" not in counts.tests[0].series and counts.metadata["fingerprint"]["valgrind"]
    # counted by Python function too where the platform allows it: the gate can name the function
    from pytest_perfgate.counts.functions import unavailable

    profile = counts.tests[0].evidence.cpu_profile
    if unavailable() is None:
        assert profile is not None and profile.clock == "instructions", counts.tests[0].evidence
    else:
        assert profile is None
    merge = _load(TEMPLATE)["perfgate-gate"]["script"][0]
    done = subprocess.run(["bash", "-c", merge], cwd=project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and ".perfgate/results.json: 6 tests from 3 files" in done.stdout, done.stderr
    merged = load_results(project / ".perfgate" / "results.json")
    sort = merged.by_nodeid()["test_counted.py::test_sort"]
    assert {"time", "instructions", "alloc_blocks", "alloc_bytes"} <= set(sort.series) and sort.outcome == "passed"
    assert merged.metadata["fingerprint"] == counts.metadata["fingerprint"]
    # without PERFGATE_INSTRUCTIONS nothing is counted and the merge takes the shards alone
    (project / ".perfgate" / "counts-1.json").unlink()
    done = _run_job("perfgate-tests", project, CI_NODE_INDEX="1", CI_NODE_TOTAL="2", PERFGATE_TESTS=".")
    assert done.returncode == 0 and "counted run" not in done.stdout, done.stdout + done.stderr
    assert not (project / ".perfgate" / "counts-1.json").exists()
    done = subprocess.run(["bash", "-c", merge], cwd=project, capture_output=True, text=True, timeout=120)
    assert ".perfgate/results.json: 6 tests from 2 files" in done.stdout, done.stderr
    assert "fingerprint" not in load_results(project / ".perfgate" / "results.json").metadata


def test_valgrind_that_cannot_be_installed_is_said(tmp_path: Path) -> None:
    """The base's before_script with PERFGATE_INSTRUCTIONS in the counting job, on a PATH with no
    valgrind and no C compiler: not root, or no apt-get, stops the job (exit 2) saying what to do;
    other jobs, or PERFGATE_INSTRUCTIONS "false", do not look."""
    snippet = _load(TEMPLATE)[".perfgate-base"]["before_script"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def run(uid: str, **env: str) -> subprocess.CompletedProcess[str]:
        (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n", encoding="utf-8")
        (bin_dir / "id").chmod(0o755)
        full = {"PATH": str(bin_dir), "PERFGATE_INSTRUCTIONS": "true", "PERFGATE_COUNTING_JOB": "true", **env}
        return subprocess.run(["/bin/bash", "-c", snippet], env=full, capture_output=True, text=True, timeout=60)

    done = run("1000")
    assert done.returncode == 2 and done.stderr == (
        "perfgate: PERFGATE_INSTRUCTIONS: valgrind gcc libc6-dev missing and this job does not run as root: cannot "
        "apt-get install them; use an image with valgrind, a C compiler and Python's headers\n"
    )
    done = run("0")
    assert done.returncode == 2 and done.stderr == (
        "perfgate: PERFGATE_INSTRUCTIONS: valgrind gcc libc6-dev missing and the image has no apt-get: use an image "
        "with valgrind, a C compiler and Python's headers\n"
    )
    for env in ({"PERFGATE_INSTRUCTIONS": "false"}, {"PERFGATE_COUNTING_JOB": ""}):
        done = run("1000", **env)
        assert done.returncode == 0 and done.stdout == done.stderr == ""
    # root with apt-get (a stand-in recording its arguments; "installing" valgrind, then failing)
    timeout = shutil.which("timeout")
    assert timeout is not None
    (bin_dir / "timeout").symlink_to(timeout)
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/apt.log\n'
        f'case "$*" in *install*) printf "#!/bin/sh\\necho valgrind-3.19.0\\n" > {bin_dir}/valgrind; '
        f"{shutil.which('chmod')} +x {bin_dir}/valgrind;; esac\n",
        encoding="utf-8",
    )
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "cc").write_text("#!/bin/sh\n", encoding="utf-8")
    (bin_dir / "cc").chmod(0o755)
    done = run("0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "perfgate: PERFGATE_INSTRUCTIONS: installing valgrind with apt-get\nvalgrind-3.19.0\n"
    assert (tmp_path / "apt.log").read_text(encoding="utf-8").splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends valgrind",
    ]
    (bin_dir / "valgrind").unlink()
    (bin_dir / "apt-get").write_text("#!/bin/sh\nexit 100\n", encoding="utf-8")
    done = run("0")
    assert done.returncode == 2 and done.stderr == (
        "perfgate: PERFGATE_INSTRUCTIONS: apt-get could not install valgrind (no network, or no such package here)\n"
    )


def test_the_ab_job_picks_its_base_and_survives_a_failed_fetch(tmp_path: Path) -> None:
    """The perfgate-ab job's script, ``perfgate`` replaced by a stand-in that records its arguments:
    the base is the merge base in a merge request pipeline and the target branch's head in a merged
    results pipeline (whose checkout is the merge request merged into that head); a target branch
    that cannot be fetched does not stop the job. (The paired run itself: the gitlab-ci-local test.)"""
    origin, project, stand_in = tmp_path / "origin.git", tmp_path / "project", tmp_path / "bin"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    project.mkdir()
    _git(project, "init", "-q", "-b", "main")
    _git(project, "remote", "add", "origin", str(origin))

    def commit(file: str, name: str) -> None:
        (project / file).write_text(f"{name}\n", encoding="utf-8")
        _git(project, "add", file)
        _git(project, "commit", "-q", "-m", name)

    commit("lib.py", "base")
    _git(project, "checkout", "-q", "-b", "feature")
    commit("lib.py", "the merge request")
    _git(project, "checkout", "-q", "main")
    commit("NEWS", "the target moved on")
    merge_base = _git(project, "merge-base", "main", "feature")
    target_head = _git(project, "rev-parse", "main")
    _git(project, "push", "-q", "origin", "main")
    stand_in.mkdir()
    (stand_in / "perfgate").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$CI_PROJECT_DIR/.perfgate/ab-args.txt"\n', encoding="utf-8"
    )
    (stand_in / "perfgate").chmod(0o755)
    mr = {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_MERGE_REQUEST_DIFF_BASE_SHA": merge_base}

    def base_given(checkout: str, **env: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        _git(project, "checkout", "-q", "--detach", checkout)
        done = _run_job("perfgate-ab", project, path_first=stand_in, PERFGATE_TESTS="tests", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        args = (project / ".perfgate" / "ab-args.txt").read_text(encoding="utf-8").splitlines()
        assert args[:2] == ["ab", "--base"] and args[-2:] == ["--", "tests"], args
        subprocess.run(["git", "cat-file", "-e", f"{args[2]}^{{commit}}"], cwd=project, check=True, timeout=60)
        return args[2], done

    # a merge request pipeline: the merge request's head checked out, compared with the merge base
    assert base_given("feature", **mr)[0] == merge_base != target_head
    # a merged results pipeline: the merge request merged into the target's head, compared with that head
    _git(project, "checkout", "-q", "--detach", "main")
    _git(project, "merge", "-q", "--no-ff", "-m", "merged results", "feature")
    merged = _git(project, "rev-parse", "HEAD")
    assert base_given(merged, **mr, CI_MERGE_REQUEST_TARGET_BRANCH_SHA=target_head)[0] == target_head
    # a target branch origin does not have (a fork's pipeline): said, and the job goes on
    base, done = base_given("feature", **{**mr, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "release"})
    assert base == merge_base
    assert f"perfgate: cannot fetch release from origin; comparing with {merge_base}" in done.stdout


# ----------------------------------------------------------------- gitlab-ci-local, shell mode

GITLAB_CI_LOCAL_VERSION = "4.60.1"  # the last release that runs on Node 20 (newer ones need Node 22)


def _gitlab_ci_local() -> str:
    """The tool: PERFGATE_GITLAB_CI_LOCAL (a path; .ci/run sets it), on PATH, or where .ci/run installs it."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perfgate-ci"
    cached = cache / f"gitlab-ci-local-{GITLAB_CI_LOCAL_VERSION}" / "node_modules" / ".bin" / "gitlab-ci-local"
    found = (
        os.environ.get("PERFGATE_GITLAB_CI_LOCAL")
        or shutil.which("gitlab-ci-local")
        or (str(cached) if cached.is_file() else None)
    )
    if not found:
        pytest.skip(
            f"gitlab-ci-local is not installed (npm install gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION} on Node 20, "
            "or set PERFGATE_GITLAB_CI_LOCAL to its path); the shell-mode pipeline run is skipped"
        )
    if not Path(found).is_file() and shutil.which(found) is None:
        pytest.fail(f"PERFGATE_GITLAB_CI_LOCAL={found} does not exist")
    if not os.environ.get("PERFGATE_GITLAB_CI_LOCAL"):
        # found on PATH or in the cache, not chosen: a copy this machine's Node cannot run (installed
        # under another Node version) is a missing tool, as .ci/run treats it, not a failing pipeline
        try:
            probe = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=120)
            broken = (
                "" if probe.returncode == 0 else f"exit {probe.returncode}: {(probe.stderr or probe.stdout)[-300:]}"
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            broken = str(exc)
        if broken:
            pytest.skip(f"{found} does not run here ({broken.strip()}); the shell-mode pipeline run is skipped")
    for tool, why in (("git", "a git repository"), ("rsync", "rsync (Debian package rsync) for --shell-isolation")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: gitlab-ci-local needs {why}")
    return found


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


def _safe_job_name(name: str) -> str:
    """gitlab-ci-local's directory name for a job (its Utils.safeDockerString): every run of
    characters outside [A-Za-z0-9_-] replaced by its unpadded base64url."""
    return re.sub(
        r"[^\w-]+", lambda m: base64.urlsafe_b64encode(m.group().encode()).decode().rstrip("="), name, flags=re.A
    )


def _jobs(listing: str) -> set[str]:
    """Job names from ``gitlab-ci-local --list-csv`` (when: never excluded), after its header line."""
    lines = listing.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name;"))
    return {line.split(";")[0] for line in lines[header + 1 :] if ";" in line}


class _Pipeline:
    """gitlab-ci-local on a copy of this project's pipeline: shell executor, each job in its own
    checkout (``--shell-isolation``: rsync of the repository's tracked files, .git with its whole
    history and remotes included, GIT_DEPTH not applied; then its needs' artifacts), nothing copied
    back to the work tree."""

    def __init__(self, tool: str, repo: Path, variables: dict[str, str]) -> None:
        self.tool, self.repo, self.variables = tool, repo, variables
        # nothing from a CI job this test may itself run in (CI_*, a real PERFGATE_GITLAB_TOKEN...)
        outer = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_", "PERFGATE_"))}
        self.env = {**outer, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
        self.home = repo.parent / "gitlab-ci-local-home"  # no ~/.gitlab-ci-local/variables.yml of the user
        self.home.mkdir(exist_ok=True)

    def _args(self, variables: dict[str, str], unset: tuple[str, ...]) -> list[str]:
        args = ["--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source", "--no-color"]
        args += ["--home", str(self.home)]
        for name, value in {**self.variables, **variables}.items():
            args += ["--variable", f"{name}={value}"]
        for name in unset:
            args += ["--unset-variable", name]
        return args

    def jobs(self, variables: dict[str, str], unset: tuple[str, ...] = ()) -> set[str]:
        """The jobs the rules put in a pipeline with these variables."""
        done = subprocess.run(
            [self.tool, "--list-csv", *self._args(variables, unset)],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return _jobs(done.stdout)

    def stage(
        self, stage: str, job: str, variables: dict[str, str], unset: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run one stage (the jobs its rules select). gitlab-ci-local gives a job with an ``image:``
        CI_PROJECT_DIR=/builds/..., even with the shell executor, so it is set to the checkout of
        ``job``, the stage's job whose scripts use it."""
        return self._run(["--stage", stage], job, variables, unset)

    def run_jobs(
        self, names: list[str], job: str, variables: dict[str, str], unset: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run these jobs by name, in the order their ``needs:`` give, with their needs' artifacts
        from earlier runs. For a stage whose jobs need different CI_PROJECT_DIRs (gitlab-ci-local sets
        one for all, see :meth:`stage`), run in parts. Named jobs run whatever their rules say: check
        the rules with :meth:`jobs`."""
        return self._run(names, job, variables, unset)

    def _run(
        self, what: list[str], job: str, variables: dict[str, str], unset: tuple[str, ...]
    ) -> subprocess.CompletedProcess[str]:
        args = self._args({**variables, "CI_PROJECT_DIR": str(self.checkout(job))}, unset)
        return subprocess.run(
            [self.tool, *args, *what], cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=300
        )

    def checkout(self, job: str) -> Path:
        """``job``'s checkout (``--shell-isolation``): the repository's tracked files, .git included."""
        return self.repo / ".gitlab-ci-local" / "builds" / _safe_job_name(job)

    def artifact(self, job: str, path: str) -> Path:
        """A file of ``job``'s exported artifacts (what GitLab would keep and serve)."""
        return self.repo / ".gitlab-ci-local" / "artifacts" / _safe_job_name(job) / path


def _summary(log: str) -> dict[str, str]:
    """gitlab-ci-local's closing report: job name -> PASS, FAIL or WARN (allowed failure)."""
    summary = {}
    for line in log.splitlines():
        match = re.match(r"^\s*(PASS|FAIL|WARN)\s+([\w:/\[\] -]+?)\s*$", line)
        if match:
            summary[match[2]] = match[1]
    return summary


# The paired A/B gate's part of the gitlab-ci-local project, next to SMALL_PROJECT's tests: a library
# in a src layout and its perf tests. The merge request makes checksum 50% slower; render is untouched.
SHOP_LIBRARY = LIBRARY  # tests/test_ab.py's library: checksum (the one slowed) and render

SHOP_TESTS = """\
import pytest

import shop


@pytest.mark.perf_budget(p95=("1s", "2s"))
def test_checksum(perf):
    assert perf(shop.checksum) > 0


@pytest.mark.perf_budget(p95=("1s", "2s"))
def test_render(perf):
    assert perf(shop.render).startswith("0,1")
"""
SMALL_TESTS = 8  # SMALL_PROJECT's 5, SHOP_TESTS' 2 and COUNTED_TEST


def _processes_in(root: Path) -> list[str]:
    """Command lines of the live processes whose working directory is ``root`` or under it (read in
    /proc: Linux, where gitlab-ci-local's shell mode runs here; elsewhere none are found)."""
    found: list[str] = []
    if not Path("/proc/self/cwd").exists():
        return found
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # gone, a zombie, or not ours to read
            continue
        if cwd == root or root in cwd.parents:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


def test_project_pipeline_runs_in_gitlab_ci_local_shell_mode(tmp_path: Path) -> None:
    """This project's .gitlab-ci.yml (with the included template) run by gitlab-ci-local with the
    shell executor, the rules choosing the jobs: the default-branch path (performance, baseline)
    twice, the second baseline job extending the run history the first exported; then a merge
    request whose commit makes a library function 50% slower, against the loopback stub serving that
    two-run history (made a hundred times faster): a first pipeline with the template's default (the
    stored-baseline gate judges regressions), a second with this project's PERFGATE_AB "true" (the
    paired A/B gate measures the merge base and the merge request side by side and judges them; the
    stored-baseline gate keeps the budgets). The perf suite is a small project (PERFGATE_WORKDIR);
    the pip install is a no-op (this venv); the Mongo and load jobs are switched off by their
    variables (their rules are checked in the job lists)."""
    tool = _gitlab_ci_local()
    repo = tmp_path / "repo"
    (repo / "ci").mkdir(parents=True)
    shutil.copy(PROJECT_CI, repo / ".gitlab-ci.yml")
    shutil.copy(TEMPLATE, repo / "ci" / TEMPLATE.name)
    small = repo / "small"
    (small / "src" / "shop").mkdir(parents=True)
    for name, text in SMALL_PROJECT.items():
        (small / name).write_text(text, encoding="utf-8")
    library = small / "src" / "shop" / "__init__.py"
    library.write_text(SHOP_LIBRARY.format(loops="n"), encoding="utf-8")
    (small / "test_shop.py").write_text(SHOP_TESTS, encoding="utf-8")
    (small / "test_counted.py").write_text(COUNTED_TEST, encoding="utf-8")
    # origin is a bare repository on disk: each job's checkout is a copy of this repository, .git and
    # its remotes included, so the perfgate-ab job can fetch from it as from GitLab. gitlab-ci-local
    # takes the project's path (CI_PROJECT_PATH...) from the remote gcl-origin when there is one
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "remote", "add", "gcl-origin", "https://gitlab.example.com/group/app.git")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "pipeline")
    _git(repo, "push", "-q", "origin", "main")
    pipeline = _Pipeline(tool, repo, {"CI_DEFAULT_BRANCH": "main"})
    # a merge-request pipeline has no CI_COMMIT_BRANCH on GitLab (gitlab-ci-local sets it from git)
    mr_vars = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "9"}
    mr_unset = ("CI_COMMIT_BRANCH",)

    # the rules, with this project's own variables: which jobs each kind of pipeline gets
    project_jobs = {"lint", "test", "race", "perfgate-tests: [1/1]", "perfgate-mongo", "perfgate-load"}
    assert pipeline.jobs({}) == project_jobs | {FETCH_JOB}
    mr_jobs = pipeline.jobs(mr_vars, mr_unset)  # this project turns the paired A/B gate on
    assert mr_jobs == project_jobs | {"perfgate-gate", "perfgate-ab", "perfgate-comment"}, mr_jobs
    feature = pipeline.jobs({"CI_COMMIT_BRANCH": "feature"})  # a branch pipeline (no merge request yet)
    assert feature == {"lint", "test", "race"}, feature
    without_ab = pipeline.jobs({**mr_vars, "PERFGATE_AB": "false"}, mr_unset)  # the template's default
    assert without_ab == project_jobs | {"perfgate-gate", "perfgate-comment"}, without_ab

    small_vars = {
        "PERFGATE_INSTALL": "--no-index --no-deps pytest-perfgate",
        "PERFGATE_WORKDIR": "small",
        "PERFGATE_TESTS": ".",
        "PERFGATE_PYTEST_ARGS": "",
        "PERFGATE_MONGO_TESTS": "",
        "PERFGATE_LOAD_COMMAND": "",
        # the job's own checkout of the library importable, as `pip install -e .` in PERFGATE_INSTALL
        # would make it (this test cannot install into its environment); perfgate ab puts each side's
        # small/src before it. A short measuring time keeps the paired run quick
        # (and this test's own PYTHONPATH after it: the pytest_perfgate under test, when it is not the installed one)
        "PYTHONPATH": os.pathsep.join(["$CI_PROJECT_DIR/small/src", *filter(None, [os.environ.get("PYTHONPATH")])]),
        # this project's PERFGATE_INSTRUCTIONS "true" (where valgrind and the native extension are here to
        # count with; else off, and the counted run is tested nowhere in this test), on the one test whose
        # budgets a counted session can judge
        "PERFGATE_INSTRUCTIONS": "false" if NO_COUNTING else "true",
        "PERFGATE_INSTRUCTIONS_TESTS": "test_counted.py",
        "PERFGATE_AB_ARGS": "--pythonpath small/src --max-time 0.1s --min-blocks 12",
    }
    pipeline.variables.update(small_vars)
    counting = not NO_COUNTING
    # the history made a hundred times faster also has a hundredth of the counts: test_sort's three
    # counters regressed too
    regressions = SMALL_TESTS + (3 if counting else 0)
    assert "perfgate-mongo" not in pipeline.jobs({}) and "perfgate-load" not in pipeline.jobs({})

    # default branch, two pipelines: the performance stage, then the baseline job merges the shard
    # it gets as an artifact, fetches the history the last pipeline kept (none the first time) and
    # adds its run; the stub serves what the job exported, as GitLab serves the latest artifacts
    state = StubState(token=TOKEN)
    served = tmp_path / "served"
    logs: list[str] = []
    with GitLabStub(state) as api_url:
        ci = {"CI_API_V4_URL": api_url, "CI_PROJECT_ID": "group/app", "CI_JOB_TOKEN": TOKEN}
        bases = []
        for _ in range(2):
            perf = pipeline.stage("performance", "perfgate-tests: [1/1]", ci)
            assert perf.returncode == 0, perf.stdout[-3000:] + perf.stderr[-2000:]
            assert f"shard 1 of 1: {SMALL_TESTS} tests" in perf.stdout
            assert ("counted run of shard 1: 1 tests under callgrind" in perf.stdout) is counting, perf.stdout[-3000:]
            base = pipeline.stage("baseline", FETCH_JOB, ci)
            logs += [perf.stdout + perf.stderr, base.stdout + base.stderr]
            assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-2000:]
            assert f".perfgate/results.json: {SMALL_TESTS} tests from {2 if counting else 1} files" in base.stdout
            assert _summary(base.stdout) == {FETCH_JOB: "PASS"}
            bases.append(base.stdout)
            state.artifact_dirs[("main", FETCH_JOB)] = _serve_history(pipeline.artifact(FETCH_JOB, ""), served)
    assert "NOTICE: no baseline yet (first run on main)" in bases[0] and "(1 run stored, keeping 10)" in bases[0]
    assert "fetched 1 run from artifact .perfgate/baseline/ of job 'perfgate-baseline' on main" in bases[1]
    assert "(2 runs stored, keeping 10)" in bases[1]
    history = open_store(pipeline.artifact(FETCH_JOB, FETCH_PATH)).load()  # what perfgate baseline fetch downloads
    assert history is not None and len(history.runs) == 2 and all(len(r.tests) == SMALL_TESTS for r in history.runs)
    index = json.loads(pipeline.artifact(FETCH_JOB, FETCH_PATH + "index.json").read_text(encoding="utf-8"))
    assert index["runs"] == ["run-000001.json", "run-000002.json"]  # the index lists both, oldest first
    assert len(load_results(pipeline.artifact(FETCH_JOB, ".perfgate/results.json")).tests) == SMALL_TESTS
    if counting:  # the stored history carries the counts, next to the times
        for run in history.runs:
            sort = run.by_nodeid()["test_counted.py::test_sort"]
            assert {"time", "instructions", "alloc_blocks", "alloc_bytes"} <= set(sort.series), sorted(sort.series)
            assert run.metadata["fingerprint"]["valgrind"]
    fetched = [path.split("/raw/")[1] for method, path, _ in state.requests]
    assert fetched == [  # first pipeline: neither the history nor an older job's results; second: the history
        ".perfgate/baseline/index.json?job=perfgate-baseline",
        ".perfgate/results.json?job=perfgate-baseline",
        ".perfgate/baseline/index.json?job=perfgate-baseline",
        ".perfgate/baseline/run-000001.json?job=perfgate-baseline",
        ".perfgate/baseline/history.jsonl?job=perfgate-baseline",  # the long history comes along
        ".perfgate/baseline/history.state.json?job=perfgate-baseline",  # and its judged state, if kept
    ]

    # the merge request: a branch whose commit makes checksum 50% slower (render untouched); main
    # moved on after the branch left it, so the merge base is no longer main's head
    merge_base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "feature")
    library.write_text(SHOP_LIBRARY.format(loops="n * 3 // 2"), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "checksum: 50% more work")
    _git(repo, "checkout", "-q", "main")
    (repo / "NEWS").write_text("main moved on\n", encoding="utf-8")
    _git(repo, "add", "NEWS")
    _git(repo, "commit", "-q", "-m", "news")
    _git(repo, "push", "-q", "origin", "main", "feature")
    _git(repo, "checkout", "-q", "feature")
    assert _git(repo, "merge-base", "main", "feature") == merge_base != _git(repo, "rev-parse", "main")
    mr = {  # as GitLab sets them in a merge request pipeline (not a merged results one)
        **mr_vars,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": merge_base,
    }
    # the stub serves the default branch's history made a hundred times faster: the merge request's every test
    # "regressed"
    state = StubState(token=TOKEN)
    state.artifact_dirs[("main", FETCH_JOB)] = _serve_history(served, tmp_path / "served-fast", faster=True)
    job_tmp = tmp_path / "job-tmp"  # TMPDIR of the perfgate-ab job: where perfgate ab makes the base's worktree
    job_tmp.mkdir()
    with GitLabStub(state) as api_url:
        ci = {**mr, "CI_API_V4_URL": api_url, "CI_PROJECT_ID": "group/app", "CI_JOB_TOKEN": TOKEN}
        ci["PERFGATE_GITLAB_TOKEN"] = TOKEN
        perf = pipeline.stage("performance", "perfgate-tests: [1/1]", ci, mr_unset)
        assert perf.returncode == 0, perf.stdout[-3000:] + perf.stderr[-2000:]
        # first pipeline, the template's default (PERFGATE_AB "false"): the stored-baseline gate judges regressions
        stored = pipeline.stage("gate", "perfgate-gate", {**ci, "PERFGATE_AB": "false"}, mr_unset)
        note_before = [dict(note) for note in state.notes.get(9, [])]
        # second pipeline, this project's PERFGATE_AB "true": the gate stage in two parts, as each job's
        # scripts need their own CI_PROJECT_DIR (the jobs it holds were checked in the lists above):
        # perfgate-ab, then perfgate-gate and perfgate-comment, which takes both gates' reports
        paired = pipeline.run_jobs(["perfgate-ab"], "perfgate-ab", {**ci, "TMPDIR": str(job_tmp)}, mr_unset)
        left_running = _processes_in(tmp_path)
        gate = pipeline.run_jobs(["perfgate-gate", "perfgate-comment"], "perfgate-gate", ci, mr_unset)
    logs += [perf.stdout + perf.stderr, stored.stdout + stored.stderr, paired.stdout + paired.stderr]
    logs.append(gate.stdout + gate.stderr)

    log = stored.stdout + stored.stderr
    # the gate failed the job (a 100x regression: exit 1, not the allowed 3). gitlab-ci-local 4.60 then
    # exits 0 (it counts a job with any allow_failure as allowed), while its job status and GitLab's say
    # failed: the job's status line is the check
    assert re.search(r"perfgate-gate .*FAIL 1\s*$", stored.stdout + stored.stderr, re.M), log[-3000:]
    assert "fetched 2 runs from artifact .perfgate/baseline/ of job 'perfgate-baseline' on main" in log
    assert f"perfgate: FAILED: {regressions} regressions" in log and "baseline of 2 runs" in log
    # the note is posted although the gate failed (when: always), and the failure stays the gate's
    assert _summary(stored.stdout) == {"perfgate-gate": "FAIL", "perfgate-comment": "PASS"}, stored.stdout[-2000:]
    assert "perfgate note 101 created on merge request !9" in stored.stdout
    assert len(note_before) == 1 and "regress" in note_before[0]["body"].lower()
    assert "baseline of 2 runs" in note_before[0]["body"] and "paired A/B" not in note_before[0]["body"]
    if counting:  # the note shows the counts next to the timings
        counted_table = note_before[0]["body"].split("#### Counted next to timed (1 test")[1]
        row = next(line for line in counted_table.splitlines() if line.startswith("| test\\_counted.py::test\\_sort |"))
        assert row.count("→") == 4, row  # time, instructions, alloc_blocks, alloc_bytes: baseline → current

    # the paired A/B gate: the merge base against the merge request, in the job's own checkout; it fails
    # the pipeline (exit 1: a regression, not a run that could not finish) on the slower function only
    log = paired.stdout + paired.stderr
    assert paired.returncode == 1, log[-4000:]
    assert _summary(paired.stdout) == {"perfgate-ab": "FAIL"}, paired.stdout[-2000:]
    assert re.search(r"perfgate-ab .*FAIL 1\s*$", paired.stderr, re.M), paired.stderr[-2000:]
    assert "perfgate: cannot fetch main from origin" not in log  # the job's checkout fetched it from origin
    assert f"perfgate ab: base {merge_base} ({merge_base[:10]}), current working tree" in log
    assert "perfgate: FAILED: 1 regression (" in log and f"paired A/B against {merge_base}" in log
    report = json.loads(pipeline.artifact("perfgate-ab", ".perfgate/ab.json").read_text(encoding="utf-8"))
    verdicts = {c["nodeid"]: c for c in report["comparisons"] if c["metric"] == "time"}
    assert len(verdicts) == SMALL_TESTS, sorted(verdicts)
    checksum = verdicts.pop("test_shop.py::test_checksum")
    # 1.5x the loop's iterations: the call has other work besides the loop, and one run measured +83.8%
    # (layout and cache effects of the two processes are not the loop's count): the bound is loose, the
    # verdict is what matters
    assert checksum["verdict"] == "regression" and 0.2 < checksum["change"] < 1.5, checksum
    # render, and SMALL_PROJECT's tests, run untouched code: none of them regressed
    assert {n: c["verdict"] for n, c in verdicts.items() if c["verdict"] == "regression"} == {}
    assert verdicts["test_shop.py::test_render"]["verdict"] in ("unchanged", "improvement", "unstable"), verdicts
    ab_md = pipeline.artifact("perfgate-ab", ".perfgate/ab.md").read_text(encoding="utf-8")
    assert "Paired A/B: the base and the current code ran in alternating rounds" in ab_md
    # a report (artifacts:reports): gitlab-ci-local does not export those, so it is read in the job's checkout
    junit = (pipeline.checkout("perfgate-ab") / ".perfgate" / "ab-junit.xml").read_text(encoding="utf-8")
    assert 'type="regression"' in junit and "test_shop.py::test_checksum" in junit
    # the Code Quality report, read in the job's checkout too: GitLab's format, the regression at its
    # test's line in the repository (PERFGATE_WORKDIR "small" is part of the path GitLab shows)
    quality = _code_quality(pipeline.checkout("perfgate-ab") / ".perfgate" / "ab-code-quality.json")
    regressed = [i["location"] for i in quality if i["check_name"] == "perfgate-regression"]
    assert regressed == [{"path": "small/test_shop.py", "lines": {"begin": 6}}], quality
    assert SHOP_TESTS.splitlines()[5] == '@pytest.mark.perf_budget(p95=("1s", "2s"))'
    # nothing left behind: no worktree registered in the job's checkout, none on disk, no worker running
    worktrees = _git(pipeline.checkout("perfgate-ab"), "worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 1, worktrees
    assert list(job_tmp.iterdir()) == []
    assert left_running == []

    # with the paired gate on, the stored-baseline gate lists the regressions but does not fail on them
    log = gate.stdout + gate.stderr
    assert gate.returncode == 0, log[-3000:]
    assert _summary(gate.stdout) == {"perfgate-gate": "PASS", "perfgate-comment": "PASS"}, gate.stdout[-2000:]
    judged = f"perfgate: PASSED ({regressions} regressions not failing here: the paired A/B gate judges them"
    assert judged in log and "baseline of 2 runs" in log
    # one note, updated: the paired A/B report above the stored-baseline gate's
    assert "perfgate note 101 updated on merge request !9" in gate.stdout
    assert len(state.notes[9]) == 1
    body = state.notes[9][0]["body"]
    assert body.index("FAILED: 1 regression") < body.index(f"paired A/B against {merge_base}") < body.index(judged)
    assert f"\n\n### :white_check_mark: {judged}" in body  # a heading of its own, not inside the first's </details>

    for name in ("report.md", "report.html", "gate.json", "results.json"):
        assert pipeline.artifact("perfgate-gate", f".perfgate/{name}").is_file(), name
    # its Code Quality report: the regressions at their tests, major (the paired gate judges them)
    quality = _code_quality(pipeline.checkout("perfgate-gate") / ".perfgate" / "gate-code-quality.json")
    regressed = [i for i in quality if i["check_name"] == "perfgate-regression"]
    assert {i["severity"] for i in regressed} == {"major"} and len(regressed) == regressions, quality
    assert {i["location"]["path"] for i in regressed} == {
        "small/test_small.py",
        "small/test_shop.py",
        "small/test_counted.py",
    }
    assert not (repo / ".perfgate").exists()  # every file a job saw came to it as an artifact
    for log in logs:
        assert TOKEN not in log


def test_the_history_jobs_in_gitlab_ci_local_over_default_branch_pipelines(tmp_path: Path) -> None:
    """The template alone (PERFGATE_HISTORY "true") run by gitlab-ci-local in shell mode, the rules
    choosing the jobs: a real perfgate-tests job once, then seven default-branch pipelines of the
    baseline stage (perfgate-baseline, perfgate-history, perfgate-pages, perfgate-alert), the shard of
    each made from the measured one (one test three times slower from the fifth pipeline on: the
    injected step), with the loopback stub serving what each baseline job exported and taking the
    issues. The step is found once three runs show the new level (pipeline 7), at the fifth commit;
    one issue is opened then, and not again when that pipeline is retried."""
    tool = _gitlab_ci_local()
    repo = tmp_path / "repo"
    (repo / "ci").mkdir(parents=True)
    shutil.copy(TEMPLATE, repo / "ci" / TEMPLATE.name)
    (repo / ".gitlab-ci.yml").write_text("include:\n  - local: ci/perfgate.gitlab-ci.yml\n", encoding="utf-8")
    for name, text in SMALL_PROJECT.items():
        (repo / name).write_text(text, encoding="utf-8")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "gcl-origin", "https://gitlab.example.com/group/app.git")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "pipeline")
    variables = {
        "CI_DEFAULT_BRANCH": "main",
        "PERFGATE_HISTORY": "true",
        "PERFGATE_INSTALL": "--no-index --no-deps pytest-perfgate",
        "PERFGATE_TESTS": ".",
        "PERFGATE_PYTEST_ARGS": "",
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
    }
    pipeline = _Pipeline(tool, repo, variables)
    history_jobs = {"perfgate-history", "perfgate-pages", "perfgate-alert"}
    assert pipeline.jobs({}) == {"perfgate-tests: [1/1]", FETCH_JOB} | history_jobs
    assert history_jobs.isdisjoint(pipeline.jobs({"PERFGATE_HISTORY": "false"}))
    assert history_jobs.isdisjoint(pipeline.jobs({"CI_COMMIT_BRANCH": "feature"}))

    tests_job = "perfgate-tests: [1/1]"
    state = StubState(token=TOKEN)
    served = tmp_path / "served"
    logs: list[str] = []
    with GitLabStub(state) as api_url:
        ci = {"CI_API_V4_URL": api_url, "CI_PROJECT_ID": "group/app", "CI_JOB_TOKEN": TOKEN}
        ci["PERFGATE_GITLAB_TOKEN"] = TOKEN
        perf = pipeline.stage("performance", tests_job, ci)
        assert perf.returncode == 0, perf.stdout[-3000:] + perf.stderr[-2000:]
        shard = pipeline.artifact(tests_job, ".perfgate/shard-1.json")
        measured = load_results(shard)
        opened_at = []
        for number in [*range(1, 8), 7]:  # the seventh pipeline retried
            save_results(shard, _pipeline_run(measured, number, {STEPPED: 3.0} if number >= 5 else {}))
            done = pipeline.stage("baseline", FETCH_JOB, ci)
            log = done.stdout + done.stderr
            logs.append(log)
            assert _summary(done.stdout) == {FETCH_JOB: "PASS"} | {job: "PASS" for job in history_jobs}, log[-4000:]
            state.artifact_dirs[("main", FETCH_JOB)] = _serve_history(pipeline.artifact(FETCH_JOB, ""), served)
            if "issue #1 opened" in log:
                opened_at.append(number)
    assert opened_at == [7], opened_at
    title = next(line for line in logs[6].splitlines() if "issue #1 opened: " in line).split("issue #1 opened: ")[1]
    assert title.startswith(f"perf: {STEPPED} median +") and title.endswith("% since c0ffee05")
    # the size is estimated again with each run (its title stays the one it was opened with)
    again = f"issue #1 already reports this step: perf: {STEPPED} median +"
    assert all(again in log and "issue #1 opened" not in log for log in logs[7:]), logs[-1][-3000:]
    assert list(state.issues) == [1] and state.issues[1]["notes"] == []
    compare = f"https://gitlab.example.com/group/app/-/compare/{_sha(4)}...{_sha(5)}"
    assert compare in state.issues[1]["description"]
    assert "perfgate: trend site of 5 series in public/" in logs[-1]
    site = pipeline.artifact("perfgate-pages", "public/index.html").read_text(encoding="utf-8")
    assert f'<a href="{compare}">c0ffee04..c0ffee05</a>' in site
    for log in logs:
        assert TOKEN not in log
