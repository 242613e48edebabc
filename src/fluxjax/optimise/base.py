"""The optimiser-rule protocol: a rule holds hyperparameters; ``init`` and ``apply`` do the rest.

A rule is a small class whose public attributes are its hyperparameters::

    class Descent(Rule):
        def __init__(self, eta=0.1):
            self.eta = check(self, "eta", eta, lo=0)
        def apply(self, state, x, dx):
            return state, self.eta * dx

* ``init(x) -> state``: the initial state for one parameter array ``x`` (a pytree of JAX
  arrays; ``()`` when the rule has none).
* ``apply(state, x, dx) -> (state, step)``: pure JAX, no Python branching on array values;
  the caller does ``x - step`` (Optimisers.jl's sign convention).
* ``gate(state) -> None | bool array``: called with the state ``apply`` just returned.
  ``None`` (the default) means "this rule always produces a step". A boolean scalar array
  means "apply the step only when True": ``AccumGrad`` returns False until it has gathered
  its n gradients. In an ``OptimiserChain`` the rules after a closed gate keep their old
  state, and the parameter is left unchanged (selected with ``jnp.where``, so it compiles).
* ``error(state) -> None | bool array``: True when this step must fail (``ClipNorm(throw=True)``
  on a non-finite norm). Compiled code cannot raise; ``update``/``train`` raise afterwards,
  naming the parameter, and leave it unchanged.

Hyperparameters may be numbers or schedules: any callable of the 1-based update count ``t``
(a traced integer) returning a number. ``resolve(t)`` returns a copy of the rule with every
schedule evaluated; the optimiser interface keeps ``t`` per parameter when a rule has one.

Rules compare by identity (two ``Adam()`` objects are different optimisers, each with its
own implicit-mode state), and need not call ``super().__init__``.
"""

from __future__ import annotations

import copy
import inspect
import math
import weakref
from collections.abc import Callable
from typing import Any

from .to_optax import to_optax

__all__ = ["Rule", "check", "is_schedule", "is_transformation", "rule_version"]

_VERSION = [0]


def bump_version() -> None:
    """Mark the optimiser configuration as changed (rules, frozen parts)."""
    _VERSION[0] += 1


def rule_version() -> int:
    """A counter bumped whenever any rule's attribute is assigned (``opt.eta = 0.01``), so
    compiled steps built with the old hyperparameters can be invalidated in O(1)."""
    return _VERSION[0]


def rules_in(value: Any) -> tuple[Rule, ...]:
    """The rules a hyperparameter holds: itself when it is a rule, the rule members of a list
    or tuple (an ``OptimiserChain``'s ``rules``), else none. With ``map_rules``, the one way
    every rule traversal (``children``, ``resolve``, ``see_all``, ``rule_key``, ``adjust``)
    looks inside a hyperparameter."""
    if isinstance(value, Rule):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(r for r in value if isinstance(r, Rule))
    return ()


def map_rules(value: Any, f: Callable[[Rule], Any]) -> Any:
    """A hyperparameter that holds rules (see ``rules_in``) with ``f`` applied to each: ``f(rule)``
    for a rule, the same kind of list or tuple for a container (its other items kept)."""
    if isinstance(value, Rule):
        return f(value)
    return type(value)(f(r) if isinstance(r, Rule) else r for r in value)


def is_transformation(value: Any) -> bool:
    """True for an ``optax.GradientTransformation`` (a tuple with callable ``init`` and
    ``update``; duck-typed, so optax is not imported): a value that ``train``, ``setup`` and
    ``update`` accept wherever a rule goes, wrapping it with ``optax.as_rule``."""
    return (
        isinstance(value, tuple)
        and callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    )


def is_schedule(value: Any) -> bool:
    """True when a hyperparameter value is a schedule (a callable that is not a rule)."""
    return callable(value) and not isinstance(value, Rule)


def check(
    rule: Any,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
) -> Any:
    """Validate one hyperparameter and return it (a float, an int, or the schedule as given).

    Raises ``ValueError`` naming the rule, the field, the bound and the fix::

        >>> from fluxjax.optimise.base import check
        >>> check("Adam", "eta", -1.0, lo=0)
        Traceback (most recent call last):
        ...
        ValueError: Adam: eta must be >= 0, got -1.0. Pass a value >= 0, e.g. Adam(eta=0.001).
    """
    owner = rule if isinstance(rule, str) else type(rule).__name__
    if is_schedule(value):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        and not hasattr(value, "__float__")
    ):
        raise TypeError(
            f"{owner}: {name} must be a number or a schedule (a function of the step count), "
            f"got {value!r} of type {type(value).__name__}."
        )
    if integer:
        if int(value) != value:
            raise ValueError(f"{owner}: {name} must be an integer, got {value!r}.")
        value = int(value)
    else:
        value = float(value)
    if math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number, got NaN.")
    example = f"e.g. {owner}({name}=...)"
    if lo is not None and (value <= lo if lo_open else value < lo):
        op = ">" if lo_open else ">="
        hint = f"Pass a value {op} {lo:g}, {example}" if not integer else f"Pass an int {op} {lo}"
        if name == "eta" and owner:
            hint = f"Pass a value {op} {lo:g}, e.g. {owner}(eta=0.001)"
        raise ValueError(f"{owner}: {name} must be {op} {lo:g}, got {value!r}. {hint}.")
    if hi is not None and (value >= hi if hi_open else value > hi):
        op = "<" if hi_open else "<="
        raise ValueError(
            f"{owner}: {name} must be {op} {hi:g}, got {value!r}. Pass a value {op} {hi:g}, "
            f"{example}."
        )
    return value


class Rule:
    """Base class of every optimiser rule (see the module docstring for the protocol).

    >>> import jax.numpy as jnp
    >>> from fluxjax.optimise.base import Rule
    >>> class Halve(Rule):
    ...     def __init__(self, eta=0.5):
    ...         self.eta = eta
    ...     def apply(self, state, x, dx):
    ...         return state, self.eta * dx
    >>> Halve()
    Halve(eta=0.5)
    >>> Halve().apply((), jnp.ones(2), jnp.ones(2))[1]
    Array([0.5, 0.5], dtype=float32)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Rule:
        # runs before every rule's own __init__, so each rule refuses PyTorch's and Keras's
        # keyword names with Flux's, not with Python's bare "unexpected keyword argument"
        refuse_foreign_keywords(cls, kwargs)
        return super().__new__(cls)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name in self.__dict__:
            _revalidate(self, name, value)  # opt.eta = -0.1 is refused like Descent(-0.1)
        _VERSION[0] += 1
        object.__setattr__(self, name, value)

    def init(self, x: Any) -> Any:
        """Initial state for parameter array ``x``; ``()`` for a stateless rule."""
        return ()

    def apply(self, state: Any, x: Any, dx: Any) -> tuple[Any, Any]:
        """Return ``(new_state, step)``; the parameter becomes ``x - step``."""
        raise NotImplementedError(f"{type(self).__name__} must define apply(state, x, dx)")

    # True when ``apply`` is elementwise: each element's new state and step depend only on
    # that element of ``x``, ``dx`` and the state arrays shaped like ``x``, and on 0-d state
    # and hyperparameters shared by all elements. ``train`` may then apply the rule once to
    # several small arrays concatenated (the same formula, far fewer kernels on the CPU).
    elementwise = False

    def is_elementwise(self) -> bool:
        """Whether this rule and every member rule is ``elementwise``."""
        return type(self).elementwise and all(r.is_elementwise() for r in self.children())

    def gate(self, state: Any) -> Any:
        """``None`` (always step) or a boolean scalar array: step only when True."""
        return None

    def error(self, state: Any) -> Any:
        """``None`` or a boolean scalar array: True when this update must fail."""
        return None

    def as_optax(self) -> Any:
        """This rule as an ``optax.GradientTransformation``, for a hand-written JAX loop:
        ``update(grads, state, params)`` applies the rule to each leaf with Flux's arithmetic
        (``optax.apply_updates`` then gives ``x - step``), gates and schedules included; see
        ``fluxjax.optimise.optax.to_optax``. Needs optax (imported here, not before).

        >>> import optax, jax.numpy as jnp, fluxjax as fx
        >>> tx = fx.Adam(0.1).as_optax()
        >>> params = [jnp.array([1.0])]
        >>> updates, _ = tx.update([jnp.array([3.0])], tx.init(params), params)
        >>> optax.apply_updates(params, updates)  # Adam's first step is eta * sign(g)
        [Array([0.9], dtype=float32)]
        """
        held = [m for m in _members(self) if is_transformation(m)]
        if held:  # fx.train/setup/update wrap such a member; Optax can hold it itself
            raise TypeError(
                f"{type(self).__name__}.as_optax(): this rule holds an Optax transformation "
                f"({held[0]!r}); chain it on Optax's side instead: "
                "optax.chain(fluxjax_rule.as_optax(), optax_transformation)."
            )
        return to_optax(self)

    # -- hyperparameters ---------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The public attributes, in definition order: the rule's hyperparameters."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def children(self) -> tuple[Rule, ...]:
        """Rules held inside this one (an OptimiserChain's members); empty for plain rules."""
        return tuple(r for v in self.hyperparameters().values() for r in rules_in(v))

    def has_schedule(self) -> bool:
        """True when any hyperparameter (here or in a member rule) is a schedule."""
        for v in self.hyperparameters().values():
            if is_schedule(v):
                return True
        return any(r.has_schedule() for r in self.children())

    def resolve(self, t: Any) -> Rule:
        """A copy with every schedule evaluated at update count ``t`` (1-based)."""
        if not self.has_schedule():
            return self
        new = copy.copy(self)
        for k, v in self.hyperparameters().items():
            if is_schedule(v):
                setattr(new, k, v(t))
            elif rules_in(v):
                setattr(new, k, map_rules(v, lambda r: r.resolve(t)))
        return new

    def couples(self) -> bool:
        """True when this rule (or a member) reads every gradient of the step at once, as
        ``ClipGlobalNorm`` does; the engine then calls ``see_all`` before ``apply``."""
        return any(r.couples() for r in self.children())

    def see_all(self, grads: list[Any]) -> Rule:
        """A copy whose coupling members have seen ``grads``, every trainable array's
        gradient of this step (as ``resolve(t)`` gives a copy with the schedules
        evaluated); ``self`` when nothing in it couples arrays."""
        if not self.couples():
            return self
        new = copy.copy(self)
        for k, v in self.hyperparameters().items():
            if rules_in(v):
                object.__setattr__(new, k, map_rules(v, lambda r: r.see_all(grads)))
        return new

    def replace(self, **changes: Any) -> Rule:
        """A copy with some hyperparameters changed, validated by the rule's constructor
        when it takes its fields by name (else the fields are set on a copy)."""
        fields = self.hyperparameters()
        unknown = [k for k in changes if k not in fields]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no hyperparameter {unknown[0]!r}; "
                f"its hyperparameters are {', '.join(fields) or '(none)'}."
            )
        try:
            return type(self)(**{**fields, **changes})
        except TypeError:
            new = copy.copy(self)
            new.__dict__ = {k: v for k, v in self.__dict__.items() if not k.startswith("_fx_")}
            for k, v in changes.items():
                setattr(new, k, v)
            return new

    def current(self, name: str, t: int | None = None) -> Any:
        """The value of hyperparameter ``name`` (a schedule evaluated at ``t`` when given)."""
        v = getattr(self, name)
        if is_schedule(v) and t is not None:
            return v(t)
        return v

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    # -- implicit-mode state (Flux v0.12 keeps it inside the optimiser object) ----------
    def _implicit_store(self) -> ImplicitStore:
        store = self.__dict__.get("_fx_store")
        if store is None:
            store = ImplicitStore()
            self.__dict__["_fx_store"] = store
        return store


class Record:
    """One array's implicit-mode optimiser state: the rule's ``state``, the update count
    ``t`` (None unless the rule has a schedule) and a weak reference to the ``module``
    holding the array."""

    __slots__ = ("state", "t", "module")

    def __init__(self, state: Any, t: Any, module: Any) -> None:
        self.state, self.t, self.module = state, t, module


def dead() -> None:
    """What a weak reference to nothing returns (a stand-in for a ``weakref.ref``)."""
    return None


class ImplicitStore:
    """A rule's implicit-mode state (Flux v0.12's ``opt.state``): a ``Record`` per
    parameter slot key, and ``owner``: the training plan holding the live state packed in
    its buffers while it trains (None when the records are current). Reading the records
    through ``fx.optimise.interface.implicit_state`` takes the live state back first."""

    def __init__(self) -> None:
        self.records: dict[Any, Record] = {}
        self.ref: Any = dead

    @property
    def owner(self) -> Any:
        """The plan holding the live state, held weakly: the plan lives in the modules it
        trains (engine.cache), so it goes only with them, or after giving the state back."""
        return self.ref()

    @owner.setter
    def owner(self, plan: Any) -> None:
        self.ref = dead if plan is None else weakref.ref(plan)

    def add(self, key: Any, module: Any, state: Any, t: Any) -> Record:
        """A new record under ``key`` (the slot's ``(id(module), path)``), kept while
        ``module`` lives: a rule kept for later (or in a cache) does not keep the models it
        trained alive, and a module that later takes a freed one's ``id`` never meets its
        state."""
        recs = self.records
        gone = weakref.ref(module, lambda _: recs.pop(key, None))
        rec = recs[key] = Record(state, t, gone)
        return rec


def refuse_foreign_keywords(cls: type, kwargs: dict[str, Any]) -> None:
    """Raise a ``TypeError`` naming Flux's way when a rule is built with another library's
    keyword: ``lr=``/``learning_rate=`` (Flux's ``eta``), ``weight_decay=``/``decay=``
    (a rule of its own, chained before; ``AdamW``), unless the rule has such a field."""
    name = cls.__name__
    for alias in ("lr", "learning_rate"):
        if alias in kwargs:
            raise TypeError(
                f"{name}: the learning rate is called eta (Flux's name), not {alias}: "
                f"{name}(eta={kwargs[alias]!r})."
            )
    for alias in ("weight_decay", "decay"):
        if alias in kwargs and alias not in _fields(cls):
            raise TypeError(
                f"{name} has no {alias}= (PyTorch's and Keras's keyword): weight decay is a "
                f"rule of its own, chained before it: fx.OptimiserChain(fx.WeightDecay("
                f"{kwargs[alias]!r}), fx.{name}()); or fx.AdamW."
            )


def _members(rule: Rule) -> list[Any]:
    """Every member of ``rule``'s list or tuple hyperparameters, rules or not, and their
    members in turn (an ``OptimiserChain``'s rules, a nested chain's)."""
    out = []
    for v in rule.hyperparameters().values():
        if isinstance(v, list | tuple) and not is_transformation(v):
            out += [m for m in v if isinstance(m, Rule) or is_transformation(m)]
    return out + [m for r in rule.children() for m in _members(r)]


def _revalidate(rule: Rule, name: str, value: Any) -> None:
    """Check a changed hyperparameter as the constructor would: build a throw-away rule with
    the new value (when the constructor takes the fields by name) and report its error."""
    if hasattr(value, "shape") or is_schedule(value):
        return  # an array (a schedule's value inside a compiled step) or a schedule
    fields = {**rule.hyperparameters(), name: value}
    try:
        inspect.signature(type(rule)).bind(**fields)
    except (TypeError, ValueError):
        return  # a constructor that does not take its fields by name: nothing to check with
    try:
        type(rule)(**fields)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{type(rule).__name__}.{name} = {value!r} refused: {e}") from None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, Callable) and not isinstance(v, Rule):  # type: ignore[arg-type]
        return getattr(v, "__name__", None) or repr(v)
    return repr(v)


def _fields(cls: type) -> set[str]:
    """The keyword names a rule's constructor takes."""
    import inspect

    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return set()
