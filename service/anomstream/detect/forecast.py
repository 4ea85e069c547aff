"""Forecast-residual detectors: one River time-series model per feature (SNARIMAX, HoltWinters).

``SNARIMAX`` is ARIMA, ``HoltWinters`` exponential smoothing; each is scored by the one-step-ahead
residual over its running scale.

After learning a value, each feature's model forecasts the next one and keeps it, so ``score_one`` is a
subtraction: ``|x - forecast| / scale``, where ``scale`` is the residuals' exponentially weighted RMS.
That ratio is the deviation the calibration layer sees; the expected band is ``forecast ± band·scale``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from river import time_series

from anomstream.detect.detector import Detector, Explanation, Features, shares, z_to_score
from anomstream.wire.records import Expected


@dataclasses.dataclass(slots=True)
class FeatureForecast:
    """One feature: its model, the forecast of its next value, and the residuals' mean square."""

    model: Any
    forecast: float = math.nan
    msq: float = math.nan
    n: int = 0


class _Forecaster(Detector):
    """Shared engine: per-feature model, cached one-step forecast, residual/scale deviation."""

    kind = "contextual"

    def __init__(self, band: float = 3.0, fading: float = 0.05, min_scale: float = 1e-6) -> None:
        self.band = band
        self.fading = fading
        self.min_scale = min_scale

    def _new_model(self) -> Any:
        raise NotImplementedError

    def _table(self) -> dict[str, FeatureForecast]:
        return self.__dict__.setdefault("_st", {})  # type: ignore[no-any-return]  # lazily created state

    def _scale(self, f: FeatureForecast) -> float:
        rms = math.sqrt(f.msq) if math.isfinite(f.msq) else 0.0
        return max(rms, self.min_scale, 1e-3 * abs(f.forecast))

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Update each feature's residual scale, then its model, then cache its next forecast."""
        for name, value in x.items():
            if not math.isfinite(value):
                continue
            f = self._table().setdefault(name, FeatureForecast(self._new_model()))
            if math.isfinite(f.forecast):
                sq = min((value - f.forecast) ** 2, 1e300)
                f.msq = sq if math.isnan(f.msq) else f.msq + self.fading * (sq - f.msq)
            f.model.learn_one(value)
            f.n += 1
            f.forecast = self._next(f)

    def _next(self, f: FeatureForecast) -> float:
        try:
            value = float(f.model.forecast(horizon=1)[0])
        except (IndexError, ValueError, ZeroDivisionError):  # too few points for the model yet
            return math.nan
        return value if math.isfinite(value) else math.nan

    def _dev(self, name: str, value: float) -> float:
        f = self._table().get(name)
        if f is None or not math.isfinite(f.forecast) or math.isnan(f.msq):
            return 0.0
        dev = abs(value - f.forecast) / self._scale(f)
        return dev if math.isfinite(dev) else 1e300

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """``|x - forecast| / residual RMS`` per feature (0 until a feature has a forecast and a scale)."""
        return {name: self._dev(name, value) for name, value in x.items()}

    def score_one(self, x: Features, t: float | None = None) -> float:
        """Largest residual in units of its scale, squashed to [0, 1]."""
        return z_to_score(max(self.deviations(x, t).values(), default=0.0))

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Shares of the per-feature residual ratio; band: forecast ± ``band`` · residual RMS."""
        expected = {}
        for name in x:
            f = self._table().get(name)
            if f is not None and math.isfinite(f.forecast) and not math.isnan(f.msq):
                width = self.band * self._scale(f)
                expected[name] = Expected(mean=f.forecast, low=f.forecast - width, high=f.forecast + width)
        return Explanation(shares(self.deviations(x, t)), expected)


class ARIMA(_Forecaster):
    """SNARIMAX(p, d, q) per feature (River): residual of the one-step-ahead forecast.

    Examples
    --------
    >>> det = ARIMA(p=2, d=0, q=0)
    >>> for i in range(200):
    ...     det.learn_one({"x": 10.0 + (i % 4)})
    >>> det.score_one({"x": 10.0}) < 0.5 < det.score_one({"x": 40.0})
    True
    """

    name = "arima"
    summary = "SNARIMAX (ARIMA) one-step forecast residual per feature: breaks of the series' dynamics"

    def __init__(
        self, p: int = 2, d: int = 0, q: int = 1, *, band: float = 3.0, fading: float = 0.05
    ) -> None:
        super().__init__(band=band, fading=fading)
        self.p, self.d, self.q = p, d, q

    def _new_model(self) -> Any:
        return time_series.SNARIMAX(p=self.p, d=self.d, q=self.q)


class HoltWinters(_Forecaster):
    """Holt's exponential smoothing (level ``alpha``, trend ``beta``) per feature (River ``HoltWinters``).

    Examples
    --------
    >>> det = HoltWinters()
    >>> for i in range(200):
    ...     det.learn_one({"x": 100.0 + 0.5 * i + (i % 2)})   # a ramp is forecast, not flagged
    >>> det.score_one({"x": 200.5}) < 0.5 < det.score_one({"x": 260.0})
    True
    """

    name = "holtwinters"
    summary = "Holt exponential smoothing forecast residual per feature: drifting, trending metrics"

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.05, *, band: float = 3.0, fading: float = 0.05
    ) -> None:
        super().__init__(band=band, fading=fading)
        self.alpha, self.beta = alpha, beta

    def _new_model(self) -> Any:
        # River's HoltWinters.__init__ carries no annotations
        return time_series.HoltWinters(alpha=self.alpha, beta=self.beta)  # type: ignore[no-untyped-call]
