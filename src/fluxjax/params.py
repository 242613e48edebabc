"""Implicit parameters (Zygote's): ``params``, ``Params`` and ``Grads``.

JAX arrays are values, so a ``Params`` holds *slots* (a module and an attribute), not
arrays: a ``Param`` is every slot that holds one array (tied weights share one), and
``gs[array]`` looks a gradient up by the array a slot holds now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .module import Module, Slot, is_array, live_modules, walk

__all__ = ["Params", "Grads", "params", "Param", "group"]


class Param:
    """One parameter of a ``Params``: every slot that holds the same array (tied weights)."""

    __slots__ = ("slots",)

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots

    def get(self) -> Any:
        return self.slots[0].get()

    def set(self, value: Any) -> None:
        for s in self.slots:
            s.set(value)

    def key(self) -> tuple[int, tuple[Any, ...]]:
        return self.slots[0].key()

    def label(self) -> str:
        return self.slots[0].label()


def group(triples: Iterator[tuple[Module, tuple[Any, ...], Any]]) -> list[Param]:
    """Group (owner, path, array) triples by array identity, keeping first-seen order."""
    by_id: dict[int, Param] = {}
    out: list[Param] = []
    for owner, path, arr in triples:
        p = by_id.get(id(arr))
        if p is None:
            p = by_id[id(arr)] = Param([Slot(owner, path)])
            out.append(p)
        else:
            p.slots.append(Slot(owner, path))
    return out


class Params:
    """An ordered set of a model's trainable arrays, held by slot (Zygote's ``Params``).

    ``fx.params(m)`` collects every trainable array of ``m`` depth-first in attribute order
    (``Dense`` → weight, bias; ``Chain`` → layer order), an array shared by two layers once.
    ``ps.add(x)`` / ``ps.remove(x)`` take a layer or one of its arrays (Flux's ``push!`` /
    ``delete!``); iteration yields the arrays the slots hold now.

    >>> import fluxjax as fx
    >>> m = fx.Chain(fx.Dense(1, 4), fx.Dense(4, 1))
    >>> ps = fx.params(m[1])
    >>> len(ps), [p.shape for p in ps]
    (2, [(1, 4), (1,)])
    >>> _ = ps.add(m[0].weight); len(ps)
    3
    >>> _ = ps.remove(m[1]); [p.shape for p in ps]
    [(4, 1)]
    """

    def __init__(self, entries: list[Param] | None = None, roots: list[Any] | None = None):
        self._entries: list[Param] = list(entries or [])
        self.roots: list[Any] = list(roots or [])
        self.version = 0  # bumped by add/remove, so train can tell a changed collection

    # -- set behaviour ---------------------------------------------------------------
    def _index(self, x: Any) -> int | None:
        for i, p in enumerate(self._entries):
            for s in p.slots:
                if s.get() is x:
                    return i
        return None

    def add(self, *xs: Any) -> Params:
        """Add layers, arrays held by a module, or other ``Params`` (no duplicates)."""
        for x in xs:
            for p in _entries_of(x):
                if not any(_same(p, q) for q in self._entries):
                    self._entries.append(p)
            if isinstance(x, Module):
                self.roots.append(x)
        self.version += 1
        return self

    def remove(self, *xs: Any) -> Params:
        """Remove layers (all their arrays) or single arrays from the collection."""
        for x in xs:
            if isinstance(x, Module | Params):
                drop = [p.key() for p in _entries_of(x)]
                self._entries = [p for p in self._entries if p.key() not in drop]
            else:
                i = self._index(x)
                if i is None:
                    raise KeyError(f"Params.remove: the array of shape {_shape(x)} is not in ps")
                del self._entries[i]
        self.version += 1
        return self

    push = add
    delete = remove

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Any]:
        return (p.get() for p in self._entries)

    def __getitem__(self, i: int) -> Any:
        return self._entries[i].get()

    def __contains__(self, x: Any) -> bool:
        return self._index(x) is not None

    def __repr__(self) -> str:
        shapes = ", ".join("×".join(map(str, p.get().shape)) or "scalar" for p in self._entries)
        return f"Params([{shapes}])"

    def key(self) -> tuple[Any, ...]:
        """Identity of the collection's contents (the slots), for caching compiled steps."""
        cached = self.__dict__.get("_key")
        if cached is None or cached[0] != self.version:
            cached = (self.version, tuple(p.key() for p in self._entries))
            self.__dict__["_key"] = cached
        return cached[1]

    @property
    def entries(self) -> list[Param]:
        """The parameters as slot groups, in order (used by ``update`` and ``train``)."""
        return self._entries


def _same(p: Param, q: Param) -> bool:
    return p.get() is q.get() or p.key() == q.key()


def _shape(x: Any) -> Any:
    return tuple(getattr(x, "shape", ())) or type(x).__name__


def _entries_of(x: Any, seen: frozenset[int] = frozenset()) -> list[Param]:
    if isinstance(x, Params):
        return list(x.entries)
    if isinstance(x, Module):
        return group(walk(x, trainable_only=True))
    if isinstance(x, list | tuple):
        if id(x) in seen:  # a list that contains itself: its contents are already here
            return []
        inner = seen | {id(x)}
        return [p for v in x for p in _entries_of(v, inner)]
    if is_array(x):
        slots = [
            Slot(owner, path)
            for m in live_modules()
            for owner, path, a in walk(m, trainable_only=False)
            if a is x and owner is m
        ]
        if not slots:
            raise ValueError(
                f"params: the array of shape {_shape(x)} is not held by any fluxjax module. "
                "JAX arrays are values, so fluxjax trains the place that holds an array: keep "
                "it in a module attribute (e.g. layer.weight) and pass that array or the layer."
            )
        return [Param(slots)]
    raise TypeError(
        f"params: cannot collect parameters from {type(x).__name__}; pass layers, Chains, "
        "arrays held by a layer, or Params."
    )


def params(*xs: Any) -> Params:
    """Collect the trainable arrays of models (and arrays held by models) into ``Params``.

    >>> import fluxjax as fx
    >>> m = fx.Chain(fx.Dense(1, 4), fx.Dense(4, 1))
    >>> [p.shape for p in fx.params(m)]
    [(4, 1), (4,), (1, 4), (1,)]
    """
    return Params().add(*xs)


class Grads:
    """Gradients of a ``Params``: ``gs[array]`` by the array a slot holds, iteration in
    parameter order, and ``+``, ``-``, scalar ``*`` and ``/`` giving new ``Grads``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[2.0]]), jnp.array([1.0]))
    >>> gs = fx.gradient(lambda: m(jnp.array([[3.0]])).sum(), fx.params(m))
    >>> [g.tolist() for g in 2 * gs]
    [[[6.0]], [2.0]]
    """

    def __init__(self, ps: Params, grads: list[Any]) -> None:
        self.params = ps
        self._grads = list(grads)

    def _find(self, x: Any) -> int:
        if isinstance(x, int) and not isinstance(x, bool):
            return x
        i = self.params._index(x)
        if i is None:
            raise KeyError(
                f"Grads: no gradient for the array of shape {_shape(x)}: it is not in these "
                "Params (or training has replaced it since; look it up through the model, "
                "e.g. gs[m[0].weight])."
            )
        return i

    def __getitem__(self, x: Any) -> Any:
        return self._grads[self._find(x)]

    def __setitem__(self, x: Any, g: Any) -> None:
        self._grads[self._find(x)] = g

    def __contains__(self, x: Any) -> bool:
        return x in self.params

    def __iter__(self) -> Iterator[Any]:
        return iter(self._grads)

    def __len__(self) -> int:
        return len(self._grads)

    def keys(self) -> Params:
        return self.params

    def values(self) -> list[Any]:
        return list(self._grads)

    def items(self) -> list[tuple[Any, Any]]:
        return list(zip(self.params, self._grads))

    def _combine(self, other: Any, op: Callable[[Any, Any], Any]) -> Grads:
        if isinstance(other, Grads):
            mine = [p.key() for p in self.params.entries]
            theirs = [p.key() for p in other.params.entries]
            if sorted(mine) != sorted(theirs):
                raise ValueError("Grads: both operands must hold gradients of the same Params.")
            order = {k: i for i, k in enumerate(theirs)}
            return Grads(
                self.params, [op(g, other._grads[order[k]]) for k, g in zip(mine, self._grads)]
            )
        return Grads(self.params, [op(g, other) for g in self._grads])

    def __add__(self, other: Any) -> Grads:
        return self._combine(other, lambda a, b: a + b)

    def __sub__(self, other: Any) -> Grads:
        return self._combine(other, lambda a, b: a - b)

    def __mul__(self, c: Any) -> Grads:
        if isinstance(c, Grads):
            raise TypeError("Grads * Grads is not defined; multiply by a scalar.")
        return self._combine(c, lambda a, b: a * b)

    __rmul__ = __mul__

    def __truediv__(self, c: Any) -> Grads:
        return self._combine(c, lambda a, b: a / b)

    def __neg__(self) -> Grads:
        return Grads(self.params, [-g for g in self._grads])

    def __repr__(self) -> str:
        return f"Grads({len(self)} arrays)"
