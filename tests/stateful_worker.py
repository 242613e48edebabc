"""A run of a model with every kind of layer state (BatchNorm statistics, Dropout's key, a
stateful LSTM's carried state) with a Checkpointer, resuming first.

``python stateful_worker.py FOLDER EPOCHS`` trains up to EPOCHS epochs in all (resuming from
FOLDER's newest checkpoint) and writes FOLDER/final.npy, every array of the model. ``main``
is the same run in-process.
"""

import os
import sys

import numpy as np

import fluxjax as fx


def model() -> fx.Chain:
    fx.seed(3)  # the initial weights and Dropout's key
    return fx.Chain(
        fx.Dense(6, 8), fx.BatchNorm(8, fx.relu), fx.Dropout(0.25), fx.LSTM(8, 8), fx.Dense(8, 1)
    )


def main(folder: str, epochs: int) -> np.ndarray:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6)).astype(np.float32)
    y = np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]
    m = model()
    loader = fx.DataLoader((x, y), batchsize=4, shuffle=True, rng=np.random.default_rng(7))
    ps, opt = fx.params(m), fx.Adam(0.01)
    ck = fx.Checkpointer(folder, m, opt, loader=loader, every=5, keep=2)
    ck.resume()
    fx.train(
        lambda x, y: fx.mse(m(x), y),
        ps,
        loader,
        opt,
        epochs=epochs - loader.epoch,
        cb=[ck, lambda: None],
        steps_per_call=1,
    )
    final = np.concatenate([np.asarray(v, np.float64).ravel() for v in _leaves(fx.state(m))])
    np.save(os.path.join(folder, "final.npy"), final)
    return final


def _leaves(s):
    if isinstance(s, dict):
        for v in s.values():
            yield from _leaves(v)
    elif isinstance(s, list | tuple):
        for v in s:
            yield from _leaves(v)
    elif s is not None:
        yield s


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
