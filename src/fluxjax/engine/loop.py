"""``train``: for each batch, the gradient of the loss, one optimiser step, the callbacks.

Two forms drive one engine:

* implicit (Flux v0.12, the tutorial's): ``fx.train(loss, ps, data, opt)`` with
  ``loss(*batch)`` closing over the model and ``ps = fx.params(model)``; the optimiser
  state lives inside ``opt``, so calling ``train`` again continues Adam's moments;
* explicit (Flux >= 0.14): ``fx.train(loss, model, data, state)`` with
  ``loss(model, *batch)`` and ``state = fx.setup(rule, model)`` (or a bare rule, whose state
  then lives inside the rule object, as in implicit mode).

Callbacks run after every step's update, as in Flux, with the model holding that step's
arrays. Steps run fused on the device only between the points where a callback can act:
with no callback, or only scheduled ones (``fx.every``, ``fx.throttle``), when the data
live in memory and fusing measures faster.

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

from .. import checks, distributed
from ..callbacks import SkipException, StepContext, StopException
from ..optimise.optax import as_rule
from . import cache, policy
from .history import TrainHistory
from .plan import Plan
from .schedule import Schedule
from .scope import captured_arrays, loss_key
from .sources import classify, signature

_WARNED: set[Any] = set()
CHUNK = 4096  # most steps one fused call runs
SMALL = 64  # fused calls of at most this many steps use a small loss buffer


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

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), jnp.array([0.0]))
    >>> x = jnp.array([[1.0], [2.0]]); y = 3 * x
    >>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)], fx.Descent(0.1),
    ...              epochs=500)
    >>> round(float(m.weight[0, 0]), 3), len(h.losses)
    (3.0, 500)
    """
    opt = as_rule(opt)  # an optax transformation works as a rule (one isinstance for a rule)
    one = type(data) is list and len(data) == 1 and epochs == 1 and compile and not progress
    if one and devices is None and mesh is None and not shard_params:
        hist = _one_step(loss, target, data[0], opt, cb, steps_per_call)
        if hist is not None:
            return hist
    epochs = checks.check_epochs(epochs)
    if steps_per_call is not None:
        steps_per_call = checks.check_count(steps_per_call, "steps_per_call", lo=1)
    checks.check_data(data, epochs)
    checks.check_opt(opt)
    if isinstance(target, tuple) and not target:
        target = checks.NOTHING  # Flux's train!(loss, (), data, opt): the loss runs, no update
    plan = cache.find(loss, target, opt)
    if not plan.owns_state():
        plan.acquire()
    # the plan's arrays on the devices (None: one device; arrays in place stay as they are)
    distributed.use(plan, distributed.Placement.from_args(devices, mesh, shard_params))
    plan.check(False, plan.steps_done)
    if compile and not plan.warned_captured:
        _warn_captured(plan, loss)
    sched = _schedule(cb, steps_per_call)
    hist = TrainHistory()
    run = Run(plan, sched, hist, compile, _bar(progress, data, epochs))
    try:
        run.go(data, epochs)
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


def _one_step(
    loss: Any, target: Any, batch: Any, opt: Any, cb: Any, steps_per_call: Any
) -> TrainHistory | None:
    """The tutorial's loop, ``train`` once per epoch on one batch, when nothing changed
    since the last call (the same plan, owning its state, the very same batch arrays): the
    same steps as ``Run`` takes for one step, without building it. None: take the general
    path."""
    last = cache._LAST
    if loss is not last[0] or target is not last[1] or opt is not last[2]:
        return None  # a new call: the general path checks its arguments
    if steps_per_call is not None or type(batch) is not tuple:
        return None
    plan = cache.find(loss, target, opt)
    if plan.eager or plan.empty or not plan.owns_state() or plan.placement is not None:
        return None
    if not _same_batch(batch, plan.last_batch):
        return None
    sched = _schedule(cb, None) if cb is not None else None
    start = plan.steps_done
    hist = TrainHistory()
    tv, ov = plan.inputs()
    l = plan.finish(plan.step(tv, ov, plan.bufs, plan.halt, batch), 1)
    hist._add(l, 1, 1)
    try:
        if sched is not None:
            _one_step_callbacks(plan, sched, hist, l)
        # one lagged check covers this call and the earlier ones (failures are sticky)
        plan.check(False, start)
    except FloatingPointError as e:
        e.history = hist  # type: ignore[attr-defined]
        raise
    return hist


def _one_step_callbacks(plan: Plan, sched: Schedule, hist: TrainHistory, l: Any) -> None:
    eta = plan.callback_eta

    def context() -> StepContext:
        return StepContext(1, 1, l, eta() if callable(eta) else eta, 0, history=hist)

    if not sched.scheduled:  # plain callbacks only: Flux's loop, nothing to schedule
        stopped, ctx = sched.fire(1, context, None)
        if ctx is not None and ctx.metrics:
            hist._record(1, ctx.metrics)
        plan.reclaim()
        return
    sps = getattr(plan, "sps", None)
    try:
        sched.start(sps)
        stopped = False
        if sched.is_due(1):
            stopped, ctx = sched.fire(1, context, sps)
            if ctx is not None and ctx.metrics:
                hist._record(1, ctx.metrics)
        if sched.ends:
            sched.at_end(1, context, sps)
        plan.reclaim()
    finally:
        sched.finish(1)


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


_LAST_CB: list[Any] = [object(), None, None]  # cb, steps_per_call, its parsed Schedule


def _schedule(cb: Any, steps_per_call: int | None) -> Schedule:
    """A fresh Schedule for this call (parsing ``cb`` only when it is a new object)."""
    if cb is _LAST_CB[0] and steps_per_call == _LAST_CB[1]:
        return _LAST_CB[2].fresh()
    s = Schedule(cb, steps_per_call)
    _LAST_CB[:] = [cb, steps_per_call, s]
    return s.fresh()


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


class Run:
    """One ``train`` call: ``done`` steps taken so far, ``pos`` batches consumed (a batch
    skipped by the loss is consumed without a step)."""

    def __init__(self, plan: Plan, sched: Schedule, hist: TrainHistory, compile: bool, bar):
        self.plan, self.sched, self.hist, self.compile, self.bar = plan, sched, hist, compile, bar
        self.done = self.pos = 0
        self.call_start = plan.steps_done
        self.eta = plan.callback_eta
        # time a step takes (for fx.throttle's spans): only measured when a scheduled
        # callback may use it, since measuring waits for the device
        self.timing = sched.active and not sched.plain
        self.sps: float | None = getattr(plan, "sps", None)
        self.src: Any = None  # the in-memory data source, when there is one

    def go(self, data: Any, n_epochs: int) -> None:
        plan = self.plan
        self.sched.start(self.sps)
        fast = self.compile and not plan.eager and not plan.empty
        kind = classify(data, n_epochs, plan.placement) if fast else None
        try:
            if kind is None:
                self.iterate(data, n_epochs)
            else:
                self.src = kind.for_plan(plan, n_epochs)
                self.spans(self.src)
        except _Stopped:
            pass
        if self.sched.ends and self.done:
            loss, ep, bi = self.last
            done, eta = self.done, self.eta
            if self.src is not None:
                self.src.settle(self.pos)
            self.sched.at_end(
                done,
                lambda: StepContext(
                    ep, done, loss, eta() if callable(eta) else eta, bi, history=self.hist
                ),
                self.sps,
            )
            self.plan.reclaim()

    # -- after a step ----------------------------------------------------------------------
    def stepped(self, n: int, losses: Any, last: Any, epoch: Any, ep: int, bi: int) -> None:
        """Record ``n`` steps (their losses), update the bar, fire the callbacks due."""
        self.done += n
        self.hist._add(losses, n, epoch)
        if self.bar is not None:
            self._bar_update(n, last)
        if self.sched.is_due(self.done):
            self._fire(last, ep, bi)
        elif self.sched.ends:
            self.last = (last, ep, bi)

    def _fire(self, last: Any, ep: int, bi: int) -> None:
        done, eta = self.done, self.eta
        self.last = (last, ep, bi)

        def context() -> StepContext:
            return StepContext(
                ep, done, last, eta() if callable(eta) else eta, bi, history=self.hist
            )

        if self.src is not None:  # a DataLoader knows how far into its epoch the run is
            self.src.settle(self.pos)
        try:
            stopped, ctx = self.sched.fire(done, context, self.sps)
        finally:
            if self.src is not None:
                self.src.unsettle(self.pos)
        if ctx is not None and ctx.metrics:
            self.hist._record(done, ctx.metrics)
            if self.bar is not None:
                self.bar.metrics(ctx.metrics)
        self.plan.reclaim()  # a callback that read the optimiser state (a checkpoint) took it
        if stopped:
            raise _Stopped

    def _bar_update(self, n: int, loss: Any) -> None:
        self.bar.update(n, loss)  # fluxjax.progress.Bar: reads the loss only when it redraws

    # -- one step at a time -----------------------------------------------------------------
    def single(self, batch: Any, bi: int) -> Any:
        """One step on ``batch``; its loss (a device scalar), or None when the loss skipped.
        Raises ``_Stopped`` when the loss called ``fx.stop()``."""
        plan = self.plan
        self.pos += 1
        if plan.empty:
            return self._empty(batch)
        tv, ov = plan.inputs()
        if self.compile and not plan.eager and not _same_batch(batch, plan.last_batch):
            plan.last_batch = batch if type(batch) is tuple else None
            sig = signature(batch)
            if sig != plan.signature:
                _new_signature(plan, sig, bi)
        if plan.placement is not None:  # split over the devices
            batch = plan.placement.batch(batch)
        try:
            out = _call(plan, self.compile, tv, ov, batch)
        except SkipException:
            return None
        except StopException:
            raise _Stopped from None
        l = plan.finish(out, 1)
        # eagerly: at once; compiled: every LAG calls, which also bounds the work in flight
        plan.check(not self.compile or plan.eager, self.call_start)
        return l

    def _empty(self, batch: Any) -> Any:
        from .step import call_loss

        try:
            out = call_loss(self.plan, batch)
        except SkipException:
            return None
        except StopException:
            raise _Stopped from None
        self.plan.steps_done += 1
        try:
            return jnp.asarray(out, jnp.float32)
        except TypeError:
            return jnp.float32(jnp.nan)

    def iterate(self, data: Any, n_epochs: int) -> None:
        """Any iterable: one compiled step per batch, the callbacks after each."""
        for ep in range(1, n_epochs + 1):
            for bi, batch in enumerate(data):
                l = self.single(batch, bi)
                if l is not None:
                    self.stepped(1, l, l, ep, ep, bi)

    # -- in-memory data: spans between callbacks ---------------------------------------------
    def spans(self, src: Any) -> None:
        """Steps over a list of equal batches or an in-memory DataLoader, in spans that end
        where a callback may act; each span fused or not as the policy measured."""
        while self.pos < src.total:
            k = min(self.sched.horizon(self.done) or src.total, src.total - self.pos)
            t = time.perf_counter()
            start = self.done
            self.span(src, k)
            if self.timing and self.done > start:
                jax.block_until_ready(self.plan.halt)
                self.sps = self.plan.sps = (time.perf_counter() - t) / (self.done - start)
            if self.done > start:
                if self.sched.is_due(self.done):
                    self._fire(src.last_loss, *src.where(self.pos - 1))
                else:
                    self.last = (src.last_loss, *src.where(self.pos - 1))

    def span(self, src: Any, k: int) -> None:
        """Run ``k`` batches of ``src`` (fewer if the loss skips: then it returns early)."""
        if self.plan.eager:  # the loss turned out to need Python: no fusing
            return self.singles(src, k)
        if k > 1 and not self.plan.carry_stable():
            # carried layer state (a recurrent layer's) that the next step would reshape,
            # e.g. unbatched after fx.reset: one single step first gives a fused loop a
            # carry whose shape holds
            self.singles(src, 1)
            k -= 1
        choice, used = policy.choose(
            self.plan, src.kind, k, lambda n: self.singles(src, n), lambda n: src.fused(self, n)
        )
        k -= used
        if choice and k > 1:
            src.fused(self, k)
        else:
            self.singles(src, k)

    def singles(self, src: Any, k: int) -> None:
        for _ in range(k):
            ep, bi = src.where(self.pos)
            l = self.single(src.batch(self.pos), bi)
            if l is not None:
                src.last_loss = l
                self.done += 1
                self.hist._add(l, 1, ep)
                if self.bar is not None:
                    self._bar_update(1, l)


def _call(plan: Plan, compile: bool, tv: list[Any], ov: list[Any], batch: Any) -> Any:
    from .step import single

    if not compile or plan.eager:
        return single(plan, tv, ov, plan.bufs, plan.halt, batch)
    try:
        return plan.step(tv, ov, plan.bufs, plan.halt, batch)
    except (SkipException, StopException):
        # raised while tracing: the loss decides in Python, so it must run eagerly
        _warn_once(
            ("eager", id(plan)),
            "train: the loss called fx.skip() or fx.stop() while being compiled, so it "
            "runs eagerly from now on (slower). In a compiled loss use "
            "fx.skip_when(condition).",
        )
        plan.eager = True
        return single(plan, tv, ov, plan.bufs, plan.halt, batch)


def _same_batch(batch: Any, last: Any) -> bool:
    """True when ``batch`` is a tuple of the very arrays of the last batch (arrays are
    immutable for JAX; a NumPy array's shape and dtype cannot change in place either)."""
    if last is None or type(batch) is not tuple or len(batch) != len(last):
        return False
    return all(a is b for a, b in zip(batch, last))


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
