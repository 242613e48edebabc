"""A loss curve redrawn in place in a Jupyter notebook while ``fx.train`` runs."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..callbacks import Scheduled, StepContext
from ..counts import count
from ..progress import in_notebook
from ._backend import matplotlib_module, wide_figsize
from .curves import loss_curve

__all__ = ["live", "in_notebook"]

_NEVER = 2**31 - 1  # steps_until outside a notebook: never needs to run


class live(Scheduled):  # noqa: N801  (a function-like name, as fx.every)
    """``fx.plots.live(every_seconds=2.0)``: a scheduled callback drawing the loss (and every
    ``ctx.metrics`` entry, e.g. from ``fx.metrics``) against the step, redrawn in place in
    a Jupyter notebook (JupyterLab, classic Notebook, VS Code: it displays PNG bytes with
    ``display(..., display_id=True)`` and updates that display, so it needs no
    ``%matplotlib`` magic and no pyplot).

    * It samples the loss about ``samples`` times per ``every_seconds`` (from the measured
      step time; the steps between run fused) and after the last step, and redraws at most
      once per ``every_seconds``, and once more when the ``train`` call ends.
    * Metrics are drawn at the steps they were recorded at, whatever their schedule: the
      curve reads them from the run's history (``ctx.history``) when it redraws.
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
        samples = count(samples, f"live: samples must be a positive int, got {samples!r}.")
        self.every_seconds, self.samples, self.log = float(every_seconds), samples, log
        self.figsize, self._clock = figsize, clock
        self.active = in_notebook()
        self.series: dict[str, tuple[list[int], list[float]]] = {"loss": ([], [])}
        self.figure: Any = None  # the last figure drawn
        self._history: Any = None  # this train call's TrainHistory (from ctx.history)
        self._read: dict[str, int] = {}  # how many entries of each history series are read
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
        history = getattr(ctx, "history", None)
        if history is not self._history:
            self._history, self._read = history, {}
        self._metrics()
        for name, value in ctx.metrics.items():  # this step's (recorded after its callbacks)
            self._add(str(name), x, value)
        if self._clock() - self._drawn_at >= self.every_seconds:
            self.draw()

    def _metrics(self) -> None:
        """Add the metrics recorded in this call's history since the last look, each at its
        own step (the values are read from the device here, only when new)."""
        h = self._history
        series = getattr(h, "_series", None) or {}
        for name, (steps, values) in series.items():
            for i in range(self._read.get(name, 0), len(steps)):
                self._add(str(name), self._offset + steps[i], values[i])
            self._read[name] = len(steps)

    def _add(self, name: str, x: int, value: Any) -> None:
        steps, values = self.series.setdefault(name, ([], []))
        if steps and x <= steps[-1]:
            return  # seen already (this step's ctx.metrics, now in the history)
        if callable(value):
            value = value()
        try:
            value = float(value)
        except (TypeError, ValueError):
            return  # not a number (None, an array, a string): not on the curve
        steps.append(x)
        values.append(value)

    def points(self) -> int:
        """How many points the curves hold."""
        return sum(len(s) for s, _ in self.series.values())

    def draw(self) -> Any:
        """Draw the curves now (in place after the first time); returns the Figure."""
        matplotlib_module()
        from IPython.display import Image, display
        from matplotlib.figure import Figure  # free-standing: no pyplot, no GUI window

        runs = {
            name: SimpleNamespace(losses=values, steps=steps, epochs=None)
            for name, (steps, values) in self.series.items()
            if steps
        }
        fig = Figure(figsize=wide_figsize(self.figsize, len(runs)), layout="constrained")
        loss_curve(runs, log=self.log, ylabel="value", ax=fig.add_subplot())
        png = io.BytesIO()
        fig.savefig(png, format="png")
        image = Image(data=png.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
        self.figure = fig
        self._drawn_at, self._drawn_points = self._clock(), self.points()
        return fig

    def finish(self) -> None:
        """End of a ``train`` call: draw what is new; the next call continues the curve."""
        if self.active:
            self._metrics()  # the last step's metrics, recorded after its callbacks
            if self.points() > self._drawn_points:
                self.draw()
        self._offset += self.steps_taken  # set by train: the steps this call took

    def __repr__(self) -> str:
        return f"live(every_seconds={self.every_seconds})"
