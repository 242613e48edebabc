"""Pooling on channels-last data: ``MaxPool``, ``MeanPool``, ``LPNormPool``,
``GlobalMaxPool``, ``GlobalMeanPool``, ``AdaptiveMaxPool``, ``AdaptiveMeanPool``, and
NNlib's ``lpnormpool``.

When the window tiles the input (stride == window, no padding) pooling is lowered to a
reshape and a reduction, which XLA runs (and differentiates) far faster than
``reduce_window``; the max's gradient then goes to the first maximum of each window, as
``reduce_window``'s does, so both lowerings give the same numbers.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..module import Module
from ._common import ntuple, shape_error
from .conv import padding

__all__ = [
    "MaxPool",
    "MeanPool",
    "LPNormPool",
    "lpnormpool",
    "GlobalMaxPool",
    "GlobalMeanPool",
    "AdaptiveMaxPool",
    "AdaptiveMeanPool",
]

FAST = [True]  # tests switch the reshape lowering off to compare


def _windows(x: Any, k: tuple[int, ...]) -> Any:
    """``(n, s₁, …, C)`` cropped to whole windows → ``(n, o₁, k₁, o₂, k₂, …, C)``."""
    n = len(k)
    out = [s // kk for s, kk in zip(x.shape[1:-1], k)]
    x = x[(slice(None), *(slice(0, o * kk) for o, kk in zip(out, k)))]
    shape = [x.shape[0]]
    for o, kk in zip(out, k):
        shape += [o, kk]
    return jnp.reshape(x, (*shape, x.shape[-1])), tuple(2 + 2 * i for i in range(n))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max(xw: Any, axes: tuple[int, ...]) -> Any:
    return jnp.max(xw, axis=axes)


def _tiled_max_fwd(xw: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    y = jnp.max(xw, axis=axes)
    return y, (xw, y)


def _tiled_max_bwd(axes: tuple[int, ...], res: Any, g: Any) -> tuple[Any]:
    xw, y = res
    # the position of each element within its window, row-major; the first maximum wins
    pos = jnp.zeros((), jnp.int32)
    for a in axes:
        shape = [1] * xw.ndim
        shape[a] = xw.shape[a]
        pos = pos * xw.shape[a] + jnp.arange(xw.shape[a], dtype=jnp.int32).reshape(shape)
    yb = jnp.expand_dims(y, axes)
    big = jnp.iinfo(jnp.int32).max
    first = jnp.min(jnp.where(xw == yb, pos, big), axis=axes, keepdims=True)
    return (jnp.where(pos == first, jnp.expand_dims(g, axes), 0).astype(g.dtype),)


_tiled_max.defvjp(_tiled_max_fwd, _tiled_max_bwd)


def max_pool(x: Any, k: tuple, stride: tuple, pad: tuple) -> Any:
    """Max over windows; padding never wins (it is −∞)."""
    if FAST[0] and stride == k and all(p == (0, 0) for p in pad):
        xw, axes = _windows(x, k)
        return _tiled_max(xw, axes)
    # a concrete (NumPy) init value lets JAX pick its differentiable max/add windows
    init = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else np.iinfo(x.dtype).min
    return jax.lax.reduce_window(
        x, np.array(init, x.dtype), jax.lax.max, (1, *k, 1), (1, *stride, 1),
        ((0, 0), *pad, (0, 0)),
    )  # fmt: skip


def mean_pool(x: Any, k: tuple, stride: tuple, pad: tuple) -> Any:
    """Mean over windows, dividing by the full window size (padding counts as zeros)."""
    if FAST[0] and stride == k and all(p == (0, 0) for p in pad):
        xw, axes = _windows(x, k)
        return jnp.mean(xw, axis=axes)
    s = jax.lax.reduce_window(
        x, np.array(0, x.dtype), jax.lax.add, (1, *k, 1), (1, *stride, 1),
        ((0, 0), *pad, (0, 0)),
    )  # fmt: skip
    return s / np.prod(k)


def sum_pool(x: Any, k: tuple, stride: tuple, pad: tuple) -> Any:
    """The sum over windows (padding counts as zeros)."""
    if FAST[0] and stride == k and all(p == (0, 0) for p in pad):
        xw, axes = _windows(x, k)
        return jnp.sum(xw, axis=axes)
    return jax.lax.reduce_window(
        x, np.array(0, x.dtype), jax.lax.add, (1, *k, 1), (1, *stride, 1),
        ((0, 0), *pad, (0, 0)),
    )  # fmt: skip


def _power(p: Any, what: str) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float | np.number) or not 0 < p < np.inf:
        raise ValueError(f"{what}: the norm's p must satisfy 0 < p < inf, got {p!r}.")
    return float(p)


def lpnormpool(x: Any, p: float, k: Any, *, pad: Any = 0, stride: Any = None) -> Any:
    """NNlib's ``lpnormpool``: ``y = (Σᵢ xᵢᵖ)^(1/p)`` over each window (PyTorch's
    ``lp_pool``), ``0 < p < ∞``; ``k``, ``pad`` and ``stride`` as ``MaxPool``'s. So
    ``lpnormpool(x, 1, k)/prod(k)`` is ``MeanPool(k)(x)``. For non-integer ``p`` the inputs
    must be non-negative.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.lpnormpool(jnp.array([[[3.0], [4.0]]]), 2, (2,))
    Array([[[5.]]], dtype=float32)
    """
    p = _power(p, "lpnormpool")
    layer = LPNormPool(k, p, pad=pad, stride=stride)
    return layer(x)


def _check(layer: Module, x: Any, n: int) -> Any:
    x = jnp.asarray(x)
    if x.ndim != n + 2:
        raise shape_error(
            layer._show(),
            "(n, " + ", ".join("DHW"[3 - n :] if n > 1 else "L") + ", C)",
            x,
            "Data are channels-last with observations first (Flux's WHCN reversed).",
        )
    return x


class _Pool(Module):
    _reduce = staticmethod(max_pool)

    def __init__(self, k: Any, *, pad: Any = 0, stride: Any = None) -> None:
        name = type(self).__name__
        if not isinstance(k, tuple | list) or not 1 <= len(k) <= 3:
            raise ValueError(f"{name}(k): k must be a tuple of 1 to 3 window sizes, got {k!r}.")
        self.k = ntuple(tuple(k), len(k), "the window k", name)
        self.stride = self.k if stride is None else ntuple(stride, len(k), "stride", name)
        self.pad = padding(pad, self.k, (1,) * len(k), name)

    def __call__(self, x: Any) -> Any:
        return self._pool(x, type(self)._reduce)

    def _pool(self, x: Any, reduce: Any) -> Any:
        x = _check(self, x, len(self.k))
        size = [
            (s + lo + hi - kk) // st + 1
            for s, (lo, hi), kk, st in zip(x.shape[1:-1], self.pad, self.k, self.stride)
        ]
        if min(size) < 1:
            raise ValueError(
                f"layer {self._show()}: the window is larger than the (padded) input of "
                f"shape {tuple(x.shape)}."
            )
        return reduce(x, self.k, self.stride, self.pad)

    def _show(self) -> str:
        text = f"{type(self).__name__}({self.k}"
        if any(p != (0, 0) for p in self.pad):
            text += f", pad={tuple(v for p in self.pad for v in p)}"
        if self.stride != self.k:
            text += f", stride={self.stride}"
        return text + ")"


class MaxPool(_Pool):
    """Max pooling: the maximum of each window. ``MaxPool(k; pad=0, stride=k)``, ``k`` a
    tuple of 1 to 3 sizes; input ``(n, spatial..., C)``, output size per axis
    ``⌊(in + lo + hi − k)/stride⌋ + 1``. Padding never wins the max.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> fx.MaxPool((2, 2))(x)[0, :, :, 0]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    _reduce = staticmethod(max_pool)


class MeanPool(_Pool):
    """Mean pooling: the mean of each window, dividing by the window size (zero padding
    counts, as in Flux). ``MeanPool(k; pad=0, stride=k)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> fx.MeanPool((2, 2))(x)[0, :, :, 0]
    Array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    _reduce = staticmethod(mean_pool)


class LPNormPool(_Pool):
    """Lp-norm pooling, the layer of NNlib's ``lpnormpool`` (PyTorch's ``LPPool``):
    ``y = (Σᵢ xᵢᵖ)^(1/p)`` over each window. ``LPNormPool(k, p; pad=0, stride=k)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.LPNormPool((2, 2), 2)
    >>> m
    LPNormPool((2, 2), p=2.0)
    >>> m(jnp.full((1, 2, 2, 1), 3.0))[0, 0, 0, 0]
    Array(6., dtype=float32)
    """

    def __init__(self, k: Any, p: float, *, pad: Any = 0, stride: Any = None) -> None:
        super().__init__(k, pad=pad, stride=stride)
        self.p = _power(p, "LPNormPool")

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        p = self.p
        xp = x * x if p == 2 else x**p
        s = self._pool(xp, sum_pool)
        return jnp.sqrt(s) if p == 2 else s ** (1 / p)

    def _show(self) -> str:
        return super()._show()[:-1] + f", p={self.p})"


class _Global(Module):
    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        if x.ndim < 3:
            raise shape_error(self._show(), "(n, spatial..., C)", x)
        axes = tuple(range(1, x.ndim - 1))
        return self._f(x, axis=axes, keepdims=True)

    def _show(self) -> str:
        return f"{type(self).__name__}()"


class GlobalMaxPool(_Global):
    """The maximum over all spatial axes: ``(n, spatial..., C) → (n, 1, …, 1, C)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.GlobalMaxPool()(jnp.arange(8.0).reshape(1, 2, 2, 2))
    Array([[[[6., 7.]]]], dtype=float32)
    """

    _f = staticmethod(jnp.max)


class GlobalMeanPool(_Global):
    """The mean over all spatial axes: ``(n, spatial..., C) → (n, 1, …, 1, C)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.GlobalMeanPool()(jnp.arange(8.0).reshape(1, 2, 2, 2))
    Array([[[[3., 4.]]]], dtype=float32)
    """

    _f = staticmethod(jnp.mean)


class _Adaptive(Module):
    _reduce = staticmethod(max_pool)

    def __init__(self, out: Any) -> None:
        name = type(self).__name__
        if not isinstance(out, tuple | list) or not 1 <= len(out) <= 3:
            raise ValueError(f"{name}(out): out must be a tuple of 1 to 3 sizes, got {out!r}.")
        self.out = ntuple(tuple(out), len(out), "the output size", name)

    def __call__(self, x: Any) -> Any:
        x = _check(self, x, len(self.out))
        sizes = x.shape[1:-1]
        if any(s < o for s, o in zip(sizes, self.out)):
            raise shape_error(self._show(), f"spatial sizes of at least {self.out}", x)
        stride = tuple(s // o for s, o in zip(sizes, self.out))
        k = tuple(s - (o - 1) * st for s, o, st in zip(sizes, self.out, stride))
        return type(self)._reduce(x, k, stride, ((0, 0),) * len(k))

    def _show(self) -> str:
        return f"{type(self).__name__}({self.out})"


class AdaptiveMaxPool(_Adaptive):
    """Max pooling to a fixed output size: stride ``in ÷ out``, window
    ``in − (out − 1)·stride`` per axis (Flux's rule).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.AdaptiveMaxPool((2, 2))(jnp.zeros((3, 9, 9, 4))).shape
    (3, 2, 2, 4)
    """

    _reduce = staticmethod(max_pool)


class AdaptiveMeanPool(_Adaptive):
    """Mean pooling to a fixed output size (windows as in ``AdaptiveMaxPool``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.AdaptiveMeanPool((1,))(jnp.arange(4.0).reshape(1, 4, 1))
    Array([[[1.5]]], dtype=float32)
    """

    _reduce = staticmethod(mean_pool)
