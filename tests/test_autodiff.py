"""gradient / withgradient / pullback / jacobian / hessian, Params and Grads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import finite_difference

import fluxjax as fx


def test_explicit_gradient_is_a_tuple_per_argument(x64):
    f = lambda a, b: jnp.sum(jnp.sin(a) * b)  # noqa: E731
    a, b = np.array([0.3, -1.2]), np.array([2.0, 0.5])
    ga, gb = fx.gradient(f, jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(ga, finite_difference(lambda a: f(a, b), a), rtol=1e-7)
    np.testing.assert_allclose(gb, finite_difference(lambda b: f(a, b), b), rtol=1e-7)


def test_forward_mode_agrees_with_reverse_mode(x64):
    f = lambda x, y: jnp.sum(jnp.tanh(x) ** 2 * y)  # noqa: E731
    x, y = jnp.array([0.1, 0.7, -2.0]), jnp.array([1.0, 2.0, 3.0])
    for r, fw in zip(fx.gradient(f, x, y), fx.gradient(f, x, y, mode="forward")):
        np.testing.assert_allclose(r, fw, rtol=1e-12)
    m = fx.Dense(jnp.array([[1.5, -0.5]]), jnp.array([0.2]))
    ps = fx.params(m)
    loss = lambda: jnp.sum(m(jnp.array([[1.0, 2.0]])) ** 2)  # noqa: E731
    rev, fwd = fx.gradient(loss, ps), fx.gradient(loss, ps, mode="forward")
    for p in ps:
        np.testing.assert_allclose(rev[p], fwd[p], rtol=1e-12)


def test_withgradient_auxiliary_output():
    val, (g,) = fx.withgradient(lambda x: (jnp.sum(x**2), "aux"), jnp.array([1.0, 3.0]))
    assert val[1] == "aux" and float(val[0]) == 10.0
    np.testing.assert_allclose(g, [2.0, 6.0])


def test_non_scalar_output_is_a_clear_error():
    with pytest.raises(TypeError, match="real scalar.*jacobian"):
        fx.gradient(lambda x: x * 2, jnp.ones(3))


def test_pullback_and_jacobian_and_hessian(x64):
    f = lambda x: jnp.stack([x[0] * x[1], jnp.sin(x[2]), x[0] ** 2])  # noqa: E731
    x = np.array([1.0, 2.0, 0.5])
    y, back = fx.pullback(f, jnp.asarray(x))
    (gx,) = back(jnp.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(gx, [2.0, 1.0, 0.0])
    (j,) = fx.jacobian(f, jnp.asarray(x))
    fd = np.stack([finite_difference(lambda z, k=k: f(jnp.asarray(z))[k], x) for k in range(3)])
    np.testing.assert_allclose(j, fd, rtol=1e-6, atol=1e-9)
    h = fx.hessian(lambda z: z[0] ** 2 * z[1] + jnp.sin(z[2]), jnp.asarray(x))
    expected = np.array([[2 * x[1], 2 * x[0], 0], [2 * x[0], 0, 0], [0, 0, -np.sin(x[2])]])
    np.testing.assert_allclose(h, expected, rtol=1e-12)


def test_params_order_add_remove_and_one_layer():
    m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    ps = fx.params(m)
    assert [p.shape for p in ps] == [(4, 1), (4,), (1, 4), (1,)]
    assert ps[0] is m[0].weight and m[1].bias in ps
    one = fx.params(m[1])
    assert len(one) == 2 and m[0].weight not in one
    one.add(m[0].weight)  # Flux's push!
    assert len(one) == 3 and m[0].weight in one
    one.add(m[0].weight)  # a set: no duplicate
    assert len(one) == 3
    one.remove(m[1])  # Flux's delete!
    assert [p.shape for p in one] == [(4, 1)]
    one.remove(m[0].weight)
    assert len(one) == 0
    one.add(m[0])
    assert len(one) == 2
    with pytest.raises(ValueError, match="not held by any fluxjax module"):
        fx.params(jnp.ones(3))


def test_tied_weights_appear_once():
    a, b = fx.Dense(2, 2), fx.Dense(2, 2)
    b.weight = a.weight
    ps = fx.params(fx.Chain(a, b))
    assert len(ps) == 3  # shared weight once, two biases


def test_implicit_gradient_matches_explicit_and_finite_differences(x64):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 1))
    m = fx.Chain(fx.Dense(jnp.asarray(w1), True, fx.sigmoid), fx.Dense(jnp.ones((1, 4))))
    x, y = jnp.linspace(0, 1, 5).reshape(-1, 1), jnp.ones((5, 1))
    gs = fx.gradient(lambda: fx.mse(m(x), y), fx.params(m))
    (g,) = fx.gradient(lambda m: fx.mse(m(x), y), m)
    np.testing.assert_allclose(gs[m[0].weight], g[0].weight, rtol=1e-12)

    def f(w):
        mm = fx.Chain(fx.Dense(jnp.asarray(w), True, fx.sigmoid), fx.Dense(jnp.ones((1, 4))))
        return fx.mse(mm(x), y)

    np.testing.assert_allclose(gs[m[0].weight], finite_difference(f, w1), rtol=1e-6)


def test_unused_parameters_get_zero_gradients():
    m = fx.Chain(fx.Dense(1, 2), fx.Dense(2, 1))
    gs = fx.gradient(lambda: m[0](jnp.ones((1, 1))).sum(), fx.params(m))
    np.testing.assert_array_equal(gs[m[1].weight], 0)
    assert gs[m[1].weight].shape == (1, 2)


def test_grads_arithmetic_and_iteration():
    m = fx.Dense(jnp.array([[2.0]]), jnp.array([1.0]))
    ps = fx.params(m)
    g1 = fx.gradient(lambda: m(jnp.array([[3.0]])).sum(), ps)
    g2 = fx.gradient(lambda: (2 * m(jnp.array([[1.0]]))).sum(), ps)
    s = g1 + g2
    np.testing.assert_allclose(s[m.weight], [[5.0]])
    np.testing.assert_allclose((g1 - g2)[m.bias], [-1.0])
    np.testing.assert_allclose((0.5 * g1)[m.weight], [[1.5]])
    assert [g.shape for g in g1] == [(1, 1), (1,)]
    assert len(g1) == 2 and m.weight in g1
    with pytest.raises(KeyError, match="not in these Params"):
        g1[jnp.ones(1)]


def test_no_tracer_leaks_when_the_function_raises():
    m = fx.Dense(1, 1)
    before = m.weight

    def bad():
        m(jnp.ones((1, 1)))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fx.gradient(bad, fx.params(m))
    assert m.weight is before and not isinstance(m.weight, jax.core.Tracer)


def test_complex_gradients_follow_zygote(x64):
    """For a real loss of z = x + iy, Zygote's gradient is ∂L/∂x + i·∂L/∂y (Flux#1776)."""
    z0 = np.array([0.3 - 1.2j, 2.0 + 0.5j])
    c = np.array([1.5 + 0.5j, -0.7 + 2.0j])

    def loss(z):
        return jnp.sum(jnp.abs(c * z - 1.0) ** 2) + jnp.sum(jnp.real(z) ** 3)

    def on_parts(v):  # the loss of the real vector (x, y)
        return loss(v[:2] + 1j * v[2:])

    fd = finite_difference(on_parts, np.concatenate([z0.real, z0.imag]))
    expected = fd[:2] + 1j * fd[2:]
    np.testing.assert_allclose(fx.gradient(loss, jnp.asarray(z0))[0], expected, rtol=1e-7)
    m = fx.Dense(jnp.asarray(z0.reshape(1, 2)), False)
    gs = fx.gradient(lambda: loss(m.weight[0]), fx.params(m))
    np.testing.assert_allclose(gs[m.weight][0], expected, rtol=1e-7)
    _, back = fx.pullback(loss, jnp.asarray(z0))
    np.testing.assert_allclose(back(1.0)[0], expected, rtol=1e-7)
    # a holomorphic map: Zygote's pullback of y = c·z gives conj(c)·ȳ
    _, back = fx.pullback(lambda z: c * z, jnp.asarray(z0))
    ybar = np.array([1.0 - 2.0j, 0.5j])
    np.testing.assert_allclose(back(jnp.asarray(ybar))[0], np.conj(c) * ybar, rtol=1e-12)
