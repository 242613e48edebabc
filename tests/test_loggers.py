"""CSVLogger and TensorBoardLogger: the rows and scalars of exactly the scheduled steps, with
losses from an independent NumPy loop, appending across runs, flushing on stop and errors,
in step-by-step (``steps_per_call=1``) and fused runs."""

from __future__ import annotations

import csv
import sys

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import fluxjax as fx

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(-1, 1)
Y = 3 * X + 0.5
ETA = 0.1


def reference_losses(n: int) -> list[float]:
    """mse of w·x against y, gradient descent on w from 0, in float64."""
    x, y, w, out = X.astype(np.float64), Y.astype(np.float64), 0.0, []
    for _ in range(n):
        out.append(float(np.mean((w * x - y) ** 2)))
        w -= ETA * float(np.mean(2 * (w * x - y) * x))
    return out


def setup_run():
    m = fx.Dense(jnp.zeros((1, 1)), False)
    return m, (lambda x, y: fx.mse(m(x), y)), fx.params(m)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_rows_are_exactly_the_scheduled_steps(tmp_path):
    m, loss, ps = setup_run()
    path = tmp_path / "log.csv"
    batches = [(X, Y)] * 10
    fx.train(loss, ps, batches, fx.Descent(ETA), cb=fx.CSVLogger(path, every=3), steps_per_call=1)
    rows = read_csv(path)
    assert list(rows[0]) == ["run", "step", "global_step", "epoch", "loss", "eta", "wall_time"]
    assert [int(r["step"]) for r in rows] == [3, 6, 9]
    ref = reference_losses(10)
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [ref[2], ref[5], ref[8]], 1e-5)
    assert {r["eta"] for r in rows} == {str(ETA)} and {r["run"] for r in rows} == {"1"}
    times = [float(r["wall_time"]) for r in rows]
    assert times == sorted(times) and times[0] > 1.7e9  # Unix time


def test_csv_rows_in_a_fused_run(tmp_path):
    m, loss, ps = setup_run()
    path = tmp_path / "log.csv"
    fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=fx.CSVLogger(path, every=3))
    rows = read_csv(path)
    assert [int(r["step"]) for r in rows] == [3, 6, 9]
    ref = reference_losses(10)
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [ref[2], ref[5], ref[8]], 1e-5)


def test_csv_appends_across_runs_and_widens_the_header_for_a_new_metric(tmp_path):
    m, loss, ps = setup_run()
    path = tmp_path / "log.csv"
    kw = dict(steps_per_call=1)
    opt = fx.Descent(ETA)
    fx.train(loss, ps, [(X, Y)] * 4, opt, cb=fx.CSVLogger(path, every=2), **kw)

    def metric(ctx):
        ctx.metrics["w"] = m.weight[0, 0]  # a device scalar, read by the logger

    # a new logger object on the same file: continues it (run 2, global step from 4)
    logger = fx.CSVLogger(path, every=2)
    fx.train(loss, ps, [(X, Y)] * 4, opt, cb=[metric, logger], **kw)
    fx.train(loss, ps, [(X, Y)] * 2, opt, cb=[metric, logger], **kw)
    df = pd.read_csv(path)
    assert list(df.columns)[-1] == "w"
    assert df["run"].tolist() == [1, 1, 2, 2, 3]
    assert df["step"].tolist() == [2, 4, 2, 4, 2]
    assert df["global_step"].tolist() == [2, 4, 6, 8, 10]
    assert df["w"].isna().tolist() == [True, True, False, False, False]
    ref = reference_losses(10)
    np.testing.assert_allclose(df["loss"], [ref[i - 1] for i in (2, 4, 6, 8, 10)], rtol=1e-5)
    # w after global step k, from the same float64 loop
    w, ws = 0.0, []
    for _ in range(10):
        w -= ETA * float(np.mean(2 * (w * X - Y) * X))
        ws.append(w)
    np.testing.assert_allclose(df["w"][2:], [ws[5], ws[7], ws[9]], rtol=1e-5)


def test_csv_keeps_every_row_on_stop_and_on_an_exception(tmp_path):
    m, loss, ps = setup_run()
    path = tmp_path / "log.csv"
    logger = fx.CSVLogger(path, every=2)

    def stop_at_4(ctx):
        if ctx.step == 4:
            fx.stop()

    fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=[logger, stop_at_4], steps_per_call=1)
    assert logger._file is None  # finish() closed it
    assert [int(r["step"]) for r in read_csv(path)] == [2, 4]

    def fail_at_3(ctx):
        if ctx.step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fx.train(loss, ps, [(X, Y)] * 10, fx.Descent(ETA), cb=[logger, fail_at_3], steps_per_call=1)
    rows = read_csv(path)
    assert [(r["run"], r["step"], r["global_step"]) for r in rows] == [
        ("1", "2", "2"),
        ("1", "4", "4"),
        ("2", "2", "6"),
    ]


def test_csv_refuses_a_file_that_is_not_a_log(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a fluxjax log.*'run'"):
        fx.CSVLogger(path)
    with pytest.raises(ValueError, match="every must be a positive int.*0"):
        fx.CSVLogger(tmp_path / "x.csv", every=0)


def scalars(logdir, tag):
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_scalars_read_back_by_tensorboard(tmp_path):
    m, loss, ps = setup_run()
    logger = fx.TensorBoardLogger(tmp_path, every=2)

    def metric(ctx):
        ctx.metrics["double_loss"] = 2 * ctx.loss

    for _ in range(2):  # two train calls: the global step continues
        fx.train(loss, ps, [(X, Y)] * 3, fx.Descent(ETA), cb=[metric, logger], steps_per_call=1)
    ref = reference_losses(6)  # step 2 of each call: global steps 2 and 3 + 2 = 5
    got = scalars(tmp_path, "loss")
    assert [s for s, _ in got] == [2, 5]
    np.testing.assert_allclose([v for _, v in got], [ref[1], ref[4]], rtol=1e-5)
    assert [v for _, v in scalars(tmp_path, "eta")] == pytest.approx([ETA, ETA])
    np.testing.assert_allclose(
        [v for _, v in scalars(tmp_path, "double_loss")], [2 * ref[1], 2 * ref[4]], rtol=1e-5
    )
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1  # one file, appended to
    assert logger._file is None  # closed between calls


def test_tensorboard_without_tensorboardx_names_the_extra(tmp_path, monkeypatch):
    for name in ["tensorboardX", "tensorboardX.record_writer", "tensorboardX.summary"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"fluxjax\[tb\]"):
        fx.TensorBoardLogger(tmp_path)


def test_loggers_are_scheduled_every_n_steps():
    logger = fx.CSVLogger("unused.csv", every=4)
    assert isinstance(logger, fx.Scheduled)
    assert [logger.steps_until(s, None) for s in (0, 1, 3, 4, 5)] == [4, 3, 1, 4, 3]
