"""Schedules: hyperparameters that change with the 1-based update count ``t``.

A schedule is any callable of ``t`` (a Python int or a traced integer) that returns a
number; the classes here return a JAX scalar and print as their constructor. Pass one
wherever a rule takes a number::

    >>> from fluxjax.optimise.rules import Adam
    >>> rule = Adam(eta=Cosine(1e-3, 0.0, 100))
    >>> rule
    Adam(eta=Cosine(start=0.001, stop=0.0, period=100), beta=(0.9, 0.999), epsilon=1e-08)
    >>> float(rule.resolve(101).eta)
    0.0

The optimiser interface evaluates them with ``rule.resolve(t)`` inside the compiled step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .base import check, is_schedule

__all__ = ["Schedule", "Cosine", "Step", "Exponential", "LinearWarmup"]


class Schedule:
    """Base class of the schedules here: a callable of ``t`` with a generated repr.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> class Halving(fx.Schedule):
    ...     def __init__(self, start):
    ...         self.start = start
    ...     def __call__(self, t):
    ...         return self.start * 0.5 ** (jnp.asarray(t) - 1)
    >>> Halving(0.1), float(Halving(0.1)(3))
    (Halving(start=0.1), 0.025)
    """

    def __call__(self, t: Any) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(t)")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _t(t: Any) -> jax.Array:
    """The update count as a float array (float64 when JAX's x64 mode is on)."""
    return jnp.asarray(t, dtype=jnp.result_type(float))


class Cosine(Schedule):
    """Cosine annealing from ``start`` to ``stop`` over ``period`` updates, then constant.

    ``τ = min(t − 1, period)/period``; value ``stop + (start − stop)·(1 + cos(π·τ))/2``:
    ``start`` at ``t = 1``, ``stop`` from ``t = period + 1`` on.

    >>> s = Cosine(1.0, 0.0, 10)
    >>> [round(float(s(t)), 4) for t in (1, 6, 11, 50)]
    [1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, start: float, stop: float = 0.0, period: int | None = None):
        if period is None:
            raise TypeError("Cosine: period is required, e.g. Cosine(0.001, 0.0, 1000).")
        self.start = check(self, "start", start)
        self.stop = check(self, "stop", stop)
        self.period = check(self, "period", period, lo=1, integer=True)

    def __call__(self, t: Any) -> jax.Array:
        tau = jnp.clip(_t(t) - 1, 0, self.period) / self.period
        return self.stop + (self.start - self.stop) * (1 + jnp.cos(math.pi * tau)) / 2


class Step(Schedule):
    """Step decay: ``start·decay^⌊(t − 1)/step⌋`` (multiplied by ``decay`` every ``step``).

    >>> s = Step(1.0, 0.5, 10)
    >>> [float(s(t)) for t in (1, 10, 11, 21)]
    [1.0, 1.0, 0.5, 0.25]
    """

    def __init__(self, start: float, decay: float, step: int):
        self.start = check(self, "start", start)
        self.decay = check(self, "decay", decay, lo=0)
        self.step = check(self, "step", step, lo=1, integer=True)

    def __call__(self, t: Any) -> jax.Array:
        return self.start * self.decay ** _t(jnp.floor_divide(jnp.asarray(t) - 1, self.step))


class Exponential(Schedule):
    """Exponential decay: ``start·decay^(t − 1)``.

    >>> s = Exponential(1.0, 0.5)
    >>> [float(s(t)) for t in (1, 2, 4)]
    [1.0, 0.5, 0.125]
    """

    def __init__(self, start: float, decay: float):
        self.start = check(self, "start", start)
        self.decay = check(self, "decay", decay, lo=0)

    def __call__(self, t: Any) -> jax.Array:
        return self.start * self.decay ** (_t(t) - 1)


class LinearWarmup(Schedule):
    """Linear warm-up to ``peak``, then ``after``.

    ``peak·t/warmup`` for ``t ≤ warmup`` (``peak/warmup`` at ``t = 1``, ``peak`` at
    ``t = warmup``); afterwards ``after(t − warmup)`` when ``after`` is a schedule, ``after``
    when it is a number, and ``peak`` when it is None.

    >>> s = LinearWarmup(1.0, 4, after=Exponential(1.0, 0.5))
    >>> [float(s(t)) for t in (1, 2, 4, 5, 6)]
    [0.25, 0.5, 1.0, 1.0, 0.5]
    """

    def __init__(self, peak: float, warmup: int, after: float | Callable | None = None):
        self.peak = check(self, "peak", peak)
        self.warmup = check(self, "warmup", warmup, lo=1, integer=True)
        self.after = after if after is None else check(self, "after", after)

    def __call__(self, t: Any) -> jax.Array:
        tf, after = _t(t), self.peak if self.after is None else self.after
        later = after(t - self.warmup) if is_schedule(after) else after
        return jnp.where(tf <= self.warmup, self.peak * tf / self.warmup, _t(later))
