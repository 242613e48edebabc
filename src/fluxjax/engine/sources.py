"""Where a run's batches come from, and how they reach the plan's one program (internal).

Each source turns "the next ``k`` steps" into calls of the plan's program (``Run.call``),
with the data in the program's layout (see ``program``):

* ``Stream``: any iterable (a generator, ``itertools.repeat``, batches of unequal shapes,
  a loader with ``collate``): each batch is one call, layout ``"one"``.
* ``One``: a list of one batch: ``k`` steps on it in one call, layout ``"one"`` (the same
  compiled program a stream of batches of that shape uses).
* ``Stacked``: a list of equally shaped batches, stacked on the device, layout ``"stack"``.
* ``Loader``: a DataLoader over arrays in memory: its arrays on the device and a table of
  each epoch's observation order, drawn when the run reaches that epoch (exactly as
  iterating would draw it), layout ``"rows"``.
* ``Gathered``: a small DataLoader; one too large for the device or memory-mapped; one in
  a multi-process run or with ``shard=``: each call's batches gathered in host memory (this
  process's part of each), a block at a time, layout ``"stack"``.

A source never changes the run's counters: ``steps(run, k)`` makes the calls (which
count), and ``where(pos)`` says which epoch and batch a position is.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import jax
import numpy as np

from .. import distributed
from ..data import DataLoader
from ..tree import is_array
from . import policy
from .cache import weak
from .program import CAP


def signature(batch: Any) -> tuple[Any, ...]:
    """(shape, dtype) of every array of a batch (and its structure, unless a flat tuple)."""
    if type(batch) is tuple and all(hasattr(a, "shape") for a in batch):
        return tuple((a.shape, a.dtype) for a in batch)
    leaves, treedef = jax.tree_util.tree_flatten(batch)
    return (treedef, *((np.shape(a), jax.numpy.result_type(a)) for a in leaves))


def open_source(data: Any, n_epochs: int, plan: Any, compiled: bool, seen: bool) -> Any:
    """The source for ``data`` over ``n_epochs`` epochs (``seen``: a list holding the very
    batch of the plan's last call)."""
    if isinstance(data, DataLoader) and plan.placement is not None:
        if plan.placement.multiprocess:
            distributed.same_loader(data)  # the same steps in every process, or an error
    if compiled and not plan.empty:
        if seen:
            return One(data[0], n_epochs, seen=True)  # the tutorial's loop: the last batch
        if isinstance(data, DataLoader) and _arrays_of(data):
            pl = plan.placement
            if data.shard is not None or (pl is not None and pl.multiprocess):
                return Gathered(data, n_epochs)  # each process gathers its part of a batch
            if not _on_device(data):  # memory-mapped, or over the device budget
                if all(isinstance(a, np.ndarray) for a in jax.tree_util.tree_leaves(data.data)):
                    return Gathered(data, n_epochs)  # (device arrays: batch by batch)
                return Stream(data, n_epochs)
            if policy.nbytes(data.data) <= GATHER_MAX and pl is None:
                return Gathered(data, n_epochs)
            return Loader(data, n_epochs)
        elif isinstance(data, list | tuple) and data and _arrays(data[0]):
            sig = signature(data[0])
            if all(signature(b) == sig for b in data[1:]):
                if len(data) == 1:
                    return One(data[0], n_epochs)
                if policy.nbytes(data[0]) * len(data) <= policy.budget():
                    return Stacked(data, n_epochs)
    return Stream(data, n_epochs)


def same_batch(batch: Any, last: Any) -> bool:
    """True when ``batch`` is a tuple of the very arrays of the last batch, ``last`` as
    ``held`` keeps it (arrays are immutable for JAX; a NumPy array's shape and dtype
    cannot change in place either)."""
    if last is None or type(batch) is not tuple or len(batch) != len(last):
        return False
    return all(a is r() for a, r in zip(batch, last))


def held(batch: Any) -> Any:
    """A tuple batch as a plan remembers it (``same_batch``): by weak references, so that
    a plan does not keep a batch the caller has let go; None for any other batch."""
    if type(batch) is not tuple:
        return None
    return tuple(weak(a) for a in batch)  # (a number, a string: kept as it is)


def _arrays(batch: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(batch)
    return bool(leaves) and all(is_array(a) for a in leaves)


def _arrays_of(loader: DataLoader) -> bool:
    """True when ``loader`` indexes arrays itself (no ``collate``)."""
    leaves = jax.tree_util.tree_leaves(loader.data)
    return loader.collate is None and bool(leaves) and all(is_array(a) for a in leaves)


def _on_device(loader: DataLoader) -> bool:
    """True when ``loader``'s arrays fit the device budget and are not memory-mapped."""
    if any(isinstance(a, np.memmap) for a in jax.tree_util.tree_leaves(loader.data)):
        return False
    return policy.nbytes(loader.data) <= policy.budget()


class Source:
    """What every source has: ``total`` steps (None: unknown), ``per`` batches per epoch,
    the last step's loss (``last_loss``: a device value or a function reading one)."""

    total: int | None
    per: int = 1
    last_loss: Any = None

    def where(self, pos: int) -> tuple[int, int]:
        """(1-based epoch, 0-based batch index) of the batch at run position ``pos``."""
        return pos // self.per + 1, pos % self.per

    def epoch_of(self, pos: int) -> Any:
        """The epoch of the steps from ``pos`` on, as ``TrainHistory`` records it: an int,
        or (the first step's 0-based position, batches per epoch)."""
        return (pos, self.per)

    def settle(self, pos: int) -> None:
        """Before callbacks run at ``pos``: tell the data where the run is."""

    def unsettle(self, pos: int) -> None:
        """After the callbacks ran."""


class Stream(Source):
    """Any iterable of batches, one call per batch."""

    layout = "one"

    def __init__(self, data: Any, n_epochs: int) -> None:
        self.data, self.n_epochs = data, n_epochs
        self.total = None
        self.epoch, self.it, self.index = 0, None, -1

    def where(self, pos: int) -> tuple[int, int]:
        return self.epoch, self.index  # asked only of the last batch taken

    def epoch_of(self, pos: int) -> Any:
        return self.epoch

    def steps(self, run: Any, k: int) -> bool:
        """Up to ``k`` batches; False when the data are exhausted."""
        for _ in range(k):
            batch = self._next()
            if batch is None:
                return False
            run.stream_call(batch, self.index)
        return True

    def _next(self) -> Any:
        while True:
            if self.it is None:
                if self.epoch == self.n_epochs:
                    return None
                self.epoch, self.index, self.it = self.epoch + 1, -1, iter(self.data)
            try:
                batch = next(self.it)
            except StopIteration:
                self.it = None
                continue
            self.index += 1
            return (batch,)[0]


class One(Source):
    """A list of one batch: every step trains on it."""

    layout = "one"

    def __init__(self, batch: Any, n_epochs: int, seen: bool = False) -> None:
        self.batch, self.total = batch, n_epochs
        self.seen = seen  # the very batch of the plan's last call (its shapes known)

    def steps(self, run: Any, k: int) -> bool:
        pl = run.plan.placement
        data = self.batch if pl is None else pl.batch(self.batch)
        if not self.seen:
            run.check_batch(self.batch, 0)
        run.call((), data, None, k, self)  # layout "one": no selector
        return True


class Stacked(Source):
    """A list of equally shaped batches, stacked on the device (``_stack``)."""

    layout = "stack"

    def __init__(self, batches: Any, n_epochs: int) -> None:
        self.batches, self.per = batches, len(batches)
        self.total = self.per * n_epochs
        self.stacked: Any = None

    def steps(self, run: Any, k: int) -> bool:
        if self.stacked is None:
            run.check_batch(self.batches[0], 0)
            self.stacked = _stack(self.batches)
            pl = run.plan.placement
            if pl is not None:  # split over the devices
                self.stacked = pl.stacked(self.stacked)
        run.call((), self.stacked, run.pos % self.per, k, self)
        return True


class _Stacks:
    """The device stacks of the last lists of batches, shared by every plan: keyed by the
    identities of a list's JAX arrays, which it holds only weakly; at most ``MAX``, and
    each dropped as soon as one of its arrays is freed. A model made anew over the same
    list (a notebook cell run again) reuses its stack instead of adding a copy on the
    device, and a list no longer used leaves no copy behind."""

    MAX = 4

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[int, ...], tuple[list[Any], Any]] = OrderedDict()

    def get(self, leaves: list[Any]) -> Any:
        key = tuple(map(id, leaves))
        hit = self.entries.get(key)
        if hit is None or any(r() is not a for r, a in zip(hit[0], leaves)):
            return None
        self.entries.move_to_end(key)
        return hit[1]

    def put(self, leaves: list[Any], stacked: Any) -> None:
        key = tuple(map(id, leaves))
        entries = self.entries

        def gone(_: Any, key: tuple[int, ...] = key) -> None:
            entries.pop(key, None)

        entries[key] = ([weakref.ref(a, gone) for a in leaves], stacked)
        while len(entries) > self.MAX:
            entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


STACKS = _Stacks()


def _stack(batches: list[Any]) -> Any:
    """``batches`` stacked on the device (``STACKS`` keeps it while they are the same JAX
    arrays; NumPy arrays are stacked again each call, since the user may change them in
    place). Stacking goes through host memory: it compiles nothing."""
    leaves = [a for b in batches for a in jax.tree_util.tree_leaves(b)]
    cached = STACKS.get(leaves)
    if cached is not None:
        return cached
    stacked = jax.tree_util.tree_map(
        lambda *xs: jax.device_put(np.stack([np.asarray(x) for x in xs])), *batches
    )
    if all(isinstance(a, jax.Array) for a in leaves):
        STACKS.put(leaves, stacked)
    return stacked


def _kept(loader: DataLoader, where: str, put: Any) -> Any:
    """A DataLoader's arrays put ``where`` (``"device"``: ``jax.device_put``; ``"host"``:
    ``np.asarray``), kept on the loader: it holds private read-only copies of NumPy data
    (memory-mapped data is never put anywhere), so they cannot change."""
    key = "_fx_" + where
    cached = loader.__dict__.get(key)
    if cached is None or cached[0] is not loader.data:
        cached = (loader.data, jax.tree_util.tree_map(put, loader.data))
        loader.__dict__[key] = cached
    return cached[1]


class Loader(Source):
    """An in-memory DataLoader. Each epoch's order is drawn once, when the run reaches it,
    into a row of a table the program reads; the short last batch (if any) has a program
    of its own, so a call runs full batches up to it."""

    layout = "rows"

    def __init__(self, loader: DataLoader, n_epochs: int) -> None:
        ld = self.loader = loader
        self.nfull = ld.nobs // ld.batchsize
        self.ntail = ld.nobs % ld.batchsize if ld.partial else 0
        self.part = (0, 1) if ld.shard is None else ld.shard  # this process's part
        self.bs, self.ntail = ld.batchsize // self.part[1], self.ntail // self.part[1]
        self.per = len(ld)
        self.skip = ld.position  # restored mid-epoch: the first epoch starts there
        self.total = self.per * n_epochs - self.skip
        self.width = self.nfull * self.bs + self.ntail
        self.rows_cap = -(-CAP // self.per) + 1  # epochs one call can touch
        self.rows: dict[int, np.ndarray] = {}  # epoch (0-based in this run) -> its order
        self.table: Any = None  # (first epoch, how many drawn, device table)

    def where(self, pos: int) -> tuple[int, int]:
        return (pos + self.skip) // self.per + 1, (pos + self.skip) % self.per

    def epoch_of(self, pos: int) -> Any:
        return (pos + self.skip, self.per)

    def settle(self, pos: int) -> None:
        """Tell the loader how far into its current epoch the run is, so a checkpoint saves
        the right place (each epoch's order is drawn whole)."""
        p = (pos + self.skip) % self.per
        if p:
            self.loader.seek(p)

    def unsettle(self, pos: int) -> None:
        """The loader's current epoch is drawn whole again (the run holds its order), so
        the next draw is the next epoch."""
        if (pos + self.skip) % self.per:
            self.loader.seek(len(self.loader))

    def _draw(self, e0: int, e1: int) -> None:
        """Draw the orders of epochs ``e0..e1`` not drawn yet (epochs are reached in order,
        each drawn once, as iterating would draw them): whole epochs in one draw."""
        e = e0
        while e in self.rows:
            e += 1
        if e > e1:
            return
        ld = self.loader
        if ld.position:  # restored mid-epoch: the rest of that epoch first
            full, tail = ld.epoch_indices()
            row = np.zeros(self.width, np.int32)
            end = self.nfull * self.bs  # the epoch's first batches are never read
            row[end - full.size : end] = full.ravel()
            row[end:] = tail
            self.rows[e] = row
            e += 1
        if e <= e1:
            for i, row in enumerate(self._mine(ld.next_epochs(e1 + 1 - e))):
                self.rows[e + i] = row

    def _mine(self, orders: np.ndarray) -> np.ndarray:
        """Whole epochs' observation orders (``DataLoader.next_epochs``) cut to this
        process's part of each batch (all of it, unsharded): rows of ``width``."""
        i, n = self.part
        if n == 1:
            return orders[:, : self.width].astype(np.int32)
        k, full = len(orders), self.nfull * self.bs * n
        batches = orders[:, :full].reshape(k, self.nfull, self.bs * n)
        tail = orders[:, full : full + self.ntail * n]
        mine = batches[:, :, i * self.bs : (i + 1) * self.bs].reshape(k, -1)
        return np.concatenate([mine, tail[:, i * self.ntail : (i + 1) * self.ntail]], 1).astype(
            np.int32
        )

    def _table(self, e0: int, e1: int) -> tuple[Any, int]:
        """The device table holding epochs ``e0..e1`` (drawn now if new), and its first
        epoch. A table is uploaded again only when a call reaches an epoch not in it."""
        t = self.table
        if t is not None and t[0] <= e0 and e1 < t[0] + t[1]:
            return t[2], t[0]
        keep = t is not None and t[0] <= e0 and e1 < t[0] + self.rows_cap
        first = t[0] if keep else e0
        self._draw(e0, e1)
        self.rows = {e: r for e, r in self.rows.items() if e >= first}
        table = np.zeros((self.rows_cap, self.width), np.int32)
        for e, r in self.rows.items():
            table[e - first] = r
        self.table = (first, e1 + 1 - first, jax.device_put(table))
        return self.table[2], first

    def steps(self, run: Any, k: int) -> bool:
        device = _kept(self.loader, "device", jax.device_put)
        pl = run.plan.placement
        if pl is not None:  # the data on every device
            device = distributed.loader_data(pl, self.loader, device)
        in_order = not self.loader.shuffle
        while k > 0:
            g = run.pos + self.skip
            e, p = divmod(g, self.per)
            if p < self.nfull:  # full batches, up to the short last one (if any)
                room = self.nfull - p if self.ntail else k
                n = min(k, room, CAP)
                e1 = (g + n - 1) // self.per
                size = self.bs
            else:  # the short last batch: a program of its own
                n, e1, size = 1, e, self.ntail
            table, first = self._table(e, e1)
            static = (self.per, self.bs, size, in_order)
            run.call(static, device, (table, g - first * self.per), n, self)
            k -= n
        return True


GATHER_MAX = 1 << 20  # a DataLoader over at most this many bytes has its batches gathered
GATHER_BLOCK = 8 << 20  # at most this many bytes of batches in a gathered loader's block


class Gathered(Loader):
    """A DataLoader whose batches are gathered in host memory: a small one; one too large
    for the device or memory-mapped (only the rows of each block are read); and any over
    arrays in a multi-process run or with ``shard=`` (each process gathers its own part of
    every batch, as iterating would give it, and the parts make the global batch).

    A call's batches are gathered in each epoch's order (drawn as ``Loader`` draws it) into
    blocks of a fixed shape ``(cap, batchsize, ...)`` that the program reads in the
    ``"stack"`` layout, a block at a time, so that drawing and gathering the next block
    overlaps the program running the last one; the short last batch (if any) is a block of
    its own. A step then costs one slice, where ``Loader``'s device table costs index
    arithmetic and a gather per array: the seed's ``DataLoader((x, y), batchsize=3,
    shuffle=True)`` runs at 0.6 µs a step, 1.0–1.2× its batches as a list (2.7 µs through
    the device table)."""

    layout = "stack"

    def __init__(self, loader: DataLoader, n_epochs: int) -> None:
        super().__init__(loader, n_epochs)
        self.host = _kept(loader, "host", np.asarray)
        per_step = policy.nbytes(self.host) // max(loader.nobs, 1) * self.bs
        self.cap = max(1, min(CAP, GATHER_BLOCK // max(per_step, 1)))

    def steps(self, run: Any, k: int) -> bool:
        while k > 0:
            g = run.pos + self.skip
            e0, p = divmod(g, self.per)
            if p < self.nfull:  # full batches (across epochs when there is no short one)
                n = min(k, self.cap, self.nfull - p if self.ntail else k)
                e1 = (g + n - 1) // self.per
                self._draw(e0, e1)
                self.rows = {e: r for e, r in self.rows.items() if e >= e0}
                order = np.concatenate([self.rows[e] for e in range(e0, e1 + 1)])
                idx = order[p * self.bs : (p + n) * self.bs].reshape(n, self.bs)
                block = self._block(idx, self.cap, run.plan.placement)
            else:  # the short last batch: a block of one step
                n, end = 1, self.nfull * self.bs
                self._draw(e0, e0)
                block = self._block(
                    self.rows[e0][None, end : end + self.ntail], 1, run.plan.placement
                )
            run.call((), block, 0, n, self)
            k -= n
        return True

    def _block(self, idx: np.ndarray, cap: int, pl: Any) -> Any:
        """The batches of observations ``idx`` (steps × batch) in a block of ``cap`` steps,
        in host memory (the compiled call copies it in with its other arguments, quicker
        than a ``jax.device_put`` of its own); in a multi-process run, the global block."""

        def take(a: np.ndarray) -> np.ndarray:
            steps = a[idx]
            if len(steps) < cap:
                pad = np.zeros((cap - len(steps), *steps.shape[1:]), steps.dtype)
                steps = np.concatenate([steps, pad])
            return steps

        block = jax.tree_util.tree_map(take, self.host)
        return block if pl is None else pl.stacked(block)
