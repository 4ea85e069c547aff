"""The shared engine of the multivariate detectors: per-key standardisation, raw scores in standard units.

A ``VectorDetector`` keeps, per key, Welford moments per feature (so every key is standardised by its own
scale), and a model (isolation forest, LOF window, k-means, ...) over the standardised vectors. The
model's raw outlier score is what ``deviations`` reports; ``score_one`` standardises it against the raw
scores of the points the key has learned and squashes it like the statistical detectors, so thresholds
speak the same units for every detector. Explanations are model-agnostic (replace one feature by its
running mean, measure the score drop), computed only when alerting.

With ``scope = "stream"`` the model is shared by every key of the stream (one per process, keyed by the
detector's parameters), while the moments stay per key: many small keys feed one model of the
*standardised shape* of the stream. The shared model is not part of a key's pickle (see
``docs/detectors.md`` for what the store needs to snapshot it).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from anomstream.detect.detector import (
    Detector,
    Explanation,
    Features,
    replacement_contributions,
    shares,
    z_to_score,
)
from anomstream.wire.records import Expected

#: Standardised values are clipped here: beyond it every value is equally "far", and squares stay finite.
Z_CLIP = 1e3
SCOPES = ("key", "stream")
#: Raw scores a key needs before its raw-score spread means anything (scores are 0 before).
MIN_RAW = 50
#: Per-call memo and derived tables: rebuilt on demand, never pickled.
_CACHES = frozenset({"_last", "_table", "_shared_key"})
#: Models shared by the keys of a stream (``scope = "stream"``), by detector repr, per process.
SHARED: dict[str, Any] = {}


@dataclasses.dataclass(slots=True)
class Welford:
    """Running count, mean and sum of squared deviations of one series."""

    n: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, value: float, fading: float = 0.0) -> None:
        """Add one observation; with ``fading`` > 0, an exponentially weighted mean and variance instead.

        The weighted form keeps ``m2 / (n - 1)`` equal to the weighted variance, so ``std`` serves both.
        """
        self.n += 1.0
        delta = value - self.mean
        if fading <= 0.0 or self.n <= 1.0 / fading:  # the first 1/fading points: plain Welford
            self.mean += delta / self.n
            self.m2 += delta * (value - self.mean)
            return
        self.mean += fading * delta
        var = (1.0 - fading) * (self.m2 / (self.n - 2.0) + fading * delta * delta)
        self.m2 = var * (self.n - 1.0)

    @property
    def std(self) -> float:
        """Sample standard deviation (0 before two observations)."""
        return math.sqrt(self.m2 / (self.n - 1.0)) if self.n > 1 else 0.0


@dataclasses.dataclass(slots=True)
class KeyStats:
    """Per-key state of a ``VectorDetector``: feature moments, raw-score moments, the key-scoped model."""

    moments: dict[str, Welford] = dataclasses.field(default_factory=dict)
    raw: Welford = dataclasses.field(default_factory=Welford)
    model: Any = None


def standardise(moments: Mapping[str, Welford], x: Features, names: list[str], rel: float) -> np.ndarray:
    """``x`` as standard units in ``names`` order: missing or unseen features sit at their mean (0)."""
    out = np.zeros(len(names))
    for i, name in enumerate(names):
        w, value = moments.get(name), x.get(name)
        if w is None or value is None or w.n < 1:
            continue
        scale = max(w.std, rel * abs(w.mean), 1e-9)
        z = (value - w.mean) / scale
        out[i] = min(Z_CLIP, max(-Z_CLIP, z)) if math.isfinite(z) else math.copysign(Z_CLIP, z)
    return out


class VectorDetector(Detector):
    """Base of the multivariate detectors; subclasses provide the model over standardised vectors.

    Subclasses define ``_new_model()``, ``_model_raw(model, v)`` (raw outlier score, larger is more
    unusual, ``None`` while the model cannot score) and ``_model_learn(model, v)``; ``v`` is a numpy
    vector in ``model.names`` order (a model's ``names`` list grows as new features appear).

    ``fading`` = 0 standardises features by their whole history (Welford); ``fading`` > 0 by
    exponentially weighted moments (after ``1/fading`` points), which follow a drifting level: windowed
    models then see deviations from the recent level rather than the slow cycle of the metric.
    """

    summary = "multivariate model over per-key standardised features"
    #: Forgetting of the raw-score moments (0: whole history); models whose raw scale drifts while they
    #: train (the SGD-trained SVM) forget their first, untrained scores.
    raw_fading: float = 0.0
    # A model's raw score is one point's outlier score: judged alone, and a key's incidents last a point.
    likelihood_windows = (1,)
    alarm_halflife = 10.0

    def __init__(self, band: float = 3.0, scope: str = "key", seed: int = 42, fading: float = 0.0) -> None:
        self.band = band
        self.fading = fading
        self.scope = scope
        self.seed = seed
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")

    # -- what subclasses define -------------------------------------------------------------------
    @abc.abstractmethod
    def _new_model(self) -> Any:
        """A fresh model object with a ``names: list[str]`` attribute."""

    @abc.abstractmethod
    def _model_raw(self, model: Any, v: np.ndarray) -> float | None:
        """Raw outlier score of ``v`` (non-negative), or ``None`` while the model is not ready."""

    @abc.abstractmethod
    def _model_learn(self, model: Any, v: np.ndarray) -> None:
        """Learn the standardised vector ``v``."""

    # -- state --------------------------------------------------------------------------------------
    def _stats(self) -> KeyStats:
        try:
            return self.__dict__["_st"]  # type: ignore[no-any-return]  # lazily created state
        except KeyError:
            st = KeyStats()
            self.__dict__["_st"] = st
            return st

    def _model(self) -> Any:
        if self.scope == "stream":
            key = self.__dict__.get("_shared_key")
            if key is None:  # River's repr of the parameters, built once per instance
                key = self.__dict__["_shared_key"] = repr(self)
            if key not in SHARED:
                SHARED[key] = self._new_model()
            return SHARED[key]
        st = self._stats()
        if st.model is None:
            st.model = self._new_model()
        return st.model

    def __getstate__(self) -> dict[str, Any]:
        # The score memo is a per-call cache, not model state: never persisted or compared.
        return {k: v for k, v in self.__dict__.items() if k not in _CACHES}

    def _vector(self, x: Features, model: Any) -> np.ndarray:
        return standardise(self._stats().moments, x, model.names, 1e-3)

    def _raw(self, x: Features) -> float | None:
        model = self._model()
        raw = self._model_raw(model, self._vector(x, model))
        if raw is not None and not math.isfinite(raw):
            raw = 1e6
        self.__dict__["_last"] = (x, raw)
        return raw

    # -- the contract -------------------------------------------------------------------------------
    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Learn ``x``: raw-score moments (scored before learning), feature moments, then the model."""
        st = self._stats()
        cached = self.__dict__.pop("_last", None)
        raw = cached[1] if cached is not None and cached[0] is x else self._raw(x)
        self.__dict__.pop("_last", None)
        if raw is not None:
            st.raw.update(raw, self.raw_fading)
        model = self._model()
        for name, value in x.items():
            if not math.isfinite(value):
                continue
            st.moments.setdefault(name, Welford()).update(value, self.fading)
            if name not in model.names:
                model.names.append(name)
        self._model_learn(model, self._vector(x, model))

    def _z(self, raw: float | None) -> float:
        spread = self._stats().raw
        if raw is None or spread.n < MIN_RAW:  # too few raw scores to know their spread: no verdict yet
            return 0.0
        return max(0.0, (raw - spread.mean) / max(spread.std, 1e-3 * abs(spread.mean), 1e-9))

    def score_one(self, x: Features, t: float | None = None) -> float:
        """The raw model score in standard units of this key's usual raw scores, squashed to [0, 1]."""
        return z_to_score(self._z(self._raw(x)))

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """``{"model": raw outlier score}`` (non-negative; NaN while the model cannot score yet).

        NaN, not 0: the calibrators skip it. Zeros learned before the model is ready would give them a
        spread of nothing, so the model's first real scores would look like 10-decade tail events (and
        lift the key's alarm envelope for a thousand points).
        """
        raw = self._raw(x)
        return {"model": max(0.0, raw) if raw is not None else math.nan}

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Replacement attribution against the running means (else |z| shares); bands mean ± band·σ."""
        moments = self._stats().moments
        expected, means, zs = {}, {}, {}
        for name, value in x.items():
            w = moments.get(name)
            if w is None or w.n < 1:
                zs[name] = 0.0
                continue
            means[name] = w.mean
            spread = self.band * w.std
            expected[name] = Expected(mean=w.mean, low=w.mean - spread, high=w.mean + spread)
            zs[name] = abs(value - w.mean) / max(w.std, 1e-9)
        drops = replacement_contributions(self, x, means, t) if x else {}
        if len(set(drops.values())) <= 1:  # nothing dropped (or one feature): per-feature |z| says more
            return Explanation(shares(zs), expected)
        return Explanation(drops, expected)
