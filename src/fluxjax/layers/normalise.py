"""Normalisation: ``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ``InstanceNorm`` and the
function ``normalise``.

The mode-dependent layers (BatchNorm; GroupNorm and InstanceNorm with ``track_stats``)
have an ``active`` attribute: ``None``
(automatic: active inside ``fx.train``, ``fx.gradient`` and the other differentiation
calls), ``True`` or ``False`` (set with ``fx.trainmode`` / ``fx.testmode``). State the
forward pass changes (running statistics, the dropout key) is a plain array attribute,
written back by ``train`` and ``gradient``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..init import ones32, zeros32
from ..module import Module, show
from ._common import assign_state, check_size, float_input, is_active, shape_error

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "normalise"]


def _identity(x: Any) -> Any:
    return x


def _act_text(act: Any) -> str:
    if act is _identity or getattr(act, "__name__", "") == "identity":
        return ""
    return f", {show(act)}"


def _check_prob(p: Any, layer: str) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating) or not 0 <= p <= 1:
        raise ValueError(f"{layer}(p): p must be a probability in [0, 1], got {p!r}.")
    return float(p)


class _Norm(Module):
    """Shared by BatchNorm, GroupNorm and InstanceNorm: affine parameters over channels."""

    def _setup(self, chs: Any, act: Any, affine: bool, eps: float, init_beta, init_gamma):  # type: ignore[no-untyped-def]
        chs = check_size(chs, "the channel count", type(self).__name__)
        if affine:
            self.beta = jnp.asarray((init_beta or zeros32)(chs))
            self.gamma = jnp.asarray((init_gamma or ones32)(chs))
        self.act = _identity if act is None else act
        self.affine = bool(affine)
        self.eps = float(eps)
        self.chs = chs
        self.active = None
        return chs

    def _input(self, x: Any, min_ndim: int) -> Any:
        x = jnp.asarray(x)
        if self.affine:
            x = float_input(x, self.beta.dtype)
        elif not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        if x.ndim < min_ndim or x.shape[-1] != self.chs:
            raise shape_error(
                self._show(),
                f"(n, ..., {self.chs}) with the channels last",
                x,
                "Data are channels-last with observations first (Flux's WHCN reversed).",
            )
        return x

    def _out(self, xhat: Any, shape: Any) -> Any:
        if self.affine:
            xhat = xhat * self.gamma + self.beta
        return self.act(jnp.reshape(xhat, shape))

    def trainable(self) -> tuple[str, ...]:
        return ("beta", "gamma") if self.affine else ()

    def _tracking(self, track_stats: bool, momentum: float, n: int) -> None:
        """GroupNorm's and InstanceNorm's optional running statistics (``n`` of each)."""
        self.track_stats = bool(track_stats)
        self.momentum = float(momentum)
        if track_stats:
            self.mu = jnp.zeros((n,), jnp.float32)
            self.sigma2 = jnp.ones((n,), jnp.float32)
        else:
            del self.active  # the same in both modes

    def _moments(self, x: Any, axes: tuple[int, ...], shape: tuple[int, ...]) -> tuple:
        """Per-observation statistics over ``axes``, or the running ones (``shape``) in test
        mode; active with ``track_stats`` the running ones move towards the batch mean of
        the per-observation ones (Flux's ``_norm_layer_forward``)."""
        if self.track_stats and not is_active(self):
            return self.mu.reshape(shape).astype(x.dtype), self.sigma2.reshape(shape).astype(
                x.dtype
            )
        mu = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
        if self.track_stats:
            m, big = self.momentum, int(np.prod([x.shape[a] for a in axes]))
            stop = jax.lax.stop_gradient
            mu_b = jnp.mean(stop(mu), axis=0).reshape(-1).astype(self.mu.dtype)
            var_b = jnp.mean(stop(var), axis=0).reshape(-1).astype(self.sigma2.dtype)
            assign_state(self, "mu", (1 - m) * self.mu + m * mu_b)
            corr = big / max(big - 1, 1)
            assign_state(self, "sigma2", (1 - m) * self.sigma2 + m * corr * var_b)
        return mu, var

    def _stats_text(self) -> str:
        return ", track_stats=True" if self.track_stats else ""


class BatchNorm(_Norm):
    """Batch normalisation over the channel (last) axis, Flux's ``BatchNorm``:
    ``y = act(γ·(x − μ)/√(σ² + ε) + β)``, with ``μ``, ``σ²`` the (biased) mean and variance
    of the batch over every axis but the last when active, the running statistics
    otherwise. Active, it updates ``mu ← (1 − momentum)·mu + momentum·μ`` and
    ``sigma2 ← (1 − momentum)·sigma2 + momentum·M/(M − 1)·σ²`` (``M`` values per channel).

    **Arguments:** ``BatchNorm(chs, act=identity; affine=True, track_stats=True, eps=1e-5,
    momentum=0.1, init_beta=zeros32, init_gamma=ones32)``. Trainable: ``beta``, ``gamma``;
    ``mu``, ``sigma2`` are running statistics (zeros and ones at first).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> bn = fx.BatchNorm(2)
    >>> bn
    BatchNorm(2)  # 4 parameters, plus 4 non-trainable
    >>> x = jnp.array([[1.0, 10.0], [3.0, 30.0]])
    >>> fx.trainmode(bn)(x)
    Array([[-0.99999, -1.     ],
           [ 0.99999,  1.     ]], dtype=float32)
    >>> bn.mu
    Array([0.2, 2. ], dtype=float32)
    """

    def __init__(
        self,
        chs: int,
        act: Callable[[Any], Any] | None = None,
        *,
        affine: bool = True,
        track_stats: bool = True,
        eps: float = 1e-5,
        momentum: float = 0.1,
        init_beta: Callable[..., Any] | None = None,
        init_gamma: Callable[..., Any] | None = None,
    ) -> None:
        chs = self._setup(chs, act, affine, eps, init_beta, init_gamma)
        self.track_stats = bool(track_stats)
        self.momentum = float(momentum)
        if track_stats:
            self.mu = jnp.zeros((chs,), jnp.float32)
            self.sigma2 = jnp.ones((chs,), jnp.float32)

    def __call__(self, x: Any) -> Any:
        x = self._input(x, 2)
        axes = tuple(range(x.ndim - 1))
        if is_active(self) or not self.track_stats:
            mu = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mu), axis=axes)
            if self.track_stats and is_active(self):
                m, big = self.momentum, int(np.prod(x.shape[:-1]))
                stop = jax.lax.stop_gradient
                corr = big / max(big - 1, 1)
                assign_state(self, "mu", (1 - m) * self.mu + m * stop(mu).astype(self.mu.dtype))
                new_var = (1 - m) * self.sigma2 + m * corr * stop(var).astype(self.sigma2.dtype)
                assign_state(self, "sigma2", new_var)
        else:
            mu, var = self.mu.astype(x.dtype), self.sigma2.astype(x.dtype)
        return self._out((x - mu) / jnp.sqrt(var + self.eps), x.shape)

    def _show(self) -> str:
        text = f"BatchNorm({self.chs}{_act_text(self.act)}"
        if not self.affine:
            text += ", affine=False"
        if not self.track_stats:
            text += ", track_stats=False"
        return text + ")"


class GroupNorm(_Norm):
    """Group normalisation, Flux's ``GroupNorm``: the ``chs`` channels are split into ``G``
    groups and each observation's group is normalised over its spatial axes and channels:
    ``y = act(γ·(x − μ)/√(σ² + ε) + β)`` (biased variance; the same in train and test mode).

    **Arguments:** ``GroupNorm(chs, G, act=identity; affine=True, track_stats=False,
    eps=1e-5, momentum=0.1)``; input ``(n, spatial..., chs)``. With ``track_stats`` the layer
    keeps running statistics per group (``mu``, ``sigma2`` of length ``G``, updated as
    BatchNorm's from the batch mean of each observation's statistics, ``M`` values per group
    and observation) and uses them in test mode.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> g = fx.GroupNorm(4, 2)
    >>> g
    GroupNorm(4, 2)  # 8 parameters
    >>> g(jnp.array([[1.0, 3.0, 0.0, 0.0]]))
    Array([[-0.999995,  0.999995,  0.      ,  0.      ]], dtype=float32)
    """

    def __init__(
        self,
        chs: int,
        groups: int,
        act: Callable[[Any], Any] | None = None,
        *,
        affine: bool = True,
        track_stats: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        init_beta: Callable[..., Any] | None = None,
        init_gamma: Callable[..., Any] | None = None,
    ) -> None:
        chs = self._setup(chs, act, affine, eps, init_beta, init_gamma)
        groups = check_size(groups, "the group count", "GroupNorm")
        if chs % groups:
            raise ValueError(f"GroupNorm({chs}, {groups}): chs must be divisible by the groups.")
        self.groups = groups
        self._tracking(track_stats, momentum, groups)

    def __call__(self, x: Any) -> Any:
        x = self._input(x, 2)
        g = jnp.reshape(x, (*x.shape[:-1], self.groups, self.chs // self.groups))
        axes = (*range(1, x.ndim - 1), x.ndim)
        mu, var = self._moments(g, axes, (self.groups, 1))
        return self._out(jnp.reshape((g - mu) / jnp.sqrt(var + self.eps), x.shape), x.shape)

    def _show(self) -> str:
        text = f"GroupNorm({self.chs}, {self.groups}{_act_text(self.act)}"
        text += self._stats_text()
        return text + (", affine=False)" if not self.affine else ")")


class InstanceNorm(_Norm):
    """Instance normalisation, Flux's ``InstanceNorm``: each observation's channel is
    normalised over its spatial axes, ``y = act(γ·(x − μ)/√(σ² + ε) + β)``.

    **Arguments:** ``InstanceNorm(chs, act=identity; affine=False, track_stats=False,
    eps=1e-5, momentum=0.1)`` (Flux's defaults since v0.12); input ``(n, spatial..., chs)``.
    With ``track_stats`` it keeps running statistics per channel (updated from the batch
    mean of each observation's statistics) and uses them in test mode.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.InstanceNorm(1)(jnp.array([[[1.0], [3.0]]]))[0, :, 0]
    Array([-0.99999,  0.99999], dtype=float32)
    """

    def __init__(
        self,
        chs: int,
        act: Callable[[Any], Any] | None = None,
        *,
        affine: bool = False,
        track_stats: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        init_beta: Callable[..., Any] | None = None,
        init_gamma: Callable[..., Any] | None = None,
    ) -> None:
        chs = self._setup(chs, act, affine, eps, init_beta, init_gamma)
        self._tracking(track_stats, momentum, chs)

    def __call__(self, x: Any) -> Any:
        x = self._input(x, 3)
        axes = tuple(range(1, x.ndim - 1))
        mu, var = self._moments(x, axes, (self.chs,))
        return self._out((x - mu) / jnp.sqrt(var + self.eps), x.shape)

    def _show(self) -> str:
        text = f"InstanceNorm({self.chs}{_act_text(self.act)}{self._stats_text()}"
        return text + (", affine=True)" if self.affine else ")")


class LayerNorm(Module):
    """Layer normalisation over the last ``len(sz)`` axes, Flux v0.12's ``LayerNorm``:
    ``y = act(α ⊙ (x − μ)/(σ + ε) + β)`` with ``σ`` the biased standard deviation.

    **Arguments:** ``LayerNorm(sz, act=identity; affine=True, eps=1e-5)``; ``sz`` an int or a
    tuple (the trailing shape), ``α``/``β`` of shape ``sz``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> ln = fx.LayerNorm(2)
    >>> ln
    LayerNorm(2)  # 4 parameters
    >>> ln(jnp.array([[1.0, 3.0]]))
    Array([[-0.99999, 0.99999]], dtype=float32)
    """

    def __init__(
        self,
        sz: Any,
        act: Callable[[Any], Any] | None = None,
        *,
        affine: bool = True,
        eps: float = 1e-5,
    ) -> None:
        sz = (sz,) if isinstance(sz, int | np.integer) else tuple(sz)
        for s in sz:
            check_size(s, "each size in sz", "LayerNorm")
        self.sz = tuple(int(s) for s in sz)
        if affine:
            self.scale = jnp.ones(self.sz, jnp.float32)
            self.bias = jnp.zeros(self.sz, jnp.float32)
        self.affine = bool(affine)
        self.act = _identity if act is None else act
        self.eps = float(eps)

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
        k = len(self.sz)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.sz:
            raise shape_error(self._show(), f"(..., {', '.join(map(str, self.sz))})", x)
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = jnp.mean(x, axis=axes, keepdims=True)
        sd = jnp.sqrt(jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True))
        y = (x - mu) / (sd + self.eps)
        if self.affine:
            y = self.scale * y + self.bias
        return self.act(y)

    def _show(self) -> str:
        sz = self.sz[0] if len(self.sz) == 1 else self.sz
        text = f"LayerNorm({sz}{_act_text(self.act)}"
        return text + (", affine=False)" if not self.affine else ")")


def normalise(x: Any, *, axis: Any = 0, eps: float = 1e-5) -> Any:
    """Flux v0.12's ``Flux.normalise(x; dims=ndims(x), ϵ=1e-5)``:
    ``(x − μ)/(σ + ε)`` with ``μ`` and the biased standard deviation ``σ`` over ``axis``
    (an int or a tuple). Flux's default ``dims=ndims(x)`` is its observation axis, so the
    default here is ``axis=0`` (each feature standardised across the batch).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.normalise(jnp.array([[1.0, 10.0], [3.0, 30.0]]))
    Array([[-0.99999   , -0.99999905],
           [ 0.99999   ,  0.99999905]], dtype=float32)
    """
    x = jnp.asarray(x)
    x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
    mu = jnp.mean(x, axis=axis, keepdims=True)
    sd = jnp.sqrt(jnp.mean(jnp.square(x - mu), axis=axis, keepdims=True))
    return (x - mu) / (sd + eps)
