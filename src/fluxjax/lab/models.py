"""The models of the laboratory: the tutorial's seed network, the 2-D fit network, a Point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from ..activations import sigmoid
from ..layers import Chain, Dense
from ..module import Module

# ---- models ----------------------------------------------------------------------------------


def seed_model() -> Chain:
    """The tutorial's ``Chain(Dense(1, 4, σ), Dense(4, 1))`` with its hand-set weights: first
    layer 5, −5, −5, −5, second layer 5, −2, 5, −5, biases 0.

    >>> from fluxjax import lab
    >>> lab.seed_model()[1].weight.tolist()
    [[5.0, -2.0, 5.0, -5.0]]
    """
    m = Chain(Dense(1, 4, sigmoid), Dense(4, 1))
    m[0].weight = [[5.0], [-5.0], [-5.0], [-5.0]]
    m[0].bias = [0.0, 0.0, 0.0, 0.0]
    m[1].weight = [[5.0, -2.0, 5.0, -5.0]]
    m[1].bias = [0.0]
    return m


def fit2d_model() -> Chain:
    """``Chain(Dense(2, 10, σ), Dense(10, 1))``, the tutorial's 2-D model (random init)."""
    return Chain(Dense(2, 10, sigmoid), Dense(10, 1))


class Point(Module):
    """One trainable 2-vector ``xy``: the parameters of a 2-D test function.

    >>> from fluxjax import lab
    >>> lab.Point([1.0, 2.0]).xy.tolist()
    [1.0, 2.0]
    """

    def __init__(self, xy: Sequence[float]) -> None:
        self.xy = jnp.asarray(xy, jnp.float32)

    def __call__(self) -> Any:
        return self.xy
