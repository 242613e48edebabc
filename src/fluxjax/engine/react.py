"""What a run does around its callbacks so that their wishes and changes take effect at
the next step (internal).

* ``before``: a callback that reads the step's gradients (``fx.every(n, f, grads=True)``)
  makes the plan's program keep the last step's gradients; the plan keeps that program
  from then on, so later runs do not switch programs back.
* ``after``: a callback that changed a rule's hyperparameters (``opt.eta = ...``,
  ``fx.adjust(state, ...)``, ``fx.reduce_on_plateau``) has the plan take the rules as they
  are now and compile its program with them, so the change applies from the next step, in
  a fused run and a step-by-step one alike (hyperparameters are constants of the program).
  Changes to the model's arrays need nothing: every call reads them from the model.
* ``replan``: a callback that changed what is trained (``ps.add``/``ps.remove``,
  ``fx.freeze``, a rule of another kind) has the run continue with the plan for that now:
  the old plan gives its optimiser state back, the new one packs it (new arrays get fresh
  state), from the next step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..optimise.base import Rule, rule_version
from ..optimise.lossscale import has_loss_scale
from . import hyper
from .plan import first_eta


def before(plan: Any, sched: Any) -> None:
    """Prepare ``plan`` for this run's callbacks (before its first step)."""
    if getattr(sched, "wants_grads", False) and not plan.keep_grads:
        plan.keep_grads = True
        plan.programs.clear()


def live_rules(plan: Any) -> list[Rule]:
    """The rules as the user's objects hold them now: explicit mode's Leafs may hold new
    rule objects (``fx.adjust`` replaces them); implicit mode's rules change in place."""
    if isinstance(plan.source, Rule):
        return list(plan.rules)
    return [lf.rule for lf in plan.source]


def after(plan: Any) -> bool:
    """Take changed hyperparameters into ``plan`` (after callbacks ran); True when they
    changed. A change of a rule's kind, or between a number and a schedule, is left to the
    next ``train`` call (which builds a new plan)."""
    if plan.rules_version == rule_version():
        return False
    rules = live_rules(plan)
    same_kind = all(
        type(a) is type(b) and a.has_schedule() == b.has_schedule()
        for a, b in zip(rules, plan.rules)
    )
    if not same_kind:
        return False  # the next call's cache look-up sees the change and builds a plan
    plan.rules_version = rule_version()
    return take_rules(plan, rules)


def take_rules(plan: Any, rules: list[Rule]) -> bool:
    """Make ``rules`` (the same kinds as ``plan.rules``, their values perhaps changed)
    ``plan``'s rules; True when anything changed. A new learning rate is a new number for
    the same program (``hyper``); any other change compiles the program again."""
    key = hyper.key(rules)
    if key != plan.rkey:
        plan.rkey = key
        plan.programs.clear()  # compiled with the old values
    elif np.array_equal(hyper.values(rules), plan.eta_values) and all(
        a is b for a, b in zip(rules, plan.rules)
    ):
        return False
    plan.rules = rules
    hyper.put(plan)
    plan.eta = first_eta(rules[0]) if rules else None
    if plan.eta is not None or not plan.need_t:
        plan.callback_eta = plan.eta
    return True


def replan(run: Any, find: Any) -> None:
    """Switch ``run`` to the plan ``find`` gives for its (loss, target, opt) as they are
    now, if that is another plan (after callbacks ran)."""
    if run.args is None or run.plan.placement is not None:
        return
    new = find(*run.args)
    if new is run.plan:
        return
    run.plan.flush()
    if not new.owns_state():
        new.acquire()
    before(new, run.sched)
    run.plan, run.eta = new, new.callback_eta
    run.call_start = new.steps_done - run.done


PRECISIONS = (None, "float32", "bfloat16", "float16")


def set_precision(plan: Any, precision: str | None) -> None:
    """Compute ``plan``'s steps in ``precision`` (``"bfloat16"``/``"float16"``: parameters,
    float32 batch arrays and the loss computed in that dtype; the master weights, their
    gradients and the optimiser state stay float32); a change compiles the program again.
    float16 needs a ``LossScale`` in the rule (its range underflows small gradients)."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"train: precision must be None, 'float32', 'bfloat16' or 'float16', got {precision!r}."
        )
    if precision == "float16" and not any(has_loss_scale(r) for r in plan.rules):
        raise ValueError(
            "train: precision='float16' needs dynamic loss scaling (float16 gradients "
            "underflow): put fx.LossScale() first in the rule, e.g. "
            "fx.OptimiserChain(fx.LossScale(), fx.Adam()); or use precision='bfloat16', "
            "which has float32's range and needs none."
        )
    precision = None if precision == "float32" else precision
    if getattr(plan, "precision", None) != precision:
        plan.precision = precision
        plan.programs.clear()
