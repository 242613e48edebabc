"""The optimiser interface: setup/update in both styles, for every rule; a user's own rule
everywhere; tied weights; freeze/thaw; adjust; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import seed_data, seed_model

import fluxjax as fx

X, Y = seed_data()

RULES = [
    fx.Descent(0.05),
    fx.Momentum(),
    fx.Nesterov(),
    fx.RMSProp(),
    fx.RMSProp(centred=True),
    fx.Adam(),
    fx.RAdam(),
    fx.AdaMax(),
    fx.OAdam(),
    fx.AdaGrad(),
    fx.AdaDelta(),
    fx.AMSGrad(),
    fx.NAdam(),
    fx.AdamW(lambda_=0.01),
    fx.AdaBelief(),
    fx.Lion(),
    fx.Rprop(),
    fx.OptimiserChain(fx.WeightDecay(), fx.Adam()),
    fx.OptimiserChain(fx.SignDecay(), fx.Adam()),
    fx.OptimiserChain(fx.ClipGrad(0.5), fx.Descent(0.05)),
    fx.OptimiserChain(fx.ClipNorm(1.0), fx.Descent(0.05)),
    fx.OptimiserChain(fx.Adam(), fx.InvDecay()),
    fx.OptimiserChain(fx.ExpDecay(1.0, 0.5, 2), fx.Descent(0.05)),
    fx.OptimiserChain(fx.AccumGrad(2), fx.Adam()),
    fx.Adam(eta=fx.Exponential(0.01, 0.9)),
]


def _three_ways(rule_factory, steps=6):
    """The same steps through implicit update, explicit update and train."""
    runs = []
    for mode in ("implicit", "explicit", "train"):
        m = seed_model()
        rule = rule_factory()
        if mode == "implicit":
            ps = fx.params(m)
            for _ in range(steps):
                gs = fx.gradient(lambda m=m: fx.mse(m(X), Y), ps)
                fx.update(rule, ps, gs)
        elif mode == "explicit":
            state = fx.setup(rule, m)
            for _ in range(steps):
                (g,) = fx.gradient(lambda mm: fx.mse(mm(X), Y), m)
                fx.update(state, m, g)
        else:
            fx.train(lambda x, y, m=m: fx.mse(m(x), y), fx.params(m), [(X, Y)], rule, epochs=steps)
        runs.append([np.asarray(p) for p in fx.params(m)])
    return runs


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_implicit_explicit_and_train_agree(rule):
    factory = lambda: rule.replace()  # noqa: E731  (a fresh copy: no shared implicit state)
    implicit, explicit, trained = _three_ways(factory)
    start = [np.asarray(p) for p in fx.params(seed_model())]
    assert any(not np.allclose(a, b) for a, b in zip(implicit, start)), "nothing moved"
    for a, b, c in zip(implicit, explicit, trained):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=2e-5, atol=1e-6)


class Halving(fx.Rule):
    """A user's rule in a few lines: a step of eta·g, with eta halved at every update."""

    formula = "d = η·g; η ← η/2"

    def __init__(self, eta=0.1):
        self.eta = eta

    def init(self, x):
        return jnp.asarray(self.eta, x.dtype)

    def apply(self, state, x, dx):
        return state / 2, state * dx


def test_a_custom_rule_works_everywhere():
    w0 = np.asarray(seed_model()[1].weight)
    implicit, explicit, trained = _three_ways(Halving, steps=3)
    for a, b in zip(implicit, trained):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # chained after a clip, compiled inside train
    m = seed_model()
    chain = fx.OptimiserChain(fx.ClipGrad(1e9), Halving())
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], chain, epochs=3)
    np.testing.assert_allclose(m[1].weight, trained[2], rtol=1e-6)
    assert not np.allclose(trained[2], w0)


def test_tied_weights_get_one_state_and_one_update():
    a, b = fx.Dense(1, 1, bias=False), fx.Dense(1, 1, bias=False)
    a.weight = jnp.array([[1.0]])
    b.weight = a.weight
    m = fx.Chain(a, b)  # y = w² x
    state = fx.setup(fx.Descent(0.1), m)
    assert state.layers[0].weight is state.layers[1].weight
    (g,) = fx.gradient(lambda m: m(jnp.array([[1.0]])).sum(), m)
    fx.update(state, m, g)
    # d(w²)/dw = 2w = 2: the two contributions add up, one step of 0.1·2
    np.testing.assert_allclose(m[0].weight, [[0.8]])
    assert m[0].weight is m[1].weight


def test_freeze_thaw_and_adjust():
    m = seed_model()
    state = fx.setup(fx.Descent(0.1), m)
    fx.freeze(state.layers[0])
    (g,) = fx.gradient(lambda mm: fx.mse(mm(X), Y), m)
    w0, v0 = np.asarray(m[0].weight), np.asarray(m[1].weight)
    fx.update(state, m, g)
    np.testing.assert_array_equal(m[0].weight, w0)
    np.testing.assert_allclose(m[1].weight, v0 - 0.1 * np.asarray(g[1].weight), rtol=1e-6)
    fx.thaw(state.layers[0])
    fx.adjust(state, 0.0)
    fx.update(state, m, g)
    np.testing.assert_allclose(m[1].weight, v0 - 0.1 * np.asarray(g[1].weight), rtol=1e-6)
    chain = fx.setup(fx.OptimiserChain(fx.ClipNorm(1.0), fx.Adam()), m)
    fx.adjust(chain, beta=(0.5, 0.6))
    assert chain.layers[1].bias.rule.rules[1].beta == (0.5, 0.6)
    with pytest.raises(TypeError, match="no rule in this optimiser has a field 'gamma'"):
        fx.adjust(chain, gamma=1.0)
    with pytest.raises(TypeError, match="not the model"):
        fx.freeze(m)


def test_clipnorm_throw_refuses_a_non_finite_gradient():
    m = fx.Dense(jnp.array([[1.0]]), jnp.array([0.0]))
    state = fx.setup(fx.OptimiserChain(fx.ClipNorm(1.0), fx.Adam()), m)
    g = fx.Dense(jnp.array([[jnp.inf]]), jnp.array([1.0]))
    with pytest.raises(FloatingPointError, match=r"Dense.weight.*no parameter was changed"):
        fx.update(state, m, g)
    # all or nothing: the bias's finite gradient changed neither the bias nor its moments
    np.testing.assert_array_equal(m.weight, [[1.0]])
    np.testing.assert_array_equal(m.bias, [0.0])
    for a in jax.tree_util.tree_leaves(state.bias.state[1][:2]):
        np.testing.assert_array_equal(a, np.zeros_like(a))
    # the next, finite update is Adam's first step: x - eta·sign(g) (bias-corrected moments)
    fx.update(state, m, fx.Dense(jnp.array([[0.5]]), jnp.array([1.0])))
    np.testing.assert_allclose(m.weight, [[1.0 - 1e-3]], rtol=1e-5)
    np.testing.assert_allclose(m.bias, [-1e-3], rtol=1e-4)


def test_update_argument_errors():
    m = fx.Dense(1, 1)
    with pytest.raises(TypeError, match="fx.setup"):
        fx.update(fx.Adam(), m, None)
    with pytest.raises(TypeError, match="first argument must be an optimiser rule"):
        fx.update("adam", m, None)
    with pytest.raises(TypeError, match="rule must be an optimiser rule"):
        fx.setup("adam", m)


def test_implicit_state_is_keyed_by_slot_and_survives_new_arrays():
    # Adam's moments stay with the slot (m.weight), though every step puts a new array there
    m = seed_model()
    opt = fx.Adam()
    ps = fx.params(m)
    for _ in range(2):
        fx.update(opt, ps, fx.gradient(lambda: fx.mse(m(X), Y), ps))
    store = opt._implicit_store()
    if store.owner is not None:  # the live state sits in the training plan: take it back
        store.owner.flush()
    assert len(store.records) == 4
    (mom, vel, bt) = next(iter(store.records.values())).state
    np.testing.assert_allclose(bt, [0.9**3, 0.999**3], rtol=1e-6)
