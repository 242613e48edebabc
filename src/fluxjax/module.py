"""Modules: plain mutable Python objects that are also JAX pytrees.

A ``Module`` subclass is a small class whose attributes hold its state. Attributes holding
arrays are its arrays (parameters, unless ``trainable`` says otherwise); child modules in
attributes, and lists, tuples and dicts of them, are walked; everything else (an activation
function, a size, a flag) is static structure. Every subclass is registered as a JAX pytree
when it is defined, so JAX transformations see a model as a tree of arrays::

    >>> import jax, jax.numpy as jnp
    >>> import fluxjax as fx
    >>> class Affine(fx.Module):
    ...     def __init__(self, n):
    ...         self.scale = jnp.ones(n)
    ...         self.shift = jnp.zeros(n)
    ...     def __call__(self, x):
    ...         return self.scale * x + self.shift
    >>> m = Affine(3)
    >>> g = jax.grad(lambda m: m(jnp.arange(3.0)).sum())(m)
    >>> type(g).__name__, g.scale
    ('Affine', Array([0., 1., 2.], dtype=float32))

Arrays are values in JAX (in Flux they are mutated in place): training replaces the array
an attribute holds, and the old array may be deleted (its buffer donated to the new one).
Read parameters through the model (``m[0].weight``), not through an array kept from before.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Module", "trainable", "fmap", "f32", "f64", "gpu", "cpu", "nparams"]

_LIVE: weakref.WeakSet[Module] = weakref.WeakSet()


class _StructureClock:
    """Counts structure changes of every module (``structure_version`` counts one
    module's): a plan whose clock reading is unchanged needs no walk over its modules."""

    def __init__(self) -> None:
        self.now = 0


STRUCTURE_CLOCK = _StructureClock()


def structure_version(m: Module) -> int:
    """A per-module counter bumped whenever ``m``'s non-array structure changes (a layer,
    an activation or a flag assigned, an attribute added or deleted; assigning an array over
    an array does not count), so a compiled step built for the old structure can tell."""
    return m.__dict__.get("_fx_version", 0)


def is_array(x: Any) -> bool:
    """True for a JAX array, a tracer or a NumPy array (the leaves of a module)."""
    return isinstance(x, jax.Array | np.ndarray)


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
    if is_array(value) or isinstance(value, Module):
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


def _attrs(m: Module) -> dict[str, Any]:
    return {k: v for k, v in m.__dict__.items() if not k.startswith("_fx_")}


def _flatten(m: Module) -> tuple[list[Any], Any]:
    children: list[Any] = []
    names, specs = [], []
    for k, v in _attrs(m).items():
        names.append(k)
        specs.append(_split(v, children))
    return children, (tuple(names), tuple(specs))


def _flatten_with_keys(m: Module) -> tuple[list[tuple[Any, Any]], Any]:
    children, aux = _flatten(m)
    keys: list[str] = []
    for name, spec in zip(*aux):
        _key_names(spec, name, keys)
    return [(jax.tree_util.GetAttrKey(k), c) for k, c in zip(keys, children)], aux


def _unflatten(cls: type, aux: Any, children: Any) -> Module:
    obj = object.__new__(cls)
    it = iter(children)
    d = obj.__dict__
    for name, spec in zip(*aux):
        d[name] = _join(spec, it)
    return obj


def _as_array(value: Any, old: Any) -> Any:
    """Convert an assigned value to a JAX array where it is array-like."""
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, list) and value and _is_numeric_list(value):
        value = np.asarray(value)
        if old is None or not is_array(old) and not isinstance(old, list):
            if value.dtype.kind in "iuf":
                value = value.astype(np.float32)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        value = jnp.asarray(value)
    if isinstance(value, jax.Array) and is_array(old) and old is not value:
        if jnp.issubdtype(old.dtype, jnp.floating) and jnp.issubdtype(value.dtype, jnp.number):
            if value.dtype != old.dtype:
                value = value.astype(old.dtype)
    return value


def _is_numeric_list(value: list[Any]) -> bool:
    first = value[0]
    while isinstance(first, list | tuple):
        if not first:
            return False
        first = first[0]
    return isinstance(first, int | float | np.number) and not isinstance(first, bool)


class Module:
    """Base class of every layer and model (see the module docstring).

    Subclasses are registered as JAX pytrees automatically. Assigning an attribute converts
    lists and NumPy arrays to JAX arrays; assigning over an existing floating-point array
    keeps its dtype (float32 unless the model was made float64 with ``fx.f64``)::

        >>> import fluxjax as fx
        >>> d = fx.Dense(1, 2)
        >>> d.weight = [[5.0], [-5.0]]
        >>> d.weight
        Array([[ 5.],
               [-5.]], dtype=float32)

    Override ``trainable(self)`` to return the names of the attributes an optimiser may
    change (default: all); the rest are still bound and written back by ``train`` (e.g.
    running statistics) but receive no update.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, _flatten_with_keys, lambda aux, ch: _unflatten(cls, aux, ch), _flatten
        )

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_fx_live" not in d:
            d["_fx_live"] = True
            _LIVE.add(self)
        old = d.get(name)
        value = _as_array(value, old)
        if (
            is_array(value)
            and is_array(old)
            and value.shape != old.shape
            and not isinstance(value, jax.core.Tracer)
        ):
            raise ValueError(
                f"{type(self).__name__}.{name} has shape {tuple(old.shape)}, but the assigned "
                f"array has shape {tuple(value.shape)}. Assign an array of the same shape "
                f"(e.g. np.reshape(value, {tuple(old.shape)})), or `del layer.{name}` first "
                "to change it."
            )
        if not (is_array(value) and is_array(old)):
            d["_fx_version"] = d.get("_fx_version", 0) + 1
            STRUCTURE_CLOCK.now += 1
        d[name] = value

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        d["_fx_version"] = d.get("_fx_version", 0) + 1
        STRUCTURE_CLOCK.now += 1
        object.__delattr__(self, name)

    def trainable(self) -> tuple[str, ...] | None:
        """Names of the attributes an optimiser may update; ``None`` means all of them."""
        return None

    # -- display -----------------------------------------------------------------------
    def _show(self) -> str:
        """One-line constructor-style text, without the parameter count."""
        parts = []
        for k, v in _attrs(self).items():
            if is_array(v):
                parts.append(f"{k}={'×'.join(map(str, v.shape)) or 'scalar'}")
            elif isinstance(v, Module):
                parts.append(f"{k}={v._show()}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self._show() + _count_comment(self)

    def __str__(self) -> str:
        return repr(self)


def show(x: Any) -> str:
    """One-line text for a layer: its ``_show()``, or a function's name."""
    if isinstance(x, Module):
        return x._show()
    name = getattr(x, "__name__", None)
    return name if name is not None else repr(x)


def _count_comment(m: Module) -> str:
    # integer arrays (random keys) are not parameters of any kind: left out, as Flux does
    n, extra = nparams(m), _nfloat(m) - nparams(m)
    if n == 0 and extra == 0:
        return ""
    text = f"  # {n:_} parameters"
    if extra:
        text += f", plus {extra:_} non-trainable"
    return text


def _nfloat(m: Module) -> int:
    """Elements of ``m``'s floating-point arrays, trainable or not (tied ones once)."""
    seen = {
        id(a): int(np.prod(a.shape))
        for _, _, a in walk(m, trainable_only=False)
        if jnp.issubdtype(a.dtype, jnp.inexact)
    }
    return sum(seen.values())


# -- walking --------------------------------------------------------------------------
def trainable(m: Module) -> dict[str, Any]:
    """The attributes of ``m`` an optimiser may update (Flux's ``trainable``), by name:
    those holding arrays or modules, or the ones ``m.trainable()`` names.

    >>> import fluxjax as fx
    >>> sorted(fx.trainable(fx.Dense(2, 3)))
    ['bias', 'weight']
    """
    names = m.trainable()
    attrs = _attrs(m)
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
    owner: Module | None = None,
    *,
    trainable_only: bool,
    _inside: frozenset[int] = frozenset(),
) -> Iterator[tuple[Module, Path, Any]]:
    """Yield ``(owner_module, path_within_owner, array)`` depth-first in attribute order.

    A container met again inside itself (a list holding itself, a module holding its
    parent) is not entered twice: no infinite recursion on self-referential models."""
    if id(value) in _inside:
        return
    if isinstance(value, Module):
        items = trainable(value) if trainable_only else _attrs(value)
        inside = _inside | {id(value)}
        for k, v in items.items():
            yield from walk(v, (k,), value, trainable_only=trainable_only, _inside=inside)
    elif is_array(value):
        if owner is not None:
            yield owner, path, value
    elif type(value) in (list, tuple, dict):
        inside = _inside | {id(value)}
        items = value.items() if type(value) is dict else enumerate(value)
        for k, v in items:
            yield from walk(v, (*path, k), owner, trainable_only=trainable_only, _inside=inside)


def modules(value: Any, seen: set[int] | None = None) -> Iterator[Module]:
    """Every module reachable from ``value`` (itself included), each once."""
    seen = set() if seen is None else seen
    if isinstance(value, Module):
        if id(value) in seen:
            return
        seen.add(id(value))
        yield value
        for v in _attrs(value).values():
            yield from modules(v, seen)
    elif type(value) in (list, tuple):
        for v in value:
            yield from modules(v, seen)
    elif type(value) is dict:
        for v in value.values():
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


def live_modules() -> list[Module]:
    """Every module object created in this process that is still alive."""
    return list(_LIVE)


# -- slots: where an array lives -------------------------------------------------------
class Slot:
    """A place that holds an array: ``(module, path)``, e.g. ``(dense, ("weight",))``."""

    __slots__ = ("owner", "path", "name")

    def __init__(self, owner: Module, path: Path) -> None:
        self.owner = owner
        self.path = path
        self.name = path[0] if len(path) == 1 else None

    def get(self) -> Any:
        if self.name is not None:
            return self.owner.__dict__[self.name]
        v: Any = self.owner.__dict__[self.path[0]]
        for p in self.path[1:]:
            v = v[p]
        return v

    def set(self, value: Any) -> None:
        """Store ``value`` without conversion (the caller guarantees it is an array)."""
        if self.name is not None:
            self.owner.__dict__[self.name] = value
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


# -- whole-model maps -----------------------------------------------------------------
def fmap(f: Callable[[Any], Any], m: Any) -> Any:
    """A copy of ``m`` with ``f`` applied to every array; tied arrays stay tied.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> d = fx.Dense(2, 2)
    >>> fx.fmap(jnp.zeros_like, d).weight
    Array([[0., 0.],
           [0., 0.]], dtype=float32)
    """
    cache: dict[int, Any] = {}

    def g(a: Any) -> Any:
        if id(a) not in cache:
            cache[id(a)] = f(a)
        return cache[id(a)]

    out = jax.tree_util.tree_map(g, m)
    for mod in modules(out):
        mod.__dict__["_fx_live"] = True
        _LIVE.add(mod)
    return out


def _convert(dtype: Any) -> Callable[[Any], Any]:
    def conv(a: Any) -> Any:
        if jnp.issubdtype(a.dtype, jnp.floating):
            return jnp.asarray(a, dtype=dtype)
        return a

    return conv


def f32(m: Any) -> Any:
    """A copy of ``m`` with every floating-point array converted to float32.

    >>> import fluxjax as fx
    >>> fx.f32(fx.Dense(1, 1)).weight.dtype
    dtype('float32')
    """
    return fmap(_convert(jnp.float32), m)


_X64_WARNED = [False]


def f64(m: Any) -> Any:
    """A copy of ``m`` with every floating-point array converted to float64.

    JAX computes in float32 unless its x64 mode is on; ``f64`` turns it on for the whole
    process (warning once), which also changes the default dtype of your own
    ``jnp.array(1.0)``. fluxjax's own defaults (initialisers, assigned lists) stay float32.

    >>> import fluxjax as fx, jax, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     fx.f64(fx.Dense(1, 1)).weight.dtype
    dtype('float64')
    >>> jax.config.update("jax_enable_x64", False)  # back to JAX's default, for what follows
    """
    enable_x64()
    return fmap(_convert(jnp.float64), m)


def enable_x64() -> None:
    """Turn on JAX's float64 mode (warning once), or raise naming why it is impossible."""
    if jax.config.jax_enable_x64:
        return
    try:
        jax.config.update("jax_enable_x64", True)
    except Exception as e:  # pragma: no cover - depends on the JAX build
        raise RuntimeError(
            f"fx.f64 needs JAX's float64 mode, which could not be enabled ({e}). "
            "Set JAX_ENABLE_X64=1 before starting Python, or keep the model in float32."
        ) from e
    probe = jnp.zeros((), jnp.float64)
    if probe.dtype != jnp.float64:  # pragma: no cover
        raise RuntimeError(
            f"fx.f64: this JAX backend ({jax.default_backend()}) has no float64 arrays; "
            "keep the model in float32 (fx.f32)."
        )
    if not _X64_WARNED[0]:
        _X64_WARNED[0] = True
        warnings.warn(
            "fx.f64 turned on JAX's x64 mode for the whole process: jnp.array(1.0) is now "
            "float64 too. fluxjax's initialisers still return float32.",
            UserWarning,
            stacklevel=3,
        )


def gpu(m: Any) -> Any:
    """Move every array of ``m`` to the first GPU (a copy); without a GPU, ``m`` unchanged.

    >>> import fluxjax as fx
    >>> d = fx.gpu(fx.Dense(1, 1))
    """
    try:
        dev = jax.devices("gpu")[0]
    except RuntimeError:
        return m
    return fmap(lambda a: jax.device_put(a, dev), m)


def cpu(m: Any) -> Any:
    """Move every array of ``m`` to the CPU (a copy).

    >>> import fluxjax as fx
    >>> d = fx.cpu(fx.Dense(1, 1))
    """
    dev = jax.devices("cpu")[0]
    return fmap(lambda a: jax.device_put(a, dev), m)
