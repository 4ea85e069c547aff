"""The dead-letter brake: a ratio limit over a full window, a consecutive limit, and no false trips."""

from __future__ import annotations

import random

import pytest

from anomstream.errors import AnomstreamError, DeadLetterLimitError
from anomstream.stream.deadletters import DeadLetterBrake, DeadLetterPolicy


def test_ratio_limit_waits_for_a_full_window() -> None:
    """All-bad records do not trip the ratio limit until the window is full, then the next one does."""
    brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=0.5, window=10, max_consecutive=1000))
    for _ in range(9):
        brake.record(True)
    with pytest.raises(DeadLetterLimitError, match=r"10 of the last 10 records dead-lettered \(limit 50%\)"):
        brake.record(True)


def test_ratio_limit_is_strictly_above_the_ratio() -> None:
    """Exactly ``max_ratio`` of a full window is tolerated; one more bad record in the window trips."""
    brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=0.5, window=10, max_consecutive=1000))
    for bad in [True, False] * 5:
        brake.record(bad)
    brake.record(False)  # the oldest (bad) record slides out: 4 of 10
    brake.record(True)  # 5 of 10
    brake.record(True)  # a bad record slides out as one comes in: still 5 of 10
    with pytest.raises(DeadLetterLimitError, match="6 of the last 10"):
        brake.record(True)


def test_ratio_window_slides() -> None:
    """Bad records that slid out of the window no longer count against the ratio."""
    brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=0.3, window=10, max_consecutive=1000))
    for _ in range(3):
        brake.record(True)
    for _ in range(7):
        brake.record(False)  # window full: 3 of 10, at the limit
    for _ in range(3):
        brake.record(False)  # the three bad ones leave the window
    for _ in range(3):
        brake.record(True)  # back to 3 of 10
    with pytest.raises(DeadLetterLimitError):
        brake.record(True)


def test_consecutive_limit() -> None:
    """``max_consecutive`` bad records in a row trip the brake; a good record resets the run."""
    brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=1.0, window=1000, max_consecutive=3))
    for bad in (True, True, False, True, True, False):
        brake.record(bad)
    assert brake.consecutive == 0
    brake.record(True)
    brake.record(True)
    assert brake.consecutive == 2
    with pytest.raises(DeadLetterLimitError, match=r"3 consecutive records dead-lettered \(limit 3\)"):
        brake.record(True)


def test_consecutive_limit_trips_before_window_fills() -> None:
    """The consecutive limit does not wait for the ratio window to fill."""
    brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=0.99, window=10_000, max_consecutive=5))
    for _ in range(4):
        brake.record(True)
    with pytest.raises(DeadLetterLimitError, match="5 consecutive"):
        brake.record(True)


@pytest.mark.parametrize("bad_share", [0.0, 0.05, 0.5, 0.9])
def test_healthy_mix_never_trips(bad_share: float) -> None:
    """A stream whose bad share stays well below the limits never trips the default policy."""
    brake = DeadLetterBrake(DeadLetterPolicy())
    rng = random.Random(17)
    for _ in range(20_000):
        brake.record(rng.random() < bad_share)


def test_limit_error_is_an_anomstream_error_with_its_own_exit_code() -> None:
    """The brake's error belongs to the anomstream hierarchy and maps to exit code 3."""
    assert issubclass(DeadLetterLimitError, AnomstreamError)
    assert DeadLetterLimitError.exit_code == 3


def test_default_policy() -> None:
    """By default: 95 % of a 2000-record window, or 2000 in a row."""
    assert DeadLetterPolicy() == DeadLetterPolicy(max_ratio=0.95, window=2000, max_consecutive=2000)
