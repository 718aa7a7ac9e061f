"""The argparse ``type=`` parsers of options.py that read values with units: thin wrappers over
:mod:`pytest_perfgate.units` (its message is the usage error, word for word)."""

from __future__ import annotations

import argparse

import pytest

from pytest_perfgate.options import duration, positive_duration, threshold
from pytest_perfgate.units import parse_duration, parse_ratio, parse_size


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), (" 30s ", 30.0), ("1h30m", 5400.0), ("2", 2.0)])
def test_duration(text: str, seconds: float) -> None:
    assert duration(text) == pytest.approx(seconds)
    assert positive_duration(text) == pytest.approx(seconds)


def test_duration_refused_with_the_units_message() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        duration("soon")
    assert str(info.value).startswith("'soon' is not a valid time; accepted: a number of seconds or a string")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'0' must be longer than 0 \(a time budget, e.g. 30s\)$"):
        positive_duration("0")


@pytest.mark.parametrize(
    ("below", "text", "message"),
    [
        (None, "ten percent", "'ten percent' is not a valid ratio"),
        (None, "-5%", "'-5%' is not a valid ratio (negative)"),
        (1.0, "100%", "'100%' must be above 0 and below 100%"),
        (None, "0", "'0' must be above 0"),
    ],
)
def test_threshold_refused(below: float | None, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        threshold(below)(text)
    assert str(info.value).startswith(message)


def test_threshold_accepted() -> None:
    assert threshold(0.5)("5%") == pytest.approx(0.05)
    assert threshold()("0.25") == pytest.approx(0.25)


def test_the_shared_parsers() -> None:
    assert parse_duration("250us") == pytest.approx(250e-6)
    assert parse_size("1.5 GiB") == 1.5 * 2**30
    assert parse_ratio("40%", upper=0.5) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"'60%' is not a valid ratio \(at most 50%\)"):
        parse_ratio("60%", upper=0.5)
