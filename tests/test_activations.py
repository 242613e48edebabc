"""Activations vs independent float64 NumPy formulas (flux-spec §8.3) and finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax import activations

erf = np.vectorize(math.erf)
LAMBDA, ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_softplus(x):
    return np.log1p(np.exp(x))


# Points chosen away from every kink (0, ±0.5, ±1, ±3, 6, θ) so finite differences are exact.
X = np.array([-5.3, -3.7, -2.2, -1.3, -0.7, -0.4, -0.1, 0.15, 0.35, 0.8, 1.2, 2.9, 4.4, 7.1])

# (id, fluxjax function of x, independent float64 reference)
ELEMENTWISE = [
    ("sigmoid", fx.sigmoid, np_sigmoid),
    ("hardsigmoid", fx.hardsigmoid, lambda x: np.clip((x + 3) / 6, 0, 1)),
    ("tanh", fx.tanh, np.tanh),
    ("relu", fx.relu, lambda x: np.maximum(x, 0)),
    ("leakyrelu", fx.leakyrelu, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leakyrelu_a0.2", lambda x: fx.leakyrelu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    ("leakyrelu_a2", lambda x: fx.leakyrelu(x, 2.0), lambda x: np.where(x > 0, x, 2 * x)),
    ("relu6", fx.relu6, lambda x: np.minimum(np.maximum(x, 0), 6)),
    ("elu", fx.elu, lambda x: np.where(x >= 0, x, np.exp(x) - 1)),
    ("elu_0.5", lambda x: fx.elu(x, 0.5), lambda x: np.where(x >= 0, x, 0.5 * (np.exp(x) - 1))),
    ("celu_2", lambda x: fx.celu(x, 2.0), lambda x: np.where(x >= 0, x, 2 * (np.exp(x / 2) - 1))),
    ("celu", fx.celu, lambda x: np.where(x >= 0, x, np.exp(x) - 1)),
    ("selu", fx.selu, lambda x: LAMBDA * np.where(x > 0, x, ALPHA * (np.exp(x) - 1))),
    (
        "gelu",
        fx.gelu,
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ),
    ("gelu_erf", fx.gelu_erf, lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2)))),
    ("swish", fx.swish, lambda x: x * np_sigmoid(x)),
    ("hardswish", fx.hardswish, lambda x: x * np.clip((x + 3) / 6, 0, 1)),
    ("softplus", fx.softplus, np_softplus),
    ("softsign", fx.softsign, lambda x: x / (1 + np.abs(x))),
    ("logsigmoid", fx.logsigmoid, lambda x: np.log(np_sigmoid(x))),
    ("hardtanh", fx.hardtanh, lambda x: np.clip(x, -1, 1)),
    ("lisht", fx.lisht, lambda x: x * np.tanh(x)),
    ("mish", fx.mish, lambda x: x * np.tanh(np_softplus(x))),
    ("tanhshrink", fx.tanhshrink, lambda x: x - np.tanh(x)),
    (
        "softshrink",
        fx.softshrink,
        lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
    ),
    (
        "softshrink_1",
        lambda x: fx.softshrink(x, 1.0),
        lambda x: np.where(x > 1, x - 1, np.where(x < -1, x + 1, 0)),
    ),
    ("trelu", fx.trelu, lambda x: np.where(x > 1, x, 0)),
    ("trelu_0.3", lambda x: fx.trelu(x, 0.3), lambda x: np.where(x > 0.3, x, 0)),
    ("logcosh", fx.logcosh, lambda x: np.log(np.cosh(x))),
    ("identity", fx.identity, lambda x: x),
]
IDS = [c[0] for c in ELEMENTWISE]


def np_logsoftmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# (id, fluxjax function of an array, float64 reference) for the reducing functions
ARRAYWISE = [
    ("softmax", fx.softmax, lambda x: np.exp(np_logsoftmax(x, -1))),
    ("softmax_axis0", lambda x: fx.softmax(x, axis=0), lambda x: np.exp(np_logsoftmax(x, 0))),
    ("logsoftmax", fx.logsoftmax, lambda x: np_logsoftmax(x, -1)),
    ("logsoftmax_axis0", lambda x: fx.logsoftmax(x, 0), lambda x: np_logsoftmax(x, 0)),
    ("logsumexp", fx.logsumexp, lambda x: np.log(np.exp(x).sum())),
    ("logsumexp_axis-1", lambda x: fx.logsumexp(x, -1), lambda x: np.log(np.exp(x).sum(-1))),
    (
        "logsumexp_keepdims",
        lambda x: fx.logsumexp(x, 0, keepdims=True),
        lambda x: np.log(np.exp(x).sum(0, keepdims=True)),
    ),
]
MATRIX = np.random.default_rng(0).normal(size=(3, 4)) * 2


def fd_grad(f, x, h=1e-6):
    """Central finite-difference gradient of the scalar function f at x (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.fixture(scope="module")
def elementwise32():
    """Every elementwise case on float32 X (2-D), in one compiled call to keep the tests fast."""
    x = jnp.asarray(X[:12].reshape(3, 4), jnp.float32)
    return jax.jit(lambda x: {name: f(x) for name, f, _ in ELEMENTWISE})(x)


@pytest.fixture(scope="module")
def elementwise64():
    """(value, gradient of Σ w·f) of every case on float64 X, in one compiled call."""
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        run = jax.jit(lambda x: {name: vjp_weighted(f, x, WEIGHTS) for name, f, _ in ELEMENTWISE})
        return run(x)


WEIGHTS = np.linspace(0.5, 1.5, X.size)


def vjp_weighted(f, x, weights):
    """f(x) and the gradient of Σ weights·f(x)."""
    y, back = jax.vjp(f, x)
    return y, back(jnp.asarray(weights, y.dtype))[0]


@pytest.mark.parametrize("name, f, ref", ELEMENTWISE, ids=IDS)
def test_float32_values_match_numpy_on_any_shape(name, f, ref, elementwise32):
    y = elementwise32[name]
    assert y.dtype == jnp.float32 and y.shape == (3, 4)
    np.testing.assert_allclose(np.asarray(y), ref(X[:12].reshape(3, 4)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, f, ref", ELEMENTWISE, ids=IDS)
def test_float64_values_and_gradient_match(name, f, ref, elementwise64):
    y, grad = elementwise64[name]
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y), ref(X), rtol=1e-12, atol=1e-14)
    expected = fd_grad(lambda x: np.sum(ref(x) * WEIGHTS), X)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, f, ref", ARRAYWISE, ids=[c[0] for c in ARRAYWISE])
def test_array_functions_values_and_gradient(name, f, ref):
    y32 = jax.jit(f)(jnp.asarray(MATRIX, jnp.float32))
    np.testing.assert_allclose(np.asarray(y32), ref(MATRIX), rtol=1e-5, atol=1e-6)
    weights = np.arange(np.size(ref(MATRIX)), dtype=float).reshape(np.shape(ref(MATRIX)))
    with jax.enable_x64(True):
        x = jnp.asarray(MATRIX, jnp.float64)
        y, grad = jax.jit(lambda x: vjp_weighted(f, x, weights))(x)
    np.testing.assert_allclose(np.asarray(y), ref(MATRIX), rtol=1e-12)
    expected = fd_grad(lambda x: np.sum(ref(x) * weights), MATRIX)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6, atol=1e-7)


def test_softmax_sums_to_one_along_the_given_axis():
    x = jnp.asarray(MATRIX, jnp.float32)
    np.testing.assert_allclose(np.asarray(fx.softmax(x).sum(-1)), np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fx.softmax(x, axis=0).sum(0)), np.ones(4), rtol=1e-6)
    assert not np.allclose(np.asarray(fx.softmax(x).sum(0)), 1)


def test_softmax_with_plus_inf_puts_all_mass_on_the_inf_entries():
    x = jnp.array([[1.0, jnp.inf, 2.0], [jnp.inf, jnp.inf, 0.0], [-1.0, 0.0, 1.0]])
    y = np.asarray(fx.softmax(x))
    np.testing.assert_array_equal(y[0], [0, 1, 0])
    np.testing.assert_array_equal(y[1], [0.5, 0.5, 0])
    np.testing.assert_allclose(y[2], np.exp(np_logsoftmax(np.array([-1.0, 0, 1]), -1)), 1e-6)
    grad = jax.grad(lambda x: jnp.sum(fx.softmax(x) * jnp.arange(3.0)))(x)
    assert np.isfinite(np.asarray(grad)).all()


def test_softmax_of_integers_is_float():
    assert fx.softmax(jnp.array([1, 2, 3])).dtype == jnp.float32
    assert fx.sigmoid(jnp.array([0, 1])).dtype == jnp.float32


def test_spec_edge_values():
    # hardσ is NNlib >= 0.7.10's clamp((x+3)/6, 0, 1), not the old clamp(0.2x + 0.5, 0, 1)
    assert float(fx.hardsigmoid(jnp.array(1.0))) == pytest.approx(4 / 6)
    # leakyrelu is x > 0 ? x : a·x, so a > 1 does not pick max(a·x, x)
    assert float(fx.leakyrelu(jnp.array(-1.0), 2.0)) == -2.0
    assert np.isnan(float(fx.relu(jnp.array(jnp.nan))))
    assert float(jax.grad(fx.relu)(0.0)) == 0.0
    assert float(fx.trelu(jnp.array(1.0))) == 0.0
    assert float(fx.gelu(jnp.array(1.0))) != pytest.approx(float(fx.gelu_erf(jnp.array(1.0))))
    assert float(fx.softplus(jnp.array(100.0))) == 100.0
    assert float(fx.logsigmoid(jnp.array(-100.0))) == -100.0
    assert float(fx.logcosh(jnp.array(100.0))) == pytest.approx(100 - math.log(2))
    assert float(fx.sigmoid(jnp.array(-80.0))) > 0


def test_logsumexp_handles_large_values_and_infinities():
    assert float(fx.logsumexp(jnp.array([1000.0, 1000.0]))) == pytest.approx(1000 + math.log(2))
    assert float(fx.logsumexp(jnp.array([-jnp.inf, 0.0]))) == 0.0


GREEK = {"σ": "sigmoid", "hardσ": "hardsigmoid", "logσ": "logsigmoid"}


@pytest.mark.parametrize("name", activations.__all__)
def test_public_names_are_plain_documented_functions(name):
    f = getattr(fx, name)
    assert f is getattr(activations, name)
    assert f.__name__ == GREEK.get(name, name)
    assert ">>>" in f.__doc__


@pytest.mark.parametrize("alias, name", GREEK.items())
def test_greek_aliases_are_the_same_objects(alias, name):
    assert getattr(fx, alias) is getattr(fx, name)


def test_activation_works_under_jit_and_vmap():
    x = jnp.asarray(MATRIX, jnp.float32)
    np.testing.assert_allclose(jax.jit(fx.gelu)(x), fx.gelu(x), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(fx.softmax)(x), fx.softmax(x), rtol=1e-6)
