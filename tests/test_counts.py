"""One validator for counts (fluxjax/counts.py): every API that takes a number of steps,
calls, observations or units gives the same value the same answer."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx
from fluxjax.counts import count, is_count, is_int
from fluxjax.lab import compare

GOOD = [1, 3, np.int64(3), np.int32(2), np.uint8(5)]
BAD = [0, -1, np.int64(0), True, False, 2.5, 3.0, "3", None]

X = np.ones((4, 1), np.float32)

# each API, as a function of the count alone; a bad count raises ValueError
APIS = {
    "every": lambda n: fx.every(n, lambda: None),
    "patience": lambda n: fx.patience(lambda: True, n),
    "metrics": lambda n: fx.metrics(every=n, v=lambda: 0.0),
    "CSVLogger": lambda n: fx.CSVLogger("unused.csv", every=n),
    "DataLoader": lambda n: fx.DataLoader((X, X), batchsize=n),
    "Checkpointer.every": lambda n: fx.Checkpointer("unused", fx.Dense(1, 1), every=n),
    "compare.steps": lambda n: compare([fx.Descent(0.1)], steps=n),
}


def test_is_count_table():
    assert [is_count(v) for v in GOOD] == [True] * len(GOOD)
    assert [is_count(v) for v in BAD] == [False] * len(BAD)
    assert is_count(0, minimum=0) and not is_count(-1, minimum=0)
    assert is_int(np.int8(-3)) and not is_int(True) and not is_int(1.0)
    assert count(np.int64(7), "unused") == 7 and type(count(np.int64(7), "unused")) is int
    with pytest.raises(ValueError, match="^the message$"):
        count(0, "the message")


@pytest.mark.parametrize("api", sorted(APIS))
@pytest.mark.parametrize("value", GOOD[1:3] + BAD[:6], ids=repr)
def test_same_value_same_answer(api, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if is_count(value):
        APIS[api](value)  # accepted: no error
    else:
        with pytest.raises(ValueError):
            APIS[api](value)


def test_patience_accepts_what_every_accepts():
    trigger = fx.patience(lambda x: x > 0, np.int64(2))
    assert [trigger(x) for x in [1, 1, 0, 1]] == [False, True, False, False]
    assert fx.every(np.int64(2), lambda: None).n == 2


def test_dense_sizes():
    assert fx.Dense(np.int64(2), np.int32(3)).weight.shape == (3, 2)
    with pytest.raises(ValueError, match="sizes must be positive"):
        fx.Dense(0, 3)
    assert jnp.asarray(fx.Dense(1, 1)(jnp.ones((1, 1)))).shape == (1, 1)
