"""JSON lines between the ``perfgate ab`` controller and its two pytest workers, over a pair of
pipes per worker (the workers' stdout and stderr go to log files, never into the protocol).

Worker to controller: ``hello``, ``collected``, ``ready`` (a timed call waits for orders),
``calibrated``, ``round``, ``failed`` (the call raised in a measured round or in calibration),
``profile`` (in a profiling session: a timed call's CPU profile instead of rounds), ``end`` (a
test finished), ``finished``. Controller to worker: ``run``
(the tests to run, in order), ``calibrate``, ``round``, ``done``, ``release``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import time
from enum import Enum
from typing import Any

from ..errors import ChannelClosed, ChannelTimeout

#: one JSON line decoded: ``type`` (a :class:`MessageType`) says which message, the other keys are its fields
Message = dict[str, Any]


class MessageType(str, Enum):
    """The ``type`` of a message."""

    # worker to controller
    HELLO = "hello"
    COLLECTED = "collected"
    READY = "ready"
    CALIBRATED = "calibrated"
    ROUND = "round"  # also controller to worker: run one
    FAILED = "failed"
    PROFILE = "profile"
    END = "end"
    FINISHED = "finished"
    # controller to worker
    RUN = "run"
    CALIBRATE = "calibrate"
    DONE = "done"
    RELEASE = "release"


PROTOCOL_VERSION = 4

#: environment variables the controller sets for a worker
ENV_FDS = "PERFGATE_AB_FDS"  # "<read fd>,<write fd>"
ENV_SIDE = "PERFGATE_AB_SIDE"
ENV_FOREIGN = "PERFGATE_AB_FOREIGN"  # a directory whose modules this side must not import
ENV_WHOLE_CALLS = "PERFGATE_AB_WHOLE_CALLS"  # "0": tests without perf or benchmark are not timed
ENV_PAD = "PERFGATE_AB_PAD"  # padding of random length: each worker's environment has its own size
#: set (to seconds) in a profiling session: each timed call is profiled that long, not timed in rounds
ENV_PROFILE = "PERFGATE_AB_PROFILE"
#: the profiler of a profiling session: "instructions" (counted by function under callgrind) or "cpu"
ENV_PROFILER = "PERFGATE_AB_PROFILER"
PROFILER_INSTRUCTIONS = "instructions"
PROFILER_CPU = "cpu"


class Channel:
    """One end of the protocol: ``send`` a message, ``receive`` the next one with a deadline."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write = os.fdopen(write_fd, "w", encoding="utf-8", buffering=1)
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(read_fd, selectors.EVENT_READ)

    def send(self, kind: MessageType | str, **fields: Any) -> None:
        try:
            self._write.write(json.dumps({"type": kind, **fields}, allow_nan=False) + "\n")
            self._write.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ChannelClosed(f"the other side closed the channel ({exc})") from None

    def receive(self, timeout: float | None = None) -> Message:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._selector.select(wait):
                raise ChannelTimeout(f"no message within {timeout:g}s")
            chunk = os.read(self._read_fd, 1 << 16)
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict) or "type" not in message:
            raise ChannelClosed(f"unexpected message {line[:200]!r}")
        return message

    def close(self) -> None:
        self._selector.close()
        for close in (self._write.close, lambda: os.close(self._read_fd)):
            with contextlib.suppress(OSError):
                close()

    @classmethod
    def from_environment(cls) -> Channel | None:
        value = os.environ.get(ENV_FDS)
        if not value:
            return None
        read_fd, write_fd = (int(part) for part in value.split(","))
        return cls(read_fd, write_fd)
