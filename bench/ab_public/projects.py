"""The public projects whose pytest-benchmark suites ``run.py`` measures, as they ship on PyPI.

Each project: the sdist to fetch, the benchmark files (and selection) pytest runs, where the library
is imported from (``--pythonpath``, relative to the unpacked tree: never site-packages), extra test
dependencies, and the slowdown injected into the library: one line of ``N`` statements ``_perfgate_slow = 0``
(a few ns each, no allocation: the cost is linear in ``N``) inserted after an anchor line of one hot function,
so the extra time grows with the input (per encoded or decoded item, per raised error). ``N`` is
calibrated by ``run.py`` against the in-process truth (``truth.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Injection:
    path: str  # file in the unpacked tree
    anchor: str  # the slowdown goes right after the first line containing this text
    indent: int  # spaces before the inserted line
    weight: float = 1.0  # this place gets ``N * weight`` statements

    def applied(self, text: str, n: int) -> str:
        """``text`` (the file as shipped) with ``n * weight`` statements (at least one) after the
        anchor line; ``text`` itself for ``n`` 0."""
        if not n:
            return text
        lines = text.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if self.anchor in line)
        statements = "; ".join(["_perfgate_slow = 0"] * max(1, round(n * self.weight)))
        lines.insert(at + 1, " " * self.indent + statements + "\n")
        return "".join(lines)


@dataclass(frozen=True)
class Project:
    name: str
    requirement: str  # what pip downloads (an exact version)
    unpacked: str  # the sdist's top directory
    package: str  # the importable package of the library (imported from the tree)
    test_files: tuple[str, ...]  # benchmark modules, relative to the tree
    pytest_args: tuple[str, ...]  # what perfgate ab passes to pytest (after ``--``)
    pythonpath: str  # perfgate ab --pythonpath
    injections: tuple[Injection, ...]
    #: tests the slowdown reaches (their true change is measured); the others are controls
    slowed_hint: str = ""
    #: the benchmarks ``pytest_args`` selects, for ``truth.py``: names containing any of these
    select: tuple[str, ...] = ()
    extra_deps: tuple[str, ...] = field(default=())
    #: the file holding the project's pytest configuration (``probe`` adds pytest-timeout's ``timeout``)
    ini: str = "pyproject.toml"

    def ab_command(
        self,
        python: Path,
        base: str,
        files: dict[str, Path],
        *,
        cpu: int | str,
        max_time: str,
        timeout: str,
        extra: list[str],
        pytest_args: list[str] | None = None,
    ) -> list[str]:
        """The ``perfgate ab`` command the benches run on this project (``files``: where its
        ``json``, ``blocks`` and ``md`` outputs go; ``extra``: more ``perfgate ab`` options)."""
        return [
            str(python), "-m", "pytest_perfgate.cli", "ab", "--base", base, "--cpu", str(cpu),
            "--pythonpath", self.pythonpath, "--max-regression", "5%", "--max-time", max_time,
            "--timeout", timeout, "--json", str(files["json"]), "--save-blocks", str(files["blocks"]),
            "--markdown", str(files["md"]), *extra, "--",
            *(self.pytest_args if pytest_args is None else pytest_args),
        ]  # fmt: skip


PROJECTS: dict[str, Project] = {
    "fastjsonschema": Project(
        name="fastjsonschema",
        requirement="fastjsonschema==2.22.3",
        unpacked="fastjsonschema-2.22.3",
        package="fastjsonschema",
        test_files=("tests/benchmarks/test_benchmark.py",),
        pytest_args=("tests/benchmarks/test_benchmark.py",),
        pythonpath=".",
        # every invalid value raises this, and so do the valid ones inside the schema's 'oneOf' and
        # 'not' (caught there): all 12 benchmarks slow down, this suite has no control
        injections=(Injection("fastjsonschema/exceptions.py", "super().__init__(message)", 8),),
        slowed_hint="test_benchmark",  # every benchmark: the valid values raise it inside oneOf / not
        ini="pytest.ini",  # it has none: one is made
    ),
    "cbor2": Project(
        name="cbor2",
        requirement="cbor2==5.6.5",
        unpacked="cbor2-5.6.5",
        package="cbor2",
        test_files=("benchmarks/tests/conftest.py", "benchmarks/tests/test_vs_json.py"),
        # 12 of the 48: two data sets x dumps/loads/roundtrip x (json, pure-Python cbor2); the C
        # extension is not built, so the suite's own conftest picks the pure-Python implementation
        # its conftest's pytest_configure pauses pytest-cov's controller: without --cov it is an INTERNALERROR
        pytest_args=("benchmarks/tests/test_vs_json.py", "-k", "composite or complex", "--cov=cbor2", "--cov-report="),
        pythonpath=".",
        # one loop per encoded item and per decoded item: the ppcbor2 tests slow down, json is the control
        injections=(
            Injection("cbor2/_encoder.py", "obj_type = obj.__class__", 8),
            Injection("cbor2/_decoder.py", "initial_byte = self.read(1)[0]", 12, weight=2.0),
        ),
        slowed_hint="ppcbor2",
        select=("composite object", "complex object"),
        extra_deps=("pytest-cov",),  # its conftest's pytest_configure needs the _cov plugin
    ),
}
