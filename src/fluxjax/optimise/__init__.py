"""Optimisers: rules (one small class each), schedules, and the update interface."""

from .base import Rule, check  # noqa: F401
from .interface import *  # noqa: F403
from .listing import *  # noqa: F403
from .rules import *  # noqa: F403
from .schedules import *  # noqa: F403
