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

import jax.numpy as jnp  # noqa: F401  (the examples here use it)

from . import classification, regression
from .classification import *  # noqa: F403
from .common import xlogx, xlogy  # noqa: F401  (fluxjax.losses.xlogy, as Flux.Losses.xlogy)
from .regression import *  # noqa: F403

__all__ = regression.__all__ + classification.__all__
