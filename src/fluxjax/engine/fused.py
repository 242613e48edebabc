"""Many training steps in one compiled call (internal).

* ``run_list``: ``n`` steps over ``nb`` equally shaped batches stacked on the device (step
  ``i`` takes batch ``(offset + i) % nb``), in a ``while_loop`` whose step count is a run-time
  value, so any number of steps reuses one compilation.
* ``run_rows``: ``n`` steps of a DataLoader, each a batch gathered on the device from one row
  of an index array (all rows of one batch size).
* ``run_epochs``: whole DataLoader epochs: a scan over the full batches, then the short tail
  batch, inside a ``while_loop`` over epochs.

A failed step stops the loop (the later steps are not run). Losses come back in one
``(cap,)`` or ``(cap, per_epoch)`` float32 buffer, NaN past the steps taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .step import core

BLOCK = 32  # fused loops record losses in blocks of this many units


def _blocked(
    cap: int, n: Any, unit: Callable[[Any, Any], Any], carry: Any, out_shape: tuple[int, ...]
) -> tuple[Any, Any]:
    """Run ``carry, out = unit(i, carry)`` for ``i < n`` (stopping early once a step has
    failed) and gather the outputs into a ``(cap, *out_shape)`` buffer (NaN past ``n``).

    Outputs go into a block of ``BLOCK`` units, and each block into the buffer: writing
    every step straight into a large loop-carried buffer would copy it each step.
    """
    k = min(BLOCK, cap)
    blocks = jnp.full((cap // k, k, *out_shape), jnp.nan, jnp.float32)

    def outer_cond(c: Any) -> Any:
        b, (state, _) = c
        return (b * k < n) & (state[3][1] == 0)

    def outer(c: Any) -> Any:
        b, (state, blocks) = c

        def inner(j: Any, c2: Any) -> Any:
            state, blk = c2
            state, out = unit(b * k + j, state)
            return state, blk.at[j].set(out)

        blk = jnp.full((k, *out_shape), jnp.nan, jnp.float32)
        state, blk = jax.lax.fori_loop(0, jnp.minimum(k, n - b * k), inner, (state, blk))
        return b + 1, (state, blocks.at[b].set(blk))

    start = (jnp.asarray(0, jnp.int32), (carry, blocks))
    _, (carry, blocks) = jax.lax.while_loop(outer_cond, outer, start)
    return carry, blocks.reshape(cap, *out_shape)


def _wrap(plan: Any, tv: Any, ov: Any, bufs: Any, halt: Any, body: Callable[[Any], Any]):
    """Unpack the state, run ``body(carry) -> (carry, losses)``, pack the results."""
    c = (tv, list(ov), plan.packer.unpack(bufs), halt)
    (tv, ov, trees, halt), losses = body(c)
    return tv, [ov[i] for i in plan.changed], plan.packer.pack(trees), halt, losses


def _one(plan: Any, c: Any, batch: Any) -> tuple[Any, Any]:
    tv, ov, trees, halt, l = core(plan, *c, batch, fused=True)
    return (tv, ov, trees, halt), l.astype(jnp.float32)


def run_list(plan: Any, cap: int, nb: int, tv, ov, bufs, halt, data, offset, n):
    """``n`` steps over ``nb`` stacked batches, starting at batch ``offset``."""

    def unit(i: Any, c: Any) -> tuple[Any, Any]:
        if nb == 1:
            return _one(plan, c, data)
        k = (offset + i) % nb
        return _one(plan, c, jax.tree_util.tree_map(lambda a: a[k], data))

    return _wrap(plan, tv, ov, bufs, halt, lambda c: _blocked(cap, n, unit, c, ()))


def _take(in_order: bool, data: Any, ix: Any) -> Any:
    def take(a: Any) -> Any:
        if in_order:  # unshuffled: a batch is a contiguous block, sliced without a gather
            return jax.lax.dynamic_slice_in_dim(a, ix[0], ix.shape[0], axis=0)
        return jnp.take(a, ix, axis=0)

    return jax.tree_util.tree_map(take, data)


def run_rows(plan: Any, cap: int, in_order: bool, tv, ov, bufs, halt, data, rows, n):
    """``n`` steps: step ``i`` takes the batch ``data[rows[i]]``."""

    def unit(i: Any, c: Any) -> tuple[Any, Any]:
        return _one(plan, c, _take(in_order, data, rows[i]))

    return _wrap(plan, tv, ov, bufs, halt, lambda c: _blocked(cap, n, unit, c, ()))


def run_epochs(plan: Any, cap: int, in_order: bool, tv, ov, bufs, halt, data, full, tail, n):
    """``n`` epochs: epoch ``e`` takes batches ``data[full[e, j]]``, then ``data[tail[e]]``."""
    n_full, has_tail = full.shape[1], tail.shape[1] > 0

    def one(c: Any, ix: Any) -> tuple[Any, Any]:
        return _one(plan, c, _take(in_order, data, ix))

    def unit(e: Any, c: Any) -> tuple[Any, Any]:
        c, ls = jax.lax.scan(one, c, full[e])
        if has_tail:
            c, lt = one(c, tail[e])
            ls = jnp.concatenate([ls, lt[None]])
        return c, ls

    body = lambda c: _blocked(cap, n, unit, c, (n_full + has_tail,))  # noqa: E731
    return _wrap(plan, tv, ov, bufs, halt, body)


RUNNERS = {"list": run_list, "rows": run_rows, "epochs": run_epochs}
