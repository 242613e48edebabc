"""Throughput of a small CNN and an LSTM trained with ``fx.train``, beside the peers of
``../shared/bench/cnn_lstm_throughput.py``, on the equal-tries harness (``harness.py``): ours
and the peer script run interleaved, R times each, best of R.

    python benchmarks/layers.py [cnn|lstm|both] [STEPS] [REPS]

CNN: Conv 3×3 1→16, relu, MaxPool 2, Conv 3×3 16→32, relu, MaxPool 2, flatten, Dense 800→10;
28×28×1 images, batch 128, Adam, logitcrossentropy. LSTM: in 32, hidden 128, sequence
length 50, batch 64, last output → Dense 10. Two ways to run ours: one ``train`` call per
batch (step by step), and one call over the list of batches (the engine's fused run).
Targets: ≥ 1.0× PyTorch eager (CNN), ≥ 1.0× the hand-written JAX step (LSTM).
"""

from __future__ import annotations

import sys

import numpy as np
from harness import contest, peer_run, table, timed

import fluxjax as fx

WHAT = sys.argv[1] if len(sys.argv) > 1 else "both"
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3


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

    def run():
        return {
            f"{tag} fluxjax train, step by step": STEPS * batch / timed(stepwise),
            f"{tag} fluxjax train, fused": STEPS * batch / timed(fused),
        }

    return run


PEERS = {
    "cnn": [("PyTorch eager", 1.0), ("jax+optax jit per step", None)],
    "lstm": [("PyTorch eager", None), ("jax+optax jit per step", 1.0)],
}


def main():
    print(f"equal tries: {REPS} interleaved runs each, best of {REPS}; {STEPS} steps a run")
    for tag in ("cnn", "lstm") if WHAT == "both" else (WHAT,):
        peer = peer_run("cnn_lstm_throughput.py", tag, STEPS)
        best = contest([ours(tag), peer], REPS, lower_is_better=False)
        mine = {k: v for k, v in best.items() if k.startswith(f"{tag} fluxjax")}
        top = max(mine, key=mine.get)
        rows = []
        for key, target in PEERS[tag]:
            found = [k for k in best if key.lower() in k.lower() and "fluxjax" not in k]
            name = found[0] if found else key
            rows.append((top, best[top], name, best.get(name), target))
        for name, v in best.items():
            if "fluxjax" not in name and not any(name == r[2] for r in rows):
                rows.append((top, best[top], name, v, None))
        table(rows, "samples/s", lower_is_better=False)


if __name__ == "__main__":
    main()
