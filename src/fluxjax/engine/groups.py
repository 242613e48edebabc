"""Small arrays updated as one (internal): one rule application over their concatenation.

On the CPU a compiled step costs about a microsecond per operation XLA launches, and a rule
applied array by array launches its arithmetic once per array: Adam on a 4-array model is
dozens of tiny kernels. A rule that is ``elementwise`` (each element's new value and state
depend only on that element and on scalars shared by all elements, see ``Rule``) gives the
same arithmetic applied to the concatenation of several arrays: so the small arrays
sharing a rule object, a dtype and equal scalar state (the update count, Adam's ``βᵗ``)
form a group, and the step applies the rule once per group. The formula per element is the
same either way, but XLA compiles the two kernels apart and may round a last bit
differently (Adam: 2e-7 after 160 steps), so a plan's grouping is a function of its state
alone: made the same way in every process and after a save and load, it never depends on
how a run was split.

The grouped state lives only in the plan's packed buffers: ``merge`` builds it from the
per-array records when a plan takes the state, ``split`` gives the per-array records back.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..optimise.core import apply_one

GROUP_MAX = 1 << 14  # arrays up to this many elements may join a group


def _kinds(state: Any, shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """Each state leaf as ``"elem"`` (shaped as the array) or ``"scalar"`` (0-d); None
    when a leaf is neither, so the array cannot join a group."""
    out = []
    for leaf in jax.tree_util.tree_leaves(state):
        s = tuple(np.shape(leaf))
        if s == shape:
            out.append("elem")
        elif s == ():
            out.append("scalar")
        else:
            return None
    return tuple(out)


def _key(rule: Any, x: Any, state: Any, t: Any) -> Any:
    """What arrays of one group share, or None when ``x`` updates alone."""
    shape = tuple(np.shape(x))
    if not getattr(rule, "is_elementwise", lambda: False)() or rule.couples():
        return None
    if not shape or int(np.prod(shape)) > GROUP_MAX:
        return None
    kinds = _kinds(state, shape)
    if kinds is None:
        return None
    leaves, treedef = jax.tree_util.tree_flatten(state)
    scalars = tuple(
        (str(np.asarray(v).dtype), np.asarray(v).tobytes())
        for v, k in zip(leaves, kinds)
        if k == "scalar"
    )
    dtypes = tuple(str(np.asarray(v).dtype) for v in leaves)
    tkey = None if t is None else np.asarray(t).tobytes()
    return (id(rule), str(jnp.result_type(x)), treedef, kinds, dtypes, scalars, tkey)


class Grouping:
    """The units of a plan's update: tuples of array indices, one rule application each
    (a tuple of one index is an array updated alone). Built from the host values of the
    arrays ``xs``, their ``rules`` and their ``[state, t]`` records ``trees``."""

    def __init__(self, rules: list[Any], xs: list[Any], trees: list[Any]) -> None:
        units: list[list[int]] = []
        where: dict[Any, int] = {}
        for i, (r, x, (s, t)) in enumerate(zip(rules, xs, trees)):
            k = _key(r, x, s, t)
            if k is None:
                units.append([i])
            elif k in where:
                units[where[k]].append(i)
            else:
                where[k] = len(units)
                units.append([i])
        self.units = [tuple(u) for u in units]
        self.shapes = [tuple(np.shape(x)) for x in xs]
        self.kinds = {
            u: _kinds(trees[u[0]][0], self.shapes[u[0]]) for u in self.units if len(u) > 1
        }

    def __len__(self) -> int:
        return len(self.units)

    def merge(self, trees: list[Any]) -> list[Any]:
        """Per-array ``[state, t]`` records (host values) → one record per unit."""
        out = []
        for u in self.units:
            if len(u) == 1:
                out.append(trees[u[0]])
                continue
            per = [jax.tree_util.tree_flatten(trees[i][0]) for i in u]
            treedef = per[0][1]
            leaves = [
                np.concatenate([np.ravel(np.asarray(p[0][j])) for p in per])
                if kind == "elem"
                else per[0][0][j]
                for j, kind in enumerate(self.kinds[u])
            ]
            out.append([jax.tree_util.tree_unflatten(treedef, leaves), trees[u[0]][1]])
        return out

    def split(self, merged: list[Any]) -> list[Any]:
        """One record per unit (host values) → per-array ``[state, t]`` records."""
        out: list[Any] = [None] * len(self.shapes)
        for u, (s, t) in zip(self.units, merged):
            if len(u) == 1:
                out[u[0]] = [s, t]
                continue
            leaves, treedef = jax.tree_util.tree_flatten(s)
            host = [np.asarray(v) for v in leaves]
            start = 0
            for i in u:
                n = int(np.prod(self.shapes[i]))
                own = [
                    jax.device_put(h[start : start + n].reshape(self.shapes[i]))
                    if kind == "elem"
                    else leaf
                    for h, leaf, kind in zip(host, leaves, self.kinds[u])
                ]
                out[i] = [jax.tree_util.tree_unflatten(treedef, own), t]
                start += n
        return out

    def apply(
        self, rules: list[Any], trees: list[Any], tv: list[Any], grads: list[Any]
    ) -> tuple[list[Any], list[Any], Any]:
        """Traced: every unit's update. Returns the new arrays (per array), the new unit
        records, and the index of the first array whose rule reported an error (-1 when
        none)."""
        new_tv: list[Any] = [None] * len(tv)
        new_trees = []
        err = jnp.asarray(-1, jnp.int32)
        for u, (s, t) in zip(self.units, trees):
            i = u[0]
            if len(u) == 1:
                x, g = tv[i], grads[i]
            else:
                x = jnp.concatenate([jnp.ravel(tv[j]) for j in u])
                g = jnp.concatenate([jnp.ravel(grads[j]).astype(x.dtype) for j in u])
            nx, ns, nt, e = apply_one(rules[i], s, x, g, t)
            if len(u) == 1:
                new_tv[i] = nx
            else:
                start = 0
                for j in u:
                    n = int(np.prod(self.shapes[j]))
                    new_tv[j] = jax.lax.slice(nx, (start,), (start + n,)).reshape(self.shapes[j])
                    start += n
            new_trees.append([ns, nt])
            if e is not None:
                err = jnp.where((err < 0) & e, i, err)
        return new_tv, new_trees, err
