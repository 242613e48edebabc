"""A loss curve redrawn in place in a Jupyter notebook while ``fx.train`` runs."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..callbacks import Scheduled, StepContext
from .curves import loss_curve

_NEVER = 2**31 - 1  # steps_until outside a notebook: never needs to run


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel); IPython is not
    imported here, so outside IPython this is one dictionary look-up."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class live(Scheduled):  # noqa: N801  (a function-like name, as fx.every)
    """``fx.plots.live(every_seconds=2.0)``: a scheduled callback drawing the loss (and every
    ``ctx.metrics`` entry, e.g. from ``fx.metrics``) against the step, redrawn in place in
    a Jupyter notebook (IPython's ``display(..., display_id=True)`` and ``update``).

    * It samples the loss about ``samples`` times per ``every_seconds`` (from the measured
      step time; the steps between run fused) and after the last step, and redraws at most
      once per ``every_seconds``, and once more when the ``train`` call ends.
    * Outside a notebook it does nothing and never interrupts fused steps.
    * Across several ``train`` calls with the same object the curve continues (the step
      axis counts the steps of every call).
    * ``log``: logarithmic loss axis (``None`` decides as ``loss_curve``). ``clock`` is what
      measures time (tests drive it). Needs matplotlib (``pip install 'fluxjax[plots]'``).

    >>> import fluxjax as fx
    >>> curve = fx.plots.live(every_seconds=1.0)
    >>> curve.active  # not in a notebook here
    False
    >>> curve.steps_until(0, 0.001) > 10**9
    True
    """

    at_end = True  # the run's last step is on the curve too

    def __init__(
        self,
        every_seconds: float = 2.0,
        *,
        samples: int = 20,
        log: bool | None = None,
        figsize: tuple[float, float] = (6.4, 4.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ok = isinstance(every_seconds, int | float) and not isinstance(every_seconds, bool)
        if not ok or not every_seconds > 0:
            raise ValueError(f"live: every_seconds must be > 0, got {every_seconds!r}.")
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise ValueError(f"live: samples must be a positive int, got {samples!r}.")
        self.every_seconds, self.samples, self.log = float(every_seconds), samples, log
        self.figsize, self._clock = figsize, clock
        self.active = in_notebook()
        self.series: dict[str, tuple[list[int], list[float]]] = {"loss": ([], [])}
        self._handle: Any = None
        self._drawn_at, self._drawn_points = -math.inf, 0
        self._offset = 0  # the steps of the train calls before this one

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        if not self.active:
            return _NEVER
        if not seconds_per_step or seconds_per_step <= 0:
            return 1
        return max(1, int(self.every_seconds / self.samples / seconds_per_step))

    def __call__(self, ctx: StepContext) -> None:
        if not self.active:
            return
        x = self._offset + ctx.step
        self._add("loss", x, ctx.loss)
        for name, value in ctx.metrics.items():
            self._add(str(name), x, value() if callable(value) else value)
        if self._clock() - self._drawn_at >= self.every_seconds:
            self.draw()

    def _add(self, name: str, x: int, value: Any) -> None:
        if value is None:
            return
        steps, values = self.series.setdefault(name, ([], []))
        steps.append(x)
        values.append(float(value))

    def points(self) -> int:
        """How many points the curves hold."""
        return sum(len(s) for s, _ in self.series.values())

    def draw(self) -> Any:
        """Draw the curves now (in place after the first time); returns the Figure."""
        runs = {
            name: SimpleNamespace(losses=values, steps=steps, epochs=None)
            for name, (steps, values) in self.series.items()
            if steps
        }
        fig = loss_curve(runs, log=self.log, figsize=self.figsize, ylabel="value")
        from IPython.display import display

        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        self._drawn_at, self._drawn_points = self._clock(), self.points()
        return fig

    def finish(self) -> None:
        """End of a ``train`` call: draw what is new; the next call continues the curve."""
        if self.active and self.points() > self._drawn_points:
            self.draw()
        self._offset += self.steps_taken  # set by train: the steps this call took

    def __repr__(self) -> str:
        return f"live(every_seconds={self.every_seconds})"
