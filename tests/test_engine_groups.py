"""Small arrays updated as one (``engine.groups``): an elementwise rule applied once to the
concatenation of a plan's small arrays must give the numbers of the rule applied array by
array (checked against Optax and NumPy), a rule that is not elementwise (a per-array norm,
a per-array skip) must never be grouped, and the grouped state must go back to each array
whole (saved, read by a callback, loaded)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxjax as fx
from fluxjax.engine import cache


def _model():
    fx.seed(0)
    return fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 2))


def _data():
    r = np.random.default_rng(1)
    x = r.standard_normal((16, 3)).astype(np.float32)
    return x, r.standard_normal((16, 2)).astype(np.float32)


def _arrays(m):
    return [np.asarray(a, np.float64) for a in fx.params(m)]


def _grads(m, x, y):
    g = fx.gradient(lambda m: fx.mse(m(x), y), m)[0]  # a Chain of the gradients
    return [np.asarray(getattr(g.layers[i], k)) for i in (0, 1) for k in ("weight", "bias")]


def _states(st):
    """Each array's first state array (Momentum's velocity), in the order of params."""
    return [
        np.asarray(getattr(st.layers[i], k).state[0]) for i in (0, 1) for k in ("weight", "bias")
    ]


def test_adam_on_a_grouped_plan_matches_optax_array_by_array():
    x, y = _data()
    m = _model()
    ps = [np.asarray(a) for a in fx.params(m)]
    tx = optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-8)
    p = [jnp.asarray(a) for a in ps]
    s = tx.init(p)

    def lossf(p):
        h = jnp.tanh(x @ p[0].T + p[1])
        return jnp.mean((h @ p[2].T + p[3] - y) ** 2)

    for _ in range(30):
        g = jax.grad(lossf)(p)
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x, y)], fx.Adam(0.01), epochs=30)
    plan = cache.LAST.plan
    assert any(len(u) > 1 for u in plan.grouping.units)  # the four arrays update as one
    for a, b in zip(_arrays(m), p):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("rule", ["ClipNorm", "SkipNonFinite"])
def test_a_per_array_rule_is_never_grouped(rule):
    """ClipNorm clips each array by its own norm: grouped, it would clip by the norm of
    all of them. SkipNonFinite skips only the array with a bad gradient."""
    x, y = _data()
    m = _model()
    before = _arrays(m)
    g = _grads(m, x, y)
    if rule == "ClipNorm":
        opt = fx.OptimiserChain(fx.ClipNorm(0.01), fx.Descent(1.0))
        want = [
            b - gi * min(1.0, 0.01 / np.linalg.norm(gi.astype(np.float64)))
            for b, gi in zip(before, g)
        ]
    else:
        opt = fx.OptimiserChain(fx.SkipNonFinite(), fx.Descent(0.5))
        want = [b - 0.5 * gi for b, gi in zip(before, g)]
    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x, y)], fx.setup(opt, m))
    assert all(len(u) == 1 for u in cache.LAST.plan.grouping.units)
    for a, w in zip(_arrays(m), want):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-7)


def test_grouped_state_reaches_each_array_whole(tmp_path):
    """A callback reading the state, a save and a load see each array's own state, as
    ``fx.update`` array by array would have made it."""
    x, y = _data()
    m = _model()
    st = fx.setup(fx.Momentum(0.1, 0.9), m)
    seen = []

    def cb(ctx):
        seen.append(_states(st))

    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x, y)], st, cb=cb, epochs=3)
    assert any(len(u) > 1 for u in cache.LAST.plan.grouping.units)
    # the same three steps through fx.update, array by array
    m2 = _model()
    st2 = fx.setup(fx.Momentum(0.1, 0.9), m2)
    for _ in range(3):
        grads = fx.gradient(lambda m: fx.mse(m(x), y), m2)[0]
        st2, m2 = fx.update(st2, m2, grads)
    want = _states(st2)
    assert [v.shape for v in seen[-1]] == [w.shape for w in want]
    for v, w in zip(seen[-1], want):
        np.testing.assert_allclose(v, w, rtol=1e-5, atol=1e-7)
    path = str(tmp_path / "m.safetensors")
    fx.save(path, m, st)
    m3, st3 = _model(), fx.setup(fx.Momentum(0.1, 0.9), _model())
    fx.load(path, m3, st3)
    for a, b in zip(_states(st), _states(st3)):
        assert (a == b).all()
