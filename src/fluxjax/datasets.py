"""The tutorial's data sets: the 1-D and 2-D fits, scikit-learn's digits, and MNIST IDX files.

Everything returns NumPy arrays with observations along the first axis, as ``float32`` where
they are inputs of a model:

>>> from fluxjax import datasets
>>> x, y = datasets.seed_data()
>>> x.shape, y.shape, x.dtype.name
((21, 1), (21, 1), 'float32')
>>> xy, z = datasets.grid2d()
>>> xy.shape, z.shape
((121, 2), (121, 1))

``tutorial_text()`` is the prose of the Portuguese tutorial (about 8,000 characters), shipped
with the package for the character-level transformer example.

``load_digits`` needs scikit-learn (``pip install 'fluxjax[examples]'``); ``read_idx`` and
``load_mnist`` only need NumPy.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "seed_function",
    "seed_data",
    "sin_sin",
    "grid2d",
    "Split",
    "load_digits",
    "read_idx",
    "write_idx",
    "load_mnist",
    "tutorial_text",
]


# ---- the fits of chapter 5 -------------------------------------------------------------------


def seed_function(x: Any) -> Any:
    """The tutorial's target f(x) = 0.2 sin(4πx) + 0.3 e^(−x) + 4x⁶ − 3.5x⁵ (NumPy or JAX).

    >>> from fluxjax import datasets
    >>> round(float(datasets.seed_function(0.0)), 6)
    0.3
    """
    xp = _xp(x)
    return 0.2 * xp.sin(4 * math.pi * x) + 0.3 * xp.exp(-x) + 4 * x**6 - 3.5 * x**5


def seed_data(n: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n`` points x = 0, 1/(n−1), …, 1 (the tutorial's 0:0.05:1 for n = 21) and
    y = f(x), both of shape ``(n, 1)``, float32.

    >>> from fluxjax import datasets
    >>> x, y = datasets.seed_data()
    >>> float(x[1, 0]), round(float(y[0, 0]), 4)
    (0.05, 0.3)
    """
    x = np.linspace(0.0, 1.0, n).reshape(-1, 1)
    return x.astype(np.float32), seed_function(x).astype(np.float32)


def sin_sin(xy: Any) -> Any:
    """f(x, y) = sin x · sin y of an ``(n, 2)`` array (or of ``x, y`` stacked on the last axis).

    >>> import numpy as np
    >>> from fluxjax import datasets
    >>> datasets.sin_sin(np.array([[np.pi / 2, np.pi / 2]])).round(6).tolist()
    [[1.0]]
    """
    xp = _xp(xy)
    return xp.sin(xy[..., :1]) * xp.sin(xy[..., 1:2])


def grid2d(n: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """``(xy, z)``: the ``n × n`` grid x, y ∈ {−π, −π + 2π/(n−1), …, π} (the tutorial's 11 × 11
    = 121 points for n = 11) as an ``(n², 2)`` array, and z = sin x · sin y, shape ``(n², 1)``.
    """
    g = np.linspace(-math.pi, math.pi, n)
    xs, ys = np.meshgrid(g, g, indexing="ij")
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return xy.astype(np.float32), sin_sin(xy).astype(np.float32)


def _xp(x: Any) -> Any:
    if type(x).__module__.startswith(("jax", "jaxlib")):
        import jax.numpy as jnp

        return jnp
    return np


# ---- classification data ---------------------------------------------------------------------


class Split(NamedTuple):
    """A train/test split: images flattened to ``(n, features)`` float32 in [0, 1], labels int."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(n_train: int = 1000, *, seed: int = 0) -> Split:
    """scikit-learn's bundled handwritten digits (1,797 images of 8 × 8 pixels, no download),
    scaled to [0, 1] and flattened to 64 features, split deterministically: a fixed
    permutation (``seed``), its first ``n_train`` images for training, the rest for testing.

    Needs scikit-learn: ``pip install 'fluxjax[examples]'``.
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:
        raise ImportError(
            "fx.datasets.load_digits needs scikit-learn: pip install 'fluxjax[examples]'"
        ) from e
    bunch = _load()
    x = (np.asarray(bunch.data, dtype=np.float32) / 16.0).clip(0.0, 1.0)
    y = np.asarray(bunch.target, dtype=np.int64)
    if not 0 < n_train < len(y):
        raise ValueError(f"load_digits: n_train must be between 1 and {len(y) - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:]
    return Split(x[tr], y[tr], x[te], y[te])


# ---- IDX files (MNIST's format) ---------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: Path) -> Any:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (MNIST's format; gzip-compressed or not, told by its first bytes).

    The header is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each
    dimension as a big-endian int32; the data follow, big-endian, row-major. Returns an array
    of that shape in native byte order.

    >>> import numpy as np, tempfile, os
    >>> from fluxjax import datasets
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte")
    >>> datasets.write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    >>> datasets.read_idx(path).shape
    (2, 3, 4)
    """
    path = Path(path)
    with _open(path) as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0:
            raise ValueError(
                f"{path}: not an IDX file (it should start with two zero bytes, a type code "
                f"and the number of dimensions; got {head!r})"
            )
        code, ndim = head[2], head[3]
        if code not in _IDX_TYPES:
            raise ValueError(
                f"{path}: unknown IDX type code 0x{code:02X}; expected one of "
                + ", ".join(f"0x{c:02X}" for c in _IDX_TYPES)
            )
        raw_dims = f.read(4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions announced)")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        dtype = _IDX_TYPES[code]
        count = math.prod(dims)
        data = f.read(count * dtype.itemsize)
    if len(data) < count * dtype.itemsize:
        raise ValueError(
            f"{path}: truncated IDX data: shape {dims} needs {count * dtype.itemsize} bytes, "
            f"found {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: Any) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); the
    inverse of ``read_idx``. Supported dtypes: uint8, int8, int16, int32, float32, float64."""
    a = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: IDX cannot hold dtype {a.dtype}; use one of uint8 … float64")
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    body = a.astype(_IDX_TYPES[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(head + body)


_MNIST = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(folder: Path, name: str) -> Path:
    dotted = name.replace("-idx", ".idx")  # "train-images.idx3-ubyte", as some mirrors name it
    candidates = [name, name + ".gz", dotted, dotted + ".gz"]
    for c in candidates:
        if (folder / c).is_file():
            return folder / c
    raise FileNotFoundError(
        f"load_mnist: no {name} (or {name}.gz) in {folder}; download MNIST's four IDX files "
        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte) into that folder"
    )


def load_mnist(
    folder: str | os.PathLike[str], n_train: int | None = 1000, n_test: int | None = 1000
) -> Split:
    """MNIST from its four IDX files in ``folder`` (optionally ``.gz``): the first ``n_train``
    training and ``n_test`` test images (``None`` for all; the tutorial used 1,000 of each),
    flattened to 784 features scaled to [0, 1], with integer labels."""
    folder = Path(folder)
    arrays = {k: read_idx(_find(folder, v)) for k, v in _MNIST.items()}
    for part in ("train", "test"):
        imgs, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if imgs.ndim != 3 or labels.ndim != 1 or len(imgs) != len(labels):
            raise ValueError(
                f"load_mnist: {part} images have shape {imgs.shape} and labels {labels.shape}; "
                "expected (n, rows, cols) images and (n,) labels"
            )

    def take(part: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        imgs, labels = arrays[f"{part}_images"][:n], arrays[f"{part}_labels"][:n]
        x = imgs.reshape(len(imgs), -1).astype(np.float32)
        return x / 255.0 if imgs.dtype == np.uint8 else x, labels.astype(np.int64)

    return Split(*take("train", n_train), *take("test", n_test))


def tutorial_text() -> str:
    """The prose of ``docs/tutorial.pt-BR.md`` (code, tables and headings left out), shipped
    as package data: a small text for character-level language models.

    >>> from fluxjax import datasets
    >>> text = datasets.tutorial_text()
    >>> len(text) > 5000, text[:4]
    (True, 'Esta')
    """
    return (Path(__file__).parent / "texts" / "tutorial_pt.txt").read_text(encoding="utf-8")
