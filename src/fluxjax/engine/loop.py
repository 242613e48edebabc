"""``train``: for each batch, the gradient of the loss, one optimiser step, the callbacks.

Two forms drive one engine:

* implicit (Flux v0.12, the tutorial's): ``fx.train(loss, ps, data, opt)`` with
  ``loss(*batch)`` closing over the model and ``ps = fx.params(model)``; the optimiser
  state lives inside ``opt``, so calling ``train`` again continues Adam's moments;
* explicit (Flux >= 0.14): ``fx.train(loss, model, data, state)`` with
  ``loss(model, *batch)`` and ``state = fx.setup(rule, model)`` (or a bare rule, whose state
  then lives inside the rule object, as in implicit mode).

Callbacks run after every step's update, as in Flux, with the model holding that step's
arrays. A plan runs all its steps through one compiled program (``program``); the steps
between the points where a callback can act run as one call of it, so results never
depend on how a run was split into calls or spans.

Arrays are values: training puts new arrays into the model's attributes (on accelerators
the old ones are donated). Keep reading parameters through the model (``m[0].weight``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import checks, distributed
from ..callbacks import SkipException, StepContext, StopException
from ..optimise.optax import as_rule
from . import cache, program, react
from .history import TrainHistory
from .plan import Plan
from .schedule import LAST_SCHEDULE, Schedule
from .scope import captured_arrays, loss_key
from .sources import open_source, same_batch, signature

_WARNED: set[Any] = set()
KEYWORDS = ("cb", "epochs", "progress", "compile", "steps_per_call", "devices", "mesh")
KEYWORDS += ("shard_params", "fuse", "precision")
ALIASES = {"callbacks": "cb", "callback": "cb", "nb_epoch": "epochs", "verbose": "progress"}


def _warn_once(key: Any, text: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(text, UserWarning, stacklevel=4)


def train(
    loss: Callable[..., Any],
    target: Any,
    data: Iterable[Any],
    opt: Any,
    *,
    cb: Any = None,
    epochs: int = 1,
    progress: bool = False,
    compile: bool = True,
    steps_per_call: int | None = None,
    devices: Any = None,
    mesh: Any = None,
    shard_params: bool = False,
    fuse: bool | None = None,
    precision: str | None = None,
    **unknown: Any,
) -> TrainHistory:
    """Run one optimiser step per batch of ``data``, ``epochs`` times, calling ``cb`` after
    each step; returns the per-step losses (and callback metrics) as a ``TrainHistory``.

    * ``train(loss, ps, data, opt)``: implicit mode, ``loss(*batch)``, ``ps = fx.params(m)``.
      Empty ``Params`` (or ``()``) train nothing: the loss still runs each step (eagerly).
    * ``train(loss, model, data, state)``: explicit mode, ``loss(model, *batch)``.
    * ``data``: any iterable of batches (a list, a DataLoader, a generator, ...); a tuple
      batch is splatted into the loss.
    * ``cb``: a function or a list of them, run after each step's update in order; one that
      takes an argument receives the step's ``StepContext``. ``fx.stop()`` ends training
      keeping the updates so far; ``fx.skip()`` skips that step's remaining callbacks; any
      other exception propagates, the model and optimiser at the last completed step.
      ``fx.every(n, f)`` and ``fx.throttle(f, s)`` are scheduled: the steps between their
      calls may run fused. Inside the loss, ``fx.skip()`` skips the update when running
      eagerly; in a compiled loss use ``fx.skip_when(condition)``.
    * A non-finite loss or gradient stops training with ``FloatingPointError`` naming the
      step; the model keeps the parameters from before that step (in a loop of one-step
      calls the error may come up to 16 calls later; nothing after the failed step is
      applied). Chain ``fx.SkipNonFinite()`` in front of the rule to skip such batches.
    * ``progress=True`` shows a tqdm bar (a widget in Jupyter) with the latest loss and
      metrics, ending on the final ones (``fluxjax.progress.Bar``).
    * ``compile=False`` runs the same step eagerly (print from the loss, use a debugger).
    * ``steps_per_call=K`` (a departure from Flux, opt-in): plain callbacks run after every
      K-th step only, and the steps between run fused.
    * ``devices=jax.devices()`` (or a count) trains data-parallel: each batch is split along
      its first axis over the devices (its size must divide), parameters and optimiser state
      are replicated, XLA adds the gradient all-reduce. ``mesh=`` a ``jax.sharding.Mesh``
      with a ``"batch"`` axis instead; ``shard_params=True`` shards parameters and optimiser
      state along their largest divisible axis (FSDP-style). See ``fx.distributed``.
    * ``fuse``: the form of the plan's one compiled program, fixed on its first call:
      ``None`` chooses (a loop whose step count is a run-time argument, or one compiled
      step per batch where XLA runs the step much slower in a loop: convolutions on the
      CPU); ``True`` forces the loop, ``False`` the lone step. ``fx.explain`` shows it.
      The same steps give the same bits however the run is split into calls, spans or a
      save and load; the two forms agree to float rounding.
    * ``precision="bfloat16"``: mixed precision (Keras's ``mixed_bfloat16``): the loss and
      its gradients are computed in bfloat16 from float32 master weights (float32 batch
      arrays are cast too); the update, the optimiser state and the weights stay float32.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), jnp.array([0.0]))
    >>> x = jnp.array([[1.0], [2.0]]); y = 3 * x
    >>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)], fx.Descent(0.1),
    ...              epochs=500)
    >>> round(float(m.weight[0, 0]), 3), len(h.losses)
    (3.0, 500)
    """
    if unknown:
        raise checks.unknown_keyword("train", unknown, KEYWORDS, ALIASES)
    opt = as_rule(opt)  # an optax transformation works as a rule (one isinstance for a rule)
    plan = cache.LAST.plan if cache.LAST.same(loss, target, opt) else None
    if plan is None:  # a new call: check its arguments
        checks.check_opt(opt)
        if isinstance(target, tuple) and not target:
            target = checks.NOTHING  # Flux's train!(loss, (), data, opt): the loss runs, no update
    if type(epochs) is not int or epochs < 0:
        epochs = checks.check_epochs(epochs)
    if steps_per_call is not None:
        steps_per_call = checks.check_count(steps_per_call, "steps_per_call", lo=1)
    if fuse is not None and not isinstance(fuse, bool):
        raise TypeError(f"train: fuse must be None, True or False, got {fuse!r}.")
    # the tutorial's loop passes the list holding the very batch of the last call: checked
    seen = plan is not None and type(data) is list and len(data) == 1
    seen = seen and same_batch(data[0], plan.last_batch)
    if not seen:
        checks.check_data(data, epochs)
    if plan is None:
        plan = cache.find(loss, target, opt)
    react.set_precision(plan, precision)  # "bfloat16": mixed precision, float32 masters
    if not plan.owns_state():
        plan.acquire()
    # the plan's arrays on the devices (None: one device; arrays in place stay as they are)
    distributed.use(plan, distributed.Placement.from_args(devices, mesh, shard_params))
    if compile and not plan.warned_captured:
        _warn_captured(plan, loss)
    sched = LAST_SCHEDULE.get(cb, steps_per_call)
    hist = TrainHistory()
    run = Run(plan, sched, hist, compile, fuse, _bar(progress, data, epochs) if progress else None)
    run.args = (loss, target, opt)  # a callback may change Params: react.replan
    try:
        run.go(data, epochs, seen)
        # a call of several steps waits for its last one and reports a failure now; a
        # call of one step (the per-epoch loop) within a few calls, to keep dispatching
        plan.check(not compile or plan.steps_done - run.call_start > 1, run.call_start)
    except FloatingPointError as e:
        e.history = hist  # type: ignore[attr-defined]  (the losses up to the failure)
        raise
    except checks.TRACE_ERRORS as e:  # float()/if/np.* on a traced value: say what to do
        raise checks.explain_trace_error(e) from None
    finally:
        if run.bar is not None:
            run.bar.close()
        if sched.active:
            sched.finish(run.done)
    return hist


def _warn_captured(plan: Plan, loss: Any) -> None:
    plan.warned_captured = True
    found = captured_arrays(loss)
    if found:
        _warn_once(
            ("captured", loss_key(loss)),
            f"train: the loss reads arrays {', '.join(found)} from its enclosing "
            "scope; the compiled step holds them as constants, so later changes to "
            "them are ignored. Pass them through `data` (e.g. [(X, Y)] with "
            "loss(x, y)) or keep them in a module.",
        )


def _bar(progress: bool, data: Any, n_epochs: int) -> Any:
    if not progress:
        return None
    from ..progress import Bar

    try:
        total = len(data) * n_epochs  # type: ignore[arg-type]
    except TypeError:
        total = None
    return Bar(total)


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
    """The program's selector ``j`` steps later (a start, or a table and a start)."""
    if isinstance(sel, tuple):
        return sel[0], sel[1] + j
    return sel + j


def _lazy(losses: Any, index: int) -> Any:
    """A zero-argument function reading one loss of a device buffer (only when called;
    through host memory, which compiles nothing)."""
    return lambda: np.asarray(losses)[index]


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
        react.replan(self, cache.find)  # ... or the Params, or froze arrays: the plan for them now
        if stopped:
            raise _Stopped

    # -- the calls of the program --------------------------------------------------------
    def call(self, static: tuple[Any, ...], data: Any, sel: Any, n: int, src: Any) -> None:
        """``n`` steps through the plan's program: ``data`` in ``src.layout`` and ``sel``
        (a start, or a table and a start) select each step's batch."""
        plan = self.plan
        if not self.compile or plan.eager:
            return self._eager(static, data, sel, n, src)
        if plan.form is None or self.fuse is not None:
            plan.choose_form(self.fuse, program.batch_spec(src.layout, static, data))
        fn = plan.program(src.layout, *static)
        if plan.form == "step":
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
        try:
            t = (sel[0], INTS(sel[1])) if isinstance(sel, tuple) else INTS(sel)
            out = fn(tv, ov, plan.bufs, plan.halt, data, t, INTS(n))
        except (SkipException, StopException):
            # raised while tracing: the loss decides in Python, so it must run eagerly
            _warn_once(
                ("eager", id(plan)),
                "train: the loss called fx.skip() or fx.stop() while being compiled, so it "
                "runs eagerly from now on (slower). In a compiled loss use "
                "fx.skip_when(condition).",
            )
            plan.eager = True
            return self._eager(static, data, sel, n, src)
        ls = plan.finish(out, n)
        self._record(ls, n, src, ls if n == 1 and plan.form == "step" else _lazy(ls, n - 1))
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
                out = fn(tv, ov, plan.bufs, plan.halt, data, _later(sel, j), 1)
            except SkipException:
                self.pos += 1
                continue
            except StopException:
                raise _Stopped from None
            ls = plan.finish(out, 1)
            self._record(ls, 1, src, ls)
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
        return self.call((), batch, 0, 1, self.src)

    def check_batch(self, batch: Any, bi: int) -> None:
        """Warn (once) when a batch's shapes force a new compilation."""
        plan = self.plan
        if not same_batch(batch, plan.last_batch):
            plan.last_batch = batch if type(batch) is tuple else None
            sig = signature(batch)
            if sig != plan.signature:
                _new_signature(plan, sig, bi)

    def _empty(self, batch: Any) -> None:
        """Empty ``Params``: the loss runs eagerly, nothing is updated (Flux's train!)."""
        from .step import call_loss

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
    _warn_once(
        ("shape", id(plan), len(plan.signatures)),
        f"train: argument {i + 1} of batch {bi + 1} has shape {b[0]} and "
        f"dtype {b[1]}, where earlier batches had shape {a[0]} and dtype {a[1]}; every new "
        "shape or dtype compiles the training step again. Keep batch shapes and dtypes fixed "
        "(e.g. DataLoader(partial=False), or convert the data once with np.float32).",
    )


def epochs(n: int, *, log: bool = True) -> Iterator[int]:
    """``for epoch in fx.epochs(n): ...``: Flux's ``@epochs n``, a loop that logs each epoch.

    >>> import fluxjax as fx
    >>> for e in fx.epochs(2):
    ...     pass
    Epoch 1
    Epoch 2
    """
    n = checks.check_epochs(n)
    for i in range(1, n + 1):
        if log:
            print(f"Epoch {i}")
        yield i
