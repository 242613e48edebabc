"""One step, one compiled program: how many XLA programs ``train`` compiles, and that the same
steps give the same bits however a run is split (one call or one per epoch, any callbacks,
``steps_per_call``, a checkpoint, a save and a load in a new process).

Every final state is compared through the file ``fx.save`` writes: every model array
(parameters, BatchNorm statistics, Dropout keys), the optimiser state and the loader, with
``==``, never a tolerance.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

import fluxjax as fx

HERE = os.path.dirname(os.path.abspath(__file__))


# -- the models of the matrix (also built by the subprocess, so kept importable) ------------
def build(name: str):
    """(model, loss(model, x, y), loader) for ``name``; the same arrays every time."""
    fx.seed(3)
    r = np.random.default_rng(5)
    if name == "seed":
        m = fx.Chain(fx.Dense(1, 4, fx.σ), fx.Dense(4, 1))
        x = np.linspace(-1, 1, 21, dtype=np.float32)[:, None]
        y, bs = 3 * x + 1, 3
        lossf = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    elif name == "mlp":
        m = fx.Chain(fx.Dense(8, 16, fx.relu), fx.Dense(16, 16, fx.relu), fx.Dense(16, 3))
        x = r.standard_normal((50, 8)).astype(np.float32)
        y, bs = fx.onehotbatch(r.integers(0, 3, 50), range(3)), 8
        lossf = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    elif name == "cnn":
        m = fx.Chain(
            fx.Conv((3, 3), 1, 4, fx.relu), fx.MaxPool((2, 2)), fx.flatten, fx.Dense(36, 2)
        )
        x = r.standard_normal((20, 8, 8, 1)).astype(np.float32)
        y, bs = fx.onehotbatch(r.integers(0, 2, 20), range(2)), 6
        lossf = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    elif name == "lstm":
        m = fx.Chain(fx.LSTM(3, 6), lambda h: h[:, -1], fx.Dense(6, 1))
        x = r.standard_normal((18, 5, 3)).astype(np.float32)
        y, bs = x.sum(axis=(1, 2))[:, None], 4
        lossf = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    else:  # "norm": BatchNorm and Dropout
        m = fx.Chain(fx.Dense(8, 16), fx.BatchNorm(16, fx.relu), fx.Dropout(0.2), fx.Dense(16, 1))
        x = r.standard_normal((40, 8)).astype(np.float32)
        y, bs = x[:, :1] * 2 - x[:, 1:2], 6
        lossf = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    loader = fx.DataLoader((x, np.asarray(y, np.float32)), batchsize=bs, shuffle=True, rng=11)
    return m, lossf, loader


MODELS = ["seed", "mlp", "cnn", "lstm", "norm"]
EPOCHS = 3


def start(name: str, folder) -> tuple:
    """The model of ``name`` with Adam's state set up, and the file of that start."""
    m, lossf, loader = build(name)
    state = fx.setup(fx.Adam(0.01), m)
    path = os.path.join(folder, f"{name}-start.safetensors")
    fx.save(path, m, state, loader=loader)
    return m, lossf, loader, state, path


def tensors(m, state, loader, folder, tag: str) -> dict[str, np.ndarray]:
    """Every array of the model, the optimiser state and the loader, through fx.save."""
    path = os.path.join(folder, f"end-{tag}.safetensors")
    fx.save(path, m, state, loader=loader)
    return load_file(path)


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """The names whose arrays differ (in keys, dtype, shape or any bit)."""
    bad = sorted(set(a) ^ set(b))
    for k in set(a) & set(b):
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes():
            bad.append(k)
    return bad


def splits(m, lossf, loader, state, folder):
    """The same EPOCHS epochs, run in different ways (name -> a function running them)."""
    every_seen: list[int] = []

    def one():
        fx.train(lossf, m, loader, state, epochs=EPOCHS)

    def per_epoch():
        for _ in range(EPOCHS):
            fx.train(lossf, m, loader, state, cb=lambda: None)

    def scheduled():
        cbs = [fx.every(4, lambda: every_seen.append(1)), fx.throttle(lambda: None, 0.0005)]
        fx.train(lossf, m, loader, state, epochs=EPOCHS, cb=cbs)

    def steps_per_call():
        fx.train(lossf, m, loader, state, epochs=EPOCHS, steps_per_call=3, cb=lambda: None)

    def checkpointer():
        ck = fx.Checkpointer(os.path.join(folder, "ck"), m, state, loader=loader, every=5)
        fx.train(lossf, m, loader, state, epochs=EPOCHS, cb=ck)

    def reloaded():  # a save and a load in this process, mid-run
        fx.train(lossf, m, loader, state, epochs=1)
        mid = os.path.join(folder, "mid.safetensors")
        fx.save(mid, m, state, loader=loader)
        fx.load(mid, m, state, loader=loader)
        fx.train(lossf, m, loader, state, epochs=EPOCHS - 1)

    def read_grads():  # ctx.grad_norm and, asked for, the gradients: the same update bits
        seen = lambda ctx: ctx.grad_norm + float(sum(g.sum() for g in ctx.grads))  # noqa: E731
        fx.train(lossf, m, loader, state, epochs=EPOCHS, cb=fx.every(4, seen, grads=True))

    return {
        "per_epoch": per_epoch,
        "scheduled": scheduled,
        "steps_per_call": steps_per_call,
        "checkpointer": checkpointer,
        "reloaded": reloaded,
        "read_grads": read_grads,
    }, one


@pytest.mark.parametrize("name", MODELS)
def test_the_same_steps_give_the_same_bits_however_split(name, tmp_path):
    m, lossf, loader, state, begin = start(name, tmp_path)
    variants, one = splits(m, lossf, loader, state, tmp_path)
    one()
    want = tensors(m, state, loader, tmp_path, "one")
    for tag, run in variants.items():
        fx.load(begin, m, state, loader=loader)
        run()
        got = tensors(m, state, loader, tmp_path, tag)
        assert not same(want, got), f"{name}, {tag}: {same(want, got)} differ"


def test_a_resume_in_a_new_process_gives_the_same_bits(tmp_path):
    """Each model trained EPOCHS epochs with a Checkpointer every 5 steps (mid-epoch), and
    resumed in a new process from the checkpoint at step 5: the same bits at the end."""
    for name in MODELS:
        m, lossf, loader, state, _ = start(name, tmp_path)
        ck = fx.Checkpointer(tmp_path / name, m, state, loader=loader, every=5, keep=100)
        fx.train(lossf, m, loader, state, epochs=EPOCHS, cb=ck)
        fx.save(tmp_path / f"{name}-want.safetensors", m, state, loader=loader)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, *sys.path])}
    subprocess.run(
        [sys.executable, "-c", f"import test_engine_program as t; t.resume_all({str(tmp_path)!r})"],
        env=env,
        check=True,
        timeout=240,
    )
    for name in MODELS:
        want = load_file(tmp_path / f"{name}-want.safetensors")
        got = load_file(tmp_path / f"{name}-resumed.safetensors")
        assert not same(want, got), f"{name}: {same(want, got)} differ after the resume"


def resume_all(folder: str) -> None:
    """(In the new process.) Load each model's checkpoint at step 5 and finish the run."""
    for name in MODELS:
        m, lossf, loader = build(name)
        state = fx.setup(fx.Adam(0.01), m)
        fx.load(
            os.path.join(folder, name, "checkpoint-00000005.safetensors"), m, state, loader=loader
        )
        # the rest of the epoch the checkpoint fell in, then the epochs after it
        fx.train(lossf, m, loader, state, epochs=EPOCHS - loader.epoch)
        fx.save(os.path.join(folder, f"{name}-resumed.safetensors"), m, state, loader=loader)


# -- compilations -------------------------------------------------------------------------
def _kinds():
    x = np.linspace(-1, 1, 24, dtype=np.float32)[:, None]
    y = 2 * x
    return {
        "list of one": lambda: [(x, y)],
        "list of four": lambda: [(x[i : i + 6], y[i : i + 6]) for i in range(0, 24, 6)],
        "loader": lambda: fx.DataLoader((x, y), batchsize=6, shuffle=True),
        "loader with a tail": lambda: fx.DataLoader((x, y), batchsize=5, shuffle=True),
        "sharded loader": lambda: fx.DataLoader(
            (x, y), batchsize=6, shuffle=True, rng=0, shard=(1, 2)
        ),
        "generator": "generator",
    }


@pytest.mark.parametrize("kind", list(_kinds()))
def test_a_plan_compiles_at_most_two_programs_then_none(kind, compiles):
    make = _kinds()[kind]
    x = np.linspace(-1, 1, 24, dtype=np.float32)[:, None]

    def data(epochs: int = 1) -> tuple:  # a generator is read once: as many batches instead
        if make == "generator":
            return ((x[:6], 2 * x[:6]) for _ in range(3 * epochs)), 1
        return make(), epochs

    m = fx.Chain(fx.Dense(1, 4, fx.σ), fx.Dense(4, 1))
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    before = compiles.count
    batches, _ = data()
    fx.train(loss, ps, batches, opt)
    assert compiles.count - before <= 2, compiles.names[before:]
    first = compiles.count
    for extra in [
        dict(epochs=3),
        dict(epochs=500),
        dict(cb=lambda: None),
        dict(cb=fx.every(7, lambda: None), epochs=40),
        dict(cb=fx.throttle(lambda: None, 0.001), epochs=40),
        dict(steps_per_call=5, cb=lambda: None, epochs=4),
    ]:
        batches, epochs = data(extra.pop("epochs", 1))
        fx.train(loss, ps, batches, opt, epochs=epochs, **extra)
    assert compiles.count == first, compiles.names[first:]


def test_forcing_the_form_and_explain(compiles):
    """``fuse=`` fixes the form of a new plan's program; ``fx.explain`` names it and why;
    the two forms agree to float rounding."""
    out = {}
    for fuse in (True, False):
        m, lossf, loader = build("mlp")
        state = fx.setup(fx.Adam(0.01), m)
        fx.train(lossf, m, loader, state, epochs=2, fuse=fuse)
        text = fx.explain(lossf, m, state)
        assert ("loop" if fuse else "step") in text and f"fuse={fuse}" in text
        out[fuse] = [np.asarray(a) for a in fx.params(m)]
    for a, b in zip(out[True], out[False]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    fx.train(lossf, m, loader, state, fuse=True)  # a later fuse= switches the form
    assert "form 'loop'" in fx.explain(lossf, m, state)
    with pytest.raises(TypeError, match="fuse must be"):
        fx.train(lossf, m, loader, state, fuse="yes")


def test_the_form_rule_on_the_cpu():
    """A small CNN and a small MLP loop; an MLP whose products exceed LOOP_FLOPS takes one
    compiled step per batch."""
    for name in ("cnn", "mlp"):
        m, lossf, loader = build(name)
        state = fx.setup(fx.Adam(0.01), m)
        fx.train(lossf, m, loader, state)
        assert "form 'loop'" in fx.explain(lossf, m, state), name
    fx.seed(0)
    m = fx.Chain(fx.Dense(784, 1024, fx.relu), fx.Dense(1024, 10))
    x = np.zeros((128, 784), np.float32)
    y = np.zeros((128, 10), np.float32)
    state = fx.setup(fx.Descent(), m)
    lossf = lambda m, x, y: fx.mse(m(x), y)  # noqa: E731
    fx.train(lossf, m, [(x, y)], state)
    assert "form 'step'" in fx.explain(lossf, m, state)  # 0.6 GFLOP a step


def test_a_repeated_batch_runs_any_span_in_the_one_program():
    """itertools.repeat of one batch (a stream) and the list of that batch: the same
    program, the same bits."""
    x = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    out = []
    for data in ([(x, 3 * x)], itertools.repeat((x, 3 * x), 40)):
        fx.seed(1)
        m = fx.Chain(fx.Dense(1, 3, fx.tanh), fx.Dense(3, 1))
        kw = dict(epochs=40) if isinstance(data, list) else {}
        fx.train(lambda x, y, m=m: fx.mse(m(x), y), fx.params(m), data, fx.Adam(0.1), **kw)
        out.append([np.asarray(a).tobytes() for a in fx.params(m)])
    assert out[0] == out[1]


@pytest.mark.parametrize("kind", ["small", "sharded", "memory-mapped"])
def test_a_gathered_loader_gives_the_bits_of_iterating_it(kind, tmp_path):
    """DataLoaders whose batches are gathered on the host (each with a short last batch): a
    small one, one with ``shard=`` (this process's part of every batch, as in a
    multi-process run), one over memory-mapped arrays (in the lone-step form: a call's
    steps each a call of the program, over a block put on the device once). Fused over
    several epochs, one step a call, iterated by hand as a generator, and resumed from a
    checkpoint taken mid-epoch give the same bits."""
    out = []
    kw = {"fuse": False} if kind == "memory-mapped" else {}
    for how in ("fused", "one a call", "iterated", "resumed"):
        m, lossf, whole = build("norm")  # 40 observations: batches of 6, a short one of 4
        data, shard = whole.data, (1, 2) if kind == "sharded" else None
        if kind == "memory-mapped":
            data = tuple(_memmap(tmp_path / f"{how}{i}.npy", a) for i, a in enumerate(data))
        loader = fx.DataLoader(data, batchsize=6, shuffle=True, rng=2, shard=shard)
        state = fx.setup(fx.Adam(0.01), m)
        if how == "fused":
            ck = fx.Checkpointer(tmp_path / "ck", m, state, loader=loader, every=5, keep=9)
            fx.train(lossf, m, loader, state, epochs=3, cb=ck, **kw)
        elif how == "one a call":
            fx.train(lossf, m, loader, state, epochs=3, cb=lambda: None, **kw)
        elif how == "iterated":
            fx.train(lossf, m, (b for _ in range(3) for b in loader), state, **kw)
        else:  # from step 5 of the first run (epoch 1, batch 5 of 7)
            fx.load(tmp_path / "ck" / "checkpoint-00000005.safetensors", m, state, loader=loader)
            fx.train(lossf, m, loader, state, epochs=3 - loader.epoch, **kw)
        out.append(tensors(m, state, loader, tmp_path, how))
    assert all(not same(out[0], o) for o in out[1:]), [same(out[0], o) for o in out[1:]]


def _memmap(path, a: np.ndarray) -> np.ndarray:
    m = np.lib.format.open_memmap(path, mode="w+", dtype=a.dtype, shape=a.shape)
    m[:] = a
    m.flush()
    return np.load(path, mmap_mode="r")


def test_a_new_learning_rate_compiles_nothing_and_takes_effect(compiles):
    # the learning rate is a run-time input of the program: opt.eta = ... between calls,
    # fx.adjust on an explicit state, and a callback's ctx.adjust change a number, not the
    # program; each step uses the η set before it (plain gradient descent as the reference)
    x = np.linspace(-1, 1, 12, dtype=np.float32)[:, None]
    y = np.sin(3 * x)
    W1 = jnp.linspace(-1.0, 1.0, 4)[:, None]
    W2 = jnp.linspace(0.5, -0.5, 4)[None, :]

    def reference(etas):
        p = [W1, jnp.zeros(4), W2, jnp.zeros(1)]

        def f(p):
            return jnp.mean((jnp.tanh(x @ p[0].T + p[1]) @ p[2].T + p[3] - y) ** 2)

        for eta in etas:
            p = [a - eta * g for a, g in zip(p, jax.grad(f)(p))]
        return p

    def model():
        return fx.Chain(fx.Dense(W1, jnp.zeros(4), jnp.tanh), fx.Dense(W2, jnp.zeros(1)))

    etas = [0.1 / (1 + k) for k in range(8)]
    m, opt = model(), fx.Descent(etas[0])  # implicit mode, η changed between calls
    ps, loss = fx.params(m), lambda a, b: fx.mse(m(a), b)
    fx.train(loss, ps, [(x, y)], opt)
    first = compiles.count
    for eta in etas[1:]:
        opt.eta = eta
        fx.train(loss, ps, [(x, y)], opt)
    assert compiles.count == first, compiles.names[first:]
    for a, b in zip(fx.params(m), reference(etas)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    m2 = model()  # explicit mode: fx.adjust replaces the state's rule objects
    state = fx.setup(fx.Descent(etas[0]), m2)
    loss2 = lambda mm, a, b: fx.mse(mm(a), b)  # noqa: E731
    fx.train(loss2, m2, [(x, y)], state)
    first = compiles.count
    for eta in etas[1:]:
        fx.adjust(state, eta)
        fx.train(loss2, m2, [(x, y)], state)
    assert compiles.count == first, compiles.names[first:]
    for a, b in zip(fx.params(m2), reference(etas)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    m3, opt3 = model(), fx.Descent(etas[0])  # a callback halving η every 2 steps, in one call
    loss3 = lambda a, b: fx.mse(m3(a), b)  # noqa: E731
    fx.train(loss3, fx.params(m3), [(x, y)], opt3)
    first = compiles.count
    halve = fx.every(2, lambda ctx: ctx.adjust(ctx.eta / 2))
    fx.train(loss3, fx.params(m3), [(x, y)], opt3, epochs=7, cb=halve)
    assert compiles.count == first, compiles.names[first:]
    assert opt3.eta == etas[0] / 8
    # step 1 (first call) at η0; steps 2-3 at η0, 4-5 at η0/2, 6-7 at η0/4, 8 at η0/8
    steps = [etas[0]] * 3 + [etas[0] / 2] * 2 + [etas[0] / 4] * 2 + [etas[0] / 8]
    for a, b in zip(fx.params(m3), reference(steps)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def failing_batches():
    """The "norm" model (BatchNorm, Dropout) and 12 batches, the 9th holding a NaN."""
    m, lossf, loader = build("norm")
    x, y = loader.data
    batches = [(x[i * 3 : i * 3 + 3], y[i * 3 : i * 3 + 3]) for i in range(12)]
    bad = batches[8][1].copy()
    bad[1] = np.nan
    batches[8] = (batches[8][0], bad)
    return m, lossf, batches


def halve(m):
    def cb():  # a callback that changes a parameter
        m[3].bias = m[3].bias * 0.5

    return cb


@pytest.mark.parametrize("how", ["one_call", "every_4", "every_4_changing", "skip_when", "donated"])
def test_a_step_failing_inside_a_call_leaves_what_the_steps_before_it_left(
    how, tmp_path, monkeypatch
):
    # inside a loop a failed step's results are not selected away step by step (which made
    # every update wait for the last gradient); the call returns its inputs and the steps
    # before the failed one run again from them: the model, its BatchNorm statistics and
    # Dropout keys, and Adam's state are those of the 8 steps before the failure, bit for
    # bit, also when a callback changed the model after the failed call, before its check.
    # A plan that donates its buffers (accelerators, large models) selects step by step.
    if how == "donated":
        monkeypatch.setattr(fx.engine.plan, "DONATE_BYTES", 0)

    def run(n):
        m, lossf, batches = failing_batches()
        state = fx.setup(fx.Adam(0.01), m)
        loss = lossf
        if how == "skip_when":

            def loss(m, x, y):
                fx.skip_when(jnp.sum(x) > 1e9)  # never: the step-by-step selection stays
                return lossf(m, x, y)

        cb = None
        if how == "every_4":
            cb = fx.every(4, lambda: None)
        elif how == "every_4_changing":
            cb = fx.every(4, halve(m))
        try:
            fx.train(loss, m, batches[:n], state, cb=cb)
        finally:
            out = tensors(m, state, None, tmp_path, str(n))
        return out

    want = run(8)
    assert bool(fx.engine.cache.LAST.plan.donate) == (how == "donated")
    with pytest.raises(FloatingPointError, match="not finite at step 9") as err:
        run(12)
    losses = err.value.history.losses
    assert np.isfinite(losses[:8]).all() and np.isnan(losses[8])
    got = load_file(os.path.join(tmp_path, "end-12.safetensors"))
    assert len(want) > 10 and same(got, want) == []
