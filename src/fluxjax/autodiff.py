"""Zygote's interface on JAX: ``gradient``, ``withgradient``, ``pullback``, ``jacobian``,
``hessian``, and implicit parameters (``params``, ``Params``, ``Grads``).

Explicit mode differentiates with respect to the arguments::

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.gradient(lambda x, y: (x * y).sum(), jnp.array([1.0, 2.0]), 3.0)
    (Array([3., 3.], dtype=float32), Array(3., dtype=float32, weak_type=True))

Implicit mode (Flux v0.12, the tutorial's) differentiates a zero-argument function with
respect to a collection of a model's arrays::

    >>> m = fx.Dense(jnp.array([[2.0]]), jnp.array([0.0]))
    >>> ps = fx.params(m)
    >>> gs = fx.gradient(lambda: m(jnp.array([[3.0]])).sum(), ps)
    >>> gs[m.weight]
    Array([[3.]], dtype=float32)

How implicit gradients work: JAX arrays are values, so a ``Params`` holds *slots* (a module
and an attribute), not arrays. ``gradient`` binds traced values into the slots, calls your
function, and restores the old arrays in a ``finally`` — no tracer is left in a module even
when your function raises.

Complex parameters get Zygote's gradient: for a real loss of ``z = x + iy`` it is
``∂L/∂x + i·∂L/∂y`` (the conjugate of what ``jax.grad`` returns), so ``z - η·g`` descends,
as in Flux (see ``zygote_grads``).

Gradients of arrays the function does not use are **zeros** (JAX's convention), never
``None``; ``update`` and ``train`` therefore still advance the optimiser state of such
arrays (Zygote returns ``nothing`` and Flux skips them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import mode as _mode
from .layerstate import recording
from .module import Module, Slot, is_array, walk
from .naming import required_parameters
from .params import Grads, Param, Params, group, params  # noqa: F401  (fluxjax.autodiff.Params, ...)

__all__ = [
    "Params",
    "Grads",
    "params",
    "gradient",
    "withgradient",
    "pullback",
    "jacobian",
    "hessian",
]


def zygote_grads(grads: Any) -> Any:
    """Gradients in Zygote's convention for complex numbers: for a real loss ``L`` of a
    complex ``z = x + iy``, Zygote gives ``∂L/∂x + i·∂L/∂y`` (so ``x - η·g`` goes downhill),
    JAX's ``grad`` the conjugate. This conjugates every complex leaf of ``grads`` (a tree,
    a list, ``Grads`` contents); real leaves pass through unchanged. Flux#1776.

    >>> import jax, jax.numpy as jnp
    >>> z = jnp.array([1.0 + 2.0j])
    >>> zygote_grads(jax.grad(lambda z: jnp.sum(jnp.abs(z) ** 2))(z))  # 2z, as Zygote
    Array([2.+4.j], dtype=complex64)
    """
    return jax.tree_util.tree_map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, grads)


# -- binding: the one place that puts traced values into modules ------------------------
def bind_call(entries: list[Param], values: list[Any], f: Callable[[], Any]) -> Any:
    """Call ``f()`` with ``values`` bound into the slots of ``entries``; always restore."""
    old = [p.get() for p in entries]
    try:
        for p, v in zip(entries, values):
            p.set(v)
        return f()
    finally:
        for p, v in zip(entries, old):
            p.set(v)


class _State:
    """State the differentiated function's forward pass replaces (BatchNorm statistics,
    dropout keys, recurrent states), written back afterwards as in Flux.

    ``wrap(f)`` returns ``g(*a) -> (y, new)``: it records every ``assign_state`` and every
    array replaced in a module argument, restores the old values (no tracer stays in a
    module), and returns the new ones; ``write_back(new, originals)`` stores them once JAX
    has made them concrete."""

    def __init__(self) -> None:
        self.records: list[tuple[Module, str]] = []
        self.changed: list[tuple[int, list[int]]] = []

    def wrap(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def g(*a: Any) -> tuple[Any, Any]:
            mods = [i for i, v in enumerate(a) if isinstance(v, Module)]
            before = [jax.tree_util.tree_leaves(a[i]) for i in mods]
            with _mode.training(), recording() as rec:
                try:
                    y = f(*a)
                    new_args = []
                    self.changed = []
                    for i, old in zip(mods, before):
                        now = jax.tree_util.tree_leaves(a[i])
                        idx = [j for j, (u, v) in enumerate(zip(old, now)) if u is not v]
                        self.changed.append((i, idx))
                        new_args.append([now[j] for j in idx])
                    self.records = [(m, n) for m, n, _ in rec.values()]
                    new_state = [m.__dict__[n] for m, n in self.records]
                finally:
                    for m, n, old in rec.values():
                        m.__dict__[n] = old
            return y, (new_state, new_args)

        return g

    def write_back(self, new: Any, originals: tuple[Any, ...]) -> None:
        new_state, new_args = new
        for (m, n), v in zip(self.records, new_state):
            m.__dict__[n] = v
        for (i, idx), values in zip(self.changed, new_args):
            slots = [Slot(o, path) for o, path, _ in walk(originals[i], trainable_only=False)]
            for j, v in zip(idx, values):
                slots[j].set(v)


def first_output(y: Any) -> Any:
    """Zygote's auxiliary-output rule: of a tuple/dict result, differentiate the first."""
    if isinstance(y, tuple) and not hasattr(y, "shape"):
        return y[0]
    if isinstance(y, dict):
        return next(iter(y.values()))
    return y


def _check_scalar(y: Any, fname: str) -> None:
    if not (jnp.ndim(y) == 0 and jnp.issubdtype(jnp.result_type(y), jnp.floating)):
        shape = tuple(jnp.shape(y))
        hint = "use fx.jacobian for array outputs" if shape else "return a float"
        raise TypeError(
            f"{fname}: the function must return a real scalar, got "
            f"{type(y).__name__} of shape {shape}; {hint}."
        )


def _check_inexact(args: tuple[Any, ...]) -> None:
    """Refuse an integer or boolean array argument: its gradient would be a ``float0``
    (void) array, not numbers (arrays inside a module may be integers: counters, keys)."""
    for i, a in enumerate(args):
        if is_array(a) and not jnp.issubdtype(a.dtype, jnp.inexact):
            raise TypeError(
                f"gradient: argument {i + 1} is an integer array ({a.dtype}, shape "
                f"{tuple(a.shape)}), which has no gradient; convert it to float first: "
                "jnp.asarray(x, jnp.float32)."
            )


class WithGradient(NamedTuple):
    """``(val, grad)`` as returned by ``withgradient``."""

    val: Any
    grad: Any


def _implicit(f: Callable[[], Any], ps: Params, fname: str) -> tuple[Any, Grads]:
    entries = ps.entries
    values = [p.get() for p in entries]
    state = _State()
    call = state.wrap(lambda vals: bind_call(entries, vals, f))

    def pure(vals: list[Any]) -> tuple[Any, Any]:
        y, new = call(vals)
        y0 = first_output(y)
        _check_scalar(y0, fname)
        return y0, (y, new)

    (_, (y, new)), gs = jax.value_and_grad(pure, has_aux=True)(values)
    state.write_back(new, ())
    return y, Grads(ps, zygote_grads(gs))


def withgradient(f: Callable[..., Any], *args: Any, mode: str = "reverse") -> WithGradient:
    """Value and gradient together: ``(val, grad)``.

    With a tuple or dict result, the gradient is of its first element and ``val`` is the
    whole result (Zygote's auxiliary-output rule). With ``Params``, ``grad`` is a ``Grads``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> val, grad = fx.withgradient(lambda x: (x**2).sum(), jnp.array([1.0, 2.0]))
    >>> val, grad
    (Array(5., dtype=float32), (Array([2., 4.], dtype=float32),))
    """
    if mode not in ("reverse", "forward"):
        raise ValueError(
            f"withgradient/gradient: mode must be 'reverse' (the default, Zygote) or 'forward' "
            f"(ForwardDiff), got {mode!r}."
        )
    if len(args) == 1 and isinstance(args[0], Params):
        _check_no_arguments(f)
        if mode == "forward":
            return WithGradient(*_forward_implicit(f, args[0]))
        return WithGradient(*_implicit(f, args[0], "withgradient"))
    if not args:
        raise TypeError("withgradient(f, *args): pass the arguments, or Params for implicit mode")
    if mode == "forward":
        with _mode.training():
            y = f(*args)
        return WithGradient(y, _forward(f, args))
    if mode != "reverse":
        raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")

    state = _State()
    call = state.wrap(f)

    def pure(*a: Any) -> tuple[Any, Any]:
        y, new = call(*a)
        y0 = first_output(y)
        _check_scalar(y0, "gradient")
        return y0, (y, new)

    _check_inexact(args)
    argnums = tuple(range(len(args)))
    grad = jax.value_and_grad(pure, argnums=argnums, has_aux=True, allow_int=True)
    (_, (y, new)), gs = grad(*args)
    state.write_back(new, args)
    return WithGradient(y, zygote_grads(gs))


def _check_no_arguments(f: Any) -> None:
    """Implicit mode calls ``f()``: refuse a function with required parameters."""
    need = required_parameters(f)
    if need:
        raise TypeError(
            f"gradient(f, ps): with Params, f is called with no arguments, but it takes "
            f"({', '.join(need)}). Close over the data: fx.gradient(lambda: loss({', '.join(need)})"
            ", ps); or differentiate with respect to the model: fx.gradient(loss, m, x, y)."
        )


def gradient(f: Callable[..., Any], *args: Any, mode: str = "reverse") -> Any:
    """Gradient of a scalar function: a tuple with one entry per argument (model-shaped for
    modules), or ``Grads`` when called as ``gradient(f, ps)`` with zero-argument ``f``.

    ``mode="forward"`` uses forward-mode differentiation (``jax.jacfwd``, the analogue of
    ForwardDiff); it gives the same numbers, and is cheaper for few inputs.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> f = lambda x: jnp.sin(x).sum()
    >>> x = jnp.array([0.0, 1.0])
    >>> fx.gradient(f, x)[0], fx.gradient(f, x, mode="forward")[0]
    (Array([1.       , 0.5403023], dtype=float32), Array([1.       , 0.5403023], dtype=float32))
    """
    return withgradient(f, *args, mode=mode).grad


def _forward(f: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    call = _State().wrap(f)  # forward mode: the state is restored, not advanced

    def scalar(*a: Any) -> Any:
        y = first_output(call(*a)[0])
        _check_scalar(y, "gradient")
        return y

    with _mode.forward():
        return tuple(jax.jacfwd(scalar, argnums=tuple(range(len(args))))(*args))


def _forward_implicit(f: Callable[[], Any], ps: Params) -> tuple[Any, Grads]:
    entries = ps.entries
    values = [p.get() for p in entries]
    call = _State().wrap(lambda vals: bind_call(entries, vals, f))

    def pure(vals: list[Any]) -> Any:
        y = first_output(call(vals)[0])
        _check_scalar(y, "gradient")
        return y

    with _mode.training():
        y = f()
    with _mode.forward():
        return y, Grads(ps, jax.jacfwd(pure)(values))


def pullback(f: Callable[..., Any], *args: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(y, back)`` where ``back(ȳ)`` returns the tuple of argument gradients (or ``Grads``
    for ``pullback(f, ps)``); ``ȳ`` has the shape of ``y``. For complex values ``back``
    follows Zygote (``conj ∘ vjp ∘ conj`` of JAX's), as ``gradient`` does.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> y, back = fx.pullback(lambda x: 2 * x, jnp.array([1.0, 2.0]))
    >>> back(jnp.array([1.0, 10.0]))
    (Array([ 2., 20.], dtype=float32),)
    """
    state = _State()
    if len(args) == 1 and isinstance(args[0], Params):
        ps = args[0]
        entries = ps.entries
        call = state.wrap(lambda vals: bind_call(entries, vals, f))
        y, vjp, new = jax.vjp(call, [p.get() for p in entries], has_aux=True)
        state.write_back(new, ())
        return y, lambda dy: Grads(ps, zygote_grads(vjp(zygote_grads(dy))[0]))
    y, vjp, new = jax.vjp(state.wrap(f), *args, has_aux=True)
    state.write_back(new, args)
    return y, lambda dy: tuple(zygote_grads(vjp(zygote_grads(dy))))


def _matrix(j: Any, y_shape: tuple[int, ...], x: Any) -> Any:
    x_shape = tuple(jnp.shape(x))
    ny, nx = int(np.prod(y_shape)), int(np.prod(x_shape))
    if not x_shape:
        return jnp.reshape(j, (ny,))
    return jnp.reshape(j, (ny, nx))


def jacobian(f: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Jacobians, one per argument: for an array argument ``a`` a matrix
    ``J[k, i] = ∂y.ravel()[k] / ∂a.ravel()[i]`` (rows are outputs, row-major ravel);
    a scalar argument gives a vector, a scalar output one row.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.jacobian(lambda x: x**2, jnp.array([1.0, 3.0]))[0]
    Array([[2., 0.],
           [0., 6.]], dtype=float32)
    """
    call = _State().wrap(f)  # the state is restored, not advanced
    y = call(*args)[0]
    js = jax.jacrev(lambda *a: call(*a)[0], argnums=tuple(range(len(args))))(*args)
    return tuple(_matrix(j, tuple(jnp.shape(y)), a) for j, a in zip(js, args))


def hessian(f: Callable[[Any], Any], x: Any) -> Any:
    """Hessian of a scalar function (forward over reverse): ``H[i, j] = ∂²f/∂x[i]∂x[j]``
    over the row-major ravel of ``x``; a scalar for scalar ``x``.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> fx.hessian(lambda x: (x[0] ** 2) * x[1], jnp.array([1.0, 2.0]))
    Array([[4., 2.],
           [2., 0.]], dtype=float32)
    """
    call = _State().wrap(f)  # the state is restored, not advanced
    with _mode.forward():
        h = jax.jacfwd(jax.grad(lambda v: call(v)[0]))(x)
    n = int(np.prod(jnp.shape(x)))
    return h if jnp.ndim(x) == 0 else jnp.reshape(h, (n, n))
