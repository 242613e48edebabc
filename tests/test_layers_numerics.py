"""Convolution and pooling against direct NumPy loops and torch.nn.functional; recurrent
cells against their gate equations in NumPy; the fast pooling lowering against the general
one."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fluxjax as fx
from fluxjax.layers import pool


def np_conv(x, w, stride, pad, dilation, groups, flip):
    """Direct loops: x (n, *s, cin), w (*k, cin/g, cout), pad ((lo, hi), ...)."""
    nd = w.ndim - 2
    if flip:
        w = w[(slice(None, None, -1),) * nd]
    x = np.pad(x, ((0, 0), *pad, (0, 0)))
    k, cin_g, cout = w.shape[:nd], w.shape[-2], w.shape[-1]
    cout_g = cout // groups
    out = [(x.shape[1 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out, cout))
    for o in itertools.product(*map(range, out)):
        for c in range(cout):
            g = c // cout_g
            acc = np.zeros(x.shape[0])
            for kk in itertools.product(*map(range, k)):
                pos = tuple(o[i] * stride[i] + kk[i] * dilation[i] for i in range(nd))
                xs = x[(slice(None), *pos, slice(g * cin_g, (g + 1) * cin_g))]
                acc += xs @ w[(*kk, slice(None), c)]
            y[(slice(None), *o, c)] = acc
    return y


def np_pool(x, k, stride, pad, op):
    nd = len(k)
    fill = -np.inf if op == "max" else 0.0
    x = np.pad(x, ((0, 0), *pad, (0, 0)), constant_values=fill)
    out = [(x.shape[1 + i] - k[i]) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for o in itertools.product(*map(range, out)):
        win = x[
            (slice(None), *(slice(o[i] * stride[i], o[i] * stride[i] + k[i]) for i in range(nd)))
        ]
        axes = tuple(range(1, nd + 1))
        y[(slice(None), *o)] = win.max(axes) if op == "max" else win.sum(axes) / np.prod(k)
    return y


GRID = list(itertools.product([1, 2], [0, 1, (1, 0, 2, 1)], [1, 2], [1, 2]))


@pytest.mark.parametrize("stride,pad,dilation,groups", GRID)
@pytest.mark.parametrize("cls", [fx.Conv, fx.CrossCor])
def test_conv2d_against_numpy_loops(cls, stride, pad, dilation, groups):
    fx.seed(0)
    m = cls((3, 2), 4, 6, stride=stride, pad=pad, dilation=dilation, groups=groups)
    x = np.random.default_rng(1).standard_normal((2, 7, 6, 4)).astype(np.float32)
    want = np_conv(x, np.asarray(m.weight), m.stride, m.pad, m.dilation, groups, cls is fx.Conv)
    np.testing.assert_allclose(m(x), want + np.asarray(m.bias), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nd", [1, 3])
def test_conv_1d_3d_against_numpy_loops(nd):
    fx.seed(nd)
    m = fx.Conv((2,) * nd, 2, 3, stride=2, pad=1, dilation=1)
    x = np.random.default_rng(2).standard_normal((2, *(5,) * nd, 2)).astype(np.float32)
    want = np_conv(x, np.asarray(m.weight), m.stride, m.pad, m.dilation, 1, True)
    np.testing.assert_allclose(m(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride,dilation,groups", list(itertools.product([1, 2], [1, 2], [1, 2])))
def test_conv_and_transpose_against_torch(stride, dilation, groups):
    fx.seed(3)
    x = np.random.default_rng(3).standard_normal((2, 7, 8, 4)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    c = fx.CrossCor((3, 3), 4, 6, stride=stride, pad=1, dilation=dilation, groups=groups)
    wt = torch.from_numpy(np.array(c.weight)).permute(3, 2, 0, 1)
    want = F.conv2d(xt, wt, torch.from_numpy(np.array(c.bias)), stride, 1, dilation, groups)
    np.testing.assert_allclose(c(x), want.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)
    # ConvTranspose is the gradient of the flipped convolution: torch's with a flipped kernel
    t = fx.ConvTranspose((3, 3), 4, 6, stride=stride, pad=1, dilation=dilation, groups=groups)
    w = np.flip(np.asarray(t.weight), (0, 1))  # (k, k, cout/g, cin) -> torch (cin, cout/g, k, k)
    wt = torch.from_numpy(w.copy()).permute(3, 2, 0, 1)
    want = F.conv_transpose2d(xt, wt, None, stride, 1, 0, groups, dilation)
    np.testing.assert_allclose(t(x), want.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)


# padding at most half the window (as torch requires), so every case is a valid pooling
POOLS = [
    (k, s, p)
    for k, s, p in itertools.product([(2, 2), (3, 2)], [None, 1, (2, 1)], [0, 1])
    if not (p and min(k) < 2 * p)
]


@pytest.mark.parametrize("k,stride,pad", POOLS)
@pytest.mark.parametrize("op", ["max", "mean"])
def test_pool_against_numpy_loops(op, k, stride, pad):
    layer = (fx.MaxPool if op == "max" else fx.MeanPool)(k, stride=stride, pad=pad)
    x = np.random.default_rng(4).standard_normal((2, 7, 6, 3)).astype(np.float32)
    want = np_pool(x, layer.k, layer.stride, layer.pad, op)
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-6)


def test_pools_against_torch():
    x = np.random.default_rng(5).standard_normal((2, 8, 8, 3)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    for ours, theirs in [
        (fx.MaxPool((2, 2)), F.max_pool2d(xt, 2)),
        (fx.MaxPool((3, 3), pad=1, stride=2), F.max_pool2d(xt, 3, 2, 1)),
        (fx.MeanPool((2, 2)), F.avg_pool2d(xt, 2)),
        (fx.AdaptiveMeanPool((4, 4)), F.adaptive_avg_pool2d(xt, 4)),
        (fx.AdaptiveMaxPool((2, 2)), F.adaptive_max_pool2d(xt, 2)),
    ]:
        np.testing.assert_allclose(ours(x), theirs.permute(0, 2, 3, 1).numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    "shape,k", [((2, 6, 6, 3), (2, 2)), ((2, 7, 5, 2), (3, 2)), ((3, 8, 2), (4,))]
)
def test_fast_pooling_lowering_equals_reduce_window(shape, k):
    """Values and gradients (ties included: integer-valued inputs) equal either way."""
    x = jnp.asarray(np.random.default_rng(6).integers(0, 3, shape).astype(np.float32))
    w = jnp.asarray(
        np.random.default_rng(7).standard_normal(
            (x.shape[0], *[s // kk for s, kk in zip(shape[1:-1], k)], shape[-1])
        ),
        jnp.float32,
    )
    out = {}
    for fast in (True, False):
        pool.FAST[0] = fast
        try:
            for cls in (fx.MaxPool, fx.MeanPool):
                f = lambda x, cls=cls: (cls(k)(x) * w).sum()  # noqa: E731
                out[fast, cls] = (cls(k)(x), jax.grad(f)(x))
        finally:
            pool.FAST[0] = True
    for cls in (fx.MaxPool, fx.MeanPool):
        np.testing.assert_allclose(out[True, cls][0], out[False, cls][0], rtol=1e-6)
        np.testing.assert_array_equal(out[True, cls][1], out[False, cls][1])


def _sig(z):
    return 1 / (1 + np.exp(-z))


def np_lstm(cell, xs, h, c):
    wi, wh, b = (np.asarray(a, np.float64) for a in (cell.Wi, cell.Wh, cell.b))
    o = wh.shape[1]
    ys = []
    for x in xs:
        g = wi @ x + wh @ h + b
        i, f, gg, oo = g[:o], g[o : 2 * o], g[2 * o : 3 * o], g[3 * o :]
        c = _sig(f) * c + _sig(i) * np.tanh(gg)
        h = _sig(oo) * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def np_gru(cell, xs, h):
    wi, wh, b = (np.asarray(a, np.float64) for a in (cell.Wi, cell.Wh, cell.b))
    o = wh.shape[1]
    ys = []
    for x in xs:
        gx, gh = wi @ x, wh @ h
        r = _sig(gx[:o] + gh[:o] + b[:o])
        z = _sig(gx[o : 2 * o] + gh[o : 2 * o] + b[o : 2 * o])
        hh = np.tanh(gx[2 * o :] + r * gh[2 * o :] + b[2 * o :])
        h = (1 - z) * hh + z * h
        ys.append(h)
    return np.stack(ys)


def np_rnn(cell, xs, h):
    wi, wh, b = (np.asarray(a, np.float64) for a in (cell.Wi, cell.Wh, cell.b))
    ys = []
    for x in xs:
        h = np.tanh(wi @ x + wh @ h + b)
        ys.append(h)
    return np.stack(ys)


def _random_params(m, seed):
    rng = np.random.default_rng(seed)
    for name in ("Wi", "Wh", "b"):
        setattr(m.cell, name, rng.standard_normal(getattr(m.cell, name).shape) * 0.5)
    m.cell.state0 = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.standard_normal(s.shape) * 0.5, jnp.float32), m.cell.state0
    )
    fx.reset(m)
    return m


def test_recurrent_layers_against_gate_equations():
    xs = np.random.default_rng(8).standard_normal((3, 6, 4))
    lstm = _random_params(fx.LSTM(4, 5), 1)
    gru, rnn = _random_params(fx.GRU(4, 5), 2), _random_params(fx.RNN(4, 5), 3)
    h0, c0 = (np.asarray(s, np.float64) for s in lstm.cell.state0)
    ys = {m: np.asarray(m(xs)) for m in (lstm, gru, rnn)}
    g0, r0 = (np.asarray(m.cell.state0, np.float64) for m in (gru, rnn))
    for i in range(3):
        np.testing.assert_allclose(ys[lstm][i], np_lstm(lstm.cell, xs[i], h0, c0)[0], atol=1e-5)
        np.testing.assert_allclose(ys[gru][i], np_gru(gru.cell, xs[i], g0), atol=1e-5)
        np.testing.assert_allclose(ys[rnn][i], np_rnn(rnn.cell, xs[i], r0), atol=1e-5)
    # stateful: one step at a time keeps the state, equal to the whole sequence
    steps = np.stack([lstm(xs[:, t]) for t in range(6)], axis=1)
    np.testing.assert_allclose(steps, ys[lstm], atol=1e-5)
    _, h, c = np_lstm(lstm.cell, xs[0], h0, c0)
    np.testing.assert_allclose(lstm.state[0][0], h, atol=1e-5)
    np.testing.assert_allclose(lstm.state[1][0], c, atol=1e-5)
    fx.reset(lstm)
    np.testing.assert_allclose(lstm(xs[:, 0]), steps[:, 0], atol=1e-6)


def test_lstm_forget_bias_and_parameter_count_as_flux_v012():
    m = fx.LSTM(3, 5)
    assert fx.nparams(m) == 190  # Flux v0.12: LSTM(3, 5) has 190 parameters
    np.testing.assert_array_equal(m.cell.b, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    assert fx.nparams(fx.RNN(3, 5)) == 50
