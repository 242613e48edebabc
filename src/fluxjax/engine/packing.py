"""The optimiser state packed into few flat buffers (internal).

Each array crossing a compiled call costs about a microsecond on the CPU, which dominates
small models: Adam on a 4-array model would pass 12 state arrays per step. Small state
arrays (at most ``PACK_MAX`` elements) therefore share one buffer per dtype; large ones
keep a buffer of their own, since copying them into a shared one would cost more memory
traffic than the call saves.

``pack``/``unpack`` run inside the compiled program; ``host_pack``/``host_unpack`` run
outside it (when a plan takes the state or gives it back) through NumPy and
``jax.device_put``, so they compile no XLA program of their own.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PACK_MAX = 1 << 14  # state arrays up to this many elements share a buffer


class Packer:
    """Flattens a list of state pytrees into few 1-D buffers (``pack``), and back
    (``unpack``); the layout is fixed by the trees it was built from."""

    def __init__(self, trees: list[Any]) -> None:
        leaves, self.treedef = jax.tree_util.tree_flatten(trees)
        self.dtypes: list[Any] = []  # the dtype of each buffer
        self.shared: list[bool] = []  # whether a buffer holds several small arrays
        self.layout: list[tuple[int, int, int, tuple[int, ...]]] = []  # (buffer, start, n, shape)
        sizes: list[int] = []
        for leaf in leaves:
            dt, shape = jnp.result_type(leaf), tuple(jnp.shape(leaf))
            n = int(np.prod(shape))
            small = n <= PACK_MAX
            b = next(
                (
                    k
                    for k, (d, sh) in enumerate(zip(self.dtypes, self.shared))
                    if small and sh and d == dt
                ),
                None,
            )
            if b is None:
                b = len(self.dtypes)
                self.dtypes.append(dt)
                self.shared.append(small)
                sizes.append(0)
            self.layout.append((b, sizes[b], n, shape))
            sizes[b] += n

    def pack(self, trees: list[Any]) -> list[Any]:
        parts: list[list[Any]] = [[] for _ in self.dtypes]
        for leaf, (b, _, _, _) in zip(jax.tree_util.tree_leaves(trees), self.layout):
            a = jnp.asarray(leaf, self.dtypes[b])
            parts[b].append(jnp.ravel(a) if self.shared[b] else a)
        return [jnp.concatenate(p) if len(p) > 1 else p[0] for p in parts]

    def unpack(self, bufs: list[Any]) -> list[Any]:
        leaves = [
            (jax.lax.slice(bufs[b], (s,), (s + n,)) if self.shared[b] else bufs[b]).reshape(shape)
            for b, s, n, shape in self.layout
        ]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def host_pack(self, trees: list[Any]) -> list[Any]:
        """``pack`` outside compiled code: through host memory, compiling nothing."""
        parts: list[list[Any]] = [[] for _ in self.dtypes]
        for leaf, (b, _, _, _) in zip(jax.tree_util.tree_leaves(trees), self.layout):
            a = np.asarray(leaf, self.dtypes[b])
            parts[b].append(np.ravel(a) if self.shared[b] else a)
        return [jax.device_put(np.concatenate(p) if len(p) > 1 else p[0]) for p in parts]

    def host_unpack(self, bufs: list[Any]) -> list[Any]:
        """``unpack`` outside compiled code: through host memory, compiling nothing."""
        host = [np.ravel(np.asarray(b)) for b in bufs]
        leaves = [
            jax.device_put(host[b][s : s + n].reshape(shape)) for b, s, n, shape in self.layout
        ]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)
