"""Callback helpers: throttle, patience, early_stopping, plateau, History, StepContext."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import pytest

import fluxjax as fx

T, F = True, False

# ---- throttle, with a fake clock --------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(times, timeout=1.0, leading=True, trailing=False, cost=0.0):
    """Call a throttled f at each time; f records its argument, returns it, takes ``cost``."""
    clock, ran = FakeClock(), []

    def f(t):
        ran.append(t)
        clock.now += cost
        return t

    g = fx.throttle(f, timeout, leading, trailing, clock=clock)
    returned = []
    for t in times:
        clock.now = max(clock.now, t)
        returned.append(g(t))
    return g, ran, returned


# (leading, trailing, call times, calls that ran, values returned), traced by hand from spec 4.1
THROTTLE_CASES = [
    (True, False, [0, 0.5, 0.9, 1.0, 1.5, 2.2], [0, 1.0, 2.2], [0, 0, 0, 1.0, 1.0, 2.2]),
    (True, True, [0, 0.3, 0.6, 1.2, 1.4, 3.0], [0, 0.6, 1.4], [0, 0, 0, 0.6, 0.6, 1.4]),
    (False, False, [0, 0.5, 1.1, 1.2, 2.5], [0], [None] * 5),
    (False, True, [0, 0.5, 1.1], [0.5], [None, None, 0.5]),
    (True, True, [0, 5.0, 5.5, 10.0], [0, 5.0, 5.5], [0, 5.0, 5.0, 5.5]),
]


@pytest.mark.parametrize("leading, trailing, times, ran, returned", THROTTLE_CASES)
def test_throttle_semantics(leading, trailing, times, ran, returned):
    _, got_ran, got_returned = drive(times, leading=leading, trailing=trailing)
    assert got_ran == ran
    assert got_returned == returned


def test_throttle_flush_runs_the_pending_trailing_call():
    g, ran, _ = drive([0, 0.3, 0.6, 1.2, 1.4, 3.0], trailing=True)
    assert g.flush() == 3.0 and ran[-1] == 3.0
    assert g.flush() == 3.0 and ran.count(3.0) == 1  # nothing pending any more


def test_throttle_leading_false_deferred_result_is_not_kept():
    g, ran, returned = drive([0, 0.5, 1.1, 1.2, 2.5], leading=False)
    assert g.flush() is None and ran == [0, 2.5]


def test_throttle_window_starts_when_f_returns():
    _, ran, _ = drive([0, 1.5, 1.9], cost=0.8)  # f(0) returns at 0.8: window ends at 1.8
    assert ran == [0, 1.9]


def test_throttle_timeout_zero_runs_every_call():
    _, ran, _ = drive([0, 0, 0.1], timeout=0.0, trailing=True)
    assert ran == [0, 0, 0.1]


def test_throttle_passes_arguments_and_exceptions_leave_it_ready():
    calls = []

    def f(a, *, b):
        calls.append((a, b))
        if a == "boom":
            raise RuntimeError(a)
        return a

    g = fx.throttle(f, 1.0, clock=FakeClock())
    with pytest.raises(RuntimeError):
        g("boom", b=1)
    assert g("x", b=2) == "x" and g("y", b=3) == "x"
    assert calls == [("boom", 1), ("x", 2)]


def test_throttle_real_clock_and_repr():
    ran = []

    def record():
        ran.append(1)

    g = fx.throttle(record, 3600)
    g(), g()
    assert ran == [1]
    assert repr(g) == (
        "throttle(test_throttle_real_clock_and_repr.<locals>.record, 3600.0, leading=True, "
        "trailing=False)"
    )


@pytest.mark.parametrize("timeout", [-1, "1", None, math.nan, True])
def test_throttle_bad_timeout(timeout):
    with pytest.raises(ValueError, match="timeout"):
        fx.throttle(print, timeout)


def test_throttle_needs_a_function():
    with pytest.raises(TypeError):
        fx.throttle(3, 1.0)


# ---- patience, early_stopping, plateau -------------------------------------------------------


def run(cb, n):
    return [cb() for _ in range(n)]


def scores(values):
    it = iter(values)
    return lambda: next(it)


def test_patience_trace():
    trigger = fx.patience(lambda x: x > 0, 3)
    assert [trigger(x) for x in [1, 1, 0, 1, 1, 1, 1, 0]] == [F, F, F, F, F, T, T, F]


@pytest.mark.parametrize("wait", [0, -2, 1.5, True])
def test_patience_bad_wait(wait):
    with pytest.raises(ValueError, match="wait"):
        fx.patience(bool, wait)


RISING = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

# (scores, delay, keyword arguments, expected returns), traced by hand from spec 4.3
EARLY_STOPPING_CASES = [
    # Flux's doc example: a rising loss, delay 3: stops at epoch 4 (v0.16.8+), 3 (v0.12)
    (RISING, 3, {}, [F, F, F, T, T]),
    (RISING, 3, {"init_score": 0}, [F, F, T, T, T]),
    # v0.12's init_score=0 fires after exactly `delay` calls even for a falling loss
    ([5.0, 4.0, 3.0, 2.0], 3, {"init_score": 0}, [F, F, T, T]),
    ([5.0, 4.0, 3.0, 2.0], 3, {}, [F, F, F, F]),
    # an equal score with min_dist=0 is an improvement (strict <)
    ([3.0, 3.0, 3.0, 3.0], 1, {}, [F, F, F, F]),
    # min_dist: improvements below 0.2 count as none
    ([10.0, 9.5, 9.4, 9.35, 9.34], 2, {"min_dist": 0.2}, [F, F, F, T, T]),
    # a worse score does not become best: 2.0 is still compared with 1.0
    ([1.0, 3.0, 2.0, 0.5, 0.7], 2, {}, [F, F, T, F, F]),
    # as Flux: a NaN score becomes best, so the score after it always counts as improved
    ([1.0, math.nan, 2.0, 3.0], 1, {}, [F, F, F, T]),
    # maximising accuracy with a custom distance
    (
        [0.5, 0.6, 0.6, 0.55, 0.5],
        2,
        {"distance": lambda best, s: s - best, "init_score": -math.inf},
        [F, F, F, F, T],
    ),
]


@pytest.mark.parametrize("values, delay, kwargs, expected", EARLY_STOPPING_CASES)
def test_early_stopping_traces(values, delay, kwargs, expected):
    es = fx.early_stopping(scores(values), delay, **kwargs)
    assert run(es, len(expected)) == expected


# (scores, width, keyword arguments, expected returns)
PLATEAU_CASES = [
    ([1.0, 1.0, 1.0, 2.0, 2.0, 2.0], 2, {}, [F, F, T, F, F, T]),
    ([0.0, 0.0], 2, {}, [F, F]),
    ([0.0, 0.0], 2, {"init_score": 0}, [F, T]),  # v0.12: a first score of 0 is flat
    ([1.0, 1.0 + 1e-7, 1.0 + 2e-7, 1.5], 2, {}, [F, F, T, F]),  # below Flux's 1f-6
    ([1.0, 1.05, 1.02, 1.5], 2, {"min_dist": 0.1}, [F, F, T, F]),
    (
        [1.2, 1.4, 2.1, 2.9],
        1,
        {"distance": lambda a, b: math.floor(a) - math.floor(b), "init_score": 0.0},
        [F, T, F, T],
    ),
]


@pytest.mark.parametrize("values, width, kwargs, expected", PLATEAU_CASES)
def test_plateau_traces(values, width, kwargs, expected):
    flat = fx.plateau(scores(values), width, **kwargs)
    assert run(flat, len(expected)) == expected


def test_callbacks_forward_arguments_and_accept_device_scalars():
    es = fx.early_stopping(lambda loss, *, scale: loss * scale, 2)
    out = [es(jnp.float32(x), scale=2.0) for x in [1.0, 2.0, 3.0]]
    assert out == [F, F, T] and all(type(o) is bool for o in out)
    flat = fx.plateau(lambda x: x, 1)
    assert [flat(jnp.float32(x)) for x in [1.0, 1.0]] == [F, T]


# ---- stop / skip -----------------------------------------------------------------------------


def test_stop_and_skip_raise_their_exceptions():
    with pytest.raises(fx.StopException):
        fx.stop()
    with pytest.raises(fx.SkipException):
        fx.skip()
    assert issubclass(fx.StopException, Exception) and issubclass(fx.SkipException, Exception)
    assert not issubclass(fx.StopException, fx.SkipException)
    assert not issubclass(fx.SkipException, fx.StopException)


# ---- StepContext and History -----------------------------------------------------------------


class Unconvertible:
    """A stand-in for a device scalar whose conversion must not happen."""

    def __init__(self):
        self.conversions = 0

    def __float__(self):
        self.conversions += 1
        raise AssertionError("the loss was converted")


class Counting:
    def __init__(self, value):
        self.value, self.conversions = value, 0

    def __float__(self):
        self.conversions += 1
        return self.value


def test_step_context_loss_is_not_converted_unless_read():
    raw = Unconvertible()
    ctx = fx.StepContext(epoch=2, step=7, loss=raw, eta=0.01, batch_index=3)
    assert (ctx.epoch, ctx.step, ctx.eta, ctx.batch_index) == (2, 7, 0.01, 3)
    fx.patience(lambda c: c.step > 5, 1)(ctx)  # a callback that ignores the loss
    assert raw.conversions == 0
    with pytest.raises(AssertionError, match="converted"):
        _ = ctx.loss
    assert raw.conversions == 1


def test_step_context_converts_once_and_accepts_a_thunk():
    raw = Counting(0.5)
    ctx = fx.StepContext(1, 1, raw)
    assert ctx.loss == 0.5 and ctx.loss == 0.5 and raw.conversions == 1
    calls = []
    lazy = fx.StepContext(1, 2, lambda: calls.append(1) or jnp.float32(1.5))
    assert calls == []
    assert lazy.loss == 1.5 and type(lazy.loss) is float and calls == [1]
    assert fx.StepContext(1, 3).loss is None


def test_step_context_is_frozen():
    ctx = fx.StepContext(1, 1, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.step = 2
    assert [f.name for f in dataclasses.fields(ctx)] == [
        "epoch",
        "step",
        "_loss",
        "eta",
        "batch_index",
        "metrics",
        "history",  # the call's TrainHistory (None outside train)
    ]
    assert ctx.history is None


def test_history_records_and_best():
    h = fx.History()
    assert len(h) == 0 and repr(h) == "History(0 steps)"
    with pytest.raises(ValueError, match="no loss"):
        h.best()
    for i, (epoch, loss) in enumerate([(1, 0.9), (1, jnp.float32(0.25)), (2, math.nan), (2, 0.4)]):
        h(fx.StepContext(epoch=epoch, step=i + 1, loss=loss, batch_index=i % 2))
    assert h.losses[:2] == [0.9, 0.25] and math.isnan(h.losses[2])
    assert h.steps == [1, 2, 3, 4] and h.epochs == [1, 1, 2, 2] and len(h) == 4
    assert h.best() == 0.25
    assert repr(h) == "History(4 steps, best loss 0.25 at step 2)"


def test_history_throttled_and_bad_input():
    clock = FakeClock()
    h = fx.History()
    g = fx.throttle(h, 1.0, clock=clock)
    for step in range(1, 6):
        clock.now = step * 0.5
        g(fx.StepContext(1, step, float(step)))
    assert h.steps == [1, 3, 5]
    with pytest.raises(TypeError, match="StepContext"):
        h(0.5)
