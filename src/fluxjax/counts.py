"""One answer to "is this a count?", for every API that takes a number of steps, calls,
observations, units or files: an ``int`` or a NumPy integer, never a ``bool``, of at least
``minimum``. Every such argument is checked here, so the same value gets the same answer
everywhere (``fx.every(np.int64(3), f)`` and ``fx.patience(f, np.int64(3))`` alike).

>>> import numpy as np
>>> from fluxjax.counts import count, is_count
>>> is_count(3), is_count(np.int64(3)), is_count(True), is_count(2.0), is_count(0)
(True, True, False, False, False)
>>> count(np.int64(4), "n must be a positive int")
4
>>> count(0, "n must be a positive int, got 0")
Traceback (most recent call last):
...
ValueError: n must be a positive int, got 0
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["count", "is_count", "is_int"]


def is_int(value: Any) -> bool:
    """True for a Python ``int`` or a NumPy integer; ``False`` for a ``bool``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_count(value: Any, minimum: int = 1) -> bool:
    """True for an integer (see :func:`is_int`) of at least ``minimum``."""
    return is_int(value) and bool(value >= minimum)


def count(value: Any, message: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` when it is a count of at least ``minimum``; otherwise
    ``ValueError(message)``, where the caller's message names the value and the fix."""
    if not is_count(value, minimum):
        raise ValueError(message)
    return int(value)
