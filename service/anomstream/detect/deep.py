"""Deep detectors (optional extra ``anomstream[deep]``): autoencoder and LSTM, JAX + optax on CPU.

The autoencoder scores reconstruction error, the LSTM the one-step forecast error over a window; both
are trained online in small batches.

Only training uses JAX (a jitted ``value_and_grad`` + optax Adam step per batch of ``batch_size``
learned points); scoring is a numpy forward pass, so a point costs microseconds, not a JAX dispatch.
Parameters and optimiser state are kept as lists of numpy arrays (the pytree's leaves; its structure is
rebuilt from the detector's parameters), so a snapshot holds arrays only, never pickled code.
When the set of features changes the network is re-initialised for the new width.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from typing import Any

import numpy as np

from anomstream.detect.vector import VectorDetector

EXTRA = "deep"
#: Adam steps before a network scores: an untrained network's errors are large and would widen the
#: calibrator's long-run spread for thousands of points (spikes then scored as routine).
WARM_STEPS = 10


def available() -> bool:
    """Whether the optional extra (JAX + optax) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("jax", "optax"))


@dataclasses.dataclass(slots=True)
class NetState:
    """Network weights and Adam state as numpy arrays, the training buffer and the recent inputs."""

    names: list[str] = dataclasses.field(default_factory=list)
    params: list[np.ndarray] = dataclasses.field(default_factory=list)
    opt: list[np.ndarray] = dataclasses.field(default_factory=list)
    buffer: list[np.ndarray] = dataclasses.field(default_factory=list)
    recent: list[np.ndarray] = dataclasses.field(default_factory=list)
    steps: int = 0


def _init(rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    return [
        (rng.normal(size=s) / np.sqrt(max(s[0], 1))).astype(np.float32)
        if len(s) == 2
        else np.zeros(s, dtype=np.float32)
        for s in shapes
    ]


def ae_forward(p: list[Any], v: Any, xp: Any = np) -> Any:
    """Autoencoder: ``d → hidden (tanh) → d``; ``xp`` is numpy (scoring) or ``jax.numpy`` (training)."""
    w1, b1, w2, b2 = p
    return xp.tanh(v @ w1 + b1) @ w2 + b2


def lstm_forward(p: list[Any], seq: Any, xp: Any = np) -> Any:
    """LSTM over ``seq`` (steps × d, or batch × steps × d), then a linear read-out of the next point."""
    wx, wh, b, wo, bo = p
    hidden = wh.shape[0]
    h = xp.zeros((*seq.shape[:-2], hidden))
    c = xp.zeros_like(h)
    for step in range(seq.shape[-2]):
        z = seq[..., step, :] @ wx + h @ wh + b
        i, f, o = (1.0 / (1.0 + xp.exp(-z[..., k * hidden : (k + 1) * hidden])) for k in range(3))
        c = f * c + i * xp.tanh(z[..., 3 * hidden :])
        h = o * xp.tanh(c)
    return h @ wo + bo


@functools.lru_cache(maxsize=8)
def _trainer(kind: str, lr: float) -> tuple[Any, Any]:
    """(optax optimiser, jitted train step) for a network kind; built once per process."""
    import jax
    import jax.numpy as jnp
    import optax

    # CPU wheels only: skip JAX's probing of TPU/GPU backends (and its log line about them); backends
    # start lazily, so this holds as long as nothing computed with JAX before.
    jax.config.update("jax_platforms", "cpu")  # type: ignore[no-untyped-call]  # JAX: unannotated

    opt = optax.adam(lr)

    def loss(p: list[Any], xs: Any, ys: Any) -> Any:
        pred = ae_forward(p, xs, jnp) if kind == "ae" else lstm_forward(p, xs, jnp)
        return jnp.mean((pred - ys) ** 2)

    @jax.jit
    def step(p: list[Any], state: Any, xs: Any, ys: Any) -> tuple[Any, Any, Any]:
        value, grads = jax.value_and_grad(loss)(p, xs, ys)
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    return opt, step


def train(model: NetState, kind: str, lr: float, xs: np.ndarray, ys: np.ndarray) -> None:
    """One optax Adam step on a batch; parameters and optimiser state go back to numpy arrays."""
    opt, step = _trainer(kind, lr)  # first: it pins JAX to the CPU before any JAX computation
    import jax

    params = [jax.numpy.asarray(a) for a in model.params]
    template = opt.init(params)
    treedef = jax.tree_util.tree_structure(template)
    state = jax.tree_util.tree_unflatten(treedef, model.opt) if model.opt else template
    params, state, _ = step(params, state, xs.astype(np.float32), ys.astype(np.float32))
    model.params = [np.asarray(a) for a in params]
    model.opt = [np.asarray(a) for a in jax.tree_util.tree_leaves(state)]
    model.steps += 1


class _Net(VectorDetector):
    """Shared engine of the deep detectors over standardised vectors."""

    kind_of_net = "ae"

    def __init__(
        self,
        hidden: int = 8,
        batch_size: int = 8,
        learning_rate: float = 0.05,
        *,
        band: float = 3.0,
        scope: str = "key",
        seed: int = 42,
        fading: float = 0.0,
    ) -> None:
        super().__init__(band=band, scope=scope, seed=seed, fading=fading)
        self.hidden = hidden
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    def _new_model(self) -> NetState:
        return NetState()

    def _shapes(self, d: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _reset_if_resized(self, model: NetState, d: int) -> None:
        if not model.params or model.params[0].shape[0] != d:
            rng = np.random.default_rng([self.seed, d])
            model.params, model.opt, model.buffer, model.recent = _init(rng, self._shapes(d)), [], [], []
            model.steps = 0


class Autoencoder(_Net):
    """Dense autoencoder ``d → h → d`` on standardised features; raw score = reconstruction RMSE.

    The code width ``h`` is ``hidden`` capped at ``d - 1``: a bottleneck, so the network learns the
    relations between features rather than the identity (measured on the quality phase's data, 5 keys,
    3 features: with ``h = 8`` the weakest spike's error was 1.3 standard units against 2.1 with
    ``h = 2``, and spike precision 0.82 against 0.93 at the same recall).

    Trained online: every ``batch_size`` learned points make one Adam step (JAX + optax).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = Autoencoder(hidden=2, seed=1)
    >>> for _ in range(400):
    ...     a = rng.gauss(0, 1)
    ...     det.learn_one({"a": a, "b": 2 * a + rng.gauss(0, 0.1)})
    >>> det.score_one({"a": 0.5, "b": 1.0}) < 0.5 < det.score_one({"a": 2.0, "b": -4.0})
    True
    """

    name = "autoencoder"
    summary = "autoencoder reconstruction error (JAX + optax): broken relations between features"

    def _shapes(self, d: int) -> list[tuple[int, ...]]:
        # A code as wide as the input can learn the identity and reconstruct anomalies too: keep a bottleneck.
        h = max(1, min(self.hidden, d - 1))
        return [(d, h), (h,), (h, d), (d,)]

    def _model_learn(self, model: NetState, v: np.ndarray) -> None:
        self._reset_if_resized(model, len(v))
        model.buffer.append(v)
        if len(model.buffer) >= self.batch_size:
            xs = np.stack(model.buffer)
            train(model, "ae", self.learning_rate, xs, xs)
            model.buffer = []

    def _model_raw(self, model: NetState, v: np.ndarray) -> float | None:
        if model.steps < WARM_STEPS or model.params[0].shape[0] != len(v):
            return None
        return float(np.sqrt(np.mean((ae_forward(model.params, v) - v) ** 2)))


class LSTM(_Net):
    """LSTM forecaster: the last ``window`` standardised points predict the next; raw score = its RMSE.

    (Root of the mean squared error, in standard units: the squared error of Gaussian noise has a
    chi-square tail that a 4.6σ threshold on it would cross every few hundred points.)

    Examples
    --------
    >>> import math
    >>> det = LSTM(window=4, seed=1)
    >>> for i in range(400):
    ...     det.learn_one({"a": math.sin(i / 3), "b": math.cos(i / 3)})
    >>> usual = {"a": math.sin(400 / 3), "b": math.cos(400 / 3)}
    >>> det.score_one(usual) < 0.5 < det.score_one({"a": 9.0, "b": 0.0})
    True
    """

    name = "lstm"
    kind = "contextual"
    summary = "LSTM one-step forecast error over a window (JAX + optax): broken dynamics"

    def __init__(
        self,
        hidden: int = 8,
        window: int = 8,
        batch_size: int = 8,
        learning_rate: float = 0.05,
        *,
        band: float = 3.0,
        scope: str = "key",
        seed: int = 42,
        fading: float = 0.0,
    ) -> None:
        super().__init__(hidden, batch_size, learning_rate, band=band, scope=scope, seed=seed, fading=fading)
        self.window = window

    def _shapes(self, d: int) -> list[tuple[int, ...]]:
        h = self.hidden
        return [(d, 4 * h), (h, 4 * h), (4 * h,), (h, d), (d,)]

    def _model_learn(self, model: NetState, v: np.ndarray) -> None:
        self._reset_if_resized(model, len(v))
        if len(model.recent) == self.window:
            model.buffer.append(np.vstack([*model.recent, v]))
        model.recent = [*model.recent, v][-self.window :]
        if len(model.buffer) >= self.batch_size:
            batch = np.stack(model.buffer)
            train(model, "lstm", self.learning_rate, batch[:, :-1], batch[:, -1])
            model.buffer = []

    def _model_raw(self, model: NetState, v: np.ndarray) -> float | None:
        if model.steps < WARM_STEPS or len(model.recent) < self.window or model.params[0].shape[0] != len(v):
            return None
        return float(np.sqrt(np.mean((lstm_forward(model.params, np.stack(model.recent)) - v) ** 2)))
