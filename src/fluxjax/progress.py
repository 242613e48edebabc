"""The progress bar of ``train(..., progress=True)``: tqdm, a widget in Jupyter.

The engine makes one ``Bar`` per ``train`` call and tells it about steps, losses and
metrics; the bar reads a loss from the device only when it redraws (at most every
``every`` seconds, and when it closes), so it costs a few attribute writes per step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Bar", "in_notebook"]

_NEEDS = (
    "fluxjax: a widget progress bar in Jupyter needs ipywidgets "
    "(pip install 'fluxjax[notebook]'); showing a text bar."
)
_told = [False]  # the fallback line is printed once per process


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel); IPython is not
    imported here, so outside IPython this is one dictionary look-up.

    >>> in_notebook()  # pytest is not a kernel
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _tqdm_class() -> Any:
    """tqdm's widget bar in a kernel with ipywidgets, else the text bar (and, in a kernel,
    one line saying what to install). Never ``tqdm.auto``: its fallback is a warning."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            if not _told[0]:
                _told[0] = True
                print(_NEEDS, file=sys.stderr)
    from tqdm.std import tqdm

    return tqdm


def _number(value: Any) -> Any:
    """A loss or metric (a float, a device scalar, or a function returning one) as a float;
    other values (an array, a string) are returned as they are."""
    if callable(value):
        value = value()
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


class Bar:
    """``Bar(total)``: the bar of one ``train`` call (``total`` steps, or None if unknown).

    * ``update(n, loss)``: ``n`` more steps; ``loss`` is the latest one (a float, a device
      scalar, or a zero-argument function returning one): kept, read only at a redraw.
    * ``metrics(d)``: the latest values of a step's ``ctx.metrics`` (kept, read likewise;
      numbers are shown, other values left out).
    * ``close(final_loss=None)``: the bar ends on the final loss (default: the last one given
      to ``update``) and the latest metrics, then closes.

    It redraws at most every ``every`` seconds (``clock`` measures time; tests drive it),
    showing the steps done, the latest loss and every metric.

    >>> import io
    >>> out = io.StringIO()
    >>> bar = Bar(3, file=out)
    >>> bar.update(2, 0.5)
    >>> bar.metrics({"val_loss": 0.75})
    >>> bar.update(1, lambda: 0.25)  # the last step's loss, read at close
    >>> bar.close()
    >>> out.getvalue().splitlines()[-1].rstrip()
    'train: 100%|...| 3/3 [...step/s, loss=0.25, val_loss=0.75]'
    """

    def __init__(
        self,
        total: int | None,
        *,
        every: float = 0.2,
        file: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every, self._clock = every, clock
        # tqdm draws at each of this bar's redraws (its own rate limit would skip some)
        kw: dict[str, Any] = {"total": total, "desc": "train", "unit": "step"}
        kw.update(mininterval=0, miniters=1)
        cls = _tqdm_class() if file is None else None
        if cls is None or cls.__module__ == "tqdm.std":
            from tqdm.std import tqdm

            cls = tqdm
            kw.update(file=sys.stderr if file is None else file, dynamic_ncols=file is None)
        try:
            self.bar = cls(**kw)
        except ImportError:  # tqdm's widget bar with an ipywidgets too old for it
            from tqdm.std import tqdm

            self.bar = tqdm(**kw, file=sys.stderr)
        self._pending = 0  # steps not yet shown
        self._loss: Any = None
        self._metrics: dict[str, Any] = {}
        self._drawn = clock()

    def update(self, n: int, loss: Any) -> None:
        """``n`` more steps, the last of which had ``loss``."""
        self._pending += n
        self._loss = loss
        if self._clock() - self._drawn >= self.every:
            self._draw(refresh=True)

    def metrics(self, values: Mapping[str, Any]) -> None:
        """The latest ``ctx.metrics`` of a step (shown from the next redraw on)."""
        self._metrics.update(values)

    def postfix(self) -> dict[str, str]:
        """What the bar shows after the count: the latest loss and numeric metrics."""
        shown = {}
        for name, raw in [("loss", self._loss), *self._metrics.items()]:
            value = None if raw is None else _number(raw)
            if isinstance(value, float):  # an array or a string has no place on a bar
                shown[str(name)] = f"{value:.4g}"
        return shown

    def _draw(self, refresh: bool) -> None:
        self._drawn = self._clock()
        self.bar.set_postfix(self.postfix(), refresh=False)
        n, self._pending = self._pending, 0
        if n:
            self.bar.update(n)  # draws
        elif refresh:
            self.bar.refresh()

    def close(self, final_loss: Any = None) -> None:
        """End the bar on ``final_loss`` (default: the last loss given to ``update``)."""
        if final_loss is not None:
            self._loss = final_loss
        try:
            self._draw(refresh=False)  # the loss may be unreadable after a failure
        except Exception:  # the bar closes whatever the device says
            pass
        finally:
            self.bar.close()
