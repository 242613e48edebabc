"""fluxjax rules as Optax transformations: ``to_optax(rule)``, what ``rule.as_optax()``
returns (see :mod:`fluxjax.optimise.optax` for both directions). It only calls a rule's
methods, so it needs nothing from the rule classes and ``base.py`` can import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from .base import Rule

__all__ = ["to_optax", "FluxOptaxState"]

_NEEDS = "this needs optax: pip install optax (or pip install 'fluxjax[optax]')"


class FluxOptaxState(NamedTuple):
    """The state of ``rule.as_optax()``: the rule's state per leaf (in the order of
    ``jax.tree_util.tree_leaves(params)``), the update count ``t`` (int32), and ``failed``:
    True when the last update was refused (``ClipNorm(throw=True)`` on a non-finite
    gradient; then no parameter changed and the states were kept)."""

    states: tuple[Any, ...]
    count: Any
    failed: Any


def _where(ok: Any, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _leaf(rule: Rule, state: Any, x: Any, g: Any) -> tuple[Any, Any, Any]:
    """One leaf as ``fx.update`` does it: ``(update = -step or 0 when gated, state, error)``."""
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    new_state, step = rule.apply(state, x, g)
    upd = -jnp.asarray(step).astype(x.dtype)
    ok = rule.gate(new_state)
    if ok is not None:
        upd = jnp.where(ok, upd, jnp.zeros_like(upd))
    return upd, new_state, rule.error(new_state)


def to_optax(rule: Rule) -> Any:
    """``rule`` as an ``optax.GradientTransformation`` (what ``rule.as_optax()`` returns).

    ``update(grads, state, params)`` needs ``params`` (rules such as ``WeightDecay`` read
    them). Each leaf's update is ``-step`` from the rule's ``apply`` (0 when its gate is
    closed), so ``optax.apply_updates`` gives ``x - step``, as ``fx.update``. When a rule
    reports an error, no leaf changes and ``state.failed`` is True (compiled code cannot
    raise: check it in your loop).

    >>> import optax, jax.numpy as jnp, fluxjax as fx
    >>> tx = fx.Descent(0.1).as_optax()
    >>> params = {"w": jnp.array([1.0, 2.0])}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.array([1.0, -1.0])}, state, params)
    >>> optax.apply_updates(params, updates)["w"]
    Array([0.9, 2.1], dtype=float32)
    """
    try:
        import optax
    except ImportError as e:
        raise ImportError(f"{rule!r}.as_optax(): {_NEEDS}") from e
    t = _AsOptax(rule)
    return optax.GradientTransformation(t.init, t.update)


class _AsOptax:
    """The ``init`` and ``update`` of ``to_optax(rule)``."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def init(self, params: Any) -> FluxOptaxState:
        states = tuple(self.rule.init(x) for x in jax.tree_util.tree_leaves(params))
        return FluxOptaxState(states, jnp.zeros((), jnp.int32), jnp.asarray(False))

    def update(self, updates: Any, state: FluxOptaxState, params: Any = None) -> tuple[Any, Any]:
        rule = self.rule
        if params is None:
            raise ValueError(
                f"{rule!r}.as_optax().update(grads, state, params): pass params too "
                "(fluxjax rules may read the parameters, e.g. WeightDecay)."
            )
        gs, treedef = jax.tree_util.tree_flatten(updates)
        xs = treedef.flatten_up_to(params)
        r = rule.resolve(state.count + 1) if rule.has_schedule() else rule
        r = r.see_all(gs)  # a rule that couples arrays (ClipGlobalNorm) sees them all
        outs = [_leaf(r, s, x, g) for s, x, g in zip(state.states, xs, gs)]
        upds, new = [u for u, _, _ in outs], tuple(s2 for _, s2, _ in outs)
        errs = [e for _, _, e in outs if e is not None]
        if not errs:
            ok = jnp.asarray(False)
            return treedef.unflatten(upds), FluxOptaxState(new, state.count + 1, ok)
        failed = jnp.any(jnp.stack(errs))  # as fx.update: one refusal leaves every leaf alone
        new = tuple(_where(failed, s2, s) for s2, s in zip(new, state.states))
        upds = [jnp.where(failed, jnp.zeros_like(u), u) for u in upds]
        count = jnp.where(failed, state.count, state.count + 1)
        return treedef.unflatten(upds), FluxOptaxState(new, count, failed)
