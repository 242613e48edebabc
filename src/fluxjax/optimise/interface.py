"""The optimiser interface: ``setup``, ``update``, ``adjust``, ``freeze``/``thaw``.

This is the one place that walks trees for the optimisers; a rule only ever sees one array,
its gradient and its state. Two styles drive the same code:

* **explicit** (Optimisers.jl, current Flux): ``state = fx.setup(rule, model)``, then
  ``fx.update(state, model, grads)`` with ``grads`` shaped like the model (from
  ``fx.gradient(loss, model)[0]``). The state tree mirrors the model.
* **implicit** (Flux v0.12, the tutorial's): ``fx.update(opt, ps, gs)`` with ``ps`` a
  ``Params`` and ``gs`` its ``Grads``; the state lives inside ``opt``, keyed by slot, so the
  same ``opt`` continues its moments across calls.

Both change the model's arrays (new arrays in the same slots) and return what they changed.

>>> import jax.numpy as jnp, fluxjax as fx
>>> m = fx.Dense(jnp.array([[1.0]]), jnp.array([0.0]))
>>> state = fx.setup(fx.Descent(0.1), m)
>>> g = fx.gradient(lambda m: m(jnp.array([[2.0]])).sum(), m)[0]
>>> _ = fx.update(state, m, g)
>>> m.weight
Array([[0.8]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

from ..autodiff import Grads, Params
from ..module import Module, Slot, is_array
from .base import Rule, map_rules, rules_in
from .base import bump_version as _bump
from .core import RulesKey, apply_one, apply_rules, rule_key, run_rules, see_all  # noqa: F401
from .optax import as_rule
from .state import (  # noqa: F401  (re-exported: fluxjax.optimise.interface.Leaf, ...)
    Leaf,
    OptimiserState,
    check_state_fits,
    implicit_state,
    leaves,
    setup,
    triples,
)

__all__ = ["setup", "update", "adjust", "freeze", "thaw", "Leaf", "OptimiserState"]


def _update_explicit(state: OptimiserState, model: Module, grads: Any) -> tuple[Any, Any]:
    if isinstance(grads, tuple) and len(grads) == 1 and isinstance(grads[0], Module):
        grads = grads[0]  # the whole tuple from gradient(): Flux warns and uses grads[1]
    leaves: dict[int, Leaf] = {}
    slots: dict[int, list[Slot]] = {}
    acc: dict[int, Any] = {}
    for leaf, slot, g in triples(state, model, grads):
        k = id(leaf)
        leaves[k] = leaf
        slots.setdefault(k, []).append(slot)
        if g is not None and is_array(g):
            acc[k] = g if k not in acc else acc[k] + g  # tied arrays: gradients add up
    todo = [k for k in leaves if k in acc and not leaves[k].frozen]
    if not todo:
        return state, model
    ls = [leaves[k] for k in todo]
    xs = [slots[k][0].get() for k in todo]
    try:
        new_xs, new_states, new_ts, check = run_rules(
            [lf.rule for lf in ls],
            [lf.state for lf in ls],
            xs,
            [acc[k] for k in todo],
            [lf.t for lf in ls],
            [slots[k][0].label() for k in todo],
        )
    except TypeError:  # a state built for other shapes (setup on another model)? say so
        for k, lf, x in zip(todo, ls, xs):
            check_state_fits(lf, x, slots[k][0].label())
        raise
    for k, lf, x, s, t in zip(todo, ls, new_xs, new_states, new_ts):
        lf.state, lf.t = s, t
        for slot in slots[k]:
            slot.set(x)
    check()  # after the old arrays were let go; a refused update changed nothing
    return state, model


# -- implicit mode --------------------------------------------------------------------
def _update_implicit(opt: Rule, ps: Params, gs: Grads) -> Params:
    pairs = [(p, g) for p, g in zip(ps.entries, gs._grads) if g is not None]
    if not pairs:
        return ps
    entries = [p for p, _ in pairs]
    recs = implicit_state(opt, entries)
    new_xs, new_states, new_ts, check = run_rules(
        [opt] * len(entries),
        [r.state for r in recs],
        [p.get() for p in entries],
        [g for _, g in pairs],
        [r.t for r in recs],
        [p.label() for p in entries],
    )
    for p, rec, x, s, t in zip(entries, recs, new_xs, new_states, new_ts):
        rec.state, rec.t = s, t
        p.set(x)
    check()
    return ps


def update(a: Any, b: Any, c: Any) -> Any:
    """One optimiser step. ``update(opt, ps, gs)`` (implicit) or
    ``update(state, model, grads)`` (explicit); the parameters become ``x - step``.

    Explicit mode returns ``(state, model)`` (the same objects, updated); implicit mode
    returns ``ps``. Frozen leaves are skipped, keeping their state.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[1.0]]), False)
    >>> ps, opt = fx.params(m), fx.Descent(0.5)
    >>> gs = fx.gradient(lambda: m(jnp.array([[2.0]])).sum(), ps)   # d/dw (w·2) = 2
    >>> _ = fx.update(opt, ps, gs); m.weight
    Array([[0.]], dtype=float32)
    """
    a = as_rule(a)  # an optax transformation works as a rule
    if isinstance(a, Rule):
        if not isinstance(b, Params):
            raise TypeError(
                "update(opt, ps, gs): ps must be fx.params(model); for a model use "
                "state = fx.setup(opt, model) and fx.update(state, model, grads)."
            )
        if not isinstance(c, Grads):
            raise TypeError("update(opt, ps, gs): gs must be the Grads from fx.gradient(f, ps).")
        if c.params is not b and c.params.key() != b.key():
            raise ValueError(
                "update(opt, ps, gs): these gradients were taken for other parameters (the "
                "Params of another model or of other layers), so they would change the wrong "
                "arrays. Take gs = fx.gradient(f, ps) with the ps you update, and a loss f "
                "that uses that model."
            )
        return _update_implicit(a, b, c)
    if isinstance(a, OptimiserState):
        return _update_explicit(a, b, c)
    raise TypeError(
        f"update: the first argument must be an optimiser rule (implicit mode) or the state "
        f"from fx.setup (explicit mode), got {type(a).__name__}."
    )


def _adjust_rule(rule: Rule, changes: dict[str, Any], found: set[str]) -> Rule:
    mine = {k: v for k, v in changes.items() if k in rule.hyperparameters()}
    found.update(mine)
    new = rule.replace(**mine)
    for k, v in new.hyperparameters().items():
        if rules_in(v):
            setattr(new, k, map_rules(v, lambda r: _adjust_rule(r, changes, found)))
    return new


def adjust(tree: Any, eta: Any = None, **changes: Any) -> Any:
    """Change hyperparameters of every rule in a state tree (in place; returns the tree):
    ``fx.adjust(state, 0.01)`` sets the learning rate, ``fx.adjust(state, beta=(0.8, 0.9))``
    any named field. Members of an ``OptimiserChain`` that lack a field are left alone; a
    field no rule has is an error. On a rule (implicit mode), returns an adjusted copy.
    Arrays that shared a rule object share its adjusted copy. In ``fx.train`` a new ``eta``
    of fluxjax's rules is an input of the compiled step (nothing compiles again); any other
    change compiles the step again at the next call.

    >>> import fluxjax as fx
    >>> st = fx.setup(fx.Adam(), fx.Dense(1, 1))
    >>> _ = fx.adjust(st, 0.01); st.weight.rule.eta
    0.01
    """
    if eta is not None:
        changes["eta"] = eta
    if not changes:
        raise TypeError("adjust: say what to change, e.g. fx.adjust(state, 0.01) or eta=0.01.")
    found: set[str] = set()
    if isinstance(tree, Rule):
        new = _adjust_rule(tree, changes, found)
    else:
        new, made = tree, {}  # leaves that shared a rule share its adjusted copy
        for leaf in leaves(tree):
            if id(leaf.rule) not in made:
                made[id(leaf.rule)] = (leaf.rule, _adjust_rule(leaf.rule, changes, found))
            leaf.rule = made[id(leaf.rule)][1]
    missing = set(changes) - found
    if missing:
        raise TypeError(f"adjust: no rule in this optimiser has a field {sorted(missing)[0]!r}.")
    return new


def _set_frozen(tree: Any, value: bool, fname: str) -> Any:
    if is_array(tree) or isinstance(tree, Module):
        raise TypeError(
            f"{fname} takes (part of) the optimiser state from fx.setup, e.g. "
            f"fx.{fname}(state.layers[0]), not the model."
        )
    found = list(leaves(tree))
    if not found:
        raise TypeError(
            f"{fname} takes (part of) the optimiser state from fx.setup, e.g. "
            f"fx.{fname}(state.layers[0]); got {_what(tree)}, which holds no optimiser state. "
            "In implicit mode (fx.params), leave arrays out instead: ps.remove(m[0])."
        )
    for leaf in found:
        leaf.frozen = value
    _bump()  # compiled training steps built for the old frozen set are stale now
    return tree


def _what(x: Any) -> str:
    if isinstance(x, Params):
        return "a Params"
    if isinstance(x, Rule):
        return f"the rule {x!r}"
    return f"{x!r} ({type(x).__name__})"


def freeze(tree: Any) -> Any:
    """Stop updating every array under this part of a state tree (state is kept).

    >>> import fluxjax as fx
    >>> st = fx.setup(fx.Descent(), fx.Chain(fx.Dense(1, 1), fx.Dense(1, 1)))
    >>> _ = fx.freeze(st.layers[0]); st.layers[0].weight.frozen
    True
    """
    return _set_frozen(tree, True, "freeze")


def thaw(tree: Any) -> Any:
    """Undo ``freeze``: update the arrays under this part of the state tree again.

    >>> import fluxjax as fx
    >>> st = fx.setup(fx.Descent(), fx.Dense(1, 1))
    >>> _ = fx.freeze(st); _ = fx.thaw(st.bias); st.weight.frozen, st.bias.frozen
    (True, False)
    """
    return _set_frozen(tree, False, "thaw")


def adjust_live(plan: Any, eta: Any = None, **changes: Any) -> None:
    """Set hyperparameters of the rules a training plan runs, in place (as ``fx.adjust``):
    implicit mode's rule object (and its members), explicit mode's Leafs."""
    if eta is not None:
        changes["eta"] = eta
    if not isinstance(plan.source, Rule):
        adjust(plan.source, **changes)  # replaces each Leaf's rule with an adjusted copy
        return
    found: set[str] = set()
    todo, seen = [plan.source], set()
    while todo:
        r = todo.pop()
        if id(r) in seen:
            continue
        seen.add(id(r))
        fields = r.hyperparameters()
        for k, v in changes.items():
            if k in fields:
                setattr(r, k, v)
                found.add(k)
        todo.extend(r.children())
    missing = set(changes) - found
    if missing:
        raise TypeError(f"adjust: no rule in this optimiser has a field {sorted(missing)[0]!r}.")
