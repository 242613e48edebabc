"""Pictures of training (matplotlib): loss curves, fits, a GIF of the fit as training goes,
a Chain drawn as neurons and connections, and optimiser paths over a contour plot.

Every function returns the matplotlib ``Figure`` and saves it when given ``path=`` (the
format follows the file's extension). matplotlib is imported only when a function here is
called (``pip install 'fluxjax[plots]'``); without a display it draws with the Agg backend.

>>> import fluxjax as fx
>>> from fluxjax import plots
>>> fig = plots.loss_curve({"Adam": [1.0, 0.5, 0.2], "Descent": [1.0, 0.8, 0.7]})
>>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
['Adam', 'Descent']
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["loss_curve", "fit", "animate_training", "chain", "trajectories"]

_NEEDS = "fx.plots needs matplotlib: pip install 'fluxjax[plots]'"
_BATCH_BACKENDS = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


# ---- matplotlib, lazily ----------------------------------------------------------------------


def _mpl() -> Any:
    """Import matplotlib (Agg when there is no display), or say which extra to install."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(_NEEDS) from e
    if "matplotlib.pyplot" not in sys.modules and _headless():
        matplotlib.use("Agg")
    return matplotlib


def _headless() -> bool:
    if sys.platform.startswith("linux"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def _figure(figsize: tuple[float, float]) -> Any:
    """A new Figure: through pyplot only for a GUI backend (so ``plt.show()`` works), else a
    free-standing Figure (no global registry, shown once in Jupyter when returned)."""
    mpl = _mpl()
    if "matplotlib.pyplot" in sys.modules:
        backend = str(mpl.get_backend()).lower()
        if backend not in _BATCH_BACKENDS and "inline" not in backend:
            import matplotlib.pyplot as plt

            return plt.figure(figsize=figsize)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(
    fig: Any, path: str | os.PathLike[str] | None, dpi: int = 100, compact: bool = False
) -> Any:
    """Save ``fig`` to ``path`` (if given); ``compact`` PNGs are reduced to a 256-colour
    palette (diagrams with thousands of antialiased lines shrink about threefold)."""
    if path is None:
        return fig
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not (compact and str(path).lower().endswith(".png")):
        fig.savefig(path, dpi=dpi)
        return fig
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            path, optimize=True
        )
    return fig


_LONG = 4  # legends with more entries go to the right of the axes, on a wider figure


def _legend(ax: Any) -> None:
    """A legend inside the axes, or to their right when it is long."""
    n = len(ax.get_legend_handles_labels()[1])
    if n > _LONG:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, framealpha=0.9)
    elif n:
        ax.legend(loc="best", framealpha=0.9)


def _wide(figsize: tuple[float, float], entries: int) -> tuple[float, float]:
    return (figsize[0] + 3.2, figsize[1]) if entries > _LONG else figsize


def _colors(n: int) -> list[Any]:
    cycle = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    cycle += ["#7f7f7f", "#bcbd22", "#17becf"]
    return [cycle[i % len(cycle)] for i in range(n)]


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
) -> Any:
    """Plot one or several loss histories on one axis.

    * ``history``: an ``fx.train`` result (``TrainHistory``), an ``fx.History``, a list of
      floats, a list of those (name them with ``labels``), a dict name → history, or a
      ``fx.lab.Comparison``.
    * ``log``: logarithmic loss axis; ``None`` chooses it when every loss is positive and they
      span more than a factor 30.
    * ``x="epoch"`` plots each epoch's mean loss against the epoch (histories that know their
      epochs), so runs with different batch counts per epoch line up.
    """
    runs = _runs(history, labels)
    fig = _figure(_wide(figsize, sum(name is not None for name, _ in runs)))
    ax = fig.add_subplot()
    everything = []
    for (name, h), color in zip(runs, _colors(len(runs))):
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
    _legend(ax)
    return _save(fig, path)


# ---- fits ------------------------------------------------------------------------------------


def _in_dim(model: Any, data: Any) -> int:
    if data is not None:
        return int(np.shape(data[0])[-1]) if np.ndim(data[0]) > 1 else 1
    for layer in _flatten(model):
        w = getattr(layer, "weight", None)
        if w is not None and np.ndim(w) == 2:
            return int(np.shape(w)[1])
    return 1


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp

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
    d = _in_dim(next(iter(_models(model)))[1], data)
    if d == 1:
        return _fit1d(model, f, data, xlim, n, title, path, figsize)
    if d == 2:
        return _fit2d(model, f, data, xlim, ylim, title, path, figsize)
    raise ValueError(f"plots.fit draws models of 1 or 2 inputs; this one takes {d}")


def _limits(data: Any, column: int, given: Any, default: tuple[float, float]) -> tuple:
    if given is not None:
        return tuple(given)
    if data is None:
        return default
    x = np.asarray(data[0], dtype=float).reshape(len(data[0]), -1)[:, column]
    return float(x.min()), float(x.max())


def _fit1d(model, f, data, xlim, n, title, path, figsize):
    lo, hi = _limits(data, 0, xlim, (0.0, 1.0))
    xs = np.linspace(lo, hi, n).reshape(-1, 1)
    models = _models(model)
    entries = len(models) + (data is not None) + (f is not None)
    fig = _figure(figsize or _wide((6.4, 4.2), entries))
    ax = fig.add_subplot()
    if data is not None:
        x, y = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in data)
        ax.scatter(x[:, 0], y[:, 0], s=22, color="black", zorder=3, label="data")
    if f is not None:
        ys = np.asarray(f(xs), dtype=float).reshape(n, -1)
        ax.plot(xs[:, 0], ys[:, 0], "--", color="0.45", lw=1.5, label="true f(x)")
    for (name, m), color in zip(models, _colors(len(models))):
        ys = _predict(m, xs)
        for k in range(ys.shape[1]):
            suffix = f" (output {k + 1})" if ys.shape[1] > 1 else ""
            ax.plot(xs[:, 0], ys[:, k], color=color, lw=2, label=name + suffix)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _fit2d(model, f, data, xlim, ylim, title, path, figsize):
    xlo, xhi = _limits(data, 0, xlim, (-math.pi, math.pi))
    ylo, yhi = _limits(data, 1, ylim, (-math.pi, math.pi))
    gx, gy = np.meshgrid(np.linspace(xlo, xhi, 41), np.linspace(ylo, yhi, 41))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    panels = [(name, _predict(m, grid)[:, 0]) for name, m in _models(model)]
    if f is not None:
        panels.append(("true f(x, y)", np.asarray(f(grid), dtype=float).reshape(len(grid))))
    fig = _figure(figsize or (4.6 * len(panels), 4.4))
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
    return _save(fig, path)


# ---- the fit as training goes (GIF) ----------------------------------------------------------


def _load(model: Any, snapshot: Any) -> Any:
    """The model to draw for one snapshot: a model as is, or ``model`` with these arrays."""
    from .autodiff import params

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
    fig = _figure((6.0, 4.0))
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
    lo, hi = _limits(data, 0, xlim, (0.0, 1.0))
    xs = np.linspace(lo, hi, 200)
    curves, notes = [], []
    if snapshots is not None:
        for s in snapshots:
            curves.append(_predict(_load(model, s), xs.reshape(-1, 1))[:, 0])
            notes.append("")
    else:
        for i in range(frames):
            out = step(i) if i > 0 else None
            curves.append(_predict(model, xs.reshape(-1, 1))[:, 0])
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


# ---- a Chain as neurons ----------------------------------------------------------------------


def _flatten(model: Any) -> list[Any]:
    layers = getattr(model, "layers", None)
    if layers is None:
        return [model]
    return [leaf for layer in layers for leaf in _flatten(layer)]


def _name(f: Any) -> str:
    from .module import Module, show

    if isinstance(f, Module):
        return show(f)
    name = getattr(f, "__name__", None) or type(f).__name__
    return "function" if name == "<lambda>" else name


def _stages(model: Any) -> list[dict[str, Any]]:
    """The columns of the drawing: the input, then one per layer (size from eval_shape)."""
    import jax
    import jax.numpy as jnp

    layers = _flatten(model)
    n_in = _in_dim(model, None)
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
    fig = _figure((1.9 * len(stages) + 1.6, max(3.2, spacing * tallest + 1.8)))
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
    return _save(fig, path, dpi=dpi or (100 if edges <= 200 else 72), compact=edges > 200)


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


# ---- optimiser paths -------------------------------------------------------------------------


def trajectories(
    f: Any,
    paths: Mapping[str, Any] | None = None,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    minimum: Sequence[tuple[float, float]] | None = None,
    levels: int = 30,
    log: bool | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Optimiser paths over a contour plot of a function of two variables.

    * ``f``: a function of an ``(..., 2)`` array returning ``(...)`` values (NumPy), or a
      ``fx.lab.Comparison`` of a 2-D problem (then ``paths``, limits, minimum and title come
      from it).
    * ``paths``: dict label → ``(n, 2)`` array of the points visited.
    * ``minimum``: points to mark as minima; ``log``: logarithmic contour levels (default when
      ``f`` is positive on the plotted area).
    """
    if hasattr(f, "paths") and hasattr(f, "problem"):
        result = f
        prob = result.problem
        if prob.f is None:
            raise ValueError(f"trajectories: problem {prob.name!r} is not a 2-D function")
        f, paths = prob.f, paths or result.paths
        xlim, ylim = xlim or prob.xlim, ylim or prob.ylim
        minimum = prob.minimum if minimum is None else minimum
        title = title or f"{prob.name}: paths of {result.steps} steps"
    paths = {k: np.asarray(v, float).reshape(-1, 2) for k, v in (paths or {}).items()}
    xlim = xlim or _span([p[:, 0] for p in paths.values()])
    ylim = ylim or _span([p[:, 1] for p in paths.values()])
    fig = _figure((6.4, 5.0))
    ax = fig.add_subplot()
    _contour(fig, ax, f, xlim, ylim, levels, log)
    widths = np.linspace(3.2, 1.4, len(paths)) if len(paths) > 1 else [1.8]
    for (name, p), color, lw in zip(paths.items(), _colors(len(paths)), widths):
        # earlier paths are drawn wider, so a path that another one retraces stays visible
        ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=lw, label=name, zorder=3)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=color, ms=6, mec="black", zorder=4)
    if paths:
        start = next(iter(paths.values()))[0]
        ax.plot(*start, "s", color="white", mec="black", ms=7, zorder=5, label="start")
    for i, m in enumerate(minimum or ()):
        ax.plot(
            *m, "*", color="gold", mec="black", ms=14, zorder=5, label="minimum" if i == 0 else None
        )
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _span(columns: list[np.ndarray]) -> tuple[float, float]:
    if not columns:
        return (-1.0, 1.0)
    v = np.concatenate(columns)
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    pad = 0.15 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def _contour(fig, ax, f, xlim, ylim, levels, log):
    from matplotlib.colors import LogNorm

    gx, gy = np.meshgrid(np.linspace(*xlim, 240), np.linspace(*ylim, 240))
    z = np.asarray(f(np.stack([gx, gy], axis=-1)), dtype=float)
    zmin, zmax = float(np.nanmin(z)), float(np.nanmax(z))
    if log is None:
        log = zmin >= 0 and zmax > 100 * max(zmin, 1e-12)
    if log:
        lo = max(zmin, zmax * 1e-6, 1e-12)
        lv = np.logspace(math.log10(lo), math.log10(zmax), levels)
        cs = ax.contour(
            gx,
            gy,
            np.maximum(z, lo),
            levels=lv,
            norm=LogNorm(lo, zmax),
            cmap="viridis",
            linewidths=0.8,
            alpha=0.8,
        )
    else:
        cs = ax.contour(gx, gy, z, levels=levels, cmap="viridis", linewidths=0.8, alpha=0.8)
    bar = fig.colorbar(cs, ax=ax, shrink=0.85)
    bar.set_label("f(x, y)" + (" (log scale)" if log else ""))
    if log:
        from matplotlib.ticker import LogFormatterMathtext

        decades = np.arange(math.ceil(math.log10(lo)), math.floor(math.log10(zmax)) + 1)
        bar.set_ticks(10.0 ** decades[:: max(1, len(decades) // 6)])
        bar.ax.yaxis.set_major_formatter(LogFormatterMathtext())
        bar.ax.yaxis.set_minor_formatter(LogFormatterMathtext(labelOnlyBase=True))
