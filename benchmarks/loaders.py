"""DataLoaders whose batches are gathered on the host, fused, against the same batches one
at a time (how such loaders ran before they were fused), interleaved, equal tries:

* ``memmap``: a shuffled loader over a memory-mapped ``.npy`` file in this process,
  against the same loader iterated by a generator (one batch a call);
* ``processes``: two processes joined on 127.0.0.1 (``fx.distributed.initialize``, Gloo),
  one CPU device each, over a ``DataLoader(shard=...)``, against the same run with a plain
  callback after every step (one step a call).

    python benchmarks/loaders.py              # both sections
    python benchmarks/loaders.py memmap       # one of them
    python benchmarks/loaders.py --quick      # small sizes, to check it runs

In ``processes`` both processes share this machine's cores, so the figure that counts is
the ratio of the two ways at the same size, not the samples per second.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

B, D, C = 128, 784, 10


def worker(pid: int, port: int, width: int, epochs: int, repeats: int) -> dict[str, float]:
    """Samples/s of this run (both processes together): fused, and one step a call."""
    import fluxjax as fx

    fx.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    n = 16 * B  # 16 batches an epoch
    x = rng.standard_normal((n, D), dtype=np.float32)
    y = np.eye(C, dtype=np.float32)[rng.integers(0, C, n)]
    fx.seed(0)
    m = fx.Chain(fx.Dense(D, width, fx.relu), fx.Dense(width, width, fx.relu), fx.Dense(width, C))
    ps, opt = fx.params(m), fx.Adam()
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=0, shard=(pid, 2))
    devs = jax.devices()

    def fused():
        fx.train(loss, ps, loader, opt, epochs=epochs, devices=devs)
        jax.block_until_ready(m[0].weight)

    def one_a_call():
        fx.train(loss, ps, loader, opt, epochs=epochs, cb=lambda: None, devices=devs)
        jax.block_until_ready(m[0].weight)

    fused(), one_a_call()  # compile both
    best = {"fused": float("inf"), "one step a call": float("inf")}
    for _ in range(repeats):
        for name, f in (("fused", fused), ("one step a call", one_a_call)):
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    return {k: epochs * n / v for k, v in best.items()}


def memmap(widths: tuple[int, ...], epochs: int, repeats: int) -> None:
    """Samples/s of a loader over a memory-mapped file: gathered, and batch by batch."""
    import jax
    import numpy as np

    import fluxjax as fx

    print("memmap: a shuffled DataLoader over a .npy memmap, Adam, batch 128, samples/s")
    print(f"  {'model':18s} {'gathered':>10s} {'batch by batch':>15s} {'ratio':>6s}")
    rng = np.random.default_rng(0)
    n = 200 * B
    folder = tempfile.mkdtemp()
    for name, a in (
        ("x", rng.standard_normal((n, D), dtype=np.float32)),
        ("y", np.eye(C, dtype=np.float32)[rng.integers(0, C, n)]),
    ):
        np.save(f"{folder}/{name}.npy", a)
    x, y = (np.load(f"{folder}/{k}.npy", mmap_mode="r") for k in "xy")
    for width in widths:
        runs = {}
        for how in ("gathered", "batch by batch"):
            fx.seed(0)
            m = fx.Chain(
                fx.Dense(D, width, fx.relu), fx.Dense(width, width, fx.relu), fx.Dense(width, C)
            )
            loss = lambda x, y, m=m: fx.logitcrossentropy(m(x), y)  # noqa: E731
            ps, opt = fx.params(m), fx.Adam()
            loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=0)

            def run(loader=loader, how=how, loss=loss, ps=ps, opt=opt, m=m):
                for _ in range(epochs):
                    data = loader if how == "gathered" else (b for b in loader)
                    fx.train(loss, ps, data, opt)
                jax.block_until_ready(m[0].weight)

            run()
            runs[how] = run
        best = {k: float("inf") for k in runs}
        for _ in range(repeats):
            for k, f in runs.items():
                t = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t)
        fig = {k: epochs * n / v for k, v in best.items()}
        model = f"784-{width}-{width}-10"
        g, o = fig["gathered"], fig["batch by batch"]
        print(f"  {model:18s} {g:10,.0f} {o:15,.0f} {g / o:6.2f}")


def processes(widths: tuple[int, ...], epochs: int, repeats: int) -> None:
    """Two processes over a sharded loader: fused, and one step a call."""
    print(
        "processes: two processes, one CPU device each, DataLoader(shard=...), Adam, "
        "batch 128, samples/s"
    )
    print(f"  {'model':18s} {'fused':>10s} {'one step a call':>16s} {'ratio':>6s}")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PJRT_NPROC": "4"}
    env.pop("XLA_FLAGS", None)
    for width in widths:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = [str(v) for v in (port, width, epochs, repeats)]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(pid), *args],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for pid in range(2)
        ]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        r = json.loads(outs[0].strip().splitlines()[-1])
        fused, one = r["fused"], r["one step a call"]
        model = f"784-{width}-{width}-10"
        print(f"  {model:18s} {fused:10,.0f} {one:16,.0f} {fused / one:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sections", nargs="*", default=["memmap", "processes"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs=5, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        pid, port, width, epochs, repeats = a.worker
        out = worker(pid, port, width, epochs, repeats)
        if pid == 0:
            print(json.dumps(out))
        return
    print(f"load average: {os.getloadavg()[0]:.2f} (1 minute)")
    if "memmap" in a.sections:
        memmap((16,) if a.quick else (64, 256, 512), 1, 1 if a.quick else 5)
    if "processes" in a.sections:
        processes((16,) if a.quick else (64, 512), 2 if a.quick else 8, 1 if a.quick else 5)


if __name__ == "__main__":
    main()
