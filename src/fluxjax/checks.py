"""Checks of ``train``'s arguments: pure functions that return the cleaned value or raise an
error naming the value, what was expected and the fix (or warn, where the input is legal but
almost surely not what was meant). ``train`` calls them before it builds anything.

>>> import numpy as np
>>> from fluxjax.checks import check_epochs
>>> check_epochs(np.int64(3))
3
>>> check_epochs(3.0)
Traceback (most recent call last):
TypeError: train: epochs must be an int (a count of passes over the data), got 3.0 ...
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from .autodiff import Params
from .callbacks.triggers import patience
from .counts import is_int
from .module import Module
from .naming import NAMED, required_parameters
from .optimise.base import Rule
from .optimise.state import OptimiserState, check_state_fits, state_leaves  # noqa: F401

__all__ = [
    "check_epochs",
    "check_count",
    "check_data",
    "check_callback",
    "check_callbacks",
    "check_opt",
    "check_target",
    "explain_trace_error",
]


NOTHING = Params()  # what train(loss, (), data, opt) trains: Flux's idiom for "no params"

TRACE_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


def check_count(v: Any, name: str, *, lo: int = 0) -> int:
    """``v`` as a Python int (NumPy integers accepted) when it is an int ``>= lo``.

    >>> from fluxjax.checks import check_count
    >>> check_count(np.int32(2), "steps_per_call", lo=1)
    2
    """
    if not is_int(v):
        hint = f"{name}={int(v)}" if isinstance(v, float) and v.is_integer() else f"{name}=3"
        raise TypeError(
            f"train: {name} must be an int, got {v!r} ({type(v).__name__}); pass {hint}."
        )
    if v < lo:
        word = "non-negative" if lo == 0 else f">= {lo}"
        raise ValueError(f"train: {name} must be a {word} int, got {int(v)}.")
    return int(v)


def check_epochs(epochs: Any) -> int:
    """The number of epochs as an int: NumPy integers are accepted, floats, bools and
    negative numbers refused."""
    if not is_int(epochs):
        hint = f"epochs={int(epochs)}" if isinstance(epochs, float) and epochs.is_integer() else ""
        raise TypeError(
            f"train: epochs must be an int (a count of passes over the data), got {epochs!r} "
            f"({type(epochs).__name__}); pass {hint or 'e.g. epochs=10'}."
        )
    if epochs < 0:
        raise ValueError(f"train: epochs must be a non-negative int, got {int(epochs)}.")
    return int(epochs)


def _arrayish(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray)


def check_data(data: Any, epochs: int) -> None:
    """Refuse data ``train`` cannot use as meant: not iterable; a one-shot iterator
    (generator, ``zip``, ``map``) with ``epochs > 1`` (it would train one pass silently);
    one bare array (each row would be a batch). Warn on a list of
    ``(x_i, y_i)`` pairs of single observations (PyTorch's dataset habit).

    >>> from fluxjax.checks import check_data
    >>> check_data(((np.zeros((4, 1)), np.zeros((4, 1))) for _ in range(2)), 3)
    Traceback (most recent call last):
    ValueError: train: data is a generator, which can be read only once, so epochs=3 ...
    """
    if data is None or not hasattr(data, "__iter__"):
        raise TypeError(
            f"train: data must be an iterable of batches, got {type(data).__name__}; pass e.g. "
            "[(x, y)] for all the data at each step, or fx.DataLoader((x, y), batchsize=...)."
        )
    if isinstance(data, Iterator) and epochs > 1:
        raise ValueError(
            f"train: data is a {type(data).__name__}, which can be read only once, so "
            f"epochs={epochs} would train one pass and then nothing. Pass a list "
            "(list(data)) or an fx.DataLoader, or call train once per pass with a new "
            "generator."
        )
    if _arrayish(data):
        raise ValueError(
            f"train: data is one array of shape {tuple(data.shape)}; train iterates over "
            "data, so each row would be a batch. Pass [(x, y)] for all the data at each "
            "step, or fx.DataLoader((x, y), batchsize=...)."
        )
    if isinstance(data, list | tuple) and data:
        first = data[0]
        if type(first) is tuple and len(data) > 1 and _single_observations(first):
            shapes = ", ".join(str(tuple(np.shape(a))) for a in first)
            warnings.warn(
                f"train: each element of data is one batch, and these look like single "
                f"observations (shapes {shapes}: no batch axis), so training takes "
                f"{len(data)} steps of one observation each. Pass stacked arrays instead: "
                "fx.DataLoader((X, Y), batchsize=...) with X = np.stack(xs), Y = np.stack(ys).",
                UserWarning,
                stacklevel=3,
            )


def _single_observations(batch: tuple[Any, ...]) -> bool:
    """True for a tuple that cannot be a batch: arrays of at most one axis whose first axes
    disagree (or scalars), i.e. one observation's features and target."""
    arrays = [a for a in batch if _arrayish(a) or isinstance(a, float | int | np.number)]
    if len(arrays) != len(batch) or len(batch) < 2 or any(np.ndim(a) > 1 for a in arrays):
        return False
    lengths = {np.shape(a)[0] if np.ndim(a) else None for a in arrays}
    return len(lengths) > 1 or None in lengths


def check_callback(f: Any) -> None:
    """A callback must be callable with no argument or with one (a ``StepContext``).

    >>> from fluxjax.checks import check_callback
    >>> check_callback(lambda ctx: None)
    >>> check_callback(lambda loss, step: None)
    Traceback (most recent call last):
    TypeError: train: the callback '<lambda>' takes 2 arguments (loss, step); ...
    """
    if isinstance(f, type):
        raise TypeError(
            f"train: cb={f.__module__.split('.')[0]}.{f.__name__} is the class; pass an "
            f"instance: h = fx.{f.__name__}(), then cb=h."
        )
    if not callable(f):
        raise TypeError(f"train: cb must be a function or a list of them, got {f!r}.")
    if isinstance(f, patience):
        raise TypeError(
            "train: cb is a trigger from fx.early_stopping / fx.plateau / fx.patience: it "
            "returns True when training should stop, but returning True stops nothing. Stop "
            "explicitly: es = fx.early_stopping(f, 3); cb=lambda: es() and fx.stop()."
        )
    required = required_parameters(getattr(f, "__wrapped__", f), NAMED)
    if len(required) > 1:
        names = ", ".join(required)
        raise TypeError(
            f"train: the callback {getattr(f, '__qualname__', f)!r} takes {len(required)} "
            f"arguments ({names}); a callback takes no argument or one (a StepContext with "
            ".epoch, .step, .loss, .eta). Read other values from the enclosing scope."
        )


def check_callbacks(cb: Any) -> None:
    """``check_callback`` for each of a callback or a list of them."""
    for f in list(cb) if isinstance(cb, list | tuple) else [cb]:
        check_callback(f)


def check_opt(opt: Any) -> None:
    """Refuse an optimiser class where an instance (or a ``setup`` state) is expected.

    >>> import fluxjax as fx
    >>> from fluxjax.checks import check_opt
    >>> check_opt(fx.Adam())
    """
    if isinstance(opt, type) and issubclass(opt, Rule):
        raise TypeError(
            f"train: opt is fx.{opt.__name__}, the class; pass an optimiser: fx.{opt.__name__}() "
            f"(or fx.setup(fx.{opt.__name__}(), model) in explicit mode)."
        )


def check_target(target: Any, opt: Any) -> None:
    """Before a plan is built: something to train, and an explicit state that fits the
    model (each leaf's state shaped as its rule's ``init`` of the parameter).

    >>> import fluxjax as fx
    >>> from fluxjax.checks import check_target
    >>> check_target(fx.Dense(2, 3), fx.setup(fx.Adam(), fx.Dense(1, 4)))
    Traceback (most recent call last):
    ValueError: the optimiser state of Dense.weight was built for an array of shape (4, 1), ...
    """
    if isinstance(target, Params) and len(target) == 0 and target is not NOTHING:
        warnings.warn(
            "train: there is nothing to train: the Params are empty (fx.params() of nothing, "
            "or every array removed), so the loss runs each step and nothing is updated "
            "(Flux's train! with empty params). Pass fx.params(model) to train a model.",
            UserWarning,
            stacklevel=5,
        )
    if isinstance(target, Module) and isinstance(opt, OptimiserState):
        live = 0
        for leaf, slot, _ in state_leaves(opt, target):
            check_state_fits(leaf, slot.get(), slot.label())
            live += not leaf.frozen
        if live == 0:
            raise ValueError(
                "train: there is nothing to train: every parameter in this state is frozen "
                "(fx.freeze). Thaw some with fx.thaw(state.layers[i]) first."
            )


def check_loss_value(l: Any) -> None:
    """The loss's value (its first element, for a tuple) must be a real scalar that depends
    on the parameters: not None (a missing ``return``), not a Python number."""
    import jax.numpy as jnp

    if l is None:
        raise TypeError(
            "train: the loss returned None; end it with a return, e.g. `return fx.mse(m(x), y)`."
        )
    if isinstance(l, int | float | np.number):
        raise TypeError(
            f"train: the loss returned {l!r}, a Python number: it does not depend on the "
            "parameters, so every gradient would be zero. Return the loss computed from the "
            "model, e.g. fx.mse(m(x), y)."
        )
    if jnp.ndim(l) != 0 or not jnp.issubdtype(jnp.result_type(l), jnp.floating):
        raise TypeError(
            f"train: the loss must return a real scalar, got {type(l).__name__} of "
            f"shape {tuple(jnp.shape(l))}; reduce it, e.g. with .mean()."
        )


def explain_trace_error(e: Exception) -> TypeError:
    """A clear error for a loss that needs a concrete value while ``train`` compiles it."""
    text = str(e)
    if isinstance(e, jax.errors.TracerBoolConversionError):
        what = (
            "uses a traced value in Python control flow (if/while/and/or/bool()); inside a "
            "compiled step values are traced. Use jnp.where(cond, a, b) or fx.skip_when(cond)"
        )
    elif isinstance(e, jax.errors.TracerArrayConversionError):
        what = (
            "converts a traced value to a NumPy array (np.asarray, np.* functions); use the "
            "jnp.* functions inside the loss"
        )
    else:
        what = (
            "calls float(), int() or .item() on a traced value; return the JAX scalar itself "
            "(fx.mse(m(x), y)), and convert only outside the loss"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return TypeError(
        f"train: the loss {what}. Or pass compile=False to run it eagerly. (JAX: {first})"
    )


def depends_on_inputs(jaxpr: Any, n: int | None = None) -> bool:
    """Whether the first output of a jaxpr can depend on any of its inputs (on its first
    ``n`` inputs, when given) (a forward walk:
    an equation with a live input makes all its outputs live; higher-order primitives are
    taken whole, so the answer errs towards True).

    >>> import jax, jax.numpy as jnp
    >>> depends_on_inputs(jax.make_jaxpr(lambda w: jnp.sum(w * 2))(jnp.ones(3)).jaxpr)
    True
    >>> depends_on_inputs(jax.make_jaxpr(lambda w: jnp.float32(1.0) + 0)(jnp.ones(3)).jaxpr)
    False
    """
    live = {id(v) for v in jaxpr.invars[:n]}
    for eqn in jaxpr.eqns:
        if any(id(v) in live for v in eqn.invars if not _literal(v)):
            live.update(id(v) for v in eqn.outvars)
    if not jaxpr.outvars:  # no array out (None): the real call raises the real error
        return True
    out = jaxpr.outvars[0]
    return not _literal(out) and id(out) in live


def _literal(v: Any) -> bool:
    return type(v).__name__ == "Literal"


def check_loss_depends(
    lossfn: Any, vals: list[Any], slots: list[Any], appended: list[Any] | None = None
) -> None:
    """Warn when the loss's value cannot depend on any trainable array (the Params of
    another model than the one the loss calls, or a loss returning a constant): every
    gradient is zero and training changes nothing. ``lossfn(vals)`` returns ``(loss, aux)``;
    called once per compiled plan, while it is traced. ``appended``: a list the loss appends
    to as it runs (the step's ``skip_when`` conditions), put back as it was after this
    extra trace.

    >>> import warnings, jax.numpy as jnp
    >>> from fluxjax.checks import check_loss_depends
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     check_loss_depends(lambda v: (jnp.float32(1.0), None), [jnp.ones(2)], [])
    >>> "does not depend on any of the 1 array" in str(w[0].message)
    True
    """
    if not vals:
        return
    n = len(appended) if appended is not None else 0
    try:
        closed = jax.make_jaxpr(lambda v: lossfn(v)[0])(vals)
    except Exception:  # noqa: BLE001 - the real call raises the real error
        return
    finally:
        if appended is not None:
            del appended[n:]
    if not depends_on_inputs(closed.jaxpr):
        warn_loss_independent(vals, slots)


def warn_loss_independent(vals: list[Any], slots: list[Any]) -> None:
    """The warning of ``check_loss_depends``: the loss reads none of ``vals``."""
    names = ", ".join(f"{s.label()} {tuple(v.shape)}" for s, v in zip(slots[:4], vals))
    more = f" and {len(vals) - 4} more" if len(vals) > 4 else ""
    warnings.warn(
        f"train: the loss does not depend on any of the {len(vals)} array(s) being trained "
        f"({names or 'the parameters'}{more}): every gradient is zero and training changes "
        "nothing. Give train the parameters of the model the loss calls (fx.params(m) for the "
        "m inside the loss; in explicit mode the loss must use its model argument), and "
        "return a loss computed from that model, not a constant.",
        UserWarning,
        stacklevel=3,
    )


def unknown_keyword(
    fn: str, unknown: dict[str, Any], keywords: tuple[str, ...], aliases: dict[str, str]
) -> TypeError:
    """The error for a keyword ``fn`` does not take (``epoch=3``, Keras's ``callbacks=``),
    naming the nearest one it does take.

    >>> print(unknown_keyword("train", {"epoch": 3}, ("cb", "epochs"), {}))
    train: unknown keyword argument epoch=3. Did you mean epochs=? train takes cb=, epochs= ...
    """
    import difflib

    name = next(iter(unknown))
    near = aliases.get(name) or next(iter(difflib.get_close_matches(name, keywords, 1)), None)
    hint = f" Did you mean {near}=?" if near else ""
    return TypeError(
        f"{fn}: unknown keyword argument {name}={unknown[name]!r}.{hint} {fn} takes "
        f"{', '.join(k + '=' for k in keywords)} after its positional arguments."
    )
