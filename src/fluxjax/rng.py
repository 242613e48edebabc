"""The global random stream: ``fx.seed(n)`` and the key every initialiser falls back to.

Randomness in fluxjax is explicit wherever it enters (``key=`` on initialisers, ``rng=`` on
the DataLoader), and falls back to one global stream when none is given, as Flux falls back
to Julia's global RNG. ``seed(n)`` resets that stream, so a tutorial-style script is
reproducible::

    >>> import fluxjax as fx
    >>> fx.seed(1); a = fx.randn32(3)
    >>> fx.seed(1); b = fx.randn32(3)
    >>> bool((a == b).all())
    True
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["seed", "next_key", "host_rng"]

_STATE: dict[str, object] = {"seed": None, "key": None, "np": None}


def seed(n: int) -> None:
    """Reset the global random stream (device keys and host-side shuffling) to seed ``n``.

    >>> import fluxjax as fx
    >>> fx.seed(0)
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool):
        raise TypeError(f"seed(n) expects an integer, got {n!r}; pass e.g. fx.seed(0)")
    _STATE["seed"] = int(n)
    _STATE["key"] = None
    _STATE["np"] = np.random.default_rng(int(n))


def _ensure() -> None:
    if _STATE["np"] is None:
        seed(int.from_bytes(os.urandom(4), "little"))


def next_key() -> jax.Array:
    """Return a fresh ``jax.random`` key drawn from the global stream.

    >>> import fluxjax as fx
    >>> fx.seed(3); k1 = fx.rng.next_key(); k2 = fx.rng.next_key()
    >>> bool((k1 != k2).any())
    True
    """
    _ensure()
    if _STATE["key"] is None:
        _STATE["key"] = jax.random.PRNGKey(_STATE["seed"])
    key, sub = jax.random.split(_STATE["key"])
    _STATE["key"] = key
    return sub


def host_rng() -> np.random.Generator:
    """The global host-side ``numpy.random.Generator`` (DataLoader shuffling, sparse_init).

    >>> import fluxjax as fx
    >>> fx.seed(5); isinstance(fx.rng.host_rng().integers(10), int | object)
    True
    """
    _ensure()
    return _STATE["np"]  # type: ignore[return-value]
