"""Chapter 6 of the tutorial: loss functions.

The list the tutorial gives, each on one small example, then a loss of your own: any
differentiable function of the model's output will do.

    python examples/06_losses.py [--tiny]
"""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp
import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    return p.parse_args()


def main() -> None:
    args = options()
    yhat, y = np.array([[0.9], [0.2], [0.6]]), np.array([[1.0], [0.0], [1.0]])  # binary labels
    r = np.array([[1.0], [0.1], [0.5]])  # a regression target
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])  # softmax outputs, classes last
    labels = np.asarray(fx.onehotbatch([0, 2], range(3)))  # (2, 3)
    logits = np.log(probs)
    signs = 2 * y - 1  # hinge losses take labels ±1
    examples = {
        "mae": (yhat, r), "mse": (yhat, r), "msle": (yhat, r), "huber_loss": (yhat, r),
        "crossentropy": (probs, labels), "logitcrossentropy": (logits, labels),
        "binarycrossentropy": (yhat, y), "logitbinarycrossentropy": (np.log(yhat / (1 - yhat)), y),
        "kldivergence": (probs, np.array([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2]])),
        "poisson_loss": (yhat, r), "hinge_loss": (2 * yhat - 1, signs),
        "squared_hinge_loss": (2 * yhat - 1, signs), "dice_coeff_loss": (yhat, y),
        "tversky_loss": (yhat, y),
    }  # fmt: skip
    print(f"yhat = {yhat.ravel().tolist()}, binary labels y = {y.ravel().tolist()},")
    print(f"regression target r = {r.ravel().tolist()}; classes: probs {probs.tolist()}")
    for name, (a, b) in examples.items():
        print(f"  fx.{name:<24} {float(getattr(fx, name)(a, b)):.5f}")

    def mean_abs_15(yhat, y):  # a loss of one's own
        return jnp.mean(jnp.abs(yhat - y) ** 1.5)

    x, t = datasets.seed_data()
    m = lab.seed_model()
    loss = lambda x, y: mean_abs_15(m(x), y)  # noqa: E731
    epochs = 30 if args.tiny else 3000
    start = float(loss(x, t))
    fx.train(loss, fx.params(m), [(x, t)], fx.Adam(), epochs=epochs)
    print(
        f"\nthe fit with mean |ŷ − y|^1.5, {epochs} epochs: {start:.4f} -> {float(loss(x, t)):.4f}"
    )


if __name__ == "__main__":
    main()
