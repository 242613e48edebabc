"""The per-epoch loop's fast path: parameters held packed between compiled calls (read back
through the model as if they were never packed), the one status vector a call returns, and
the replay of an identical ``train`` call (``engine.run.Replay``)."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax.engine import cache, run
from fluxjax.engine.run import INTS

X = np.linspace(-1, 1, 12, dtype=np.float32)[:, None]
Y = np.sin(3 * X)
W1 = jnp.linspace(-1.0, 1.0, 4)[:, None]
W2 = jnp.linspace(0.5, -0.5, 4)[None, :]


def model():
    return fx.Chain(fx.Dense(W1, jnp.zeros(4), jnp.tanh), fx.Dense(W2, jnp.zeros(1)))


def f(p, x, y):
    return jnp.mean((jnp.tanh(x @ p[0].T + p[1]) @ p[2].T + p[3] - y) ** 2)


def descent(p, eta, steps, x=X, y=Y):
    """Plain gradient descent with jax.grad: the reference."""
    for _ in range(steps):
        p = [a - eta * g for a, g in zip(p, jax.grad(f)(p, x, y))]
    return p


def arrays(m):
    return [m[0].weight, m[0].bias, m[1].weight, m[1].bias]


def test_a_call_returns_one_buffer_for_the_parameters_and_one_status():
    # each array a compiled call returns costs about a microsecond on the CPU: Adam on the
    # four arrays of this model returns the packed parameters, the packed state, the status
    m = model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    data = [(jnp.asarray(X), jnp.asarray(Y))]
    fx.train(loss, fx.params(m), data, fx.Adam())
    plan = cache.LAST.plan
    fn = plan.programs[("one",)]
    tv, ov = plan.inputs()
    out = fn.lower(tv, ov, plan.bufs, plan.halt, data[0], None, INTS(1), plan.etas).out_info
    assert len(jax.tree_util.tree_leaves(out)) == 3


def test_held_parameters_read_back_as_the_updates_made_them():
    m = model()
    order = [list(vars(layer)) for layer in m]
    structure = jax.tree_util.tree_structure(m)
    text = repr(m)
    data = [(X, Y)]
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(0.1)
    for _ in range(30):
        fx.train(loss, ps, data, opt, cb=lambda: None)
    want = descent([W1, jnp.zeros(4), W2, jnp.zeros(1)], 0.1, 30)
    for a, b in zip(arrays(m), want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)
    # read back in place: the same attributes, in the same order, the same pytree (and
    # the plan the layers keep, engine.cache.PlanCache)
    assert [[k for k in vars(layer) if k != "_fx_plans"] for layer in m] == order
    assert jax.tree_util.tree_structure(m) == structure
    assert repr(m) == text
    for _ in range(5):  # read every step, by a callback: the same steps
        fx.train(loss, ps, data, opt, cb=lambda: float(m[1].bias[0]))
    want = descent(want, 0.1, 5)
    for a, b in zip(arrays(m), want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)
    # another data layout while they are held: its program traces the loss, reading them
    fx.train(loss, ps, data, opt)
    fx.train(loss, ps, [(X[:6], Y[:6]), (X[6:], Y[6:])], opt)
    want = descent(want, 0.1, 1)
    want = descent(want, 0.1, 1, X[:6], Y[:6])
    want = descent(want, 0.1, 1, X[6:], Y[6:])
    for a, b in zip(arrays(m), want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


def _then_first(second, m):
    return [m[0].weight, m[0].bias, second.weight, second.bias]


def test_every_way_of_reading_a_model_sees_the_held_parameters():
    ways = {
        "copy.deepcopy": lambda m: arrays(copy.deepcopy(m)),
        # (jnp.tanh does not pickle: the second layer, then the first through the model)
        "pickle": lambda m: _then_first(pickle.loads(pickle.dumps(m[1])), m),
        "tree_leaves": lambda m: jax.tree_util.tree_leaves(m),
        "fx.params": lambda m: list(fx.params(m)),
        "attribute": arrays,
    }
    want = None
    for name, read in ways.items():
        m = model()
        loss = lambda x, y, m=m: fx.mse(m(x), y)  # noqa: E731
        ps, opt = fx.params(m), fx.Descent(0.1)
        for _ in range(3):
            fx.train(loss, ps, [(X, Y)], opt)
        got = [np.asarray(a) for a in read(m)]
        assert len(got) == 4, name
        want = got if want is None else want
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes(), name


def test_an_assignment_between_calls_takes_effect():
    m = model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(0.1)
    for _ in range(4):
        fx.train(loss, ps, [(X, Y)], opt)
    m[0].bias = jnp.full(4, 0.5)  # while the parameters are held packed
    for _ in range(4):
        fx.train(loss, ps, [(X, Y)], opt)
    p = descent([W1, jnp.zeros(4), W2, jnp.zeros(1)], 0.1, 4)
    p = descent([p[0], jnp.full(4, 0.5), p[2], p[3]], 0.1, 4)
    for a, b in zip(arrays(m), p):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


def test_two_plans_over_one_model_take_turns():
    # a second loss over the same model: each plan reads the other's latest parameters
    m = model()
    x2, y2 = X[::2], -Y[::2]
    la = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    lb = lambda x, y: 2 * fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(0.05)
    p = [W1, jnp.zeros(4), W2, jnp.zeros(1)]
    for _ in range(5):
        fx.train(la, ps, [(X, Y)], opt)
        fx.train(lb, ps, [(x2, y2)], opt)
        p = descent(p, 0.05, 1)
        p = descent(p, 0.1, 1, x2, y2)  # 2 * mse: twice the gradient
    for a, b in zip(arrays(m), p):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=5e-6, atol=1e-7)


def _per_epoch(how: str, monkeypatch) -> tuple:
    """20 per-epoch calls with a callback recording what its StepContext says: the same
    callback object each call, the same lambda made again each call (both replayed), or
    ``steps_per_call=1`` (the same meaning; each call set up anew)."""
    full_calls = []
    go = run.Run.go
    monkeypatch.setattr(run.Run, "go", lambda self, *a: (full_calls.append(1), go(self, *a)))
    fx.seed(0)
    m = model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam(0.05)
    seen = []

    def record(ctx):
        seen.append((ctx.epoch, ctx.step, ctx.batch_index, ctx.eta, ctx.loss, ctx.grad_norm))
        if len(seen) == 20:
            fx.stop()

    data = [(jnp.asarray(X), jnp.asarray(Y))]
    losses = []
    for _ in range(20):
        if how == "same":
            h = fx.train(loss, ps, data, opt, cb=record)
        elif how == "made again":
            h = fx.train(loss, ps, [(data[0][0], data[0][1])], opt, cb=lambda ctx: record(ctx))
        else:
            h = fx.train(loss, ps, data, opt, cb=record, steps_per_call=1)
        losses += h.losses
    return [np.asarray(a).tobytes() for a in arrays(m)], seen, losses, len(full_calls)


def test_a_replayed_call_is_the_same_call(monkeypatch):
    a = _per_epoch("same", monkeypatch)
    b = _per_epoch("set up anew", monkeypatch)
    c = _per_epoch("made again", monkeypatch)
    assert a[:3] == b[:3] == c[:3]  # parameters bit for bit, the contexts, the losses
    assert b[3] == 20 and a[3] == c[3] == 1  # replayed after the first call
    assert all(s[:3] == (1, 1, 0) for s in a[1])
    assert [s[4] for s in a[1]] == a[2]


def test_a_callback_made_again_is_the_same_only_when_it_does_the_same():
    from fluxjax.engine.schedule import equivalent

    def make(k, scale=2):
        return [lambda: k * scale for _ in range(2)]

    f, g = make(1)
    assert equivalent(f, g) and equivalent([f, g], [g, f])  # made twice from one closure
    assert not equivalent(make(1)[0], make(1)[0])  # another closure cell: another k
    assert not equivalent(f, lambda: 1 * 2)  # other code
    h = make(1)[0]
    h.note = "x"  # an attribute of its own
    assert not equivalent(h, h.__class__(h.__code__, h.__globals__, None, None, h.__closure__))


def test_a_replayed_call_reports_a_failure_with_its_history():
    m = model()
    loss = lambda x, y: fx.mse(m(x), y) * y[0, 0]  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(0.1)
    data = [(X, Y)]
    bad = [(X, np.full_like(Y, np.inf))]
    for _ in range(3):
        fx.train(loss, ps, data, opt)
    before = [np.asarray(a) for a in arrays(m)]
    with pytest.raises(FloatingPointError, match="not finite") as e:
        for _ in range(40):  # reported within LAG calls, the model as before the failure
            fx.train(loss, ps, bad, opt)
    assert hasattr(e.value, "history")
    for a, b in zip(arrays(m), before):
        assert np.asarray(a).tobytes() == b.tobytes()
