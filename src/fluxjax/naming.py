"""How messages and reprs name a user's function."""

from __future__ import annotations

from typing import Any

__all__ = ["name_of"]


def name_of(f: Any) -> str:
    """``f``'s qualified name, or its repr when it has none.

    >>> from fluxjax.naming import name_of
    >>> name_of(len), name_of(3)
    ('len', '3')
    """
    return getattr(f, "__qualname__", None) or repr(f)
