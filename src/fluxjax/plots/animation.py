"""The fit as training goes: a GIF of snapshots taken during training."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..params import params
from ._backend import new_figure
from .fits import plot_limits, predict_grid

# ---- the fit as training goes (GIF) ----------------------------------------------------------


def _load(model: Any, snapshot: Any) -> Any:
    """The model to draw for one snapshot: a model as is, or ``model`` with these arrays."""
    if callable(snapshot):
        return snapshot
    entries = params(model).entries
    arrays = list(snapshot)
    if len(arrays) != len(entries):
        raise ValueError(
            f"animate_training: a snapshot holds {len(arrays)} arrays but the model has "
            f"{len(entries)} parameters; take snapshots with [np.asarray(p) for p in "
            "fx.params(model)]"
        )
    for p, a in zip(entries, arrays):
        p.set(np.asarray(a))
    return model


def animate_training(
    model: Any,
    step: Callable[[int], Any] | None = None,
    *,
    snapshots: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    frames: int = 20,
    f: Callable[[Any], Any] | None = None,
    data: tuple[Any, Any] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    fps: int = 4,
    title: str = "training",
    path: str | os.PathLike[str] | None = None,
    dpi: int = 80,
) -> Any:
    """A GIF of a 1-D model's fit as training goes (the tutorial's ``train1D.gif``).

    Give either

    * ``step``: a function called before frames 1, 2, …, ``frames − 1`` with the frame index
      (frame 0 shows the model as it is); it trains the model in place, e.g.
      ``lambda i: fx.train(loss, ps, data, opt, epochs=1000)``. A number or a history that it
      returns is shown in the frame's title as the loss; or
    * ``snapshots``: the states to show, each a list of the model's parameter arrays (in
      ``fx.params(model)`` order, e.g. ``[np.asarray(p) for p in ps]`` taken in a callback)
      or a whole model. The model is left holding the last snapshot.

    ``labels`` (one per frame, e.g. ``"epoch 1000"``) go into the frames' titles. The frames
    show the data, the true ``f`` and the model's curve; the GIF is written to ``path``
    (matplotlib's ``PillowWriter``) and the returned figure shows the last frame.
    """
    from matplotlib.animation import PillowWriter

    xs, curves, notes = _frames(model, step, snapshots, frames, data, xlim)
    if labels is not None:
        if len(labels) != len(curves):
            raise ValueError(f"animate_training: {len(curves)} frames but {len(labels)} labels")
        notes = [f": {label}{note}" for label, note in zip(labels, notes)]
    fig = new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    line = _stage(ax, xs, curves, f, data, ylim)

    def draw(i: int) -> None:
        line.set_ydata(curves[i])
        ax.set_title(f"{title}{notes[i] or f': frame {i + 1}/{len(curves)}'}")

    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, str(path), dpi):
            for i in range(len(curves)):
                draw(i)
                writer.grab_frame()
    draw(len(curves) - 1)
    return fig


def _stage(ax, xs, curves, f, data, ylim):
    """Draw what stays the same in every frame; return the model's line."""
    reference = []
    if data is not None:
        x, y = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in data)
        ax.scatter(x[:, 0], y[:, 0], s=18, color="black", zorder=3, label="data")
        reference.append(y[:, 0])
    if f is not None:
        fy = np.asarray(f(xs.reshape(-1, 1)), float).ravel()
        ax.plot(xs, fy, "--", color="0.45", label="true f(x)")
        reference.append(fy)
    (line,) = ax.plot(xs, curves[0], color="#1f77b4", lw=2, label="model")
    ax.set_ylim(*(ylim or _ylim(reference or curves)))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", framealpha=0.9)
    return line


def _ylim(values: list[np.ndarray]) -> tuple[float, float]:
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    pad = 0.35 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def _frames(model, step, snapshots, frames, data, xlim):
    """The x grid, the model's curve in every frame, and a title note per frame."""
    if (step is None) == (snapshots is None):
        raise TypeError("animate_training: give either step= (a function) or snapshots=")
    lo, hi = plot_limits(data, 0, xlim, (0.0, 1.0))
    xs = np.linspace(lo, hi, 200)
    curves, notes = [], []
    if snapshots is not None:
        for s in snapshots:
            curves.append(predict_grid(_load(model, s), xs.reshape(-1, 1))[:, 0])
            notes.append("")
    else:
        for i in range(frames):
            out = step(i) if i > 0 else None
            curves.append(predict_grid(model, xs.reshape(-1, 1))[:, 0])
            notes.append(_note(out))
    if not curves:
        raise ValueError("animate_training: no frames (empty snapshots, or frames=0)")
    return xs, curves, notes


def _note(out: Any) -> str:
    if hasattr(out, "losses") and len(out.losses):
        return f": loss {out.losses[-1]:.4g}"
    if isinstance(out, int | float | np.number) and not isinstance(out, bool):
        return f": loss {float(out):.4g}"
    return ""
