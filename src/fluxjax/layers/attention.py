"""Attention: ``MultiHeadAttention``, ``dot_product_attention`` and ``make_causal_mask``
(Flux's layer and NNlib's functions), observations first: sequences ``(n, len, features)``,
attention scores ``(n, nheads, q_len, kv_len)`` (Flux's ``(kv_len, q_len, nheads, n)``
reversed, PyTorch's order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..module import Module
from ._common import check_size, float_input, shape_error
from .basic import Dense
from .dropout import Dropout

__all__ = ["MultiHeadAttention", "dot_product_attention", "make_causal_mask"]


def make_causal_mask(x: Any, axis: int = 1) -> Any:
    """NNlib's ``make_causal_mask``: a boolean ``(len, len)`` mask for the sequence axis
    ``axis`` of ``x`` (default 1 of ``(n, len, features)``), true where query ``i`` may
    attend key ``j``, that is ``j ≤ i``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.make_causal_mask(jnp.zeros((1, 3, 2))).astype(int)
    Array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]], dtype=int32)
    """
    n = jnp.shape(x)[axis]
    return jnp.tril(jnp.ones((n, n), bool))


def dot_product_attention(
    q: Any, k: Any, v: Any, bias: Any = None, *, nheads: int = 1, mask: Any = None,
    fdrop: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """NNlib's ``dot_product_attention``: split the features into ``nheads`` heads, then per
    head ``α = softmax(q·kᵀ/√d + bias, masked)`` over the keys and ``y = α·v``.

    **Arguments:** ``q (n, q_len, qk)``, ``k (n, kv_len, qk)``, ``v (n, kv_len, vd)``;
    ``bias`` and the boolean ``mask`` (true: attend; false gives the score −∞ before the
    softmax) broadcast to ``(n, nheads, q_len, kv_len)``; ``fdrop`` is applied to ``α``
    (a dropout). Returns ``(y (n, q_len, vd), α (n, nheads, q_len, kv_len))``; ``d`` is
    ``qk ÷ nheads``. A query whose every key is masked gets NaN, as in NNlib.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> y, a = fx.dot_product_attention(jnp.ones((1, 2, 4)), jnp.ones((1, 3, 4)),
    ...                                 jnp.ones((1, 3, 6)), nheads=2)
    >>> y.shape, a.shape, float(a[0, 0, 0, 0])
    ((1, 2, 6), (1, 2, 2, 3), 0.33333)
    """
    n, lq, dq = q.shape
    lk, dv = k.shape[1], v.shape[2]
    qh = jnp.reshape(q, (n, lq, nheads, dq // nheads))
    kh = jnp.reshape(k, (n, lk, nheads, dq // nheads))
    vh = jnp.reshape(v, (n, lk, nheads, dv // nheads))
    scale = jnp.asarray(1 / np.sqrt(dq // nheads), q.dtype)
    logits = jnp.einsum("nqhd,nkhd->nhqk", qh * scale, kh)
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    alpha = jax.nn.softmax(logits, axis=-1)
    if fdrop is not None:
        alpha = fdrop(alpha)
    y = jnp.einsum("nhqk,nkhd->nqhd", alpha, vh)
    return jnp.reshape(y, (n, lq, dv)), alpha


def _dims(dims: Any) -> tuple[int, int, int, int, int, int]:
    """Flux's ``dims``: ``d``, ``(in, qkv, out)``, ``in`` an int or ``(q_in, k_in, v_in)``,
    ``qkv`` an int or ``(qk, v)``; as ``(q_in, k_in, v_in, qk, v, out)``."""
    name = "MultiHeadAttention"
    if isinstance(dims, int | np.integer) and not isinstance(dims, bool):
        d = check_size(dims, "dims", name)
        return (d,) * 6
    try:
        n_in, qkv, out = dims
        ins = (n_in,) * 3 if isinstance(n_in, int | np.integer) else tuple(n_in)
        mids = (qkv,) * 2 if isinstance(qkv, int | np.integer) else tuple(qkv)
        sizes = (*ins, *mids, out)
        if len(sizes) != 6:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}(dims): dims must be an int or (in, qkv, out) with in an int or "
            f"(q_in, k_in, v_in) and qkv an int or (qk, v), got {dims!r}."
        ) from None
    return tuple(check_size(s, "each size in dims", name) for s in sizes)  # type: ignore[return-value]


class MultiHeadAttention(Module):
    """Multi-head dot-product attention (Vaswani et al. 2017), Flux's
    ``MultiHeadAttention``: ``q = q_proj(q_in)``, ``k = k_proj(k_in)``, ``v = v_proj(v_in)``,
    ``(y, α) = dot_product_attention(q, k, v, bias; nheads, mask, fdrop=attn_drop)``, and
    it returns ``(out_proj(y), α)``.

    **Arguments:** ``MultiHeadAttention(dims, *, nheads=8, bias=False, init=glorot_uniform,
    dropout_prob=0.0)``; ``dims`` is ``d`` or ``(in, qkv, out)`` as in
    ``dot_product_attention``'s sizes (Flux's ``in => qkv => out``), ``qk`` and ``v``
    divisible by ``nheads``. Dropout on ``α`` is active as ``fx.Dropout`` is.

    **Call:** ``mha(q_in, k_in=q_in, v_in=k_in, bias=None, *, mask=None)`` with
    ``q_in (n, q_len, q_in_dim)``, ``k_in``/``v_in (n, kv_len, ·)``; returns
    ``y (n, q_len, out)`` and the scores ``α (n, nheads, q_len, kv_len)``. Computed with
    einsums (``jax.nn.dot_product_attention`` does not return ``α``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> mha = fx.MultiHeadAttention(4, nheads=2)
    >>> mha
    MultiHeadAttention(4; nheads=2)  # 64 parameters
    >>> y, a = mha(jnp.ones((5, 3, 4)), mask=fx.make_causal_mask(jnp.ones((5, 3, 4))))
    >>> y.shape, a.shape, a[0, 0, 0].tolist()
    ((5, 3, 4), (5, 2, 3, 3), [1.0, 0.0, 0.0])
    """

    def __init__(
        self, dims: Any, *, nheads: int = 8, bias: bool = False,
        init: Callable[..., Any] | None = None, dropout_prob: float = 0.0,
    ) -> None:  # fmt: skip
        q_in, k_in, v_in, qk, v, out = _dims(dims)
        nheads = check_size(nheads, "nheads", "MultiHeadAttention")
        if qk % nheads or v % nheads:
            raise ValueError(
                f"MultiHeadAttention: qk_dim = {qk} and v_dim = {v} must be divisible by "
                f"nheads = {nheads}."
            )
        self.nheads = nheads
        self.q_proj = Dense(q_in, qk, bias=bias, init=init)
        self.k_proj = Dense(k_in, qk, bias=bias, init=init)
        self.v_proj = Dense(v_in, v, bias=bias, init=init)
        self.attn_drop = Dropout(dropout_prob)
        self.out_proj = Dense(v, out, bias=bias, init=init)

    def __call__(
        self, q_in: Any, k_in: Any = None, v_in: Any = None, bias: Any = None, *,
        mask: Any = None,
    ) -> tuple[Any, Any]:  # fmt: skip
        k_in = q_in if k_in is None else k_in
        v_in = k_in if v_in is None else v_in
        dtype = self.q_proj.weight.dtype
        xs = [float_input(a, dtype) for a in (q_in, k_in, v_in)]
        for x, p in zip(xs, (self.q_proj, self.k_proj, self.v_proj)):
            if x.ndim != 3 or x.shape[-1] != p.weight.shape[1]:
                raise shape_error(self._show(), f"(n, len, {p.weight.shape[1]})", x)
        if xs[1].shape[:2] != xs[2].shape[:2] or xs[0].shape[0] != xs[1].shape[0]:
            raise ValueError(
                f"layer {self._show()}: keys and values must share (n, kv_len) and queries n; "
                f"got shapes {[tuple(x.shape) for x in xs]}."
            )
        q, k, v = self.q_proj(xs[0]), self.k_proj(xs[1]), self.v_proj(xs[2])
        y, alpha = dot_product_attention(
            q, k, v, bias, nheads=self.nheads, mask=mask, fdrop=self.attn_drop
        )
        return self.out_proj(y), alpha

    def _show(self) -> str:
        qk, q_in = self.q_proj.weight.shape
        k_in = self.k_proj.weight.shape[1]
        v, v_in = self.v_proj.weight.shape
        out = self.out_proj.weight.shape[0]
        if q_in == k_in == v_in == qk == v == out:
            text = f"{q_in}"
        elif q_in == k_in == v_in and qk == v:
            text = f"{q_in} => {qk} => {out}"
        elif q_in == k_in == v_in:
            text = f"{q_in} => ({qk}, {v}) => {out}"
        else:
            text = f"({q_in}, {k_in}, {v_in}) => ({qk}, {v}) => {out}"
        text += f"; nheads={self.nheads}"
        if self.q_proj.bias is not None:
            text += ", bias=True"
        if self.attn_drop.p != 0:
            text += f", dropout_prob={self.attn_drop.p}"
        return f"MultiHeadAttention({text})"
