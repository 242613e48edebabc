"""The problems the laboratory trains on: the seed fit, a 2-D fit and 2-D test functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
NOISE = 0.5


def quadratic(p: Any) -> Any:
    return 0.5 * (_CURV[0] * p[..., 0] ** 2 + _CURV[1] * p[..., 1] ** 2)


def noisy_quadratic(p: Any, c: Any) -> Any:
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
            quadratic,
            (2.0, 2.0),
            ((0.0, 0.0),),
            (-2.5, 2.5),
            (-2.5, 2.5),
            noisy=True,
        ),
    ]
}


def find_problem(problem: str | Problem) -> Problem:
    if isinstance(problem, Problem):
        return problem
    try:
        return PROBLEMS[problem]
    except KeyError:
        raise ValueError(
            f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}"
        ) from None
