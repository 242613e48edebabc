"""fx.datasets: the tutorial's fits, scikit-learn's digits and the IDX (MNIST) reader."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from fluxjax import datasets

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def test_seed_data_is_the_tutorials_21_points():
    x, y = datasets.seed_data()
    assert x.shape == y.shape == (21, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], np.arange(21) * 0.05, atol=1e-7)
    xs = x[:, 0].astype(np.float64)
    f = 0.2 * np.sin(4 * math.pi * xs) + 0.3 * np.exp(-xs) + 4 * xs**6 - 3.5 * xs**5
    np.testing.assert_allclose(y[:, 0], f, rtol=1e-5, atol=1e-6)


def test_seed_function_works_on_jax_arrays():
    import jax.numpy as jnp

    out = datasets.seed_function(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(out), [0.3, 0.3 * math.exp(-1) + 0.5], rtol=1e-5)


def test_grid2d_is_11_by_11_over_minus_pi_to_pi():
    xy, z = datasets.grid2d()
    assert xy.shape == (121, 2) and z.shape == (121, 1)
    expected = np.linspace(-math.pi, math.pi, 11)
    for column in (0, 1):
        np.testing.assert_allclose(np.unique(xy[:, column]), expected, rtol=1e-6)
    np.testing.assert_allclose(z[:, 0], np.sin(xy[:, 0]) * np.sin(xy[:, 1]), atol=1e-6)


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        a = np.abs(a).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    datasets.write_idx(path, a)
    b = datasets.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_mnists_big_endian_layout(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    datasets.write_idx(path, np.array([7, 2, 1], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def test_idx_gzip_is_detected_from_the_bytes_not_the_name(tmp_path):
    path = tmp_path / "no-extension"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 5, 6]))
    assert datasets.read_idx(path).tolist() == [5, 6]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "not an IDX file"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "unknown IDX type code 0x42"),
        (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 4, 5]), "truncated IDX data"),
    ],
)
def test_idx_errors_say_what_is_wrong(tmp_path, raw, message):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message):
        datasets.read_idx(path)


def test_write_idx_refuses_unsupported_dtypes(tmp_path):
    with pytest.raises(TypeError, match="IDX cannot hold dtype"):
        datasets.write_idx(tmp_path / "x", np.zeros(3, np.complex64))


def write_mnist(folder, n_train=6, n_test=4, gz=False, dotted=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        name = name.replace("-idx", ".idx") if dotted else name
        datasets.write_idx(folder / (name + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True)])
def test_load_mnist_reads_the_four_files(tmp_path, gz, dotted):
    arrays = write_mnist(tmp_path, gz=gz, dotted=dotted)
    split = datasets.load_mnist(tmp_path, n_train=5, n_test=None)
    assert split.x_train.shape == (5, 784) and split.x_test.shape == (4, 784)
    assert (
        split.x_train.dtype == np.float32 and 0 <= split.x_train.min() <= split.x_train.max() <= 1
    )
    np.testing.assert_allclose(
        split.x_train[0], arrays["train-images-idx3-ubyte"][0].ravel() / 255.0, rtol=1e-6
    )
    assert split.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_load_mnist_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_checks_images_and_labels_agree(tmp_path):
    write_mnist(tmp_path)
    datasets.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="test images have shape"):
        datasets.load_mnist(tmp_path)


def test_load_digits_split_is_deterministic():
    a, b = datasets.load_digits(), datasets.load_digits()
    assert a.x_train.shape == (1000, 64) and a.x_test.shape == (797, 64)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert set(a.y_train.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="n_train"):
        datasets.load_digits(n_train=5000)


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fluxjax\[examples\]"):
        datasets.load_digits()
