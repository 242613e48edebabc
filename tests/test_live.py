"""fx.plots.live: a loss curve redrawn in place in Jupyter (IPython faked here; real kernels
in test_notebooks.py), nothing outside a notebook; and progress=True's bar (fluxjax.progress)
ends on the final loss and shows the metrics."""

from __future__ import annotations

import sys
import types

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fx

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(-1, 1)
Y = 3 * X + 0.5
ETA = 0.1


def reference_losses(n: int) -> list[float]:
    x, y, w, out = X.astype(np.float64), Y.astype(np.float64), 0.0, []
    for _ in range(n):
        out.append(float(np.mean((w * x - y) ** 2)))
        w -= ETA * float(np.mean(2 * (w * x - y) * x))
    return out


class Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(("update", obj))


@pytest.fixture
def notebook(monkeypatch):
    """A fake Jupyter: IPython.get_ipython() with a kernel, and IPython.display.display."""
    shown: list = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    ipython.version_info = (9, 0)  # matplotlib asks
    display = types.ModuleType("IPython.display")

    class Image:  # IPython.display.Image(data=png_bytes, format="png")
        def __init__(self, data, format):
            self.data, self.format = data, format

    def show(obj, display_id=False):
        assert display_id is True  # the first draw asks for a handle to update in place
        shown.append(("display", obj))
        return Handle(shown)

    display.display = show
    display.Image = Image
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return shown


def run(cb, n=6, calls=1):
    m = fx.Dense(jnp.zeros((1, 1)), False)
    for _ in range(calls):
        fx.train(
            lambda x, y: fx.mse(m(x), y),
            fx.params(m),
            [(X, Y)] * n,
            fx.Descent(ETA),
            cb=cb,
            steps_per_call=1,
        )


def test_live_draws_once_then_updates_in_place(notebook):
    now = [0.0]
    curve = fx.plots.live(every_seconds=1.0, clock=lambda: now[0])
    assert curve.active and curve.steps_until(0, None) == 1
    assert curve.steps_until(0, 0.001) == 50  # 20 samples a second at 1 ms a step

    def tick(ctx):
        now[0] += 0.4  # each step takes 0.4 s on the fake clock

    run([tick, curve], n=6)
    kinds = [k for k, _ in notebook]
    # drawn at step 1 (t=0.4), then when a second has passed: step 4 (t=1.6); and at the end
    assert kinds == ["display", "update", "update"]
    steps, losses = curve.series["loss"]
    assert steps == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(losses, reference_losses(6), rtol=1e-5)
    line = curve.figure.axes[0].get_lines()[0]  # the figure shows those points
    np.testing.assert_allclose(line.get_ydata(), reference_losses(6), rtol=1e-5)
    shown = notebook[-1][1]  # PNG bytes: a fresh kernel shows them without %matplotlib
    assert shown.format == "png" and shown.data.startswith(b"\x89PNG\r\n")


def test_live_continues_across_train_calls_and_plots_metrics(notebook):
    curve = fx.plots.live(every_seconds=100.0)

    def metric(ctx):
        ctx.metrics["half"] = ctx.loss / 2

    run([metric, curve], n=2, calls=2)
    assert curve.series["loss"][0] == [1, 2, 3, 4]
    np.testing.assert_allclose(curve.series["half"][1], np.array(reference_losses(4)) / 2, 1e-5)
    # the first step, then the end of each call (finish draws what is new)
    assert [k for k, _ in notebook] == ["display", "update", "update"]
    labels = [t.get_text() for t in curve.figure.axes[0].get_legend().get_texts()]
    assert labels == ["loss", "half"]


def test_live_samples_spans_and_the_last_step(notebook):
    curve = fx.plots.live(every_seconds=100.0, samples=1)
    curve.steps_until = lambda step, sps: 4  # a span of 4 steps between samples
    run(curve, n=10)  # no plain callback: the steps between samples may run fused
    assert curve.series["loss"][0] == [4, 8, 10]  # 10: the run's last step (at_end)
    np.testing.assert_allclose(
        curve.series["loss"][1], np.array(reference_losses(10))[[3, 7, 9]], 1e-5
    )


def test_live_does_nothing_outside_a_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    curve = fx.plots.live()
    assert not curve.active and curve.steps_until(5, 1e-6) >= 2**31 - 1
    run(curve, n=3)
    assert curve.points() == 0
    with pytest.raises(ValueError, match="every_seconds must be > 0"):
        fx.plots.live(every_seconds=0)


def test_live_draws_metrics_at_their_own_steps_whatever_the_schedules(notebook):
    m = fx.Dense(jnp.zeros((1, 1)), False)
    curve = fx.plots.live(every_seconds=100.0, samples=1)
    curve.steps_until = lambda step, sps: 7  # the curve samples at 7, 14, 20
    val = fx.metrics(every=3, val=lambda: fx.mse(m(X), Y))  # at 3, 6, ..., 18
    seen = []
    h = fx.train(
        lambda x, y: fx.mse(m(x), y),
        fx.params(m),
        [(X, Y)] * 10,
        fx.Descent(ETA),
        epochs=2,
        cb=[val, curve, fx.every(5, lambda ctx: seen.append(ctx.history))],
    )
    assert seen and all(s is h for s in seen)  # ctx.history: this call's TrainHistory
    steps, values = curve.series["val"]
    assert steps == [3, 6, 9, 12, 15, 18] == h.steps_of("val")
    np.testing.assert_allclose(values, h["val"], rtol=1e-6)
    assert curve.series["loss"][0] == [7, 14, 20]
    labels = [t.get_text() for t in curve.figure.axes[0].get_legend().get_texts()]
    assert labels == ["loss", "val"]
    # a second call continues both curves after the first call's 20 steps
    fx.train(
        lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)] * 3, fx.Descent(ETA), cb=[val, curve]
    )
    assert curve.series["val"][0][-1] == 23 and curve.series["loss"][0][-1] == 23


def test_progress_bar_ends_on_the_final_loss_with_the_metrics(monkeypatch, capsys):
    m = fx.Dense(jnp.zeros((1, 1)), False)
    h = fx.train(
        lambda x, y: fx.mse(m(x), y),
        fx.params(m),
        [(X, Y)] * 3,
        fx.Descent(ETA),
        progress=True,
        epochs=40,
        cb=fx.metrics(every=7, half=lambda: fx.mse(m(X), Y) / 2),
    )
    last = capsys.readouterr().err.split("\r")[-1]
    assert "120/120" in last
    assert f"loss={h.losses[-1]:.4g}," in last  # the last step's, not one 0.2 s old
    assert f"half={h['half'][-1]:.4g}]" in last  # the metric's latest value (step 119)
    assert "IProgress" not in last


def test_progress_bar_reads_the_loss_only_when_it_redraws():
    import io

    from fluxjax.progress import Bar

    now, reads = [0.0], []

    def loss(v):
        return lambda: reads.append(v) or v

    out = io.StringIO()
    bar = Bar(10, file=out, every=0.25, clock=lambda: now[0])
    for i in range(1, 10):
        now[0] += 0.0625  # a redraw every 4 steps
        bar.update(1, loss(float(i)))
    assert reads == [4.0, 8.0] and bar.bar.n == 8
    bar.metrics({"acc": jnp.float32(0.5), "name": "x", "w": np.ones(3)})
    bar.update(1, loss(10.0))
    bar.close()
    assert reads == [4.0, 8.0, 10.0] and bar.bar.n == 10
    assert out.getvalue().split("\r")[-1].rstrip().endswith("loss=10, acc=0.5]")  # numbers only


def test_progress_bar_in_a_kernel_without_ipywidgets_says_so_once(monkeypatch, capsys):
    from fluxjax import progress

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets fails
    monkeypatch.setattr(progress, "_told", [False])
    for _ in range(2):
        progress.Bar(2).close()
    err = capsys.readouterr().err
    assert err.count("pip install 'fluxjax[notebook]'") == 1 and "0/2" in err
    assert progress._tqdm_class().__module__ == "tqdm.std"
    monkeypatch.delitem(sys.modules, "ipywidgets")
    pytest.importorskip("ipywidgets")
    assert progress._tqdm_class().__module__ == "tqdm.notebook"  # the widget bar
