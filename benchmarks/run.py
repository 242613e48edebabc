"""fluxjax beside its peers, measured in the same run, with the ratio and the target.

    python benchmarks/run.py              # everything (several minutes on 2 cores)
    python benchmarks/run.py seed mlp     # some sections
    python benchmarks/run.py --quick      # small sizes, to check it runs

Every contender (ours and each peer) gets the same number of timed runs (``--reps``,
default 3), interleaved ours-then-peers, and keeps its best; the peers are the scripts in
``peers.py`` for the hand-written JAX+Optax loops, run in this process and interleaved with
ours, and the scripts in ``../shared/bench`` for PyTorch eager, Equinox, Flax NNX and Keras,
each in its own process (their rows say so: such a figure is beside ours, not a ratio taken
under the same conditions). Each row says whether it meets its target (issue "One step, one
compiled program", item 4).

Sections:
  seed      the tutorial's 1-D fit, Adam, µs/step: ``train`` once per epoch with a callback,
            and ``epochs=N`` fused, against PyTorch, the jitted step and its lax.scan
  batches   21 one-observation batches, a plain callback after every step, µs/step
  throttle  ``cb=fx.throttle(f, 1.0)`` over 50,000 epochs against no callback
  mlp       784-512-512-10, batch 128, samples/s: step by step and fused
  keras     Keras 3 fit (JAX backend, its own process) beside the seed fit and the MLP
  first     the first train call in a fresh process (compile included) against a hand loop
  sweep     784-w-w-10 for w = 16 ... 2048: step by step and fused against the jitted step
  adam      Adam updates over 10 million parameters, 8 in a row: fx.update against optax
  scale     (not in the default set) the MLP on 1, 2, 4 simulated devices: benchmarks/scale.py
  layers    (not in the default set) the CNN and the LSTM: benchmarks/layers.py
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

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

    # the seed's DataLoader (7 shuffled batches of 3) against the same batches as a list
    xs, ys = (np.asarray(a) for a in datasets.seed_data())
    seven = [(x[i : i + 3], y[i : i + 3]) for i in range(0, 21, 3)]
    m3, m4 = lab.seed_model(), lab.seed_model()
    loss3 = lambda x, y: fx.mse(m3(x), y)  # noqa: E731
    loss4 = lambda x, y: fx.mse(m4(x), y)  # noqa: E731
    ps3, opt3, ps4, opt4 = fx.params(m3), fx.Adam(), fx.params(m4), fx.Adam()
    loader = fx.DataLoader((xs, ys), batchsize=3, shuffle=True)
    ep = max(1, n // 7)

    def on_loader():
        fx.train(loss3, ps3, loader, opt3, epochs=ep)
        m3[0].weight.block_until_ready()

    def on_list():
        fx.train(loss4, ps4, seven, opt4, epochs=ep)
        m4[0].weight.block_until_ready()

    for _ in range(50):
        fx.train(loss, ps, data, opt, cb=cb)
    float(loss(x, y))  # the callback's own (eager) loss, compiled once here, not timed
    fused(), on_loader(), on_list()
    hand_step = peers.seed_per_batch(data, n)
    hand_scan = peers.seed_scan(data, n)
    hand_scan7 = peers.seed_scan(seven, ep)

    def ours() -> dict[str, float]:
        return {
            "loop": timed(loop) / n * 1e6,
            "fused": timed(fused) / n * 1e6,
            "loader": timed(on_loader) / (7 * ep) * 1e6,
            "list": timed(on_list) / (7 * ep) * 1e6,
        }

    def hand() -> dict[str, float]:
        return {
            "step": timed(hand_step) / n * 1e6,
            "scan": timed(hand_scan) / n * 1e6,
            "scan7": timed(hand_scan7) / (7 * ep) * 1e6,
        }

    f = contest([ours, hand], reps, lower_is_better=True)
    g = contest([peer_run("seed_regression.py", n)], 1, lower_is_better=True)
    table(
        [
            (
                "loop: train per epoch + callback",
                f["loop"],
                "jax+optax jit step + cb",
                f["step"],
                0.8,
            ),
            ("fused: epochs=N", f["fused"], "jax+optax lax.scan", f["scan"], 0.6),
            (
                "DataLoader(bs=3, shuffle), epochs=N/7",
                f["loader"],
                "the 7 batches as a list",
                f["list"],
                1.2,
            ),
            (
                "the 7 batches as a list, epochs=N/7",
                f["list"],
                "jax+optax lax.scan, 7 batches",
                f["scan7"],
                0.6,
            ),
            (
                "DataLoader(bs=3, shuffle), epochs=N/7",
                f["loader"],
                "jax+optax lax.scan, 7 batches",
                f["scan7"],
                0.6,
            ),
            (
                "loop (peer in its own process)",
                f["loop"],
                "pytorch eager",
                g.get("pytorch eager"),
                0.12,
            ),
            (
                "loop (peer in its own process)",
                f["loop"],
                "equinox filter_jit",
                g.get("equinox filter_jit per step"),
                None,
            ),
            (
                "loop (peer in its own process)",
                f["loop"],
                "flax nnx.jit",
                g.get("flax nnx.jit per step"),
                None,
            ),
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
    widths = (784, 512, 512, 10)
    print(
        f"\nmlp: 784-512-512-10, relu, logitcrossentropy, Adam, batch {B}, samples/s "
        f"({steps} steps)"
    )
    stepwise, fused = _mlp_ours(widths, steps)
    hand_step, hand_scan = peers.mlp_jit(widths, steps, B), peers.mlp_scan(widths, steps, B)

    def ours() -> dict[str, float]:
        return {"step": steps * B / timed(stepwise), "fused": steps * B / timed(fused)}

    def hand() -> dict[str, float]:
        return {"hstep": steps * B / timed(hand_step), "hscan": steps * B / timed(hand_scan)}

    f = contest([ours, hand], reps, lower_is_better=False)
    g = contest([peer_run("mlp_throughput.py", steps)], 1, lower_is_better=False)
    table(
        [
            ("step by step (plain callback)", f["step"], "jax+optax jit per step", f["hstep"], 1.2),
            ("fused (DataLoader, no callback)", f["fused"], "jax+optax lax.scan", f["hscan"], 1.0),
            (
                "fused (DataLoader, no callback)",
                f["fused"],
                "jax+optax jit per step",
                f["hstep"],
                1.0,
            ),
            (
                "step by step (peer in its own process)",
                f["step"],
                "pytorch eager",
                g.get("pytorch eager"),
                None,
            ),
        ],
        "samples/s",
        lower_is_better=False,
    )


def keras(reps: int) -> None:
    """Keras 3 ``fit`` on the JAX backend (in its own process: it sets up its own backend)
    beside the same workloads in fluxjax."""
    print("\nkeras: Keras 3 Model.fit (JAX backend, its own process) beside fluxjax")
    n = 2000
    x, y = (jnp.asarray(a) for a in datasets.seed_data())
    m = lab.seed_model()
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ps, opt = fx.params(m), fx.Adam()

    def per_epoch():
        for _ in range(n):
            fx.train(loss, ps, [(x, y)], opt, cb=lambda: None)
        m[0].weight.block_until_ready()

    def one_call():
        fx.train(loss, ps, [(x, y)], opt, epochs=10 * n, cb=fx.every(10 * n, lambda: None))
        m[0].weight.block_until_ready()

    steps, B = 100, 128
    stepwise, fused = _mlp_ours((784, 512, 512, 10), steps)
    per_epoch(), one_call()

    def ours() -> dict[str, float]:
        return {
            "epoch": timed(per_epoch) / n * 1e6,
            "one": timed(one_call) / (10 * n) * 1e6,
            "step": steps * B / timed(stepwise),
            "fused": steps * B / timed(fused),
        }

    f = contest([ours], reps, lower_is_better=True)
    k = contest([peer_run("keras_fit.py", 2000)], 1, lower_is_better=True)
    table(
        [
            (
                "seed, train per epoch + callback",
                f["epoch"],
                "keras fit per epoch",
                k.get("keras seed fit once per epoch"),
                1.0,
            ),
            (
                "seed, one call, epochs=N",
                f["one"],
                "keras one fit, spe=1000",
                k.get("keras seed one fit, spe=1000"),
                1.0,
            ),
        ],
        "µs/step",
        lower_is_better=True,
    )
    table(
        [
            (
                "MLP step by step (list + plain cb)",
                f["step"],
                "keras fit, spe=1",
                k.get("keras mlp spe=1"),
                1.0,
            ),
            (
                "MLP over a DataLoader",
                f["fused"],
                "keras fit, spe=50",
                k.get("keras mlp spe=50"),
                1.0,
            ),
        ],
        "samples/s",
        lower_is_better=False,
    )


FIRST_OURS = """
import time; t0 = time.perf_counter()
import numpy as np, fluxjax as fx
from fluxjax import lab, datasets
{setup}
t1 = time.perf_counter()
{ours}
print(f"first {{time.perf_counter() - t1:.3f}} total {{time.perf_counter() - t0:.3f}}")
"""

FIRST_HAND = """
import time; t0 = time.perf_counter()
import numpy as np, jax, jax.numpy as jnp, optax
{setup}
t1 = time.perf_counter()
{hand}
print(f"first {{time.perf_counter() - t1:.3f}} total {{time.perf_counter() - t0:.3f}}")
"""

SEED_SETUP = "x, y = datasets.seed_data(); m = lab.seed_model()"
SEED_OURS = (
    "fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), [(x, y)], fx.Adam())\n"
    "m[0].weight.block_until_ready()"
)
SEED_HAND_SETUP = (
    "r = np.random.default_rng(0); x = np.linspace(-1, 1, 21, dtype=np.float32)[:, None]\n"
    "y = 3 * x\n"
    "p = [jnp.ones((4, 1)), jnp.zeros(4), jnp.ones((1, 4)), jnp.zeros(1)]\n"
    "def f(p, x, y):\n"
    "    h = jax.nn.sigmoid(x @ p[0].T + p[1]); return jnp.mean((h @ p[2].T + p[3] - y) ** 2)"
)
HAND_STEP = (
    "tx = optax.adam(1e-3); s = tx.init(p)\n"
    "@jax.jit\n"
    "def step(p, s, x, y):\n"
    "    l, g = jax.value_and_grad(f)(p, x, y); u, s = tx.update(g, s, p)\n"
    "    return optax.apply_updates(p, u), s, l\n"
)
SEED_HAND = HAND_STEP + "p, s, l = step(p, s, x, y); l.block_until_ready()"
MLP_SETUP = (
    "r = np.random.default_rng(0); X = r.standard_normal((6400, 784), dtype=np.float32)\n"
    "Y = np.eye(10, dtype=np.float32)[r.integers(0, 10, 6400)]"
)
MLP_OURS = (
    "fx.seed(0); m = fx.Chain(fx.Dense(784, 64, fx.relu), fx.Dense(64, 64, fx.relu), "
    "fx.Dense(64, 10))\n"
    "fx.train(lambda x, y: fx.logitcrossentropy(m(x), y), fx.params(m), "
    "fx.DataLoader((X, Y), batchsize=32, shuffle=True), fx.Adam())\n"
    "m[0].weight.block_until_ready()"
)
MLP_HAND = (
    "ks = jax.random.split(jax.random.PRNGKey(0), 3)\n"
    "p = [(jax.random.normal(k, (a, b)) * 0.05, jnp.zeros(b)) for k, a, b in "
    "zip(ks, (784, 64, 64), (64, 64, 10))]\n"
    "def f(p, x, y):\n"
    "    for W, b in p[:-1]: x = jax.nn.relu(x @ W + b)\n"
    "    return optax.softmax_cross_entropy(x @ p[-1][0] + p[-1][1], y).mean()\n"
    + HAND_STEP
    + "order = r.permutation(6400)\n"
    "for i in range(200):\n"
    "    ix = order[i * 32:(i + 1) * 32]; p, s, l = step(p, s, X[ix], Y[ix])\n"
    "l.block_until_ready()"
)


def first(reps: int) -> None:
    """Time to first result in a fresh process, compile included (the first ``train`` call
    against a hand-written jitted loop doing the same), each run in its own process."""
    import subprocess
    import sys

    print("\nfirst: the first call in a fresh process, compile included, seconds")

    def run(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            print("  (failed:", (out.stderr.strip().splitlines() or ["?"])[-1], ")")
            return float("nan")
        return float(out.stdout.split()[1])

    jobs = {
        "seed": FIRST_OURS.format(setup=SEED_SETUP, ours=SEED_OURS),
        "hseed": FIRST_HAND.format(setup=SEED_HAND_SETUP, hand=SEED_HAND),
        "mlp": FIRST_OURS.format(setup=MLP_SETUP, ours=MLP_OURS),
        "hmlp": FIRST_HAND.format(setup=MLP_SETUP, hand=MLP_HAND),
    }

    def group(name: str):
        return lambda: {name: run(jobs[name])}

    f = contest([group(k) for k in jobs], reps, lower_is_better=True)
    table(
        [
            ("seed fit, first train call (1 step)", f["seed"], "hand jitted step", f["hseed"], 1.5),
            (
                "MLP 784-64-64-10, first epoch (200 batches)",
                f["mlp"],
                "hand jitted loop",
                f["hmlp"],
                1.5,
            ),
        ],
        "s",
        lower_is_better=True,
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
                f"w={w}: fused (one call per 1024 steps)",
                f["fused"],
                "jax+optax jit per step",
                f["hand"],
                1.0,
            )
        )
    table(rows, "samples/s", lower_is_better=False)


def adam(reps: int) -> None:
    K = 8
    print(f"\nadam: Adam updates over 10,010,000 parameters, ms per update ({K} in a row)")
    fx.seed(0)
    m = fx.Dense(1000, 10_000)
    g = fx.fmap(lambda a: jnp.full_like(a, 1e-3), m)
    state = fx.setup(fx.Adam(), m)
    fx.update(state, m, g)
    peer_once = peers.optax_adam_update(m, g)
    peer_once()

    def in_a_row(once: Callable[[], None], result: Callable[[], Any]) -> float:
        # K updates, waited for once at the end, as a training loop runs them. Each
        # contender frees its old arrays when its update has run, off the calling thread:
        # the pause lets that finish before the next contender's clock starts
        jax.block_until_ready(result())
        time.sleep(0.05)
        t = time.perf_counter()
        for _ in range(K):
            once()
        jax.block_until_ready(result())
        return (time.perf_counter() - t) / K * 1e3

    def ours() -> dict[str, float]:
        return {"ours": in_a_row(lambda: fx.update(state, m, g), lambda: m.weight)}

    def peer() -> dict[str, float]:
        return {"optax": in_a_row(peer_once, peer_once.result)}

    f = contest([ours, peer], 2 * reps, lower_is_better=True)
    table(
        [("fx.update(state, model, grads)", f["ours"], "optax adam, jitted", f["optax"], 1.1)],
        "ms",
        True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "sections",
        nargs="*",
        default=["seed", "batches", "throttle", "mlp", "sweep", "adam", "keras", "first"],
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
    if "keras" in s:
        keras(reps)
    if "first" in s:
        first(reps)
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
