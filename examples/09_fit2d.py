"""Chapter 5 of the tutorial: a 2-D fit.

f(x, y) = sin x · sin y on the grid x, y ∈ {−π, −4π/5, …, π} (11 × 11 = 121 points), the model
Chain(Dense(2, 10, σ), Dense(10, 1)), mean squared error, Adam, 20,000 epochs; the surface of
the model is drawn beside the surface of f.

    python examples/09_fit2d.py [--epochs N] [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import fluxjax as fx
from fluxjax import datasets


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs (20000; 40 with --tiny)")
    p.add_argument("--out", help="write fit2d.png, loss.png and chain.png into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (40 if args.tiny else 20_000)
    return args


def main() -> None:
    args = options()
    fx.seed(0)
    xy, z = datasets.grid2d()  # (121, 2) and (121, 1)
    m = fx.Chain(fx.Dense(2, 10, fx.sigmoid), fx.Dense(10, 1))
    loss = lambda xy, z: fx.mse(m(xy), z)  # noqa: E731
    every = max(1, args.epochs // 5)

    def cb(ctx: fx.StepContext) -> None:
        if ctx.epoch % every == 0:
            print(f"  epoch {ctx.epoch:>6}  loss {ctx.loss:.5f}")

    print(f"{m}; {len(xy)} points; loss {float(loss(xy, z)):.5f} at the start")
    t0 = time.perf_counter()
    history = fx.train(
        loss,
        fx.params(m),
        [(xy, z)],
        fx.Adam(),
        epochs=args.epochs,
        cb=cb,
        steps_per_call=math.gcd(every, 2000),
    )
    print(f"{args.epochs} epochs in {time.perf_counter() - t0:.2f} s")
    if args.out:
        from fluxjax import plots

        plots.fit(
            m,
            datasets.sin_sin,
            (xy, z),
            title=f"sin x · sin y, {args.epochs} epochs of Adam",
            path=os.path.join(args.out, "fit2d.png"),
        )
        plots.loss_curve(history, path=os.path.join(args.out, "loss.png"), title="2-D fit: loss")
        plots.chain(m, path=os.path.join(args.out, "chain.png"))
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
