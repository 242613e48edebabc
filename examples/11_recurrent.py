"""Chapter 4's recurrent layers: RNN, LSTM and GRU, stateful one step at a time (Flux v0.12's
``Recur``) or over a whole sequence ``(n, time, features)``.

The tutorial's chain ``Chain(Dense(2, 5, σ), RNN(5, 4, relu), LSTM(4, 4), GRU(4, 4),
Dense(4, 6))`` runs here both ways; ``fx.reset(m)`` sets the states back. Then an LSTM learns
whether a sequence's running sum ends positive.

    python examples/11_recurrent.py [--epochs N] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp
import numpy as np

import fluxjax as fx


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs (15; 2 with --tiny)")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (2 if args.tiny else 15)
    return args


def last(h):
    """The last time step of (n, time, features)."""
    return h[:, -1]


def main() -> None:
    args = options()
    fx.seed(0)
    m = fx.Chain(fx.Dense(2, 5, fx.σ), fx.RNN(5, 4, fx.relu), fx.LSTM(4, 4), fx.GRU(4, 4),
                 fx.Dense(4, 6))  # fmt: skip
    print(m)
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 7, 2)), jnp.float32)
    whole = m(xs)  # (n, time, features) -> every step's output
    steps = jnp.stack([m(xs[:, t]) for t in range(7)], axis=1)  # stateful, one step a call
    print(f"sequence {xs.shape} -> {whole.shape}; step by step equal: "
          f"{bool(jnp.allclose(whole, steps, atol=1e-5))}")  # fmt: skip
    print(f"LSTM state after 7 steps: h {m[2].state[0].shape}, c {m[2].state[1].shape}")
    fx.reset(m)
    print(f"after fx.reset(m): first step again equal: "
          f"{bool(jnp.allclose(m(xs[:, 0]), whole[:, 0], atol=1e-6))}")  # fmt: skip

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 12, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = fx.Chain(fx.LSTM(1, 16), last, fx.Dense(16, 2))
    loader = fx.DataLoader((x[:800], np.asarray(fx.onehotbatch(y[:800], range(2)))),
                           batchsize=50, shuffle=True, rng=0)  # fmt: skip
    state = fx.setup(fx.Adam(0.01), model)
    fx.train(lambda m, x, y: fx.logitcrossentropy(m(x), y), model, loader, state,
             epochs=args.epochs)  # fmt: skip
    acc = float(np.mean(np.asarray(fx.onecold(model(x[800:]))) == y[800:]))
    print(f"sign of a running sum, {args.epochs} epochs: test accuracy {acc:.3f} (chance 0.5)")


if __name__ == "__main__":
    main()
