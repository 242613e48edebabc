"""Flux's test/layers/basic.jl, translated for the layers fluxjax has (Dense, Chain).

The stored file is the one from the v0.12/v0.13 boundary (``Dense(10 => 5)`` beside
``Dense(10, 5)``); ``Dense(in => out)`` is written ``Dense(in, out)``. Observations are rows:
Flux's ``(10, 2)`` input is ``(2, 10)`` here, a ``(10, 2, 3)`` one ``(3, 2, 10)``, and
``W * x`` is ``x @ W.T``. ``DimensionMismatch`` and ``MethodError`` become fluxjax's
``ValueError``/``TypeError`` naming the layer and shapes. Flux's ``init = ones`` is
``fx.ones32`` (fluxjax calls ``init(out, in)``).

The layers after Dense (v0.12.9's "Diagonal" as ``Scale``, Maxout, SkipConnection,
Bilinear, Parallel, Embedding) are at the end. Left out: Diagonal's broadcasting of a
shorter input (``Diagonal(10)(1)``, ``Diagonal(2, 3)(rand(2, 1, 4))``: ``Scale`` asks for
its exact trailing shape, a clear error), Parallel's "Input domain" case (a user type
multiplied into arrays: Julia dispatch), PairwiseFusion, the Conv case of "second
derivatives"; ``==`` of layers by structure and ``destructure`` in "gradients of
Chain{Vector}".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax.layers.basic import activations


def _randn(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- "helpers" / "activations" ------------------------------------------------------------------


def test_helpers_activations(x64):
    dummy_model = fx.Chain(lambda x: x**2, lambda x: x - 3, lambda x: jnp.tan(x))
    x = _randn(10)
    out = activations(dummy_model, x)
    np.testing.assert_array_equal(out[0], x**2)
    np.testing.assert_array_equal(out[1], x**2 - 3)
    np.testing.assert_allclose(out[2], np.tan(x**2 - 3), rtol=1e-12)
    assert activations(fx.Chain(), x) == ()
    assert activations(fx.Chain(lambda x: x, lambda x: "foo"), x)[1] == "foo"  # any type


# -- "Chain" ------------------------------------------------------------------------------------


def test_chain():
    fx.Chain(fx.Dense(10, 5, fx.σ), fx.Dense(5, 2))(_randn(10, dtype=np.float32))  # no warning
    with pytest.raises(ValueError, match=r"Dense\(2 => 1\).*5"):
        fx.Chain(fx.Dense(10, 5, fx.σ), fx.Dense(2, 1))(_randn(10, dtype=np.float32))
    # numeric test should be put into testset of corresponding layer
    fx.Chain([fx.Dense(10, 5, fx.σ), fx.Dense(5, 2)])(_randn(10, dtype=np.float32))  # a list
    c = fx.Chain(fx.Dense(10, 5, fx.σ), fx.Dense(5, 2), fx.Dense(2, 1, fx.relu))
    assert c[0] is c.layers[0]  # c[1] == c[begin]
    assert c[2] is c[-1]  # c[3] == c[end]


def test_activations_gradient():
    c = fx.Chain(fx.Dense(3, 5, fx.relu), fx.Dense(5, 1, fx.relu))
    x = np.ones(3, np.float32)
    gs = fx.gradient(lambda: activations(c, x)[1][0], fx.params(c))  # no warning
    assert len(gs) == 4


# -- "Dense" ------------------------------------------------------------------------------------


def test_dense_constructors(x64):
    assert fx.Dense(10, 100).weight.shape == (100, 10)
    assert fx.Dense(10, 100).bias.shape == (100,)
    assert fx.Dense(_randn(100, 10), _randn(100)).act(2.5) == 2.5  # identity
    assert fx.Dense(_randn(100, 10)).act(2.5) == 2.5
    assert fx.Dense(_randn(100, 10), False).act(2.5) == 2.5
    assert fx.Dense(_randn(100, 10), False, jnp.tanh).act is jnp.tanh
    assert fx.Dense(_randn(100, 10), _randn(100)).act(-1.0) == -1.0
    # creates matching type / converts to match
    assert fx.Dense(_randn(100, 10, dtype=np.float16), True).bias.dtype == jnp.float16
    assert fx.Dense(_randn(100, 10, dtype=np.float16), _randn(100)).bias.dtype == jnp.float16

    def randn(*dims):  # Base.randn: Float64
        return jnp.asarray(_randn(*dims))

    assert fx.Dense(3, 4, init=randn, bias=True).bias.dtype == jnp.float64
    assert fx.Dense(3, 4, init=randn, bias=np.array([1, 2, 3, 4])).bias.dtype == jnp.float64

    with pytest.raises(TypeError, match="output size must be an int"):
        fx.Dense(10, 10.5)
    with pytest.raises(TypeError, match="output size must be an int"):
        fx.Dense(10, 10.5, jnp.tanh)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        fx.Dense(3, 4, bias=_randn(5))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        fx.Dense(_randn(4, 3), _randn(5))
    for args in [(_randn(5),), (_randn(5), _randn(5)), (_randn(5), _randn(5), jnp.tanh)]:
        with pytest.raises(ValueError, match="matrix"):
            fx.Dense(*args)


def test_dense_dimensions():
    x10 = _randn(10, dtype=np.float32)
    assert len(fx.Dense(10, 5)(x10)) == 5
    with pytest.raises(ValueError, match=r"Dense\(10 => 5\)"):
        fx.Dense(10, 5)(_randn(1, dtype=np.float32))
    with pytest.raises(ValueError, match=r"Dense\(10 => 5\)"):
        fx.Dense(10, 5)(1)  # avoid broadcasting
    assert fx.Dense(10, 5)(_randn(10)).shape == (5,)
    assert fx.Dense(10, 5)(_randn(2, 10)).shape == (2, 5)
    assert fx.Dense(10, 5)(_randn(3, 2, 10)).shape == (3, 2, 5)
    assert fx.Dense(10, 5)(_randn(4, 3, 2, 10)).shape == (4, 3, 2, 5)
    with pytest.raises(ValueError, match=r"Dense\(10 => 5\)"):
        fx.Dense(10, 5)(_randn(3, 2, 11))


def test_dense_zeros():
    ones = np.ones
    np.testing.assert_array_equal(fx.Dense(10, 1, init=fx.ones32)(ones((1, 10))), 10 * ones((1, 1)))
    np.testing.assert_array_equal(fx.Dense(10, 1, init=fx.ones32)(ones((2, 10))), 10 * ones((2, 1)))
    np.testing.assert_array_equal(fx.Dense(10, 2, init=fx.ones32)(ones((1, 10))), 10 * ones((1, 2)))
    x = np.stack([ones(10), 2 * ones(10)])  # [ones(10,1) 2*ones(10,1)] as rows
    np.testing.assert_array_equal(fx.Dense(10, 2, init=fx.ones32)(x), [[10, 10], [20, 20]])
    d = fx.Dense(10, 2, init=fx.ones32, bias=False)
    np.testing.assert_array_equal(d(x), [[10, 10], [20, 20]])


def test_dense_type_matching():
    d1 = fx.Dense(2, 3)
    d2 = fx.Dense(d1.weight, False)
    w = np.asarray(d1.weight, np.float64)
    x1 = _randn(4, 2, dtype=np.float32)
    np.testing.assert_allclose(d1(x1), x1 @ w.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2(x1), x1 @ w.T, rtol=1e-5, atol=1e-6)
    x2 = x1.astype(np.float64)
    np.testing.assert_allclose(d1(x2), x2 @ w.T, rtol=1e-5, atol=1e-6)
    assert d1(x2).dtype == jnp.float32  # tests _match_eltype
    assert d2(x2).dtype == jnp.float32
    x3 = np.random.default_rng(1).integers(-5, 6, (4, 2))
    np.testing.assert_allclose(d1(x3), x3 @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d2(x3), x3 @ w.T, rtol=1e-5, atol=1e-5)
    x4 = np.random.default_rng(2).random((4, 2)) < 0.5
    np.testing.assert_allclose(d1(x4), x4 @ w.T, rtol=1e-5, atol=1e-6)
    x5 = fx.onehotbatch(np.random.default_rng(3).random(5) < 0.5, [True, False])  # (5, 2)
    np.testing.assert_allclose(d1(x5), np.asarray(x5, np.float64) @ w.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2(x5), np.asarray(x5, np.float64) @ w.T, rtol=1e-5, atol=1e-6)


# -- "second derivatives" -------------------------------------------------------------------------


def _fd_hessian(f, x, h=1e-5):
    """Central differences of the gradient (float64), an independent reference."""
    g = jax.grad(f)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(g(x + e)) - np.asarray(g(x - e))) / (2 * h))
    return np.stack(cols, axis=1)


def test_second_derivatives(x64):
    m1 = fx.f64(fx.Chain(fx.Dense(3, 4, jnp.tanh, bias=False), fx.Dense(4, 2)))
    x = np.array([1.0, 2.0, 3.0])

    def f1(v):
        return jnp.sum(m1(v))

    h1 = np.asarray(fx.hessian(f1, x))
    np.testing.assert_allclose(h1, _fd_hessian(f1, x), rtol=1e-6, atol=1e-8)
    m1v = fx.Chain([m1[0], m1[1]])  # vector of layers

    def f1v(v):
        return jnp.sum(m1v(v))

    np.testing.assert_allclose(np.asarray(fx.hessian(f1v, x)), h1, rtol=1e-12)
    # NNlib's softmax gradient writes in-place: @test_broken in Flux; JAX has no such issue
    m2 = fx.f64(fx.Chain(fx.Dense(3, 4, jnp.tanh), fx.Dense(4, 2), fx.softmax))

    def f2(v):
        return jnp.sum(m2(v) * jnp.array([1.0, 2.0]))  # sum∘m2 is constant 1: weight it

    np.testing.assert_allclose(
        np.asarray(fx.hessian(f2, x)), _fd_hessian(f2, x), rtol=1e-5, atol=1e-8
    )


def test_gradients_of_chain_vector():
    m1 = fx.Chain(fx.Dense(3, 4, jnp.tanh, bias=False), fx.Dense(4, 2))
    m1v = fx.Chain([m1[0], m1[1]])
    assert sum(p.size for p in fx.params(m1)) == sum(p.size for p in fx.params(m1v))
    x1 = _randn(5, 3, dtype=np.float32)
    np.testing.assert_allclose(m1(x1), m1v(x1), rtol=1e-6)
    y1 = np.random.default_rng(4).random((5, 2)) < 0.5
    g1 = fx.gradient(lambda: fx.logitcrossentropy(m1(x1), y1), fx.params(m1))
    g1v = fx.gradient(lambda: fx.logitcrossentropy(m1v(x1), y1), fx.params(m1v))
    np.testing.assert_allclose(g1[m1[0].weight], g1v[m1v[0].weight], rtol=1e-6)
    np.testing.assert_allclose(g1[m1[1].bias], g1v[m1v[1].bias], rtol=1e-6)


# -- "Diagonal" (Scale) ------------------------------------------------------------------------


def test_diagonal_as_scale():
    assert fx.Scale(10)(_randn(10, dtype=np.float32)).shape == (10,)
    with pytest.raises(ValueError, match="Scale"):
        fx.Scale(10)(_randn(2, dtype=np.float32))
    assert np.array_equal(fx.Scale(2)(np.array([[1.0, 2.0]])), [[1.0, 2.0]])
    assert np.array_equal(fx.Scale(2)(np.array([1.0, 2.0])), [1.0, 2.0])
    assert np.array_equal(fx.Scale(2)(np.array([[1.0, 3.0], [2.0, 4.0]])), [[1, 3], [2, 4]])
    x = np.random.default_rng(0).random((4, 3, 2)).astype(np.float32)  # Flux's (2, 3, 4)
    assert (
        fx.Scale(2)(x).shape == fx.Scale(3, 2)(x).shape == fx.Scale(4, 3, 2)(x).shape == (4, 3, 2)
    )


# -- "Maxout" ----------------------------------------------------------------------------------


def test_maxout():
    x = np.random.default_rng(0).random(40).astype(np.float32)
    assert np.array_equal(fx.Maxout(lambda: lambda v: v, 4)(x), x)
    assert np.array_equal(fx.Maxout(lambda v: v, lambda v: 2 * v, lambda v: 0.5 * v)(x), 2 * x)
    mo = fx.Maxout(lambda v: v * np.array([0.5, 0.1]), lambda v: v * np.array([0.2, 0.7]))
    inp = np.array([[3.0], [2.0]])  # Flux's 1×2 row: two observations
    np.testing.assert_allclose(mo(inp), np.array([[0.5, 0.7]]) * inp, rtol=1e-6)
    assert len(fx.params(fx.Maxout(lambda: fx.Dense(32, 64), 4))) == 8


# -- "SkipConnection" --------------------------------------------------------------------------


def test_skipconnection():
    x = _randn(10, 10, 10, 10)
    assert np.array_equal(fx.SkipConnection(lambda v: np.zeros(v.shape), lambda a, b: a + b)(x), x)
    x = _randn(2, 10, dtype=np.float32)
    cat = fx.SkipConnection(fx.Dense(10, 10), lambda a, b: jnp.concatenate([a, b], 0))
    assert cat(x).shape == (4, 10)


# -- "Bilinear" --------------------------------------------------------------------------------


def test_bilinear():
    x = _randn(9, 10, dtype=np.float32)
    assert fx.SkipConnection(fx.Dense(10, 10), fx.Bilinear(10, 10, 5))(x).shape == (9, 5)
    b = fx.Bilinear(10, 2, 3)
    out = b(np.zeros((9, 10), np.float32), np.zeros((9, 2), np.float32))
    assert out.shape == (9, 3) and float(jnp.sum(out**2)) == 0.0
    x = _randn(7, 11, dtype=np.float32)
    b = fx.Bilinear(11, 11, 3)
    assert b(x).shape == (7, 3)
    fx.gradient(lambda: jnp.sum(b(x) ** 2), fx.params(b))  # no warning (warnings are errors)


def test_bilinear_constructors(x64):
    b1 = fx.Bilinear(_randn(3, 4, 5))
    assert b1.bias.dtype == jnp.float64 and b1.act(2.5) == 2.5
    assert fx.Bilinear(_randn(3, 4, 5), False).bias is None
    b3 = fx.Bilinear(_randn(3, 4, 5, dtype=np.float16), True, jnp.tanh)
    assert b3.act is jnp.tanh and b3.bias.dtype == jnp.float16
    assert b3(np.random.default_rng(1).random(4), np.random.default_rng(2).random(5)).shape == (3,)
    with pytest.raises(ValueError, match="out, in1, in2"):
        fx.Bilinear(np.random.default_rng(0).random(3))
    with pytest.raises(ValueError, match="out, in1, in2"):
        fx.Bilinear(np.random.default_rng(0).random((3, 4)), False, jnp.tanh)
    with pytest.raises(ValueError, match="bias"):
        fx.Bilinear(_randn(3, 4, 5), _randn(6), jnp.tanh)


# -- "Parallel" --------------------------------------------------------------------------------


def test_parallel():
    x = _randn(10, 10, 10, 10)
    assert np.array_equal(
        fx.Parallel(lambda a, b: a + b, lambda v: np.zeros(v.shape), lambda v: v)(x), x
    )
    x = _randn(2, 10, dtype=np.float32)
    cat = lambda a, b: jnp.concatenate([a, b], 0)  # noqa: E731 (Flux's hcat on columns)
    assert fx.Parallel(cat, fx.Dense(10, 10), lambda v: v)(x).shape == (4, 10)
    assert fx.Parallel(cat, one=fx.Dense(10, 10), two=lambda v: v)(x).shape == (4, 10)
    ins = (_randn(10, dtype=np.float32), _randn(5, dtype=np.float32), _randn(4, dtype=np.float32))
    add = lambda *a: sum(a)  # noqa: E731
    assert fx.Parallel(add, fx.Dense(10, 2), fx.Dense(5, 2), fx.Dense(4, 2))(ins).shape == (2,)
    assert fx.Parallel(add, a=fx.Dense(10, 2), b=fx.Dense(5, 2), c=fx.Dense(4, 2))(ins).shape == (
        2,
    )
    m = fx.Parallel(cat, one=fx.Dense(10, 10), two=lambda v: v)
    assert m[0] is m["one"] is m.one
    with pytest.raises(ValueError, match="reserves"):
        fx.Parallel(cat, layers=fx.Dense(10, 10), two=lambda v: v)
    with pytest.raises(ValueError, match="reserves"):
        fx.Parallel(cat, connection=fx.Dense(10, 10), two=lambda v: v)


# -- "Embedding" -------------------------------------------------------------------------------


def test_embedding():
    m = fx.Embedding(10, 4)
    assert m.weight.shape == (4, 10)
    x = np.random.default_rng(0).integers(0, 10, 3)
    y = m(x)
    assert y.dtype == jnp.float32 and y.shape == (3, 4)
    np.testing.assert_allclose(y, np.asarray(m.weight)[:, x].T)
    y2 = m(fx.onehotbatch(x, range(10)))
    assert y2.dtype == jnp.float32
    np.testing.assert_allclose(y2, y, rtol=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        m(fx.onehotbatch(x, range(1000)))
    assert m(np.random.default_rng(1).integers(0, 10, (4, 3))).shape == (4, 3, 4)
    np.testing.assert_allclose(m(2), np.asarray(m.weight)[:, 2])
    np.testing.assert_allclose(m(fx.onehot(3, range(10))), np.asarray(m.weight)[:, 3], rtol=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        m(fx.onehot(3, range(1000)))
