"""Minibatches: ``DataLoader`` and ``ncycle``, Flux's data iterators with first-axis observations.

Flux puts observations along the *last* dimension; fluxjax puts them along the **first**, so
an ``(n, features)`` array holds ``n`` observations and a batch of it has shape
``(batchsize, features)``. Everything else is Flux's ``DataLoader`` (v0.12 and MLUtils):

>>> import numpy as np, fluxjax as fx
>>> x, y = np.zeros((21, 1)), np.ones((21, 1))
>>> loader = fx.DataLoader((x, y), batchsize=3)
>>> loader
DataLoader(tuple of 2 arrays, nobs=21, batchsize=3, shuffle=False, partial=True)  # 7 batches
>>> [xb.shape for xb, yb in loader][:2]
[(3, 1), (3, 1)]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .counts import count
from .loader_checks import check_batchsize, check_loader_state, check_rng, check_shard
from .naming import name_of
from .observations import describe, getobs, normalise, numobs
from .rng import host_rng

__all__ = ["DataLoader", "ncycle", "numobs", "getobs"]

# ---- the loader ------------------------------------------------------------------------------


class DataLoader:
    """Iterate over ``data`` in minibatches: Flux's ``DataLoader``, observations on axis 0.

    **Arguments:**

    - ``data``: an array (NumPy or JAX; a list or range is converted with ``np.asarray``), or a
      tuple (named tuples too) or dict of arrays, nested as deep as you like. Every array holds
      the same number ``n`` of observations along its **first** axis.
    - ``batchsize``: a positive int. If ``n < batchsize`` it warns (Flux's message) and uses
      ``n``.
    - ``shuffle``: draw a fresh random permutation every time iteration starts (every epoch).
    - ``partial``: keep the last, short batch. ``len(loader)`` is ``ceil(n / batchsize)`` with
      ``partial=True`` and ``floor(n / batchsize)`` without.
    - ``rng``: where shuffling draws from: a ``numpy.random.Generator``, an int seed (the same
      seed gives the same sequence of epochs), or ``None`` for the global stream that
      ``fx.seed(n)`` resets.
    - ``shard``: ``(index, count)`` for a multi-process run: each batch is the ``index``-th
      of ``count`` equal parts of the batch an unsharded loader would give, so the
      ``count`` processes together read every batch once and the global batch is their
      parts in process order (``batchsize`` is the global batch size; ``count`` must divide
      it and a short last batch, and ``shuffle=True`` needs the same ``rng`` seed in every
      process). Only that part is read from ``np.memmap`` data.
    - ``collate``: ``None`` slices batches out of the arrays (same container as ``data``, the
      observation axis kept even for a batch of 1); a function is called with the list of the
      batch's single observations and its result is the batch (``collate=list`` gives that list).

    Batches of NumPy arrays are NumPy arrays, of JAX arrays JAX arrays (gathered on device).
    The loader keeps a read-only private copy of NumPy inputs (not of ``np.memmap``, read batch
    by batch), so editing your arrays afterwards does not change its batches.

    The tutorial's examples on 1..10:

    >>> import numpy as np, fluxjax as fx
    >>> [b.tolist() for b in fx.DataLoader(np.arange(1, 11))]
    [[1], [2], [3], [4], [5], [6], [7], [8], [9], [10]]
    >>> [b.tolist() for b in fx.DataLoader(np.arange(1, 11), batchsize=3)]
    [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    >>> [b.tolist() for b in fx.DataLoader(np.arange(1, 11), batchsize=3, partial=False)]
    [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    >>> loader = fx.DataLoader(np.arange(1, 11), batchsize=3, shuffle=True, rng=0)
    >>> epoch1, epoch2 = np.concatenate(list(loader)), np.concatenate(list(loader))
    >>> sorted(epoch1.tolist()) == list(range(1, 11)), bool((epoch1 != epoch2).any())
    (True, True)
    >>> len(list(fx.ncycle(loader, 4)))
    16

    Process 1 of 2 reads the second half of every batch:

    >>> [b.tolist() for b in fx.DataLoader(np.arange(1, 11), batchsize=4, shard=(1, 2))]
    [[3, 4], [7, 8], [10]]

    **Fusing epochs (advanced).** A training loop that gathers batches itself, for example
    inside one compiled ``lax.scan``, reads ``loader.data``, ``loader.nobs``,
    ``loader.batchsize``, ``loader.partial``, ``loader.shuffle`` and ``loader.collate`` and
    asks for the indices of the next epoch with ``epoch_indices()`` (a rectangle plus the short
    tail) or ``batch_indices()`` (a list). Each call is one epoch: with ``shuffle=True`` it
    draws the permutation that iterating would have drawn, so ``getobs(loader.data, idx)`` for
    each ``idx`` gives exactly the batches iteration would give.
    """

    def __init__(
        self,
        data: Any,
        batchsize: int = 1,
        shuffle: bool = False,
        partial: bool = True,
        rng: np.random.Generator | int | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        batchsize, rng = check_batchsize(batchsize), check_rng(rng)
        for name, flag in (("shuffle", shuffle), ("partial", partial)):
            if not isinstance(flag, bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if collate is not None and not callable(collate):
            raise TypeError(
                f"collate must be None or a function of the list of observations, got "
                f"{collate!r}; collate=list gives that list (MLUtils' collate=false)"
            )
        self._data = normalise(data)
        self._nobs = numobs(self._data)
        if self._nobs == 0:
            raise ValueError(f"data has 0 observations ({describe(self._data)}); nothing to load")
        if self._nobs < batchsize:
            warnings.warn(
                "Number of observations less than batchsize, decreasing the batchsize to "
                f"{self._nobs}",
                UserWarning,
                stacklevel=2,
            )
            batchsize = self._nobs
        self._batchsize, self._shuffle, self._partial = batchsize, bool(shuffle), bool(partial)
        self._rng, self._collate = rng, collate
        # the cursor (see state()): completed epochs, the order of the epoch in progress and
        # how many of its batches were taken; `_resume` when the next epoch continues it
        self._epoch, self._cur, self._pos, self._resume = 0, None, 0, False
        self._iters, self._drawn = 0, None
        self._shard = check_shard(shard, self)

    data = property(lambda self: self._data, doc="The container of arrays batches come from.")
    nobs = property(lambda self: self._nobs, doc="The number of observations ``n``.")
    batchsize = property(lambda self: self._batchsize, doc="Observations per full batch.")
    shuffle = property(lambda self: self._shuffle, doc="Whether each epoch is shuffled.")
    partial = property(lambda self: self._partial, doc="Whether the short last batch is kept.")
    rng = property(lambda self: self._rng, doc="The Generator shuffling draws from (or None).")
    collate = property(lambda self: self._collate, doc="The collate function, or None.")
    shard = property(lambda self: self._shard, doc="``(index, count)`` of a sharded loader.")

    epoch = property(lambda self: self._epoch, doc="Epochs completed (last batch taken).")

    @property
    def position(self) -> int:
        """Batches of the current epoch that the next iteration skips: nonzero only after
        ``loadstate`` of a state saved mid-epoch (a fused training loop must then run the
        rest of that epoch, ``len(self) - position`` batches, before whole epochs)."""
        return self._pos if self._resume else 0

    def __len__(self) -> int:
        n, bs = self._nobs, self._batchsize
        return -(-n // bs) if self._partial else n // bs

    def _begin(self) -> tuple[np.ndarray, int]:
        """The order of the epoch starting now and the batch it starts at (0, or where a
        restored state left off)."""
        if self._resume and self._cur is not None:
            self._resume = False
            return self._cur, self._pos
        self._resume = False
        self._cur, self._pos = self._order(), 0
        return self._cur, 0

    def _advance(self, k: int) -> None:
        self._pos += k
        if self._pos >= len(self):
            self._epoch, self._cur, self._pos = self._epoch + 1, None, 0

    def _order(self) -> np.ndarray:
        if not self._shuffle:
            return np.arange(self._nobs)
        return (host_rng() if self._rng is None else self._rng).permutation(self._nobs)

    def epoch_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """The observation indices of the next epoch as ``(full, tail)``.

        ``full`` has shape ``(n // batchsize, batchsize)``, one row per full batch in order;
        ``tail`` holds the short last batch (``n % batchsize`` indices, or none when
        ``partial=False`` or ``batchsize`` divides ``n``). With ``shuffle=True`` each call draws
        a new permutation, exactly as starting an iteration does.

        >>> import numpy as np, fluxjax as fx
        >>> full, tail = fx.DataLoader(np.arange(1, 11), batchsize=3).epoch_indices()
        >>> full.tolist(), tail.tolist()
        ([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [9])
        """
        self._iters += 1  # an iteration in progress no longer moves the cursor
        epoch = self._epoch
        order, start = self._begin()
        self._drawn = (order, epoch)
        self._advance(len(self) - start)
        bs = self._batchsize
        nfull = self._nobs // bs
        tail = order[nfull * bs :] if self._partial else order[:0]
        full = order[min(start, nfull) * bs : nfull * bs].reshape(-1, bs)
        if self._shard is not None:  # this process's part of every batch
            i, n = self._shard
            full = full[:, i * bs // n : (i + 1) * bs // n]
            tail = tail[i * len(tail) // n : (i + 1) * len(tail) // n]
        return full, tail

    def next_epochs(self, k: int) -> np.ndarray:
        """The observation orders of the next ``k`` whole epochs, shape ``(k, nobs)``: the
        orders ``k`` calls of ``epoch_indices()`` would draw, in one draw (for a fused
        training loop); the loader moves on ``k`` epochs. A loader restored mid-epoch
        finishes that epoch with ``epoch_indices()`` first.

        >>> import numpy as np, fluxjax as fx
        >>> a = fx.DataLoader(np.arange(5), batchsize=2, shuffle=True, rng=0)
        >>> b = fx.DataLoader(np.arange(5), batchsize=2, shuffle=True, rng=0)
        >>> rows = a.next_epochs(3)
        >>> all((rows[i] == np.concatenate(b.epoch_indices(), axis=None)).all() for i in range(3))
        True
        """
        if self.position:
            raise ValueError(
                "next_epochs: the loader was restored mid-epoch; take the rest of that epoch "
                "with epoch_indices() first."
            )
        rng = host_rng() if self._rng is None else self._rng
        base = np.tile(np.arange(self._nobs), (k, 1))
        if not self._shuffle:
            rows = base
        else:  # row i is the permutation the i-th of k permutation() calls would draw
            rows = rng.permuted(base, axis=1)
        self._iters += k  # as k iterations started: one in progress no longer moves on
        self._drawn = (rows[-1], self._epoch + k - 1)
        self._epoch, self._cur, self._pos, self._resume = self._epoch + k, None, 0, False
        return rows

    def seek(self, position: int) -> None:
        """For a fused training loop: of the epoch last returned by ``epoch_indices()``,
        only ``position`` batches (counted from the epoch's start) have been trained so far.
        Call it before firing callbacks mid-epoch, so that a checkpoint saves the right
        place; ``position == len(self)`` marks the epoch done again.

        >>> import numpy as np, fluxjax as fx
        >>> loader = fx.DataLoader(np.arange(10), batchsize=3)
        >>> _ = loader.epoch_indices(); loader.seek(1); loader.epoch, loader.state()["position"]
        (0, 1)
        """
        if self._drawn is None or not 0 <= position <= len(self):
            raise ValueError(
                f"seek({position!r}): call epoch_indices() first, and pass 0..{len(self)}"
            )
        order, epoch = self._drawn
        self._epoch, self._cur, self._pos, self._resume = epoch, order, 0, False
        self._advance(position)

    def batch_indices(self) -> list[np.ndarray]:
        """The observation indices of each batch of the next epoch, as a list of arrays.

        One call is one epoch (with ``shuffle=True``, one fresh permutation); iterating the
        loader gives ``getobs(loader.data, idx)`` for each ``idx`` of such a list.

        >>> import numpy as np, fluxjax as fx
        >>> [i.tolist() for i in fx.DataLoader(np.arange(1, 11), batchsize=4).batch_indices()]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        """
        full, tail = self.epoch_indices()
        return [*full, tail] if tail.size else list(full)

    def _remaining(self) -> list[np.ndarray]:
        """The batches of the epoch starting now (the rest of a restored one), cursor kept."""
        order, start = self._begin()
        bs, n = self._batchsize, len(self)
        batches = [order[i * bs : (i + 1) * bs] for i in range(start, n)]
        if self._shard is not None:  # this process's part of every batch
            i, k = self._shard
            batches = [b[i * len(b) // k : (i + 1) * len(b) // k] for b in batches]
        return batches

    def getbatch(self, idx: Any) -> Any:
        """The batch of observations ``idx`` (what iteration yields for those indices).

        >>> import numpy as np, fluxjax as fx
        >>> fx.DataLoader(np.arange(1, 11)).getbatch([2, 0])
        array([3, 1])
        >>> fx.DataLoader(np.arange(1, 11), collate=np.stack).getbatch([2, 0])
        array([3, 1])
        """
        if self._collate is None:
            return getobs(self._data, idx)
        return self._collate([getobs(self._data, int(i)) for i in idx])

    def __iter__(self) -> Iterator[Any]:
        self._iters += 1
        batches = self._remaining()  # drawn now, when iteration starts (Flux: at i == 0)
        return self._walk(batches, self._iters)

    def _walk(self, batches: list[np.ndarray], me: int) -> Iterator[Any]:
        for idx in batches:
            batch = self.getbatch(idx)
            if me == self._iters:  # only the newest iteration moves the cursor
                self._advance(1)
            yield batch

    # ---- saving and restoring the position -----------------------------------------------
    def _generator(self) -> np.random.Generator:
        return host_rng() if self._rng is None else self._rng

    def state(self) -> dict[str, Any]:
        """Where the loader is: completed ``epoch``s, the ``order`` of the epoch in progress
        and the ``position`` (batches of it taken), and the state of the generator shuffling
        draws from (the global stream's when ``rng=None``). ``loadstate`` restores it, so
        the batches that follow are exactly those that would have followed.

        >>> import numpy as np, fluxjax as fx
        >>> loader = fx.DataLoader(np.arange(6), batchsize=2, shuffle=True, rng=0)
        >>> it = iter(loader); first = next(it)
        >>> saved = loader.state()
        >>> rest = [b.tolist() for b in it] + [b.tolist() for b in loader]
        >>> again = fx.DataLoader(np.arange(6), batchsize=2, shuffle=True, rng=9)
        >>> again.loadstate(saved); again.position
        1
        >>> [b.tolist() for b in again] + [b.tolist() for b in again] == rest
        True
        """
        return {
            "nobs": self._nobs,
            "batchsize": self._batchsize,
            "shuffle": self._shuffle,
            "partial": self._partial,
            "epoch": self._epoch,
            "position": self._pos if self._cur is not None else 0,
            "order": None if self._cur is None else np.array(self._cur, np.int64),
            "rng": "global" if self._rng is None else "own",
            "rng_state": self._generator().bit_generator.state,
        }

    def loadstate(self, state: dict[str, Any]) -> None:
        """Restore a ``state()``: the next iteration continues the saved epoch where it
        stopped (only its remaining batches), later ones shuffle as they would have.
        The loader must have the same ``nobs``, ``batchsize``, ``shuffle`` and ``partial``
        (checked: a mismatch names each field)."""
        check_loader_state(self, state)
        gen = self._generator()
        try:
            gen.bit_generator.state = state["rng_state"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(
                f"loadstate: the saved random state does not fit this loader's generator "
                f"({type(gen.bit_generator).__name__}): {e}"
            ) from None
        order, pos = state["order"], int(state["position"])
        self._epoch, self._iters = int(state["epoch"]), self._iters + 1
        self._cur = None if order is None else np.asarray(order, np.int64)
        self._pos, self._resume = (pos, True) if self._cur is not None else (0, False)

    def _args(self) -> str:
        collate = "" if self._collate is None else f", collate={name_of(self._collate)}"
        shard = "" if self._shard is None else f", shard={self._shard}"
        return (
            f"{describe(self._data)}, nobs={self._nobs}, batchsize={self._batchsize}, "
            f"shuffle={self._shuffle}, partial={self._partial}{collate}{shard}"
        )

    def __repr__(self) -> str:
        n = len(self)
        return f"DataLoader({self._args()})  # {n} batch{'es' * (n != 1)}"


class ncycle:  # noqa: N801  (lower case as IterTools.ncycle, and a class so train can see it)
    """Iterate ``iterable`` ``n`` times in a row: IterTools' ``ncycle``.

    Each cycle starts a new iteration, so a shuffling DataLoader draws a new permutation every
    cycle. ``len`` is ``n * len(iterable)``. A training loop may read ``.iterable`` and ``.n``
    to run the cycles fused.

    >>> import numpy as np, fluxjax as fx
    >>> loader = fx.DataLoader(np.arange(1, 11), batchsize=3, shuffle=True, rng=1)
    >>> cycles = fx.ncycle(loader, 4)
    >>> cycles
    ncycle(DataLoader(array of shape (10,), nobs=10, batchsize=3, shuffle=True, partial=True), 4)
    # 16 batches
    >>> len(cycles), len(list(cycles))
    (16, 16)
    """

    def __init__(self, iterable: Iterable[Any], n: int) -> None:
        count(n, f"ncycle needs a non-negative int count, got n={n!r}", minimum=0)
        if isinstance(iterable, Iterator):
            raise TypeError(
                "ncycle needs something it can iterate again (a DataLoader, a list), got a "
                f"one-shot {type(iterable).__name__}; wrap it in list(...)"
            )
        self.iterable, self.n = iterable, int(n)

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.n):
            yield from self.iterable

    def __len__(self) -> int:
        return self.n * len(self.iterable)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        inner = self.iterable
        inner_repr = (
            f"DataLoader({inner._args()})" if isinstance(inner, DataLoader) else repr(inner)
        )
        try:
            n = len(self)
        except TypeError:
            return f"ncycle({inner_repr}, {self.n})"
        return f"ncycle({inner_repr}, {self.n})  # {n} batch{'es' * (n != 1)}"
