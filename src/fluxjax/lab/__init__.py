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

from .comparison import Comparison, compare
from .models import Point, fit2d_model, seed_model
from .parsing import parse_rule, parse_rules
from .problems import PROBLEMS, Problem, quadratic  # noqa: F401
from .runs import Run

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
