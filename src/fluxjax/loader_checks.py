"""The checks of a ``DataLoader``'s arguments (``batchsize``, ``rng``, ``shard``) and of a
saved loader state against the loader it is loaded into, with the messages of
``docs/mistakes.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from .counts import is_int

if TYPE_CHECKING:
    from .data import DataLoader

__all__ = ["check_batchsize", "check_rng", "check_shard", "check_loader_state"]


def check_batchsize(batchsize: Any) -> int:
    if isinstance(batchsize, np.ndarray | jax.Array | list | tuple):
        raise TypeError(
            "DataLoader got an array where the batch size goes: pass the arrays as one tuple, "
            "DataLoader((x, y), batchsize=32), not DataLoader(x, y)."
        )
    if not is_int(batchsize):
        raise ValueError(
            f"batchsize must be a positive int, got {batchsize!r} "
            f"({type(batchsize).__name__}); pass e.g. batchsize=32"
        )
    if batchsize <= 0:
        raise ValueError(f"Need positive batchsize, got batchsize={batchsize}; pass e.g. 1")
    return int(batchsize)


def check_rng(rng: Any) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if is_int(rng):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )


def check_shard(shard: Any, loader: DataLoader) -> tuple[int, int] | None:
    """``shard=(index, count)`` checked: every batch must split into ``count`` equal parts."""
    if shard is None:
        return None
    ok = isinstance(shard, tuple) and len(shard) == 2
    if not ok or not all(isinstance(v, int | np.integer) for v in shard):
        raise TypeError(
            f"shard must be (index, count), e.g. shard=(jax.process_index(), "
            f"jax.process_count()), got {shard!r}"
        )
    i, n = int(shard[0]), int(shard[1])
    if not 0 <= i < n:
        raise ValueError(f"shard=({i}, {n}): the index must be in 0..{n - 1}")
    bs, tail = loader.batchsize, loader.nobs % loader.batchsize if loader.partial else 0
    if bs % n or tail % n:
        size = bs if bs % n else tail
        raise ValueError(
            f"shard=({i}, {n}): a batch of {size} observations cannot be split into {n} equal "
            f"parts (batchsize={bs}, nobs={loader.nobs}); use a batchsize divisible by {n}"
            f"{', and partial=False to drop the short last batch' if tail % n else ''}"
        )
    if loader.shuffle and loader.rng is None:
        raise ValueError(
            f"shard=({i}, {n}) with shuffle=True needs rng= the same seed in every process "
            "(e.g. rng=0), so that all processes draw the same permutation"
        )
    return i, n


def check_loader_state(loader: DataLoader, state: Any) -> None:
    """Raise naming every field where a saved loader state does not fit ``loader``."""
    keys = ("nobs", "batchsize", "shuffle", "partial", "epoch", "position", "order", "rng_state")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise TypeError(
            f"loadstate: expected the dict from DataLoader.state(), got {type(state).__name__}"
        )
    now = {"nobs": loader.nobs, "batchsize": loader.batchsize}
    now.update(shuffle=loader.shuffle, partial=loader.partial)
    diff = [f"{k}={state[k]!r} saved vs {v!r} here" for k, v in now.items() if state[k] != v]
    if diff:
        raise ValueError(
            "loadstate: the saved DataLoader does not match this one: "
            + "; ".join(diff)
            + ". Build the loader with the same data and arguments as the saved run."
        )
    order = state["order"]
    if order is not None and (len(order) != loader.nobs or int(state["position"]) >= len(loader)):
        raise ValueError("loadstate: the saved epoch order does not fit this loader.")
