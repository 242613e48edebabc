"""Upsampling on channels-last data: ``Upsample`` (nearest, linear, bilinear, trilinear)
and ``PixelShuffle``, with NNlib's functions ``upsample_nearest``, ``upsample_linear`` and
``pixel_shuffle``. Inputs are ``(n, spatial..., C)``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ..module import Module
from ._common import check_size, shape_error

__all__ = ["Upsample", "PixelShuffle", "upsample_nearest", "upsample_linear", "pixel_shuffle"]

_MODES = {"nearest": None, "linear": 1, "bilinear": 2, "trilinear": 3}


def _spatial(x: Any, what: str, n: int | None = None) -> Any:
    x = jnp.asarray(x)
    if x.ndim < 3 or (n is not None and x.ndim != n + 2):
        want = "(n, spatial..., C)" if n is None else f"{n + 2} axes (n, spatial..., C)"
        raise shape_error(what, want, x)
    return x


def upsample_nearest(x: Any, scale: Any = None, *, size: Any = None) -> Any:
    """Repeat each pixel ``scale`` times along each spatial axis (``scale`` an int or a tuple
    per axis), or up to ``size`` (a multiple of the input size).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.upsample_nearest(jnp.array([[[1.0], [2.0]]]), 2)[0, :, 0]
    Array([1., 1., 2., 2.], dtype=float32)
    """
    x = _spatial(x, "upsample_nearest")
    d = x.ndim - 2
    if size is not None:
        size = tuple(size)
        if len(size) != d or any(s % i for s, i in zip(size, x.shape[1:-1])):
            raise ValueError(
                f"upsample_nearest: size {size} must give one multiple of each spatial size "
                f"of the input {tuple(x.shape)}."
            )
        scale = tuple(s // i for s, i in zip(size, x.shape[1:-1]))
    scale = (scale,) * d if isinstance(scale, int | np.integer) else tuple(scale)
    for axis, s in enumerate(scale, start=1):
        x = jnp.repeat(x, check_size(s, "each scale (an int)", "upsample_nearest"), axis=axis)
    return x


def _lerp_axis(x: Any, axis: int, out: int) -> Any:
    n = x.shape[axis]
    src = np.arange(out) * ((n - 1) / (out - 1)) if out > 1 else np.zeros(1)
    lo = np.minimum(np.floor(src).astype(np.int32), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = out
    w = jnp.asarray((src - lo).reshape(shape), x.dtype)
    return jnp.take(x, lo, axis=axis) * (1 - w) + jnp.take(x, hi, axis=axis) * w


def upsample_linear(x: Any, scale: Any = None, *, size: Any = None) -> Any:
    """(Bi-, tri-)linear interpolation along each spatial axis with aligned corners (NNlib's
    ``upsample_linear``, PyTorch's ``interpolate(..., align_corners=True)``): output
    ``size``, or ``⌊in·scale⌋``; output ``i`` reads input position ``i·(in − 1)/(out − 1)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.upsample_linear(jnp.array([[[0.0], [3.0]]]), size=(4,))[0, :, 0]
    Array([0., 1., 2., 3.], dtype=float32)
    """
    x = _spatial(x, "upsample_linear")
    d = x.ndim - 2
    if (scale is None) == (size is None):
        raise ValueError("upsample_linear: give scale or size (not both).")
    if size is None:
        scale = (scale,) * d if isinstance(scale, int | float | np.number) else tuple(scale)
        size = tuple(int(np.floor(s * i)) for s, i in zip(scale, x.shape[1:-1]))
    size = tuple(check_size(s, "each output size", "upsample_linear") for s in size)
    if len(size) != d:
        raise ValueError(f"upsample_linear: size {size} must have {d} entries for {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    for axis, s in enumerate(size, start=1):
        x = _lerp_axis(x, axis, s)
    return x


def pixel_shuffle(x: Any, r: int) -> Any:
    """NNlib's ``pixel_shuffle``: ``(n, s₁, …, s_d, C·rᵈ) → (n, s₁·r, …, s_d·r, C)``, with
    ``y[n, i₁r + a₁, …, c] = x[n, i₁, …, c·rᵈ + a₁·rᵈ⁻¹ + … + a_d]`` (PyTorch's order).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.pixel_shuffle(jnp.arange(4.0).reshape(1, 1, 1, 4), 2)[0, :, :, 0]
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
    """
    x = _spatial(x, "pixel_shuffle")
    r = check_size(r, "r", "pixel_shuffle")
    d = x.ndim - 2
    n, sizes, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    if c % r**d:
        raise ValueError(
            f"pixel_shuffle: the channels ({c}) must be divisible by r^d = {r**d} (d = {d} "
            f"spatial axes), got input shape {tuple(x.shape)}."
        )
    cout = c // r**d
    x = jnp.reshape(x, (n, *sizes, cout, *(r,) * d))
    perm = [0]
    for i in range(d):
        perm += [1 + i, 2 + d + i]
    x = jnp.transpose(x, (*perm, 1 + d))
    return jnp.reshape(x, (n, *(s * r for s in sizes), cout))


class Upsample(Module):
    """Flux's ``Upsample(mode="nearest"; scale, size)``: ``"nearest"`` is
    ``upsample_nearest``; ``"linear"``, ``"bilinear"``, ``"trilinear"`` are
    ``upsample_linear`` on 1, 2 or 3 spatial axes. Give ``scale`` (a number or one per
    spatial axis) or ``size`` (the spatial output size), not both. ``Upsample(2)`` is
    ``Upsample(scale=2)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Upsample(scale=(2, 3))
    >>> m
    Upsample('nearest', scale=(2, 3))
    >>> m(jnp.ones((1, 2, 2, 1))).shape
    (1, 4, 6, 1)
    >>> fx.Upsample("bilinear", size=(4, 5))(jnp.ones((1, 2, 2, 1))).shape
    (1, 4, 5, 1)
    """

    def __init__(self, mode: Any = "nearest", *, scale: Any = None, size: Any = None) -> None:
        if not isinstance(mode, str):  # Upsample(scale, mode)
            mode, scale = "nearest", mode
        if mode not in _MODES:
            raise ValueError(f"Upsample: mode={mode!r} is not supported; use one of {_MODES}.")
        if (scale is None) == (size is None):
            raise ValueError("Upsample: give either scale or size (but not both).")
        self.mode = mode
        self.scale = tuple(scale) if isinstance(scale, list) else scale
        self.size = None if size is None else tuple(size)

    def __call__(self, x: Any) -> Any:
        x = _spatial(x, self._show(), _MODES[self.mode])
        if self.mode == "nearest":
            return upsample_nearest(x, self.scale, size=self.size)
        return upsample_linear(x, self.scale, size=self.size)

    def _show(self) -> str:
        what = f"scale={self.scale}" if self.size is None else f"size={self.size}"
        return f"Upsample({self.mode!r}, {what})"


class PixelShuffle(Module):
    """Flux's ``PixelShuffle(r)``: the layer of ``pixel_shuffle(x, r)`` (sub-pixel
    convolution's upscaling, channels ``C·rᵈ`` to ``C``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.PixelShuffle(2)(jnp.ones((3, 4, 5, 8))).shape
    (3, 8, 10, 2)
    """

    def __init__(self, r: int) -> None:
        self.r = check_size(r, "r", "PixelShuffle")

    def __call__(self, x: Any) -> Any:
        return pixel_shuffle(x, self.r)

    def _show(self) -> str:
        return f"PixelShuffle({self.r})"
