"""The paired A/B gate (``perfgate ab``): the base revision and the current tree measured side by
side, round by round, in two pytest worker processes pinned to one CPU.

* :mod:`.schedule` - the pure part: ABBA round order, shared calibration, stopping rule, the
  per-block ratios (:class:`~.schedule.PairedTest`);
* :mod:`.protocol` - JSON lines between the controller and its workers;
* :mod:`.worktree` - the base revision's worktree, the current test files laid over it, the
  optional install step;
* :mod:`.controller` - starts, pins, drives and cleans up the two workers;
* :mod:`.worker` - the pytest plugin inside each worker (wiring only).
"""
