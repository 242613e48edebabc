"""Flux v0.12.9's test/layers/recurrent.jl, translated.

Flux's ``(features, batch)`` steps are ``(batch, features)`` here; its 3-D ``(features,
batch, time)`` sequence is ``(batch, time, features)``, run as one ``scan`` from ``state0``.
``rnn.(seq)`` is a Python loop of stateful calls. Left out: "RNN-input-state-eltypes"
(Flux v0.12 throws a MethodError on Float64 input to a Float32 cell; fluxjax converts the
input to the layer's dtype, as Flux ≥ 0.13 does) and "multigate" (an internal helper:
fluxjax splits gates with ``jnp.split``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


def _bptt(rnn, xs):
    """The gradient of sum(s₃) w.r.t. Wh written out by hand, as Flux's test does."""
    c = rnn.cell

    def f(wh):
        s = c.state0
        for x in xs:
            s = jnp.tanh(x @ c.Wi.T + s @ wh.T + c.b)
        return jnp.sum(s)

    return jax.grad(f)(c.Wh)


@pytest.mark.parametrize("shape", [(2,), (1, 2)])  # "BPTT-1D", "BPTT-2D"
def test_bptt_stepwise(shape):
    seq = [np.random.default_rng(i).random(shape).astype(np.float32) for i in range(3)]
    rnn = fx.RNN(2, 3)
    fx.reset(rnn)

    def loss():
        return jnp.sum([rnn(x) for x in seq][2])

    grads = fx.gradient(loss, fx.params(rnn))
    fx.reset(rnn)
    np.testing.assert_allclose(grads[rnn.cell.Wh], _bptt(rnn, seq), rtol=1e-5)


def test_bptt_3d():
    seq = np.random.default_rng(0).random((1, 3, 2)).astype(np.float32)  # Flux's (2, 1, 3)
    rnn = fx.RNN(2, 3)
    fx.reset(rnn)
    grads = fx.gradient(lambda: jnp.sum(rnn(seq)[:, 2]), fx.params(rnn))
    fx.reset(rnn)
    want = _bptt(rnn, [seq[:, t] for t in range(3)])
    np.testing.assert_allclose(grads[rnn.cell.Wh], want, rtol=1e-5)


@pytest.mark.parametrize("layer", [fx.RNN, fx.GRU, fx.LSTM, fx.GRUv3])
def test_rnn_shapes(layer):
    m1, m2, m3 = layer(3, 5), layer(3, 5), layer(3, 5)
    x1 = np.random.default_rng(0).random(3).astype(np.float32)
    x2 = np.random.default_rng(1).random((1, 3)).astype(np.float32)
    x3 = np.random.default_rng(2).random((1, 2, 3)).astype(np.float32)  # Flux's (3, 1, 2)
    for m in (m1, m2, m3):
        fx.reset(m)
    assert m1(x1).shape == (5,)
    assert m1(x1).shape == (5,)  # again, in case the state's shape changed
    assert m2(x2).shape == (1, 5)
    assert m2(x2).shape == (1, 5)
    assert m3(x3).shape == (1, 2, 5)
    assert m3(x3).shape == (1, 2, 5)
