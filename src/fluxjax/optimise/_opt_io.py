"""Optimiser state to and from a checkpoint (used by ``fluxjax.io``).

Both modes are stored per model array name (``layers.0.weight``), so a file can only be
loaded into the same architecture: implicit mode (the state a rule keeps for
``fx.params(model)``, read with ``implicit_state``) and explicit mode (the ``Leaf`` tree from
``fx.setup``: state, update count ``t``, ``frozen``, and each leaf's rule). Tensors are named
``opt/<array>/<i>`` (the i-th leaf of the state pytree) and ``opt/<array>/t``; the rules'
hyperparameters go into the JSON metadata and are restored on load.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._files import CheckpointError
from ..autodiff import Params
from ..module import Slot
from .base import Rule, bump_version, is_schedule, rules_in
from .state import Leaf, OptimiserState, implicit_state


# -- rules as JSON -------------------------------------------------------------------------
def rule_meta(rule: Rule) -> dict[str, Any]:
    """A rule's type and hyperparameters as JSON (schedules and objects by their repr)."""
    return {"type": type(rule).__name__, "hyper": {k: _hv(v) for k, v in _hyper(rule).items()}}


def _hyper(rule: Rule) -> dict[str, Any]:
    return rule.hyperparameters()


def _hv(v: Any) -> Any:
    if isinstance(v, Rule):
        return rule_meta(v)
    if rules_in(v):
        return {"rules": [_hv(r) for r in v]}
    if is_schedule(v):
        return {"schedule": repr(v)}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple) and all(isinstance(x, int | float) for x in v):
        return list(v)
    return {"object": repr(v)}


def _types(m: Any) -> Any:
    if isinstance(m, dict) and "type" in m and "hyper" in m:
        return (m["type"], tuple((k, _types(v)) for k, v in m["hyper"].items()))
    if isinstance(m, dict) and "rules" in m:
        return tuple(_types(r) for r in m["rules"])
    return None


def _restore(rule: Rule, saved: dict[str, Any], in_place: bool) -> Rule:
    """``rule`` with the plain hyperparameters of ``saved`` (a copy unless ``in_place``)."""
    new = rule if in_place else copy.copy(rule)
    changed = False
    for k, v in saved["hyper"].items():
        cur = getattr(rule, k)
        if isinstance(cur, Rule):
            sub = _restore(cur, v, in_place)
        elif rules_in(cur):
            subs = [_restore(r, s, in_place) for r, s in zip(cur, v["rules"])]
            sub = type(cur)(subs)
        elif isinstance(v, dict) or is_schedule(cur):
            continue  # a schedule or an object: code, not saved; the one given is kept
        else:
            sub = tuple(v) if isinstance(cur, tuple) and isinstance(v, list) else v
        if sub is not cur and sub != cur:
            if not changed and not in_place:
                new.__dict__ = {a: b for a, b in rule.__dict__.items() if not a.startswith("_fx_")}
            changed = True
            setattr(new, k, sub)
    return new if changed else rule


# -- naming the state ------------------------------------------------------------------------
def _leaf_names(tree: Any, prefix: str = "") -> Iterator[tuple[str, Leaf]]:
    dot = f"{prefix}." if prefix else ""
    if isinstance(tree, Leaf):
        yield prefix, tree
    elif isinstance(tree, OptimiserState):
        for k, v in tree._children.items():
            yield from _leaf_names(v, dot + k)
    elif type(tree) in (list, tuple):
        for i, v in enumerate(tree):
            yield from _leaf_names(v, f"{prefix}.{i}")
    elif type(tree) is dict:
        for k, v in tree.items():
            yield from _leaf_names(v, f"{prefix}.{k}")


def _explicit_leaves(tree: OptimiserState) -> dict[str, Leaf]:
    out: dict[str, Leaf] = {}
    seen: set[int] = set()
    for name, leaf in _leaf_names(tree):
        if id(leaf) not in seen:
            seen.add(id(leaf))
            out[name] = leaf
    return out


def _implicit_records(opt: Rule, model: Any, slots: dict[str, Slot]) -> dict[str, Any]:
    names = {s.key(): k for k, s in reversed(list(slots.items()))}
    entries = Params().add(model).entries
    recs = implicit_state(opt, entries)
    return {names[p.key()]: r for p, r in zip(entries, recs)}


def _put(tensors: dict[str, Any], name: str, st: Any, t: Any) -> int:
    leaves = jax.tree_util.tree_leaves(st)
    for j, a in enumerate(leaves):
        tensors[f"opt/{name}/{j}"] = np.asarray(a)  # a view: fx.save copies where it must
    if t is not None:
        tensors[f"opt/{name}/t"] = np.asarray(t)
    return len(leaves)


# -- save ----------------------------------------------------------------------------------
def save_opt(opt: Any, model: Any, slots: dict[str, Slot], tensors: dict[str, Any]) -> Any:
    """Put the optimiser state into ``tensors``; return its JSON description."""
    if isinstance(opt, Rule):
        recs = _implicit_records(opt, model, slots)
        n = {k: _put(tensors, k, r.state, r.t) for k, r in recs.items()}
        return {"mode": "implicit", "rule": rule_meta(opt), "arrays": n}
    if isinstance(opt, OptimiserState):
        leaves = {}
        for k, lf in _explicit_leaves(opt).items():
            n = _put(tensors, k, lf.state, lf.t)
            leaves[k] = {"rule": rule_meta(lf.rule), "frozen": bool(lf.frozen), "n": n}
        return {"mode": "explicit", "leaves": leaves}
    raise TypeError(
        "save: opt must be the optimiser rule (implicit mode, e.g. fx.Adam()) or the state from "
        f"fx.setup(rule, model), got {type(opt).__name__}."
    )


# -- load ----------------------------------------------------------------------------------
def _fill(
    path: str, name: str, template: Any, t_now: Any, tensors: dict[str, Any], problems: list[str]
) -> tuple[Any, Any]:
    """The saved state for ``name`` in the structure of ``template`` (and its ``t``)."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    new = []
    for j, a in enumerate(leaves):
        saved = tensors.get(f"opt/{name}/{j}")
        if saved is None:
            problems.append(f"{name}: optimiser state part {j} missing from the file")
            continue
        if saved.shape != tuple(a.shape) or saved.dtype.kind != np.dtype(a.dtype).kind:
            problems.append(
                f"{name}: optimiser state part {j} is {saved.dtype}{list(saved.shape)} in the "
                f"file vs {a.dtype}{list(a.shape)} here"
            )
            continue
        new.append(jnp.asarray(saved, dtype=a.dtype))
    if f"opt/{name}/{len(leaves)}" in tensors:
        problems.append(f"{name}: the file has more optimiser state parts (another rule?)")
    t = tensors.get(f"opt/{name}/t")
    t = None if t_now is None else jnp.asarray(t if t is not None else 0, jnp.int32)
    if len(new) != len(leaves):
        return template, t
    return jax.tree_util.tree_unflatten(treedef, new), t


def _check_names(path: str, saved: Any, here: Any, problems: list[str]) -> None:
    problems += [f"optimiser state missing for {k}" for k in here if k not in saved]
    problems += [f"unexpected optimiser state for {k}" for k in saved if k not in here]


def _fail(path: str, problems: list[str]) -> None:
    shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
    raise CheckpointError(
        f"{path}: the saved optimiser state does not fit this optimiser:\n  "
        + "\n  ".join(shown)
        + "\nPass the same kind of optimiser as the saved run (rule and fx.setup or not)."
    )


def load_opt(
    path: str, meta: Any, tensors: dict[str, Any], opt: Any, model: Any, slots: dict[str, Slot]
) -> Callable[[], None]:
    """Check the saved optimiser state against ``opt``; return a function that applies it."""
    if meta is None:
        raise CheckpointError(
            f"{path} holds no optimiser state (it was saved without opt); load it without opt, "
            "or save with fx.save(path, model, opt)."
        )
    if isinstance(opt, Rule):
        return _load_implicit(path, meta, tensors, opt, model, slots)
    if isinstance(opt, OptimiserState):
        return _load_explicit(path, meta, tensors, opt)
    raise TypeError(
        "load: opt must be the optimiser rule (implicit mode) or the state from fx.setup, got "
        f"{type(opt).__name__}."
    )


def _mode(path: str, meta: Any, want: str) -> None:
    if meta.get("mode") != want:
        other = {
            "implicit": "a rule such as fx.Adam() (implicit mode)",
            "explicit": "the tree from fx.setup(rule, model) (explicit mode)",
        }
        raise CheckpointError(
            f"{path} holds the optimiser state of {other[meta.get('mode')]}, but you passed "
            f"{other[want]}; pass the same kind of optimiser as the saved run."
        )


def _same_rule(path: str, saved: Any, rule: Rule, where: str, problems: list[str]) -> None:
    if _types(saved) != _types(rule_meta(rule)):
        problems.append(f"{where}: the file's rule is {saved['type']}(...), here {rule!r}")


def _load_implicit(
    path: str, meta: Any, tensors: Any, opt: Rule, model: Any, slots: dict[str, Slot]
) -> Callable[[], None]:
    _mode(path, meta, "implicit")
    problems: list[str] = []
    _same_rule(path, meta["rule"], opt, "the rule", problems)
    recs = _implicit_records(opt, model, slots)
    _check_names(path, meta["arrays"], recs, problems)
    if problems:
        _fail(path, problems)
    new = _states(path, recs, tensors, problems)

    def apply() -> None:
        for k, r in recs.items():
            r.state, r.t = new[k]
        _restore(opt, meta["rule"], in_place=True)

    return apply


def _states(path: str, holders: dict[str, Any], tensors: Any, problems: list[str]) -> Any:
    """The saved ``(state, t)`` of every holder (a ``Record`` or a ``Leaf``, by name),
    checked against the live one; raises listing every problem found."""
    new = {k: _fill(path, k, h.state, h.t, tensors, problems) for k, h in holders.items()}
    if problems:
        _fail(path, problems)
    return new


def _load_explicit(path: str, meta: Any, tensors: Any, tree: Any) -> Callable[[], None]:
    _mode(path, meta, "explicit")
    problems: list[str] = []
    leaves = _explicit_leaves(tree)
    saved = meta["leaves"]
    _check_names(path, saved, leaves, problems)
    if problems:
        _fail(path, problems)
    for k, lf in leaves.items():
        _same_rule(path, saved[k]["rule"], lf.rule, k, problems)
    new = _states(path, leaves, tensors, problems)

    def apply() -> None:
        for k, lf in leaves.items():
            lf.state, lf.t = new[k]
            lf.frozen = bool(saved[k]["frozen"])
            lf.rule = _restore(lf.rule, saved[k]["rule"], in_place=False)
        bump_version()  # compiled steps built for the old frozen set or rules are stale

    return apply
