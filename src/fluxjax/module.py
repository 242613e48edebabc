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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .convert import cpu, enable_x64, f32, f64, fmap, gpu  # noqa: F401  (fluxjax.module.f32, ...)
from .tree import (  # noqa: F401  (re-exported: fluxjax.module.walk, ... stay importable)
    PACKED,
    PLANS,
    Node,
    Path,
    Slot,
    attributes,
    children,
    flatten,
    flatten_with_keys,
    is_array,
    live_modules,
    mark_live,
    modules,
    nparams,
    settle,
    trainable,
    unflatten,
    walk,
)

__all__ = ["Module", "trainable", "fmap", "f32", "f64", "gpu", "cpu", "nparams"]


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


class Module(Node):
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
            cls, flatten_with_keys, lambda aux, ch: unflatten(cls, aux, ch), flatten
        )

    def __getattr__(self, name: str) -> Any:
        # only for an attribute not found: one a training plan holds packed (``settle``)
        d = self.__dict__
        if PACKED in d:
            settle(self)
            if name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        # copy, deepcopy and pickle see every array (none held packed by a training plan),
        # and not the training plans kept for this module (a copy gets plans of its own)
        settle(self)
        d = self.__dict__
        return {k: v for k, v in d.items() if k != PLANS} if PLANS in d else d

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_fx_live" not in d:
            mark_live(self)
        if name not in d and PACKED in d:  # held packed: settle, or it would overwrite this
            settle(self)
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
        settle(self)
        d = self.__dict__
        d["_fx_version"] = d.get("_fx_version", 0) + 1
        STRUCTURE_CLOCK.now += 1
        object.__delattr__(self, name)

    # -- display -----------------------------------------------------------------------
    def _show(self) -> str:
        """One-line constructor-style text, without the parameter count."""
        parts = []
        for k, v in attributes(self).items():
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
