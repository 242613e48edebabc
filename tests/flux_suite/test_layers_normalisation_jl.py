"""Flux v0.12.9's test/layers/normalisation.jl, translated: Dropout, AlphaDropout,
BatchNorm, InstanceNorm, LayerNorm and GroupNorm.

``evalwgrad(f, x) = pullback(f, x)[1]`` is ``fx.pullback(f, x)[0]``: the layer runs as
inside a gradient (active in automatic mode) and its state is written back. Flux's
``(features, batch)`` is ``(batch, features)`` here, ``(W, C, N)`` is ``(N, W, C)``; ``μ``,
``σ²`` are ``mu``, ``sigma2``; ``Flux.hasaffine(m)`` is ``m.affine``. Flux's
``reshape(1:prod(sizes), sizes)`` is built column-major and moved to our layout by ``_flux``.
Left out: the two ``@allocated`` checks (Julia's allocation counter; JAX allocates its own
buffers).
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
    # Flux draws 1000 values; 10,000 keep the check at about 5 standard deviations of the
    # variance estimate (1000 fail for some keys), and fx.seed fixes the layer's key
    fx.seed(0)
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
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


def _flux(sizes, dtype=np.float32):
    """Flux's ``reshape(1:prod(sizes), sizes)``, ``(spatial..., C, N)`` column-major, in our
    ``(N, spatial reversed..., C)`` layout (as the conv suite translates ``WHCN``)."""
    k = len(sizes) - 2
    flux = np.arange(1, np.prod(sizes) + 1, dtype=dtype).reshape(sizes, order="F")
    return np.transpose(flux, (k + 1, *range(k - 1, -1, -1), k))


@pytest.mark.parametrize("sizes", [(3, 2, 1), (2, 3, 2, 1), (2, 2, 3, 2, 1)])
def test_batchnorm_higher_rank_is_batchnorm_of_the_flattened_input(sizes):
    # Flux folds every axis but the channels into the batch: the same numbers, exactly
    m = fx.trainmode(fx.BatchNorm(2))
    x = _flux(sizes)
    y = np.asarray(m(x.reshape(-1, 2))).reshape(x.shape)
    np.testing.assert_array_equal(m(x), y)


def test_norm_parameter_counts():
    assert len(fx.params(fx.BatchNorm(10))) == 2
    assert len(fx.params(fx.BatchNorm(10, affine=True))) == 2
    assert len(fx.params(fx.BatchNorm(10, affine=False))) == 0
    assert len(fx.params(fx.InstanceNorm(10))) == 0
    assert len(fx.params(fx.InstanceNorm(10, affine=True))) == 2
    assert len(fx.params(fx.InstanceNorm(10, affine=False))) == 0
    m = fx.LayerNorm((2, 3, 4))
    assert m.affine and len(fx.params(m)) == 2
    m = fx.LayerNorm((2, 3, 4), affine=False)
    assert not m.affine and len(fx.params(m)) == 0


@pytest.mark.parametrize("norm", ["InstanceNorm", "GroupNorm"])
def test_norm_spatial_axes_fold_into_one(norm):
    # Flux: reshape(permutedims(x, [3, 1, 2, 4, 5]), :, 2, 3) (a reshape: the moved axis has
    # size 1), normalised, reshaped back, equals the layer on x
    if norm == "InstanceNorm":
        m = fx.trainmode(fx.InstanceNorm(2, affine=True))
    else:
        m = fx.trainmode(fx.GroupNorm(2, 2, track_stats=True))
    x = _flux((2, 4, 1, 2, 3))
    y = np.asarray(m(x.reshape(3, -1, 2))).reshape(x.shape)
    np.testing.assert_array_equal(m(x), y)


def test_instancenorm_is_batchnorm_with_observations_as_channels():
    sizes = (5, 5, 3, 4, 2, 6)
    x = _flux(sizes)  # (6, 4, 3, 5, 5, 2)
    inorm = fx.trainmode(fx.InstanceNorm(2, affine=True))
    bnorm = fx.trainmode(fx.BatchNorm(12))
    # Flux's reshape(x, (spatial..., :, 1)) makes channel c of observation n channel c + 2n
    squashed = np.moveaxis(x, 0, -2).reshape(1, *x.shape[1:-1], 12)
    back = np.moveaxis(np.asarray(bnorm(squashed)).reshape(*x.shape[1:-1], 6, 2), -2, 0)
    np.testing.assert_allclose(inorm(x), back, rtol=1e-6, atol=1e-6)


def test_layernorm_is_normalise_over_its_axes():
    rng = np.random.default_rng(0)
    for shape in ((3, 2), (4, 3, 2), (5, 4, 3, 2)):  # Flux's rand(2, 3), (2, 3, 4), ...
        x = rng.random(shape)
        np.testing.assert_allclose(fx.LayerNorm(2)(x), fx.normalise(x, axis=-1), rtol=1e-6)
    x = rng.random(2)
    want = np.tanh(fx.normalise(x, axis=0))
    np.testing.assert_allclose(fx.LayerNorm(2, fx.tanh)(x), want, rtol=1e-6)
    x = rng.random((5, 4, 3, 2))  # Flux's rand(2, 3, 4, 5)
    np.testing.assert_allclose(fx.LayerNorm((3, 2))(x), fx.normalise(x, axis=(-2, -1)), rtol=1e-6)
    want = fx.normalise(x, axis=(1, 2, 3))
    np.testing.assert_allclose(fx.LayerNorm((4, 3, 2))(x), want, rtol=1e-6)


def test_groupnorm_track_stats():
    m = fx.GroupNorm(4, 2, track_stats=True)
    assert len(fx.params(m)) == 2
    assert np.array_equal(m.beta, [0, 0, 0, 0]) and np.array_equal(m.gamma, [1, 1, 1, 1])
    x = _flux((3, 4, 2))  # (N=2, W=3, C=4)
    evalwgrad(m, x)
    np.testing.assert_allclose(m.mu, [0.95, 1.55], rtol=1e-6)
    z = x.reshape(2, 3, 2, 2).astype(np.float64)  # (N, W, G, C/G): Flux's (W, C/G, G, N)
    n = 6  # values per group and observation
    var = z.var(axis=(1, 3))  # (N, G)
    np.testing.assert_allclose(m.sigma2, 0.1 * n / (n - 1) * var.mean(0) + 0.9, rtol=1e-6)
    y = m(x)  # test mode: the running statistics
    mu, s2 = np.asarray(m.mu)[:, None], np.asarray(m.sigma2)[:, None]
    want = ((z - mu) / np.sqrt(s2 + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_groupnorm_with_activation():
    m = fx.GroupNorm(4, 2, fx.sigmoid, track_stats=True)
    x = _flux((3, 4, 2))
    z = x.reshape(2, 3, 2, 2)
    mu, s2 = np.asarray(m.mu)[:, None], np.asarray(m.sigma2)[:, None]
    want = (1 / (1 + np.exp(-(z - mu) / np.sqrt(s2 + m.eps)))).reshape(x.shape)
    np.testing.assert_allclose(m(x), want, atol=1e-7)


def test_groupnorm_higher_rank_track_stats():
    m = fx.GroupNorm(4, 2, track_stats=True)
    x = _flux((5, 5, 3, 4, 4, 6)) / 1000
    y = evalwgrad(m, x)
    assert m.mu.shape == m.sigma2.shape == (2,) and y.shape == x.shape


def test_groupnorm_with_one_channel_a_group_is_instancenorm():
    x = _flux((2, 2, 3, 4, 5))
    inorm = fx.trainmode(fx.InstanceNorm(4, affine=True))
    gnorm = fx.trainmode(fx.GroupNorm(4, 4))
    np.testing.assert_allclose(inorm(x), gnorm(x), rtol=1e-5, atol=1e-6)


def test_groupnorm_of_one_observation_with_one_channel_a_group_is_batchnorm():
    x = _flux((2, 2, 3, 4, 1))
    bnorm = fx.trainmode(fx.BatchNorm(4))
    gnorm = fx.trainmode(fx.GroupNorm(4, 4))
    np.testing.assert_allclose(bnorm(x), gnorm(x), rtol=1e-5, atol=1e-6)
