"""Signals a callback (or the loss) raises to steer ``fx.train``: ``stop`` ends training after
this step, ``skip`` skips the rest of this step (Flux's ``Flux.stop()`` and ``Flux.skip()``).
Their compiled cousin, ``fx.skip_when(condition)`` (skip the update when a traced condition
holds), lives with the compiled step in ``fluxjax.engine.step``."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["StopException", "SkipException", "stop", "skip"]


class StopException(Exception):
    """Raised by ``fx.stop()``: ``fx.train`` catches it and ends training (Flux's ``stop``).

    >>> import fluxjax as fx
    >>> issubclass(fx.StopException, Exception)
    True
    """


class SkipException(Exception):
    """Raised by ``fx.skip()``: ``fx.train`` catches it and moves on to the next batch.

    >>> import fluxjax as fx
    >>> issubclass(fx.SkipException, Exception)
    True
    """


def stop() -> NoReturn:
    """End training from a callback or the loss: raises ``StopException``, which ``fx.train``
    catches (Flux's ``Flux.stop()``).

    >>> import fluxjax as fx
    >>> try:
    ...     fx.stop()
    ... except fx.StopException:
    ...     print("stopped")
    stopped
    """
    raise StopException("training stopped by fx.stop()")


def skip() -> NoReturn:
    """Skip the rest of this step: raises ``SkipException``, which ``fx.train`` catches and
    continues with the next batch (Flux's ``Flux.skip()``). As in Flux, callbacks run after
    the update, so skipping from a callback does not undo it; from the loss, it prevents it.

    >>> import fluxjax as fx
    >>> try:
    ...     fx.skip()
    ... except fx.SkipException:
    ...     print("skipped")
    skipped
    """
    raise SkipException("step skipped by fx.skip()")
