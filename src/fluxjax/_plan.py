"""The compiled training step behind ``train`` (internal).

A ``Plan`` holds what one (loss, parameters, optimiser, model structure) needs: the slots of
the trainable arrays, the slots of every other array the loss can see, the rules, the
optimiser state packed into one buffer per dtype, and the compiled functions:

* ``step``: one batch; the packed state crosses the call boundary as one array per dtype.
* ``fused_list``: many steps over a list of equally shaped batches (a ``while_loop``, with
  the step count a run-time value, so any number of epochs reuses one compilation).
* ``fused_loader``: whole epochs of a DataLoader: a scan over the full batches gathered on
  the device by index, then the short tail batch, inside a ``while_loop`` over epochs.

Failures (a non-finite loss or gradient, a rule's error) cannot raise inside compiled code.
The step returns a small int32 vector ``halt = [steps taken, step that failed, reason]``; a
failed step and every later one leave parameters and state unchanged (``jnp.where``), and the
host raises when it next reads ``halt`` (at the latest at the start of the next call).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import mode
from .autodiff import Param, _first, _group
from .layers._common import recording
from .module import Module, is_array, modules, structure_version, walk
from .optimise.base import Rule, rule_version
from .optimise.interface import Leaf, RulesKey, apply_one, implicit_state


# -- what the loss can see ---------------------------------------------------------------
def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
        return True
    except ValueError:
        return False


def _names(code: Any) -> Iterator[str]:
    yield from code.co_names
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            yield from _names(c)


def _scope(f: Any) -> list[tuple[str, Any]]:
    """(name, value) of the closure cells, defaults and globals that ``f``'s code names."""
    code = getattr(f, "__code__", None)
    if code is None:
        return []
    out = [
        (n, c.cell_contents) for n, c in zip(code.co_freevars, f.__closure__ or ()) if _filled(c)
    ]
    out += [("default", v) for v in (f.__defaults__ or ())]
    g = getattr(f, "__globals__", {})
    out += [(n, g[n]) for n in _names(code) if n in g]
    return out


def reachable(f: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[Any]:
    """Objects a function can reach through its scope, following the functions it names."""
    seen = set() if seen is None else seen
    if id(f) in seen or depth > 4:
        return
    seen.add(id(f))
    if inspect.ismethod(f):
        yield f.__self__
        f = f.__func__
    if getattr(f, "__code__", None) is None:
        call = type(f).__dict__.get("__call__") if not isinstance(f, type) else None
        if call is not None and hasattr(call, "__code__"):
            yield f
            yield from reachable(call, depth + 1, seen)
        return
    for _, v in _scope(f):
        yield v
        if inspect.isfunction(v) or inspect.ismethod(v):
            yield from reachable(v, depth + 1, seen)


def captured_arrays(loss: Any) -> list[str]:
    """Arrays (outside modules) that a loss reads from its enclosing scope or globals."""
    return [
        f"{name} ({'×'.join(map(str, np.shape(v)))})"
        for name, v in _scope(loss)
        if is_array(v) and np.size(v) > 1
    ]


def loss_key(loss: Any) -> Any:
    """Cache key of a loss: its code and the identities of what its closure holds, so a
    ``lambda`` re-created each epoch maps to the same compiled step."""
    code = getattr(loss, "__code__", None)
    if code is None:
        return ("object", id(loss))
    cells = tuple(id(c.cell_contents) if _filled(c) else None for c in (loss.__closure__ or ()))
    return (code, cells, id(getattr(loss, "__self__", None)))


# -- the packed optimiser state ------------------------------------------------------------
PACK_MAX = 1 << 14  # state arrays up to this many elements share a buffer


class Packer:
    """Flattens a list of state pytrees into few 1-D buffers, and back.

    Small arrays (at most ``PACK_MAX`` elements) share one buffer per dtype: each array
    crossing a compiled call costs about a microsecond, which dominates small models. Large
    arrays keep a buffer of their own: copying them into a shared one would cost more
    memory traffic than the call saves.
    """

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
            parts[b].append(jnp.ravel(jnp.asarray(leaf, self.dtypes[b])))
        return [jnp.concatenate(p) if len(p) > 1 else p[0] for p in parts]

    def unpack(self, bufs: list[Any]) -> list[Any]:
        leaves = [
            (jax.lax.slice(bufs[b], (s,), (s + n,)) if self.shared[b] else bufs[b]).reshape(shape)
            for b, s, n, shape in self.layout
        ]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


# -- the plan ------------------------------------------------------------------------------
_OWNERS: dict[int, Plan] = {}


class OwnedLeaf(Leaf):
    """A Leaf whose live state sits in a plan's packed buffer: reading it unpacks first."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name in ("state", "t"):
            plan = _OWNERS.get(id(self))
            if plan is not None:
                plan.flush()
        return object.__getattribute__(self, name)


def skips_nonfinite(rule: Rule) -> bool:
    """True when ``rule`` is or contains ``SkipNonFinite`` (then bad steps are skipped)."""
    if type(rule).__name__ == "SkipNonFinite":
        return True
    return any(skips_nonfinite(r) for r in rule.children())


SKIPS: list[list[Any]] = []
BLOCK = 32  # fused loops record losses in blocks of this many units
LAG = 16  # the per-epoch loop may run this many calls ahead of its failure check


DONATE_BYTES = 64 * 2**20


def _should_donate(entries: list[Param]) -> tuple[int, ...]:
    """Donate the parameter and state buffers to the compiled step (so they are updated in
    place) on accelerators, or on the CPU once a model is large; for small CPU models the
    bookkeeping costs more than it saves (about 4 µs a call), so the old arrays stay valid."""
    size = sum(np.prod(p.get().shape) * p.get().dtype.itemsize for p in entries)
    return (0, 2) if jax.default_backend() != "cpu" or size > DONATE_BYTES else ()


class Plan:
    """Everything one (loss, parameters, optimiser, structure) needs to train."""

    def __init__(
        self,
        loss: Callable[..., Any],
        model: Module | None,
        entries: list[Param],
        rules: list[Rule],
        source: Any,
        roots: list[Any],
    ) -> None:
        self.loss, self.model, self.entries, self.rules = loss, model, entries, rules
        self.source = source  # a Rule (state in its implicit store) or a list of Leafs
        self.roots = roots
        self.rules_version = rule_version()
        self.rkey = RulesKey(tuple(rules))
        train_ids = {id(p.get()) for p in entries}
        seen: set[int] = set()
        visible = [
            m
            for v in [*roots, *reachable(loss)]
            if isinstance(v, Module | list | tuple | dict)
            for m in modules(v, seen)
        ]
        owners = [s.owner for p in entries for s in p.slots]
        watched = {id(m): m for m in [*visible, *owners]}
        # each module's structure counter now: a change to any of them makes this plan stale
        self.watch = [(m.__dict__, structure_version(m)) for m in watched.values()]
        self.others = _group(
            (o, path, a)
            for m in visible
            for o, path, a in walk(m, trainable_only=False)
            if o is m and id(a) not in train_ids
        )
        self.changed: list[int] = []  # which `others` the loss replaces (found when traced)
        # (module __dict__, attribute) of each parameter when every one sits in exactly one
        # plain attribute: the per-epoch loop reads and writes them without indirection
        single = all(len(p.slots) == 1 and p.slots[0].name is not None for p in entries)
        self.direct = (
            [(p.slots[0].owner.__dict__, p.slots[0].name) for p in entries] if single else None
        )
        self.need_t = any(r.has_schedule() for r in rules)
        self.tolerant = any(skips_nonfinite(r) for r in rules)
        self.packer: Packer | None = None
        self.bufs: list[Any] = []
        self.halt: Any = None
        self.pending: deque[Any] = deque()  # unread ``halt`` vectors, oldest first
        self.owned = False
        self.steps_done = 0
        self.signature: Any = None
        self.last_batch: Any = None
        self.stack_cache: Any = None
        self.eta = _eta(rules[0])
        # what a callback's StepContext gets: the number, or the schedule's value now
        self.callback_eta: Any = (
            self.eta if self.eta is not None or not self.need_t else self.scheduled_eta
        )
        self.signatures: list[Any] = []
        self.warned_captured = False
        self.eager = False
        self.donate = _should_donate(entries)
        self.step = jax.jit(self._step, donate_argnums=self.donate)
        self.compiled: dict[Any, Any] = {}

    def stale(self) -> bool:
        """True when a module this plan was built from has changed its structure."""
        return any(d.get("_fx_version", 0) != v for d, v in self.watch)

    # -- who holds the live optimiser state -------------------------------------------
    def _records(self) -> list[list[Any]]:
        if isinstance(self.source, Rule):
            return implicit_state(self.source, self.entries)
        return [[lf.state, lf.t] for lf in self.source]

    def acquire(self) -> None:
        """Pack the optimiser state from its owners into this plan's buffers."""
        trees = [[r[0], r[1]] for r in self._records()]
        self.t0 = int(trees[0][1]) if self.need_t else 0  # updates already made (schedules)
        self.packer = Packer(trees)
        self.bufs = self.packer.pack(trees)
        self.halt = jnp.zeros((3,), jnp.int32)
        self.pending = deque()
        self.steps_done = 0
        self.owned = True
        if isinstance(self.source, Rule):
            self.source._implicit_store()["_fx_owner"] = self
        else:
            for lf in self.source:
                lf.__class__ = OwnedLeaf
                _OWNERS[id(lf)] = self

    def scheduled_eta(self) -> float | None:
        """The learning rate now, when it is a schedule: evaluated at the update count of
        the first parameter (all parameters advance together in ``train``)."""
        for r in (self.rules[0], *self.rules[0].children()):
            v = getattr(r, "eta", None)
            if callable(v):
                return float(v(self.t0 + self.steps_done))
        return None

    def flush(self) -> None:
        """Unpack the live state back to the rule's store or the Leafs (on any read)."""
        if not self.owned:
            return
        self.owned = False
        trees = self.packer.unpack(self.bufs)
        if isinstance(self.source, Rule):
            store = self.source._implicit_store()
            store.pop("_fx_owner", None)
            for p, (s, t) in zip(self.entries, trees):
                rec = store[p.key()]
                rec[0], rec[1] = s, t
        else:
            for lf, (s, t) in zip(self.source, trees):
                _OWNERS.pop(id(lf), None)
                lf.__class__ = Leaf
                lf.state, lf.t = s, t

    def owns_state(self) -> bool:
        if not self.owned:
            return False
        if isinstance(self.source, Rule):
            return self.source._implicit_store().get("_fx_owner") is self
        return all(_OWNERS.get(id(lf)) is self for lf in self.source)

    # -- traced code -------------------------------------------------------------------
    def _call_loss(self, batch: Any) -> Any:
        args = batch if isinstance(batch, tuple) else (batch,)
        if self.model is not None:
            args = (self.model, *args)
        try:
            inspect.signature(self.loss).bind(*args)
        except TypeError as e:
            raise TypeError(
                f"train: the loss cannot take this batch ({e}). A batch that is a tuple is "
                f"splatted into the loss, anything else is passed as one argument: the loss "
                f"got {len(args)} argument(s). For all the data at each step pass "
                "[(x, y)], not [x, y]; in explicit mode the loss is loss(model, x, y)."
            ) from None
        except ValueError:  # no signature (a builtin): let the call itself complain
            pass
        # layers are active in training; state they replace is recorded, not refused
        with mode.training(), recording():
            return self.loss(*args)

    def _loss_and_grads(self, tv: list[Any], ov: list[Any], batch: Any) -> tuple[Any, ...]:
        entries, others = self.entries, self.others
        skips: list[Any] = []

        def lossfn(vals: list[Any]) -> tuple[Any, Any]:
            old_t, old_o = [p.get() for p in entries], [p.get() for p in others]
            try:
                for p, v in zip(entries, vals):
                    p.set(v)
                for p, v in zip(others, ov):
                    p.set(v)
                SKIPS.append(skips)
                try:
                    out = self._call_loss(batch)
                finally:
                    SKIPS.pop()
                after = [p.get() for p in others]
            finally:
                for p, v in zip(entries, old_t):
                    p.set(v)
                for p, v in zip(others, old_o):
                    p.set(v)
            l = _first(out)
            if jnp.ndim(l) != 0 or not jnp.issubdtype(jnp.result_type(l), jnp.floating):
                raise TypeError(
                    f"train: the loss must return a real scalar, got {type(l).__name__} of "
                    f"shape {tuple(jnp.shape(l))}; reduce it, e.g. with .mean()."
                )
            return l, after

        (l, after), grads = jax.value_and_grad(lossfn, has_aux=True)(tv)
        self.changed = [i for i, (a, b) in enumerate(zip(after, ov)) if a is not b]
        return l, grads, after, skips

    def _core(
        self, tv: list[Any], ov: list[Any], trees: list[Any], halt: Any, batch: Any
    ) -> tuple[Any, ...]:
        """One step on unpacked state: returns new (tv, ov, trees, halt) and the loss."""
        l, grads, after, skips = self._loss_and_grads(tv, ov, batch)
        finite = jnp.isfinite(l)
        err = jnp.asarray(-1, jnp.int32)
        new_tv, new_trees = [], []
        for i, (r, (s, t), x, g) in enumerate(zip(self.rules, trees, tv, grads)):
            nx, ns, nt, e = apply_one(r, s, x, g, t)
            # a sum is non-finite iff an element is (or the sum overflows float range, which
            # only absurd gradients do); it costs far less than all(isfinite(g))
            finite = finite & jnp.isfinite(jnp.sum(g))
            new_tv.append(nx)
            new_trees.append([ns, nt])
            if e is not None:
                err = jnp.where((err < 0) & e, i, err)
        bad = err >= 0 if self.tolerant else (err >= 0) | ~finite
        stop = (halt[1] > 0) | bad
        for c in skips:
            stop = stop | c

        new_ov = list(ov)
        for i in self.changed:
            new_ov[i] = jnp.where(stop, ov[i], after[i])
        count = halt[0] + 1
        fail = (halt[1] == 0) & bad
        reason = jnp.where(err >= 0, err + 2, 1)
        halt = jnp.stack(
            [count, jnp.where(fail, count, halt[1]), jnp.where(fail, reason, halt[2])]
        ).astype(jnp.int32)
        # one select of whole buffers (an elementwise jnp.where would cost a pass over each)
        new_tv, new_trees = jax.lax.cond(stop, lambda: (tv, trees), lambda: (new_tv, new_trees))
        return new_tv, new_ov, new_trees, halt, l

    def _step(
        self, tv: list[Any], ov: list[Any], bufs: list[Any], halt: Any, batch: Any
    ) -> tuple[Any, ...]:
        new_tv, new_ov, trees, halt, l = self._core(tv, ov, self.packer.unpack(bufs), halt, batch)
        return new_tv, [new_ov[i] for i in self.changed], self.packer.pack(trees), halt, l

    def _blocked(
        self,
        cap: int,
        n: Any,
        unit: Callable[[Any, Any], Any],
        carry: Any,
        out_shape: tuple[int, ...],
    ) -> tuple[Any, Any]:
        """Run ``carry, out = unit(i, carry)`` for ``i < n`` (stopping early once a step has
        failed) and gather the outputs into a ``(cap, *out_shape)`` buffer (NaN past ``n``).

        Outputs go into a block of ``BLOCK`` units, and each block into the buffer: writing
        every step straight into a large loop-carried buffer would copy it each step.
        """
        k = min(BLOCK, cap)
        blocks = jnp.full((cap // k, k, *out_shape), jnp.nan, jnp.float32)

        def outer_cond(c: Any) -> Any:
            b, (state, _) = c
            return (b * k < n) & (state[3][1] == 0)

        def outer(c: Any) -> Any:
            b, (state, blocks) = c

            def inner(j: Any, c2: Any) -> Any:
                state, blk = c2
                state, out = unit(b * k + j, state)
                return state, blk.at[j].set(out)

            blk = jnp.full((k, *out_shape), jnp.nan, jnp.float32)
            state, blk = jax.lax.fori_loop(0, jnp.minimum(k, n - b * k), inner, (state, blk))
            return b + 1, (state, blocks.at[b].set(blk))

        start = (jnp.asarray(0, jnp.int32), (carry, blocks))
        _, (carry, blocks) = jax.lax.while_loop(outer_cond, outer, start)
        return carry, blocks.reshape(cap, *out_shape)

    def _fused_list(
        self,
        cap: int,
        nb: int,
        tv: list[Any],
        ov: list[Any],
        bufs: list[Any],
        halt: Any,
        data: Any,
        offset: Any,
        n: Any,
    ) -> tuple[Any, ...]:
        """``n`` steps over ``nb`` stacked batches (batch ``(offset + i) % nb``)."""

        def unit(i: Any, c: Any) -> tuple[Any, Any]:
            if nb == 1:
                batch = data
            else:
                k = (offset + i) % nb
                batch = jax.tree_util.tree_map(lambda a: a[k], data)
            tv, ov, trees, halt, l = self._core(*c, batch)
            return (tv, ov, trees, halt), l.astype(jnp.float32)

        c = (tv, list(ov), self.packer.unpack(bufs), halt)
        (tv, ov, trees, halt), losses = self._blocked(cap, n, unit, c, ())
        return tv, [ov[i] for i in self.changed], self.packer.pack(trees), halt, losses

    def _fused_loader(
        self,
        cap: int,
        in_order: bool,
        tv: list[Any],
        ov: list[Any],
        bufs: list[Any],
        halt: Any,
        data: Any,
        full: Any,
        tail: Any,
        n: Any,
    ) -> tuple[Any, ...]:
        """``n`` epochs: epoch ``e`` takes batches ``data[full[e, j]]`` then ``data[tail[e]]``."""
        n_full, has_tail = full.shape[1], tail.shape[1] > 0

        def take(a: Any, ix: Any) -> Any:
            if in_order:  # unshuffled: a batch is a contiguous block, sliced without a gather
                return jax.lax.dynamic_slice_in_dim(a, ix[0], ix.shape[0], axis=0)
            return jnp.take(a, ix, axis=0)

        def one(c: Any, ix: Any) -> tuple[Any, Any]:
            batch = jax.tree_util.tree_map(lambda a: take(a, ix), data)
            tv, ov, trees, halt, l = self._core(*c, batch)
            return (tv, ov, trees, halt), l.astype(jnp.float32)

        def unit(e: Any, c: Any) -> tuple[Any, Any]:
            c, ls = jax.lax.scan(one, c, full[e])
            if has_tail:
                c, lt = one(c, tail[e])
                ls = jnp.concatenate([ls, lt[None]])
            return c, ls

        c = (tv, list(ov), self.packer.unpack(bufs), halt)
        (tv, ov, trees, halt), losses = self._blocked(cap, n, unit, c, (n_full + has_tail,))
        return tv, [ov[i] for i in self.changed], self.packer.pack(trees), halt, losses

    def fused(self, kind: str, *static: int) -> Any:
        """The compiled fused function for ``kind`` and its static sizes (cached)."""
        key = (kind, *static)
        fn = self.compiled.get(key)
        if fn is None:
            impl = self._fused_list if kind == "list" else self._fused_loader
            fn = jax.jit(lambda *a: impl(*static, *a), donate_argnums=self.donate)
            self.compiled[key] = fn
        return fn

    # -- host side -----------------------------------------------------------------------
    def inputs(self) -> tuple[list[Any], list[Any]]:
        fast = self.direct
        tv = [d[n] for d, n in fast] if fast else [p.get() for p in self.entries]
        return tv, [p.get() for p in self.others]

    def finish(self, out: tuple[Any, ...], n_steps: int) -> Any:
        """Write back what a compiled call returned; returns its loss output."""
        new_tv, changed, self.bufs, self.halt, l = out
        if self.direct:
            for (d, n), v in zip(self.direct, new_tv):
                d[n] = v
        else:
            for p, v in zip(self.entries, new_tv):
                p.set(v)
        for i, v in zip(self.changed, changed):
            self.others[i].set(v)
        self.pending.append(self.halt)
        self.steps_done += n_steps
        return l

    def check(self, block: bool, call_start: int) -> None:
        """Raise if a step failed; a failed step and the later ones were not applied.

        Failures are sticky in ``halt``, so reading a newer one covers the older ones.
        ``block`` reads the newest (waiting for the device). Otherwise, so as not to stall
        the per-epoch loop, it reads once every ``LAG`` calls the newest finished ``halt``
        (waiting only for the oldest), so a failure surfaces at most ``LAG`` calls late —
        at once in a call of several steps, or with ``compile=False``.
        """
        q = self.pending
        if not q:
            return
        if block:
            h = q[-1]
            q.clear()
        elif len(q) >= LAG:  # read once every LAG calls: the newest one that is finished
            h = q.popleft()
            while q and q[0].is_ready():
                h = q.popleft()
        else:
            return
        _, at, reason = (int(v) for v in np.asarray(h))
        if at:
            self.halt = jnp.zeros((3,), jnp.int32)
            start, self.steps_done = call_start, 0
            raise failure(self, at - start, reason)


def _eta(rule: Rule) -> float | None:
    """The learning rate a callback sees: the first ``eta`` in the rule or its members."""
    for r in (rule, *rule.children()):
        v = getattr(r, "eta", None)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def failure(plan: Plan, step: int, reason: int) -> FloatingPointError:
    where = (
        f"at step {step} of this train call"
        if step > 0
        else f"in an earlier train call ({1 - step} steps before this one)"
    )
    if reason >= 2:
        return FloatingPointError(
            f"train: {plan.rules[reason - 2]!r} refused a non-finite gradient of "
            f"{plan.entries[reason - 2].label()} {where}; training stopped there and the model "
            "holds the parameters from before that step. Chain fx.SkipNonFinite() to skip "
            "such steps instead."
        )
    return FloatingPointError(
        f"train: the loss or its gradient is not finite {where}, so training stopped; the "
        "model holds the parameters from before that step. To skip such batches instead, "
        "chain fx.SkipNonFinite() before the rule: fx.OptimiserChain(fx.SkipNonFinite(), rule)."
    )
