"""fx.plots: every function returns a Figure, saves a decodable picture, labels its axes."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

import fluxjax as fx
from fluxjax import datasets, lab, plots

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


def picture(path, kind="PNG", frames=None):
    with Image.open(path) as im:
        assert im.format == kind
        w, h = im.size
        assert 200 <= w <= 2000 and 150 <= h <= 1600
        if frames is not None:
            assert im.n_frames == frames
        im.seek(0)
        im.convert("RGB").load()  # decodes


def legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture(scope="module")
def trained():
    """The tutorial's model after a few epochs, its data and the history."""
    x, y = datasets.seed_data()
    m = lab.seed_model()
    h = fx.train(lambda a, b: fx.mse(m(a), b), fx.params(m), [(x, y)], fx.Adam(0.05), epochs=40)
    return m, (x, y), h


# ---- loss_curve ----------------------------------------------------------------------------


def test_loss_curve_from_every_kind_of_history(tmp_path, trained):
    _, _, h = trained
    record = fx.History()
    for i, v in enumerate([3.0, 2.0, 1.5], start=1):
        record(fx.StepContext(epoch=1, step=i, loss=v))
    fig = plots.loss_curve(
        {"train": h, "History": record, "list": [4.0, 1.0, 0.5]}, path=tmp_path / "l.png"
    )
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert legend(ax) == ["train", "History", "list"]
    assert ax.get_xlabel() == "step" and ax.get_ylabel().startswith("loss")
    assert len(ax.lines[0].get_xdata()) == len(h.losses)
    picture(tmp_path / "l.png")


def test_loss_curve_single_run_has_no_legend_and_labels_name_runs():
    fig = plots.loss_curve([1.0, 0.5, 0.25])
    assert fig.axes[0].get_legend() is None
    fig = plots.loss_curve([[1.0, 0.5], [2.0, 1.0]], labels=["a", "b"])
    assert legend(fig.axes[0]) == ["a", "b"]
    with pytest.raises(ValueError, match="2 runs but 1 labels"):
        plots.loss_curve([[1.0, 0.5], [2.0, 1.0]], labels=["a"])


def test_loss_curve_log_scale_choice():
    assert plots.loss_curve([100.0, 1.0, 0.01]).axes[0].get_yscale() == "log"
    assert plots.loss_curve([1.0, 0.9, 0.8]).axes[0].get_yscale() == "linear"
    assert plots.loss_curve([1.0, 0.9], log=True).axes[0].get_yscale() == "log"
    assert plots.loss_curve([1.0, -0.25]).axes[0].get_yscale() == "linear"  # negative: never log
    assert plots.loss_curve([100.0, 0.01], log=False).axes[0].get_yscale() == "linear"


def test_loss_curve_per_epoch_means():
    h = fx.History()
    h.losses, h.steps, h.epochs = [4.0, 2.0, 1.0, 3.0], [1, 2, 3, 4], [1, 1, 2, 2]
    ax = plots.loss_curve(h, x="epoch").axes[0]
    assert ax.lines[0].get_xdata().tolist() == [1.0, 2.0]
    assert ax.lines[0].get_ydata().tolist() == [3.0, 2.0]
    assert ax.get_xlabel() == "epoch"
    with pytest.raises(ValueError, match="x must be 'step' or 'epoch'"):
        plots.loss_curve(h, x="time")


def test_long_legends_move_beside_the_axes():
    fig = plots.loss_curve({str(i): [1.0, 0.5] for i in range(6)})
    assert fig.get_size_inches()[0] > 8  # widened to hold the legend
    assert len(legend(fig.axes[0])) == 6


# ---- fit -----------------------------------------------------------------------------------


def test_fit_1d_draws_data_true_function_and_each_model(tmp_path, trained):
    m, data, _ = trained
    fig = plots.fit({"trained": m, "start": lab.seed_model()}, datasets.seed_function, data,
                    title="t", path=tmp_path / "fit.png")  # fmt: skip
    ax = fig.axes[0]
    assert legend(ax) == ["data", "true f(x)", "trained", "start"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "t")
    model_line = ax.lines[1]
    xs = model_line.get_xdata()
    np.testing.assert_allclose(model_line.get_ydata(), np.asarray(m(xs.reshape(-1, 1))).ravel(),
                               rtol=1e-5)  # fmt: skip
    assert xs.min() == 0.0 and xs.max() == 1.0  # the data's range
    picture(tmp_path / "fit.png")


def test_fit_1d_without_data_uses_xlim():
    fig = plots.fit(fx.Dense(1, 1, fx.sigmoid), xlim=(-5, 5))
    xs = fig.axes[0].lines[0].get_xdata()
    assert (xs.min(), xs.max()) == (-5.0, 5.0)
    assert legend(fig.axes[0]) == ["model"]


def test_fit_2d_draws_model_and_function_surfaces(tmp_path):
    xy, z = datasets.grid2d()
    fig = plots.fit(lab.fit2d_model(), datasets.sin_sin, (xy, z), path=tmp_path / "f2.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["model", "true f(x, y)"]
    for ax in fig.axes:
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x", "y", "z")
    picture(tmp_path / "f2.png")


def test_fit_rejects_three_inputs():
    with pytest.raises(ValueError, match="1 or 2 inputs; this one takes 3"):
        plots.fit(fx.Dense(3, 1))


# ---- animate_training ----------------------------------------------------------------------


def test_animate_training_with_a_step_function(tmp_path):
    x, y = datasets.seed_data()
    m = lab.seed_model()
    ps, opt = fx.params(m), fx.Adam(0.05)
    loss = lambda a, b: fx.mse(m(a), b)  # noqa: E731
    calls = []

    def step(i):
        calls.append(i)
        return fx.train(loss, ps, [(x, y)], opt, epochs=5)

    fig = plots.animate_training(m, step, frames=4, f=datasets.seed_function, data=(x, y),
                                 path=tmp_path / "t.gif")  # fmt: skip
    assert calls == [1, 2, 3]
    assert "loss" in fig.axes[0].get_title()
    picture(tmp_path / "t.gif", "GIF", frames=4)


def test_animate_training_from_snapshots_leaves_the_last(tmp_path):
    m = lab.seed_model()
    ps = fx.params(m)
    first = [np.asarray(p) for p in ps]
    last = [a * 0.5 for a in first]
    fig = plots.animate_training(m, snapshots=[first, last, lab.seed_model()],
                                 labels=["a", "b", "c"], path=tmp_path / "s.gif")  # fmt: skip
    picture(tmp_path / "s.gif", "GIF", frames=3)
    np.testing.assert_allclose(np.asarray(m[1].weight), last[2])
    assert fig.axes[0].get_title().endswith(": c")


def test_animate_training_argument_errors():
    m = lab.seed_model()
    with pytest.raises(TypeError, match="either step"):
        plots.animate_training(m)
    with pytest.raises(ValueError, match="holds 1 arrays but the model has 4"):
        plots.animate_training(m, snapshots=[[np.zeros(1)]])
    with pytest.raises(ValueError, match="2 frames but 1 labels"):
        plots.animate_training(m, snapshots=[lab.seed_model()] * 2, labels=["x"])


# ---- chain ---------------------------------------------------------------------------------


def neurons(fig):
    """How many circles the chain drawing has (scatter points)."""
    from matplotlib.collections import PathCollection

    return sum(
        len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection)
    )


def test_chain_draws_every_neuron_and_every_connection(tmp_path):
    m = fx.Chain(fx.Dense(4, 7, fx.hardsigmoid), fx.Dense(7, 2, fx.softplus), fx.Dense(2, 5))
    fig = plots.chain(m, path=tmp_path / "c.png")
    assert neurons(fig) == 4 + 7 + 2 + 5
    from matplotlib.collections import LineCollection

    segments = sum(len(c.get_segments()) for c in fig.axes[0].collections
                   if isinstance(c, LineCollection))  # fmt: skip
    assert segments == 4 * 7 + 7 * 2 + 2 * 5
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "input (4)" in texts and "Dense 4→7\nhardsigmoid" in texts and "Dense 2→5" in texts
    assert fig.axes[1].get_ylabel().startswith("weight")  # the colour bar says what colour means
    picture(tmp_path / "c.png")


def test_chain_edges_follow_the_weights():
    d = fx.Dense(np.array([[2.0, -1.0]]), np.array([0.0]))
    fig = plots.chain(fx.Chain(d))
    from matplotlib.collections import LineCollection

    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    widths = lines.get_linewidths()
    assert widths[0] > widths[1]  # |2| > |-1|
    red, blue = lines.get_colors()[1], lines.get_colors()[0]
    assert blue[2] > blue[0] and red[0] > red[2]  # positive blue, negative red


def test_chain_functions_are_labelled_steps(tmp_path):
    def contrast(x):
        return fx.sigmoid(20 * (x - 0.5))

    m = fx.Chain(contrast, fx.Dense(64, 28, fx.relu), fx.Dense(28, 10), fx.softmax)
    fig = plots.chain(m, max_neurons=16, path=tmp_path / "d.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "contrast" in texts and "softmax" in texts and "(10)" in texts
    assert texts.count("⋮") == 3  # 64, 64 and 28 units are shown in part
    assert neurons(fig) == 16 + 16 + 16 + 10 + 10
    picture(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size < 300_000


def test_chain_of_one_dense_layer_and_lambdas():
    fig = plots.chain(fx.Dense(2, 3))
    assert neurons(fig) == 5
    fig = plots.chain(fx.Chain(fx.Dense(1, 2), lambda x: x**3, fx.Dense(2, 1)))
    assert "function" in [t.get_text() for t in fig.axes[0].texts]
    assert neurons(fig) == 1 + 2 + 2 + 1


# ---- trajectories --------------------------------------------------------------------------


def test_trajectories_from_a_comparison(tmp_path):
    result = lab.compare(["Descent(0.001)", "Adam(0.05)"], "rosenbrock", steps=15)
    fig = plots.trajectories(result, path=tmp_path / "p.png")
    ax = fig.axes[0]
    assert legend(ax) == ["Descent(0.001)", "Adam(0.05)", "start", "minimum"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert ax.get_xlim() == (-2.0, 2.0)
    np.testing.assert_allclose(ax.lines[2].get_xdata(), result.paths["Adam(0.05)"][:, 0])
    assert "log" in fig.axes[1].get_ylabel()
    picture(tmp_path / "p.png")
    fig = result.plot_losses(path=tmp_path / "pl.png")
    assert legend(fig.axes[0]) == ["Descent(0.001)", "Adam(0.05)"]
    picture(tmp_path / "pl.png")


def test_trajectories_from_a_function_and_paths():
    def bowl(p):
        return p[..., 0] ** 2 + 3 * p[..., 1] ** 2

    path = np.array([[1.0, 1.0], [0.5, 0.2], [0.1, 0.0]])
    fig = plots.trajectories(bowl, {"mine": path}, minimum=[(0.0, 0.0)], log=False)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 0.1 and hi > 1.0  # framed around the path
    assert "log" not in fig.axes[1].get_ylabel()


def test_trajectories_refuses_a_fit_problem():
    result = lab.compare(["Descent"], "seed", steps=2)
    with pytest.raises(ValueError, match="not a 2-D function"):
        plots.trajectories(result)


# ---- without matplotlib --------------------------------------------------------------------


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'fluxjax\[plots\]'"):
        plots.loss_curve([1.0, 0.5])


def test_import_fluxjax_does_not_import_matplotlib():
    import subprocess

    code = "import sys, fluxjax, fluxjax.plots, fluxjax.lab; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
