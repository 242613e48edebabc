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
the old ones are donated). Keep reading parameters through the model (``m[0].weight``): a
small model's parameters cross the compiled call packed and stay packed between calls,
unpacked in place when first read (``Plan.hold``). A call identical to the last one (the
per-epoch loop) is replayed without being set up again (``run.Replay``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax

from .. import checks, distributed
from ..data import DataLoader
from ..optimise.optax import OptaxRule, as_rule
from ..optimise.state import OptimiserState
from ..params import Params
from . import cache, react
from .history import TrainHistory
from .plan import Plan
from .run import REPLAY, Run, warn_once
from .scope import captured_arrays, loss_key
from .sources import same_batch

KEYWORDS = ("cb", "epochs", "progress", "compile", "steps_per_call", "devices", "mesh")
KEYWORDS += ("shard_params", "fuse", "precision")
ALIASES = {"callbacks": "cb", "callback": "cb", "nb_epoch": "epochs", "verbose": "progress"}


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
    * A non-finite loss or gradient (or a gradient element beyond 1e19, whose square
      overflows the norm) stops training with ``FloatingPointError`` naming the
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
      step per batch where XLA runs the step slower in a loop: large matrix products on
      the CPU); ``True`` forces the loop, ``False`` the lone step. ``fx.explain`` shows it.
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
    # the tutorial's loop: the same call as the last one (``Replay``), a few comparisons
    if (
        type(epochs) is int
        and epochs == 1
        and progress is False
        and compile is True
        and steps_per_call is None
        and devices is None
        and mesh is None
        and shard_params is False
        and fuse is None
        and precision is None
        and REPLAY.matches(loss, target, data, opt, cb)
    ):
        try:
            return REPLAY.go(data)
        except checks.TRACE_ERRORS as e:
            raise checks.explain_trace_error(e) from None
    plan = cache.LAST.plan if cache.LAST.same(loss, target, opt) else None
    if plan is None:  # the API's edge: an optax transformation (or a rule holding one) as rules
        opt = as_rule(opt)
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
        _warn_fresh_optimiser(loss, target, opt)
        plan = cache.find(loss, target, opt)
    react.set_precision(plan, precision)  # "bfloat16": mixed precision, float32 masters
    if not plan.owns_state():
        plan.acquire()
    # the plan's arrays on the devices (None: one device; arrays in place stay as they are)
    distributed.use(plan, distributed.Placement.from_args(devices, mesh, shard_params))
    if compile and not plan.warned_captured:
        _warn_captured(plan, loss)
    if plan.placement is None and isinstance(data, DataLoader) and data.shard is not None:
        _warn_unshared(data)
    sched = plan.schedules.get(cb, steps_per_call)
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
    if epochs == 1 and type(data) is list and len(data) == 1:
        REPLAY.keep(run, data, cb)
    return hist


class _Renewals:
    """How many calls in a row brought a new optimiser like the last call's
    (``_warn_fresh_optimiser``), and the last of them (weakly)."""

    def __init__(self) -> None:
        self.count, self.last = 0, cache.weak(None)


RENEWALS = _Renewals()


def _warn_fresh_optimiser(loss: Any, target: Any, opt: Any) -> None:
    """The optimiser made anew each call (``fx.train(loss, ps, data, fx.Adam())`` inside
    the epoch loop, or ``fx.setup`` there): a new object with the settings of the last
    call's, on the same loss and parameters, in the second call in a row that does so (a
    single second run after a first is not a loop). As in Flux, it starts from fresh
    state; here each new object also compiles the step again."""
    refs = cache.LAST.refs
    if not refs:
        return
    last_loss, last_target, last_opt = (r() for r in refs)
    if last_opt is None or last_opt is opt or type(last_opt) is not type(opt):
        return
    # an Optax rule's repr shows no settings; another repr, other settings
    if isinstance(opt, OptaxRule) or repr(last_opt) != repr(opt):
        return
    same = last_target is target or (
        isinstance(target, Params)
        and isinstance(last_target, Params)
        and last_target.key() == target.key()
    )
    if not same or last_loss is None or loss_key(last_loss) != loss_key(loss):
        return
    renewed = RENEWALS.last() is last_opt  # the last call's optimiser was a new one too
    RENEWALS.count = RENEWALS.count + 1 if renewed else 1
    RENEWALS.last = cache.weak(opt)
    if RENEWALS.count < 2:
        return
    fresh = "fx.setup(rule, model)" if isinstance(opt, OptimiserState) else repr(opt)
    warn_once(
        ("fresh optimiser", loss_key(loss)),
        f"train: this call was given a new optimiser, {fresh}, with the settings of the "
        "ones the last two calls on the same loss and parameters had. Each new optimiser "
        "starts from fresh state (its momenta and step counts, if it keeps any), as in "
        "Flux, and train compiles its step again for it. If the state should carry on from "
        "epoch to epoch, make it once, before the loop: opt = fx.Adam(); then "
        "fx.train(loss, ps, data, opt) in the loop (explicit mode: "
        "state = fx.setup(fx.Adam(), model) before the loop).",
    )


def _warn_unshared(loader: Any) -> None:
    """A sharded DataLoader in a multi-process run without ``devices=``: each process
    would train its own model on its part of every batch."""
    if jax.process_count() > 1:
        warn_once(
            ("unshared", id(loader)),
            f"train: the DataLoader has shard={loader.shard}, but train was given no "
            "devices= or mesh=, so each process trains its own copy of the model on its part "
            "of every batch and no gradients are combined. Pass devices=jax.devices() to "
            "train one model on the whole batches.",
        )


def _warn_captured(plan: Plan, loss: Any) -> None:
    plan.warned_captured = True
    found = captured_arrays(loss)
    if found:
        warn_once(
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
