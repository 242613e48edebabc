"""Run by tests/test_distributed.py in subprocesses (not collected as a test).

    python distributed_worker.py devices OUT.npz       # under XLA_FLAGS=...device_count=4
    python distributed_worker.py process OUT.npz PORT PID NPROC

``devices`` trains each case on one device and then on all the (simulated) devices, and
saves the losses, parameters and optimiser state of both with the shardings seen.
``process`` joins ``NPROC`` processes on 127.0.0.1:PORT and trains data-parallel, each
process feeding its part of every batch; process 0 saves the parameters.
"""

from __future__ import annotations

import sys

import numpy as np

B, D, H, C = 16, 8, 12, 4  # a small MLP: batches of 16 split over 4 devices


def mlp_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, D)).astype(np.float32)
    labels = rng.integers(0, C, n)
    return x, np.eye(C, dtype=np.float32)[labels]


def mlp(fx):
    fx.seed(0)
    return fx.Chain(fx.Dense(D, H, fx.relu), fx.Dense(H, H, fx.relu), fx.Dense(H, C))


def seed_case(fx, kw: dict) -> dict:
    """The tutorial's fit on 20 of its 21 points (20 splits over 4 devices), implicit mode,
    step by step (the per-epoch loop) and fused (epochs=N over a list)."""
    from fluxjax import datasets, lab

    x, y = (a[:20] for a in datasets.seed_data())
    m = lab.seed_model()
    ps, opt = fx.params(m), fx.Adam(0.01)
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    ls = []
    for _ in range(5):
        ls += fx.train(loss, ps, [(x, y)], opt, **kw).losses
    stepped = m[0].weight.sharding
    ls += fx.train(loss, ps, [(x, y)], opt, epochs=20, **kw).losses
    return {
        "losses": np.array(ls),
        "params": [np.asarray(p) for p in ps],
        "specs": [p.sharding for p in ps],
        "stepped": stepped,
        "fused": m[0].weight.sharding,
    }


def mlp_case(fx, kw: dict) -> dict:
    """The MLP in explicit mode: step by step over a list, then fused over a shuffled
    DataLoader; the optimiser state is returned too."""
    x, y = mlp_data()
    m = mlp(fx)
    state = fx.setup(fx.Adam(1e-2), m)
    loss = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    batches = [(x[i : i + B], y[i : i + B]) for i in range(0, len(x), B)]
    ls = fx.train(loss, m, batches, state, steps_per_call=1, **kw).losses
    stepped = m[0].weight.sharding
    loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=1)
    ls += fx.train(loss, m, loader, state, epochs=2, **kw).losses
    moments = [np.asarray(a) for a in _leaves(state)]
    return {
        "losses": np.array(ls),
        "params": [np.asarray(p) for p in fx.params(m)],
        "specs": [p.sharding for p in fx.params(m)],
        "state": moments,
        "stepped": stepped,
        "fused": m[0].weight.sharding,
    }


def split_case(fx, kw: dict, compiled: list) -> dict:
    """The MLP over a shuffled DataLoader for 3 epochs, run three ways on the devices: one
    call, one call per epoch, and with a callback after every step; the arrays of each,
    and the compilations of each way's later calls (``compiled`` counts them)."""
    x, y = mlp_data()
    loss = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    out: dict = {}
    for way in ("one", "per_epoch", "every_step"):
        m = mlp(fx)
        state = fx.setup(fx.Adam(1e-2), m)
        loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=1)
        first = len(compiled)
        if way == "one":
            fx.train(loss, m, loader, state, epochs=3, **kw)
        for epoch in range(3 if way == "per_epoch" else 0):
            fx.train(loss, m, loader, state, **kw)
            if epoch == 0:
                later = len(compiled)
        if way == "every_step":
            fx.train(loss, m, loader, state, epochs=3, cb=lambda: None, **kw)
        out[way] = [np.asarray(a) for a in fx.params(m)] + [np.asarray(a) for a in _leaves(state)]
        out[f"{way}_compiles"] = len(compiled) - first
        if way == "per_epoch":
            out["later_compiles"] = len(compiled) - later
    return out


def _leaves(state) -> list:
    """Adam's moments of every array of the MLP, read through the Leafs (``Leaf.state``)."""
    import jax

    leaves = [lf for layer in state.layers for lf in (layer.weight, layer.bias)]
    return [a for lf in leaves for a in jax.tree_util.tree_leaves(lf.state)]


def back_to_one_device(fx, devs: list) -> list[int]:
    """How many devices hold a weight after training on all of them, then without devices=."""
    from fluxjax import datasets, lab

    x, y = (a[:20] for a in datasets.seed_data())
    m = lab.seed_model()
    ps, opt = fx.params(m), fx.Adam(0.01)
    loss = lambda x, y: fx.mse(m(x), y)  # noqa: E731
    fx.train(loss, ps, [(x, y)], opt, devices=devs)
    many = len(m[0].weight.sharding.device_set)
    fx.train(loss, ps, [(x, y)], opt)
    return [many, len(m[0].weight.sharding.device_set)]


def devices(out: str) -> None:
    import jax

    import fluxjax as fx

    res: dict = {"ndev": len(jax.devices())}
    runs = (
        ("seed", seed_case, "one", {}),
        ("seed", seed_case, "dp", {"devices": jax.devices()}),
        ("mlp", mlp_case, "one", {}),
        ("mlp", mlp_case, "dp", {"devices": jax.devices()}),
        ("mlp", mlp_case, "fsdp", {"devices": jax.devices(), "shard_params": True}),
    )
    for name, case, tag, kw in runs:
        r = case(fx, kw)
        res[f"{name}_{tag}_losses"] = r["losses"]
        for i, a in enumerate(r["params"] + r.get("state", [])):
            res[f"{name}_{tag}_arr{i}"] = a
        for run in ("stepped", "fused"):
            res[f"{name}_{tag}_{run}_ndev"] = len(r[run].device_set)
            res[f"{name}_{tag}_{run}_spec"] = str(getattr(r[run], "spec", "single"))
        res[f"{name}_{tag}_specs"] = [str(getattr(s, "spec", "single")) for s in r["specs"]]
    res["back_ndev"] = back_to_one_device(fx, jax.devices())
    compiled: list = []  # XLA compilations (JAX's monitoring events), for split_case
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: (
            compiled.append(1) if name == "/jax/core/compile/backend_compile_duration" else None
        )
    )
    for tag, kw in (("dp", {}), ("fsdp", {"shard_params": True})):
        r = split_case(fx, {"devices": jax.devices(), **kw}, compiled)
        for way in ("one", "per_epoch", "every_step"):
            for i, a in enumerate(r[way]):
                res[f"split_{tag}_{way}_arr{i}"] = a
        for k in ("one_compiles", "per_epoch_compiles", "every_step_compiles", "later_compiles"):
            res[f"split_{tag}_{k}"] = r[k]
    x, y = mlp_data(18)
    m = mlp(fx)
    try:
        loss = lambda m, x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
        fx.train(loss, m, fx.DataLoader((x, y), batchsize=8), fx.Adam(), devices=4)
        res["error"] = ""
    except ValueError as e:
        res["error"] = str(e)
    np.savez(out, **res)


def process(out: str, port: int, pid: int, nproc: int) -> None:
    import fluxjax as fx

    fx.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
    import jax

    x, y = mlp_data()
    m = mlp(fx)
    opt = fx.Adam(1e-2)
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    ps = fx.params(m)
    loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=1, shard=(pid, nproc))
    calls = _count_calls()
    compiled: list = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: compiled.append(name == COMPILE_EVENT)
    )
    h = fx.train(loss, ps, loader, opt, epochs=2, devices=jax.devices())  # fused
    fused_calls, fused_compiles = len(calls), sum(compiled)
    fused = [np.asarray(p) for p in ps]
    split = _split_run(fx, x, y, pid, nproc)  # the same steps, one call per step
    split_calls = len(calls) - fused_calls
    warned = _unshared_warning(fx, x, y, pid, nproc)
    unequal = _unequal_loaders(fx, x, y, pid, nproc)
    local = [(x[i : i + B], y[i : i + B]) for i in range(0, len(x), B)]
    part = B // nproc
    local = [(a[pid * part : (pid + 1) * part], b[pid * part : (pid + 1) * part]) for a, b in local]
    h2 = fx.train(loss, ps, local, opt, epochs=2, devices=jax.devices())  # fused list
    if fx.distributed.is_main():
        arrs = {f"arr{i}": np.asarray(p) for i, p in enumerate(ps)}
        spec = str(m[0].weight.sharding.spec)
        ndev = len(m[0].weight.sharding.device_set)
        losses = np.array(h.losses + h2.losses)
        same = all((a == b).all() for a, b in zip(fused, split))
        np.savez(
            out,
            losses=losses,
            spec=spec,
            ndev=ndev,
            nglobal=len(jax.devices()),
            calls=[fused_calls, split_calls],
            compiles=fused_compiles,
            warned=warned,
            unequal=unequal,
            same=same,
            **arrs,
        )


COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # (as tests/conftest.py)


def _unshared_warning(fx, x, y, pid: int, nproc: int) -> str:
    """What ``train`` warns when a sharded loader trains without ``devices=``."""
    import warnings

    m = mlp(fx)
    loader = fx.DataLoader((x, y), batchsize=B, shard=(pid, nproc))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fx.train(lambda x, y: fx.mse(m(x), y), fx.params(m), loader, fx.Descent())
    return " ".join(str(w.message) for w in seen)


def _unequal_loaders(fx, x, y, pid: int, nproc: int) -> str:
    """The error when the processes' loaders would take different steps (process 1 over
    fewer observations): raised in every process instead of a hang."""
    import jax

    m = mlp(fx)
    n = len(x) if pid == 0 else len(x) - B
    loader = fx.DataLoader((x[:n], y[:n]), batchsize=B, shard=(pid, nproc))
    try:
        fx.train(
            lambda x, y: fx.mse(m(x), y), fx.params(m), loader, fx.Descent(), devices=jax.devices()
        )
    except ValueError as e:
        return str(e)
    return "no error"


def _count_calls() -> list:
    """The calls of a plan's compiled program from now on (one entry of steps a call)."""
    from fluxjax.engine import run

    calls, invoke = [], run.Run._invoke

    def counted(self, fn, static, data, sel, n, src):
        calls.append(n)
        return invoke(self, fn, static, data, sel, n, src)

    run.Run._invoke = counted
    return calls


def _split_run(fx, x, y, pid: int, nproc: int) -> list:
    """``process``'s first run again, one ``train`` call per epoch with a callback after
    every step (so one step a call): its parameters and optimiser state."""
    import jax

    m = mlp(fx)
    opt = fx.Adam(1e-2)
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    ps = fx.params(m)
    loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=1, shard=(pid, nproc))
    for _ in range(2):
        fx.train(loss, ps, loader, opt, cb=lambda: None, devices=jax.devices())
    return [np.asarray(p) for p in ps]


def process_reference(fx) -> dict:
    """What one process gives over the same global batches (run by the test itself)."""
    x, y = mlp_data()
    m = mlp(fx)
    opt = fx.Adam(1e-2)
    loss = lambda x, y: fx.logitcrossentropy(m(x), y)  # noqa: E731
    ps = fx.params(m)
    loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=1)
    h = fx.train(loss, ps, loader, opt, epochs=2, steps_per_call=1)
    batches = [(x[i : i + B], y[i : i + B]) for i in range(0, len(x), B)]
    h2 = fx.train(loss, ps, batches, opt, epochs=2)
    return {"losses": np.array(h.losses + h2.losses), "params": [np.asarray(p) for p in ps]}


if __name__ == "__main__":
    if sys.argv[1] == "devices":
        devices(sys.argv[2])
    else:
        process(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
