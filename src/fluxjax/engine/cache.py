"""Finding the plan of a ``train`` call (internal).

The plan of (loss, target, optimiser) is built once and kept by the modules it trains,
found through a bounded weak index (``PlanCache``) keyed by the loss's code and the
identities of what its closure holds (so a ``lambda`` re-created each epoch maps to the
same plan), the parameters and the optimiser. A plan is rebuilt when a module it was built
from changes structure, or a rule's hyperparameters change.

The tutorial's loop calls ``train`` once per epoch with the same objects: that case is one
identity comparison per argument and a version check (``find``'s first branch).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import checks
from ..module import Module
from ..optimise.base import Rule, rule_version
from ..optimise.optax import as_rule
from ..optimise.state import Leaf, OptimiserState, triples
from ..params import Param, Params
from ..tree import PLANS as PLANS_KEY
from . import hyper
from .plan import Plan, dead
from .react import live_rules, take_rules
from .scope import filled, loss_key

MAX_PLANS = 64


def weak(x: Any) -> Any:
    """A weak reference to ``x`` where it allows one (a function, a model, a rule)."""
    try:
        return weakref.ref(x)
    except TypeError:
        return lambda: x


class PlanCache:
    """The training plans, by key (``_build``), held by the modules they train.

    A plan holds its model (the slots of its arrays, the loss), so a cache holding plans
    would hold every model trained in the process. Instead each plan is kept in the
    ``__dict__`` of the modules whose arrays it trains (``PLANS_KEY``; walks, copies and
    pickles leave it out), and this index refers to it weakly: a model no longer used
    elsewhere is freed with its plans and their compiled programs. The index holds at most
    ``MAX_PLANS`` plans; the oldest gives its optimiser state back and leaves its modules.
    Keys hold identities (``id``) only of objects the plan holds, so a key cannot be
    reused by a new object while its plan lives.
    """

    def __init__(self) -> None:
        self.index: OrderedDict[Any, Any] = OrderedDict()  # key -> weakref to its plan
        self.loose: dict[Any, Plan] = {}  # plans no module holds (a loss seeing none)

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: Any) -> Plan | None:
        ref = self.index.get(key)
        return None if ref is None else ref()

    def plans(self) -> list[Plan]:
        refs = list(self.index.values())  # (a collection may drop entries meanwhile)
        return [p for p in (r() for r in refs) if p is not None]

    def put(self, key: Any, plan: Plan) -> None:
        """Keep ``plan`` under ``key`` (where no plan is)."""
        holders = plan.holders
        for m in holders:
            m.__dict__.setdefault(PLANS_KEY, {})[key] = plan
        if not holders:
            self.loose[key] = plan
        self.index[key] = weakref.ref(plan, lambda r, key=key: self._gone(key, r))
        while len(self.index) > MAX_PLANS:
            self.drop(next(iter(self.index)))

    def drop(self, key: Any) -> None:
        """Forget the plan under ``key``: it gives the optimiser state back and leaves the
        modules that held it."""
        ref = self.index.pop(key, None)
        plan = None if ref is None else ref()
        self.loose.pop(key, None)
        if plan is None:
            return
        plan.flush()
        for m in plan.holders:
            held = m.__dict__.get(PLANS_KEY)
            if held is not None and held.get(key) is plan:
                del held[key]

    def _gone(self, key: Any, ref: Any) -> None:
        if self.index.get(key) is ref:  # (not a newer plan under the same key)
            del self.index[key]

    def clear(self) -> None:
        for key in list(self.index):
            self.drop(key)


PLANS = PlanCache()


class LastCall:
    """The (loss, target, optimiser) of the last ``train`` call and its plan, all held
    weakly: the tutorial's loop calls ``train`` once per epoch with the same objects, which
    is then one identity comparison per argument and a version check."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.refs: tuple[Any, ...] = ()
        self.versions: Any = None
        self.ref: Any = dead

    @property
    def plan(self) -> Plan | None:
        return self.ref()

    def same(self, loss: Any, target: Any, opt: Any) -> bool:
        """Whether these are the last call's objects, nothing about them changed."""
        refs = self.refs
        return (
            bool(refs)
            and refs[0]() is loss
            and refs[1]() is target
            and refs[2]() is opt
            and _versions(loss, target) == self.versions
            and (plan := self.ref()) is not None
            and not plan.stale()
        )

    def set(self, loss: Any, target: Any, opt: Any, plan: Plan) -> None:
        self.refs = (weak(loss), weak(target), weak(opt))
        self.versions, self.ref = _versions(loss, target), weakref.ref(plan)


LAST = LastCall()


def _explicit_leaves(state: OptimiserState, model: Module) -> list[tuple[Leaf, list[Any]]]:
    pairs: dict[int, tuple[Leaf, list[Any]]] = {}
    for leaf, slot, _ in triples(state, model, None):
        pairs.setdefault(id(leaf), (leaf, []))[1].append(slot)
    return [(lf, sl) for lf, sl in pairs.values() if not lf.frozen]


def _build(loss: Any, target: Any, opt: Any) -> tuple[Any, Callable[[], Plan]]:
    """The cache key of (loss, target, opt) and a function that builds its plan."""
    lk = loss_key(loss)
    if isinstance(target, Params):
        if not isinstance(opt, Rule):
            raise TypeError(
                "train(loss, ps, data, opt): with Params, opt must be a rule such as "
                f"fx.Adam(), got {type(opt).__name__}. For explicit mode pass the model and "
                "fx.setup(rule, model)."
            )
        key = ("implicit", lk, target.key(), id(opt))
        return key, lambda: Plan(
            loss, None, list(target.entries), [opt] * len(target), opt, list(target.roots)
        )
    if isinstance(target, Module):
        if isinstance(opt, Rule):

            def make() -> Plan:
                entries = Params().add(target).entries
                return Plan(loss, target, entries, [opt] * len(entries), opt, [target])

            return ("explicit-rule", lk, id(target), id(opt)), make
        if isinstance(opt, OptimiserState):
            live = _explicit_leaves(opt, target)
            key = ("explicit", lk, id(target), id(opt), tuple(id(lf) for lf, _ in live))
            return key, lambda: Plan(
                loss,
                target,
                [Param(sl) for _, sl in live],
                [lf.rule for lf, _ in live],
                [lf for lf, _ in live],
                [target],
            )
        raise TypeError(
            "train(loss, model, data, state): state must come from fx.setup(rule, model) "
            f"(or be a rule such as fx.Adam()), got {type(opt).__name__}."
        )
    raise TypeError(
        "train: the second argument must be fx.params(model) (implicit mode, loss(x, y)) or "
        f"the model itself (explicit mode, loss(model, x, y)); got {type(target).__name__}."
    )


def _versions(loss: Any, target: Any) -> tuple[Any, ...]:
    cells = getattr(loss, "__closure__", None) or ()
    return (
        rule_version(),
        getattr(target, "version", 0),
        *(id(c.cell_contents) if filled(c) else None for c in cells),
    )


def find(loss: Any, target: Any, opt: Any) -> Plan:
    """The plan for (loss, target, opt): the same objects as last call and nothing changed
    is one comparison (the tutorial's loop); otherwise a cache look-up by content."""
    if LAST.same(loss, target, opt):
        return LAST.plan  # type: ignore[return-value]
    plan = _lookup(loss, target, opt)
    LAST.set(loss, target, opt, plan)
    return plan


def _lookup(loss: Any, target: Any, opt: Any) -> Plan:
    key, make = _build(loss, target, opt)
    plan = PLANS.get(key)
    if plan is not None and plan.stale():
        PLANS.drop(key)
        plan = None
    if plan is not None and plan.rules_version != rule_version():
        # opt.eta = ... or fx.adjust(state, ...) since it was compiled: a new learning rate
        # is a new number for the same program; another change, a new plan
        live = live_rules(plan)
        if hyper.key(live) != plan.rkey:
            PLANS.drop(key)
            plan = None
        else:
            plan.rules_version = rule_version()
            take_rules(plan, live)
    if plan is None:
        checks.check_target(target, opt)  # a state that fits the model, something to train
        plan = make()
        PLANS.put(key, plan)
    return plan


def clear_caches() -> None:
    """Drop every training plan ``train`` keeps, with its compiled programs and the data it
    stacked on the device, after giving the parameters and the optimiser state back to the
    model and the optimiser. A model let go needs none of this (its plans live in its
    modules and are freed with it); this frees the compiled programs of models still in
    use. The next ``train`` call builds and compiles its plan again; nothing else changes
    (the optimiser's moments and step counts carry on).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m, opt = fx.Dense(1, 1), fx.Adam()
    >>> loss = lambda x, y: fx.mse(m(x), y)
    >>> _ = fx.train(loss, fx.params(m), [(jnp.ones((2, 1)), jnp.ones((2, 1)))], opt)
    >>> fx.clear_caches()
    >>> print(fx.explain(loss, fx.params(m), opt))
    no plan yet: train(loss, target, data, opt) has not run with these objects
    """
    from .plan import LIVE
    from .run import REPLAY  # (run imports this module)
    from .sources import STACKS

    LIVE.settle()  # a plan holding a model's parameters packed gives them back first
    PLANS.clear()
    LAST.clear()
    REPLAY.clear()
    STACKS.clear()


def explain(loss: Callable[..., Any], target: Any, opt: Any) -> str:
    """How ``train(loss, target, data, opt)`` runs its steps: the plan's arrays and rules,
    the form of its one compiled program (a loop whose step count is a run-time argument,
    or one step per call) and why, whether the parameters cross it packed (a small model:
    one buffer per dtype, held between calls until read), the programs compiled so far
    and the steps taken.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m, opt = fx.Dense(1, 1), fx.Descent()
    >>> loss = lambda x, y: fx.mse(m(x), y)
    >>> _ = fx.train(loss, fx.params(m), [(jnp.ones((2, 1)), jnp.ones((2, 1)))], opt)
    >>> print(fx.explain(loss, fx.params(m), opt))
    Plan: 2 trainable arrays, 0 other arrays, rule Descent(eta=0.1)
      program: form 'loop': steps between callbacks in one call (0.0 MFLOP a step)
      parameters passed: packed, 1 buffer(s), held between calls
      data layouts compiled: one
      steps taken while it held the optimiser state: 1
    >>> print(fx.explain(loss, fx.params(m), fx.Descent()))  # another optimiser object
    no plan yet: train(loss, target, data, opt) has not run with these objects
    """
    opt = as_rule(opt)
    try:
        key, _ = _build(loss, target, opt)
    except TypeError as e:
        return f"no plan: {e}"
    plan = PLANS.get(key)
    if plan is None:
        return "no plan yet: train(loss, target, data, opt) has not run with these objects"
    return plan.describe()
