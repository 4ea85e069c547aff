"""What people's verdicts change for one key: its sensitivity bar (floor and ceiling) and its re-ranker.

Pure and event-sourced: a verdict's effect depends only on the feedback record and the feedback applied
before it, so replaying the same events and feedback gives the same thresholds.
"""

from __future__ import annotations

import collections
import dataclasses

from anomstream.detect.reranker import Reranker
from anomstream.detect.spec import FeedbackSpec
from anomstream.wire.records import Feedback, Verdict

MAX_BAR = 0.999999
_REMEMBERED = 512  # verdicts remembered per key to recognise a redelivered one


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """What one feedback record did to its key."""

    verdict: Verdict
    duplicate: bool  # the same verdict on the same alert (or range) was applied before: nothing changed
    bar_before: float
    bar_after: float


class FeedbackState:
    """One key's feedback: the floor false positives raised, the ceiling misses lowered, the re-ranker.

    The key's decision threshold is ``bar(base)``: the detector's own threshold ``base`` lifted to the
    floor and capped at the ceiling.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> fs, spec = FeedbackState(), FeedbackSpec(margin=0.02)
    >>> fp = Feedback(entity_id="e", verdict="false_positive", alert_id="a", score=0.5, submitted_at=t)
    >>> fs.apply(fp, spec, base=0.4).bar_after
    0.52
    >>> fs.bar(0.4), fs.bar(0.6)   # similar scores are held back, a clearly worse one is not
    (0.52, 0.6)
    """

    __slots__ = ("ceiling", "floor", "holding", "reranker", "seen")

    def __init__(self) -> None:
        self.floor = 0.0
        self.ceiling = 1.0
        self.reranker = Reranker()
        self.holding = False  # the re-ranker held back the open alert of the key's current episode
        self.seen: collections.OrderedDict[str, Verdict] = collections.OrderedDict()

    def bar(self, base: float) -> float:
        """The key's threshold after feedback, given the detector's own ``base`` threshold."""
        return min(max(base, self.floor), self.ceiling, MAX_BAR)

    @property
    def adjusted(self) -> bool:
        """Feedback has moved the bar of this key."""
        return self.floor > 0.0 or self.ceiling < 1.0

    def apply(self, fb: Feedback, spec: FeedbackSpec, base: float) -> Applied:
        """Apply one verdict (idempotent: a redelivered verdict changes nothing)."""
        before = self.bar(base)
        ident = fb.alert_id or f"missed/{fb.start}/{fb.end}"
        if self.seen.get(ident) == fb.verdict:
            return Applied(fb.verdict, True, before, before)
        self.seen[ident] = fb.verdict
        self.seen.move_to_end(ident)
        while len(self.seen) > _REMEMBERED:
            self.seen.popitem(last=False)
        if fb.verdict == "missed":
            self._missed(fb.score, spec, before)
        else:
            self._judged(fb, spec, before)
        return Applied(fb.verdict, False, before, self.bar(base))

    def _judged(self, fb: Feedback, spec: FeedbackSpec, bar: float) -> None:
        # The alert's own score when the record carries it; else it was at least the bar it crossed.
        score = fb.score if fb.score is not None else bar
        false = fb.verdict == "false_positive"
        if false:
            self.floor = max(self.floor, min(score + spec.margin, MAX_BAR))
            if self.ceiling < self.floor:
                self.ceiling = 1.0  # the newer verdict wins over an older miss
        else:
            # A confirmed anomaly must not sit under a floor: keep the floor below its score.
            self.floor = min(self.floor, max(score - spec.margin, 0.0))
        if fb.features:
            self.reranker.learn(dict(fb.features), false_positive=false)

    def _missed(self, score: float | None, spec: FeedbackSpec, bar: float) -> None:
        worst = score if score is not None else bar - spec.missed_step + spec.margin
        self.ceiling = min(self.ceiling, max(worst - spec.margin, spec.lowest))
        if self.floor > self.ceiling:
            self.floor = 0.0  # the newer verdict wins over an older false positive
