"""The true change of each benchmark between two trees of a library, measured in one process.

    python truth.py PROJECT BASE_TREE SLOWED_TREE OUT.json [--seconds 1.0]

Both copies of the library are imported into this process (the first from ``BASE_TREE``, then,
with the first one's modules put aside, the second from ``SLOWED_TREE``), and so is the benchmark
module (and conftest) of each tree, under its own name. Each benchmark test is called once per copy
with a stand-in ``benchmark`` fixture that records what it would time (``benchmark(fn, *args,
**kwargs)`` and ``benchmark.pedantic(fn, args, kwargs, setup, ...)``). Then, per test, rounds of
the two copies' calls (each looped to ~2 ms) alternate ``A B B A`` for ``--seconds`` of each side;
the true change is the median over blocks of ``(B1 + B2) / (A1 + A2) - 1``, on the thread's CPU time
(with the load of a shared machine, wall-time rounds hold other processes' time slices). Run it pinned to one
CPU (``taskset``); nothing of pytest or perfgate is involved.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from projects import PROJECTS, Project  # noqa: E402

Call = Callable[[], Any]


class Capture:
    """Stands in for pytest-benchmark's fixture: records the call it would time."""

    def __init__(self) -> None:
        self.call: Call | None = None

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.call = lambda: fn(*args, **kwargs)
        return fn(*args, **kwargs)

    def pedantic(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        setup: Callable[[], Any] | None = None,
        **_: Any,
    ) -> Any:
        if setup is not None:
            raise NotImplementedError("pedantic with setup: not needed by these suites")
        kw = kwargs or {}
        self.call = lambda: fn(*args, **kw)
        return fn(*args, **kw)


def load_copy(project: Project, tree: Path, tag: str) -> list[ModuleType]:
    """Import the library from ``tree`` and that tree's benchmark modules (named ``tag_...``)."""
    for name in [m for m in sys.modules if m == project.package or m.startswith(project.package + ".")]:
        sys.modules[f"{tag}_{name}"] = sys.modules.pop(name)  # keep the other copy alive, out of the way
    sys.path.insert(0, str(tree))
    try:
        modules = []
        for rel in project.test_files:
            path = tree / rel
            spec = importlib.util.spec_from_file_location(f"{tag}_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules.append(module)
        library = sys.modules[project.package]
        if not str(Path(library.__file__ or "").resolve()).startswith(str(tree.resolve())):
            raise SystemExit(f"{project.package} was imported from {library.__file__}, not from {tree}")
        return modules
    finally:
        sys.path.remove(str(tree))


def _ids(argname: str, values: list[Any], ids: Any) -> list[str]:
    if ids is not None:
        return [ids(v) if callable(ids) else str(ids[i]) for i, v in enumerate(values)]
    return [
        str(v) if isinstance(v, (str, int, float, bool)) or v is None else f"{argname}{i}" for i, v in enumerate(values)
    ]


def cases(modules: list[ModuleType], select: tuple[str, ...] = ()) -> dict[str, Call]:
    """Every benchmark test of the modules, by ``name[id parts sorted]`` -> the call it times."""
    extra: list[tuple[str, list[Any], list[str]]] = []
    contenders = getattr(modules[0], "contenders", None)  # cbor2's conftest parametrizes 'contender'
    if contenders is not None:
        extra.append(("contender", list(contenders), [c.name for c in contenders]))
    out: dict[str, Call] = {}
    for module in modules:
        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn):
                continue
            params: list[tuple[str, list[Any], list[str]]] = []
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "parametrize":
                    argname, values = mark.args[0], list(mark.args[1])
                    params.append((argname, values, _ids(argname, values, mark.kwargs.get("ids"))))
            wanted = fn.__code__.co_varnames[: fn.__code__.co_argcount]
            params += [p for p in extra if p[0] in wanted]
            for combo in itertools.product(*[list(zip(p[1], p[2], strict=True)) for p in params]):
                name_key = key(name, [i for _, i in combo])
                if select and not any(s in name_key for s in select):
                    continue
                capture = Capture()
                kwargs = {p[0]: value for p, (value, _) in zip(params, combo, strict=True)}
                fn(benchmark=capture, **kwargs)
                if capture.call is not None:
                    out[name_key] = capture.call
    return out


def key(function: str, id_parts: list[str]) -> str:
    return f"{function}[{'-'.join(sorted(id_parts))}]"


def key_of_nodeid(nodeid: str) -> str:
    """The :func:`key` of a pytest node id (ids hold no '-' of their own in these suites)."""
    function = nodeid.split("::")[-1].split("[")[0]
    bracket = nodeid.split("[", 1)[1].rstrip("]") if "[" in nodeid else ""
    return key(function, bracket.split("-") if bracket else [])


def loops_for(call: Call, target: float = 0.002) -> int:
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        if time.perf_counter() - start >= target or loops >= 1 << 20:
            return loops
        loops *= 2


def timed(call: Call, loops: int) -> float:
    """CPU time of the thread: on a shared, loaded machine wall time holds other processes' slices."""
    start = time.thread_time()
    for _ in range(loops):
        call()
    return time.thread_time() - start


def measure(a: Call, b: Call, seconds: float) -> dict[str, Any]:
    loops = max(loops_for(a), loops_for(b)) // 2 or 1
    for _ in range(3):
        timed(a, loops), timed(b, loops)
    ratios: list[float] = []
    spent = 0.0
    # the garbage collector stays on, as in the suite under pytest-benchmark (its default): a
    # workload that allocates pays for collections on both sides, and they belong to its cost
    while spent < 2 * seconds or len(ratios) < 30:
        a1, b1, b2, a2 = timed(a, loops), timed(b, loops), timed(b, loops), timed(a, loops)
        ratios.append((b1 + b2) / (a1 + a2))
        spent += a1 + a2 + b1 + b2
    quartiles = statistics.quantiles(ratios, n=4)
    return {
        "change": statistics.median(ratios) - 1,
        "q1": quartiles[0] - 1,
        "q3": quartiles[2] - 1,
        "blocks": len(ratios),
        "loops": loops,
        "base_seconds_per_call": spent / len(ratios) / 4 / loops,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", choices=sorted(PROJECTS))
    parser.add_argument("base_tree", type=Path)
    parser.add_argument("slowed_tree", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per side and test")
    args = parser.parse_args()
    project = PROJECTS[args.project]
    base = cases(load_copy(project, args.base_tree, "A"), project.select)
    slowed = cases(load_copy(project, args.slowed_tree, "B"), project.select)
    if set(base) != set(slowed) or not base:
        raise SystemExit(f"the two trees give different benchmarks: {sorted(set(base) ^ set(slowed))}")
    result = {name: measure(base[name], slowed[name], args.seconds) for name in sorted(base)}
    args.out.write_text(
        json.dumps(
            {
                "project": project.name,
                "base_tree": str(args.base_tree),
                "slowed_tree": str(args.slowed_tree),
                "seconds": args.seconds,
                "tests": result,
            },
            indent=1,
        )
        + "\n"
    )
    for name, r in result.items():
        print(f"{name:60s} {100 * r['change']:+6.1f}%  ({r['base_seconds_per_call'] * 1e6:.1f} us/call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
