"""``multiview``: the default detector, several calibrated views per feature, max over features.

One pass, causal, bounded state: per feature a ``SeriesViews`` (level, jump, variance change, and, once a
daily or weekly period is evident from the timestamps, the residual against the same slot one period ago
and against a per-slot profile), each view calibrated against the key's own history.
"""

from __future__ import annotations

import math
from typing import Any

from anomstream.detect.calibration import log10_upper_tail, score_of_log10p
from anomstream.detect.detector import Detector, Explanation, Features, replacement_contributions
from anomstream.detect.views import Config, Peek, SeriesViews
from anomstream.wire.records import Expected


class MultiView(Detector):
    """Calibrated multi-view detector for univariate and multivariate metrics (the built-in default).

    Scores are Numenta's log scale of the tail probability (``-log10(p) / 10``): 0.5 is p = 1e-5, 1.0 is
    p ≤ 1e-10 (a value outside the range seen so far). The winning feature and view are named in alerts.

    Parameters
    ----------
    band
        Width of the expected band in alerts, in residual standard deviations.
    periods_s
        Candidate seasonal periods in seconds (daily and weekly); a period is used only once evident.

    Examples
    --------
    >>> import math, random
    >>> rng, det = random.Random(0), MultiView()
    >>> for i in range(500):
    ...     det.learn_one({"cpu": 50 + 5 * math.sin(i / 10) + rng.gauss(0, 1)}, t=i * 300.0)
    >>> det.score_one({"cpu": 52.0}, t=500 * 300.0) < 0.3 < 0.9 < det.score_one({"cpu": 90.0}, t=500 * 300.0)
    True
    >>> det.log10p_one({"cpu": 90.0}, t=500 * 300.0)[1]
    'cpu.range'
    """

    name = "multiview"
    summary = "level, jump, variance and seasonal views per feature, each calibrated; range rule (default)"
    calibrated = True

    def __init__(self, band: float = 3.0, periods_s: tuple[float, ...] = (86_400.0, 604_800.0)) -> None:
        self.band = band
        self.periods_s = tuple(periods_s)

    @property
    def _features(self) -> dict[str, SeriesViews]:
        try:
            return self.__dict__["_views"]  # type: ignore[no-any-return]  # lazily created state
        except KeyError:
            views: dict[str, SeriesViews] = {}
            self.__dict__["_views"] = views
            self.__dict__["_cfg"] = Config(periods=self.periods_s)
            return views

    def _peeks(self, x: Features, t: float | None) -> dict[str, Peek]:
        # The scorer peeks a point (to judge it) and then learns the same point: the memo of the last
        # peek saves learning from computing every view a second time (a third of this detector's cost).
        # It holds only while nothing was learned since; learn_one clears it and pickles leave it out.
        memo = self.__dict__.get("_memo")
        if memo is not None and memo[1] == t and memo[0] == x:
            return memo[2]  # type: ignore[no-any-return]  # (x, t, peeks), set just below
        when = 0.0 if t is None else t
        feats = self._features
        peeks = {name: feats[name].peek(float(v), when) for name, v in x.items() if name in feats}
        self.__dict__["_memo"] = (dict(x), t, peeks)
        return peeks

    def log10p_one(self, x: Features, t: float | None = None) -> tuple[float, str]:
        """(log10 tail probability, "feature.view") of the most unusual feature of ``x``."""
        best, winner = 0.0, ""
        for name, pk in self._peeks(x, t).items():
            if pk.log10p < best:
                best, winner = pk.log10p, f"{name}.{pk.winner}"
        return best, winner

    def score_one(self, x: Features, t: float | None = None) -> float:
        """Calibrated score in [0, 1] (no mutation)."""
        return score_of_log10p(self.log10p_one(x, t)[0])

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """Per feature, the standard-normal deviation its tail probability stands for (0: unseen)."""
        peeks = self._peeks(x, t)
        return {name: _z_of_log10p(peeks[name].log10p) if name in peeks else 0.0 for name in x}

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Commit ``x``: every feature's views and calibrators learn it (new features start lazily)."""
        when = 0.0 if t is None else t
        feats = self._features
        cfg: Config = self.__dict__["_cfg"]
        peeks = self._peeks(x, t) if "_memo" in self.__dict__ else {}
        self.__dict__.pop("_memo", None)
        for name, value in x.items():
            views = feats.get(name)
            if views is None:
                views = feats[name] = SeriesViews(cfg)
            pk = peeks.get(name)
            views.commit(float(value), when, views.peek(float(value), when) if pk is None else pk)

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Expected value and band per feature; contributions by how unusual each feature is."""
        when = 0.0 if t is None else t
        feats = self._features
        peeks = self._peeks(x, t)
        expected = {}
        for name in peeks:
            mean, low, high = feats[name].expected(when, self.band)
            expected[name] = Expected(mean=mean, low=low, high=high)
        weights = {name: -pk.log10p for name, pk in peeks.items()}
        if not any(w > 0 for w in weights.values()):
            baseline = {name: band.mean for name, band in expected.items()}
            return Explanation(replacement_contributions(self, x, baseline, t), expected)
        total = sum(max(w, 0.0) for w in weights.values())
        contributions = {name: max(weights.get(name, 0.0), 0.0) / total for name in x}
        return Explanation(contributions, expected)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_memo", None)  # a cache of the last peek, not state
        return state


def _z_of_log10p(log10p: float) -> float:
    """The upper-tail z whose probability is ``10**log10p`` (bisection; 0 for p ≥ 0.5)."""
    if log10p >= math.log10(0.5):
        return 0.0
    lo, hi = 0.0, 40.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if log10_upper_tail(mid) > log10p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
