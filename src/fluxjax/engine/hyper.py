"""The learning rates a plan's program reads at run time (internal).

A rule's hyperparameters are constants of the compiled program, except the learning rate
``eta`` of fluxjax's own rules: the program takes those as a vector argument, so changing
one (``opt.eta = ...`` between calls, ``fx.adjust``, a callback such as
``fx.reduce_on_plateau``) changes a number on the device instead of compiling the program
again. Every program of a plan reads them so, whatever the values, so a run's bits never
depend on whether or when a learning rate changed.

The rules are numbered as ``unique`` lists them: each rule object once, a rule before its
members, in the order of the plan's per-array rules. ``key`` identifies what the program
bakes in: the rule types, every other hyperparameter, which arrays share a rule object;
two rule lists with the same key differ at most in those learning rates.
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..optimise.base import Rule, map_rules, rules_in
from ..optimise.core import value_key

__all__ = ["unique", "runtime_eta", "key", "values", "substitute", "put"]


def unique(rules: list[Rule]) -> list[Rule]:
    """Each rule object of ``rules`` and of their members once, a rule before its members."""
    seen: dict[int, Rule] = {}

    def visit(r: Rule) -> None:
        if id(r) not in seen:
            seen[id(r)] = r
            for m in r.children():
                visit(m)

    for r in rules:
        visit(r)
    return list(seen.values())


def runtime_eta(rule: Rule) -> bool:
    """Whether the program reads ``rule.eta`` at run time: a number (not a schedule) in one
    of fluxjax's rules, whose ``apply`` uses it only as ``cast(self.eta, x)``. A rule of the
    user's keeps its ``eta`` a constant (its ``apply`` may branch on the value)."""
    v = rule.hyperparameters().get("eta")
    own = type(rule).__module__.startswith("fluxjax.")
    return own and isinstance(v, int | float) and not isinstance(v, bool)


def key(rules: list[Rule]) -> tuple[Any, ...]:
    """What the program compiled for ``rules`` depends on (see the module docstring)."""
    order = unique(rules)
    index = {id(r): i for i, r in enumerate(order)}

    def hyper(r: Rule, name: str, v: Any) -> Any:
        if name == "eta" and runtime_eta(r):
            return "run time"
        if isinstance(v, Rule):
            return ("rule", index[id(v)])
        if rules_in(v):
            return tuple(("rule", index[id(m)]) if isinstance(m, Rule) else m for m in v)
        return value_key(v)

    shapes = tuple(
        (type(r), tuple((k, hyper(r, k, v)) for k, v in r.hyperparameters().items())) for r in order
    )
    return tuple(index[id(r)] for r in rules), shapes


def values(rules: list[Rule]) -> np.ndarray:
    """The run-time learning rates of ``rules``, in ``unique`` order (float32; float64
    when JAX runs with 64-bit floats)."""
    dtype = jnp.result_type(float)
    return np.array([r.eta for r in unique(rules) if runtime_eta(r)], dtype=dtype)


def substitute(rules: list[Rule], etas: Any) -> list[Rule]:
    """Traced: copies of ``rules`` whose run-time learning rates are the entries of
    ``etas``, members replaced by their copies (the rules themselves are left alone)."""
    order = unique(rules)
    slots = [r for r in order if runtime_eta(r)]
    if not slots:
        return list(rules)
    slot = {id(r): i for i, r in enumerate(slots)}
    made: dict[int, Rule] = {}

    def copied(r: Rule) -> Rule:
        if id(r) not in made:
            new = copy.copy(r)
            for k, v in r.hyperparameters().items():
                if k == "eta" and id(r) in slot:
                    object.__setattr__(new, k, etas[slot[id(r)]])
                elif rules_in(v):
                    object.__setattr__(new, k, map_rules(v, copied))
            made[id(r)] = new
        return made[id(r)]

    return [copied(r) for r in rules]


def put(plan: Any) -> None:
    """Put ``plan``'s run-time learning rates on its devices (``plan.etas``)."""
    plan.eta_values = values(plan.rules)
    etas = jax.device_put(plan.eta_values)
    if plan.placement is not None:
        etas = plan.placement.put(etas, plan.placement.replicated)
    plan.etas = etas
