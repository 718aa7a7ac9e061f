"""``perf.record(name, value, unit=...)`` reads its unit with :func:`pytest_perfgate.units.record_unit`:
every unit ``units`` knows, with its case rules (issue 17: ``unit="mb"`` or ``"µs"`` was a unitless number)."""

from __future__ import annotations

import pytest

from pytest_perfgate.errors import MeasurementError
from pytest_perfgate.recorder import Recorder
from pytest_perfgate.units import Kind


@pytest.mark.parametrize(
    ("unit", "kind", "value"),
    [("mb", Kind.SIZE, 5e6), ("µs", Kind.TIME, 5e-6), ("μs", Kind.TIME, 5e-6), ("RPS", Kind.RATE, 5.0)],
)
def test_a_unit_units_knows_is_a_unit(unit: str, kind: Kind, value: float) -> None:
    recorder = Recorder()
    recorder.record("figure", 5, unit=unit)
    series = recorder.series["figure"]
    assert (series.kind, series.values, series.unit) == (kind, (pytest.approx(value),), "")


def test_a_time_unit_in_another_case_is_refused() -> None:
    with pytest.raises(MeasurementError) as info:
        Recorder().record("figure", 5, unit="MS")
    assert str(info.value).startswith(
        "perf.record('figure'): unit 'MS' is the time unit 'ms' in another case (time units are case-sensitive); accepted: "
    )


@pytest.mark.parametrize("unit", ["requests", "items"])
def test_a_free_form_label_is_kept(unit: str) -> None:
    recorder = Recorder()
    recorder.record("figure", 5, unit=unit)
    series = recorder.series["figure"]
    assert (series.kind, series.values, series.unit) == (Kind.NUMBER, (5.0,), unit)


def test_the_units_known_before_still_are() -> None:
    recorder = Recorder()
    recorder.record("weight", 3, unit="KB")
    recorder.record("share", 40, unit="%")
    assert (recorder.series["weight"].kind, recorder.series["weight"].values) == (Kind.SIZE, (3000.0,))
    assert (recorder.series["share"].kind, recorder.series["share"].values) == (Kind.RATIO, (0.4,))
