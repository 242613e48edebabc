"""What every loss shares: the ``agg`` check, the shape check of ``yhat`` against ``y``, the
refusal of other libraries' keywords (``friendly``), the default ``eps``, and ``xlogy`` /
``xlogx`` with gradients that stay finite where ``x == 0``."""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from ..activations import as_float

__all__ = ["Agg", "check_agg", "friendly", "prepare", "abs2", "default_eps", "xlogy", "xlogx"]


Agg = Callable[[Array], Array]


def check_agg(agg: Agg) -> Agg:
    if not callable(agg):
        raise TypeError(
            f"agg must be a function applied to the per-sample losses, got {agg!r}; pass "
            "e.g. agg=sum or agg=jnp.mean (PyTorch's reduction='sum' is agg=sum)."
        )
    return jnp.sum if agg is sum else agg  # the builtin would sum over the first axis only


FOREIGN = {
    "reduction": "fluxjax losses reduce with agg= (Flux's name): reduction='sum' is agg=sum, "
    "'mean' agg=jnp.mean (the default), 'none' agg=fx.identity",
    "dims": "the class axis is axis= here, and the last one by default (Flux's dims=1 is "
    "axis=-1, because observations go along the first axis)",
    "size_average": "use agg=jnp.mean or agg=sum",
}


def friendly(f: Callable[..., Array]) -> Callable[..., Array]:
    """Turn another library's keyword (PyTorch's ``reduction``, Flux's ``dims``) into an
    error naming fluxjax's own, instead of Python's bare "unexpected keyword argument"."""

    @functools.wraps(f)
    def loss(*args: Any, **kwargs: Any) -> Array:
        for k in kwargs:
            if k in FOREIGN and k not in param_names(f):
                raise TypeError(f"{f.__name__}() takes no {k}=: {FOREIGN[k]}.")
        return f(*args, **kwargs)

    return loss


@functools.cache
def param_names(f: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(f).parameters)


def prepare(name: str, yhat: ArrayLike, y: ArrayLike) -> tuple[Array, Array]:
    """``yhat`` as a float array, ``y`` as an array; refuse arrays of different shapes."""
    yhat = as_float(yhat)
    if not isinstance(y, numbers.Number) and jnp.shape(y) != yhat.shape:
        raise ValueError(
            f"{name} expects yhat and y of the same shape, got yhat.shape = {yhat.shape} and "
            f"y.shape = {jnp.shape(y)}; reshape one of them (broadcasting is refused because "
            "it silently gives a wrong loss)" + indices_hint(yhat, y)
        )
    if jnp.iscomplexobj(y) and not jnp.iscomplexobj(yhat):  # never drop an imaginary part
        yhat = yhat.astype(jnp.result_type(yhat, y))
    return yhat, jnp.asarray(y, yhat.dtype)


def abs2(x: Array) -> Array:
    """``|x|²``, real also for complex ``x`` (Julia's ``abs2``)."""
    return jnp.real(x * jnp.conj(x)) if jnp.iscomplexobj(x) else x * x


def indices_hint(yhat: Array, y: Any) -> str:
    """A hint when ``y`` looks like class indices (PyTorch's CrossEntropyLoss habit)."""
    if jnp.ndim(y) == yhat.ndim - 1 and jnp.issubdtype(jnp.result_type(y), jnp.integer):
        k = yhat.shape[-1]
        return f". y looks like class indices: one-hot them, fx.onehotbatch(y, range({k}))"
    return ""


def default_eps(eps: float | None, yhat: Array) -> float:
    return jnp.finfo(yhat.dtype).eps if eps is None else eps


@jax.custom_jvp
def _xlogy(x: Array, y: Array) -> Array:
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.log(jnp.where(zero, 1, y)))


@_xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    zero = x == 0
    log_y = jnp.log(jnp.where(zero & (y <= 0), 1, y))
    return _xlogy(x, y), dx * log_y + dy * jnp.where(zero, 0, x / jnp.where(zero, 1, y))


def xlogy(x: ArrayLike, y: ArrayLike) -> Array:
    """``x·log(y)``, but 0 where ``x == 0`` (even where ``y`` is 0).

    Gradients: ``∂x = log(y)`` (as Flux; 0 where ``x == y == 0``), ``∂y = x / y`` (0 where
    ``x == 0``), so no NaN leaks from the masked entries.

    >>> xlogy(jnp.array([0.0, 2.0]), jnp.array([0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    dt = jnp.result_type(x, y)
    dt = dt if jnp.issubdtype(dt, jnp.inexact) else jnp.float32
    return _xlogy(x.astype(dt), y.astype(dt))


def xlogx(x: ArrayLike) -> Array:
    """``x·log(x)``, but 0 where ``x == 0`` (with gradient 0 there instead of NaN).

    >>> xlogx(jnp.array([0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    x = as_float(x)
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.log(jnp.where(zero, 1, x)))
