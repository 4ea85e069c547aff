"""The feedback re-ranker: an online classifier of one key's labelled alerts that may hold back a false one.

It learns from people's verdicts (``true_positive`` / ``false_positive``) on the features of the alert they
judged, and suppresses a new alert only when it has seen enough of both verdicts and is confident.
"""

from __future__ import annotations

import math

from river import linear_model, optim

from anomstream.detect.spec import FeedbackSpec
from anomstream.wire.records import Alert

_SEVERITY = {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}


def features(alert: Alert) -> dict[str, float]:
    """What the re-ranker sees of an alert: how far past the bar, how rare, which view fired, how hard.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = Alert(alert_id="x", entity_id="e", stream="default", timestamp=t, detected_at=t,
    ...           status="open", severity="high", score=0.6, threshold=0.4, detector="zscore",
    ...           values={"cpu": 9.0}, expected={"cpu": {"mean": 5.0, "low": 4.0, "high": 6.0}},
    ...           contributions={"cpu": 1.0}, source={"topic": "t", "partition": 0, "offset": 1},
    ...           view="cpu.level")
    >>> sorted(features(a).items())  # doctest: +NORMALIZE_WHITESPACE
    [('excess', 0.2), ('kind=point', 1.0), ('score', 0.6), ('severity', 0.75), ('top_deviation', 4.0),
     ('top_share', 1.0), ('view=cpu.level', 1.0)]
    """
    out = {
        "score": alert.score,
        "excess": round(alert.score - alert.threshold, 12),
        "severity": _SEVERITY[alert.severity],
        f"kind={alert.kind}": 1.0,
    }
    if alert.probability is not None:
        out["rarity"] = min(-math.log10(max(alert.probability, 1e-300)), 30.0) / 10.0
    top = max(alert.contributions, key=alert.contributions.__getitem__, default="")
    view = alert.view or top
    if view:
        out[f"view={view}"[:128]] = 1.0
    if top:
        out["top_share"] = alert.contributions[top]
        band, value = alert.expected.get(top), alert.values.get(top)
        if band is not None and value is not None:
            half = max((band.high - band.low) / 2, 1e-9)
            out["top_deviation"] = max(-10.0, min(10.0, (value - band.mean) / half))
    return out


class Reranker:
    """One key's online logistic regression from alert features to "this alert is a false positive".

    Examples
    --------
    >>> r, spec = Reranker(), FeedbackSpec(min_labels=6, min_each=3)
    >>> for _ in range(20):
    ...     r.learn({"view=disk.level": 1.0}, false_positive=True)
    ...     r.learn({"view=cpu.level": 1.0}, false_positive=False)
    >>> r.suppress({"view=disk.level": 1.0}, spec) is not None, r.suppress({"view=cpu.level": 1.0}, spec)
    (True, None)
    """

    __slots__ = ("model", "n_false", "n_true")

    def __init__(self) -> None:
        self.model: linear_model.LogisticRegression | None = None
        self.n_false = 0
        self.n_true = 0

    @property
    def labels(self) -> int:
        """How many verdicts it has learned."""
        return self.n_false + self.n_true

    def learn(self, x: dict[str, float], *, false_positive: bool) -> None:
        """Learn one verdict on one alert's features."""
        if self.model is None:
            # A large step: a key gets few labels, each must count.
            self.model = linear_model.LogisticRegression(optimizer=optim.SGD(0.5), l2=0.0)
        self.model.learn_one(x, false_positive)
        if false_positive:
            self.n_false += 1
        else:
            self.n_true += 1

    def p_false(self, x: dict[str, float]) -> float | None:
        """Probability that an alert with features ``x`` is false (None before any label)."""
        if self.model is None:
            return None
        proba = self.model.predict_proba_one(x)  # type: ignore[no-untyped-call]  # River: unannotated
        return float(proba.get(True, 0.0))

    def suppress(self, x: dict[str, float], spec: FeedbackSpec) -> float | None:
        """``p_false`` when it is confident enough to hold the alert back, else None.

        Confident means: re-ranking on, at least ``min_labels`` labels including ``min_each`` of either
        verdict (a model that never saw a true alert cannot tell one), and ``p_false >= confidence``.
        """
        if not spec.rerank or self.labels < spec.min_labels:
            return None
        if min(self.n_false, self.n_true) < spec.min_each:
            return None
        p = self.p_false(x)
        return p if p is not None and p >= spec.confidence else None
