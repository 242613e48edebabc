"""The layers added for Flux's remaining set against independent implementations:
torch.nn.functional (attention, interpolation, pixel shuffle, embedding bags, transposed
convolutions, Lp pooling) and NumPy (GRUv3's gate equations, tracked statistics,
normalise, dropout's mask statistics)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fluxjax as fx

RNG = np.random.default_rng(0)


def t(a):
    return torch.tensor(np.array(a, np.float64))


def randn(*shape):
    return RNG.standard_normal(shape)


# -- attention -----------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_multiheadattention_against_torch(masked, x64):
    d, h, n, lq, lk = 6, 3, 2, 4, 5
    mha = fx.fmap(lambda a: a.astype(jnp.float64), fx.MultiHeadAttention(d, nheads=h, bias=True))
    for p in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
        p.bias = jnp.asarray(randn(d))
    q, kv = randn(n, lq, d), randn(n, lk, d)
    mask = np.tril(np.ones((lq, lk), bool)) if masked else None
    y, a = mha(q, kv, mask=mask)
    ref = torch.nn.MultiheadAttention(d, h, bias=True, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            t(np.concatenate([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        )
        ref.in_proj_bias.copy_(t(np.concatenate([mha.q_proj.bias, mha.k_proj.bias,
                                                 mha.v_proj.bias])))  # fmt: skip
        ref.out_proj.weight.copy_(t(mha.out_proj.weight))
        ref.out_proj.bias.copy_(t(mha.out_proj.bias))
        ty, ta = ref(t(q), t(kv), t(kv), need_weights=True, average_attn_weights=False,
                     attn_mask=None if mask is None else torch.tensor(~mask))  # fmt: skip
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a, ta.numpy(), rtol=1e-10, atol=1e-12)
    if masked:
        assert np.all(np.asarray(a)[:, :, 0, 1:] == 0)


def test_attention_bias_and_causal_mask_as_flux():
    """Flux's "mask" and "bias" testsets: a causal mask, or +∞-free −∞ bias, zeroes the
    scores of later keys; self-attention is mha(q, q, q); mha(q, k) is mha(q, k, k)."""
    mha = fx.MultiHeadAttention(4, nheads=2)
    q, k = jnp.asarray(randn(5, 3, 4), jnp.float32), jnp.asarray(randn(5, 3, 4), jnp.float32)
    _, a = mha(q, mask=fx.make_causal_mask(q))
    assert np.all(np.asarray(a)[..., 0, 1:] == 0)
    np.testing.assert_allclose(a[0, 0], np.tril(np.asarray(a[0, 0])))
    b = np.where(np.tril(np.ones((3, 3))) > 0, 0.0, -np.inf).astype(np.float32)
    _, a = mha(q, k, k, b)
    np.testing.assert_allclose(a[0, 0], np.tril(np.asarray(a[0, 0])))
    for x, y in zip(mha(q), mha(q, q, q)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(mha(q, k), mha(q, k, k)):
        np.testing.assert_array_equal(x, y)
    y, a = fx.MultiHeadAttention((4, 10, 5), nheads=5)(q, k)
    assert y.shape == (5, 3, 5) and a.shape == (5, 5, 3, 3)


def test_attention_dropout_drops_scores_in_train_mode_only():
    mha = fx.MultiHeadAttention(4, nheads=1, dropout_prob=0.5)
    q = jnp.ones((2, 16, 4))
    assert np.all(np.asarray(mha(q)[1]) > 0)
    a = np.asarray(fx.trainmode(mha)(q)[1])
    assert set(np.unique(a)) == {0.0, np.float32(2 / 16)}


# -- upsampling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,shape,kw,torch_mode",
    [
        ("nearest", (2, 3, 4, 2), {"scale": (2, 3)}, "nearest"),
        ("nearest", (2, 3, 2), {"size": (9,)}, "nearest"),
        ("linear", (2, 4, 3), {"size": (7,)}, "linear"),
        ("bilinear", (2, 3, 4, 2), {"size": (5, 9)}, "bilinear"),
        ("bilinear", (1, 3, 3, 1), {"scale": 2}, "bilinear"),
        ("trilinear", (1, 2, 3, 2, 2), {"scale": (2, 1, 3)}, "trilinear"),
    ],
)
def test_upsample_against_torch_interpolate(mode, shape, kw, torch_mode, x64):
    x = randn(*shape)
    y = fx.Upsample(mode, **kw)(jnp.asarray(x))
    xt = t(np.moveaxis(x, -1, 1))
    opts = {} if torch_mode == "nearest" else {"align_corners": True}
    if "size" in kw:
        ref = F.interpolate(xt, size=kw["size"], mode=torch_mode, **opts)
    else:
        s = kw["scale"]
        ref = F.interpolate(xt, scale_factor=s, mode=torch_mode, **opts)
    np.testing.assert_allclose(y, np.moveaxis(ref.numpy(), 1, -1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,r", [((2, 3, 4, 12), 2), ((1, 2, 3), 3)])
def test_pixel_shuffle_against_torch(shape, r):
    x = randn(*shape)
    y = fx.PixelShuffle(r)(jnp.asarray(x, jnp.float32))
    if len(shape) == 4:
        ref = F.pixel_shuffle(t(np.moveaxis(x, -1, 1)), r).numpy()
        np.testing.assert_allclose(y, np.moveaxis(ref, 1, -1), rtol=1e-6)
    else:  # torch has no 1-D pixel shuffle: the formula, y[n, i·r + a, c] = x[n, i, c·r + a]
        n, s, c = shape
        ref = np.zeros((n, s * r, c // r))
        for i in range(s):
            for a in range(r):
                for cc in range(c // r):
                    ref[:, i * r + a, cc] = x[:, i, cc * r + a]
        np.testing.assert_allclose(y, ref, rtol=1e-6)


# -- embedding bags ------------------------------------------------------------------------


@pytest.mark.parametrize("mode,red", [("mean", jnp.mean), ("sum", jnp.sum), ("max", jnp.max)])
def test_embeddingbag_against_torch(mode, red, x64):
    w = randn(4, 10)  # (out, in)
    eb = fx.EmbeddingBag(jnp.asarray(w), red)
    idx = np.array([[1, 9, 0], [3, 3, 7]])
    ref = F.embedding_bag(torch.tensor(idx), t(w.T), mode=mode).numpy()
    np.testing.assert_allclose(eb(jnp.asarray(idx)), ref, rtol=1e-12)
    data, at = np.array([2, 5, 5, 1, 0, 8]), [0, 1, 4]
    ref = F.embedding_bag(torch.tensor(data), t(w.T), torch.tensor(at), mode=mode).numpy()
    np.testing.assert_allclose(eb(jnp.asarray(data), at), ref, rtol=1e-12)
    ragged = [[2], [5, 5, 1], [0, 8]]
    np.testing.assert_allclose(eb(ragged), ref, rtol=1e-12)
    onehot = np.eye(10, dtype=bool)[[5, 5, 1]]
    np.testing.assert_allclose(eb(onehot), ref[1], rtol=1e-12)


# -- GRUv3 ---------------------------------------------------------------------------------


def test_gruv3_against_gate_equations(x64):
    m = fx.fmap(lambda a: a.astype(jnp.float64), fx.GRUv3(3, 4))
    c = m.cell
    c.state0 = jnp.asarray(randn(4))
    x = randn(2, 5, 3)
    wi, wh, b, whh = (np.asarray(a) for a in (c.Wi, c.Wh, c.b, c.Wh_h))

    def sig(z):
        return 1 / (1 + np.exp(-z))

    h = np.broadcast_to(np.asarray(c.state0), (2, 4))
    ref = []
    for s in range(5):
        gx = x[:, s] @ wi.T + b
        gh = h @ wh.T
        r = sig(gx[:, :4] + gh[:, :4])
        z = sig(gx[:, 4:8] + gh[:, 4:8])
        cand = np.tanh(gx[:, 8:] + (r * h) @ whh.T)
        h = (1 - z) * cand + z * h
        ref.append(h)
    np.testing.assert_allclose(m(x), np.stack(ref, 1), rtol=1e-12)
    fx.reset(m, 2)
    steps = [m(x[:, s]) for s in range(5)]
    np.testing.assert_allclose(np.stack(steps, 1), np.stack(ref, 1), rtol=1e-12)


# -- transposed convolutions ---------------------------------------------------------------


@pytest.mark.parametrize("stride,pad,outpad,dilation", [(2, 1, 1, 1), (3, 0, (2, 1), 1),
                                                        (2, 2, 1, 2), (1, 0, 1, 2)])  # fmt: skip
def test_convtranspose_outpad_against_torch(stride, pad, outpad, dilation, x64):
    m = fx.fmap(lambda a: a.astype(jnp.float64),
                fx.ConvTranspose((3, 2), 2, 3, stride=stride, pad=pad, outpad=outpad,
                                 dilation=dilation))  # fmt: skip
    m.bias = jnp.asarray(randn(3))
    x = randn(2, 4, 3, 2)
    w = np.asarray(m.weight)  # (kh, kw, cout, cin)
    ref = F.conv_transpose2d(
        t(np.moveaxis(x, -1, 1)), t(np.transpose(w[::-1, ::-1], (3, 2, 0, 1))), t(m.bias),
        stride=stride, padding=pad, output_padding=outpad, dilation=dilation,
    ).numpy()  # fmt: skip
    np.testing.assert_allclose(m(x), np.moveaxis(ref, 1, -1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k,stride,dilation", [(1, 2, 1), (1, 3, 2), (2, 3, 1), (3, 2, 2)])
def test_samepad_transpose_sizes_and_values_as_flux(k, stride, dilation, x64):
    """Flux's SamePad for ConvTranspose pads as a Conv of kernel k − stride + 1: size
    (in−1)·s + d·(s−1) + 1, in·s at dilation 1, kernel 1 included (negative padding: a
    crop of the unpadded result, checked against torch)."""
    m = fx.fmap(lambda a: a.astype(jnp.float64),
                fx.ConvTranspose((k,), 2, 3, stride=stride, dilation=dilation, pad=fx.SamePad(),
                                 bias=False))  # fmt: skip
    x = randn(2, 5, 2)
    y = m(x)
    assert y.shape[1] == 4 * stride + dilation * (stride - 1) + 1
    full = F.conv_transpose1d(t(np.moveaxis(x, -1, 1)),
                              t(np.transpose(np.asarray(m.weight)[::-1], (2, 1, 0))),
                              stride=stride, dilation=dilation).numpy()  # fmt: skip
    (lo, hi), size = m.pad[0], full.shape[-1]
    padded = np.pad(full, ((0, 0), (0, 0), (max(-lo, 0), max(-hi, 0))))
    ref = padded[..., max(lo, 0) : padded.shape[-1] - max(hi, 0)]
    assert size - lo - hi == y.shape[1]
    np.testing.assert_allclose(y, np.moveaxis(ref, 1, -1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [fx.Conv, fx.CrossCor, fx.DepthwiseConv, fx.ConvTranspose])
@pytest.mark.parametrize("k,stride,dilation", [(1, 1, 1), (1, 2, 1), (3, 2, 2), (2, 3, 1)])
def test_samepad_output_size_as_flux(cls, k, stride, dilation):
    """Flux's sizes: Conv-like ⌈in/stride⌉ (SamePad ignores the stride), ConvTranspose as
    above."""
    m = cls((k, k), 2, 4, stride=stride, dilation=dilation, pad=fx.SamePad())
    y = m(jnp.ones((1, 7, 6, 2)))
    if cls is fx.ConvTranspose:
        want = [(i - 1) * stride + dilation * (stride - 1) + 1 for i in (7, 6)]
    else:
        want = [-(-i // stride) for i in (7, 6)]
    assert list(y.shape[1:3]) == want


def test_depthwise_from_flux_v012_weight_against_torch(x64):
    w = randn(3, 3, 2, 4)  # (k..., cout ÷ cin, cin), Flux v0.12
    m = fx.DepthwiseConv(jnp.asarray(w), jnp.asarray(randn(8)), pad=1)
    x = randn(2, 5, 5, 4)
    # torch: groups = cin, weight (cout, 1, k...), output channel c·mult + j
    wt = np.transpose(w[::-1, ::-1], (3, 2, 0, 1)).reshape(8, 1, 3, 3)
    ref = F.conv2d(t(np.moveaxis(x, -1, 1)), t(wt), t(m.bias), padding=1, groups=4).numpy()
    np.testing.assert_allclose(m(x), np.moveaxis(ref, 1, -1), rtol=1e-10, atol=1e-12)


# -- pooling, normalisation, dropout -------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_lpnormpool_against_torch(p, x64):
    x = np.abs(randn(2, 6, 7, 3))
    y = fx.LPNormPool((2, 3), p, stride=(2, 2))(jnp.asarray(x))
    ref = F.lp_pool2d(t(np.moveaxis(x, -1, 1)), p, (2, 3), stride=(2, 2)).numpy()
    np.testing.assert_allclose(y, np.moveaxis(ref, 1, -1), rtol=1e-10)
    np.testing.assert_allclose(fx.lpnormpool(x, 1, (2, 2)) / 4, fx.MeanPool((2, 2))(x), rtol=1e-12)


@pytest.mark.parametrize("layer", ["group", "instance"])
def test_tracked_statistics_against_numpy(layer, x64):
    x = randn(3, 4, 5, 6)
    if layer == "group":
        m = fx.GroupNorm(6, 3, track_stats=True, momentum=0.3)
        g = x.reshape(3, 4, 5, 3, 2)
        mu, var, big = g.mean((1, 2, 4)), g.var((1, 2, 4)), 4 * 5 * 2
    else:
        m = fx.InstanceNorm(6, track_stats=True, momentum=0.3)
        mu, var, big = x.mean((1, 2)), x.var((1, 2)), 4 * 5
    m = fx.fmap(lambda a: a.astype(jnp.float64), m)
    fx.trainmode(m)(x)
    np.testing.assert_allclose(m.mu, 0.3 * mu.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.sigma2, 0.7 + 0.3 * big / (big - 1) * var.mean(0), rtol=1e-12)
    y = fx.testmode(m)(x)  # the running statistics now
    if layer == "group":
        want = (g - np.asarray(m.mu)[:, None]) / np.sqrt(np.asarray(m.sigma2)[:, None] + 1e-5)
        want = want.reshape(x.shape) * np.asarray(m.gamma) + np.asarray(m.beta)
    else:
        want = (x - np.asarray(m.mu)) / np.sqrt(np.asarray(m.sigma2) + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


def test_tracked_statistics_are_written_back_by_train():
    m = fx.Chain(fx.Dense(3, 4), fx.GroupNorm(4, 2, track_stats=True), fx.Dense(4, 1))
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    x[:, 0] = np.arange(8)
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)] * 3, fx.Descent(0.01))
    assert not np.allclose(m[1].mu, 0) and m[1].mu.shape == (2,)


def test_normalise_against_numpy(x64):
    x = randn(5, 3, 4)
    for axis in (0, -1, (1, 2)):
        mu = x.mean(axis, keepdims=True)
        want = (x - mu) / (x.std(axis, keepdims=True) + 1e-5)
        np.testing.assert_allclose(fx.normalise(x, axis=axis), want, rtol=1e-12)


def test_functional_dropout():
    x = jnp.ones((400, 50))
    y = np.asarray(fx.dropout(x, 0.3, key=jax.random.key(1)))
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02
    y = np.asarray(fx.dropout(x, 0.5, dims=0, key=jax.random.key(2)))
    assert np.all(y == y[:, :1])  # the mask varies along axis 0 only
    assert np.array_equal(fx.dropout(x, 0.5, active=False), x)
    assert np.array_equal(fx.dropout(x, 1.0), np.zeros((400, 50)))
    with pytest.raises(ValueError, match="probability"):
        fx.dropout(x, 1.5)
