"""Notebooks executed as Jupyter executes them (nbclient, the engine of ``nbconvert
--execute``) in a fresh kernel of this test environment's own Python: the live plot shows a
PNG with every metric, the progress bar ends on the final loss and metrics, and the
tutorial notebooks run end to end and are what ``docs/make_notebooks.py`` writes."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from test_tutorial import SHORTER

import fluxjax

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLUE, ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # the curve's loss, first metric


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory) -> Path:
    """A JAX compilation cache the test kernels share (new for each test run): a program
    compiled once, in one notebook or the other, is loaded, not compiled, the next time."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture
def kernel(tmp_path_factory, monkeypatch, jax_cache) -> str:
    """A kernelspec in a temporary folder that starts ipykernel with this Python and this
    checkout's fluxjax (the one under test), found through JUPYTER_PATH; a fresh IPython
    profile (no user startup files, no %matplotlib) and runtime folder."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "fluxjax-test"
    spec.mkdir(parents=True)
    src = str(Path(fluxjax.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel_json = {"argv": argv, "display_name": "fluxjax tests", "language": "python"}
    kernel_json["env"] = {
        "PYTHONPATH": path,
        "IPYTHONDIR": str(root / "ipython"),
        "JAX_COMPILATION_CACHE_DIR": str(jax_cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel_json))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
    return "fluxjax-test"


def client(nb, kernel: str, cwd: Path):
    return nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=180, resources={"metadata": {"path": str(cwd)}}
    )


def outputs(cell, kind: str) -> list:
    return [o for o in cell.outputs if kind in o.get("data", {})]


def text(cell, name: str = "stdout") -> str:
    return "".join(o.text for o in cell.outputs if o.get("name") == name)


def bar_texts(nb) -> list[str]:
    """The text of every HTML widget (tqdm's widget bar: the count, rate and postfix)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    html = [m["state"]["value"] for m in state.values() if m["model_name"] == "HTMLModel"]
    return [t.replace("\u2007", " ") for t in html]  # tqdm pads with figure spaces


def pixels(png_b64: str, color: tuple[int, int, int]) -> int:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))
    return int((np.abs(image.astype(int) - color).sum(axis=-1) < 40).sum())


LIVE = [
    """import numpy as np, fluxjax as fx
x = np.linspace(-1, 1, 21, dtype=np.float32).reshape(-1, 1)
y = np.sin(3 * x)
xv, yv = x[1::2], y[1::2]
m = fx.Chain(fx.Dense(1, 8, fx.tanh), fx.Dense(8, 1))
loss = lambda x, y: fx.mse(m(x), y)
opt = fx.Adam(0.01)""",
    # the cell: the metric's schedule is not the curve's
    """curve = fx.plots.live(every_seconds=0.2)
h = fx.train(loss, fx.params(m), [(x, y)], opt, epochs=600, progress=True,
             cb=[fx.metrics(every=100, val_loss=lambda: fx.mse(m(xv), yv)), curve])""",
    """import json, sys
labels = [t.get_text() for t in curve.figure.axes[0].get_legend().get_texts()]
print(json.dumps({"final": h.losses[-1], "val": h["val_loss"], "steps": h.steps_of("val_loss"),
                  "curve": curve.series["val_loss"], "labels": labels,
                  "pyplot": "matplotlib.pyplot" in sys.modules}))""",
    # a kernel without ipywidgets: the text bar, one line about the extra, no tqdm warning
    """sys.modules["ipywidgets"] = None  # import ipywidgets fails from here on
for _ in range(2):
    h2 = fx.train(loss, fx.params(m), [(x, y)], opt, epochs=50, progress=True)
print(f"{h2.losses[-1]:.4g}")""",
    "fx.plots.loss_curve(h)  # any fx.plots Figure, returned: a picture in a fresh kernel",
]


def test_live_plot_and_bar_in_a_fresh_kernel(kernel, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in LIVE])
    client(nb, kernel, tmp_path).execute()
    train, report = nb.cells[1], json.loads(text(nb.cells[2]))
    # one picture, PNG, updated in place (no "<Figure size ...>" text, no magic, no pyplot)
    (png,) = outputs(train, "image/png")
    assert base64.b64decode(png["data"]["image/png"]).startswith(b"\x89PNG\r\n")
    assert "Figure" not in json.dumps(train.outputs) and not report["pyplot"]
    # every metric on the curve, at the steps fx.metrics recorded it
    assert report["labels"] == ["loss", "val_loss"]
    assert report["steps"] == list(range(100, 601, 100))
    assert report["curve"] == [report["steps"], report["val"]]
    assert pixels(png["data"]["image/png"], BLUE) > 200
    assert pixels(png["data"]["image/png"], ORANGE) > 200  # val_loss is drawn
    # the widget bar (ipywidgets, no "IProgress" fallback) ends on the final loss and metric
    assert text(train, "stderr") == ""
    (bar,) = [t for t in bar_texts(nb) if "step/s" in t]
    assert "600/600" in bar
    assert f"loss={report['final']:.4g}, val_loss={report['val'][-1]:.4g}]" in bar
    (figure,) = [o["data"] for o in nb.cells[4].outputs]
    assert "image/png" in figure and figure["text/plain"].startswith("<Figure size")
    fallback, final = text(nb.cells[3], "stderr"), text(nb.cells[3]).strip()
    assert fallback.count("pip install 'fluxjax[notebook]'") == 1 and "IProgress" not in fallback
    assert fallback.count("50/50 [") >= 2  # both calls' bars, as text
    assert fallback.rstrip().endswith(f"loss={final}]")


def test_tutorial_notebooks_run_end_to_end(kernel, tmp_path):
    """Both tutorial notebooks, as generated, one after the other (the second loads the
    programs the first compiled from the JAX cache), with the long runs shortened as
    test_tutorial does; the live plot's cell draws and its bar ends on the final loss.
    (This replaces running the pages' programs in the test process.)"""
    runs = []
    for page in ["tutorial.ipynb", "tutorial.pt-BR.ipynb"]:
        nb = nbformat.read(DOCS / page, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                for long, short in SHORTER:
                    cell.source = cell.source.replace(long, short)
        nb.cells.append(nbformat.v4.new_code_cell('print(f"final {h.losses[-1]:.4g}", accuracy)'))
        (tmp_path / page).mkdir()
        client(nb, kernel, tmp_path / page).execute()
        runs.append((page, nb))
    for page, nb in runs:
        code = [c for c in nb.cells if c.cell_type == "code"]
        everything = "".join(text(c) for c in code)
        # the programs did what the page says: pictures written, a classifier that learned
        for name in ["neuron.png", "train.gif", "seed_loss.png", "fit2d.png"]:
            assert (tmp_path / page / name).stat().st_size > 1000, (page, name)
        assert "Adam(eta=0.01)" in everything  # the comparison's table was printed
        final, accuracy = text(code[-1]).split()[1:]
        assert 0.0 <= float(accuracy) <= 1.0
        # every fx.plots Figure a cell returns is a picture too, not "<Figure size ...>"
        figures = [o["data"] for c in code for o in c.outputs if "Figure" in str(o.get("data"))]
        assert figures and all("image/png" in d for d in figures), page
        (live,) = [c for c in code if "fx.plots.live" in c.source]
        assert len(outputs(live, "image/png")) == 1, page
        assert any(f"loss={float(final):.4g}" in t for t in bar_texts(nb)), page


def _make_notebooks():
    spec = importlib.util.spec_from_file_location("make_notebooks", DOCS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial_notebooks_are_up_to_date_with_the_pages(tmp_path):
    make = _make_notebooks()
    assert make.outdated() == [], "run: python docs/make_notebooks.py"
    for page in make.PAGES:  # valid notebooks, a cell per Python block of the page
        nb = nbformat.read(DOCS / page.replace(".md", ".ipynb"), as_version=4)
        nbformat.validate(nb)
        page_text = (DOCS / page).read_text()
        assert sum(c.cell_type == "code" for c in nb.cells) == page_text.count("```python")
    # and the check fails when a page changes
    for page in make.PAGES:
        (tmp_path / page).write_text((DOCS / page).read_text() + "\nmore\n")
        (tmp_path / page.replace(".md", ".ipynb")).write_text(
            (DOCS / page.replace(".md", ".ipynb")).read_text()
        )
    assert make.outdated(tmp_path) == make.PAGES


def test_the_live_plot_is_in_the_training_section():
    nb = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    section = None
    for cell in nb.cells:
        heading = [ln for ln in cell.source.splitlines() if ln.startswith("## ")]
        if cell.cell_type == "markdown" and heading:
            section = heading[-1]
        if cell.cell_type == "code" and "fx.plots.live" in cell.source:
            assert section == "## Chapters 5 and 6: training the 1-D fit"
            assert "progress=True" in cell.source and "fx.metrics(" in cell.source
            return
    pytest.fail("no cell of docs/tutorial.ipynb uses fx.plots.live")
