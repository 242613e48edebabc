"""``fx.lr_find``: the learning-rate range test (Smith 2017; fastai's ``lr_find``, Lightning's
``Tuner.lr_find``): train a copy of the state for ``steps`` steps while η grows
exponentially from ``lo`` to ``hi``, record the loss at each η, and suggest the η where the
smoothed loss falls fastest.

The sweep is one ``fx.train`` call (the rule's η a schedule of the step count, so every step
runs through one compiled program, fused where the data allow); the model, its optimiser
state and the rule are unchanged afterwards.

>>> import numpy as np, fluxjax as fx
>>> x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
>>> m = fx.Dense(1, 1)
>>> w = np.asarray(m.weight)
>>> r = fx.lr_find(lambda m, x, y: fx.mse(m(x), y), m, [(x, 3 * x)], fx.Descent(), steps=60)
>>> len(r.etas), bool(np.array_equal(np.asarray(m.weight), w)), 1e-3 < r.suggestion < 2
(60, True, True)
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .callbacks import every, stop
from .counts import is_count
from .engine.loop import train
from .module import modules, walk
from .optimise.composites import OptimiserChain, SkipNonFinite
from .optimise.interface import adjust, setup
from .optimise.optax import as_rule
from .params import Params, group

__all__ = ["lr_find", "LRFind"]


class LRFind(NamedTuple):
    """What ``lr_find`` returns: ``etas`` and ``losses`` of each step, the ``smoothed``
    losses (a debiased moving average), where the sweep was cut (``stop``: the first step
    whose smoothed loss exceeded ``diverge`` times the best, or went non-finite) and the
    ``suggestion`` (the η of steepest descent of the smoothed loss before ``stop``, leaving
    out the first tenth of the sweep, where the average is still settling)."""

    etas: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stop: int
    suggestion: float


class _Sweep:
    """η at update ``t`` (1-based): ``lo·(hi/lo)^((t−1)/(steps−1))``, traceable."""

    def __init__(self, lo: float, hi: float, steps: int) -> None:
        self.lo, self.hi, self.steps = lo, hi, steps

    def __call__(self, t: Any) -> Any:
        f = (jnp.asarray(t, jnp.float32) - 1) / max(self.steps - 1, 1)
        return self.lo * jnp.exp(f * math.log(self.hi / self.lo))

    def __repr__(self) -> str:
        return f"sweep({self.lo:g} → {self.hi:g})"


def lr_find(
    loss: Any,
    target: Any,
    data: Any,
    rule: Any,
    *,
    lo: float = 1e-7,
    hi: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFind:
    """Sweep η from ``lo`` to ``hi`` over ``steps`` steps of ``fx.train(loss, target, data,
    rule)`` on a copy of the state; returns an ``LRFind`` (draw it with
    ``fx.plots.lr_find``). ``target`` is the model (explicit mode, ``loss(model, x, y)``) or
    ``fx.params(model)`` (implicit); ``rule`` a rule with ``eta`` (or a chain holding one).
    ``data`` (a list, a DataLoader, or a generator, of which the first ``steps`` batches are
    taken) is cycled as needed. Non-finite steps are skipped, not raised."""
    if not (0 < lo < hi) or not is_count(steps, minimum=2):
        raise ValueError(f"lr_find: need 0 < lo < hi and steps >= 2, got {lo}, {hi}, {steps}.")
    sweep = OptimiserChain(SkipNonFinite(), adjust(as_rule(rule), eta=_Sweep(lo, hi, steps)))
    batches = list(data) if isinstance(data, list | tuple) else data
    if not hasattr(batches, "__len__"):  # a generator: its first `steps` batches
        batches = list(itertools.islice(batches, steps))
    n = len(batches)
    epochs = -(-steps // n)
    at_end = every(steps, stop)
    if isinstance(target, Params):
        kept = [(p, np.array(p.get())) for p in _all_arrays(target)]
        try:
            h = train(loss, target, batches, sweep, epochs=epochs, cb=at_end)
        finally:
            for p, a in kept:
                p.set(jnp.asarray(a))
    else:
        model = copy.deepcopy(target)
        h = train(loss, model, batches, setup(sweep, model), epochs=epochs, cb=at_end)
    losses = np.asarray(h.losses, np.float64)[:steps]
    etas = np.asarray([float(_Sweep(lo, hi, steps)(t)) for t in range(1, len(losses) + 1)])
    return _result(etas, losses, beta, diverge)


def _all_arrays(ps: Any) -> list[Any]:
    """Every array of the modules ``ps`` was built from (statistics and keys included)."""

    seen: set[int] = set()
    mods = [m for r in ps.roots for m in modules(r, seen)]
    return group(
        (o, path, a) for m in mods for o, path, a in walk(m, trainable_only=False) if o is m
    )


def _result(etas: np.ndarray, losses: np.ndarray, beta: float, diverge: float) -> LRFind:
    avg, smoothed = 0.0, np.empty_like(losses)
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged sweep's inf and NaN
        for i, v in enumerate(losses):  # fastai's debiased moving average
            avg = beta * avg + (1 - beta) * v
            smoothed[i] = avg / (1 - beta ** (i + 1))
    stop = len(losses)
    for i in range(len(smoothed)):
        if not np.isfinite(smoothed[i]) or smoothed[i] > diverge * np.min(smoothed[: i + 1]):
            stop = i
            break
    stop = max(stop, 3)
    slope = np.gradient(smoothed[:stop], np.log(etas[:stop]))
    skip = min(len(losses) // 10, stop - 1)  # the first tenth: the average is still settling
    return LRFind(etas, losses, smoothed, stop, float(etas[skip + int(np.nanargmin(slope[skip:]))]))
