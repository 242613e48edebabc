"""Dense and Chain: the layers of the tutorial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..counts import is_count, is_int
from ..init import glorot_uniform
from ..module import Module, show
from ._common import call_init

__all__ = ["Dense", "Chain"]


def _identity(x: Any) -> Any:
    return x


class Dense(Module):
    """A fully connected layer: ``y = act(x @ weight.T + bias)``.

    **Arguments:** ``Dense(in, out, act=identity, *, bias=True, init=glorot_uniform)``, or
    ``Dense(weight, bias=True, act=identity)`` from a given ``(out, in)`` array.

    * ``weight``: shape ``(out, in)`` (Flux's shape, so the initialisers' fan rules carry over).
    * ``bias``: shape ``(out,)``, zeros by default; ``bias=False`` for none; or an array.
    * input ``x``: one observation ``(in,)``, a batch ``(n, in)`` or any ``(..., in)``;
      output ``(..., out)``. Observations are along the first axis.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> d = fx.Dense(jnp.array([[1.0, 2.0]]), jnp.array([0.5]))
    >>> d
    Dense(2 => 1)  # 3 parameters
    >>> d(jnp.array([[1.0, 1.0], [0.0, 1.0]]))
    Array([[3.5],
           [2.5]], dtype=float32)
    """

    def __init__(
        self,
        in_or_weight: Any,
        out: Any = None,
        act: Callable[[Any], Any] | None = None,
        *,
        bias: Any = True,
        init: Callable[..., Any] | None = None,
    ) -> None:
        if is_int(in_or_weight):
            if not is_int(out):
                raise TypeError(
                    f"Dense({in_or_weight!r}, {out!r}): the output size must be an int, "
                    "e.g. Dense(1, 4, fx.sigmoid)."
                )
            n_in, n_out = int(in_or_weight), int(out)
            if not (is_count(n_in) and is_count(n_out)):
                raise ValueError(f"Dense({n_in}, {n_out}): sizes must be positive integers.")
            if init is None:
                init = glorot_uniform
            weight = call_init(init, (n_out, n_in), f"Dense({n_in}, {n_out})")
            if tuple(np.shape(weight)) != (n_out, n_in):
                raise ValueError(
                    f"Dense({n_in}, {n_out}): init returned an array of shape "
                    f"{tuple(np.shape(weight))}, but the weight has shape ({n_out}, {n_in}); "
                    "init is called as init(out, in) and must return that shape."
                )
        else:
            if isinstance(in_or_weight, str | float):
                raise TypeError(
                    f"Dense({in_or_weight!r}, {out!r}): the sizes must be ints, e.g. "
                    "Dense(2, 3, fx.relu) (or pass a weight matrix: Dense(W))."
                )
            # Dense(weight, bias=True, act=identity): Flux's array constructor.
            if init is not None:
                raise TypeError("Dense(weight, ...): init= only applies to Dense(in, out, ...).")
            if out is not None and not callable(out):
                bias, out = out, None
            elif callable(out) and act is None:
                act, out = out, None
            weight = in_or_weight
            if isinstance(weight, list):
                weight = np.asarray(weight, dtype=np.float32)
            weight = jnp.asarray(weight)
            if not jnp.issubdtype(weight.dtype, jnp.inexact):  # complex weights stay complex
                weight = weight.astype(jnp.float32)  # integer weights would truncate inputs
            if weight.ndim != 2:
                raise ValueError(
                    f"Dense(weight): weight must be a matrix of shape (out, in), "
                    f"got shape {weight.shape}."
                )
            n_out, n_in = weight.shape
        self.weight = weight
        if bias is True:
            self.bias = jnp.zeros((n_out,), self.weight.dtype)
        elif bias is False or bias is None:
            self.bias = None
        else:
            b = jnp.asarray(np.asarray(bias, dtype=np.float32) if isinstance(bias, list) else bias)
            if b.shape != (n_out,):
                raise ValueError(
                    f"Dense({n_in} => {n_out}): bias must have shape ({n_out},), got {b.shape}."
                )
            self.bias = b.astype(self.weight.dtype)
        if act is not None and not callable(act):
            raise TypeError(
                f"Dense: the activation must be a function, got {act!r}; pass e.g. fx.relu "
                f"(not the name {act!r})."
            )
        self.act = _identity if act is None else act

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        n_in = self.weight.shape[1]
        if x.ndim == 0 or x.shape[-1] != n_in:
            raise ValueError(
                f"layer {self._show()} expects inputs with {n_in} features on the last axis, "
                f"but got an array of shape {tuple(x.shape)}. Observations go along the first "
                f"axis: pass shape (n, {n_in}) or ({n_in},)."
            )
        if x.dtype != self.weight.dtype and not jnp.iscomplexobj(x):
            x = x.astype(self.weight.dtype)  # Flux's _match_eltype; complex x stays complex
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return self.act(y)

    def _show(self) -> str:
        out, n_in = self.weight.shape
        text = f"Dense({n_in} => {out}"
        if self.act is not _identity and getattr(self.act, "__name__", "") != "identity":
            text += f", {show(self.act)}"
        if self.bias is None:
            text += "; bias=False"
        return text + ")"


class Chain(Module):
    """Apply layers in sequence: ``Chain(f1, f2, f3)(x) == f3(f2(f1(x)))``.

    Any callable is a layer (``fx.softmax``, a user's function). ``m[0]`` is the first layer;
    ``m[0:2]`` is a Chain of the same layer objects (so training it trains ``m``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    >>> m
    Chain(Dense(1 => 4, sigmoid), Dense(4 => 1))  # 13 parameters
    >>> m(jnp.zeros((21, 1))).shape
    (21, 1)
    >>> m[0:1]
    Chain(Dense(1 => 4, sigmoid))  # 8 parameters

    Named layers, as ``Chain(enc = ..., dec = ...)`` in Flux:

    >>> ae = fx.Chain(enc=fx.Dense(4, 2), dec=fx.Dense(2, 4))
    >>> ae.enc
    Dense(4 => 2)  # 10 parameters
    >>> ae["dec"] is ae[1]
    True
    """

    def __init__(self, *layers: Any, **named: Any) -> None:
        if len(layers) == 1 and isinstance(layers[0], list | tuple):
            layers = tuple(layers[0])
        if layers and named:
            raise TypeError("Chain: give the layers either all by position or all by name.")
        if "layers" in named:
            raise ValueError("Chain: a layer may not be named 'layers'.")
        for i, f in named.items() if named else enumerate(layers):
            if not callable(f):
                raise TypeError(
                    f"Chain: layer {i} is {f!r} of type {type(f).__name__}, which is not "
                    "callable; every layer must be a layer or a function."
                )
        self.layers = dict(named) if named else tuple(layers)

    def _list(self) -> list[Any]:
        layers = self.layers
        return list(layers.values()) if isinstance(layers, dict) else list(layers)

    def __call__(self, x: Any) -> Any:
        for f in self._list():
            x = f(x)
        return x

    def __getattr__(self, name: str) -> Any:
        layers = self.__dict__.get("layers")
        if isinstance(layers, dict) and name in layers:
            return layers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __getitem__(self, i: int | slice | str) -> Any:
        if isinstance(i, str):
            return self.layers[i]
        if isinstance(i, slice):
            if isinstance(self.layers, dict):
                return Chain(**dict(list(self.layers.items())[i]))
            return Chain(*self.layers[i])
        return self._list()[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._list())

    def _show(self) -> str:
        if isinstance(self.layers, dict):
            return "Chain(" + ", ".join(f"{k}={show(f)}" for k, f in self.layers.items()) + ")"
        return "Chain(" + ", ".join(show(f) for f in self.layers) + ")"


def activations(m: Chain, x: Any) -> tuple[Any, ...]:
    """Every intermediate output of a Chain, as a tuple (Flux's ``activations``)."""
    out = []
    for f in m._list():
        x = f(x)
        out.append(x)
    return tuple(out)
