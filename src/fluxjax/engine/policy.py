"""Whether a span of steps runs fused in one compiled call or one compiled step per batch
(internal). Fusion is chosen by measurement, never assumed to pay: on XLA's CPU backend a
loop over a convolutional step can run at a ninth of the speed of the same step called
from Python, while a tiny model's fused step costs a twentieth of a call.

The first time a plan meets a long enough span of a data kind, ``measure`` times ``M``
single steps and fused calls of ``M`` and ``2M`` steps (after compiling both), which gives
a single step's cost ``c_s``, a fused step's marginal cost ``c_f`` and a fused call's
overhead ``o``. A span of ``k`` steps then runs fused when ``o + k·c_f < k·c_s``. Every
measured step is a real step of the run, and both paths compute the same steps on the same
batches, so the choice never changes what the run does.

Data are fused only when a device copy of them fits a memory budget (``BUDGET_FRACTION``
of the device's memory where JAX reports it, else ``CPU_BUDGET`` bytes); larger data are
streamed batch by batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

M = 4  # steps per timed run
# spans shorter than this run step by step until costs are known. Fused and single steps
# agree to float rounding, not bit for bit (XLA compiles a loop body apart from a lone
# step), so where a run switches paths shows in the last bits: short runs keep one path.
MEASURE_MIN = 64
CPU_BUDGET = 2 * 2**30
BUDGET_FRACTION = 0.25


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


def choose(
    plan: Any, kind: str, span: int, single: Callable[[int], None], fused: Callable[[int], None]
) -> tuple[bool, int]:
    """Whether a span of ``span`` steps of ``kind`` runs fused, and how many of its steps
    were used measuring the costs (the first time only). ``single(n)``/``fused(n)`` run
    ``n`` real steps of the run each way."""
    costs = plan.fuse.get(kind)
    used = 0
    if costs is None:
        if span < MEASURE_MIN:
            return False, 0
        single(1)  # compiles the single step (or finds it compiled)
        c_s = _timed(plan, single, M) / M
        fused(M)  # compiles the fused runner
        t1, t2 = _timed(plan, fused, M), _timed(plan, fused, 2 * M)
        c_f = max(0.0, (t2 - t1) / M)
        costs = plan.fuse[kind] = (c_s, c_f, max(0.0, t1 - M * c_f))
        used = 1 + M + M + M + 2 * M
    c_s, c_f, over = costs
    k = span - used
    return over + k * c_f < k * c_s, used


def _timed(plan: Any, run: Callable[[int], None], n: int) -> float:
    jax.block_until_ready(plan.halt)
    t = time.perf_counter()
    run(n)
    jax.block_until_ready(plan.halt)
    return time.perf_counter() - t
