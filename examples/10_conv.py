"""Chapter 4's exercise: the digits again, with convolutional layers.

Images are channels-last with observations first, ``(n, H, W, C)`` (Flux's ``WHCN``
reversed); kernels ``(k..., cin, cout)``. ``Conv`` is a true convolution (kernel flipped, as
Flux's), ``CrossCor`` the unflipped one (PyTorch's). ``flatten`` turns the last feature maps
into ``(n, features)`` for ``Dense``.

    python examples/10_conv.py [--epochs N] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp
import numpy as np

import fluxjax as fx
from fluxjax import datasets


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs (20; 2 with --tiny)")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (2 if args.tiny else 20)
    return args


def images(x):
    """(n, 64) pixels -> (n, 8, 8, 1) images."""
    return jnp.reshape(x, (x.shape[0], 8, 8, 1))


def main() -> None:
    args = options()
    fx.seed(0)
    # shapes first: a 1-D signal (n, length, channels) and an image batch
    c1 = fx.Conv((2,), 1, 3)
    print(f"{c1}: (5, 10, 1) -> {c1(jnp.ones((5, 10, 1))).shape}")
    for layer in (fx.Conv((3, 3), 1, 4, pad=fx.SamePad()), fx.Conv((3, 3), 1, 4, stride=2),
                  fx.MaxPool((2, 2)), fx.MeanPool((2, 2)), fx.GlobalMeanPool(),
                  fx.ConvTranspose((2, 2), 1, 4, stride=2)):  # fmt: skip
        print(f"{layer!r:55s} (1, 8, 8, 1) -> {layer(jnp.ones((1, 8, 8, 1))).shape}")

    xtr, ytr, xte, yte = datasets.load_digits(seed=0)
    model = fx.Chain(
        images,
        fx.Conv((3, 3), 1, 16, fx.relu, pad=1), fx.MaxPool((2, 2)),
        fx.Conv((3, 3), 16, 32, fx.relu, pad=1), fx.MaxPool((2, 2)),
        fx.flatten, fx.Dense(128, 10),
    )  # fmt: skip
    print(f"model: {model}")
    onehot = np.asarray(fx.onehotbatch(ytr, range(10)))
    loader = fx.DataLoader((xtr, onehot), batchsize=50, shuffle=True, rng=0)
    state = fx.setup(fx.Adam(), model)
    h = fx.train(lambda m, x, y: fx.logitcrossentropy(m(x), y), model, loader, state,
                 epochs=args.epochs)  # fmt: skip
    acc = float(np.mean(np.asarray(fx.onecold(model(xte))) == yte))
    print(f"{args.epochs} epochs, last loss {h.losses[-1]:.4f}, test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
