"""Optax both ways: an ``optax.GradientTransformation`` as a fluxjax rule, and a fluxjax rule
as an ``optax.GradientTransformation``.

* **Optax in fluxjax.** Wherever a rule goes (``fx.train(loss, ps, data, optax.adamw(1e-3))``,
  ``fx.setup``, ``fx.update``, a member of ``fx.OptimiserChain``), an Optax transformation
  works too: ``as_rule`` wraps it as an ``OptaxRule``, which applies it to **one array at a
  time** (``init(x)``, ``update(dx, state, x)``), compiled and fused like any rule. The same
  transformation object always gets the same wrapper, so in implicit mode its state carries
  over from one ``train`` call to the next (Flux v0.12's ``opt.state``).
* **fluxjax in Optax.** ``rule.as_optax()`` (every rule has it) returns a transformation for
  a hand-written JAX loop: ``updates, state = tx.update(grads, state, params)``, then
  ``optax.apply_updates(params, updates)``. It applies the rule leaf by leaf with Flux's
  arithmetic (the parameter becomes ``x - step``), ``AccumGrad``, ``SkipNonFinite`` and
  schedules included.

**Per array, and the global norm.** A fluxjax rule sees one array, its gradient and its
state, so an Optax transformation is applied to each array on its own. The coupling people
use most is handled over all arrays: ``optax.clip_by_global_norm(c)``, alone or inside an
``optax.chain``, becomes ``fx.ClipGlobalNorm(c)``, which the engine hands every gradient of
the step (Optax's arithmetic, one norm over all trainable arrays). Other transformations that
read the whole tree (``optax.masked``, ``optax.multi_transform``) still act per array.
Element-wise transformations (sgd, momentum, adam, adamw, lion, schedules, ``clip``,
``add_decayed_weights``, ...) give Optax's own results exactly.

An Optax transformation keeps its hyperparameters inside its own functions, so
``fx.adjust`` cannot change them and a callback's ``ctx.eta`` is ``None``; use the
fluxjax rule (or an Optax schedule) when the learning rate must change during training.

Optax is imported only when a transformation is converted (``pip install optax``, or
``'fluxjax[optax]'``).

>>> import optax, jax.numpy as jnp, fluxjax as fx
>>> m = fx.Dense(jnp.array([[1.0]]), False)
>>> x = jnp.ones((4, 1))
>>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, 2 * x)], optax.sgd(0.25))
>>> m.weight  # 1 - 0.25 * d/dw (w - 2)² = 1 - 0.25 * (-2)
Array([[1.5]], dtype=float32)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

from .base import Rule, is_transformation, rules_in
from .composites import OptimiserChain
from .globalnorm import ClipGlobalNorm
from .to_optax import FluxOptaxState, to_optax  # noqa: F401  (fluxjax.optimise.optax.to_optax)

__all__ = ["OptaxRule", "as_rule", "to_optax", "FluxOptaxState"]

NEEDS_OPTAX = "this needs optax: pip install optax (or pip install 'fluxjax[optax]')"


class OptaxRule(Rule):
    """An ``optax.GradientTransformation`` used as a fluxjax rule, one array at a time.

    ``init(x) = transformation.init(x)``; ``apply(state, x, dx)`` runs
    ``updates, state = transformation.update(dx, state, x)`` and returns ``step = -updates``
    (Optax adds its updates; fluxjax's rules return a step the parameter subtracts). Arrays
    are never seen together: see the module docstring about coupled transformations.

    >>> import optax, jax.numpy as jnp
    >>> rule = OptaxRule(optax.sgd(0.1))
    >>> x, g = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    >>> state, step = rule.apply(rule.init(x), x, g)
    >>> step
    Array([ 0.05, -0.1 ], dtype=float32)
    """

    def __init__(self, transformation: Any) -> None:
        if not is_transformation(transformation):
            raise TypeError(
                "OptaxRule needs an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                f"got {transformation!r}."
            )
        self.transformation = transformation

    def init(self, x: Any) -> Any:
        return self.transformation.init(x)

    def apply(self, state: Any, x: Any, dx: Any) -> tuple[Any, Any]:
        updates, state = self.transformation.update(dx, state, x)
        return state, -updates

    def __repr__(self) -> str:
        fn = getattr(self.transformation.update, "__qualname__", "")
        origin = fn.split(".<locals>")[0] if "<locals>" in fn else type(self.transformation)
        name = origin if isinstance(origin, str) else origin.__name__
        return f"OptaxRule(optax.{name})"


_WRAPPED: OrderedDict[int, tuple[Any, OptaxRule]] = OrderedDict()
_MAX_WRAPPED = 256


def as_rule(opt: Any) -> Any:
    """``opt`` as a fluxjax rule: an Optax transformation becomes an ``OptaxRule`` (the same
    wrapper object each time for the same transformation, so implicit-mode state persists
    across calls; the 256 most recently used are kept); anything else (a rule, a state
    tree from ``fx.setup``) is returned unchanged. ``train``, ``setup``, ``update`` and
    ``lr_find`` call it on what they are given (the API's edge): in a rule, every member
    that is a transformation (``OptimiserChain(fx.ClipGrad(0.1), optax.adam(1e-3))``) is
    replaced by its wrapper, in place, so the rule holds rules only from then on.

    >>> import optax, fluxjax as fx
    >>> from fluxjax.optimise.optax import as_rule
    >>> tx = optax.adam(1e-3)
    >>> as_rule(tx) is as_rule(tx), isinstance(as_rule(tx), fx.Rule)
    (True, True)
    >>> rule = fx.Adam(); as_rule(rule) is rule
    True
    """
    if isinstance(opt, Rule):
        _wrap_members(opt)
        return opt
    if not is_transformation(opt):
        return opt
    hit = _WRAPPED.get(id(opt))
    if hit is not None and hit[0] is opt:
        _WRAPPED.move_to_end(id(opt))
        return hit[1]
    rule = _coupled(opt) or OptaxRule(opt)
    _WRAPPED[id(opt)] = (opt, rule)
    while len(_WRAPPED) > _MAX_WRAPPED:
        _WRAPPED.popitem(last=False)
    return rule


def _wrap_members(rule: Rule) -> None:
    """Replace the transformations among ``rule``'s members (and its members' members) by
    their wrappers; a rule with none is left untouched (no attribute is assigned). An
    ``OptaxRule`` is the one rule that holds a transformation as such."""
    if isinstance(rule, OptaxRule):
        return
    for name, value in rule.hyperparameters().items():
        if is_transformation(value):
            setattr(rule, name, as_rule(value))
        elif isinstance(value, list | tuple) and any(map(is_transformation, value)):
            setattr(rule, name, type(value)(map(as_rule, value)))
        for member in rules_in(getattr(rule, name)):
            _wrap_members(member)


def _cell(fn: Any, name: str) -> Any:
    names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    return fn.__closure__[names.index(name)].cell_contents if name in names else None


def _coupled(opt: Any) -> Rule | None:
    """A rule applying ``opt`` over all arrays at once where it couples them:
    ``clip_by_global_norm(c)`` is ``ClipGlobalNorm(c)`` (the same arithmetic), and an
    ``optax.chain`` holding one becomes an ``OptimiserChain`` of its members; ``None`` for
    any other transformation (applied per array, element-wise)."""
    name = getattr(opt.update, "__qualname__", "")
    if name.startswith("with_extra_args_support.") and _cell(opt.update, "tx") is not None:
        return _coupled(_cell(opt.update, "tx"))  # how optax.chain holds its members
    if name.startswith("clip_by_global_norm."):
        return ClipGlobalNorm(float(_cell(opt.update, "max_norm")))
    if name.startswith("chain.") and _cell(opt.init, "init_fns") is not None:
        members = [
            _coupled(_Pair(i, u)) or OptaxRule(_Pair(i, u))
            for i, u in zip(_cell(opt.init, "init_fns"), _cell(opt.update, "update_fns"))
        ]
        if any(m.couples() for m in members):
            return OptimiserChain(*members)
    return None


class _Pair(NamedTuple):
    """A chain member as a transformation (``init``, ``update``), as optax's own tuple."""

    init: Any
    update: Any
