"""Rules by name: ``"Adam(0.01)"`` and lists of them, parsed safely (no eval)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from .. import optimise as _optimise
from ..optimise.base import Rule

# ---- rules by name ---------------------------------------------------------------------------


def _rule_classes() -> dict[str, type[Rule]]:
    """Every rule class the package exports, by name (aliases such as ADAM included)."""
    return {
        n: c
        for n, c in vars(_optimise).items()
        if isinstance(c, type) and issubclass(c, Rule) and c is not Rule and not n.startswith("_")
    }


def _rule_class(name: str) -> type[Rule]:
    names = _rule_classes()
    cls = names.get(name) or {n.lower(): c for n, c in names.items()}.get(name.lower())
    if cls is None:
        known = ", ".join(sorted(n for n, c in names.items() if n == c.__name__))
        raise ValueError(f"unknown optimiser rule {name!r}; known rules: {known}")
    return cls


def parse_rule(text: str) -> Rule:
    """A rule from its name, optionally called with literal arguments: ``"Adam"``,
    ``"adam"``, ``"Descent(0.01)"``, ``"Adam(eta=0.01, beta=(0.9, 0.99))"``.

    >>> from fluxjax import lab
    >>> lab.parse_rule("Momentum(0.001, rho=0.8)")
    Momentum(eta=0.001, rho=0.8)
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot read the rule {text!r}; write e.g. Adam or Adam(0.01)") from None
    if isinstance(node, ast.Name):
        return _rule_class(node.id)()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise ValueError(
                f"the rule {text!r} may only have literal arguments (numbers, tuples)"
            ) from None
        return _rule_class(node.func.id)(*args, **kwargs)
    raise ValueError(f"cannot read the rule {text!r}; write e.g. Adam or Adam(0.01)")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_rules(rules: str | Rule | Iterable[str | Rule]) -> list[tuple[str, Rule]]:
    """``(label, rule)`` pairs from rule objects, names, or one comma-separated string
    (``"Adam,Descent(0.01)"``). Labels are the text given, or the class name of a rule object
    (with ``eta`` added, then the full repr, where two would clash).

    >>> from fluxjax import lab
    >>> [label for label, _ in lab.parse_rules("Adam, Descent(0.01)")]
    ['Adam', 'Descent(0.01)']
    """
    if isinstance(rules, str):
        rules = _split_top(rules)
    elif isinstance(rules, Rule):
        rules = [rules]
    out: list[tuple[str, Rule]] = []
    for r in rules:
        if isinstance(r, str):
            out.append((r.strip(), parse_rule(r)))
        elif isinstance(r, Rule):
            out.append((type(r).__name__, r))
        else:
            raise TypeError(f"compare: a rule must be a rule object or a name, got {r!r}")
    if not out:
        raise ValueError("compare: give at least one rule, e.g. ['Adam', 'Momentum']")
    return _unique(out)


def _unique(pairs: list[tuple[str, Rule]]) -> list[tuple[str, Rule]]:
    def clashes(labels: list[str], i: int) -> bool:
        return labels.count(labels[i]) > 1

    labels = [label for label, _ in pairs]
    for make in (
        lambda label, r: f"{type(r).__name__}(eta={getattr(r, 'eta', '?')})",
        lambda label, r: repr(r),
    ):
        labels = [
            make(lb, r) if clashes(labels, i) and lb == type(r).__name__ else lb
            for i, (lb, (_, r)) in enumerate(zip(labels, pairs))
        ]
    seen: dict[str, int] = {}
    for i, lb in enumerate(labels):
        if labels.count(lb) > 1:
            seen[lb] = seen.get(lb, 0) + 1
            labels[i] = f"{lb} #{seen[lb]}"
    return [(lb, r) for lb, (_, r) in zip(labels, pairs)]
