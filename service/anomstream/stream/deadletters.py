"""The dead-letter brake: stop the worker when a bad deploy would divert the whole stream to the DLQ."""

from __future__ import annotations

import collections
import dataclasses

from anomstream.errors import DeadLetterLimitError


@dataclasses.dataclass(frozen=True)
class DeadLetterPolicy:
    """Limits on dead-lettering: a ratio over a sliding window of records, and a consecutive run."""

    max_ratio: float = 0.95
    window: int = 2000
    max_consecutive: int = 2000


class DeadLetterBrake:
    """Counts outcomes and raises ``DeadLetterLimitError`` once a limit of the policy is crossed.

    Examples
    --------
    >>> brake = DeadLetterBrake(DeadLetterPolicy(max_ratio=0.5, window=10, max_consecutive=100))
    >>> for bad in [True, False] * 5:
    ...     brake.record(bad)                      # 50 %: at the limit, not past it
    >>> brake.record(True)                         # the oldest (bad) one leaves the window: still 5
    >>> brake.record(True)
    Traceback (most recent call last):
    ...
    anomstream.errors.DeadLetterLimitError: 6 of the last 10 records dead-lettered (limit 50%)
    """

    def __init__(self, policy: DeadLetterPolicy) -> None:
        self.policy = policy
        self._recent: collections.deque[bool] = collections.deque(maxlen=policy.window)
        self._bad_in_window = 0
        self.consecutive = 0

    def record(self, dead_lettered: bool) -> None:
        """Count one record's outcome; raise when the policy says stop."""
        if not dead_lettered and not self._bad_in_window:  # the common case: nothing to recount
            self._recent.append(False)
            self.consecutive = 0
            return
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._bad_in_window -= 1
        self._recent.append(dead_lettered)
        self._bad_in_window += dead_lettered
        self.consecutive = self.consecutive + 1 if dead_lettered else 0
        if self.consecutive >= self.policy.max_consecutive:
            raise DeadLetterLimitError(
                f"{self.consecutive} consecutive records dead-lettered (limit {self.policy.max_consecutive})"
            )
        full = len(self._recent) == self.policy.window
        if full and self._bad_in_window > self.policy.max_ratio * self.policy.window:
            raise DeadLetterLimitError(
                f"{self._bad_in_window} of the last {self.policy.window} records dead-lettered "
                f"(limit {self.policy.max_ratio:.0%})"
            )
