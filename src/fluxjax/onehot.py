"""One-hot encoding: ``onehot``, ``onehotbatch`` and ``onecold``, with Flux's semantics.

Flux returns lazy Bool one-hot arrays; fluxjax returns dense float32 JAX arrays (a matrix
product with them is an ordinary matmul). The class axis is the **last** one: a batch of
``n`` labels encodes to shape ``(n, len(labels))`` (Flux: ``len(labels) × n``), and
``onecold`` takes the argmax along the last axis. Without ``labels``, ``onecold`` returns
0-based indices (Flux's default labels are ``1:size(y, 1)``).

>>> import fluxjax as fx
>>> y = fx.onehotbatch(["b", "a", "c"], ["a", "b", "c"])
>>> y.shape, fx.onecold(y, ["a", "b", "c"]).tolist()
((3, 3), ['b', 'a', 'c'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = ["onehot", "onehotbatch", "onecold"]

_NO_DEFAULT = object()
_NAN = object()  # dictionary key for NaN labels: Julia's isequal(NaN, NaN) is true


def _plain(v: Any) -> Any:
    """A label as a hashable Python value: 0-d arrays unwrapped, NaN mapped to one key."""
    if hasattr(v, "item") and np.ndim(v) == 0:
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return _NAN
    return v


def _lookup(labels: Iterable[Any], default: Any) -> tuple[int, Callable[[Any], int]]:
    """``(len(labels), index_of)``: index of the first label equal to a value (or default)."""
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    index: dict[Any, int] = {}
    for i, label in enumerate(labels):
        index.setdefault(_plain(label), i)

    def find(v: Any) -> int | None:
        key = _plain(v)
        try:
            return index.get(key)
        except TypeError:  # unhashable value: compare one by one
            return next((i for i, label in enumerate(labels) if label == v), None)

    def index_of(v: Any) -> int:
        i = find(v)
        if i is None and default is not _NO_DEFAULT:
            i = find(default)
            if i is None:
                raise ValueError(f"Default value {default!r} is not in labels {labels}")
        if i is None:
            raise ValueError(
                f"Value {v!r} is not in labels {labels}; pass default=... to map unknown values"
            )
        return i

    return len(labels), index_of


def onehot(x: Any, labels: Iterable[Any], default: Any = _NO_DEFAULT) -> Array:
    """One-hot vector of length ``len(labels)``: 1.0 at the first label equal to ``x``.

    If ``x`` is not in ``labels``, ``default`` is encoded instead (a ``ValueError`` when no
    default is given, or when the default is missing too).

    >>> onehot("b", ["a", "b", "c"]).tolist()
    [0.0, 1.0, 0.0]
    >>> onehot(7, [1, 2, 3], default=3).tolist()
    [0.0, 0.0, 1.0]
    """
    n, index_of = _lookup(labels, default)
    return jnp.zeros(n, jnp.float32).at[index_of(x)].set(1.0)


def onehotbatch(xs: Any, labels: Iterable[Any], default: Any = _NO_DEFAULT) -> Array:
    """One-hot encode every entry of ``xs``: float32 of shape ``(*xs.shape, len(labels))``.

    A list of ``n`` values gives ``(n, len(labels))``, one row per observation; a string is
    taken as its characters (as Julia's ``onehotbatch("abc", 'a':'c')``).

    >>> onehotbatch([2, 1, 2], [1, 2]).tolist()
    [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    >>> onehotbatch(jnp.zeros((2, 3), int), range(4)).shape
    (2, 3, 4)
    """
    n, index_of = _lookup(labels, default)
    arr = np.asarray(list(xs) if isinstance(xs, str) else xs)
    idx = np.array([index_of(v) for v in arr.reshape(-1).tolist()], dtype=np.int64)
    return jnp.asarray(np.eye(n, dtype=np.float32)[idx.reshape(arr.shape)])


def onecold(y: ArrayLike, labels: Iterable[Any] | None = None) -> Any:
    """Inverse of ``onehotbatch``: the argmax along the last axis, mapped through ``labels``.

    Ties go to the first maximum. Without ``labels`` the result is the JAX array of 0-based
    indices, of shape ``y.shape[:-1]`` (usable under ``jit``). With ``labels`` a vector
    ``y`` gives one label, an array a NumPy array of labels.

    >>> onecold(jnp.array([0.1, 0.7, 0.2]), ["a", "b", "c"])
    'b'
    >>> onecold(jnp.array([[0.0, 1.0], [3.0, 3.0]])).tolist()
    [1, 0]
    """
    idx = jnp.argmax(jnp.asarray(y), axis=-1)
    if labels is None:
        return idx
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    k = jnp.shape(y)[-1] if jnp.ndim(y) else 0
    if len(labels) != k:
        raise ValueError(
            f"onecold: y has {k} classes on its last axis but {len(labels)} labels were "
            f"given ({labels[:5]}{'...' if len(labels) > 5 else ''}); pass one label per class."
        )
    if idx.ndim == 0:
        return labels[int(idx)]
    out = np.empty(len(labels), dtype=object)
    out[:] = labels
    picked = out[np.asarray(idx)]
    return np.array(picked.tolist())
