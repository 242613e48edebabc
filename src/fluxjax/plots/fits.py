"""A model against the function it fits: a curve for 1 input, a surface for 2."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._backend import add_legend, line_colors, new_figure, save_figure, wide_figsize

# ---- fits ------------------------------------------------------------------------------------


def chain_layers(model: Any) -> list[Any]:
    layers = getattr(model, "layers", None)
    if layers is None:
        return [model]
    return [leaf for layer in layers for leaf in chain_layers(layer)]


def input_size(model: Any, data: Any) -> int:
    if data is not None:
        return int(np.shape(data[0])[-1]) if np.ndim(data[0]) > 1 else 1
    for layer in chain_layers(model):
        w = getattr(layer, "weight", None)
        if w is not None and np.ndim(w) == 2:
            return int(np.shape(w)[1])
    return 1


def predict_grid(model: Any, x: np.ndarray) -> np.ndarray:
    y = np.asarray(model(jnp.asarray(x, dtype=jnp.float32)), dtype=float)
    return y.reshape(len(x), -1)


def _models(model: Any) -> list[tuple[str, Any]]:
    if isinstance(model, Mapping):
        return list(model.items())
    return [("model", model)]


def fit(
    model: Any,
    f: Callable[[Any], Any] | None = None,
    data: tuple[Any, Any] | None = None,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n: int = 200,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Plot a model against the function it learns: the data points, the true function
    ``f`` and the model's curve (1 input), or surfaces of the model and of ``f`` (2 inputs).

    * ``model``: a model taking ``(n, 1)`` or ``(n, 2)`` inputs, or a dict name → model to
      overlay several fits (1-D) or draw them side by side (2-D).
    * ``f``: the true function of an ``(n, d)`` array (optional); ``data``: ``(x, y)`` with
      ``x`` of shape ``(n, d)`` (optional).
    * ``xlim``/``ylim``: the input range (from the data by default; [0, 1] or [−π, π]²).
    """
    d = input_size(next(iter(_models(model)))[1], data)
    if d == 1:
        return _fit1d(model, f, data, xlim, n, title, path, figsize)
    if d == 2:
        return _fit2d(model, f, data, xlim, ylim, title, path, figsize)
    raise ValueError(f"plots.fit draws models of 1 or 2 inputs; this one takes {d}")


def plot_limits(data: Any, column: int, given: Any, default: tuple[float, float]) -> tuple:
    if given is not None:
        return tuple(given)
    if data is None:
        return default
    x = np.asarray(data[0], dtype=float).reshape(len(data[0]), -1)[:, column]
    return float(x.min()), float(x.max())


def _fit1d(model, f, data, xlim, n, title, path, figsize):
    lo, hi = plot_limits(data, 0, xlim, (0.0, 1.0))
    xs = np.linspace(lo, hi, n).reshape(-1, 1)
    models = _models(model)
    entries = len(models) + (data is not None) + (f is not None)
    fig = new_figure(figsize or wide_figsize((6.4, 4.2), entries))
    ax = fig.add_subplot()
    if data is not None:
        x, y = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in data)
        ax.scatter(x[:, 0], y[:, 0], s=22, color="black", zorder=3, label="data")
    if f is not None:
        ys = np.asarray(f(xs), dtype=float).reshape(n, -1)
        ax.plot(xs[:, 0], ys[:, 0], "--", color="0.45", lw=1.5, label="true f(x)")
    for (name, m), color in zip(models, line_colors(len(models))):
        ys = predict_grid(m, xs)
        for k in range(ys.shape[1]):
            suffix = f" (output {k + 1})" if ys.shape[1] > 1 else ""
            ax.plot(xs[:, 0], ys[:, k], color=color, lw=2, label=name + suffix)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(True, alpha=0.3)
    add_legend(ax)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def _fit2d(model, f, data, xlim, ylim, title, path, figsize):
    xlo, xhi = plot_limits(data, 0, xlim, (-math.pi, math.pi))
    ylo, yhi = plot_limits(data, 1, ylim, (-math.pi, math.pi))
    gx, gy = np.meshgrid(np.linspace(xlo, xhi, 41), np.linspace(ylo, yhi, 41))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    panels = [(name, predict_grid(m, grid)[:, 0]) for name, m in _models(model)]
    if f is not None:
        panels.append(("true f(x, y)", np.asarray(f(grid), dtype=float).reshape(len(grid))))
    fig = new_figure(figsize or (4.6 * len(panels), 4.4))
    zs = np.concatenate([z for _, z in panels])
    for i, (name, z) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1, projection="3d")
        ax.plot_surface(
            gx,
            gy,
            z.reshape(gx.shape),
            cmap="viridis",
            vmin=zs.min(),
            vmax=zs.max(),
            linewidth=0,
            alpha=0.9,
        )
        if data is not None and name != "true f(x, y)":
            x, y = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in data)
            ax.scatter(x[:, 0], x[:, 1], y[:, 0], s=6, color="black", label="data")
            ax.legend(loc="upper left")
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
        ax.set_zlim(zs.min(), zs.max())
        ax.set_box_aspect(None, zoom=0.88)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
