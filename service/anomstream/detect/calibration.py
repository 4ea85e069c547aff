"""The calibration layer: raw deviations → tail probabilities against the key's own history.

Every detector's views pass through it (the default detector per view, the others via ``Bank`` over
``Detector.deviations``), so thresholds speak in probability (``risk``) whatever the detector.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_LOG10_SQRT_2PI = math.log10(math.sqrt(2.0 * math.pi))

#: Numenta's log score spans 10 decades: p = 1e-10 scores 1, p = 1e-5 scores 0.5.
SCORE_DECADES = 10.0
#: The smallest tail probability reported (log10): what the range rule and infinite deviations give.
FLOOR_LOG10P = -SCORE_DECADES


def log10_upper_tail(z: float) -> float:
    """log10 of the standard normal upper tail P(Z > z), accurate far into the tail.

    Examples
    --------
    >>> round(10 ** log10_upper_tail(1.6448536), 4)
    0.05
    >>> -40 < log10_upper_tail(12.0) < -30
    True
    """
    if z < 5.0:
        return math.log10(max(0.5 * math.erfc(z / _SQRT2), 1e-300))
    # Mills-ratio asymptotic expansion (relative error < 1 % for z >= 5).
    return -z * z / (2.0 * _LN10) - math.log10(z) - _LOG10_SQRT_2PI + math.log10(1.0 - 1.0 / (z * z))


def score_of_log10p(log10p: float) -> float:
    """Numenta's log score: ``-log10(p) / 10`` clipped to [0, 1] (monotone in the tail probability).

    Examples
    --------
    >>> score_of_log10p(-4.0), score_of_log10p(0.0), score_of_log10p(-30.0)
    (0.4, 0.0, 1.0)
    """
    s = -log10p / SCORE_DECADES
    return 0.0 if s <= 0.0 else (1.0 if s > 1.0 else s)


def score_of_risk(risk: float) -> float:
    """The score threshold equivalent to alarming when the tail probability is below ``risk``."""
    return score_of_log10p(math.log10(risk))


def probability_of_score(score: float) -> float:
    """Inverse of ``score_of_log10p``: the tail probability a calibrated score stands for."""
    return float(10.0 ** (-score * SCORE_DECADES))


class Calibrator(Protocol):
    """Turns one stream of raw deviations into tail probabilities (log10), learning as it goes."""

    def peek(self, raw: float) -> float:
        """log10 tail probability of ``raw`` now, without learning it."""

    def commit(self, raw: float) -> None:
        """Learn ``raw``."""


class Likelihood:
    """Numenta's anomaly likelihood with an exponentially weighted long-run Gaussian.

    The raw deviation's short moving average (``window`` points) is compared with a Gaussian of that
    average's long-run history (exponentially weighted, ``alpha`` ≈ 1/8640: a month of 5-minute data);
    the upper-tail probability says how unusual the *recent* behaviour is for this key. Before ``min_n``
    samples it reports p = 1. State: ``window`` + 6 floats.

    Examples
    --------
    >>> import random
    >>> rng, lik = random.Random(1), Likelihood()
    >>> for _ in range(2000):
    ...     lik.commit(abs(rng.gauss(0, 1)))
    >>> lik.peek(0.8) > -1 > -3 > lik.peek(25.0)
    True
    """

    __slots__ = ("alpha", "buf", "filled", "mean", "min_n", "n", "pos", "sd_floor", "total", "var")

    def __init__(
        self, window: int = 5, alpha: float = 1.0 / 8640, min_n: int = 20, sd_floor: float = 0.05
    ) -> None:
        self.buf = array("d", [0.0] * window)
        self.pos = self.filled = self.n = 0
        self.total = self.mean = self.var = 0.0
        self.alpha, self.min_n, self.sd_floor = alpha, min_n, sd_floor

    # A tuple in slot order, not a dict: a key holds up to a dozen of these and restoring a million keys
    # spends its time in unpickling (a dict state cost ~2x per object).
    def __getstate__(self) -> tuple[Any, ...]:
        return (self.alpha, self.buf, self.filled, self.mean, self.min_n, self.n, self.pos, self.sd_floor,
                self.total, self.var)  # fmt: skip

    def __setstate__(self, state: tuple[Any, ...] | dict[str, Any]) -> None:
        if isinstance(state, dict):  # snapshots from before the tuple
            for name, value in state.items():
                setattr(self, name, value)
            return
        (self.alpha, self.buf, self.filled, self.mean, self.min_n, self.n, self.pos, self.sd_floor,
         self.total, self.var) = state  # fmt: skip

    def _avg(self, raw: float) -> float:
        w = len(self.buf)
        if self.filled < w:
            return (self.total + raw) / (self.filled + 1)
        return (self.total - self.buf[self.pos] + raw) / w

    def peek(self, raw: float) -> float:
        """log10 tail probability of the would-be moving average with ``raw`` in it."""
        if math.isinf(raw):
            return FLOOR_LOG10P
        if self.n < self.min_n:
            return 0.0
        sd = max(math.sqrt(self.var), self.sd_floor)
        return log10_upper_tail((self._avg(raw) - self.mean) / sd)

    def commit(self, raw: float) -> None:
        """Learn ``raw``: the moving average and the long-run Gaussian of it."""
        if math.isinf(raw):
            return  # an infinite deviation is reported, never learned
        avg = self._avg(raw)
        w = len(self.buf)
        self.total += raw - (self.buf[self.pos] if self.filled == w else 0.0)
        self.buf[self.pos] = raw
        self.pos = (self.pos + 1) % w
        self.filled = min(self.filled + 1, w)
        self.n += 1
        a = max(self.alpha, 1.0 / self.n)
        d = avg - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)


class Spot:
    """Extreme-value calibrator (SPOT, upper tail) from ``libspot``: a GPD fitted to the excesses.

    Fitted on the first ``n_init`` raw deviations (p = 1 until then), then updated per point. libspot has
    no restore API: a snapshot keeps its parameters and excesses and a restore refits on them, so a
    restored SPOT is close to, not bit-identical with, the one that was saved.
    """

    def __init__(self, q: float = 1e-5, level: float = 0.98, n_init: int = 300) -> None:
        self.q, self.level, self.n_init = q, level, n_init
        self._init: list[float] = []
        self._spot: Any = None

    def _new(self) -> Any:
        import libspot  # the optional EVT dependency: imported only when SPOT is asked for

        return libspot.Spot(q=self.q, low=False, discard_anomalies=True, level=self.level, max_excess=500)

    def peek(self, raw: float) -> float:
        """log10 tail probability of ``raw`` under the fitted GPD (0 below the excess threshold)."""
        if math.isinf(raw):
            return FLOOR_LOG10P
        if self._spot is None or raw <= self._spot.excess_threshold:
            return 0.0
        p = float(self._spot.probability(raw))
        return max(math.log10(p), -300.0) if p > 0 else FLOOR_LOG10P

    def commit(self, raw: float) -> None:
        """Learn ``raw`` (collect, fit once ``n_init`` are in, then step)."""
        if math.isinf(raw):
            return
        if self._spot is not None:
            self._spot.step(raw)
            return
        self._init.append(raw)
        if len(self._init) >= self.n_init:
            self._fit(np.asarray(self._init, dtype=np.float64))

    def _fit(self, data: np.ndarray[Any, Any]) -> None:
        spot = self._new()
        try:
            spot.fit(data)
        except RuntimeError:  # a degenerate (e.g. constant) batch: collect another one
            self._init = []
            return
        self._spot, self._init = spot, []

    def __getstate__(self) -> dict[str, Any]:
        state = {"q": self.q, "level": self.level, "n_init": self.n_init, "init": list(self._init)}
        if self._spot is not None:
            d = self._spot.as_dict()
            state["t"] = d["excess_threshold"]
            state["n"] = d["n"]
            state["excesses"] = list(d["tail"]["peaks"]["container"]["data"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.q, self.level, self.n_init = state["q"], state["level"], state["n_init"]
        self._init, self._spot = list(state["init"]), None
        if "t" in state:
            # Rebuild a batch with the same level quantile and the same excesses, and refit on it.
            t, excesses = state["t"], np.asarray(state["excesses"], dtype=np.float64)
            below = max(int(len(excesses) * self.level / (1 - self.level)), 1)
            self._fit(np.concatenate([np.full(below, t * (1 - 1e-9) - 1e-12), t + excesses]))


class Bank:
    """Calibrators per view of a detector's ``deviations()``, combined by the smallest probability.

    Deviations are compressed with ``log1p`` before calibration (the Gaussian of their moving average then
    fits heavy-tailed deviations far better; measured on NAB), and an infinite deviation always reports the
    floor probability. With the likelihood, each view has one per window: by default two, the moving
    average (sustained change) and the single point (a spike the average would dilute five-fold).

    Examples
    --------
    >>> bank = Bank()
    >>> for i in range(500):
    ...     bank.commit({"cpu": float(i % 7) / 7})
    >>> bank.peek({"cpu": 0.3})[0] > -2 > -5 > bank.peek({"cpu": 50.0})[0]
    True
    >>> bank.peek({"cpu": 50.0})[1]
    'cpu'

    ``windows`` are the likelihood's moving-average windows and ``cap`` how many sd above its mean it
    learns at most (``Detector.likelihood_windows``, ``Detector.likelihood_cap``).
    """

    # Class defaults: banks pickled before these were parameters restore with them.
    windows: tuple[int, ...] = (5, 1)
    cap: float | None = None

    def __init__(
        self, kind: str = "likelihood", windows: tuple[int, ...] = (5, 1), cap: float | None = None
    ) -> None:
        self.kind = kind
        self.views: dict[str, tuple[Calibrator, ...]] = {}
        if windows != Bank.windows:
            self.windows = tuple(windows)
        if cap is not None:
            self.cap = cap

    def _new(self) -> tuple[Calibrator, ...]:
        if self.kind == "spot":
            return (Spot(),)
        return tuple(Likelihood(window=w) for w in self.windows)

    def peek(self, deviations: Mapping[str, float]) -> tuple[float, str]:
        """(log10 tail probability, winning view) of one point's deviations; a new view reports p = 1."""
        best, winner = 0.0, ""
        for view, raw in deviations.items():
            cals = self.views.get(view)
            if cals is None or math.isnan(raw):  # NaN: the view has nothing to say about this point
                continue
            squashed = math.log1p(raw)
            # Two looks at one view: the smaller p, doubled (Bonferroni) so p stays a probability.
            lp = min(cal.peek(squashed) for cal in cals) + math.log10(len(cals))
            if lp < best:
                best, winner = lp, view
        return best, winner

    def commit(self, deviations: Mapping[str, float]) -> None:
        """Learn one point's deviations (views appear lazily)."""
        for view, raw in deviations.items():
            if math.isnan(raw):
                continue
            cals = self.views.get(view)
            if cals is None:
                cals = self.views[view] = self._new()
            squashed = math.log1p(raw)
            for cal in cals:
                cal.commit(self._capped(cal, squashed))

    def _capped(self, cal: Calibrator, value: float) -> float:
        """``value`` capped at the likelihood's mean + ``cap`` sd (SPOT's, and infinite ones, as they are)."""
        if self.cap is None or not isinstance(cal, Likelihood) or cal.n < cal.min_n or math.isinf(value):
            return value
        return min(value, cal.mean + self.cap * max(math.sqrt(cal.var), cal.sd_floor))


class Suppressor:
    """Repeat-alarm suppression without threshold knowledge: a score must beat the key's recent ones.

    A score that does not exceed the envelope of the key's earlier scores (their running maximum, decaying
    with half-life ``halflife`` points) by ``margin`` (relative) is multiplied by ``factor``: one incident
    is one alarm, not a string of them. Equal is not enough, and neither is a saturated score a few rows
    later that beats the envelope only by its decay (with half-life 1,000 a 1 % margin holds a repeat of
    a top score back for ~15 rows; NAB standard 67.56 → 68.54, docs/evaluation.md).

    Examples
    --------
    >>> sup = Suppressor(halflife=1000, factor=0.5)
    >>> sup.update(0.9), sup.update(0.6), sup.update(0.95), sup.update(0.95)
    (0.9, 0.3, 0.95, 0.475)
    """

    __slots__ = ("decay", "env", "factor", "margin")

    def __init__(self, halflife: float = 1000.0, factor: float = 0.5, margin: float = 0.01) -> None:
        self.env = 0.0
        self.decay = 0.5 ** (1.0 / halflife)
        self.factor = factor
        self.margin = margin

    def __getstate__(self) -> tuple[float, float, float, float]:
        return self.env, self.decay, self.factor, self.margin

    def __setstate__(self, state: tuple[float, ...]) -> None:
        # Snapshots from before the margin carry three fields; they restore with today's default.
        self.env, self.decay, self.factor = state[:3]
        self.margin = state[3] if len(state) > 3 else 0.01

    def peek(self, score: float) -> float:
        """The score as reported: itself when it beats the envelope by the margin, else scaled down."""
        return score if score > self.env * (1.0 + self.margin) else score * self.factor

    def update(self, score: float) -> float:
        """Report ``score`` and move the envelope."""
        out = self.peek(score)
        decayed = self.env * self.decay
        self.env = score if score > decayed else decayed
        return out
