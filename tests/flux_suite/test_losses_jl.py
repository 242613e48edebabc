"""Flux v0.12's test/losses.jl, translated testset by testset (float64, as Julia's literals).

Flux puts classes on the first axis (``dims=1``, a ``(classes, n)`` matrix); fluxjax on the
last (``axis=-1``, ``(n, classes)``), so every class-axis matrix here is the transpose of
Julia's. Losses that only sum or average elementwise values take the arrays as they are.
``@test_throws ArgumentError`` becomes ``ValueError``; Julia's ``≈`` is a relative
tolerance of √eps (1.5e-8). ``categorical_focal_loss`` is ``focal_loss`` (its v0.13 name).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax.losses import xlogx, xlogy

ALL_LOSSES = [
    fx.mse, fx.mae, fx.msle, fx.crossentropy, fx.logitcrossentropy,
    fx.binarycrossentropy, fx.logitbinarycrossentropy, fx.kldivergence,
    fx.huber_loss, fx.tversky_loss, fx.dice_coeff_loss, fx.poisson_loss,
    fx.hinge_loss, fx.squared_hinge_loss,
]  # fmt: skip


def approx(v):
    return pytest.approx(v, rel=1.5e-8, abs=1e-15)


def a(*rows):
    return np.array(rows, dtype=np.float64)


def identity_agg(x):
    return x


pytestmark = pytest.mark.usefixtures("x64")


def test_xlogx_and_xlogy():
    assert float(xlogx(0.0)) == 0
    assert np.isnan(float(xlogx(np.nan)))
    assert float(xlogx(2.0)) == approx(2.0 * np.log(2.0))
    assert float(xlogy(0.0, 1.0)) == 0
    assert np.isnan(float(xlogy(np.nan, 1.0)))
    assert np.isnan(float(xlogy(1.0, np.nan)))
    assert np.isnan(float(xlogy(np.nan, np.nan)))
    assert float(xlogy(2.0, 3.0)) == approx(2.0 * np.log(3.0))


# First, regression-style y's
Y_REG, YHAT_REG = a(1, 1, 0, 0), a(0.9, 0.1, 0.1, 0.9)


def test_mse():
    assert float(fx.mse(YHAT_REG, Y_REG)) == approx((0.1**2 + 0.9**2) / 2)


def test_mse_of_complex_values_is_real():
    """Flux#1776: mse uses abs2, so a complex error gives a real loss."""
    out = fx.mse(0, 1 + 1j)
    assert not jnp.iscomplexobj(out) and float(out) == 2


def test_mae():
    assert float(fx.mae(YHAT_REG, Y_REG)) == approx(1 / 2)


def test_huber_loss():
    assert float(fx.huber_loss(YHAT_REG, Y_REG)) == approx(0.20500000000000002)


def test_msle():
    y, yhat = a(123.0, 456.0, 789.0), a(345.0, 332.0, 789.0)
    assert float(fx.msle(yhat, y)) == approx(0.38813985859136585)


# Now onehot y's (rows are observations here)
SF = 0.1


def _onehot_data():
    y = np.asarray(fx.onehotbatch([1, 1, 0, 0], [0, 1]), np.float64)
    yhat = a([0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9])
    v = np.log(0.1 / 0.9)
    logyhat = a([v, 0.0], [0.0, v], [0.0, v], [v, 0.0])
    yl = np.asarray(fx.onehotbatch([1], [0, 1]), np.float64)
    yls = a([SF, 1 - SF])  # effective y after label smoothing
    ylp, logylp = a([0.9, 0.1]), a([0.0, v])
    ya = np.asarray(fx.onehotbatch([1, 1, 1, 0, 0], [0, 1]), np.float64)
    y_sim = ya * (1 - 2 * SF) + SF
    y_dis = y_sim[:, ::-1]  # swap the two classes
    return y, yhat, logyhat, yl, yls, ylp, logylp, ya, y_sim, y_dis


LOSSVALUE, LOSSVALUE_SMOOTHED = 1.203972804325936, 1.2039728043259348


def test_crossentropy():
    y, yhat, _, yl, yls, ylp, _, ya, y_sim, y_dis = _onehot_data()
    ce = fx.crossentropy
    assert float(ce(a(0.1, 0.0, 0.9), a(0.1, 0.0, 0.9))) == approx(
        float(ce(a(0.1, 0.9), a(0.1, 0.9)))
    )
    assert float(ce(yhat, y)) == approx(LOSSVALUE)
    assert float(ce(yhat, fx.label_smoothing(y, 0.1))) == approx(LOSSVALUE_SMOOTHED)
    assert float(ce(ylp, fx.label_smoothing(yl, 2 * SF))) == approx(-np.sum(yls * np.log(ylp)))
    assert float(ce(ylp, yl)) == approx(-np.sum(yl * np.log(ylp)))
    assert float(ce(ya, ya, eps=0)) == 0  # y_same = Float32.(ya)
    assert float(ce(ya.astype(np.float32), ya, eps=0)) == 0
    ya_smoothed = fx.label_smoothing(ya, 2 * SF)
    assert float(ce(y_sim, ya)) < float(ce(y_sim, ya_smoothed))
    assert float(ce(y_dis, ya)) > float(ce(y_dis, ya_smoothed))


def test_logitcrossentropy():
    y, _, logyhat, yl, yls, _, logylp, *_ = _onehot_data()
    lce, lsm = fx.logitcrossentropy, np.asarray(fx.logsoftmax(logylp))
    assert float(lce(logyhat, y)) == approx(LOSSVALUE)
    assert float(lce(logylp, yl)) == approx(-np.sum(yl * lsm))
    assert float(lce(logylp, fx.label_smoothing(yl, 2 * SF))) == approx(-np.sum(yls * lsm))


def _binary_data():
    k1, k2 = jax.random.split(jax.random.PRNGKey(5))
    logyhat = jax.random.normal(k1, (3,), jnp.float64)
    y = jax.random.uniform(k2, (3,), jnp.float64)
    return np.asarray(logyhat), np.asarray(y)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_binarycrossentropy():
    logyhat, y = _binary_data()
    p, yls = _sig(logyhat), y * (1 - 2 * SF) + SF
    bce = fx.binarycrossentropy
    smoothed = fx.label_smoothing(y, 2 * SF, axis=None)
    np.testing.assert_allclose(
        bce(p, smoothed, eps=0, agg=identity_agg),
        -yls * np.log(p) - (1 - yls) * np.log(1 - p),
        rtol=1.5e-8,
    )
    assert float(bce(p, y, eps=0)) == approx(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)))
    e = np.finfo(np.float64).eps
    expected = np.mean(-y * np.log(p + e) - (1 - y) * np.log(1 - p + e))
    assert float(bce(p, y)) == approx(expected)


def test_logitbinarycrossentropy():
    logyhat, y = _binary_data()
    smoothed = fx.label_smoothing(y, 0.2, axis=None)  # label_smoothing.(y, 0.2): scalars
    np.testing.assert_allclose(
        fx.logitbinarycrossentropy(logyhat, smoothed, agg=identity_agg),
        fx.binarycrossentropy(_sig(logyhat), smoothed, eps=0, agg=identity_agg),
        rtol=1.5e-8,
    )
    assert float(fx.logitbinarycrossentropy(logyhat, y)) == approx(
        float(fx.binarycrossentropy(_sig(logyhat), y, eps=0))
    )


def test_label_smoothing():
    y = fx.onehotbatch([1], [0, 1])
    # Julia: == [0.1 0.9]' in Float64; fluxjax turns Bool labels into float32 (its default)
    np.testing.assert_allclose(fx.label_smoothing(y, 0.2), [[0.1, 0.9]], rtol=1e-7)
    yf = np.asarray(y, np.float32)  # Bool labels compute in float32 (fluxjax default)
    elementwise = [[float(fx.label_smoothing(v, 0.2, axis=None)) for v in row] for row in yf]
    np.testing.assert_allclose(fx.label_smoothing(y, 0.2, axis=None), elementwise, rtol=1e-7)
    with pytest.raises(ValueError, match="alpha"):
        fx.label_smoothing(a(0.0, 0.0, 1.0, 0.0), 1.2)
    with pytest.raises(ValueError, match="alpha"):
        fx.label_smoothing(a(0.0, 0.0, 1.0, 0.0), 0.0)


def test_kldivergence():
    kl = fx.kldivergence
    assert float(kl(a(0.1, 0.0, 0.9), a(0.1, 0.0, 0.9))) == approx(
        float(kl(a(0.1, 0.9), a(0.1, 0.9)))
    )
    y, yhat = a(1, 2, 3).reshape(3, 1), a(4.0, 5.0, 6.0).reshape(3, 1)  # Julia's 1×3, dims=1
    assert float(kl(yhat, y)) == approx(-1.7661057888493457)
    assert float(kl(y, y)) == pytest.approx(0, abs=1e-12)


def test_hinge_loss():
    y, yhat = a([1, 2, 3, 4]), a([5.0, 6.0, 7.0, 8.0])
    assert float(fx.hinge_loss(yhat, y)) == approx(0)
    assert float(fx.hinge_loss(y, 0.5 * y)) == approx(0.125)


def test_squared_hinge_loss():
    y, yhat = a([1, 2, 3, 4]), a([5.0, 6.0, 7.0, 8.0])
    assert float(fx.squared_hinge_loss(yhat, y)) == approx(0)
    assert float(fx.squared_hinge_loss(y, 0.5 * y)) == approx(0.0625)


def test_poisson_loss():
    y, yhat = a([0.1, 0.2, 0.3]), a([0.4, 0.5, 0.6])
    assert float(fx.poisson_loss(yhat, y)) == approx(0.6278353988097339)
    assert float(fx.poisson_loss(y, y)) == approx(0.5044459776946685)


def test_dice_coeff_loss():
    y, yhat = a([1.0, 0.5, 0.3, 2.4]), a([0, 1.4, 0.5, 1.2])
    assert float(fx.dice_coeff_loss(yhat, y)) == approx(0.2799999999999999)
    assert float(fx.dice_coeff_loss(y, y)) == pytest.approx(0.0, abs=1e-15)


def test_tversky_loss():
    y, yhat = a([1.0, 0.5, 0.3, 2.4]), a([0, 1.4, 0.5, 1.2])
    assert float(fx.tversky_loss(yhat, y)) == approx(-0.06772009029345383)
    assert float(fx.tversky_loss(yhat, y, beta=0.8)) == approx(-0.09490740740740744)
    assert float(fx.tversky_loss(y, y)) == approx(-0.5576923076923075)


@pytest.mark.parametrize("T", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("f", ALL_LOSSES, ids=[f.__name__ for f in ALL_LOSSES])
def test_no_spurious_promotions(f, T):
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    y, yhat = jax.random.uniform(k1, (2,), T), jax.random.uniform(k2, (2,), T)
    fwd, back = fx.pullback(f, yhat, y)
    assert fwd.dtype == T
    assert back(jnp.ones((), T))[0].dtype == T


# The focal-loss testsets of the v0.12 release (the stored file is a pre-release snapshot
# with categorical_focal_loss; the release renamed it focal_loss and changed the cases).
def test_binary_focal_loss():
    y = a([0, 1, 0], [1, 0, 1])
    yhat = a([0.268941, 0.5, 0.268941], [0.731059, 0.5, 0.731059])
    y1, yhat1 = a([1, 0], [0, 1]), a([0.6, 0.3], [0.4, 0.7])
    assert float(fx.binary_focal_loss(yhat, y)) == approx(0.0728675615927385)
    assert float(fx.binary_focal_loss(yhat1, y1)) == approx(0.05691642237852222)
    assert float(fx.binary_focal_loss(yhat, y, gamma=0.0)) == approx(
        float(fx.binarycrossentropy(yhat, y))
    )


def test_focal_loss():
    y = a([1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0]).T
    # softmax(reshape(-7:7, 3, 5) .* 1f0): Julia's columns are our rows; Float32
    yhat = fx.softmax(np.arange(-7, 8, dtype=np.float32).reshape(5, 3))
    y1 = a([1, 0], [0, 0], [0, 1]).T
    yhat1 = a([0.4, 0.2], [0.5, 0.5], [0.1, 0.3]).T
    f32 = dict(rel=3.5e-4)  # Julia's ≈ between a Float32 and a Float64: √eps(Float32)
    assert float(fx.focal_loss(yhat, y)) == pytest.approx(1.1277571935622628, **f32)
    assert float(fx.focal_loss(yhat1, y1)) == approx(0.45990566879720157)
    assert float(fx.focal_loss(yhat, y, gamma=0)) == pytest.approx(
        float(fx.crossentropy(yhat, y)), **f32
    )
