"""matplotlib, imported lazily, and the figure helpers every picture shares."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..progress import in_notebook

_NEEDS = "fx.plots needs matplotlib: pip install 'fluxjax[plots]'"
_BATCH_BACKENDS = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


# ---- matplotlib, lazily ----------------------------------------------------------------------


def matplotlib_module() -> Any:
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


def new_figure(figsize: tuple[float, float]) -> Any:
    """A new Figure: through pyplot only for a GUI backend (so ``plt.show()`` works), else a
    free-standing Figure (no global registry, shown once in Jupyter when returned: in a
    kernel, a PNG formatter for Figures is registered if none is, as ``%matplotlib inline``
    would)."""
    mpl = matplotlib_module()
    _png_formatter()
    if "matplotlib.pyplot" in sys.modules:
        backend = str(mpl.get_backend()).lower()
        if backend not in _BATCH_BACKENDS and "inline" not in backend:
            import matplotlib.pyplot as plt

            return plt.figure(figsize=figsize)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _png(fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _png_formatter() -> None:
    """In a Jupyter kernel where nothing taught IPython to draw a matplotlib Figure (a fresh
    kernel, before any ``%matplotlib``), register PNG output for it; otherwise leave the
    user's choice alone. Outside a kernel: nothing (IPython is not imported)."""
    if not in_notebook():
        return
    from matplotlib.figure import Figure

    shell = sys.modules["IPython"].get_ipython()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", {})
    png = formatters.get("image/png")
    if png is None:
        return
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, _png)


def save_figure(
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


def add_legend(ax: Any) -> None:
    """A legend inside the axes, or to their right when it is long."""
    n = len(ax.get_legend_handles_labels()[1])
    if n > _LONG:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, framealpha=0.9)
    elif n:
        ax.legend(loc="best", framealpha=0.9)


def wide_figsize(figsize: tuple[float, float], entries: int) -> tuple[float, float]:
    return (figsize[0] + 3.2, figsize[1]) if entries > _LONG else figsize


def line_colors(n: int) -> list[Any]:
    cycle = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    cycle += ["#7f7f7f", "#bcbd22", "#17becf"]
    return [cycle[i % len(cycle)] for i in range(n)]
