"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU``, ``GRUv3`` and their cells, with Flux v0.12's gate
equations, parameters and (trainable) initial states.

A layer fed a sequence ``(n, time, features)`` runs it as one ``lax.scan`` from the initial
state and returns every step's output ``(n, time, out)`` (Flux ≥ 0.15's behaviour). Fed one
time step ``(n, features)`` it is Flux v0.12's stateful ``Recur``: the state is kept in the
layer's ``state`` (written back by ``train`` and ``gradient``), ``fx.reset(m)`` clears it;
until the next step the state is read from ``state0``, so the gradient reaches ``state0``, as
v0.12's (whose reset state is the ``init`` array itself).
Over a sequence, each scan step of RNN, LSTM and GRU computes its gates with one product
``[x, h]·W_j`` of the joined weights (built once per call, outside the scan): measured
faster forward and backward than the two products ``x·Wiᵀ + h·Whᵀ`` on CPU (LSTM 32→128:
1.36×; GRU: 1.26×), which were in turn ~2× faster than projecting the whole sequence
first; ``unroll=2`` measured slower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..activations import sigmoid
from ..init import glorot_uniform, zeros32
from ..module import Module, show
from ._common import assign_state, call_init, check_size, float_input, shape_error

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "GRUv3Cell", "RNN", "LSTM", "GRU", "GRUv3"]


def _tanh(x: Any) -> Any:
    return jnp.tanh(x)


_tanh.__name__ = "tanh"


def _inits(init: Any, initb: Any, init_state: Any) -> tuple[Any, Any, Any]:
    return init or glorot_uniform, initb or zeros32, init_state or zeros32


class _Cell(Module):
    """Weights ``Wi (g·out, in)``, ``Wh (g·out, out)``, ``b (g·out,)`` and ``state0``."""

    gates = 1
    hgates = 1  # rows of Wh, in units of out

    def _weights(self, n_in: Any, n_out: Any, init: Any, initb: Any, init_state: Any) -> Any:
        """Check the sizes, make ``Wi``, ``Wh`` and ``b``; returns ``out`` and a function
        making one ``(out,)`` array of the initial state (``init_state``, default zeros)."""
        init, initb, init_state = _inits(init, initb, init_state)
        name = type(self).__name__
        n_in, n_out = check_size(n_in, "in", name), check_size(n_out, "out", name)
        g = self.gates
        self.Wi = jnp.asarray(call_init(init, (g * n_out, n_in), name))
        self.Wh = jnp.asarray(call_init(init, (self.hgates * n_out, n_out), name))
        self.b = jnp.asarray(initb(g * n_out))
        return n_out, lambda: jnp.asarray(init_state(n_out))

    def project(self, x: Any) -> Any:
        """The input's share of the gates, ``x @ Wi.T + b`` (any leading axes)."""
        return x @ self.Wi.T + self.b

    def joint(self) -> tuple[Any, Any] | None:
        """``(W_j, b_j)`` with ``[x, h]·W_j + b_j`` the gates ``x·Wiᵀ + h·Whᵀ + b`` in one
        product, for ``step_joint``; ``None`` where the cell has no such form."""
        return jnp.concatenate([self.Wi, self.Wh], axis=1).T, self.b

    def step_joint(self, state: Any, x: Any, w: Any, b: Any) -> tuple[Any, Any]:
        """``step`` from the joined product (same numbers up to float rounding)."""
        h = state[0] if isinstance(state, tuple) else state
        return self.finish(state, jnp.concatenate([x, h], axis=-1) @ w + b)

    def step(self, state: Any, gx: Any) -> tuple[Any, Any]:
        """One step from the input's share of the gates ``gx`` (see ``project``)."""
        h = state[0] if isinstance(state, tuple) else state
        return self.finish(state, gx + h @ self.Wh.T)

    def initial(self, n: int | None) -> Any:
        """``state0`` broadcast to ``n`` observations (``None``: as stored)."""
        if n is None:
            return self.state0
        return jax.tree_util.tree_map(lambda s: jnp.broadcast_to(s, (n, *s.shape)), self.state0)

    def __call__(self, h: Any, x: Any) -> tuple[Any, Any]:
        """Flux v0.12's cell call: ``(h′, y) = cell(h, x)``."""
        x = self._input(x)
        return self.step(h, self.project(x))

    def _input(self, x: Any, owner: Module | None = None) -> Any:
        x = float_input(x, self.Wi.dtype)
        n_in = self.Wi.shape[1]
        if x.ndim == 0 or x.shape[-1] != n_in:
            raise shape_error(
                (owner or self)._show(),
                f"(n, {n_in}) for one step or (n, time, {n_in}) for a sequence",
                x,
                "Sequences are (observations, time, features).",
            )
        return x

    def _show(self) -> str:
        n_out, n_in = self.Wh.shape[1], self.Wi.shape[1]
        return f"{type(self).__name__}({n_in} => {n_out}{self._extra()})"

    def _extra(self) -> str:
        return ""


class RNNCell(_Cell):
    """The vanilla recurrent cell: ``h′ = act(x·Wiᵀ + h·Whᵀ + b)``; output ``h′``.

    **Arguments:** ``RNNCell(in, out, act=tanh; init=glorot_uniform, initb=zeros32,
    init_state=zeros32)``. ``cell(h, x)`` returns ``(h′, h′)``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> c = fx.RNNCell(3, 5)
    >>> c
    RNNCell(3 => 5)  # 50 parameters
    >>> h, y = c(c.state0, jnp.ones((2, 3)))
    >>> y.shape
    (2, 5)
    """

    def __init__(
        self, n_in: int, n_out: int, act: Callable[[Any], Any] | None = None, *,
        init: Any = None, initb: Any = None, init_state: Any = None,
    ) -> None:  # fmt: skip
        n_out, s0 = self._weights(n_in, n_out, init, initb, init_state)
        self.state0 = s0()
        self.act = _tanh if act is None else act

    def finish(self, h: Any, g: Any) -> tuple[Any, Any]:
        h = self.act(g)
        return h, h

    def _extra(self) -> str:
        return "" if self.act is _tanh else f", {show(self.act)}"


class LSTMCell(_Cell):
    """The LSTM cell, Flux v0.12's: gates stacked as input, forget, cell, output,
    ``g = x·Wiᵀ + h·Whᵀ + b``; ``c′ = σ(f)⊙c + σ(i)⊙tanh(g_c)``, ``h′ = σ(o)⊙tanh(c′)``;
    output ``h′``; state ``(h, c)``; the forget gate's bias starts at 1.

    >>> import fluxjax as fx
    >>> c = fx.LSTMCell(3, 5)
    >>> c
    LSTMCell(3 => 5)  # 190 parameters
    >>> c.b[5:10]
    Array([1., 1., 1., 1., 1.], dtype=float32)
    """

    gates = hgates = 4

    def __init__(
        self, n_in: int, n_out: int, *, init: Any = None, initb: Any = None,
        init_state: Any = None,
    ) -> None:  # fmt: skip
        n_out, s0 = self._weights(n_in, n_out, init, initb, init_state)
        self.b = self.b.at[n_out : 2 * n_out].set(1)
        self.state0 = (s0(), s0())

    def finish(self, state: Any, g: Any) -> tuple[Any, Any]:
        _, c = state
        i, f, gc, o = jnp.split(g, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(gc)
        h = sigmoid(o) * jnp.tanh(c)
        return (h, c), h


class GRUCell(_Cell):
    """The GRU cell, Flux v0.12's (the original paper's variant): gates stacked as reset,
    update, candidate; ``r = σ(xWᵢᵣ + hWₕᵣ + bᵣ)``, ``z = σ(xWᵢ_z + hWₕ_z + b_z)``,
    ``h̃ = tanh(xWᵢₕ + r⊙(hWₕₕ) + bₕ)``, ``h′ = (1 − z)⊙h̃ + z⊙h``; output ``h′``.

    >>> import fluxjax as fx
    >>> fx.GRUCell(3, 5)
    GRUCell(3 => 5)  # 140 parameters
    """

    gates = hgates = 3

    def __init__(
        self, n_in: int, n_out: int, *, init: Any = None, initb: Any = None,
        init_state: Any = None,
    ) -> None:  # fmt: skip
        n_out, s0 = self._weights(n_in, n_out, init, initb, init_state)
        self.state0 = s0()

    def step(self, h: Any, gx: Any) -> tuple[Any, Any]:
        gh = h @ self.Wh.T
        xr, xz, xh = jnp.split(gx, 3, axis=-1)
        hr, hz, hh = jnp.split(gh, 3, axis=-1)
        return self._gru(h, xr + hr, xz + hz, xh, hh)

    def _gru(self, h: Any, gr: Any, gz: Any, xh: Any, hh: Any) -> tuple[Any, Any]:
        r = sigmoid(gr)
        z = sigmoid(gz)
        cand = jnp.tanh(xh + r * hh)
        h = (1 - z) * cand + z * h
        return h, h

    def joint(self) -> tuple[Any, Any]:
        # [x, h] @ [[Wi_rz, Wi_h, 0], [Wh_rz, 0, Wh_h]]: r, z summed; xh and hh apart (4·out)
        n = self.Wh.shape[1]
        n_in = self.Wi.shape[1]
        wi, wh = self.Wi.T, self.Wh.T
        top = jnp.concatenate([wi, jnp.zeros((n_in, n), wi.dtype)], axis=1)
        bottom = jnp.concatenate([wh[:, : 2 * n], jnp.zeros((n, n), wh.dtype), wh[:, 2 * n :]], 1)
        b = jnp.concatenate([self.b, jnp.zeros((n,), self.b.dtype)])
        return jnp.concatenate([top, bottom], axis=0), b

    def step_joint(self, h: Any, x: Any, w: Any, b: Any) -> tuple[Any, Any]:
        g = jnp.concatenate([x, h], axis=-1) @ w + b
        gr, gz, xh, hh = jnp.split(g, 4, axis=-1)
        return self._gru(h, gr, gz, xh, hh)


class GRUv3Cell(_Cell):
    """The GRU cell of the v3 paper (Flux's ``GRUv3Cell``, PyTorch's and cuDNN's order of
    the reset gate): as ``GRUCell`` but the reset gate acts before the recurrent product,
    ``h̃ = tanh(xWᵢₕ + (r⊙h)·Wh_hᵀ + bₕ)``, with its own ``Wh_h (out, out)``; ``Wh`` holds
    the reset and update rows only, ``(2·out, out)``.

    >>> import fluxjax as fx
    >>> fx.GRUv3Cell(3, 5)
    GRUv3Cell(3 => 5)  # 140 parameters
    """

    gates, hgates = 3, 2

    def joint(self) -> None:
        return None  # the candidate's recurrent product needs r first

    def __init__(
        self, n_in: int, n_out: int, *, init: Any = None, initb: Any = None,
        init_state: Any = None,
    ) -> None:  # fmt: skip
        n_out, s0 = self._weights(n_in, n_out, init, initb, init_state)
        self.Wh_h = jnp.asarray(_inits(init, initb, init_state)[0](n_out, n_out))
        self.state0 = s0()

    def step(self, h: Any, gx: Any) -> tuple[Any, Any]:
        gh = h @ self.Wh.T
        xr, xz, xh = jnp.split(gx, 3, axis=-1)
        hr, hz = jnp.split(gh, 2, axis=-1)
        r = sigmoid(xr + hr)
        z = sigmoid(xz + hz)
        cand = jnp.tanh(xh + (r * h) @ self.Wh_h.T)
        h = (1 - z) * cand + z * h
        return h, h


class _Recur(Module):
    """A cell and the state it carries between calls (Flux v0.12's ``Recur``)."""

    # arrays whose leading batch axis follows the data (fx.load and fx.loadmodel accept a
    # saved state with another batch size, or none, and take it as it is)
    _batch_axis_attrs = ("state",)
    # files saved before `fresh` existed: their stored state is used as it is
    _added_attrs = {"fresh": False}

    def _wrap(self, cell: _Cell) -> None:
        self.cell = cell
        self.state = jax.tree_util.tree_map(jnp.copy, cell.state0)
        # True while the state is state0's (after construction or fx.reset): it is then read
        # from state0, so the gradient reaches state0, as v0.12's (whose state *is* the init
        # array then); a stateful step or an assignment to ``state`` clears it
        self.fresh = jnp.asarray(True)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "state":
            self.__dict__["fresh"] = jnp.asarray(False)

    def trainable(self) -> tuple[str, ...]:
        return ("cell",)

    def _reset(self, n: int | None) -> None:
        # state0 again, keeping the batch size the state has (so a compiled step's shapes
        # stay) unless ``n`` asks for another
        def again(s0: Any, s: Any) -> Any:
            return jnp.broadcast_to(s0, s.shape if n is None else (n, *s0.shape))

        assign_state(self, "state", jax.tree_util.tree_map(again, self.cell.state0, self.state))
        assign_state(self, "fresh", jnp.asarray(True))

    def __call__(self, x: Any) -> Any:
        cell = self.cell
        x = cell._input(x, self)
        if x.ndim == 3:
            return self.sequence(x)
        if x.ndim > 3:
            raise shape_error(self._show(), "(n, in) or (n, time, in)", x)
        state = self.state
        lead = jax.tree_util.tree_leaves(state)[0].shape[:-1]
        if x.ndim == 2 and lead not in ((), (x.shape[0],)):
            raise ValueError(
                f"layer {self._show()}: its state holds {lead[0]} observations but the input "
                f"has {x.shape[0]} (shape {tuple(x.shape)}); call fx.reset(m, {x.shape[0]}) "
                "before a batch of another size."
            )
        n = x.shape[0] if x.ndim == 2 else None
        if n is not None and lead == ():
            state = jax.tree_util.tree_map(lambda s: jnp.broadcast_to(s, (n, *s.shape)), state)
        fresh = self.fresh
        state = jax.tree_util.tree_map(
            lambda s, s0: jnp.where(fresh, s0, s), state, cell.initial(n)
        )
        new, y = cell.step(state, cell.project(x))
        assign_state(self, "state", new)
        assign_state(self, "fresh", jnp.asarray(False))
        return y

    def sequence(self, x: Any) -> Any:
        """Run ``(n, time, in)`` from the initial state; every step's output, ``(n, time, out)``."""
        cell = self.cell
        joint = cell.joint()

        def body(state: Any, xt: Any) -> tuple[Any, Any]:
            if joint is not None:
                return cell.step_joint(state, xt, *joint)
            return cell.step(state, cell.project(xt))

        # the input projection stays inside the scan: measured on CPU, one big product
        # before it makes the backward pass ~2× slower (its cotangent is stacked per step)
        _, ys = jax.lax.scan(body, cell.initial(x.shape[0]), jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(ys, 0, 1)

    def _show(self) -> str:
        return self.cell._show().replace("Cell(", "(", 1)


class RNN(_Recur):
    """A recurrent layer of ``RNNCell``s: ``RNN(in, out, act=tanh; init, initb, init_state)``.

    ``m(x)`` with ``x`` of shape ``(n, time, in)`` returns ``(n, time, out)``, every step's
    ``h``, starting from ``state0``; with ``(n, in)`` it takes one step from ``m.state``
    and stores the new state (``fx.reset(m)`` sets it back to ``state0``).

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> r = fx.RNN(5, 4, fx.relu)
    >>> r
    RNN(5 => 4, relu)  # 44 parameters, plus 4 non-trainable
    >>> r(jnp.ones((2, 7, 5))).shape
    (2, 7, 4)
    """

    def __init__(self, n_in: int, n_out: int, act: Any = None, **kw: Any) -> None:
        self._wrap(RNNCell(n_in, n_out, act, **kw))


class LSTM(_Recur):
    """A recurrent layer of ``LSTMCell``s: ``LSTM(in, out; init, initb, init_state)``; the
    state is ``(h, c)``, the output ``h``. Calls as ``RNN``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.LSTM(4, 4)
    >>> m
    LSTM(4 => 4)  # 152 parameters, plus 8 non-trainable
    >>> m(jnp.ones((3, 4))).shape, m.state[1].shape
    ((3, 4), (3, 4))
    """

    def __init__(self, n_in: int, n_out: int, **kw: Any) -> None:
        self._wrap(LSTMCell(n_in, n_out, **kw))


class GRU(_Recur):
    """A recurrent layer of ``GRUCell``s: ``GRU(in, out; init, initb, init_state)``. Calls as
    ``RNN``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.GRU(4, 4)(jnp.ones((2, 6, 4))).shape
    (2, 6, 4)
    """

    def __init__(self, n_in: int, n_out: int, **kw: Any) -> None:
        self._wrap(GRUCell(n_in, n_out, **kw))


class GRUv3(_Recur):
    """A recurrent layer of ``GRUv3Cell``s: ``GRUv3(in, out; init, initb, init_state)``.
    Calls as ``RNN``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> m = fx.GRUv3(4, 4)
    >>> m
    GRUv3(4 => 4)  # 112 parameters, plus 4 non-trainable
    >>> m(jnp.ones((2, 6, 4))).shape
    (2, 6, 4)
    """

    def __init__(self, n_in: int, n_out: int, **kw: Any) -> None:
        self._wrap(GRUv3Cell(n_in, n_out, **kw))
