"""Layers: Dense, Chain, convolutions, pooling, upsampling, recurrent, attention,
normalisation, dropout and containers."""

from ._common import *  # noqa: F403
from ._common import __all__ as _common
from .attention import *  # noqa: F403
from .attention import __all__ as _attention
from .basic import *  # noqa: F403
from .basic import __all__ as _basic
from .containers import *  # noqa: F403
from .containers import __all__ as _containers
from .conv import *  # noqa: F403
from .conv import __all__ as _conv
from .dropout import *  # noqa: F403
from .dropout import __all__ as _dropout
from .normalise import *  # noqa: F403
from .normalise import __all__ as _normalise
from .pool import *  # noqa: F403
from .pool import __all__ as _pool
from .recurrent import *  # noqa: F403
from .recurrent import __all__ as _recurrent
from .upsample import *  # noqa: F403
from .upsample import __all__ as _upsample

__all__ = [
    *_basic, *_common, *_conv, *_pool, *_upsample, *_recurrent, *_attention, *_normalise,
    *_dropout, *_containers,
]  # fmt: skip
