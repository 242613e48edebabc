"""Modes, state written back by train and gradient, BatchNorm's running statistics,
dropout's rate and reproducibility, recurrent state, shape errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import finite_difference

import fluxjax as fx
from fluxjax.module import walk


def _no_tracers(m):
    return not any(isinstance(a, jax.core.Tracer) for _, _, a in walk(m, trainable_only=False))


def test_modes_automatic_and_overridden():
    d = fx.Dropout(0.5)
    x = jnp.ones((50, 4))
    assert (d(x) == x).all()  # automatic: inactive outside differentiation

    def both(x):
        y = d(x)
        return y.sum(), y

    (_, y), _ = fx.withgradient(both, x)
    assert set(np.unique(np.asarray(y))) == {0.0, 2.0}  # active inside gradient
    fx.testmode(d)
    (_, y), _ = fx.withgradient(both, x)
    assert (y == x).all()
    assert set(np.unique(np.asarray(fx.trainmode(d)(x)))) == {0.0, 2.0}
    assert fx.testmode(d, None).active is None and fx.testmode(d, False).active is True
    with pytest.raises(TypeError, match="mode must be True, False, None"):
        fx.trainmode(d, 1)


def test_batchnorm_running_stats_after_k_train_steps_match_closed_form():
    fx.seed(0)
    rng = np.random.default_rng(0)
    bn = fx.BatchNorm(3, momentum=0.2)
    model = fx.Chain(bn, fx.Dense(3, 1))
    batches = [(rng.normal(2.0, 3.0, (8, 3)).astype(np.float32), np.ones((8, 1), np.float32))
               for _ in range(5)]  # fmt: skip
    fx.train(lambda m, x, y: fx.mse(m(x), y), model, batches, fx.setup(fx.Adam(), model))
    mu, var = np.zeros(3), np.ones(3)
    for x, _ in batches:
        x = x.astype(np.float64)
        mu = 0.8 * mu + 0.2 * x.mean(0)
        var = 0.8 * var + 0.2 * x.var(0, ddof=1)  # unbiased for the running value
    np.testing.assert_allclose(bn.mu, mu, rtol=1e-5)
    np.testing.assert_allclose(bn.sigma2, var, rtol=1e-5)
    assert _no_tracers(model)
    # test mode normalises with the running statistics
    x = batches[0][0]
    want = (x - mu) / np.sqrt(var + 1e-5) * np.asarray(bn.gamma) + np.asarray(bn.beta)
    np.testing.assert_allclose(bn(x), want, rtol=1e-4, atol=1e-5)


def test_gradient_and_withgradient_write_state_back():
    fx.seed(1)
    m = fx.Chain(fx.Dense(2, 3), fx.BatchNorm(3), fx.Dropout(0.5))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 2)), jnp.float32)
    keys, mus = [m[2].key], [m[1].mu]
    fx.gradient(lambda: m(x).sum(), fx.params(m))  # implicit
    fx.withgradient(lambda mm: mm(x).sum(), m)  # explicit: the model is an argument
    fx.pullback(lambda mm: mm(x), m)
    keys.append(m[2].key)
    mus.append(m[1].mu)
    assert not (keys[0] == keys[1]).all() and not (mus[0] == mus[1]).all()
    h = m[0](x)
    want = 0.9 * (0.9 * (0.9 * 0 + 0.1 * h.mean(0)) + 0.1 * h.mean(0)) + 0.1 * h.mean(0)
    np.testing.assert_allclose(m[1].mu, want, rtol=1e-5)  # three updates, one per call
    assert _no_tracers(m)
    # two gradients draw different masks
    g1 = fx.gradient(lambda: m[2](jnp.ones((1, 40))).sum(), fx.params(m))
    g2 = fx.gradient(lambda: m[2](jnp.ones((1, 40))).sum(), fx.params(m))
    assert g1 is not g2 and not (m[2].key == keys[1]).all()


def test_no_tracer_leaks_from_a_failing_function():
    bn = fx.BatchNorm(2)
    mu = bn.mu

    def bad():
        bn(jnp.ones((3, 2)))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fx.gradient(bad, fx.params(bn))
    assert bn.mu is mu and _no_tracers(bn)


def test_state_updated_in_an_unmanaged_transformation_is_a_clear_error():
    d = fx.trainmode(fx.Dropout(0.5))
    with pytest.raises(RuntimeError, match="tracer in the layer"):
        jax.jit(lambda x: d(x))(jnp.ones(3))
    assert jax.jit(lambda d, x: d(x))(d, jnp.ones(3)).shape == (3,)  # as an argument: fine


def _dropout_run(fused: bool):
    fx.seed(7)
    m = fx.Chain(fx.Dense(3, 8), fx.Dropout(0.5), fx.Dense(8, 1))
    rng = np.random.default_rng(3)
    data = [(rng.normal(size=(4, 3)).astype(np.float32), np.ones((4, 1), np.float32))
            for _ in range(4)]  # fmt: skip
    st = fx.setup(fx.Descent(0.1), m)
    loss = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    if fused:
        fx.train(loss, m, data, st, epochs=3)
    else:
        for _ in range(3):
            for b in data:
                fx.train(loss, m, [b], st)
    return np.asarray(m[0].weight), np.asarray(m[1].key)


def test_dropout_masks_equal_fused_and_step_by_step():
    (w1, k1), (w2, k2) = _dropout_run(True), _dropout_run(False)
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_allclose(w1, w2, rtol=1e-6)
    fx.seed(7)
    assert not (np.asarray(fx.Dropout(0.5).key) == k1).all()  # the key did advance


def test_dropout_keep_rate_scaling_and_dims():
    fx.seed(2)
    d = fx.trainmode(fx.Dropout(0.3))
    y = np.asarray(d(jnp.ones(200_000)))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 4 * np.sqrt(0.7 * 0.3 / y.size)
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    z = np.asarray(fx.trainmode(fx.Dropout(0.5, dims=-1))(jnp.ones((4, 3, 3, 64))))
    assert (z == z[:1, :1, :1, :]).all() and 0 < (z[0, 0, 0] == 0).sum() < 64
    a = fx.trainmode(fx.AlphaDropout(0.2))(
        jnp.asarray(np.random.default_rng(0).normal(size=200_000), jnp.float32)
    )
    assert abs(float(a.mean())) < 0.02 and abs(float(a.std()) - 1) < 0.02
    assert (fx.trainmode(fx.Dropout(1.0))(jnp.ones(3)) == 0).all()
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        fx.Dropout(1.5)


def test_stateful_rnn_in_train_and_reset():
    fx.seed(4)
    r = fx.RNN(2, 3)
    m = fx.Chain(r, fx.Dense(3, 1))
    x = np.random.default_rng(4).normal(size=(5, 4, 2)).astype(np.float32)

    def loss(x, y):
        fx.reset(r)
        out = [m(x[:, t]) for t in range(x.shape[1])]
        return fx.mse(out[-1], y)

    m(x[:, 0])  # the state takes its batch shape (a fused run's shapes are fixed)
    y = np.ones((5, 1), np.float32)
    fx.train(loss, fx.params(m), [(x, y)] * 2, fx.Adam())
    before = fx.fmap(jnp.copy, m)  # the parameters the next step's loss sees
    fx.train(loss, fx.params(m), [(x, y)], fx.Adam())
    assert r.state.shape == (5, 3) and _no_tracers(m)
    np.testing.assert_allclose(r.state, before[0](x)[:, -1], rtol=1e-5)  # the last step's
    with pytest.raises(
        ValueError, match=r"holds 5 observations but the input has 2.*fx.reset\(m, 2\)"
    ):
        r(x[:2, 0])
    fx.reset(m)
    np.testing.assert_array_equal(r.state, np.broadcast_to(r.cell.state0, (5, 3)))
    assert r(x[:2, 0]).shape == (2, 1 * 3) if fx.reset(m, 2) else False


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_stateful_gradient_reaches_state0_as_finite_differences(x64, kind):
    # Flux v0.12: after reset! the state *is* state0, so the gradient of stateful calls made
    # outside the reset reaches it; a state that has moved on gives it nothing
    rng = np.random.default_rng(5)
    m = getattr(fx, kind)(2, 3)
    m.cell.state0 = fx.fmap(lambda s: jnp.asarray(rng.standard_normal(s.shape)), m.cell.state0)
    m = fx.f64(m)
    xs = [jnp.asarray(rng.standard_normal((4, 2))) for _ in range(3)]
    s0 = [np.asarray(s) for s in jax.tree_util.tree_leaves(m.cell.state0)]

    def loss():
        return sum(jnp.sum(jnp.sin(m(x))) for x in xs)

    def at(i, v):
        fx.reset(m, 4)
        old = m.cell.state0
        leaves = jax.tree_util.tree_leaves(old)
        leaves[i] = jnp.asarray(v)
        m.cell.state0 = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(old), leaves)
        fx.reset(m, 4)
        out = loss()
        m.cell.state0 = old
        return out

    ps = fx.params(m)
    fx.reset(m, 4)
    gs = fx.gradient(loss, ps)
    got = [gs[s] for s in jax.tree_util.tree_leaves(m.cell.state0)]
    for i, s in enumerate(s0):
        want = finite_difference(lambda v, i=i: at(i, v), s)
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-8)
    assert np.abs(got[0]).sum() > 0
    moved = fx.gradient(loss, ps)  # the state now holds the last step's: nothing reaches state0
    assert all((np.asarray(moved[s]) == 0).all() for s in jax.tree_util.tree_leaves(m.cell.state0))
    fx.reset(m, 4)
    m.state = fx.fmap(jnp.copy, m.state)  # a state the user sets is read as it is
    assert not m.fresh


def test_shape_errors_name_layer_and_shapes():
    c = fx.Conv((3, 3), 1, 16)
    with pytest.raises(ValueError, match=r"Conv\(\(3, 3\), 1 => 16\) expects input of shape "
                       r"\(n, H, W, 1\), but got shape \(8, 1, 28, 28\).*moveaxis"):  # fmt: skip
        c(jnp.zeros((8, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"LSTM\(4 => 4\).*\(n, time, 4\).*\(2, 5\)"):
        fx.LSTM(4, 4)(jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"BatchNorm\(3\).*got shape \(2, 4\)"):
        fx.BatchNorm(3)(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"MaxPool\(\(2, 2\)\).*\(n, H, W, C\)"):
        fx.MaxPool((2, 2))(jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="indices must be in 0..9"):
        fx.Embedding(10, 2)(jnp.array([10]))
    with pytest.raises(ValueError, match="divisible by groups"):
        fx.Conv((3, 3), 3, 4, groups=2)
    with pytest.raises(ValueError, match="pad must be"):
        fx.Conv((3, 3), 1, 1, pad=(1, 2, 3))


def test_a_recurrent_model_saved_before_fresh_existed_still_loads(tmp_path):
    """Files written before the `fresh` flag lack it: the layer's stored state is used as
    it is (fresh False), and every other entry is still checked."""
    m = fx.Chain(fx.LSTM(2, 3), fx.Dense(3, 1))
    m(np.ones((4, 2), np.float32))  # a stateful step: the state is no longer state0
    old = {k: v for k, v in fx.state(m).items()}
    old["layers"] = list(old["layers"])
    old["layers"][0] = {k: v for k, v in old["layers"][0].items() if k != "fresh"}
    m2 = fx.Chain(fx.LSTM(2, 3), fx.Dense(3, 1))
    fx.loadmodel(m2, old)
    assert not bool(m2[0].fresh)
    for a, b in zip(jax.tree_util.tree_leaves(m[0].state), jax.tree_util.tree_leaves(m2[0].state)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    bad = dict(old, layers=[old["layers"][0], {}])
    with pytest.raises(ValueError, match="missing: layers.1.weight"):
        fx.loadmodel(fx.Chain(fx.LSTM(2, 3), fx.Dense(3, 1)), bad)
