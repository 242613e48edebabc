"""Triggers: callables that return ``True`` when training should react (Flux's ``patience``,
``early_stopping`` and ``plateau``). A trigger stops nothing by itself: call it from a
callback and act on its answer, ``es() and fx.stop()``.

Every trigger is a ``patience``: it counts the calls in a row on which its predicate held.
For ``early_stopping`` and ``plateau`` the predicate is a ``Score``, which keeps the score it
compares with. ``state()`` and ``loadstate(state)`` let a checkpoint save and restore where a
trigger stands (``fx.Checkpointer(track=...)``).

>>> import fluxjax as fx
>>> losses = iter([3.0, 4.0, 5.0])  # a loss that gets worse
>>> es = fx.early_stopping(lambda: next(losses), 2)
>>> [es() for _ in range(3)]
[False, False, True]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from ..counts import count as check_count
from ..naming import name_of

__all__ = ["patience", "early_stopping", "plateau", "Score", "score_function", "Best"]


class patience:  # noqa: N801  (Flux's function name; a class, so its state is plain to see)
    """A callback that returns ``True`` once ``predicate`` has held ``wait`` calls in a row.

    Each call passes its arguments to ``predicate``: a true result adds one to a counter, a
    false one resets it to 0; the call returns ``counter >= wait``, so once triggered it keeps
    returning ``True`` while the predicate holds (Flux's ``patience``).

    >>> import fluxjax as fx
    >>> trigger = fx.patience(lambda x: x > 0, 3)
    >>> [trigger(x) for x in [1, 1, 0, 1, 1, 1, 1]]
    [False, False, False, False, False, True, True]
    """

    def __init__(self, predicate: Callable[..., Any], wait: int) -> None:
        self.predicate = predicate
        self.wait = check_count(
            wait, f"patience needs a positive int wait (number of calls), got {wait!r}"
        )
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        self.count = self.count + 1 if self.predicate(*args, **kwargs) else 0
        return self.count >= self.wait

    def state(self) -> dict[str, Any]:
        """Where the trigger stands, as JSON values: the count, and the kept score of an
        ``early_stopping`` or ``plateau``."""
        kept = self.predicate.state() if isinstance(self.predicate, Score) else {}
        return {"count": self.count, **kept}

    def loadstate(self, state: dict[str, Any]) -> None:
        """Put back what ``state()`` returned."""
        if isinstance(self.predicate, Score):
            self.predicate.loadstate(state)
        self.count = int(state["count"])

    def __repr__(self) -> str:
        return f"patience({name_of(self.predicate)}, {self.wait})"


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


def score_function(f: Callable[..., Any] | str, owner: str) -> Callable[..., Any]:
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


class Score:
    """The predicate of ``early_stopping`` and ``plateau``: reads a score with ``f`` and
    compares it with the one it keeps, ``value``, saved in the trigger's state under ``key``."""

    key = "score"

    def __init__(
        self,
        f: Callable[..., Any],
        distance: Callable[[Any, Any], Any],
        value: Any,
        min_dist: float,
    ) -> None:
        self.f, self.distance, self.value, self.min_dist = f, distance, value, min_dist

    def state(self) -> dict[str, Any]:
        return {self.key: _plain(self.value)}

    def loadstate(self, state: dict[str, Any]) -> None:
        self.value = state[self.key]


class Improvement(Score):
    """True when the score did not improve on the best by ``min_dist``; keeps the best (and,
    with ``kept``, the model's arrays at the best)."""

    key = "best"

    def __init__(self, *args: Any, kept: Best | None = None) -> None:
        super().__init__(*args)
        self.kept = kept

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        score = self.f(*args, **kwargs)
        d = self.distance(self.value, score)
        if not d < 0:
            self.value = score
            if self.kept is not None:
                self.kept.keep(args[0] if args else None)
        return bool(d < self.min_dist)


class Flat(Score):
    """True when the score moved less than ``min_dist`` since the last call; keeps the last."""

    key = "last"

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        score = self.f(*args, **kwargs)
        d = abs(self.distance(self.value, score))
        self.value = score
        return bool(d < self.min_dist)


class RestoringBest(patience):
    """``early_stopping(..., restore_best=True)``: on triggering, puts the best arrays back."""

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        done = super().__call__(*args, **kwargs)
        if done:
            self.predicate.kept.restore(args[0] if args else None)
        return done


def early_stopping(
    f: Callable[..., Any] | str,
    delay: int,
    *,
    distance: Callable[[Any, Any], Any] = _minus,
    init_score: Any = math.inf,
    min_dist: float = 0.0,
    restore_best: bool = False,
) -> patience:
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
    better = Improvement(score_function(f, "early_stopping"), distance, init_score, min_dist)
    if not restore_best:
        return patience(better, delay)
    better.kept = Best()
    return RestoringBest(better, delay)


def plateau(
    f: Callable[..., Any] | str,
    width: int,
    *,
    distance: Callable[[Any, Any], Any] = _minus,
    init_score: Any = math.inf,
    min_dist: float = 1e-6,
) -> patience:
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
    flat = Flat(score_function(f, "plateau"), distance, init_score, min_dist)
    return patience(flat, width)


class Best:
    """The arrays of the model a plan trains, copied on the device when a score improves
    (no host sync), and put back on request (``early_stopping(restore_best=True)``)."""

    def __init__(self) -> None:
        self.arrays: list[Any] | None = None

    def keep(self, ctx: Any) -> None:
        plan = _plan_of(ctx)
        self.arrays = [jnp.copy(p.get()) for p in (*plan.entries, *plan.others)]

    def restore(self, ctx: Any) -> None:
        plan = _plan_of(ctx)
        if self.arrays is not None:
            for p, a in zip((*plan.entries, *plan.others), self.arrays):
                p.set(a)


def _plan_of(ctx: Any) -> Any:
    plan = getattr(ctx, "_plan", None)
    if plan is None:
        raise TypeError(
            "early_stopping(..., restore_best=True) must be called with the StepContext "
            "inside fx.train's callbacks, e.g. fx.every(n, lambda ctx: es(ctx) and fx.stop())."
        )
    return plan
