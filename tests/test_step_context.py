"""StepContext's grad_norm and gradients (fx.every(n, f, grads=True)) against closed-form
float64 gradients, in fused and step-by-step runs; and changes a callback makes to the
model or the rule's hyperparameters taking effect at the next step in every mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

RNG = np.random.default_rng(7)
X = RNG.normal(size=(6, 3)).astype(np.float32)
Y = RNG.normal(size=(6, 2)).astype(np.float32)
W0 = RNG.normal(size=(2, 3)).astype(np.float32)
B0 = RNG.normal(size=(2,)).astype(np.float32)


def grads64(w, b):
    """d/dW, d/db of mean((x Wᵀ + b - y)²) in float64, by hand."""
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    r = X.astype(np.float64) @ w.T + b - Y
    k = 2 / r.size
    return k * r.T @ X.astype(np.float64), k * r.sum(0)


def params_before(step):
    """Descent(0.1) by hand in float64: the parameters before step ``step`` (1-based)."""
    w, b = W0.astype(np.float64), B0.astype(np.float64)
    for _ in range(step - 1):
        gw, gb = grads64(w, b)
        w, b = w - 0.1 * gw, b - 0.1 * gb
    return w, b


@pytest.mark.parametrize("every", [1, 3])
def test_grad_norm_and_grads_match_closed_form(every):
    seen = []
    m = fx.Dense(jnp.array(W0), jnp.array(B0))
    cb = fx.every(every, lambda ctx: seen.append((ctx.step, ctx.grad_norm, ctx.grads)), grads=True)
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Descent(0.1), epochs=6, cb=cb)
    assert [s for s, _, _ in seen] == list(range(every, 7, every))
    for step, norm, gs in seen:
        gw, gb = grads64(*params_before(step))
        assert norm == pytest.approx(np.sqrt((gw**2).sum() + (gb**2).sum()), rel=1e-5)
        np.testing.assert_allclose(np.asarray(gs[m.weight]), gw, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(gs[m.bias]), gb, rtol=1e-4, atol=1e-6)


def test_grad_norm_in_plain_callbacks_and_explicit_mode():
    norms = []
    m = fx.Dense(jnp.array(W0), jnp.array(B0))
    fx.train(
        lambda m, x, y: fx.mse(m(x), y),
        m,
        [(X, Y)],
        fx.setup(fx.Descent(0.1), m),
        epochs=3,
        cb=lambda ctx: norms.append(ctx.grad_norm),
    )
    want = [np.sqrt(sum((g**2).sum() for g in grads64(*params_before(k)))) for k in (1, 2, 3)]
    np.testing.assert_allclose(norms, want, rtol=1e-5)


def test_grads_not_asked_for_name_the_fix():
    m = fx.Dense(jnp.array(W0), jnp.array(B0))
    errs = []

    def cb(ctx):
        try:
            _ = ctx.grads
        except AttributeError as e:
            errs.append(str(e))

    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Descent(0.1), cb=cb)
    assert "grads=True" in errs[0]
    assert fx.StepContext(1, 1).grad_norm is None


# -- changes made by a callback take effect at the next step, in every mode ----------------
x1, y0 = jnp.ones((2, 1)), jnp.zeros((2, 1))
MODES = {  # how the callback is attached: every step, a fused span, steps_per_call
    "plain": lambda f: {"cb": f},
    "every": lambda f: {"cb": fx.every(2, f)},
    "steps_per_call": lambda f: {"cb": f, "steps_per_call": 2},
}


def descent_run(mode, explicit, change):
    """w ← w(1 - 2η) for 4 steps of mse(w·1, 0); ``change(m, opt)`` after step 2."""
    m = fx.Dense(jnp.array([[1.0]]), False)
    opt = fx.setup(fx.Descent(0.1), m) if explicit else fx.Descent(0.1)

    def cb(ctx):
        if ctx.step == 2:
            change(m, opt)

    if explicit:
        fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x1, y0)], opt, epochs=4, **MODES[mode](cb))
    else:
        loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
        fx.train(loss, fx.params(m), [(x1, y0)], opt, epochs=4, **MODES[mode](cb))
    return float(m.weight[0, 0])


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("explicit", [False, True])
def test_a_callbacks_change_of_eta_applies_from_the_next_step(mode, explicit):
    def set_eta(m, opt):
        if explicit:
            fx.adjust(opt, 0.2)
        else:
            opt.eta = 0.2

    assert descent_run(mode, explicit, set_eta) == pytest.approx(0.8**2 * 0.6**2, rel=1e-6)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("explicit", [False, True])
def test_a_callbacks_change_of_the_model_applies_from_the_next_step(mode, explicit):
    def set_weight(m, opt):
        m.weight = jnp.array([[10.0]])

    assert descent_run(mode, explicit, set_weight) == pytest.approx(10 * 0.8**2, rel=1e-6)


def test_adjust_between_calls_applies_in_explicit_mode():
    m = fx.Dense(jnp.array([[1.0]]), False)
    st = fx.setup(fx.Descent(0.1), m)
    loss = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    fx.train(loss, m, [(x1, y0)], st)
    fx.adjust(st, 0.0)  # was ignored by the cached plan before
    fx.train(loss, m, [(x1, y0)], st)
    assert float(m.weight[0, 0]) == pytest.approx(0.8)


def _transfers(capfd, epochs):
    m = fx.Chain(fx.Dense(3, 8, fx.relu), fx.Dense(8, 2))
    rule = fx.OptimiserChain(fx.ClipGlobalNorm(1.0), fx.Adam(0.01), fx.EMA(0.9))
    state = fx.setup(rule, m)
    xs, ys = jnp.asarray(X), jnp.asarray(Y)
    loss = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    fx.train(loss, m, [(xs, ys)], state)  # compiled outside the guard
    capfd.readouterr()
    with jax.transfer_guard("log"):
        fx.train(loss, m, [(xs, ys)], state, epochs=epochs)
    err = capfd.readouterr().err
    return err.count("host-to-device"), err.count("device-to-host")


def test_no_transfer_per_step_with_clipping_ema_and_grad_norm(capfd):
    """A fused run's transfers (the step count in, the failure flag out) do not grow with
    the number of steps: nothing added to the step syncs with the host."""
    few, many = _transfers(capfd, 5), _transfers(capfd, 200)
    assert few == many


@pytest.mark.parametrize("mode", list(MODES))
def test_a_callbacks_change_of_params_applies_from_the_next_step(mode):
    """``ps.add(layer)`` after step 2 of 4: the added layer trains for steps 3 and 4.
    mse(v·w·1, 0): ∂/∂w = 2vw·v, ∂/∂v = 2vw·w, Descent(0.1), float64 by hand."""
    inner, outer = fx.Dense(jnp.array([[1.0]]), False), fx.Dense(jnp.array([[0.5]]), False)
    ps = fx.params(inner)

    def change(ctx=None):
        if ctx is None or ctx.step == 2:
            ps.add(outer)

    cb = MODES[mode](lambda ctx: change(ctx))
    loss = lambda x, y: fx.mse(outer(inner(x)), y)  # noqa: E731
    fx.train(loss, ps, [(x1, y0)], fx.Descent(0.1), epochs=4, **cb)
    w, v = 1.0, 0.5
    for step in range(1, 5):
        gw, gv = 2 * v * w * v, 2 * v * w * w
        w, v = w - 0.1 * gw, (v - 0.1 * gv) if step > 2 else v
    assert float(inner.weight[0, 0]) == pytest.approx(w, rel=1e-6)
    assert float(outer.weight[0, 0]) == pytest.approx(v, rel=1e-6)
