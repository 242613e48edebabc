"""The training engine behind ``fx.train``, one concern per module:

* ``loop``: ``train()`` itself: checks its arguments, finds the plan, asks the schedule how
  far it may run before a callback can act, runs that many steps, fires the callbacks.
* ``schedule``: the callbacks of one call and when each must run.
* ``policy``: whether a span of steps runs fused or one compiled step per batch.
* ``cache``: finding the plan of a (loss, parameters, optimiser) call, fast.
* ``plan``: a plan: the arrays it binds, the rules, the packed optimiser state and its
  ownership, writing results back, reporting failures.
* ``packing``: the optimiser state packed into few buffers.
* ``step``: the traced step: bind, loss, gradients, rules, failure flag.
* ``fused``: many steps in one compiled call, over a list of batches or a DataLoader.
* ``history``: ``TrainHistory``, the record ``train`` returns.

(The package is ``engine``, not ``train``: ``fx.train`` is the function, and a package of
the same name would be shadowed by it.)
"""

from .history import TrainHistory
from .loop import epochs, train
from .step import skip_when

__all__ = ["train", "epochs", "skip_when", "TrainHistory"]
