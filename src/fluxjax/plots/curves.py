"""Loss curves: one or several runs, per step or per epoch."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._backend import add_legend, line_colors, new_figure, save_figure, wide_figsize

# ---- loss curves -----------------------------------------------------------------------------


def _series(h: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(steps, losses, epochs or None) of a History, TrainHistory or list of floats."""
    if hasattr(h, "losses"):
        losses = np.asarray(h.losses, dtype=float)
        steps = np.asarray(getattr(h, "steps", None) or range(1, len(losses) + 1), dtype=float)
        epochs = getattr(h, "epochs", None)
        return steps, losses, None if not epochs else np.asarray(epochs)
    losses = np.asarray(list(h), dtype=float).ravel()
    return np.arange(1, len(losses) + 1, dtype=float), losses, None


def _runs(history: Any, labels: Sequence[str] | None) -> list[tuple[str | None, Any]]:
    if hasattr(history, "histories"):  # a lab.Comparison
        history = history.histories
    if isinstance(history, Mapping):
        return list(history.items())
    single = hasattr(history, "losses") or (
        isinstance(history, Sequence | np.ndarray)
        and all(isinstance(v, int | float | np.number) for v in list(history)[:5])
    )
    runs = [history] if single else list(history)
    names = list(labels) if labels is not None else [None] * len(runs)
    if len(names) != len(runs):
        raise ValueError(f"loss_curve: {len(runs)} runs but {len(names)} labels")
    return list(zip(names, runs))


def _per_epoch(losses: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, inverse = np.unique(epochs, return_inverse=True)
    sums = np.bincount(inverse, weights=losses)
    return keys.astype(float), sums / np.bincount(inverse)


def loss_curve(
    history: Any,
    *,
    labels: Sequence[str] | None = None,
    log: bool | None = None,
    x: str = "step",
    xlabel: str | None = None,
    ylabel: str = "loss",
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    figsize: tuple[float, float] = (6.4, 4.0),
    ax: Any = None,
) -> Any:
    """Plot one or several loss histories on one axis.

    * ``history``: an ``fx.train`` result (``TrainHistory``), an ``fx.History``, a list of
      floats, a list of those (name them with ``labels``), a dict name → history, or a
      ``fx.lab.Comparison``.
    * ``log``: logarithmic loss axis; ``None`` chooses it when every loss is positive and they
      span more than a factor 30.
    * ``x="epoch"`` plots each epoch's mean loss against the epoch (histories that know their
      epochs), so runs with different batch counts per epoch line up.
    * ``ax``: draw into these matplotlib axes (and return their figure) instead of a new
      figure of size ``figsize``.
    """
    runs = _runs(history, labels)
    if ax is None:
        fig = new_figure(wide_figsize(figsize, sum(name is not None for name, _ in runs)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    everything = []
    for (name, h), color in zip(runs, line_colors(len(runs))):
        steps, losses, epochs = _series(h)
        if x == "epoch" and epochs is not None:
            steps, losses = _per_epoch(losses, epochs)
        elif x not in ("step", "epoch"):
            raise ValueError(f"loss_curve: x must be 'step' or 'epoch', got {x!r}")
        ax.plot(steps, losses, color=color, lw=1.4, label=name)
        everything.append(losses[np.isfinite(losses)])
    values = np.concatenate(everything) if everything else np.zeros(0)
    if log is None:
        log = bool(len(values)) and values.min() > 0 and values.max() > 30 * values.min()
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or ("epoch" if x == "epoch" else "step"))
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    add_legend(ax)
    return save_figure(fig, path)
