"""Flux v0.12's test/data.jl, translated: the "DataLoader" testset.

Flux's ``X = reshape([1:10;], (2, 5))`` holds 5 observations as columns; here they are the
5 rows of ``X`` (observation ``j`` is ``[2j-1, 2j]`` in both). ``X[:, 1:2]`` becomes
``X[0:2]``. ``eltype(batches) == typeof(X)`` becomes "every batch has X's type and dtype".

Left out: the data-set testsets (CMUDict, MNIST, FashionMNIST, Sentiment, Iris, Housing):
they download files, and ``Flux.Data`` was deprecated in v0.12 (fluxjax.datasets reads local
MNIST files and tests them in tests/test_datasets.py).
"""

from __future__ import annotations

from collections import namedtuple

import jax.numpy as jnp
import numpy as np

import fluxjax as fx

X = np.arange(1, 11).reshape(5, 2)
Y = np.arange(1, 6)


def _same(a, b):
    return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)


def test_dataloader_array():
    batches = list(fx.DataLoader(X, batchsize=2))
    assert len(batches) == 3
    assert _same(batches[0], X[0:2]) and _same(batches[1], X[2:4]) and _same(batches[2], X[4:5])

    d = fx.DataLoader(X, batchsize=2, partial=False)
    batches = list(d)
    assert len(batches) == len(d) == 2
    assert _same(batches[0], X[0:2]) and _same(batches[1], X[2:4])


def test_dataloader_one_tuple():
    batches = list(fx.DataLoader((X,), batchsize=2, partial=False))
    assert all(type(b) is tuple and len(b) == 1 for b in batches)
    assert len(batches) == 2
    assert _same(batches[0][0], X[0:2]) and _same(batches[1][0], X[2:4])


def test_dataloader_tuple():
    batches = list(fx.DataLoader((X, Y), batchsize=2))
    assert len(batches) == 3
    assert [len(b) for b in batches] == [2, 2, 2]
    assert _same(batches[0][0], X[0:2]) and _same(batches[0][1], Y[0:2])
    assert _same(batches[1][0], X[2:4]) and _same(batches[1][1], Y[2:4])
    assert _same(batches[2][0], X[4:5]) and _same(batches[2][1], Y[4:5])


def test_dataloader_namedtuple():
    XY = namedtuple("XY", ["x", "y"])
    batches = list(fx.DataLoader(XY(x=X, y=Y), batchsize=2))
    assert all(type(b) is XY for b in batches)
    assert len(batches) == 3
    assert [len(b) for b in batches] == [2, 2, 2]
    for b, s in zip(batches, [slice(0, 2), slice(2, 4), slice(4, 5)]):
        assert _same(b[0], X[s]) and _same(b.x, X[s])
        assert _same(b[1], Y[s]) and _same(b.y, Y[s])


class Holder(fx.Module):
    def __init__(self, theta):
        self.theta = theta


def test_dataloader_interaction_with_train(x64):
    m = Holder(jnp.ones(2, jnp.float64))
    d = fx.DataLoader(np.zeros((10, 2)))
    fx.train(lambda x: jnp.sum((x - m.theta) ** 2), fx.params(m), fx.ncycle(d, 10), fx.Descent(0.1))
    assert float(jnp.linalg.norm(m.theta)) < 1e-4


def test_dataloader_interaction_with_train_two_arrays(x64):
    m = Holder(jnp.zeros(2, jnp.float64))
    d = fx.DataLoader((np.ones((10, 2)), np.full(10, 2)))

    def loss(x, y):  # sum((y - x'*θ).^2) with x a column; x @ θ with x a row here
        return jnp.sum((y - x @ m.theta) ** 2)

    fx.train(loss, fx.params(m), fx.ncycle(d, 10), fx.Descent(0.1))
    assert float(jnp.linalg.norm(m.theta - 1)) < 1e-10
