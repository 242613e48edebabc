"""Loss functions: ``Flux.Losses``, with Flux's formulas and defaults.

Every loss is ``loss(yhat, y, *, agg=jnp.mean, ...)``, prediction first. ``agg`` reduces the
elementwise (or per-sample) losses: ``jnp.mean`` by default, ``jnp.sum`` (or the builtin
``sum``) for totals, ``fx.identity`` for the unreduced array. ``eps`` defaults to the machine
epsilon of ``yhat``'s float dtype (``jnp.finfo``; 1.19e-7 for float32), as Flux.

fluxjax puts observations on the first axis, so the class axis is the **last** one:
Flux's ``dims=1`` is ``axis=-1`` here, and ``crossentropy`` of ``(n, classes)`` arrays sums
over classes and averages over the ``n`` samples. The per-sample array that ``agg`` receives
has the class axis dropped (Flux keeps it as a ``1×N`` row), so ``agg=fx.identity`` gives
shape ``(n,)``.

``y`` must have exactly ``yhat``'s shape when it is an array (a ``ValueError`` naming both
shapes otherwise, as Flux's ``DimensionMismatch``); a plain number is allowed.

>>> import fluxjax as fx
>>> float(fx.losses.mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
2.0
>>> fx.mse is fx.losses.mse
True
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from .activations import as_float, logsigmoid, logsoftmax

__all__ = [
    "mae",
    "mse",
    "msle",
    "huber_loss",
    "label_smoothing",
    "crossentropy",
    "logitcrossentropy",
    "binarycrossentropy",
    "logitbinarycrossentropy",
    "kldivergence",
    "poisson_loss",
    "hinge_loss",
    "squared_hinge_loss",
    "dice_coeff_loss",
    "tversky_loss",
    "binary_focal_loss",
    "focal_loss",
    "siamese_contrastive_loss",
]

Agg = Callable[[Array], Array]


def _agg(agg: Agg) -> Agg:
    if not callable(agg):
        raise TypeError(
            f"agg must be a function applied to the per-sample losses, got {agg!r}; pass "
            "e.g. agg=sum or agg=jnp.mean (PyTorch's reduction='sum' is agg=sum)."
        )
    return jnp.sum if agg is sum else agg  # the builtin would sum over the first axis only


_FOREIGN = {
    "reduction": "fluxjax losses reduce with agg= (Flux's name): reduction='sum' is agg=sum, "
    "'mean' agg=jnp.mean (the default), 'none' agg=fx.identity",
    "dims": "the class axis is axis= here, and the last one by default (Flux's dims=1 is "
    "axis=-1, because observations go along the first axis)",
    "size_average": "use agg=jnp.mean or agg=sum",
}


def _friendly(f: Callable[..., Array]) -> Callable[..., Array]:
    """Turn another library's keyword (PyTorch's ``reduction``, Flux's ``dims``) into an
    error naming fluxjax's own, instead of Python's bare "unexpected keyword argument"."""

    @functools.wraps(f)
    def loss(*args: Any, **kwargs: Any) -> Array:
        for k in kwargs:
            if k in _FOREIGN and k not in _params(f):
                raise TypeError(f"{f.__name__}() takes no {k}=: {_FOREIGN[k]}.")
        return f(*args, **kwargs)

    return loss


@functools.cache
def _params(f: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(f).parameters)


def _prep(name: str, yhat: ArrayLike, y: ArrayLike) -> tuple[Array, Array]:
    """``yhat`` as a float array, ``y`` as an array; refuse arrays of different shapes."""
    yhat = as_float(yhat)
    if not isinstance(y, numbers.Number) and jnp.shape(y) != yhat.shape:
        raise ValueError(
            f"{name} expects yhat and y of the same shape, got yhat.shape = {yhat.shape} and "
            f"y.shape = {jnp.shape(y)}; reshape one of them (broadcasting is refused because "
            "it silently gives a wrong loss)" + _indices_hint(yhat, y)
        )
    if jnp.iscomplexobj(y) and not jnp.iscomplexobj(yhat):  # never drop an imaginary part
        yhat = yhat.astype(jnp.result_type(yhat, y))
    return yhat, jnp.asarray(y, yhat.dtype)


def _abs2(x: Array) -> Array:
    """``|x|²``, real also for complex ``x`` (Julia's ``abs2``)."""
    return jnp.real(x * jnp.conj(x)) if jnp.iscomplexobj(x) else x * x


def _indices_hint(yhat: Array, y: Any) -> str:
    """A hint when ``y`` looks like class indices (PyTorch's CrossEntropyLoss habit)."""
    if jnp.ndim(y) == yhat.ndim - 1 and jnp.issubdtype(jnp.result_type(y), jnp.integer):
        k = yhat.shape[-1]
        return f". y looks like class indices: one-hot them, fx.onehotbatch(y, range({k}))"
    return ""


def _eps(eps: float | None, yhat: Array) -> float:
    return jnp.finfo(yhat.dtype).eps if eps is None else eps


@jax.custom_jvp
def _xlogy(x: Array, y: Array) -> Array:
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.log(jnp.where(zero, 1, y)))


@_xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    zero = x == 0
    log_y = jnp.log(jnp.where(zero & (y <= 0), 1, y))
    return _xlogy(x, y), dx * log_y + dy * jnp.where(zero, 0, x / jnp.where(zero, 1, y))


def xlogy(x: ArrayLike, y: ArrayLike) -> Array:
    """``x·log(y)``, but 0 where ``x == 0`` (even where ``y`` is 0).

    Gradients: ``∂x = log(y)`` (as Flux; 0 where ``x == y == 0``), ``∂y = x / y`` (0 where
    ``x == 0``), so no NaN leaks from the masked entries.

    >>> xlogy(jnp.array([0.0, 2.0]), jnp.array([0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    dt = jnp.result_type(x, y)
    dt = dt if jnp.issubdtype(dt, jnp.inexact) else jnp.float32
    return _xlogy(x.astype(dt), y.astype(dt))


def xlogx(x: ArrayLike) -> Array:
    """``x·log(x)``, but 0 where ``x == 0`` (with gradient 0 there instead of NaN).

    >>> xlogx(jnp.array([0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    x = as_float(x)
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.log(jnp.where(zero, 1, x)))


def mae(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Mean absolute error ``agg(|ŷ - y|)``.

    >>> float(mae(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0])))
    1.5
    """
    yhat, y = _prep("mae", yhat, y)
    return _agg(agg)(jnp.abs(yhat - y))


def mse(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Mean squared error ``agg(|ŷ - y|²)``: real, also for complex values (Flux's ``abs2``).

    >>> float(mse(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]), agg=sum))
    5.0
    >>> mse(0, 1 + 1j)
    Array(2., dtype=float32)
    """
    yhat, y = _prep("mse", yhat, y)
    return _agg(agg)(_abs2(yhat - y))


def msle(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, eps: float | None = None) -> Array:
    """Mean squared logarithmic error ``agg(log((ŷ + ϵ) / (y + ϵ))²)``.

    >>> float(msle(jnp.array([jnp.e]), jnp.array([1.0])))
    1.0
    """
    yhat, y = _prep("msle", yhat, y)
    e = _eps(eps, yhat)
    return _agg(agg)(jnp.log((yhat + e) / (y + e)) ** 2)


def huber_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, delta: float = 1.0) -> Array:
    """Huber loss: with ``e = |ŷ - y|``, ``0.5e²`` if ``e < δ`` else ``δ(e - 0.5δ)``.

    The region mask ``e < δ`` is not differentiated; both pieces meet at ``e = δ``.

    >>> huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), agg=lambda l: l).tolist()
    [0.125, 2.5]
    """
    yhat, y = _prep("huber_loss", yhat, y)
    d = jnp.asarray(delta, yhat.dtype)
    e = jnp.abs(yhat - y)
    inside = jax.lax.stop_gradient(e < d).astype(yhat.dtype)
    return _agg(agg)(e**2 * inside * 0.5 + d * (e - 0.5 * d) * (1 - inside))


def label_smoothing(y: ArrayLike, alpha: float, *, axis: int | None = -1) -> Array:
    """Smooth labels: ``y(1 - α) + α / y.shape[axis]``; ``axis=None`` (Flux's ``dims=0``, binary
    labels as numbers): ``y(1 - α) + α/2``. Requires ``0 < α < 1`` strictly.

    >>> label_smoothing(jnp.array([[0.0, 1.0]]), 0.2).tolist()
    [[0.1, 0.9]]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"label_smoothing needs 0 < alpha < 1 (strict), got alpha = {alpha}")
    y = as_float(y)
    if axis is None:
        return y * (1 - alpha) + alpha / 2
    if not -y.ndim <= axis < y.ndim:
        raise ValueError(
            f"label_smoothing: axis={axis} is not an axis of y with shape {y.shape}; pass "
            "axis=-1 for the class axis or axis=None for binary labels given as numbers"
        )
    return y * (1 - alpha) + alpha / y.shape[axis]


def crossentropy(
    yhat: ArrayLike,
    y: ArrayLike,
    *,
    axis: int = -1,
    agg: Agg = jnp.mean,
    eps: float | None = None,
) -> Array:
    """Cross-entropy of probabilities ``ŷ`` (e.g. softmax output): ``agg(-Σ_axis xlogy(y, ŷ + ϵ))``.

    >>> yhat = jnp.array([[0.25, 0.75], [0.5, 0.5]])
    >>> float(crossentropy(yhat, jnp.array([[0.0, 1.0], [1.0, 0.0]])))
    0.4904
    """
    yhat, y = _prep("crossentropy", yhat, y)
    return _agg(agg)(-jnp.sum(xlogy(y, yhat + _eps(eps, yhat)), axis=axis))


def logitcrossentropy(
    yhat: ArrayLike, y: ArrayLike, *, axis: int = -1, agg: Agg = jnp.mean
) -> Array:
    """Cross-entropy of raw scores, stable: ``agg(-Σ_axis y ⊙ logsoftmax(ŷ, axis))``.

    >>> float(logitcrossentropy(jnp.array([[0.0, 0.0]]), jnp.array([[0.0, 1.0]])))
    0.6931
    """
    yhat, y = _prep("logitcrossentropy", yhat, y)
    if jnp.ndim(yhat) and jnp.shape(yhat)[axis] == 1:
        raise ValueError(
            f"logitcrossentropy: yhat has shape {tuple(jnp.shape(yhat))}, one class on axis "
            f"{axis}: the softmax of one score is 1, so the loss is 0 for any output and "
            "nothing trains. For two classes with one output use "
            "fx.logitbinarycrossentropy(yhat, y); otherwise give the model one output per "
            "class and one-hot labels (fx.onehotbatch)."
        )
    return _agg(agg)(-jnp.sum(y * logsoftmax(yhat, axis=axis), axis=axis))


def binarycrossentropy(
    yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, eps: float | None = None
) -> Array:
    """Binary cross-entropy of probabilities: ``agg(-xlogy(y, ŷ+ϵ) - xlogy(1-y, 1-ŷ+ϵ))``.

    >>> float(binarycrossentropy(jnp.array([0.5]), jnp.array([1.0])))
    0.6931
    """
    yhat, y = _prep("binarycrossentropy", yhat, y)
    e = _eps(eps, yhat)
    return _agg(agg)(-xlogy(y, yhat + e) - xlogy(1 - y, 1 - yhat + e))


def logitbinarycrossentropy(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Binary cross-entropy of raw scores, stable: ``agg((1 - y)·ŷ - logσ(ŷ))``.

    >>> float(logitbinarycrossentropy(jnp.array([0.0]), jnp.array([1.0])))
    0.6931
    """
    yhat, y = _prep("logitbinarycrossentropy", yhat, y)
    return _agg(agg)((1 - y) * yhat - logsigmoid(yhat))


def kldivergence(
    yhat: ArrayLike,
    y: ArrayLike,
    *,
    axis: int = -1,
    agg: Agg = jnp.mean,
    eps: float | None = None,
) -> Array:
    """Kullback-Leibler divergence ``agg(Σ_axis xlogx(y)) + crossentropy(ŷ, y)``.

    >>> p = jnp.array([[0.25, 0.75]])
    >>> abs(float(kldivergence(p, p))) < 1e-6
    True
    """
    yhat, y = _prep("kldivergence", yhat, y)
    entropy = _agg(agg)(jnp.sum(xlogx(y), axis=axis))
    return entropy + crossentropy(yhat, y, axis=axis, agg=agg, eps=eps)


def poisson_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Poisson loss ``agg(ŷ - xlogy(y, ŷ))`` (no ϵ, as Flux).

    >>> float(poisson_loss(jnp.array([1.0]), jnp.array([2.0])))
    1.0
    """
    yhat, y = _prep("poisson_loss", yhat, y)
    return _agg(agg)(yhat - xlogy(y, yhat))


def hinge_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Hinge loss ``agg(max(0, 1 - ŷ·y))`` for labels ``y = ±1``.

    >>> float(hinge_loss(jnp.array([0.5, 2.0]), jnp.array([1.0, 1.0])))
    0.25
    """
    yhat, y = _prep("hinge_loss", yhat, y)
    return _agg(agg)(jnp.maximum(0, 1 - yhat * y))


def squared_hinge_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Squared hinge loss ``agg(max(0, 1 - ŷ·y)²)`` for labels ``y = ±1``.

    >>> float(squared_hinge_loss(jnp.array([0.5, 2.0]), jnp.array([1.0, 1.0])))
    0.125
    """
    yhat, y = _prep("squared_hinge_loss", yhat, y)
    return _agg(agg)(jnp.maximum(0, 1 - yhat * y) ** 2)


def dice_coeff_loss(yhat: ArrayLike, y: ArrayLike, *, smooth: float = 1.0) -> Array:
    """Dice loss ``1 - (2Σ(y⊙ŷ) + s) / (Σy² + Σŷ² + s)`` over the whole array (no ``agg``).

    >>> float(dice_coeff_loss(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])))
    0.0
    """
    yhat, y = _prep("dice_coeff_loss", yhat, y)
    return 1 - (2 * jnp.sum(y * yhat) + smooth) / (jnp.sum(y**2) + jnp.sum(yhat**2) + smooth)


def tversky_loss(yhat: ArrayLike, y: ArrayLike, *, beta: float = 0.7) -> Array:
    """Tversky loss ``1 - (Σ(y⊙ŷ) + 1) / (Σ(y⊙ŷ + β(1-y)⊙ŷ + (1-β)y⊙(1-ŷ)) + 1)`` (no ``agg``).

    >>> float(tversky_loss(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])))
    0.0
    """
    yhat, y = _prep("tversky_loss", yhat, y)
    num = jnp.sum(y * yhat) + 1
    den = jnp.sum(y * yhat + beta * (1 - y) * yhat + (1 - beta) * y * (1 - yhat)) + 1
    return 1 - num / den


def binary_focal_loss(
    yhat: ArrayLike,
    y: ArrayLike,
    *,
    agg: Agg = jnp.mean,
    gamma: float = 2,
    eps: float | None = None,
) -> Array:
    """Binary focal loss: ``p = ŷ + ϵ``, ``pₜ = y·p + (1-y)(1-p)``, ``agg((1-pₜ)^γ · -log pₜ)``.

    As in Flux, ϵ is added before forming ``1 - p``, so it reduces ``1 - ŷ``; ``ŷ = 1`` with
    ``y = 0`` takes the log of ``-ϵ`` (NaN here; Julia throws a DomainError).

    >>> float(binary_focal_loss(jnp.array([0.5]), jnp.array([1.0])))
    0.1733
    """
    yhat, y = _prep("binary_focal_loss", yhat, y)
    p = yhat + _eps(eps, yhat)
    p_t = y * p + (1 - y) * (1 - p)
    return _agg(agg)((1 - p_t) ** gamma * -jnp.log(p_t))


def focal_loss(
    yhat: ArrayLike,
    y: ArrayLike,
    *,
    axis: int = -1,
    agg: Agg = jnp.mean,
    gamma: float = 2,
    eps: float | None = None,
) -> Array:
    """Focal loss of probabilities: ``p = ŷ + ϵ``, ``agg(Σ_axis -y·(1-p)^γ·log p)``.

    >>> float(focal_loss(jnp.array([[0.5, 0.5]]), jnp.array([[0.0, 1.0]])))
    0.1733
    """
    yhat, y = _prep("focal_loss", yhat, y)
    p = yhat + _eps(eps, yhat)
    return _agg(agg)(jnp.sum(-y * (1 - p) ** gamma * jnp.log(p), axis=axis))


def siamese_contrastive_loss(
    yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, margin: float = 1.0
) -> Array:
    """Contrastive loss of distances ``ŷ``: ``agg((1-y)·ŷ² + y·max(0, margin - ŷ)²)``.

    >>> float(siamese_contrastive_loss(jnp.array([0.5, 0.5]), jnp.array([0.0, 1.0])))
    0.25
    """
    if margin < 0:
        raise ValueError(f"siamese_contrastive_loss needs margin >= 0, got margin = {margin}")
    yhat, y = _prep("siamese_contrastive_loss", yhat, y)
    return _agg(agg)((1 - y) * yhat**2 + y * jnp.maximum(0, margin - yhat) ** 2)


for _name in __all__:  # every public loss refuses other libraries' keywords by name
    globals()[_name] = _friendly(globals()[_name])
