"""The process the kill test starts (and kills): train with a Checkpointer, resuming first.

``python kill_worker.py FOLDER`` prints "training" once the first step after resuming is done
(compiled: from then on a kill lands in training or in a save) and "saved" after each
checkpoint (so the test can kill at random moments between checkpoints whatever the
machine's speed), and writes FOLDER/final.npy
(every parameter, concatenated) when training is done. ``main`` is the same run in-process.
"""

import os
import sys
import time

import numpy as np

import fluxjax as fx

EPOCHS = 12


def slow(announce: bool, ck: fx.Checkpointer, steps: bool = False):
    """A slower step, so that kills land while training (and while saving)."""

    last = [ck.saved]

    def cb(ctx) -> None:
        if announce and ctx.step == 1:
            print("training", flush=True)
        if steps:
            print(f"step {ctx.step}", flush=True)
        if announce and ck.saved != last[0]:  # a checkpoint was written after this step
            last[0] = ck.saved
            print("saved", flush=True)
        if announce:
            time.sleep(0.001)

    return cb


def main(
    folder: str, announce: bool = False, on_signal: bool = False, epochs: int = EPOCHS
) -> np.ndarray:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 3)).astype(np.float32)
    y = np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]
    m = fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 1))
    for layer, k in zip(m, (1, 2)):
        layer.weight = np.random.default_rng(k).normal(size=layer.weight.shape).astype(np.float32)
    loader = fx.DataLoader((x, y), batchsize=4, shuffle=True, rng=np.random.default_rng(7))
    ps, opt = fx.params(m), fx.Adam(0.01)
    ck = fx.Checkpointer(folder, m, opt, loader=loader, every=7, keep=2, on_signal=on_signal)
    ck.resume()
    fx.train(
        lambda x, y: fx.mse(m(x), y),
        ps,
        loader,
        opt,
        epochs=epochs - loader.epoch,
        cb=[ck, slow(announce, ck, steps=on_signal)],
        steps_per_call=1,
    )
    final = np.concatenate([np.asarray(a).ravel() for a in ps])
    np.save(os.path.join(folder, "final.npy"), final)
    return final


if __name__ == "__main__":
    main(sys.argv[1], announce=True)
