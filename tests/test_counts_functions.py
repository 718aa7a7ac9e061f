"""Instruction counts by Python function (counts/functions.py and the extension's trampolines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.counts import _native, needs_functions
from pytest_perfgate.counts.functions import FunctionCosts, parse_function_costs, profile_of
from pytest_perfgate.errors import MeasurementError
from pytest_perfgate.evidence import CpuProfile
from pytest_perfgate.profdiff import diff_profiles

SRC = Path(__file__).resolve().parents[1] / "src"

needs_trampolines = pytest.mark.skipif(
    _native is None or not _native.have_trampolines(),
    reason="instructions by Python function need the native extension on CPython 3.11/3.12, x86-64",
)


DUMP = textwrap.dedent(
    """\
    # callgrind format
    version: 1
    events: Ir
    desc: Trigger: Client Request: t

    fn=(1) 0x0000000000001000
    0 5
    cfn=(2) 0x0000000000001020
    calls=2 0
    0 700
    cfn=(3) 0x00000000000099a0
    calls=1 0
    0 30
    fn=(2)
    0 400
    cfn=(5) 0x0000000000001020'2
    calls=3 0
    0 250
    fn=(5)
    0 250
    fn=(3)
    0 30
    fn=(4) 0x0000000000000500
    cfn=(1)
    calls=1 0
    0 735
    0 9

    totals: 744
    """
)


def test_a_dump_is_read_as_own_and_inclusive_instructions_per_function() -> None:
    costs = parse_function_costs(DUMP)
    outer, inner, stub = "0x0000000000001000", "0x0000000000001020", "0x00000000000099a0"
    assert costs.total == 744
    # a recursion copy ('2) is the same function; its calls into itself are not inclusive twice
    assert costs.own == {outer: 5, inner: 650, stub: 30, "0x0000000000000500": 9}
    assert costs.inclusive == {outer: 735, inner: 700, stub: 30}
    assert costs.calls == {inner: 5, stub: 1, outer: 1}


def test_a_profile_names_the_code_and_charges_unnamed_callees_to_their_caller() -> None:
    def outer() -> None: ...

    def inner() -> None: ...

    costs = parse_function_costs(DUMP)
    profile = profile_of(costs, {"0x0000000000001000": outer.__code__, "0x0000000000001020": inner.__code__})
    rows = {row.function: row for row in profile.top}
    assert profile.profiler == "callgrind" and profile.clock == "instructions"
    assert set(rows) == {outer.__code__.co_qualname, inner.__code__.co_qualname}
    # the stub without a symbol (a PLT entry) is the outer function's work; the harness (0x500) is no one's
    assert rows[outer.__code__.co_qualname].own == 5 + 30
    assert rows[inner.__code__.co_qualname].own == 650
    assert rows[inner.__code__.co_qualname].calls == 5
    assert rows[inner.__code__.co_qualname].cumulative == 700
    assert profile.total == 685
    assert rows[inner.__code__.co_qualname].location.endswith(
        f"test_counts_functions.py:{inner.__code__.co_firstlineno}"
    )


def test_what_is_not_a_dump_is_refused_by_name() -> None:
    with pytest.raises(MeasurementError, match=r"notes\.txt is not a callgrind dump"):
        parse_function_costs("hello\n", source="notes.txt")


def test_a_profile_round_trips_through_json() -> None:
    def f() -> None: ...

    profile = profile_of(parse_function_costs(DUMP), {"0x0000000000001020": f.__code__})
    assert CpuProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


@needs_trampolines
def test_trampolines_leave_results_exceptions_and_generators_as_they_were() -> None:
    assert _native is not None

    def gen(n: int) -> Any:
        for i in range(n):
            yield i * i

    def boom() -> None:
        raise KeyError("inside")

    _native.profile_install()
    try:
        assert _native.call_rooted(lambda: sum(gen(10))) == 285
        with pytest.raises(KeyError, match="inside"):
            _native.call_rooted(boom)
        codes = set(_native.profile_functions().values())
        assert gen.__code__ in codes and boom.__code__ in codes
        assert len(set(_native.profile_functions())) == len(_native.profile_functions())
    finally:
        _native.profile_uninstall()


CHILD = textwrap.dedent(
    """
    import json, sys
    from pytest_perfgate.counts.functions import count_functions

    EXTRA = int(sys.argv[1])

    def leaf(n):
        s = 0
        for i in range(n):
            s += i
        return s

    def twice(n):
        return leaf(n) + leaf(n)

    def heavy(n):
        x = 0
        for i in range(n * 3):
            x ^= i
        spent = 0
        for i in range(EXTRA):
            spent += 1
        return x

    def depth(k):
        return 0 if k == 0 else 1 + depth(k - 1)

    def squares(n):
        for i in range(n):
            yield leaf(i)

    def top():
        total = 0
        for _ in range(10):
            total += twice(200) + heavy(100) + depth(6) + sum(squares(20))
        return total

    profile = count_functions(top, name="top")
    print(json.dumps(profile.to_json()))
    """
)


def _profile(tmp_path: Path, extra: int) -> CpuProfile:
    from pytest_perfgate.counts.callgrind import valgrind_command

    # each side in its own checkout, the file at the same place in it (as perfgate ab's two trees)
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    script = tmp_path / "work" / "child.py"
    script.write_text(CHILD)
    command = valgrind_command([sys.executable, str(script), str(extra)], out_dir=tmp_path / "cg", functions=True)
    env = os.environ | command.env | {"PYTHONPATH": str(SRC)}
    proc = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return CpuProfile.from_json(json.loads(proc.stdout))


@needs_functions
def test_counted_profiles_are_exact_per_function_and_name_the_slowed_one(tmp_path: Path) -> None:
    base, again, slowed = _profile(tmp_path / "a", 0), _profile(tmp_path / "b", 0), _profile(tmp_path / "c", 30)
    own = {row.function: row.own for row in base.top}
    calls = {row.function: row.calls for row in base.top}
    assert {"top", "twice", "leaf", "heavy", "depth", "squares"} <= set(own)
    assert not any(f.startswith(("count_functions", "measured_call")) for f in own)  # the harness is no one's work
    # every call of each function was seen (recursion and generator resumptions included)
    assert calls["twice"] == 10 and calls["heavy"] == 10 and calls["leaf"] == 10 * 2 + 10 * 20
    assert calls["depth"] == 10 * 7
    # own work stays with the frame that did it: twice only adds two leaf calls
    assert own["twice"] < own["leaf"] / 20
    assert own["leaf"] > own["heavy"]
    # exact in another process
    assert [row[:1] + row[2:] for row in again.top] == [row[:1] + row[2:] for row in base.top]
    # the slowed function's own count grew by the work added; the others stay within 1% (a caller can
    # move a little: the allocator's state after the slowed call is another, measured 490 of top's 69k)
    slowed_own = {row.function: row.own for row in slowed.top}
    assert slowed_own["heavy"] > own["heavy"] * 1.05
    for function in own:
        if function != "heavy":
            assert abs(slowed_own[function] - own[function]) <= own[function] / 100, function
    assert slowed_own["leaf"] == own["leaf"] and slowed_own["twice"] == own["twice"]
    diff = diff_profiles(base, slowed)
    assert diff.changes[0].function == "heavy" and diff.top is not None and diff.top.function == "heavy"
    assert abs(diff.changes[1].per_call_change) < diff.changes[0].per_call_change / 50


def test_counting_by_function_outside_callgrind_says_how_to_start() -> None:
    from pytest_perfgate.counts.functions import count_functions

    if _native is None or not _native.have_client_requests():
        pytest.skip("the native extension with valgrind's headers is not built here")
    with pytest.raises(MeasurementError, match="does not run under valgrind"):
        count_functions(lambda: None, name="x")


def test_function_costs_is_frozen() -> None:
    costs = FunctionCosts(own={}, inclusive={}, calls={}, edges={}, total=0)
    with pytest.raises(AttributeError):
        costs.total = 1  # type: ignore[misc]


@needs_trampolines
def test_a_frames_locals_are_released_in_it_and_kept_where_something_can_still_see_them() -> None:
    """The locals a finished frame held are released before its trampoline returns (so a function's
    own garbage is its own work), except where a generator or a traceback can still read them."""
    assert _native is not None
    released: list[str] = []

    class Noted:
        def __init__(self, name: str) -> None:
            self.name = name

        def __del__(self) -> None:
            released.append(self.name)

    def holder() -> int:
        kept = Noted("local")
        return id(kept)

    def generator() -> Any:
        kept = Noted("generator")
        yield 1
        yield id(kept)

    def failing() -> None:
        kept = Noted("traceback")  # noqa: F841 - read back from the traceback
        raise KeyError("inside")

    _native.profile_install()
    try:
        holder()
        assert released == ["local"]
        steps = generator()
        assert next(steps) == 1 and released == ["local"]  # a suspended generator keeps its locals
        assert next(steps) > 0
        try:
            failing()
        except KeyError as exc:
            tb = exc.__traceback__
            assert tb is not None
            while tb.tb_next is not None:
                tb = tb.tb_next
            assert tb.tb_frame.f_locals["kept"].name == "traceback"
    finally:
        _native.profile_uninstall()
