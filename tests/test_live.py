"""fx.plots.live: a loss curve redrawn in place in Jupyter (IPython faked here), nothing
outside a notebook; and progress=True draws its bar with tqdm.auto (a widget in Jupyter)."""

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

    def show(obj, display_id=False):
        assert display_id is True  # the first draw asks for a handle to update in place
        shown.append(("display", obj))
        return Handle(shown)

    display.display = show
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
    line = notebook[-1][1].axes[0].get_lines()[0]  # the figure shows those points
    np.testing.assert_allclose(line.get_ydata(), reference_losses(6), rtol=1e-5)


def test_live_continues_across_train_calls_and_plots_metrics(notebook):
    curve = fx.plots.live(every_seconds=100.0)

    def metric(ctx):
        ctx.metrics["half"] = ctx.loss / 2

    run([metric, curve], n=2, calls=2)
    assert curve.series["loss"][0] == [1, 2, 3, 4]
    np.testing.assert_allclose(curve.series["half"][1], np.array(reference_losses(4)) / 2, 1e-5)
    # the first step, then the end of each call (finish draws what is new)
    assert [k for k, _ in notebook] == ["display", "update", "update"]
    labels = [t.get_text() for t in notebook[-1][1].axes[0].get_legend().get_texts()]
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


def test_progress_bar_comes_from_tqdm_auto(monkeypatch):
    import tqdm.auto

    made = []

    class Bar:
        def __init__(self, **kw):
            made.append(kw)
            self.n = 0

        def update(self, n):
            self.n += n

        def set_postfix(self, **kw):
            pass

        def close(self):
            made.append(self.n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    m = fx.Dense(jnp.zeros((1, 1)), False)
    fx.train(
        lambda x, y: fx.mse(m(x), y),
        fx.params(m),
        [(X, Y)] * 3,
        fx.Descent(ETA),
        progress=True,
        epochs=2,
    )
    assert made[0]["total"] == 6 and made[-1] == 6  # tqdm.auto: a widget bar in Jupyter
