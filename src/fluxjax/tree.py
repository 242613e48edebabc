"""Tree walks: what a model's attributes hold, and every way of visiting it.

A *node* (every ``fx.Module``) is walked through its attributes; lists, tuples and dicts
are walked through their items; arrays are the leaves; anything else is static structure.
``children`` is the one step every walk takes; ``walk`` (arrays with their owner and path),
``modules`` (every module once) and ``nparams`` are built on it, as is a ``Slot``: the
place, ``(module, path)``, where one array lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

__all__ = [
    "Node",
    "flatten",
    "flatten_with_keys",
    "unflatten",
    "is_array",
    "attributes",
    "settle",
    "layout",
    "HELD",
    "PACKED",
    "children",
    "trainable",
    "walk",
    "modules",
    "nparams",
    "live_modules",
    "mark_live",
    "Slot",
    "Path",
]


class Node:
    """What the walks enter through its attributes: the base of ``fx.Module`` (which adds
    pytree registration, conversion on assignment and the repr)."""

    def trainable(self) -> tuple[str, ...] | None:
        """Names of the attributes an optimiser may update; ``None`` means all of them."""
        return None


_LIVE: weakref.WeakSet[Node] = weakref.WeakSet()


def mark_live(m: Node) -> None:
    """Count ``m`` among the live modules (``live_modules``)."""
    m.__dict__["_fx_live"] = True
    _LIVE.add(m)


def live_modules() -> list[Node]:
    """Every module object created in this process that is still alive."""
    return list(_LIVE)


def is_array(x: Any) -> bool:
    """True for a JAX array, a tracer or a NumPy array (the leaves of a module)."""
    return isinstance(x, jax.Array | np.ndarray)


PACKED = "_fx_packed"  # in a module's __dict__: the plan holding some of its arrays packed
PLANS = "_fx_plans"  # in a module's __dict__: the training plans it keeps (engine.cache)


def settle(m: Node) -> None:
    """Put back the arrays of ``m`` that a training plan holds packed between its compiled
    calls (``Plan.settle``), if any: every way of reading a module's arrays calls this
    (attribute access, walks, pytree flattening, slots), so none meets it without them."""
    plan = m.__dict__.get(PACKED)
    if plan is not None:
        plan.settle()


def attributes(m: Node) -> dict[str, Any]:
    d = m.__dict__
    if PACKED in d:
        settle(m)
    return {k: v for k, v in d.items() if not k.startswith("_fx_")}


HELD = object()  # stands for an array a training plan holds packed (``layout``)


def layout(m: Node) -> dict[str, Any]:
    """``attributes(m)`` for a walk that needs only the structure (the names, and which
    hold modules or containers): an array a training plan holds packed is not read back
    (``settle``, a device transfer) but given as ``HELD``, in its place."""
    d = m.__dict__
    plan = d.get(PACKED)
    if plan is None:
        return attributes(m)
    return {k: v for k, v in plan.layout_of(d).items() if not k.startswith("_fx_")}


class _Static:
    """A hashable wrapper for a static attribute value (compared by value when possible)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Static):
            return False
        a, b = self.value, other.value
        if a is b:
            return True
        if type(a) is not type(b):
            return False
        try:
            return bool(a == b)
        except Exception:
            return False

    def __hash__(self) -> int:
        try:
            return hash((type(self.value), self.value))
        except TypeError:
            return id(self.value)


_LEAF = "leaf"


def _split(value: Any, out: list[Any]) -> Any:
    """Append the array/module children of an attribute value to ``out``; return its spec."""
    if is_array(value) or isinstance(value, Node):
        out.append(value)
        return _LEAF
    if type(value) in (list, tuple):
        specs = tuple(_split(v, out) for v in value)
        return (type(value), specs)
    if type(value) is dict:
        return (dict, tuple(value), tuple(_split(v, out) for v in value.values()))
    return _Static(value)


def _join(spec: Any, it: Iterator[Any]) -> Any:
    if isinstance(spec, str):  # _LEAF
        return next(it)
    if isinstance(spec, _Static):
        return spec.value
    if spec[0] is dict:
        return {k: _join(s, it) for k, s in zip(spec[1], spec[2])}
    return spec[0](_join(s, it) for s in spec[1])


def _key_names(spec: Any, prefix: str, out: list[str]) -> None:
    if spec is _LEAF:
        out.append(prefix)
    elif isinstance(spec, _Static):
        return
    elif spec[0] is dict:
        for k, s in zip(spec[1], spec[2]):
            _key_names(s, f"{prefix}[{k!r}]", out)
    else:
        for i, s in enumerate(spec[1]):
            _key_names(s, f"{prefix}[{i}]", out)


# -- a node as a JAX pytree ---------------------------------------------------------
def flatten(m: Node) -> tuple[list[Any], Any]:
    """A node's JAX pytree children (its arrays and child nodes) and its static structure."""
    children: list[Any] = []
    names, specs = [], []
    for k, v in attributes(m).items():
        names.append(k)
        specs.append(_split(v, children))
    return children, (tuple(names), tuple(specs))


def flatten_with_keys(m: Node) -> tuple[list[tuple[Any, Any]], Any]:
    children, aux = flatten(m)
    keys: list[str] = []
    for name, spec in zip(*aux):
        _key_names(spec, name, keys)
    return [(jax.tree_util.GetAttrKey(k), c) for k, c in zip(keys, children)], aux


def unflatten(cls: type, aux: Any, children: Any) -> Node:
    obj = object.__new__(cls)
    it = iter(children)
    d = obj.__dict__
    for name, spec in zip(*aux):
        d[name] = _join(spec, it)
    return obj


def children(value: Any) -> Iterator[tuple[Any, Any]]:
    """``(key, child)`` for each child of a node (attribute name, value), a list or tuple
    (index, item) or a dict (key, value); nothing for an array or any other value.

    >>> import fluxjax as fx
    >>> [k for k, _ in children(fx.Dense(2, 3))]
    ['weight', 'bias', 'act']
    >>> list(children({"a": 1})), list(children((5,)))
    ([('a', 1)], [(0, 5)])
    """
    if isinstance(value, Node):
        return iter(attributes(value).items())
    if type(value) is dict:
        return iter(value.items())
    if type(value) in (list, tuple):
        return enumerate(value)
    return iter(())


def trainable(m: Node) -> dict[str, Any]:
    """The attributes of ``m`` an optimiser may update (Flux's ``trainable``), by name:
    those holding arrays or modules, or the ones ``m.trainable()`` names.

    >>> import fluxjax as fx
    >>> sorted(fx.trainable(fx.Dense(2, 3)))
    ['bias', 'weight']
    """
    names = m.trainable()
    attrs = attributes(m)
    if names is None:
        return {k: v for k, v in attrs.items() if not isinstance(_split(v, []), _Static)}
    missing = [n for n in names if n not in attrs]
    if missing:
        raise AttributeError(
            f"{type(m).__name__}.trainable() names {missing[0]!r}, which is not an attribute; "
            f"its attributes are {', '.join(attrs)}."
        )
    return {n: attrs[n] for n in names}


Path = tuple[Any, ...]


def walk(
    value: Any,
    path: Path = (),
    owner: Node | None = None,
    *,
    trainable_only: bool,
    _inside: frozenset[int] = frozenset(),
) -> Iterator[tuple[Node, Path, Any]]:
    """Yield ``(owner_module, path_within_owner, array)`` depth-first in attribute order.

    A container met again inside itself (a list holding itself, a module holding its
    parent) is not entered twice: no infinite recursion on self-referential models."""
    if id(value) in _inside:
        return
    if isinstance(value, Node):
        items = trainable(value) if trainable_only else attributes(value)
        inside = _inside | {id(value)}
        for k, v in items.items():
            yield from walk(v, (k,), value, trainable_only=trainable_only, _inside=inside)
    elif is_array(value):
        if owner is not None:
            yield owner, path, value
    elif type(value) in (list, tuple, dict):
        inside = _inside | {id(value)}
        for k, v in children(value):
            yield from walk(v, (*path, k), owner, trainable_only=trainable_only, _inside=inside)


def modules(value: Any, seen: set[int] | None = None) -> Iterator[Node]:
    """Every module reachable from ``value`` (itself included), each once."""
    seen = set() if seen is None else seen
    if isinstance(value, Node):
        if id(value) in seen:
            return
        seen.add(id(value))
        yield value
    for _, v in children(value):
        yield from modules(v, seen)


def nparams(m: Any, *, trainable_only: bool = True) -> int:
    """Number of array elements in ``m`` (tied arrays counted once).

    >>> import fluxjax as fx
    >>> fx.nparams(fx.Chain(fx.Dense(1, 4), fx.Dense(4, 1)))
    13
    """
    seen: set[int] = set()
    total = 0
    for _, _, a in walk(m, trainable_only=trainable_only):
        if id(a) not in seen:
            seen.add(id(a))
            total += int(np.prod(a.shape))
    return total


# -- slots: where an array lives -------------------------------------------------------
class Slot:
    """A place that holds an array: ``(module, path)``, e.g. ``(dense, ("weight",))``."""

    __slots__ = ("owner", "path", "name")

    def __init__(self, owner: Node, path: Path) -> None:
        self.owner = owner
        self.path = path
        self.name = path[0] if len(path) == 1 else None

    def get(self) -> Any:
        d = self.owner.__dict__
        try:
            v: Any = d[self.path[0]]
        except KeyError:  # held packed by a training plan (``settle``), or really missing
            settle(self.owner)
            v = d[self.path[0]]
        for p in self.path[1:]:
            v = v[p]
        return v

    def set(self, value: Any) -> None:
        """Store ``value`` without conversion (the caller guarantees it is an array)."""
        d = self.owner.__dict__
        if self.path[0] not in d:  # held packed: settle first, or it would overwrite this
            settle(self.owner)
        if self.name is not None:
            d[self.name] = value
            return
        self.owner.__dict__[self.path[0]] = _replace(
            self.owner.__dict__[self.path[0]], self.path[1:], value
        )

    def key(self) -> tuple[int, Path]:
        return (id(self.owner), self.path)

    def label(self) -> str:
        text = type(self.owner).__name__
        for p in self.path:
            text += f".{p}" if isinstance(p, str) else f"[{p!r}]"
        return text

    def __repr__(self) -> str:
        return f"Slot({self.label()})"


def _replace(container: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(container, tuple):
        items = list(container)
        items[head] = _replace(items[head], rest, value)
        return tuple(items)
    container[head] = _replace(container[head], rest, value)
    return container
