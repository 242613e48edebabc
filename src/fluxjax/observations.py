"""Observations: data as an array, or tuples (named tuples too) and dicts of arrays, nested,
with the observations along every array's first axis. ``numobs`` counts them, ``getobs``
takes some (MLUtils' names); the DataLoader is built on these."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["numobs", "getobs", "normalise", "describe", "map_arrays", "arrays_of"]

_take = jax.jit(lambda a, idx: a[idx])  # one compiled gather per (shape, batch size)


# ---- containers: an array, or tuples / dicts of them, nested -------------------------------


def map_arrays(fn: Callable[[Any], Any], data: Any) -> Any:
    """Apply ``fn`` to every array of ``data``, keeping the tuple/dict structure."""
    if isinstance(data, tuple):
        items = [map_arrays(fn, d) for d in data]
        return type(data)(*items) if hasattr(data, "_fields") else tuple(items)
    if isinstance(data, dict):
        return {k: map_arrays(fn, v) for k, v in data.items()}
    return fn(data)


def arrays_of(data: Any, path: str = "data") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, array)`` for every array of ``data``, e.g. ``("data[1]", y)``."""
    if isinstance(data, tuple):
        for i, d in enumerate(data):
            yield from arrays_of(d, f"{path}[{i}]")
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from arrays_of(v, f"{path}[{k!r}]")
    else:
        yield path, data


def _as_array(x: Any, path: str) -> Any:
    if isinstance(x, np.memmap):
        return x  # out-of-core data stays on disk, read batch by batch
    if isinstance(x, np.ndarray):
        x = np.array(x)  # a private copy: later in-place edits of the user's array don't leak in
        x.flags.writeable = False
    elif isinstance(x, range | list):
        try:
            x = np.asarray(x)
        except ValueError:  # NumPy >= 1.24 refuses ragged lists outright
            x = np.empty(0, dtype=object)
        if x.dtype == object:
            raise TypeError(f"{path} is a ragged list; pass an array, a tuple or a dict of arrays")
    elif not isinstance(x, jax.Array):
        raise TypeError(
            f"{path} is a {type(x).__name__}; DataLoader takes an array (NumPy or JAX), "
            "or a tuple or dict of arrays (nesting allowed)"
        )
    if x.ndim == 0:
        raise ValueError(f"{path} is a scalar; every array needs an observation axis (its first)")
    return x


def numobs(data: Any) -> int:
    """The number of observations in ``data``: the length of the first axis of its arrays.

    ``data`` is an array or a tuple/dict of arrays (nested); all arrays must agree, as in
    MLUtils' ``numobs`` (the *first* axis here, Flux's last).

    >>> import numpy as np, fluxjax as fx
    >>> fx.numobs((np.zeros((5, 2)), {"y": np.zeros(5)}))
    5
    >>> fx.numobs((np.zeros((5, 2)), np.zeros(4)))
    Traceback (most recent call last):
    ValueError: data[0] has 5 observations but data[1] has 4; ...
    """
    leaves = list(arrays_of(data))
    if not leaves:
        raise ValueError(f"Need at least one data input, got an empty {type(data).__name__}")
    first, n = leaves[0][0], _len0(leaves[0][1], leaves[0][0])
    for path, a in leaves[1:]:
        if _len0(a, path) != n:
            raise ValueError(
                f"{first} has {n} observations but {path} has {a.shape[0]}; all arrays need "
                "the same length along their first (observation) axis"
            )
    return n


def _len0(a: Any, path: str) -> int:
    shape = getattr(a, "shape", None)
    if not shape:
        raise ValueError(f"{path} has no observation axis (shape {shape}); pass arrays")
    return int(shape[0])


def getobs(data: Any, idx: Any) -> Any:
    """Observations ``idx`` of ``data``: ``idx`` an int (one observation, first axis dropped)
    or a sequence of ints (a batch, first axis kept). Keeps the container structure; NumPy
    arrays give NumPy arrays, JAX arrays give JAX arrays (gathered on their device).

    >>> import numpy as np, fluxjax as fx
    >>> fx.getobs({"x": np.arange(10, 15)}, [4, 0])
    {'x': array([14, 10])}
    >>> fx.getobs((np.arange(6).reshape(3, 2),), 1)
    (array([2, 3]),)
    """
    if isinstance(idx, int | np.integer):
        return map_arrays(lambda a: a[int(idx)], data)
    idx = np.asarray(idx, dtype=np.intp)
    jidx: list[jax.Array] = []  # the indices go to the device once, for all JAX arrays

    def take(a: Any) -> Any:
        if not isinstance(a, jax.Array):
            return a[idx]
        if not jidx:
            jidx.append(jnp.asarray(idx))
        return _take(a, jidx[0])

    return map_arrays(take, data)


def normalise(data: Any) -> Any:
    """Check every array of ``data``, convert lists and ranges, copy NumPy arrays (read-only)."""
    paths = iter([path for path, _ in arrays_of(data)])  # same order as _map visits them
    return map_arrays(lambda a: _as_array(a, next(paths)), data)


def describe(data: Any) -> str:
    if isinstance(data, tuple | dict):
        n = sum(1 for _ in arrays_of(data))
        kind = "tuple" if type(data) is tuple else type(data).__name__
        return f"{kind} of {n} array{'s' * (n != 1)}"
    return f"array of shape {tuple(data.shape)}"
