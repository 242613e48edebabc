"""A training plan (internal): what one (loss, parameters, optimiser, model structure)
needs to train, and the host side of its compiled calls.

A plan holds the slots of the trainable arrays (``entries``), the slots of every other array
the loss can see (``others``: statistics, keys, carried state, frozen parameters), the
rules, and, while it trains, the optimiser state packed into its buffers. Ownership of that
state is explicit: ``acquire`` packs it and records the plan as its ``owner`` (the
``owner`` of each explicit-mode ``Leaf``, or of the rule's ``ImplicitStore``); any read or
write of the state through a ``Leaf`` or ``implicit_state`` calls ``flush`` first, which
unpacks the live values back and gives up ownership.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..distributed import wrap
from ..module import STRUCTURE_CLOCK, Module, structure_version
from ..optimise.base import Rule, dead, rule_version
from ..optimise.state import implicit_state
from ..params import Param, group
from ..tree import HELD, PACKED, modules, walk
from . import hyper, policy, program
from .groups import Grouping
from .packing import PACK_MAX, Packer
from .schedule import LastSchedule
from .scope import reachable

LAG = 16  # the per-epoch loop may run this many calls ahead of its failure check
DONATE_BYTES = 64 * 2**20


def skips_nonfinite(rule: Rule) -> bool:
    """True when ``rule`` is or contains ``SkipNonFinite`` or ``LossScale`` (then bad steps
    are skipped)."""
    if type(rule).__name__ in ("SkipNonFinite", "LossScale"):
        return True
    return any(skips_nonfinite(r) for r in rule.children())


def _should_donate(entries: list[Param]) -> tuple[int, ...]:
    """Donate the parameter and state buffers to the compiled step (so they are updated in
    place) on accelerators, or on the CPU once a model is large; for small CPU models the
    bookkeeping costs more than it saves (about 4 µs a call), so the old arrays stay valid."""
    size = sum(np.prod(p.get().shape) * p.get().dtype.itemsize for p in entries)
    return (0, 2) if jax.default_backend() != "cpu" or size > DONATE_BYTES else ()


PACK_TOTAL = 1 << 16  # parameters held packed between calls: at most this many elements


class _Live:
    """The one plan, if any, whose parameters are held packed between its compiled calls
    (``Plan.hold``): one at a time, so that another plan never reads a model without them.
    Held weakly: the model keeps it (``PACKED``), and a model freed needs no settling."""

    def __init__(self) -> None:
        self.ref: Any = dead

    @property
    def plan(self) -> Plan | None:
        return self.ref()

    @plan.setter
    def plan(self, plan: Plan | None) -> None:
        self.ref = dead if plan is None else weakref.ref(plan)

    def settle(self) -> None:
        plan = self.ref()
        if plan is not None:
            plan.settle()


LIVE = _Live()


def _packable(entries: list[Param], direct: Any, owners: list[Any]) -> Packer | None:
    """A ``Packer`` for the parameters, when they are held packed between calls: several
    small arrays (at most ``PACK_TOTAL`` elements in all), each in a plain attribute of a
    module (``owners``) whose attribute look-up is ``Module``'s (which unpacks them when
    read)."""
    if direct is None or len(entries) < 2:
        return None
    arrays = [p.get() for p in entries]
    if not all(isinstance(a, jax.Array) for a in arrays):
        return None
    sizes = [a.size for a in arrays]
    if max(sizes) > PACK_MAX or sum(sizes) > PACK_TOTAL:
        return None
    if any(type(o).__getattr__ is not Module.__getattr__ for o in owners):
        return None
    return Packer(arrays)


def first_eta(rule: Rule) -> float | None:
    """The learning rate a callback sees: the first ``eta`` in the rule or its members."""
    for r in (rule, *rule.children()):
        v = getattr(r, "eta", None)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


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
        self.rules_version = rule_version()
        self.rkey = hyper.key(rules)  # what the program bakes in (not the learning rates)
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
        # the modules that keep this plan (``cache.PlanCache``): those whose arrays it
        # trains and the model given, else any the loss sees
        mine = [*owners, *(r for r in roots if isinstance(r, Module))]
        self.holders = list({id(m): m for m in mine or visible}.values())
        self.replay: Any = None  # the Run kept to replay this plan's last call (run.Replay)
        self.schedules = LastSchedule()  # the last call's callbacks, parsed
        # each module's structure counter now: a change to any of them makes this plan stale
        self.clock = STRUCTURE_CLOCK.now
        self.watch = [(m.__dict__, structure_version(m)) for m in watched.values()]
        self.others = group(
            (o, path, a)
            for m in visible
            for o, path, a in walk(m, trainable_only=False)
            if o is m and id(a) not in train_ids
        )
        self.changed: list[int] = []  # which `others` the loss replaces (found when traced)
        self.carried: list[Any] | None = None  # their shapes after the last step
        # (module __dict__, attribute) of each parameter when every one sits in exactly one
        # plain attribute: the per-epoch loop reads and writes them without indirection
        single = all(len(p.slots) == 1 and p.slots[0].name is not None for p in entries)
        self.direct = (
            [(p.slots[0].owner.__dict__, p.slots[0].name) for p in entries] if single else None
        )
        self.empty = not entries
        # the parameters travel packed, one buffer per dtype (``hold``/``settle``)
        owners = list({id(s.owner): s.owner for p in entries for s in p.slots}.values())
        self.tv_packer = _packable(entries, self.direct, owners)
        self.owner_dicts = [o.__dict__ for o in owners]
        self.packed: list[Any] = []  # the packed parameters of the last call
        self.views: list[Any] | None = None  # the arrays they were packed from, or unpacked to
        self.orders: list[list[str]] = []  # each owner's attribute order while held
        self.unpack: Any = None  # the compiled unpacking, once read back a first time
        self.need_t = any(r.has_schedule() for r in rules)
        self.tolerant = any(skips_nonfinite(r) for r in rules)
        self.packer: Packer | None = None
        self.grouping: Grouping | None = None  # which arrays update as one (groups)
        self.bufs: list[Any] = []
        self.halt: Any = None  # the last call's status vector: its failure flag (program)
        self.pending: deque[Any] = deque()  # unread calls: (status, first step, steps, again)
        self.keeping = 0  # how many of them keep their inputs (``again``)
        self.owned = False
        self.steps_done = 0
        self.t0 = 0
        self.signature: Any = None
        self.signatures: list[Any] = []
        self.last_batch: Any = None  # the last batch seen, held weakly (sources.held)
        self.eta = first_eta(rules[0]) if rules else None
        # what a callback's StepContext gets: the number, or the schedule's value now
        self.callback_eta: Any = (
            self.eta if self.eta is not None or not self.need_t else self.scheduled_eta
        )
        self.warned_captured = False
        self.depends_checked = False  # whether the loss was checked to read the arrays
        self.traced: Any = None  # (a batch, the shapes of `others` after a step on it)
        self.eager = False
        # the form of this plan's one program ("loop" or "step"), fixed by its first call
        # (policy.form), and why; ``fuse=`` forces it before then
        self.form: str | None = None
        self.why = ""
        self.donate = _should_donate(entries)
        self.placement: Any = None  # a distributed.Placement when training on several devices
        self.programs: dict[Any, Any] = {}  # (layout, static sizes) -> the jitted program
        self.aux: Any = None  # the last call's (status, gradients), on the device
        self.keep_grads = False  # a callback asked for the gradients (fx.every(grads=True))
        self.etas: Any = None  # the rules' learning rates the program reads (hyper)
        self.eta_values: Any = None  # the same, on the host
        hyper.put(self)

    def describe(self) -> str:
        """What ``fx.explain`` prints: the arrays, the rules, the program's form and why."""
        rules = ", ".join(sorted({repr(r) for r in self.rules})) or "none"
        progs = ", ".join(str(k[0]) + (f"{k[1:]}" if k[1:] else "") for k in self.programs)
        form = (
            "not chosen yet (no compiled step)"
            if self.form is None
            else f"form {self.form!r}: {self.why}"
        )
        passed = (
            f"packed, {len(self.tv_packer.dtypes)} buffer(s), held between calls"
            if self.packs()
            else "one by one"
        )
        return (
            f"Plan: {len(self.entries)} trainable arrays, {len(self.others)} other arrays, "
            f"rule {rules}\n"
            f"  program: {form}\n"
            f"  parameters passed: {passed}\n"
            f"  data layouts compiled: {progs or 'none'}\n"
            f"  steps taken while it held the optimiser state: {self.steps_done}"
        )

    def __repr__(self) -> str:
        return self.describe()

    def stale(self) -> bool:
        """True when a module this plan was built from has changed its structure."""
        now = STRUCTURE_CLOCK.now
        if now == self.clock:  # no module anywhere changed structure since the last look
            return False
        if any(d.get("_fx_version", 0) != v for d, v in self.watch):
            return True
        self.clock = now
        return False

    # -- who holds the live optimiser state -------------------------------------------
    def _records(self) -> list[Any]:
        """Each array's state record: a ``Record`` (implicit) or a ``Leaf`` (explicit),
        both with ``state`` and ``t``."""
        if isinstance(self.source, Rule):
            return implicit_state(self.source, self.entries)
        return list(self.source)

    def acquire(self) -> None:
        """Pack the optimiser state from its owners into this plan's buffers."""
        trees = [[r.state, r.t] for r in self._records()]
        self.t0 = (
            int(trees[0][1]) if self.need_t and trees else 0
        )  # updates already made (schedules)
        # small arrays sharing an elementwise rule update as one (the state decides which)
        self.grouping = Grouping(self.rules, [p.get() for p in self.entries], trees)
        merged = self.grouping.merge(trees)
        self.packer = Packer(merged)
        self.bufs = self.packer.host_pack(merged) if merged else []
        self.halt = program.fresh_status()
        self.pending, self.keeping = deque(), 0
        self.steps_done = 0
        self.owned = True
        if isinstance(self.source, Rule):
            self.source._implicit_store().owner = self
        else:
            for lf in self.source:
                lf.owner = self

    def reclaim(self) -> None:
        """Pack the state again if a callback read or wrote it (which gave it back to its
        owners), keeping this call's step count and failure flag."""
        if self.owned:
            return
        kept = (self.steps_done, self.pending, self.keeping, self.halt, self.t0)
        self.acquire()
        self.steps_done, self.pending, self.keeping, self.halt, self.t0 = kept

    def flush(self) -> None:
        """Unpack the live state back to the rule's store or the Leafs; give up ownership."""
        if not self.owned:
            return
        self.owned = False
        trees = self.grouping.split(self.packer.host_unpack(self.bufs))
        if isinstance(self.source, Rule):
            store = self.source._implicit_store()
            store.owner = None
            for p, (s, t) in zip(self.entries, trees):
                rec = store.records[p.key()]
                rec.state, rec.t = s, t
        else:
            for lf, (s, t) in zip(self.source, trees):
                lf.owner = None
                lf._state, lf._t = s, t

    def owns_state(self) -> bool:
        if not self.owned:
            return False
        if isinstance(self.source, Rule):
            return self.source._implicit_store().owner is self
        return all(lf.owner is self for lf in self.source)

    @staticmethod
    def read_grad_norm(aux: Any) -> float:
        """The gradient norm of a call's last step, from its ``aux`` (``finish``)."""
        return program.read_grad_norm(aux[0])

    def scheduled_eta(self) -> float | None:
        """The learning rate now, when it is a schedule: evaluated at the update count of
        the first parameter (all parameters advance together in ``train``)."""
        for r in (self.rules[0], *self.rules[0].children()):
            v = getattr(r, "eta", None)
            if callable(v):
                return float(v(self.t0 + self.steps_done))
        return None

    # -- the compiled program -------------------------------------------------------------
    def program(self, layout: str, *static: Any) -> Any:
        """The jitted program of this plan for a data ``layout`` and its static sizes (one
        traced function; JAX compiles it once per shape of its arguments)."""
        key = (layout, *static)
        fn = self.programs.get(key)
        if fn is None:
            impl = program.build(self, self.form or "loop", layout, static)
            fn = jax.jit(wrap(self.placement, impl), donate_argnums=self.donate)
            self.programs[key] = fn
        return fn

    def choose_form(self, fuse: bool | None, batch: Any) -> None:
        """Fix this plan's program form on its first compiled call (``policy.form``); a
        later ``fuse=`` that asks for the other form switches it (a new program)."""
        if self.form is None:
            self.form, self.why = policy.form(self, fuse, batch)
        elif fuse is not None and self.form != ("loop" if fuse else "step"):
            self.form, self.why = policy.form(self, fuse, batch)
            self.programs = {}

    def carry_stable(self) -> bool:
        """Whether the arrays a step replaces (layer state) now have the shapes a step
        leaves them with (so a fused loop can carry them); False before any step."""
        if self.carried is None:
            return not self.others  # nothing carried: any loop is fine
        return all(np.shape(self.others[i].get()) == s for i, s in zip(self.changed, self.carried))

    def packs(self) -> bool:
        """Whether the parameters cross this plan's compiled calls packed (``hold``)."""
        return self.tv_packer is not None and self.placement is None

    def inputs(self) -> tuple[list[Any], list[Any]]:
        """The program's parameters (packed, when ``packs``) and other arrays."""
        fast = self.direct
        if self.packs():
            tv = self._packed_now()
        else:
            LIVE.settle()
            tv = [d[n] for d, n in fast] if fast else [p.get() for p in self.entries]
        return tv, [p.get() for p in self.others]

    def _packed_now(self) -> list[Any]:
        """The parameters packed: the last call's buffers while they are held, or while
        the model holds the very arrays they were unpacked to; else packed again (through
        host memory: the model's arrays were assigned or changed)."""
        if LIVE.plan is self:
            return self.packed
        LIVE.settle()
        now = [d[n] for d, n in self.direct]
        views = self.views
        if views is None or any(a is not b for a, b in zip(now, views)):
            self.packed = self.tv_packer.host_pack(now)
            self.views = now
        return self.packed

    def hold(self, packed: list[Any]) -> None:
        """Keep a call's packed parameters as the model's: their attributes leave the
        modules' ``__dict__`` until read, when ``settle`` unpacks them (``Module``'s
        attribute look-up, walks and slots call it), so a call writes no attribute."""
        self.packed = packed
        if LIVE.plan is self:
            return
        LIVE.settle()
        self.orders = [list(d) for d in self.owner_dicts]
        for d, n in self.direct:
            del d[n]
        for d in self.owner_dicts:
            d[PACKED] = self
        self.views = None
        LIVE.plan = self

    def settle(self) -> None:
        """Unpack the held parameters into their attributes again, in their order."""
        if LIVE.plan is not self:
            return
        LIVE.plan = None
        with jax.ensure_compile_time_eval():  # concrete arrays, even while a step traces
            if self.unpack is None:  # the first time: through host memory, compiling nothing
                arrays = self.tv_packer.host_unpack(self.packed)
                self.unpack = jax.jit(self.tv_packer.unpack)
            else:  # read back again: one compiled call (about 7 µs), no wait for the device
                arrays = self.unpack(self.packed)
        for (d, n), a in zip(self.direct, arrays):
            d[n] = a
        for d, order in zip(self.owner_dicts, self.orders):
            d.pop(PACKED, None)
            items = dict(d)
            d.clear()
            d.update({k: items[k] for k in order if k in items})
            d.update(items)
        self.views = arrays

    def layout_of(self, d: dict[str, Any]) -> dict[str, Any]:
        """An owner's ``__dict__`` ``d`` while held: its items in their order, ``HELD`` for
        each held array (``tree.layout``)."""
        order = next(o for dd, o in zip(self.owner_dicts, self.orders) if dd is d)
        held = {n for dd, n in self.direct if dd is d}
        out = {k: d[k] if k in d else HELD for k in order if k in d or k in held}
        out.update(d)
        return out

    def finish(self, out: tuple[Any, ...], n_steps: int, again: Any = None) -> Any:
        """Write back what a compiled call returned; returns its status (``program``).
        ``again(k, halt)``, for a call of several steps, runs the call's first ``k`` steps
        again from its inputs (``check``)."""
        status = self._write(out)
        self.pending.append((status, self.steps_done, n_steps, again))
        self.keeping += again is not None
        self.steps_done += n_steps
        return status

    def _write(self, out: tuple[Any, ...]) -> Any:
        new_tv, changed, self.bufs, status, grads = out
        self.halt = status
        self.aux = (status, grads)  # read by a callback's StepContext (grad_norm, grads)
        if self.packs():
            self.hold(new_tv)
        elif self.direct:
            for (d, n), v in zip(self.direct, new_tv):
                d[n] = v
        else:
            for p, v in zip(self.entries, new_tv):
                p.set(v)
        for i, v in zip(self.changed, changed):
            self.others[i].set(v)
        self.carried = [np.shape(v) for v in changed]  # what a step leaves them as
        return status

    def check(self, block: bool, call_start: int) -> None:
        """Raise if a step failed; a failed step and the later ones were not applied.

        Failures are sticky in ``halt``, so reading a newer one covers the older ones.
        ``block`` reads the newest (waiting for the device). Otherwise, so as not to stall
        the per-epoch loop, it reads once every ``LAG`` calls the newest finished ``halt``
        (waiting only for the oldest), so a failure surfaces at most ``LAG`` calls late —
        at once in a call of several steps, or with ``compile=False``.

        A loop's call in which a step failed returns its inputs (``program``); a call of
        several steps keeps them (``again``) until its status is read, and the steps
        before the failed one run again from them, so the model holds what it held before
        that step. So that at most one call keeps its inputs, the next call's check reads
        the status of one that does.
        """
        q = self.pending
        if not q:
            return
        seen: list[Any] = []
        if block:
            seen, h = list(q), q[-1][0]
            q.clear()
            self.keeping = 0
        elif self.keeping > (q[-1][3] is not None):  # an older call keeps its inputs
            while self.keeping > (q[-1][3] is not None):
                seen.append(e := q.popleft())
                self.keeping -= e[3] is not None
            h = seen[-1][0]
        elif len(q) >= LAG:  # read once every LAG calls: the newest one that is finished
            seen.append(q.popleft())
            while q and q[0][0].is_ready():
                seen.append(q.popleft())
            self.keeping -= sum(e[3] is not None for e in seen)
            h = seen[-1][0]
        else:
            return
        _, at, reason = program.read_halt(h)
        if at:
            self._rewind([*seen, *q], at)
            q.clear()  # later halts carry the same sticky failure: report it once
            self.keeping = 0
            self.halt = program.fresh_status()
            start, self.steps_done = call_start, 0
            raise failure(self, at - start, reason)

    def _rewind(self, calls: list[Any], at: int) -> None:
        """Run again, from its inputs, the steps before step ``at`` of the call that
        failed there, when that call kept its inputs (a call of one step returned them)."""
        for _, first, n, again in calls:
            if first < at <= first + n and again is not None:
                halt = np.zeros((program.STATUS,), np.int32)
                halt[program.HALT] = first
                self._write(again(at - 1 - first, jax.device_put(halt)))
                return


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
