"""Instruction counts by Python function, under callgrind: a profile that is counted, not sampled.

callgrind charges instructions to C functions, and every Python function runs in the same one (the
interpreter's eval loop). The extension's trampolines (``_native.profile_install``, see
``_native.c``) give each code object an entry of its own, named by its address, and the process
runs with every named function skipped (:data:`~.callgrind.FUNCTION_SKIPS`): what the eval loop
and the C functions it calls cost is charged to the Python function whose frame did the work. The
result is a :class:`~pytest_perfgate.evidence.CpuProfile` with ``clock="instructions"``: own and
cumulative instructions per function, exact (the canonical heap makes them independent of what ran
before), so two of them differ only where the code or its data differ.

Own instructions of a Python function include the C code it calls (``isinstance``, ``dict``
lookups, a C extension's functions): that is the function's own work as a reader of its source
sees it. A function that calls back into Python (``sorted(key=...)``) is charged with the calls'
machinery, the callback with its own frames. The trampolines change how the interpreter calls
(no inlined Python-to-Python calls), so these counts are larger than :func:`~.callgrind.count_call`'s
and are never compared with them.

Pure parts: :func:`parse_function_costs` (a dump's costs per function). The child's part:
:func:`count_functions`. Needs CPython 3.11 or 3.12 on x86-64.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from ..errors import MeasurementError, PerfgateError
from ..evidence import INSTRUCTIONS_CLOCK, CpuProfile, FunctionTime
from .callgrind import ENV_FUNCTIONS, dumps_of, measured_call, next_tag, under_callgrind

#: the profiler's name in a :class:`CpuProfile`
PROFILER = "callgrind"
#: functions kept in a profile's table (the diff ranks a function missing from a full table
#: against its last row)
KEPT = 100
#: the name of callgrind's recursion copies: ``fn'2``
_RECURSION = re.compile(r"'\d+$")


@dataclass(frozen=True)
class FunctionCosts:
    """A callgrind dump's instructions per function (names as callgrind wrote them, a recursion
    copy's ``'N`` removed)."""

    #: instructions executed in the function itself (its skipped callees included)
    own: Mapping[str, int]
    #: instructions of the calls into the function from other functions (recursion counted once)
    inclusive: Mapping[str, int]
    #: calls into the function, from anywhere (recursive calls included)
    calls: Mapping[str, int]
    #: (caller, callee) -> instructions of the caller's calls into that callee
    edges: Mapping[tuple[str, str], int]
    #: the dump's total
    total: int


def _cost(line: str) -> int:
    """The first event (``Ir``) of a cost line (``position cost...``; a missing cost is 0)."""
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 else 0


def parse_function_costs(text: str, *, source: str = "<callgrind dump>") -> FunctionCosts:
    """The instructions per function of a callgrind dump (its first event, ``Ir``; compressed
    names ``(id) name`` or plain). Pure; :class:`MeasurementError` naming ``source`` when it is
    not a callgrind dump."""
    if not text.startswith("# callgrind format") and "\nevents:" not in text:
        raise MeasurementError(f"{source} is not a callgrind dump")
    names: dict[str, str] = {}
    own: Counter[str] = Counter()
    edges: Counter[tuple[str, str]] = Counter()
    calls: Counter[str] = Counter()
    total = 0
    function = callee = ""
    inclusive_next = False

    def name(value: str) -> str:
        value = value.strip()
        if value.startswith("("):
            key, _, rest = value.partition(")")
            if rest.strip():
                names[key] = rest.strip()
            value = names.get(key, value)
        return _RECURSION.sub("", value)

    for line in text.splitlines():
        if not line:
            continue
        first = line[0]
        if first.isdigit() or first in "+-*":
            if inclusive_next:
                edges[(function, callee)] += _cost(line)
                inclusive_next = False
            else:
                own[function] += _cost(line)
        elif line.startswith("fn="):
            function = name(line[3:])
        elif line.startswith("cfn="):
            callee = name(line[4:])
        elif line.startswith("calls="):
            calls[callee] += int(line[6:].split()[0])
            inclusive_next = True
        elif line.startswith(("totals:", "summary:")):
            fields = line.partition(":")[2].split()
            total = int(fields[0]) if fields else 0
    inclusive: Counter[str] = Counter()
    for (caller, target), cost in edges.items():
        if caller != target:
            inclusive[target] += cost
    return FunctionCosts(own=dict(own), inclusive=dict(inclusive), calls=dict(calls), edges=dict(edges), total=total)


def unavailable(valgrind: str = "valgrind") -> str | None:
    """Why instructions by function cannot be counted here (no valgrind, another platform, the
    extension without valgrind's headers or trampolines), or None when they can."""
    from . import native
    from .callgrind import find_valgrind

    try:
        find_valgrind(valgrind)
        module = native()
    except PerfgateError as exc:
        return str(exc)
    if not module.have_client_requests():
        return "perfgate's native extension was built without valgrind's headers (reinstall it after valgrind)"
    if not module.have_trampolines():
        return "instructions by Python function need CPython 3.11 or 3.12 on x86-64 (Linux)"
    return None


def address_name(address: int) -> str:
    """How callgrind names code without a symbol at ``address``."""
    return f"0x{address:016x}"


def _qualname(code: CodeType) -> str:
    return str(getattr(code, "co_qualname", code.co_name))


def profile_of(costs: FunctionCosts, code_at: Mapping[str, CodeType], *, keep: int = KEPT) -> CpuProfile:
    """The profile of one counted call from its dump's costs and the trampolines' code objects
    (callgrind's name of each trampoline -> its code object). Code without a symbol that is not a
    trampoline (a stripped library's function, a PLT stub) is charged to the Python function that
    called it; what ran outside every Python frame (the harness around the call) is left out."""
    by_key: dict[tuple[str, str], list[int]] = {}
    code_names = {name: (_qualname(c), f"{c.co_filename}:{c.co_firstlineno}") for name, c in code_at.items()}
    unresolved: Counter[str] = Counter()
    for (caller, callee), cost in costs.edges.items():
        if caller in code_names and callee not in code_names and callee.startswith("0x"):
            unresolved[caller] += cost
    for name, key in code_names.items():
        own = costs.own.get(name, 0) + unresolved.get(name, 0)
        row = by_key.setdefault(key, [0, 0, 0])
        row[0] += costs.calls.get(name, 0)
        row[1] += own
        row[2] += max(costs.inclusive.get(name, 0), own)
    rows = sorted(
        (
            FunctionTime(function, location, calls, float(own), float(cumulative))
            for (function, location), (calls, own, cumulative) in by_key.items()
            if own or cumulative
        ),
        key=lambda row: (-row.own, row.function, row.location),
    )
    total = float(sum(row.own for row in rows))
    return CpuProfile(
        calls=1,
        total=total,
        tree=(),
        top=tuple(rows[:keep]),
        profiler=PROFILER,
        note="instructions by Python function (own: the function's frames and the C code they call), counted",
        clock=INSTRUCTIONS_CLOCK,
    )


def count_functions(
    fn: Callable[[], Any],
    *,
    name: str,
    warmup: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    canonical_heap: bool = True,
    keep_dump: bool = False,
) -> CpuProfile:
    """The instructions of one call of ``fn`` by Python function, in a process started by
    :func:`~.callgrind.valgrind_command` with ``functions=True``: the trampolines installed, ``warmup``
    calls, then one call counted as :func:`~.callgrind.count_call` counts it (collector off, a fresh
    canonical heap epoch), inside the extension's root. :class:`MeasurementError` when this
    process cannot (not under that command, another platform); an exception from ``fn`` propagates."""
    module, directory = under_callgrind(out_dir)
    if os.environ.get(ENV_FUNCTIONS) != "1":
        raise MeasurementError(
            "instructions by function need callgrind to skip named functions: start the process with "
            "valgrind_command(..., functions=True)"
        )
    try:
        module.profile_install()
    except (NotImplementedError, OSError, RuntimeError) as exc:
        raise MeasurementError(f"instructions by function of {name}: {exc}") from None
    try:
        for _ in range(warmup):
            fn()
        if canonical_heap:
            module.heap_install()
        tag = next_tag()

        def counted() -> None:
            measured_call(module, fn, tag, canonical_heap=canonical_heap)

        module.call_rooted(counted)
        # the harness's own frames are no one's work
        harness = (counted.__code__, measured_call.__code__)
        code_at = {
            address_name(address): code for address, code in module.profile_functions().items() if code not in harness
        }
    finally:
        module.profile_uninstall()
    for path in reversed(dumps_of(directory, os.getpid())):
        text = path.read_text(encoding="utf-8", errors="replace")
        if f"Trigger: Client Request: {tag}\n" in text:
            if not keep_dump:
                path.unlink(missing_ok=True)
            return profile_of(parse_function_costs(text, source=str(path)), code_at)
    raise MeasurementError(f"instructions by function of {name}: callgrind wrote no dump {tag!r} in {directory}")
