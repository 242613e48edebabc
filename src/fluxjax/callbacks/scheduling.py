"""Scheduled callbacks: those whose firing steps ``fx.train`` knows in advance, so it can run
the steps in between fused on the device. ``Scheduled`` is the protocol, ``every(n, f)`` the
plainest of them; ``throttle``, the loggers, ``fx.metrics`` and ``fx.Checkpointer`` follow it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..counts import count as check_count
from ..naming import name_of
from .context import StepContext

__all__ = ["Scheduled", "every", "takes_context"]


class Scheduled:
    """A callback whose firing steps ``fx.train`` can know in advance, so it can run the
    steps in between fused on the device.

    Subclasses implement ``steps_until`` and ``__call__`` (and may override ``finish``):

    * ``steps_until(step, seconds_per_step) -> int``: after ``step`` steps of this ``train``
      call, how many more steps may run before this callback must be called (at least 1).
      ``seconds_per_step`` is the measured time of one step (``None`` before it is known).
    * ``__call__(ctx)``: called with the ``StepContext`` of the step that ends that span,
      the model holding that step's arrays. ``fx.stop()`` and ``fx.skip()`` work as in any
      callback.
    * ``finish()``: called once when the ``train`` call ends: normally, by ``fx.stop()`` or
      by an exception (flush files, run a pending call). Before it, ``train`` sets
      ``steps_taken`` to the number of steps that call took.
    * ``at_end = True``: ``train`` also calls it after the last step of a run that ends
      normally or by ``fx.stop()`` (when it was not due there anyway).

    >>> import fluxjax as fx
    >>> isinstance(fx.every(10, print), fx.Scheduled)
    True
    """

    steps_taken: int | None = None
    at_end: bool = False  # True: also called after a run's last step, if not already
    grads: bool = False  # True: its StepContext carries the step's gradients (ctx.grads)

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        raise NotImplementedError

    def __call__(self, ctx: StepContext) -> Any:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once when the ``train`` call ends; does nothing by default."""

    def fire(self, ctx: StepContext) -> Any:
        """How ``train`` calls it: ``self(ctx)`` unless a subclass says otherwise."""
        return self(ctx)


def takes_context(f: Any) -> bool:
    """True when ``f`` can be called with one positional argument (a ``StepContext``)."""
    try:
        sig = inspect.signature(getattr(f, "__wrapped__", f))
    except (TypeError, ValueError):
        return False
    kinds = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(p.kind in kinds for p in sig.parameters.values())


class every(Scheduled):  # noqa: N801  (a function-like name, as fx.throttle)
    """``every(n, f)``: call ``f`` after steps ``n, 2n, 3n, ...`` of each ``train`` call
    (Keras's and Lightning's "every n steps"). ``f`` takes no argument or a
    ``StepContext``. Steps between run fused where the data allow. ``grads=True``: the
    context's ``ctx.grads`` holds that step's gradients (the compiled program then keeps
    the last step's gradients on the device; see ``StepContext``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), False)
    >>> x = jnp.ones((2, 1))
    >>> seen = []
    >>> _ = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x)] * 10,
    ...              fx.Descent(0.1), cb=fx.every(4, lambda ctx: seen.append(ctx.step)))
    >>> seen
    [4, 8]
    """

    def __init__(self, n: int, f: Callable[..., Any], *, grads: bool = False) -> None:
        n = check_count(n, f"every(n, f): n must be a positive int (steps), got {n!r}.")
        if not callable(f):
            raise TypeError(f"every(n, f): f must be a function, got {f!r}.")
        self.n, self.f, self.grads = int(n), f, bool(grads)
        self._ctx = takes_context(f)
        functools.update_wrapper(self, f, updated=())

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        return self.n - step % self.n

    def __call__(self, ctx: StepContext) -> Any:
        return self.f(ctx) if self._ctx else self.f()

    def __repr__(self) -> str:
        return f"every({self.n}, {name_of(self.f)})"
