"""One rule trained on one problem: a ``Run`` (history, path, time, divergence)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets
from ..autodiff import params
from ..callbacks import History
from ..data import DataLoader
from ..engine import train
from ..init import glorot_uniform
from ..layers import Chain
from ..losses import mse
from ..optimise.base import Rule
from .models import Point, fit2d_model, seed_model
from .problems import NOISE, Problem, noisy_quadratic

# ---- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One rule's run.

    ``history`` is an ``fx.History`` whose step ``t`` holds the loss after ``t`` updates
    (step 0 is the start); ``path`` is the ``(steps + 1, 2)`` array of points visited (2-D
    problems; else None); ``steps_to_threshold`` is the first step at or below the threshold
    (None if never); ``wall_time`` is the seconds spent in ``fx.train``, compilation
    included; ``diverged`` is the step at which training stopped on a non-finite loss (then
    ``final_loss`` is NaN), else None.
    """

    label: str
    rule: Rule
    history: History
    final_loss: float
    best_loss: float
    steps_to_threshold: int | None
    wall_time: float
    path: np.ndarray | None = None
    diverged: int | None = None

    @property
    def status(self) -> str:
        """``"ok"`` or ``"diverged at step k"``."""
        return "ok" if self.diverged is None else f"diverged at step {self.diverged}"


def _history(losses: Sequence[float]) -> History:
    h = History()
    h.losses = [float(v) for v in losses]
    h.steps = list(range(len(h.losses)))
    h.epochs = list(h.steps)
    return h


def _failed_step(error: FloatingPointError) -> int:
    found = re.search(r"at step (\d+)", str(error))
    return int(found.group(1)) if found else 1


_FIT2D_START: dict[int, list[np.ndarray]] = {}


def _fit2d_start(seed: int) -> Chain:
    """A fresh fit2d model holding the initial weights drawn once for ``seed``."""
    if seed not in _FIT2D_START:
        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        _FIT2D_START[seed] = [
            np.asarray(glorot_uniform(10, 2, key=k1)),
            np.asarray(glorot_uniform(1, 10, key=k2)),
        ]
    m = fit2d_model()
    m[0].weight, m[1].weight = (w.copy() for w in _FIT2D_START[seed])
    return m


_CHUNK = 500  # fit problems train in chunks, so a diverging run keeps the history so far


def _run_fit(problem: Problem, rule: Rule, steps: int, seed: int, progress: bool) -> tuple:
    if problem.name not in ("seed", "fit2d"):
        raise ValueError(f"compare: the fit problems are 'seed' and 'fit2d', not {problem.name!r}")
    x, y = datasets.seed_data() if problem.name == "seed" else datasets.grid2d()
    model = seed_model() if problem.name == "seed" else _fit2d_start(seed)
    data = [(jnp.asarray(x), jnp.asarray(y))]

    def loss(x: Any, y: Any) -> Any:
        return mse(model(x), y)

    ps, losses, diverged, spent = params(model), [], None, 0.0
    while len(losses) < steps and diverged is None:
        n = min(_CHUNK, steps - len(losses))
        t0 = time.perf_counter()
        try:
            losses += train(loss, ps, data, rule, epochs=n, progress=progress).losses
        except FloatingPointError as e:
            diverged = len(losses) + _failed_step(e)
        spent += time.perf_counter() - t0
    final = math.nan if diverged else float(loss(*data[0]))
    return _history([*losses, final] if diverged is None else losses), final, spent, diverged, None


def _run_2d(problem: Problem, rule: Rule, steps: int, seed: int, progress: bool) -> tuple:
    if problem.f is None or problem.start is None:
        raise ValueError(f"compare: 2-D problem {problem.name!r} needs f and start")
    f, pt = problem.f, Point(problem.start)
    path = [np.asarray(pt.xy, np.float64)]

    def record() -> None:
        path.append(np.asarray(pt.xy, np.float64))

    if problem.noisy:
        noise = np.random.default_rng(seed).normal(0.0, NOISE, (steps, 2)).astype(np.float32)
        data: Any = DataLoader(noise)
        loss: Any = lambda c: noisy_quadratic(pt.xy, c[0])  # noqa: E731
        epochs = 1
    else:
        data, loss, epochs = [()], lambda: f(pt.xy), steps
    t0 = time.perf_counter()
    diverged = None
    try:
        train(
            loss,
            params(pt),
            data,
            rule,
            epochs=epochs,
            cb=record,
            steps_per_call=1,
            progress=progress,
        )
    except FloatingPointError:
        diverged = len(path)
    spent = time.perf_counter() - t0
    points = np.stack(path)
    with np.errstate(over="ignore", invalid="ignore"):
        values = f(points)
    final = math.nan if diverged else float(values[-1])
    return _history(values), final, spent, diverged, points


def run_rule(
    problem: Problem,
    label: str,
    rule: Rule,
    steps: int,
    threshold: float,
    seed: int,
    progress: bool,
) -> Run:
    go = _run_fit if problem.kind == "fit" else _run_2d
    history, final, spent, diverged, path = go(problem, rule, steps, seed, progress)
    finite = [v for v in history.losses if math.isfinite(v)]
    hit = next((s for s, v in zip(history.steps, history.losses) if v <= threshold), None)
    return Run(
        label,
        rule,
        history,
        final,
        min(finite) if finite else math.nan,
        hit,
        spent,
        path,
        diverged,
    )
