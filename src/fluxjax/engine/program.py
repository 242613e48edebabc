"""The one compiled program a plan runs its steps through (internal).

A plan compiles its step once, in one of two forms, and every span of steps of a run goes
through that same program, whatever the data kind, the epochs, the callbacks or the span
length, so results never depend on how a run was split into calls, spans or a save and
load (XLA compiles a loop body apart from a lone step, so the two forms agree to float
rounding only; a plan never mixes them):

* ``"loop"``: ``n`` steps in a ``while_loop`` whose step count is a run-time argument (a
  count of 1 when a callback needs every step);
* ``"step"``: one step per call (chosen where XLA compiles the step much slower inside a
  loop: convolutions on the CPU, see ``policy``).

The program takes the data in one of three layouts, fixed by the data a run trains on:

* ``"one"``: one batch, given as it is, used by every step of the call (a list of one
  batch, over any number of epochs, and every streamed batch: a generator, any iterable);
* ``"stack"``: ``nb`` equally shaped batches stacked on the device; step ``i`` takes batch
  ``(start + i) % nb``;
* ``"rows"``: a DataLoader's arrays on the device and a table of the observation order of
  the epochs of the call (one row per epoch); step ``i`` is batch ``start + i`` counted
  from the table's first epoch: ``size`` observations from position ``batch * bs`` of its
  epoch's row (a full batch, or the short last one, which has a program of its own).

Losses come back in one ``(CAP,)`` float32 buffer (NaN past the steps taken) for the loop,
a scalar for a lone step. A failed step stops the loop (later steps are not run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .step import core

CAP = 1024  # most steps one call of the loop runs
BLOCK = 32  # the loop records losses in blocks of this many steps


def _blocked(n: Any, unit: Callable[[Any, Any], Any], carry: Any) -> tuple[Any, Any]:
    """Run ``carry, loss = unit(i, carry)`` for ``i < n`` (stopping early once a step has
    failed) and gather the losses into a ``(CAP,)`` buffer (NaN past ``n``).

    Losses go into a block of ``BLOCK`` steps, and each block into the buffer: writing
    every step straight into a large loop-carried buffer would copy it each step."""
    blocks = jnp.full((CAP // BLOCK, BLOCK), jnp.nan, jnp.float32)

    def outer_cond(c: Any) -> Any:
        b, (state, _) = c
        return (b * BLOCK < n) & (state[3][1] == 0)

    def outer(c: Any) -> Any:
        b, (state, blocks) = c

        def inner(j: Any, c2: Any) -> Any:
            state, blk = c2
            state, out = unit(b * BLOCK + j, state)
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
    """The traced program ``(tv, ov, bufs, halt, data, sel, n) -> (tv, changed, bufs, halt,
    losses)`` of ``plan`` in ``form`` (``"loop"`` or ``"step"``) for a data ``layout``."""
    pick = picker(layout, static)

    def program(tv: Any, ov: Any, bufs: Any, halt: Any, data: Any, sel: Any, n: Any) -> Any:
        def unit(i: Any, c: Any) -> tuple[Any, Any]:
            out = core(plan, *c[:4], pick(data, sel, i), in_loop=form == "loop")
            return (*out[:4], out[5]), out[4].astype(jnp.float32)

        carry = (tv, list(ov), plan.packer.unpack(bufs), halt)
        carry = (*carry, _aux_start(plan, tv))
        if form == "loop" and _carry_holds(unit, carry):
            carry, losses = _blocked(n, unit, carry)
        else:  # a lone step; also a step that reshapes carried layer state (after fx.reset)
            carry, losses = unit(0, carry)
        tv, ov, trees, halt, aux = carry
        return tv, [ov[i] for i in plan.changed], plan.packer.pack(trees), halt, losses, aux

    return program


def _aux_start(plan: Any, tv: list[Any]) -> dict[str, Any]:
    """Zeros shaped as a step's ``aux`` (``step.aux_of``): the loop carries the last step's."""
    aux = {"grad_norm": jnp.zeros((), jnp.float32)}
    if getattr(plan, "keep_grads", False):
        aux["grads"] = [jnp.zeros(jnp.shape(x), jnp.result_type(x)) for x in tv]
    return aux


def _carry_holds(unit: Callable[[Any, Any], Any], carry: Any) -> bool:
    """Whether a step leaves every carried array with its shape and dtype (a recurrent
    layer's state is unbatched after ``fx.reset`` and batched after a step: such a call
    takes one lone step, and the next ones loop)."""
    out, _ = jax.eval_shape(lambda c: unit(jnp.int32(0), c), carry)
    same = jax.tree_util.tree_map(
        lambda a, b: jnp.shape(a) == b.shape and jnp.result_type(a) == b.dtype, carry, out
    )
    return all(jax.tree_util.tree_leaves(same))


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
