"""Whether a span of steps runs fused in one compiled call or one compiled step per batch
(internal). Fusion is chosen by measurement, never assumed to pay: on XLA's CPU backend a
loop over a convolutional step can run at a third of the speed of the same step called
from Python. The first time a plan meets a long enough span of a data kind, ``measure``
times ``M`` single steps against ``M`` fused steps (after compiling both) and keeps the
faster; every measured step is a real step of the run, and both paths compute the same
steps on the same batches, so the choice never changes what the run does.

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

M = 8  # steps timed each way
MEASURE_MIN = 4 * M  # spans shorter than this run step by step until a choice exists
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
) -> tuple[bool | None, int]:
    """The fusion choice for ``kind`` and how many of ``span``'s steps were used measuring
    it. ``single(n)``/``fused(n)`` run ``n`` real steps of the run each way and return when
    they are dispatched; ``plan.halt`` is waited for to time them."""
    choice = plan.fuse.get(kind)
    if choice is not None or span < MEASURE_MIN:
        return choice, 0
    single(1)  # compiles the single step (or finds it compiled)
    t_single = _timed(plan, single)
    fused(M)  # compiles the fused runner
    t_fused = _timed(plan, fused)
    plan.fuse[kind] = t_fused < t_single
    return plan.fuse[kind], 1 + 3 * M


def _timed(plan: Any, run: Callable[[int], None]) -> float:
    jax.block_until_ready(plan.halt)
    t = time.perf_counter()
    run(M)
    jax.block_until_ready(plan.halt)
    return time.perf_counter() - t
