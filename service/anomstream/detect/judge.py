"""One key's calibrated judgement: detector views → tail probability → suppressed score.

Detectors that calibrate their own views (``Detector.calibrated``) report a log10 tail probability; every
other detector's ``deviations()`` go through a ``Bank`` of calibrators. Either way the key keeps one
repeat-alarm ``Suppressor``.
"""

from __future__ import annotations

import dataclasses

from anomstream.detect.calibration import Bank, Suppressor, score_of_log10p
from anomstream.detect.detector import Detector, Features


@dataclasses.dataclass(frozen=True, slots=True)
class Judged:
    """One point's calibrated verdict (before learning it)."""

    score: float  # suppressed calibrated score in [0, 1]
    raw_score: float  # before suppression
    log10p: float  # log10 of the tail probability
    view: str  # what won: "feature.view" or the detector's own view name
    deviations: dict[str, float] | None  # what the bank has to learn (None for self-calibrated)

    @property
    def probability(self) -> float:
        """The tail probability itself."""
        return float(10.0**self.log10p)


class Judge:
    """Per key: the calibrator bank (for uncalibrated detectors) and the repeat-alarm envelope.

    ``halflife`` and ``factor`` shape the envelope (``Suppressor``), ``windows`` and ``cap`` the likelihood's
    moving averages and how far above its norm it learns (``Bank``); the store passes the detector's
    declarations (``store.halflife_of``).

    Examples
    --------
    >>> from anomstream.detect.statistical import ZScore
    >>> det, judge = ZScore(), Judge()
    >>> for i in range(300):
    ...     x = {"cpu": float(i % 10)}
    ...     if i >= 30:                      # as the scorer: the bank learns past the detector's warm-up
    ...         judge.learn(judge.peek(det, x, None))
    ...     det.learn_one(x)
    >>> judge.peek(det, {"cpu": 4.0}, None).score < 0.2 < 0.5 < judge.peek(det, {"cpu": 400.0}, None).score
    True
    """

    def __init__(
        self,
        calibrator: str = "likelihood",
        halflife: float = 1000.0,
        factor: float = 0.5,
        windows: tuple[int, ...] = (5, 1),
        cap: float | None = None,
    ) -> None:
        self.bank = Bank(calibrator, windows, cap)
        self.suppressor = Suppressor(halflife, factor)

    def peek(self, detector: Detector, x: Features, t: float | None) -> Judged:
        """Judge ``x`` without learning it."""
        devs: dict[str, float] | None = None
        if detector.calibrated:
            log10p, view = detector.log10p_one(x, t)
        else:
            devs = detector.deviations(x, t)
            log10p, view = self.bank.peek(devs)
        raw = score_of_log10p(log10p)
        return Judged(self.suppressor.peek(raw), raw, log10p, view, devs)

    def learn(self, judged: Judged) -> None:
        """Learn the point's deviations (the detector learns the point itself)."""
        if judged.deviations is not None:
            self.bank.commit(judged.deviations)

    def settle(self, judged: Judged) -> None:
        """Move the repeat-alarm envelope: every point does, learned or held back."""
        self.suppressor.update(judged.raw_score)
