"""What a training step tells a callback (``StepContext``) and the ``History`` callback;
re-exported by ``fluxjax.callbacks``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..autodiff import Grads, Params
from ..optimise.interface import adjust_live


@dataclass(frozen=True, init=False, eq=False, repr=False)
class StepContext:
    """What a training step tells a callback that takes one argument.

    - ``epoch``: 1-based epoch number; ``step``: 1-based count of steps in this ``train`` call,
      this one included; ``batch_index``: 0-based position of the batch within its epoch.
    - ``eta``: the learning rate, where the rule has one, else ``None``.
    - ``loss``: this step's loss as a Python ``float`` (or ``None``). It is read lazily: the
      raw value (a device scalar, or a zero-argument function returning one) is converted the
      first time ``.loss`` is read, so a callback that never reads it costs no device sync.
    - ``metrics``: a dict shared by the callbacks of this step: one may put values in it
      (``ctx.metrics["val_loss"] = v``) for the later ones (loggers) to read; ``train``
      records every entry in its history (``h["val_loss"]``).
    - ``history``: the ``TrainHistory`` this ``train`` call fills and returns (``None``
      outside ``train``): the metrics of earlier steps, ``history.steps_of(name)``, as
      recorded so far (this step's ``metrics`` are added after its callbacks).
    - ``grad_norm``: the 2-norm of this step's gradients over every trainable array (as
      ``optax.global_norm``), a ``float``; computed inside the compiled step and kept on
      the device until read (then one sync), ``None`` outside ``train``.
    - ``grads``: this step's gradients as ``fx.Grads`` (``ctx.grads[m[0].weight]``), for
      a callback that asked for them: ``fx.every(n, f, grads=True)``; else an error.

    >>> import jax.numpy as jnp, fluxjax as fx
    >>> ctx = fx.StepContext(epoch=1, step=3, loss=jnp.float32(0.25), eta=0.001, batch_index=2)
    >>> ctx.loss
    0.25
    >>> ctx
    StepContext(epoch=1, step=3, loss=0.25, eta=0.001, batch_index=2)
    """

    epoch: int
    step: int
    _loss: Any
    eta: float | None
    batch_index: int
    metrics: dict[str, Any]
    history: Any

    def __init__(
        self,
        epoch: int,
        step: int,
        loss: Any = None,
        eta: float | None = None,
        batch_index: int = 0,
        *,
        history: Any = None,
        plan: Any = None,
    ) -> None:
        # frozen: the fields are set here once (a frozen dataclass refuses assignment)
        vars(self).update(
            epoch=epoch,
            step=step,
            _loss=loss,
            eta=eta,
            batch_index=batch_index,
            metrics={},
            history=history,
            _plan=plan,  # the training plan (internal): the optimiser, the arrays
            _aux=None if plan is None else plan.aux,  # the step's (status, gradients)
        )

    @property
    def grad_norm(self) -> float | None:
        """The global gradient norm of this step, read from the device on first use."""
        if self._aux is None:
            return None
        if "_grad_norm" not in self.__dict__:
            vars(self)["_grad_norm"] = self._plan.read_grad_norm(self._aux)  # read once
        return self.__dict__["_grad_norm"]

    @property
    def grads(self) -> Any:
        """This step's gradients (``fx.Grads``), when the callback asked for them."""
        aux = self._aux
        if aux is None or not aux[1]:
            raise AttributeError(
                "StepContext.grads: this callback did not ask for the gradients; wrap it as "
                "fx.every(n, f, grads=True) (the compiled step then keeps them)."
            )
        return Grads(Params(self._plan.entries), aux[1])

    def adjust(self, eta: Any = None, **changes: Any) -> None:
        """Change the hyperparameters of the optimiser being trained, as ``fx.adjust`` (in
        place, in implicit and explicit mode); they apply from the next step."""
        if self._plan is None:
            raise TypeError("StepContext.adjust works inside fx.train's callbacks only.")
        adjust_live(self._plan, eta, **changes)

    @property
    def loss(self) -> float | None:
        """This step's loss as a float, converted (one device sync) on first read."""
        if "_loss_value" not in self.__dict__:
            raw = self._loss() if callable(self._loss) else self._loss
            vars(self)["_loss_value"] = None if raw is None else float(raw)  # read once
        return self.__dict__["_loss_value"]

    def __repr__(self) -> str:
        return (
            f"StepContext(epoch={self.epoch}, step={self.step}, loss={self.loss}, "
            f"eta={self.eta}, batch_index={self.batch_index})"
        )


class History:
    """A callback that records the loss, step and epoch of every step it is called with.

    Pass it to ``fx.train(..., cb=history)``; it is called with the ``StepContext`` of each
    step and reads ``ctx.loss`` (so it asks the loop for every step's loss). ``losses``,
    ``steps`` and ``epochs`` are parallel lists; ``len(history)`` is how many steps it saw;
    ``best()`` is the lowest loss. Wrap it in ``fx.throttle`` to record less often.

    >>> import fluxjax as fx
    >>> history = fx.History()
    >>> for step, loss in enumerate([0.9, 0.5, 0.7], start=1):
    ...     history(fx.StepContext(epoch=1, step=step, loss=loss, batch_index=step - 1))
    >>> history.losses, history.steps, len(history), history.best()
    ([0.9, 0.5, 0.7], [1, 2, 3], 3, 0.5)
    >>> history
    History(3 steps, best loss 0.5 at step 2)
    """

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.steps: list[int] = []
        self.epochs: list[int] = []

    def __call__(self, ctx: StepContext) -> None:
        if not hasattr(ctx, "loss"):
            raise TypeError(
                f"History records a StepContext, got {ctx!r}; pass it to fx.train as cb=history"
            )
        self.losses.append(ctx.loss)
        self.steps.append(ctx.step)
        self.epochs.append(ctx.epoch)

    def __len__(self) -> int:
        return len(self.losses)

    def best(self) -> float:
        """The lowest loss recorded (NaN losses are ignored); ValueError if none."""
        finite = [x for x in self.losses if x is not None and not math.isnan(x)]
        if not finite:
            raise ValueError("History.best(): no loss recorded yet")
        return min(finite)

    def __repr__(self) -> str:
        n = len(self)
        try:
            best = self.best()
        except ValueError:
            return f"History({n} step{'s' * (n != 1)})"
        step = self.steps[self.losses.index(best)]
        return f"History({n} step{'s' * (n != 1)}, best loss {best:.4g} at step {step})"
