"""fx.metrics: validation values at the scheduled steps (against a float64 NumPy loop),
compiled once with the model's arrays as inputs, kept on the device, read by loggers and
stoppers, recorded in the history (in step-by-step and fused runs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import fluxjax as fx
from fluxjax import mode

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(-1, 1)
Y = 3 * X + 0.5
XV = np.array([[0.5], [2.0], [-1.5]], np.float32)
YV = -XV  # validation wants w = -1 while training pulls w towards 3: val_loss rises
ETA = 0.1


def weights(n: int) -> list[float]:
    """w after each of n steps of gradient descent on mse(w·x, y) from w = 0, in float64."""
    x, y, w, out = X.astype(np.float64), Y.astype(np.float64), 0.0, []
    for _ in range(n):
        w -= ETA * float(np.mean(2 * (w * x - y) * x))
        out.append(w)
    return out


def val_loss(w: float) -> float:
    return float(np.mean((w * XV.astype(np.float64) - YV) ** 2))


def setup_run():
    m = fx.Dense(jnp.zeros((1, 1)), False)
    return m, (lambda x, y: fx.mse(m(x), y)), fx.params(m)


def recorder(seen):
    def record(ctx):
        if ctx.metrics:
            seen.append((ctx.step, dict(ctx.metrics)))

    return record


def test_metrics_at_the_scheduled_steps_match_a_float64_loop():
    m, loss, ps = setup_run()
    xv, yv = jnp.asarray(XV), jnp.asarray(YV)
    seen = []
    val = fx.metrics(every=3, val_loss=lambda: fx.mse(m(xv), yv))
    cb = [val, recorder(seen)]
    fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=cb, steps_per_call=1)
    assert [s for s, _ in seen] == [3, 6, 9]
    ws = weights(10)
    got = [float(d["val_loss"]) for _, d in seen]
    np.testing.assert_allclose(got, [val_loss(ws[k - 1]) for k in (3, 6, 9)], rtol=1e-5)
    assert all(isinstance(d["val_loss"], jax.Array) for _, d in seen)  # kept on the device


def test_compiled_once_with_the_model_and_closure_arrays_as_inputs():
    m, loss, ps = setup_run()
    traces = [0]
    xv, yv = jnp.asarray(XV), jnp.asarray(YV)

    def vl():
        traces[0] += 1  # Python runs this only while tracing
        return fx.mse(m(xv), yv)

    val = fx.metrics(val_loss=vl)
    seen = []
    fx.train(loss, ps, [(X, Y)] * 4, fx.Descent(ETA), cb=[val, recorder(seen)], steps_per_call=1)
    assert traces[0] == 1 and len(seen) == 4
    ws = weights(4)
    np.testing.assert_allclose(float(seen[-1][1]["val_loss"]), val_loss(ws[-1]), rtol=1e-5)
    xv = jnp.asarray(2 * XV)  # new validation data (same shape): an input, not a constant
    w = float(m.weight[0, 0])
    ref = float(np.mean((w * 2 * XV.astype(np.float64) - YV) ** 2))
    np.testing.assert_allclose(float(val.evaluate()["val_loss"]), ref, rtol=1e-5)
    assert traces[0] == 1


def test_a_changed_structure_recompiles():
    m = fx.Dense(jnp.ones((1, 1)), False)
    xv = jnp.asarray(XV)
    val = fx.metrics(out=lambda: jnp.sum(m(xv)))
    np.testing.assert_allclose(float(val.evaluate()["out"]), XV.sum(), rtol=1e-6)
    m.act = fx.relu  # a new activation: the compiled metric is stale
    np.testing.assert_allclose(float(val.evaluate()["out"]), np.maximum(XV, 0).sum(), rtol=1e-6)


def test_metrics_run_in_test_mode():
    m, loss, ps = setup_run()
    seen = []
    val = fx.metrics(training=lambda: jnp.asarray(mode.istraining(), jnp.float32))
    fx.train(loss, ps, [(X, Y)] * 2, fx.Descent(ETA), cb=[val, recorder(seen)], steps_per_call=1)
    assert [float(d["training"]) for _, d in seen] == [0.0, 0.0]


def test_a_metric_that_cannot_be_compiled_runs_eagerly_with_a_warning():
    m = fx.Dense(jnp.full((1, 1), 2.0), False)
    val = fx.metrics(py=lambda: float(m(jnp.ones((1, 1)))[0, 0]) + 1.0)
    with pytest.warns(UserWarning, match="py cannot be compiled"):
        assert val.evaluate()["py"] == 3.0
    assert val.evaluate()["py"] == 3.0  # and once only


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="every must be a positive int.*0"):
        fx.metrics(every=0, a=lambda: 0.0)
    with pytest.raises(TypeError, match="name at least one function"):
        fx.metrics(every=2)
    with pytest.raises(TypeError, match="acc must take no arguments.*needs m"):
        fx.metrics(acc=lambda m: 0.0)
    with pytest.raises(TypeError, match="v must return a scalar.*\\(3, 1\\)"):
        fx.metrics(v=lambda: jnp.asarray(XV)).evaluate()


def test_early_stopping_on_a_validation_metric():
    m, loss, ps = setup_run()
    xv, yv = jnp.asarray(XV), jnp.asarray(YV)
    es = fx.early_stopping("val_loss", 2)
    cb = [
        fx.metrics(every=1, val_loss=lambda: fx.mse(m(xv), yv)),
        fx.every(1, lambda ctx: es(ctx) and fx.stop()),
    ]
    h = fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=cb, steps_per_call=1)
    # val_loss rises every step: step 1 sets the best, steps 2 and 3 do not improve -> stop
    assert len(h.losses) == 3
    np.testing.assert_allclose(float(m.weight[0, 0]), weights(3)[-1], rtol=1e-6)
    flat = fx.plateau("val_loss", 2)
    with pytest.raises(ValueError, match="no metric 'val_loss' at this step.*fx.metrics"):
        flat(fx.StepContext(epoch=1, step=1))


def test_loggers_write_the_metrics(tmp_path):
    m, loss, ps = setup_run()
    xv, yv = jnp.asarray(XV), jnp.asarray(YV)
    path = tmp_path / "log.csv"
    cb = [
        fx.metrics(every=2, val_loss=lambda: fx.mse(m(xv), yv)),
        fx.CSVLogger(path, every=2),
    ]
    fx.train(loss, ps, [(X, Y)] * 4, fx.Descent(ETA), cb=cb, steps_per_call=1)
    df = pd.read_csv(path)
    ws = weights(4)
    np.testing.assert_allclose(df["val_loss"], [val_loss(ws[1]), val_loss(ws[3])], rtol=1e-5)


def test_metrics_in_a_fused_run_reach_the_history():
    m, loss, ps = setup_run()
    xv, yv = jnp.asarray(XV), jnp.asarray(YV)
    val = fx.metrics(every=3, val_loss=lambda: fx.mse(m(xv), yv))
    h = fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=val)
    ws = weights(10)
    assert h.steps_of("val_loss") == [3, 6, 9]
    np.testing.assert_allclose(h["val_loss"], [val_loss(ws[k - 1]) for k in (3, 6, 9)], 1e-5)
    df = h.to_pandas()
    assert df["val_loss"].notna().sum() == 3 and len(df) == 10
