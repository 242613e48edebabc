"""reduce_on_plateau against Keras's documented ReduceLROnPlateau algorithm, its η change
applying from the next step in fused and step-by-step runs, carried by a checkpoint and
track=; early_stopping(restore_best=True) putting back the best weights."""

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

x1, y0 = jnp.ones((2, 1)), jnp.zeros((2, 1))


def keras_lrs(scores, lr, factor, patience, min_lr, min_delta, cooldown):
    """Keras 3's ReduceLROnPlateau.on_epoch_end (mode "min"), transcribed: the lr after
    each call."""
    best, wait, cooldown_counter, out = np.inf, 0, 0, []
    for current in scores:
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if np.less(current, best - min_delta):
            best, wait = current, 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                if lr > np.float32(min_lr):
                    lr = max(lr * factor, min_lr)
                    cooldown_counter = cooldown
                    wait = 0
        out.append(lr)
    return out


SCORES = [5.0, 4.0, 4.0, 3.99995, 4.1, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("cooldown", [0, 2])
def test_the_eta_sequence_is_keras(cooldown):
    kw = dict(factor=0.5, patience=2, min_eta=0.02, min_delta=1e-4, cooldown=cooldown)
    want = keras_lrs(SCORES, 0.1, kw["factor"], kw["patience"], kw["min_eta"], 1e-4, cooldown)
    m = fx.Dense(jnp.array([[1.0]]), False)
    opt = fx.Descent(0.1)
    scores = iter(SCORES)
    lr = fx.reduce_on_plateau(lambda ctx: next(scores), **kw)
    etas = []
    fx.train(
        lambda x, y: fx.mse(m(x), y),
        fx.params(m),
        [(x1, y0)],
        opt,
        epochs=len(SCORES),
        cb=[lr, lambda: etas.append(opt.eta)],
    )
    assert etas == pytest.approx(want)
    assert len(set(want)) > 2  # it did reduce, more than once


@pytest.mark.parametrize("every", [1, 2])
def test_the_new_eta_applies_from_the_next_step(every):
    """mse(w·1, 0) with Descent: w ← w(1 − 2η). A constant score: the first call sets best,
    then every 2 calls halve η. Closed form over 8 steps."""
    m = fx.Dense(jnp.array([[1.0]]), False)
    st = fx.setup(fx.Descent(0.1), m)
    val = fx.metrics(every=every, val=lambda: jnp.float32(1.0))
    lr = fx.reduce_on_plateau("val", factor=0.5, patience=2, every=every)
    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(x1, y0)], st, epochs=8, cb=[val, lr])
    w, eta, calls = 1.0, 0.1, 0
    for step in range(1, 9):
        w *= 1 - 2 * eta
        if step % every == 0:
            calls += 1
            if calls > 1 and (calls - 1) % 2 == 0:
                eta *= 0.5
    assert float(m.weight[0, 0]) == pytest.approx(w, rel=1e-6)
    assert st.weight.rule.eta == pytest.approx(eta)


def test_a_resume_carries_eta_and_the_callbacks_state(tmp_path):
    def run(folder, steps, resume):
        m = fx.Dense(jnp.array([[1.0]]), False)
        opt = fx.Descent(0.1)
        val = fx.metrics(every=1, val=lambda: jnp.float32(1.0))
        lr = fx.reduce_on_plateau("val", factor=0.5, patience=3)
        ck = fx.Checkpointer(folder, m, opt, every=5, keep=None, track={"lr": lr})
        if resume:
            ck.resume()
        loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
        fx.train(loss, fx.params(m), [(x1, y0)], opt, epochs=steps, cb=[val, lr, ck])
        return np.asarray(m.weight), opt.eta, lr.state()

    want = run(tmp_path / "a", 12, False)
    run(tmp_path / "b", 5, False)  # stops at the checkpoint of step 5
    got = run(tmp_path / "b", 7, True)
    assert np.array_equal(want[0], got[0]) and want[1:] == got[1:]
    assert want[1] < 0.1


def test_early_stopping_restores_the_best_weights():
    m = fx.Dense(jnp.array([[1.0]]), False)
    scores = iter([3.0, 1.0, 2.0, 2.5, 2.7, 9.0, 9.0])  # best at step 2
    es = fx.early_stopping(lambda ctx: next(scores), 3, restore_best=True)
    weights = []

    def cb(ctx):
        weights.append(float(m.weight[0, 0]))
        if es(ctx):
            fx.stop()

    fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [(x1, y0)], fx.Descent(0.1), epochs=7, cb=cb
    )
    assert len(weights) == 5  # no improvement after steps 3, 4, 5
    assert float(m.weight[0, 0]) == weights[1] == pytest.approx(0.8**2)
    with pytest.raises(TypeError, match="StepContext"):
        fx.early_stopping(lambda: 1.0, 1, restore_best=True)()
