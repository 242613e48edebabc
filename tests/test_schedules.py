"""Schedules: values against closed forms and Optax, and use as rule hyperparameters."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fluxjax.optimise.rules import AdaGrad, Adam, Descent, OptimiserChain, Rprop, WeightDecay
from fluxjax.optimise.schedules import Cosine, Exponential, LinearWarmup, Step

TS = list(range(1, 40))


def cosine(start, stop, period, t):
    tau = min(t - 1, period) / period
    return stop + (start - stop) * (1 + math.cos(math.pi * tau)) / 2


def warmup(peak, n, after, t):
    if t <= n:
        return peak * t / n
    return after(t - n) if callable(after) else peak if after is None else after


CASES = [
    (Cosine(0.1, 0.01, 20), lambda t: cosine(0.1, 0.01, 20, t)),
    (Cosine(2.0, period=7), lambda t: cosine(2.0, 0.0, 7, t)),
    (Step(0.1, 0.5, 4), lambda t: 0.1 * 0.5 ** ((t - 1) // 4)),
    (Exponential(0.3, 0.9), lambda t: 0.3 * 0.9 ** (t - 1)),
    (LinearWarmup(0.5, 5), lambda t: warmup(0.5, 5, None, t)),
    (LinearWarmup(0.5, 5, 0.2), lambda t: warmup(0.5, 5, 0.2, t)),
    (
        LinearWarmup(0.5, 5, Exponential(0.5, 0.8)),
        lambda t: warmup(0.5, 5, lambda u: 0.5 * 0.8 ** (u - 1), t),
    ),
]


@pytest.mark.parametrize("sched, formula", CASES, ids=[repr(s) for s, _ in CASES])
def test_values_match_the_closed_form(sched, formula):
    want = [formula(t) for t in TS]
    np.testing.assert_allclose([float(sched(t)) for t in TS], want, rtol=1e-6, atol=1e-9)
    traced = jax.jit(jax.vmap(sched))(jnp.asarray(TS, jnp.int32))
    np.testing.assert_allclose(traced, want, rtol=1e-6, atol=1e-9)
    with jax.enable_x64(True):
        np.testing.assert_allclose([float(sched(t)) for t in TS], want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "sched, tx",
    [
        (Cosine(0.1, 0.01, 20), optax.cosine_decay_schedule(0.1, 20, alpha=0.1)),
        (Exponential(0.3, 0.9), optax.exponential_decay(0.3, 1, 0.9)),
        (Step(0.1, 0.5, 4), optax.exponential_decay(0.1, 4, 0.5, staircase=True)),
        (LinearWarmup(0.5, 5), optax.linear_schedule(0.1, 0.5, 4)),
    ],
)
def test_values_match_optax_at_count_t_minus_1(sched, tx):
    t = jnp.asarray(TS, jnp.int32)
    np.testing.assert_allclose(jax.vmap(sched)(t), jax.vmap(tx)(t - 1), rtol=1e-6, atol=1e-9)


def test_repr_is_the_constructor():
    assert repr(Cosine(1e-3, 0.0, 100)) == "Cosine(start=0.001, stop=0.0, period=100)"
    assert repr(Step(1.0, 0.5, 10)) == "Step(start=1.0, decay=0.5, step=10)"
    assert repr(LinearWarmup(1.0, 4, Exponential(1.0, 0.5))) == (
        "LinearWarmup(peak=1.0, warmup=4, after=Exponential(start=1.0, decay=0.5))"
    )
    assert repr(Adam(eta=Step(1.0, 0.5, 10))).startswith("Adam(eta=Step(start=1.0, ")


@pytest.mark.parametrize(
    "make, err, field",
    [
        (lambda: Cosine(1.0, 0.0, 0), ValueError, "period"),
        (lambda: Cosine(1.0), TypeError, "period"),
        (lambda: Step(1.0, -0.5, 10), ValueError, "decay"),
        (lambda: Step(1.0, 0.5, 0), ValueError, "step"),
        (lambda: Exponential(1.0, -1.0), ValueError, "decay"),
        (lambda: LinearWarmup(1.0, 0), ValueError, "warmup"),
        (lambda: LinearWarmup(1.0, 2.5), ValueError, "warmup"),
        (lambda: LinearWarmup(1.0, 4, "x"), TypeError, "after"),
    ],
)
def test_bad_arguments_name_the_field(make, err, field):
    with pytest.raises(err, match=field):
        make()


def test_schedule_as_hyperparameter_through_resolve_inside_jit():
    sched = Cosine(0.1, 0.0, 8)
    rule = Adam(eta=sched, beta=(0.8, 0.9))
    assert rule.has_schedule() and not Adam().has_schedule()
    x0 = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3)), jnp.float32)
    G = jnp.asarray(np.random.default_rng(2).normal(size=(12, 2, 3)), jnp.float32)

    @jax.jit
    def run(x, G):
        def body(carry, g):
            x, s, t = carry
            s, d = rule.resolve(t).apply(s, x, g)
            return (x - d, s, t + 1), None

        return jax.lax.scan(body, (x, rule.init(x), jnp.asarray(1, jnp.int32)), G)[0][0]

    # By hand: a fresh constant-η Adam each step, η from the closed form.
    x, s = x0, Adam(0.1, (0.8, 0.9)).init(x0)
    for t, g in enumerate(G, start=1):
        s, d = Adam(cosine(0.1, 0.0, 8, t), (0.8, 0.9)).apply(s, x, g)
        x = x - d
    np.testing.assert_allclose(run(x0, G), x, rtol=1e-5, atol=1e-6)
    assert rule.eta is sched  # resolve returned a copy


def test_schedules_inside_a_chain_and_in_init():
    chain = OptimiserChain(WeightDecay(Exponential(0.1, 0.5)), Descent(Step(1.0, 0.1, 2)))
    resolved = chain.resolve(3)
    assert float(resolved.rules[0].lambda_) == pytest.approx(0.025)
    assert float(resolved.rules[1].eta) == pytest.approx(0.1)
    x = jnp.ones(3)
    state = Rprop(eta=Exponential(0.2, 0.5)).init(x)
    np.testing.assert_allclose(state[1], 0.2)  # the step sizes start at η(1)
    state = AdaGrad(epsilon=LinearWarmup(0.4, 4)).init(x)
    np.testing.assert_allclose(state[0], 0.1)


def test_schedule_value_is_cast_to_the_parameter_dtype():
    rule = Descent(Exponential(0.5, 0.5)).resolve(jnp.asarray(2, jnp.int32))
    x = jnp.ones(2, jnp.float32)
    with jax.enable_x64(True):
        rule64 = Descent(Exponential(0.5, 0.5)).resolve(jnp.asarray(2))
        assert rule64.apply((), x, x)[1].dtype == jnp.float32
    np.testing.assert_allclose(rule.apply((), x, x)[1], 0.25)
