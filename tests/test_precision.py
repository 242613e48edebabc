"""precision="bfloat16": the loss is computed in bfloat16 from float32 master weights, which
stay float32 with float32 optimiser state; the seed fit reaches the float32 loss within a
documented factor (1.5); the same bits however the run is split; float16 is refused."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import seed_data, seed_model

import fluxjax as fx

X, Y = seed_data()


def loss(m, x, y):
    return fx.mse(m(x), y)


def fit(precision, epochs=3000):
    m = seed_model()
    st = fx.setup(fx.Adam(0.01), m)
    h = fx.train(loss, m, [(X, Y)], st, epochs=epochs, precision=precision)
    return m, st, np.asarray(h.losses, np.float32)


def test_bfloat16_keeps_float32_masters_and_reaches_the_float32_loss():
    m32, _, l32 = fit(None)
    m16, st, l16 = fit("bfloat16")
    assert m16[0].weight.dtype == jnp.float32 and st.layers[0].weight.state[0].dtype == jnp.float32
    # the losses were computed in bfloat16: each is a bfloat16 number (not so in float32)
    assert np.array_equal(l16, l16.astype(jnp.bfloat16).astype(np.float32))
    assert not np.array_equal(l32, l32.astype(jnp.bfloat16).astype(np.float32))
    assert float(loss(m16, X, Y)) <= 1.5 * float(loss(m32, X, Y))


def test_bfloat16_gives_the_same_bits_however_split():
    a, _, _ = fit("bfloat16", epochs=40)
    b = seed_model()
    st = fx.setup(fx.Adam(0.01), b)
    for _ in range(40):
        fx.train(loss, b, [(X, Y)], st, precision="bfloat16", cb=lambda: None)
    for p, q in zip((a[0].weight, a[1].weight), (b[0].weight, b[1].weight)):
        assert np.array_equal(np.asarray(p), np.asarray(q))


def test_float16_is_refused_with_the_fix():
    m = seed_model()
    with pytest.raises(ValueError, match="bfloat16"):
        fx.train(loss, m, [(X, Y)], fx.setup(fx.Adam(), m), precision="float16")
