"""Containers and small layers: ``SkipConnection``, ``Parallel``, ``Maxout``, ``Bilinear``,
``Embedding``, ``EmbeddingBag``, ``Scale``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..init import glorot_uniform, ones32, randn32
from ..module import Module, show
from ._common import check_size, float_input, shape_error

__all__ = ["SkipConnection", "Parallel", "Maxout", "Bilinear", "Embedding", "EmbeddingBag", "Scale"]


def _identity(x: Any) -> Any:
    return x


def _callable(f: Any, what: str, layer: str) -> Any:
    if not callable(f):
        raise TypeError(f"{layer}: {what} must be a layer or a function, got {f!r}.")
    return f


class SkipConnection(Module):
    """``connection(layer(x), x)``: with ``connection=+`` (``operator.add``) a residual block.

    >>> import operator, jax.numpy as jnp, fluxjax as fx
    >>> s = fx.SkipConnection(fx.Dense(jnp.eye(2) * 2, False), operator.add)
    >>> s
    SkipConnection(Dense(2 => 2; bias=False), add)  # 4 parameters
    >>> s(jnp.array([[1.0, 2.0]]))
    Array([[3., 6.]], dtype=float32)
    """

    def __init__(self, layer: Any, connection: Callable[[Any, Any], Any]) -> None:
        self.layers = _callable(layer, "layer", "SkipConnection")
        self.connection = _callable(connection, "connection", "SkipConnection")

    def __call__(self, x: Any) -> Any:
        return self.connection(self.layers(x), x)

    def _show(self) -> str:
        return f"SkipConnection({show(self.layers)}, {show(self.connection)})"


class Parallel(Module):
    """Flux's ``Parallel(connection, layers...)`` (current semantics):
    ``connection(f₁(x), f₂(x), …)`` for one input, ``connection(f₁(x₁), f₂(x₂), …)`` for a
    tuple of as many inputs as layers. Named branches: ``Parallel(conn, a=..., b=...)``,
    ``m.a``. A connection of ``None`` returns the tuple of outputs.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> p = fx.Parallel(lambda a, b: jnp.concatenate([a, b], -1), fx.Dense(2, 3), fx.Dense(2, 1))
    >>> p(jnp.ones((5, 2))).shape
    (5, 4)
    """

    def __init__(self, connection: Any, /, *layers: Any, **named: Any) -> None:
        if layers and named:
            raise TypeError("Parallel: give the layers either all by position or all by name.")
        if not layers and not named:
            raise TypeError("Parallel(connection, layers...): give at least one layer.")
        if "connection" in named or "layers" in named:
            raise ValueError(
                "Parallel: a branch may not be named 'connection' or 'layers' (Flux reserves "
                "those names)."
            )
        if connection is not None:
            _callable(connection, "connection", "Parallel")
        for i, f in enumerate(layers or named.values()):
            _callable(f, f"layer {i}", "Parallel")
        self.connection = connection
        self.layers = dict(named) if named else tuple(layers)

    def _branches(self) -> list[Any]:
        return list(self.layers.values() if isinstance(self.layers, dict) else self.layers)

    def __getattr__(self, name: str) -> Any:
        layers = self.__dict__.get("layers")
        if isinstance(layers, dict) and name in layers:
            return layers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __getitem__(self, i: Any) -> Any:
        return self.layers[i] if isinstance(i, str) else self._branches()[i]

    def __call__(self, *xs: Any) -> Any:
        fs = self._branches()
        if len(xs) == 1 and isinstance(xs[0], tuple):
            xs = xs[0]
        if len(xs) == 1:
            ys = tuple(f(xs[0]) for f in fs)
        elif len(xs) == len(fs):
            ys = tuple(f(x) for f, x in zip(fs, xs))
        else:
            raise ValueError(
                f"layer {self._show()} has {len(fs)} branches but got {len(xs)} inputs; give "
                "one input (sent to every branch) or one per branch."
            )
        return ys if self.connection is None else self.connection(*ys)

    def _show(self) -> str:
        if isinstance(self.layers, dict):
            inner = ", ".join(f"{k}={show(v)}" for k, v in self.layers.items())
        else:
            inner = ", ".join(show(f) for f in self.layers)
        return f"Parallel({show(self.connection)}, {inner})"


class Maxout(Module):
    """The elementwise maximum of several layers' outputs: ``Maxout(layers...)``, or
    ``Maxout(f, n)`` with ``n`` layers made by calling ``f()``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.Maxout(fx.Dense(jnp.array([[1.0]]), False), fx.Dense(jnp.array([[-1.0]]), False))
    >>> m(jnp.array([[-3.0], [2.0]]))
    Array([[3.],
           [2.]], dtype=float32)
    """

    def __init__(self, *layers: Any) -> None:
        if len(layers) == 2 and isinstance(layers[1], int) and not isinstance(layers[0], Module):
            f, n = layers
            layers = tuple(f() for _ in range(check_size(n, "n", "Maxout")))
        if not layers:
            raise TypeError("Maxout(layers...): give at least one layer.")
        for i, f in enumerate(layers):
            _callable(f, f"layer {i}", "Maxout")
        self.layers = tuple(layers)

    def __call__(self, x: Any) -> Any:
        return functools.reduce(jnp.maximum, (f(x) for f in self.layers))

    def _show(self) -> str:
        return "Maxout(" + ", ".join(show(f) for f in self.layers) + ")"


class Bilinear(Module):
    """A bilinear layer: ``z[:, o] = act(Σᵢⱼ x[:, i]·W[o, i, j]·y[:, j] + b[o])``.

    **Arguments:** ``Bilinear(in1, in2, out, act=identity; bias=True, init=glorot_uniform)``
    (weight ``(out, in1, in2)``), or ``Bilinear(W, bias=True, act=identity)`` from a given
    ``(out, in1, in2)`` array (``bias`` True, False or an array); call ``m(x, y)``,
    ``m((x, y))`` or ``m(x)`` (``y = x``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> b = fx.Bilinear(2, 3, 4)
    >>> b
    Bilinear((2, 3) => 4)  # 28 parameters
    >>> b(jnp.ones((5, 2)), jnp.ones((5, 3))).shape
    (5, 4)
    """

    def __init__(
        self, in1: Any, in2: Any = True, out: Any = None,
        act: Callable[[Any], Any] | None = None, *, bias: Any = True,
        init: Callable[..., Any] | None = None,
    ) -> None:  # fmt: skip
        if hasattr(in1, "shape") or isinstance(in1, list):  # Bilinear(W, bias, act)
            if init is not None:
                raise TypeError("Bilinear(W, ...): init= only applies to Bilinear(in1, in2, out).")
            bias, act = in2, (out if act is None else act)
            self.weight = jnp.asarray(np.asarray(in1, np.float32) if isinstance(in1, list) else in1)
            if self.weight.ndim != 3:
                raise ValueError(
                    f"Bilinear(W): W must have shape (out, in1, in2), got {self.weight.shape}."
                )
        else:
            sizes = [
                check_size(v, w, "Bilinear") for v, w in ((in1, "in1"), (in2, "in2"), (out, "out"))
            ]
            if init is None:
                init = glorot_uniform
            self.weight = jnp.asarray(init(sizes[2], sizes[0], sizes[1]))
        n_out = self.weight.shape[0]
        if bias is True:
            self.bias = jnp.zeros((n_out,), self.weight.dtype)
        elif bias is False or bias is None:
            self.bias = None
        else:
            self.bias = jnp.asarray(bias, self.weight.dtype)
            if self.bias.shape != (n_out,):
                raise ValueError(
                    f"Bilinear: bias must have shape ({n_out},), got {self.bias.shape}."
                )
        if act is not None and not callable(act):
            raise TypeError(f"Bilinear: the activation must be a function, got {act!r}.")
        self.act = _identity if act is None else act

    def __call__(self, x: Any, y: Any = None) -> Any:
        if y is None:
            x, y = x if isinstance(x, tuple) else (x, x)
        out, n1, n2 = self.weight.shape
        x, y = float_input(x, self.weight.dtype), float_input(y, self.weight.dtype)
        if x.shape[-1:] != (n1,) or y.shape[-1:] != (n2,) or x.shape[:-1] != y.shape[:-1]:
            raise ValueError(
                f"layer {self._show()} expects inputs of shapes (n, {n1}) and (n, {n2}), got "
                f"{tuple(x.shape)} and {tuple(y.shape)}."
            )
        z = jnp.einsum("...i,oij,...j->...o", x, self.weight, y)
        if self.bias is not None:
            z = z + self.bias
        return self.act(z)

    def _show(self) -> str:
        out, n1, n2 = self.weight.shape
        text = f"Bilinear(({n1}, {n2}) => {out}"
        if self.act is not _identity:
            text += f", {show(self.act)}"
        return text + ("; bias=False)" if self.bias is None else ")")


class Embedding(Module):
    """A lookup table: integer ``i`` → ``weight[:, i]``. ``Embedding(in, out;
    init=randn32)``, weight ``(out, in)`` as in Flux; an integer array of shape ``s`` gives
    ``s + (out,)``; a float (one-hot) array ``(..., in)`` gives ``x @ weight.T``. Indices are
    0-based. ``Embedding(weight)`` wraps a given ``(out, in)`` table.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> e = fx.Embedding(10, 3)
    >>> e
    Embedding(10 => 3)  # 30 parameters
    >>> e(jnp.array([[1, 2], [3, 4]])).shape
    (2, 2, 3)
    """

    def __init__(
        self, n_in: Any, out: int | None = None, *, init: Callable[..., Any] | None = None
    ) -> None:
        self.weight = _table(n_in, out, init, type(self).__name__)

    def __call__(self, x: Any) -> Any:
        x = jnp.asarray(x)
        out, n_in = self.weight.shape
        if jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.take(self.weight.T, _indices(self, x, n_in), axis=0)
        if x.ndim == 0 or x.shape[-1] != n_in:
            raise shape_error(self._show(), f"integers, or one-hot (..., {n_in})", x)
        return x.astype(self.weight.dtype) @ self.weight.T

    def _show(self) -> str:
        out, n_in = self.weight.shape
        return f"Embedding({n_in} => {out})"


def _table(n_in: Any, out: Any, init: Any, name: str) -> Any:
    """An ``(out, in)`` table: made by ``init(out, in)``, or the given array."""
    if out is None and (hasattr(n_in, "shape") or isinstance(n_in, list)):
        w = jnp.asarray(np.asarray(n_in, np.float32) if isinstance(n_in, list) else n_in)
        if w.ndim != 2 or not jnp.issubdtype(w.dtype, jnp.floating):
            raise ValueError(
                f"{name}(weight): weight must be a float (out, in) matrix, got {w.shape}."
            )
        return w
    n_in, out = check_size(n_in, "in", name), check_size(out, "out", name)
    if init is None:
        init = randn32
    return jnp.asarray(init(out, n_in))


def _indices(layer: Module, x: Any, n_in: int) -> Any:
    if not isinstance(x, jax.core.Tracer):  # traced indices: no check (JAX clamps)
        xs = np.asarray(x)
        if xs.size and (xs.min() < 0 or xs.max() >= n_in):
            raise ValueError(
                f"layer {layer._show()}: indices must be in 0..{n_in - 1}, got values "
                f"from {xs.min()} to {xs.max()}."
            )
    return x


class EmbeddingBag(Module):
    """Embed a *bag* of indices and reduce it to one vector, Flux's ``EmbeddingBag``:
    ``y = reduction(weight[:, bag], axis)``. ``EmbeddingBag(in, out, reduction=jnp.mean;
    init=randn32)`` or ``EmbeddingBag(weight, reduction=jnp.mean)``; weight ``(out, in)``.

    * integers ``(..., bag)``: each bag along the last axis, output ``(..., out)`` (Flux's
      bags along the first axis, reversed); a list of bags of different lengths gives
      ``(len(bags), out)``;
    * ``m(data, at)``: split the 1-D ``data`` into bags starting at the 0-based positions
      ``at`` (``at[0] == 0``, increasing), output ``(len(at), out)``;
    * one-hot booleans ``(..., bag, in)``: as the indices they encode.

    ``reduction(e, axis=k)`` is any reducer (``jnp.mean``, ``jnp.sum``, ``jnp.max``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> eb = fx.EmbeddingBag(jnp.eye(3) * 100)
    >>> eb
    EmbeddingBag(3 => 3)  # 9 parameters
    >>> eb(jnp.array([2, 2, 0]))
    Array([33.333336,  0.      , 66.66667 ], dtype=float32)
    >>> eb(jnp.array([2, 0, 1, 1]), [0, 2]).tolist()
    [[50.0, 0.0, 50.0], [0.0, 100.0, 0.0]]
    """

    def __init__(
        self, n_in: Any, out: Any = None, reduction: Callable[..., Any] | None = None, *,
        init: Callable[..., Any] | None = None,
    ) -> None:  # fmt: skip
        if callable(out) and reduction is None:
            out, reduction = None, out
        self.weight = _table(n_in, out, init, "EmbeddingBag")
        self.reduction = (
            jnp.mean if reduction is None else _callable(reduction, "reduction", "EmbeddingBag")
        )

    def __call__(self, x: Any, at: Any = None) -> Any:
        out, n_in = self.weight.shape
        if at is not None:
            at = [int(a) for a in np.asarray(at)]
            n = len(np.asarray(x)) if not hasattr(x, "shape") else x.shape[0]
            if not at or at[0] != 0 or any(b <= a for a, b in zip(at, at[1:])) or at[-1] >= n:
                raise ValueError(
                    f"layer {self._show()}: at must start at 0 and increase within the data "
                    f"(length {n}), got {at}."
                )
            x = jnp.asarray(x)
            return jnp.stack([self(x[a:b]) for a, b in zip(at, [*at[1:], n])])
        if isinstance(x, list | tuple) and x and not isinstance(x[0], int | np.integer):
            return jnp.stack([self(b) for b in x])
        x = jnp.asarray(x)
        if x.dtype == jnp.bool_:
            if x.ndim < 2 or x.shape[-1] != n_in:
                raise shape_error(self._show(), f"one-hot (..., bag, {n_in})", x)
            return self.reduction(x.astype(self.weight.dtype) @ self.weight.T, axis=-2)
        if not jnp.issubdtype(x.dtype, jnp.integer) or x.ndim == 0:
            raise shape_error(self._show(), "integers (..., bag)", x, "A bag is an array.")
        e = jnp.take(self.weight.T, _indices(self, x, n_in), axis=0)
        return self.reduction(e, axis=-2)

    def _show(self) -> str:
        out, n_in = self.weight.shape
        return f"EmbeddingBag({n_in} => {out})"


class Scale(Module):
    """Elementwise scale and shift, ``y = act(scale ⊙ x + bias)`` (Flux's ``Scale``, v0.12's
    ``Diagonal``), broadcasting against the trailing axes: ``Scale(sz...; bias=True,
    init=ones32)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> s = fx.Scale(2)
    >>> s
    Scale(2)  # 4 parameters
    >>> s(jnp.array([[1.0, 2.0]]))
    Array([[1., 2.]], dtype=float32)
    """

    def __init__(
        self, *sz: int, bias: bool = True, act: Callable[[Any], Any] | None = None,
        init: Callable[..., Any] | None = None,
    ) -> None:  # fmt: skip
        if not sz:
            raise TypeError("Scale(sz...): give the size, e.g. Scale(4).")
        sz = tuple(check_size(s, "each size", "Scale") for s in sz)
        if init is None:
            init = ones32
        self.scale = jnp.asarray(init(*sz))
        self.bias = jnp.zeros(sz, self.scale.dtype) if bias else None
        self.act = _identity if act is None else act

    def __call__(self, x: Any) -> Any:
        x = float_input(x, self.scale.dtype)
        sz = self.scale.shape
        if x.ndim < len(sz) or tuple(x.shape[x.ndim - len(sz) :]) != sz:
            raise shape_error(self._show(), f"(..., {', '.join(map(str, sz))})", x)
        y = self.scale * x
        if self.bias is not None:
            y = y + self.bias
        return self.act(y)

    def _show(self) -> str:
        text = "Scale(" + ", ".join(map(str, self.scale.shape))
        if self.act is not _identity:
            text += f", {show(self.act)}"
        return text + ("; bias=False)" if self.bias is None else ")")
