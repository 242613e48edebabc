"""Layers: Dense, Chain, convolutions, pooling, recurrent, normalisation and containers."""

from ._common import *  # noqa: F403
from ._common import __all__ as _common
from .basic import *  # noqa: F403
from .basic import __all__ as _basic
from .containers import *  # noqa: F403
from .containers import __all__ as _containers
from .conv import *  # noqa: F403
from .conv import __all__ as _conv
from .normalise import *  # noqa: F403
from .normalise import __all__ as _normalise
from .pool import *  # noqa: F403
from .pool import __all__ as _pool
from .recurrent import *  # noqa: F403
from .recurrent import __all__ as _recurrent

__all__ = [*_basic, *_common, *_conv, *_pool, *_recurrent, *_normalise, *_containers]
