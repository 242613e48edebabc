"""Regression losses: ``mae``, ``mse``, ``msle``, ``huber_loss`` and ``poisson_loss``
(Flux's formulas and defaults; see ``fluxjax.losses``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from .common import Agg, abs2, check_agg, default_eps, friendly, prepare, xlogy

__all__ = ["mae", "mse", "msle", "huber_loss", "poisson_loss"]


@friendly
def mae(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Mean absolute error ``agg(|ŷ - y|)``.

    >>> float(mae(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0])))
    1.5
    """
    yhat, y = prepare("mae", yhat, y)
    return check_agg(agg)(jnp.abs(yhat - y))


@friendly
def mse(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Mean squared error ``agg(|ŷ - y|²)``: real, also for complex values (Flux's ``abs2``).

    >>> float(mse(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]), agg=sum))
    5.0
    >>> mse(0, 1 + 1j)
    Array(2., dtype=float32)
    """
    yhat, y = prepare("mse", yhat, y)
    return check_agg(agg)(abs2(yhat - y))


@friendly
def msle(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, eps: float | None = None) -> Array:
    """Mean squared logarithmic error ``agg(log((ŷ + ϵ) / (y + ϵ))²)``.

    >>> float(msle(jnp.array([jnp.e]), jnp.array([1.0])))
    1.0
    """
    yhat, y = prepare("msle", yhat, y)
    e = default_eps(eps, yhat)
    return check_agg(agg)(jnp.log((yhat + e) / (y + e)) ** 2)


@friendly
def huber_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean, delta: float = 1.0) -> Array:
    """Huber loss: with ``e = |ŷ - y|``, ``0.5e²`` if ``e < δ`` else ``δ(e - 0.5δ)``.

    The region mask ``e < δ`` is not differentiated; both pieces meet at ``e = δ``.

    >>> huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), agg=lambda l: l).tolist()
    [0.125, 2.5]
    """
    yhat, y = prepare("huber_loss", yhat, y)
    d = jnp.asarray(delta, yhat.dtype)
    e = jnp.abs(yhat - y)
    inside = jax.lax.stop_gradient(e < d).astype(yhat.dtype)
    return check_agg(agg)(e**2 * inside * 0.5 + d * (e - 0.5 * d) * (1 - inside))


@friendly
def poisson_loss(yhat: ArrayLike, y: ArrayLike, *, agg: Agg = jnp.mean) -> Array:
    """Poisson loss ``agg(ŷ - xlogy(y, ŷ))`` (no ϵ, as Flux).

    >>> float(poisson_loss(jnp.array([1.0]), jnp.array([2.0])))
    1.0
    """
    yhat, y = prepare("poisson_loss", yhat, y)
    return check_agg(agg)(yhat - xlogy(y, yhat))
