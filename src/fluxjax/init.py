"""Parameter initialisers with Flux's formulas, fan rules and calling conventions.

Every initialiser returns a float32 JAX array and can be called in four ways:

* ``glorot_uniform(3, 4)`` or ``glorot_uniform((3, 4))``: draw from the global stream
  (``fx.seed(n)`` makes it reproducible), as Flux's ``init(dims...)``;
* ``glorot_uniform(3, 4, key=k)`` (or ``glorot_uniform(k, 3, 4)``): draw with the JAX key
  ``k`` (an int is taken as a seed), as Flux's ``init(rng, dims...)``;
* ``glorot_uniform(key=k, gain=2)``, ``glorot_uniform()``: no sizes, so return a callable
  ``(*dims, **kw) -> array`` for a layer's ``init=``, as Flux's ``init(rng; kw...)``. A
  partial made with ``key=k`` is a reproducible stream: its n-th call uses
  ``jax.random.fold_in(k, n)``, so two layers built from it differ (Flux's ``rng`` advances).

Shapes follow Flux: a Dense weight is ``(out, in)``, a conv kernel ``(kh, kw, cin, cout)``,
so ``nfan`` reads the fans exactly as Flux does.

>>> import fluxjax as fx
>>> fx.seed(0); a = fx.glorot_uniform(2, 3)
>>> fx.seed(0); b = fx.glorot_uniform((2, 3))
>>> a.dtype, bool((a == b).all())
(dtype('float32'), True)
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import operator
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .rng import next_key

__all__ = [
    "nfan",
    "glorot_uniform",
    "glorot_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "truncated_normal",
    "lecun_normal",
    "orthogonal",
    "sparse_init",
    "identity_init",
    "zeros32",
    "ones32",
    "rand32",
    "randn32",
]

_F32 = jnp.float32


def _is_key(a: Any) -> bool:
    if not isinstance(a, jax.Array):
        return False
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return True
    return a.dtype == jnp.uint32 and a.shape == (2,)


def _dims(name: str, args: tuple) -> tuple[int, ...]:
    """Validate sizes given splatted (``3, 4``) or as one tuple (``(3, 4)``)."""
    if len(args) == 1 and isinstance(args[0], tuple | list):
        args = tuple(args[0])
    dims = []
    for d in args:
        try:
            if isinstance(d, bool):
                raise TypeError
            n = operator.index(d)
        except TypeError:
            n = -1
        if n < 0:
            raise ValueError(
                f"{name}: size {d!r} is not a non-negative integer; pass sizes as ints, "
                f"e.g. {name}(3, 4) or {name}((3, 4)), and a JAX key as key=..."
            )
        dims.append(n)
    return tuple(dims)


def _key(key: Any) -> Array:
    """The key to draw with: the given one, a seed turned into one, or the global stream's."""
    if key is None:
        return next_key()
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.PRNGKey(int(key))
    if _is_key(key):
        return key
    raise ValueError(f"key must be a JAX key (jax.random.key(0)), an int seed or None, got {key!r}")


def _partial(f: Callable, key: Any, kw: dict) -> Callable:
    """Flux's ``init(rng; kw...)``: a callable ``(*dims, **kw) -> array`` for ``init=``."""
    base = None if key is None else _key(key)
    count = itertools.count()

    def init(*dims: Any, key: Any = None, **more: Any) -> Array:
        if key is None and base is not None:
            key = jax.random.fold_in(base, next(count))
        return f(*dims, key=key, **{**kw, **more})

    init.__name__ = init.__qualname__ = f.__name__
    init.__doc__ = f"{f.__name__} with key={key!r} and keywords {kw!r} bound.\n\n{f.__doc__}"
    return init


def _initialiser(bare: str = "partial") -> Callable:
    """Give ``core(dims, key, **kw)`` Flux's calling conventions (see the module docstring).

    ``bare`` says what a call without sizes, key or keywords does: ``"partial"`` (Flux's
    ``init()``) or ``"scalar"`` (a 0-d array, as Flux's ``rand32()``).
    """

    def wrap(core: Callable) -> Callable:
        @functools.wraps(core)
        def init(*args: Any, key: Any = None, **kw: Any) -> Any:
            if args and _is_key(args[0]):
                if key is not None:
                    raise ValueError(f"{core.__name__}: pass the key once, not also as key=")
                key, args = args[0], args[1:]
            if not args and (bare == "partial" or key is not None or kw):
                return _partial(init, key, kw)
            dims = _dims(core.__name__, args)
            if 0 in dims:  # no elements, nothing to draw (and no fan to divide by), as Flux
                return jnp.zeros(dims, _F32)
            return core(dims, key, **kw)

        params = list(inspect.signature(core).parameters.values())[2:]
        init.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("dims", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None),
                *params,
            ]
        )
        return init

    return wrap


# The draws, each one compiled call (static sizes), so initialising a model dispatches little.


@partial(jax.jit, static_argnums=1)
def _uniform(key: Array, dims: tuple[int, ...], scale: float) -> Array:
    return (jax.random.uniform(key, dims, _F32) - 0.5) * scale


@partial(jax.jit, static_argnums=1)
def _normal(key: Array, dims: tuple[int, ...], std: float) -> Array:
    return jax.random.normal(key, dims, _F32) * std


@partial(jax.jit, static_argnums=1)
def _truncated(key, dims, width, offset, scale, mean, lo, hi) -> Array:
    x = jax.scipy.special.erfinv(jax.random.uniform(key, dims, _F32) * width + offset)
    return jnp.clip(x * scale + mean, lo, hi).astype(_F32)


@partial(jax.jit, static_argnums=1)
def _orthonormal(key: Array, tall: tuple[int, int]) -> Array:
    q, r = jnp.linalg.qr(jax.random.normal(key, tall, _F32), mode="reduced")
    return q * jnp.sign(jnp.diagonal(r))


@partial(jax.jit, static_argnums=1)
def _sparse(key: Array, dims: tuple[int, int], num_zeros: int, std: float) -> Array:
    k1, k2 = jax.random.split(key)
    w = jax.random.normal(k1, dims, _F32) * std
    w = jnp.where(jnp.arange(dims[0])[:, None] < num_zeros, _F32(0), w)
    order = jnp.argsort(jax.random.uniform(k2, dims), axis=0)
    return jnp.take_along_axis(w, order, axis=0)


def nfan(*dims: int | tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of an array of shape ``dims``, with Flux's rules.

    ``()`` → (1, 1); ``(n,)`` → (1, n); ``(out, in)`` → (in, out);
    ``(k..., cin, cout)`` → (∏k·cin, ∏k·cout). A tuple works like the splatted sizes.

    >>> nfan(3, 4), nfan((3, 3, 2, 8)), nfan(5), nfan()
    ((4, 3), (18, 72), (1, 5), (1, 1))
    """
    dims = _dims("nfan", dims)
    if len(dims) == 0:
        return 1, 1
    if len(dims) == 1:
        return 1, dims[0]
    if len(dims) == 2:
        return dims[1], dims[0]
    k = math.prod(dims[:-2])
    return k * dims[-2], k * dims[-1]


@_initialiser()
def glorot_uniform(dims: tuple[int, ...], key: Any, *, gain: float = 1.0) -> Array:
    """Glorot (Xavier) uniform: ``U(-a, a)`` with ``a = gain·√(6 / (fan_in + fan_out))``.

    >>> w = glorot_uniform(3, 4, key=jax.random.PRNGKey(0))
    >>> w.shape, w.dtype, bool(jnp.abs(w).max() <= (6 / 7) ** 0.5)
    ((3, 4), dtype('float32'), True)
    """
    fan_in, fan_out = nfan(*dims)
    scale = gain * math.sqrt(24 / (fan_in + fan_out))
    return _uniform(_key(key), dims, scale)


@_initialiser()
def glorot_normal(dims: tuple[int, ...], key: Any, *, gain: float = 1.0) -> Array:
    """Glorot (Xavier) normal: ``N(0, σ²)`` with ``σ = gain·√(2 / (fan_in + fan_out))``.

    >>> glorot_normal(2, 5, gain=0.5, key=jax.random.PRNGKey(0)).shape
    (2, 5)
    """
    fan_in, fan_out = nfan(*dims)
    std = gain * math.sqrt(2 / (fan_in + fan_out))
    return _normal(_key(key), dims, std)


@_initialiser()
def kaiming_uniform(dims: tuple[int, ...], key: Any, *, gain: float = math.sqrt(2)) -> Array:
    """Kaiming (He) uniform: ``U(-b, b)``, ``b = √3·gain / √fan_in`` (``√(6/fan_in)`` by default).

    >>> w = kaiming_uniform(3, 6, key=jax.random.PRNGKey(0))
    >>> bool(jnp.abs(w).max() <= 1.0)
    True
    """
    bound = math.sqrt(3) * gain / math.sqrt(nfan(*dims)[0])
    return _uniform(_key(key), dims, 2 * bound)


@_initialiser()
def kaiming_normal(dims: tuple[int, ...], key: Any, *, gain: float = math.sqrt(2)) -> Array:
    """Kaiming (He) normal: ``N(0, σ²)`` with ``σ = gain / √fan_in`` (``√(2/fan_in)`` by default).

    >>> kaiming_normal(3, 3, 4, 8, key=jax.random.PRNGKey(0)).shape
    (3, 3, 4, 8)
    """
    return _normal(_key(key), dims, gain / math.sqrt(nfan(*dims)[0]))


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@_initialiser()
def truncated_normal(
    dims: tuple[int, ...],
    key: Any,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    lo: float = -2.0,
    hi: float = 2.0,
) -> Array:
    """Normal ``N(mean, std²)`` truncated to ``[lo, hi]`` (absolute limits), by inverse CDF.

    ``u ~ U[0, 1)`` is mapped to ``p`` in ``[Φ((lo-mean)/std), Φ((hi-mean)/std)]``, then
    ``x = mean + std·√2·erfinv(2p - 1)``, clamped to ``[lo, hi]``. Warns if ``mean`` lies more
    than ``2·std`` outside the limits.

    >>> w = truncated_normal(100, key=jax.random.PRNGKey(0), lo=-1.0, hi=0.5)
    >>> bool(w.min() >= -1.0), bool(w.max() <= 0.5)
    (True, True)
    """
    if mean < lo - 2 * std or mean > hi + 2 * std:
        warnings.warn(
            f"truncated_normal: mean={mean} is more than 2 std outside [lo, hi] = [{lo}, {hi}],"
            " so the distribution of values may be inaccurate; move mean or the limits",
            UserWarning,
            stacklevel=3,
        )
    l, u = _phi((lo - mean) / std), _phi((hi - mean) / std)
    return _truncated(_key(key), dims, 2 * (u - l), 2 * l - 1, std * math.sqrt(2), mean, lo, hi)


@_initialiser()
def lecun_normal(dims: tuple[int, ...], key: Any, *, gain: float = 1.0) -> Array:
    """LeCun normal: ``truncated_normal(std = gain / √fan_in)`` with Flux's limits ``[-2, 2]``.

    >>> lecun_normal(4, 9, key=jax.random.PRNGKey(0)).dtype
    dtype('float32')
    """
    return truncated_normal(dims, key=key, std=gain / math.sqrt(nfan(*dims)[0]))


@_initialiser()
def orthogonal(dims: tuple[int, ...], key: Any, *, gain: float = 1.0) -> Array:
    """Random orthogonal matrix times ``gain`` (Saxe et al.), as Flux.

    For ``rows × cols``: draw ``N(0, 1)`` of shape ``max × min``, take the thin QR,
    ``Q·diag(sign(diag R))``, transpose when ``rows < cols``. More sizes: the matrix
    ``prod(dims[:-1]) × dims[-1]`` reshaped; one size ``n``: a random unit vector.

    >>> w = orthogonal(5, 3, key=jax.random.PRNGKey(0))
    >>> bool(jnp.allclose(w.T @ w, jnp.eye(3), atol=1e-5))
    True
    """
    if not dims:
        raise ValueError("orthogonal needs at least one size, e.g. orthogonal(4, 4)")
    rows, cols = math.prod(dims[:-1]), dims[-1]
    tall = (rows, cols) if rows >= cols else (cols, rows)
    q = _orthonormal(_key(key), tall) * _F32(gain)
    return (q if rows >= cols else q.T).reshape(dims)


@_initialiser()
def sparse_init(dims: tuple[int, ...], key: Any, *, sparsity: float, std: float = 0.01) -> Array:
    """Sparse matrix (Martens 2010): ``N(0, std²)``, ``⌈min(1, sparsity)·rows⌉`` zeros per column.

    The zeros start in the first rows, then each column is shuffled independently. The shuffle
    uses ``key`` (Flux shuffles with the global RNG even when given an ``rng``). Only 2-D.

    >>> w = sparse_init(4, 3, sparsity=0.5, key=jax.random.PRNGKey(0))
    >>> (w == 0).sum(axis=0).tolist()
    [2, 2, 2]
    """
    if len(dims) != 2:
        raise ValueError(
            f"sparse_init only makes 2-D arrays, got sizes {dims}; pass e.g. sparse_init(4, 3, ...)"
        )
    num_zeros = max(0, math.ceil(min(1.0, sparsity) * dims[0]))
    return _sparse(_key(key), dims, num_zeros, std)


@_initialiser()
def identity_init(
    dims: tuple[int, ...], key: Any, *, gain: float = 1.0, shift: int | tuple[int, ...] = 0
) -> Array:
    """Identity mapping: 1-D zeros (a bias); 2-D ``gain·I`` (rectangular); conv kernels
    ``(k..., cin, cout)`` zero except ``w[c..., i, i] = gain`` at the spatial centre
    ``c_d = ⌈k_d/2⌉`` (1-based) for ``i < min(cin, cout)``. Then the array is rolled by
    ``shift`` (an int rolls axis 0, a tuple the leading axes), as Julia's ``circshift``.
    The key is ignored.

    >>> identity_init(2, 3, gain=2).tolist()
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    """
    w = np.zeros(dims, np.float32)
    if len(dims) >= 2:
        centre = tuple((k - 1) // 2 for k in dims[:-2])
        for i in range(min(dims[-2], dims[-1])):
            w[(*centre, i, i)] = gain
    if len(dims) >= 1:
        shifts = shift if isinstance(shift, tuple) else (shift,)
        w = np.roll(w, shifts, axis=tuple(range(len(shifts))))
    return jnp.asarray(w)


def zeros32(*dims: int | tuple[int, ...]) -> Array:
    """float32 zeros of shape ``dims`` (``zeros32()`` is a 0-d array).

    >>> zeros32(2, 3).dtype, zeros32((2,)).tolist()
    (dtype('float32'), [0.0, 0.0])
    """
    return jnp.zeros(_dims("zeros32", dims), _F32)


def ones32(*dims: int | tuple[int, ...]) -> Array:
    """float32 ones of shape ``dims`` (``ones32()`` is a 0-d array).

    >>> ones32(2).tolist()
    [1.0, 1.0]
    """
    return jnp.ones(_dims("ones32", dims), _F32)


@_initialiser(bare="scalar")
def rand32(dims: tuple[int, ...], key: Any) -> Array:
    """float32 uniform ``U[0, 1)`` of shape ``dims``; ``rand32(key=k)`` returns a partial.

    >>> x = rand32(1000, key=0)
    >>> bool((x >= 0).all() and (x < 1).all())
    True
    """
    return jax.random.uniform(_key(key), dims, _F32)


@_initialiser(bare="scalar")
def randn32(dims: tuple[int, ...], key: Any) -> Array:
    """float32 standard normal ``N(0, 1)`` of shape ``dims``; ``randn32(key=k)`` returns a partial.

    >>> randn32(2, 3, key=0).shape
    (2, 3)
    """
    return jax.random.normal(_key(key), dims, _F32)
