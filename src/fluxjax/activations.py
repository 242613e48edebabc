"""Activation functions: NNlib's, as thin wrappers over ``jax.nn``.

Each function works elementwise on a whole array (Flux broadcasts scalar functions with
``σ.(x)``; JAX functions take arrays, so ``fx.sigmoid(x)`` is the translation of
``σ.(x)``). Integer input is promoted to float. The array functions ``softmax``,
``logsoftmax`` and ``logsumexp`` reduce along ``axis=-1``, the class axis in fluxjax's
observations-first layout (Flux's ``dims=1``).

Every function is a plain named function, so a layer's repr prints ``Dense(2 => 3, relu)``.
The Greek aliases ``σ``, ``hardσ`` and ``logσ`` are the same function objects.

>>> import fluxjax as fx
>>> fx.relu(jnp.array([-1.0, 2.0])).tolist()
[0.0, 2.0]
>>> fx.σ is fx.sigmoid
True
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "sigmoid",
    "σ",
    "hardsigmoid",
    "hardσ",
    "tanh",
    "relu",
    "leakyrelu",
    "relu6",
    "elu",
    "celu",
    "selu",
    "gelu",
    "gelu_erf",
    "swish",
    "hardswish",
    "softplus",
    "softsign",
    "logsigmoid",
    "logσ",
    "hardtanh",
    "lisht",
    "mish",
    "tanhshrink",
    "softshrink",
    "trelu",
    "logcosh",
    "softmax",
    "logsoftmax",
    "logsumexp",
    "identity",
]


def as_float(x: ArrayLike) -> Array:
    """``x`` as a JAX array of a floating dtype (integers and bools become float32)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)


def sigmoid(x: ArrayLike) -> Array:
    """Logistic sigmoid ``σ(x) = 1 / (1 + exp(-x))``, computed in the stable form.

    >>> sigmoid(jnp.array([0.0, 2.0])).tolist()
    [0.5, 0.8808]
    """
    return jax.nn.sigmoid(as_float(x))


def hardsigmoid(x: ArrayLike) -> Array:
    """Piecewise-linear sigmoid ``clamp((x + 3) / 6, 0, 1)`` (NNlib >= 0.7.10).

    >>> hardsigmoid(jnp.array([-4.0, 0.0, 1.0, 4.0])).tolist()
    [0.0, 0.5, 0.6667, 1.0]
    """
    return jnp.clip((as_float(x) + 3) / 6, 0, 1)


def tanh(x: ArrayLike) -> Array:
    """Hyperbolic tangent ``tanh(x) = (eˣ - e⁻ˣ) / (eˣ + e⁻ˣ)``.

    >>> tanh(jnp.array([0.0, 1.0])).tolist()
    [0.0, 0.7616]
    """
    return jnp.tanh(as_float(x))


def relu(x: ArrayLike) -> Array:
    """Rectified linear unit ``max(0, x)``; NaN stays NaN and the gradient at 0 is 0.

    >>> relu(jnp.array([-1.0, 0.0, 3.0])).tolist()
    [0.0, 0.0, 3.0]
    """
    return jax.nn.relu(as_float(x))


def leakyrelu(x: ArrayLike, a: float = 0.01) -> Array:
    """Leaky ReLU ``x > 0 ? x : a·x`` (NNlib >= 0.8; differs from ``max(a·x, x)`` for a > 1).

    >>> leakyrelu(jnp.array([-2.0, 3.0])).tolist()
    [-0.02, 3.0]
    >>> leakyrelu(jnp.array([-1.0]), 2.0).tolist()
    [-2.0]
    """
    x = as_float(x)
    return jnp.where(x > 0, x, a * x)


def relu6(x: ArrayLike) -> Array:
    """ReLU capped at 6: ``clamp(x, 0, 6)``.

    >>> relu6(jnp.array([-1.0, 3.0, 8.0])).tolist()
    [0.0, 3.0, 6.0]
    """
    return jnp.clip(as_float(x), 0, 6)


def elu(x: ArrayLike, alpha: float = 1.0) -> Array:
    """Exponential linear unit ``x ≥ 0 ? x : α(eˣ - 1)``.

    >>> elu(jnp.array([-1.0, 2.0])).tolist()
    [-0.6321, 2.0]
    """
    return jax.nn.elu(as_float(x), alpha)


def celu(x: ArrayLike, alpha: float = 1.0) -> Array:
    """Continuously differentiable ELU ``x ≥ 0 ? x : α(e^{x/α} - 1)``.

    >>> celu(jnp.array([-1.0, 2.0]), 2.0).tolist()
    [-0.7869, 2.0]
    """
    return jax.nn.celu(as_float(x), alpha)


def selu(x: ArrayLike) -> Array:
    """Scaled ELU ``λ·(x > 0 ? x : α(eˣ - 1))`` with λ ≈ 1.0507009873554805, α ≈ 1.6732632423543772.

    >>> selu(jnp.array([-1.0, 1.0])).tolist()
    [-1.1113, 1.0507]
    """
    return jax.nn.selu(as_float(x))


def gelu(x: ArrayLike) -> Array:
    """GELU, tanh approximation (NNlib's ``gelu``): ``0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))``.

    >>> gelu(jnp.array([-1.0, 1.0])).tolist()
    [-0.1588, 0.8412]
    """
    return jax.nn.gelu(as_float(x), approximate=True)


def gelu_erf(x: ArrayLike) -> Array:
    """Exact GELU ``0.5x(1 + erf(x/√2))``.

    >>> gelu_erf(jnp.array([-1.0, 1.0])).tolist()
    [-0.1587, 0.8413]
    """
    return jax.nn.gelu(as_float(x), approximate=False)


def swish(x: ArrayLike) -> Array:
    """Swish (SiLU) ``x·σ(x)``.

    >>> swish(jnp.array([-1.0, 1.0])).tolist()
    [-0.2689, 0.7311]
    """
    return jax.nn.silu(as_float(x))


def hardswish(x: ArrayLike) -> Array:
    """Hard swish ``x·hardσ(x)``.

    >>> hardswish(jnp.array([-4.0, 1.0, 4.0])).tolist()
    [-0.0, 0.6667, 4.0]
    """
    x = as_float(x)
    return x * hardsigmoid(x)


def softplus(x: ArrayLike) -> Array:
    """Softplus ``log(1 + eˣ)``, computed as ``log1p(exp(-|x|)) + max(x, 0)``.

    >>> softplus(jnp.array([0.0, 30.0])).tolist()
    [0.6931, 30.0]
    """
    return jax.nn.softplus(as_float(x))


def softsign(x: ArrayLike) -> Array:
    """Softsign ``x / (1 + |x|)``.

    >>> softsign(jnp.array([-3.0, 1.0])).tolist()
    [-0.75, 0.5]
    """
    x = as_float(x)
    return x / (1 + jnp.abs(x))


def logsigmoid(x: ArrayLike) -> Array:
    """Log of the sigmoid, ``logσ(x) = -softplus(-x)``, stable for large ``|x|``.

    >>> logsigmoid(jnp.array([0.0, -100.0])).tolist()
    [-0.6931, -100.0]
    """
    return jax.nn.log_sigmoid(as_float(x))


def hardtanh(x: ArrayLike) -> Array:
    """Hard tanh ``clamp(x, -1, 1)``.

    >>> hardtanh(jnp.array([-3.0, 0.5, 2.0])).tolist()
    [-1.0, 0.5, 1.0]
    """
    return jnp.clip(as_float(x), -1, 1)


def lisht(x: ArrayLike) -> Array:
    """LiSHT ``x·tanh(x)``.

    >>> lisht(jnp.array([-1.0, 2.0])).tolist()
    [0.7616, 1.9281]
    """
    x = as_float(x)
    return x * jnp.tanh(x)


def mish(x: ArrayLike) -> Array:
    """Mish ``x·tanh(softplus(x))``.

    >>> mish(jnp.array([-1.0, 1.0])).tolist()
    [-0.3034, 0.8651]
    """
    x = as_float(x)
    return x * jnp.tanh(jax.nn.softplus(x))


def tanhshrink(x: ArrayLike) -> Array:
    """Tanh shrink ``x - tanh(x)``.

    >>> tanhshrink(jnp.array([-1.0, 2.0])).tolist()
    [-0.2384, 1.0360]
    """
    x = as_float(x)
    return x - jnp.tanh(x)


def softshrink(x: ArrayLike, lambda_: float = 0.5) -> Array:
    """Soft shrinkage ``min(max(0, x - λ), x + λ)`` (Flux's ``λ`` is ``lambda_``).

    >>> softshrink(jnp.array([-2.0, 0.3, 1.0])).tolist()
    [-1.5, 0.0, 0.5]
    """
    x = as_float(x)
    return jnp.minimum(jnp.maximum(0, x - lambda_), x + lambda_)


def trelu(x: ArrayLike, theta: float = 1.0) -> Array:
    """Thresholded ReLU ``x > θ ? x : 0``.

    >>> trelu(jnp.array([0.5, 1.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """
    x = as_float(x)
    return jnp.where(x > theta, x, 0)


def logcosh(x: ArrayLike) -> Array:
    """Log of the hyperbolic cosine, stable: ``x + softplus(-2x) - log 2``.

    >>> logcosh(jnp.array([0.0, 100.0])).tolist()
    [0.0, 99.3069]
    """
    x = as_float(x)
    return x + jax.nn.softplus(-2 * x) - math.log(2)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _softmax(x: Array, axis: int) -> Array:
    m = jnp.max(x, axis=axis, keepdims=True)
    at_inf = m == jnp.inf
    e = jnp.exp(x - jnp.where(at_inf, 0, m))
    e = jnp.where(at_inf, (x == jnp.inf).astype(x.dtype), e)
    return e / jnp.sum(e, axis=axis, keepdims=True)


@_softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _softmax(x, axis)
    return y, y * (dx - jnp.sum(y * dx, axis=axis, keepdims=True))


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """Softmax along ``axis``: ``exp(x - max) / Σ exp(x - max)``.

    If the maximum of a slice is ``+inf``, the ``+inf`` entries share the mass equally and the
    others get 0 (as NNlib), instead of NaN. The gradient is ``y ⊙ (dy - Σ y ⊙ dy)``.

    >>> softmax(jnp.array([[1.0, 2.0, 3.0]])).tolist()
    [[0.0900, 0.2447, 0.6652]]
    >>> softmax(jnp.array([1.0, jnp.inf, 2.0])).tolist()
    [0.0, 1.0, 0.0]
    """
    return _softmax(as_float(x), axis)


def logsoftmax(x: ArrayLike, axis: int = -1) -> Array:
    """Log-softmax along ``axis``: ``(x - max) - log Σ exp(x - max)``.

    >>> logsoftmax(jnp.array([0.0, 0.0])).tolist()
    [-0.6931, -0.6931]
    """
    return jax.nn.log_softmax(as_float(x), axis=axis)


def logsumexp(
    x: ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Array:
    """``max + log Σ exp(x - max)`` over ``axis`` (all entries when ``None``).

    Unlike NNlib, the reduced axis is dropped unless ``keepdims=True`` (NumPy's habit).

    >>> float(logsumexp(jnp.array([0.0, 0.0])))
    0.6931
    >>> logsumexp(jnp.zeros((2, 3)), axis=-1).shape
    (2,)
    """
    return jax.nn.logsumexp(as_float(x), axis=axis, keepdims=keepdims)


def identity(x: ArrayLike) -> ArrayLike:
    """The identity ``x ↦ x`` (the default activation of a layer).

    >>> identity(3)
    3
    """
    return x


σ = sigmoid
hardσ = hardsigmoid
logσ = logsigmoid
