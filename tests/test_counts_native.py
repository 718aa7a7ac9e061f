"""The native extension: allocation counts (exact on constructed cases) and instruction counts
under callgrind end to end (in a subprocess; skipped, with the reason, without valgrind or the
extension's client requests)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pytest_perfgate.counts.allocations import AllocCounts, count_allocations
from pytest_perfgate.errors import MeasurementError

try:
    from pytest_perfgate.counts import _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(
    _native is None,
    reason="pytest_perfgate.counts._native is not built (needs a C compiler and Python's headers: "
    "python setup.py build_ext --inplace)",
)
SRC = Path(__file__).resolve().parent.parent / "src"
POINTER = 8 if sys.maxsize > 2**32 else 4


@needs_native
def test_a_call_that_allocates_nothing_counts_nothing() -> None:
    assert count_allocations(lambda: None) == AllocCounts(blocks=0, bytes=0)


@needs_native
@pytest.mark.parametrize("n", [1, 10, 1000, 100_000])
def test_a_list_of_n_items_adds_n_pointers_in_one_block(n: int) -> None:
    empty = count_allocations(lambda: [None] * 0)
    full = count_allocations(lambda: [None] * n)
    # the same list object, plus one block for its n item pointers (large ones come from the RAW
    # domain through pymalloc: counted once, not twice)
    assert full.blocks == empty.blocks + 1
    assert full.bytes == empty.bytes + n * POINTER


@needs_native
@pytest.mark.parametrize("n", [1, 1000, 1_000_000])
def test_a_bytearray_of_n_bytes_requests_n_plus_one(n: int) -> None:
    empty = count_allocations(lambda: bytearray(0))
    full = count_allocations(lambda: bytearray(n))
    assert full.blocks == empty.blocks + 1
    assert full.bytes == empty.bytes + n + 1


@needs_native
def test_n_objects_are_at_least_n_blocks_and_grow_linearly() -> None:
    def make(n: int) -> Any:
        return lambda: [object() for _ in range(n)]

    small, large = count_allocations(make(1000)), count_allocations(make(2000))
    assert large.blocks - small.blocks >= 1000
    assert large.bytes - small.bytes >= 1000 * sys.getsizeof(object())


@needs_native
def test_a_deterministic_call_counts_the_same_every_time() -> None:
    data = {f"k{i}": [i, str(i)] for i in range(500)}
    counts = {count_allocations(lambda: json.dumps(data)) for _ in range(20)}
    assert len(counts) == 1
    (only,) = counts
    assert only.blocks > 0 and only.bytes > len(json.dumps(data))


@needs_native
def test_the_collector_is_disabled_during_the_call_and_restored() -> None:
    seen: list[bool] = []
    assert gc.isenabled()
    count_allocations(lambda: seen.append(gc.isenabled()))
    assert seen == [False, False] or seen == [True, False]  # warm-up as is, measured call without collector
    assert gc.isenabled()


@needs_native
def test_an_exception_restores_the_allocators() -> None:
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        count_allocations(boom, warmup=0)
    assert not _native.alloc_running()
    assert gc.isenabled()
    assert count_allocations(lambda: None) == AllocCounts(0, 0)


@needs_native
def test_counts_do_not_nest() -> None:
    with pytest.raises(MeasurementError, match="allocation counts do not nest"):
        count_allocations(lambda: count_allocations(lambda: None), warmup=0)
    assert not _native.alloc_running()
    with pytest.raises(RuntimeError, match=r"not running \(alloc_stop without alloc_start\)"):
        _native.alloc_stop()


@needs_native
def test_tracemalloc_started_inside_the_call_discards_the_counts() -> None:
    def start_tracing() -> None:
        tracemalloc.start()

    try:
        with pytest.raises(MeasurementError, match="an allocator was replaced while allocations were counted"):
            count_allocations(start_tracing, warmup=0)
    finally:
        tracemalloc.stop()
    assert not _native.alloc_running()


@needs_native
def test_under_tracemalloc_counts_are_still_exact() -> None:
    tracemalloc.start()
    try:
        assert count_allocations(lambda: bytearray(5000)).bytes - count_allocations(lambda: bytearray(0)).bytes == 5001
    finally:
        tracemalloc.stop()


@needs_native
def test_other_threads_are_counted() -> None:
    def in_a_thread() -> None:
        thread = threading.Thread(target=lambda: bytearray(123_456))
        thread.start()
        thread.join()

    assert count_allocations(in_a_thread).bytes > 123_456


# ----------------------------------------------------------------------------- callgrind end to end

VALGRIND = shutil.which("valgrind")
needs_callgrind = pytest.mark.skipif(
    _native is None or not sys.platform.startswith("linux") or VALGRIND is None or not _native.have_client_requests(),
    reason="instruction counts need Linux, valgrind (apt-get install valgrind) and the native extension built "
    "with valgrind's headers",
)

CHILD = textwrap.dedent(
    """
    import json, sys
    from pytest_perfgate.counts.callgrind import count_call

    def work(n):
        return sorted(str(i) for i in range(n))

    def boom():
        raise ValueError("inside")

    out = {}
    for n in (100, 200):
        out[n] = count_call(lambda: work(n), name=f"work{n}").__dict__
    try:
        count_call(boom, name="boom")
    except ValueError as exc:
        out["boom"] = str(exc)
    out["after"] = count_call(lambda: work(100), name="again").instructions
    out["repeated"] = list(count_call(lambda: work(100), name="repeated", repeat=3).samples)
    print(json.dumps(out, default=dict))
    """
)


def _run_counted(tmp_path: Path, *, cache_sim: bool = False) -> dict[str, Any]:
    from pytest_perfgate.counts.callgrind import valgrind_command

    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = valgrind_command([sys.executable, str(script)], out_dir=tmp_path / "cg", cache_sim=cache_sim)
    env = os.environ | command.env | {"PYTHONPATH": str(SRC)}
    proc = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@needs_callgrind
def test_instruction_counts_agree_across_processes_and_scale_with_the_work(tmp_path: Path) -> None:
    first, second = _run_counted(tmp_path / "a"), _run_counted(tmp_path / "b")
    small, large = first["100"]["instructions"], first["200"]["instructions"]
    # the bar: within 0.1% between separate processes with one hash seed (often exact)
    assert abs(small - second["100"]["instructions"]) <= small / 1000
    assert abs(large - second["200"]["instructions"]) <= large / 1000
    assert 1.6 < large / small < 2.4
    assert first["100"]["estimated_cycles"] is None
    assert first["100"]["events"] == {"Ir": small}
    # an exception inside the measured call propagates, and counting works afterwards
    assert first["boom"] == "inside"
    # later in the same process the heap is in another state: close, not equal (RESULTS-instructions.md)
    assert abs(first["after"] - small) <= small / 100
    assert len(first["repeated"]) == 3
    # the first call after instrumentation is switched on counts ~2% more than the following ones
    # (measured: 132,456 then 130,216 and 130,224): each procedure is stable, they differ
    assert all(abs(sample - small) <= small / 20 for sample in first["repeated"]), (small, first["repeated"])
    # every per-call dump is parsed and deleted; only the end-of-process dump and the log remain
    left = sorted(p.name.split(".")[0] for p in (tmp_path / "a" / "cg").iterdir())
    assert left == ["callgrind", "valgrind"]


@needs_callgrind
def test_estimated_cycles_with_the_cache_simulation(tmp_path: Path) -> None:
    counts = _run_counted(tmp_path, cache_sim=True)["100"]
    events = counts["events"]
    assert counts["instructions"] == events["Ir"]
    assert counts["estimated_cycles"] == events["Ir"] + 10 * (
        events["I1mr"] + events["D1mr"] + events["D1mw"]
    ) + 100 * (events["ILmr"] + events["DLmr"] + events["DLmw"])


@needs_native
def test_counting_instructions_outside_valgrind_says_how_to_start(tmp_path: Path) -> None:
    if not _native.have_client_requests():
        pytest.skip("the extension was built without valgrind's headers")
    from pytest_perfgate.counts.callgrind import count_call

    with pytest.raises(MeasurementError) as info:
        count_call(lambda: None, name="t", out_dir=tmp_path)
    assert str(info.value) == (
        "instruction counts are taken under valgrind's callgrind: this process does not run under valgrind "
        "(start it with the command of pytest_perfgate.counts.callgrind.valgrind_command)"
    )


# ----------------------------------------------------------------------------- the canonical heap

HEAP_CHILD = textwrap.dedent(
    """
    import json, random, sys
    from pytest_perfgate.counts import _native

    # what earlier code leaves: live blocks of sizes that differ between processes
    rng = random.Random(int(sys.argv[1]))
    noise = [b"x" * rng.randrange(1, 2000) for _ in range(rng.randrange(500, 3000))]
    del noise[::3]

    def work():
        kept = [f"item{i}" for i in range(2000)]
        table = {object(): i for i in range(500)}
        grown = bytearray()
        for i in range(3000):
            grown += b"%d," % i
        return kept, table, grown

    def offsets(result):
        kept, table, grown = result
        return [id(o) % 2**21 for o in kept[::97]] + [id(k) % 2**21 for k in list(table)[::53]]

    plain = offsets(work())
    _native.heap_install()
    _native.heap_begin()
    result = work()
    used, live, fallbacks = _native.heap_end()
    canonical = offsets(result)
    kept, table, grown = result
    intact = kept[1999] == "item1999" and len(table) == 500 and grown.endswith(b"2999,")
    del result, kept, table, grown  # blocks of a closed epoch freed later, after it
    _native.heap_begin()
    for _ in range(10_000):
        made = bytes(100)  # made and dropped: the same block every time
    del made, _
    print(json.dumps({"plain": plain, "canonical": canonical, "used": used, "live": live, "fallbacks": fallbacks,
                      "intact": intact, "second": list(_native.heap_end())}))
    """
)


def _heap_child(tmp_path: Path, seed: int) -> dict[str, Any]:
    script = tmp_path / "heap_child.py"
    script.write_text(HEAP_CHILD)
    proc = subprocess.run(
        [sys.executable, str(script), str(seed)], env=os.environ | {"PYTHONPATH": str(SRC), "PYTHONHASHSEED": "0"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@needs_native
@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="the canonical heap needs mmap")
def test_the_canonical_heap_places_a_call_the_same_way_whatever_came_before(tmp_path: Path) -> None:
    first, second = _heap_child(tmp_path, 1), _heap_child(tmp_path, 2)
    # without it, where the call's objects land depends on what the process did before
    assert first["plain"] != second["plain"]
    # with it, every object is at the same offset in its 2 MiB epoch, in both processes
    assert first["canonical"] == second["canonical"]
    assert first["used"] == second["used"] > 0
    assert first["live"] == second["live"] > 2500  # the call's result is still alive at the end
    assert first["fallbacks"] == 0
    assert first["intact"] is True  # grown by realloc, read after the epoch, freed after it
    # freed blocks are reused within an epoch: 10,000 blocks made and dropped take a few blocks' room
    used, live, fallbacks = first["second"]
    assert live == 0 and fallbacks == 0 and 0 < used < 1024


NOISY_COUNT_CHILD = textwrap.dedent(
    """
    import json, random, sys
    from pytest_perfgate.counts.callgrind import count_call

    rng = random.Random(int(sys.argv[1]))
    noise = [b"x" * rng.randrange(1, 2000) for _ in range(rng.randrange(500, 3000))]
    del noise[::3]

    def work():
        counts = {}
        for i in range(3000):
            key = f"k{i % 257}"
            counts[key] = counts.get(key, 0) + i
        return sorted(counts.items()), [str(i) * 3 for i in range(2000)]

    print(json.dumps({
        "pymalloc": count_call(work, name="pymalloc", canonical_heap=False).instructions,
        "canonical": count_call(work, name="canonical").instructions,
        "again": count_call(work, name="again").instructions,
    }))
    """
)


@needs_callgrind
def test_the_canonical_heap_makes_counts_exact_whatever_the_process_did_before(tmp_path: Path) -> None:
    from pytest_perfgate.counts.callgrind import valgrind_command

    script = tmp_path / "noisy.py"
    script.write_text(NOISY_COUNT_CHILD)
    found = []
    for seed in (1, 2, 3):
        command = valgrind_command([sys.executable, str(script), str(seed)], out_dir=tmp_path / f"cg{seed}")
        env = os.environ | command.env | {"PYTHONPATH": str(SRC)}
        proc = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        found.append(json.loads(proc.stdout))
    # exact across processes that left different heaps (on pymalloc they differ by ~0.1% here)
    assert len({run["canonical"] for run in found}) == 1, found
    assert len({run["again"] for run in found}) == 1, found
    # a later call in the same process: within a few hundred instructions (measured: 268 of 11.8M)
    assert abs(found[0]["again"] - found[0]["canonical"]) <= found[0]["canonical"] / 10_000, found


REUSE_CHILD = textwrap.dedent(
    """
    import ctypes, json
    from pytest_perfgate.counts import _native

    def main():  # locals, not module globals (a new global can grow the module's dict in an epoch)
        _native.heap_install()
        places = set()
        cell = ctypes.c_size_t()  # holds an address without keeping an object of the epoch alive
        for _ in range(20_000):  # more epochs than the area has 2 MiB slots (16,384): emptied ones are reused
            _native.heap_begin()
            made = [object() for _ in range(10)]
            cell.value = id(made[0])
            del made
            used, live, fallbacks = _native.heap_end()
            assert live == 0 and fallbacks == 0, (used, live, fallbacks)
            places.add(cell.value)
        _native.heap_begin()
        kept = [object() for _ in range(10)]  # alive after its epoch: the next epoch starts after it
        _native.heap_end()
        _native.heap_begin()
        after = object()
        _native.heap_end()
        print(json.dumps({"places": len(places), "moved": id(after) >> 21 > id(kept[0]) >> 21}))

    main()
    """
)


@needs_native
@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="the canonical heap needs mmap")
def test_an_emptied_epoch_gives_its_addresses_to_the_next_and_a_live_one_keeps_them(tmp_path: Path) -> None:
    script = tmp_path / "reuse.py"
    script.write_text(REUSE_CHILD)
    proc = subprocess.run(
        [sys.executable, str(script)], env=os.environ | {"PYTHONPATH": str(SRC)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"places": 1, "moved": True}
