"""Several rules on one problem: ``compare`` and the ``Comparison`` it returns."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..callbacks import History
from ..counts import count
from ..optimise.base import Rule
from .parsing import parse_rules
from .problems import Problem, find_problem
from .runs import Run, run_rule

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
        from .. import plots

        return plots.loss_curve(
            self.histories,
            log=log,
            path=path,
            xlabel="step",
            title=f"{self.problem.name}: loss per step",
        )

    def plot_paths(self, *, path: Any = None) -> Any:
        """The rules' paths over a contour plot of the function (2-D problems only)."""
        from .. import plots

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
    prob = find_problem(problem)
    steps = count(steps, f"compare: steps must be a positive int, got {steps!r}")
    pairs = parse_rules(prob.default_rules if rules is None else rules)
    if eta is not None:
        pairs = [(f"{label} η={eta:g}", _with_eta(rule, eta)) for label, rule in pairs]
    thr = prob.threshold if threshold is None else float(threshold)
    out = Comparison(prob, steps, thr)
    for label, rule in pairs:
        out.runs.append(run_rule(prob, label, rule, steps, thr, seed, progress))
    return out


def _with_eta(rule: Rule, eta: float) -> Rule:
    if "eta" not in rule.hyperparameters():
        raise ValueError(f"compare(eta=...): {rule!r} has no learning rate eta")
    return rule.replace(eta=eta)
