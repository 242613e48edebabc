"""Whole-model maps: ``fmap`` (a copy with a function applied to every array), dtype
conversion (``f32``, ``f64``) and device placement (``gpu``, ``cpu``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .tree import mark_live, modules

__all__ = ["fmap", "f32", "f64", "gpu", "cpu", "enable_x64"]


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
        mark_live(mod)
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
