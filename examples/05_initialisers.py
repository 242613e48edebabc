"""Chapter 6 of the tutorial: initialisation.

Layers start from ``glorot_uniform`` by default; ``glorot_normal``, ``kaiming_uniform`` and
``kaiming_normal`` are the other classics (their spread follows the fan-in and fan-out).
Initialisers make float32 arrays; a layer can be built from given arrays, or with
``init=fx.rand32``; ``fx.f64(m)`` converts a whole model to float64 (JAX's x64 mode).

    python examples/05_initialisers.py [--tiny]
"""

from __future__ import annotations

import argparse
import math
import os
import warnings

import numpy as np

import fluxjax as fx


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    return p.parse_args()


def main() -> None:
    args = options()
    fx.seed(0)
    n_out, n_in = (50, 30) if args.tiny else (400, 300)
    print(f"a ({n_out}, {n_in}) weight (fan_in {n_in}, fan_out {n_out}):")
    expected = {  # the standard deviation each rule aims at
        "glorot_uniform": math.sqrt(2 / (n_in + n_out)),
        "glorot_normal": math.sqrt(2 / (n_in + n_out)),
        "kaiming_uniform": math.sqrt(2 / n_in),
        "kaiming_normal": math.sqrt(2 / n_in),
    }
    for name, std in expected.items():
        w = getattr(fx, name)(n_out, n_in)
        print(f"  {name:<16} dtype {w.dtype}  std {float(w.std()):.4f}  (expected {std:.4f})")

    d = fx.Dense(2, 3)
    print(f"\nDense(2, 3) weight, glorot_uniform by default:\n{np.asarray(d.weight).round(3)}")
    d = fx.Dense(2, 3, init=fx.rand32)
    inside = bool(((d.weight >= 0) & (d.weight < 1)).all())
    print(f"Dense(2, 3, init=fx.rand32): all in [0, 1)? {inside}")
    given = fx.Dense(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5]))
    print(f"Dense from NumPy float64 arrays: {given}, weight dtype {given.weight.dtype}")

    m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    with warnings.catch_warnings(record=True) as caught:  # f64 says once that x64 is now on
        warnings.simplefilter("always")
        m64 = fx.f64(m)
    print(f"fx.f64(model): dtypes {sorted({str(p.dtype) for p in fx.params(m64)})}")
    for w in caught:
        print(f"  (warning: {str(w.message).splitlines()[0]})")


if __name__ == "__main__":
    main()
