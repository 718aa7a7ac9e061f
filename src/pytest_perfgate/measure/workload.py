"""What a measurement runs: a :class:`Workload`, and the workloads of pytest-benchmark's two entry
points (``benchmark(fn, ...)`` and ``benchmark.pedantic(...)``), built with pytest-benchmark's own
argument checks. Pure: the paired A/B worker times workloads in its controller's rounds, and the
counted mode counts them (instructions, allocations); both take them from pytest-benchmark's
fixture with :func:`intercept_benchmark`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import timing


@dataclass(frozen=True)
class Workload:
    """What the rounds of one test call. ``prepare`` (unmeasured, before each round) gives the
    round's call and what to run after it (pytest-benchmark's ``setup`` / ``teardown``): such a
    round is one call. ``loops``: a fixed loop count instead of calibration."""

    call: Callable[[], Any]
    prepare: Callable[[], tuple[Callable[[], Any], Callable[[], None]]] | None = None
    loops: int | None = None

    def first(self) -> Any:
        if self.prepare is None:
            return self.call()
        call, after = self.prepare()
        try:
            return call()
        finally:
            after()

    def calibrate(self, min_round_time: float) -> int:
        if self.prepare is not None:
            return 1
        if self.loops is not None:
            return self.loops
        return timing.calibrate(self.call, min_round_time)


def call_workload(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Workload:
    """``benchmark(fn, *args, **kwargs)``'s workload."""
    return Workload((lambda: fn(*args, **kwargs)) if (args or kwargs) else fn)


def pedantic_workload(
    target: Callable[..., Any],
    args: Any = (),
    kwargs: Any = None,
    setup: Any = None,
    teardown: Any = None,
    rounds: int = 1,
    warmup_rounds: int = 0,
    iterations: int = 1,
) -> Workload:
    """``benchmark.pedantic(...)``'s workload, its arguments checked as pytest-benchmark checks
    them (same exceptions, same words). With ``setup`` a round is one call between ``setup`` (which
    may return the ``(args, kwargs)``) and ``teardown``."""
    kwargs = {} if kwargs is None else kwargs
    for name, value, least in (
        ("iterations", iterations, 1),
        ("rounds", rounds, 1),
        ("warmup_rounds", warmup_rounds, 0),
    ):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"Must have positive int for `{name}`.")
    if iterations > 1 and setup:
        raise ValueError("Can't use more than 1 `iterations` with a `setup` function.")
    if setup is None:
        return Workload(lambda: target(*args, **kwargs))

    def prepare() -> tuple[Callable[[], Any], Callable[[], None]]:
        call_args, call_kwargs = args, kwargs
        made = setup()
        if made:
            if args or kwargs:
                raise TypeError("Can't use `args` or `kwargs` if `setup` returns the arguments.")
            call_args, call_kwargs = made
        after = (lambda: teardown(*call_args, **call_kwargs)) if teardown is not None else (lambda: None)
        return (lambda: target(*call_args, **call_kwargs)), after

    return Workload(target, prepare=prepare)


def is_pytest_benchmark(value: object) -> bool:
    """Whether ``value`` is pytest-benchmark's fixture (its entry points can be intercepted)."""
    return type(value).__module__.startswith("pytest_benchmark") and hasattr(value, "_raw_pedantic")


def intercept_benchmark(fixture: Any, run: Callable[[Workload, Callable[[], Any]], Any]) -> None:
    """Route pytest-benchmark's ``benchmark(...)`` and ``benchmark.pedantic(...)`` on this fixture
    instance through ``run(workload, own)``: ``workload`` is what the call measures, ``own`` runs
    pytest-benchmark's own measurement of it; what ``run`` returns is the call's result. The
    fixture keeps its own checks (used once, ``pedantic``'s arguments)."""
    raw, raw_pedantic = fixture._raw, fixture._raw_pedantic

    def routed_raw(function_to_benchmark: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        workload = call_workload(function_to_benchmark, *args, **kwargs)
        return run(workload, lambda: raw(function_to_benchmark, *args, **kwargs))

    def routed_pedantic(target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        workload = pedantic_workload(target, *args, **kwargs)
        return run(workload, lambda: raw_pedantic(target, *args, **kwargs))

    fixture._raw = routed_raw
    fixture._raw_pedantic = routed_pedantic
