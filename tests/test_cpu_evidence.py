"""CPU evidence on constructed programs with known answers: pyinstrument's tree holds only paths
that ran, a child never takes more time than its parent, own-time shares match the constructed
split; the cProfile fallback says what it is. (Shares, never absolute times: the machine is shared.)

The constructed functions spin until a wall-clock deadline, so a split of 70/30 is 70/30 of the
wall time whatever else the machine runs."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_perfgate.evidence import CallNode, CpuProfile, Evidence
from pytest_perfgate.measure.cpuprofile import MISSING_PYINSTRUMENT, profile_cpu
from pytest_perfgate.reports.evidence_text import format_cpu_profile

pytest.importorskip("pyinstrument")


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def fast() -> None:
    _spin(0.0002)


def slow() -> None:
    _spin(0.0008)


def shared(leaf: Callable[[], None]) -> None:
    leaf()


def via_a() -> None:
    shared(fast)


def via_b() -> None:
    shared(slow)


def two_callers() -> None:
    via_a()
    via_b()


def _paths(nodes: tuple[CallNode, ...], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for node in nodes:
        path = (*prefix, node.function)
        yield path
        yield from _paths(node.children, path)


def _walk(nodes: tuple[CallNode, ...]) -> Iterator[CallNode]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _shape(profile: CpuProfile) -> set[tuple[str, ...]]:
    """The paths of the tree without the spin loop and the clock it calls."""
    return {p for p in _paths(profile.tree) if p[-1] not in ("perf_counter", "_spin")}


def test_the_tree_holds_only_paths_that_ran() -> None:
    profile = profile_cpu(two_callers, min_time=0.2)
    assert profile.profiler == "pyinstrument" and profile.sampled and profile.samples > 100
    assert _shape(profile) == {
        ("two_callers",),
        ("two_callers", "via_a"),
        ("two_callers", "via_a", "shared"),
        ("two_callers", "via_a", "shared", "fast"),
        ("two_callers", "via_b"),
        ("two_callers", "via_b", "shared"),
        ("two_callers", "via_b", "shared", "slow"),
    }
    names = [n.function for n in profile.hot_path()]
    assert names[:4] == ["two_callers", "via_b", "shared", "slow"]


def test_the_cprofile_fallback_merges_callers_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented limit of the fallback (why pyinstrument is preferred): a path that never
    ran appears, and the profile and its text say which profiler made it and why."""
    monkeypatch.setitem(sys.modules, "pyinstrument", None)  # import fails: not installed
    profile = profile_cpu(two_callers, min_time=0.05)
    assert profile.profiler == "cProfile" and not profile.sampled
    assert profile.note == MISSING_PYINSTRUMENT
    assert ("two_callers", "via_a", "shared", "slow") in set(_paths(profile.tree))  # never ran
    text = format_cpu_profile(profile)
    assert text.startswith("where the time went (cProfile fallback, ")
    assert "pyinstrument is not installed (pip install 'pytest-perfgate[profile]')" in text
    assert "a path shown may never have run" in text


def test_cprofile_on_request_is_labelled_too() -> None:
    profile = profile_cpu(two_callers, min_time=0.02, profiler="cProfile")
    assert profile.profiler == "cProfile" and profile.note == ""
    assert "cProfile's call tree merges callers" in format_cpu_profile(profile)


def tiny() -> int:
    return 1


def test_a_call_of_a_microsecond_is_repeated_until_it_has_samples() -> None:
    profile = profile_cpu(tiny, min_time=0.05)
    assert profile.calls > 10_000 and profile.samples >= 20
    assert [n.function for n in profile.tree] == ["tiny"]


def test_pyinstrument_text_names_it() -> None:
    text = format_cpu_profile(profile_cpu(two_callers, min_time=0.05))
    assert text.startswith("where the time went (pyinstrument, ")
    assert "stack samples" in text and "hot path: two_callers" in text and "note:" not in text


# --------------------------------------------------------------------------- own time, by construction


#: the wall time each constructed part really took (the known answer, even on a loaded machine:
#: a part preempted past its deadline is longer, and the profiler must see that too)
SPENT: dict[str, float] = {}


def _spent(name: str, start: float) -> None:
    SPENT[name] = SPENT.get(name, 0.0) + time.perf_counter() - start


def hot_part() -> None:
    start = time.perf_counter()
    end = start + 0.0007  # spins here: the time is this function's own (and the clock's it calls)
    while time.perf_counter() < end:
        pass
    _spent("hot_part", start)


def cold_part() -> None:
    start = time.perf_counter()
    end = start + 0.0003
    while time.perf_counter() < end:
        pass
    _spent("cold_part", start)


def split_70_30() -> None:
    hot_part()
    cold_part()


def leaf(seconds: float) -> None:
    _spin(seconds)


def path_one() -> None:
    start = time.perf_counter()
    leaf(0.0007)
    _spent("path_one", start)


def path_two() -> None:
    start = time.perf_counter()
    leaf(0.0003)
    _spent("path_two", start)


def _truth(a: str, b: str) -> float:
    return SPENT[a] / (SPENT[a] + SPENT[b])


def one_leaf_two_paths() -> None:
    path_one()
    path_two()


def _subtree(profile: CpuProfile, path: tuple[str, ...]) -> CallNode:
    nodes, node = profile.tree, None
    for name in path:
        node = next(n for n in nodes if n.function == name)
        nodes = node.children
    assert node is not None
    return node


def test_own_time_shares_match_a_70_30_split() -> None:
    SPENT.clear()
    profile = profile_cpu(split_70_30, min_time=1.0)
    truth = _truth("hot_part", "cold_part")
    assert truth > 0.55  # 70/30 by construction; a loaded machine preempts the longer part more often
    hot, cold = (_subtree(profile, ("split_70_30", name)) for name in ("hot_part", "cold_part"))
    assert hot.own / (hot.own + cold.own) == pytest.approx(truth, abs=0.05)
    assert hot.cumulative / (hot.cumulative + cold.cumulative) == pytest.approx(truth, abs=0.05)
    rows = {t.function: t for t in profile.top}
    assert rows["hot_part"].own / (rows["hot_part"].own + rows["cold_part"].own) == pytest.approx(truth, abs=0.05)
    # the clock the loops call is a C function: pyinstrument shows it under each caller
    assert rows["hot_part"].own + rows["cold_part"].own + rows["perf_counter"].own == pytest.approx(
        sum(t.own for t in profile.top), rel=0.05
    )


def test_own_time_per_path_and_per_function() -> None:
    """One function reached by two paths (70/30): each path's node has its own part of the
    function's time, and the table sums them."""
    SPENT.clear()
    profile = profile_cpu(one_leaf_two_paths, min_time=1.0)
    truth = _truth("path_one", "path_two")
    assert truth > 0.55
    one = _subtree(profile, ("one_leaf_two_paths", "path_one", "leaf"))
    two = _subtree(profile, ("one_leaf_two_paths", "path_two", "leaf"))
    assert one.cumulative / (one.cumulative + two.cumulative) == pytest.approx(truth, abs=0.05)
    spin_one, spin_two = (next(c for c in n.children if c.function == "_spin") for n in (one, two))
    assert spin_one.own / (spin_one.own + spin_two.own) == pytest.approx(truth, abs=0.05)
    rows = {t.function: t for t in profile.top}
    # the table's own time of _spin is the sum over its two paths (every sample counted once)
    assert rows["_spin"].own == pytest.approx(spin_one.own + spin_two.own, rel=1e-9)
    assert rows["leaf"].cumulative == pytest.approx(one.cumulative + two.cumulative, rel=1e-9)


def sleeper() -> None:
    time.sleep(0.0005)


def spinner() -> None:
    _spin(0.0005)


def sleep_and_spin() -> None:
    sleeper()
    spinner()


def test_the_wall_clock_sees_waits_and_the_cpu_clock_does_not() -> None:
    def share(profile: CpuProfile) -> float:
        nodes = {n.function: n for n in profile.tree[0].children}
        return nodes["sleeper"].cumulative / profile.total if "sleeper" in nodes else 0.0

    wall = profile_cpu(sleep_and_spin, min_time=0.2)
    cpu = profile_cpu(sleep_and_spin, min_time=0.2, clock="cpu")
    assert wall.clock == "wall" and cpu.clock == "cpu"
    assert share(wall) > 0.3  # about half the wall time is asleep
    assert share(cpu) < 0.1  # asleep: no CPU time
    assert "pyinstrument, CPU time, " in format_cpu_profile(cpu)
    assert CpuProfile.from_json(cpu.to_json()) == cpu


# --------------------------------------------------------------------------- property: child <= parent

_counter = itertools.count()


def _program(edges: dict[int, list[int]], spins: dict[int, float]) -> tuple[Callable[[], None], set[tuple[str, str]]]:
    """Functions f0..fn, f<i> spinning spins[i] then calling each f<j> of edges[i] (j > i: a DAG
    with shared callees); its entry point and its caller -> callee edges, by name."""
    tag = next(_counter)
    names = {i: f"g{tag}_f{i}" for i in spins}
    lines = []
    for i in sorted(spins, reverse=True):
        lines.append(f"def {names[i]}():")
        lines.append(f"    _spin({spins[i]!r})")
        lines.extend(f"    {names[j]}()" for j in edges.get(i, []))
    namespace: dict[str, object] = {"_spin": _spin}
    exec(compile("\n".join(lines) + "\n", f"<constructed {tag}>", "exec"), namespace)
    pairs = {(names[i], names[j]) for i, callees in edges.items() for j in callees}
    pairs |= {(names[i], "_spin") for i in spins} | {("_spin", "perf_counter")}
    return namespace[names[0]], pairs  # type: ignore[return-value]


@st.composite
def programs(draw: st.DrawFn) -> tuple[dict[int, list[int]], dict[int, float]]:
    size = draw(st.integers(2, 6))
    edges = {
        i: sorted(draw(st.sets(st.integers(i + 1, size - 1), max_size=3))) if i < size - 1 else [] for i in range(size)
    }
    reachable, stack = {0}, [0]
    while stack:
        for j in edges[stack.pop()]:
            if j not in reachable:
                reachable.add(j)
                stack.append(j)
    spins = {i: draw(st.sampled_from([0.0, 0.00005, 0.0001, 0.0003])) for i in sorted(reachable)}
    return {i: edges[i] for i in reachable}, spins


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_a_child_never_exceeds_its_parent_and_every_edge_ran(
    program: tuple[dict[int, list[int]], dict[int, float]],
) -> None:
    edges, spins = program
    entry, pairs = _program(edges, spins)
    ours = {name for pair in pairs for name in pair}
    profile = profile_cpu(entry, min_time=0.05)
    for node in _walk(profile.tree):
        assert node.own >= 0
        assert sum(c.cumulative for c in node.children) <= node.cumulative * (1 + 1e-9)
        assert node.own + sum(c.cumulative for c in node.children) <= node.cumulative * (1 + 1e-9) + 1e-12
        for child in node.children:
            assert child.cumulative <= node.cumulative
            if child.function in ours:  # (the interpreter may run a gc callback anywhere: a real path too)
                assert (node.function, child.function) in pairs, f"{node.function} -> {child.function} never ran"
    assert [node.function for node in profile.tree if node.function in ours] == [entry.__name__]  # type: ignore[attr-defined]
    assert sum(n.cumulative for n in profile.tree) <= profile.total * (1 + 1e-9)


# --------------------------------------------------------------------------- the results file


def test_a_profile_round_trips_and_an_old_one_loads_as_cprofile() -> None:
    profile = profile_cpu(two_callers, min_time=0.02)
    assert CpuProfile.from_json(profile.to_json()) == profile
    evidence = Evidence.from_json({"cpu_profile": profile.to_json()})
    assert evidence.cpu_profile == profile
    old = profile.to_json()
    for key in ("profiler", "note", "samples"):
        old.pop(key, None)
    loaded = CpuProfile.from_json(old)
    assert loaded.profiler == "cProfile" and loaded.samples == 0 and loaded.note == ""
    assert "cProfile fallback" in format_cpu_profile(loaded)


def test_an_old_results_file_with_a_cprofile_tree_loads(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from pytest_perfgate.model import load_results

    node = {"function": "f", "location": "m.py:1", "calls": 3, "cumulative": 0.2, "own": 0.1, "children": []}
    row = {"function": "f", "location": "m.py:1", "calls": 3, "own": 0.1, "cumulative": 0.2}
    data = {
        "schema": "perfgate-results",
        "schema_version": 1,
        "metadata": {},
        "tests": [
            {
                "nodeid": "t.py::t",
                "series": {},
                "evidence": {"cpu_profile": {"calls": 3, "total": 0.2, "tree": [node], "top": [row]}},
            }
        ],
    }
    path = Path(str(tmp_path)) / "old.json"
    path.write_text(json.dumps(data))
    cpu = load_results(path).tests[0].evidence.cpu_profile
    assert cpu is not None and cpu.profiler == "cProfile" and cpu.hot_path()[0].function == "f"
