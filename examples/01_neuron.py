"""Chapter 3 of the tutorial: one neuron, a bump, a staircase.

A ``Dense(1, 1, σ)`` is one neuron, y = σ(w·x + b). Its weight sharpens (5) or flattens (1)
the sigmoid, and a negative weight flips it. Two steep neurons subtracted make a bump; ten
steep neurons added make a staircase: a network can approximate a piecewise-constant function.

    python examples/01_neuron.py [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import fluxjax as fx


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="write the pictures (needs matplotlib) into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    return p.parse_args()


def neuron(w: float) -> fx.Dense:
    """Dense(1, 1, σ) with weight w and bias 0."""
    return fx.Dense(np.array([[float(w)]]), np.array([0.0]), fx.sigmoid)


def bump() -> fx.Chain:
    """σ(100x + 100) − σ(100x − 100): 1 on (−1, 1), 0 elsewhere."""
    return fx.Chain(
        fx.Dense(np.array([[100.0], [100.0]]), np.array([100.0, -100.0]), fx.sigmoid),
        fx.Dense(np.array([[1.0, -1.0]]), np.array([0.0])),
    )


def staircase() -> fx.Chain:
    """Σ σ(100x + b) for b = 400, 300, …, −500: one step up at each x = −4, −3, …, 5."""
    biases = np.arange(400.0, -501.0, -100.0)
    return fx.Chain(
        fx.Dense(np.full((10, 1), 100.0), biases, fx.sigmoid),
        fx.Dense(np.ones((1, 10)), np.array([0.0])),
    )


def show(name: str, model, xs) -> None:
    ys = np.asarray(model(xs.reshape(-1, 1))).ravel()
    print(f"{name:<12}" + " ".join(f"{v:6.2f}" for v in ys))


def main() -> None:
    args = options()
    xs = np.arange(-5.0, 5.1, 1.0, dtype=np.float32)
    print("x           " + " ".join(f"{v:6.1f}" for v in xs))
    neurons = {f"w = {w:g}": neuron(w) for w in (5, 1, -1, -5)}
    for name, m in neurons.items():
        show(f"σ, {name}", m, xs)
    show("bump", bump(), xs)
    print("\nx           " + " ".join(f"{v:6.1f}" for v in xs + 0.5))
    show("staircase", staircase(), xs + 0.5)  # between the steps: 0, 1, 2, ..., 10
    print(bump())
    if args.out:
        from fluxjax import plots

        plots.fit(
            neurons,
            xlim=(-5, 5),
            title="one neuron σ(w·x), four weights",
            path=os.path.join(args.out, "neuron.png"),
        )
        plots.fit(
            {"bump": bump()},
            xlim=(-3, 3),
            title="σ(100x + 100) − σ(100x − 100)",
            path=os.path.join(args.out, "bump.png"),
        )
        plots.fit(
            {"staircase": staircase()},
            xlim=(-5, 6),
            n=1000 if not args.tiny else 200,
            title="ten steep neurons: a staircase",
            path=os.path.join(args.out, "staircase.png"),
        )
        plots.chain(staircase(), path=os.path.join(args.out, "staircase_chain.png"))
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
