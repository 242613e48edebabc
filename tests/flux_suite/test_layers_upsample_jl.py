"""Flux v0.12.9's test/layers/upsample.jl and test/layers/stateless.jl, translated.

Flux's ``(W, H, C, N)`` arrays are ``(N, H, W, C)`` here: a Flux scale tuple ``(sW, sH)``
is ``(sH, sW)`` and output sizes read reversed. ``:bilinear`` is ``"bilinear"``. Flux's
``normalise(x)`` defaults to its last (observation) axis, which is axis 0 here.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

X4 = np.random.default_rng(0).random((3, 4, 3, 2)).astype(np.float32)  # Flux's (3, 4, 2, 3)
X5 = np.random.default_rng(1).random((4, 2, 4, 3, 3)).astype(np.float32)  # (3, 4, 2, 3, 4)


@pytest.mark.parametrize(
    "kw,out",
    [({"scale": (3, 2)}, (3, 12, 6, 2)), ({"scale": 3}, (3, 12, 9, 2)),
     ({"size": (6, 4)}, (3, 6, 4, 2))],
)  # fmt: skip
def test_upsample_bilinear(kw, out):
    y = fx.Upsample("bilinear", **kw)(X4)
    assert y.dtype == jnp.float32 and y.shape == out


@pytest.mark.parametrize(
    "kw,out",
    [({"scale": (2, 3, 2)}, (4, 4, 12, 6, 3)), ({"scale": 3}, (4, 6, 12, 9, 3)),
     ({"size": (4, 6, 4)}, (4, 4, 6, 4, 3))],
)  # fmt: skip
def test_upsample_trilinear(kw, out):
    y = fx.Upsample("trilinear", **kw)(X5)
    assert y.dtype == jnp.float32 and y.shape == out


def test_upsample_nearest():
    x = np.random.default_rng(2).random((3, 3, 2)).astype(np.float32)  # Flux's (3, 2, 3)
    y = fx.Upsample("nearest", scale=(2,))(x)
    assert y.dtype == jnp.float32 and y.shape == (3, 6, 2)
    assert fx.Upsample("nearest", scale=(3, 2))(X4).shape == (3, 12, 6, 2)
    # Flux's scale=(2,) on a 2-D image scales W only; here the scale names every axis
    assert fx.Upsample("nearest", scale=(1, 2))(X4).shape == (3, 4, 6, 2)
    y = fx.Upsample("nearest", scale=2)(X4)
    assert y.shape == (3, 8, 6, 2)
    np.testing.assert_allclose(fx.Upsample(2)(X4), y)
    assert fx.Upsample("nearest", size=(8, 6))(X4).shape == (3, 8, 6, 2)


def test_pixel_shuffle():
    x = np.random.default_rng(3).random((3, 18, 3)).astype(np.float32)  # Flux's (3, 18, 3)
    y = fx.PixelShuffle(2)(np.swapaxes(x, 1, 2))  # (N, W, C) = (3, 3, 18)
    assert y.dtype == jnp.float32 and y.shape == (3, 6, 9)
    y = fx.PixelShuffle(3)(np.random.default_rng(4).random((3, 4, 3, 18)).astype(np.float32))
    assert y.shape == (3, 12, 9, 2)


def test_helpers_flatten_and_normalise():
    x = np.random.default_rng(5).standard_normal((2, 10, 10, 3)).astype(np.float32)
    assert fx.flatten(x).shape == (2, 300)
    x = np.random.default_rng(6).standard_normal((2, 2, 3)).astype(np.float32)
    assert np.array_equal(fx.normalise(x), fx.normalise(x, axis=0))
