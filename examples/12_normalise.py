"""Normalisation and dropout, and the train/test modes.

``Dropout`` and ``BatchNorm`` are active inside ``fx.train``, ``fx.gradient`` and the other
differentiation calls and inactive elsewhere (Flux's automatic mode); ``fx.trainmode(m)``,
``fx.testmode(m)`` and ``fx.testmode(m, None)`` override it. BatchNorm's running statistics
and Dropout's key are updated by the forward pass and written back by ``train``.

    python examples/12_normalise.py [--tiny]
"""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp
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
    d = fx.Dropout(0.5)
    x = jnp.ones((2, 6))
    print(f"{d} outside train: {d(x)[0].tolist()}")
    print(f"fx.trainmode(d):    {fx.trainmode(d)(x)[0].tolist()}")
    fx.testmode(d, None)

    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (256, 4)).astype(np.float32)
    model = fx.Chain(fx.BatchNorm(4), fx.Dense(4, 8, fx.relu), fx.Dropout(0.2), fx.Dense(8, 1))
    print(model)
    target = data.sum(axis=1, keepdims=True)
    loader = fx.DataLoader((data, target), batchsize=32, shuffle=True, rng=0)
    state = fx.setup(fx.Adam(0.01), model)
    epochs = 3 if args.tiny else 30
    h = fx.train(lambda m, x, y: fx.mse(m(x), y), model, loader, state, epochs=epochs)
    print(f"{epochs} epochs: loss {h.losses[0]:.3f} -> {h.losses[-1]:.3f}")
    mu = ", ".join(f"{v:.2f}" for v in np.asarray(model[0].mu))
    print(f"BatchNorm running mean [{mu}] "
          f"(the data's mean is 3; momentum 0.1 per step)")  # fmt: skip
    for name, layer in (("LayerNorm(4)", fx.LayerNorm(4)), ("GroupNorm(4, 2)", fx.GroupNorm(4, 2))):
        y = layer(data[:2])
        means = ", ".join(f"{abs(v):.4f}" for v in np.asarray(y.mean(axis=1)))
        print(f"{name}: per-row mean [{means}]")


if __name__ == "__main__":
    main()
