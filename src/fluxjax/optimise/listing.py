"""The list of optimiser rules: what Flux's ``methods(Flux.Optimise.apply!)`` showed.

>>> [r.name for r in rules()][:3]
['Descent', 'Momentum', 'Nesterov']
>>> adam = next(r for r in rules() if r.name == "Adam")
>>> adam.signature, adam.aliases
('Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-08)', ('ADAM',))
>>> adam.formula
'm ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; d = η·m̂/(√v̂ + ϵ)'
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from .base import Rule

# By module path: the package re-exports the function ``rules`` below under the same name.
_rules = importlib.import_module(f"{__package__}.rules")

__all__ = ["RuleInfo", "rules", "rules_table"]


@dataclass(frozen=True)
class RuleInfo:
    """One optimiser rule: its name, constructor with defaults, update formula and aliases.

    >>> import fluxjax as fx
    >>> info = next(r for r in fx.rules() if r.name == "Adam")
    >>> info.signature, info.aliases
    ('Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-08)', ('ADAM',))
    """

    name: str
    signature: str
    formula: str
    aliases: tuple[str, ...] = ()


def _signature(cls: type) -> str:
    params = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in inspect.signature(cls).parameters.values()
        if p.name != "centered"  # RMSProp's alternative spelling of centred
    ]
    return f"{cls.__name__}{inspect.Signature(params)}"


def rules() -> list[RuleInfo]:
    """Every rule class of :mod:`fluxjax.optimise.rules`, in the order of its ``__all__``:
    the analogue of Flux's ``methods(Flux.Optimise.apply!)``.

    >>> import fluxjax as fx
    >>> [r.name for r in fx.rules()][:3]
    ['Descent', 'Momentum', 'Nesterov']
    """
    out: dict[type, RuleInfo] = {}
    for name in _rules.__all__:
        cls = getattr(_rules, name)
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            continue
        if cls in out:
            info = out[cls]
            out[cls] = RuleInfo(info.name, info.signature, info.formula, (*info.aliases, name))
        else:
            out[cls] = RuleInfo(name, _signature(cls), cls.formula, ())
    return list(out.values())


def rules_table() -> str:
    """The rules as an aligned text table: constructor, aliases and update formula.

    Every rule returns a step ``d`` and the parameter becomes ``x − d``.

    >>> print(rules_table().splitlines()[0])
    rule...aliases...update (x ← x − d)
    >>> "ClipValue" in rules_table()
    True
    """
    rows = [("rule", "aliases", "update (x ← x − d)")]
    rows += [(r.signature, ", ".join(r.aliases), r.formula) for r in rules()]
    w0, w1 = (max(len(row[i]) for row in rows) for i in (0, 1))
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows)
