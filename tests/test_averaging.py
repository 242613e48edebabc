"""Weight averaging (EMA, SWA) against float64 NumPy recurrences over the same steps; the
averages carried bit-exactly through fused runs, a save and a load; swapped and metrics(on=)."""

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

RNG = np.random.default_rng(11)
X = RNG.normal(size=(8, 3)).astype(np.float32)
Y = RNG.normal(size=(8, 2)).astype(np.float32)
W0 = RNG.normal(size=(2, 3)).astype(np.float32)
B0 = RNG.normal(size=(2,)).astype(np.float32)
ETA = 0.1


def loss(m, x, y):
    return fx.mse(m(x), y)


def model():
    return fx.Dense(jnp.array(W0), jnp.array(B0))


def trajectory(steps):
    """Descent(ETA) on mean((x Wᵀ + b − y)²) in float64, by hand: the weights after each step."""
    w, b = W0.astype(np.float64), B0.astype(np.float64)
    out = []
    for _ in range(steps):
        r = X @ w.T + b - Y
        k = 2 / r.size
        w, b = w - ETA * k * r.T @ X, b - ETA * k * r.sum(0)
        out.append((w, b))
    return out


def averages(rule, target, state, m=None):
    m = target if m is None else m
    with rule.swapped(target, state):
        return np.asarray(m.weight), np.asarray(m.bias)


@pytest.mark.parametrize("every", [1, 3])
def test_ema_is_the_keras_recurrence(every):
    decay, steps = 0.8, 10
    ema = fx.EMA(decay, every=every)
    m = model()
    state = fx.setup(fx.OptimiserChain(fx.Descent(ETA), ema), m)
    fx.train(loss, m, [(X, Y)], state, epochs=steps)
    aw, ab = W0.astype(np.float64), B0.astype(np.float64)
    for t, (w, b) in enumerate(trajectory(steps), 1):
        if t % every == 0:
            aw, ab = decay * aw + (1 - decay) * w, decay * ab + (1 - decay) * b
    got_w, got_b = averages(ema, m, state)
    np.testing.assert_allclose(got_w, aw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, ab, rtol=1e-5, atol=1e-6)
    w, _ = trajectory(steps)[-1]
    np.testing.assert_allclose(np.asarray(m.weight), w, rtol=1e-5, atol=1e-6)  # restored
    assert np.abs(got_w - w).max() > 1e-3  # the average is not the weights


def test_swa_is_the_mean_of_the_snapshots_in_implicit_mode():
    swa = fx.SWA(start=3, every=2)
    m = model()
    opt = fx.OptimiserChain(fx.Descent(ETA), swa)
    ps = fx.params(m)
    fx.train(lambda x, y: loss(m, x, y), ps, [(X, Y)], opt, epochs=9)
    snaps = [wb for t, wb in enumerate(trajectory(9), 1) if t >= 3 and (t - 3) % 2 == 0]
    got_w, got_b = averages(swa, ps, opt, m)
    np.testing.assert_allclose(got_w, np.mean([w for w, _ in snaps], 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, np.mean([b for _, b in snaps], 0), rtol=1e-5, atol=1e-6)


def test_the_average_is_bit_exact_however_the_run_is_split(tmp_path):
    def fresh():
        ema = fx.EMA(0.9)
        m = model()
        return ema, m, fx.setup(fx.OptimiserChain(fx.Adam(0.01), ema), m)

    ema, m, st = fresh()
    fx.train(loss, m, [(X, Y)], st, epochs=12)
    want = averages(ema, m, st)
    ema2, m2, st2 = fresh()
    for _ in range(5):
        fx.train(loss, m2, [(X, Y)], st2, cb=lambda: None)
    fx.save(tmp_path / "mid.safetensors", m2, st2)
    ema3, m3, st3 = fresh()  # a new model and state, loaded from the file
    fx.load(tmp_path / "mid.safetensors", m3, st3)
    fx.train(loss, m3, [(X, Y)], st3, epochs=7, cb=fx.every(3, lambda: None))
    got = averages(ema3, m3, st3)
    assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_metrics_on_the_averaged_weights():
    ema = fx.EMA(0.5)
    m = model()
    state = fx.setup(fx.OptimiserChain(fx.Descent(ETA), ema), m)
    val = fx.metrics(every=4, on=ema.swapped(m, state), ema_loss=lambda: loss(m, X, Y))
    h = fx.train(loss, m, [(X, Y)], state, epochs=4, cb=val)
    with ema.swapped(m, state):
        want = float(loss(m, X, Y))
    assert float(h["ema_loss"][-1]) == pytest.approx(want, rel=1e-6)
    assert float(loss(m, X, Y)) != pytest.approx(want, rel=1e-3)


def test_swapped_without_averages_names_the_fix():
    m = model()
    with pytest.raises(ValueError, match="last member of the OptimiserChain"):
        with fx.EMA().swapped(m, fx.setup(fx.Adam(), m)):
            pass
    with pytest.raises(TypeError, match="reusable context manager"):
        fx.metrics(on="ema", v=lambda: 0.0)
