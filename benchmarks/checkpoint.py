"""Checkpoint costs on the issue's workload: a 20M-parameter MLP (784-4096-4096-10, relu,
logitcrossentropy, Adam, batch 32; 229 MB with Adam's state).

1. Saving the same arrays (parameters and Adam's moments): ``fx.save`` against safetensors'
   own ``save_file`` + fsync, and ``torch.save`` + fsync, interleaved, best of ``--reps``.
2. Training ``--steps`` steps with ``fx.Checkpointer(every=50)`` (background writes) against
   the same run with no callback, interleaved, best of ``--reps``; and the same with
   ``background=False`` for reference. The time includes waiting for the last write.

``python benchmarks/checkpoint.py [--steps 200] [--reps 3] [--folder /tmp/ckbench]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import fluxjax as fx
from fluxjax import io


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def workload(steps: int):
    fx.seed(0)
    m = fx.Chain(fx.Dense(784, 4096, fx.relu), fx.Dense(4096, 4096, fx.relu), fx.Dense(4096, 10))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32 * steps, 784)).astype(np.float32)
    y = fx.onehotbatch(rng.integers(0, 10, 32 * steps), range(10)).astype(np.float32)
    loader = fx.DataLoader((x, y), batchsize=32)
    return m, loader


def save_costs(folder: str, reps: int) -> dict[str, float]:
    import torch
    from safetensors.numpy import save_file

    m, _ = workload(1)
    opt = fx.setup(fx.Adam(), m)
    tensors, _ = io.snapshot(m, opt)
    tt = {k: torch.from_numpy(v) for k, v in tensors.items()}
    print(f"  {sum(a.nbytes for a in tensors.values()) / 1e6:.0f} MB in {len(tensors)} arrays")
    jobs = {
        "fx.save": lambda p: fx.save(p, m, opt),
        "safetensors save_file + fsync": lambda p: (save_file(tensors, p), fsync(p)),
        "torch.save + fsync": lambda p: (torch.save(tt, p), fsync(p)),
    }
    best = {k: float("inf") for k in jobs}
    for _ in range(reps):
        for name, job in jobs.items():
            path = os.path.join(folder, "bench.file")
            t = time.perf_counter()
            job(path)
            best[name] = min(best[name], time.perf_counter() - t)
            os.remove(path)
    return best


def train_costs(folder: str, steps: int, reps: int) -> dict[str, float]:
    m, loader = workload(steps)
    ps, opt = fx.params(m), fx.Adam()

    def loss(x, y):
        return fx.logitcrossentropy(m(x), y)

    def run(cb) -> float:
        t = time.perf_counter()
        fx.train(loss, ps, loader, opt, cb=cb)
        if isinstance(cb, fx.Checkpointer):
            cb.wait()  # the last background write counts too
        return 32 * steps / (time.perf_counter() - t)

    run(None)  # compile both paths
    run(fx.every(50, lambda: None))
    kinds = {
        "no callback": lambda: None,
        "Checkpointer(every=50)": lambda: fx.Checkpointer(folder, m, opt, every=50, keep=2),
        "Checkpointer(every=50, background=False)": lambda: fx.Checkpointer(
            folder, m, opt, every=50, keep=2, background=False
        ),
    }
    best = {k: 0.0 for k in kinds}
    for _ in range(reps):
        for name, make in kinds.items():
            best[name] = max(best[name], run(make()))
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--folder", default=None)
    a = ap.parse_args()
    folder = a.folder or tempfile.mkdtemp(prefix="ckbench-")
    os.makedirs(folder, exist_ok=True)
    print("save, seconds (best of", a.reps, ")")
    s = save_costs(folder, a.reps)
    ref = s["safetensors save_file + fsync"]
    for k, v in s.items():
        print(f"  {k:40s} {v:8.3f} s   ratio to save_file {v / ref:.2f}")
    print(f"train, {a.steps} steps, samples/s (best of {a.reps})")
    t = train_costs(folder, a.steps, a.reps)
    for k, v in t.items():
        print(f"  {k:40s} {v:10,.0f} samples/s   ratio {v / t['no callback']:.2f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
