"""The detector contract: River-style ``score_one`` / ``learn_one`` plus ``explain_one`` for alerts.

Scores are normalised to [0, 1]; explanations name what was expected and which features drove the score.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping

from river.base import Base

from anomstream.wire.records import Expected, Kind

Features = Mapping[str, float]

#: Deviations are finite: a saturated score (1.0, an infinite z) reports this instead.
_MAX_DEVIATION = 1e300

# z = 3 maps to 0.5; the squash never saturates, so quantile thresholds keep their resolution.
_Z_SCALE_SQ = 9.0


def z_to_score(z: float) -> float:
    """Map a deviation in standard units to [0, 1): ``z² / (z² + 9)`` (so 3σ → 0.5, 6σ → 0.8)."""
    if not math.isfinite(z) or z > 1e150:  # z² would overflow to inf and inf/inf is NaN
        return 1.0
    zz = z * z
    return zz / (zz + _Z_SCALE_SQ)


def score_to_z(score: float) -> float:
    """Inverse of ``z_to_score``: the deviation a score stands for."""
    if score >= 1.0:
        return math.inf
    return math.sqrt(_Z_SCALE_SQ * score / (1.0 - score))


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """Why a point scored as it did: share of the score per feature (sums to 1) and expected bands."""

    contributions: dict[str, float]
    expected: dict[str, Expected]


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Normalise non-negative weights to shares summing to 1 (uniform when all are zero)."""
    clean = {k: (v if math.isfinite(v) and v > 0 else 0.0) for k, v in weights.items()}
    total = sum(clean.values())
    if total <= 0:
        return {k: 1.0 / len(clean) for k in clean} if clean else {}
    return {k: v / total for k, v in clean.items()}


class Detector(Base, abc.ABC):
    """Base of every catalog detector.

    River conventions: ``__init__`` stores parameters only (so ``clone()`` works), state is created lazily
    on first use, ``score_one`` reads the model without changing it, ``learn_one`` updates it.
    """

    name: str = "base"
    #: What an alert of this detector reports (wire ``kind``): ``point``, ``contextual``, ``collective``,
    #: ``shift``, ...
    kind: Kind = "point"
    #: One line for ``anomstream detectors`` and the catalog table.
    summary: str = ""
    #: True for detectors that calibrate their own views and implement ``log10p_one``.
    calibrated: bool = False
    #: The calibrator its deviations need when the spec says ``auto``: ``likelihood`` (a Gaussian of
    #: their moving average) unless their tail is too heavy for it, then ``spot`` (EVT).
    calibrator: str = "likelihood"
    #: The moving-average windows (points) the likelihood judges its deviations over: a sustained change
    #: (5) and the single point (1). Detectors whose deviation is already one point's outlier score declare
    #: ``(1,)``: a spike's 5-point average would keep the key's next points above the bar.
    likelihood_windows: tuple[int, ...] = (5, 1)
    #: The likelihood learns a deviation at most this many of its sd above its long-run mean (``None``: as
    #: it comes). Keys whose incidents recur (shared shifts, bursts) otherwise widen their norm until the
    #: next spike looks routine.
    likelihood_cap: float | None = None
    #: Half-life (points) of the repeat-alarm envelope a score must beat (``calibration.Suppressor``), when
    #: shorter than the spec's ``lifecycle.halflife``. ``None``: the spec's. Point detectors, whose
    #: incidents last a point, declare a few points: a later spike on the key that scores lower than an
    #: earlier incident is still news.
    alarm_halflife: float | None = None

    @abc.abstractmethod
    def score_one(self, x: Features, t: float | None = None) -> float:
        """Anomaly score of ``x`` in [0, 1], before learning it (``t``: event time, epoch seconds)."""

    @abc.abstractmethod
    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Update the model with ``x`` observed at event time ``t`` (detectors may ignore ``t``)."""

    @abc.abstractmethod
    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Contributions and expected bands for ``x`` (called only when an alert is raised)."""

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """Raw deviations behind the score, one per view (e.g. per feature), before learning ``x``.

        Non-negative, larger is more unusual, *not* squashed: the calibration layer turns each into a tail
        probability against the key's own history, so thresholds mean the same for every detector.
        NaN means the view cannot judge yet (e.g. a model before its first window): it is not calibrated.
        The default is the score's deviation in standard units; detectors with several views override it.
        """
        return {"score": min(score_to_z(self.score_one(x, t)), _MAX_DEVIATION)}

    def log10p_one(self, x: Features, t: float | None = None) -> tuple[float, str]:
        """(log10 tail probability, winning view) of ``x`` for self-calibrated detectors, before learning."""
        raise NotImplementedError(f"{self.name} is not self-calibrated; use deviations()")


def replacement_contributions(
    detector: Detector, x: Features, baseline: Mapping[str, float], t: float | None = None
) -> dict[str, float]:
    """Model-agnostic attribution: replace one feature at a time by its expected value, measure the drop.

    The idea behind SHAP/LIME occlusion, one pass per feature, so compute it only when alerting. A feature
    with no baseline (never seen) keeps its value. Shares sum to 1 (uniform when nothing drops).

    Examples
    --------
    >>> from anomstream.detect.statistical import ZScore
    >>> det = ZScore()
    >>> for i in range(100):
    ...     det.learn_one({"a": float(i % 5), "b": float(i % 3)})
    >>> shares_ = replacement_contributions(det, {"a": 40.0, "b": 1.0}, {"a": 2.0, "b": 1.0})
    >>> shares_["a"] > 0.99
    True
    """
    full = detector.score_one(x, t)
    drops = {}
    for name in x:
        if name not in baseline:
            drops[name] = 0.0
            continue
        probe = dict(x)
        probe[name] = baseline[name]
        drops[name] = max(0.0, full - detector.score_one(probe, t))
    return shares(drops)
