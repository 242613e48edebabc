"""Pictures of training (matplotlib): loss curves, fits, a GIF of the fit as training goes,
a Chain drawn as neurons and connections, and optimiser paths over a contour plot.

Every function returns the matplotlib ``Figure`` and saves it when given ``path=`` (the
format follows the file's extension). matplotlib is imported only when a function here is
called (``pip install 'fluxjax[plots]'``); without a display it draws with the Agg backend.

>>> import fluxjax as fx
>>> from fluxjax import plots
>>> fig = plots.loss_curve({"Adam": [1.0, 0.5, 0.2], "Descent": [1.0, 0.8, 0.7]})
>>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
['Adam', 'Descent']
"""

from ._backend import matplotlib_module  # noqa: F401  (tests and the CLI ask it for matplotlib)
from .animation import animate_training
from .curves import loss_curve
from .fits import fit
from .live import live
from .lrfind import lr_find
from .network import chain
from .paths import trajectories

__all__ = ["loss_curve", "fit", "animate_training", "chain", "trajectories", "live", "lr_find"]
