"""Chapter 6 of the tutorial: the DataLoader, on 1..10 and then on the 1-D fit.

Batch size 1 gives ten single-element batches in order; batch size 3 gives [1, 2, 3], [4, 5, 6],
[7, 8, 9], [10]; ``partial=False`` drops the short [10]; ``shuffle=True`` draws a new
permutation every epoch; ``ncycle(loader, 4)`` chains four epochs. Then the fit is trained
with ``DataLoader((x, y), batchsize=3)``.

    python examples/03_dataloader.py [--epochs N] [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs of the fit (2000; 30 with --tiny)")
    p.add_argument("--out", help="write fit.png into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (30 if args.tiny else 2000)
    return args


def show(title: str, loader) -> None:
    print(f"{title:<38}", [b.tolist() for b in loader])


def main() -> None:
    args = options()
    data = np.arange(1, 11)  # 1..10: ten observations
    show("DataLoader(data)", fx.DataLoader(data))
    show("DataLoader(data, batchsize=3)", fx.DataLoader(data, batchsize=3))
    show("... partial=False", fx.DataLoader(data, batchsize=3, partial=False))
    shuffled = fx.DataLoader(data, batchsize=3, shuffle=True, rng=0)
    show("... shuffle=True, epoch 1", shuffled)
    show("... shuffle=True, epoch 2", shuffled)
    cycled = list(fx.ncycle(fx.DataLoader(data, batchsize=3), 4))
    print(
        f"{'ncycle(loader, 4)':<38} {len(cycled)} batches:", [b.tolist() for b in cycled[:5]], "..."
    )
    x, y = datasets.seed_data()
    pairs = fx.DataLoader((x, y), batchsize=3)
    xb, yb = next(iter(pairs))
    print(f"\n{pairs!r}\nfirst batch: x {xb.shape}, y {yb.shape}")

    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    every = max(1, args.epochs // 4)

    def cb(ctx: fx.StepContext) -> None:
        if ctx.epoch % every == 0:
            print(f"  epoch {ctx.epoch:>5}  loss {float(loss(x, y)):.5f}")

    print(
        f"training the fit with it, {args.epochs} epochs; loss {float(loss(x, y)):.5f} at the start"
    )
    fx.train(
        loss, fx.params(m), pairs, fx.Adam(), epochs=args.epochs, cb=cb, steps_per_call=7 * every
    )
    if args.out:
        from fluxjax import plots

        plots.fit(
            {"DataLoader(batchsize=3)": m},
            datasets.seed_function,
            (x, y),
            title=f"{args.epochs} epochs",
            path=os.path.join(args.out, "fit.png"),
        )
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
