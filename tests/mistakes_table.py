"""The catalogue of mistakes a new user makes (from Flux, PyTorch or Keras), one row each:
what they type and what fluxjax says. ``tests/test_mistakes.py`` runs every row;
``python tests/mistakes_table.py`` writes ``docs/mistakes.md`` from the same rows.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

import fluxjax as fx

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
Y = X[:, :1] * 2 - X[:, 1:]


def mlp() -> fx.Chain:
    return fx.Chain(fx.Dense(2, 3, fx.relu), fx.Dense(3, 1))


@dataclass
class Row:
    category: str
    mistake: str  # what the user types (code) or does
    run: Callable[[], Any]
    kind: type  # the exception or warning class, or None when it must simply work
    says: str  # a regex the message must match (for "works": what happens)
    check: Callable[[Any], bool] | None = None  # for "works": a check of the result


ROWS: list[Row] = []


def row(category: str, mistake: str, kind: Any, says: str, check: Any = None):
    def add(f: Callable[[], Any]) -> Callable[[], Any]:
        ROWS.append(Row(category, mistake, f, kind, says, check))
        return f

    return add


OPT = "optimiser state or gradients of another model"
HYP = "hyperparameters"
FRZ = "freeze and params"
DAT = "data"
LOSS = "losses"
CB = "callbacks"
NUM = "NumPy numbers"
LAY = "layers, initialisers, one-hot"
IO = "files"


_ALL = object()


def implicit(loss=None, data=_ALL, opt=None, m=None, **kw):
    """``fx.train(loss, fx.params(m), data, opt)`` with defaults for what a row leaves out."""
    m = m or mlp()
    loss = loss or (lambda x, y: fx.mse(m(x), y))
    data = [(X, Y)] if data is _ALL else data
    return fx.train(loss, fx.params(m), data, opt or fx.Descent(), **kw)


# ---- optimiser state / gradients of another model --------------------------------------------
@row(
    OPT,
    "`fx.update(opt, ps1, fx.gradient(f2, ps2))`: gradients of model 2 applied to model 1",
    ValueError,
    "gradients were taken for other parameters",
)
def _():
    m1, m2 = mlp(), mlp()
    ps1, ps2 = fx.params(m1), fx.params(m2)
    gs = fx.gradient(lambda: fx.mse(m2(X), Y), ps2)
    fx.update(fx.Descent(), ps1, gs)


@row(
    OPT,
    "`st = fx.setup(fx.Adam(), fx.Dense(1, 4))` then `fx.update(st, fx.Dense(2, 3), g)`",
    ValueError,
    r"state of Dense.weight was built for .* \(4, 1\).*parameter has shape \(3, 2\)",
)
def _():
    st = fx.setup(fx.Adam(), fx.Dense(1, 4))
    m = fx.Dense(2, 3)
    g = fx.gradient(lambda m: m(X).sum(), m)[0]
    fx.update(st, m, g)


@row(
    OPT,
    "`fx.train(loss, fx.Dense(2, 3), data, fx.setup(fx.Adam(), fx.Dense(1, 4)))`",
    ValueError,
    r"state of Dense.weight was built for .* \(4, 1\).*parameter has shape \(3, 2\)",
)
def _():
    m = fx.Dense(2, 3)
    fx.train(lambda m, x: m(x).sum(), m, [X], fx.setup(fx.Adam(), fx.Dense(1, 4)))


@row(
    OPT,
    "`fx.update(st, m, grads)` with `grads` of a differently built model",
    ValueError,
    r"gradient for .* has shape",
)
def _():
    m = fx.Dense(2, 3)
    st = fx.setup(fx.Descent(), m)
    g = fx.gradient(lambda m: m(np.ones((1, 3), np.float32)).sum(), fx.Dense(3, 3))[0]
    fx.update(st, m, g)


@row(
    OPT,
    "`fx.update(opt, ps, grads)` with `grads` from explicit `fx.gradient(loss, m)`",
    TypeError,
    "gs must be the Grads from fx.gradient",
)
def _():
    m = mlp()
    g = fx.gradient(lambda m: fx.mse(m(X), Y), m)
    fx.update(fx.Descent(), fx.params(m), g)


@row(OPT, "`fx.load(path, other_architecture)`", fx.CheckpointError, "saved from another model")
def _():
    import tempfile

    p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    fx.save(p, mlp())
    fx.load(p, fx.Chain(fx.Dense(2, 4, fx.relu), fx.Dense(4, 1)))


# ---- hyperparameters ----------------------------------------------------------------------
@row(
    HYP,
    "`opt = fx.Descent(); opt.eta = -0.1` (trains uphill)",
    ValueError,
    r"Descent\.eta = -0\.1 refused.*eta must be >= 0",
)
def _():
    opt = fx.Descent()
    opt.eta = -0.1


@row(HYP, "`opt.eta = '0.1'` (a string)", TypeError, "eta must be a number")
def _():
    fx.Adam().eta = "0.1"


@row(HYP, "`opt.beta = (0.9, 1.5)` on Adam", ValueError, "beta")
def _():
    fx.Adam().beta = (0.9, 1.5)


@row(HYP, "`fx.Descent(-0.1)`", ValueError, "eta must be >= 0")
def _():
    fx.Descent(-0.1)


@row(HYP, "`fx.adjust(state, -0.01)`", ValueError, "eta must be >= 0")
def _():
    fx.adjust(fx.setup(fx.Adam(), mlp()), -0.01)


@row(
    HYP,
    "`fx.Adam(lr=0.01)` (PyTorch's name)",
    TypeError,
    r"learning rate .* eta.*Adam\(eta=0\.01\)",
)
def _():
    fx.Adam(lr=0.01)


@row(HYP, "`fx.Adam(learning_rate=0.01)` (Keras/Optax's name)", TypeError, r"eta")
def _():
    fx.Adam(learning_rate=0.01)


@row(HYP, "`fx.Adam(0.01, 0.9)` (one beta instead of a pair)", (TypeError, ValueError), "beta")
def _():
    fx.Adam(0.01, 0.9)


@row(HYP, "`fx.Momentum(0.01, rho=1.5)`", ValueError, "rho")
def _():
    fx.Momentum(0.01, rho=1.5)


@row(HYP, "`fx.adjust(state, lr=0.01)`", TypeError, "no rule in this optimiser has a field 'lr'")
def _():
    fx.adjust(fx.setup(fx.Adam(), mlp()), lr=0.01)


@row(
    HYP,
    "`fx.train(loss, ps, data, fx.Adam)` (the class, not an optimiser)",
    TypeError,
    r"opt is fx\.Adam, the class.*fx\.Adam\(\)",
)
def _():
    implicit(opt=fx.Adam)


@row(HYP, "`fx.setup(fx.Adam, m)` (the class)", TypeError, r"fx\.Adam is the class.*fx\.Adam\(\)")
def _():
    fx.setup(fx.Adam, mlp())


@row(HYP, "`fx.train(loss, ps, data, 'adam')`", TypeError, "opt must be a rule")
def _():
    implicit(opt="adam")


@row(HYP, "`fx.setup(m, fx.Adam())` (arguments swapped)", TypeError, r"setup\(rule, model\)")
def _():
    fx.setup(mlp(), fx.Adam())


# ---- freeze / params ------------------------------------------------------------------------
@row(
    FRZ,
    "`fx.freeze(ps)` (a Params: does nothing in Flux either)",
    TypeError,
    r"freeze takes .* fx\.setup.*Params.*ps\.remove",
)
def _():
    fx.freeze(fx.params(mlp()))


@row(FRZ, "`fx.freeze('layers')` (a string)", TypeError, r"freeze takes .*'layers' \(str\)")
def _():
    fx.freeze("layers")


@row(FRZ, "`fx.freeze(opt)` (a rule, implicit mode)", TypeError, r"freeze takes .*rule")
def _():
    fx.freeze(fx.Adam())


@row(FRZ, "`fx.freeze(m[0])` (the model, not its state)", TypeError, "not the model")
def _():
    fx.freeze(mlp()[0])


@row(
    FRZ,
    "`fx.train(loss, fx.params(), data, opt)` (params of nothing; Flux's empty-params "
    "`train!` runs the loss each step, so this warns rather than raises)",
    UserWarning,
    r"nothing to train.*empty",
)
def _():
    fx.train(lambda x, y: 0.0, fx.params(), [(X, Y)], fx.Descent())


@row(
    HYP,
    "`for epoch in range(n): fx.train(loss, ps, data, fx.Adam())` (a new optimiser each "
    "epoch: its state starts afresh each time, and each compiles the step again)",
    UserWarning,
    r"new optimiser, Adam\(.*starts from fresh state.*make it once, before the loop",
)
def _():
    m = mlp()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    for _ in range(3):
        fx.train(loss, fx.params(m), [(X, Y)], fx.Adam())


@row(
    HYP,
    "`for epoch in range(n): fx.train(loss, m, data, fx.setup(fx.Adam(), m))` (the same, "
    "explicit mode)",
    UserWarning,
    r"new optimiser, fx\.setup\(rule, model\).*state = fx\.setup\(fx\.Adam\(\), model\) before",
)
def _():
    m = mlp()
    for _ in range(3):
        fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(X, Y)], fx.setup(fx.Adam(), m))


@row(
    FRZ,
    "a fully frozen state: `fx.freeze(st)` then `fx.train(loss, m, data, st)`",
    ValueError,
    r"nothing to train.*frozen.*fx\.thaw",
)
def _():
    m = mlp()
    st = fx.setup(fx.Adam(), m)
    fx.freeze(st)
    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(X, Y)], st)


@row(FRZ, "`fx.params(np.zeros(3))` (an array no layer holds)", (TypeError, ValueError), "")
def _():
    fx.params(np.zeros(3))


@row(FRZ, "`fx.params(lambda x: x)` (a function)", TypeError, "")
def _():
    fx.params(lambda x: x)


# ---- data -----------------------------------------------------------------------------------
@row(
    DAT,
    "a generator with `epochs=3` (it can be read only once)",
    ValueError,
    r"generator.*read only once.*epochs=3",
)
def _():
    implicit(data=((X, Y) for _ in range(2)), epochs=3)


@row(DAT, "`data=zip(xs, ys)` with `epochs=2`", ValueError, r"zip.*read only once")
def _():
    implicit(data=zip([X], [Y]), epochs=2)


@row(
    DAT,
    "a generator with `epochs=1` (read once: fine)",
    None,
    "trains one pass",
    lambda h: len(h) == 2,
)
def _():
    return implicit(data=((X, Y) for _ in range(2)))


@row(DAT, "`data=[x, y]` instead of `[(x, y)]`", TypeError, r"pass \[\(x, y\)\], not \[x, y\]")
def _():
    implicit(data=[X, Y])


@row(DAT, "`data=(x, y)` instead of `[(x, y)]`", TypeError, r"pass \[\(x, y\)\], not \[x, y\]")
def _():
    implicit(data=(X, Y))


@row(
    DAT,
    "PyTorch-style `list(zip(x, y))`: pairs of single observations",
    UserWarning,
    r"single observations.*DataLoader",
)
def _():
    implicit(data=list(zip(X, Y)), compile=False)


@row(DAT, "`data=None`", TypeError, "data must be an iterable of batches")
def _():
    implicit(data=None)


@row(DAT, "`data=X` (one array: each row becomes a batch)", ValueError, r"\[\(x, y\)\]|one array")
def _():
    implicit(data=X)


@row(
    DAT,
    "`fx.DataLoader(x, y)` (y lands in batchsize)",
    TypeError,
    r"DataLoader\(\(x, y\), batchsize=",
)
def _():
    fx.DataLoader(X, Y)


@row(DAT, "`fx.DataLoader((x, y[:-1]))` (different lengths)", ValueError, "observations but")
def _():
    fx.DataLoader((X, Y[:-1]))


@row(DAT, "`fx.DataLoader((x, y), batchsize=0)`", ValueError, "positive batchsize")
def _():
    fx.DataLoader((X, Y), batchsize=0)


@row(DAT, "`fx.DataLoader((x, y), batchsize=2.5)`", ValueError, "batchsize must be a positive int")
def _():
    fx.DataLoader((X, Y), batchsize=2.5)


@row(DAT, "`fx.DataLoader((x, y), shuffle='yes')`", TypeError, "shuffle must be True or False")
def _():
    fx.DataLoader((X, Y), shuffle="yes")


@row(DAT, "`fx.DataLoader([[1, 2], [3]])` (ragged list)", TypeError, "ragged")
def _():
    fx.DataLoader([[1, 2], [3]])


@row(
    DAT,
    "`fx.DataLoader((x, y), batchsize=100)` with 6 observations",
    UserWarning,
    "less than batchsize",
)
def _():
    fx.DataLoader((X, Y), batchsize=100)


@row(DAT, "`fx.DataLoader((x, y), rng='seed')`", TypeError, "rng must be None, an int seed")
def _():
    fx.DataLoader((X, Y), rng="seed")


@row(DAT, "data with NaN", FloatingPointError, "not finite at step 1")
def _():
    implicit(data=[(X * np.nan, Y)] * 2)


@row(
    DAT,
    "x in Flux's column layout `(features, n)`",
    ValueError,
    r"Dense\(2 => 3, relu\) expects inputs with 2 features.*first axis",
)
def _():
    mlp()(X.T)


# ---- losses -----------------------------------------------------------------------------------
@row(
    LOSS,
    "the loss returns `float(fx.mse(...))`",
    TypeError,
    r"float\(\).*traced.*return the JAX scalar",
)
def _():
    m = mlp()
    implicit(lambda x, y: float(fx.mse(m(x), y)), m=m)


@row(LOSS, "the loss calls `.item()`", TypeError, r"traced")
def _():
    m = mlp()
    implicit(lambda x, y: fx.mse(m(x), y).item(), m=m)


@row(LOSS, "the loss uses `np.asarray(m(x))`", TypeError, r"traced value to a NumPy array.*jnp")
def _():
    m = mlp()
    implicit(lambda x, y: fx.mse(np.asarray(m(x)), y), m=m)


@row(LOSS, "the loss branches in Python: `if l > 1: ...`", TypeError, r"if.*traced.*jnp\.where")
def _():
    m = mlp()

    def loss(x, y):
        l = fx.mse(m(x), y)
        return l * 2 if l > 1 else l

    implicit(loss, m=m)


@row(
    LOSS,
    "the loss returns a Python float constant (`return 0.0`)",
    TypeError,
    r"returned 0\.0.*does not depend on the parameters",
)
def _():
    implicit(lambda x, y: 0.0)


@row(
    LOSS,
    "the loss returns a vector (forgot the mean)",
    TypeError,
    r"loss must return a real scalar.*shape \(6, 1\).*\.mean\(\)",
)
def _():
    m = mlp()
    implicit(lambda x, y: (m(x) - y) ** 2, m=m)


@row(
    LOSS,
    "the loss returns `(loss, aux)`",
    None,
    "the first element is the loss (Zygote's auxiliary-output rule)",
    lambda h: len(h) == 1,
)
def _():
    m = mlp()
    return implicit(lambda x, y: (fx.mse(m(x), y), 1.0), m=m, compile=False)


@row(LOSS, "the loss forgets `return` (returns None)", TypeError, r"returned None.*return")
def _():
    m = mlp()

    def loss(x, y):
        fx.mse(m(x), y)

    implicit(loss, m=m)


@row(
    LOSS,
    "implicit `fx.train(loss, ps, ...)` with an explicit `loss(m, x, y)`",
    TypeError,
    r"loss cannot take this batch.*got 2 argument.*loss\(model, x, y\)",
)
def _():
    implicit(lambda m, x, y: fx.mse(m(x), y))


@row(
    LOSS,
    "explicit `fx.train(loss, m, ...)` with an implicit `loss(x, y)`",
    TypeError,
    r"loss cannot take this batch.*got 3 argument.*loss\(model, x, y\)",
)
def _():
    m = mlp()
    fx.train(lambda x, y: fx.mse(m(x), y), m, [(X, Y)], fx.setup(fx.Descent(), m))


@row(LOSS, "`fx.mse(ŷ, y, reduction='sum')` (PyTorch's habit)", TypeError, r"agg=.*sum")
def _():
    fx.mse(Y, Y, reduction="sum")


@row(LOSS, "`fx.mse(ŷ, y, agg='sum')` (a string)", TypeError, r"agg must be a function")
def _():
    fx.mse(Y, Y, agg="sum")


@row(
    LOSS, "`fx.mse(ŷ, y)` with shapes `(6, 1)` and `(6,)` (broadcasts to 6×6)", ValueError, r"shape"
)
def _():
    fx.mse(Y, Y[:, 0])


@row(
    LOSS,
    "`fx.logitcrossentropy(logits, labels)` with class indices (PyTorch's habit)",
    ValueError,
    r"onehotbatch",
)
def _():
    fx.logitcrossentropy(np.zeros((6, 3), np.float32), np.array([0, 1, 2, 0, 1, 2]))


# ---- callbacks --------------------------------------------------------------------------------
@row(
    CB,
    "`cb=lambda a, b: ...` (two arguments)",
    TypeError,
    r"callback .* takes 2 .* no argument or one",
)
def _():
    implicit(cb=lambda a, b: None)


@row(CB, "`cb=fx.History` (the class, not an instance)", TypeError, r"class.*fx\.History\(\)")
def _():
    implicit(cb=fx.History)


@row(CB, "`cb=[f, None]`", TypeError, "cb must be a function or a list")
def _():
    implicit(cb=[print, None])


@row(
    CB,
    "`cb=fx.early_stopping(f, 3)` passed directly (returns True, never stops)",
    TypeError,
    r"returns True.*fx\.stop\(\)",
)
def _():
    implicit(cb=fx.early_stopping(lambda: 1.0, 3))


@row(CB, "`fx.every(0, f)`", ValueError, "n must be a positive int")
def _():
    fx.every(0, print)


@row(CB, "`fx.throttle(f, '1')`", ValueError, "timeout in seconds")
def _():
    fx.throttle(print, "1")


@row(CB, "`fx.patience(f, 2.5)`", ValueError, "positive int wait")
def _():
    fx.patience(print, 2.5)


@row(CB, "`fx.Checkpointer(folder, m, every=0)`", ValueError, "every must be a positive int")
def _():
    import tempfile

    fx.Checkpointer(tempfile.mkdtemp(), mlp(), every=0)


# ---- NumPy numbers ----------------------------------------------------------------------------
@row(NUM, "`fx.train(..., epochs=np.int64(3))`", None, "accepted: 3 epochs", lambda h: len(h) == 3)
def _():
    return implicit(epochs=np.int64(3), compile=False)


@row(NUM, "`fx.train(..., epochs=3.0)`", TypeError, r"epochs must be an int.*3\.0")
def _():
    implicit(epochs=3.0)


@row(NUM, "`fx.train(..., epochs=-1)`", ValueError, "epochs must be a non-negative")
def _():
    implicit(epochs=-1)


@row(NUM, "`fx.train(..., steps_per_call=np.int32(2))`", None, "accepted", lambda h: len(h) == 4)
def _():
    return implicit(data=[(X, Y)] * 4, steps_per_call=np.int32(2), compile=False)


@row(
    NUM,
    "`fx.Dense(np.int64(2), np.int64(3))`",
    None,
    "accepted",
    lambda d: d.weight.shape == (3, 2),
)
def _():
    return fx.Dense(np.int64(2), np.int64(3))


@row(NUM, "`fx.DataLoader(x, batchsize=np.int64(2))`", None, "accepted", lambda d: len(d) == 3)
def _():
    return fx.DataLoader(X, batchsize=np.int64(2))


@row(NUM, "`fx.Descent(np.float32(0.1))`", None, "accepted", lambda o: o.eta == np.float32(0.1))
def _():
    return fx.Descent(np.float32(0.1))


@row(NUM, "`fx.epochs(np.int64(2))`", None, "accepted", lambda n: n == [1, 2])
def _():
    return list(fx.epochs(np.int64(2), log=False))


@row(NUM, "`fx.seed('1')`", TypeError, "expects an integer")
def _():
    fx.seed("1")


# ---- layers, initialisers, one-hot -------------------------------------------------------------
@row(
    LAY,
    "`fx.gradient(f, jnp.array([1, 2]))` (integer input: JAX returns a void array)",
    TypeError,
    r"integer.*float",
)
def _():
    fx.gradient(lambda x: (x * x).sum(), jnp.array([1, 2]))


@row(LAY, "`fx.Dense('2', 3)`", TypeError, r"Dense\('2', 3\)")
def _():
    fx.Dense("2", 3)


@row(LAY, "`fx.Dense(2.0, 3)`", TypeError, r"Dense\(2\.0, 3\).*int")
def _():
    fx.Dense(2.0, 3)


@row(LAY, "`fx.Dense(2, 3.0)`", TypeError, "output size must be an int")
def _():
    fx.Dense(2, 3.0)


@row(LAY, "`fx.Dense(0, 3)`", ValueError, "sizes must be positive")
def _():
    fx.Dense(0, 3)


@row(
    LAY,
    "`fx.Dense(2, 3, init=lambda *s: np.zeros((5, 5)))` (wrong-shaped initialiser)",
    ValueError,
    r"init returned .*\(5, 5\).*\(3, 2\)",
)
def _():
    fx.Dense(2, 3, init=lambda *s: np.zeros((5, 5), np.float32))


@row(LAY, "`fx.Dense(2, 3, activation=fx.relu)` (Keras's keyword)", TypeError, "activation")
def _():
    fx.Dense(2, 3, activation=fx.relu)


@row(LAY, "`fx.Dense(2, 3, 'relu')` (activation by name)", TypeError, r"'relu'.*fx\.relu")
def _():
    fx.Dense(2, 3, "relu")


@row(LAY, "`fx.Chain(fx.Dense(2, 3), 'relu')`", TypeError, "not callable")
def _():
    fx.Chain(fx.Dense(2, 3), "relu")


@row(
    LAY,
    "`fx.glorot_uniform(0, 3)` (a zero dimension)",
    None,
    "an empty (0, 3) float32 array, as Flux",
    lambda w: w.shape == (0, 3),
)
def _():
    return fx.glorot_uniform(0, 3)


@row(
    LAY,
    "`fx.kaiming_normal(3, 0)` (fan_in 0: was a ZeroDivisionError)",
    None,
    "an empty (3, 0) float32 array, as Flux",
    lambda w: w.shape == (3, 0),
)
def _():
    return fx.kaiming_normal(3, 0)


@row(
    LAY,
    "`fx.onecold(y, labels)` with 2 labels for 3 classes",
    ValueError,
    r"onecold.*3 classes.*2 labels",
)
def _():
    fx.onecold(np.eye(3, dtype=np.float32), [0, 1])


@row(LAY, "`fx.onehotbatch([0, 5], range(3))` (a label outside the set)", ValueError, "5")
def _():
    fx.onehotbatch([0, 5], range(3))


@row(LAY, "`m[0].weight = np.zeros(3)` (wrong shape)", ValueError, r"has shape \(3, 2\)")
def _():
    mlp()[0].weight = np.zeros(3)


@row(
    LAY,
    "a model with the wrong input size: `fx.Dense(3, 1)(x)` with 2 features",
    ValueError,
    r"Dense\(3 => 1\)",
)
def _():
    fx.Dense(3, 1)(X)


@row(
    IO,
    "`fx.load('model.pt', m)` (a PyTorch pickle, or any other file)",
    fx.CheckpointError,
    "not a safetensors file",
)
def _():
    import tempfile

    p = os.path.join(tempfile.mkdtemp(), "model.pt")
    with open(p, "wb") as f:
        f.write(b"\x80\x02cpickle stuff that must never be executed" * 4)
    fx.load(p, mlp())


@row(IO, "`fx.save('no/such/folder/m.safetensors', m)`", FileNotFoundError, "create it first")
def _():
    fx.save("no/such/folder/m.safetensors", mlp())


@row(
    IO,
    "`fx.loadmodel(m, fx.state(other))` (another architecture)",
    ValueError,
    r"missing|unexpected|shape",
)
def _():
    fx.loadmodel(mlp(), fx.state(fx.Dense(2, 1)))


from mistakes_more import MORE  # noqa: E402  (issue #18's rows)

ROWS += [Row(**r) for r in MORE]


def outcome(r: Row) -> str:
    """What fluxjax says for row ``r`` now: the error or warning and its message."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r.run()
        except Exception as e:  # the row's error: shown as the user sees it
            return f"`{type(e).__name__}`: {_short(str(e))}"
    for w in caught:
        if r.kind is not None and issubclass(w.category, r.kind):
            return f"`{w.category.__name__}`: {_short(str(w.message))}"
    return f"works: {r.says}"


def _short(text: str) -> str:
    import re
    import tempfile

    text = re.sub(re.escape(tempfile.gettempdir()) + r"/[^/\s]+/", "", " ".join(text.split()))
    return text if len(text) <= 300 else text[:297] + "..."


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """The catalogue as a Markdown table, one section per category, with today's messages."""
    lines = [
        "# Mistakes and what fluxjax says",
        "",
        "Tried as a new user coming from Flux, PyTorch or Keras would try them. Every row is a",
        "test (`tests/test_mistakes.py` runs the rows of `tests/mistakes_table.py`; this page is",
        "written from the same rows by `python tests/mistakes_table.py > docs/mistakes.md`).",
        "*works* means the input is accepted and gives the right result.",
        "",
    ]
    cats: dict[str, list[Row]] = {}
    for r in ROWS:
        cats.setdefault(r.category, []).append(r)
    for cat, rows in cats.items():
        lines += [f"## {cat[0].upper()}{cat[1:]}", ""]
        lines += ["| the mistake | what fluxjax says |", "| --- | --- |"]
        for r in rows:
            lines.append(f"| {_cell(r.mistake)} | {_cell(outcome(r))} |")
        lines.append("")
    lines.append(f"{len(ROWS)} mistakes in all.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
