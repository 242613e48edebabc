"""The callbacks of one ``train`` call and when each must run (internal).

A plain callable runs after every step (Flux's ``train!``). A ``fx.Scheduled`` callback
(``fx.every``, ``fx.throttle``, checkpointers, loggers) says how many steps may run before
it must be called, so the steps in between can run fused. The schedule answers one
question, ``horizon(step)``: how many steps until a callback may act; and ``fire`` runs the
callbacks due after a step, in the order given, with Flux's ``stop``/``skip`` rules.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import FunctionType
from typing import Any

from .. import checks
from ..callbacks import Scheduled, SkipException, StepContext, StopException
from ..callbacks.scheduling import takes_context

_ARITY: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _takes(f: Any) -> bool:
    """Whether a plain callback takes the ``StepContext`` (cached weakly per function)."""
    try:
        hit = _ARITY.get(f)
    except TypeError:  # not weakly referenceable or not hashable
        return takes_context(f)
    if hit is None:
        hit = takes_context(f)
        try:
            _ARITY[f] = hit
        except TypeError:
            pass
    return hit


def _call(f: Any, kind: str, ctx: StepContext | None, context: Callable[[], StepContext]) -> Any:
    """Call one callback of ``kind`` (``"plain"``, ``"ctx"`` or ``"sched"``); the step's
    ``StepContext`` is made by ``context()`` the first time a callback needs it. Returns it
    (or None when no callback needed one yet)."""
    if kind == "plain":
        f()
        return ctx
    ctx = ctx or context()
    f.fire(ctx) if kind == "sched" else f(ctx)
    return ctx


class Schedule:
    """The callbacks of a call: ``entries`` of (callback, kind), kind ``"sched"`` (a
    ``Scheduled``), ``"ctx"`` (plain, takes the context) or ``"plain"`` (no argument);
    ``due[i]`` is the step after which scheduled entry ``i`` must next run.

    ``steps_per_call=K`` (the documented departure from Flux) runs plain callbacks after
    every K-th step instead of every step, and after the run's last step.
    """

    def __init__(self, cb: Any, steps_per_call: int | None) -> None:
        cbs = [] if cb is None else list(cb) if isinstance(cb, list | tuple) else [cb]
        self.entries: list[tuple[Callable[..., Any], str]] = []
        for f in cbs:
            checks.check_callback(f)
            if isinstance(f, Scheduled):
                self.entries.append((f, "sched"))
            else:
                self.entries.append((f, "ctx" if _takes(f) else "plain"))
        self.every = steps_per_call or 1
        self.plain = any(kind != "sched" for _, kind in self.entries)
        self.scheduled = any(kind == "sched" for _, kind in self.entries)
        self.due = [0] * len(self.entries)
        self.last: dict[int, int] = {}
        self.active = bool(self.entries)
        # a callback reads the step's gradients: the program keeps the last step's
        self.wants_grads = any(getattr(f, "grads", False) is True for f, _ in self.entries)
        # callbacks also called after a run's last step: trailing throttles, and plain
        # ones under steps_per_call (so the last state is seen)
        self.ends = any(
            (kind == "sched" and f.at_end) or (kind != "sched" and self.every > 1)
            for f, kind in self.entries
        )

    def fresh(self) -> Schedule:
        """A copy for a new call: the same parsed callbacks, its own due steps (plain
        callbacks only keep no per-call state: then the same object)."""
        if not self.scheduled:
            return self
        new = object.__new__(Schedule)
        new.__dict__.update(self.__dict__)
        new.due = [0] * len(self.entries)
        new.last = {}  # the step each scheduled entry last ran after
        return new

    def start(self, seconds_per_step: float | None) -> None:
        for i, (f, kind) in enumerate(self.entries):
            if kind == "sched":
                self.due[i] = self._next(f, 0, seconds_per_step)

    @staticmethod
    def _next(f: Scheduled, step: int, sps: float | None) -> int:
        k = f.steps_until(step, sps)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"{f!r}.steps_until must return an int >= 1, got {k!r}.")
        return step + k

    def horizon(self, step: int) -> int | None:
        """After ``step`` steps, how many may run before a callback can act (None: no
        callback, run to the end)."""
        if not self.active:
            return None
        far = [d - step for d, (_, kind) in zip(self.due, self.entries) if kind == "sched"]
        if self.plain:
            far.append(self.every - step % self.every)
        return max(1, min(far))

    def is_due(self, step: int) -> bool:
        return self.active and (
            (self.plain and step % self.every == 0) or any(d <= step for d in self.due)
        )

    def fire(self, step: int, context: Callable[[], StepContext], sps: float | None) -> Any:
        """Run the callbacks due after ``step`` (``context()`` makes its StepContext).
        Returns (stopped, the StepContext or None)."""
        ctx = None
        skipping = False
        stopped = False
        for i, (f, kind) in enumerate(self.entries):
            if kind == "sched":
                if self.due[i] > step:
                    continue
                self.due[i] = self._next(f, step, sps)
                self.last[i] = step
            elif step % self.every:
                continue
            if skipping or stopped:
                continue
            try:
                ctx = _call(f, kind, ctx, context)
            except SkipException:
                skipping = True
            except StopException:
                stopped = True
        return stopped, ctx

    def at_end(self, step: int, context: Callable[[], StepContext], sps: float | None) -> None:
        """After a run's last step: call the ``at_end`` callbacks that did not run there."""
        ctx = None
        for i, (f, kind) in enumerate(self.entries):
            if kind == "sched":
                if not f.at_end or self.last.get(i) == step:
                    continue
            elif self.every == 1 or step % self.every == 0:
                continue
            try:
                ctx = _call(f, kind, ctx, context)
            except (SkipException, StopException):
                pass

    def finish(self, steps: int) -> None:
        """Tell every scheduled callback the call has ended after ``steps`` steps (in order;
        all of them run, the first exception is raised after)."""
        error = None
        for f, kind in self.entries:
            if kind == "sched":
                try:
                    f.steps_taken = steps
                    f.finish()
                except Exception as e:  # noqa: BLE001
                    error = error or e
        if error is not None:
            raise error


def _same_items(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and len(a) == len(b) and all(x is y for x, y in zip(a, b)))


def equivalent(a: Any, b: Any) -> bool:
    """Whether callback ``b`` is ``a`` or does exactly what ``a`` does: the same function
    made again (``cb=lambda: ...`` written in a loop) from the same code, over the same
    closure cells, defaults and globals; or a list or tuple of such callbacks."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b))
    if type(a) is not FunctionType:
        return False
    return (
        a.__code__ is b.__code__
        and a.__globals__ is b.__globals__
        and _same_items(a.__closure__, b.__closure__)
        and _same_items(a.__defaults__, b.__defaults__)
        and a.__kwdefaults__ == b.__kwdefaults__
        and not a.__dict__
        and not b.__dict__
    )


class LastSchedule:
    """The callbacks of a plan's last call, parsed (a loop of ``train`` calls passes the
    same ``cb`` each time); each plan has its own (``Plan.schedules``), so the callbacks
    live no longer than the model they train."""

    def __init__(self) -> None:
        self.cb: Any = None
        self.steps_per_call: int | None = None
        self.schedule: Schedule | None = None

    def get(self, cb: Any, steps_per_call: int | None) -> Schedule:
        held = self.cb() if isinstance(self.cb, weakref.ref) else self.cb
        if (
            self.schedule is not None
            and steps_per_call == self.steps_per_call
            and equivalent(held, cb)
        ):
            return self.schedule.fresh()
        self.schedule = Schedule(cb, steps_per_call)
        try:
            self.cb = weakref.ref(cb)
        except TypeError:  # a list, None: not weakly referenceable
            self.cb = cb
        self.steps_per_call = steps_per_call
        return self.schedule.fresh()
