"""Callbacks: Flux's ``throttle``, ``stop``/``skip``, ``patience``, ``early_stopping`` and
``plateau``, plus ``every``, ``History`` and the ``StepContext`` a training step hands to
callbacks. One room per theme: ``signals`` (stop, skip), ``scheduling`` (``Scheduled``,
``every``), ``throttling`` (``throttle``), ``triggers`` (``patience`` and the triggers built
on it), ``context`` (``StepContext``, ``History``).

Callbacks are host-side Python, called by ``fx.train`` after every step, as in Flux:

>>> import fluxjax as fx
>>> losses = iter([3.0, 4.0, 5.0])  # a loss that gets worse
>>> es = fx.early_stopping(lambda: next(losses), 2)
>>> [es() for _ in range(3)]
[False, False, True]
"""

from .context import History, StepContext
from .scheduling import Scheduled, every, takes_context  # noqa: F401  (engine/schedule.py's import)
from .signals import SkipException, StopException, skip, stop
from .throttling import throttle
from .triggers import early_stopping, patience, plateau

__all__ = [
    "Scheduled",
    "every",
    "throttle",
    "patience",
    "early_stopping",
    "plateau",
    "History",
    "StepContext",
    "StopException",
    "SkipException",
    "stop",
    "skip",
]
