"""Losses vs independent float64 NumPy formulas (flux-spec §7), finite differences, edge cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax import losses

RNG = np.random.default_rng(42)
N, C = 4, 3


def np_xlogy(x, y):
    return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


def np_logsoftmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def away_from(v, kink, gap=0.05):
    """Nudge entries of v whose distance to a kink is below gap (finite differences need it)."""
    return np.where(np.abs(v - kink) < gap, v + 2 * gap, v)


def probs():
    return np.exp(np_logsoftmax(RNG.normal(size=(N, C))))


def onehot_rows():
    return np.eye(C)[RNG.integers(0, C, N)]


def signs():
    return RNG.choice([-1.0, 1.0], size=(N, C))


# Inputs (float64 NumPy); each case names one.
INPUTS = {
    "real": (RNG.normal(size=(N, C)), RNG.normal(size=(N, C))),
    "positive": (RNG.uniform(0.1, 2, (N, C)), RNG.uniform(0.1, 2, (N, C))),
    "probs_onehot": (probs(), onehot_rows()),
    "probs_soft": (probs(), probs()),
    "binary": (RNG.uniform(0.05, 0.95, (N, C)), RNG.integers(0, 2, (N, C)).astype(float)),
    "binary_soft": (RNG.uniform(0.05, 0.95, (N, C)), RNG.uniform(0, 1, (N, C))),
    "logits_binary": (RNG.normal(size=(N, C)) * 2, RNG.integers(0, 2, (N, C)).astype(float)),
    "logits_soft": (RNG.normal(size=(N, C)) * 2, probs()),
}
_s = signs()
INPUTS["hinge"] = (away_from(RNG.normal(size=(N, C)) * 1.5 * _s, 1) * _s, _s)
INPUTS["distance"] = (away_from(away_from(RNG.uniform(0.1, 2, (N, C)), 1), 2), INPUTS["binary"][1])

# Each reference takes (ŷ, y, eps) in float64 and returns the mean-aggregated loss.
# (id, function, reference, inputs, per-sample shape under agg=identity, or None: no agg)
CASES = [
    ("mae", fx.mae, lambda p, y, e: np.mean(np.abs(p - y)), "real", (N, C)),
    ("mse", fx.mse, lambda p, y, e: np.mean((p - y) ** 2), "real", (N, C)),
    (
        "msle",
        fx.msle,
        lambda p, y, e: np.mean(np.log((p + e) / (y + e)) ** 2),
        "positive",
        (N, C),
    ),
    (
        "huber",
        fx.huber_loss,
        lambda p, y, e: np.mean(
            np.where(np.abs(p - y) < 1, 0.5 * (p - y) ** 2, np.abs(p - y) - 0.5)
        ),
        "real",
        (N, C),
    ),
    (
        "huber_delta0.3",
        lambda p, y, **k: fx.huber_loss(p, y, delta=0.3, **k),
        lambda p, y, e: np.mean(
            np.where(np.abs(p - y) < 0.3, 0.5 * (p - y) ** 2, 0.3 * (np.abs(p - y) - 0.15))
        ),
        "real",
        (N, C),
    ),
    (
        "crossentropy_onehot",
        fx.crossentropy,
        lambda p, y, e: np.mean(-np.sum(np_xlogy(y, p + e), -1)),
        "probs_onehot",
        (N,),
    ),
    (
        "crossentropy_soft",
        fx.crossentropy,
        lambda p, y, e: np.mean(-np.sum(y * np.log(p + e), -1)),
        "probs_soft",
        (N,),
    ),
    (
        "logitcrossentropy",
        fx.logitcrossentropy,
        lambda p, y, e: np.mean(-np.sum(y * np_logsoftmax(p), -1)),
        "logits_soft",
        (N,),
    ),
    (
        "binarycrossentropy",
        fx.binarycrossentropy,
        lambda p, y, e: np.mean(-np_xlogy(y, p + e) - np_xlogy(1 - y, 1 - p + e)),
        "binary",
        (N, C),
    ),
    (
        "binarycrossentropy_soft",
        fx.binarycrossentropy,
        lambda p, y, e: np.mean(-y * np.log(p + e) - (1 - y) * np.log(1 - p + e)),
        "binary_soft",
        (N, C),
    ),
    (
        "logitbinarycrossentropy",
        fx.logitbinarycrossentropy,
        lambda p, y, e: np.mean(
            -y * np.log(1 / (1 + np.exp(-p))) - (1 - y) * np.log(1 - 1 / (1 + np.exp(-p)))
        ),
        "logits_binary",
        (N, C),
    ),
    (
        "kldivergence",
        fx.kldivergence,
        lambda p, y, e: np.mean(np.sum(y * np.log(y / (p + e)), -1)),
        "probs_soft",
        (N,),
    ),
    (
        "kldivergence_onehot",
        fx.kldivergence,
        lambda p, y, e: np.mean(-np.sum(np_xlogy(y, p + e), -1)),
        "probs_onehot",
        (N,),
    ),
    (
        "poisson_loss",
        fx.poisson_loss,
        lambda p, y, e: np.mean(p - y * np.log(p)),
        "positive",
        (N, C),
    ),
    (
        "hinge_loss",
        fx.hinge_loss,
        lambda p, y, e: np.mean(np.maximum(0, 1 - p * y)),
        "hinge",
        (N, C),
    ),
    (
        "squared_hinge_loss",
        fx.squared_hinge_loss,
        lambda p, y, e: np.mean(np.maximum(0, 1 - p * y) ** 2),
        "hinge",
        (N, C),
    ),
    (
        "dice_coeff_loss",
        fx.dice_coeff_loss,
        lambda p, y, e: 1 - (2 * np.sum(y * p) + 1) / (np.sum(y**2) + np.sum(p**2) + 1),
        "binary_soft",
        None,
    ),
    (
        "tversky_loss",
        fx.tversky_loss,
        lambda p, y, e: (
            1
            - (np.sum(y * p) + 1)
            / (np.sum(y * p) + 0.7 * np.sum((1 - y) * p) + 0.3 * np.sum(y * (1 - p)) + 1)
        ),
        "binary_soft",
        None,
    ),
    (
        "binary_focal_loss",
        fx.binary_focal_loss,
        lambda p, y, e: np.mean(
            (1 - (y * (p + e) + (1 - y) * (1 - p - e))) ** 2
            * -np.log(y * (p + e) + (1 - y) * (1 - p - e))
        ),
        "binary",
        (N, C),
    ),
    (
        "binary_focal_loss_gamma1.5",
        lambda p, y, **k: fx.binary_focal_loss(p, y, gamma=1.5, **k),
        lambda p, y, e: np.mean(
            (1 - (y * (p + e) + (1 - y) * (1 - p - e))) ** 1.5
            * -np.log(y * (p + e) + (1 - y) * (1 - p - e))
        ),
        "binary_soft",
        (N, C),
    ),
    (
        "focal_loss",
        fx.focal_loss,
        lambda p, y, e: np.mean(np.sum(-y * (1 - p - e) ** 2 * np.log(p + e), -1)),
        "probs_soft",
        (N,),
    ),
    (
        "siamese_contrastive_loss",
        fx.siamese_contrastive_loss,
        lambda p, y, e: np.mean((1 - y) * p**2 + y * np.maximum(0, 1 - p) ** 2),
        "distance",
        (N, C),
    ),
    (
        "siamese_margin2",
        lambda p, y, **k: fx.siamese_contrastive_loss(p, y, margin=2.0, **k),
        lambda p, y, e: np.mean((1 - y) * p**2 + y * np.maximum(0, 2 - p) ** 2),
        "distance",
        (N, C),
    ),
]
IDS = [c[0] for c in CASES]
AGG_CASES = [c for c in CASES if c[4] is not None]
EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)


def fd_grad(f, x, h=1e-6):
    """Central finite-difference gradient of the scalar function f at x (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.fixture(scope="module")
def computed():
    """Every case's float32 value and float64 (value, gradient wrt ŷ), two compiled calls."""
    inputs = {name: INPUTS[i] for name, _, _, i, _ in CASES}
    fns = {name: f for name, f, *_ in CASES}
    run = jax.jit(lambda xs: {n: fns[n](p, y) for n, (p, y) in xs.items()})
    v32 = run(
        {
            n: (jnp.asarray(p, jnp.float32), jnp.asarray(y, jnp.float32))
            for n, (p, y) in inputs.items()
        }
    )
    with jax.enable_x64(True):
        vg = jax.jit(lambda xs: {n: jax.value_and_grad(fns[n])(p, y) for n, (p, y) in xs.items()})
        v64 = vg({n: (jnp.asarray(p), jnp.asarray(y)) for n, (p, y) in inputs.items()})
    return v32, v64


@pytest.mark.parametrize("name, f, ref, inputs, shape", CASES, ids=IDS)
def test_float32_value_matches_numpy(name, f, ref, inputs, shape, computed):
    value = computed[0][name]
    assert value.dtype == jnp.float32 and value.shape == ()
    np.testing.assert_allclose(float(value), ref(*INPUTS[inputs], EPS32), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name, f, ref, inputs, shape", CASES, ids=IDS)
def test_float64_value_and_gradient_match(name, f, ref, inputs, shape, computed):
    value, grad = computed[1][name]
    yhat, y = INPUTS[inputs]
    assert value.dtype == jnp.float64
    np.testing.assert_allclose(float(value), ref(yhat, y, EPS64), rtol=1e-12, atol=1e-14)
    expected = fd_grad(lambda p: ref(p, y, EPS64), yhat)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, f, ref, inputs, shape", AGG_CASES, ids=[c[0] for c in AGG_CASES])
def test_agg(name, f, ref, inputs, shape):
    yhat, y = (jnp.asarray(a, jnp.float32) for a in INPUTS[inputs])
    aggs = (lambda l: l, jnp.sum, sum, jnp.mean)
    per_sample, total, builtin_total, default = jax.jit(
        lambda p, y: [f(p, y, agg=agg) for agg in aggs[:3]] + [f(p, y)]
    )(yhat, y)
    assert per_sample.shape == shape
    np.testing.assert_allclose(total, per_sample.sum(), rtol=1e-6)
    np.testing.assert_allclose(builtin_total, per_sample.sum(), rtol=1e-6)
    np.testing.assert_allclose(default, per_sample.mean(), rtol=1e-6)


@pytest.mark.parametrize("name, f, ref, inputs, shape", CASES, ids=IDS)
def test_shape_mismatch_is_an_error_naming_both_shapes(name, f, ref, inputs, shape):
    yhat, y = INPUTS[inputs]
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 3\)"):
        f(jnp.asarray(yhat), jnp.asarray(y[:3]))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 3, 1\)"):
        f(jnp.asarray(yhat), y[..., None])


def test_number_target_is_allowed():
    yhat = jnp.array([0.5, 2.0])
    assert float(fx.mse(yhat, 1.0)) == pytest.approx((0.25 + 1.0) / 2)
    assert float(fx.hinge_loss(yhat, 1)) == pytest.approx(0.25)


def test_every_loss_is_in_fx_and_fx_losses():
    for name in losses.__all__:
        assert getattr(fx, name) is getattr(fx.losses, name)
        assert ">>>" in getattr(fx, name).__doc__
    assert fx.losses.mse is fx.mse


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_at_the_delta_boundary(delta):
    yhat = jnp.array([delta, delta - 1e-3, delta + 1e-3])
    values = fx.huber_loss(yhat, jnp.zeros(3), delta=delta, agg=lambda l: l)
    np.testing.assert_allclose(values[0], 0.5 * delta**2, rtol=1e-6)
    np.testing.assert_allclose(values[1:], 0.5 * delta**2 + np.array([-1e-3, 1e-3]) * delta, 1e-4)
    grad = jax.grad(lambda p: fx.huber_loss(p, jnp.zeros(3), delta=delta, agg=jnp.sum))(yhat)
    np.testing.assert_allclose(grad, [delta, delta - 1e-3, delta], rtol=1e-5)


def test_xlogy_and_xlogx_at_zero():
    xlogy, xlogx = fx.losses.xlogy, fx.losses.xlogx
    assert xlogy(0.0, 0.0) == 0 and xlogy(0.0, 0.5) == 0 and xlogx(0.0) == 0
    assert float(xlogy(2.0, 0.0)) == -math.inf
    assert float(xlogy(2.0, 0.5)) == pytest.approx(2 * math.log(0.5))
    dx, dy = jax.grad(xlogy, argnums=(0, 1))(0.0, 0.0)
    assert float(dy) == 0.0 and np.isfinite(float(dx))
    dx, dy = jax.grad(xlogy, argnums=(0, 1))(0.0, 0.5)
    assert float(dx) == pytest.approx(math.log(0.5)) and float(dy) == 0.0
    dx, dy = jax.grad(xlogy, argnums=(0, 1))(2.0, 0.5)
    assert float(dx) == pytest.approx(math.log(0.5)) and float(dy) == pytest.approx(4.0)
    assert float(jax.grad(xlogx)(0.0)) == 0.0
    assert float(jax.grad(xlogx)(2.0)) == pytest.approx(math.log(2) + 1)


def test_crossentropy_with_zeros_has_finite_value_and_gradient():
    yhat, y = jnp.array([[0.0, 1.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])
    for f in (fx.crossentropy, fx.kldivergence, fx.binarycrossentropy, fx.focal_loss):
        value, grad = jax.jit(jax.value_and_grad(f))(yhat, y)
        assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all(), f.__name__


def test_eps_is_the_machine_epsilon_of_yhat():
    # target class predicted with probability 0: the loss is -log(eps)
    yhat, y = [[0.0, 1.0]], [[1.0, 0.0]]
    assert float(fx.crossentropy(jnp.array(yhat), jnp.array(y))) == pytest.approx(23 * math.log(2))
    with jax.enable_x64(True):
        value = fx.crossentropy(jnp.array(yhat, jnp.float64), jnp.array(y, jnp.float64))
        assert float(value) == pytest.approx(52 * math.log(2))
    # focal losses: p = ŷ + ϵ, so a target predicted with 0 costs (1 - ϵ)²·(-log ϵ)
    assert float(fx.focal_loss(jnp.array(yhat), jnp.array(y))) == pytest.approx(23 * math.log(2))
    value = fx.binary_focal_loss(jnp.array([0.0]), jnp.array([1.0]))
    assert float(value) == pytest.approx(23 * math.log(2))
    assert float(fx.crossentropy(jnp.array(yhat), jnp.array(y), eps=1e-3)) == pytest.approx(
        -math.log(1e-3), rel=1e-5
    )


def test_crossentropy_class_axis_is_the_last_by_default():
    yhat, y = probs()[:2], onehot_rows()[:2]  # shape (2, 3): 2 samples, 3 classes
    per_sample = fx.crossentropy(jnp.asarray(yhat), jnp.asarray(y), agg=lambda l: l)
    np.testing.assert_allclose(per_sample, -np.log((yhat * y).sum(-1) + EPS32), rtol=1e-5)
    transposed = fx.crossentropy(jnp.asarray(yhat.T), jnp.asarray(y.T), axis=0)
    np.testing.assert_allclose(transposed, per_sample.mean(), rtol=1e-6)
    x3 = jnp.asarray(probs().reshape(2, 2, 3))
    assert fx.logitcrossentropy(x3, x3, agg=lambda l: l).shape == (2, 2)


def test_logit_losses_agree_with_the_probability_ones():
    z, y = (jnp.asarray(a, jnp.float32) for a in INPUTS["logits_soft"])
    np.testing.assert_allclose(
        fx.logitcrossentropy(z, y), fx.crossentropy(fx.softmax(z), y), rtol=1e-5
    )
    z, y = (jnp.asarray(a, jnp.float32) for a in INPUTS["logits_binary"])
    np.testing.assert_allclose(
        fx.logitbinarycrossentropy(z, y), fx.binarycrossentropy(fx.sigmoid(z), y), rtol=1e-4
    )


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5])
def test_label_smoothing_requires_alpha_strictly_between_0_and_1(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fx.label_smoothing(jnp.eye(3), alpha)


def test_label_smoothing_divides_by_the_class_axis():
    y = np.eye(5)[[1, 3]]  # (2 samples, 5 classes)
    out = fx.label_smoothing(jnp.asarray(y), 0.1)
    np.testing.assert_allclose(out, y * 0.9 + 0.1 / 5, rtol=1e-6)
    np.testing.assert_allclose(out.sum(-1), [1, 1], rtol=1e-6)
    np.testing.assert_allclose(fx.label_smoothing(y, 0.1, axis=0), y * 0.9 + 0.1 / 2, rtol=1e-6)
    np.testing.assert_allclose(fx.label_smoothing(jnp.array([0, 1]), 0.2, axis=None), [0.1, 0.9])
    assert float(fx.label_smoothing(1, 0.2, axis=None)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="axis"):
        fx.label_smoothing(y, 0.1, axis=2)


def test_siamese_contrastive_loss_refuses_negative_margin():
    with pytest.raises(ValueError, match="margin"):
        fx.siamese_contrastive_loss(jnp.ones(2), jnp.ones(2), margin=-1.0)


def test_losses_work_under_jit_with_the_dtype_eps():
    yhat, y = (jnp.asarray(a, jnp.float32) for a in INPUTS["probs_onehot"])
    np.testing.assert_allclose(jax.jit(fx.crossentropy)(yhat, y), fx.crossentropy(yhat, y), 1e-6)
