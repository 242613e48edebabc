"""Throughput of a small CNN and an LSTM trained with ``fx.train``, beside the peers of
``../shared/bench/cnn_lstm_throughput.py`` run in the same process tree, with ratios.

    python benchmarks/layers.py [cnn|lstm|both] [STEPS]

CNN: Conv 3×3 1→16, relu, MaxPool 2, Conv 3×3 16→32, relu, MaxPool 2, flatten, Dense 800→10;
28×28×1 images, batch 128, Adam, logitcrossentropy. LSTM: in 32, hidden 128, sequence
length 50, batch 64, last output → Dense 10. Two ways to run ours: one ``train`` call per
batch (step by step), and one call over the list of batches (the engine's fused run).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import fluxjax as fx

WHAT = sys.argv[1] if len(sys.argv) > 1 else "both"
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
PEER = Path(__file__).resolve().parents[2] / "shared" / "bench" / "cnn_lstm_throughput.py"
if not PEER.exists():
    PEER = Path("/work/shared/bench/cnn_lstm_throughput.py")


def last(h):
    return h[:, -1]


def models():
    fx.seed(0)
    cnn = fx.Chain(
        fx.Conv((3, 3), 1, 16, fx.relu), fx.MaxPool((2, 2)),
        fx.Conv((3, 3), 16, 32, fx.relu), fx.MaxPool((2, 2)),
        fx.flatten, fx.Dense(800, 10),
    )  # fmt: skip
    lstm = fx.Chain(fx.LSTM(32, 128), last, fx.Dense(128, 10))
    return {"cnn": (cnn, (28, 28, 1), 128), "lstm": (lstm, (50, 32), 64)}


def best(fn, reps=2):
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def ours(tag):
    model, shape, batch = models()[tag]
    r = np.random.default_rng(1)
    data = [
        (r.standard_normal((batch, *shape), dtype=np.float32),
         np.eye(10, dtype=np.float32)[r.integers(0, 10, batch)])
        for _ in range(STEPS)
    ]  # fmt: skip
    state = fx.setup(fx.Adam(), model)

    def loss(m, x, y):
        return fx.logitcrossentropy(m(x), y)

    def stepwise():
        for b in data:
            fx.train(loss, model, [b], state)
        fx.nparams(model)  # (parameters are read back by the next call anyway)
        np.asarray(model[-1].bias)

    def fused():
        fx.train(loss, model, data, state)
        np.asarray(model[-1].bias)

    stepwise(), fused()  # compile both
    out = {"step by step": STEPS * batch / best(stepwise), "fused": STEPS * batch / best(fused)}
    for k, v in out.items():
        print(f"{tag:4s} fluxjax train, {k:18s} {v:10.0f} samples/s", flush=True)
    return out


def peers(tag):
    if not PEER.exists():
        print(f"(peer script {PEER} not found)")
        return {}
    run = subprocess.run(
        [sys.executable, str(PEER), tag, str(STEPS)], capture_output=True, text=True
    )
    print(run.stdout, end="", flush=True)
    found = {}
    for line in run.stdout.splitlines():
        m = re.match(r"(\w+)\s+(.+?)\s+(\d+) samples/s", line)
        if m:
            found[m.group(2).strip()] = float(m.group(3))
    return found


def main():
    for tag in ("cnn", "lstm") if WHAT == "both" else (WHAT,):
        mine, theirs = ours(tag), peers(tag)
        top = max(mine.values())
        for name, v in theirs.items():
            print(f"{tag:4s} ratio fluxjax (best {top:.0f}) / {name}: {top / v:.2f}")


if __name__ == "__main__":
    main()
