"""train: the tutorial's regimes, callbacks, stop/skip, failures, the compiled and fused
paths against the eager step-by-step reference."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import seed_data, seed_model

import fluxjax as fx

X, Y = seed_data()


def manual_adam(m, x, y, steps):
    """An independent reference: jax.grad on a plain pytree and Adam written out in NumPy."""
    return manual_adam_over(m, [(x, y)] * steps)


def manual_adam_over(m, batches):
    """``manual_adam`` with one step per batch of ``batches``, in their order."""
    params = [
        np.asarray(m[0].weight, np.float64),
        np.asarray(m[0].bias, np.float64),
        np.asarray(m[1].weight, np.float64),
        np.asarray(m[1].bias, np.float64),
    ]

    def loss(p, x, y):
        h = jax.nn.sigmoid(x @ p[0].T + p[1])
        return jnp.mean((h @ p[2].T + p[3] - y) ** 2)

    mom = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    b1, b2, eta, eps = 0.9, 0.999, 0.001, 1e-8
    for t, (x, y) in enumerate(batches, start=1):
        gs = jax.grad(loss)([jnp.asarray(p, jnp.float32) for p in params], x, y)
        for i, g in enumerate(gs):
            g = np.asarray(g, np.float64)
            mom[i] = b1 * mom[i] + (1 - b1) * g
            vel[i] = b2 * vel[i] + (1 - b2) * g * g
            params[i] = params[i] - eta * (mom[i] / (1 - b1**t)) / (
                np.sqrt(vel[i] / (1 - b2**t)) + eps
            )
    return params


def test_seed_fit_implicit_loop_matches_an_independent_adam():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    for _ in range(30):  # the tutorial's loop: train called once per epoch, same opt
        fx.train(loss, ps, [(X, Y)], opt)
    ref = manual_adam(seed_model(), X, Y, 30)
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(p, r, rtol=2e-6, atol=4e-6)  # measured: 4e-7, 1.2e-6


def test_seed_fit_falls_tenfold_within_10000_epochs():
    # The tutorial's fit (ADAM defaults, mean squared error) starts at 15.8224 (the formula's
    # value at the hand-set weights). Flux's own run could not be repeated here (no Julia);
    # the same arithmetic in float32 reaches about 0.023 after 10,000 epochs (≈ 680×), and
    # test_seed_fit_implicit_loop_matches_an_independent_adam pins the trajectory itself to
    # an independent Adam. The issue asks for at least 10×; we require 100×.
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    start = float(loss(X, Y))
    assert abs(start - 15.8224) < 1e-3
    h = fx.train(loss, fx.params(m), [(X, Y)], fx.Adam(), epochs=10_000)
    assert len(h.losses) == 10_000
    assert float(loss(X, Y)) < start / 100
    assert h.losses[0] == pytest.approx(start, rel=1e-5)
    assert h.losses[-1] < h.losses[100] < h.losses[0]


def test_opt_state_carries_over_calls_bit_for_bit():
    # N calls of one step each == one call over N batches (Adam's moments live in opt)
    m1, m2 = seed_model(), seed_model()
    o1, o2 = fx.Adam(), fx.Adam()
    l1 = lambda x, y: fx.mse(m1(x), y)  # noqa: E731
    l2 = lambda x, y: fx.mse(m2(x), y)  # noqa: E731
    for _ in range(12):
        fx.train(l1, fx.params(m1), [(X, Y)], o1, steps_per_call=1)
    fx.train(l2, fx.params(m2), [(X, Y)] * 12, o2, steps_per_call=1)
    for a, b in zip(fx.params(m1), fx.params(m2)):
        np.testing.assert_array_equal(a, b)


def test_fused_equals_step_by_step_and_eager():
    runs = {}
    for name, kw in {
        "fused": {},
        "steps": {"steps_per_call": 1},
        "eager": {"compile": False},
    }.items():
        m = seed_model()
        loss = lambda x, y, m=m: fx.mse(m(x), y)  # noqa: E731
        h = fx.train(loss, fx.params(m), [(X, Y)], fx.Adam(0.01), epochs=20, **kw)
        runs[name] = (np.asarray(h.losses), [np.asarray(p) for p in fx.params(m)])
    for name in ("steps", "eager"):
        np.testing.assert_allclose(runs[name][0], runs["fused"][0], rtol=1e-5)
        for a, b in zip(runs[name][1], runs["fused"][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_four_data_regimes_of_the_tutorial():
    rng = np.random.default_rng(0)
    for name in ["all", "single", "sevens", "loader"]:
        m = seed_model()
        loss = lambda x, y, m=m: fx.mse(m(x), y)  # noqa: E731
        ps, opt = fx.params(m), fx.Adam(0.01)
        start = float(loss(X, Y))
        for _ in range({"all": 400, "single": 20, "sevens": 140, "loader": 60}[name]):
            if name == "all":
                data = [(X, Y)]
            elif name == "single":
                data = [(X[i : i + 1], Y[i : i + 1]) for i in rng.permutation(21)]
            elif name == "sevens":
                order = rng.permutation(3)
                data = [(X[7 * k : 7 * k + 7], Y[7 * k : 7 * k + 7]) for k in order]
            else:
                data = fx.DataLoader((X, Y), batchsize=3, shuffle=True, rng=1)
            h = fx.train(loss, ps, data, opt)
        assert len(h.losses) == {"all": 1, "single": 21, "sevens": 3, "loader": 7}[name]
        assert float(loss(X, Y)) < start / 5, name


def test_dataloader_fused_matches_iterating_it():
    results = []
    for steps_per_call in (None, 1):
        m = seed_model()
        loss = lambda x, y, m=m: fx.mse(m(x), y)  # noqa: E731
        loader = fx.DataLoader((X, Y), batchsize=4, shuffle=True, rng=7)  # tail of 1
        h = fx.train(
            loss, fx.params(m), loader, fx.Adam(0.01), epochs=5, steps_per_call=steps_per_call
        )
        results.append((h.losses, h.epochs, [np.asarray(p) for p in fx.params(m)]))
    (l1, e1, p1), (l2, e2, p2) = results
    assert len(l1) == 30 and e1 == e2 == [e for e in range(1, 6) for _ in range(6)]
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def manual_descent_over(m, batches, eta):
    """Gradient descent with jax.grad on a plain list of the seed model's arrays."""
    p = [jnp.asarray(a) for a in (m[0].weight, m[0].bias, m[1].weight, m[1].bias)]

    def loss(p, x, y):
        return jnp.mean((jax.nn.sigmoid(x @ p[0].T + p[1]) @ p[2].T + p[3] - y) ** 2)

    for x, y in batches:
        p = [a - eta * g for a, g in zip(p, jax.grad(loss)(p, x, y))]
    return p


def test_batches_are_taken_in_order_across_calls_and_blocks():
    # the loop gathers small batches 32 steps at a time; calls of 5 steps start anywhere in
    # the list and the 77 steps cross those blocks: every step must still take its own batch
    sevens = [(X[3 * k : 3 * k + 3], Y[3 * k : 3 * k + 3] * (-1) ** k) for k in range(7)]
    probe = fx.DataLoader((X, Y), batchsize=3, shuffle=True, rng=5)
    shuffled = [b for _ in range(11) for b in probe]  # what iterating the loader gives
    cases = (
        (lambda: sevens, sevens * 11),
        (lambda: fx.DataLoader((X, Y), batchsize=3, shuffle=True, rng=5), shuffled),
    )
    for make, batches in cases:
        ref = manual_descent_over(seed_model(), batches, 0.5)
        for cb in (None, fx.every(5, lambda: None)):  # one call of 77 steps, or calls of 5
            m = seed_model()
            loss = lambda x, y, m=m: fx.mse(m(x), y)  # noqa: E731
            fx.train(loss, fx.params(m), make(), fx.Descent(0.5), epochs=11, cb=cb)
            for p, r in zip(fx.params(m), ref):
                np.testing.assert_allclose(p, r, rtol=1e-4, atol=1e-5)


def test_partial_batches_do_not_recompile_each_epoch(compiles):
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    loader = fx.DataLoader((X, Y), batchsize=4)  # 5 full batches and a tail of 1
    ps, opt = fx.params(m), fx.Adam()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fx.train(loss, ps, loader, opt, epochs=1)
        first = compiles.count
        assert first >= 1
        fx.train(loss, ps, loader, opt, epochs=3)  # the same shapes: nothing new
        fx.train(loss, ps, loader, opt, epochs=2, cb=lambda: None)
        assert compiles.count == first
        fx.train(loss, ps, loader, opt, epochs=100)  # long enough to measure fusing
        fused = compiles.count
        fx.train(loss, ps, loader, opt, epochs=60)  # a different epoch count: reused
        assert compiles.count == fused


def test_callbacks_context_stop_and_skip():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    seen, calls = [], []

    def record(ctx):
        seen.append((ctx.epoch, ctx.step, ctx.batch_index, ctx.eta, ctx.loss))
        if ctx.step == 5:
            fx.stop()

    def skipper():
        calls.append("skip")
        fx.skip()

    never = lambda: calls.append("never")  # noqa: E731
    batches = [(X[:7], Y[:7]), (X[7:14], Y[7:14]), (X[14:], Y[14:])]
    h = fx.train(
        loss,
        fx.params(m),
        batches,
        fx.Adam(0.002),
        epochs=3,
        cb=[record, skipper, never],
        steps_per_call=1,
    )
    assert [s[:4] for s in seen] == [
        (1, 1, 0, 0.002),
        (1, 2, 1, 0.002),
        (1, 3, 2, 0.002),
        (2, 4, 0, 0.002),
        (2, 5, 1, 0.002),
    ]
    assert len(h.losses) == 5  # stop keeps the updates so far
    np.testing.assert_allclose([s[4] for s in seen], h.losses, rtol=1e-6)
    assert calls == ["skip"] * 4  # skip() ends the callbacks of its step; the 5th step stopped


def test_fused_callbacks_fire_per_chunk_with_step_numbers():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    steps = []
    fx.train(
        loss,
        fx.params(m),
        [(X, Y)],
        fx.Adam(),
        epochs=250,
        steps_per_call=100,
        cb=lambda c: steps.append((c.step, c.epoch)),
    )
    assert steps == [(100, 100), (200, 200), (250, 250)]


def test_throttled_callback_runs_once_in_a_window():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    count = []
    cb = fx.throttle(lambda: count.append(1), 3600)
    fx.train(loss, fx.params(m), [(X, Y)] * 5, fx.Adam(), cb=cb, steps_per_call=1)
    assert len(count) == 1


def test_skip_inside_an_eager_loss_skips_the_update():
    m = seed_model()
    counter = {"n": 0}

    def loss(x, y):
        counter["n"] += 1
        if counter["n"] == 2:
            fx.skip()
        return fx.mse(m(x), y)

    ref = seed_model()
    h = fx.train(loss, fx.params(m), [(X, Y)] * 3, fx.Descent(0.01), compile=False)
    assert len(h.losses) == 2
    fx.train(lambda x, y: fx.mse(ref(x), y), fx.params(ref), [(X, Y)] * 2, fx.Descent(0.01))
    for a, b in zip(fx.params(m), fx.params(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_skip_when_in_a_compiled_loss():
    m = seed_model()
    before = [np.asarray(p) for p in fx.params(m)]

    def loss(x, y):
        l = fx.mse(m(x), y)
        fx.skip_when(l > 1.0)  # the starting loss is ~15.8: every step is skipped
        return l

    h = fx.train(loss, fx.params(m), [(X, Y)], fx.Adam(), epochs=3)
    assert len(h.losses) == 3
    for a, b in zip(before, fx.params(m)):
        np.testing.assert_array_equal(a, b)


def test_non_finite_loss_raises_and_keeps_the_model():
    m = seed_model()
    bad = Y.copy()
    bad[3] = np.nan
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    batches = [(X, Y), (X, Y), (X, bad), (X, Y)]
    ref = seed_model()
    fx.train(lambda x, y: fx.mse(ref(x), y), fx.params(ref), batches[:2], fx.Adam())
    with pytest.raises(FloatingPointError, match="not finite at step 3") as err:
        fx.train(loss, fx.params(m), batches, fx.Adam(), steps_per_call=1)
    losses = err.value.history.losses  # the run's losses come with the error
    assert len(losses) == 4 and np.isnan(losses[2]) and np.isfinite(losses[:2]).all()
    for a, b in zip(fx.params(m), fx.params(ref)):
        np.testing.assert_array_equal(a, b)


def test_skip_non_finite_rule_skips_bad_batches():
    m = seed_model()
    bad = Y.copy()
    bad[0] = np.inf
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    opt = fx.OptimiserChain(fx.SkipNonFinite(), fx.Adam())
    h = fx.train(loss, fx.params(m), [(X, Y), (X, bad), (X, Y)], opt)
    assert np.isinf(h.losses[1]) and np.isfinite(h.losses[2])
    assert all(np.isfinite(np.asarray(p)).all() for p in fx.params(m))


def test_selection_of_one_layer_binds_the_rest():
    # ps = params(m[1]) with a loss over the whole m: m[0] is an input of the compiled step,
    # so assigning m[0].weight later is seen (not frozen into the compiled code)
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps = fx.params(m[1])
    w0 = np.asarray(m[0].weight)
    fx.train(loss, ps, [(X, Y)], fx.Adam(), epochs=3)
    np.testing.assert_array_equal(m[0].weight, w0)  # not trained
    m[0].weight = [[1.0], [1.0], [1.0], [1.0]]
    w1 = np.asarray(m[1].weight)
    h = fx.train(loss, ps, [(X, Y)], fx.Descent(0.0), epochs=1)
    np.testing.assert_allclose(h.losses[0], float(loss(X, Y)), rtol=1e-6)
    np.testing.assert_array_equal(m[1].weight, w1)


class RunningMean(fx.Module):
    """A BatchNorm-like layer: a trainable shift and a running mean it updates itself."""

    def __init__(self):
        self.shift = jnp.zeros(1)
        self.mean = jnp.zeros(1)

    def trainable(self):
        return ("shift",)

    def __call__(self, x):
        self.mean = 0.5 * self.mean + 0.5 * x.mean(0)
        return x + self.shift


def test_non_trainable_state_is_written_back():
    m = fx.Chain(fx.Dense(jnp.ones((1, 1)), False), RunningMean())
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    x = np.full((4, 1), 2.0, np.float32)
    for kw in ({"steps_per_call": 1}, {}):
        m[1].mean = jnp.zeros(1)
        fx.train(loss, fx.params(m), [(x, x)] * 2, fx.Descent(0.0), **kw)
        # two updates of mean ← (mean + 2)/2 from 0: 1, 1.5
        np.testing.assert_allclose(m[1].mean, [1.5], rtol=1e-6)
        assert not isinstance(m[1].mean, jax.core.Tracer)


def test_explicit_mode_with_setup_freeze_and_adjust():
    m = seed_model()
    state = fx.setup(fx.Adam(), m)
    loss = lambda model, x, y: fx.mse(model(x), y)  # noqa: E731
    w0 = np.asarray(m[0].weight)
    fx.freeze(state.layers[0])
    fx.train(loss, m, [(X, Y)], state, epochs=5)
    np.testing.assert_array_equal(m[0].weight, w0)
    fx.thaw(state.layers[0])
    fx.adjust(state, 0.01)
    before = float(loss(m, X, Y))
    fx.train(loss, m, [(X, Y)], state, epochs=5)
    assert float(loss(m, X, Y)) < before
    assert state.layers[0].weight.rule.eta == 0.01
    assert state.layers[0].weight.state[0].shape == (4, 1)  # reading the state unpacks it


def test_freezing_between_calls_takes_effect():
    m = seed_model()
    state = fx.setup(fx.Adam(), m)
    loss = lambda model, x, y: fx.mse(model(x), y)  # noqa: E731
    fx.train(loss, m, [(X, Y)], state)
    fx.freeze(state.layers[1])
    w = np.asarray(m[1].weight)
    fx.train(loss, m, [(X, Y)], state)
    np.testing.assert_array_equal(m[1].weight, w)
    fx.thaw(state.layers[1])
    fx.train(loss, m, [(X, Y)], state)
    assert not np.array_equal(m[1].weight, w)


def test_implicit_and_explicit_give_the_same_trajectory():
    m1, m2 = seed_model(), seed_model()
    h1 = fx.train(lambda x, y: fx.mse(m1(x), y), fx.params(m1), [(X, Y)], fx.Adam(), epochs=7)
    st = fx.setup(fx.Adam(), m2)
    h2 = fx.train(lambda m, x, y: fx.mse(m(x), y), m2, [(X, Y)], st, epochs=7)
    np.testing.assert_array_equal(h1.losses, h2.losses)


def test_changing_a_hyperparameter_takes_effect():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    opt = fx.Descent(0.01)
    fx.train(loss, fx.params(m), [(X, Y)], opt)
    opt.eta = 0.0
    w = np.asarray(m[1].weight)
    fx.train(loss, fx.params(m), [(X, Y)], opt)
    np.testing.assert_array_equal(m[1].weight, w)


def test_captured_arrays_warn_once():
    m = seed_model()
    Xc, Yc = jnp.asarray(X), jnp.asarray(Y)
    loss = lambda: fx.mse(m(Xc), Yc)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    with pytest.warns(UserWarning, match=r"Xc \(21×1\), Yc \(21×1\).*constants") as got:
        for _ in range(3):
            fx.train(loss, ps, [()], opt)
    assert len(got) == 1


def test_changed_batch_shape_warns_once():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    with pytest.warns(
        UserWarning,
        match=r"argument 1 of batch 2 has shape \(5, 1\) and dtype "
        r"float64, where earlier batches had shape \(5, 1\) and dtype float32",
    ):
        fx.train(loss, fx.params(m), [(X[:5], Y[:5]), (X[:5].astype(np.float64), Y[:5])], fx.Adam())
    with pytest.warns(UserWarning, match="compiles the training step again") as got:
        ps, opt = fx.params(m), fx.Adam()
        for _ in range(3):
            fx.train(loss, ps, [(X[:k], Y[:k]) for k in (5, 6, 7)], opt)
    assert len(got) == 1


def test_bad_arguments_are_clear_errors():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    with pytest.raises(TypeError, match="second argument must be fx.params"):
        fx.train(loss, [m], [(X, Y)], fx.Adam())
    with pytest.raises(TypeError, match=r"got 1 argument\(s\).*pass \[\(x, y\)\], not \[x, y\]"):
        fx.train(loss, fx.params(m), [X, Y], fx.Adam())
    with pytest.raises(TypeError, match="data must be an iterable of batches"):
        fx.train(loss, fx.params(m), 5, fx.Adam())
    with pytest.raises(ValueError, match="epochs must be"):
        fx.train(loss, fx.params(m), [(X, Y)], fx.Adam(), epochs=-1)
    with pytest.raises(TypeError, match="must return a real scalar"):
        fx.train(lambda x, y: m(x), fx.params(m), [(X, Y)], fx.Adam())


def test_epochs_logs_each_epoch(capsys):
    assert list(fx.epochs(3)) == [1, 2, 3]
    assert capsys.readouterr().out == "Epoch 1\nEpoch 2\nEpoch 3\n"


def test_progress_bar_runs(capsys):
    m = seed_model()
    h = fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Adam(), epochs=5, progress=True
    )
    assert len(h.losses) == 5
    assert "5/5" in capsys.readouterr().err


def test_per_epoch_loop_reports_a_failure_within_a_few_calls():
    m = seed_model()
    bad = Y.copy()
    bad[0] = np.nan
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    fx.train(loss, ps, [(X, Y)], opt)
    kept = [np.asarray(p) for p in ps]
    with pytest.raises(FloatingPointError, match="not finite"):
        # one step per call is checked without stalling: the error comes within 16 calls
        fx.train(loss, ps, [(X, bad)], opt)
        for _ in range(17):
            fx.train(loss, ps, [(X, Y)], opt)
    for a, b in zip(kept, ps):  # nothing after the failed step was applied
        np.testing.assert_array_equal(a, b)
    h = fx.train(loss, ps, [(X, Y)], opt)  # after the error, training can go on
    assert np.isfinite(h.losses[0])


def test_callback_sees_the_scheduled_learning_rate():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    etas = []
    opt = fx.Adam(eta=fx.Exponential(0.01, 0.5))
    fx.train(
        loss, fx.params(m), [(X, Y)] * 3, opt, cb=lambda c: etas.append(c.eta), steps_per_call=1
    )
    np.testing.assert_allclose(etas, [0.01, 0.005, 0.0025], rtol=1e-6)
    fx.train(loss, fx.params(m), [(X, Y)], opt, cb=lambda c: etas.append(c.eta))
    np.testing.assert_allclose(etas[-1], 0.00125, rtol=1e-6)  # the count carries over


def test_changing_a_layer_after_training_is_seen():
    m = seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(0.0)
    h1 = fx.train(loss, ps, [(X, Y)], opt)
    m[0].act = fx.tanh  # a structural change: the compiled step must be rebuilt
    h2 = fx.train(loss, ps, [(X, Y)], opt)
    assert h2.losses[0] == pytest.approx(float(loss(X, Y)), rel=1e-6)
    assert h2.losses[0] != pytest.approx(h1.losses[0], rel=1e-3)
