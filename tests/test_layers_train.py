"""End to end: an LSTM with BatchNorm and Dropout, trained by the compiled fx.train, learns
whether a sequence's running sum ends positive (the digits CNN is in test_cli.py)."""

from __future__ import annotations

import numpy as np

import fluxjax as fx


def last(h):
    """The last time step of ``(n, time, features)``."""
    return h[:, -1]


def test_lstm_learns_the_sign_of_a_running_sum():
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.normal(size=(n, 12, 1)).astype(np.float32)
        return x, (x.sum(axis=(1, 2)) > 0).astype(np.int64)

    (xtr, ytr), (xte, yte) = data(1000), data(500)
    fx.seed(0)
    m = fx.Chain(fx.LSTM(1, 16), last, fx.BatchNorm(16), fx.Dropout(0.1), fx.Dense(16, 2))
    onehot = np.asarray(fx.onehotbatch(ytr, range(2)))
    loader = fx.DataLoader((xtr, onehot), batchsize=50, shuffle=True, rng=0)
    state = fx.setup(fx.Adam(0.01), m)
    h = fx.train(lambda m, x, y: fx.logitcrossentropy(m(x), y), m, loader, state, epochs=15)
    accuracy = float(np.mean(np.asarray(fx.onecold(m(xte))) == yte))
    assert accuracy >= 0.9  # chance is 0.5
    assert np.mean(h.losses[-20:]) < 0.5 * np.mean(h.losses[:20])
    assert not (np.asarray(m[2].mu) == 0).all()  # BatchNorm's statistics were written back
