"""The training engine behind ``fx.train``, one concern per module:

* ``loop``: ``train()`` itself: checks its arguments, finds the plan, asks the schedule how
  far it may run before a callback can act, runs that many steps, fires the callbacks.
* ``schedule``: the callbacks of one call and when each must run.
* ``policy``: the form of a plan's one program (a loop, or a lone step) and the data budget.
* ``cache``: finding the plan of a (loss, parameters, optimiser) call, fast.
* ``plan``: a plan: the arrays it binds, the rules, the packed optimiser state and its
  ownership, writing results back, reporting failures.
* ``packing``: the optimiser state packed into few buffers.
* ``hyper``: the learning rates the program reads at run time (a new η compiles nothing).
* ``step``: the traced step: bind, loss, gradients, rules, failure flag.
* ``program``: the one compiled program a plan runs every step through.
* ``sources``: where batches come from (a stream, a list, a DataLoader) and how they reach
  the program.
* ``history``: ``TrainHistory``, the record ``train`` returns.

(The package is ``engine``, not ``train``: ``fx.train`` is the function, and a package of
the same name would be shadowed by it.)
"""

from .cache import clear_caches, explain
from .history import TrainHistory
from .loop import epochs, train
from .step import skip_when

__all__ = ["train", "epochs", "skip_when", "explain", "clear_caches", "TrainHistory"]
