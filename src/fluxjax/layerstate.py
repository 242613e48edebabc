"""State a forward pass replaces: the running statistics, random keys and recurrent states
that layers store with ``assign_state``, and the ``recording`` that ``gradient`` and the
compiled step open around a forward pass to restore the old values and write the new ones
back once they are concrete. A core room: the layers use it; it uses no layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jax

from .module import Module

__all__ = ["recording", "assign_state"]


_JOURNALS: list[dict[tuple[int, str], tuple[Module, str, Any]]] = []


@contextlib.contextmanager
def recording() -> Iterator[dict[tuple[int, str], tuple[Module, str, Any]]]:
    """Record every ``assign_state`` made inside: ``{(id, name): (module, name, old)}``.

    The caller (``gradient``, the compiled step) restores the old values and writes the
    new ones back once they are concrete, so no tracer stays in a module."""
    rec: dict[tuple[int, str], tuple[Module, str, Any]] = {}
    _JOURNALS.append(rec)
    try:
        yield rec
    finally:
        _JOURNALS.pop()


def assign_state(m: Module, name: str, value: Any) -> None:
    """Store a new value of a non-trainable array (running statistics, a key, a recurrent
    state) that the forward pass computed."""
    d = m.__dict__
    if _JOURNALS:
        for rec in _JOURNALS:
            rec.setdefault((id(m), name), (m, name, d[name]))
    elif "_fx_live" in d and any(
        isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(value)
    ):
        raise RuntimeError(
            f"{type(m).__name__}: its {name!r} would be updated inside a JAX transformation "
            "fluxjax does not manage, leaving a tracer in the layer. Differentiate with "
            "fx.gradient / fx.withgradient / fx.train (they write the new state back), pass "
            "the model as an argument of your jitted function, or put the layer in test mode "
            "(fx.testmode(m))."
        )
    d[name] = value
