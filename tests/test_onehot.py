"""One-hot encoding (flux-spec §7.1), with the class axis last."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx


@pytest.mark.parametrize(
    "x, labels, index",
    [
        ("b", ["a", "b", "c"], 1),
        (3, range(1, 5), 2),
        (2.0, [1, 2, 3], 1),  # 2.0 == 2, as Julia's isequal
        ("a", "cab", 1),  # a string of labels is its characters
        (5, [5, 5, 6], 0),  # the first equal label wins
        (np.int64(6), np.array([5, 6]), 1),
        (jnp.array(6), jnp.array([5, 6]), 1),
        (float("nan"), [1.0, float("nan")], 1),  # isequal(NaN, NaN)
    ],
)
def test_onehot(x, labels, index):
    y = fx.onehot(x, labels)
    assert y.dtype == jnp.float32
    expected = np.zeros(len(list(labels)), np.float32)
    expected[index] = 1
    np.testing.assert_array_equal(y, expected)


def test_missing_value_is_an_error_naming_it_and_the_fix():
    with pytest.raises(ValueError, match=r"Value 7 is not in labels \[1, 2, 3\].*default="):
        fx.onehot(7, [1, 2, 3])
    with pytest.raises(ValueError, match="Value 'z'"):
        fx.onehotbatch(["a", "z"], ["a", "b"])
    np.testing.assert_array_equal(fx.onehot(7, [1, 2, 3], default=2), [0, 1, 0])
    with pytest.raises(ValueError, match="Default value 9"):
        fx.onehot(7, [1, 2, 3], default=9)


def test_onehotbatch_rows_are_observations():
    y = fx.onehotbatch([2, 0, 2, 1], [0, 1, 2])
    assert y.shape == (4, 3) and y.dtype == jnp.float32
    np.testing.assert_array_equal(y, np.eye(3)[[2, 0, 2, 1]])
    np.testing.assert_array_equal(fx.onehotbatch(np.array([2, 0]), range(3)), np.eye(3)[[2, 0]])


def test_onehotbatch_with_default_and_characters():
    y = fx.onehotbatch("abracadabra", "abcde", "e")  # Flux's docstring example
    assert y.shape == (11, 5)
    np.testing.assert_array_equal(fx.onecold(y, "abcde"), list("abeacadabea"))


def test_onehotbatch_extra_dims_keep_the_batch_shape():
    xs = np.array([[0, 1, 2], [2, 2, 0]])
    y = fx.onehotbatch(xs, [0, 1, 2, 3])
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y.argmax(-1), xs)


def test_onecold_inverts_onehotbatch():
    labels = ["cat", "dog", "fish"]
    xs = ["dog", "fish", "cat", "dog"]
    np.testing.assert_array_equal(fx.onecold(fx.onehotbatch(xs, labels), labels), xs)
    np.testing.assert_array_equal(fx.onecold(fx.onehotbatch(xs, labels)), [1, 2, 0, 1])


def test_onecold_argmax_along_last_axis_ties_go_first():
    y = jnp.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.3], [0.0, 0.2, 0.2]])
    np.testing.assert_array_equal(fx.onecold(y), [1, 0, 1])
    np.testing.assert_array_equal(fx.onecold(y, [10, 20, 30]), [20, 10, 20])
    assert fx.onecold(jnp.array([0.2, 0.7, 0.1]), "abc") == "b"
    assert int(fx.onecold(jnp.array([0.2, 0.7, 0.1]))) == 1
    assert fx.onecold(np.zeros((2, 3, 4))).shape == (2, 3)


def test_onecold_without_labels_works_under_jit():
    y = jnp.array([[0.1, 0.9], [0.8, 0.2]])
    np.testing.assert_array_equal(jax.jit(fx.onecold)(y), [1, 0])


def test_public_names():
    module = sys.modules["fluxjax.onehot"]  # fx.onehot is the function, not the module
    assert module.__all__ == ["onehot", "onehotbatch", "onecold"]
    for name in module.__all__:
        assert getattr(fx, name) is getattr(module, name) and ">>>" in getattr(fx, name).__doc__
