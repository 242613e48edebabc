"""Optax both ways: Optax transformations as rules (train, setup, update, OptimiserChain)
against Optax's own loop, and fluxjax rules as Optax transformations against fx.update."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxjax as fx
from fluxjax.optimise.optax import OptaxRule, as_rule

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3)).astype(np.float32)
Y = RNG.normal(size=(8, 2)).astype(np.float32)
BATCHES = [(X[i : i + 4], Y[i : i + 4]) for i in (0, 4)]
W0 = RNG.normal(size=(2, 3)).astype(np.float32)
B0 = RNG.normal(size=(2,)).astype(np.float32)


def model() -> fx.Dense:
    return fx.Dense(jnp.array(W0), jnp.array(B0), fx.tanh)


def pure_loss(p, x, y):  # the same model as a pure function of a dict, for Optax's loop
    return jnp.mean((jnp.tanh(x @ p["weight"].T + p["bias"]) - y) ** 2)


def optax_loop(tx, batches, epochs):
    """Optax's own training loop: value_and_grad, tx.update, apply_updates."""
    p = {"weight": jnp.array(W0), "bias": jnp.array(B0)}
    state = tx.init(p)
    for _ in range(epochs):
        for x, y in batches:
            g = jax.grad(pure_loss)(p, x, y)
            upd, state = tx.update(g, state, p)
            p = optax.apply_updates(p, upd)
    return p


def close(m, p, tol=2e-6):
    np.testing.assert_allclose(np.asarray(m.weight), np.asarray(p["weight"]), atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(m.bias), np.asarray(p["bias"]), atol=tol, rtol=0)


def moved(m):  # guards against a test that passes because nothing trained
    return float(np.abs(np.asarray(m.weight) - W0).max())


TRANSFORMATIONS = [
    lambda: optax.adamw(1e-2, weight_decay=0.1),
    lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    lambda: optax.lion(1e-2),
    lambda: optax.adam(optax.cosine_decay_schedule(0.05, 10)),
]


@pytest.mark.parametrize("make", TRANSFORMATIONS)
def test_train_with_an_optax_transformation_matches_optaxs_loop(make):
    tx = make()
    m = model()
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), BATCHES, tx, epochs=5)
    close(m, optax_loop(make(), BATCHES, 5))
    assert moved(m) > 1e-2


def test_implicit_state_carries_over_between_train_calls():
    tx, m = optax.adam(0.05), model()

    def loss(x, y):
        return fx.mse(m(x), y)

    for _ in range(4):  # the tutorial's loop: one train call per epoch, the same optimiser
        fx.train(loss, fx.params(m), BATCHES, tx)
    close(m, optax_loop(optax.adam(0.05), BATCHES, 4))
    # the tutorial's exact loop: one batch per call (train's one-step fast path)
    tx, m = optax.adam(0.05), model()
    for _ in range(3):
        fx.train(loss, fx.params(m), BATCHES[:1], tx)
    close(m, optax_loop(optax.adam(0.05), BATCHES[:1], 3))


def test_explicit_mode_setup_and_update_take_optax():
    m = model()
    state = fx.setup(optax.adamw(1e-2, weight_decay=0.1), m)
    for _ in range(3):
        for x, y in BATCHES:
            g = fx.gradient(lambda m, x, y: fx.mse(m(x), y), m, x, y)[0]
            fx.update(state, m, g)
    close(m, optax_loop(optax.adamw(1e-2, weight_decay=0.1), BATCHES, 3))
    # and fx.train in explicit mode, with the state from setup
    m2 = model()
    fx.train(lambda m, x, y: fx.mse(m(x), y), m2, BATCHES, fx.setup(optax.sgd(0.1), m2))
    close(m2, optax_loop(optax.sgd(0.1), BATCHES, 1))


def test_implicit_update_takes_optax():
    m, tx = model(), optax.sgd(0.2, momentum=0.5)
    ps = fx.params(m)
    for x, y in BATCHES * 2:
        fx.update(tx, ps, fx.gradient(lambda x=x, y=y: fx.mse(m(x), y), ps))
    close(m, optax_loop(optax.sgd(0.2, momentum=0.5), BATCHES, 2))


def test_optax_inside_an_optimiser_chain():
    # fluxjax's ClipGrad, then Optax's Adam: the same as Optax's chain of clip and adam
    m = model()
    rule = fx.OptimiserChain(fx.ClipGrad(0.05), optax.adam(0.02))
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), BATCHES, rule, epochs=3)
    close(m, optax_loop(optax.chain(optax.clip(0.05), optax.adam(0.02)), BATCHES, 3))
    assert isinstance(rule.rules[1], OptaxRule)


def test_clip_by_global_norm_is_applied_over_all_arrays():
    # it becomes fx.ClipGlobalNorm: one norm over weight and bias, Optax's own result
    assert isinstance(as_rule(optax.clip_by_global_norm(1.0)), fx.ClipGlobalNorm)
    tx = optax.chain(optax.clip_by_global_norm(0.1), optax.sgd(0.3))
    m = model()
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), BATCHES, tx, epochs=2)
    close(m, optax_loop(tx, BATCHES, 2))
    m2 = model()  # what it was before: clip_by_norm per array
    rule = fx.OptimiserChain(fx.ClipNorm(0.1), fx.Descent(0.3))
    fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m2), BATCHES, rule, epochs=2)
    assert float(jnp.abs(m.weight - m2.weight).max()) > 1e-4


def test_as_rule_passes_other_values_through_and_errors_name_the_fix():
    rule = fx.Adam()
    assert as_rule(rule) is rule and as_rule("adam") == "adam"
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        OptaxRule("adam")
    with pytest.raises(TypeError, match="rule such as fx.Adam"):
        fx.train(lambda x, y: 0.0, fx.params(model()), BATCHES, "adam")


# -- fluxjax rules as Optax transformations ------------------------------------------------
RULES = [
    lambda: fx.Adam(0.05),
    lambda: fx.OptimiserChain(fx.WeightDecay(0.1), fx.Momentum(0.05)),
    lambda: fx.OptimiserChain(fx.SkipNonFinite(), fx.AccumGrad(2), fx.Adam(0.05)),
    lambda: fx.Descent(fx.Exponential(0.2, 0.8)),
]


def grads_sequence():
    """Gradients for a hand-written loop, one of them non-finite (SkipNonFinite skips it)."""
    out = []
    for k in range(7):
        g = {"weight": RNG.normal(size=(2, 3)), "bias": RNG.normal(size=(2,))}
        if k == 3:
            g["weight"][0, 0] = np.nan
        out.append({n: jnp.asarray(v, jnp.float32) for n, v in g.items()})
    return out


@pytest.mark.parametrize("make", RULES)
def test_as_optax_in_a_hand_written_loop_matches_fx_update(make):
    gs = grads_sequence()
    if "SkipNonFinite" not in repr(make()):
        gs = [g for i, g in enumerate(gs) if i != 3]  # the others would step on a NaN
    # hand-written JAX loop with rule.as_optax(), jitted
    tx = make().as_optax()
    p = {"weight": jnp.array(W0), "bias": jnp.array(B0)}
    state = tx.init(p)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for g in gs:
        upd, state = step(g, state, p)
        p = optax.apply_updates(p, upd)
    # fx.update in explicit mode over the same gradients
    m = model()
    st = fx.setup(make(), m)
    for g in gs:
        fx.update(st, m, {"weight": g["weight"], "bias": g["bias"]})
    close(m, p, tol=1e-6)
    assert moved(m) > 1e-2
    assert not bool(state.failed)


def test_as_optax_refuses_a_step_like_fx_update_and_says_so_in_the_state():
    tx = fx.ClipNorm(1.0).as_optax()  # throw=True: a non-finite norm refuses the update
    p = [jnp.array([1.0, 2.0]), jnp.array([3.0])]
    state = tx.init(p)
    upd, state = tx.update([jnp.array([0.5, 0.5]), jnp.array([jnp.inf])], state, p)
    assert bool(state.failed) and int(state.count) == 0
    assert all(float(jnp.abs(u).max()) == 0.0 for u in upd)  # no leaf changed
    upd, state = tx.update([jnp.array([3.0, 4.0]), jnp.array([0.5])], state, p)
    assert not bool(state.failed) and int(state.count) == 1
    np.testing.assert_allclose(np.asarray(upd[0]), [-0.6, -0.8], rtol=1e-6)


def test_as_optax_needs_params():
    tx = fx.Adam().as_optax()
    p = [jnp.ones(2)]
    with pytest.raises(ValueError, match="pass params too"):
        tx.update(p, tx.init(p))
