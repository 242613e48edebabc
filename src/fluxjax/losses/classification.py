"""Classification losses: cross-entropies, label smoothing, KL divergence, hinge, Dice,
Tversky, focal and the siamese contrastive loss (Flux's formulas and defaults; see
``fluxjax.losses``)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from ..activations import as_float, logsigmoid, logsoftmax
from .common import Agg, check_agg, default_eps, friendly, prepare, xlogx, xlogy

__all__ = [
    "label_smoothing",
    "crossentropy",
    "logitcrossentropy",
    "binarycrossentropy",
    "logitbinarycrossentropy",
    "kldivergence",
    "hinge_loss",
    "squared_hinge_loss",
    "dice_coeff_loss",
    "tversky_loss",
    "binary_focal_loss",
    "focal_loss",
    "siamese_contrastive_loss",
]


@friendly
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


@friendly
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
    yhat, y = prepare("crossentropy", yhat, y)
    return check_agg(agg)(-jnp.sum(xlogy(y, yhat + default_eps(eps, yhat)), axis=axis))


@friendly
def logitcrossentropy(
    yhat: ArrayLike, y: ArrayLike, *, axis: int = -1, agg: Agg = jnp.mean
) -> Array:
    """Cross-entropy of raw scores, stable: ``agg(-Σ_axis y ⊙ logsoftmax(ŷ, axis))``.

    >>> float(logitcrossentropy(jnp.array([[0.0, 0.0]]), jnp.array([[0.0, 1.0]])))
    0.6931
    """
    yhat, y = prepare("logitcrossentropy", yhat, y)
    if jnp.ndim(yhat) and jnp.shape(yhat)[axis] == 1:
        raise ValueError(
            f"logitcrossentropy: yhat has shape {tuple(jnp.shape(yhat))}, one class on axis "
            f"{axis}: the softmax of one score is 1, so the loss is 0 for any output and "
            "nothing trains. For two classes with one output use "
            "fx.logitbinarycrossentropy(yhat, y); otherwise give the model one output per "
            "class and one-hot labels (fx.onehotbatch)."
        )
    return check_agg(agg)(-jnp.sum(y * logsoftmax(yhat, axis=axis), axis=axis))


@friendly
def binarycrossentropy(
    yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, eps: float | None = None
) -> Array:
    """Binary cross-entropy of probabilities: ``agg(-xlogy(y, ŷ+ϵ) - xlogy(1-y, 1-ŷ+ϵ))``.

    >>> float(binarycrossentropy(jnp.array([0.5]), jnp.array([1.0])))
    0.6931
    """
    yhat, y = prepare("binarycrossentropy", yhat, y)
    e = default_eps(eps, yhat)
    return check_agg(agg)(-xlogy(y, yhat + e) - xlogy(1 - y, 1 - yhat + e))


@friendly
def logitbinarycrossentropy(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Binary cross-entropy of raw scores, stable: ``agg((1 - y)·ŷ - logσ(ŷ))``.

    >>> float(logitbinarycrossentropy(jnp.array([0.0]), jnp.array([1.0])))
    0.6931
    """
    yhat, y = prepare("logitbinarycrossentropy", yhat, y)
    return check_agg(agg)((1 - y) * yhat - logsigmoid(yhat))


@friendly
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
    yhat, y = prepare("kldivergence", yhat, y)
    entropy = check_agg(agg)(jnp.sum(xlogx(y), axis=axis))
    return entropy + crossentropy(yhat, y, axis=axis, agg=agg, eps=eps)


@friendly
def hinge_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Hinge loss ``agg(max(0, 1 - ŷ·y))`` for labels ``y = ±1``.

    >>> float(hinge_loss(jnp.array([0.5, 2.0]), jnp.array([1.0, 1.0])))
    0.25
    """
    yhat, y = prepare("hinge_loss", yhat, y)
    return check_agg(agg)(jnp.maximum(0, 1 - yhat * y))


@friendly
def squared_hinge_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Squared hinge loss ``agg(max(0, 1 - ŷ·y)²)`` for labels ``y = ±1``.

    >>> float(squared_hinge_loss(jnp.array([0.5, 2.0]), jnp.array([1.0, 1.0])))
    0.125
    """
    yhat, y = prepare("squared_hinge_loss", yhat, y)
    return check_agg(agg)(jnp.maximum(0, 1 - yhat * y) ** 2)


@friendly
def dice_coeff_loss(yhat: ArrayLike, y: ArrayLike, *, smooth: float = 1.0) -> Array:
    """Dice loss ``1 - (2Σ(y⊙ŷ) + s) / (Σy² + Σŷ² + s)`` over the whole array (no ``agg``).

    >>> float(dice_coeff_loss(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])))
    0.0
    """
    yhat, y = prepare("dice_coeff_loss", yhat, y)
    return 1 - (2 * jnp.sum(y * yhat) + smooth) / (jnp.sum(y**2) + jnp.sum(yhat**2) + smooth)


@friendly
def tversky_loss(yhat: ArrayLike, y: ArrayLike, *, beta: float = 0.7) -> Array:
    """Tversky loss ``1 - (Σ(y⊙ŷ) + 1) / (Σ(y⊙ŷ + β(1-y)⊙ŷ + (1-β)y⊙(1-ŷ)) + 1)`` (no ``agg``).

    >>> float(tversky_loss(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])))
    0.0
    """
    yhat, y = prepare("tversky_loss", yhat, y)
    num = jnp.sum(y * yhat) + 1
    den = jnp.sum(y * yhat + beta * (1 - y) * yhat + (1 - beta) * y * (1 - yhat)) + 1
    return 1 - num / den


@friendly
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
    yhat, y = prepare("binary_focal_loss", yhat, y)
    p = yhat + default_eps(eps, yhat)
    p_t = y * p + (1 - y) * (1 - p)
    return check_agg(agg)((1 - p_t) ** gamma * -jnp.log(p_t))


@friendly
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
    yhat, y = prepare("focal_loss", yhat, y)
    p = yhat + default_eps(eps, yhat)
    return check_agg(agg)(jnp.sum(-y * (1 - p) ** gamma * jnp.log(p), axis=axis))


@friendly
def siamese_contrastive_loss(
    yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, margin: float = 1.0
) -> Array:
    """Contrastive loss of distances ``ŷ``: ``agg((1-y)·ŷ² + y·max(0, margin - ŷ)²)``.

    >>> float(siamese_contrastive_loss(jnp.array([0.5, 0.5]), jnp.array([0.0, 1.0])))
    0.25
    """
    if margin < 0:
        raise ValueError(f"siamese_contrastive_loss needs margin >= 0, got margin = {margin}")
    yhat, y = prepare("siamese_contrastive_loss", yhat, y)
    return check_agg(agg)((1 - y) * yhat**2 + y * jnp.maximum(0, margin - yhat) ** 2)
