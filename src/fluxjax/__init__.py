"""fluxjax: Flux.jl's training system for Python, on JAX.

>>> import fluxjax as fx
>>> m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
>>> m
Chain(Dense(1 => 4, sigmoid), Dense(4 => 1))  # 13 parameters
"""

from . import datasets, distributed, lab, losses, plots, rng  # noqa: F401, I001
from .activations import *  # noqa: F403
from .autodiff import *  # noqa: F403
from .callbacks import *  # noqa: F403
from .checkpoint import *  # noqa: F403
from .data import *  # noqa: F403
from .init import *  # noqa: F403
from .io import *  # noqa: F403
from .layers import *  # noqa: F403
from .loggers import *  # noqa: F403
from .losses import *  # noqa: F403
from .module import *  # noqa: F403
from .onehot import *  # noqa: F403
from .optimise import *  # noqa: F403
from .optimise.listing import rules  # noqa: F401
from .lrfind import *  # noqa: F403
from .profiling import *  # noqa: F403
from .reacting import *  # noqa: F403
from .rng import host_rng, next_key, seed  # noqa: F401
from .engine import *  # noqa: F403
from .validation import *  # noqa: F403

__version__ = "0.1.0"
