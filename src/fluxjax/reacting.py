"""Callbacks that change the run: ``reduce_on_plateau`` (a learning rate that reacts to a
metric, Keras's ``ReduceLROnPlateau``) and the best-weights store behind
``fx.early_stopping(..., restore_best=True)``.

A change a callback makes to the optimiser's hyperparameters applies from the next step,
in a fused run and a step-by-step one alike (the engine takes the new values into its
compiled program after the callbacks); the learning rate is a hyperparameter of the rule,
so ``fx.save`` and the ``Checkpointer`` keep it, and ``track=`` keeps where the callback
stands.

>>> import jax.numpy as jnp, fluxjax as fx
>>> m = fx.Dense(jnp.array([[0.0]]), False)
>>> x = jnp.ones((2, 1))
>>> flat = fx.metrics(every=1, val_loss=lambda: jnp.float32(1.0))  # never improves
>>> lr = fx.reduce_on_plateau("val_loss", factor=0.5, patience=2)
>>> opt = fx.Descent(0.1)
>>> _ = fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, x)] * 5, opt, cb=[flat, lr])
>>> opt.eta   # the first score is the best; 2 flat ones halve η, 2 more halve it again
0.025
"""

from __future__ import annotations

import math
from typing import Any

from .callbacks.context import StepContext
from .callbacks.scheduling import Scheduled
from .callbacks.triggers import score_function

__all__ = ["reduce_on_plateau"]


class reduce_on_plateau(Scheduled):  # noqa: N801  (a function-like name, as fx.every)
    """Multiply the learning rate by ``factor`` when a score has not improved for
    ``patience`` calls: Keras's ``ReduceLROnPlateau(monitor, factor, patience, min_delta,
    cooldown, min_lr)``, step for step.

    Called after steps ``every, 2·every, ...`` with the ``StepContext``; ``f`` is a metric's
    name (read from ``ctx.metrics``, put there by ``fx.metrics`` earlier in ``cb`` on the same
    schedule) or a function of the context. A score improves when it is below
    ``best - min_delta``; otherwise, outside a cooldown, ``wait`` grows, and at ``patience``
    η becomes ``max(η·factor, min_eta)`` (through ``ctx.adjust``, from the next step), then
    ``cooldown`` calls pass before counting again. ``state()``/``loadstate()`` let
    ``fx.Checkpointer(track={"lr": cb})`` save and restore where it stands.
    """

    def __init__(
        self,
        f: Any,
        *,
        factor: float = 0.1,
        patience: int = 10,
        min_eta: float = 0.0,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        every: int = 1,
    ) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"reduce_on_plateau: factor must be in (0, 1), got {factor!r}.")
        for name, v in (("patience", patience), ("every", every), ("cooldown", cooldown + 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"reduce_on_plateau: {name} must be a positive int, got {v!r}.")
        self.score = score_function(f, "reduce_on_plateau")
        self.factor, self.patience, self.min_eta = float(factor), patience, float(min_eta)
        self.min_delta, self.cooldown, self.every = float(min_delta), cooldown, every
        self.best, self.wait, self.cooldown_left = math.inf, 0, 0

    def steps_until(self, step: int, seconds_per_step: float | None) -> int:
        return self.every - step % self.every

    def __call__(self, ctx: StepContext) -> None:
        current = float(self.score(ctx))
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if current < self.best - self.min_delta:
            self.best, self.wait = current, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                eta = ctx.eta
                if eta is None:
                    raise ValueError(
                        "reduce_on_plateau: the rule has no numeric eta to reduce (a schedule "
                        "or an Optax transformation); use a fluxjax rule with a number."
                    )
                if eta > self.min_eta:
                    ctx.adjust(max(eta * self.factor, self.min_eta))
                    self.cooldown_left = self.cooldown
                self.wait = 0

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def loadstate(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.cooldown_left = int(state["cooldown_left"])

    def __repr__(self) -> str:
        return f"reduce_on_plateau(factor={self.factor}, patience={self.patience})"
