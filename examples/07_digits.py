"""Chapter 7 of the tutorial: handwritten digits.

A fixed first layer raises the contrast, x -> σ(20(x − 0.5)); then Dense(n, 28, relu),
Dense(28, 10) and softmax, trained with crossentropy and Adam on a DataLoader that splits the
training set into 4 batches; accuracy is ``onecold`` of the output against the label. The
numerically stable variant drops the softmax layer and uses ``logitcrossentropy``; a third
run adds averaged weights (``fx.EMA``) and a learning rate that halves when the validation
loss stalls (``fx.reduce_on_plateau``).

By default the data are scikit-learn's bundled digits (1,797 images of 8 × 8 pixels, no
download; ``pip install 'fluxjax[examples]'``); ``--mnist DIR`` reads MNIST's IDX files
(784 pixels, 1,000 training and 1,000 test images as in the tutorial).

    python examples/07_digits.py [--epochs N] [--mnist DIR] [--out DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import fluxjax as fx
from fluxjax import datasets


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help="epochs (500; 20 with --tiny)")
    p.add_argument("--mnist", metavar="DIR", help="read MNIST IDX files from DIR")
    p.add_argument("--out", help="write chain.png and loss.png into this folder")
    p.add_argument(
        "--tiny", action="store_true", default=bool(os.environ.get("FLUXJAX_EXAMPLE_TINY"))
    )
    args = p.parse_args()
    args.epochs = args.epochs or (20 if args.tiny else 500)
    return args


def contrast(x):
    """x -> σ(20(x − 0.5)): pixels near 0 go to 0, near 1 to 1."""
    return fx.sigmoid(20 * (x - 0.5))


def accuracy(model, x, labels) -> float:
    return float(np.mean(np.asarray(fx.onecold(model(x))) == labels))


def train(model, loss, loader, epochs: int) -> tuple[fx.TrainHistory, float]:
    t0 = time.perf_counter()
    history = fx.train(loss, fx.params(model), loader, fx.Adam(), epochs=epochs)
    return history, time.perf_counter() - t0


def averaged(n: int, xtr, ytr, xte, yte, epochs: int) -> None:
    """The stable classifier with averaged weights (``fx.EMA``, Keras's ``use_ema``) and a
    learning rate halved when the validation loss stalls (``fx.reduce_on_plateau``, Keras's
    ``ReduceLROnPlateau``), on 800 training images and 200 kept to validate on."""
    k = len(xtr) * 4 // 5
    xs, ys = xtr[:k], np.asarray(fx.onehotbatch(ytr[:k], range(10)))
    xv, yv = xtr[k:], fx.onehotbatch(ytr[k:], range(10))
    model = fx.Chain(contrast, fx.Dense(n, 28, fx.relu), fx.Dense(28, 10))
    loss = lambda x, y: fx.logitcrossentropy(model(x), y)  # noqa: E731
    ps, ema = fx.params(model), fx.EMA(0.999)
    opt = fx.OptimiserChain(fx.Adam(0.01), ema)  # EMA last: it averages what Adam leaves
    val = fx.metrics(every=4, val_loss=lambda: fx.logitcrossentropy(model(xv), yv))
    lr = fx.reduce_on_plateau("val_loss", factor=0.5, patience=10, min_eta=1e-3, every=4)
    loader = fx.DataLoader((xs, ys), batchsize=-(-k // 4), shuffle=True, rng=0)
    h = fx.train(loss, ps, loader, opt, epochs=epochs, cb=[val, lr])
    print(f"\nEMA(0.999) + reduce_on_plateau: {epochs} epochs, η now {opt[0].eta:g}")
    print(f"  best val_loss {min(h['val_loss']):.4f}, last {h['val_loss'][-1]:.4f}")
    print(f"  test accuracy: trained weights {accuracy(model, xte, yte):.4f}")
    with ema.swapped(ps, opt):  # the averages in the model, the trained weights back after
        print(f"  test accuracy: averaged weights {accuracy(model, xte, yte):.4f}")


def main() -> None:
    args = options()
    fx.seed(0)
    if args.mnist:
        xtr, ytr, xte, yte = datasets.load_mnist(args.mnist, 1000, 1000)
    else:
        xtr, ytr, xte, yte = datasets.load_digits()
    n = xtr.shape[1]
    print(f"{len(xtr)} training and {len(xte)} test images of {n} pixels")
    loader = fx.DataLoader(
        (xtr, np.asarray(fx.onehotbatch(ytr, range(10)))),
        batchsize=-(-len(xtr) // 4),
        shuffle=True,
        rng=0,
    )

    model = fx.Chain(contrast, fx.Dense(n, 28, fx.relu), fx.Dense(28, 10), fx.softmax)
    loss = lambda x, y: fx.crossentropy(model(x), y)  # noqa: E731
    history, seconds = train(model, loss, loader, args.epochs)
    print(f"\nsoftmax + crossentropy: {model}")
    print(
        f"  {args.epochs} epochs in {seconds:.2f} s, test accuracy {accuracy(model, xte, yte):.4f}"
    )

    logits = fx.Chain(contrast, fx.Dense(n, 28, fx.relu), fx.Dense(28, 10))
    stable = lambda x, y: fx.logitcrossentropy(logits(x), y)  # noqa: E731
    stable_history, seconds = train(logits, stable, loader, args.epochs)
    print(f"\nlogitcrossentropy: {logits}")
    print(
        f"  {args.epochs} epochs in {seconds:.2f} s, test accuracy {accuracy(logits, xte, yte):.4f}"
    )

    averaged(n, xtr, ytr, xte, yte, args.epochs)

    if args.out:
        from fluxjax import plots

        plots.chain(model, max_neurons=16, path=os.path.join(args.out, "chain.png"))
        plots.loss_curve(
            {"softmax + crossentropy": history, "logitcrossentropy": stable_history},
            x="epoch",
            path=os.path.join(args.out, "loss.png"),
            title="digits: training loss",
        )
        print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
