"""Saving and loading: ``state``/``loadmodel`` (Flux's ``Flux.state``/``loadmodel!``) and
``save``/``load``, one safetensors file holding a model, its optimiser state and a
DataLoader's position.

>>> import numpy as np, fluxjax as fx, tempfile, os
>>> m = fx.Chain(fx.Dense(2, 3, fx.relu), fx.Dense(3, 1))
>>> sorted(fx.state(m)["layers"][0])
['bias', 'weight']
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> fx.save(path, m, step=7, note="first try")
>>> m2 = fx.Chain(fx.Dense(2, 3, fx.relu), fx.Dense(3, 1))
>>> fx.load(path, m2)
{'note': 'first try', 'step': 7}
>>> bool((np.asarray(m2[0].weight) == np.asarray(m[0].weight)).all())
True

Arrays go into the safetensors file (readable by the ``safetensors`` library and PyTorch
tools; loading it runs no code), everything else into its JSON metadata. Writes are atomic:
a kill at any moment leaves the previous file whole. See ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _files
from ._files import CheckpointError
from .counts import is_count
from .data import DataLoader, check_loader_state
from .module import Module, Slot, attributes, is_array, show
from .optimise import _opt_io
from .optimise.state import OptimiserState, state_leaves

__all__ = ["state", "loadmodel", "save", "load", "CheckpointError"]


# -- walking a model's arrays by name --------------------------------------------------------
def entries(value: Any, prefix: str = "") -> Iterator[tuple[str, Slot]]:
    """``(name, slot)`` for every array of a model, depth-first in attribute order; names
    join attribute names, list indices and dict keys with dots (``layers.0.weight``)."""
    yield from _entries(value, prefix, None, ())


def _entries(value: Any, prefix: str, owner: Any, path: tuple[Any, ...]) -> Iterator[Any]:
    if isinstance(value, Module):
        for k, v in attributes(value).items():
            yield from _entries(v, _dot(prefix) + k, value, (k,))
    elif is_array(value):
        if owner is not None:
            yield prefix, Slot(owner, path)
    elif type(value) in (list, tuple):
        for i, v in enumerate(value):
            yield from _entries(v, f"{prefix}.{i}", owner, (*path, i))
    elif type(value) is dict:
        for k, v in value.items():
            yield from _entries(v, f"{prefix}.{k}", owner, (*path, k))


def _dot(prefix: str) -> str:
    return f"{prefix}." if prefix else ""


def _host(a: Any) -> np.ndarray:
    """A NumPy copy of an array (a typed PRNG key becomes its raw key data)."""
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
        a = jax.random.key_data(a)
    return np.array(a)


def _view(a: Any) -> np.ndarray:
    """``a`` as a NumPy array without a copy where the platform allows (a CPU array)."""
    if _is_key(a):
        a = jax.random.key_data(a)
    return np.asarray(a)


def _is_key(a: Any) -> bool:
    return jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def named_arrays(model: Module) -> dict[str, Slot]:
    """Every array slot of ``model`` by name (an array reachable twice: both names)."""
    if not isinstance(model, Module):
        raise TypeError(f"expected a fluxjax Module (a layer or model), got {_kind(model)}.")
    return dict(entries(model))


def _kind(x: Any) -> str:
    return f"{type(x).__name__} {x!r}"[:120]


# -- state / loadmodel ---------------------------------------------------------------------
def state(model: Module) -> dict[str, Any]:
    """The model's arrays as a nested dict of NumPy copies, keyed by attribute names (lists
    become lists, their non-array items ``None``): Flux's ``Flux.state``. Every array is
    included, trainable or not (running statistics, random keys). ``fx.loadmodel`` is the
    inverse.

    >>> import fluxjax as fx
    >>> s = fx.state(fx.Chain(fx.Dense(1, 2), fx.relu))
    >>> s["layers"][0]["weight"].shape, s["layers"][1]
    ((2, 1), None)
    """
    named_arrays(model)  # type check
    return _state_of(model)


def _state_of(v: Any) -> Any:
    if isinstance(v, Module):
        out = {}
        for k, c in attributes(v).items():
            s = _state_of(c)
            if s is not None:
                out[k] = s
        return out
    if is_array(v):
        return _host(v)
    if type(v) in (list, tuple):
        items = [_state_of(c) for c in v]
        return items if any(i is not None for i in items) else None
    if type(v) is dict:
        d = {k: s for k, c in v.items() if (s := _state_of(c)) is not None}
        return d or None
    return None


def _flat_state(s: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(s, dict):
        for k, v in s.items():
            _flat_state(v, f"{_dot(prefix)}{k}", out)
    elif isinstance(s, list | tuple) and not _numeric_list(s):
        for i, v in enumerate(s):
            _flat_state(v, f"{prefix}.{i}", out)
    elif s is not None:
        out[prefix] = s


def _numeric_list(s: Any) -> bool:
    return bool(s) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in s)


def _mismatches(slots: dict[str, Slot], given: dict[str, Any]) -> list[str]:
    """One line per entry where ``given`` (name -> array-like) does not fit the model."""
    out = [
        f"missing: {k} (shape {_host_shape(s.get())})"
        for k, s in slots.items()
        if k not in given and _added_later(s) is None
    ]
    out += [f"unexpected: {k}" for k in given if k not in slots]
    for k, s in slots.items():
        if k not in given:
            continue
        old, new = s.get(), given[k]
        shape = tuple(np.shape(new))
        want = tuple(_host_shape(old))
        if shape != want and not (_batched(s) and _same_features(shape, want)):
            out.append(f"{k}: shape {want} in the model vs {shape} given")
        elif _kind_of(old) != np.asarray(new).dtype.kind:
            out.append(f"{k}: dtype {_dtype(old)} in the model vs {np.asarray(new).dtype} given")
    return out


def _added_later(s: Slot) -> Any:
    """The value files written before the slot's attribute existed stand for (a layer lists
    such attributes in ``_added_attrs``: name -> value), or None."""
    return getattr(type(s.owner), "_added_attrs", {}).get(s.path[0])


def _batched(s: Slot) -> bool:
    """Whether the slot holds carried state whose batch axis follows the data (an RNN's)."""
    return s.path[0] in getattr(type(s.owner), "_batch_axis_attrs", ())


def _same_features(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Shapes equal but for a leading batch axis: (8,), (16, 8) and (4, 8) all fit."""
    return len(a) in (1, 2) and len(b) in (1, 2) and a[-1:] == b[-1:]


def _host_shape(a: Any) -> tuple[int, ...]:
    return tuple(jax.random.key_data(a).shape) if _is_key(a) else tuple(a.shape)


def _kind_of(a: Any) -> str:
    return "u" if _is_key(a) else np.dtype(a.dtype).kind


def _dtype(a: Any) -> str:
    return str(a.dtype)


def _assign(slots: dict[str, Slot], given: dict[str, Any]) -> None:
    """Put ``given[name]`` into each slot, cast to the slot's dtype; tied arrays stay tied."""
    done: dict[int, Any] = {}
    for k, s in slots.items():
        old = s.get()
        if id(old) not in done:
            new = np.asarray(given[k] if k in given else _added_later(s))
            if _is_key(old):
                new = jax.random.wrap_key_data(new, impl=jax.random.key_impl(old))
            else:
                new = jnp.asarray(new, dtype=old.dtype)
            done[id(old)] = new
        s.set(done[id(old)])


def _raise(what: str, problems: list[str], fix: str, error: type = ValueError) -> None:
    shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
    raise error(f"{what}:\n  " + "\n  ".join(shown) + f"\n{fix}")


def loadmodel(model: Module, state: dict[str, Any]) -> Module:
    """Copy the arrays of ``state`` (from ``fx.state``) into ``model``, in place: Flux's
    ``loadmodel!``. Every name, shape and dtype kind is checked first; on any mismatch
    nothing is changed and the error lists each differing entry (missing, unexpected,
    shape a vs b). Floating-point values are cast to the model's dtype. Returns ``model``.

    >>> import fluxjax as fx
    >>> a, b = fx.Dense(2, 3), fx.Dense(2, 3)
    >>> _ = fx.loadmodel(b, fx.state(a)); bool((a.weight == b.weight).all())
    True
    >>> fx.loadmodel(fx.Dense(2, 4), fx.state(a))
    Traceback (most recent call last):
    ValueError: loadmodel: the state does not fit Dense(2 => 4):
      weight: shape (4, 2) in the model vs (3, 2) given
      bias: shape (4,) in the model vs (3,) given
    Load a state taken from a model built the same way (same layers and sizes).
    """
    slots = named_arrays(model)
    if not isinstance(state, dict):
        raise TypeError(
            f"loadmodel(model, state): state must be the nested dict from fx.state(model), "
            f"got {_kind(state)}."
        )
    given: dict[str, Any] = {}
    _flat_state(state, "", given)
    problems = _mismatches(slots, given)
    if problems:
        _raise(
            f"loadmodel: the state does not fit {show(model)}",
            problems,
            "Load a state taken from a model built the same way (same layers and sizes).",
        )
    _assign(slots, given)
    return model


# -- files ---------------------------------------------------------------------------------
def _path(path: Any, writing: bool) -> str:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"the path must be a str or os.PathLike, got {_kind(path)}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if writing and not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot save {path}: the folder {folder} does not exist; create it first "
            "(os.makedirs(folder, exist_ok=True))."
        )
    return path


def _json_extra(extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        try:
            json.dumps(v, cls=_files._Enc)
        except (TypeError, ValueError):
            raise TypeError(
                f"save: extra value {k}={_kind(v)} cannot be stored; extras must be JSON "
                "values (numbers, strings, lists, dicts) or NumPy arrays."
            ) from None
    return extra


def save(
    path: str | os.PathLike[str],
    model: Module,
    opt: Any = None,
    *,
    loader: DataLoader | None = None,
    step: int | None = None,
    **extra: Any,
) -> None:
    """Save ``model`` (every array), and optionally the optimiser ``opt`` (a rule holding
    implicit-mode state, or the tree from ``fx.setup``), a ``DataLoader``'s position and
    random state, the global ``step`` and ``extra`` JSON values, to one safetensors file.
    The write is atomic (temporary file, fsync, rename): a crash leaves the old file whole.

    >>> import fluxjax as fx, tempfile, os
    >>> m, opt = fx.Dense(1, 1), fx.Adam()
    >>> fx.save(os.path.join(tempfile.mkdtemp(), "m.safetensors"), m, opt, step=0)
    """
    path = _path(path, True)
    _files.write(path, *snapshot(model, opt, loader=loader, step=step, copy=False, **extra))


def snapshot(
    model: Module,
    opt: Any = None,
    *,
    loader: DataLoader | None = None,
    step: Any = None,
    copy: bool = True,
    **extra: Any,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Everything ``save`` writes: ``(tensors, meta)``, ready for ``_files.write``. With
    ``copy=True`` the tensors are host copies, so the write may run on another thread
    while training donates and replaces the model's arrays; ``copy=False`` gives views
    (on CPU, of the arrays themselves), for a write that ends before training goes on."""
    slots = named_arrays(model)
    if step is not None:
        step = _files_int(step, "step")
    tensors = {f"model/{k}": _view(s.get()) for k, s in slots.items()}
    keys = [k for k, s in slots.items() if _is_key(s.get())]
    meta: dict[str, Any] = {
        "model": {
            "type": show(model),
            "arrays": {k: _host_shape(s.get()) for k, s in slots.items()},
        },
        "prng_keys": keys,
        "step": step,
        "extra": _json_extra(extra),
    }
    if opt is not None:
        if isinstance(opt, OptimiserState):
            state_leaves(opt, model)  # a state from fx.setup on another model: say so now
        meta["opt"] = _opt_io.save_opt(opt, model, slots, tensors)
    if loader is not None:
        meta["loader"] = _loader_meta(loader, tensors)
    if copy:
        tensors = {k: np.array(a) for k, a in tensors.items()}
    return tensors, meta


def _files_int(v: Any, name: str) -> int:
    if not is_count(v, minimum=0):
        raise TypeError(f"save: {name} must be a non-negative int, got {_kind(v)}.")
    return int(v)


def _loader_meta(loader: Any, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader= must be an fx.DataLoader, got {_kind(loader)}.")
    st = loader.state()
    order = st.pop("order")
    if order is not None:
        tensors["loader/order"] = order
    return st


def load(
    path: str | os.PathLike[str],
    model: Module,
    opt: Any = None,
    *,
    loader: DataLoader | None = None,
) -> dict[str, Any]:
    """Load a file written by ``fx.save`` into ``model`` (and ``opt``, ``loader`` when
    given), in place; returns ``{"step": step, **extra}``. Everything is checked before
    anything changes: a truncated, corrupted or foreign file, or one saved from another
    architecture, raises ``fx.CheckpointError`` naming the file and what is wrong.

    >>> import fluxjax as fx, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> fx.save(path, fx.Dense(1, 1), step=3)
    >>> fx.load(path, fx.Dense(1, 2))
    Traceback (most recent call last):
    fluxjax._files.CheckpointError: .../m.safetensors was saved from another model: ...
    """
    path = _path(path, False)
    slots = named_arrays(model)
    meta, tensors = _files.read(path)
    given = {k[6:]: a for k, a in tensors.items() if k.startswith("model/")}
    problems = _mismatches(slots, given)
    if problems:
        _raise(
            f"{path} was saved from another model: {meta['model']['type']}, not {show(model)}",
            problems,
            "Build the model the same way as the saved one before loading.",
            CheckpointError,
        )
    todo = []
    if opt is not None:
        todo.append(_opt_io.load_opt(path, meta.get("opt"), tensors, opt, model, slots))
    if loader is not None:
        todo.append(_loader_load(path, meta, tensors, loader))
    _assign(slots, given)  # everything checked: now change things
    for apply in todo:
        apply()
    return {**meta["extra"], "step": meta["step"]}


def _loader_load(path: str, meta: dict[str, Any], tensors: dict[str, Any], loader: Any) -> Any:
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader= must be an fx.DataLoader, got {_kind(loader)}.")
    st = meta.get("loader")
    if st is None:
        raise CheckpointError(
            f"{path} holds no DataLoader state (it was saved without loader=); load it "
            "without loader=."
        )
    st = {**st, "order": tensors.get("loader/order")}
    try:
        check_loader_state(loader, st)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    return lambda: loader.loadstate(st)
