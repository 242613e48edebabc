"""One ``train`` call's run (internal): its steps, in spans between the points where a
callback can act, each span one call of the plan's compiled program, and the callbacks.

``Run.go`` takes the spans a source (``sources``) offers; every step of every span goes
through ``Run.call``; ``Run._fire`` is the one place callbacks run (the context, the
metrics, giving back and taking again the optimiser state a callback read, a changed rule
or Params taking effect from the next step).
"""

from __future__ import annotations

import time
import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..callbacks import SkipException, StepContext, StopException
from . import cache, program, react
from .history import TrainHistory
from .plan import Plan, dead
from .schedule import Schedule, equivalent
from .sources import One, held, open_source, same_batch, signature
from .step import call_loss

_WARNED: set[Any] = set()


def warn_once(key: Any, text: str) -> None:
    """A ``UserWarning`` with ``text``, once per ``key`` in this process."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(text, UserWarning, stacklevel=4)


class _Stopped(Exception):
    """Raised inside a run when a callback or the loss called ``fx.stop()``."""


class _Ints:
    """Device-resident int32 scalars for the program's step counts and starts, made once
    per value: a NumPy scalar argument is copied to the device on every call (about 10 µs
    each on the CPU), a device array is passed as it is. Bounded: the oldest go first."""

    MAX = 4096

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}

    def __call__(self, v: int) -> Any:
        a = self.values.get(v)
        if a is None:
            if len(self.values) >= self.MAX:
                self.values.pop(next(iter(self.values)))
            a = self.values[v] = jax.device_put(np.int32(v))
        return a


INTS = _Ints()


def _later(sel: Any, j: int) -> Any:
    """The program's selector ``j`` steps later (None for the ``"one"`` layout, which has
    none; a start; or a table and a start)."""
    if sel is None:
        return None
    if isinstance(sel, tuple):
        return sel[0], sel[1] + j
    return sel + j


def _device_sel(sel: Any) -> Any:
    """``sel`` as the program takes it: its starts as device scalars (``INTS``)."""
    if sel is None:
        return None
    return (sel[0], INTS(sel[1])) if isinstance(sel, tuple) else INTS(sel)


def _to_device(a: Any) -> Any:
    return jax.device_put(a) if isinstance(a, np.ndarray) else a


def _lazy(status: Any, index: int) -> Any:
    """A zero-argument function reading one loss of a call's status vector (only when
    called; through host memory, which compiles nothing)."""
    return lambda: program.read_losses(status)[index]


class Run:
    """One ``train`` call: ``done`` steps taken so far, ``pos`` batches consumed (a batch
    skipped by the loss is consumed without a step). Every step goes through ``call``."""

    def __init__(
        self, plan: Plan, sched: Schedule, hist: TrainHistory, compile: bool, fuse: Any, bar: Any
    ) -> None:
        self.plan, self.sched, self.hist, self.compile, self.bar = plan, sched, hist, compile, bar
        self.fuse = fuse
        self.done = self.pos = 0
        self.call_start = plan.steps_done
        self.eta = plan.callback_eta
        # time a step takes (for fx.throttle's spans): only measured when a scheduled
        # callback may use it, since measuring waits for the device
        self.timing = sched.active and not sched.plain
        self.sps: float | None = getattr(plan, "sps", None)
        self.src: Any = None
        self.last: Any = None  # (loss, epoch, batch index) of the last step
        self.args: Any = None  # (loss, target, opt) of the call, to find its plan again
        self.kept: Any = None  # (callback, program) when kept for replaying (``Replay``)

    def go(self, data: Any, n_epochs: int, seen: bool = False) -> None:
        """Take ``n_epochs`` passes over ``data`` (``seen``: a list holding the batch of
        the plan's last call)."""
        react.before(self.plan, self.sched)  # fx.every(..., grads=True): keep gradients
        self.src = src = open_source(data, n_epochs, self.plan, self.compile, seen)
        self.sched.start(self.sps)
        try:
            while src.total is None or self.pos < src.total:
                k = self.sched.horizon(self.done) or CHUNK
                if src.total is not None:
                    k = min(k, src.total - self.pos)
                t, start = time.perf_counter(), self.done
                more = src.steps(self, k)
                if self.timing and self.done > start:
                    jax.block_until_ready(self.plan.halt)
                    self.sps = self.plan.sps = (time.perf_counter() - t) / (self.done - start)
                if self.done > start:
                    self.last = (src.last_loss, *src.where(self.pos - 1))
                    if self.sched.is_due(self.done):
                        self._fire()
                if not more:
                    break
        except _Stopped:
            pass
        if self.sched.ends and self.done:
            src.settle(self.pos)
            self.sched.at_end(self.done, self._context, self.sps)
            self.plan.reclaim()

    def _context(self) -> StepContext:
        loss, ep, bi = self.last
        eta = self.eta
        return StepContext(
            ep,
            self.done,
            loss,
            eta() if callable(eta) else eta,
            bi,
            history=self.hist,
            plan=self.plan,
        )

    def _fire(self) -> None:
        src, done = self.src, self.done
        src.settle(self.pos)  # a DataLoader knows how far into its epoch the run is
        try:
            stopped, ctx = self.sched.fire(done, self._context, self.sps)
        finally:
            src.unsettle(self.pos)
        if ctx is not None and ctx.metrics:
            self.hist._record(done, ctx.metrics)
            if self.bar is not None:
                self.bar.metrics(ctx.metrics)
        self.plan.reclaim()  # a callback that read the optimiser state (a checkpoint) took it
        if react.after(self.plan):  # a callback changed hyperparameters: from the next step
            self.eta = self.plan.callback_eta
        if self.src.total is None or self.pos < self.src.total:  # (the next call looks anew)
            react.replan(self, cache.find)  # ... or the Params, or froze arrays: their plan now
        if stopped:
            raise _Stopped

    # -- the calls of the program --------------------------------------------------------
    def call(self, static: tuple[Any, ...], data: Any, sel: Any, n: int, src: Any) -> None:
        """``n`` steps through the plan's program: ``data`` in ``src.layout`` and ``sel``
        (None, a start, or a table and a start) select each step's batch."""
        plan = self.plan
        if not self.compile or plan.eager:
            return self._eager(static, data, sel, n, src)
        if plan.form is None or self.fuse is not None:
            plan.choose_form(self.fuse, program.batch_spec(src.layout, static, data))
        fn = plan.program(src.layout, *static)
        if plan.form == "step":
            if n > 1:  # host data (a gathered block): copied to the device once, not each step
                data = jax.tree_util.tree_map(_to_device, data)
            for j in range(n):
                self._invoke(fn, static, data, _later(sel, j), 1, src)
            return None
        if n > 1 and not plan.carry_stable():  # carried state takes its shape in one step
            self._invoke(fn, static, data, sel, 1, src)
            n, sel = n - 1, _later(sel, 1)
        while n > 0:
            m = min(n, program.CAP)
            self._invoke(fn, static, data, sel, m, src)
            n, sel = n - m, _later(sel, m)
        return None

    def _invoke(self, fn: Any, static: Any, data: Any, sel: Any, n: int, src: Any) -> None:
        plan = self.plan
        tv, ov = plan.inputs()
        bufs, etas, dsel = plan.bufs, plan.etas, _device_sel(sel)
        try:
            out = fn(tv, ov, bufs, plan.halt, data, dsel, INTS(n), etas)
        except (SkipException, StopException):
            # raised while tracing: the loss decides in Python, so it must run eagerly
            warn_once(
                ("eager", id(plan)),
                "train: the loss called fx.skip() or fx.stop() while being compiled, so it "
                "runs eagerly from now on (slower). In a compiled loss use "
                "fx.skip_when(condition).",
            )
            plan.eager = True
            return self._eager(static, data, sel, n, src)
        again = None
        if n > 1 and not plan.donate:  # a loop's call in which a step failed returns its
            # inputs: keep them, to run the steps before that one again (Plan.check)
            again = lambda k, halt: fn(tv, ov, bufs, halt, data, dsel, INTS(k), etas)  # noqa: E731
        status = plan.finish(out, n, again)
        self._record(status, n, src, _lazy(status, n - 1))
        # compiled: read the failure flag every LAG calls, which also bounds the work in flight
        plan.check(False, self.call_start)
        return None

    def _record(self, losses: Any, n: int, src: Any, last: Any) -> None:
        self.hist._add(losses, n, src.epoch_of(self.pos))
        src.last_loss = last
        self.pos += n
        self.done += n
        if self.bar is not None:
            self.bar.update(n, last)  # fluxjax.progress.Bar: reads the loss when it redraws

    def _eager(self, static: Any, data: Any, sel: Any, n: int, src: Any) -> None:
        """``n`` steps run op by op (``compile=False``, or a loss that decides in Python)."""
        plan = self.plan
        key = ("eager", src.layout, static)
        fn = plan.programs.get(key)
        if fn is None:
            fn = plan.programs[key] = program.build(plan, "step", src.layout, static)
        for j in range(n):
            tv, ov = plan.inputs()
            try:
                out = fn(tv, ov, plan.bufs, plan.halt, data, _later(sel, j), 1, plan.etas)
            except SkipException:
                self.pos += 1
                continue
            except StopException:
                raise _Stopped from None
            status = plan.finish(out, 1)
            self._record(status, 1, src, _lazy(status, 0))
            plan.check(True, self.call_start)
        return None

    def stream_call(self, batch: Any, bi: int) -> None:
        """One step on a batch of a stream (any iterable)."""
        plan = self.plan
        if plan.empty:
            return self._empty(batch)
        if self.compile and not plan.eager:
            self.check_batch(batch, bi)
        if plan.placement is not None:  # split over the devices
            batch = plan.placement.batch(batch)
        return self.call((), batch, None, 1, self.src)

    def check_batch(self, batch: Any, bi: int) -> None:
        """Warn (once) when a batch's shapes force a new compilation."""
        plan = self.plan
        if not same_batch(batch, plan.last_batch):
            plan.last_batch = held(batch)
            sig = signature(batch)
            if sig != plan.signature:
                _new_signature(plan, sig, bi)

    def _empty(self, batch: Any) -> None:
        """Empty ``Params``: the loss runs eagerly, nothing is updated (Flux's train!)."""
        try:
            out = call_loss(self.plan, batch)
        except SkipException:
            self.pos += 1
            return None
        except StopException:
            raise _Stopped from None
        self.plan.steps_done += 1
        try:
            l = jnp.asarray(out, jnp.float32)
        except TypeError:
            l = jnp.float32(jnp.nan)
        self._record(l, 1, self.src, l)
        return None


CHUNK = 1 << 30  # steps a span may hold when no callback bounds it


ONE = ("one",)  # the key of a plan's program for the "one" layout


class Replay:
    """The last ``train`` call, kept when it was the tutorial's per-epoch call: one step on
    a list of one batch, the default keywords, plain callbacks (or none). The next call
    with the same objects, nothing about them changed, is the same call again: it runs
    through the same ``Run`` (its ``_invoke`` and ``_fire``) without being set up again, so
    its Python work is a few identity comparisons (``matches``) and the step itself.

    Everything a call checks or prepares is a function of what ``matches`` compares: the
    loss, target, optimiser and callback objects, the batch's arrays, the plan's cache
    entry (``cache.LAST.same``: versions, structure), the plan holding the optimiser state
    and still having the program the call used. Anything else runs the full call.

    The kept ``Run`` is held by its plan (``plan.replay``), and here only weakly, with the
    callback and the batch's arrays: a model let go is freed with it."""

    def __init__(self) -> None:
        self.ref: Any = dead

    def clear(self) -> None:
        """Keep nothing (``cache.clear_caches``)."""
        run = self.ref()
        if run is not None:
            run.plan.replay = None
        self.ref = dead

    def keep(self, run: Run, data: Any, cb: Any) -> None:
        """Keep ``run`` (just finished) for replaying, if it is a replayable call."""
        self.clear()
        plan, sched = run.plan, run.sched
        fn = plan.programs.get(ONE)
        ok = (
            type(run.src) is One
            and run.done == 1
            and fn is not None
            and run.compile
            and not plan.eager
            and plan.placement is None
            and getattr(plan, "precision", None) is None
            and not sched.scheduled
            and sched.every == 1
            and run.bar is None
            and type(data[0]) is tuple
        )
        if ok:
            run.src.batch = None  # the next call's batch is compared with plan.last_batch
            run.kept = (cache.weak(cb), fn)
            plan.replay = run
            self.ref = weakref.ref(run)

    def matches(self, loss: Any, target: Any, data: Any, opt: Any, cb: Any) -> bool:
        run = self.ref()
        if run is None or type(data) is not list or len(data) != 1:
            return False
        plan = run.plan
        return (
            equivalent(run.kept[0](), cb)  # the same callback, or the same lambda made again
            and cache.LAST.plan is plan
            and same_batch(data[0], plan.last_batch)
            and cache.LAST.same(loss, target, opt)
            and plan.owns_state()
            and plan.programs.get(ONE) is run.kept[1]
        )

    def go(self, data: Any) -> TrainHistory:
        """The kept call again on ``data`` (which ``matches``): one step, the callbacks."""
        run = self.ref()
        plan = run.plan
        run.hist = hist = TrainHistory()
        run.done = run.pos = 0
        run.call_start = plan.steps_done
        run.eta = plan.callback_eta
        self.ref = dead  # kept again only when this call ends as the last one did
        try:
            run._invoke(run.kept[1], (), data[0], None, 1, run.src)
            run.last = (run.src.last_loss, 1, 0)
            if run.sched.active:
                run._fire()
        except _Stopped:
            pass
        except FloatingPointError as e:
            e.history = hist  # type: ignore[attr-defined]
            raise
        if run.plan is plan:
            self.ref = weakref.ref(run)
        else:  # a callback rebuilt the plan (react.replan)
            plan.replay = None
        return hist


REPLAY = Replay()


def _pairs(sig: Any) -> list[tuple[Any, Any]]:
    return [p for p in sig if isinstance(p, tuple)]


def _new_signature(plan: Plan, sig: Any, bi: int) -> None:
    """Warn (once) when a batch's shapes force a new compilation: any change of dtype or of
    a non-batch axis, or a third batch size (one short last batch is expected)."""
    plan.signature = sig
    if sig in plan.signatures:
        return
    plan.signatures.append(sig)
    if len(plan.signatures) == 1:
        return
    first, now = _pairs(plan.signatures[0]), _pairs(sig)
    changed = [
        (i, a, b)
        for i, (a, b) in enumerate(zip(first, now))
        if a[1] != b[1] or tuple(a[0] or ())[1:] != tuple(b[0] or ())[1:]
    ]
    if not changed and len(plan.signatures) <= 2:
        return
    i, a, b = changed[0] if changed else (0, first[0], now[0])
    warn_once(
        ("shape", id(plan), len(plan.signatures)),
        f"train: argument {i + 1} of batch {bi + 1} has shape {b[0]} and "
        f"dtype {b[1]}, where earlier batches had shape {a[0]} and dtype {a[1]}; every new "
        "shape or dtype compiles the training step again. Keep batch shapes and dtypes fixed "
        "(e.g. DataLoader(partial=False), or convert the data once with np.float32).",
    )
