"""One table drives every layer: output shape, gradients against float64 central
differences for every parameter and the input, compiled == eager, f32/f64, repr."""

from __future__ import annotations

import operator

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


def tanh(x):
    return jnp.tanh(x)


class Attend(fx.Module):
    """MultiHeadAttention with its options, returning the output and the scores as one
    array (the table's properties are of one array)."""

    def __init__(self, mha, mask=None, bias=None):
        self.mha, self.mask, self.bias = mha, mask, bias

    def trainable(self):
        return ("mha",)

    def __call__(self, q, kv=None):
        y, a = self.mha(q, kv, None, self.bias, mask=self.mask)
        return jnp.concatenate([y.reshape(y.shape[0], -1), a.reshape(a.shape[0], -1)], -1)

    def _show(self):
        return f"Attend({fx.layers.attention.MultiHeadAttention._show(self.mha)})"


CAUSAL = np.tril(np.ones((3, 4), bool))
ATT_BIAS = np.linspace(-1, 1, 12).reshape(3, 4)


# id -> (make layer, input shapes (a tuple) or an int-array maker, output shape, repr)
LAYERS = {
    "conv1d": (lambda: fx.Conv((3,), 2, 3), [(2, 7, 2)], (2, 5, 3),
               "Conv((3,), 2 => 3)  # 21 parameters"),
    "conv2d_pad_stride": (
        lambda: fx.Conv((3, 3), 2, 4, tanh, pad=1, stride=2), [(2, 6, 6, 2)], (2, 3, 3, 4),
        "Conv((3, 3), 2 => 4, tanh, pad=1, stride=2)  # 76 parameters"),
    "conv3d": (lambda: fx.Conv((2, 2, 2), 1, 2), [(1, 4, 4, 4, 1)], (1, 3, 3, 3, 2),
               "Conv((2, 2, 2), 1 => 2)  # 18 parameters"),
    "conv_groups_dilation_same": (
        lambda: fx.Conv((3, 3), 4, 4, groups=2, dilation=2, pad=fx.SamePad()), [(1, 6, 6, 4)],
        (1, 6, 6, 4), "Conv((3, 3), 4 => 4, pad=2, dilation=2, groups=2)  # 76 parameters"),
    "conv_asym_pad": (lambda: fx.Conv((2, 2), 1, 2, pad=(1, 0, 0, 2)), [(1, 4, 4, 1)],
                      (1, 4, 5, 2), "Conv((2, 2), 1 => 2, pad=(1, 0, 0, 2))  # 10 parameters"),
    "crosscor": (lambda: fx.CrossCor((2, 2), 2, 3), [(2, 5, 5, 2)], (2, 4, 4, 3),
                 "CrossCor((2, 2), 2 => 3)  # 27 parameters"),
    "convtranspose": (
        lambda: fx.ConvTranspose((3, 3), 2, 3, stride=2, pad=1), [(1, 3, 3, 2)], (1, 5, 5, 3),
        "ConvTranspose((3, 3), 2 => 3, pad=1, stride=2)  # 57 parameters"),
    "depthwise": (lambda: fx.DepthwiseConv((3, 3), 2, 4), [(1, 5, 5, 2)], (1, 3, 3, 4),
                  "DepthwiseConv((3, 3), 2 => 4)  # 40 parameters"),
    "maxpool": (lambda: fx.MaxPool((2, 2)), [(2, 4, 5, 3)], (2, 2, 2, 3), "MaxPool((2, 2))"),
    "maxpool_pad_stride": (lambda: fx.MaxPool((3, 3), pad=1, stride=2), [(1, 5, 5, 2)],
                           (1, 3, 3, 2), "MaxPool((3, 3), pad=(1, 1, 1, 1), stride=(2, 2))"),
    "meanpool1d": (lambda: fx.MeanPool((2,)), [(2, 6, 3)], (2, 3, 3), "MeanPool((2,))"),
    "meanpool_stride1": (lambda: fx.MeanPool((2, 2), stride=1), [(1, 4, 4, 2)], (1, 3, 3, 2),
                         "MeanPool((2, 2), stride=(1, 1))"),
    "globalmax": (fx.GlobalMaxPool, [(2, 3, 3, 2)], (2, 1, 1, 2), "GlobalMaxPool()"),
    "globalmean": (fx.GlobalMeanPool, [(2, 3, 3, 2)], (2, 1, 1, 2), "GlobalMeanPool()"),
    "adaptivemax": (lambda: fx.AdaptiveMaxPool((2, 2)), [(1, 5, 5, 2)], (1, 2, 2, 2),
                    "AdaptiveMaxPool((2, 2))"),
    "adaptivemean": (lambda: fx.AdaptiveMeanPool((3,)), [(2, 7, 2)], (2, 3, 2),
                     "AdaptiveMeanPool((3,))"),
    "rnn_sequence": (lambda: fx.RNN(3, 4), [(2, 5, 3)], (2, 5, 4),
                     "RNN(3 => 4)  # 36 parameters, plus 4 non-trainable"),
    "rnn_step": (lambda: fx.RNN(3, 4, fx.softplus), [(2, 3)], (2, 4),
                 "RNN(3 => 4, softplus)  # 36 parameters, plus 4 non-trainable"),
    "lstm_sequence": (lambda: fx.LSTM(3, 4), [(2, 5, 3)], (2, 5, 4),
                      "LSTM(3 => 4)  # 136 parameters, plus 8 non-trainable"),
    "lstm_step": (lambda: fx.LSTM(3, 4), [(2, 3)], (2, 4),
                  "LSTM(3 => 4)  # 136 parameters, plus 8 non-trainable"),
    "gru_sequence": (lambda: fx.GRU(3, 4), [(2, 5, 3)], (2, 5, 4),
                     "GRU(3 => 4)  # 100 parameters, plus 4 non-trainable"),
    "batchnorm_test": (lambda: fx.BatchNorm(3), [(4, 3)], (4, 3),
                       "BatchNorm(3)  # 6 parameters, plus 6 non-trainable"),
    "batchnorm_train": (lambda: fx.trainmode(fx.BatchNorm(3, tanh)), [(2, 3, 3, 3)],
                        (2, 3, 3, 3), "BatchNorm(3, tanh)  # 6 parameters, plus 6 non-trainable"),
    "layernorm": (lambda: fx.LayerNorm(4), [(3, 4)], (3, 4), "LayerNorm(4)  # 8 parameters"),
    "layernorm_2d": (lambda: fx.LayerNorm((2, 3)), [(2, 2, 3)], (2, 2, 3),
                     "LayerNorm((2, 3))  # 12 parameters"),
    "groupnorm": (lambda: fx.GroupNorm(4, 2), [(2, 3, 3, 4)], (2, 3, 3, 4),
                  "GroupNorm(4, 2)  # 8 parameters"),
    "instancenorm": (lambda: fx.InstanceNorm(2, affine=True), [(2, 5, 2)], (2, 5, 2),
                     "InstanceNorm(2, affine=True)  # 4 parameters"),
    "dropout_test": (lambda: fx.Dropout(0.5), [(3, 4)], (3, 4), "Dropout(0.5)"),
    "dropout_train": (lambda: fx.trainmode(fx.Dropout(0.3, dims=-1)), [(3, 2, 4)], (3, 2, 4),
                      "Dropout(0.3, dims=-1)"),
    "alphadropout_train": (lambda: fx.trainmode(fx.AlphaDropout(0.2)), [(3, 4)], (3, 4),
                           "AlphaDropout(0.2)"),
    "skip": (lambda: fx.SkipConnection(fx.Dense(3, 3, tanh), operator.add), [(2, 3)], (2, 3),
             "SkipConnection(Dense(3 => 3, tanh), add)  # 12 parameters"),
    "parallel": (lambda: fx.Parallel(operator.add, fx.Dense(3, 2), fx.Dense(3, 2)), [(2, 3)],
                 (2, 2), "Parallel(add, Dense(3 => 2), Dense(3 => 2))  # 16 parameters"),
    "maxout": (lambda: fx.Maxout(fx.Dense(3, 2), fx.Dense(3, 2)), [(2, 3)], (2, 2),
               "Maxout(Dense(3 => 2), Dense(3 => 2))  # 16 parameters"),
    "bilinear": (lambda: fx.Bilinear(2, 3, 4, tanh), [(5, 2), (5, 3)], (5, 4),
                 "Bilinear((2, 3) => 4, tanh)  # 28 parameters"),
    "embedding": (lambda: fx.Embedding(10, 3), lambda: (jnp.array([[1, 9, 0, 4], [2, 2, 3, 5]]),),
                  (2, 4, 3), "Embedding(10 => 3)  # 30 parameters"),
    "scale": (lambda: fx.Scale(3, act=tanh), [(2, 3)], (2, 3), "Scale(3, tanh)  # 6 parameters"),
    "named_chain": (lambda: fx.Chain(enc=fx.Dense(3, 2, tanh), dec=fx.Dense(2, 3)), [(4, 3)],
                    (4, 3), "Chain(enc=Dense(3 => 2, tanh), dec=Dense(2 => 3))  # 17 parameters"),
    "conv_flatten_dense": (lambda: fx.Chain(fx.Conv((2, 2), 1, 2), fx.flatten, fx.Dense(18, 2)),
                           [(2, 4, 4, 1)], (2, 2),
                           "Chain(Conv((2, 2), 1 => 2), flatten, Dense(18 => 2))  # 48 parameters"),
    # -- added with attention, upsampling and the rest of Flux's layers --
    "mha_self": (lambda: Attend(fx.MultiHeadAttention(4, nheads=2)), [(2, 3, 4)], (2, 30),
                 "Attend(MultiHeadAttention(4; nheads=2))  # 64 parameters"),
    "mha_cross_mask_bias": (
        lambda: Attend(fx.MultiHeadAttention(((3, 5, 5), (4, 6), 2), nheads=2, bias=True),
                       jnp.asarray(CAUSAL), jnp.asarray(ATT_BIAS)),
        [(2, 3, 3), (2, 4, 5)], (2, 30),
        "Attend(MultiHeadAttention((3, 5, 5) => (4, 6) => 2; nheads=2, bias=True))  "
        "# 90 parameters, plus 12 non-trainable"),
    "mha_dropout_train": (
        lambda: fx.trainmode(Attend(fx.MultiHeadAttention((4, 6, 4), nheads=3,
                                                          dropout_prob=0.3))),
        [(2, 3, 4)], (2, 39),
        "Attend(MultiHeadAttention(4 => 6 => 4; nheads=3, dropout_prob=0.3))  # 96 parameters"),
    "upsample_nearest": (lambda: fx.Upsample(scale=(2, 3)), [(1, 2, 2, 2)], (1, 4, 6, 2),
                         "Upsample('nearest', scale=(2, 3))"),
    "upsample_bilinear": (lambda: fx.Upsample("bilinear", size=(5, 3)), [(2, 3, 2, 2)],
                          (2, 5, 3, 2), "Upsample('bilinear', size=(5, 3))"),
    "upsample_trilinear": (lambda: fx.Upsample("trilinear", scale=2), [(1, 2, 2, 3, 1)],
                           (1, 4, 4, 6, 1), "Upsample('trilinear', scale=2)"),
    "upsample_linear1d": (lambda: fx.Upsample("linear", scale=1.5), [(2, 4, 2)], (2, 6, 2),
                          "Upsample('linear', scale=1.5)"),
    "pixelshuffle": (lambda: fx.PixelShuffle(2), [(2, 2, 3, 8)], (2, 4, 6, 2), "PixelShuffle(2)"),
    "pixelshuffle1d": (lambda: fx.PixelShuffle(3), [(2, 2, 6)], (2, 6, 2), "PixelShuffle(3)"),
    "embeddingbag": (lambda: fx.EmbeddingBag(6, 3),
                     lambda: (jnp.array([[1, 5, 0], [2, 2, 3]]),), (2, 3),
                     "EmbeddingBag(6 => 3)  # 18 parameters"),
    "gruv3_sequence": (lambda: fx.GRUv3(3, 4), [(2, 5, 3)], (2, 5, 4),
                       "GRUv3(3 => 4)  # 100 parameters, plus 4 non-trainable"),
    "gruv3_step": (lambda: fx.GRUv3(3, 4), [(2, 3)], (2, 4),
                   "GRUv3(3 => 4)  # 100 parameters, plus 4 non-trainable"),
    "convtranspose_outpad": (
        lambda: fx.ConvTranspose((3, 3), 2, 3, stride=2, pad=1, outpad=(1, 0)), [(1, 3, 3, 2)],
        (1, 6, 5, 3), "ConvTranspose((3, 3), 2 => 3, pad=1, stride=2, outpad=(1, 0))  "
        "# 57 parameters"),
    "convtranspose_same_k1": (
        lambda: fx.ConvTranspose((1,), 2, 2, stride=3, pad=fx.SamePad()), [(2, 3, 2)],
        (2, 9, 2), "ConvTranspose((1,), 2 => 2, pad=-1, stride=3)  # 6 parameters"),
    "depthwise_from_weight": (
        lambda: fx.DepthwiseConv(jnp.asarray(np.random.default_rng(3).standard_normal(
            (2, 2, 3, 2)), jnp.float32), True, tanh),
        [(1, 4, 4, 2)], (1, 3, 3, 6), "DepthwiseConv((2, 2), 2 => 6, tanh)  # 30 parameters"),
    "bilinear_from_weight": (
        lambda: fx.Bilinear(jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 4)),
                                        jnp.float32), False),
        [(5, 3), (5, 4)], (5, 2), "Bilinear((3, 4) => 2; bias=False)  # 24 parameters"),
    "groupnorm_track_train": (
        lambda: fx.trainmode(fx.GroupNorm(4, 2, track_stats=True)), [(2, 3, 3, 4)],
        (2, 3, 3, 4), "GroupNorm(4, 2, track_stats=True)  # 8 parameters, plus 4 non-trainable"),
    "instancenorm_track_test": (
        lambda: fx.InstanceNorm(2, track_stats=True, affine=True), [(2, 5, 2)], (2, 5, 2),
        "InstanceNorm(2, track_stats=True, affine=True)  # 4 parameters, plus 4 non-trainable"),
    "lpnormpool": (lambda: fx.LPNormPool((2, 2), 2), [(2, 4, 4, 3)], (2, 2, 2, 3),
                   "LPNormPool((2, 2), p=2.0)"),
    "lpnormpool_p4_stride": (lambda: fx.LPNormPool((3,), 4, stride=2, pad=1), [(2, 6, 2)],
                             (2, 3, 2), "LPNormPool((3,), pad=(1, 1), stride=(2,), p=4.0)"),
}  # fmt: skip


def _inputs(spec, dtype, seed=0):
    if callable(spec):
        return spec()
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s), dtype) for s in spec)


def _make(name, seed=0):
    fx.seed(seed)
    return LAYERS[name][0]()


def _floating(a):
    return jnp.issubdtype(a.dtype, jnp.floating)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_shape_and_repr(name):
    _, spec, out, text = LAYERS[name]
    m = _make(name)
    assert repr(m) == text
    assert m(*_inputs(spec, jnp.float32)).shape == out


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_compiled_equals_eager(name):
    m = _make(name)
    xs = _inputs(LAYERS[name][1], jnp.float32)
    compiled = jax.jit(lambda m, *xs: m(*xs))(m, *xs)  # first: eager calls may advance state
    np.testing.assert_allclose(compiled, m(*xs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_f32_f64(name, x64):
    m = _make(name)
    xs = _inputs(LAYERS[name][1], jnp.float64)
    m64 = fx.fmap(lambda a: a.astype(jnp.float64) if _floating(a) else a, m)
    m32 = fx.f32(m64)  # before any call: both start from the same state
    y64 = m64(*xs)
    assert y64.dtype == jnp.float64
    xs32 = tuple(x.astype(jnp.float32) if _floating(x) else x for x in xs)
    y32 = m32(*xs32)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradients_match_finite_differences(name, x64):
    """∂/∂θ of Σ w ⊙ m(x) for every floating parameter and input, against central
    differences in float64 (all coordinates in one vmapped call)."""
    m = fx.fmap(lambda a: a.astype(jnp.float64) if _floating(a) else a, _make(name))
    xs = _inputs(LAYERS[name][1], jnp.float64, seed=1)
    leaves, tree = jax.tree_util.tree_flatten(m)
    fl = [i for i, a in enumerate(leaves) if _floating(a)]
    fx_in = [i for i, x in enumerate(xs) if _floating(x)]
    flat0, unravel = jax.flatten_util.ravel_pytree(
        ([leaves[i] for i in fl], [xs[i] for i in fx_in])
    )
    w = jnp.asarray(np.random.default_rng(2).standard_normal(LAYERS[name][2]))

    def f(flat):
        ps, ins = unravel(flat)
        ls = list(leaves)
        for i, p in zip(fl, ps):
            ls[i] = p
        xx = list(xs)
        for i, x in zip(fx_in, ins):
            xx[i] = x
        return jnp.sum(w * jax.tree_util.tree_unflatten(tree, ls)(*xx))

    grad = jax.jit(jax.grad(f))(flat0)
    h = 1e-6
    eye = jnp.eye(flat0.size, dtype=jnp.float64) * h
    fd = jax.jit(jax.vmap(lambda e: (f(flat0 + e) - f(flat0 - e)) / (2 * h)))(eye)
    assert flat0.size > 0 and float(jnp.abs(grad).max()) > 0
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
