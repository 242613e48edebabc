"""Chapter 6 of the tutorial: choosing the parameters to train.

``params(m)`` collects every array of the model; ``params(m[1])`` those of one layer;
``ps.add(...)`` and ``ps.remove(...)`` (Flux's ``push!`` and ``delete!``) change the
collection. Training with ``params(m[1])`` changes only the second layer.

    python examples/04_params_selection.py [--tiny]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    return p.parse_args()


def shapes(ps: fx.Params) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in ps]


def main() -> None:
    args = options()
    m = lab.seed_model()
    print(m)
    print("params(m)          ", shapes(fx.params(m)))
    ps = fx.params(m[1])
    print("params(m[1])       ", shapes(ps))
    ps.add(m[0].weight)
    print("  .add(m[0].weight)", shapes(ps))
    ps.remove(m[1])
    print("  .remove(m[1])    ", shapes(ps))
    ps.add(m[0])
    print("  .add(m[0])       ", shapes(ps))

    x, y = datasets.seed_data()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    gs = fx.gradient(lambda: loss(x, y), fx.params(m[1]))
    print("\ngradient of the loss w.r.t. params(m[1]):")
    print("  gs[m[1].weight] =", np.asarray(gs[m[1].weight], np.float64).round(4).tolist())

    before = [np.asarray(a) for a in fx.params(m)]
    epochs = 20 if args.tiny else 2000
    print(
        f"\ntraining only the second layer for {epochs} epochs: loss {float(loss(x, y)):.4f}",
        end="",
    )
    fx.train(loss, fx.params(m[1]), [(x, y)], fx.Adam(0.01), epochs=epochs)
    print(f" -> {float(loss(x, y)):.4f}")
    after = [np.asarray(a) for a in fx.params(m)]
    for name, a, b in zip(["m[0].weight", "m[0].bias", "m[1].weight", "m[1].bias"], before, after):
        print(f"  {name:<12} {'changed' if not np.array_equal(a, b) else 'unchanged'}")


if __name__ == "__main__":
    main()
