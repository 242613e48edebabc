"""Checkpointer and bit-exact resume: N steps, save, a fresh process state, resume, M steps
must equal N + M uninterrupted steps bit for bit (CPU), with shuffling and Adam, in both
optimiser modes; and the kill test: a subprocess killed with SIGKILL at random moments.

The runs use ``steps_per_call=1`` where a checkpoint must land mid-epoch: the documented
semantics (a Checkpointer fires at multiples of ``every`` global steps) hold for that path in
today's engine and for every path in the scheduled engine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import kill_worker
import numpy as np
import pytest

import fluxjax as fx

HERE = os.path.dirname(os.path.abspath(__file__))


def make(mode: str):
    """A small model, data, a shuffling loader (its own generator) and an Adam optimiser."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)
    m = fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 1))
    for layer, k in zip(m, (1, 2)):
        w = np.random.default_rng(k).normal(size=layer.weight.shape).astype(np.float32)
        layer.weight = w
    loader = fx.DataLoader((x, y), batchsize=4, shuffle=True, rng=np.random.default_rng(7))
    if mode == "implicit":
        ps, opt = fx.params(m), fx.Adam(0.01)
        return m, loader, opt, ps, lambda x, y: fx.mse(m(x), y)
    opt = fx.setup(fx.Adam(0.01), m)
    return m, loader, opt, m, lambda model, x, y: fx.mse(model(x), y)


def weights(m) -> list[np.ndarray]:
    return [np.asarray(a) for layer in m for a in (layer.weight, layer.bias)]


@pytest.mark.parametrize("mode", ["implicit", "explicit"])
def test_resume_is_bit_exact(tmp_path, mode):
    epochs, every = 4, 5  # 6 batches an epoch: checkpoints at steps 5, 10, ... (mid-epoch)
    m, loader, opt, target, loss = make(mode)
    fx.train(loss, target, loader, opt, epochs=epochs, steps_per_call=1)
    want = weights(m)

    m, loader, opt, target, loss = make(mode)
    ck = fx.Checkpointer(tmp_path, m, opt, loader=loader, every=every, keep=2)
    fx.train(loss, target, loader, opt, epochs=2, cb=ck, steps_per_call=1)
    assert ck.step == 12 and [os.path.basename(p)[-20:] for p in ck.files()] == [
        "00000005.safetensors",
        "00000010.safetensors",
    ]
    # "kill": everything in memory is lost; a fresh run resumes from step 10 (mid-epoch 2)
    m, loader, opt, target, loss = make(mode)
    ck = fx.Checkpointer(tmp_path, m, opt, loader=loader, every=every, keep=2)
    info = ck.resume()
    assert info["step"] == 10 and loader.epoch == 1 and loader.position == 4
    fx.train(loss, target, loader, opt, epochs=epochs - loader.epoch, cb=ck, steps_per_call=1)
    assert ck.step == 24
    for a, b in zip(weights(m), want):
        np.testing.assert_array_equal(a, b)


def test_resume_at_epoch_end_fused_path(tmp_path):
    """A checkpoint at an epoch boundary resumes exactly through the fused DataLoader path."""
    m, loader, opt, target, loss = make("implicit")
    fx.train(loss, target, loader, opt, epochs=5)
    want = weights(m)
    m, loader, opt, target, loss = make("implicit")
    fx.train(loss, target, loader, opt, epochs=2)
    fx.save(tmp_path / "a.safetensors", m, opt, loader=loader, step=12)
    m, loader, opt, target, loss = make("implicit")
    assert fx.load(tmp_path / "a.safetensors", m, opt, loader=loader) == {"step": 12}
    fx.train(loss, target, loader, opt, epochs=5 - loader.epoch)
    for a, b in zip(weights(m), want):
        np.testing.assert_array_equal(a, b)


def test_global_step_continues_across_calls(tmp_path):
    m, loader, opt, target, loss = make("implicit")
    ck = fx.Checkpointer(tmp_path, m, opt, every=4, keep=None)
    for _ in range(3):  # the tutorial's loop: one train call per epoch, 6 steps each
        fx.train(loss, target, loader, opt, cb=ck, steps_per_call=1)
    assert ck.step == 18
    steps = [fx.load(p, m)["step"] for p in ck.files()]
    assert steps == [4, 8, 12, 16]


def test_resume_skips_a_damaged_newest_file(tmp_path):
    m, loader, opt, target, loss = make("implicit")
    ck = fx.Checkpointer(tmp_path, m, opt, every=3)
    fx.train(loss, target, loader, opt, cb=ck, steps_per_call=1)
    newest = ck.files()[-1]
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) - 10)
    assert fx.Checkpointer.latest(tmp_path) == ck.files()[0]
    m2, _, opt2, _, _ = make("implicit")
    with pytest.warns(UserWarning, match="truncated"):
        info = fx.Checkpointer(tmp_path, m2, opt2, every=3).resume()
    assert info["step"] == 3


def test_checkpointer_arguments(tmp_path):
    m = fx.Dense(1, 1)
    with pytest.raises(ValueError, match="every must be a positive int"):
        fx.Checkpointer(tmp_path, m, every=0)
    with pytest.raises(ValueError, match="keep must be a positive int"):
        fx.Checkpointer(tmp_path, m, keep=0)
    ck = fx.Checkpointer(tmp_path, m, every=np.int64(10))
    assert ck.steps_until(0, None) == 10 and ck.steps_until(7, None) == 3
    assert isinstance(ck, fx.Scheduled)


# -- the kill test -----------------------------------------------------------------------------
WORKER = os.path.join(HERE, "kill_worker.py")


def _run(folder, env) -> None:
    """Run the worker to the end."""
    p = subprocess.run(
        [sys.executable, WORKER, str(folder)], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 0, p.stderr


def _kill_once(folder, env, saves: int, delay: float) -> bool:
    """Start the worker, SIGKILL it ``delay`` seconds after its ``saves``-th checkpoint;
    False when it finished first."""
    with subprocess.Popen(
        [sys.executable, WORKER, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    ) as p:
        assert p.stdout.readline().strip() == "training"  # resumed, first step compiled
        for _ in range(saves):
            if p.stdout.readline().strip() != "saved":
                return False  # it finished
        time.sleep(delay)
        if p.poll() is not None:
            return False
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True


def test_kill_at_random_moments_then_resume_is_bit_exact(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    want = kill_worker.main(str(tmp_path / "ref"))  # uninterrupted, in this process
    folder, rnd, kills, t0 = tmp_path / "run", random.Random(1), 0, time.monotonic()
    steps = []  # the newest checkpoint after each kill: training moved on between kills
    while kills < 3 and time.monotonic() - t0 < 25:
        if not _kill_once(folder, env, rnd.randint(1, 3), rnd.uniform(0.0, 0.03)):
            break
        kills += 1
        files = sorted(fx_files(folder))
        for f in files:  # every checkpoint left behind is whole
            fx.load(f, fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 1)))
        steps.append(fx.Checkpointer.latest(folder))
    _run(folder, env)
    assert kills >= 2, f"the worker finished before being killed enough ({kills} kills)"
    assert steps[-1] is not None and len(set(steps)) >= 2, steps  # kills hit mid-training
    print(f"kills survived: {kills}, newest checkpoints: {steps}")
    np.testing.assert_array_equal(np.load(folder / "final.npy"), want)


def fx_files(folder) -> list[str]:
    return [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".safetensors")]


def test_early_stopping_and_plateau_state_round_trip(tmp_path):
    """A resumed run's early_stopping/plateau continue their counts and best/last scores:
    the same trigger decisions as one uninterrupted sequence of calls."""
    scores = [5.0, 4.0, 4.5, 4.6, 4.7, 3.0, 3.1, 3.2, 3.3]

    def decisions(make, split):
        it = iter(scores)
        first = make(lambda: next(it))
        out = [first() for _ in range(split)]
        m = fx.Dense(1, 1)
        ck = fx.Checkpointer(tmp_path / f"{make.__name__}{split}", m, track={"t": first})
        ck.save()
        second = make(lambda: next(it))  # a fresh process: a fresh trigger
        ck2 = fx.Checkpointer(tmp_path / f"{make.__name__}{split}", m, track={"t": second})
        assert ck2.resume()["tracked"]["t"] == first.state()
        return out + [second() for _ in range(len(scores) - split)]

    def es(f):
        return fx.early_stopping(f, 3)

    def flat(f):
        return fx.plateau(f, 2, min_dist=0.15)

    for make in (es, flat):
        one = make(iter(scores).__next__)
        want = [one() for _ in scores]
        assert any(want)  # the sequence does trigger
        for split in (2, 4, 6):
            assert decisions(make, split) == want
    with pytest.raises(TypeError, match="has no state"):
        fx.Checkpointer(tmp_path, fx.Dense(1, 1), track={"x": print})
