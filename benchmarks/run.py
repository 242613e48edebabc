"""fluxjax beside its peers, measured in the same run, with the ratio and the target.

    python benchmarks/run.py              # everything (several minutes on 2 cores)
    python benchmarks/run.py seed mlp     # some sections
    python benchmarks/run.py --quick      # small sizes, to check it runs

Every contender (ours and each peer) gets the same number of timed runs (``--reps``,
default 3), interleaved ours-then-peers, and keeps its best; the peers are the scripts in
``../shared/bench`` (PyTorch eager, hand-written JAX+Optax, Equinox, Flax NNX) or, where no
script has the workload, a hand-written JAX+Optax loop in ``peers.py``. Each row says
whether it meets its target (issue "train callbacks", item 4).

Sections:
  seed      the tutorial's 1-D fit, Adam, µs/step: ``train`` once per epoch with a callback,
            and ``epochs=N`` fused, against PyTorch, the jitted step and its lax.scan
  batches   21 one-observation batches, a plain callback after every step, µs/step
  throttle  ``cb=fx.throttle(f, 1.0)`` over 50,000 epochs against no callback
  mlp       784-512-512-10, batch 128, samples/s: step by step and fused
  sweep     784-w-w-10 for w = 16 ... 2048: step by step and fused against the jitted step
  adam      one Adam update over 10 million parameters: fx.update against optax
  scale     (not in the default set) the MLP on 1, 2, 4 simulated devices: benchmarks/scale.py
  layers    (not in the default set) the CNN and the LSTM: benchmarks/layers.py
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import peers
from harness import contest, peer_run, table, timed  # noqa: I001

import fluxjax as fx
from fluxjax import datasets, lab


def seed(n: int, reps: int) -> None:
    print(f"\nseed: the tutorial's 1-D fit, Adam, µs per step ({n} steps)")
    x, y = (jnp.asarray(a) for a in datasets.seed_data())
    data = [(x, y)]
    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    seen = []

    def cb():  # the tutorial's callback: look at the loss every 1000 epochs
        seen.append(1)
        if len(seen) % 1000 == 0:
            float(loss(x, y))

    def loop():
        for _ in range(n):
            fx.train(loss, ps, data, opt, cb=cb)
        m[0].weight.block_until_ready()

    m2 = lab.seed_model()
    loss2 = lambda x, y: fx.mse(m2(x), y)  # noqa: E731
    ps2, opt2 = fx.params(m2), fx.Adam()

    def fused():
        fx.train(loss2, ps2, data, opt2, epochs=n)
        m2[0].weight.block_until_ready()

    for _ in range(50):
        fx.train(loss, ps, data, opt, cb=cb)
    float(loss(x, y))  # the callback's own (eager) loss, compiled once here, not timed
    fused()

    def ours() -> dict[str, float]:
        return {"loop": timed(loop) / n * 1e6, "fused": timed(fused) / n * 1e6}

    f = contest([ours, peer_run("seed_regression.py", n)], reps, lower_is_better=True)
    table(
        [
            (
                "loop: train per epoch + callback",
                f["loop"],
                "pytorch eager",
                f.get("pytorch eager"),
                0.12,
            ),
            ("loop", f["loop"], "jax+optax jit per step", f.get("jax+optax jit per step"), 0.8),
            (
                "fused: epochs=N",
                f["fused"],
                "jax+optax lax.scan",
                f.get("jax+optax lax.scan fused"),
                0.6,
            ),
            ("loop", f["loop"], "equinox filter_jit", f.get("equinox filter_jit per step"), None),
            ("loop", f["loop"], "flax nnx.jit", f.get("flax nnx.jit per step"), None),
        ],
        "µs/step",
        lower_is_better=True,
    )


def batches(epochs: int, reps: int) -> None:
    print(f"\nbatches: 21 one-observation batches, a callback after each step ({epochs} epochs)")
    x, y = datasets.seed_data()
    bs = [(jnp.asarray(x[i : i + 1]), jnp.asarray(y[i : i + 1])) for i in range(21)]
    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    count = [0]

    def cb():
        count[0] += 1

    def ours_run():
        fx.train(loss, ps, bs, opt, cb=cb, epochs=epochs)
        m[0].weight.block_until_ready()

    ours_run()
    hand = peers.seed_per_batch(bs, epochs)
    steps = 21 * epochs

    def ours() -> dict[str, float]:
        return {"ours": timed(ours_run) / steps * 1e6}

    def peer() -> dict[str, float]:
        return {"hand": timed(hand) / steps * 1e6}

    f = contest([ours, peer], reps, lower_is_better=True)
    table(
        [("list of 21 batches, plain cb", f["ours"], "jax+optax jit loop + cb", f["hand"], 1.0)],
        "µs/step",
        lower_is_better=True,
    )


def throttle(epochs: int, reps: int) -> None:
    print(f"\nthrottle: cb=fx.throttle(f, 1.0) over {epochs} epochs against no callback")
    x, y = (jnp.asarray(a) for a in datasets.seed_data())
    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    cb = fx.throttle(lambda: float(loss(x, y)), 1.0)

    def run(cb):
        fx.train(loss, ps, [(x, y)], opt, cb=cb, epochs=epochs)
        m[0].weight.block_until_ready()

    run(cb), run(None)

    def with_cb() -> dict[str, float]:
        return {"cb": timed(lambda: run(cb)) / epochs * 1e6}

    def without() -> dict[str, float]:
        return {"none": timed(lambda: run(None)) / epochs * 1e6}

    f = contest([with_cb, without], reps, lower_is_better=True)
    table(
        [("epochs=N, cb=throttle(f, 1.0)", f["cb"], "the same run, no callback", f["none"], 1.2)],
        "µs/step",
        lower_is_better=True,
    )


def _mlp(widths: tuple[int, ...], seed: int = 0) -> fx.Chain:
    fx.seed(seed)
    layers = [fx.Dense(a, b, fx.relu) for a, b in zip(widths[:-2], widths[1:-1])]
    return fx.Chain(*layers, fx.Dense(widths[-2], widths[-1]))


def _mlp_ours(widths: tuple[int, ...], steps: int, B: int = 128):
    """Step-by-step and fused fluxjax runs of one MLP; returns the two timed functions."""
    X, Yh = peers.mlp_data(steps, B, widths[0], widths[-1])
    m = _mlp(widths)
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()
    xd, yd = jax.device_put(X), jax.device_put(Yh)
    bs = [(xd[i * B : (i + 1) * B], yd[i * B : (i + 1) * B]) for i in range(steps)]
    loader = fx.DataLoader((X, Yh), batchsize=B)

    def stepwise():
        fx.train(loss, ps, bs, opt, cb=lambda: None)
        m[0].weight.block_until_ready()

    def fused():
        fx.train(loss, ps, loader, opt)
        m[0].weight.block_until_ready()

    stepwise(), fused()
    return stepwise, fused


def mlp(steps: int, reps: int) -> None:
    B = 128
    print(
        f"\nmlp: 784-512-512-10, relu, logitcrossentropy, Adam, batch {B}, samples/s "
        f"({steps} steps)"
    )
    stepwise, fused = _mlp_ours((784, 512, 512, 10), steps)

    def ours() -> dict[str, float]:
        return {"step": steps * B / timed(stepwise), "fused": steps * B / timed(fused)}

    f = contest([ours, peer_run("mlp_throughput.py", steps)], reps, lower_is_better=False)
    table(
        [
            (
                "step by step (plain callback)",
                f["step"],
                "pytorch eager",
                f.get("pytorch eager"),
                None,
            ),
            (
                "step by step",
                f["step"],
                "jax+optax jit per step",
                f.get("jax+optax jit per step"),
                1.2,
            ),
            (
                "fused (DataLoader, no callback)",
                f["fused"],
                "jax+optax lax.scan",
                f.get("jax+optax lax.scan fused"),
                1.0,
            ),
        ],
        "samples/s",
        lower_is_better=False,
    )


def sweep(widths: list[int], reps: int) -> None:
    B = 128
    print(f"\nsweep: MLP 784-w-w-10, Adam, batch {B}, samples/s")
    rows = []
    for w in widths:
        steps = max(48, min(400, 4_000_000 // (w * w + 784 * w)))
        stepwise, fused = _mlp_ours((784, w, w, 10), steps)
        hand = peers.mlp_jit((784, w, w, 10), steps, B)

        def ours(steps=steps, stepwise=stepwise, fused=fused) -> dict[str, float]:
            return {"step": steps * B / timed(stepwise), "fused": steps * B / timed(fused)}

        def peer(steps=steps, hand=hand) -> dict[str, float]:
            return {"hand": steps * B / timed(hand)}

        f = contest([ours, peer], reps, lower_is_better=False)
        rows.append((f"w={w}: step by step", f["step"], "jax+optax jit per step", f["hand"], 1.0))
        rows.append(
            (
                f"w={w}: fused (policy's choice)",
                f["fused"],
                "jax+optax jit per step",
                f["hand"],
                1.0,
            )
        )
    table(rows, "samples/s", lower_is_better=False)


def adam(reps: int) -> None:
    print("\nadam: one Adam update over 10,010,000 parameters, ms per update")
    fx.seed(0)
    m = fx.Dense(1000, 10_000)
    g = fx.fmap(lambda a: jnp.full_like(a, 1e-3), m)
    state = fx.setup(fx.Adam(), m)
    fx.update(state, m, g)

    def ours_once():
        fx.update(state, m, g)
        m.weight.block_until_ready()

    peer_once = peers.optax_adam_update(m, g)
    ours_once(), peer_once()

    def ours() -> dict[str, float]:
        return {"ours": timed(ours_once) * 1e3}

    def peer() -> dict[str, float]:
        return {"optax": timed(peer_once) * 1e3}

    f = contest([ours, peer], 5 * reps, lower_is_better=True)
    table(
        [("fx.update(state, model, grads)", f["ours"], "optax adam, jitted", f["optax"], 1.1)],
        "ms",
        True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "sections", nargs="*", default=["seed", "batches", "throttle", "mlp", "sweep", "adam"]
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per contender (3)")
    args = ap.parse_args()
    q = args.quick
    reps = args.reps or (1 if q else 3)
    print(
        f"fluxjax {fx.__version__}, jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{os.cpu_count()} CPUs; {reps} timed run(s) per contender, interleaved, best kept"
    )
    s = args.sections
    if "seed" in s:
        seed(300 if q else 4000, reps)
    if "batches" in s:
        batches(5 if q else 100, reps)
    if "throttle" in s:
        throttle(2000 if q else 50_000, reps)
    if "mlp" in s:
        mlp(20 if q else 200, reps)
    if "sweep" in s:
        sweep([16, 64] if q else [16, 64, 256, 1024, 2048], reps)
    if "adam" in s:
        adam(reps)
    if "scale" in s:  # issue "Scale": 1, 2, 4 simulated devices against a hand-written step
        __import__("scale").main(q)
    if "layers" in s:  # issue "Layers": the CNN and the LSTM beside the peers
        import subprocess
        import sys

        here = os.path.dirname(os.path.abspath(__file__))
        args = ["both", "5" if q else "20"]
        subprocess.run([sys.executable, os.path.join(here, "layers.py"), *args], check=False)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
