"""``python -m fluxjax demo``: the tutorial's 1-D fit in its four minibatch regimes, the loss
printed as it trains, then fit.png, loss.png and train.gif (with matplotlib installed).
``fluxjax.__main__`` parses the command line and calls ``demo(args)``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import fluxjax as fx
from fluxjax import datasets, lab

PLOTS_HINT = "pictures need matplotlib: pip install 'fluxjax[plots]'"


def have_plots() -> bool:
    """Whether matplotlib can be imported (the pictures need it)."""
    try:
        from fluxjax import plots

        plots.matplotlib_module()
    except ImportError:
        return False
    return True


def _regimes(x: np.ndarray, y: np.ndarray, seed: int) -> list[tuple[str, str, Any]]:
    """(name, how the data are given, data or a per-epoch data maker) of the four regimes."""
    rng = np.random.default_rng(seed)
    sevens = [(x[i : i + 7], y[i : i + 7]) for i in range(0, len(x), 7)]
    return [
        ("all data each step", "[(x, y)]", [(x, y)]),
        (
            "one observation per step, shuffled each epoch",
            "DataLoader((x, y), batchsize=1, shuffle=True)",
            fx.DataLoader((x, y), batchsize=1, shuffle=True, rng=seed),
        ),
        (
            "batches of 7 consecutive points, shuffled each epoch",
            "a new shuffle of [(x[0:7], y[0:7]), ...] each epoch",
            lambda: [sevens[i] for i in rng.permutation(len(sevens))],
        ),
        (
            "batches of 3 from a DataLoader",
            "DataLoader((x, y), batchsize=3)",
            fx.DataLoader((x, y), 3),
        ),
    ]


class _Reporter:
    """The tutorial's callback: the loss on all the data, printed every ``every`` epochs
    (``offset`` epochs were done by earlier ``train`` calls)."""

    def __init__(self, model: Any, every: int, offset: int = 0) -> None:
        self.model, self.every, self.offset, self.shown = model, every, offset, offset // every

    def __call__(self, ctx: Any) -> None:
        self.at(self.offset + ctx.epoch)

    def at(self, epoch: int) -> None:
        if epoch == 0 or epoch // self.every > self.shown:
            self.shown = epoch // self.every
            x, y = datasets.seed_data()
            print(f"  epoch {epoch:>6}  loss {float(fx.mse(self.model(x), y)):.5f}", flush=True)


class _Snapshots:
    """A callback keeping the parameters every ``every`` epochs (the GIF's frames)."""

    def __init__(self, model: Any, every: int) -> None:
        self.ps, self.every, self.offset = fx.params(model), every, 0
        self.frames, self.labels = [[np.asarray(p) for p in self.ps]], ["epoch 0"]

    def __call__(self, ctx: Any) -> None:
        epoch = self.offset + ctx.epoch
        if epoch // self.every >= len(self.frames):
            self.frames.append([np.asarray(p) for p in self.ps])
            self.labels.append(f"epoch {epoch:,}")


def _train_regime(model: Any, data: Any, opt: Any, epochs: int, cbs: list, chunk: int) -> Any:
    """Train ``model`` on ``data`` (a list, a DataLoader, or a function giving each epoch's
    list); the callbacks run every ``chunk`` epochs. Returns the loss history."""
    ps = fx.params(model)

    def loss(x: Any, y: Any) -> Any:
        return fx.mse(model(x), y)

    if isinstance(data, list | fx.DataLoader):
        return fx.train(
            loss, ps, data, opt, epochs=epochs, cb=cbs, steps_per_call=chunk * len(data)
        )
    runs = []
    for epoch in range(1, epochs + 1):  # the tutorial's loop: train once per epoch, same opt
        runs.append(fx.train(loss, ps, data(), opt, steps_per_call=1))
        for cb in cbs:
            cb(fx.StepContext(epoch, epoch))
    history = fx.History()
    for epoch, h in enumerate(runs, start=1):
        history.losses += h.losses
        history.epochs += [epoch] * len(h.losses)
    history.steps = list(range(1, len(history.losses) + 1))
    return history


def _copy(model: Any) -> Any:
    twin = lab.seed_model()
    for mine, theirs in zip(twin, model):
        mine.weight, mine.bias = np.asarray(theirs.weight), np.asarray(theirs.bias)
    return twin


def demo(args: argparse.Namespace) -> int:
    """The tutorial's 1-D fit in four regimes, then fit.png, loss.png and train.gif."""
    x, y = datasets.seed_data()
    epochs, every, long = args.epochs, args.every or max(1, args.epochs // 5), 10 * args.epochs
    print("fluxjax demo: fit f(x) = 0.2 sin(4πx) + 0.3 e^-x + 4x^6 - 3.5x^5 at 21 points")
    print(f"model: {lab.seed_model()!r}")
    print(f"start: the tutorial's hand-set weights; loss: mse; optimiser: Adam(eta={args.eta})")
    print(f"each regime: {epochs} epochs from that start, with a fresh optimiser\n")
    models, histories, rows = {}, {}, []
    snaps = None
    for k, (name, how, data) in enumerate(_regimes(x, y, args.seed), start=1):
        print(f"[{k}/4] {name}: {how}", flush=True)
        model, opt = lab.seed_model(), fx.Adam(args.eta)
        cbs, chunk = [_Reporter(model, every)], every
        cbs[0].at(0)
        if k == 1:
            snaps = _Snapshots(model, max(1, long // args.frames))
            cbs, chunk = [*cbs, snaps], math.gcd(every, snaps.every)
        t0 = time.perf_counter()
        histories[name] = _train_regime(model, data, opt, epochs, cbs, chunk)
        rows.append((name, float(fx.mse(model(x), y)), time.perf_counter() - t0))
        print(f"  done: loss {rows[-1][1]:.5f} in {rows[-1][2]:.2f} s\n", flush=True)
        models[name] = _copy(model)
        if k == 1:
            first, first_opt = model, opt
    name = f"all data, {long:,} epochs"
    print(f"[+] all data each step, continued to {long:,} epochs with the same Adam", flush=True)
    report = _Reporter(first, long // 5, offset=epochs)
    snaps.offset = epochs
    t0 = time.perf_counter()
    chunk = math.gcd(long // 5, snaps.every)
    _train_regime(first, [(x, y)], first_opt, long - epochs, [report, snaps], chunk)
    rows.append((name, float(fx.mse(first(x), y)), time.perf_counter() - t0))
    print(f"  done: loss {rows[-1][1]:.5f} in {rows[-1][2]:.2f} s\n", flush=True)
    models[name] = first
    width = max(len(r[0]) for r in rows)
    print(f"{'regime':<{width}}  final loss  time [s]")
    for name, final, seconds in rows:
        print(f"{name:<{width}}  {final:>10.5f}  {seconds:>8.2f}")
    if args.no_plots:
        return 0
    if not have_plots():
        print(f"\n{PLOTS_HINT} (training worked; no pictures written)")
        return 0
    return _demo_pictures(args, models, histories, snaps, (x, y))


def _demo_pictures(
    args: argparse.Namespace, models: dict, histories: dict, snaps: Any, data: tuple
) -> int:
    from fluxjax import plots

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "fit.png", out / "loss.png", out / "train.gif"]
    title = f"Adam(eta={args.eta}): {args.epochs:,} epochs per regime"
    plots.fit(models, datasets.seed_function, data, title=title, path=paths[0])
    plots.loss_curve(
        histories,
        x="epoch",
        ylabel="mean loss of the epoch's batches",
        title="loss per epoch, four regimes",
        path=paths[1],
    )
    plots.animate_training(
        lab.seed_model(),
        snapshots=snaps.frames,
        labels=snaps.labels,
        f=datasets.seed_function,
        data=data,
        path=paths[2],
        title="all data each step",
    )
    print("\npictures:")
    for p in paths:
        print(f"  {p}")
    return 0
