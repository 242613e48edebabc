"""The command line: ``python -m fluxjax demo | compare | digits | rules`` (also ``fluxjax ...``).

* ``demo``: the tutorial's 1-D fit in its four minibatch regimes, the loss printed as it
  trains, then fit.png, loss.png and train.gif (with matplotlib installed).
* ``compare``: several optimiser rules on one problem of ``fx.lab``: a table and plots.
* ``digits``: the chapter-7 classifier on scikit-learn's digits, or on MNIST IDX files;
  ``--conv`` for a small CNN (the chapter-4 exercise).
* ``rules``: the table of optimiser rules.

``main(argv)`` returns the exit code; ``--help`` works on every command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab
from fluxjax.demo import PLOTS_HINT, demo, have_plots


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


# ---- compare ---------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> int:
    """Several rules on one problem: the table on stdout and in table.txt, plus plots."""
    try:
        result = lab.compare(
            args.rules,
            args.problem,
            args.steps,
            threshold=args.threshold,
            eta=args.eta,
            seed=args.seed,
            progress=args.progress,
        )
    except (ValueError, TypeError) as e:
        print(f"fluxjax compare: error: {e}", file=sys.stderr)
        return 2
    table = result.table()
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "table.txt"]
    written[0].write_text(table + "\n", encoding="utf-8")
    if not args.no_plots:
        if have_plots():
            written.append(out / "loss.png")
            result.plot_losses(path=written[-1])
            if result.paths:
                written.append(out / "paths.png")
                result.plot_paths(path=written[-1])
        else:
            print(f"\n{PLOTS_HINT} (only table.txt written)")
    print("\nwritten:")
    for p in written:
        print(f"  {p}")
    return 0


# ---- digits ----------------------------------------------------------------------------------


def contrast(x: Any) -> Any:
    """The tutorial's fixed first layer: x -> σ(20(x − 0.5)), raising the contrast."""
    return fx.sigmoid(20 * (x - 0.5))


def accuracy(model: Any, x: Any, labels: np.ndarray) -> float:
    """The share of ``x`` whose ``onecold`` prediction equals the label."""
    return float(np.mean(np.asarray(fx.onecold(model(x))) == labels))


def _classifier(x: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Any, Any]:
    """The tutorial's model for ``x``'s pixel count and a DataLoader of 4 shuffled batches."""
    fx.seed(seed)
    model = fx.Chain(contrast, fx.Dense(x.shape[1], 28, fx.relu), fx.Dense(28, 10), fx.softmax)
    onehot = np.asarray(fx.onehotbatch(labels, range(10)))
    loader = fx.DataLoader((x, onehot), batchsize=-(-len(x) // 4), shuffle=True, rng=seed)
    return model, loader


def images(x: Any) -> Any:
    """Flattened square images ``(n, s·s)`` as ``(n, s, s, 1)``: channels-last for ``Conv``."""
    x = jnp.asarray(x)
    side = int(round(x.shape[1] ** 0.5))
    return jnp.reshape(x, (x.shape[0], side, side, 1))


def conv_classifier(side: int, seed: int) -> Any:
    """The chapter-4 exercise's convolutional classifier for ``side × side`` images:
    two 3×3 convolutions (16 and 32 channels) each halved by a 2×2 MaxPool, BatchNorm after
    the first and Dropout before the last Dense, which gives the logits of 10 classes."""
    fx.seed(seed)
    flat = 32 * (side // 4) ** 2
    return fx.Chain(
        images,
        fx.Conv((3, 3), 1, 16, pad=1),
        fx.BatchNorm(16, fx.relu),
        fx.MaxPool((2, 2)),
        fx.Conv((3, 3), 16, 32, fx.relu, pad=1),
        fx.MaxPool((2, 2)),
        fx.flatten,
        fx.Dropout(0.25),
        fx.Dense(flat, 10),
    )


def _conv_setup(x: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Any, Any]:
    model = conv_classifier(int(round(x.shape[1] ** 0.5)), seed)
    onehot = np.asarray(fx.onehotbatch(labels, range(10)))
    return model, fx.DataLoader((x, onehot), batchsize=50, shuffle=True, rng=seed)


def digits(args: argparse.Namespace) -> int:
    """The chapter-7 classifier on scikit-learn's digits (or MNIST from --mnist DIR)."""
    try:
        if args.mnist:
            data, source = datasets.load_mnist(args.mnist, args.n_train, args.n_test), "MNIST"
        else:
            data, source = datasets.load_digits(seed=args.seed), "scikit-learn digits"
    except (ImportError, OSError, ValueError) as e:
        print(f"fluxjax digits: error: {e}", file=sys.stderr)
        return 1
    xtr, ytr, xte, yte = data
    conv = getattr(args, "conv", False)
    epochs = args.epochs or (20 if conv else 500)
    model, loader = (_conv_setup if conv else _classifier)(xtr, ytr, args.seed)
    n_in = xtr.shape[1]
    print(f"{source}: {len(xtr)} training and {len(xte)} test images of {n_in} pixels")
    print(f"model: {model!r}")
    name = "logitcrossentropy" if conv else "crossentropy"
    print(
        f"loss: {name}; optimiser: Adam(); {len(loader)} shuffled batches per epoch; "
        f"{epochs} epochs"
    )
    cost = fx.logitcrossentropy if conv else fx.crossentropy

    def loss(x: Any, y: Any) -> Any:
        return cost(model(x), y)

    every = max(1, epochs // 5)

    def report(ctx: Any) -> None:
        if ctx.epoch % every == 0 and not args.progress:
            acc = accuracy(model, xte, yte)
            print(
                f"  epoch {ctx.epoch:>5}  loss {ctx.loss:.4f}  test accuracy {acc:.4f}", flush=True
            )

    t0 = time.perf_counter()
    fx.train(
        loss,
        fx.params(model),
        loader,
        fx.Adam(),
        epochs=epochs,
        cb=report,
        steps_per_call=every * len(loader),
        progress=args.progress,
    )
    seconds = time.perf_counter() - t0
    print(f"train accuracy {accuracy(model, xtr, ytr):.4f}")
    print(f"test accuracy {accuracy(model, xte, yte):.4f}")
    print(f"time {seconds:.2f} s (training, compilation included)")
    return 0


# ---- rules, and the parser -------------------------------------------------------------------


def rules(args: argparse.Namespace) -> int:
    """Print every optimiser rule: constructor, aliases and update formula."""
    print(fx.rules_table())
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fluxjax", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"fluxjax {fx.__version__}")
    sub = p.add_subparsers(dest="command", metavar="command")

    d = sub.add_parser(
        "demo",
        help="the tutorial's 1-D fit in four regimes, with pictures",
        description=demo.__doc__,
    )
    d.add_argument("--epochs", type=_positive, default=5000, help="epochs per regime (5000)")
    d.add_argument("--every", type=_positive, help="print the loss every N epochs (epochs/5)")
    d.add_argument("--eta", type=float, default=0.001, help="Adam's learning rate (0.001)")
    d.add_argument("--frames", type=_positive, default=20, help="frames of train.gif (20)")
    d.add_argument("--out", default="fluxjax-demo", help="folder for the pictures")
    d.add_argument("--seed", type=int, default=0, help="seed of the shuffling (0)")
    d.add_argument("--no-plots", action="store_true", help="train and print only")
    d.set_defaults(func=demo)

    c = sub.add_parser(
        "compare", help="compare optimiser rules on a test problem", description=compare.__doc__
    )
    c.add_argument(
        "--rules",
        help="comma-separated rules, e.g. 'Adam,Momentum(0.001)' (default: the problem's own list)",
    )
    c.add_argument(
        "--problem",
        default="rosenbrock",
        choices=list(lab.PROBLEMS),
        help="the problem (rosenbrock)",
    )
    c.add_argument("--steps", type=_positive, default=500, help="steps per rule (500)")
    c.add_argument("--eta", type=float, help="set every rule's learning rate")
    c.add_argument("--threshold", type=float, help="loss to reach (the problem's default)")
    c.add_argument("--seed", type=int, default=0, help="fit2d start and noise seed (0)")
    c.add_argument("--out", default="fluxjax-compare", help="folder for table.txt and plots")
    c.add_argument("--no-plots", action="store_true", help="write table.txt only")
    c.add_argument("--progress", action="store_true", help="show progress bars")
    c.set_defaults(func=compare)

    g = sub.add_parser(
        "digits", help="the chapter-7 handwritten-digit classifier", description=digits.__doc__
    )
    g.add_argument(
        "--epochs", type=_positive, help="epochs (500 of 4 batches; with --conv 20 of 50 images)"
    )
    g.add_argument(
        "--conv", action="store_true", help="a small CNN (Conv, BatchNorm, MaxPool, Dropout)"
    )
    g.add_argument("--mnist", metavar="DIR", help="read MNIST IDX files from DIR instead")
    g.add_argument("--n-train", type=_positive, default=1000, help="MNIST training images")
    g.add_argument("--n-test", type=_positive, default=1000, help="MNIST test images")
    g.add_argument("--seed", type=int, default=0, help="split and shuffling seed (0)")
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr.isatty(),
        help="progress bar (on in a terminal)",
    )
    g.set_defaults(func=digits)

    r = sub.add_parser("rules", help="list the optimiser rules", description=rules.__doc__)
    r.set_defaults(func=rules)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default); returns the exit
    code (argparse's 2 for bad arguments, 0 after ``--help``)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.command is None:
        parser.print_help()
        return 1
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
