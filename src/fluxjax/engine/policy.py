"""Which form a plan's one program takes, and which data may live on the device (internal).

A plan runs every step through one compiled program (``program``): a loop whose step count
is a run-time argument, or a lone step. The two agree to float rounding only (XLA compiles
a loop body apart from a lone step), so the form is never taken from a timing, which two
processes (a run and its resume) could measure differently: it is a rule of the plan's
structure and the backend, the same in every process.

* ``"loop"`` by default: spans between callbacks run as one call (the seed's 40,000 tiny
  epochs cost microseconds), and a callback after every step is a count of 1.
* ``"step"`` when the backend is the CPU and the step's matrix products exceed
  ``LOOP_FLOPS``: there a loop called for one step (a callback after every step) costs
  more than a lone step, since XLA copies the carried state into the loop (784-1024-1024-10,
  Adam: 9.7 against 8.9 ms a step; 784-512-512-10: 3.2 against 3.0), although a long call
  of the loop runs as fast as a hand-written ``lax.scan`` (a plan's fused run of lone steps:
  0.89-0.92x of it at 784-512-512-10). Convolutions no longer count: since ``Conv``
  differentiates in XLA's canonical layout (``layers.convops.corr``) a small CNN's loop runs
  as fast as its lone steps or faster (12.7 against 15.4 ms a step; JAX's own rule had
  made it 8x slower).

``train(..., fuse=True)`` or ``fuse=False`` forces the form (the two forms may then differ
in the last bits); ``fx.explain`` shows the form and why.

Data are put on the device (to be gathered there by the loop) only when a copy of them fits
a memory budget (``BUDGET_FRACTION`` of the device's memory where JAX reports it, else
``CPU_BUDGET`` bytes); larger data are streamed batch by batch.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from .. import checks
from .step import loss_and_grads

CPU_BUDGET = 2 * 2**30
BUDGET_FRACTION = 0.25
# matrix products per step (forward and backward) above which a lone step beats the loop on
# the CPU, where XLA runs a loop body's large products slower than a lone step's. Measured
# on 2 cores (784-w-w-10 MLP, batch 128, Adam): the loop wins at w = 64 (29 MFLOP), ties at
# w = 256 (155), and a call of one looped step runs at 0.7x of a lone step at w = 1024.
LOOP_FLOPS = 1e8


def form(plan: Any, fuse: bool | None, batch: Any) -> tuple[str, str]:
    """The form of ``plan``'s program, and why, for its first ``batch``."""
    if fuse is not None:
        return ("loop" if fuse else "step"), f"forced: fuse={fuse}"
    if jax.default_backend() != "cpu":
        return "loop", f"backend {jax.default_backend()}: steps between callbacks in one call"
    flops = _traced(plan, batch)
    if flops > LOOP_FLOPS:
        return "step", (
            f"the step's matrix products take {flops / 1e6:.0f} MFLOP (> {LOOP_FLOPS / 1e6:.0f}), "
            "which XLA's CPU backend runs slower inside a loop body than in a lone step: one "
            "compiled step per batch"
        )
    return "loop", f"steps between callbacks in one call ({flops / 1e6:.1f} MFLOP a step)"


def _traced(plan: Any, batch: Any) -> float:
    """The floating-point operations of the matrix products in the traced loss and gradient
    of ``plan`` (a scan's body counted per step).

    This first trace of the step also serves the plan's other questions, so the loss is
    traced once more only to compile: whether the loss reads the trainable arrays at all
    (``checks.warn_loss_independent``), and the shapes of the layer state a step replaces
    for this ``batch`` (``plan.traced``, which ``program.build`` reads)."""
    tv = [p.get() for p in plan.entries]
    ov = [p.get() for p in plan.others]
    check, plan.depends_checked = not plan.depends_checked, True
    jaxpr, shapes = jax.make_jaxpr(
        lambda tv, ov, b: loss_and_grads(plan, tv, ov, b)[:3], return_shape=True
    )(tv, ov, batch)
    plan.traced = (batch, shapes[2])  # the step's batch, the arrays of `others` after it
    if check and tv and not checks.depends_on_inputs(jaxpr.jaxpr, len(tv)):
        checks.warn_loss_independent(tv, plan.entries)

    def visit(jx: Any) -> float:
        flops = 0.0
        for eqn in jx.eqns:
            if eqn.primitive.name == "dot_general":
                (lc, _), _ = eqn.params["dimension_numbers"]
                k = math.prod(eqn.invars[0].aval.shape[d] for d in lc)
                flops += 2.0 * k * math.prod(eqn.outvars[0].aval.shape)
            times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
            for v in eqn.params.values():
                for sub in v if isinstance(v, tuple | list) else (v,):
                    sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                    if hasattr(sub, "eqns"):
                        flops += times * visit(sub)
        return flops

    return visit(jaxpr.jaxpr)


def budget() -> int:
    """Bytes of data ``train`` may copy to the device to run fused."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001  (backends without memory statistics)
        stats = {}
    limit = stats.get("bytes_limit")
    return int(limit * BUDGET_FRACTION) if limit else CPU_BUDGET


def nbytes(tree: Any) -> int:
    return sum(
        int(np.size(a)) * np.dtype(a.dtype).itemsize for a in jax.tree_util.tree_leaves(tree)
    )
