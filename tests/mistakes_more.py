"""More rows of the mistake catalogue (``mistakes_table.py`` adds them to its ``ROWS``):
the mistakes of issue #18 — parameters of another model, constant losses, NumPy-style
initialisers, one-column softmax losses, states of other models, checkpoint settings."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

import fluxjax as fx

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
Y = X[:, :1] * 2 - X[:, 1:]

OPT = "optimiser state or gradients of another model"
HYP = "hyperparameters"
LOSS = "losses"
LAY = "layers, initialisers, one-hot"
IO = "files"
GRAD = "gradients"
CK = "checkpoints"

MORE: list[dict[str, Any]] = []


def row(category: str, mistake: str, kind: Any, says: str, check: Any = None):
    def add(f: Callable[[], Any]) -> Callable[[], Any]:
        MORE.append(
            dict(category=category, mistake=mistake, run=f, kind=kind, says=says, check=check)
        )
        return f

    return add


def mlp() -> fx.Chain:
    return fx.Chain(fx.Dense(2, 3, fx.relu), fx.Dense(3, 1))


def folder() -> str:
    return tempfile.mkdtemp()


@row(
    OPT,
    "`fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m1), ...)`: the Params of another "
    "model than the loss uses (nothing would change)",
    UserWarning,
    "the loss does not depend on any of the 4 array.*fx.params\\(m\\) for the m inside",
)
def _():
    m1, m2 = mlp(), mlp()
    fx.train(lambda x, y: fx.mse(m2(x), y), fx.params(m1), [(X, Y)] * 5, fx.Descent(0.1))


@row(
    OPT,
    "`fx.train(loss, fx.Dense(2, 1), data, fx.setup(fx.Adam(), mlp()))`: a state from "
    "`fx.setup` on a model of another structure",
    ValueError,
    "built by fx.setup for another model: it has an entry 'layers' that Dense\\(2 => 1\\) lacks",
)
def _():
    st = fx.setup(fx.Adam(), mlp())
    fx.train(lambda m, x, y: fx.mse(m(x), y), fx.Dense(2, 1), [(X, Y)], st)


@row(
    OPT,
    "`fx.update(fx.setup(fx.Adam(), mlp()), fx.Dense(2, 1), grads)`",
    ValueError,
    "built by fx.setup for another model: it has an entry 'layers'",
)
def _():
    m = fx.Dense(2, 1)
    g = fx.gradient(lambda m: fx.mse(m(X), Y), m)[0]
    fx.update(fx.setup(fx.Adam(), mlp()), m, g)


@row(
    LOSS,
    "the loss returns a constant JAX scalar (`return jnp.float32(1.0)`): nothing trains",
    UserWarning,
    "the loss does not depend on any.*not a constant",
)
def _():
    m = mlp()
    fx.train(lambda x, y: jnp.float32(1.0), fx.params(m), [(X, Y)] * 3, fx.Descent(0.1))


@row(
    LOSS,
    "`fx.logitcrossentropy(m(x), y)` with a one-column output (0 for any output)",
    ValueError,
    "one class on axis -1.*loss is 0 for any output.*fx.logitbinarycrossentropy",
)
def _():
    return fx.logitcrossentropy(fx.Dense(2, 1)(X), (Y > 0).astype(np.float32))


@row(
    LAY,
    "`fx.Dense(2, 3, init=jnp.zeros)` (a NumPy-style initialiser: takes one shape tuple)",
    TypeError,
    "init=zeros failed when called as init\\(3, 2\\).*fx.zeros32.*lambda \\*s: jnp.zeros\\(s\\)",
)
def _():
    fx.Dense(2, 3, init=jnp.zeros)


@row(
    LAY,
    "`fx.LSTM(2, 3, init=np.ones)`",
    TypeError,
    "LSTMCell: init=ones failed when called as init\\(12, 2\\)",
)
def _():
    fx.LSTM(2, 3, init=np.ones)


@row(
    LAY,
    "`fx.Dense(2, 3, init=lambda o, i: np.zeros((o, i), int))` (an integer weight)",
    TypeError,
    "init returned an array of dtype int64; weights must be floating point",
)
def _():
    fx.Dense(2, 3, init=lambda o, i: np.zeros((o, i), np.int64))


@row(
    GRAD,
    "`fx.gradient(lambda x, y: loss(x, y), ps)`: a function of the data with Params",
    TypeError,
    "with Params, f is called with no arguments, but it takes \\(x, y\\).*lambda: loss\\(x, y\\)",
)
def _():
    m = mlp()
    fx.gradient(lambda x, y: fx.mse(m(x), y), fx.params(m))


@row(
    GRAD,
    "`fx.gradient(f, ps, mode='backward')` (a misspelt mode; implicit mode ignored it)",
    ValueError,
    "mode must be 'reverse' \\(the default, Zygote\\) or 'forward'.*got 'backward'",
)
def _():
    m = mlp()
    fx.gradient(lambda: fx.mse(m(X), Y), fx.params(m), mode="backward")


@row(
    HYP,
    "`fx.Adam(weight_decay=0.1)` (PyTorch's keyword)",
    TypeError,
    "Adam has no weight_decay=.*fx.OptimiserChain\\(fx.WeightDecay\\(0.1\\), fx.Adam\\(\\)\\)",
)
def _():
    fx.Adam(weight_decay=0.1)


@row(
    HYP,
    "`rule.as_optax()` without optax installed",
    ImportError,
    "this needs optax: pip install optax \\(or pip install 'fluxjax\\[optax\\]'\\)",
)
def _():
    saved = sys.modules.get("optax")
    sys.modules["optax"] = None  # as if it were not installed
    try:
        fx.Adam().as_optax()
    finally:
        if saved is None:
            del sys.modules["optax"]
        else:
            sys.modules["optax"] = saved


@row(
    IO,
    "`fx.save(path, m, fx.setup(fx.Adam(), other_model))`",
    ValueError,
    "built by fx.setup for another model: it has an entry 'weight' that Chain",
)
def _():
    fx.save(os.path.join(folder(), "m.safetensors"), mlp(), fx.setup(fx.Adam(), fx.Dense(1, 1)))


@row(
    IO,
    "`fx.load` of a trained stateful LSTM into a freshly built one (its state has a batch axis)",
    None,
    "loads: the carried state comes back with its batch axis",
    check=lambda shape: shape == (6, 3),
)
def _():
    m = fx.Chain(fx.Dense(2, 4), fx.LSTM(4, 3))
    m(X)  # one step: the state is now (6, 3)
    path = os.path.join(folder(), "m.safetensors")
    fx.save(path, m)
    fresh = fx.Chain(fx.Dense(2, 4), fx.LSTM(4, 3))
    fx.load(path, fresh)
    return tuple(fresh[1].state[0].shape)


@row(
    CK,
    "`fx.Checkpointer(folder, m, monitor='val_loss', mode='minimum')`",
    ValueError,
    "mode must be 'min' \\(a loss: lower is better\\) or 'max'.*got 'minimum'",
)
def _():
    fx.Checkpointer(folder(), mlp(), monitor="val_loss", mode="minimum")


@row(
    CK,
    "`fx.Checkpointer(folder, m, best=2)` without `monitor=`",
    TypeError,
    "best=2 needs monitor=, the name of the metric",
)
def _():
    fx.Checkpointer(folder(), mlp(), best=2)


@row(
    CK,
    "`best=1, monitor='val_loss'` with no `fx.metrics` computing it",
    ValueError,
    "monitor='val_loss' is not in ctx.metrics at global step 2.*fx.metrics\\(every=2, val_loss=",
)
def _():
    m = mlp()
    ck = fx.Checkpointer(folder(), m, every=2, best=1, monitor="val_loss")
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)] * 2, fx.Descent(), cb=ck)


@row(
    CK,
    "`fx.Checkpointer(folder, m, every_seconds='600')`",
    ValueError,
    "every_seconds must be a positive number of seconds, got '600'",
)
def _():
    fx.Checkpointer(folder(), mlp(), every_seconds="600")


@row(
    CK,
    "`on_signal=True` with `train` running on another thread (signals reach the main one)",
    RuntimeError,
    "Python delivers signals to the main thread only.*on_signal=False",
)
def _():
    m = mlp()
    ck = fx.Checkpointer(folder(), m, every=1, on_signal=True)
    out: list[BaseException] = []

    def work() -> None:
        try:
            fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Descent(), cb=ck)
        except BaseException as e:  # noqa: BLE001 - handed back to the calling thread
            out.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    if out:
        raise out[0]


@row(
    HYP,
    "`fx.train(loss, ps, data, opt, epoch=3)` or Keras's `callbacks=[...]`: a keyword train "
    "does not take",
    TypeError,
    "unknown keyword argument epoch=3. Did you mean epochs=",
)
def _():
    m = mlp()
    fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(X, Y)], fx.Descent(0.1), epoch=3)


@row(
    HYP,
    '`fx.train(..., fx.Adam(), precision="float16")`, as Keras\'s `mixed_float16` (which adds '
    "loss scaling for you)",
    ValueError,
    "needs dynamic loss scaling.*fx.OptimiserChain\\(fx.LossScale\\(\\), fx.Adam\\(\\)\\)",
)
def _():
    m = mlp()
    fx.train(lambda m, x, y: fx.mse(m(x), y), m, [(X, Y)], fx.Adam(), precision="float16")
