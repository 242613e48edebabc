"""Train and test modes: whether layers such as Dropout and BatchNorm are active.

As in Flux, such layers are *active* inside the differentiation calls (``train``,
``gradient``, ``withgradient``, ``pullback``, ...) and inactive elsewhere; ``fx.trainmode``
and ``fx.testmode`` override that per layer.

>>> from fluxjax import mode
>>> mode.istraining()
False
>>> with mode.training():
...     mode.istraining()
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_DEPTH = [0]


@contextlib.contextmanager
def training() -> Iterator[None]:
    """Mark the code inside as running under a differentiation call (layers active)."""
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1


def istraining() -> bool:
    """True inside ``training()``: where Flux's ``istraining()`` is true."""
    return _DEPTH[0] > 0


class _Forward:
    """How many ``forward()`` blocks are open (fluxjax's forward-mode calls nest)."""

    def __init__(self) -> None:
        self.depth = 0


FORWARD = _Forward()


@contextlib.contextmanager
def forward() -> Iterator[None]:
    """Mark the code inside as traced for forward-mode differentiation (``jax.jvp``,
    ``jax.jacfwd``): layers whose fast lowering has a reverse-mode rule only (``Conv``'s)
    use JAX's own rules there. ``fx.hessian`` and ``fx.gradient(..., mode="forward")`` open
    it themselves; wrap a ``jax.jvp`` of a model with a convolution in it.

    >>> import jax, jax.numpy as jnp, fluxjax as fx
    >>> from fluxjax import mode
    >>> m = fx.Conv((1,), 1, 1)
    >>> x = jnp.ones((1, 3, 1))
    >>> with mode.forward():
    ...     y, dy = jax.jvp(m, (x,), (x,))
    >>> dy.shape
    (1, 3, 1)
    """
    FORWARD.depth += 1
    try:
        yield
    finally:
        FORWARD.depth -= 1


def isforward() -> bool:
    """True inside ``forward()``."""
    return FORWARD.depth > 0
