"""The traced training step (internal): bind the arrays, call the loss, take gradients,
apply the rules, flag failures, and return the new arrays.

Failures (a non-finite loss or gradient, a rule's error) cannot raise inside compiled code.
The step carries a small int32 vector ``halt = [steps taken, step that failed, reason]``; a
failed step and every later one leave parameters and state unchanged, and the host raises
when it next reads ``halt``.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp

from .. import mode
from ..autodiff import first_output, zygote_grads
from ..callbacks import SkipException
from ..checks import check_loss_depends, check_loss_value
from ..layerstate import recording
from ..optimise.core import see_all
from ..optimise.globalnorm import global_norm
from ..optimise.lossscale import loss_scale


class _Skips:
    """The ``skip_when`` conditions met while a loss is traced: one list per loss being
    traced (nested when a loss traces another), the innermost last."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []

    def note(self, condition: Any) -> bool:
        """Record a traced condition for the loss being traced; False when none is."""
        if not self.stack:
            return False
        self.stack[-1].append(jnp.asarray(condition, bool))
        return True


SKIPS = _Skips()


def skip_when(condition: Any) -> None:
    """Inside a loss: skip this step's update when ``condition`` (a boolean scalar) holds.

    In a compiled step the update is selected away (no Python branch on a traced value);
    elsewhere a true condition raises ``SkipException`` like ``fx.skip()``.

    >>> import fluxjax as fx
    >>> fx.skip_when(False)
    """
    if isinstance(condition, jax.core.Tracer) and SKIPS.note(condition):
        return
    if bool(condition):
        raise SkipException()


def call_loss(plan: Any, batch: Any) -> Any:
    """``loss(*batch)`` (implicit) or ``loss(model, *batch)`` (explicit), layers active;
    a batch that is not a tuple is one argument (Flux's ``batchmemaybe``)."""
    args = batch if isinstance(batch, tuple) else (batch,)
    if plan.model is not None:
        args = (plan.model, *args)
    try:
        inspect.signature(plan.loss).bind(*args)
    except TypeError as e:
        raise TypeError(
            f"train: the loss cannot take this batch ({e}). A batch that is a tuple is "
            f"splatted into the loss, anything else is passed as one argument: the loss "
            f"got {len(args)} argument(s). For all the data at each step pass "
            "[(x, y)], not [x, y]; in explicit mode the loss is loss(model, x, y)."
        ) from None
    except ValueError:  # no signature (a builtin): let the call itself complain
        pass
    # layers are active in training; state they replace is recorded, not refused
    with mode.training(), recording():
        return plan.loss(*args)


def loss_and_grads(
    plan: Any, tv: list[Any], ov: list[Any], batch: Any, scale: Any = None
) -> tuple[Any, ...]:
    """The loss, its gradients w.r.t. the trainable arrays ``tv``, the other arrays after
    the loss ran (a layer may replace its statistics, keys or carried state) and the
    ``skip_when`` conditions met. With a loss ``scale`` (``LossScale``), the gradients are
    those of ``scale·loss`` divided by ``scale`` in float32 (small float16 gradients no
    longer underflow)."""
    entries, others = plan.entries, plan.others
    skips: list[Any] = []
    low = _lower(getattr(plan, "precision", None))
    batch = jax.tree_util.tree_map(low, batch)

    def lossfn(vals: list[Any]) -> tuple[Any, Any]:
        old_t, old_o = [p.get() for p in entries], [p.get() for p in others]
        try:
            for p, v in zip(entries, vals):
                p.set(low(v))  # the float32 master weights, cast for the computation
            for p, v in zip(others, ov):
                p.set(v)
            SKIPS.stack.append(skips)
            try:
                out = call_loss(plan, batch)
            finally:
                SKIPS.stack.pop()
            after = [p.get() for p in others]
        finally:
            for p, v in zip(entries, old_t):
                p.set(v)
            for p, v in zip(others, old_o):
                p.set(v)
        l = first_output(out)
        check_loss_value(l)  # None, a Python number, an array: a clear error
        if low is not _same:  # the loss in float32; layer state back in its own dtype
            l = jnp.asarray(l).astype(jnp.float32)
            after = [_like(a, o) for a, o in zip(after, ov)]
        return (l if scale is None else l * scale.astype(jnp.result_type(l))), (l, after)

    if not plan.depends_checked:  # once per plan (an extra trace): a loss blind to tv
        plan.depends_checked = True
        check_loss_depends(lossfn, tv, entries, skips)
    (_, (l, after)), grads = jax.value_and_grad(lossfn, has_aux=True)(tv)
    if scale is not None:
        grads = [g / scale.astype(jnp.result_type(g)) for g in grads]
    grads = zygote_grads(grads)  # Zygote's convention for complex parameters
    plan.changed = [i for i, (a, b) in enumerate(zip(after, ov)) if a is not b]
    return l, grads, after, skips


def _same(a: Any) -> Any:
    return a


def _lower(precision: str | None) -> Any:
    """The cast of a float32 array to the compute dtype of ``precision`` (identity when
    None); other dtypes pass unchanged."""
    if precision is None:
        return _same
    dt = jnp.dtype(precision)

    def low(a: Any) -> Any:
        if hasattr(a, "dtype") and jnp.result_type(a) == jnp.float32:
            return jnp.asarray(a).astype(dt)
        return a

    return low


def _like(a: Any, o: Any) -> Any:
    """Layer state ``a`` a step computed in low precision, in the dtype it was bound with."""
    if hasattr(a, "dtype") and hasattr(o, "dtype") and a.dtype != o.dtype:
        return a.astype(o.dtype)
    return a


def core(
    plan: Any,
    rules: list[Any],
    tv: list[Any],
    ov: list[Any],
    trees: list[Any],
    halt: Any,
    batch: Any,
    guard: str = "where",
):
    """One step of ``rules`` (``plan.rules`` with their learning rates traced, ``hyper``)
    on unpacked state: returns new ``(tv, ov, trees, halt)``, the loss and the
    step's ``aux``: the global gradient norm (``aux_of``), and the gradients themselves when
    a callback asked for them (``plan.keep_grads``).

    On several devices the batch is constrained to be split along its first axis.

    A skipped step keeps the old arrays, and so does a failed one unless ``guard`` is
    ``"lean"``. ``guard`` says how:

    * ``"cond"``: one ``lax.cond`` over all of them (a lone step);
    * ``"where"``: an elementwise ``where`` per array, which XLA fuses into the update
      (a ``cond`` inside a loop returns the loop-carried buffers, so XLA copies every
      parameter and state array each step);
    * ``"lean"`` (a loop's body): no selection unless the loss has ``skip_when``
      conditions. A failed step's results are kept, the loop stops, and the program
      returns its call's inputs (``program``): every selection waits for the step's
      gradient norm, so every update waited for the last gradient, and XLA then
      computed Adam's moments twice (784-512-512-10 over a DataLoader: 0.94x of a
      hand-written ``lax.scan`` with the selection, 1.0x without).

    The selections pick the same values."""
    if plan.placement is not None:
        batch = plan.placement.constrain(batch)
    scale = loss_scale(rules[0], trees[0][0]) if rules else None
    l, grads, after, skips = loss_and_grads(plan, tv, ov, batch, scale)
    # the gradients are computed the same way whether or not the program also returns them
    # (fx.every(..., grads=True)): without this barrier XLA fuses their last operations into
    # the update differently in the two programs, and the updates differ in the last bit
    grads = jax.lax.optimization_barrier(grads)
    rules = see_all(rules, grads)  # ClipGlobalNorm: the norm over every array
    new_tv, new_trees, err = plan.grouping.apply(rules, trees, tv, grads)
    aux = aux_of(plan, tv, grads)
    # the gradient norm is finite iff every gradient is (or a square overflows: |g| > 1e19,
    # only absurd gradients), so the step's norm is also its finiteness check: one pass
    finite = jnp.isfinite(l) & jnp.isfinite(aux["grad_norm"])
    bad = err >= 0 if plan.tolerant else (err >= 0) | ~finite
    stop = (halt[1] > 0) | bad
    for c in skips:
        stop = stop | c

    if guard == "lean" and skips:  # a skipped step is no failure: the loop goes on
        guard = "where"
    keep = (
        (lambda old, new: new) if guard == "lean" else (lambda old, new: jnp.where(stop, old, new))
    )
    new_ov = list(ov)
    for i in plan.changed:
        new_ov[i] = keep(ov[i], after[i])
    count = halt[0] + 1
    fail = (halt[1] == 0) & bad
    reason = jnp.where(err >= 0, err + 2, 1)
    halt = jnp.stack(
        [count, jnp.where(fail, count, halt[1]), jnp.where(fail, reason, halt[2])]
    ).astype(jnp.int32)
    if guard == "cond":  # one select of whole buffers
        new_tv, new_trees = jax.lax.cond(stop, lambda: (tv, trees), lambda: (new_tv, new_trees))
    elif guard == "where":
        new_tv = [keep(a, b) for a, b in zip(tv, new_tv)]
        new_trees = jax.tree_util.tree_map(keep, trees, new_trees)
    return new_tv, new_ov, new_trees, halt, l, aux


def aux_of(plan: Any, tv: list[Any], grads: list[Any]) -> dict[str, Any]:
    """What a step reports beside its loss, kept on the device until a callback reads it:
    ``grad_norm``, the 2-norm over every trainable array's gradient (float32,
    ``global_norm``; ``ClipGlobalNorm`` computes the same expression, which XLA computes
    once), and ``grads`` when ``plan.keep_grads``."""
    aux = {"grad_norm": global_norm(grads).astype(jnp.float32)}
    if getattr(plan, "keep_grads", False):
        aux["grads"] = [g.astype(jnp.result_type(x)) for x, g in zip(tv, grads)]
    return aux
