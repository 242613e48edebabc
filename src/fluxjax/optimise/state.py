"""Optimiser state: the explicit-mode tree ``setup`` builds (``OptimiserState`` nodes
mirroring the model, a ``Leaf`` per array), the implicit-mode records kept inside a rule,
and the checks that a state fits a model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..module import Module, Slot, attributes, children, is_array, show, trainable
from ..tree import layout
from .base import Record, Rule
from .optax import as_rule

__all__ = [
    "Leaf",
    "OptimiserState",
    "setup",
    "triples",
    "leaves",
    "implicit_state",
    "state_leaves",
    "check_state_fits",
]


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


def triples(
    state: Any, model: Any, grad: Any, path: tuple[Any, ...] = (), owner: Any = None
) -> Iterator[tuple[Leaf, Slot, Any]]:
    """Walk a state tree, the model and a model-shaped gradient together."""
    if isinstance(state, Leaf):
        yield state, Slot(owner, path), grad
    elif isinstance(state, OptimiserState):
        if not isinstance(model, Module):
            raise TypeError("update: the state tree does not match the model's structure.")
        gattrs = attributes(grad) if isinstance(grad, Module) else (grad or {})
        attrs = layout(model)  # the structure only: a Leaf's array itself is not read
        for k, s in state._children.items():
            if s is None:
                continue
            if k not in attrs:
                raise _another_model(model, k)
            g = gattrs.get(k) if isinstance(gattrs, dict) else getattr(grad, k, None)
            yield from triples(s, attrs[k], g, (k,), model)
    elif type(state) in (list, tuple):
        for i, s in enumerate(state):
            if s is not None:
                if type(model) not in (list, tuple) or i >= len(model):
                    raise _another_model(owner, path + (i,))
                g = None if grad is None else grad[i]
                yield from triples(s, model[i], g, (*path, i), owner)
    elif type(state) is dict:
        for k, s in state.items():
            if s is not None:
                if type(model) is not dict or k not in model:
                    raise _another_model(owner, path + (k,))
                g = None if grad is None else grad.get(k)
                yield from triples(s, model[k], g, (*path, k), owner)


def _another_model(model: Any, where: Any) -> ValueError:
    return ValueError(
        f"this optimiser state was built by fx.setup for another model: it has an entry "
        f"{where!r} that {show(model) if isinstance(model, Module) else 'the model'} lacks. "
        "Build it for this one: state = fx.setup(rule, model)."
    )


def leaves(tree: Any) -> Iterator[Leaf]:
    seen: set[int] = set()

    def go(t: Any) -> Iterator[Leaf]:
        if isinstance(t, Leaf):
            if id(t) not in seen:
                seen.add(id(t))
                yield t
        elif isinstance(t, OptimiserState) or type(t) in (list, tuple, dict):
            node = t._children if isinstance(t, OptimiserState) else t
            for _, v in children(node):
                yield from go(v)

    return go(tree)


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
            store.add(p.key(), p.slots[0].owner, opt.init(p.get()), t)
    return [recs[p.key()] for p in entries]


def state_leaves(state: Any, model: Any) -> list[Any]:
    """``(leaf, slot, None)`` for each leaf of an explicit-mode state walked with ``model``;
    a ``ValueError`` naming the entry when the state was built for a model of another
    structure (a ``Chain`` state with a ``Dense``, another number of layers).

    >>> import fluxjax as fx
    >>> from fluxjax.optimise.state import state_leaves
    >>> state_leaves(fx.setup(fx.Adam(), fx.Chain(fx.Dense(1, 2))), fx.Dense(1, 2))
    Traceback (most recent call last):
    ValueError: this optimiser state was built by fx.setup for another model: ...
    """
    return list(triples(state, model, None))


def check_state_fits(leaf: Any, x: Any, label: str) -> None:
    """Raise when an explicit-mode ``Leaf``'s state was built for an array of another shape
    (a state from ``setup`` on another model)."""
    want = jax.eval_shape(leaf.rule.init, jax.ShapeDtypeStruct(x.shape, x.dtype))
    got = leaf.state
    want_leaves, got_leaves = jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)
    shapes_w = [tuple(a.shape) for a in want_leaves]
    shapes_g = [tuple(np.shape(a)) for a in got_leaves]
    if shapes_w != shapes_g:
        first = next((g for g, w in zip(shapes_g, shapes_w) if g != w), shapes_g[:1])
        raise ValueError(
            f"the optimiser state of {label} was built for an array of shape {first}, but the "
            f"parameter has shape {tuple(x.shape)}: this state comes from fx.setup on another "
            "model. Build it for this one: state = fx.setup(rule, model)."
        )
