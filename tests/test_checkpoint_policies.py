"""Checkpointer policies: the best and the newest kept together, saves by time, preemption by
SIGTERM (in a subprocess, resumed bit for bit) and background writes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import kill_worker
import numpy as np
import pytest

import fluxjax as fx

HERE = os.path.dirname(os.path.abspath(__file__))


def setup_run(tmp_path, **kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype(np.float32)
    m = fx.Dense(2, 1)
    ps, opt = fx.params(m), fx.Adam(0.01)
    ck = fx.Checkpointer(tmp_path, m, opt, **kw)
    return m, ps, opt, ck, [(x, x[:, :1])]


def steps_of(paths) -> list[int]:
    return [int(os.path.basename(p)[-20:-12]) for p in paths]


def test_best_and_newest_are_kept_together(tmp_path):
    """Orbax #526: a metric that rises after its best must not cost the newest files (resume)
    nor the best ones."""
    scores = {2: 0.9, 4: 0.5, 6: 0.2, 8: 0.3, 10: 0.6, 12: 0.7, 14: 0.8, 16: 0.9}
    m, ps, opt, ck, data = setup_run(tmp_path, every=2, keep=2, best=2, monitor="val_loss")
    record = fx.every(2, lambda ctx: ctx.metrics.update(val_loss=scores[ctx.step]))
    fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 16, opt, cb=[record, ck])
    assert steps_of(ck.files()) == [6, 8, 14, 16]  # best two (0.2, 0.3) + newest two
    assert steps_of([fx.Checkpointer.best(tmp_path)]) == [6]
    m2, _, opt2, ck2, _ = setup_run(tmp_path, every=2, keep=2, best=2, monitor="val_loss")
    assert ck2.resume()["step"] == 16  # resume takes the newest, not the best
    # a new process continues the ranking from the scores saved in the files
    ck2.step = 18
    ck2.save(val_loss=0.25)
    assert steps_of(ck2.files()) == [6, 16, 18]


def test_best_needs_the_metric(tmp_path):
    m, ps, opt, ck, data = setup_run(tmp_path, every=2, best=1, monitor="val_loss")
    with pytest.raises(ValueError, match=r"monitor='val_loss' is not in ctx.metrics.*fx.metrics"):
        fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 4, opt, cb=ck)
    with pytest.raises(ValueError, match="mode must be 'min'.*got 'minimum'"):
        fx.Checkpointer(tmp_path, m, monitor="val_loss", mode="minimum")
    with pytest.raises(TypeError, match="best=2 needs monitor="):
        fx.Checkpointer(tmp_path, m, best=2)
    with pytest.raises(ValueError, match="every_seconds must be a positive number"):
        fx.Checkpointer(tmp_path, m, every_seconds=0)


def test_every_seconds_saves_at_the_first_boundary_after_the_interval(tmp_path):
    now = [0.0]
    m, ps, opt, ck, data = setup_run(tmp_path, every_seconds=1.0, keep=None, clock=lambda: now[0])

    def tick() -> None:  # every step takes 0.3 s of this clock
        now[0] += 0.3

    fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 12, opt, cb=[tick, ck])
    # after steps 4 (1.2 s), 8 (2.4 s: 1.2 s after the last save), 12
    assert steps_of(ck.files()) == [4, 8, 12]
    # fused between: with a measured step time the span runs up to the deadline
    assert ck.steps_until(0, None) == 1
    now[0] += 0.1
    # 0.9 s left at 0.1 s a step (its own clock's measure, larger than the engine's 0.01)
    assert ck.steps_until(1, 0.01) in (8, 9)
    both = fx.Checkpointer(tmp_path / "b", m, every=5, every_seconds=3600.0)
    assert both.steps_until(0, None) == 5


def test_a_failed_background_write_is_raised(tmp_path, monkeypatch):
    m, ps, opt, ck, data = setup_run(tmp_path, every=2)

    def broken(path, tensors, meta):
        raise OSError("disk full")

    monkeypatch.setattr(fx.checkpoint._files, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 4, opt, cb=ck)


def test_background_save_is_the_state_at_its_step(tmp_path):
    """The host copy is taken at the step boundary: later steps do not leak into the file."""
    m, ps, opt, ck, data = setup_run(tmp_path, every=3, keep=None)
    seen = {}
    record = fx.every(3, lambda: seen.setdefault(len(seen), np.asarray(m.weight).copy()))
    fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 9, opt, cb=[ck, record])
    for i, path in enumerate(ck.files()):
        m2 = fx.Dense(2, 1)
        fx.load(path, m2)
        np.testing.assert_array_equal(np.asarray(m2.weight), seen[i])


def test_sigterm_mid_run_then_resume_is_bit_exact(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    want = kill_worker.main(str(tmp_path / "ref"))  # the same program, uninterrupted
    folder, worker = tmp_path / "run", os.path.join(HERE, "preempt_worker.py")
    cmd = [sys.executable, worker, str(folder)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        t0 = time.monotonic()
        for line in p.stdout:
            if line.strip() == b"step 20":
                p.send_signal(signal.SIGTERM)
                break
            assert time.monotonic() - t0 < 60, "the worker is too slow"
        out, err = p.communicate(timeout=60)
    assert p.returncode == 3, err.decode()[-2000:]
    last = out.decode().strip().splitlines()[-1].split()
    assert last[0] == "preempted" and int(last[1]) >= 20 and os.path.exists(last[2])
    assert fx.Checkpointer.latest(folder) == last[2]
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    np.testing.assert_array_equal(np.load(folder / "final.npy"), want)


def test_on_signal_handlers_are_restored_after_train(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    m, ps, opt, ck, data = setup_run(tmp_path, every=100, on_signal=True)
    fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 3, opt, cb=ck)
    assert signal.getsignal(signal.SIGTERM) is before
    # a signal during the run (here raised from a callback) is answered at the
    # Checkpointer's next call: within about a second of steps, or at the end of the call
    m, ps, opt, ck, data = setup_run(tmp_path / "b", every=100, on_signal=True)

    def term(ctx) -> None:
        if ctx.step == 2:
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(fx.Preempted, match="SIGTERM after global step 5") as e:
        fx.train(lambda x, y: fx.mse(m(x), y), ps, data * 5, opt, cb=[term, ck])
    assert e.value.step == 5 and os.path.exists(e.value.path)
    assert signal.getsignal(signal.SIGTERM) is before
    assert ck.steps_until(0, None) == 95 and ck.steps_until(1, 0.01) == 94  # global step 5
    assert ck.steps_until(2, 0.05) == 20  # spans of about a second at most
    ck.finish(2)


def test_every_layer_state_resumes_in_a_new_process(tmp_path):
    """BatchNorm, Dropout and a stateful LSTM, checkpointed mid-epoch (step 10 of 6-batch
    epochs), resumed in a fresh process: every array ends bit-identical."""
    import stateful_worker

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    want = stateful_worker.main(str(tmp_path / "ref"), 4)
    worker = os.path.join(HERE, "stateful_worker.py")
    folder = tmp_path / "run"
    for epochs in (2, 4):  # the first process stops at step 12; the second resumes at 10
        p = subprocess.run(
            [sys.executable, worker, str(folder), str(epochs)],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert fx.load(fx.Checkpointer.latest(folder), stateful_worker.model())["step"] == 20
    np.testing.assert_array_equal(np.load(folder / "final.npy"), want)


def test_carried_state_loads_into_a_fresh_model(tmp_path):
    """The issue's report: a trained LSTM's state has a batch axis the fresh layer lacks."""

    def make():
        return fx.Chain(
            fx.Dense(6, 8),
            fx.BatchNorm(8, fx.relu),
            fx.Dropout(0.25),
            fx.LSTM(8, 8),
            fx.Dense(8, 1),
        )

    m = make()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x[:, :1])] * 2, fx.Adam())
    fx.save(tmp_path / "m.safetensors", m)
    for fresh in (make(), fx.reset(make(), 3)):
        fx.load(tmp_path / "m.safetensors", fresh)
        np.testing.assert_array_equal(np.asarray(fresh[3].state[1]), np.asarray(m[3].state[1]))
        fx.loadmodel(make(), fx.state(fresh))
    with pytest.raises(ValueError, match=r"layers.3.state.0: shape \(9,\) in the model vs"):
        fx.loadmodel(fx.Chain(*make()[:3], fx.LSTM(8, 9), fx.Dense(9, 1)), fx.state(m))


def test_a_kill_during_a_background_write_keeps_the_previous_file(tmp_path):
    """Training goes on while a checkpoint is written; SIGKILL during the write leaves every
    earlier file whole and only a temporary file, which resume removes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    folder = tmp_path / "run"
    kill_worker.main(str(folder), epochs=2)  # earlier checkpoints: steps 7
    for t in threading.enumerate():  # its last write may still run in the background
        if t.name == "fluxjax-checkpoint":
            t.join()
    before = fx.Checkpointer.latest(folder)
    assert before.endswith("checkpoint-00000007.safetensors")
    worker = os.path.join(HERE, "slow_write_worker.py")
    cmd = [sys.executable, worker, str(folder)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        t0, writing, steps_after = time.monotonic(), None, 0
        for line in p.stdout:
            assert time.monotonic() - t0 < 60, "the worker is too slow"
            # the writer thread's line and the training thread's may share a line
            found = re.search(rb"writing (\d{8})", line)
            if found:
                writing = int(found[1])
            elif re.search(rb"step \d+", line) and writing is not None:
                steps_after += 1
                if steps_after == 3:  # three steps trained while the file is being written
                    p.send_signal(signal.SIGKILL)
                    break
        p.wait(timeout=30)
    assert writing == 14 and steps_after == 3
    temporaries = [n for n in os.listdir(folder) if n.endswith(".tmp")]
    assert len(temporaries) == 1  # the write that was killed
    assert fx.Checkpointer.latest(folder) == before  # the previous file is the newest, whole
    m = fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 1))
    ck = fx.Checkpointer(folder, m, fx.Adam(0.01))
    assert ck.resume()["step"] == 7
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_a_new_checkpointer_waits_for_another_ones_background_write(tmp_path):
    """A resume (or ``latest``) in the same process sees the file another Checkpointer is
    still writing in the background, complete (found by a race in the suite)."""
    import time

    from fluxjax import _ckpt

    m = fx.Dense(1, 1)
    fx.save(tmp_path / "seed.safetensors", m)
    w = _ckpt.Writer(str(tmp_path))

    def slow():
        time.sleep(0.5)
        os.replace(tmp_path / "seed.safetensors", tmp_path / "checkpoint-00000005.safetensors")

    w.submit(slow)
    assert fx.Checkpointer.latest(tmp_path).endswith("checkpoint-00000005.safetensors")
    w.wait()
