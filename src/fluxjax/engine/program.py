"""The one compiled program a plan runs its steps through (internal).

A plan compiles its step once, in one of two forms, and every span of steps of a run goes
through that same program, whatever the data kind, the epochs, the callbacks or the span
length, so results never depend on how a run was split into calls, spans or a save and
load (XLA compiles a loop body apart from a lone step, so the two forms agree to float
rounding only; a plan never mixes them):

* ``"loop"``: ``n`` steps in a ``while_loop`` whose step count is a run-time argument (a
  count of 1 when a callback needs every step);
* ``"step"``: one step per call (chosen where XLA runs the step slower inside a loop:
  large matrix products on the CPU, see ``policy``).

The program takes the data in one of three layouts, fixed by the data a run trains on:

* ``"one"``: one batch, given as it is, used by every step of the call (a list of one
  batch, over any number of epochs, and every streamed batch: a generator, any iterable);
* ``"stack"``: ``nb`` equally shaped batches stacked on the device; step ``i`` takes batch
  ``(start + i) % nb``;
* ``"rows"``: a DataLoader's arrays on the device and a table of the observation order of
  the epochs of the call (one row per epoch); step ``i`` is batch ``start + i`` counted
  from the table's first epoch: ``size`` observations from position ``batch * bs`` of its
  epoch's row (a full batch, or the short last one, which has a program of its own).

A call returns its losses, its last step's gradient norm and its failure flag in one
int32 ``status`` vector (``STATUS`` long, the floats as their bits): each array a compiled
call returns costs about a microsecond on the CPU, more than a tiny model's step. The next
call takes it back as its failure flag. A failed step stops the loop (later steps are not
run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import hyper, policy
from .packing import Packer
from .step import core

CAP = 1024  # most steps one call of the loop runs
BLOCK = 32  # the loop records losses in blocks of this many steps
# XLA's CPU runtime runs a program (a loop body too) step by step on the calling thread only
# when every buffer it touches is at most this many bytes (ThunkExecutor's
# execute_sequential_buffer_threshold); otherwise through its thread pool, which costs about
# half a microsecond a step: the whole cost of a tiny model's step
SMALL_BUFFER = 512
# a call's status: the losses' bits (NaN past the steps taken), the last step's gradient
# norm's bits, and the failure flag ``halt`` (``step.core``): [steps, failed step, reason]
GNORM, HALT = CAP, CAP + 1
STATUS = CAP + 4
SELECT_BYTES = 1 << 18  # a call's state up to this size is selected elementwise (``_unless``)


def _bits(a: Any) -> Any:
    return jax.lax.bitcast_convert_type(a.astype(jnp.float32), jnp.int32)


def status_of(losses: Any, grad_norm: Any, halt: Any) -> Any:
    """Inside the program: the status vector of a call (``losses``: a scalar for one step)."""
    if jnp.ndim(losses) == 0:
        losses = jnp.full((CAP,), jnp.nan, jnp.float32).at[0].set(losses)
    return jnp.concatenate([_bits(losses), _bits(grad_norm)[None], halt])


def fresh_status() -> Any:
    """The status before any step (no failure), on the device; compiles nothing."""
    return jax.device_put(np.zeros((STATUS,), np.int32))


def read_losses(status: Any) -> np.ndarray:
    """A status vector's losses, on the host (float32; NaN past the steps taken)."""
    return np.asarray(status)[:CAP].view(np.float32)


def read_grad_norm(status: Any) -> float:
    """A status vector's gradient norm (of its last step), on the host."""
    return float(np.asarray(status)[GNORM : GNORM + 1].view(np.float32)[0])


def read_halt(status: Any) -> tuple[int, int, int]:
    """A status vector's failure flag on the host: (steps, failed step or 0, reason)."""
    a, b, c = (int(v) for v in np.asarray(status)[HALT:])
    return a, b, c


def _blocked(
    n: Any, unit: Callable[..., Any], carry: Any, fetch: Callable[[Any], Any] | None = None
) -> tuple[Any, Any]:
    """Run ``carry, loss = unit(i, j, got, carry)`` for ``i < n`` (stopping early once a
    step has failed) and gather the losses into a ``(CAP,)`` buffer (NaN past ``n``).

    Losses go into a block of ``BLOCK`` steps, and each block into the buffer: writing
    every step straight into a large loop-carried buffer would copy it each step. Step ``i``
    is step ``j`` of its block, and ``got = fetch(b)`` is what block ``b`` fetched for its
    steps before they run (None without ``fetch``)."""
    blocks = jnp.full((CAP // BLOCK, BLOCK), jnp.nan, jnp.float32)

    def outer_cond(c: Any) -> Any:
        b, (state, _) = c
        return (b * BLOCK < n) & (state[-1][1] == 0)  # the last carried array: halt

    def outer(c: Any) -> Any:
        b, (state, blocks) = c

        got = None if fetch is None else fetch(b)

        def inner(j: Any, c2: Any) -> Any:
            state, blk = c2
            state, out = unit(b * BLOCK + j, j, got, state)
            return state, blk.at[j].set(out)

        blk = jnp.full((BLOCK,), jnp.nan, jnp.float32)
        state, blk = jax.lax.fori_loop(0, jnp.minimum(BLOCK, n - b * BLOCK), inner, (state, blk))
        return b + 1, (state, blocks.at[b].set(blk))

    start = (jnp.asarray(0, jnp.int32), (carry, blocks))
    _, (carry, blocks) = jax.lax.while_loop(outer_cond, outer, start)
    return carry, blocks.reshape(CAP)


def picker(layout: str, static: tuple[Any, ...]) -> Callable[[Any, Any, Any], Any]:
    """``pick(data, sel, i)``: the batch of step ``i`` of a call, for ``layout``."""
    if layout == "one":
        return lambda data, sel, i: data
    if layout == "stack":

        def pick_stack(data: Any, sel: Any, i: Any) -> Any:
            k = (sel + i) % jax.tree_util.tree_leaves(data)[0].shape[0]
            return jax.tree_util.tree_map(lambda a: a[k], data)

        return pick_stack
    per, bs, size, in_order = static

    def pick_rows(data: Any, sel: Any, i: Any) -> Any:
        table, start = sel
        e, p = jnp.divmod(start + i, per)
        ix = jax.lax.dynamic_slice_in_dim(table[e], p * bs, size)
        if in_order:  # unshuffled: the batch is a contiguous block, sliced without a gather
            return jax.tree_util.tree_map(
                lambda a: jax.lax.dynamic_slice_in_dim(a, ix[0], size, axis=0), data
            )
        return jax.tree_util.tree_map(lambda a: jnp.take(a, ix, axis=0), data)

    return pick_rows


def build(plan: Any, form: str, layout: str, static: tuple[Any, ...]) -> Callable[..., Any]:
    """The traced program ``(tv, ov, bufs, status, data, sel, n, etas) -> (tv, changed,
    bufs, status, grads)`` of ``plan`` in ``form`` (``"loop"`` or ``"step"``) for a data
    ``layout``; ``etas`` are the rules' learning rates (``hyper``); ``grads`` the last
    step's gradients when a callback asked for them (``plan.keep_grads``), else ``[]``.

    The loop carries few arrays: the parameters and the layer state a step replaces are
    packed into one buffer per dtype (large arrays keep their own), the optimiser state
    stays packed, and arrays no step changes are not carried at all. XLA copies each
    carried array in and out of a loop, so a carry of 25 small arrays cost more than the
    step of a small model."""
    pick = picker(layout, static)
    packed = plan.packs()

    def program(
        tv: Any, ov: Any, bufs: Any, status: Any, data: Any, sel: Any, n: Any, etas: Any
    ) -> Any:
        if packed:  # one buffer per dtype in, one out (``Plan.hold``)
            tv = plan.tv_packer.unpack(tv)
        tv, ch, bufs, halt, losses, aux = steps(tv, ov, bufs, status[HALT:], data, sel, n, etas)
        status = status_of(losses, aux["grad_norm"], halt)
        if packed:
            tv = plan.tv_packer.pack(tv)
        return tv, ch, bufs, status, aux.get("grads", [])

    def steps(
        tv: Any, ov: Any, bufs: Any, halt: Any, data: Any, sel: Any, n: Any, etas: Any
    ) -> Any:
        ov = list(ov)
        rules = hyper.substitute(plan.rules, etas)

        def step(tv: Any, ch: Any, bufs: Any, halt: Any, batch: Any, guard: str) -> Any:
            full = list(ov)
            for k, v in zip(plan.changed, ch):
                full[k] = v
            trees = plan.packer.unpack(bufs)
            out = core(plan, rules, tv, full, trees, halt, batch, guard)
            tv, full, trees, halt, l, aux = out
            ch = [full[k] for k in plan.changed]
            return tv, ch, plan.packer.pack(trees), halt, l.astype(jnp.float32), aux

        after = _after_shapes(plan, batch_spec(layout, static, data))
        if after is None:  # trace one step first: it finds which layer state the loss replaces
            after = jax.eval_shape(lambda: step(tv, [], bufs, halt, pick(data, sel, 0), "cond"))[1]
        else:  # as the form rule's trace found them, for a batch of this shape
            after = [after[k] for k in plan.changed]
        ch0 = [ov[k] for k in plan.changed]
        holds = all(
            jnp.shape(a) == b.shape and jnp.result_type(a) == b.dtype for a, b in zip(ch0, after)
        )
        if form != "loop" or not holds:  # a lone step; also one that reshapes carried
            # layer state (a recurrent layer's, unbatched after fx.reset): the next loop
            guard = "where" if form == "loop" else "cond"
            return step(tv, ch0, bufs, halt, pick(data, sel, 0), guard)
        packer = Packer([tv, ch0])
        fetch = _fetcher(data, sel) if layout == "stack" else None
        # donated inputs are gone after the call: then each step selects (``core``)
        guard = "where" if plan.donate else "lean"

        def unit(i: Any, j: Any, got: Any, c: Any) -> tuple[Any, Any]:
            packed, aux, bufs, halt = c
            tv, ch = packer.unpack(packed)
            batch = (
                pick(data, sel, i) if got is None else jax.tree_util.tree_map(lambda a: a[j], got)
            )
            tv, ch, bufs, halt, l, aux = step(tv, ch, bufs, halt, batch, guard)
            return (packer.pack([tv, ch]), aux, bufs, halt), l

        start = (packer.pack([tv, ch0]), _aux_start(plan, tv), bufs, halt)
        (packed, aux, new_bufs, halt), losses = _blocked(n, unit, start, fetch)
        new_tv, ch = packer.unpack(packed)
        if guard == "lean":  # a failed step's results were kept: the call returns its
            # inputs, and the host runs the steps before the failed one again (Plan.check)
            failed = halt[1] > 0
            new_tv, ch, new_bufs = _unless(failed, (tv, ch0, bufs), (new_tv, ch, new_bufs))
        return new_tv, ch, new_bufs, halt, losses, aux

    return program


def _unless(failed: Any, inputs: Any, outputs: Any) -> Any:
    """``inputs`` if ``failed``, else ``outputs``: elementwise for a small state, as one
    ``lax.cond`` for a large one (measured on the CPU: a ``cond`` costs a call of the seed
    30 µs; a ``where`` over 12 MB 3 ms against the ``cond``'s 0.6). Both give the same
    values, and the choice is one of sizes only, the same in every process."""
    if policy.nbytes(outputs) <= SELECT_BYTES:
        return jax.tree_util.tree_map(lambda a, b: jnp.where(failed, a, b), inputs, outputs)
    return jax.lax.cond(failed, lambda: inputs, lambda: outputs)


def _fetcher(data: Any, sel: Any) -> Callable[[Any], Any] | None:
    """For stacked batches so small that ``BLOCK`` of them fit in ``SMALL_BUFFER`` bytes an
    array: ``fetch(b)``, the batches of the loop's block ``b`` gathered before its steps, so
    that the steps touch only small buffers and XLA runs them on the calling thread (the
    seed's DataLoader: 1.4 µs a step reading each batch from the call's whole block, 0.5
    reading it from the gathered ``BLOCK``). None for larger batches: each step reads its
    own from the stack."""
    leaves = jax.tree_util.tree_leaves(data)
    per_batch = max(a.size // a.shape[0] * a.dtype.itemsize for a in leaves)
    if per_batch * BLOCK > SMALL_BUFFER:
        return None
    nb = leaves[0].shape[0]

    def fetch(b: Any) -> Any:
        rows = (sel + b * BLOCK + jnp.arange(BLOCK, dtype=jnp.int32)) % nb
        return jax.tree_util.tree_map(lambda a: jnp.take(a, rows, axis=0), data)

    return fetch


def _after_shapes(plan: Any, batch: Any) -> list[Any] | None:
    """The shapes of ``plan.others`` after a step on a batch shaped as ``batch``, when the
    form rule's trace (``policy``) saw a batch of that shape; else None."""
    traced = plan.traced
    if traced is None:
        return None
    spec = lambda a: (tuple(jnp.shape(a)), jnp.result_type(a))  # noqa: E731
    same = jax.tree_util.tree_structure(batch) == jax.tree_util.tree_structure(traced[0]) and [
        spec(a) for a in jax.tree_util.tree_leaves(batch)
    ] == [spec(a) for a in jax.tree_util.tree_leaves(traced[0])]
    return traced[1] if same else None


def _aux_start(plan: Any, tv: list[Any]) -> dict[str, Any]:
    """Zeros shaped as a step's ``aux`` (``step.aux_of``): the loop carries the last step's."""
    aux = {"grad_norm": jnp.zeros((), jnp.float32)}
    if getattr(plan, "keep_grads", False):
        aux["grads"] = [jnp.zeros(jnp.shape(x), jnp.result_type(x)) for x in tv]
    return aux


def batch_spec(layout: str, static: tuple[Any, ...], data: Any) -> Any:
    """The shapes and dtypes of one step's batch (``jax.ShapeDtypeStruct``s)."""

    def spec(a: Any) -> Any:
        shape = tuple(jnp.shape(a))
        if layout == "stack":
            shape = shape[1:]
        elif layout == "rows":
            shape = (static[2], *shape[1:])
        return jax.ShapeDtypeStruct(shape, jnp.result_type(a))

    return jax.tree_util.tree_map(spec, data)
