"""Callbacks: Flux's ``throttle``, ``stop``/``skip``, ``patience``, ``early_stopping`` and
``plateau``, plus ``History`` and the ``StepContext`` a training step hands to callbacks.

Callbacks are host-side Python, called by ``fx.train`` after every step, as in Flux:

>>> import fluxjax as fx
>>> losses = iter([3.0, 4.0, 5.0])  # a loss that gets worse
>>> es = fx.early_stopping(lambda: next(losses), 2)
>>> [es() for _ in range(3)]
[False, False, True]
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from typing import Any, NoReturn

from .context import History, StepContext  # noqa: F401  (re-exported)
from .counts import count as check_count

__all__ = [
    "Scheduled",
    "every",
    "throttle",
    "patience",
    "early_stopping",
    "plateau",
    "History",
    "StepContext",
    "StopException",
    "SkipException",
    "stop",
    "skip",
]


# ---- stop / skip -----------------------------------------------------------------------------


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


# ---- scheduled callbacks -------------------------------------------------------------------


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
        return f"every({self.n}, {_name(self.f)})"


# ---- throttle --------------------------------------------------------------------------------


class _Throttled(Scheduled):
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
            f"throttle({_name(self.f)}, {self.timeout}, leading={self.leading}, "
            f"trailing={self.trailing})"
        )


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or repr(f)


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
    return _Throttled(f, float(timeout), bool(leading), bool(trailing), clock)


# ---- patience, early_stopping, plateau -------------------------------------------------------


def patience(predicate: Callable[..., Any], wait: int) -> Callable[..., bool]:
    """A callback that returns ``True`` once ``predicate`` has held ``wait`` calls in a row.

    Each call passes its arguments to ``predicate``: a true result adds one to a counter, a
    false one resets it to 0; the call returns ``counter >= wait``, so once triggered it keeps
    returning ``True`` while the predicate holds (Flux's ``patience``).

    >>> import fluxjax as fx
    >>> trigger = fx.patience(lambda x: x > 0, 3)
    >>> [trigger(x) for x in [1, 1, 0, 1, 1, 1, 1]]
    [False, False, False, False, False, True, True]
    """
    wait = check_count(wait, f"patience needs a positive int wait (number of calls), got {wait!r}")
    count = 0

    def on_trigger(*args: Any, **kwargs: Any) -> bool:
        nonlocal count
        count = count + 1 if predicate(*args, **kwargs) else 0
        return count >= wait

    def loadstate(state: dict[str, Any]) -> None:
        nonlocal count
        count = int(state["count"])

    # a checkpoint saves and restores where the trigger stands (fx.Checkpointer(track=...))
    on_trigger.state = lambda: {"count": count}  # type: ignore[attr-defined]
    on_trigger.loadstate = loadstate  # type: ignore[attr-defined]
    return on_trigger


def _with_state(trig: Any, name: str, get: Callable[[], Any], put: Callable[[Any], None]) -> Any:
    """Add the closure value ``name`` to a ``patience`` trigger's ``state()``/``loadstate``."""
    inner_state, inner_load = trig.state, trig.loadstate

    def loadstate(state: dict[str, Any]) -> None:
        put(state[name])
        inner_load(state)

    trig.state = lambda: {**inner_state(), name: _plain(get())}
    trig.loadstate = loadstate
    return trig


def _plain(v: Any) -> Any:
    """A score as a JSON value (a device or NumPy scalar becomes a float)."""
    if isinstance(v, int | float | str) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _minus(best: Any, score: Any) -> Any:
    return best - score


def _score(f: Callable[..., Any] | str, owner: str) -> Callable[..., Any]:
    """``f`` itself, or for a metric's name a function reading ``ctx.metrics[name]``."""
    if not isinstance(f, str):
        return f
    name = f

    def read(ctx: Any = None, *args: Any, **kwargs: Any) -> float:
        metrics = getattr(ctx, "metrics", None)
        if metrics is None or name not in metrics:
            have = sorted(metrics) if metrics is not None else "no StepContext"
            raise ValueError(
                f"{owner}({name!r}, ...): no metric {name!r} at this step (have {have}). Call "
                f"it with the StepContext, after fx.metrics(every=n, {name}=...) in cb and on "
                f"the same schedule, e.g. fx.every(n, lambda ctx: stopper(ctx) and fx.stop())."
            )
        return float(metrics[name])

    return read


def early_stopping(
    f: Callable[..., Any] | str,
    delay: int,
    *,
    distance: Callable[[Any, Any], Any] = _minus,
    init_score: Any = math.inf,
    min_dist: float = 0.0,
    restore_best: bool = False,
) -> Callable[..., bool]:
    """Return ``True`` once the score ``f(...)`` has not improved for ``delay`` calls in a row.

    ``restore_best=True`` (Keras's ``restore_best_weights``): called with the
    ``StepContext``, it copies the model's arrays (on the device) at each best score and puts
    them back into the model when it returns ``True``, so ``es(ctx) and fx.stop()`` ends
    training on the best weights.

    Each call computes ``score = f(*args)`` and ``d = distance(best, score)`` (default
    ``best - score``: positive means a lower, better score). If ``d >= 0``, ``best = score``.
    The call counts as "no improvement" when ``d < min_dist`` (strict, as Flux's code; an
    equal score with ``min_dist=0`` is an improvement and resets the count); it returns
    ``True`` after ``delay`` such calls in a row (see ``patience``). As in Flux, a NaN score
    counts as an improvement and becomes ``best``, and so does the score after it.

    ``init_score`` is the initial ``best``: ``inf`` as in Flux v0.16.8+, so the first call
    always improves. Flux v0.12.4 to v0.16.7 used ``0``: then a positive score never beats
    ``best = 0`` and the callback fires after exactly ``delay`` calls whatever the loss does;
    pass ``init_score=0`` to get that behaviour. To maximise a score (an accuracy), pass
    ``distance=lambda best, score: score - best`` and ``init_score=-math.inf``.

    ``f`` may be a metric's name (``"val_loss"``): the callback is then called with a
    ``StepContext`` and reads ``ctx.metrics[name]``, put there by ``fx.metrics`` earlier in
    ``cb`` at the same step (see ``fx.metrics`` for the pattern).

    >>> import fluxjax as fx
    >>> losses = iter([1.0, 2.0, 3.0, 4.0, 5.0])  # getting worse
    >>> es = fx.early_stopping(lambda: next(losses), 3)
    >>> [es() for _ in range(4)]
    [False, False, False, True]
    >>> losses = iter([5.0, 4.0, 3.0])  # getting better, but v0.12's init_score=0
    >>> es = fx.early_stopping(lambda: next(losses), 3, init_score=0)
    >>> [es() for _ in range(3)]
    [False, False, True]
    """
    f = _score(f, "early_stopping")
    best = init_score
    if restore_best:
        from .reacting import Best

        kept = Best()

    def trigger(*args: Any, **kwargs: Any) -> bool:
        nonlocal best
        score = f(*args, **kwargs)
        d = distance(best, score)
        if not d < 0:
            best = score
            if restore_best:
                kept.keep(args[0] if args else None)
        return bool(d < min_dist)

    def put(v: Any) -> None:
        nonlocal best
        best = v

    out = _with_state(patience(trigger, delay), "best", lambda: best, put)
    if not restore_best:
        return out

    def stopping(*args: Any, **kwargs: Any) -> bool:
        done = out(*args, **kwargs)
        if done:
            kept.restore(args[0] if args else None)
        return done

    stopping.state, stopping.loadstate = out.state, out.loadstate  # type: ignore[attr-defined]
    return stopping


def plateau(
    f: Callable[..., Any] | str,
    width: int,
    *,
    distance: Callable[[Any, Any], Any] = _minus,
    init_score: Any = math.inf,
    min_dist: float = 1e-6,
) -> Callable[..., bool]:
    """Return ``True`` once the score ``f(...)`` has stayed flat for ``width`` calls in a row.

    Each call computes ``score = f(*args)``; it is flat when ``|distance(last, score)| <
    min_dist``, where ``last`` is the previous call's score (``init_score`` at first), and
    returns ``True`` after ``width`` flat calls in a row. ``init_score`` defaults to ``inf``
    (Flux v0.16.8+); Flux v0.12.4 to v0.16.7 used ``0``, which makes a first score of 0 count
    as flat. Flux's ``min_dist`` default is ``1f-6``.
    ``f`` may be a metric's name, as for ``early_stopping``.

    >>> import fluxjax as fx
    >>> scores = iter([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    >>> flat = fx.plateau(lambda: next(scores), 2)
    >>> [flat() for _ in range(6)]
    [False, False, True, False, False, True]
    """
    f = _score(f, "plateau")
    last = init_score

    def is_plateau(*args: Any, **kwargs: Any) -> bool:
        nonlocal last
        score = f(*args, **kwargs)
        d = abs(distance(last, score))
        last = score
        return bool(d < min_dist)

    def put(v: Any) -> None:
        nonlocal last
        last = v

    return _with_state(patience(is_plateau, width), "last", lambda: last, put)
