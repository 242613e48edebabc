"""A Chain drawn as neurons and connections, coloured by weight."""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..module import Module, show
from ._backend import new_figure, save_figure
from .fits import chain_layers, input_size

# ---- a Chain as neurons ----------------------------------------------------------------------


def _name(f: Any) -> str:
    if isinstance(f, Module):
        return show(f)
    name = getattr(f, "__name__", None) or type(f).__name__
    return "function" if name == "<lambda>" else name


def _stages(model: Any) -> list[dict[str, Any]]:
    """The columns of the drawing: the input, then one per layer (size from eval_shape)."""
    layers = chain_layers(model)
    n_in = input_size(model, None)
    stages = [{"kind": "input", "size": n_in, "label": f"input ({n_in})"}]
    shape = jax.ShapeDtypeStruct((1, n_in), jnp.float32)
    for layer in layers:
        w = getattr(layer, "weight", None)
        try:
            shape = jax.eval_shape(layer, shape)
            size = int(np.prod(shape.shape[1:]))
        except Exception:  # a layer eval_shape cannot trace: assume it keeps the size
            size = stages[-1]["size"]
        if w is not None and np.ndim(w) == 2:
            act = getattr(layer, "act", None)
            act_name = "" if act is None else _name(act)
            act_name = "" if act_name in ("_identity", "identity") else act_name
            stages.append(
                {
                    "kind": "dense",
                    "size": size,
                    "layer": layer,
                    "label": f"Dense {w.shape[1]}→{w.shape[0]}"
                    + (f"\n{act_name}" if act_name else ""),
                }
            )
        else:
            stages.append({"kind": "fn", "size": size, "label": _name(layer)})
    return stages


def _shown(n: int, cap: int) -> list[int]:
    """Which units of a column of ``n`` are drawn (all, or the first and last cap/2)."""
    return list(range(n)) if n <= cap else [*range(cap // 2), *range(n - cap // 2, n)]


def chain(
    model: Any,
    *,
    max_neurons: int = 32,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    dpi: int | None = None,
) -> Any:
    """Draw a Chain of Dense layers as neurons and connections (the tutorial's ChainPlot).

    Every layer is a column of circles, the input included: one circle per unit (columns
    wider than ``max_neurons`` show their first and last units and the count). Connections
    of a Dense layer are coloured by the sign of the weight (blue positive, red negative)
    and as wide as its magnitude; a neuron's fill is its bias, on the same scale. A function
    in the chain (``fx.softmax``, a lambda) is a labelled step, joined unit to unit.
    ``dpi`` is the saved file's resolution (100; for more than 200 connections 72, and a PNG
    is saved with a 256-colour palette to stay small).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    stages = _stages(model)
    weights = [np.asarray(s["layer"].weight, float) for s in stages if s["kind"] == "dense"]
    wmax = max([float(np.abs(w).max()) for w in weights if w.size] + [1e-12])
    norm, cmap = Normalize(-wmax, wmax), _cmap()
    tallest = max(min(s["size"], max_neurons) for s in stages)
    spacing = 0.32 if tallest <= 16 else 0.22
    fig = new_figure((1.9 * len(stages) + 1.6, max(3.2, spacing * tallest + 1.8)))
    ax = fig.add_subplot()
    ys = []
    for s in stages:
        idx = _shown(s["size"], max_neurons)
        pos = np.linspace(-(len(idx) - 1) / 2, (len(idx) - 1) / 2, len(idx))
        if s["size"] > max_neurons:  # leave a gap for the ellipsis
            pos = np.where(np.arange(len(idx)) < len(idx) // 2, pos - 0.6, pos + 0.6)
        ys.append(dict(zip(idx, pos)))
    for c in range(1, len(stages)):
        _edges(ax, stages[c], c, ys[c - 1], ys[c], norm, cmap, wmax)
    for c, s in enumerate(stages):
        _column(ax, s, c, ys[c], norm, cmap, tallest)
    ax.set_xlim(-0.6, len(stages) - 0.4)
    ax.set_ylim(-tallest / 2 - 1.6, tallest / 2 + 1.5)
    ax.axis("off")
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.7, pad=0.02)
    bar.set_label("weight: edge colour, width ∝ |weight|\nbias: neuron fill")
    ax.set_title(title or _name(model).replace("<lambda>", "function"))
    edges = sum(w.shape[0] * w.shape[1] for w in weights)
    return save_figure(fig, path, dpi=dpi or (100 if edges <= 200 else 72), compact=edges > 200)


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["RdBu"]


def _edges(ax, stage, c, left, right, norm, cmap, wmax):
    from matplotlib.collections import LineCollection

    if stage["kind"] == "dense":
        w = np.asarray(stage["layer"].weight, float)
        pairs = [(i, j) for j in right for i in left]
        v = np.array([w[j, i] for i, j in pairs])
        thick = 3.0 if len(pairs) <= 200 else 1.5
        lines = LineCollection(
            [[(c - 1, left[i]), (c, right[j])] for i, j in pairs],
            colors=cmap(norm(v)),
            linewidths=0.25 + thick * np.abs(v) / wmax,
            alpha=0.85,
            zorder=1,
            capstyle="round",
        )
        ax.add_collection(lines)
        return
    same = len(left) == len(right)
    pairs = (
        zip(left.values(), right.values())
        if same
        else ((yi, yj) for yi in left.values() for yj in right.values())
    )
    segments = [[(c - 1, yi), (c, yj)] for yi, yj in pairs]
    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=0.8, linestyles="--"))
    top = max(*left.values(), *right.values()) + 0.5
    bottom = min(*left.values(), *right.values()) - 0.5
    ax.fill_between([c - 0.72, c - 0.28], bottom, top, color="#f3eccd", zorder=0, lw=0)
    ax.text(
        c - 0.5,
        top + 0.15,
        stage["label"],
        ha="center",
        va="bottom",
        fontsize=9,
        style="italic",
        wrap=True,
    )


def _column(ax, stage, c, ys, norm, cmap, tallest):
    idx = list(ys)
    if stage["kind"] == "dense":
        b = getattr(stage["layer"], "bias", None)
        fills = [cmap(norm(float(np.asarray(b)[i]))) if b is not None else "white" for i in idx]
    else:
        fills = ["white" if stage["kind"] == "input" else "#eeeeee"] * len(idx)
    size = 260 if tallest <= 16 else 90
    ax.scatter(
        [c] * len(idx),
        [ys[i] for i in idx],
        s=size,
        c=fills,
        edgecolors="black",
        linewidths=1.0,
        zorder=3,
    )
    if stage["size"] > len(idx):
        ax.text(c, 0, "⋮", ha="center", va="center", fontsize=14, zorder=4)
    label = stage["label"]
    if stage["kind"] == "fn":
        label = f"({stage['size']})"
    ax.text(c, -tallest / 2 - 0.8, label, ha="center", va="top", fontsize=9)
