"""``train``: for each batch, the gradient of the loss, one optimiser step, the callbacks.

Two forms drive one engine:

* implicit (Flux v0.12, the tutorial's): ``fx.train(loss, ps, data, opt)`` with
  ``loss(*batch)`` closing over the model and ``ps = fx.params(model)``; the optimiser
  state lives inside ``opt``, so calling ``train`` again continues Adam's moments;
* explicit (Flux >= 0.14): ``fx.train(loss, model, data, state)`` with
  ``loss(model, *batch)`` and ``state = fx.setup(rule, model)`` (or a bare rule, whose state
  then lives inside the rule object, as in implicit mode).

A batch that is a tuple is splatted into the loss; anything else is passed as one argument
(Flux's ``batchmemaybe``).

How it runs: ``train`` builds one compiled step per (loss, parameters, rule, model
structure) and keeps it across calls, so calling ``train`` once per epoch compiles once.
The step binds *every* array of every module the loss can see (the trainable ones as
differentiated inputs, the rest as plain inputs), applies the rules, and writes back every
array that changed (running statistics included). When the data live in memory (a list of
equally shaped batches, a DataLoader over arrays) and there is more than one step to take,
steps run fused on the device; callbacks then fire once per fused call (``steps_per_call``
steps, 1000 by default when there are callbacks; ``steps_per_call=1`` gives Flux's
callback after every step).

Arrays are values: training puts new arrays into the model's attributes and the old ones
are donated (deleted). Keep reading parameters through the model (``m[0].weight``).
"""

from __future__ import annotations

import inspect
import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._plan import SKIPS, Plan, _filled, captured_arrays, loss_key
from .autodiff import Param, Params
from .callbacks import History, Scheduled, SkipException, StepContext, StopException
from .data import DataLoader
from .module import Module, is_array
from .optimise.base import Rule, rule_version
from .optimise.interface import Leaf, OptimiserState, RulesKey, _triples
from .optimise.optax import as_rule

__all__ = ["train", "epochs", "skip_when", "TrainHistory"]

_PLANS: OrderedDict[Any, Plan] = OrderedDict()
_MAX_PLANS = 64
_WARNED: set[Any] = set()


def _warn_once(key: Any, text: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(text, UserWarning, stacklevel=4)


# -- finding (or building) the plan --------------------------------------------------------
def _explicit_leaves(state: OptimiserState, model: Module) -> list[tuple[Leaf, list[Any]]]:
    pairs: dict[int, tuple[Leaf, list[Any]]] = {}
    for leaf, slot, _ in _triples(state, model, None):
        pairs.setdefault(id(leaf), (leaf, []))[1].append(slot)
    return [(lf, sl) for lf, sl in pairs.values() if not lf.frozen]


def _build(loss: Any, target: Any, opt: Any) -> tuple[Any, Callable[[], Plan]]:
    """The cache key of (loss, target, opt) and a function that builds its plan."""
    lk = loss_key(loss)
    if isinstance(target, Params):
        if not isinstance(opt, Rule):
            raise TypeError(
                "train(loss, ps, data, opt): with Params, opt must be a rule such as "
                f"fx.Adam(), got {type(opt).__name__}. For explicit mode pass the model and "
                "fx.setup(rule, model)."
            )
        key = ("implicit", lk, target.key(), id(opt))
        return key, lambda: Plan(
            loss, None, list(target.entries), [opt] * len(target), opt, list(target.roots)
        )
    if isinstance(target, Module):
        if isinstance(opt, Rule):

            def make() -> Plan:
                entries = Params().add(target).entries
                return Plan(loss, target, entries, [opt] * len(entries), opt, [target])

            return ("explicit-rule", lk, id(target), id(opt)), make
        if isinstance(opt, OptimiserState):
            live = _explicit_leaves(opt, target)
            key = ("explicit", lk, id(target), id(opt), tuple(id(lf) for lf, _ in live))
            return key, lambda: Plan(
                loss,
                target,
                [Param(sl) for _, sl in live],
                [lf.rule for lf, _ in live],
                [lf for lf, _ in live],
                [target],
            )
        raise TypeError(
            "train(loss, model, data, state): state must come from fx.setup(rule, model) "
            f"(or be a rule such as fx.Adam()), got {type(opt).__name__}."
        )
    raise TypeError(
        "train: the second argument must be fx.params(model) (implicit mode, loss(x, y)) or "
        f"the model itself (explicit mode, loss(model, x, y)); got {type(target).__name__}."
    )


_LAST: list[Any] = [None, None, None, None, None]  # loss, target, opt, versions, plan


def _versions(loss: Any, target: Any) -> tuple[Any, ...]:
    cells = getattr(loss, "__closure__", None) or ()
    return (
        rule_version(),
        getattr(target, "version", 0),
        *(id(c.cell_contents) if _filled(c) else None for c in cells),
    )


def _plan(loss: Any, target: Any, opt: Any) -> Plan:
    """The plan for (loss, target, opt): the same objects as last call and nothing changed
    is one comparison (the tutorial's loop); otherwise a cache look-up by content."""
    last = _LAST
    if (
        loss is last[0]
        and target is last[1]
        and opt is last[2]
        and _versions(loss, target) == last[3]
        and not last[4].stale()
    ):
        return last[4]
    plan = _lookup(loss, target, opt)
    _LAST[:] = [loss, target, opt, _versions(loss, target), plan]
    return plan


def _lookup(loss: Any, target: Any, opt: Any) -> Plan:
    key, make = _build(loss, target, opt)
    plan = _PLANS.get(key)
    if plan is not None and plan.stale():
        plan.flush()
        plan = None
    if plan is not None and plan.rules_version != rule_version():
        if RulesKey(tuple(plan.rules)) != plan.rkey:  # opt.eta = ... since it was compiled
            plan.flush()
            plan = None
        else:
            plan.rules_version = rule_version()
    if plan is None:
        plan = make()
        if not plan.entries:
            raise ValueError(
                "train: there is nothing to train (empty Params, or every parameter frozen)."
            )
        _PLANS[key] = plan
        while len(_PLANS) > _MAX_PLANS:
            _PLANS.popitem(last=False)[1].flush()
    return plan


# -- the history ---------------------------------------------------------------------------
class TrainHistory:
    """What ``train`` returns: the loss of every step taken, read from the device only when
    asked. The same interface as ``fx.History``: ``losses``, ``steps``, ``epochs``, ``len``,
    ``best()``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), False)
    >>> x = jnp.ones((2, 1))
    >>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x), (x, x)],
    ...              fx.Descent(0.25), epochs=2)
    >>> h.losses, h.epochs
    ([1.0, 0.25, 0.0625, 0.015625], [1, 1, 2, 2])
    """

    def __init__(self) -> None:
        # (device losses, how many of them are real steps, epoch of each: an int or a
        # (first step's 0-based index in the run, steps per epoch) pair)
        self._raw: list[tuple[Any, int, Any]] = []
        self._hist: History | None = None

    def _add(self, losses: Any, count: int, epoch: Any) -> None:
        self._raw.append((losses, count, epoch))
        self._hist = None

    def _materialise(self) -> History:
        if self._hist is None:
            h = History()
            for raw, count, epoch in self._raw:
                values = np.asarray(raw, dtype=np.float64).ravel()[:count].tolist()
                for i, v in enumerate(values):
                    h.losses.append(v)
                    h.steps.append(len(h.steps) + 1)
                    h.epochs.append(
                        epoch if isinstance(epoch, int) else (epoch[0] + i) // epoch[1] + 1
                    )
            self._hist = h
        return self._hist

    @property
    def losses(self) -> list[float]:
        return self._materialise().losses

    @property
    def steps(self) -> list[int]:
        return self._materialise().steps

    @property
    def epochs(self) -> list[int]:
        return self._materialise().epochs

    def best(self) -> float:
        """The lowest loss of the run."""
        return self._materialise().best()

    def __len__(self) -> int:
        return len(self._materialise())

    def __repr__(self) -> str:
        return "Train" + repr(self._materialise())


# -- callbacks -----------------------------------------------------------------------------
_ARITY: dict[int, tuple[Any, bool]] = {}


def _takes_context(f: Any) -> bool:
    hit = _ARITY.get(id(f))
    if hit is not None and hit[0] is f:
        return hit[1]
    try:
        sig = inspect.signature(getattr(f, "__wrapped__", f))
        kinds = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
        takes = any(p.kind in kinds for p in sig.parameters.values())
    except (TypeError, ValueError):
        takes = False
    _ARITY[id(f)] = (f, takes)
    return takes


_LAST_CB: list[Any] = [None, None]


def _callbacks(cb: Any) -> list[tuple[Callable[..., Any], bool]]:
    if cb is _LAST_CB[0]:
        return _LAST_CB[1]
    cbs = list(cb) if isinstance(cb, list | tuple) else [cb]
    for f in cbs:
        if not callable(f):
            raise TypeError(f"train: cb must be a function or a list of them, got {f!r}.")
    out = [(f, _takes_context(f)) for f in cbs]
    _LAST_CB[:] = [cb, out]
    return out


def _fire(cbs: list[tuple[Callable[..., Any], bool]], *context: Any) -> bool:
    """Run the callbacks (those taking an argument get ``StepContext(*context)``, made once);
    True when one called ``fx.stop()``."""
    ctx = None
    try:
        for f, takes in cbs:
            if takes:
                if ctx is None:
                    ep, step, loss, eta, bi = context
                    ctx = StepContext(ep, step, loss, eta() if callable(eta) else eta, bi)
                f(ctx)
            else:
                f()
    except SkipException:
        pass
    except StopException:
        return True
    return False


def _lazy(losses: Any, index: Any) -> Callable[[], Any]:
    """A zero-argument function reading one loss of a device block (only when called)."""
    return lambda: losses[index]


# -- data ----------------------------------------------------------------------------------
def _signature(batch: Any) -> tuple[Any, ...]:
    """(shape, dtype) of every array of a batch (and its structure, unless a flat tuple)."""
    if type(batch) is tuple and all(hasattr(a, "shape") for a in batch):
        return tuple((a.shape, a.dtype) for a in batch)
    leaves, treedef = jax.tree_util.tree_flatten(batch)
    return (treedef, *((np.shape(a), jnp.result_type(a)) for a in leaves))


def _fusable(data: Any, n_epochs: int) -> Any:
    """``("list", batches)`` or ``("loader", loader)`` when steps can run fused, else None."""
    if isinstance(data, DataLoader):
        leaves = jax.tree_util.tree_leaves(data.data)
        if data.collate is None and leaves and all(is_array(a) for a in leaves):
            if not any(isinstance(a, np.memmap) for a in leaves):
                return ("loader", data)
        return None
    if isinstance(data, list | tuple) and data and len(data) * n_epochs > 1:
        leaves = jax.tree_util.tree_leaves(data[0])
        if not leaves or not all(is_array(a) for a in leaves):
            return None
        sig = _signature(data[0])
        if all(_signature(b) == sig for b in data[1:]):
            return ("list", data)
    return None


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


# -- the loop -------------------------------------------------------------------------------
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
) -> TrainHistory:
    """Run one optimiser step per batch of ``data``, ``epochs`` times, calling ``cb`` after
    each step; returns the per-step losses as a ``TrainHistory``.

    * ``train(loss, ps, data, opt)``: implicit mode, ``loss(*batch)``, ``ps = fx.params(m)``.
    * ``train(loss, model, data, state)``: explicit mode, ``loss(model, *batch)``.
    * ``cb``: a function or a list of them, run after each step's update. One that takes an
      argument receives a ``StepContext`` (epoch, step, loss, eta, batch_index).
      ``fx.stop()`` ends training keeping the updates so far; ``fx.skip()`` in a callback
      skips that step's remaining callbacks. Inside the loss, ``fx.skip()`` skips the update
      when running eagerly; in a compiled loss use ``fx.skip_when(condition)`` (a Python
      ``skip()`` met while compiling makes ``train`` run that loss eagerly, with a warning).
    * A non-finite loss or gradient stops training with ``FloatingPointError`` naming the
      step; the model keeps the parameters from before that step (in a loop of one-step
      calls the error may come up to 16 calls later; nothing after the failed step is
      applied). Chain ``fx.SkipNonFinite()`` in front of the rule to skip such batches.
    * ``progress=True`` shows a tqdm bar with the running loss.
    * ``compile=False`` runs the same step eagerly (print from the loss, use a debugger).
    * ``steps_per_call``: how many steps one compiled call runs when the data are in memory.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Dense(jnp.array([[0.0]]), jnp.array([0.0]))
    >>> x = jnp.array([[1.0], [2.0]]); y = 3 * x
    >>> h = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)], fx.Descent(0.1),
    ...              epochs=500)
    >>> round(float(m.weight[0, 0]), 3), len(h.losses)
    (3.0, 500)
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"train: epochs must be a non-negative int, got {epochs!r}.")
    if steps_per_call is not None and (not isinstance(steps_per_call, int) or steps_per_call < 1):
        raise ValueError(f"train: steps_per_call must be a positive int, got {steps_per_call!r}.")
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"train: data must be an iterable of batches, got {type(data).__name__}; pass e.g. "
            "[(x, y)] for all the data at each step, or fx.DataLoader((x, y), batchsize=...)."
        )
    opt = as_rule(opt)  # an optax transformation works as a rule (extras: one line)
    plan = _plan(loss, target, opt)
    if not plan.owns_state():
        plan.acquire()
    plan.check(False, plan.steps_done)
    call_start = plan.steps_done
    if compile and not plan.warned_captured:
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
    cbs = _callbacks(cb) if cb is not None else []
    hist = TrainHistory()
    bar = _bar(progress, data, epochs)
    try:
        _run(plan, data, epochs, cbs, hist, compile, steps_per_call, bar, call_start)
    except FloatingPointError as e:
        e.history = hist  # type: ignore[attr-defined]  (the losses up to the failure)
        raise
    finally:
        _finish(cbs)
    return hist


def _finish(cbs: list[Any]) -> None:
    """extras: ``Scheduled.finish()`` once per train call (normal end, stop, exception)."""
    for f, _ in cbs:
        if isinstance(f, Scheduled):
            f.finish()


def _run(
    plan: Plan,
    data: Any,
    epochs: int,
    cbs: list[Any],
    hist: TrainHistory,
    compile: bool,
    steps_per_call: int | None,
    bar: Any,
    call_start: int,
) -> None:
    try:
        fused = _fusable(data, epochs) if compile and steps_per_call != 1 else None
        if fused is not None and not plan.eager:
            _run_fused(plan, fused, epochs, cbs, hist, steps_per_call, bar, call_start)
        else:
            _run_steps(plan, data, epochs, cbs, hist, compile, bar, call_start)
    finally:
        if bar is not None:
            bar.close()
    # A call of several steps waits for its last one and reports a failure now; a call of
    # one step (the per-epoch loop) reports it within a few calls, to keep dispatching ahead.
    plan.check(not compile or plan.steps_done - call_start > 1, call_start)


def _bar(progress: bool, data: Any, n_epochs: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    try:
        total = len(data) * n_epochs  # type: ignore[arg-type]
    except TypeError:
        total = None
    return tqdm(total=total, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)


def _bar_update(bar: Any, n: int, loss: Any, last: list[float]) -> None:
    if bar is None:
        return
    bar.update(n)
    now = time.monotonic()
    if now - last[0] > 0.2:
        last[0] = now
        bar.set_postfix(loss=f"{float(loss() if callable(loss) else loss):.4g}")


def _same_batch(batch: Any, last: Any) -> bool:
    """True when ``batch`` is a tuple of the very arrays of the last batch (arrays are
    immutable for JAX; a NumPy array's shape and dtype cannot change in place either)."""
    if last is None or type(batch) is not tuple or len(batch) != len(last):
        return False
    return all(a is b for a, b in zip(batch, last))


def _pairs(sig: Any) -> list[tuple[Any, Any]]:
    """The (shape, dtype) pairs of a batch signature, in order."""
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


def _run_steps(
    plan: Plan,
    data: Any,
    n_epochs: int,
    cbs: list[Any],
    hist: TrainHistory,
    compile: bool,
    bar: Any,
    call_start: int,
) -> None:
    eta = plan.callback_eta
    step, last = 0, [0.0]
    for ep in range(1, n_epochs + 1):
        for bi, batch in enumerate(data):
            tv, ov = plan.inputs()
            if compile and not plan.eager and not _same_batch(batch, plan.last_batch):
                plan.last_batch = batch if type(batch) is tuple else None
                sig = _signature(batch)
                if sig != plan.signature:
                    _new_signature(plan, sig, bi)
            try:
                out = _call(plan, compile, tv, ov, batch)
            except SkipException:
                continue
            except StopException:
                return
            l = plan.finish(out, 1)
            step += 1
            hist._add(l, 1, ep)
            if not compile or plan.eager:
                plan.check(True, call_start)
            _bar_update(bar, 1, l, last)
            if cbs and _fire(cbs, ep, step, l, eta, bi):
                return


def _call(plan: Plan, compile: bool, tv: list[Any], ov: list[Any], batch: Any) -> Any:
    if not compile or plan.eager:
        return plan._step(tv, ov, plan.bufs, plan.halt, batch)
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
        plan.step = jax.jit(plan._step, donate_argnums=plan.donate)
        return plan._step(tv, ov, plan.bufs, plan.halt, batch)


def _run_fused(
    plan: Plan,
    fused: Any,
    n_epochs: int,
    cbs: list[Any],
    hist: TrainHistory,
    steps_per_call: int | None,
    bar: Any,
    call_start: int,
) -> None:
    kind, data = fused
    per_epoch = len(data)
    total = per_epoch * n_epochs
    if total == 0:
        return
    chunk = steps_per_call or (1000 if cbs else 4096)
    eta = plan.callback_eta
    last = [0.0]
    if kind == "list":
        stacked = data[0] if per_epoch == 1 else _stacked(plan, data)
        cap = _pow2(chunk)
        fn = plan.fused("list", cap, per_epoch)
        done = 0
        while done < total:
            n = min(chunk, cap, total - done)
            tv, ov = plan.inputs()
            out = fn(
                tv, ov, plan.bufs, plan.halt, stacked, jnp.int32(done % per_epoch), jnp.int32(n)
            )
            ls = plan.finish(out, n)
            hist._add(ls, n, (done, per_epoch))
            done += n
            _bar_update(bar, n, _lazy(ls, n - 1), last)
            if cbs:
                ep, bi, k = (done - 1) // per_epoch + 1, (done - 1) % per_epoch, n - 1
                if _fire(cbs, ep, done, _lazy(ls, k), eta, bi):
                    return
                plan.check(True, call_start)
        return
    loader = data
    device_data = _on_device(loader)
    e_chunk = max(1, min(chunk // per_epoch, n_epochs))
    e_cap = _pow2(e_chunk)  # index arrays are (e_cap, ...): no bigger than this call needs
    ep = 0
    while ep < n_epochs:
        e = min(e_chunk, n_epochs - ep)
        fulls, tails = zip(*(loader.epoch_indices() for _ in range(e)))
        full = np.zeros((e_cap, *fulls[0].shape), np.int32)
        tail = np.zeros((e_cap, len(tails[0])), np.int32)
        full[:e], tail[:e] = np.stack(fulls), np.stack(tails)
        fn = plan.fused("loader", e_cap, not loader.shuffle)
        tv, ov = plan.inputs()
        out = fn(
            tv,
            ov,
            plan.bufs,
            plan.halt,
            device_data,
            jnp.asarray(full),
            jnp.asarray(tail),
            jnp.int32(e),
        )
        ls = plan.finish(out, e * per_epoch)
        hist._add(ls, e * per_epoch, (ep * per_epoch, per_epoch))
        ep += e
        _bar_update(bar, e * per_epoch, _lazy(ls, (e - 1, -1)), last)
        if cbs:
            if _fire(cbs, ep, ep * per_epoch, _lazy(ls, (e - 1, -1)), eta, per_epoch - 1):
                return
            plan.check(True, call_start)


def _stacked(plan: Plan, batches: list[Any]) -> Any:
    """The batches stacked on the device; kept while they are the same JAX arrays (JAX
    arrays are immutable), rebuilt every call from NumPy arrays (the user may change them)."""
    leaves = [a for b in batches for a in jax.tree_util.tree_leaves(b)]
    ids = tuple(id(a) for a in leaves)
    cached = plan.stack_cache
    if cached is not None and cached[0] == ids and all(a is b for a, b in zip(cached[1], leaves)):
        return cached[2]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batches)
    if all(isinstance(a, jax.Array) for a in leaves):
        plan.stack_cache = (ids, leaves, stacked)
    return stacked


def _on_device(loader: DataLoader) -> Any:
    """A DataLoader's arrays on the device, kept on the loader: it holds private read-only
    copies of NumPy data (memory-mapped data is never fused), so they cannot change."""
    cached = loader.__dict__.get("_fx_device")
    if cached is None or cached[0] is not loader.data:
        cached = (loader.data, jax.tree_util.tree_map(jnp.asarray, loader.data))
        loader.__dict__["_fx_device"] = cached
    return cached[1]


def skip_when(condition: Any) -> None:
    """Inside a loss: skip this step's update when ``condition`` (a boolean scalar) holds.

    In a compiled step the update is selected away (no Python branch on a traced value);
    elsewhere a true condition raises ``SkipException`` like ``fx.skip()``.

    >>> import fluxjax as fx
    >>> fx.skip_when(False)
    """
    if SKIPS and isinstance(condition, jax.core.Tracer):
        SKIPS[-1].append(jnp.asarray(condition, bool))
        return
    if bool(condition):
        raise SkipException()


def epochs(n: int, *, log: bool = True) -> Iterator[int]:
    """``for epoch in fx.epochs(n): ...``: Flux's ``@epochs n``, a loop that logs each epoch.

    >>> import fluxjax as fx
    >>> for e in fx.epochs(2):
    ...     pass
    Epoch 1
    Epoch 2
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"epochs(n): n must be a non-negative int, got {n!r}.")
    for i in range(1, n + 1):
        if log:
            print(f"Epoch {i}")
        yield i
