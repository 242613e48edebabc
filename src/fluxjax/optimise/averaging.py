"""Weight averaging as rules: ``EMA`` (an exponential moving average of the weights, Keras's
``use_ema``) and ``SWA`` (stochastic weight averaging, PyTorch's ``AveragedModel``).

Each is the **last** member of an ``OptimiserChain``: it passes the step through unchanged
and, from the parameter and that step, averages the parameter's new value ``x - d``. The
averaged copy is the rule's optimiser state, so it is updated inside the compiled step,
packed with the rest of the state, and saved and restored by ``fx.save``/``fx.load`` and the
``Checkpointer`` (a resume is bit-exact). ``avg.swapped(model, state)`` puts the averages in
the model (and the trained arrays back afterwards); ``fx.metrics(..., on=avg.swapped(...))``
evaluates on them.

>>> import jax.numpy as jnp, fluxjax as fx
>>> m = fx.Dense(jnp.array([[0.0]]), False)
>>> ema = fx.EMA(0.5)
>>> state = fx.setup(fx.OptimiserChain(fx.Descent(0.5), ema), m)
>>> x = jnp.ones((1, 1))
>>> _ = fx.train(lambda m, x: -m(x).sum(), m, [(x,)], state, epochs=2)   # w: 0 → 0.5 → 1
>>> with ema.swapped(m, state):
...     float(m.weight[0, 0])       # 0.5·(0.5·0 + 0.5·0.5) + 0.5·1
0.625
>>> float(m.weight[0, 0])           # the trained weight is back
1.0
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ..autodiff import Params
from ._hyper import cast, check_static, counter
from .base import Rule, check
from .state import OptimiserState, implicit_state, triples

__all__ = ["EMA", "SWA"]


class _Averaging(Rule):
    """What ``EMA`` and ``SWA`` share: the average is ``state[0]``; ``swapped``."""

    def average(self, state: Any) -> Any:
        return state[0]

    def swapped(self, target: Any, opt: Any) -> Swap:
        """A context manager putting the averaged arrays into the model: ``target`` and
        ``opt`` as given to ``fx.train`` (the model and its ``fx.setup`` state, or
        ``fx.params(model)`` and the rule). Reusable: each ``with`` reads the averages now."""
        return Swap(self, target, opt)


class EMA(_Averaging):
    """An exponential moving average of the weights, updated inside the training step.

    ``a ← decay·a + (1 − decay)·(x − d)`` after every ``every``-th update (``a₀ = x``, the
    weights when the state is set up), where ``d`` is the step the chain computed: Keras's
    ``use_ema=True, ema_momentum=decay``. State ``(a, n)``. Put it last in a chain:
    ``fx.OptimiserChain(fx.Adam(), fx.EMA(0.999))``. Defaults ``decay=0.999, every=1``.
    Not in Flux.

    >>> rule, x = EMA(0.9), jnp.array([1.0])
    >>> state, step = rule.apply(rule.init(x), x, jnp.array([1.0]))   # x becomes 0
    >>> rule.average(state), step
    (Array([0.9], dtype=float32), Array([1.], dtype=float32))
    """

    formula = "a ← decay·a + (1 − decay)·(x − d) every n-th step; d unchanged"
    elementwise = True

    def __init__(self, decay: float = 0.999, every: int = 1):
        self.decay = check(self, "decay", decay, lo=0, hi=1)
        self.every = check_static(self, "every", every, lo=1, integer=True)

    def init(self, x):
        return (jnp.array(x, copy=True), counter(0))

    def apply(self, state, x, dx):
        a, n = state[0], state[1] + 1
        new = (x - dx).astype(x.dtype)
        d = cast(self.decay, x)
        moved = d * a + (1 - d) * new
        return (jnp.where(n % self.every == 0, moved, a), n), dx


class SWA(_Averaging):
    """Stochastic weight averaging: the plain mean of the weights taken every ``every``
    updates from update ``start`` on (PyTorch's ``AveragedModel`` with ``update_parameters``
    on that schedule): ``k ← k + 1``, ``a ← a + (x − d − a)/k``. Before ``start`` the average
    is the starting weights. State ``(a, k, t)``. Put it last in a chain. Not in Flux.

    >>> rule, x = SWA(start=1, every=1), jnp.array([0.0])
    >>> s = rule.init(x)
    >>> s, _ = rule.apply(s, x, jnp.array([-2.0]))        # x becomes 2
    >>> s, _ = rule.apply(s, x + 2, jnp.array([-2.0]))    # x becomes 4
    >>> rule.average(s)                                   # mean of 2 and 4
    Array([3.], dtype=float32)
    """

    formula = "from update start on, every n-th: k ← k + 1, a ← a + (x − d − a)/k"
    elementwise = True

    def __init__(self, start: int = 1, every: int = 1):
        self.start = check_static(self, "start", start, lo=1, integer=True)
        self.every = check_static(self, "every", every, lo=1, integer=True)

    def init(self, x):
        return (jnp.array(x, copy=True), counter(0), counter(0))

    def apply(self, state, x, dx):
        a, k, t = state[0], state[1], state[2] + 1
        take = (t >= self.start) & ((t - self.start) % self.every == 0)
        k = k + take.astype(k.dtype)
        new = (x - dx).astype(x.dtype)
        a = jnp.where(take, a + (new - a) / jnp.maximum(k, 1).astype(x.dtype), a)
        return (a, k, t), dx


def _find(rule: Rule, state: Any, target: Rule) -> Any:
    """The state of ``target`` inside ``rule``'s state (a chain's state is its members')."""
    if rule is target:
        return state
    members = getattr(rule, "rules", None)
    if isinstance(members, tuple):
        for r, s in zip(members, state):
            hit = _find(r, s, target)
            if hit is not None:
                return hit
    return None


class Swap:
    """``with avg.swapped(target, opt):`` the averaged arrays in the model, the trained ones
    back afterwards (also when the block raises)."""

    def __init__(self, avg: _Averaging, target: Any, opt: Any) -> None:
        self.avg, self.target, self.opt = avg, target, opt
        self._held: list[tuple[Any, Any]] = []

    def pairs(self) -> list[tuple[Any, Any]]:
        """(slot or Param, its average) for every array the averaging rule holds."""
        out = []
        if isinstance(self.target, Params):
            entries = list(self.target.entries)
            for p, rec in zip(entries, implicit_state(self.opt, entries)):
                s = _find(self.opt, rec.state, self.avg)
                if s is not None:
                    out.append((p, self.avg.average(s)))
        elif isinstance(self.opt, OptimiserState):
            for leaf, slot, _ in triples(self.opt, self.target, None):
                s = _find(leaf.rule, leaf.state, self.avg)
                if s is not None:
                    out.append((slot, self.avg.average(s)))
        if not out:
            raise ValueError(
                f"{self.avg!r}.swapped(target, opt): no averaged arrays found. Pass what "
                "fx.train got (the model and fx.setup's state, or fx.params(model) and the "
                "rule), with this object the last member of the OptimiserChain, after training."
            )
        return out

    def __enter__(self) -> Swap:
        pairs = self.pairs()
        self._held = [(s, s.get()) for s, _ in pairs]
        for s, a in pairs:
            s.set(a)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, old in self._held:
            s.set(old)
        self._held = []
