"""What a loss can see (internal): the objects its closure, defaults and globals reach, the
arrays it captures as constants, and the cache key of a loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..tree import is_array


def filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
        return True
    except ValueError:
        return False


def _names(code: Any) -> Iterator[str]:
    yield from code.co_names
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            yield from _names(c)


def _scope(f: Any) -> list[tuple[str, Any]]:
    """(name, value) of the closure cells, defaults and globals that ``f``'s code names."""
    code = getattr(f, "__code__", None)
    if code is None:
        return []
    out = [(n, c.cell_contents) for n, c in zip(code.co_freevars, f.__closure__ or ()) if filled(c)]
    out += [("default", v) for v in (f.__defaults__ or ())]
    g = getattr(f, "__globals__", {})
    out += [(n, g[n]) for n in _names(code) if n in g]
    return out


def reachable(f: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[Any]:
    """Objects a function can reach through its scope, following the functions it names."""
    seen = set() if seen is None else seen
    if id(f) in seen or depth > 4:
        return
    seen.add(id(f))
    if inspect.ismethod(f):
        yield f.__self__
        f = f.__func__
    if getattr(f, "__code__", None) is None:
        call = type(f).__dict__.get("__call__") if not isinstance(f, type) else None
        if call is not None and hasattr(call, "__code__"):
            yield f
            yield from reachable(call, depth + 1, seen)
        return
    for _, v in _scope(f):
        yield v
        if inspect.isfunction(v) or inspect.ismethod(v):
            yield from reachable(v, depth + 1, seen)


def captured_arrays(loss: Any) -> list[str]:
    """Arrays (outside modules) that a loss reads from its enclosing scope or globals."""
    return [
        f"{name} ({'×'.join(map(str, np.shape(v)))})"
        for name, v in _scope(loss)
        if is_array(v) and np.size(v) > 1
    ]


def loss_key(loss: Any) -> Any:
    """Cache key of a loss: its code and the identities of what its closure holds, so a
    ``lambda`` re-created each epoch maps to the same compiled step."""
    code = getattr(loss, "__code__", None)
    if code is None:
        return ("object", id(loss))
    cells = tuple(id(c.cell_contents) if filled(c) else None for c in (loss.__closure__ or ()))
    return (code, cells, id(getattr(loss, "__self__", None)))
