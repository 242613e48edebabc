"""Flux's callback contract in every mode (issue: `train` callbacks): a callback runs after
each step's update with the model holding that step's result, whatever the data; stop, skip
and exceptions behave as in Flux's loop; scheduled callbacks (fx.every, fx.throttle) fire
at the documented steps while the steps between them run fused.

The reference is plain NumPy gradient descent in float64 on a one-weight model, batch by
batch, so every count and value can be checked independently of the engine.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

ETA = 0.05
X = np.linspace(-1, 1, 10, dtype=np.float32).reshape(-1, 1)
Y = (2.5 * X - 0.5).astype(np.float32)


def model() -> fx.Dense:
    return fx.Dense(jnp.array([[0.3]]), jnp.array([0.1]))


def reference(batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float]]:
    """(w, b) after each step of plain SGD on mse, float64."""
    w, b, out = 0.3, 0.1, []
    for x, y in batches:
        x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        r = w * x + b - y
        w, b = w - ETA * 2 * np.mean(r * x), b - ETA * 2 * np.mean(r)
        out.append((w, b))
    return out


def wb(m: fx.Dense) -> tuple[float, float]:
    return float(m.weight[0, 0]), float(m.bias[0])


def loader(shuffle: bool = True, seed: int = 7) -> fx.DataLoader:
    return fx.DataLoader((X, Y), batchsize=3, shuffle=shuffle, rng=seed)  # 3+3+3+1


def loader_batches(epochs: int, shuffle: bool = True, seed: int = 7) -> list:
    twin = loader(shuffle, seed)
    return [twin.getbatch(i) for _ in range(epochs) for i in twin.batch_indices()]


LIST = [(X[i : i + 2], Y[i : i + 2]) for i in range(0, 10, 2)]  # 5 equal batches

# name -> (make data, epochs, the batches the run sees in order)
KINDS = {
    "list": (lambda: LIST, 3, LIST * 3),
    "tuple": (lambda: tuple(LIST), 2, LIST * 2),
    "loader": (loader, 3, loader_batches(3)),
    "loader-in-order": (lambda: loader(False), 2, loader_batches(2, False)),
    "generator": (lambda: (b for b in LIST), 1, LIST),
    "repeat": (lambda: itertools.repeat(LIST[0], 12), 1, [LIST[0]] * 12),
    "unequal-list": (
        lambda: [(X[:4], Y[:4]), (X[4:], Y[4:])],
        3,
        [(X[:4], Y[:4]), (X[4:], Y[4:])] * 3,
    ),
}


def run(kind: str, cb, m=None):
    make, epochs, seen = KINDS[kind]
    m = m or model()
    h = fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), make(), fx.Descent(ETA), cb=cb, epochs=epochs
    )
    return m, h, reference(seen)


def test_introductory_example():
    x, y = X[:2], Y[:2]
    m = model()
    n = {"k": 0}

    def cb():
        n["k"] += 1
        if n["k"] == 5:
            fx.stop()

    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)] * 20, fx.Descent(ETA), cb=cb)
    assert n["k"] == 5
    np.testing.assert_allclose(wb(m), reference([(x, y)] * 5)[-1], rtol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_callback_after_every_step_sees_that_step(kind):
    seen: list[tuple[int, int, int, tuple[float, float]]] = []
    box = {}

    def cb(ctx):
        seen.append((ctx.step, ctx.epoch, ctx.batch_index, wb(box["m"])))

    box["m"] = model()
    m, h, ref = run(kind, cb, box["m"])
    assert [s for s, *_ in seen] == list(range(1, len(ref) + 1))
    np.testing.assert_allclose([v for *_, v in seen], ref, rtol=1e-5, atol=1e-6)
    per = len(ref) // KINDS[kind][1]
    assert [(e, bi) for _, e, bi, _ in seen] == [(i // per + 1, i % per) for i in range(len(ref))]
    assert len(h.losses) == len(ref)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("k", [1, 4, 7])
def test_stop_in_kth_callback_leaves_k_updates(kind, k):
    calls = []

    def cb():
        calls.append(1)
        if len(calls) == k:
            fx.stop()

    m, h, ref = run(kind, cb)
    k = min(k, len(ref))  # a generator of 5 batches ends before a 7th callback
    assert len(calls) == k and len(h.losses) == k
    np.testing.assert_allclose(wb(m), ref[k - 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["list", "loader", "generator"])
def test_skip_skips_the_remaining_callbacks_of_that_step(kind):
    a, b = [], []

    def first():
        a.append(1)
        if len(a) <= 3:
            fx.skip()

    m, h, ref = run(kind, [first, lambda: b.append(1)])
    assert len(a) == len(ref) and len(b) == len(ref) - 3


@pytest.mark.parametrize("kind", ["list", "loader"])
def test_exception_in_callback_propagates_and_train_continues(kind):
    make, epochs, seen = KINDS[kind]
    m, data, opt = model(), make(), fx.Adam(0.01)
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731

    def boom(ctx):
        if ctx.step == 4:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fx.train(loss, fx.params(m), data, opt, cb=boom, epochs=epochs)
    after4 = wb(m)
    # the same 4 steps in a fresh run agree, and the state continues from there
    m2, opt2 = model(), fx.Adam(0.01)
    fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m2), seen[:4], opt2)
    np.testing.assert_allclose(after4, wb(m2), rtol=1e-6)
    fx.train(loss, fx.params(m), seen[4:6], opt)
    fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m2), seen[4:6], opt2)
    np.testing.assert_allclose(wb(m), wb(m2), rtol=1e-6)


@pytest.mark.parametrize("kind", ["list", "loader", "loader-in-order", "repeat"])
def test_every_fires_exactly_with_that_steps_model(kind):
    seen = []
    box = {"m": model()}
    cb = fx.every(4, lambda ctx: seen.append((ctx.step, ctx.epoch, ctx.batch_index, wb(box["m"]))))
    m, h, ref = run(kind, cb, box["m"])
    per = len(ref) // KINDS[kind][1]
    steps = list(range(4, len(ref) + 1, 4))
    assert [s for s, *_ in seen] == steps
    assert [(e, bi) for _, e, bi, _ in seen] == [((s - 1) // per + 1, (s - 1) % per) for s in steps]
    np.testing.assert_allclose([v for *_, v in seen], [ref[s - 1] for s in steps], rtol=1e-5)
    np.testing.assert_allclose(wb(m), ref[-1], rtol=1e-5, atol=1e-6)


def test_every_with_a_plain_callback_runs_both_on_time():
    plain, sched = [], []
    m, h, ref = run("list", [lambda: plain.append(1), fx.every(5, lambda c: sched.append(c.step))])
    assert len(plain) == len(ref) and sched == [5, 10, 15]


def test_stop_and_skip_from_scheduled_callbacks():
    after = []

    def stopper(ctx):
        if ctx.step == 8:
            fx.stop()

    m, h, ref = run("loader", [fx.every(4, stopper), fx.every(4, lambda: after.append(1))])
    assert len(h.losses) == 8 and after == [1]
    np.testing.assert_allclose(wb(m), ref[7], rtol=1e-5)
    b = []
    run("list", [fx.every(3, fx.skip), fx.every(3, lambda: b.append(1))])
    assert b == []


def test_fused_and_step_by_step_runs_are_the_same_program():
    """Adam over a shuffled DataLoader with a tail: every(5) (fused between) against a
    plain callback (one step per call): the same losses and parameters."""

    def go(cb):
        m = model()
        h = fx.train(
            lambda x, y: fx.mse(m(x), y), fx.params(m), loader(), fx.Adam(0.01), cb=cb, epochs=40
        )
        return wb(m), h.losses

    (p1, l1), (p2, l2) = go(fx.every(5, lambda: None)), go(lambda: None)
    assert len(l1) == len(l2) == 160
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    np.testing.assert_allclose(p1, p2, rtol=1e-6)


def test_throttle_fires_where_a_step_by_step_loop_would_with_a_fake_clock():
    """The throttle's clock advances one 'second' per step (read from the model: Descent(1)
    on loss -w moves w by exactly 1 a step), window 10 s: leading call after step 1, then
    at steps 11, 21, ... as a step-by-step loop calling it after every step would."""
    m = fx.Dense(jnp.array([[0.0]]), False)
    clock = lambda: float(m.weight[0, 0])  # noqa: E731
    fired = []
    cb = fx.throttle(lambda ctx: fired.append(ctx.step), 10.0, clock=clock)
    x = jnp.ones((1, 1))
    fx.train(lambda x: -m(x).sum(), fx.params(m), [(x,)] * 45, fx.Descent(1.0), cb=cb)
    assert fired == [1, 11, 21, 31, 41]


def test_throttle_fuses_the_steps_between_its_calls():
    calls = {"fire": 0, "f": 0}
    cb = fx.throttle(lambda: calls.__setitem__("f", calls["f"] + 1), 0.05)
    fire = cb.fire

    def counting(ctx):
        calls["fire"] += 1
        return fire(ctx)

    cb.fire = counting
    m = model()
    h = fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Descent(0.01), cb=cb, epochs=20000
    )
    assert len(h.losses) == 20000
    assert calls["f"] >= 1 and calls["fire"] < 2000  # spans of many steps, not one per step


def test_trailing_throttle_call_runs_when_the_run_ends():
    got = []
    cb = fx.throttle(lambda ctx: got.append(ctx.step), 100.0, trailing=True)
    run("list", cb)
    assert got == [1, 15]  # leading at step 1, the pending trailing call flushed at the end


def test_steps_per_call_is_the_opt_in_departure():
    steps = []
    mm = model()
    fx.train(
        lambda x, y: fx.mse(mm(x), y),
        fx.params(mm),
        LIST,
        fx.Descent(ETA),
        cb=lambda ctx: steps.append(ctx.step),
        epochs=3,
        steps_per_call=4,
    )
    assert steps == [4, 8, 12, 15]  # and after the run's last step
    np.testing.assert_allclose(wb(mm), reference(LIST * 3)[-1], rtol=1e-5)


def test_metrics_from_callbacks_land_in_the_history():
    m = model()

    def val(ctx):
        ctx.metrics["w"] = float(m.weight[0, 0])

    h = fx.train(
        lambda x, y: fx.mse(m(x), y),
        fx.params(m),
        LIST,
        fx.Descent(ETA),
        cb=fx.every(5, val),
        epochs=2,
    )
    ref = reference(LIST * 2)
    assert h.steps_of("w") == [5, 10]
    np.testing.assert_allclose(h["w"], [ref[4][0], ref[9][0]], rtol=1e-5)
    with pytest.raises(KeyError, match="no series 'v'"):
        h["v"]


def test_empty_params_run_the_loss_each_step_like_flux():
    """Flux's "Training Loop" test: train!(loss, (), Iterators.repeated((), 10), Descent())."""
    i = {"n": 0}

    def skipping():
        fx.skip()
        i["n"] += 1
        return 0.0

    fx.train(skipping, (), itertools.repeat((), 10), fx.Descent())
    assert i["n"] == 0

    def counting():
        if i["n"] == 8:
            fx.stop()
        i["n"] += 1
        return 0.0

    with pytest.warns(UserWarning, match="nothing to train"):  # empty Params: a warning
        fx.train(counting, fx.params(), itertools.repeat((), 10), fx.Descent())
    assert i["n"] == 8


def test_models_made_anew_over_one_list_share_its_stack_until_it_goes():
    """A list of JAX batches is stacked on the device once for every plan that trains on
    it (a model made anew each run adds no copy), and the stack goes with the list."""
    import gc

    from fluxjax.engine.sources import STACKS

    STACKS.clear()
    batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in LIST]
    stacks = []
    for _ in range(3):
        m = model()
        fx.train(lambda x, y, m=m: fx.mse(m(x), y), fx.params(m), batches, fx.Descent(ETA))
        assert len(STACKS.entries) == 1
        stacks.append(next(iter(STACKS.entries.values()))[1])
    assert stacks[0] is stacks[1] is stacks[2]
    del batches, stacks
    gc.collect()
    assert not STACKS.entries


def test_caches_let_go_of_callbacks_stay_bounded_and_clear():
    import gc
    import weakref

    from fluxjax.engine import cache

    m = model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Descent(ETA)
    refs = []
    for _ in range(5):
        cb = lambda: None  # noqa: E731  (a new function object every time)
        refs.append(weakref.ref(cb))
        fx.train(loss, ps, LIST, opt, cb=cb)
        del cb
    fx.train(loss, ps, LIST, opt, cb=lambda: None)  # the last-call cache moves on
    gc.collect()
    assert all(r() is None for r in refs)
    for _ in range(cache.MAX_PLANS + 5):  # many models: the plan cache stays bounded
        mm = model()
        fx.train(lambda x, y, mm=mm: fx.mse(mm(x), y), fx.params(mm), LIST[:1], fx.Descent(ETA))
    assert len(cache.PLANS) <= cache.MAX_PLANS
    # a plan does not hold the batch it saw last (the per-epoch replay holds the last
    # call's, epochs=1, until the next call)
    x, y = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    xref = weakref.ref(x)
    fx.train(loss, ps, [(x, y)], opt, epochs=2)
    del x, y
    gc.collect()
    assert xref() is None
    # fx.clear_caches drops every plan (the kept model's too, small, with its parameters
    # held packed: they are given back), and training the kept objects goes on where it was
    w_before = np.asarray(m.weight)
    del mm
    fx.clear_caches()
    gc.collect()
    assert not cache.PLANS
    np.testing.assert_array_equal(m.weight, w_before)
    fx.train(loss, ps, LIST, opt)
    assert not np.array_equal(np.asarray(m.weight), w_before)


def _per_epoch(m, b, cb):
    opt = fx.Adam()
    for _ in range(3):
        fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [b], opt, cb=cb)


FREED_RUNS = {  # how the model was trained -> a train call on (model, batch, callback)
    "per-epoch loop": _per_epoch,
    "fused list": lambda m, b, cb: fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [b] * 3, fx.Adam(), epochs=4, cb=cb
    ),
    "one step a call": lambda m, b, cb: fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [b] * 3, fx.Adam(), fuse=False, cb=cb
    ),
    "explicit, DataLoader": lambda m, b, cb: fx.train(
        lambda mm, x, y: fx.mse(mm(x), y),
        m,
        fx.DataLoader(b, batchsize=2, shuffle=True),
        fx.setup(fx.Adam(), m),
        epochs=2,
        cb=fx.every(2, cb),
    ),
}


@pytest.mark.parametrize("how", list(FREED_RUNS))
def test_a_model_let_go_is_freed_with_its_plan(how):
    """The engine's caches hold no user object: once the caller lets go of a trained
    model, its batch and its callback, they are freed (plans live in their models), with
    no fx.clear_caches; a copy of a trained model does not take its plans along."""
    import copy
    import gc
    import weakref

    from fluxjax.engine import cache

    def run() -> list:
        m = fx.Chain(fx.Dense(3, 4, fx.relu), fx.Dense(4, 1))
        b = (jnp.ones((4, 3)), jnp.zeros((4, 1)))
        cb = lambda *a: None  # noqa: E731
        FREED_RUNS[how](m, b, cb)
        twin = copy.deepcopy(m)  # a copy leaves the plans behind (and trains with its own)
        assert cache.PLANS_KEY in vars(m) and cache.PLANS_KEY not in vars(twin)
        FREED_RUNS[how](twin, b, cb)
        new = [weakref.ref(p) for p in cache.PLANS.plans() if id(p) not in before]
        assert len(new) == 2  # the model's and the copy's
        return [weakref.ref(o) for o in (m, twin, b[0], cb)] + new

    before = {id(p) for p in cache.PLANS.plans()}
    refs = run()
    gc.collect()
    assert [r() is None for r in refs] == [True] * 6


def test_a_rule_kept_for_later_does_not_keep_the_models_it_trained():
    """A rule used for many models (made once at the top of a script; an Optax
    transformation, whose wrapper fluxjax caches) keeps implicit-mode state for each, as
    Flux's ``opt.state`` does, but only while the model lives: a model let go is freed,
    and its state with it; a model kept goes on from its own state."""
    import gc
    import weakref

    import optax

    opt, tx = fx.Adam(0.01), optax.adam(0.01)
    b = (jnp.ones((4, 3)), jnp.zeros((4, 1)))
    for rule in (opt, tx):
        kept = fx.Chain(fx.Dense(3, 4, fx.relu), fx.Dense(4, 1))
        twin = fx.Chain(fx.Dense(3, 4, fx.relu), fx.Dense(4, 1))
        fx.loadmodel(twin, fx.state(kept))

        def loss_of(m):
            return lambda x, y: fx.mse(m(x), y)

        refs = []
        for _ in range(3):
            m = fx.Chain(fx.Dense(3, 4, fx.relu), fx.Dense(4, 1))
            fx.train(loss_of(m), fx.params(m), [b], rule)
            fx.train(loss_of(kept), fx.params(kept), [b], rule)  # kept, between them
            refs.append(weakref.ref(m))
            del m
        gc.collect()
        assert [r() is None for r in refs] == [True] * 3
        # the kept model's state carried on through all this: as three Adam steps in a row
        fresh = optax.adam(0.01) if rule is tx else fx.Adam(0.01)
        fx.train(loss_of(twin), fx.params(twin), [b] * 3, fresh)
        for a, w in zip(jax.tree_util.tree_leaves(kept), jax.tree_util.tree_leaves(twin)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(w))
