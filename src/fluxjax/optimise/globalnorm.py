"""Rules that read every gradient of a step at once: the global gradient norm and the
clipping by it (Optax's ``clip_by_global_norm``, Keras's ``global_clipnorm``).

A fluxjax rule sees one array at a time. A rule that *couples* arrays answers
``couples() -> True``; before ``apply`` the engine (``train``, ``fx.update``,
``rule.as_optax()``) hands it the gradients of every trainable array of the step through
``rule.see_all(grads)``, a copy holding them, as ``resolve(t)`` hands over the step count.
The norm is taken over the gradients as the loss gives them (before any member of a chain
has changed them), so put the clip first, as Optax users do.

>>> import jax.numpy as jnp, fluxjax as fx
>>> gs = [jnp.array([3.0]), jnp.array([4.0])]           # global norm 5
>>> rule = fx.ClipGlobalNorm(1.0).see_all(gs)
>>> [rule.apply((), jnp.zeros(1), g)[1] for g in gs]    # every gradient scaled by 1/5
[Array([0.6], dtype=float32), Array([0.8], dtype=float32)]
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ._hyper import Hyper, cast
from .base import Rule, check

__all__ = ["ClipGlobalNorm", "global_norm", "global_pnorm"]


def global_norm(grads: list[Any]) -> jax.Array:
    """``sqrt(Σ_arrays Σ |g|²)``, the 2-norm of all gradients together, in float32 (or the
    widest float dtype among them): ``optax.global_norm``'s value, summed in another order
    (each array's squares as a dot product with itself), so equal to float rounding.

    >>> import jax.numpy as jnp
    >>> global_norm([jnp.array([3.0]), jnp.array([[4.0]])])
    Array(5., dtype=float32)
    """
    gs = [g for g in grads if g is not None]
    if not gs:
        return jnp.zeros((), jnp.float32)
    dt = jnp.result_type(jnp.float32, *[jnp.real(g).dtype for g in gs])
    sq = [_squares(g, dt) for g in gs]
    return jnp.sqrt(sum(sq[1:], sq[0]))


def _squares(g: Any, dt: Any) -> jax.Array:
    """``Σ |g|²`` in ``dt``. A real array already in ``dt`` takes a dot product with
    itself, which reads it once: XLA's CPU backend writes ``g * g`` out in full before
    summing it (784-2048-2048-10 with Adam: 9% of a step)."""
    if jnp.result_type(g) == dt and g.size > 0:
        v = jnp.ravel(g)
        return jnp.dot(v, v, precision=jax.lax.Precision.HIGHEST)
    return jnp.sum(jnp.real(g * jnp.conj(g)).astype(dt))


def global_pnorm(grads: list[Any], p: float) -> jax.Array:
    """The p-norm of all gradients together, scaled by their largest element against
    overflow (as ``ClipNorm``'s per-array norm)."""
    gs = [jnp.abs(g) for g in grads if g is not None]
    if not gs:
        return jnp.zeros((), jnp.float32)
    dt = jnp.result_type(jnp.float32, *[g.dtype for g in gs])
    big = jnp.max(jnp.stack([jnp.max(g, initial=0).astype(dt) for g in gs]))
    if p == math.inf:
        return big
    s = jnp.where((big > 0) & jnp.isfinite(big), big, jnp.ones_like(big))
    parts = [jnp.sum((g.astype(dt) / s) ** p) for g in gs]
    total = sum(parts[1:], parts[0])
    return s * (jnp.sqrt(total) if p == 2 else total ** (1 / p))


class ClipGlobalNorm(Rule):
    """Scales every gradient by one factor when the norm of all of them exceeds ω.

    ``n = sqrt(Σ_arrays ‖g‖²)``; ``d = g`` if ``n < ω`` else ``(g/n)·ω``: Optax's
    ``clip_by_global_norm(ω)`` to the operation, Keras's ``global_clipnorm=ω``, PyTorch's
    ``clip_grad_norm_``. No state. Put it first in a chain:
    ``fx.OptimiserChain(fx.ClipGlobalNorm(1.0), fx.Adam())``. ``ClipNorm(ω, over="all")``
    is the same clip with ``ClipNorm``'s p-norms and non-finite check. Default ``omega=1.0``.
    Not in Flux.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Chain(fx.Dense(jnp.array([[0.0]]), False), fx.Dense(jnp.array([[1.0]]), False))
    >>> x = jnp.ones((1, 1))
    >>> rule = fx.OptimiserChain(fx.ClipGlobalNorm(0.5), fx.Descent(1.0))
    >>> _ = fx.train(lambda m, x: m(x).sum(), m, [(x,)], fx.setup(rule, m))
    >>> m[0].weight, m[1].weight   # gradients (1, 0): norm 1 clipped to 0.5
    (Array([[-0.5]], dtype=float32), Array([[1.]], dtype=float32))
    """

    formula = "n = ‖(g₁, …, gₖ)‖₂ over all arrays; d = g if n < ω else (g/n)·ω"

    def __init__(self, omega: Hyper = 1.0):
        self.omega = check(self, "omega", omega, lo=0)

    def couples(self) -> bool:
        return True

    def see_all(self, grads: list[Any]) -> Rule:
        import copy

        new = copy.copy(self)
        object.__setattr__(new, "_norm", global_norm(grads))
        return new

    def apply(self, state, x, dx):
        n = self.__dict__.get("_norm")
        if n is None:  # applied alone (no engine): the norm of this array
            n = global_norm([dx])
        n = n.astype(dx.dtype)
        return state, jnp.where(n < cast(self.omega, dx), dx, (dx / n) * cast(self.omega, dx))
