"""Call time and pacing: deadlines come from the frame index, scaled by the speed."""

from __future__ import annotations

import itertools
import math

import pytest

from bridge.emulator.twilio.clock import CallClock, check_speed, frame_due
from bridge.errors import InputError


@pytest.mark.parametrize("speed", [1.0, 7.0, 50.0])
def test_frame_deadlines_do_not_accumulate_error(speed: float) -> None:
    clock = CallClock(speed, t0=1000.0)
    # Frame k's wall deadline is computed from k alone: one hour of frames lands exactly
    # where a single multiplication puts it (no sum of 180 000 rounded steps).
    k = 180_000
    assert clock.monotonic_at(frame_due(0.0, k)) == pytest.approx(
        1000.0 + k * 0.02 / speed, abs=1e-9
    )
    deadlines = [clock.monotonic_at(frame_due(2.0, i)) for i in range(1000)]
    steps = {round(b - a, 12) for a, b in itertools.pairwise(deadlines)}
    assert steps == {round(0.02 / speed, 12)}


def test_wall_and_call_time_scale_together() -> None:
    clock = CallClock(20.0, t0=5.0)
    assert clock.wall(10.0) == 0.5
    assert clock.monotonic_at(10.0) == 5.5


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, 1e6, "fast"])
def test_speed_must_be_a_sane_number(bad: object) -> None:
    with pytest.raises(InputError, match="speed"):
        check_speed(bad)  # type: ignore[arg-type]
