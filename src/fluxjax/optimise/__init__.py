"""Optimisers: rules (one small class each), schedules, and the update interface.

``fx.rules()`` (the listing) is exported at the top level only, so that
``fluxjax.optimise.rules`` stays the module of rule classes.
"""

from . import rules as _rules_module
from .base import Rule, check
from .interface import Leaf, OptimiserState, adjust, freeze, setup, thaw, update
from .listing import RuleInfo, rules_table
from .rules import *  # noqa: F403
from .schedules import *  # noqa: F403
from .schedules import __all__ as _schedules

__all__ = [
    "Rule",
    "check",
    "Leaf",
    "OptimiserState",
    "adjust",
    "freeze",
    "setup",
    "thaw",
    "update",
    "RuleInfo",
    "rules_table",
    *_rules_module.__all__,
    *_schedules,
]
