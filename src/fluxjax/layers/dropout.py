"""Dropout: the layers ``Dropout`` and ``AlphaDropout`` and the function ``dropout``.

Both layers have an ``active`` attribute (``None``: automatic, active inside ``fx.train``,
``fx.gradient`` and the other differentiation calls; ``True``/``False`` as set by
``fx.trainmode`` / ``fx.testmode``) and draw from their own key, a plain array attribute
that ``train`` and ``gradient`` write back.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..module import Module
from ..rng import next_key
from ._common import assign_state, is_active, shape_error

__all__ = ["Dropout", "AlphaDropout", "dropout"]


def _check_prob(p: Any, layer: str) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating) or not 0 <= p <= 1:
        raise ValueError(f"{layer}(p): p must be a probability in [0, 1], got {p!r}.")
    return float(p)


def _mask_shape(x: Any, dims: tuple[int, ...] | None) -> tuple[int, ...]:
    if dims is None:
        return tuple(x.shape)
    keep = {d % x.ndim for d in dims}
    return tuple(s if i in keep else 1 for i, s in enumerate(x.shape))


class _Random(Module):
    """A layer drawing from its own key (a raw uint32 key, split and advanced per call)."""

    def _setup(self, p: Any, key: Any) -> None:
        self.p = _check_prob(p, type(self).__name__)
        self.key = next_key() if key is None else jnp.asarray(key, jnp.uint32)
        self.active = None

    def _draw(self, shape: tuple[int, ...]) -> Any:
        new, sub = jax.random.split(self.key)
        assign_state(self, "key", new)
        return jax.random.uniform(sub, shape)

    def trainable(self) -> tuple[str, ...]:
        return ()


class Dropout(_Random):
    """Dropout, Flux's ``Dropout(p; dims)``: active, ``y = x ⊙ mask`` with
    ``mask = (u > p)/(1 − p)``, ``u ~ U[0, 1)`` drawn fresh each call; inactive, ``y = x``.

    ``dims`` (an axis or a tuple of axes, default all) are the axes along which the mask
    varies; it is shared along the others (``dims=-1`` on images drops whole channels, one
    mask for the whole batch, as Flux's ``dims=3`` on WHCN). The key is drawn from
    ``fx.seed``'s stream (or ``key=``), advanced by every active call.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> d = fx.Dropout(0.5)
    >>> d
    Dropout(0.5)
    >>> d(jnp.ones(4))  # inactive outside train/gradient
    Array([1., 1., 1., 1.], dtype=float32)
    >>> sorted(set(fx.trainmode(d)(jnp.ones(1000)).tolist()))
    [0.0, 2.0]
    """

    def __init__(self, p: float, *, dims: Any = None, key: Any = None) -> None:
        self._setup(p, key)
        if dims is not None:
            dims = (dims,) if isinstance(dims, int | np.integer) else tuple(dims)
        self.dims = dims

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        if not is_active(self) or self.p == 0:
            return x
        if self.dims is not None and any(not -x.ndim <= d < x.ndim for d in self.dims):
            raise shape_error(self._show(), f"at least {max(self.dims) + 1} axes (dims)", x)
        if self.p == 1:
            return jnp.zeros_like(x)
        return _apply(x, self.p, self._draw(_mask_shape(x, self.dims)))

    def _show(self) -> str:
        text = f"Dropout({self.p}"
        if self.dims is not None:
            text += f", dims={self.dims[0] if len(self.dims) == 1 else self.dims}"
        return text + ")"


class AlphaDropout(_Random):
    """Alpha dropout (for selu networks), Flux's ``AlphaDropout(p)``: active,
    ``y = A·(u > p ? x : α′) + B`` with ``α′ = −1.7580993408473766``,
    ``A = 1/√((1 − p)(1 + p·α′²))``, ``B = −A·α′·p``, keeping mean and variance.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.AlphaDropout(0.2)(jnp.ones(3))
    Array([1., 1., 1.], dtype=float32)
    """

    ALPHA = -1.7580993408473766

    def __init__(self, p: float, *, key: Any = None) -> None:
        self._setup(p, key)

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        if not is_active(self) or self.p == 0:
            return x
        if self.p == 1:
            return jnp.zeros_like(x)
        p, al = self.p, self.ALPHA
        a = 1 / np.sqrt((1 - p) * (1 + p * al**2))
        b = -a * al * p
        u = self._draw(tuple(x.shape))
        return (a * jnp.where(u > p, x, jnp.asarray(al, x.dtype)) + b).astype(x.dtype)

    def _show(self) -> str:
        return f"AlphaDropout({self.p})"


def _apply(x: Any, p: float, u: Any) -> Any:
    keep = (u > p).astype(x.dtype)
    return x * (keep / jnp.asarray(1 - p, x.dtype))


def dropout(x: Any, p: float, *, dims: Any = None, active: bool = True, key: Any = None) -> Any:
    """Flux's functional ``dropout(x, p; dims=:, active=true)``: ``x ⊙ (u > p)/(1 − p)``
    with ``u ~ U[0, 1)`` of the shape ``Dropout`` uses (``dims`` the axes along which the
    mask varies); ``x`` itself when ``active`` is false or ``p == 0``, zeros when ``p == 1``.
    ``key`` is a JAX key; ``None`` draws one from ``fx.seed``'s stream (inside a function
    you compile, pass a key: a drawn one would be frozen into the program).

    >>> import jax, jax.numpy as jnp, fluxjax as fx
    >>> y = fx.dropout(jnp.ones(1000), 0.5, key=jax.random.key(0))
    >>> sorted(set(y.tolist())), fx.dropout(jnp.ones(2), 0.5, active=False).tolist()
    ([0.0, 2.0], [1.0, 1.0])
    """
    x = jnp.asarray(x)
    p = _check_prob(p, "dropout")
    if not active or p == 0:
        return x
    if p == 1:
        return jnp.zeros_like(x)
    if dims is not None:
        dims = (dims,) if isinstance(dims, int | np.integer) else tuple(dims)
        if any(not -x.ndim <= d < x.ndim for d in dims):
            raise shape_error("dropout", f"at least {max(dims) + 1} axes (dims)", x)
    key = next_key() if key is None else key
    return _apply(x, p, jax.random.uniform(key, _mask_shape(x, dims)))
