"""The process the kill test starts (and kills): train with a Checkpointer, resuming first.

``python kill_worker.py FOLDER`` prints "training" once resumed and writes FOLDER/final.npy
(every parameter, concatenated) when training is done. ``main`` is the same run in-process.
"""

import os
import sys
import time

import numpy as np

import fluxjax as fx

EPOCHS = 15


def slow() -> None:
    """A slower step, so that kills land while training (and while saving)."""
    time.sleep(0.002)


def main(folder: str, announce: bool = False) -> np.ndarray:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 3)).astype(np.float32)
    y = np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]
    m = fx.Chain(fx.Dense(3, 5, fx.tanh), fx.Dense(5, 1))
    for layer, k in zip(m, (1, 2)):
        layer.weight = np.random.default_rng(k).normal(size=layer.weight.shape).astype(np.float32)
    loader = fx.DataLoader((x, y), batchsize=4, shuffle=True, rng=np.random.default_rng(7))
    ps, opt = fx.params(m), fx.Adam(0.01)
    ck = fx.Checkpointer(folder, m, opt, loader=loader, every=7, keep=2)
    ck.resume()
    if announce:
        print("training", flush=True)
    fx.train(
        lambda x, y: fx.mse(m(x), y),
        ps,
        loader,
        opt,
        epochs=EPOCHS - loader.epoch,
        cb=[ck, slow],
        steps_per_call=1,
    )
    final = np.concatenate([np.asarray(a).ravel() for a in ps])
    np.save(os.path.join(folder, "final.npy"), final)
    return final


if __name__ == "__main__":
    main(sys.argv[1], announce=True)
