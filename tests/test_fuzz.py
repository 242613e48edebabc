"""Hypothesis properties: DataLoader epochs, losses across agg, save/load and state/loadmodel
round trips on random models and optimiser states. Small example counts, so the suite stays
fast; every property compares against an independent reference (sets of indices, NumPy sums,
the arrays before saving)."""

from __future__ import annotations

import os
import tempfile

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxjax as fx

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    n=st.integers(1, 40),
    bs=st.integers(1, 45),
    partial=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dataloader_each_observation_once_per_epoch(n, bs, partial, shuffle, seed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batchsize > n warns (Flux's message)
        loader = fx.DataLoader(
            np.arange(n), batchsize=bs, shuffle=shuffle, partial=partial, rng=seed
        )
    b = min(bs, n)
    for _ in range(2):
        seen = np.concatenate([*loader, np.zeros(0, int)])
        assert len(np.unique(seen)) == len(seen)  # no observation twice
        want = n if partial else (n // b) * b
        assert len(seen) == want and set(seen) <= set(range(n))
        full, tail = loader.epoch_indices()  # the fused path's view agrees
        both = np.concatenate([full.ravel(), tail])
        assert len(both) == want and len(np.unique(both)) == want


@FAST
@given(n=st.integers(2, 30), bs=st.integers(1, 7), stop=st.integers(1, 6), seed=st.integers(0, 99))
def test_dataloader_restored_mid_epoch_yields_the_rest(n, bs, stop, seed):
    loader = fx.DataLoader(np.arange(n), batchsize=min(bs, n), shuffle=True, rng=seed)
    it = iter(loader)
    taken = [next(it) for _ in range(min(stop, len(loader) - 1))]  # stop mid-epoch
    saved = loader.state()
    rest = [b for b in it]
    nxt = np.concatenate(list(loader))
    again = fx.DataLoader(np.arange(n), batchsize=min(bs, n), shuffle=True, rng=seed + 1)
    again.loadstate(saved)
    got = list(again)
    assert len(got) == len(rest) == len(loader) - len(taken)
    for a, b in zip(got, rest):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.concatenate(list(again)), nxt)
    epoch = np.concatenate(taken + got)
    assert sorted(epoch.tolist()) == list(range(n))


LOSSES = [fx.mse, fx.mae, fx.huber_loss, fx.msle, fx.binarycrossentropy, fx.crossentropy]


@FAST
@given(
    i=st.integers(0, len(LOSSES) - 1),
    shape=st.sampled_from([(1, 1), (3, 2), (5, 4)]),  # few shapes: few compilations
    seed=st.integers(0, 2**16),
)
def test_losses_finite_and_consistent_across_agg(i, shape, seed):
    f = LOSSES[i]
    rng = np.random.default_rng(seed)
    yhat = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
    y = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    each = np.asarray(f(yhat, y, agg=lambda l: l), np.float64)
    assert np.isfinite(each).all()
    np.testing.assert_allclose(float(f(yhat, y, agg=sum)), each.sum(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(f(yhat, y)), each.mean(), rtol=1e-5, atol=1e-6)


RULES = [
    lambda: fx.Descent(0.1),
    lambda: fx.Momentum(0.01),
    lambda: fx.Adam(0.01),
    lambda: fx.RMSProp(0.01, centred=True),
    lambda: fx.OptimiserChain(fx.ClipGrad(1.0), fx.AdamW(0.01)),
]
sizes = st.sampled_from([[1, 2], [3, 1], [2, 3, 1], [4, 2, 2, 1]])  # few compilations


def chain(ns: list[int], seed: int) -> fx.Chain:
    layers = [fx.Dense(a, b, fx.tanh) for a, b in zip(ns, ns[1:])]
    m = fx.Chain(*layers)
    rng = np.random.default_rng(seed)
    for layer in m:
        layer.weight = rng.normal(size=layer.weight.shape).astype(np.float32)
        layer.bias = rng.normal(size=layer.bias.shape).astype(np.float32)
    return m


def leaves(tree) -> list[np.ndarray]:
    import jax

    from fluxjax.optimise.state import leaves as _leaves

    return [np.asarray(a) for lf in _leaves(tree) for a in jax.tree_util.tree_leaves(lf.state)]


@SLOW
@given(ns=sizes, r=st.integers(0, len(RULES) - 1), steps=st.integers(0, 2), seed=st.integers(0, 99))
def test_save_load_round_trips_random_models_and_states(ns, r, steps, seed):
    m = chain(ns, seed)
    state = fx.setup(RULES[r](), m)
    x = np.random.default_rng(seed).normal(size=(3, ns[0])).astype(np.float32)
    for _ in range(steps):
        g = fx.gradient(lambda m: (m(x) ** 2).mean(), m)[0]
        fx.update(state, m, g)
    path = os.path.join(tempfile.mkdtemp(), "c.safetensors")
    fx.save(path, m, state, step=steps)
    m2 = chain(ns, seed + 1)
    state2 = fx.setup(RULES[r](), m2)
    assert fx.load(path, m2, state2) == {"step": steps}
    for a, b in zip(fx.params(m), fx.params(m2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(leaves(state), leaves(state2), strict=True):
        np.testing.assert_array_equal(a, b)


@SLOW
@given(ns=sizes, seed=st.integers(0, 99))
def test_state_and_loadmodel_are_inverse(ns, seed):
    a, b = chain(ns, seed), chain(ns, seed + 1)
    fx.loadmodel(b, fx.state(a))
    sa, sb = fx.state(a), fx.state(b)
    for la, lb in zip(sa["layers"], sb["layers"]):
        for k in la:
            np.testing.assert_array_equal(la[k], lb[k])
            assert la[k].dtype == lb[k].dtype == np.float32
    assert jnp.asarray(b[0].weight).dtype == jnp.float32
