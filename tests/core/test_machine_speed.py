"""The dry run's machine calibration (src/scenedreamer/machine_speed.py)."""

from __future__ import annotations

import pytest

from scenedreamer import machine_speed


def test_the_workload_is_the_same_work_on_every_call():
    # a fixed input (seeded) and a result that depends on every step: nothing can be skipped
    assert machine_speed.calibration_workload() == machine_speed.calibration_workload()


def test_the_fastest_repeat_counts_in_cpu_seconds(monkeypatch):
    # process_time readings around each repeat: 0.03 s, then 0.02 s (the fastest), then 0.05 s
    readings = iter([1.0, 1.03, 2.0, 2.02, 3.0, 3.05])
    monkeypatch.setattr(machine_speed.time, "process_time", lambda: next(readings))
    monkeypatch.setattr(machine_speed, "calibration_workload", lambda: 0.0)
    assert machine_speed.calibration_cpu_seconds(3) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="repeats"):
        machine_speed.calibration_cpu_seconds(0)


def test_the_slowdown_is_the_ratio_to_the_reference_box(monkeypatch):
    machine_speed.slowdown_against_reference.cache_clear()
    monkeypatch.setattr(machine_speed, "calibration_cpu_seconds",
                        lambda: 3.0 * machine_speed.REFERENCE_CPU_SECONDS)
    try:
        assert machine_speed.slowdown_against_reference() == pytest.approx(3.0)
    finally:
        machine_speed.slowdown_against_reference.cache_clear()


def test_a_real_calibration_is_positive_and_cached():
    machine_speed.slowdown_against_reference.cache_clear()
    first = machine_speed.slowdown_against_reference()
    assert first > 0
    assert machine_speed.slowdown_against_reference() == first        # measured once per process
    machine_speed.slowdown_against_reference.cache_clear()
