"""Race option values: small parsers (argparse ``type=``) and marker validation (pure)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import RaceError
from ..options import OptionTable, choice, positive_duration, positive_int, whole_number

if TYPE_CHECKING:
    from .token import ReplayToken

#: the strategies' names (those of :mod:`.strategies`, which is imported on use only: the plugin
#: declares these options in every pytest session)
STRATEGIES = ("random", "pct", "exhaustive")


def replay_token(text: str) -> ReplayToken:
    from .token import decode  # on use: the plugin declares this option in every session

    try:
        return decode(text)
    except RaceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: ``--perfgate-race-<name>`` flags with ini keys (rows of the core's option table); an unset
#: option (None) leaves :class:`~pytest_perfgate.race.runner.RaceConfig`'s default in place
RACE_OPTIONS: OptionTable = (
    (
        "race_strategy",
        choice(*STRATEGIES, what="race strategy"),
        None,
        "NAME",
        f"default race strategy ({', '.join(STRATEGIES)}; default random)",
    ),
    ("race_schedules", positive_int, None, "N", "default number of race schedules per race.run (default 300)"),
    ("race_seconds", positive_duration, None, "DURATION", "default time budget per race.run, e.g. 30s (default 60s)"),
    (
        "race_seed",
        whole_number(0),
        None,
        "N",
        "race seed; on the command line it overrides markers and race.run (rotate it in CI)",
    ),
)

#: command line only: an ini key would replay one token across a whole suite
REPLAY_HELP = "replay exactly the failing race schedule printed as TOKEN (with that test's node id)"


#: marker keyword -> (check, accepted forms)
_MARKER_ARGS: dict[str, tuple[Any, str]] = {
    "strategy": (lambda v: isinstance(v, str) and v in STRATEGIES, " or ".join(repr(s) for s in STRATEGIES)),
    "schedules": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0"),
    "depth": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "preemption_bound": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
        "a whole number >= 0 or None",
    ),
    "seconds": (
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
        "a positive number of seconds or None",
    ),
    "hang_timeout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "seconds > 0"),
    "schedule_timeout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "seconds > 0"),
    "shrink": (lambda v: isinstance(v, bool), "True or False"),
}


def marker_kwargs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``@pytest.mark.race(...)`` arguments; a bad one is a :class:`RaceError`."""
    accepted = ", ".join(_MARKER_ARGS)
    if args:
        raise RaceError(f"race marker takes keyword arguments only ({accepted}); got positional {args!r}")
    for key, value in kwargs.items():
        if key not in _MARKER_ARGS:
            raise RaceError(f"race marker: unknown argument {key}={value!r}; accepted: {accepted}")
        check, forms = _MARKER_ARGS[key]
        if not check(value):
            raise RaceError(f"race marker: {key}={value!r} is not accepted; expected {forms}")
    return dict(kwargs)
