"""Which form a plan's one program takes, and which data may live on the device (internal).

A plan runs every step through one compiled program (``program``): a loop whose step count
is a run-time argument, or a lone step. The two agree to float rounding only (XLA compiles
a loop body apart from a lone step), so the form is never taken from a timing, which two
processes (a run and its resume) could measure differently: it is a rule of the plan's
structure and the backend, the same in every process.

* ``"loop"`` by default: spans between callbacks run as one call (the seed's 40,000 tiny
  epochs cost microseconds), and a callback after every step is a count of 1.
* ``"step"`` when the backend is the CPU and the step holds a convolution: XLA's CPU
  backend compiles a convolution's gradient inside a loop body without its fast kernels
  (a small CNN measured 8x slower per step in a loop than as a lone step, whatever the
  count), so such a plan takes one compiled step per batch.

``train(..., fuse=True)`` or ``fuse=False`` forces the form (the two forms may then differ
in the last bits); ``fx.explain`` shows the form and why.

Data are put on the device (to be gathered there by the loop) only when a copy of them fits
a memory budget (``BUDGET_FRACTION`` of the device's memory where JAX reports it, else
``CPU_BUDGET`` bytes); larger data are streamed batch by batch.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

CPU_BUDGET = 2 * 2**30
BUDGET_FRACTION = 0.25
SLOW_IN_LOOPS = {"conv_general_dilated"}  # primitives XLA's CPU backend runs slowly in loops


def form(plan: Any, fuse: bool | None, batch: Any) -> tuple[str, str]:
    """The form of ``plan``'s program, and why, for its first ``batch``."""
    if fuse is not None:
        return ("loop" if fuse else "step"), f"forced: fuse={fuse}"
    if jax.default_backend() != "cpu":
        return "loop", f"backend {jax.default_backend()}: steps between callbacks in one call"
    found = _primitives(plan, batch) & SLOW_IN_LOOPS
    if found:
        return "step", (
            f"the step holds {', '.join(sorted(found))}, which XLA's CPU backend runs "
            "much slower inside a loop: one compiled step per batch"
        )
    return "loop", "steps between callbacks in one call"


def _primitives(plan: Any, batch: Any) -> set[str]:
    """The names of the primitives in the traced loss and gradient of ``plan``."""
    from .step import loss_and_grads

    tv = [p.get() for p in plan.entries]
    ov = [p.get() for p in plan.others]
    jaxpr = jax.make_jaxpr(lambda tv, ov, b: loss_and_grads(plan, tv, ov, b)[:2])(tv, ov, batch)
    names: set[str] = set()

    def visit(jx: Any) -> None:
        for eqn in jx.eqns:
            names.add(eqn.primitive.name)
            for v in eqn.params.values():
                for sub in v if isinstance(v, tuple | list) else (v,):
                    sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                    if hasattr(sub, "eqns"):
                        visit(sub)

    visit(jaxpr.jaxpr)
    return names


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
