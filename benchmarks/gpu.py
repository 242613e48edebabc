"""fluxjax on one accelerator beside PyTorch eager and ``torch.compile`` on the same card.

    python benchmarks/gpu.py            # on a GPU machine: under 5 minutes
    python benchmarks/gpu.py --quick    # small sizes (runs on a CPU too, to check it works)

Needs ``pip install 'fluxjax[cuda]'`` (JAX's CUDA build) and a CUDA build of PyTorch.
Workloads: the tutorial's seed fit (21 points, full batch, Adam; µs per step, lower is
better) as the per-epoch loop and fused; the MNIST-sized MLP (784-512-512-10, batch 128,
Adam; samples/s, higher is better) step by step and fused over a DataLoader; and, where
``fx.Conv`` exists, the small CNN of ``shared/bench/cnn_lstm_throughput.py``. Every ratio is
fluxjax / peer in the workload's own unit. A peer that cannot run (no CUDA build of
PyTorch, no compiler for ``torch.compile``) is reported as such and left out.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab

ROWS: list[tuple[str, str, float, dict[str, float | str]]] = []


def best(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` timed runs of ``fn`` (seconds)."""
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def torch_device() -> tuple[Any, str]:
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return torch, dev


def torch_time(torch: Any, dev: str, fn: Callable[[], Any], repeats: int) -> float:
    def synced() -> None:
        fn()
        if dev == "cuda":
            torch.cuda.synchronize()

    synced()  # warm-up (and compilation for torch.compile)
    return best(synced, repeats)


def torch_peers(build: Callable[[Any, str, bool], Callable[[], Any]], repeats: int) -> dict:
    """Time ``build(torch, device, compiled)()`` eager and under ``torch.compile``."""
    out: dict[str, float | str] = {}
    try:
        torch, dev = torch_device()
    except ImportError as e:
        return {"pytorch eager": f"not run ({e})", "torch.compile": "not run"}
    for name, compiled in (("pytorch eager", False), ("torch.compile", True)):
        try:
            out[name] = torch_time(torch, dev, build(torch, dev, compiled), repeats)
        except Exception as e:  # noqa: BLE001  (a peer that cannot run is reported, not fatal)
            out[name] = f"not run ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    return out


# -- seed fit ----------------------------------------------------------------------------------
def seed(n: int, repeats: int) -> None:
    x, y = (jax.device_put(a) for a in datasets.seed_data())
    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()

    def loop() -> None:
        for _ in range(n):
            fx.train(loss, ps, [(x, y)], opt, cb=lambda: None)
        m[0].weight.block_until_ready()

    def fused() -> None:
        fx.train(loss, ps, [(x, y)], opt, epochs=n)
        m[0].weight.block_until_ready()

    loop(), fused()
    t_loop, t_fused = best(loop, repeats), best(fused, repeats)
    X, Y = datasets.seed_data()

    def build(torch: Any, dev: str, compiled: bool) -> Callable[[], Any]:
        tm = torch.nn.Sequential(
            torch.nn.Linear(1, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 1)
        ).to(dev)
        ref = lab.seed_model()
        with torch.no_grad():
            for t, a in zip(tm.parameters(), fx.params(ref)):
                t.copy_(torch.from_numpy(np.array(a)))
        xs, ys = torch.from_numpy(X).to(dev), torch.from_numpy(Y).to(dev)
        topt = torch.optim.Adam(tm.parameters(), 1e-3)
        f = torch.compile(tm) if compiled else tm

        def run() -> None:
            for _ in range(n):
                topt.zero_grad()
                torch.nn.functional.mse_loss(f(xs), ys).backward()
                topt.step()

        return run

    peers = {
        k: v * 1e6 / n if isinstance(v, float) else v
        for k, v in torch_peers(build, repeats).items()
    }
    ROWS.append(("seed fit, loop (train per epoch, callback)", "µs/step", t_loop * 1e6 / n, peers))
    ROWS.append(("seed fit, fused (epochs=N)", "µs/step", t_fused * 1e6 / n, peers))


# -- MLP and CNN ---------------------------------------------------------------------------------
def throughput(
    name: str, model: Any, tmodel: Callable[[Any], Any], X: np.ndarray, steps: int, repeats: int
) -> None:
    """Samples/s of ``model`` (fluxjax, step by step and fused over a DataLoader) and of
    ``tmodel(torch)`` (eager and compiled), logitcrossentropy and Adam, batch 128."""
    B = 128
    labels = np.random.default_rng(0).integers(0, 10, len(X))
    Y = np.eye(10, dtype=np.float32)[labels]
    loss = lambda x, y: fx.logitcrossentropy(model(x), y)  # noqa: E731
    ps, opt = fx.params(model), fx.Adam()
    xd, yd = jax.device_put(X), jax.device_put(Y)
    batches = [(xd[i : i + B], yd[i : i + B]) for i in range(0, steps * B, B)]
    loader = fx.DataLoader((X, Y), batchsize=B)
    w = ps.entries[0]

    def stepwise() -> None:
        fx.train(loss, ps, batches, opt, steps_per_call=1)
        w.get().block_until_ready()

    def fused() -> None:
        fx.train(loss, ps, loader, opt)
        w.get().block_until_ready()

    stepwise(), fused()
    n = steps * B
    t_step, t_fused = best(stepwise, repeats), best(fused, repeats)

    def build(torch: Any, dev: str, compiled: bool) -> Callable[[], Any]:
        tm = tmodel(torch).to(dev)
        xs = torch.from_numpy(X).to(dev)
        if xs.ndim == 4:
            xs = xs.permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW, PyTorch's layout
        ys = torch.from_numpy(labels).to(dev)
        topt = torch.optim.Adam(tm.parameters(), 1e-3)
        f = torch.compile(tm) if compiled else tm

        def run() -> None:
            for i in range(0, n, B):
                topt.zero_grad()
                torch.nn.functional.cross_entropy(f(xs[i : i + B]), ys[i : i + B]).backward()
                topt.step()

        return run

    peers = {
        k: n / v if isinstance(v, float) else v for k, v in torch_peers(build, repeats).items()
    }
    ROWS.append((f"{name}, step by step", "samples/s", n / t_step, peers))
    ROWS.append((f"{name}, fused (DataLoader)", "samples/s", n / t_fused, peers))


def mlp(steps: int, repeats: int) -> None:
    fx.seed(0)
    m = fx.Chain(fx.Dense(784, 512, fx.relu), fx.Dense(512, 512, fx.relu), fx.Dense(512, 10))
    X = np.random.default_rng(0).standard_normal((steps * 128, 784), dtype=np.float32)

    def tmodel(torch: Any) -> Any:
        nn = torch.nn
        return nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    throughput("MLP 784-512-512-10", m, tmodel, X, steps, repeats)


def cnn(steps: int, repeats: int) -> None:
    if not hasattr(fx, "Conv"):
        print("  (CNN skipped: fx.Conv does not exist in this version)")
        return
    try:
        fx.seed(0)
        m = fx.Chain(
            fx.Conv((3, 3), 1, 16, fx.relu),
            fx.MaxPool((2, 2)),
            fx.Conv((3, 3), 16, 32, fx.relu),
            fx.MaxPool((2, 2)),
            lambda h: h.reshape(h.shape[0], -1),
            fx.Dense(800, 10),
        )
    except Exception as e:  # noqa: BLE001
        print(f"  (CNN skipped: could not build it with this fx.Conv: {e})")
        return
    X = np.random.default_rng(1).standard_normal((steps * 128, 28, 28, 1), dtype=np.float32)

    def tmodel(torch: Any) -> Any:
        nn = torch.nn
        return nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 10),
        )  # fmt: skip

    throughput("CNN (28x28x1, 2 conv)", m, tmodel, X, steps, repeats)


def report() -> None:
    """The table: fluxjax, each peer, and fluxjax/peer (µs: lower is better)."""
    print(f"\n  {'workload':44s} {'unit':>9s} {'fluxjax':>10s} {'pytorch eager':>14s} "
          f"{'ratio':>6s} {'torch.compile':>14s} {'ratio':>6s}")  # fmt: skip
    notes = set()
    for name, unit, ours, peers in ROWS:
        cells = []
        for peer in ("pytorch eager", "torch.compile"):
            v = peers.get(peer)
            if isinstance(v, float):
                cells.append(f"{v:14,.2f} {ours / v:6.2f}")
            else:
                cells.append(f"{'-':>14s} {'-':>6s}")
                notes.add(f"{peer}: {v}")
        print(f"  {name:44s} {unit:>9s} {ours:10,.2f} {cells[0]} {cells[1]}")
    for note in sorted(notes):
        print(f"  ({note})")


def main(quick: bool = False) -> None:
    """Run the three workloads and print the table."""
    try:
        import torch

        tinfo = f"torch {torch.__version__} (cuda: {torch.cuda.is_available()})"
    except ImportError:
        tinfo = "torch not installed"
    dev = jax.devices()[0]
    print(f"fluxjax {fx.__version__}, jax {jax.__version__} on {dev.platform}: {dev}; {tinfo}")
    n, steps, repeats = (200, 4, 1) if quick else (2000, 100, 3)
    seed(n, repeats)
    mlp(steps, repeats)
    cnn(steps, repeats)
    report()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
    main(ap.parse_args().quick)
