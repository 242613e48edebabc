"""A small laboratory for optimiser rules: run several rules from the same start, compare.

``compare(rules, problem, steps)`` trains one fresh copy of a problem's parameters per rule,
all from the same initial values, with ``fx.train``, and returns a ``Comparison``: a table
(final loss, best loss, steps to reach a threshold, wall time), the loss histories and, for
the 2-D problems, the path each rule took.

>>> from fluxjax import lab
>>> result = lab.compare(["Descent(0.001)", "Adam(0.05)"], "rosenbrock", steps=50)
>>> [row["rule"] for row in result.rows()]
['Descent(0.001)', 'Adam(0.05)']
>>> result.paths["Adam(0.05)"].shape
(51, 2)

Problems (``PROBLEMS``):

* ``"seed"``: the tutorial's 1-D fit, ``Chain(Dense(1, 4, σ), Dense(4, 1))`` from its
  hand-set weights, mean squared error on all 21 points each step.
* ``"fit2d"``: sin x · sin y on the 11 × 11 grid over [−π, π]², ``Chain(Dense(2, 10, σ),
  Dense(10, 1))`` (one random initialisation, from ``seed``, shared by every rule).
* ``"rosenbrock"``: (1 − x)² + 100 (y − x²)², from (−1.2, 1); minimum 0 at (1, 1).
* ``"beale"``: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)², from (1, 1.5);
  minimum 0 at (3, 0.5).
* ``"saddle"``: x² + y⁴/4 − y²/2, from (1, 0.001) next to the saddle point (0, 0); minima
  −0.25 at (0, ±1). Plain gradient descent lingers at the saddle, adaptive rules leave it.
* ``"noisy_quadratic"``: ½ (10 (x − cₜ)² + (y − dₜ)²) with fresh noise (cₜ, dₜ) ~ N(0, 0.5²)
  at each step (the same draws for every rule), from (2, 2); the table and the histories
  report the noise-free ½ (10 x² + y²).

For the 2-D problems the parameters are one 2-vector held in a small ``Point`` module; the
histories hold the (noise-free) function at every point of the path, step 0 included.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import datasets
from . import optimise as _optimise
from .activations import sigmoid
from .autodiff import params
from .callbacks import History
from .data import DataLoader
from .engine import train
from .init import glorot_uniform
from .layers import Chain, Dense
from .losses import mse
from .module import Module
from .optimise.base import Rule

__all__ = [
    "Problem",
    "PROBLEMS",
    "Point",
    "Run",
    "Comparison",
    "compare",
    "parse_rule",
    "parse_rules",
    "seed_model",
    "fit2d_model",
]


# ---- models ----------------------------------------------------------------------------------


def seed_model() -> Chain:
    """The tutorial's ``Chain(Dense(1, 4, σ), Dense(4, 1))`` with its hand-set weights: first
    layer 5, −5, −5, −5, second layer 5, −2, 5, −5, biases 0.

    >>> from fluxjax import lab
    >>> lab.seed_model()[1].weight.tolist()
    [[5.0, -2.0, 5.0, -5.0]]
    """
    m = Chain(Dense(1, 4, sigmoid), Dense(4, 1))
    m[0].weight = [[5.0], [-5.0], [-5.0], [-5.0]]
    m[0].bias = [0.0, 0.0, 0.0, 0.0]
    m[1].weight = [[5.0, -2.0, 5.0, -5.0]]
    m[1].bias = [0.0]
    return m


def fit2d_model() -> Chain:
    """``Chain(Dense(2, 10, σ), Dense(10, 1))``, the tutorial's 2-D model (random init)."""
    return Chain(Dense(2, 10, sigmoid), Dense(10, 1))


class Point(Module):
    """One trainable 2-vector ``xy``: the parameters of a 2-D test function.

    >>> from fluxjax import lab
    >>> lab.Point([1.0, 2.0]).xy.tolist()
    [1.0, 2.0]
    """

    def __init__(self, xy: Sequence[float]) -> None:
        self.xy = jnp.asarray(xy, jnp.float32)

    def __call__(self) -> Any:
        return self.xy


# ---- problems --------------------------------------------------------------------------------


def _rosenbrock(p: Any) -> Any:
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(p: Any) -> Any:
    x, y = p[..., 0], p[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _saddle(p: Any) -> Any:
    x, y = p[..., 0], p[..., 1]
    return x**2 + y**4 / 4 - y**2 / 2


_CURV = (10.0, 1.0)
_NOISE = 0.5


def _quadratic(p: Any) -> Any:
    return 0.5 * (_CURV[0] * p[..., 0] ** 2 + _CURV[1] * p[..., 1] ** 2)


def _noisy_quadratic(p: Any, c: Any) -> Any:
    d = p - c
    return 0.5 * (_CURV[0] * d[..., 0] ** 2 + _CURV[1] * d[..., 1] ** 2)


@dataclass(frozen=True)
class Problem:
    """A test problem for ``compare``.

    ``kind`` is ``"fit"`` (a model fitted to data) or ``"2d"`` (a function of one 2-vector,
    ``f`` vectorised over the last axis, NumPy or JAX). ``threshold`` is the default loss
    whose first crossing the table reports; ``xlim``/``ylim`` frame the contour plot.
    """

    name: str
    kind: str
    description: str
    threshold: float
    default_rules: str
    f: Callable[[Any], Any] | None = None
    start: tuple[float, float] | None = None
    minimum: tuple[tuple[float, float], ...] = ()
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    noisy: bool = False


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem(
            "seed",
            "fit",
            "the tutorial's 1-D fit, Chain(Dense(1, 4, σ), Dense(4, 1)), mse on 21 points",
            0.03,
            "Descent,Momentum,RMSProp,Adam",
        ),
        Problem(
            "fit2d",
            "fit",
            "sin x · sin y on the 11 × 11 grid, Chain(Dense(2, 10, σ), Dense(10, 1)), mse",
            0.05,
            "Descent,Momentum,RMSProp(0.01),Adam(0.01)",
        ),
        Problem(
            "rosenbrock",
            "2d",
            "(1 − x)² + 100 (y − x²)² from (−1.2, 1), minimum 0 at (1, 1)",
            1e-3,
            "Descent(0.001),Momentum(0.001),Nesterov(0.001),RMSProp(0.01),Adam(0.05)",
            _rosenbrock,
            (-1.2, 1.0),
            ((1.0, 1.0),),
            (-2.0, 2.0),
            (-1.0, 3.0),
        ),
        Problem(
            "beale",
            "2d",
            "Beale's function from (1, 1.5), minimum 0 at (3, 0.5)",
            1e-3,
            "Descent(0.01),Momentum(0.001),RMSProp(0.01),Adam(0.05)",
            _beale,
            (1.0, 1.5),
            ((3.0, 0.5),),
            (-1.0, 4.0),
            (-1.5, 2.0),
        ),
        Problem(
            "saddle",
            "2d",
            "x² + y⁴/4 − y²/2 from (1, 0.001) near the saddle (0, 0), minima −0.25 at (0, ±1)",
            -0.24,
            "Descent(0.01),Momentum(0.01),RMSProp(0.01),Adam(0.05)",
            _saddle,
            (1.0, 0.001),
            ((0.0, 1.0), (0.0, -1.0)),
            (-1.5, 1.5),
            (-1.6, 1.6),
        ),
        Problem(
            "noisy_quadratic",
            "2d",
            "½ (10 (x − c)² + (y − d)²) with noise c, d ~ N(0, 0.5²) each step, from (2, 2)",
            0.05,
            "Descent(0.05),Momentum(0.005),RMSProp(0.01),Adam(0.05)",
            _quadratic,
            (2.0, 2.0),
            ((0.0, 0.0),),
            (-2.5, 2.5),
            (-2.5, 2.5),
            noisy=True,
        ),
    ]
}


def _problem(problem: str | Problem) -> Problem:
    if isinstance(problem, Problem):
        return problem
    try:
        return PROBLEMS[problem]
    except KeyError:
        raise ValueError(
            f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}"
        ) from None


# ---- rules by name ---------------------------------------------------------------------------


def _rule_classes() -> dict[str, type[Rule]]:
    """Every rule class the package exports, by name (aliases such as ADAM included)."""
    return {
        n: c
        for n, c in vars(_optimise).items()
        if isinstance(c, type) and issubclass(c, Rule) and c is not Rule and not n.startswith("_")
    }


def _rule_class(name: str) -> type[Rule]:
    names = _rule_classes()
    cls = names.get(name) or {n.lower(): c for n, c in names.items()}.get(name.lower())
    if cls is None:
        known = ", ".join(sorted(n for n, c in names.items() if n == c.__name__))
        raise ValueError(f"unknown optimiser rule {name!r}; known rules: {known}")
    return cls


def parse_rule(text: str) -> Rule:
    """A rule from its name, optionally called with literal arguments: ``"Adam"``,
    ``"adam"``, ``"Descent(0.01)"``, ``"Adam(eta=0.01, beta=(0.9, 0.99))"``.

    >>> from fluxjax import lab
    >>> lab.parse_rule("Momentum(0.001, rho=0.8)")
    Momentum(eta=0.001, rho=0.8)
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot read the rule {text!r}; write e.g. Adam or Adam(0.01)") from None
    if isinstance(node, ast.Name):
        return _rule_class(node.id)()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise ValueError(
                f"the rule {text!r} may only have literal arguments (numbers, tuples)"
            ) from None
        return _rule_class(node.func.id)(*args, **kwargs)
    raise ValueError(f"cannot read the rule {text!r}; write e.g. Adam or Adam(0.01)")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_rules(rules: str | Rule | Iterable[str | Rule]) -> list[tuple[str, Rule]]:
    """``(label, rule)`` pairs from rule objects, names, or one comma-separated string
    (``"Adam,Descent(0.01)"``). Labels are the text given, or the class name of a rule object
    (with ``eta`` added, then the full repr, where two would clash).

    >>> from fluxjax import lab
    >>> [label for label, _ in lab.parse_rules("Adam, Descent(0.01)")]
    ['Adam', 'Descent(0.01)']
    """
    if isinstance(rules, str):
        rules = _split_top(rules)
    elif isinstance(rules, Rule):
        rules = [rules]
    out: list[tuple[str, Rule]] = []
    for r in rules:
        if isinstance(r, str):
            out.append((r.strip(), parse_rule(r)))
        elif isinstance(r, Rule):
            out.append((type(r).__name__, r))
        else:
            raise TypeError(f"compare: a rule must be a rule object or a name, got {r!r}")
    if not out:
        raise ValueError("compare: give at least one rule, e.g. ['Adam', 'Momentum']")
    return _unique(out)


def _unique(pairs: list[tuple[str, Rule]]) -> list[tuple[str, Rule]]:
    def clashes(labels: list[str], i: int) -> bool:
        return labels.count(labels[i]) > 1

    labels = [label for label, _ in pairs]
    for make in (
        lambda label, r: f"{type(r).__name__}(eta={getattr(r, 'eta', '?')})",
        lambda label, r: repr(r),
    ):
        labels = [
            make(lb, r) if clashes(labels, i) and lb == type(r).__name__ else lb
            for i, (lb, (_, r)) in enumerate(zip(labels, pairs))
        ]
    seen: dict[str, int] = {}
    for i, lb in enumerate(labels):
        if labels.count(lb) > 1:
            seen[lb] = seen.get(lb, 0) + 1
            labels[i] = f"{lb} #{seen[lb]}"
    return [(lb, r) for lb, (_, r) in zip(labels, pairs)]


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
        noise = np.random.default_rng(seed).normal(0.0, _NOISE, (steps, 2)).astype(np.float32)
        data: Any = DataLoader(noise)
        loss: Any = lambda c: _noisy_quadratic(pt.xy, c[0])  # noqa: E731
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


def _run(
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


# ---- the comparison --------------------------------------------------------------------------


@dataclass
class Comparison:
    """What ``compare`` returns: the problem, the settings and one ``Run`` per rule.

    ``rows()`` gives the table as a list of dicts, ``table()`` (and ``str``) as aligned text;
    ``histories`` and ``paths`` map each rule's label to its ``History`` and path, ready for
    ``fx.plots.loss_curve`` and ``fx.plots.trajectories`` (or ``plot_losses`` and
    ``plot_paths`` here).
    """

    problem: Problem
    steps: int
    threshold: float
    runs: list[Run] = field(default_factory=list)

    @property
    def histories(self) -> dict[str, History]:
        """Rule label → loss history (step t: the loss after t updates)."""
        return {r.label: r.history for r in self.runs}

    @property
    def paths(self) -> dict[str, np.ndarray]:
        """Rule label → ``(steps + 1, 2)`` path (2-D problems only; else empty)."""
        return {r.label: r.path for r in self.runs if r.path is not None}

    def rows(self) -> list[dict[str, Any]]:
        """One dict per rule: rule, final_loss, best_loss, steps_to_threshold, wall_time_s,
        status."""
        return [
            {
                "rule": r.label,
                "final_loss": r.final_loss,
                "best_loss": r.best_loss,
                "steps_to_threshold": r.steps_to_threshold,
                "wall_time_s": round(r.wall_time, 4),
                "status": r.status,
            }
            for r in self.runs
        ]

    def table(self) -> str:
        """The table as aligned text, headed by the problem and the settings."""
        head = (
            "rule",
            "final loss",
            "best loss",
            f"steps to ≤ {self.threshold:g}",
            "time [s]",
            "status",
        )
        body = [
            (
                r.label,
                _num(r.final_loss),
                _num(r.best_loss),
                "—" if r.steps_to_threshold is None else str(r.steps_to_threshold),
                f"{r.wall_time:.2f}",
                r.status,
            )
            for r in self.runs
        ]
        widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
        left = {0, 5}

        def line(row: Sequence[str]) -> str:
            cells = [
                c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            ]
            return "  ".join(cells).rstrip()

        title = f"{self.problem.name}: {self.problem.description}; {self.steps} steps each"
        return "\n".join([title, line(head), *(line(row) for row in body)])

    def __str__(self) -> str:
        return self.table()

    def plot_losses(self, *, path: Any = None, log: bool | None = None) -> Any:
        """The loss curves of every rule in one figure (``fx.plots.loss_curve``)."""
        from . import plots

        return plots.loss_curve(
            self.histories,
            log=log,
            path=path,
            xlabel="step",
            title=f"{self.problem.name}: loss per step",
        )

    def plot_paths(self, *, path: Any = None) -> Any:
        """The rules' paths over a contour plot of the function (2-D problems only)."""
        from . import plots

        return plots.trajectories(self, path=path)


def _num(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.4g}"


def compare(
    rules: str | Rule | Iterable[str | Rule] | None = None,
    problem: str | Problem = "rosenbrock",
    steps: int = 500,
    *,
    threshold: float | None = None,
    eta: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """Train the parameters of ``problem`` once per rule, every run from the same start.

    * ``rules``: rule objects, names (``"Adam"``), names with arguments (``"Adam(0.01)"``), or
      one comma-separated string; None takes the problem's ``default_rules``. A rule object
      is used as given (its implicit-mode state starts fresh, since every run trains new
      parameters).
    * ``problem``: a name from ``PROBLEMS`` or a ``Problem``.
    * ``steps``: optimiser steps per rule (full-batch for the fits, one noisy draw per step
      for ``noisy_quadratic``).
    * ``threshold``: the loss whose first crossing the table reports (problem default else).
    * ``eta``: if given, every rule's learning rate is set to it (a copy of each rule).
    * ``seed``: the random start of ``fit2d`` and the noise of ``noisy_quadratic``.

    A run whose loss becomes non-finite stops there and is marked "diverged at step k".
    """
    prob = _problem(problem)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"compare: steps must be a positive int, got {steps!r}")
    pairs = parse_rules(prob.default_rules if rules is None else rules)
    if eta is not None:
        pairs = [(f"{label} η={eta:g}", _with_eta(rule, eta)) for label, rule in pairs]
    thr = prob.threshold if threshold is None else float(threshold)
    out = Comparison(prob, steps, thr)
    for label, rule in pairs:
        out.runs.append(_run(prob, label, rule, steps, thr, seed, progress))
    return out


def _with_eta(rule: Rule, eta: float) -> Rule:
    if "eta" not in rule.hyperparameters():
        raise ValueError(f"compare(eta=...): {rule!r} has no learning rate eta")
    return rule.replace(eta=eta)
