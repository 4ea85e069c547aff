"""k-means distance: distance to the nearest centroid of River's streaming ``KMeans``, over the spread.

The spread of a cluster is an exponentially weighted mean distance of the points it absorbed; a point's
distance is measured in the mean spread of the key's clusters. Points
farther than ``absorb`` spreads from their centroid are learned pulled back to that radius (a Huber-style
robust update): one spike cannot drag a centroid, or the spread, by its own size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from river import cluster

from anomstream.detect.vector import VectorDetector


class OrderedKMeans(cluster.KMeans):
    """River's ``KMeans`` whose nearest-centre search visits features in sorted order.

    River's ``predict_one`` iterates a *set* of feature names, and a centre draws its random initial
    coordinate for a feature on first access: the draws, and so every later score, depended on
    ``PYTHONHASHSEED`` — a worker and a replay of the same input (two processes) disagreed.
    """

    def predict_one(self, x: dict[Hashable, Any]) -> int:
        """The nearest centre (River's Minkowski distance, features in sorted order)."""

        def distance(c: int) -> float:
            center = self.centers[c]
            keys = sorted({*center, *x}, key=str)
            return float(sum(abs(center[k] - x.get(k, 0.0)) ** self.p for k in keys))

        return int(min(self.centers, key=distance))


@dataclasses.dataclass(slots=True)
class KMeansState:
    """River's ``KMeans`` over standardised features, plus each cluster's spread."""

    kmeans: Any
    names: list[str] = dataclasses.field(default_factory=list)
    spread: dict[int, float] = dataclasses.field(default_factory=dict)
    n: int = 0


class KMeansDistance(VectorDetector):
    """Distance to the nearest of ``n_clusters`` streaming k-means centroids, over the clusters' spread.

    Centroids move by ``halflife`` of the way towards each point they absorb (River's ``KMeans``); the
    spread is an exponentially weighted mean of absorbed distances (weight ``spread_fading``). A point
    farther than ``absorb`` spreads is learned as if it lay at that distance, on the same ray: otherwise
    one spike of 40 standard units moves its centroid by 4 (``halflife`` 0.1) and the key's next normal
    points look far (measured: the quality phase's false alarms came right after spikes).

    The distance is divided by the mean spread of the key's clusters, not by the nearest one's own: a
    cluster that absorbed a handful of points has a spread of almost nothing, and its normal points then
    scored tens of units while spikes next to a wide cluster scored a few (measured on the quality
    phase: spike recall 0.45 with the cluster's own spread, 0.96 with the mean, no false alarm added;
    both with the likelihood capped at 3 sd).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = KMeansDistance(seed=1)
    >>> for _ in range(300):
    ...     det.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})
    >>> det.score_one({"a": 0.1, "b": 5.0}) < 0.5 < det.score_one({"a": 9.0, "b": 5.0})
    True
    """

    name = "kmeans"
    summary = "distance to the nearest streaming k-means centroid over its spread: off-cluster points"
    # As for HST: recurring incidents widen the likelihood's norm (quality spike recall 0.79 uncapped,
    # 0.90-0.91 at 4 sd, 0.92-0.95 at 3.5 sd, 0.96 at 3 sd, no false alarm in any). On NAB's heavy-tailed
    # series a tighter norm alarms more (low-FP live 26.9 uncapped, 14.0 at 4 sd, 3.5 at 3.5, -5.8 at 3).
    likelihood_cap = 3.5

    def __init__(
        self,
        n_clusters: int = 5,
        halflife: float = 0.1,
        spread_fading: float = 0.05,
        absorb: float = 3.0,
        *,
        band: float = 3.0,
        scope: str = "key",
        seed: int = 42,
        fading: float = 0.0,
    ) -> None:
        super().__init__(band=band, scope=scope, seed=seed, fading=fading)
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.spread_fading = spread_fading
        self.absorb = absorb

    def _new_model(self) -> KMeansState:
        return KMeansState(OrderedKMeans(n_clusters=self.n_clusters, halflife=self.halflife, seed=self.seed))

    def _nearest(self, model: KMeansState, v: np.ndarray) -> tuple[int, float]:
        best, dist = 0, math.inf
        for c, center in model.kmeans.centers.items():
            d = math.sqrt(sum((v[i] - center.get(name, 0.0)) ** 2 for i, name in enumerate(model.names)))
            if d < dist:
                best, dist = c, d
        return best, dist

    def _model_raw(self, model: KMeansState, v: np.ndarray) -> float | None:
        if model.n < 2 * self.n_clusters or len(v) == 0:
            return None
        _, d = self._nearest(model, v)
        spreads = list(model.spread.values())
        scale = sum(spreads) / len(spreads) if spreads else 1.0
        # a spread under 0.1 standard units is clusters that absorbed one or two points, not a scale
        return d / max(scale, 0.1)

    def _model_learn(self, model: KMeansState, v: np.ndarray) -> None:
        if len(v) == 0:
            return
        c, d = self._nearest(model, v)
        old = model.spread.get(c)
        if old is not None and d > self.absorb * max(old, 0.1):
            # 1. pull the point back onto the absorb radius (same direction), 2. learn that instead
            center = model.kmeans.centers[c]
            mu = np.array([center.get(name, 0.0) for name in model.names])
            radius = self.absorb * max(old, 0.1)
            v, d = mu + (v - mu) * (radius / d), radius
        model.spread[c] = d if old is None else old + self.spread_fading * (d - old)
        model.kmeans.learn_one({name: float(v[i]) for i, name in enumerate(model.names)})
        model.n += 1
