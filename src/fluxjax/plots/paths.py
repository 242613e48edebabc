"""Optimiser paths over a contour plot of the function they minimise."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._backend import line_colors, new_figure, save_figure

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
    fig = new_figure((6.4, 5.0))
    ax = fig.add_subplot()
    _contour(fig, ax, f, xlim, ylim, levels, log)
    widths = np.linspace(3.2, 1.4, len(paths)) if len(paths) > 1 else [1.8]
    for (name, p), color, lw in zip(paths.items(), line_colors(len(paths)), widths):
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
    return save_figure(fig, path)


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
