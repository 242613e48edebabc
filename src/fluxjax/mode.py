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
