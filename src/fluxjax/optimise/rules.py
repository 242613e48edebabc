"""Optimiser rules: one small class per rule, Optimisers.jl v0.4 arithmetic.

Every rule follows the protocol of :mod:`fluxjax.optimise.base`: ``init(x) -> state`` and
``apply(state, x, g) -> (state, d)``, after which the parameter becomes ``x - d``. Each
class states its update as a one-line ``formula`` and in its docstring, where ``g`` is the
gradient, ``d`` the step and ``t`` the 1-based count of updates of that array.

Hyperparameters are converted to the parameter's dtype inside ``apply`` (Optimisers.jl's
``T(η)``), so float32 parameters do float32 arithmetic and float64 stays float64. They may
be schedules (see :mod:`fluxjax.optimise.schedules`). States are tuples of JAX arrays;
scalars in them are 0-d arrays (counters int32, flags bool). Each stateful rule names its
state with a ``NamedTuple`` (``AdamState(m, v, bt)``, as Optax's ``ScaleByAdamState``); the
field order is the order of the arrays in a saved file, so it must not change.

The examples assume ``import jax.numpy as jnp``.

This file is a rule table, longer than the ~400 lines of other modules on purpose: one small
class per rule, read side by side as in Optimisers.jl's ``rules.jl``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .base import Rule, check

__all__ = [
    "Descent",
    "Momentum",
    "Nesterov",
    "Rprop",
    "RMSProp",
    "Adam",
    "RAdam",
    "AdaMax",
    "OAdam",
    "AdaGrad",
    "AdaDelta",
    "AMSGrad",
    "NAdam",
    "AdamW",
    "AdaBelief",
    "Lion",
    "WeightDecay",
    "SignDecay",
    "ClipGrad",
    "ClipNorm",
    "ClipGlobalNorm",
    "LossScale",
    "InvDecay",
    "ExpDecay",
    "SkipNonFinite",
    "AccumGrad",
    "EMA",
    "SWA",
    "OptimiserChain",
    # Flux v0.12 names: the same class objects.
    "ADAM",
    "RADAM",
    "NADAM",
    "ADAMW",
    "ADAGrad",
    "ADADelta",
    "OADAM",
    "ClipValue",
    "Optimiser",
]

from ._hyper import (
    Hyper,
    abs2,
    at_start,
    cast,
    cast_eps,
    cast_pair,
    check_beta,
    check_flag,
    check_pair,
    counter,
    host_full,
    host_pair,
    host_zeros,
)
from .averaging import EMA, SWA  # noqa: F401
from .composites import (  # noqa: F401  (re-exported: every rule is listed here)
    AccumGrad,
    ClipGrad,
    ClipNorm,
    ClipValue,
    ExpDecay,
    InvDecay,
    Optimiser,
    OptimiserChain,
    SignDecay,
    SkipNonFinite,
    WeightDecay,
)
from .globalnorm import ClipGlobalNorm  # noqa: F401
from .lossscale import LossScale  # noqa: F401

# -- plain gradient descent ------------------------------------------------------------


class Descent(Rule):
    """Plain gradient descent: ``d = η·g``. No state.

    Default ``eta=0.1`` (as Flux v0.12 and Optimisers.jl). Unlike Optimisers.jl, a negative
    ``eta`` is refused here as for every other rule.

    >>> rule, x, g = Descent(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> x - step
    Array([0.95, 2.1 ], dtype=float32)
    """

    formula = "d = η·g"
    elementwise = True

    def __init__(self, eta: Hyper = 0.1):
        self.eta = check(self, "eta", eta, lo=0)

    def apply(self, state, x, dx):
        return state, cast(self.eta, x) * dx


class MomentumState(NamedTuple):
    """The state of :class:`Momentum`: the velocity ``v``."""

    v: Any


class Momentum(Rule):
    """Gradient descent with (heavy-ball) momentum: ``v ← ρ·v + η·g``, ``d = v``.

    State ``(v,)``, zeros. Defaults ``eta=0.01, rho=0.9``. Flux v0.12 stored ``−v``; the
    updates are identical.

    >>> rule, x, g = Momentum(0.1, 0.9), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> state, step = rule.apply(state, x, g)
    >>> step  # 0.9·(0.1·g) + 0.1·g
    Array([ 0.095, -0.19 ], dtype=float32)
    """

    formula = "v ← ρ·v + η·g; d = v"
    elementwise = True

    def __init__(self, eta: Hyper = 0.01, rho: Hyper = 0.9):
        self.eta = check(self, "eta", eta, lo=0)
        self.rho = check(self, "rho", rho, lo=0, hi=1)

    def init(self, x):
        return MomentumState(v=host_zeros(x))

    def apply(self, state, x, dx):
        v = cast(self.rho, x) * state.v + cast(self.eta, x) * dx
        return MomentumState(v), v


class NesterovState(NamedTuple):
    """The state of :class:`Nesterov`: the velocity ``v``."""

    v: Any


class Nesterov(Rule):
    """Nesterov momentum: ``d = (1+ρ)·η·g − ρ²·v``, then ``v ← ρ·v − η·g`` (old ``v`` in ``d``).

    State ``(v,)``, zeros. Defaults ``eta=0.001, rho=0.9``. Same as Flux v0.12.

    >>> rule, x, g = Nesterov(0.1, 0.5), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # (1 + 0.5)·0.1·g
    Array([ 0.075, -0.15 ], dtype=float32)
    """

    formula = "d = (1+ρ)·η·g − ρ²·v; v ← ρ·v − η·g"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, rho: Hyper = 0.9):
        self.eta = check(self, "eta", eta, lo=0)
        self.rho = check(self, "rho", rho, lo=0, hi=1)

    def init(self, x):
        return NesterovState(v=host_zeros(x))

    def apply(self, state, x, dx):
        eta = cast(self.eta, x)
        rho = cast(self.rho, x)
        d = (1 + rho) * eta * dx - rho * rho * state.v
        v = rho * state.v - eta * dx
        return NesterovState(v), d


class RpropState(NamedTuple):
    """The state of :class:`Rprop`: the last gradient kept ``g_prev`` and the step sizes ``s``."""

    g_prev: Any
    s: Any


class Rprop(Rule):
    """Resilient propagation (iRprop−), with per-element step sizes ``s``.

    With ``p = g_prev·g``: ``s ← min(s·ℓ₊, Γmax)`` where ``p > 0``, ``s ← max(s·ℓ₋, Γmin)``
    where ``p < 0``; ``g_prev ← 0`` where ``p < 0``, else ``g``; ``d = s·sign(g_prev)``.
    State ``(g_prev, s)`` = ``(0, η)``. Defaults ``eta=0.001, ell=(0.5, 1.2),
    gamma=(1e-6, 50.0)``. Not in Flux v0.12.

    >>> rule, x, g = Rprop(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> state, step = rule.apply(state, x, g)
    >>> step  # sign(g)·0.1·1.2
    Array([ 0.12, -0.12], dtype=float32)
    """

    formula = "s ← clamp(s·ℓ±, Γ) by sign(g_prev·g); d = s·sign(g)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, ell=(0.5, 1.2), gamma=(1e-6, 50.0)):
        self.eta = check(self, "eta", eta, lo=0)
        self.ell = check_pair(self, "ell", ell, lo=0, lo_open=True)
        self.gamma = check_pair(self, "gamma", gamma, lo=0)
        if not self.ell[0] <= 1 <= self.ell[1] or self.gamma[0] > self.gamma[1]:
            raise ValueError(
                f"Rprop: need ell[0] <= 1 <= ell[1] and gamma[0] <= gamma[1], got ell={ell!r}, "
                f"gamma={gamma!r}. Pass e.g. Rprop(ell=(0.5, 1.2), gamma=(1e-6, 50.0))."
            )

    def init(self, x):
        return RpropState(g_prev=host_zeros(x), s=host_full(x, at_start(self.eta)))

    def apply(self, state, x, dx):
        (l1, l2), (gmin, gmax) = cast_pair(self.ell, x), cast_pair(self.gamma, x)
        p = state.g_prev * dx
        grown = jnp.minimum(state.s * l2, gmax)
        shrunk = jnp.maximum(state.s * l1, gmin)
        s = jnp.where(p > 0, grown, jnp.where(p < 0, shrunk, state.s))
        g_prev = jnp.where(p < 0, jnp.zeros_like(dx), dx)
        return RpropState(g_prev, s), s * jnp.sign(g_prev)


class RMSPropState(NamedTuple):
    """The state of :class:`RMSProp`: the mean square ``q`` and, when centred, the mean
    ``lin`` (``()`` otherwise)."""

    q: Any
    lin: Any


class RMSProp(Rule):
    """RMSProp: ``q ← ρ·q + (1−ρ)·g²``, ``d = η·g / (√(q − lin²) + ϵ)``.

    With ``centred=True`` (``centered=`` is accepted too) it also keeps
    ``lin ← ρ·lin + (1−ρ)·g``; otherwise ``lin = 0``. State ``(q, lin)``, with ``lin = ()``
    when not centred. Defaults ``eta=0.001, rho=0.9, epsilon=1e-8``. No bias correction.
    Flux v0.12 had no ``centred`` option.

    >>> rule, x, g = RMSProp(0.01), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # 0.01·g/√(0.1·g²) = 0.01·sign(g)/√0.1
    Array([ 0.0316, -0.0316], dtype=float32)
    """

    formula = "q ← ρ·q + (1−ρ)·g²; d = η·g/(√(q − lin²) + ϵ)"
    elementwise = True

    def __init__(
        self,
        eta: Hyper = 0.001,
        rho: Hyper = 0.9,
        epsilon: Hyper = 1e-8,
        *,
        centred: bool = False,
        centered: bool | None = None,
    ):
        self.eta = check(self, "eta", eta, lo=0)
        self.rho = check(self, "rho", rho, lo=0, hi=1)
        self.epsilon = check(self, "epsilon", epsilon, lo=0)
        self.centred = check_flag(self, "centred", centred if centered is None else centered)

    def init(self, x):
        return RMSPropState(q=host_zeros(x), lin=host_zeros(x) if self.centred else ())

    def apply(self, state, x, dx):
        rho = cast(self.rho, x)
        q = rho * state.q + (1 - rho) * abs2(dx)
        lin = rho * state.lin + (1 - rho) * dx if self.centred else state.lin
        var = q - abs2(lin) if self.centred else q
        d = cast(self.eta, x) * dx / (jnp.sqrt(var) + cast_eps(self.epsilon, x))
        return RMSPropState(q, lin), d


# -- the Adam family -------------------------------------------------------------------


class AdamState(NamedTuple):
    """The state of :class:`Adam` (and :class:`NAdam`, :class:`AdamW`): the moments ``m``,
    ``v`` and ``bt = (β1ᵗ, β2ᵗ)``."""

    m: Any
    v: Any
    bt: tuple[Any, Any]


def _adam_hypers(rule: Rule, eta: Hyper, beta: Any, epsilon: Hyper) -> None:
    """Check and set the hyperparameters the Adam family shares: ``eta``, ``beta``, ``epsilon``."""
    rule.eta = check(rule, "eta", eta, lo=0)
    rule.beta = check_beta(rule, beta)
    rule.epsilon = check(rule, "epsilon", epsilon, lo=0)


def _moments(rule: Rule, state: Any, x: Any, dx: Any) -> tuple[jax.Array, jax.Array]:
    """Adam's moment updates ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``."""
    b1, b2 = cast_pair(rule.beta, x)
    m = b1 * state.m + (1 - b1) * dx
    v = b2 * state.v + (1 - b2) * abs2(dx)
    return m, v


def _adam_init(rule: Rule, x: Any) -> AdamState:
    return AdamState(m=host_zeros(x), v=host_zeros(x), bt=host_pair(rule.beta, x))


def _next_bt(rule: Rule, bt: Any, x: Any) -> tuple[jax.Array, jax.Array]:
    b1, b2 = cast_pair(rule.beta, x)
    return bt[0] * b1, bt[1] * b2


class Adam(Rule):
    """Adam (Kingma & Ba): bias-corrected moments, ϵ outside the root.

    ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``,
    ``d = η·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ϵ)``. State ``(m, v, βt)`` with ``βt = (β1ᵗ, β2ᵗ)``
    as 0-d arrays. Defaults ``eta=0.001, beta=(0.9, 0.999), epsilon=1e-8``. Flux v0.12's
    ``ADAM`` (an alias); the same arithmetic.

    >>> rule, x, g = Adam(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # the first step is η·sign(g)
    Array([ 0.1, -0.1], dtype=float32)
    """

    formula = "m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; d = η·m̂/(√v̂ + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return _adam_init(self, x)

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        mhat = m / (1 - state.bt[0])
        vhat = v / (1 - state.bt[1])
        # η last, as Optimisers.jl: η·m̂ first would underflow in float16
        d = mhat / (jnp.sqrt(vhat) + cast_eps(self.epsilon, x)) * cast(self.eta, x)
        return AdamState(m, v, _next_bt(self, state.bt, x)), d


class RAdamState(NamedTuple):
    """The state of :class:`RAdam`: Adam's ``m``, ``v``, ``bt`` and the count ``t``."""

    m: Any
    v: Any
    bt: tuple[Any, Any]
    t: Any


class RAdam(Rule):
    """Rectified Adam (Liu et al.): Adam times ``r`` once the variance is tractable.

    ``ρ∞ = 2/(1−β2) − 1``, ``ρt = ρ∞ − 2t·β2ᵗ/(1−β2ᵗ)``; if ``ρt > 4``:
    ``r = √((ρt−4)(ρt−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρt))`` and ``d = r·(Adam's step)``, else
    ``d = η·m/(1−β1ᵗ)`` (the first 4 steps with β2 = 0.999). State ``(m, v, βt, t)``.
    Defaults as Adam. Flux v0.12's ``RADAM`` (an alias); the same arithmetic.

    >>> rule, x, g = RAdam(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> bool(jnp.allclose(step, 0.1 * g))  # early steps: η·m̂ = η·g
    True
    """

    formula = "ρt = ρ∞ − 2t·β2ᵗ/(1−β2ᵗ); d = ρt > 4 ? r·η·m̂/(√v̂ + ϵ) : η·m̂"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return RAdamState(*_adam_init(self, x), t=counter(1))

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        bt, t, b2 = state.bt, state.t, cast(self.beta[1], x)
        rinf = jnp.real(2 / (1 - b2) - 1)  # real also for complex parameters
        rho = rinf - jnp.real(2 * t.astype(x.dtype) * bt[1] / (1 - bt[1]))
        r = jnp.sqrt(jnp.maximum((rho - 4) * (rho - 2) * rinf / ((rinf - 4) * (rinf - 2) * rho), 0))
        mhat = m / (1 - bt[0])
        eta = cast(self.eta, x)
        adapted = mhat / (jnp.sqrt(v / (1 - bt[1])) + cast_eps(self.epsilon, x)) * eta * r  # η last
        d = jnp.where(rho > 4, adapted, mhat * eta)
        return RAdamState(m, v, _next_bt(self, bt, x), t + 1), d


class AdaMaxState(NamedTuple):
    """The state of :class:`AdaMax`: ``m``, the infinity norm ``u`` and ``bt``."""

    m: Any
    u: Any
    bt: tuple[Any, Any]


class AdaMax(Rule):
    """AdaMax (Kingma & Ba): Adam with the infinity norm.

    ``m ← β1·m + (1−β1)·g``, ``u ← max(β2·u, |g|)``, ``d = η/(1−β1ᵗ) · m/(u + ϵ)``.
    State ``(m, u, βt)``. Defaults as Adam. Same as Flux v0.12.

    >>> rule, x, g = AdaMax(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.1, -0.1], dtype=float32)
    """

    formula = "m ← β1·m + (1−β1)·g; u ← max(β2·u, |g|); d = η/(1−β1ᵗ)·m/(u + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return AdaMaxState(*_adam_init(self, x))

    def apply(self, state, x, dx):
        b1, b2 = cast_pair(self.beta, x)
        m = b1 * state.m + (1 - b1) * dx
        u = jnp.maximum(b2 * state.u, jnp.abs(dx))
        d = (cast(self.eta, x) / (1 - state.bt[0])) * m / (u + cast_eps(self.epsilon, x))
        return AdaMaxState(m, u, _next_bt(self, state.bt, x)), d


class OAdamState(NamedTuple):
    """The state of :class:`OAdam`: Adam's ``m``, ``v``, ``bt`` and the last ``term``."""

    m: Any
    v: Any
    bt: tuple[Any, Any]
    term: Any


class OAdam(Rule):
    """Optimistic Adam (Daskalakis et al.): ``d = 2·termₜ − termₜ₋₁``.

    ``termₜ`` is Adam's step ``η·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ϵ)``. State
    ``(m, v, βt, term)``. Defaults ``eta=0.001, beta=(0.5, 0.9), epsilon=1e-8``. Flux v0.12's
    ``OADAM`` (an alias); the same arithmetic (its docstring's η = 0.0001 was never the default).

    >>> rule, x, g = OAdam(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # 2·(η·sign(g)) − 0
    Array([ 0.2, -0.2], dtype=float32)
    """

    formula = "term = η·m̂/(√v̂ + ϵ); d = 2·term − term_prev"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.5, 0.9), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return OAdamState(*_adam_init(self, x), term=host_zeros(x))

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        bt = state.bt
        vhat = v / (1 - bt[1])
        term = cast(self.eta, x) * m / (1 - bt[0]) / (jnp.sqrt(vhat) + cast_eps(self.epsilon, x))
        return OAdamState(m, v, _next_bt(self, bt, x), term), 2 * term - state.term


class AdaGradState(NamedTuple):
    """The state of :class:`AdaGrad`: the sum of squares ``acc``."""

    acc: Any


class AdaGrad(Rule):
    """AdaGrad (Duchi et al.): ``acc ← acc + g²``, ``d = η·g/(√acc + ϵ)``.

    State ``(acc,)``, filled with ``ϵ`` (not zero). Defaults ``eta=0.1, epsilon=1e-8``. Flux
    v0.12's ``ADAGrad`` (an alias); the same arithmetic.

    >>> rule, x, g = AdaGrad(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.1, -0.1], dtype=float32)
    """

    formula = "acc ← acc + g² (acc₀ = ϵ); d = η·g/(√acc + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.1, epsilon: Hyper = 1e-8):
        self.eta = check(self, "eta", eta, lo=0)
        self.epsilon = check(self, "epsilon", epsilon, lo=0)

    def init(self, x):
        return AdaGradState(acc=host_full(x, at_start(self.epsilon)))

    def apply(self, state, x, dx):
        acc = state.acc + abs2(dx)
        d = cast(self.eta, x) * dx / (jnp.sqrt(acc) + cast_eps(self.epsilon, x))
        return AdaGradState(acc), d


class AdaDeltaState(NamedTuple):
    """The state of :class:`AdaDelta`: the mean squares of the gradient ``acc`` and of
    the step ``dacc``."""

    acc: Any
    dacc: Any


class AdaDelta(Rule):
    """AdaDelta (Zeiler): no learning rate; ϵ inside both roots.

    ``acc ← ρ·acc + (1−ρ)·g²``, ``d = g·√(Δacc + ϵ)/√(acc + ϵ)``, ``Δacc ← ρ·Δacc + (1−ρ)·d²``.
    State ``(acc, Δacc)``, zeros. Defaults ``rho=0.9, epsilon=1e-8``. Flux v0.12's
    ``ADADelta`` (an alias); the same arithmetic.

    >>> rule, x, g = AdaDelta(0.5, 0.01), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # g·√0.01/√(0.5·g² + 0.01)
    Array([ 0.1361, -0.1400  ], dtype=float32)
    """

    formula = "acc ← ρ·acc + (1−ρ)·g²; d = g·√(Δacc + ϵ)/√(acc + ϵ); Δacc ← ρ·Δacc + (1−ρ)·d²"
    elementwise = True

    def __init__(self, rho: Hyper = 0.9, epsilon: Hyper = 1e-8):
        self.rho = check(self, "rho", rho, lo=0, hi=1)
        self.epsilon = check(self, "epsilon", epsilon, lo=0)

    def init(self, x):
        return AdaDeltaState(acc=host_zeros(x), dacc=host_zeros(x))

    def apply(self, state, x, dx):
        rho, eps = cast(self.rho, x), cast_eps(self.epsilon, x)
        acc = rho * state.acc + (1 - rho) * abs2(dx)
        d = dx * jnp.sqrt(state.dacc + eps) / jnp.sqrt(acc + eps)
        dacc = rho * state.dacc + (1 - rho) * abs2(d)
        return AdaDeltaState(acc, dacc), d


class AMSGradState(NamedTuple):
    """The state of :class:`AMSGrad`: the moments ``m``, ``v`` and the running maximum ``vhat``."""

    m: Any
    v: Any
    vhat: Any


class AMSGrad(Rule):
    """AMSGrad (Reddi et al.): Adam with a running maximum of ``v`` and no bias correction.

    ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``, ``v̂ ← max(v̂, v)``,
    ``d = η·m/(√v̂ + ϵ)``. State ``(m, v, v̂)``, all filled with ``ϵ``. Defaults as Adam.
    Same as Flux v0.12.

    >>> rule, x, g = AMSGrad(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # 0.1·(0.1·g)/√(0.001·g²)
    Array([ 0.3162, -0.3162], dtype=float32)
    """

    formula = "m, v as Adam (all state ϵ-filled); v̂ ← max(v̂, v); d = η·m/(√v̂ + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        eps = at_start(self.epsilon)
        return AMSGradState(m=host_full(x, eps), v=host_full(x, eps), vhat=host_full(x, eps))

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        vhat = jnp.maximum(state.vhat, v)
        d = cast(self.eta, x) * m / (jnp.sqrt(vhat) + cast_eps(self.epsilon, x))
        return AMSGradState(m, v, vhat), d


class NAdam(Rule):
    """NAdam (Dozat): Adam with Nesterov momentum, Optimisers.jl's form.

    ``d = η·(β1·m/(1−β1ᵗ⁺¹) + (1−β1)·g/(1−β1ᵗ)) / (√(β2·v/(1−β2ᵗ)) + ϵ)`` with the updated
    ``m, v`` (note the extra ``β2`` inside the root). State ``(m, v, βt)``. Defaults as Adam.
    Flux v0.12's ``NADAM`` (an alias); the same arithmetic.

    >>> rule, x, g = NAdam(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.1, -0.1], dtype=float32)
    """

    formula = "d = η·(β1·m/(1−β1ᵗ⁺¹) + (1−β1)·g/(1−β1ᵗ))/(√(β2·v/(1−β2ᵗ)) + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-8):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return _adam_init(self, x)

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        bt, (b1, b2) = state.bt, cast_pair(self.beta, x)
        num = b1 * m / (1 - b1 * bt[0]) + (1 - b1) * dx / (1 - bt[0])
        d = num / (jnp.sqrt(v * b2 / (1 - bt[1])) + cast_eps(self.epsilon, x)) * cast(self.eta, x)
        return AdamState(m, v, _next_bt(self, bt, x)), d


class AdamW(Rule):
    """Adam with weight decay: ``a = m̂/(√v̂ + ϵ)`` (Adam's step with η = 1), then
    ``d = η·(a + λ·x)`` when ``couple=True`` (the default, PyTorch's AdamW) or
    ``d = η·a + λ·x`` when ``couple=False``.

    State ``(m, v, βt)``. Defaults ``eta=0.001, beta=(0.9, 0.999), lambda_=0.0,
    epsilon=1e-8``. Differs from Flux v0.12's ``ADAMW`` (an alias of this class), which was
    ``Optimiser(ADAM(η, β), WeightDecay(λ))``, that is ``couple=False``.

    >>> rule, x, g = AdamW(0.1, lambda_=0.5), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # 0.1·(sign(g) + 0.5·x)
    Array([0.15, 0.  ], dtype=float32)
    """

    formula = "a = m̂/(√v̂ + ϵ); d = η·(a + λ·x) (couple) or η·a + λ·x"
    elementwise = True

    def __init__(
        self,
        eta: Hyper = 0.001,
        beta=(0.9, 0.999),
        lambda_: Hyper = 0.0,
        epsilon: Hyper = 1e-8,
        *,
        couple: bool = True,
    ):
        self.eta = check(self, "eta", eta, lo=0)
        self.beta = check_beta(self, beta)
        self.lambda_ = check(self, "lambda_", lambda_, lo=0)
        self.epsilon = check(self, "epsilon", epsilon, lo=0)
        self.couple = check_flag(self, "couple", couple)

    def init(self, x):
        return _adam_init(self, x)

    def apply(self, state, x, dx):
        m, v = _moments(self, state, x, dx)
        eta, lam = cast(self.eta, x), cast(self.lambda_, x)
        mhat = m / (1 - state.bt[0])
        vhat = v / (1 - state.bt[1])
        a = mhat / (jnp.sqrt(vhat) + cast_eps(self.epsilon, x))
        d = eta * (a + lam * x) if self.couple else eta * a + lam * x
        return AdamState(m, v, _next_bt(self, state.bt, x)), d


class AdaBeliefState(NamedTuple):
    """The state of :class:`AdaBelief`: ``m``, the belief ``s`` and ``bt``."""

    m: Any
    s: Any
    bt: tuple[Any, Any]


class AdaBelief(Rule):
    """AdaBelief (Zhuang et al.): the variance of the gradient around ``m``, bias-corrected.

    ``m ← β1·m + (1−β1)·g``, ``s ← β2·s + (1−β2)·(g − m)² + ϵ`` (the new ``m``),
    ``d = η·(m/(1−β1ᵗ)) / (√(s/(1−β2ᵗ)) + ϵ)``. State ``(m, s, βt)``. Defaults ``eta=0.001,
    beta=(0.9, 0.999), epsilon=1e-16``. Differs from Flux v0.12 (no bias correction, ϵ = 1e-8
    only outside the root).

    >>> rule, x, g = AdaBelief(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step  # m̂ = g, ŝ = 0.81·g²: 0.1/0.9·sign(g)
    Array([ 0.1111, -0.1111], dtype=float32)
    """

    formula = "m ← β1·m + (1−β1)·g; s ← β2·s + (1−β2)·(g−m)² + ϵ; d = η·m̂/(√ŝ + ϵ)"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999), epsilon: Hyper = 1e-16):
        _adam_hypers(self, eta, beta, epsilon)

    def init(self, x):
        return AdaBeliefState(*_adam_init(self, x))

    def apply(self, state, x, dx):
        (b1, b2), eps, bt = cast_pair(self.beta, x), cast_eps(self.epsilon, x), state.bt
        m = b1 * state.m + (1 - b1) * dx
        s = b2 * state.s + (1 - b2) * abs2(dx - m) + eps
        d = cast(self.eta, x) * m / (1 - bt[0]) / (jnp.sqrt(s / (1 - bt[1])) + eps)
        return AdaBeliefState(m, s, _next_bt(self, bt, x)), d


class LionState(NamedTuple):
    """The state of :class:`Lion`: the momentum ``m``."""

    m: Any


class Lion(Rule):
    """Lion (Chen et al. 2023, Algorithm 1), following the paper.

    ``c = β1·m + (1−β1)·g``, ``d = η·sign(c)``, ``m ← β2·m + (1−β2)·g``. State ``(m,)``,
    zeros. Defaults ``eta=0.001, beta=(0.9, 0.999)`` (Optimisers.jl's). Optimisers.jl v0.4's
    code swaps the momentum weights (``m ← β2·g + (1−β2)·m``, ``d = η·sign((β2−β1)·g + β1·m)``);
    fluxjax follows the paper, so the two differ from the second step on. Not in Flux v0.12.

    >>> rule, x, g = Lion(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.1, -0.1], dtype=float32)
    """

    formula = "c = β1·m + (1−β1)·g; d = η·sign(c); m ← β2·m + (1−β2)·g"
    elementwise = True

    def __init__(self, eta: Hyper = 0.001, beta=(0.9, 0.999)):
        self.eta = check(self, "eta", eta, lo=0)
        self.beta = check_beta(self, beta, hi_open=False)

    def init(self, x):
        return LionState(m=host_zeros(x))

    def apply(self, state, x, dx):
        b1, b2 = cast_pair(self.beta, x)
        d = cast(self.eta, x) * jnp.sign(b1 * state.m + (1 - b1) * dx)
        m = b2 * state.m + (1 - b2) * dx
        return LionState(m), d


# Flux v0.12 names (renamed in v0.13.4); the same class objects.
ADAM = Adam
RADAM = RAdam
NADAM = NAdam
ADAMW = AdamW
ADAGrad = AdaGrad
ADADelta = AdaDelta
OADAM = OAdam
