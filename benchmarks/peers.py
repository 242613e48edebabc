"""Hand-written JAX+Optax loops for the workloads no peer script in ``../shared/bench`` has,
written the way a JAX user would: one jitted ``value_and_grad`` + Optax step, called from a
Python loop (the loss returned, as in the peer scripts). Each function sets up and warms up,
then returns a zero-argument function doing one timed run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _seed_params(key: int = 0) -> dict:
    k1, k2 = jax.random.split(jax.random.PRNGKey(key))
    return {
        "W1": jax.random.normal(k1, (1, 4)) * 0.5,
        "b1": jnp.zeros(4),
        "W2": jax.random.normal(k2, (4, 1)) * 0.5,
        "b2": jnp.zeros(1),
    }


def _seed_loss(p: dict, x, y):
    h = jax.nn.sigmoid(x @ p["W1"] + p["b1"])
    return jnp.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def seed_per_batch(batches: list, epochs: int) -> Callable[[], None]:
    """The seed model trained batch by batch, a Python callback after every step."""
    tx = optax.adam(1e-3)
    box = [_seed_params(), None]
    box[1] = tx.init(box[0])
    count = [0]

    def cb():
        count[0] += 1

    @jax.jit
    def step(p, s, x, y):
        l, g = jax.value_and_grad(_seed_loss)(p, x, y)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    def run():
        p, s = box
        for _ in range(epochs):
            for x, y in batches:
                p, s, l = step(p, s, x, y)
                cb()
        l.block_until_ready()
        box[:] = [p, s]

    run()
    return run


def seed_scan(batches: list, epochs: int) -> Callable[[], None]:
    """The seed model trained ``epochs`` passes over ``batches`` in one ``lax.scan`` (the
    hand-written fused loop), stacked batches indexed by step."""
    tx = optax.adam(1e-3)
    p = _seed_params()
    box = [p, tx.init(p)]
    xs = jnp.stack([x for x, _ in batches])
    ys = jnp.stack([y for _, y in batches])
    nb = len(batches)

    @jax.jit
    def run_scan(p, s):
        def body(c, i):
            p, s = c
            k = i % nb
            l, g = jax.value_and_grad(_seed_loss)(p, xs[k], ys[k])
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), l

        (p, s), ls = jax.lax.scan(body, (p, s), jnp.arange(nb * epochs))
        return p, s, ls[-1]

    return _scanning(run_scan, box)


def _scanning(run_scan: Callable[..., Any], box: list) -> Callable[[], None]:
    """A timed run of a jitted scan over ``box = [params, state]``, warmed up once."""

    def run():
        p, s, l = run_scan(*box)
        l.block_until_ready()
        box[:] = [p, s]

    run()
    return run


def mlp_data(steps: int, B: int, D: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps * B, D), dtype=np.float32)
    Y = rng.integers(0, C, steps * B)
    return X, np.eye(C, dtype=np.float32)[Y]


def _mlp(widths: tuple[int, ...], steps: int, B: int) -> tuple:
    """The MLP's data, loss, Optax Adam and ``[params, state]`` box (He-scaled weights)."""
    X, Yh = mlp_data(steps, B, widths[0], widths[-1])
    ks = jax.random.split(jax.random.PRNGKey(0), len(widths) - 1)
    p = [
        (jax.random.normal(k, (a, b)) * (2 / a) ** 0.5, jnp.zeros(b))
        for k, a, b in zip(ks, widths[:-1], widths[1:])
    ]
    tx = optax.adam(1e-3)

    def loss(p, x, y):
        for W, b in p[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = p[-1]
        return optax.softmax_cross_entropy(x @ W + b, y).mean()

    return X, Yh, loss, tx, [p, tx.init(p)]


def mlp_jit(widths: tuple[int, ...], steps: int, B: int) -> Callable[[], None]:
    """An MLP (relu, softmax cross-entropy, Adam) stepped batch by batch."""
    X, Yh, loss, tx, box = _mlp(widths, steps, B)

    @jax.jit
    def step(p, s, x, y):
        l, g = jax.value_and_grad(loss)(p, x, y)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    xd, yd = jax.device_put(X), jax.device_put(Yh)
    bs = [(xd[i * B : (i + 1) * B], yd[i * B : (i + 1) * B]) for i in range(steps)]

    def run():
        p, s = box
        for x, y in bs:
            p, s, l = step(p, s, x, y)
        l.block_until_ready()
        box[:] = [p, s]

    run()
    return run


def mlp_scan(widths: tuple[int, ...], steps: int, B: int) -> Callable[[], None]:
    """The same MLP's steps in one ``lax.scan`` over the batches (the hand fused loop)."""
    X, Yh, loss, tx, box = _mlp(widths, steps, B)

    xs = jax.device_put(X.reshape(steps, B, -1))
    ys = jax.device_put(Yh.reshape(steps, B, -1))

    @jax.jit
    def run_scan(p, s):
        def body(c, xy):
            p, s = c
            l, g = jax.value_and_grad(loss)(p, *xy)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), l

        (p, s), ls = jax.lax.scan(body, (p, s), (xs, ys))
        return p, s, ls[-1]

    return _scanning(run_scan, box)


def optax_adam_update(m, g) -> Callable[[], None]:
    """One jitted optax Adam update over a Dense layer's arrays (not waited for: the timed
    loop waits once, after its last update)."""
    params = {"w": jnp.array(m.weight), "b": jnp.array(m.bias)}
    grads = {"w": g.weight, "b": g.bias}
    tx = optax.adam(1e-3)

    @jax.jit
    def step(p, s, gr):
        u, s = tx.update(gr, s, p)
        return optax.apply_updates(p, u), s

    box = [params, tx.init(params)]

    def run():
        box[0], box[1] = step(box[0], box[1], grads)

    run.result = lambda: box[0]["w"]  # type: ignore[attr-defined]
    return run
