"""Layers: Dense, Chain and friends."""

from .basic import *  # noqa: F403
from .basic import __all__ as _basic

__all__ = [*_basic]
