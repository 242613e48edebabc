"""Flux v0.12.9's test/layers/normalisation.jl, translated in part: Dropout, AlphaDropout,
BatchNorm's worked example, and InstanceNorm (with and without ``track_stats``).

``evalwgrad(f, x) = pullback(f, x)[1]`` is ``fx.pullback(f, x)[0]``: the layer runs as
inside a gradient (active in automatic mode) and its state is written back. Flux's
``(features, batch)`` is ``(batch, features)`` here, ``(W, C, N)`` is ``(N, W, C)``; ``μ``,
``σ²`` are ``mu``, ``sigma2``. Left out for now: BatchNorm's and InstanceNorm's
permutation checks on higher-rank inputs, GroupNorm's and LayerNorm's testsets, and the
second-derivative and ``cpu``/``gpu`` cases (time ran out in the layers round; the same
formulas are checked against NumPy in tests/test_layers_reference.py).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


def evalwgrad(f, x):
    return fx.pullback(f, x)[0]


def test_dropout():
    x = np.array([1.0, 2.0, 3.0], np.float32)
    assert np.array_equal(fx.Dropout(0.1)(x), x)
    assert np.array_equal(evalwgrad(fx.Dropout(0), x), x)
    assert np.array_equal(evalwgrad(fx.Dropout(1), x), np.zeros(3))
    x = np.random.default_rng(0).random(100).astype(np.float32)
    m = fx.Dropout(0.9)
    assert int(jnp.sum(evalwgrad(m, x) == 0)) > 50
    fx.testmode(m, True)
    assert int(jnp.sum(evalwgrad(m, x) == 0)) == 0  # overrides istraining
    fx.testmode(m, False)
    assert int(jnp.sum(evalwgrad(m, x) == 0)) > 50
    m = fx.Chain(fx.Dense(100, 100), fx.Dropout(0.9))
    assert int(jnp.sum(evalwgrad(m, x) == 0)) > 50
    fx.testmode(m, True)
    assert int(jnp.sum(evalwgrad(m, x) == 0)) == 0
    x = np.random.default_rng(1).random((50, 100)).astype(np.float32)  # Flux's (100, 50)
    for dims in (0, 1):  # Flux's dims=2 (the batch) is our axis 0
        y = np.asarray(fx.trainmode(fx.Dropout(0.5, dims=dims))(x))
        c = (y == 0).sum(axis=dims)  # zeros along the mask's axis: equal everywhere
        assert c.min() == c.max()
    m = fx.Dropout(0.9)  # issue #1084
    x = np.random.default_rng(2).random(100).astype(np.float32)
    fx.testmode(m)
    assert int(jnp.sum(m(x) == 0)) == 0
    fx.trainmode(m)
    assert int(jnp.sum(m(x) == 0)) > 50
    assert int(jnp.sum(fx.dropout(x, 0.9, active=True) == 0)) > 50
    assert int(jnp.sum(fx.dropout(x, 0.9, active=False) == 0)) == 0


def test_alpha_dropout():
    x = np.array([1.0, 2.0, 3.0], np.float32)
    assert np.array_equal(fx.AlphaDropout(0.1)(x), x)
    assert np.array_equal(evalwgrad(fx.AlphaDropout(0), x), x)
    assert np.array_equal(evalwgrad(fx.AlphaDropout(1), x), np.zeros(3))
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    m = fx.AlphaDropout(0.5)
    y = np.asarray(evalwgrad(m, x))
    assert abs(y.mean()) < 0.1 and abs(y.var() - 1) < 0.1
    fx.testmode(m, True)
    assert np.array_equal(evalwgrad(m, x), x)
    fx.testmode(m, False)
    y = np.asarray(evalwgrad(m, x))
    assert abs(y.mean()) < 0.1 and abs(y.var() - 1) < 0.1
    assert 40 < float(jnp.sum(evalwgrad(m, np.ones(100, np.float32)))) < 130


def test_batchnorm(x64):
    m = fx.BatchNorm(2)
    x = np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]).T  # Flux's 2×3: 3 observations
    assert m.affine and len(fx.params(m)) == 2
    assert np.array_equal(m.beta, [0, 0]) and np.array_equal(m.gamma, [1, 1])
    y = evalwgrad(m, x)
    np.testing.assert_allclose(y, np.array([[-1.22474, 0, 1.22474]] * 2).T, atol=1e-5)
    np.testing.assert_allclose(m.mu, [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(m.sigma2, 0.1 * x.var(0) * 3 / 2 + 0.9, rtol=1e-6)
    np.testing.assert_allclose(m(x)[0, 0], (1 - 0.3) / np.sqrt(1.3), atol=1e-5)
    m = fx.BatchNorm(2, fx.sigmoid)
    y = m(x)
    want = 1 / (1 + np.exp(-((x - np.asarray(m.mu)) / np.sqrt(np.asarray(m.sigma2) + m.eps))))
    np.testing.assert_allclose(y, want, atol=1e-7)


def _instance_x(sizes):
    """Flux's ``reshape(1:prod(sizes), sizes)`` (column-major ``(W, C, N)``) in our
    ``(N, W, C)`` layout."""
    flux = np.arange(1, np.prod(sizes) + 1, dtype=np.float64).reshape(sizes, order="F")
    return np.transpose(flux, (2, 0, 1))


def test_instancenorm_track_stats(x64):
    m = fx.InstanceNorm(2, affine=True, track_stats=True)
    x = _instance_x((3, 2, 2))
    y = evalwgrad(m, x)
    z = np.array([[[-1.22474, -1.22474], [0, 0], [1.22474, 1.22474]]] * 2)
    np.testing.assert_allclose(y, z, atol=1e-5)
    np.testing.assert_allclose(m.mu, [0.5, 0.8], rtol=1e-6)
    n = 3
    var = x.var(axis=1)
    np.testing.assert_allclose(m.sigma2, 0.1 * n / (n - 1) * var.mean(0) + 0.9, rtol=1e-6)
    y = m(x)
    assert m.mu.shape == m.sigma2.shape == (2,)
    want = (x - np.asarray(m.mu)) / np.sqrt(np.asarray(m.sigma2) + 1e-5)
    np.testing.assert_allclose(y, want, atol=1e-5)


@pytest.mark.parametrize("track", [True, False])
def test_instancenorm_with_activation(track, x64):
    m = fx.InstanceNorm(2, fx.sigmoid, affine=True, track_stats=track)
    assert len(fx.params(m)) == 2
    x = _instance_x((3, 2, 2))
    if track:
        evalwgrad(m, x)
        mu, var = np.asarray(m.mu), np.asarray(m.sigma2)
    else:
        mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    y = m(x)  # inference after a training step
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-(x - mu) / np.sqrt(var + m.eps))), atol=1e-7)


def test_instancenorm_without_affine(x64):
    m = fx.InstanceNorm(2, fx.sigmoid)
    assert not m.affine and len(fx.params(m)) == 0
    x = _instance_x((3, 2, 2))
    mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    np.testing.assert_allclose(m(x), 1 / (1 + np.exp(-(x - mu) / np.sqrt(var + m.eps))), atol=1e-7)


def test_instancenorm_higher_rank_track_stats():
    m = fx.InstanceNorm(2, affine=True, track_stats=True)
    x = np.arange(6 * 2 * 4 * 3 * 5 * 5, dtype=np.float32).reshape(6, 4, 3, 5, 5, 2) / 1000
    y = evalwgrad(m, x)
    assert m.mu.shape == m.sigma2.shape == (2,) and y.shape == x.shape
