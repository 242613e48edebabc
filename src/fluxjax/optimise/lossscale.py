"""Dynamic loss scaling for float16 training (Keras's ``LossScaleOptimizer``).

float16 gradients underflow: a gradient below 6e-8 becomes 0. ``train(...,
precision="float16")`` therefore multiplies the loss by a scale ``S`` before
differentiating, so every intermediate gradient is ``S`` times larger, and divides the
gradients by ``S`` again (in float32) before the rules see them. ``LossScale``, the first
member of the rule, holds ``S`` and adapts it, as Keras does:

* a step whose gradients are not all finite (``S`` too large: float16 overflowed) is
  skipped, every array unchanged, and ``S`` halves;
* after ``growth_steps`` finite steps in a row ``S`` doubles.

Its state ``(S, n, ok)`` (the scale, the finite steps since ``S`` last changed, whether the
last step was finite) is optimiser state like any other: saved, loaded and resumed with it.
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._hyper import check_static, counter
from .base import Rule

__all__ = ["LossScale", "loss_scale"]


class LossScale(Rule):
    """Dynamic loss scaling: skip a step with non-finite gradients and halve the scale ``S``;
    double ``S`` after ``growth_steps`` finite steps. ``d = g`` (the engine has already
    divided the gradients by ``S``). Put it first:
    ``fx.train(..., fx.OptimiserChain(fx.LossScale(), fx.Adam()), precision="float16")``.
    State ``(S, n, ok)``, ``S`` in the parameter's dtype. Defaults ``initial=2^15,
    growth_steps=2000``: Keras 3's ``LossScaleOptimizer(initial_scale=32768,
    dynamic_growth_steps=2000)``. Not in Flux.

    Outside ``train`` (``fx.update``) nothing scales the loss: the rule then only skips a
    step whose gradients are not all finite.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> rule, x = fx.LossScale(initial=8.0, growth_steps=2), jnp.zeros(2)
    >>> s = rule.init(x)
    >>> s, d = rule.apply(s, x, jnp.array([1.0, jnp.inf]))   # overflow: skip, S halves
    >>> float(s[0]), bool(rule.gate(s))
    (4.0, False)
    >>> s, d = rule.apply(s, x, jnp.ones(2)); s, d = rule.apply(s, x, jnp.ones(2))
    >>> float(s[0]), d                                       # two finite steps: S doubles
    (8.0, Array([1., 1.], dtype=float32))
    """

    formula = "finite: n ← n + 1, S ← 2S when n = growth_steps; else skip, S ← S/2; d = g"

    def __init__(self, initial: float = 2.0**15, growth_steps: int = 2000):
        self.initial = check_static(self, "initial", initial, lo=0, lo_open=True)
        self.growth_steps = check_static(self, "growth_steps", growth_steps, lo=1, integer=True)

    def init(self, x):
        s = jax.device_put(np.asarray(self.initial, jnp.result_type(x)))  # x's float dtype
        return (s, counter(0), jax.device_put(np.bool_(True)))

    def couples(self) -> bool:
        return True  # the step is skipped when any array's gradient is not finite

    def see_all(self, grads: list[Any]) -> Rule:
        new = copy.copy(self)
        object.__setattr__(new, "_finite", _all_finite(grads))
        return new

    def apply(self, state, x, dx):
        s, n, _ = state
        ok = self.__dict__.get("_finite")
        if ok is None:  # applied alone (no engine): this array's gradient
            ok = _all_finite([dx])
        grown = n + 1 >= self.growth_steps
        s2 = jnp.where(ok, jnp.where(grown, s * 2, s), s / 2).astype(s.dtype)
        n2 = jnp.where(ok & ~grown, n + 1, 0).astype(n.dtype)
        return (s2, n2, ok), dx

    def gate(self, state):
        return state[2]


def _all_finite(grads: list[Any]) -> jax.Array:
    # a sum is non-finite iff an element is (or it overflows float range)
    ok = [jnp.isfinite(jnp.sum(g)) for g in grads if g is not None]
    return jnp.all(jnp.stack(ok)) if ok else jnp.asarray(True)


def loss_scale(rule: Rule, state: Any) -> Any:
    """The scale ``S`` in ``state``, the state of ``rule`` for one array, when ``rule`` is a
    ``LossScale`` or a chain holding one; else None."""
    if isinstance(rule, LossScale):
        return state[0]
    members = getattr(rule, "rules", None)
    if isinstance(members, tuple):
        for r, s in zip(members, state):
            hit = loss_scale(r, s)
            if hit is not None:
                return hit
    return None


def has_loss_scale(rule: Rule) -> bool:
    """Whether ``rule`` is or holds a ``LossScale``."""
    return isinstance(rule, LossScale) or any(has_loss_scale(r) for r in rule.children())
