"""Convolutions: ``Conv`` (a true convolution, kernel flipped, as Flux's), ``CrossCor``,
``ConvTranspose``, ``DepthwiseConv``, ``SamePad`` and ``flatten``.

Data are channels-last with observations first: 1-D signals ``(n, L, C)``, images
``(n, H, W, C)``, volumes ``(n, D, H, W, C)`` (Flux's ``WHCN`` reversed); kernels are
``(k..., cin ÷ groups, cout)``.

``Conv``, ``CrossCor`` and ``DepthwiseConv`` run through ``convops.corr``, whose
reverse-mode rule is written by hand (fast inside XLA's CPU loops); inside
``fluxjax.mode.forward()`` (which ``fx.hessian`` and ``fx.gradient(..., mode="forward")``
open; wrap your own ``jax.jvp`` in it) they call lax's convolution with JAX's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import mode
from ..init import glorot_uniform
from ..module import Module, show
from ._common import call_init, check_size, float_input, ntuple, shape_error
from .convops import LOWERING, SHIFTS_MAX_CIN, SPATIAL, conv_nd, corr  # noqa: F401  (switches)

__all__ = ["Conv", "CrossCor", "ConvTranspose", "DepthwiseConv", "SamePad", "flatten"]


def _identity(x: Any) -> Any:
    return x


class SamePad:
    """Padding that keeps the spatial size at stride 1: a total of ``k_eff − 1`` per axis
    (``k_eff = k + (k − 1)(dilation − 1)``), ``⌈·/2⌉`` before and ``⌊·/2⌋`` after.

    >>> import fluxjax as fx
    >>> fx.Conv((3, 3), 1, 2, pad=fx.SamePad())(fx.zeros32(1, 5, 5, 1)).shape
    (1, 5, 5, 2)
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamePad)

    def __hash__(self) -> int:
        return hash(SamePad)

    def __repr__(self) -> str:
        return "SamePad()"


def flatten(x: Any) -> Any:
    """Reshape to ``(n, features)``, keeping the first (observation) axis: Flux's
    ``Flux.flatten``, usable as a layer in a ``Chain``. (Flux flattens column-major
    ``WHC``; this flattens row-major ``HWC``: the same numbers in another order.)

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.flatten(jnp.zeros((5, 4, 4, 3))).shape
    (5, 48)
    """
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError("flatten: expected an array with an observation axis, got a scalar.")
    return jnp.reshape(x, (x.shape[0], -1))


def padding(pad: Any, k: tuple[int, ...], dilation: tuple[int, ...], layer: str) -> tuple:
    """Flux's ``pad`` (int, N-tuple, 2N-tuple ``(lo₁, hi₁, …)`` or ``SamePad()``) as
    ``((lo, hi), ...)`` per spatial axis."""
    n = len(k)
    if isinstance(pad, SamePad):
        total = [(ki - 1) * di for ki, di in zip(k, dilation)]
        return tuple(((t + 1) // 2, t // 2) for t in total)
    if isinstance(pad, int | np.integer) and not isinstance(pad, bool) and pad >= 0:
        return ((int(pad), int(pad)),) * n
    if isinstance(pad, tuple | list) and all(
        isinstance(p, int | np.integer) and not isinstance(p, bool) and p >= 0 for p in pad
    ):
        if len(pad) == n:
            return tuple((int(p), int(p)) for p in pad)
        if len(pad) == 2 * n:
            return tuple((int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(n))
    raise ValueError(
        f"{layer}: pad must be a non-negative int, a tuple of {n} or {2 * n} of them "
        f"((lo, hi) per axis), or fx.SamePad(), got {pad!r}."
    )


def _make_weight(init, k, cin, cout, groups, layer):  # type: ignore[no-untyped-def]
    if init is None:
        init = glorot_uniform
    return jnp.asarray(call_init(init, (*k, cin // groups, cout), layer))


def _bias(bias: Any, n: int, dtype: Any, layer: str) -> Any:
    if bias is True:
        return jnp.zeros((n,), dtype)
    if bias is False or bias is None:
        return None
    b = jnp.asarray(bias, dtype)
    if b.shape != (n,):
        raise ValueError(f"{layer}: bias must have shape ({n},), got {tuple(b.shape)}.")
    return b


class Conv(Module):
    """A convolutional layer: ``y = act(conv(x, weight) + bias)``, Flux's ``Conv``: a true
    convolution (the kernel is flipped; ``CrossCor`` does not flip).

    **Arguments:** ``Conv(k, cin, cout, act=identity; stride=1, pad=0, dilation=1, groups=1,
    bias=True, init=glorot_uniform)``; ``k`` a tuple of 1, 2 or 3 kernel sizes. Or
    ``Conv(weight, bias=True, act=identity; ...)`` from a ``(k..., cin ÷ groups, cout)`` array.

    * input ``(n, spatial..., cin)`` (e.g. images ``(n, H, W, C)``), output
      ``(n, out..., cout)`` with ``out = ⌊(in + lo + hi − dilation·(k − 1) − 1)/stride⌋ + 1``.
    * ``pad``: int, a tuple per axis, ``(lo₁, hi₁, lo₂, hi₂, …)``, or ``fx.SamePad()``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> c = fx.Conv((3, 3), 1, 16, fx.relu)
    >>> c
    Conv((3, 3), 1 => 16, relu)  # 160 parameters
    >>> c(jnp.zeros((2, 28, 28, 1))).shape
    (2, 26, 26, 16)
    """

    _flip = True

    def __init__(
        self,
        k: Any,
        cin: Any = None,
        cout: Any = None,
        act: Callable[[Any], Any] | None = None,
        *,
        stride: Any = 1,
        pad: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: Any = True,
        init: Callable[..., Any] | None = None,
    ) -> None:
        name = type(self).__name__
        if isinstance(k, tuple | list) and not hasattr(k, "shape"):
            if isinstance(cin, tuple) and len(cin) == 2 and cout is None:  # Conv(k, (1, 16))
                cin, cout = cin
            k = ntuple(tuple(k), len(k), "the kernel size k", name)
            if not 1 <= len(k) <= 3:
                raise ValueError(f"{name}: k must have 1, 2 or 3 sizes, got {k}.")
            cin = check_size(cin, "cin", name)
            cout = check_size(cout, "cout", name)
            groups = check_size(groups, "groups", name)
            if cin % groups or cout % groups:
                raise ValueError(
                    f"{name}: cin ({cin}) and cout ({cout}) must be divisible by groups ({groups})."
                )
            weight = self._init_weight(init, k, cin, cout, groups)
        else:  # Conv(weight, bias=True, act=identity; ...)
            if callable(cin) and act is None:
                cin, act = True, cin
            bias = True if cin is None else cin
            act = cout if act is None and callable(cout) else act
            weight = jnp.asarray(k)
            if weight.ndim not in (3, 4, 5) or not jnp.issubdtype(weight.dtype, jnp.floating):
                raise ValueError(
                    f"{name}(weight): weight must be a float array of shape (k..., cin, cout) "
                    f"with 1 to 3 kernel axes, got shape {tuple(weight.shape)}."
                )
            groups = check_size(groups, "groups", name)
        n = weight.ndim - 2
        self.weight = weight
        self.bias = _bias(bias, self._cout(weight, groups), weight.dtype, name)
        self.act = _identity if act is None else act
        self.stride = ntuple(stride, n, "stride", name)
        self.dilation = ntuple(dilation, n, "dilation", name)
        self.pad = padding(pad, weight.shape[:n], self.dilation, name)
        self.groups = groups

    def _init_weight(self, init, k, cin, cout, groups):  # type: ignore[no-untyped-def]
        return _make_weight(init, k, cin, cout, groups, type(self).__name__)

    def _cout(self, weight: Any, groups: int) -> int:
        return weight.shape[-1]

    def _cin(self) -> int:
        return self.weight.shape[-2] * self.groups

    def _check(self, x: Any) -> Any:
        n = self.weight.ndim - 2
        cin = self._cin()
        x = float_input(x, self.weight.dtype)
        if x.ndim != n + 2 or x.shape[-1] != cin:
            layout = "(n, " + ", ".join(SPATIAL[n]) + f", {cin})"
            hint = "Data are channels-last with observations first (Flux's WHCN reversed)"
            if x.ndim == n + 2 and cin in x.shape[1:-1]:
                hint += "; to convert channels-first data use jnp.moveaxis(x, 1, -1)"
            raise shape_error(self._show(), layout, x, hint + ".")
        return x

    def __call__(self, x: Any) -> Any:
        x = self._check(x)
        w = self.weight
        if self._flip:
            w = jnp.flip(w, axis=tuple(range(w.ndim - 2)))
        args = (self.stride, self.pad, self.dilation, self.groups)
        hand = LOWERING.hand_rule and not mode.isforward()
        y = corr(x, w, *args) if hand else conv_nd(x, w, *args, False)
        if self.bias is not None:
            y = y + self.bias
        return self.act(y)

    def _options(self) -> str:  # noqa: C901
        n = self.weight.ndim - 2
        text = ""
        if any(p != (0, 0) for p in self.pad):
            flat = tuple(v for p in self.pad for v in p)
            if len(set(flat)) == 1:
                shown: Any = flat[0]
            elif all(lo == hi for lo, hi in self.pad):
                shown = tuple(p[0] for p in self.pad)
            else:
                shown = flat
            text += f", pad={shown}"
        if self.stride != (1,) * n:
            text += f", stride={self.stride[0] if len(set(self.stride)) == 1 else self.stride}"
        if self.dilation != (1,) * n:
            d = self.dilation
            text += f", dilation={d[0] if len(set(d)) == 1 else d}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if any(getattr(self, "outpad", ())):
            o = self.outpad
            text += f", outpad={o[0] if len(set(o)) == 1 else o}"
        if self.bias is None:
            text += ", bias=False"
        return text

    def _show(self) -> str:
        n = self.weight.ndim - 2
        k = tuple(self.weight.shape[:n])
        text = f"{type(self).__name__}({k}, {self._cin()} => {self._cout(self.weight, self.groups)}"
        if self.act is not _identity and getattr(self.act, "__name__", "") != "identity":
            text += f", {show(self.act)}"
        return text + self._options() + ")"


class CrossCor(Conv):
    """Cross-correlation: ``Conv`` without flipping the kernel (PyTorch's ``conv2d`` and
    ``lax``'s convention). Same arguments as ``Conv``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> c = fx.CrossCor(jnp.array([1.0, 2.0]).reshape(2, 1, 1), False)
    >>> c(jnp.array([[[1.0], [10.0], [100.0]]]))[0, :, 0]
    Array([ 21., 210.], dtype=float32)
    """

    _flip = False


class DepthwiseConv(Conv):
    """A depthwise convolution: ``Conv`` with ``groups = cin`` (each input channel gets its
    own ``cout ÷ cin`` filters). ``DepthwiseConv(k, cin, cout, act; stride, pad, dilation,
    bias, init)``, ``cout`` a multiple of ``cin``; or ``DepthwiseConv(weight, bias=True,
    act=identity; ...)`` from Flux v0.12's ``(k..., cout ÷ cin, cin)`` array (stored, as
    Flux ≥ 0.13 does, as the ``(k..., 1, cout)`` weight of a grouped ``Conv``; output channel
    ``c·(cout ÷ cin) + j`` is filter ``j`` of input channel ``c``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.DepthwiseConv((3, 3), 4, 8)
    DepthwiseConv((3, 3), 4 => 8)  # 80 parameters
    >>> fx.DepthwiseConv(jnp.ones((3, 3, 2, 4)), False)
    DepthwiseConv((3, 3), 4 => 8, bias=False)  # 72 parameters
    """

    def __init__(self, k: Any, cin: Any = None, cout: Any = None, act: Any = None, **kw: Any):
        if "groups" in kw:
            raise TypeError("DepthwiseConv: groups is always cin; use Conv for other groups.")
        if hasattr(k, "shape") and not isinstance(k, tuple):  # DepthwiseConv(weight, b, act)
            w = jnp.asarray(k)
            if w.ndim not in (3, 4, 5):
                raise ValueError(
                    "DepthwiseConv(weight): weight must have shape (k..., cout ÷ cin, cin) with "
                    f"1 to 3 kernel axes, got {tuple(w.shape)}."
                )
            mult, channels = w.shape[-2:]
            w = jnp.reshape(jnp.swapaxes(w, -1, -2), (*w.shape[:-2], 1, channels * mult))
            super().__init__(w, cin, cout, act, groups=channels, **kw)
            return
        if not (isinstance(k, tuple | list) and isinstance(cin, int | np.integer)):
            raise TypeError(
                f"DepthwiseConv(k, cin, cout): give the kernel size and channel counts, e.g. "
                f"DepthwiseConv((3, 3), 4, 8), or a weight array; got {type(k).__name__} and "
                f"{cin!r}."
            )
        kw["groups"] = int(cin)
        super().__init__(k, cin, cout, act, **kw)

    def _options(self) -> str:
        return super()._options().replace(f", groups={self.groups}", "")


class ConvTranspose(Conv):
    """A transposed convolution (the gradient of ``Conv`` with respect to its input), Flux's
    ``ConvTranspose``: upsamples by ``stride``.

    **Arguments:** as ``Conv``, plus ``outpad=0`` (an int or one per axis, Flux ≥ 0.13's and
    PyTorch's ``output_padding``, less than the stride or the dilation: that many more
    rows at the high end of each axis); the weight has shape ``(k..., cout ÷ groups, cin)``
    as in Flux. Output size per axis:
    ``(in − 1)·stride + dilation·(k − 1) + 1 − lo − hi + outpad``; ``SamePad()`` pads as
    a ``Conv`` with kernel ``k − stride + 1`` would, as Flux (the size is ``in·stride``, at
    every stride, kernel size 1 included: the padding is then negative, a crop).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> t = fx.ConvTranspose((2, 2), 8, 4, stride=2)
    >>> t
    ConvTranspose((2, 2), 8 => 4, stride=2)  # 132 parameters
    >>> t(jnp.zeros((1, 5, 5, 8))).shape
    (1, 10, 10, 4)
    """

    def __init__(
        self, k: Any, cin: Any = None, cout: Any = None, act: Any = None, *, outpad: Any = 0,
        **kw: Any,
    ) -> None:  # fmt: skip
        pad = kw.get("pad", 0)
        if isinstance(pad, SamePad):
            kw["pad"] = 0
        super().__init__(k, cin, cout, act, **kw)
        n = self.weight.ndim - 2
        if isinstance(pad, SamePad):
            kk = tuple(k_ - s + 1 for k_, s in zip(self.weight.shape[:n], self.stride))
            self.pad = padding(pad, kk, self.dilation, "ConvTranspose")
        if isinstance(outpad, int | np.integer) and not isinstance(outpad, bool):
            outpad = (int(outpad),) * n
        if (
            not isinstance(outpad, tuple | list)
            or len(outpad) != n
            or any(not isinstance(o, int | np.integer) or o < 0 for o in outpad)
            or any(o >= max(s, d) for o, s, d in zip(outpad, self.stride, self.dilation))
        ):
            raise ValueError(
                f"ConvTranspose: outpad must be a non-negative int or {n} of them, each less "
                f"than the stride or the dilation, got {outpad!r}."
            )
        self.outpad = tuple(int(o) for o in outpad)

    def _init_weight(self, init, k, cin, cout, groups):  # type: ignore[no-untyped-def]
        return _make_weight(init, k, cout, cin, groups, "ConvTranspose")

    def _cout(self, weight: Any, groups: int) -> int:
        return weight.shape[-2] * groups

    def _cin(self) -> int:
        return self.weight.shape[-1]

    def __call__(self, x: Any) -> Any:
        x = self._check(x)
        n = self.weight.ndim - 2
        # outpad o: the transposed convolution cropped o less at the high end
        pad = tuple((lo, hi - o) for (lo, hi), o in zip(self.pad, self.outpad))
        size = [
            (i - 1) * s + d * (k - 1) + 1 - lo - hi
            for i, s, d, k, (lo, hi) in zip(
                x.shape[1:-1], self.stride, self.dilation, self.weight.shape[:n], pad
            )
        ]
        if min(size) < 1:
            raise ValueError(
                f"layer {self._show()}: input of shape {tuple(x.shape)} gives an empty output "
                f"(spatial size {tuple(size)}); use less padding."
            )
        shape = (x.shape[0], *size, self._cout(self.weight, self.groups))
        w = self.weight

        def forward(z: Any) -> Any:
            return conv_nd(z, w, self.stride, pad, self.dilation, self.groups, True)

        (y,) = jax.linear_transpose(forward, jax.ShapeDtypeStruct(shape, x.dtype))(x)
        if self.bias is not None:
            y = y + self.bias
        return self.act(y)
