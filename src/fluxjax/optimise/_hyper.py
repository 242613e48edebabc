"""Helpers shared by the rule modules: hyperparameters in the parameter's dtype, validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .base import Rule, check, is_schedule

Hyper = float | Callable[[Any], Any]
"""A hyperparameter: a number, or a schedule (a function of the update count ``t``)."""


# -- helpers: hyperparameters in the parameter's dtype, validation ---------------------


def cast(v: Any, x: Any) -> jax.Array:
    """Hyperparameter ``v`` as a 0-d array of ``x``'s dtype (Optimisers.jl's ``T(v)``)."""
    return jnp.asarray(v, x.dtype)


def cast_eps(v: Any, x: Any) -> jax.Array:
    """Epsilon in ``x``'s dtype; for float16 a nonzero ϵ is floored at 1e-7 (as Optimisers.jl)."""
    if x.dtype == jnp.dtype("float16"):
        v = jnp.asarray(v)  # compare with 0 before float16 rounds 1e-8 to 0
        v = jnp.where(v == 0, v, jnp.maximum(v, 1e-7))
    return cast(v, x)


def abs2(g: Any) -> jax.Array:
    """``|g|²`` (Julia's ``abs2``): ``g·conj(g)``, real also for complex ``g`` (Flux#1776)."""
    return jnp.real(g * jnp.conj(g)).astype(g.dtype) if jnp.iscomplexobj(g) else g * g


def cast_pair(v: Any, x: Any) -> tuple[jax.Array, jax.Array]:
    return cast(v[0], x), cast(v[1], x)


def at_start(v: Any) -> Any:
    """A hyperparameter's value for ``init``: a schedule is evaluated at ``t = 1``."""
    return v(1) if is_schedule(v) else v


def check_pair(rule: Rule, name: str, value: Any, **bounds: Any) -> tuple[float, float]:
    """Validate a pair of numbers such as ``beta=(0.9, 0.999)``, each within ``bounds``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"{type(rule).__name__}: {name} must be a pair of numbers, got {value!r}.")
    return check_static(rule, name, value[0], **bounds), check_static(
        rule, name, value[1], **bounds
    )


def check_beta(rule: Rule, value: Any, hi_open: bool = True) -> tuple[float, float]:
    """Validate a pair of decay rates, each in [0, 1) (or [0, 1] when not ``hi_open``)."""
    return check_pair(rule, "beta", value, lo=0, hi=1, hi_open=hi_open)


def check_static(rule: Rule, name: str, value: Any, **bounds: Any) -> Any:
    """Validate a hyperparameter that cannot be a schedule: it fixes the state's layout, or
    it sits in a tuple, where ``Rule.resolve`` does not look."""
    if is_schedule(value):
        raise TypeError(f"{type(rule).__name__}: {name} cannot be a schedule; pass a number.")
    return check(rule, name, value, **bounds)


def check_flag(rule: Rule, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{type(rule).__name__}: {name} must be True or False, got {value!r}.")
    return value


def host_zeros(x: Any) -> jax.Array:
    """Zeros shaped like ``x`` for a rule's ``init``: built in host memory and put beside
    ``x`` when ``x`` is concrete, so setting up a rule's state compiles no XLA program."""
    return host_full(x, 0)


def host_full(x: Any, v: Any) -> jax.Array:
    """``jnp.full_like(x, v)`` for a rule's ``init``, compiling nothing when ``x`` is
    concrete (see ``host_zeros``)."""
    if isinstance(x, jax.core.Tracer):
        return jnp.full_like(x, v)
    host = np.full(np.shape(x), v, jnp.result_type(x))
    return jax.device_put(host, x.sharding if isinstance(x, jax.Array) else None)


def counter(v: int) -> jax.Array:
    """A 0-d int32 array (a counter in a rule's state), compiling nothing."""
    return jax.device_put(np.asarray(v, np.int32))


def host_pair(v: Any, x: Any) -> tuple[jax.Array, jax.Array]:
    """``cast_pair`` for a rule's ``init``: the two values in ``x``'s dtype, compiling nothing."""
    dt = jnp.result_type(x)
    return jax.device_put(np.asarray(v[0], dt)), jax.device_put(np.asarray(v[1], dt))
