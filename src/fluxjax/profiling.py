"""``fx.profile``: a ``jax.profiler`` trace of chosen training steps (TensorBoard's and
Perfetto's format), as Lightning's ``profiler=`` and Keras's ``TensorBoard(profile_batch=)``.

>>> import os, tempfile, numpy as np, fluxjax as fx
>>> x = np.ones((4, 1), np.float32)
>>> m = fx.Dense(1, 1)
>>> logdir = tempfile.mkdtemp()
>>> _ = fx.train(lambda m, x: fx.mse(m(x), x), m, [(x,)], fx.setup(fx.Adam(), m), epochs=6,
...              cb=fx.profile(steps=(2, 4), logdir=logdir))
>>> any(f.endswith(".xplane.pb") for _, _, fs in os.walk(logdir) for f in fs)
True
"""

from __future__ import annotations

import os
from typing import Any

import jax

from .callbacks import Scheduled, StepContext
from .counts import is_count, is_int

__all__ = ["profile"]


class profile(Scheduled):  # noqa: N801  (a function-like name, as fx.every)
    """Trace steps ``start + 1`` to ``stop`` (counted across ``train`` calls, from the first
    call this callback sees) into ``logdir`` with ``jax.profiler``: the trace starts after
    step ``start``, and stops after step ``stop`` once the device has finished it. Steps in
    between run fused as usual (the span ends exactly at both points). Open the folder with
    TensorBoard's profile plugin or ``xprof``, or the ``.trace.json.gz`` in Perfetto.
    """

    at_end = True

    def __init__(
        self, steps: tuple[int, int] = (10, 20), logdir: str | os.PathLike[str] = "profile"
    ):
        start, stop = steps
        if not (is_count(start) and is_int(stop) and start < stop):
            raise ValueError(
                f"profile: steps must be (start, stop) with 1 <= start < stop, got {steps!r}."
            )
        self.start, self.stop, self.logdir = start, stop, os.fspath(logdir)
        self.base = 0  # steps of earlier train calls
        self.tracing = False
        self.done = False

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        now = self.base + step
        for edge in (self.start, self.stop):
            if now < edge:
                return edge - now
        return 1 << 30

    def __call__(self, ctx: StepContext) -> None:
        now = self.base + ctx.step
        if not self.tracing and not self.done and self.start <= now < self.stop:
            _wait(ctx)
            jax.profiler.start_trace(self.logdir)
            self.tracing = True
        elif self.tracing and now >= self.stop:
            self._end(ctx)

    def _end(self, ctx: Any = None) -> None:
        _wait(ctx)
        jax.profiler.stop_trace()
        self.tracing, self.done = False, True

    def finish(self) -> None:
        self.base += self.steps_taken or 0
        if self.tracing and self.base >= self.stop:
            self._end()

    def __repr__(self) -> str:
        return f"profile(steps=({self.start}, {self.stop}), logdir={self.logdir!r})"


def _wait(ctx: Any) -> None:
    """Wait until the device has finished the steps so far (the trace covers whole steps)."""
    plan = getattr(ctx, "_plan", None)
    if plan is not None and plan.halt is not None:
        jax.block_until_ready(plan.halt)
    else:
        jax.effects_barrier()
