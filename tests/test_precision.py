"""precision="bfloat16": the loss is computed in bfloat16 from float32 master weights, which
stay float32 with float32 optimiser state; the seed fit reaches the float32 loss within a
documented factor (1.5); the same bits however the run is split. precision="float16" needs
``fx.LossScale`` (Keras's dynamic loss scaling): overflowing steps are skipped while the
scale halves, finite runs double it, and float16 training reaches the float32 loss."""

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


def test_float16_without_a_loss_scale_is_refused_with_the_fix():
    m = seed_model()
    with pytest.raises(ValueError, match=r"fx.OptimiserChain\(fx.LossScale\(\), fx.Adam\(\)\)"):
        fx.train(loss, m, [(X, Y)], fx.setup(fx.Adam(), m), precision="float16")


def scaled(initial=2.0**15, growth=2000, eta=0.01):
    return fx.OptimiserChain(fx.LossScale(initial, growth), fx.Adam(eta))


def test_float16_with_loss_scaling_keeps_float32_masters_and_reaches_the_float32_loss():
    m32, _, _ = fit(None)
    m = seed_model()
    st = fx.setup(scaled(), m)
    h = fx.train(loss, m, [(X, Y)], st, epochs=3000, precision="float16")
    l16 = np.asarray(h.losses, np.float32)
    assert m[0].weight.dtype == jnp.float32
    assert st.layers[0].weight.state[1][0].dtype == jnp.float32  # Adam's moments
    assert np.array_equal(l16, l16.astype(np.float16).astype(np.float32))  # float16 losses
    assert float(loss(m, X, Y)) <= 1.5 * float(loss(m32, X, Y))


def test_an_overflowing_float16_step_is_skipped_and_the_scale_halves():
    """d loss/d prediction is 2·(w·x − y)·S = 2·10·S in float16: it overflows (> 65504)
    for S = 2^15 … 2^12, so four steps are skipped (the weight unchanged) while S halves,
    and the fifth, at S = 2^11, is taken."""
    m = fx.Dense(np.zeros((1, 1), np.float32), False)
    x, y = np.ones((1, 1), np.float32), np.full((1, 1), 10.0, np.float32)
    st = fx.setup(scaled(eta=0.5), m)
    scales = []

    def cb():
        s, n, ok = st.weight.state[0]
        scales.append((float(s), int(n), bool(ok), float(m.weight[0, 0])))

    fx.train(loss, m, [(x, y)], st, epochs=5, cb=cb, precision="float16")
    want = [(2.0**14, 0, False, 0.0), (2.0**13, 0, False, 0.0), (2.0**12, 0, False, 0.0)]
    want += [(2.0**11, 0, False, 0.0), (2.0**11, 1, True, 0.5)]  # Adam's first step: η
    assert scales == want


def test_the_scale_doubles_after_growth_steps_finite_steps():
    m = seed_model()
    st = fx.setup(scaled(initial=1.0, growth=3), m)
    fx.train(loss, m, [(X, Y)], st, epochs=7, precision="float16")
    s, n, ok = st.layers[0].weight.state[0]
    assert (float(s), int(n), bool(ok)) == (4.0, 1, True)  # doubled after steps 3 and 6


def test_float16_gives_the_same_bits_however_split_and_after_a_save(tmp_path):
    a = seed_model()
    sa = fx.setup(scaled(initial=2.0**20, growth=5), a)  # overflows, then grows: both paths
    fx.train(loss, a, [(X, Y)], sa, epochs=30, precision="float16")
    b = seed_model()
    sb = fx.setup(scaled(initial=2.0**20, growth=5), b)
    for i in range(30):
        if i == 12:
            fx.save(str(tmp_path / "c.safetensors"), b, sb)
            b = seed_model()
            sb = fx.setup(scaled(initial=2.0**20, growth=5), b)
            fx.load(str(tmp_path / "c.safetensors"), b, sb)
        fx.train(loss, b, [(X, Y)], sb, precision="float16", cb=lambda: None)
    for p, q in zip(fx.params(a), fx.params(b)):
        assert np.array_equal(np.asarray(p), np.asarray(q))
    assert float(sa.layers[0].weight.state[0][0]) == float(sb.layers[0].weight.state[0][0])
