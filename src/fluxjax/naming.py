"""A user's function as messages see it: its name, and the arguments it requires."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["name_of", "required_parameters", "POSITIONAL", "NAMED"]

_P = inspect.Parameter
POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
"""Parameter kinds a positional call fills."""
NAMED = (*POSITIONAL, _P.KEYWORD_ONLY)
"""Every parameter kind but ``*args`` and ``**kwargs``."""


def name_of(f: Any) -> str:
    """``f``'s qualified name, or its repr when it has none.

    >>> from fluxjax.naming import name_of
    >>> name_of(len), name_of(3)
    ('len', '3')
    """
    return getattr(f, "__qualname__", None) or repr(f)


def required_parameters(f: Any, kinds: tuple[Any, ...] = POSITIONAL) -> list[str]:
    """The names of ``f``'s parameters of these ``kinds`` that have no default (``[]`` when
    Python cannot read ``f``'s signature).

    >>> from fluxjax.naming import NAMED, required_parameters
    >>> required_parameters(lambda x, y=1, *, z: None), required_parameters(len)
    (['x'], ['obj'])
    >>> required_parameters(lambda x, y=1, *, z: None, NAMED)
    ['x', 'z']
    """
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.default is p.empty and p.kind in kinds]
