"""The cost of issue #17's step features on the MLP's fused step: global-norm clipping, an
EMA of the weights and the gradient norm (computed in every step since #17), against plain
Adam; and the MLP in bfloat16 and in float16 (with loss scaling) against float32. Each
variant gets the same R timed runs, interleaved, best kept; samples/s.

    PYTHONPATH=src python benchmarks/features.py            # this tree
    PYTHONPATH=../main/src python benchmarks/features.py    # a tree without grad_norm

(the second needs the features to exist there: it times plain Adam only when they do not).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import fluxjax as fx

B, BATCHES, EPOCHS, R = 128, 20, 2, 9


def variant(rule_of, precision=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B * BATCHES, 784)).astype(np.float32)
    y = fx.onehotbatch(rng.integers(0, 10, B * BATCHES), range(10))
    fx.seed(0)
    m = fx.Chain(fx.Dense(784, 512, fx.relu), fx.Dense(512, 512, fx.relu), fx.Dense(512, 10))
    state = fx.setup(rule_of(), m)
    loader = fx.DataLoader((x, np.asarray(y, np.float32)), batchsize=B, shuffle=True, rng=1)
    loss = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    fx.train(loss, m, loader, state, precision=precision)  # compile

    def run() -> float:
        t = time.perf_counter()
        h = fx.train(loss, m, loader, state, epochs=EPOCHS, precision=precision)
        float(h.losses[-1])  # wait for the device
        return B * BATCHES * EPOCHS / (time.perf_counter() - t)

    return run


def main() -> None:
    variants = {"Adam": lambda: fx.Adam(1e-3)}
    if hasattr(fx, "ClipGlobalNorm"):
        variants["ClipGlobalNorm + Adam + EMA"] = lambda: fx.OptimiserChain(
            fx.ClipGlobalNorm(1.0), fx.Adam(1e-3), fx.EMA(0.999)
        )
    runs = {k: variant(v) for k, v in variants.items()}
    runs["Adam, precision='bfloat16'"] = variant(variants["Adam"], "bfloat16")
    if hasattr(fx, "LossScale"):
        runs["LossScale + Adam, precision='float16'"] = variant(
            lambda: fx.OptimiserChain(fx.LossScale(), fx.Adam(1e-3)), "float16"
        )
    best = {k: 0.0 for k in runs}
    for _ in range(R):
        for k, run in runs.items():
            best[k] = max(best[k], run())
    base = best["Adam"]
    print(f"MLP 784-512-512-10, batch {B}, fused over a DataLoader, best of {R}, samples/s")
    for k, v in best.items():
        print(f"  {k:32s} {v:10,.0f}   {v / base:.3f} of plain Adam")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
