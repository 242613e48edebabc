"""Metrics during training: ``fx.metrics(every=..., **fns)``, a scheduled callback that
evaluates zero-argument functions (a validation loss, an accuracy) on its schedule,
compiled, and hands their values to the callbacks after it and to the history.

>>> import jax.numpy as jnp, fluxjax as fx
>>> m = fx.Dense(jnp.array([[0.0]]), False)
>>> x, xv = jnp.ones((2, 1)), jnp.full((3, 1), 2.0)
>>> val = fx.metrics(every=2, val_loss=lambda: fx.mse(m(xv), 2 * xv))
>>> seen = []
>>> _ = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x)] * 4, fx.Descent(0.25),
...              cb=[val, fx.every(2, lambda ctx: seen.append(float(ctx.metrics["val_loss"])))])
>>> seen  # w = 0.75 after 2 steps, 0.9375 after 4: mse(2w, 4) = 4 (w - 2)^2
[6.25, 4.515625]
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from .autodiff import bind_call
from .callbacks import Scheduled, StepContext
from .counts import count
from .engine.scope import filled, reachable
from .module import Module, is_array, modules, structure_version, walk
from .naming import NAMED, required_parameters
from .params import group

__all__ = ["metrics"]


def _check_function(name: str, f: Any) -> None:
    if not callable(f):
        raise TypeError(f"metrics: {name} must be a function of no arguments, got {f!r}.")
    required = required_parameters(f, NAMED)
    if required:
        raise TypeError(
            f"metrics: {name} must take no arguments (it is called as {name}()), but it needs "
            f"{', '.join(required)}; close over the data instead, e.g. "
            f"{name}=lambda: fx.mse(m(xv), yv)."
        )


class Compiled:
    """One metric function, compiled: every array of every module it can see (through its
    closure, defaults and the globals its code names, as ``train`` finds them) and every
    array its closure cells hold are inputs of the compiled call, so later changes to them
    are seen without recompiling. Rebuilt when a module's structure changes; run eagerly
    (with a warning) when the function cannot be traced."""

    def __init__(self, name: str, f: Callable[[], Any]) -> None:
        self.name, self.f = name, f
        seen: set[int] = set()
        visible = [
            m
            for v in reachable(f)
            if isinstance(v, Module | list | tuple | dict)
            for m in modules(v, seen)
        ]
        self.watch = [(m.__dict__, structure_version(m)) for m in visible]
        self.entries = group(
            (o, path, a) for m in visible for o, path, a in walk(m, trainable_only=False) if o is m
        )
        code = getattr(f, "__code__", None)
        cells = getattr(f, "__closure__", None) or ()
        self.cells = cells if code is not None else ()
        self.array_cells = [
            i for i, c in enumerate(self.cells) if filled(c) and is_array(c.cell_contents)
        ]
        self.others = [id(c.cell_contents) if filled(c) else None for c in self.cells]
        self.eager = False
        self.fn = jax.jit(self._pure)

    def stale(self) -> bool:
        if any(d.get("_fx_version", 0) != v for d, v in self.watch):
            return True
        now = [id(c.cell_contents) if filled(c) else None for c in self.cells]
        return any(
            a != b for i, (a, b) in enumerate(zip(now, self.others)) if i not in self.array_cells
        )

    def _pure(self, values: list[Any], cell_arrays: list[Any]) -> Any:
        f = self.f
        if self.array_cells:
            cells = list(self.cells)
            for i, a in zip(self.array_cells, cell_arrays):
                cells[i] = types.CellType(a)
            f = types.FunctionType(
                f.__code__, f.__globals__, f.__name__, f.__defaults__, tuple(cells)
            )
        return bind_call(self.entries, values, f)

    def __call__(self) -> Any:
        if self.eager:
            return self.f()
        values = [p.get() for p in self.entries]
        arrays = [self.cells[i].cell_contents for i in self.array_cells]
        try:
            out = self.fn(values, arrays)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as e:
            warnings.warn(
                f"fx.metrics: {self.name} cannot be compiled ({type(e).__name__}: it reads a "
                "value in Python, e.g. float(...) or np.asarray(...)); it runs eagerly from now "
                "on. Use jax.numpy inside it to have it compiled.",
                UserWarning,
                stacklevel=3,
            )
            self.eager = True
            return self.f()
        if np.ndim(out) != 0:
            raise TypeError(
                f"fx.metrics: {self.name} must return a scalar, got an array of shape "
                f"{np.shape(out)}; reduce it, e.g. with jnp.mean."
            )
        return out


class metrics(Scheduled):  # noqa: N801  (a function-like name, as fx.every)
    """``metrics(every=1, **fns)``: after steps ``every, 2·every, ...`` of each ``train``
    call, evaluate each ``fns[name]()`` and put the value in ``ctx.metrics[name]``.

    * Each function takes no argument and returns a scalar, e.g.
      ``val_loss=lambda: fx.mse(m(xv), yv)`` or
      ``accuracy=lambda: jnp.mean(fx.onecold(m(xv)) == yv)``.
    * Compiled: the arrays of the modules a function can see (and the arrays its closure
      holds) are inputs of one ``jax.jit`` call per function, so no retracing as training
      changes them. A function that cannot be traced runs eagerly, with a warning.
    * No host sync: ``ctx.metrics[name]`` holds the device scalar; whoever needs a number
      (a logger, a stopper, the history) converts it (``float(v)``) when it reads it.
    * Evaluated outside the loss, so layers are in test mode (Dropout off), as Flux's
      ``testmode``.
    * Put it **before** the callbacks that read the values, on the same schedule:
      ``cb=[fx.metrics(every=10, val_loss=...), fx.CSVLogger("log.csv", every=10)]``. To stop
      on a validation loss: ``es = fx.early_stopping("val_loss", 3)`` and
      ``fx.every(10, lambda ctx: es(ctx) and fx.stop())`` after it (a metric's name given to
      ``early_stopping``/``plateau`` reads ``ctx.metrics[name]``).
    * ``train`` records every ``ctx.metrics`` entry in the history it returns:
      ``h["val_loss"]``, ``h.steps_of("val_loss")``.
    * ``on=``: a reusable context manager the functions run inside, such as the averaged
      weights of an ``fx.EMA``: ``fx.metrics(every=10, on=ema.swapped(m, state),
      ema_val_loss=...)`` evaluates on the averages and puts the trained weights back.

    >>> import fluxjax as fx
    >>> fx.metrics(every=10, val_loss=lambda: 0.0)
    metrics(every=10, val_loss)
    """

    def __init__(self, every: int = 1, *, on: Any = None, **fns: Callable[[], Any]) -> None:
        every = count(every, f"metrics: every must be a positive int (steps), got {every!r}.")
        if not fns:
            raise TypeError(
                "metrics: name at least one function, e.g. "
                "fx.metrics(every=10, val_loss=lambda: fx.mse(m(xv), yv))."
            )
        for name, f in fns.items():
            _check_function(name, f)
        if on is not None and not (hasattr(on, "__enter__") and hasattr(on, "__exit__")):
            raise TypeError(
                "metrics: on= must be a reusable context manager, e.g. "
                f"on=ema.swapped(model, state); got {on!r}."
            )
        self.every, self.fns, self.on = int(every), fns, on
        self._compiled: dict[str, Compiled] = {}

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        return self.every - step % self.every

    def evaluate(self) -> dict[str, Any]:
        """Every metric now, as device scalars (compiled on first use)."""
        if self.on is not None:
            with self.on:
                return self._evaluate()
        return self._evaluate()

    def _evaluate(self) -> dict[str, Any]:
        out = {}
        for name, f in self.fns.items():
            c = self._compiled.get(name)
            if c is None or c.stale():
                c = self._compiled[name] = Compiled(name, f)
            out[name] = c()
        return out

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step % self.every:  # an engine calling every step: evaluate on the schedule
            return
        ctx.metrics.update(self.evaluate())

    def __repr__(self) -> str:
        return f"metrics(every={self.every}, {', '.join(self.fns)})"
