"""Containers and small layers: named Chains, SkipConnection, Parallel, Maxout, Bilinear,
Embedding and Scale.

    python examples/13_containers.py [--tiny]
"""

from __future__ import annotations

import argparse
import operator
import os

import jax.numpy as jnp

import fluxjax as fx


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    return p.parse_args()


def main() -> None:
    options()
    fx.seed(0)
    ae = fx.Chain(enc=fx.Dense(8, 2, fx.tanh), dec=fx.Dense(2, 8))
    print(f"{ae}\n  ae.enc = {ae.enc!r}")
    x = jnp.ones((3, 8))
    res = fx.SkipConnection(fx.Dense(8, 8, fx.relu), operator.add)
    print(f"{res}: {x.shape} -> {res(x).shape}")
    both = fx.Parallel(lambda a, b: jnp.concatenate([a, b], -1), fx.Dense(8, 3), fx.Dense(8, 2))
    print(f"{both}: {x.shape} -> {both(x).shape}")
    print(f"{fx.Maxout(lambda: fx.Dense(8, 4), 3)}")
    b = fx.Bilinear(8, 5, 2)
    print(f"{b}: {x.shape}, (3, 5) -> {b(x, jnp.ones((3, 5))).shape}")
    e = fx.Embedding(100, 4)
    words = jnp.array([[3, 14, 15], [92, 65, 35]])
    print(f"{e}: indices {words.shape} -> {e(words).shape}")
    print(f"{fx.Scale(8)}: {fx.Scale(8)(x).shape}")


if __name__ == "__main__":
    main()
