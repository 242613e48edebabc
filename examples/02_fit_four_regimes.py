"""Chapters 5 and 6 of the tutorial: the 1-D fit, trained in four minibatch regimes.

f(x) = 0.2 sin(4πx) + 0.3 e^(−x) + 4x⁶ − 3.5x⁵ at x = 0, 0.05, …, 1; the model
Chain(Dense(1, 4, σ), Dense(4, 1)) from the tutorial's hand-set weights; mse; Adam. Each
regime starts again from those weights with a fresh Adam:

1. all data in every step: ``data = [(x, y)]``;
2. one observation per step, in a new random order each epoch (``train`` called per epoch);
3. batches of 7 consecutive points, the batches shuffled each epoch;
4. ``DataLoader((x, y), batchsize=3)``.

After a few thousand epochs all four sit near loss 0.023, a plateau that misses the wiggles.
Then the tutorial's next steps: its whole schedule on all data (50,000 epochs, then every
weight set to 10 and 100,000 more epochs **with the same Adam**, whose moments carry over),
and a wider model, ``Chain(Dense(1, 10, tanh), Dense(10, 1))``; both fit the wiggles.

    python examples/02_fit_four_regimes.py [--epochs N] [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import fluxjax as fx
from fluxjax import datasets

x, y = datasets.seed_data()  # (21, 1) each: observations along the first axis


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs per regime (3000; 40 with --tiny)")
    p.add_argument("--out", help="write fit.png, loss.png and train.gif into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (40 if args.tiny else 3000)
    return args


def tutorial_model() -> fx.Chain:
    m = fx.Chain(fx.Dense(1, 4, fx.sigmoid), fx.Dense(4, 1))
    m[0].weight = [[5.0], [-5.0], [-5.0], [-5.0]]
    m[0].bias = [0.0, 0.0, 0.0, 0.0]
    m[1].weight = [[5.0, -2.0, 5.0, -5.0]]
    m[1].bias = [0.0]
    return m


def printer(loss, every: int):
    """The tutorial's callback: print the loss on all the data every ``every`` epochs."""

    def cb(ctx: fx.StepContext) -> None:
        if ctx.epoch % every == 0:
            print(f"  epoch {ctx.epoch:>6}  loss {float(loss(x, y)):.5f}")

    return cb


def regime(name: str, epochs: int, run) -> tuple[fx.Chain, fx.History]:
    """Train a fresh tutorial model with ``run(loss, ps, opt, cb)``; return it and its losses."""
    print(f"{name}")
    m = tutorial_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731 (the tutorial's one-liner)
    history = run(loss, fx.params(m), fx.Adam(), printer(loss, max(1, epochs // 4)))
    print(f"  final loss {float(loss(x, y)):.5f}\n")
    return m, history


def per_epoch(epochs: int, batches_of_an_epoch):
    """Call ``train`` once per epoch with a freshly shuffled list of batches (as the tutorial)."""
    rng = np.random.default_rng(0)

    def run(loss, ps, opt, cb):
        history = fx.History()
        for epoch in range(1, epochs + 1):
            batches = batches_of_an_epoch()
            h = fx.train(
                loss, ps, [batches[i] for i in rng.permutation(len(batches))], opt, steps_per_call=1
            )
            history.losses += h.losses
            history.epochs += [epoch] * len(h)
            cb(fx.StepContext(epoch, len(history.losses)))
        history.steps = list(range(1, len(history.losses) + 1))
        return history

    return run


def main() -> None:
    args = options()
    E = args.epochs
    models, histories = {}, {}
    snapshots = []  # the parameters every E/20 epochs of regime 1, for the GIF

    def snap(ps):
        return lambda ctx: snapshots.append([np.asarray(p) for p in ps])

    def all_data(loss, ps, opt, cb):
        snapshots.append([np.asarray(p) for p in ps])
        return fx.train(
            loss, ps, [(x, y)], opt, epochs=E, cb=[cb, snap(ps)], steps_per_call=max(1, E // 20)
        )

    runs = {
        "all data each step": all_data,
        "one observation per step": per_epoch(
            E, lambda: [(x[i : i + 1], y[i : i + 1]) for i in range(21)]
        ),
        "batches of 7, shuffled": per_epoch(
            E, lambda: [(x[i : i + 7], y[i : i + 7]) for i in (0, 7, 14)]
        ),
        "DataLoader(batchsize=3)": lambda loss, ps, opt, cb: fx.train(
            loss,
            ps,
            fx.DataLoader((x, y), batchsize=3),
            opt,
            epochs=E,
            cb=cb,
            steps_per_call=7 * max(1, E // 4),
        ),
    }
    for name, run in runs.items():
        models[name], histories[name] = regime(name, E, run)

    scale = 1000 if args.tiny else 1  # --tiny: 10 + 40 + 100 epochs
    n1, n2, n3, n4 = 10_000 // scale, 40_000 // scale, 100_000 // scale, 30_000 // scale
    print(f"the tutorial's whole schedule on all data: {n1:,} + {n2:,} epochs, then every")
    print(f"weight set to 10 (biases 0) and {n3:,} more epochs with the same Adam")
    m = tutorial_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    fx.train(loss, ps, [(x, y)], opt, epochs=n1 + n2)
    print(f"  after {n1 + n2:,} epochs: loss {float(loss(x, y)):.5f}")
    for layer in m:
        layer.weight = np.full(layer.weight.shape, 10.0, np.float32)
        layer.bias = np.zeros(layer.bias.shape, np.float32)
    print(f"  after the reset: loss {float(loss(x, y)):.2f}")
    cb = printer(loss, n3 // 4)
    fx.train(loss, ps, [(x, y)], opt, epochs=n3, cb=cb, steps_per_call=min(2500, n3 // 4))
    more = {f"reset to 10, then {n3:,} epochs": m}

    print(f"\nthe wider model Chain(Dense(1, 10, tanh), Dense(10, 1)), {n4:,} epochs")
    fx.seed(0)
    wide = fx.Chain(fx.Dense(1, 10, fx.tanh), fx.Dense(10, 1))
    wide_loss = lambda x, y: fx.mse(wide(x), y)  # noqa: E731
    cb = printer(wide_loss, n4 // 3)
    fx.train(
        wide_loss,
        fx.params(wide),
        [(x, y)],
        fx.Adam(),
        epochs=n4,
        cb=cb,
        steps_per_call=min(2500, n4 // 3),
    )
    more["Chain(Dense(1, 10, tanh), Dense(10, 1))"] = wide

    if args.out:
        from fluxjax import plots

        out = args.out
        plots.fit(
            models,
            datasets.seed_function,
            (x, y),
            title=f"{E} epochs per regime",
            path=os.path.join(out, "fit.png"),
        )
        plots.fit(
            more,
            datasets.seed_function,
            (x, y),
            title="past the plateau",
            path=os.path.join(out, "fit_more.png"),
        )
        plots.loss_curve(
            histories,
            x="epoch",
            ylabel="mean loss of the epoch's batches",
            title="four regimes",
            path=os.path.join(out, "loss.png"),
        )
        plots.animate_training(
            tutorial_model(),
            snapshots=snapshots,
            f=datasets.seed_function,
            data=(x, y),
            title="all data each step",
            path=os.path.join(out, "train.gif"),
        )
        print(f"pictures in {out}")


if __name__ == "__main__":
    main()
