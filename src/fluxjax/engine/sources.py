"""In-memory data that ``train`` can run fused (internal): a list of equally shaped batches
(``Stacked``) or a DataLoader over arrays (``Loader``). Each knows which batch a position in
the run is (``batch``, ``where``) and how to run ``k`` of them in fused calls (``fused``),
so that step-by-step and fused spans can alternate within one run on the same batches.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import distributed
from ..data import DataLoader
from ..module import is_array
from . import policy

CHUNK = 4096  # most steps one fused call over a list runs
SMALL = 64  # fused calls of at most this many steps use a small loss buffer


def signature(batch: Any) -> tuple[Any, ...]:
    """(shape, dtype) of every array of a batch (and its structure, unless a flat tuple)."""
    if type(batch) is tuple and all(hasattr(a, "shape") for a in batch):
        return tuple((a.shape, a.dtype) for a in batch)
    leaves, treedef = jax.tree_util.tree_flatten(batch)
    return (treedef, *((np.shape(a), jnp.result_type(a)) for a in leaves))


def classify(data: Any, n_epochs: int, placement: Any = None) -> Any:
    """A ``Stacked`` or ``Loader`` when ``data`` can run fused, else None (stream it)."""
    if isinstance(data, DataLoader):
        if data.position:  # restored mid-epoch: the rest of that epoch comes first, singly
            return None
        if data.shard is not None or (placement is not None and placement.multiprocess):
            return None  # each process's loader feeds its own part, step by step
        leaves = jax.tree_util.tree_leaves(data.data)
        if data.collate is None and leaves and all(is_array(a) for a in leaves):
            in_memory = not any(isinstance(a, np.memmap) for a in leaves)
            if in_memory and policy.nbytes(data.data) <= policy.budget():
                return Loader(data)
        return None
    if isinstance(data, list | tuple) and data and len(data) * n_epochs > 1:
        leaves = jax.tree_util.tree_leaves(data[0])
        if not leaves or not all(is_array(a) for a in leaves):
            return None
        sig = signature(data[0])
        if all(signature(b) == sig for b in data[1:]):
            if policy.nbytes(data[0]) * len(data) <= policy.budget():
                return Stacked(data)
    return None


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _lazy(losses: Any, index: Any) -> Any:
    """A zero-argument function reading one loss of a device block (only when called)."""
    return lambda: losses[index]


def _call(run: Any, fn: Any, n: int, per: int, last: Any, *data: Any) -> Any:
    """One fused call of ``n`` steps: run it, write back, record, advance the run."""
    plan = run.plan
    tv, ov = plan.inputs()
    ls = plan.finish(fn(tv, ov, plan.bufs, plan.halt, *data), n)
    run.hist._add(ls, n, (run.pos, per))
    run.pos += n
    run.done += n
    if run.bar is not None:
        run._bar_update(n, _lazy(ls, last))
    return ls


class Stacked:
    """A list of equally shaped batches, stacked on the device when first fused (kept
    while they are the same JAX arrays; NumPy arrays are re-stacked each call, since the
    user may change them in place)."""

    kind = "list"

    def __init__(self, batches: Any) -> None:
        self.batches = batches
        self.last_loss: Any = None

    def for_plan(self, plan: Any, n_epochs: int) -> Stacked:
        self.plan, self.per = plan, len(self.batches)
        self.total = self.per * n_epochs
        self.stacked: Any = None
        return self

    def where(self, pos: int) -> tuple[int, int]:
        return pos // self.per + 1, pos % self.per

    def settle(self, pos: int) -> None:
        """Before callbacks run: nothing to tell a list."""

    def unsettle(self, pos: int) -> None:
        """After callbacks ran: nothing to tell a list."""

    def batch(self, pos: int) -> Any:
        return self.batches[pos % self.per]

    def _data(self) -> Any:
        if self.stacked is None:
            b, pl = self.batches, self.plan.placement
            self.stacked = b[0] if self.per == 1 else _stack(self.plan, b)
            if pl is not None:  # split over the devices
                self.stacked = pl.batch(self.stacked) if self.per == 1 else pl.stacked(self.stacked)
        return self.stacked

    def fused(self, run: Any, k: int) -> None:
        data = self._data()
        while k > 0:
            n = min(k, CHUNK)
            fn = run.plan.fused("list", SMALL if n <= SMALL else CHUNK, self.per)
            offset = np.int32(run.pos % self.per)
            ls = _call(run, fn, n, self.per, n - 1, data, offset, np.int32(n))
            self.last_loss = _lazy(ls, n - 1)
            k -= n


def _stack(plan: Any, batches: list[Any]) -> Any:
    leaves = [a for b in batches for a in jax.tree_util.tree_leaves(b)]
    cached = plan.stack_cache
    if cached is not None and len(cached[0]) == len(leaves):
        if all(a is b for a, b in zip(cached[0], leaves)):
            return cached[1]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batches)
    if all(isinstance(a, jax.Array) for a in leaves):
        plan.stack_cache = (leaves, stacked)
    return stacked


def _on_device(loader: DataLoader) -> Any:
    """A DataLoader's arrays on the device, kept on the loader: it holds private read-only
    copies of NumPy data (memory-mapped data is never fused), so they cannot change."""
    cached = loader.__dict__.get("_fx_device")
    if cached is None or cached[0] is not loader.data:
        cached = (loader.data, jax.tree_util.tree_map(jnp.asarray, loader.data))
        loader.__dict__["_fx_device"] = cached
    return cached[1]


class Loader:
    """An in-memory DataLoader. Each epoch's indices are drawn once, when the run reaches
    it (exactly as iterating would draw them), and serve both single and fused steps."""

    kind = "loader"

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.last_loss: Any = None

    def for_plan(self, plan: Any, n_epochs: int) -> Loader:
        ld = self.loader
        self.plan, self.bs, self.nfull = plan, ld.batchsize, ld.nobs // ld.batchsize
        self.ntail = ld.nobs % ld.batchsize if ld.partial else 0
        self.per = self.nfull + (self.ntail > 0)
        self.total = self.per * n_epochs
        # epochs per fused call: fixed per loader shape, so any `epochs` reuses one compilation
        self.e_cap = _pow2(max(1, CHUNK // max(self.per, 1)))
        self.epoch, self.cur = -1, None
        self.in_order = not self.loader.shuffle
        return self

    def where(self, pos: int) -> tuple[int, int]:
        return pos // self.per + 1, pos % self.per

    def settle(self, pos: int) -> None:
        """Before callbacks run: tell the loader how far into its current epoch the run is,
        so a checkpoint saves the right place (indices are drawn a whole epoch at a time)."""
        p = pos % self.per
        if p:
            self.loader.seek(p)

    def unsettle(self, pos: int) -> None:
        """After callbacks ran: the loader's current epoch is drawn whole again (the run
        holds its indices), so the next draw is the next epoch."""
        if pos % self.per:
            self.loader.seek(len(self.loader))

    def _indices(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        if self.epoch != e:
            self.cur, self.epoch = self.loader.epoch_indices(), e
        return self.cur

    def batch(self, pos: int) -> Any:
        e, p = divmod(pos, self.per)
        full, tail = self._indices(e)
        return self.loader.getbatch(full[p] if p < self.nfull else tail)

    def fused(self, run: Any, k: int) -> None:
        device = _on_device(self.loader)
        if self.plan.placement is not None:  # the data on every device
            device = distributed.loader_data(self.plan.placement, self.loader, device)
        while k > 0:
            e, p = divmod(run.pos, self.per)
            if p == 0 and k >= self.per:
                k -= self._epochs(run, device, min(k // self.per, self.e_cap))
            elif p < self.nfull and min(k, self.nfull - p) > 1:
                k -= self._rows(run, device, e, p, min(k, self.nfull - p))
            else:  # one batch (the short tail, or a single row): one compiled step
                run.singles(self, 1)
                k -= 1

    def _epochs(self, run: Any, device: Any, m: int) -> int:
        draws = [self.loader.epoch_indices() for _ in range(m)]
        self.epoch, self.cur = run.pos // self.per + m - 1, draws[-1]
        full = np.zeros((self.e_cap, self.nfull, self.bs), np.int32)
        tail = np.zeros((self.e_cap, self.ntail), np.int32)
        full[:m] = np.stack([f for f, _ in draws])
        tail[:m] = np.stack([t for _, t in draws])
        fn = run.plan.fused("epochs", self.e_cap, self.in_order)
        n = m * self.per
        args = (full, tail, np.int32(m))
        ls = _call(run, fn, n, self.per, (m - 1, -1), device, *args)
        self.last_loss = _lazy(ls, (m - 1, -1))
        return n

    def _rows(self, run: Any, device: Any, e: int, p: int, n: int) -> int:
        full, _ = self._indices(e)
        cap = SMALL if n <= SMALL else _pow2(self.nfull)
        rows = np.zeros((cap, self.bs), np.int32)
        rows[:n] = full[p : p + n]
        fn = run.plan.fused("rows", cap, self.in_order)
        ls = _call(run, fn, n, self.per, n - 1, device, rows, np.int32(n))
        self.last_loss = _lazy(ls, n - 1)
        return n
