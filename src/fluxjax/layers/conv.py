"""Convolutions: ``Conv`` (a true convolution, kernel flipped, as Flux's), ``CrossCor``,
``ConvTranspose``, ``DepthwiseConv``, ``SamePad`` and ``flatten``.

Data are channels-last with observations first: 1-D signals ``(n, L, C)``, images
``(n, H, W, C)``, volumes ``(n, D, H, W, C)`` (Flux's ``WHCN`` reversed); kernels are
``(k..., cin ÷ groups, cout)``.

``Conv``, ``CrossCor`` and ``DepthwiseConv`` run through ``corr``, whose reverse-mode rule
is written by hand: the input and weight gradients as convolutions in XLA's canonical layout,
which its CPU backend runs with its fast kernels inside a loop body too (JAX's own rule left
a small CNN's loop 8x slower than its lone step); with one input channel the forward pass is
a fused sum of shifted inputs. Forward-mode differentiation cannot pass through a hand-written
reverse rule, so inside ``fluxjax.mode.forward()`` (which ``fx.hessian`` and
``fx.gradient(..., mode="forward")`` open; wrap your own ``jax.jvp`` in it) these layers call
``lax.conv_general_dilated`` with JAX's own rules; ``LOWERING.hand_rule = False`` does so
everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import mode
from ..module import Module, show
from ._common import call_init, check_size, float_input, ntuple, shape_error

__all__ = ["Conv", "CrossCor", "ConvTranspose", "DepthwiseConv", "SamePad", "flatten"]

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


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


def _numbers(n: int) -> tuple[str, str, str]:
    s = _SPATIAL[n]
    return "N" + s + "C", s + "IO", "N" + s + "C"


# a convolution with at most this many input channels is a sum of shifted copies of the
# input times the kernel's taps: one fused loop, where XLA's CPU convolution is slow for so few
# channels (Conv 3x3 1 => 16 on 128x28x28: 0.3 ms against 3.9 ms, forward)
SHIFTS_MAX_CIN = [1]


class _Lowering:
    """How ``Conv``, ``CrossCor`` and ``DepthwiseConv`` lower: ``hand_rule`` through ``corr``
    (its hand-written reverse rule), else lax's convolution and JAX's rules."""

    def __init__(self) -> None:
        self.hand_rule = True


LOWERING = _Lowering()


def _shifted_sum(x: Any, w: Any, stride: tuple, pad: tuple, dilation: tuple) -> Any:
    """Cross-correlation of ``x (n, s..., cin)`` with ``w (k..., cin, cout)`` as
    ``Σ_taps Σ_c x[shifted by tap][..., c] · w[tap, c]``."""
    n = w.ndim - 2
    zero = jnp.zeros((), x.dtype)
    x = jax.lax.pad(x, zero, [(0, 0, 0), *((lo, hi, 0) for lo, hi in pad), (0, 0, 0)])
    k = w.shape[:n]
    out = [
        (s - d * (kk - 1) - 1) // st + 1 for s, kk, d, st in zip(x.shape[1:-1], k, dilation, stride)
    ]
    y = None
    for tap in np.ndindex(*k):
        start = [0, *(t * d for t, d in zip(tap, dilation)), 0]
        limit = [
            x.shape[0],
            *(b + (o - 1) * st + 1 for b, o, st in zip(start[1:], out, stride)),
            x.shape[-1],
        ]
        xs = jax.lax.slice(x, start, limit, (1, *stride, 1))
        for c in range(x.shape[-1]):
            term = xs[..., c : c + 1] * w[(*tap, c)]
            y = term if y is None else y + term
    return y


def _lax_conv(x: Any, w: Any, stride: tuple, pad: tuple, dilation: tuple, groups: int) -> Any:
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=stride,
        padding=pad,
        rhs_dilation=dilation,
        dimension_numbers=_numbers(w.ndim - 2),
        feature_group_count=groups,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def corr(x: Any, w: Any, stride: tuple, pad: tuple, dilation: tuple, groups: int) -> Any:
    """Cross-correlation on channels-last data, its weight gradient written as a convolution
    in XLA's canonical layout (batch as the contracted feature axis), which XLA's CPU backend
    compiles to its fast kernels inside a loop body too."""
    if groups == 1 and x.shape[-1] <= SHIFTS_MAX_CIN[0]:
        return _shifted_sum(x, w, stride, pad, dilation)
    return _lax_conv(x, w, stride, pad, dilation, groups)


def _corr_fwd(x, w, stride, pad, dilation, groups):  # type: ignore[no-untyped-def]
    return corr(x, w, stride, pad, dilation, groups), (x, w)


def _corr_bwd(stride, pad, dilation, groups, res, g):  # type: ignore[no-untyped-def]
    x, w = res
    n = w.ndim - 2
    if groups != 1:
        _, vjp = jax.vjp(lambda x, w: _lax_conv(x, w, stride, pad, dilation, groups), x, w)
        return vjp(g)
    # dx: g (spread by the stride) correlated with the flipped kernel, its in and out swapped
    lo = [d * (k - 1) - p for d, k, (p, _) in zip(dilation, w.shape[:n], pad)]
    hi = [
        i + p - (o - 1) * s - 1
        for i, (p, _), o, s in zip(x.shape[1:-1], pad, g.shape[1:-1], stride)
    ]
    wt = jnp.swapaxes(jnp.flip(w, axis=tuple(range(n))), -1, -2)
    dx = jax.lax.conv_general_dilated(
        g, wt, (1,) * n, tuple(zip(lo, hi)), lhs_dilation=stride, rhs_dilation=dilation,
        dimension_numbers=_numbers(n),
    )  # fmt: skip
    # dw[k, c, o] = Σ_{b, p} x[b, p·stride + k·dilation, c] g[b, p, o]: x with its channels as
    # the batch and its batch as the channels, g as the kernel (its batch the input channels)
    xt = jnp.swapaxes(x, 0, -1)
    gt = jnp.moveaxis(g, 0, n)
    # the crop keeps the kernel's extent: rows past the last tap the stride never reaches
    dw = jax.lax.conv_general_dilated(
        xt,
        gt,
        window_strides=dilation,
        padding=pad,
        rhs_dilation=stride,
        dimension_numbers=_numbers(n),
    )
    dw = jax.lax.slice(dw, (0,) * (n + 2), (dw.shape[0], *w.shape[:n], dw.shape[-1]))
    return dx, jnp.moveaxis(dw, 0, n)


corr.defvjp(_corr_fwd, _corr_bwd)


def conv_nd(x: Any, w: Any, stride: tuple, pad: tuple, dilation: tuple, groups: int, flip: bool):
    """``lax.conv_general_dilated`` on channels-last data; ``flip`` makes it a convolution."""
    n = w.ndim - 2
    if flip:
        w = jnp.flip(w, axis=tuple(range(n)))
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=stride,
        padding=pad,
        rhs_dilation=dilation,
        dimension_numbers=_numbers(n),
        feature_group_count=groups,
    )


def _make_weight(init, k, cin, cout, groups, layer):  # type: ignore[no-untyped-def]
    if init is None:
        from ..init import glorot_uniform as init
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
            layout = "(n, " + ", ".join(_SPATIAL[n]) + f", {cin})"
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
