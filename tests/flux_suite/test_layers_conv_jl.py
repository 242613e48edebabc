"""Flux v0.12.9's test/layers/conv.jl, translated.

Arrays are channels-last with observations first: Flux's ``(W, H, C, N)`` input is
``(N, H, W, C)`` here and its kernel sizes are given in our spatial order; ``cin => cout`` is
``cin, cout``. Flux's ``maxpool(x, PoolDims(x, k))`` is ``MaxPool(k)`` on the same data;
``@test_throws AssertionError``/``DimensionMismatch`` become ``ValueError``. ``Flux.Zeros``
(v0.12's absent bias) is ``None``. ``_channels_in``/``_channels_out`` are read from the repr
and the weight shapes. Left out: the ``cpu``/``f32`` mappings of "No bias" (no devices to
map between here: ``fx.f32`` is checked), ``dilation = k ÷ 2`` for ``k = 1`` (Flux passes
dilation 0, which fluxjax refuses: 1 is used).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


def Z(*shape):  # noqa: N802 (an initialiser, named like Flux's)
    return np.zeros(shape, np.float32)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_pooling():
    x = np.random.default_rng(0).standard_normal((2, 10, 10, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((2, 20, 20, 3)).astype(np.float32)
    assert np.array_equal(fx.AdaptiveMaxPool((5, 5))(x), fx.MaxPool((2, 2))(x))
    assert np.array_equal(fx.AdaptiveMeanPool((5, 5))(x), fx.MeanPool((2, 2))(x))
    assert np.array_equal(fx.AdaptiveMaxPool((10, 5))(y), fx.MaxPool((2, 4))(y))
    assert np.array_equal(fx.AdaptiveMeanPool((10, 5))(y), fx.MeanPool((2, 4))(y))
    assert fx.GlobalMaxPool()(x).shape == (2, 1, 1, 3)
    assert fx.GlobalMeanPool()(x).shape == (2, 1, 1, 3)


def test_cnn_and_bias_switch():
    r = np.zeros((5, 28, 28, 1), np.float32)
    m = fx.Chain(
        fx.Conv((2, 2), 1, 16, fx.relu), fx.MaxPool((2, 2)), fx.Conv((2, 2), 16, 8, fx.relu),
        fx.MaxPool((2, 2)), fx.flatten, fx.Dense(288, 10), fx.softmax,
    )  # fmt: skip
    assert m(r).shape == (5, 10)
    bias = fx.Conv(np.ones((2, 2, 1, 3), np.float32), np.ones(3, np.float32))
    op = bias(np.zeros((1, 28, 28, 1), np.float32))
    assert float(jnp.sum(op)) == op.size


@pytest.mark.parametrize("lmap", [lambda m: m, fx.f32])
def test_no_bias_mapped(lmap):
    ip = np.zeros((1, 28, 28, 1), np.float32)
    bias = lmap(fx.Conv((2, 2), 1, 3, bias=False))
    assert float(jnp.sum(bias(ip))) == 0.0
    gs = fx.gradient(lambda: jnp.sum(bias(ip)), fx.params(bias))
    assert bias.bias is None and len(gs) == 1


def test_train_without_bias_does_not_converge():
    bias = fx.Conv((2, 2), 1, 3, bias=False)
    ip = np.zeros((1, 28, 28, 1), np.float32)
    op = np.zeros((1, 27, 27, 3), np.float32) + 2
    loss = lambda x, y: fx.mse(bias(x), y)  # noqa: E731
    fx.train(loss, fx.params(bias), [(ip, op)] * 1000, fx.Descent())
    assert float(fx.mse(bias(ip), op)) == pytest.approx(4.0)


@pytest.mark.parametrize(
    "k,shape,wshape,out",
    [((3,), (2, 28, 100), (3, 20, 25), (2, 26, 25)),
     ((3, 3), (2, 28, 28, 100), (3, 3, 20, 25), (2, 26, 26, 25)),
     ((3, 4, 5), (2, 10, 11, 12, 100), (3, 4, 5, 20, 25), (2, 8, 8, 8, 25))],
)  # fmt: skip
def test_grouped_conv(k, shape, wshape, out):
    c = fx.Conv(k, 100, 25, groups=5)
    assert c.weight.shape == wshape
    assert c(np.ones(shape, np.float32)).shape == out


def test_channels_in_and_out():
    """(NumPy zeros as init: only the shapes matter, and each new shape would compile the
    default initialiser again.)"""
    ins = lambda m: m._cin()  # noqa: E731
    outs = lambda m: m._cout(m.weight, m.groups)  # noqa: E731
    for k in [(3,), (5, 6), (1, 2, 3)]:
        assert (ins(fx.Conv(k, 2, 4, init=Z)), outs(fx.Conv(k, 2, 4, init=Z))) == (2, 4)
    cases = [((3,), 1), ((5, 6), 2), ((1, 2, 3), 3)]
    assert [ins(fx.ConvTranspose(k, c, 4, init=Z)) for k, c in cases] == [1, 2, 3]
    assert [outs(fx.ConvTranspose(k, 2, c, init=Z)) for k, c in cases] == [1, 2, 3]
    assert ins(fx.ConvTranspose((6,), 8, 4, groups=4, init=Z)) == 8
    assert ins(fx.ConvTranspose((5, 6), 2, 4, groups=2, init=Z)) == 2
    assert ins(fx.ConvTranspose((1, 2, 3), 3, 6, groups=3, init=Z)) == 3
    assert outs(fx.ConvTranspose((1,), 10, 15, groups=5, init=Z)) == 15
    assert outs(fx.ConvTranspose((3, 2), 10, 15, groups=5, init=Z)) == 15
    assert outs(fx.ConvTranspose((5, 6), 2, 2, groups=2, init=Z)) == 2
    rng = np.random.default_rng(0)
    for layer in (fx.Conv, fx.ConvTranspose):
        for _ in range(10):
            groups = int(rng.integers(1, 11))
            k = tuple(int(v) for v in rng.integers(1, 6, size=int(rng.integers(1, 4))))
            cin, cout = int(rng.integers(1, 6)) * groups, int(rng.integers(1, 6)) * groups
            m = layer(k, cin, cout, groups=groups, init=Z)
            assert (ins(m), outs(m)) == (cin, cout)
            assert f"{cin} => {cout}" in repr(m)


def test_asymmetric_padding():
    # Flux's pad=(0,1,1,2) pads W by (0, 1) and H by (1, 2); here (H, W): (1, 2, 0, 1)
    r = np.ones((1, 28, 28, 1), np.float32)
    m = fx.Conv((3, 3), 1, 1, fx.relu, pad=(1, 2, 0, 1))
    m.weight = np.ones((3, 3, 1, 1), np.float32)
    y = np.asarray(m(r))[0, :, :, 0].T  # back to Flux's (W, H) indexing
    assert y.shape == (27, 29)
    assert (y[0, 0], y[1, 1], y[-1, 0], y[0, -1], y[0, -2], y[-1, -1]) == (6, 9, 4, 3, 6, 2)


def test_depthwise_conv():
    r = np.zeros((5, 28, 28, 3), np.float32)
    assert fx.DepthwiseConv((2, 2), 3, 15)(r).shape[-1] == 15
    assert fx.DepthwiseConv((2, 3), 3, 9)(r).shape[-1] == 9
    assert fx.DepthwiseConv((2, 3), 3, 9, bias=False)(r).shape[-1] == 9
    with pytest.raises(ValueError, match="divisible"):
        fx.DepthwiseConv((2, 2), 3, 10)


def test_conv_transpose():
    x = np.zeros((1, 5, 5, 1), np.float32)
    y = fx.Conv((3, 3), 1, 1)(x)
    assert fx.ConvTranspose((3, 3), 1, 1)(y).shape == x.shape
    assert fx.ConvTranspose((3, 3), 1, 1, bias=False)(y).shape == x.shape
    m = fx.ConvTranspose((3, 3), 1, 1)
    assert isinstance(fx.gradient(lambda: jnp.sum(m(x)), fx.params(m)), fx.Grads)
    x = np.zeros((4, 5, 5, 2), np.float32)
    m = fx.ConvTranspose((3, 3), 2, 3)
    assert isinstance(fx.gradient(lambda: jnp.sum(m(x)), fx.params(m)), fx.Grads)
    x = np.random.default_rng(0).standard_normal((3, 10, 10, 2)).astype(np.float32)
    m1 = fx.ConvTranspose((3, 3), 2, 4, pad=fx.SamePad())
    assert m1.weight.shape == (3, 3, 4, 2) and m1(x).shape == (3, 10, 10, 4)
    m2 = fx.ConvTranspose((3, 3), 2, 4, groups=2, pad=fx.SamePad())
    assert m2.weight.shape == (3, 3, 2, 2) and m2(x).shape == m1(x).shape
    assert isinstance(fx.gradient(lambda: jnp.sum(m2(x)), fx.params(m2)), fx.Grads)
    m = fx.ConvTranspose((3,), 2, 4, pad=fx.SamePad(), groups=2)
    assert m(np.ones((1, 10, 2), np.float32)).shape == (1, 10, 4) and m.weight.size == 3 * 8 / 2
    m = fx.ConvTranspose((3, 5), 4, 4, pad=fx.SamePad(), groups=4)
    assert m(np.ones((2, 10, 11, 4), np.float32)).shape == (2, 10, 11, 4)
    assert m.weight.size == 15 * 16 / 4
    m = fx.ConvTranspose((3, 5, 3), 3, 6, pad=fx.SamePad(), groups=3)
    assert m(np.ones((2, 10, 11, 12, 3), np.float32)).shape == (2, 10, 11, 12, 6)
    assert m.weight.size == 45 * 18 / 3
    assert "groups=2" in repr(fx.ConvTranspose((3, 3), 2, 4, groups=2))
    assert "2 => 4" in repr(fx.ConvTranspose((3, 3), 2, 4, groups=2))


def test_crosscor():
    x, w = _rand(1, 28, 28, 1), _rand(2, 2, 1, 1, seed=1)
    y = fx.CrossCor(w, np.zeros(1, np.float32))
    assert float(y(x)[0, 0, 0, 0]) == pytest.approx(float(np.sum(w[..., 0] * x[0, :2, :2])))
    r = np.zeros((5, 28, 28, 1), np.float32)
    m = fx.Chain(
        fx.CrossCor((2, 2), 1, 16, fx.relu), fx.MaxPool((2, 2)),
        fx.CrossCor((2, 2), 16, 8, fx.relu, bias=False), fx.MaxPool((2, 2)), fx.flatten,
        fx.Dense(288, 10), fx.softmax,
    )  # fmt: skip
    assert m(r).shape == (5, 10)
    b = np.zeros(1, np.float32)
    assert not np.allclose(y(x), fx.Conv(w, b)(x))
    np.testing.assert_allclose(fx.CrossCor(w[::-1, ::-1].copy(), b)(x), fx.Conv(w, b)(x),
                               rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("k", [(3, 3), (3, 1), (1, 3)])
def test_conv_with_non_quadratic_window_700(k):
    data = np.zeros((1, 7, 7, 1), np.float32)
    data[0, 3, 3, 0] = 1
    layer = fx.Conv(k, 1, 1)
    out = np.asarray(layer(data))[0, :, :, 0]
    expected = np.zeros(out.shape, np.float32)
    kh, kw = k
    r0, c0 = 3 - (kh - 1), 3 - (kw - 1)
    expected[r0 : r0 + kh, c0 : c0 + kw] = np.asarray(layer.weight)[:, :, 0, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    fx.Conv((6, 1), 1, 1, fx.σ)(np.ones((1, 10, 10, 1), np.float32))  # does not throw


KS = [(1,), (2,), (3,), (4, 5), (6, 7, 8)]


@pytest.mark.parametrize("ltype", [fx.Conv, fx.ConvTranspose, fx.DepthwiseConv, fx.CrossCor])
@pytest.mark.parametrize("k", KS)
def test_samepad_kernelsize(ltype, k):
    data = np.ones((1, *(kk + 3 for kk in k), 1), np.float32)
    assert ltype(k, 1, 1, pad=fx.SamePad())(data).shape == data.shape
    dil = tuple(max(kk // 2, 1) for kk in k)
    assert ltype(k, 1, 1, pad=fx.SamePad(), dilation=dil)(data).shape == data.shape
    y = ltype(k, 1, 1, pad=fx.SamePad(), stride=3)(data)
    if ltype is fx.ConvTranspose:
        assert y.shape[1:-1] == tuple(3 * s for s in data.shape[1:-1])
    else:
        assert y.shape[1:-1] == tuple(-(-s // 3) for s in data.shape[1:-1])


@pytest.mark.parametrize("ltype", [fx.MeanPool, fx.MaxPool])
@pytest.mark.parametrize("k", KS)
def test_samepad_windowsize(ltype, k):
    data = np.ones((1, *(kk + 3 for kk in k), 1), np.float32)
    y = ltype(k, pad=fx.SamePad())(data)
    assert y.shape[1:-1] == tuple(-(-s // kk) for s, kk in zip(data.shape[1:-1], k))


def test_bugs_fixed_1421(x64):
    init = lambda *s: np.random.default_rng(0).standard_normal(s)  # noqa: E731 (Base.randn)
    assert fx.Conv((5, 5), 10, 20, init=init).bias.dtype == jnp.float64


@pytest.mark.parametrize("fun", [fx.Conv, fx.CrossCor, fx.ConvTranspose, fx.DepthwiseConv])
def test_constructors(fun, x64):
    rng = np.random.default_rng(0)
    assert fun(rng.random((2, 3, 4))).bias.dtype == jnp.float64
    assert fun(rng.random((2, 3, 4, 5)), False).bias is None
    if fun is fx.Conv:
        assert fun(rng.random((2, 3, 4, 5, 6)), rng.random(6)).bias.dtype == jnp.float64
    elif fun is fx.DepthwiseConv:
        assert fun(rng.random((2, 3, 4, 5, 6)), rng.random(30)).bias.dtype == jnp.float64
    with pytest.raises(ValueError, match="bias"):
        fun(rng.random((2, 3, 4)), rng.random(6))
