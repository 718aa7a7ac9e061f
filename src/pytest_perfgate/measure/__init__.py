"""Measurement: calibrated timing loops, traced memory, run metadata. Pure, pytest-free."""
