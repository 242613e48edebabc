"""The convolution operations under ``Conv``, ``CrossCor``, ``DepthwiseConv`` and
``ConvTranspose`` (internal): ``conv_nd`` (lax's convolution, channels-last) and ``corr``, a
cross-correlation whose reverse-mode rule is written by hand.

JAX's own rule for a convolution's gradient leaves XLA's CPU backend a layout (``01oi``)
that it runs with a slow kernel inside a loop body (a small CNN's loop ran 8x slower than
its lone step); ``corr`` writes the input and weight gradients as convolutions in XLA's
canonical layout, which it runs with its fast kernels everywhere. With one input channel
the forward pass is a fused sum of shifted inputs. Forward-mode differentiation cannot pass
through a hand-written reverse rule: inside ``fluxjax.mode.forward()``, or with
``LOWERING.hand_rule = False``, the layers call ``conv_nd`` with JAX's own rules.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SPATIAL = {1: "W", 2: "HW", 3: "DHW"}  # the spatial axes' letters, by their number


def _numbers(n: int) -> tuple[str, str, str]:
    s = SPATIAL[n]
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
