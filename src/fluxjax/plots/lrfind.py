"""The learning-rate range test's curve (``fx.lr_find``)."""

from __future__ import annotations

import os
from typing import Any

from ._backend import new_figure, save_figure


def lr_find(result: Any, *, path: str | os.PathLike[str] | None = None) -> Any:
    """Draw an ``fx.lr_find`` result: the loss and its smoothed curve against η (log
    scale) up to where the sweep was cut, and the suggested η as a vertical line.

    >>> import numpy as np, fluxjax as fx
    >>> from fluxjax.lrfind import _result
    >>> etas = np.logspace(-4, 0, 50); r = _result(etas, 1 / (1 + 100 * etas), 0.9, 4.0)
    >>> fig = fx.plots.lr_find(r)
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_xlabel()
    ('log', 'learning rate η')
    """
    fig = new_figure((6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    n = result.stop
    ax.plot(result.etas[:n], result.losses[:n], color="0.7", lw=1, label="loss")
    ax.plot(result.etas[:n], result.smoothed[:n], lw=2, label="smoothed")
    ax.axvline(
        result.suggestion, ls="--", color="C3", label=f"suggested η = {result.suggestion:.3g}"
    )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("loss")
    ax.legend()
    return save_figure(fig, path)
