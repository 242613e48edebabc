"""DataLoader and ncycle: Flux's semantics with observations along the first axis."""

from __future__ import annotations

import collections
import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fluxjax as fx

ONE_TO_TEN = np.arange(1, 11)


def batches(loader):
    return [b.tolist() for b in loader]


# ---- the tutorial's examples on 1..10 ------------------------------------------------------


def test_tutorial_batchsize_1():
    loader = fx.DataLoader(ONE_TO_TEN)
    out = list(loader)
    assert [b.tolist() for b in out] == [[i] for i in range(1, 11)]
    assert all(b.shape == (1,) for b in out)  # a batch of 1 keeps the observation axis
    assert len(loader) == 10


def test_tutorial_batchsize_3():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=3)
    assert batches(loader) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert len(loader) == 4


def test_tutorial_partial_false_drops_the_tail():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=3, partial=False)
    assert batches(loader) == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert len(loader) == 3


def test_tutorial_shuffle_is_a_new_permutation_each_epoch():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=3, shuffle=True, rng=0)
    epochs = [np.concatenate(list(loader)).tolist() for _ in range(5)]
    for e in epochs:
        assert sorted(e) == list(range(1, 11))
    assert len({tuple(e) for e in epochs}) == 5
    assert [len(b) for b in loader] == [3, 3, 3, 1]


def test_tutorial_ncycle_chains_four_epochs():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=3)
    assert batches(fx.ncycle(loader, 4)) == batches(loader) * 4
    assert len(fx.ncycle(loader, 4)) == 16


@given(n=st.integers(1, 40), bs=st.integers(1, 40), partial=st.booleans())
def test_len_and_batches_follow_flux(n, bs, partial):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n < bs: tested on its own below
        loader = fx.DataLoader(np.arange(n), batchsize=bs, partial=partial)
    bs = min(bs, n)
    out = list(loader)
    assert len(loader) == len(out) == (math.ceil(n / bs) if partial else n // bs)
    assert all(len(b) == bs for b in out[: n // bs])
    assert np.concatenate(out).tolist() == list(range(len(np.concatenate(out))))


# ---- shuffling -------------------------------------------------------------------------------


def epochs_of(loader, k=3):
    return [np.concatenate(list(loader)).tolist() for _ in range(k)]


def test_shuffle_reproducible_from_an_int_seed():
    a = fx.DataLoader(ONE_TO_TEN, batchsize=2, shuffle=True, rng=42)
    b = fx.DataLoader(ONE_TO_TEN, batchsize=2, shuffle=True, rng=42)
    c = fx.DataLoader(ONE_TO_TEN, batchsize=2, shuffle=True, rng=43)
    ea = epochs_of(a)
    assert ea == epochs_of(b)
    assert ea != epochs_of(c)


def test_shuffle_from_a_generator_advances_it():
    g = np.random.default_rng(5)
    loader = fx.DataLoader(ONE_TO_TEN, shuffle=True, rng=g)
    assert loader.rng is g
    first = np.concatenate(list(loader)).tolist()
    assert first == (np.random.default_rng(5).permutation(10) + 1).tolist()


def test_shuffle_without_rng_follows_fx_seed():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=4, shuffle=True)
    fx.seed(11)
    e1 = epochs_of(loader)
    fx.seed(11)
    assert epochs_of(loader) == e1
    fx.seed(12)
    assert epochs_of(loader) != e1
    assert e1[0] != e1[1]


def test_shuffle_with_partial_false_drops_a_different_tail():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=3, shuffle=True, partial=False, rng=3)
    seen = set()
    for _ in range(20):
        out = np.concatenate(list(loader)).tolist()
        assert len(out) == len(set(out)) == 9
        seen |= set(range(1, 11)) - set(out)
    assert len(seen) > 1


def test_shuffle_keeps_observations_paired_across_arrays():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    for xb, yb in fx.DataLoader((x, y), batchsize=3, shuffle=True, rng=1):
        assert (xb[:, 0] * 5 == yb).all()


# ---- containers --------------------------------------------------------------------------


def test_tuple_dict_nested_and_namedtuple_structure():
    x, y, w = np.zeros((7, 3)), np.ones((7,)), np.full((7, 2, 2), 2.0)
    (xb, (yb, wb)), *_ = fx.DataLoader((x, (y, w)), batchsize=2)
    assert (xb.shape, yb.shape, wb.shape) == ((2, 3), (2,), (2, 2, 2))
    first = next(iter(fx.DataLoader({"x": x, "y": {"w": w}}, batchsize=4)))
    assert set(first) == {"x", "y"} and first["y"]["w"].shape == (4, 2, 2)
    Pair = collections.namedtuple("Pair", "x y")
    batch = next(iter(fx.DataLoader(Pair(x, y), batchsize=5)))
    assert isinstance(batch, Pair) and batch.x.shape == (5, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        ((np.zeros((21, 1)), np.zeros((20, 1))), "data[0] has 21 observations but data[1] has 20"),
        ({"x": np.zeros(5), "y": np.zeros(4)}, "data['x'] has 5 observations but data['y'] has 4"),
        ((np.zeros(3), (np.zeros(3), np.zeros(2))), "data[0] has 3 observations but data[1][1]"),
    ],
)
def test_mismatched_observation_counts(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fx.DataLoader(data)


@pytest.mark.parametrize("data", [(), {}, np.zeros((0, 3)), (np.zeros(0), np.zeros(0))])
def test_empty_data(data):
    with pytest.raises(ValueError, match="at least one data input|0 observations"):
        fx.DataLoader(data)


@pytest.mark.parametrize("data", [3.0, np.float32(1), np.array(2.0), "abc", [[1], [2, 3]]])
def test_not_arrays(data):
    with pytest.raises((TypeError, ValueError)):
        fx.DataLoader(data)


def test_list_and_range_become_arrays():
    assert batches(fx.DataLoader(range(1, 11), batchsize=3))[-1] == [10]
    assert batches(fx.DataLoader([[1, 2], [3, 4]]))[1] == [[3, 4]]


# ---- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("bs", [0, -1, 2.5, 3.0, "3", True, None])
def test_bad_batchsize(bs):
    with pytest.raises(ValueError, match="batchsize"):
        fx.DataLoader(ONE_TO_TEN, batchsize=bs)


def test_numpy_integer_batchsize():
    assert fx.DataLoader(ONE_TO_TEN, batchsize=np.int64(5)).batchsize == 5


def test_fewer_observations_than_batchsize_warns_and_shrinks():
    with pytest.warns(UserWarning, match="Number of observations less than batchsize"):
        loader = fx.DataLoader(ONE_TO_TEN, batchsize=32)
    assert loader.batchsize == 10 and len(loader) == 1
    assert batches(loader) == [list(range(1, 11))]


@pytest.mark.parametrize(
    "kwargs", [{"shuffle": 1}, {"partial": "no"}, {"rng": 1.5}, {"rng": True}, {"collate": 3}]
)
def test_bad_options(kwargs):
    with pytest.raises(TypeError):
        fx.DataLoader(ONE_TO_TEN, **kwargs)


# ---- numpy and jax ------------------------------------------------------------------------


def test_numpy_in_numpy_out_jax_in_jax_out():
    xn = np.arange(12.0).reshape(6, 2)
    xj = jnp.asarray(xn)
    for b in fx.DataLoader(xn, batchsize=4):
        assert isinstance(b, np.ndarray)
    mixed = list(fx.DataLoader((xj, xn), batchsize=4, shuffle=True, rng=2))
    for bj, bn in mixed:
        assert isinstance(bj, jax.Array) and isinstance(bn, np.ndarray)
        np.testing.assert_array_equal(np.asarray(bj), bn)
    assert [b.shape for b, _ in mixed] == [(4, 2), (2, 2)]


def test_jax_batch_of_one_keeps_axis():
    out = list(fx.DataLoader(jnp.arange(3.0)))
    assert [b.shape for b in out] == [(1,)] * 3 and float(out[2][0]) == 2.0


def test_loader_owns_a_read_only_copy_of_numpy_data():
    x = np.arange(1, 11)
    loader = fx.DataLoader(x, batchsize=5)
    x[0] = 100
    assert batches(loader)[0] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        loader.data[0] = 7
    batch = next(iter(loader))
    batch[0] = 9  # batches are the caller's to change
    assert batches(loader)[0][0] == 1


# ---- indices for fused loops -------------------------------------------------------------


@pytest.mark.parametrize("partial", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_indices_give_the_batches_iteration_gives(shuffle, partial):
    data = {"x": np.arange(22).reshape(11, 2), "y": jnp.arange(11)}
    a = fx.DataLoader(data, batchsize=4, shuffle=shuffle, partial=partial, rng=9)
    b = fx.DataLoader(data, batchsize=4, shuffle=shuffle, partial=partial, rng=9)
    for _ in range(3):  # several epochs: each call consumes exactly one epoch's randomness
        iterated = list(a)
        idx = b.batch_indices()
        assert len(idx) == len(iterated) == len(a)
        for batch, i in zip(iterated, idx, strict=True):
            expected = fx.getobs(b.data, i)
            np.testing.assert_array_equal(batch["x"], expected["x"])
            np.testing.assert_array_equal(np.asarray(batch["y"]), np.asarray(expected["y"]))
            np.testing.assert_array_equal(b.getbatch(i)["x"], expected["x"])


def test_epoch_indices_shapes():
    loader = fx.DataLoader(np.zeros((11, 3)), batchsize=4, shuffle=True, rng=0)
    full, tail = loader.epoch_indices()
    assert full.shape == (2, 4) and tail.shape == (3,)
    assert sorted([*full.ravel(), *tail]) == list(range(11))
    full, tail = fx.DataLoader(np.zeros((11, 3)), batchsize=4, partial=False).epoch_indices()
    assert full.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and tail.size == 0
    full, tail = fx.DataLoader(np.zeros((8, 3)), batchsize=4).epoch_indices()
    assert full.shape == (2, 4) and tail.size == 0


def test_public_attributes():
    x = np.zeros((21, 1))
    loader = fx.DataLoader((x, x), batchsize=3, shuffle=True, partial=False)
    assert (loader.nobs, loader.batchsize, loader.shuffle, loader.partial) == (21, 3, True, False)
    assert isinstance(loader.data, tuple) and loader.collate is None
    with pytest.raises(AttributeError):
        loader.batchsize = 4


# ---- collate, ncycle, repr -------------------------------------------------------------------


def test_collate_gets_the_list_of_single_observations():
    x, y = np.arange(6).reshape(3, 2), np.arange(3)
    seen = []
    loader = fx.DataLoader((x, y), batchsize=2, collate=lambda obs: seen.append(obs) or len(obs))
    assert list(loader) == [2, 1]
    (x0, y0), (x1, y1) = seen[0]
    assert x0.tolist() == [0, 1] and int(y1) == 1
    stacked = fx.DataLoader(x, batchsize=2, collate=np.stack)
    assert batches(stacked) == batches(fx.DataLoader(x, batchsize=2))


def test_ncycle_reshuffles_every_cycle():
    loader = fx.DataLoader(ONE_TO_TEN, batchsize=5, shuffle=True, rng=4)
    out = [b.tolist() for b in fx.ncycle(loader, 4)]
    assert len(out) == 8
    epochs = [out[i] + out[i + 1] for i in range(0, 8, 2)]
    assert all(sorted(e) == list(range(1, 11)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 4


def test_ncycle_edge_cases():
    assert list(fx.ncycle([1, 2], 0)) == [] and list(fx.ncycle([1, 2], 2)) == [1, 2, 1, 2]
    with pytest.raises(ValueError):
        fx.ncycle([1], -1)
    with pytest.raises(TypeError, match="list"):
        fx.ncycle(iter([1, 2]), 2)


def test_reprs():
    x = np.zeros((21, 1))
    assert repr(fx.DataLoader((x, x), batchsize=3)) == (
        "DataLoader(tuple of 2 arrays, nobs=21, batchsize=3, shuffle=False, partial=True)"
        "  # 7 batches"
    )
    assert repr(fx.DataLoader({"x": x}, batchsize=21)).endswith("  # 1 batch")
    assert "dict of 1 array," in repr(fx.DataLoader({"x": x}))
    assert "array of shape (21, 1)" in repr(fx.DataLoader(x, collate=list))
    assert "collate=list" in repr(fx.DataLoader(x, collate=list))
    assert repr(fx.ncycle(fx.DataLoader(x, batchsize=7), 2)).endswith("2)  # 6 batches")


def test_numobs_and_getobs():
    data = (np.arange(6).reshape(3, 2), {"y": jnp.arange(3)})
    assert fx.numobs(data) == 3
    one = fx.getobs(data, 2)
    assert one[0].tolist() == [4, 5] and int(one[1]["y"]) == 2
    assert fx.getobs(data, [2, 0])[0].tolist() == [[4, 5], [0, 1]]
