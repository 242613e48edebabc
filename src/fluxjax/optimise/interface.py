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

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..autodiff import Grads, Params
from ..module import Module, Slot, _attrs, is_array, trainable
from .base import Record, Rule, is_schedule
from .base import bump_version as _bump
from .optax import as_rule

__all__ = ["setup", "update", "adjust", "freeze", "thaw", "Leaf", "OptimiserState"]


# -- applying rules: pure JAX, shared by update() and train() --------------------------
def rule_key(rule: Rule) -> Any:
    """A hashable snapshot of a rule: its identity plus its hyperparameter values now."""
    items = []
    for k, v in rule.hyperparameters().items():
        if isinstance(v, Rule):
            items.append((k, rule_key(v)))
        elif isinstance(v, list | tuple) and any(isinstance(r, Rule) for r in v):
            items.append((k, tuple(rule_key(r) if isinstance(r, Rule) else r for r in v)))
        elif is_schedule(v):
            items.append((k, ("schedule", id(v))))
        else:
            try:
                hash(v)
                items.append((k, v))
            except TypeError:
                items.append((k, ("object", id(v))))
    return (id(rule), type(rule), tuple(items))


class RulesKey:
    """Static argument for jit: the rules, hashed by identity and hyperparameter values."""

    __slots__ = ("rules", "_key")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        cache: dict[int, Any] = {}
        self._key = tuple(cache.setdefault(id(r), rule_key(r)) for r in rules)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RulesKey) and self._key == other._key


def _where(ok: Any, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def see_all(rules: Any, grads: list[Any]) -> list[Rule]:
    """The rules, those that couple arrays (``ClipGlobalNorm``) having seen every gradient."""
    if not any(r.couples() for r in rules):
        return list(rules)
    return [r.see_all(grads) for r in rules]


def apply_one(rule: Rule, state: Any, x: Any, g: Any, t: Any) -> tuple[Any, Any, Any, Any]:
    """One parameter's update: ``(new_x, new_state, new_t, error_flag_or_None)``."""
    r = rule.resolve(t + 1) if t is not None else rule
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    new_state, step = r.apply(state, x, g)
    new_x = (x - step).astype(x.dtype)
    ok = r.gate(new_state)
    if ok is not None:
        new_x = jnp.where(ok, new_x, x)
    err = r.error(new_state)
    if err is not None:
        new_x = jnp.where(err, x, new_x)
        new_state = _where(err, state, new_state)
    return new_x, new_state, None if t is None else t + 1, err


def apply_rules(
    rules: RulesKey, states: list[Any], xs: list[Any], gs: list[Any], ts: list[Any]
) -> tuple[list[Any], list[Any], list[Any], Any]:
    """Apply ``rules.rules[i]`` to parameter ``i``; returns new arrays, states, counters and
    the index of the first parameter whose rule reported an error (-1 when none)."""
    new_xs, new_states, new_ts = [], [], []
    first_err = jnp.asarray(-1, jnp.int32)
    for i, (r, s, x, g, t) in enumerate(zip(see_all(rules.rules, gs), states, xs, gs, ts)):
        nx, ns, nt, err = apply_one(r, s, x, g, t)
        new_xs.append(nx)
        new_states.append(ns)
        new_ts.append(nt)
        if err is not None:
            first_err = jnp.where((first_err < 0) & err, i, first_err)
    return new_xs, new_states, new_ts, first_err


_apply_jit = jax.jit(apply_rules, static_argnums=0)


def _run(
    rules: list[Rule],
    states: list[Any],
    xs: list[Any],
    gs: list[Any],
    ts: list[Any],
    labels: list[str],
) -> tuple[list[Any], list[Any], list[Any]]:
    for x, g, label in zip(xs, gs, labels):
        if g is None:
            continue
        if jnp.shape(g) != jnp.shape(x):
            raise ValueError(
                f"update: the gradient for {label} has shape {tuple(jnp.shape(g))} but the "
                f"parameter has shape {tuple(jnp.shape(x))}."
            )
    new_xs, new_states, new_ts, err = _apply_jit(RulesKey(tuple(rules)), states, xs, gs, ts)
    i = int(err)
    if i >= 0:
        raise FloatingPointError(
            f"update: {rules[i]!r} refused the gradient of {labels[i]} (its norm is not "
            "finite); no parameter was changed. Chain fx.SkipNonFinite() first to skip such "
            "steps, or pass throw=False."
        )
    return new_xs, new_states, new_ts


# -- explicit mode --------------------------------------------------------------------
class Leaf:
    """The optimiser state of one array in an explicit-mode state tree (Optimisers.jl's
    ``Leaf``): the rule, its state, whether it is frozen, and the update count.

    >>> import fluxjax as fx
    >>> leaf = fx.setup(fx.Momentum(), fx.Dense(1, 2)).weight
    >>> import jax
    >>> leaf, [a.shape for a in jax.tree_util.tree_leaves(leaf.state)], leaf.frozen
    (Leaf(Momentum(eta=0.01, rho=0.9)), [(2, 1)], False)
    """

    __slots__ = ("rule", "_state", "frozen", "_t", "owner")

    def __init__(self, rule: Rule, state: Any, frozen: bool = False, t: Any = None) -> None:
        self.rule, self._state, self.frozen, self._t = rule, state, frozen, t
        # a training plan holding this leaf's live state packed in its buffers, or None;
        # reading or writing ``state``/``t`` takes the live values back from it first
        self.owner: Any = None

    def _release(self) -> None:
        if self.owner is not None:
            self.owner.flush()

    @property
    def state(self) -> Any:
        """The rule's state for this array (live: taken back from a training plan)."""
        self._release()
        return self._state

    @state.setter
    def state(self, value: Any) -> None:
        self._release()
        self._state = value

    @property
    def t(self) -> Any:
        """How many updates this array has had (kept only for scheduled rules), or None."""
        self._release()
        return self._t

    @t.setter
    def t(self, value: Any) -> None:
        self._release()
        self._t = value

    def __repr__(self) -> str:
        return f"Leaf({self.rule!r}{', frozen' if self.frozen else ''})"


class OptimiserState:
    """A state tree node mirroring one module: attribute access by the module's names.

    ``state.layers[0]`` is the state of a Chain's first layer; ``state.layers[0].weight``
    the ``Leaf`` of its weight.

    >>> import fluxjax as fx
    >>> st = fx.setup(fx.Descent(), fx.Chain(fx.Dense(1, 1), fx.relu))
    >>> st.layers[0]
    Dense(weight=Leaf(Descent(eta=0.1)), bias=Leaf(Descent(eta=0.1)))
    """

    def __init__(self, kind: str, children: dict[str, Any]) -> None:
        self.__dict__["_kind"] = kind
        self.__dict__["_children"] = children

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_children"][name]
        except KeyError:
            raise AttributeError(
                f"this optimiser state (of a {self._kind}) has no field {name!r}; "
                f"it has {', '.join(self._children)}"
            ) from None

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._children.items() if v is not None)
        return f"{self._kind}({inner})"


def setup(rule: Rule, model: Any) -> OptimiserState:
    """Build the optimiser state tree for ``model``: a ``Leaf`` per trainable array (an
    array reachable twice shares one ``Leaf``), mirroring the model's structure.

    >>> import fluxjax as fx
    >>> fx.setup(fx.Descent(0.1), fx.Dense(1, 2))
    Dense(weight=Leaf(Descent(eta=0.1)), bias=Leaf(Descent(eta=0.1)))
    """
    if isinstance(rule, type) and issubclass(rule, Rule):
        raise TypeError(
            f"setup(rule, model): fx.{rule.__name__} is the class; pass an optimiser: "
            f"fx.setup(fx.{rule.__name__}(), model)."
        )
    rule = as_rule(rule)  # an optax transformation works as a rule
    if not isinstance(rule, Rule):
        raise TypeError(
            f"setup(rule, model): rule must be an optimiser rule such as fx.Adam(), got "
            f"{type(rule).__name__}."
        )
    if not isinstance(model, Module):
        raise TypeError(f"setup(rule, model): model must be a fluxjax Module, got {model!r}.")
    cache: dict[int, Leaf] = {}
    need_t = rule.has_schedule()

    def build(v: Any) -> Any:
        if isinstance(v, Module):
            kids = {k: build(c) for k, c in trainable(v).items()}
            return OptimiserState(type(v).__name__, kids)
        if is_array(v):
            if not jnp.issubdtype(v.dtype, jnp.inexact):
                return None
            if id(v) not in cache:
                t = jnp.zeros((), jnp.int32) if need_t else None
                cache[id(v)] = Leaf(rule, rule.init(v), False, t)
            return cache[id(v)]
        if type(v) in (list, tuple):
            return type(v)(build(c) for c in v)
        if type(v) is dict:
            return {k: build(c) for k, c in v.items()}
        return None

    return build(model)


def _triples(
    state: Any, model: Any, grad: Any, path: tuple[Any, ...] = (), owner: Any = None
) -> Iterator[tuple[Leaf, Slot, Any]]:
    """Walk a state tree, the model and a model-shaped gradient together."""
    if isinstance(state, Leaf):
        yield state, Slot(owner, path), grad
    elif isinstance(state, OptimiserState):
        if not isinstance(model, Module):
            raise TypeError("update: the state tree does not match the model's structure.")
        gattrs = _attrs(grad) if isinstance(grad, Module) else (grad or {})
        attrs = _attrs(model)
        for k, s in state._children.items():
            if s is None:
                continue
            if k not in attrs:
                raise _another_model(model, k)
            g = gattrs.get(k) if isinstance(gattrs, dict) else getattr(grad, k, None)
            yield from _triples(s, attrs[k], g, (k,), model)
    elif type(state) in (list, tuple):
        for i, s in enumerate(state):
            if s is not None:
                if type(model) not in (list, tuple) or i >= len(model):
                    raise _another_model(owner, path + (i,))
                g = None if grad is None else grad[i]
                yield from _triples(s, model[i], g, (*path, i), owner)
    elif type(state) is dict:
        for k, s in state.items():
            if s is not None:
                if type(model) is not dict or k not in model:
                    raise _another_model(owner, path + (k,))
                g = None if grad is None else grad.get(k)
                yield from _triples(s, model[k], g, (*path, k), owner)


def _another_model(model: Any, where: Any) -> ValueError:
    from ..module import show

    return ValueError(
        f"this optimiser state was built by fx.setup for another model: it has an entry "
        f"{where!r} that {show(model) if isinstance(model, Module) else 'the model'} lacks. "
        "Build it for this one: state = fx.setup(rule, model)."
    )


def _update_explicit(state: OptimiserState, model: Module, grads: Any) -> tuple[Any, Any]:
    if isinstance(grads, tuple) and len(grads) == 1 and isinstance(grads[0], Module):
        grads = grads[0]  # the whole tuple from gradient(): Flux warns and uses grads[1]
    leaves: dict[int, Leaf] = {}
    slots: dict[int, list[Slot]] = {}
    acc: dict[int, Any] = {}
    for leaf, slot, g in _triples(state, model, grads):
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
        new_xs, new_states, new_ts = _run(
            [lf.rule for lf in ls],
            [lf.state for lf in ls],
            xs,
            [acc[k] for k in todo],
            [lf.t for lf in ls],
            [slots[k][0].label() for k in todo],
        )
    except TypeError:  # a state built for other shapes (setup on another model)? say so
        from ..checks import check_state_fits

        for k, lf, x in zip(todo, ls, xs):
            check_state_fits(lf, x, slots[k][0].label())
        raise
    for k, lf, x, s, t in zip(todo, ls, new_xs, new_states, new_ts):
        lf.state, lf.t = s, t
        for slot in slots[k]:
            slot.set(x)
    return state, model


# -- implicit mode --------------------------------------------------------------------
def implicit_state(opt: Rule, entries: list[Any]) -> list[Record]:
    """The ``Record`` (state, update count) of each of ``entries`` kept inside ``opt``,
    created on first use; current (taken back from a training plan holding it)."""
    store = opt._implicit_store()
    if store.owner is not None:
        store.owner.flush()  # the live state sits packed inside a compiled training plan
    recs = store.records
    need_t = opt.has_schedule()
    for p in entries:  # the built-in rules set up their state without compiling anything
        if p.key() not in recs:
            t = jax.device_put(np.zeros((), np.int32)) if need_t else None
            recs[p.key()] = Record(opt.init(p.get()), t, p.slots[0].owner)
    return [recs[p.key()] for p in entries]


def _update_implicit(opt: Rule, ps: Params, gs: Grads) -> Params:
    pairs = [(p, g) for p, g in zip(ps.entries, gs._grads) if g is not None]
    if not pairs:
        return ps
    entries = [p for p, _ in pairs]
    recs = implicit_state(opt, entries)
    new_xs, new_states, new_ts = _run(
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


def _leaves(tree: Any) -> Iterator[Leaf]:
    seen: set[int] = set()

    def go(t: Any) -> Iterator[Leaf]:
        if isinstance(t, Leaf):
            if id(t) not in seen:
                seen.add(id(t))
                yield t
        elif isinstance(t, OptimiserState):
            for v in t._children.values():
                yield from go(v)
        elif type(t) in (list, tuple):
            for v in t:
                yield from go(v)
        elif type(t) is dict:
            for v in t.values():
                yield from go(v)

    return go(tree)


def _adjust_rule(rule: Rule, changes: dict[str, Any], found: set[str]) -> Rule:
    mine = {k: v for k, v in changes.items() if k in rule.hyperparameters()}
    found.update(mine)
    new = rule.replace(**mine)
    for k, v in new.hyperparameters().items():
        if isinstance(v, Rule):
            setattr(new, k, _adjust_rule(v, changes, found))
        elif isinstance(v, list | tuple) and any(isinstance(r, Rule) for r in v):
            members = (_adjust_rule(r, changes, found) if isinstance(r, Rule) else r for r in v)
            setattr(new, k, type(v)(members))
    return new


def adjust(tree: Any, eta: Any = None, **changes: Any) -> Any:
    """Change hyperparameters of every rule in a state tree (in place; returns the tree):
    ``fx.adjust(state, 0.01)`` sets the learning rate, ``fx.adjust(state, beta=(0.8, 0.9))``
    any named field. Members of an ``OptimiserChain`` that lack a field are left alone; a
    field no rule has is an error. On a rule (implicit mode), returns an adjusted copy.

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
        new = tree
        for leaf in _leaves(tree):
            leaf.rule = _adjust_rule(leaf.rule, changes, found)
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
    leaves = list(_leaves(tree))
    if not leaves:
        raise TypeError(
            f"{fname} takes (part of) the optimiser state from fx.setup, e.g. "
            f"fx.{fname}(state.layers[0]); got {_what(tree)}, which holds no optimiser state. "
            "In implicit mode (fx.params), leave arrays out instead: ps.remove(m[0])."
        )
    for leaf in leaves:
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
