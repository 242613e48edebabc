"""Scaling: the MLP trained data-parallel on 1, 2 and 4 simulated CPU devices, beside a
hand-written ``jax.jit`` + ``NamedSharding`` data-parallel step.

    python benchmarks/scale.py            # 1, 2, 4 devices (about a minute on 2 cores)
    python benchmarks/scale.py --quick    # small sizes, to check it runs

The MLP is 784-512-512-10 (relu, logitcrossentropy, Adam, batch 128, batches already split
over the devices). Each device count runs in its own subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``. Simulated devices share the
machine's cores, so more devices do not mean more samples per second here: the figure that
counts is the ratio of fluxjax to the hand-written step at the same device count (the cost
of fluxjax's machinery around XLA's partitioned program). Real scaling needs real devices:
see docs/distributed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

B, D, H, C = 128, 784, 512, 10


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def worker(steps: int, repeats: int) -> dict[str, float]:
    """Samples/s on all of this process's devices: fluxjax step by step, fluxjax fused over a
    DataLoader, and the hand-written jit + NamedSharding step (run between ours)."""
    import jax
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import fluxjax as fx

    devs = jax.devices()
    mesh = Mesh(np.array(devs), ("batch",))
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps * B, D), dtype=np.float32)
    Y = np.eye(C, dtype=np.float32)[rng.integers(0, C, steps * B)]
    batches = [
        (jax.device_put(X[i : i + B], split), jax.device_put(Y[i : i + B], split))
        for i in range(0, steps * B, B)
    ]

    fx.seed(0)
    m = fx.Chain(fx.Dense(D, H, fx.relu), fx.Dense(H, H, fx.relu), fx.Dense(H, C))
    start = [np.asarray(a) for a in fx.params(m)]
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    loader = fx.DataLoader((X, Y), batchsize=B)

    def ours_step():
        fx.train(loss, ps, batches, opt, steps_per_call=1, devices=devs)
        m[0].weight.block_until_ready()

    def ours_fused():
        fx.train(loss, ps, loader, opt, devices=devs)
        m[0].weight.block_until_ready()

    # the hand-written data-parallel step: the same arrays, optax.adam, shardings by hand
    params = jax.device_put(start, rep)
    tx = optax.adam(1e-3)
    box = [params, jax.device_put(tx.init(params), rep)]

    def forward(p, x):
        h = jax.nn.relu(x @ p[0].T + p[1])
        h = jax.nn.relu(h @ p[2].T + p[3])
        return h @ p[4].T + p[5]

    def lossfn(p, x, y):
        return optax.softmax_cross_entropy(forward(p, x), y).mean()

    @jax.jit
    def step(p, s, x, y):
        x, y = jax.lax.with_sharding_constraint((x, y), split)
        l, g = jax.value_and_grad(lossfn)(p, x, y)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    def hand():
        p, s = box
        for x, y in batches:
            p, s, _ = step(p, s, x, y)
        box[:] = [p, s]
        jax.block_until_ready(p)

    for f in (ours_step, ours_fused, hand):  # compile and warm up
        f()
    t = {"step": [], "fused": [], "hand": []}
    for _ in range(2):  # interleaved, so drift hits every variant
        t["hand"].append(_best(hand, repeats))
        t["step"].append(_best(ours_step, repeats))
        t["fused"].append(_best(ours_fused, repeats))
    n = steps * B
    out = {k: n / min(v) for k, v in t.items()}
    out["devices"] = len(devs)
    out["sharded"] = len(m[0].weight.sharding.device_set)
    return out


def run_counts(counts: list[int], steps: int, repeats: int) -> list[dict[str, float]]:
    rows = []
    for n in counts:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        env["JAX_PLATFORMS"] = "cpu"
        # XLA's CPU pool has one thread per core: with fewer cores than simulated devices
        # need, devices waiting in an all-reduce starve the others (a deadlock). More threads.
        env["PJRT_NPROC"] = str(max(os.cpu_count() or 1, 2 * n))
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
        cmd = [sys.executable, __file__, "--worker", str(steps), str(repeats)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            print(f"  {n} devices: the worker failed:\n{p.stderr[-2000:]}")
            continue
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return rows


def main(quick: bool = False) -> list[dict[str, float]]:
    """Print samples/s on 1, 2 and 4 simulated CPU devices and the ratios to the hand-written
    data-parallel step; returns the rows."""
    steps, repeats = (8, 1) if quick else (60, 3)
    print(
        f"\nscale: MLP 784-512-512-10, Adam, batch {B} split over N simulated CPU devices, "
        f"samples/s ({steps} steps; {os.cpu_count()} CPUs shared by all devices)"
    )
    rows = run_counts([1, 2, 4], steps, repeats)
    print(
        f"  {'devices':>7s} {'fluxjax step':>13s} {'fluxjax fused':>14s} {'hand jit':>10s} "
        f"{'step/hand':>10s} {'fused/hand':>11s}"
    )
    for r in rows:
        print(
            f"  {int(r['devices']):7d} {r['step']:13,.0f} {r['fused']:14,.0f} {r['hand']:10,.0f} "
            f"{r['step'] / r['hand']:10.2f} {r['fused'] / r['hand']:11.2f}"
        )
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        ap = argparse.ArgumentParser(description=__doc__)
        ap.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
        main(ap.parse_args().quick)
