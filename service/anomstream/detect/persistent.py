"""Per-view calibration with persistence: a detector's views, each against its own history.

A view speaks only when improbable on several consecutive points (``collective`` judges its views so).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping

from anomstream.detect.calibration import FLOOR_LOG10P, Likelihood

_HUGE = 1e300  # a view this large (or infinite) reports the floor probability and is never learned
_LEARN_SD = 3.0  # calibrators learn a view's value at most this many of their sd above their mean


class PersistentViews:
    """A calibrator per view, the last verdicts of each, and the Bonferroni-corrected smallest p.

    Each view's calibrator is a Gaussian of ``log1p`` of the view over the key's history (``Likelihood``
    with a window of one point, from ``min_history`` points on); values beyond its mean + 3 sd are learned
    as that edge, so an incident widens the norm only slowly. A view counts only when it was improbable on
    each of the last ``persist`` points, and the smallest p is multiplied by the number of views.

    Examples
    --------
    >>> pv = PersistentViews(persist=2, min_history=50)
    >>> for i in range(200):
    ...     pv.learn({"a": float(i % 5) / 5, "b": 0.5})
    >>> pv.judge({"a": 40.0, "b": 0.5})[0] > -2   # one extreme point: the previous one was normal
    True
    >>> pv.learn({"a": 40.0, "b": 0.5})
    >>> lp, view, _ = pv.judge({"a": 40.0, "b": 0.5})
    >>> lp < -4, view
    (True, 'a')
    """

    __slots__ = ("cals", "min_history", "past", "persist")

    def __init__(self, persist: int = 2, min_history: int = 100) -> None:
        self.persist, self.min_history = persist, min_history
        self.cals: dict[str, Likelihood] = {}
        self.past: dict[str, collections.deque[float]] = {}

    def __getstate__(self) -> tuple[object, ...]:
        return self.cals, self.min_history, self.past, self.persist

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.cals, self.min_history, self.past, self.persist = state  # type: ignore[assignment]  # own layout

    def judge(self, views: Mapping[str, float]) -> tuple[float, str, dict[str, float]]:
        """(log10 p held over ``persist`` points, winning view, each view's log10 p on this point alone)."""
        best, winner, now = 0.0, "", {}
        for view, raw in views.items():
            cal = self.cals.get(view)
            if cal is None:
                continue
            lp = now[view] = FLOOR_LOG10P if raw >= _HUGE else cal.peek(math.log1p(raw))
            past = self.past.get(view)
            held = max(lp, *past) if past else lp
            if held < best:
                best, winner = held, view
        if winner:
            best = min(0.0, best + math.log10(len(self.cals)))
        return best, winner, now

    def learn(self, views: Mapping[str, float]) -> None:
        """Learn one point's views; each view remembers its verdict for the next ``persist - 1`` points."""
        _, _, now = self.judge(views)
        for view, raw in views.items():
            cal = self.cals.get(view)
            if cal is None:
                cal = self.cals[view] = Likelihood(window=1, min_n=self.min_history)
                self.past[view] = collections.deque(maxlen=max(self.persist - 1, 0))
            if self.persist > 1:
                self.past[view].append(now.get(view, 0.0))
            if raw < _HUGE:
                cal.commit(_winsorised(cal, math.log1p(raw)))


def _winsorised(cal: Likelihood, value: float) -> float:
    """``value`` capped at the calibrator's mean + ``_LEARN_SD`` sd: incidents widen the norm only slowly."""
    if cal.n < cal.min_n:
        return value
    return min(value, cal.mean + _LEARN_SD * max(math.sqrt(cal.var), cal.sd_floor))
