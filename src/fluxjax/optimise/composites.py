"""Rules meant for an ``OptimiserChain``: decay, clipping, skipping and accumulation, and
the chain itself (Optimisers.jl v0.4; ``InvDecay``/``ExpDecay``/``ClipValue``/``Optimiser``
as Flux v0.12). The examples assume ``import jax.numpy as jnp``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import jax
import jax.numpy as jnp

from ._hyper import Hyper, at_start, cast, check_flag, check_static, counter, host_zeros
from .base import Rule, check, is_transformation
from .globalnorm import global_pnorm

# -- decay, clipping, skipping and accumulation: rules meant for an OptimiserChain -----


class WeightDecay(Rule):
    """Adds ``λ·x`` to the gradient: ``d = g + λ·x``. No state.

    Placed before Adam it is L2 regularisation (penalty ``λ/2·‖x‖²``); placed after it,
    decoupled decay. Default ``lambda_=5e-4`` (Flux v0.12's ``WeightDecay`` defaulted to 0).

    >>> rule, x, g = WeightDecay(0.1), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.6, -0.8], dtype=float32)
    """

    formula = "d = g + λ·x"
    elementwise = True

    def __init__(self, lambda_: Hyper = 5e-4):
        self.lambda_ = check(self, "lambda_", lambda_, lo=0)

    def apply(self, state, x, dx):
        return state, dx + cast(self.lambda_, x) * x


class SignDecay(Rule):
    """Adds ``λ·sign(x)`` to the gradient (L1 regularisation): ``d = g + λ·sign(x)``.

    No state. Default ``lambda_=1e-3``. Not in Flux v0.12.

    >>> rule, x, g = SignDecay(0.1), jnp.array([1.0, -2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.6, -1.1], dtype=float32)
    """

    formula = "d = g + λ·sign(x)"
    elementwise = True

    def __init__(self, lambda_: Hyper = 1e-3):
        self.lambda_ = check(self, "lambda_", lambda_, lo=0)

    def apply(self, state, x, dx):
        return state, dx + cast(self.lambda_, x) * jnp.sign(x)


class ClipGrad(Rule):
    """Clips each gradient element to ``[−δ, δ]``: ``d = clamp(g, −δ, δ)``. No state.

    Default ``delta=10.0``. Flux v0.12's ``ClipValue(thresh)`` (an alias) had no default.

    >>> rule, x, g = ClipGrad(0.7), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.5, -0.7], dtype=float32)
    """

    formula = "d = clamp(g, −δ, δ)"
    elementwise = True

    def __init__(self, delta: Hyper = 10.0):
        self.delta = check(self, "delta", delta, lo=0)

    def apply(self, state, x, dx):
        delta = cast(self.delta, x)
        return state, jnp.clip(dx, -delta, delta)


def _pnorm(dx: jax.Array, p: float) -> jax.Array:
    """The p-norm of a whole array, scaled by its largest element against overflow."""
    a = jnp.abs(dx)
    big = jnp.max(a, initial=0)
    if p == math.inf:
        return big
    s = jnp.where((big > 0) & jnp.isfinite(big), big, jnp.ones_like(big))
    if p == 2:
        return s * jnp.sqrt(jnp.sum(jnp.square(a / s)))
    return s * jnp.sum((a / s) ** p) ** (1 / p)


class ClipNorm(Rule):
    """Rescales the gradient when its p-norm (over this whole array) exceeds ω.

    ``over="all"``: ``n`` is the p-norm over every trainable array together, so all
    gradients are scaled by one factor (Keras's ``global_clipnorm``; see ``ClipGlobalNorm``).

    ``n = ‖g‖ₚ``, ``d = g·min(ω/n, 1)``. With ``throw=True`` (the default) a non-finite
    ``n`` is an error: the state ``(bad,)`` holds the flag, ``error(state)`` reports it, and
    ``update``/``train`` raise after the step, naming the parameter. ``throw=False``: no
    state, a NaN norm gives a NaN step. Defaults ``omega=10.0, p=2``. Flux v0.12's
    ``ClipNorm(thresh)`` had no default, only ``p = 2`` and never raised.

    >>> rule, x, g = ClipNorm(1.0), jnp.array([1.0, 2.0]), jnp.array([3.0, -4.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step, rule.error(state)
    (Array([ 0.6, -0.8], dtype=float32), Array(False, dtype=bool))
    """

    formula = "n = ‖g‖ₚ (per array, or over all arrays); d = g·min(ω/n, 1)"

    def __init__(
        self, omega: Hyper = 10.0, p: float = 2, *, throw: bool = True, over: str = "array"
    ):
        self.omega = check(self, "omega", omega, lo=0)
        p = check_static(self, "p", p, lo=0, lo_open=True)
        self.p = int(p) if p.is_integer() else p
        self.throw = check_flag(self, "throw", throw)
        if over not in ("array", "all"):
            raise ValueError(
                f"ClipNorm: over must be 'array' (each array's own norm) or 'all' (one norm "
                f"over every trainable array, as optax.clip_by_global_norm), got {over!r}."
            )
        self.over = over

    def init(self, x):
        return (jnp.asarray(False),) if self.throw else ()

    def couples(self) -> bool:
        return self.over == "all"

    def see_all(self, grads):
        if self.over != "all":
            return self
        new = copy.copy(self)
        object.__setattr__(new, "_norm", global_pnorm(grads, self.p))
        return new

    def apply(self, state, x, dx):
        n = self.__dict__.get("_norm")
        n = _pnorm(dx, self.p) if n is None else n.astype(jnp.real(dx).dtype)
        d = dx * jnp.minimum(cast(self.omega, x) / n, 1)
        return ((~jnp.isfinite(n),) if self.throw else ()), d

    def error(self, state):
        return state[0] if self.throw else None


class InvDecay(Rule):
    """Inverse decay of the step (Flux v0.12): ``d = g/(1 + γ·n)``, then ``n ← n + 1``.

    The counter ``n`` starts at 1, so the first step is already scaled by ``1/(1+γ)``.
    State ``(n,)`` (int32). Default ``gamma=0.001``. Place it after a rule that applies η:
    ``OptimiserChain(Adam(), InvDecay())``. Not in Optimisers.jl.

    >>> rule, x, g = InvDecay(0.5), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> state, step = rule.apply(state, x, g)
    >>> step  # g/(1 + 0.5·2)
    Array([ 0.25, -0.5 ], dtype=float32)
    """

    formula = "d = g/(1 + γ·n); n ← n + 1 (n₀ = 1)"
    elementwise = True

    def __init__(self, gamma: Hyper = 0.001):
        self.gamma = check(self, "gamma", gamma, lo=0)

    def init(self, x):
        return (counter(1),)

    def apply(self, state, x, dx):
        n = state[0]
        return (n + 1,), dx / (1 + cast(self.gamma, x) * n.astype(x.dtype))


class ExpDecay(Rule):
    """Exponential decay of the learning rate (Flux v0.12.9+): ``d = η_n·g``.

    On the n-th update of an array, when ``n > start`` and ``n mod decay_step == 0``,
    ``η ← max(η·decay, clip)`` (``clip`` is a floor); the decayed η is used at once. ExpDecay
    multiplies by its own η, so ``OptimiserChain(Adam(), ExpDecay(1.0))`` decays Adam's rate.
    Defaults ``eta=0.001, decay=0.1, decay_step=1000, clip=1e-4, start=0``.

    Difference from Flux v0.12: Flux kept one η shared by all arrays (decayed by the first
    array to reach a multiple of ``decay_step``); here the decayed η is kept per array in the
    state ``(η, n)``. The two agree when all arrays update together, as in ``train``.

    >>> rule, x, g = ExpDecay(1.0, 0.5, 2), jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> state, step = rule.apply(state, x, g)
    >>> step  # decayed at n = 2
    Array([ 0.25, -0.5 ], dtype=float32)
    """

    formula = "n ← n + 1; η ← max(η·decay, clip) if n > start and n mod step = 0; d = η·g"
    elementwise = True

    def __init__(
        self,
        eta: Hyper = 0.001,
        decay: Hyper = 0.1,
        decay_step: int = 1000,
        clip: Hyper = 1e-4,
        start: int = 0,
    ):
        self.eta = check(self, "eta", eta, lo=0)
        self.decay = check(self, "decay", decay, lo=0)
        self.decay_step = check_static(self, "decay_step", decay_step, lo=1, integer=True)
        self.clip = check(self, "clip", clip, lo=0)
        self.start = check_static(self, "start", start, lo=0, integer=True)

    def init(self, x):
        return (jnp.asarray(at_start(self.eta), x.dtype), counter(0))

    def apply(self, state, x, dx):
        eta, n = state[0], state[1] + 1
        hit = (n > self.start) & (n % self.decay_step == 0)
        eta = jnp.where(hit, jnp.maximum(eta * cast(self.decay, x), cast(self.clip, x)), eta)
        return (eta, n), eta * dx


class SkipNonFinite(Rule):
    """Skips the update when the gradient has a non-finite element (NaN or ±Inf).

    ``ok = all(isfinite(g))``; ``d = g`` if ok else 0, and the gate is closed: the parameter
    is left unchanged and the rules after it in an ``OptimiserChain`` keep their old state.
    Put it first: ``OptimiserChain(SkipNonFinite(), Adam())``. State ``(ok,)``. Not in Flux.

    >>> rule, x, g = SkipNonFinite(), jnp.array([1.0, 2.0]), jnp.array([0.5, jnp.nan])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step, rule.gate(state)
    (Array([0., 0.], dtype=float32), Array(False, dtype=bool))
    """

    formula = "d = g if all(isfinite(g)) else no update"

    def init(self, x):
        return (jnp.asarray(True),)

    def apply(self, state, x, dx):
        ok = jnp.all(jnp.isfinite(dx))
        return (ok,), jnp.where(ok, dx, jnp.zeros_like(dx))

    def gate(self, state):
        return state[0]


class AccumGrad(Rule):
    """Accumulates ``n`` gradients and then steps with their mean.

    ``acc ← g/n`` on the first of each group, else ``acc ← acc + g/n``; after the n-th the
    gate opens and ``d = acc``, otherwise there is no update (``d = 0``, gate closed, later
    rules of the chain keep their state). State ``(acc, counter)``. Use as
    ``OptimiserChain(AccumGrad(4), Adam())``. Not in Flux v0.12.

    >>> rule, x = AccumGrad(2), jnp.array([1.0, 2.0])
    >>> state, step = rule.apply(rule.init(x), x, jnp.array([1.0, 3.0]))
    >>> rule.gate(state)
    Array(False, dtype=bool)
    >>> state, step = rule.apply(state, x, jnp.array([3.0, 5.0]))
    >>> step, rule.gate(state)
    (Array([2., 4.], dtype=float32), Array(True, dtype=bool))
    """

    formula = "acc ← acc + g/n; after n gradients d = acc, else no update"
    elementwise = True

    def __init__(self, n: int):
        self.n = check_static(self, "n", n, lo=1, integer=True)

    def init(self, x):
        return (host_zeros(x), counter(1))

    def apply(self, state, x, dx):
        (acc, c), n = state, self.n
        acc = jnp.where(c == 1, dx / n, acc + dx / n)
        done = c == n
        return (acc, jnp.where(done, 1, c + 1)), jnp.where(done, acc, jnp.zeros_like(acc))

    def gate(self, state):
        return state[1] == 1


class OptimiserChain(Rule):
    """Applies rules in sequence, each to the previous one's step: ``d = rₖ(…r₁(g))``.

    The state is the tuple of member states. When a member's gate is closed (``AccumGrad``
    still gathering, ``SkipNonFinite`` on a bad gradient) the members after it keep their
    old state, the chain's step is 0 and its gate is closed. The chain's error is the OR of
    its members'. An empty chain passes the gradient through (``d = g``). Flux v0.12's
    ``Optimiser`` (an alias); ``chain[i]`` and iteration work as there. A member may be an
    Optax transformation: ``train``, ``setup`` and ``update`` put it in the chain as an
    ``OptaxRule`` when they are given the chain (``fluxjax.optimise.optax.as_rule``).

    >>> from fluxjax.optimise.rules import Descent
    >>> rule = OptimiserChain(ClipGrad(0.7), Descent(0.1))
    >>> rule
    OptimiserChain(ClipGrad(delta=0.7), Descent(eta=0.1))
    >>> x, g = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.05, -0.07], dtype=float32)
    """

    formula = "d = rₖ(…r₂(r₁(g)))"
    elementwise = True

    def __init__(self, *rules: Rule):
        # an optax transformation is a member too: train, setup and update wrap it
        # (fluxjax.optimise.optax.as_rule) before the chain is used
        bad = [r for r in rules if not isinstance(r, Rule) and not is_transformation(r)]
        if bad:
            raise TypeError(f"OptimiserChain: rules must be optimiser rules, got {bad[0]!r}.")
        self.rules = tuple(rules)

    def init(self, x):
        return tuple(r.init(x) for r in self.rules)

    def apply(self, state, x, dx):
        new, open_ = [], None
        for r, s in zip(self.rules, state):
            s2, dx = r.apply(s, x, dx)
            if open_ is not None:  # a closed gate before r: keep r's old state
                s2 = jax.tree.map(lambda a, b, o=open_: jnp.where(o, a, b), s2, s)
            new.append(s2)
            open_ = _and(open_, r.gate(s2))
        return tuple(new), dx if open_ is None else jnp.where(open_, dx, jnp.zeros_like(dx))

    def gate(self, state):
        open_ = None
        for r, s in zip(self.rules, state):
            open_ = _and(open_, r.gate(s))
        return open_

    def error(self, state):
        err, open_ = None, None
        for r, s in zip(self.rules, state):
            e = r.error(s)
            if e is not None:  # counts only when the gates before r were open (r ran)
                e = e if open_ is None else e & open_
                err = e if err is None else err | e
            open_ = _and(open_, r.gate(s))
        return err

    def __getitem__(self, i: int | slice) -> Rule:
        return OptimiserChain(*self.rules[i]) if isinstance(i, slice) else self.rules[i]

    def __iter__(self):
        return iter(self.rules)

    def __repr__(self) -> str:
        return f"OptimiserChain({', '.join(map(repr, self.rules))})"


def _and(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a & b


# Flux v0.12 names; the same class objects.
ClipValue = ClipGrad
Optimiser = OptimiserChain
