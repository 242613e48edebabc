"""fx.profile starts the jax.profiler trace after step `start` and stops it after step `stop`
(once the device finished), counted across train calls, in fused and per-epoch runs."""

import jax
import numpy as np
import pytest

import fluxjax as fx

X = np.ones((4, 1), np.float32)


@pytest.mark.parametrize("calls", [1, 10])
def test_the_trace_covers_exactly_the_chosen_steps(calls, monkeypatch, tmp_path):
    m = fx.Dense(1, 1)
    events, done = [], []
    monkeypatch.setattr(jax.profiler, "start_trace", lambda d: events.append(("start", len(done))))
    monkeypatch.setattr(jax.profiler, "stop_trace", lambda: events.append(("stop", len(done))))
    prof = fx.profile(steps=(3, 7), logdir=tmp_path)
    state = fx.setup(fx.Descent(0.1), m)
    for _ in range(calls):
        fx.train(
            lambda m, x: fx.mse(m(x), x),
            m,
            [(X,)],
            state,
            epochs=10 // calls,
            cb=[lambda: done.append(1), prof],
        )
    assert events == [("start", 3), ("stop", 7)]


def test_bad_steps_are_refused():
    with pytest.raises(ValueError, match="1 <= start < stop"):
        fx.profile(steps=(5, 5))
