"""What the layers beyond Dense share: train/test modes, state written by a forward pass,
``fx.reset``, and the checks and conversions of their arguments and inputs."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .. import mode
from ..counts import count, is_count, is_int
from ..layerstate import assign_state  # noqa: F401
from ..module import modules

__all__ = ["trainmode", "testmode", "reset"]


# -- modes ---------------------------------------------------------------------------------
def is_active(layer: Any) -> bool:
    """A layer with an ``active`` override (True/False) obeys it; ``None`` is automatic:
    active inside the differentiation calls and ``fx.train`` (``mode.istraining()``)."""
    a = layer.active
    return mode.istraining() if a is None else bool(a)


def _set_modes(m: Any, value: bool | None) -> Any:
    for layer in modules(m):
        if "active" in layer.__dict__:
            layer.active = value
    return m


def _mode_value(fname: str, flag: Any, invert: bool) -> bool | None:
    if flag is None or flag == "auto":
        return None
    if not isinstance(flag, bool):
        raise TypeError(
            f"{fname}(m, mode): mode must be True, False, None or 'auto', got {flag!r}."
        )
    return (not flag) if invert else flag


def trainmode(m: Any, mode: bool | None | str = True) -> Any:
    """Flux's ``trainmode!``: make Dropout, BatchNorm and the other mode-dependent layers in
    ``m`` always active (``mode=True``), always inactive (``False``) or automatic
    (``None``/``"auto"``: active only inside ``gradient``/``train``). Returns ``m``.

    >>> import fluxjax as fx
    >>> d = fx.trainmode(fx.Dropout(0.5))
    >>> d.active
    True
    """
    return _set_modes(m, _mode_value("trainmode", mode, invert=False))


def testmode(m: Any, mode: bool | None | str = True) -> Any:
    """Flux's ``testmode!``: ``testmode(m)`` makes the mode-dependent layers inactive (no
    dropout, BatchNorm uses its running statistics); ``testmode(m, False)`` is
    ``trainmode(m)``; ``testmode(m, None)`` goes back to automatic. Returns ``m``.

    >>> import fluxjax as fx
    >>> m = fx.Chain(fx.Dense(2, 2), fx.Dropout(0.5))
    >>> fx.testmode(m)[1].active, fx.testmode(m, None)[1].active
    (False, None)
    """
    return _set_modes(m, _mode_value("testmode", mode, invert=True))


def reset(m: Any, n: int | None = None) -> Any:
    """Flux's ``reset!``: set the state of every stateful recurrent layer in ``m`` back to
    its initial state ``state0``, keeping the batch size the state has (so a compiled
    step's shapes stay put), or for ``n`` observations when given. Returns ``m``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> r = fx.RNN(2, 3)
    >>> _ = r(jnp.ones((4, 2)))
    >>> fx.reset(r).state.shape, fx.reset(r, 2).state
    ((4, 3), Array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32))
    """
    if n is not None:
        check_size(n, "n", "reset")
    for layer in modules(m):
        f = getattr(type(layer), "_reset", None)
        if f is not None:
            f(layer, n)
    return m


# -- arguments -----------------------------------------------------------------------------
def ntuple(value: Any, n: int, what: str, layer: str) -> tuple[int, ...]:
    """An int or an n-tuple of positive ints, as an n-tuple."""
    if is_int(value):
        value = (int(value),) * n
    value = tuple(value) if isinstance(value, list | tuple) else value
    if not isinstance(value, tuple) or len(value) != n or not all(is_count(v) for v in value):
        raise ValueError(
            f"{layer}: {what} must be a positive int or a tuple of {n} positive ints, "
            f"got {value!r}."
        )
    return tuple(int(v) for v in value)


def check_size(value: Any, what: str, layer: str) -> int:
    return count(value, f"{layer}: {what} must be a positive int, got {value!r}.")


def float_input(x: Any, dtype: Any) -> Any:
    """``x`` as an array of the layer's floating dtype (integers and other floats converted)."""
    x = jnp.asarray(x)
    return x if x.dtype == dtype else x.astype(dtype)


def shape_error(layer: str, expected: str, x: Any, hint: str = "") -> ValueError:
    """The error for an input of the wrong shape, naming the layer and both shapes."""
    text = f"layer {layer} expects input of shape {expected}, but got shape {tuple(x.shape)}."
    return ValueError(text + (" " + hint if hint else ""))


def call_init(init: Any, dims: tuple[int, ...], layer: str) -> Any:
    """``init(*dims)`` (Flux's initialiser convention: the sizes as separate arguments), with
    clear errors for a NumPy-style function (``jnp.zeros`` takes one shape tuple) and for an
    array that is not floating point.

    >>> import jax.numpy as jnp
    >>> call_init(jnp.zeros, (3, 2), "Dense(2, 3)")
    Traceback (most recent call last):
    TypeError: Dense(2, 3): init=zeros failed when called as init(3, 2) ...
    """
    try:
        w = init(*dims)
    except TypeError as e:
        name = getattr(init, "__name__", repr(init))
        raise TypeError(
            f"{layer}: init={name} failed when called as init{dims} ({e}). fluxjax calls an "
            "initialiser with the sizes as separate arguments (Flux's convention), as "
            "fx.glorot_uniform(3, 2); NumPy-style functions take one shape tuple: use "
            "fx.zeros32 / fx.ones32, or init=lambda *s: jnp.zeros(s)."
        ) from None
    dtype = getattr(w, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"{layer}: init returned an array of dtype {dtype}; weights must be floating "
            "point (an integer weight has no gradient). Return float32, e.g. "
            "np.zeros(shape, np.float32)."
        )
    return w
