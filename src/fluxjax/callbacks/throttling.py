"""Flux's ``throttle``: run a function at most once every ``timeout`` seconds; as a ``train``
callback, a scheduled one whose spans are sized from the measured step time."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

from ..naming import name_of
from .context import StepContext
from .scheduling import Scheduled, takes_context

__all__ = ["throttle", "Throttled"]


class Throttled(Scheduled):
    """The callable ``throttle`` returns; ``flush()`` runs a pending trailing call now.

    As a ``train`` callback it is scheduled: the first call after step 1, then after spans
    of steps sized from the measured step time so that a span takes at most ``FRACTION`` of
    the window; ``f`` therefore runs at most ``timeout * FRACTION`` seconds later than in a
    step-by-step loop, and the steps in between run fused.
    """

    FRACTION = 0.01

    def __init__(self, f, timeout, leading, trailing, clock):
        self.f, self.timeout, self.leading, self.trailing = f, timeout, leading, trailing
        self._clock = clock
        self._ctx = takes_context(f)
        self.at_end = trailing  # the last step's call is the one a trailing call keeps
        self._mark = (0, 0.0)  # (step, clock) when train last asked for a span
        self._ready = True  # Flux's `cooldown`: the next call opens a window
        self._later: Callable[[], Any] | None = None
        self._result: Any = None
        self._window_end = -math.inf
        functools.update_wrapper(self, f, updated=())

    def _store(self, *args: Any, **kwargs: Any) -> None:
        self._result = self.f(*args, **kwargs)

    def _observe(self, now: float) -> None:
        # Flux's timer task runs when the caller yields, i.e. at the next call: catch up here.
        while not self._ready and now >= self._window_end:
            if self._later is None:
                self._ready = True
            else:
                self.flush()

    def flush(self) -> Any:
        """Run the pending trailing call now, if any (e.g. when training ends); its window
        restarts. Returns the stored result."""
        later, self._later = self._later, None
        if later is not None:
            later()
            self._window_end = self._clock() + self.timeout
        return self._result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._observe(self._clock())
        if self._ready:
            if self.leading:
                self._result = self.f(*args, **kwargs)
            else:  # deferred to the window's end; as in Flux, its result is not kept
                self._later = functools.partial(self.f, *args, **kwargs)
            self._ready = False
            self._window_end = self._clock() + self.timeout
        elif self.trailing:
            self._later = functools.partial(self._store, *args, **kwargs)  # keep only the last
        return self._result

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        now = self._clock()
        if step == 0:
            self._mark = (0, now)
            return 1
        # the step time by this throttle's own clock, and by the engine's measurement:
        # the larger gives the shorter, safer span
        own = (now - self._mark[1]) / max(1, step - self._mark[0])
        self._mark = (step, now)
        sps = max(own, seconds_per_step or 0.0)
        if sps <= 0:
            return 1
        return max(1, int(self.timeout * self.FRACTION / sps))

    def fire(self, ctx: StepContext) -> Any:
        return self(ctx) if self._ctx else self()

    def finish(self) -> None:
        """At the end of a ``train`` call: run a pending trailing call whose window has
        ended; after a call of several steps, run a pending one now (the run is over). A
        one-step call (the per-epoch loop) leaves it for the next call, as Flux's timer
        would run it only once the window ends."""
        if (self.steps_taken or 0) > 1:
            self.flush()
        else:
            self._observe(self._clock())

    def __repr__(self) -> str:
        return (
            f"throttle({name_of(self.f)}, {self.timeout}, leading={self.leading}, "
            f"trailing={self.trailing})"
        )


def throttle(
    f: Callable[..., Any],
    timeout: float,
    leading: bool = True,
    trailing: bool = False,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[..., Any]:
    """Wrap ``f`` so that it runs at most once every ``timeout`` seconds (Flux's ``throttle``).

    The first call opens a window of ``timeout`` seconds (measured from when ``f`` returns):

    - ``leading=True``: that call runs ``f`` at once; the others in the window are dropped.
    - ``trailing=True``: the *last* call made during a window runs when the window ends, and
      starts a new window; windows keep chaining while calls arrive.
    - ``leading=False``: the window's first call is deferred to its end, and, as in Flux, the
      value it returns is not stored (only a ``trailing`` call's is).

    Every call returns the result of the latest stored run of ``f`` (``None`` before the
    first), so a throttled callback returns a possibly stale value.

    **Departure (no background thread):** Flux runs the window's end on a Julia task, which
    only gets to run when the caller yields — in a training loop, at the next throttled call.
    fluxjax follows that rule exactly, without a thread: the end of a window is noticed at the
    next call, where a pending trailing call runs first. A trailing call still pending when
    calls stop runs only if you call ``throttled.flush()``. ``clock`` (default
    ``time.monotonic``) is what measures time, so tests can drive it.

    >>> import fluxjax as fx
    >>> now = [0.0]
    >>> show = fx.throttle(lambda t: f"ran at {t}", 1.0, clock=lambda: now[0])
    >>> out = []
    >>> for t in [0.0, 0.4, 0.9, 1.0, 1.7]:
    ...     now[0] = t
    ...     out.append(show(t))
    >>> out
    ['ran at 0.0', 'ran at 0.0', 'ran at 0.0', 'ran at 1.0', 'ran at 1.0']
    """
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout >= 0:
        raise ValueError(f"throttle needs a timeout in seconds >= 0, got {timeout!r}")
    if not callable(f):
        raise TypeError(f"throttle needs a function to wrap, got {f!r}")
    return Throttled(f, float(timeout), bool(leading), bool(trailing), clock)
